#!/usr/bin/env python3
# The daemon as its operator meets it: every config key documented in the
# man page and in examples/switchboard.conf, and accepted by the binary;
# settings that cannot work refused with file:line before anything is made;
# what the log says of the policy directory and of scheduled sweeps; the
# sweep counters; /metrics in valid Prometheus text, counters monotonic, refused
# events counted under their type and as errors, the map's limit beside its
# size, every family named in API.md's GET /metrics (and every name there
# shown), and every route label and help text as API.md describes them.
import sys, os, re, signal, socket, subprocess, json
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, Stream, binary, provision, ring_mover, ROOT

t = TAP(deadline=150)
scratch = t.owned(Daemon())
tmp = scratch.tmp


def run_quick(args, cwd=None):
    """`switchboard serve ARGS` expected to exit at once: (rc, stderr); a
    daemon that starts instead is stopped after a few seconds (rc None)."""
    try:
        p = subprocess.run([binary(), "serve"] + args, stdin=subprocess.DEVNULL, cwd=cwd or tmp,
                           capture_output=True, text=True, timeout=5)
        return p.returncode, p.stderr
    except subprocess.TimeoutExpired as e:
        return None, (e.stderr or b"").decode("utf-8", "replace")


# --- every key documented, and the documented defaults accepted ---------------
with open(os.path.join(ROOT, "examples", "switchboard.conf")) as f:
    conf_text = f.read()
conf_keys = {}
for line in conf_text.splitlines():
    m = re.match(r"^#? ?([a-z_]+) = (\S.*)$", line)
    if m:
        conf_keys[m.group(1)] = m.group(2)
with open(os.path.join(ROOT, "engine", "man", "switchboard.1")) as f:
    man = f.read()
section = man.split(".SH CONFIGURATION FILE", 1)[1].split(".SH ", 1)[0]
man_keys = set(re.findall(r"^\.T[PQ]\n\.BR? ([a-z_]+)(?: = | \"|$)", section, re.M))
t.ok(len(conf_keys) >= 25, "examples/switchboard.conf documents the keys (%d)" % len(conf_keys),
     sorted(conf_keys))
t.is_(sorted(set(conf_keys) - man_keys), [],
      "every key of examples/switchboard.conf is in switchboard(1)'s CONFIGURATION FILE")
t.is_(sorted(man_keys - set(conf_keys)), [],
      "... and switchboard(1) lists no key the example does not document")
unknown = []
for k, v in sorted(conf_keys.items()):
    if k in ("listen", "key_file", "admin_token_file", "policy_dir", "data_dir"):
        continue  # paths and addresses: the example's own values are placeholders
    path = os.path.join(tmp, "one.conf")
    with open(path, "w") as f:
        # The documented value, then a listen that cannot work: a known key
        # with a good value gets as far as the listen check.
        f.write("%s = %s\nlisten = 127.0.0.1:99999\n" % (k, v))
    rc, err = run_quick(["--config", path])
    if "one.conf:2: listen:" not in err:
        unknown.append((k, v, err.strip()))
t.is_(unknown, [], "the binary takes every documented key at its documented default")

# --- settings that cannot work: file:line, and nothing made ---------------------
bad = os.path.join(tmp, "bad.conf")
for body, want in (
        ("map_size = 65G\n", "bad.conf:2: map_size (65G) is above the largest map"),
        ("policy_dir = %s\n" % os.path.join(tmp, "no-such-dir"),
         "bad.conf:2: policy_dir: '%s': " % os.path.join(tmp, "no-such-dir")),
        ("policy_dir = %s\n" % bad, "bad.conf:2: policy_dir: '%s': not a directory" % bad)):
    data = os.path.join(tmp, "never-made")
    with open(bad, "w") as f:
        f.write("data_dir = %s\n%s" % (data, body))
    rc, err = run_quick(["--config", bad, "--listen", "127.0.0.1:0"])
    t.ok(rc == 1 and want in err, "%s: exit 1, %s" % (body.strip(), want), err)
    t.ok(not os.path.exists(data), "... and no data directory or admin token was made")
rc, err = run_quick(["--policy-dir", os.path.join(tmp, "gone"), "--listen", "127.0.0.1:0",
                     "--data-dir", os.path.join(tmp, "never-made")])
t.ok(rc == 2 and "--policy-dir: '%s': " % os.path.join(tmp, "gone") in err,
     "--policy-dir naming nothing: exit 2, naming the flag", err)

