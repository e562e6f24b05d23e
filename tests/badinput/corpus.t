#!/usr/bin/env python3
# The bad-input corpus: well over 100 malformed or hostile requests, each sent
# raw on its own connection, each asserting the exact status and error code
# (and the field, where the library names one) — and, after each, that no
# state changed (GET snapshots of agents, queues, calls, policies and
# accounts compared with the ones taken before).
#
# Families: JSON that is truncated, trailing, non-standard or deeply nested;
# numbers too big for any field; every field of every document with the
# wrong type or out of range; invalid UTF-8 in bodies, keys and paths; ids
# too long or with bad bytes; request lines and headers that break the
# grammar; Content-Length and chunked-coding abuse; methods and routes that
# do not exist; credentials that are malformed. (tests/daemon/bad_input.t
# checks a first set; this goes wider. Slow and pipelined clients are in
# slow.t.)
import json, os, re, socket, sys
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "daemon"))
from sbtest import TAP, Daemon, provision, basic  # noqa: E402

t = TAP(deadline=300)
d = t.owned(Daemon(conf={"max_body": "16K", "max_header": "4K", "idle_timeout": 5})).start()
# c1 rings alice for the longest a ring may (600 s): the test may take longer
# than provision's 20 s on a loaded machine, and a ring timeout (the next
# agent rung) would change what each case compares.
acme = provision(d, ring=600)
acme.post("/v1/calls", {"call": "c1", "queue": "support", "caller": "+4930100001"})
AUTH = acme.auth
ADMIN = "Bearer " + d.token


def snapshot():
    s = {p: acme.get(p).body for p in ("/v1/agents", "/v1/queues", "/v1/agents/alice",
                                       "/v1/agents/bob", "/v1/queues/support", "/v1/calls/c1",
                                       "/v1/policies")}
    s["accounts"] = d.admin("GET", "/v1/accounts").body
    return s


def read_response(s, timeout=10):
    """One response from socket s: (status, headers dict, body bytes), or None."""
    s.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        try:
            chunk = s.recv(65536)
        except (socket.timeout, ConnectionResetError):
            return None
        if not chunk:
            return None
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ", lines[0])
    if not m:
        return None
    h = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        h[k.strip().lower()] = v.strip()
    n = int(h.get("content-length", "0"))
    while len(rest) < n:
        try:
            chunk = s.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        rest += chunk
    return int(m.group(1)), h, rest[:n]


def raw(data):
    s = socket.create_connection((d.host, d.port), timeout=10)
    try:
        s.sendall(data)
        return read_response(s)
    finally:
        s.close()


def request(method, path, body=None, headers=(), auth=True, ctype="application/json"):
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogateescape")
    h = "%s %s HTTP/1.1\r\nHost: x\r\n" % (method, path)
    if auth:
        h += "Authorization: %s\r\n" % (auth if isinstance(auth, str) else AUTH)
    if body is not None:
        h += "Content-Length: %d\r\n" % len(body)
        if ctype:
            h += "Content-Type: %s\r\n" % ctype
    for x in headers:
        h += x + "\r\n"
    return h.encode("latin-1", "surrogateescape") + b"\r\n" + (body or b"")


base = snapshot()
tried = 0


# Known daemon bugs, reported as TODO until fixed (prove does not fail on them).
KNOWN = {}


def case(name, data, status, code, field=Ellipsis):
    """Send data; expect status/code (and field unless Ellipsis); nothing changed."""
    global tried
    tried += 1
    r = raw(data)
    got = None
    if r:
        st, h, body = r
        try:
            err = json.loads(body).get("error", {})
        except ValueError:
            err = {}
        got = (st, err.get("code"), err.get("field"))
        good = st == status and err.get("code") == code and (field is Ellipsis or err.get("field") == field)
        good = good and set(err) >= {"code", "message", "field"}
    else:
        good = False
    want = (status, code) + (() if field is Ellipsis else (field,))
    t.ok(good, "%s: %d %s%s" % (name, status, code, "" if field is Ellipsis else " field=%s" % field),
         "got %r\nwant %r\nbody %r" % (got, want, r[2][:300] if r else None), KNOWN.get(name))
    now = snapshot()
    if now != base:
        t.ok(False, "... and nothing changed", "\n".join(
            "%s:\n  before %s\n  after  %s" % (k, base[k][:300], now[k][:300])
            for k in base if base[k] != now[k]))
        base.update(now)


