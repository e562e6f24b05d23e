#!/usr/bin/env python3
# Authentication: account routes need HTTP Basic account_id:key, admin routes
# the admin token; every failure is 401 SB_EAUTH and says nothing about which
# part was wrong. The admin token is rotated without a restart: a new one
# written into its file, then SIGHUP; a file that fails the start's checks
# keeps the token in use, and the log says why.
import sys, os, base64, re, signal, socket, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, Stream, provision, basic, read_responses, until

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

# -- failed authentication: counted, logged at warn (rate-limited), closed after 10 --
def failures(kind):
    body = d.admin("GET", "/metrics").body
    m = re.search(r'^switchboard_auth_failures_total\{kind="%s"\} (\d+)$' % kind, body, re.M)
    return int(m.group(1)) if m else None


def wire(auth, path="/v1/agents"):
    return ("GET %s HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n\r\n" % (path, auth)).encode()


k0, a0 = failures("api_key"), failures("admin_token")
t.ok(k0 is not None and a0 is not None,
     "/metrics has switchboard_auth_failures_total{kind=api_key} and {kind=admin_token}", (k0, a0))
time.sleep(1.1)  # the failures above were logged: a new second for the next line
mark = len(d.lines)
wrong = basic("acme", "sbk_guess000000000000000000000000000000000000000")
s = socket.create_connection((d.host, d.port))
began = time.monotonic()
s.sendall(wire(wrong) * 9 + wire(acme.auth) + wire(wrong) * 9 + wire(acme.auth))
resps, _ = read_responses(s, 20)
took = time.monotonic() - began
peer = "%s:%d" % s.getsockname()
s.close()
t.is_([x[0] for x in resps], [401] * 9 + [200] + [401] * 9 + [200],
      "nine wrong keys, the right one, nine wrong, the right one on one connection: all answered")
t.is_(failures("api_key") - k0, 18, "... the 18 counted in switchboard_auth_failures_total{kind=api_key}")
line = d.wait_log(r'msg="authentication failed"', after=mark, timeout=3)
t.ok(line and "level=warn" in line and "kind=api_key" in line and 'account="acme"' in line
     and "peer=" + peer in line, "... logged at warn with the account tried and the peer", line)
t.ok(not [l for l in d.lines[mark:] if "sbk_guess" in l or acme.key in l],
     "... never the key")
# One line a second at most: one for the 18 when they took less than a second
# (a loaded machine may take longer, and rightly log a line each second).
t.ok(len([l for l in d.lines[mark:] if 'msg="authentication failed"' in l]) <= 1 + int(took),
     "... one line for the 18 within the second (they took %.2f s)" % took)
s = socket.create_connection((d.host, d.port))
s.sendall(wire(wrong) * 12)
resps, _ = read_responses(s, 12, timeout=5)
s.close()
t.is_([x[0] for x in resps], [401] * 10 + [None] * 2,
      "12 wrong keys in a row on one connection: ten 401s, then it is closed")
t.is_(resps[9][1].get("connection"), "close", "... the tenth saying Connection: close")
t.is_(resps[8][1].get("connection"), None, "... the ninth not")
time.sleep(1.1)
mark = len(d.lines)
check(d.request("GET", "/v1/agents/alice", auth=basic("+441632960001", "x")), "one more wrong key: 401")
line = d.wait_log(r'msg="authentication failed"', after=mark, timeout=3)


def api_key_lines():
    return [l for l in d.lines if 'msg="authentication failed" kind=api_key' in l]


def told(lines):
    """The failures those lines stand for: each its own and those it says were left out."""
    return sum(1 + int(m.group(1)) if m else 1
               for m in (re.search(r"not_logged_before=(\d+)", l) for l in lines))


# Every failed key is in a line or in a later line's count of those left out:
# with this one logged, the lines tell of every failure counted so far.
total = failures("api_key")
t.ok(line and re.search(r"not_logged_before=(\d+)", line)
     and until(lambda: told(api_key_lines()) == total),
     "... a second later its line says how many were not logged before: the lines tell of "
     "all %d failures (%d)" % (total, told(api_key_lines())), line)
t.ok(line and "441632960001" not in line, "... a phone number tried as the account is redacted", line)
s = socket.create_connection((d.host, d.port))
s.sendall(wire("Bearer nope-nope-nope-nope", "/v1/accounts") * 10)
resps, _ = read_responses(s, 11, timeout=5)
s.close()
t.is_([x[0] for x in resps], [401] * 10 + [None],
      "ten wrong admin tokens on one connection: 401s, then it is closed")
