#!/usr/bin/env python3
# Configuration and start-up: unknown keys, keys given twice and bad or
# out-of-range values are errors with file:line (flags: naming the flag),
# flags override the file, the admin token file is created 0600,
# and a second `serve` on a data directory in use fails clearly with exit 1.
import sys, os, re, socket, stat, subprocess
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, binary

t = TAP()


def run(args, timeout=20):
    p = subprocess.run([binary(), "serve"] + args, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


d = t.owned(Daemon())
tmp = d.tmp

bad = os.path.join(tmp, "bad.conf")
with open(bad, "w") as f:
    f.write("# a comment\nlisten = 127.0.0.1:0\n\nbogus_key = 1\n")
rc, out, err = run(["--config", bad])
t.is_(rc, 1, "an unknown key: exit 1")
t.ok("bad.conf:4" in err and "bogus_key" in err, "... naming file:line and the key", err)
with open(bad, "w") as f:
    f.write("listen = 127.0.0.1:0\npolicy_instrucions = 5\n")
rc, out, err = run(["--config", bad])
t.ok(rc == 1 and "bad.conf:2: unknown key 'policy_instrucions' (did you mean "
     "'policy_instructions'?)" in err, "a misspelt key: the one it is close to", err)

with open(bad, "w") as f:
    f.write("listen = 127.0.0.1:0\nsync = sometimes\n")
rc, out, err = run(["--config", bad])
t.ok(rc == 1 and "bad.conf:2" in err and "sync" in err, "a bad value: exit 1 with file:line", err)
with open(bad, "w") as f:
    f.write("max_body = lots\n")
rc, out, err = run(["--config", bad])
t.ok(rc == 1 and "bad.conf:1" in err, "a bad size: exit 1 with file:line", err)
with open(bad, "w") as f:
    f.write("just some words\n")
rc, out, err = run(["--config", bad])
t.ok(rc == 1 and "bad.conf:1" in err, "a line that is not key = value: exit 1", err)
for v in ("0", "86401"):
    with open(bad, "w") as f:
        f.write("listen = 127.0.0.1:0\nrequest_timeout = %s\n" % v)
    rc, out, err = run(["--config", bad])
    t.ok(rc == 1 and "bad.conf:2: request_timeout must be 1 to 86400 seconds" in err,
         "request_timeout = %s: exit 1, with file:line and the range" % v, err)

# Every number is checked against its range, the error naming file:line;
# 0 is refused where it would mean nothing useful.
for line, want in (("max_body = 0", "max_body must be 1K to 1G"),
                   ("max_body = 2G", "max_body must be 1K to 1G"),
                   ("max_header = 100", "max_header must be 256 bytes to 1M"),
                   ("max_page = 1K", "max_page must be 4K to 1G"),
                   ("max_page = 2G", "max_page must be 4K to 1G"),
                   ("max_connections = 0", "max_connections must be at least 1"),
                   ("idle_timeout = 0", "idle_timeout must be at least 1 second"),
                   ("shutdown_timeout = 0", "shutdown_timeout must be at least 1 second"),
                   ("stream_buffer = 0", "stream_buffer must be at least 4K"),
                   ("map_size = 1K", "map_size must be 0 (the engine's default) or at least 64K"),
                   ("map_max = 32M", "map_max (32M) is below the initial map size 64M"),
                   ("listen = 127.0.0.1:99999", "listen: '127.0.0.1:99999': the port must be 0 to 65535"),
                   ("listen = 127.0.0.1:http", "listen: '127.0.0.1:http': expected host:port")):
    with open(bad, "w") as f:
        f.write("# line 1\n%s\nsync = none\n" % line)
    rc, out, err = run(["--config", bad])
    t.ok(rc == 1 and ("bad.conf:2: " + want) in err, "%s: exit 1, bad.conf:2 says why" % line, err)
with open(bad, "w") as f:
    f.write("map_size = 1M\nmap_max = 512K\n")
rc, out, err = run(["--config", bad])
t.ok(rc == 1 and "bad.conf:2: map_max (512K) is below the initial map size 1M (map_size, " in err
     and "bad.conf:1" in err, "map_max below map_size: exit 1, naming both lines", err)
with open(bad, "w") as f:
    f.write("policy_instructions = 0\npolicy_wall_ms = 0\n")
rc, out, err = run(["--config", bad])
t.ok(rc == 1 and "bad.conf:2: policy_wall_ms and policy_instructions (" in err
     and "bad.conf:1) are both 0" in err,
     "policy_wall_ms and policy_instructions both 0: exit 1, a policy could stop the daemon", err)

# A value the file's line takes gets as far as the listen check on line 2.
def takes(line, prefix=""):
    with open(bad, "w", encoding="utf-8") as f:
        f.write(prefix + "%s\nlisten = 127.0.0.1:99999\n" % line)
    rc, out, err = run(["--config", bad])
    return rc == 1 and "bad.conf:2: listen:" in err, err


# Words are taken in any case, as log_level always was: sync too.
for line in ("sync = GROUP", "sync = None", "log_level = INFO", "require_signed_policies = No"):
    ok, err = takes(line)
    t.ok(ok, "%s is taken (words in any case)" % line, err)
rc, out, err = run(["--sync", "SYNC", "--listen", "127.0.0.1:99999"])
t.ok(rc == 2 and "--listen:" in err and "--sync" not in err, "--sync SYNC is taken too", err)
# A byte-order mark an editor put first is no part of the first key.
ok, err = takes("sync = none", prefix="\ufeff")
t.ok(ok, "a file starting with a UTF-8 byte-order mark: its first key is read", err)
# Sizes: bytes, or K, M or G in either case, alone or with B or iB; nothing else.
for v in ("2M", "2m", "2MB", "2mb", "2MiB", "1kib", "1048576"):
    ok, err = takes("max_body = %s" % v)
    t.ok(ok, "max_body = %s is taken" % v, err)
# (Each file has a listen that cannot work: one the daemon took would stop there.)
for v in ("1Ki", "1KBB", "1 K", "1T", "1.5M", "-1K"):
    with open(bad, "w") as f:
        f.write("max_body = %s\nlisten = 127.0.0.1:99999\n" % v)
    rc, out, err = run(["--config", bad])
    t.ok(rc == 1 and "bad.conf:1: max_body: expected a size: bytes, or a number with K, M or G"
         in err, "max_body = %s is refused, saying what a size is" % v, err)
# A number past what the key holds says it is too large, and the most it takes.
for line, want in (("idle_timeout = 99999999999999999999",
                    "idle_timeout: too large, at most 4294967295 seconds"),
                   ("idle_timeout = 4294967296", "idle_timeout: too large, at most 4294967295"),
                   ("request_timeout = 99999999999999999999",
                    "request_timeout: too large, at most 86400 seconds"),
                   ("max_body = 99999999999999999999G", "max_body: too large, at most 1G"),
                   ("seed = 18446744073709551616", "seed: too large, at most 18446744073709551615")):
    with open(bad, "w") as f:
        f.write("%s\nlisten = 127.0.0.1:99999\n" % line)
    rc, out, err = run(["--config", bad])
    t.ok(rc == 1 and "bad.conf:1: " + want in err, "%s: exit 1, too large" % line, err)

# A key given twice is an error, not the last one winning.
with open(bad, "w") as f:
    f.write("listen = 127.0.0.1:0\nmax_body = 4K\n\n# again:\nmax_body = 8K\n")
rc, out, err = run(["--config", bad])
t.ok(rc == 1 and "bad.conf:5: 'max_body' is set twice (first on line 2)" in err,
     "a key given twice: exit 1, naming file:line, the key and the first line", err)

# A config file that cannot be read (a directory, say) is an error, not an
# empty file: the daemon must not start on the defaults.
cdir = os.path.join(tmp, "conf.d")
os.makedirs(cdir)
def run_quick(args):
    """run(), for a daemon that should exit at once: one that starts instead
    is stopped after a few seconds and reported as rc None."""
    try:
        p = subprocess.run([binary(), "serve"] + args, stdin=subprocess.DEVNULL, cwd=tmp,
                           capture_output=True, text=True, timeout=5)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        return None, "", (e.stderr or b"").decode("utf-8", "replace")


rc, out, err = run_quick(["--config", cdir, "--listen", "127.0.0.1:0",
                          "--data-dir", os.path.join(tmp, "dirconf-data")])
t.ok(rc == 1 and "cannot read config file" in err and "conf.d" in err,
     "--config naming a directory: exit 1, the file cannot be read", err)
t.ok(not os.path.exists(os.path.join(tmp, "dirconf-data")), "... and nothing was created")

# A quoted value keeps a " #" inside its quotes; text after the closing
# quote, or a quote never closed, is an error with file:line.
hashdir = os.path.join(tmp, "pol #1")
os.makedirs(hashdir)
dq = t.owned(Daemon(conf={"policy_dir": '"%s"  # the shared ones' % hashdir}))
try:
    dq.start()
    t.ok(any('policy_dir="%s"' % hashdir in l for l in dq.lines if 'msg="listening"' in l),
         'policy_dir = "…/pol #1": the # inside the quotes is part of the value', dq.lines)
    dq.stop()
except RuntimeError as e:
    t.ok(False, 'policy_dir = "…/pol #1": the # inside the quotes is part of the value', e)
for line, want in (('data_dir = "/tmp/x', "bad.conf:2: data_dir: missing closing quote"),
                   ('data_dir = "/tmp/x" /tmp/y', "bad.conf:2: data_dir: unexpected text after the closing quote")):
    with open(bad, "w") as f:
        f.write("# line 1\n%s\nlisten = 127.0.0.1:0\n" % line)
    rc, out, err = run_quick(["--config", bad])
    t.ok(rc == 1 and want in err, "%s: exit 1, bad.conf:2 says why" % line, err)

# require_signed_policies needs a well-formed policy_public_key: checked with
# the other settings (file:line, nothing created), not when the engine opens.
for text, want in (("require_signed_policies = yes\n",
                    "bad.conf:2: require_signed_policies is on but policy_public_key is not set"),
                   ("require_signed_policies = yes\npolicy_public_key = abc123\n",
                    "bad.conf:3: policy_public_key must be 64 hex characters")):
    sdata = os.path.join(tmp, "signed-data")
    with open(bad, "w") as f:
        f.write("data_dir = %s\n%s" % (sdata, text))
    rc, out, err = run_quick(["--config", bad, "--listen", "127.0.0.1:0"])
    t.ok(rc == 1 and want in err, "%s: exit 1 naming file:line" % text.strip().replace("\n", "; "), err)
    t.ok(not os.path.exists(sdata), "... before the data directory or admin token is made")

# A flag's value is reported naming the flag (a usage error: exit 2).
rc, out, err = run(["--listen", "127.0.0.1:99999"])
t.ok(rc == 2 and "--listen: '127.0.0.1:99999': the port must be 0 to 65535" in err,
     "--listen with a port out of range: exit 2, naming the flag", err)
rc, out, err = run(["--sync", "sometimes"])
t.ok(rc == 2 and "--sync" in err, "--sync with a bad value: exit 2, naming the flag", err)
# A data_dir that is a file, or under one: the setting named, where it was set.
afile = os.path.join(tmp, "afile")
with open(afile, "w") as f:
    f.write("not a directory\n")
rc, out, err = run(["--data-dir", afile, "--listen", "127.0.0.1:0"])
t.ok(rc == 2 and "switchboard serve: --data-dir: '%s': not a directory" % afile in err
     and "serve.lock" not in err, "--data-dir naming a file: exit 2, naming the flag", err)
rc, out, err = run(["--data-dir", os.path.join(afile, "sub"), "--listen", "127.0.0.1:0"])
t.ok(rc == 2 and "--data-dir: '%s/sub': a part of the path is not a directory" % afile in err,
     "--data-dir under a file: exit 2, naming the flag", err)
with open(bad, "w") as f:
    f.write("listen = 127.0.0.1:0\ndata_dir = %s\n" % afile)
rc, out, err = run(["--config", bad])
t.ok(rc == 1 and "bad.conf:2: data_dir: '%s': not a directory" % afile in err,
     "data_dir naming a file in the config: exit 1, naming file:line", err)
with open(afile) as f:
    t.is_(f.read(), "not a directory\n", "... and the file is as it was")
rc, out, err = run(["--config", os.path.join(tmp, "missing.conf")])
t.ok(rc == 1 and "missing.conf" in err, "a missing config file: exit 1", err)
rc, out, err = run(["--frobnicate"])
t.ok(rc == 2 and "--frobnicate" in err, "an unknown flag: exit 2", err)
rc, out, err = run(["--help"])
t.ok(rc == 0 and "--data-dir" in out, "--help: usage on stdout, exit 0")

# A flag given twice is a usage error naming it, as a key given twice in the
# file is one: neither the last one winning nor a --config left unread. (An
# unusable --listen in each: a daemon that took the flags would stop there.)
other = os.path.join(tmp, "other.conf")
with open(other, "w") as f:
    f.write("listen = 127.0.0.1:99999\n")
for args, want in (
        (["--config", other, "--config", bad], "--config is given twice ('%s', then '%s')"
         % (other, bad)),
        (["--config=" + other, "--config", other], "--config is given twice"),
        (["--listen", "127.0.0.1:1", "--listen", "127.0.0.1:99999"],
         "--listen is given twice ('127.0.0.1:1', then '127.0.0.1:99999')"),
        (["--listen=127.0.0.1:99999", "--sync", "none", "--listen", "127.0.0.1:1"],
         "--listen is given twice"),
        (["--data-dir", "a", "--data-dir=b", "--listen", "127.0.0.1:99999"], "--data-dir is given twice ('a', then 'b')"),
        (["--policy-dir", "a", "--policy-dir", "b", "--listen", "127.0.0.1:99999"], "--policy-dir is given twice"),
        (["--sync", "none", "--sync", "group", "--listen", "127.0.0.1:99999"], "--sync is given twice"),
        (["--log-level", "info", "--log-level", "debug", "--listen", "127.0.0.1:99999"], "--log-level is given twice"),
        (["--demo", "--demo", "--listen", "127.0.0.1:99999"], "--demo is given twice")):
    rc, out, err = run_quick(args)
    t.ok(rc == 2 and "switchboard serve: " + want in err,
         "serve %s: exit 2, naming the flag" % " ".join(args), (rc, err))

# The example config must load as it is (all its keys are real).
example = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "examples", "switchboard.conf")
ex = t.owned(Daemon(data_dir=os.path.join(tmp, "exdata"),
                    args=["--listen", "127.0.0.1:0",
                          "--data-dir", os.path.join(tmp, "exdata"), "--policy-dir", d.policy_dir]))
