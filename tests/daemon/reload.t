#!/usr/bin/env python3
# SIGHUP reloads the shared policies while traffic flows: no request fails,
# a good reload is logged "reload ok" and takes effect, a broken policy file
# is logged with what failed and changes nothing.
import sys, os, signal, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, FIRST_POLICY, provision

t = TAP(deadline=150)
d = t.owned(Daemon())
shared = os.path.join(d.policy_dir, "shared.lua")
with open(shared, "w") as f:
    f.write(FIRST_POLICY)
d.start()
acme = provision(d, agents=("alice", "bob", "carol"), queue=None)
r = acme.put("/v1/queues/support", {"policy": "shared",
                                    "members": [{"agent": a} for a in ("alice", "bob", "carol")]})
t.is_(r.status, 200, "queue support uses the shared policy")


def shared_version():
    r = acme.get("/v1/policies")
    for p in (r.json or {}).get("policies", []):
        if p["name"] == "shared":
            return p.get("version")
    return None


v0 = shared_version()
t.ok(v0, "GET /v1/policies lists the shared policy", acme.get("/v1/policies"))

stop = threading.Event()
failures, counts = [], [0]


def traffic(n):
    i = 0
    while not stop.is_set():
        i += 1
        cid = "t%d-%d" % (n, i)
        try:
            r = acme.post("/v1/calls", {"call": cid, "queue": "support", "caller": "+4930100001"})
            if r.status != 201:
                failures.append(("offer", r))
            r = acme.post("/v1/calls/%s/abandon" % cid)
            if r.status != 200:
                failures.append(("abandon", r))
            r = acme.get("/v1/agents")
            if r.status != 200:
                failures.append(("list", r))
            counts[0] += 3
        except Exception as e:          # a refused or broken connection is a failure too
            failures.append(("exception", repr(e)))


threads = [threading.Thread(target=traffic, args=(n,)) for n in range(3)]
for th in threads:
    th.start()

for k in range(3):
    with open(shared, "w") as f:
        f.write(FIRST_POLICY + "-- revision %d\n" % k)
    mark = len(d.lines)
    d.signal(signal.SIGHUP)
    line = d.wait_log(r'msg="reload ok"', after=mark, timeout=15)
    t.ok(line is not None, "SIGHUP %d: reload ok logged" % (k + 1))
    if k == 0:
        about = [x for x in d.lines[mark:] if "reload" in x and "level=debug" not in x]
        t.is_(len(about), 1, "a reload is one log line above debug, not one from the engine and "
              "one from the daemon", "\n".join(about))
        t.ok(line and " changed=1" in line, "... saying how many files changed", line)
        changed = [x for x in d.lines[mark:] if 'msg="shared policy changed"' in x]
        t.ok(len(changed) == 1 and 'policy="shared"' in changed[0] and
             " previous=%s" % v0 in changed[0] and shared_version() in changed[0],
             "... and which policy changed, to which version, from which",
             "\n".join(changed))
v1 = shared_version()
t.ok(v1 and v1 != v0, "the shared policy's version changed (%s -> %s)" % (v0, v1))

with open(shared, "w") as f:
    f.write("local P = {}\nfunction P.route(call, agents, ctx)\n  return { ring = \nend\nreturn P\n")
mark = len(d.lines)
d.signal(signal.SIGHUP)
line = d.wait_log(r'msg="reload failed', after=mark, timeout=15)
t.ok(line is not None, "a broken policy file: reload failed is logged")
about = [x for x in d.lines[mark:] if "reload" in x and "level=debug" not in x]
t.is_(len(about), 1, "... in one line", "\n".join(about))
t.ok(line and "shared" in line, "... naming the file", line)
t.is_(shared_version(), v1, "... and the version in use is unchanged")
t.is_(d.metric("switchboard_policy_dir_loaded"), 0.0,
      "... and switchboard_policy_dir_loaded is 0 while the directory is not what decides")

with open(shared, "w") as f:
    f.write(FIRST_POLICY)
mark = len(d.lines)
d.signal(signal.SIGHUP)
t.ok(d.wait_log(r'msg="reload ok"', after=mark, timeout=15) is not None, "fixed: reload ok again")
t.is_(d.metric("switchboard_policy_dir_loaded"), 1.0, "... and switchboard_policy_dir_loaded is 1")

# A policy that loads but that `policy check` faults: the reload says so.
lintme = os.path.join(d.policy_dir, "lintme.lua")
with open(lintme, "w") as f:
    f.write("local P = {}\nfunction P.route(call, agents, ctx)\n"
            "  if call.attempts > 5 then retrun {} end\n  return { wait = 5 }\nend\nreturn P\n")
