#!/usr/bin/env python3
# Runs each libFuzzer target for a bounded time and fails on any crash, leak,
# sanitizer report or timeout; prints each target's executions.
#
#   FUZZ_SECONDS   seconds per target (default 20; `make fuzz` uses FUZZ_TIME)
#   FUZZ_TARGETS   space-separated subset (json http records store decision)
#   FUZZ_KEEP      directory to keep each target's grown corpus in (default:
#                  a temporary one, discarded)
#
# Each run starts from the seeds in tests/fuzz/corpus/<target> with the
# dictionary tests/fuzz/<target>.dict; first every file in
# tests/fuzz/regress/<target> (inputs that once failed) is run once.
import os, re, shutil, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("SB_BUILD", "build")
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)
SECONDS = int(os.environ.get("FUZZ_SECONDS", "20"))
TARGETS = os.environ.get("FUZZ_TARGETS", "json http records store decision").split()
MAX_LEN = {"json": 4096, "http": 4096, "records": 2048, "store": 1024, "decision": 512}
KEEP = os.environ.get("FUZZ_KEEP")

n = 0
failed = 0


def ok(cond, name, diag=None):
    global n, failed
    n += 1
    print("%sok %d - %s" % ("" if cond else "not ", n, name))
    if not cond:
        failed += 1
        for line in (diag or "").splitlines():
            print("#   " + line)
    sys.stdout.flush()
    return cond


def note(msg):
    print("# " + msg)
    sys.stdout.flush()


BAD = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|"
                 r"runtime error:|SUMMARY: |==\d+== ?ERROR|deadly signal|Test unit written")

env = dict(os.environ)
env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1:symbolize=1")
env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")

tmp = tempfile.mkdtemp(prefix="sbfuzz-t-",
                       dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
env["SB_FUZZ_TMP"] = tmp  # the targets' scratch data directories, removed with it
total_execs = 0
try:
    for t in TARGETS:
        binary = os.path.join(BUILD, "fuzz", "fuzz_" + t)
        if not ok(os.access(binary, os.X_OK), "fuzz_%s is built" % t, binary):
            continue
        regress = os.path.join(HERE, "regress", t)
        files = sorted(os.path.join(regress, f) for f in os.listdir(regress)) \
            if os.path.isdir(regress) else []
        if files:
            p = subprocess.run([binary] + files, env=env, cwd=tmp, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=600)
            text = p.stdout.decode("utf-8", "replace")
            ok(p.returncode == 0 and not BAD.search(text),
               "fuzz_%s: %d regression inputs pass" % (t, len(files)), text[-4000:])
        work = os.path.join(KEEP, t) if KEEP else os.path.join(tmp, "corpus-" + t)
        os.makedirs(work, exist_ok=True)
        art = os.path.join(tmp, "artifacts-" + t) + os.sep
        os.makedirs(art, exist_ok=True)
        args = [binary, "-max_total_time=%d" % SECONDS, "-timeout=25", "-rss_limit_mb=2560",
                "-max_len=%d" % MAX_LEN.get(t, 4096), "-print_final_stats=1",
                "-artifact_prefix=" + art]
        d = os.path.join(HERE, t + ".dict")
        if os.path.exists(d):
            args.append("-dict=" + d)
        args.append(work)
        seeds = os.path.join(HERE, "corpus", t)
        if os.path.isdir(seeds):
            args.append(seeds)
        t0 = time.monotonic()
        try:
            p = subprocess.run(args, env=env, cwd=tmp, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=SECONDS * 3 + 120)
            text, rc = p.stdout.decode("utf-8", "replace"), p.returncode
        except subprocess.TimeoutExpired as e:
            text, rc = (e.stdout or b"").decode("utf-8", "replace"), -1
        took = time.monotonic() - t0
        m = re.search(r"stat::number_of_executed_units:\s*(\d+)", text) or \
            re.search(r"Done (\d+) runs", text)
        execs = int(m.group(1)) if m else 0
        total_execs += execs
        cov = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)", text)
        cov = cov[-1] if cov else ("?", "?", "?")
        arts = [f for f in os.listdir(art)] if os.path.isdir(art) else []
        diag = text[-6000:]
        if arts:
            keep = os.path.join(ROOT, BUILD, "fuzz", "artifacts")
            os.makedirs(keep, exist_ok=True)
            for f in arts:
                shutil.copy(os.path.join(art, f), keep)
            diag += "\nreproducer(s) copied to %s: %s" % (keep, " ".join(arts))
        ok(rc == 0 and not BAD.search(text) and not arts and execs > 0,
           "fuzz_%s: %d executions in %.0f s (%.0f/s), coverage %s, corpus %s, no crash, "
           "leak or sanitizer report" % (t, execs, took, execs / max(took, 0.001), cov[0],
                                         cov[2]), diag)
    note("fuzz executions in total: %d (%d s per target)" % (total_execs, SECONDS))
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print("1..%d" % n)
sys.exit(1 if failed else 0)
