#!/bin/sh
# tests/install.t — `make install` into a temporary prefix, and the library
# used the ways README.md, examples/c-gateway/README.md and
# engine/tools/install.mk say:
#   - a small C program (README.md's example, completed) built against the
#     installed copy with `pkg-config switchboard` (shared: ldd finds the
#     installed libswitchboard.so.1) and `pkg-config switchboard-static`
#     (static: ldd shows no libswitchboard), each routing a call;
#   - examples/c-gateway/gateway.c built the same two ways, as its README's
#     "Building" says, printing the README's session output;
#   - the same program linked in the tree, against build/libswitchboard.a with
#     the libraries it needs, and against build/libswitchboard.so;
#   - the stock policies, policies/README.md and types/ in
#     PREFIX/share/switchboard/policies, a policy directory the installed
#     command routes a simulated day with;
#   - the man pages, which groff renders without a warning;
#   - the daemon's documents (examples/switchboard.conf, engine/daemon/API.md)
#     in PREFIX/share/doc/switchboard, where the installed `serve --help`
#     names them;
#   - the installed Lua modules loading from PREFIX/lib/lua/5.4 (lua5.4) and
#     5.1 (luajit or lua5.1), directories Debian's Lua searches for
#     PREFIX=/usr/local;
#   - a staged install (PREFIX=/usr DESTDIR=...): the modules in
#     /usr/lib/<multiarch>/lua/5.x, which Debian's Lua searches;
#   - `make uninstall` leaving no file behind, nor the policies' or the
#     documents' directories.
# Runs make from the repository root with the environment of a plain make
# (the suite's MAKEFLAGS dropped); skipped for sanitizer builds, whose objects
# need the sanitizer runtime at link time. Its temporary directory is removed.
cd "$(dirname "$0")/.." || exit 1
root=$(pwd)
SB_BUILD=${SB_BUILD:-build}
if [ "$SB_BUILD" != build ]; then
    echo "1..0 # SKIP install is checked on the plain build, not $SB_BUILD"
    exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sb-install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
prefix=$tmp/prefix
echo "1..23"

n=0
failed=0
diag() { printf '%s\n' "$1" | sed 's/^/# /' >&2; }
ok() { # ok CONDITION-STATUS NAME [DIAG]
    n=$((n + 1))
    if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else
        echo "not ok $n - $2"
        [ -n "${3:-}" ] && diag "$3"
        failed=$((failed + 1))
    fi
}
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL timeout 300 make --no-print-directory -C "$root" "$@"; }

cat >"$tmp/prog.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <switchboard.h>

static void put(int rc, sb_result *res)
{
    if (rc) { fprintf(stderr, "%s\n", sb_result_message(res)); exit(1); }
}

int main(int argc, char **argv)
{
    if (argc != 3) { fprintf(stderr, "usage: prog DATA_DIR POLICY_DIR\n"); return 2; }
    sb_config cfg;
    sb_config_init(&cfg);
    cfg.data_dir = argv[1];
    cfg.policy_dir = argv[2];
    cfg.sync = SB_SYNC_NONE;
    sb_engine *eng;
    sb_result *res = sb_result_new();
    if (sb_open(&eng, &cfg, res)) { fprintf(stderr, "%s\n", sb_result_message(res)); exit(1); }
    const char *acct = "{\"id\":\"acme\",\"name\":\"Acme Ltd\"}";
    const char *agent = "{\"id\":\"alice\",\"status\":\"available\","
                        "\"devices\":{\"softphone\":\"sip:alice@pbx.example\"}}";
    const char *queue = "{\"id\":\"support\",\"policy\":\"longest-idle\","
                        "\"members\":[{\"agent\":\"alice\"}]}";
    put(sb_account_put(eng, acct, strlen(acct), res), res);
    put(sb_agent_put(eng, "acme", agent, strlen(agent), res), res);
    put(sb_queue_put(eng, "acme", queue, strlen(queue), res), res);

    sb_event offer = { .type = SB_EV_OFFER, .account = "acme", .call_id = "c1",
                       .queue_id = "support", .caller = "+442079460001" };
    put(sb_submit(eng, &offer, res), res);
    for (size_t i = 0; i < sb_result_count(res); i++) {
        const sb_action *a = sb_result_action(res, i);
        if (a->type == SB_ACT_RING) printf("ring %s at %s\n", a->agent_id, a->uri);
    }
    printf("%s\n", sb_version());
    sb_result_free(res);
    sb_close(eng);
    return 0;
}
EOF
want_ring="ring alice at sip:alice@pbx.example"

