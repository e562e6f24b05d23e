#!/usr/bin/env python3
# Event bodies are read once: a flat body of plain values goes to the library
# as it is, with "type" and the path's id written in front, while any other
# body is parsed, completed and printed again by the daemon. Both ways must
# answer alike. Each case sends the same event twice — once as the plain
# body, once with one string spelled with a JSON escape (same value, so the
# daemon takes the general path) — and compares status, error and actions.
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision

t = TAP()
d = t.owned(Daemon()).start()
acme = provision(d, agents=("alice", "bob", "carol", "dave"))


def escaped(body):
    """The same text with the first letter of the first string value escaped."""
    i = body.find(':"')
    if i < 0 or not body[i + 2].isalnum():
        return None
    return body[:i + 2] + "\\u%04x" % ord(body[i + 2]) + body[i + 3:]


def norm(r, cid, other):
    """Status and error; for success the actions' types and calls (which agent
    rings, and when a wait ends, depend on what came before)."""
    j = r.json or {}
    if "error" in j:
        return (r.status, json.dumps(j, sort_keys=True).replace(other, cid))
    return (r.status, sorted((a.get("type"), (a.get("call") or "").replace(other, cid))
                             for a in j.get("actions", [])), sorted(k for k in j if k != "actions"))


n = [0]


def pair(name, path_fmt, body_fmt, setup=None, cid_in_body=False):
    """Send body_fmt (with {cid}) on path_fmt for two fresh calls, plain and escaped."""
    got = []
    cids = []
    for variant in ("plain", "escaped"):
        n[0] += 1
        cid = "ev%d" % n[0]
        cids.append(cid)
        if setup:
            setup(cid)
        body = body_fmt.replace("{cid}", cid) if body_fmt is not None else None
        if variant == "escaped":
            body = escaped(body) if body else None
            if body is None:
                t.ok(False, "%s: no string value to escape" % name)
                return
        r = acme.req("POST", path_fmt.replace("{cid}", cid), body,
                     headers={"Content-Type": "application/json"})
        got.append(r)
        free_all()  # each variant from the same state
    a, b = norm(got[0], "CID", cids[0]), norm(got[1], "CID", cids[1])
    t.is_(a, b, "%s: answered alike read at once or parsed by the daemon (%d)" % (name, got[0].status))


def offered(cid):
    r = acme.post("/v1/calls", {"call": cid, "queue": "support", "caller": "+442079460001"})
    assert r.status == 201, r


def free_all():
    """End every call the last case left, free every agent."""
    for i in range(1, n[0] + 1):
        acme.post("/v1/calls/ev%d/hangup" % i)
        acme.post("/v1/calls/ev%d/abandon" % i)
    for ag in ("alice", "bob", "carol", "dave"):
        acme.post("/v1/agents/%s/status" % ag, {"status": "available"})


OFFER = '{"call":"{cid}","queue":"support","caller":"+442079460001"'
cases = [
    ("offer", "/v1/calls", OFFER + '}'),
    ("offer with priority and called", "/v1/calls", '{"queue":"support","call":"{cid}","caller":"+442079460001","called":"+442079460999","priority":7}'),
    ("offer, priority a real", "/v1/calls", OFFER + ',"priority":1.5}'),
    ("offer, priority 1e2", "/v1/calls", OFFER + ',"priority":1e2}'),
    ("offer, priority too big", "/v1/calls", OFFER + ',"priority":101}'),
    ("offer, priority negative", "/v1/calls", OFFER + ',"priority":-1}'),
    ("offer, priority a string", "/v1/calls", OFFER + ',"priority":"7"}'),
    ("offer, priority null", "/v1/calls", OFFER + ',"priority":null}'),
    ("offer, an unknown field", "/v1/calls", OFFER + ',"bogus":true}'),
    ("offer, caller not E.164", "/v1/calls", '{"call":"{cid}","queue":"support","caller":"12345"}'),
    ("offer, no queue", "/v1/calls", '{"call":"{cid}","caller":"+442079460001"}'),
    ("offer, no such queue", "/v1/calls", '{"call":"{cid}","queue":"nope","caller":"+442079460001"}'),
    ("offer, a bad call id", "/v1/calls", '{"call":"{cid} x","queue":"support","caller":"+442079460001"}'),
    ("offer, attrs null", "/v1/calls", OFFER + ',"attrs":null}'),
    ("offer, an agent field", "/v1/calls", OFFER + ',"agent":"alice"}'),
    ("offer, white space around", "/v1/calls", ' \r\n\t' + OFFER + ' , "priority" : 3 } \n'),
]
for name, path, body in cases:
    pair(name, path, body)
    free_all()

