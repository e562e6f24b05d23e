# driver.sh — sourced by bindings/lua/lua51.t and lua54.t: runs the Lua test
# scripts under each host interpreter, renumbering their TAP, and checks the
# symbol isolation of the built module with nm, readelf and LD_DEBUG=bindings.
# POSIX sh. Expects SB_BUILD (default build) and to be run from the repo root.

B=${SB_BUILD:-build}
T=bindings/lua/t
N=0
FAILED=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sb-lua-t.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM
# The scripts' data directories go in it too (t/tap.lua's T.tmpdir), so that
# one a script could not remove (a crash on purpose, a failure) goes with it.
export SB_LUA_TMP="$TMP"

# Under sanitizers the module carries ASan/UBSan code; the hosts are plain
# executables, so the runtimes must come first in the process.
SAN_ENV=""
case "$B" in
*san*)
    for lib in libasan.so libubsan.so; do
        p=$(${CC:-cc} -print-file-name=$lib)
        [ -f "$p" ] && SAN_ENV="$SAN_ENV${SAN_ENV:+:}$p"
    done
    SAN_ENV="LD_PRELOAD=$SAN_ENV"
    ;;
esac

# ok STATUS DESCRIPTION — STATUS 0 passes.
ok() {
    N=$((N + 1))
    if [ "$1" -eq 0 ]; then
        echo "ok $N - $2"
    else
        echo "not ok $N - $2"
        FAILED=$((FAILED + 1))
    fi
}

skip() {
    N=$((N + 1))
    echo "ok $N - # SKIP $1"
}

have() { command -v "$1" >/dev/null 2>&1; }

# run_lua HOST ABI SCRIPT — the script's TAP lines, renumbered and tagged with
# the host; then one test that the interpreter exited 0 (catches crashes).
run_lua() {
    host=$1 abi=$2 script=$3
    if ! have "$host"; then
        skip "$host is not installed (Debian package $host)"
        return
    fi
    # raise.lua ends methods half way on purpose, and what such a method had
    # taken in C is not given back (bindings/lua/README.md): under the
    # sanitizers, leak reports off for it; what it checks is that the engine
    # closes.
    leaks=
    [ "$script" = raise ] && [ -n "$SAN_ENV" ] && leaks="ASAN_OPTIONS=detect_leaks=0"
    # records.lua under lua5.1: LeakSanitizer's own tracer dies at the exit
    # ("Tracer caught signal 11", "LeakSanitizer has encountered a fatal
    # error") when the script's data directories are under a fresh
    # directory, before it reports anything, and the run exits 1; the same
    # script's leaks are still checked under luajit and lua5.4.
    [ "$script" = records ] && [ "$host" = lua5.1 ] && [ -n "$SAN_ENV" ] &&
        leaks="ASAN_OPTIONS=detect_leaks=0"
    env $SAN_ENV $leaks SB_LUA_T="$T" LUA_PATH="$T/?.lua" LUA_CPATH="$B/bindings/lua/$abi/?.so" \
        timeout 300 "$host" "$T/$script.lua" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    while IFS= read -r line; do
        case $line in
        "ok - "*) N=$((N + 1)); echo "ok $N - [$host] ${line#ok - }" ;;
        "not ok - "*) N=$((N + 1)); FAILED=$((FAILED + 1)); echo "not ok $N - [$host] ${line#not ok - }" ;;
        "#"*) echo "$line" ;;
        *) echo "# $line" ;;
        esac
    done <"$TMP/out"
    [ $rc -ne 0 ] && sed 's/^/# stderr: /' "$TMP/err" | head -40
    ok $rc "[$host] $script.lua ran to the end (exit $rc)"
}

# check_module ABI — what the module exports, needs and leaves to the host.
check_module() {
    abi=$1
    so=$B/bindings/lua/$abi/switchboard.so
    if [ ! -f "$so" ]; then
        ok 1 "$so is built"
        return
    fi
    defined=$(nm -D --defined-only "$so" | awk '{ print $3 }' | tr '\n' ' ')
    [ "$defined" = "luaopen_switchboard " ]
    ok $? "[$abi] the module exports luaopen_switchboard and nothing else (got: $defined)"
    readelf -d "$so" | grep NEEDED | grep -qiE 'lua|switchboard'
    [ $? -ne 0 ]
    ok $? "[$abi] it needs no Lua library and no libswitchboard.so (NEEDED: $(readelf -d "$so" | awk '/NEEDED/ { printf "%s ", $5 }'))"
    nm -D --undefined-only "$so" | awk '$2 ~ /^luaL?_/ { print $2 }' >"$TMP/undef"
    nref=$(wc -l <"$TMP/undef")
    nver=$(grep -c '@' "$TMP/undef")
    [ "$nref" -gt 20 ] && [ "$nver" -eq 0 ]
    ok $? "[$abi] its $nref lua_*/luaL_* references are undefined and unversioned: the host binds them"
    nm "$so" | grep -qE ' t lua_newstate$'
    ok $? "[$abi] the engine's Lua 5.4 (lua_newstate...) is inside it as local symbols only"
    nm -D --undefined-only "$so" | grep -q ' sb_'
    [ $? -ne 0 ]
    ok $? "[$abi] the engine is linked in whole: no sb_* is left for the dynamic linker"
}

