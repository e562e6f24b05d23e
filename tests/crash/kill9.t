#!/bin/sh
# kill -9 the daemon under load 50 times (SB_KILLS), restart it on the same
# data directory, check nothing acknowledged is lost. See kill9.py;
# `make soak` runs 1,000 kills.
exec python3 "$(dirname "$0")/kill9.py" "${SB_KILLS:-50}"
