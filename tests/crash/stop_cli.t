#!/usr/bin/env python3
# Ctrl-Z stops a `switchboard` command between its write transactions, never
# inside one: a command stopped inside one would hold the data directory's
# one writer, and every other process's writes there (a daemon's events and
# the answers waiting for them) would wait until it was continued. The
# synctrace.so shim raises SIGTSTP at the command's Nth sync (SB_STOPAT), as
# a Ctrl-Z at that moment would, for N = 1, 2, ... until the command gets
# through without stopping: each time it stops, another process writes to
# the directory, and must get through at once, then the command is
# continued and finishes. (The command is in a process group of its own in
# this session, as a shell's job is: the system ignores a stop signal in a
# group with no parent to continue it.)
import os, shutil, signal, subprocess, sys, tempfile, time
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "daemon"))
from sbtest import ROOT, TAP, library_env  # noqa: E402

t = TAP(deadline=300)
build = os.environ.get("SB_BUILD", "build")
build = build if os.path.isabs(build) else os.path.join(ROOT, build)
sb = os.path.join(build, "switchboard")
shim = os.path.join(build, "tests", "crash", "synctrace.so")
t.ok(os.path.exists(shim), "the shim is built (%s)" % shim)
tmp = tempfile.mkdtemp()
t.cleanups.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
data = os.path.join(tmp, "data")
r = subprocess.run([sb, "replay", "examples/replay/first-calls.jsonl", "--data-dir", data,
                    "--policy-dir", "policies"], cwd=ROOT, capture_output=True, text=True)
t.is_(r.returncode, 0, "a data directory with a morning of calls", r.stderr)
asan = os.environ.get("ASAN_OPTIONS")
env = dict(os.environ, LD_PRELOAD=shim,
           ASAN_OPTIONS=(asan + ":" if asan else "") + "verify_asan_link_order=0")


def state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def writer(n):
    """Another process's write on the directory: its code, or None when it
    did not get through in 20 s (held up)."""
    code = ("import sys; sys.path.insert(0, %r); import switchboard\n"
            "with switchboard.Engine(%r) as e: e.account_put({'id': 'other%d'})\n"
            % (os.path.join(ROOT, "bindings", "python"), data, n))
    lib = os.path.join(build, "libswitchboard.so")
    try:
        return subprocess.run([sys.executable, "-c", code], timeout=20,
                              env=dict(library_env(lib), SWITCHBOARD_LIB=lib)).returncode
    except subprocess.TimeoutExpired:
        return None


stopped = held = 0
for n in range(1, 40):
    cmd = subprocess.Popen([sb, "records", "hold", "--data-dir", data, "--account", "acme",
                            "--number", "+441632960001", "--reason", "stop %d" % n,
                            "--id", "h%d" % n],
                           env=dict(env, SB_STOPAT=str(n)), preexec_fn=os.setpgrp,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    end = time.monotonic() + 30
    while cmd.poll() is None and state(cmd.pid) != "T" and time.monotonic() < end:
        time.sleep(0.01)
    if cmd.poll() is not None:
        out, err = cmd.communicate()
        t.is_(cmd.returncode, 0, "at sync %d the command had ended: it made %d syncs, and "
              "succeeded" % (n, n - 1), err)
        break
    if state(cmd.pid) != "T":
        t.ok(False, "the command neither stopped nor ended at sync %d" % n)
        cmd.kill()
        break
    stopped += 1
    got = writer(n)
    if got != 0:
        held += 1
        t.diag("stopped at sync %d: another process's write %s" %
               (n, "was held up" if got is None else "failed (%s)" % got))
    os.kill(cmd.pid, signal.SIGCONT)
    out, err = cmd.communicate(timeout=30)
    if cmd.returncode != 0:
        t.ok(False, "continued after its stop at sync %d, the command succeeds" % n, err)
        break
t.ok(stopped > 0, "the command was stopped at %d of its syncs" % stopped)
t.is_(held, 0, "... and at none of them did it hold up another process's write")
r = subprocess.run([sb, "records", "holds", "--data-dir", data, "--account", "acme"],
                   capture_output=True, text=True, env=os.environ)
t.ok(r.returncode == 0 and all(("h%d" % k) in r.stdout for k in range(1, stopped + 1)),
     "every hold the stopped commands placed is there", r.stdout + r.stderr)
t.done()
