#!/bin/sh
# The library with an allocator that fails the Nth allocation (test_oom.c).
exec "${SB_BUILD:-build}/tests/oom/test_oom"
