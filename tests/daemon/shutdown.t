#!/usr/bin/env python3
# SIGTERM with requests in flight: the daemon stops accepting, answers every
# request it has (also ones still arriving; a /healthz among them is 503
# draining), closes idle connections, syncs and exits 0; what it
# acknowledged is there after a restart.
import sys, os, signal, socket, json, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision, agent_doc

t = TAP()
d = t.owned(Daemon()).start()
acme = provision(d)


def put_req(aid):
    body = json.dumps(agent_doc(aid)).encode()
    head = ("PUT /v1/agents/%s HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (aid, acme.auth, len(body))).encode()
    return head, body


closed_by_server = []


def read_all(s, timeout=15):
    """Everything until the server closes (records whether it did)."""
    s.settimeout(timeout)
    data = b""
    while True:
        try:
            b = s.recv(65536)
        except socket.timeout:
            closed_by_server.append(False)
            break
        except ConnectionResetError:
            closed_by_server.append(True)
            break
        if not b:
            closed_by_server.append(True)
            break
        data += b
    return data


# An idle keep-alive connection, complete requests not yet read by the
# daemon, and requests whose body is still on its way.
idle = socket.create_connection((d.host, d.port))
idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
idle.settimeout(10)
idle.recv(65536)

complete, partial = [], []
for i in range(3):
    s = socket.create_connection((d.host, d.port))
    head, body = put_req("full%d" % i)
    s.sendall(head + body)
    complete.append(s)
for i in range(3):
    s = socket.create_connection((d.host, d.port))
    head, body = put_req("half%d" % i)
    s.sendall(head + body[:10])
    partial.append((s, body[10:]))
# A /healthz whose first bytes arrived before the signal, its end after.
health = socket.create_connection((d.host, d.port))
health.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
pipelined = socket.create_connection((d.host, d.port))
h1, b1 = put_req("pipe1")
h2, b2 = put_req("pipe2")
pipelined.sendall(h1 + b1 + h2 + b2)

mark = len(d.lines)
d.signal(signal.SIGTERM)
t.ok(d.wait_log(r'msg="shutting down', after=mark, timeout=10) is not None, "SIGTERM: shutting down logged")

for s, rest in partial:
    s.sendall(rest)

health.sendall(b"\r\n")

answers = [read_all(s) for s in complete] + [read_all(s) for s, _ in partial]
t.is_([a.split(b" ", 2)[1] if a else None for a in answers], [b"200"] * 6,
      "all six in-flight requests were answered 200")
t.ok(all(closed_by_server), "... and then the daemon closed each connection")
t.ok(all(b"Connection: close" in a for a in answers[3:]),
     "... the late ones saying Connection: close")
p = read_all(pipelined)
t.is_(p.count(b"HTTP/1.1 200 "), 2, "both pipelined requests were answered")
t.is_(read_all(idle, 10), b"", "the idle keep-alive connection was closed")
h = read_all(health)
head, _, body = h.partition(b"\r\n\r\n")
t.ok(head.startswith(b"HTTP/1.1 503 ") and b"Connection: close" in head and
     json.loads(body or b"{}").get("status") == "draining" and json.loads(body).get("version"),
     "a /healthz begun before the drain: 503 {status: draining, version}, Connection: close", h)

refused = False
try:
    socket.create_connection((d.host, d.port), timeout=2).close()
except OSError:
    refused = True
t.ok(refused, "new connections are refused")
rc = d.wait(20)
t.is_(rc, 0, "the daemon exits 0")
t.ok(any('msg="stopped"' in l for l in d.lines), "... after logging stopped")

# What was acknowledged is durable.
d.start()
r = acme.get("/v1/agents")
ids = sorted(a["id"] for a in (r.json or {}).get("agents", []))
want = sorted(["alice", "bob"] + ["full%d" % i for i in range(3)] + ["half%d" % i for i in range(3)]
              + ["pipe1", "pipe2"])
t.is_(ids, want, "after a restart every acknowledged agent is there")
t.is_(d.stop(), 0, "exit 0 again")

# An event stream whose request was still arriving when SIGTERM came: the
# request is answered, but the stream is not kept open until
# shutdown_timeout (streams close at the drain).
ds = t.owned(Daemon(conf={"shutdown_timeout": 60, "stream_keepalive": 0})).start()
acme = provision(ds)
st = socket.create_connection((ds.host, ds.port))
st.sendall(("GET /v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n" % acme.auth).encode())
mark = len(ds.lines)
ds.signal(signal.SIGTERM)
t.ok(ds.wait_log(r'msg="shutting down', after=mark, timeout=10), "SIGTERM with a stream request half-sent")
st.sendall(b"\r\n")
got, closed, end = b"", False, time.monotonic() + 15
while not closed and time.monotonic() < end:
    st.settimeout(max(0.01, end - time.monotonic()))
    try:
        b = st.recv(65536)
    except socket.timeout:
        break
    except ConnectionResetError:
        b = b""
    closed = not b
    got += b
t.ok(got.startswith(b"HTTP/1.1 503 ") and b'"HTTP_DRAINING"' in got and closed,
     "the stream request is answered 503 HTTP_DRAINING and its connection closed within 15 s",
     got)
rc = ds.wait(20)
t.is_(rc, 0, "the daemon exits 0 without waiting for shutdown_timeout (60 s)")
t.ok(not any("shutdown timeout" in l for l in ds.lines), "... no shutdown timeout logged",
     [l for l in ds.lines if "shutdown timeout" in l])
t.done()
