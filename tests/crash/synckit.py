"""A daemon under the synctrace.so shim (synctrace.c): every read and write of
its sockets and every sync of data.mdb logged in order, and, when asked, every
Nth sync failing. For the tests of what is acknowledged when (sync.t,
stream_sync.t)."""
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "daemon"))
from sbtest import ROOT, Daemon, provision  # noqa: E402

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


def held_once(t, agents=("alice",)):
    """A traced daemon with an account of agents (rings of 600 s: no timer
    fires, and commits, while the test runs), and no sweep (its sync would
    be the one held or failed), for a test that holds a sync, then fails it
    once: while the file HOLD exists the sync thread's sync waits (HOLD
    + ".held" says it is waiting); once ONCE exists the next sync fails.
    Returns the daemon, its trace, the account, HOLD and ONCE."""
    t.ok(os.path.exists(SHIM), "the shim is built (%s)" % SHIM)
    tmp = tempfile.mkdtemp()
    t.cleanups.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
    hold, once = os.path.join(tmp, "hold"), os.path.join(tmp, "once")
    d, log = traced(t, conf={"sweep_interval": 0},
                    env={"SB_SYNCHOLD": hold, "SB_SYNCFAIL_ONCE": once})
    return d, log, provision(d, agents=agents, ring=600), hold, once


def raw_request(auth, method, path, body=None):
    """The bytes of one HTTP/1.1 request with auth's key, to send on a
    socket of one's own (pipelined, or at a moment the test chooses)."""
    data = json.dumps(body).encode() if body is not None else b""
    return (b"%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (method.encode(), path.encode(), auth, len(data), data))


def codes(got):
    """Each of the responses read_responses got as (status, error code), the
    code None for a status below 400."""
    return [(st, (json.loads(b or b"{}").get("error") or {}).get("code") if st and st >= 400
             else None) for st, _, b in got]


def answered_500(d):
    """How many answers /metrics counts as 500s, and its request counts (to
    show when that is not as expected)."""
    lines = [line for line in d.admin("GET", "/metrics").body.splitlines()
             if line.startswith("switchboard_http_requests_total{")]
    return sum(float(line.split()[-1]) for line in lines if 'code="500"' in line), lines


def reads(log):
    """What the daemon read from its sockets, one entry a read (the R
    records of the trace at log): a test tells by them which requests one
    turn of the loop took together."""
    with open(log, "rb") as f:
        raw = f.read()
    out, pos = [], 0
    while pos < len(raw):
        nl = raw.index(b"\n", pos)
        _, kind, _, n = raw[pos:nl].split()
        if kind == b"R":
            out.append(raw[nl + 1:nl + 1 + int(n)])
        pos = nl + 1 + int(n)
    return out


def until(probe, limit=30):
    """Waits (at most limit s, against a hang) for probe() to hold."""
    end = time.monotonic() + limit
    while not probe() and time.monotonic() < end:
        time.sleep(0.01)
    return probe()
