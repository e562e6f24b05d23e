/*
** test_compliance.c — call records and retention reviewed as a data
** protection officer and a customer's compliance engineer would, through the
** public API: after anonymization no trace of the number (nor of its
** pseudonym) is left where it can be read, the data file included; an
** erasure request reaches every record of the number in every queue of the
** account and no other account, records under hold and records reviewed
** far in the future, and calls still live when it came; holds that overlap;
** sweeps cut by their time budget that carry on where they stopped; retain
** hooks returning odd review dates; the audit log complete, in order and
** without numbers; account deletion shredding the data key.
*/
#include "crypto.h"
#include "engine.h"  /* DB_REVIEW: what is left of a deleted record in the review index */
#include "records.h" /* records as version 2 stored them */
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"
#include "reckit.h"

#include <fcntl.h>
#include <pthread.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define DAY 86400000LL

/* Route to the agent this caller last spoke to when there is one (caller
** history), else to the last agent free; wait when nobody is free. */
static const char *history_route = "local P = {}\n"
                                   "function P.route(call, agents, ctx)\n"
                                   "  for _, a in ipairs(agents) do\n"
                                   "    if a.id == call.previous_agent then\n"
                                   "      return { ring = a.id }\n"
                                   "    end\n"
                                   "  end\n"
                                   "  if #agents == 0 then return { wait = 5 } end\n"
                                   "  return { ring = agents[#agents].id }\n"
                                   "end\n"
                                   "return P\n";

/* An account with two agents and two queues (support, sales) routed by
** history_route; its retention policy `retention` (stock or uploaded). */
static int account(const char *id, const char *retention)
{
    char json[512];
    snprintf(json, sizeof json, "{\"id\":\"%s\",\"personal_attrs\":[\"name\"]}", id);
    int rc = sb_account_put(eng, json, strlen(json), res);
    rc |= sb_policy_put(eng, id, "hist", history_route, strlen(history_route), NULL, res);
    for (int i = 1; i <= 2; i++) {
        snprintf(json, sizeof json,
                 "{\"id\":\"a%d\",\"devices\":{\"softphone\":\"sip:a%d@pbx.example\"},"
                 "\"status\":\"available\"}",
                 i, i);
        rc |= sb_agent_put(eng, id, json, strlen(json), res);
    }
    const char *q = "{\"id\":\"support\",\"policy\":\"hist\",\"members\":[{\"agent\":\"a1\"},"
                    "{\"agent\":\"a2\"}]}";
    rc |= sb_queue_put(eng, id, q, strlen(q), res);
    q = "{\"id\":\"sales\",\"policy\":\"hist\",\"members\":[{\"agent\":\"a1\"},"
        "{\"agent\":\"a2\"}]}";
    rc |= sb_queue_put(eng, id, q, strlen(q), res);
    if (retention) {
        snprintf(json, sizeof json, "{\"id\":\"%s\",\"retention\":\"%s\"}", id, retention);
        rc |= sb_account_put(eng, json, strlen(json), res);
    }
    if (rc) diag("account %s: %s", id, sb_result_message(res));
    return rc;
}

/* An account whose retention policy is the source src, uploaded as name. */
static int with_policy(const char *id, const char *name, const char *src)
{
    int rc = account(id, NULL);
    if (sb_policy_put(eng, id, name, src, strlen(src), NULL, res)) {
        diag("policy %s: %s", name, sb_result_message(res));
        return -1;
    }
    char json[256];
    snprintf(json, sizeof json, "{\"id\":\"%s\",\"retention\":\"%s\"}", id, name);
    return rc | sb_account_put(eng, json, strlen(json), res);
}

static int offer(const char *acct, const char *id, const char *queue, const char *caller,
                 const char *called)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"%s\",\"caller\":\"%s\"%s%s%s,"
             "\"attrs\":{\"name\":\"Subject\",\"lang\":\"en\"}}",
             id, queue, caller, called ? ",\"called\":\"" : "", called ? called : "",
             called ? "\"" : "");
    return ev(acct, json);
}

/* The agent the last offer rang, or "" (it waits). */
static const char *rang(void)
{
    for (size_t i = 0; i < sb_result_count(res); i++) {
        const sb_action *a = sb_result_action(res, i);
        if (a->type == SB_ACT_RING) return a->agent_id;
    }
    return "";
}

/* A whole call in queue: answered by whoever rings, or abandoned. */
static int call(const char *acct, const char *id, const char *queue, const char *caller, int answer)
{
    if (offer(acct, id, queue, caller, NULL)) return -1;
    char agent[64];
    snprintf(agent, sizeof agent, "%s", answer ? rang() : "");
    now_ms += 3000;
    return finish(acct, id, agent);
}

/* Whether a record of the call exists and is anonymized. */
static int anonymized(const char *acct, const char *call_id)
{
    json_t *c = doc(sb_call_get(eng, acct, call_id, res));
    int a = c && json_is_true(json_object_get(c, "anonymized"));
    json_decref(c);
    return a;
}

/* The length of the list under key in the document of a call that returned
** rc; -1 if it failed. */
static long long doc_len(int rc, const char *key)
{
    json_t *d = doc(rc);
    long long n = d ? (long long)json_array_size(json_object_get(d, key)) : -1;
    json_decref(d);
    return n;
}

static long long exported(const char *acct, const char *number)
{
    return doc_len(sb_records_export(eng, acct, number, SB_EXPORT_JSON, res), "records");
}

/* The digits of a number without its "+": how it would show in text. */
static int text_has_number(const char *text, const char *number)
{
    return strstr(text, number + 1) != NULL;
}

/* --- the data file, byte by byte ------------------------------------------ */

/* Times the bytes occur in data.mdb of directory d (NULL: the engine's). */
static int mdb_count_in(const char *d, const void *pat, size_t pl)
{
    char path[600];
    snprintf(path, sizeof path, "%s/data.mdb", d ? d : dir);
    size_t len;
    unsigned char *b = slurp(path, &len);
    int n = 0;
    for (size_t o = 0; b && o + pl <= len; o++)
        if (!memcmp(b + o, pat, pl)) n++;
    free(b);
    return n;
}

static int mdb_count(const void *pat, size_t pl)
{
    return mdb_count_in(NULL, pat, pl);
}

/* The engine's free pages (LMDB's table 0: under each transaction's id, a
** count and the pages it freed), as a map of page numbers: 1 for free. But
** those the last commit freed: a sweep's own last commit may free a page
** whose unused middle held a deleted entry, cleared at the next one's end. */
static unsigned char *free_pages(size_t *npages)
{
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_envinfo info;
    unsigned char *map = NULL;
    if (mdb_env_info(eng->env, &info) || eng_read_begin(eng, &txn)) return NULL;
    *npages = info.me_last_pgno + 1;
    map = calloc(*npages, 1);
    if (map && mdb_cursor_open(txn, 0, &c) == 0) {
        MDB_val k, v;
        for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            size_t n, pg, id;
            memcpy(&id, k.mv_data, sizeof id);
            if (id >= info.me_last_txnid) continue;
            memcpy(&n, v.mv_data, sizeof n);
            for (size_t i = 1; i <= n && (i + 1) * sizeof pg <= v.mv_size; i++) {
                memcpy(&pg, (const char *)v.mv_data + i * sizeof pg, sizeof pg);
                if (pg < *npages) map[pg] = 1;
            }
        }
        mdb_cursor_close(c);
    }
    eng_read_end(eng, txn);
    return map;
}

/* Times the bytes occur in data.mdb inside the pages `map` marks. */
static int mdb_count_pages(const unsigned char *map, size_t npages, const void *pat, size_t pl)
{
    char path[600];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    size_t len, ps = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char *b = slurp(path, &len);
    int n = 0;
    for (size_t o = 0; b && o + pl <= len; o++)
        if (o / ps < npages && map[o / ps] && !memcmp(b + o, pat, pl)) n++;
    free(b);
    return n;
}

/* Entries of the review index whose record key ends with call_id. */
static int review_entries_of(const char *call_id)
{
    MDB_txn *txn;
    if (eng_read_begin(eng, &txn)) return -1;
    st_iter it;
    int n = 0, rc;
    size_t l = strlen(call_id);
    for (rc = st_iter_open(&it, txn, eng, DB_REVIEW, "", 0); rc == 0; rc = st_iter_next(&it))
        if (it.klen == 8 + 12 + l && !memcmp(it.key + 20, call_id, l)) n++;
    st_iter_close(&it);
    eng_read_end(eng, txn);
    return n;
}

/* --- after anonymization, no trace of the number ----------------------------- */

