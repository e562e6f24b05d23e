#!/usr/bin/env python3
# The event stream across gaps: actions published while an account has no
# subscriber wait for the next one (after a reconnect; timers that fell due
# while the daemon was down, fired at its start); SIGTERM stops the timers
# and keeps the streams open until the requests in flight are answered, so
# the actions they cause go out; a subscriber whose connection accepts
# nothing for idle_timeout is dropped, logged and counted.
import sys, os, signal, socket, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, Stream, provision, until, QUICK_POLICY

# QUICK_POLICY's first ring of a call lasts 1 s, the next ones 60 s: a call
# whose first ring timed out rests ringing its second agent, so what a test
# reads after that timeout stays as it is however long it takes to look.
FIRST_QUICK = QUICK_POLICY.replace("timeout = 1", "timeout = next(call.tried) and 60 or 1")


t = TAP(deadline=120)
d = t.owned(Daemon(conf={"stream_keepalive": 0, "shutdown_timeout": 5})).start()
acme = provision(d, agents=("alice", "bob"))
acme.put("/v1/policies/quick", FIRST_QUICK, headers={"Content-Type": "text/x-lua"})
acme.put("/v1/queues/fast", {"policy": "quick", "members": [{"agent": "alice"}, {"agent": "bob"}]})


def rang(r):
    return [a["agent"] for a in r.actions("ring")]


# -- nobody listening: the actions wait for the next subscriber ------------------------
s = Stream(d, acme.auth)
r = acme.post("/v1/calls", {"call": "g1", "queue": "fast", "caller": "+4930100001"})
t.is_(rang(r), ["alice"], "g1 rings alice for 1 s")
s.close()
# the ring times out with no stream open: cancel alice, ring bob (for 60 s)
until(lambda: d.metric("switchboard_stream_backlog_actions") == 2.0)
t.is_(d.metric("switchboard_stream_backlog_actions"), 2.0,
      "switchboard_stream_backlog_actions: the two wait for a subscriber")
s = Stream(d, acme.auth)
t.cleanups.append(s.close)
got = [(e.get("type"), e.get("agent")) for e in (s.next(timeout=3), s.next(timeout=3)) if e]
t.is_(got, [("cancel", "alice"), ("ring", "bob")],
      "a subscriber connecting after a gap gets what was published meanwhile, in order")
acme.post("/v1/calls/g1/abandon")
t.ok(s.next(timeout=1.5) is None, "... once: nothing else follows")
t.is_(d.metric("switchboard_stream_backlog_actions"), 0.0, "... and none waits any more")
t.ok(d.wait_log(r'msg="stream subscribed".* backlog=2', timeout=2) is not None,
     "the subscription logs how many waiting actions it took")
s.close()

# -- an account deleted with a backlog: an account made again under its id gets none of it
gx = provision(d, account="globex", agents=("xavier", "yuri"))
gx.put("/v1/policies/quick", FIRST_QUICK, headers={"Content-Type": "text/x-lua"})
gx.put("/v1/queues/fast", {"policy": "quick", "members": [{"agent": "xavier"}, {"agent": "yuri"}]})
r = gx.post("/v1/calls", {"call": "x1", "queue": "fast", "caller": "+4930100009"})
t.is_(rang(r), ["xavier"], "globex: x1 rings xavier for 1 s, nobody subscribed")
# its ring times out: cancel xavier, ring yuri, kept for a subscriber
t.ok(until(lambda: d.metric("switchboard_stream_backlog_actions") == 2.0),
     "globex: the ring's timeout and the next ring wait for a subscriber")
gx.post("/v1/calls/x1/abandon")
t.is_(d.admin("DELETE", "/v1/accounts/globex").status, 200, "globex deleted with that backlog")
gx = provision(d, account="globex", agents=("xavier",))
s = Stream(d, gx.auth)
ev = s.next(timeout=1.5)
t.ok(ev is None, "the new globex's first subscriber gets nothing of the old one's", ev)
s.close()

# -- timers that fell due while the daemon was down -------------------------------------
r = acme.post("/v1/calls", {"call": "g2", "queue": "fast", "caller": "+4930100002"})
t.is_(rang(r), ["alice"], "g2 rings alice for 1 s")
t.is_(d.stop(), 0, "the daemon stops (SIGTERM)")
time.sleep(1.5)
d.start()
time.sleep(0.5)  # the overdue timer fires in the new daemon's first turn, before any subscriber
s = Stream(d, acme.auth)
t.cleanups.append(s.close)
ev = s.next_where(lambda e: e.get("call") == "g2" and e.get("type") == "ring", timeout=3)
t.is_(ev and ev.get("agent"), "bob", "the ring the restart's first tick made reaches the first subscriber")
acme.post("/v1/calls/g2/abandon")

# -- SIGTERM: in-flight requests' actions go out, timers wait ---------------------------
acme.put("/v1/agents/carol", {"devices": {"softphone": "sip:carol@pbx.example"}, "status": "available"})
acme.put("/v1/queues/fast", {"policy": "quick", "members": [{"agent": "alice"}, {"agent": "bob"},
                                                            {"agent": "carol"}]})
