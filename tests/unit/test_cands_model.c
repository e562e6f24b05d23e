/*
** test_cands_model.c — the candidates an offer keeps for the next one and
** brings up to date from the range cache's edits (events.c: cands_update),
** against those a fresh gather gives (the caches dropped with
** st_cache_forget), over random steps in four overlapping queues of 14
** agents: statuses, answered calls, no answers, weights, membership,
** batches with a failing event that wrote to the available-agents index
** (undone), and a second engine on the same directory writing. A policy
** folds every field it sees of every candidate into its reject reason, so
** the two offers of a check must give the same reason.
**
** usage: test_cands_model [SEED [STEPS]] (without: seeds 1 to 5)
*/
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"

#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[64];
static sb_engine *e, *other;
static sb_result *res;

#define NA 14
#define NQ 4

static const char SNAP[] =
    "local P = {}\n"
    "function P.route(c, a, ctx)\n"
    "  local want = c.attrs.ring\n"
    "  local t = {}\n"
    "  for i = 1, #a do\n"
    "    if want and a[i].id == want then return { ring = want } end\n"
    "    t[#t + 1] = table.concat({a[i].id, a[i].calls_taken, a[i].no_answers, a[i].weight,\n"
    "       a[i].tier, a[i].position, a[i].penalty, a[i].member_weight, a[i].idle_since,\n"
    "       tostring(a[i].last_call), a[i].talk_time}, ':')\n"
    "  end\n"
    "  if want then return { wait = 0 } end\n"
    "  local s = table.concat(t, ',')\n"
    "  local h = 7\n"
    "  for i = 1, #s do h = (h * 131 + s:byte(i)) % 2147483629 end\n"
    "  local ids = {}\n"
    "  for i = 1, #a do ids[#ids + 1] = a[i].id end\n"
    "  return { reject = #a .. ' ' .. h .. ' ' .. table.concat(ids, ',') }\n"
    "end\n"
    "return P\n";

static int avail[NA], member[NQ][NA], calls;

#define ev(en, ...) test_eventf(en, res, "acme", __VA_ARGS__)

static int put_queue(int q)
{
    char b[2048];
    int n = snprintf(b, sizeof b, "{\"id\":\"q%d\",\"policy\":\"snap\",\"members\":[", q);
    int first = 1;
    for (int i = 0; i < NA; i++)
        if (member[q][i]) {
            n += snprintf(b + n, sizeof b - (size_t)n,
                          "%s{\"agent\":\"a%02d\",\"penalty\":%d,\"tier\":%d}", first ? "" : ",", i,
                          rand() % 3, rand() % 2);
            first = 0;
        }
    snprintf(b + n, sizeof b - (size_t)n, "]}");
    return test_put(e, res, sb_queue_put, "acme", b);
}

static uint32_t acme_num, q0_num; /* as stored */

/* A write function standing for an event of a batch: deletes an entry of
** q0's available agents, then fails (the batch undoes it). */
static int w_fail(wtx *t, void *arg)
{
    (void)arg;
    uint8_t p[8], k[12];
    key_acct2(p, acme_num, q0_num);
    st_iter it;
    int rc, n = 0;
    uint8_t keys[NA][12];
    for (rc = st_iter_open(&it, t->txn, t->e, DB_AVAIL, p, 8); rc == 0 && n < NA;
         rc = st_iter_next(&it))
        if (it.klen == 12) memcpy(keys[n++], it.key, 12);
    st_iter_close(&it);
    if (n > 0) {
        memcpy(k, keys[0], 12);
        rc = st_del(t->txn, t->e, DB_AVAIL, k, 12);
        if (rc) return rc;
    }
    return SB_ESTATE;
}

static int check(sb_engine *en, int q, int step, const char *what)
{
    char a[600], b[600];
    calls++;
    int rc = ev(
        en, "{\"type\":\"offer\",\"call\":\"s%d\",\"queue\":\"q%d\",\"caller\":\"+44207948%04d\"}",
        calls, q, calls % 10000);
    const sb_action *rej = rc ? NULL : test_action_nth(res, SB_ACT_REJECT, 0);
    snprintf(a, sizeof a, "%s", rej && rej->reason ? rej->reason : "?");
    st_cache_forget(en, DB_AVAIL);
    calls++;
    rc = ev(en,
            "{\"type\":\"offer\",\"call\":\"s%d\",\"queue\":\"q%d\",\"caller\":\"+44207948%04d\"}",
            calls, q, calls % 10000);
    rej = rc ? NULL : test_action_nth(res, SB_ACT_REJECT, 0);
    snprintf(b, sizeof b, "%s", rej && rej->reason ? rej->reason : "?");
    if (strcmp(a, b)) {
        diag("step %d (%s) q%d: kept '%s' vs fresh '%s'", step, what, q, a, b);
        return 1;
    }
    return 0;
}

