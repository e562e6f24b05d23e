#!/usr/bin/env python3
# A JSON body that begins with a UTF-8 byte-order mark (a file saved so by an
# editor or by PowerShell's Out-File, sent with curl -d @file) is read as it
# would be without the mark, on every kind of route: an event on the fast
# path and on the parsed one, a document put, a member, an admin document, a
# policy uploaded as JSON; a policy's Lua source with one loads as before. A
# mark anywhere else is still malformed JSON, and changes nothing.
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, FIRST_POLICY, provision  # noqa: E402

BOM = b"\xef\xbb\xbf"
t = TAP()
d = t.owned(Daemon()).start()
acme = provision(d, agents=("alice", "bob"))
JSON = {"Content-Type": "application/json"}

r = acme.post("/v1/calls", BOM + b'{"call":"c1","queue":"support"}', headers=JSON)
t.is_((r.status, [a["agent"] for a in r.actions("ring")]), (201, ["alice"]),
      "an offer with a BOM (the fast path) rings alice", r)
r = acme.post("/v1/calls", BOM + b'{"call":"c2","queue":"support","attrs":{"lang":"de"}}',
              headers=JSON)
t.is_((r.status, [a["agent"] for a in r.actions("ring")]), (201, ["bob"]),
      "one with attrs (the parsed path) rings bob", r)
r = acme.post("/v1/calls/c1/ring_result", BOM + b'{"agent":"alice","outcome":"answered"}',
              headers=JSON)
t.is_((r.status, [a["type"] for a in r.actions()]), (200, ["connect"]), "a ring_result", r)
r = acme.post("/v1/agents/bob/status", BOM + b'{"status":"paused","reason":"lunch"}')
t.is_(r.status, 200, "an agent status", r)
r = acme.put("/v1/agents/carol", BOM + b'{"devices":{"softphone":"sip:carol@pbx.example"}}')
t.is_((r.status, r.json and r.json.get("created")), (200, True), "PUT /v1/agents/carol", r)
r = acme.put("/v1/queues/support/members/carol", BOM + b'{"tier":2}')
t.is_(r.status, 200, "PUT of a member", r)
r = acme.get("/v1/queues/support")
t.is_([m.get("tier") for m in r.json["members"] if m["agent"] == "carol"], [2],
      "... which is in the queue, tier 2", r)
r = d.admin("POST", "/v1/accounts", BOM + b'{"id":"globex","name":"Globex"}')
t.is_(r.status, 201, "an admin document (POST /v1/accounts)", r)
import json  # noqa: E402
r = acme.put("/v1/policies/viajson", BOM + json.dumps({"source": FIRST_POLICY}).encode(),
             headers=JSON)
t.is_(r.status, 200, "a policy uploaded as JSON", r)
r = acme.put("/v1/policies/lua", BOM + FIRST_POLICY.encode(),
             headers={"Content-Type": "text/x-lua"})
plain = acme.put("/v1/policies/lua2", FIRST_POLICY, headers={"Content-Type": "text/x-lua"})
t.is_(r.status, 200, "a policy's Lua source with a BOM loads", r)
t.ok(r.json and plain.json and r.json.get("version") != plain.json.get("version"),
     "... kept as sent (its version is the text's with the mark)", (r, plain))

before = acme.get("/v1/calls").json
for body, what in ((b'{"call":"c3",' + BOM + b'"queue":"support"}', "inside the object"),
                   (BOM + BOM + b'{"call":"c3","queue":"support"}', "twice")):
    r = acme.post("/v1/calls", body, headers=JSON)
    t.is_((r.status, r.code, r.field), (400, "SB_EINVAL", None),
          "a BOM %s is malformed JSON" % what, r)
t.is_(acme.get("/v1/calls").json, before, "... and offered nothing")
t.done()
