#!/usr/bin/env python3
# A policy's version history over HTTP, as a release manager and an auditor
# use it: GET /v1/policy-versions/{name...} lists an account's uploads and
# deletes of a policy, newest first, and ?version= reads one version's code;
# a rollback is a PUT of that code with If-Match. Bad versions are 400,
# unknown ones 404, and another account's history is indistinguishable from
# none. An account's deletion takes its history.
import sys, os, re, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, FIRST_POLICY, provision

t = TAP()
d = t.owned(Daemon()).start()
acme = provision(d, account="acme", agents=("alice",), queue="support", policy="team/vip")
globex = provision(d, account="globex", agents=("xavier",), queue="sales")
LUA = {"Content-Type": "text/x-lua"}
V2 = FIRST_POLICY + "-- v2\n"
V3 = FIRST_POLICY + "-- v3\n"

t0 = int(time.time() * 1000)
first = acme.get("/v1/policies/team/vip").json["version"]
v2 = acme.put("/v1/policies/team/vip", V2, headers=LUA).json["version"]
v3 = acme.put("/v1/policies/team/vip", V3, headers=LUA).json["version"]
acme.put("/v1/policies/team/vip", V3, headers=LUA)  # the same text again
t1 = int(time.time() * 1000)

r = acme.get("/v1/policy-versions/team/vip")
vs = r.json.get("versions", []) if r.status == 200 else []
t.ok(r.status == 200 and [v["version"] for v in vs] == [v3, v2, first],
     "three versions, newest first; the same text uploaded again adds none", r)
t.ok([v.get("previous") for v in vs] == [v2, first, None], "each names the version it replaced", vs)
t.ok([v["current"] for v in vs] == [True, False, False], "the newest is current", vs)
t.ok(all(t0 - 60000 <= v["at_ms"] <= t1 for v in vs[:2]) and
     vs[0]["at_ms"] >= vs[1]["at_ms"] >= vs[2]["at_ms"], "each with when it was stored", vs)
t.is_(r.json.get("name"), "team/vip", "a name with folders")

r = acme.get("/v1/policy-versions/team/vip?limit=2")
t.ok(r.status == 200 and len(r.json["versions"]) == 2 and "next" in r.json, "a page of 2, with next", r)
r = acme.get("/v1/policy-versions/team/vip?limit=2&before=%d" % r.json.get("next", 0))
t.ok(r.status == 200 and [v["version"] for v in r.json["versions"]] == [first] and
     "next" not in r.json, "the next page: the first upload, and no next", r)

r = acme.get("/v1/policy-versions/team/vip?version=" + v2)
t.ok(r.status == 200 and r.json.get("code") == V2 and r.json.get("version") == v2 and
     r.json.get("current") is False, "?version= reads that version's code", r)
t.ok("etag" not in r.headers, "without an ETag (If-Match conditions the upload in use)", r.headers)

for bad in ("abc", "0123456789ABCDEF", "0123456789abcdef0", "x" * 16):
    r = acme.get("/v1/policy-versions/team/vip?version=" + bad)
    t.ok(r.status == 400 and r.code == "SB_EINVAL" and r.field == "version",
         "version %s: 400 naming it" % bad, r)
r = acme.get("/v1/policy-versions/team/vip?version=0123456789abcdef")
t.ok(r.status == 404 and r.field == "version", "a version never uploaded: 404", r)
for q in ("limit=0", "limit=51", "limit=x", "before=-1", "version=%s&limit=2" % v2, "after=1"):
    r = acme.get("/v1/policy-versions/team/vip?" + q)
    t.is_(r.status, 400, "?%s: 400 (%s)" % (q, (r.json or {}).get("error", {}).get("message")))
r = acme.get("/v1/policy-versions/nothing")
t.is_(r.status, 404, "a name never uploaded: 404")
r = acme.get("/v1/policy-versions/../x")
t.ok(r.status in (400, 404), "a name no policy can have: refused", r)
# Where a client would guess the history is, a 404 says where it is (a policy
# could be named team/vip/versions: the path cannot be taken for the history).
for path in ("/v1/policies/team/vip/versions", "/v1/policies/team/vip/versions/" + v2):
    r = acme.get(path)
    t.ok(r.status == 404 and "/v1/policy-versions/team/vip" in r.json["error"]["message"],
         "GET %s: 404 pointing to the history" % path.replace(v2, "V"), r)
