#!/bin/sh
# tests/cli/simulate.t — `switchboard simulate`, the day of calls `make run`
# starts with: it provisions its queues in an order the engine accepts (a
# queue's overflow queue first), routes every call and exits 0 with its
# summary; the same seed gives the same day; malformed --calls and --seed
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

done_testing
