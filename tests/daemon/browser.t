#!/usr/bin/env python3
# Browsers. A browser given an account's key (the 401's WWW-Authenticate asks
# for one) sends it with any page's requests, a forged one from another site
# too: a POST, PUT or DELETE whose Sec-Fetch-Site says a page of another site
# sent it is refused with 403 HTTP_FORBIDDEN and changes nothing, while
# programs (no such header), pages of the daemon's own origin ("same-origin")
# and typed addresses ("none") are served, and reads are answered whatever
# the header says. Every answer carries Cache-Control: no-store, so neither a
# browser nor a proxy keeps a new key or an access request's numbers.
import sys, os, socket
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision, read_responses

t = TAP()
d = t.owned(Daemon()).start()
acme = provision(d)
OFFER = {"call": "c1", "queue": "support", "caller": "+4930555111", "called": "+4930555000"}

# -- forged requests from another site ---------------------------------------------
for site in ("cross-site", "same-site", "Cross-Site"):
    r = acme.post("/v1/calls", OFFER, headers={"Sec-Fetch-Site": site})
    t.is_((r.status, r.code), (403, "HTTP_FORBIDDEN"), "an offer sent from a %s page: 403" % site)
t.ok("another site" in r.json["error"]["message"] and "POST" in r.json["error"]["message"],
     "... the message says why", r.json)
t.is_(acme.get("/v1/calls/c1").status, 404, "... and no call was made")

r = acme.put("/v1/agents/mallory", {"devices": {"softphone": "sip:m@x"}},
             headers={"Sec-Fetch-Site": "cross-site"})
t.is_(r.status, 403, "a PUT from another site: 403")
t.is_(acme.get("/v1/agents/mallory").status, 404, "... no agent was made")
r = acme.delete("/v1/agents/bob", headers={"Sec-Fetch-Site": "cross-site"})
t.is_(r.status, 403, "a DELETE from another site: 403")
t.is_(acme.get("/v1/agents/bob").status, 200, "... bob is still there")
r = acme.post("/v1/erasure", {"number": "+4930555111"}, headers={"Sec-Fetch-Site": "cross-site"})
t.is_(r.status, 403, "an erasure request from another site: 403")
r = d.admin("POST", "/v1/accounts", {"id": "evil", "name": "Evil"},
            headers={"Sec-Fetch-Site": "cross-site"})
t.is_(r.status, 403, "an admin request from another site: 403")
t.is_(d.admin("GET", "/v1/accounts/evil").status, 404, "... no account was made")
r = acme.post("/v1/calls", OFFER, headers={"Sec-Fetch-Site": "cross-site"})
t.ok(r.headers.get("www-authenticate") is None, "a 403 does not ask for credentials")

# -- what is served --------------------------------------------------------------
r = acme.get("/v1/agents/alice", headers={"Sec-Fetch-Site": "cross-site"})
t.is_(r.status, 200, "a read from another site is answered (the browser keeps it from the page)")
r = acme.post("/v1/calls", OFFER, headers={"Sec-Fetch-Site": "same-origin"})
t.is_(r.status, 201, "an offer from a page of the daemon's own origin is served")
r = acme.post("/v1/calls/c1/hangup", {"by": "caller"}, headers={"Sec-Fetch-Site": "none"})
t.is_(r.status, 200, "a request from an address the browser's user typed is served")
r = acme.post("/v1/calls", dict(OFFER, call="c2"))
t.is_(r.status, 201, "a program's request (no Sec-Fetch-Site) is served")

s = socket.create_connection((d.host, d.port))
s.sendall(b"POST /v1/calls HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n"
          b"Sec-Fetch-Site: same-origin\r\nSec-Fetch-Site: same-origin\r\n"
          b"Content-Length: 2\r\n\r\n{}" % acme.auth.encode())
resps, _ = read_responses(s, 1)
s.close()
t.is_(resps[0][0], 400, "two Sec-Fetch-Site fields: 400")
t.ok(b"Sec-Fetch-Site" in resps[0][2], "... the message names it", resps[0][2])

# -- nothing kept in a cache -----------------------------------------------------
r = d.admin("POST", "/v1/accounts/acme/keys")
t.is_((r.status, r.headers.get("cache-control")), (201, "no-store"),
      "a new key's answer: Cache-Control: no-store")
for name, r in (("a record export", acme.get("/v1/records?number=%2B4930555111")),
                ("an error", acme.get("/v1/agents/nobody")),
                ("a 401", d.request("GET", "/v1/agents")),
                ("/healthz", d.request("GET", "/healthz")),
                ("/metrics", d.admin("GET", "/metrics"))):
    t.is_(r.headers.get("cache-control"), "no-store", "%s: Cache-Control: no-store" % name)
t.is_(d.metric('switchboard_http_requests_total{route="/v1/calls",method="POST",code="403"}'), 4,
      "the refused offers are counted under code=\"403\"")
t.done()
