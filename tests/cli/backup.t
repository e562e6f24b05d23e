#!/bin/sh
# tests/cli/backup.t — `switchboard backup`: a copy of a data directory
# written by replay, taken while it is in use, opens with the directory's
# master key and holds its records; it is said once; the master key is not in it; a
# directory that is not empty, a missing DEST and a data directory that is
# not there are refused and change nothing. The check switchboard(1) gives
# (records audit with the key kept apart) passes, and fails saying why with
# another key or without data.keys. A backup killed (-9) at each of
# its syncs and renames in turn (the synctrace.so shim's SB_KILLAT) leaves no
# data.mdb unless beside the rest of a whole backup, and data.keys only
# beside data.mdb.partial; run again into the same directory, it removes
# what the killed one left and is whole. Restored as switchboard(1) says,
# an erasure request made since the backup is applied again, and an
# account deleted since (through the daemon) is deleted again (the erasure
# journal stays in the data directory), saying so.
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh

data="$tmp/data"
morning "$data"

run "$sb" backup --data-dir "$data" "$tmp/b1"
check 0 "backup writes a copy" out "backup written to $tmp/b1"
# Its size as it is: a small backup is not "0.0 MiB", which reads as empty.
bytes=$(stat -c %s "$tmp/b1/data.mdb")
want=$(awk -v b="$bytes" 'BEGIN { printf "%.1f KiB", b / 1024 }')
has "$out" "($want)"
ok $? "... its size in KiB when under a MiB ($want)" "$(shown)"
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

# Checking a backup as switchboard(1) says: read with the key kept apart.
run "$sb" records audit --data-dir "$tmp/b1" --key-file "$data/master.key" --account acme --limit 1
ok $rc "the check switchboard(1) gives passes with the master key" "$(shown)"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/other.key"
chmod 600 "$tmp/other.key"
run "$sb" records audit --data-dir "$tmp/b1" --key-file "$tmp/other.key" --account acme --limit 1
check 1 "... and fails with another key, saying so" err "is not the one this data directory"
mkdir "$tmp/nokeys" && cp "$tmp/b1/data.mdb" "$tmp/nokeys/" && chmod 700 "$tmp/nokeys"
run "$sb" records audit --data-dir "$tmp/nokeys" --key-file "$data/master.key" --account acme \
    --limit 1
check 1 "... and on a data.mdb without its data.keys, saying so" err "holds no data key"
[ ! -e "$tmp/nokeys/data.keys" ]
ok $? "... making no data.keys there" "$(ls -l "$tmp/nokeys")"

run "$sb" backup --data-dir "$data" "$tmp/b1"
check 1 "a directory that is not empty is refused" err "is not empty"
run "$sb" backup --data-dir "$data"
check 2 "DEST is required" err "usage: switchboard backup"
run "$sb" backup --data-dir "$tmp/nowhere" "$tmp/b2"
[ "$rc" -ne 0 ] && [ ! -e "$tmp/b2" ] && [ ! -e "$tmp/nowhere" ]
ok $? "a data directory that is not there: refused, nothing created" "$(shown)"
# Inside the data directory a backup goes with it (a lost disk, a restore
# that moves the directory aside): refused, and nothing made there.
for dest in "$data/bk" "$data/sub/bk" "$data/./bk"; do
    run "$sb" backup --data-dir "$data" "$dest"
    [ "$rc" -eq 1 ] && has "$err" "is inside the data directory" && [ ! -e "$data/bk" ] &&
        [ ! -e "$data/sub" ]
    ok $? "a DEST inside the data directory ($dest): refused, nothing made" "$(shown)"
done
ln -s "$data" "$tmp/via-link"
run "$sb" backup --data-dir "$data" "$tmp/via-link/bk"
[ "$rc" -eq 1 ] && has "$err" "is inside the data directory" && [ ! -e "$data/bk" ]
ok $? "... also through a symbolic link to it" "$(shown)"
rm -f "$tmp/via-link"
run "$sb" backup --data-dir "$data" --json "$tmp/b3"
check 0 "--json prints the result" out '"bytes":'
shim="$SB_BUILD/tests/crash/synctrace.so"
asan="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
if [ -f "$shim" ]; then
    k=1 kills=0 last=0 bad=""
    while [ $k -le 40 ]; do
        rm -rf "$tmp/bk"
        run env LD_PRELOAD="$shim" SB_KILLAT=$k ASAN_OPTIONS="$asan" \
            "$sb" backup --data-dir "$data" "$tmp/bk"
        [ "$rc" -eq 0 ] && break
        left=$(ls "$tmp/bk" 2>/dev/null | tr '\n' ' ')
        if [ -e "$tmp/bk/data.mdb" ]; then # killed after the last rename: whole
            [ "$left" = "data.keys data.mdb " ] || bad="$bad kill $k (rc $rc): $left;"
        elif [ -d "$tmp/bk" ]; then
            kills=$((kills + 1)) last=$k
            if [ -e "$tmp/bk/data.keys" ] && [ ! -e "$tmp/bk/data.mdb.partial" ]; then
                bad="$bad kill $k (rc $rc): $left;"
            fi
        fi
        k=$((k + 1))
    done
    [ "$rc" -eq 0 ] && [ "$kills" -ge 4 ] && [ -z "$bad" ]
    ok $? "killed at each sync and rename ($kills kills part-way): no data.mdb but in a whole \
backup, data.keys only beside data.mdb.partial" "$(shown)
$bad"
    rm -rf "$tmp/bk"
    run env LD_PRELOAD="$shim" SB_KILLAT=$last ASAN_OPTIONS="$asan" \
        "$sb" backup --data-dir "$data" "$tmp/bk"
    left=$(ls "$tmp/bk" | tr '\n' ' ')
    run "$sb" backup --data-dir "$data" "$tmp/bk"
    check 0 "run again after the last kill part-way ($left): written" out "backup written to"
    has "$err" "removed what an interrupted backup left"
    ok $? "... saying it removed what the killed one left" "$(shown)"
    [ "$(ls "$tmp/bk" | tr '\n' ' ')" = "data.keys data.mdb " ]
    ok $? "... leaving data.mdb and data.keys alone" "$(ls -l "$tmp/bk")"
    run "$sb" records list --data-dir "$tmp/bk" --account acme --key-file "$data/master.key"
    [ "$rc" -eq 0 ] && [ "$out" = "$before" ]
    ok $? "... which open and list the same records" "$(shown)"
    mkdir "$tmp/bk2" && : >"$tmp/bk2/data.mdb.partial" && : >"$tmp/bk2/notes"
    run "$sb" backup --data-dir "$data" "$tmp/bk2"
    [ "$rc" -eq 1 ] && has "$err" "is not empty" && [ -e "$tmp/bk2/data.mdb.partial" ]
    ok $? "a leftover beside another file: refused, nothing removed" "$(shown)"
