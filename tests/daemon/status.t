#!/bin/sh
# Every SB_E* code maps to a sensible HTTP status, as API.md says (test_status.c).
cd "$(dirname "$0")/../.." && exec "${SB_BUILD:-build}/tests/daemon/test_status"
