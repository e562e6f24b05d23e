#!/bin/sh
# tests/cli/policy_author.t — a routing policy's author with only the docs
# and the command: every example policy in policies/README.md and
# policies/MIGRATING.md and the switchboard-policy(7) synopsis passes `policy
# check`, and a worked example passes the cases printed under it;
# MIGRATING.md's worked migration replays as the page shows; the mistakes
# authors make are caught where they can be — a field name a view does not
# have by `policy check` (file:line, before deployment), a hook table with
# none of the hooks (its keys named), a bad argument to a library function, a
# typo in a decision's field, two decisions returned, a hook assigning a global
# and a move to the call's own queue as failures of the case with file:line —
# and never pass.
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh

# The fenced blocks of a page: <P><N>.lua for each ```lua block that is a
# whole policy (ends with `return P`), <P><N>.cases.json for a ```json block
# of cases that follows one under the same heading.
blocks() { # blocks PAGE P
    awk -v dir="$tmp" -v pre="$2" '
        /^## / { last = "" }
        /^```lua$/ { n++; f = dir "/" pre n ".lua"; kind = "lua"; body = ""; next }
        /^```json$/ { kind = "json"; body = ""; next }
        /^```$/ && kind != "" {
            if (kind == "lua" && body ~ /return P\n$/) { printf "%s", body > f; close(f); last = n }
            if (kind == "json" && last != "" && body ~ /"expect"/) {
                c = dir "/" pre last ".cases.json"; printf "%s", body > c; close(c); last = ""
            }
            kind = ""; next
        }
        kind != "" { body = body $0 "\n" }
    ' "$1"
}
blocks policies/README.md ex
blocks policies/MIGRATING.md mig

# Every example policy of a page passes `policy check`, and every one with
# cases passes them: at least MIN_LUA policies and MIN_CASES with cases.
examples() { # examples PAGE P MIN_LUA MIN_CASES
    nlua=0
    for f in "$tmp/$2"[0-9]*.lua; do
        [ -f "$f" ] || continue
        nlua=$((nlua + 1))
        run "$sb" policy check "$f"
        check 0 "$1 example $(basename "$f") passes policy check" out ": ok"
    done
    [ "$nlua" -ge "$3" ]
    ok $? "$1's example policies were found ($nlua)"
    ncases=0
    for c in "$tmp/$2"[0-9]*.cases.json; do
        [ -f "$c" ] || continue
        ncases=$((ncases + 1))
        run "$sb" policy test "${c%.cases.json}.lua" "$c"
        check 0 "$1 example $(basename "$c") passes" out "0 failed"
    done
    [ "$ncases" -ge "$4" ]
    ok $? "$1's worked examples with cases were found ($ncases)"
}
examples policies/README.md ex 5 3
examples policies/MIGRATING.md mig 2 2

# MIGRATING.md's worked migration: examples/replay/migrating.jsonl replays
# cleanly, and the page shows its calls and the output as they are.
# fenced PAGE FIRST: the fenced block of PAGE whose first line is FIRST.
fenced() {
    awk -v want="$2" '
        !inside && /^```/ { inside = 1; first = 1; keep = 0; next }
        inside && /^```$/ { if (keep) exit; inside = 0; next }
        inside { if (first && $0 == want) keep = 1; first = 0; if (keep) print }
    ' "$1"
}
from() { awk -v want="$1" '$0 == want { p = 1 } p'; } # from LINE: stdin from LINE on
run "$sb" replay examples/replay/migrating.jsonl
check 0 "examples/replay/migrating.jsonl replays cleanly" err "0 errors, 0 policy failures"
printf '%s\n' "$out" | from "09:00:00 offer c1" >"$tmp/mig.out"
fenced policies/MIGRATING.md "09:00:00 offer c1" >"$tmp/mig.shown"
[ -s "$tmp/mig.out" ] && cmp -s "$tmp/mig.out" "$tmp/mig.shown"
ok $? "MIGRATING.md shows the replay's output as it is" "$(diff "$tmp/mig.shown" "$tmp/mig.out")"
at='{"at": "2026-01-05T09:00:00Z"}'
from "$at" <examples/replay/migrating.jsonl >"$tmp/mig.calls"
fenced policies/MIGRATING.md "$at" >"$tmp/mig.calls.shown"
[ -s "$tmp/mig.calls" ] && cmp -s "$tmp/mig.calls" "$tmp/mig.calls.shown"
ok $? "MIGRATING.md shows the replay file's calls as they are" \
    "$(diff "$tmp/mig.calls.shown" "$tmp/mig.calls")"

# The case format's example in "Testing a policy" (a case with every key) is
# one the runner takes, and longest-idle decides it as it expects.
awk '/^## Testing a policy/ { f = 1 } f && /^```json$/ { p = 1; next } p && /^```$/ { exit } p' \
    policies/README.md >"$tmp/format.cases.json"
run "$sb" policy test policies/longest-idle.lua "$tmp/format.cases.json"
check 0 "README's example case passes against longest-idle" out "# 1 passed, 0 failed"

# An agent's no_answers as the policy docs say it: a busy or rejected ring
# is not counted (missed_for sees it), a ring that ran out unanswered is; the
# README's row said "consecutive rings not answered", which a busy ring is.
mkdir -p "$tmp/na"
cat >"$tmp/na/na.lua" <<'L'
local P = {}
function P.route(call, agents, ctx)
  local a = agents[1]
  if a then ctx.log("seen", a.no_answers, a.missed_for ~= nil) end
  if a and call.attempts < 3 then return { ring = a } end
  return {}
end
return P
L
cat >"$tmp/na.jsonl" <<'J'
{"account": {"id": "acme"}}
{"agent": {"id": "ana", "devices": {"softphone": "sip:a@x"}, "status": "available"}}
{"queue": {"id": "q", "policy": "na", "ring_timeout": 10, "members": [{"agent": "ana"}]}}
{"type": "offer", "call": "c1", "queue": "q", "caller": "+442079460001"}
{"type": "ring_result", "call": "c1", "agent": "ana", "outcome": "busy"}
{"type": "ring_result", "call": "c1", "agent": "ana", "outcome": "rejected"}
{"type": "ring_result", "call": "c1", "agent": "ana", "outcome": "no_answer"}
J
run "$sb" replay "$tmp/na.jsonl" --policy-dir "$tmp/na"
[ "$(printf '%s\n' "$err" | sed -n 's/.*policy=na: seen //p' | tr '\n' ' ')" = \
    "0 false 0 true 0 true 1 true " ]
ok $? "no_answers counts a no_answer, not a busy or a rejected ring" "$(shown)"
grep -q '^| `no_answers` | integer | .*`busy` or `rejected` ring.* do not count' policies/README.md
ok $? "... as policies/README.md's agents table says" \
    "$(grep '^| `no_answers`' policies/README.md)"

# The man page's synopsis, as printed.
sed -n '/^\.SH SYNOPSIS/,/^\.SH/p' engine/man/switchboard-policy.7 |
    sed -e '1,/^\.nf/d' -e '/^\.fi/,$d' -e 's/\\(dq/"/g' -e 's/\\e/\\/g' >"$tmp/synopsis.lua"
run "$sb" policy check "$tmp/synopsis.lua"
check 0 "switchboard-policy(7) synopsis passes policy check" out ": ok"
# ... and decides the examples' day as it is, a desk phone's agent too (it
# named the softphone for every agent: bob, with a landline only, got the
# fallback).
mkdir -p "$tmp/synopsis"
cp "$tmp/synopsis.lua" "$tmp/synopsis/longest-idle.lua"
run "$sb" replay examples/replay/first-calls.jsonl --policy-dir "$tmp/synopsis"
printf '%s\n' "$out" "$err" | grep -q " 0 policy failures (0 routing decisions fell back)" &&
    printf '%s\n' "$out" | grep -q "ring bob for c2 on landline"
ok $? "... and routes examples/replay/first-calls.jsonl without a fallback, bob on his landline" \
    "$(shown)"

# Field names a view does not have: caught before deployment, file:line.
cat >"$tmp/typo.lua" <<'L'
local P = {}
function P.route(call, agents, ctx)
  local best
  for _, a in ipairs(agents) do
    if not best or a.idle_fro > best.idle_for then best = a end
  end
  if call.prority > 50 or ctx.queue.wating > 10 then return { reject = "busy" } end
  return best and { ring = best.id } or { wait = 10 }
end
return P
L
run "$sb" policy check "$tmp/typo.lua"
check 1 "policy check: a typo in an agent's field" err \
    "typo.lua:5: agent has no field 'idle_fro' (did you mean 'idle_for'?)"
check 1 "policy check: a typo in a call's field" err \
    "typo.lua:7: call has no field 'prority' (did you mean 'priority'?)"
check 1 "policy check: a typo in a queue figure" err \
    "typo.lua:7: queue has no field 'wating' (did you mean 'waiting'?)"
# ... named with the field it is close to, as a decision's typo is; and when
# the hook runs, a field read where the check cannot see it (in a helper)
# fails with the same words. A name close to none is left alone.
cat >"$tmp/near.lua" <<'L'
local P = {}
local function idle(a) return a.idel_for end
function P.route(call, agents, ctx)
  if call.attrs.far then return { wait = ctx.queue.zzzzzzzz } end
  return { wait = idle(agents[1]) }
end
return P
L
printf '[{"name": "a", "agents": [{"id": "a"}], "expect": {"action": "wait"}}, {"name": "b", "call": {"attrs": {"far": true}}, "expect": {"action": "wait"}}]\n' \
    >"$tmp/near.cases.json"
run "$sb" policy test "$tmp/near.lua"
has "$out" "near.lua:2: agent has no field 'idel_for' (did you mean 'idle_for'?)" &&
    has "$out" "queue has no field 'zzzzzzzz'\"}" && ! has "$out" "zzzzzzzz' (did"
ok $? "policy test: a field read in a helper, named with the field it is close to" "$(shown)"

# An error inside a library function: the line of the call, as plain Lua
# gives it (not the line of the hook's `function`).
cat >"$tmp/libcall.lua" <<'L'
local P = {}
function P.route(call, agents, ctx)
  local ids = {}
  for _, a in ipairs(agents) do ids[#ids + 1] = a.id end
  table.insert(nil, ids[1])
  return { wait = 1 }
end
return P
L
printf '[{"name": "one agent", "agents": [{"id": "a"}], "expect": {"action": "wait"}}]\n' \
    >"$tmp/libcall.cases.json"
run "$sb" policy test "$tmp/libcall.lua"
check 1 "policy test: an error inside table.insert names the line of the call" out \
    "libcall.lua:5: bad argument #1 to 'insert' (table expected, got nil)"

# A typo in a decision's field: the field it is close to is named.
cat >"$tmp/timout.lua" <<'L'
local P = {}
function P.route(call, agents, ctx)
  local first = agents[1]
  return { ring = first, timout = 20 }
end
return P
L
printf '[{"name": "one agent", "agents": [{"id": "a"}], "expect": {"action": "ring"}}]\n' \
    >"$tmp/timout.cases.json"
run "$sb" policy test "$tmp/timout.lua"
check 1 "policy test: a typo in a decision's field names the field meant" out \
    "timout.lua:4: route returned invalid decision: unknown field 'timout' (did you mean 'timeout'?)"

# A hook table with no hook: the keys it has, and the hook one is close to.
printf 'local P = {}\nfunction P.rout(call, agents, ctx) return {} end\nreturn P\n' >"$tmp/rout.lua"
run "$sb" policy check "$tmp/rout.lua"
check 1 "policy check: a table with no hook names its keys and the hook meant" err \
    "the table it returns has key 'rout' (did you mean 'route'?)"

# A hook keeping state in a global: fails with file:line, pointing at ctx.set.
cat >"$tmp/count.lua" <<'L'
count = 0
local P = {}
function P.route(call, agents, ctx)
  count = count + 1
  return { wait = count }
end
return P
L
printf '[{"name": "counts", "agents": [], "expect": {"action": "wait", "wait": 1}}]\n' \
    >"$tmp/count.cases.json"
run "$sb" policy test "$tmp/count.lua"
check 1 "policy test: a hook assigning a global is refused, as upload and reload refuse it" err \
    "count.lua:4: assignment to global 'count' in a hook"
has "$err" "ctx.set"
ok $? "and says where state that lasts goes" "$(shown)"

# A move to the queue the call waits in: an invalid decision, not a move.
cat >"$tmp/stay.lua" <<'L'
local P = {}
function P.route(call, agents, ctx)
  if #agents == 0 then return { move = call.queue, reason = "try again" } end
  return { ring = agents[1] }
end
return P
L
printf '[{"name": "nobody free", "agents": [], "expect": {"action": "move"}}]\n' \
    >"$tmp/stay.cases.json"
run "$sb" policy test "$tmp/stay.lua"
check 1 "policy test: a move to the call's own queue fails" out \
    "stay.lua:2: route returned invalid decision: move: the call waits in queue 'support' already"


# Two decisions returned: the second is not dropped with nothing said.
cat >"$tmp/two.lua" <<'L'
local P = {}
function P.route(call, agents, ctx)
  return { ring = agents[1] }, { pause = { agent = "b", reason = "break" } }
end
return P
L
printf '[{"name": "a and b", "agents": [{"id": "a"}, {"id": "b"}], "expect": {"action": "ring"}}]\n' \
    >"$tmp/two.cases.json"
run "$sb" policy test "$tmp/two.lua"
check 1 "policy test: a hook returning two decisions fails, saying one table holds both" out \
    "two.lua:3: route returned invalid decision: expected one decision table, got 2 values"
run "$sb" policy check "$tmp/two.lua"
check 1 "policy check: a hook returning two values is found before deployment" err \
    "two.lua:3: route returns 2 values here; a decision is one table"

done_testing
