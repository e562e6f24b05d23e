#!/bin/sh
# tests/cli/retention_author.t — retention policies as a customer's compliance
# engineer writes them from policies/README.md: every decision form is taken
# or refused naming the field (a date in the past, now, past 100 years, in
# milliseconds, NaN, a number as a string, false); the record view the case
# runner and the engine hand `retain` has every documented field with its
# type (answered nil when nobody answered, personal attributes left out); an
# invalid decision keeps the record as it was, says file:line and the field,
# and the audit says so at writing and at each sweep; the README's worked
# retention examples pass their cases, and run through replay, `records
# erase` and `sweep` as they say; the stock retention policies at their
# boundaries, also with their knobs changed. Records are written by replay on
# its clock (January 2026) and swept on the real one, so every review they
# asked for is due; no result depends on today's date beyond that.
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh


# --- Decisions: each form as the README's table gives it ----------------
# One retain and one erase hook return the Lua expression of each line; the
# case runner must apply it (action, review_in_days) or refuse it naming the
# field.
forms() {
    cat <<'F'
keep with review_in_days|{ keep = true, review_in_days = 30 }|"action":"keep","review_in_days":30
review_in_days alone keeps|{ review_in_days = 30 }|"action":"keep","review_in_days":30
keep_until ten days on|{ keep = true, keep_until = ctx.now + 10 * 86400 }|"action":"keep","review_in_days":10
keep_until alone keeps|{ keep_until = ctx.now + 86400 }|"action":"keep","review_in_days":1
keep for good|{ keep = true }|"action":"keep","review_in_days":null
an empty table keeps for good|{}|"action":"keep","review_in_days":null
anonymize with a review and a reason|{ anonymize = true, review_in_days = 5, reason = "r" }|"action":"anonymize","review_in_days":5,"reason":"r"
anonymize until a date|{ anonymize = true, keep_until = ctx.now + 2 * 86400 }|"action":"anonymize","review_in_days":2
delete with a reason|{ delete = true, reason = "gone" }|"action":"delete","review_in_days":null,"reason":"gone"
the longest review, 36600 days|{ keep = true, review_in_days = 36600 }|"review_in_days":36600
a reason of 128 bytes|{ delete = true, reason = string.rep("x", 128) }|"action":"delete"
keep_until in the past|{ keep = true, keep_until = ctx.now - 86400 }|keep_until: expected a Unix time after now (and within 100 years), got 1767175200
keep_until now|{ keep = true, keep_until = ctx.now }|keep_until: expected a Unix time after now
keep_until past 100 years|{ keep = true, keep_until = ctx.now + 36601 * 86400 }|keep_until: expected a Unix time after now (and within 100 years)
keep_until in milliseconds|{ keep = true, keep_until = (ctx.now + 86400) * 1000 }|keep_until: expected a Unix time after now (and within 100 years), got 1767348000000 (milliseconds? keep_until is in seconds, as ctx.now and os.time are)
keep_until NaN|{ keep = true, keep_until = 0/0 }|keep_until: expected a Unix time after now (and within 100 years), got nan
keep_until infinite|{ keep = true, keep_until = math.huge }|keep_until: expected a Unix time after now (and within 100 years), got inf
keep_until as a date string|{ keep = true, keep_until = "2027-01-01" }|keep_until: expected a Unix time after now (and within 100 years), got '2027-01-01'
review_in_days 0|{ keep = true, review_in_days = 0 }|review_in_days: expected a number of days in (0, 36600], got 0
review_in_days below 0|{ keep = true, review_in_days = -1 }|review_in_days: expected a number of days in (0, 36600], got -1
review_in_days 36601|{ keep = true, review_in_days = 36601 }|review_in_days: expected a number of days in (0, 36600], got 36601
review_in_days NaN|{ keep = true, review_in_days = 0/0 }|review_in_days: expected a number of days in (0, 36600], got nan
review_in_days as a string|{ keep = true, review_in_days = "30" }|review_in_days: expected a number of days in (0, 36600], got '30'
both review dates|{ keep = true, review_in_days = 3, keep_until = ctx.now + 86400 }|'review_in_days' and 'keep_until' cannot go together
keep = false|{ keep = false }|keep: expected true, got false
delete = "yes"|{ delete = "yes" }|delete: expected true, got 'yes'
anonymize and delete|{ anonymize = true, delete = true }|'anonymize' and 'delete' cannot go together
a review date with delete|{ delete = true, review_in_days = 3 }|'review_in_days' goes only with 'keep' or 'anonymize'
a misspelt field|{ keep = true, review_in_dayz = 3 }|unknown field 'review_in_dayz'
a reason that is a number|{ keep = true, reason = 5 }|reason: expected a string, got 5
a reason of 129 bytes|{ delete = true, reason = string.rep("x", 129) }|reason: longer than 128 bytes
a string instead of a table|"delete"|expected a table, got 'delete'
nothing returned|nil|expected a table, got nil
F
}
forms >"$tmp/forms.txt"
{
    echo 'local D = {}'
    i=0
    while IFS='|' read -r what expr want; do
        i=$((i + 1))
        printf 'D["f%s"] = function(ctx) return %s end\n' "$i" "$expr"
    done <"$tmp/forms.txt"
    printf 'local P = {}\nfunction P.retain(record, ctx) return D[record.id](ctx) end\n'
    printf 'function P.erase(record, request, ctx) return D[record.id](ctx) end\nreturn P\n'
} >"$tmp/forms.lua"
i=0
while IFS='|' read -r what expr want; do
    i=$((i + 1))
    printf '[{"name": "f", "record": {"id": "f%s"}, "expect": {"action": "?"}}]\n' "$i" >"$tmp/f.json"
    run "$sb" policy test "$tmp/forms.lua" "$tmp/f.json"
    printf '%s\n' "$out" | grep -F '#   got' | grep -qF -- "$want"
    ok $? "retain: $what" "$(shown)"
