#!/usr/bin/env python3
# Query parameters: every route refuses one it does not take (as it refuses
# an unknown JSON field) with 400 SB_EINVAL naming it in "field", and so a
# parameter given twice, one without a value and a malformed percent-escape;
# the parameters API.md lists still work (its Conventions list the routes
# that take any, and what each takes), and a refused request changes nothing.
import sys, os, re
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision, ROOT

t = TAP()
d = t.owned(Daemon()).start()
acme = provision(d)
admin = "Bearer " + d.token

# Every route and method API.md documents (its ### headings), with the
# credentials it needs, so a route added there is covered here too.
with open(os.path.join(ROOT, "engine", "daemon", "API.md")) as f:
    documented = sorted(set(
        tuple(r.split(" ", 1)) for line in f if line.startswith("### ")
        for r in re.findall(r"`([A-Z]+ /[^`?]+)`", line)))
EXAMPLE = {"/v1/accounts/{id}": "/v1/accounts/acme", "{key_id}": "0123456789abcdef",
           "/v1/agents/{id}": "/v1/agents/alice", "/v1/queues/{id}": "/v1/queues/support",
           "{q}": "support", "{agent}": "alice", "/v1/calls/{id}": "/v1/calls/c1",
           "{name}": "first", "/v1/holds/{id}": "/v1/holds/lit-1"}
ROUTES = []
for method, path in documented:
    for k, v in EXAMPLE.items():
        path = path.replace(k, v)
    who = (None if path == "/healthz" else
           "admin" if path == "/metrics" or path.startswith("/v1/accounts") else "acct")
    ROUTES.append((method, path, who))
t.ok(len(ROUTES) >= 39 and not any("{" in p for _, p, _ in ROUTES),
     "API.md documents %d routes, each with an example path" % len(ROUTES), ROUTES)


def call(method, path, who):
    auth = admin if who == "admin" else acme.auth if who == "acct" else None
    return d.request(method, path, auth=auth)


def state():
    return [acme.get(p).body for p in ("/v1/agents", "/v1/queues/support", "/v1/holds")] + \
        [d.admin("GET", "/v1/accounts").body]


before = state()
wrong = []
takes = {}  # "GET /v1/records": the parameters its refusal says it takes
for (method, path, who), (_, pattern) in zip(ROUTES, documented):
    r = call(method, path + "?bogus=1", who)
    if (r.status, r.code, r.field) != (400, "SB_EINVAL", "bogus") or "bogus" not in r.body:
        wrong.append((method, path, r))
    m = re.search(r"takes ([a-z_, ]+)\)", (r.json or {}).get("error", {}).get("message", ""))
    if m and m.group(1) != "no query parameters":
        takes[method + " " + pattern] = m.group(1).split(", ")
t.is_(wrong, [], "every route (%d) refuses ?bogus=1: 400 SB_EINVAL, field bogus" % len(ROUTES))
t.is_(state(), before, "... and none of them changed anything")

# The Conventions' list of the routes that take query parameters is the
# routes' own: each route and what it takes, and no other route.
with open(os.path.join(ROOT, "engine", "daemon", "API.md")) as f:
    para = " ".join(f.read().split("**Query parameters.**", 1)[1].split("**Ids in the path.**")[0]
                    .split())
listed = {route: re.findall(r"`(\w+)`", names)
          for route, names in re.findall(r"`([A-Z]+ /[^`]+)` \(((?:`\w+`(?:, )?)+)\)", para)}
t.is_(listed, takes, "API.md's Query parameters list every route that takes any, and what it takes")

r = acme.get("/v1/records?bogus=1")
t.ok("GET /v1/records takes number, format, from_ms, to_ms, queue, limit" in r.body,
     "... the message lists what the route takes", r)
r = acme.get("/v1/calls/c1?x=1")
t.ok("takes no query parameters" in r.body, "... or says it takes none", r)
r = acme.get("/v1/records?limit=1&Limit=2")
t.is_((r.status, r.field), (400, "Limit"), "names are case-sensitive: Limit is unknown")
r = acme.get("/v1/records?from%5Fms=1")
t.is_((r.status, r.field), (400, "from%5Fms"), "a name is not percent-decoded (from%5Fms is unknown)")

# The documented parameters are accepted.
for path in ("/v1/records?queue=support&limit=20&from_ms=0&to_ms=99999999999999",
             "/v1/records?format=json", "/v1/records?number=+442079460001",
             "/v1/records?number=%2B442079460001&format=csv",
             "/v1/aggregates?queue=support&from_ms=1767225600000&to_ms=1800000000000",
             "/v1/audit?after=0&limit=100", "/v1/records?", "/v1/agents?"):
    r = acme.get(path)
    t.is_(r.status, 200, "GET %s: 200" % path, r)

# Repeated, valueless, malformed.
r = acme.get("/v1/records?limit=1&limit=2")
t.is_((r.status, r.code, r.field), (400, "SB_EINVAL", "limit"), "a parameter given twice: 400, field limit")
t.ok("twice" in r.body, "... saying so", r)
r = acme.get("/v1/audit?limit")
t.is_((r.status, r.code, r.field), (400, "SB_EINVAL", "limit"), "a parameter without a value: 400")
for q in ("number=%zz442079460001", "number=%2", "queue=a%00b"):
    r = acme.get("/v1/records?" + q)
    t.is_((r.status, r.code), (400, "SB_EINVAL"), "a malformed percent-escape (%s): 400" % q, r)
r = acme.get("/v1/records?number=+44" + "1" * 80)
t.is_((r.status, r.field), (400, "number"),
      "a number too long for an access request is a 400, not a list of every record", r)
