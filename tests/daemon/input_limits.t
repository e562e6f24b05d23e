#!/usr/bin/env python3
# The limits engine/daemon/API.md's "Limits" lists for what gateways send
# hold as written: a value at its limit is taken, one past it is refused with
# 400 SB_EINVAL naming the field, and the refusal changes nothing.
import sys, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision, agent_doc, ROOT

t = TAP()
d = t.owned(Daemon()).start()
acme = provision(d)
with open(os.path.join(ROOT, "engine", "daemon", "API.md")) as f:
    limits = f.read().split("\n## Limits\n", 1)[-1].split("\n## ", 1)[0]


def documented(row, text):
    line = next((l for l in limits.splitlines() if l.startswith("| " + row)), "")
    t.ok(text in line, "API.md's Limits: %s: %s" % (row, text), line or limits[:300])


def state():
    return [acme.get(p).body for p in ("/v1/agents", "/v1/queues", "/v1/calls")]


def past(make, field, what):
    """A request past a limit: refused naming the field, nothing changed."""
    before = state()
    r = make()
    t.is_((r.status, r.code, r.field), (400, "SB_EINVAL", field),
          "%s: 400 SB_EINVAL, field %s" % (what, field), r)
    t.is_(state(), before, "... and it changed nothing")


documented("`name` of an account, agent or queue", "at most 128 bytes")
t.is_(acme.put("/v1/agents/x1", agent_doc("x1", name="n" * 128)).status, 200,
      "an agent name of 128 bytes: taken")
past(lambda: acme.put("/v1/agents/x2", agent_doc("x2", name="n" * 129)), "name",
     "a name of 129 bytes")
past(lambda: acme.put("/v1/queues/q2", {"name": "n" * 129}), "name", "a queue name of 129 bytes")

documented("agent: `skills`", "at most 64")
skills = {"s%02d" % i: 1 for i in range(64)}
t.is_(acme.put("/v1/agents/x1", agent_doc("x1", skills=skills)).status, 200, "64 skills: taken")
past(lambda: acme.put("/v1/agents/x1", agent_doc("x1", skills=dict(skills, s64=1))),
     "skills", "65 skills")

documented("queue: `members`", "at most 10,000")
members = [{"agent": "a%d" % i} for i in range(10001)]
past(lambda: acme.put("/v1/queues/big", {"members": members}), "members",
     "a queue document with 10,001 members")

documented("offer: `attrs`", "at most 4,096 bytes")
documented("offer: `priority`", "0 to 100")
# {"x":"yyy..."} written compactly: 8 bytes around the value.
r = acme.post("/v1/calls", {"call": "k1", "queue": "support", "attrs": {"x": "y" * 4088}})
t.is_(r.status, 201, "attrs of 4,096 bytes written compactly: taken", r)
acme.post("/v1/calls/k1/abandon")
past(lambda: acme.post("/v1/calls", {"call": "k2", "queue": "support",
                                     "attrs": {"x": "y" * 4089}}), "attrs", "attrs of 4,097 bytes")
past(lambda: acme.post("/v1/calls", {"call": "k2", "queue": "support", "priority": 101}),
     "priority", "priority 101")

documented("agent status: `reason`", "at most 128 bytes")
r = acme.post("/v1/agents/bob/status", {"status": "paused", "reason": "r" * 128})
t.is_(r.status, 200, "a status reason of 128 bytes: taken", r)
past(lambda: acme.post("/v1/agents/bob/status", {"status": "offline", "reason": "r" * 129}),
     "reason", "a status reason of 129 bytes")

t.is_(d.stop(), 0, "exit 0")
t.done()