done <"$tmp/forms.txt"

# An invalid decision names the hook's line and the field; an error raised
# inside the hook names its own line.
printf '[{"name": "f", "record": {"id": "f12"}, "expect": {"action": "keep"}}]\n' >"$tmp/f.json"
run "$sb" policy test "$tmp/forms.lua" "$tmp/f.json"
check 1 "an invalid decision: file:line of the hook and the field" out \
    "forms.lua:36: retain returned invalid decision: keep_until: expected a Unix time after now"
has "$out" 'action: expected "keep", got "error"'
ok $? "... and the failure says what was expected and what came" "$(shown)"

# erase: one of delete, anonymize or keep; a review date is checked, then
# shown as ignored.
cat >"$tmp/erase.json" <<'J'
[{"name": "keep_until alone", "record": {"id": "f4"}, "request": {}, "expect": {"action": "error"}},
 {"name": "{}", "record": {"id": "f6"}, "request": {}, "expect": {"action": "error"}},
 {"name": "anonymize, review ignored", "record": {"id": "f7"}, "request": {"role": "called"},
  "expect": {"action": "anonymize", "review_in_days": null, "reason": "r"}},
 {"name": "a past date", "record": {"id": "f12"}, "request": {}, "expect": {"action": "error"}}]
J
run "$sb" policy test "$tmp/forms.lua" "$tmp/erase.json"
check 0 "erase: keep_until alone and {} are refused, a past date too, a review ignored" out \
    "# 4 passed, 0 failed"
has "$out" "erase's review_in_days (5) is ignored"
ok $? "... with a note for the ignored review date" "$(shown)"

# --- The record view ------------------------------------------------------
# A policy that checks every documented field's type (and that `answered` is
# nil exactly when nobody answered); any mismatch is an error, so a case or a
# replay with no failure shows the view is as documented.
cat >"$tmp/view.lua" <<'L'
local P = {}
local function is(v, ty, f)
  local got = math.type(v) or type(v)
  if got ~= ty and not (ty == "number" and type(v) == "number") then
    error(("%s: expected %s, got %s"):format(f, ty, got), 0)
  end
end
local function check(r, ctx)
  is(r.id, "string", "id"); is(r.queue, "string", "queue"); is(r.first_queue, "string", "first_queue")
  is(r.outcome, "string", "outcome"); is(r.priority, "integer", "priority")
  is(r.offered, "number", "offered"); is(r.ended, "number", "ended")
  is(r.wait, "number", "wait"); is(r.talk, "number", "talk"); is(r.age_days, "integer", "age_days")
  is(r.attrs, "table", "attrs"); is(r.attempts, "table", "attempts"); is(r.decided_by, "table", "decided_by")
  is(r.anonymized, "boolean", "anonymized"); is(r.legal_hold, "boolean", "legal_hold")
  is(r.overridden, "boolean", "overridden")
  if r.outcome == "answered" then
    is(r.answered, "number", "answered")
    if r.answered < r.offered or r.answered > r.ended then error("answered out of order", 0) end
  elseif r.answered ~= nil then
    error("answered: expected nil for " .. r.outcome, 0)
  end
  if r.offered > r.ended then error("offered after ended", 0) end
  if r.agent ~= nil then is(r.agent, "string", "agent") end
  if r.attrs.customer_name ~= nil then error("a personal attribute reached the hook", 0) end
  for i, a in ipairs(r.attempts) do
    is(a.agent, "string", "attempts[" .. i .. "].agent"); is(a.device, "string", "device")
    is(a.outcome, "string", "attempt outcome"); is(a.start, "number", "start")
    is(a.duration, "number", "duration")
  end
  for _, d in ipairs(r.decided_by) do is(d.policy, "string", "policy"); is(d.version, "string", "version") end
  ctx.log(r.id, r.outcome, "attempts", #r.attempts, "decided_by", #r.decided_by,
    "answered", r.answered ~= nil, "attrs.ticket", r.attrs.ticket)
end
function P.retain(record, ctx) check(record, ctx); return { keep = true } end
function P.erase(record, request, ctx)
  check(record, ctx)
  is(request.role, "string", "role"); is(request.received, "number", "received")
  return { delete = true }
end
return P
L
cat >"$tmp/view.cases.json" <<'J'
[{"name": "defaults", "record": {}, "expect": {"action": "keep"}},
 {"name": "a full record", "record": {"id": "c9", "queue": "sales", "first_queue": "support",
   "agent": "alice", "priority": 7, "age_days": 3, "wait": 4.5, "talk": 60, "attrs": {"dispute": true},
   "attempts": [{"agent": "bob", "device": "mobile", "outcome": "no_answer", "start": 1767000000, "duration": 15}],
   "decided_by": [{"policy": "longest-idle", "version": "abc"}],
   "anonymized": true, "legal_hold": true, "overridden": true}, "expect": {"action": "keep"}},
 {"name": "abandoned", "record": {"outcome": "abandoned", "wait": 30}, "expect": {"action": "keep"}},
 {"name": "an erasure", "record": {}, "request": {"role": "called"}, "expect": {"action": "delete"}}]
J
run "$sb" policy test "$tmp/view.lua"
check 0 "the case runner's record view has every documented field and type" out "# 4 passed, 0 failed"

