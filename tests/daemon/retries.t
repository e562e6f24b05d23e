#!/usr/bin/env python3
# A gateway retrying its events after a lost answer (a timeout, a broken
# connection), as API.md's "Retrying after a timeout" says: each retry is
# refused with its 409 and field and changes nothing (the call, the agents
# and the stream as the first event left them); the lost answer's actions
# are read back from GET /v1/calls/{id} and GET /v1/calls, each ring as its
# ring action gave it (agent, device, uri, attempt), and the attempt read
# there is the one the ring_result takes. The two retries that do change
# the state (an offer after its call ended, a transfer to a queue) are told
# apart by reading the call first.
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, Stream, provision  # noqa: E402

t = TAP()
d = t.owned(Daemon()).start()
acme = provision(d, agents=("alice", "bob", "carol"))
s = Stream(d, acme.auth)


def ring_fields(a):
    return {k: a[k] for k in ("agent", "device", "uri", "attempt")}


def state():
    """What a retry must leave as it was: the calls and the agents."""
    calls = acme.get("/v1/calls").json
    agents = [(a["id"], a["status"], a.get("call")) for a in acme.get("/v1/agents").json["agents"]]
    return calls, agents


def retried(path, body, want, name):
    before = state()
    r = acme.post(path, body)
    t.is_((r.status, r.code, r.field), want, name + ": refused", r)
    t.is_(state(), before, name + ": nothing changed")
    return r


r = acme.post("/v1/calls", {"call": "c1", "queue": "support", "caller": "+442079460001"})
t.is_(r.status, 201, "offer c1", r)
ring = r.actions("ring")[0]
retried("/v1/calls", {"call": "c1", "queue": "support", "caller": "+442079460001"},
        (409, "SB_EEXIST", "call"), "offer retried while its call lives")

# The offer's answer lost: the ring read back is the ring the answer had.
r = acme.get("/v1/calls/c1")
t.is_(r.json["ringing"], [ring_fields(ring)],
      "GET /v1/calls/c1: the ring as its action gave it (agent, device, uri, attempt)", r)
r = acme.get("/v1/calls")
t.is_(r.json["calls"][0]["ringing"], [ring_fields(ring)], "GET /v1/calls: the same", r)

r = acme.post("/v1/calls/c1/ring_result",
              {"agent": "alice", "outcome": "busy",
               "attempt": acme.get("/v1/calls/c1").json["ringing"][0]["attempt"]})
t.is_(r.status, 200, "the ring_result with the attempt read back is taken", r)
ring2 = r.actions("ring")[0]
t.is_((ring2["agent"], ring2["attempt"]), ("bob", 2), "bob rings as attempt 2")
retried("/v1/calls/c1/ring_result", {"agent": "alice", "outcome": "busy", "attempt": 1},
        (409, "SB_ESTATE", "attempt"), "ring_result retried with its attempt")
retried("/v1/calls/c1/ring_result", {"agent": "alice", "outcome": "busy"},
        (409, "SB_ESTATE", "agent"), "ring_result retried without one")
t.is_(acme.get("/v1/calls/c1").json["ringing"], [ring_fields(ring2)],
      "the ring read back is bob's, attempt 2")

r = acme.post("/v1/calls/c1/ring_result", {"agent": "bob", "outcome": "answered", "attempt": 2})
t.is_(r.actions()[0]["type"], "connect", "bob answers", r)
retried("/v1/calls/c1/ring_result", {"agent": "bob", "outcome": "answered", "attempt": 2},
        (409, "SB_ESTATE", "attempt"), "the answer retried")
r = acme.get("/v1/calls/c1")
t.is_((r.json["state"], r.json.get("agent"), r.json.get("device"), r.json["ringing"]),
      ("connected", "bob", "softphone", []), "read back: connected to bob, nobody ringing", r)

r = acme.post("/v1/calls/c1/transfer", {"agent": "carol"})
t.is_([a["type"] for a in r.actions()], ["ring"], "a blind transfer to carol rings her", r)
xring = r.actions()[0]
retried("/v1/calls/c1/transfer", {"agent": "carol"}, (409, "SB_ESTATE", "agent"),
        "the transfer to carol retried")
t.is_(acme.get("/v1/calls/c1").json["ringing"], [ring_fields(xring)],
      "the transfer's ring read back", xring)

r = acme.post("/v1/calls/c1/hangup", {"by": "caller"})
t.is_([a["type"] for a in r.actions()], ["cancel", "end"], "hangup", r)
retried("/v1/calls/c1/hangup", {"by": "caller"}, (409, "SB_ESTATE", "call"), "hangup retried")
retried("/v1/calls/c1/abandon", None, (409, "SB_ESTATE", "call"), "abandon after the end")
r = acme.post("/v1/agents/alice/status", {"status": "paused"})
before = state()
r2 = acme.post("/v1/agents/alice/status", {"status": "paused"})
t.is_((r.status, r2.status, r2.json, state()), (200, 200, {"actions": []}, before),
      "an agent status retried: 200, nothing changed")

# Read the call first: an offer whose call has ended, or was never offered.
r = acme.get("/v1/calls/c1")
t.is_((r.status, r.json["state"]), (200, "ended"), "an ended call reads as ended: not offered again")
t.is_(acme.get("/v1/calls/c9").status, 404, "a call never offered reads 404: offer it")

ev = s.rest(0.5)
t.is_([e for e in ev if e.get("call") == "c1"], [],
      "no retry sent anything to the stream")
t.done()