# run NAME BINARY [ENV...]: runs BINARY on a fresh data directory; ok when it
# prints the ring line.
run() {
    name=$1 bin=$2
    shift 2
    out=$(env "$@" timeout 30 "$bin" "$tmp/data-$name" "$root/policies" 2>&1)
    printf '%s\n' "$out" | grep -qx "$want_ring"
    ok $? "$name: the program routes a call ($want_ring)" "$out"
}

# 1-2: the install.
out=$(mk install PREFIX="$prefix" 2>&1)
ok $? "make install PREFIX=<tmp>" "$out"
missing=""
for f in include/switchboard.h lib/libswitchboard.a lib/libswitchboard.so lib/libswitchboard.so.1 \
    bin/switchboard lib/pkgconfig/switchboard.pc lib/pkgconfig/switchboard-static.pc \
    lib/lua/5.1/switchboard.so lib/lua/5.4/switchboard.so share/man/man1/switchboard.1 \
    share/man/man7/switchboard-policy.7; do
    [ -e "$prefix/$f" ] || missing="$missing $f"
done
# Every stock policy with its cases, the guide and the annotations, as in the tree.
pol=share/switchboard/policies
for f in $(cd policies && find . -name '*.lua' -o -name '*.cases.json' -o -name README.md -o -name MIGRATING.md | sort); do
    cmp -s "policies/$f" "$prefix/$pol/$f" || missing="$missing $pol/${f#./}"
done
[ -z "$missing" ]
ok $? "the library, header, command, pkg-config files, Lua modules, man pages and stock policies are installed" \
    "missing:$missing"

# 3: the daemon's documents, named by the installed command's serve --help.
doc=$prefix/share/doc/switchboard
out=$("$prefix/bin/switchboard" serve --help 2>&1)
cmp -s examples/switchboard.conf "$doc/switchboard.conf" && cmp -s engine/daemon/API.md "$doc/API.md" &&
    cmp -s engine/UPGRADING.md "$doc/UPGRADING.md" &&
    printf '%s\n' "$out" | grep -qx "  $(cd "$doc" && pwd -P)/switchboard.conf" &&
    printf '%s\n' "$out" | grep -qx "  $(cd "$doc" && pwd -P)/API.md" &&
    ! printf '%s\n' "$out" | grep -q "source tree"
ok $? "switchboard.conf and API.md (with UPGRADING.md) in PREFIX/share/doc/switchboard, named by the installed serve --help" \
    "$(ls -l "$doc" 2>&1)
$out"

# 4: the installed man pages render without a warning from groff (a stray
# control character, an unknown escape or request), as `man switchboard` shows them.
if command -v groff >/dev/null 2>&1; then
    out=$(for m in man1/switchboard.1 man7/switchboard-policy.7; do
        groff -man -ww -z "$prefix/share/man/$m" 2>&1 | sed "s|^|$m: |"
    done)
    [ -z "$out" ]
    ok $? "the installed man pages render without groff warnings" "$out"
else
    skip "the installed man pages render without groff warnings" "no groff (Debian: groff-base)"
fi

# 5: the installed policies are a policy directory: every one loads, and the
# installed command routes a simulated day through them with no failure.
out=$(timeout 60 "$prefix/bin/switchboard" simulate --policy-dir "$prefix/$pol" --calls 200 2>&1) &&
    printf '%s\n' "$out" | grep -q "policy failures 0, fallbacks 0"
ok $? "switchboard simulate --policy-dir PREFIX/$pol routes through the installed policies" "$out"

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"

# 6-7: shared, against the installed library.
out=$(cc -std=c11 "$tmp/prog.c" -o "$tmp/prog-shared" $(pkg-config --cflags --libs switchboard) 2>&1) &&
    out=$(LD_LIBRARY_PATH="$prefix/lib" ldd "$tmp/prog-shared") &&
    printf '%s\n' "$out" | grep -q "libswitchboard.so.1 => $prefix/lib/libswitchboard.so.1"