static void test_anonymize_leaves_nothing(void)
{
    const char *num = "+442079460123", *other = "+442079460999";
    ok(account("anon", "retention/anonymize-30-days-delete-2-years") == 0,
       "an account that anonymizes at 30 days");
    const char *pause = "{\"type\":\"agent_status\",\"agent\":\"a2\",\"status\":\"paused\"}";
    const char *back = "{\"type\":\"agent_status\",\"agent\":\"a2\",\"status\":\"available\"}";
    ok(ev("anon", pause) == 0, "a2 paused: a1 alone takes the first call");
    ok(call("anon", "n1", "support", num, 1) == 0, "a call of %s, answered by a1", num);
    ok(ev("anon", back) == 0, "a2 back");
    ok(call("anon", "n2", "sales", num, 0) == 0, "another, abandoned, in another queue");
    ok(call("anon", "n3", "support", other, 1) == 0, "a call of another number");
    ok(offer("anon", "n4", "support", num, NULL) == 0, "the number calls again");
    char prev[64];
    snprintf(prev, sizeof prev, "%s", rang());
    is_str(prev, "a1", "caller history rings the agent it spoke to, not the last one free");
    now_ms += 3000;
    finish("anon", "n4", prev);
    uint8_t ps[16];
    ok(pseudonym_of("anon", num, ps) == 0, "the number's pseudonym, from the key files");
    ok(mdb_count(ps, 16) > 0, "before: data.mdb holds the pseudonym (the index)");
    json_t *ag = doc(sb_aggregates(eng, "anon", NULL, 0, 0, res));
    char *before = json_dumps(ag, JSON_SORT_KEYS);
    json_decref(ag);

    now_ms += 31 * DAY;
    is_int(swept("anonymized", NULL), 4, "day 31: the 4 records are anonymized");

    int leaks = 0;
    const char *ids[] = {"n1", "n2", "n3", "n4"};
    for (int i = 0; i < 4; i++) {
        leaks += !anonymized("anon", ids[i]);
        leaks += text_has_number(sb_result_json(res, NULL), num);
    }
    is_int(leaks, 0, "every record reads anonymized, without the number");
    json_t *l = doc(sb_records_list(eng, "anon", NULL, 0, res));
    ok(l && !text_has_number(sb_result_json(res, NULL), num), "the record list holds no number");
    json_decref(l);
    is_int(exported("anon", num), 0, "an access request finds nothing");
    ag = doc(sb_aggregates(eng, "anon", NULL, 0, 0, res));
    char *after = json_dumps(ag, JSON_SORT_KEYS);
    json_decref(ag);
    is_str(after, before, "the aggregates are as they were");
    free(before);
    free(after);
    json_t *a = doc(sb_audit_list(eng, "anon", 0, 0, res));
    ok(a && !text_has_number(sb_result_json(res, NULL), num), "the audit log holds no number");
    json_decref(a);

    /* A backup is compacted: the free pages, and the old copies in them,
    ** stay behind; it opens with the data directory's master key. */
    char bdir[600], cmd[1300];
    snprintf(bdir, sizeof bdir, "%s-backup", dir);
    rmtree(bdir);
    json_t *bk = doc(sb_backup(eng, bdir, res));
    ok(bk && json_integer_value(json_object_get(bk, "bytes")) > 0,
       "a backup while the engine runs (%s)", sb_result_json(res, NULL));
    json_decref(bk);
    is_int(mdb_count_in(bdir, ps, 16), 0, "the backup holds no copy of the pseudonym");
    int brc = sb_backup(eng, bdir, res);
    ok(brc == SB_EEXIST && !strcmp(sb_result_field(res), "dest"),
       "a second backup into the same directory is refused (%s)", sb_result_message(res));
    ok(sb_backup(eng, dir, res) != 0, "so is one into the data directory");
    char nodir[700];
    snprintf(nodir, sizeof nodir, "%s-no/such/dir", dir);
    brc = sb_backup(eng, nodir, res);
    ok(brc == SB_ESTORE && !strcmp(sb_result_field(res), "dest") &&
           strstr(sb_result_message(res), "cannot create"),
       "a backup where no directory can be made: SB_ESTORE on dest, as sb_open's data_dir (%s)",
       sb_result_message(res));
    char notutf8[700];
    snprintf(notutf8, sizeof notutf8, "%s-\xff", dir);
    brc = sb_backup(eng, notutf8, res);
    ok(brc == SB_EINVAL && !strcmp(sb_result_field(res), "dest") &&
           strstr(sb_result_message(res), "not UTF-8") && access(notutf8, F_OK) != 0,
       "a backup into a path that is not UTF-8, which its answer could not name: SB_EINVAL on "
       "dest, nothing made (%s)",
       sb_result_message(res));
    snprintf(cmd, sizeof cmd, "cp %s/master.key %s/", dir, bdir);
    if (system(cmd)) diag("cannot copy the master key");
    sb_config bc;
    test_engine_config(&bc, bdir, NULL, 0);
    sb_engine *be = test_open(&bc, res);
    json_t *rl = be ? doc(sb_records_list(be, "anon", NULL, 0, res)) : NULL;
    ok(be && json_array_size(json_object_get(rl, "records")) > 0 &&
           doc_len(sb_records_export(be, "anon", num, SB_EXPORT_JSON, res), "records") == 0,
       "the backup opens with the master key, its records there, the number still gone");
    json_decref(rl);
    if (be) sb_close(be);
    rmtree(bdir);

    size_t npages = 0;
    unsigned char *freed = free_pages(&npages);
    ok(freed != NULL, "the free pages listed");
    sb_close(eng);
    is_int(mdb_count(num + 1, strlen(num + 1)), 0, "data.mdb never held the number in the clear");
    /* The sweep ended by clearing the free pages: 22 of 24 copies were
    ** there before it did. */
    is_int(freed ? mdb_count_pages(freed, npages, ps, 16) : -1, 0,
           "no page freed before the sweep's last commit holds the pseudonym");
    free(freed);
    int stale = mdb_count(ps, 16);
    ok_todo(stale == 0,
            "LMDB leaves old bytes in the unused middle of pages in use (a deleted entry's, "
            "or those of the buffer or free page it wrote the page into), and a deleted key "
            "may stay as a branch page's separator; clearing them would mean writing pages "
            "in use in place",
            "nor anywhere else, after anonymization, its pseudonym (%d copies left)", stale);
    if (getenv("SB_TEST_KEEP")) {
        char hex[33];
        cr_hex_encode(ps, 16, hex);
        diag("pseudonym %s", hex);
    }
    eng = open_engine();

    ok(offer("anon", "n5", "support", num, NULL) == 0, "the number calls once more");
    is_str(rang(), "a2", "caller history has forgotten it: the last agent free rings");
    now_ms += 3000;
    finish("anon", "n5", "");
}

/* --- an erasure request reaches everything of the number ------------------- */

static long long erase_count(json_t *d, const char *k)
{
    return d ? jint(d, k) : -1;
}

static void test_erasure_reach(void)
{
    const char *num = "+442079461234", *other = "+442079469876";
    ok(account("era", "retention/keep-90-days-then-delete") == 0 &&
           account("erb", "retention/keep-90-days-then-delete") == 0,
       "two accounts that keep records 90 days (a review far ahead)");
    int errors = 0;
    errors += call("era", "e1", "support", num, 1);
    errors += call("era", "e2", "sales", num, 0);
    errors += offer("era", "e3", "sales", other, num) || finish("era", "e3", "");
    errors += call("era", "e4", "support", num, 1);
    errors += call("era", "e5", "support", other, 1);
    errors += call("erb", "e1", "support", num, 1);
    is_int(errors, 0,
           "calls of the number in both queues, as caller and as called, and in "
           "another account");
    ok(hold("era", "{\"id\":\"h4\",\"call\":\"e4\",\"reason\":\"dispute\"}") == 0,
       "e4 under a hold");
    ok(offer("era", "live", "support", num, NULL) == 0, "a call of the number is live");
    json_t *x = doc(sb_records_export(eng, "era", num, SB_EXPORT_JSON, res));
    is_int(x ? jint(x, "live") : -1, 1,
           "an access request now counts the call in progress (in no record yet)");
    json_decref(x);
    x = doc(sb_records_export(eng, "era", num, SB_EXPORT_CSV, res));
    is_int(x ? jint(x, "live") : -1, 1, "... in CSV too");
    json_decref(x);
    x = doc(sb_records_export(eng, "era", "+442079469876", SB_EXPORT_JSON, res));
    is_int(x ? jint(x, "live") : -1, 0, "... and another number's none");
    json_decref(x);
    char agent[64];
    snprintf(agent, sizeof agent, "%s", rang());
    now_ms += 5000;
    json_t *d = doc(sb_erase(eng, "era", num, res));
    is_int(erase_count(d, "deleted"), 3, "the erasure deletes e1, e2 (other queue), e3 (called)");
    is_int(erase_count(d, "kept"), 1, "and keeps e4");
    is_int(erase_count(d, "held"), 1, "because of its hold");
    is_int(erase_count(d, "live"), 1, "and counts the call in progress, erased when it ends");
    json_decref(d);
    ok(!exists("era", "e1") && !exists("era", "e2") && !exists("era", "e3") &&
           exists("era", "e4") && exists("era", "e5"),
       "e1, e2, e3 gone; e4 (held) and e5 (another number) stay");
    is_int(exported("erb", num), 1, "the other account's record of the number is untouched");
    int left = review_entries_of("e2");
    is_int(left, 0, "nothing of e2 is left in the review index");
    is_int(review_entries_of("e1") + review_entries_of("e3"), 1,
           "nor of e1 and e3 (the one left is the other account's e1)");
    ok(review_entries_of("e4") == 1 && review_entries_of("e5") == 1,
       "e4 (held) and e5 keep their one entry each");
    ok(finish("era", "live", agent) == 0, "the live call ends after the request");
    ok(!exists("era", "live"),
       "its record goes through the request too (the call was live when it came)");
    is_int(review_entries_of("live"), 0, "and the review entry its write made goes with it");
    is_int(exported("era", num), 1, "an access request finds only the held record");
    ok(call("era", "later", "support", num, 1) == 0, "a call offered after the request");
    ok(exists("era", "later"), "is not covered by it");
    ok(sb_hold_release(eng, "era", "h4", res) == 0, "the hold released");
    json_decref(sweep());
    ok(!exists("era", "e4"), "the next sweep runs the request again: e4 goes");
    is_int(review_entries_of("e4"), 0, "its review entry with it");
    ok(exists("era", "later"), "the later call stays");
}

/* --- the free pages an erasure leaves, and a reader of an older snapshot ---- */

typedef struct snap_reader {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stage; /* 1: snapshot held and summed; 2: sum it again; 3: done */
    unsigned long long sum1, sum2;
    int rc;
} snap_reader;

/* Every key and value of the records and their pseudonym index, summed. */
static unsigned long long snapshot_sum(MDB_txn *txn, int *rc)
{
    static const int tables[] = {DB_RECORDS, DB_RIDX, DB_RIDXT};
    unsigned long long sum = 0;
    for (int t = 0; t < 3; t++) {
        st_iter it;
        for (*rc = st_iter_open(&it, txn, eng, tables[t], "", 0); *rc == 0;
             *rc = st_iter_next(&it)) {
            for (size_t i = 0; i < it.klen; i++)
                sum = sum * 31 + ((const unsigned char *)it.key)[i];
            for (size_t i = 0; i < it.v.mv_size; i++)
                sum = sum * 31 + ((const unsigned char *)it.v.mv_data)[i];
        }
        st_iter_close(&it);
        if (*rc != MDB_NOTFOUND) return sum;
    }
    *rc = 0;
    return sum;
}

