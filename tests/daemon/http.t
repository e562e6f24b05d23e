#!/usr/bin/env python3
# The HTTP/1.1 transport: keep-alive, pipelining (answers in order), chunked
# request bodies, Expect: 100-continue, HTTP/1.0, a client that half-closes,
# and max_connections (503 with a JSON error).
import sys, os, socket, time, json
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision, agent_doc, read_responses, rest_of

t = TAP()
d = t.owned(Daemon(conf={"max_connections": 4})).start()
acme = provision(d)


def req(method, path, body=b"", extra=""):
    return ("%s %s HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\nContent-Length: %d\r\n%s\r\n"
            % (method, path, acme.auth, len(body), extra)).encode() + body


# -- keep-alive ----------------------------------------------------------------------
c = d.conn()
r1 = d.request("GET", "/v1/agents/alice", auth=acme.auth, conn=c)
r2 = d.request("GET", "/v1/agents/bob", auth=acme.auth, conn=c)
t.ok(r1.status == 200 and r2.status == 200 and r2.json["id"] == "bob",
     "two requests on one keep-alive connection")
c.close()

# -- pipelining ------------------------------------------------------------------------
s = socket.create_connection((d.host, d.port))
body = json.dumps(agent_doc("pipe")).encode()
s.sendall(req("GET", "/v1/agents/alice") + req("PUT", "/v1/agents/pipe", body) +
          req("GET", "/v1/agents/pipe") + req("GET", "/v1/nothing") + req("GET", "/v1/agents/bob"))
resps, _ = read_responses(s, 5)
t.is_([x[0] for x in resps], [200, 200, 200, 404, 200], "five pipelined requests, answered in order")
t.is_([json.loads(x[2]).get("id") for x in resps if x[0] == 200],
      ["alice", "pipe", "pipe", "bob"], "... each with its own body")
s.close()

# -- group commit: requests that arrive together share one sync ---------------------------
syncs0 = d.metric("switchboard_syncs_total")
s = socket.create_connection((d.host, d.port))
batch = b"".join(req("PUT", "/v1/agents/g%d" % i, json.dumps(agent_doc("g%d" % i)).encode())
                 for i in range(10))
s.sendall(batch)
resps, _ = read_responses(s, 10)
s.close()
syncs1 = d.metric("switchboard_syncs_total")
t.is_([x[0] for x in resps], [200] * 10, "ten pipelined PUTs answered")
t.ok(syncs1 - syncs0 <= 2, "... behind %d sync(s), not ten" % (syncs1 - syncs0))
t.ok(d.metric("switchboard_syncs_total") == syncs1, "reads need no sync")

# -- events that arrive together share one commit (which syncs their pages) -------------
commits0 = d.metric("switchboard_batch_commits_total")
secs0 = d.metric("switchboard_batch_commit_seconds_total")
s = socket.create_connection((d.host, d.port))
s.sendall(b"".join(req("POST", "/v1/agents/g%d/status" % i, b'{"status":"paused","reason":"x"}')
                   for i in range(10)))
resps, _ = read_responses(s, 10)
s.close()
commits = d.metric("switchboard_batch_commits_total") - commits0
t.is_([x[0] for x in resps], [200] * 10, "ten pipelined status events answered")
t.ok(1 <= commits <= 2 and d.metric("switchboard_batch_commit_seconds_total") > secs0,
     "... in %d commit(s), not ten, their time counted" % commits)


# -- events and other requests pipelined together: answered in order, each seeing
# what came before it (events go to the engine thread; a request of another kind
# waits until the connection's events before it are applied and answered) -------
s = socket.create_connection((d.host, d.port))
s.sendall(req("POST", "/v1/agents/g0/status", b'{"status":"paused","reason":"lunch"}') +
          req("GET", "/v1/agents/g0") +
          req("POST", "/v1/agents/g0/status", b'{"status":"sleeping"}') +
          req("POST", "/v1/agents/g0/status", b'{"status":"offline"}') +
          req("POST", "/v1/agents/nobody/status", b'{"status":"offline"}') +
          req("GET", "/v1/agents/g0") +
          req("POST", "/v1/agents/g0/status", b'{"status":"available"}') +
          req("GET", "/v1/agents/g0/nothing"))
resps, _ = read_responses(s, 8)
s.close()
t.is_([x[0] for x in resps], [200, 200, 400, 200, 404, 200, 200, 404],
      "events, reads and refusals pipelined on one connection: answered in order")
