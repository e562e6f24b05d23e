#!/usr/bin/env python3
# Authentication: account routes need HTTP Basic account_id:key, admin routes
# the admin token; every failure is 401 SB_EAUTH and says nothing about which
# part was wrong.
import sys, os, base64
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, Stream, provision, basic

t = TAP()
d = t.owned(Daemon()).start()
acme = provision(d)
globex = provision(d, account="globex", agents=("xavier",))

t.is_(acme.get("/v1/agents/alice").status, 200, "the right key works")


def check(r, name, scheme="Basic"):
    t.ok(r.status == 401 and r.code == "SB_EAUTH"
         and r.headers.get("www-authenticate", "").startswith(scheme), name, r)
    return r


r0 = check(d.request("GET", "/v1/agents/alice"), "no Authorization: 401 SB_EAUTH + WWW-Authenticate")
r1 = check(d.request("GET", "/v1/agents/alice", auth=basic("acme", "sbk_wrong")), "a wrong key: 401")
r2 = check(d.request("GET", "/v1/agents/alice", auth=basic("nosuch", acme.key)), "an unknown account: 401")
t.is_(r1.body, r2.body, "... the same answer as a wrong key")
check(d.request("GET", "/v1/agents/alice", auth=basic("acme", globex.key)),
      "another account's key: 401")
check(d.request("GET", "/v1/agents/xavier", auth=basic("globex", acme.key)),
      "... either way round")
check(d.request("GET", "/v1/agents/alice", auth=basic("acme", acme.key + "x")), "a key with a byte more: 401")
check(d.request("GET", "/v1/agents/alice", auth=basic("acme", acme.key[:-1])), "a key with a byte less: 401")
check(d.request("GET", "/v1/agents/alice", auth="Basic !!!notbase64"), "malformed Basic credentials: 401")
check(d.request("GET", "/v1/agents/alice",
                auth="Basic " + base64.b64encode(acme.key.encode()).decode()), "Basic without account_id: 401")
check(d.request("GET", "/v1/agents/alice", auth="Bearer " + d.token), "the admin token on an account route: 401")
check(d.request("GET", "/v1/agents/alice", auth="Bearer " + acme.key), "a key as a bearer token: 401")
r = d.request("POST", "/v1/calls", {"call": "x1", "queue": "support", "caller": "+4930100001"},
              auth=basic("acme", "sbk_wrong"))
check(r, "an offer with a wrong key: 401")
t.is_(acme.get("/v1/calls/x1").status, 404, "... and no call was created")

# -- admin -------------------------------------------------------------------------
check(d.request("GET", "/v1/accounts"), "admin route without a token: 401", "Bearer")
check(d.request("GET", "/v1/accounts", auth="Bearer nope"), "a bad admin token: 401", "Bearer")
check(d.request("GET", "/v1/accounts", auth="Bearer " + d.token[:-1]), "a truncated admin token: 401", "Bearer")
check(d.request("GET", "/v1/accounts", auth=acme.auth), "an account key on an admin route: 401", "Bearer")
check(d.request("POST", "/v1/accounts", {"id": "evil"}, auth="Bearer nope"), "creating an account with a bad token: 401", "Bearer")
t.is_(d.admin("GET", "/v1/accounts/evil").status, 404, "... and nothing was created")
check(d.request("POST", "/v1/accounts/acme/keys", auth=acme.auth), "an account cannot mint its own keys", "Bearer")
check(d.request("GET", "/metrics"), "/metrics without a token: 401", "Bearer")
t.is_(d.request("GET", "/metrics", auth="bearer " + d.token).status, 200, "the scheme name is case-insensitive")
t.is_(d.request("GET", "/healthz").status, 200, "/healthz needs no auth")

s = Stream(d, basic("acme", globex.key))
t.is_(s.status, 401, "the event stream with another account's key: 401")
s.close()
t.is_(d.stop(), 0, "exit 0")
t.done()
