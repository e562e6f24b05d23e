# tests/cli/lib.sh — TAP helpers for the `switchboard` command's tests.
# Sourced by tests/cli/*.t after cd to the repository root; sets $sb (the
# command under $SB_BUILD, default build) and $tmp (removed at exit).
SB_BUILD=${SB_BUILD:-build}
case $SB_BUILD in /*) ;; *) SB_BUILD=$PWD/$SB_BUILD ;; esac
sb="$SB_BUILD/switchboard"
ROOT=$PWD
tmp=$(mktemp -d /tmp/sb-cli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
n=0
failed=0

if [ ! -x "$sb" ]; then
    echo "1..0 # SKIP no $sb (run make)"
    exit 0
fi

diag() { printf '%s\n' "$1" | sed 's/^/# /' >&2; }
ok() { # ok COND-STATUS NAME [DIAG]
    n=$((n + 1))
    if [ "$1" -eq 0 ]; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2"
        [ -n "${3-}" ] && diag "$3"
        failed=$((failed + 1))
    fi
}
# run CMD...: runs it, keeps its status in $rc, stdout in $out, stderr in $err
run() {
    "$@" >"$tmp/.out" 2>"$tmp/.err"
    rc=$?
    out=$(cat "$tmp/.out")
    err=$(cat "$tmp/.err")
}
# has TEXT PATTERN: 0 when the fixed string PATTERN is in TEXT
has() { printf '%s' "$1" | grep -qF -- "$2"; }
shown() { printf 'status %s\n--- stdout\n%s\n--- stderr\n%s' "$rc" "$out" "$err"; }
# expect_run STATUS NAME PATTERN_STREAM PATTERN: last run's status and a pattern in out or err
check() {
    st=$1 name=$2 stream=$3 pat=$4
    if [ "$stream" = out ]; then text=$out; else text=$err; fi
    [ "$rc" -eq "$st" ] && has "$text" "$pat"
    ok $? "$name" "$(shown)"
}
done_testing() {
    echo "1..$n"
    [ "$failed" -eq 0 ]
}

# wait_for FILE TEXT: waits (at most 60 s) for the fixed string TEXT to appear
# in FILE (a daemon's log, say); 1 if it never does.
# morning DIR: a data directory with a morning of calls replayed into it
# (account acme); $before, its records as records list shows them.
morning() {
    run "$sb" replay examples/replay/first-calls.jsonl --data-dir "$1" --policy-dir policies
    ok $rc "a data directory with a morning of calls" "$(shown)"
    run "$sb" records list --data-dir "$1" --account acme
    before=$out
    [ -n "$before" ]
    ok $? "records in it" "$(shown)"
}

wait_for() {
    i=0
    while [ $i -lt 600 ]; do
        grep -qF -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
