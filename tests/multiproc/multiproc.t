#!/bin/sh
# tests/multiproc/multiproc.t — 8 processes on one data directory: no agent
# ever reserved by two calls, every call accounted for, a policy put mid-run
# reaching every process; prints the aggregate call cycles/s and the double
# booking count (see multiproc.c). --hold keeps the calls overlapping, so the
# queues are contended on every run. MULTIPROC_ARGS adds options (e.g. --cycles).
B=${SB_BUILD:-build}
cd "$(dirname "$0")/../.." || exit 1
exec timeout 300 "$B/tests/multiproc/multiproc" --procs 8 --hold $MULTIPROC_ARGS
