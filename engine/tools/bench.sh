#!/bin/sh
# make bench: every benchmark, figures printed as measured on this machine.
set -eu
B=${SB_BUILD:-build}
echo "== Engine call cycle (issue: engine core) =="
"$B/tests/bench_cycle" --cycles "${SB_BENCH_CYCLES:-200000}"
echo
echo "== The same cycle's floor: LMDB transactions and the Lua loop alone, no engine code =="
"$B/tests/bench_floor"
echo
echo "== Sandbox overhead: the same cycle with every budget armed and off, in turn =="
"$B/tests/bench_cycle" --cycles 4000 --budgets-pair 41
echo
echo "== Policy reload across 1,000 accounts (issue: sandbox and reload) =="
"$B/tests/bench_reload"
echo
echo "== 8 processes on one data directory (issue: embedding) =="
"$B/tests/multiproc/multiproc" --procs 8 --cycles 5000 | grep '^# multiproc'
"$B/tests/multiproc/multiproc" --procs 8 --cycles 500 --sync group | grep '^# multiproc'
echo
echo "== Python binding next to C (issue: embedding; target >= 30% of C) =="
"$B/tests/bench_cycle" --cycles 50000 --only none --no-scale | tail -1
SWITCHBOARD_LIB="$B/libswitchboard.so" /usr/bin/python3 bindings/python/bench.py --cycles 50000
echo
echo "== Retention sweep (issue: call records and retention) =="
"$B/tests/bench_sweep" --records "${SB_BENCH_RECORDS:-1000000}" --cycles 20000
for extra in tests/bench/*.sh; do
    [ -x "$extra" ] || continue
    echo
    SB_BUILD="$B" "$extra"
done
