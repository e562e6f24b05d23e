"""sbtest — helpers for the daemon tests: TAP output, a real `switchboard serve`
on a free loopback port with a fresh data directory, HTTP and event-stream
clients. Python 3 standard library only.
"""
import atexit
import base64
import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def binary():
    b = os.environ.get("SB_BUILD", "build")
    for cand in (os.path.abspath(b), os.path.join(ROOT, b)):
        p = os.path.join(cand, "switchboard")
        if os.path.exists(p):
            return p
    return os.path.join(ROOT, b, "switchboard")


# A deterministic routing policy: ring the available agent whose id sorts
# first and who has not been rung for this call yet, on the softphone; wait
# when nobody is.
FIRST_POLICY = """\
local P = {}
function P.route(call, agents, ctx)
  local best
  for _, a in ipairs(agents) do
    if not call.tried[a.id] and (not best or a.id < best.id) then best = a end
  end
  if not best then return { wait = 60 } end
  return { ring = best.id, device = "softphone", timeout = 20 }
end
return P
"""

# FIRST_POLICY ringing for 1 s: ring timeouts (timers) within a test's time.
QUICK_POLICY = FIRST_POLICY.replace('device = "softphone", timeout = 20', "timeout = 1")


class TAP:
    def __init__(self, deadline=120):
        """deadline: how long the test may run before it is failed as hung.
        At least SB_TEST_TIMEOUT seconds (600 unless set), as the C tests
        (tap.h): the deadline catches a hang, and a loaded machine or the
        sanitizer build takes several times a test's usual time (a test of
        many synced writes on a busy disk took 107 s where it takes 20)."""
        self.n = 0
        self.failed = 0
        signal.signal(signal.SIGALRM, self._timeout)
        signal.alarm(max(deadline, int(os.environ.get("SB_TEST_TIMEOUT") or 600)))
        self.cleanups = []
        atexit.register(self._cleanup)  # also after an uncaught exception

    def owned(self, thing):
        """Register thing.cleanup to run at exit (a Daemon, say); returns thing,
        so `d = t.owned(Daemon()).start()` makes, owns and starts one."""
        self.cleanups.append(thing.cleanup)
        return thing

    def _cleanup(self):
        while self.cleanups:
            try:
                self.cleanups.pop(0)()
            except Exception:
                pass

    def _timeout(self, *_):
        print("not ok %d - test timed out" % (self.n + 1))
        print("1..%d" % (self.n + 1))
        sys.stdout.flush()
        self._cleanup()
        os._exit(1)

    def ok(self, cond, name, diag=None, todo=None):
        """todo: a known bug, named; prove reports it and does not fail the run."""
        self.n += 1
        print("%sok %d - %s%s" % ("" if cond else "not ", self.n, name,
                                  " # TODO " + todo if todo else ""))
        if not cond and not todo:
            self.failed += 1
        if not cond:
            if diag is not None:
                for line in str(diag).splitlines() or [""]:
                    print("#   " + line)
        sys.stdout.flush()
        return bool(cond)

    def is_(self, got, want, name, extra=None, todo=None):
        msg = "got:  %r\nwant: %r" % (got, want)
        if extra is not None:
            msg += "\n%r" % (extra,)
        return self.ok(got == want, name, msg, todo)

    def diag(self, msg):
        for line in str(msg).splitlines():
            print("# " + line)
        sys.stdout.flush()

    def done(self):
        self._cleanup()
        print("1..%d" % self.n)
        sys.stdout.flush()
        sys.exit(1 if self.failed else 0)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    @property
    def code(self):
        try:
            return self.json["error"]["code"]
        except (TypeError, KeyError):
            return None

    @property
    def field(self):
        try:
            return self.json["error"]["field"]
        except (TypeError, KeyError):
            return None

    def actions(self, kind=None):
        acts = (self.json or {}).get("actions") or []
        return [a for a in acts if kind is None or a.get("type") == kind]

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:300])


