#!/usr/bin/env python3
# Call records over HTTP: list, access requests (JSON and CSV, each in the
# audit log), erasure requests (POST /v1/erasure), legal holds, aggregates,
# the audit log, and the daemon's scheduled sweep (retention reviews,
# purging a deleted account).
import sys, os, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision

RETAIN = """\
local P = {}
-- calls marked short-lived go two seconds after they end (time for the test
-- to see the record first, however slow the machine); the rest stay
function P.retain(record, ctx)
  if not record.attrs.short then return { keep = true } end
  if ctx.now - record.ended >= 2 then return { delete = true, reason = "short-lived" } end
  return { review_in_days = 0.00001 }
end
function P.erase(record, request, ctx)
  if record.attrs.invoice then return { keep = true, reason = "invoice" } end
  return { delete = true }
end
return P
"""

t = TAP()
d = t.owned(Daemon(conf={"sweep_interval": 1})).start()
acme = provision(d, agents=("alice", "bob"))
r = acme.put("/v1/policies/ret", RETAIN, headers={"Content-Type": "text/x-lua"})
t.is_(r.status, 200, "a retention policy", r)
r = d.admin("PUT", "/v1/accounts/acme", {"name": "Acme", "personal_attrs": ["name"],
                                          "retention": "ret"})
t.is_(r.status, 200, "the account uses it and marks attribute 'name' personal")
t.is_((r.json.get("personal_attrs"), r.json.get("retention")), (["name"], "ret"), "... and shows it")
for bad, field in (({"retention": ""}, "retention"),
                   ({"personal_attrs": ["email", "email"]}, "personal_attrs[1]")):
    body = {"name": "Acme", "personal_attrs": ["name"], "retention": "ret"}
    body.update(bad)
    r = d.admin("PUT", "/v1/accounts/acme", body)
    t.ok(r.status == 400 and r.field == field, "%s: 400 naming %s" % (bad, field), r)
r = d.admin("GET", "/v1/accounts/acme")
t.is_((r.json.get("personal_attrs"), r.json.get("retention")), (["name"], "ret"),
      "... and the account is as it was")
t.ok("audit_days" in r.json and r.json["audit_days"] is None,
     "its audit log is kept as long as the account: audit_days null", r.json)
r = d.admin("PUT", "/v1/accounts/acme", {"name": "Acme", "personal_attrs": ["name"],
                                          "retention": "ret", "audit_days": 400})
t.is_((r.status, (r.json or {}).get("audit_days")), (200, 400), "PUT with audit_days 400", r)
r = d.admin("PUT", "/v1/accounts/acme", {"name": "Acme", "personal_attrs": ["name"],
                                          "retention": "ret"})
t.is_((r.status, r.json.get("audit_days", "absent")), (200, None),
      "a PUT without it: back to null, the default")


def call(cid, caller, answer=True, attrs=None):
    body = {"call": cid, "queue": "support", "caller": caller}
    if attrs:
        body["attrs"] = attrs
    r = acme.post("/v1/calls", body)
    ring = r.actions("ring")
    if answer and ring:
        acme.post("/v1/calls/%s/ring_result" % cid, {"agent": ring[0]["agent"], "outcome": "answered"})
        acme.post("/v1/calls/%s/hangup" % cid)
    else:
        acme.post("/v1/calls/%s/abandon" % cid)


call("c1", "+442079460001", attrs={"name": "Jane", "language": "en"})
call("c2", "+442079460001", attrs={"invoice": "INV-7"})
call("c3", "+442079460002", answer=False)

r = acme.get("/v1/records")
t.is_(r.status, 200, "GET /v1/records lists records")
t.is_(sorted(x["id"] for x in r.json["records"]), ["c1", "c2", "c3"], "... all three")
t.ok(all("caller" not in x for x in r.json["records"]), "... without numbers")
r = acme.get("/v1/records?limit=1")
t.is_(len(r.json["records"]), 1, "?limit=1")
seen = []
while r.status == 200 and r.json["records"] and len(seen) < 10:
    last = r.json["records"][-1]
    seen.append(last["id"])
    r = acme.get("/v1/records?limit=1&before_ms=%d&before_id=%s" % (last["ended_ms"], last["id"]))
t.is_(seen, ["c3", "c2", "c1"], "pages of one with before_ms and before_id: each record once", r)

r = acme.get("/v1/records?queue=support")
t.is_((r.status, len(r.json["records"])), (200, 3), "?queue=support: its three records", r)
r = acme.get("/v1/records?queue=nope")
t.ok(r.status == 404 and r.code == "SB_ENOTFOUND" and r.field == "queue",
     "?queue= of a queue the account never had: 404 SB_ENOTFOUND naming queue, as aggregates", r)
beta = provision(d, account="beta", agents=("carol",), queue="sales")
beta.post("/v1/calls", {"call": "s1", "queue": "sales", "caller": "+442079460009"})
beta.post("/v1/calls/s1/abandon")
t.is_(beta.delete("/v1/queues/sales").status, 200, "another account's sales takes a call, is deleted")
r = beta.get("/v1/records?queue=sales")
t.is_((r.status, [x["id"] for x in r.json.get("records", [])]), (200, ["s1"]),
      "?queue= of the deleted queue still lists its record", r)

