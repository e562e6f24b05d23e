#!/bin/sh
# tests/cli/policy.t — `switchboard policy ...` and --help everywhere: ctx.log
# lines of failing cases (every case's with -v), signing with keygen's JSON,
# check --public-key, the case runner's refusals, usage and exit codes.
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh

cat >"$tmp/logp.lua" <<'L'
local P = {}
function P.route(call, agents, ctx)
  ctx.log("agents:", #agents)
  if #agents == 0 then return { wait = 5 } end
  return { ring = agents[1].id }
end
return P
L
cat >"$tmp/logp.cases.json" <<'J'
[{"name": "rings the first", "agents": [{"id": "a"}], "expect": {"action": "ring", "agents": ["a"]}},
 {"name": "wrong on purpose", "agents": [], "expect": {"action": "ring"}}]
J
run "$sb" policy test "$tmp/logp.lua"
check 1 "a failing case shows its ctx.log lines" out "#   log: agents: 0"
! has "$out" "#   log: agents: 1"
ok $? "... but not a passing case's" "$(shown)"
run "$sb" policy test -v "$tmp/logp.lua"
check 1 "-v shows every case's log lines" out "#   log: agents: 1"
run "$sb" policy test --verbose "$tmp/logp.lua" "$tmp/logp.cases.json"
check 1 "--verbose, with the cases file named" out "#   log: agents: 1"

# Cases give ctx.queue's logged_in and paused (default: the members, none
# paused): a queue with nobody logged in, or only paused agents, and one
# with someone on a call.
cat >"$tmp/empty.lua" <<'L'
local P = {}
function P.route(call, agents, ctx)
  if #agents > 0 then return { ring = agents[1].id } end
  if ctx.queue.logged_in - ctx.queue.paused == 0 then return { reject = "nobody here" } end
  return { wait = 10 }
end
return P
L
cat >"$tmp/empty.cases.json" <<'J'
[{"name": "nobody logged in", "agents": [], "queue": {"members": 2, "logged_in": 0},
  "expect": {"action": "reject"}},
 {"name": "only paused ones", "agents": [], "queue": {"members": 2, "logged_in": 1, "paused": 1},
  "expect": {"action": "reject"}},
 {"name": "one on a call", "agents": [], "queue": {"members": 2, "logged_in": 1},
  "expect": {"action": "wait"}},
 {"name": "by default all members are logged in", "agents": [], "queue": {"members": 2},
  "expect": {"action": "wait"}}]
J
run "$sb" policy test "$tmp/empty.lua"
check 0 "cases set ctx.queue.logged_in and paused" out "4 passed"
printf '[{"name": "x", "queue": {"logged_in": -1}, "expect": {}}]\n' >"$tmp/empty.cases.json"
run "$sb" policy test "$tmp/empty.lua"
check 1 "a logged_in below 0 fails the case, naming it" out "queue.logged_in: expected 0 or more"

# A policy without a cases file: where to write them.
printf 'local P = {}\nfunction P.route(call, agents, ctx) return { wait = 1 } end\nreturn P\n' >"$tmp/nocase.lua"
run "$sb" policy test "$tmp/nocase.lua"
check 2 "policy test without cases says where to write them" err "has no cases: write them in $tmp/nocase.cases.json"

# Every policy of the folder by glob: the annotations file is skipped.
run "$sb" policy check policies/*.lua policies/*/*.lua
check 0 "policy check over policies/ by glob passes" out "policies/types/switchboard.lua: in a types/ folder (type annotations), which policy_dir's reload skips: not checked"

# check refuses what a reload and an upload refuse: a file elsewhere is
# checked whatever its first line (a reload loads it), one over 256 KiB, one
# that is not UTF-8 (the API hands sources back in JSON).
printf -- '---@meta\nlocal P = {\nreturn P\n' >"$tmp/meta.lua"
run "$sb" policy check "$tmp/meta.lua"
check 1 "a ---@meta file outside types/ is checked like any (a reload would load it)" err "meta.lua:"
printf 'local home = os.getenv("HOME")\nlocal P = {}\nfunction P.route() return { wait = 1 } end\nreturn P\n' >"$tmp/getenv.lua"
run "$sb" policy check "$tmp/getenv.lua"
check 1 "os.getenv at the top level: named as not available" err "getenv.lua:1: 'os.getenv' is not available in policies"
[ "$(printf '%s\n' "$err" | grep -c 'getenv.lua:1:')" -eq 1 ]
ok $? "... once, not also as a call of nil" "$(shown)"
run "$sb" policy test policies/types/switchboard.lua
check 2 "policy test on the type annotations: no policy to test, not a call for cases" err \
    "is in a types/ folder (type annotations for an editor, which policy_dir's reload skips): no policy to test"
{ printf 'local P = {}\n'; i=0; while [ $i -lt 5000 ]; do printf -- '-- %060d\n' $i; i=$((i + 1)); done
  printf 'function P.route(c, a, ctx) return { wait = 1 } end\nreturn P\n'; } >"$tmp/big.lua"
run "$sb" policy check "$tmp/big.lua"
check 1 "a policy over 256 KiB is refused by check too" err "larger than 256 KiB"
printf 'local P = {}\n-- caf\351\nfunction P.route(c, a, ctx) return { wait = 1 } end\nreturn P\n' >"$tmp/latin1.lua"
run "$sb" policy check "$tmp/latin1.lua"
check 1 "a policy that is not UTF-8 is refused, with its line" err "latin1.lua:2: not valid UTF-8"
# Lua compiles n gotos (or labels) in time growing with n squared, outside any
# budget: 30,000 to one label took 0.4-1.7 s. At most 1,000 of each; the word in
# comments and strings (short and long) is not counted. break is a goto to the
# loop's end, on the same list; '\r' ends a line (and a comment), '\r\n' is one
# line end; a string continued with '\z' or a backslash before its line end
# hides nothing.
# repeat_n N FORMAT: FORMAT N times, %d (once or twice) the count from 0.
repeat_n() { seq 0 $(($1 - 1)) | awk -v f="$2" '{ printf f, $1, $1 }'; }
# refused NAME HEAD N LINE TAIL LINE_NO TEST WHAT: a file of HEAD, LINE N
# times and TAIL is refused at LINE_NO for more than 1000 WHAT.
refused() {
    { printf -- "$2"; repeat_n "$3" "$4"; printf -- "$5"; } >"$tmp/$1.lua"
    run "$sb" policy check "$tmp/$1.lua"
    check 1 "$7" err "$1.lua:$6: more than 1000 $8"
}
body='local P = {}\nfunction P.route(c, a, ctx)\n'
{ printf "$body"'  local s\n'
  repeat_n 1200 '-- goto x ::y:: [[\ns = "goto ::" .. [==[goto ]] ::x::]==] .. [[\ngoto]] .. "\\"goto"\n'
  repeat_n 1000 'goto L%d ::L%d::\n'; printf 'return { wait = 1 }\nend\nreturn P\n'; } >"$tmp/gotos.lua"
run "$sb" policy check "$tmp/gotos.lua"
check 0 "1,000 gotos and labels compile; the words in comments and strings do not count" out "gotos.lua: ok"
refused gotos2 "$body  if ctx then\n" 1001 '    goto out\n' '  end\n  ::out::\n  return { wait = 1 }\nend\nreturn P\n' \
    1004 "the 1,001st goto is refused, with its line" "goto and break statements"
refused breaks "$body  while ctx do\n" 1001 '    break\n' '  end\n  return { wait = 1 }\nend\nreturn P\n' \
    1004 "the 1,001st break is refused, with its line" "goto and break statements"
refused cr 'local P = {}\rfunction P.route(c, a, ctx) -- x\r' 1001 '  goto L\r\n' \
    '  ::L::\r  return { wait = 1 }\rend\rreturn P\r' 1003 \
    "gotos after a comment ended by a carriage return are counted, CR LF one line" "goto and break statements"
refused z "$body"'  local s = "\\z\n  " local t = "[["\n  local u = "a\\\n"\n' 1001 '  goto L\n' \
    '  ::L:: local v = "]]"\n  return { wait = 1 }\nend\nreturn P\n' 1007 \
    "gotos after strings continued across lines are counted" "goto and break statements"
refused labels 'local x = 0\n' 1001 '::l%d:: x = x + 1\n' 'return { route = function() return { wait = 1 } end }\n' \
    1002 "the 1,001st label is refused, with its line" labels

# Signing: keygen's JSON is a key file; check verifies with the public key.
run "$sb" policy keygen
printf '%s\n' "$out" >"$tmp/key.json"
check 0 "keygen prints a key pair" out '"secret_key"'
pub=$(sed 's/.*"public_key": *"\([0-9a-f]*\)".*/\1/' "$tmp/key.json")
run "$sb" policy sign --key "$tmp/key.json" "$tmp/logp.lua"
printf '%s\n' "$out" >"$tmp/signed.lua"
check 0 "sign --key takes keygen's JSON" out "--@signature "
sed 's/.*"secret_key": *"\([0-9a-f]*\)".*/\1/' "$tmp/key.json" >"$tmp/sk.hex"
run "$sb" policy sign --key "$tmp/sk.hex" "$tmp/logp.lua"
[ "$rc" -eq 0 ] && [ "$out" = "$(cat "$tmp/signed.lua")" ]
ok $? "... and a file of bare hex, with the same signature" "$(shown)"
printf '{"public_key": "%s"}\n' "$pub" >"$tmp/pub.json"
run "$sb" policy sign --key "$tmp/pub.json" "$tmp/logp.lua"
check 2 "a key file without secret_key: says so" err 'no "secret_key" in it'
run "$sb" policy check --public-key "$tmp/key.json" "$tmp/signed.lua"
check 0 "check --public-key verifies a signed file" out "signed.lua: ok, signature verified"
run "$sb" policy check --public-key "$pub" "$tmp/signed.lua"
check 0 "... with the key as hex on the command line" out "signature verified"
sed 's/agents\[1\]/agents[#agents]/' "$tmp/signed.lua" >"$tmp/tampered.lua"
run "$sb" policy check --public-key "$tmp/key.json" "$tmp/tampered.lua"
check 1 "... and refuses a changed one" err "the signature does not verify"
run "$sb" policy check --public-key "$tmp/key.json" "$tmp/logp.lua"
check 1 "... and an unsigned one" err "unsigned"
{ cat "$tmp/signed.lua"; echo "-- a line added after signing"; } >"$tmp/appended.lua"
run "$sb" policy check --public-key "$tmp/key.json" "$tmp/appended.lua"
check 1 "... and one with text after its signature says it changed" err "changed after signing"

# --flag=VALUE, as replay, records, sweep, backup and serve take it: sign
# --key=F, check --public-key=K and --config=F, test --config=F (refused as
# unknown flags before).
run "$sb" policy sign --key="$tmp/key.json" "$tmp/logp.lua"
[ "$rc" -eq 0 ] && [ "$out" = "$(cat "$tmp/signed.lua")" ]
ok $? "sign --key=KEYFILE" "$(shown)"
run "$sb" policy check --public-key="$pub" "$tmp/signed.lua"
check 0 "check --public-key=KEY" out "signed.lua: ok, signature verified"
run "$sb" policy check --public-key= "$tmp/signed.lua"
check 2 "check --public-key=: exit 2, a key needed" err "--public-key needs a key"

# Retention cases against a file without the hooks get the engine's defaults.
printf 'local P = {}\nfunction P.route(call, agents, ctx) return {} end\nreturn P\n' >"$tmp/ronly.lua"
cat >"$tmp/ronly.cases.json" <<'J'
[{"name": "no retain hook", "record": {}, "expect": {"action": "error", "error": "ronly.lua: the policy has no 'retain' hook"}},
 {"name": "no erase hook", "record": {}, "request": {"role": "caller"}, "expect": {"action": "delete", "reason": "erasure request"}}]
J
run env -C "$tmp" "$sb" policy test ronly.lua
check 0 "no retain hook: a failure as in the engine; no erase hook: the engine's delete" out \
    "ok 2 - no erase hook"
has "$out" "#   note: the policy has no 'erase' hook"
ok $? "... and a note says so" "$(shown)"

# Mistakes in case files, each refused with the field named.
cat >"$tmp/bad.cases.json" <<'J'
[{"name": "no expect", "agents": [{"id": "a"}]},
 {"name": "dup", "agents": [{"id": "a"}, {"id": "a"}], "expect": {"action": "wait"}},
 {"name": "lost", "record": {"outcome": "lost"}, "expect": {"action": "keep"}},
 {"name": "boss", "record": {}, "request": {"role": "boss"}, "expect": {"action": "delete"}},
 {"name": "neg", "record": {"age_days": -1}, "expect": {"action": "keep"}},
 {"name": "frac", "record": {"age_days": 1.5}, "expect": {"action": "keep"}},
 {"name": "now in ms", "now": 1767261600000, "record": {}, "expect": {"action": "keep"}},
 {"name": "route now in ms", "now": 1767261600000, "agents": [{"id": "a"}], "expect": {"action": "wait"}},
 {"name": "received in ms", "record": {}, "request": {"received": 1767261600000}, "expect": {"action": "delete"}},
 {"name": "received later", "now": 1767261600, "record": {}, "request": {"received": 1767261601}, "expect": {"action": "delete"}}]
J
run "$sb" policy test "$tmp/ronly.lua" "$tmp/bad.cases.json"
check 1 "bad cases: exit 1" out "# 0 passed, 10 failed"
for pat in "case has no expect" "agents[1].id: 'a' is agents[0]'s id already" \
    "record.outcome: 'lost' is not an outcome" "request.role: 'boss' is not a role" \
    "record.age_days: expected whole days, 0 or more (got -1)" \
    "record.age_days: expected whole days, 0 or more (got 1.5)" \
    "case.now: expected Unix seconds, got 1767261600000 (milliseconds? divide by 1000)" \
    "request.received: expected Unix seconds, got 1767261600000 (milliseconds?" \
    "request.received: 1767261601 is after the case's now (1767261600)"; do
    has "$out" "$pat"
    ok $? "refused: $pat" "$(shown)"
done
# A misspelt key is named with the key it is close to, as a view's field is
# in the policy; one close to none is named alone.
printf 'local P = {}\nfunction P.route(call, agents, ctx)\n  return { ring = agents[1].id }\nend\nreturn P\n' \
    >"$tmp/near.lua"
cat >"$tmp/near.cases.json" <<'J'
[{"name": "idle", "agents": [{"id": "a", "idel_for": 30}], "expect": {"action": "ring"}},
 {"name": "prio", "agents": [{"id": "a"}], "call": {"priorty": 5}, "expect": {"action": "ring"}},
 {"name": "expect", "agents": [{"id": "a"}], "expcet": {"action": "ring"}},
 {"name": "agent", "agents": [{"id": "a"}], "expect": {"action": "ring", "agent": ["a"]}},
 {"name": "far", "agents": [{"id": "a", "colour": "red"}], "expect": {"action": "ring"}}]
J
run "$sb" policy test "$tmp/near.lua"
check 1 "misspelt case keys: exit 1" out "# 0 passed, 5 failed"
for pat in "agents[1]: unknown field 'idel_for' (did you mean 'idle_for'?)" \
    "call: unknown field 'priorty' (did you mean 'priority'?)" \
    "case: unknown field 'expcet' (did you mean 'expect'?)" \
    "expect.agent: the decision has no 'agent' (did you mean 'agents'? it has action, agents, mode, devices, timeout)" \
    "agents[1]: unknown field 'colour'"; do
    has "$out" "$pat"
    ok $? "named: $pat" "$(shown)"
done
printf '%s\n' "$out" | grep -F "unknown field 'colour'" | grep -qvF "did you mean"
ok $? "... 'colour', close to no field, without a suggestion" "$(shown)"
# A queue or a call no engine gives a policy is refused too, naming the
# field: "logged_in": 1, "paused": 3 gave a policy logged_in - paused = -2,
# and a case for a situation that cannot happen passed. queue_waited alone
# is a call offered to this queue (waited the same), as the docs' cases
# write it; both given, the one in the queue is the shorter.
cat >"$tmp/qw.lua" <<'L'
local P = {}
function P.route(call, agents, ctx)
  return { wait = math.floor(call.waited) + ctx.queue.logged_in - ctx.queue.paused }
end
return P
L
cat >"$tmp/impossible.cases.json" <<'J'
[{"name": "paused", "queue": {"logged_in": 1, "paused": 3}, "expect": {"action": "wait"}},
 {"name": "members", "queue": {"members": 1}, "agents": [{"id": "a"}, {"id": "b"}], "expect": {"action": "wait"}},
 {"name": "available", "queue": {"available": 5}, "agents": [{"id": "a"}], "expect": {"action": "wait"}},
 {"name": "position", "queue": {"waiting": 2, "position": 5}, "expect": {"action": "wait"}},
 {"name": "waiting", "queue": {"waiting": 0, "position": 0}, "expect": {"action": "wait"}},
 {"name": "longest", "call": {"queue_waited": 50}, "queue": {"longest_wait": 10}, "expect": {"action": "wait"}},
 {"name": "in queue", "call": {"waited": 5, "queue_waited": 50}, "expect": {"action": "wait"}},
 {"name": "tried", "call": {"tried": {"a": 1}}, "agents": [{"id": "a"}], "expect": {"action": "wait"}},
 {"name": "last", "call": {"last_agent": "a"}, "agents": [{"id": "a"}], "expect": {"action": "wait"}},
 {"name": "not logged in", "queue": {"logged_in": 2, "paused": 1}, "agents": [{"id": "a"}, {"id": "b"}], "expect": {"action": "wait"}}]
J
run "$sb" policy test "$tmp/qw.lua" "$tmp/impossible.cases.json"
check 1 "impossible queues and calls: exit 1" out "# 0 passed, 10 failed"
for pat in "queue.paused: 3, more than the 1 members logged in" \
    "queue.members: 1, fewer than the 2 agents given" \
    "queue.available: 5, but 1 agent is given" \
    "queue.position: expected 1..2, the call's place among the 2 calls waiting (got 5)" \
    "queue.waiting: expected 1 or more (got 0)" \
    "queue.longest_wait: 10 is less than the call's own queue_waited (50)" \
    "call.queue_waited: 50 is more than call.waited (5)" \
    "call.tried.a: given for a call with attempts 0" \
    "call.last_agent: given for a call with attempts 0" \
    "queue.logged_in - queue.paused: 1, fewer than the 2 agents given"; do
    has "$out" "$pat"
    ok $? "refused: $pat" "$(shown)"
done
cat >"$tmp/qw.cases.json" <<'J'
[{"name": "queue_waited alone: waited the same", "call": {"queue_waited": 30}, "expect": {"wait": 30}},
 {"name": "nobody free, all paused", "queue": {"logged_in": 3, "paused": 3}, "expect": {"wait": 0}},
 {"name": "both", "call": {"waited": 40, "queue_waited": 30}, "queue": {"logged_in": 3, "paused": 1}, "agents": [{"id": "a"}], "expect": {"wait": 42}}]
J
run "$sb" policy test "$tmp/qw.lua" "$tmp/qw.cases.json"
check 0 "... and possible ones pass: queue_waited alone, everyone paused" out "# 3 passed, 0 failed"

# A move or a reject without a reason of its own: the case shows the reason
# the engine sends and stores ("moved by policy", "rejected"), where it showed
# none for the move and "" for the reject, so a case could not expect what
# the gateway gets.
mkdir -p "$tmp/noreason"
cat >"$tmp/noreason/nr.lua" <<'L'
local P = {}
function P.route(call, agents, ctx)
  if call.id == "m" then return { move = "b" } end
  return { reject = "" }
end
return P
L
cat >"$tmp/noreason/nr.cases.json" <<'J'
[{"name": "a move", "call": {"id": "m"}, "expect": {"action": "move", "queue": "b", "reason": "moved by policy"}},
 {"name": "a reject", "call": {"id": "r"}, "expect": {"action": "reject", "reason": "rejected"}}]
J
run "$sb" policy test "$tmp/noreason/nr.lua"
check 0 "a move and a reject without a reason: the engine's reasons" out "# 2 passed, 0 failed"
cat >"$tmp/noreason.jsonl" <<'J'
{"account": {"id": "acme"}}
{"queue": {"id": "b", "policy": "longest-idle", "members": []}}
{"queue": {"id": "q", "policy": "nr", "members": []}}
{"type": "offer", "call": "m", "queue": "q", "caller": "+442079460001"}
{"type": "offer", "call": "r", "queue": "q", "caller": "+442079460002"}
J
cp policies/longest-idle.lua "$tmp/noreason/"
run "$sb" replay "$tmp/noreason.jsonl" --policy-dir "$tmp/noreason"
has "$out" "move m to queue b: moved by policy" && has "$out" "reject r: rejected"
ok $? "... as the engine sends them" "$(shown)"

# A failing case with only expect_store says that no decision was expected,
# where it printed "expected null", as if the decision had to be null.
printf 'local P = {}\nfunction P.route(call, agents, ctx)\n  ctx.set("k", 1)\n  return {}\nend\nreturn P\n' \
    >"$tmp/store.lua"
printf '[{"name": "store only", "expect_store": {"k": 2}}]\n' >"$tmp/store.cases.json"
run "$sb" policy test "$tmp/store.lua"
check 1 "a case with only expect_store: no 'expected null'" out \
    "#   expected (no expect: the store only, expect_store)"
! has "$out" "expected null" && has "$out" 'store: expected {"k":2}, got {"k":1}'
ok $? "... and the store's difference is shown" "$(shown)"

# A case lists at most a queue's members (10,000), and an id given twice is
# found among them however far apart (sorted, where each pair was compared:
# 45,000 agents in one upload held the daemon's loop for 4 s).
python3 - "$tmp" <<'P'
import json, sys
def agents(n):
    return [{"id": "a%d" % i} for i in range(n)]
far = agents(10000)
far[9999] = {"id": "a5"}
trio = [{"id": "b"}, {"id": "a"}, {"id": "c"}, {"id": "a"}, {"id": "a"}]
cases = [{"name": "far", "agents": far, "expect": {"action": "wait"}},
         {"name": "trio", "agents": trio, "expect": {"action": "wait"}},
         {"name": "over", "agents": agents(10001), "expect": {"action": "wait"}},
         {"name": "full", "agents": agents(10000), "expect": {"action": "ring", "agents": ["a0"]}}]
json.dump(cases, open(sys.argv[1] + "/many.cases.json", "w"))
P
printf 'local P = {}\nfunction P.route(call, agents, ctx) return {ring = {agents[1].id}} end\nreturn P\n' \
    >"$tmp/first.lua"
run "$sb" policy test "$tmp/first.lua" "$tmp/many.cases.json"
check 1 "cases with many agents: exit 1" out "# 1 passed, 3 failed"
for pat in "agents[9999].id: 'a5' is agents[5]'s id already" \
    "agents[3].id: 'a' is agents[1]'s id already" \
    "agents: 10001 given, more than a queue has (at most 10000 members)" "ok 4 - full"; do
    has "$out" "$pat"
    ok $? "many agents: $pat" "$(shown)"
done
# A reason with bytes that are not UTF-8 reaches the case as the engine sends
# it ('?' for each), where the case got a decision without its reason.
printf 'local P = {}\nfunction P.route(call, agents, ctx) return { reject = "caf\\255 \\254" } end\nreturn P\n' \
    >"$tmp/badutf.lua"
printf '[{"name": "cleaned", "expect": {"action": "reject", "reason": "caf? ?"}}]\n' \
    >"$tmp/badutf.cases.json"
run "$sb" policy test "$tmp/badutf.lua" "$tmp/badutf.cases.json"
check 0 "a reason that is not UTF-8: cleaned as the engine cleans it" out "ok 1 - cleaned"
# A reason with a number in it is compared as the engine sends and stores it,
# the number as [number].
printf 'local P = {}\nfunction P.route(call, agents, ctx) return { reject = "call back +44 20 7946 0999" } end\nreturn P\n' \
    >"$tmp/numreason.lua"
printf '[{"name": "redacted", "expect": {"action": "reject", "reason": "call back [number]"}}]\n' \
    >"$tmp/numreason.cases.json"
run "$sb" policy test "$tmp/numreason.lua" "$tmp/numreason.cases.json"
check 0 "a reason holding a number: [number], as the engine has it" out "ok 1 - redacted"
# A case without expect whose policy fails says both.
printf 'local P = {}\nfunction P.route(call, agents, ctx)\n  error("boom")\nend\nreturn P\n' \
    >"$tmp/boom.lua"
printf '[{"name": "x"}]\n' >"$tmp/boom.cases.json"
run "$sb" policy test "$tmp/boom.lua"
check 1 "a failing policy, a case without expect: the failure" out "boom.lua:3: boom"
has "$out" "and the case has no expect"
ok $? "... and the missing expect" "$(shown)"
printf '[{"name": "x",}]\n' >"$tmp/broken.cases.json"
run "$sb" policy test "$tmp/ronly.lua" "$tmp/broken.cases.json"
check 1 "a case file that is not JSON is named, with the line" err "$tmp/broken.cases.json:1: not JSON"
printf '[{"name": "x\\u0000"}]\n' >"$tmp/nul.cases.json"
run "$sb" policy test "$tmp/ronly.lua" "$tmp/nul.cases.json"
check 1 "a NUL in a case file is said in our terms, not jansson's" \
    err "$tmp/nul.cases.json:1: not JSON: strings may not contain \\u0000"
printf '{"public_key": "ab\\u0000"}\n' >"$tmp/nul.key"
run "$sb" policy sign --key "$tmp/nul.key" "$tmp/ronly.lua"
check 2 "... and in a key file" err "not JSON: strings may not contain \\u0000"

# --config: the budgets `switchboard serve --config` runs with, not the
# defaults: a top level or a route that fits the defaults and not the
# operator's smaller budgets fails check and test as a reload would.
cat >"$tmp/heavy.lua" <<'L'
local squares = {}
for i = 1, 20000 do squares[i] = i * i end
local P = {}
function P.route(call, agents, ctx)
  local s = 0
  for i = 1, 3000 do s = s + squares[i] end
  return { ring = agents[1].id }
end
return P
L
cat >"$tmp/heavy.cases.json" <<'J'
[{"name": "rings the first", "agents": [{"id": "a"}], "expect": {"action": "ring", "agents": ["a"]}}]
J
printf 'policy_instructions = 5000\n' >"$tmp/tight.conf"
printf 'policy_instructions = 50000\npolicy_memory_kib = 128\n' >"$tmp/small.conf"
printf 'policy_instructions = 50000\n' >"$tmp/mid.conf"
printf 'policy_instructions = lots\n' >"$tmp/bad.conf"
run "$sb" policy check "$tmp/heavy.lua"
check 0 "a policy within the default budgets checks ok" out "heavy.lua: ok"
run "$sb" policy check --config "$tmp/tight.conf" "$tmp/heavy.lua"
check 1 "check --config: its top level over ten times policy_instructions fails, file:line" err "heavy.lua:2: instruction budget exceeded (50,000 instructions)"
run "$sb" policy check --config="$tmp/tight.conf" "$tmp/heavy.lua"
check 1 "check --config=FILE: the same" err "heavy.lua:2: instruction budget exceeded (50,000 instructions)"
run "$sb" policy test --config="$tmp/tight.conf" "$tmp/heavy.lua"
check 1 "test --config=FILE: the same" err "instruction budget exceeded"
run "$sb" policy check --config "$tmp/small.conf" "$tmp/heavy.lua"
check 1 "check --config: over policy_memory_kib fails" err "memory"
run "$sb" policy test "$tmp/heavy.lua"
check 0 "its case passes within the default budgets" out "1 passed, 0 failed"
run "$sb" policy test --config "$tmp/mid.conf" "$tmp/heavy.lua"
check 0 "test --config: a budget the route fits in" out "1 passed, 0 failed"
run "$sb" policy test --config "$tmp/tight.conf" "$tmp/heavy.lua"
check 1 "test --config: a top level over its budget fails the run" err "instruction budget exceeded"
run "$sb" policy check --config "$tmp/bad.conf" "$tmp/heavy.lua"
check 2 "check --config with a bad value names the file and line" err "bad.conf:1"
run "$sb" policy check --config "$tmp/none.conf" "$tmp/heavy.lua"
check 2 "... and a config that cannot be read" err "none.conf"
run "$sb" policy check --config
check 2 "--config without a file is a usage error" err "usage:"

# --help and usage errors, everywhere.
for c in "--help" "-h" "policy --help" "policy -h" "policy check --help" "policy test -h" \
    "policy keygen --help" "policy sign --help" "replay --help" "simulate --help" \
    "records --help" "records erase --help" "sweep --help" "serve --help"; do
    # shellcheck disable=SC2086
    run "$sb" $c
    [ "$rc" -eq 0 ] && has "$out" "usage:"
    ok $? "switchboard $c: usage on stdout, exit 0" "$(shown)"
done
for c in "" "policy" "policy bogus" "policy check" "policy test" "policy sign x.lua" \
    "policy keygen extra" "replay" "simulate --bogus" "records" "records bogus" "sweep"; do
    # shellcheck disable=SC2086
    run "$sb" $c
    [ "$rc" -eq 2 ] && has "$err" "usage:" && [ -z "$out" ]
    ok $? "switchboard $c: usage on stderr, exit 2" "$(shown)"
done

done_testing
