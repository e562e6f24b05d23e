#!/usr/bin/env python3
# Provisioning over HTTP: the admin creates an account and keys; the account
# stores a policy, agents, a queue and its members; reads, lists and deletes.
import json, sys, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, Account, FIRST_POLICY, agent_doc

t = TAP()
d = t.owned(Daemon()).start()

r = d.request("GET", "/healthz")
t.is_((r.status, r.json and r.json.get("status")), (200, "ok"), "GET /healthz without auth")

# -- accounts (admin) ------------------------------------------------------
r = d.admin("POST", "/v1/accounts", {"id": "acme", "name": "Acme Ltd"})
t.is_(r.status, 201, "POST /v1/accounts creates the account")
t.is_(r.headers.get("location"), "/v1/accounts/acme", "... with a Location header")
t.is_(r.json.get("id"), "acme", "... and returns the account")
r = d.admin("POST", "/v1/accounts", {"id": "acme", "name": "Again"})
t.is_((r.status, r.code, r.field), (409, "SB_EEXIST", "id"), "creating it twice is 409 SB_EEXIST")
r = d.admin("POST", "/v1/accounts", {"name": "No id"})
t.is_((r.status, r.code, r.field), (400, "SB_EINVAL", "id"), "POST without id is 400 naming id")
r = d.admin("GET", "/v1/accounts/acme")
t.is_((r.status, r.json.get("name")), (200, "Acme Ltd"), "GET /v1/accounts/acme")
r = d.admin("PUT", "/v1/accounts/acme", {"name": "Acme Group"})
t.is_(r.status, 200, "PUT /v1/accounts/acme fills the id from the path")
r = d.admin("GET", "/v1/accounts/acme")
t.is_(r.json.get("name"), "Acme Group", "... and the change is stored")
r = d.admin("PUT", "/v1/accounts/acme", {"id": "other", "name": "x"})
t.is_((r.status, r.code, r.field), (400, "SB_EINVAL", "id"), "PUT with a different body id is 400")
r = d.admin("PUT", "/v1/accounts/temp", {"name": "Temporary"})
t.is_(r.status, 200, "PUT /v1/accounts/temp creates another account")
r = d.admin("GET", "/v1/accounts")
ids = sorted(a["id"] for a in (r.json or {}).get("accounts", []))
t.is_((r.status, ids), (200, ["acme", "temp"]), "GET /v1/accounts lists both")

# -- keys ------------------------------------------------------------------
r = d.admin("POST", "/v1/accounts/acme/keys")
t.is_(r.status, 201, "POST /v1/accounts/acme/keys")
key, key_id = (r.json or {}).get("key"), (r.json or {}).get("key_id")
t.ok(key and key_id, "... returns key and key_id", r)
acme = Account(d, "acme", key)
r = d.admin("POST", "/v1/accounts/acme/keys")
key2, key2_id = r.json.get("key"), r.json.get("key_id")
t.ok(key2 != key, "a second key is different")
t.is_(Account(d, "acme", key2).get("/v1/agents").status, 200, "the second key works")
r = d.admin("GET", "/v1/accounts/acme/keys")
nkeys = len((r.json or {}).get("keys", []))
r = d.admin("POST", "/v1/accounts/acme/keys", {"junk": 1})
t.ok(r.status == 400 and r.field == "junk" and "unknown field" in r.body,
     "a key request with a field is refused, naming it", r)
