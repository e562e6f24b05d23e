#!/usr/bin/env python3
# /healthz while storage fails for another reason than room: the daemon
# (sync = group) runs under the synctrace.so shim, every 3rd sync failing
# (EIO) once set-up is done. A write whose sync or commit fails is answered
# 500 SB_ESTORE, and from then /healthz answers 503 storage_failing with the
# failure, where it said ok while every other write failed; reads and
# writes that change nothing do not clear it, and a write that works
# (committed and synced) does. A broken
# record found by a read sets it too, a number in its message redacted.
import errno, os, shutil, struct, sys, tempfile, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synckit import SHIM, traced  # noqa: E402
from sbtest import TAP, Daemon, agent_doc, provision  # noqa: E402

t = TAP(deadline=120)
t.ok(os.path.exists(SHIM), "the shim is built (%s)" % SHIM)
# No sweep: a sweep's sync failing would set it with no request of the test's.
d, _ = traced(t, 3, fail_after=40, conf={"sweep_interval": 0})
acme = provision(d, agents=("alice",))
h = d.request("GET", "/healthz")
t.is_((h.status, (h.json or {}).get("status")), (200, "ok"), "set up: /healthz ok", h)


def wait_file(path, limit=30):
    """Waits (at most limit s, against a hang) for path to exist."""
    end = time.monotonic() + limit
    while not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.01)
    return os.path.exists(path)


def put(i, who=None):
    """PUT an agent on a fresh connection (a 500 SB_ESTORE closes its own)."""
    who = who or acme
    c = who.d.conn()
    try:
        return who.put("/v1/agents/w%d" % i, agent_doc("w%d" % i), conn=c)
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
     "... its message says it is a storage error, and which", h)
# Waited for: the daemon's stderr is read by another thread, which may not
# have the line yet when the answer is in.
said = d.wait_log("data.mdb failed: Input/output error")
t.ok(said and "level=error" in said and "not durable until a later one works" in said,
     "the log names the failed sync's reason (the daemon has SB_ESTORE alone)", said)
t.is_(acme.get("/v1/agents/alice").status, 200, "reads still work")
t.is_(d.request("GET", "/healthz").json.get("status"), "storage_failing",
      "... and do not clear it")
# A write that finds everything as it asks commits nothing: it says nothing
# of storage (it used to count as a write that worked, and cleared it).
r = acme.post("/v1/agents/alice/status", {"status": "available"})
t.is_(r.status, 200, "an agent's status set to the one it has: 200", r)
t.is_(d.request("GET", "/healthz").json.get("status"), "storage_failing",
      "... which changed nothing, and does not clear it")
r = acme.delete("/v1/policy-versions/first")
t.is_((r.status, (r.json or {}).get("forgotten")), (200, 0),
      "a policy's history forgotten with nothing in it: 200", r)
t.is_(d.request("GET", "/healthz").json.get("status"), "storage_failing",
      "... which changed nothing either, and does not clear it")
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

# A write committed after the failure is no write that worked until its sync
# has: a /healthz asked while that sync is under way (the shim holds it)
# answered ok, and came out so after the sync had failed and the write been
# answered 500. Syncs fail while FAIL exists (with errno err); the sync
# thread waits while HOLD does. The same for a disk that fills up under a
# sync (ENOSPC): a write committed cleared storage_full at once, and a sync
# that failed for want of room answered its write 500 SB_ESTORE.
tmp = tempfile.mkdtemp()
t.cleanups.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
FAIL, HOLD = os.path.join(tmp, "fail"), os.path.join(tmp, "hold")


