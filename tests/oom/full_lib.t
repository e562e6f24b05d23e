#!/bin/sh
# A full map and a full disk through the library (test_full.c).
exec "${SB_BUILD:-build}/tests/oom/test_full"
