#!/bin/sh
# tests/cli/records.t — `switchboard records` and `switchboard sweep` on a
# data directory written by replay: an erasure the policy fails exits 3; one
# of a number with a call in progress says it reaches the call at its end; a
# mistyped --data-dir is refused and nothing is created; flags named in
# errors; times as seconds, ISO or milliseconds; holds show their range;
# stats' average wait, and each queue's figures of a transferred call.
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
has "$out" '"earlier": ['
ok $? "... and, run again, what the request before it did in \"earlier\"" "$(shown)"
run "$sb" records erase +442079460001 --data-dir "$data" --account acme
check 3 "... the text says it too" out "Z: deleted 0, anonymized 0, kept 2"
run "$sb" records --help
check 0 "records --help documents the exit codes" out "3 erase: some records"

# An erasure request for a number with a call in progress says so: the
# call is in no count, and the request reaches it when it ends.
cat >"$tmp/live.jsonl" <<J
{"account": {"id": "acme"}}
{"agent": {"id": "alice", "devices": {"softphone": "sip:alice@pbx.example"}, "status": "available"}}
{"queue": {"id": "support", "policy": "longest-idle", "members": [{"agent": "alice"}]}}
{"type": "offer", "call": "l1", "queue": "support", "caller": "+442079460002"}
J
run "$sb" replay "$tmp/live.jsonl" --data-dir "$tmp/live" --policy-dir policies
ok $rc "a data directory with a call in progress" "$(shown)"
run "$sb" records erase +442079460002 --data-dir "$tmp/live" --account acme
check 0 "erase of its number: exit 0" out "deleted 0, anonymized 0, kept 0"
has "$out" "1 call of the number in progress: the request reaches it when it ends"
ok $? "... saying the call in progress will be reached" "$(shown)"

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
run "$sb" sweep --data-dir "$data"
check 0 "a sweep with nothing due: one transaction, in the singular" out " purged, 1 transaction, "
run "$sb" sweep --help
check 0 "sweep --help: exit 0" out "usage: switchboard sweep"
run "$sb" records holds --account acme --data-dir "$data" -h
check 0 "records holds -h: usage, exit 0" out "usage: switchboard records"
run "$sb" records holds --account acme --data-dir "$data" --bogus
check 2 "an unknown flag: usage on stderr, exit 2" err "usage: switchboard records"

# Errors name flags; times as replay takes them; holds show their range.
run "$sb" records hold --data-dir "$data" --account acme --call c1
check 2 "a hold without --reason names the flag" err "--reason TEXT is required"
run "$sb" records hold --data-dir "$data" --account acme --from 2026-01-06 --to 2026-01-05 --reason x
check 2 "a range the wrong way round names --from and --to" err "--from (2026-01-06) must be before --to"
run "$sb" records hold --data-dir "$data" --account acme --from 2026-01-05 --reason x
check 2 "a range needs both flags" err "needs both --from and --to"
run "$sb" records list --data-dir "$data" --account acme --from yesterday
check 2 "a malformed time names its flag" err "--from 'yesterday' is not a time"
run "$sb" records hold --data-dir "$data" --account acme --from 1767571200 --to 2026-01-06T00:00:00Z --reason secs
check 0 "--from in Unix seconds, --to in ISO time" out "placed (range): secs"
run "$sb" records hold --data-dir "$data" --account acme --from 1767571200000 --to 1767657600000 --reason millis
check 0 "... and in milliseconds, as before" out "placed (range): millis"
run "$sb" records hold --data-dir "$data" --account acme --from 2026-01-05 --to 2026-01-05 --reason day
check 0 "a day given to --to takes in that day: --from and --to the same day is that day" out \
    "calls in progress from 2026-01-05T00:00:00Z to 2026-01-06T00:00:00Z"
run "$sb" records release --data-dir "$data" --account acme \
    "$(printf '%s\n' "$out" | sed -n 's/^hold \([^ ]*\) placed.*/\1/p')"
check 0 "... (released again)" out "released"
run "$sb" records holds --data-dir "$data" --account acme
check 0 "holds shows a range hold's dates" out \
    "secs  calls in progress from 2026-01-05T00:00:00Z to 2026-01-06T00:00:00Z"