def held_sync(err, status, code, health, base):
    d, _ = traced(t, conf={"sweep_interval": 0, "log_level": "debug"},
                  env={"SB_SYNCFAIL_FILE": FAIL, "SB_SYNCHOLD": HOLD,
                       "SB_SYNCFAIL_ERRNO": str(err)})
    who = provision(d, agents=("alice",))
    answer = "%d %s" % (status, code)
    open(FAIL, "w").close()
    r = put(base, who)
    os.unlink(FAIL)
    t.ok(r.status == status and r.code == code, "a write whose sync fails: " + answer, r)
    h = d.request("GET", "/healthz")
    t.is_((h.status, (h.json or {}).get("status")), (503, health), "/healthz: " + health, h)
    open(HOLD, "w").close()
    got = {}
    writer = threading.Thread(target=lambda: got.update(put=put(base + 1, who)))
    writer.start()
    t.ok(wait_file(HOLD + ".held"), "the next write committed, its sync held")
    mark = len(d.lines)
    asker = threading.Thread(target=lambda: got.update(health=d.request("GET", "/healthz")))
    asker.start()
    t.ok(d.wait_log(r'method=GET path="/healthz"', after=mark, timeout=20),
         "/healthz asked while that sync is held")
    open(FAIL, "w").close()
    os.unlink(HOLD)
    writer.join(30)
    asker.join(30)
    os.unlink(FAIL)
    r, h = got.get("put"), got.get("health")
    t.ok(r is not None and r.status == status and r.code == code,
         "its sync failed: the write answered " + answer, r)
    t.is_((h.status, (h.json or {}).get("status")) if h else None, (503, health),
          "/healthz asked before: 503 %s, not ok" % health, h)
    r = put(base + 2, who)
    h = d.request("GET", "/healthz")
    t.ok(r.status == 200 and (h.status, (h.json or {}).get("status")) == (200, "ok"),
         "a write committed and synced: /healthz ok", (r, h))
    d.stop()


held_sync(errno.EIO, 500, "SB_ESTORE", "storage_failing", 100)
held_sync(errno.ENOSPC, 503, "SB_EFULL", "storage_full", 200)

# A broken record (its stored version byte overwritten) is a storage error
# too, found by a read: GET of the ended call is 500 SB_ESTORE and /healthz
# says storage_failing. Its message quotes the engine's, which names the
# call: /healthz answers anyone, without a key, and a call named after its
# caller showed the number there, where the log and the README say
# [number]; any other id a client chose (a SIP Call-ID naming its host)
# showed as it was. It reads '...' there. The message also said a write had
# failed.
d = t.owned(Daemon())
d.start()
acme = provision(d, agents=("alice",))
CALL = "+4930123456"
path = "/v1/calls/" + CALL.replace("+", "%2B")
acme.post("/v1/calls", {"call": CALL, "queue": "support", "caller": "+442079460001"})
t.is_(acme.post(path + "/abandon").status, 200, "a call named after its caller, ended")
d.stop()
mdb = os.path.join(d.data_dir, "data.mdb")
with open(mdb, "rb") as f:
    data = bytearray(f.read())
# A record: version, flags, epoch (4), review due (8), the id's length (4)
# and the id; the key that holds the id too has no version 4 there.
idb = CALL.encode()
pat, hits, i = struct.pack("<I", len(idb)) + idb, [], -1
while (i := data.find(pat, i + 1)) >= 0:
    if i >= 14 and data[i - 14] == 4:
        hits.append(i)
t.is_(len(hits), 1, "the record found in data.mdb")
for i in hits:
    data[i - 14] = 0x7F
with open(mdb, "wb") as f:
    f.write(data)
d.start()
r = acme.get(path)
t.ok(r.status == 500 and r.code == "SB_ESTORE", "reading the broken record: 500 SB_ESTORE", r)
h = d.request("GET", "/healthz")
msg = (h.json or {}).get("message", "")
t.is_((h.status, (h.json or {}).get("status")), (503, "storage_failing"),
      "/healthz: 503 storage_failing", h)
t.ok("record of call '...' is corrupt" in msg and CALL[1:] not in msg,
     "... its message leaves out the call's id (here its caller's number)", h)
t.ok("a write failed" not in msg and "SB_ESTORE" in msg,
     "... and does not say a write failed, when a read did", h)
d.stop()
t.done()