/* One run of `steps` random steps from `seed`, on a data directory of its
** own. */
static void run(unsigned seed, int steps)
{
    snprintf(dir, sizeof dir, "/tmp/sb-cands-model-XXXXXX");
    if (!mkdtemp(dir)) {
        ok(0, "seed %u: a data directory", seed);
        return;
    }
    memset(avail, 0, sizeof avail);
    calls = 0;
    sb_config cfg;
    test_engine_config(&cfg, dir, NULL, 32u << 20);
    /* The policy's instruction budget stays; its wall-clock one would fail
    ** a decision of a process the machine left waiting (the fallback's
    ** answer is not the policy's): what is compared is the candidates. */
    cfg.policy_wall_ms = 0;
    e = test_open(&cfg, res);
    other = test_open(&cfg, res);
    int bad = !e || !other || sb_account_put(e, "{\"id\":\"acme\"}", 13, res) ||
              sb_policy_put(e, "acme", "snap", SNAP, strlen(SNAP), NULL, res);
    srand(seed);
    for (int i = 0; i < NA && !bad; i++) {
        char d[160];
        snprintf(d, sizeof d, "{\"id\":\"a%02d\",\"devices\":{\"softphone\":\"sip:a%d@x\"}}", i, i);
        bad = test_put(e, res, sb_agent_put, "acme", d);
    }
    for (int q = 0; q < NQ && !bad; q++) {
        for (int i = 0; i < NA; i++)
            member[q][i] = rand() % 3 != 0;
        bad = put_queue(q);
    }
    {
        MDB_txn *txn;
        eng_read_begin(e, &txn);
        st_name_get(txn, e, NK_ACCOUNT, 0, "acme", &acme_num);
        st_name_get(txn, e, NK_QUEUE, acme_num, "q0", &q0_num);
        eng_read_end(e, txn);
    }
    int wrong = 0, checks = 0, inbatch = 0;
    for (int step = 0; step < steps && !bad && !wrong; step++) {
        int k = rand() % NA, q = rand() % NQ, op = rand() % 20;
        sb_engine *en = (rand() % 10 == 0 && !inbatch) ? other : e;
        if (op < 5) {
            avail[k] = !avail[k];
            ev(en, "{\"type\":\"agent_status\",\"agent\":\"a%02d\",\"status\":\"%s\"}", k,
               avail[k] ? "available" : (rand() % 2 ? "paused" : "offline"));
        } else if (op < 8 && avail[k] && member[q][k]) { /* answered */
            calls++;
            int c = calls;
            if (ev(en,
                   "{\"type\":\"offer\",\"call\":\"r%d\",\"queue\":\"q%d\",\"caller\":\"+44207946%"
                   "04d\",\"attrs\":{\"ring\":\"a%02d\"}}",
                   c, q, c % 10000, k) == 0 &&
                test_action_nth(res, SB_ACT_RING, 0)) {
                now_ms += rand() % 3000;
                if (rand() % 3 == 0) {
                    ev(en,
                       "{\"type\":\"ring_result\",\"agent\":\"a%02d\",\"call\":\"r%d\",\"outcome\":"
                       "\"no_answer\"}",
                       k, c);
                    ev(en, "{\"type\":\"abandon\",\"call\":\"r%d\"}", c);
                } else {
                    ev(en,
                       "{\"type\":\"ring_result\",\"agent\":\"a%02d\",\"call\":\"r%d\",\"outcome\":"
                       "\"answered\"}",
                       k, c);
                    if (rand() % 2) check(e, rand() % NQ, step, "mid-call") && (wrong = 1);
                    now_ms += rand() % 5000;
                    ev(en, "{\"type\":\"hangup\",\"call\":\"r%d\"}", c);
                }
            } else {
                ev(en, "{\"type\":\"abandon\",\"call\":\"r%d\"}", c);
            }
        } else if (op == 8) {
            char d[200];
            snprintf(d, sizeof d,
                     "{\"id\":\"a%02d\",\"weight\":%d,\"devices\":{\"softphone\":\"sip:a%d@x\"}}",
                     k, 1 + rand() % 9, k);
            test_put(en, res, sb_agent_put, "acme", d);
        } else if (op == 9) {
            member[q][k] = !member[q][k];
            if (!inbatch) put_queue(q);
        } else if (op == 10 && !inbatch) {
            sb_batch_begin(e);
            inbatch = 1;
        } else if (op == 11 && inbatch) {
            if (sb_batch_end(e, res)) diag("batch end: %s", sb_result_message(res));
            inbatch = 0;
        } else if (op == 12 && inbatch) {
            int rc = eng_write_event(e, w_fail, NULL, res, 0);
            if (rc != SB_ESTATE) diag("w_fail gave %d", rc);
        } else if (op == 13) {
            now_ms += rand() % 10000;
        } else {
            checks++;
            if (check(e, q, step, inbatch ? "batch" : "plain")) wrong = 1;
        }
    }
    if (inbatch) sb_batch_end(e, res);
    ok(!bad && !wrong, "seed %u: kept candidates equal fresh ones (%d checks, %d calls)", seed,
       checks, calls);
    sb_close(other);
    sb_close(e);
    rmtree(dir);
}

int main(int argc, char **argv)
{
    res = sb_result_new();
    if (argc > 1)
        run((unsigned)atoi(argv[1]), argc > 2 ? atoi(argv[2]) : 3000);
    else
        for (unsigned seed = 1; seed <= 5; seed++)
            run(seed, 3000);
    sb_result_free(res);
    return done_testing();
}
