#!/usr/bin/env python3
"""kill9 — the daemon killed with SIGKILL at random moments under load, many
times, restarted on the same data directory each time, and checked:

  * every acknowledged (2xx) request is there: each call is in the state its
    last acknowledged event left it in — or the state the one request in
    flight at the kill would have made, never anything else; agent statuses,
    agent documents and the account's policy version likewise;
  * no agent is stuck reserved or double-booked: an agent is reserved exactly
    when one live call rings it, on a call exactly when one connected call
    has it, available only when no call names it — and no call waits while a
    member is free (the policy rings anyone available);
  * every call is in a consistent state, and the queue's waiting count
    matches the calls that wait;
  * the data file checks clean: `mdb_stat -efa` and `mdb_dump -a` read it
    all, and LMDB's pages add up (2 meta pages + every tree's pages + the
    free pages = the pages used; free pages distinct and in range).

The load: four call workers (offer, ring results — one in five not answered
— hangup or abandon), one setting agent statuses, one replacing agent
documents, one uploading policy versions; the map starts at 256 KiB so it
grows under load. After each check the calls left half-way are finished
through the API (also acknowledged events), so every round starts with free
agents.

Usage: kill9.py [KILLS]  (default $SB_KILLS or 50). Speaks TAP.
"""
import hashlib
import http.client
import json
import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "daemon"))
sys.path.insert(0, HERE)
from sbtest import TAP, Daemon, basic  # noqa: E402
from mdbcheck import check_data_file  # noqa: E402

KILLS = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("SB_KILLS", "50"))
SEED = int(os.environ.get("SB_SEED", str(int(time.time()))))
rng = random.Random(SEED)

QUEUE_AGENTS = ["a%02d" % i for i in range(1, 9)]
STATUS_AGENTS = ["s%02d" % i for i in range(1, 5)]
DOC_AGENTS = ["d%02d" % i for i in range(1, 5)]
CALL_WORKERS = 4

# Ring the available agent whose id sorts first: with this policy a call
# never waits while a member is free, which the checks rely on.
POLICY = """\
local P = {}
function P.route(call, agents, ctx)
  local best
  for _, a in ipairs(agents) do
    if not best or a.id < best.id then best = a end
  end
  if not best then return { wait = 3600 } end
  return { ring = best.id, device = "softphone" }
end
return P
"""

t = TAP(deadline=120 + KILLS * 8)
t.diag("seed %d (SB_SEED=%d reproduces the kill timings)" % (SEED, SEED))


class Lost(Exception):
    """The daemon went away during a request: its outcome is unknown."""


class Client:
    def __init__(self, d, auth):
        self.d, self.auth, self.c = d, auth, None

    def req(self, method, path, body=None, admin=False):
        if self.c is None:
            self.c = http.client.HTTPConnection(self.d.host, self.d.port, timeout=10)
        h = {"Authorization": "Bearer " + self.d.token if admin else self.auth}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        try:
            self.c.request(method, path, body=data, headers=h)
            r = self.c.getresponse()
            raw = r.read()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise Lost(str(e))
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        return r.status, doc

    def req_raw(self, method, path, body, ctype):
        if self.c is None:
            self.c = http.client.HTTPConnection(self.d.host, self.d.port, timeout=10)
        try:
            self.c.request(method, path, body=body.encode(),
                           headers={"Authorization": self.auth, "Content-Type": ctype})
            r = self.c.getresponse()
            raw = r.read()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise Lost(str(e))
        try:
            return r.status, json.loads(raw)
        except ValueError:
            return r.status, None

    def close(self):
        if self.c:
            self.c.close()
        self.c = None


# ------------------------------------------------------------------------
# The model: what acknowledged requests say the state is.

class Call:
    """A call's acknowledged state and, when its last request's outcome is
    unknown, the states that request could have left."""

    def __init__(self, cid):
        self.id = cid
        self.acked = None      # None: the offer was never acknowledged
        self.maybe = []        # states an unanswered request may have made
        self.events = 0        # acknowledged events
        self.done = False      # verified ended

    def ack(self, state):
        self.acked, self.maybe = state, []
        self.events += 1

    def unknown(self, *states):
        self.maybe = list(states)


