/*
** test_polhist.c — policy version history: an account's past uploads and
** deletes of each policy name, newest first, each with when it was stored
** (the injected clock) and what it replaced; one version's code read back;
** identical re-uploads add nothing; a delete is an entry; the bounds (50 a
** name, 16 MiB an account, oldest first, a name's newest kept); paging;
** another account's history reads as none; an account's deletion takes
** its history; a policy uploaded before histories were kept.
*/
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"

#include "engine.h" /* DB_POLHIST: what an account's deletion leaves */

#include <jansson.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];
static sb_engine *eng;
static sb_result *res;

static sb_engine *open_engine(void)
{
    sb_config cfg;
    test_engine_config(&cfg, dir, NULL, 256 << 20);
    cfg.policy_memory = 64 << 20;
    return test_open(&cfg, res);
}

/* A policy whose route waits n seconds, padded with a comment of pad
** bytes; its text in a static buffer. */
static const char *src_of(int n, size_t pad)
{
    static char *buf;
    free(buf);
    buf = malloc(pad + 128);
    int o = snprintf(buf, 128, "local P = {}\nfunction P.route() return { wait = %d } end\n", n);
    if (pad) {
        memcpy(buf + o, "-- ", 3);
        memset(buf + o + 3, 'x', pad);
        o += 3 + (int)pad;
        buf[o++] = '\n';
    }
    strcpy(buf + o, "return P\n");
    return buf;
}

/* Upload at time t; the version stored into ver (may be NULL). */
static int put_at(const char *acct, const char *name, const char *src, int64_t t, char ver[17])
{
    now_ms = t;
    int rc = sb_policy_put(eng, acct, name, src, strlen(src), NULL, res);
    if (rc) diag("put %s: %s", name, sb_result_message(res));
    if (!rc && ver) {
        json_t *o = json_loads(sb_result_json(res, NULL), 0, NULL);
        snprintf(ver, 17, "%s", json_string_value(json_object_get(o, "version")));
        json_decref(o);
    }
    return rc;
}

/* sb_policy_versions as JSON (NULL on error). */
static json_t *versions(const char *acct, const char *name, uint64_t before, size_t limit)
{
    if (sb_policy_versions(eng, acct, name, before, limit, res)) return NULL;
    return json_loads(sb_result_json(res, NULL), 0, NULL);
}

static const char *field(json_t *list, size_t i, const char *key)
{
    return json_string_value(
        json_object_get(json_array_get(json_object_get(list, "versions"), i), key));
}

static long long num(json_t *list, size_t i, const char *key)
{
    return (long long)json_integer_value(
        json_object_get(json_array_get(json_object_get(list, "versions"), i), key));
}

static size_t count(json_t *list)
{
    return json_array_size(json_object_get(list, "versions"));
}

