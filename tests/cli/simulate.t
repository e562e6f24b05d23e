#!/bin/sh
# tests/cli/simulate.t — `switchboard simulate`, the day of calls `make run`
# starts with: it provisions its queues in an order the engine accepts (a
# queue's overflow queue first), routes every call and exits 0 with its
# summary (1 when a policy failed or was quarantined during the day); the same seed
# gives the same day; malformed --calls and --seed
# are usage errors; a run that fails removes its temporary data directory.
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh

run "$sb" simulate --calls 60 --seed 7 --policy-dir policies
check 0 "simulate: exit 0 with the summary" out "of 60 calls answered"
has "$out" "support" && has "$out" "sales" && has "$out" "billing" && has "$out" "vip"
ok $? "... a line for each of the four queues" "$(shown)"
first=$out
run "$sb" simulate --calls 60 --seed 7 --policy-dir policies
[ "$rc" -eq 0 ] && [ "$out" = "$first" ]
ok $? "the same seed gives the same day" "$(shown)"

run "$sb" simulate --calls 60 --data-dir "$tmp/sim" --policy-dir policies
check 0 "simulate --data-dir DIR: exit 0" out "of 60 calls answered"
[ -f "$tmp/sim/data.mdb" ]
ok $? "... and the data stays in DIR" "$(shown)"

# --calls and --seed take whole numbers, all of the argument.
for a in "--calls 10x" "--calls abc" "--calls -5" "--calls 1000001" "--seed abc" "--seed 7x" "--seed -1"; do
    # shellcheck disable=SC2086
    run "$sb" simulate $a --policy-dir policies
    [ "$rc" -eq 2 ] && [ -z "$out" ] && has "$err" "${a%% *}"
    ok $? "simulate $a: a usage error (exit 2), no day simulated" "$(shown)"
done

# Failing runs leave no temporary directory: one that cannot open its
# policy directory, one whose queues name policies it does not have.
mkdir "$tmp/empty"
for pd in "$tmp/nopolicies" "$tmp/empty"; do
    ls -d /tmp/switchboard-sim-* 2>/dev/null | sort >"$tmp/before"
    run "$sb" simulate --calls 10 --policy-dir "$pd"
    check 1 "simulate --policy-dir $pd: exit 1 saying why" err "switchboard simulate: "
    ls -d /tmp/switchboard-sim-* 2>/dev/null | sort >"$tmp/after"
    cmp -s "$tmp/before" "$tmp/after"
    ok $? "... and its temporary data directory is removed" "$(diff "$tmp/before" "$tmp/after")"
done

# --policy FILE: README's ten-line policy, as the README runs it. Its
# callers give no language, so it finds no `en` speaker and rings no one.
awk '/^```lua$/ { inside = 1; next } inside && /^```$/ { exit } inside { print }' README.md \
    >"$tmp/mine.lua"
has "$(cat README.md)" "build/switchboard simulate --policy policies/mine.lua"
ok $? "README runs its policy with simulate --policy"
run "$sb" simulate --calls 60 --seed 7 --policy "$tmp/mine.lua"
check 0 "simulate --policy FILE: exit 0 with the summary" out "0 of 60 calls answered"
has "$out" "policies: support=mine  sales=mine  billing=mine  vip=mine  (mine: $tmp/mine.lua)"
ok $? "... every queue routes with FILE's policy, named after the file" "$(shown)"
has "$out" "decisions: 0 ring, " && has "$out" "policy failures 0, fallbacks 0"
ok $? "... which decided every call (a wait, as README says), with no fallback" "$(shown)"
second=$out
run "$sb" simulate --calls 60 --seed 7 --policy "$tmp/mine.lua" --policy-dir policies
[ "$rc" -eq 0 ] && [ "$out" = "$second" ]
ok $? "... and the same seed gives the same day" "$(shown)"

# Every queue on it needs no stock policy: it runs outside the source tree.
mkdir "$tmp/elsewhere"
run sh -c 'cd "$1" && "$2" simulate --calls 60 --seed 7 --policy "$3"' sh "$tmp/elsewhere" "$sb" "$tmp/mine.lua"
[ "$rc" -eq 0 ] && [ "$out" = "$second" ]
ok $? "... also outside the source tree (no ./policies), the same day" "$(shown)"

