#!/bin/sh
# `make valgrind`: runs one test program under valgrind's memcheck (prove
# --exec) and reports, in TAP, whether memcheck found any memory error or a
# definite/indirect leak. The program's own results are shown as comments:
# its wall-clock budgets (policy time limits) do not hold at valgrind's
# speed, so they are not what this run judges — `make test` does.
# Reports that are not ours are suppressed in tests/oom/valgrind.supp.
here=$(dirname "$0")
# test_sandbox scales its wall-clock budgets by this (see its header).
export SB_TEST_WALL_MS="${SB_TEST_WALL_MS:-60000}"
prog=$1
log=$(mktemp) out=$(mktemp)
${VALGRIND:-valgrind} --tool=memcheck --leak-check=full \
    --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
    --error-exitcode=99 --track-origins=yes --num-callers=30 \
    --suppressions="$here/valgrind.supp" --log-file="$log" ${VALGRIND_EXTRA:-} "$@" >"$out" 2>&1
rc=$?
errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | tail -1)
passed=$(grep -c '^ok ' "$out")
failed=$(grep -c '^not ok ' "$out")
if [ "$rc" -ne 99 ] && [ "${errs:-1}" = 0 ]; then
    echo "ok 1 - memcheck: no memory errors, no leaks in $prog"
else
    echo "not ok 1 - memcheck: $prog (exit $rc, ${errs:-?} errors)"
    sed 's/^/#   /' "$log" | head -200
fi
if [ "$rc" -lt 128 ]; then
    echo "ok 2 - $prog ran to completion under valgrind"
else
    echo "not ok 2 - $prog ran to completion under valgrind (exit $rc)"
    tail -20 "$out" | sed 's/^/#   /'
fi
echo "# its own tests: $passed passed, $failed failed at valgrind's speed"
grep '^not ok ' "$out" | head -20 | sed 's/^/#   /'
echo "1..2"
rm -f "$log" "$out"
