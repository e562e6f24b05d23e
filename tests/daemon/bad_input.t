#!/usr/bin/env python3
# Bad input is refused with the exact status and error code, and changes
# nothing: malformed JSON, non-UTF-8, unknown fields, wrong types, invalid
# E.164, oversize bodies (413) and headers (431), unknown routes and methods.
import sys, os, json, re
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision, agent_doc

t = TAP()
d = t.owned(Daemon(conf={"max_body": "4K", "max_header": "2K"})).start()
acme = provision(d)


def snapshot():
    return [acme.get(p).body for p in ("/v1/agents", "/v1/queues", "/v1/agents/alice",
                                       "/v1/queues/support")]


base = snapshot()
JSON = {"Content-Type": "application/json"}


def refused(r, status, code, name, field=None, check_field=False):
    good = r.status == status and r.code == code and (not check_field or r.field == field)
    t.ok(good, "%s: %d %s%s" % (name, status, code, " field=%s" % field if check_field else ""), r)
    t.ok(r.json is not None and set(r.json.get("error", {})) >= {"code", "message", "field"},
         "... as {\"error\":{code,message,field}}", r)


refused(acme.put("/v1/agents/carol", '{"name": "Carol", "devices": {', headers=JSON),
        400, "SB_EINVAL", "malformed JSON")
refused(acme.put("/v1/agents/carol", b'{"name": "Car\xffol", "devices": {"softphone": "sip:c@x"}}',
                 headers=JSON), 400, "SB_EINVAL", "non-UTF-8 body")
r = acme.put("/v1/agents/carol", b'{"name": "\xc3\x28"}', headers=JSON)
t.ok("UTF-8" in r.body, "... the message says UTF-8", r)
refused(acme.put("/v1/agents/carol", "[1, 2, 3]", headers=JSON), 400, "SB_EINVAL", "a JSON array body")
refused(acme.put("/v1/agents/carol", "", headers=JSON), 400, "SB_EINVAL", "an empty body")
refused(acme.put("/v1/agents/carol", '{"name": "A", "name": "B", "devices": {"softphone": "sip:c@x"}}',
                 headers=JSON), 400, "SB_EINVAL", "duplicate keys")
# A \u0000 in a string (value or key): said in the API's terms, not jansson's.
for path, body, what in (("/v1/agents/carol", '{"name": "Car\\u0000ol"}', "in an agent's name"),
                         ("/v1/calls", '{"call": "c\\u0000", "queue": "support"}', "in an offer"),
                         ("/v1/agents/alice/status", '{"status\\u0000": "paused"}', "in a key")):
    r = (acme.put if path.startswith("/v1/agents/carol") else acme.post)(path, body, headers=JSON)
    msg = ((r.json or {}).get("error") or {}).get("message", "")
    t.ok(r.status == 400 and r.code == "SB_EINVAL" and
         msg.startswith("strings may not contain \\u0000 (line 1, column ") and "JSON_" not in msg,
         "\\u0000 %s: 400 SB_EINVAL, strings may not contain \\u0000" % what, r)
refused(acme.put("/v1/agents/carol", dict(agent_doc("carol"), colour="blue")),
        400, "SB_EINVAL", "an unknown field", "colour", True)
refused(acme.put("/v1/agents/carol", dict(agent_doc("carol"), weight="heavy")),
        400, "SB_EINVAL", "a wrong type", "weight", True)
# An unknown field close to one the document takes is named with it.
r = acme.put("/v1/agents/carol", dict(agent_doc("carol"), wieght=3))
t.ok(r.status == 400 and r.field == "wieght" and
     r.json["error"]["message"] == "unknown field 'wieght' (did you mean 'weight'?)",
     "a misspelt field: 400 naming the field it is close to", r)
r = acme.post("/v1/retention/preview", {"indays": 8})
t.ok(r.status == 400 and r.json["error"]["message"] ==
     "unknown field 'indays' (did you mean 'in_days'?)",
     "... in every document, a retention preview's too", r)
# A number too big for the engine's JSON is named by its field, in the words
# the library gives the bindings, not as malformed JSON.
carol = json.dumps(agent_doc("carol"))[:-1]
for path, body, field, shown, how in (
        ("/v1/agents/carol", carol + ', "weight": 1e400}', "weight", "1e400",
         "too big a number (numbers go up to about 1.8e308)"),
        ("/v1/agents/carol", carol + ', "weight": 9223372036854775808}', "weight",
         "9223372036854775808",
         "too big a number (whole numbers go up to 9223372036854775807)"),
        ("/v1/agents/carol", carol + ', "skills": {"de": -99999999999999999999}}', "skills.de",
         "-99999999999999999999",
         "too small a number (whole numbers go down to -9223372036854775808)"),
        ("/v1/calls", '{"call": "c9", "queue": "support", "attrs": {"tier": [1, 2e999]}}',
         "attrs.tier[1]", "2e999", "too big a number (numbers go up to about 1.8e308)")):
    r = (acme.put if path.startswith("/v1/agents/carol") else acme.post)(path, body, headers=JSON)
    refused(r, 400, "SB_EINVAL", "%s in %s" % (shown, field), field, True)
    t.is_(((r.json or {}).get("error") or {}).get("message"), "'%s' is %s: %s" % (field, shown, how),
          "... saying what the bindings say")
