#!/usr/bin/env python3
# A full map and a full disk through the daemon: requests that cannot be
# written get 503 SB_EFULL in the error shape, nothing is half-written
# (state read back is unchanged, the data file checks clean), reads keep
# working, and service resumes without a restart once space is available:
# agents deleted through the API (map), a file removed from the filesystem
# (disk: the data directory on a small tmpfs, where mounting one is allowed).
# An access request whose audit entry does not fit is refused, disclosing
# nothing. A file size limit (RLIMIT_FSIZE) is a full disk too: 503, the daemon not
# killed by SIGXFSZ. Restarted with its map past map_max and too little of it
# free, /healthz says storage_full from the start, until room is made (by a
# delete, or by a sweep alone).
import os, resource, subprocess, sys, tempfile
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "daemon"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "crash"))
import sbtest  # noqa: E402
from sbtest import TAP, Daemon, provision  # noqa: E402
from mdbcheck import check_data_file  # noqa: E402

t = TAP(deadline=180)


def filler(i, pad):
    return {"devices": {"softphone": "sip:f%d@pbx.example" % i}, "preferences": {"pad": "y" * pad}}


def snapshot(a):
    return {p: a.get(p).body for p in ("/v1/agents", "/v1/queues", "/v1/calls/c1",
                                       "/v1/agents/alice", "/v1/queues/support")}


def is_full(r):
    e = (r.json or {}).get("error", {}) if r is not None else {}
    return (r is not None and r.status == 503 and r.code == "SB_EFULL"
            and "full" in e.get("message", "") and set(e) >= {"code", "message", "field"})


def fill(a, pads, i=1):
    """PUT filler agents f<i>..., each size until it fails. Returns (next i,
    count put, the last response)."""
    n, last = 0, None
    for pad in pads:
        while True:
            r = a.put("/v1/agents/f%d" % i, filler(i, pad))
            if r.status != 200:
                last = r
                break
            i, n = i + 1, n + 1
    return i, n, last


def fill_calls(a, prefix):
    """Offer calls <prefix>1... in queue support until one is refused, then
    abandon each, its record written into the reserve past map_max. Returns
    (calls offered, calls ended)."""
    k = 0
    while k < 5000:
        r = a.post("/v1/calls", {"call": "%s%d" % (prefix, k + 1), "queue": "support",
                                 "caller": "+49301%06d" % (k + 1), "attrs": {"note": "y" * 300}})
        if r.status != 201:
            break
        k += 1
    return k, sum(a.post("/v1/calls/%s%d/abandon" % (prefix, i)).status == 200
                  for i in range(1, k + 1))


# -- map full ------------------------------------------------------------------
d = t.owned(Daemon(conf={"map_size": "256K", "map_max": "512K", "log_level": "info"})).start()
# Calls ring for 600 s, the longest a ring may: a ring timed out (on a loaded
# machine the fill can take longer than provision's 20 s) writes on its own,
# into the room the checks below measure, and c1 must still ring when answered.
a = provision(d, ring=600)
r = a.post("/v1/calls", {"call": "c1", "queue": "support", "caller": "+4930100001"})
t.is_(r.status, 201, "map: a call rings before the map fills")
nxt, n, last = fill(a, (30000, 3000, 300, 20, 0))
t.ok(is_full(last), "map: once the map is full, a write is 503 SB_EFULL saying so (%d agents "
     "went in)" % n, last)
h = d.request("GET", "/healthz")
t.ok(h.status == 503 and (h.json or {}).get("status") == "storage_full",
     "map: /healthz says storage_full (503) while writes fail for lack of room", h)
msg = (h.json or {}).get("message", "")
t.ok("at map_max calls in progress can end" in msg
     and "on a full disk nothing that grows the data file is written, calls in progress cannot "
         "end either" in msg,
     "map: ... its message says what works for each cause, map_max and a full disk", h)
before = snapshot(a)
for pad in (0, 20):
    r = a.put("/v1/agents/f%d" % nxt, filler(nxt, pad))
    t.ok(is_full(r), "map: again 503 SB_EFULL (pad %d)" % pad, r)
