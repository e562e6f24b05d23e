#!/bin/sh
# tests/cli/input.t — the command's inputs it cannot use are refused with a
# message naming them, never taken for something else: a FILE that is a
# directory is not read as an empty file (policy check, policy test, replay
# and its policy lines); an impossible date (2026-02-30, a 60th second) is
# not carried into the next month; a flag given last without its value is
# said to need one (not "unknown flag"); --budget-ms and --after take whole
# numbers only; a flag given twice is refused; export and erase name their
# NUMBER argument, not --number;
# records list --queue of a queue never there is an error, not no records;
# `switchboard --key-file` of another master key does not open the data.
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh

mkdir "$tmp/dir"
run "$sb" policy check "$tmp/dir"
check 2 "policy check DIR: exit 2, the file cannot be read" err "$tmp/dir: Is a directory"
run "$sb" policy test "$tmp/dir" "$tmp/dir"
check 2 "policy test DIR: exit 2, the file cannot be read" err "$tmp/dir: Is a directory"
run "$sb" replay "$tmp/dir" --policy-dir policies
check 2 "replay DIR: exit 2, the file cannot be read, as for policy check" err "$tmp/dir: Is a directory"
has "$err" "0 errors"
[ $? -ne 0 ]
ok $? "... and no summary of a replay that read nothing" "$(shown)"

cat >"$tmp/pol.jsonl" <<J
{"account": {"id": "acme"}}
{"policy": "p", "file": "$tmp/dir"}
J
run "$sb" replay "$tmp/pol.jsonl" --policy-dir policies
check 1 "a replay policy line naming a directory: an error" err "pol.jsonl:2: policy 'p': cannot read $tmp/dir"
has "$err" "Is a directory" && ! has "$out" "empty policy source"
ok $? "... saying why, without uploading an empty policy" "$(shown)"

# Impossible times.
printf '{"at": "2026-02-30T00:00:00Z"}\n' >"$tmp/at.jsonl"
run "$sb" replay "$tmp/at.jsonl" --policy-dir policies
check 1 "replay 'at' 2026-02-30: refused" err "at.jsonl:1: 'at' must be"
! has "$out" "clock ->"
ok $? "... and the clock does not move" "$(shown)"
printf '{"at": "2026-01-05T09:00:60Z"}\n' >"$tmp/at.jsonl"
run "$sb" replay "$tmp/at.jsonl" --policy-dir policies
check 1 "replay 'at' with a 60th second: refused" err "at.jsonl:1: 'at' must be"
printf '{"at": "2026-02-28T23:59:59Z"}\n{"at": "2028-02-29"}\n' >"$tmp/at.jsonl"
run "$sb" replay "$tmp/at.jsonl" --policy-dir policies
check 0 "replay 'at' on the last second of February and a leap day: fine" out "clock -> 2026-02-28 23:59:59"

# A data directory for the records and sweep commands.
cat >"$tmp/calls.jsonl" <<J
{"account": {"id": "acme"}}
{"agent": {"id": "alice", "devices": {"softphone": "sip:alice@pbx.example"}, "status": "available"}}
{"queue": {"id": "support", "members": [{"agent": "alice"}]}}
{"type": "offer", "call": "c1", "queue": "support", "caller": "+442079460001"}
{"advance": 4}
{"type": "abandon", "call": "c1"}
J
data="$tmp/data"
run "$sb" replay "$tmp/calls.jsonl" --data-dir "$data" --policy-dir policies
ok $rc "a data directory with a call" "$(shown)"

run "$sb" records list --data-dir "$data" --account acme --from 2026-02-30
check 2 "records list --from 2026-02-30: exit 2" err "--from '2026-02-30' is not a time"
run "$sb" records stats --data-dir "$data" --account acme --to 2026-04-31
check 2 "records stats --to 2026-04-31: exit 2" err "--to '2026-04-31' is not a time"

run "$sb" records list --data-dir "$data" --account acme --queue nope
check 1 "records list --queue of a queue the account never had: exit 1" err "no such queue 'nope'"
run "$sb" records list --data-dir "$data" --account acme --queue support
check 0 "... and of its queue: the call" out "c1"

