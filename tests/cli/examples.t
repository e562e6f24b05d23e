#!/bin/sh
# tests/cli/examples.t — the examples under examples/, followed from their own
# docs as a new user would, for what no other test runs:
#  - examples/c-gateway: built with its README's cc line, run on setup.jsonl and
#    calls.jsonl, prints exactly the lines the README shows; the C, Python and
#    Go gateways each exit 0 on SIGTERM and SIGINT while waiting for input,
#    and each reports a failing tick and tries it again a second later (not
#    in a loop, not dying); the C and Python gateways print the actions of
#    an offer whose sync failed after its commit (the offer stands); each reads on
#    after a line longer than 16 MiB; the C and Go gateways exit 1 on input
#    that cannot be read, and the C one on a line it has no memory for;
#    the commands in the Python and Go gateways' header comments, run as
#    written, print the README's lines too (bindings/python/test_binding.t and
#    bindings/go/go.t compare those gateways with the C one);
#  - examples/replay/first-calls.jsonl decides as its header comment says
#    (mine.jsonl is tests/cli/readme.t's, migrating.jsonl
#    tests/cli/policy_author.t's);
#  - examples/kamailio: its policies pass `policy check`, their cases and
#    luacheck, and route.lua and sbctl.lua luacheck too; under LuaJIT (the
#    5.1 module) and Lua 5.4, contact-centre.json provisions through
#    sbctl.lua (bindings/lua/sbctl.t checks its exit codes), and route.lua,
#    driven through a stand-in for Kamailio's KSR, rings carol at the URI
#    and for the time the README's "How a call goes" names (a second BYE
#    logged with the engine's message), and `sbctl.lua calls` reads the
#    call back; provisioning files with agents or queues that are no array,
#    or an account without an id, are refused with a message and exit 1,
#    nothing made; kamailio.cfg
#    passes `kamailio -c`, and the module path its header names is the one
#    `make install` uses (tests/multiproc/kamailio.t runs the whole example
#    inside Kamailio);
#  - examples/switchboard.conf: every key it shows, the commented ones too,
#    is taken by `switchboard serve --config`;
#  - examples/systemd/switchboard.service: ExecStart names the command where
#    `make install` puts it, with arguments `serve` takes, on a configuration
#    set up as the unit's header says; reload (SIGHUP) and stop (SIGTERM) do
#    what the comments say; the man pages it names are installed; and
#    `systemd-analyze verify` passes it.
# Each step is bounded in time; a missing tool is a TAP skip.
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh

B=$SB_BUILD
san=
case $B in *-san) san=-fsanitize=address,undefined ;; esac # the library's runtime
have() { command -v "$1" >/dev/null 2>&1; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }

# install_plan TARGET ARGS...: what `make TARGET` would run (make -n), with
# the environment of a plain make (not the suite's MAKEFLAGS).
install_plan() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -n --no-print-directory "$@"; }