t.is_(a.get("/v1/agents/f%d" % nxt).status, 404, "map: the agent refused is not there")
r = a.post("/v1/calls", {"call": "c2", "queue": "support", "caller": "+4930100002"})
t.ok(is_full(r) and a.get("/v1/calls/c2").status == 404,
     "map: an offer is refused with 503 SB_EFULL and leaves no call", r)
r = a.post("/v1/calls/c1/ring_result", {"agent": "alice", "outcome": "answered"})
answered = r.status == 200
t.ok(answered, "map: the answer to a call in progress still goes in, into the reserve past "
     "map_max kept for calls in progress (%d)" % r.status, r)
h = d.request("GET", "/healthz")
t.is_((h.status, (h.json or {}).get("status")), (503, "storage_full"),
      "map: /healthz stays storage_full after it: new calls are still refused", h)
# The answer may have found room in pages the fill's last commits freed, or
# grown the map into the reserve: either way new calls take what room is left
# below map_max and never the reserve. Offers go in until one is refused.
size = d.metric("switchboard_lmdb_map_size_bytes")
taken, r = 0, None
for k in range(3, 40):
    r = a.post("/v1/calls", {"call": "c%d" % k, "queue": "support", "caller": "+49301000%02d" % k})
    if r.status != 201:
        break
    taken += 1
t.ok(is_full(r) and a.get("/v1/calls/c%d" % (3 + taken)).status == 404 and taken < 30
     and d.metric("switchboard_lmdb_map_size_bytes") == size,
     "map: ... new offers take what room is left below map_max (%d went in), then 503 "
     "SB_EFULL; the map (%d bytes after the answer) does not grow for them" % (taken, size or 0),
     r)
# An access request writes its entry in the audit log before it answers:
# with no room for it, refused, disclosing nothing. Requests go on until one
# is (the entry is smaller than an offer: a few may still fit).
audited, r = 0, None
for k in range(2000):
    r = a.get("/v1/records?number=%2B4930100001")
    if r.status != 200:
        break
    audited += 1
t.ok(is_full(r) and "access request refused, nothing disclosed" in r.body
     and "records" not in (r.json or {}) and "4930100001" not in r.body,
     "map: an access request whose audit entry does not fit is 503 SB_EFULL, disclosing "
     "nothing (%d went in before it)" % audited, r)
if not answered:
    t.is_(a.get("/v1/calls/c1").json.get("state"), "ringing", "map: ... refused: c1 still rings")
    t.is_(a.get("/v1/agents/alice").json.get("status"), "reserved", "map: ... alice still reserved")
after = snapshot(a)
if not answered:
    t.ok(after == before, "map: nothing changed through the refused requests",
         "\n".join("%s:\n  before %s\n  after  %s" % (p, before[p][:200], after[p][:200])
                   for p in before if before[p] != after[p]))
t.ok(d.request("GET", "/healthz").status in (200, 503), "map: /healthz still answers")
t.is_(a.get("/v1/agents").status, 200, "map: reads still work")
# A policy upload refused for want of room is no rejected policy: the log
# says the request failed (at error, one line a second), not "policy
# rejected", which tells its author to fix the code. A wrong admin token
# after each puts a line behind it in the log (writing nothing).
mark = len(d.lines)
r = a.put("/v1/policies/roomless", "-- " + "p" * 60000 +
          "\nlocal P = {}\nfunction P.route(c, a, x) return { wait = 1 } end\nreturn P\n",
          headers={"Content-Type": "text/x-lua"})
t.ok(is_full(r), "map: a policy upload is 503 SB_EFULL", r)
d.request("GET", "/v1/accounts", auth="Bearer not-the-admin-token-at-all")
d.wait_log(r'msg="authentication failed"', after=mark, timeout=10)
t.is_([x for x in d.lines[mark:] if 'msg="policy rejected"' in x], [],
      "map: ... and is not logged as a policy rejected")