# The engine's view: an answered call rung on two agents, a transferred call
# abandoned, a personal attribute. Replay writes them; retain runs then.
calls() { # calls RETENTION_FILE: the JSON lines of account acme and four calls
    cat <<J
{"account": {"id": "acme", "personal_attrs": ["customer_name"]}}
{"policy": "ret", "file": "$1"}
{"account": {"id": "acme", "retention": "ret", "personal_attrs": ["customer_name"]}}
{"agent": {"id": "alice", "devices": {"softphone": "sip:alice@pbx.example"}, "status": "available"}}
{"agent": {"id": "bob", "devices": {"softphone": "sip:bob@pbx.example"}, "status": "available"}}
{"queue": {"id": "billing", "policy": "asterisk/linear", "ring_timeout": 15, "wrapup": 0, "members": [{"agent": "bob"}, {"agent": "alice"}]}}
{"queue": {"id": "support", "policy": "longest-idle", "ring_timeout": 15, "wrapup": 0, "members": [{"agent": "alice"}]}}
{"type": "offer", "call": "b1", "queue": "billing", "caller": "+442079460001", "called": "+442079460999", "priority": 5, "attrs": {"customer_name": "Jane", "ticket": "T-1"}}
{"advance": 15}
{"advance": 3}
{"type": "ring_result", "call": "b1", "agent": "alice", "outcome": "answered"}
{"advance": 60.5}
{"type": "hangup", "call": "b1"}
{"type": "offer", "call": "s1", "queue": "support", "caller": "+442079460001", "attrs": {"dispute": true}}
{"advance": 2}
{"type": "ring_result", "call": "s1", "agent": "alice", "outcome": "answered"}
{"advance": 30}
{"type": "hangup", "call": "s1"}
{"type": "offer", "call": "b2", "queue": "billing", "caller": "+442079460002"}
{"type": "transfer", "call": "b2", "queue": "support"}
{"advance": 3}
{"type": "abandon", "call": "b2"}
J
}
calls "$tmp/view.lua" >"$tmp/view.jsonl"
run "$sb" replay "$tmp/view.jsonl" --data-dir "$tmp/view" --policy-dir policies
check 0 "the engine's record view, at writing: no failure" err "0 policy failures"
has "$err" "b1 answered attempts 2 decided_by 1 answered true attrs.ticket T-1" &&
    has "$err" "b2 abandoned attempts 2 decided_by 2 answered false"
ok $? "... two ring attempts, the policies that decided, answered nil when abandoned" "$(shown)"
run "$sb" records erase +442079460999 --data-dir "$tmp/view" --account acme
check 0 "... and at an erasure of the called number (role, received)" out "deleted 1"
has "$err" "policy log: account=acme policy=ret: b1 answered attempts 2"
ok $? "... where the erase hook's ctx.log lines show, as in replay and the daemon" "$(shown)"

# --- Invalid decisions in the engine ---------------------------------------
cat >"$tmp/bad.lua" <<'L'
local P = {}
function P.retain(record, ctx)
  if record.queue == "support" and record.outcome == "answered" then
    return { keep = true, keep_until = ctx.now - 86400 }
  end
  if record.outcome == "abandoned" then
    return { anonymize = true, review_in_days = 0 / 0 }
  end
  return { keep = true, review_in_days = "730" }
end
function P.erase(record, request, ctx)
  return { delete = true, review_in_days = 3 }
end
return P
L
calls "$tmp/bad.lua" >"$tmp/bad.jsonl"
run "$sb" replay "$tmp/bad.jsonl" --data-dir "$tmp/bad" --policy-dir policies
check 1 "invalid decisions at writing: replay says 3 policy failures, exit 1 (routing was not affected)" \
    err "3 policy failures (0 routing decisions fell back)"
has "$err" "ret.lua:2: retain returned invalid decision: review_in_days: expected a number of days in (0, 36600], got '730'" &&
    has "$err" "ret.lua:2: retain returned invalid decision: keep_until: expected a Unix time after now" &&
    has "$err" "review_in_days: expected a number of days in (0, 36600], got nan"
ok $? "... each logged with file:line and the field" "$(shown)"
run "$sb" records audit --data-dir "$tmp/bad" --account acme
[ "$rc" -eq 0 ] && [ "$(printf '%s\n' "$out" | grep -c ' write    error ')" -eq 3 ] &&
    has "$out" "b1           ret.lua:2: retain returned invalid decision: review_in_days"
ok $? "... and in the audit log, as errors at writing" "$(shown)"
run "$sb" records list --data-dir "$tmp/bad" --account acme
[ "$rc" -eq 0 ] && [ "$(printf '%s\n' "$out" | grep -c 'T08:0')" -eq 3 ]
ok $? "... the records kept" "$(shown)"
run "$sb" records get --data-dir "$tmp/bad" --account acme b2
check 0 "... as they were (not anonymized)" out '"anonymized": false'
run "$sb" sweep --data-dir "$tmp/bad"
check 3 "the sweep tries them again, and exits 3 as some failed" out "3 reviewed (3 kept, 0 anonymized, 0 deleted; 0 overridden by legal holds, 3 failed)"
! has "$out" "erasure requests run again"
ok $? "... and does not claim erasure requests ran again (no hold was ever placed)" "$(shown)"
run "$sb" records audit --data-dir "$tmp/bad" --account acme --after 3
[ "$(printf '%s\n' "$out" | grep -c ' review   error ')" -eq 3 ]
ok $? "... each failure in the audit log again, as a review" "$(shown)"
run "$sb" sweep --data-dir "$tmp/bad"
check 0 "a failed record is retried a day later, not in the next sweep" out "sweep done: 0 reviewed"
run "$sb" records erase +442079460001 --data-dir "$tmp/bad" --account acme
check 3 "an invalid erase decision: exit 3" err "erasure incomplete: 2 records kept"
has "$out" "ret.lua:12: erase returned invalid decision: 'review_in_days' goes only with 'keep' or 'anonymize'"
ok $? "... naming file:line and the field" "$(shown)"
run "$sb" records list --data-dir "$tmp/bad" --account acme
[ "$(printf '%s\n' "$out" | grep -c 'T08:0')" -eq 3 ]
ok $? "... and every record is still there" "$(shown)"