# --- the default ./policies absent: the log says none is in use -----------------
cwd = os.path.join(tmp, "no-policies-here")
os.makedirs(cwd)
dn = t.owned(Daemon(conf={"policy_dir": "./policies"}, cwd=cwd)).start()
listening = dn.wait_log(r'msg="listening"') or ""
t.ok("policy_dir=none" in listening,
     "no ./policies: the listening line says no policy directory is in use", listening)
mark = len(dn.lines)
dn.signal(signal.SIGHUP)
line = dn.wait_log(r'msg="reload failed', after=mark, timeout=10) or ""
t.ok("policy_dir=none" in line and "restart" in line,
     "... and SIGHUP says why nothing can be reloaded and what to do", line)
t.is_(dn.stop(), 0, "... exit 0")

# --- the scheduled sweep: what it logs and counts --------------------------------
# 2,500 records due for review, made by `switchboard replay` on the data
# directory before the daemon starts: the sweep needs several turns of the
# loop (1,000 records or 1 ms each).
sdir = os.path.join(tmp, "sweep")
os.makedirs(sdir)
with open(os.path.join(sdir, "ret.lua"), "w") as f:
    f.write("local P = {}\n"
            "function P.retain(record, ctx)\n"
            "  if ctx.now - record.ended >= 1 then return { delete = true, reason = \"old\" } end\n"
            "  return { review_in_days = 0.00001 }\n"
            "end\n"
            "return P\n")
CALLS = 2500
lines = [{"account": {"id": "acme"}},
         {"policy": "ret", "file": "ret.lua", "account": "acme"},
         {"account": {"id": "acme", "retention": "ret"}},
         {"queue": {"id": "support", "policy": "longest-idle", "members": []}}]
for i in range(CALLS):
    lines.append({"type": "offer", "call": "c%d" % i, "queue": "support",
                  "caller": "+442079460001"})
    lines.append({"type": "abandon", "call": "c%d" % i})
with open(os.path.join(sdir, "calls.jsonl"), "w") as f:
    f.write("\n".join(json.dumps(x) for x in lines) + "\n")
sdata = os.path.join(sdir, "data")
p = subprocess.run([binary(), "replay", "calls.jsonl", "--data-dir", sdata, "--policy-dir",
                    os.path.join(ROOT, "policies")], cwd=sdir, capture_output=True, text=True,
                   timeout=60)
t.is_(p.returncode, 0, "replay made %d records" % CALLS, p.stderr[-2000:])
ds = t.owned(Daemon(data_dir=sdata, policy_dir=os.path.join(ROOT, "policies"),
                    conf={"sweep_interval": 3600, "sync": "none", "log_level": "info"})).start()
done = ds.wait_log(r'msg="sweep done"', timeout=30) or ""
t.ok("reviewed=%d deleted=%d" % (CALLS, CALLS) in done,
     "the first sweep logs its totals for the whole sweep", done)
t.ok(re.search(r" kept=0 .*failed=0", done), "... with what it kept and what failed", done)
t.ok(re.search(r" next_in=3600s", done), "... and when the next one is due", done)
t.is_(ds.metric("switchboard_swept_records_total"), float(CALLS),
      "switchboard_swept_records_total counts each record once")
t.is_(len([l for l in ds.lines if 'msg="sweep done"' in l]), 1, "one line for the sweep")
started = [l for l in ds.lines if 'msg="listening"' in l]
t.ok(started and "sweep_interval=3600" in started[0],
     "the listening line says how often the daemon sweeps", started)

# A sweep whose retention hook fails for some records is a warning: the
# records stay as they were, and the operator has to look.
fdir = os.path.join(tmp, "sweep-fail")
os.makedirs(fdir)
with open(os.path.join(fdir, "ret.lua"), "w") as f:
    f.write("local P = {}\n"
            "function P.retain(record, ctx)\n"
            "  if ctx.now - record.ended >= 1 then error(\"cannot decide\") end\n"
            "  return { review_in_days = 0.00001 }\n"
            "end\n"
            "return P\n")
with open(os.path.join(fdir, "calls.jsonl"), "w") as f:
    f.write("\n".join(json.dumps(x) for x in lines[:4 + 2 * 5]) + "\n")
fdata = os.path.join(fdir, "data")
p = subprocess.run([binary(), "replay", "calls.jsonl", "--data-dir", fdata, "--policy-dir",
                    os.path.join(ROOT, "policies")], cwd=fdir, capture_output=True, text=True,
                   timeout=60)
t.is_(p.returncode, 0, "replay made 5 records", p.stderr[-2000:])
dw = t.owned(Daemon(data_dir=fdata, policy_dir=os.path.join(ROOT, "policies"),
                    conf={"sync": "none", "log_level": "info"})).start()
