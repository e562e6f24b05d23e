#!/bin/sh
# HTTP call-cycle benchmark (issue 4, "Performance"): `switchboard serve` under
# full call cycles — POST /v1/calls (offer; the ring names the agent) →
# POST /v1/calls/{id}/ring_result answered → POST /v1/calls/{id}/hangup — on a
# 50-agent queue routed by the shared longest-idle policy, sync=group,
# keep-alive; then the same cycle as Redis Lua scripts, side by side.
#
# Prints requests/s, call cycles/s and p50/p99 (closed loop: each connection
# sends its next request when the last answer is in); p99 at half that request
# rate (fixed schedule, latency from the scheduled send time, so a stall is not
# hidden); Redis's cycles/s; the ratio; and each target, met or missed.
#
# Fair comparison:
#  - same machine, same run, same load generator (tests/bench/http/sbload.c:
#    one thread, epoll, keep-alive, TCP_NODELAY), same connection count (each
#    with one request in flight), same loopback, same warm-up and duration;
#  - same work per cycle: three events, each one round trip and one atomic
#    transaction — offer picks the longest-idle available agent and marks it
#    reserved, answered marks it on the call, hangup frees it with a new
#    idle-since (tests/bench/http/redis/*.lua, loaded with SCRIPT LOAD and
#    called with EVALSHA, one per event);
#  - same durability promise: neither answers before the change is on disk.
#    Redis runs `appendonly yes` + `appendfsync always` (the AOF is written and
#    fsynced before replies go out, once per event-loop iteration); Switchboard
#    runs sync=group (one commit per batch of requests, which syncs the pages
#    it wrote, then one sb_sync for the page that points at them, responses
#    released after it). Both data directories are in the same temp dir, same disk;
#  - Redis gets every other benefit: no RDB snapshots (`save ""`), no AOF
#    rewrite (no fork mid-run), authentication once per connection (AUTH)
#    where Switchboard checks the API key on every request, no JSON, no HTTP,
#    no policy VM, no decision trace.
#
# Environment: SB_BUILD (build dir, default build), SB_BENCH_HTTP_SECONDS
# (per phase, default 10, first second is warm-up), SB_BENCH_HTTP_CONNS
# (default 32; at most 50 so every offer finds a free agent),
# SB_BENCH_HTTP_BASELINE (another `switchboard` binary, e.g. one built from an
# earlier commit: its phases run too, before this build's, on a data
# directory of its own, and the summary sets the two side by side).
# Everything is bounded in time; processes and temp dirs are removed on any exit.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=$(cd "${SB_BUILD:-build}" && pwd)
SECS=${SB_BENCH_HTTP_SECONDS:-10}
CONNS=${SB_BENCH_HTTP_CONNS:-32}
HERE=$ROOT/tests/bench/http
LOAD=$B/tests/sbload
PHASE_LIMIT=$((SECS + 20)) # seconds: run + drain + slack
BASELINE=${SB_BENCH_HTTP_BASELINE:-}
if [ -n "$BASELINE" ] && [ ! -x "$BASELINE" ]; then
    echo "http bench: SB_BENCH_HTTP_BASELINE is not an executable: $BASELINE" >&2
    exit 2
fi
if [ "$CONNS" -lt 1 ] || [ "$CONNS" -gt 50 ] || [ "$SECS" -lt 2 ]; then
    echo "http bench: SB_BENCH_HTTP_CONNS must be 1..50, SB_BENCH_HTTP_SECONDS at least 2" >&2
    exit 2
fi

echo "== HTTP call cycle: switchboard serve vs Redis Lua (issue: the daemon) =="

