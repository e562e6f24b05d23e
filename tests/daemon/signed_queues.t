#!/usr/bin/env python3
# A queue naming a policy that does not run. With require_signed_policies
# switched on at a restart, an account's upload stored before, unsigned, is
# kept but does not run: the start logs the queues that name it, and a queue
# put newly naming it is refused (400 SB_EINVAL, field policy, saying why), as
# one naming a policy that does not exist is, nothing changed; a queue that
# names it already may still be put, its other fields changed; once a signed
# version is uploaded it may be named again.
import sys, os, json, subprocess
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, binary, provision

t = TAP(deadline=120)
d = t.owned(Daemon()).start()
acme = provision(d, agents=("alice",))  # queue support on the unsigned upload "first"
r = acme.get("/v1/policies/first")
t.is_(r.status, 200, "acme's policy first, unsigned, uploaded without signatures required")
source = r.json["code"]
d.stop()

keys = json.loads(subprocess.run([binary(), "policy", "keygen"], capture_output=True,
                                 text=True, check=True).stdout)
keyfile = os.path.join(d.tmp, "key.json")
with open(keyfile, "w") as f:
    json.dump(keys, f)
s = t.owned(Daemon(conf={"require_signed_policies": "yes", "policy_public_key": keys["public_key"]},
                   tmp=d.tmp, data_dir=d.data_dir, policy_dir=d.policy_dir)).start()
line = s.wait_log(r"policy 'first' of account 'acme' does not run")
t.ok(line and "is unsigned" in line and "queue 'support'" in line,
     "the start with signatures required logs the queue whose policy does not run", line)
acme.d = s

r = acme.put("/v1/queues/sales", {"policy": "first", "members": [{"agent": "alice"}]})
t.ok(r.status == 400 and r.code == "SB_EINVAL" and r.field == "policy" and
     "policy 'first' does not run: require_signed_policies is on, and this account's upload of "
     "it (version " in r.json["error"]["message"] and
     ") is unsigned; upload a signed version, or name another policy" in r.json["error"]["message"],
     "a new queue naming it: 400 SB_EINVAL, field policy, saying why", r)
t.is_(acme.get("/v1/queues/sales").status, 404, "and no queue was made")
r = acme.put("/v1/queues/support", {"policy": "first", "ring_timeout": 30,
                                    "fallback": "ring_all", "members": [{"agent": "alice"}]})
t.is_(r.status, 200, "support, which names it already, may still be put (a fallback of its own "
      "while its policy does not run)", r)
t.is_(acme.get("/v1/queues/support").json.get("ring_timeout"), 30, "... and has the new fields")
r = acme.put("/v1/queues/sales", {"policy": "nosuch"})
t.ok(r.status == 400 and r.code == "SB_EINVAL" and r.field == "policy",
     "(as naming a policy that does not exist is)", r)

signed = subprocess.run([binary(), "policy", "sign", "--key", keyfile, "/dev/stdin"], input=source,
                        capture_output=True, text=True)
t.ok(signed.returncode == 0 and "--@signature " in signed.stdout, "sign first", signed.stderr)
r = acme.put("/v1/policies/first", signed.stdout, headers={"Content-Type": "text/x-lua"})
t.is_(r.status, 200, "upload the signed version", r)
r = acme.put("/v1/queues/sales", {"policy": "first", "members": [{"agent": "alice"}]})
t.is_(r.status, 200, "now a queue may name it", r)
t.done()
