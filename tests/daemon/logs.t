#!/usr/bin/env python3
# The log: one line per event in the documented format, the level honoured,
# and never a caller's number or an API key or the admin token in it, also
# at debug level and also when a policy's error message or its ctx.log
# lines quote the number (the engine's lines pass through the daemon's log),
# or an account's id is one.
import sys, os, re, signal, socket, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, Stream, provision

t = TAP()
CALLER, CALLED = "+4930100077", "+4940555123"

# Policies that get the numbers into their own messages: an invalid decision
# quoting the caller, an error raised with it, and ctx.log lines.
POLICIES = {
    "ringcaller": "return { ring = call.caller }",
    "raise": 'error("no agent for " .. call.caller)',
    "chatty": 'ctx.log("caller", call.caller, "called", call.called)\n'
              '  return { ring = agents[1].id, timeout = 20 }',
}

d = t.owned(Daemon(conf={"log_level": "debug"})).start()
acme = provision(d)
for name, body in POLICIES.items():
    src = "local P = {}\nfunction P.route(call, agents, ctx)\n  %s\nend\nreturn P\n" % body
    r = acme.put("/v1/policies/" + name, src, headers={"Content-Type": "text/x-lua"})
    t.is_(r.status, 200, "policy %s stored" % name)
    r = acme.put("/v1/queues/q-" + name, {"policy": name, "members": [{"agent": "alice"}]})
    t.is_(r.status, 200, "queue q-%s" % name)

s = Stream(d, acme.auth)
t.cleanups.append(s.close)
for i, name in enumerate(POLICIES):
    r = acme.post("/v1/calls", {"call": "c%d" % i, "queue": "q-" + name, "caller": CALLER,
                                "called": CALLED})
    t.is_(r.status, 201, "a call through %s" % name)
    acme.post("/v1/calls/c%d/abandon" % i)
r = acme.get("/v1/records?number=" + CALLER.replace("+", "%2B"))
t.is_(r.status, 200, "the caller's records looked up by number")
n = len((r.json or {}).get("records", []))
t.ok(n and d.wait_log(r'src=engine msg="access request: account acme: %d records disclosed as '
                      r'JSON"' % n, timeout=5),
     "the access request is logged with the account and the count (%d), not the number" % n)
# A call named after its caller, the name percent-encoded byte by byte in
# the path: the router reads it as the number, and so does the log.
ENCODED = "".join("%%%02X" % ord(ch) for ch in CALLER)
r = acme.get("/v1/calls/" + ENCODED)
t.is_(r.status, 404, "a call id written in percent-escapes, looked up")
t.ok(d.wait_log(r"policy failure", timeout=5), "the policy failures were logged")
t.ok(any(re.search(r"policy failure: account=acme policy=raise version=\S+ call=c\d+: ", l)
         for l in d.lines), "... naming the call each met", [l for l in d.lines if "failure" in l])
# A call id that reads as a number (not the call's own, which an offer refuses):
# the failure's line names it as the rest of a line says a number, [number].
NUMERIC_ID = "7911123456"
mark = len(d.lines)
r = acme.post("/v1/calls", {"call": NUMERIC_ID, "queue": "q-raise", "caller": CALLER})
t.is_(r.status, 201, "a call whose id reads as a number, through a failing policy")
line = d.wait_log(r"policy failure: account=acme policy=raise", after=mark, timeout=5) or ""
t.ok(" call=[number]: " in line and NUMERIC_ID not in line,
     "... its failure's line names it [number]", line)
acme.post("/v1/calls/%s/abandon" % NUMERIC_ID)
t.ok(d.wait_log(r"policy log", timeout=5), "... and the ctx.log lines")
t.is_(sorted(set(re.search(r"level=(\w+)", l).group(1) for l in d.lines if "policy log:" in l)),
      ["info"], "ctx.log lines are at info level, as policies/README.md says")
t.ok(d.wait_log(r'msg="api key created" account="acme" key_id="[0-9a-f]{16}"', timeout=2),
     "a key created is logged with its key_id, as a key revoked is")