r = acme.get("/v1/records?number=+442079460001")
t.is_(r.status, 200, "access request: GET /v1/records?number=+44... (+ as typed)")
t.is_([x["id"] for x in r.json["records"]], ["c1", "c2"], "... finds c1 and c2")
t.is_(r.json["records"][0].get("caller"), "+442079460001", "... decrypted")
t.is_(r.json["records"][0].get("personal_attrs"), {"name": "Jane"}, "... with personal attributes")
r = acme.get("/v1/records?number=%2B442079460001&format=csv")
t.is_((r.status, r.headers.get("content-type")), (200, "text/csv; charset=utf-8"),
      "?format=csv answers text/csv")
lines = r.body.strip().split("\r\n")
t.is_(len(lines), 3, "... a header and two records")
t.ok(lines[0].startswith("id,role,caller,called"), "... header", lines[0])
t.is_(r.headers.get("switchboard-live-calls"), "0", "... Switchboard-Live-Calls: 0")
r = acme.get("/v1/records?number=12345")
t.is_((r.status, r.field), (400, "number"), "a number that is not E.164: 400")
r = acme.get("/v1/records?format=xml")
t.is_((r.status, r.field), (400, "format"), "an unknown format: 400")
# Pages of one: each page a request of its own, with its own entry.
r = acme.get("/v1/records?number=%2B442079460001&limit=1")
nx = (r.json or {}).get("next", "")
t.ok(r.status == 200 and [x["id"] for x in r.json["records"]] == ["c1"] and nx,
     "?limit=1: a page of c1, and next", r)
r = acme.get("/v1/records?number=%2B442079460001&limit=1&after=" + nx)
t.ok(r.status == 200 and [x["id"] for x in r.json["records"]] == ["c2"] and "next" not in r.json,
     "... and the page after it: c2, the last", r)
# Every disclosure is in the account's audit log: an access_request entry
# for each request and each page, with its count and format and no number;
# the refused ones (400) disclosed nothing and have none.
r = acme.get("/v1/audit")
acc = [e for e in r.json["entries"] if e["action"] == "access_request"]
t.is_([(e["source"], e["reason"]) for e in acc],
      [("access", "access request: 2 records disclosed as JSON"),
       ("access", "access request: 2 records disclosed as CSV"),
       ("access", "access request: 1 record disclosed as JSON, more to follow"),
       ("access", "access request: 1 record disclosed as JSON, a later page")],
      "GET /v1/audit: an access_request entry, source access, for each access request and page, "
      "saying how many records and how", r.body)
t.ok(acc and all("call" not in e for e in acc) and "7946" not in r.body,
     "... with no call and no number", r.body)

r = acme.post("/v1/holds", {"call": "c1", "reason": "complaint"})
t.is_(r.status, 201, "POST /v1/holds places a hold")
hold = r.json.get("id", "")
t.is_(r.headers.get("location"), "/v1/holds/" + hold, "... Location")
r = acme.get("/v1/holds")
t.is_([h["id"] for h in r.json["holds"]], [hold], "GET /v1/holds lists it")
listed = r.json["holds"][0]
r = acme.get("/v1/holds/" + hold)
t.is_((r.status, r.json), (200, listed), "GET of its Location: the hold, as the list gives it", r)
r = acme.req("HEAD", "/v1/holds/" + hold)
t.is_((r.status, r.body), (200, ""), "... HEAD too, without the body")
r = acme.get("/v1/holds/nope")
t.is_((r.status, r.code, r.field), (404, "SB_ENOTFOUND", "hold"),
      "GET /v1/holds/{id} of no hold: 404 SB_ENOTFOUND, field hold", r)
other = provision(d, account="other", agents=(), queue=None)
r = other.get("/v1/holds/" + hold)
t.is_((r.status, r.code, r.field), (404, "SB_ENOTFOUND", "hold"),
      "... and of another account's hold, as of none", r)
r = d.admin("DELETE", "/v1/accounts/acme")
t.is_((r.status, r.code, r.field), (409, "SB_EHOLD", "account"),
      "deleting an account with a legal hold: 409 SB_EHOLD naming the account", r)
t.ok("1 legal hold (%s)" % hold in (r.json or {}).get("error", {}).get("message", ""),
     "... and the hold", r)
t.is_(acme.get("/v1/calls/c1").status, 200, "... and the account and its records are still there")

r = acme.post("/v1/erasure", {"number": "+442079460001"})
t.is_(r.status, 200, "POST /v1/erasure")
t.is_((r.json.get("deleted"), r.json.get("kept")), (0, 2), "... keeps c1 (hold) and c2 (invoice)")
t.is_(r.json.get("reasons"), {"keep: legal hold %s: complaint" % hold: 1, "keep: invoice": 1},
      "... and says why")
