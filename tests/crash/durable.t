#!/bin/sh
# Commits in the order a power loss needs, and syncs that make each write
# durable before it returns, seen at the system calls (test_durable.c).
exec "${SB_BUILD:-build}/tests/crash/test_durable"
