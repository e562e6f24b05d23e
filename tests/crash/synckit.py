"""A daemon under the synctrace.so shim (synctrace.c): every read and write of
its sockets and every sync of data.mdb logged in order, and, when asked, every
Nth sync failing. For the tests of what is acknowledged when (sync.t,
stream_sync.t)."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "daemon"))
from sbtest import ROOT, Daemon  # noqa: E402

_build = os.environ.get("SB_BUILD", "build")
SHIM = os.path.join(_build if os.path.isabs(_build) else os.path.join(ROOT, _build),
                    "tests", "crash", "synctrace.so")


def traced(t, fail_every=0, fail_after=0, conf=None, env=None):
    """Start a sync=group daemon under the shim, cleaned up with t; every
    fail_every-th sync after the first fail_after fails (0: none); conf:
    more settings; env: more of the shim's variables (SB_SYNCFAIL_FILE,
    SB_SYNCHOLD). Returns the daemon and the path of its trace."""
    d = Daemon(conf=dict({"sync": "group", "log_level": "info"}, **(conf or {})))
    t.cleanups.append(d.cleanup)
    log = os.path.join(d.tmp, "synctrace.log")
    asan = os.environ.get("ASAN_OPTIONS")
    d.env = {"LD_PRELOAD": SHIM, "SB_SYNCTRACE": log,
             "SB_SYNCFAIL_EVERY": str(fail_every) if fail_every else None,
             "SB_SYNCFAIL_AFTER": str(fail_after) if fail_every else None,
             "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}
    d.env.update(env or {})
    d.start()
    return d, log


def raw_request(auth, method, path, body=None):
    """The bytes of one HTTP/1.1 request with auth's key, to send on a
    socket of one's own (pipelined, or at a moment the test chooses)."""
    data = json.dumps(body).encode() if body is not None else b""
    return (b"%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (method.encode(), path.encode(), auth, len(data), data))


def until(probe, limit=30):
    """Waits (at most limit s, against a hang) for probe() to hold."""
    end = time.monotonic() + limit
    while not probe() and time.monotonic() < end:
        time.sleep(0.01)
    return probe()