r = acme.post("/v1/erasure", {"number": "+442079460001", "extra": 1})
t.is_((r.status, r.field), (400, "extra"), "unknown fields in the erasure body: 400")
r = acme.delete("/v1/holds/" + hold)
t.is_(r.status, 200, "DELETE /v1/holds/{id} releases it")
r = acme.post("/v1/erasure", {"number": "+442079460001"})
t.is_((r.json.get("deleted"), r.json.get("kept")), (1, 1), "erasure again: c1 deleted, c2 kept")

r = acme.get("/v1/aggregates")
rows = [x for x in r.json["days"] if x["queue"] is None]
t.is_((rows[0]["offered"], rows[0]["answered"], rows[0]["abandoned"]) if rows else None, (3, 2, 1),
      "GET /v1/aggregates: 3 offered, 2 answered, 1 abandoned (deleting changed nothing)")
r = acme.get("/v1/audit")
acts = [e["action"] for e in r.json["entries"]]
t.ok("hold_placed" in acts and "hold_released" in acts and "delete" in acts,
     "GET /v1/audit shows holds and the deletion", acts)
t.ok("7946" not in r.body, "... and no number")

# The scheduled sweep (sweep_interval = 1): a short-lived call goes about two
# seconds after it ends, without anyone asking.
call("c4", "+442079460004", answer=False, attrs={"short": True})
t.is_(acme.get("/v1/calls/c4").status, 200, "c4 has a record")
deadline = time.time() + 30
while time.time() < deadline and acme.get("/v1/calls/c4").status != 404:
    time.sleep(0.2)
t.is_(acme.get("/v1/calls/c4").status, 404, "the daemon's sweep deleted it on schedule")
t.is_(acme.get("/v1/calls/c3").status, 200, "and kept the others")
t.ok(d.metric("switchboard_sweeps_total") >= 1, "switchboard_sweeps_total counts sweeps")
t.ok(d.metric("switchboard_swept_records_total") >= 1, "switchboard_swept_records_total too")

# An erasure a hold kept from a record runs again when the hold is released:
# the sweep that does it logs and counts it like its reviews.
call("c6", "+442079460006")
r = acme.post("/v1/holds", {"call": "c6", "reason": "dispute"})
h6 = r.json.get("id", "")
r = acme.post("/v1/erasure", {"number": "+442079460006"})
t.is_((r.status, r.json.get("kept")), (200, 1), "an erasure the hold keeps c6 from", r)
swept = d.metric("switchboard_swept_records_total")
t.is_(acme.delete("/v1/holds/" + h6).status, 200, "the hold released")
deadline = time.time() + 30
while time.time() < deadline and acme.get("/v1/calls/c6").status != 404:
    time.sleep(0.2)
t.is_(acme.get("/v1/calls/c6").status, 404, "the next sweep runs the erasure: c6 is deleted")
t.ok(d.wait_log(r'msg="sweep done".* erased=1', timeout=5),
     "that sweep logs 'sweep done' with erased=1")
t.ok(d.metric("switchboard_swept_records_total") > swept, "... and counts the record")

# An access request while a call of the number is in progress.
acme.post("/v1/calls", {"call": "c9", "queue": "support", "caller": "+442079460007"})
r = acme.get("/v1/records?number=%2B442079460007")
t.is_((r.json["records"], r.json.get("live")), ([], 1),
      "a call of a number in progress: in no record yet, counted as live")
r = acme.get("/v1/records?number=%2B442079460007&format=csv")
t.is_(r.headers.get("switchboard-live-calls"), "1", "... and in CSV's Switchboard-Live-Calls")
acme.post("/v1/calls/c9/abandon")

# Records enough to fill some pages, for the map's gauges below.
for i in range(300):
    call("f%d" % i, "+4420794611%02d" % (i % 100), attrs={"note": "x" * 300})
used0 = d.metric("switchboard_lmdb_used_bytes")
high0 = d.metric("switchboard_lmdb_high_water_bytes")
t.ok(used0 and high0 and used0 <= high0,
     "/metrics: switchboard_lmdb_used_bytes (%s) within switchboard_lmdb_high_water_bytes (%s)"
     % (used0, high0))

# Deleting an account: its records are purged in the background.
r = d.admin("DELETE", "/v1/accounts/acme")
t.is_(r.status, 200, "account deleted")
t.ok(d.wait_log("sweep: deleted account", timeout=10) is not None, "... and purged by a sweep")
# What an operator alerts on against map_max goes down with what was
# deleted; the high-water mark, the last page ever used, does not. (The
# pages the last commit freed are in use until the next one, by LMDB's
# rule: a write after the purge.)
t.is_(d.admin("PUT", "/v1/accounts/later", {}).status, 200, "another account made after it")
deadline = time.time() + 30
while time.time() < deadline and d.metric("switchboard_lmdb_used_bytes") >= used0 / 2:
    time.sleep(0.2)
used1 = d.metric("switchboard_lmdb_used_bytes")
t.ok(used1 < used0 / 2, "switchboard_lmdb_used_bytes goes down after the purge (%s -> %s)"
     % (used0, used1))
t.ok(d.metric("switchboard_lmdb_high_water_bytes") >= high0,
     "switchboard_lmdb_high_water_bytes does not")
t.done()