mark = len(d.lines)
r = a.put("/v1/policies/roomless", "return {", headers={"Content-Type": "text/x-lua"})
d.request("GET", "/v1/accounts", auth="Bearer not-the-admin-token-at-all")
d.wait_log(r'msg="authentication failed"', after=mark, timeout=10)
t.ok(r.status == 422 and any('msg="policy rejected"' in x and "roomless" in x
                             for x in d.lines[mark:]),
     "map: a policy that does not load is logged as rejected (%d)" % r.status, r)
dels = [a.delete("/v1/agents/f%d" % i) for i in range(1, 9)]
t.ok(all(x.status == 200 for x in dels),
     "map: with the map full, deleting agents through the API frees space (%s)" %
     ", ".join(str(x.status) for x in dels), dels[0])
h = d.request("GET", "/healthz")
t.is_(h.status, 200, "map: /healthz is ok after the deletes, before any other write (a "
      "balancer that sends nothing while it says full would never see it clear)", h)
r1 = None if answered else a.post("/v1/calls/c1/ring_result", {"agent": "alice", "outcome": "answered"})
r2 = a.post("/v1/calls/c1/hangup")
r3 = a.put("/v1/agents/after", filler(0, 10))
t.ok((answered or r1.status == 200) and r2.status == 200 and r3.status == 200,
     "map: service resumes without a restart (answer %s, hangup %d, new agent %d)" %
     (r1.status if r1 else "-", r2.status, r3.status), [r1, r2, r3])
t.is_(d.request("GET", "/healthz").status, 200, "map: /healthz is ok again once a write works")
r = a.get("/v1/records?number=%2B4930100001")
e = a.get("/v1/audit?after=0&limit=100000").json["entries"]
acc = [x for x in e if x["action"] == "access_request"]
t.ok(r.status == 200 and len(acc) == audited + 1 and "4930100001" not in str(acc),
     "map: with room again the access request is answered, and the audit log has an entry for "
     "each that was (%d), none for the one refused" % (audited + 1), acc[-3:])
t.is_(d.stop(), 0, "map: the daemon stops cleanly")
bad = check_data_file(d.data_dir)
t.ok(bad is None, "map: the data file checks clean", bad)

# -- map full at a restart ----------------------------------------------------------
# Stopped with its map past map_max, in the reserve, and too little of it free
# (offers until one is refused, then their abandons writing records into the
# reserve), the daemon starts where new calls and documents are refused before
# they are tried: /healthz says storage_full from the start, as before the
# stop, where it said ok until a new call had been refused; the log says so at
# warn, and switchboard_lmdb_map_max_reached is 1. A failed write and a delete
# then set and clear it as they do otherwise. Started with a larger map_max,
# the same directory is ok and takes calls.
conf4 = {"map_size": "256K", "map_max": "512K", "log_level": "info"}
d4 = t.owned(Daemon(conf=conf4)).start()
a4 = provision(d4, ring=600)
k, ended = fill_calls(a4, "k")
r = a4.post("/v1/calls", {"call": "x1", "queue": "support", "caller": "+4930199991"})
t.ok(is_full(r) and ended == k and d4.metric("switchboard_lmdb_map_max_reached") == 1
     and d4.metric("switchboard_lmdb_map_size_bytes") > (512 << 10),
     "restart: %d calls offered until the map was full, each ended into the reserve past "
     "map_max (%d), then an offer is refused: switchboard_lmdb_map_max_reached 1" % (k, ended), r)
t.is_(d4.stop(), 0, "restart: the daemon stops with its map so")
d4.start()
h = d4.request("GET", "/healthz")
t.ok(h.status == 503 and (h.json or {}).get("status") == "storage_full"
     and "past map_max at start" in (h.json or {}).get("message", ""),
     "restart: /healthz says storage_full from the start, before any request, saying why", h)
t.ok(any('level=warn msg="storage full at start: new calls and documents are refused"' in x
         and "map_max=524288" in x for x in d4.lines),
     "restart: ... and the log says so at warn", "\n".join(d4.lines[-20:]))
t.is_(d4.metric("switchboard_lmdb_map_max_reached"), 1.0,
      "restart: switchboard_lmdb_map_max_reached is 1")
