#!/bin/sh
# Tenant isolation through the library and its policies (test_isolation.c).
exec "${SB_BUILD:-build}/tests/isolation/test_isolation"
