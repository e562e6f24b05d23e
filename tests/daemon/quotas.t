#!/usr/bin/env python3
# An account's "limits", as a platform operator sets them with PUT
# /v1/accounts/{id} and a tenant meets them over HTTP: one agent, queue or
# policy upload past its limit is 429 SB_ELIMIT naming limits.<name> and
# the limit, and nothing is made; a replace is not one more; an offer past
# live_calls is a 201 with a reject action (as a full queue gives); a limit
# lowered below what the account has keeps what it has and refuses more;
# bad limits are 400 naming the field and change nothing; another account
# is not held back; limits and usage survive a restart of the daemon.
import sys, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision, agent_doc, FIRST_POLICY

t = TAP()
d = t.owned(Daemon()).start()
a = provision(d, account="acme", agents=("alice", "bob"), queue="support")
b = provision(d, account="globex", agents=("xavier",), queue="sales")
LUA = {"Content-Type": "text/x-lua"}


def account(acct="acme"):
    return d.admin("GET", "/v1/accounts/" + acct).json or {}


def limit_429(r, field, value, what):
    t.ok(r.status == 429 and r.code == "SB_ELIMIT" and r.field == field and
         ("%s is %d" % (field, value)) in r.json["error"]["message"] and
         "retry-after" not in r.headers,
         "%s: 429 SB_ELIMIT, field %s, saying the limit %d" % (what, field, value), r)


doc = account()
t.ok(doc.get("limits") is None and doc.get("usage") == {
    "agents": 2, "queues": 1, "live_calls": 0, "policies": 1},
    "an account without limits reads limits null and its usage", doc)

# Bad limits: 400 naming the field, nothing changed.
r = d.admin("PUT", "/v1/accounts/acme", {"name": "Acme", "limits": {"agents": 3}})
t.is_(r.status, 200, "the admin sets limits.agents 3")
for limits, field in (({"agent": 3}, "limits.agent"), ({"agents": -1}, "limits.agents"),
                      ({"queues": 2.5}, "limits.queues"), ({"live_calls": "2"}, "limits.live_calls"),
                      ([3], "limits"), ({"policies": 10 ** 7}, "limits.policies")):
    r = d.admin("PUT", "/v1/accounts/acme", {"name": "Acme", "limits": limits})
    t.ok(r.status == 400 and r.code == "SB_EINVAL" and r.field == field,
         "limits %s: 400 naming %s" % (limits, field), r)
t.is_(account().get("limits"), {"agents": 3}, "and the limits stayed as they were")

# Agents.
r = d.admin("PUT", "/v1/accounts/acme",
            {"name": "Acme", "limits": {"agents": 3, "queues": 1, "policies": 1, "live_calls": 2}})
t.is_(r.status, 200, "limits set: agents 3, queues 1, policies 1, live_calls 2")
t.is_(a.put("/v1/agents/carol", agent_doc("carol")).status, 200, "a third agent")
limit_429(a.put("/v1/agents/dave", agent_doc("dave")), "limits.agents", 3, "a fourth agent")
t.is_(a.get("/v1/agents/dave").status, 404, "dave was not made")
r = a.put("/v1/agents/alice", agent_doc("alice", name="Alice Two"))
t.ok(r.status == 200 and r.json.get("created") is False, "replacing alice is not one more", r)
t.is_(a.get("/v1/agents/alice").json.get("name"), "Alice Two", "and replaced her")

# Queues and policies.
limit_429(a.put("/v1/queues/sales", {"policy": "first"}), "limits.queues", 1, "a second queue")
r = a.put("/v1/queues/support", {"policy": "first", "members": [{"agent": "alice"},
                                                                 {"agent": "bob"}]})
t.ok(r.status == 200 and r.json.get("created") is False, "replacing support is not one more", r)
limit_429(a.put("/v1/policies/second", FIRST_POLICY, headers=LUA), "limits.policies", 1,
          "a second policy")
t.is_(a.get("/v1/policies/second").status, 404, "second was not stored")
r = a.put("/v1/policies/first", FIRST_POLICY + "-- v2\n", headers=LUA)
t.is_(r.status, 200, "a new version of first is not one more")

