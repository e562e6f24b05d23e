#!/usr/bin/env python3
"""test_binding.t — the Python binding against the real library (TAP for prove).

Covers: the ctypes structures against the compiler's layout of switchboard.h,
provisioning and a full call cycle, who ended a call (by: the record's
ended_by, a failed call, the refusals), an account evicted with its live calls,
lists read a page at a time, errors carrying code/name/message/field,
an injected clock with a tick firing a ring timeout, tick_for's share of
time (more left when it runs out, its argument checked), policy upload (cases,
compile errors, a policy failing at run time falling back), policy tools
without an engine (also under budgets given), code names, API keys, two engines on one data directory (also from
several threads at once: nobody double-booked), calls from withheld numbers
(caller left out, None or ""), call records and retention
(listing, access requests as JSON and CSV, legal holds, sweeps with a
progress callback, the audit log, erasure, aggregates), backups, master key
rotation (the records and an API key found with the new key, the old one
refused; a directory in use and bad keys refused, nothing changed), deferred
sync and sync_progress, changed() (per thread, per event in a batch),
defer_stop_signals (the stop signals blocked inside write transactions, as
the clock sees), batches (events in one commit, a failing one refused alone,
an exception in the block, nesting, another thread's batch waited for, close waiting for
one, a failing commit raised), closing (also from the clock, log and progress functions, and while a
call runs on another thread), arguments C cannot take (NUL bytes, None, NaN,
numbers beyond a C integer), the results of ended threads freed, an engine
refused in the child of a fork.

Run by `make test` (SB_BUILD names the build directory, relative to the
repository root) or by hand: bindings/python/test_binding.t. Under a
sanitizer build the script re-runs itself with the sanitizer runtime
preloaded (Python is not instrumented, so it must come first).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, os.pardir, os.pardir))
BUILD = os.path.join(ROOT, os.environ.get("SB_BUILD", "build"))
LIB = os.environ.get("SWITCHBOARD_LIB") or os.path.join(BUILD, "libswitchboard.so")
POLICIES = os.path.join(ROOT, "policies")


def sanitizer_runtimes(lib):
    """Paths of libasan/libubsan the library needs, in preload order."""
    try:
        out = subprocess.run(["ldd", lib], capture_output=True, text=True, check=False).stdout
    except OSError:
        return []
    found = {}
    for line in out.splitlines():
        m = re.match(r"\s*(lib(asan|ubsan)\.so[^\s]*)\s+=>\s+(\S+)", line)
        if m:
            found[m.group(2)] = m.group(3)
    return [found[k] for k in ("asan", "ubsan") if k in found]


if not os.path.exists(LIB):
    print("1..0 # SKIP no %s (run make)" % os.path.relpath(LIB, ROOT))
    sys.exit(0)
os.environ["SWITCHBOARD_LIB"] = LIB
if not os.environ.get("SB_PY_PRELOADED"):
    rts = sanitizer_runtimes(LIB)
    if rts:
        env = dict(os.environ, SB_PY_PRELOADED="1",
                   LD_PRELOAD=":".join(rts + [p for p in [os.environ.get("LD_PRELOAD")] if p]))
        # Python's own allocations are not ours to chase: leaks off.
        env["ASAN_OPTIONS"] = "detect_leaks=0:" + os.environ.get("ASAN_OPTIONS", "")
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable] + sys.argv, env)

sys.path.insert(0, HERE)
import switchboard as sb  # noqa: E402

# --------------------------------------------------------------------------
# TAP

_n = 0
_failed = 0


def ok(cond, name):
    global _n, _failed
    _n += 1
    if not cond:
        _failed += 1
    print("%sok %d - %s" % ("" if cond else "not ", _n, name), flush=True)
    return cond


def is_(got, want, name):
    r = ok(got == want, name)
    if not r:
        diag("got:      %r\nexpected: %r" % (got, want))
    return r


def skip(reason):
    global _n
    _n += 1
    print("ok %d # SKIP %s" % (_n, reason), flush=True)


def diag(msg):
    for line in str(msg).splitlines():
        sys.stderr.write("# %s\n" % line)


def raises(fn, cls, name, code=None, field=None):
    """fn() must raise cls (with code and field when given); returns the error."""
    try:
        fn()
    except cls as e:
        good = (code is None or e.code == code) and (field is None or e.field == field)
        ok(good, name)
        if not good:
            diag("got %r" % (e,))
        return e
    except Exception as e:  # noqa: BLE001
        ok(False, name)
        diag("raised %r" % (e,))
        return None
    ok(False, name)
    diag("nothing raised")
    return None


def find(actions, type_, call=None):
    for a in actions:
        if a["type"] == type_ and (call is None or a.get("call") == call):
            return a
    return None


TMP = tempfile.mkdtemp(prefix="sb-pytest-")


class Clock:
    def __init__(self, ms=1767603600000):  # Monday 2026-01-05 09:00 UTC
        self.ms = ms

    def __call__(self):
        return self.ms


def agent(id_, **extra):
    d = {"id": id_, "devices": {"softphone": "sip:%s@pbx.example" % id_,
                                "mobile": "tel:+447700900001"},
         "status": "available"}
    d.update(extra)
    return d


def provision(eng, clock, n=3):
    eng.account_put({"id": "acme", "name": "Acme"})
    for i in range(n):
        eng.agent_put("acme", agent("ag%d" % i))
        clock.ms += 1000
    eng.queue_put("acme", {"id": "support", "policy": "longest-idle", "ring_timeout": 20,
                           "members": [{"agent": "ag%d" % i} for i in range(n)]})


# --------------------------------------------------------------------------

def test_layout():
    """The ctypes structures must match the compiler's view of the header."""
    cc = os.environ.get("CC", "cc")
    if not shutil.which(cc):
        skip("no C compiler for the layout check")
        return
    cfg = [f for f, _ in sb._Config._fields_]
    act = [f for f, _ in sb._Action._fields_]
    src = ['#include "switchboard.h"', "#include <stddef.h>", "#include <stdio.h>",
           "int main(void) {",
           'printf("config %zu\\n", sizeof(sb_config));',
           'printf("action %zu\\n", sizeof(sb_action));']
    src += ['printf("config.%s %%zu\\n", offsetof(sb_config, %s));' % (f, f) for f in cfg]
    src += ['printf("action.%s %%zu\\n", offsetof(sb_action, %s));' % (f, f) for f in act]
    src += ["return 0; }"]
    c = os.path.join(TMP, "layout.c")
    exe = os.path.join(TMP, "layout")
    with open(c, "w") as f:
        f.write("\n".join(src))
    r = subprocess.run([cc, "-I", os.path.join(ROOT, "engine", "include"), c, "-o", exe],
                       capture_output=True, text=True)
    if not ok(r.returncode == 0, "the layout probe compiles (every field the binding "
                                 "declares exists in switchboard.h)"):
        diag(r.stderr)
        return
    want = {}
    for line in subprocess.run([exe], capture_output=True, text=True).stdout.splitlines():
        k, v = line.split()
        want[k] = int(v)
    got = {"config": ctypes_sizeof(sb._Config), "action": ctypes_sizeof(sb._Action)}
    for f in cfg:
        got["config." + f] = getattr(sb._Config, f).offset
    for f in act:
        got["action." + f] = getattr(sb._Action, f).offset
    is_(got, want, "sb_config and sb_action: same size and offsets as the C compiler's")


def ctypes_sizeof(t):
    import ctypes
    return ctypes.sizeof(t)


def test_basics():
    is_(sb.version(), "0.2.0", "version() is the library's")
    is_(sb.strerror(sb.ENOTFOUND), "SB_ENOTFOUND: not found", "strerror names the code")
    is_([sb.code_name(c) for c in (sb.ENOTFOUND, sb.EHOLD, 0, 5)],
        ["SB_ENOTFOUND", "SB_EHOLD", "SB_OK", "SB_E?"],
        "code_name: the code's name (sb_code_name), SB_E? for a number that is no code")
    raises(lambda: sb.code_name(1 << 40), ValueError,
           "code_name(2**40): ValueError, not the name of 0")
    raises(lambda: sb.code_name("SB_EINVAL"), TypeError, "code_name of a string: TypeError")
    ok(sb.library_path() == LIB, "the library came from SWITCHBOARD_LIB")
    is_(sb.redact("caller +44 20 7946 0001 or (030) 1234567, queue q7, 12 s"),
        "caller [number] or [number], queue q7, 12 s", "redact reads numbers as [number]")
    is_(sb.redact("+1 +2 +3 +12 +34"), "+1 +2 +3 [number] [number]",
        "redact: room for text that grows")
    raises(lambda: sb.redact("a\0b"), sb.InvalidError, "redact refuses a NUL byte",
           field="text")


def test_cycle():
    clock = Clock()
    logs = []
    with sb.Engine(os.path.join(TMP, "cycle"), policy_dir=POLICIES, sync="none",
                   clock=clock, log=lambda lvl, line: logs.append((lvl, line))) as eng:
        r = eng.account_put({"id": "acme", "name": "Acme"})
        ok(r["id"] == "acme" and r["created"] is True, "account_put returns the account, created")
        provision(eng, clock)
        is_([a["id"] for a in eng.account_list()], ["acme"], "account_list")
        is_(sorted(a["id"] for a in eng.agent_list("acme")), ["ag0", "ag1", "ag2"], "agent_list")
        is_([q["id"] for q in eng.queue_list("acme")], ["support"], "queue_list")
        q = eng.queue_get("acme", "support")
        is_(q["policy"], "longest-idle", "queue_get returns the document")

        clock.ms += 5000
        acts = eng.submit("acme", {"type": "offer", "call": "c1", "queue": "support",
                                   "caller": "+44 20 7946 0001"})
        ok(isinstance(acts, list) and all(isinstance(a, dict) for a in acts),
           "submit returns a list of dicts")
        ring = find(acts, "ring", "c1")
        is_(ring, {"type": "ring", "account": "acme", "call": "c1", "agent": "ag0",
                   "device": "softphone", "uri": "sip:ag0@pbx.example", "queue": "support",
                   "timeout": 20, "attempt": 1},
            "the offer rings the agent idle longest, on the softphone, for 20 s, its attempt 1")
        is_(eng.agent_get("acme", "ag0")["status"], "reserved", "ringing agent is reserved")
        clock.ms += 4000
        acts = eng.submit("acme", type="ring_result", call="c1", agent="ag0", outcome="answered")
        ok(find(acts, "connect", "c1") is not None, "answered: connect (keyword-argument event)")
        is_(eng.agent_get("acme", "ag0")["status"], "on_call", "the agent is on the call")
        acts = eng.submit("acme", type="agent_status", agent="ag0", status="paused",
                          reason="break")
        a = eng.agent_get("acme", "ag0")
        is_((acts, a["status"], a.get("next_status"), a.get("next_reason")),
            ([], "on_call", "paused", "break"),
            "a pause asked for on the call waits for its end: next_status, next_reason")
        ok("next_status" not in eng.agent_get("acme", "ag1"), "an agent with none has no "
                                                              "next_status")
        live = eng.call_list("acme")
        is_([(c["id"], c["state"], c.get("agent")) for c in live], [("c1", "connected", "ag0")],
            "call_list: the live call, connected to ag0, without its numbers"
            if all("caller" not in c for c in live) else "call_list shows numbers")
        is_(eng.call_list("acme", "support"), live, "call_list by queue: the same")
        e = raises(lambda: eng.call_list("acme", "nosuch"), sb.NotFoundError,
                   "call_list of a queue the account does not have")
        is_(e and e.actions, [], "a refusal's .actions: none (only a commit whose sync "
                                 "failed has some; tests/cli/examples.t)")
        clock.ms += 60000
        acts = eng.submit("acme", '{"type":"hangup","call":"c1"}')
        end = find(acts, "end", "c1")
        ok(end is not None and end["reason"] == "answered", "hangup (JSON text event): ended "
                                                             "as answered")
        is_(find(acts, "agent"), {"type": "agent", "account": "acme", "agent": "ag0",
                                  "status": "paused", "reason": "break"},
            "and ag0 takes the pause it asked for: an agent action says so")
        a = eng.agent_get("acme", "ag0")
        ok(a["status"] == "paused" and a["reason"] == "break" and "next_status" not in a,
           "agent_get: ag0 paused for a break, nothing next")
        is_(eng.call_list("acme"), [], "call_list: an ended call is not live")
        c = eng.call_get("acme", "c1")
        ok(c["outcome"] == "answered" and c["agent"] == "ag0" and c["talk"] == 60.0,
           "call_get: the record says answered by ag0 after 60 s of talk")
        is_(eng.agent_get("acme", "ag0")["stats"]["calls_taken"], 1, "agent stats count the call")
        st = eng.stats()
        is_((st["events"]["offer"], st["events"]["ring_result"], st["events"]["hangup"]),
            (1, 1, 1), "stats count the three events")

        # memberships
        m = eng.member_put("acme", "support", "ag2", tier=2, position=9)
        ok(isinstance(m, dict), "member_put with keyword fields")
        members = {x["agent"]: x for x in eng.queue_get("acme", "support")["members"]}
        ok(members["ag2"]["tier"] == 2 and members["ag2"]["position"] == 9,
           "the membership changed")
        eng.member_delete("acme", "support", "ag2")
        ok("ag2" not in [x["agent"] for x in eng.queue_get("acme", "support")["members"]],
           "member_delete removes it")
        eng.agent_delete("acme", "ag2")
        raises(lambda: eng.agent_get("acme", "ag2"), sb.NotFoundError, "agent_delete removes "
               "the agent", sb.ENOTFOUND)

        # a waiting call served when an agent frees up, by an event of its own
        eng.submit("acme", type="agent_status", agent="ag0", status="paused", reason="lunch")
        eng.submit("acme", type="agent_status", agent="ag1", status="offline")
        acts = eng.submit("acme", type="offer", call="w1", queue="support",
                          caller="+15550000001", attrs={"language": "de"})
        ok(find(acts, "wait", "w1") and not find(acts, "ring"), "nobody free: the call waits")
        acts = eng.submit("acme", type="agent_status", agent="ag1", status="available")
        ok(find(acts, "ring", "w1") and find(acts, "ring", "w1")["agent"] == "ag1",
           "an agent coming back rings the waiting call (actions for other calls)")
        acts = eng.submit("acme", type="abandon", call="w1")
        ok(find(acts, "cancel", "w1") and find(acts, "end", "w1")["reason"] == "abandoned",
           "abandon cancels the ring and ends the call")
        ok(all(isinstance(l[0], str) and isinstance(l[1], str) for l in logs),
           "log callback gets (level, line) strings")