calls = {}           # id -> Call
statuses = {a: ("available", []) for a in STATUS_AGENTS}   # acked, maybe
docs = {a: (0, []) for a in DOC_AGENTS}                    # acked version, maybe
lock = threading.Lock()
acked_events = [0]
stats = {"requests": 0, "unknown": 0}


def ring_of(doc, cid):
    for a in (doc or {}).get("actions") or []:
        if a.get("type") == "ring" and a.get("call") == cid:
            return a.get("agent")
    return None


def note_ack():
    with lock:
        acked_events[0] += 1
        stats["requests"] += 1


def note_unknown():
    with lock:
        stats["unknown"] += 1
        stats["requests"] += 1


def call_worker(cl, w, epoch, stop, errors):
    n = 0
    while not stop.is_set():
        n += 1
        cid = "e%dw%dn%d" % (epoch, w, n)
        c = Call(cid)
        with lock:
            calls[cid] = c
        try:
            c.unknown(("waiting",), ("ringing", "*"))
            st, doc = cl.req("POST", "/v1/calls", {"call": cid, "queue": "q", "caller": "+4930%07d" % (n % 10 ** 7)})
            if st != 201:
                errors.append("offer %s: %d %r" % (cid, st, doc))
                return
            agent = ring_of(doc, cid)
            c.ack(("ringing", agent) if agent else ("waiting",))
            note_ack()
            while agent and not stop.is_set():
                if rng.random() < 0.2:   # nobody answers: it rings the next or waits
                    c.unknown(("ringing", "*"), ("waiting",))
                    st, doc = cl.req("POST", "/v1/calls/%s/ring_result" % cid,
                                     {"agent": agent, "outcome": "no_answer"})
                    if st != 200:
                        errors.append("no_answer %s: %d %r" % (cid, st, doc))
                        return
                    agent = ring_of(doc, cid)
                    c.ack(("ringing", agent) if agent else ("waiting",))
                    note_ack()
                    continue
                c.unknown(("connected", agent))
                st, doc = cl.req("POST", "/v1/calls/%s/ring_result" % cid,
                                 {"agent": agent, "outcome": "answered"})
                if st != 200:
                    errors.append("answer %s: %d %r" % (cid, st, doc))
                    return
                c.ack(("connected", agent))
                note_ack()
                if stop.is_set():
                    return
                c.unknown(("ended", "answered"))
                st, doc = cl.req("POST", "/v1/calls/%s/hangup" % cid)
                if st != 200:
                    errors.append("hangup %s: %d %r" % (cid, st, doc))
                    return
                c.ack(("ended", "answered"))
                note_ack()
                break
            if c.acked == ("waiting",) and not stop.is_set():
                c.unknown(("ended", "abandoned"))
                st, doc = cl.req("POST", "/v1/calls/%s/abandon" % cid)
                if st != 200:
                    errors.append("abandon %s: %d %r" % (cid, st, doc))
                    return
                c.ack(("ended", "abandoned"))
                note_ack()
        except Lost:
            note_unknown()
            return


def status_worker(cl, stop, errors):
    while not stop.is_set():
        a = rng.choice(STATUS_AGENTS)
        want = rng.choice(["available", "paused", "offline"])
        with lock:
            acked, _ = statuses[a]
            statuses[a] = (acked, [want])
        try:
            st, doc = cl.req("POST", "/v1/agents/%s/status" % a, {"status": want, "reason": "k9"})
        except Lost:
            note_unknown()
            return
        if st != 200:
            errors.append("status %s: %d %r" % (a, st, doc))
            return
        with lock:
            statuses[a] = (want, [])
        note_ack()


def policy_variant(v):
    """The routing policy with a comment that makes each version distinct."""
    return POLICY + "-- variant %d\n" % v


def version_of(src):
    return hashlib.sha256(src.encode()).hexdigest()[:16]


policy_state = {"acked": 0, "maybe": []}


def policy_worker(cl, stop, errors):
    while not stop.is_set():
        v = policy_state["acked"] + 1
        policy_state["maybe"] = [v]
        try:
            st, doc = cl.req_raw("PUT", "/v1/policies/first", policy_variant(v), "text/x-lua")
        except Lost:
            note_unknown()
            return
        if st != 200 or (doc or {}).get("version") != version_of(policy_variant(v)):
            errors.append("policy put v%d: %d %r" % (v, st, doc))
            return
        policy_state["acked"], policy_state["maybe"] = v, []
        note_ack()
        stop.wait(0.05)


