#!/usr/bin/env python3
# Tenant isolation through every daemon route. Two accounts, acme (A) and
# globex (B), each with agents, queues, a policy named "first", calls (live
# and finished) and an API key. Then:
#  - every account route and method, called as B with each of A's ids in
#    each path and body position, answers exactly as for an id that never
#    existed: status, error code, field, message (up to the id), and the
#    WWW-Authenticate/Allow headers;
#  - every way of presenting another account's credentials (A's key with B's
#    account id, B's key with A's, the admin token as a password, an account
#    key as a Bearer token on admin routes, a revoked key, a deleted
#    account's key) gets the same 401 as a random key; and one keep-alive
#    connection (whose verified credentials the daemon caches) serves each
#    request as the account its own credentials name, also pipelined, and
#    refuses a key revoked or an account deleted while it stays open;
#  - lists, the policy list and the event stream show only the account's
#    own; ids are per account (B's own "alice" or "support" leaves A's
#    untouched);
#  - deleting an account and creating it again shows none of the old data;
#  - and through all of it A's state reads back unchanged.
# The records routes likewise: access and erasure requests, holds, a
# retention dry run, aggregates and the audit log.
# (tests/daemon/cross_account.t checks a first set of these; this goes
# through the whole route table.)
import os, re, sys
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "daemon"))
from sbtest import TAP, Daemon, Stream, Account, provision, agent_doc, basic  # noqa: E402

t = TAP(deadline=180)
d = t.owned(Daemon()).start()
# A's calls ring for 600 s, the longest a ring may: a ring timed out (on a
# loaded machine the test can take longer than provision's 20 s) would
# change A's state and put A's own actions on its stream.
A = provision(d, account="acme", agents=("alice", "bob", "carol"), queue="support", ring=600)
B = provision(d, account="globex", agents=("xavier", "yolanda"), queue="sales")
# A: c0 finished (alice), c1 ringing alice, c2 ringing bob, c3 ringing carol, c4 waiting.
A.post("/v1/calls", {"call": "c0", "queue": "support", "caller": "+4930100000"})
A.post("/v1/calls/c0/ring_result", {"agent": "alice", "outcome": "answered"})
A.post("/v1/calls/c0/hangup")
for i in range(1, 5):
    A.post("/v1/calls", {"call": "c%d" % i, "queue": "support", "caller": "+493010000%d" % i})
A.put("/v1/queues/private", {"policy": "first", "members": [{"agent": "carol"}]})
r = B.post("/v1/calls", {"call": "b1", "queue": "sales", "caller": "+4930200001"})
t.is_(r.status, 201, "B's call b1 rings")
r = B.post("/v1/calls", {"call": "b2", "queue": "sales", "caller": "+4930200002"})
key_a_id = d.admin("POST", "/v1/accounts/acme/keys").json["key_id"]

sa = Stream(d, A.auth)
sb = Stream(d, B.auth)
t.cleanups.append(sa.close)
t.cleanups.append(sb.close)

A_PATHS = ["/v1/agents", "/v1/queues", "/v1/policies", "/v1/agents/alice", "/v1/agents/bob",
           "/v1/agents/carol", "/v1/queues/support", "/v1/queues/private", "/v1/calls/c0",
           "/v1/calls/c1", "/v1/calls/c2", "/v1/calls/c4"]


def snapshot():
    return {p: A.get(p).body for p in A_PATHS}


# A's own hold on c0, placed before the snapshot: its record names the holds
# that cover it ("held_by"), and B's requests below must not change that.
r = A.post("/v1/holds", {"id": "ha1", "call": "c0", "reason": "litigation"})
t.is_(r.status, 201, "A holds its record c0", r)
before = snapshot()


def shape(r, ids):
    e = (r.json or {}).get("error", {}) if r.json else {}
    msg = e.get("message", "")
    for i in ids:
        msg = msg.replace(i, "ID")
    msg = re.sub(r"'[^']*'", "'ID'", msg)
    return (r.status, e.get("code"), e.get("field"), msg, r.headers.get("www-authenticate"),
            r.headers.get("allow"))