r = acme.put("/v1/agents/carol", carol + ', "weight": 1e400, "name": }', headers=JSON)
refused(r, 400, "SB_EINVAL", "a number too big in a body malformed after it", None, True)
t.ok("1e400 at line 1 column" in r.body and "too big a number" in r.body,
     "... named by its line and column", r)
refused(acme.put("/v1/agents/carol", dict(agent_doc("carol"), devices={"fax": "tel:+1"})),
        400, "SB_EINVAL", "an unknown device", "devices.fax", True)
refused(acme.put("/v1/queues/support", {"policy": "first", "ring_timeout": "soon"}),
        400, "SB_EINVAL", "a queue with a wrong type", "ring_timeout", True)
refused(acme.put("/v1/agents/bad%20id", agent_doc("x")), 400, "SB_EINVAL", "an invalid id in the path")
refused(acme.post("/v1/calls", {"call": "c1", "queue": "support", "caller": "12345"}),
        400, "SB_EINVAL", "a caller that is not E.164", "caller", True)
refused(acme.post("/v1/calls", {"call": "c1", "queue": "support", "caller": "+1"}),
        400, "SB_EINVAL", "a too-short E.164 number", "caller", True)
refused(acme.post("/v1/calls", {"call": "c1", "queue": "support", "caller": "+4930100001",
                                "priority": "high"}), 400, "SB_EINVAL", "priority of the wrong type",
        "priority", True)
refused(acme.post("/v1/calls", {"call": "c1", "queue": "support", "caller": "+4930100001",
                                "shoe_size": 9}), 400, "SB_EINVAL", "an unknown event field",
        "shoe_size", True)
t.is_(acme.get("/v1/calls/c1").status, 404, "... none of those offers created c1")
refused(acme.post("/v1/agents/alice/status", {"status": "on_call"}), 400, "SB_EINVAL",
        "an agent status the gateway may not set", "status", True)
refused(acme.post("/v1/calls/c1/ring_result", {"agent": "alice", "outcome": "maybe"}), 400,
        "SB_EINVAL", "an unknown ring outcome", "outcome", True)

# -- sizes -----------------------------------------------------------------------
big = json.dumps(dict(agent_doc("carol"), name="x" * 5000))
refused(acme.put("/v1/agents/carol", big, headers=JSON), 413, "HTTP_BODY_TOO_LARGE",
        "a body over max_body (4K)")
r = d.raw(("PUT /v1/agents/carol HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
           "Content-Length: 10000000\r\n\r\n{" % acme.auth).encode())
t.ok(r.startswith(b"HTTP/1.1 413 ") and b"HTTP_BODY_TOO_LARGE" in r,
     "a declared Content-Length over max_body is 413 before the body is read", r[:200])
chunked = ("PUT /v1/agents/carol HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
           "Transfer-Encoding: chunked\r\n\r\n" % acme.auth).encode()
chunked += b"".join(b"400\r\n" + b" " * 1024 + b"\r\n" for _ in range(5)) + b"0\r\n\r\n"
r = d.raw(chunked)
t.ok(r.startswith(b"HTTP/1.1 413 ") and b"exceeds max_body" in r,
     "a chunked body over max_body is 413, saying so", r[:300])
# Its body small, its chunks' framing too large (a byte a chunk, each with a
# long extension): the 413 says it is the framing, not the body.
framed = ("PUT /v1/agents/carol HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
          "Transfer-Encoding: chunked\r\n\r\n" % acme.auth).encode()
framed += b"".join(b"1;x=" + b"e" * 900 + b"\r\n \r\n" for _ in range(90)) + b"0\r\n\r\n"
r = d.raw(framed)
t.ok(r.startswith(b"HTTP/1.1 413 ") and b"chunk framing" in r and b"fewer, larger chunks" in r,
     "90 bytes in chunks framed past max_header + max_body + 64K: 413 naming the framing",
     r[:400])
