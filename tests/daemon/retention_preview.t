#!/usr/bin/env python3
# POST /v1/retention/preview, a sweep's dry run over HTTP, as a data-protection
# engineer uses it before changing an account's retention: what the next sweep
# and one 11 days on would do (counts, reasons, record ids, a legal hold
# overriding), a source not uploaded previewed over every record, a preview
# cut by its time budget carried on with "next" to the same totals, bad input
# refused naming the field, and nothing written: the records, the audit log,
# the policies and data.mdb itself are the same after every preview. The
# scheduled sweep is off, so that nothing else writes meanwhile.
import sys, os, zlib
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision

RETAIN = """\
local P = {}
function P.retain(record, ctx)
  if record.age_days < 10 then return { review_in_days = 10 - record.age_days } end
  if record.outcome == "answered" then
    return { anonymize = true, review_in_days = 30, reason = "answered, 10 days" }
  end
  return { delete = true, reason = "abandoned, 10 days" }
end
return P
"""
DELETE_ALL = """\
local P = {}
function P.retain(record, ctx)
  local n = 0
  for i = 1, 200000 do n = n + 1 end
  return { delete = true, reason = "all gone" }
end
return P
"""

t = TAP()
d = t.owned(Daemon(conf={"sweep_interval": 0})).start()
acme = provision(d, agents=("alice",))
LUA = {"Content-Type": "text/x-lua"}
r = acme.put("/v1/policies/ret", RETAIN, headers=LUA)
t.is_(r.status, 200, "a retention policy uploaded", r)
r = d.admin("PUT", "/v1/accounts/acme", {"name": "Acme", "retention": "ret"})
t.is_(r.status, 200, "the account's retention names it", r)

errors = 0
for i in range(5):
    cid = "c%d" % i
    r = acme.post("/v1/calls", {"call": cid, "queue": "support", "caller": "+44207946000%d" % i})
    errors += r.status != 201
    if i < 3:
        errors += acme.post("/v1/calls/%s/ring_result" % cid,
                            {"agent": "alice", "outcome": "answered"}).status != 200
        errors += acme.post("/v1/calls/%s/hangup" % cid, {"by": "agent"}).status != 200
    else:
        errors += acme.post("/v1/calls/%s/abandon" % cid, {}).status != 200
r = acme.post("/v1/holds", {"id": "h1", "call": "c3", "reason": "dispute"})
t.is_((errors, r.status), (0, 201), "5 calls (3 answered, 2 abandoned), a hold on c3", r)


def state():
    """What a preview must not change."""
    with open(os.path.join(d.data_dir, "data.mdb"), "rb") as f:
        mdb = zlib.crc32(f.read())
    return (acme.get("/v1/records").body, acme.get("/v1/audit").body,
            acme.get("/v1/policies").body, mdb)



def whole(who, body=None):
    """A preview carried on with "next" until done, as a client does: the
    default budget (20 ms) may cut one short on a loaded machine (loading
    the policy counts). The counts, reasons and samples added up; the last
    answer's other fields; the first failure as it came."""
    body = dict(body or {})
    tot = None
    for _ in range(1000):
        r = who.post("/v1/retention/preview", body)
        if r.status != 200:
            return r
        j = r.json
        if tot is None:
            tot = dict(j, reasons={}, samples={})
            for k in ("reviewed", "kept", "anonymized", "deleted", "overridden", "failed"):
                tot[k] = 0
        for k in ("reviewed", "kept", "anonymized", "deleted", "overridden", "failed"):
            tot[k] += j[k]
        for k, n in j["reasons"].items():
            tot["reasons"][k] = tot["reasons"].get(k, 0) + n
        for k, ids in j["samples"].items():
            tot["samples"][k] = tot["samples"].get(k, []) + ids
        tot["done"] = j["done"]
        if j["done"]:
            break
        body.update(next=j["next"], now_ms=j["now_ms"])
        body.pop("in_days", None)
    r.json = tot
    return r

globex = provision(d, account="globex", agents=("gina",))
before = state()

r = whole(acme)
t.ok(r.status == 200 and r.json["reviewed"] == 0 and r.json["scope"] == "due" and
     r.json["policy"] == "ret" and r.json["done"] is True,
     "no body: the next sweep's, nothing due yet", r)
r = whole(acme, {"in_days": 11})
j = r.json if r.status == 200 else {}
t.is_((r.status, j.get("reviewed"), j.get("anonymized"), j.get("deleted"), j.get("overridden"),
       j.get("kept")), (200, 5, 3, 1, 1, 1), "11 days on: 3 anonymized, 1 deleted, 1 held", r)
t.is_(j.get("reasons"), {"anonymize: answered, 10 days": 3, "delete: abandoned, 10 days": 1,
                         "keep: legal hold h1: dispute": 1}, "the reasons", r)
t.is_((j.get("samples") or {}).get("deleted"), ["c4"], "c4 would be deleted", r)
t.is_((j.get("samples") or {}).get("overridden"), ["c3"], "c3's deletion held", r)

body = {"policy": "retention/delete-all", "source": DELETE_ALL, "sample": 1000}
r = whole(acme, body)
j = r.json if r.status == 200 else {}
t.is_((r.status, j.get("scope"), j.get("source"), j.get("reviewed"), j.get("deleted")),
      (200, "all", "given", 5, 4), "a source not uploaded: every record, 4 deleted", r)

# Cut by its budget, carried on with "next": the same totals.
body.update(budget_ms=1, now_ms=j.get("now_ms", 0))
deleted, ids, calls = 0, [], 0
while calls < 100:
    r = acme.post("/v1/retention/preview", body)
    if r.status != 200:
        break
    calls += 1
    deleted += r.json["deleted"]
    ids += r.json["samples"]["deleted"]
    if r.json["done"]:
        break
    body["next"] = r.json["next"]
t.ok(r.status == 200 and r.json["done"] and deleted == 4 and sorted(ids) == ["c0", "c1", "c2", "c4"],
     "budget_ms 1, carried on with next (%d calls): the same 4, each once" % calls, r)

for what, b, st, field in [
        ("negative days", {"in_days": -1}, 400, "in_days"),
        ("now_ms and in_days", {"in_days": 1, "now_ms": 5}, 400, "in_days"),
        ("an unknown field", {"bogus": 1}, 400, "bogus"),
        ("a budget past the daemon's 100 ms", {"budget_ms": 101}, 400, "budget_ms"),
        ("a budget past it written as a real", {"budget_ms": 1000.0}, 400, "budget_ms"),
        ("a policy that is not there", {"policy": "nope"}, 404, "policy"),
        ("a source that does not compile", {"policy": "x", "source": "local P = {"}, 422, "source"),
        ("a source without retain", {"policy": "x", "source": "return { route = function() end }"},
         400, "source"),
        ("a next that is no answer's", {"next": "zz"}, 400, "next")]:
    r = acme.post("/v1/retention/preview", b)
    t.is_((r.status, r.field), (st, field), "%s: %d naming %s" % (what, st, field), r)
r = acme.post("/v1/retention/preview", "[1]")
t.is_(r.status, 400, "a body that is no object: 400", r)
r = d.request("POST", "/v1/retention/preview", {})
t.is_(r.status, 401, "no key: 401", r)
r = whole(globex, {"in_days": 11})
t.ok(r.status == 200 and r.json["reviewed"] == 0 and r.json["account"] == "globex",
     "another account's key previews its own records: none", r)

t.is_(state(), before, "the records, audit log, policies and data.mdb are as they were")
t.ok(not d.wait_log("quarantine", timeout=0.1), "no quarantine in the daemon's log")
t.done()