static void snap_stage(snap_reader *s, int stage)
{
    pthread_mutex_lock(&s->mu);
    s->stage = stage;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void snap_wait(snap_reader *s, int stage)
{
    pthread_mutex_lock(&s->mu);
    while (s->stage < stage)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

static void *hold_snapshot(void *arg)
{
    snap_reader *s = arg;
    MDB_txn *txn;
    if ((s->rc = eng_read_begin(eng, &txn)) == 0) {
        s->sum1 = snapshot_sum(txn, &s->rc);
        snap_stage(s, 1);
        snap_wait(s, 2);
        s->sum2 = snapshot_sum(txn, &s->rc);
        eng_read_end(eng, txn);
    }
    snap_stage(s, 3);
    return NULL;
}

static void test_erasure_clears_free_pages(void)
{
    const char *num = "+442079465555";
    ok(account("erc", "retention/keep-90-days-then-delete") == 0, "an account that keeps records");
    int errors = 0;
    for (int i = 0; i < 6; i++) {
        char id[16];
        snprintf(id, sizeof id, "c%d", i);
        errors += call("erc", id, i % 2 ? "sales" : "support", num, i % 3 != 0);
    }
    is_int(errors, 0, "six calls of the number");
    uint8_t ps[16];
    ok(pseudonym_of("erc", num, ps) == 0, "the number's pseudonym, from the key files");

    /* Another thread reads a snapshot from before the erasure: the pages it
    ** reads are free once the erasure commits, and must stay as they are. */
    snap_reader s = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    pthread_t th;
    pthread_create(&th, NULL, hold_snapshot, &s);
    snap_wait(&s, 1);
    json_t *d = doc(sb_erase(eng, "erc", num, res));
    is_int(erase_count(d, "deleted"), 6, "the erasure deletes the six records");
    json_decref(d);
    size_t npages = 0;
    unsigned char *freed = free_pages(&npages);
    ok(freed && mdb_count_pages(freed, npages, ps, 16) > 0,
       "with the older snapshot open, its pages (free now) keep the pseudonym");
    free(freed);
    snap_stage(&s, 2);
    snap_wait(&s, 3);
    pthread_join(th, NULL);
    ok(s.rc == 0 && s.sum1 == s.sum2, "and the snapshot reads as it did before the erasure");

    /* Closed: the next sweep's end clears them. */
    json_decref(sweep());
    freed = free_pages(&npages);
    is_int(freed ? mdb_count_pages(freed, npages, ps, 16) : -1, 0,
           "the reader gone, the next sweep clears them: no page freed before its last "
           "commit holds the pseudonym");
    free(freed);
    d = doc(sb_erase(eng, "erc", num, res));
    is_int(erase_count(d, "deleted"), 0, "an erasure with nothing to remove");
    json_decref(d);
}

/* --- records written before version 3 ----------------------------------------------- */

static const char *keep_10 = "local P = {}\n"
                             "function P.retain(record, ctx)\n"
                             "  return { keep = true, review_in_days = 10 }\n"
                             "end\n"
                             "return P\n";

/* The only record of call_id in account acct, copied into raw and decoded
** into r (pointing into raw); its key into rk. 0, or -1. */
static int record_of(uint32_t acct, const char *call_id, uint8_t *raw, size_t cap, rec_data *r,
                     uint8_t *rk, size_t *rkl)
{
    MDB_txn *txn;
    if (eng_read_begin(eng, &txn)) return -1;
    st_iter it;
    uint8_t p[4];
    int n = 0, rc;
    size_t l = strlen(call_id);
    for (rc = st_iter_open(&it, txn, eng, DB_RECORDS, p, key_acct(p, acct)); rc == 0;
         rc = st_iter_next(&it))
        if (it.klen == 12 + l && !memcmp(it.key + 12, call_id, l) && it.v.mv_size <= cap) {
            memcpy(raw, it.v.mv_data, it.v.mv_size);
            memcpy(rk, it.key, it.klen);
            *rkl = it.klen;
            n += rec_decode(raw, it.v.mv_size, r) == 0;
        }
    st_iter_close(&it);
    eng_read_end(eng, txn);
    return n == 1 ? 0 : -1;
}

/* The due of the only review entry of call_id, or -1. */
static int64_t review_due_of(const char *call_id)
{
    MDB_txn *txn;
    if (eng_read_begin(eng, &txn)) return -1;
    st_iter it;
    int rc;
    int64_t due = -1;
    size_t l = strlen(call_id);
    for (rc = st_iter_open(&it, txn, eng, DB_REVIEW, "", 0); rc == 0; rc = st_iter_next(&it))
        if (it.klen == 8 + 12 + l && !memcmp(it.key + 20, call_id, l))
            due = due == -1 ? (int64_t)be64(it.key) : -2;
    st_iter_close(&it);
    eng_read_end(eng, txn);
    return due;
}

/* Rewrite the record of call_id (account acct, key id account) as version
** 2 stored it: numbers sealed with account id NUL call id, no review due. */
static int make_v2(uint32_t acct, const char *account, const char *call_id)
{
    uint8_t raw[2048], rk[REC_KEY_MAX], key[32], sealed[512 + CR_SEAL_OVERHEAD];
    size_t rkl;
    rec_data r;
    char caller[SB_E164_MAX + 1], called[SB_E164_MAX + 1];
    json_t *pa = NULL;
    if (record_of(acct, call_id, raw, sizeof raw, &r, rk, &rkl) || data_key_of(account, key) ||
        rec_open(key, account, &r, caller, called, &pa))
        return -1;
    char *ps = pa ? json_dumps(pa, JSON_COMPACT) : NULL;
    json_decref(pa);
    r.pii_len = seal_v2(key, account, call_id, caller, called, ps ? ps : "", sealed);
    r.pii = sealed;
    free(ps);
    cr_wipe(key, sizeof key);
    return r.pii_len ? put_v2(rk, rkl, &r) : -1;
}

/* Records stored by version 2 (no review due in them, numbers sealed
** without the offered time): read, swept and erased after the upgrade. */
static void test_version2_records(void)
{
    const char *num = "+442079462020";
    ok(with_policy("upg", "ret-10", keep_10) == 0,
       "an account reviewing its records every 10 days");
    ok(call("upg", "u1", "support", num, 1) == 0 && call("upg", "u2", "sales", num, 0) == 0,
       "two calls of the number");
    MDB_txn *txn;
    acct_rec a = {0};
    if (!eng_read_begin(eng, &txn)) {
        st_account_by_id(txn, eng, "upg", &a);
        eng_read_end(eng, txn);
    }
    uint8_t raw[2048], rk[REC_KEY_MAX];
    size_t rkl;
    rec_data r;
    int64_t due = review_due_of("u2");
    ok(due > 0 && record_of(a.num, "u2", raw, sizeof raw, &r, rk, &rkl) == 0 &&
           r.version == REC_VERSION && r.review_due == due,
       "a record carries the due of its review entry");
    ok(make_v2(a.num, "upg", "u1") == 0 &&
           record_of(a.num, "u1", raw, sizeof raw, &r, rk, &rkl) == 0 && r.version == 2 &&
           r.review_due < 0,
       "u1 rewritten as version 2 stored it (its review entry stays as it was)");
    ok(record_of(a.num, "u2", raw, sizeof raw, &r, rk, &rkl) == 0 && put_as(rk, rkl, &r, 3) == 0 &&
           record_of(a.num, "u2", raw, sizeof raw, &r, rk, &rkl) == 0 && r.version == 3 &&
           r.reasonlen == 0 && r.review_due == due,
       "u2 rewritten as version 3 stored it (no reason at its end)");
    is_int(exported("upg", num), 2,
           "an access request finds both, u1 opening as version 2 sealed it");

    now_ms += 11 * DAY;
    is_int(swept("kept", NULL), 2, "day 11: the sweep keeps both for another 10 days");
    due = review_due_of("u1");
    ok(due > now_ms && record_of(a.num, "u1", raw, sizeof raw, &r, rk, &rkl) == 0 &&
           r.version == REC_VERSION && r.review_due == due,
       "u1 is written in the current version with the due of its one new entry");
    ok(record_of(a.num, "u2", raw, sizeof raw, &r, rk, &rkl) == 0 && r.version == 3 &&
           r.review_due == review_due_of("u2"),
       "u2 stays version 3, its due patched in place");
    is_int(exported("upg", num), 2, "its numbers still open");

    const char *pol = "{\"id\":\"upg\",\"retention\":\"retention/keep-90-days-then-delete\"}";
    ok(sb_account_put(eng, pol, strlen(pol), res) == 0, "the retention policy changed");
    is_int(swept("reviewed", NULL), 2, "the sweep after it reviews both records again");
    ok(review_entries_of("u1") == 1 && review_entries_of("u2") == 1,
       "each keeps one review entry: the older epoch's went with the rescan");

    json_t *d = doc(sb_erase(eng, "upg", num, res));
    is_int(d ? jint(d, "deleted") : -1, 2, "an erasure request deletes both");
    json_decref(d);
    is_int(review_entries_of("u1") + review_entries_of("u2"), 0,
           "and their review entries, in the same transaction");
}

/* The review index as it stands for account acct's records: entries whose
** record is of version 2 (no due), of version 3 with a due other than the
** entry's, or gone (the entry left behind). -1 in v2 when it cannot be read. */
static void index_check(uint32_t acct, int *v2, int *wrong, int *orphans)
{
    MDB_txn *txn;
    *v2 = *wrong = *orphans = 0;
    if (eng_read_begin(eng, &txn)) {
        *v2 = -1;
        return;
    }
    st_iter it;
    int rc;
    for (rc = st_iter_open(&it, txn, eng, DB_REVIEW, "", 0); rc == 0; rc = st_iter_next(&it)) {
        if (it.klen < 8 + 13 || be32(it.key + 8) != acct) continue;
        MDB_val v;
        rec_data r;
        if (st_get(txn, eng, DB_RECORDS, it.key + 8, it.klen - 8, &v))
            (*orphans)++;
        else if (rec_decode(v.mv_data, v.mv_size, &r))
            (*wrong)++;
        else if (r.version < REC_VERSION)
            (*v2)++;
        else if (r.review_due != (int64_t)be64(it.key))
            (*wrong)++;
    }
    st_iter_close(&it);
    eng_read_end(eng, txn);
}

/* Whether the walk of the review index for records of version 2 is queued
** (its job: 'U' then account 0). */
static int walk_queued(void)
{
    MDB_txn *txn;
    MDB_val v;
    if (eng_read_begin(eng, &txn)) return -1;
    int rc = st_get(txn, eng, DB_JOBS, "U\0\0\0\0", 5, &v);
    eng_read_end(eng, txn);
    return rc == 0;
}

static void die_at_once(void *arg, uint64_t done, uint64_t total)
{
    (void)arg, (void)done, (void)total;
    raise(SIGKILL);
}

/* A data directory of an earlier version, its records stored as version 2:
** opened by this one, it gets a walk of the review index that writes each
** such record's due into it, run by sweeps in short transactions (one
** killed half way is carried on by the next), so that a record erased
** later takes its review entry with it. */
static void test_version2_walk(void)
{
    const char *num = "+442079463030", *early = "+442079463031";
    ok(with_policy("upw", "ret-10", keep_10) == 0,
       "an account reviewing its records every 10 days");
    int n = 1500, errors = 0;
    for (int i = 0; i < n; i++) {
        char id[16], caller[32];
        snprintf(id, sizeof id, "w%d", i);
        snprintf(caller, sizeof caller, "+44207946%04d", i);
        errors += call("upw", id, i % 2 ? "support" : "sales",
                       i < 3    ? num
                       : i == 3 ? early
                                : caller,
                       i % 3 != 0) != 0;
    }
    is_int(errors, 0, "%d calls", n);
    MDB_txn *txn;
    acct_rec a = {0};
    if (!eng_read_begin(eng, &txn)) {
        st_account_by_id(txn, eng, "upw", &a);
        eng_read_end(eng, txn);
    }
    for (int i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "w%d", i);
        errors += make_v2(a.num, "upw", id) != 0;
    }
    int v2, wrong, orphans;
    index_check(a.num, &v2, &wrong, &orphans);
    ok(errors == 0 && v2 == n && wrong + orphans == 0, "all %d stored as version 2 (%d)", n, v2);
    json_t *d = doc(sb_erase(eng, "upw", early, res));
    is_int(d ? jint(d, "deleted") : -1, 1, "a record erased before the upgrade's walk");
    json_decref(d);
    index_check(a.num, &v2, &wrong, &orphans);
    is_int(orphans, 1, "leaves its review entry for now");

    /* The directory as the earlier version left it: format 3. */
    uint8_t three[8];
    put_be64(three, 3);
    ok(store_put(DB_META, (const uint8_t *)"schema", 6, three, 8) == 0,
       "the directory marked as an earlier version's");
    sb_close(eng);
    pid_t pid = fork();
    if (pid == 0) {
        eng = open_engine();
        if (eng) sb_sweep(eng, 0, die_at_once, NULL, res);
        _exit(0); /* not reached when killed */
    }
    int st = 0;
    waitpid(pid, &st, 0);
    ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
       "the upgraded directory's first sweep killed after its first transaction");
    eng = open_engine();
    is_int(walk_queued(), 1, "the engine opening it queued the walk");
    index_check(a.num, &v2, &wrong, &orphans);
    ok(v2 > 0 && v2 < n - 1 && wrong == 0,
       "that transaction gave some records their due, not all (%d of %d left)", v2, n - 1);
    json_t *s = sweep();
    is_int(s ? jint(s, "reviewed") : -1, 0, "the next sweep reviews nothing (nothing is due)");
    json_decref(s);
    index_check(a.num, &v2, &wrong, &orphans);
    is_int(v2, 0, "but carries the walk on to the end: no record is left without its due");
    is_int(wrong, 0, "each carries the due of its entry");
    is_int(orphans, 0, "and the entry of the record erased before the walk is gone");
    is_int(walk_queued(), 0, "the walk is done");
    sb_close(eng);
    eng = open_engine();
    is_int(walk_queued(), 0, "and not queued again when the engine opens the directory again");
    is_int(exported("upw", num), 3, "the records still open (sealed as version 2 sealed them)");
    d = doc(sb_erase(eng, "upw", num, res));
    is_int(d ? jint(d, "deleted") : -1, 3, "an erasure request deletes the number's three");
    json_decref(d);
    is_int(review_entries_of("w0") + review_entries_of("w1") + review_entries_of("w2"), 0,
           "and their review entries with them");
    index_check(a.num, &v2, &wrong, &orphans);
    is_int(v2 + wrong + orphans, 0, "nothing is left behind in the index");
    now_ms += 11 * DAY;
    is_int(swept("kept", NULL), n - 4, "day 11: the sweep reviews the others once each");
    index_check(a.num, &v2, &wrong, &orphans);
    is_int(v2 + wrong + orphans, 0, "and the index still matches the records");
    ok(sb_account_delete(eng, "upw", res) == 0, "the account deleted");
    json_decref(sweep());
}

