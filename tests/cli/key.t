#!/bin/sh
# tests/cli/key.t — `switchboard key rotate`: refused while the daemon has
# the data directory (nothing changed, no key made); then, stopped, the
# directory rotated to a new key made 0600: the command says backups made
# before need the old key, the old key is refused as any other, the new one
# lists the same records and an access request shows the caller's number,
# and the daemon started with key_file set to the new key takes the API key
# made before the rotation, as does one given it by --key-file, while one
# given the old key does not start. A backup made before opens with the old
# key only.
# Bad input (another key, a new key file others may read, the same key, a
# missing flag) is refused and changes nothing; a second rotation works.
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh

data="$tmp/data"
keys_sum() { cksum <"$data/data.keys"; }
morning "$data"

# serve DATA KEYFILE [FLAG...]: a daemon on DATA with key_file KEYFILE in its
# config file and the flags given; $addr, $serve_pid
serve() {
    printf 'data_dir = %s\nkey_file = %s\nlisten = 127.0.0.1:0\npolicy_dir = %s\nsync = none\n' \
        "$1" "$2" "$ROOT/policies" >"$tmp/serve.conf"
    shift 2
    : >"$tmp/serve.log"
    "$sb" serve --config "$tmp/serve.conf" "$@" >/dev/null 2>"$tmp/serve.log" &
    serve_pid=$!
    addr=""
    wait_for "$tmp/serve.log" 'msg="listening"' &&
        addr=$(grep -o 'addr=[^ ]*' "$tmp/serve.log" | head -n 1 | cut -d= -f2)
}
stop() {
    kill -TERM "$serve_pid" 2>/dev/null
    wait "$serve_pid"
}

serve "$data" "$data/master.key"
apikey=""
[ -n "$addr" ] && apikey=$(curl -s -X POST -H "Authorization: Bearer $(cat "$data/admin.token")" \
    "http://$addr/v1/accounts/acme/keys" | sed -n 's/.*"key": *"\(sbk_[^"]*\)".*/\1/p')
[ -n "$apikey" ]
ok $? "an API key made through the daemon" "$(cat "$tmp/serve.log")"
sum=$(keys_sum)
run "$sb" key rotate --data-dir "$data" --new-key-file "$tmp/new.key"
check 1 "refused while the daemon runs" err "in use by a running \`switchboard serve\`"
[ "$(keys_sum)" = "$sum" ] && [ ! -e "$tmp/new.key" ]
ok $? "... nothing changed, no key made" "$(shown)"
stop

run "$sb" backup --data-dir "$data" "$tmp/b1"
ok $rc "a backup before the rotation" "$(shown)"

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/other.key"
chmod 600 "$tmp/other.key"
run "$sb" key rotate --data-dir "$data" --key-file "$tmp/other.key" --new-key-file "$tmp/new.key"
check 1 "refused with a key that is not the directory's" err "is not the one this data directory"
[ "$(keys_sum)" = "$sum" ] && [ ! -e "$tmp/new.key" ]
ok $? "... nothing changed, no key made" "$(shown)"
cp "$tmp/other.key" "$tmp/loose.key" && chmod 644 "$tmp/loose.key"
run "$sb" key rotate --data-dir "$data" --new-key-file "$tmp/loose.key"
check 1 "refused: a new key file others may read" err "$tmp/loose.key"
[ "$(keys_sum)" = "$sum" ]
ok $? "... nothing changed" "$(shown)"
cp "$data/master.key" "$tmp/same.key" && chmod 600 "$tmp/same.key"
run "$sb" key rotate --data-dir "$data" --new-key-file "$tmp/same.key"
check 1 "refused: the new key is the old one" err "holds the master key in use"
[ "$(keys_sum)" = "$sum" ]
ok $? "... nothing changed" "$(shown)"
run "$sb" key rotate --data-dir "$data"
check 2 "--new-key-file is required" err "usage: switchboard key rotate"
run "$sb" key rotate --help
check 0 "key rotate --help" out "backups made before the rotation"

