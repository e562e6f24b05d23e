#!/usr/bin/env python3
# max_connections against the open-file limit: every connection past
# max_connections is answered 503 HTTP_TOO_MANY_CONNECTIONS, in a burst too
# (past the 64 that wait for their client's close, answered and closed at
# once) — none is left waiting in the listen queue because the daemon ran out of descriptors, which also made it spin
# on accept() and log "accept failed" in a loop. The daemon raises its soft
# limit for max_connections when the hard limit allows, and otherwise lowers
# max_connections to fit, saying so. Refused connections are logged one line
# a second, the next line saying how many were left out: a flood of them does
# not flood the log.
import sys, os, re, socket, resource
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest
from sbtest import TAP, Daemon, rest_of

t = TAP(deadline=150)
REQ = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"


def start_with_nofile(soft, hard, conf):
    """A daemon whose RLIMIT_NOFILE is (soft, hard) from its first instruction."""
    orig = sbtest._die_with_parent

    def pre():
        orig()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    sbtest._die_with_parent = pre
    try:
        return t.owned(Daemon(conf=conf)).start()
    finally:
        sbtest._die_with_parent = orig


def open_many(d, n, timeout=5):
    """n connections, each sending a /healthz and kept open: the status each
    got (200, 503), "closed" for a close without an answer, "hung" for none
    within timeout (then stops: the rest would hang too)."""
    socks, got = [], []
    for _ in range(n):
        s = socket.create_connection((d.host, d.port), timeout=timeout)
        socks.append(s)
        try:
            s.sendall(REQ)
            data = b""
            while b"\r\n\r\n" not in data:
                b = s.recv(65536)
                if not b:
                    break
                data += b
            got.append(int(data.split(b" ", 2)[1]) if data else "closed")
            if data.startswith(b"HTTP/1.1 503") and b"HTTP_TOO_MANY_CONNECTIONS" not in data:
                got[-1] = "503 without its code"
        except (ConnectionResetError, BrokenPipeError):
            got.append("closed")
        except socket.timeout:
            got.append("hung")
            break
    return socks, got


soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if hard != resource.RLIM_INFINITY and hard < 2000:
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
else:
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2000), hard))

# -- the hard limit is too low for max_connections: lowered, with a warning -----
d = start_with_nofile(200, 200, {"log_level": "info"})   # max_connections = 1024
t.ok(d.wait_log(r'msg="max_connections lowered to fit the open-file limit"', timeout=5),
     "a 200-descriptor limit: max_connections lowered, and the log says so")
socks, got = open_many(d, 300)
t.ok("hung" not in got, "300 connections: every one answered or closed, none left waiting",
     "statuses: %s" % {k: got.count(k) for k in set(got)})
t.ok(got.count(200) > 0 and got.count(503) > 0 and set(got) <= {200, 503},
     "... 200 up to the limit, then 503 HTTP_TOO_MANY_CONNECTIONS",
     "statuses: %s" % {k: got.count(k) for k in set(got)})
spin = [l for l in d.lines if 'msg="accept failed"' in l]
t.ok(len(spin) < 10, "... and no accept() loop in the log (%d accept failed lines)" % len(spin))
for s in socks:
    s.close()
t.is_(d.stop(), 0, "exit 0")

# -- a flood past max_connections: one log line a second, not one each ------------
import time
d = t.owned(Daemon(conf={"log_level": "info", "max_connections": 2})).start()
held, got = open_many(d, 2)
t.is_(got, [200, 200], "max_connections 2: two connections held")
began = time.monotonic()
_, got = open_many(d, 100)
took = time.monotonic() - began
t.ok(set(got) == {503}, "100 more: refused, each 503 HTTP_TOO_MANY_CONNECTIONS",
     {k: got.count(k) for k in set(got)})
for s in _:
    s.close()
time.sleep(1.1)  # a second past the last line the flood made: the next refusal is logged
_, got = open_many(d, 1)


def refusals():
    return [l for l in d.lines if 'msg="connection refused: too many connections"' in l]