ex.conf_path = example   # the --config it passes
try:
    ex.start()
    t.ok(True, "examples/switchboard.conf loads, flags override its listen/data_dir")
    t.is_(ex.stop(), 0, "... exit 0")
except RuntimeError as e:
    t.ok(False, "examples/switchboard.conf loads", e)
    t.ok(False, "... exit 0")

# API.md's "Transport limits" has a row for each setting of the example's
# network and event stream sections (but where to listen and the sweeps),
# whose default is the example's: a gateway writer reads the stream's
# keep-alive interval there to set a read timeout by.
with open(example) as f:
    conf = f.read()
with open(os.path.join(os.path.dirname(example), "..", "engine", "daemon", "API.md")) as f:
    api = f.read()
table = api.split("## Transport limits", 1)[1].split("\n\n", 2)[1]
rows = {}
for line in table.splitlines():
    cells = [c.strip() for c in line.strip("|").split("|")]
    if len(cells) >= 2 and cells[0].startswith("`"):
        rows[cells[0].strip("`")] = cells[1]
sections = conf.split("# --- storage", 1)[0]
for key, value in re.findall(r"^([a-z_]+) = (\S+)", sections, re.M):
    if key in ("listen", "sweep_interval"):
        continue
    doc = rows.get(key)
    t.ok(doc is not None and re.match(r"%s\b" % re.escape(value), doc),
         "API.md's transport limits: %s, %s by default, as the example" % (key, value), doc)