r = a4.post("/v1/calls", {"call": "x2", "queue": "support", "caller": "+4930199992"})
h = d4.request("GET", "/healthz")
t.ok(is_full(r) and h.status == 503 and "a write failed" in (h.json or {}).get("message", ""),
     "restart: a new call is refused indeed, 503 SB_EFULL, and /healthz says so as for any "
     "failed write", [r, h])
r = a4.delete("/v1/agents/bob")
h = d4.request("GET", "/healthz")
t.ok(r.status == 200 and h.status == 200,
     "restart: a delete clears it, as after a failed write (%d, then /healthz %d)"
     % (r.status, h.status), [r, h])
t.is_(d4.stop(), 0, "restart: the daemon stops")
d5 = t.owned(Daemon(conf=dict(conf4, map_max="4M"), data_dir=d4.data_dir,
                    policy_dir=d4.policy_dir)).start()
h = d5.request("GET", "/healthz")
a5 = sbtest.Account(d5, "acme", a4.key)
r = a5.post("/v1/calls", {"call": "x3", "queue": "support", "caller": "+4930199993"})
t.ok(h.status == 200 and d5.metric("switchboard_lmdb_map_max_reached") == 0 and r.status == 201,
     "restart: with map_max raised, /healthz is ok from the start and a new call is taken "
     "(%d, %d)" % (h.status, r.status), [h, r])
t.is_(d5.stop(), 0, "restart: the daemon stops cleanly")
bad = check_data_file(d5.data_dir)
t.ok(bad is None, "restart: the data file checks clean", bad)

# -- map full at a restart, room made by a sweep --------------------------------------
# The map found past map_max at start ends when the engine says there is room,
# also when a sweep alone made it, with no request to show it: a second
# account's records fill the map, the account is deleted (its records left
# for the sweeps to purge) and the daemon restarted; the first sweep, a
# second after the start, purges them and the daemon says room was made
# before any request is made, /healthz then ok and a new call taken.
d6 = t.owned(Daemon(conf=conf4)).start()
a6 = provision(d6, ring=600)
ag = provision(d6, account="gone", ring=600)
k, ended = fill_calls(ag, "g")
r = d6.admin("DELETE", "/v1/accounts/gone")
t.ok(r.status == 200 and 0 < ended == k and d6.metric("switchboard_lmdb_map_max_reached") == 1,
     "sweep: %d calls of account gone fill the map past map_max (%d ended), then the account "
     "is deleted, its records left for the sweeps: map_max still reached" % (k, ended), r)
t.is_(d6.stop(), 0, "sweep: the daemon stops with its map so")
d6.start()
full = d6.wait_log(r'level=warn msg="storage full at start: new calls and documents are refused"',
                   timeout=10)
room = d6.wait_log(r'msg="storage full at start: room made, new calls taken again"', timeout=30)
purged = d6.wait_log(r'msg="sweep: deleted account #\d+ purged"', timeout=1)
t.ok(full and room and purged and d6.lines.index(purged) < d6.lines.index(room),
     "sweep: found full at start, the first sweep purges the deleted account's records and, "
     "with no request made, the daemon says room was made",
     "\n".join(d6.lines[-20:]))
h = d6.request("GET", "/healthz")
r = a6.post("/v1/calls", {"call": "y1", "queue": "support", "caller": "+4930199994"})
t.ok(h.status == 200 and d6.metric("switchboard_lmdb_map_max_reached") == 0 and r.status == 201,
     "sweep: ... /healthz is ok and a new call is taken (%d, %d)" % (h.status, r.status), [h, r])
t.is_(d6.stop(), 0, "sweep: the daemon stops cleanly")
bad = check_data_file(d6.data_dir)
t.ok(bad is None, "sweep: the data file checks clean", bad)

# -- disk full -------------------------------------------------------------------
mnt = tempfile.mkdtemp(prefix="sbfull-")
mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", mnt],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
if not mounted:
    print("ok %d # skip disk: cannot mount a tmpfs here" % (t.n + 1))
    t.n += 1
    os.rmdir(mnt)
