#!/bin/sh
# make run: a simulated day of calls through the stock policies, then the
# daemon on loopback with a demo account (data in ./var/switchboard, unless
# a --data-dir is given).
# usage: run-demo.sh [CLI [SERVE FLAGS...]] (tests/daemon/make_run.t passes
# --listen 127.0.0.1:0)
set -eu
cli=${1:-build/switchboard}
[ $# -gt 0 ] && shift
echo "== A simulated day of calls =="
"$cli" simulate --policy-dir policies
echo
echo "== The daemon =="
# The flags given replace these defaults (serve refuses a flag given twice).
data=1 pol=1 demo=1
for a in "$@"; do
    case $a in
    --data-dir | --data-dir=*) data= ;;
    --policy-dir | --policy-dir=*) pol= ;;
    --demo) demo= ;;
    esac
done
[ -n "$pol" ] && set -- --policy-dir policies "$@"
# ./var is made for the default data directory alone: with --data-dir
# elsewhere the tree gets no empty var.
if [ -n "$data" ]; then
    mkdir -p var
    set -- --data-dir var/switchboard "$@"
fi
[ -n "$demo" ] && set -- --demo "$@"
exec "$cli" serve "$@"