line = dw.wait_log(r'msg="sweep done"', timeout=30) or ""
t.ok("level=warn " in line and "failed=5 " in line,
     "a sweep whose retention hook failed logs sweep done at warn, with failed=5", dw.lines)
t.is_(dw.stop(), 0, "exit 0")

# --- SIGINT with a request still arriving -----------------------------------------
# The daemon waits for it until shutdown_timeout, then closes and exits 0; a
# second signal closes at once. Both say so in the log, naming the signal.
for sig2, conf in ((None, {"shutdown_timeout": 1}), (signal.SIGTERM, {"shutdown_timeout": 600})):
    dd = t.owned(Daemon(conf=conf)).start()
    sk = socket.create_connection((dd.host, dd.port), timeout=10)
    sk.sendall(b"POST /v1/calls HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{")
    dd.wait_log(r'msg="connection accepted"', timeout=10)
    dd.signal(signal.SIGINT)
    first = dd.wait_log(r'msg="shutting down', timeout=10) or ""
    t.ok("signal=INT connections=1" in first, "SIGINT with a request half-received: logged, "
         "naming the signal and the open connection", first)
    if sig2:
        dd.signal(sig2)
        line = dd.wait_log(r'msg="second signal', timeout=10) or ""
        t.ok("signal=TERM connections=1" in line,
             "... a second signal closes at once, named as the first was", line)
    else:
        line = dd.wait_log(r'msg="shutdown timeout', timeout=10) or ""
        t.ok("connections=1 streams_not_reading=0 unsent_bytes=0 shutdown_timeout=1" in line,
             "... shutdown_timeout closes it, and says so", line)
    t.is_(dd.wait(20), 0, "... exit 0")
    sk.close()

# --- SIGTERM with a stream that stopped reading ------------------------------------
# Its events wait on its connection until shutdown_timeout: the warning says it
# was a stream not reading (not a request that hung), and how much it left.
dd = t.owned(Daemon(conf={"shutdown_timeout": 1, "stream_buffer": 4096,
                          "stream_keepalive": 0})).start()
ac, move = ring_mover(dd, "acme")
st = Stream(dd, ac.auth, rcvbuf=1024)
move(5)  # each round a cancel and a ring per agent: more than the kernel's buffers
dd.signal(signal.SIGTERM)
line = dd.wait_log(r'msg="shutdown timeout', timeout=10) or ""
t.ok(re.search(r"connections=1 streams_not_reading=1 unsent_bytes=[1-9]", line),
     "SIGTERM with a stream that reads nothing: shutdown_timeout closes it, naming it a stream "
     "and its unsent bytes", line)
t.is_(dd.wait(20), 0, "... exit 0")
st.close()

# --- a signal the daemon does not take: logged and ignored -------------------------
# SIGUSR1 and SIGUSR2 end a process by default; sent by mistake (other daemons
# reopen their logs on them) they must not take the service down.
du = t.owned(Daemon(conf={"log_level": "info"})).start()
for sig, name in ((signal.SIGUSR1, "USR1"), (signal.SIGUSR2, "USR2")):
    mark = len(du.lines)
    du.signal(sig)
    line = du.wait_log(r'msg="signal ignored"', after=mark, timeout=10) or ""
    t.ok("level=warn " in line and "signal=%s " % name in line and "SIGHUP" in line,
         "SIG%s: logged at warn as ignored, naming the signals that do something" % name,
         du.lines[mark:])
    try:
        st = du.request("GET", "/healthz").status
    except OSError as e:
        st = "%s (exit %s)" % (e, du.proc.poll())
    t.is_(st, 200, "... and the daemon goes on serving")
t.is_(du.stop(), 0, "... and stops on SIGTERM, exit 0")

# --- /metrics: valid Prometheus text, counters that only go up -----------------
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABELS = r'%s="(?:\\.|[^"\\\n])*"' % NAME


