#!/bin/sh
# make run: a simulated day of calls through the stock policies, then the
# daemon on loopback with a demo account (data in ./var/switchboard).
set -eu
cli=${1:-build/switchboard}
echo "== A simulated day of calls =="
"$cli" simulate --policy-dir policies
echo
echo "== The daemon =="
mkdir -p var
exec "$cli" serve --demo --data-dir var/switchboard --policy-dir policies