def same(method, path_tpl, body_tpl, a_id, missing, what):
    """B's request naming A's id vs naming a missing one."""
    def fill(x, v):
        if isinstance(x, str):
            return x.replace("{ID}", v)
        if isinstance(x, dict):
            return {k: fill(w, v) for k, w in x.items()}
        return x
    ro = B.req(method, fill(path_tpl, a_id), fill(body_tpl, a_id))
    rm = B.req(method, fill(path_tpl, missing), fill(body_tpl, missing))
    so, sm = shape(ro, [a_id]), shape(rm, [missing])
    t.ok(ro.status >= 400 and so == sm,
         "%s %s as B with A's %s: %d %s, as for a missing id" % (method, path_tpl, what, ro.status,
                                                                 so[1]),
         "A's id:  %r\nmissing: %r" % (ro, rm))


AGENT = ("alice", "nobody")
QUEUE = ("private", "nothere")
CALL_LIVE = ("c1", "nocall")
CALL_DONE = ("c0", "nocall")
same("GET", "/v1/agents/{ID}", None, *AGENT, "agent")
same("DELETE", "/v1/agents/{ID}", None, *AGENT, "agent")
same("POST", "/v1/agents/{ID}/status", {"status": "paused", "reason": "x"}, *AGENT, "agent")
same("POST", "/v1/agents/{ID}/status", {"status": "available"}, *AGENT, "agent")
same("GET", "/v1/queues/{ID}", None, *QUEUE, "queue")
same("DELETE", "/v1/queues/{ID}", None, *QUEUE, "queue")
same("PUT", "/v1/queues/{ID}/members/xavier", {"tier": 1}, *QUEUE, "queue")
same("DELETE", "/v1/queues/{ID}/members/alice", None, *QUEUE, "queue")
same("PUT", "/v1/queues/sales/members/{ID}", {"tier": 1}, *AGENT, "agent")
same("DELETE", "/v1/queues/sales/members/{ID}", None, *AGENT, "agent")
same("PUT", "/v1/queues/{ID}/members/{ID}", None, "carol", "nobody", "agent and queue id")
same("PUT", "/v1/queues/sales2", {"policy": "first", "members": [{"agent": "{ID}"}]}, *AGENT,
     "agent as a member")
same("POST", "/v1/calls", {"call": "bx", "queue": "{ID}", "caller": "+4930200009"}, *QUEUE, "queue")
for call in (CALL_LIVE, CALL_DONE, ("c4", "nocall")):
    same("GET", "/v1/calls/{ID}", None, *call, "call")
    same("POST", "/v1/calls/{ID}/ring_result", {"agent": "alice", "outcome": "answered"}, *call, "call")
    same("POST", "/v1/calls/{ID}/ring_result", {"agent": "alice", "outcome": "no_answer"}, *call, "call")
    same("POST", "/v1/calls/{ID}/hangup", None, *call, "call")
    same("POST", "/v1/calls/{ID}/abandon", None, *call, "call")
    same("POST", "/v1/calls/{ID}/transfer", {"queue": "sales"}, *call, "call")
    same("POST", "/v1/calls/{ID}/transfer", {"agent": "xavier"}, *call, "call")
same("POST", "/v1/calls/b1/ring_result", {"agent": "{ID}", "outcome": "answered"}, *AGENT, "agent")
same("POST", "/v1/calls/b2/transfer", {"queue": "{ID}"}, *QUEUE, "queue")
same("POST", "/v1/calls/b2/transfer", {"agent": "{ID}"}, *AGENT, "agent")
same("POST", "/v1/calls", {"call": "c1", "queue": "{ID}", "caller": "+4930200009"}, *QUEUE,
     "queue (with A's call id)")

# -- records, erasure, holds, aggregates, audit -------------------------------------------
A.post("/v1/calls", {"call": "c5", "queue": "private", "caller": "+4930100055"})
A.post("/v1/calls/c5/abandon")
same("DELETE", "/v1/holds/{ID}", None, "ha1", "hnothere", "hold id")
same("GET", "/v1/aggregates?queue={ID}", None, "private", "nothere", "queue")


