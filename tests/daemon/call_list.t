#!/usr/bin/env python3
# GET /v1/calls: the account's live calls, for a gateway that lost track of
# them. Waiting, ringing and connected calls are listed with their agents and
# without numbers; an ended call is not; ?queue= keeps one queue's; another
# account's calls are never listed; bad parameters are refused.
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, Stream, provision  # noqa: E402

t = TAP()
d = t.owned(Daemon()).start()
acme = provision(d, agents=("alice", "bob"))
r = acme.put("/v1/queues/sales", {"policy": "first", "members": [{"agent": "bob"}]})
t.is_(r.status, 200, "a second queue", r)
globex = provision(d, account="globex", agents=("gina",))

r = acme.get("/v1/calls")
t.is_((r.status, r.json), (200, {"calls": []}), "no calls yet: an empty list", r)

for cid, queue, num in (("c1", "support", "+4930100001"), ("c2", "support", "+4930100002"),
                        ("c3", "support", "+4930100003"), ("s1", "sales", "+4930100004")):
    r = acme.post("/v1/calls", {"call": cid, "queue": queue, "caller": num})
    t.is_(r.status, 201, "offer %s" % cid, r)
r = acme.post("/v1/calls/c1/ring_result", {"agent": "alice", "outcome": "answered"})
t.is_(r.status, 200, "c1 answered by alice", r)
globex.post("/v1/calls", {"call": "g1", "queue": "support", "caller": "+4930100009"})

r = acme.get("/v1/calls")
calls = {c["id"]: c for c in r.json["calls"]}
t.is_([c["id"] for c in r.json["calls"]], ["c1", "c2", "c3", "s1"],
      "every live call of the account, in id order, none of another account's", r)
t.is_((calls["c1"]["state"], calls["c1"].get("agent"), calls["c1"]["queue"]),
      ("connected", "alice", "support"), "c1: connected, to alice")
t.is_((calls["c1"].get("device"), calls["c1"]["ringing"]), ("softphone", []),
      "c1: on her softphone, nobody ringing (alice was listed ringing still)")
r3 = acme.get("/v1/calls/c3")
t.is_((r3.json.get("state"), r3.json.get("position")), ("waiting", 1),
      "GET /v1/calls/c3: waiting, first in line", r3)
t.ok("position" not in acme.get("/v1/calls/c2").json, "a ringing call has no position")
r = acme.post("/v1/calls", {"call": "c5", "queue": "support", "caller": "+4930100005",
                            "priority": 5})
t.is_((acme.get("/v1/calls/c5").json.get("position"),
       acme.get("/v1/calls/c3").json.get("position")), (1, 2),
      "c5, of a higher priority, goes ahead of c3: positions 1 and 2", r)
r1 = acme.get("/v1/calls/c1")
t.is_((r1.json.get("device"), r1.json["ringing"]), ("softphone", []),
      "GET /v1/calls/c1: the same", r1)
t.is_((calls["c2"]["state"], calls["c2"]["ringing"]),
      ("ringing", [{"agent": "bob", "device": "softphone", "uri": "sip:bob@pbx.example",
                    "attempt": 1}]),
      "c2: ringing bob on his softphone, its URI and ring attempt as the ring gave them")
t.is_((calls["c3"]["state"], calls["c3"]["ringing"], calls["c3"]["attempts"]),
      ("waiting", [], 0), "c3: waiting, nobody free")
t.ok(all(k not in c for c in calls.values() for k in ("caller", "called", "attrs", "trace")),
     "no numbers, attributes or trace in the list")
t.ok("+49301000" not in r.body, "no number anywhere in the answer")

r = acme.get("/v1/calls?queue=sales")
t.is_([c["id"] for c in r.json["calls"]], ["s1"], "?queue=sales: its call only", r)
r = acme.get("/v1/calls?queue=nosuch")
t.is_((r.status, r.code, r.field), (404, "SB_ENOTFOUND", "queue"), "?queue= naming no queue: 404")
r = globex.get("/v1/calls")
t.is_([c["id"] for c in r.json["calls"]], ["g1"], "another account sees only its own")
r = globex.get("/v1/calls?queue=sales")
t.is_((r.status, r.field), (404, "queue"), "nor learns of acme's queues", r)
r = acme.get("/v1/calls?state=waiting")
t.is_((r.status, r.code, r.field), (400, "SB_EINVAL", "state"), "an unknown parameter: 400", r)
r = acme.post("/v1/calls?queue=support", {"call": "c9", "queue": "support",
                                          "caller": "+4930100008"})
t.is_((r.status, r.field), (400, "queue"), "POST /v1/calls takes no query parameters", r)
t.is_(acme.get("/v1/calls/c9").status, 404, "... and offered nothing")

r = acme.post("/v1/calls/c1/hangup")
t.is_(r.status, 200, "c1 hung up", r)
r = acme.get("/v1/calls")
ids = [c["id"] for c in r.json["calls"]]
t.ok("c1" not in ids and "c3" in ids, "an ended call leaves the list (%s)" % ids)
# An id no call can have: not found, saying why rather than "no such call '?'".
r = acme.get("/v1/calls/has%20space")
t.ok(r.status == 404 and "the id given is not one (ids are 1..128 letters" in
     r.json["error"]["message"] and "'?'" not in r.json["error"]["message"],
     "GET /v1/calls/has%20space: 404, saying what an id is", r)

# An operator removing an account whose calls are live: refused, unless its
# live calls are to end with it (each gets an end, for the gateway).
live = sorted(c["id"] for c in acme.get("/v1/calls").json["calls"])
s = Stream(d, acme.auth)
t.is_(s.status, 200, "acme's gateway listens on the stream")
gs = Stream(d, globex.auth)
r = d.admin("DELETE", "/v1/accounts/acme")
t.ok(r.status == 409 and r.code == "SB_ESTATE" and "evict" in r.body,
     "DELETE of an account with live calls: 409, saying how to end them with it", r)
r = d.admin("DELETE", "/v1/accounts/acme?live_calls=keep")
t.is_((r.status, r.code, r.field), (400, "SB_EINVAL", "live_calls"),
      "?live_calls= other than end: 400, field live_calls", r)
t.is_(d.admin("GET", "/v1/accounts/acme").status, 200, "... the account still there")
r = d.admin("DELETE", "/v1/accounts/acme?live_calls=end")
ends = sorted(a["call"] for a in (r.json or {}).get("actions", [])
              if a.get("type") == "end" and a.get("reason") == "account deleted")
t.ok(r.status == 200 and ends == live and len(live) >= 2,
     "?live_calls=end: deleted, an end (account deleted) for each of its %d live calls" % len(live),
     r)
t.is_(d.admin("GET", "/v1/accounts/acme").status, 404, "... the account gone")
# Its gateway is told on its stream, which then closes.
told = [(ev["call"], ev.get("reason"), ev.get("account")) for ev in s.rest()
        if ev.get("type") == "end"]
t.is_(sorted(told), [(c, "account deleted", "acme") for c in live],
      "its stream's last events: an end for each live call")
t.ok(s.closed(timeout=5), "... then the stream closes")
t.is_(gs.next(timeout=0.5), None, "another account's stream is told nothing")
t.ok(not gs.closed(timeout=0.2), "... and stays open")
t.is_([c["id"] for c in globex.get("/v1/calls").json["calls"]], ["g1"],
      "... another account's call untouched")
r = d.admin("DELETE", "/v1/accounts/globex/keys/x?live_calls=end")
t.is_((r.status, r.field), (400, "live_calls"), "a key's DELETE takes no live_calls", r)
t.is_(d.stop(), 0, "exit 0")
t.done()