def _die_with_parent():
    """In the daemon's child process: get SIGKILL if the test process dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def basic(account, key):
    return "Basic " + base64.b64encode(("%s:%s" % (account, key)).encode()).decode()


class Daemon:
    """A `switchboard serve` with its own temp data and policy directories."""

    def __init__(self, conf=None, args=(), tmp=None, data_dir=None, policy_dir=None, cwd=None,
                 env=None):
        self.cwd = cwd
        self.env = env  # variables set for the process on top of ours (None: unset it)
        self.tmp = tmp or tempfile.mkdtemp(prefix="sbtest-")
        self.own_tmp = tmp is None
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        self.policy_dir = policy_dir or os.path.join(self.tmp, "policies")
        os.makedirs(self.policy_dir, exist_ok=True)
        settings = {
            "listen": "127.0.0.1:0",
            "data_dir": self.data_dir,
            "policy_dir": self.policy_dir,
            "log_level": "debug",
            "sync": "group",
            # A hook's wall-clock limit (50 ms by default) is lost to a loaded
            # machine's scheduler: a trivial hook descheduled for 50 ms fails
            # ("wall-clock limit exceeded") and the test sees a fallback or a
            # failed review. The instruction limit still stops a runaway
            # hook; a test of the wall-clock limit sets its own.
            "policy_wall_ms": 10000,
        }
        settings.update(conf or {})
        self.settings = settings
        self.conf_path = os.path.join(self.tmp, "switchboard-%d.conf" % id(self))
        with open(self.conf_path, "w") as f:
            f.write("# written by tests/daemon/sbtest.py\n")
            for k, v in settings.items():
                f.write("%s = %s\n" % (k, v))
        self.args = list(args)
        self.proc = None
        self.lines = []
        self.out = []
        self.cond = threading.Condition()
        self.host = self.port = None
        self.token = None

    # -- process ---------------------------------------------------------
    def start(self, expect_listen=True, timeout=20):
        self._join_pumps()  # an earlier process's, still at its pipes' end
        self.lines = []
        self.out = []
        self.pumps = 2
        env = None
        if self.env:
            env = dict(os.environ)
            for k, v in self.env.items():
                if v is None:
                    env.pop(k, None)
                else:
                    env[k] = v
        self.proc = subprocess.Popen(
            [binary(), "serve", "--config", self.conf_path] + self.args,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent, cwd=self.cwd, env=env)
        self.pump_threads = [
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.lines), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True)]
        for th in self.pump_threads:
            th.start()
        if not expect_listen:
            return self
        line = self.wait_log(r'msg="listening"', timeout=timeout)
        if not line:
            raise RuntimeError("daemon did not start:\n" + "\n".join(self.lines))
        m = re.search(r"addr=(\S+):(\d+)", line)
        self.host, self.port = m.group(1), int(m.group(2))
        tok = self.settings.get("admin_token_file") or os.path.join(self.data_dir, "admin.token")
        with open(tok) as f:
            self.token = f.read().strip()
        return self

    def _join_pumps(self):
        """Wait for the readers of the last process's output to finish: one
        still running would count down the next process's readers (its
        wait_log then gives up at once, as if that process had exited)."""
        for th in getattr(self, "pump_threads", []):
            th.join(10)

    def _pump(self, stream, sink):
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cond:
                sink.append(line)
                self.cond.notify_all()
        with self.cond:
            self.pumps -= 1
            self.cond.notify_all()

    def wait_log(self, pattern, timeout=10, after=0, sink=None):
        """First log line at index >= after matching pattern, or None."""
        sink = self.lines if sink is None else sink
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in sink[after:]:
                    if rx.search(line):
                        return line
                left = end - time.monotonic()
                if left <= 0 or self.pumps == 0:
                    for line in sink[after:]:
                        if rx.search(line):
                            return line
                    return None
                self.cond.wait(min(left, 0.2))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=20):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._join_pumps()  # its last lines read: callers look at self.lines next
        return rc

    def stop(self, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait(timeout) is None:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.own_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- HTTP --------------------------------------------------------------
    def conn(self, timeout=10):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, auth=None, headers=None, conn=None):
        h = dict(headers or {})
        if auth:
            h["Authorization"] = auth
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        c = conn or self.conn()
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read().decode("utf-8", "replace")
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            if conn is None:
                c.close()

    def admin(self, method, path, body=None, **kw):
        return self.request(method, path, body, auth="Bearer " + self.token, **kw)

    def metric(self, name):
        """The value of an unlabelled metric from /metrics, or None."""
        r = self.admin("GET", "/metrics")
        for line in r.body.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def raw(self, data, timeout=10, read_until_close=True):
        """Send raw bytes; return everything read until the server closes."""
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            s.sendall(data)
            chunks = []
            while True:
                try:
                    b = s.recv(65536)
                except (ConnectionResetError, socket.timeout):
                    break
                if not b:
                    break
                chunks.append(b)
                if not read_until_close:
                    break
            return b"".join(chunks)
        finally:
            s.close()


class Account:
    """An account's API credentials bound to a daemon."""

    def __init__(self, d, account, key):
        self.d, self.id, self.key = d, account, key

    @property
    def auth(self):
        return basic(self.id, self.key)

    def req(self, method, path, body=None, **kw):
        return self.d.request(method, path, body, auth=self.auth, **kw)

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def put(self, path, body=None, **kw):
        return self.req("PUT", path, body, **kw)

    def post(self, path, body=None, **kw):
        return self.req("POST", path, body, **kw)

    def delete(self, path, **kw):
        return self.req("DELETE", path, **kw)