def test_evict():
    """account_evict: the account account_delete refuses while its calls are
    live goes with them, an end action for each coming back."""
    clock = Clock()
    with sb.Engine(os.path.join(TMP, "evict"), policy_dir=POLICIES, sync="none",
                   clock=clock, log=lambda *a: None) as eng:
        provision(eng, clock, n=1)
        eng.queue_put("acme", {"id": "backup", "members": [{"agent": "ag0"}]})
        for i, q in enumerate(("support", "support", "backup")):
            eng.submit("acme", type="offer", call="e%d" % i, queue=q, caller="+4420794600%02d" % i)
        raises(lambda: eng.account_delete("acme"), sb.StateError,
               "account_delete of an account with live calls: StateError", sb.ESTATE, "account")
        acts = eng.account_evict("acme")
        is_(sorted((a["type"], a["call"], a["queue"], a["reason"], a["account"]) for a in acts),
            [("end", "e0", "support", "account deleted", "acme"),
             ("end", "e1", "support", "account deleted", "acme"),
             ("end", "e2", "backup", "account deleted", "acme")],
            "account_evict: an end action for each live call, ringing or waiting (reason "
            "'account deleted', its queue)")
        raises(lambda: eng.account_get("acme"), sb.NotFoundError, "the account is gone")
        raises(lambda: eng.account_evict("acme"), sb.NotFoundError,
               "account_evict of an account that does not exist: NotFoundError", sb.ENOTFOUND,
               "account")
        raises(lambda: eng.account_evict("acme\0x"), sb.InvalidError,
               "account_evict of an id holding a NUL byte: InvalidError", sb.EINVAL, "account")
        raises(lambda: eng.account_evict(None), TypeError, "account_evict(None): TypeError")
        eng.account_put({"id": "idle"})
        is_(eng.account_evict("idle"), [], "an account without live calls: evicted, no actions")
        is_(eng.account_list(), [], "and gone")


def ids(items):
    return [x["id"] for x in items]


def test_pages():
    """Lists a page at a time: (items, next) and the iterators over every page."""
    clock = Clock()
    with sb.Engine(os.path.join(TMP, "pages"), policy_dir=POLICIES, sync="none",
                   clock=clock, log=lambda *a: None) as eng:
        provision(eng, clock, n=5)
        eng.queue_put("acme", {"id": "backup", "members": [{"agent": "ag4"}]})
        eng.queue_put("acme", {"id": "alpha"})
        page, nxt = eng.agent_list_page("acme", limit=2)
        is_((ids(page), nxt), (["ag0", "ag1"], "ag1"),
            "agent_list_page(limit=2): the first two in id order, next the last id given")
        page, nxt = eng.agent_list_page("acme", nxt, 2)
        is_((ids(page), nxt), (["ag2", "ag3"], "ag3"), "the page after it")
        page, nxt = eng.agent_list_page("acme", nxt, 2)
        is_((ids(page), nxt), (["ag4"], None), "the last page: next None")
        is_(eng.agent_list_page("acme"), (eng.agent_list("acme"), None),
            "no after, no limit: the whole list, next None")
        is_(eng.agent_list_page("acme", "", 5), (eng.agent_list("acme"), None),
            "after '' and a limit of all of them: the whole list, next None")
        is_(eng.agent_list_page("acme", "ag4", 2), ([], None), "after the last: []")
        is_([ids(p) for p in eng.agent_pages("acme", 2)], [["ag0", "ag1"], ["ag2", "ag3"], ["ag4"]],
            "agent_pages(acct, 2): every page in turn")
        is_([ids(p) for p in eng.agent_pages("acme")], [["ag0", "ag1", "ag2", "ag3", "ag4"]],
            "agent_pages(acct): pages of 1000, one here")
        is_([ids(p) for p in eng.queue_pages("acme", 1)], [["alpha"], ["backup"], ["support"]],
            "queue_pages(acct, 1): queues in id order, one a page")
        page, nxt = eng.queue_list_page("acme", "alpha", 1)
        is_((ids(page), nxt), (["backup"], "backup"), "queue_list_page(acct, 'alpha', 1)")
        for i in range(5):
            eng.submit("acme", type="offer", call="c%d" % i, queue="backup" if i == 3 else "support",
                       caller="+4420794600%02d" % i)
        page, nxt = eng.call_list_page("acme", limit=2)
        is_((ids(page), nxt), (["c0", "c1"], "c1"), "call_list_page(limit=2): c0 c1, next c1")
        is_([ids(p) for p in eng.call_pages("acme", limit=2)], [["c0", "c1"], ["c2", "c3"], ["c4"]],
            "call_pages(acct, limit=2): every live call, a page at a time")
        is_([ids(p) for p in eng.call_pages("acme", "support", 2)], [["c0", "c1"], ["c2", "c4"]],
            "call_pages(acct, queue, 2): that queue's")
        page, nxt = eng.call_list_page("acme", "support", "c1", 1)
        is_((ids(page), nxt), (["c2"], "c2"), "call_list_page(acct, queue, after, 1)")
        is_(eng.call_list_page("acme", "backup"), (eng.call_list("acme", "backup"), None),
            "call_list_page(acct, queue): as call_list, next None")
        raises(lambda: eng.agent_list_page("acme", "no such id!", 1), sb.InvalidError,
               "an after that is no id: InvalidError", sb.EINVAL, "after")
        raises(lambda: eng.call_list_page("acme", None, "a b"), sb.InvalidError,
               "a call page's after that is no id: InvalidError", sb.EINVAL, "after")
        raises(lambda: eng.queue_list_page("nobody"), sb.NotFoundError,
               "a page of an account that does not exist: NotFoundError", sb.ENOTFOUND, "account")
        raises(lambda: eng.call_list_page("acme", "nosuch"), sb.NotFoundError,
               "a page of a queue the account does not have: NotFoundError", sb.ENOTFOUND, "queue")
        raises(lambda: next(eng.call_pages("acme", "nosuch")), sb.NotFoundError,
               "call_pages of such a queue: NotFoundError at the first page", sb.ENOTFOUND, "queue")
        for v, cls in ((-1, ValueError), (1.5, ValueError), (float("nan"), ValueError),
                       ("2", TypeError), (None, TypeError)):
            raises(lambda: eng.agent_list_page("acme", None, v), cls,
                   "agent_list_page(limit=%r): %s" % (v, cls.__name__))
            raises(lambda: eng.agent_pages("acme", v), cls,
                   "agent_pages(limit=%r): %s at the call" % (v, cls.__name__))
        raises(lambda: eng.agent_list_page("acme", 5), TypeError, "after=5: TypeError")
        raises(lambda: eng.agent_list_page("acme", "ag\0"), sb.InvalidError,
               "an after holding a NUL byte: InvalidError", sb.EINVAL, "after")


def test_errors():
    clock = Clock()
    with sb.Engine(os.path.join(TMP, "errors"), policy_dir=POLICIES, sync="none",
                   clock=clock, log=lambda *a: None) as eng:
        provision(eng, clock)
        e = raises(lambda: eng.submit("acme", type="offer", call="b1", queue="support",
                                      caller="12345"),
                   sb.InvalidError, "bad caller: InvalidError", sb.EINVAL, "caller")
        if e:
            ok(isinstance(e, sb.SwitchboardError), "a subclass of SwitchboardError")
            is_((e.name, e.code, e.field), ("SB_EINVAL", -32000, "caller"),
                "carries name, code and field")
            ok("E.164" in e.message, "and the engine's message (%s)" % e.message)
            ok(str(e).startswith("SB_EINVAL: ") and "(field caller)" in str(e),
               "str() reads '%s'" % e)
            is_(e.args, ("SB_EINVAL", -32000, e.message, "caller"),
                "args are (name, code, message, field)")
        raises(lambda: eng.submit("acme", type="offer", call="b1", queue="nope",
                                  caller="+15550000001"),
               sb.NotFoundError, "unknown queue: NotFoundError naming the queue field",
               sb.ENOTFOUND, "queue")
        raises(lambda: eng.submit("acme", {"type": "offer", "call": "b1", "queue": "support",
                                           "caller": "+15550000001", "colour": "red"}),
               sb.InvalidError, "unknown event key named", sb.EINVAL, "colour")
        raises(lambda: eng.submit("acme", '{"type":"offer",'), sb.InvalidError,
               "malformed JSON text refused", sb.EINVAL)
        raises(lambda: eng.call_get("acme", "b1"), sb.NotFoundError,
               "and nothing of those calls exists")
        eng.submit("acme", type="offer", call="d1", queue="support", caller="+15550000001")
        raises(lambda: eng.submit("acme", type="offer", call="d1", queue="support",
                                  caller="+15550000001"),
               sb.ExistsError, "the same call id twice: ExistsError", sb.EEXIST)
        raises(lambda: eng.submit("acme", type="ring_result", call="d1", agent="ag2",
                                  outcome="answered"),
               sb.StateError, "ring result from an agent not ringing: StateError", sb.ESTATE)
        raises(lambda: eng.agent_put("acme", {"id": "z", "devices": {"fax": "x"}}),
               sb.InvalidError, "bad agent document names devices.fax", sb.EINVAL,
               "devices.fax")
        raises(lambda: eng.queue_put("acme", {"id": "bq", "members": [{"agent": "ag0"},
                                                                      {"agent": "ghost"}]}),
               sb.InvalidError, "queue naming an unknown agent: members[1].agent", sb.EINVAL,
               "members[1].agent")
        # A number past what JSON carries to the engine (a C int64): a dict
        # is no JSON text, so no "malformed JSON", but the field and what
        # is wrong with it, as for any other bad value; nothing is written.
        e = raises(lambda: eng.agent_put("acme", {"id": "big", "weight": 10**30}),
                   sb.InvalidError, "an agent's weight=10**30: InvalidError naming weight",
                   sb.EINVAL, "weight")
        if e:
            ok("too big a number" in e.message and "malformed" not in e.message
               and "1000000000000000000000000000000" in e.message,
               "said as a number too big, not malformed JSON (%s)" % e.message)
        raises(lambda: eng.agent_get("acme", "big"), sb.NotFoundError, "and no agent was made")
        e = raises(lambda: eng.queue_put("acme", {"id": "bq", "members": [
                       {"agent": "ag0"}, {"agent": "ag1", "position": -2**64}]}),
                   sb.InvalidError, "a member's position=-2**64: its path, members[1].position",
                   sb.EINVAL, "members[1].position")
        if e:
            ok("too small a number" in e.message, "said as too small (%s)" % e.message)
        raises(lambda: eng.submit("acme", type="offer", call="b1", queue="support",
                                  caller="+15550000001", attrs={"tags": [1, 2**80]}),
               sb.InvalidError, "an offer's attrs holding 2**80: attrs.tags[1]", sb.EINVAL,
               "attrs.tags[1]")
        e = raises(lambda: eng.queue_put("acme", {"id": "bq", "ring_timeout": 1e30}),
                   sb.InvalidError, "ring_timeout=1e30 (a float, whole): InvalidError",
                   sb.EINVAL, "ring_timeout")
        if e:
            ok("between" in e.message, "said as out of its range, as 10**6 is (%s)" % e.message)
        raises(lambda: eng.agent_get("other", "ag0"), sb.NotFoundError,
               "another account's ids do not exist")
        raises(lambda: eng.submit("acme", 42), TypeError,
               "an event that is a number: TypeError (a wrong type)")
        raises(lambda: eng.submit("acme", "42"), sb.InvalidError,
               "an event's JSON text that is not an object: InvalidError", sb.EINVAL)
        raises(lambda: eng.submit("acme", {"type": "hangup", "call": object()}), TypeError,
               "an event Python cannot encode: TypeError")
        raises(lambda: eng.submit("acme"), TypeError, "no event at all: TypeError")
        raises(lambda: eng.agent_get("acme", "ag0\0x"), sb.InvalidError,
               "an id with a NUL byte is refused, not cut short", sb.EINVAL)
        raises(lambda: sb.Engine(os.path.join(TMP, "errors"), sync="sometimes"), ValueError,
               "an unknown sync mode: ValueError")
        raises(lambda: sb.Engine(os.path.join(TMP, "errors"), colour=1), TypeError,
               "an unknown config keyword: TypeError")
        # Budgets a C field cannot hold are refused, not wrapped by ctypes
        # (2**64 instructions as 0, which switches the budget off).
        for kw in ({"policy_instructions": 1 << 64}, {"quarantine_after": -1},
                   {"policy_wall_ms": -1}, {"policy_memory": -1}, {"map_max": 1 << 64}):
            raises(lambda: sb.Engine(os.path.join(TMP, "errors"), sync="none", **kw), ValueError,
                   "Engine(%s=%d): ValueError" % next(iter(kw.items())))
        # erasure_journal_days reaches the engine, whose range names it.
        raises(lambda: sb.Engine(os.path.join(TMP, "errors"), sync="none", log="none",
                                 erasure_journal_days=36601), sb.InvalidError,
               "Engine(erasure_journal_days=36601): the engine's range refuses it", sb.EINVAL)
        # The two 32-bit bounds, a hook's milliseconds and the failures
        # before quarantine, count as 2**32 - 1 past it, as the Lua and Go
        # bindings take them.
        for kw in ({"policy_wall_ms": 1 << 32}, {"quarantine_after": 1 << 40},
                   {"policy_wall_ms": float(1 << 33), "quarantine_after": (1 << 32) + 1}):
            try:
                sb.Engine(os.path.join(TMP, "errors"), sync="none", log="none", **kw).close()
                ok(True, "Engine(%s): opens, as 2**32 - 1" % kw)
            except Exception as e:  # noqa: BLE001 - reported
                ok(False, "Engine(%s): opens, as 2**32 - 1 (%r)" % (kw, e))
    raises(lambda: eng.stats(), sb.InvalidError, "a closed engine raises InvalidError",
           sb.EINVAL)
    eng.close()
    ok(eng.closed, "close() twice is harmless")


def test_clock_and_tick():
    clock = Clock()
    with sb.Engine(os.path.join(TMP, "tick"), policy_dir=POLICIES, sync="none", clock=clock,
                   log=lambda *a: None) as eng:
        provision(eng, clock)
        is_(eng.next_deadline(), None, "no timers: next_deadline() is None")
        clock.ms += 10000
        start = clock.ms
        acts = eng.submit("acme", type="offer", call="t1", queue="support",
                          caller="+15550000003")
        first = find(acts, "ring", "t1")["agent"]
        is_(eng.next_deadline(), start + 20000, "the ring timeout is due 20 s later on the "
                                                "injected clock")
        clock.ms = start + 19999
        is_(eng.tick(), [], "a millisecond early, tick() fires nothing")
        clock.ms = start + 20000
        acts = eng.tick()
        ok(find(acts, "cancel", "t1") and find(acts, "cancel", "t1")["agent"] == first,
           "at the timeout, tick() cancels the unanswered ring")
        again = find(acts, "ring", "t1")
        ok(again is not None, "and the call is decided again and rings (%s)"
           % (again and again["agent"]))
        is_(eng.agent_get("acme", first)["stats"]["no_answers"], 1,
            "the first agent has one no-answer")
        is_(eng.call_get("acme", "t1")["attempts"], 2, "two attempts in the call")
        eng.submit("acme", type="abandon", call="t1")
        # An engine whose clock raises keeps running on the system time, and
        # says so through its log function, each time, without a traceback.
        lines, err = [], []

        def boom():
            raise RuntimeError("clock lost, call +44 20 7946 0001")

        bad = sb.Engine(os.path.join(TMP, "tick"), clock=boom, sync="none",
                        log=lambda lvl, line: lines.append((lvl, line)))
        old, sys.stderr = sys.stderr, _Capture(err)
        try:
            bad.submit("acme", type="offer", call="t2", queue="support", caller="+15550000003")
            t2 = bad.call_get("acme", "t2")
            bad.submit("acme", type="abandon", call="t2")
        finally:
            sys.stderr = old
            bad.close()
        ok(t2["offered_ms"] > 1767603600000 + 10 ** 9 or t2["offered_ms"] < 1767603600000,
           "a clock that raises falls back to the system time")
        failed = [x for x in lines if "clock function" in x[1]]
        ok(len(failed) >= 2 and all(lvl == "error" for lvl, _ in failed),
           "each failing reading is reported through the log function, level error (%d: %r)"
           % (len(failed), failed[:1]))
        is_(failed and failed[0][1],
            "the clock function raised RuntimeError: clock lost, call [number]; this reading "
            "is the system time", "... naming the exception, its number redacted")
        is_("".join(err), "", "and nothing goes to stderr (no traceback)")
        # Without a log function: stderr, once, no traceback.
        err = []
        old, sys.stderr = sys.stderr, _Capture(err)
        try:
            with sb.Engine(os.path.join(TMP, "tick"), clock=boom, sync="none",
                           log_level="error") as quiet:
                quiet.submit("acme", type="offer", call="t3", queue="support",
                             caller="+15550000003")
                quiet.submit("acme", type="abandon", call="t3")
                quiet.tick()
        finally:
            sys.stderr = old
        text = "".join(err)
        is_(text, "switchboard: the clock function raised RuntimeError: clock lost, call "
                  "[number]; this reading is the system time (said once; give Engine a log "
                  "function to see each)\n",
            "without a log function: one line on stderr for all its failures, no traceback")


