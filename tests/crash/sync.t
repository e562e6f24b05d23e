#!/usr/bin/env python3
# Acknowledged means synced, seen at the system calls. A kill -9 cannot lose
# what the page cache holds, so kill9.t cannot see an acknowledgement sent
# before its sync; this test can. The daemon (sync = group) runs with the
# synctrace.so shim preloaded, which logs in order every byte read from and
# written to its sockets and every msync/fsync/fdatasync with its result.
#  1. Under load — concurrent keep-alive clients, a pipelined burst, a
#     chunked upload — every 2xx answer to a request that changes state
#     (POST, PUT, DELETE) is written after a sync that began after the
#     request's last byte was read and succeeded before the answer's first
#     byte was written.
#  2. The same with every 5th sync failing (EIO, injected by the shim): still
#     no 2xx without a successful sync; the changes whose sync failed are
#     answered 500 SB_ESTORE, and every request a connection sent is
#     answered, up to an answer that closes it, after which none is
#     (API.md); the daemon keeps serving.
#     The engine thread commits a batch while the sync thread syncs the meta
#     page of the one before: every answer is checked against the meta pages
#     on disk.
#  3. In both, the order a power loss needs: no meta page of data.mdb (its
#     first two pages, which say where the tree is) is written while pages
#     written before it are not yet synced. Else a sync under way when the
#     power goes could leave a meta page on disk pointing at pages that are
#     not: a broken database, where the promise is to lose at most what was
#     not acknowledged. And with failing syncs, no change answered 2xx unless
#     a meta page written after its request reached the disk before the
#     answer, counting the pages a failed sync drops as Linux does (marked
#     clean, never written by a later sync).
#  4. A daemon whose sync or engine thread cannot be made (pthread_create
#     failing, injected by the shim) does not start: it says which, exits 1,
#     and the next start on the directory works.
import os, re, sys, threading
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synckit import SHIM, traced  # noqa: E402
from sbtest import TAP, Daemon, provision, agent_doc  # noqa: E402

t = TAP(deadline=240)
t.ok(os.path.exists(SHIM), "the shim is built (%s)" % SHIM)


def start(fail_every):
    return traced(t, fail_every, fail_after=100)  # set-up's syncs succeed


def load(d, acme, tolerant):
    errors = []

    def worker(w):
        c = d.conn()
        try:
            for i in range(60):
                cid = "w%dc%d" % (w, i)
                try:
                    r = acme.post("/v1/calls", {"call": cid, "queue": "support",
                                                "caller": "+4930100%03d" % i}, conn=c)
                    ring = [a["agent"] for a in r.actions("ring")]
                    if r.status == 201 and ring:
                        acme.post("/v1/calls/%s/ring_result" % cid,
                                  {"agent": ring[0], "outcome": "answered"}, conn=c)
                        acme.post("/v1/calls/%s/hangup" % cid, conn=c)
                    elif r.status == 201:
                        acme.post("/v1/calls/%s/abandon" % cid, conn=c)
                    elif not tolerant:
                        errors.append(r)
                        return
                    acme.put("/v1/agents/w%d" % w, agent_doc("w%d" % w, name="v%d" % i), conn=c)
                    acme.get("/v1/agents/alice", conn=c)
                except Exception as e:  # a connection closed after a failed commit
                    if not tolerant:
                        errors.append(e)
                        return
                    c.close()
                    c = d.conn()
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for th in threads:
        th.start()
    auth = acme.auth.encode()
    burst = b""
    for i in range(50):
        body = b'{"devices":{"softphone":"sip:p%d@x"}}' % i
        burst += (b"PUT /v1/agents/p%d HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n%s"
                  % (i, auth, len(body), body))
    burst += b"DELETE /v1/agents/p0 HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth + b"\r\nConnection: close\r\n\r\n"
    got_burst = d.raw(burst)
    parts = [b'{"devices":{"sof', b'tphone":"sip:chunky@x"}}']
    chunked = (b"PUT /v1/agents/chunky HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth +
               b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
               b"".join(b"%x\r\n%s\r\n" % (len(x), x) for x in parts) + b"0\r\n\r\n")
    got_chunked = d.raw(chunked)
    for th in threads:
        th.join()
    return errors, got_burst, got_chunked


