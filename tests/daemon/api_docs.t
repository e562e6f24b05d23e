#!/usr/bin/env python3
# engine/daemon/API.md's examples, run verbatim by a shell with the variables
# its top assumes (SB, ADMIN, KEY, AUTH): the account, key, agent, queue and
# member examples create what the later ones use, and each answer is the
# body the page shows (keys, PUTs, members, agent status, a call read live
# and after it ended, /healthz).
import sys, os, re, json, subprocess
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, ROOT

t = TAP()
d = t.owned(Daemon(policy_dir=os.path.join(ROOT, "policies"))).start()

with open(os.path.join(ROOT, "engine", "daemon", "API.md")) as f:
    doc = f.read()

# The curl commands of the ```sh blocks (a command's quoted body may span lines).
commands = []
for block in re.findall(r"```sh\n(.*?)```", doc, re.S):
    for line in block.splitlines():
        if line.startswith("curl "):
            commands.append(line)
        elif commands and line.startswith("  ") and not line.lstrip().startswith("#"):
            commands[-1] += "\n" + line


def example(*parts):
    """The one documented command containing every part."""
    found = [c for c in commands if all(p in c for p in parts)]
    assert len(found) == 1, (parts, found)
    return found[0]


env = dict(os.environ, SB="http://127.0.0.1:%d" % d.port, ADMIN="Authorization: Bearer " + d.token)


def run(cmd):
    """(status, JSON body) of a documented command, run as written."""
    script = "curl() { command curl -w '\\n%{http_code}' \"$@\"; }\n" + cmd
    p = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=20)
    body, _, code = p.stdout.rpartition("\n")
    try:
        return int(code), json.loads(body)
    except ValueError:
        return code, {"raw": p.stdout, "err": p.stderr}


st, r = run(example("/healthz"))
t.ok(st == 200 and r.get("status") == "ok" and r.get("version"), "GET /healthz as documented", r)
st, r = run(example('"id":"acme","name":"Acme Ltd"'))
t.ok(st == 201 and r.get("id") == "acme" and r.get("created") is True,
     "POST /v1/accounts: 201, the account with \"created\":true", r)
st, r = run(example("-X POST $SB/v1/accounts/acme/keys"))
t.ok(st == 201 and sorted(r) == ["account", "key", "key_id"] and r["account"] == "acme" and
     re.fullmatch(r"[0-9a-f]{16}", r["key_id"]) and r["key"].startswith("sbk_"),
     "POST keys: 201 {account, key_id (16 hex), key}", r)
key_id = r.get("key_id", "")
env["KEY"] = r.get("key", "")
env["AUTH"] = "-u acme:" + env["KEY"]
doc_id = re.search(r"keys/([0-9a-f]{16})\b", example("-X DELETE $SB/v1/accounts/acme/keys/")).group(1)
t.ok(re.search(r'"key_id":"%s"' % doc_id, doc), "the revoke example uses the key_id shown for POST keys")

for name in ("alice", "bob", "carol"):
    st, r = run(example("-X PUT $SB/v1/agents/%s -d" % name))
    t.is_((st, r), (200, {"id": name, "created": True, "status": "available"}),
          "PUT /v1/agents/%s as documented" % name)
st, r = run(example("-X PUT $SB/v1/queues/backup"))
t.is_((st, r), (200, {"id": "backup", "created": True}), "PUT /v1/queues/backup")
st, r = run(example("-X PUT $SB/v1/queues/support -d"))
t.is_((st, r), (200, {"id": "support", "created": True}),
      "PUT /v1/queues/support (members alice and bob, overflow backup) works verbatim")
st, r = run(example("-X PUT $SB/v1/queues/support/members/carol"))
t.is_((st, r), (200, {"actions": []}), "PUT member carol: {\"actions\":[]}")
st, r = run(example("-X DELETE $SB/v1/queues/support/members/carol"))
t.is_((st, r), (200, {"actions": []}), "DELETE member carol: {\"actions\":[]}")

# A member that is not an agent: the documented 400.
st, r = run('curl -s $AUTH -X PUT $SB/v1/queues/other -d \'{"members":[{"agent":"alice"},{"agent":"zed"}],"policy":"longest-idle"}\'')
t.is_((st, r.get("error", {}).get("code"), r.get("error", {}).get("field")),
      (400, "SB_EINVAL", "members[1].agent"), "a queue member that is no agent: 400, members[1].agent")
t.ok('"field":"members[1].agent"' in doc, "... as API.md says")

# A call: read live (with its trace), then after the hangup (its record).
st, r = run(example('"call":"c1","queue":"support"'))
t.ok(st == 201 and [a["agent"] for a in r.get("actions", [])] == ["alice"],
     "the documented offer rings alice", r)
st, r = run(example('"outcome":"answered"}\' $SB/v1/calls/c1/ring_result'))
t.ok(st == 200 and r.get("actions", [{}])[0].get("type") == "connect", "the ring_result connects", r)
st, r = run(example("$AUTH $SB/v1/calls/c1"))
t.ok(st == 200 and r.get("state") == "connected" and r.get("trace") and "policy_versions" not in r,
     "GET /v1/calls/c1 while live: the state and the decision trace", r)
st, r = run(example("-X POST $SB/v1/calls/c1/hangup"))
t.is_((st, r), (200, {"actions": [{"type": "end", "account": "acme", "call": "c1",
                                   "queue": "support", "reason": "answered"}]}),
      "the hangup answers the documented end action")
st, r = run(example("$AUTH $SB/v1/calls/c1"))
t.ok(st == 200 and r.get("state") == "ended" and "trace" not in r and "caller" not in r and
     r.get("policy_versions") and r.get("attempts_detail"),
     "GET /v1/calls/c1 once ended: the record, with policy versions and attempts, no trace", r)

# Agent status: none for an idle agent, an agent action for one that was ringing.
st, r = run(example('"status":"paused","reason":"lunch"'))
t.is_((st, r), (200, {"actions": []}), "pausing idle bob: {\"actions\":[]}")
st, r = run(example('"status":"available"}\' $SB/v1/agents/bob'))
t.is_((st, r), (200, {"actions": []}), "bob available again, as the next example line says")
run('curl -s $AUTH -d \'{"status":"paused"}\' $SB/v1/agents/alice/status')
st, r = run('curl -s $AUTH -d \'{"call":"c3","queue":"support","caller":"+4930123457"}\' $SB/v1/calls')
t.ok([a.get("agent") for a in r.get("actions", [])] == ["bob"], "a call now rings bob", r)
st, r = run('curl -s $AUTH -d \'{"status":"paused"}\' $SB/v1/agents/bob/status')
want = {"actions": [{"type": "agent", "account": "acme", "agent": "bob", "status": "paused"}]}
t.is_((st, r), (200, want), "pausing ringing bob: the agent action")
t.ok(json.dumps(want, separators=(",", ":")) in doc.replace("\n", ""), "... as API.md shows it")

# Revoking: the documented id is an example (404 naming key_id); the real one works.
st, r = run(example("-X DELETE $SB/v1/accounts/acme/keys/"))
t.is_((st, r.get("error", {}).get("field")), (404, "key_id"), "revoking an unknown key_id: 404, key_id")
other = json.loads(d.admin("POST", "/v1/accounts/acme/keys").body)["key_id"]
st, r = run(example("-X DELETE $SB/v1/accounts/acme/keys/").replace(doc_id, other))
t.is_((st, r), (200, {"actions": []}), "revoking a key: {\"actions\":[]}")

t.is_(d.stop(), 0, "exit 0")
t.done()