def parse(text):
    """([problems], {sample: value}, {family: type}) of a Prometheus text."""
    probs, samples, types, helps, fam = [], {}, {}, set(), None
    for ln in text.split("\n"):
        if not ln:
            continue
        m = re.match(r"^# (HELP|TYPE) (%s) (.+)$" % NAME, ln)
        if m:
            kind, name, rest = m.groups()
            if kind == "HELP":
                if name in helps:
                    probs.append("HELP twice: " + name)
                helps.add(name)
                if rest.startswith("From sb_stats"):
                    probs.append("HELP says nothing: " + ln)
            else:
                if name in types:
                    probs.append("TYPE twice: " + name)
                if name not in helps:
                    probs.append("TYPE before HELP: " + name)
                types[name] = rest
                fam = name
                if rest == "counter" and not name.endswith("_total"):
                    probs.append("counter without _total: " + name)
            continue
        if ln.startswith("#"):
            continue
        m = re.match(r"^(%s)(\{(%s(?:,%s)*)?\})? (\S+)$" % (NAME, LABELS, LABELS), ln)
        if not m:
            probs.append("bad sample line: %r" % ln)
            continue
        name = m.group(1)
        base = fam if fam and types.get(fam) == "histogram" and name in (
            fam + "_bucket", fam + "_sum", fam + "_count") else name
        if base != fam:
            probs.append("sample outside its family: %s (in %s)" % (name, fam))
        key = ln.rsplit(" ", 1)[0]
        if key in samples:
            probs.append("sample twice: " + key)
        try:
            samples[key] = float(m.group(4))
        except ValueError:
            probs.append("bad value: %r" % ln)
        if types.get(fam) == "counter" and samples.get(key, 0) < 0:
            probs.append("counter below 0: %r" % ln)
    # A histogram: buckets by le ascending, ending in +Inf, cumulative, +Inf
    # equal to _count, and _sum there.
    for fam_, ty in types.items():
        if ty != "histogram":
            continue
        les = [(k, v) for k, v in samples.items() if k.startswith(fam_ + "_bucket{")]
        bounds = [re.search(r'le="([^"]*)"', k).group(1) for k, _ in les]
        try:
            nums = [float(b) for b in bounds]
        except ValueError:
            probs.append("%s: an le that is no number: %s" % (fam_, bounds))
            continue
        if not les or bounds[-1] != "+Inf" or nums != sorted(nums) or len(set(nums)) != len(nums):
            probs.append("%s: buckets not ascending to +Inf: %s" % (fam_, bounds))
        counts = [v for _, v in les]
        if counts != sorted(counts):
            probs.append("%s: buckets not cumulative: %s" % (fam_, counts))
        if les and samples.get(fam_ + "_count") != counts[-1]:
            probs.append("%s: +Inf %s, _count %s" % (fam_, counts[-1], samples.get(fam_ + "_count")))
        if fam_ + "_sum" not in samples:
            probs.append("%s: no _sum" % fam_)
    return probs, samples, types


r1 = ds.admin("GET", "/metrics")
t.ok(r1.headers.get("content-type", "").startswith("text/plain"), "/metrics is text/plain",
     r1.headers)
probs, s1, types = parse(r1.body)
t.is_(probs, [], "/metrics is valid Prometheus text: HELP and TYPE once per family, "
      "before its samples")
for name in ("switchboard_lmdb_map_size_bytes", "switchboard_lmdb_used_bytes",
             "switchboard_lmdb_high_water_bytes", "switchboard_lmdb_readers", "switchboard_lmdb_max_readers",
             "switchboard_lmdb_map_max_bytes"):
    t.ok(s1.get(name, 0) > 0 and types.get(name) == "gauge", "%s is a gauge (%s)" %
         (name, s1.get(name)))
t.is_(s1.get("switchboard_lmdb_map_max_bytes"), float(64 << 30),
      "switchboard_lmdb_map_max_bytes is the map's limit: 64G with map_max 0")
with open(os.path.join(ROOT, "engine", "daemon", "API.md")) as f:
    api_md = f.read()
helps = dict(re.findall(r"^# HELP (\S+) (.*)$", r1.body, re.M))
old = helps.get("switchboard_lmdb_map_size", "")
t.ok(s1.get("switchboard_lmdb_map_size") == s1.get("switchboard_lmdb_map_size_bytes")
     and types.get("switchboard_lmdb_map_size") == "gauge" and old.startswith("Deprecated")
     and "switchboard_lmdb_map_size_bytes" in old
     and "`switchboard_lmdb_map_size` (deprecated" in api_md,
     "switchboard_lmdb_map_size, the name before _bytes, stays a release: the same value, "
     "its HELP and API.md saying it is deprecated", (s1.get("switchboard_lmdb_map_size"), old))
dec_help = helps.get("switchboard_decisions_total", "")
t.ok("policies" in dec_help and "max wait" in dec_help and "fallback" in dec_help
     and "not counted in `switchboard_decisions_total`" in api_md,
     "switchboard_decisions_total's help says it counts policy decisions, not the engine's "
     "overflows, as API.md does", dec_help)
t.ok("tick" in helps.get("switchboard_events_total", "")
     and 'switchboard_events_total{type="tick"}' in api_md,
     "switchboard_events_total's tick type is in its help and API.md")
