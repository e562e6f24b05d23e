#!/usr/bin/env python3
# GET /v1/events: actions that do not answer the request that caused them
# reach the account's stream — a waiting call rings when an agent frees up,
# timers' actions — and only that account's stream; keep-alive comments.
import sys, os, socket
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, Stream, provision

QUICK = """\
local P = {}
function P.route(call, agents, ctx)
  local best
  for _, a in ipairs(agents) do
    if not call.tried[a.id] and (not best or a.id < best.id) then best = a end
  end
  if not best then return { wait = 60 } end
  return { ring = best.id, timeout = 1 }
end
return P
"""

t = TAP()
d = t.owned(Daemon(conf={"stream_keepalive": 1, "stream_buffer": "4K"})).start()
acme = provision(d, agents=("alice",))
other = provision(d, account="globex", agents=("xavier",))

s = Stream(d, acme.auth)
t.cleanups.append(s.close)
t.is_(s.status, 200, "GET /v1/events: 200")
t.ok(s.headers.get("content-type", "").startswith("text/event-stream"), "... text/event-stream")
so = Stream(d, other.auth)
t.cleanups.append(so.close)

# -- a waiting call rings when the agent frees up ----------------------------------
r = acme.post("/v1/calls", {"call": "c1", "queue": "support", "caller": "+4930100001"})
t.is_([a["agent"] for a in r.actions("ring")], ["alice"], "c1 rings alice")
acme.post("/v1/calls/c1/ring_result", {"agent": "alice", "outcome": "answered"})
r = acme.post("/v1/calls", {"call": "c2", "queue": "support", "caller": "+4930100002"})
t.is_((r.status, [a["type"] for a in r.actions()]), (201, ["wait"]), "c2 waits: alice is busy")
r = acme.post("/v1/calls/c1/hangup")
t.is_([a.get("call") for a in r.actions()], ["c1"] * len(r.actions()),
      "the hangup's response carries only c1's actions")
ev = s.next_where(lambda e: e.get("type") == "ring")
t.ok(ev is not None, "the stream receives a ring")
ev = ev or {}
t.is_((ev.get("call"), ev.get("agent"), ev.get("account"), ev.get("uri")),
      ("c2", "alice", "acme", "sip:alice@pbx.example"), "... for c2 on alice")

# -- an agent coming back from a pause ------------------------------------------------
acme.post("/v1/calls/c2/ring_result", {"agent": "alice", "outcome": "answered"})
acme.post("/v1/calls/c2/hangup")
r = acme.post("/v1/agents/alice/status", {"status": "paused", "reason": "coffee"})
t.is_(r.status, 200, "alice pauses")
r = acme.post("/v1/calls", {"call": "c3", "queue": "support", "caller": "+4930100003"})
t.is_([a["type"] for a in r.actions()], ["wait"], "c3 waits")
r = acme.post("/v1/agents/alice/status", {"status": "available"})
t.ok(r.status == 200 and not r.actions("ring"), "the status response does not carry c3's ring", r)
t.ok(all(a.get("agent") == "alice" and a.get("type") == "agent" for a in r.actions()),
     "... only alice's own status change", r)
ev = s.next_where(lambda e: e.get("type") == "ring")
t.is_(ev and (ev.get("call"), ev.get("agent")), ("c3", "alice"), "the stream rings c3 on alice")
acme.post("/v1/calls/c3/abandon")

# -- actions from timers ----------------------------------------------------------------
r = acme.put("/v1/policies/quick", QUICK, headers={"Content-Type": "text/x-lua"})
acme.put("/v1/agents/bob", {"devices": {"softphone": "sip:bob@pbx.example"}, "status": "available"})
acme.put("/v1/queues/fast", {"policy": "quick", "members": [{"agent": "alice"}, {"agent": "bob"}]})
r = acme.post("/v1/calls", {"call": "c4", "queue": "fast", "caller": "+4930100004"})
t.is_([(a["agent"], a.get("timeout")) for a in r.actions("ring")], [("alice", 1)],
      "c4 rings alice for 1 s")
ev = s.next_where(lambda e: e.get("call") == "c4" and e.get("type") == "ring", timeout=8)
t.is_(ev and ev.get("agent"), "bob", "after the ring timeout the stream rings bob (from the timer)")
acme.post("/v1/calls/c4/abandon")

# -- isolation and keep-alives ---------------------------------------------------------
ev = so.next(timeout=1.5)
t.ok(ev is None, "the other account's stream saw none of it", ev)
t.ok(so.comment(timeout=5) is not None, "keep-alive comments arrive (stream_keepalive = 1)")

bad = Stream(d, "Basic Zm9vOmJhcg==")
t.is_(bad.status, 401, "a stream with bad credentials is 401")
bad.close()

# -- a subscriber that does not read is dropped -------------------------------------------
slow = socket.socket()
slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
slow.connect((d.host, d.port))
slow.sendall(("GET /v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n\r\n" % acme.auth).encode())
long_uri = "sip:" + "s" * 230 + "@pbx.example"
acme.put("/v1/agents/slowpoke", {"devices": {"softphone": long_uri}, "status": "paused"})
acme.put("/v1/queues/slowq", {"policy": "first", "members": [{"agent": "slowpoke"}]})
mark = len(d.lines)
c = d.conn()
dropped = None
for i in range(3000):
    acme.post("/v1/calls", {"call": "s%d" % i, "queue": "slowq", "caller": "+4930100009"}, conn=c)
    acme.post("/v1/agents/slowpoke/status", {"status": "available"}, conn=c)   # rings s<i> on the stream
    acme.post("/v1/calls/s%d/abandon" % i, conn=c)
    acme.post("/v1/agents/slowpoke/status", {"status": "paused"}, conn=c)
    if i % 10 == 9:
        dropped = d.wait_log(r"stream subscriber dropped: slow consumer", after=mark, timeout=0)
        if dropped:
            break
c.close()
t.ok(dropped is not None, "a subscriber that stops reading is dropped (after %d calls)" % (i + 1))
t.ok(dropped and "account=\"acme\"" in dropped and "queued_bytes=" in dropped, "... logged with the account", dropped)
t.ok(d.metric("switchboard_stream_dropped_total") == 1, "... and counted")
t.ok(s.next_where(lambda e: e.get("call") == "s0", timeout=5) is not None,
     "the subscriber that reads still gets everything")
slow.close()

# -- closing -------------------------------------------------------------------------
n_before = len(d.lines)
s.close()
line = d.wait_log(r'msg="stream closed"', after=n_before, timeout=5)
t.ok(line is not None, "the daemon notices a subscriber leaving")
t.is_(d.stop(), 0, "SIGTERM closes the remaining stream and exits 0")
t.ok(so.closed(timeout=5), "... the other stream saw the close")
t.done()
