#!/bin/sh
# tests/cli/replay.t — `switchboard replay`: a policy directory that does not
# load stops it, the default directory, every bad line's own message, offers
# from withheld numbers, the clock only moving forward, the summary and exit
# status, the example file, --json output (JSON lines throughout).
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh

# A directory with one broken file: nothing is replayed, file:line named.
mkdir -p "$tmp/pol/bad"
printf 'local P = {}\nfunction P.route() return {wait = 1} end\n\n\nreturn P P\n' \
    >"$tmp/pol/bad/syntax.lua"
cat >"$tmp/mine.jsonl" <<'J'
{"account": {"id": "acme"}}
{"agent": {"id": "alice", "devices": {"softphone": "sip:a@x"}, "status": "available"}}
{"queue": {"id": "support", "policy": "longest-idle", "members": [{"agent": "alice"}]}}
{"type": "offer", "call": "c1", "queue": "support", "caller": "+442079460001"}
J
run "$sb" replay "$tmp/mine.jsonl" --policy-dir "$tmp/pol"
check 1 "a policy directory with a syntax error: exit 1" err "$tmp/pol/bad/syntax.lua:5:"
[ -z "$out" ]
ok $? "... before replaying any line" "$(shown)"

run "$sb" replay "$tmp/mine.jsonl" --policy-dir "$tmp/nowhere"
check 2 "a --policy-dir that does not exist: exit 2" err "--policy-dir $tmp/nowhere"

(cd "$tmp" && "$sb" replay mine.jsonl >.out 2>.err)
rc=$? out=$(cat "$tmp/.out") err=$(cat "$tmp/.err")
check 1 "no ./policies: a warning naming the directory and the flag" err \
    "no directory 'policies' here (the default --policy-dir)"

run "$sb" replay "$tmp/mine.jsonl" --policy-dir policies
check 0 "with the stock policies it rings alice, exit 0" out "ring alice for c1"
has "$err" "replay: 4 lines, 0 errors, 0 policy failures"
ok $? "... and a summary on stderr" "$(shown)"

# Calls from withheld numbers: an offer without a caller, or with null or
# "", rings; "anonymous" is refused, saying to leave it out.
cat >"$tmp/withheld.jsonl" <<'J'
{"account": {"id": "acme"}}
{"agent": {"id": "alice", "devices": {"softphone": "sip:a@x"}, "status": "available"}}
{"queue": {"id": "support", "policy": "longest-idle", "members": [{"agent": "alice"}]}}
{"type": "offer", "call": "w1", "queue": "support"}
{"type": "abandon", "call": "w1"}
{"type": "offer", "call": "w2", "queue": "support", "caller": null, "called": "+442079469001"}
{"type": "abandon", "call": "w2"}
{"type": "offer", "call": "w3", "queue": "support", "caller": ""}
{"type": "offer", "call": "w4", "queue": "support", "caller": "anonymous"}
J
run "$sb" replay "$tmp/withheld.jsonl" --policy-dir policies
check 1 "withheld callers: exit 1, for the one line refused" err "replay: 9 lines, 1 error,"
for c in w1 w2 w3; do
    has "$out" "ring alice for $c"
    ok $? "an offer without a caller number rings alice for $c" "$(shown)"
done
has "$out" "offer w4 -> error" && has "$out" "leave it out for a call from a withheld number"
ok $? "caller 'anonymous' is refused, saying to leave it out" "$(shown)"

