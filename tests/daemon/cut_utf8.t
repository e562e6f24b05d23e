#!/usr/bin/env python3
# Error fields and messages that quote a long key of the request are cut to
# fit, between characters: the field is still there, as a string, and the
# message does not end in a broken character ('?'). The daemon's own
# messages too: one quoting a key past its 511 bytes is cut between
# characters, and the error keeps its field.
import sys, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision, agent_doc

t = TAP()
d = t.owned(Daemon()).start()
acme = provision(d)
before = acme.get("/v1/agents").body

# A 600-byte unknown key of two-byte characters: its path (the field) is cut
# at 255 bytes, in the middle of one.
key = u"\u00e9" * 300
r = acme.put("/v1/agents/carol", dict(agent_doc("carol"), **{key: 1}))
err = (r.json or {}).get("error") or {}
t.ok(r.status == 400 and r.code == "SB_EINVAL", "long unknown key: 400 SB_EINVAL", r)
t.ok(isinstance(err.get("field"), str) and key.startswith(err["field"]) and
     len(err["field"]) >= 120, "... the field names the key (cut between characters)", r)
t.ok("?" not in err.get("message", "?"), "... the message quotes it whole", r)

# A key long enough to cut the message, one byte into a character.
key = "x" + u"\u00e9" * 700
r = acme.put("/v1/agents/carol", dict(agent_doc("carol"), **{key: 1}))
err = (r.json or {}).get("error") or {}
msg = err.get("message", "")
t.ok(r.status == 400 and r.code == "SB_EINVAL" and len(msg) > 400,
     "a longer key: 400 SB_EINVAL with its message", r)
t.ok(not msg.endswith("?") and "?" not in msg, "... the message is cut between characters", r)
t.ok(isinstance(err.get("field"), str) and key.startswith(err["field"]),
     "... and the field names the key", r)
t.is_(acme.get("/v1/agents").body, before, "nothing changed")

# Keys the daemon itself refuses, in messages it writes: "a" and 300 two-byte
# characters, so that its 511 bytes end one byte into a character.
key = "a" + u"\u00e9" * 300
for name, r in (("POST /v1/erasure", acme.post("/v1/erasure", {key: 1})),
                ("PUT /v1/policies/x", acme.put("/v1/policies/x", {key: 1})),
                ("POST /v1/accounts/acme/keys", d.admin("POST", "/v1/accounts/acme/keys", {key: 1}))):
    err = (r.json or {}).get("error") or {}
    msg = err.get("message", "")
    t.ok(r.status == 400 and r.code == "SB_EINVAL" and err.get("field") == key,
         "%s, an unknown key of 601 bytes: 400 SB_EINVAL, the field names it" % name, r)
    t.ok(len(msg.encode()) > 400 and ("'" + key[:100]) in msg and "?" not in msg,
         "... and the message quotes it, cut between characters", r)
t.is_(acme.get("/v1/policies").body.count('"x"'), 0, "no policy x was stored")
t.done()