# wait_exit PID: waits (at most 60 s) for PID to exit, then reaps it into $rc;
# 1 (and the process killed) if it did not.
wait_exit() {
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 600 ]; do
        # a zombie still answers kill -0: ask ps whether it has finished
        [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" = Z ] && break
        sleep 0.1
        i=$((i + 1))
    done
    if [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" != Z ] && kill -0 "$1" 2>/dev/null; then
        kill -KILL "$1" 2>/dev/null
        wait "$1" 2>/dev/null
        rc=137
        return 1
    fi
    wait "$1"
    rc=$?
    return 0
}

# --- examples/c-gateway ------------------------------------------------------

readme=examples/c-gateway/README.md
# The README's session output: the first unlabelled code block.
awk '/^```/ { if (inside) { if (bare) exit; inside = 0; next } inside = 1; bare = ($0 == "```"); next }
     inside && bare { print }' "$readme" >"$tmp/want"
grep -q '^{"type":"ring"' "$tmp/want"
ok $? "the c-gateway README shows the session's output" "$(cat "$tmp/want")"

provision() { # provision DIR: setup.jsonl into a fresh data directory, as the README does
    rm -rf "$1"
    "$sb" replay examples/c-gateway/setup.jsonl --data-dir "$1" >/dev/null 2>"$tmp/prov.err"
}
provision "$tmp/gw"
ok $? "setup.jsonl provisions a data directory" "$(cat "$tmp/prov.err")"

cgw=
if ! have cc || ! have pkg-config; then
    skip "the C gateway builds with the README's cc line" "no cc or pkg-config"
else
    # The README's line, with the output in $tmp.
    # shellcheck disable=SC2046 # pkg-config's flags, split
    cc -std=c11 $san -Iengine/include examples/c-gateway/gateway.c -o "$tmp/gateway" \
        "$B/libswitchboard.a" $(pkg-config --libs lua5.4 lmdb libsodium jansson) -lpthread -lm \
        2>"$tmp/cc.err"
    ok $? "the C gateway builds with the README's cc line" "$(cat "$tmp/cc.err")"
    [ -x "$tmp/gateway" ] && cgw=$tmp/gateway
fi
if [ -n "$cgw" ]; then
    run timeout 60 "$cgw" --data-dir "$tmp/gw" --policy-dir policies <examples/c-gateway/calls.jsonl
    printf '%s\n' "$out" >"$tmp/got"
    [ "$rc" -eq 0 ] && cmp -s "$tmp/want" "$tmp/got"
    ok $? "the C gateway prints exactly the README's lines, exit 0" \
        "$(shown; echo; diff "$tmp/want" "$tmp/got")"
fi

# A gateway waiting for input (nothing due: no timer to wake it) is sent
# SIGNAL after it has answered one event; it must exit 0 at once, as the
# README says, not when its input ends (the test holds the input open).
signal_check() { # signal_check NAME SIGNAL CMD...
    name=$1 sig=$2
    shift 2
    provision "$tmp/gw"
    rm -f "$tmp/fifo" "$tmp/sig.out"
    mkfifo "$tmp/fifo"
    "$@" --data-dir "$tmp/gw" --policy-dir policies <"$tmp/fifo" >"$tmp/sig.out" 2>&1 &
    pid=$!
    exec 3>"$tmp/fifo"
    echo '{"type":"hangup","call":"none"}' >&3
    if ! wait_for "$tmp/sig.out" '"error"'; then
        kill -KILL "$pid" 2>/dev/null
        exec 3>&-
        wait "$pid" 2>/dev/null
        ok 1 "$name answers an event" "$(cat "$tmp/sig.out")"
        return
    fi
    kill -"$sig" "$pid"
    wait_exit "$pid"
    st=$?
    exec 3>&-
    [ "$st" -eq 0 ] && [ "$rc" -eq 0 ]
    ok $? "$name exits 0 on SIG$sig while waiting for input" \
        "status $rc (137: still running 60 s after the signal, killed)
$(cat "$tmp/sig.out")"
}
if [ -n "$cgw" ]; then
    signal_check "the C gateway" TERM "$cgw"
    signal_check "the C gateway" INT "$cgw"
fi
if [ -n "$san" ]; then
    skip "the Python gateway on signals" "not under sanitizers (the plain build runs it)"
elif ! have python3; then
    skip "the Python gateway on signals" "no python3"
else
    export SWITCHBOARD_LIB="$B/libswitchboard.so"
    signal_check "the Python gateway" TERM python3 examples/python/gateway.py
    signal_check "the Python gateway" INT python3 examples/python/gateway.py
fi
if [ -n "$san" ]; then
    skip "the Go gateway on signals" "not under sanitizers (the plain build runs it)"
elif ! have go; then
    skip "the Go gateway on signals" "go not installed (Debian: golang-go)"
else
    # As bindings/go/go.t builds it: offline, the library under test first.
    cache=/tmp/switchboard-go-$(id -u)
    if (cd examples/go && GOCACHE="${GOCACHE:-$cache/cache}" GOPATH="$cache/path" GOPROXY=off \
        GOFLAGS=-buildvcs=false GO111MODULE=on CGO_ENABLED=1 GOTOOLCHAIN=local \
        CGO_LDFLAGS="-L$B" timeout 300 go build -o "$tmp/gateway-go" ./gateway) \
        >"$tmp/go.err" 2>&1; then
        signal_check "the Go gateway" TERM "$tmp/gateway-go"
        signal_check "the Go gateway" INT "$tmp/gateway-go"
    else
        ok 1 "the Go gateway builds" "$(cat "$tmp/go.err")"
    fi
fi

# The commands in the Python and Go gateways' header comments, run as written
# from the top of the tree (their /tmp paths moved into $tmp), make the
# gateway print the README's lines too.
header_run() { # header_run NAME COMMANDS-FILE
    name=$1
    sed -e "s|/tmp/sb-gw|$tmp/hdr/sb-gw|g; s|/tmp/gateway|$tmp/hdr/gateway|g" \
        -e "s|^build/switchboard |\"$sb\" |" "$2" >"$tmp/hdr.sh"
    rm -rf "$tmp/hdr"
    mkdir -p "$tmp/hdr"
    run timeout 300 sh "$tmp/hdr.sh"
    printf '%s\n' "$out" | grep '^{' >"$tmp/got" # the gateway's lines, not the replay's
    [ "$rc" -eq 0 ] && cmp -s "$tmp/want" "$tmp/got"
    ok $? "$name: its header's commands, run as written, print the README's lines" \
        "$(cat "$tmp/hdr.sh"; shown; echo; diff "$tmp/want" "$tmp/got")"
}
if [ -n "$san" ]; then
    skip "the Python gateway's header commands" "not under sanitizers (the plain build runs it)"
elif ! have python3; then
    skip "the Python gateway's header commands" "no python3"
else
    # The docstring's commands: from the replay line to the blank line after it.
    awk '/^    build\/switchboard / { on = 1 } on && /^$/ { exit } on { sub(/^    /, ""); print }' \
        examples/python/gateway.py | sed 's/\\\\$/\\/' >"$tmp/hdr.cmds"
    header_run "examples/python/gateway.py" "$tmp/hdr.cmds"
fi
if [ -n "$san" ]; then
    skip "the Go gateway's header commands" "not under sanitizers (the plain build runs it)"
elif ! have go; then
    skip "the Go gateway's header commands" "go not installed (Debian: golang-go)"
else
    # The package comment's commands: the tab-indented lines after the usage line.
    awk '/^\/\/\tusage:/ { on = 1; next } /^package / { exit } on && /^\/\/\t/ { sub(/^\/\/\t/, ""); print }' \
        examples/go/gateway/main.go >"$tmp/hdr.cmds"
    (
        cache=/tmp/switchboard-go-$(id -u)
        export GOCACHE="${GOCACHE:-$cache/cache}" GOPATH="$cache/path" GOPROXY=off \
            GOFLAGS=-buildvcs=false GO111MODULE=on CGO_ENABLED=1 GOTOOLCHAIN=local \
            CGO_LDFLAGS="-L$B"
        header_run "examples/go/gateway" "$tmp/hdr.cmds"
        echo "$n $failed" >"$tmp/counts"
    )
    read -r n failed <"$tmp/counts"
fi

# A tick that fails (every sync failing, through synctrace.so's
# SB_SYNCFAIL_EVERY=1, on a directory whose call's ring timeout is long past
# due) is reported on stderr and tried again a second later, as the
# gateways' header comments say: the gateway neither spins, printing error
# after error, nor dies. The k-th report comes k - 1 s at least after the
# start, so by the time they are counted there are at most 1 + the whole
# seconds since the start (one that spins prints thousands at once).
shim=$B/tests/crash/synctrace.so
{ cat examples/c-gateway/setup.jsonl
  echo '{"type": "offer", "call": "c9", "queue": "support", "caller": "+44 20 7946 0009"}'; } >"$tmp/tf.jsonl"
# wait_count FILE TEXT N: waits (at most 60 s) for N lines holding TEXT in FILE
wait_count() {
    i=0
    while [ "$(grep -cF -- "$2" "$1" 2>/dev/null)" -lt "$3" ] && [ $i -lt 600 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ "$(grep -cF -- "$2" "$1" 2>/dev/null)" -ge "$3" ]
}
tick_fail_check() { # tick_fail_check NAME CMD...
    name=$1
    shift
    rm -rf "$tmp/tf" "$tmp/fifo"
    "$sb" replay "$tmp/tf.jsonl" --data-dir "$tmp/tf" >/dev/null 2>&1
    mkfifo "$tmp/fifo"
    t0=$(date +%s)
    env SB_SYNCTRACE=/dev/null SB_SYNCFAIL_EVERY=1 LD_PRELOAD="$shim" \
        "$@" --data-dir "$tmp/tf" --policy-dir policies <"$tmp/fifo" >"$tmp/tf.out" 2>"$tmp/tf.err" &
    pid=$!
    exec 3>"$tmp/fifo"
    wait_count "$tmp/tf.err" "gateway: tick: " 3
    seen=$?
    kill -TERM "$pid" 2>/dev/null
    wait_exit "$pid"
    exec 3>&-
    count=$(grep -cF "gateway: tick: " "$tmp/tf.err")
    secs=$(($(date +%s) - t0))
    [ "$seen" -eq 0 ] && [ "$count" -le $((secs + 1)) ] && [ "$rc" -eq 0 ]
    ok $? "$name: a failing tick is reported and tried again a second later, not at once" \
        "$count reports in $secs s, status $rc
--- stderr (head)
$(head -5 "$tmp/tf.err")
--- stdout (head)
$(head -5 "$tmp/tf.out")"
}
if [ -n "$san" ]; then
    skip "the gateways on a failing tick" "not under sanitizers (the shim is preloaded)"
elif [ ! -f "$shim" ]; then
    skip "the gateways on a failing tick" "no $shim (run make tests)"
else
    [ -n "$cgw" ] && tick_fail_check "the C gateway" "$cgw"
    have python3 && tick_fail_check "the Python gateway" python3 examples/python/gateway.py
    [ -x "$tmp/gateway-go" ] && tick_fail_check "the Go gateway" "$tmp/gateway-go"
fi

# An offer whose sync fails after its commit stands, and its ring action is
# in the result beside the error (switchboard.h, sb_submit; the Python
# binding's error's .actions): the C and Python gateways print the error,
# then the ring. Syncs fail from the Nth on, N = 0..6, so
# that one run fails the offer's commit (nothing made, no ring printed) and
# another only the sync after it.
sync_fail_check() { # sync_fail_check NAME CMD...
    name=$1
    shift
    bad='' synced=0
    for after in 0 1 2 3 4 5 6; do
        provision "$tmp/sf"
        printf '%s\n' '{"type":"offer","call":"c9","queue":"support","caller":"+442079460009"}' |
            env SB_SYNCTRACE=/dev/null SB_SYNCFAIL_EVERY=1 SB_SYNCFAIL_AFTER=$after LD_PRELOAD="$shim" \
                timeout 60 "$@" --data-dir "$tmp/sf" --policy-dir policies >"$tmp/sf.out" 2>/dev/null
        first=$(sed -n 1p "$tmp/sf.out") second=$(sed -n 2p "$tmp/sf.out")
        case $first in
        *'"code":"SB_ESTORE","message":"sync:'*)
            synced=$((synced + 1))
            has "$second" '{"type":"ring","account":"acme","call":"c9","agent":"alice"' ||
                bad="$bad; after $after: $(cat "$tmp/sf.out")" ;;
        *'"code":"SB_ESTORE"'*)
            [ -z "$second" ] || bad="$bad; after $after, a failed commit: $(cat "$tmp/sf.out")" ;;
        esac
    done
    [ "$synced" -gt 0 ] && [ -z "$bad" ]
    ok $? "$name prints the ring of an offer whose sync failed after its commit" \
        "runs whose sync failed after the commit: $synced$bad"
}
if [ -n "$san" ] || [ ! -f "$shim" ]; then
    skip "the gateways on an offer whose sync fails" "no shim, or sanitizers"
