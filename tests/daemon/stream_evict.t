#!/usr/bin/env python3
# An account deleted while its gateway listens on the event stream, then made
# again under its id and deleted again, all before the first deletion's sync
# (one pipelined write): the first stream still gets the end of each of its
# live calls, then closes, and none of the second account's actions; a stream
# of the account made again gets none of the first's.
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, Stream, provision  # noqa: E402

t = TAP()
d = t.owned(Daemon()).start()
acme = provision(d)
for c in ("c1", "c2", "c3"):
    r = acme.post("/v1/calls", {"call": c, "queue": "support", "caller": "+4930100001"})
    t.is_(r.status, 201, "offer %s" % c, r)
s = Stream(d, acme.auth)
t.is_(s.status, 200, "acme's gateway listens on the stream")
tok = "Bearer " + d.token


def req(m, p, body=b""):
    return (("%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Length: %d\r\n"
             "Content-Type: application/json\r\n\r\n" % (m, p, tok, len(body))).encode() + body)


out = d.raw(req("DELETE", "/v1/accounts/acme?live_calls=end") +
            req("POST", "/v1/accounts", b'{"id":"acme"}') + req("DELETE", "/v1/accounts/acme"),
            timeout=5, read_until_close=False)
t.is_(out.count(b"HTTP/1.1 20"), 3, "deleted, made again and deleted again in one write",
      out[:300])
told = [(ev.get("type"), ev.get("call"), ev.get("reason")) for ev in s.rest()]
t.is_(sorted(x for x in told if x[0] == "end"),
      [("end", c, "account deleted") for c in ("c1", "c2", "c3")],
      "the first account's stream gets the three ends (%r)" % told)
t.ok(s.closed(timeout=5), "... then closes")

# Made again, with a gateway listening, and deleted with a call live: its
# stream gets its own end, not the first account's.
acme = provision(d)
r = acme.post("/v1/calls", {"call": "n1", "queue": "support", "caller": "+4930100002"})
t.is_(r.status, 201, "the account made again has a call", r)
s2 = Stream(d, acme.auth)
r = d.admin("DELETE", "/v1/accounts/acme?live_calls=end")
t.is_(r.status, 200, "deleted with it", r)
ends = [ev.get("call") for ev in s2.rest() if ev.get("type") == "end"]
t.is_(ends, ["n1"], "its stream gets the end of its own call alone")
t.ok(s2.closed(timeout=5), "... then closes")
t.is_(d.stop(), 0, "exit 0")
t.done()
