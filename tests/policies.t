#!/bin/sh
# tests/policies.t — the stock policies against their scenario cases, and lint.
#
# For every policy under policies/ (each *.lua but the type annotations in
# policies/types/) runs `$SB_BUILD/switchboard policy test NAME.lua
# NAME.cases.json`: one TAP test per policy, ok when every case passes; a
# policy without a cases file fails. Then every routing case again as a
# call from a withheld number ("caller": null, no previous_agent): a
# decision may change, but no policy may fail on a nil caller. A last test
# runs luacheck over policies/ with policies/.luacheckrc. Failures print the
# tool's output as diagnostics. Run from anywhere; SB_BUILD (default: build)
# is relative to the repository root.
cd "$(dirname "$0")/.." || exit 1
SB_BUILD=${SB_BUILD:-build}
sb="$SB_BUILD/switchboard"

files=$(find policies -name '*.lua' ! -path 'policies/types/*' | LC_ALL=C sort)
n=0
for f in $files; do n=$((n + 1)); done
echo "1..$((n + 2))"

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

# The cases of every policy with each call's caller withheld: what fails
# is a case whose policy failed ("the policy failed: file:line: ..."), not
# one whose decision changed.
i=$((i + 1))
if [ ! -x "$sb" ] || ! command -v python3 >/dev/null 2>&1; then
    echo "ok $i - no policy fails on a withheld caller # SKIP needs $sb and python3"
else
    tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
    bad=""
    for f in $files; do
        cases=${f%.lua}.cases.json
        [ -f "$cases" ] || continue
        python3 - "$cases" "$tmp/withheld.json" <<'PY' || { bad="$bad $f"; continue; }
import json, sys
cases = json.load(open(sys.argv[1]))
for c in cases:
    if "record" in c:
        continue  # retention hooks never see a number
    call = c.setdefault("call", {})
    call["caller"] = None
    call.pop("previous_agent", None)  # a withheld caller has no history
json.dump(cases, open(sys.argv[2], "w"))
PY
        out=$("$sb" policy test "$f" "$tmp/withheld.json" 2>&1)
        case $out in
        *"the policy failed"*)
            bad="$bad $f"
            diag "$f with a withheld caller:"
            diag "$(printf '%s\n' "$out" | grep -B3 'the policy failed')"
            ;;
        esac
    done
    if [ -z "$bad" ]; then
        echo "ok $i - no policy fails on a withheld caller"
    else
        echo "not ok $i - no policy fails on a withheld caller:$bad"
        failed=$((failed + 1))
    fi
fi

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
