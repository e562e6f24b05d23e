#!/bin/sh
# tests/cli/author.t — a policy author's mistakes in case files are refused
# with the field named, never silently taken: an agent, a call or a record no
# engine could hold (a schedule or time zone with a typo, skills that are not
# levels, a preferred device the agent lacks, counters below zero, ring
# attempts with unknown keys); an erasure's review date shows as the engine
# applies it (ignored); the annotations in policies/types list what the
# README documents; simulate's hourly lines add up to the day.
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh

cat >"$tmp/p.lua" <<'L'
local P = {}
function P.route(call, agents, ctx)
  local a = agents[1]
  if a and a.on_schedule then return { ring = a.id } end
  return { wait = 5 }
end
function P.retain(record, ctx) return { keep = true } end
function P.erase(record, request, ctx) return { anonymize = true, review_in_days = 5 } end
return P
L

# Each case file holds one mistake; the runner must refuse it (exit 1) and
# name the field. Without the check, most of these passed (the agent simply
# looked off schedule, or the bad value reached the policy as it was).
i=0
while IFS='|' read -r what case pat; do
    i=$((i + 1))
    printf '[%s]\n' "$case" >"$tmp/c$i.cases.json"
    run "$sb" policy test "$tmp/p.lua" "$tmp/c$i.cases.json"
    check 1 "refused: $what" out "$pat"
