#!/bin/sh
# bindings/lua/lua51.t — the Lua 5.1-ABI module from LuaJIT 2.1 and from
# lua5.1: the API and a full call cycle (routed by a Lua 5.4 policy inside the
# engine), call records and retention, eng:changed() and
# sb.defer_stop_signals, the clock and log functions, master key rotation,
# the two runtimes' separate states, and the symbol isolation that keeps the
# engine's Lua 5.4 and the host's Lua apart.
cd "$(dirname "$0")/../.." || exit 1
. bindings/lua/t/driver.sh

check_module 5.1
for host in luajit lua5.1; do
    run_lua "$host" 5.1 cycle
    run_lua "$host" 5.1 isolation
    run_lua "$host" 5.1 records
    run_lua "$host" 5.1 misuse
    run_lua "$host" 5.1 batch
    run_lua "$host" 5.1 changed
    run_lua "$host" 5.1 finalizer
    run_lua "$host" 5.1 callbacks
    run_lua "$host" 5.1 keyrot
    run_lua "$host" 5.1 raise
    check_bindings "$host" 5.1
done
check_unload lua5.1 5.1
check_shared
control_naive luajit
finish