# 0 turns a policy budget off (documented in examples/switchboard.conf):
# the daemon starts with policy_wall_ms = 0 and routes.
d0 = t.owned(Daemon(conf={"policy_wall_ms": 0, "quarantine_after": 0, "policy_memory_kib": 0})).start()
t.is_(d0.request("GET", "/healthz").status, 200, "policy_wall_ms = 0 (no wall-clock limit) starts")
t.is_(d0.stop(), 0, "... exit 0")

# The default policy directory (./policies) may be absent: the daemon serves
# uploaded policies only, and says so. One named explicitly must be there.
empty = os.path.join(tmp, "nowhere-cwd")
os.makedirs(empty)
dn = t.owned(Daemon(conf={"policy_dir": "./policies"}, cwd=empty)).start()
t.ok(dn.wait_log(r'msg="no policy directory"', timeout=5),
     "no ./policies: the daemon starts and warns (only uploaded policies)")
t.is_(dn.stop(), 0, "... exit 0")
dx = t.owned(Daemon(conf={"policy_dir": os.path.join(tmp, "no-such-policies")}))
dx.start(expect_listen=False)
t.ok(dx.proc.wait(timeout=20) != 0 and dx.wait_log(r"no-such-policies", timeout=5),
     "a policy_dir named in the config that is not there: the daemon exits, naming it")