run "$sb" key rotate --data-dir "$data" --new-key-file "$tmp/new.key"
check 0 "rotated to a new key" out "master key rotated"
has "$out" "backups made before this rotation open only with it"
ok $? "... saying backups made before need the old key" "$(shown)"
has "$out" "copy the old key below elsewhere to keep it, then put the new one in its place"
ok $? "... and, the old key being DIR/master.key, to keep a copy of it before putting the new one there" \
    "$(shown)"
[ "$(stat -c %a "$tmp/new.key")" = 600 ] && [ "$(wc -c <"$tmp/new.key")" -eq 65 ]
ok $? "... the new key made: 64 hex digits, mode 0600" "$(ls -l "$tmp/new.key")"
[ "$(keys_sum)" != "$sum" ] && [ ! -e "$data/data.keys.rotate" ]
ok $? "... data.keys written again, nothing left beside it" "$(ls -l "$data")"

run "$sb" records list --data-dir "$data" --account acme
check 1 "the old key is refused" err "is not the one this data directory's data keys were made"
run "$sb" records list --data-dir "$data" --account acme --key-file "$tmp/new.key"
[ "$rc" -eq 0 ] && [ "$out" = "$before" ]
ok $? "the new key lists the same records" "$(shown)"
run "$sb" records export --data-dir "$data" --key-file "$tmp/new.key" --account acme \
    "+44 20 7946 0001"
[ "$rc" -eq 0 ] && has "$out" '"caller": "+442079460001"'
ok $? "an access request shows the caller's number" "$(shown)"

# takes_key WHAT: the daemon at $addr takes the API key made before the rotation
takes_key() {
    code=""
    [ -n "$addr" ] && code=$(curl -s -o "$tmp/q.out" -w '%{http_code}' -u "acme:$apikey" \
        "http://$addr/v1/agents")
    [ "$code" = 200 ]
    ok $? "$1 takes the API key made before (HTTP $code)" \
        "$(cat "$tmp/q.out" "$tmp/serve.log" 2>/dev/null)"
}

serve "$data" "$tmp/new.key"
takes_key "the daemon with the new key"
code=$(curl -s -o /dev/null -w '%{http_code}' -u "acme:sbk_not-a-key" \
    "http://$addr/v1/agents")
[ "$code" = 401 ]
ok $? "... and still refuses a wrong one (HTTP $code)"
stop

run "$sb" records list --data-dir "$tmp/b1" --account acme --key-file "$data/master.key"
[ "$rc" -eq 0 ] && [ "$out" = "$before" ]
ok $? "the backup made before opens with the old key" "$(shown)"
run "$sb" records list --data-dir "$tmp/b1" --account acme --key-file "$tmp/new.key"
check 1 "... and not with the new one" err "is not the one this data directory"

run "$sb" key rotate --data-dir "$data" --key-file "$tmp/new.key" --new-key-file "$tmp/other.key" \
    --json
[ "$rc" -eq 0 ] && has "$out" '"new_key_made": false' && has "$out" '"accounts": 1'
ok $? "a second rotation, to a key given, --json" "$(shown)"
run "$sb" records list --data-dir "$data" --account acme --key-file "$tmp/other.key"
[ "$rc" -eq 0 ] && [ "$out" = "$before" ]
ok $? "... which opens it with the same records" "$(shown)"
run "$sb" records list --data-dir "$data" --account acme --key-file "$tmp/new.key"
check 1 "... and the key before it is refused" err "is not the one this data directory"

# The daemon given the key before the rotation does not start, saying so; given
# the new one by --key-file (over the config file's key_file), it takes the
# API key made before both rotations.
"$sb" serve --config "$tmp/serve.conf" >/dev/null 2>"$tmp/stale.log"
rc=$?
[ "$rc" -ne 0 ] && grep -q "its master key has been rotated" "$tmp/stale.log"
ok $? "serve with the key before the rotation refuses to start, naming the rotation (exit $rc)" \
    "$(cat "$tmp/stale.log")"
serve "$data" "$tmp/new.key" --key-file "$tmp/other.key"
takes_key "serve --key-file NEW, over the config file's key_file,"
stop

done_testing
