#!/bin/sh
# Install the Debian packages Switchboard builds and tests with, when missing.
# Usage: deps.sh build|test   (test includes build)
set -eu
# liblua5.1-0-dev: the headers of the Lua 5.1/LuaJIT module `make` builds;
# curl and jq: what the lines `make run` prints and API.md's examples use.
want="liblua5.4-dev liblua5.1-0-dev lua5.4 libevent-dev liblmdb-dev lmdb-utils libsodium-dev libjansson-dev pkg-config make gcc curl jq"
if [ "${1:-build}" = test ]; then
    want="$want perl python3 lua5.1 luajit libluajit-5.1-dev golang-go lua-check clang libclang-rt-14-dev valgrind redis-server kamailio kamailio-lua-modules sipsak"
fi
missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "switchboard: installing Debian packages:$missing"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "switchboard: please install as root:$missing" >&2; exit 1; fi
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