static void test_order_and_code(void)
{
    char v1[17], v2[17], v3[17];
    char s1[256], s2[256];
    snprintf(s1, sizeof s1, "%s", src_of(1, 0));
    snprintf(s2, sizeof s2, "%s", src_of(2, 0));
    put_at("acme", "route", s1, 1000000, v1);
    put_at("acme", "route", s2, 2000000, v2);
    put_at("acme", "route", src_of(3, 0), 3000000, v3);
    json_t *l = versions("acme", "route", 0, 0);
    ok(l && count(l) == 3, "three uploads: three versions (%s)", sb_result_json(res, NULL));
    is_str(field(l, 0, "version"), v3, "newest first");
    is_str(field(l, 1, "version"), v2, "then the one before");
    is_str(field(l, 2, "version"), v1, "then the first");
    ok(num(l, 0, "at_ms") == 3000000 && num(l, 1, "at_ms") == 2000000 &&
           num(l, 2, "at_ms") == 1000000,
       "each stored at the engine's clock");
    is_str(field(l, 0, "previous"), v2, "each names the version it replaced");
    ok(field(l, 2, "previous") == NULL, "the first replaced none");
    ok(json_is_true(
           json_object_get(json_array_get(json_object_get(l, "versions"), 0), "current")) &&
           json_is_false(
               json_object_get(json_array_get(json_object_get(l, "versions"), 1), "current")),
       "the newest is the current one, the others not");
    ok(num(l, 0, "seq") > num(l, 1, "seq"), "seqs go down the list");
    json_decref(l);

    ok(sb_policy_version_get(eng, "acme", "route", v1, res) == 0, "the first version reads (%s)",
       sb_result_message(res));
    json_t *o = json_loads(sb_result_json(res, NULL), 0, NULL);
    is_str(json_string_value(json_object_get(o, "code")), s1, "with its code");
    ok(json_is_false(json_object_get(o, "current")) &&
           json_integer_value(json_object_get(o, "at_ms")) == 1000000,
       "not current, stored when it was");
    json_decref(o);
    ok(sb_policy_version_get(eng, "acme", "route", "0123456789abcdef", res) == SB_ENOTFOUND &&
           !strcmp(sb_result_field(res), "version"),
       "a version never uploaded: SB_ENOTFOUND (%s)", sb_result_message(res));
    const char *bad[] = {"", "abc", "0123456789ABCDEF", "0123456789abcdefa", "0123456789abcdeg"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ok(sb_policy_version_get(eng, "acme", "route", bad[i], res) == SB_EINVAL &&
               !strcmp(sb_result_field(res), "version"),
           "'%s' is not a version: SB_EINVAL (%s)", bad[i], sb_result_message(res));
    ok(sb_policy_version_get(eng, "acme", "route", NULL, res) == SB_EINVAL, "nor NULL");
    ok(sb_policy_versions(eng, "acme", "../x", 0, 0, res) == SB_EINVAL &&
           !strcmp(sb_result_field(res), "name"),
       "a name no policy can have: SB_EINVAL (%s)", sb_result_message(res));
    ok(sb_policy_versions(eng, "acme", "nothing", 0, 0, res) == SB_ENOTFOUND,
       "a name never uploaded: SB_ENOTFOUND (%s)", sb_result_message(res));
    ok(sb_policy_versions(eng, "acme", "nothing", 5, 0, res) == SB_ENOTFOUND,
       "... also for a page after the first");
    l = versions("acme", "route", 1, 0);
    ok(l && count(l) == 0 && !json_object_get(l, "next"), "a page past the end of one: empty");
    json_decref(l);

    /* The same text again adds nothing; a rollback is an upload of an old
    ** one, which comes back with its version. */
    put_at("acme", "route", src_of(3, 0), 4000000, NULL);
    l = versions("acme", "route", 0, 0);
    ok(l && count(l) == 3 && num(l, 0, "at_ms") == 3000000,
       "the same text uploaded again: no new entry");
    json_decref(l);
    char back[17];
    put_at("acme", "route", s1, 5000000, back);
    is_str(back, v1, "a rollback brings the old version back");
    l = versions("acme", "route", 0, 0);
    ok(l && count(l) == 4, "and is an entry of its own");
    is_str(field(l, 0, "version"), v1, "newest");
    is_str(field(l, 0, "previous"), v3, "replacing the one before it");
    json_decref(l);
    ok(sb_policy_version_get(eng, "acme", "route", v1, res) == 0 &&
           strstr(sb_result_json(res, NULL), "\"current\":true"),
       "its version reads as current now");

    /* A delete is an entry, and the history stays. */
    now_ms = 6000000;
    ok(sb_policy_delete(eng, "acme", "route", res) == 0, "deleted");
    l = versions("acme", "route", 0, 0);
    ok(l && count(l) == 5, "the delete is an entry (%s)", sb_result_json(res, NULL));
    is_str(field(l, 0, "change"), "delete", "of change \"delete\"");
    ok(json_is_null(json_object_get(json_array_get(json_object_get(l, "versions"), 0), "version")),
       "with no version");
    is_str(field(l, 0, "previous"), v1, "naming the version it deleted");
    ok(num(l, 0, "at_ms") == 6000000, "at the time of the delete");
    ok(json_is_false(json_object_get(json_array_get(json_object_get(l, "versions"), 0), "current")),
       "nothing is current");
    json_decref(l);
    ok(sb_policy_get(eng, "acme", "route", res) == SB_ENOTFOUND, "the policy is gone");
    ok(sb_policy_version_get(eng, "acme", "route", v2, res) == 0 &&
           strstr(sb_result_json(res, NULL), "wait = 2"),
       "and its versions still read");
    put_at("acme", "route", s2, 7000000, NULL);
    l = versions("acme", "route", 0, 0);
    ok(l && count(l) == 6 && field(l, 0, "previous") == NULL,
       "uploaded again: it carries on, replacing none");
    json_decref(l);
}

/* At most 50 of a name, oldest dropped first; paging with before/next. */
static void test_name_limit_and_paging(void)
{
    char first[17], sixth[17], last[17];
    for (int i = 0; i < 55; i++)
        put_at("acme", "many", src_of(100 + i, 0), 10000000 + i * 1000,
               i == 0   ? first
               : i == 5 ? sixth
                        : last);
    json_t *l = versions("acme", "many", 0, 0);
    ok(l && count(l) == 50, "55 uploads: the last 50 kept (%zu)", l ? count(l) : 0);
    is_str(field(l, 0, "version"), last, "the newest first");
    is_str(field(l, 49, "version"), sixth, "the sixth the oldest left");
    ok(json_object_get(l, "next") == NULL, "all of them: no next");
    json_decref(l);
    ok(sb_policy_version_get(eng, "acme", "many", first, res) == SB_ENOTFOUND,
       "the first is gone (%s)", sb_result_message(res));
    ok(sb_policy_version_get(eng, "acme", "many", sixth, res) == 0, "the sixth reads");

    uint64_t before = 0;
    size_t seen = 0, pages = 0;
    long long prev = -1;
    int ordered = 1;
    for (;;) {
        l = versions("acme", "many", before, 20);
        if (!l) break;
        pages++;
        for (size_t i = 0; i < count(l); i++) {
            if (prev >= 0 && num(l, i, "seq") >= prev) ordered = 0;
            prev = num(l, i, "seq");
        }
        seen += count(l);
        json_t *n = json_object_get(l, "next");
        before = n ? (uint64_t)json_integer_value(n) : 0;
        json_decref(l);
        if (!before) break;
    }
    ok(pages == 3 && seen == 50 && ordered, "pages of 20: 3 pages, 50 entries in order (%zu, %zu)",
       pages, seen);
    ok(sb_policy_versions(eng, "acme", "many", (uint64_t)INT64_MAX + 1, 0, res) == SB_EINVAL &&
           !strcmp(sb_result_field(res), "before"),
       "a 'before' no list gives: SB_EINVAL");
}

/* 16 MiB of sources an account: the oldest of any name go first, each
** name's newest stays. */
static void test_account_budget(void)
{
    const size_t pad = 250 * 1024;
    char oldest[17], newest_a[17];
    put_at("acme", "big-a", src_of(0, pad), 20000000, oldest);
    for (int i = 1; i < 80; i++)
        put_at("acme", i % 2 ? "big-b" : "big-a", src_of(i, pad), 20000000 + i * 1000,
               i % 2 ? NULL : newest_a);
    json_t *a = versions("acme", "big-a", 0, 0), *b = versions("acme", "big-b", 0, 0);
    size_t n = (a ? count(a) : 0) + (b ? count(b) : 0);
    ok(n * (pad + 200) <= (16u << 20) && n >= (16u << 20) / (pad + 200) - 2,
       "80 uploads of 250 KiB: as many as fit 16 MiB are kept (%zu)", n);
    ok(sb_policy_version_get(eng, "acme", "big-a", oldest, res) == SB_ENOTFOUND, "the oldest went");
    is_str(a ? field(a, 0, "version") : NULL, newest_a, "each name's newest stays");
    ok(a && b && count(a) >= count(b) - 1 && count(b) >= count(a) - 1,
       "the oldest of either name went first (%zu, %zu)", a ? count(a) : 0, b ? count(b) : 0);
    json_decref(a);
    json_decref(b);
}

/* Forgetting: code that must not be kept goes from the history. */
static void test_forget(void)
{
    char v1[17], v2[17], v3[17];
    put_at("acme", "secret",
           "local P = {}\n-- token SECRET-123\nfunction P.route() return { "
           "wait = 1 } end\nreturn P\n",
           50000000, v1);
    put_at("acme", "secret", src_of(2, 0), 50001000, v2);
    put_at("acme", "secret", src_of(3, 0), 50002000, v3);
    int frc = sb_policy_versions_forget(eng, "acme", "secret", v1, res);
    const char *fjs;
    fjs = sb_result_json(res, NULL);
    ok(frc == 0 && strstr(fjs, "\"forgotten\":1"), "an earlier version forgotten (%s)", fjs);
    ok(sb_policy_version_get(eng, "acme", "secret", v1, res) == SB_ENOTFOUND,
       "its code no longer reads");
    json_t *l = versions("acme", "secret", 0, 0);
    ok(l && count(l) == 2 && !strcmp(field(l, 1, "version"), v2), "the others stay");
    json_decref(l);
    ok(sb_policy_versions_forget(eng, "acme", "secret", v3, res) == SB_ESTATE &&
           !strcmp(sb_result_field(res), "version"),
       "the version in use: SB_ESTATE (%s)", sb_result_message(res));
    ok(sb_policy_versions_forget(eng, "acme", "secret", v1, res) == SB_ENOTFOUND &&
           !strcmp(sb_result_field(res), "version"),
       "one no longer there: SB_ENOTFOUND (%s)", sb_result_message(res));
    ok(sb_policy_versions_forget(eng, "acme", "secret", "ABC", res) == SB_EINVAL,
       "a malformed version: SB_EINVAL");
    ok(sb_policy_versions_forget(eng, "globex", "secret", v2, res) == SB_ENOTFOUND &&
           !strcmp(sb_result_field(res), "name"),
       "another account's: SB_ENOTFOUND, as none (%s)", sb_result_message(res));
    frc = sb_policy_versions_forget(eng, "acme", "secret", NULL, res);
    fjs = sb_result_json(res, NULL);
    ok(frc == 0 && strstr(fjs, "\"forgotten\":1"), "NULL: every entry but the newest (%s)", fjs);
    l = versions("acme", "secret", 0, 0);
    ok(l && count(l) == 1 && !strcmp(field(l, 0, "version"), v3), "the upload in use stays");
    json_decref(l);
    now_ms = 50003000;
    sb_policy_delete(eng, "acme", "secret", res);
    ok(sb_policy_versions_forget(eng, "acme", "secret", v3, res) == 0,
       "deleted, its last version can go too");
    l = versions("acme", "secret", 0, 0);
    ok(l && count(l) == 1 && !strcmp(field(l, 0, "change"), "delete"),
       "leaving the delete alone (%s)", sb_result_json(res, NULL));
    json_decref(l);
    ok(sb_policy_version_get(eng, "acme", "secret", v3, res) == SB_ENOTFOUND, "no code left");
}

static void test_isolation(void)
{
    char v[17];
    put_at("acme", "shared-name", src_of(7, 0), 30000000, v);
    ok(sb_policy_versions(eng, "globex", "shared-name", 0, 0, res) == SB_ENOTFOUND,
       "another account's history reads as none (%s)", sb_result_message(res));
    ok(sb_policy_version_get(eng, "globex", "shared-name", v, res) == SB_ENOTFOUND,
       "and so does its code");
    put_at("globex", "shared-name", src_of(8, 0), 30001000, NULL);
    json_t *l = versions("globex", "shared-name", 0, 0);
    ok(l && count(l) == 1, "an upload of the same name starts a history of its own");
    json_decref(l);
    l = versions("acme", "shared-name", 0, 0);
    ok(l && count(l) == 1 && !strcmp(field(l, 0, "version"), v), "beside the first's, untouched");
    json_decref(l);
    ok(sb_policy_versions(eng, "nobody", "shared-name", 0, 0, res) == SB_ENOTFOUND,
       "an unknown account: SB_ENOTFOUND");
}

/* The account numbers with policy history keys (raw LMDB, its "polhist"
** tree; the engine is closed: LMDB opens a directory once a process). */
static int hist_accounts(uint32_t *out, int cap)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *c;
    MDB_val k, v;
    int n = 0;
    if (mdb_env_create(&env)) return -1;
    mdb_env_set_mapsize(env, 256 << 20);
    mdb_env_set_maxdbs(env, 16);
    if (mdb_env_open(env, dir, 0, 0600) == 0 && mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
        if (mdb_dbi_open(txn, "polhist", 0, &dbi) == 0 && mdb_cursor_open(txn, dbi, &c) == 0) {
            for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
                 rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
                const uint8_t *p = k.mv_data;
                if (k.mv_size < 5 || p[0] != DB_POLHIST + 1) continue;
                uint32_t a =
                    (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
                if (n == 0 || out[n - 1] != a) {
                    if (n < cap) out[n] = a;
                    n++;
                }
            }
            mdb_cursor_close(c);
        }
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return n;
}

/* Delete the history of account number acct (raw LMDB): a directory as a
** version before histories left it. */
static void hist_forget(uint32_t acct)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *c;
    MDB_val k, v;
    if (mdb_env_create(&env)) return;
    mdb_env_set_mapsize(env, 256 << 20);
    mdb_env_set_maxdbs(env, 16);
    if (mdb_env_open(env, dir, 0, 0600) == 0 && mdb_txn_begin(env, NULL, 0, &txn) == 0) {
        if (mdb_dbi_open(txn, "polhist", 0, &dbi) == 0 && mdb_cursor_open(txn, dbi, &c) == 0) {
            for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
                 rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
                const uint8_t *p = k.mv_data;
                if (k.mv_size >= 5 && p[0] == DB_POLHIST + 1 &&
                    ((uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4]) ==
                        acct)
                    mdb_cursor_del(c, 0);
            }
            mdb_cursor_close(c);
        }
        mdb_txn_commit(txn);
    }
    mdb_env_close(env);
}