def told(lines):
    """The refusals those lines stand for: each its own and those it says were left out."""
    return sum(1 + int(m.group(1)) if m else 1
               for m in (re.search(r"not_logged_before=(\d+)", l) for l in lines))


# The log is read as the daemon writes it: wait until its lines tell of all 101.
refused = sbtest.until(lambda: told(refusals()) >= 101 and refusals()) or refusals()
flood, line = refused[:-1], (refused or [""])[-1]
# One line a second at most: the flood's lines span at most the time it took.
t.ok(1 <= len(flood) <= 1 + int(took),
     "... logged in %d line(s) over %.1f s, not 100" % (len(flood), took), flood[:5])
n = sum(int(x) for x in re.findall(r"not_logged_before=(\d+)", "\n".join(refused)))
t.ok("max_connections=2" in line and told(refused) == 101,
     "a second later the next one is logged, saying how many were left out (%d)" % n, refused)
for s in held + _:
    s.close()
end, rejected, tries = time.monotonic() + 5, None, 0
while rejected is None and time.monotonic() < end:   # until the daemon has seen them close
    try:
        rejected = d.metric("switchboard_http_connections_rejected_total")
    except Exception:
        pass
    if rejected is None:   # refused too: counted
        tries += 1
        time.sleep(0.05)
t.is_(rejected, 101.0 + tries,
      "... and every one counted in switchboard_http_connections_rejected_total")
t.is_(d.metric("switchboard_http_connections_rejected_per_peer_total"), 0.0,
      "... none of them in switchboard_http_connections_rejected_per_peer_total")
t.is_(d.stop(), 0, "exit 0")

# -- a burst past max_connections: every connection answered 503, also past ----
# -- the 64 that wait for their client's close, whether it sent a request ------
d = t.owned(Daemon(conf={"log_level": "info", "max_connections": 4})).start()
held, got = open_many(d, 4)
t.is_(got, [200] * 4, "max_connections 4: four connections held")
for send in (False, True):
    burst = []
    for _ in range(300):
        s = socket.create_connection((d.host, d.port), timeout=10)
        if send:
            s.sendall(REQ)
        burst.append(s)
    answers = []
    for s in burst:
        data = rest_of(s, 10)  # the 503, then the close
        answers.append("503" if data.startswith(b"HTTP/1.1 503") and
                       b"HTTP_TOO_MANY_CONNECTIONS" in data and b"Retry-After: 1" in data
                       else "no answer")
    t.is_({k: answers.count(k) for k in set(answers)}, {"503": 300},
          "a burst of 300 more connections%s, held open: every one answered 503 with Retry-After"
          % (" each sending a request" if send else ""))
    for s in burst:
        s.close()
t.is_(d.request("GET", "/healthz").status, 503, "... and the four held still hold it")
for s in held:
    s.close()
t.is_(d.stop(), 0, "exit 0")

# -- a low soft limit under a higher hard one is raised for max_connections -----
if hard == resource.RLIM_INFINITY or hard >= 1000:
    d = start_with_nofile(100, hard, {"log_level": "info", "max_connections": 300})
    socks, got = open_many(d, 300)
    t.is_({k: got.count(k) for k in set(got)}, {200: 300},
          "soft limit 100, max_connections 300: all 300 connections served")
    t.ok(not d.wait_log(r"max_connections lowered", timeout=0), "... nothing lowered")
    for s in socks:
        s.close()
    t.is_(d.stop(), 0, "exit 0")
else:
    t.diag("hard RLIMIT_NOFILE %d: the raised-soft-limit case is skipped" % hard)
# -- descriptors run out under the daemon (a lower limit set from outside, as
# -- a system short of them does): accept() pauses instead of spinning ---------
import time
d = t.owned(Daemon(conf={"log_level": "info"})).start()
pid = d.proc.pid
used = len(os.listdir("/proc/%d/fd" % pid))
before = resource.prlimit(pid, resource.RLIMIT_NOFILE)
resource.prlimit(pid, resource.RLIMIT_NOFILE, (used + 4, before[1]))
waiting = []
began = time.monotonic()
for _ in range(40):
    s = socket.create_connection((d.host, d.port), timeout=10)
    s.sendall(REQ)
    waiting.append(s)