AG = "/v1/agents/carol"
EV = "/v1/calls"
OK_AGENT = {"devices": {"softphone": "sip:carol@pbx.example"}}

# -- JSON that is not JSON --------------------------------------------------------
for i, body in enumerate([
        '{', '{"', '{"devices"', '{"devices":', '{"devices":{"softphone":"sip:c@x"}', '[', '"str"',
        'nul', 'tru', '{"name":"a",}', "{'name':'a'}", '{"weight":01}', '{"weight":.5}',
        '{"weight":1e}', '{"weight":-}', '{"weight":+1}', '{"weight":0x10}', '{"weight":NaN}',
        '{"weight":Infinity}', '{"name":"\\x41"}', '{"name":"\\u12"}', '{"name":"tab\there"}',
        '{"name":"a"}{"name":"b"}', '{"name":"a"} x', '/* c */{"name":"a"}', '\ufeff{"name":"a"}',
        '{"name":"a\\ud800"}', '{"name" "a"}', '{"name":"a" "weight":1}', '{,}', '{"name":}',
        '{"name":"a"', 'null', '123', 'true']):
    case("malformed JSON #%d %r" % (i + 1, body[:30]), request("PUT", AG, body), 400, "SB_EINVAL")
case("an event body that is a JSON array", request("POST", EV, '[{"call":"c9"}]'), 400, "SB_EINVAL")
case("duplicate keys in an event", request("POST", EV, '{"call":"c9","call":"c8","queue":"support",'
                                                       '"caller":"+4930100009"}'), 400, "SB_EINVAL")

# -- nesting --------------------------------------------------------------------------
case("3,000 nested arrays", request("PUT", AG, "[" * 3000 + "]" * 3000), 400, "SB_EINVAL", None)
case("2,100 nested objects", request("PUT", AG, '{"a":' * 2100 + "1" + "}" * 2100), 400,
     "SB_EINVAL", None)
case("attrs nested 2,100 deep", request("POST", EV, '{"call":"c9","queue":"support","caller":'
                                                    '"+4930100009","attrs":{"x":%s}}'
                                        % ("[" * 2100 + "]" * 2100)), 400, "SB_EINVAL", None)
case("an unterminated 10,000-deep nesting", request("PUT", AG, "[" * 10000), 400, "SB_EINVAL", None)

# -- numbers ------------------------------------------------------------------------------
OFFER = {"call": "c9", "queue": "support", "caller": "+4930100009"}
for v, what in [("1e400", "a double overflow"), ("99999999999999999999", "an integer overflow"),
                ("9223372036854775807", "INT64_MAX"), ("-9223372036854775808", "INT64_MIN"),
                ("-1", "-1"), ("101", "101"), ("50.5", "a fraction"), ('"50"', "a string"),
                ("true", "a boolean"), ("[50]", "an array")]:
    body = '{"call":"c9","queue":"support","caller":"+4930100009","priority":%s}' % v
    case("offer priority %s" % what, request("POST", EV, body), 400, "SB_EINVAL", "priority")
for fld, v in [("ring_timeout", 0), ("ring_timeout", 601), ("ring_timeout", 2 ** 31),
               ("ring_timeout", -2 ** 31), ("ring_timeout", 2 ** 63), ("max_wait", -1),
               ("max_wait", 2 ** 40), ("max_length", -1), ("wrapup", -5), ("wrapup", 10 ** 12),
               ("ring_timeout", 1.5), ("ring_timeout", "20")]:
    case("queue %s = %r" % (fld, v), request("PUT", "/v1/queues/q2", {"policy": "first", fld: v}),
         400, "SB_EINVAL", fld)