r = d.admin("POST", "/v1/accounts/acme/keys", "[1]")
t.is_(r.status, 400, "so is a body that is not an object")
t.is_(len(d.admin("GET", "/v1/accounts/acme/keys").json.get("keys", [])), nkeys, "no key was made")
r = d.admin("POST", "/v1/accounts/acme/keys", {})
t.is_(r.status, 201, "an empty object is no field")
d.admin("DELETE", "/v1/accounts/acme/keys/" + (r.json or {}).get("key_id", "-"))
r = d.admin("DELETE", "/v1/accounts/acme/keys/" + key2_id)
t.is_(r.status, 200, "DELETE /v1/accounts/acme/keys/{key_id} revokes it")
t.is_(Account(d, "acme", key2).get("/v1/agents").status, 401, "the revoked key is refused")
t.is_(acme.get("/v1/agents").status, 200, "the first key still works")
r = d.admin("DELETE", "/v1/accounts/acme/keys/" + key2_id)
t.is_((r.status, r.code), (404, "SB_ENOTFOUND"), "revoking it again is 404")
r = d.admin("POST", "/v1/accounts/nobody/keys")
t.is_((r.status, r.code), (404, "SB_ENOTFOUND"), "a key for a missing account is 404")
r = d.admin("GET", "/v1/accounts/acme/keys")
t.is_((r.status, [k["key_id"] for k in (r.json or {}).get("keys", [])]), (200, [key_id]),
      "GET /v1/accounts/acme/keys lists the ids of its keys (the revoked one gone)")
t.ok(key.encode() not in r.body if isinstance(r.body, bytes) else key not in r.body, "... and never a key itself", r)
t.is_(acme.get("/v1/accounts/acme/keys").status, 401, "an account key cannot list keys")

# -- policies ----------------------------------------------------------------
r = acme.put("/v1/policies/first", FIRST_POLICY, headers={"Content-Type": "text/x-lua"})
t.is_(r.status, 200, "PUT /v1/policies/first with Lua source")
t.ok(r.json and r.json.get("name") == "first" and r.json.get("version"), "... returns name and version", r)
r = acme.put("/v1/policies/broken", "local P = {\nfunction P.route(\nreturn P\n",
             headers={"Content-Type": "text/x-lua"})
t.is_((r.status, r.code), (422, "SB_EPOLICY"), "a policy that does not compile is 422 SB_EPOLICY")
t.ok(r.json and ":" in r.json["error"]["message"], "... with file:line in the message", r)
r = acme.put("/v1/policies/viajson", {"source": FIRST_POLICY, "cases": []})
t.is_(r.status, 200, "PUT /v1/policies/{name} as JSON {source, cases}")
# The JSON form sent without its Content-Type (curl -d's is a form's) is read
# as Lua and fails to load: the 422 says why, and nothing is stored.
body = json.dumps({"source": FIRST_POLICY})
for ct in ("application/x-www-form-urlencoded", None):
    r = acme.put("/v1/policies/untyped", body, headers={"Content-Type": ct} if ct else {})
    t.ok(r.status == 422 and r.code == "SB_EPOLICY" and r.field == "source" and
         "needs Content-Type: application/json" in r.json["error"]["message"] and
         ('"%s"' % ct if ct else "being none") in r.json["error"]["message"],
         "a JSON upload sent as %s: 422 saying it was read as Lua" % (ct or "no type"), r)
t.is_(acme.get("/v1/policies/untyped").status, 404, "... and nothing was stored")
# Lua source sent as curl -d @file sends it: a form, its line breaks dropped,
# so the first -- comment runs to the end. The 422 says so; nothing stored.
flat = "-- my policy\n" + FIRST_POLICY
r = acme.put("/v1/policies/flat", flat.replace("\n", ""),
             headers={"Content-Type": "application/x-www-form-urlencoded"})
t.ok(r.status == 422 and r.code == "SB_EPOLICY" and "curl -d drops a file's line breaks" in
     r.json["error"]["message"] and "--data-binary @FILE" in r.json["error"]["message"],
     "Lua source flattened by curl -d: 422 saying why, and to use --data-binary", r)
t.is_(acme.get("/v1/policies/flat").status, 404, "... and nothing was stored")
r = acme.put("/v1/policies/broken", "local P = {\nfunction P.route(\nreturn P\n",
             headers={"Content-Type": "application/x-www-form-urlencoded"})
t.ok(r.status == 422 and "curl -d" not in r.json["error"]["message"],
     "a form with line breaks that does not compile: the Lua error alone", r)