SLOW_WAIT = """-- spins (a millisecond or so of work), then waits 1 s
local P = {}
function P.route(call, agents, ctx)
  local x = 0
  for i = 1, 150000 do x = x + i end
  return { wait = 1 }
end
return P
"""


def test_log_modes():
    """log="buffer", "none" and "stderr", as the Lua binding takes them."""
    d = os.path.join(TMP, "log_modes")
    with sb.Engine(d, sync="none", log="buffer", clock=lambda: "soon") as eng:
        eng.account_put({"id": "acme"})
        got = eng.logs()
        ok(isinstance(got, list) and got and got[0]["level"] == "error"
           and "the clock function returned 'soon'" in got[0]["message"],
           "log=\"buffer\": the clock's failure is an error line in logs()")
        is_(eng.logs(), [], "... and logs() forgets what it gave")
        for i in range(300):
            eng.account_put({"id": "acme"})  # a failing clock reading each
        got = eng.logs()
        ok(len(got) == 256 and all(g["level"] == "error" for g in got),
           "the last 256 lines are kept, as Lua's buffer (%d)" % len(got))
    raises(lambda: eng.logs(), sb.InvalidError, "logs() of a closed engine: InvalidError", sb.EINVAL)
    with sb.Engine(d, sync="none", log="none", clock=lambda: "soon") as eng:
        eng.account_put({"id": "acme"})
        is_(eng.logs(), [], "log=\"none\": nothing kept, logs() is []")
    r = subprocess.run([sys.executable, "-c", "import switchboard as sb\n"
                        "e = sb.Engine(%r, sync='none', log='stderr', clock=lambda: 'soon')\n"
                        "e.account_put({'id': 'acme'})\n" % d],
                       env=dict(os.environ, PYTHONPATH=os.path.dirname(sb.__path__[0])),
                       stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, timeout=60)
    ok(r.returncode == 0 and b"the clock function returned 'soon'" in r.stderr,
       "log=\"stderr\": the engine's default, on stderr (%r)" % r.stderr[-120:])
    for v, cls in (("file", ValueError), ("", ValueError), (42, TypeError)):
        raises(lambda: sb.Engine(d, sync="none", log=v), cls,
               "log=%r: %s, nothing opened" % (v, cls.__name__))


def test_manual_clock():
    """clock=<ms>, set_clock and clock(), as the Lua binding's clock = ms."""
    t0 = 1767571200000
    with sb.Engine(os.path.join(TMP, "manual_clock"), policy_dir=POLICIES, sync="none",
                   log="none", clock=t0) as eng:
        is_(eng.clock(), t0, "clock=<ms>: the engine's time starts there")
        eng.account_put({"id": "acme"})
        is_(eng.account_get("acme")["created_ms"], t0, "... and dates what it does")
        eng.agent_put("acme", agent("ag0"))
        eng.queue_put("acme", {"id": "support", "ring_timeout": 20, "members": [{"agent": "ag0"}]})
        eng.submit("acme", type="offer", call="m1", queue="support", caller="+15550000007")
        is_(eng.next_deadline(), t0 + 20000, "a ring times out 20 s on")
        eng.set_clock(t0 + 20000)
        is_(eng.clock(), t0 + 20000, "set_clock moves it")
        ok(find(eng.tick(), "cancel", "m1"), "and tick() fires the ring timeout")
        eng.set_clock(float(t0 + 30000))
        is_(eng.clock(), t0 + 30000, "a float holding a whole number is taken")
        for v, cls in ((-1, ValueError), (1.5, ValueError), ("5", TypeError)):
            raises(lambda: eng.set_clock(v), cls, "set_clock(%r): %s" % (v, cls.__name__))
        is_(eng.clock(), t0 + 30000, "... and leaves the clock as it was")
        eng.submit("acme", type="abandon", call="m1")
    raises(lambda: eng.clock(), sb.InvalidError, "clock() of a closed engine: InvalidError")
    raises(lambda: eng.set_clock(t0), sb.InvalidError, "set_clock() of a closed engine: InvalidError")
    with sb.Engine(os.path.join(TMP, "manual_clock"), sync="none", log="none") as eng:
        now = int(time.time() * 1000)
        ok(abs(eng.clock() - now) < 60000, "no clock: clock() is the system time")
        raises(lambda: eng.set_clock(t0), sb.StateError,
               "set_clock without a manual clock: StateError", sb.ESTATE, "clock")
    with sb.Engine(os.path.join(TMP, "manual_clock"), sync="none", log="none",
                   clock=lambda: t0 + 5) as eng:
        is_(eng.clock(), t0 + 5, "a clock function: clock() is its reading")
    raises(lambda: sb.Engine(os.path.join(TMP, "manual_clock"), clock=-5), ValueError,
           "clock=-5: ValueError")


def test_tick_for():
    clock = Clock()
    with sb.Engine(os.path.join(TMP, "tick_for"), policy_dir=POLICIES, sync="none", clock=clock,
                   log=lambda *a: None) as eng:
        provision(eng, clock)
        clock.ms += 10000
        start = clock.ms
        acts = eng.submit("acme", type="offer", call="f1", queue="support",
                          caller="+15550000004")
        first = find(acts, "ring", "f1")["agent"]
        clock.ms = start + 20000
        acts, more = eng.tick_for(60000)
        ok(find(acts, "cancel", "f1") and find(acts, "cancel", "f1")["agent"] == first
           and find(acts, "ring", "f1"),
           "tick_for(60000) at the ring timeout: the cancel and the next ring, as tick() gives")
        ok(more is False and eng.next_deadline() > clock.ms,
           "... with time to spare: more is False, no timer left due")
        eng.submit("acme", type="abandon", call="f1")

        # Calls whose policy costs a millisecond or more, all waking at once.
        eng.policy_put("acme", "slow", SLOW_WAIT)
        eng.queue_put("acme", {"id": "slow", "policy": "slow"})
        for i in range(8):
            eng.submit("acme", type="offer", call="s%d" % i, queue="slow",
                       caller="+15550000005")
        clock.ms += 1000
        for v, cls in ((-1, ValueError), (1.5, ValueError), (float("inf"), ValueError),
                       (float("nan"), ValueError), ("5", TypeError), (None, TypeError)):
            raises(lambda: eng.tick_for(v), cls, "tick_for(%r): %s" % (v, cls.__name__))
        ok(eng.next_deadline() <= clock.ms, "... and nothing fired: the wake-ups are still due")
        acts, more = eng.tick_for(1)
        ok(isinstance(acts, list) and more is True and eng.next_deadline() <= clock.ms,
           "tick_for(1): ends with wake-ups still due, more is True")
        calls = 0
        while more and calls < 20:
            _, more = eng.tick_for(1)
            calls += 1
        ok(not more and eng.next_deadline() > clock.ms,
           "called again (%d more times) it fires the rest, more False" % calls)
        clock.ms += 1000
        acts, more = eng.tick_for(0)
        ok(more is False and eng.next_deadline() > clock.ms,
           "tick_for(0): no limit, every due wake-up fired at once")
        # Past the C argument's 32 bits a share counts as 2**32 - 1 ms, as in
        # the Lua and Go bindings: not refused, and not wrapped (2**32 + 1 as
        # 1 ms would leave wake-ups due).
        for v in ((1 << 32) + 1, float(1 << 40), 1 << 70):
            clock.ms += 1000
            acts, more = eng.tick_for(v)
            ok(more is False and eng.next_deadline() > clock.ms,
               "tick_for(%r): as 2**32 - 1 ms, every due wake-up fired" % v)
        for i in range(8):
            eng.submit("acme", type="abandon", call="s%d" % i)


ROUTE_FIRST = """-- rings the first agent in position order
local P = {}
function P.route(call, agents, ctx)
  local best
  for _, a in ipairs(agents) do
    if not best or a.position < best.position then best = a end
  end
  if not best then return { wait = 10 } end
  return { ring = best.id, device = "mobile", timeout = 7 }
end
return P
"""

MOBILE = {"softphone": "sip:x@pbx.example", "mobile": "tel:+447700900001"}
CASES = [{"name": "rings the first position",
          "agents": [{"id": "b", "position": 2, "devices": MOBILE},
                     {"id": "a", "position": 1, "devices": MOBILE}],
          "expect": {"action": "ring", "agents": ["a"], "timeout": 7}}]

FAILING = """local P = {}
function P.route(call, agents, ctx)
  local t = nil
  return { ring = t.id }
end
return P
"""


def test_policies():
    clock = Clock()
    logs = []
    with sb.Engine(os.path.join(TMP, "policies"), policy_dir=POLICIES, sync="none",
                   clock=clock, log=lambda lvl, line: logs.append(line)) as eng:
        provision(eng, clock)
        r = eng.policy_put("acme", "first", ROUTE_FIRST, CASES)
        ok(r["name"] == "first" and re.fullmatch(r"[0-9a-f]{16}", r["version"]),
           "policy_put with cases: name and version %s" % r["version"])
        listed = {p["name"]: p for p in eng.policy_list("acme")}
        ok(listed.get("first", {}).get("source") == "account" and
           listed["first"]["version"] == r["version"], "policy_list shows the account policy")
        ok(listed.get("longest-idle", {}).get("source") == "shared",
           "and the shared ones from policy_dir")
        g = eng.policy_get("acme", "first")
        ok(g["source"] == "account" and g["code"] == ROUTE_FIRST and g["version"] == r["version"],
           "policy_get: the upload with its code")
        raises(lambda: eng.policy_get("acme", "no-such"), sb.NotFoundError,
               "policy_get of no policy: NotFoundError", sb.ENOTFOUND, "name")
        v = eng.policy_put("acme", "spare", ROUTE_FIRST, if_version="")["version"]
        raises(lambda: eng.policy_put("acme", "spare", ROUTE_FIRST + "-- 2\n", if_version=""),
               sb.StateError, "policy_put if_version='' over an upload: StateError", sb.ESTATE,
               "if_version")
        v2 = eng.policy_put("acme", "spare", ROUTE_FIRST + "-- 2\n", if_version=v)["version"]
        hist = eng.policy_versions("acme", "spare")
        ok([x["version"] for x in hist["versions"]] == [v2, v] and hist["versions"][0]["current"],
           "policy_versions: the two uploads, newest first")
        ok(eng.policy_version("acme", "spare", v)["code"] == ROUTE_FIRST,
           "policy_version: the first one's code")
        raises(lambda: eng.policy_version("acme", "spare", "XYZ"), sb.InvalidError,
               "policy_version of a malformed version: InvalidError", sb.EINVAL, "version")
        page = eng.policy_versions("acme", "spare", limit=1)
        ok(len(page["versions"]) == 1 and
           eng.policy_versions("acme", "spare", before=page["next"])["versions"][0]["version"] == v,
           "policy_versions pages with before/next")
        ok(eng.policy_versions_forget("acme", "spare", v) == {"name": "spare", "forgotten": 1},
           "policy_versions_forget: the earlier version dropped")
        raises(lambda: eng.policy_versions_forget("acme", "spare", v2), sb.StateError,
               "policy_versions_forget of the version in use: StateError", sb.ESTATE, "version")
        raises(lambda: eng.policy_delete("acme", "spare", if_version=v), sb.StateError,
               "policy_delete if_version of a replaced version: StateError", sb.ESTATE,
               "if_version")
        ok(eng.policy_delete("acme", "spare", if_version=v2) ==
           {"name": "spare", "deleted": True, "now": None},
           "policy_delete of an upload no queue uses, if_version the one there")
        raises(lambda: eng.policy_delete("acme", "longest-idle"), sb.NotFoundError,
               "a shared policy cannot be deleted through the account", sb.ENOTFOUND, "name")
        eng.queue_put("acme", {"id": "firstq", "policy": "first",
                               "members": [{"agent": "ag1", "position": 2},
                                           {"agent": "ag2", "position": 1}]})
        acts = eng.submit("acme", type="offer", call="p1", queue="firstq",
                          caller="+15550000001")
        ring = find(acts, "ring", "p1")
        ok(ring and (ring["agent"], ring["device"], ring["timeout"]) == ("ag2", "mobile", 7),
           "the uploaded policy decides: ag2 on the mobile for 7 s")
        eng.submit("acme", type="abandon", call="p1")

        e = raises(lambda: eng.policy_put("acme", "broken", "local P = {\nfunction P.route(\n"),
                   sb.PolicyError, "a policy that does not compile: PolicyError",
                   sb.EPOLICY, "source")
        if e:
            ok(re.search(r"broken\S*:\d+:", e.message), "the message has file:line (%s)"
               % e.message.splitlines()[0])
        e = raises(lambda: eng.policy_put("acme", "first", ROUTE_FIRST.replace(
            "timeout = 7", "timeout = 9"), CASES), sb.PolicyError,
            "a policy failing its cases: PolicyError", sb.EPOLICY)
        is_({p["name"]: p for p in eng.policy_list("acme")}["first"]["version"], r["version"],
            "and the stored version did not change")

        eng.policy_put("acme", "failing", FAILING)
        eng.queue_put("acme", {"id": "failq", "policy": "failing",
                               "members": [{"agent": "ag0"}]})
        before = eng.stats()
        acts = eng.submit("acme", type="offer", call="f1", queue="failq",
                          caller="+15550000002")
        ok(find(acts, "ring", "f1") and find(acts, "ring", "f1")["agent"] == "ag0",
           "a policy failing at run time: the call falls back and rings")
        after = eng.stats()
        ok(after["policy"]["failures"] == before["policy"]["failures"] + 1 and
           after["decisions"]["fallback"] == before["decisions"]["fallback"] + 1,
           "the failure and the fallback are counted")
        ok(any(re.search(r"failing\S*:4:", l) for l in logs),
           "and logged with file:line through the log callback")
        trace = eng.call_get("acme", "f1").get("trace", [])
        ok(any(t.get("decision") == "error" and t.get("fallback") is True and
               "failing.lua:4:" in t.get("detail", "") for t in trace),
           "the call's trace holds the error and the fallback")
        eng.submit("acme", type="abandon", call="f1")

        r = eng.reload()
        ok(isinstance(r, dict) and "changed" in r, "reload() re-reads policy_dir: %r" % r)


