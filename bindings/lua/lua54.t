#!/bin/sh
# bindings/lua/lua54.t — the Lua 5.4 module from lua5.4: the API and a full
# call cycle, call records and retention, batches, eng:changed() and
# sb.defer_stop_signals, the clock and log functions, master key rotation,
# the separate states of the host's Lua 5.4 and the engine's own (private)
# Lua 5.4, and the symbol isolation between them.
cd "$(dirname "$0")/../.." || exit 1
. bindings/lua/t/driver.sh

check_module 5.4
run_lua lua5.4 5.4 cycle
run_lua lua5.4 5.4 isolation
run_lua lua5.4 5.4 records
run_lua lua5.4 5.4 misuse
run_lua lua5.4 5.4 batch
run_lua lua5.4 5.4 changed
run_lua lua5.4 5.4 finalizer
run_lua lua5.4 5.4 callbacks
run_lua lua5.4 5.4 keyrot
run_lua "$B/bindings/lua/oomhost" 5.4 raise
run_lua "$B/bindings/lua/oomhost" 5.4 callbacks
check_bindings lua5.4 5.4
check_unload lua5.4 5.4
finish