has "$out" "millis  calls in progress from 2026-01-05T00:00:00Z to 2026-01-06T00:00:00Z"
ok $? "... the same range from milliseconds" "$(shown)"
run "$sb" records list --data-dir "$data" --account acme --from 1767571200 --to 2026-01-06
check 0 "list takes seconds too" out "c1 "
run "$sb" records list --data-dir "$data" --account acme --from 2020-01-01 --to 2020-01-02
check 0 "a list with nothing in it says so, as holds and audit do" err \
    "no records in account acme that match"
[ -z "$out" ]
ok $? "... on stderr: stdout stays empty" "$(shown)"
run "$sb" records list --data-dir "$data" --account acme --limit x
check 2 "a bad --limit names it" err "--limit 'x'"
# Page by page, with the flag a full page ends with.
all=$("$sb" records list --data-dir "$data" --account acme --limit 1000 2>/dev/null | awk '{print $1}')
seen="" next=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
    run "$sb" records list --data-dir "$data" --account acme --limit 1 $next
    [ -n "$out" ] || break
    seen="$seen$(printf '%s\n' "$out" | awk '{print $1}')
"
    next=$(printf '%s\n' "$err" | sed -n 's/.*the next page: \(--before [^)]*\)).*/\1/p')
    [ -n "$next" ] || break
done
[ -n "$all" ] && [ "$(printf '%s\n' "$seen" | sed '/^$/d')" = "$all" ]
ok $? "pages of one, each from the flag the one before gave, list every record once" \
    "all: $all / seen: $seen"
run "$sb" records list --data-dir "$data" --account acme --before 5
check 2 "a malformed --before says what it takes" err "--before '5' is not ENDED_MS:ID"

# stats: c1 answered after 4 s, c2 abandoned after 4 s: avg wait 4.0 over both.
cat >"$tmp/waits.jsonl" <<J
{"account": {"id": "acme"}}
{"agent": {"id": "alice", "devices": {"softphone": "sip:alice@pbx.example"}, "status": "paused"}}
{"queue": {"id": "support", "policy": "longest-idle", "members": [{"agent": "alice"}]}}
{"type": "offer", "call": "a1", "queue": "support", "caller": "+442079460001"}
{"type": "offer", "call": "a2", "queue": "support", "caller": "+442079460002"}
{"type": "offer", "call": "a3", "queue": "support", "caller": "+442079460003"}
{"advance": 5}
{"type": "abandon", "call": "a3"}
{"advance": 25}
{"type": "abandon", "call": "a1"}
{"type": "abandon", "call": "a2"}
J
run "$sb" replay "$tmp/waits.jsonl" --data-dir "$tmp/waits" --policy-dir policies
ok $rc "a day of three abandoned calls that waited 30, 30 and 5 s" "$(shown)"
run "$sb" records stats --data-dir "$tmp/waits" --account acme
printf '%s\n' "$out" | grep -q '^2026-01-05 (all) .* 3 .* 0 .* 3 .* 21\.7s'
ok $? "stats: avg wait 21.7s over all offered calls" "$(shown)"
has "$out" "avg wait: over all offered calls, answered or not"
ok $? "... and says so" "$(shown)"
# stats of a transferred call: answered in sales after 4 s (50 s of talk),
# transferred to backup, answered there after 6 s (30 s): each queue its
# own wait and talk, the account's row the call's.
cat >"$tmp/xfer.jsonl" <<J
{"account": {"id": "acme"}}
{"agent": {"id": "alice", "devices": {"softphone": "sip:alice@pbx.example"}, "status": "available"}}
{"agent": {"id": "carol", "devices": {"softphone": "sip:carol@pbx.example"}, "status": "available"}}
{"queue": {"id": "backup", "policy": "longest-idle", "members": [{"agent": "carol"}]}}
{"queue": {"id": "sales", "policy": "longest-idle", "members": [{"agent": "alice"}]}}
{"at": "2026-01-05T11:00:00Z"}
{"type": "offer", "call": "x1", "queue": "sales", "caller": "+442079460005"}
{"advance": 4}
{"type": "ring_result", "call": "x1", "agent": "alice", "outcome": "answered"}
{"advance": 50}
{"type": "transfer", "call": "x1", "queue": "backup"}
{"advance": 6}
{"type": "ring_result", "call": "x1", "agent": "carol", "outcome": "answered"}
{"advance": 30}
{"type": "hangup", "call": "x1"}
J
run "$sb" replay "$tmp/xfer.jsonl" --data-dir "$tmp/xfer" --policy-dir policies
ok $rc "a call answered in sales and transferred to backup" "$(shown)"
run "$sb" records stats --data-dir "$tmp/xfer" --account acme
row() { printf '%s\n' "$out" | grep -q "^2026-01-05 $1 *1 *1 *0 *0 *0 *0 *$2 *$3 *100.0%$"; }
row sales 4.0s 50.0s
ok $? "stats: sales answered it, its 4 s wait and 50 s of talk" "$(shown)"
row backup 6.0s 30.0s
ok $? "stats: backup answered it, its 6 s wait and 30 s of talk" "$(shown)"
row '(all)' 4.0s 80.0s
ok $? "stats: the account's row counts it once, all its talk" "$(shown)"
# A call the system ended before an answer counts as failed, in a column of
# its own (the rows did not add up to the offered calls without it).
cat >"$tmp/failed.jsonl" <<J
{"account": {"id": "acme"}}
{"queue": {"id": "support"}}
{"type": "offer", "call": "f1", "queue": "support", "caller": "+442079460001"}
{"advance": 3}
{"type": "hangup", "call": "f1", "by": "system"}
J
run "$sb" replay "$tmp/failed.jsonl" --data-dir "$tmp/failed" --policy-dir policies
ok $rc "a call the system ended while it waited" "$(shown)"
run "$sb" records stats --data-dir "$tmp/failed" --account acme
printf '%s\n' "$out" | grep -q '^2026-01-05 (all) *1 *0 *0 *0 *0 *1 *3\.0s' &&
    printf '%s\n' "$out" | grep -q ' overflow *failed *avg wait'
