#!/usr/bin/env python3
# GET /v1/events: actions that do not answer the request that caused them
# reach the account's stream — a waiting call rings when an agent frees up,
# timers' actions — and only that account's stream; a wait is in no stream
# and only in the response of the request that brought the call to its
# queue; keep-alive comments.
import sys, os, socket, time, json
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, Stream, Account, provision, ROOT, library_env, QUICK_POLICY


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

# -- provisioning that frees an agent: its rings go to the stream --------------------
# PUT of an agent, a queue or a member answers with its document (or
# {"actions":[]}); a waiting call that can now ring is on the stream, not in it.
def waiting_then(call, change):
    acme.post("/v1/agents/alice/status", {"status": "paused", "reason": "setup"})
    r = acme.post("/v1/calls", {"call": call, "queue": "support", "caller": "+4930100005"})
    assert [a["type"] for a in r.actions()] == ["wait"], r
    r = change()
    ev = s.next_where(lambda e: e.get("call") == call and e.get("type") == "ring", timeout=3)
    acme.post("/v1/calls/%s/abandon" % call)
    return r, ev


def ready_alice():
    return acme.put("/v1/agents/alice", {"devices": {"softphone": "sip:alice@pbx.example"},
                                         "status": "available"})


r, ev = waiting_then("p1", ready_alice)
t.ok(r.status == 200 and "actions" not in (r.json or {}), "PUT of an agent that frees it: its document", r)
t.is_(ev and ev.get("agent"), "alice", "... and the waiting call's ring is on the stream")
acme.put("/v1/agents/carol", {"devices": {"softphone": "sip:carol@pbx.example"}, "status": "available"})
r, ev = waiting_then("p2", lambda: acme.put("/v1/queues/support/members/carol", {}))
t.ok(r.status == 200 and r.json == {"actions": []}, "PUT of a member who is free: {\"actions\":[]}", r)
t.is_(ev and ev.get("agent"), "carol", "... and the ring is on the stream")
acme.delete("/v1/queues/support/members/carol")
r, ev = waiting_then("p3", lambda: acme.put("/v1/queues/support", {
    "policy": "first", "ring_timeout": 20, "members": [{"agent": "alice"}, {"agent": "carol"}]}))
t.ok(r.status == 200 and "actions" not in (r.json or {}), "PUT of a queue adding a free member: its document", r)
t.is_(ev and ev.get("agent"), "carol", "... and the ring is on the stream")
acme.put("/v1/queues/support", {"policy": "first", "ring_timeout": 20, "members": [{"agent": "alice"}]})
acme.delete("/v1/agents/carol")
acme.post("/v1/agents/alice/status", {"status": "available"})

# -- actions from timers ----------------------------------------------------------------
r = acme.put("/v1/policies/quick", QUICK_POLICY, headers={"Content-Type": "text/x-lua"})
acme.put("/v1/agents/bob", {"devices": {"softphone": "sip:bob@pbx.example"}, "status": "available"})
acme.put("/v1/queues/fast", {"policy": "quick", "members": [{"agent": "alice"}, {"agent": "bob"}]})
r = acme.post("/v1/calls", {"call": "c4", "queue": "fast", "caller": "+4930100004"})
t.is_([(a["agent"], a.get("timeout")) for a in r.actions("ring")], [("alice", 1)],
      "c4 rings alice for 1 s")
ev = s.next_where(lambda e: e.get("call") == "c4" and e.get("type") == "ring", timeout=8)
t.is_(ev and ev.get("agent"), "bob", "after the ring timeout the stream rings bob (from the timer)")
acme.post("/v1/calls/c4/abandon")

# -- a wait only in the response of the request that brought the call (API.md) ---------
acme.post("/v1/agents/bob/status", {"status": "paused"})
r = acme.post("/v1/calls", {"call": "c5", "queue": "fast", "caller": "+4930100005"})
t.is_([(a["type"], a.get("agent")) for a in r.actions()], [("ring", "alice")], "c5 rings alice")
r = acme.post("/v1/calls/c5/ring_result", {"agent": "alice", "outcome": "no_answer"})
t.is_((r.status, r.json), (200, {"actions": []}),
      "no_answer, and c5 waits again (alice rang already): {\"actions\":[]}, no wait")
t.is_(acme.get("/v1/calls/c5").json.get("state"), "waiting", "... c5 is waiting")
acme.post("/v1/calls/c5/abandon")
r = acme.post("/v1/calls", {"call": "c6", "queue": "fast", "caller": "+4930100006"})
t.is_([(a["type"], a.get("agent")) for a in r.actions()], [("ring", "alice")], "c6 rings alice for 1 s")
seen, end = [], time.monotonic() + 3
while time.monotonic() < end:
    ev = s.next(timeout=max(0.0, end - time.monotonic()))
    if ev and ev.get("call") == "c6":
        seen.append((ev["type"], ev.get("agent")))
t.is_((seen, acme.get("/v1/calls/c6").json.get("state")), ([("cancel", "alice")], "waiting"),
      "its ring timeout puts only the cancel on the stream, and c6 waits with no wait sent")
