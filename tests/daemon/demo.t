#!/usr/bin/env python3
# `serve --demo` (what `make run` starts): the demo account with four agents
# and two queues on the stock policies, an API key and curl lines printed;
# the printed lines work; a restart keeps the account and prints the key again.
import sys, os, re
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, Account, ROOT

t = TAP()
d = Daemon(args=["--demo"], policy_dir=os.path.join(ROOT, "policies"))
t.cleanups.append(d.cleanup)
d.start()
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
t.is_((r.status, r.json.get("policy")), (200, "longest-idle"), "queue support uses longest-idle")
r = demo.get("/v1/queues/sales")
t.is_((r.status, r.json.get("policy")), (200, "freeswitch/round-robin"),
      "queue sales uses freeswitch/round-robin")

r = demo.post("/v1/calls", {"call": "c1", "queue": "support", "caller": "+441632960001"})
rings = r.actions("ring")
t.ok(r.status == 201 and len(rings) == 1, "the printed offer rings an agent", r)
agent = rings[0]["agent"] if rings else "alice"
r = demo.post("/v1/calls/c1/ring_result", {"agent": agent, "outcome": "answered"})
t.ok(r.actions("connect"), "answering it connects", r)
r = demo.post("/v1/calls/c1/hangup")
t.ok(r.actions("end"), "hanging up ends it", r)
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