class Stream:
    def __init__(self):
        self.data = b""
        self.seqs = []  # (end offset, seq) per chunk

    def add(self, seq, b):
        self.data += b
        self.seqs.append((len(self.data), seq))

    def seq_at(self, off):
        for end, s in self.seqs:
            if off < end:
                return s
        return None


def parse(log):
    events = []
    with open(log, "rb") as f:
        raw = f.read()
    pos = 0
    while pos < len(raw):
        nl = raw.index(b"\n", pos)
        seq, kind, fd, n = raw[pos:nl].split()
        n = int(n)
        events.append((int(seq), kind.decode(), int(fd), raw[nl + 1:nl + 1 + n]))
        pos = nl + 1 + n
    conns, live, syncs, open_sync = [], {}, [], {}
    for seq, kind, fd, data in events:
        if kind in "RW":
            c = live.get(fd)
            if c is None:
                c = live[fd] = (Stream(), Stream())
                conns.append(c)
            c[0 if kind == "R" else 1].add(seq, data)
        elif kind == "C":
            live.pop(fd, None)
        elif kind == "S":  # paired with its end by thread
            open_sync[data.split()[0]] = seq
        elif kind == "s":
            start = open_sync.pop(data.split()[1], None)
            if start is not None:
                syncs.append((start, seq, data.startswith(b"ok")))
    return events, conns, syncs


def meta_order(events, psize=4096):
    """(meta page writes, those written while earlier pages were unsynced,
    diagnostics). A page write counts as synced by a successful sync of a
    data file that started after it and ended before the meta write."""
    starts, last_page, synced_upto, metas, late, bad = {}, 0, 0, 0, 0, []
    for seq, kind, fd, data in events:
        if kind == "P":
            off = int(data.split()[0])
            if off >= 2 * psize:
                last_page = seq
                continue
            metas += 1
            if last_page > synced_upto:
                late += 1
                if len(bad) < 5:
                    bad.append("meta page written at #%d (offset %d) while the page written "
                               "at #%d was not synced" % (seq, off, last_page))
        elif kind == "S" and data.endswith(b"data=1"):
            starts[data.split()[0]] = seq
        elif kind == "s":
            start = starts.pop(data.split()[1], None)
            if start is not None and data.startswith(b"ok"):
                synced_upto = max(synced_upto, start)
    return metas, late, bad


def unsafe_acks(log, conns):
    """2xx answers to changes that a power loss just before the answer could
    undo, as Linux leaves the disk: a sync that succeeds puts on disk the
    meta pages written before it began; one that fails drops them (marked
    clean, no later sync writes them). A change is on disk when a meta page
    written after its request arrived is (the newest decides the tree,
    which holds every earlier commit). Returns (answers checked, unsafe,
    diagnostics)."""
    metas, starts, syncs = [], {}, []
    for seq, kind, fd, data in parse(log)[0]:
        if kind == "P" and int(data.split()[0]) < 8192:
            metas.append(seq)
        elif kind == "S" and data.endswith(b"data=1"):
            starts[data.split()[0]] = seq
        elif kind == "s":
            start = starts.pop(data.split()[1], None)
            if start is not None:
                syncs.append((start, seq, data.startswith(b"ok")))
    syncs.sort()
    # For each meta page write: when it reached the disk (None: never, or lost).
    on_disk = {}
    for m in metas:
        first = next((x for x in syncs if x[0] > m), None)
        on_disk[m] = first[1] if first and first[2] else None
    # Changes read at once (a pipelined burst) commit one after another, each
    # writing a meta page: the k-th of them needs the k-th meta page written
    # after they were read, or a later one.
    metas.sort()
    checked, bad, diag, together = 0, 0, [], 0
    for inp, outp in conns:
        at_once = {}
        for (method, path, rseq), (status, wseq, _, _) in zip(requests(inp), responses(outp)):
            if method not in ("POST", "PUT", "DELETE") or not 200 <= status < 300:
                continue
            checked += 1
            k = at_once.get(rseq, 0)
            at_once[rseq] = k + 1
            together += k > 0
            after = [m for m in metas if m > rseq][k:]
            if not any(m < wseq and on_disk[m] is not None and on_disk[m] < wseq
                       for m in after):
                bad += 1
                if len(diag) < 5:
                    diag.append("%s %s: read at #%d, answered %d at #%d with no meta page "
                                "written since on disk" % (method, path, rseq, status, wseq))
    diag.append("%d of the changes checked were read at once with earlier ones" % together)
    return checked, bad, diag