def doc_worker(cl, stop, errors):
    while not stop.is_set():
        a = rng.choice(DOC_AGENTS)
        with lock:
            acked, _ = docs[a]
            v = acked + 1
            docs[a] = (acked, [v])
        try:
            st, doc = cl.req("PUT", "/v1/agents/%s" % a, {
                "name": "v%d" % v, "devices": {"softphone": "sip:%s@pbx.example" % a},
                "skills": {"k%d" % (v % 7): v % 10}, "preferences": {"note": "x" * (v % 300)}})
        except Lost:
            note_unknown()
            return
        if st != 200:
            errors.append("put %s: %d %r" % (a, st, doc))
            return
        with lock:
            docs[a] = (v, [])
        note_ack()


# ------------------------------------------------------------------------
# Checks.

def observed_state(doc):
    s = doc.get("state")
    if s == "ringing":
        r = doc.get("ringing") or []
        return ("ringing", r[0]["agent"] if len(r) == 1 else tuple(x["agent"] for x in r))
    if s == "connected":
        return ("connected", doc.get("agent"))
    if s == "ended":
        return ("ended", doc.get("outcome"))
    return (s,)


def matches(obs, want):
    return len(obs) == len(want) and all(w == "*" or o == w for o, w in zip(obs, want))


def verify(cl, problems, all_calls=False):
    """Compare the daemon's state with the model; returns the live calls."""
    live = {}
    verified = 0
    for cid, c in list(calls.items()):
        if c.done and not all_calls:
            continue
        st, doc = cl.req("GET", "/v1/calls/" + cid)
        if st == 404:
            if c.acked is not None:
                problems.append("call %s: acknowledged %r but 404" % (cid, c.acked))
            elif not any(m in (("waiting",), ("ringing", "*")) for m in c.maybe):
                problems.append("call %s: unacknowledged, 404 unexpected" % cid)
            c.done = True   # never existed
            continue
        if st != 200:
            problems.append("call %s: GET %d %r" % (cid, st, doc))
            continue
        obs = observed_state(doc)
        allowed = ([c.acked] if c.acked else []) + c.maybe
        if not any(matches(obs, w) for w in allowed):
            problems.append("call %s: state %r, acknowledged %r, in flight %r"
                            % (cid, obs, c.acked, c.maybe))
        verified += c.events
        if obs[0] == "ended":
            c.done = True
            c.acked, c.maybe = obs, []
        else:
            live[cid] = (obs, doc)
            if c.acked is None or c.maybe:  # the state seen is now the known one
                c.acked, c.maybe = obs, []
    st, doc = cl.req("GET", "/v1/agents")
    agents = {a["id"]: a for a in (doc or {}).get("agents", [])}
    for a in QUEUE_AGENTS + STATUS_AGENTS + DOC_AGENTS:
        if a not in agents:
            problems.append("agent %s missing" % a)
    # Agents of the queue against the live calls.
    ringing, connected = {}, {}
    for cid, (obs, d) in live.items():
        if obs[0] == "ringing":
            for x in (d.get("ringing") or []):
                ringing.setdefault(x["agent"], []).append(cid)
        elif obs[0] == "connected":
            connected.setdefault(obs[1], []).append(cid)
    waiting = [cid for cid, (obs, _) in live.items() if obs[0] == "waiting"]
    free = []
    for a in QUEUE_AGENTS:
        ag = agents.get(a) or {}
        s, on = ag.get("status"), ag.get("call")
        r, k = ringing.get(a, []), connected.get(a, [])
        if s == "reserved":
            if len(r) != 1 or k or on != r[0]:
                problems.append("agent %s reserved (call %r) but rung by %r, connected to %r"
                                % (a, on, r, k))
        elif s == "on_call":
            if len(k) != 1 or r or on != k[0]:
                problems.append("agent %s on_call (call %r) but connected to %r, rung by %r"
                                % (a, on, k, r))
        elif s == "available":
            free.append(a)
            if r or k or on:
                problems.append("agent %s available but named by calls %r %r (call %r)"
                                % (a, r, k, on))
        else:
            problems.append("agent %s in status %r" % (a, s))
    if waiting and free:
        problems.append("calls %r wait while %r are available" % (waiting[:5], free))
    st, q = cl.req("GET", "/v1/queues/q")
    if st != 200 or q.get("waiting") != len(waiting):
        problems.append("queue q: waiting %r, but %d calls wait" % ((q or {}).get("waiting"), len(waiting)))
    # Calls taken: every answered call counts once for its agent.
    taken = sum((agents.get(a) or {}).get("stats", {}).get("calls_taken", 0) for a in QUEUE_AGENTS)
    answered = sum(1 for c in calls.values() if c.done and c.acked == ("ended", "answered"))
    if not (answered <= taken <= answered + len(connected) + len(live)) and all_calls:
        problems.append("calls_taken %d for %d answered calls (%d connected)"
                        % (taken, answered, len(connected)))
    # Agents whose status and documents were set.
    for a in STATUS_AGENTS:
        acked, maybe = statuses[a]
        s = (agents.get(a) or {}).get("status")
        if s != acked and s not in maybe:
            problems.append("agent %s: status %r, acknowledged %r, in flight %r" % (a, s, acked, maybe))
        statuses[a] = (s, [])
    st, doc = cl.req("GET", "/v1/policies")
    ver = {p["name"]: p["version"] for p in (doc or {}).get("policies", [])
           if p.get("source") == "account"}.get("first")
    allowed = [policy_state["acked"]] + policy_state["maybe"]
    seen = [v for v in allowed if version_of(policy_variant(v)) == ver]
    if not seen:
        problems.append("policy 'first': version %r, acknowledged v%d, in flight %r"
                        % (ver, policy_state["acked"], policy_state["maybe"]))
    else:
        policy_state["acked"], policy_state["maybe"] = seen[0], []
    for a in DOC_AGENTS:
        acked, maybe = docs[a]
        name = (agents.get(a) or {}).get("name", "v0")
        v = int(name[1:]) if name and name[1:].isdigit() else -1
        if v != acked and v not in maybe:
            problems.append("agent %s: document version %r, acknowledged %d, in flight %r"
                            % (a, name, acked, maybe))
        docs[a] = (max(v, 0), [])
    return live, verified