else
    n=$((n + 1))
    echo "ok $n # SKIP no $shim"
fi
# The restore switchboard(1) gives, after an erasure request made since
# the backup: data.mdb and data.keys put back, master.key and
# erasures.journal left in place. The request is applied again at the open.
rdata="$tmp/rdata"
run "$sb" replay examples/replay/first-calls.jsonl --data-dir "$rdata" --policy-dir policies
run "$sb" backup --data-dir "$rdata" "$tmp/rb"
ok $rc "a backup of a second directory" "$(shown)"
run "$sb" records erase --data-dir "$rdata" --account acme "+44 20 7946 0001"
check 0 "an erasure request after the backup" out "deleted 1"
[ -s "$rdata/erasures.journal" ] && ! grep -q "7946" "$rdata/erasures.journal"
ok $? "... in the erasure journal, which holds no number" "$(cat "$rdata/erasures.journal")"
cp "$tmp/rb/data.mdb" "$tmp/rb/data.keys" "$rdata/"
run "$sb" records export --data-dir "$rdata" --account acme "+44 20 7946 0001"
[ "$rc" -eq 0 ] && has "$out" '"records": []'
ok $? "restored: the erased caller's record is not back" "$(shown)"
has "$err" "erasure request 1 of the erasure journal (account 'acme') applied again"
ok $? "... the command says the request was applied again" "$(shown)"
run "$sb" records audit --data-dir "$rdata" --account acme
has "$out" "applied again from the erasure journal"
ok $? "... and the audit log has it" "$(shown)"
run "$sb" records export --data-dir "$rdata" --account acme "+44 20 7946 0002"
[ "$rc" -eq 0 ] && ! has "$out" '"records": []' && [ -z "$err" ]
ok $? "... another caller's record is there, and nothing is applied twice" "$(shown)"
# An account deleted (through the daemon, as an operator does) after the
# backup: the restore does not bring it back.
ddata="$tmp/ddata"
run "$sb" replay examples/replay/first-calls.jsonl --data-dir "$ddata" --policy-dir policies
run "$sb" backup --data-dir "$ddata" "$tmp/db"
ok $rc "a backup of a third directory" "$(shown)"
"$sb" serve --data-dir "$ddata" --listen 127.0.0.1:0 --policy-dir policies --sync none \
    >/dev/null 2>"$tmp/dserve.log" &
serve_pid=$!
code=""
if wait_for "$tmp/dserve.log" 'msg="listening"'; then
    addr=$(grep -o 'addr=[^ ]*' "$tmp/dserve.log" | head -n 1 | cut -d= -f2)
    code=$(curl -s -o "$tmp/ddel.out" -w '%{http_code}' -X DELETE \
        -H "Authorization: Bearer $(cat "$ddata/admin.token")" \
        "http://$addr/v1/accounts/acme?live_calls=end")
fi
kill -TERM "$serve_pid" 2>/dev/null
wait "$serve_pid"
[ "$code" = 200 ]
ok $? "account acme deleted through the daemon (HTTP $code)" \
    "$(cat "$tmp/ddel.out" "$tmp/dserve.log" 2>/dev/null)"
grep -q "^d 1 [0-9]* acme " "$ddata/erasures.journal" && ! grep -q "7946" "$ddata/erasures.journal"
ok $? "... in the erasure journal, which holds no number" "$(cat "$ddata/erasures.journal")"
cp "$tmp/db/data.mdb" "$tmp/db/data.keys" "$ddata/"
run "$sb" records list --data-dir "$ddata" --account acme
check 1 "restored: the deleted account is not back" err "no such account 'acme'"
has "$err" "account deletion 1 of the erasure journal: account 'acme' deleted again"
ok $? "... the command says it was deleted again" "$(shown)"
run "$sb" records list --data-dir "$ddata" --account acme
check 1 "... and stays deleted, not deleted twice" err "no such account 'acme'"
! has "$err" "deleted again"
ok $? "... saying nothing more" "$(shown)"
run "$sb" backup --help
check 0 "backup --help says how to restore" out "To restore"
has "$out" "switchboard(1) says how to"
ok $? "... and where to read how to check a backup and what a restore undoes" "$(shown)"
done_testing