t.is_(failures("admin_token") - a0, 10, "... counted under kind=admin_token")
t.ok(d.wait_log(r'level=warn msg="authentication failed" kind=admin_token peer=', after=mark,
                timeout=3), "... logged at warn, with the peer")
k1 = failures("api_key")
check(d.request("GET", "/v1/agents/alice"), "no credentials: 401")
t.is_(failures("api_key"), k1, "... not counted as a failed attempt")

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

# A token a Bearer header cannot carry as the file holds it is refused: the
# daemon took the text up to the first blank, so "...0123 with-a-space" made
# "...0123" the token (the old one stopped working, and the whole line did
# not work), and a control character was taken into it.
for text, mode, want in (("short\n", 0o600, "too short"),
                         ("", 0o600, "empty"),
                         ("rotated-admin-token-0123 with-a-space\n", 0o600,
                          "holds a blank (a space at character 25)"),
                         ("rotated-admin\x01token-0123456789\n", 0o600,
                          "holds a byte a Bearer header cannot carry (0x01 at character 14)"),
                         ("rotated-admin-token-0123456789\nsecond-line\n", 0o600,
                          "holds more than one line"),
                         ("another-long-enough-admin-token\n", 0o644,
                          "group or others may read or write it")):
    rewrite(text, mode)
    line = hup(r'msg="admin token file refused')
    t.ok(line and "level=error" in line and want in line,
         "a token file %s (mode %o) on SIGHUP: an error line saying so" % (want, mode), line)
    t.is_(d.request("GET", "/v1/accounts", auth="Bearer " + new).status, 200,
          "... and the token in use still works")
    first = text.split("\n")[0].strip()
    if len(first) >= 16 and first.isprintable():
        t.is_(d.request("GET", "/v1/accounts", auth="Bearer " + first).status, 401,
              "... the refused one does not")
    if " " in first:
        t.is_(d.request("GET", "/v1/accounts", auth="Bearer " + first.split()[0]).status, 401,
              "... nor its text up to the blank")
# The audit's case: another user's token file put in place (they could, in a
# data directory they may write into) must not give them the admin routes.
if os.geteuid() == 0:
    rewrite("another-users-admin-token-0123456789\n")
    os.chown(tokfile, 65534, 65534)
    line = hup(r'msg="admin token file refused')
    t.ok(line and "level=error" in line and "owned by uid 65534" in line,
         "a token file owned by another user (uid 65534, mode 0600) on SIGHUP: refused, saying "
         "whose it is", line)
    t.is_(d.request("GET", "/v1/accounts", auth="Bearer another-users-admin-token-0123456789")
          .status, 401, "... its token does not work")
    t.is_(d.request("GET", "/v1/accounts", auth="Bearer " + new).status, 200,
          "... the token in use still does")
else:
    t.diag("not root: the token owner check on SIGHUP is skipped")
rewrite("another-long-enough-admin-token\n")
os.chmod(d.data_dir, 0o777)
line = hup(r'msg="admin token file refused')
os.chmod(d.data_dir, 0o700)
t.ok(line and "level=error" in line and "has mode 0777" in line,
     "a token file in a directory of mode 0777 on SIGHUP: refused, saying so", line)
t.is_(d.request("GET", "/v1/accounts", auth="Bearer " + new).status, 200,
      "... the token in use still works")
os.unlink(tokfile)
line = hup(r'msg="admin token file refused')
t.ok(line and "No such file" in line, "a removed token file on SIGHUP: refused, the token kept",
     line)
t.is_(d.request("GET", "/v1/accounts", auth="Bearer " + new).status, 200, "... and it works")
t.ok(not os.path.exists(tokfile), "... and no new token file is made")
# Blanks around the token, and empty lines after it, are no part of it.
rewrite("  \t" + new + " \t\r\n\n \n")
line = hup(r'msg="admin token (changed|unchanged|file refused)')
t.is_(d.request("GET", "/v1/accounts", auth="Bearer " + new).status, 200,
      "a token with blanks around it and empty lines after it: taken without them", line)
rewrite(new + "\n")
d.token = new
t.is_(d.stop(), 0, "exit 0")
t.done()
