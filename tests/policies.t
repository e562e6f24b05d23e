#!/bin/sh
# tests/policies.t — the stock policies against their scenario cases, and lint.
#
# For every policy under policies/ (each *.lua but the type annotations in
# policies/types/) runs `$SB_BUILD/switchboard policy test NAME.lua
# NAME.cases.json`: one TAP test per policy, ok when every case passes; a
# policy without a cases file fails. A last test runs luacheck over
# policies/ with policies/.luacheckrc. Failures print the tool's output as
# diagnostics. Run from anywhere; SB_BUILD (default: build) is relative to
# the repository root.
cd "$(dirname "$0")/.." || exit 1
SB_BUILD=${SB_BUILD:-build}
sb="$SB_BUILD/switchboard"

files=$(find policies -name '*.lua' ! -path 'policies/types/*' | LC_ALL=C sort)
n=0
for f in $files; do n=$((n + 1)); done
echo "1..$((n + 1))"

# diag TEXT: every line of TEXT as a TAP diagnostic, on stderr like Test::More's
diag() { printf '%s\n' "$1" | sed 's/^/# /' >&2; }

i=0
failed=0
for f in $files; do
    i=$((i + 1))
    name=${f#policies/}
    name=${name%.lua}
    cases=${f%.lua}.cases.json
    if [ ! -f "$cases" ]; then
        echo "not ok $i - $name"
        diag "no scenario cases: write ${cases} beside the policy"
        failed=$((failed + 1))
    elif [ ! -x "$sb" ]; then
        echo "ok $i - $name # SKIP no $sb (run make)"
    elif out=$("$sb" policy test "$f" "$cases" 2>&1); then
        echo "ok $i - $name"
    else
        echo "not ok $i - $name"
        diag "$sb policy test $f $cases"
        diag "$out"
        failed=$((failed + 1))
    fi
done

i=$((i + 1))
if ! command -v luacheck >/dev/null 2>&1; then
    echo "ok $i - luacheck policies # SKIP luacheck not installed (Debian: lua-check)"
elif out=$(luacheck --no-color --config policies/.luacheckrc policies 2>&1); then
    echo "ok $i - luacheck policies"
else
    echo "not ok $i - luacheck policies"
    diag "$out"
    failed=$((failed + 1))
fi
[ "$failed" -eq 0 ]
