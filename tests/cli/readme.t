#!/bin/sh
# tests/cli/readme.t — README's "Write a policy in ten lines", as a new user
# follows it: the policy from the README, saved as mine.lua beside the stock
# policies, passes `policy check` and routes examples/replay/mine.jsonl as the
# file's comment says; the README's other replay example runs cleanly too.
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh

mkdir -p "$tmp/policies"
cp -R policies/. "$tmp/policies/"
# The policy block of README.md, as it stands.
awk '/^```lua$/ { inside = 1; next } inside && /^```$/ { exit } inside { print }' README.md \
    >"$tmp/policies/mine.lua"
head -1 "$tmp/policies/mine.lua" | grep -q 'policies/mine.lua'
ok $? "README's ten-line policy found" "$(cat "$tmp/policies/mine.lua")"

run "$sb" policy check "$tmp/policies/mine.lua"
check 0 "policy check passes it" out "ok"

run "$sb" replay examples/replay/mine.jsonl --policy-dir "$tmp/policies"
check 0 "replay of examples/replay/mine.jsonl exits 0" err "0 errors, 0 policy failures"
for want in "ring ben for m0" "ring ana for m1" "ring cleo for m2" "m3 waits in support"; do
    has "$out" "$want"
    ok $? "it decides as the file says: $want" "$(shown)"
done

# The lines README quotes for its own policy given timeout = "20s": what
# policy check prints for it (the README's text, its line breaks as spaces).
sed 's/timeout = 20 }/timeout = "20s" }/' "$tmp/policies/mine.lua" >"$tmp/mine20s.lua"
run "$sb" policy check "$tmp/mine20s.lua"
said=${err#"$tmp/"}
flat=$(tr '\n' ' ' <README.md | tr -s ' ')
[ "$rc" -eq 1 ] && has "$said" "mine20s.lua:" && has "$flat" "mine.lua:${said#mine20s.lua:}"
ok $? "policy check prints for it the line README quotes" "$(shown)"
flat_run=$(printf '%s' "$flat" | grep -o "mine.lua:3: route returned invalid decision: ... (it returns at lines [0-9, ]*)")
lines=$(awk '/return \{/ { printf "%s%d", n++ ? ", " : "", NR }' "$tmp/mine20s.lua")
has "$flat_run" "(it returns at lines $lines)" && grep -n 'function P.route' "$tmp/mine20s.lua" | grep -q '^3:'
ok $? "... and the run-time message's lines it quotes are the policy's" "$flat_run / $lines"

# Given a wait beside its ring, the policy is refused for what the run time
# says of that decision: the ring may be nil there (best.id), but the wait
# and the timeout are not, and with its ring the decision has both ring and
# wait. (Said once of the decision without its ring: 'timeout' goes only
# with 'ring'.)
sed 's/timeout = 20 }/timeout = 20, wait = 5 }/' "$tmp/policies/mine.lua" >"$tmp/mine2.lua"
at=$(grep -n 'wait = 5 }' "$tmp/mine2.lua" | cut -d: -f1)
run "$sb" policy check "$tmp/mine2.lua"
check 1 "policy check of it with ring and wait names the two" err \
    "mine2.lua:$at: route returns an invalid decision here: 'ring' and 'wait' cannot go together"
! has "$err" "goes only with"
ok $? "... and only them" "$(shown)"
printf '[{"name": "en", "call": {"id": "c1", "attrs": {"language": "en"}}, "agents": [{"id": "a", "skills": {"en": 1}}], "expect": {"action": "ring", "agents": ["a"]}}]' \
    >"$tmp/mine2.cases.json"
run "$sb" policy test "$tmp/mine2.lua"
check 1 "... as running it does" out "route returned invalid decision: 'ring' and 'wait' cannot go together"
# A field that may well be nil still says nothing: ring or wait, one of the
# two set, with a timeout that goes with the ring.
cat >"$tmp/either.lua" <<'L'
local P = {}
function P.route(call, agents, ctx)
  local ring, wait
  if #agents > 0 then ring = agents[1].id else wait = 10 end
  if call.waited > 9 then return { ring = ring, wait = wait, timeout = 20 } end
  return { ring = ring, wait = wait }
end
return P
L
run "$sb" policy check "$tmp/either.lua"
check 0 "a ring or a wait, either of which may be nil, with a timeout: ok" out "either.lua: ok"

run "$sb" replay examples/replay/first-calls.jsonl
check 0 "README's other example, first-calls.jsonl, exits 0" err "0 errors"

# README's "Embed the library" example, saved as prog.c as it stands, built as
# the README links it and run from the top of the tree: it rings alice, and
# a second run says why it rings nobody.
awk '/^```c$/ { inside = 1; next } inside && /^```$/ { exit } inside { print }' README.md |
    sed "s|\"prog-data\"|\"$tmp/embed-data\"|" >"$tmp/prog.c"
B=${SB_BUILD:-build}
case $B in /*) ;; *) B=$PWD/$B ;; esac
san=
case $B in *-san) san=-fsanitize=address,undefined ;; esac # the library's runtime
cc -std=c11 $san "$tmp/prog.c" -Iengine/include -L"$B" -lswitchboard -Wl,-rpath,"$B" \
    -o "$tmp/prog" 2>"$tmp/cc.err"
ok $? "README's C example compiles and links as shown" "$(cat "$tmp/cc.err")"
run "$tmp/prog"
check 0 "... and rings alice" out "ring alice at sip:alice@pbx.example"
[ -d "$tmp/embed-data" ]
ok $? "... in the data directory it made"
run "$tmp/prog"
check 0 "a second run says the call exists already" err "exists already"

done_testing