else
    [ -n "$cgw" ] && sync_fail_check "the C gateway" "$cgw"
    have python3 && sync_fail_check "the Python gateway" python3 examples/python/gateway.py
    [ -x "$tmp/gateway-go" ] && sync_fail_check "the Go gateway" "$tmp/gateway-go"
fi

# A line longer than 16 MiB (no gateway limits a line: the engine refuses
# what it must), then an event: each gateway answers both, as the C one does,
# and reads on.
{ printf '{"type":"hangup","call":"'
  head -c $((17 * 1024 * 1024)) /dev/zero | tr '\0' x
  printf '"}\n{"type":"hangup","call":"c1"}\n'; } >"$tmp/long.jsonl"
long_check() { # long_check NAME CMD...
    name=$1
    shift
    provision "$tmp/gw"
    run timeout 60 "$@" --data-dir "$tmp/gw" --policy-dir policies <"$tmp/long.jsonl"
    printf '%s\n' "$out" >"$tmp/long.got"
    [ "$rc" -eq 0 ] && cmp -s "$tmp/long.want" "$tmp/long.got"
    ok $? "$name answers a line longer than 16 MiB and the event after it" \
        "$(shown | cut -c1-300; echo; diff "$tmp/long.want" "$tmp/long.got" | cut -c1-300)"
}
cat >"$tmp/long.want" <<'EOF'
{"error":{"code":"SB_EINVAL","message":"'call' must be 1..128 characters of A-Z a-z 0-9 . _ : @ + -","field":"call"}}
{"error":{"code":"SB_ENOTFOUND","message":"no such call 'c1'","field":"call"}}
EOF
[ -n "$cgw" ] && long_check "the C gateway" "$cgw"
[ -z "$san" ] && have python3 && long_check "the Python gateway" python3 examples/python/gateway.py
[ -x "$tmp/gateway-go" ] && long_check "the Go gateway" "$tmp/gateway-go"

