#!/usr/bin/env python3
# Every admin change is in the log at info, with the address it came from:
# an account created (POST or PUT), replaced (PUT: its retention, its
# personal attributes may change what is kept) or deleted, a key created or
# revoked. A PUT of an account left no line at all, and none of them said who
# asked.
import sys, os, re, socket
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon

t = TAP()
d = t.owned(Daemon(conf={"log_level": "info"})).start()

# One connection, so that its address is known: every line must name it.
c = d.conn()
steps = (("POST", "/v1/accounts", {"id": "acme"}, 'msg="account created" account="acme"'),
         ("PUT", "/v1/accounts/globex", {"name": "Globex"}, 'msg="account created" account="globex"'),
         ("PUT", "/v1/accounts/acme", {"name": "Acme", "audit_days": 400},
          'msg="account replaced" account="acme"'),
         ("POST", "/v1/accounts/acme/keys", None, 'msg="api key created" account="acme" key_id="KID"'),
         ("DELETE", "/v1/accounts/acme/keys/KID", None,
          'msg="api key revoked" account="acme" key_id="KID"'),
         ("DELETE", "/v1/accounts/globex", None, 'msg="account deleted" account="globex"'))
kid = None
for method, path, body, want in steps:
    mark = len(d.lines)
    r = d.admin(method, path.replace("KID", kid or ""), body, conn=c)
    t.ok(r.status in (200, 201), "%s %s" % (method, path), r)
    if r.json and "key_id" in r.json:
        kid = r.json["key_id"]
    peer = "%s:%d" % c.sock.getsockname()
    want = want.replace("KID", kid or "")
    line = d.wait_log(re.escape(want), after=mark, timeout=5)
    t.ok(line, "... logged: %s" % want, "\n".join(d.lines[mark:]))
    t.ok(line and line.endswith(" peer=" + peer), "... with the address it came from (%s)" % peer,
         line)
c.close()
t.is_(d.stop(), 0, "exit 0")
t.done()
