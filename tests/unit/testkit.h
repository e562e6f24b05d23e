/*
** testkit.h — what the C tests that open engines share: an injected clock,
** a log callback that stays quiet unless SB_TEST_LOG is set, and removing a
** test's data directory. Include after switchboard.h and tap.h.
*/
#ifndef SB_TESTKIT_H
#define SB_TESTKIT_H

#include "switchboard.h"

#include <ftw.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The engine's clock in tests: now_ms, moved by the test (sb_config.clock). */
__attribute__((unused)) static int64_t now_ms = 1767603600000; /* Mon 2026-01-05 09:00 UTC */

/* When set, each read of the clock moves it on by tick_ms: time passing
** while the engine works (0: it stands still). */
__attribute__((unused)) static int64_t tick_ms;

static inline int64_t test_clock(void *arg)
{
    (void)arg;
    int64_t t = now_ms;
    if (tick_ms) now_ms += tick_ms;
    return t;
}

/* sb_config.log: silent, or on stderr when SB_TEST_LOG is set. */
static inline void quiet(void *arg, sb_log_level l, const char *line)
{
    (void)arg;
    (void)l;
    if (getenv("SB_TEST_LOG")) fprintf(stderr, "log: %s\n", line);
}

#ifdef SB_TAP_H /* what reports on the TAP stream (the fuzz targets have none) */
/* A log callback keeping the engines' lines since the last log_clear() in
** logbuf, one a line (for tests that read them; only these include it). */
#ifdef TESTKIT_LOG_KEEP
static char logbuf[8192];

static void log_clear(void)
{
    logbuf[0] = 0;
}

static void log_keep(void *arg, sb_log_level l, const char *line)
{
    size_t n = strlen(logbuf);
    snprintf(logbuf + n, sizeof logbuf - n, "%s\n", line);
    quiet(arg, l, line);
}
#endif

/* The engine the C tests open: on dir, with the injected clock, quiet logs,
** nothing synced, a map of `map` bytes and policy_dir (may be NULL). Hooks
** get 10 s of wall-clock time, not the default 50 ms: on a loaded machine
** (the sanitizer build, other jobs) a trivial hook is now and then
** descheduled for longer and fails, which a test sees as a fallback or a
** failed review. The instruction budget still stops a runaway hook; a test
** of the wall-clock limit sets its own. */
static inline void test_engine_config(sb_config *cfg, const char *dir, const char *policy_dir,
                                      size_t map)
{
    sb_config_init(cfg);
    cfg->data_dir = dir;
    cfg->policy_dir = policy_dir;
    cfg->sync = SB_SYNC_NONE;
    cfg->clock = test_clock;
    cfg->map_size = map;
    cfg->log = quiet;
    cfg->policy_wall_ms = 10000;
}

/* Open it; NULL, and the reason on the TAP stream, if that fails. */
static inline sb_engine *test_open(const sb_config *cfg, sb_result *res)
{
    sb_engine *e = NULL;
    if (sb_open(&e, cfg, res)) diag("open %s: %s", cfg->data_dir, sb_result_message(res));
    return e;
}

/* A document put (sb_agent_put, sb_queue_put...): its code, and on failure
** the reason and field on the TAP stream. */
static inline int test_put(sb_engine *e, sb_result *res,
                           int (*fn)(sb_engine *, const char *, const char *, size_t, sb_result *),
                           const char *acct, const char *json)
{
    int rc = fn(e, acct, json, strlen(json), res);
    if (rc)
        diag("put %s: %s (field %s)", json, sb_result_message(res),
             sb_result_field(res) ? sb_result_field(res) : "-");
    return rc;
}

/* An event as JSON: its code (the reason on the TAP stream when SB_TEST_LOG
** is set: refusals are often what a test expects). */
static inline int test_event(sb_engine *e, sb_result *res, const char *acct, const char *json)
{
    int rc = sb_submit_json(e, acct, json, strlen(json), res);
    if (rc && getenv("SB_TEST_LOG")) diag("event %s: %s", json, sb_result_message(res));
    return rc;
}
/* test_event of a JSON text made with printf's format. */
static inline int test_eventf(sb_engine *e, sb_result *res, const char *acct, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline int test_eventf(sb_engine *e, sb_result *res, const char *acct, const char *fmt, ...)
{
    char json[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(json, sizeof json, fmt, ap);
    va_end(ap);
    return test_event(e, res, acct, json);
}
/* Actions in res: how many of a type, and the n-th (from 0) of a type. */
static inline int test_action_count(const sb_result *res, sb_action_type type)
{
    int n = 0;
    for (size_t i = 0; i < sb_result_count(res); i++)
        n += sb_result_action(res, i)->type == type;
    return n;
}

static inline const sb_action *test_action_nth(const sb_result *res, sb_action_type type, int n)
{
    for (size_t i = 0; i < sb_result_count(res); i++) {
        const sb_action *a = sb_result_action(res, i);
        if (a->type == type && n-- == 0) return a;
    }
    return NULL;
}
#endif

static inline int rmtree_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* A seeded random stream for the randomized tests (splitmix64): the same
** seed, the same run. test_rng is the state; set it to seed a run. */
__attribute__((unused)) static uint64_t test_rng;

static inline uint64_t rnd64(void)
{
    uint64_t z = (test_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A draw in [0, n) (0 when n <= 0). */
static inline int rnd(int n)
{
    return n > 0 ? (int)(rnd64() % (uint64_t)n) : 0;
}

/* Remove a directory and everything under it (links are not followed). */
static inline void rmtree(const char *path)
{
    nftw(path, rmtree_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The format version of the data directory d (the meta record "schema",
** behind its table's byte), read, or first written when set >= 0, with LMDB
** directly (the engine closed); -1 on error. map: the map size to open at. */
static __attribute__((unused)) long long test_schema_at(const char *d, size_t map, long long set)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {7, "\x01schema"}, v;
    long long got = -1;
    if (mdb_env_create(&env)) return -1;
    mdb_env_set_mapsize(env, map);
    if (mdb_env_open(env, d, 0, 0600) == 0 && mdb_txn_begin(env, NULL, 0, &txn) == 0) {
        if (mdb_dbi_open(txn, NULL, 0, &dbi) == 0) {
            unsigned char b[8];
            if (set >= 0) {
                for (int i = 0; i < 8; i++)
                    b[i] = (unsigned char)((unsigned long long)set >> (56 - 8 * i));
                v = (MDB_val){8, b};
                mdb_put(txn, dbi, &k, &v, 0);
            }
            if (mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == 8) {
                got = 0;
                for (int i = 0; i < 8; i++)
                    got = (got << 8) | ((unsigned char *)v.mv_data)[i];
            }
        }
        mdb_txn_commit(txn);
    }
    mdb_env_close(env);
    return got;
}

#endif
