#!/bin/sh
# The daemon's action JSON is the library's, byte for byte (test_actions.c).
exec "${SB_BUILD:-build}/tests/daemon/test_actions"