for fld, v in [("weight", -1), ("weight", 1e308), ("weight", "1"), ("wrapup", -1),
               ("wrapup", 10 ** 15), ("wrapup", 2.5)]:
    case("agent %s = %r" % (fld, v), request("PUT", AG, dict(OK_AGENT, **{fld: v})), 400,
         "SB_EINVAL", fld)
for fld, v in [("tier", 2 ** 40), ("tier", "1"), ("position", -(2 ** 40)), ("penalty", 1e300),
               ("weight", -3), ("weight", [])]:
    case("member %s = %r" % (fld, v), request("PUT", "/v1/queues/support/members/alice", {fld: v}),
         400, "SB_EINVAL", fld)

# -- wrong types and values, field by field ----------------------------------------------
for fld, v, path in [
        ("name", 1, "name"), ("name", "x" * 300, "name"), ("devices", "sip:x", "devices"),
        ("devices", [], "devices"), ("devices", {"softphone": 1}, "devices.softphone"),
        ("devices", {"fax": "tel:+4930"}, "devices.fax"),
        ("devices", {"softphone": ""}, "devices.softphone"),
        ("skills", [], "skills"), ("skills", {"english": "high"}, Ellipsis),
        ("skills", {"": 1}, "skills"), ("preferences", 1, "preferences"),
        ("preferences", {"device": "fax"}, "preferences.device"), ("timezone", 1, "timezone"),
        ("timezone", "Mars/Olympus", "timezone"), ("timezone", "../../etc/passwd", "timezone"),
        ("schedule", {}, Ellipsis), ("schedule", [{"days": "mon"}], Ellipsis),
        ("schedule", [{"days": ["funday"], "from": "09:00", "to": "17:00"}], Ellipsis),
        ("schedule", [{"days": ["mon"], "from": "25:00", "to": "17:00"}], Ellipsis),
        ("schedule", [{"days": ["mon"], "from": "09:00", "to": "9"}], Ellipsis),
        ("schedule", [{"days": ["mon"], "from": "09:00", "to": "17:00", "devices": ["fax"]}],
         Ellipsis),
        ("status", "busy", "status"), ("status", "on_call", "status"), ("status", 1, "status"),
        ("id", "dave", "id"), ("colour", "blue", "colour")]:
    case("agent %s = %r" % (fld, str(v)[:20]), request("PUT", AG, dict(OK_AGENT, **{fld: v})), 400,
         "SB_EINVAL", path)
for fld, v, path in [
        ("policy", 1, "policy"), ("policy", "../../etc/passwd", "policy"),
        ("members", {}, "members"), ("members", [{"agent": 1}], Ellipsis),
        ("members", ["alice"], Ellipsis), ("members", [{"agent": "alice", "tier": "1"}], Ellipsis),
        ("overflow", 1, "overflow"), ("overflow", "q2", "overflow"), ("fallback", "sometimes", "fallback"),
        ("fallback", 1, "fallback"), ("shoe_size", 9, "shoe_size")]:
    case("queue %s = %r" % (fld, str(v)[:20]), request("PUT", "/v1/queues/q2",
                                                     dict({"policy": "first"}, **{fld: v})),
         400, "SB_EINVAL", path)
# (A caller left out, null or "" is a withheld number, not bad input; one
# of spaces alone, or "anonymous", is.)
for fld, v in [("call", 1), ("call", ""), ("call", "x" * 129), ("call", "bad id!"),
               ("call", "c\u00e9"), ("queue", []), ("caller", "+0"), ("caller", "+1234567890123456"),
               ("caller", "4930100009"), ("caller", "+49abc"), ("caller", " "),
               ("caller", "anonymous"), ("called", "x"),
               ("called", 5), ("attrs", "str"), ("attrs", []), ("attrs", {"x": "y" * 5000}),
               ("type", "hangup"), ("type", 7)]:
    body = dict(OFFER, **{fld: v})
    case("offer %s = %r" % (fld, str(v)[:20]), request("POST", EV, body), 400, "SB_EINVAL",
         Ellipsis if fld in ("attrs",) and isinstance(v, dict) else fld)
