/*
** bench_sweep.c — the retention sweep benchmark (make bench).
**
** 1. Sweep rate: 1,000,000 call records from 100,000 callers, ended over
**    the last 1,000 days and each due for its first review (30 days after
**    it ended), reviewed by the stock Lua policy
**    retention/anonymize-30-days-delete-2-years (anonymized under two
**    years, deleted after): records reviewed per second on one thread
**    (target: 500,000/s), and the pages of the data file the audit log's
**    entries of them take (one an anonymization or deletion).
**    Then as many records of an account whose policy keeps every record
**    another year: the cost of a review itself, without deleting or
**    anonymizing.
** 2. Live routing beside a sweep: the call-cycle benchmark's offer latency
**    (50 agents, longest-idle, offer+answered+hangup, sync=none) without a
**    sweep, then with another thread sweeping a fresh set of due records
**    meanwhile: p50/p99 of both (target: p99 within 2x).
**
** The records are written straight into the store (sealed numbers,
** pseudonym index, review index, as record_write leaves them) so that the
** fixture takes seconds, not the minutes a million call cycles would.
**
** usage: bench_sweep [--records N] [--cycles N] [--policy-dir DIR] [--sweep-only]
*/
#include "crypto.h"
#include "records.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "benchkit.h"

static int64_t fake_ms = 1767603600000; /* 2026-01-05 09:00 UTC */
static int64_t bench_clock(void *arg)
{
    return __atomic_load_n(&fake_ms, __ATOMIC_RELAXED);
}

static void must(int rc, sb_result *res, const char *what)
{
    if (rc) {
        fprintf(stderr, "%s: %s\n", what, sb_result_message(res));
        exit(1);
    }
}

/* --- the fixture: records due for review, written straight into the store -- */

#define DAY 86400000LL

typedef struct fill {
    const char *account;
    int from, n, total;
    uint8_t key[32];
} fill;

static int do_fill(wtx *t, void *arg)
{
    fill *f = arg;
    int rc = tx_account(t, f->account);
    if (rc) return rc;
    wbuf w = {0}, parts = {0};
    for (int i = f->from; i < f->from + f->n && !rc; i++) {
        char id[32], caller[32];
        /* gateway call ids look random (SIP Call-IDs, UUIDs) */
        snprintf(id, sizeof id, "%08x-%d", (unsigned)((uint32_t)i * 2654435761u), i);
        snprintf(caller, sizeof caller, "+44207%07d", (int)(((uint32_t)i * 7919u) % 100000));
        int outcome = i % 10 == 0 ? OUT_ABANDONED : i % 25 == 1 ? OUT_REJECTED : OUT_ANSWERED;
        /* calls ended over the last 1,000 days, oldest first; each was kept
        ** 30 days when written and is due for its first review 30 days
        ** after it ended (now for all of them) */
        int64_t ended = t->now - 1000 * DAY + (int64_t)((double)i * (970.0 * DAY) / f->total);
        int64_t wait = 5000 + (i % 30) * 1000, talk = outcome == OUT_ANSWERED ? 180000 : 0;
        int64_t offered = ended - wait - talk;
        /* sealed caller, as rec_seal_call leaves it */
        uint8_t pt[40], sealed[40 + CR_SEAL_OVERHEAD], ad[REC_AD_MAX];
        size_t cl = strlen(caller);
        memcpy(pt, caller, cl + 1);
        pt[cl + 1] = 0;
        if (cr_seal(f->key, ad, rec_seal_ad(ad, f->account, id, strlen(id), offered), pt, cl + 2,
                    sealed))
            return SB_ECRYPTO;
        /* one attempt, one policy version */
        wb_reset(&parts);
        wb_str(&parts, outcome == OUT_ANSWERED ? "a7" : "a3");
        wb_u8(&parts, POL_DEV_SOFTPHONE);
        wb_u8(&parts, outcome == OUT_ANSWERED ? SB_RING_ANSWERED : SB_RING_NO_ANSWER);
        wb_i64(&parts, offered);
        wb_i32(&parts, (int32_t)wait);
        size_t attlen = parts.b.len;
        wb_str(&parts, "longest-idle");
        wb_str(&parts, "29b64f7fdd3dc39e");
        rec_data r = {
            .id = id,
            .idlen = strlen(id),
            .queue = "support",
            .queuelen = 7,
            .first_queue = "support",
            .first_queuelen = 7,
            .agent = outcome == OUT_ANSWERED ? "a7" : "",
            .agentlen = outcome == OUT_ANSWERED ? 2 : 0,
            .outcome = outcome,
            .offered = offered,
            .answered = outcome == OUT_ANSWERED ? offered + wait : 0,
            .ended = ended,
            .review_due = ended + 30 * DAY, /* its entry in the review index */
            .wait_ms = wait,
            .talk_ms = talk,
            .natt = 1,
            .att = (const uint8_t *)parts.b.p,
            .attlen = attlen,
            .nver = 1,
            .ver = (const uint8_t *)parts.b.p + attlen,
            .verlen = parts.b.len - attlen,
            .attrs = "{\"language\":\"en\"}",
            .attrs_len = 17,
            .pii = sealed,
            .pii_len = cl + 2 + CR_SEAL_OVERHEAD,
            .npseudo = 1,
            .flags = RF_TIDX, /* its index entries where the engine writes them */
        };
        cr_pseudonym(f->key, caller, r.pseudo[0]);
        wb_reset(&w);
        rec_encode(&w, &r);
        uint8_t rk[REC_KEY_MAX], rv[8 + REC_KEY_MAX], iv[5] = {0};
        iv[3] = outcome == OUT_ANSWERED; /* agent 1 answered, for caller history */
        iv[4] = (uint8_t)outcome;
        size_t rkl = rec_key_of(rk, t->acct, id, r.idlen, ended);
        put_be64(rv, (uint64_t)r.review_due); /* all due by now */
        memcpy(rv + 8, rk, rkl);
        if (w.err || parts.err) rc = SB_ENOMEM;
        if (!rc) rc = st_put(t->txn, t->e, DB_RECORDS, rk, rkl, w.b.p, w.b.len);
        if (!rc) rc = rec_index_put(t->txn, t->e, t->acct, &r, iv);
        uint8_t epoch[4] = {0}; /* the account's epoch: 0 */
        if (!rc) rc = st_put(t->txn, t->e, DB_REVIEW, rv, 8 + rkl, epoch, 4);
    }
    buf_free(&w.b);
    buf_free(&parts.b);
    return rc;
}

