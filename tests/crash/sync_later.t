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
import json, os, socket, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synckit import answered_500, codes, held_once, raw_request, reads, until  # noqa: E402
from sbtest import TAP, agent_doc, read_responses  # noqa: E402

t = TAP(deadline=120)
d, log, acme, HOLD, ONCE = held_once(t)
auth = acme.auth.encode()


def req(method, path, body=None):
    return raw_request(auth, method, path, body)


s = socket.create_connection((d.host, d.port), timeout=30)
t.cleanups.append(s.close)
open(HOLD, "w").close()
s.sendall(req("PUT", "/v1/agents/first", agent_doc("first")) +
          req("PUT", "/v1/agents/second", agent_doc("second")))
t.ok(until(lambda: os.path.exists(HOLD + ".held")), "two changes committed, their sync held")
t.ok(any(b"/v1/agents/first" in r and b"/v1/agents/second" in r for r in reads(log)),
     "... both read at once: one batch, one sync")
s.sendall(req("PUT", "/v1/agents/later", agent_doc("later")) +
          req("POST", "/v1/calls", {"call": "c1", "queue": "support", "caller": "+4930100001"}) +
          req("GET", "/v1/agents/later"))
# Read means taken: the loop goes on to apply it (its commit waits for the
# held sync to end) before it looks for the sync's report.
t.ok(until(lambda: any(b"/v1/agents/later" in r for r in reads(log))),
     "the requests sent next on the connection are read while that sync is held")
open(ONCE, "w").close()
os.unlink(HOLD)
got, _ = read_responses(s, 5, timeout=30)
t.is_(codes(got),
      [(500, "SB_ESTORE"), (500, "SB_ESTORE"), (200, None), (201, None), (200, None)],
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
fails, counts = answered_500(d)
t.is_(fails, 2.0, "the metrics count the two answers the client got as 500s", counts)
t.is_(d.stop(), 0, "the daemon stops cleanly")
t.done()