bodies = [json.loads(x[2]) for x in resps]
t.is_((bodies[1].get("status"), bodies[1].get("reason")), ("paused", "lunch"),
      "... a read after an event sees it applied")
t.is_(bodies[5].get("status"), "offline", "... and after the next ones")
t.ok(bodies[2]["error"]["field"] == "status" and bodies[4]["error"]["code"] == "SB_ENOTFOUND",
     "... refusals in their own places", bodies[2:5])
t.is_(acme.get("/v1/agents/g0").json.get("status"), "available", "... the last event applied")

# -- a client that half-closes after pipelined events gets every answer ---------------------
s = socket.create_connection((d.host, d.port))
s.sendall(b"".join(req("POST", "/v1/agents/g%d/status" % i, b'{"status":"paused","reason":"y"}')
                   for i in range(1, 6)))
s.shutdown(socket.SHUT_WR)
resps, rest = read_responses(s, 5)
t.is_([x[0] for x in resps], [200] * 5, "events sent before a half-close: all answered")
s.close()

# -- more events pipelined than a connection may have in hand (64), then a half-close:
# the rest are taken as answers come, and every one is answered ---------------------------
s = socket.create_connection((d.host, d.port))
s.sendall(b"".join(req("POST", "/v1/agents/g%d/status" % (i % 10), b'{"status":"paused","reason":"z"}')
                   for i in range(150)))
s.shutdown(socket.SHUT_WR)
resps, rest = read_responses(s, 150)
t.is_([x[0] for x in resps], [200] * 150, "150 pipelined events, then a half-close: all answered")
s.close()

# -- an event, then a request its head alone refuses (Expect: 100-continue, no route):
# the event's answer comes first ----------------------------------------------------------
s = socket.create_connection((d.host, d.port))
s.sendall(req("POST", "/v1/agents/g1/status", b'{"status":"paused","reason":"e"}') +
          ("POST /v1/nothing HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\nContent-Length: 10\r\n"
           "Expect: 100-continue\r\n\r\n" % acme.auth).encode())
resps, rest = read_responses(s, 2)
t.is_([x[0] for x in resps], [200, 404],
      "an event, then a request refused on its head: answered in that order")
s.close()

# -- a client that goes away with events in flight: applied all the same -------------------
s = socket.create_connection((d.host, d.port))
s.sendall(b"".join(req("POST", "/v1/agents/g%d/status" % i, b'{"status":"offline"}')
                   for i in range(6, 10)))
s.close()
deadline = time.time() + 10
while time.time() < deadline and any(acme.get("/v1/agents/g%d" % i).json.get("status") != "offline"
                                     for i in range(6, 10)):
    time.sleep(0.05)
t.ok(all(acme.get("/v1/agents/g%d" % i).json.get("status") == "offline" for i in range(6, 10)),
     "events whose client left before the answer: applied")
t.is_(d.request("GET", "/healthz").status, 200, "... and the daemon serves on")
# -- chunked request body ------------------------------------------------------------------
s = socket.create_connection((d.host, d.port))
body = json.dumps(agent_doc("chunky")).encode()
chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7])
                  for i in range(0, len(body), 7))
s.sendall(("PUT /v1/agents/chunky HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n"
           "Transfer-Encoding: chunked\r\n\r\n" % acme.auth).encode() + chunks + b"0\r\nX-Trailer: 1\r\n\r\n")
resps, _ = read_responses(s, 1)
t.is_(resps and resps[0][0], 200, "a chunked request body (with extensions and a trailer)")
t.is_(acme.get("/v1/agents/chunky").json.get("name"), "Chunky", "... was decoded")
s.close()

# -- Expect: 100-continue ---------------------------------------------------------------------
s = socket.create_connection((d.host, d.port))
body = json.dumps(agent_doc("eager")).encode()
s.sendall(("PUT /v1/agents/eager HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\nContent-Length: %d\r\n"
           "Expect: 100-continue\r\n\r\n" % (acme.auth, len(body))).encode())
first, _ = read_responses(s, 1)
t.is_(first and first[0][0], 100, "Expect: 100-continue gets 100 Continue")
s.sendall(body)
rest, _ = read_responses(s, 1)
t.is_(rest and rest[0][0], 200, "... then the answer")
s.close()