mark = len(d.lines)
d.signal(signal.SIGHUP)
line = d.wait_log(r'msg="reload ok"', after=mark, timeout=15)
t.ok(line and "level=warn" in line and " warnings=1" in line,
     "a policy with a typo in a branch: reload ok, at warn, with warnings=1", line)
warned = [x for x in d.lines[mark:] if "policy warning" in x]
t.ok(len(warned) == 1 and lintme + ":3: accessing undefined variable 'retrun'" in warned[0],
     "... after a warning naming the file, the line and the finding", "\n".join(warned))
new = [x for x in d.lines[mark:] if 'msg="shared policy changed"' in x]
t.ok(len(new) == 1 and 'policy="lintme"' in new[0] and "previous=none" in new[0],
     "a new policy: logged with its version, replacing none", "\n".join(new))
os.unlink(lintme)
mark = len(d.lines)
d.signal(signal.SIGHUP)
line = d.wait_log(r'msg="reload ok"', after=mark, timeout=15)
t.ok(line and "level=info" in line and " warnings=0" in line, "mended: reload ok at info", line)
gone = [x for x in d.lines[mark:] if 'msg="shared policy removed"' in x]
t.ok(len(gone) == 1 and 'policy="lintme"' in gone[0] and "version=none" in gone[0] and
     "previous=none" not in gone[0] and " stores_dropped=0" in gone[0],
     "its file removed: logged, with the version that went and no store dropped",
     "\n".join(gone))

# A removed policy's store (ctx.set) goes with it: the line says in how many
# accounts, and a new file of that name starts afresh.
counter = os.path.join(d.policy_dir, "counter.lua")
COUNTER = ("local P = {}\nfunction P.route(call, agents, ctx)\n"
           "  local n = (ctx.get('n') or '') .. 'x'\n  ctx.set('n', n)\n"
           "  return { reject = n }\nend\nreturn P\n")


def counted(cid):
    """Offer a call to queue kvq: the reason its policy rejected it with."""
    r = acme.post("/v1/calls", {"call": cid, "queue": "kvq", "caller": "+4930100001"})
    return [a.get("reason") for a in (r.json or {}).get("actions", [])
            if a.get("type") == "reject"], r


def hup():
    mark = len(d.lines)
    d.signal(signal.SIGHUP)
    return d.wait_log(r'msg="reload (ok|failed)', after=mark, timeout=15), mark


def counter_on(name):
    """counter.lua written and reloaded, queue kvq routing with it."""
    with open(counter, "w") as f:
        f.write(COUNTER)
    line, mark = hup()
    r = acme.put("/v1/queues/kvq", {"policy": "counter", "members": [{"agent": "alice"}]})
    t.ok(line and "reload ok" in line and r.status == 200, name, r)


counter_on("queue kvq routes with a shared counter")
t.is_(counted("kv1")[0], ["x"], "its first call counted")
t.is_(counted("kv2")[0], ["xx"], "its second")
t.is_(acme.delete("/v1/queues/kvq").status, 200, "queue kvq goes")
os.unlink(counter)
line, mark = hup()
gone = [x for x in d.lines[mark:] if 'msg="shared policy removed"' in x]
t.ok(line and "reload ok" in line and len(gone) == 1 and 'policy="counter"' in gone[0] and
     " stores_dropped=1" in gone[0], "counter.lua removed: its store dropped in 1 account",
     "\n".join(gone))
counter_on("a new counter.lua, kvq on it")
t.is_(counted("kv3")[0], ["x"], "the new counter starts afresh")
t.is_(acme.delete("/v1/queues/kvq").status, 200, "queue kvq goes")
os.unlink(counter)
line, mark = hup()
t.ok(line and "reload ok" in line, "and counter.lua with it", line)

# An upload answers, and logs, the version it replaced.
r = acme.put("/v1/policies/mine", FIRST_POLICY, headers={"Content-Type": "text/x-lua"})
t.ok(r.status == 200 and "previous" not in r.json, "a first upload replaces nothing", r)
first = r.json["version"]
line = d.wait_log(r'msg="policy stored".*policy="mine"', timeout=5)
t.ok(line and "version=%s previous=none" % first in line, "the log says its version", line)
mark = len(d.lines)
r = acme.put("/v1/policies/mine", FIRST_POLICY + "-- v2\n", headers={"Content-Type": "text/x-lua"})
t.ok(r.status == 200 and r.json.get("previous") == first and r.json["version"] != first,
     "a second answers the version it replaced", r)