static void fixture(sb_engine *e, const char *account, int from, int n)
{
    sb_result *res = sb_result_new();
    fill f = {.account = account, .total = from + n};
    acct_rec a;
    MDB_txn *txn;
    if (eng_read_begin(e, &txn)) exit(1);
    int rc = st_account_by_id(txn, e, account, &a);
    eng_read_end(e, txn);
    if (rc || rec_key(e, a.num, account, 0, f.key)) {
        fprintf(stderr, "fixture: account %s has no data key\n", account);
        exit(1);
    }
    for (int i = from; i < from + n; i += 20000) {
        f.from = i;
        f.n = from + n - i < 20000 ? from + n - i : 20000;
        must(eng_write(e, do_fill, &f, res), res, "fixture");
    }
    sb_result_free(res);
}

static void timed_sweep(sb_engine *e, sb_result *res, const char *label)
{
    double t0 = now_s(), c0 = cpu_s();
    must(sb_sweep(e, 0, NULL, NULL, res), res, "sweep");
    double secs = now_s() - t0, cpu = cpu_s() - c0;
    json_t *d = json_loads(sb_result_json(res, NULL), 0, NULL);
#define N(k) ((long long)json_integer_value(json_object_get(d, k)))
    printf("%s: %lld reviewed (%lld kept, %lld anonymized, %lld deleted) in %lld transactions, "
           "%.2f s: %.0f records/s reviewed (%.0f per CPU second)\n",
           label, N("reviewed"), N("kept"), N("anonymized"), N("deleted"), N("transactions"), secs,
           (double)N("reviewed") / secs, (double)N("reviewed") / cpu);
#undef N
    json_decref(d);
}

/* The audit log's pages in the data file, per entry it holds (n entries). */
static void audit_size(sb_engine *e, long long n)
{
    MDB_txn *txn;
    MDB_stat st;
    if (eng_read_begin(e, &txn)) exit(1);
    int rc = mdb_stat(txn, e->dbi[DB_AUDIT], &st);
    eng_read_end(e, txn);
    if (rc || n <= 0) return;
    size_t pages = st.ms_leaf_pages + st.ms_branch_pages + st.ms_overflow_pages;
    printf("audit log: %lld entries in %zu pages of the data file, %.0f bytes an entry\n", n, pages,
           (double)pages * st.ms_psize / (double)n);
}

/* --- the sweep thread --------------------------------------------------------- */

