#!/usr/bin/env python3
"""tests/multiproc/kamailio.t — the Kamailio example end to end, on loopback.

Starts Kamailio (Debian's 5.6, app_lua) with examples/kamailio/kamailio.cfg on a
free UDP port, four UDP workers each embedding the engine through the Lua
binding on one fresh data directory; five agents' softphones (sipagent.py UAS
processes: three answer, one is busy, one never answers); callers (sipagent.Uac)
send INVITEs. Asserts that every INVITE reached the agent the Lua 5.4 policy
chose, that busy and unanswered agents are followed by the engine's next choice,
that concurrent calls never share an agent, and that the engine's call records
(read afterwards through the binding) say the same as the agents saw. Also
checks which Lua the module's lua_* references bound to inside Kamailio.
Bounded: the whole run is limited to 150 s and cleans up its processes.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "multiproc"))
import sipagent  # noqa: E402

BUILD = os.path.join(ROOT, os.environ.get("SB_BUILD", "build"))
EXAMPLE = os.path.join(ROOT, "examples", "kamailio")
MODULE_DIR = os.path.join(BUILD, "bindings", "lua", "5.1")
APP_LUA = "/usr/lib/x86_64-linux-gnu/kamailio/modules/app_lua.so"

n_tests = 0
n_failed = 0


def ok(cond, name):
    global n_tests, n_failed
    n_tests += 1
    if not cond:
        n_failed += 1
    print("%sok %d - %s" % ("" if cond else "not ", n_tests, name), flush=True)
    return cond


def diag(msg):
    for line in str(msg).splitlines():
        print("# " + line, flush=True)


def skip_all(why):
    print("1..0 # SKIP " + why)
    sys.exit(0)


def which(prog):
    return shutil.which(prog)


if not which("kamailio"):
    skip_all("kamailio is not installed (Debian packages kamailio, kamailio-lua-modules)")
if not os.path.exists(APP_LUA):
    skip_all("app_lua.so is missing (Debian package kamailio-lua-modules)")
if not os.path.exists(os.path.join(MODULE_DIR, "switchboard.so")):
    skip_all("the Lua module is not built (make tests)")
LUA = which("lua5.1") or which("luajit")
if not LUA:
    skip_all("no lua5.1 or luajit to run examples/kamailio/sbctl.lua")
if "san" in os.path.basename(BUILD):
    # Kamailio is not built with the sanitizers and forks many workers; the
    # module's ASan/UBSan build cannot be preloaded cleanly into it.
    skip_all("not under sanitizers (the plain build runs this test)")


def free_udp_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


TMP = tempfile.mkdtemp(prefix="sb-kamailio-")
DATA = os.path.join(TMP, "data")
POLICIES = os.path.join(EXAMPLE, "policies")
procs = []


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.time() + 5
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    shutil.rmtree(TMP, ignore_errors=True)


def on_alarm(*_):
    print("not ok %d - the test finished within its time limit" % (n_tests + 1), flush=True)
    cleanup()
    print("1..%d" % (n_tests + 1))
    os._exit(1)


signal.signal(signal.SIGALRM, on_alarm)
signal.alarm(150)

env = dict(os.environ, LUA_CPATH=os.path.join(MODULE_DIR, "?.so") + ";;")


def sbctl(*args):
    r = subprocess.run([LUA, os.path.join(EXAMPLE, "sbctl.lua"), DATA, POLICIES] + list(args),
                       env=env, capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        diag("sbctl %s: %s" % (" ".join(args), r.stderr))
    return r


try:
    kport, *aports = free_udp_ports(6)
    agents = [  # name, languages, softphone mode
        ("alice", {"en": 5}, "answer"),
        ("bob", {"en": 4, "es": 3}, "busy"),
        ("carol", {"de": 4, "en": 3}, "answer"),
        ("dave", {"fr": 5}, "noanswer"),
        ("erin", {"en": 2}, "answer"),
    ]
    port_of = {a[0]: p for a, p in zip(agents, aports)}
    prov = {
        "account": {"id": "acme", "name": "Acme Ltd"},
        "agents": [{"id": n, "status": "available", "skills": sk,
                    "devices": {"softphone": "sip:%s@127.0.0.1:%d" % (n, port_of[n])}}
                   for n, sk, _ in agents],
        "queues": [{"id": "support", "policy": "by-language", "ring_timeout": 3,
                    "members": [{"agent": n} for n, _, _ in agents]}],
    }
    with open(os.path.join(TMP, "provision.json"), "w") as f:
        json.dump(prov, f)
    cli = os.path.join(BUILD, "switchboard")
    r = subprocess.run([cli, "policy", "test", os.path.join(POLICIES, "by-language.lua")],
                       capture_output=True, text=True, timeout=60)
    ok(r.returncode == 0, "the example policy passes its cases: " +
       (r.stdout.strip().splitlines() or ["?"])[-1])
    r = sbctl("provision", os.path.join(TMP, "provision.json"))
    ok(r.returncode == 0, "provisioned through the Lua binding: " + r.stdout.strip())

    uas_log = os.path.join(TMP, "uas.jsonl")
    for (name, _, mode) in agents:
        procs.append(subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "multiproc",
                                                                     "sipagent.py"),
                                       "uas", name, str(port_of[name]), mode, uas_log]))

    kam_log = os.path.join(TMP, "kamailio.log")
    kenv = dict(env, SWITCHBOARD_DATA_DIR=DATA, SWITCHBOARD_POLICY_DIR=POLICIES,
                SWITCHBOARD_ACCOUNT="acme", SWITCHBOARD_SYNC="group",
                SB_LISTEN="udp:127.0.0.1:%d" % kport,
                SB_ROUTE_LUA=os.path.join(EXAMPLE, "route.lua"), SB_CHILDREN="4",
                LD_DEBUG="bindings")  # to stderr: Kamailio closes other descriptors
    kam = subprocess.Popen(["kamailio", "-f", os.path.join(EXAMPLE, "kamailio.cfg"), "-DD", "-E",
                            "-w", TMP], env=kenv, stdout=open(kam_log, "w"),
                           stderr=subprocess.STDOUT)
    procs.append(kam)
    uac = sipagent.Uac(kport, timeout=15)
    up = False
    for _ in range(100):
        if kam.poll() is not None:
            break
        if uac.options(0.2):
            up = True
            break
    if not ok(up, "kamailio is up on udp:127.0.0.1:%d (%d UDP workers)" % (kport, 4)):
        diag("".join(l for l in open(kam_log, errors="replace") if "binding file" not in l)[-3000:])
        raise SystemExit

    calls = {}  # call id -> (what the caller saw, expectation)

    def call(label, language, caller="+442079460001", queue="support", hold=0.3, **kw):
        res = uac_for_thread().call(queue, caller, language, hold=hold, **kw)
        calls[res["call_id"]] = res
        res["label"] = label
        return res

    local = threading.local()

    def uac_for_thread():
        if not hasattr(local, "uac"):
            local.uac = sipagent.Uac(kport, timeout=15)
        return local.uac

    # 1. A German caller: only carol speaks German.
    c1 = call("de", "de")
    ok(c1["final"] == 200 and c1.get("contact", "").startswith("sip:carol@"),
       "a German caller is answered by carol, the only German speaker (%s)" % c1.get("contact"))
    ok(c1.get("bye") == 200, "the caller's BYE went through the proxy to the agent")
    # 2. A Spanish caller: bob speaks Spanish but is busy; the engine picks next.
    c2 = call("es", "es")
    ok(c2["final"] == 200 and not c2.get("contact", "").startswith("sip:bob@"),
       "a Spanish caller: bob (busy) first, then the engine's next choice answers (%s)"
       % c2.get("contact"))
    # 3. A French caller: dave never answers; after the ring timeout, next agent.
    t0 = time.time()
    c3 = call("fr", "fr")
    took = time.time() - t0
    ok(c3["final"] == 200 and not c3.get("contact", "").startswith("sip:dave@"),
       "a French caller: dave rings out (%.1f s) and the next agent answers (%s)"
       % (took, c3.get("contact")))
    ok(2.0 <= took <= 8.0, "the ring timeout came from the queue's 3 s (took %.1f s)" % took)
    # 4. Refusals.
    c4 = call("unknown queue", "en", queue="nowhere")
    ok(c4["final"] == 404, "an INVITE to an unknown queue gets 404 (%s)" % c4["final"])
    c5 = call("withheld number", "en", caller="anonymous")
    ok(c5["final"] == 200,
       "a caller who withholds the number (From: anonymous) is routed and answered (%s)"
       % c5["final"])

    # 5. Concurrent calls, from another process writing to the same data
    #    directory first: bob and dave go offline.
    for a in ("bob", "dave"):
        r = sbctl("status", "acme", a, "offline")
        ok(r.returncode == 0, "%s set offline by another process on the data directory" % a)
    # The three hold their calls until the fourth has had its answer (30 s at
    # most), and it is placed once all three are answered: on a slow machine
    # the calls take as long as they take, and all three are on at the time.
    results = []
    up = [threading.Event() for _ in range(3)]
    release = threading.Event()
    threads = [threading.Thread(target=lambda i=i: results.append(call(
        "concurrent %d" % i, "en", hold=30, answered=up[i], release=release)))
               for i in range(3)]
    for t in threads:
        t.start()
    end = time.monotonic() + 30
    for e in up:
        e.wait(max(0.0, end - time.monotonic()))
    late = call("fourth while all busy", "en")
    release.set()
    for t in threads:
        t.join(30)
    answered = sorted(r.get("contact", "?").split("@")[0][4:] for r in results if r["final"] == 200)
    ok(answered == ["alice", "carol", "erin"],
       "three concurrent callers get three different agents: %s" % answered)
    ok(late["final"] == 486, "a fourth caller while all three are on calls is turned away (%s)"
       % late["final"])
    c6 = call("after the rush", "en")
    ok(c6["final"] == 200, "once they hang up, the next caller is answered (%s)" % c6.get("contact"))
    time.sleep(0.5)
finally:
    signal.alarm(150)

try:
    # Stop Kamailio and the agents, then compare the agents' logs with the
    # engine's call records.
    if "kam" in dir() and kam.poll() is None:
        kam.terminate()
        try:
            kam.wait(15)
        except subprocess.TimeoutExpired:
            kam.kill()
    ok(kam.returncode in (0, -15), "kamailio stopped cleanly (exit %s)" % kam.returncode)
    seen = [json.loads(line) for line in open(uas_log)] if os.path.exists(uas_log) else []
    invites = {}
    for ev in seen:
        if ev["event"] == "invite":
            invites.setdefault(ev["call_id"], []).append(ev["agent"])
            if ev.get("sb_call") != ev["call_id"]:
                ok(False, "X-Switchboard-Call header carries the engine's call id")
    bye_by = {ev["call_id"]: ev["agent"] for ev in seen if ev["event"] == "bye"}
    # Every call the engine took has a record; a call refused before the
    # engine took it (404, 403) has none, and sbctl prints its error in its
    # place, says how many it could not read and exits 1.
    r = subprocess.run([LUA, os.path.join(EXAMPLE, "sbctl.lua"), DATA, POLICIES, "calls", "acme"]
                       + list(calls), env=env, capture_output=True, text=True, timeout=30)
    records = {}
    for line in r.stdout.splitlines():
        rec = json.loads(line)
        records[rec["id"]] = rec
    taken = sorted(cid for cid, c in calls.items() if c["final"] not in (404, 403))
    refused = sorted(cid for cid, c in calls.items() if c["final"] in (404, 403))
    read = sorted(cid for cid, rec in records.items() if "error" not in rec)
    ok(read == taken, "read the %d call records of the %d calls the engine took, through the "
       "binding (read %d)" % (len(taken), len(taken), len(read)))
    want = "sbctl: calls: %d of %d not read\n" % (len(refused), len(calls)) if refused else ""
    ok(sorted(records) == sorted(calls) and r.stderr == want and
       r.returncode == (1 if refused else 0),
       "... and for the %d refused before it (404, 403) an error in the record's place: "
       "%r, exit %d" % (len(refused), r.stderr, r.returncode))
    for cid, c in calls.items():
        rec = records.get(cid, {})
        label = c["label"]
        if c["final"] == 200:
            agent = c["contact"].split("@")[0][4:]
            tried = [a.get("agent") for a in rec.get("attempts_detail", [])]
            ok(rec.get("outcome") == "answered" and rec.get("agent") == agent,
               "%s: the record says answered by %s (record: %s by %s)"
               % (label, agent, rec.get("outcome"), rec.get("agent")))
            ok(invites.get(cid) == tried,
               "%s: the INVITEs reached exactly the agents the engine rang, in order: %s"
               % (label, tried))
            ok(bye_by.get(cid) == agent, "%s: the BYE reached %s and ended the call" % (label, agent))
        elif c["final"] in (404, 403):
            ok(rec.get("code") is not None and cid not in invites,
               "%s: no call in the engine, no INVITE to any agent" % label)
        else:
            ok(rec.get("outcome") == "abandoned" and cid not in invites,
               "%s: the engine's record says abandoned (%s), no agent was rung"
               % (label, rec.get("outcome")))
    c2rec = records.get(c2["call_id"], {}).get("attempts_detail", [])
    ok([a.get("outcome") for a in c2rec][:1] == ["busy"] and c2rec[0].get("agent") == "bob",
       "the Spanish caller's record: bob busy, then answered")
    c3rec = records.get(c3["call_id"], {}).get("attempts_detail", [])
    ok([a.get("outcome") for a in c3rec][:1] == ["no_answer"] and c3rec[0].get("agent") == "dave",
       "the French caller's record: dave no answer, then answered")
    r = sbctl("agents", "acme")
    statuses = {json.loads(l)["id"]: json.loads(l)["status"] for l in r.stdout.splitlines()}
    ok(all(s in ("available", "offline") for s in statuses.values()),
       "no agent is left reserved or on a call: %s" % statuses)

    # Which Lua did the module's lua_* references bind to inside Kamailio?
    # (app_lua loads the script, and so the module, before Kamailio forks.)
    to, n = {}, 0
    for path in [kam_log]:
        with open(path, errors="replace") as f:
            for line in f:
                if "switchboard.so" not in line or "binding file" not in line:
                    continue
                parts = line.split()
                try:
                    src = parts[parts.index("file") + 1]
                    dst = parts[parts.index("to") + 1]
                    sym = line.split("`", 1)[1].split("'", 1)[0]
                except (ValueError, IndexError):
                    continue
                if src.endswith("switchboard.so") and (sym.startswith("lua_") or
                                                       sym.startswith("luaL_")):
                    n += 1
                    to[os.path.basename(dst)] = to.get(os.path.basename(dst), 0) + 1
    ok(n > 0 and list(to) == ["liblua5.1.so.0"],
       "inside Kamailio the module's lua_* references bound to app_lua's "
       "liblua5.1.so.0 (%d bindings: %s)" % (n, to))
    if n_failed:
        log = [l for l in open(kam_log, errors="replace") if "binding file" not in l]
        diag("kamailio log (tail):\n" + "".join(log[-40:]))
finally:
    cleanup()
print("1..%d" % n_tests)
sys.exit(1 if n_failed else 0)
