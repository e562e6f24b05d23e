/*
** test_index_periods.c — the call-id and pseudonym index entries of records,
** kept by the period each call ended in (recidt, ridxt; records.c), and
** those of a directory written before them (recid, ridx), read beside them.
** Records over many periods: caller history reaches back across periods,
** an access request lists every record of a number once, in time order, on
** one page or on pages of one record, caller history looks back 90 days, a record is read by its
*call id (the
** latest of a call id used twice), an event for an ended call says so, an
** erasure removes every entry, and a sweep leaves none. Then the same with
** the entries of older records moved to the earlier layout, as a directory
** written before format 11 has them, and newer records beside them; and a
** directory of format 10 whose first write queues the walk that moves them.
*/
#include "engine.h"  /* the tables */
#include "records.h" /* RF_TIDX, REC_OFF_FLAGS */
#include "switchboard.h"
#include "tap.h"
#define TESTKIT_LOG_KEEP /* the upgrade walk's lines */
#include "testkit.h"
#include "reckit.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define DAY 86400000LL
#define CALLER "+442079461001"
#define OTHER "+442079461002"
#define DIALLED "+442079469001"

/* Ring attrs.want when free, else the agent this caller last spoke to, else
** the agent listed last. */
static const char *route_src = "local P = {}\n"
                               "function P.route(call, agents, ctx)\n"
                               "  local want = call.attrs.want or call.previous_agent\n"
                               "  for _, a in ipairs(agents) do\n"
                               "    if a.id == want then return { ring = a.id } end\n"
                               "  end\n"
                               "  return { ring = agents[#agents].id }\n"
                               "end\n"
                               "return P\n";

/* Keep 5 years; erasure requests delete. */
static const char *ret_src =
    "local P = {}\n"
    "function P.retain(record, ctx)\n"
    "  if record.age_days < 1825 then return { keep = true, review_in_days = 1825 - "
    "record.age_days } end\n"
    "  return { delete = true, reason = 'older than 5 years' }\n"
    "end\n"
    "function P.erase(record, request, ctx) return { delete = true, reason = 'erasure' } end\n"
    "return P\n";

static int account(const char *id)
{
    char json[128], bare[64];
    snprintf(json, sizeof json, "{\"id\":\"%s\",\"retention\":\"ret\"}", id);
    snprintf(bare, sizeof bare, "{\"id\":\"%s\"}", id);
    int rc = sb_account_put(eng, bare, strlen(bare), res) ||
             sb_policy_put(eng, id, "route", route_src, strlen(route_src), NULL, res) ||
             sb_policy_put(eng, id, "ret", ret_src, strlen(ret_src), NULL, res) ||
             sb_account_put(eng, json, strlen(json), res);
    if (rc) diag("account %s: %s", id, sb_result_message(res));
    return rc ? -1 : support_team(id, "route");
}

/* The agent this result rings for call, or "". */
static const char *rung(const char *call)
{
    for (size_t i = 0; i < sb_result_count(res); i++) {
        const sb_action *a = sb_result_action(res, i);
        if (a->type == SB_ACT_RING && a->call_id && !strcmp(a->call_id, call)) return a->agent_id;
    }
    return "";
}

/* A whole call of caller to DIALLED (want: the agent to ring, or NULL):
** the agent who answered, or "". */
static const char *call(const char *acct, const char *id, const char *caller, const char *want)
{
    static char agent[SB_ID_MAX + 1];
    char json[256];
    snprintf(json, sizeof json,
             "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"support\",\"caller\":\"%s\","
             "\"called\":\"" DIALLED "\"%s%s%s}",
             id, caller, want ? ",\"attrs\":{\"want\":\"" : "", want ? want : "",
             want ? "\"}" : "");
    agent[0] = 0;
    if (ev(acct, json) == 0) snprintf(agent, sizeof agent, "%s", rung(id));
    now_ms += 2000;
    if (finish(acct, id, agent)) agent[0] = 0;
    return agent;
}

/* --- the tables ------------------------------------------------------------ */

