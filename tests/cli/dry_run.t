#!/bin/sh
# tests/cli/dry_run.t — `switchboard sweep --dry-run` as a data-protection
# engineer uses it before changing an account's retention: what the next
# sweep, or one at a later date, would do (counts, reasons, record ids),
# legal holds overriding, a policy file not uploaded previewed over every
# record, failures and a looping hook counted as the sweep counts them; the
# data directory the same byte for byte after every dry run, and the sweep
# that follows doing what the dry run said; bad input refused with the flag
# named. Records are written by replay on its clock (January 2026); the
# dates given to --now are before and after their 90 days.
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh

cat >"$tmp/calls.jsonl" <<J
{"account": {"id": "acme", "retention": "retention/keep-90-days-then-delete"}}
{"agent": {"id": "alice", "devices": {"softphone": "sip:alice@pbx.example"}, "status": "available"}}
{"queue": {"id": "support", "members": [{"agent": "alice"}]}}
{"type": "offer", "call": "c1", "queue": "support", "caller": "+442079460001"}
{"advance": 4}
{"type": "abandon", "call": "c1"}
{"type": "offer", "call": "c2", "queue": "support", "caller": "+442079460002"}
{"advance": 4}
{"type": "abandon", "call": "c2"}
{"type": "offer", "call": "c3", "queue": "support", "caller": "+442079460003"}
{"advance": 4}
{"type": "abandon", "call": "c3"}
{"account": {"id": "bare"}}
J
data="$tmp/data"
run "$sb" replay "$tmp/calls.jsonl" --data-dir "$data" --policy-dir policies
ok $rc "a data directory with three calls" "$(shown)"
run "$sb" records hold --data-dir "$data" --account acme --call c2 --reason "dispute 7" --id h1
ok $rc "a legal hold on c2" "$(shown)"

sum() { cksum <"$data/data.mdb"; }
before=$(sum)
# unchanged NAME: the data directory is as it was before the dry runs
unchanged() {
    [ "$(sum)" = "$before" ]
    ok $? "$1: the data is unchanged" "$(shown)"
}

run "$sb" sweep --dry-run --data-dir "$data" --account acme --now 2026-03-01
check 0 "before the 90 days: nothing is due" out "0 reviewed"
has "$out" "policy retention/keep-90-days-then-delete version "
ok $? "... the summary names the policy and its version" "$(shown)"
has "$out" "nothing was changed"
ok $? "... and says nothing was changed" "$(shown)"
unchanged "a dry run"

run "$sb" sweep --dry-run --data-dir "$data" --account acme --now 2026-05-01
check 0 "after the 90 days: all three are due" out "3 reviewed: 1 kept (1 overridden by legal holds, 0 failed), 0 anonymized, 2 deleted"
has "$out" "       2  delete: older than 90 days" && has "$out" "       1  keep: legal hold h1: dispute 7"
ok $? "... the reasons, with their counts" "$(shown)"
has "$out" "deleted: c1 c3" && has "$out" "overridden: c2"
ok $? "... and the records of each decision" "$(shown)"
run "$sb" sweep --dry-run --data-dir "$data" --account acme --now 2026-05-01 --sample 1
check 0 "--sample 1: one id of each" out "deleted, for example: c1"
unchanged "dry runs at a later date"

# A policy not uploaded: every record, as a change of retention to it.
cat >"$tmp/new.lua" <<'L'
local P = {}
function P.retain(record, ctx)
  if record.id == "c3" then error("cannot decide " .. record.id .. " (see old-retention/new.lua:9)") end
  return { anonymize = true, review_in_days = 30, reason = "new rule" }
end
return P
L
run "$sb" sweep --dry-run --data-dir "$data" --account acme --policy "$tmp/new.lua" --policy-name retention/new --now 2026-02-01
check 3 "a policy file: every record; a failure exits 3" out "3 reviewed: 2 kept (1 overridden by legal holds, 1 failed), 1 anonymized, 0 deleted"
has "$out" "every record, policy retention/new (the source given)"
ok $? "... named as given, the source given" "$(shown)"
has "$out" "failed: $tmp/new.lua:3: cannot decide c3 (see old-retention/new.lua:9)" &&
    ! has "$out" " retention/new.lua"
ok $? "... the failure with file:line, of the file given (not the name it ran under; another name ending so left alone)" "$(shown)"
run "$sb" sweep --dry-run --data-dir "$data" --account acme --policy "$tmp/new.lua" --json --now 2026-02-01
check 3 "--json" out '"anonymized": 1'
has "$out" '"scope": "all"' && has "$out" '"source": "given"' && has "$out" '"c2"'
ok $? "... with the scope, the source and the samples" "$(shown)"
has "$out" "\"failed: $tmp/new.lua:3: cannot decide c3 (see old-retention/new.lua:9)\": 1" &&
    has "$out" '"policy": "retention/keep-90-days-then-delete"'