acme.post("/v1/calls/c6/abandon")
acme.post("/v1/agents/bob/status", {"status": "available"})

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
t.ok(dropped and "peer=127.0.0.1:%d " % slow.getsockname()[1] in dropped,
     "... and it is the one that stopped reading", dropped)
t.ok(d.metric("switchboard_stream_dropped_total") == 1, "... and counted")
t.ok(s.next_where(lambda e: e.get("call") == "s0", timeout=5) is not None,
     "the subscriber that reads still gets everything")
slow.close()

# -- a stream lives as long as its credentials ----------------------------------------
# A key revoked through this daemon closes its streams at once; one revoked by
# another process on the data directory, within the credential cache's 5 s and
# the housekeeping second; an account deleted and made again under its id
# never shows the new one's events on the old stream.
import subprocess
kid = d.admin("GET", "/v1/accounts/acme/keys").json["keys"][0]["key_id"]
k2 = d.admin("POST", "/v1/accounts/acme/keys").json
acme2 = Account(d, "acme", k2["key"])
rv = Stream(d, acme2.auth)
t.is_(rv.status, 200, "a stream opened with a second key")
mark = len(d.lines)
t.is_(d.admin("DELETE", "/v1/accounts/acme/keys/" + k2["key_id"]).status, 200, "that key revoked here")
t.ok(rv.closed(timeout=3), "... its stream closes at once")
t.ok(d.wait_log(r"stream closed: its credentials no longer verify", after=mark, timeout=1),
     "... saying why")
k3 = d.admin("POST", "/v1/accounts/acme/keys").json
ext = Stream(d, Account(d, "acme", k3["key"]).auth)
t.is_(ext.status, 200, "a stream opened with a third key")
lib = os.path.join(os.environ.get("SB_BUILD", "build"), "libswitchboard.so")
code = ("import sys; sys.path.insert(0, %r); import switchboard as s; "
        "e = s.Engine(data_dir=%r, library=%r); e.apikey_revoke('acme', %r); e.close()"
        % (os.path.join(ROOT, "bindings", "python"), d.data_dir, os.path.abspath(lib), k3["key_id"]))
r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                   env=library_env(os.path.abspath(lib)))
t.is_(r.returncode, 0, "that key revoked by another process on the data directory", r.stderr)
t.ok(ext.closed(timeout=9), "... its stream closes within the cache's 5 s")

# -- streams per account: stream_max_per_account ----------------------------------------
# Streams are kept open through keep-alives, past idle_timeout: without a cap
# one account's streams could take all of max_connections.
dc = t.owned(Daemon(conf={"stream_max_per_account": 3})).start()
ca = provision(dc, agents=("alice",))
cg = provision(dc, account="globex", agents=("xavier",))
mine = [Stream(dc, ca.auth) for _ in range(3)]
t.is_([x.status for x in mine], [200] * 3, "stream_max_per_account 3: three streams of acme open")
mark = len(dc.lines)
over = Stream(dc, ca.auth)
err = json.loads(over.body).get("error", {}) if over.status != 200 else {}
t.is_((over.status, err.get("code"), err.get("field")), (429, "SB_ELIMIT", None),
      "... a fourth: 429 SB_ELIMIT")
t.ok("3 event streams open" in err.get("message", "") and
     "raise stream_max_per_account" in err.get("message", ""),
     "... the message says the limit and how to raise it", err)
t.ok(over.closed(timeout=3) if over.status == 200 else True, "... and no stream is opened")
t.ok(dc.wait_log(r'level=warn msg="stream refused: the account has stream_max_per_account open" '
                 r'account="acme" open=3 stream_max_per_account=3', after=mark, timeout=3),
     "... logged at warn")
t.is_(Stream(dc, ca.auth).status, 429, "a fifth: 429 as well")
t.is_(dc.metric("switchboard_stream_refused_total"), 2.0,
      "switchboard_stream_refused_total counts both")
other_s = Stream(dc, cg.auth)
t.is_(other_s.status, 200, "another account opens its stream meanwhile")
r = dc.request("HEAD", "/v1/events", auth=ca.auth)
t.is_(r.status, 429, "HEAD /v1/events answers as the GET would: 429")
mark = len(dc.lines)
mine.pop().close()
t.ok(dc.wait_log(r'msg="stream closed"', after=mark, timeout=5), "one of acme's streams closed")
again = Stream(dc, ca.auth)
t.is_(again.status, 200, "... and acme opens one again")
for x in mine + [again, other_s]:
    x.close()
t.is_(dc.stop(), 0, "that daemon stops")

# -- closing -------------------------------------------------------------------------
n_before = len(d.lines)
s.close()
line = d.wait_log(r'msg="stream closed"', after=n_before, timeout=5)
t.ok(line is not None, "the daemon notices a subscriber leaving")
t.is_(d.stop(), 0, "SIGTERM closes the remaining stream and exits 0")
t.ok(so.closed(timeout=5), "... the other stream saw the close")
t.done()
