#!/bin/sh
# tests/cli/operator.t — the `switchboard` command as an operator and a
# compliance officer use it: replay and simulate refuse a data directory a
# running daemon holds (they run their own clock and would write into its
# data), and change nothing there; records, sweep and backup refuse flags
# their command does not take (an erasure with --from is not an erasure of
# that range) and name a missing --account or argument; the sweep's progress
# bar never claims 100% before it knows how much there is; CSV exports quote
# commas, quotes and newlines; a command under a file size limit says the
# storage is full instead of dying of SIGXFSZ; output that cannot be written
# (a full disk) is an error, not exit 0; replay's and simulate's temporary
# data directory goes also when `| head` or a signal ends them; `version`
# takes no arguments.
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh

cat >"$tmp/calls.jsonl" <<'J'
{"account": {"id": "acme"}}
{"agent": {"id": "alice", "devices": {"softphone": "sip:alice@pbx.example"}, "status": "available"}}
{"queue": {"id": "support", "policy": "longest-idle", "ring_timeout": 15, "wrapup": 0, "members": [{"agent": "alice"}]}}
{"type": "offer", "call": "c1", "queue": "support", "caller": "+442079460001", "attrs": {"note": "a, \"b\"\nc", "uni": "café ☎"}}
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

# --- a data directory in use by a running daemon -------------------------
live="$tmp/live"
"$sb" serve --data-dir "$live" --listen 127.0.0.1:0 --policy-dir policies --sync none \
    >/dev/null 2>"$tmp/serve.log" &
serve_pid=$!
if wait_for "$tmp/serve.log" 'msg="listening"'; then
    ok 0 "a daemon runs on $live"
    printf '{"account": {"id": "intruder"}}\n' >"$tmp/intruder.jsonl"
    run "$sb" replay "$tmp/intruder.jsonl" --data-dir "$live" --policy-dir policies
    check 1 "replay refuses a data directory a running daemon holds" err \
        "in use by a running \`switchboard serve\` (pid $serve_pid)"
    [ -z "$out" ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ]
    ok $? "... with one line on stderr and nothing on stdout" "$(shown)"
    run "$sb" simulate --calls 5 --data-dir "$live" --policy-dir policies
    check 1 "simulate refuses it too" err "in use by a running \`switchboard serve\`"
    run "$sb" records list --data-dir "$live" --account intruder
    check 1 "records beside the daemon still work: the replay created no account" err \
        "no such account 'intruder'"
    run "$sb" sweep --data-dir "$live"
    check 0 "sweep beside the daemon works" out "sweep done"
    # A policy directory loaded beside the daemon would be stored in its
    # data and route its calls from then on, behind its back.
    before=$(cksum <"$live/data.mdb")
    run "$sb" sweep --data-dir "$live" --policy-dir policies
    check 1 "sweep --policy-dir beside the daemon is refused, saying why" err \
        "--policy-dir would store the policies of policies in $live, which a running \`switchboard serve\` (pid $serve_pid) routes with: leave --policy-dir out"
    run "$sb" records erase --data-dir "$live" --account demo --policy-dir policies "+442079460001"
    check 1 "... and so is records erase --policy-dir" err "which a running \`switchboard serve\`"
    [ "$(cksum <"$live/data.mdb")" = "$before" ]
    ok $? "... neither wrote anything" "$(shown)"
    kill -TERM "$serve_pid"
    wait "$serve_pid"
    ok $? "the daemon stops, exit 0" "$(cat "$tmp/serve.log")"
    run "$sb" records list --data-dir "$live" --account demo
    check 1 "simulate created no demo account in the daemon's data" err "no such account 'demo'"
    run "$sb" replay "$tmp/intruder.jsonl" --data-dir "$live" --policy-dir policies
    check 0 "once the daemon has stopped, replay uses the directory (serve.lock left)" err \
        "replay: 1 line, 0 errors"
else
    kill -KILL "$serve_pid" 2>/dev/null
    wait "$serve_pid" 2>/dev/null
    ok 1 "a daemon runs on $live" "$(cat "$tmp/serve.log")"
fi