# Flags override the file: the file says debug and an unusable address.
d2 = t.owned(Daemon(conf={"listen": "256.0.0.1:99999", "log_level": "debug"},
                    args=["--listen", "127.0.0.1:0", "--log-level", "info"])).start()
t.ok(d2.port > 0, "--listen overrides the file's listen")
d2.request("GET", "/healthz")
t.ok(not any("level=debug" in l for l in d2.lines), "--log-level info overrides the file's debug")
tok = os.path.join(d2.data_dir, "admin.token")
mode = stat.S_IMODE(os.stat(tok).st_mode)
t.is_(oct(mode), oct(0o600), "the generated admin token file is mode 0600")
t.ok(any('msg="admin token created"' in l and "admin.token" in l for l in d2.lines),
     "... and its path is logged")
t.ok(len(d2.token) >= 32, "... holding a long random token")
made = [l for l in d2.lines if 'msg="master key created"' in l]
t.ok(len(made) == 1 and "level=warn" in made[0]
     and 'path="%s"' % os.path.join(d2.data_dir, "master.key") in made[0]
     and "apart from the data directory's backups" in made[0],
     "the master key made on first start is logged at warn, with its path and a reminder to "
     "keep it apart from backups", d2.lines)

# A first start that fails after the master key is made (a data.mdb that is
# not LMDB's): the key is announced all the same, the next start would not.
bad = os.path.join(tmp, "notlmdb")
os.makedirs(bad, 0o700)
with open(os.path.join(bad, "data.mdb"), "wb") as f:
    f.write(bytes(8192))
