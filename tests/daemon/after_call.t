#!/usr/bin/env python3
# An agent who asks for a pause (or to go offline) while on a call, over
# HTTP: the request is taken (200, no action), agent reads show it as
# next_status and next_reason, and when the call ends the agent takes it,
# with an agent action on the event stream; with a wrap-up, after the
# wrap-up (the daemon's own timer). "available" on the call drops it.
import sys, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, Stream, agent_doc, provision

t = TAP()
d = t.owned(Daemon()).start()
acme = provision(d, agents=("alice", "bob"))
s = Stream(d, acme.auth)
t.cleanups.append(s.close)
t.is_(s.status, 200, "GET /v1/events: 200")


def agent(aid):
    return acme.get("/v1/agents/" + aid).json or {}


def status(aid, st, reason=None):
    body = {"status": st}
    if reason is not None:
        body["reason"] = reason
    return acme.post("/v1/agents/%s/status" % aid, body)


def agent_event(aid):
    return s.next_where(lambda e: e.get("type") == "agent" and e.get("agent") == aid,
                        timeout=10) or {}


# -- on the call: the status waits ----------------------------------------------------
r = acme.post("/v1/calls", {"call": "c1", "queue": "support", "caller": "+4930100001"})
t.is_([a["agent"] for a in r.actions("ring")], ["alice"], "c1 rings alice")
acme.post("/v1/calls/c1/ring_result", {"agent": "alice", "outcome": "answered"})
r = status("alice", "paused", "lunch")
t.is_((r.status, r.actions()), (200, []), "alice on the call pauses for lunch: 200, no action", r)
a = agent("alice")
t.is_((a.get("status"), a.get("call"), a.get("next_status"), a.get("next_reason")),
      ("on_call", "c1", "paused", "lunch"), "GET alice: on c1, paused for lunch next")
b = agent("bob")
t.ok("next_status" not in b and "next_reason" not in b, "GET bob: no next status", b)
listed = {x.get("id"): x for x in acme.get("/v1/agents").json.get("agents", [])}
t.is_((listed.get("alice", {}).get("next_status"), listed.get("alice", {}).get("next_reason"),
       "next_status" in listed.get("bob", {"next_status": 1})),
      ("paused", "lunch", False), "GET /v1/agents shows it for alice, not for bob")
status("alice", "paused", "coffee")
t.is_(agent("alice").get("next_reason"), "coffee", "paused again for coffee: the reason changes")
r = status("alice", "available")
a = agent("alice")
t.is_((r.status, a.get("status"), "next_status" in a, "next_reason" in a),
      (200, "on_call", False, False), "available on the call drops it")
status("alice", "offline")
a = agent("alice")
t.is_((a.get("next_status"), "next_reason" in a), ("offline", False), "offline next, no reason")
r = status("alice", "paused", "lunch")
t.is_((r.status, agent("alice").get("next_status")), (200, "paused"), "paused for lunch after all")

# -- the call ends: the pause comes ---------------------------------------------------
status("bob", "paused")
r = acme.post("/v1/calls", {"call": "c2", "queue": "support", "caller": "+4930100002"})
t.is_([x["type"] for x in r.actions()], ["wait"], "c2 waits (alice talking, bob paused)")
r = acme.post("/v1/calls/c1/hangup")
t.is_([x.get("call") for x in r.actions()], ["c1"] * len(r.actions()),
      "the hangup's response carries only c1's actions")
ev = agent_event("alice")
t.is_((ev.get("status"), ev.get("reason"), ev.get("account")), ("paused", "lunch", "acme"),
      "the stream says alice is paused, for lunch")
a = agent("alice")
t.is_((a.get("status"), a.get("reason"), "next_status" in a), ("paused", "lunch", False),
      "GET alice: paused for lunch, nothing next")
t.is_(acme.get("/v1/calls/c2").json.get("state"), "waiting", "c2 still waits")

# -- with a wrap-up: first the wrap-up, then the status -------------------------------------
doc = agent_doc("alice", wrapup=1)
del doc["status"]
r = acme.put("/v1/agents/alice", doc)
t.is_((r.status, r.json.get("status")), (200, "paused"), "alice gets a 1 s wrap-up, still paused")
status("alice", "available")
ev = s.next_where(lambda e: e.get("type") == "ring" and e.get("call") == "c2")
t.is_((ev or {}).get("agent"), "alice", "alice back: c2 rings her (stream)")
acme.post("/v1/calls/c2/ring_result", {"agent": "alice", "outcome": "answered"})
t.is_(status("alice", "offline", "end of shift").status, 200, "alice asks to go offline")
r = acme.put("/v1/agents/alice", agent_doc("alice", wrapup=1))
a = agent("alice")
t.is_((r.status, a.get("status"), a.get("next_status"), a.get("next_reason")),
      (200, "on_call", "offline", "end of shift"),
      "her document put again (status available in it): still on the call, offline next")
acme.post("/v1/calls/c2/hangup")
a = agent("alice")
t.is_((a.get("status"), a.get("next_status")), ("wrap_up", "offline"),
      "c2 ends: alice wraps up, offline next")
ev = agent_event("alice")
t.is_((ev.get("status"), ev.get("reason")), ("offline", "end of shift"),
      "the wrap-up's end: the stream says alice is offline (end of shift)")
a = agent("alice")
t.is_((a.get("status"), a.get("reason"), "next_status" in a), ("offline", "end of shift", False),
      "GET alice: offline, nothing next")

# -- a PUT that frees an agent for a waiting call: its answer says reserved ---------
for aid in ("alice", "bob"):
    status(aid, "paused", "drill")
r = acme.post("/v1/calls", {"call": "c9", "queue": "support", "caller": "+4930100009"})
t.is_([a["type"] for a in r.actions()], ["wait"], "c9 waits: nobody is available")
r = acme.put("/v1/agents/bob", dict(agent_doc("bob"), status="available"))
t.is_((r.status, (r.json or {}).get("status")), (200, "reserved"),
      "PUT bob available: c9 rings him, and the answer's status is reserved (it said "
      "available)", r)
t.is_(agent("bob").get("status"), "reserved", "... as GET says")
acme.post("/v1/calls/c9/abandon")

t.is_(d.stop(), 0, "SIGTERM: exit 0")
t.done()