/* A call live when the request came, whose record a hold then keeps: the
** request waits for the hold's release like the others. */
static void test_erasure_live_held(void)
{
    const char *num = "+442079461777";
    ok(account("erl", NULL) == 0, "an account without a retention policy (erasure deletes)");
    ok(offer("erl", "l1", "support", num, NULL) == 0, "a call of the number is live");
    char agent[64];
    snprintf(agent, sizeof agent, "%s", rang());
    ok(offer("erl", "l2", "sales", "+442079460001", num) == 0, "and one to it, waiting");
    now_ms += 2000;
    json_t *d = doc(sb_erase(eng, "erl", num, res));
    is_int(d ? jint(d, "deleted") + jint(d, "kept") : -1, 0, "the erasure finds no record yet");
    json_decref(d);
    ok(hold("erl", "{\"id\":\"hn\",\"number\":\"+442079461777\",\"reason\":\"case 9\"}") == 0,
       "a hold on the number");
    ok(finish("erl", "l1", agent) == 0 && finish("erl", "l2", "") == 0, "both calls end");
    ok(exists("erl", "l1") && exists("erl", "l2"), "the hold keeps their records from the request");
    is_int(swept("deleted", NULL), 0, "a sweep under the hold deletes nothing");
    ok(sb_hold_release(eng, "erl", "hn", res) == 0, "the hold released");
    is_int(swept("deleted", NULL), 2, "the next sweep runs the request on both");
    ok(!exists("erl", "l1") && !exists("erl", "l2"), "they are gone");
    ok(call("erl", "l3", "support", num, 1) == 0 && exists("erl", "l3"),
       "a later call of the number is not the request's");
    is_int(swept("deleted", NULL), 0, "and no sweep takes it");
}

/* --- holds ---------------------------------------------------------------------- */

static const char *delete_at_10 =
    "local P = {}\n"
    "function P.retain(record, ctx)\n"
    "  if record.age_days < 10 then return { review_in_days = 10 - record.age_days } end\n"
    "  return { delete = true, reason = 'ten days' }\n"
    "end\n"
    "return P\n";

static void test_overlapping_holds(void)
{
    const char *num = "+442079462468";
    ok(with_policy("hov", "ret10", delete_at_10) == 0, "an account deleting records at 10 days");
    int64_t t0 = now_ms;
    call("hov", "o1", "support", num, 1);
    call("hov", "o2", "sales", "+442079460002", 1);
    int64_t t1 = now_ms;
    call("hov", "o3", "support", num, 1);
    char json[256];
    snprintf(json, sizeof json,
             "{\"id\":\"range\",\"from_ms\":%lld,\"to_ms\":%lld,\"reason\":\"audit\"}",
             (long long)t0, (long long)t1);
    ok(hold("hov", json) == 0, "a range hold over o1 and o2");
    ok(hold("hov", "{\"id\":\"num\",\"number\":\"+442079462468\",\"reason\":\"case\"}") == 0,
       "a number hold over o1 and o3");
    ok(hold("hov", "{\"id\":\"c2\",\"call\":\"o2\",\"reason\":\"dispute\"}") == 0,
       "a call hold over o2");
    const char *again = "{\"id\":\"c2\",\"call\":\"o3\",\"reason\":\"again\"}";
    ok(sb_hold_place(eng, "hov", again, strlen(again), res) == SB_EEXIST,
       "a taken hold id is refused");
    json_t *l = doc(sb_hold_list(eng, "hov", res));
    is_int(l ? (long long)json_array_size(json_object_get(l, "holds")) : -1, 3, "3 holds listed");
    ok(l && !text_has_number(sb_result_json(res, NULL), num), "the list shows no number");
    json_decref(l);
    now_ms += 11 * DAY;
    is_int(swept("deleted", NULL), 0, "day 11: every record held by one hold or more");
    ok(sb_hold_release(eng, "hov", "range", res) == 0, "the range hold released");
    now_ms += DAY + 1000;
    is_int(swept("deleted", NULL), 0, "o1 (number hold) and o2 (call hold) still held");
    ok(sb_hold_release(eng, "hov", "num", res) == 0, "the number hold released");
    now_ms += DAY + 1000;
    is_int(swept("deleted", NULL), 2, "o1 and o3 go");
    ok(exists("hov", "o2") && !exists("hov", "o1") && !exists("hov", "o3"), "o2 stays");
    ok(sb_hold_release(eng, "hov", "c2", res) == 0, "the last hold released");
    now_ms += DAY + 1000;
    is_int(swept("deleted", NULL), 1, "o2 goes");
    ok(sb_hold_release(eng, "hov", "c2", res) == SB_ENOTFOUND, "a released hold is gone");
}