d.wait_log(r'msg="accept failed"', timeout=30)  # the first, however slow the machine
time.sleep(1.0)
spin = [l for l in d.lines if 'msg="accept failed"' in l]
took = time.monotonic() - began  # a pause of 100 ms each: about 10 lines a second at most
t.ok(1 <= len(spin) <= 30 * max(1.0, took),
     "out of descriptors for a second: %d accept failed lines in %.1f s, not a loop"
     % (len(spin), took))
t.ok(any("paused_ms=100" in l for l in spin), "... each a pause of 100 ms",
     spin[0] if spin else "no line")
resource.prlimit(pid, resource.RLIMIT_NOFILE, before)
answered = 0
for s in waiting:
    try:
        data = s.recv(65536)
        answered += data.startswith(b"HTTP/1.1 ")
    except socket.timeout:
        pass
    s.close()
t.is_(answered, 40, "descriptors back: every waiting connection is answered")
t.is_(d.stop(), 0, "exit 0")

# -- one address may hold max_connections_per_peer, the others the rest ----------
d = t.owned(Daemon(conf={"log_level": "info", "max_connections_per_peer": 3})).start()
held, got = open_many(d, 3)
t.is_(got, [200, 200, 200], "max_connections_per_peer 3: three connections from 127.0.0.1")
extra, got = open_many(d, 2)
t.is_(got, [503, 503], "the fourth and fifth from it: 503")
line = d.wait_log(r'msg="connection refused: too many connections from one address"',
                  timeout=5) or ""
t.ok("max_connections_per_peer=3" in line and "peer=127.0.0.1:" in line,
     "logged, naming the address and the setting", line)
for s in extra:
    s.close()
other, got = [], []
try:   # another address of the loopback network, where the system has it
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.bind(("127.0.0.2", 0))
    s.connect((d.host, d.port))
    s.sendall(REQ)
    data = s.recv(65536)
    other.append(s)
    got.append(int(data.split(b" ", 2)[1]) if data else "closed")
except OSError as e:
    t.diag("127.0.0.2 not usable here (%s): the other-address case is skipped" % e)
if other:
    t.is_(got, [200], "meanwhile a connection from 127.0.0.2 is served")
held[0].close()
end, got = time.monotonic() + 5, []
while time.monotonic() < end:   # until the daemon has seen it close
    more, got = open_many(d, 1)
    held += more
    if got == [200]:
        break
    time.sleep(0.05)
t.is_(got, [200], "one of the three closed: 127.0.0.1 gets its next one")
for s in held + other:
    s.close()
# The refusals past max_connections_per_peer are told apart from those past
# max_connections: an operator raises one setting or the other.
end, body = time.monotonic() + 5, None
while body is None and time.monotonic() < end:   # until the daemon has seen them close
    try:
        r = d.admin("GET", "/metrics")
        body = r.body if r.status == 200 else None
    except Exception:
        pass
    if body is None:
        time.sleep(0.05)
vals = dict(re.findall(r"^(switchboard_http_connections_rejected(?:_per_peer)?_total) (\S+)$",
                       body or "", re.M))
t.ok(float(vals.get("switchboard_http_connections_rejected_per_peer_total", -1)) >= 2 and
     vals.get("switchboard_http_connections_rejected_per_peer_total") ==
     vals.get("switchboard_http_connections_rejected_total"),
     "the refusals from one address counted in switchboard_http_connections_rejected_per_peer_total,"
     " and in switchboard_http_connections_rejected_total", vals)
helps = dict(re.findall(r"^# HELP (switchboard_http_connections_rejected\S*) (.*)$", body or "", re.M))
t.ok("max_connections_per_peer" in helps.get("switchboard_http_connections_rejected_total", ""),
     "... whose HELP says it counts both", helps)
t.is_(d.stop(), 0, "exit 0")
t.done()
