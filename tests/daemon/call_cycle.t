#!/usr/bin/env python3
# A call's whole life over HTTP, with the actions the gateway gets back:
# offer -> ring -> answered -> connect -> hangup -> end; a ring that is not
# answered rings the next agent; abandon; transfer to another queue.
import sys, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision

t = TAP()
d = t.owned(Daemon()).start()
acme = provision(d, agents=("alice", "bob"))


def one(r, kind):
    acts = r.actions(kind)
    return acts[0] if len(acts) == 1 else None


# -- offer -> ring -------------------------------------------------------------
r = acme.post("/v1/calls", {"call": "c1", "queue": "support", "caller": "+4930123456",
                            "called": "+4930999000", "attrs": {"language": "de"}})
t.is_(r.status, 201, "POST /v1/calls offers c1")
t.is_(r.headers.get("location"), "/v1/calls/c1", "... Location: /v1/calls/c1")
ring = one(r, "ring")
t.ok(ring is not None, "... answered with one ring action", r)
ring = ring or {}
t.is_((ring.get("call"), ring.get("agent"), ring.get("device"), ring.get("uri")),
      ("c1", "alice", "softphone", "sip:alice@pbx.example"), "... ring alice on her softphone")
t.is_((ring.get("queue"), ring.get("timeout"), ring.get("account")), ("support", 20, "acme"),
      "... in queue support for 20 s")
t.is_(acme.get("/v1/agents/alice").json.get("status"), "reserved", "alice is reserved")
r = acme.get("/v1/calls/c1")
t.is_((r.status, r.json.get("state")), (200, "ringing"), "GET /v1/calls/c1: ringing")
r = acme.post("/v1/calls", {"call": "c1", "queue": "support", "caller": "+4930123456"})
t.is_((r.status, r.code), (409, "SB_EEXIST"), "offering c1 again is 409 SB_EEXIST")

# -- answered -> connect ---------------------------------------------------------
r = acme.post("/v1/calls/c1/ring_result", {"agent": "alice", "outcome": "answered"})
t.is_(r.status, 200, "POST /v1/calls/c1/ring_result answered")
conn = one(r, "connect")
t.ok(conn and conn.get("call") == "c1" and conn.get("agent") == "alice",
     "... answered with connect c1 to alice", r)
r = acme.get("/v1/calls/c1")
t.is_((r.json.get("state"), r.json.get("agent")), ("connected", "alice"), "c1 is connected to alice")
t.ok(len(r.json.get("trace", [])) >= 1 and r.json["trace"][0].get("policy") == "first",
     "... with a decision trace naming the policy", r)
t.is_(acme.get("/v1/agents/alice").json.get("status"), "on_call", "alice is on the call")
r = acme.post("/v1/calls/c1/ring_result", {"agent": "alice", "outcome": "answered"})
t.is_((r.status, r.code), (409, "SB_ESTATE"), "a second answer is 409 SB_ESTATE")

# -- hangup -> end ---------------------------------------------------------------
r = acme.post("/v1/calls/c1/hangup")
t.is_(r.status, 200, "POST /v1/calls/c1/hangup (no body)")
end = one(r, "end")
t.ok(end and end.get("call") == "c1", "... answered with end c1", r)
t.ok(not [a for a in r.actions() if a.get("call") != "c1"],
     "... and only actions for c1 (the rest go to the stream)", r)
r = acme.get("/v1/calls/c1")
t.is_(r.status, 200, "GET /v1/calls/c1 after the end reads its record")
t.is_(acme.get("/v1/agents/alice").json.get("status"), "available", "alice is free again (no wrap-up)")
r = acme.post("/v1/calls/c1/hangup")
t.ok(r.status in (404, 409), "hanging up an ended call fails (%d %s)" % (r.status, r.code), r)

# -- no answer -> the next agent ---------------------------------------------------
r = acme.post("/v1/calls", {"call": "c2", "queue": "support", "caller": "+4930123457"})
t.is_((one(r, "ring") or {}).get("agent"), "alice", "c2 rings alice")
r = acme.post("/v1/calls/c2/ring_result", {"agent": "alice", "outcome": "no_answer"})
t.is_(r.status, 200, "ring_result no_answer")
t.is_((one(r, "ring") or {}).get("agent"), "bob", "... and c2 rings bob next", r)
r = acme.post("/v1/calls/c2/ring_result", {"agent": "bob", "outcome": "answered"})
t.ok(one(r, "connect") and one(r, "connect").get("agent") == "bob", "bob answers c2", r)

# -- abandon ---------------------------------------------------------------------
r = acme.post("/v1/calls", {"call": "c3", "queue": "support", "caller": "+4930123458"})
t.is_((one(r, "ring") or {}).get("agent"), "alice", "c3 rings alice")
r = acme.post("/v1/calls/c3/abandon", {})
t.is_(r.status, 200, "POST /v1/calls/c3/abandon")
t.ok(one(r, "end") and one(r, "end").get("call") == "c3", "... answered with end c3", r)
t.is_(acme.get("/v1/agents/alice").json.get("status"), "available", "alice is free again")

# -- transfer to another queue ---------------------------------------------------------
acme.put("/v1/agents/carol", {"devices": {"softphone": "sip:carol@pbx.example"}, "status": "available"})
r = acme.put("/v1/queues/backup", {"policy": "first", "members": [{"agent": "carol"}]})
t.is_(r.status, 200, "queue backup with carol")
r = acme.post("/v1/calls/c2/hangup")
t.ok(one(r, "end"), "c2 ends; bob is free", r)
r = acme.post("/v1/calls", {"call": "c4", "queue": "support", "caller": "+4930123459"})
t.is_((one(r, "ring") or {}).get("agent"), "alice", "c4 rings alice")
r = acme.post("/v1/calls/c4/ring_result", {"agent": "alice", "outcome": "busy"})
t.is_((one(r, "ring") or {}).get("agent"), "bob", "alice busy: c4 rings bob")
r = acme.post("/v1/calls/c4/transfer", {"queue": "backup"})
t.is_(r.status, 200, "POST /v1/calls/c4/transfer to backup")
t.ok(r.actions("ring") and r.actions("ring")[-1].get("agent") == "carol"
     and r.actions("ring")[-1].get("queue") == "backup", "... rings carol in backup", r)
t.ok(any(a.get("agent") == "bob" for a in r.actions("cancel")), "... and cancels bob's ring", r)
r = acme.post("/v1/calls/c4/transfer", {"queue": "backup", "call": "c9"})
t.is_((r.status, r.code, r.field), (400, "SB_EINVAL", "call"),
      "a body call id that differs from the path is 400")
r = acme.post("/v1/calls/c4/hangup", {"type": "abandon"})
t.is_((r.status, r.field), (400, "type"), "a body type that differs from the route is 400")
r = acme.get("/v1/calls/nope")
t.is_((r.status, r.code), (404, "SB_ENOTFOUND"), "GET an unknown call is 404")

t.is_(d.stop(), 0, "SIGTERM: exit 0")
t.done()