done <<'CASES'
a schedule window with a typo ("form")|{"name": "x", "agents": [{"id": "a", "schedule": [{"days": ["thu"], "form": "09:00", "to": "17:00"}]}], "expect": {"action": "wait"}}|agents[1].schedule[1]
a day that is not a day|{"name": "x", "agents": [{"id": "a", "schedule": [{"days": ["thursday"], "from": "09:00", "to": "17:00"}]}], "expect": {"action": "wait"}}|agents[1].schedule[1].days
a schedule that is not a list|{"name": "x", "agents": [{"id": "a", "schedule": "always"}], "expect": {"action": "wait"}}|agents[1].schedule
an unknown time zone|{"name": "x", "agents": [{"id": "a", "timezone": "Europe/Pariss"}], "expect": {"action": "ring"}}|agents[1].timezone: 'Europe/Pariss' is not a known IANA zone
a skill level that is a word|{"name": "x", "agents": [{"id": "a", "skills": {"fr": "high"}}], "expect": {"action": "ring"}}|agents[1].skills.fr: expected a level, an integer 0..100
skills as a list|{"name": "x", "agents": [{"id": "a", "skills": ["fr"]}], "expect": {"action": "ring"}}|agents[1].skills: expected an object of levels
preferences that are not an object|{"name": "x", "agents": [{"id": "a", "preferences": 3}], "expect": {"action": "ring"}}|agents[1].preferences: expected an object
a preferred device the agent lacks|{"name": "x", "agents": [{"id": "a", "preferences": {"device": "mobile"}}], "expect": {"action": "ring"}}|agents[1].preferences.device: 'mobile' is not one of the agent's devices
a name that is not a string|{"name": "x", "agents": [{"id": "a", "name": 5}], "expect": {"action": "ring"}}|agents[1].name: expected a string
an empty dial URI|{"name": "x", "agents": [{"id": "a", "devices": {"mobile": ""}}], "expect": {"action": "ring"}}|agents[1].devices.mobile: expected landline, mobile or softphone with a URI
idle_for below zero|{"name": "x", "agents": [{"id": "a", "idle_for": -5}], "expect": {"action": "ring"}}|agents[1].idle_for: expected 0 or more
calls_taken below zero|{"name": "x", "agents": [{"id": "a", "calls_taken": -1}], "expect": {"action": "ring"}}|agents[1].calls_taken: expected 0 or more
a weight of zero|{"name": "x", "agents": [{"id": "a", "weight": 0}], "expect": {"action": "ring"}}|agents[1].weight: expected more than 0
a priority past 100|{"name": "x", "call": {"priority": 500}, "agents": [{"id": "a"}], "expect": {"action": "ring"}}|call.priority: expected 0..100
attempts below zero|{"name": "x", "call": {"attempts": -3}, "agents": [{"id": "a"}], "expect": {"action": "ring"}}|call.attempts: expected 0 or more
waited below zero|{"name": "x", "call": {"waited": -1}, "agents": [{"id": "a"}], "expect": {"action": "ring"}}|call.waited: expected 0 or more
a ring attempt with a typo ("outcom")|{"name": "x", "record": {"attempts": [{"agent": "a", "outcom": "answered"}]}, "expect": {"action": "keep"}}|record.attempts[1]: unknown field 'outcom'
a ring attempt on no device|{"name": "x", "record": {"attempts": [{"agent": "a", "device": "fax"}]}, "expect": {"action": "keep"}}|record.attempts[1].device: expected landline, mobile or softphone
a ring attempt's outcome unknown|{"name": "x", "record": {"attempts": [{"agent": "a", "outcome": "lost"}]}, "expect": {"action": "keep"}}|record.attempts[1].outcome: 'lost' is not a ring outcome
a ring attempt that is not an object|{"name": "x", "record": {"attempts": ["a"]}, "expect": {"action": "keep"}}|record.attempts[1]: expected an object
decided_by with a typo ("polcy")|{"name": "x", "record": {"decided_by": [{"polcy": "p", "version": "v"}]}, "expect": {"action": "keep"}}|record.decided_by[1]: unknown field 'polcy'
a record's priority past 100|{"name": "x", "record": {"priority": 101}, "expect": {"action": "keep"}}|record.priority: expected 0..100
a record's wait below zero|{"name": "x", "record": {"wait": -2}, "expect": {"action": "keep"}}|record.wait: expected 0 or more
talk time on a call nobody answered|{"name": "x", "record": {"outcome": "abandoned", "talk": 30}, "expect": {"action": "keep"}}|record.talk: only an answered call has talk time (outcome 'abandoned')
an agent on a call nobody answered|{"name": "x", "record": {"outcome": "rejected", "agent": "bob"}, "expect": {"action": "keep"}}|record.agent: only an answered call has an agent (outcome 'rejected')
a reason on a call that was not turned away|{"name": "x", "record": {"outcome": "abandoned", "reason": "queue full"}, "expect": {"action": "keep"}}|record.reason: only a rejected call has a reason (outcome 'abandoned')
an empty reason|{"name": "x", "record": {"outcome": "rejected", "reason": ""}, "expect": {"action": "keep"}}|record.reason: expected 1 to 256 bytes
an agent ending an abandoned call|{"name": "x", "record": {"outcome": "abandoned", "ended_by": "agent"}, "expect": {"action": "keep"}}|record.ended_by: 'agent' cannot end a call whose outcome is 'abandoned'
a party that is none|{"name": "x", "record": {"ended_by": "robot"}, "expect": {"action": "keep"}}|record.ended_by: 'robot' cannot end a call whose outcome is 'answered'
queues that are not a list|{"name": "x", "queues": "backup", "expect": {"action": "wait"}}|queues: expected an array of queue ids
a queue id that is not one|{"name": "x", "queues": ["backup", 3], "expect": {"action": "wait"}}|queues[2]: expected a queue id
an outcome no record has|{"name": "x", "record": {"outcome": "lost"}, "expect": {"action": "keep"}}|record.outcome: 'lost' is not an outcome (answered, abandoned, rejected or failed
CASES

# Good cases still pass: a full attempt and decided_by, a valid schedule and
# zone, skills, a preferred device the agent has.
cat >"$tmp/good.cases.json" <<'J'
[{"name": "on schedule in Paris", "agents": [{"id": "a", "timezone": "Europe/Paris", "skills": {"fr": 3},
   "devices": {"mobile": "tel:+447700900001", "landline": "sip:desk@pbx.example"},
   "preferences": {"device": "mobile", "note": "free-form"},
   "schedule": [{"days": ["thu"], "from": "09:00", "to": "17:00", "devices": ["mobile"]}]}],
  "call": {"priority": 100, "attempts": 0, "waited": 0},
  "expect": {"action": "ring", "agents": ["a"], "devices": ["mobile"]}},
 {"name": "a full record", "record": {"priority": 100, "wait": 3,
   "attempts": [{"agent": "a", "device": "mobile", "outcome": "cancelled", "start": 1767261000, "duration": 4}],
   "decided_by": [{"policy": "p", "version": "v1"}]},
  "expect": {"action": "keep"}},
 {"name": "a call turned away, with its reason", "record": {"outcome": "rejected", "reason": "queue full"},
  "expect": {"action": "keep"}},
 {"name": "a call the system ended", "record": {"outcome": "failed", "ended_by": "system"},
  "expect": {"action": "keep"}},
 {"name": "timezone null: UTC, as the engine takes it", "now": 1767261600,
  "agents": [{"id": "a", "timezone": null,
   "schedule": [{"days": ["thu"], "from": "10:00", "to": "11:00"}]}],
  "expect": {"action": "ring", "agents": ["a"]}}]
J
run "$sb" policy test "$tmp/p.lua" "$tmp/good.cases.json"
check 0 "valid agents, calls and records still pass" out "# 5 passed, 0 failed"

# "queues" lists the account's queues: a move to another is an invalid
# decision, as the engine makes it (a typo in a move passed every case and
# failed at its first call); without the list any queue is taken.
cat >"$tmp/mv.lua" <<'L'
local P = {}
function P.route(call, agents, ctx) return { move = call.attrs.to } end
return P
L
cat >"$tmp/mv.cases.json" <<'J'
[{"name": "a typo", "queues": ["overflow"], "call": {"attrs": {"to": "overfolw"}},
  "expect": {"action": "error"}},
 {"name": "a queue listed", "queues": ["overflow"], "call": {"attrs": {"to": "overflow"}},
  "expect": {"action": "move", "queue": "overflow"}},
 {"name": "its own queue", "queues": ["overflow"], "call": {"attrs": {"to": "support"}},
  "expect": {"action": "error"}},
 {"name": "no list: any queue", "call": {"attrs": {"to": "overfolw"}},
  "expect": {"action": "move", "queue": "overfolw"}}]
J
run "$sb" policy test "$tmp/mv.lua" "$tmp/mv.cases.json"
check 0 "queues: a move to a queue not listed fails, one listed moves" out "# 4 passed, 0 failed"
printf '[{"name": "t", "queues": ["overflow"], "call": {"attrs": {"to": "overfolw"}}, "expect": {"action": "move"}}]' \
    >"$tmp/mv1.cases.json"
run "$sb" policy test "$tmp/mv.lua" "$tmp/mv1.cases.json"
check 1 "... the failing case names the queue" out "mv.lua:2: route returned invalid decision: move: no queue 'overfolw' in this account"

# erase: a review date is ignored by the engine (the record's own schedule
# stands), so the runner shows none, with a note.
cat >"$tmp/erase.cases.json" <<'J'
[{"name": "erase anonymizes", "record": {}, "request": {"role": "caller"},
  "expect": {"action": "anonymize", "review_in_days": null}}]
J
run "$sb" policy test "$tmp/p.lua" "$tmp/erase.cases.json"
check 0 "erase: a review date it gives shows as the engine applies it (none)" out "ok 1 - erase anonymizes"
has "$out" "#   note: erase's review_in_days (5) is ignored"
ok $? "... and a note says it was ignored" "$(shown)"

# A policy without cases: one message saying where to write them, not also
# the system's "No such file or directory" for the file it looked for.
printf 'local P = {}\nfunction P.route(call, agents, ctx) return {} end\nreturn P\n' >"$tmp/lone.lua"
run "$sb" policy test "$tmp/lone.lua"
[ "$rc" -eq 2 ] && has "$err" "has no cases: write them in" && ! has "$err" "No such file"
ok $? "policy test without cases: the hint alone" "$(shown)"

# An expect key the decision does not have (a typo of "agents") says which
# keys it has, and the one it is close to.
printf '[{"name": "typo", "agents": [{"id": "a"}], "expect": {"action": "ring", "agent": "a"}}]\n' >"$tmp/typo.json"
run "$sb" policy test "$tmp/p.lua" "$tmp/typo.json"
check 1 "an expect key the decision lacks: its keys are listed" out \
    "expect.agent: the decision has no 'agent' (did you mean 'agents'? it has action, agents, mode, devices, timeout)"

# A cases file that tests nothing, or is not a list, is said so, naming the
# file given (not the policy's default cases file).
printf '[]\n' >"$tmp/none.json"
run "$sb" policy test "$tmp/p.lua" "$tmp/none.json"
check 1 "a cases file with no case fails, saying so" err "$tmp/none.json: no cases in it"
printf '{"name": "x", "expect": {"action": "wait"}}\n' >"$tmp/obj.json"
run "$sb" policy test "$tmp/p.lua" "$tmp/obj.json"
check 1 "a cases file that is an object: named as given" err "$tmp/obj.json: expected a JSON array of cases"

# replay: an uploaded policy's errors say NAME.lua:LINE (the engine names a
# policy's chunk after the policy); the upload's line says which file that is.
printf 'local P = {}\nfunction P.route(call, agents, ctx)\n  if #agents > 0\n    return {}\n  end\nend\nreturn P\n' \
    >"$tmp/syntax.lua"
printf '{"account": {"id": "acme"}}\n{"policy": "x", "file": "%s"}\n' "$tmp/syntax.lua" >"$tmp/up.jsonl"
run "$sb" replay "$tmp/up.jsonl" --policy-dir policies
check 1 "replay: an upload names its file, so x.lua:4 can be found" out \
    "policy x (from $tmp/syntax.lua) -> error x.lua:4: 'then' expected"

# The annotations list every field the README documents, and no other.
types=policies/types/switchboard.lua
fields_of() { # CLASS: the ---@field names of that class in the types file
    awk -v c="$1" '/^---@class /{on = ($2 == c)} on && /^---@field /{print $2}' "$types" | sort
}
readme_fields() { # HEADING: the first-column names of the table after it
    awk -v h="$1" -F'|' 'index($0, h) == 1 {on = 1; next} on && /^\| *`/ {print $2} on && /^$/ && seen {exit} on && /^\|/ {seen = 1}' \
        policies/README.md | tr -d '`,' | tr ' ' '\n' | grep -v '^$' | sort
}
# shellcheck disable=SC2016 # the backquotes are the README's, not a command
for pair in 'Call|### `call`' 'AgentView|### `agents`' 'Record|### `record`'; do
    cls=${pair%%|*} head=${pair#*|}
    a=$(fields_of "$cls") b=$(readme_fields "$head")
    [ -n "$a" ] && [ "$a" = "$b" ]
    ok $? "types: $cls has the fields README's '$head' table lists" \
        "$(printf 'types:\n%s\nREADME:\n%s' "$a" "$b")"
done
grep -q '^---@field wait integer? .*0\.\.3600' "$types"
ok $? "types: Decision.wait is 0..3600, as README says (0 sets no timer)" "$(grep 'field wait' "$types")"
grep -q '^---@field agent string|AgentView' "$types" &&
    grep -q '^---@field ring (string|AgentView|(string|AgentView|RingTarget)\[\])?' "$types"
ok $? "types: ring lists, ring targets and pauses take agent views, as the engine does" \
    "$(grep -E 'field (agent|ring)' "$types")"

# simulate: the hourly lines are each hour's own figures, adding up to the day.
run "$sb" simulate --calls 300 --seed 3 --policy-dir policies
sum=$(printf '%s\n' "$out" | awk '/^[0-9][0-9]:00-[0-9][0-9]:00 / {s += $2} END {print s + 0}')
[ "$rc" -eq 0 ] && [ "$sum" -eq 300 ]
ok $? "simulate: the hourly lines add up to the calls offered (got $sum)" "$(shown)"

done_testing
