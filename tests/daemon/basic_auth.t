#!/usr/bin/env python3
# HTTP Basic credentials as clients write them: account ids may hold ':'
# (an id takes A-Z a-z 0-9 . _ : @ + -) and keys never do, so the credentials
# split at the last colon; an account "acme:eu" was made, given keys and then
# refused every request. The scheme is case-insensitive; what is not
# base64 of account:key, padded, is the same 401 as a wrong key.
import sys, os, base64
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, Stream, Account, basic, agent_doc

t = TAP()
d = t.owned(Daemon()).start()


def account(aid):
    r = d.admin("POST", "/v1/accounts", {"id": aid})
    t.is_(r.status, 201, "account %s created" % aid, r)
    r = d.admin("POST", "/v1/accounts/%s/keys" % aid)
    t.is_(r.status, 201, "... and given a key", r)
    return Account(d, aid, r.json["key"]), r.json["key_id"]


eu, eu_kid = account("acme:eu")
acme, _ = account("acme")
r = eu.put("/v1/agents/alice", agent_doc("alice"))
t.is_(r.status, 200, "an account whose id holds a colon is served with its key", r)
t.is_([a["id"] for a in eu.get("/v1/agents").json["agents"]], ["alice"], "... its own agents")
t.is_([a["id"] for a in acme.get("/v1/agents").json["agents"]], [],
      "... and not account acme's: acme has none")
r = d.request("GET", "/v1/agents", auth=basic("acme:eu", acme.key))
t.is_(r.status, 401, "acme:eu with acme's key: 401", r)
r = d.request("GET", "/v1/agents", auth=basic("acme", acme.key + ":"))
t.is_(r.status, 401, "a colon after the key: 401", r)
r = d.request("GET", "/v1/agents", auth=basic("acme:eu:", eu.key))
t.is_(r.status, 401, "an account id with one colon too many: 401", r)

s = Stream(d, eu.auth)
t.is_(s.status, 200, "its event stream opens")
r = d.admin("DELETE", "/v1/accounts/acme:eu/keys/" + eu_kid)
t.is_(r.status, 200, "its key revoked", r)
t.ok(s.next(timeout=5) is None, "... the stream closes")
s.close()
t.is_(eu.get("/v1/agents").status, 401, "... and the key is refused")

# What clients send for acme's key.
b64 = lambda raw: base64.b64encode(raw).decode()
cred = ("acme:" + acme.key).encode()
for name, auth, want in (
        ("lowercase scheme", "basic " + b64(cred), 200),
        ("uppercase scheme", "BASIC " + b64(cred), 200),
        ("two spaces after the scheme", "Basic  " + b64(cred), 200),
        ("base64 without its padding", "Basic " + b64(cred).rstrip("="), 401),
        ("a NUL in the account id", "Basic " + b64(b"ac\0me:" + acme.key.encode()), 401),
        ("an empty account id", "Basic " + b64((":" + acme.key).encode()), 401),
        ("an empty key", "Basic " + b64(b"acme:"), 401),
        ("no colon", "Basic " + b64(acme.key.encode()), 401),
        ("a key of 4,000 bytes", "Basic " + b64(cred + b"x" * 4000), 401)):
    r = d.request("GET", "/v1/agents", auth=auth)
    t.is_(r.status, want, name, r)
    if want == 401:
        t.is_(r.code, "SB_EAUTH", "... SB_EAUTH")
t.is_(d.stop(), 0, "exit 0")
t.done()
