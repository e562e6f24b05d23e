#!/usr/bin/env python3
# Query parameters: every route refuses one it does not take (as it refuses
# an unknown JSON field) with 400 SB_EINVAL naming it in "field", and so a
# parameter given twice, one without a value and a malformed percent-escape;
# the parameters API.md lists still work, and a refused request changes
# nothing.
import sys, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision

t = TAP()
d = t.owned(Daemon()).start()
acme = provision(d)
admin = "Bearer " + d.token

# Every route and method, with the credentials it needs.
ROUTES = [
    ("GET", "/healthz", None), ("GET", "/metrics", "admin"),
    ("GET", "/v1/accounts", "admin"), ("POST", "/v1/accounts", "admin"),
    ("GET", "/v1/accounts/acme", "admin"), ("PUT", "/v1/accounts/acme", "admin"),
    ("DELETE", "/v1/accounts/acme", "admin"), ("POST", "/v1/accounts/acme/keys", "admin"),
    ("DELETE", "/v1/accounts/acme/keys/0123456789abcdef", "admin"),
    ("GET", "/v1/agents", "acct"), ("GET", "/v1/agents/alice", "acct"),
    ("PUT", "/v1/agents/alice", "acct"), ("DELETE", "/v1/agents/alice", "acct"),
    ("POST", "/v1/agents/alice/status", "acct"),
    ("GET", "/v1/queues", "acct"), ("GET", "/v1/queues/support", "acct"),
    ("PUT", "/v1/queues/support", "acct"), ("DELETE", "/v1/queues/support", "acct"),
    ("PUT", "/v1/queues/support/members/alice", "acct"),
    ("DELETE", "/v1/queues/support/members/alice", "acct"),
    ("POST", "/v1/calls", "acct"), ("GET", "/v1/calls/c1", "acct"),
    ("POST", "/v1/calls/c1/ring_result", "acct"), ("POST", "/v1/calls/c1/hangup", "acct"),
    ("POST", "/v1/calls/c1/abandon", "acct"), ("POST", "/v1/calls/c1/transfer", "acct"),
    ("GET", "/v1/policies", "acct"), ("PUT", "/v1/policies/first", "acct"),
    ("GET", "/v1/events", "acct"), ("GET", "/v1/records", "acct"), ("POST", "/v1/erasure", "acct"),
    ("GET", "/v1/holds", "acct"), ("POST", "/v1/holds", "acct"),
    ("DELETE", "/v1/holds/lit-1", "acct"), ("GET", "/v1/aggregates", "acct"),
    ("GET", "/v1/audit", "acct"),
]


def call(method, path, who):
    auth = admin if who == "admin" else acme.auth if who == "acct" else None
    return d.request(method, path, auth=auth)


def state():
    return [acme.get(p).body for p in ("/v1/agents", "/v1/queues/support", "/v1/holds")] + \
        [d.admin("GET", "/v1/accounts").body]


before = state()
wrong = []
for method, path, who in ROUTES:
    r = call(method, path + "?bogus=1", who)
    if (r.status, r.code, r.field) != (400, "SB_EINVAL", "bogus") or "bogus" not in r.body:
        wrong.append((method, path, r))
t.is_(wrong, [], "every route (%d) refuses ?bogus=1: 400 SB_EINVAL, field bogus" % len(ROUTES))
t.is_(state(), before, "... and none of them changed anything")

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

# An access request returns every record of the number: the list's filters
# do not apply, and are refused rather than ignored.
for p in ("from_ms=1", "to_ms=1", "queue=support", "limit=5"):
    r = acme.get("/v1/records?number=%2B442079460001&" + p)
    name = p.split("=")[0]
    t.is_((r.status, r.code, r.field), (400, "SB_EINVAL", name),
          "an access request with %s: 400, field %s" % (name, name), r)

t.is_(d.stop(), 0, "exit 0")
t.done()