else:
    def unmount():
        subprocess.run(["umount", "-l", mnt], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            os.rmdir(mnt)
        except OSError:
            pass
    t.cleanups.append(unmount)
    with open(os.path.join(mnt, "filler"), "wb") as f:
        f.write(b"\0" * (1 << 20))
    d2 = Daemon(conf={"map_size": "256K", "map_max": "64M", "log_level": "info"},
                data_dir=os.path.join(mnt, "data"))
    t.cleanups.insert(0, d2.cleanup)
    d2.start()
    a2 = provision(d2)
    r = a2.post("/v1/calls", {"call": "c1", "queue": "support", "caller": "+4930100001"})
    t.is_(r.status, 201, "disk: a call rings")
    nxt, n, last = fill(a2, (20000,))
    t.ok(is_full(last) and "No space" in last.body,
         "disk: once the map cannot grow, a write is 503 SB_EFULL, no space left (%d agents "
         "went in)" % n, last)
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    t.ok(free < (600 << 10),
         "disk: writes stop when the disk is full, not when a doubling of the map would not "
         "fit (%d KiB left of 3 MiB)" % (free >> 10))
    t.is_(a2.get("/v1/agents/f%d" % nxt).status, 404, "disk: the agent refused is not there")
    t.is_(a2.get("/v1/calls/c1").json.get("state"), "ringing", "disk: c1 still rings")
    os.unlink(os.path.join(mnt, "filler"))
    r = a2.put("/v1/agents/f%d" % nxt, filler(nxt, 20000))
    t.is_(r.status, 200, "disk: a file removed, the same write succeeds without a restart", r)
    r1 = a2.post("/v1/calls/c1/ring_result", {"agent": "alice", "outcome": "answered"})
    r2 = a2.post("/v1/calls/c1/hangup")
    t.ok(r1.status == 200 and r2.status == 200, "disk: the call cycle completes", [r1, r2])
    t.is_(d2.stop(), 0, "disk: the daemon stops cleanly")
    bad = check_data_file(d2.data_dir)
    t.ok(bad is None, "disk: the data file checks clean", bad)

# -- a file size limit (systemd's LimitFSIZE) --------------------------------------
# Past it a write fails with EFBIG, a full disk: SB_EFULL, and the daemon goes
# on, where SIGXFSZ killed it. acme's data key slot (account 1) is bytes 128
# to 255 of data.keys; the map (sync none: written through it) does not grow.
d3 = t.owned(Daemon(conf={"sync": "none", "log_level": "info"})).start()
provision(d3)
t.is_(d3.stop(), 0, "fsize: a daemon made account acme and stopped")
orig = sbtest._die_with_parent


def limited():
    orig()
    resource.setrlimit(resource.RLIMIT_FSIZE, (256, 256))


sbtest._die_with_parent = limited
try:
    d3.start()
finally:
    sbtest._die_with_parent = orig
try:
    r = d3.admin("POST", "/v1/accounts", {"id": "beta", "name": "Beta"})
except (ConnectionError, OSError) as e:
    r = None
    diag_r = repr(e)
t.ok(r is not None and r.status == 503 and r.code == "SB_EFULL"
     and "data.keys could not grow" in r.body and "free space on the disk" in r.body,
     "fsize: an account whose data key goes past the limit is 503 SB_EFULL, saying data.keys "
     "could not grow", r if r is not None else diag_r)
try:
    h = d3.request("GET", "/healthz").status
except (ConnectionError, OSError) as e:
    h = repr(e)
alive = d3.wait(1) is None
t.ok(alive and h in (200, 503), "fsize: the daemon is still running (not killed by SIGXFSZ)",
     "/healthz: %r, exit status %r" % (h, d3.proc.returncode))
if alive:
    t.is_(d3.admin("GET", "/v1/accounts/beta").status, 404, "fsize: no account beta")
    t.is_(d3.admin("GET", "/v1/accounts/acme").status, 200, "fsize: acme is as it was")
    t.is_(d3.stop(), 0, "fsize: the daemon stops cleanly")
t.done()
