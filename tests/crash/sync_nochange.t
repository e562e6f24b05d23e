#!/usr/bin/env python3
# A failed sync answers with its error the requests that changed something,
# and only those: a PUT, POST or DELETE that changed nothing keeps its own
# answer. The daemon (sync = group) runs under the synctrace.so shim. One
# change and, behind it on the same connection, requests that change
# nothing are sent together, read in one turn and covered by one sync,
# which the shim holds, then fails once: an agent's status set to the one
# it has (twice: a repeat is as idempotent), an offer of a call that
# exists (409), a hangup of one that does not (404), deletes of an agent
# and a hold that do not exist (404) and a policy history forgotten when it
# has nothing to forget (200, "forgotten": 0). The change is answered 500
# SB_ESTORE, each of the others as it was; the metrics count one 500. The
# daemon used to take every success of a method other than GET for a
# change, and answered the no-op status changes and the forgetting with
# the sync's error too, as if something they did could have been lost.
import json, os, socket, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synckit import answered_500, codes, held_once, raw_request, reads, until  # noqa: E402
from sbtest import TAP, agent_doc, read_responses  # noqa: E402

t = TAP(deadline=120)
d, log, acme, HOLD, ONCE = held_once(t, agents=("alice", "bob"))
auth = acme.auth.encode()
offer = {"call": "c1", "queue": "support", "caller": "+4930100001"}
r = acme.post("/v1/calls", offer)
t.is_(r.status, 201, "a call is offered first (it rings alice; bob stays available)", r)


def req(method, path, body=None):
    return raw_request(auth, method, path, body)


s = socket.create_connection((d.host, d.port), timeout=30)
t.cleanups.append(s.close)
open(HOLD, "w").close()
# The events among them are applied before each request of another kind
# after them, on the loop, in that turn: the last is not an event, so
# every answer is in the batch whose sync is held.
sent = [
    ("PUT", "/v1/agents/first", agent_doc("first"), (500, "SB_ESTORE")),
    ("POST", "/v1/agents/bob/status", {"status": "available"}, (200, None)),
    ("POST", "/v1/calls", offer, (409, "SB_EEXIST")),
    ("POST", "/v1/calls/nope/hangup", {}, (404, "SB_ENOTFOUND")),
    ("POST", "/v1/agents/bob/status", {"status": "available"}, (200, None)),
    ("DELETE", "/v1/agents/nobody", None, (404, "SB_ENOTFOUND")),
    ("DELETE", "/v1/policy-versions/first", None, (200, None)),
    ("DELETE", "/v1/holds/nohold", None, (404, "SB_ENOTFOUND")),
]
s.sendall(b"".join(req(m, p, b) for m, p, b, _ in sent))
t.ok(until(lambda: os.path.exists(HOLD + ".held")), "the change committed, its sync held")
t.ok(any(b"/v1/agents/first" in r and b"/v1/holds/nohold" in r for r in reads(log)),
     "... every request read at once: one batch, one sync")
open(ONCE, "w").close()
os.unlink(HOLD)
got, _ = read_responses(s, len(sent), timeout=30)
t.is_(codes(got), [want for _, _, _, want in sent],
      "the change whose sync failed is answered 500 SB_ESTORE; each request after it that "
      "changed nothing keeps its own answer, the no-op successes and the refusals alike", got)
t.ok(not os.path.exists(ONCE), "... the injected failure was taken (by the held sync)")
t.ok(got[0][1] and all(h.get("connection") != "close" for _, h, _ in got),
     "... none of the answers closes the connection", [h for _, h, _ in got])
t.is_([json.loads(got[i][2] or b"{}") for i in (1, 4)], [{"actions": []}] * 2,
      "... the status changes answer that there is nothing to do", got[1])
t.is_(json.loads(got[6][2] or b"{}").get("forgotten"), 0,
      "... the history forgotten had nothing in it", got[6])
# A change after the failure: its sync writes the state whole (until one
# does, the daemon cannot say that what it committed is on disk).
s.sendall(req("PUT", "/v1/agents/second", agent_doc("second")) + req("GET", "/v1/agents/first"))
got = read_responses(s, 2, timeout=30)[0]
t.is_([st for st, _, _ in got], [200, 200],
      "the connection serves the next requests: a change, answered once synced, and a read "
      "that finds the change whose sync failed standing", got)
r = acme.get("/v1/agents/bob")
t.is_((r.json or {}).get("status"), "available", "bob's status is as it was", r)
fails, counts = answered_500(d)
t.is_(fails, 1.0, "the metrics count the one 500 the client got", counts)
t.is_(d.stop(), 0, "the daemon stops cleanly")
t.done()
