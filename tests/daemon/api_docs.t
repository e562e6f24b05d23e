#!/usr/bin/env python3
# engine/daemon/API.md's examples, every command of its ```sh blocks, run
# verbatim by a shell in document order against one fresh daemon, as a new
# user following the page top to bottom would: with the variables its top
# assumes (SB and ADMIN; KEY and AUTH from the first POST .../keys), in a
# working directory of its own (the policy example writes files there). Each
# answer is checked against what the page says it gives, so an example that
# needs something a later one makes, or that deletes something a later one
# uses, fails here. An example added, removed or moved in the page fails the
# test too ("example N is ...") until EXPECT below follows it.
import sys, os, re, json, subprocess, tempfile, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, ROOT, provision

t = TAP(deadline=180)
d = t.owned(Daemon(policy_dir=os.path.join(ROOT, "policies"))).start()

with open(os.path.join(ROOT, "engine", "daemon", "API.md")) as f:
    doc = f.read()


def examples(doc):
    """The commands of the ```sh blocks after the first (the variables), in
    order: a command's indented lines and a here-document go with it."""
    cmds = []
    for block in re.findall(r"```sh\n(.*?)```", doc, re.S)[1:]:
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if not line.strip() or line.startswith("#"):
                continue
            if line.startswith(" ") and cmds:
                cmds[-1] += "\n" + line
                continue
            cmd = line
            m = re.search(r"<<'?(\w+)'?", line)
            while m and i < len(lines):
                cmd += "\n" + lines[i]
                i += 1
                if lines[i - 1] == m.group(1):
                    break
            cmds.append(cmd)
    return cmds


commands = examples(doc)
work = tempfile.mkdtemp(prefix="sb-api-docs-", dir=d.tmp)
env = dict(os.environ, SB="http://127.0.0.1:%d" % d.port, ADMIN="Authorization: Bearer " + d.token)
env.pop("KEY", None)
env.pop("AUTH", None)


def run(cmd):
    """(status, body) of a documented command, run as written (run_once),
    and run again, as the page says to, when the account's policy uploads
    have taken more than their share of the event loop lately: "429 SB_ELIMIT
    with Retry-After ... two full uploads back to back, then one every five
    seconds or so". The page uploads five times in a few seconds, and the
    time an upload takes is the event loop's wall time: some 35 ms each
    beside two busy processes, several times that in the sanitizer build,
    so the fifth can find 600 ms owed. The refused upload changed nothing,
    so the command is run again as written once the wait the answer names
    has passed (six times at most)."""
    for _ in range(6):
        st, r = run_once(cmd)
        text = json.dumps(r) if isinstance(r, dict) else str(r)
        m = re.search(r'"code": ?"SB_ELIMIT".*policy uploads took .*retry in (\d+) s', text)
        if not m:
            break
        t.diag("example `%s` refused, its uploads' share spent: run again in %s s"
               % (cmd.splitlines()[0], m.group(1)))
        time.sleep(int(m.group(1)))
    return st, r


def run_once(cmd):
    """(status, body) of a documented command, run as written: status is the
    HTTP status curl saw (its -w output goes to stderr, so a redirect of the
    body works as written), or the shell's exit status for other commands;
    body is the JSON answer, or the text when it is not JSON."""
    script = "curl() { command curl -w '%{stderr}\\n%{http_code}' \"$@\"; }\n" + cmd
    p = subprocess.run(["bash", "-c", script], env=env, cwd=work, capture_output=True,
                       text=True, timeout=20)
    if not cmd.startswith("curl"):
        return p.returncode, p.stdout + p.stderr
    code = p.stderr.rstrip("\n").rpartition("\n")[2]
    code = int(code) if code.isdigit() else p.stderr
    try:
        return code, json.loads(p.stdout)
    except ValueError:
        return code, p.stdout