# --queue: only the queues named route with it. A policy that turns every
# call away shows where it ran: vip's calls all rejected, no other's.
printf 'local P = {}\nfunction P.route(call, agents, ctx)\n  return { reject = "closed" }\nend\nreturn P\n' \
    >"$tmp/turn-away.lua"
row() { printf '%s\n' "$out" | awk -v q="$1" '$1 == q { print $2, $5 }'; } # offered rejected
run "$sb" simulate --calls 200 --seed 7 --policy "$tmp/turn-away.lua" --queue vip
check 0 "simulate --policy FILE --queue vip: exit 0" out "vip=turn-away"
has "$out" "support=longest-idle  sales=freeswitch/round-robin  billing=switchboard/skills-escalation"
ok $? "... the other queues keep their stock policies" "$(shown)"
# shellcheck disable=SC2046
set -- $(row vip)
[ "${1:-0}" -gt 0 ] && [ "$1" = "$2" ]
ok $? "... every vip call is rejected by it (${1:-?} offered, ${2:-?} rejected)" "$(shown)"
for q in support sales billing; do
    # shellcheck disable=SC2046
    set -- $(row $q)
    [ "${1:-0}" -gt 0 ] && [ "$2" = 0 ]
    ok $? "... and no $q call (${1:-?} offered, ${2:-?} rejected)" "$(shown)"
done
run "$sb" simulate --calls 200 --seed 7 --policy="$tmp/turn-away.lua" --queue=sales,vip
# shellcheck disable=SC2046
set -- $(row sales) $(row vip) $(row billing)
[ "$rc" -eq 0 ] && [ "${1:-0}" -gt 0 ] && [ "$1" = "$2" ] && [ "$3" = "$4" ] && [ "$6" = 0 ]
ok $? "--queue=sales,vip: both of those queues route with it, billing not" "$(shown)"

# The same seed, another policy: each queue is offered as many calls (what
# the summary shows of the calls drawn before the day), however they fare.
offered() { printf '%s\n' "$out" | awk '$1 ~ /^(support|sales|billing|vip)$/ { printf "%s=%s ", $1, $2 }'; }
run "$sb" simulate --calls 200 --seed 7 --policy-dir policies
stock=$(offered)
run "$sb" simulate --calls 200 --seed 7 --policy "$tmp/turn-away.lua"
[ "$rc" -eq 0 ] && [ -n "$stock" ] && [ "$(offered)" = "$stock" ]
ok $? "the same seed with another policy: each queue offered the same number of calls ($stock)" "$(shown)"

# A policy that loads with what `policy check` finds in it: warnings, and
# the day runs.
sed 's/a.idle_for > best.idle_for/a.idel_for > best.idle_for/' "$tmp/mine.lua" >"$tmp/typo.lua"
run "$sb" simulate --calls 20 --policy "$tmp/typo.lua" --queue billing
check 0 "a policy with a lint finding: the day runs" out "of 20 calls answered"
has "$err" "switchboard simulate: warning: $tmp/typo.lua:7: agent has no field 'idel_for' (did you mean 'idle_for'?)"
ok $? "... and the finding is shown as a warning with FILE:line" "$(shown)"

# A policy quarantined during the day (five failures in a row): its queues'
# calls got their fallback from then on, so the day is not the policy's. The
# summary is still printed, the policy is named after it and the exit status
# is 1, as replay's for a policy that failed. A policy that fails now and
# then but is never quarantined (only call c0, rung twice) fails the day
# too: its decisions fell back, so the summary says how many and the exit
# status is 1.
printf 'local P = {}\nfunction P.route(call, agents, ctx)\n  error("boom")\nend\nreturn P\n' \
    >"$tmp/boom.lua"
run "$sb" simulate --calls 60 --seed 7 --policy "$tmp/boom.lua"
check 1 "a policy quarantined during the day: exit 1" err \
    "switchboard simulate: policy 'boom' was quarantined during the day (too many failures in a row, logged above): from then on its queues' calls (support, sales, billing, vip) got their fallback"
has "$out" "of 60 calls answered" && has "$err" "error policy quarantined: account=demo policy=boom"
ok $? "... after the day's summary, and the quarantine's log line" "$(shown)"
printf 'local P = {}\nfunction P.route(call, agents, ctx)\n  if call.id == "c0" then error("not c0") end\n  if agents[1] then return { ring = agents[1] } end\n  return { wait = 10 }\nend\nreturn P\n' \
    >"$tmp/once.lua"
