#!/usr/bin/env python3
# A failed commit answers the change it could not store, and drops no answer
# held for a batch committed before it. The daemon (sync = group) runs under
# the synctrace.so shim. A change is committed and its sync held, so its
# answer waits on the connection; a refused event and an offer sent next on
# it are applied in the next batch, whose commit waits for that sync and
# then cannot write its pages (the shim fails the write, once). The shim
# holds the sync thread's report that its sync is done, so the daemon
# answers the failed batch first, as it does whenever the engine thread's
# report comes in first (a race it can lose or win). The change is answered
# 200 once the sync is reported, then the failed batch's first request (the
# refusal: none of a failed batch's answers stands, as each may have read
# what was never stored) 500 SB_ESTORE with "Connection: close", and the
# connection closes. The daemon used to throw away every answer held on the
# connection when a commit failed: the client got the error alone and never
# heard that the first change was made.
import os, shutil, socket, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synckit import SHIM, codes, raw_request, traced, until  # noqa: E402
from sbtest import TAP, agent_doc, provision, read_responses  # noqa: E402

t = TAP(deadline=120)
t.ok(os.path.exists(SHIM), "the shim is built (%s)" % SHIM)
tmp = tempfile.mkdtemp()
t.cleanups.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
HOLD, WFAIL, REPORT = (os.path.join(tmp, n) for n in ("hold", "wfail", "report"))
# No sweep: its commit or sync would be the one held or failed.
d, log = traced(t, conf={"sweep_interval": 0},
                env={"SB_SYNCHOLD": HOLD, "SB_WRITEFAIL_ONCE": WFAIL,
                     "SB_REPORTHOLD": REPORT})
acme = provision(d, agents=("alice",), ring=600)
auth = acme.auth.encode()
CALL = {"call": "c1", "queue": "support", "caller": "+4930100001"}


def req(method, path, body=None):
    return raw_request(auth, method, path, body)


s = socket.create_connection((d.host, d.port), timeout=30)
t.cleanups.append(s.close)
open(HOLD, "w").close()
open(REPORT, "w").close()
s.sendall(req("PUT", "/v1/agents/first", agent_doc("first")))
t.ok(until(lambda: os.path.exists(HOLD + ".held")), "a change committed, its sync held")
mark = len(d.lines)
open(WFAIL, "w").close()
# A refusal first (a hangup of a call that is not there), then the offer, read
# at once: one batch.
s.sendall(req("POST", "/v1/calls/nope/hangup", {}) + req("POST", "/v1/calls", CALL))
time.sleep(0.2)  # read and applied; its commit waits for the held sync
t.ok(os.path.exists(WFAIL), "... the next change on the connection is not committed while the "
     "sync is held")
os.unlink(HOLD)
t.ok(until(lambda: os.path.exists(REPORT + ".held")), "the sync is done, its report held")
t.ok(until(lambda: not os.path.exists(WFAIL)), "... the next change's commit failed to write")
t.ok(d.wait_log("events not stored", timeout=30, after=mark),
     "... the daemon has answered that batch (its commit failed, the log says)")
s.settimeout(0.3)
try:
    early = s.recv(65536)
except socket.timeout:
    early = None
t.is_(early, None, "nothing is sent while the first change's sync is held: its answer "
      "goes first, the error waits behind it", early)
s.settimeout(30)
os.unlink(REPORT)
got, rest = read_responses(s, 2, timeout=30)
t.is_(codes(got), [(200, None), (500, "SB_ESTORE")],
      "the change is answered as its sync had it, then the failed batch's first request, the "
      "refusal, with the error of the commit that failed (none of that batch's answers "
      "stands: each may have read what was never stored)", got)
t.is_(len(got) == 2 and got[1][1].get("connection"), "close",
      "... the error closes the connection", got)
t.ok(len(got) == 2 and b"may not have been made" in got[1][2],
     "... which says the change may not have been made", got[1:])
try:
    tail = rest + s.recv(65536)
except (socket.timeout, ConnectionResetError):
    tail = None
t.is_(tail, b"", "... and nothing follows it, the offer unanswered: the connection is closed",
      tail)
r = acme.get("/v1/agents/first")
t.is_(r.status, 200, "the first change stands, as its 200 said", r)
r = acme.get("/v1/calls/c1")
t.is_(r.status, 404, "the event was not applied", r)
r = acme.post("/v1/calls", CALL)
t.is_(r.status, 201, "the same event sent again is applied: storage works again", r)
t.is_(d.stop(), 0, "the daemon stops cleanly")
t.done()