def agent_doc(aid, **extra):
    doc = {
        "name": aid.capitalize(),
        "devices": {"softphone": "sip:%s@pbx.example" % aid,
                    "mobile": "tel:+4477009%05d" % (sum(map(ord, aid)) % 100000)},
        "status": "available",
    }
    doc.update(extra)
    return doc


def provision(d, account="acme", agents=("alice", "bob"), queue="support", policy="first",
              wrapup=0, ring=20):
    """Create an account with a key, the FIRST policy, agents and one queue.
    The policy rings an agent for `ring` seconds (1 to 600): a test that
    keeps calls ringing while it compares state before and after gives them
    600, so that no ring times out however slow the machine."""
    r = d.admin("POST", "/v1/accounts", {"id": account, "name": account.title()})
    assert r.status == 201, r
    r = d.admin("POST", "/v1/accounts/%s/keys" % account)
    assert r.status == 201, r
    a = Account(d, account, r.json["key"])
    r = a.put("/v1/policies/" + policy, FIRST_POLICY.replace("timeout = 20", "timeout = %d" % ring),
              headers={"Content-Type": "text/x-lua"})
    assert r.status == 200, r
    for ag in agents:
        r = a.put("/v1/agents/" + ag, agent_doc(ag, wrapup=wrapup))
        assert r.status == 200, r
    if queue:
        r = a.put("/v1/queues/" + queue, {"policy": policy, "ring_timeout": 20,
                                           "members": [{"agent": ag} for ag in agents]})
        assert r.status == 200, r
    return a


def ring_mover(d, account):
    """An account whose call g1 rings one of two agents, al and bo, for 600 s
    (queue gen, policy one: the first agent free): pausing the agent it rings
    moves it to the other, a cancel and a ring on the event stream, small
    ones. Returns the account and move(n): n rounds of pausing and freeing
    each agent, over one connection."""
    a = provision(d, account=account, agents=("al", "bo"), queue=None)
    a.put("/v1/policies/one", "local P = {}\nfunction P.route(call, agents, ctx)\n"
          "  if #agents == 0 then return {} end\n  return { ring = agents[1].id }\nend\n"
          "return P\n", headers={"Content-Type": "text/x-lua"})
    a.put("/v1/queues/gen", {"policy": "one", "ring_timeout": 600,
                             "members": [{"agent": "al"}, {"agent": "bo"}]})
    a.post("/v1/calls", {"call": "g1", "queue": "gen", "caller": "+4930100077"})
    conn = d.conn()

    def move(n):
        for _ in range(n):
            for ag in ("al", "bo"):
                a.post("/v1/agents/%s/status" % ag, {"status": "paused"}, conn=conn)
                a.post("/v1/agents/%s/status" % ag, {"status": "available"}, conn=conn)
    return a, move


def until(probe, timeout=30, every=0.05):
    """Call probe() until it gives a true value or timeout seconds pass; its
    last value. For a condition a test waits on (a timer's effect, a line a
    process will write): a sleep then a check fails when the machine is slow,
    this waits as long as it takes and no longer."""
    end = time.monotonic() + timeout
    while True:
        got = probe()
        if got or time.monotonic() >= end:
            return got
        time.sleep(every)


def library_env(lib):
    """The environment for a Python process that loads lib (the engine's
    shared library): with the sanitizer runtimes preloaded when lib is a
    sanitizer build (they must come first), Python's own leaks not chased."""
    env = dict(os.environ)
    try:
        out = subprocess.run(["ldd", lib], capture_output=True, text=True, check=False).stdout
    except OSError:
        return env
    found = {}
    for line in out.splitlines():
        m = re.match(r"\s*(lib(asan|ubsan)\.so[^\s]*)\s+=>\s+(\S+)", line)
        if m:
            found[m.group(2)] = m.group(3)
    rts = [found[k] for k in ("asan", "ubsan") if k in found]
    if rts:
        env["LD_PRELOAD"] = ":".join(rts + [p for p in [env.get("LD_PRELOAD")] if p])
        env["ASAN_OPTIONS"] = "detect_leaks=0:" + env.get("ASAN_OPTIONS", "")
    return env