ok $? "installed, shared: cc prog.c \$(pkg-config --cflags --libs switchboard) uses $prefix/lib/libswitchboard.so.1" "$out"
run installed-shared "$tmp/prog-shared" LD_LIBRARY_PATH="$prefix/lib"

# 8-9: static, against the installed library.
out=$(cc -std=c11 "$tmp/prog.c" -o "$tmp/prog-static" $(pkg-config --cflags --libs switchboard-static) 2>&1) &&
    out=$(ldd "$tmp/prog-static") && ! printf '%s\n' "$out" | grep -q libswitchboard
ok $? "installed, static: cc prog.c \$(pkg-config --cflags --libs switchboard-static) has no libswitchboard in ldd" \
    "$(pkg-config --cflags --libs switchboard-static)
$out"
run installed-static "$tmp/prog-static"

# 10-13: examples/c-gateway/gateway.c built as its README's "Building" says,
# against the installed library, shared and static: each prints the README's
# session output for setup.jsonl and calls.jsonl (replayed with the installed
# command), the static one with no libswitchboard in ldd.
awk '/^```/ { if (inside) { if (bare) exit; inside = 0; next } inside = 1; bare = ($0 == "```"); next }
     inside && bare { print }' examples/c-gateway/README.md >"$tmp/gw.want"
gateway_run() { # gateway_run NAME BINARY [ENV...]
    name=$1 bin=$2
    shift 2
    rm -rf "$tmp/gw-data"
    out=$("$prefix/bin/switchboard" replay examples/c-gateway/setup.jsonl --data-dir "$tmp/gw-data" 2>&1) &&
        out=$(env "$@" timeout 60 "$bin" --data-dir "$tmp/gw-data" --policy-dir "$prefix/$pol" \
            <examples/c-gateway/calls.jsonl 2>&1) &&
        [ -s "$tmp/gw.want" ] && [ "$out" = "$(cat "$tmp/gw.want")" ]
    ok $? "$name: the c-gateway example prints its README's session" \
        "$(printf '%s\n' "$out" | diff "$tmp/gw.want" - 2>&1)"
}
for kind in switchboard switchboard-static; do
    out=$(cc -std=c11 examples/c-gateway/gateway.c -o "$tmp/gateway-$kind" \
        $(pkg-config --cflags --libs $kind) 2>&1)
    st=$?
    if [ $kind = switchboard-static ] && [ $st -eq 0 ] && ldd "$tmp/gateway-$kind" | grep -q libswitchboard; then
        st=1 out="ldd shows libswitchboard: $(ldd "$tmp/gateway-$kind")"
    fi
    ok $st "installed: cc -std=c11 examples/c-gateway/gateway.c \$(pkg-config --cflags --libs $kind)" "$out"
done
gateway_run "installed, shared" "$tmp/gateway-switchboard" LD_LIBRARY_PATH="$prefix/lib"
gateway_run "installed, static" "$tmp/gateway-switchboard-static"

# 14-15: in the tree, static (README.md's command).
out=$(cc -std=c11 "$tmp/prog.c" -o "$tmp/prog-tree-static" -Iengine/include build/libswitchboard.a \
    $(pkg-config --libs lua5.4 lmdb libsodium jansson) -lpthread -lm 2>&1) &&
    out=$(ldd "$tmp/prog-tree-static") && ! printf '%s\n' "$out" | grep -q libswitchboard
ok $? "in the tree, static: build/libswitchboard.a with Lua 5.4, LMDB, libsodium, jansson" "$out"
run tree-static "$tmp/prog-tree-static"

# 16-17: in the tree, shared (README.md's command): the .so needs no other library.
out=$(cc -std=c11 "$tmp/prog.c" -o "$tmp/prog-tree-shared" -Iengine/include -Lbuild -lswitchboard \
    -Wl,-rpath,"$root/build" 2>&1) &&
    out=$(ldd "$tmp/prog-tree-shared") &&
    printf '%s\n' "$out" | grep -q "libswitchboard.so.1 => $root/build/libswitchboard.so.1"