# Input that cannot be read (standard input a directory: read fails with
# EISDIR) is an error, exit 1, not an end of input with exit 0; so is a line
# the C gateway has no memory left to hold (under a 200 MB address-space
# limit, a line of 256 MB).
provision "$tmp/gw"
for g in "the C gateway:$cgw" "the Go gateway:$tmp/gateway-go"; do
    name=${g%%:*} bin=${g#*:}
    if [ -z "$bin" ] || [ ! -x "$bin" ]; then continue; fi
    run timeout 60 "$bin" --data-dir "$tmp/gw" --policy-dir policies <"$tmp"
    [ "$rc" -eq 1 ] && has "$err" "gateway: reading input: "
    ok $? "$name: input that cannot be read is an error, exit 1" "$(shown)"
done
# --help: the usage on stdout, exit 0, from each gateway (a bad flag is the
# usage on stderr, exit 2).
if [ -n "$cgw" ]; then
    run "$cgw" --help
    [ "$rc" -eq 0 ] && has "$out" "usage: gateway --data-dir DIR" && [ -z "$err" ]
    ok $? "the C gateway --help: its usage on stdout, exit 0" "$(shown)"
    run "$cgw" --bogus
    [ "$rc" -eq 2 ] && has "$err" "usage: gateway --data-dir DIR" && [ -z "$out" ]
    ok $? "the C gateway with a bad flag: its usage on stderr, exit 2" "$(shown)"
fi
# An engine that cannot open (a policy directory that is not there): one
# line, the same from each gateway, and exit 1 (the Python one printed a
# traceback, the Go one the code before the message).
for g in "the C gateway:$cgw" "the Go gateway:$tmp/gateway-go" "the Python gateway:python3 examples/python/gateway.py"; do
    name=${g%%:*} cmd=${g#*:}
    case $name in *Python*) [ -z "$san" ] && have python3 || continue ;; *) [ -n "$cmd" ] && [ -x "$cmd" ] || continue ;; esac
    # shellcheck disable=SC2086 # the Python gateway's command is two words
    run timeout 60 $cmd --data-dir "$tmp/gw-open" --policy-dir "$tmp/no-such-dir" </dev/null
    [ "$rc" -eq 1 ] && [ -z "$out" ] &&
        [ "$err" = "gateway: policy directory $tmp/no-such-dir: No such file or directory" ]
    ok $? "$name: an engine that cannot open is one line on stderr, the same from each, exit 1" "$(shown)"
done
# shellcheck disable=SC3045 # ulimit -v: dash, bash and busybox sh have it
if [ -n "$cgw" ] && [ -z "$san" ] && (ulimit -v 200000) 2>/dev/null; then
    rc=$(
        ulimit -v 200000
        head -c $((256 * 1024 * 1024)) /dev/zero |
            "$cgw" --data-dir "$tmp/gw" --policy-dir policies >/dev/null 2>"$tmp/oom.err"
        echo $?
    )
    [ "$rc" -eq 1 ] && grep -q "^gateway: out of memory for a line of" "$tmp/oom.err"
    ok $? "the C gateway: a line it has no memory for is an error, exit 1" \
        "status $rc; $(cat "$tmp/oom.err")"
