#!/bin/sh
# tests/cli/backup.t — `switchboard backup`: a copy of a data directory
# written by replay, taken while it is in use, opens with the directory's
# master key and holds its records; it is said once; the master key is not in it; a
# directory that is not empty, a missing DEST and a data directory that is
# not there are refused and change nothing.
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh

data="$tmp/data"
run "$sb" replay examples/replay/first-calls.jsonl --data-dir "$data" --policy-dir policies
ok $rc "a data directory with a morning of calls" "$(shown)"
run "$sb" records list --data-dir "$data" --account acme
before=$out
[ -n "$before" ]
ok $? "records in it" "$(shown)"

run "$sb" backup --data-dir "$data" "$tmp/b1"
check 0 "backup writes a copy" out "backup written to $tmp/b1"
has "$out" "the master key was not copied"
ok $? "... and says the master key is not in it" "$(shown)"
[ -z "$err" ]
ok $? "... once: the engine's own line (its size in other units) is not on stderr" "$(shown)"
[ -f "$tmp/b1/data.mdb" ] && [ -f "$tmp/b1/data.keys" ] && [ ! -e "$tmp/b1/master.key" ]
ok $? "data.mdb and data.keys, no master.key" "$(ls -l "$tmp/b1")"
[ "$(stat -c %a "$tmp/b1/data.mdb")" = 600 ] && [ "$(stat -c %a "$tmp/b1/data.keys")" = 600 ]
ok $? "both readable by the owner only" "$(ls -l "$tmp/b1")"

run "$sb" records list --data-dir "$tmp/b1" --account acme --key-file "$data/master.key"
[ "$rc" -eq 0 ] && [ "$out" = "$before" ]
ok $? "the copy opens with the master key and lists the same records" "$(shown)"

run "$sb" backup --data-dir "$data" "$tmp/b1"
check 1 "a directory that is not empty is refused" err "is not empty"
run "$sb" backup --data-dir "$data"
check 2 "DEST is required" err "usage: switchboard backup"
run "$sb" backup --data-dir "$tmp/nowhere" "$tmp/b2"
[ "$rc" -ne 0 ] && [ ! -e "$tmp/b2" ] && [ ! -e "$tmp/nowhere" ]
ok $? "a data directory that is not there: refused, nothing created" "$(shown)"
run "$sb" backup --data-dir "$data" --json "$tmp/b3"
check 0 "--json prints the result" out '"bytes":'
run "$sb" backup --help
check 0 "backup --help says how to restore" out "To restore"
done_testing