r = acme.put("/v1/policies/oneline", "return { route = 1 }",
             headers={"Content-Type": "application/x-www-form-urlencoded"})
t.ok(r.status == 422 and "curl -d" not in r.json["error"]["message"],
     "a one-line form with no comment that does not load: the Lua error alone", r)
r = acme.put("/v1/policies/viajson", {"source": FIRST_POLICY, "extra": 1})
t.is_((r.status, r.code, r.field), (400, "SB_EINVAL", "extra"), "an unknown field in the JSON form is 400")
r = acme.get("/v1/policies")
names = sorted(p["name"] for p in (r.json or {}).get("policies", []) if p.get("source") == "account")
t.is_((r.status, names), (200, ["first", "viajson"]), "GET /v1/policies lists the account's policies")
r = acme.get("/v1/policies/first")
t.ok(r.status == 200 and r.json.get("code") == FIRST_POLICY and r.json.get("source") == "account",
     "GET /v1/policies/first: its code and source", r)
t.is_((acme.get("/v1/policies/nope").status), 404, "GET of no such policy is 404")
# A name no policy can have is a bad request, saying why and quoting it.
for bad in ("a:b", ".hidden", "a/.b", "a//b", "team/"):
    for r, how in ((acme.get("/v1/policies/" + bad), "GET"), (acme.delete("/v1/policies/" + bad), "DELETE"),
                   (acme.put("/v1/policies/" + bad, FIRST_POLICY,
                             headers={"Content-Type": "text/x-lua"}), "PUT")):
        t.ok(r.status == 400 and r.code == "SB_EINVAL" and r.field == "name" and
             ("'%s' is not a policy name" % bad) in r.json["error"]["message"],
             "%s of the invalid name %s is 400 SB_EINVAL, quoting it" % (how, bad), r)
r = acme.delete("/v1/policies/viajson")
t.ok(r.status == 200 and r.json == {"name": "viajson", "deleted": True, "now": None},
     "DELETE /v1/policies/viajson deletes the upload", r)
t.is_(acme.get("/v1/policies/viajson").status, 404, "... then it is gone")
t.is_(acme.delete("/v1/policies/viajson").status, 404, "... and deleting it again is 404")

# -- agents ------------------------------------------------------------------
for ag in ("alice", "bob", "carol"):
    r = acme.put("/v1/agents/" + ag, agent_doc(ag))
    t.is_(r.status, 200, "PUT /v1/agents/%s" % ag)
r = acme.get("/v1/agents/alice")
t.is_((r.status, r.json.get("id"), r.json.get("name")), (200, "alice", "Alice"), "GET /v1/agents/alice")
t.is_(r.json.get("status"), "available", "... is available")
r = acme.put("/v1/agents/alice", dict(agent_doc("alice"), id="mallory"))
t.is_((r.status, r.field), (400, "id"), "PUT with a mismatched id is 400 naming id")
r = acme.get("/v1/agents")
ids = sorted(a["id"] for a in (r.json or {}).get("agents", []))
t.is_(ids, ["alice", "bob", "carol"], "GET /v1/agents lists them")
r = acme.post("/v1/agents/bob/status", {"status": "paused", "reason": "lunch"})
t.is_(r.status, 200, "POST /v1/agents/bob/status paused")
t.ok(all(a.get("type") == "agent" and a.get("agent") == "bob" for a in r.actions()),
     "... the response carries no action but bob's own", r)
r = acme.get("/v1/agents/bob")
t.is_((r.json.get("status"), r.json.get("reason")), ("paused", "lunch"), "bob is paused for lunch")
r = acme.post("/v1/agents/bob/status", {"status": "available"})
t.is_(r.status, 200, "bob is available again")
# Left out, "status" is offline for a new agent (API.md, PUT /v1/agents/{id})
# and as it was for a replaced one.
doc = {"devices": {"softphone": "sip:dave@pbx.example"}}
r = acme.put("/v1/agents/dave", doc)
t.is_((r.status, r.json.get("created"), r.json.get("status")), (200, True, "offline"),
      "a new agent put without a status starts offline", r)