line = d.wait_log(r'msg="policy stored"', after=mark, timeout=5)
t.ok(line and "version=%s previous=%s" % (r.json["version"], first) in line,
     "... and the log says both", line)
r = acme.put("/v1/policies/mine", FIRST_POLICY, headers={"Content-Type": "text/x-lua"})
t.ok(r.status == 200 and r.json["version"] == first,
     "rolling back is uploading the earlier text again: its version comes back", r)

# Conditional uploads and deletes: a release tool reads the version (ETag),
# changes the policy and uploads with If-Match, never over an upload made since.
LUA = {"Content-Type": "text/x-lua"}
r = acme.get("/v1/policies/mine")
etag = r.headers.get("etag")
t.ok(r.status == 200 and etag == '"%s"' % first, "GET gives the version as its ETag", r.headers)
r = acme.put("/v1/policies/mine", FIRST_POLICY + "-- v3\n", headers=dict(LUA, **{"If-Match": etag}))
v3 = r.json.get("version") if r.status == 200 else None
t.ok(r.status == 200 and r.headers.get("etag") == '"%s"' % v3,
     "an upload with If-Match of the version there: stored, its ETag the new version", r)
r = acme.put("/v1/policies/mine", FIRST_POLICY + "-- v4\n", headers=dict(LUA, **{"If-Match": etag}))
t.ok(r.status == 412 and r.code == "SB_ESTATE" and r.field == "If-Match" and
     v3 in r.json["error"]["message"], "a second tool with the same, now stale, ETag: 412 naming the "
     "version there", r)
t.is_(acme.get("/v1/policies/mine").json.get("version"), v3, "... and the upload made since stands")
r = acme.put("/v1/policies/mine", FIRST_POLICY, headers=dict(LUA, **{"If-None-Match": "*"}))
t.ok(r.status == 412 and r.field == "If-None-Match", "If-None-Match: * over an upload: 412", r)
for bad in ('d784b7ecbfa91075', 'W/"%s"' % v3, '"%s", "%s"' % (v3, first)):
    r = acme.put("/v1/policies/mine", FIRST_POLICY, headers=dict(LUA, **{"If-Match": bad}))
    t.ok(r.status == 400 and r.field == "If-Match", "If-Match %s: 400" % bad, r)
r = acme.delete("/v1/policies/mine", headers={"If-Match": etag})
t.ok(r.status == 412 and r.field == "If-Match", "a delete with a stale ETag: 412", r)
r = acme.delete("/v1/policies/mine", headers={"If-Match": '"%s"' % v3})
t.ok(r.status == 200 and r.json.get("deleted") is True, "with the version there: deleted", r)
r = acme.put("/v1/policies/mine", FIRST_POLICY, headers=dict(LUA, **{"If-None-Match": "*"}))
t.ok(r.status == 200 and r.json["version"] == first, "If-None-Match: * with none: stored", r)
# A condition on a route without versions is refused, not ignored (an
# unconditional overwrite the client did not ask for).
before = acme.get("/v1/agents/alice").json
r = acme.put("/v1/agents/alice", {"name": "Changed", "devices": {"softphone": "sip:a@pbx.example"}},
             headers={"If-Match": '"0000000000000000"'})
t.ok(r.status == 400 and r.field == "If-Match" and "nothing changed" in r.json["error"]["message"],
     "If-Match on PUT /v1/agents/{id}: 400 naming it", r)
t.is_(acme.get("/v1/agents/alice").json.get("name"), before.get("name"), "... and alice unchanged")
r = acme.delete("/v1/agents/alice", headers={"If-None-Match": "*"})
t.ok(r.status == 400 and r.field == "If-None-Match", "If-None-Match on a DELETE: 400", r)
t.is_(acme.get("/v1/agents/alice", headers={"If-None-Match": '"x"'}).status, 200,
      "a read's conditions are ignored")

time.sleep(0.2)   # let the traffic run on the restored policy for a moment
stop.set()
for th in threads:
    th.join(30)
t.ok(counts[0] > 30, "traffic ran during the reloads (%d requests)" % counts[0])
t.is_(failures[:3], [], "no request failed")
r = d.admin("GET", "/metrics")
t.ok("switchboard_reloads_total 10" in r.body and "switchboard_reload_failures_total 1" in r.body,
     "/metrics counts 10 reloads and 1 failure")

