#!/usr/bin/env python3
# Mutated and split HTTP requests (fixed seed: the same inputs every run)
# never take the daemon down: it keeps answering and exits 0. Run it under
# `make test SANITIZE=address,undefined` to catch memory errors too.
import sys, os, random, socket
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision, rest_of

t = TAP(deadline=120)
d = t.owned(Daemon(conf={"max_body": "4K", "max_header": "1K", "idle_timeout": 2})).start()
acme = provision(d)
auth = acme.auth.encode()
seeds = [
    b"GET /v1/agents/alice HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n" % auth,
    b"PUT /v1/agents/zz HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Length: 58\r\n\r\n"
    b"{\"devices\":{\"softphone\":\"sip:a@b\"},\"status\":\"available\"}" % auth,
    b"POST /v1/calls HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"10\r\n{\"call\":\"c1\",\"qu\r\n1f\r\neue\":\"support\",\"caller\":\"+4912\r\n4\r\n345\"\r\n"
    b"1\r\n}\r\n0\r\n\r\n" % auth,
    b"POST /v1/calls/c1/abandon HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nExpect: 100-continue\r\n"
    b"Content-Length: 2\r\n\r\n{}" % auth,
    b"GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n" % auth,
    b"GET /healthz HTTP/1.0\r\n\r\n",
    b"PUT /v1/policies/p%%2Fq HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Length: 10\r\n\r\n"
    b"return {}\n" % auth,
]
rng = random.Random(20240601)


def mutate(b):
    b = bytearray(b)
    for _ in range(rng.randint(0, 6)):
        op = rng.random()
        if op < 0.3 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op < 0.5 and b:
            del b[rng.randrange(len(b))]
        elif op < 0.7:
            b.insert(rng.randrange(len(b) + 1), rng.choice(b"\r\n:% 0123456789abcdef{}\"\x00\xff"))
        elif op < 0.85 and b:
            i = rng.randrange(len(b))
            b[i:i] = b[i:i + rng.randint(1, 50)]
        else:
            b += rng.choice(seeds)
    return bytes(b)


answered = 0
for n in range(1000):
    data = b"".join(mutate(rng.choice(seeds)) for _ in range(rng.randint(1, 4)))
    cuts = sorted(rng.sample(range(1, len(data)), min(3, len(data) - 1))) if len(data) > 1 else []
    try:
        s = socket.create_connection((d.host, d.port), timeout=2)
        prev = 0
        for c in cuts + [len(data)]:
            s.sendall(data[prev:c])
            prev = c
        s.shutdown(socket.SHUT_WR)
        got = rest_of(s, 0.5)
        s.close()
        answered += got.startswith(b"HTTP/1.")
    except OSError:
        pass
    if d.proc.poll() is not None:
        break

t.ok(d.proc.poll() is None, "the daemon survived 1000 mangled connections")
t.ok(answered > 500, "... answering most of them (%d)" % answered)
t.is_(d.request("GET", "/healthz").status, 200, "... and still serves")
t.is_(acme.get("/v1/agents/alice").status, 200, "... with its state intact")
t.is_(d.stop(), 0, "exit 0")
t.ok(not [l for l in d.lines if "Sanitizer" in l or "runtime error" in l],
     "no sanitizer reports", "\n".join(d.lines[-20:]))
t.done()