def requests(st):
    out, pos, data = [], 0, st.data
    while True:
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            return out
        head = data[pos:end].decode("latin-1")
        line = head.split("\r\n")[0]
        if not re.match(r"[A-Z]+ /", line):
            return out
        m = re.search(r"(?im)^content-length:\s*(\d+)", head)
        body_end = end + 4 + (int(m.group(1)) if m else 0)
        if re.search(r"(?im)^transfer-encoding:\s*chunked", head):
            z = data.find(b"\r\n0\r\n\r\n", end)
            body_end = z + 7 if z >= 0 else len(data)
        out.append((line.split()[0], line.split()[1], st.seq_at(body_end - 1)))
        pos = body_end


def responses(st):
    out, pos, data = [], 0, st.data
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            break
        head = data[pos:end].decode("latin-1")
        status = int(head.split()[1])
        m = re.search(r"(?im)^content-length:\s*(\d+)", head)
        first = st.seq_at(pos)
        body = data[end + 4:end + 4 + (int(m.group(1)) if m else 0)]
        pos = end + 4 + (int(m.group(1)) if m else 0)
        if status == 100:
            continue
        out.append((status, first, body, "connection: close" in head.lower()))
        if "text/event-stream" in head:
            break
    return out


def check(log):
    """Returns (acks checked, acks without a good sync, failures answered 500,
    requests unanswered on a connection no answer closed, answers after one
    that closed the connection, syncs ok, syncs failed, diagnostics)."""
    events, conns, syncs = parse(log)
    checked = late = estore = unanswered = after_close = 0
    bad = []
    for inp, outp in conns:
        reqs, resps = requests(inp), responses(outp)
        closed = next((i for i, r in enumerate(resps) if r[3]), None)
        if closed is None:
            unanswered += max(0, len(reqs) - len(resps))
        else:
            after_close += len(resps) - closed - 1
        for (method, path, rseq), (status, wseq, body, closing) in zip(reqs, resps):
            if method not in ("POST", "PUT", "DELETE"):
                continue
            if 200 <= status < 300:
                checked += 1
                if not any(rseq < s and e < wseq and good for s, e, good in syncs):
                    late += 1
                    if len(bad) < 10:
                        bad.append("%s %s: read at #%d, answered %d at #%d without a successful "
                                   "sync in between" % (method, path, rseq, status, wseq))
            elif status == 500 and b"SB_ESTORE" in body:
                estore += 1
    return (checked, late, estore, unanswered, after_close, sum(1 for x in syncs if x[2]),
            sum(1 for x in syncs if not x[2]), bad)


# 1. Syncs that work.
d, log = start(0)
acme = provision(d, agents=("alice", "bob", "carol", "dave"))
errors, got_burst, got_chunked = load(d, acme, tolerant=False)
t.ok(not errors, "the load ran", errors[:3])
t.ok(got_burst.count(b"HTTP/1.1 200") == 51 and got_chunked.startswith(b"HTTP/1.1 200"),
     "the pipelined burst and the chunked upload were answered",
     "%d answers of 200 to the burst; chunked: %r" % (got_burst.count(b"HTTP/1.1 200"),
                                                     got_chunked[:200]))
t.is_(d.stop(), 0, "the daemon stops cleanly")
checked, late, estore, unanswered, after_close, ok_syncs, failed_syncs, bad = check(log)
t.ok(checked >= 500, "%d acknowledgements of changes found in the trace" % checked)
t.ok(late == 0, "every one was written after a sync that began after its request arrived and "
     "succeeded before the answer (%d syncs)" % ok_syncs, "\n".join(bad))
t.diag("acknowledgements checked: %d; syncs: %d" % (checked, ok_syncs))
metas, unordered, bad = meta_order(parse(log)[0])
t.ok(metas > 100 and unordered == 0, "every meta page of data.mdb was written after the pages "
     "before it were synced (%d meta writes, %d too early)" % (metas, unordered), "\n".join(bad))