ok $? "in the tree, shared: -Lbuild -lswitchboard" "$out"
run tree-shared "$tmp/prog-tree-shared"

# 18-19: the installed Lua modules, from that directory alone.
lua_load() { # lua_load LUA VERSION
    env LUA_CPATH="$prefix/lib/lua/$2/?.so" timeout 30 "$1" -e \
        'local sb = require "switchboard"; io.write(sb.version(), " ", package.searchpath and
         package.searchpath("switchboard", package.cpath) or "", "\n")' 2>&1
}
if command -v lua5.4 >/dev/null; then
    out=$(lua_load lua5.4 5.4)
    ok $? "lua5.4 loads the module installed in PREFIX/lib/lua/5.4" "$out"
else skip "lua5.4 loads the installed module" "no lua5.4 (Debian: lua5.4)"; fi
lua51=$(command -v luajit || command -v lua5.1)
if [ -n "$lua51" ]; then
    out=$(lua_load "$lua51" 5.1)
    ok $? "$(basename "$lua51") loads the module installed in PREFIX/lib/lua/5.1" "$out"
else skip "luajit loads the installed module" "no luajit or lua5.1 (Debian: luajit)"; fi

# 20-21: a gateway of its own names, linked statically against the installed
# archive: it defines functions the engine's internals also name (buf_free,
# mono_ms, utf8_valid, str_copy), which the archive keeps to itself, as the
# shared library does; it exports sb_* alone.
cat >"$tmp/own.c" <<'EOF'
#include <stddef.h>
#include <stdint.h>
void buf_free(void *b);
int64_t mono_ms(void);
int utf8_valid(const char *s);
void str_copy(char *d, const char *s, size_t n);
void buf_free(void *b) { (void)b; }
int64_t mono_ms(void) { return 42; }
int utf8_valid(const char *s) { return s != NULL; }
void str_copy(char *d, const char *s, size_t n) { (void)d; (void)s; (void)n; }
EOF
others=$(nm -g --defined-only "$prefix/lib/libswitchboard.a" 2>&1 | awk 'NF == 3 && $3 !~ /^sb_/')
out=$(cc -std=c11 "$tmp/prog.c" "$tmp/own.c" -o "$tmp/prog-own" \
    $(pkg-config --cflags --libs switchboard-static) 2>&1) && [ -z "$others" ]
ok $? "installed, static: a program defining buf_free, mono_ms, utf8_valid and str_copy of its own links (the archive exports sb_* alone)" \
    "$out
globals other than sb_*: $(printf '%s\n' "$others" | head -5)"
run installed-static-own-names "$tmp/prog-own"

# 22: a package staging (PREFIX=/usr): the modules where Debian's Lua looks.
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || cc -print-multiarch)
stage=$tmp/stage
out=$(mk install PREFIX=/usr DESTDIR="$stage" 2>&1) &&
    [ -f "$stage/usr/lib/$ma/lua/5.4/switchboard.so" ] && [ -f "$stage/usr/lib/$ma/lua/5.1/switchboard.so" ] &&
    grep -qx 'prefix=/usr' "$stage/usr/lib/pkgconfig/switchboard.pc" &&
    grep -qx 'Libs: ${libdir}/libswitchboard.a .*' "$stage/usr/lib/pkgconfig/switchboard-static.pc"
ok $? "make install PREFIX=/usr DESTDIR=<tmp>: Lua modules in /usr/lib/$ma/lua/5.x, .pc files for /usr" \
    "$out
$(cd "$stage" && find . -type f | sort)"

# 23: uninstall removes every file install put there.
out=$(mk uninstall PREFIX="$prefix" 2>&1) && left=$(find "$prefix" -type f) && [ -z "$left" ] &&
    [ ! -e "$prefix/share/switchboard" ] && [ ! -e "$doc" ]
ok $? "make uninstall PREFIX=<tmp> leaves no file, and no share/switchboard or share/doc/switchboard" "$out
left: $left $(ls -d "$prefix/share/switchboard" "$doc" 2>/dev/null)"

[ "$failed" -eq 0 ]