r = acme.get("/v1/records?limit=99999999999999999999")
t.is_((r.status, r.field), (400, "limit"), "an integer out of range: 400", r)

# An empty ?queue= names no queue: each list that filters by queue refuses
# it, rather than reading it as no filter (records) or as a queue that does
# not exist (calls, aggregates).
for path in ("/v1/records?queue=", "/v1/records?limit=5&queue=", "/v1/calls?queue=",
             "/v1/calls?queue=&limit=2", "/v1/aggregates?queue=",
             "/v1/aggregates?queue=&from_ms=0"):
    r = acme.get(path)
    t.ok((r.status, r.code, r.field) == (400, "SB_EINVAL", "queue") and "is empty" in r.body,
         "GET %s: 400 SB_EINVAL, field queue, saying it is empty" % path, r)

# An access request returns every record of the number, in pages of its own
# (limit and after): the list's filters do not apply, and are refused rather
# than ignored.
for p in ("from_ms=1", "to_ms=1", "queue=support", "before_ms=1", "before_id=c1"):
    r = acme.get("/v1/records?number=%2B442079460001&" + p)
    name = p.split("=")[0]
    t.is_((r.status, r.code, r.field), (400, "SB_EINVAL", name),
          "an access request with %s: 400, field %s" % (name, name), r)

# Lists come in pages: ?after=<the last id read>&limit=N, "next" while more
# follow (agents, queues and live calls, in id order; 1,000 by default).
from sbtest import agent_doc
for ag in ("dora", "carl", "erin"):
    t.is_(acme.put("/v1/agents/" + ag, agent_doc(ag)).status, 200, "agent %s" % ag)
ids, after, pages = [], None, 0
while pages < 10:
    r = acme.get("/v1/agents?limit=2" + ("&after=" + after if after else ""))
    t.is_(r.status, 200, "GET /v1/agents page %d: 200" % (pages + 1), r)
    pages += 1
    ids += [a["id"] for a in r.json["agents"]]
    after = r.json.get("next")
    if not after:
        break
t.is_((ids, pages), (["alice", "bob", "carl", "dora", "erin"], 3),
      "five agents in pages of two: in id order, three pages, next on the first two")
r = acme.get("/v1/agents")
t.ok(r.status == 200 and [a["id"] for a in r.json["agents"]] == ids and "next" not in r.json,
     "without limit: the first 1,000, all of them here, no next", r)
for lst in ("agents", "queues"):
    r, r2 = acme.get("/v1/%s?limit=2" % lst), acme.get("/v1/%s?after=&limit=2" % lst)
    t.ok(r.status == 200 and r2.body == r.body,
         "GET /v1/%s?after= (empty): from the first, as without it" % lst, (r, r2))
r = acme.get("/v1/agents?after=bz&limit=1")
t.ok(r.status == 200 and [a["id"] for a in r.json["agents"]] == ["carl"] and
     r.json.get("next") == "carl", "after an id that is none: from the next one (carl)", r)
t.is_(acme.put("/v1/queues/aaa", {"policy": "first", "members": [{"agent": "dora"}]}).status,
      200, "a second queue, aaa (dora)")
r = acme.get("/v1/queues?limit=1")
r2 = acme.get("/v1/queues?limit=1&after=" + (r.json or {}).get("next", ""))
t.ok(r.status == 200 and [q["id"] for q in r.json["queues"]] == ["aaa"] and
     r.json.get("next") == "aaa" and [q["id"] for q in r2.json["queues"]] == ["support"] and
     "next" not in r2.json, "queues page the same way", (r, r2))
for q in ("limit=0", "limit=10001", "limit=x", "limit=-1", "limit=+2", "limit=%202", "limit=2%20"):
    r = acme.get("/v1/agents?" + q)
    t.is_((r.status, r.code, r.field), (400, "SB_EINVAL", "limit"), "?%s: 400, field limit" % q, r)
r = acme.get("/v1/agents?after=a%20b")
t.is_((r.status, r.code, r.field), (400, "SB_EINVAL", "after"), "?after=a b: 400, field after", r)
for i in range(3):
    acme.post("/v1/agents/%s/status" % ("alice", "bob", "carl")[i], {"status": "paused"})
acme.post("/v1/agents/dora/status", {"status": "paused"})
for i, q in enumerate(("support", "aaa", "support", "support")):
    r = acme.post("/v1/calls", {"call": "p%d" % i, "queue": q, "caller": "+4930100%03d" % i})
    t.is_(r.status, 201, "call p%d waits in %s" % (i, q), r)
r = acme.get("/v1/calls?limit=2")
r2 = acme.get("/v1/calls?limit=2&after=" + (r.json or {}).get("next", ""))
t.ok(r.status == 200 and [c["id"] for c in r.json["calls"]] == ["p0", "p1"] and
     r.json.get("next") == "p1" and [c["id"] for c in r2.json["calls"]] == ["p2", "p3"] and
     "next" not in r2.json, "live calls page the same way", (r, r2))
r2 = acme.get("/v1/calls?limit=2&after=")
t.ok(r2.status == 200 and r2.body == r.body, "GET /v1/calls?after= (empty): from the first",
     (r, r2))
r = acme.get("/v1/calls?queue=support&limit=1&after=p0")
r2 = acme.get("/v1/calls?queue=support&limit=2&after=p0")
t.ok(r.status == 200 and [c["id"] for c in r.json["calls"]] == ["p2"] and
     r.json.get("next") == "p2" and [c["id"] for c in r2.json["calls"]] == ["p2", "p3"] and
     "next" not in r2.json, "... also of one queue, its calls alone (p1 waits in aaa)", (r, r2))

t.is_(d.stop(), 0, "exit 0")
t.done()