acks, unsafe, bad = unsafe_acks(log, parse(log)[1])
t.ok(acks > 500 and unsafe == 0,
     "no change answered 2xx before a meta page written since its request was on disk (%d "
     "answers, %d unsafe)" % (acks, unsafe), "\n".join(bad))
t.diag(bad[-1])
kinds = [fd for _, kind, fd, _ in parse(log)[0] if kind == "S"]
t.ok(kinds and all(fd >= 0 for fd in kinds),
     "with sync=group a sync is fdatasync of the data file, never msync over the map "
     "(%d syncs, %d msync)" % (len(kinds), sum(1 for fd in kinds if fd < 0)))

# 2. Every 5th sync fails.
d, log = start(5)
acme = provision(d, agents=("alice", "bob", "carol", "dave"))
load(d, acme, tolerant=True)
health = d.request("GET", "/healthz")
rc = d.stop()
t.ok(rc == 0 or (rc == 1 and any("final sync failed" in l for l in d.lines)),
     "with failing syncs: the daemon stops, exit 0 — or 1 when its final sync was one that "
     "failed, saying so (%s)" % rc)
checked2, late2, estore2, unanswered2, after_close2, ok2, failed2, bad2 = check(log)
t.ok(failed2 > 0 and checked2 > 100, "with every 5th sync failing: %d syncs failed, %d "
     "acknowledgements of changes found" % (failed2, checked2))
t.ok(late2 == 0, "... still none answered 2xx without a successful sync", "\n".join(bad2))
t.ok(estore2 > 0 and unanswered2 == 0 and after_close2 == 0,
     "... the changes whose sync failed were answered 500 SB_ESTORE (%d), every request "
     "answered up to an answer closing its connection (%d not), none after one (%d)"
     % (estore2, unanswered2, after_close2))
t.ok(health.status == 200 or (health.status == 503 and (health.json or {}).get("status")
                              == "storage_failing"),
     "... and the daemon kept serving: /healthz answers, ok or storage_failing when the last "
     "write's sync failed", health)
metas, unordered, bad = meta_order(parse(log)[0])
t.ok(metas > 50 and unordered == 0, "... and no meta page was written while earlier pages were "
     "unsynced (%d meta writes, %d too early)" % (metas, unordered), "\n".join(bad))
acks, unsafe, bad = unsafe_acks(log, parse(log)[1])
t.ok(acks > 100 and unsafe == 0, "... and no change was answered 2xx before a meta page written "
     "since its request was on disk, a failed sync dropping those it was writing (%d answers, "
     "%d unsafe)" % (acks, unsafe), "\n".join(bad))
t.diag("with failing syncs: %d acknowledgements checked, %d answered 500 SB_ESTORE, %d of %d "
       "syncs failed" % (checked2, estore2, failed2, failed2 + ok2))

# 4. A daemon whose helper threads cannot start does not start: it says
# which, and exits 1, leaving no lock behind (a next start works).
for sync, nth, which in (("group", 1, "sync"), ("group", 2, "engine"), ("none", 1, "engine")):
    d = Daemon(conf={"sync": sync})
    t.cleanups.append(d.cleanup)
    d.env = {"LD_PRELOAD": SHIM, "SB_THREADFAIL": str(nth),
             "ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")}
    d.start(expect_listen=False)
    rc = d.wait(20)
    said = [l for l in d.lines if "cannot start the %s thread" % which in l]
    lock = os.path.join(d.data_dir, "serve.lock")
    t.ok(rc == 1 and said and not any('msg="listening"' in l for l in d.lines) and
         not os.path.exists(lock),
         "sync=%s, pthread_create #%d failing: exit 1 with \"cannot start the %s thread\", "
         "never listening, no serve.lock left" % (sync, nth, which),
         "rc=%s lock=%s\n%s" % (rc, os.path.exists(lock), "\n".join(d.lines[-5:])))
    t.diag(said[0] if said else "(not said)")
    d.env = None
    d.start()
    t.ok(d.request("GET", "/healthz").status == 200 and d.stop() == 0,
         "... and the next start on that data directory serves and stops cleanly")
t.done()