fi

# --- examples/replay/first-calls.jsonl ---------------------------------------

# Its comment: Alice (free longest) gets c1, Bob c2; c3 waits, and c4
# (priority 50), arriving later, goes ahead of it when Alice is free again
# after her call and 5 s of wrap-up; c3's caller gives up before anyone is free.
run "$sb" replay examples/replay/first-calls.jsonl
check 0 "first-calls.jsonl replays cleanly" err "0 errors, 0 policy failures"
printf '%s\n' "$out" | grep -E '^ +(ring|c[0-9] waits|c[0-9] ended: abandoned)|wrap-up ended' |
    sed 's/ on .*//; s/^ *//' >"$tmp/decisions"
cat >"$tmp/told" <<'EOF'
ring alice for c1
ring bob for c2
c3 waits in support
c4 waits in support
agent alice is available: wrap-up ended
ring alice for c4
c3 ended: abandoned
agent bob is available: wrap-up ended
agent alice is available: wrap-up ended
EOF
cmp -s "$tmp/told" "$tmp/decisions"
ok $? "first-calls.jsonl decides as its comment says" "$(diff "$tmp/told" "$tmp/decisions")"

# --- examples/kamailio -------------------------------------------------------

K=examples/kamailio
for p in "$K"/policies/*.lua; do
    run "$sb" policy check "$p"
    check 0 "policy check $p" out "ok"
    run "$sb" policy test "$p"
    check 0 "policy test $p (its cases)" out " 0 failed"
done

if ! have luacheck; then
    skip "luacheck $K/policies" "luacheck not installed (Debian: lua-check)"
else
    run luacheck --no-color --config policies/.luacheckrc $K/policies
    ok "$rc" "luacheck $K/policies (with the stock policies' settings)" "$(shown)"
    # The Kamailio script and the control script, as LuaJIT runs them: KSR
    # is Kamailio's, the ksr_* functions are the routes kamailio.cfg names.
    run luacheck --no-color --no-config --std luajit --read-globals KSR \
        --globals ksr_request_route ksr_switchboard_reply ksr_switchboard_failure \
        ksr_switchboard_tick -- $K/route.lua $K/sbctl.lua
    ok "$rc" "luacheck $K/route.lua $K/sbctl.lua" "$(shown)"
fi

# route.lua through a stand-in for Kamailio's KSR: an INVITE to support from
# +442079460001 with X-Language: de, carol's 200, the BYE; then tick. What it
# did to the request is printed, one line each.
cat >"$tmp/ksr.lua" <<'EOF'
local route = arg[1]
local pv, avp, did = {}, {}, {}
local function say(fmt, ...) did[#did + 1] = string.format(fmt, ...) end
local method = "INVITE"
local function avp_name(k) return k:match("^%$avp%((.-)%)$") end
KSR = {
  pv = {
    get = function(k) local a = avp_name(k) if a then return avp[a] end return pv[k] end,
    sets = function(k, v)
      local a = avp_name(k)
      if a then avp[a] = v else pv[k] = v end
      if k == "$ru" then say("request uri %s", v) end
    end,
  },
  sl = { sl_send_reply = function(c, r) say("reply %d %s", c, r) end,
         sl_reply_error = function() say("reply error") end },
  tm = { t_set_fr = function(inv) say("fr_inv_timer %d", inv) end,
         t_on_reply = function(r) say("on reply %s", r) end,
         t_on_failure = function(r) say("on failure %s", r) end,
         t_relay = function() say("relay %s", method) return 1 end,
         t_check_trans = function() return -1 end,
         t_send_reply = function(c, r) say("t_reply %d %s", c, r) end,
         t_is_canceled = function() return -1 end },
  tmx = { t_precheck_trans = function() return -1 end },
  rr = { record_route = function() say("record_route") end,
         loose_route = function() return 1 end },
  hdr = { append = function(h) say("header %s", (h:gsub("\r\n$", ""))) end },
  maxfwd = { process_maxfwd = function() return 1 end },
  siputils = { has_totag = function() return method == "BYE" and 1 or -1 end },
  corex = { append_branch_uri = function(u) say("branch %s", u) end },
  is_CANCEL = function() return method == "CANCEL" end,
  is_ACK = function() return method == "ACK" end,
  is_BYE = function() return method == "BYE" end,
  is_INVITE = function() return method == "INVITE" end,
  err = function(m) io.stderr:write("KSR.err: ", m) end,
  warn = function(m) io.stderr:write("KSR.warn: ", m) end,
  info = function(m) io.stderr:write("KSR.info: ", m) end,
}
pv["$pp"], pv["$ci"], pv["$fU"], pv["$rU"] = 1, "call-1@127.0.0.1", "+442079460001", "support"
pv["$hdr(X-Language)"] = "de"
dofile(route)
for _, f in ipairs{ "ksr_request_route", "ksr_switchboard_reply", "ksr_switchboard_failure",
                    "ksr_switchboard_tick" } do
  assert(type(_G[f]) == "function", f .. " is not defined by " .. route)
end
ksr_request_route()
pv["$rs"], pv["$T_branch_idx"] = "200", "0"
ksr_switchboard_reply()
method = "BYE"
ksr_request_route()
ksr_switchboard_tick()
if arg[2] == "bye-again" then ksr_request_route() end -- a BYE for the call ended
print(table.concat(did, "\n"))
EOF
cat >"$tmp/ksr.want" <<'EOF'
record_route
header X-Switchboard-Call: call-1@127.0.0.1
request uri sip:carol@127.0.0.1:5073
fr_inv_timer 14500
on reply ksr_switchboard_reply
on failure ksr_switchboard_failure
relay INVITE
relay BYE
EOF
for host in "luajit 5.1" "lua5.4 5.4"; do
    # shellcheck disable=SC2086 # "HOST ABI"
    set -- $host
    lua=$1 abi=$2
    mod="$B/bindings/lua/$abi/?.so"
    if [ -n "$san" ]; then
        skip "$K under $lua" "not under sanitizers (the plain build runs it)"
        continue
    elif ! have "$lua"; then
        skip "$K under $lua" "no $lua"
        continue
    elif [ ! -f "$B/bindings/lua/$abi/switchboard.so" ]; then
        skip "$K under $lua" "no $B/bindings/lua/$abi/switchboard.so (run make)"
        continue
    fi
    D=$tmp/kam-$abi
    run env LUA_CPATH="$mod;;" timeout 60 "$lua" $K/sbctl.lua "$D" $K/policies \
        provision $K/contact-centre.json
    check 0 "$lua: sbctl.lua provisions contact-centre.json" out \
        "provisioned account acme: 3 agents, 1 queue"
    run env LUA_CPATH="$mod;;" SWITCHBOARD_DATA_DIR="$D" SWITCHBOARD_POLICY_DIR="$PWD/$K/policies" \
        timeout 60 "$lua" "$tmp/ksr.lua" $K/route.lua
    printf '%s\n' "$out" >"$tmp/ksr.got"
    [ "$rc" -eq 0 ] && [ -z "$err" ] && cmp -s "$tmp/ksr.want" "$tmp/ksr.got"
    ok $? "$lua: route.lua loads, rings carol at sip:carol@127.0.0.1:5073 for 15 s less 0.5" \
        "$(shown; echo; diff "$tmp/ksr.want" "$tmp/ksr.got")"
    # A BYE the engine refuses (the call has ended) is logged with the
    # engine's message and code, not "nil (nil)".
    run env LUA_CPATH="$mod;;" SWITCHBOARD_DATA_DIR="$D" SWITCHBOARD_POLICY_DIR="$PWD/$K/policies" \
        timeout 60 "$lua" "$tmp/ksr.lua" $K/route.lua bye-again
    has "$err" "KSR.warn: switchboard: hangup: call 'call-1@127.0.0.1' has already ended (-32003)"
    ok $? "$lua: route.lua logs a refused hangup with the engine's message and code" "$(shown)"
    run env LUA_CPATH="$mod;;" timeout 60 "$lua" $K/sbctl.lua "$D" $K/policies \
        calls acme call-1@127.0.0.1
    has "$out" '"agent":"carol"' && has "$out" '"outcome":"answered"' &&
        has "$out" '"state":"ended"'
    ok $? "$lua: sbctl.lua calls: carol answered it, and it ended" "$(shown)"
    # Provisioning files that are wrong: refused with a message naming what
    # is wrong, exit 1, and nothing provisioned (no account made).
    for bad in '{"account":{"id":"beta"},"agents":{"id":"a","devices":{"softphone":"sip:a@x"}}}|"agents" must be an array' \
        '{"account":{"id":"beta"},"queues":["support"]}|"queues" must be an array' \
        '{"account":{"name":"Beta"}}|sbctl: account: '; do
        printf '%s\n' "${bad%%|*}" >"$tmp/bad.json"
        run env LUA_CPATH="$mod;;" timeout 60 "$lua" $K/sbctl.lua "$D" $K/policies \
            provision "$tmp/bad.json"
        st=$rc
        out1=$out err1=$err
        run env LUA_CPATH="$mod;;" timeout 60 "$lua" $K/sbctl.lua "$D" $K/policies agents beta
        [ "$st" -eq 1 ] && has "$err1" "${bad#*|}" && ! has "$err1" traceback && [ "$rc" -eq 1 ]
        ok $? "$lua: sbctl.lua provision ${bad%%|*}: refused, exit 1, nothing made" \
            "status $st, stdout: $out1; stderr: $err1; then agents beta: $(shown)"
    done
done

if ! have kamailio; then
    skip "kamailio -c $K/kamailio.cfg" "kamailio is not installed (Debian: kamailio)"
else
    run env SB_ROUTE_LUA="$PWD/$K/route.lua" timeout 60 kamailio -c -f $K/kamailio.cfg
    check 0 "kamailio -c $K/kamailio.cfg" err "config file ok"
fi

# Where `make install` (PREFIX=/usr/local) puts the 5.1 module, from make's own
# plan; every LUA_CPATH under /usr/local that the example's files name must be it.
lua51dir=$(install_plan install-lua PREFIX=/usr/local DESTDIR= 2>/dev/null |
    sed -n 's|^install .*/5\.1/switchboard\.so \(/[^ ]*\)$|\1|p' | sed 's|/$||')
