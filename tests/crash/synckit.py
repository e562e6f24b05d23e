"""A daemon under the synctrace.so shim (synctrace.c): every read and write of
its sockets and every sync of data.mdb logged in order, and, when asked, every
Nth sync failing. For the tests of what is acknowledged when (sync.t,
stream_sync.t)."""
import os
import sys

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
