#!/usr/bin/env python3
# A quarantined policy as an operator meets it. A shared policy that fails for
# a reason outside its file (nobody to ring) is quarantined after 5 failures;
# once the reason is gone, a SIGHUP that changes no file lifts the quarantine
# ("quarantined until it is reloaded"): GET /v1/policies, the policy's own
# GET and /metrics say so at once, before any call, and the next call is the
# policy's again. An
# account's upload: PUT a fixed version and the list shows it not quarantined.
import sys, os, signal
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision

# Rejects with the id of the first agent free; fails while nobody is.
PICKY = """\
local P = {}
function P.route(call, agents, ctx)
  return { reject = agents[1].id }
end
return P
"""

t = TAP(deadline=120)
d = t.owned(Daemon())
with open(os.path.join(d.policy_dir, "picky.lua"), "w") as f:
    f.write(PICKY)
d.start()
acme = provision(d, agents=("alice",), queue=None)
r = acme.put("/v1/queues/support", {"policy": "picky", "members": [{"agent": "alice"}]})
t.is_(r.status, 200, "queue support uses the shared policy picky")
t.is_(acme.post("/v1/agents/alice/status", {"status": "paused"}).status, 200, "alice pauses")

n = [0]


def call():
    """Offer a call and end it: the reject reason, or None (a fallback decided)."""
    n[0] += 1
    cid = "c%d" % n[0]
    r = acme.post("/v1/calls", {"call": cid, "queue": "support", "caller": "+4930100001"})
    if r.status != 201:
        return "http %d" % r.status
    rejects = [a.get("reason") for a in r.actions("reject")]
    acme.post("/v1/calls/%s/abandon" % cid)   # 409 once the call was rejected: fine
    return rejects[0] if rejects else None


def state(name):
    """GET /v1/policies's state/failures of the policy; "differs" when
    GET /v1/policies/{name} says otherwise."""
    listed = None
    for p in (acme.get("/v1/policies").json or {}).get("policies", []):
        if p["name"] == name:
            listed = "%s/%s" % (p.get("state"), p.get("failures"))
    one = acme.get("/v1/policies/" + name).json or {}
    return listed if "%s/%s" % (one.get("state"), one.get("failures")) == listed else "differs"


for _ in range(5):
    call()
t.is_(state("picky"), "quarantined/5", "5 failures with nobody to ring quarantine picky")
t.is_(d.metric("switchboard_policy_quarantined"), 1.0, "/metrics counts the quarantine")
t.is_(acme.post("/v1/agents/alice/status", {"status": "available"}).status, 200,
      "alice is back: picky would decide now")
t.is_(call(), None, "but quarantined, it does not: the fallback does")
gen = d.metric("switchboard_policy_generation")

mark = len(d.lines)
d.signal(signal.SIGHUP)
line = d.wait_log(r'msg="reload ok"', after=mark, timeout=15)
t.ok(line, "SIGHUP, no file changed: reload ok")
t.ok(line and " changed=0 " in line and " quarantines_lifted=1 " in line,
     "... and the line says it lifted the quarantine (quarantines_lifted=1)", line)
t.is_(state("picky"), "ok/0", "GET /v1/policies: the quarantine is lifted at once")
t.is_(d.metric("switchboard_policy_quarantined"), 0.0, "/metrics: no quarantine")
t.ok((d.metric("switchboard_policy_generation") or 0) > (gen or 0),
     "/metrics: a new policy generation (%r -> %r)" % (gen, d.metric("switchboard_policy_generation")))
t.is_(call(), "alice", "the next call is picky's again")
mark = len(d.lines)
d.signal(signal.SIGHUP)
line = d.wait_log(r'msg="reload ok"', after=mark, timeout=15)
t.ok(line and " quarantines_lifted=0 " in line, "a SIGHUP with nothing quarantined: "
     "quarantines_lifted=0", line)

# An upload, quarantined, then fixed.
r = acme.put("/v1/policies/mine", PICKY, headers={"Content-Type": "text/x-lua"})
t.is_(r.status, 200, "upload mine (like picky)")
r = acme.put("/v1/queues/support", {"policy": "mine", "members": [{"agent": "alice"}]})
t.is_(r.status, 200, "support routed by mine")
t.is_(acme.post("/v1/agents/alice/status", {"status": "paused"}).status, 200, "alice pauses")
for _ in range(5):
    call()
t.is_(state("mine"), "quarantined/5", "mine is quarantined")
# Another of the account's policies uploaded, then deleted: mine is as it
# was (the quarantine lasts "until it is reloaded or uploaded again").
OTHER = "local P = {}\nfunction P.route(call, agents, ctx) return { wait = 5 } end\nreturn P\n"
r = acme.put("/v1/policies/other", OTHER, headers={"Content-Type": "text/x-lua"})
t.is_(r.status, 200, "another policy, other, uploaded")
t.is_(state("mine"), "quarantined/5", "mine stays quarantined: other's upload lifts nothing of it")
t.is_(d.metric("switchboard_policy_quarantined"), 1.0, "/metrics still counts it")
t.is_(call(), None, "alice paused: the fallback decides, mine does not run")
t.is_(state("mine"), "quarantined/5", "... and its count stays (it did not run)")
t.is_(acme.delete("/v1/policies/other").status, 200, "other deleted")
t.is_(state("mine"), "quarantined/5", "mine stays quarantined after other's delete too")
r = acme.put("/v1/policies/mine", PICKY, headers={"Content-Type": "text/x-lua"})
t.is_(r.status, 200, "the same text of mine uploaded again")
t.is_(state("mine"), "ok/0", "that lifts it")
for _ in range(5):
    call()
t.is_(state("mine"), "quarantined/5", "failing on, mine is quarantined again")
FIXED = "local P = {}\nfunction P.route(call, agents, ctx) return { reject = 'fixed' } end\nreturn P\n"
r = acme.put("/v1/policies/mine", FIXED, headers={"Content-Type": "text/x-lua"})
t.is_(r.status, 200, "a fixed version uploaded")
t.is_(state("mine"), "ok/0", "GET /v1/policies shows it at once, not quarantined")
t.is_(d.metric("switchboard_policy_quarantined"), 0.0, "/metrics: no quarantine")
t.is_(call(), "fixed", "and it decides")
t.is_(d.stop(), 0, "exit 0")
t.done()