drop_help = helps.get("switchboard_stream_dropped_total", "")
t.ok("slow consumer" in drop_help and "stalled" in drop_help
     and "both count in `switchboard_stream_dropped_total`" in api_md,
     "switchboard_stream_dropped_total's help names both drops, as API.md does", drop_help)
types_seen = sorted(re.findall(r'^switchboard_events_total\{type="([^"]*)"\}', r1.body, re.M))
t.is_(types_seen, sorted(["offer", "ring_result", "hangup", "abandon", "transfer",
                          "agent_status", "tick"]),
      "switchboard_events_total's type label holds event types only (no \"errors\")")
t.ok("switchboard_event_errors_total" in s1 and types.get("switchboard_event_errors_total")
     == "counter", "failed events are their own counter, switchboard_event_errors_total")
# Each family /metrics shows is named in API.md's GET /metrics, and each name
# there is one /metrics shows: `switchboard_{a,b}_total` names two, labels in
# braces at the end (`{type}`, `{route,method,code}`) none; `switchboard_lmdb_*`
# is followed by its names.
sec = api_md.split("### `GET /metrics` (admin)", 1)[1].split("\n## ", 1)[0]
documented = set()
for tok in re.findall(r"`(switchboard_[a-z_]*(?:\{[a-z_,]+\}[a-z_]*)?)`", sec):
    m = re.match(r"^(switchboard_[a-z_]*)\{([a-z_]+(?:,[a-z_]+)+)\}([a-z_]+)$", tok)
    if m:
        documented |= {m.group(1) + x + m.group(3) for x in m.group(2).split(",")}
    else:
        documented.add(re.sub(r"\{.*$", "", tok))
lmdb = sec.split("`switchboard_lmdb_*`:", 1)[1].split("and the\ndaemon's own", 1)[0]
documented |= {"switchboard_lmdb_" + x for x in re.findall(r"`([a-z_]+)`", lmdb)
               if not x.startswith("switchboard_")}
t.is_(sorted(set(types) - documented), [],
      "API.md's GET /metrics names every family /metrics shows")
t.is_(sorted(documented - set(types)), [],
      "... and /metrics shows every name API.md's GET /metrics gives")
ds.request("GET", "/healthz")
ds.request("GET", "/nowhere")
ds.request("GET", "/v1/agents")
r2 = ds.admin("GET", "/metrics")
probs, s2, _ = parse(r2.body)
down = [(k, s1[k], s2.get(k)) for k in s1
        if types.get(re.sub(r"(_bucket|_sum|_count)?(\{.*)?$", "", k)) in ("counter", "histogram")
        and (s2.get(k) is None or s2[k] < s1[k])]
t.is_(down, [], "no counter went down or vanished between two scrapes")
t.ok(s2.get('switchboard_http_requests_total{route="unmatched",method="GET",code="404"}') == 1,
     "... and the requests between them are counted")
t.is_(ds.stop(), 0, "exit 0")

# --- refused events count: under their type, and as errors ------------------------
# switchboard_events_total counts every event by its type, failed ones too: one
# refused for its JSON (a caller not E.164, an unknown field, a bad outcome) as
# one the engine refuses later (an unknown queue). A body the daemon refuses
# itself before the library reads it (malformed JSON) is no event.
dm = t.owned(Daemon()).start()
acme = provision(dm)
EVTYPES = ("offer", "ring_result", "hangup", "abandon", "transfer", "agent_status", "tick")


def event_counts():
    body = dm.admin("GET", "/metrics").body
    got = {ty: float((re.search(r'^switchboard_events_total\{type="%s"\} (\S+)$' % ty, body, re.M)
                      or [0, "nan"])[1]) for ty in EVTYPES}
    m = re.search(r"^switchboard_event_errors_total (\S+)$", body, re.M)
    got["errors"] = float(m.group(1)) if m else float("nan")
    return got


was = event_counts()
for path, body, status in [
        ("/v1/calls", {"call": "m1", "queue": "support", "caller": "12345"}, 400),
        ("/v1/calls", {"call": "m1", "queue": "support", "caller": "+4930100001", "shoe_size": 9},
         400),
        ("/v1/calls", {"call": "m1", "queue": "nope", "caller": "+4930100001"}, 404),
        ("/v1/calls/m1/ring_result", {"agent": "alice", "outcome": "maybe"}, 400),
        ("/v1/calls/m1/hangup", {"agent": "alice"}, 400),
        ("/v1/calls/m1/transfer", {"queue": "support", "agent": "bob"}, 400),
        ("/v1/agents/alice/status", {"status": "on_call"}, 400),
        ("/v1/calls", '{"call": "m1",', 400)]:
    r = acme.post(path, body)
    t.is_(r.status, status, "%s %s: %d" % (path, json.dumps(body)[:60], status), r)