r = acme.put("/v1/policy-versions/team/vip", V2, headers=LUA)
t.is_(r.status, 405, "the history is read-only: PUT is 405")

# Rolling back: read the old code, upload it with If-Match of the version in use.
etag = acme.get("/v1/policies/team/vip").headers.get("etag")
code = acme.get("/v1/policy-versions/team/vip?version=" + first).json["code"]
r = acme.put("/v1/policies/team/vip", code, headers=dict(LUA, **{"If-Match": etag}))
t.ok(r.status == 200 and r.json["version"] == first and r.json.get("previous") == v3,
     "a rollback: the old code uploaded with If-Match brings its version back", r)
r = acme.get("/v1/policy-versions/team/vip")
t.ok([v["version"] for v in r.json["versions"]] == [first, v3, v2, first],
     "and is an entry of its own", r)

# Account isolation: globex sees nothing of acme's, exactly as for no policy.
def shape(r):
    e = (r.json or {}).get("error", {})
    return (r.status, e.get("code"), e.get("field"), re.sub(r"'[^']*'", "'X'", e.get("message", "")))

t.is_(shape(globex.get("/v1/policy-versions/team/vip")), shape(globex.get("/v1/policy-versions/nope")),
      "another account's history: the same 404 as none")
t.is_(shape(globex.get("/v1/policy-versions/team/vip?version=" + v2)),
      shape(globex.get("/v1/policy-versions/nope?version=" + v2)),
      "another account's version: the same 404 as none")
r = globex.get("/v1/policy-versions/first")
t.ok(r.status == 200 and len(r.json["versions"]) == 1, "globex has its own", r)

# Forgetting code the history must not keep.
r = globex.delete("/v1/policy-versions/team/vip?version=" + v2)
t.is_(shape(r), shape(globex.delete("/v1/policy-versions/nope?version=" + v2)),
      "another account cannot forget acme's: the same 404 as none")
r = acme.delete("/v1/policy-versions/team/vip?version=" + v2)
t.ok(r.status == 200 and r.json == {"name": "team/vip", "forgotten": 1}, "v2 forgotten", r)
t.is_(acme.get("/v1/policy-versions/team/vip?version=" + v2).status, 404, "... its code gone")
r = acme.delete("/v1/policy-versions/team/vip?version=" + first)
t.ok(r.status == 409 and r.field == "version", "the version in use: 409", r)
r = acme.delete("/v1/policy-versions/team/vip?before=1")
t.ok(r.status == 400 and r.field == "before", "a DELETE takes version alone", r)
t.is_([v["version"] for v in acme.get("/v1/policy-versions/team/vip").json["versions"]],
      [first, v3, first], "the rest stays")

# A delete is an entry; the history stays after it.
r0 = acme.put("/v1/policies/first", FIRST_POLICY, headers=LUA)
r = acme.put("/v1/queues/support", {"policy": "first", "members": [{"agent": "alice"}]})
t.ok(r.status == 200 and r0.status == 200, "the queue moves to another policy", r)
r = acme.delete("/v1/policies/team/vip")
t.is_(r.status, 200, "team/vip deleted")
r = acme.get("/v1/policy-versions/team/vip")
top = r.json["versions"][0] if r.status == 200 else {}
t.ok(top.get("change") == "delete" and top.get("version") is None and top.get("previous") == first,
     "the delete is the newest entry, naming the version deleted", r)
t.is_(acme.get("/v1/policy-versions/team/vip?version=" + v3).status, 200,
      "old versions still read after the delete")

# An account's deletion takes its history: made again, it has none.
r = acme.put("/v1/queues/support", {"policy": "first", "members": []})
acme.delete("/v1/queues/support")
t.is_(d.admin("DELETE", "/v1/accounts/acme").status, 200, "acme deleted")
acme2 = provision(d, account="acme", agents=(), queue=None, policy="other")
t.is_(acme2.get("/v1/policy-versions/team/vip").status, 404,
      "an account made again under its id has no history of the old one's")

t.is_(d.stop(), 0, "exit 0")
t.done()