run "$sb" records list --data-dir "$data" --account
check 2 "a flag given last without its value: exit 2" err "--account needs a value"
! has "$err" "unknown flag"
ok $? "... not called an unknown flag" "$(shown)"
run "$sb" sweep --data-dir
check 2 "sweep --data-dir without a value: exit 2" err "--data-dir needs a value"

# A flag given twice is refused, whichever value came last: an erasure
# request is not made in the second account named.
run "$sb" records erase +442079460001 --data-dir "$data" --account other --account acme
check 2 "records erase with --account given twice: exit 2" err "--account given twice: give it once"
run "$sb" records export +442079460001 --data-dir "$data" --account acme
check 0 "... and nothing was erased" out "c1"
run "$sb" sweep --data-dir "$data" --budget-ms 5 --budget-ms=0
check 2 "sweep --budget-ms given twice, once with =: exit 2" err "--budget-ms given twice"
# ... by every command: replay would have written to the second directory.
run "$sb" replay examples/replay/first-calls.jsonl --data-dir "$tmp/r1" --data-dir="$tmp/r2"
check 2 "replay --data-dir given twice: exit 2" err "replay: --data-dir given twice"
[ ! -e "$tmp/r1" ] && [ ! -e "$tmp/r2" ]
ok $? "... and neither directory was made" "$(shown)"
run "$sb" simulate --calls 5 --seed 1 --seed 2
check 2 "simulate --seed given twice: exit 2" err "simulate: --seed given twice"
run "$sb" policy check --config /dev/null --config=/dev/null policies/longest-idle.lua
check 2 "policy check --config given twice: exit 2" err "policy check: --config given twice"
run "$sb" policy test --config /dev/null --config /dev/null policies/longest-idle.lua
check 2 "policy test --config given twice: exit 2" err "policy test: --config given twice"
run "$sb" policy sign --key a --key b policies/longest-idle.lua
check 2 "policy sign --key given twice: exit 2" err "policy sign: --key given twice"

for v in abc -5 1.5 4294967296; do
    run "$sb" sweep --data-dir "$data" --budget-ms "$v"
    check 2 "sweep --budget-ms $v: exit 2" err "--budget-ms '$v': expected a whole number"
done
run "$sb" sweep --data-dir "$data" --budget-ms 0
check 0 "sweep --budget-ms 0 (no budget) works" out "sweep done"
for v in abc -1 ""; do
    run "$sb" records audit --data-dir "$data" --account acme --after "$v"
    check 2 "records audit --after '$v': exit 2" err "--after '$v': expected a whole number"
done
run "$sb" records audit --data-dir "$data" --account acme --after 0
ok $rc "records audit --after 0 works" "$(shown)"

run "$sb" records export --data-dir "$data" --account acme notanumber
check 1 "export of a malformed number: exit 1" err "switchboard: NUMBER: 'number' must be"
! has "$err" "--number"
ok $? "... naming the NUMBER argument, not a --number flag it was not given" "$(shown)"
run "$sb" records erase --data-dir "$data" --account acme 12345
check 1 "erase of a malformed number: exit 1, naming NUMBER" err "switchboard: NUMBER: 'number'"

# Another master key: refused, and the data stays readable with its own.
run "$sb" records export --data-dir "$data" --account acme +442079460001
check 0 "export with the data directory's key finds the call" out '"id": "c1"'
printf '%064d\n' 7 >"$tmp/other.key"
chmod 600 "$tmp/other.key"
run "$sb" records export --data-dir "$data" --account acme +442079460001 --key-file "$tmp/other.key"
check 1 "export with another --key-file: exit 1" err "is not the one this data directory's data keys were made with"
run "$sb" replay "$tmp/calls.jsonl" --data-dir "$data" --policy-dir policies
ok $rc "replay into it again with its own key" "$(shown)"
run "$sb" records export --data-dir "$data" --account acme +442079460001
check 0 "... and the first call's record is still readable" out '"id": "c1"'