def same_ok(method, path_tpl, body_tpl, a_id, missing, what):
    """Both succeed, with the same answer up to the id."""
    def fill(x, v):
        if isinstance(x, str):
            return x.replace("{ID}", v)
        if isinstance(x, dict):
            return {k: fill(w, v) for k, w in x.items()}
        return x
    ro = B.req(method, fill(path_tpl, a_id), fill(body_tpl, a_id))
    rm = B.req(method, fill(path_tpl, missing), fill(body_tpl, missing))
    def norm(r, i):
        return re.sub(r'"created_ms":\d+', '"created_ms":T', r.body.replace(i, "ID"))
    t.ok(ro.status == rm.status and norm(ro, a_id) == norm(rm, missing),
         "%s %s as B with A's %s: %d, as for a missing one" % (method, path_tpl, what, ro.status),
         "A's id:  %r\nmissing: %r" % (ro, rm))


same_ok("GET", "/v1/records?number={ID}", None, "+4930100055", "+4930999999", "caller (JSON)")
same_ok("GET", "/v1/records?number={ID}&format=csv", None, "+4930100055", "+4930999999",
        "caller (CSV)")
same_ok("POST", "/v1/holds", {"id": "hb-{ID}", "call": "{ID}", "reason": "x"}, "c0", "nocall",
        "call id for a hold")
same_ok("POST", "/v1/erasure", {"number": "{ID}"}, "+4930100055", "+4930999999", "caller number")
t.is_(A.get("/v1/calls/c5").status, 200, "A's record c5 survives B's erasure request")
# B's dry run of a policy over every record: B's records alone.
B.post("/v1/calls", {"call": "bz", "queue": "sales", "caller": "+4930200077"})
B.post("/v1/calls/bz/abandon")
r = B.post("/v1/retention/preview", {"policy": "x", "sample": 1000, "budget_ms": 100, "source":
                                     "local P = {}\nfunction P.retain(r, c) return { delete = true } end\nreturn P\n"})
b_ids = sorted(x["id"] for x in B.get("/v1/records").json.get("records", []))
t.ok(r.status == 200 and sorted(r.json["samples"]["deleted"]) == b_ids and
     not {"c0", "c5"} & set(r.json["samples"]["deleted"]),
     "B's dry run over every record: B's records (%d), none of A's" % len(b_ids), r)
ids = [x["id"] for x in B.get("/v1/records").json.get("records", [])]
t.ok(not set(ids) & {"c0", "c5"}, "B's records list: none of A's", ids)
t.is_(sorted(h["id"] for h in B.get("/v1/holds").json.get("holds", [])), [],
      "B's holds: none (a hold on a call id B has not is refused, A's or none)")
t.is_([h["id"] for h in A.get("/v1/holds").json.get("holds", [])], ["ha1"], "A's holds: only A's")
audit = B.get("/v1/audit").body
t.ok("ha1" not in audit and '"c5"' not in audit, "B's audit log: nothing of A's", audit[:300])
agg = B.get("/v1/aggregates").json
t.ok(all(day.get("queue") in (None, "sales") for day in agg.get("days", [])),
     "B's aggregates: only B's queues", agg)

# -- credentials ------------------------------------------------------------------
def as_auth(auth, method="GET", path="/v1/agents"):
    return d.request(method, path, auth=auth)


random_key = as_auth(basic("globex", "sbk_" + "x" * 43))
no_auth = d.request("GET", "/v1/agents")
cases = [
    ("A's key with B's account id", basic("globex", A.key)),
    ("B's key with A's account id", basic("acme", B.key)),
    ("A's key with an unknown account", basic("nobody", A.key)),
    ("the admin token as an account password", basic("acme", d.token)),
    ("A's key as a Bearer token", "Bearer " + A.key),
    ("an empty account id", basic("", A.key)),
    ("A's id with a trailing space", basic("acme ", A.key)),
    ("A's key with a trailing newline", basic("acme", A.key + "\n")),
    ("A's key truncated", basic("acme", A.key[:-1])),
    ("A's key in upper case", basic("acme", A.key.upper())),
]
for what, auth in cases:
    r = as_auth(auth)
    t.ok(shape(r, []) == shape(random_key, []), "%s: 401, as a random key" % what, r)
