#!/usr/bin/env python3
# The daemon as a gateway integrator meets it, from API.md alone: what it
# logs (no caller number in any form a log reader would recognise, while
# ids, times and durations stay readable), and the edges of the routes the
# other daemon tests leave out.
import sys, os, re, signal
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision

t = TAP()
d = t.owned(Daemon(conf={"log_level": "debug"})).start()
acme = provision(d, agents=("alice", "bob"))
LUA = {"Content-Type": "text/x-lua"}


def lua_str(s):
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


# -- the log: numbers written without '+' ----------------------------------------
# Each case is logged by a policy (ctx.log) as "K<i>|<text>"; the engine's
# line must show the text with its numbers, and only those, as [number].
REDACT = [
    ("national 030 1234567", "national [number]"),
    ("unspaced 0301234567", "unspaced [number]"),
    ("dashes 030-123-4567", "dashes [number]"),
    ("dots 030.123.4567", "dots [number]"),
    ("slash 030/1234567", "slash [number]"),
    ("brackets (030) 1234567", "brackets [number]"),
    ("uk 020 7946 0001", "uk [number]"),
    ("fr 01 23 45 67 89", "fr [number]"),
    ("us (212) 555-0123 or 212-555-0123", "us [number] or [number]"),
    ("nanp 1 212 555 0123", "nanp [number]"),
    ("international 00493012345678", "international [number]"),
    ("e164 without plus 4930100077", "e164 without plus [number]"),
    ("plus with trunk +44 (0) 20 7946 0001", "plus with trunk [number]"),
    ("uri tel:0301234567 sip:0301234567@pbx", "uri tel:[number] sip:[number]@pbx"),
    ("two 0301234567 0409876543", "two [number] [number]"),
    ("caller=0301234567", "caller=[number]"),
    ("no agent for '030 1234567'", "no agent for '[number]'"),
    # kept: what a reader needs, which no one writes a number like
    ("now 1795885484.142 idle 0.033 s", "now 1795885484.142 idle 0.033 s"),
    ("t_ms 1795885484142 and 1795885484", "t_ms 1795885484142 and 1795885484"),
    ("ids c1234567 agent_0301234 v2.1234567", "ids c1234567 agent_0301234 v2.1234567"),
    ("account=10234567 version=1234567890123456", "account=10234567 version=1234567890123456"),
    ("call=0301234567 agent=0409876543", "call=[number] agent=[number]"),
    ("on 2026-11-28 17:04:44 from 192.168.100.200:8470",
     "on 2026-11-28 17:04:44 from 192.168.100.200:8470"),
    ("counts 1 2 3 4 5 6 7, short 112, 123456", "counts 1 2 3 4 5 6 7, short 112, 123456"),
    ("a hash 12345678901234567890", "a hash 12345678901234567890"),
]
src = ("local P = {}\nlocal CASES = {%s}\nfunction P.route(call, agents, ctx)\n"
       "  for i, s in ipairs(CASES) do ctx.log(\"K\" .. i .. \"|\" .. s) end\n"
       "  return { ring = agents[1].id, timeout = 20 }\nend\nreturn P\n"
       % ", ".join(lua_str(c) for c, _ in REDACT))
r = acme.put("/v1/policies/chatty", src, headers=LUA)
t.is_(r.status, 200, "a policy that logs numbers written every which way", r)
acme.put("/v1/queues/q-chatty", {"policy": "chatty", "members": [{"agent": "alice"}]})
n0 = len(d.lines)
r = acme.post("/v1/calls", {"call": "k1", "queue": "q-chatty", "caller": "+4930100077"})
t.is_(r.status, 201, "a call through it", r)
acme.post("/v1/calls/k1/abandon")
t.ok(d.wait_log(r"K%d\|" % len(REDACT), after=n0), "its ctx.log lines were logged")
for i, (text, want) in enumerate(REDACT, 1):
    line = d.wait_log(r"K%d\|" % i, timeout=1, after=n0) or ""
    m = re.search(r'K%d\|(.*?)"( |$)' % i, line)
    t.is_(m.group(1) if m else line, want, "ctx.log %r is logged as %r" % (text, want))

# A policy whose source quotes a number: the upload's error echoes the token,
# and so does a reload of a shared policy that does not compile.
n0 = len(d.lines)
r = acme.put("/v1/policies/vip", "local VIP = { 0301234567 0409876543 }\n", headers=LUA)
t.is_((r.status, r.code), (422, "SB_EPOLICY"), "a policy that does not compile is refused", r)
line = d.wait_log(r'msg="policy rejected"', after=n0) or ""
t.ok(line and "0409876543" not in line and "[number]" in line,
     "... and the log line saying so shows the number it quotes as [number]", line)
with open(os.path.join(d.policy_dir, "broken.lua"), "w") as f:
    f.write("local VIP = { 030 1234567 }\nreturn {}\n")
d.signal(signal.SIGHUP)
line = d.wait_log(r'msg="reload failed', after=n0) or ""
t.ok(line and "1234567" not in line and "[number]" in line,
     "a reload that fails on such a file logs it as [number]", line)
os.unlink(os.path.join(d.policy_dir, "broken.lua"))