mkdir -p "$B/tests"
cc -O2 -o "$LOAD" "$HERE/sbload.c"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-http-bench.XXXXXX")
SB_PID=""
REDIS_PID=""
LOAD_PID=""
stop_pid() { # pid: TERM, up to 5 s, then KILL
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null || return 0
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
cleanup() {
    stop_pid "$LOAD_PID"
    LOAD_PID=""
    stop_pid "$SB_PID"
    SB_PID=""
    stop_pid "$REDIS_PID"
    REDIS_PID=""
    rm -rf "$TMP"
}
trap cleanup EXIT
DISK_DEV=$(basename "$(df --output=source "$TMP" 2>/dev/null | tail -n 1)")
trap 'exit 130' INT TERM HUP

fail() {
    echo "http bench: $*" >&2
    for f in "$TMP/switchboard.log" "$TMP/redis.log"; do
        [ -s "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
    done
    exit 1
}

# RESULT line field: field NAME < file
field() { sed -n "s/^RESULT.* $1=\([^ ]*\).*/\1/p"; }

# CPU seconds (user+system) a process has used so far.
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"; }
# Bytes written so far by the disk that holds $TMP, machine-wide (0 if
# unknown). Not the process's write_bytes in /proc: that counts every page
# cache folio a write dirties at the folio's full size, and with the large
# folios of recent kernels it said 29 KiB per request where the disk wrote 7.
disk_bytes() {
    awk '{ printf "%.0f\n", $7 * 512 }' "/sys/class/block/$DISK_DEV/stat" 2>/dev/null || echo 0
}
# Microseconds some task waited for a CPU / for I/O, machine-wide (PSI; 0 if none).
psi_us() { sed -n 's/^some .*total=\([0-9]*\).*/\1/p' "/proc/pressure/$1" 2>/dev/null || echo 0; }

# run_load LABEL SERVER_PID ARGS...: run sbload (bounded), print its line and
# where the CPU went; keep its RESULT line in $TMP/LABEL.result.
run_load() {
    label=$1
    spid=$2
    shift 2
    s0=$(cpu_secs "$spid")
    d0=$(disk_bytes)
    w0=$(psi_us cpu)
    o0=$(psi_us io)
    # In the background so that a signal interrupts the wait at once.
    timeout -k 5 "$PHASE_LIMIT" "$LOAD" "$@" --label "$label" --duration "$SECS" \
        --warmup 1 --conns "$CONNS" >"$TMP/load.out" 2>"$TMP/load.err" &
    LOAD_PID=$!
    rc=0
    wait "$LOAD_PID" || rc=$?
    LOAD_PID=""
    if [ "$rc" -ne 0 ]; then
        cat "$TMP/load.out" "$TMP/load.err" >&2
        fail "load generator failed ($label)"
    fi
    s1=$(cpu_secs "$spid")
    d1=$(disk_bytes)
    w1=$(psi_us cpu)
    o1=$(psi_us io)
    grep -v '^RESULT' "$TMP/load.out"
    grep '^RESULT' "$TMP/load.out" >"$TMP/$label.result"
    awk -v s0="$s0" -v s1="$s1" -v w0="${w0:-0}" -v w1="${w1:-0}" \
        -v o0="${o0:-0}" -v o1="${o1:-0}" -v d0="${d0:-0}" -v d1="${d1:-0}" \
        -v label="$label" -v disturbed="$TMP/disturbed" '
        { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
        END { n = v["all"]; t = v["gen_wall"]; if (n < 1 || t <= 0) exit
              psi = (w1 - w0) / (t * 1e6) * 100
              if (psi > 20) printf "%s %.0f\n", label, psi >> disturbed
              printf "    cpu per request: server %.1f us (%.0f%% of a core), generator %.1f us; disk written %.1f KiB per request (the whole disk)\n    machine: some task waiting for a cpu %.0f%% of the time, for i/o %.0f%% (PSI)\n",
                  (s1 - s0) / n * 1e6, (s1 - s0) / t * 100, v["gen_cpu"] / n * 1e6, (d1 - d0) / n / 1024, (w1 - w0) / (t * 1e6) * 100, (o1 - o0) / (t * 1e6) * 100 }' \
        "$TMP/$label.result"
}

# Other work on the machine skews every figure: wait (at most 30 s) until the
# CPUs have been quiet for a while (PSI: under 10% of the last 10 s with some
# task waiting for a CPU), and flag phases that were disturbed anyway.
psi_avg10() { sed -n 's/^some avg10=\([0-9.]*\).*/\1/p' /proc/pressure/cpu 2>/dev/null; }
i=0
while [ $i -lt 30 ] && [ -n "$(psi_avg10)" ] &&
    awk -v p="$(psi_avg10)" 'BEGIN { exit !(p >= 10) }'; do
    [ $i -eq 0 ] && echo "waiting up to 30 s for other work on this machine to settle (cpu pressure $(psi_avg10)%)"
    sleep 1
    i=$((i + 1))
done

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) before the run;" \
    "$CONNS connections, ${SECS} s per phase (1 s warm-up)"

# ---------------------------------------------------------------- switchboard
# run_switchboard TAG BINARY: both phases against BINARY on a fresh data
# directory; sets TAG_RPS, TAG_CPS, TAG_P50, TAG_P99, TAG_HALF, TAG_HRPS,
# TAG_HP99.
run_switchboard() {
    tag=$1
    bin=$2
    rm -rf "$TMP/sb"
    mkdir -p "$TMP/sb"
    printf 'listen = 127.0.0.1:0\ndata_dir = %s\npolicy_dir = %s\nsync = group\n' \
        "$TMP/sb/data" "$ROOT/policies" >"$TMP/switchboard.conf"
    "$bin" serve --config "$TMP/switchboard.conf" </dev/null >"$TMP/switchboard.out" \
        2>"$TMP/switchboard.log" &
    SB_PID=$!
    i=0
    until grep -q 'msg="listening"' "$TMP/switchboard.log" 2>/dev/null; do
        kill -0 "$SB_PID" 2>/dev/null || fail "switchboard serve exited"
        [ $i -lt 200 ] || fail "switchboard serve did not start in 20 s"
        sleep 0.1
        i=$((i + 1))
    done
    SB_PORT=$(sed -n 's/.*msg="listening" addr=[^ ]*:\([0-9]*\) .*/\1/p' "$TMP/switchboard.log")
    [ -n "$SB_PORT" ] || fail "no port in the listening line"
    AUTH=$(timeout 30 "$LOAD" provision --port "$SB_PORT" --token-file "$TMP/sb/data/admin.token" \
        --agents 50 --policy longest-idle --queue q) || fail "provisioning failed"

    echo "switchboard serve, $tag: $bin (sync=group, keep-alive, 50-agent longest-idle queue):"
    run_load "$tag-max" "$SB_PID" http --port "$SB_PORT" --auth "$AUTH" --queue q --prefix max
    rps=$(field rps <"$TMP/$tag-max.result")
    half=$(awk -v r="$rps" 'BEGIN { printf "%.0f", r / 2 }')
    [ "$half" -ge 1 ] || fail "no throughput to halve"
    run_load "$tag-half-rate" "$SB_PID" http --port "$SB_PORT" --auth "$AUTH" --queue q \
        --prefix half --rate "$half"
    eval "${tag}_RPS=$rps ${tag}_HALF=$half"
    eval "${tag}_CPS=$(field cps <"$TMP/$tag-max.result")"
    eval "${tag}_P50=$(field p50_us <"$TMP/$tag-max.result")"
    eval "${tag}_P99=$(field p99_us <"$TMP/$tag-max.result")"
    eval "${tag}_HP99=$(field p99_us <"$TMP/$tag-half-rate.result")"
    eval "${tag}_HRPS=$(field rps <"$TMP/$tag-half-rate.result")"

    # Requests per fsync over both phases, from the daemon's own counters.
    if timeout 10 "$LOAD" metrics --port "$SB_PORT" --token-file "$TMP/sb/data/admin.token" \
        >"$TMP/metrics.txt" 2>/dev/null; then
        awk '/^switchboard_syncs_total /{s=$2} /^switchboard_sync_seconds_total /{t=$2}
             /^switchboard_batch_commits_total /{c=$2} /^switchboard_batch_commit_seconds_total /{ct=$2}
             /^switchboard_http_requests_total.*route="\/v1\/calls/{n+=$2}
             END { if (s > 0) printf "  daemon: %d call requests, %d fsyncs (%.1f requests per fsync, %.0f us per fsync)\n", n, s, n / s, t / s * 1e6
                   if (c > 0) printf "  daemon: %d batch commits (%.1f call requests per commit, %.0f us per commit, its own sync included)\n", c, n / c, ct / c * 1e6 }' \
            "$TMP/metrics.txt"
    fi
    stop_pid "$SB_PID"
    SB_PID=""
}

[ -z "$BASELINE" ] || run_switchboard base "$BASELINE"
run_switchboard sb "$B/switchboard"
SB_RPS=$sb_RPS SB_CPS=$sb_CPS SB_P50=$sb_P50 SB_P99=$sb_P99
HALF=$sb_HALF HALF_RPS=$sb_HRPS HALF_P99=$sb_HP99

# ---------------------------------------------------------------------- redis
command -v redis-server >/dev/null || fail "redis-server not installed (Debian package redis-server)"
RPORT=$("$LOAD" freeport)
RPASS=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
mkdir -p "$TMP/redis"
cat >"$TMP/redis.conf" <<EOF
bind 127.0.0.1
port $RPORT
protected-mode yes
daemonize no
dir $TMP/redis
logfile $TMP/redis.log
requirepass $RPASS
appendonly yes
appendfsync always
save ""
auto-aof-rewrite-percentage 0
EOF
redis-server "$TMP/redis.conf" </dev/null >/dev/null 2>&1 &
REDIS_PID=$!
rcli() { timeout 10 redis-cli -h 127.0.0.1 -p "$RPORT" --no-auth-warning -a "$RPASS" "$@"; }
i=0
until [ "$(rcli ping 2>/dev/null)" = PONG ]; do
    kill -0 "$REDIS_PID" 2>/dev/null || fail "redis-server exited"
    [ $i -lt 200 ] || fail "redis-server did not start in 20 s"
    sleep 0.1
    i=$((i + 1))
done
SHA_OFFER=$(rcli -x SCRIPT LOAD <"$HERE/redis/offer.lua")
SHA_ANSWERED=$(rcli -x SCRIPT LOAD <"$HERE/redis/answered.lua")
SHA_HANGUP=$(rcli -x SCRIPT LOAD <"$HERE/redis/hangup.lua")
[ "$(rcli EVAL "$(cat "$HERE/redis/setup.lua")" 1 idle:q 50)" = 50 ] ||
    fail "redis provisioning failed"
[ "$(rcli CONFIG GET appendfsync | tail -n 1)" = always ] || fail "redis is not appendfsync always"

echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') (appendonly yes, appendfsync always; EVALSHA per event):"
run_load redis-max "$REDIS_PID" redis --port "$RPORT" --password "$RPASS" \
    --sha "$SHA_OFFER,$SHA_ANSWERED,$SHA_HANGUP" --queue q --prefix max
R_CPS=$(field cps <"$TMP/redis-max.result")
stop_pid "$REDIS_PID"
REDIS_PID=""

# -------------------------------------------------------------------- summary
awk -v rps="$SB_RPS" -v cps="$SB_CPS" -v p50="$SB_P50" -v p99="$SB_P99" -v half="$HALF" \
    -v hrps="$HALF_RPS" -v hp99="$HALF_P99" -v rcps="$R_CPS" -v conns="$CONNS" \
    -v brps="${base_RPS:-0}" -v bcps="${base_CPS:-0}" -v bp50="${base_P50:-0}" -v bp99="${base_P99:-0}" \
    -v bhalf="${base_HALF:-0}" -v bhrps="${base_HRPS:-0}" -v bhp99="${base_HP99:-0}" 'BEGIN {
    ratio = rcps > 0 ? cps / rcps : 0
    printf "summary (%d connections):\n", conns
    printf "  switchboard    %8.0f requests/s  %7.0f call cycles/s  p50 %.2f ms  p99 %.2f ms\n", rps, cps, p50 / 1000, p99 / 1000
    printf "  at half rate   %8.0f requests/s (scheduled %d/s)  p99 %.2f ms\n", hrps, half, hp99 / 1000
    if (brps > 0) {
        printf "  baseline       %8.0f requests/s  %7.0f call cycles/s  p50 %.2f ms  p99 %.2f ms\n", brps, bcps, bp50 / 1000, bp99 / 1000
        printf "  at half rate   %8.0f requests/s (scheduled %d/s)  p99 %.2f ms\n", bhrps, bhalf, bhp99 / 1000
        printf "  this build / baseline = %.2fx requests/s; baseline / redis = %.2fx\n", rps / brps, (rcps > 0 ? bcps / rcps : 0)
    }
    printf "  redis          %26.0f call cycles/s\n", rcps
    printf "  ratio          switchboard / redis = %.2fx\n", ratio
    printf "  target >= 45,000 requests/s: %s\n", (rps >= 45000 ? "met" : "MISSED")
    printf "  target >= 15,000 call cycles/s: %s\n", (cps >= 15000 ? "met" : "MISSED")
    printf "  target p99 <= 2 ms at half rate: %s\n", (hp99 <= 2000 ? "met" : "MISSED")
    printf "  target >= 2x redis call cycles/s: %s\n", (ratio >= 2 ? "met" : "MISSED")
}'
if [ -s "$TMP/disturbed" ]; then
    echo "  warning: other processes competed for the CPUs during" \
        "$(awk '{ printf "%s%s (%s%%)", (NR > 1 ? ", " : ""), $1, $2 }' "$TMP/disturbed");" \
        "these figures are below what this machine gives when idle"
fi
