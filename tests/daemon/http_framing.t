#!/usr/bin/env python3
# Message framing on the HTTP/1.1 transport: a response to HEAD is its head
# alone (whatever the status), so the next pipelined response is read right;
# HEAD is answered wherever GET is, as GET would be; chunked request bodies
# are decoded as they arrive, in any number of chunks and writes, within
# max_body (decoded) and a cap on their size on the wire; Host is required
# on HTTP/1.1 (RFC 9112 3.2) and may be given only once. Refusals say what
# they refuse: 505 only for a well-formed HTTP-version, chunked applied twice
# (one field or two) 400, a raw NUL in a body or %00 in a path or query named
# as such.
import sys, os, re, socket, time, json, signal
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision, agent_doc, read_responses, rest_of

t = TAP(deadline=180)
d = t.owned(Daemon(conf={"max_body": "4K"})).start()
acme = provision(d)


def connect(timeout=10, daemon=None):
    daemon = daemon or d
    s = socket.create_connection((daemon.host, daemon.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def req(method, path, auth=None):
    h = "%s %s HTTP/1.1\r\nHost: t\r\n" % (method, path)
    if auth:
        h += "Authorization: %s\r\n" % auth
    return (h + "\r\n").encode()


def js(body):
    """The body as JSON (an object), {} if it is not."""
    try:
        o = json.loads(body)
    except ValueError:
        return {}
    return o if isinstance(o, dict) else {}


def error(body):
    return js(body).get("error") or {}


# -- HEAD: the head alone, whatever the status --------------------------------------------
s = connect()
s.sendall(req("HEAD", "/healthz") + req("GET", "/healthz"))
(h, g), left = read_responses(s, [True, False])
t.is_((h[0], g[0]), (200, 200), "HEAD /healthz then GET /healthz, pipelined: both 200")
t.is_(h[1].get("content-length"), str(len(g[2])),
      "... the HEAD's Content-Length is that of the GET's body")
t.is_(h[1].get("content-type"), g[1].get("content-type"), "... and so is its Content-Type")
t.ok(js(g[2]).get("status") == "ok" and left == b"",
     "... and the GET's response is read whole, nothing left over", (g, left))
s.close()

s = connect()
s.sendall(req("HEAD", "/v1/nothing") + req("HEAD", "/v1/calls/c1/hangup", auth=acme.auth) +
          req("HEAD", "/v1/agents/alice") + req("GET", "/healthz"))
(nf, na, ua, g), left = read_responses(s, [True, True, True, False])
t.is_(nf[0], 404, "HEAD on no route: 404")
t.ok(int(nf[1].get("content-length", "0")) > 0, "... with the Content-Length of its error body",
     nf[1])
t.is_((na[0], na[1].get("allow")), (405, "POST"), "HEAD on a route without GET: 405, Allow: POST")
t.is_((ua[0], ua[1].get("www-authenticate", "")[:5]), (401, "Basic"),
      "HEAD without credentials: 401 with WWW-Authenticate")
t.ok(g[0] == 200 and js(g[2]).get("status") == "ok" and left == b"",
     "... and after those three bodiless errors the GET's response is intact", (g, left))
s.close()

# HEAD on every GET route answers what GET answers, without the body, and
# changes nothing.
hold = acme.post("/v1/holds", {"id": "h1", "number": "+4930100001", "reason": "audit"})
t.is_(hold.status, 201, "a legal hold to list", hold)
admin = "Bearer " + d.token
routes = [("/healthz", None), ("/v1/accounts", admin), ("/v1/accounts/acme", admin),
          ("/v1/accounts/acme/keys", admin), ("/v1/agents", acme.auth),
          ("/v1/agents/alice", acme.auth), ("/v1/queues", acme.auth),
          ("/v1/queues/support", acme.auth), ("/v1/policies", acme.auth),
          ("/v1/policies/first", acme.auth), ("/v1/records?limit=5", acme.auth),
          ("/v1/holds", acme.auth), ("/v1/aggregates", acme.auth), ("/v1/audit", acme.auth),
          ("/v1/calls/nope", acme.auth), ("/v1/records?bogus=1", acme.auth)]
syncs0 = d.metric("switchboard_syncs_total")
s = connect()
s.sendall(b"".join(req("HEAD", p, auth=a) + req("GET", p, auth=a) for p, a in routes))
resps, left = read_responses(s, [True, False] * len(routes))
s.close()
bad = []
for i, (p, _) in enumerate(routes):
    h, g = resps[2 * i], resps[2 * i + 1]
    for k in ("content-type", "content-length", "allow", "www-authenticate"):
        if h[1].get(k) != g[1].get(k):
            bad.append((p, k, h[1].get(k), g[1].get(k)))
    if h[0] != g[0]:
        bad.append((p, "status", h[0], g[0]))
t.ok(None not in [x[0] for x in resps] and not bad and left == b"",
     "HEAD then GET on %d GET routes (2xx, 4xx, JSON): same status and headers" % len(routes),
     bad or (len(resps), left))
t.ok(all(int(resps[2 * i][1].get("content-length", "0")) > 0 for i in range(len(routes))),
     "... each HEAD with the Content-Length of a body it did not send")
t.is_(d.metric("switchboard_syncs_total"), syncs0, "... and nothing needed a sync")
# An access request is a GET route too, but it writes its entry in the
# audit log, a HEAD's as well: its head discloses something of the person
# (Switchboard-Live-Calls, Switchboard-Next, the length).
path = "/v1/records?number=%2B4930100001&format=csv"
audited = len([e for e in acme.get("/v1/audit").json["entries"] if e["action"] == "access_request"])
s = connect()
s.sendall(req("HEAD", path, auth=acme.auth) + req("GET", path, auth=acme.auth))
resps, left = read_responses(s, [True, False])
s.close()
h, g = resps
same = [k for k in ("content-type", "content-length", "switchboard-live-calls")
        if h[1].get(k) != g[1].get(k)]
t.ok(h[0] == g[0] == 200 and not same and h[2] == b"" and g[2] and left == b"",
     "HEAD then GET of an access request (CSV): same status and headers, the HEAD without "
     "the body", (h, g, left))
e = [x for x in acme.get("/v1/audit").json["entries"] if x["action"] == "access_request"]
t.is_([x["reason"] for x in e[audited:]], ["access request: 0 records disclosed as CSV"] * 2,
      "... each in the audit log, the HEAD as the GET it is answered as")

# /metrics: its body changes from one request to the next; the head is the point.
s = connect()
s.sendall(req("HEAD", "/metrics", auth=admin) + req("GET", "/healthz"))
(h, g), left = read_responses(s, [True, False])
t.ok(h[0] == 200 and h[1].get("content-type", "").startswith("text/plain") and
     int(h[1].get("content-length", "0")) > 0 and g[0] == 200 and left == b"",
     "HEAD /metrics: 200, text/plain with a length, no body", (h, g, left))
s.close()

# HEAD /v1/events: the stream's head, no stream; the connection goes on.
s = connect()
s.sendall(req("HEAD", "/v1/events", auth=acme.auth) + req("GET", "/healthz"))
(h, g), left = read_responses(s, [True, False])
t.is_((h[0], h[1].get("content-type")), (200, "text/event-stream"),
      "HEAD /v1/events: 200 text/event-stream")
t.ok(g[0] == 200 and js(g[2]).get("status") == "ok" and left == b"",
     "... no stream follows: the next request on the connection is answered", (g, left))
t.is_(d.metric("switchboard_stream_subscribers"), 0, "... and nobody was subscribed")
s.close()

# An error of the HTTP layer itself: also the head alone, then the close.
s = connect()
s.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 99999\r\n\r\n")
(h,), left = read_responses(s, [True])
left += rest_of(s)
t.ok(h[0] == 413 and int(h[1].get("content-length", "0")) > 0 and left == b"",
     "HEAD with a body over max_body: 413, its head alone, then closed", (h, left))
s.close()
r = d.raw(b"HEAD /healthz HTTP/1.1\r\n\r\n")
head, _, body = r.partition(b"\r\n\r\n")
t.ok(head.startswith(b"HTTP/1.1 400 ") and b"Content-Length: " in head and body == b"",
     "HEAD without Host: 400, its head alone", r)
r = d.raw(b"HEAD /healthz HTTP/1.0\r\n\r\n")
head, _, body = r.partition(b"\r\n\r\n")
t.ok(head.startswith(b"HTTP/1.0 200 ") and b"Connection: close" in head and body == b"",
     "HEAD over HTTP/1.0: 200, its head alone, closed", r)

# Refused before its head is parsed (too big, a NUL, bare LFs, a request line
# that does not split in three): a HEAD still, its answer the head alone, its
# Content-Length that of the body the same request as a GET is answered with.
for data, status, what in (
        (b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431,
         "a header over max_header"),
        (b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400, "a NUL in a header"),
        (b"HEAD /healthz HTTP/1.1\nHost: x\n\n", 400, "lines ending in a bare LF"),
        (b"HEAD /x HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400, "a request line in four parts")):
    r = d.raw(data)
    head, _, body = r.partition(b"\r\n\r\n")
    m = re.search(rb"\r\nContent-Length: (\d+)\r\n", head + b"\r\n")
    g = d.raw(b"GET " + data[5:]).partition(b"\r\n\r\n")
    t.ok(head.startswith(b"HTTP/1.1 %d " % status) and b"Connection: close" in head and
         body == b"" and m and int(m.group(1)) == len(g[2]) > 0 and
         g[0].startswith(b"HTTP/1.1 %d " % status),
         "HEAD with %s: %d, its head alone (Content-Length %s, the GET's body's), closed"
         % (what, status, m and m.group(1).decode()), (r, g))

# -- Host ------------------------------------------------------------------------------------
r = d.raw(b"GET /healthz HTTP/1.1\r\n\r\n")
head, _, body = r.partition(b"\r\n\r\n")
e = error(body)
t.ok(head.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in head,
     "HTTP/1.1 without Host: 400, and the connection is closed", r[:200])
t.ok(e.get("code") == "HTTP_BAD_REQUEST" and "Host" in e.get("message", "") and
     "field" in e and e["field"] is None, "... with the usual JSON error", body)
r = d.raw(b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
head, _, body = r.partition(b"\r\n\r\n")
e = error(body)
t.ok(head.startswith(b"HTTP/1.1 400 ") and e.get("code") == "HTTP_BAD_REQUEST" and
     "Host" in e.get("message", ""), "two Host fields: 400", r[:300])
r = d.raw(b"GET /healthz HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n")
t.ok(r.startswith(b"HTTP/1.1 400 "), "two Host fields, even equal and in other case: 400", r[:200])
r = d.raw(b"GET /healthz HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n")
t.ok(r.startswith(b"HTTP/1.1 400 "), "two Host fields on HTTP/1.0: 400", r[:200])
r = d.raw(b"GET /healthz HTTP/1.0\r\n\r\n")
t.ok(r.startswith(b"HTTP/1.0 200 "), "HTTP/1.0 without Host: served", r[:200])
r = d.raw(b"GET /healthz HTTP/1.1\r\nhost:\r\nConnection: close\r\n\r\n")
t.ok(r.startswith(b"HTTP/1.1 200 "), "an empty Host (any case): served", r[:200])
s = connect()
s.sendall(req("GET", "/healthz") + b"GET /healthz HTTP/1.1\r\n\r\n" + req("GET", "/healthz"))
resps, left = read_responses(s, [False, False, False])
left += rest_of(s)
t.ok([x[0] for x in resps] == [200, 400, None] and left == b"",
     "pipelined, a request without Host after a good one: 200, then 400 and the close",
     (resps, left))
s.close()

# -- the HTTP-version: 505 for a well-formed one other than 1.0 and 1.1, 400 for anything else ---
for line, status, what in (
        (b"GET /healthz HTTP/1.1\rX", 400, "a bare CR and more after HTTP/1.1"),
        (b"GET /healthz HTTP/1.1\r", 400, "a bare CR before the CRLF"),
        (b"GET /healthz HTTP/1.1x", 400, "HTTP/1.1x"),
        (b"GET /healthz HTTP/1.", 400, "HTTP/1."),
        (b"GET /healthz HTTP/", 400, "HTTP/"),
        (b"GET /healthz HTTP/11.1", 400, "HTTP/11.1"),
        (b"GET /healthz HTTP/1.2", 505, "HTTP/1.2"),
        (b"GET /healthz HTTP/2.0", 505, "HTTP/2.0"),
        (b"GET /healthz HTTP/3", 505, "HTTP/3 (as the version is named)")):
    r = d.raw(line + b"\r\nHost: x\r\n\r\n")
    head, _, body = r.partition(b"\r\n\r\n")
    msg = error(body).get("message")
    want = ("malformed request line" if status == 400 else
            "only HTTP/1.0 and HTTP/1.1 are supported")
    t.ok(head.startswith(b"HTTP/1.1 %d " % status) and msg == want,
         "%s: %d, %s" % (what, status, want), r)

# -- absolute-form targets (RFC 9112 3.2.2: a server must take them) ----------------------------
# The path and query are served; the authority is not checked (as Host's
# value is not), and Host is still required on HTTP/1.1.
def absolute(target, extra="Host: t\r\n", method="GET", body=b""):
    cl = "Content-Length: %d\r\n" % len(body) if body else ""
    r = d.raw(("%s %s HTTP/1.1\r\n%sAuthorization: %s\r\n%sConnection: close\r\n\r\n"
               % (method, target, extra, acme.auth, cl)).encode() + body)
    head, _, body = r.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.") else None, js(body)


for target in ("http://127.0.0.1/v1/agents/alice", "HTTP://switchboard.example:8470/v1/agents/alice",
               "https://user@[::1]:1/v1/agents/alice"):
    st, o = absolute(target)
    t.is_((st, o.get("id")), (200, "alice"), "GET %s: alice's document" % target)
st, o = absolute("http://a.example/v1/agents/alice", extra="Host: b.example\r\n")
t.is_(st, 200, "an authority other than Host's: served (neither is checked)")
st, o = absolute("http://x/v1/agents?limit=1")
t.is_((st, len(o.get("agents", []))), (200, 1), "a query in an absolute-form target is taken")
st, o = absolute("http://x/v1/agents?limit=0")
t.is_((st, o.get("error", {}).get("field")), (400, "limit"), "... and checked as any query is")
st, o = absolute("http://x/v1/agents/abs", method="PUT", body=json.dumps(agent_doc("abs")).encode())
t.ok(st == 200 and acme.get("/v1/agents/abs").status == 200, "a PUT to an absolute-form target",
     (st, o))
for target in ("http://x", "http://x?limit=1"):
    st, o = absolute(target)
    t.ok(st == 404 and o.get("error", {}).get("message") == "no route for GET /",
         "%s (no path): the path is /, 404" % target, (st, o))
st, o = absolute("http://127.0.0.1/v1/agents/alice", extra="")
t.ok(st == 400 and "Host" in o.get("error", {}).get("message", ""),
     "an absolute-form target on HTTP/1.1 without Host: 400, Host is still required", (st, o))
for target in ("ftp://x/v1/agents/alice", "http:///v1/agents/alice", "http:/v1/agents/alice",
               "x/v1/agents/alice", "*"):
    st, o = absolute(target)
    t.ok(st == 400 and o.get("error", {}).get("code") == "HTTP_BAD_REQUEST",
         "target %s: 400" % target, (st, o))

# -- what is not HTTP/1.x: answered at once, not after request_timeout (30 s) ---------------------
def at_once(data, pause=None, more=b""):
    """Send data (and `more` after `pause` seconds); (seconds to the answer
    and the close, status, error message)."""
    s = connect(10)
    t0 = time.monotonic()
    s.sendall(data)
    if pause:
        time.sleep(pause)
        s.sendall(more)
    (r,), left = read_responses(s, [False], timeout=10)
    left += rest_of(s, 10)
    s.close()
    return (time.monotonic() - t0, r[0], error(r[2]).get("message", ""), left)


HELLO = bytes.fromhex("160301020001000" "1fc0303") + bytes(range(32)) + b"\x00\x02\x13\x01"
for data, what, says in (
        (HELLO, "a TLS ClientHello", "TLS"),
        (b"\x16", "a TLS record's first byte alone", "TLS"),
        (b"GET /healthz HTTP/1.1\nHost: t\n\n", "a request in bare LFs", "CRLF"),
        (b"GET /healthz HTTP/1.1\n", "a request line ending in a bare LF", "CRLF"),
        (b"GET /healthz HTTP/1.1\r\nHost: t\n", "a header line ending in a bare LF", "CRLF"),
        (b"\n", "a bare LF before the request", "CRLF"),
        (b"\x80\x81binary", "binary", "not an HTTP request")):
    secs, st, msg, left = at_once(data)
    t.ok(st == 400 and says in msg and left == b"" and secs < 5,
         "%s: 400 at once (%.1f s), saying %s, then closed" % (what, secs, says), (st, msg, left))
# Bytes that may yet make a request line ending in CRLF are waited for.
secs, st, msg, left = at_once(b"GET /healthz HTTP/1.1\r", 0.3, b"\nHost: t\r\nConnection: close\r\n\r\n")
t.is_(st, 200, "a CR, then its LF in the next write: served")
secs, st, msg, left = at_once(b"\r", 0.3, b"\nGET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
t.is_(st, 200, "an empty line's CR, then its LF and a request: served")

# -- chunked request bodies ---------------------------------------------------------------------


def chunked(body, size=1, ext=b""):
    """body in chunks of `size` bytes (each with extension ext), the last
    chunk and an empty trailer."""
    return b"".join(b"%x%s\r\n%s\r\n" % (len(body[i:i + size]), ext, body[i:i + size])
                    for i in range(0, len(body), size)) + b"0\r\n\r\n"


def trickle(sock, data, step, pause_every=8):
    """Send data in writes of `step` bytes, pausing now and then so the
    daemon reads them apart. False if the daemon closed meanwhile."""
    try:
        for n, i in enumerate(range(0, len(data), step)):
            sock.send(data[i:i + step])
            if n % pause_every == 0:
                time.sleep(0.0005)
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


# -- Transfer-Encoding: chunked applied once (RFC 9112 6.1), on one line or over two ---------------
for tes, what in (("Transfer-Encoding: chunked, chunked", "chunked, chunked"),
                  ("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
                   "two Transfer-Encoding: chunked lines"),
                  ("Transfer-Encoding: chunked,chunked", "chunked,chunked"),
                  ("Transfer-Encoding: CHUNKED , Chunked", "CHUNKED , Chunked")):
    r = d.raw(("PUT /v1/agents/twice HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n%s\r\n\r\n"
               % (acme.auth, tes)).encode() + chunked(json.dumps(agent_doc("twice")).encode(), 64))
    head, _, body = r.partition(b"\r\n\r\n")
    e = error(body)
    t.ok(head.startswith(b"HTTP/1.1 400 ") and e.get("code") == "HTTP_BAD_REQUEST" and
         "chunked" in e.get("message", "") and "more than once" in e.get("message", ""),
         "%s: 400, chunked applied more than once" % what, r)
t.is_(acme.get("/v1/agents/twice").status, 404, "... and nothing was stored")
for tes in ("gzip", "chunked, gzip", "gzip, chunked", "chunked;x=1"):
    r = d.raw(("POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: %s\r\n\r\n0\r\n\r\n"
               % tes).encode())
    head, _, body = r.partition(b"\r\n\r\n")
    t.ok(head.startswith(b"HTTP/1.1 501 ") and error(body).get("message") ==
         "only the chunked transfer coding is supported",
         "Transfer-Encoding: %s: 501, as before" % tes, r)
r = d.raw(b"POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked,\r\n\r\n0\r\n\r\n")
t.ok(r.startswith(b"HTTP/1.1 405 "),
     "Transfer-Encoding: chunked, (an empty list element, RFC 9110 5.6.1): taken", r[:200])

note = "".join(chr(0x41 + i % 26) for i in range(3000)) + " caf\u00e9 \u2603"
doc = dict(agent_doc("tiny"), preferences={"note": note})
body = json.dumps(doc, ensure_ascii=False).encode()
wire = chunked(body)
s = connect(30)
s.sendall(("PUT /v1/agents/tiny HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n"
           "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
           % acme.auth).encode())
trickle(s, wire, 5)
(r,), left = read_responses(s, [False], timeout=30)
t.is_(r[0], 200, "a %d-byte JSON body in %d one-byte chunks (%d bytes on the wire, over max_body) "
      "in 5-byte writes: 200" % (len(body), len(body), len(wire)), r)
s.close()
got = acme.get("/v1/agents/tiny")
t.is_(got.json and got.json.get("preferences"), {"note": note}, "... and it arrived intact")

# Chunks of every size from 1 up, with extensions, split at every place.
body = json.dumps(dict(agent_doc("mixed"), preferences={"note": note[:2000]})).encode()
wire, i, n = b"", 0, 1
while i < len(body):
    wire += b"%X;n=%d\r\n%s\r\n" % (len(body[i:i + n]), n, body[i:i + n])
    i, n = i + n, n + 1
wire += b"0\r\nX-Checksum: none\r\nX-More: 1\r\n\r\n"
s = connect(30)
s.sendall(("PUT /v1/agents/mixed HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n"
           "Transfer-Encoding: chunked\r\n\r\n" % acme.auth).encode())
trickle(s, wire + req("GET", "/v1/agents/mixed", auth=acme.auth), 3)
resps, left = read_responses(s, [False, False], timeout=30)
s.close()
t.is_([x[0] for x in resps], [200, 200],
      "growing chunks (upper-case sizes, extensions, trailer fields) in 3-byte writes, then a "
      "pipelined GET: both answered")
t.is_(js(resps[1][2]).get("preferences", {}).get("note"), note[:2000],
      "... the body decoded intact")

# Chunk extensions as RFC 9112 7.1.1 has them (whitespace before the ";", a
# quoted value, several) and trailer fields with a tab in them are taken;
# other text after a chunk size is not (tests/badinput/corpus.t).
body = json.dumps(agent_doc("extended")).encode()
wire = (b"%X ;a=1\r\n%s\r\n%X\t; b = \"x y\";c\r\n%s\r\n0\r\nX-T:\tv\r\n\r\n"
        % (5, body[:5], len(body) - 5, body[5:]))
s = connect()
s.sendall(("PUT /v1/agents/extended HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n"
           "Transfer-Encoding: chunked\r\n\r\n" % acme.auth).encode() + wire)
resps, _ = read_responses(s, 1)
s.close()
t.is_(resps and resps[0][0], 200, "chunk extensions after whitespace, quoted, several: taken")

# A chunk size is its value, whatever its leading zeros (RFC 9112 7.1:
# 1*HEXDIG); a value past max_body is 413, however it is written.
body = json.dumps(agent_doc("zeros")).encode()
for zeros in (14, 200):
    s = connect()
    s.sendall(("PUT /v1/agents/zeros HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n"
               "Transfer-Encoding: chunked\r\n\r\n" % acme.auth).encode() +
              b"0" * zeros + b"%x\r\n%s\r\n" % (len(body), body) + b"0" * zeros + b"\r\n\r\n")
    resps, _ = read_responses(s, 1)
    s.close()
    t.is_(resps[0][0], 200, "a chunk size and the last chunk's with %d leading zeros: 200" % zeros,
          resps)
for size in (b"0000000000000001001", b"00000000000000000000000000000000000010000000000000000"):
    s = connect()
    s.sendall(("PUT /v1/agents/zeros HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n"
               "Transfer-Encoding: chunked\r\n\r\n" % acme.auth).encode() + size + b"\r\n")
    resps, left = read_responses(s, 1)
    s.close()
    t.ok(resps[0][0] == 413 and error(resps[0][2]).get("code") == "HTTP_BODY_TOO_LARGE",
         "chunk size %s (past max_body): 413" % size.decode(), resps)

# Over max_body decoded: 413, however small its chunks.
for size, what in ((1, "one-byte chunks"), (1024, "1K chunks")):
    s = connect(30)
    s.sendall(("PUT /v1/agents/big HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n"
               "Transfer-Encoding: chunked\r\n\r\n" % acme.auth).encode())
    trickle(s, chunked(b"x" * 5000, size), 64)
    resps, left = read_responses(s, [False], timeout=30)
    left += rest_of(s)
    s.close()
    t.ok(resps[0][0] == 413 and error(resps[0][2]).get("code") ==
         "HTTP_BODY_TOO_LARGE" and left == b"",
         "a chunked body of 5000 bytes (max_body 4K) in %s: 413, closed" % what,
         (resps, left))
t.is_(acme.get("/v1/agents/big").status, 404, "... and nothing was stored")

# Framing may not grow without bound either: chunk extensions count on the wire.
s = connect(30)
s.sendall(("PUT /v1/agents/ext HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n"
           "Transfer-Encoding: chunked\r\n\r\n" % acme.auth).encode())
trickle(s, chunked(b"{}" * 200, 1, b";" + b"e" * 1000), 4096, 1)
resps, left = read_responses(s, [False], timeout=30)
s.close()
t.ok(resps[0][0] == 413,
     "400 decoded bytes carried by 400 KB of chunk extensions: 413", resps)

# Malformed framing, late in a body that arrived in pieces: 400.
for bad, what in ((b"zz\r\n", "a chunk size that is not hex"),
                  (b"3\r\nabcX\r\n", "a chunk longer than its size"),
                  (b"3" * 1100 + b"\r\n", "a chunk-size line over 1K")):
    s = connect(30)
    s.sendall(("PUT /v1/agents/badchunk HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n"
               "Transfer-Encoding: chunked\r\n\r\n" % acme.auth).encode())
    trickle(s, chunked(b"{" * 300)[:-5] + bad, 7)
    resps, left = read_responses(s, [False], timeout=30)
    s.close()
    t.ok(resps[0][0] == 400 and error(resps[0][2]).get("code") ==
         "HTTP_BAD_REQUEST", "%s after 300 good chunks: 400" % what, resps)

# Many chunks over many writes are decoded whole. (What they cost is not a
# test's to time: decoding from the first chunk on every read took 2.7 s of
# the daemon's CPU for this body, resuming takes 0.25 s, measured by hand.)
d2 = t.owned(Daemon(conf={"max_body": "4M"})).start()
s = connect(60, d2)
s.sendall(b"POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
trickle(s, b"1\r\na\r\n" * 200000 + b"0\r\n\r\n", 240, 1)
resps, left = read_responses(s, [False], timeout=60)
s.close()
t.is_(resps[0][0], 405, "200,000 one-byte chunks in 5,000 writes: answered")

# -- NUL bytes said as such --------------------------------------------------------------------
# A raw NUL in a JSON body: where it is, not what jansson makes of the end it
# ends the text at. The same whichever route and whichever way the body
# came (a flat event body, a document, chunked).
for method, path, body, at, what in (
        ("POST", "/v1/agents/alice/status", b'{"status":"paused"}\x00', (1, 20),
         "after an event's object"),
        ("POST", "/v1/agents/alice/status", b'{"status":\x00"paused"}', (1, 11),
         "where an event's value goes"),
        ("PUT", "/v1/agents/nul", b'{"name":"N",\n "id": "nul"\x00}', (2, 13),
         "in a document, on its second line"),
        ("PUT", "/v1/agents/nul", b'{"name":"caf\xc3\xa9\x00"}', (1, 14),
         "in a string after an \u00e9 (its column in characters)"),
        ("PUT", "/v1/queues/nul", b'\xef\xbb\xbf{"x":1}\x00', (1, 8),
         "after a byte-order mark (not counted)"),
        ("POST", "/v1/calls", b"\x00", (1, 1), "alone in an offer"),
        ("PUT", "/v1/policies/nul", b'{"source":"return {}"}\x00', (1, 23),
         "in a policy upload as JSON")):
    for framing in ("length", "chunked"):
        if framing == "length":
            wire = ("Content-Length: %d\r\n\r\n" % len(body)).encode() + body
        else:
            wire = b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body, 5)
        r = d.raw(("%s %s HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n"
                   "Content-Type: application/json\r\nConnection: close\r\n"
                   % (method, path, acme.auth)).encode() + wire)
        head, _, rb = r.partition(b"\r\n\r\n")
        e = error(rb)
        want = "the body holds a NUL byte (line %d, column %d)" % at
        t.ok(head.startswith(b"HTTP/1.1 400 ") and e.get("code") == "SB_EINVAL" and
             e.get("message") == want, "a NUL byte %s (%s): 400 SB_EINVAL, %s"
             % (what, framing, want), r)
t.ok(acme.get("/v1/agents/nul").status == 404 and acme.get("/v1/queues/nul").status == 404 and
     acme.get("/v1/agents/alice").json.get("status") != "paused",
     "... and nothing was stored or applied")

# %00 is a well-formed escape: refused for the NUL it encodes, and said so.
for path, what in (("/v1/agents/a%00b", "an agent id"), ("/v1/agents/%00", "a whole segment"),
                   ("/v1/x%00/agents", "a fixed segment")):
    r = acme.get(path)
    t.ok((r.status, r.code) == (400, "HTTP_BAD_REQUEST") and
         r.json["error"]["message"] == "the path may not hold a NUL byte (%00)",
         "%%00 in %s: 400, the path may not hold a NUL byte (%%00)" % what, r)
r = acme.get("/v1/agents/%0")
t.ok(r.status == 400 and r.json["error"]["message"] == "malformed percent-encoding in the path",
     "a truncated escape in the path: still malformed percent-encoding", r)
for q, name in (("after=a%00b", "after"), ("limit=1&after=%00", "after"),
                ("after=%2500&limit=%00", "limit")):
    r = acme.get("/v1/agents?" + q)
    t.ok((r.status, r.code, r.field) == (400, "SB_EINVAL", name) and
         r.json["error"]["message"] == 'query parameter "%s" may not hold a NUL byte (%%00)' % name,
         "?%s: 400 naming %s, may not hold a NUL byte (%%00)" % (q, name), r)
r = acme.get("/v1/agents?after=%0g")
t.ok(r.status == 400 and r.field == "after" and
     r.json["error"]["message"] == 'malformed percent-escape in query parameter "after"',
     "a malformed escape in a query parameter: still malformed percent-escape", r)

# -- request_timeout and shutdown with a chunked body part-way -------------------------------------
first = d
d = t.owned(Daemon(conf={"request_timeout": 1})).start()
acme = provision(d)
s = connect()
s.sendall(("PUT /v1/agents/slow HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n"
           "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n" % acme.auth).encode())
resps, left = read_responses(s, [False], timeout=10)
t.ok(resps[0][0] == 408,
     "a chunked body stalled between chunks (nothing undecoded left): 408 after request_timeout",
     resps)
s.close()

# Twenty clients stalled at once time out together: their lines are one a
# second, the next one written saying how many were left out. The line of
# the timeout above is read first: read late, it would count as theirs.
d.wait_log(r'msg="request timed out', timeout=30)
before = len(d.lines)
# And the second that line opened is over. The twenty time out a
# request_timeout (1 s) after they connect by libevent's clock, which need
# not agree to the ms with the one the log's limit reads: connected at once
# after that line, they could all fall in its second, and their count would
# wait for a line that never comes (seen once under load: 0 lines).
time.sleep(1.2)
slow = [connect() for _ in range(20)]
for x in slow:
    x.sendall(b"GET /v1/agents HTTP/1.1\r\nHost: t\r\n")
got = [read_responses(x, [False], timeout=10)[0][0][0] for x in slow]
for x in slow:
    x.close()
t.is_(got, [408] * 20, "twenty stalled requests: each answered 408")
timed_out = lambda: [l for l in d.lines[before:] if "request timed out" in l]
# The lines are read from the daemon's stderr as they come, so counts are
# waited for; a batch that straddled a second has a not_logged_before line of
# its own, so the count is what is waited for, not the first such line.
told = lambda: sum(1 + int(re.search(r"not_logged_before=(\d+)", l).group(1)
                           if "not_logged_before=" in l else 0) for l in timed_out())
def wait_told(n):
    end = time.monotonic() + 30
    while told() < n and time.monotonic() < end:
        time.sleep(0.05)
wait_told(1)
t.ok(1 <= len(timed_out()) <= 3, "... in at most a line a second (%d lines)" % len(timed_out()))
time.sleep(1.1)
x = connect()
x.sendall(b"GET /v1/agents HTTP/1.1\r\nHost: t\r\n")
read_responses(x, [False], timeout=10)
x.close()
wait_told(21)
t.ok(told() == 21 and any("not_logged_before=" in l for l in timed_out()),
     "the next line says how many were left out: all 21 told", (told(), timed_out()))

mark = len(d.lines)
s = connect()
body = json.dumps(agent_doc("late")).encode()
wire = chunked(body, 10)
s.sendall(("PUT /v1/agents/late HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n"
           "Transfer-Encoding: chunked\r\n\r\n" % acme.auth).encode() + wire[:40])
# Each step waits for the daemon's line saying it is done, however slow the
# machine: the connection taken, then the signal handled.
d.wait_log(r'msg="connection accepted" .*peer=%s:%d' % s.getsockname(), after=mark, timeout=30)
d.signal(signal.SIGTERM)
d.wait_log(r'msg="shutting down', after=mark, timeout=30)
s.sendall(wire[40:])
resps, left = read_responses(s, [False], timeout=10)
t.ok(resps[0][0] == 200 and resps[0][1].get("connection") == "close",
     "SIGTERM while a chunked body is part-way in: it is still answered, with Connection: close",
     resps)
s.close()
t.is_(d.wait(20), 0, "... and the daemon exits 0")
t.is_(first.stop(), 0, "the first daemon exits 0 too")
t.ok(not [l for x in (first, d2, d) for l in x.lines if "Sanitizer" in l or "runtime error" in l],
     "no sanitizer report (under `make test SANITIZE=...`)")
t.done()