# Call ids are the gateway's: one may be the caller's number, and the debug
# line of each request names its path.
n0 = len(d.lines)
for cid, path in (("+4930555666", "/v1/calls/%2B4930555666"), ("0305556667", "/v1/calls/0305556667")):
    r = acme.post("/v1/calls", {"call": cid, "queue": "support", "caller": "+4930100078"})
    t.is_(r.status, 201, "a call named %s" % cid, r)
    r = acme.post(path + "/hangup")
    t.is_(r.status, 200, "... hung up as POST %s/hangup" % path, r)
line = d.wait_log(r'msg="request" .*path="/v1/calls/\[number\]/hangup"', after=n0)
t.ok(line, "the request's debug line shows its path with the number as [number]", line)
leaks = [l for l in d.lines[n0:] if "555666" in l or "5556667" in l]
t.is_(leaks, [], "... and no line shows those call ids in clear")

# -- refusals that say what is wrong ---------------------------------------------------


def snapshot():
    return [acme.get(p).body for p in ("/v1/agents", "/v1/queues", "/v1/holds", "/v1/calls/k1")]


def message(r):
    return ((r.json or {}).get("error") or {}).get("message", "")


base = snapshot()
JSON = {"Content-Type": "application/json"}
# A body that is JSON but not an object is not "malformed JSON".
for body in ("5", '"paused"', "null", "[1, 2]"):
    for method, path in (("POST", "/v1/agents/alice/status"), ("PUT", "/v1/agents/alice"),
                         ("POST", "/v1/calls/k1/hangup")):
        r = acme.req(method, path, body, headers=JSON)
        t.ok((r.status, r.code, r.field) == (400, "SB_EINVAL", None) and
             message(r) == "the body must be a JSON object",
             "%s %s with the body %s: 400, the body must be a JSON object" % (method, path, body),
             r)
# An id of the wrong type in the body is a wrong type, not a mismatch.
for method, path, body, key in (("PUT", "/v1/agents/alice", {"id": 7}, "id"),
                                ("PUT", "/v1/queues/support", {"id": None}, "id"),
                                ("POST", "/v1/calls/k1/hangup", {"call": 1}, "call"),
                                ("POST", "/v1/agents/alice/status",
                                 {"agent": ["alice"], "status": "paused"}, "agent")):
    r = acme.req(method, path, body)
    t.ok((r.status, r.field) == (400, key) and "must be a string" in message(r),
         "%s %s with %r: 400 naming %s, which must be a string" % (method, path, body, key), r)
r = acme.put("/v1/agents/alice", {"id": "bob"})
t.ok((r.status, r.field) == (400, "id") and "does not match the path" in message(r),
     "... while another id still reads as not matching the path", r)
# A query number too large for any field is not "not a non-negative integer".
for path, name in (("/v1/records?limit=99999999999999999999", "limit"),
                   ("/v1/records?from_ms=99999999999999999999", "from_ms"),
                   ("/v1/aggregates?to_ms=99999999999999999999", "to_ms"),
                   ("/v1/audit?after=99999999999999999999", "after")):
    r = acme.get(path)
    t.ok((r.status, r.field) == (400, name) and "too large" in message(r),
         "GET %s: 400 naming %s, too large" % (path, name), r)
r = acme.get("/v1/audit?after=-1")
t.ok((r.status, r.field) == (400, "after") and "non-negative integer" in message(r),
     "... and a negative one is still not a non-negative integer", r)

# -- the audit log's pages ---------------------------------------------------------------
for i in range(3):
    acme.post("/v1/holds", {"id": "a%d" % i, "from_ms": 1700000000000,
                            "to_ms": 1700000000001 + i, "reason": "case %d" % i})
    acme.delete("/v1/holds/a%d" % i)
seen, after = [], 0
for _ in range(10):
    r = acme.get("/v1/audit?after=%d&limit=4" % after)
    if r.status != 200 or not r.json["entries"]:
        break
    seen += [e["seq"] for e in r.json["entries"]]
    after = r.json["next"]
t.is_(seen, [1, 2, 3, 4, 5, 6], "the audit log read in pages of 4: every entry once, in order")
t.is_(acme.get("/v1/audit?after=%d" % after).json, {"entries": [], "next": after},
      "... the page past the end is empty and keeps its place")
r = acme.get("/v1/audit?limit=0")
t.ok((r.status, r.code, r.field) == (400, "SB_EINVAL", "limit"),
     "?limit=0 is 400 naming limit (it read as 1,000 entries)", r)
r = acme.get("/v1/audit?limit=100001")
t.ok((r.status, r.field) == (400, "limit") and "100000" in message(r),
     "?limit=100001 is 400 naming the most (it was cut to 100,000 without a word)", r)
t.is_(len(acme.get("/v1/audit?limit=100000").json["entries"]), 6, "?limit=100000 is fine")
t.is_(len(acme.get("/v1/audit").json["entries"]), 6, "... and no limit reads from the start")
t.is_(snapshot(), base, "none of those requests changed anything")

t.is_(d.stop(), 0, "SIGTERM: exit 0")
numbers = ["4930555666", "0305556667", "0301234567", "030 1234567", "0409876543", "1234567", "7946 0001", "555-0123",
           "4930100077", "00493012345678"]
kept = tuple("K%d|" % i for i, (text, want) in enumerate(REDACT, 1) if text == want)
t.is_([l for l in d.lines if any(n in l for n in numbers) and not any(k in l for k in kept)], [],
      "no other log line holds any of those numbers")
t.done()