# check_bindings HOST ABI — run one routed call under LD_DEBUG=bindings and
# look at what each lua_* reference of the module was bound to at run time.
check_bindings() {
    host=$1 abi=$2
    if ! have "$host"; then
        skip "$host is not installed"
        return
    fi
    rm -f "$TMP"/ld.*
    out=$(env $SAN_ENV LD_DEBUG=bindings LD_DEBUG_OUTPUT="$TMP/ld" SB_LUA_T="$T" \
        LUA_CPATH="$B/bindings/lua/$abi/?.so" timeout 120 "$host" "$T/oneshot.lua" 2>&1)
    rc=$?
    [ $rc -eq 0 ] && [ "$out" = "ring bob" ]
    ok $? "[$host] a call routed under LD_DEBUG=bindings ($out)"
    # "binding file FROM [0] to TO [0]: normal symbol `NAME' [VERSION]"
    cat "$TMP"/ld.* 2>/dev/null | sed 's/^ *[0-9]*: *//' |
        awk '$1 == "binding" && $3 ~ /switchboard\.so$/ {
                 sym = $0; sub(/.*symbol `/, "", sym); sub(/'"'"'.*/, "", sym)
                 print $6, sym }' >"$TMP/binds"
    lua_binds=$(awk '$2 ~ /^luaL?_/' "$TMP/binds" | wc -l)
    to_host=$(awk -v h="$host" '$2 ~ /^luaL?_/ && ($1 == h || $1 ~ ("/" h "$"))' "$TMP/binds" | wc -l)
    [ "$lua_binds" -gt 20 ] && [ "$lua_binds" -eq "$to_host" ]
    ok $? "[$host] all $lua_binds run-time bindings of the module's lua_* references go to the host ($host): $to_host"
    awk '$2 ~ /^luaL?_/ && $1 !~ /lua|^\//' "$TMP/binds" | head -3 | sed 's/^/# unexpected: /'
    grep -h 'binding file' "$TMP"/ld.* | grep -q 'liblua5\.4\|symbol `lua_newstate'"'"
    [ $? -ne 0 ]
    ok $? "[$host] nothing binds to liblua5.4.so, and the engine's lua_newstate is never looked up at run time"
}

# check_shared — the engine's shared library carries its Lua 5.4 privately, as
# the module does: it needs no liblua and exports the sb_* API alone, so a
# host with a Lua of its own can load it.
check_shared() {
    so=$B/libswitchboard.so
    if [ ! -f "$so" ]; then
        ok 1 "$so is built"
        return
    fi
    ! ldd "$so" | grep -q 'liblua'
    ok $? "libswitchboard.so does not depend on a Lua library"
    others=$(nm -D --defined-only "$so" | awk 'NF == 3 && $3 !~ /^sb_/' | wc -l)
    api=$(nm -D --defined-only "$so" | awk 'NF == 3 && $3 ~ /^sb_/' | wc -l)
    [ "$others" -eq 0 ] && [ "$api" -gt 40 ]
    ok $? "libswitchboard.so exports the sb_* API alone ($api symbols, $others others)"
}

# control_naive HOST — a module built the obvious way (the binding linked
# against an engine library that needs liblua5.4.so) under the same checks:
# the engine's lua_*@LUA_5.4 references bind to the host's unversioned lua_*.
# Shows the checks above can fail, and why the module is linked as it is.
control_naive() {
    host=$1
    so=$B/bindings/lua/naive/switchboard.so
    if ! have "$host" || [ ! -f "$so" ] || [ -n "$SAN_ENV" ]; then
        skip "negative control needs $host and $so (not built under sanitizers)"
        return
    fi
    rm -f "$TMP"/ld.*
    env LD_DEBUG=bindings LD_DEBUG_OUTPUT="$TMP/ld" SB_LUA_T="$T" \
        LUA_CPATH="$B/bindings/lua/naive/?.so" timeout 60 "$host" "$T/oneshot.lua" >/dev/null 2>&1
    rc=$?
    n=$(cat "$TMP"/ld.* 2>/dev/null | grep 'binding file .*libswitchboard\.so' |
        grep "to $host \[" | grep -c '`lua_newstate'"' \[LUA_5.4\]")
    [ "$n" -gt 0 ]
    ok $? "[$host] control: a naively linked module's engine binds lua_newstate@LUA_5.4 to $host's LuaJIT (exit $rc)"
}

# check_unload HOST ABI — under valgrind (when installed, and not under a
# sanitizer): the host closes its Lua state, unloading the module, after an
# engine loaded a time zone; nothing may be lost (the module is never
# unloaded, so the engine's process-wide state stays reachable).
check_unload() {
    host=$1 abi=$2
    if ! have "$host" || ! have valgrind || [ -n "$SAN_ENV" ]; then
        skip "[$host] unload under valgrind: needs $host and valgrind, and no sanitizer build"
        return
    fi
    env LUA_PATH="$T/?.lua" LUA_CPATH="$B/bindings/lua/$abi/?.so" timeout 300 \
        valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 \
        "$host" "$T/unload.lua" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    grep -q '^ok - ' "$TMP/out" && [ $rc -eq 0 ]
    r=$?
    [ $r -ne 0 ] && grep -E 'definitely lost|ERROR SUMMARY' "$TMP/err" | sed 's/^/# /'
    ok $r "[$host] the module unloaded with its state closed: nothing definitely lost (valgrind exit $rc)"
}

finish() {
    echo "1..$N"
    [ "$FAILED" -eq 0 ]
    exit $?
}