def finish(cl, live, problems):
    """End the calls left half-way (acknowledged events too)."""
    for cid, (obs, d) in live.items():
        c = calls[cid]
        try:
            if obs[0] == "ringing":
                agent = (d.get("ringing") or [{}])[0].get("agent")
                st, doc = cl.req("POST", "/v1/calls/%s/ring_result" % cid,
                                 {"agent": agent, "outcome": "answered"})
                if st != 200:
                    problems.append("finishing %s: answer %d %r" % (cid, st, doc))
                    continue
                c.ack(("connected", agent))
                note_ack()
                obs = ("connected", agent)
            if obs[0] == "connected":
                st, doc = cl.req("POST", "/v1/calls/%s/hangup" % cid)
                want = ("ended", "answered")
            else:
                st, doc = cl.req("POST", "/v1/calls/%s/abandon" % cid)
                want = ("ended", "abandoned")
            if st != 200:
                problems.append("finishing %s: %d %r" % (cid, st, doc))
                continue
            c.ack(want)
            note_ack()
        except Lost:
            problems.append("finishing %s: the daemon went away" % cid)


# ------------------------------------------------------------------------

# A small first map, so it grows under load (and some kills land in growth).
d = Daemon(conf={"sync": "group", "log_level": "info", "idle_timeout": 30, "map_size": "256K"})
t.cleanups.append(d.cleanup)
d.start()
r = d.admin("POST", "/v1/accounts", {"id": "acme", "name": "Acme"})
r2 = d.admin("POST", "/v1/accounts/acme/keys")
auth = basic("acme", r2.json["key"])
setup = Client(d, auth)
r = d.request("PUT", "/v1/policies/first", policy_variant(0), auth=auth,
              headers={"Content-Type": "text/x-lua"})