typedef struct sweeper {
    sb_engine *e;
    double secs;
    long long reviewed;
    int done;
} sweeper;

static void *sweep_thread(void *arg)
{
    sweeper *s = arg;
    sb_result *res = sb_result_new();
    double t0 = now_s();
    must(sb_sweep(s->e, 0, NULL, NULL, res), res, "sweep");
    s->secs = now_s() - t0;
    json_t *d = json_loads(sb_result_json(res, NULL), 0, NULL);
    s->reviewed = (long long)json_integer_value(json_object_get(d, "reviewed"));
    json_decref(d);
    sb_result_free(res);
    __atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* --- call cycles (as bench_cycle) ----------------------------------------------- */

static int cycles(sb_engine *e, int n, int base, double *lat, const int *stop)
{
    sb_result *res = sb_result_new();
    char call[32], agent[64];
    int done = 0;
    for (int i = 0; i < n && !(stop && __atomic_load_n(stop, __ATOMIC_ACQUIRE)); i++) {
        snprintf(call, sizeof call, "c%d", base + i);
        __atomic_add_fetch(&fake_ms, 7, __ATOMIC_RELAXED);
        sb_event ev = {.type = SB_EV_OFFER,
                       .account = "bench",
                       .call_id = call,
                       .queue_id = "q",
                       .caller = "+442079460000"};
        double a = now_s();
        int rc = sb_submit(e, &ev, res);
        lat[done++] = (now_s() - a) * 1e6;
        const sb_action *ring = NULL;
        for (size_t k = 0; !rc && k < sb_result_count(res); k++)
            if (sb_result_action(res, k)->type == SB_ACT_RING) ring = sb_result_action(res, k);
        if (!ring) continue;
        snprintf(agent, sizeof agent, "%s", ring->agent_id);
        sb_event ans = {.type = SB_EV_RING_RESULT,
                        .account = "bench",
                        .call_id = call,
                        .agent_id = agent,
                        .outcome = SB_RING_ANSWERED};
        sb_event hup = {.type = SB_EV_HANGUP, .account = "bench", .call_id = call};
        sb_submit(e, &ans, res);
        sb_submit(e, &hup, res);
    }
    sb_result_free(res);
    return done;
}

static void pct(double *lat, int n, double *p50, double *p99)
{
    qsort(lat, (size_t)n, sizeof *lat, cmp_d);
    *p50 = lat[n / 2];
    *p99 = lat[(int)(n * 0.99)];
}

/* Caller history (call.previous_agent) read for n callers: those of the
** fixture's last n records (total of them), who called a month ago, or
** (unknown) numbers no record has. The median and 99th percentile of a
** lookup, in µs. */
static void history(sb_engine *e, const char *account, int total, int n, int unknown)
{
    acct_rec a;
    MDB_txn *txn;
    uint8_t key[32];
    if (eng_read_begin(e, &txn)) exit(1);
    if (st_account_by_id(txn, e, account, &a) || rec_key(e, a.num, account, 0, key)) exit(1);
    double *lat = malloc(sizeof *lat * (size_t)n);
    int found = 0;
    for (int i = 0; i < n; i++) {
        char caller[32];
        uint8_t ps[16];
        snprintf(caller, sizeof caller, unknown ? "+44208%07d" : "+44207%07d",
                 (int)(((uint32_t)(total - 1 - i) * 7919u) % 100000));
        cr_pseudonym(key, caller, ps);
        double t0 = now_s();
        found += rec_history(txn, e, a.num, ps, fake_ms - REC_HISTORY_MS) != 0;
        lat[i] = (now_s() - t0) * 1e6;
    }
    eng_read_end(e, txn);
    double p50, p99;
    pct(lat, n, &p50, &p99);
    printf(
        "caller history, %s callers: p50 %.1f us, p99 %.1f us (%d of %d with a previous agent)\n",
        unknown ? "new" : "known", p50, p99, found, n);
    free(lat);
}

int main(int argc, char **argv)
{
    int records = 1000000, ncycles = 20000, sweep_only = 0;
    const char *policy_dir = "policies";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--records") && i + 1 < argc)
            records = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cycles") && i + 1 < argc)
            ncycles = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--policy-dir") && i + 1 < argc)
            policy_dir = argv[++i];
        else if (!strcmp(argv[i], "--sweep-only"))
            sweep_only = 1;
    }
    char dir[128];
    snprintf(dir, sizeof dir, "/tmp/sb-bench-sweep-%d", (int)getpid());
    sb_config cfg;
    sb_config_init(&cfg);
    cfg.data_dir = dir;
    cfg.policy_dir = policy_dir;
    cfg.sync = SB_SYNC_NONE;
    cfg.map_size = (size_t)2 << 30;
    cfg.clock = bench_clock;
    cfg.log_level = SB_LOG_WARN;
    sb_result *res = sb_result_new();
    sb_engine *e = NULL;
    must(sb_open(&e, &cfg, res), res, "open");
    const char *acct =
        "{\"id\":\"ret\",\"retention\":\"retention/anonymize-30-days-delete-2-years\"}";
    must(sb_account_put(e, acct, strlen(acct), res), res, "account ret");
    must(sb_account_put(e, "{\"id\":\"bench\"}", 14, res), res, "account bench");
    char q[4096] = "{\"id\":\"q\",\"policy\":\"longest-idle\",\"members\":[";
    for (int i = 0; i < 50; i++) {
        char json[256];
        snprintf(json, sizeof json,
                 "{\"id\":\"a%d\",\"devices\":{\"softphone\":\"sip:a%d@pbx.example\"},"
                 "\"status\":\"available\"}",
                 i, i);
        must(sb_agent_put(e, "bench", json, strlen(json), res), res, "agent");
        snprintf(q + strlen(q), sizeof q - strlen(q), "%s{\"agent\":\"a%d\"}", i ? "," : "", i);
    }
    strcat(q, "]}");
    must(sb_queue_put(e, "bench", q, strlen(q), res), res, "queue");

    printf("sweep benchmark: %d records due, 100,000 callers, ended 30..1,000 days ago, Lua retain "
           "hook retention/anonymize-30-days-delete-2-years, budgets armed\n",
           records);
    double t0 = now_s();
    fixture(e, "ret", 0, records);
    printf("fixture: %d records written in %.1f s\n", records, now_s() - t0);
    history(e, "ret", records, 10000, 0);
    history(e, "ret", records, 10000, 1);

    /* 1. The sweep alone: every review anonymizes or deletes (each an entry
    ** of the audit log). */
    timed_sweep(e, res, "sweep");
    audit_size(e, records);
    /* 1b. As many records of an account whose policy keeps them another
    ** year: the review machinery and Lua alone. */
    const char *yearly = "local P = {}\n"
                         "function P.retain(record, ctx)\n"
                         "  return { keep = true, review_in_days = 365, reason = 'yearly' }\n"
                         "end\n"
                         "return P\n";
    must(sb_account_put(e, "{\"id\":\"keep\"}", 13, res), res, "account keep");
    must(sb_policy_put(e, "keep", "yearly", yearly, strlen(yearly), NULL, res), res, "policy");
    acct = "{\"id\":\"keep\",\"retention\":\"yearly\"}";
    must(sb_account_put(e, acct, strlen(acct), res), res, "account keep (yearly)");
    fixture(e, "keep", 0, records);
    timed_sweep(e, res, "sweep, keep decisions");

    /* 2. Live routing without, then beside, a sweep. */
    if (sweep_only) ncycles = 0;
    if (sweep_only) goto out;
    double *lat = malloc(sizeof *lat * (size_t)(ncycles > 2000 ? ncycles : 2000));
    double p50a, p99a, p50b, p99b;
    cycles(e, 2000, 0, lat, NULL); /* warm up */
    int n = cycles(e, ncycles, 10000000, lat, NULL);
    pct(lat, n, &p50a, &p99a);
    int extra = records / 4;
    fixture(e, "ret", records, extra);
    sweeper s = {.e = e};
    pthread_t th;
    pthread_create(&th, NULL, sweep_thread, &s);
    n = cycles(e, ncycles, 20000000, lat, &s.done);
    pthread_join(th, NULL);
    pct(lat, n, &p50b, &p99b);
    printf("cycles without a sweep: offer p50 %6.1f us   p99 %6.1f us\n", p50a, p99a);
    printf("cycles during a sweep:  offer p50 %6.1f us   p99 %6.1f us   (%d offers; the sweep "
           "reviewed %lld records in %.2f s meanwhile: %.0f/s)\n",
           p50b, p99b, n, s.reviewed, s.secs, s.secs > 0 ? (double)s.reviewed / s.secs : 0.0);
    printf("p99 during / without a sweep: %.2fx (target <= 2x)\n", p99b / p99a);
    free(lat);
out:
    sb_result_free(res);
    sb_close(e);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) ? 1 : 0;
}