# Text a client sent, quoted in a line: bytes that are not UTF-8 escaped
# (\xFF), so that the log stays text (grep took it for binary), UTF-8 kept.
import base64
for acct in (b"\xff\xfe", "acm\u00e9".encode(), b"x\xc3"):
    time.sleep(1.05)  # a refused key is logged one line a second
    mark = len(d.lines)
    r = d.request("GET", "/v1/agents", auth="Basic " + base64.b64encode(acct + b":k").decode())
    t.is_(r.status, 401, "credentials of account %r refused" % acct)
    line = d.wait_log(r'msg="authentication failed"', after=mark, timeout=5) or ""
    want = {b"\xff\xfe": r'account="\xFF\xFE"', b"x\xc3": r'account="x\xC3"'}.get(
        acct, 'account="acm\u00e9"')
    t.ok(want in line, "... logged with the account as %s" % want, line)
t.is_(d.stop(), 0, "exit 0")
t.is_([l for l in d.lines if "\ufffd" in l], [], "every line is UTF-8")

digits = [CALLER, CALLER[1:], CALLED, CALLED[1:], NUMERIC_ID]
leaks = [l for l in d.lines if any(n in l for n in digits)]
t.is_(leaks, [], "no log line holds the caller's or the called number")
t.is_([l for l in d.lines if ENCODED[3:] in l], [],
      "... nor the caller's number in percent-escapes, from a request's path")
t.ok(any('path="/v1/calls/[number]" status=404' in l for l in d.lines),
     "... which the request's line shows as [number]")
secrets = [acme.key, d.token]
t.is_([l for l in d.lines if any(k in l for k in secrets)], [],
      "no log line holds the API key or the admin token")
fmt = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(error|warn|info|debug)'
                 r'( src=engine)? msg="(?:[^"\\]|\\.)*"( |$)')
bad = [l for l in d.lines if not fmt.match(l)]
t.is_(bad, [], "every line is one event in the documented format")

# The level is honoured, the engine's lines too.
# At warn the "listening" line is not there to find the port in: pick one.
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
port = sock.getsockname()[1]
sock.close()
dw = t.owned(Daemon(conf={"log_level": "warn", "listen": "127.0.0.1:%d" % port}))
dw.start(expect_listen=False)
dw.host, dw.port = "127.0.0.1", port
end = time.monotonic() + 20
while True:
    try:
        if dw.request("GET", "/healthz").status == 200:
            break
    except OSError:
        pass
    if time.monotonic() > end or dw.proc.poll() is not None:
        raise RuntimeError("daemon did not start:\n" + "\n".join(dw.lines))
    time.sleep(0.05)
with open(os.path.join(dw.data_dir, "admin.token")) as f:
    dw.token = f.read().strip()
acme = provision(dw)
src = "local P = {}\nfunction P.route(call, agents, ctx)\n  %s\nend\nreturn P\n" % POLICIES["chatty"]
acme.put("/v1/policies/chatty", src, headers={"Content-Type": "text/x-lua"})
acme.put("/v1/queues/q", {"policy": "chatty", "members": [{"agent": "alice"}]})
acme.post("/v1/calls", {"call": "w1", "queue": "q", "caller": CALLER})
t.is_(dw.stop(), 0, "log_level = warn: exit 0")
t.is_([l for l in dw.lines if not re.search(r"level=(warn|error) ", l)], [],
      "... and only warn and error lines")