/* A hold placed while a sweep runs (between two of its transactions)
** protects what the sweep has not reached yet. */
static int mid_placed;
static void place_mid(void *arg, uint64_t done, uint64_t total)
{
    if (mid_placed++) return;
    sb_result *r = sb_result_new();
    const char *h = "{\"id\":\"mid\",\"number\":\"+442079469999\",\"reason\":\"late\"}";
    if (sb_hold_place(eng, "hmid", h, strlen(h), r)) diag("hold: %s", sb_result_message(r));
    sb_result_free(r);
}

static void test_hold_during_sweep(void)
{
    ok(with_policy("hmid", "ret10", delete_at_10) == 0, "an account deleting records at 10 days");
    int errors = 0;
    for (int i = 0; i < 1500; i++) {
        char id[16], num[32];
        snprintf(id, sizeof id, "m%d", i);
        snprintf(num, sizeof num, "+44207946%04d", i == 1499 ? 9999 : i);
        errors += call("hmid", id, "support", num, 0);
    }
    is_int(errors, 0, "1500 calls, the last of +442079469999");
    now_ms += 11 * DAY;
    json_t *d = doc(sb_sweep(eng, 0, place_mid, NULL, res));
    ok(mid_placed > 1 && jint(d, "transactions") > 1, "a hold placed after the sweep's first "
                                                      "transaction");
    is_int(jint(d, "deleted"), 1499, "the sweep deletes all the others");
    is_int(jint(d, "overridden"), 1, "the held one is kept");
    json_decref(d);
    ok(exists("hmid", "m1499"), "m1499 is there");
    ok(sb_hold_release(eng, "hmid", "mid", res) == 0, "hold released");
}

/* --- sweeps cut by their budget ---------------------------------------------------- */

static void test_budget_resume(void)
{
    ok(account("bres", "retention/keep-90-days-then-delete") == 0, "an account keeping 90 days");
    int n = 3000, errors = 0;
    for (int i = 0; i < n; i++) {
        char id[16], num[32];
        snprintf(id, sizeof id, "b%d", i);
        snprintf(num, sizeof num, "+44207947%04d", i);
        errors += call("bres", id, i % 2 ? "support" : "sales", num, 0);
    }
    is_int(errors, 0, "%d calls", n);
    now_ms += 91 * DAY;
    long long reviewed = 0;
    int runs = 0, resumed = 0, done = 0;
    while (!done && runs < 10000) {
        json_t *d = doc(sb_sweep(eng, 1, NULL, NULL, res));
        if (!d) break;
        runs++;
        resumed += json_is_true(json_object_get(d, "resumed"));
        done = json_is_true(json_object_get(d, "done"));
        reviewed = jint(d, "reviewed");
        json_decref(d);
    }
    ok(runs > 1 && resumed == runs - 1, "%d sweeps of 1 ms, each after the first carrying on",
       runs);
    is_int(reviewed, n, "the run's totals: %d reviewed", n);
    json_t *a = doc(sb_audit_list(eng, "bres", 0, 100000, res));
    json_t *ents = json_object_get(a, "entries");
    char *seen = calloc((size_t)n, 1);
    int dup = 0, bad = 0, order = 0;
    long long last_t = 0;
    size_t i;
    json_t *e;
    json_array_foreach(ents, i, e)
    {
        if (jint(e, "seq") != (long long)i + 1) order++;
        if (jint(e, "t_ms") < last_t) order++;
        last_t = jint(e, "t_ms");
        const char *id = jstr(e, "call");
        int k = id[0] == 'b' ? atoi(id + 1) : -1;
        if (k < 0 || k >= n || strcmp(jstr(e, "action"), "delete")) {
            bad++;
            continue;
        }
        dup += seen[k]++ > 0;
    }
    int missing = 0;
    for (int k = 0; k < n; k++)
        missing += !seen[k];
    free(seen);
    is_int(missing + dup + bad, 0, "one deletion audited per record: none missing, twice or odd");
    is_int(order, 0, "audit entries numbered 1, 2, 3... in time order");
    json_decref(a);
    is_int(doc_len(sb_records_list(eng, "bres", NULL, 0, res), "records"), 0, "no record is left");
}

/* --- odd review dates ------------------------------------------------------------ */

static const char *odd_policy =
    "local P = {}\n"
    "function P.retain(record, ctx)\n"
    "  local k = record.attrs.kind\n"
    "  if k == 'past' then return { keep = true, keep_until = ctx.now / 1000 - 86400 } end\n"
    "  if k == 'zero' then return { keep = true, review_in_days = 0 } end\n"
    "  if k == 'neg' then return { keep = true, review_in_days = -3 } end\n"
    "  if k == 'huge' then return { keep = true, review_in_days = 1e308 } end\n"
    "  if k == 'nan' then return { keep = true, review_in_days = 0/0 } end\n"
    "  if k == 'both' then return { anonymize = true, delete = true } end\n"
    "  if k == 'now' then return { keep = true, review_in_days = 1e-12, reason = 'now' } end\n"
    "  return { keep = true }\n"
    "end\n"
    "return P\n";

static void test_odd_review_dates(void)
{
    ok(with_policy("odd", "ret-odd", odd_policy) == 0, "a retain hook returning odd dates");
    static const char *const kinds[] = {"past", "zero", "neg", "huge", "nan", "both"};
    for (int i = 0; i < 6; i++) {
        char json[256], id[16];
        snprintf(id, sizeof id, "%s", kinds[i]);
        snprintf(json, sizeof json,
                 "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"support\","
                 "\"caller\":\"+442079460%03d\",\"attrs\":{\"kind\":\"%s\"}}",
                 id, i, kinds[i]);
        ev("odd", json);
        finish("odd", id, "");
    }
    int kept = 0;
    for (int i = 0; i < 6; i++)
        kept += exists("odd", kinds[i]) && !anonymized("odd", kinds[i]);
    is_int(kept, 6, "each such decision fails and the record is kept whole");
    json_t *a = doc(sb_audit_list(eng, "odd", 0, 0, res));
    int errors = 0;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(a, "entries"), i, e) errors +=
        !strcmp(jstr(e, "action"), "error");
    json_decref(a);
    is_int(errors, 6, "each failure audited");
    is_int(swept("reviewed", NULL), 0, "nothing is due at once");
    now_ms += DAY + 1000;
    is_int(swept("failed", NULL), 6, "a day later each is tried again");

    /* A review date of (about) now: reviewed once per sweep, not again and
    ** again within it (another account: the failures above quarantined the
    ** policy of this one). */
    ok(with_policy("odd2", "ret-odd", odd_policy) == 0, "the same hook in another account");
    int n = 1500;
    for (int k = 0; k < n; k++) {
        char json[256], id[16];
        snprintf(id, sizeof id, "now%d", k);
        snprintf(json, sizeof json,
                 "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"support\","
                 "\"caller\":\"+442079461%03d\",\"attrs\":{\"kind\":\"now\"}}",
                 id, k % 1000);
        ev("odd2", json);
        finish("odd2", id, "");
    }
    now_ms += 1000;
    json_t *d = doc(sb_sweep(eng, 3000, NULL, NULL, res));
    is_int(d ? jint(d, "reviewed") : -1, n, "a sweep reviews the %d records due now once each", n);
    ok(d && json_is_true(json_object_get(d, "done")), "and is done");
    json_decref(d);
}

/* --- account deletion --------------------------------------------------------------- */

static void test_account_deletion(void)
{
    const char *num = "+442079463579";
    ok(account("gone", "retention/keep-90-days-then-delete") == 0 &&
           account("stay", "retention/keep-90-days-then-delete") == 0,
       "two accounts");
    call("gone", "g1", "support", num, 1);
    call("stay", "s1", "support", num, 1);
    uint8_t ps[16];
    ok(pseudonym_of("gone", num, ps) == 0, "gone's data key opens with the master key");
    ok(sb_erase(eng, "gone", "+442079460000", res) == 0, "an erasure (leaves an audit entry)");
    ok(sb_account_delete(eng, "gone", res) == 0, "account gone deleted");
    ok(pseudonym_of("gone", num, ps) != 0, "its data key is destroyed: no slot opens any more");
    is_int(exported("stay", num), 1, "the other account's records still open");
    ok(sb_records_export(eng, "gone", num, SB_EXPORT_JSON, res) == SB_ENOTFOUND &&
           sb_erase(eng, "gone", num, res) == SB_ENOTFOUND &&
           sb_audit_list(eng, "gone", 0, 0, res) == SB_ENOTFOUND,
       "the account's records, erasure and audit are gone with it");
    json_t *d = sweep();
    ok(d && jint(d, "purged") >= 1, "the sweep purges its records");
    json_decref(d);
    ok(account("gone", NULL) == 0, "the id used again");
    is_int(exported("gone", num), 0, "the new account sees no old record");
    ok(!exists("gone", "g1"), "nor reads one by call id");
    /* Its log has one entry: the access request just made, in its name. */
    ok(audit_matching("gone", NULL, NULL, NULL, 0) == 1 &&
           audit_matching("gone", "access_request", "access request: 0 records", NULL, 0) == 1,
       "nor the old audit log: the new account's holds its own access request alone");
    is_int(doc_len(sb_aggregates(eng, "gone", NULL, 0, 0, res), "days"), 0,
           "nor the old aggregates");
}

/* --- the caller's own number in an attribute not marked personal ---------------- */