ok $? "stats: its row shows it failed" "$(shown)"
run "$sb" records stats --data-dir "$tmp/xfer" --account acme --from 2026-01-05T12:00:00Z
[ "$(printf '%s\n' "$out" | grep -c '^2026-01-05 ')" -eq 3 ]
ok $? "stats --from noon gives that whole day (the call came at 11:00)" "$(shown)"
# An account in New York: its days are New York's, and a date given to
# --from and --to is its own day (midnight to midnight there), not UTC's.
cat >"$tmp/ny.jsonl" <<J
{"account": {"id": "acme", "timezone": "America/New_York"}}
{"queue": {"id": "support"}}
{"at": "2026-01-06T03:00:00Z"}
{"type": "offer", "call": "n1", "queue": "support", "caller": "+12125550001"}
{"type": "abandon", "call": "n1"}
{"at": "2026-01-06T06:00:00Z"}
{"type": "offer", "call": "n2", "queue": "support", "caller": "+12125550002"}
{"type": "abandon", "call": "n2"}
J
run "$sb" replay "$tmp/ny.jsonl" --data-dir "$tmp/ny" --policy-dir policies
ok $rc "calls at 22:00 on the 5th and 01:00 on the 6th, New York time" "$(shown)"
run "$sb" records stats --data-dir "$tmp/ny" --account acme
printf '%s\n' "$out" | grep -q '^2026-01-05 (all) *1 ' &&
    printf '%s\n' "$out" | grep -q '^2026-01-06 (all) *1 ' && has "$out" "days in America/New_York"
ok $? "stats: each call on its New York day, and the table says whose days" "$(shown)"
run "$sb" records stats --data-dir "$tmp/ny" --account acme --from 2026-01-06 --to 2026-01-06
[ "$(printf '%s\n' "$out" | grep -c '^2026-01-0')" -eq 2 ] &&
    printf '%s\n' "$out" | grep -q '^2026-01-06 (all) *1 '