/* Move every index entry to the layout of a directory written before
** format 11 (recidt to recid, ridxt to ridx, records without RF_TIDX), as
** the records of such a directory have them, and have the engine look for
** them there, as one that opened such a directory does. */
static int to_old_layout(wtx *t, void *arg)
{
    (void)arg;
    __atomic_store_n(&t->e->sh->tidx_only, 0, __ATOMIC_RELAXED);
    static const int from[2] = {DB_RECIDT, DB_RIDXT}, to[2] = {DB_RECID, DB_RIDX};
    int rc = 0;
    for (int i = 0; i < 2 && !rc; i++) {
        for (;;) {
            st_iter it;
            rc = st_iter_open(&it, t->txn, t->e, from[i], "", 0);
            if (rc) {
                st_iter_close(&it);
                break;
            }
            uint8_t k[REC_RIDX_MAX + 8], ok_[REC_RIDX_MAX + 8], v[16];
            size_t kl = it.klen, vl = it.v.mv_size;
            if (kl > sizeof k || kl < 7 || vl > sizeof v) rc = SB_ESTORE;
            if (!rc) {
                memcpy(k, it.key, kl);
                memcpy(v, it.v.mv_data, vl);
            }
            st_iter_close(&it);
            if (rc) break;
            memcpy(ok_, k, 4); /* the account, then all but the period */
            memcpy(ok_ + 4, k + 6, kl - 6);
            if ((rc = st_del(t->txn, t->e, from[i], k, kl)) ||
                (rc = st_put(t->txn, t->e, to[i], ok_, kl - 2, v, vl)))
                break;
        }
        if (rc == MDB_NOTFOUND) rc = 0;
    }
    /* The records' flags: collected first, patched after. */
    st_iter it;
    size_t n = 0, cap = 0;
    struct {
        uint8_t k[REC_KEY_MAX];
        size_t kl;
    } *keys = NULL;
    for (rc = rc ? rc : st_iter_open(&it, t->txn, t->e, DB_RECORDS, "", 0); rc == 0;
         rc = st_iter_next(&it)) {
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            void *g = realloc(keys, cap * sizeof *keys);
            if (!g) {
                rc = SB_ENOMEM;
                break;
            }
            keys = g;
        }
        if (it.klen > REC_KEY_MAX) continue;
        memcpy(keys[n].k, it.key, it.klen);
        keys[n++].kl = it.klen;
    }
    st_iter_close(&it);
    if (rc == MDB_NOTFOUND) rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        MDB_val v;
        if ((rc = st_get(t->txn, t->e, DB_RECORDS, keys[i].k, keys[i].kl, &v))) break;
        uint8_t *copy = malloc(v.mv_size);
        if (!copy) {
            rc = SB_ENOMEM;
            break;
        }
        memcpy(copy, v.mv_data, v.mv_size);
        copy[REC_OFF_FLAGS] &= (uint8_t)~RF_TIDX;
        rc = st_put(t->txn, t->e, DB_RECORDS, keys[i].k, keys[i].kl, copy, v.mv_size);
        free(copy);
    }
    free(keys);
    return rc;
}

/* --- what a user sees ------------------------------------------------------- */

/* The ids of the records an access request for number lists, one page
** (limit 0) or pages of `limit`, comma-separated in out; the count, -1 if a
** request failed. */
static int exported(const char *acct, const char *number, size_t limit, char *out, size_t cap)
{
    char after[128] = "";
    int n = 0;
    out[0] = 0;
    for (int pages = 0; pages < 100; pages++) {
        json_t *d = doc(sb_records_export_page(eng, acct, number, SB_EXPORT_JSON,
                                               after[0] ? after : NULL, limit, 0, res));
        if (!d) return -1;
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(d, "records"), i, r)
        {
            size_t l = strlen(out);
            snprintf(out + l, cap - l, "%s%s", n++ ? "," : "", jstr(r, "id"));
        }
        const char *next = jstr(d, "next");
        snprintf(after, sizeof after, "%s", next);
        json_decref(d);
        if (!after[0]) return n;
    }
    return -1;
}