def test_policy_tools():
    ok(sb.policy_check("first.lua", ROUTE_FIRST) is None, "policy_check: a clean policy")
    e = raises(lambda: sb.policy_check("lint.lua", "x = 1\nlocal P = {}\n"
                                       "function P.route(call, agents, ctx) return {} end\n"
                                       "return P\n"),
               sb.PolicyError, "policy_check: a global assignment is a problem", sb.EPOLICY)
    if e:
        ok(e.problems and all(re.match(r"lint\S*:\d+: ", p) for p in e.problems),
           "problems are file:line lines: %r" % e.problems)
    rep = sb.policy_test("first.lua", ROUTE_FIRST, CASES)
    is_((rep["passed"], rep["failed"]), (1, 0), "policy_test: the case passes")
    bad = [dict(CASES[0], expect={"action": "wait"})]
    rep = sb.policy_test("first.lua", ROUTE_FIRST, json.dumps(bad))
    ok(rep["failed"] == 1 and rep["cases"][0]["ok"] is False and "got" in rep["cases"][0],
       "a failing case comes back in the report, with what it got")
    raises(lambda: sb.policy_test("first.lua", ROUTE_FIRST, "[{"), sb.InvalidError,
           "malformed cases: InvalidError", sb.EINVAL, "cases")

    # The budgets an engine would run them under (sb_policy_check_cfg,
    # sb_policy_test_cfg): 10,000 load instructions for a budget of 1,000.
    slow = ROUTE_FIRST.replace("  local best\n",
                               "  local n = 0\n  for i = 1, 20000 do n = n + i end\n"
                               "  local best\n")
    loop = "local n = 0\nfor i = 1, 20000 do n = n + i end\n" + slow
    ok(sb.policy_check("loop.lua", loop) is None, "policy_check: a loop at the top level "
                                                  "fits the default budgets")
    e = raises(lambda: sb.policy_check("loop.lua", loop, policy_instructions=1000),
               sb.PolicyError, "... and not policy_instructions=1000", sb.EPOLICY, "source")
    ok(e is not None and "instruction budget" in e.message, "... saying so: %s" % e)
    ok(sb.policy_check("loop.lua", loop, policy_instructions=0, policy_wall_ms=None) is None,
       "policy_instructions=0 (no budget) passes it; a budget given as None is left out")
    is_(sb.policy_test("slow.lua", slow, CASES)["failed"], 0,
        "policy_test: a slow route passes under the default budgets")
    rep = sb.policy_test("slow.lua", slow, CASES, policy_instructions=1000)
    ok(rep["failed"] == 1 and "budget" in json.dumps(rep["cases"][0]),
       "... and fails its case under policy_instructions=1000: %r" % rep["cases"][0])
    raises(lambda: sb.policy_check("loop.lua", loop, policy_memory=-1), ValueError,
           "a budget below 0: ValueError")
    is_(sb.policy_test("slow.lua", slow, CASES, policy_wall_ms=1 << 32)["failed"], 0,
        "policy_wall_ms past 32 bits: as 2**32 - 1 ms (Lua and Go alike), the case passes")
    raises(lambda: sb.policy_test("slow.lua", slow, CASES, policy_wall_ms=-1), ValueError,
           "policy_wall_ms=-1: ValueError, not wrapped")
    raises(lambda: sb.policy_check("loop.lua", loop, policy_instructions="1000"), TypeError,
           "a budget that is a string: TypeError")
    raises(lambda: sb.policy_check("loop.lua", loop, quarantine_after=1), TypeError,
           "a setting that is no policy budget: TypeError")
    keys = sb.policy_keygen()
    ok(re.fullmatch(r"[0-9a-f]{64}", keys["public_key"]) and
       re.fullmatch(r"[0-9a-f]{128}", keys["secret_key"]), "policy_keygen: hex key pair")
    signed = sb.policy_sign(ROUTE_FIRST, keys["secret_key"])
    ok(signed.startswith(ROUTE_FIRST) and "--@signature " in signed, "policy_sign appends "
                                                                      "the signature line")
    is_(sb.policy_verify(signed, keys["public_key"]), None,
        "policy_verify: the signed source verifies with its public key")
    ok(sb.Engine.policy_verify is sb.policy_verify, "and is the engine's too")
    e = raises(lambda: sb.policy_verify(signed.replace("return", "return ", 1),
                                        keys["public_key"]),
               sb.PolicyError, "policy_verify: a source changed after signing is refused",
               sb.EPOLICY, "signature")
    if e:
        is_(e.message, "the signature does not verify with the key",
            "with the engine's message")
    other = sb.policy_keygen()
    e = raises(lambda: sb.policy_verify(signed, other["public_key"]), sb.PolicyError,
               "policy_verify: another key's public key is refused", sb.EPOLICY, "signature")
    if e:
        is_(e.message, "the signature does not verify with the key", "the same message")
    e = raises(lambda: sb.policy_verify(signed + "x = 1\n", keys["public_key"]), sb.PolicyError,
               "policy_verify: text after the signature line is refused", sb.EPOLICY,
               "signature")
    if e:
        ok(e.message.startswith("changed after signing"), "saying so: %s" % e.message)
    e = raises(lambda: sb.policy_verify(ROUTE_FIRST, keys["public_key"]), sb.PolicyError,
               "policy_verify: an unsigned source is refused", sb.EPOLICY, "signature")
    if e:
        ok(e.message.startswith("unsigned"), "saying so: %s" % e.message)
    raises(lambda: sb.policy_verify(signed, keys["secret_key"]), sb.InvalidError,
           "policy_verify: a key that is not 64 hex characters (the secret one) is InvalidError",
           sb.EINVAL, "public_key")
    d = os.path.join(TMP, "signed")
    with sb.Engine(d, sync="none", require_signed_policies=True,
                   policy_public_key=keys["public_key"], log=lambda *a: None) as eng:
        eng.account_put({"id": "acme"})
        ok(eng.policy_put("acme", "first", signed)["name"] == "first",
           "a signed policy loads where signatures are required")
        raises(lambda: eng.policy_put("acme", "unsigned", ROUTE_FIRST), sb.SwitchboardError,
               "an unsigned one is refused")


def test_apikeys():
    with sb.Engine(os.path.join(TMP, "keys"), sync="none", log=lambda *a: None) as eng:
        eng.account_put({"id": "acme"})
        k = eng.apikey_create("acme")
        ok(k["key"].startswith("sbk_") and k["key_id"], "apikey_create: a key and its id")
        ok(eng.apikey_verify("acme", k["key"]) is True, "apikey_verify: True for the key")
        ok(eng.apikey_verify("acme", k["key"] + "x") is False, "False for another")
        ok(eng.apikey_verify("nobody", k["key"]) is False, "False for an unknown account")
        eng.apikey_revoke("acme", k["key_id"])
        ok(eng.apikey_verify("acme", k["key"]) is False, "False once revoked")
        is_(eng.apikey_list("acme"), [], "apikey_list: none left")
        k1, k2 = eng.apikey_create("acme"), eng.apikey_create("acme")
        is_(sorted(k["key_id"] for k in eng.apikey_list("acme")),
            sorted([k1["key_id"], k2["key_id"]]), "apikey_list: the two keys' ids")
        ok(all(set(k) == {"key_id", "created_ms"} for k in eng.apikey_list("acme")),
           "apikey_list: ids and when they were made, never the keys")
        eng.apikey_revoke("acme", k1["key_id"])
        is_(eng.apikey_list("acme"), [{"key_id": k2["key_id"], "created_ms": k2["created_ms"]}],
            "apikey_list after a revoke: the other key alone")
        ok(eng.apikey_verify("acme", k2["key"]) is True, "the key left still verifies")
        raises(lambda: eng.apikey_list("nobody"), sb.NotFoundError,
               "apikey_list of an unknown account: NotFoundError", sb.ENOTFOUND, "account")


def from_another_thread(eng, account, call):
    """The call as a read on another thread (its own read transaction) finds
    it, or None."""
    out = []

    def look():
        try:
            out.append(eng.call_get(account, call))
        except sb.NotFoundError:
            out.append(None)

    t = threading.Thread(target=look)
    t.start()
    t.join()
    return out[0]


def seen_from_another_thread(eng, account, call):
    return from_another_thread(eng, account, call) is not None


def test_changed():
    """eng.changed(): whether the thread's last call committed a change."""
    clock = Clock()
    with sb.Engine(os.path.join(TMP, "changed"), policy_dir=POLICIES, sync="none",
                   clock=clock, log=lambda *a: None) as eng:
        is_(eng.changed(), False, "changed() before any call: False")
        provision(eng, clock)
        is_(eng.changed(), True, "after a queue put: True")
        eng.agent_get("acme", "ag0")
        is_(eng.changed(), False, "after a read: False")
        eng.agent_put("acme", agent("ag9"))
        is_(eng.changed(), True, "after an agent put: True")
        eng.submit("acme", type="agent_status", agent="ag9", status="available")
        is_(eng.changed(), False, "an agent's status set to the one it has: False")
        eng.submit("acme", type="agent_status", agent="ag9", status="paused", reason="break")
        is_(eng.changed(), True, "set to another: True")
        raises(lambda: eng.submit("acme", type="hangup", call="nope"), sb.NotFoundError,
               "a refused event raises")
        is_(eng.changed(), False, "and changed nothing: False")
        eng.submit("acme", type="offer", call="c1", queue="support", caller="+442079460001")
        is_(eng.changed(), True, "after an offer: True")
        other = {}
        t = threading.Thread(target=lambda: other.update(
            before=eng.changed(), ok=eng.agent_get("acme", "ag0") and eng.changed()))
        t.start()
        t.join()
        is_(other, {"before": False, "ok": False},
            "another thread's changed() is its own (False before its call and after its read)")
        is_(eng.changed(), True, "... and leaves this thread's as it was")
        eng.sync()
        is_(eng.changed(), False, "sync() changed nothing in the store: False")
        with eng.batch():
            eng.submit("acme", type="agent_status", agent="ag9", status="available")
            in_batch = [eng.changed()]
            eng.submit("acme", type="agent_status", agent="ag9", status="available")
            in_batch.append(eng.changed())
            raises(lambda: eng.submit("acme", type="hangup", call="nope"), sb.NotFoundError,
                   "a refused event in the batch raises")
            in_batch.append(eng.changed())
            eng.submit("acme", type="hangup", call="c1")
            in_batch.append(eng.changed())
        is_(in_batch, [True, False, False, True],
            "in a batch, each event's own: a change, the same status again after it, a "
            "refusal, a hangup")
        is_(eng.changed(), True, "the batch's commit leaves it as its last event left it")


def test_defer_stop_signals():
    """sb.defer_stop_signals(on): write transactions run with the stop
    signals blocked, as the clock (called inside each one) sees."""
    import signal
    stops = {signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU}
    seen = []
    clock = Clock()

    def probe():
        seen.append(stops <= signal.pthread_sigmask(signal.SIG_BLOCK, []))
        return clock.ms

    raises(lambda: sb.defer_stop_signals(1), TypeError, "defer_stop_signals(1): TypeError")
    raises(lambda: sb.defer_stop_signals(None), TypeError, "defer_stop_signals(None): TypeError")
    raises(lambda: sb.defer_stop_signals("on"), TypeError, "defer_stop_signals('on'): TypeError")
    with sb.Engine(os.path.join(TMP, "stopsig"), policy_dir=POLICIES, sync="none",
                   clock=probe, log=lambda *a: None) as eng:
        provision(eng, clock)
        ok(seen and not any(seen), "off (the default): no write runs with them blocked")
        try:
            sb.defer_stop_signals(True)
            del seen[:]
            eng.agent_put("acme", agent("ag9"))
            ok(seen and all(seen), "on: an agent put runs with SIGTSTP, SIGTTIN and SIGTTOU "
                                   "blocked")
            del seen[:]
            eng.submit("acme", type="offer", call="c1", queue="support", caller="+442079460001")
            ok(seen and all(seen), "on: an offer too")
            is_(stops & signal.pthread_sigmask(signal.SIG_BLOCK, []), set(),
                "and the thread's mask is put back as the call returns")
            is_(eng.call_get("acme", "c1")["state"], "ringing", "calls work with it on")
        finally:
            sb.defer_stop_signals(False)
        del seen[:]
        eng.submit("acme", type="hangup", call="c1")
        ok(seen and not any(seen), "off again: nothing blocked")


