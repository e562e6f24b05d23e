#!/bin/sh
# Retention work (sweeps, a rescan, an erasure, an account's purge) killed
# again and again at commits chosen by count; the same on a full map; two
# processes on one data directory interleaved through pipes (test_retkill.c).
exec "${SB_BUILD:-build}/tests/crash/test_retkill"