now = event_counts()
t.is_({k: now[k] - was[k] for k in now},
      {"offer": 3, "ring_result": 1, "hangup": 1, "abandon": 0, "transfer": 1,
       "agent_status": 1, "tick": 0, "errors": 7},
      "each refused event counts under its type and in switchboard_event_errors_total; "
      "the malformed body in neither")

# Every route label /metrics shows is a pattern API.md names, the policy
# routes' {name...} (a name with its folders) too.
r = acme.put("/v1/policies/team/vip", "local P = {}\nfunction P.route(c, a, x) return "
             "{ wait = 5 } end\nreturn P\n", headers={"Content-Type": "text/x-lua"})
t.is_(r.status, 200, "a policy in a folder, team/vip, stored", r)
acme.get("/v1/policies/team/vip")
body = dm.admin("GET", "/metrics").body
routes = sorted(set(re.findall(r'^switchboard_http_requests_total\{route="([^"]*)"', body, re.M)))
t.ok("/v1/policies/{name...}" in routes, "the policy routes count as /v1/policies/{name...}",
     routes)
t.is_([x for x in routes if not re.search(re.escape(x) + r"(?![\w/{.])", api_md)], [],
      "API.md names every route label /metrics shows")

# Counters only go up, and each moves when its event happens: through a
# policy failing until it is quarantined, a stream opened and closed, a
# SIGHUP that lifts the quarantine, a policy deleted and the account
# deleted with its live calls. Each scrape is valid, histograms whole.
def scrape(what, last):
    probs, now, ty = parse(dm.admin("GET", "/metrics").body)
    t.is_(probs, [], "%s: /metrics is valid Prometheus text, its histograms whole" % what)
    if last is not None:
        down = [(k, v, now.get(k)) for k, v in last.items()
                if ty.get(re.sub(r"(_bucket|_sum|_count)?(\{.*)?$", "", k)) in ("counter", "histogram")
                and (now.get(k) is None or now[k] < v)]
        t.is_(down, [], "%s: no counter went down or vanished" % what)
    return now


def moved(a, b, name):
    return b.get(name, 0) - a.get(name, 0)


m0 = scrape("before", None)
BOOM = "local P = {}\nfunction P.route(c, a, x) error('boom') end\nreturn P\n"
r = acme.put("/v1/policies/boom", BOOM, headers={"Content-Type": "text/x-lua"})
r2 = acme.put("/v1/queues/qb", {"policy": "boom", "members": [{"agent": "alice"}]})
t.ok(r.status == 200 and r2.status == 200, "a failing policy on queue qb", [r, r2])
for i in range(6):
    acme.post("/v1/calls", {"call": "qb%d" % i, "queue": "qb", "caller": "+4930100001"})
m1 = scrape("quarantine", m0)
t.is_((moved(m0, m1, "switchboard_policy_failures_total"),
       m1.get("switchboard_policy_quarantined"),
       moved(m0, m1, 'switchboard_decisions_total{decision="fallback"}'),
       moved(m0, m1, 'switchboard_events_total{type="offer"}')), (5.0, 1.0, 6.0, 6.0),
      "five failures counted, the policy quarantined, six fallback decisions, six offers")
st = Stream(dm, acme.auth)
m2 = scrape("stream open", m1)
st.close()
t.ok(m2.get("switchboard_stream_subscribers") == 1.0, "a stream open: subscribers 1")
mark = len(dm.lines)
dm.signal(signal.SIGHUP)
t.ok(dm.wait_log(r'msg="reload ok"', after=mark), "SIGHUP: reload ok")
m3 = scrape("reload", m2)
t.is_((moved(m2, m3, "switchboard_reloads_total"), m3.get("switchboard_policy_quarantined"),
       m3.get("switchboard_stream_subscribers")), (1.0, 0.0, 0.0),
      "reload counted, the quarantine lifted, the stream gone")
t.is_(moved(m2, m3, "switchboard_policy_reloads_total"), 1.0,
      "... and the engine's switchboard_policy_reloads_total with it")
# A reload that fails counts as a failure alone: the help texts say which
# reloads each counter counts, as API.md does.
with open(os.path.join(dm.policy_dir, "broken.lua"), "w") as f:
    f.write("return {\n")
mark = len(dm.lines)
dm.signal(signal.SIGHUP)
t.ok(dm.wait_log(r'msg="reload failed', after=mark), "SIGHUP with a broken policy: reload failed")
m3f = scrape("failed reload", m3)
t.is_((moved(m3, m3f, "switchboard_reload_failures_total"),
       moved(m3, m3f, "switchboard_reloads_total"),
       moved(m3, m3f, "switchboard_policy_reloads_total")), (1.0, 0.0, 0.0),
      "a failed reload counts in switchboard_reload_failures_total only")
