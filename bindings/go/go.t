#!/bin/sh
# bindings/go/go.t — the Go binding's tests as TAP for prove (make test).
#
# Runs `go test -v` in bindings/go and turns each top-level test's PASS,
# FAIL or SKIP into one TAP line (a failure carries go test's output as
# diagnostics); then gofmt and go vet over the binding and examples/go, and
# the example gateway (examples/go/gateway) on examples/c-gateway's calls,
# which must print what the C gateway prints when that one is built.
#
# Offline and self-contained: GOPROXY=off, the module has no dependencies,
# GOCACHE/GOPATH live under /tmp. SB_BUILD (default build, relative to the
# repository root) names the library under test; a sanitizer build is linked
# with its runtime.
cd "$(dirname "$0")" || exit 1
ROOT=$(cd ../.. && pwd)
B=${SB_BUILD:-build}
case $B in /*) ;; *) B=$ROOT/$B ;; esac

if ! command -v go >/dev/null 2>&1; then
    echo "1..0 # SKIP go not installed (Debian: golang-go)"
    exit 0
fi
if [ ! -f "$B/libswitchboard.a" ]; then
    echo "1..0 # SKIP no $B/libswitchboard.a (run make)"
    exit 0
fi

cache=/tmp/switchboard-go-$(id -u)
export GOCACHE="${GOCACHE:-$cache/cache}" GOPATH="$cache/path" GOPROXY=off GOFLAGS=-buildvcs=false \
    GO111MODULE=on CGO_ENABLED=1 GOTOOLCHAIN=local
# The package links -L../../build; a -L in CGO_LDFLAGS comes first and wins.
CGO_LDFLAGS="-L$B ${CGO_LDFLAGS:-}"
san=""
syms=$(nm "$B/libswitchboard.a" 2>/dev/null)
case $syms in *__asan_*) san=address ;; esac
case $syms in *__ubsan_*) san="${san:+$san,}undefined" ;; esac
if [ -n "$san" ]; then
    CGO_LDFLAGS="$CGO_LDFLAGS -fsanitize=$san"
    # Go's runtime is not instrumented; its allocations are not ours to chase.
    export ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}"
fi
export CGO_LDFLAGS
# Go's build cache does not look at headers and libraries outside the module:
# name their contents in the flags, so a changed library rebuilds the package.
lib_id=$(cat "$ROOT/engine/include/switchboard.h" "$B/libswitchboard.a" | cksum | cut -d' ' -f1)
export CGO_CFLAGS="${CGO_CFLAGS:--g -O2} -DSB_GO_LIB_ID=$lib_id"

tmp=$(mktemp -d /tmp/sb-go-t.XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
    n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"
    [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/# /' >&2
}

# 1. go test
go test -count=1 -v ./... >"$tmp/test.out" 2>&1
rc=$?
tests=$(sed -n 's/^--- \(PASS\|FAIL\|SKIP\): \([^ ]*\).*/\1 \2/p' "$tmp/test.out")
if [ -z "$tests" ]; then
    not_ok "go test builds and runs" "$(cat "$tmp/test.out")"
else
    echo "$tests" >"$tmp/list"
    while read -r verdict name; do
        case $verdict in
        PASS) ok "go: $name" ;;
        SKIP) n=$((n + 1)); echo "ok $n - go: $name # SKIP" ;;
        FAIL) not_ok "go: $name" "$(sed -n "/^=== RUN   $name\$/,/^--- FAIL: $name /p" "$tmp/test.out")" ;;
        esac
    done <"$tmp/list"
    if [ $rc -ne 0 ] && ! grep -q '^--- FAIL' "$tmp/test.out"; then
        not_ok "go test exits 0" "$(tail -n 30 "$tmp/test.out")"
    fi
fi

# 2. gofmt and go vet
out=$(gofmt -l . "$ROOT/examples/go" 2>&1)
if [ -z "$out" ]; then ok "gofmt"; else not_ok "gofmt" "needs gofmt -w: $out"; fi
if out=$(go vet ./... 2>&1 && cd "$ROOT/examples/go" && go vet ./... 2>&1); then
    ok "go vet"
else
    not_ok "go vet" "$out"
fi

# 3. the example gateway
calls=$ROOT/examples/c-gateway/calls.jsonl
if ! out=$(cd "$ROOT/examples/go" && go build -o "$tmp/gateway" ./gateway 2>&1); then
    not_ok "examples/go/gateway builds" "$out"
elif [ ! -x "$B/switchboard" ]; then
    n=$((n + 1)); echo "ok $n - examples/go/gateway # SKIP no $B/switchboard to provision with"
else
    ok "examples/go/gateway builds"
    run() { # run GATEWAY OUT: provision a fresh data directory, feed the calls
        rm -rf "$tmp/data"
        "$B/switchboard" replay "$ROOT/examples/c-gateway/setup.jsonl" --data-dir "$tmp/data" \
            --policy-dir "$ROOT/policies" >/dev/null 2>&1 &&
            "$1" --data-dir "$tmp/data" --policy-dir "$ROOT/policies" --sync none <"$calls" >"$2" 2>&1
    }
    if run "$tmp/gateway" "$tmp/go.out" &&
        head -n 1 "$tmp/go.out" | grep -q '"type":"ring","account":"acme","call":"c1","agent":"alice"' &&
        grep -q '"error":{"code":"SB_EINVAL"' "$tmp/go.out"; then
        ok "the Go gateway rings alice for c1 and reports the bad caller"
    else
        not_ok "the Go gateway rings alice for c1 and reports the bad caller" "$(cat "$tmp/go.out")"
    fi
    if [ ! -x "$B/examples/c-gateway" ]; then
        n=$((n + 1)); echo "ok $n - the Go and C gateways agree # SKIP no $B/examples/c-gateway"
    elif run "$B/examples/c-gateway" "$tmp/c.out" && cmp -s "$tmp/c.out" "$tmp/go.out"; then
        ok "the Go and C gateways print the same actions"
    else
        not_ok "the Go and C gateways print the same actions" "$(diff "$tmp/c.out" "$tmp/go.out")"
    fi
fi

echo "1..$n"
[ $failed -eq 0 ]