r = acme.get("/v1/agents", headers={"X-Padding": "p" * 3000})
t.is_((r.status, r.code), (431, "HTTP_HEADERS_TOO_LARGE"), "a header over max_header (2K): 431")
r = d.raw(b"GET /v1/agents HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 400)
t.ok(r.startswith(b"HTTP/1.1 431 "), "a header block that never ends within max_header: 431", r[:200])
# A request refused before it is handled counts under the route its head
# names, where the head was read; one without a readable head is unmatched.
m = d.admin("GET", "/metrics").body
t.is_(re.findall(r'^switchboard_http_requests_total\{route="([^"]*)",method="PUT",code="413"\} (\d+)',
                 m, re.M), [("/v1/agents/{id}", "4")],
      "the four 413s count under PUT /v1/agents/{id}, not as unmatched", re.findall(r".*413.*", m))
t.ok('route="unmatched",method="OTHER",code="431"' in m,
     "a header over max_header counts as unmatched (its head was not read)", m[-2000:])
r = acme.put("/v1/agents/carol", dict(agent_doc("carol"), preferences={"note": "x" * 3500}))
t.is_(r.status, 200, "a body just under max_body is fine", r)
acme.delete("/v1/agents/carol")

# -- a DELETE with a body: refused, nothing deleted ------------------------------------
t.is_(acme.post("/v1/holds", {"id": "hb", "number": "+442079460001", "reason": "case"}).status, 201,
      "a hold to release")
for body, what in (("{not json", "malformed JSON"), ('{"reason":"closed"}', "a reason")):
    r = acme.delete("/v1/holds/hb", body=body, headers=JSON)
    t.is_((r.status, r.code), (400, "SB_EINVAL"), "DELETE /v1/holds/hb with %s: 400" % what, r)
    t.ok("takes no body" in r.body, "... saying DELETE takes no body", r)
t.is_([h["id"] for h in acme.get("/v1/holds").json["holds"]], ["hb"], "... and the hold stands")
r = acme.delete("/v1/agents/alice", body='{"id":"bob"}', headers=JSON)
t.is_(r.status, 400, "DELETE of an agent with a body: 400 (any DELETE)", r)
t.is_(acme.get("/v1/agents/alice").status, 200, "... and alice is still there")
t.is_(acme.delete("/v1/holds/hb").status, 200, "without a body the hold is released")

# -- routes and methods -------------------------------------------------------------
r = acme.get("/v1/nothing")
t.is_((r.status, r.code), (404, "HTTP_NOT_FOUND"), "an unknown route: 404 HTTP_NOT_FOUND")
r = acme.get("/v1/agents/alice/extra")
t.is_((r.status, r.code), (404, "HTTP_NOT_FOUND"), "a route with an extra segment: 404")
r = acme.req("PATCH", "/v1/agents/alice", {"name": "x"})
t.is_((r.status, r.code), (405, "HTTP_METHOD_NOT_ALLOWED"), "PATCH: 405 HTTP_METHOD_NOT_ALLOWED")
t.is_(r.headers.get("allow"), "GET, HEAD, PUT, DELETE", "... with Allow: GET, HEAD, PUT, DELETE")
r = acme.post("/v1/agents", {"id": "x"})
t.is_((r.status, r.headers.get("allow")), (405, "GET, HEAD"), "POST /v1/agents: 405, Allow: GET, HEAD")
r = d.raw(b"GARBAGE\r\n\r\n")
t.ok(r.startswith(b"HTTP/1.1 400 ") and b"HTTP_BAD_REQUEST" in r, "a malformed request line: 400", r[:200])
r = d.raw(b"GET /v1/agents HTTP/2.0\r\n\r\n")
t.ok(r.startswith(b"HTTP/1.1 505 "), "HTTP/2.0 on this port: 505", r[:200])
r = d.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
t.ok(r.startswith(b"HTTP/1.1 400 "), "conflicting Content-Length: 400", r[:200])
r = d.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
          b"0\r\n\r\n")
t.ok(r.startswith(b"HTTP/1.1 400 "), "Content-Length with Transfer-Encoding: 400", r[:200])
r = d.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
t.ok(r.startswith(b"HTTP/1.1 501 "), "an unsupported transfer coding: 501", r[:200])
r = acme.get("/v1/agents/%zz")
t.is_((r.status, r.code), (400, "HTTP_BAD_REQUEST"), "a malformed percent-escape: 400")

# -- ids in the path that are not UTF-8 ------------------------------------------------
# Answered as an id of the wrong characters is (%C3%A9, a well-formed "é"):
# the same 400, naming the field, not "missing field" nor an empty message.
ADMIN_AUTH = "Bearer " + d.token
for method, path, body, auth in [
        ("PUT", "/v1/agents/%s", agent_doc("x"), acme.auth),
        ("PUT", "/v1/queues/%s", {"policy": "first"}, acme.auth),
        ("POST", "/v1/agents/%s/status", {"status": "available"}, acme.auth),
        ("POST", "/v1/calls/%s/hangup", None, acme.auth),
        ("POST", "/v1/calls/%s/ring_result", {"agent": "alice", "outcome": "answered"}, acme.auth),
        ("PUT", "/v1/accounts/%s", {"name": "X"}, ADMIN_AUTH)]:
    want = d.request(method, path % "%C3%A9", body, auth=auth)
    for bad in ("%FF", "a%FEb", "%C3"):
        r = d.request(method, path % bad, body, auth=auth)
        t.ok(r.status == 400 and (r.code, r.field, r.json["error"]["message"]) ==
             (want.code, want.field, want.json["error"]["message"]) and r.field,
             "%s %s: %d %s naming %s, as for %%C3%%A9" % (method, path % bad, want.status, want.code,
                                                          want.field), (r, want))