ok $? "... the failure of the file given, under the account's retention name" "$(shown)"
run "$sb" sweep --dry-run --data-dir "$data" --account acme --policy "$tmp/new.lua" --scope due --now 2026-02-01
check 0 "--scope due: the records' own review dates (none yet)" out "0 reviewed"
run "$sb" sweep --dry-run --data-dir "$data" --account acme --policy-name retention/anonymize-30-days-delete-2-years --now 2026-03-01
check 0 "a stored policy by name" out "2 anonymized"
printf 'local P = {}\nfunction P.retain(r, c) while true do end end\nreturn P\n' >"$tmp/loop.lua"
run "$sb" sweep --dry-run --data-dir "$data" --account acme --policy "$tmp/loop.lua"
check 3 "a hook that loops: each review fails on its budget" out "3 failed"
has "$out" "instructions"
ok $? "... saying so" "$(shown)"
unchanged "dry runs of other policies"

# Bad input: named, exit 1 or 2, nothing changed.
printf 'local P = {\nfunction P.retain(\n' >"$tmp/broken.lua"
printf 'return { route = function() end }\n' >"$tmp/route.lua"
while IFS='|' read -r st what args pat; do
    # shellcheck disable=SC2086
    run "$sb" sweep --dry-run --data-dir "$data" $args
    check "$st" "$what: exit $st" err "$pat"
done <<T
1|an unknown account|--account nobody|no such account
2|no account|--now 2026-01-01|--account ID is required
2|negative days|--account acme --in-days -1|--in-days '-1': expected a whole number from 0 to 36600
2|too many days|--account acme --in-days 40000|expected a whole number from 0 to 36600
2|--now and --in-days|--account acme --now 2026-01-01 --in-days 3|give --now or --in-days, not both
2|a --now that is no time|--account acme --now soon|--now 'soon' is not a time
2|an unknown scope|--account acme --scope some|--scope 'some': expected due or all
2|a sample too large|--account acme --sample 1001|expected a whole number from 0 to 1000
2|a flag sweep --dry-run does not take|--account acme --budget-ms 5|sweep --dry-run does not take --budget-ms
1|a policy file that is not there|--account acme --policy $tmp/none.lua|none.lua: No such file
1|a policy file that does not compile|--account acme --policy $tmp/broken.lua|(--policy $tmp/broken.lua)
1|a policy file without retain|--account acme --policy $tmp/route.lua|the source previewed as 'retention/keep-90-days-then-delete' has no retain hook; records are reviewed by a policy that defines retain (--policy $tmp/route.lua)
1|a stored policy that is not there|--account acme --policy-name retention/nope|no policy 'retention/nope' for account acme (neither its own nor a shared one) (--policy-name retention/nope)
2|an empty --policy-name|--account acme --policy-name=|--policy-name needs a value
1|a file for an account with no retention policy|--account bare --policy $tmp/route.lua|the account has no retention policy: name the one the source is to be previewed as with --policy-name NAME
T
# --policy-dir would store the directory's policies in the data: refused.
mkdir "$tmp/pol2" && cp -r policies/. "$tmp/pol2" &&
    sed -i 's/older than 90 days/older than ninety days/' "$tmp/pol2/retention/keep-90-days-then-delete.lua" \
        "$tmp/pol2/retention/keep-90-days-then-delete.cases.json"
run "$sb" sweep --dry-run --data-dir "$data" --account acme --policy-dir "$tmp/pol2"
check 2 "--policy-dir: refused, saying why" err "sweep --dry-run does not take --policy-dir: loading a policy directory stores its policies in the data"
run "$sb" sweep --data-dir "$data" --account acme
check 2 "sweep --account without --dry-run: refused, pointing at the dry run" err "does not take --account (switchboard sweep --help lists its flags; what a sweep would do to one account: sweep --dry-run --account ID)"
run "$sb" records list --data-dir "$data" --account acme --dry-run
check 2 "records list refuses --dry-run" err "does not take --dry-run"
unchanged "refused dry runs"

run "$sb" sweep --dry-run --help
check 0 "sweep --dry-run --help" out "Nothing is written"

# The sweep then does what the dry run at its time says (the real clock,
# months past the records' 90 days).
run "$sb" sweep --dry-run --data-dir "$data" --account acme
check 0 "the dry run now" out "3 reviewed: 1 kept (1 overridden by legal holds, 0 failed), 0 anonymized, 2 deleted"
run "$sb" sweep --data-dir "$data" --quiet
check 0 "the sweep does the same" out "3 reviewed (1 kept, 0 anonymized, 2 deleted; 1 overridden by legal holds, 0 failed)"
[ "$(sum)" != "$before" ]
ok $? "... and changed the data, as the dry runs did not" "$(shown)"
# The audit log's line for the overridden record says the hold, then what
# the policy decided and said, each once.
run "$sb" records audit --data-dir "$data" --account acme
line=$(printf '%s\n' "$out" | grep " review   keep ")
[ "$rc" -eq 0 ] && has "$line" " c2           legal hold h1: dispute 7 (policy: delete: older than 90 days)" &&
    [ "$(printf '%s' "$line" | grep -o delete | wc -l)" -eq 1 ]
ok $? "records audit: the overridden record's line says the hold and the policy's decision once" "$(shown)"

done_testing