# --- flags a command does not take ----------------------------------------
snapshot() { "$sb" records export +442079460001 --data-dir "$data" --account acme --format csv; }
before=$(snapshot)
for c in "records erase +442079460001 --account acme --from 2026-01-05 --to 2026-01-06|--from" \
    "records erase +442079460001 --account acme --call c1|--call" \
    "records list --account acme --number +442079460001|--number" \
    "records export +442079460001 --account acme --from 2026-01-05|--from" \
    "records holds --account acme --reason x|--reason" \
    "records get c1 --account acme --quiet|--quiet" \
    "records hold --account acme --call c1 --reason x --limit 5|--limit" \
    "sweep --account acme|--account" \
    "sweep --format csv|--format" \
    "backup --account acme $tmp/bk|--account"; do
    cmd=${c%|*} flag=${c#*|}
    # shellcheck disable=SC2086
    run "$sb" $cmd --data-dir "$data"
    [ "$rc" -eq 2 ] && has "$err" "does not take $flag" && [ -z "$out" ] &&
        [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ]
    ok $? "$cmd: exit 2, one line naming $flag" "$(shown)"
done
[ "$(snapshot)" = "$before" ] && [ ! -e "$tmp/bk" ] && [ -n "$before" ]
ok $? "... and nothing was erased, held or backed up" "$(snapshot)"
run "$sb" records holds --data-dir "$data" --account acme
ok $? "no hold was placed" "$(shown)"
[ -z "$out" ]
ok $? "... the hold list is empty" "$(shown)"
has "$err" "no legal holds in account acme"
ok $? "... and stderr says so, rather than nothing at all" "$(shown)"
# Flags each command does take still work.
run "$sb" records list --data-dir "$data" --account acme --from 2026-01-05 --to 2026-01-06 \
    --queue support --limit 1 --json --key-file "$data/master.key"
check 0 "records list with all of its flags" out '"id": "c2"'
# A command that runs no policy takes no policy directory: loading one
# stores its policies in the data.
for c in "list" "export +442079460001" "audit" "holds" "stats" "get c1"; do
    # shellcheck disable=SC2086
    run "$sb" records $c --data-dir "$data" --account acme --policy-dir policies
    check 2 "records ${c%% *} refuses --policy-dir, saying why" err \
        "records ${c%% *} does not take --policy-dir: it runs no policy"
done
run "$sb" records audit --data-dir "$data" --account acme --after 0 --limit 5
ok $rc "records audit --after --limit" "$(shown)"
run "$sb" sweep --data-dir "$data" --budget-ms 0 --quiet --policy-dir policies
check 0 "sweep with --budget-ms, --quiet and --policy-dir" out "sweep done"

# --- a page that may not be all of it says so ------------------------------
run "$sb" records list --data-dir "$data" --account acme --limit 1
check 0 "records list --limit 1: one record on stdout" out "c2 "
! has "$out" "c1 " && has "$err" "1 record shown (the newest): there may be more"
ok $? "... and stderr says there may be more" "$(shown)"
next=$(printf '%s\n' "$err" | sed -n 's/.*--before \([0-9]*:c2\)).*/\1/p')
run "$sb" records list --data-dir "$data" --account acme --limit 1 --json
[ "$rc" -eq 0 ] && [ -n "$next" ] && has "$out" "\"next\": \"$next\"" &&
    has "$err" "1 record shown (the newest): there may be more"
ok $? "... and with --json, the JSON's next and stderr say so too" "$(shown)"
run "$sb" records list --data-dir "$data" --account acme --before "$next" --json
[ "$rc" -eq 0 ] && has "$out" '"id": "c1"' && ! has "$out" '"next"' && [ -z "$err" ]
ok $? "... the next page has the other record, and no next" "$(shown)"
run "$sb" records list --data-dir "$data" --account acme
[ "$rc" -eq 0 ] && [ -z "$err" ]
ok $? "records list showing everything says nothing more" "$(shown)"
"$sb" records hold --data-dir "$data" --account acme --call c1 --reason audit --id h1 >/dev/null &&
    "$sb" records release h1 --data-dir "$data" --account acme >/dev/null
ok $? "a hold placed and released: two audit entries"
# A range's times in milliseconds keep them: 600 ms is not one second to itself.
"$sb" records hold --data-dir "$data" --account acme --from 1767603600000 --to 1767603600600 \
    --reason audit --id short >/dev/null
run "$sb" records holds --data-dir "$data" --account acme
check 0 "a 600 ms range hold is listed with its milliseconds" out \
    "from 2026-01-05T09:00:00Z to 2026-01-05T09:00:00.600Z"
"$sb" records release short --data-dir "$data" --account acme >/dev/null 2>&1
run "$sb" records audit --data-dir "$data" --account acme --limit 1
[ "$rc" -eq 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] &&
    has "$err" "1 entry shown: more may follow (--after 1)"
ok $? "records audit --limit 1: the next page's --after on stderr" "$(shown)"
for c in "list --limit 10001|10000" "list --limit 99999999999999999999|10000" \
    "audit --limit 100001|100000" "audit --limit 99999999999999999999|100000"; do
    args=${c%|*} max=${c#*|}
    # shellcheck disable=SC2086
    run "$sb" records $args --data-dir "$data" --account acme
    check 2 "records $args: exit 2, the range named" err "expected a whole number from 1 to $max"
done

# --- a missing --account or argument is named -------------------------------
run "$sb" records list --data-dir "$data"
check 2 "records list without --account names it" err "records list: --account ID is required"
run "$sb" records export --data-dir "$data" --account acme
check 2 "records export without NUMBER names it" err "records export: NUMBER is missing"
run "$sb" records get c1 c2 --data-dir "$data" --account acme
check 2 "records get with two calls names the extra one" err "records get: unexpected argument 'c2'"
run "$sb" backup --data-dir "$data"
check 2 "backup without DEST names it" err "backup: DEST is missing"
run "$sb" sweep --data-dir "$data" now
check 2 "sweep with an argument names it" err "sweep: unexpected argument 'now'"

# --- an empty value is no value --------------------------------------------
run "$sb" records list --data-dir "$data" --account ""
check 2 "records list --account '': exit 2, named" err "switchboard: --account needs a value (it is empty)"
run "$sb" sweep --data-dir=
check 2 "sweep --data-dir=: exit 2, named" err "switchboard: --data-dir needs a value (it is empty)"

# --- CSV export: RFC 4180 quoting, UTF-8 as it is ---------------------------
run "$sb" records export +442079460001 --data-dir "$data" --account acme --format csv
ok $rc "CSV export" "$(shown)"
printf '%s' "$out" | grep -q "^c1,caller,+442079460001,,support,support,answered,"
ok $? "... one line per record" "$(shown)"
has "$out" '"{""note"":""a, \""b\""\nc"",""uni"":""café ☎""}"'
ok $? "... an attribute with a comma, quotes and a newline is quoted, UTF-8 kept" "$(shown)"
[ "$(printf '%s' "$out" | tr -cd '\r' | wc -c)" -eq 3 ]
ok $? "... lines end in CRLF (a header and two records)" "$(shown)"

# --- the sweep's progress bar -----------------------------------------------
# A retention change makes the next sweep find the records to review as it
# goes: its first progress reports know of none yet.
rdata="$tmp/rdata"
cp -r "$data" "$rdata"
printf '{"account": {"id": "acme", "retention": "retention/keep-90-days-then-delete"}}\n' \
    >"$tmp/ret.jsonl"
run "$sb" replay "$tmp/ret.jsonl" --data-dir "$rdata" --policy-dir policies
ok $rc "a retention policy set on the account" "$(shown)"
run "$sb" sweep --data-dir "$rdata"
check 0 "sweep without a terminal" out "sweep done"
[ -z "$err" ]
ok $? "... draws no progress bar" "$(shown)"
rdata2="$tmp/rdata2"
cp -r "$data" "$rdata2"
run "$sb" replay "$tmp/ret.jsonl" --data-dir "$rdata2" --policy-dir policies
if command -v script >/dev/null 2>&1; then
    run script -qec "\"$sb\" sweep --data-dir \"$rdata2\"" /dev/null
    check 0 "sweep on a terminal" out "sweep done: "
    has "$out" "records so far" || has "$out" " records  "
    ok $? "... draws its progress" "$(shown)"
    ! has "$out" "100%" && ! has "$out" "0/0 records"
    ok $? "... and no percentage, no 100% of 0/0, before it knows the total" "$(shown)"
    # A sweep carried on after one stopped by its budget part way through the
    # rescan: its estimate is the records queued so far, and the rest are
    # found on the way. Until the end, the bar never says 100%.
    sdata="$tmp/sdata"
    printf '{"account": {"id": "demo", "retention": "retention/keep-90-days-then-delete"}}\n' \
        >"$tmp/demo-ret.jsonl"
    "$sb" simulate --calls 3000 --data-dir "$sdata" --policy-dir policies >/dev/null 2>&1 &&
        "$sb" replay "$tmp/demo-ret.jsonl" --data-dir "$sdata" --policy-dir policies >/dev/null 2>&1 &&
        "$sb" sweep --data-dir "$sdata" --budget-ms 1 >/dev/null
    ok $? "3,000 records, a retention change, a sweep stopped after 1 ms"
    run script -qec "\"$sb\" sweep --data-dir \"$sdata\"" /dev/null
    bars=$(printf '%s' "$out" | tr '\r' '\n' | grep ' records ' | grep -v '^sweep ')
    last=$(printf '%s\n' "$bars" | tail -n 1)
    [ "$rc" -eq 0 ] && has "$out" "sweep done" && ! printf '%s\n' "$bars" | sed '$d' | grep -q '100%' &&
        has "$last" "100%" && has "$last" " 3000/3000 records"
    ok $? "... carried on: 100% only once it is done (3000/3000), never on the way" "$(shown)"
else
    ok 0 "# SKIP no script(1) for a terminal"
    ok 0 "# SKIP no script(1) for a terminal"
    ok 0 "# SKIP no script(1) for a terminal"
fi

# --- a file size limit (ulimit -f, systemd's LimitFSIZE) --------------------
# A write past it fails (EFBIG), a full disk to the command: it says so and
# exits 1, where SIGXFSZ killed it part-way (exit 153 from the shell).
run sh -c 'ulimit -f 16 && exec "$0" replay "$1" --data-dir "$2" --policy-dir policies' \
    "$sb" "$tmp/calls.jsonl" "$tmp/limited"
check 1 "replay under a 16-block file size limit: exit 1, not killed by SIGXFSZ" err "File too large"

# --- standard output that cannot be written --------------------------------
# A full disk under `> file` (here /dev/full) loses what the command printed:
# it says so and exits 1, never 0 with the key, the export or the replay gone.
if [ -w /dev/full ]; then
    for c in "policy keygen" \
        "policy sign --key $tmp/sign.key $ROOT/policies/longest-idle.lua" \
        "records export +442079460001 --data-dir $data --account acme --format csv" \
        "records list --data-dir $data --account acme" \
        "replay $tmp/calls.jsonl --policy-dir policies" \
        "simulate --calls 20 --policy-dir policies"; do
        [ -f "$tmp/sign.key" ] || "$sb" policy keygen >"$tmp/sign.key"
        # shellcheck disable=SC2086
        "$sb" $c >/dev/full 2>"$tmp/.err"
        rc=$? out="" err=$(cat "$tmp/.err")
        check 1 "${c%% --*} > /dev/full: exit 1, saying the output is not all there" err \
            "switchboard: standard output: "
    done
else
    ok 0 "# SKIP no writable /dev/full"
fi

# --- a temporary data directory, whatever ends the command -----------------
# replay and simulate without --data-dir work in a directory of their own
# under $TMPDIR (with a master key and the numbers they were given, sealed
# with it): it goes when the command ends, also when `| head` closes the pipe
# (SIGPIPE) or the command is interrupted (SIGINT, SIGTERM, SIGHUP), which end it as
# before, with the signal's status.
td="$tmp/tmpdir"
mkdir "$td"
{
    cat "$tmp/calls.jsonl"
    i=0
    while [ $i -lt 3000 ]; do
        printf '{"type": "offer", "call": "p%d", "queue": "support", "caller": "+442079460001"}\n' $i
        i=$((i + 1))
    done
} >"$tmp/many.jsonl"
first=$(TMPDIR=$td "$sb" replay "$tmp/many.jsonl" --policy-dir policies 2>/dev/null | head -n 1)
[ "$first" = "08:00:00 account" ] && [ -z "$(ls -A "$td")" ]
ok $? "replay | head -n 1: the temporary data directory is removed" \
    "first line: $first; left in \$TMPDIR: $(ls -A "$td")"
first=$(TMPDIR=$td "$sb" simulate --calls 20000 --policy-dir policies 2>/dev/null | head -c 10)
[ -n "$first" ] && [ -z "$(ls -A "$td")" ]
ok $? "simulate | head -c 10: the temporary data directory is removed" "left: $(ls -A "$td")"
# (SIGINT is what Ctrl-C sends; a shell script's background job ignores it,
# so SIGHUP, a closed terminal, stands in for it here.)
for sig in TERM HUP; do
    rm -f "$tmp/fifo"
    mkfifo "$tmp/fifo"
    # The replay reads a FIFO kept open, so it waits there until the signal.
    TMPDIR=$td "$sb" replay "$tmp/fifo" --policy-dir policies >"$tmp/fifo.out" 2>&1 &
    pid=$!
    exec 3>"$tmp/fifo"
    printf '{"account": {"id": "acme"}}\n' >&3
    i=0
    until [ -n "$(ls -A "$td")" ] && grep -q account "$tmp/fifo.out" || [ $i -ge 600 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    made=$(ls -A "$td")
    kill -s "$sig" "$pid"
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 600 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid"
    st=$?
    exec 3>&-
    [ -n "$made" ] && [ -z "$(ls -A "$td")" ] && [ "$(kill -l "$st")" = "$sig" ]
    ok $? "replay ended by SIG$sig: its temporary directory is removed, and it dies of the signal" \
        "made: $made; left: $(ls -A "$td"); status $st; $(cat "$tmp/fifo.out")"
done

# --- version ----------------------------------------------------------------
# The command's version and the library's, one a line: the header's
# SB_VERSION_STRING both, as the command links the library it was built with.
v=$(sed -n 's/^#define SB_VERSION_STRING "\(.*\)"$/\1/p' engine/include/switchboard.h)
run "$sb" version
[ "$rc" -eq 0 ] && [ -n "$v" ] && [ "$out" = "switchboard $v
libswitchboard $v" ]
ok $? "version: the command's and the library's ($v), one a line" "$(shown)"
run "$sb" --version
[ "$rc" -eq 0 ] && [ "$out" = "switchboard $v
libswitchboard $v" ]
ok $? "--version: the same" "$(shown)"
run "$sb" version --bogus
check 2 "version takes no arguments" err "switchboard: version takes no arguments"

# --- the flags each command's --help shows, as switchboard(1) and --help --
# The operator's commands: the usage line of `CMD --help`, the man page's
# heading for it and the command's entry in `switchboard --help` name the
# same flags (sweep --dry-run's --sample and --key-file were missing from
# the last two).
flags() { grep -o -- '--[a-z][a-z-]*' | grep -vx -- '--help\|--dry-run\|--account' | sort -u | tr '\n' ' '; }
run "$sb" --help
top=$out
for c in "sweep" "sweep --dry-run" "backup" "key rotate"; do
    # shellcheck disable=SC2086
    help=$("$sb" $c --help 2>&1 | sed '/^[A-Z]/,$d' | flags)
    case $c in
    "sweep --dry-run")
        man=$(grep '^\.SS sweep \\-\\-dry\\-run' engine/man/switchboard.1 | sed 's/\\-/-/g' | flags)
        usage=$(printf '%s\n' "$top" | sed -n '/^  sweep --dry-run/,/^    *[a-z]/p' | flags) ;;
    sweep)
        man=$(grep '^\.SS sweep \\-\\-data' engine/man/switchboard.1 | sed 's/\\-/-/g' | flags)
        usage=$(printf '%s\n' "$top" | sed -n '/^  sweep --data-dir/,/^    *[a-z]/p' | flags) ;;
    *)
        man=$(grep "^\\.SS $c " engine/man/switchboard.1 | sed 's/\\-/-/g' | flags)
        usage=$(printf '%s\n' "$top" | sed -n "/^  $c /,/^    *[a-z]/p" | flags) ;;
    esac
    [ -n "$help" ] && [ "$help" = "$man" ] && [ "$help" = "$usage" ]
    ok $? "$c: --help, switchboard(1) and switchboard --help name the same flags" \
        "--help: $help
man: $man
switchboard --help: $usage"
done

# serve's flags: its --help, switchboard(1)'s synopsis line and SERVE section
# name the same ones, and switchboard.conf's list of the flags over it all but
# --demo (--key-file was missing from the synopsis and the list).
help=$("$sb" serve --help 2>&1 | sed '/^[A-Z]/,$d' | flags)
syn=$(sed -n '/^\.SH SYNOPSIS/,/^\.SH DESCRIPTION/p' engine/man/switchboard.1 |
    sed -n '/^\.B switchboard serve$/,/^\.br/p' | sed 's/\\-/-/g' | flags)
sec=$(sed -n '/^\.SS serve /,/^\.SS /p' engine/man/switchboard.1 | grep -A1 '^\.TP' |
    grep '^\.B' | sed 's/\\-/-/g' | flags)
conf=$(sed -n '1,/^$/p' examples/switchboard.conf | flags)
# shellcheck disable=SC2086
nodemo=$(printf '%s\n' $help | grep -vx -- --demo | tr '\n' ' ')
[ -n "$help" ] && [ "$help" = "$syn" ] && [ "$help" = "$sec" ] && [ "$nodemo" = "$conf" ]
ok $? "serve: --help, switchboard(1)'s synopsis and SERVE section, switchboard.conf name the same flags" \
    "--help: $help
synopsis: $syn
SERVE: $sec
switchboard.conf: $conf"

done_testing
