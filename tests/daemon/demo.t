#!/usr/bin/env python3
# `serve --demo` (what `make run` starts): the demo account with four agents
# and two queues on the stock policies, an API key and curl lines printed;
# the printed lines work as a shell runs them, setting the variables API.md's
# examples use (SB, KEY, AUTH, ADMIN); the call is read while it is live
# (with its trace) and after (its record); a restart keeps the account and
# prints the key again.
import sys, os, re, json, subprocess
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, Account, ROOT

t = TAP()
d = t.owned(Daemon(args=["--demo"], policy_dir=os.path.join(ROOT, "policies"))).start()
line = d.wait_log(r"api key: (sbk_\S+)", sink=d.out, timeout=10)
t.ok(line is not None, "--demo prints an API key", "\n".join(d.out))
key = re.search(r"api key: (\S+)", line or "api key: none").group(1)
demo = Account(d, "demo", key)
out = "\n".join(d.out)
t.ok("curl" in out and "/v1/calls" in out and "/v1/events" in out and "127.0.0.1:%d" % d.port in out,
     "... and curl lines for this address", out)

r = demo.get("/v1/agents")
t.is_(sorted(a["id"] for a in (r.json or {}).get("agents", [])), ["alice", "bob", "carol", "dave"],
      "four agents")
t.ok(all(a.get("status") == "available" for a in r.json["agents"]), "... all available", r)
t.ok(all(len(a.get("devices", {})) >= 2 and a.get("schedule") for a in r.json["agents"]),
     "... with devices and schedules")
r = demo.get("/v1/queues/support")
t.is_((r.status, r.json.get("policy")), (200, "freeswitch/longest-idle-agent"),
      "queue support uses freeswitch/longest-idle-agent, which rings tier 1 first")
r = demo.get("/v1/queues/sales")
t.is_((r.status, r.json.get("policy")), (200, "freeswitch/round-robin"),
      "queue sales uses freeswitch/round-robin")

# The printed lines, run as printed by a shell (the ring_result line with the
# agent the ring went to, as its comment says): they set the variables
# API.md's examples use, with the same meaning.
printed = [l.strip() for l in out.splitlines() if l.startswith("  export ") or l.startswith("  curl ")]
exports = [l for l in printed if l.startswith("export ")]
t.is_([l.split("=")[0] for l in exports],
      ["export SB", "export KEY", "export AUTH", "export ADMIN"],
      "the demo sets SB, KEY, AUTH and ADMIN, as API.md's examples assume", out)
curls = [l for l in printed if l.startswith("curl ") and " -sN " not in l]


def sh(line):
    """Run a printed line after the exports, from another directory: the
    banner says "a second terminal", which starts in the user's home."""
    p = subprocess.run(["bash", "-c", "\n".join(exports + [line])], capture_output=True,
                       text=True, timeout=20, cwd="/")
    try:
        return json.loads(p.stdout)
    except ValueError:
        return {"raw": p.stdout, "err": p.stderr}


r = sh("printf '%s %s' \"$SB\" \"$AUTH\"")
t.is_(r.get("raw"), "http://127.0.0.1:%d -u demo:%s" % (d.port, key),
      "SB is the base URL and AUTH the curl auth option", r)
order = ["/v1/queues/support", "$SB/v1/calls ", "ring_result", "/v1/calls/c1 ", "hangup",
         "/v1/calls/c1 ", "/v1/agents/bob/status"]
steps = []
for want in order:
    found = [c for c in curls if want in c + " " and c not in steps]
    steps.append(found[0] if found else "missing: " + want)
t.ok(not any(s.startswith("missing") for s in steps),
     "the demo prints the queue, offer, answer, live read, hangup, record read, pause", steps)
pos = [curls.index(s) if s in curls else -1 for s in steps]
t.ok(pos == sorted(pos) and -1 not in pos,
     "... in that order: the call is read while it is live, before the hangup", out)
t.ok("decision trace" in steps[3] and "trace" not in steps[5].split("#")[0] and
     "record" in out and "no trace" in out,
     "... and says the live call shows the trace and the record keeps none", out)
r = sh(steps[0])
t.is_(r.get("id"), "support", "the printed queue read works", r)
r = sh(steps[1])
rings = [a for a in r.get("actions", []) if a.get("type") == "ring"]
t.ok(len(rings) == 1, "the printed offer rings an agent", r)
agent = rings[0]["agent"] if rings else "alice"
r = sh(steps[2].replace('"alice"', '"%s"' % agent))
t.ok([a for a in r.get("actions", []) if a.get("type") == "connect"], "answering it connects", r)
r = sh(steps[3])
t.ok(r.get("state") == "connected" and r.get("trace") and r["trace"][0].get("decision") == "ring",
     "the printed read of the live call shows its decision trace", r)
r = sh(steps[4])
t.ok([a for a in r.get("actions", []) if a.get("type") == "end"], "hanging up ends it", r)
r = sh(steps[5])
t.ok(r.get("state") == "ended" and "trace" not in r and r.get("policy_versions"),
     "the read after the hangup is the record: policy versions, no trace", r)
r = sh(steps[6])
t.is_(r.get("actions"), [], "the printed pause works", r)
# API.md's examples, pasted after the demo's lines.
r = sh('curl -s $AUTH $SB/v1/agents/alice')
t.is_(r.get("id"), "alice", "API.md's `curl -s $AUTH $SB/v1/agents/alice` works after them", r)
r = sh('curl -s -H "$ADMIN" $SB/v1/accounts')
t.ok("demo" in [a.get("id") for a in r.get("accounts", [])],
     "... and so does an admin example with $ADMIN", r)
r = demo.post("/v1/calls", {"call": "s1", "queue": "sales", "caller": "+441632960002"})
t.ok(r.status == 201 and len(r.actions("ring")) == 1, "a sales call rings an agent", r)
demo.post("/v1/calls/s1/abandon")
t.is_(d.stop(), 0, "exit 0")

d.start()
line = d.wait_log(r"api key: (sbk_\S+)", sink=d.out, timeout=10)
t.ok(line and key in line, "a restart prints the same key", "\n".join(d.out))
t.is_(Account(d, "demo", key).get("/v1/agents/alice").status, 200, "... which still works")
t.is_(d.stop(), 0, "exit 0")
t.done()