helps = dict(re.findall(r"^# HELP (\S+) (.*)$", dm.admin("GET", "/metrics").body, re.M))
t.ok("succeeded" in helps.get("switchboard_policy_reloads_total", "")
     and "succeeded" in helps.get("switchboard_reloads_total", "")
     and "failed" in helps.get("switchboard_reload_failures_total", ""),
     "... and each reload counter's help says whether it counts those that succeeded or "
     "those that failed", {k: v for k, v in helps.items() if "reload" in k})
t.ok(re.search(r"`switchboard_reloads_total` \(SIGHUPs whose reload of `policy_dir` succeeded",
               api_md) and "`switchboard_reload_failures_total` (those that failed" in api_md,
     "API.md says the same of switchboard_reloads_total and switchboard_reload_failures_total")
os.remove(os.path.join(dm.policy_dir, "broken.lua"))
mark = len(dm.lines)
dm.signal(signal.SIGHUP)
t.ok(dm.wait_log(r'msg="reload ok"', after=mark), "the broken file removed: reload ok")
m3 = scrape("reload again", m3f)
r = acme.put("/v1/policies/spare", BOOM, headers={"Content-Type": "text/x-lua"})
r2 = acme.delete("/v1/policies/spare")
r3 = acme.get("/v1/policies/spare")
t.ok((r.status, r2.status, r3.status) == (200, 200, 404), "a policy uploaded and deleted",
     [r, r2, r3])
m4 = scrape("policy deleted", m3)
t.is_(moved(m3, m4, 'switchboard_http_requests_total{route="/v1/policies/{name...}",'
                    'method="GET",code="404"}'), 1.0, "the 404 counted under its route")
# Every status the daemon answers has its own code label: a PUT whose If-Match
# does not hold is 412, which was counted as code="other".
r = acme.put("/v1/policies/spare", BOOM,
             headers={"Content-Type": "text/x-lua", "If-Match": '"0123456789abcdef"'})
t.is_(r.status, 412, "an upload whose If-Match does not hold: 412", r)
m4b = scrape("precondition failed", m4)
t.is_((moved(m4, m4b, 'switchboard_http_requests_total{route="/v1/policies/{name...}",'
                      'method="PUT",code="412"}'),
       [k for k in m4b if k.startswith("switchboard_http_requests_total{") and 'code="other"' in k]),
      (1.0, []), "the 412 counted as code=\"412\", not as \"other\"")
m4 = m4b
mark = len(dm.lines)
r = dm.admin("DELETE", "/v1/accounts/acme?live_calls=end")
t.is_(r.status, 200, "the account deleted with its live calls", r)
ended = len([x for x in (r.json or {}).get("actions", []) if x.get("type") == "end"])
line = dm.wait_log(r'msg="account deleted"', after=mark) or ""
t.ok(ended > 0 and 'account="acme" live_calls_ended=%d' % ended in line,
     "the log's account deleted line says how many live calls it ended (%d)" % ended, line)
scrape("account deleted", m4)
t.is_(dm.stop(), 0, "exit 0")
dmx = t.owned(Daemon(conf={"map_max": "1G"})).start()
t.is_(dmx.metric("switchboard_lmdb_map_max_bytes"), float(1 << 30),
      "map_max = 1G: switchboard_lmdb_map_max_bytes is 1073741824")
t.is_(dmx.stop(), 0, "exit 0")

# --- the admin token file: as the master key, its owner's alone ------------------
def token_case(name, content=None, mode=0o600, directory=False):
    path = os.path.join(tmp, name)
    if directory:
        os.mkdir(path, 0o700)
    else:
        with open(path, "w") as f:
            f.write(content)
        os.chmod(path, mode)
    conf = os.path.join(tmp, name + ".conf")
    with open(conf, "w") as f:
        f.write("listen = 127.0.0.1:0\nadmin_token_file = %s\ndata_dir = %s\n"
                % (path, os.path.join(tmp, name + "-data")))
    return run_quick(["--config", conf])


rc, err = token_case("open.token", "a-long-enough-admin-token-1234\n", 0o644)
t.ok(rc == 1 and "group or others may read or write it" in err,
     "an admin token file others can read is refused", (rc, err))
