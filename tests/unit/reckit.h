/*
** reckit.h — what the C tests of call records and retention (test_records,
** test_retention, test_compliance) share: one engine on a scratch directory
** with the stock policies, events as JSON (each refusal shown on the TAP
** stream), the documents the engine returns and their fields, sweeps, holds,
** audit entries, an account's entries in a table (with engine.h first), and
** a file read whole. Include after switchboard.h, tap.h and testkit.h
** (define RECKIT_MAP_SIZE first for a map other than 16 MB, RECKIT_NO_WALL for
** hooks without the wall-clock budget); main opens the
** engine with start_engine("NAME") (open_engine() opens it again on dir)
** and returns end_engine().
*/
#ifndef SB_RECKIT_H
#define SB_RECKIT_H

#include "crypto.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef RECKIT_MAP_SIZE
#define RECKIT_MAP_SIZE (16 << 20)
#endif

static char dir[256];
static sb_engine *eng;
static sb_result *res;

/* The engine on dir, the stock policies from ./policies. */
static __attribute__((unused)) sb_engine *open_engine(void)
{
    sb_config cfg;
    test_engine_config(&cfg, dir, "policies", RECKIT_MAP_SIZE);
#ifdef RECKIT_NO_WALL
    cfg.policy_wall_ms = 0; /* hooks bounded by their instruction budget alone */
#endif
    return test_open(&cfg, res);
}

/* The test's engine on /tmp/sb-test-NAME-PID, and a check that it opened:
** 0, or -1 if it did not. */
static __attribute__((unused)) int start_engine(const char *name)
{
    snprintf(dir, sizeof dir, "/tmp/sb-test-%s-%d", name, (int)getpid());
    res = sb_result_new();
    eng = open_engine();
    ok(eng != NULL, "engine opened on %s", dir);
    return eng ? 0 : -1;
}

/* The end of main: the engine closed, its directory removed (kept when
** SB_TEST_KEEP is set, to look into), and the TAP plan's exit status. */
static __attribute__((unused)) int end_engine(void)
{
    sb_close(eng);
    eng = NULL;
    sb_result_free(res);
    res = NULL;
    if (!getenv("SB_TEST_KEEP")) rmtree(dir);
    return done_testing();
}

/* The document of a call that returned rc, or NULL (why on the TAP stream). */
static __attribute__((unused)) json_t *doc(int rc)
{
    if (rc) diag("failed: %s", sb_result_message(res));
    return rc ? NULL : json_loads(sb_result_json(res, NULL), 0, NULL);
}