t.is_(shape(no_auth, []), shape(random_key, []), "no credentials: the same 401")
for path in ("/v1/accounts", "/v1/accounts/acme", "/metrics"):
    r1 = d.request("GET", path, auth=A.auth)
    r2 = d.request("GET", path, auth="Bearer " + A.key)
    r3 = d.request("GET", path, auth="Bearer wrong")
    t.ok(r1.status == 401 and shape(r1, []) == shape(r2, []) == shape(r3, []),
         "GET %s with an account's key (Basic or Bearer): 401, as a wrong admin token" % path, r1)
r = d.admin("DELETE", "/v1/accounts/acme/keys/" + key_a_id)
t.is_(r.status, 200, "A's second key revoked")
r = d.admin("DELETE", "/v1/accounts/globex/keys/" + key_a_id)
t.is_(r.status, 404, "revoking A's key id under B: 404, like a missing key")

# -- one keep-alive connection, several credentials (the daemon caches the last
#    credentials a connection verified) -------------------------------------------
def agents_of(r):
    return sorted(x["id"] for x in (r.json or {}).get("agents", [])) if r.status == 200 else r.status


c = d.conn()
seen = [agents_of(d.request("GET", "/v1/agents", auth=a.auth, conn=c)) for a in (A, B, A, B)]
t.is_(seen, [["alice", "bob", "carol"], ["xavier", "yolanda"]] * 2,
      "one connection, A's then B's credentials alternately: each request sees its own account")
r = d.request("GET", "/v1/agents", auth=basic("globex", A.key), conn=c)
t.is_(r.status, 401, "... then A's key under B's id on that connection: 401")
r = d.request("GET", "/v1/agents", conn=c)
t.is_(r.status, 401, "... then no credentials: 401")
c.close()
auth_a, auth_b = A.auth.encode(), B.auth.encode()
pipe = b"".join(b"GET /v1/agents HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n" % x
                for x in (auth_a, auth_b, auth_a, b"Basic eDp5", auth_b))