for name, body in [
        ("ring_result answered", '{"agent":"alice","outcome":"answered"}'),
        ("ring_result, a bad outcome", '{"agent":"alice","outcome":"maybe"}'),
        ("ring_result, the wrong agent", '{"agent":"zed","outcome":"answered"}'),
        ("ring_result, an unknown field", '{"agent":"alice","outcome":"busy","x":1}'),
        ("ring_result, outcome a number", '{"agent":"alice","outcome":1}')]:
    pair(name, "/v1/calls/{cid}/ring_result", body, setup=offered)
    free_all()

for name, path, body in [
        ("hangup, a body with a reason field", "/v1/calls/{cid}/hangup", '{"reason":"done"}'),
        ("abandon, an unknown field", "/v1/calls/{cid}/abandon", '{"why":"x"}'),
        ("transfer to a queue", "/v1/calls/{cid}/transfer", '{"queue":"support"}'),
        ("transfer to nowhere", "/v1/calls/{cid}/transfer", '{"queue":"nope"}')]:
    pair(name, path, body, setup=offered)
    free_all()

for name, body in [
        ("agent status paused", '{"status":"paused","reason":"lunch"}'),
        ("agent status available", '{"status":"available"}'),
        ("agent status ringing (not the gateway's)", '{"status":"ringing"}'),
        ("agent status, an unknown field", '{"status":"paused","x":"y"}')]:
    got = []
    for variant in (body, escaped(body)):
        got.append(acme.post("/v1/agents/dave/status", variant))
    t.is_(norm(got[0], "", ""), norm(got[1], "", ""),
          "%s: answered alike read at once or parsed by the daemon (%d)" % (name, got[0].status))

# Bodies without a string to escape: the fast path alone, checked outright.
r = acme.post("/v1/calls/none/hangup")
t.is_((r.status, r.code), (404, "SB_ENOTFOUND"), "hangup of an unknown call without a body: 404")
offered("plain1")
r = acme.req("POST", "/v1/calls/plain1/abandon", "{}")
t.is_(r.status, 200, "abandon with {}: 200")
t.is_([a["type"] for a in r.actions()], ["cancel", "end"] if r.actions("cancel") else ["end"],
      "... the call ends")
r = acme.req("POST", "/v1/calls/plain1/hangup", "{ }")
t.is_((r.status, r.code), (409, "SB_ESTATE"), "hangup of an ended call: 409 SB_ESTATE")
free_all()
r = acme.req("POST", "/v1/calls", '{"call":"loc1","queue":"support","caller":"+442079460001"}')
t.is_((r.status, r.headers.get("location")), (201, "/v1/calls/loc1"), "offer: 201 with Location")
t.is_({a["call"] for a in r.actions()}, {"loc1"}, "... actions for that call only")
r = acme.req("POST", "/v1/calls/loc1/hangup", '{"call":"loc1"}')
t.is_(r.status, 200, "\"call\" in the body equal to the path: accepted")
r = acme.req("POST", "/v1/calls/loc1/hangup", '{"call":"other"}')
t.is_((r.status, r.field), (400, "call"), "\"call\" in the body unlike the path: 400 naming it")
r = acme.req("POST", "/v1/calls/loc1/hangup", '{"type":"abandon"}')
t.is_((r.status, r.field), (400, "type"), "another \"type\" in the body: 400 naming it")
r = acme.req("POST", "/v1/calls", '{"call":"d1","call":"d2","queue":"support"}')
t.is_((r.status, r.code, r.field), (400, "SB_EINVAL", None), "duplicate keys: 400, no field")
t.ok("duplicate" in (r.json or {}).get("error", {}).get("message", ""), "... saying so", r)
r = acme.req("POST", "/v1/calls", '{"call":"d3","queue":"support","caller":"+442079460001",}')
t.is_((r.status, r.code, r.field), (400, "SB_EINVAL", None), "a trailing comma: 400")
t.ok("malformed JSON" in r.body, "... malformed JSON", r)
t.is_(acme.get("/v1/calls/d3").status, 404, "... nothing offered")

t.is_(d.stop(), 0, "exit 0")
t.done()