# Refused on its head (credentials, route, method, a query parameter): the
# final answer comes at once, with no 100 Continue inviting a body that would
# change nothing, and the connection closes; the body, sent anyway, is not
# taken. Nothing was made.
body = json.dumps(agent_doc("refused")).encode()
for what, line, auth, want in (
        ("a wrong key", "PUT /v1/agents/refused", "Basic YWNtZTpub3Bl", 401),
        ("no credentials", "PUT /v1/agents/refused", None, 401),
        ("no route", "PUT /v1/agentz/refused", acme.auth, 404),
        ("a method the route does not take", "PATCH /v1/agents/refused", acme.auth, 405),
        ("a query parameter the route does not take", "PUT /v1/agents/refused?x=1",
         acme.auth, 400)):
    for framing in ("Content-Length: %d\r\n" % len(body), "Transfer-Encoding: chunked\r\n"):
        s = socket.create_connection((d.host, d.port))
        s.sendall(("%s HTTP/1.1\r\nHost: t\r\n%s%sExpect: 100-continue\r\n\r\n"
                   % (line, "Authorization: %s\r\n" % auth if auth else "", framing)).encode())
        first, _ = read_responses(s, 1, timeout=3)
        name = "Expect: 100-continue, %s (%s)" % (what, framing.split(":")[0])
        t.is_((first[0][0], first[0][1].get("connection")), (want, "close"),
              name + ": %d at once, no 100 Continue, closed" % want, first)
        try:
            s.sendall(body if framing.startswith("Content") else
                      b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        except OSError:
            pass
        t.is_(rest_of(s, 2), b"", "... nothing more: the body is not taken")
        s.close()
t.is_(acme.get("/v1/agents/refused").status, 404, "no agent was made")

# -- HTTP/1.0 and Connection: close ------------------------------------------------------------
r = d.raw(("GET /v1/agents/alice HTTP/1.0\r\nAuthorization: %s\r\n\r\n" % acme.auth).encode())
t.ok(r.startswith(b"HTTP/1.0 200 ") and b"Connection: close" in r, "HTTP/1.0: answered and closed", r[:120])
r = d.raw(("GET /v1/agents/alice HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\nConnection: close\r\n\r\n"
           % acme.auth).encode())
t.ok(r.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in r, "Connection: close is honoured", r[:120])

# An HTTP/1.0 request with Transfer-Encoding (RFC 9112 6.1): answered, then
# the connection closed, keep-alive asked for or not; a request after it on
# the connection is not read.
for extra in ("", "Connection: keep-alive\r\n"):
    s = socket.create_connection((d.host, d.port))
    body = b'{"status":"available"}'
    s.sendall(("POST /v1/agents/alice/status HTTP/1.0\r\nAuthorization: %s\r\n%s"
               "Transfer-Encoding: chunked\r\n\r\n" % (acme.auth, extra)).encode() +
              b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) +
              ("GET /healthz HTTP/1.0\r\n%s\r\n" % extra).encode())
    resps, left = read_responses(s, 2, timeout=3)
    t.ok(resps[0][0] == 200 and resps[0][1].get("connection") == "close" and
         resps[1][0] is None and left == b"",
         "HTTP/1.0 with Transfer-Encoding%s: answered with Connection: close, and closed"
         % (" and keep-alive" if extra else ""), (resps, left))
    s.close()

# -- a client that half-closes after its request still gets the answer -------------------------
s = socket.create_connection((d.host, d.port))
s.sendall(req("GET", "/v1/agents/alice"))
s.shutdown(socket.SHUT_WR)
resps, _ = read_responses(s, 1)
t.is_(resps and resps[0][0], 200, "a half-closed client still gets its response")
s.close()

# -- max_connections -------------------------------------------------------------------------
held = []
for i in range(4):
    c = socket.create_connection((d.host, d.port))
    c.sendall(req("GET", "/healthz"))
    read_responses(c, 1)          # make sure the daemon has accepted it
    held.append(c)
r = d.raw(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
t.ok(r.startswith(b"HTTP/1.1 503 "), "past max_connections (4): 503", r[:200])
body = r.partition(b"\r\n\r\n")[2]
try:
    code = json.loads(body)["error"]["code"]
except Exception:
    code = None
t.is_(code, "HTTP_TOO_MANY_CONNECTIONS", "... with a JSON error")
for c in held:
    c.close()
ok = False
end = time.monotonic() + 10
while time.monotonic() < end and not ok:
    ok = d.request("GET", "/healthz").status == 200
t.ok(ok, "after the connections close, new ones are served again")
line = d.wait_log(r"too many connections", timeout=1)
t.ok(line is not None, "the refusal was logged")

t.is_(d.stop(), 0, "exit 0")
t.done()