def test_batch():
    """with eng.batch(): a thread's events in one transaction, one commit."""
    clock = Clock()
    d = os.path.join(TMP, "batch")
    eng = sb.Engine(d, policy_dir=POLICIES, sync="defer", clock=clock, log=lambda *a: None)
    provision(eng, clock)
    with eng.batch() as b:
        ok(b is eng, "with eng.batch() as b: b is the engine")
        a1 = eng.submit("acme", type="offer", call="b1", queue="support", caller="+442079460001")
        ok(find(a1, "ring", "b1"), "an offer in the batch: its ring comes back at once")
        is_(eng.call_get("acme", "b1")["state"], "ringing", "the batch's thread reads its events")
        ok(not seen_from_another_thread(eng, "acme", "b1"),
           "another thread does not see b1 before the batch ends")
        raises(lambda: eng.submit("acme", type="ring_result", call="nope", agent="ag0",
                                  outcome="answered"),
               sb.NotFoundError, "a failing event in the batch raises, refused alone",
               sb.ENOTFOUND, "call")
        a2 = eng.submit("acme", type="offer", call="b2", queue="support", caller="+442079460002")
        ok(find(a2, "ring", "b2") and find(a2, "ring", "b2")["agent"] != find(a1, "ring",
                                                                              "b1")["agent"],
           "the batch goes on: b2 rings another agent (b1's event seen)")
    ok(seen_from_another_thread(eng, "acme", "b1") and seen_from_another_thread(eng, "acme", "b2"),
       "after the block: b1 and b2 stored, seen by another thread")
    with sb.Engine(d, sync="defer", log=lambda *a: None) as other:
        is_(sorted(c["id"] for c in other.call_list("acme")), ["b1", "b2"],
            "and by another engine on the data directory")

    # An exception in the block: the events before it are committed all the same.
    try:
        with eng.batch():
            eng.submit("acme", type="offer", call="b3", queue="support", caller="+442079460003")
            raise KeyError("the gateway's own bug")
    except KeyError:
        ok(True, "an exception raised in the block goes on after the batch ends")
    is_(eng.call_get("acme", "b3")["state"], "ringing",
        "the events before it were committed (there is no rollback)")

    # Nested: the inner block joins the outer one, which commits.
    with eng.batch():
        with eng.batch():
            eng.submit("acme", type="abandon", call="b3")
        ok(eng.call_get("acme", "b3").get("outcome") == "abandoned" and
           from_another_thread(eng, "acme", "b3").get("state") == "ringing",
           "a nested block joins the outer batch: nothing committed at its end")
        raises(eng.close, sb.StateError, "close() inside the block: StateError", sb.ESTATE)
    ok(not eng.closed and eng.call_get("acme", "b3").get("outcome") == "abandoned",
       "the outer block committed the abandon; the engine is still open")

    # Another thread's batch open: this thread's block waits for its end;
    # close() waits for both.
    inside, release = threading.Event(), threading.Event()
    errors = []

    def hold(call):
        try:
            with eng.batch():
                inside.set()
                release.wait(30)
                eng.submit("acme", type="offer", call=call, queue="support",
                           caller="+442079460001")
        except sb.SwitchboardError as e:
            errors.append(e)

    t = threading.Thread(target=hold, args=("b4",))
    t.start()
    inside.wait(30)
    def empty_batch():
        with eng.batch():
            pass

    second = threading.Thread(target=empty_batch)
    second.start()
    time.sleep(0.2)
    ok(second.is_alive(), "a batch while another thread's is open waits")
    release.set()
    t.join()
    second.join(30)
    ok(not second.is_alive() and not errors and seen_from_another_thread(eng, "acme", "b4"),
       "and begins once it has ended (%r)" % errors)
    inside.clear()
    release.clear()
    t = threading.Thread(target=hold, args=("b5",))
    t.start()
    inside.wait(30)
    closer = threading.Thread(target=eng.close)
    closer.start()
    time.sleep(0.2)
    ok(closer.is_alive() and not eng.closed, "close() waits for another thread's open batch")
    release.set()
    t.join()
    closer.join(30)
    ok(eng.closed, "and closes once the block has ended")
    ok(len(errors) == 1 and isinstance(errors[0], sb.InvalidError) and
       "closing" in errors[0].message,
       "a submit in the block while close() waits: InvalidError, closing (%r)" % errors)

    # sb_batch_end failing: a commit past the file size limit (RLIMIT_FSIZE;
    # sync="defer" writes data.mdb with write(), where "none" maps it).
    try:
        import resource
        import signal
    except ImportError:
        skip("no resource module for the failing commit")
        return
    with sb.Engine(d, policy_dir=POLICIES, sync="defer", clock=clock,
                   log=lambda *a: None) as eng:
        used = eng.stats()["lmdb"]["used_bytes"]
        old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
        got, acts = None, []
        try:
            resource.setrlimit(resource.RLIMIT_FSIZE, (used, old_limit[1]))
            with eng.batch():
                for i in range(300):
                    acts.append(eng.submit("acme", type="offer", call="f%d" % i, queue="support",
                                           caller="+442079460001", attrs={"pad": "x" * 200}))
        except sb.SwitchboardError as e:
            got = e
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
            signal.signal(signal.SIGXFSZ, old_handler)
        ok(len(acts) == 300 and (find(acts[0], "ring", "f0") or find(acts[0], "wait", "f0")),
           "the batch's events gave their actions at once")
        ok(isinstance(got, sb.FullError) and got.code == sb.EFULL,
           "the failing commit raises as the block ends: FullError (%r)" % (got,))
        if got:
            ok("commit the batch" in got.message, "with the engine's message: %s" % got.message)
        raises(lambda: eng.call_get("acme", "f0"), sb.NotFoundError,
               "none of the batch's events happened (f0 not found)", sb.ENOTFOUND)
        a = eng.submit("acme", type="offer", call="g1", queue="support", caller="+442079460001")
        ok(find(a, "wait", "g1") or find(a, "ring", "g1"), "the engine goes on afterwards")


