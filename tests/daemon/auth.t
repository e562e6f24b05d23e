#!/usr/bin/env python3
# Authentication: account routes need HTTP Basic account_id:key, admin routes
# the admin token; every failure is 401 SB_EAUTH and says nothing about which
# part was wrong. The admin token is rotated without a restart: a new one
# written into its file, then SIGHUP; a file that fails the start's checks
# keeps the token in use, and the log says why.
import sys, os, base64, signal
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

# -- rotating the admin token: write the new one, SIGHUP ---------------------------
tokfile = os.path.join(d.data_dir, "admin.token")
old, new = d.token, "rotated-admin-token-0123456789abcdef"
keep = d.conn()   # a keep-alive connection that was admitted with the old token
t.is_(d.request("GET", "/v1/accounts", auth="Bearer " + old, conn=keep).status, 200,
      "the old token works on a kept-alive connection")


def rewrite(text, mode=0o600):
    tmpf = tokfile + ".new"
    with open(tmpf, "w") as f:
        f.write(text)
    os.chmod(tmpf, mode)
    os.rename(tmpf, tokfile)


def hup(pattern):
    mark = len(d.lines)
    d.signal(signal.SIGHUP)
    return d.wait_log(pattern, after=mark, timeout=10)


rewrite(new + "\n")
line = hup(r'msg="admin token changed')
t.ok(line and "level=info" in line and "admin.token" in line,
     "SIGHUP after a new token is written: the log says the token changed, naming the file",
     line)
check(d.request("GET", "/v1/accounts", auth="Bearer " + old), "... the old token: 401", "Bearer")
check(d.request("GET", "/v1/accounts", auth="Bearer " + old, conn=keep),
      "... also on the connection it was admitted on", "Bearer")
t.is_(d.request("GET", "/v1/accounts", auth="Bearer " + new).status, 200, "... the new one: 200")
keep.close()
t.is_(acme.get("/v1/agents/alice").status, 200, "... and account keys are unaffected")

for text, mode, want in (("short\n", 0o600, "too short"),
                         ("", 0o600, "empty"),
                         ("another-long-enough-admin-token\n", 0o644,
                          "group or others may read or write it")):
    rewrite(text, mode)
    line = hup(r'msg="admin token file refused')
    t.ok(line and "level=error" in line and want in line,
         "a token file %s (mode %o) on SIGHUP: an error line saying so" % (want, mode), line)
    t.is_(d.request("GET", "/v1/accounts", auth="Bearer " + new).status, 200,
          "... and the token in use still works")
    if len(text.strip()) >= 16:
        t.is_(d.request("GET", "/v1/accounts", auth="Bearer " + text.strip()).status, 401,
              "... the refused one does not")
os.unlink(tokfile)
line = hup(r'msg="admin token file refused')
t.ok(line and "No such file" in line, "a removed token file on SIGHUP: refused, the token kept",
     line)
t.is_(d.request("GET", "/v1/accounts", auth="Bearer " + new).status, 200, "... and it works")
t.ok(not os.path.exists(tokfile), "... and no new token file is made")
rewrite(new + "\n")
d.token = new
t.is_(d.stop(), 0, "exit 0")
t.done()