db = t.owned(Daemon(data_dir=bad))
db.start(expect_listen=False)
t.is_(db.wait(20), 1, "a data.mdb that is not LMDB's: exit 1")
t.ok(any("MDB_INVALID" in l and "restore the data directory from a backup" in l
         for l in db.lines), "... saying to restore from a backup", db.lines)
made = [l for l in db.lines if 'msg="master key created"' in l]
t.ok(len(made) == 1 and "level=warn" in made[0] and "this start then failed" in made[0]
     and "apart from the data directory's backups" in made[0]
     and os.path.exists(os.path.join(bad, "master.key")),
     "... the master key it made is logged, saying the start failed after", db.lines)
order = [i for i, l in enumerate(db.lines) if "master key created" in l or "cannot open" in l]
t.ok(len(order) == 2 and "master key created" in db.lines[order[0]],
     "... before the error", db.lines)

# An address in use: the daemon says so and exits before it makes anything
# on disk (the data directory a first try would otherwise leave behind).
busy = socket.socket()
busy.bind(("127.0.0.1", 0))
busy.listen(1)
fresh = os.path.join(tmp, "never-made")
db = t.owned(Daemon(data_dir=fresh, args=["--listen", "127.0.0.1:%d" % busy.getsockname()[1]]))
db.start(expect_listen=False)
t.is_(db.wait(20), 1, "an address in use: exit 1")
t.ok(any("cannot listen" in l and "in use" in l for l in db.lines),
     "... saying it cannot listen there", db.lines)