# A start with a broken file: the stored policies decide, and the gauge says so
# (it was one log line, and every other figure read ok).
with open(shared, "w") as f:
    f.write("local P = {\n")
t.is_(d.stop(), 0, "the daemon stops")
d.start()
t.is_(d.metric("switchboard_policy_dir_loaded"), 0.0,
      "started with a broken file: switchboard_policy_dir_loaded is 0")
with open(shared, "w") as f:
    f.write(FIRST_POLICY)
t.is_(d.stop(), 0, "... and stops")
t.is_(d.stop(), 0, "exit 0")

# A SIGHUP that comes while the daemon is still starting (opening the engine,
# loading policies: `systemctl reload` right after start) neither kills it nor
# is lost: the reload runs once the daemon is up. The admin token file is a
# FIFO here, so the start-up waits, deterministically, until we write it.
fifo = os.path.join(d.tmp, "token.fifo")
os.mkfifo(fifo, 0o600)
ds = t.owned(Daemon(conf={"admin_token_file": fifo}))
ds.start(expect_listen=False)
w = None
end = time.monotonic() + 20
while w is None and time.monotonic() < end and ds.proc.poll() is None:
    try:   # succeeds once the daemon has the FIFO open for reading
        w = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        time.sleep(0.01)
t.ok(w is not None, "the starting daemon waits for its admin token")
ds.signal(signal.SIGHUP)
time.sleep(0.1)   # let the signal arrive while start-up is blocked
if w is not None:
    try:
        os.write(w, b"fifo-admin-token\n")
    except OSError:   # BrokenPipeError: the daemon is gone
        pass
    os.close(w)
line = ds.wait_log(r'msg="listening"', timeout=20)
t.ok(line is not None, "SIGHUP during start-up: the daemon still starts",
     "exit status %r\n%s" % (ds.proc.poll(), "\n".join(ds.lines)))
t.ok(ds.wait_log(r'msg="reload ok"', timeout=10), "... and reloads once it is up")
if line:
    import re
    m = re.search(r"addr=(\S+):(\d+)", line)
    ds.host, ds.port = m.group(1), int(m.group(2))
    t.is_(ds.request("GET", "/healthz").status, 200, "... and serves")
else:
    t.ok(False, "... and serves")
t.is_(ds.stop(), 0, "exit 0")

# -- SIGHUP does not re-read the configuration file: it says so ------------------
# An operator who edits the file (log_level = info, say) and sends SIGHUP is
# told which settings changed and that they take a restart, and a file that
# would not load is named with its error, instead of nothing at all.
import re
dc = t.owned(Daemon(conf={"log_level": "debug", "max_body": "1M"}))
dc.start()
mark = len(dc.lines)
dc.signal(signal.SIGHUP)
t.ok(dc.wait_log(r'msg="reload ok"', after=mark, timeout=10), "SIGHUP, the file unchanged: reload ok")
t.is_([l for l in dc.lines[mark:] if "configuration" in l], [],
      "... and nothing said of the configuration")
with open(dc.conf_path) as f:
    text = f.read()
with open(dc.conf_path, "w") as f:
    f.write(text.replace("log_level = debug", "log_level = info").replace("max_body = 1M", "max_body = 2M"))
mark = len(dc.lines)
dc.signal(signal.SIGHUP)
line = dc.wait_log(r'msg="configuration', after=mark, timeout=10) or ""
t.ok("level=warn" in line and "restart" in line and 'keys="max_body,log_level"' in line
     and dc.conf_path in line,
     "the file edited, SIGHUP: a warning naming the changed keys and the file, and that they "
     "take a restart", line)
t.ok(dc.wait_log(r'msg="reload ok"', after=mark, timeout=10), "... the policies reloaded as ever")
t.is_(dc.request("GET", "/healthz").status, 200, "... and the daemon serves")
with open(dc.conf_path, "a") as f:
    f.write("no_such_key = 1\n")
mark = len(dc.lines)
dc.signal(signal.SIGHUP)
line = dc.wait_log(r'msg="configuration', after=mark, timeout=10) or ""
t.ok("level=warn" in line and "unknown key 'no_such_key'" in line,
     "a file that would not load, SIGHUP: a warning with its error", line)
t.ok(not any(l.startswith("switchboard:") for l in dc.lines[mark:]),
     "... as a log line, not a bare message on stderr", dc.lines[mark:])
t.is_(dc.request("GET", "/healthz").status, 200, "... and the daemon serves on")
t.is_(dc.stop(), 0, "exit 0")
t.done()