ok $? "stats --from 2026-01-06 --to 2026-01-06: the 6th in New York alone" "$(shown)"
run "$sb" records release --data-dir "$data" --account acme nope
check 1 "release of an unknown hold: exit 1" err "nope"

# An erasure a legal hold keeps from a record says so, and the first sweep
# after the hold is released carries it out.
cat >"$tmp/held.jsonl" <<J
{"account": {"id": "beta"}}
{"agent": {"id": "bob", "devices": {"softphone": "sip:bob@pbx.example"}, "status": "available"}}
{"queue": {"id": "support", "policy": "longest-idle", "members": [{"agent": "bob"}]}}
{"type": "offer", "call": "h1", "queue": "support", "caller": "+442079460002"}
{"advance": 3.95}
{"type": "abandon", "call": "h1"}
J
run "$sb" replay "$tmp/held.jsonl" --data-dir "$data" --policy-dir policies
ok $rc "account beta with one call of +442079460002" "$(shown)"
run "$sb" records get --data-dir "$data" --account beta h1
check 0 "its record reads with reals as the API writes them" out '"wait": 3.95'
! has "$out" "3.950000"
ok $? "... not as 3.9500000000000002" "$(shown)"
run "$sb" records hold --data-dir "$data" --account beta --call h1 --reason dispute --id hb
check 0 "a hold on it" out "hb"
run "$sb" records list --data-dir "$data" --account beta
check 0 "the list says which holds cover a record" out "(held by hb)"
run "$sb" records get --data-dir "$data" --account beta h1
check 0 "so does its record" out '"held_by": ['
run "$sb" records erase +442079460002 --data-dir "$data" --account beta
check 0 "erase under a hold: exit 0" out "1 under a legal hold: the request reaches them"
run "$sb" records release --data-dir "$data" --account beta hb
check 0 "the hold released" out "hb"
run "$sb" sweep --data-dir "$data"
check 0 "the next sweep says how many records the erasure run again reached, before the decisions" out "0 reviewed, 1 record reached by erasure requests run again now that a legal hold was released (0 kept, 0 anonymized, 1 deleted"
run "$sb" records get --data-dir "$data" --account beta h1
check 1 "has deleted the record the erasure asked for" err "h1"

# A hold's reason cannot paint the terminal of whoever lists the holds: its
# control characters are stored as spaces, and the list shows none.
paint=$(printf 'dispute\r\n\033[2J\033[31mFAKE: all holds released\302\233m')
run "$sb" records hold --data-dir "$data" --account beta --from 2026-01-05 --to 2026-01-06 \
    --reason "$paint" --id hpaint
check 0 "a hold whose reason has CR, LF, escapes and a C1 CSI" out "hold hpaint placed"
ctl=$(printf '[\001-\037\177]')
! printf '%s' "$out" | tr -d '\n' | grep -q "$ctl" && ! printf '%s' "$out" | grep -q "$(printf '\302\233')"
ok $? "... is told back with no control character" "$(shown | od -c | head -20)"
run "$sb" records holds --data-dir "$data" --account beta
check 0 "the list shows it on its line, the escapes as spaces" out \
    "hpaint       range   placed"
[ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] &&
    ! printf '%s' "$out" | tr -d '\n' | grep -q "$ctl" &&
    ! printf '%s' "$out" | grep -q "$(printf '\302\233')" &&
    has "$out" "dispute   [2J [31mFAKE: all holds released  m  calls in progress from"
ok $? "... one line, no control character in it" "$(shown | od -c | head -20)"
run "$sb" records holds --data-dir "$data" --account beta --json
! has "$out" '\r' && ! has "$out" '\u001b'
ok $? "... nor in the JSON: the reason is stored without them" "$(shown)"

# Flags before the command (a slip in a script's loop of commands): one line
# naming the commands, not the whole usage.
run "$sb" records --data-dir "$tmp/none" --account acme list
check 2 "records with its flags before the command: exit 2, one line" err \
    "switchboard: unknown records command '--data-dir'; usage: switchboard records COMMAND [FLAGS], COMMAND one of export, erase, list, get, hold, release, holds, audit, stats (switchboard records --help)"
[ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ]
ok $? "... and nothing more" "$(shown)"

done_testing