/* The "ended" of call id's record as sb_call_get reads it, or -1. */
static long long ended_of(const char *acct, const char *id)
{
    json_t *d = doc(sb_call_get(eng, acct, id, res));
    long long t = d ? jint(d, "ended_ms") : -1;
    json_decref(d);
    return t;
}

/* Records of CALLER (c1..c5), one a month, and of OTHER, in account acct;
** c1 and c4 talk to bob, c2 to alice. The first call's end in *t0. */
static void month_of_calls(const char *acct, const char *tag, long long *t0)
{
    char id[16];
    for (int i = 1; i <= 5; i++) {
        snprintf(id, sizeof id, "%s%d", tag, i);
        const char *want = i == 1 || i == 4 ? "bob" : i == 2 ? "alice" : NULL;
        call(acct, id, CALLER, want);
        if (i == 1) *t0 = ended_of(acct, id);
        snprintf(id, sizeof id, "%so%d", tag, i);
        call(acct, id, OTHER, "carol");
        now_ms += 30 * DAY;
    }
}

static void test_periods(void)
{
    long long t0 = 0;
    char ids[512];
    ok(account("per") == 0, "account per");
    ok(!rec_old_layout(eng), "a new directory: lookups read the tables by period alone");
    month_of_calls("per", "c", &t0);
    is_int(acct_entries("per", DB_RECIDT, NULL, NULL), 10,
           "10 records: 10 call-id entries by period");
    is_int(acct_entries("per", DB_RIDXT, NULL, NULL), 20,
           "and 20 pseudonym entries (caller and called)");
    is_int(acct_entries("per", DB_RECID, NULL, NULL) + acct_entries("per", DB_RIDX, NULL, NULL), 0,
           "none in the earlier layout");
    /* Calls 4 days apart: in periods next to each other (6.2 days each). */
    for (int i = 1; i <= 3; i++) {
        char id[8];
        snprintf(id, sizeof id, "d%d", i);
        call("per", id, CALLER, i == 3 ? "alice" : NULL);
        now_ms += 4 * DAY;
    }
    is_str(call("per", "h1", CALLER, NULL), "alice",
           "caller history: alice, whom the caller last spoke to (d3, 4 days ago)");
    is_str(call("per", "h2", "+442079461077", NULL), "carol", "a new caller has none");

    is_int(exported("per", CALLER, 0, ids, sizeof ids), 9, "an access request for the caller");
    is_str(ids, "c1,c2,c3,c4,c5,d1,d2,d3,h1", "lists each record once, oldest first");
    is_int(exported("per", CALLER, 1, ids, sizeof ids), 9, "on pages of one record");
    is_str(ids, "c1,c2,c3,c4,c5,d1,d2,d3,h1", "the same");
    is_int(exported("per", DIALLED, 2, ids, sizeof ids), 15,
           "the number they dialled, pages of two");
    is_str(ids, "c1,co1,c2,co2,c3,co3,c4,co4,c5,co5,d1,d2,d3,h1,h2", "every record, as called");

    ok(t0 > 0 && ended_of("per", "c1") == t0, "c1's record read by its call id, five months on");
    ok(ev("per", "{\"type\":\"hangup\",\"call\":\"d2\"}") == SB_ESTATE &&
           strstr(sb_result_message(res), "already ended") != NULL,
       "an event for d2 says it has ended (%s)", sb_result_message(res));
    ok(ev("per", "{\"type\":\"hangup\",\"call\":\"c2\"}") == SB_ENOTFOUND,
       "one for c2, which ended over 90 days ago, that there is no such call (%s)",
       sb_result_message(res));
    now_ms += 40 * DAY;
    call("per", "c1", OTHER, NULL);
    long long again = ended_of("per", "c1");
    ok(again > t0 + 100 * DAY, "a call id used again: the latest of its records is read (%lld)",
       again - t0);

    json_t *d = doc(sb_erase(eng, "per", CALLER, res));
    is_int(d ? jint(d, "deleted") : -1, 9, "an erasure of the caller deletes its 9 records");
    json_decref(d);
    is_int(exported("per", CALLER, 0, ids, sizeof ids), 0, "an access request finds none");
    is_int(exported("per", DIALLED, 0, ids, sizeof ids), 7, "the number dialled keeps 7");
    is_str(ids, "co1,co2,co3,co4,co5,h2,c1", "those of the others");
    is_int(acct_entries("per", DB_RECIDT, NULL, NULL), 7, "7 call-id entries left");
    is_int(acct_entries("per", DB_RIDXT, NULL, NULL), 14, "14 pseudonym entries");
    now_ms += 6 * 365 * DAY;
    is_int(swept("deleted", NULL), 7, "at 6 years the sweep deletes the rest");
    is_int(acct_entries("per", DB_RECIDT, NULL, NULL) + acct_entries("per", DB_RIDXT, NULL, NULL) +
               acct_entries("per", DB_RECORDS, NULL, NULL),
           0, "and leaves no entry");
}