# Bad lines: each error says what is wrong with that line.
cat >"$tmp/bad.jsonl" <<'J'
{"account": {"id": "acme"}}
{"type": "offer", "call": 10, "queue": "support", "caller": "+442079460001"}
{"type": "offer", "call": "c1", "queue": "nope", "caller": "bad"}
{"policy": "x", "file": "/nonexistent.lua"}
{"advance": -3600}
{"advance": "ten"}
[1, 2, 3]
{"foo": 1}
{"at": "2026-01-05T07:00:00Z"}
{"at": "yesterday"}
{"agent": "alice"}
{not json
J
run "$sb" replay "$tmp/bad.jsonl" --policy-dir policies
check 1 "bad lines: exit 1" err "replay: 12 lines, 11 errors"
has "$err" "bad.jsonl:2: 'call' must be a string (the call id), not a number"
ok $? "'call': 10 is refused, naming the field" "$(shown)"
has "$out" "offer c1 -> error" && ! has "$out" "(null)"
ok $? "an event the engine refuses carries the engine's message" "$(shown)"
has "$err" "bad.jsonl:4: policy 'x': cannot read /nonexistent.lua: No such file" &&
    ! has "$err" "E.164"
ok $? "a policy file that cannot be read: its own message, not a stale one" "$(shown)"
has "$err" "bad.jsonl:5: 'advance' is -3600"
ok $? "a negative advance is refused" "$(shown)"
has "$err" "bad.jsonl:6: 'advance' must be a number of seconds (0 or more), not a string"
ok $? "'advance': \"ten\" names 'advance'" "$(shown)"
has "$err" "bad.jsonl:7: a line must be a JSON object, not an array"
ok $? "an array: says so" "$(shown)"
has "$err" "bad.jsonl:8: unknown line (keys: 'foo')"
ok $? "an unknown line: a clear error" "$(shown)"
! printf '%s\n' "$out" | grep -qx '[0-9:]*'
ok $? "... and no bare timestamp on stdout" "$(shown)"
has "$err" "bad.jsonl:9: 'at' 2026-01-05T07:00:00Z is before the replay clock, 2026-01-05T08:00:00Z"
ok $? "'at' before the clock is refused" "$(shown)"
! has "$out" "clock -> 07:00:00"
ok $? "... and the clock stays" "$(shown)"
has "$err" "bad.jsonl:10: 'at' must be Unix seconds"
ok $? "a malformed 'at'" "$(shown)"
printf '{"account": {"id": "acme"}}\n{"at": "2030-02-01"}\n' >"$tmp/date.jsonl"
run "$sb" replay "$tmp/date.jsonl" --policy-dir "$ROOT/policies"
check 0 "'at' takes a date too, as records --from does" out "clock -> 2030-02-01 00:00:00"
printf '{"account": {"id": "acme"}}\n{"advance": 345600}\n{"advance": 60}\n' >"$tmp/days.jsonl"
run "$sb" replay "$tmp/days.jsonl" --policy-dir "$ROOT/policies"
check 0 "a clock moved to another day shows that day's date" out "clock -> 2026-01-09 08:00:00"
has "$out" "08:00:00 clock -> 08:01:00"
ok $? "... and one moved within a day shows the time alone" "$(shown)"
run "$sb" replay "$tmp/bad.jsonl" --policy-dir "$ROOT/policies"
has "$err" "bad.jsonl:11: 'agent' must be an object"
ok $? "an agent that is not an object" "$(shown)"
has "$err" "bad.jsonl:12: not JSON:"
ok $? "a line that is not JSON" "$(shown)"
printf '{"account": {"id": "a\\u0000"}}\n' >"$tmp/nul.jsonl"
run "$sb" replay "$tmp/nul.jsonl" --policy-dir "$ROOT/policies"
has "$err" "nul.jsonl:1: not JSON: strings may not contain \\u0000 (column"
ok $? "a NUL is said in our terms, not jansson's" "$(shown)"

# A document the engine refuses: the text output names the field, as
# --json's "field" does, where it printed the message alone ("expected HH:MM
# (00:00..24:00)", not saying which window of which list was wrong); a
# message that names its field already is printed as it is.
cat >"$tmp/field.jsonl" <<'J'
{"account": {"id": "acme"}}
{"agent": {"id": "ana", "devices": {"softphone": "sip:a@x"}, "schedule": [{"days": ["mon"], "from": "09:00", "to": "17:00"}, {"days": ["tue"], "from": "9", "to": "17:00"}]}}
{"agent": {"id": "ben", "devices": {"softphone": "sip:b@x"}, "skills": {"en": 500}}}
{"type": "offer", "call": "c1", "queue": "nope", "caller": "+442079460001"}
J
run "$sb" replay "$tmp/field.jsonl" --policy-dir policies
check 1 "refused documents: exit 1" err "replay: 4 lines, 3 errors"
has "$out" "agent -> error schedule[1].from: expected HH:MM (00:00..24:00)"
ok $? "... a bad window: its field named" "$(shown)"
has "$out" "agent -> error 'skills.en' must be between 0 and 100"
ok $? "... a skill out of range: its field named, whole, in the message" "$(shown)"
has "$out" "offer c1 -> error no such queue 'nope'" && ! has "$out" "error queue:"
ok $? "... a message naming its field already: as it is" "$(shown)"

# A clock line into another day shows the date whole, a five-digit year too.
printf '{"account": {"id": "a"}}\n{"at": "9999-12-31T23:59:00Z"}\n{"advance": 120}\n' >"$tmp/y10k.jsonl"
run "$sb" replay "$tmp/y10k.jsonl" --policy-dir policies
check 0 "a clock move into the year 10000 shows its date whole" out "clock -> 10000-01-01 00:01:00"

# A policy that fails: the call falls back, the summary says so, exit 1.
printf 'local P = {}\nfunction P.route(call, agents, ctx)\n  error("boom")\nend\nreturn P\n' \
    >"$tmp/failing.lua"
cat >"$tmp/fail.jsonl" <<J
{"account": {"id": "acme"}}
{"agent": {"id": "alice", "devices": {"softphone": "sip:a@x"}, "status": "available"}}
{"policy": "failing", "file": "$tmp/failing.lua"}
{"queue": {"id": "support", "policy": "failing", "members": [{"agent": "alice"}]}}
{"type": "offer", "call": "c1", "queue": "support", "caller": "+442079460001"}
J
run "$sb" replay "$tmp/fail.jsonl" --policy-dir policies
check 1 "a policy failure: exit 1" err "0 errors, 1 policy failure (1 routing decision fell back)"
has "$err" "failing.lua:3: boom"
ok $? "... with the failure's file:line" "$(shown)"
has "$out" "ring alice for c1 on softphone (sip:a@x) for 20s (the fallback: the policy failed)"
ok $? "... and the ring it printed says it was the fallback's" "$(shown)"

# A line naming an account that does not exist fails alone: the lines after
# it go on with the account before (they failed too, naming it).
cat >"$tmp/acc.jsonl" <<J
{"account": {"id": "acme"}}
{"agent": {"id": "a", "devices": {"softphone": "sip:a@x"}, "status": "available"}}
{"queue": {"id": "q", "policy": "longest-idle", "members": [{"agent": "a"}]}}
{"type": "offer", "call": "c1", "queue": "q", "caller": "+442079460001", "account": "other"}
{"type": "offer", "call": "c2", "queue": "q", "caller": "+442079460001"}
J
run "$sb" replay "$tmp/acc.jsonl" --policy-dir policies
check 1 "an event for no such account: one error" err "1 error, 0 policy failures"
has "$out" "offer c1 -> error no such account 'other'" && has "$out" "ring a for c2"
ok $? "... and the next line goes to acme" "$(shown)"

# A retention hook that fails: exit 1 as for a routing failure, so a run
# that checks a retention policy does not pass with it failing.
printf 'local P = {}\nfunction P.retain(record, ctx)\n  error("retention boom")\nend\nreturn P\n' \
    >"$tmp/rfail.lua"
cat >"$tmp/rfail.jsonl" <<J
{"account": {"id": "acme"}}
{"policy": "rfail", "file": "$tmp/rfail.lua"}
{"account": {"id": "acme", "retention": "rfail"}}
{"agent": {"id": "a", "devices": {"softphone": "sip:a@x"}, "status": "available"}}
{"queue": {"id": "q", "policy": "longest-idle", "members": [{"agent": "a"}]}}
{"type": "offer", "call": "c1", "queue": "q", "caller": "+442079460001"}
{"type": "abandon", "call": "c1"}
J
run "$sb" replay "$tmp/rfail.jsonl" --policy-dir policies
check 1 "a retention hook failure: exit 1" err "0 errors, 1 policy failure (0 routing decisions fell back)"
has "$err" "rfail.lua:3: retention boom"
ok $? "... with the failure's file:line" "$(shown)"

# Two queues whose policies move a call to each other: the ninth move is an
# invalid decision (the fallback rings, the failure counts toward quarantine),
# where the call was rejected as "too many queue moves" with no failure said.
printf 'local P = {}\nfunction P.route(call, agents, ctx)\n  if call.queue == "qa" then return { move = "qb" } end\n  return { move = "qa" }\nend\nreturn P\n' \
    >"$tmp/pingpong.lua"
cat >"$tmp/pingpong.jsonl" <<J
{"account": {"id": "acme"}}
{"policy": "pingpong", "file": "$tmp/pingpong.lua"}
{"agent": {"id": "alice", "devices": {"softphone": "sip:a@x"}, "status": "available"}}
{"queue": {"id": "qa", "policy": "pingpong", "members": [{"agent": "alice"}]}}
{"queue": {"id": "qb", "policy": "pingpong", "members": [{"agent": "alice"}]}}
{"type": "offer", "call": "c1", "queue": "qa", "caller": "+442079460001"}
J
run "$sb" replay "$tmp/pingpong.jsonl" --policy-dir policies
check 1 "policies moving a call back and forth: a policy failure" err \
    "0 errors, 1 policy failure (1 routing decision fell back)"
has "$err" "pingpong.lua:2: route returned invalid decision: move: the call has moved 8 times"
ok $? "... saying why, with file:line" "$(shown)"
has "$out" "ring alice for c1" && ! has "$out" "too many queue moves"
ok $? "... and the fallback rings alice" "$(shown)"

# ctx.random draws the same numbers in a replay as in a scenario case with
# the engine's seed (replay's is 0), the same call id and attempt, as
# policies/README.md promises: the engine mixed the call id and attempt into
# the seed before the policy host mixed them in again, so no case could
# reproduce a replayed draw.
mkdir -p "$tmp/rnd"
cat >"$tmp/rnd/draw.lua" <<'L'
local P = {}
function P.route(call, agents, ctx)
  if call.attempts == 0 and agents[1] then return { ring = agents[1] } end
  return { reject = ("draw %d"):format(ctx.random(1, 999999)) }
end
return P
L
cat >"$tmp/rnd.jsonl" <<J
{"account": {"id": "acme"}}
{"agent": {"id": "a", "devices": {"softphone": "sip:a@x"}, "status": "available"}}
{"queue": {"id": "q", "policy": "draw", "members": []}}
{"type": "offer", "call": "r1", "queue": "q", "caller": "+442079460001"}
{"type": "offer", "call": "r2", "queue": "q", "caller": "+442079460002"}
{"queue": {"id": "q", "policy": "draw", "members": [{"agent": "a"}]}}
{"type": "offer", "call": "r3", "queue": "q", "caller": "+442079460003"}
{"type": "ring_result", "call": "r3", "agent": "a", "outcome": "no_answer"}
J
run "$sb" replay "$tmp/rnd.jsonl" --policy-dir "$tmp/rnd"
replayed=$(printf '%s\n' "$out" | sed -n 's/^ *reject \(r[0-9]\): draw \([0-9]*\)$/\1 \2/p')
[ "$rc" -eq 0 ] && [ "$(printf '%s\n' "$replayed" | wc -l)" -eq 3 ]
ok $? "a policy drawing with ctx.random replays (three draws)" "$(shown)"
printf '%s\n' "$replayed" | awk 'BEGIN { printf "[" }
    { printf "%s{\"name\": \"%s\", \"seed\": 0, \"call\": {\"id\": \"%s\", \"attempts\": %d%s}, \"agents\": [%s], \"expect\": {\"action\": \"reject\", \"reason\": \"draw %s\"}}",
          (NR > 1 ? ", " : ""), $1, $1, ($1 == "r3"), ($1 == "r3" ? ", \"tried\": {\"a\": 1}" : ""),
          ($1 == "r3" ? "{\"id\": \"a\"}" : ""), $2 }
    END { print "]" }' >"$tmp/rnd/draw.cases.json"
run "$sb" policy test "$tmp/rnd/draw.lua"
check 0 "... and scenario cases with the engine's seed, call id and attempt draw the same" \
    out "# 3 passed, 0 failed"

# A decision that keeps a call waiting after a ring nobody answered, or when
# its wait ran out, makes no action: the text output showed nothing under the
# ring_result, and no "timers" at the wake-ups, so the call seemed gone. It
# is printed from the call's trace now; the offer's own "waits in" is not
# printed twice, nor a wait the same as the decision before it (a policy
# polling every few seconds), and a call that ended is not looked at again.
mkdir -p "$tmp/waits"
cat >"$tmp/waits/w.lua" <<'L'
local P = {}
function P.route(call, agents, ctx)
  if call.id == "c1" and call.attempts == 0 and agents[1] then return { ring = agents[1] } end
  return { wait = call.waited < 5 and 7 or 3 }
end
return P
L
cat >"$tmp/waits.jsonl" <<J
{"account": {"id": "acme"}}
{"agent": {"id": "a", "devices": {"softphone": "sip:a@x"}, "status": "available"}}
{"queue": {"id": "q", "policy": "w", "ring_timeout": 10, "members": [{"agent": "a"}]}}
{"type": "offer", "call": "c1", "queue": "q", "caller": "+442079460001"}
{"advance": 2}
{"type": "ring_result", "call": "c1", "agent": "a", "outcome": "no_answer"}
{"type": "offer", "call": "c2", "queue": "q", "caller": "+442079460002"}
{"type": "abandon", "call": "c2"}
{"advance": 11}
J
run "$sb" replay "$tmp/waits.jsonl" --policy-dir "$tmp/waits"
check 0 "waits: the replay runs" err "0 errors, 0 policy failures"
printf '%s\n' "$out" | grep -A1 '^08:00:02 ring_result c1$' | grep -qx '    c1 waits in q: wait 7 (policy w)'
ok $? "... a wait after an unanswered ring is shown under its line" "$(shown)"
printf '%s\n' "$out" | grep -A1 '^08:00:09 timers$' | grep -qx '    c1 waits in q: wait 3 (policy w)'
ok $? "... and one at a wake-up, under its timers" "$(shown)"
! has "$out" "08:00:12 timers"
ok $? "... but not the same wait again at the next wake-up" "$(shown)"
[ "$(printf '%s\n' "$out" | grep -c 'c2 waits in q')" -eq 1 ]
ok $? "... an offer's wait is said once" "$(shown)"

run "$sb" replay examples/replay/first-calls.jsonl
check 0 "examples/replay/first-calls.jsonl runs cleanly" err "0 errors, 0 policy failures"
has "$out" "ring alice for c4" && ! has "$out" "error"
ok $? "... the priority call c4 goes ahead of c3" "$(shown)"

# --json: every line of the output is one JSON object, also the clock's
# moves and the actions timers fire (a "result" as an event's), and a line
# the engine refuses (an "error"); stderr keeps the summary.
{ cat examples/replay/first-calls.jsonl
  echo '{"type": "offer", "call": "c9", "queue": "nowhere", "caller": "+442079460009"}'; } \
    >"$tmp/json.jsonl"
run "$sb" replay "$tmp/json.jsonl" --json
check 1 "--json with a refused line: exit 1" err "1 error,"
bad=$(printf '%s\n' "$out" | while IFS= read -r l; do
    printf '%s\n' "$l" | jq -e 'type == "object"' >/dev/null 2>&1 || printf '%s\n' "$l"; done)
[ -n "$out" ] && [ -z "$bad" ]
ok $? "--json: every line of the output is a JSON object" "not JSON:
$bad"
timers=$(printf '%s\n' "$out" | jq -c 'select(.what == "timers")')
[ "$(printf '%s\n' "$timers" | jq -r '[.time, (.result.actions | map(.type) | join(","))] | join(" ")')" = \
"2026-01-05T09:01:24Z agent,ring
2026-01-05T09:02:15Z agent
2026-01-05T09:02:35Z agent" ]
ok $? "... timers as objects: the time they fired and their actions, as an event's result" \
    "$timers"
# one JQ-FILTER: the one line of the output it selects passes it
one() { printf '%s\n' "$out" | jq -se "map(select($1)) | length == 1 and (.[0] | $2)" >/dev/null; }
one '.what == "offer" and .call == "c1"' \
    '.line == 14 and .t_ms == 1767603600000 and .result.actions[0].type == "ring"'
ok $? "... an event: its line, time, call and result" "$(shown)"
one '.what == "clock" and .line == 13' '.to == "2026-01-05T09:00:00Z" and .to_ms == 1767603600000'
ok $? "... a clock line: where the clock moves to" "$(shown)"
one '.call == "c9"' '.error.code == "SB_ENOTFOUND" and .error.field == "queue" and
    (has("result") | not)'
ok $? "... a refused line: the engine's error, no result" "$(shown)"

run "$sb" replay --help
check 0 "replay --help: usage on stdout, exit 0" out "usage: switchboard replay FILE"
run "$sb" replay
check 2 "replay without FILE: usage on stderr, exit 2" err "usage: switchboard replay FILE"
run "$sb" replay "$tmp/mine.jsonl" --bogus
check 2 "an unknown flag: exit 2" err "unknown flag '--bogus'"

done_testing
