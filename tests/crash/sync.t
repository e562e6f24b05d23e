#!/usr/bin/env python3
# Acknowledged means synced, seen at the system calls. A kill -9 cannot lose
# what the page cache holds, so kill9.t cannot see an acknowledgement sent
# before its sync; this test can. The daemon (sync = group) runs with the
# synctrace.so shim preloaded, which logs in order every byte read from and
# written to its sockets and every msync/fsync/fdatasync. Under load —
# concurrent keep-alive clients, a pipelined burst, a chunked upload — every
# 2xx answer to a request that changes state (POST, PUT, DELETE) must be
# written after a sync that began after the request's last byte was read and
# ended before the answer's first byte was written.
import os, re, socket, sys, threading
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "daemon"))
from sbtest import TAP, Daemon, provision, agent_doc  # noqa: E402

t = TAP(deadline=180)
build = os.environ.get("SB_BUILD", "build")
shim = os.path.join(build if os.path.isabs(build) else os.path.join(ROOT, build),
                    "tests", "crash", "synctrace.so")
d = Daemon(conf={"sync": "group", "log_level": "info"})
t.cleanups.append(d.cleanup)
log = os.path.join(d.tmp, "synctrace.log")
saved = {k: os.environ.get(k) for k in ("LD_PRELOAD", "SB_SYNCTRACE", "ASAN_OPTIONS")}
os.environ["LD_PRELOAD"] = shim
os.environ["SB_SYNCTRACE"] = log
os.environ["ASAN_OPTIONS"] = ((saved["ASAN_OPTIONS"] + ":") if saved["ASAN_OPTIONS"] else "") + \
    "verify_asan_link_order=0"
try:
    d.start()
finally:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
t.ok(os.path.exists(shim), "the shim is built (%s)" % shim)
acme = provision(d, agents=("alice", "bob", "carol", "dave"))

errors = []


def worker(w):
    c = d.conn()
    try:
        for i in range(60):
            cid = "w%dc%d" % (w, i)
            r = acme.post("/v1/calls", {"call": cid, "queue": "support", "caller": "+4930100%03d" % i},
                          conn=c)
            ring = [a["agent"] for a in r.actions("ring")]
            if r.status != 201:
                errors.append(r)
                return
            if ring:
                acme.post("/v1/calls/%s/ring_result" % cid, {"agent": ring[0], "outcome": "answered"},
                          conn=c)
                acme.post("/v1/calls/%s/hangup" % cid, conn=c)
            else:
                acme.post("/v1/calls/%s/abandon" % cid, conn=c)
            acme.put("/v1/agents/w%d" % w, agent_doc("w%d" % w, name="v%d" % i), conn=c)
            acme.get("/v1/agents/alice", conn=c)
    finally:
        c.close()


threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
for th in threads:
    th.start()
# A pipelined burst and a chunked upload meanwhile.
auth = acme.auth.encode()
burst = b""
for i in range(50):
    body = b'{"devices":{"softphone":"sip:p%d@x"}}' % i
    burst += (b"PUT /v1/agents/p%d HTTP/1.1\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n%s"
              % (i, auth, len(body), body))
burst += b"DELETE /v1/agents/p0 HTTP/1.1\r\nAuthorization: " + auth + b"\r\nConnection: close\r\n\r\n"
got_burst = d.raw(burst)
parts = [b'{"devices":{"sof', b'tphone":"sip:chunky@x"}}']
chunked = (b"PUT /v1/agents/chunky HTTP/1.1\r\nAuthorization: " + auth +
           b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
           b"".join(b"%x\r\n%s\r\n" % (len(x), x) for x in parts) + b"0\r\n\r\n")
got_chunked = d.raw(chunked)
for th in threads:
    th.join()
t.ok(not errors, "the load ran", errors[:3])
t.ok(got_burst.count(b"HTTP/1.1 200") == 51 and got_chunked.startswith(b"HTTP/1.1 200"),
     "the pipelined burst and the chunked upload were answered",
     "%d answers of 200 to the burst; chunked: %r" % (got_burst.count(b"HTTP/1.1 200"),
                                                     got_chunked[:200]))
t.is_(d.stop(), 0, "the daemon stops cleanly")

# -- the trace ---------------------------------------------------------------------
events = []  # (seq, kind, fd, data)
with open(log, "rb") as f:
    raw = f.read()
pos = 0
while pos < len(raw):
    nl = raw.index(b"\n", pos)
    seq, kind, fd, n = raw[pos:nl].split()
    n = int(n)
    events.append((int(seq), kind.decode(), int(fd), raw[nl + 1:nl + 1 + n]))
    pos = nl + 1 + n
t.ok(len(events) > 100, "the shim logged %d events" % len(events))


class Stream:
    def __init__(self):
        self.data = b""
        self.seqs = []  # (end offset, seq) per chunk

    def add(self, seq, b):
        self.data += b
        self.seqs.append((len(self.data), seq))

    def seq_at(self, off):
        """Seq of the chunk holding byte `off`."""
        for end, s in self.seqs:
            if off < end:
                return s
        return None


conns = []  # [(input Stream, output Stream)]
live = {}
syncs = []  # (start seq, end seq)
open_sync = None
for seq, kind, fd, data in events:
    if kind in "RW":
        c = live.get(fd)
        if c is None:
            c = live[fd] = (Stream(), Stream())
            conns.append(c)
        c[0 if kind == "R" else 1].add(seq, data)
    elif kind == "C":
        live.pop(fd, None)
    elif kind == "S":
        open_sync = seq
    elif kind == "s" and open_sync is not None:
        syncs.append((open_sync, seq))
        open_sync = None


def requests(st):
    out, pos = [], 0
    data = st.data
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
    out, pos = [], 0
    data = st.data
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            break
        head = data[pos:end].decode("latin-1")
        status = int(head.split()[1])
        m = re.search(r"(?im)^content-length:\s*(\d+)", head)
        first = st.seq_at(pos)
        pos = end + 4 + (int(m.group(1)) if m else 0)
        if status == 100:
            continue
        out.append((status, first))
        if "text/event-stream" in head:
            break
    return out


checked = late = 0
bad = []
for inp, outp in conns:
    reqs, resps = requests(inp), responses(outp)
    for (method, path, rseq), (status, wseq) in zip(reqs, resps):
        if method not in ("POST", "PUT", "DELETE") or not 200 <= status < 300:
            continue
        checked += 1
        if not any(rseq < s and e < wseq for s, e in syncs):
            late += 1
            if len(bad) < 10:
                bad.append("%s %s: read at #%d, answered %d at #%d, no sync in between"
                           % (method, path, rseq, status, wseq))
t.ok(checked >= 500, "%d acknowledgements of changes found in the trace" % checked)
t.ok(late == 0, "every one was written after a sync that began after its request arrived "
     "(%d syncs in the trace)" % len(syncs), "\n".join(bad))
t.diag("acknowledgements checked: %d; syncs: %d; connections: %d" % (checked, len(syncs), len(conns)))
t.done()