ok_setup = r.status == 200 and r.json.get("version") == version_of(policy_variant(0))
for a in QUEUE_AGENTS + STATUS_AGENTS + DOC_AGENTS:
    st, _ = setup.req("PUT", "/v1/agents/" + a, {"name": "v0", "status": "available",
                                                  "devices": {"softphone": "sip:%s@pbx.example" % a}})
    ok_setup = ok_setup and st == 200
st, _ = setup.req("PUT", "/v1/queues/q", {"policy": "first", "ring_timeout": 600,
                                         "members": [{"agent": a} for a in QUEUE_AGENTS]})
ok_setup = ok_setup and st == 200
setup.close()
t.ok(ok_setup, "provisioned: account, policy, %d agents, queue" %
     len(QUEUE_AGENTS + STATUS_AGENTS + DOC_AGENTS))

problems = []
growths = 0
kills = 0
verified_total = 0
t_start = time.monotonic()
restart_ms = []
for epoch in range(1, KILLS + 1):
    errors = []
    stop = threading.Event()
    clients = [Client(d, auth) for _ in range(CALL_WORKERS + 3)]
    threads = [threading.Thread(target=call_worker, args=(clients[w], w, epoch, stop, errors))
               for w in range(CALL_WORKERS)]
    threads.append(threading.Thread(target=status_worker, args=(clients[-2], stop, errors)))
    threads.append(threading.Thread(target=doc_worker, args=(clients[-1], stop, errors)))
    threads.append(threading.Thread(target=policy_worker, args=(clients[-3], stop, errors)))
    for th in threads:
        th.start()
    # Most kills land under steady load; some right after start-up.
    time.sleep(rng.uniform(0, 0.05) if rng.random() < 0.2 else rng.uniform(0.05, 0.5))
    growths += sum(1 for line in d.lines if "storage map grown" in line)
    d.proc.kill()
    d.proc.wait()
    stop.set()
    for th in threads:
        th.join(30)
    for c in clients:
        c.close()
    kills += 1
    if errors:
        problems.extend("round %d: %s" % (epoch, e) for e in errors)
    bad = check_data_file(d.data_dir)
    if bad:
        problems.append("round %d: data file: %s" % (epoch, bad))
    t0 = time.monotonic()
    d.start()
    restart_ms.append((time.monotonic() - t0) * 1000)
    cl = Client(d, auth)
    try:
        live, v = verify(cl, problems, all_calls=(epoch == KILLS))
        verified_total = v if epoch == KILLS else verified_total
        finish(cl, live, problems)
    except Lost as e:
        problems.append("round %d: the daemon went away while checking: %s" % (epoch, e))
    cl.close()
    if d.proc.poll() is not None:
        problems.append("round %d: the daemon exited after restart" % epoch)
        break
    if len(problems) > 20:
        break

# A last, complete check after a clean restart, then a clean stop.
cl = Client(d, auth)
live, verified_total = verify(cl, problems, all_calls=True)
cl.close()
t.ok(not problems, "%d kills survived: every acknowledged event present, no agent stuck or "
     "double-booked, calls consistent, data file clean" % kills, "\n".join(problems[:20]))
t.is_(len(live), 0, "no call left half-way after the clean-up")
rc = d.stop()
t.is_(rc, 0, "the daemon stops cleanly after all that")
t.ok(check_data_file(d.data_dir) is None, "the data file checks clean after the clean stop",
     check_data_file(d.data_dir))
sanitizer = [l for l in d.lines if "Sanitizer" in l or "runtime error" in l]
t.ok(not sanitizer, "no sanitizer reports", "\n".join(sanitizer[:20]))
n_calls = len(calls)
t.diag("kills survived: %d; acknowledged events: %d (%d requests, %d cut off by a kill); "
       "calls: %d; restart median %.0f ms; %.0f s" %
       (kills, acked_events[0], stats["requests"], stats["unknown"], n_calls,
        sorted(restart_ms)[len(restart_ms) // 2] if restart_ms else 0, time.monotonic() - t_start))
t.diag("map growths under load: %d (the map starts at 256 KiB)" % growths)
t.diag("acknowledged events verified: %d (every call's final state checked after the last "
       "restart; statuses and documents after each)" % acked_events[0])
t.done()