static __attribute__((unused)) long long jint(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

/* A string field, or "". */
static __attribute__((unused)) const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* An event as JSON: its code, and why on the TAP stream if it failed. */
static __attribute__((unused)) int ev(const char *acct, const char *json)
{
    int rc = sb_submit_json(eng, acct, json, strlen(json), res);
    if (rc) diag("event %s: %s", json, sb_result_message(res));
    return rc;
}

/* Agents alice, bob and carol, available on softphones, and queue support
** of them (in that order) routed by `policy`, in account acct: 0, or -1
** (why on the TAP stream). */
static __attribute__((unused)) int support_team(const char *acct, const char *policy)
{
    static const char *const agents[] = {"alice", "bob", "carol"};
    char json[256];
    int rc = 0;
    for (int i = 0; i < 3 && !rc; i++) {
        snprintf(json, sizeof json,
                 "{\"id\":\"%s\",\"devices\":{\"softphone\":\"sip:%s@pbx.example\"},"
                 "\"status\":\"available\"}",
                 agents[i], agents[i]);
        rc = sb_agent_put(eng, acct, json, strlen(json), res);
    }
    if (!rc) {
        snprintf(json, sizeof json,
                 "{\"id\":\"support\",\"policy\":\"%s\",\"members\":[{\"agent\":\"alice\"},"
                 "{\"agent\":\"bob\"},{\"agent\":\"carol\"}]}",
                 policy);
        rc = sb_queue_put(eng, acct, json, strlen(json), res);
    }
    if (rc) diag("agents and queue of %s: %s", acct, sb_result_message(res));
    return rc ? -1 : 0;
}

/* End a live call: answered by agent (talk 60 s) and hung up, or, agent
** NULL or "", abandoned. Its code; a second after it ends. */
static __attribute__((unused)) int finish(const char *acct, const char *id, const char *agent)
{
    char json[256];
    if (agent && agent[0]) {
        snprintf(json, sizeof json,
                 "{\"type\":\"ring_result\",\"call\":\"%s\",\"agent\":\"%s\","
                 "\"outcome\":\"answered\"}",
                 id, agent);
        if (ev(acct, json)) return -1;
        now_ms += 60000;
        snprintf(json, sizeof json, "{\"type\":\"hangup\",\"call\":\"%s\"}", id);
    } else {
        snprintf(json, sizeof json, "{\"type\":\"abandon\",\"call\":\"%s\"}", id);
    }
    int rc = ev(acct, json);
    now_ms += 1000;
    return rc;
}

/* A sweep now, without a budget: its report, or NULL. */
static __attribute__((unused)) json_t *sweep(void)
{
    return doc(sb_sweep(eng, 0, NULL, NULL, res));
}

/* Sweep now: the count under key (plus key2's, if given); -1 if it failed. */
static __attribute__((unused)) long long swept(const char *key, const char *key2)
{
    json_t *d = sweep();
    long long n = d ? jint(d, key) + (key2 ? jint(d, key2) : 0) : -1;
    json_decref(d);
    return n;
}

/* Place a hold (JSON); its code, and why on the TAP stream if it failed. */
static __attribute__((unused)) int hold(const char *acct, const char *json)
{
    int rc = sb_hold_place(eng, acct, json, strlen(json), res);
    if (rc) diag("hold %s: %s", json, sb_result_message(res));
    return rc;
}

/* The account's audit entries of action (NULL: any) whose reason has
** reason_has (NULL: any); the last one's reason into why (cap bytes) when
** why is given. -1 when the log could not be read. */
static __attribute__((unused)) int audit_matching(const char *acct, const char *action,
                                                  const char *reason_has, char *why, size_t cap)
{
    json_t *d = doc(sb_audit_list(eng, acct, 0, 100000, res));
    int n = 0;
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(d, "entries"), i, x)
    {
        if (action && strcmp(jstr(x, "action"), action)) continue;
        if (reason_has && !strstr(jstr(x, "reason"), reason_has)) continue;
        n++;
        if (why) snprintf(why, cap, "%s", jstr(x, "reason"));
    }
    json_decref(d);
    return d ? n : -1;
}

#ifdef SB_ENGINE_H
/* The entries of table under account acct's number, each given to `each`
** (when not NULL) as the store has it, the key without its table byte:
** their count, or -1. */
typedef void (*entry_fn)(const uint8_t *k, size_t kl, const MDB_val *v, void *arg);
static __attribute__((unused)) int acct_entries(const char *acct, int table, entry_fn each,
                                                void *arg)
{
    MDB_txn *txn;
    acct_rec a;
    if (eng_read_account(eng, acct, &txn, &a, res)) return -1;
    uint8_t p[4];
    put_be32(p, a.num);
    st_iter it;
    int n = 0, rc;
    for (rc = st_iter_open(&it, txn, eng, table, p, 4); rc == 0; rc = st_iter_next(&it), n++)
        if (each) each(it.key, it.klen, &it.v, arg);
    st_iter_close(&it);
    eng_read_end(eng, txn);
    return rc == MDB_NOTFOUND ? n : -1;
}
#endif

/* Whether the call (live, or its record) exists. */
static __attribute__((unused)) int exists(const char *acct, const char *call_id)
{
    return sb_call_get(eng, acct, call_id, res) == 0;
}