static void test_account_delete(void)
{
    uint32_t before[8], after[8];
    sb_close(eng);
    int nb = hist_accounts(before, 8);
    eng = open_engine();
    ok(nb == 2, "two accounts have histories (%d)", nb);
    ok(eng && sb_account_delete(eng, "acme", res) == 0, "acme deleted (%s)",
       sb_result_message(res));
    sb_close(eng);
    int na = hist_accounts(after, 8);
    eng = open_engine();
    ok(na == 1 && nb == 2 && after[0] == before[1], "its history went with it, globex's stayed");
    const char *acct = "{\"id\":\"acme\"}";
    sb_account_put(eng, acct, strlen(acct), res);
    ok(sb_policy_versions(eng, "acme", "route", 0, 0, res) == SB_ENOTFOUND,
       "an account made again under its id has none");
}

/* A policy uploaded before histories were kept (its keys removed by hand):
** it reads as one entry, and its next change records it first. */
static void test_before_history(void)
{
    char v1[17], v2[17];
    const char *acct = "{\"id\":\"old\"}";
    sb_account_put(eng, acct, strlen(acct), res);
    char s1[256];
    snprintf(s1, sizeof s1, "%s", src_of(41, 0));
    put_at("old", "legacy", s1, 40000000, v1);
    uint32_t before[8], after[8];
    sb_close(eng);
    int nb = hist_accounts(before, 8);
    /* old is the newest account: the highest number */
    hist_forget(before[nb - 1]);
    int na = hist_accounts(after, 8);
    eng = open_engine();
    ok(na == nb - 1, "its history removed, as a format 8 directory has none");
    json_t *l = versions("old", "legacy", 0, 0);
    ok(l && count(l) == 1 && num(l, 0, "seq") == 0 && num(l, 0, "at_ms") == 40000000,
       "the upload in use is its one entry, seq 0, stored when it was (%s)",
       sb_result_json(res, NULL));
    ok(l && json_is_true(
                json_object_get(json_array_get(json_object_get(l, "versions"), 0), "current")),
       "current");
    json_decref(l);
    ok(sb_policy_version_get(eng, "old", "legacy", v1, res) == 0 &&
           strstr(sb_result_json(res, NULL), "wait = 41"),
       "its code reads");
    put_at("old", "legacy", src_of(42, 0), 41000000, v2);
    l = versions("old", "legacy", 0, 0);
    ok(l && count(l) == 2, "the next upload records it first (%s)", sb_result_json(res, NULL));
    is_str(field(l, 0, "version"), v2, "then itself");
    is_str(field(l, 1, "version"), v1, "the one it replaced");
    ok(num(l, 1, "at_ms") == 40000000, "with the time it was stored");
    json_decref(l);
    ok(sb_policy_version_get(eng, "old", "legacy", v1, res) == 0, "and its code");
    json_t *o = json_loads(sb_result_json(res, NULL), 0, NULL);
    is_str(json_string_value(json_object_get(o, "code")), s1, "as it was uploaded");
    json_decref(o);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sb-test-polhist-%d", (int)getpid());
    res = sb_result_new();
    eng = open_engine();
    if (!ok(eng != NULL, "engine opened")) return done_testing();
    const char *acme = "{\"id\":\"acme\"}", *globex = "{\"id\":\"globex\"}";
    sb_account_put(eng, acme, strlen(acme), res);
    sb_account_put(eng, globex, strlen(globex), res);
    test_order_and_code();
    test_name_limit_and_paging();
    test_account_budget();
    test_isolation();
    test_forget();
    test_account_delete();
    test_before_history();
    sb_close(eng);
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
}