# In a query too: a filter of bytes that are not UTF-8 filters, as "é" does
# (it was left out, and the records list gave every record).
for q in ("/v1/records?queue=%s", "/v1/records?before_ms=1&before_id=%s"):
    want, r = acme.get(q % "%C3%A9"), acme.get(q % "%FF")
    t.ok(r.status >= 400 and (r.status, r.code, r.field) == (want.status, want.code, want.field),
         "GET %s: %d %s naming %s, as for %%C3%%A9" % (q % "%FF", want.status, want.code,
                                                      want.field), (r, want))
r = d.request("PUT", "/v1/accounts/%FF", {"id": "x", "name": "X"}, auth=ADMIN_AUTH)
msg = ((r.json or {}).get("error") or {}).get("message", "")
t.ok(r.status == 400 and r.field == "id" and "does not match the path" in msg,
     "PUT /v1/accounts/%FF with another id in the body: 400 naming id, saying so", r)
t.is_([a.get("id") for a in d.admin("GET", "/v1/accounts").json["accounts"]], ["acme"],
      "... and no account was made")

t.is_(snapshot(), base, "after all of that, nothing changed")

# -- fields of another event ---------------------------------------------------------
# Each event takes its own fields only: one that another event takes is as
# unknown as any (a ring_result with an offer's fields connected the call).
# Each body twice: as sent (a flat one is read at once) and with a string
# escaped (the daemon parses it).
def escaped(body):
    i = body.find(':"')
    return body[:i + 2] + "\\u%04x" % ord(body[i + 2]) + body[i + 3:]


r = acme.post("/v1/calls", {"call": "x1", "queue": "support", "caller": "+4930100001"})
t.is_([a["agent"] for a in r.actions("ring")], ["alice"], "x1 rings alice")
before = (acme.get("/v1/calls/x1").body, acme.get("/v1/agents").body)
for name, path, body, field, typ in [
        ("a ring_result with an offer's and a status's fields", "/v1/calls/x1/ring_result",
         '{"agent":"alice","outcome":"answered","caller":"junk","queue":"nonexistent",'
         '"status":"whatever","called":"xx","priority":99,"attrs":{"a":1}}', "caller",
         "a ring_result"),
        ("a ring_result with a caller", "/v1/calls/x1/ring_result",
         '{"agent":"alice","outcome":"answered","caller":"junk"}', "caller", "a ring_result"),
        ("a hangup with a ring_result's fields", "/v1/calls/x1/hangup",
         '{"agent":"nobody","queue":"nope","outcome":"bogus"}', "agent", "a hangup"),
        ("an abandon with an agent", "/v1/calls/x1/abandon", '{"agent":"alice"}', "agent",
         "an abandon"),
        ("a transfer with a caller", "/v1/calls/x1/transfer",
         '{"queue":"support","caller":"+4930100001"}', "caller", "a transfer"),
        ("an agent status with a call's fields", "/v1/agents/bob/status",
         '{"status":"paused","call":"zzz","caller":"x"}', "call", "an agent_status"),
        ("an offer with an outcome", "/v1/calls",
         '{"call":"x2","queue":"support","caller":"+4930100002","outcome":"answered"}',
         "outcome", "an offer")]:
    msgs = []
    for b in (body, escaped(body)):
        r = acme.post(path, b, headers=JSON)
        refused(r, 400, "SB_EINVAL", name, field, True)
        msgs.append(((r.json or {}).get("error") or {}).get("message", ""))
    want = "unknown field '%s' for %s event (expected " % (field, typ)
    t.ok(msgs[0] == msgs[1] and msgs[0].startswith(want),
         "... saying \"%s...\" both ways" % want, msgs)
t.is_((acme.get("/v1/calls/x1").body, acme.get("/v1/agents").body), before,
      "... x1 still rings alice, bob is not paused")
t.is_(acme.get("/v1/calls/x2").status, 404, "... and no x2 was offered")
t.is_(acme.post("/v1/calls/x1/ring_result", '{"agent":"alice","outcome":"answered","call":"x1"}',
                headers=JSON).status, 200, "the ring_result with its own fields: 200")
acme.post("/v1/calls/x1/hangup")
t.is_(d.request("GET", "/healthz").status, 200, "the daemon is fine")
t.is_(d.stop(), 0, "exit 0")
t.done()