rc, err = token_case("short.token", "abc\n")
t.ok(rc == 1 and "too short" in err, "a token under 16 characters is refused", (rc, err))
# A start that fails after the data directory is locked leaves no lock file it
# made; the directory stays, and a lock file from an earlier start stays too.
sdata = os.path.join(tmp, "short.token-data")
t.ok(os.path.isdir(sdata) and not os.path.exists(os.path.join(sdata, "serve.lock")),
     "... and the data directory it made holds no serve.lock", os.listdir(sdata)
     if os.path.isdir(sdata) else "no directory")
with open(os.path.join(sdata, "serve.lock"), "w") as f:
    f.write("12345\n")
rc, err = token_case("short.token", "abc\n")
t.ok(rc == 1 and os.path.exists(os.path.join(sdata, "serve.lock")),
     "... while a serve.lock it did not make stays", (rc, err))
rc, err = token_case("dir.token", directory=True)
t.ok(rc == 1 and "not a regular file" in err, "a directory as the token file is refused",
     (rc, err))

# --- "all interfaces" means IPv4 and IPv6 ----------------------------------------
def healthz(family, host, port):
    try:
        with socket.socket(family, socket.SOCK_STREAM) as so:
            so.settimeout(5)
            so.connect((host, port))
            so.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = so.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.split(b"\r\n", 1)[0].decode()
    except OSError as e:
        return "error: %s" % e


da = t.owned(Daemon(conf={"listen": ":0"}))
da.start()
t.ok(da.port, "listen = :0 starts (addr=%s:%s)" % (da.host, da.port))
t.is_(healthz(socket.AF_INET, "127.0.0.1", da.port), "HTTP/1.1 200 OK",
      "all interfaces: answered over IPv4")
if socket.has_ipv6 and os.path.exists("/proc/net/if_inet6"):
    t.is_(healthz(socket.AF_INET6, "::1", da.port), "HTTP/1.1 200 OK",
          "all interfaces: answered over IPv6")
else:
    t.ok(True, "# SKIP no IPv6 on this machine")
t.is_(da.stop(), 0, "exit 0")

# --- under systemd, each line carries its level for the journal ------------------
def first_lines(env_extra):
    """Start the daemon with stderr on a pipe whose device:inode JOURNAL_STREAM
    may name; its first lines, up to the listening line."""
    r, w = os.pipe()
    st = os.fstat(w)
    env = dict(os.environ)
    env.pop("JOURNAL_STREAM", None)
    env.update({k: (v % (st.st_dev, st.st_ino) if "%" in v else v) for k, v in env_extra.items()})
    data = os.path.join(tmp, "journal-data-%d" % len(os.listdir(tmp)))
    p = subprocess.Popen([binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir", data,
                          "--log-level", "debug"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=w, cwd=tmp,
                         env=env)
    os.close(w)
    lines = []
    with os.fdopen(r, "r", errors="replace") as f:
        for line in f:
            lines.append(line.rstrip("\n"))
            if 'msg="listening"' in line:
                break
        p.send_signal(signal.SIGTERM)
        rest = f.read()
    p.wait(timeout=20)
    return lines + rest.splitlines()


js = first_lines({"JOURNAL_STREAM": "%d:%d"})
listening = [l for l in js if 'msg="listening"' in l]
t.ok(listening and listening[0].startswith("<6>"),
     "JOURNAL_STREAM naming stderr: an info line starts <6>", listening)
t.ok(all(re.match(r"<[3467]>\d{4}-", l) for l in js if l),
     "... and every line starts with its syslog priority", js[:3])
debug = [l for l in js if "level=debug" in l]
t.ok(not debug or all(l.startswith("<7>") for l in debug), "debug lines start <7>", debug[:1])
plain = first_lines({})
t.ok(plain and all(re.match(r"\d{4}-", l) for l in plain if l),
     "without JOURNAL_STREAM, lines start with their time stamp", plain[:1])
other = first_lines({"JOURNAL_STREAM": "1:1"})
t.ok(other and all(re.match(r"\d{4}-", l) for l in other if l),
     "with JOURNAL_STREAM naming another stream (stderr redirected), no prefix", other[:1])

# A start that fails says why in a sentence, with the error priority under the journal
# (journalctl -p warning shows it beside the log's errors).
r, w = os.pipe()
st = os.fstat(w)
env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
p = subprocess.Popen([binary(), "serve", "--config", os.path.join(tmp, "no-such.conf")],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=w, cwd=tmp, env=env)
os.close(w)
with os.fdopen(r, "r", errors="replace") as f:
    err = f.read()
t.ok(p.wait(timeout=20) != 0 and err.startswith("<3>switchboard: cannot read config file"),
     "a start that fails: its reason has the error priority under the journal", err)
t.done()