# Reasons: bytes that are not UTF-8 or control characters in a reason. The
# audit log must list every deletion, and its text lines stay one a line.
cat >"$tmp/reason.lua" <<'L'
local P = {}
function P.retain(record, ctx)
  if record.age_days == 0 then return { keep = true, review_in_days = 1 } end
  if record.id == "b1" then return { delete = true, reason = "two\nlines" } end
  if record.id == "s1" then return { delete = true, reason = "bad \255 byte" } end
  return { delete = true, reason = "for +442079460002" }
end
return P
L
calls "$tmp/reason.lua" >"$tmp/reason.jsonl"
run "$sb" replay "$tmp/reason.jsonl" --data-dir "$tmp/reason" --policy-dir policies
ok $rc "three records whose reviews give odd reasons" "$(shown)"
run "$sb" sweep --data-dir "$tmp/reason"
check 0 "the sweep deletes them" out "3 deleted"
run "$sb" records audit --data-dir "$tmp/reason" --account acme --json
has "$out" "for [number]"
ok $? "a number in a reason is written [number] in the audit log" "$(shown)"
[ "$(printf '%s\n' "$out" | grep -c '"seq"')" -eq 3 ]
ok $? "every deletion is listed in the audit log, also one whose reason is not UTF-8" "$(shown)"
# Reasons take any bytes, as route reasons do (tests/badinput/policy_values.t);
# the audit shows them cleaned, one entry a line.
run "$sb" records audit --data-dir "$tmp/reason" --account acme
has "$out" "two lines" && has "$out" "bad ? byte" &&
    [ "$(printf '%s\n' "$out" | grep -c ' delete ')" -eq 3 ]
ok $? "the audit shows a reason with a line break on its line, bytes that are not UTF-8 as ?" \
    "$(shown)"

