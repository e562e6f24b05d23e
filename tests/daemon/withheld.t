#!/usr/bin/env python3
# Calls from withheld numbers over HTTP: POST /v1/calls without a caller, or
# with "caller": null or "", is offered and rings, whether the daemon passes
# the body on as it is (its fast path) or parses it (a body with an escape);
# a caller that is not E.164 is still a 400 that says to leave it out; the
# live call shows no caller, its policy sees none and no previous agent (two
# withheld calls are not one caller); its record is found by its called
# number alone (role "called", "caller" null, an empty CSV field), and an
# erasure request for that number deletes it.
import sys, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision

# Ring attrs.want, else the agent this caller last spoke to, else the agent
# whose id sorts last; a probe is rejected with what the policy sees.
ROUTE = """\
local P = {}
function P.route(call, agents, ctx)
  if call.attrs.probe then
    return { reject = "caller " .. type(call.caller) .. ", previous " .. type(call.previous_agent) }
  end
  local want = call.attrs.want or call.previous_agent
  local last
  for _, a in ipairs(agents) do
    if a.id == want then return { ring = a.id } end
    if not last or a.id > last.id then last = a end
  end
  if not last then return { wait = 30 } end
  return { ring = last.id }
end
return P
"""
DIALLED = "+442079469001"

t = TAP()
d = t.owned(Daemon()).start()
acme = provision(d, agents=("alice", "bob"))
r = acme.put("/v1/policies/route", ROUTE, headers={"Content-Type": "text/x-lua"})
t.is_(r.status, 200, "a routing policy that reads caller history", r)
r = acme.put("/v1/queues/support", {"policy": "route", "members": [{"agent": "alice"}, {"agent": "bob"}]})
t.is_(r.status, 200, "queue support routes with it", r)
JSON = {"Content-Type": "application/json"}


def ring_of(r, cid):
    return [a["agent"] for a in r.actions("ring") if a.get("call") == cid]


def end(cid, agent):
    if agent:
        acme.post("/v1/calls/%s/ring_result" % cid, {"agent": agent, "outcome": "answered"})
        r = acme.post("/v1/calls/%s/hangup" % cid)
    else:
        r = acme.post("/v1/calls/%s/abandon" % cid)
    return r.status


# Offers as raw bodies: flat ones go through as they are, one with an escape
# is parsed and printed again by the daemon.
offers = [
    ("no caller", '{"call":"w1","queue":"support"}'),
    ("caller null", '{"call":"w2","queue":"support","caller":null}'),
    ('caller ""', '{"call":"w3","queue":"support","caller":""}'),
    ("no caller, a body the daemon parses", '{"call":"w\\u0034","queue":"support"}'),
    ("caller null, a body the daemon parses", '{"call":"w\\u0035","queue":"support","caller":null}'),
]
for name, body in offers:
    r = acme.req("POST", "/v1/calls", body, headers=JSON)
    t.ok(r.status == 201, "POST /v1/calls, %s: 201" % name, r)
for cid in ("w1", "w2", "w3", "w4", "w5"):
    end(cid, None)

for caller in ("anonymous", "0301234567", 42):
    r = acme.post("/v1/calls", {"call": "bad", "queue": "support", "caller": caller})
    t.ok(r.status == 400 and r.code == "SB_EINVAL" and r.field == "caller",
         "caller %r: 400 naming caller" % (caller,), r)
r = acme.post("/v1/calls", {"call": "bad", "queue": "support", "caller": "anonymous"})
msg = r.json["error"]["message"] if r.json else ""
t.ok("withheld" in msg, "the message says to leave it out for a withheld number", msg)
t.is_(acme.get("/v1/calls/bad").status, 404, "no call was made")

# The live call, and what its policy sees.
r = acme.post("/v1/calls", {"call": "p1", "queue": "support", "attrs": {"probe": True}})
rej = r.actions("reject")
t.is_(rej and rej[0].get("reason"), "caller nil, previous nil",
      "the policy sees no caller and no previous agent", r)
r = acme.post("/v1/calls", {"call": "c1", "queue": "support", "called": DIALLED,
                            "attrs": {"want": "alice"}})
t.is_(ring_of(r, "c1"), ["alice"], "a withheld call to %s rings alice" % DIALLED, r)
r = acme.get("/v1/calls/c1")
t.ok(r.status == 200 and "caller" not in r.json and r.json.get("called") == DIALLED,
     "GET /v1/calls/c1: no caller, the called number", r)
r = acme.get("/v1/calls")
t.ok(r.status == 200 and [c["id"] for c in r.json["calls"]] == ["c1"] and
     "caller" not in r.json["calls"][0], "GET /v1/calls lists it, without numbers", r)
t.is_(end("c1", "alice"), 200, "alice answers, the call ends")

r = acme.post("/v1/calls", {"call": "c2", "queue": "support"})
t.is_(ring_of(r, "c2"), ["bob"],
      "the next withheld caller is not taken for the first: bob, not alice", r)
end("c2", "bob")
r = acme.get("/v1/calls/c2")
t.ok(r.status == 200 and r.json.get("state") == "ended" and "caller" not in r.json,
     "an ended withheld call reads from its record, without numbers", r)

# Access and erasure requests by the called number.
r = acme.get("/v1/records?number=%2B442079469001")
recs = r.json.get("records", []) if r.json else []
t.ok(r.status == 200 and [x["id"] for x in recs] == ["c1"] and recs[0]["role"] == "called" and
     recs[0]["caller"] is None and recs[0]["called"] == DIALLED,
     "access request for %s: c1, role called, caller null" % DIALLED, r)
r = acme.get("/v1/records?number=%2B442079469001&format=csv")
t.ok(r.status == 200 and "\r\nc1,called,,%s,support," % DIALLED in r.body,
     "as CSV: the caller an empty field", r)
r = acme.post("/v1/erasure", {"number": DIALLED})
t.ok(r.status == 200 and r.json.get("deleted") == 1, "erasure of %s deletes c1" % DIALLED, r)
t.is_(acme.get("/v1/calls/c1").status, 404, "c1 is gone")
t.is_(acme.get("/v1/calls/c2").status, 200, "c2, with no number, stays")
r = acme.post("/v1/erasure", {"number": ""})
t.is_((r.status, r.field), (400, "number"), "an erasure of no number: 400")

t.done()
