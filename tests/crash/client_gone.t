#!/usr/bin/env python3
# A client that goes while its events wait for the engine: they are applied
# all the same, answered to no one, and the daemon serves on. The daemon
# (sync = group) runs under the synctrace.so shim, which holds the engine
# thread in its commit's sync while a file exists, so the client is surely
# gone (a reset, not a half-close, which would still be answered) while its
# events are
#  1. collected on the loop, behind a batch the engine thread has in hand;
#  2. in the batch the engine thread has in hand.
# A job left naming the freed connection would be a use after free here:
# the sanitizer build (make test SANITIZE=address,undefined, as CI runs it)
# fails on it; a plain build may not notice.
import os, shutil, socket, struct, sys, tempfile, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synckit import SHIM, traced  # noqa: E402
from sbtest import TAP, provision  # noqa: E402

t = TAP(deadline=120)
t.ok(os.path.exists(SHIM), "the shim is built (%s)" % SHIM)
tmp = tempfile.mkdtemp()
t.cleanups.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
HOLD = os.path.join(tmp, "hold")
d, _ = traced(t, conf={"sweep_interval": 0, "log_level": "debug"}, env={"SB_SYNCHOLD": HOLD})
names = ["a%d" % i for i in range(9)]
acme = provision(d, agents=names)


def wait_file(path, limit=30):
    """Waits (at most limit s, against a hang) for path to exist."""
    end = time.monotonic() + limit
    while not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.01)
    return os.path.exists(path)


def offline(agent):
    body = b'{"status":"offline"}'
    return (("POST /v1/agents/%s/status HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n"
             "Content-Length: %d\r\n\r\n") % (agent, acme.auth, len(body))).encode() + body


def reset(s):
    """Close s with a reset: the daemon sees the client gone at once."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def statuses(agents):
    return [acme.get("/v1/agents/" + a).json.get("status") for a in agents]


def gone(agents, in_hand):
    """agents' status events sent by a client that resets, the engine thread
    held in a commit's sync; in_hand: the held commit is theirs, else
    another client's event's (answered once let go)."""
    open(HOLD, "w").close()
    got = {}
    first = None
    if not in_hand:
        first = socket.create_connection((d.host, d.port))
        first.sendall(offline(names[0]))
        t.ok(wait_file(HOLD + ".held"), "another client's event committed, its sync held")
    mark = len(d.lines)
    s = socket.create_connection((d.host, d.port))
    s.sendall(b"".join(offline(a) for a in agents))
    if in_hand:
        t.ok(wait_file(HOLD + ".held"), "the client's events committed, the sync held")
    time.sleep(0.5)  # the loop reads them meanwhile: only the engine thread is held
    reset(s)
    closed = d.wait_log(r'msg="connection closed"', after=mark, timeout=20)
    t.ok(closed, "the daemon saw the client gone while its events waited", closed)
    os.unlink(HOLD)
    if first is not None:
        first.settimeout(20)
        try:
            got["first"] = first.recv(200)
        except OSError as e:
            got["first"] = repr(e)
        first.close()
        t.ok(got["first"].startswith(b"HTTP/1.1 200"),
             "the other client's event is answered 200 once its sync is let go", got["first"])
    end = time.monotonic() + 10
    while time.monotonic() < end and any(s != "offline" for s in statuses(agents)):
        time.sleep(0.05)
    t.is_(statuses(agents), ["offline"] * len(agents),
          "the gone client's events were applied all the same")
    h = d.request("GET", "/healthz")
    t.is_((h.status, (h.json or {}).get("status")), (200, "ok"), "... and the daemon serves on", h)


gone(names[1:5], in_hand=False)
gone(names[5:9], in_hand=True)
t.is_(d.stop(), 0, "the daemon stops cleanly")
t.done()