def test_two_engines():
    d = os.path.join(TMP, "shared")
    clock = Clock()
    a = sb.Engine(d, policy_dir=POLICIES, sync="none", clock=clock, log=lambda *x: None)
    b = sb.Engine(d, policy_dir=POLICIES, sync="none", clock=clock, log=lambda *x: None)
    try:
        provision(a, clock)
        is_(b.account_get("acme")["id"], "acme", "engine B reads what engine A wrote")
        acts = a.submit("acme", type="offer", call="s1", queue="support", caller="+15550000001")
        who = find(acts, "ring", "s1")["agent"]
        is_(b.call_get("acme", "s1")["state"], "ringing", "B sees A's call ringing")
        ok(find(b.submit("acme", type="ring_result", call="s1", agent=who, outcome="answered"),
                "connect", "s1"), "B answers it")
        ok(find(a.submit("acme", type="hangup", call="s1"), "end", "s1"), "A hangs it up")
        v = a.policy_put("acme", "first", ROUTE_FIRST)["version"]
        is_({p["name"]: p["version"] for p in b.policy_list("acme")}.get("first"), v,
            "a policy uploaded through A is B's too")
        b.queue_put("acme", {"id": "fq", "policy": "first",
                             "members": [{"agent": "ag1", "position": 1}]})
        ring = find(b.submit("acme", type="offer", call="s2", queue="fq",
                             caller="+15550000001"), "ring", "s2")
        ok(ring and ring["timeout"] == 7, "and decides B's calls")
        b.submit("acme", type="abandon", call="s2")

        # Four threads, two on each engine, racing for three agents.
        errors, booked, lock = [], {}, threading.Lock()
        double = []

        def worker(eng, tid, n):
            for i in range(n):
                call = "th%d-%d" % (tid, i)
                try:
                    acts = eng.submit("acme", type="offer", call=call, queue="support",
                                      caller="+15550001%03d" % i)
                    ring = find(acts, "ring", call)
                    if ring is None:
                        eng.submit("acme", type="abandon", call=call)
                        continue
                    with lock:
                        if ring["agent"] in booked:
                            double.append((ring["agent"], booked[ring["agent"]], call))
                        booked[ring["agent"]] = call
                    eng.submit("acme", type="ring_result", call=call, agent=ring["agent"],
                               outcome="answered")
                    with lock:
                        del booked[ring["agent"]]
                    eng.submit("acme", type="hangup", call=call)
                except sb.SwitchboardError as e:
                    if e.code != sb.ENOTFOUND:  # a call ended by another thread's action
                        errors.append(e)

        ths = [threading.Thread(target=worker, args=(a if t % 2 else b, t, 60))
               for t in range(4)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        is_(errors, [], "4 threads on 2 engines x 60 call cycles: no errors")
        is_(double, [], "no agent was ever handed two calls")
        is_(sorted(x["status"] for x in a.agent_list("acme")), ["available"] * 3,
            "every agent is free at the end")
    finally:
        a.close()
        b.close()


def test_defer_and_reopen():
    d = os.path.join(TMP, "defer")
    with sb.Engine(d, sync="defer", log=lambda *x: None) as eng:
        eng.account_put({"id": "acme"})
        ok(eng.sync() is None, "sync() after deferred commits")
    with sb.Engine(d, sync="group", log=lambda *x: None) as eng:
        is_(eng.account_get("acme")["id"], "acme", "reopened: the account is there")
        eng.account_delete("acme")
        raises(lambda: eng.account_get("acme"), sb.NotFoundError, "account_delete removes it")


def test_sync_progress():
    """sync_progress() with sync="defer": a commit is written but not durable
    until the next commit's own sync covers it, or sync(); where a
    sync="none" engine opened the directory first, ordered is False."""
    with sb.Engine(os.path.join(TMP, "progress"), sync="defer", log=lambda *x: None) as eng:
        w0, d0, o0 = eng.sync_progress()
        eng.account_put({"id": "acme"})
        w1, d1, o1 = eng.sync_progress()
        ok(o1 and w1 > w0 and d1 < w1,
           "sync_progress after a deferred commit: written %d grew, durable %d below it"
           % (w1, d1))
        eng.agent_put("acme", agent("alice"))
        w2, d2, o2 = eng.sync_progress()
        ok(o2 and w2 > w1 and d2 >= w1,
           "the next commit's own sync made the one before durable (written %d, durable %d, "
           "first %d)" % (w2, d2, w1))
        eng.sync()
        w3, d3, o3 = eng.sync_progress()
        ok(o3 and w3 == w2 and d3 >= w3,
           "after sync(): durable %d reaches written %d" % (d3, w3))
        ok(all(isinstance(x, int) for x in (w3, d3)) and o3 is True,
           "sync_progress returns (int, int, bool)")
    raises(eng.sync_progress, sb.InvalidError, "sync_progress on a closed engine: InvalidError")
    d = os.path.join(TMP, "unordered")
    with sb.Engine(d, sync="none", log=lambda *x: None):
        with sb.Engine(d, sync="defer", log=lambda *x: None) as eng:
            eng.account_put({"id": "acme"})
            w, dur, ordered = eng.sync_progress()
            ok(ordered is False and dur == 0,
               "a sync=\"none\" engine opened the directory first: not ordered, durable 0, "
               "not raised (written %d, durable %d)" % (w, dur))


def test_withheld():
    """Calls from withheld numbers: an offer whose caller is left out, None or
    "" is routed; call_get shows no caller; the record is found by its called
    number alone, with caller None, and erased by it."""
    clock = Clock()
    with sb.Engine(os.path.join(TMP, "withheld"), policy_dir=POLICIES, sync="none",
                   clock=clock, log=lambda *a: None) as eng:
        provision(eng, clock)
        for cid, how in (("w1", {}), ("w2", {"caller": None}), ("w3", {"caller": ""})):
            acts = eng.submit("acme", type="offer", call=cid, queue="support", **how)
            ok(find(acts, "ring", cid) is not None,
               "an offer with %s is a withheld call, and rings" % (how or "no caller"))
            eng.submit("acme", type="abandon", call=cid)
        acts = eng.submit("acme", {"type": "offer", "call": "w4", "queue": "support",
                                   "called": "+442079469001"})
        c = eng.call_get("acme", "w4")
        ok("caller" not in c and c.get("called") == "+442079469001",
           "call_get: no caller, the number dialled")
        clock.ms += 2000
        eng.submit("acme", type="ring_result", call="w4", agent=find(acts, "ring")["agent"],
                   outcome="answered")
        eng.submit("acme", type="hangup", call="w4")
        ex = eng.records_export("acme", "+44 20 7946 9001")
        recs = ex["records"]
        ok([r["id"] for r in recs] == ["w4"] and recs[0]["role"] == "called" and
           recs[0]["caller"] is None, "records_export of the number dialled: role called, "
                                      "caller None")
        csv = eng.records_export("acme", "+442079469001", format="csv")["csv"]
        ok("\r\nw4,called,,+442079469001," in csv, "in CSV an empty caller field")
        e = raises(lambda: eng.submit("acme", type="offer", call="w5", queue="support",
                                      caller="anonymous"),
                   sb.InvalidError, "caller 'anonymous': InvalidError", sb.EINVAL, "caller")
        ok(e is not None and "withheld" in e.message,
           "whose message says to leave it out (%s)" % (e and e.message))
        is_(eng.erase("acme", "+442079469001")["deleted"], 1,
            "erase of the number dialled deletes the withheld call's record")


def test_ended_by():
    """An event's "by" says who ended a call: a hangup by the agent is kept in
    the record as ended_by, a ringing call the system hangs up is failed, and
    what the engine refuses of it raises naming the field by."""
    clock = Clock()
    with sb.Engine(os.path.join(TMP, "ended_by"), policy_dir=POLICIES, sync="none",
                   clock=clock, log=lambda *a: None) as eng:
        provision(eng, clock)
        acts = eng.submit("acme", type="offer", call="e1", queue="support",
                          caller="+442079460005")
        clock.ms += 2000
        eng.submit("acme", type="ring_result", call="e1", agent=find(acts, "ring")["agent"],
                   outcome="answered")
        clock.ms += 30000
        acts = eng.submit("acme", type="hangup", call="e1", by="agent")
        end = find(acts, "end", "e1")
        ok(end is not None and end["reason"] == "answered", "a hangup by the agent: answered")
        c = eng.call_get("acme", "e1")
        is_((c["outcome"], c.get("ended_by")), ("answered", "agent"),
            "call_get: the record says ended_by agent")

        acts = eng.submit("acme", {"type": "offer", "call": "e2", "queue": "support",
                                   "caller": "+442079460005"})
        ok(find(acts, "ring", "e2") is not None, "e2 rings")
        raises(lambda: eng.submit("acme", type="hangup", call="e2", by="agent"), sb.StateError,
               "the agent hanging up a ringing call: StateError", sb.ESTATE, "by")
        raises(lambda: eng.submit("acme", type="abandon", call="e2", by="agent"),
               sb.InvalidError, "an abandon by the agent: InvalidError", sb.EINVAL, "by")
        e = raises(lambda: eng.submit("acme", type="hangup", call="e2", by="nobody"),
                   sb.InvalidError, "an unknown party: InvalidError", sb.EINVAL, "by")
        ok(e is not None and "caller, agent or system" in e.message,
           "whose message names the parties (%s)" % (e and e.message))
        e = raises(lambda: eng.submit("acme", type="offer", call="e3", queue="support",
                                      by="caller"),
                   sb.InvalidError, "a by on an offer: InvalidError", sb.EINVAL, "by")
        ok(e is not None and "offer" in e.message,
           "refused as a field an offer does not take (%s)" % (e and e.message))
        is_([(x["id"], x["state"]) for x in eng.call_list("acme")], [("e2", "ringing")],
            "after the refusals e2 rings on, and no e3")
        acts = eng.submit("acme", '{"type":"hangup","call":"e2","by":"system"}')
        cancel, end = find(acts, "cancel", "e2"), find(acts, "end", "e2")
        ok(cancel is not None and cancel["reason"] == "call failed" and end is not None and
           end["reason"] == "failed", "a hangup by the system of the ringing e2 (JSON text): its "
                                      "ring cancelled as 'call failed', ended failed")
        c = eng.call_get("acme", "e2")
        is_((c["outcome"], c.get("ended_by")), ("failed", "system"),
            "call_get: the record says failed, ended_by system")
        day = eng.aggregates("acme")[0]
        is_((day["queue"], day["answered"], day["failed"]), (None, 1, 1),
            "the account's aggregates: one answered, one failed")


def records_setup(eng, clock):
    """acme with a retention policy (abandoned calls deleted after 7 days) and
    a personal attribute; c1 answered and c2 abandoned from one number, c3
    abandoned from another."""
    eng.account_put({"id": "acme", "retention": "retention/delete-abandoned-7-days",
                     "personal_attrs": ["name"]})
    for a in ("alice", "bob"):
        eng.agent_put("acme", agent(a))
    eng.queue_put("acme", {"id": "support", "policy": "longest-idle",
                           "members": [{"agent": "alice"}, {"agent": "bob"}]})
    for cid, caller, answer, attrs in (("c1", "+442079460001", True, {"name": "Jane"}),
                                       ("c2", "+442079460001", False, {}),
                                       ("c3", "+442079460002", False, {})):
        clock.ms += 1000
        acts = eng.submit("acme", type="offer", call=cid, queue="support", caller=caller,
                          attrs=attrs)
        clock.ms += 1000
        if answer:
            eng.submit("acme", type="ring_result", call=cid, agent=find(acts, "ring")["agent"],
                       outcome="answered")
            clock.ms += 30000
            eng.submit("acme", type="hangup", call=cid)
        else:
            eng.submit("acme", type="abandon", call=cid)


def test_records():
    clock = Clock()
    with sb.Engine(os.path.join(TMP, "records"), policy_dir=POLICIES, sync="none",
                   clock=clock, log=lambda *a: None) as eng:
        records_setup(eng, clock)
        recs = eng.records_list("acme")
        is_([r["id"] for r in recs], ["c3", "c2", "c1"], "records_list: a list, newest first")
        ok(all("caller" not in r for r in recs), "... without numbers")
        is_([r["id"] for r in eng.records_list("acme", {"queue": "support"}, limit=1)], ["c3"],
            "a query as a dict and keywords (limit=1)")
        raises(lambda: eng.records_list("acme", colour="red"), sb.InvalidError,
               "an unknown query field: InvalidError naming it", sb.EINVAL, "colour")

        # records_pages: the pages, each from the last record of the one
        # before (Lua's eng:records_pages, Go's RecordsPages).
        def walk(it):
            return [[r["id"] for r in page] for page in it]
        is_(walk(eng.records_pages("acme", limit=1)), [["c3"], ["c2"], ["c1"]],
            "records_pages(limit=1): a record a page")
        is_(walk(eng.records_pages("acme", {"limit": 2})), [["c3", "c2"], ["c1"]],
            "records_pages({limit: 2}): two, then one")
        is_(walk(eng.records_pages("acme", limit=3)), [["c3", "c2", "c1"]],
            "records_pages(limit=3): a full last page, no empty page after it")
        is_(walk(eng.records_pages("acme")), [["c3", "c2", "c1"]], "records_pages(): pages of 100")
        is_(walk(eng.records_pages("acme", '{"limit":1}', before_ms=recs[0]["ended_ms"],
                                   before_id=recs[0]["id"])), [["c2"], ["c1"]],
            "records_pages from a cursor of its own, with JSON text and keywords")
        is_(walk(eng.records_pages("acme", queue="support", from_ms=recs[0]["ended_ms"] + 1)), [[]],
            "records_pages of no record: one empty page")
        it = eng.records_pages("acme", queue="nosuch")
        raises(lambda: next(it), sb.NotFoundError,
               "records_pages of a queue never had: NotFoundError at the first page",
               sb.ENOTFOUND, "queue")
        raises(lambda: eng.records_pages("acme", limit=1.5), ValueError,
               "records_pages(limit=1.5): ValueError at the call")
        raises(lambda: eng.records_pages("acme", 7), TypeError,
               "records_pages with a number for the query: TypeError at the call")

        # retention_preview: the sweep eight days on, told, nothing done.
        pv = eng.retention_preview("acme", in_days=8)
        is_((pv["reviewed"], pv["deleted"], pv["kept"], sorted(pv["samples"]["deleted"])),
            (2, 2, 0, ["c2", "c3"]),
            "retention_preview(in_days=8): the two abandoned calls due would go")
        is_([r["id"] for r in eng.records_list("acme")], ["c3", "c2", "c1"],
            "... and all three records are still there")
        pv = eng.retention_preview("acme", {"source": "return {retain = function() "
                                                     "return {keep = true, reason = 'x'} end}",
                                            "policy": "mine"}, sample=0)
        is_((pv["kept"], pv["samples"]["kept"]), (3, []),
            "a source not stored, options as a dict and keywords")
        raises(lambda: eng.retention_preview("acme", in_days=-1), sb.InvalidError,
               "retention_preview(in_days=-1): InvalidError naming it", sb.EINVAL, "in_days")

        ex = eng.records_export("acme", "+44 20 7946 0001")
        ok(ex["number"] == "+442079460001" and [r["id"] for r in ex["records"]] == ["c1", "c2"],
           "records_export: the number's two records, decrypted")
        c1 = ex["records"][0]
        ok(c1["caller"] == "+442079460001" and c1["role"] == "caller" and
           c1["personal_attrs"] == {"name": "Jane"}, "... with the number and the personal "
                                                     "attributes")
        csv = eng.records_export("acme", "+442079460001", format="csv")
        ok(csv["count"] == 2 and csv["csv"].startswith("id,role,caller,") and
           csv["csv"].count("\r\n") == 3, "format='csv': a header line and a line per record")
        raises(lambda: eng.records_export("acme", "12345"), sb.InvalidError,
               "a number that is not E.164: InvalidError", sb.EINVAL, "number")
        raises(lambda: eng.records_export("acme", "+442079460001", format="xml"), ValueError,
               "an unknown format: ValueError")

        h = eng.hold_place("acme", call="c2", reason="litigation", id="h1")
        is_((h["id"], h["kind"], h["call"], h["reason"]), ("h1", "call", "c2", "litigation"),
            "hold_place (keywords): the hold")
        raises(lambda: eng.hold_place("acme", {"call": "c1", "reason": "x", "id": "h1"}),
               sb.ExistsError, "the same hold id again: ExistsError", sb.EEXIST)
        raises(lambda: eng.hold_place("acme", reason="x"), sb.InvalidError,
               "a hold that covers nothing: InvalidError", sb.EINVAL)
        # A range needs both bounds, as sb_hold_place and Lua and Go take it.
        raises(lambda: eng.hold_place("acme", from_ms=1767571200000, reason="x"), sb.InvalidError,
               "a range hold with from_ms alone: InvalidError naming to_ms", sb.EINVAL, "to_ms")
        raises(lambda: eng.hold_place("acme", to_ms=1767571200000, reason="x"), sb.InvalidError,
               "a range hold with to_ms alone: InvalidError naming from_ms", sb.EINVAL, "from_ms")
        is_([x["id"] for x in eng.hold_list("acme")], ["h1"], "hold_list: a list")
        is_(eng.hold_get("acme", "h1"), eng.hold_list("acme")[0],
            "hold_get: the hold, as hold_list gives it")
        raises(lambda: eng.hold_get("acme", "h2"), sb.NotFoundError,
               "hold_get of an id the account has no hold of: NotFoundError", sb.ENOTFOUND,
               "hold")
        raises(lambda: eng.hold_get("nobody", "h1"), sb.NotFoundError,
               "hold_get in an unknown account: NotFoundError", sb.ENOTFOUND, "account")
        raises(lambda: eng.hold_get("acme", None), TypeError, "hold_get(acct, None): TypeError")
        raises(lambda: eng.hold_get("acme", "h1\0x"), sb.InvalidError,
               "hold_get of an id holding a NUL byte: InvalidError", sb.EINVAL, "hold_id")
        raises(lambda: eng.account_delete("acme"), sb.HoldError,
               "deleting an account under a hold: HoldError", sb.EHOLD)
        raises(lambda: eng.account_evict("acme"), sb.HoldError,
               "evicting an account under a hold: HoldError", sb.EHOLD, "account")
        ok(eng.account_get("acme")["id"] == "acme", "... and it is still there")

        clock.ms += 8 * 86400000
        seen, inner = [], []

        def progress(done, total):
            seen.append((done, total))
            inner.append(eng.stats()["events"]["offer"])  # the engine, from the callback

        sw = eng.sweep(progress=progress)
        is_((sw["reviewed"], sw["deleted"], sw["overridden"], sw["done"]), (2, 1, 1, True),
            "sweep: c3 deleted, c2's deletion overridden by the hold")
        ok(seen and seen[-1][0] == 2 and all(t >= d for d, t in seen),
           "progress(done, total) is called after each transaction: %r" % seen)
        ok(inner == [3] * len(seen), "and may call the engine without disturbing the sweep's "
                                     "result")
        is_(eng.sweep()["reviewed"], 0, "a second sweep finds nothing due")

        def boom(done, total):
            raise KeyError("from progress")

        raises(lambda: eng.sweep(progress=boom), KeyError,
               "an exception in progress is raised once the sweep has returned")

        # close() in progress would free the engine under the sweep, which
        # carries on with it when progress returns (a use after free).
        raises(lambda: eng.sweep(progress=lambda done, total: eng.close()), sb.StateError,
               "close() in progress is refused, raised once the sweep has returned",
               code=sb.ESTATE)
        ok(not eng.closed and "events" in eng.stats(),
           "and the engine stays open and serves on")

        log = eng.audit_list("acme")
        is_([(e["seq"], e["action"], e.get("call")) for e in log["entries"]],
            [(1, "access_request", None), (2, "access_request", None), (3, "hold_placed", "c2"),
             (4, "keep", "c2"), (5, "delete", "c3")],
            "audit_list: the two access requests (the refused ones have none), the hold, the "
            "overridden deletion, the deletion")
        is_([(e["source"], e["reason"]) for e in log["entries"][:2]],
            [("access", "access request: 2 records disclosed as JSON"),
             ("access", "access request: 2 records disclosed as CSV")],
            "... each access request's saying how many records it disclosed, and how")
        ok(log["next"] == 5 and log["entries"][3]["overridden"] is True,
           "with 'next' and the override marked")
        # audit_pages: the same entries a page at a time, until none is left
        # (Lua's eng:audit_pages, Go's AuditPages).
        for limit in (1, 2, 3, 0):
            pages = list(eng.audit_pages("acme", limit=limit))
            step = limit or 5
            is_([[e["seq"] for e in p] for p in pages],
                [list(range(i, min(i + step, 6))) for i in range(1, 6, step)],
                "audit_pages(limit=%d): every entry once, no empty page" % limit)
        is_([[e["seq"] for e in p] for p in eng.audit_pages("acme", after=1, limit=1)],
            [[2], [3], [4], [5]], "audit_pages(after=1, limit=1): from the entry after 1")
        is_(list(eng.audit_pages("acme", after=5)), [[]], "audit_pages after the last: one empty page")
        raises(lambda: eng.audit_pages("acme", limit=-1), ValueError,
               "audit_pages(limit=-1): ValueError at the call")
        raises(lambda: next(eng.audit_pages("nobody")), sb.NotFoundError,
               "audit_pages of an account that does not exist: NotFoundError at the first page",
               sb.ENOTFOUND, "account")

        er = eng.erase("acme", "+442079460001")
        is_((er["deleted"], er["kept"], er["failed"]), (1, 1, 0),
            "erase: c1 deleted, c2 kept under the hold")
        ok(any(k.startswith("keep: legal hold h1") for k in er["reasons"]),
           "... the reasons say why: %r" % er["reasons"])
        page = eng.audit_list("acme", after=5, limit=10)
        is_(sorted((e["source"], e["action"], e.get("call")) for e in page["entries"]
                   if e["action"] != "erasure_request"),
            [("erasure", "delete", "c1"), ("erasure", "keep", "c2")],
            "audit_list(after=5): the erasure's entries")
        is_([e["reason"] for e in page["entries"] if e["action"] == "erasure_request"],
            ["erasure request: 1 deleted, 0 anonymized, 1 kept (1 held, 0 failed); 0 live calls"],
            "... and the request's own, with what it did")

        r = eng.hold_release("acme", "h1")
        ok(r["id"] == "h1" and r["released"] is True, "hold_release: the hold, released")
        is_(eng.hold_list("acme"), [], "hold_list is empty")
        raises(lambda: eng.hold_get("acme", "h1"), sb.NotFoundError,
               "hold_get of the released hold: NotFoundError", sb.ENOTFOUND, "hold")
        raises(lambda: eng.hold_release("acme", "h1"), sb.NotFoundError,
               "releasing it again: NotFoundError", sb.ENOTFOUND, "hold")

        days = eng.aggregates("acme")
        is_([(d["queue"], d["offered"], d["answered"], d["abandoned"]) for d in days],
            [(None, 3, 1, 2), ("support", 3, 1, 2)],
            "aggregates: the account's row and the queue's, unchanged by deletions")
        day = 1767571200000  # 2026-01-05 00:00 UTC
        is_(len(eng.aggregates("acme", "support", day, day + 86400000)), 1,
            "one queue, one day")
        is_(eng.aggregates("acme", None, day + 86400000, day + 2 * 86400000), [],
            "a day without calls: none")
        raises(lambda: eng.aggregates("acme", "nope"), sb.NotFoundError,
               "an unknown queue: NotFoundError", sb.ENOTFOUND, "queue")
        raises(lambda: eng.erase("other", "+442079460001"), sb.NotFoundError,
               "another account: NotFoundError", sb.ENOTFOUND, "account")

        # Numbers a C integer cannot hold are refused, not wrapped by ctypes
        # into another value (2**64 ms as 0: "all days"; after=-1 as the
        # largest sequence number: "nothing"); a budget past 2**32 - 1 ms
        # counts as that, as in the Lua and Go bindings, not as 0.
        raises(lambda: eng.aggregates("acme", None, 1 << 64), ValueError,
               "aggregates(from_ms=2**64): ValueError, not every day")
        raises(lambda: eng.aggregates("acme", None, 0, -1), ValueError,
               "aggregates(to_ms=-1): ValueError")
        raises(lambda: eng.audit_list("acme", after=-1), ValueError,
               "audit_list(after=-1): ValueError, not an empty page")
        raises(lambda: eng.audit_list("acme", limit=-1), ValueError,
               "audit_list(limit=-1): ValueError")
        for v in (1 << 32, (1 << 32) + 1, 1 << 70):
            ok(eng.sweep(budget_ms=v)["done"] is True,
               "sweep(budget_ms=%r): a sweep with the largest budget, done" % v)
        raises(lambda: eng.sweep(budget_ms=-1), ValueError, "sweep(budget_ms=-1): ValueError")
        is_(eng.audit_list("acme", after=(1 << 63) - 1)["entries"], [],
            "after=2**63-1, the largest seq, is taken")
        # Past it the engine's "next" (a JSON integer) came back negative.
        raises(lambda: eng.audit_list("acme", after=(1 << 64) - 1), sb.InvalidError,
               "after=2**64-1: InvalidError naming after, not next = -1", field="after")


def test_backup():
    clock = Clock()
    data = os.path.join(TMP, "backup-data")
    with sb.Engine(data, policy_dir=POLICIES, sync="none", clock=clock,
                   log=lambda *a: None) as eng:
        records_setup(eng, clock)
        dest = os.path.join(TMP, "backup-copy")  # does not exist yet: created
        r = eng.backup(dest)
        ok(isinstance(r, dict) and r.get("dir") == dest and isinstance(r.get("bytes"), int)
           and r["bytes"] > 0, "backup(dest): a dict with dir and bytes > 0 (%r)" % (r,))
        ok("not copied" in (r or {}).get("master_key", ""), "and says the master key was not "
                                                            "copied")
        ok(os.path.isfile(os.path.join(dest, "data.mdb")) and
           os.path.isfile(os.path.join(dest, "data.keys")),
           "data.mdb and data.keys are in the backup")
        is_(os.path.getsize(os.path.join(dest, "data.mdb")), r["bytes"],
            "bytes is the size of the copied data.mdb")
        ok(os.path.isfile(os.path.join(data, "master.key")) and
           not os.path.exists(os.path.join(dest, "master.key")),
           "master.key is in the data directory, not in the backup")
        raises(lambda: eng.backup(dest), sb.ExistsError,
               "a second backup into the same directory: ExistsError", sb.EEXIST, "dest")
        raises(lambda: eng.backup(""), sb.InvalidError, "no directory: InvalidError",
               sb.EINVAL, "dest")
        raises(lambda: eng.backup(data), sb.InvalidError,
               "a backup into the data directory itself: InvalidError", sb.EINVAL, "dest")
        raises(lambda: eng.backup(42), TypeError, "a dest that is not a path: TypeError")
        raises(lambda: eng.backup(dest + "-nul\0x"), sb.InvalidError,
               "a dest holding a NUL byte: InvalidError", sb.EINVAL)
        ok(not os.path.exists(dest + "-nul"), "and nothing was written at the path before the "
                                              "NUL")
        import pathlib
        r2 = eng.backup(pathlib.Path(TMP) / "backup-path")
        is_(r2["dir"], os.path.join(TMP, "backup-path"), "a pathlib.Path is taken too")
    with sb.Engine(dest, key_file=os.path.join(data, "master.key"), sync="none",
                   log=lambda *a: None) as copy:
        is_([x["id"] for x in copy.records_list("acme")], ["c3", "c2", "c1"],
            "the backup opens with the data directory's master key, its records there")
    eng.close()
    raises(lambda: eng.backup(os.path.join(TMP, "backup-closed")), sb.InvalidError,
           "backup on a closed engine: InvalidError", sb.EINVAL)
    ok(not os.path.exists(os.path.join(TMP, "backup-closed")),
       "and nothing was created")


def test_master_key_rotate():
    """master_key_rotate: a data directory made here, refused while an engine
    has it open and for bad input (nothing changed), rotated to a key it
    makes, then opening with that key alone: its records and an API key made
    before are still there, the old key refused with the engine's message."""
    clock = Clock()
    data = os.path.join(TMP, "rotate-data")
    old = os.path.join(data, "master.key")
    new = os.path.join(TMP, "rotate-new.key")
    keys = os.path.join(data, "data.keys")

    def unchanged(what, want):
        with open(keys, "rb") as f:
            ok(f.read() == want and not os.path.exists(new),
               "... %s: data.keys unchanged, no new key made" % what)

    with sb.Engine(data, policy_dir=POLICIES, sync="none", clock=clock,
                   log=lambda *a: None) as eng:
        records_setup(eng, clock)
        api = eng.apikey_create("acme")["key"]
        before = eng.records_list("acme")
        with open(keys, "rb") as f:
            was = f.read()
        e = raises(lambda: sb.master_key_rotate(data, new, log="none"), sb.BusyError,
                   "master_key_rotate while an Engine has the directory open: BusyError",
                   sb.EBUSY, "data_dir")
        ok(e is not None and "open in this process by another engine" in e.message,
           "... with the engine's message (%s)" % (e and e.message))
        unchanged("in use", was)
    other = os.path.join(TMP, "rotate-other.key")
    with open(other, "w") as f:
        f.write("ab" * 32 + "\n")
    os.chmod(other, 0o600)
    e = raises(lambda: sb.master_key_rotate(data, new, key_file=other, log="none"),
               sb.CryptoError, "an old key that is not the directory's: CryptoError",
               sb.ECRYPTO, "key_file")
    ok(e is not None and "is not the one this data directory" in e.message,
       "... with the engine's message (%s)" % (e and e.message))
    unchanged("a wrong old key", was)
    nowhere = os.path.join(TMP, "rotate-no-such-dir", "new.key")
    e = raises(lambda: sb.master_key_rotate(data, nowhere, log="none"), sb.CryptoError,
               "a new key file where none can be made: CryptoError", sb.ECRYPTO, "new_key_file")
    ok(e is not None and nowhere in e.message and "nothing was changed" in e.message,
       "... with the engine's message (%s)" % (e and e.message))
    unchanged("a bad new key path", was)
    os.chmod(other, 0o644)
    e = raises(lambda: sb.master_key_rotate(data, other, log="none"), sb.InvalidError,
               "a new key file others may read: InvalidError", sb.EINVAL, "new_key_file")
    ok(e is not None and other in e.message, "... naming it (%s)" % (e and e.message))
    unchanged("a loose new key", was)
    raises(lambda: sb.master_key_rotate(data, old, log="none"), sb.InvalidError,
           "the key in use as the new key: InvalidError", sb.EINVAL, "new_key_file")
    unchanged("the same key", was)
    raises(lambda: sb.master_key_rotate(data, new + "\0x"), sb.InvalidError,
           "a new key file holding a NUL byte: InvalidError", sb.EINVAL, "new_key_file")
    unchanged("a NUL byte", was)
    raises(lambda: sb.master_key_rotate(data, new, log="buffer"), ValueError,
           'log="buffer" (no engine to read it from): ValueError')
    unchanged('log="buffer"', was)
    empty = os.path.join(TMP, "rotate-nothing")
    raises(lambda: sb.master_key_rotate(empty, new, log="none"), sb.InvalidError,
           "a data directory that does not exist: InvalidError", sb.EINVAL, "data_dir")
    ok(not os.path.exists(empty), "... and it was not made")

    import pathlib
    lines = []
    r = sb.master_key_rotate(pathlib.Path(data), new, log=lambda lvl, line: lines.append(line),
                             log_level="info")
    is_({k: r.get(k) for k in ("data_dir", "key_file", "old_key_file", "new_key_made",
                               "accounts", "slots_dropped")},
        {"data_dir": data, "key_file": new, "old_key_file": old, "new_key_made": True,
         "accounts": 1, "slots_dropped": 0},
        "master_key_rotate: the engine's answer as a dict (the new key made, one account)")
    ok("old key" in r.get("backups", "") and "actions" not in r,
       "... with the reminder about backups, and no actions")
    ok(any("master key rotated" in l for l in lines), "... its log line given to log")
    st = os.stat(new)
    ok(st.st_mode & 0o777 == 0o600 and st.st_size == 65, "the new key made: 0600, 64 hex digits")
    with open(keys, "rb") as f:
        ok(f.read() != was and not os.path.exists(keys + ".rotate"),
           "data.keys written again, nothing left beside it")
    e = raises(lambda: sb.Engine(data, sync="none", log="none"), sb.CryptoError,
               "the old key no longer opens the directory: CryptoError", sb.ECRYPTO)
    ok(e is not None and "is not the one this data directory" in e.message,
       "... with the engine's message (%s)" % (e and e.message))
    with sb.Engine(data, key_file=new, sync="none", log="none") as eng:
        is_(eng.records_list("acme"), before, "the new key opens it: the same records")
        ok(eng.apikey_verify("acme", api) is True, "... and the API key made before verifies")
        ok(eng.apikey_verify("acme", api + "x") is False, "... and another still does not")


def test_arguments():
    """Arguments a C function cannot take as given are refused with a clear
    error naming them, never cut, wrapped or passed on as NULL."""
    with sb.Engine(os.path.join(TMP, "args"), policy_dir=POLICIES, sync="none",
                   log=lambda *a: None) as eng:
        eng.account_put({"id": "acme"})
        e = raises(lambda: eng.agent_get("acme", "alice\0x"), sb.InvalidError,
                   "a NUL byte in an id: InvalidError naming the argument", sb.EINVAL, "agent")
        ok(e is not None and "agent holds a NUL byte" in e.message,
           "... and the message says which (%s)" % (e and e.message))
        raises(lambda: eng.hold_release("acme\0", "h1"), sb.InvalidError,
               "a NUL byte in the account", sb.EINVAL, "account")
        # A NUL byte in a document's or an event's string went to the engine
        # as \u0000, refused naming no field ("strings may not contain
        # \u0000 (line 1 column 29)", of JSON the caller never wrote): named
        # where it is, as Lua and Go name it.
        eng.queue_put("acme", {"id": "support"})
        for name, fn, field in (
                ("a document's field", lambda: eng.agent_put("acme", {"id": "bob", "name": "B\0b"}),
                 "name"),
                ("a nested field", lambda: eng.agent_put(
                    "acme", {"id": "bob", "devices": {"softphone": "sip:b\0@pbx"}}),
                 "devices.softphone"),
                ("a list's item", lambda: eng.agent_put("acme", {"id": "bob", "skills": ["en", "d\0"]}),
                 "skills[1]"),
                ("a document's key", lambda: eng.agent_put("acme", {"id": "bob", "n\0": 1}), None),
                ("an event's call", lambda: eng.submit("acme", type="offer", call="c\0x",
                                                        queue="support"), "call"),
                ("an event's attribute", lambda: eng.submit(
                    "acme", type="offer", call="c1", queue="support", attrs={"x_header": "a\0b"}),
                 "attrs.x_header"),
                ("an event given as a dict", lambda: eng.submit(
                    "acme", {"type": "offer", "call": "c1", "queue": "support",
                             "attrs": {"tags": ["a", "b\0"]}}), "attrs.tags[1]"),
                ("a hold's reason", lambda: eng.hold_place("acme", number="+442079460001",
                                                           reason="case\0 7"), "reason")):
            e = raises(fn, sb.InvalidError, "a NUL byte in %s: InvalidError naming %s"
                       % (name, field), sb.EINVAL, field)
            want = "%s holds a NUL byte (a C string would end there)" % (field or "the agent")
            is_(e and e.message, want, "... saying so")
        is_((eng.agent_list("acme"), eng.call_list("acme"), eng.hold_list("acme")), ([], [], []),
            "and nothing was stored")
        ok(eng.submit("acme", type="offer", call="c1", queue="support",
                      attrs={"x": "a\\u0000"}) is not None,
           "a backslash before u0000 is no NUL byte")
        # NaN and infinities, which documents refused with ValueError, went out
        # in an event as JSON the engine refused as "malformed JSON ...
        # invalid token near 'NaN'", naming no field: ValueError naming it.
        for name, fn, want in (
                ("an event's priority", lambda: eng.submit(
                    "acme", type="offer", call="c2", queue="support", priority=float("nan")),
                 "priority must be a finite number, not nan"),
                ("an attribute", lambda: eng.submit(
                    "acme", {"type": "offer", "call": "c2", "queue": "support",
                             "attrs": {"w": [1, float("-inf")]}}),
                 "attrs.w[1] must be a finite number, not -inf"),
                ("a document", lambda: eng.agent_put("acme", {"id": "bob", "x": float("inf")}),
                 "x must be a finite number, not inf")):
            e = raises(fn, ValueError, "NaN or infinity in %s: ValueError" % name)
            is_(e and str(e), want, "... naming it")
        # A value that holds itself: json's ValueError (a circular reference),
        # not a RecursionError from the walk that names where a bad value is.
        loop = {"id": "bob"}
        loop["self"] = loop
        items = []
        items.append(items)
        for name, fn in (("a document", lambda: eng.agent_put("acme", loop)),
                         ("an event", lambda: eng.submit("acme", type="offer", call="c2",
                                                         queue="support", attrs={"l": items}))):
            e = raises(fn, ValueError, "%s holding itself: ValueError" % name)
            ok(e is not None and "ircular" in str(e), "... saying so (%s)" % e)
        # A str holding a lone surrogate has no UTF-8 form: it raised a bare
        # UnicodeEncodeError as an id, a ValueError about the codec in a
        # document and InvalidError "malformed JSON" in an event. ValueError
        # naming where, in each.
        sur = "b\udcffb"
        for name, fn, where in (
                ("an id", lambda: eng.agent_get("acme", sur), "agent"),
                ("an account", lambda: eng.agent_put(sur, {"id": "bob"}), "account"),
                ("a document's field", lambda: eng.agent_put("acme", {"id": "bob", "name": sur}),
                 "name"),
                ("a document's key", lambda: eng.agent_put("acme", {"id": "bob", sur: 1}),
                 "the agent"),
                ("a document as JSON text", lambda: eng.agent_put("acme", '{"id":"%s"}' % sur),
                 "agent"),
                ("an event's call", lambda: eng.submit("acme", type="offer", call=sur,
                                                        queue="support"), "call"),
                ("an attribute", lambda: eng.submit("acme", type="offer", call="c2",
                                                     queue="support", attrs={"x_header": sur}),
                 "attrs.x_header"),
                ("a policy's source", lambda: sb.policy_check("p.lua", "return {} -- " + sur),
                 "source")):
            e = raises(fn, ValueError, "a lone surrogate in %s: ValueError" % name)
            ok(type(e) is ValueError and str(e).startswith(
                "%s is not valid text: it holds a lone surrogate ('\\udcff' at " % where),
               "... naming %s (%s)" % (where, e))
        is_((eng.agent_list("acme"), [c["id"] for c in eng.call_list("acme")]), ([], ["c1"]),
            "and nothing more was stored")
        raises(lambda: eng.agent_get(None, "alice"), TypeError,
               "None for an id: TypeError, not an engine lookup of NULL")
        raises(lambda: eng.submit(None, type="hangup", call="c1"), TypeError,
               "submit(None, ...): TypeError")
        e = raises(lambda: eng.account_put(None), TypeError, "account_put(None): TypeError")
        ok(e is not None and "account" in str(e) and "len()" not in str(e),
           "... saying what is missing (%s)" % e)
        raises(lambda: eng.agent_put("acme", None), TypeError, "agent_put(acct, None): TypeError")
        # A document that is a number or a boolean went out as JSON text the
        # engine refused as malformed (InvalidError): a wrong type.
        for v in (42, 3.5, True, 2 ** 70):
            e = raises(lambda: eng.agent_put("acme", v), TypeError,
                       "agent_put(acct, %r): TypeError" % (v,))
            is_(e and str(e), "agent must be a dict, a list or JSON text, not %s"
                % type(v).__name__, "... naming what was given")
        for name, fn in (("account_put", lambda: eng.account_put(True)),
                         ("queue_put", lambda: eng.queue_put("acme", 3.5)),
                         ("member_put", lambda: eng.member_put("acme", "q", "a", 5)),
                         ("submit", lambda: eng.submit("acme", 42)),
                         ("hold_place", lambda: eng.hold_place("acme", False)),
                         ("records_list", lambda: eng.records_list("acme", 7)),
                         ("policy_put", lambda: eng.policy_put("acme", "p", "return {}", 1)),
                         ("policy_test", lambda: sb.policy_test("p", "return {}", 1.5))):
            raises(fn, TypeError, "%s with a number or boolean document: TypeError" % name)
        is_(eng.agent_list("acme"), [], "and nothing was stored")
        for v, cls in ((float("nan"), ValueError), (float("inf"), ValueError),
                       (1.5, ValueError), ("5", TypeError), (None, TypeError)):
            raises(lambda: eng.aggregates("acme", None, v), cls,
                   "aggregates(from_ms=%r): %s" % (v, cls.__name__))
            raises(lambda: eng.audit_list("acme", after=v), cls,
                   "audit_list(after=%r): %s" % (v, cls.__name__))
            raises(lambda: eng.sweep(budget_ms=v), cls,
                   "sweep(budget_ms=%r): %s" % (v, cls.__name__))
        is_(eng.aggregates("acme", None, 1767571200000.0), [],
            "a whole float (milliseconds from arithmetic) is taken")
        raises(lambda: sb.strerror(1 << 40), ValueError,
               "strerror(2**40): ValueError, not the message of 0 (SB_OK)")
        is_(sb.strerror(sb.ENOTFOUND), "SB_ENOTFOUND: not found", "strerror of a code")
    d = os.path.join(TMP, "args2")
    # Settings a C int cannot hold were wrapped (sync=2**40 as 0: group sync).
    for kw, cls in (({"sync": 1 << 40}, ValueError), ({"log_level": 1 << 40}, ValueError),
                    ({"sync": 1.5}, ValueError), ({"log_level": "7"}, ValueError),
                    ({"seed": float("nan")}, ValueError), ({"map_size": "1"}, TypeError)):
        raises(lambda: sb.Engine(d, **kw), cls, "Engine(%s=%r): %s"
               % (next(iter(kw)), next(iter(kw.values())), cls.__name__))
    ok(not os.path.exists(d), "and no data directory was created")
    # A clock value a C int64 cannot hold falls back to the system time, as a
    # raising clock does (it was wrapped: 2**70 as 0), and is reported; so
    # does one before 1970 (it dated the account then).
    for v, why in ((1 << 70, "1180591620717411303424 (the clock's value must be "
                             "0 .. 9223372036854775807, not 1180591620717411303424)"),
                   (-1, "-1 (the clock's value must be 0 .. 9223372036854775807, not -1)"),
                   (float("nan"), "nan (the clock's value must be a finite number, not nan)"),
                   (None, "None (the clock's value must be an int, not NoneType)")):
        warned = []
        with sb.Engine(os.path.join(TMP, "args-clock-%d" % len(os.listdir(TMP))), sync="none",
                       clock=lambda v=v: v, log=lambda lvl, line: warned.append(line)) as eng:
            created = eng.account_put({"id": "acme"})["created_ms"]
        ok(abs(created / 1000.0 - __import__("time").time()) < 86400,
           "a clock returning %r: the system time (%r)" % (v, created))
        is_(warned and warned[0], "the clock function returned %s; this reading is the "
                                  "system time" % why, "... and a log line saying why")


class _Capture:
    def __init__(self, into):
        self.into = into

    def write(self, s):
        self.into.append(s)

    def flush(self):
        pass


def test_close_and_threads():
    """close() while calls are in flight, from callbacks; results of threads."""
    # close() from the clock, which the engine calls inside a call: it used to
    # free the engine under that call (a crash).
    clock = Clock()
    seen = []

    def closing_clock():
        if clock.close_now:
            clock.close_now = False
            try:
                eng.close()
                seen.append("closed")
            except Exception as e:  # noqa: BLE001
                seen.append(e)
        return clock.ms

    clock.close_now = False
    eng = sb.Engine(os.path.join(TMP, "close-clock"), sync="none", clock=closing_clock,
                    log=lambda *a: None)
    eng.account_put({"id": "acme"})
    clock.close_now = True
    got = eng.account_put({"id": "acme2"})
    ok(len(seen) == 1 and isinstance(seen[0], sb.StateError),
       "close() from the clock raises StateError (%r)" % seen)
    ok(got["id"] == "acme2" and not eng.closed and eng.account_get("acme2")["id"] == "acme2",
       "and the call completes, the engine serving on")
    eng.close()

    # close() from the log function, which the engine calls inside a call
    # (sb_backup logs the copy it wrote).
    seen = []

    def closing_log(level, line):
        if "backup written" in line:
            try:
                eng.close()
                seen.append("closed")
            except Exception as e:  # noqa: BLE001
                seen.append(e)

    eng = sb.Engine(os.path.join(TMP, "close-log"), sync="none", log=closing_log)
    eng.account_put({"id": "acme"})
    r = eng.backup(os.path.join(TMP, "close-log-copy"))
    ok(len(seen) == 1 and isinstance(seen[0], sb.StateError) and r["bytes"] > 0,
       "close() from the log function raises StateError, the call completes (%r)" % seen)
    ok(not eng.closed and eng.account_get("acme")["id"] == "acme", "and the engine serves on")
    eng.close()

    # close() on one thread while another is inside a call: close waits for
    # it, new calls are refused meanwhile, and the call in flight completes.
    inside, release = threading.Event(), threading.Event()
    state = {"block": False}

    def blocking_clock():
        if state["block"]:
            state["block"] = False
            inside.set()
            release.wait()
        return clock.ms

    eng = sb.Engine(os.path.join(TMP, "close-race"), sync="none", clock=blocking_clock,
                    log=lambda *a: None)
    eng.account_put({"id": "acme"})
    out = {}

    def caller():
        try:
            out["put"] = eng.account_put({"id": "slow"})
        except Exception as e:  # noqa: BLE001
            out["put"] = e

    state["block"] = True
    t = threading.Thread(target=caller)
    t.start()
    inside.wait()
    closer = threading.Thread(target=eng.close)
    closer.start()
    for _ in range(100000):  # until close() has begun (it waits for the call)
        if eng._closing:
            break
        __import__("time").sleep(0.001)
    # A call now is refused at once (reaching the engine, it could wait
    # behind the call in flight).
    refused = raises(lambda: eng.stats(), sb.InvalidError,
                     "a call while close() waits: InvalidError", sb.EINVAL)
    ok(refused is not None and "clos" in refused.message,
       "a call while close() waits is refused: %s" % refused)
    ok(not eng.closed and closer.is_alive(), "close() waits for the call in flight")
    release.set()
    t.join()
    closer.join()
    ok(isinstance(out.get("put"), dict) and out["put"]["id"] == "slow",
       "the call in flight completed: %r" % (out.get("put"),))
    ok(eng.closed, "then the engine closed")
    raises(lambda: eng.account_get("acme"), sb.InvalidError, "and is closed for later calls",
           sb.EINVAL)

    # Every thread that calls the engine gets a result; a thread that ends
    # must not leave its result behind until close (a gateway with a thread
    # per request grew without bound).
    with sb.Engine(os.path.join(TMP, "threads"), sync="none", log=lambda *a: None) as eng:
        eng.account_put({"id": "acme"})
        for _ in range(5):
            ts = [threading.Thread(target=lambda: eng.account_get("acme")) for _ in range(40)]
            for x in ts:
                x.start()
            for x in ts:
                x.join()
        live = len(eng._results.live)
        ok(live <= 2, "200 threads done: %d results left (this thread's, at most)" % live)


def test_gateway_example():
    """examples/python/gateway.py on examples/c-gateway's calls (and the C
    gateway's output, when make built it: the two must agree)."""
    cli = os.path.join(BUILD, "switchboard")
    if not os.access(cli, os.X_OK):
        skip("no %s to provision the gateway example with" % cli)
        return
    ex = os.path.join(ROOT, "examples")

    def run(cmd):
        data = os.path.join(TMP, "gw-%d" % len(os.listdir(TMP)))
        subprocess.run([cli, "replay", os.path.join(ex, "c-gateway", "setup.jsonl"), "--data-dir",
                        data, "--policy-dir", POLICIES], check=True, capture_output=True)
        with open(os.path.join(ex, "c-gateway", "calls.jsonl"), "rb") as f:
            return subprocess.run(cmd + ["--data-dir", data, "--policy-dir", POLICIES,
                                         "--sync", "none"], stdin=f, capture_output=True,
                                  timeout=60)

    r = run([sys.executable, os.path.join(ex, "python", "gateway.py")])
    lines = [json.loads(l) for l in r.stdout.decode().splitlines()]
    ok(r.returncode == 0 and lines and lines[0].get("call") == "c1" and
       lines[0].get("agent") == "alice" and lines[0].get("type") == "ring",
       "examples/python/gateway.py rings alice for c1")
    if not ok(any(l.get("error", {}).get("field") == "caller" for l in lines),
              "and reports the bad caller as an error line"):
        diag(r.stdout.decode() + r.stderr.decode())
    cgw = os.path.join(BUILD, "examples", "c-gateway")
    if not os.access(cgw, os.X_OK):
        skip("no %s to compare with" % cgw)
        return
    c = run([cgw])
    if not is_(r.stdout.decode(), c.stdout.decode(),
               "the Python and C gateways print the same lines"):
        diag(c.stderr.decode())


def test_fork():
    """An engine opened before os.fork() (a gateway preloading its app
    before forking workers) belongs to the parent: in the child every call
    raises StateError and close() leaves the parent's engine alone."""
    clock = Clock()
    eng = sb.Engine(os.path.join(TMP, "fork"), policy_dir=POLICIES, sync="none", clock=clock)
    provision(eng, clock)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it saw on the pipe, then leave at once
        os.close(r)
        out = []
        try:
            eng.agent_get("acme", "ag0")
            out.append("call worked")
        except sb.StateError as e:
            out.append("StateError" if "another process" in e.message else "other: %s" % e)
        except Exception as e:  # noqa: BLE001
            out.append("raised %r" % (e,))
        try:
            eng.close()
            out.append("closed" if eng.closed else "still open")
        except Exception as e:  # noqa: BLE001
            out.append("close raised %r" % (e,))
        os.write(w, ",".join(out).encode())
        os._exit(0)
    os.close(w)
    got = b""
    while True:
        b = os.read(r, 4096)
        if not b:
            break
        got += b
    os.close(r)
    _, status = os.waitpid(pid, 0)
    is_(got.decode(), "StateError,closed",
        "fork: in the child a call raises StateError (another process's engine); close() "
        "only drops the child's handle")
    ok(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "fork: the child exits cleanly")
    is_(eng.agent_get("acme", "ag0")["id"], "ag0", "fork: the parent's engine still works")
    eng.close()


EXIT_WITH_DAEMONS = r"""
import sys, threading, time
sys.path.insert(0, sys.argv[1])
import switchboard as sb
eng = sb.Engine(sys.argv[2], policy_dir=sys.argv[3], sync="none")
eng.account_put({"id": "acme"})
def work():
    while True:
        eng.account_get("acme")
        eng.stats()
for _ in range(8):
    threading.Thread(target=work, daemon=True).start()
time.sleep(0.3)
"""


def test_review_fixes():
    """Found tried as an embedding engineer would (each seen failing before)."""
    # Daemon threads inside calls when the interpreter exits: their results
    # were freed under them (a segfault in 3 of 5 runs).
    script = os.path.join(TMP, "exit_daemons.py")
    with open(script, "w") as f:
        f.write(EXIT_WITH_DAEMONS)
    codes = [subprocess.run([sys.executable, script, os.path.join(ROOT, "bindings", "python"),
                             os.path.join(TMP, "exitd%d" % i), POLICIES], capture_output=True,
                            timeout=60).returncode for i in range(5)]
    is_(codes, [0] * 5, "exit with daemon threads inside engine calls: no crash, 5 runs")

    # A clock or log function that calls the engine: StateError, not a
    # deadlock holding the data directory's write lock.
    got = {}
    clock = Clock()
    holder = {}

    def reentrant_clock():
        if "eng" in holder and "clock" not in got:
            try:
                holder["eng"].stats()
                got["clock"] = "no error"
            except sb.StateError as e:
                got["clock"] = e
        return clock.ms

    def reentrant_log(level, line):
        if "eng" in holder and "log" not in got:
            try:
                holder["eng"].account_get("acme")
                got["log"] = "no error"
            except sb.StateError as e:
                got["log"] = e

    with sb.Engine(os.path.join(TMP, "reenter"), policy_dir=POLICIES, sync="none",
                   clock=reentrant_clock, log=reentrant_log, log_level="debug") as eng:
        provision(eng, clock)
        holder["eng"] = eng
        eng.submit("acme", type="offer", call="r1", queue="support", caller="+15550000010")
        ok(isinstance(got.get("clock"), sb.StateError) and "clock" in str(got.get("clock")),
           "a clock function calling the engine gets StateError (%r)" % got.get("clock"))
        eng.reload()
        ok(isinstance(got.get("log"), sb.StateError),
           "a log function calling the engine gets StateError (%r)" % got.get("log"))
        holder.clear()

    # Ctrl-C in the clock: the engine goes on; KeyboardInterrupt when the call is done.
    intr = {"n": 0}

    def ctrl_c_clock():
        intr["n"] += 1
        if intr["n"] == 3:
            raise KeyboardInterrupt
        return clock.ms

    with sb.Engine(os.path.join(TMP, "ctrlc"), policy_dir=POLICIES, sync="none",
                   clock=ctrl_c_clock, log=lambda *a: None) as eng:
        eng.account_put({"id": "acme"})
        raised = None
        for i in range(5):
            try:
                eng.agent_put("acme", agent("k%d" % i))
            except KeyboardInterrupt:
                raised = i
                break
        ok(raised is not None, "Ctrl-C in the clock reaches the caller once the call is done")
        ok(eng.agent_get("acme", "k%d" % raised)["id"] == "k%d" % raised,
           "... and the call it interrupted was carried out whole")

    # close() interrupted while it waits for another thread's call.
    import signal
    slow = {"on": False}

    def slow_clock():
        if slow["on"]:
            slow["on"] = False
            time.sleep(1.0)
        return clock.ms

    eng = sb.Engine(os.path.join(TMP, "closeint"), policy_dir=POLICIES, sync="none",
                    clock=slow_clock, log=lambda *a: None)
    eng.account_put({"id": "acme"})
    slow["on"] = True
    t = threading.Thread(target=lambda: eng.agent_put("acme", agent("s1")))
    t.start()
    time.sleep(0.2)

    def alarm(*a):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    interrupted = False
    try:
        eng.close()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    t.join()
    ok(interrupted and not eng.closed and eng.agent_get("acme", "s1")["id"] == "s1",
       "close() interrupted by Ctrl-C leaves the engine open and usable")
    eng.close()
    ok(eng.closed, "... and a later close() closes it")

    with sb.Engine(os.path.join(TMP, "args2"), policy_dir=POLICIES, sync="none") as eng:
        eng.account_put({"id": "acme"})
        raises(lambda: eng.records_list("acme", from_ms=float("nan")), ValueError,
               "records_list(from_ms=nan): ValueError")
        raises(lambda: eng.records_list("acme", to_ms=2 ** 64), ValueError,
               "records_list(to_ms=2**64): ValueError")
        raises(lambda: eng.submit("acme", '{"type":"hangup"}', call="nope"), sb.NotFoundError,
               "JSON text with keyword arguments: taken together (no such call 'nope')")
    raises(lambda: sb.load_library("/nonexistent/libswitchboard.so"), ValueError,
           "load_library with another path once one is loaded: ValueError, not ignored")


def main():
    tests = [test_layout, test_basics, test_cycle, test_evict, test_pages, test_errors, test_clock_and_tick,
             test_tick_for, test_log_modes, test_manual_clock,
             test_policies, test_policy_tools, test_apikeys, test_withheld, test_ended_by,
             test_records,
             test_backup, test_master_key_rotate,
             test_two_engines, test_defer_and_reopen, test_sync_progress, test_arguments,
             test_close_and_threads, test_batch, test_changed, test_defer_stop_signals, test_fork, test_gateway_example, test_review_fixes]
    try:
        for t in tests:
            try:
                t()
            except Exception:  # noqa: BLE001
                import traceback
                ok(False, "%s ran to the end" % t.__name__)
                diag(traceback.format_exc())
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print("1..%d" % _n)
    return 1 if _failed else 0


if __name__ == "__main__":
    sys.exit(main())