acme.post("/v1/agents/dave/status", {"status": "available"})
r = acme.put("/v1/agents/dave", doc)
t.is_((r.json.get("created"), r.json.get("status")), (False, "available"),
      "... and replaced without one keeps the status it has", r)
t.is_(acme.delete("/v1/agents/dave").status, 200, "dave deleted")

# -- queues and members ----------------------------------------------------------
r = acme.put("/v1/queues/support", {"policy": "first", "ring_timeout": 15})
t.is_(r.status, 200, "PUT /v1/queues/support")
r = acme.put("/v1/queues/support/members/alice", {"tier": 1, "position": 1})
t.is_(r.status, 200, "PUT /v1/queues/support/members/alice with a body")
r = acme.put("/v1/queues/support/members/bob")
t.is_(r.status, 200, "PUT /v1/queues/support/members/bob without a body")
r = acme.put("/v1/queues/support/members/zed")
t.is_((r.status, r.code), (404, "SB_ENOTFOUND"), "a member that is not an agent is 404")
r = acme.get("/v1/queues/support")
members = sorted(m["agent"] for m in (r.json or {}).get("members", []))
t.is_((r.status, members), (200, ["alice", "bob"]), "GET /v1/queues/support shows both members")
pos = {m["agent"]: m.get("position") for m in r.json.get("members", [])}
t.is_(pos, {"alice": 1, "bob": 2}, "bob, added without a position, comes after alice", r)
r = acme.put("/v1/queues/support/members/bob", {"tier": 2})
pos = {m["agent"]: (m.get("position"), m.get("tier"))
       for m in acme.get("/v1/queues/support").json.get("members", [])}
t.is_(pos, {"alice": (1, 1), "bob": (2, 2)}, "a change without a position keeps bob's")
r = acme.delete("/v1/queues/support/members/bob")
t.is_(r.status, 200, "DELETE /v1/queues/support/members/bob")
r = acme.get("/v1/queues/support")
t.is_(sorted(m["agent"] for m in r.json.get("members", [])), ["alice"], "bob has left the queue")
r = acme.get("/v1/queues")
t.is_(sorted(q["id"] for q in (r.json or {}).get("queues", [])), ["support"], "GET /v1/queues")

# -- deletes ---------------------------------------------------------------------
r = acme.delete("/v1/agents/carol")
t.is_(r.status, 200, "DELETE /v1/agents/carol")
r = acme.get("/v1/agents/carol")
t.is_((r.status, r.code), (404, "SB_ENOTFOUND"), "carol is gone")
r = acme.put("/v1/queues/spare", {"policy": "first"})
r = acme.delete("/v1/queues/spare")
t.is_(r.status, 200, "DELETE /v1/queues/spare")
t.is_(acme.get("/v1/queues/spare").status, 404, "the queue is gone")
r = d.admin("DELETE", "/v1/accounts/temp")
t.is_(r.status, 200, "DELETE /v1/accounts/temp")
t.is_(d.admin("GET", "/v1/accounts/temp").status, 404, "the account is gone")

# -- metrics -------------------------------------------------------------------
r = d.admin("GET", "/metrics")
t.is_(r.status, 200, "GET /metrics with the admin token")
t.ok(r.headers.get("content-type", "").startswith("text/plain"), "... is Prometheus text")
t.ok('switchboard_http_requests_total{route="/v1/agents/{id}",method="PUT",code="200"}' in r.body,
     "... counts requests by route, method and status")
t.ok("switchboard_http_request_duration_seconds_bucket" in r.body, "... has the latency histogram")
t.ok("switchboard_events_total" in r.body, "... and the engine's counters")

t.is_(d.stop(), 0, "SIGTERM: exit 0")
t.done()
