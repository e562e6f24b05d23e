#!/usr/bin/env python3
# A failed sync answers the requests it covered, and only those: every
# request a connection sent is answered, in order, with what became of it.
# The daemon (sync = group) runs under the synctrace.so shim. Two changes
# sent together are committed in one batch, whose sync the shim holds; the
# requests sent next on the same connection are read meanwhile, applied and
# committed (a change, an event, a read); then the held sync fails (once:
# the syncs after it work). Each of the two changes is answered
# 500 SB_ESTORE, and the requests after them as their own sync has it (200,
# 201, the read's document), on the connection, which stays open. The
# daemon used to answer the first change alone, drop the answers held
# behind it and close the connection: the client saw no answer to requests
# whose changes had been made.
import json, os, shutil, socket, sys, tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synckit import SHIM, raw_request, traced, until  # noqa: E402
from sbtest import TAP, agent_doc, provision, read_responses  # noqa: E402

t = TAP(deadline=120)
t.ok(os.path.exists(SHIM), "the shim is built (%s)" % SHIM)
tmp = tempfile.mkdtemp()
t.cleanups.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
HOLD, ONCE = os.path.join(tmp, "hold"), os.path.join(tmp, "once")
# No sweep: its sync would be the one held or failed.
d, log = traced(t, conf={"sweep_interval": 0},
                env={"SB_SYNCHOLD": HOLD, "SB_SYNCFAIL_ONCE": ONCE})
# Rings of 600 s: no timer fires (and commits) while the test runs.
acme = provision(d, agents=("alice",), ring=600)
auth = acme.auth.encode()


def req(method, path, body=None):
    return raw_request(auth, method, path, body)


def reads():
    """What the daemon read from its sockets, one entry a read (the trace's
    R records)."""
    with open(log, "rb") as f:
        raw = f.read()
    out, pos = [], 0
    while pos < len(raw):
        nl = raw.index(b"\n", pos)
        _, kind, _, n = raw[pos:nl].split()
        if kind == b"R":
            out.append(raw[nl + 1:nl + 1 + int(n)])
        pos = nl + 1 + int(n)
    return out


s = socket.create_connection((d.host, d.port), timeout=30)
t.cleanups.append(s.close)
open(HOLD, "w").close()
s.sendall(req("PUT", "/v1/agents/first", agent_doc("first")) +
          req("PUT", "/v1/agents/second", agent_doc("second")))
t.ok(until(lambda: os.path.exists(HOLD + ".held")), "two changes committed, their sync held")
t.ok(any(b"/v1/agents/first" in r and b"/v1/agents/second" in r for r in reads()),
     "... both read at once: one batch, one sync")
s.sendall(req("PUT", "/v1/agents/later", agent_doc("later")) +
          req("POST", "/v1/calls", {"call": "c1", "queue": "support", "caller": "+4930100001"}) +
          req("GET", "/v1/agents/later"))
# Read means taken: the loop goes on to apply it (its commit waits for the
# held sync to end) before it looks for the sync's report.
t.ok(until(lambda: any(b"/v1/agents/later" in r for r in reads())),
     "the requests sent next on the connection are read while that sync is held")
open(ONCE, "w").close()
os.unlink(HOLD)
got, _ = read_responses(s, 5, timeout=30)
codes = [(st, (json.loads(b or b"{}").get("error") or {}).get("code") if st and st >= 400
          else None) for st, _, b in got]
t.is_(codes, [(500, "SB_ESTORE"), (500, "SB_ESTORE"), (200, None), (201, None), (200, None)],
      "every request is answered, in order: the two changes whose sync failed 500 SB_ESTORE, "
      "the change, the event and the read after them as their own sync had it", got)
t.ok(not os.path.exists(ONCE), "... the injected failure was taken (by the held sync)")
t.ok(got[0][1] and all(h.get("connection") != "close" for _, h, _ in got),
     "... none of the answers closes the connection", [h for _, h, _ in got])
body = json.loads(got[4][2] or b"{}")
t.is_(body.get("id") or body.get("agent"), "later", "... the read answers what it read", got[4])
s.sendall(req("GET", "/v1/agents/first"))
(st, _, b), = read_responses(s, 1, timeout=30)[0]
t.is_(st, 200, "the connection serves the next request: the change whose sync failed stands "
      "(a later sync wrote the state whole)", b)
r = acme.get("/v1/calls/c1")
t.is_(r.status, 200, "the event after the failed sync was applied, as its 201 said", r)
m = d.admin("GET", "/metrics").body
fails = sum(float(line.split()[-1]) for line in m.splitlines()
            if line.startswith("switchboard_http_requests_total{") and 'code="500"' in line)
t.is_(fails, 2.0, "the metrics count the two answers the client got as 500s",
      [line for line in m.splitlines() if line.startswith("switchboard_http_requests_total{")])
t.is_(d.stop(), 0, "the daemon stops cleanly")
t.done()