for body, fld in [({"agent": "alice", "outcome": 1}, "outcome"),
                  ({"agent": "alice", "outcome": "maybe"}, "outcome"),
                  ({"agent": 1, "outcome": "answered"}, "agent"),
                  ({"outcome": "answered"}, "agent"),
                  ({"agent": "alice", "outcome": "answered", "call": "c2"}, "call")]:
    case("ring_result %r" % body, request("POST", "/v1/calls/c1/ring_result", body), 400,
         "SB_EINVAL", fld)
for body, fld in [({"status": "reserved"}, "status"), ({"status": 1}, "status"),
                  ({"status": "paused", "reason": 5}, "reason"),
                  ({"status": "paused", "reason": "x" * 300}, "reason"), ({}, "status"),
                  ({"status": "paused", "agent": "bob"}, "agent")]:
    case("agent status %r" % str(body)[:40], request("POST", "/v1/agents/alice/status", body), 400,
         "SB_EINVAL", fld)
case("account fallback 'never'", request("PUT", "/v1/accounts/acme", {"fallback": "never"},
                                         auth=ADMIN), 400, "SB_EINVAL", "fallback")
case("account id 129 bytes", request("POST", "/v1/accounts", {"id": "a" * 129}, auth=ADMIN), 400,
     "SB_EINVAL", "id")
case("policy JSON form without source", request("PUT", "/v1/policies/p2", {"cases": []}), 400,
     "SB_EINVAL", "source")
case("policy JSON form, cases not an array", request("PUT", "/v1/policies/p2",
                                                     {"source": "return {}", "cases": {}}),
     400, "SB_EINVAL", "cases")
case("policy that does not compile", request("PUT", "/v1/policies/p2", "return {", ctype="text/x-lua"),
     422, "SB_EPOLICY")
case("policy name with ..", request("PUT", "/v1/policies/a/../b", "return {}", ctype="text/x-lua"),
     400, "SB_EINVAL")

# -- invalid UTF-8 -------------------------------------------------------------------------
for i, seq in enumerate([b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82",
                         b"\x80", b"\xf4\x90\x80\x80", b"\xfe", b"\xff", b"\xe0\x80\x80",
                         b"\xf0\x80\x80\x80"]):
    body = b'{"name":"a' + seq + b'","devices":{"softphone":"sip:c@x"}}'
    case("invalid UTF-8 #%d in a value (%s)" % (i + 1, seq.hex()), request("PUT", AG, body), 400,
         "SB_EINVAL", None)
case("invalid UTF-8 in a key", request("PUT", AG, b'{"na\xffme":"a"}'), 400, "SB_EINVAL", None)
case("invalid UTF-8 in a policy source", request("PUT", "/v1/policies/p2", b"return {} -- \xff",
                                                 ctype="text/x-lua"), 400, "SB_EINVAL", None)
case("\\u0000 in an agent id", request("PUT", AG, '{"id":"car\\u0000ol"}'), 400, "SB_EINVAL")
case("\\u0000 in a name", request("PUT", AG, dict(OK_AGENT, name="a\u0000b")), 400, "SB_EINVAL")

# -- ids in paths -----------------------------------------------------------------------
case("PUT an agent id of 129 bytes", request("PUT", "/v1/agents/" + "a" * 129, OK_AGENT), 400,
     "SB_EINVAL", "id")
case("GET an agent id of 129 bytes", request("GET", "/v1/agents/" + "a" * 129), 404, "SB_ENOTFOUND")
case("PUT an agent id with %ff", request("PUT", "/v1/agents/a%ffb", OK_AGENT), 400, "SB_EINVAL", "id")
case("PUT an agent id with a slash (%2F)", request("PUT", "/v1/agents/a%2Fb", OK_AGENT), 400,
     "SB_EINVAL", "id")
case("PUT an agent id with a space (%20)", request("PUT", "/v1/agents/a%20b", OK_AGENT), 400,
     "SB_EINVAL", "id")