# --- The README's worked retention examples ----------------------------------
# block TITLE LANG: the first LANG code block after the paragraph starting TITLE
block() {
    awk -v t="$1" -v l="$2" 'index($0, t) == 1 {on = 1} on && $0 == "```" l {in_b = 1; next}
        in_b && /^```$/ {exit} in_b {print}' policies/README.md
}
block '**Retention: billing calls two years' lua >"$tmp/billing.lua"
block '**Retention: billing calls two years' json >"$tmp/billing.cases.json"
block '**Until the end of a calendar year' lua >"$tmp/year.lua"
block '**Until the end of a calendar year' json >"$tmp/year.cases.json"
[ -s "$tmp/billing.lua" ] && [ -s "$tmp/billing.cases.json" ] && [ -s "$tmp/year.lua" ] &&
    [ -s "$tmp/year.cases.json" ]
ok $? "the README's retention examples and their cases are found"
for f in billing year; do
    run "$sb" policy check "$tmp/$f.lua"
    check 0 "README's $f example passes policy check" out "ok"
    run "$sb" policy test "$tmp/$f.lua"
    check 0 "... and its cases" out "0 failed"
done
if command -v luacheck >/dev/null 2>&1; then
    run luacheck --config policies/.luacheckrc "$tmp/billing.lua" "$tmp/year.lua"
    ok $rc "... and luacheck with the stock configuration" "$(shown)"
fi

# Through the engine, with the two years made a hundred so that no result
# depends on today's date: at writing every record is kept whole for 30 days;
# an erasure of +442079460001 anonymizes the billing call b1 and keeps the
# disputed s1 (audited); the sweep, months later, deletes s1 at 90 days
# (disputes are never anonymized) and the abandoned b2.
sed 's/SHORT, LONG = 90, 730/SHORT, LONG = 90, 36500/' "$tmp/billing.lua" >"$tmp/billing100.lua"
calls "$tmp/billing100.lua" >"$tmp/billing.jsonl"
run "$sb" replay "$tmp/billing.jsonl" --data-dir "$tmp/billing" --policy-dir policies
check 0 "billing example: replay writes three records" err "0 policy failures"
run "$sb" records erase +442079460001 --data-dir "$tmp/billing" --account acme
check 0 "an erasure of the caller" out "deleted 0, anonymized 1, kept 1"
run "$sb" records audit --data-dir "$tmp/billing" --account acme
has "$out" "erasure  anonymize     b1           billing record" &&
    has "$out" "erasure  keep          s1           dispute: kept for the legal claim"
ok $? "... anonymizes the billing call and keeps the disputed one, both audited" "$(shown)"
run "$sb" sweep --data-dir "$tmp/billing"
check 0 "the sweep months later (the billing call anonymized already: a keep)" out "3 reviewed (1 kept, 0 anonymized, 2 deleted"
run "$sb" records list --data-dir "$tmp/billing" --account acme
[ "$(printf '%s\n' "$out" | grep -c 'T08:0')" -eq 1 ] && has "$out" "b1 "
ok $? "... leaves only the billing call" "$(shown)"
run "$sb" records audit --data-dir "$tmp/billing" --account acme
has "$out" "review   delete        s1           older than 90 days" &&
    has "$out" "review   delete        b2           older than 90 days"
ok $? "... and audits both deletions with the policy's reason" "$(shown)"

# --- The stock retention policies through the engine -------------------------
stock() { # stock NAME: replay the calls under policies/retention/NAME.lua, then sweep
    calls "$ROOT/policies/retention/$1.lua" >"$tmp/$1.jsonl"
    "$sb" replay "$tmp/$1.jsonl" --data-dir "$tmp/$1" --policy-dir policies >"$tmp/$1.out" 2>&1 &&
        "$sb" sweep --data-dir "$tmp/$1" >>"$tmp/$1.out" 2>&1
}
left() { # left NAME: the ids of the records left, sorted, on one line
    "$sb" records list --data-dir "$tmp/$1" --account acme | awk '{print $1}' | sort | tr '\n' ' '
}
stock keep-90-days-then-delete
[ "$(left keep-90-days-then-delete)" = "" ]
ok $? "keep-90-days-then-delete: nothing is left after 90 days" "$(cat "$tmp/keep-90-days-then-delete.out")"
stock delete-abandoned-7-days
[ "$(left delete-abandoned-7-days)" = "b1 s1 " ]
ok $? "delete-abandoned-7-days: the abandoned call is gone, the answered ones stay" \
    "$(left delete-abandoned-7-days)"
for p in anonymize-30-days-delete-2-years tax-7-years; do
    stock $p
    # b2 bills nothing (tax) or is anonymized, then deleted at two years: a
    # record left must be anonymized, whatever day this runs.
    whole=
    for id in $(left $p); do
        "$sb" records get --data-dir "$tmp/$p" --account acme "$id" | grep -q '"anonymized": true' ||
            whole="$whole $id"
    done
    [ -z "$whole" ]
    ok $? "$p: no record older than 30 days is left whole" "left whole:$whole"
done

# A knob changed as the header invites: tax-7-years with YEARS = 10 must keep
# a billing record ten calendar years, which can hold three 29 Februaries
# (1 January 2027 to 1 January 2037: 3,653 days).
sed 's/^local YEARS = 7$/local YEARS = 10/' policies/retention/tax-7-years.lua >"$tmp/tax10.lua"
grep -q '^local YEARS = 10$' "$tmp/tax10.lua"
ok $? "tax-7-years' YEARS knob is found"
cat >"$tmp/tax10.cases.json" <<'J'
[{"name": "a day before ten years (three leap days)", "record": {"age_days": 3652, "anonymized": true},
  "expect": {"action": "anonymize", "review_in_days": 1}},
 {"name": "ten years", "record": {"age_days": 3653, "anonymized": true}, "expect": {"action": "delete"}}]
J
run "$sb" policy test "$tmp/tax10.lua" "$tmp/tax10.cases.json"
check 0 "tax-7-years with YEARS = 10 keeps a record ten calendar years, leap days included" out \
    "# 2 passed, 0 failed"

# --- The case runner's records are ones the engine writes ---------------------
cat >"$tmp/who.lua" <<'L'
local P = {}
function P.retain(record, ctx)
  return { keep = true, reason = tostring(record.agent) .. " " .. tostring(record.answered ~= nil) }
end
return P
L
cat >"$tmp/who.cases.json" <<'J'
[{"name": "answered: someone answered it", "record": {"outcome": "answered"},
  "expect": {"action": "keep", "reason": "a1 true"}},
 {"name": "abandoned: nobody did", "record": {"outcome": "abandoned"},
  "expect": {"action": "keep", "reason": "nil false"}}]
J
run "$sb" policy test "$tmp/who.lua" "$tmp/who.cases.json"
check 0 "an answered case record has an agent (a1) and an answer time; an abandoned one neither" \
    out "# 2 passed, 0 failed"

# --- policy check: a decision's field names, before deployment --------------
# A table a hook returns as written ({ ... } or a local {} given fields) must
# have only its decision's fields; one that is not is named with the field it
# is close to, at its line. A table not returned, a field inside a pause, and
# a correct decision say nothing.
cat >"$tmp/dtypo.lua" <<'L'
local P = {}
function P.route(call, agents, ctx)
  if #agents == 0 then return { wiat = 10 } end
  return { ring = agents[1].id, pause = { agent = agents[1].id, reason = "x" } }
end
function P.retain(record, ctx)
  local scratch = { deleet = true }
  ctx.log(scratch.deleet)
  if record.age_days < 30 then return { keep = true, reveiw_in_days = 30 - record.age_days } end
  local d = {}
  d.delete = true
  d.reasn = "old"
  return d
end
function P.erase(record, request, ctx)
  return record.attrs.x and { delete = true } or { anonymise = true }
end
return P
L
run "$sb" policy check "$tmp/dtypo.lua"
check 1 "policy check: a typo in retain's decision is named with the field it is close to" err \
    "dtypo.lua:9: retain returns a decision with unknown field 'reveiw_in_days' (did you mean 'review_in_days'?): it is invalid"
check 1 "policy check: a field given to a local table retain returns" err \
    "dtypo.lua:12: retain returns a decision with unknown field 'reasn' (did you mean 'reason'?)"
check 1 "policy check: a typo in erase's decision" err \
    "dtypo.lua:16: erase returns a decision with unknown field 'anonymise' (did you mean 'anonymize'?)"
check 1 "policy check: a typo in route's decision" err \
    "dtypo.lua:3: route returns a decision with unknown field 'wiat' (did you mean 'wait'?)"
! has "$err" "deleet" && ! has "$err" "dtypo.lua:4:"
ok $? "policy check: a table the hook does not return, and a pause's fields, say nothing" "$(shown)"

# A constant a returned decision's field can never take is found the same
# way, in the run time's words (which a case, a replay or a day would show
# only once that return ran); a constant that fits, a value only the run
# time knows, and a constant set again or the table handed to a function
# before the return (which may change it) say nothing.
cat >"$tmp/dconst.lua" <<'L'
local P = {}
function P.route(call, agents, ctx)
  if #agents == 0 then return { wait = 7200 } end
  if call.attempts > 2 then return { reject = 42 } end
  if call.attempts > 1 then return { ring = agents[1].id, timeout = "20s", mode = "sequence" } end
  if call.waited > 60 then
    local d = { ring = agents[1].id, timeout = 0 }
    d.timeout = ctx.queue.waiting + 20
    return d
  end
  if call.waited > 30 then
    local d = { ring = agents[1].id, timeout = 0 }
    ctx.log(d)
    return d
  end
  return { ring = agents[1].id, device = "fax", timeout = ctx.queue.waiting + 20 }
end
function P.retain(record, ctx)
  if record.age_days > 30 then return { delete = "yes", reason = "old" } end
  return { keep = true, review_in_days = 0 }
end
function P.erase(record, request, ctx)
  return { anonymize = true, reason = "erasure" }
end
return P
L
run "$sb" policy check "$tmp/dconst.lua"
check 1 "policy check: a wait out of range, as the run time words it" err \
    "dconst.lua:3: route returns an invalid decision here: wait: expected an integer 0..3600, got 7200"
check 1 "policy check: a reject reason that is no string" err \
    "dconst.lua:4: route returns an invalid decision here: reject: expected a string, got 42"
check 1 "policy check: a timeout given as text" err \
    "dconst.lua:5: route returns an invalid decision here: timeout: expected an integer 1..600, got '20s'"
check 1 "policy check: a device there is none of" err \
    "dconst.lua:16: route returns an invalid decision here: device: expected landline, mobile or softphone, got 'fax'"
check 1 "policy check: retain's delete given a string" err \
    "dconst.lua:19: retain returns an invalid decision here: delete: expected true, got 'yes'"
check 1 "policy check: a review in 0 days" err \
    "dconst.lua:20: retain returns an invalid decision here: review_in_days: expected a number of days in (0, 36600], got 0"
[ "$(printf '%s\n' "$err" | grep -c 'invalid decision here')" -eq 6 ]
ok $? "... and nothing else: a mode that fits, a computed timeout, a constant set again or the table given to a function before the return, and erase's decision pass" "$(shown)"

# A constant returned where a decision goes, and fields that cannot go
# together, in a table built and returned in a straight line, are found too:
# fields whose values cannot be nil (a field set to nil is none); fields set on
# branches, values that may be nil (a variable, a call: { ring = ring, wait =
# wait } with one of the two nil is valid), and a hook sharing its one line with
# a helper say nothing.
cat >"$tmp/dkeys.lua" <<'L'
local P = {}
function P.route(call, agents, ctx)
  if #agents == 0 then return 42 end
  if call.attempts > 3 then return nil end
  if call.attempts > 2 then return { wait = 10, ring = "al" } end
  local d = {}
  if call.attempts > 1 then d.ring = agents[1].id else d.wait = 5 end
  if ctx.queue.waiting > 3 then return d end
  if call.attempts > 0 then return { ring = agents[1].id, timeout = call.attempts > 0 and 10 or 20 } end
  local ring, wait
  if #agents > 0 then ring = agents[1].id else wait = 10 end
  if call.waited > 9 then return { ring = ring, wait = wait } end
  return { ring = agents[1].id, wait = nil }
end
function P.retain(record, ctx)
  if record.wait > 3 then return { delete = true, review_in_days = 3 } end
  if record.wait > 2 then return "keep" end
  local days, till
  if record.outcome == "answered" then days = 30 else till = 1900000000 end
  if record.wait > 1 then return { keep = true, review_in_days = days, keep_until = till } end
  return { keep = true, review_in_days = record.wait > 1 and 3 or 4 }
end
function P.erase(record, request, ctx)
  if record.wait > 1 then return {} end
  return { delete = true }
end
return P
L
run "$sb" policy check "$tmp/dkeys.lua"
check 1 "policy check: a number returned as the decision" err \
    "dkeys.lua:3: route returns a number here: a decision is a table"
check 1 "policy check: nil returned as the decision" err "dkeys.lua:4: route returns nil here"
check 1 "policy check: ring and wait together" err \
    "dkeys.lua:5: route returns an invalid decision here: 'ring' and 'wait' cannot go together"
check 1 "policy check: a delete with a review date" err \
    "dkeys.lua:16: retain returns an invalid decision here: 'review_in_days' goes only with 'keep' or 'anonymize'"
check 1 "policy check: retain returning a string" err "dkeys.lua:17: retain returns a string here"
check 1 "policy check: erase returning {}" err \
    "dkeys.lua:24: erase returns an invalid decision here: expected one of 'delete', 'anonymize' or 'keep'"
[ "$(printf '%s\n' "$err" | grep -c 'dkeys.lua:[0-9]')" -eq 6 ]
ok $? "... and nothing else: fields set on branches, values chosen by one, values that may be nil" "$(shown)"
printf 'local P = {}\nlocal function none() return nil end function P.route(c, a, ctx) return { ring = none() or a[1].id } end\nreturn P\n' >"$tmp/oneline.lua"
run "$sb" policy check "$tmp/oneline.lua"
check 0 "a helper defined on the hook's one line: its returns are not the hook's" out "oneline.lua: ok"

# The same decisions after an early return, after locals, or with calls in a
# field's value: the instructions on the way to the return name constants by
# their index and numbers of their own, and one of those equal to the table's
# register is no use of the table, so its fields are judged all the same
# (each of these said ok, the decision failing each time it ran).
shape() { # shape NAME LINE BODY MESSAGE: route's BODY returns an invalid decision at LINE
    printf 'local P = {}\nfunction P.route(call, agents, ctx)\n%s\nend\nreturn P\n' "$3" >"$tmp/$1.lua"
    run "$sb" policy check "$tmp/$1.lua"
    check 1 "policy check: $1" err "$1.lua:$2: route returns an invalid decision here: $4"
    [ "$(printf '%s\n' "$err" | grep -c "$1.lua:[0-9]")" -eq 1 ]
    ok $? "... $1: that alone" "$(shown)"
}
guard='  if #agents == 0 then return { wait = 10 } end'
shape guard-timeout 4 "$guard
  return { ring = agents[1].id, timeout = 601 }" "timeout: expected an integer 1..600, got 601"
shape guard-text 4 "$guard
  return { ring = agents[1].id, timeout = \"20s\" }" "timeout: expected an integer 1..600, got '20s'"
shape guard-device 4 "$guard
  return { ring = agents[1].id, device = \"fax\" }" \
    "device: expected landline, mobile or softphone, got 'fax'"
shape locals 7 '  local n = #agents
  if n == 0 then return { wait = 10 } end
  local first = agents[1]
  local mode = n > 1 and "sequence" or "all"
  return { mode = mode, ring = first.id, timeout = 601 }' "timeout: expected an integer 1..600, got 601"
shape calls 4 "$guard
  return { ring = agents[math.min(#agents, math.max(1, call.attempts))].id, timeout = 601 }" \
    "timeout: expected an integer 1..600, got 601"
# An agent view's id is never nil (indexing a missing agent stops the hook),
# so a ring of one beside a wait is the pair that cannot go together, read
# straight from agents, from an ipairs loop's agent or from a local agent
# (each said ok, failing each time it ran); a field that may be nil is not.
shape agent-id 3 "  return { ring = agents[1].id, wait = 5 }" "'ring' and 'wait' cannot go together"
shape loop-id 4 "  for _, a in ipairs(agents) do
    return { ring = a.id, wait = 5 }
  end
  return { wait = 5 }" "'ring' and 'wait' cannot go together"
shape local-id 4 "  local first = agents[1]
  return { ring = first.id, wait = 5 }" "'ring' and 'wait' cannot go together"
for value in 'agents[1].name' 'best and best.id'; do
    printf 'local P = {}\nfunction P.route(call, agents, ctx)\n  local best = agents[2]\n  return { ring = %s, wait = 5 }\nend\nreturn P\n' \
        "$value" >"$tmp/maybe.lua"
    run "$sb" policy check "$tmp/maybe.lua"
    check 0 "policy check: ring = $value beside a wait may be nil, so not judged" out "maybe.lua: ok"
done
# ... and a table something else may see or change on the way is still not
# judged: given to a function, stored in another table, its own value, or
# held by a function the hook defines and calls (which sets a timeout that
# fits).
for use in 'ctx.log(d)' 'local t = { d }' 'd.pause = d' 'local function fix() d.timeout = 20 end fix()'; do
    printf 'local P = {}\nfunction P.route(call, agents, ctx)\n%s\n  local d = { ring = agents[1].id, timeout = 601 }\n  %s\n  return d\nend\nreturn P\n' \
        "$guard" "$use" >"$tmp/seen.lua"
    run "$sb" policy check "$tmp/seen.lua"
    check 0 "policy check: a table seen by '$use' before its return is not judged" out "seen.lua: ok"
done
# A retain's keep that may be nil beside a delete and a review date: said as
# the run time says it of all three, not of the decision without its keep.
printf 'local P = {}\nfunction P.retain(record, ctx)\n  local keep = record.wait > 3 or nil\n  return { keep = keep, delete = true, review_in_days = 3 }\nend\nreturn P\n' >"$tmp/rmaybe.lua"
run "$sb" policy check "$tmp/rmaybe.lua"
check 1 "policy check: a keep that may be nil with a delete" err \
    "rmaybe.lua:4: retain returns an invalid decision here: 'keep' and 'delete' cannot go together"
! has "$err" "goes only with"
ok $? "... and nothing of the decision without it" "$(shown)"

# --- Where a record's retention stands, on the record ------------------------
# A keep_until shows as the record's review_ms (the date the policy gave, in
# ms); a keep for good as null; a record a hold kept from a delete says
# overridden, and is looked at again a day after the sweep that did it.
cat >"$tmp/until.lua" <<'L'
local P = {}
function P.retain(record, ctx)
  if record.outcome == "abandoned" then return { keep = true } end
  local until_t = record.ended + 10 * 86400
  if ctx.now >= until_t then return { delete = true, reason = "ten days" } end
  return { keep = true, keep_until = until_t }
end
return P
L
calls "$tmp/until.lua" >"$tmp/until.jsonl"
run "$sb" replay "$tmp/until.jsonl" --data-dir "$tmp/until" --policy-dir policies
check 0 "review_ms: replay writes the records" err "0 policy failures"
"$sb" records get --data-dir "$tmp/until" --account acme --json b1 >"$tmp/b1.json"
"$sb" records get --data-dir "$tmp/until" --account acme --json b2 >"$tmp/b2.json"
python3 - "$tmp" <<'P'
import json, sys
b1 = json.load(open(sys.argv[1] + "/b1.json"))
b2 = json.load(open(sys.argv[1] + "/b2.json"))
assert b1["review_ms"] == b1["ended_ms"] + 10 * 86400000, b1
assert b1["overridden"] is False, b1
assert "review_ms" in b2 and b2["review_ms"] is None and b2["overridden"] is False, b2
P
ok $? "a record shows the keep_until its policy gave as review_ms; a keep for good as null" \
    "$(cat "$tmp/b1.json" "$tmp/b2.json")"
"$sb" records hold --data-dir "$tmp/until" --account acme --call b1 --reason "case 7" >/dev/null &&
    "$sb" sweep --data-dir "$tmp/until" >/dev/null
"$sb" records get --data-dir "$tmp/until" --account acme --json b1 >"$tmp/b1.json"
"$sb" records audit --data-dir "$tmp/until" --account acme --json >"$tmp/audit.json"
python3 - "$tmp" <<'P'
import json, sys
b1 = json.load(open(sys.argv[1] + "/b1.json"))
entries = json.load(open(sys.argv[1] + "/audit.json"))["entries"]
over = [e for e in entries if e.get("call") == "b1" and e["overridden"]]
assert len(over) == 1, entries
assert b1["overridden"] is True, b1
assert b1["review_ms"] == over[0]["t_ms"] + 86400000, (b1, over)
P
ok $? "a delete a hold overrode: overridden, and looked at again a day after the sweep" \
    "$(cat "$tmp/b1.json" "$tmp/audit.json")"

# --- os.date: dates in UTC and in a time zone --------------------------------
# The calendar-year policy of the README in Berlin's calendar: a call at 00:30
# on 1 January there (23:30 UTC the day before) belongs to the new year; the
# record goes at midnight in Berlin (23:00 UTC). The date table across the
# spring change, on 29 February, in UTC; a text format, an unknown zone and a
# zone with '!*t' fail naming what is wrong.
cat >"$tmp/berlin.lua" <<'L'
local YEARS = 7
local ZONE = "Europe/Berlin"
local P = {}
local function show(d)
  return ("%04d-%02d-%02d %02d:%02d:%02d wday %d yday %d offset %d"):format(d.year, d.month,
    d.day, d.hour, d.min, d.sec, d.wday, d.yday, d.utc_offset)
end
function P.retain(record, ctx)
  local f = record.attrs.f
  if f == "utc" then return { keep = true, reason = show(os.date("!*t", record.ended)) } end
  if f == "zone" then return { keep = true, reason = show(os.date("*t", record.ended, ZONE)) } end
  if f == "now" then return { keep = true, reason = show(os.date()) } end
  if f == "text" then return { reason = os.date("%Y") } end
  if f == "typo" then return { reason = tostring(os.date("*t", ctx.now, "Europe/Berln")) } end
  if f == "bang" then return { reason = tostring(os.date("!*t", ctx.now, ZONE)) } end
  local year = os.date("*t", record.ended, ZONE).year
  local t = os.time({ year = year + YEARS + 1, month = 1, day = 1, hour = 0 })
  local after = t - os.date("*t", t, ZONE).utc_offset
  if ctx.now >= after then return { delete = true, reason = "year " .. year } end
  return { keep = true, keep_until = after, reason = "year " .. year }
end
return P
L
cat >"$tmp/berlin.cases.json" <<'J'
[{"name": "00:30 on 1 January 2027 in Berlin belongs to 2027: kept to 1 January 2035, 00:00 there",
  "now": 1798759800, "record": {"age_days": 0},
  "expect": {"action": "keep", "review_in_days": 2921.9791666666665, "reason": "year 2027"}},
 {"name": "22:30 UTC, 23:30 in Berlin, belongs to 2026",
  "now": 1798756200, "record": {"age_days": 0},
  "expect": {"action": "keep", "reason": "year 2026"}},
 {"name": "a 2026 call is deleted at 23:00 UTC on 31 December 2033, midnight in Berlin",
  "now": 2019682800, "record": {"age_days": 2558},
  "expect": {"action": "delete", "reason": "year 2026"}},
 {"name": "a second before the spring change: 01:59:59 CET",
  "now": 1774745999, "record": {"attrs": {"f": "zone"}},
  "expect": {"reason": "2026-03-29 01:59:59 wday 1 yday 88 offset 3600"}},
 {"name": "at it: 03:00:00 CEST",
  "now": 1774746000, "record": {"attrs": {"f": "zone"}},
  "expect": {"reason": "2026-03-29 03:00:00 wday 1 yday 88 offset 7200"}},
 {"name": "29 February 2028 in UTC, a Tuesday",
  "now": 1835438400, "record": {"attrs": {"f": "utc"}},
  "expect": {"reason": "2028-02-29 12:00:00 wday 3 yday 60 offset 0"}},
 {"name": "os.date() is the engine's clock in UTC",
  "record": {"attrs": {"f": "now"}},
  "expect": {"reason": "2026-01-01 10:00:00 wday 5 yday 1 offset 0"}},
 {"name": "a text format is an error",
  "record": {"attrs": {"f": "text"}},
  "expect": {"action": "error", "error": "berlin.lua:13: os.date: only the formats '*t' and '!*t' (a date table) are available in policies, got '%Y'"}},
 {"name": "so is an unknown zone",
  "record": {"attrs": {"f": "typo"}},
  "expect": {"action": "error", "error": "berlin.lua:14: os.date: unknown time zone 'Europe/Berln'"}},
 {"name": "and a zone with '!*t'",
  "record": {"attrs": {"f": "bang"}},
  "expect": {"action": "error", "error": "berlin.lua:15: os.date: '!*t' is UTC; give a zone with '*t' instead"}}]
J
run env -C "$tmp" "$sb" policy test berlin.lua
check 0 "os.date: Berlin's calendar year, its summer time, 29 February and the errors" out \
    "# 10 passed, 0 failed"
run "$sb" policy check "$tmp/berlin.lua"
check 0 "policy check takes os.date" out "berlin.lua: ok"

# --- Docs -------------------------------------------------------------------
grep -q 'at most 100 years (36,600 days) ahead' policies/README.md &&
    grep -q 'at most 100 years ahead' policies/types/switchboard.lua
ok $? "README and types say how far keep_until may go"

# Cases that mistake a retention case's keys: a case without "record" is a
# routing case, so a misspelt record is named as the key it is close to, a
# request without a record says what goes with what, and a retention case
# without expect is not told about expect_store (a routing case's key).
cp policies/retention/keep-90-days-then-delete.lua "$tmp/k90.lua"
cat >"$tmp/k90.cases.json" <<'J'
[{"name": "x", "recrd": {"age_days": 0}, "expect": {"action": "keep"}},
 {"name": "y", "request": {"received": 1}, "expect": {"action": "keep"}},
 {"name": "z", "record": {"age_days": 1}, "expct": {"action": "keep"}}]
J
run "$sb" policy test "$tmp/k90.lua"
check 1 "a case with a misspelt record: the key it is close to" out \
    "case: unknown field 'recrd' (did you mean 'record'?)"
check 1 "a request without a record: what goes with what" out \
    "case: 'request' goes with 'record' (an erase case gives both"
check 1 "a retention case without expect: no word of expect_store" out \
    "#   expected (no expect)"
! has "$out" "expect_store"
ok $? "... nor anywhere in its report" "$(shown)"

# A case's value of the wrong type says what it got.
cat >"$tmp/k90.cases.json" <<'J'
[{"name": "a", "record": {"age_days": "0"}, "expect": {"action": "keep"}},
 {"name": "b", "record": {"queue": 5}, "expect": {"action": "keep"}}]
J
run "$sb" policy test "$tmp/k90.lua"
check 1 "a number given as text: what it got" out "record.age_days: expected a number, got '0'"
check 1 "a string given as a number: what it got" out "record.queue: expected a string, got 5"

done_testing