# Bytes a replay line cannot be: a NUL ends what JSON reads of the line, so
# the rest would be dropped unseen; it is an error naming the line and
# column. A UTF-8 byte-order mark (an editor's) at the start of the file is
# skipped, as in the configuration file.
printf '{"account": {"id": "acme"}}\n{"advance": 5}\000{"type": "bogus"}\n{"advance": 1}\n' >"$tmp/nul.jsonl"
run "$sb" replay "$tmp/nul.jsonl" --policy-dir policies
check 1 "replay: a NUL byte in a line is an error" err "nul.jsonl:2: a NUL byte at column 15"
has "$out" "clock -> 08:00:01" && ! has "$out" "08:00:05"
ok $? "... the line is not applied, the next one is" "$(shown)"
printf '\357\273\277{"account": {"id": "acme"}}\n{"advance": 1}\n' >"$tmp/bom.jsonl"
run "$sb" replay "$tmp/bom.jsonl" --policy-dir policies
check 0 "replay: a byte-order mark at the start of the file is skipped" err "replay: 2 lines, 0 errors"
has "$out" "08:00:00 account"
ok $? "... and the first line is applied" "$(shown)"

# A policy and its cases file saved with a byte-order mark load as plain Lua
# loads a file (luaL_loadfile skips one): they were refused ("unexpected
# symbol near '<\239>'", "'[' or '{' expected"). The policy directory and an
# upload read it as the check does.
printf '\357\273\277local P = {}\nfunction P.route(call, agents, ctx) return { wait = 5 } end\nreturn P\n' \
    >"$tmp/bom.lua"
printf '\357\273\277[{"name": "waits", "expect": {"action": "wait", "wait": 5}}]\n' >"$tmp/bom.cases.json"
run "$sb" policy check "$tmp/bom.lua"
check 0 "policy check: a byte-order mark before the code is skipped" out "bom.lua: ok"
run "$sb" policy test "$tmp/bom.lua"
check 0 "policy test: so is one before the cases" out "# 1 passed, 0 failed"
mkdir -p "$tmp/bompol" && cp "$tmp/bom.lua" "$tmp/bompol/"
printf '{"account": {"id": "acme"}}\n{"queue": {"id": "q", "policy": "bom"}}\n{"type": "offer", "call": "c1", "queue": "q", "caller": "+442079460001"}\n' \
    >"$tmp/bomq.jsonl"
run "$sb" replay "$tmp/bomq.jsonl" --policy-dir "$tmp/bompol"
check 0 "replay: a policy directory's file with one decides" out "wait"
! has "$out$err" "fallback"
ok $? "... with no fallback" "$(shown)"

# --flag=VALUE, as records, sweep, backup and serve take it.
run "$sb" replay "$tmp/bom.jsonl" --policy-dir=policies --data-dir="$tmp/eq-data"
check 0 "replay --policy-dir=DIR --data-dir=DIR" err "replay: 2 lines, 0 errors"
[ -f "$tmp/eq-data/data.mdb" ]
ok $? "... the data kept in that --data-dir" "$(shown)"
run "$sb" replay "$tmp/bom.jsonl" --data-dir=
check 2 "replay --data-dir=: exit 2, a directory needed" err "--data-dir needs a directory"
run "$sb" simulate --calls=30 --seed=7 --policy-dir=policies
check 0 "simulate --calls=30 --seed=7 --policy-dir=DIR" out "30 calls"
run "$sb" simulate --calls 30 --seed 7 --policy-dir policies
[ "$rc" -eq 0 ] && [ "$(printf '%s' "$out" | sed 's/ *$//')" = "$(sh -c '"$0" simulate --calls=30 --seed=7 --policy-dir=policies' "$sb" | sed 's/ *$//')" ]
ok $? "... the same day as with the values apart" "$(shown)"
run "$sb" simulate --seed=x --policy-dir policies
check 2 "simulate --seed=x: exit 2, named" err "--seed 'x': expected a whole number"

done_testing