/* Account acct with month_of_calls' records (the first one's end in *t0),
** their entries moved to the layout of a directory written before format 11. */
static void old_layout_month(const char *acct, long long *t0)
{
    ok(account(acct) == 0, "account %s", acct);
    month_of_calls(acct, "c", t0);
    ok(eng_write(eng, to_old_layout, NULL, res) == 0,
       "its entries moved to the layout of a directory written before format 11");
}

static void test_old_layout(void)
{
    long long t0 = 0;
    char ids[512];
    old_layout_month("old", &t0);
    is_int(acct_entries("old", DB_RECID, NULL, NULL), 10, "10 call-id entries in recid");
    is_int(acct_entries("old", DB_RIDX, NULL, NULL), 20, "20 pseudonym entries in ridx");
    is_int(acct_entries("old", DB_RECIDT, NULL, NULL) + acct_entries("old", DB_RIDXT, NULL, NULL),
           0, "none by period");
    is_str(call("old", "h1", CALLER, NULL), "bob", "caller history reads them");
    is_int(acct_entries("old", DB_RECIDT, NULL, NULL), 1, "a new record's entries go by period");
    now_ms += 30 * DAY;
    is_str(call("old", "h2", CALLER, "alice"), "alice", "another talks to alice");
    is_str(call("old", "h3", CALLER, NULL), "alice", "history: the newer layout's alice first");
    is_int(exported("old", CALLER, 0, ids, sizeof ids), 8,
           "an access request for the caller: both layouts");
    is_str(ids, "c1,c2,c3,c4,c5,h1,h2,h3", "each once, oldest first");
    is_int(exported("old", CALLER, 1, ids, sizeof ids), 8, "pages of one");
    is_str(ids, "c1,c2,c3,c4,c5,h1,h2,h3", "the same");
    is_int(exported("old", DIALLED, 3, ids, sizeof ids), 13, "the dialled number, pages of 3");
    is_str(ids, "c1,co1,c2,co2,c3,co3,c4,co4,c5,co5,h1,h2,h3", "the same order");
    ok(t0 > 0 && ended_of("old", "c1") == t0, "an older record read by its call id");
    ok(ev("old", "{\"type\":\"hangup\",\"call\":\"c3\"}") == SB_ESTATE &&
           strstr(sb_result_message(res), "already ended") != NULL,
       "an event for it says it has ended");

    now_ms += 91 * DAY;
    is_str(call("old", "h4", CALLER, NULL), "carol",
           "91 days on, the caller has no previous agent: history looks back 90 days");

    json_t *d = doc(sb_erase(eng, "old", CALLER, res));
    is_int(d ? jint(d, "deleted") : -1, 9, "an erasure of the caller deletes all 9");
    json_decref(d);
    is_int(exported("old", CALLER, 0, ids, sizeof ids), 0, "none is found after");
    is_int(acct_entries("old", DB_RECID, NULL, NULL) + acct_entries("old", DB_RECIDT, NULL, NULL),
           5, "5 call-id entries left");
    is_int(acct_entries("old", DB_RIDX, NULL, NULL) + acct_entries("old", DB_RIDXT, NULL, NULL), 10,
           "10 pseudonym entries left");
    now_ms += 6 * 365 * DAY;
    is_int(swept("deleted", NULL), 5, "at 6 years the sweep deletes the rest");
    is_int(acct_entries("old", DB_RECID, NULL, NULL) + acct_entries("old", DB_RIDX, NULL, NULL) +
               acct_entries("old", DB_RECIDT, NULL, NULL) +
               acct_entries("old", DB_RIDXT, NULL, NULL) +
               acct_entries("old", DB_RECORDS, NULL, NULL),
           0, "and no entry is left in either layout");
}