r = acme.post("/v1/calls", {"call": "g3", "queue": "support", "caller": "+4930100003"})
t.is_(rang(r), ["alice"], "g3 rings alice (20 s)")
acme.post("/v1/calls/g3/ring_result", {"agent": "alice", "outcome": "answered"})
r = acme.post("/v1/calls", {"call": "g4", "queue": "support", "caller": "+4930100004"})
t.is_(rang(r), ["bob"], "g4 rings bob")
acme.post("/v1/calls/g4/ring_result", {"agent": "bob", "outcome": "answered"})
r = acme.post("/v1/calls", {"call": "g5", "queue": "support", "caller": "+4930100005"})
t.is_([a["type"] for a in r.actions()], ["wait"], "g5 waits: both its agents talk")
r = acme.post("/v1/calls", {"call": "g6", "queue": "fast", "caller": "+4930100006"})
t.is_(rang(r), ["carol"], "g6 rings carol for 1 s")
mark = len(d.lines)
busy = socket.create_connection((d.host, d.port))
busy.sendall(("POST /v1/calls/g3/hangup HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n" % acme.auth).encode())
# the daemon holds the connection (accepted: what it has not read yet keeps it in flight)
d.wait_log(r'msg="connection accepted" .*peer=%s:%d' % busy.getsockname(), after=mark, timeout=30)
mark = len(d.lines)
d.signal(signal.SIGTERM)
t.ok(d.wait_log(r'msg="shutting down', after=mark, timeout=5) is not None, "SIGTERM")
time.sleep(1.5)  # g6's ring times out during the drain
busy.sendall(b"Content-Length: 0\r\n\r\n")
busy.settimeout(5)
t.ok(b" 200 " in busy.recv(65536).split(b"\r\n")[0] + b" ", "the hangup still arriving is answered")
ev = s.next_where(lambda e: e.get("call") == "g5", timeout=5)
t.is_(ev and (ev.get("type"), ev.get("agent")), ("ring", "alice"),
      "... and the ring it caused for g5 reaches the stream before it closes")
t.ok(s.closed(timeout=5), "then the stream closes")
t.is_(d.wait(10), 0, "the daemon exits 0")
t.ok(not any('msg="tick"' in l for l in d.lines[mark:]), "no timer fired during the drain")
d.start()
s = Stream(d, acme.auth)
t.cleanups.append(s.close)
ev = s.next_where(lambda e: e.get("call") == "g6", timeout=3)
t.is_(ev and (ev.get("type"), ev.get("agent")), ("cancel", "carol"),
      "g6's ring timeout fires at the next start, and its cancel reaches the first subscriber")
d.stop()

# -- a subscriber that accepts nothing for idle_timeout ---------------------------------
# The kernel's buffers (SO_SNDBUF follows stream_buffer) fill first; what
# follows waits unsent, under stream_buffer, and nothing moves for 2 s.
d2 = t.owned(Daemon(conf={"stream_keepalive": 0, "idle_timeout": 2, "stream_buffer": "16K"})).start()
ac = provision(d2, agents=("alice",))
stall = socket.create_connection((d2.host, d2.port))
stall.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
stall.sendall(("GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n" % ac.auth).encode())
time.sleep(0.3)
mark = len(d2.lines)
ac.post("/v1/calls", {"call": "f0", "queue": "support", "caller": "+4930100007"})
ac.post("/v1/calls/f0/ring_result", {"agent": "alice", "outcome": "answered"})
sent = 0
for i in range(1, 400):  # each hangup rings the call waiting behind it: one event on the stream
    ac.post("/v1/calls", {"call": "f%d" % i, "queue": "support", "caller": "+4930100007"})
    ac.post("/v1/calls/f%d/hangup" % (i - 1))
    ac.post("/v1/calls/f%d/ring_result" % i, {"agent": "alice", "outcome": "answered"})
    sent += 1
    if sent >= 150 or d2.wait_log(r"stream subscriber dropped", after=mark, timeout=0):
        break
line = d2.wait_log(r"stream subscriber dropped", after=mark, timeout=6)
t.ok(line is not None and "stalled" in line and "idle_timeout=2" in line,
     "a subscriber whose connection accepts nothing is dropped and logged as stalled", line)
t.ok(d2.metric("switchboard_stream_dropped_total") == 1, "... and counted")
stall.close()
t.is_(d2.stop(), 0, "stops cleanly")

# -- a backlog past stream_buffer: the oldest go, logged and counted --------------------
d3 = t.owned(Daemon(conf={"stream_keepalive": 0, "stream_buffer": "4K"})).start()
ac = provision(d3, agents=("alice",))
mark = len(d3.lines)
ac.post("/v1/calls", {"call": "b0", "queue": "support", "caller": "+4930100011"})
ac.post("/v1/calls/b0/ring_result", {"agent": "alice", "outcome": "answered"})
N = 60  # rings of about 150 bytes each, nobody subscribed: past 4K
for i in range(1, N + 1):
    ac.post("/v1/calls", {"call": "b%d" % i, "queue": "support", "caller": "+4930100011"})
    ac.post("/v1/calls/b%d/hangup" % (i - 1))
    ac.post("/v1/calls/b%d/ring_result" % i, {"agent": "alice", "outcome": "answered"})
line = d3.wait_log(r"stream backlog full: oldest actions dropped", after=mark, timeout=3)
t.ok(line is not None and 'account="acme"' in line, "a backlog past stream_buffer logs it", line)
dropped = d3.metric("switchboard_stream_backlog_dropped_total")
t.ok(dropped and dropped > 0, "... and counts what it dropped (%s)" % dropped)
s3 = Stream(d3, ac.auth)
got = []
while True:
    ev = s3.next(timeout=1)
    if ev is None:
        break
    got.append(ev.get("call"))
t.ok(got and got[-1] == "b%d" % N and "b1" not in got and len(got) + dropped == N,
     "the next subscriber gets the newest, in order; with the dropped, every one (%d + %s)"
     % (len(got), dropped))
s3.close()
t.is_(d3.stop(), 0, "stops cleanly")
t.done()
