#!/usr/bin/env python3
# What `make run` runs (engine/tools/run-demo.sh), as a new user's first
# command: the simulated day of calls through the stock policies, then the
# daemon with the demo account; SIGTERM stops it with exit 0. Run in a
# scratch directory (the script keeps its data in ./var, and makes ./var
# only then: not with a --data-dir of its own). And make run's ARGS reach the
# daemon.
import sys, os, re, signal, subprocess, tempfile, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, ROOT, binary

t = TAP(deadline=120)
work = tempfile.mkdtemp(prefix="sbtest-run-")
os.symlink(os.path.join(ROOT, "policies"), os.path.join(work, "policies"))
cli = binary()
p = subprocess.Popen([os.path.join(ROOT, "engine/tools/run-demo.sh"), cli, "--listen",
                      "127.0.0.1:0"], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     text=True)
out, err = [], []
for stream, sink in ((p.stdout, out), (p.stderr, err)):
    threading.Thread(target=lambda s=stream, k=sink: [k.append(l) for l in s], daemon=True).start()
end = time.monotonic() + 90
def stop(p):
    """SIGTERM to the demo's daemon (if still up): its exit status."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()


def up():
    return any('msg="listening"' in l for l in err) and any("curl" in l for l in out)


while time.monotonic() < end and p.poll() is None and not up():
    time.sleep(0.05)
text = "".join(out)
t.ok(p.poll() is None and any('msg="listening"' in l for l in err),
     "the daemon is up after the simulated day", "".join(out + err)[-3000:])
t.ok("== A simulated day of calls ==" in text and re.search(r"\d+ calls", text) is not None,
     "the simulated day ran and printed its summary", text[-3000:])
t.ok("api key: sbk_" in text and "curl" in text, "the demo account's key and curl lines",
     text[-2000:])
t.ok(os.path.isdir(os.path.join(work, "var", "switchboard")), "its data in ./var/switchboard")
# "Try it in a second terminal": one that starts elsewhere (its home).
exports = [l.strip() for l in out if l.startswith("  export ")]
r = subprocess.run(["bash", "-c", "\n".join(exports + ['curl -s -H "$ADMIN" $SB/v1/accounts'])],
                   capture_output=True, text=True, timeout=20, cwd="/")
t.ok('"demo"' in r.stdout, "the printed ADMIN line works from another directory", r.stdout + r.stderr)
t.ok(re.search(r"The demo's state stays in /\S*/var/switchboard", text) is not None,
     "and the banner says where the demo's state is kept, to reset it", text[-1500:])
t.is_(stop(p), 0, "SIGTERM: exit 0")
subprocess.run(["rm", "-rf", work])

# With a --data-dir of its own (make run ARGS='--data-dir ...') the data go
# there, and the directory it runs in gets no empty ./var.
work = tempfile.mkdtemp(prefix="sbtest-run-")
os.symlink(os.path.join(ROOT, "policies"), os.path.join(work, "policies"))
elsewhere = os.path.join(work, "elsewhere")
p = subprocess.Popen([os.path.join(ROOT, "engine/tools/run-demo.sh"), cli, "--data-dir",
                      elsewhere, "--listen", "127.0.0.1:0"], cwd=work, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True)
out, err = [], []
for stream, sink in ((p.stdout, out), (p.stderr, err)):
    threading.Thread(target=lambda s=stream, k=sink: [k.append(l) for l in s], daemon=True).start()
end = time.monotonic() + 90
while time.monotonic() < end and p.poll() is None and not up():
    time.sleep(0.05)
t.ok(p.poll() is None and up() and os.path.isdir(elsewhere),
     "with --data-dir DIR the demo's daemon is up, its data in DIR", "".join(out + err)[-3000:])
t.ok(not os.path.exists(os.path.join(work, "var")), "... and no ./var is made",
     sorted(os.listdir(work)))
t.is_(stop(p), 0, "SIGTERM: exit 0")
subprocess.run(["rm", "-rf", work])
# `make run ARGS=...` hands its flags to serve (README): what make would run.
r = subprocess.run(["make", "-s", "-n", "-C", ROOT, "run", "ARGS=--listen 127.0.0.1:9"],
                   capture_output=True, text=True, timeout=60)
t.ok(re.search(r"run-demo\.sh \S+ --listen 127\.0\.0\.1:9$", r.stdout, re.M) is not None,
     "make run ARGS='--listen ...' passes the flags to the daemon", r.stdout[-1500:])
t.done()