# An account id may be written as a phone number ("+4930100088": ids take
# '+' and digits). The daemon's own lines say the account as the engine's
# do, as the value of their account= key: a number written with '+' reads
# [number] in every line, other digits are kept in every line alike.
da = t.owned(Daemon(conf={"log_level": "debug"})).start()
PLUS, BARE = "+4930100088", "4930100099"
for acct in (PLUS, BARE):
    a = provision(da, account=acct)
    st = Stream(da, a.auth)
    st.close()
    r = a.post("/v1/holds", {"id": "h1", "number": CALLER, "reason": "case 7"})
    t.is_(r.status, 201, "account %s: a legal hold placed" % acct, r)
    a.delete("/v1/holds/h1")
    a.post("/v1/erasure", {"number": CALLER})
    k = da.admin("POST", "/v1/accounts/%s/keys" % acct).json["key_id"]
    da.admin("DELETE", "/v1/accounts/%s/keys/%s" % (acct, k))
    a.delete("/v1/queues/support")
    a.delete("/v1/policies/first")
    r = da.admin("DELETE", "/v1/accounts/" + acct)
    t.is_(r.status, 200, "account %s deleted" % acct, r)
t.is_(da.stop(), 0, "exit 0")
daemon_lines = [l for l in da.lines if "account=" in l and "src=engine" not in l]
for want in ("account created", "api key created", "api key revoked", "policy stored",
             "policy deleted", "stream subscribed", "stream closed", "legal hold placed",
             "legal hold released", "erasure request", "account deleted"):
    t.is_(sorted(set(re.findall(r'account="([^"]*)"', " ".join(
        l for l in daemon_lines if 'msg="%s"' % want in l)))), ["4930100099", "[number]"],
        "%s: the account written with '+' reads [number], the other is kept" % want)
erased = [l for l in daemon_lines if 'msg="erasure request"' in l]
t.ok(len(erased) == 2 and all(re.search(r" deleted=\d+ anonymized=\d+ kept=\d+ held=\d+ "
                                        r"failed=\d+ live=\d+$", l) for l in erased),
     "each erasure request's line has its counts", erased)
t.is_([l for l in da.lines if PLUS[1:] in l], [],
      "no line holds the account id written as a number with '+'")
eng = re.findall(r'src=engine msg="policy loaded account=(\S+) ', "\n".join(da.lines))
t.is_(sorted(eng), ["4930100099", "[number]"],
      "... as the engine's own lines say the two accounts")

# A policy's upload, delete and forgotten history are one line each at
# info, the daemon's, with their fields as key=value a log pipeline can
# filter on: the engine's line of the same event (its fields inside msg)
# is at debug, as a reload's is.
di = t.owned(Daemon(conf={"log_level": "info"})).start()
a = provision(di, account="acme", queue=None)
mark = len(di.lines)
SRC = "local P = {}\nfunction P.route(c, a, x) return { wait = %d } end\nreturn P\n"
for n in (5, 6):
    r = a.put("/v1/policies/spare", SRC % n, headers={"Content-Type": "text/x-lua"})
    t.is_(r.status, 200, "policy spare uploaded (wait = %d)" % n, r)
r = a.delete("/v1/policy-versions/spare")
t.is_((r.status, (r.json or {}).get("forgotten")), (200, 1), "its earlier version forgotten", r)
r = a.delete("/v1/policies/spare")
t.is_(r.status, 200, "policy spare deleted", r)
t.is_(di.stop(), 0, "exit 0")
said = [l for l in di.lines[mark:] if "spare" in l]
kv = r'(?: [a-z_]+=(?:"[^"]*"|\S+))*$'
t.is_([re.sub(r"^\S+ ", "", l) for l in said if not re.search(
          r'level=info msg="policy (stored|deleted|history forgotten)"' + kv, l)], [],
      "each line of a policy's upload, delete and forget is the daemon's, fields outside msg")
t.is_([re.search(r'msg="([^"]*)"', l).group(1) for l in said],
      ["policy stored", "policy stored", "policy history forgotten", "policy deleted"],
      "... one line each")
t.ok(len(said) == 4 and re.search(r' account="acme" policy="spare" version=[0-9a-f]{16} '
                                  r'previous=[0-9a-f]{16}$', said[1])
     and said[2].endswith(' account="acme" policy="spare" version=all-past entries=1')
     and said[3].endswith(' account="acme" policy="spare"'),
     "... with the account, the policy, the versions and the entries forgotten", said)
t.done()