run "$sb" simulate --calls 60 --seed 7 --policy "$tmp/once.lua"
check 1 "a policy that failed but was not quarantined: exit 1" err \
    "switchboard simulate: 2 of 68 routing decisions got their queue's fallback, the policy having failed 2 times (logged above): the day counts as failed"
has "$out" "of 60 calls answered" && has "$out" "policy failures 2, fallbacks 2"
ok $? "... after the day's summary, which counts them" "$(shown)"
has "$err" "once.lua:3: not c0" && ! has "$err" "quarantined"
ok $? "... its failures logged, no quarantine said" "$(shown)"
# Both streams to one file (a CI log, | tee): the count is still the line
# after the summary.
"$sb" simulate --calls 60 --seed 7 --policy "$tmp/once.lua" >"$tmp/both" 2>&1
tail -n 2 "$tmp/both" | head -n 1 | grep -q "of 60 calls answered" &&
    tail -n 1 "$tmp/both" | grep -q "routing decisions got their queue's fallback"
ok $? "... stdout and stderr to one file: the count comes after the summary" "$(cat "$tmp/both")"

# Refused before the day: nothing on stdout, the temporary directory gone.
printf 'local P = {}\nfunction P.route(call, agents)\n  return { ring =\nend\nreturn P\n' \
    >"$tmp/broken.lua"
printf 'local P = {}\n\nerror("not today")\nreturn P\n' >"$tmp/throws.lua"
printf 'local P = {}\nfunction P.retain(record, ctx)\n  return { keep = true }\nend\nreturn P\n' \
    >"$tmp/keeper.lua"
for c in "broken|--policy does not load: $tmp/broken.lua:4: unexpected symbol near 'end'" \
    "throws|--policy does not load: $tmp/throws.lua:3: not today" \
    "keeper|--policy $tmp/keeper.lua: queue sales cannot route with it: policy 'keeper' has no route hook"; do
    f=${c%%|*} want=${c#*|}
    mkdir "$tmp/td-$f"
    run env TMPDIR="$tmp/td-$f" "$sb" simulate --calls 10 --policy "$tmp/$f.lua"
    [ "$rc" -eq 1 ] && [ -z "$out" ] && has "$err" "switchboard simulate: $want"
    ok $? "simulate --policy $f.lua: exit 1, no day, saying: $want" "$(shown)"
    [ -z "$(ls -A "$tmp/td-$f")" ]
    ok $? "... and its temporary data directory is removed" "$(ls -A "$tmp/td-$f")"
done

# Usage errors (exit 2), no day simulated.
mkdir "$tmp/adir"
cp "$tmp/mine.lua" "$tmp/longest-idle.lua"
for c in "--policy $tmp/nope.lua|--policy $tmp/nope.lua: No such file or directory" \
    "--policy $tmp/adir|--policy $tmp/adir: a directory" \
    "--policy $tmp/mine.lua --policy $tmp/mine.lua|--policy given twice" \
    "--policy $tmp/mine.lua --queue vip --queue=sales|--queue given twice" \
    "--queue vip|--queue says which queues route with --policy FILE: give --policy too" \
    "--policy $tmp/mine.lua --queue suport|--queue 'suport': the simulated queues are support, sales, billing and vip" \
    "--policy $tmp/mine.lua --queue vip,|--queue 'vip,': a queue name after the ','" \
    "--policy $tmp/longest-idle.lua --queue sales|it would be uploaded as 'longest-idle', the stock policy queue support keeps" \
    "--policy|unknown or incomplete '--policy'"; do
    a=${c%%|*} want=${c#*|}
    # shellcheck disable=SC2086
    run "$sb" simulate --calls 10 $a
    [ "$rc" -eq 2 ] && [ -z "$out" ] && has "$err" "$want"
    ok $? "simulate $a: a usage error: $want" "$(shown)"
done
run "$sb" simulate --calls 10 --policy "$tmp/longest-idle.lua" --queue support
check 0 "a longest-idle.lua of one's own on support itself runs" out "support=longest-idle  sales=freeswitch/round-robin"

run "$sb" simulate --help
check 0 "simulate --help shows --policy and --queue" out "[--policy FILE [--queue Q[,Q...]]]"

done_testing
