#!/bin/sh
# Two engines of one process on one data directory, then another process:
# the LMDB lock must survive the second engine's close (test_locks.c).
exec "${SB_BUILD:-build}/tests/crash/test_locks"
