#!/usr/bin/env python3
# Clients that pipeline requests and never read the answers cost the daemon
# little: a connection stops being read once 64 KiB of its responses wait
# (API.md, "Transport limits"), so sixteen of them flooding a 4 KiB
# document hold a few MiB between them, not 4 MiB each; another client is
# served meanwhile; and one that reads at last gets every answer, in order.
import os, socket, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, binary, provision, read_responses

t = TAP(deadline=120)
# Under AddressSanitizer freed memory waits in a quarantine (256 MiB): the
# daemon's growth would be the flood's churn, not what it holds.
env = None
if "libasan" in subprocess.run(["ldd", binary()], capture_output=True, text=True).stdout:
    env = {"ASAN_OPTIONS": ":".join(x for x in (os.environ.get("ASAN_OPTIONS"),
                                                 "quarantine_size_mb=0") if x)}
d = t.owned(Daemon(conf={"log_level": "info"}, env=env)).start()
acme = provision(d)
# A policy whose source is some 4 KiB: its GET is the response each request asks for.
src = "local P = {}\n" + "".join("-- padding line %04d of a policy read back many times\n" % i
                                 for i in range(75)) + \
      "function P.route(call, agents, ctx) return { wait = 60 } end\nreturn P\n"
r = acme.put("/v1/policies/big", src, headers={"Content-Type": "text/x-lua"})
t.is_(r.status, 200, "a 4 KiB policy to read back")
REQ = ("GET /v1/policies/big HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n\r\n" % acme.auth).encode()
size = len(acme.get("/v1/policies/big").body)
t.ok(size > 4000, "its document is %d bytes" % size)


def rss_kib():
    with open("/proc/%d/status" % d.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


N, FLOOD = 16, REQ * 20000   # 20,000 requests a connection: some 90 MB of answers
socks = []
for _ in range(N):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((d.host, d.port))
    s.setblocking(False)
    socks.append(s)
before = rss_kib()
sent = [0] * N
end = time.monotonic() + 4
while time.monotonic() < end:
    for i, s in enumerate(socks):
        try:
            sent[i] += s.send(FLOOD[sent[i]:sent[i] + 65536])
        except BlockingIOError:
            pass
    time.sleep(0.01)
grown = rss_kib() - before
t.diag("%d connections sent %d to %d KiB of requests each; the daemon grew %d KiB"
       % (N, min(sent) // 1024, max(sent) // 1024, grown))
t.ok(min(sent) > 256 * 1024, "each connection got some of its flood in (%d KiB at least)"
     % (min(sent) // 1024))
t.ok(grown < 16 * 1024, "%d connections flooding without reading: the daemon grew %d KiB, "
     "less than 16 MiB (1 MiB a connection)" % (N, grown))
t0 = time.monotonic()
r = acme.get("/v1/agents/alice")
t.ok(r.status == 200 and time.monotonic() - t0 < 2, "... another client is served meanwhile")

# One reads at last: every request it got in is answered, in order.
s = socks[0]
s.setblocking(True)
n = sent[0] // len(REQ)
resps, left = read_responses(s, n, timeout=20)
t.ok(len(resps) == n and all(x[0] == 200 and len(x[2]) == size for x in resps),
     "the first reads at last: its %d whole requests all answered 200, in full" % n,
     [x[0] for x in resps if x[0] != 200][:5])
for s in socks:
    s.close()
t.is_(d.request("GET", "/healthz").status, 200, "the daemon is fine")
t.is_(d.stop(), 0, "exit 0")
t.done()