t.ok(not os.path.exists(fresh), "... and no data directory was made")
busy.close()

# A second serve on the same data directory.
d3 = t.owned(Daemon(data_dir=d2.data_dir))
d3.start(expect_listen=False)
rc = d3.wait(20)
t.is_(rc, 1, "a second serve on the same data directory exits 1")
msg = "\n".join(d3.lines)
t.ok("in use" in msg and d2.data_dir in msg and str(d2.proc.pid) in msg,
     "... saying the directory is in use, by which pid", msg)
# ... also with the first one's address (the same configuration, started twice).
d3b = t.owned(Daemon(data_dir=d2.data_dir, args=["--listen", "127.0.0.1:%d" % d2.port]))
d3b.start(expect_listen=False)
t.is_(d3b.wait(20), 1, "a second serve on the same data directory and address exits 1")
msg = "\n".join(d3b.lines)
t.ok("in use by another" in msg and str(d2.proc.pid) in msg,
     "... saying the directory is in use, by which pid (not only that the address is)", msg)
t.is_(d2.request("GET", "/healthz").status, 200, "the first daemon is unaffected")
t.is_(d2.stop(), 0, "exit 0")

# Once the first has stopped, the directory can be served again, same token.
d3.start()
t.is_(d3.token, d2.token, "a restart keeps the admin token")
t.ok(not any("master key created" in l or "admin token created" in l for l in d3.lines),
     "... and says nothing of making a key or a token")
t.is_(d3.admin("GET", "/v1/accounts").status, 200, "... and it works")
t.is_(d3.stop(), 0, "exit 0")

# sync modes: the daemon's own group sync only in group mode.
for mode in ("none", "sync", "group"):
    dm = t.owned(Daemon(args=["--sync", mode])).start()
    r = dm.admin("POST", "/v1/accounts", {"id": "m1"})
    syncs = dm.metric("switchboard_syncs_total")
    t.ok(r.status == 201 and (syncs >= 1 if mode == "group" else syncs == 0),
         "--sync %s: works, %d group syncs" % (mode, syncs or 0))
    t.ok(any("sync=%s" % mode in l for l in dm.lines if 'msg="listening"' in l), "... and says so at start")
    t.is_(dm.stop(), 0, "... exit 0")

# admin_token_file pointing at an existing file.
tokfile = os.path.join(tmp, "my.token")
with open(tokfile, "w") as f:
    f.write("s3cret-admin-token-for-tests\n")
os.chmod(tokfile, 0o600)
d4 = t.owned(Daemon(conf={"admin_token_file": tokfile})).start()
r = d4.request("GET", "/v1/accounts", auth="Bearer s3cret-admin-token-for-tests")
t.is_(r.status, 200, "admin_token_file: the token from that file works")
t.ok(not os.path.exists(os.path.join(d4.data_dir, "admin.token")), "... and no other token file is made")
t.is_(d4.stop(), 0, "exit 0")

