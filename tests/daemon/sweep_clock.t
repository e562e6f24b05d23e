#!/bin/sh
# A sweep's `sweep done` line times the run it reports, on an injected clock
# (test_sweep_clock.c).
exec "${SB_BUILD:-build}/tests/daemon/test_sweep_clock"