/* A directory of format 10 with the entries in the earlier layout, opened
** by this version: its first write queues the walk that moves them, and
** sweeps run it. */
static void test_reindex(void)
{
    long long t0 = 0;
    char ids[512];
    old_layout_month("ri", &t0);
    sb_close(eng);
    ok(test_schema_at(dir, RECKIT_MAP_SIZE, 10) == 10, "the directory marked format 10");
    sb_config cfg;
    test_engine_config(&cfg, dir, "policies", RECKIT_MAP_SIZE);
    cfg.log = log_keep;
    log_clear();
    eng = test_open(&cfg, res);
    ok(eng != NULL, "opened again");
    ok(rec_old_layout(eng), "lookups read recid and ridx too");
    is_int(acct_entries("ri", DB_RECID, NULL, NULL) + acct_entries("ri", DB_RIDX, NULL, NULL), 30,
           "30 entries in recid and ridx");
    is_str(call("ri", "n1", CALLER, NULL), "bob", "a call (the first write): history reads them");
    ok(test_schema_at(dir, RECKIT_MAP_SIZE, -1) == SCHEMA_VERSION, "the directory is format %d",
       SCHEMA_VERSION);
    int sweeps = 0;
    while (acct_entries("ri", DB_RECID, NULL, NULL) + acct_entries("ri", DB_RIDX, NULL, NULL) > 0 &&
           sweeps < 20) {
        if (swept("reviewed", NULL) < 0) break;
        sweeps++;
    }
    is_int(acct_entries("ri", DB_RECID, NULL, NULL) + acct_entries("ri", DB_RIDX, NULL, NULL), 0,
           "sweeps move them all (%d sweeps)", sweeps);
    ok(!rec_old_layout(eng), "and lookups leave recid and ridx alone from then on");
    char marked[40];
    snprintf(marked, sizeof marked, "marked as format %d", SCHEMA_VERSION);
    ok(strstr(logbuf, marked) && strstr(logbuf, "every record's index entries are kept by period"),
       "the log says the directory was marked, and when the walk was done");
    is_int(acct_entries("ri", DB_RECIDT, NULL, NULL), 11, "11 call-id entries by period");
    is_int(acct_entries("ri", DB_RIDXT, NULL, NULL), 22, "and 22 pseudonym entries");
    is_int(exported("ri", CALLER, 1, ids, sizeof ids), 6, "an access request, pages of one");
    is_str(ids, "c1,c2,c3,c4,c5,n1", "each once, oldest first");
    is_str(call("ri", "n2", CALLER, NULL), "bob", "caller history");
    ok(t0 > 0 && ended_of("ri", "c1") == t0, "a record read by its call id");
    json_t *d = doc(sb_erase(eng, "ri", CALLER, res));
    is_int(d ? jint(d, "deleted") : -1, 7, "an erasure deletes all 7 of the caller's");
    json_decref(d);
    is_int(acct_entries("ri", DB_RIDXT, NULL, NULL), 10,
           "and their pseudonym entries (10 left, of OTHER's)");
    now_ms += 6 * 365 * DAY;
    is_int(swept("deleted", NULL), 5, "the sweep deletes the rest");
    is_int(acct_entries("ri", DB_RECIDT, NULL, NULL) + acct_entries("ri", DB_RIDXT, NULL, NULL) +
               acct_entries("ri", DB_RECORDS, NULL, NULL),
           0, "and leaves no entry");
}

int main(void)
{
    if (start_engine("index_periods")) return done_testing();
    test_periods();
    test_old_layout();
    test_reindex();
    return end_engine();
}
