#!/bin/sh
# Hostile values returned by policies, through the engine (test_policy_values.c).
exec "${SB_BUILD:-build}/tests/badinput/test_policy_values"