def read_responses(sock, heads, timeout=10):
    """Read responses from sock: `heads` of them if a number, else one per
    entry of the list (True: it answers a HEAD, so it has no body whatever
    its Content-Length). A 100 Continue counts as one, without a body.
    Returns ([(status, headers, body)], the bytes left over), with
    (None, {}, b"") for each response that could not be read (the
    connection closed, the framing was lost)."""
    if isinstance(heads, int):
        heads = [False] * heads
    sock.settimeout(timeout)
    buf, out = b"", []
    missing = (None, {}, b"")
    for head in heads:
        while b"\r\n\r\n" not in buf:
            try:
                b = sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                b = b""
            if not b:
                return out + [missing] * (len(heads) - len(out)), buf
            buf += b
        top, _, rest = buf.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.") or not all(":" in l for l in lines[1:]):
            return out + [missing] * (len(heads) - len(out)), buf
        hdrs = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
        status = int(lines[0].split()[1])
        n_body = 0 if head or status == 100 else int(hdrs.get("content-length", "0"))
        while len(rest) < n_body:
            try:
                b = sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                b = b""
            if not b:
                break
            rest += b
        out.append((status, hdrs, rest[:n_body]))
        buf = rest[n_body:]
    return out, buf


def rest_of(sock, timeout=2):
    """Whatever else the server sends before it closes (or goes quiet)."""
    sock.settimeout(timeout)
    got = b""
    try:
        while True:
            b = sock.recv(65536)
            if not b:
                break
            got += b
    except (socket.timeout, ConnectionResetError):
        pass
    return got

class Stream:
    """A GET /v1/events subscriber reading Server-Sent Events."""

    def __init__(self, d, auth, timeout=10, last_event_id=None, rcvbuf=None):
        if rcvbuf:  # a small receive buffer: the kernel holds little for a slow reader
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect((d.host, d.port))
        else:
            self.sock = socket.create_connection((d.host, d.port), timeout=timeout)
        self.last_id = None  # the id of the last event read that had one
        extra = "" if last_event_id is None else "Last-Event-ID: %s\r\n" % last_event_id
        req = ("GET /v1/events HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n"
               "Accept: text/event-stream\r\n%s\r\n" % (d.host, auth, extra))
        self.sock.sendall(req.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            b = self.sock.recv(65536)
            if not b:
                break
            self.buf += b
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines and lines[0] else 0
        self.headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        if self.status != 200:
            # the error body (Content-Length delimited)
            n = int(self.headers.get("content-length", "0"))
            while len(self.buf) < n:
                b = self.sock.recv(65536)
                if not b:
                    break
                self.buf += b
            self.body = self.buf[:n].decode("utf-8", "replace")

    def _block(self, timeout):
        end = time.monotonic() + timeout
        while b"\n\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                b = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not b:
                return None
            self.buf += b
        blk, _, self.buf = self.buf.partition(b"\n\n")
        return blk.decode("utf-8")

    def next(self, timeout=10):
        """The next event's data as JSON (comments skipped), or None."""
        end = time.monotonic() + timeout
        while True:
            blk = self._block(max(0.0, end - time.monotonic()))
            if blk is None:
                return None
            data = [l[6:] for l in blk.split("\n") if l.startswith("data: ")]
            ids = [l[4:] for l in blk.split("\n") if l.startswith("id: ")]
            if ids:
                self.last_id = ids[-1]
            if data:
                return json.loads("\n".join(data))

    def rest(self, timeout=5):
        """Every event until none comes within timeout (or the stream ends)."""
        evs = []
        while True:
            ev = self.next(timeout)
            if ev is None:
                return evs
            evs.append(ev)

    def next_where(self, pred, timeout=10):
        end = time.monotonic() + timeout
        while True:
            ev = self.next(max(0.0, end - time.monotonic()))
            if ev is None or pred(ev):
                return ev

    def comment(self, timeout=10):
        end = time.monotonic() + timeout
        while True:
            blk = self._block(max(0.0, end - time.monotonic()))
            if blk is None:
                return None
            if blk.startswith(":"):
                return blk

    def closed(self, timeout=10):
        """True once the server closes the stream."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                b = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not b:
                return True

    def close(self):
        self.sock.close()