if [ -z "$lua51dir" ]; then
    skip "the module path in $K's docs" "make -n install-lua names no 5.1 module"
else
    bad=$(grep -hos "LUA_CPATH=['\"]*/usr/local[^?]*" $K/* | sed "s/^LUA_CPATH=['\"]*//; s|/$||" |
        grep -vxF "$lua51dir")
    [ -z "$bad" ]
    ok $? "every /usr/local LUA_CPATH in $K is where make install puts the module ($lua51dir)" \
        "named: $bad"
fi

# --- examples/switchboard.conf -----------------------------------------------

# serve_check NAME ARGS...: `switchboard ARGS` (run in $tmp/cwd) starts the
# daemon (it logs "listening"), which reloads on SIGHUP and exits 0 on SIGTERM.
serve_check() {
    name=$1
    shift
    rm -f "$tmp/serve.log"
    (cd "$tmp/cwd" && exec "$sb" "$@") >/dev/null 2>"$tmp/serve.log" &
    pid=$!
    if ! wait_for "$tmp/serve.log" 'msg="listening"'; then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        ok 1 "$name: the daemon starts" "$(cat "$tmp/serve.log")"
        return
    fi
    ok 0 "$name: the daemon starts"
    kill -HUP "$pid"
    wait_for "$tmp/serve.log" 'reload ok'
    ok $? "$name: SIGHUP reloads the policies" "$(cat "$tmp/serve.log")"
    kill -TERM "$pid"
    wait_exit "$pid"
    [ "$rc" -eq 0 ]
    ok $? "$name: SIGTERM stops it, exit 0" "status $rc
$(cat "$tmp/serve.log")"
}
mkdir -p "$tmp/cwd"
cp -R policies "$tmp/cwd/policies"
# Every "# key = value" line uncommented, its paths moved into $tmp.
sed -e 's|^# \([a-z_]*\) = |\1 = |' \
    -e "s|^\\(key_file\\) = .*|\\1 = $tmp/conf/master.key|" \
    -e "s|^\\(admin_token_file\\) = .*|\\1 = $tmp/conf/admin.token|" \
    examples/switchboard.conf >"$tmp/all.conf"