/* The whole file at path, malloc'd (NULL if it cannot be opened); its
** length in *n (0 then). */
static __attribute__((unused)) unsigned char *slurp(const char *path, size_t *n)
{
    int fd = open(path, O_RDONLY);
    *n = 0;
    if (fd < 0) return NULL;
    struct stat st;
    fstat(fd, &st);
    unsigned char *b = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (b && got < (size_t)st.st_size) {
        ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    *n = got;
    return b;
}

/* The data key of account id, unwrapped from its slot in data.keys with
** the master key, as an auditor holding both files could. 0, or -1. */
static __attribute__((unused)) int data_key_of(const char *id, uint8_t key[32])
{
    char path[600], err[256];
    uint8_t master[32];
    snprintf(path, sizeof path, "%s/master.key", dir);
    if (cr_master_load(path, 0, master, err, sizeof err)) return -1;
    snprintf(path, sizeof path, "%s/data.keys", dir);
    size_t len;
    unsigned char *b = slurp(path, &len);
    int rc = -1;
    for (size_t o = 0; b && o + 128 <= len && rc; o += 128)
        if (!memcmp(b + o, "SBK1", 4) && cr_unwrap(master, id, b + o + 8, key) == 0) rc = 0;
    free(b);
    cr_wipe(master, sizeof master);
    return rc;
}

/* The pseudonym the engine keys number's records by in account acct, from
** the key files, as an auditor holding both could. 0, or -1 when the account
** has no slot that opens. */
static __attribute__((unused)) int pseudonym_of(const char *acct, const char *number,
                                                uint8_t out[16])
{
    uint8_t key[32];
    if (data_key_of(acct, key)) return -1;
    cr_pseudonym(key, number, out);
    cr_wipe(key, sizeof key);
    return 0;
}

#ifdef SB_ENGINE_H /* tests that reach into the store (engine.h included first) */
/* Put a value into the store in a write transaction of its own. */
typedef struct {
    int table;
    const uint8_t *k;
    size_t kl;
    const void *v;
    size_t vl;
} put_op;

static __attribute__((unused)) int do_put(wtx *t, void *arg)
{
    put_op *p = arg;
    return st_put(t->txn, t->e, p->table, p->k, p->kl, p->v, p->vl);
}

static __attribute__((unused)) int store_put(int table, const uint8_t *k, size_t kl, const void *v,
                                             size_t vl)
{
    put_op op = {table, k, kl, v, vl};
    return eng_write(eng, do_put, &op, res);
}

#ifdef SB_RECORDS_H /* and records.h: records as version 2 stored them */
/* Seal caller NUL called NUL pattrs as Switchboard did before version 3
** (associated data: account id NUL call id) into out. Its length, or 0. */
static __attribute__((unused)) size_t seal_v2(const uint8_t key[32], const char *account,
                                              const char *id, const char *caller,
                                              const char *called, const char *pattrs, uint8_t *out)
{
    uint8_t pt[512], ad[2 * SB_ID_MAX + 2];
    size_t cl = strlen(caller), dl = strlen(called), pl = strlen(pattrs);
    if (cl + dl + pl + 2 > sizeof pt) return 0;
    memcpy(pt, caller, cl + 1);
    memcpy(pt + cl + 1, called, dl + 1);
    memcpy(pt + cl + dl + 2, pattrs, pl);
    size_t al = strlen(account), il = strlen(id);
    memcpy(ad, account, al + 1);
    memcpy(ad + al + 1, id, il);
    if (cr_seal(key, ad, al + 1 + il, pt, cl + dl + 2 + pl, out)) return 0;
    return cl + dl + 2 + pl + CR_SEAL_OVERHEAD;
}

/* Store r at rk as version `ver` (2 or 3) did: that version byte, no
** reason and ended_by at the end (version 4's), and for version 2 no review due after
** the epoch (offsets 6..13 of version 3). 0, or -1. */
static __attribute__((unused)) int put_as(const uint8_t *rk, size_t rkl, const rec_data *r, int ver)
{
    wbuf w = {0}, none = {0};
    rec_data old = *r;
    old.reason = "";
    old.reasonlen = 0;
    old.ended_by = 0;
    rec_encode(&w, &old);
    wb_strn(&none, "", 0); /* the empty reason's bytes */
    wb_u8(&none, 0);       /* and ended_by's */
    int rc = w.err || none.err ? -1 : 0;
    if (!rc) {
        w.b.p[0] = (char)ver;
        w.b.len -= none.b.len;
        if (ver == 2) {
            memmove(w.b.p + 6, w.b.p + 14, w.b.len - 14);
            w.b.len -= 8;
        }
        rc = store_put(DB_RECORDS, rk, rkl, w.b.p, w.b.len) ? -1 : 0;
    }
    buf_free(&w.b);
    buf_free(&none.b);
    return rc;
}

static __attribute__((unused)) int put_v2(const uint8_t *rk, size_t rkl, const rec_data *r)
{
    return put_as(rk, rkl, r, 2);
}
#endif
#endif

#endif