static void test_own_number_in_attrs(void)
{
    ok(account("own", "retention/anonymize-30-days-delete-2-years") == 0,
       "an account that anonymizes, with only 'name' marked personal");
    const char *o = "{\"type\":\"offer\",\"call\":\"o1\",\"queue\":\"support\","
                    "\"caller\":\"+4930555123\",\"attrs\":{\"callback\":\"030 555123\","
                    "\"ani\":4930555123,\"ref\":\"A-77\"}}";
    ok(ev("own", o) == 0 && finish("own", "o1", "") == 0,
       "a call whose attributes give its caller's number back, the national way and as a number");
    is_int(mdb_count("555123", 6), 0, "data.mdb never held those digits in the clear");
    json_t *d = doc(sb_erase(eng, "own", "+4930555123", res));
    ok(d && erase_count(d, "anonymized") + erase_count(d, "deleted") == 1,
       "an erasure request for the number reaches the record");
    json_decref(d);
    json_t *c = exists("own", "o1") ? doc(sb_call_get(eng, "own", "o1", res)) : NULL;
    char *text = c ? json_dumps(c, JSON_COMPACT) : NULL;
    ok(!text || (!strstr(text, "555123") && strstr(text, "A-77")),
       "what is left of it holds the other attributes, not those two: %s", text ? text : "-");
    free(text);
    json_decref(c);
}

/* The caller's number deeper in an attribute: in an object or an array, as
** an attribute's name, as a number that is not whole. Each is sealed as a
** number in a string at the top is, and goes with an erasure request. */
static void test_own_number_nested_attrs(void)
{
    ok(account("deep", "retention/anonymize-30-days-delete-2-years") == 0,
       "an account that anonymizes, with only 'name' marked personal");
    const char *o = "{\"type\":\"offer\",\"call\":\"n1\",\"queue\":\"support\","
                    "\"caller\":\"+4930555124\",\"attrs\":{\"contact\":{\"phone\":\"030 555124\"},"
                    "\"tried\":[\"+49 30 555124\"],\"+4930555124\":\"vip\",\"ani\":4930555124.0,"
                    "\"ref\":\"A-78\",\"tags\":[\"gold\"]}}";
    ok(ev("deep", o) == 0 && finish("deep", "n1", "") == 0,
       "a call whose attributes give its caller's number back inside an object, an array, "
       "a name and a number with a fraction");
    is_int(mdb_count("555124", 6), 0, "data.mdb never held those digits in the clear");
    json_t *c = doc(sb_call_get(eng, "deep", "n1", res));
    char *text = c ? json_dumps(c, JSON_COMPACT) : NULL;
    ok(text && !strstr(text, "555124") && strstr(text, "A-78") && strstr(text, "gold"),
       "the record shows the other attributes, not those four: %s", text ? text : "-");
    free(text);
    json_decref(c);
    json_t *d = doc(sb_erase(eng, "deep", "+4930555124", res));
    ok(d && erase_count(d, "anonymized") == 1, "an erasure request anonymizes the record");
    json_decref(d);
    c = doc(sb_call_get(eng, "deep", "n1", res));
    text = c ? json_dumps(c, JSON_COMPACT) : NULL;
    ok(text && !strstr(text, "555124") && strstr(text, "A-78"),
       "what is left of it holds none of them: %s", text ? text : "-");
    free(text);
    json_decref(c);
}

/* A call id that holds the call's own number would outlive an erasure
** request: the audit log names the call, an anonymized record keeps its id.
** Such an offer is refused, changing nothing. */
static void test_own_number_in_call_id(void)
{
    ok(account("cid", "retention/anonymize-30-days-delete-2-years") == 0,
       "an account that anonymizes");
    int rc = offer("cid", "in-+4930555125", "support", "+4930555125", NULL);
    const char *m = sb_result_message(res), *f = sb_result_field(res);
    ok(rc == SB_EINVAL && strstr(m, "caller number") && f && !strcmp(f, "call"),
       "an offer whose call id holds its caller number is refused: %s", m);
    rc = offer("cid", "to-030-555126", "support", "+4930555127", "+4930555126");
    m = sb_result_message(res);
    ok(rc == SB_EINVAL && strstr(m, "called number"),
       "and one whose call id holds its called number, written the national way: %s", m);
    is_int(doc_len(sb_call_list(eng, "cid", NULL, res), "calls"), 0, "neither call was taken");
    is_int(mdb_count("555125", 6), 0, "data.mdb never held the number's digits");
    ok(call("cid", "1796075656.42", "support", "+4930555125", 1) == 0,
       "a call id with digits of its own (an Asterisk uniqueid) is taken");
    json_t *d = doc(sb_erase(eng, "cid", "+4930555125", res));
    ok(d && erase_count(d, "anonymized") == 1, "and its record anonymized by an erasure request");
    json_decref(d);
}

/* --- the audit log holds no number, whatever the reasons say ------------------ */

static const char *quoting_erase =
    "local P = {}\n"
    "function P.retain(record, ctx) return { keep = true } end\n"
    "function P.erase(record, request, ctx)\n"
    "  return { delete = true, reason = 'alt ' .. tostring(record.attrs.alt) }\n"
    "end\n"
    "return P\n";

static void test_erasure_answer_reasons(void)
{
    ok(with_policy("quote", "ret-quote", quoting_erase) == 0,
       "an erase hook whose reason quotes an attribute");
    const char *o = "{\"type\":\"offer\",\"call\":\"q1\",\"queue\":\"support\","
                    "\"caller\":\"+442079460444\",\"attrs\":{\"alt\":\"+44 20 7946 0777\"}}";
    ok(ev("quote", o) == 0 && finish("quote", "q1", "") == 0, "a call with another number in it");
    json_t *d = doc(sb_erase(eng, "quote", "+442079460444", res));
    const char *text = sb_result_json(res, NULL);
    ok(d && erase_count(d, "deleted") == 1 && !strstr(text, "7946 0777") &&
           strstr(text, "delete: alt [number]"),
       "the erasure's answer counts the reason with the number left out: %s", text);
    json_decref(d);
    /* The request itself is on record, with what it did, also when it
    ** finds nothing; without the number. */
    d = doc(sb_erase(eng, "quote", "+442079460999", res));
    ok(d && erase_count(d, "deleted") == 0, "an erasure request for a number with no records");
    json_decref(d);
    json_t *a = doc(sb_audit_list(eng, "quote", 0, 0, res)), *x;
    size_t i;
    int reqs = 0;
    const char *first = "", *last = "";
    json_array_foreach(json_object_get(a, "entries"), i, x)
    {
        const char *act = json_string_value(json_object_get(x, "action"));
        if (!act || strcmp(act, "erasure_request")) continue;
        reqs++;
        const char *why = json_string_value(json_object_get(x, "reason"));
        if (reqs == 1) first = why ? why : "";
        last = why ? why : "";
        const char *src = json_string_value(json_object_get(x, "source"));
        ok(src && !strcmp(src, "erasure") && !json_object_get(x, "call"),
           "request %d: source erasure, no call", reqs);
    }
    is_int(reqs, 2, "the audit log has an entry for each of the two requests");
    is_str(first,
           "erasure request: 1 deleted, 0 anonymized, 0 kept (0 held, 0 failed); 0 live calls",
           "the first says what it did");
    is_str(last,
           "erasure request: 0 deleted, 0 anonymized, 0 kept (0 held, 0 failed); 0 live calls",
           "the second, that it found nothing");
    text = sb_result_json(res, NULL);
    ok(!strstr(text, "7946"), "no number in the log");
    json_decref(a);
}

static const char *chatty_policy =
    "local P = {}\n"
    "function P.retain(record, ctx)\n"
    "  return { delete = true, reason = 'callback ' .. tostring(record.attrs.callback) }\n"
    "end\n"
    "return P\n";