mkdir -p "$tmp/conf"
keys=$(sed -n 's/^\([a-z_]*\) = .*/\1/p' "$tmp/all.conf" | sort)
grep -q '^key_file = ' "$tmp/all.conf" && grep -q '^policy_public_key = ' "$tmp/all.conf"
ok $? "the commented keys of switchboard.conf are found" "$keys"
serve_check "switchboard.conf with every key it shows" serve --config "$tmp/all.conf" \
    --listen 127.0.0.1:0
[ -f "$tmp/conf/admin.token" ] && [ -f "$tmp/conf/master.key" ]
ok $? "... key_file and admin_token_file are where it says"

# --- examples/systemd/switchboard.service ------------------------------------

unit=examples/systemd/switchboard.service
exec_start=$(sed -n 's/^ExecStart=//p' $unit)
bin=${exec_start%% *}
args=${exec_start#* }
installed=$(install_plan install PREFIX=/usr/local DESTDIR= 2>/dev/null |
    sed -n 's|^install -m 755 .*/switchboard \(/[^ ]*\)$|\1|p' | sed 's|/$||')
[ -n "$installed" ] && [ "$bin" = "$installed/switchboard" ]
ok $? "ExecStart runs the command make install puts in $installed" "ExecStart=$exec_start"
for m in $(sed -n 's/^Documentation=//p' $unit); do
    page=${m#man:}
    file=$(printf '%s' "$page" | sed 's/^\(.*\)(\([0-9]\))$/\1.\2/')
    section=$(printf '%s' "$page" | sed 's/.*(\([0-9]\))$/\1/')
    install_plan install PREFIX=/usr/local DESTDIR= 2>/dev/null |
        grep -q "install .*$file .*/man$section/\$"
    ok $? "Documentation=$m: make install installs it"
done

# The header's set-up: switchboard.conf as shipped with data_dir and
# policy_dir set as it says. Under ProtectSystem=strict the data directory
# must be the StateDirectory, and the policies (read-only) under /etc.
sd_conf=$(printf '%s' "$args" | sed -n 's/.*--config \([^ ]*\).*/\1/p')
[ -n "$sd_conf" ]
ok $? "ExecStart passes --config" "$args"
state=/var/lib/$(sed -n 's/^StateDirectory=//p' $unit)
hdr_data=$(sed -n 's/^#.*data_dir = \(.*\)$/\1/p' $unit)
hdr_pol=$(sed -n 's/^#.*policy_dir = \(.*\)$/\1/p' $unit)
[ "$hdr_data" = "$state" ] && [ "$(sed -n 's/^WorkingDirectory=//p' $unit)" = "$state" ]
ok $? "the header's data_dir is the StateDirectory, $state" "data_dir = $hdr_data"
grep -q "^#.*cp -r policies $hdr_pol\$" $unit && grep -q "^#.*install .*examples/switchboard.conf ${sd_conf:-none}\$" $unit
ok $? "the header puts the policies in $hdr_pol and the configuration at ExecStart's --config"
# The same, in $tmp, started with the unit's own arguments.
mkdir -p "$tmp/etc/policies" "$tmp/state"
cp -R policies/. "$tmp/etc/policies/"
sed -e "s|^data_dir = .*|data_dir = $tmp/state|" \
    -e "s|^policy_dir = .*|policy_dir = $tmp/etc/policies|" \
    -e "s|^listen = .*|listen = 127.0.0.1:0|" examples/switchboard.conf >"$tmp/etc/switchboard.conf"
# shellcheck disable=SC2046 # the unit's arguments, split as systemd splits them
serve_check "the unit's ExecStart arguments" \
    $(printf '%s' "$args" | sed "s|--config $sd_conf|--config $tmp/etc/switchboard.conf|")
[ -f "$tmp/state/admin.token" ]
ok $? "... the admin token is made in the data directory, as the header says"

# The header's reason to leave key_file unset: a key file that is root's
# (mode 0600, as an administrator would make it in /etc/switchboard) is
# refused to a daemon running as another user (as the unit's DynamicUser),
# naming the key file. Needs root, to start the daemon as nobody.
if [ "$(id -u)" -ne 0 ] || ! have setpriv; then
    skip "a root-owned key_file refused to the service's user" "not root, or no setpriv"
elif ! setpriv --reuid=65534 --regid=65534 --clear-groups "$sb" --version >/dev/null 2>&1; then
    skip "a root-owned key_file refused to the service's user" "$sb not runnable by nobody"
else
    mkdir -p "$tmp/du/etc" "$tmp/du/state"
    head -c 32 /dev/urandom >"$tmp/du/etc/master.key"
    chmod 600 "$tmp/du/etc/master.key"
    chown 65534 "$tmp/du/state"
    chmod 700 "$tmp/du/state"
    chmod 755 "$tmp" "$tmp/du" "$tmp/du/etc"
    sed -e "s|^data_dir = .*|data_dir = $tmp/du/state|" \
        -e "s|^policy_dir = .*|policy_dir = $tmp/etc/policies|" \
        -e "s|^listen = .*|listen = 127.0.0.1:0|" \
        -e "s|^# key_file = .*|key_file = $tmp/du/etc/master.key|" \
        examples/switchboard.conf >"$tmp/du/etc/switchboard.conf"
    run timeout 30 setpriv --reuid=65534 --regid=65534 --clear-groups \
        "$sb" serve --config "$tmp/du/etc/switchboard.conf"
    [ "$rc" -eq 1 ] && has "$err" "master key $tmp/du/etc/master.key: Permission denied"
    ok $? "a root-owned key_file is refused to the service's user, as the unit's header says" \
        "$(shown)"

    # The header's restore, as root into the service's directory: the files
    # copied in stay root's, and the service's user starts on them once they
    # are chown'd to the directory's owner.
    mkdir -p "$tmp/du/rs"
    chown 65534 "$tmp/du/rs"
    chmod 700 "$tmp/du/rs"
    run "$sb" backup --data-dir "$tmp/state" "$tmp/du/bk"
    cp "$tmp/du/bk/data.mdb" "$tmp/du/bk/data.keys" "$tmp/state/master.key" "$tmp/du/rs/"
    chmod 600 "$tmp/du/rs"/*
    sed -e "s|^data_dir = .*|data_dir = $tmp/du/rs|" \
        -e "s|^policy_dir = .*|policy_dir = $tmp/etc/policies|" \
        -e "s|^listen = .*|listen = 127.0.0.1:0|" \
        examples/switchboard.conf >"$tmp/du/etc/restored.conf"
    run timeout 30 setpriv --reuid=65534 --regid=65534 --clear-groups \
        "$sb" serve --config "$tmp/du/etc/restored.conf"
    [ "$rc" -eq 1 ] && has "$err" "Permission denied"
    ok $? "a restore copied in as root: the service's user cannot start on it" "$(shown)"
    chown --reference="$tmp/du/rs" "$tmp/du/rs"/*
    chmod 600 "$tmp/du/rs"/*
    rm -f "$tmp/du/restored.log"
    setpriv --reuid=65534 --regid=65534 --clear-groups \
        "$sb" serve --config "$tmp/du/etc/restored.conf" 2>"$tmp/du/restored.log" &
    pid=$!
    wait_for "$tmp/du/restored.log" 'msg="listening"'
    ok $? "... and starts once they are chown'd as the unit's header says" \
        "$(cat "$tmp/du/restored.log")"
    kill -TERM "$pid"
    wait_exit "$pid"
fi

if ! have systemd-analyze; then
    skip "systemd-analyze verify $unit" "no systemd-analyze (Debian: systemd)"
else
    # A copy of the built command in place of the installed one (verify
    # checks it is executable); man pages not looked up.
    mkdir -p "$tmp/bin"
    cp "$sb" "$tmp/bin/switchboard"
    sed "s|^ExecStart=$bin |ExecStart=$tmp/bin/switchboard |" $unit >"$tmp/switchboard.service"
    run timeout 60 systemd-analyze verify --man=no "$tmp/switchboard.service"
    [ "$rc" -eq 0 ] && [ -z "$err" ]
    ok $? "systemd-analyze verify $unit" "$(shown)"
fi

done_testing