out = d.raw(pipe + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
bodies = re.findall(rb"\r\n\r\n(\{.*?\})(?=HTTP/1\.1|$)", out, re.S)
owners = ["A" if b'"alice"' in x else "B" if b'"xavier"' in x else "401" if b"SB_EAUTH" in x else "?"
          for x in bodies[:5]]
t.is_(owners, ["A", "B", "A", "401", "B"], "pipelined requests with alternating credentials: each "
      "answered as its own account")
# A key revoked, an account deleted: refused at once on a connection that used them.
k = d.admin("POST", "/v1/accounts/acme/keys").json
A2 = Account(d, "acme", k["key"])
c = d.conn()
r1 = d.request("GET", "/v1/agents", auth=A2.auth, conn=c)
d.admin("DELETE", "/v1/accounts/acme/keys/" + k["key_id"])
r2 = d.request("GET", "/v1/agents", auth=A2.auth, conn=c)
c.close()
t.ok(r1.status == 200 and r2.status == 401,
     "a key revoked while its connection stays open: 401 on the next request (%d, %d)"
     % (r1.status, r2.status))
d.admin("POST", "/v1/accounts", {"id": "tmpco", "name": "Tmp"})
T = Account(d, "tmpco", d.admin("POST", "/v1/accounts/tmpco/keys").json["key"])
c = d.conn()
r1 = d.request("GET", "/v1/agents", auth=T.auth, conn=c)
d.admin("DELETE", "/v1/accounts/tmpco")
r2 = d.request("GET", "/v1/agents", auth=T.auth, conn=c)
c.close()
t.ok(r1.status == 200 and r2.status == 401,
     "an account deleted while a connection of its stays open: 401 on the next request (%d, %d)"
     % (r1.status, r2.status))

# -- lists, policies, per-account ids --------------------------------------------------
t.is_(sorted(x["id"] for x in B.get("/v1/agents").json["agents"]), ["xavier", "yolanda"],
      "B's agent list: only B's agents")
t.is_(sorted(x["id"] for x in B.get("/v1/queues").json["queues"]), ["sales"],
      "B's queue list: only B's queues")
pa = {p["name"]: p for p in A.get("/v1/policies").json["policies"] if p.get("source") == "account"}
r = B.put("/v1/policies/first", "local P = {}\nfunction P.route(c, a, x) return {wait = 1} end\n"
          "return P\n", headers={"Content-Type": "text/x-lua"})
t.is_(r.status, 200, "B replaces its own policy 'first'")
pb = {p["name"]: p for p in B.get("/v1/policies").json["policies"] if p.get("source") == "account"}
pa2 = {p["name"]: p for p in A.get("/v1/policies").json["policies"] if p.get("source") == "account"}
t.ok(pa2["first"]["version"] == pa["first"]["version"] != pb["first"]["version"],
     "A's 'first' keeps its version; B's list shows B's version only")
r = B.put("/v1/agents/alice", agent_doc("alice", name="Globex Alice"))
r2 = B.put("/v1/queues/support", {"policy": "first", "members": [{"agent": "alice"}]})
t.ok(r.status == 200 and r2.status == 200, "B creates its own alice and support")
r = B.post("/v1/calls", {"call": "c9", "queue": "support", "caller": "+4930200003"})
t.is_(r.status, 201, "B's call into B's support", r)
B.post("/v1/calls/c9/abandon")
t.ok(B.delete("/v1/queues/support").status == 200 and B.delete("/v1/agents/alice").status == 200,
     "B deletes its own support and alice")

# -- streams ----------------------------------------------------------------------------
t.ok(sa.next(timeout=0.5) is None, "A's stream saw nothing of B's activity")
evs = []
while True:
    e = sb.next(timeout=0.5)
    if e is None:
        break
    evs.append(e)
t.ok(all(e.get("account") == "globex" for e in evs),
     "B's stream carried only B's actions (%d)" % len(evs), evs)

# -- account deleted and created again ---------------------------------------------------
B.post("/v1/calls", {"call": "b3", "queue": "sales", "caller": "+4930200003"})
B.post("/v1/calls/b3/abandon")
t.is_(B.get("/v1/calls/b3").json.get("state"), "ended", "B's call b3 ended (a record)")
old_b_key = B.key
for h in ("hb-c0", "hb-nocall"):
    B.delete("/v1/holds/" + h)  # an account with legal holds cannot be deleted
r = d.admin("DELETE", "/v1/accounts/globex")
t.ok(r.status == 409 and r.json["error"]["code"] == "SB_ESTATE" and "b1" in r.json["error"]["message"],
     "an account with live calls cannot be deleted; the error names them", r)
for c in ("b1", "b2"):
    B.post("/v1/calls/%s/abandon" % c)
r = d.admin("DELETE", "/v1/accounts/globex")
t.is_(r.status, 200, "once they end, the admin deletes B", r)
t.ok(shape(as_auth(basic("globex", old_b_key)), []) == shape(random_key, []),
     "the deleted account's key: 401, as a random key")
r = d.admin("POST", "/v1/accounts", {"id": "globex", "name": "Globex again"})
key = d.admin("POST", "/v1/accounts/globex/keys").json["key"]
B2 = Account(d, "globex", key)
t.ok(shape(as_auth(basic("globex", old_b_key)), []) == shape(random_key, []),
     "the old key does not work for the new globex either")
for p in ("/v1/calls/b1", "/v1/calls/b2", "/v1/calls/b3", "/v1/agents/xavier", "/v1/queues/sales"):
    t.is_(B2.get(p).status, 404, "the new globex does not see the old one's %s" % p)
t.is_(B2.get("/v1/records").json.get("records"), [], "the new globex has no records")
t.is_(B2.get("/v1/records?number=%2B4930200003").json.get("records"), [],
      "... not even by the old one's caller number")
t.is_(B2.get("/v1/aggregates").json.get("days"), [], "... and no aggregates")
t.is_(B2.get("/v1/agents").json["agents"], [], "the new globex has no agents")

after = snapshot()
for p in A_PATHS:
    t.is_(after[p], before[p], "A's %s unchanged" % p)
r = A.post("/v1/calls/c1/ring_result", {"agent": "alice", "outcome": "answered"})
t.is_(r.status, 200, "A's calls still work")
t.is_(d.stop(), 0, "exit 0")
t.done()