static void test_audit_reasons(void)
{
    ok(with_policy("chat", "ret-chat", chatty_policy) == 0,
       "a retain hook whose reason quotes an attribute");
    const char *o = "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"support\","
                    "\"caller\":\"+442079460321\",\"attrs\":{\"callback\":\"+44 20 7946 0555\"}}";
    ok(ev("chat", o) == 0 && finish("chat", "c1", "") == 0, "a call with a callback number");
    ok(!exists("chat", "c1"), "deleted at write");
    json_t *a = doc(sb_audit_list(eng, "chat", 0, 0, res));
    const char *text = sb_result_json(res, NULL);
    ok(a && !strstr(text, "7946") && strstr(text, "callback [number]"),
       "the audit log has the reason with the number left out");
    json_decref(a);
    const char *h = "{\"id\":\"hx\",\"call\":\"c9\",\"reason\":\"caller +44 20 7946 0321\"}";
    ok(sb_hold_place(eng, "chat", h, strlen(h), res) == SB_EINVAL &&
           !strcmp(sb_result_field(res) ? sb_result_field(res) : "", "reason"),
       "a hold whose reason holds a number is refused, naming the field");
    is_int(doc_len(sb_hold_list(eng, "chat", res), "holds"), 0, "and nothing is placed");
    ok(sb_hold_place(eng, "chat", h, strlen(h), res) == SB_EINVAL &&
           !strstr(sb_result_message(res), "7946") &&
           strstr(sb_result_message(res), "caller [number]"),
       "the refusal shows what read as a number without the number: %s", sb_result_message(res));
    ok(strstr(sb_result_message(res), "9 digits or more") != NULL, "... and says the rule: %s",
       sb_result_message(res));
    /* A reason the hold list shows as written is in the audit log as written. */
    h = "{\"id\":\"hr\",\"from_ms\":1700000000000,\"to_ms\":1700000001000,"
        "\"reason\":\"order ref 12-345-678\"}";
    ok(sb_hold_place(eng, "chat", h, strlen(h), res) == 0,
       "a hold whose reason has a short case number");
    ok(sb_hold_release(eng, "chat", "hr", res) == 0, "released");
    json_t *al = doc(sb_audit_list(eng, "chat", 0, 0, res)), *x;
    size_t j;
    int as_typed = 0;
    json_array_foreach(json_object_get(al, "entries"), j, x)
    {
        const char *why = json_string_value(json_object_get(x, "reason"));
        as_typed += why && strstr(why, "order ref 12-345-678") != NULL;
    }
    is_int(as_typed, 2, "its placing and release are in the audit log with the reason as typed");
    json_decref(al);
    /* Range holds: in milliseconds, both ends. */
    struct {
        const char *json, *field, *says;
    } bad[] = {
        {"{\"from_ms\":1795900000,\"to_ms\":1796000000,\"reason\":\"r\"}", "from_ms",
         "1795900000000 if seconds were meant"},
        {"{\"from_ms\":1795900000000,\"to_ms\":1796000000,\"reason\":\"r\"}", "to_ms",
         "times here are milliseconds"},
        {"{\"from_ms\":0,\"to_ms\":0,\"reason\":\"r\"}", "to_ms",
         "\"to_ms\" 0 ends the range before it starts"},
        {"{\"from_ms\":1795900000000,\"reason\":\"r\"}", "to_ms", "needs \"to_ms\" too"},
        {"{\"to_ms\":1795900000000,\"reason\":\"r\"}", "from_ms", "needs \"from_ms\" too"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        int rc = sb_hold_place(eng, "chat", bad[k].json, strlen(bad[k].json), res);
        const char *f = sb_result_field(res);
        ok(rc == SB_EINVAL && f && !strcmp(f, bad[k].field) &&
               strstr(sb_result_message(res), bad[k].says),
           "range hold %s: refused on %s, \"...%s...\" (%s)", bad[k].json, bad[k].field,
           bad[k].says, sb_result_message(res));
    }
    is_int(doc_len(sb_hold_list(eng, "chat", res), "holds"), 0, "none of them placed");
    h = "{\"id\":\"open\",\"from_ms\":0,\"to_ms\":1795900000000,\"reason\":\"r\"}";
    ok(sb_hold_place(eng, "chat", h, strlen(h), res) == 0 &&
           sb_hold_release(eng, "chat", "open", res) == 0,
       "a range from 0 (open at its start) is placed: %s", sb_result_message(res));
    o = "{\"type\":\"offer\",\"call\":\"c2\",\"queue\":\"support\","
        "\"caller\":\"+442079460321\",\"attrs\":{\"callback\":\"020 7946 0555\"}}";
    ok(ev("chat", o) == 0 && finish("chat", "c2", "") == 0,
       "a call with a callback number written the national way");
    a = doc(sb_audit_list(eng, "chat", 0, 0, res));
    text = sb_result_json(res, NULL);
    ok(a && !strstr(text, "7946") && strstr(text, "callback [number]"),
       "the audit log has that reason with the number left out too");
    json_decref(a);
    static const char *const national[] = {"call 030 123456 back", "ring (555) 765-4321",
                                           "ring 07700 900123", "call 020 7946 0001 back"};
    int took = 0;
    for (size_t i = 0; i < sizeof national / sizeof national[0]; i++) {
        char hj[160];
        snprintf(hj, sizeof hj, "{\"id\":\"hn%zu\",\"call\":\"c9\",\"reason\":\"%s\"}", i,
                 national[i]);
        took += sb_hold_place(eng, "chat", hj, strlen(hj), res) != SB_EINVAL;
    }
    is_int(took, 0, "a reason with a number written the national way is refused too");
    is_int(doc_len(sb_hold_list(eng, "chat", res), "holds"), 0, "and nothing is placed");
    static const char *const ids[] = {"+442079460321", "442079460321", "caller-02079460321"};
    took = 0;
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char hj[160];
        snprintf(hj, sizeof hj, "{\"id\":\"%s\",\"call\":\"c9\",\"reason\":\"case 7\"}", ids[i]);
        took += sb_hold_place(eng, "chat", hj, strlen(hj), res) != SB_EINVAL ||
                strcmp(sb_result_field(res) ? sb_result_field(res) : "", "id") != 0 ||
                strstr(sb_result_message(res), "7946") != NULL;
    }
    is_int(took, 0,
           "a hold id that reads as a phone number is refused, naming the field, "
           "without the number (%s)",
           sb_result_message(res));
    is_int(doc_len(sb_hold_list(eng, "chat", res), "holds"), 0, "and nothing is placed");
    h = "{\"id\":\"hy\",\"number\":\"+442079460999\",\"reason\":\"case 2026-117, ticket 4711\"}";
    ok(sb_hold_place(eng, "chat", h, strlen(h), res) == 0, "a reason with case numbers is fine");
    ok(sb_hold_release(eng, "chat", "hy", res) == 0, "released");
}

/* An erase hook's reason with bytes that are not UTF-8: the report still
** counts the records under it (jansson drops a key that is not UTF-8). */
static void test_reason_bytes(void)
{
    static const char *src = "local P = {}\n"
                             "function P.retain(record, ctx) return { keep = true } end\n"
                             "function P.erase(record, request, ctx)\n"
                             "  return { delete = true, reason = 'bad \\255 byte' }\n"
                             "end\nreturn P\n";
    ok(with_policy("rb", "ret-bytes", src) == 0, "an erase hook whose reason is not UTF-8");
    ok(call("rb", "b1", "support", "+442079460777", 1) == 0 &&
           call("rb", "b2", "support", "+442079460777", 0) == 0,
       "two calls of a number");
    json_t *d = doc(sb_erase(eng, "rb", "+442079460777", res));
    json_t *reasons = json_object_get(d, "reasons");
    const char *k = json_object_iter_key(json_object_iter(reasons));
    ok(erase_count(d, "deleted") == 2 && json_object_size(reasons) == 1 && k &&
           strstr(k, "delete: bad ") &&
           json_integer_value(json_object_iter_value(json_object_iter(reasons))) == 2,
       "both deleted, and counted under the reason, cleaned (%s)", sb_result_json(res, NULL));
    json_decref(d);
}

/* --- free-text reasons: never a number at rest ------------------------------- */

/* A policy quoting the caller's number, or others, in the reasons of its
** decisions, by the offer's attribute "mode" (leak.lua of the audit). */
static const char *reason_route =
    "local P = {}\n"
    "function P.route(call, agents, ctx)\n"
    "  local c, m = call.caller or '', call.attrs.mode\n"
    "  local function n(a, b) return a .. b end -- the source, stored too, holds none\n"
    "  if call.queue ~= 'rq' then return { wait = 0 } end\n"
    "  if m == 'pause' then return { pause = { agent = 'pz', reason = 'cb ' .. c }, wait = 0 } "
    "end\n"
    "  if m == 'pause_called' then\n"
    "    return { pause = { agent = 'pz', reason = 'to ' .. call.called }, wait = 0 }\n"
    "  end\n"
    "  if m == 'pause_other' then\n"
    "    return { pause = { agent = 'pz', reason = n('cb +44 7911', ' 009999 or ') .. "
    "c:sub(2):reverse() "
    "},\n"
    "             wait = 0 }\n"
    "  end\n"
    "  if m == 'move' then return { move = 'rq2', reason = 'cb ' .. c } end\n"
    "  if m == 'move_other' then return { move = 'rq2', reason = n('cb 07911', ' 009998') } end\n"
    "  if m == 'reject' then return { reject = 'cb ' .. c } end\n"
    "  if m == 'reject_other' then return { reject = n('cb +4479110', '09997') } end\n"
    "  if m == 'error' then error('cb ' .. c) end\n"
    "  return { wait = 0 }\n"
    "end\n"
    "return P\n";

/* The live call's trace entries' details joined by " | ", or "-". */
static const char *trace_of(const char *acct, const char *call_id)
{
    static char out[2048];
    json_t *d = doc(sb_call_get(eng, acct, call_id, res)), *e;
    size_t i, n = 0;
    snprintf(out, sizeof out, "-");
    json_array_foreach(json_object_get(d, "trace"), i, e)
    {
        n += (size_t)snprintf(out + n, sizeof out - n, "%s%s", n ? " | " : "", jstr(e, "detail"));
        if (n >= sizeof out) break;
    }
    json_decref(d);
    return out;
}

/* The agent's stored reason (next_reason when next is set), or "". */
static const char *agent_reason(const char *acct, const char *agent, int next)
{
    static char out[256];
    json_t *d = doc(sb_agent_get(eng, acct, agent, res));
    snprintf(out, sizeof out, "%s", jstr(d, next ? "next_reason" : "reason"));
    json_decref(d);
    return out;
}

static int reason_offer(const char *id, const char *queue, const char *caller, const char *mode)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"%s\",\"caller\":\"%s\","
             "\"called\":\"+442079460999\",\"attrs\":{\"mode\":\"%s\"}}",
             id, queue, caller, mode);
    return ev("rsn", json);
}

/* The digits of a number (its '+' left out) in data.mdb: 0 when never there. */
static int mdb_digits(const char *number)
{
    return mdb_count(number + 1, strlen(number + 1));
}