class Stream:
    """A command ending in `&`: run in the background, its output kept."""

    def __init__(self, cmd):
        self.text = ""
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(["bash", "-c", "exec " + cmd.rstrip("& ")], env=env, cwd=work,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in iter(lambda: self.proc.stdout.readline(), b""):
            with self.cond:
                self.text += raw.decode("utf-8", "replace")
                self.cond.notify_all()

    def wait_for(self, s, timeout=10):
        end = time.monotonic() + timeout
        with self.cond:
            while s not in self.text and time.monotonic() < end:
                self.cond.wait(0.1)
            return s in self.text

    def data(self):
        return [json.loads(l[6:]) for l in self.text.splitlines() if l.startswith("data: ")]


stream = None
state = {}


def err(r):
    return (r.get("error") or {}) if isinstance(r, dict) else {}


def actions(r):
    return r.get("actions") if isinstance(r, dict) else None


def kinds(r):
    return [(a.get("type"), a.get("call"), a.get("agent")) for a in actions(r) or []]


def key_made(st, r):
    ok = (st == 201 and sorted(r) == ["account", "created_ms", "key", "key_id"] and
          r["account"] == "acme" and
          re.fullmatch(r"[0-9a-f]{16}", r["key_id"]) is not None and r["key"].startswith("sbk_"))
    if ok:  # as the page says: KEY and AUTH from this answer
        env["KEY"] = r["key"]
        env["AUTH"] = "-u acme:" + r["key"]
        state["key_id"] = r["key_id"]
    return ok


def agent_put(name):
    return lambda st, r: (st, r) == (200, {"id": name, "created": True, "status": "available"})


def stream_ring(st, r):
    ring = ("ring", "c4", "bob")
    return ((st, r) == (200, {"actions": []}) and stream.wait_for('"call":"c4","agent":"bob"') and
            [(a["type"], a.get("call"), a.get("agent")) for a in stream.data()] == [ring])


def etag_upload(r):
    """The If-Match example: it stored the text again, and its first half
    read the ETag the answer names (an empty one would send no If-Match)."""
    m = re.match(r'\{"name":"my-policy","version":"([0-9a-f]{16})","previous":"\1"\}\n', r)
    cmd = next(c for c in commands if c.startswith("ETAG=$("))
    st, got = run(cmd.split(" &&")[0] + '\necho "[$ETAG]"')
    return m is not None and ('["%s"]' % m.group(1)) in got


def first_json(text):
    """The JSON object a command printed first (curl's status line follows)."""
    try:
        return json.JSONDecoder().raw_decode(text.lstrip())[0]
    except ValueError:
        return {}


def policy_version(path):
    """A policy file's version: the first 16 hex digits of its SHA-256."""
    import hashlib
    with open(os.path.join(work, path), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


NOW = time.time() * 1000


def ny_offset(t):
    """New York's UTC offset at t (Unix seconds), from the tz database as
    the engine reads it: the day its statistics are counted in."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    off = time.localtime(t).tm_gmtoff
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()
    return off


def ny_date(t):
    """The date in New York at t (Unix seconds)."""
    return time.strftime("%Y-%m-%d", time.gmtime(t + ny_offset(t)))

# Each example in document order: parts its command holds, what it is, and a
# check of (status, body).
EXPECT = [
    (["$SB/healthz"], "GET /healthz",
     lambda st, r: st == 200 and r.get("status") == "ok" and r.get("version")),
    (["$SB/metrics"], "GET /metrics (admin)",
     lambda st, r: st == 200 and "switchboard_events_total{" in r),
    (['"id":"acme","name":"Acme Ltd"', "/v1/accounts"], "POST /v1/accounts: 201, created",
     lambda st, r: st == 201 and r.get("id") == "acme" and r.get("created") is True),
    (['"limits":{"agents":200,"live_calls":100}', "/v1/accounts/acme"],
     "PUT /v1/accounts/acme with limits: read back, with usage",
     lambda st, r: st == 200 and r.get("limits") == {"agents": 200, "live_calls": 100} and
     r.get("usage") == {"agents": 0, "queues": 0, "live_calls": 0, "policies": 0}),
    (["$SB/v1/accounts"], "GET /v1/accounts lists acme",
     lambda st, r: st == 200 and [a["id"] for a in r.get("accounts", [])] == ["acme"]),
    (["$SB/v1/accounts/acme"], "GET /v1/accounts/acme, its limits and usage",
     lambda st, r: st == 200 and r.get("name") == "Acme Ltd" and
     r.get("limits") == {"agents": 200, "live_calls": 100} and "usage" in r),
    (["-X PUT", '"name":"Acme Group"'], "PUT /v1/accounts/acme: created false, in New York",
     lambda st, r: st == 200 and r.get("name") == "Acme Group" and r.get("created") is False and
     r.get("timezone") == "America/New_York"),
    (["-X POST $SB/v1/accounts/acme/keys"],
     "POST keys: 201 {account, key_id (16 hex), key, created_ms}",
     key_made),
    (["$SB/v1/accounts/acme/keys"], "GET keys lists the key_id and when it was made",
     lambda st, r: st == 200 and [sorted(k) for k in r.get("keys", [])] == [["created_ms", "key_id"]]
     and r["keys"][0]["key_id"] == state["key_id"]),
    (["-X PUT $SB/v1/agents/alice"], "PUT alice", agent_put("alice")),
    (["-X PUT $SB/v1/agents/bob"], "PUT bob", agent_put("bob")),
    (["-X PUT $SB/v1/agents/carol"], "PUT carol", agent_put("carol")),
    (["$SB/v1/agents"], "GET /v1/agents lists the three",
     lambda st, r: st == 200 and [a["id"] for a in r.get("agents", [])] == ["alice", "bob", "carol"]),
    (["$SB/v1/agents/alice"], "GET /v1/agents/alice: available",
     lambda st, r: st == 200 and r.get("id") == "alice" and r.get("status") == "available"),
    (['"status":"paused","reason":"lunch"', "agents/bob/status"], "pausing idle bob: no actions",
     lambda st, r: (st, r) == (200, {"actions": []})),
    (['"status":"available"', "agents/bob/status"], "bob available again: no actions",
     lambda st, r: (st, r) == (200, {"actions": []})),
    (["-X PUT $SB/v1/queues/backup"], "PUT backup",
     lambda st, r: (st, r) == (200, {"id": "backup", "created": True})),
    (["-X PUT $SB/v1/queues/support", '"tier":1', '"tier":2'],
     "PUT support (tiers, overflow backup)",
     lambda st, r: (st, r) == (200, {"id": "support", "created": True})),
    (["$SB/v1/queues"], "GET /v1/queues",
     lambda st, r: st == 200 and [q["id"] for q in r.get("queues", [])] == ["backup", "support"]),
    (["$SB/v1/queues/support"], "GET /v1/queues/support: alice tier 1, bob tier 2",
     lambda st, r: st == 200 and [(m["agent"], m["tier"]) for m in r.get("members", [])] ==
     [("alice", 1), ("bob", 2)]),
    (["-X PUT $SB/v1/queues/support/members/carol", '"tier":2'], "PUT member carol: {\"actions\":[]}",
     lambda st, r: (st, r) == (200, {"actions": []})),
    (["-X PUT $SB/v1/queues/support/members/carol", '"paused":true'],
     "PUT member carol paused in support: {\"actions\":[]}",
     lambda st, r: (st, r) == (200, {"actions": []})),
    (["-X DELETE $SB/v1/queues/support/members/carol"], "DELETE member carol: {\"actions\":[]}",
     lambda st, r: (st, r) == (200, {"actions": []})),
    (['"call":"c1"', "$SB/v1/calls"], "offering c1 rings alice (tier 1)",
     lambda st, r: st == 201 and kinds(r) == [("ring", "c1", "alice")]),
    (['"outcome":"answered"', "c1/ring_result"], "alice answers c1: connect",
     lambda st, r: st == 200 and kinds(r) == [("connect", "c1", "alice")]),
    (["$SB/v1/calls"], "GET /v1/calls: c1 connected to alice",
     lambda st, r: st == 200 and [(c["id"], c["state"], c.get("agent")) for c in r["calls"]] ==
     [("c1", "connected", "alice")]),
    (["$SB/v1/calls?queue=support"], "GET /v1/calls?queue=support: c1",
     lambda st, r: st == 200 and [c["id"] for c in r["calls"]] == ["c1"]),
    (["$SB/v1/calls/c1"], "GET /v1/calls/c1 while live: connected, the caller, the trace",
     lambda st, r: st == 200 and r.get("state") == "connected" and
     r.get("caller") == "+442079460001" and r.get("trace") and "policy_versions" not in r and
     r["trace"][0]["policy"] == "freeswitch/longest-idle-agent"),
    (['{"by":"agent"}', "$SB/v1/calls/c1/hangup"], "the hangup answers the documented end action",
     lambda st, r: (st, r) == (200, {"actions": [{"type": "end", "account": "acme", "call": "c1",
                                                  "queue": "support", "reason": "answered"}]})),
    (["$SB/v1/calls/c1"], "GET /v1/calls/c1 once ended: the record, no trace, no number",
     lambda st, r: st == 200 and r.get("state") == "ended" and "trace" not in r and
     "caller" not in r and r.get("policy_versions") and r.get("attempts_detail") and
     r.get("ended_by") == "agent"),
    (['"call":"c2"', "$SB/v1/calls"], "offering c2 rings alice again",
     lambda st, r: st == 201 and kinds(r) == [("ring", "c2", "alice")]),
    (["c2/abandon"], "abandoning c2: a cancel for alice, then the end (abandoned)",
     lambda st, r: st == 200 and kinds(r) == [("cancel", "c2", "alice"), ("end", "c2", None)] and
     r["actions"][1]["reason"] == "abandoned"),
    (['"call":"c3"', "$SB/v1/calls"], "offering c3 rings alice",
     lambda st, r: st == 201 and kinds(r) == [("ring", "c3", "alice")]),
    (['"outcome":"answered"', "c3/ring_result"], "alice answers c3",
     lambda st, r: st == 200 and kinds(r) == [("connect", "c3", "alice")]),
    (['{"queue":"backup"}', "c3/transfer"], "the transfer: overflow to backup, carol rings",
     lambda st, r: st == 200 and kinds(r) == [("overflow", "c3", None), ("ring", "c3", "carol")] and
     r["actions"][0]["reason"] == "transferred" and r["actions"][1]["queue"] == "backup"),
    (["c3/hangup"], "hanging up c3: a cancel for carol, the end answered in backup",
     lambda st, r: st == 200 and kinds(r) == [("cancel", "c3", "carol"), ("end", "c3", None)] and
     r["actions"][1]["reason"] == "answered" and r["actions"][1]["queue"] == "backup"),
    (["cat > my-policy.lua"], "writing my-policy.lua", lambda st, r: st == 0),
    (["cat > my-policy.cases.json"], "writing my-policy.cases.json", lambda st, r: st == 0),
    (["--data-binary @my-policy.lua"], "uploading my-policy.lua: no warnings",
     lambda st, r: st == 200 and r.get("name") == "my-policy" and "warnings" not in r),
    (["jq -Rs . my-policy.lua", "my-policy.cases.json"], "uploading it with its cases",
     lambda st, r: st == 200 and r.get("name") == "my-policy" and "warnings" not in r),
    (["ETAG=$(curl -sI", '-H "If-Match: $ETAG"'], "an upload with If-Match: the ETag read",
     lambda st, r: st == 0 and etag_upload(r)),
    (["$SB/v1/policies"], "GET /v1/policies: the upload and the shared ones",
     lambda st, r: st == 200 and {"my-policy", "freeswitch/longest-idle-agent"} <=
     {p["name"] for p in r.get("policies", [])}),
    (["$SB/v1/policies/my-policy"], "GET /v1/policies/my-policy: its code",
     lambda st, r: st == 200 and r.get("source") == "account" and
     r.get("code", "").startswith("local P = {}")),
    (["sed 's/or \"english\"/or \"german\"/' my-policy.lua", "--data-binary @-"],
     "uploading a changed version: it replaced the first",
     lambda st, r: st == 0 and first_json(r).get("previous") == policy_version("my-policy.lua")),
    (["$SB/v1/policy-versions/my-policy"], "GET /v1/policy-versions/my-policy: the two, newest first",
     lambda st, r: st == 200 and [(v["change"], v["current"]) for v in r.get("versions", [])] ==
     [("upload", True), ("upload", False)] and
     r["versions"][1]["version"] == policy_version("my-policy.lua") and
     r["versions"][0]["previous"] == r["versions"][1]["version"]),
    (["?version=$(sha256sum my-policy.lua | cut -c1-16)"], "?version=: the first one's code",
     lambda st, r: st == 200 and
     r.get("code") == open(os.path.join(work, "my-policy.lua")).read()),
    (["PREV=$(curl", "--data-binary @rollback.lua", '-H "If-Match: $ETAG"'],
     "the rollback: the first version back, replacing the second",
     lambda st, r: st == 0 and first_json(r).get("version") == policy_version("my-policy.lua") and
     first_json(r).get("previous") not in (None, policy_version("my-policy.lua"))),
    (["-X DELETE \"$SB/v1/policy-versions/my-policy?version="], "forgetting the changed version",
     lambda st, r: (st, r) == (200, {"name": "my-policy", "forgotten": 1})),
    (["-X DELETE $SB/v1/policies/my-policy"], "DELETE my-policy: none stands in",
     lambda st, r: (st, r) == (200, {"name": "my-policy", "deleted": True, "now": None})),
    (["records?queue=support"], "GET /v1/records?queue=support: c2 and c1 (c3 ended in backup)",
     lambda st, r: st == 200 and [x["id"] for x in r.get("records", [])] == ["c2", "c1"]),
    (["records?number=+442079460001"], "the access request finds c1, its caller",
     lambda st, r: st == 200 and [(x["id"], x["role"], x["caller"]) for x in r["records"]] ==
     [("c1", "caller", "+442079460001")]),
    (["format=csv", "> subject.csv"], "... and as CSV, in subject.csv: a header and c1",
     lambda st, r: st == 200 and r == "" and
     len(open(os.path.join(work, "subject.csv")).read().strip().splitlines()) == 2),
    (["$SB/v1/erasure"], "the erasure request deletes c1's record",
     lambda st, r: st == 200 and (r.get("deleted"), r.get("held"), r.get("live")) == (1, 0, 0)),
    (['"id":"lit-1"', "$SB/v1/holds"], "placing hold lit-1: 201",
     lambda st, r: st == 201 and r.get("id") == "lit-1" and r.get("kind") == "number" and
     "number" not in r),
    (["$SB/v1/holds"], "GET /v1/holds: lit-1",
     lambda st, r: st == 200 and [h["id"] for h in r.get("holds", [])] == ["lit-1"]),
    (["$SB/v1/holds/lit-1"], "GET /v1/holds/lit-1: the hold, as the list gives it",
     lambda st, r: st == 200 and r.get("id") == "lit-1" and r.get("kind") == "number" and
     r.get("reason") == "case 7" and "number" not in r),
    (["-X DELETE $SB/v1/holds/lit-1"], "releasing lit-1",
     lambda st, r: st == 200 and r.get("released") is True),
    (["aggregates?queue=support"], "GET /v1/aggregates: today's support counts in New York "
     "(c3 answered there before its transfer)",
     lambda st, r: st == 200 and r.get("timezone") == "America/New_York" and
     [(x["queue"], x["offered"], x["answered"], x["abandoned"], x["overflowed"], x["timezone"])
      for x in r.get("days", [])] == [("support", 3, 2, 1, 0, "America/New_York")] and
     r["days"][0]["day"] in (ny_date(NOW / 1000), ny_date(time.time()))),
    (["audit?after=0"], "GET /v1/audit: the two access requests (JSON, CSV), the erasure's "
     "delete and the request, the hold placed and released",
     lambda st, r: st == 200 and [e["action"] for e in r.get("entries", [])] ==
     ["access_request", "access_request", "delete", "erasure_request", "hold_placed",
      "hold_released"] and
     [e["reason"] for e in r["entries"][:2]] == ["access request: 1 record disclosed as JSON",
                                                 "access request: 1 record disclosed as CSV"]),
    (["$SB/v1/retention/preview", '"in_days":91'],
     "the dry run 91 days on: c2 and c3 would be deleted, nothing written",
     lambda st, r: st == 200 and (r.get("reviewed"), r.get("deleted"), r.get("done")) ==
     (2, 2, True) and r["samples"]["deleted"] == ["c2", "c3"] and
     r.get("reasons") == {"delete: older than 90 days": 2}),
    (["curl -sN $AUTH $SB/v1/events &"], "the stream, opened in the background", None),
    (['"status":"paused"', "agents/alice/status"], "pausing alice",
     lambda st, r: (st, r) == (200, {"actions": []})),
    (['"status":"paused"', "agents/bob/status"], "pausing bob",
     lambda st, r: (st, r) == (200, {"actions": []})),
    (['"call":"c4"', "$SB/v1/calls"], "offering c4 with nobody free: a wait, due in 10 s",
     lambda st, r: st == 201 and kinds(r) == [("wait", "c4", None)] and
     NOW + 9000 < r["actions"][0]["due_ms"] < time.time() * 1000 + 11000),
    (['"status":"available"', "agents/bob/status"],
     "bob back: {\"actions\":[]}, and the ring for c4 on the stream, alone", stream_ring),
    (["c4/abandon"], "abandoning c4: the cancel and the end in the response",
     lambda st, r: st == 200 and kinds(r) == [("cancel", "c4", "bob"), ("end", "c4", None)]),
    (["-X DELETE $SB/v1/agents/alice"], "DELETE alice",
     lambda st, r: (st, r) == (200, {"actions": []})),
    (["-X DELETE $SB/v1/queues/support"], "DELETE support",
     lambda st, r: (st, r) == (200, {"actions": []})),
    (["-X DELETE $SB/v1/accounts/acme/keys/"], "revoking the key (the key_id POST gave)",
     lambda st, r: (st, r) == (200, {"actions": []})),
    (["-X DELETE $SB/v1/accounts/acme"], "DELETE the account: nothing holds it back",
     lambda st, r: (st, r) == (200, {"actions": []})),
]

doc_key_id = None
m = re.search(r"keys/([0-9a-f]{16})\b", doc)
if m:
    doc_key_id = m.group(1)
t.ok(doc_key_id and re.search(r'"key_id":"%s"' % doc_key_id, doc),
     "the revoke example uses the key_id shown for POST keys")

t.is_(len(commands), len(EXPECT), "API.md has the %d examples this test knows" % len(EXPECT),
      [c.splitlines()[0] for c in commands])
for i, (cmd, (parts, what, check)) in enumerate(zip(commands, EXPECT)):
    first = cmd.splitlines()[0]
    if not all(p in cmd for p in parts):
        t.ok(False, "example %d is `%s`: expected one with %s (%s)" % (i + 1, first, parts, what))
        break
    if check is None:
        stream = Stream(cmd)
        t.ok(stream.wait_for(": connected"), "example %d, %s: connected" % (i + 1, what), stream.text)
        continue
    if doc_key_id and doc_key_id in cmd:  # as its comment says: the key_id POST gave
        st, r = run(cmd)
        t.is_((st, err(r).get("field")), (404, "key_id"),
              "example %d as printed: 404 naming key_id (an example id)" % (i + 1))
        cmd = cmd.replace(doc_key_id, state.get("key_id", doc_key_id))
    st, r = run(cmd)
    t.ok(check(st, r), "example %d, %s" % (i + 1, what), "`%s`\n-> %s %s" % (first, st, r))

if stream:
    try:
        stream.proc.wait(10)
        closed = True
    except subprocess.TimeoutExpired:
        stream.proc.kill()
        closed = False
    t.ok(closed and stream.text.startswith(": connected"),
         "the stream closed when its key was revoked", stream.text)

# What the page says beside its examples, in an account of the test's own.
side = provision(d, account="side", agents=("bob",), queue="support")
r = side.put("/v1/queues/other", {"members": [{"agent": "bob"}, {"agent": "zed"}], "policy": "first"})
t.is_((r.status, r.code, r.field), (400, "SB_EINVAL", "members[1].agent"),
      "a queue member that is no agent: 400, members[1].agent")
t.ok('"field":"members[1].agent"' in doc, "... as API.md says")
r = side.post("/v1/calls", {"call": "s1", "queue": "support", "caller": "+441632960005"})
t.is_(r.actions("ring") and r.actions("ring")[0].get("agent"), "bob", "a call rings bob", r)
r = side.post("/v1/agents/bob/status", {"status": "paused"})
want = {"actions": [{"type": "agent", "account": "acme", "agent": "bob", "status": "paused"}]}
t.is_((r.status, r.json), (200, json.loads(json.dumps(want).replace("acme", "side"))),
      "pausing ringing bob: the agent action")
t.ok(json.dumps(want, separators=(",", ":")) in doc.replace("\n", ""), "... as API.md shows it")

# The Responses table's bodies have the fields the daemon answers with.
table = doc.split("**Responses.**", 1)[1].split("\n\n", 2)[1]
shown = {}
for line in table.splitlines():
    m = re.match(r"\| `(PUT|POST) (/v1/[^`]+)` \| `(\{.*\})` \|", line)
    if m:
        shown[m.group(1) + " " + m.group(2)] = json.loads(m.group(3).replace("…", ""))
answers = {
    "PUT /v1/agents/{id}": side.put("/v1/agents/dora", {"devices": {"softphone": "sip:d@x"}}),
    "PUT /v1/queues/{id}": side.put("/v1/queues/third", {"policy": "first"}),
    "POST /v1/accounts/{id}/keys": d.admin("POST", "/v1/accounts/side/keys"),
}
t.is_(sorted(shown), sorted(answers), "the table shows the bodies of %s" % ", ".join(answers))
for route, r in answers.items():
    t.is_(sorted(shown.get(route, {})), sorted(r.json or {}),
          "%s: the table's body has the answer's fields" % route, r)

t.is_(d.stop(), 0, "exit 0")
t.done()