# -- who may change the token, the key and the data directory -----------------------------
# A data directory another user may write into (made 0777 by someone else
# before the first start, say) is refused before anything is made in it:
# they could put their own admin.token, master.key or data.mdb there.
for mode in (0o777, 0o770, 0o1777, 0o707):
    dd = os.path.join(tmp, "open-%o" % mode)
    os.makedirs(dd)
    os.chmod(dd, mode)
    do = t.owned(Daemon(data_dir=dd))
    do.start(expect_listen=False)
    t.is_(do.wait(20), 1, "a data directory of mode %04o: exit 1" % mode)
    t.ok(any("data_dir: directory %s has mode %04o: group or others may replace the files in it"
             % (dd, mode) in l and "chmod go-w" in l for l in do.lines),
         "... saying so and what to do", do.lines)
    t.is_(sorted(os.listdir(dd)), [], "... nothing made in it")
dd = os.path.join(tmp, "open-755")
os.makedirs(dd)
os.chmod(dd, 0o755)
do = t.owned(Daemon(data_dir=dd)).start()
t.ok(do.port, "a data directory of mode 0755 (others may read, not write): taken")
t.is_(do.stop(), 0, "... exit 0")
# The key file's and the token file's directories: the same, but a sticky
# one (/tmp's 1777) is taken: its other users cannot replace what is not
# theirs, and a file they put there first is not theirs to give (below).
for what, name in (("key_file", "master.key"), ("admin_token_file", "admin.token")):
    for mode, ok in ((0o777, False), (0o1777, True)):
        kd = os.path.join(tmp, "%s-%o" % (what, mode))
        os.makedirs(kd)
        os.chmod(kd, mode)
        dk = t.owned(Daemon(conf={what: os.path.join(kd, name)}))
        dk.start(expect_listen=ok)
        if ok:
            t.ok(dk.port, "%s in a directory of mode %04o: taken" % (what, mode))
            t.is_(dk.stop(), 0, "... exit 0")
        else:
            t.is_(dk.wait(20), 1, "%s in a directory of mode %04o: exit 1" % (what, mode))
            t.ok(any("%s %s" % ("key_file" if what == "key_file" else "admin token file",
                                os.path.join(kd, name)) in l and "has mode 0777" in l
                     for l in dk.lines), "... naming the file and the directory's mode", dk.lines)
            t.ok(not os.path.exists(os.path.join(kd, name)), "... and not making the file")
            t.ok(not os.path.exists(dk.data_dir),
                 "... before the data directory (and an admin token in it) is made")
    # A key or token file in a directory that is not there: refused so too.
    missing = os.path.join(tmp, "%s-missing" % what, name)
    dk = t.owned(Daemon(conf={what: missing}))
    dk.start(expect_listen=False)
    t.is_(dk.wait(20), 1, "%s in a directory that does not exist: exit 1" % what)
    t.ok(any(missing in l and "No such file or directory" in l for l in dk.lines),
         "... naming the file", dk.lines)
    t.ok(not os.path.exists(dk.data_dir), "... before the data directory is made")

# Owners: only root can make a file another user's, so as root alone.
if os.geteuid() == 0:
    for name, why in (("admin.token", "admin token file"), ("master.key", "master key")):
        dd = os.path.join(tmp, "owned-" + name)
        dn = t.owned(Daemon(data_dir=dd)).start()
        t.is_(dn.stop(), 0, "a data directory made for the %s owner check" % name)
        path = os.path.join(dd, name)
        os.chown(path, 65534, 65534)
        dn.start(expect_listen=False)
        t.is_(dn.wait(20), 1, "%s owned by uid 65534 (mode 0600): exit 1" % name)
        t.ok(any(why in l and path in l and "owned by uid 65534" in l for l in dn.lines),
             "... saying whose it is", dn.lines)
        os.chown(path, 0, 0)
        t.ok(dn.start().port, "... owned by the daemon's user again: it starts")
        t.is_(dn.stop(), 0, "... exit 0")
else:
    t.diag("not root: the owner checks, which chown a file to another user, are skipped")
t.done()