case("a percent-encoded NUL", request("GET", "/v1/agents/a%00b"), 400, "HTTP_BAD_REQUEST")
case("a truncated escape", request("GET", "/v1/agents/a%4"), 400, "HTTP_BAD_REQUEST")
case("GET /v1/calls/ with %zz", request("GET", "/v1/calls/%zz"), 400, "HTTP_BAD_REQUEST")
case("an empty id segment", request("GET", "/v1/agents/"), 404, "HTTP_NOT_FOUND")
case("a dot-dot segment", request("GET", "/v1/agents/alice/../bob"), 404, "HTTP_NOT_FOUND")
case("nine path segments", request("GET", "/v1/a/b/c/d/e/f/g/h"), 404, "HTTP_NOT_FOUND")
case("a double slash", request("GET", "//v1/agents"), 404, "HTTP_NOT_FOUND")

# -- request line ------------------------------------------------------------------------
for name, line, status, code in [
        ("an absolute-form target of another scheme", b"GET ftp://x/v1/agents HTTP/1.1", 400,
         "HTTP_BAD_REQUEST"),
        ("an absolute-form target without an authority", b"GET http:///v1/agents HTTP/1.1", 400,
         "HTTP_BAD_REQUEST"),
        ("an asterisk-form target", b"OPTIONS * HTTP/1.1", 400, "HTTP_BAD_REQUEST"),
        ("a tab for a space", b"GET\t/v1/agents HTTP/1.1", 400, "HTTP_BAD_REQUEST"),
        ("two spaces", b"GET  /v1/agents HTTP/1.1", 400, "HTTP_BAD_REQUEST"),
        ("no version", b"GET /v1/agents", 400, "HTTP_BAD_REQUEST"),
        ("HTTP/1.2", b"GET /v1/agents HTTP/1.2", 505, "HTTP_VERSION_NOT_SUPPORTED"),
        ("HTTP/2", b"GET /v1/agents HTTP/2", 505, "HTTP_VERSION_NOT_SUPPORTED"),
        ("lower-case http/1.1", b"GET /v1/agents http/1.1", 400, "HTTP_BAD_REQUEST"),
        ("a DEL byte in the target", b"GET /v1/agents\x7f HTTP/1.1", 400, "HTTP_BAD_REQUEST"),
        ("a high byte in the target", b"GET /v1/agents/\xe9 HTTP/1.1", 400, "HTTP_BAD_REQUEST"),
        ("a method with a bad character", b"G(ET /v1/agents HTTP/1.1", 400, "HTTP_BAD_REQUEST"),
        ("an empty request line", b" /v1/agents HTTP/1.1", 400, "HTTP_BAD_REQUEST"),
        ("a trailing space", b"GET /v1/agents HTTP/1.1 ", 400, "HTTP_BAD_REQUEST")]:
    case("request line: " + name, line + b"\r\nAuthorization: " + AUTH.encode() + b"\r\n\r\n",
         status, code)
case("a URI longer than max_header", request("GET", "/v1/agents/" + "a" * 5000), 431,
     "HTTP_HEADERS_TOO_LARGE")
for m in ("get", "PATCH", "OPTIONS", "TRACE", "CONNECT", "FOO"):  # HEAD: see daemon/http_framing.t
    case("method %s on an agent" % m, request(m, "/v1/agents/alice"), 405, "HTTP_METHOD_NOT_ALLOWED")

