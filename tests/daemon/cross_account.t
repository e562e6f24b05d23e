#!/usr/bin/env python3
# Nothing crosses accounts: account B reading, changing or offering into A's
# agents, queues and calls gets the same 404 as for ids that do not exist,
# and A's state does not change.
import sys, os, re
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, Stream, provision, agent_doc

t = TAP()
d = t.owned(Daemon()).start()
a = provision(d, account="acme", agents=("alice", "bob"), queue="support")
b = provision(d, account="globex", agents=("xavier",), queue="sales")
sa = Stream(d, a.auth)
t.cleanups.append(sa.close)

r = a.post("/v1/calls", {"call": "c1", "queue": "support", "caller": "+4930100001"})
t.is_([x["agent"] for x in r.actions("ring")], ["alice"], "A's call c1 rings alice")
before = {p: a.get(p).body for p in ("/v1/agents/alice", "/v1/agents/bob", "/v1/queues/support",
                                     "/v1/calls/c1", "/v1/agents", "/v1/queues")}


def same_as_missing(r_other, r_missing, what):
    """404 with the same code, field and message (up to the id itself)."""
    def shape(r):
        e = (r.json or {}).get("error", {})
        msg = re.sub(r"'[^']*'", "'ID'", e.get("message", ""))
        return (r.status, e.get("code"), e.get("field"), msg)
    t.ok(r_other.status == 404 and shape(r_other) == shape(r_missing),
         what + ": 404, identical to a nonexistent id",
         "other:   %r\nmissing: %r" % (r_other, r_missing))


same_as_missing(b.get("/v1/agents/alice"), b.get("/v1/agents/nobody"), "B reads A's agent")
same_as_missing(b.delete("/v1/agents/alice"), b.delete("/v1/agents/nobody"), "B deletes A's agent")
same_as_missing(b.post("/v1/agents/alice/status", {"status": "paused"}),
                b.post("/v1/agents/nobody/status", {"status": "paused"}), "B pauses A's agent")
same_as_missing(b.get("/v1/queues/support"), b.get("/v1/queues/nothere"), "B reads A's queue")
same_as_missing(b.delete("/v1/queues/support"), b.delete("/v1/queues/nothere"), "B deletes A's queue")
same_as_missing(b.put("/v1/queues/support/members/xavier"),
                b.put("/v1/queues/nothere/members/xavier"), "B adds its agent to A's queue")
same_as_missing(b.put("/v1/queues/sales/members/alice"),
                b.put("/v1/queues/sales/members/nobody"), "B adds A's agent to its queue")
same_as_missing(b.delete("/v1/queues/support/members/alice"),
                b.delete("/v1/queues/nothere/members/alice"), "B removes A's member")
same_as_missing(b.post("/v1/calls", {"call": "b1", "queue": "support", "caller": "+4930100002"}),
                b.post("/v1/calls", {"call": "b2", "queue": "nothere", "caller": "+4930100002"}),
                "B offers a call into A's queue")
same_as_missing(b.get("/v1/calls/c1"), b.get("/v1/calls/nocall"), "B reads A's call")
same_as_missing(b.post("/v1/calls/c1/ring_result", {"agent": "alice", "outcome": "answered"}),
                b.post("/v1/calls/nocall/ring_result", {"agent": "alice", "outcome": "answered"}),
                "B answers A's call")
same_as_missing(b.post("/v1/calls/c1/hangup"), b.post("/v1/calls/nocall/hangup"), "B hangs up A's call")
same_as_missing(b.post("/v1/calls/c1/abandon"), b.post("/v1/calls/nocall/abandon"), "B abandons A's call")
same_as_missing(b.post("/v1/calls/c1/transfer", {"queue": "sales"}),
                b.post("/v1/calls/nocall/transfer", {"queue": "sales"}), "B transfers A's call")

# B may have its own "alice": ids are per account, and A's alice is untouched.
r = b.put("/v1/agents/alice", agent_doc("alice", name="Globex Alice"))
t.is_(r.status, 200, "B creates its own agent named alice")
t.is_(b.get("/v1/agents/alice").json.get("name"), "Globex Alice", "B sees its alice")
t.is_(a.get("/v1/agents/alice").json.get("name"), "Alice", "A still sees its own alice")
b.delete("/v1/agents/alice")
r = b.get("/v1/policies")
t.ok("first" in [p["name"] for p in r.json.get("policies", [])] and
     all(p.get("source") != "account" or p["name"] == "first" for p in r.json["policies"]),
     "B's policy list holds only B's own policies", r)

after = {p: a.get(p).body for p in before}
for p in before:
    t.is_(after[p], before[p], "A's %s is unchanged" % p)
t.ok(sa.next(timeout=1) is None, "A's stream saw nothing from B's attempts")
r = a.post("/v1/calls/c1/ring_result", {"agent": "alice", "outcome": "answered"})
t.ok(r.status == 200 and r.actions("connect"), "A's call still works", r)

# The admin's account routes are about the account named in the path only.
r = d.admin("GET", "/v1/accounts/globex")
t.is_(r.json.get("id"), "globex", "the admin reads B")
t.is_(d.stop(), 0, "exit 0")
t.done()
