#!/bin/sh
# bindings/lua/sbctl.t — examples/kamailio/sbctl.lua through the 5.1 module
# (luajit, else lua5.1): each command succeeds with exit 0 on a provisioned
# directory, exits 1 with a message when the engine refuses the request (an
# unknown call, account or agent, a bad status), and 2 on a usage error;
# `calls` still prints a line for every id asked for.
cd "$(dirname "$0")/../.." || exit 1
. bindings/lua/t/driver.sh

host=$(command -v luajit || command -v lua5.1)
if [ -z "$host" ]; then
    echo "1..0 # SKIP no luajit or lua5.1 (Debian: luajit)"
    exit 0
fi
S=examples/kamailio/sbctl.lua
D=$TMP/data
P=examples/kamailio/policies

# sbctl WANT_RC DESCRIPTION ARGS... — runs sbctl.lua; ok when it exits WANT_RC.
sbctl() {
    want=$1 what=$2
    shift 2
    env $SAN_ENV LUA_CPATH="$B/bindings/lua/5.1/?.so" timeout 60 "$host" "$S" "$@" \
        >"$TMP/out" 2>"$TMP/err"
    rc=$?
    [ "$rc" -eq "$want" ]
    ok $? "sbctl $what: exit $want (got $rc)"
    [ "$rc" -ne "$want" ] && sed 's/^/# /' "$TMP/out" "$TMP/err" | head -20
    return 0
}

sbctl 0 "provision" "$D" "$P" provision examples/kamailio/contact-centre.json
sbctl 0 "agents" "$D" "$P" agents acme
grep -q '"id":"alice"' "$TMP/out"
ok $? "agents lists alice"
sbctl 0 "status available" "$D" "$P" status acme alice available

# A call to read: offered and answered through the same module.
cat >"$TMP/offer.lua" <<'EOF'
local sb = require "switchboard"
local eng = assert(sb.open{ data_dir = arg[1], policy_dir = arg[2], log = "none" })
assert(eng:submit("acme", { type = "offer", call = "c1", queue = "support",
                            caller = "+442079460001", attrs = { language = "en" } }))
eng:close()
EOF
env $SAN_ENV LUA_CPATH="$B/bindings/lua/5.1/?.so" timeout 60 "$host" "$TMP/offer.lua" "$D" "$P" \
    >"$TMP/out" 2>&1
ok $? "a call offered through the module"
sbctl 0 "calls (a known call)" "$D" "$P" calls acme c1
grep -q '"id":"c1"' "$TMP/out" && ! grep -q '"error"' "$TMP/out"
ok $? "calls prints the call"

sbctl 1 "calls (an unknown call)" "$D" "$P" calls acme NOPE
grep -q '"error":"no such call' "$TMP/out"
ok $? "calls still prints the refused id's line"
sbctl 1 "calls (a known and an unknown call)" "$D" "$P" calls acme c1 NOPE
[ "$(wc -l <"$TMP/out")" -eq 2 ]
ok $? "calls prints a line for each id"
sbctl 1 "calls (an unknown account)" "$D" "$P" calls nope c1
sbctl 1 "agents (an unknown account)" "$D" "$P" agents nope
sbctl 1 "status (an unknown agent)" "$D" "$P" status acme nobody paused
sbctl 1 "status (a bad status)" "$D" "$P" status acme alice lunch
sbctl 1 "provision (no such file)" "$D" "$P" provision "$TMP/none.json"
echo '{}' >"$TMP/empty.json"
sbctl 1 "provision (no account)" "$D" "$P" provision "$TMP/empty.json"
sbctl 2 "(no arguments)"
sbctl 2 "calls (no call id)" "$D" "$P" calls acme
sbctl 2 "status (no status)" "$D" "$P" status acme alice
sbctl 2 "(an unknown command)" "$D" "$P" frob
finish