# -- headers ----------------------------------------------------------------------------------
for name, hdr, status, code in [
        ("a header without a colon", "X-Broken", 400, "HTTP_BAD_REQUEST"),
        ("a space before the colon", "X-A : b", 400, "HTTP_BAD_REQUEST"),
        ("an obs-fold continuation", "X-A: b\r\n c", 400, "HTTP_BAD_REQUEST"),
        ("a bad character in a name", "X(A): b", 400, "HTTP_BAD_REQUEST"),
        ("an empty name", ": b", 400, "HTTP_BAD_REQUEST"),
        ("a control character in a value", "X-A: b\x01c", 400, "HTTP_BAD_REQUEST"),
        ("a NUL in a value", "X-A: b\x00c", 400, "HTTP_BAD_REQUEST"),
        ("a bare CR in a value", "X-A: b\rc", 400, "HTTP_BAD_REQUEST"),
        ("Content-Length -1", "Content-Length: -1", 400, "HTTP_BAD_REQUEST"),
        ("Content-Length +5", "Content-Length: +5", 400, "HTTP_BAD_REQUEST"),
        ("Content-Length 0x10", "Content-Length: 0x10", 400, "HTTP_BAD_REQUEST"),
        ("Content-Length '5, 5'", "Content-Length: 5, 5", 400, "HTTP_BAD_REQUEST"),
        ("Content-Length of 19 digits", "Content-Length: 1000000000000000000", 400,
         "HTTP_BAD_REQUEST"),
        ("Content-Length empty", "Content-Length:", 400, "HTTP_BAD_REQUEST"),
        ("two different Content-Lengths", "Content-Length: 1\r\nContent-Length: 2", 400,
         "HTTP_BAD_REQUEST"),
        ("Transfer-Encoding gzip, chunked", "Transfer-Encoding: gzip, chunked", 501,
         "HTTP_NOT_IMPLEMENTED"),
        ("Transfer-Encoding identity", "Transfer-Encoding: identity", 501, "HTTP_NOT_IMPLEMENTED"),
        ("Content-Length with chunked", "Content-Length: 3\r\nTransfer-Encoding: chunked", 400,
         "HTTP_BAD_REQUEST"),
        ("Expect: 200-ok", "Expect: 200-ok", 417, "HTTP_EXPECTATION_FAILED"),
        ("101 header fields", "\r\n".join("X-H%d: v" % i for i in range(101)), 431,
         "HTTP_HEADERS_TOO_LARGE"),
        ("one header past max_header", "X-Big: " + "v" * 5000, 431, "HTTP_HEADERS_TOO_LARGE")]:
    data = ("GET /v1/agents HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n%s\r\n\r\n" % (AUTH, hdr))
    case("header: " + name, data.encode("latin-1"), status, code)
for name, data in [
        ("two Content-Types", request("PUT", AG, OK_AGENT, headers=("Content-Type: text/plain",))),
        ("two Content-Types, the same", request("PUT", AG, OK_AGENT,
                                                headers=("content-type: application/json",))),
        ("two Last-Event-IDs", request("GET", "/v1/events", headers=("Last-Event-ID: 1",
                                                                      "Last-Event-ID: 2"))),
        ("two Host fields", b"GET /v1/agents HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")]:
    case("header: " + name, data, 400, "HTTP_BAD_REQUEST")
case("a header block that never ends", b"GET /v1/agents HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 700, 431,
     "HTTP_HEADERS_TOO_LARGE")

# -- credentials ------------------------------------------------------------------------------
key = acme.key
for name, auth in [("Basic with invalid base64", "Basic !!!notbase64"), ("Basic empty", "Basic "),
                   ("Basic without a colon", basic("acme", "").replace("Basic ", "Basic ")[:-4] + "YWNtZQ=="),
                   ("Basic with a NUL in the key", basic("acme", key + "\x00")),
                   ("Basic with the key doubled", basic("acme", key + key)),
                   ("Basic 600 bytes long", "Basic " + "QUJD" * 150),
                   ("Digest", "Digest username=acme"), ("Bearer with the key", "Bearer " + key),
                   ("lower-case basic", "basic " + basic("acme", key)[6:] + "x")]:
    case("credentials: " + name, request("GET", "/v1/agents", auth=auth), 401, "SB_EAUTH")
# A singleton header given twice is refused, whichever comes first: the last
# one won (two proxies on the way may each read another one).
for name, hdrs in [
        ("a valid key, then a second Authorization header",
         "Authorization: %s\r\nAuthorization: Basic Zm9vOmJhcg==" % AUTH),
        ("a wrong key, then the valid one", "Authorization: Basic Zm9vOmJhcg==\r\nAuthorization: %s" % AUTH),
        ("the valid key twice", "Authorization: %s\r\nauthorization: %s" % (AUTH, AUTH))]:
    case("credentials: " + name, ("GET /v1/agents HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n" % hdrs).encode(),
         400, "HTTP_BAD_REQUEST")
case("admin: the token with extra text", request("GET", "/v1/accounts", auth=ADMIN + " x"), 401,
     "SB_EAUTH")
case("admin: no token", request("GET", "/v1/accounts", auth=False), 401, "SB_EAUTH")