# Live calls: the third offer is turned away with a reject, as a full queue's.
for c in ("c1", "c2"):
    r = a.post("/v1/calls", {"call": c, "queue": "support", "caller": "+4930100001"})
    t.ok(r.status == 201 and not r.actions("reject"), "offer %s taken" % c, r)
r = a.post("/v1/calls", {"call": "c3", "queue": "support", "caller": "+4930100001"})
t.ok(r.status == 201 and [x["type"] for x in r.actions()] == ["reject", "end"] and
     r.actions("reject")[0].get("reason") == "account live call limit (limits.live_calls 2)",
     "offer c3 past live_calls: 201, reject saying the limit, end", r)
t.is_((a.get("/v1/calls/c3").json or {}).get("outcome"), "rejected", "c3's record: rejected")
t.is_(account()["usage"]["live_calls"], 2, "usage.live_calls 2")
t.is_(a.post("/v1/calls/c1/abandon").status, 200, "c1 abandoned")
r = a.post("/v1/calls", {"call": "c4", "queue": "support", "caller": "+4930100001"})
t.ok(r.status == 201 and not r.actions("reject"), "then c4 is taken", r)

# Another account is not held back by acme's limits.
for ag in ("y1", "y2", "y3", "y4"):
    t.is_(b.put("/v1/agents/" + ag, agent_doc(ag)).status, 200, "globex makes agent " + ag)
t.is_(b.put("/v1/queues/more", {"policy": "first"}).status, 200, "and a second queue")
r = b.put("/v1/policies/second", FIRST_POLICY, headers=LUA)
t.is_(r.status, 200, "and a second policy")
for c in ("g1", "g2", "g3"):
    r = b.post("/v1/calls", {"call": c, "queue": "sales", "caller": "+4930100002"})
    t.ok(r.status == 201 and not r.actions("reject"), "globex's call %s taken" % c, r)
t.is_(account("globex").get("usage"),
      {"agents": 5, "queues": 2, "live_calls": 3, "policies": 2}, "globex's own usage")

# Lowered below what acme has: it keeps them, and gets no more.
r = d.admin("PUT", "/v1/accounts/acme",
            {"name": "Acme", "limits": {"agents": 1, "queues": 1, "policies": 1, "live_calls": 1}})
t.is_(r.status, 200, "agents lowered to 1 with 3 agents, live_calls to 1 with 2 calls")
t.is_(sorted(x["id"] for x in a.get("/v1/agents").json["agents"]), ["alice", "bob", "carol"],
      "the three agents stay")
t.is_(a.get("/v1/calls/c2").json.get("state") in ("waiting", "ringing"), True, "c2 stays live")
r = a.put("/v1/agents/dave", agent_doc("dave"))
t.ok(r.status == 429 and r.field == "limits.agents" and "has 3 agents" in r.body, "dave refused", r)
t.is_(a.put("/v1/agents/carol", agent_doc("carol", name="C")).status, 200, "carol replaced")
t.is_(a.delete("/v1/agents/carol").status, 200, "carol deleted")
t.is_(a.put("/v1/agents/dave", agent_doc("dave")).status, 429, "2 agents: still refused")
r = a.post("/v1/calls", {"call": "c5", "queue": "support", "caller": "+4930100001"})
t.ok(r.actions("reject"), "a call past the lowered live_calls rejected", r)

# A restart keeps limits and usage.
before = account()
t.is_(d.stop(), 0, "daemon stopped")
d.start()
after = account()
t.is_(after.get("limits"), before.get("limits"), "limits after a restart")
t.is_(after.get("usage"), before.get("usage"), "usage after a restart")
t.is_(a.put("/v1/agents/dave", agent_doc("dave")).status, 429, "and still enforced")

# The document as read can be put back (usage ignored); without limits, none.
doc = account()
doc.pop("created", None)
r = d.admin("PUT", "/v1/accounts/acme", doc)
t.ok(r.status == 200 and r.json.get("limits") == before.get("limits"),
     "the GET document put back as it is", r)
r = d.admin("PUT", "/v1/accounts/acme", {"name": "Acme"})
t.ok(r.status == 200 and r.json.get("limits") is None, "a PUT without limits lifts them", r)
t.is_(a.put("/v1/agents/dave", agent_doc("dave")).status, 200, "and dave is made")
t.is_(d.stop(), 0, "exit 0")
t.done()
