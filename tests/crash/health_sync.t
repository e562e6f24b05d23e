#!/usr/bin/env python3
# /healthz while storage fails for another reason than room: the daemon
# (sync = group) runs under the synctrace.so shim, every 3rd sync failing
# (EIO) once set-up is done. A write whose sync or commit fails is answered
# 500 SB_ESTORE, and from then /healthz answers 503 storage_failing with the
# failure, where it said ok while every other write failed; reads do not
# clear it, and a write that works (committed and synced) does.
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synckit import SHIM, traced  # noqa: E402
from sbtest import TAP, agent_doc, provision  # noqa: E402

t = TAP(deadline=120)
t.ok(os.path.exists(SHIM), "the shim is built (%s)" % SHIM)
# No sweep: a sweep's sync failing would set it with no request of the test's.
d, _ = traced(t, 3, fail_after=40, conf={"sweep_interval": 0})
acme = provision(d, agents=("alice",))
h = d.request("GET", "/healthz")
t.is_((h.status, (h.json or {}).get("status")), (200, "ok"), "set up: /healthz ok", h)


def put(i):
    """PUT an agent on a fresh connection (a 500 SB_ESTORE closes its own)."""
    c = d.conn()
    try:
        return acme.put("/v1/agents/w%d" % i, agent_doc("w%d" % i), conn=c)
    finally:
        c.close()


i, r = 0, None
while i < 80:
    r = put(i)
    i += 1
    if r.status != 200:
        break
t.ok(r.status == 500 and r.code == "SB_ESTORE",
     "a write whose sync fails is answered 500 SB_ESTORE (after %d writes)" % i, r)
h = d.request("GET", "/healthz")
msg = (h.json or {}).get("message", "")
t.is_((h.status, (h.json or {}).get("status")), (503, "storage_failing"),
      "/healthz: 503 storage_failing", h)
t.ok("storage error" in msg and "SB_ESTORE" in msg and "not for lack of room" in msg,
     "... its message says a write failed for a storage error, and which", h)
said = [x for x in d.lines if "data.mdb failed: Input/output error" in x]
t.ok(said and "level=error" in said[0] and "not durable until a later one works" in said[0],
     "the log names the failed sync's reason (the daemon has SB_ESTORE alone)", said[:1])
t.is_(acme.get("/v1/agents/alice").status, 200, "reads still work")
t.is_(d.request("GET", "/healthz").json.get("status"), "storage_failing",
      "... and do not clear it")
for _ in range(10):
    r = put(i)
    i += 1
    if r.status == 200:
        break
t.is_(r.status, 200, "a later write is synced: 200", r)
h = d.request("GET", "/healthz")
t.is_((h.status, (h.json or {}).get("status")), (200, "ok"),
      "/healthz ok again once a write works", h)
d.stop()
t.done()