# -- bodies and chunked coding ----------------------------------------------------------------
CH = ("PUT %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % (AG, AUTH)).encode()
for name, body, status, code in [
        ("a chunk size of 16 hex digits", b"1000000000000000\r\n", 413, "HTTP_BODY_TOO_LARGE"),
        ("a chunk size that is not hex", b"zz\r\n{}\r\n0\r\n\r\n", 400, "HTTP_BAD_REQUEST"),
        ("a chunk size without CR", b"2\n{}\r\n0\r\n\r\n", 400, "HTTP_BAD_REQUEST"),
        ("chunk data without its CRLF", b"2\r\n{}XX0\r\n\r\n", 400, "HTTP_BAD_REQUEST"),
        ("a 2000-byte chunk extension", b"2;" + b"x" * 2000, 400, "HTTP_BAD_REQUEST"),
        ("a negative chunk size", b"-2\r\n{}\r\n0\r\n\r\n", 400, "HTTP_BAD_REQUEST"),
        ("an empty chunk size", b"\r\n{}\r\n0\r\n\r\n", 400, "HTTP_BAD_REQUEST"),
        ("chunks past max_body", b"".join(b"400\r\n" + b" " * 1024 + b"\r\n" for _ in range(17)) +
         b"0\r\n\r\n", 413, "HTTP_BODY_TOO_LARGE"),
        ("a 9000-byte trailer", b"2\r\n{}\r\n0\r\n" + b"X-T: " + b"v" * 9000, 431,
         "HTTP_HEADERS_TOO_LARGE"),
        ("an empty trailer line without CR", b"2\r\n{}\r\n0\r\n\n", 400, "HTTP_BAD_REQUEST"),
        ("junk after a chunk size", b"2 zz\r\n{}\r\n0\r\n\r\n", 400, "HTTP_BAD_REQUEST"),
        ("a space after a chunk size", b"2 \r\n{}\r\n0\r\n\r\n", 400, "HTTP_BAD_REQUEST"),
        ("a bare CR after a chunk size", b"2\rz;x\r\n{}\r\n0\r\n\r\n", 400, "HTTP_BAD_REQUEST"),
        ("a control character in a chunk extension", b"2;a\x01b\r\n{}\r\n0\r\n\r\n", 400,
         "HTTP_BAD_REQUEST"),
        ("a trailer line ending in a bare LF", b"2\r\n{}\r\n0\r\nX: y\n\r\n", 400,
         "HTTP_BAD_REQUEST"),
        ("a trailer line ending in a bare LF, then a request",
         b"2\r\n{}\r\n0\r\nX: y\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400,
         "HTTP_BAD_REQUEST"),
        ("a trailer line without a colon", b"2\r\n{}\r\n0\r\nX-y\r\n\r\n", 400, "HTTP_BAD_REQUEST"),
        ("a trailer line with a bare CR", b"2\r\n{}\r\n0\r\nX: a\rb\r\n\r\n", 400,
         "HTTP_BAD_REQUEST")]:
    case("chunked: " + name, CH + body, status, code)
case("a body over max_body by Content-Length", request("PUT", AG, "x" * 17000), 413,
     "HTTP_BODY_TOO_LARGE")
case("Content-Length: 16385 declared, nothing sent",
     ("PUT %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Length: 16385\r\n\r\n" % (AG, AUTH)).encode(),
     413, "HTTP_BODY_TOO_LARGE")
case("a member body that is an array", request("PUT", "/v1/queues/support/members/alice", "[1]"),
     400, "SB_EINVAL")
case("an event route with another type", request("POST", "/v1/calls/c1/hangup", {"type": "abandon"}),
     400, "SB_EINVAL", "type")

t.diag("bad inputs tried: %d" % tried)
t.ok(tried >= 100, "at least 100 bad inputs tried (%d)" % tried)
t.is_(d.request("GET", "/healthz").status, 200, "the daemon still serves")
t.is_(d.stop(), 0, "exit 0")
t.ok(not [l for l in d.lines if "Sanitizer" in l or "runtime error" in l], "no sanitizer reports")
t.done()
