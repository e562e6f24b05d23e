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
