#!/usr/bin/env python3
# Policy uploads share the event loop fairly. An upload compiles the source
# and runs its cases on the loop that serves every account; each is bounded
# (500 ms of cases, one hook's wall time more), but one account sending them
# back to back held the loop from the others (six at once: another account's
# GET waited 1.6 s; found when tried as a hostile policy author). An
# account's uploads now take a tenth of the loop over time: past that, an
# upload is 429 SB_ELIMIT with Retry-After, and another account's is not.
import sys, os, json
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision

# Each case spins until the hook's 50 ms wall limit (the instruction budget
# is set far above it), so the cases of one upload run past their 500 ms and
# the upload is refused: 500 ms and more of the loop, every time.
SPIN = """\
local P = {}
function P.route(call, agents, ctx)
  while true do end
end
return P
"""
CASES = [{"name": "c%d" % i, "expect": {"action": "wait"}} for i in range(100)]
BODY = json.dumps({"source": SPIN, "cases": CASES})

t = TAP(deadline=120)
d = t.owned(Daemon(conf={"policy_instructions": 4000000000, "policy_wall_ms": 50})).start()
acme = provision(d, agents=("alice",), queue=None)
other = provision(d, account="other", agents=("bob",), queue=None)
ct = {"Content-Type": "application/json"}


def upload(a, name):
    return a.req("PUT", "/v1/policies/" + name, BODY, headers=ct)


for i in range(2):
    r = upload(acme, "spin%d" % i)
    t.ok(r.status == 422 and "cases ran for more than 500 ms" in (r.body or ""),
         "upload %d of acme: its cases run past 500 ms, refused as before" % (i + 1), r)
r = upload(acme, "spin2")
e = (r.json or {}).get("error", {})
t.ok(r.status == 429 and e.get("code") == "SB_ELIMIT" and
     "this account's policy uploads took" in e.get("message", "") and
     "retry in" in e.get("message", ""),
     "the third at once: 429 SB_ELIMIT, saying why and when to retry", r)
ra = {k.lower(): v for k, v in (r.headers or {}).items()}.get("retry-after", "")
t.ok(ra.isdigit() and 1 <= int(ra) <= 10, "... with Retry-After in seconds (%s)" % ra)
t.ok(d.wait_log(r'msg="policy rejected".*policy=spin2', timeout=1) is None,
     "... and the refused upload ran nothing (no 'policy rejected' line for it)")
r = upload(other, "spin0")
t.ok(r.status == 422, "another account's upload is not held back by acme's", r)
r = acme.put("/v1/policies/fine", "local P = {}\nfunction P.route(c, a, ctx) return {} end\n"
             "return P\n")
t.is_(r.status, 429, "acme's next upload waits its turn too, however small")
t.done()