static void test_reasons_at_rest(void)
{
    ok(account("rsn", NULL) == 0 &&
           sb_policy_put(eng, "rsn", "reasons", reason_route, strlen(reason_route), NULL, res) == 0,
       "an account with a policy quoting numbers in its reasons");
    const char *qs[2] = {"{\"id\":\"rq\",\"policy\":\"reasons\",\"fallback\":\"wait\"}",
                         "{\"id\":\"rq2\",\"policy\":\"reasons\",\"fallback\":\"wait\"}"};
    const char *pz = "{\"id\":\"pz\",\"devices\":{\"softphone\":\"sip:pz@pbx.example\"},"
                     "\"status\":\"available\"}";
    ok(sb_queue_put(eng, "rsn", qs[0], strlen(qs[0]), res) == 0 &&
           sb_queue_put(eng, "rsn", qs[1], strlen(qs[1]), res) == 0 &&
           sb_agent_put(eng, "rsn", pz, strlen(pz), res) == 0,
       "queues rq and rq2 (no members, fallback wait) and agent pz, available");

    /* The call's own numbers: an invalid decision, which gets the fallback. */
    ok(reason_offer("r1", "rq", "+447911001234", "pause") == 0, "a pause quoting the caller");
    const char *t = trace_of("rsn", "r1");
    ok(strstr(t, "pause.reason: holds the call's caller number") && !strstr(t, "7911001234"),
       "is an invalid decision, as ctx.set refuses the number: %s", t);
    is_str(agent_reason("rsn", "pz", 0), "", "pz is not paused with it");
    ok(reason_offer("r2", "rq", "+447911001235", "pause_called") == 0, "one quoting the called");
    t = trace_of("rsn", "r2");
    ok(strstr(t, "pause.reason: holds the call's called number") != NULL, "likewise: %s", t);
    ok(reason_offer("r3", "rq", "+447911001236", "move") == 0, "a move quoting the caller");
    t = trace_of("rsn", "r3");
    ok(strstr(t, "invalid decision: reason: holds the call's caller number") != NULL,
       "is invalid: %s", t);
    ok(reason_offer("r4", "rq", "+447911001237", "reject") == 0, "a reject quoting the caller");
    t = trace_of("rsn", "r4");
    ok(strstr(t, "invalid decision: reject: holds the call's caller number") != NULL,
       "is invalid: %s", t);

    /* Other numbers: stored as [number]. */
    ok(reason_offer("r5", "rq", "+447911001238", "pause_other") == 0, "a pause quoting others");
    is_str(agent_reason("rsn", "pz", 0), "cb [number] or [number]",
           "pz's reason keeps no number (nor the caller's written backwards)");
    is_str(trace_of("rsn", "r5"), "wait 0", "the trace shows the decision");
    ok(reason_offer("r6", "rq", "+447911001239", "move_other") == 0, "a move quoting another");
    int got = 0;
    for (size_t i = 0; i < sb_result_count(res); i++) {
        const sb_action *a = sb_result_action(res, i);
        if (a->type == SB_ACT_OVERFLOW && a->reason && !strcmp(a->reason, "cb [number]")) got = 1;
    }
    ok(got, "the overflow action's reason reads cb [number]");
    t = trace_of("rsn", "r6");
    ok(strstr(t, "move to rq2: cb [number]") && !strstr(t, "009998"),
       "the trace shows the reason with [number]: %s", t);
    ok(reason_offer("r7", "rq", "+447911001240", "reject_other") == 0, "a reject quoting another");
    got = 0;
    for (size_t i = 0; i < sb_result_count(res); i++) {
        const sb_action *a = sb_result_action(res, i);
        if (a->type == SB_ACT_REJECT && a->reason && !strcmp(a->reason, "cb [number]")) got = 1;
    }
    ok(got, "the reject action's reason reads cb [number]");
    ok(reason_offer("r8", "rq", "+447911001241", "error") == 0, "a policy raising the number");
    t = trace_of("rsn", "r8");
    ok(strstr(t, "cb [number]") && !strstr(t, "7911001241"),
       "the trace keeps its error with [number]: %s", t);

    /* A gateway's status reasons. */
    ok(ev("rsn", "{\"type\":\"agent_status\",\"agent\":\"pz\",\"status\":\"paused\","
                 "\"reason\":\"call back +447911005555\\r\\n\\u001b[2J\"}") == 0,
       "a gateway pauses pz with a number and control characters in the reason");
    is_str(agent_reason("rsn", "pz", 0), "call back [number]   [2J",
           "stored with [number], the control characters as spaces");
    ok(ev("rsn", "{\"type\":\"agent_status\",\"agent\":\"a1\",\"status\":\"available\"}") == 0 &&
           offer("rsn", "r9", "support", "+447911001242", NULL) == 0 && !strcmp(rang(), "a2") &&
           ev("rsn", "{\"type\":\"ring_result\",\"call\":\"r9\",\"agent\":\"a2\","
                     "\"outcome\":\"answered\"}") == 0 &&
           ev("rsn", "{\"type\":\"agent_status\",\"agent\":\"a2\",\"status\":\"paused\","
                     "\"reason\":\"call back 07911 005556\"}") == 0,
       "a2 on a call asks for a pause quoting a number");
    is_str(agent_reason("rsn", "a2", 1), "call back [number]", "its next reason reads [number]");

    static const char *const numbers[] = {"+447911001234", "+447911001235", "+447911001236",
                                          "+447911001237", "+447911001238", "+447911001239",
                                          "+447911001240", "+447911001241", "+447911001242",
                                          "+447911009999", "+447911009997", "+447911005555"};
    int seen = 0;
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
        if (mdb_digits(numbers[i])) {
            diag("in the clear in data.mdb: %s", numbers[i]);
            seen++;
        }
    seen += mdb_count("7911 009999", 11) + mdb_count("832100119744", 12) +
            mdb_count("07911 009998", 12) + mdb_count("07911 005556", 12);
    is_int(seen, 0, "data.mdb never held any of the numbers in the clear");
    json_t *d = doc(sb_erase(eng, "rsn", "+447911001238", res));
    ok(d != NULL, "an erasure of a caller");
    json_decref(d);
    is_int(mdb_digits("+447911001238") + mdb_count("832100119744", 12), 0,
           "after it, no trace of the number either");
}

/* --- a deleted queue's statistics -------------------------------------------- */

/* The rows of the account's aggregates for queue q (NULL: all) as
** "queue/offered[/deleted]" joined by spaces; "error CODE" when it fails. */
static const char *aggr_rows_of(const char *acct, const char *q)
{
    static char out[512];
    int rc = sb_aggregates(eng, acct, q, 0, 0, res);
    if (rc) {
        snprintf(out, sizeof out, "error %s", sb_code_name(rc));
        return out;
    }
    json_t *d = json_loads(sb_result_json(res, NULL), 0, NULL), *x;
    size_t i, n = 0;
    out[0] = 0;
    json_array_foreach(json_object_get(d, "days"), i, x)
    {
        json_t *qid = json_object_get(x, "queue");
        n += (size_t)snprintf(out + n, sizeof out - n, "%s%s/%lld%s", n ? " " : "",
                              json_is_string(qid) ? json_string_value(qid) : "-",
                              (long long)json_integer_value(json_object_get(x, "offered")),
                              json_is_true(json_object_get(x, "queue_deleted")) ? "/deleted" : "");
        if (n >= sizeof out) break;
    }
    json_decref(d);
    return out;
}

/* The ids of the account's records listed with ?queue=q, newest first,
** joined by spaces; "error CODE field" when it fails. */
static const char *records_of(const char *acct, const char *q)
{
    static char out[512];
    char query[128];
    snprintf(query, sizeof query, "{\"queue\":\"%s\"}", q);
    int rc = sb_records_list(eng, acct, query, strlen(query), res);
    if (rc) {
        snprintf(out, sizeof out, "error %s %s", sb_code_name(rc),
                 sb_result_field(res) ? sb_result_field(res) : "-");
        return out;
    }
    json_t *d = json_loads(sb_result_json(res, NULL), 0, NULL), *x;
    size_t i, n = 0;
    out[0] = 0;
    json_array_foreach(json_object_get(d, "records"), i, x)
    {
        n += (size_t)snprintf(out + n, sizeof out - n, "%s%s", n ? " " : "",
                              json_string_value(json_object_get(x, "id")));
        if (n >= sizeof out) break;
    }
    json_decref(d);
    return out;
}

static void test_deleted_queue_aggregates(void)
{
    ok(account("qgone", NULL) == 0, "an account with queues support and sales");
    ok(call("qgone", "g1", "sales", "+442079460301", 1) == 0 &&
           call("qgone", "g2", "sales", "+442079460302", 0) == 0 &&
           call("qgone", "g3", "support", "+442079460303", 1) == 0,
       "two calls in sales, one in support");
    is_str(aggr_rows_of("qgone", "sales"), "sales/2", "sales has its day");
    ok(sb_queue_delete(eng, "qgone", "sales", res) == 0, "sales is deleted");
    is_str(aggr_rows_of("qgone", "sales"), "sales/2/deleted",
           "its statistics are found by its id after it is deleted, marked deleted");
    is_str(records_of("qgone", "sales"), "g2 g1", "and its records, listed by its id");
    is_str(records_of("qgone", "nosuch"), "error SB_ENOTFOUND queue",
           "records of an id no queue has or had: not found, naming the queue, as aggregates");
    is_str(aggr_rows_of("qgone", NULL), "-/3 support/1 sales/2/deleted",
           "the account's list names the deleted queue, marked (not \"#2\")");
    const char *q = "{\"id\":\"sales\",\"policy\":\"hist\",\"members\":[{\"agent\":\"a1\"}]}";
    ok(sb_queue_put(eng, "qgone", q, strlen(q), res) == 0, "sales is made again");
    ok(call("qgone", "g4", "sales", "+442079460304", 1) == 0, "and takes a call");
    is_str(aggr_rows_of("qgone", "sales"), "sales/2/deleted sales/1",
           "the id finds both: the deleted queue's rows and the new queue's");
    is_str(records_of("qgone", "sales"), "g4 g2 g1", "and the records of both");
    is_str(aggr_rows_of("qgone", "nosuch"), "error SB_ENOTFOUND",
           "an id no queue has or had is still not found");
    ok(sb_account_delete(eng, "qgone", res) == 0, "the account goes");
    ok(account("qgone", NULL) == 0, "an account of the same id again");
    is_str(aggr_rows_of("qgone", NULL), "", "it has no statistics");
    is_str(aggr_rows_of("qgone", "sales"), "",
           "its sales finds none of the deleted account's deleted sales");
    is_str(records_of("qgone", "sales"), "", "nor their records");
}

int main(void)
{
    if (start_engine("compliance")) return done_testing();
    test_budget_resume(); /* first: no other account has records due */
    test_anonymize_leaves_nothing();
    test_erasure_reach();
    test_erasure_live_held();
    test_erasure_clears_free_pages();
    test_version2_records();
    test_version2_walk();
    test_overlapping_holds();
    test_hold_during_sweep();
    test_odd_review_dates();
    test_account_deletion();
    test_own_number_in_attrs();
    test_own_number_nested_attrs();
    test_own_number_in_call_id();
    test_erasure_answer_reasons();
    test_audit_reasons();
    test_reason_bytes();
    test_reasons_at_rest();
    test_deleted_queue_aggregates();
    return end_engine();
}
