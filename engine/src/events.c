/*
** events.c — call and agent events, routing, timers.
**
** Every public entry point here runs as one LMDB write transaction through
** eng_write(): read state, ask the policy, apply the decision, commit. The
** actions each step causes — for this call and for others (an agent freed
** up, so a waiting call rings now) — are appended to the caller's result.
*/
#include "crypto.h"
#include "engine.h"
#include "jsonv.h"
#include "records.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DISPATCH_HEAD 16   /* waiting calls read at first per dispatch */
#define DISPATCH_BATCH 256 /* and then per read, when those all keep waiting */
/* Policy wake-ups due in the same millisecond, in one account, at most this
** many at a time, fire in line order. */
#define WAKE_GROUP 32
#define TICK_BATCH 256      /* timers fired per tick transaction */
#define TICK_RETRY_MS 60000 /* a timer whose firing failed is tried again after this */

static int route_call_skip(wtx *t, call_rec *c, queue_rec *q, int announce, uint32_t skip);
#define route_call(t, c, q, announce) route_call_skip(t, c, q, announce, 0)

/* --- small helpers --------------------------------------------------------- */

static const char *acct_id(wtx *t)
{
    return t->account ? t->account->id : "";
}

static sb_action *act(wtx *t, sb_action_type type, const char *call, const char *agent,
                      const char *queue, const char *reason)
{
    sb_action *a = res_action(t->res, type);
    if (!a) return NULL;
    a->account = res_str(t->res, acct_id(t));
    a->call_id = res_str(t->res, call);
    a->agent_id = res_str(t->res, agent);
    a->queue_id = res_str(t->res, queue);
    a->reason = res_str(t->res, reason);
    return a;
}

/* A WAIT action's due_ms: when the engine next takes up the waiting call
** by itself, the policy's wake-up or the queue's max wait (an overflow or a
** reject), whichever is sooner; 0 when neither is set. */
static int64_t wait_due(const call_rec *c)
{
    if (!c->wake_due || !c->maxwait_due) return c->wake_due ? c->wake_due : c->maxwait_due;
    return c->wake_due < c->maxwait_due ? c->wake_due : c->maxwait_due;
}

static size_t timer_key(uint8_t *k, int64_t due, int kind, uint32_t acct, const void *ref,
                        size_t rl)
{
    put_be64(k, (uint64_t)due);
    k[8] = (uint8_t)kind;
    put_be32(k + 9, acct);
    memcpy(k + 13, ref, rl);
    return 13 + rl;
}

/* Timers keyed by due time mostly go in last (a ring's timeout, now plus the
** queue's ring timeout): a timer due after the latest this engine appended
** is appended, without the B-tree search (about 1,000 instructions a call
** cycle); one due before it, as a ring's under a longer max wait is, is put. */
static int timer_set(wtx *t, int64_t due, int kind, const void *ref, size_t rl)
{
    uint8_t k[13 + SB_ID_MAX];
    size_t kl = timer_key(k, due, kind, t->acct, ref, rl);
    if (due <= t->e->timer_top) return st_put(t->txn, t->e, DB_TIMERS, k, kl, "", 0);
    t->e->timer_top = due;
    return st_put_last(t->txn, t->e, DB_TIMERS, k, kl, "", 0);
}

static int timer_del(wtx *t, int64_t due, int kind, const void *ref, size_t rl)
{
    uint8_t k[13 + SB_ID_MAX];
    if (!due) return 0;
    return st_del(t->txn, t->e, DB_TIMERS, k, timer_key(k, due, kind, t->acct, ref, rl));
}

/* A call's timers are dropped lazily: forgetting the due time is enough,
** since a timer fires only if the call still expects it at that time. The
** stale entry goes in the next tick's batch, where deleting costs far less
** than a write of its own in every event. */
static int call_timer_del(wtx *t, int64_t *due, int kind, const call_rec *c)
{
    *due = 0;
    return 0;
}

static size_t waiting_key(uint8_t *k, uint32_t acct, const call_rec *c)
{
    size_t n = strlen(c->id);
    put_be32(k, acct);
    put_be32(k + 4, c->queue);
    k[8] = (uint8_t)(100 - c->priority);
    put_be64(k + 9, (uint64_t)c->queued);
    memcpy(k + 17, c->id, n);
    return 17 + n;
}

static int load_queue(wtx *t, uint32_t num, queue_rec *q)
{
    int rc = st_queue_load(t->txn, t->e, t->acct, num, q);
    if (rc == SB_ENOTFOUND) return res_err(t->res, SB_ESTORE, NULL, "queue %u vanished", num);
    return rc;
}

/* Count a call into (+1) or out of (-1) the queue's waiting calls. The
** count is changed in the stored record, read again here: the caller's copy
** may be stale, loaded before routing that changed the count (an agent
** released and handed a waiting call) or beside another copy of the same
** queue (a transfer into the call's own queue). The copy is refreshed. */
static int waiting_count(wtx *t, queue_rec *q, int delta)
{
    queue_rec cur = {0};
    int rc = load_queue(t, q->num, &cur);
    if (rc) return rc;
    if (delta > 0)
        cur.waiting++;
    else if (cur.waiting)
        cur.waiting--;
    *q = cur;
    return st_queue_save(t->txn, t->e, t->acct, q);
}

/* Put the call in / take it out of its queue's waiting list. */
static int waiting_add(wtx *t, call_rec *c, queue_rec *q)
{
    uint8_t k[17 + SB_ID_MAX];
    int rc = st_put_new(t->txn, t->e, DB_WAITING, k, waiting_key(k, t->acct, c), "", 0);
    if (rc && rc != MDB_KEYEXIST) return rc;
    c->state = CALL_WAITING;
    /* Back in line with no max-wait timer (an answer or a transfer to an
    ** agent cleared it, or it fired while the call rang): the queue's max
    ** wait holds again, counted from when the call was queued, as for an
    ** offer. A time already past fires at the next tick. */
    if (q->max_wait && !c->maxwait_due) {
        c->maxwait_due = c->queued + (int64_t)q->max_wait * 1000;
        int r = timer_set(t, c->maxwait_due, TM_MAXWAIT, c->id, strlen(c->id));
        if (r) return r;
    }
    if (rc == MDB_KEYEXIST) return 0; /* in the list already: counted */
    return waiting_count(t, q, 1);
}

static int waiting_remove(wtx *t, call_rec *c, queue_rec *q)
{
    /* A call just offered and decided at once was never in line (state 0:
    ** waiting_add sets WAITING, and a stored call has a state): no lookup. */
    if (!c->state) return 0;
    uint8_t k[17 + SB_ID_MAX];
    int rc = st_del_exact(t->txn, t->e, DB_WAITING, k, waiting_key(k, t->acct, c));
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return rc;
    return waiting_count(t, q, -1);
}

/* Set the queue's count to the length of its waiting list when the count
** is more: older versions let it drift up until the queue turned every
** call away as full. Read only as far as the count, when it says full. */
static int waiting_recount(wtx *t, queue_rec *q)
{
    st_iter it;
    uint8_t p[8];
    uint32_t n = 0;
    int rc;
    for (rc = st_iter_open(&it, t->txn, t->e, DB_WAITING, p, key_acct2(p, t->acct, q->num));
         rc == 0 && n < q->waiting; rc = st_iter_next(&it))
        n++;
    st_iter_close(&it);
    if (rc && rc != MDB_NOTFOUND) return rc;
    if (n >= q->waiting) return 0;
    q->waiting = n;
    return st_queue_save(t->txn, t->e, t->acct, q);
}

/* --- agents ---------------------------------------------------------------- */

/* The agent's availability entry in one queue: put (available, with the
** membership m) or taken out. */
static int avail_one(wtx *t, const agent_rec *a, uint32_t queue, const member_rec *m, int available)
{
    sb_engine *e = t->e;
    uint8_t ak[12];
    key_acct3(ak, t->acct, queue, a->num);
    if (!available) return st_del(t->txn, e, DB_AVAIL, ak, 12);
    avail_rec av = {.idle_since = a->idle_since,
                    .last_call = a->last_call,
                    .talk_ms = a->talk_ms,
                    .calls_taken = a->calls_taken,
                    .no_answers = a->no_answers,
                    .missed_at = a->missed_at,
                    .weight = a->weight,
                    .m = *m};
    for (int i = 0; i < 3; i++)
        if (a->uri[i][0]) av.devices |= (uint8_t)(1u << i);
    if (a->plain_devices) av.devices |= AV_PLAIN_DEVICES;
    memcpy(av.id, a->id, sizeof av.id);
    wb_reset(&e->wb);
    enc_avail(&e->wb, &av);
    if (e->wb.err) return SB_ENOMEM;
    return st_put(t->txn, e, DB_AVAIL, ak, 12, e->wb.b.p, e->wb.b.len);
}

int agent_avail_in(wtx *t, const agent_rec *a, uint32_t queue, const member_rec *m)
{
    return a->status == SB_AGENT_AVAILABLE ? avail_one(t, a, queue, m, !m->paused) : 0;
}

/* A walk of the range under an 8-byte prefix in batches: the first from
** the range cache (st_iter_hot), each next after the last key the one
** before read (llen 0: none yet). */
static int iter_batch(st_iter *it, wtx *t, int table, const uint8_t p[8], const uint8_t *last,
                      size_t llen)
{
    return llen ? st_iter_after(it, t->txn, t->e, table, p, 8, last, llen)
                : st_iter_hot(it, t->txn, t->e, table, p, 8);
}

/* The next batch of the agent's memberships (up to AGENTQ_BATCH): the
** queues in qs and, when ms is not NULL, the memberships in ms; *n of them.
** last/llen carry the place from one batch to the next (llen 0 at first):
** read a batch, then write, since the tree changes under a cursor
** otherwise, and go on after it (starting from the first membership each
** time made an agent in thousands of queues cost their square). */
#define AGENTQ_BATCH 64
static int agentq_batch(wtx *t, uint32_t agent, uint8_t last[12], size_t *llen,
                        uint32_t qs[AGENTQ_BATCH], member_rec *ms, int *n)
{
    st_iter it;
    uint8_t p[8];
    int rc;
    *n = 0;
    key_acct2(p, t->acct, agent);
    for (rc = iter_batch(&it, t, DB_AGENTQ, p, last, *llen); rc == 0 && *n < AGENTQ_BATCH;
         rc = st_iter_next(&it)) {
        if (it.klen != 12) continue;
        qs[*n] = be32(it.key + 8);
        if (ms && dec_member(it.v.mv_data, it.v.mv_size, &ms[*n])) {
            rc = SB_ESTORE;
            break;
        }
        memcpy(last, it.key, 12);
        *llen = 12;
        (*n)++;
    }
    st_iter_close(&it);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int agent_set_avail(wtx *t, agent_rec *a, int available)
{
    uint8_t last[12];
    size_t llen = 0;
    for (;;) {
        uint32_t qs[AGENTQ_BATCH];
        member_rec ms[AGENTQ_BATCH];
        int n, rc = agentq_batch(t, a->num, last, &llen, qs, ms, &n);
        for (int i = 0; i < n && !rc; i++)
            rc = avail_one(t, a, qs[i], &ms[i], available && !ms[i].paused);
        if (rc || n < AGENTQ_BATCH) return rc;
    }
}

/* The agent let a ring go at `now` (0 in missed_at means never). */
static void agent_missed(agent_rec *a, int64_t now)
{
    a->missed_at = now > 0 ? now : 1;
}

/* Move an agent to a new status, keeping the avail index and timers right. */
static int agent_change(wtx *t, agent_rec *a, int status, const char *reason, const char *call)
{
    int old = a->status;
    int rc;
    if (old == SB_AGENT_WRAP_UP && a->wrapup_due && status != SB_AGENT_WRAP_UP) {
        uint8_t ref[4];
        put_be32(ref, a->num);
        if ((rc = timer_del(t, a->wrapup_due, TM_WRAPUP, ref, 4))) return rc;
        a->wrapup_due = 0;
    }
    a->status = (uint8_t)status;
    a->status_since = t->now;
    str_copy(a->reason, sizeof a->reason, reason ? reason : "");
    reason_clean(a->reason, sizeof a->reason); /* stored: no number, no control character */
    /* A status asked for on a call waits through the call and its wrap-up;
    ** any other status takes its place (agent_back, ev_agent_status). */
    if (status != SB_AGENT_ON_CALL && status != SB_AGENT_WRAP_UP) {
        a->has_next = a->next_status = 0;
        a->next_reason[0] = 0;
    }
    str_copy(a->call, sizeof a->call, call ? call : "");
    /* Idle time counts from the end of the last call or absence, not from a
    ** ring that went unanswered (nor from being available again). */
    if (status == SB_AGENT_AVAILABLE && old != SB_AGENT_RESERVED && old != SB_AGENT_AVAILABLE)
        a->idle_since = t->now;
    /* Back from a pause or from offline (an automatic pause for missed
    ** rings lifted, say): the misses in a row start again from none, or a
    ** policy pausing at a count of misses would pause the agent again at
    ** the next decision, never to ring it. */
    if (status == SB_AGENT_AVAILABLE && (old == SB_AGENT_PAUSED || old == SB_AGENT_OFFLINE))
        a->no_answers = 0;
    if ((rc = st_agent_save(t->txn, t->e, t->acct, a))) return rc;
    int was = old == SB_AGENT_AVAILABLE, is = status == SB_AGENT_AVAILABLE;
    if ((was != is || is) && (rc = agent_set_avail(t, a, is))) return rc;
    return agent_left(t, a, old);
}

static void act_agent(wtx *t, const agent_rec *a, const char *reason)
{
    sb_action *x = act(t, SB_ACT_AGENT, NULL, a->id, NULL, reason && *reason ? reason : NULL);
    if (x) x->status = agent_status_name(a->status);
}

/* The agent's call and its wrap-up are over: it takes the status it asked
** for on the call, which an AGENT action reports with that status's
** reason, or else becomes available, reported as `why` (NULL: no action)
** and offered to waiting calls when `route` says so. */
static int agent_back(wtx *t, agent_rec *a, const char *why, int route)
{
    int rc;
    if (a->has_next) {
        char reason[sizeof a->next_reason];
        memcpy(reason, a->next_reason, sizeof reason);
        if ((rc = agent_change(t, a, a->next_status, reason, NULL))) return rc;
        act_agent(t, a, reason);
        return 0;
    }
    if ((rc = agent_change(t, a, SB_AGENT_AVAILABLE, NULL, NULL))) return rc;
    if (why) act_agent(t, a, why);
    return route ? dispatch_agent(t, a) : 0;
}

/* --- candidates and routing ---------------------------------------------- */

struct cand_set {
    pol_cand *c;
    avail_rec *av;
    uint8_t *stale; /* cands_update: entries to decode again */
    size_t n, cap;
    sb_buf docs; /* documents loaded lazily (offsets survive reallocation) */
    wtx *t;
    /* Whose they are: the account's queue, as the range cache's copy of its
    ** available agents was at version ver (0: gather them all next time). */
    uint32_t acct, queue;
    uint64_t ver;
};
typedef struct cand_set cand_set;

void events_free(sb_engine *e)
{
    if (!e->cands) return;
    free(e->cands->c);
    free(e->cands->av);
    free(e->cands->stale);
    buf_free(&e->cands->docs);
    free(e->cands);
    e->cands = NULL;
}

static int cand_load(void *arg, pol_cand *c)
{
    cand_set *cs = arg;
    agent_rec a = {0};
    int rc = st_agent_doc_load(cs->t->txn, cs->t->e, cs->t->acct, c->num, &a.doc);
    if (rc == 0) {
        /* Each document gets its own heap copy: pointers must stay put. */
        char *copy = malloc(a.doc.len + 1);
        if (!copy)
            rc = SB_ENOMEM;
        else {
            memcpy(copy, a.doc.p ? a.doc.p : "", a.doc.len);
            copy[a.doc.len] = 0;
            c->config = copy;
            c->config_len = a.doc.len;
        }
    }
    agent_free(&a);
    return rc;
}

static void cands_release(cand_set *cs)
{
    for (size_t i = 0; i < cs->n; i++) {
        if (cs->c[i].config) free((void *)cs->c[i].config);
        cs->c[i].config = NULL;
    }
}

static int cands_grow(cand_set *cs)
{
    size_t cap = cs->cap ? cs->cap * 2 : 64;
    pol_cand *nc = realloc(cs->c, cap * sizeof *nc);
    if (!nc) return SB_ENOMEM;
    cs->c = nc;
    avail_rec *na = realloc(cs->av, cap * sizeof *na);
    if (!na) return SB_ENOMEM;
    /* The candidates' ids point into av, which may have moved. */
    for (size_t i = 0; i < cs->n; i++)
        cs->c[i].id = na[i].id;
    cs->av = na;
    uint8_t *ns = realloc(cs->stale, cap);
    if (!ns) return SB_ENOMEM;
    cs->stale = ns;
    cs->cap = cap;
    return 0;
}

/* Candidate i from an availability entry (key with its table byte). */
static int cand_fill(cand_set *cs, size_t i, const MDB_val *k, const MDB_val *v)
{
    avail_rec *a = &cs->av[i];
    int rc = dec_avail(v->mv_data, v->mv_size, a);
    if (rc) return rc;
    /* Every field set one by one, none left out: a memset of the struct
    ** (or an initializer, which zeroes it first) compiles to `rep stos`,
    ** whose start-up cost per candidate was close to half of this
    ** loop's time (perf, 50 agents). */
    pol_cand *c = &cs->c[i];
    c->id = a->id;
    c->num = be32((const uint8_t *)k->mv_data + 9);
    c->idle_since = a->idle_since;
    c->last_call = a->last_call;
    c->talk_ms = a->talk_ms;
    c->calls_taken = a->calls_taken;
    c->no_answers = a->no_answers;
    c->missed_at = a->missed_at;
    c->weight = a->weight;
    c->tier = a->m.tier;
    c->position = a->m.position;
    c->penalty = a->m.penalty;
    c->member_weight = a->m.weight;
    c->devices = a->devices & 7u;
    c->plain_devices = (a->devices & AV_PLAIN_DEVICES) != 0;
    c->config = NULL;
    c->config_len = 0;
    c->doc = NULL;
    c->load = cand_load;
    c->load_arg = cs;
    cs->stale[i] = 0;
    return 0;
}

/* The candidates kept from this queue's last gather brought up to date
** from the edits of its range since (an offer reads 50 agents where a call
** cycle changes one or two of them): 0, or 1 when that cannot be done
** (the candidates are then gathered again). */
static int cands_update(wtx *t, const uint8_t p[8], uint32_t queue, cand_set *cs)
{
    st_edit ed[ST_EDITS_MAX];
    uint64_t now;
    size_t n;
    if (!cs->ver || cs->acct != t->acct || cs->queue != queue) return 1;
    int ne = st_range_edits(t->txn, t->e, DB_AVAIL, p, cs->ver, ed, &now, &n);
    if (ne < 0) return 1;
    cs->ver = 0; /* until it is done */
    for (int i = 0; i < ne; i++) {
        size_t at = ed[i].at, move = cs->n - at - (ed[i].op == ST_EDIT_DEL);
        if (at > cs->n || (at == cs->n && ed[i].op != ST_EDIT_INS)) return 1;
        if (ed[i].op == ST_EDIT_DEL && i + 1 < ne && ed[i + 1].op == ST_EDIT_INS &&
            ed[i + 1].at == at) {
            /* Out and back in at the same place (an agent rung, then free
            ** again): that entry rewritten, nothing moves. */
            cs->stale[at] = 1;
            i++;
        } else if (ed[i].op == ST_EDIT_DEL) {
            memmove(cs->c + at, cs->c + at + 1, move * sizeof *cs->c);
            memmove(cs->av + at, cs->av + at + 1, move * sizeof *cs->av);
            memmove(cs->stale + at, cs->stale + at + 1, move);
            cs->n--;
        } else if (ed[i].op == ST_EDIT_INS) {
            if (cs->n == cs->cap && cands_grow(cs)) return 1;
            memmove(cs->c + at + 1, cs->c + at, move * sizeof *cs->c);
            memmove(cs->av + at + 1, cs->av + at, move * sizeof *cs->av);
            memmove(cs->stale + at + 1, cs->stale + at, move);
            cs->stale[at] = 1;
            cs->n++;
        } else {
            cs->stale[at] = 1;
        }
    }
    if (cs->n != n) return 1;
    for (size_t i = 0; i < cs->n; i++) {
        MDB_val k, v;
        if (cs->stale[i] && (st_range_entry(t->txn, t->e, DB_AVAIL, p, i, &k, &v) ||
                             k.mv_size != 13 || cand_fill(cs, i, &k, &v)))
            return 1;
        cs->c[i].id = cs->av[i].id; /* moved with the entries */
        cs->c[i].config = NULL;
        cs->c[i].config_len = 0;
        cs->c[i].doc = NULL;
    }
    cs->ver = now;
    return 0;
}

static int cands_gather(wtx *t, uint32_t queue, cand_set *cs)
{
    sb_engine *e = t->e;
    st_iter it;
    cs->t = t;
    uint8_t p[8];
    int rc, whole = 1;
    key_acct2(p, t->acct, queue);
    if (cands_update(t, p, queue, cs) == 0) return 0;
    cs->n = 0;
    cs->ver = 0;
    for (rc = st_iter_hot(&it, t->txn, e, DB_AVAIL, p, 8); rc == 0; rc = st_iter_next(&it)) {
        if (it.klen != 12) {
            whole = 0; /* the candidates are not the range: not kept */
            continue;
        }
        if (cs->n == cs->cap && (rc = cands_grow(cs))) break;
        if ((rc = cand_fill(cs, cs->n, &it.k, &it.v))) break;
        cs->n++;
    }
    st_iter_close(&it);
    if (rc != MDB_NOTFOUND) return rc;
    cs->acct = t->acct;
    cs->queue = queue;
    cs->ver = whole ? st_range_version(t->txn, e, DB_AVAIL, p) : 0;
    return 0;
}

/* The policy's key-value store lives in LMDB: acct, policy name, 0, key. */
typedef struct kv_ctx {
    wtx *t;
    const char *policy;
} kv_ctx;

static int kv_get(void *arg, const char *key, size_t klen, char *type, sb_buf *val)
{
    kv_ctx *kc = arg;
    uint8_t k[4 + SB_NAME_MAX + 1 + 64];
    MDB_val v;
    if (klen > 64) return SB_EINVAL;
    int rc = st_get(kc->t->txn, kc->t->e, DB_KV, k,
                    st_kv_key(k, kc->t->acct, kc->policy, key, klen), &v);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc || v.mv_size < 1) return SB_ESTORE;
    *type = ((char *)v.mv_data)[0];
    val->len = 0;
    if (buf_put(val, (char *)v.mv_data + 1, v.mv_size - 1)) return SB_ENOMEM;
    return 1;
}

/* The keys in the store: a count kept under the empty key (no ctx key is
** empty), counted once for a store an earlier version wrote (and kept from
** then on, also when the store is full already). */
static int kv_count(kv_ctx *kc, uint64_t *n)
{
    uint8_t k[4 + SB_NAME_MAX + 1];
    size_t kl = st_kv_key(k, kc->t->acct, kc->policy, "", 0);
    MDB_val v;
    int rc = st_get(kc->t->txn, kc->t->e, DB_KV, k, kl, &v);
    if (rc == 0 && v.mv_size == 8) {
        *n = be64(v.mv_data);
        return 0;
    }
    if (rc && rc != MDB_NOTFOUND) return rc;
    st_iter it;
    *n = 0;
    for (rc = st_iter_open(&it, kc->t->txn, kc->t->e, DB_KV, k, kl); rc == 0;
         rc = st_iter_next(&it))
        *n += it.klen > kl;
    st_iter_close(&it);
    if (rc != MDB_NOTFOUND) return rc;
    uint8_t nv[8];
    put_be64(nv, *n);
    return st_put(kc->t->txn, kc->t->e, DB_KV, k, kl, nv, 8);
}

static long kv_room(void *arg)
{
    uint64_t n;
    int rc = kv_count(arg, &n);
    if (rc) return rc < 0 ? rc : SB_ESTORE;
    return n >= POL_KV_KEYS_MAX ? 0 : (long)(POL_KV_KEYS_MAX - n);
}

/* A call's writes added n keys (or removed -n): the count follows, once. */
static int kv_added(void *arg, long n)
{
    kv_ctx *kc = arg;
    uint64_t have;
    int rc = kv_count(kc, &have);
    if (rc) return rc;
    have = n >= 0 ? have + (uint64_t)n : have > (uint64_t)-n ? have - (uint64_t)-n : 0;
    uint8_t k[4 + SB_NAME_MAX + 1], nv[8];
    put_be64(nv, have);
    return st_put(kc->t->txn, kc->t->e, DB_KV, k, st_kv_key(k, kc->t->acct, kc->policy, "", 0), nv,
                  8);
}

static int kv_set(void *arg, const char *key, size_t klen, char type, const void *val, size_t vlen)
{
    kv_ctx *kc = arg;
    uint8_t k[4 + SB_NAME_MAX + 1 + 64];
    if (klen < 1 || klen > 64 || vlen > 1024) return SB_EINVAL;
    size_t kl = st_kv_key(k, kc->t->acct, kc->policy, key, klen);
    if (!type) return st_del(kc->t->txn, kc->t->e, DB_KV, k, kl);
    uint8_t v[1 + 1024];
    v[0] = (uint8_t)type;
    memcpy(v + 1, val, vlen);
    return st_put(kc->t->txn, kc->t->e, DB_KV, k, kl, v, vlen + 1);
}

/* The decision of the queue's fallback, in C, when the policy failed. */
static int tries_of(const call_rec *c, uint32_t agent)
{
    for (int i = 0; i < c->ntried; i++)
        if (c->tried[i].agent == agent) return c->tried[i].n;
    return 0;
}

/* How the fallback orders agents, as the stock policies do: those this call
** has rung least first, then the lowest tier, then the lowest penalty (a
** queue's backup tier rings once its first has let the call ring, not while
** the first has agents free); for longest_idle then the longest idle, then
** the list's order. <0, 0, >0 as a comes before, with, after b. */
static int fallback_cmp(const call_rec *c, const pol_cand *cs, size_t a, size_t b, int fb)
{
    int ta = tries_of(c, cs[a].num), tb = tries_of(c, cs[b].num);
    if (ta != tb) return ta < tb ? -1 : 1;
    if (cs[a].tier != cs[b].tier) return cs[a].tier < cs[b].tier ? -1 : 1;
    if (cs[a].penalty != cs[b].penalty) return cs[a].penalty < cs[b].penalty ? -1 : 1;
    if (fb == FB_RING_ALL) return 0;
    if (cs[a].idle_since != cs[b].idle_since) return cs[a].idle_since < cs[b].idle_since ? -1 : 1;
    return a < b ? -1 : a > b;
}

static void fallback_decide(const queue_rec *q, const call_rec *c, int fb, pol_cand *cs, size_t n,
                            int64_t now, pol_decision *d)
{
    d->nring = 0;
    d->sequence = 0;
    d->step = 0;
    d->timeout = (int)q->ring_timeout;
    d->npause = 0;
    if (fb == FB_REJECT) {
        d->kind = DEC_REJECT;
        strcpy(d->reason, "policy failed");
        return;
    }
    if (n == 0 || fb == FB_WAIT) {
        d->kind = DEC_WAIT;
        d->wait = 0;
        return;
    }
    d->kind = DEC_RING;
    /* The first in that order (ring_all: all that come with it), each on its
    ** default device (the one its schedule allows now, else any it has). */
    size_t best = n;
    for (size_t i = 0; i < n; i++)
        if (cs[i].devices && (best == n || fallback_cmp(c, cs, i, best, fb) < 0)) best = i;
    for (size_t i = best; i < n && d->nring < POL_MAX_RING; i++) {
        if (!cs[i].devices || fallback_cmp(c, cs, i, best, fb) != 0) continue;
        int dev = pol_default_device(&cs[i], now);
        if (!dev) continue;
        d->ring[d->nring].cand = (int)i;
        d->ring[d->nring++].dev = dev;
    }
    if (d->nring == 0) {
        d->kind = DEC_WAIT;
        d->wait = 0;
    }
}

/* Seconds since the last of c's ring attempts that has ended ended, or -1
** when none has (call.since_last_ring). */
static double since_last_ring(const call_rec *c, int64_t now)
{
    int64_t end = -1;
    for (int i = 0; i < c->natt; i++)
        if (c->att[i].outcome && c->att[i].start + c->att[i].dur_ms > end)
            end = c->att[i].start + c->att[i].dur_ms;
    return end < 0 ? -1 : (double)(now > end ? now - end : 0) / 1000.0;
}

static const char *agent_id_of(wtx *t, uint32_t num, char *buf, size_t cap)
{
    agent_rec a = {0};
    const char *r = NULL;
    if (num && st_agent_load(t->txn, t->e, t->acct, num, &a) == 0) {
        str_copy(buf, cap, a.id);
        r = buf;
    }
    agent_free(&a);
    return r;
}

/* call.previous_agent, looked up only when a policy reads it. */
typedef struct history_ctx {
    wtx *t;
    call_rec *c;
    int done;
    char id[SB_ID_MAX + 1];
} history_ctx;

static const char *call_history(void *arg)
{
    history_ctx *h = arg;
    if (!h->done) {
        h->done = 1;
        if (!agent_id_of(h->t, rec_prev_agent(h->t, h->c), h->id, sizeof h->id)) h->id[0] = 0;
    }
    return h->id[0] ? h->id : NULL;
}

/* 1 when the agent is a member of q not paused there, 0 when not, else an
** error. */
static int is_member(wtx *t, const queue_rec *q, const agent_rec *a)
{
    uint8_t k[12];
    MDB_val v;
    member_rec m;
    int rc = st_get(t->txn, t->e, DB_MEMBERS, k, key_acct3(k, t->acct, q->num, a->num), &v);
    if (rc) return rc == MDB_NOTFOUND ? 0 : rc;
    return dec_member(v.mv_data, v.mv_size, &m) ? SB_ESTORE : !m.paused;
}

/* Ring targets beside those ringing already: reserve each agent that can be
** rung now (with `member`, only a member of q still: a list the policy
** gave earlier), emit RING (for `timeout` seconds, as part of the call's
** ring attempt `attempt`), note the attempt. 0 when one or more rang, 1
** when nobody could be rung. */
static int ring_add(wtx *t, call_rec *c, queue_rec *q, const ring_target *tg, int n, int timeout,
                    uint32_t attempt, int member)
{
    int rc = 0, rung = 0;
    for (int i = 0; i < n; i++) {
        agent_rec a = {0};
        if ((rc = st_agent_load(t->txn, t->e, t->acct, tg[i].agent, &a))) {
            agent_free(&a);
            if (rc == SB_ENOTFOUND) continue;
            return rc;
        }
        int di = dev_index(tg[i].dev);
        if (a.status != SB_AGENT_AVAILABLE || di < 0 || !a.uri[di][0] ||
            (member && (rc = is_member(t, q, &a)) != 1)) {
            agent_free(&a);
            if (rc < 0) return rc;
            rc = 0;
            continue;
        }
        rc = agent_change(t, &a, SB_AGENT_RESERVED, NULL, c->id);
        if (!rc) {
            sb_action *x = act(t, SB_ACT_RING, c->id, a.id, q->id, NULL);
            if (x) {
                x->device = pol_dev_name(tg[i].dev);
                x->uri = res_str(t->res, a.uri[di]);
                x->timeout_s = timeout;
                x->attempt = attempt;
            }
            c->ring[c->nring++] = tg[i];
            call_tried(c, a.num);
            c->last_agent = a.num;
            /* The first MAX_ATTEMPTS - 1 and the latest: the latest is the
            ** one attempt_end closes and since_last_ring measures from. */
            attempt_rec *at = &c->att[c->natt < MAX_ATTEMPTS ? c->natt++ : MAX_ATTEMPTS - 1];
            *at = (attempt_rec){.agent = a.num, .dev = tg[i].dev, .start = t->now};
            rung++;
        }
        agent_free(&a);
        if (rc) return rc;
    }
    return rung ? 0 : 1;
}

/* Someone rang: the call is ringing, one attempt more, until `timeout`. */
static int ring_begin(wtx *t, call_rec *c, int timeout)
{
    c->attempts++;
    c->state = CALL_RINGING;
    c->ring_start = t->now;
    c->ring_timeout = timeout;
    c->ring_due = t->now + (int64_t)timeout * 1000;
    return timer_set(t, c->ring_due, TM_RING, c->id, strlen(c->id));
}

/* Ring the call's targets: reserve each agent, emit RING, arm the timeout.
** 1 when nobody could be rung. */
static int ring_targets(wtx *t, call_rec *c, queue_rec *q, const ring_target *tg, int n,
                        int timeout)
{
    c->nring = 0;
    int rc = ring_add(t, c, q, tg, n, timeout, c->attempts + 1, 0);
    return rc ? rc : ring_begin(t, c, timeout);
}

/* Ring the next agent of the call's list (seq, from seqpos) who can be
** rung, beside those ringing now; those who cannot (no longer available, or
** no longer a member of the queue: the list was the policy's when it
** decided) are skipped. 0 when one
** rang, 1 when the list ran out. Sequences and progressive rings both walk
** the list this way: a sequence's next agent is a new attempt (ring_begin
** follows), a progressive ring's joins the one ringing (`attempt`). */
static int ring_next(wtx *t, call_rec *c, queue_rec *q, int timeout, uint32_t attempt)
{
    int rc = 1;
    while (rc == 1 && c->seqpos < c->nseq)
        rc = ring_add(t, c, q, &c->seq[c->seqpos++], 1, timeout, attempt, 1);
    return rc;
}

/*
** A progressive ring keeps its state in the fields a sequence uses, so the
** live call is stored as it always was: seq holds the agents in order and
** seqpos the next to join; ring_start is when the last one joined and
** ring_timeout the step, so the next joins at ring_start + ring_timeout, as
** the next of a sequence does. What differs is ring_due: a sequence's ring
** ends when the next agent starts, a progressive ring's at the end of the
** whole ring, later, and the agents who joined ring on until then. Once the
** next step would come at or after the end nobody else joins (seqpos goes to
** nseq), so agents still to join always mean a progressive ring. Its steps
** are TM_RING timers at their own times; the one that is due when the call
** has that step next fires, any other is stale.
*/
static int64_t step_due(const call_rec *c)
{
    return c->ring_start + (int64_t)c->ring_timeout * 1000;
}

static int progressive_pending(const call_rec *c)
{
    return c->seqpos < c->nseq && step_due(c) < c->ring_due;
}

/* An agent joined a progressive ring: arm the next step, if one comes
** before the end. */
static int progressive_arm(wtx *t, call_rec *c)
{
    if (step_due(c) >= c->ring_due) c->nseq = c->seqpos;
    if (c->seqpos == c->nseq) return 0;
    return timer_set(t, step_due(c), TM_RING, c->id, strlen(c->id));
}

/* Start a progressive ring: the first agent of the list who can be rung,
** for the whole ring. 1 when nobody could be rung. */
static int ring_progressive(wtx *t, call_rec *c, queue_rec *q, int timeout, int step)
{
    c->nring = 0;
    int rc = ring_next(t, c, q, timeout, c->attempts + 1);
    if (rc) return rc;
    if ((rc = ring_begin(t, c, timeout))) return rc;
    c->ring_timeout = step;
    return progressive_arm(t, c);
}

/* Append s to buf (capacity cap, length *o), truncating; buf stays a string. */
static void app(char *buf, size_t cap, size_t *o, const char *s)
{
    size_t n = strlen(s);
    if (*o + n >= cap) n = cap - 1 - *o;
    memcpy(buf + *o, s, n);
    *o += n;
    buf[*o] = 0;
}

static const char *kind_detail(const pol_decision *d, pol_cand *cs, char *buf, size_t cap)
{
    switch (d->kind) {
    case DEC_RING: { /* every decision writes this: no printf */
        size_t o = 0;
        app(buf, cap, &o, d->step ? "ring progressive" : d->sequence ? "ring sequence" : "ring");
        if (d->step) { /* rare enough for a printf */
            char every[24];
            snprintf(every, sizeof every, " every %ds", d->step);
            app(buf, cap, &o, every);
        }
        for (int i = 0; i < d->nring; i++) {
            app(buf, cap, &o, i ? ", " : " ");
            app(buf, cap, &o, cs[d->ring[i].cand].id);
            app(buf, cap, &o, "/");
            app(buf, cap, &o, pol_dev_name(d->ring[i].dev));
        }
        break;
    }
    case DEC_WAIT:
        snprintf(buf, cap, "wait %d", d->wait);
        break;
    case DEC_MOVE:
        snprintf(buf, cap, "move to %s: %s", d->queue, d->reason);
        break;
    default:
        snprintf(buf, cap, "reject: %s", d->reason);
        break;
    }
    return buf;
}

static int finish_call(wtx *t, call_rec *c, queue_rec *q, const char *outcome,
                       const agent_rec *agent, const char *reason, int by);

/* Move a waiting call to another queue of the account and route it there. */
/* Is the queue at its max length? A count that looks full is checked
** against the waiting list first (older versions let it drift up). */
static int queue_full(wtx *t, queue_rec *q, int *full)
{
    int rc = 0;
    if (q->max_length && q->waiting >= q->max_length) rc = waiting_recount(t, q);
    *full = !rc && q->max_length && q->waiting >= q->max_length;
    return rc;
}

static int move_call(wtx *t, call_rec *c, queue_rec *q, const char *target, const char *reason);

/* Do the overflows from the full queue q lead back to a queue passed
** already, every one of them full? Then a call arriving at q has nowhere to
** go: turned away as full at once, not sent round the loop until it has
** moved too often. At most POL_MAX_MOVES queues are followed. */
static int overflow_loops_full(wtx *t, const queue_rec *q, int *loop)
{
    uint32_t seen[POL_MAX_MOVES + 1];
    int n = 0, rc = 0;
    char next[SB_ID_MAX + 1];
    seen[n++] = q->num;
    str_copy(next, sizeof next, q->overflow);
    *loop = 0;
    while (next[0] && n <= POL_MAX_MOVES && !*loop) {
        queue_rec o = {0};
        int full = 0;
        rc = st_queue_by_id(t->txn, t->e, t->acct, next, &o);
        if (rc == 0) rc = queue_full(t, &o, &full);
        if (rc == 0 && full) {
            for (int i = 0; i < n; i++)
                if (seen[i] == o.num) *loop = 1;
            seen[n++] = o.num;
            str_copy(next, sizeof next, o.overflow);
        }
        queue_free(&o);
        if (rc == SB_ENOTFOUND) return 0; /* move_call says so */
        if (rc || !full) return rc;
    }
    return 0;
}

/* A trace entry of the engine's own, not a policy's decision: no policy,
** no version, no fallback (API.md, GET /v1/calls/{id}). */
static void engine_trace(wtx *t, call_rec *c, int kind, const char *detail)
{
    call_trace(c, t->now, kind, 0, "", "", detail);
}

static int overflow_had_call(wtx *t, const call_rec *c, const char *target, int *had);

/* Turn the call away saying `why`: the REJECT action, out of q's line (when
** `in_line`), and its record, which keeps the reason. */
static int reject_call(wtx *t, call_rec *c, queue_rec *q, const char *why, int in_line)
{
    int rc;
    act(t, SB_ACT_REJECT, c->id, NULL, q->id, why);
    if (in_line && (rc = waiting_remove(t, c, q))) return rc;
    return finish_call(t, c, q, "rejected", NULL, why, 0);
}

/* The call leaves q for q's overflow, or is turned away saying `cause`: when
** q has none, when its overflows lead round full queues (`loop`), or when
** its overflow had the call already (the caller has had it). `label` begins
** the trace entries; `in_line`: the call is in q's line, taken out first. */
static int overflow_or_reject(wtx *t, call_rec *c, queue_rec *q, const char *cause,
                              const char *label, int loop, int in_line)
{
    int had = 0, rc = q->overflow[0] && !loop ? overflow_had_call(t, c, q->overflow, &had) : 0;
    if (rc) return rc;
    char detail[128 + SB_ID_MAX], why[128 + SB_ID_MAX];
    if (q->overflow[0] && !loop && !had) {
        snprintf(detail, sizeof detail, "%s: overflow to %s", label, q->overflow);
        engine_trace(t, c, TR_MOVE, detail);
        return move_call(t, c, q, q->overflow, cause);
    }
    snprintf(detail, sizeof detail, "%s: rejected%s", label,
             had ? " (its overflow queue had the call already)" : "");
    if (had)
        snprintf(why, sizeof why, "%s (overflow queue '%s' had the call already)", cause,
                 q->overflow);
    else
        snprintf(why, sizeof why, "%s", cause);
    engine_trace(t, c, TR_REJECT, detail);
    return reject_call(t, c, q, why, in_line);
}

/* A call arriving at a full queue (offered, moved or overflowing to it):
** on to that queue's overflow, or turned away: when the overflows lead
** round a loop of full queues, or back to a queue that had the call already
** (it would wait there a second time: the caller has had it). */
static int arrive_full(wtx *t, call_rec *c, queue_rec *q)
{
    int loop = 0, rc = q->overflow[0] ? overflow_loops_full(t, q, &loop) : 0;
    return rc ? rc : overflow_or_reject(t, c, q, "queue full", "queue full", loop, 0);
}

/* Move c from q to the queue `target` (a policy's move or an overflow). */
static int move_call(wtx *t, call_rec *c, queue_rec *q, const char *target, const char *reason)
{
    queue_rec nq = {0};
    int rc = st_queue_by_id(t->txn, t->e, t->acct, target, &nq);
    if (rc == SB_ENOTFOUND || c->moves >= POL_MAX_MOVES || (rc == 0 && nq.num == q->num)) {
        queue_free(&nq);
        char why[160];
        /* A policy's move never gets here: a missing queue or its own is an
        ** invalid decision (views.c, decide), which gets the fallback. */
        if (rc == SB_ENOTFOUND) { /* an overflow setting older versions let dangle */
            snprintf(why, sizeof why, "overflow queue '%s' does not exist", target);
        } else {
            snprintf(why, sizeof why, "%s",
                     c->moves < POL_MAX_MOVES ? "moved to its own queue" : "too many queue moves");
        }
        return reject_call(t, c, q, why, 1);
    }
    int full = 0;
    if (rc || (rc = queue_full(t, &nq, &full))) {
        queue_free(&nq);
        return rc;
    }
    if ((rc = waiting_remove(t, c, q)) || (rc = call_timer_del(t, &c->wake_due, TM_WAKE, c)) ||
        (rc = call_timer_del(t, &c->maxwait_due, TM_MAXWAIT, c)))
        goto out;
    if ((rc = rec_aggr_leave(t, c, q))) goto out;
    c->queue = nq.num;
    c->queued = t->now;
    c->moves++;
    act(t, SB_ACT_OVERFLOW, c->id, NULL, nq.id, reason);
    if (full) { /* as an offer to it would */
        rc = arrive_full(t, c, &nq);
        goto out;
    }
    if (nq.max_wait) {
        c->maxwait_due = t->now + (int64_t)nq.max_wait * 1000;
        if ((rc = timer_set(t, c->maxwait_due, TM_MAXWAIT, c->id, strlen(c->id)))) goto out;
    }
    if ((rc = waiting_add(t, c, &nq))) goto out;
    rc = route_call(t, c, &nq, 0);
out:
    queue_free(&nq);
    return rc;
}

/* Max wait ran out, or the call came to a full queue, and the queue
** overflows to `target`: did that queue have the call already, on its way
** here? Then sending it back would pass
** the caller round a loop of queues overflowing into each other, one max
** wait each, until POL_MAX_MOVES turned it away as "too many queue moves".
**
** The call keeps no list of the queues it was in, so its way is worked
** out: every move of a call is counted, and an overflow (on max wait or
** from a full queue) goes to the overflow of the queue the call is in. A
** call that was never answered (so never transferred into a queue) and
** whose `moves` steps along the overflow settings from the queue it was
** offered to end at the queue it is in went that way, one queue a move:
** those queues had it (waited out, or passed as full). Where the steps
** end elsewhere (a policy moved it off the chain, overflow settings
** changed since) or the call was answered, *had stays 0 and the call
** overflows as before, POL_MAX_MOVES still bounding it. Only a policy moving
** the call off the chain and back to the very queue the chain reaches
** would make a queue count that never had the call: the call is turned
** away then, saying why, as it would be a loop later. A list of queues
** kept in the call (model.h) would tell it in every case. */
static int overflow_had_call(wtx *t, const call_rec *c, const char *target, int *had)
{
    *had = 0;
    if (c->moves == 0 || c->moves > POL_MAX_MOVES || c->answered) return 0;
    uint32_t way[POL_MAX_MOVES + 1];
    way[0] = c->first_queue;
    for (int i = 1; i <= c->moves; i++) {
        queue_rec o = {0}, n = {0};
        int rc = st_queue_load(t->txn, t->e, t->acct, way[i - 1], &o);
        if (rc == 0 && o.overflow[0]) rc = st_queue_by_id(t->txn, t->e, t->acct, o.overflow, &n);
        int known = rc == 0 && o.overflow[0];
        way[i] = n.num;
        queue_free(&o);
        queue_free(&n);
        if (rc && rc != SB_ENOTFOUND) return rc;
        if (!known) return 0;
    }
    if (way[c->moves] != c->queue) return 0;
    queue_rec tq = {0};
    int rc = st_queue_by_id(t->txn, t->e, t->acct, target, &tq);
    uint32_t tnum = tq.num;
    queue_free(&tq);
    if (rc) return rc == SB_ENOTFOUND ? 0 : rc; /* move_call says so */
    for (int i = 0; i < c->moves; i++)
        if (way[i] == tnum) *had = 1;
    return 0;
}

/* Apply the pauses a decision asked for (agents not being rung). An agent
** available or in wrap-up is paused, any other left as it is (one in
** wrap-up that asked on its call to pause or go offline too: that status
** is coming, and the agent's own word stands). An id that
** names no agent of the account (a typo, an agent deleted since) leaves
** the rest of the decision standing (views.c, pause_entry, says why), but
** not in silence: "pause: no agent 'a22' in this account" is added to the
** decision's trace detail (detail, cap) and logged with the policy. */
static int apply_pauses(wtx *t, const call_rec *c, const pol_decision *d, const char *policy,
                        char *detail, size_t cap)
{
    for (int i = 0; i < d->npause; i++) {
        agent_rec a = {0};
        const char *id = d->pause[i].agent;
        int rc = st_agent_by_id(t->txn, t->e, t->acct, id, &a);
        if (rc == 0 &&
            (a.status == SB_AGENT_AVAILABLE || (a.status == SB_AGENT_WRAP_UP && !a.has_next))) {
            rc = agent_change(t, &a, SB_AGENT_PAUSED, d->pause[i].reason, NULL);
            if (!rc) act_agent(t, &a, d->pause[i].reason);
        } else if (rc == SB_ENOTFOUND) {
            size_t o = strlen(detail);
            snprintf(detail + o, cap - o, "; pause: no agent '%s' in this account", id);
            sb_log(t->e, SB_LOG_WARN,
                   "policy decision: account=%s policy=%s version=%s call=%s: pause: no agent "
                   "'%s' in this account; the rest of the decision applies",
                   acct_id(t), policy, d->version[0] ? d->version : "-", c->id, id);
            rc = 0;
        }
        agent_free(&a);
        if (rc) return rc;
    }
    return 0;
}

/* ctx.queue.position and longest_wait, when a policy reads them: the calls
** in line ahead of this one (the line is in the order calls are served:
** priority, then time queued; a call not in line yet counts where it would
** go) and the earliest time queued of all of them, this call's included.
** A walk of the queue's line, so paid only by decisions that ask. */
typedef struct line_arg {
    wtx *t;
    const call_rec *c;
    uint32_t queue;
} line_arg;

/* pol_queue.queue_exists: has the call's account a queue `id`? */
static int queue_exists(void *arg, const char *id)
{
    const line_arg *la = arg;
    uint32_t num;
    int rc = st_name_get(la->t->txn, la->t->e, NK_QUEUE, la->t->acct, id, &num);
    return rc == 0 ? 1 : rc == MDB_NOTFOUND ? 0 : SB_ESTORE;
}

static int queue_line(void *arg, int *position, double *longest_wait)
{
    const line_arg *la = arg;
    wtx *t = la->t;
    uint8_t me[17 + SB_ID_MAX], p[8];
    size_t ml = waiting_key(me, t->acct, la->c);
    put_be32(me + 4, la->queue);
    int64_t first = la->c->queued;
    int ahead = 0, rc;
    st_iter it;
    for (rc = st_iter_open(&it, t->txn, t->e, DB_WAITING, p, key_acct2(p, t->acct, la->queue));
         rc == 0; rc = st_iter_next(&it)) {
        if (it.klen < 17) continue;
        int cmp = memcmp(it.key, me, it.klen < ml ? it.klen : ml);
        if (cmp == 0 && it.klen == ml) continue; /* this call */
        if (cmp < 0 || (cmp == 0 && it.klen < ml)) ahead++;
        int64_t queued = (int64_t)be64(it.key + 9);
        if (queued < first) first = queued;
    }
    st_iter_close(&it);
    if (rc != MDB_NOTFOUND) return SB_ESTORE;
    *position = ahead + 1;
    *longest_wait = t->now > first ? (double)(t->now - first) / 1000.0 : 0;
    return 0;
}

/* The members of the queue not offline, and those paused (ctx.queue's
** logged_in and paused): a walk of its members, read only when a policy
** asks (a queue "empty" as app_queue's joinempty and leavewhenempty, or
** mod_callcenter's max-wait-time-with-no-agent, see it). */
/* The queue's members logged in (not offline) and those of them paused
** (the agent, or its membership in this queue); with `stop`, the walk ends
** at the first member who could take a call (logged in, not paused):
** *logged_in > *paused says whether there is one. */
static int staff_walk(wtx *t, uint32_t queue, int stop, int *logged_in, int *paused)
{
    uint8_t p[8];
    st_iter it;
    int rc, in = 0, off = 0;
    for (rc = st_iter_open(&it, t->txn, t->e, DB_MEMBERS, p, key_acct2(p, t->acct, queue));
         rc == 0 && !(stop && in > off); rc = st_iter_next(&it)) {
        member_rec m;
        if (it.klen != 12 || dec_member(it.v.mv_data, it.v.mv_size, &m)) continue;
        agent_rec a = {0};
        int lr = st_agent_load(t->txn, t->e, t->acct, be32(it.key + 8), &a);
        if (lr == 0 && a.status != SB_AGENT_OFFLINE) {
            in++;
            off += a.status == SB_AGENT_PAUSED || m.paused;
        }
        agent_free(&a);
        if (lr && lr != SB_ENOTFOUND) {
            st_iter_close(&it);
            return SB_ESTORE;
        }
    }
    st_iter_close(&it);
    if (rc && rc != MDB_NOTFOUND) return SB_ESTORE;
    *logged_in = in;
    *paused = off;
    return 0;
}

static int queue_staff(void *arg, int *logged_in, int *paused)
{
    const line_arg *la = arg;
    return staff_walk(la->t, la->queue, 0, logged_in, paused);
}

/*
** Ask the queue's policy what to do with a waiting call and do it. `c` is
** in the WAITING state and in the waiting list. `announce`: the caller is
** the call's own event, which reports a WAIT decision as an action.
*/
/* Decide the call in queue q. skip: an agent left out of the candidates
** (0: none) unless it is the only one or the policy then rings nobody: the
** agent who transferred the call to q (ev_transfer). */
static int route_call_at(wtx *t, call_rec *c, queue_rec *q, int announce, uint32_t skip);
static int64_t call_latest(const call_rec *c);

/* A call is routed at its own time: the event's clock, raised to the
** latest step of that call only (time_floor). The event's time, raised to
** the later time of the call or agent it changes (a hangup of a call taken
** before the clock stepped back), is not the time of a waiting call the
** freed agent then takes: by it the call would have waited as long as the
** step, and be cut for its queue's max wait, its record's wait that much
** longer. Its time goes back to the event's after. */
static int route_call_skip(wtx *t, call_rec *c, queue_rec *q, int announce, uint32_t skip)
{
    int64_t was = t->now;
    if (t->clock && t->clock < t->now) {
        int64_t own = call_latest(c);
        t->now = own > t->clock ? own : t->clock;
    }
    int rc = route_call_at(t, c, q, announce, skip);
    t->now = was;
    return rc;
}

static int route_call_at(wtx *t, call_rec *c, queue_rec *q, int announce, uint32_t skip)
{
    sb_engine *e = t->e;
    /* Max wait passed: overflow or give up before asking anyone. Not back
    ** to a queue that had the call already (overflows in a loop): the
    ** caller has had every queue of the loop. */
    if (q->max_wait && t->now >= c->queued + (int64_t)q->max_wait * 1000) {
        char label[32];
        snprintf(label, sizeof label, "max wait %u s", (unsigned)q->max_wait);
        return overflow_or_reject(t, c, q, "max wait exceeded", label, 0, 1);
    }
    if (!e->cands && !(e->cands = calloc(1, sizeof *e->cands))) return SB_ENOMEM;
    cand_set *csp = e->cands; /* reused; only under the write lock */
    int rc = cands_gather(t, q->num, csp);
    if (rc) return rc;
    /* The agent left out goes back in its place for a second decision;
    ** otherwise csp->c is out of step with csp->av until a whole gather. */
    pol_cand left;
    size_t at = 0;
    int left_out = 0;
    for (size_t i = 0; skip && csp->n > 1 && i < csp->n; i++)
        if (csp->c[i].num == skip) {
            left = csp->c[i];
            memmove(csp->c + i, csp->c + i + 1, (csp->n - i - 1) * sizeof *csp->c);
            csp->n--;
            at = i;
            left_out = 1;
            break;
        }

    /* The call as the policy sees it. */
    const char *tried_ids[MAX_TRIED];
    int tried_n[MAX_TRIED];
    char tried_buf[MAX_TRIED][SB_ID_MAX + 1];
    size_t ntried = 0;
    for (int i = 0; i < c->ntried; i++) {
        const char *id = NULL;
        for (size_t j = 0; j < csp->n && !id; j++)
            if (csp->c[j].num == c->tried[i].agent) id = csp->c[j].id;
        if (!id) id = agent_id_of(t, c->tried[i].agent, tried_buf[i], sizeof tried_buf[i]);
        if (!id) continue;
        tried_ids[ntried] = id;
        tried_n[ntried++] = c->tried[i].n;
    }
    char last_buf[SB_ID_MAX + 1];
    history_ctx hist = {t, c, 0, ""};
    /* The numbers and personal attributes are stored sealed (records.c). */
    if ((rc = rec_open_call(e, t->acct, acct_id(t), c)))
        return res_err(t->res, rc, NULL, "call '%s': its sealed numbers do not open (%s)", c->id,
                       sb_code_name(rc));
    size_t attrs_len;
    const char *attrs = rec_call_attrs(c, &e->rec->tmp, &attrs_len);
    pol_call pc = {
        .id = c->id,
        .queue = q->id,
        .caller = c->caller[0] ? c->caller : NULL, /* withheld: nil to the policy */
        .called = c->called[0] ? c->called : NULL,
        .priority = c->priority,
        .waited = (double)(t->now - c->offered) / 1000.0,
        .queue_waited = (double)(t->now - c->queued) / 1000.0,
        .attempts = (int)c->attempts,
        .last_agent = agent_id_of(t, c->last_agent, last_buf, sizeof last_buf),
        .since_last_ring = since_last_ring(c, t->now),
        .history = call_history,
        .history_arg = &hist,
        .attrs = attrs,
        .attrs_len = attrs_len,
        .ntried = ntried,
        .tried_ids = tried_ids,
        .tried_n = tried_n,
        .moves = c->moves,
    };
    line_arg la = {t, c, q->num};
    /* The call counts among those waiting also when it is decided as it
    ** comes, before it is put in line (state 0: never in it). */
    pol_queue pq = {.id = q->id,
                    .waiting = (int)q->waiting + (c->state == 0),
                    .members = (int)q->members,
                    .available = (int)csp->n,
                    .ring_timeout = (int)q->ring_timeout,
                    .line = queue_line,
                    .line_arg = &la,
                    .staff = queue_staff,
                    .queue_exists = queue_exists};
    kv_ctx kc = {t, q->policy};
    pol_kv kv = {kv_get, kv_set, kv_room, kv_added, &kc};
    pol_decision *dp = &e->dec; /* pol_route clears it first */
    /* The engine's seed as it is: the policy host mixes in the call's id and
    ** attempt (views_route), as for a scenario case with that seed, so a
    ** case reproduces what ctx.random drew here. */
    rc = pol_route(e->pol, t->acct, acct_id(t), q->policy, &pc, csp->c, csp->n, &pq, &kv, t->now,
                   e->cfg.seed, dp);
    if (left_out && !rc && dp->kind == DEC_WAIT) {
        /* It would keep the call waiting beside that agent: decided again
        ** with every candidate, the first decision not applied (what it
        ** wrote to the policy's store stays). */
        memmove(csp->c + at + 1, csp->c + at, (csp->n - at) * sizeof *csp->c);
        csp->c[at] = left;
        csp->n++;
        pq.available = (int)csp->n;
        rc = pol_route(e->pol, t->acct, acct_id(t), q->policy, &pc, csp->c, csp->n, &pq, &kv,
                       t->now, e->cfg.seed, dp);
    } else if (left_out) {
        csp->ver = 0; /* the decision names candidates by place: gathered whole next time */
    }
    if (rc) {
        cands_release(csp);
        return rc;
    }
    /* Its reasons are stored (the trace, a paused agent's reason) and sent
    ** to the gateway: numbers in them read [number] from here on. (The
    ** call's own numbers make the decision invalid: views.c, decide.) */
    reason_clean(dp->reason, sizeof dp->reason);
    for (int i = 0; i < dp->npause; i++)
        reason_clean(dp->pause[i].reason, sizeof dp->pause[i].reason);
    /* The trace entry, written once the pauses are applied (they may add
    ** to its detail). */
    char detail[256], msg[256 + 512];
    int fell_back = dp->failed, tkind = TR_ERROR;
    const char *tpolicy = q->policy;
    if (fell_back) {
        fallback_decide(q, c, q->fallback, csp->c, csp->n, t->now, dp);
        snprintf(msg, sizeof msg, "%s; fallback %s: %s", dp->error, fallback_name(q->fallback),
                 kind_detail(dp, csp->c, detail, sizeof detail));
    } else {
        tkind = dp->kind == DEC_RING   ? TR_RING
                : dp->kind == DEC_WAIT ? TR_WAIT
                : dp->kind == DEC_MOVE ? TR_MOVE
                                       : TR_REJECT;
        if (dp->policy[0]) tpolicy = dp->policy;
        kind_detail(dp, csp->c, msg, sizeof msg);
    }
    pthread_mutex_lock(&e->stats_mu);
    e->st.dec_fallback += (uint64_t)fell_back;
    switch (dp->kind) {
    case DEC_RING:
        e->st.dec_ring++;
        break;
    case DEC_WAIT:
        e->st.dec_wait++;
        break;
    case DEC_MOVE:
        e->st.dec_move++;
        break;
    default:
        e->st.dec_reject++;
        break;
    }
    pthread_mutex_unlock(&e->stats_mu);

    /* Resolve ring targets to agent numbers before the candidates go. */
    ring_target tg[POL_MAX_RING];
    int ntg = 0;
    if (dp->kind == DEC_RING)
        for (int i = 0; i < dp->nring; i++) { /* none of them paused (views.c refuses it) */
            tg[ntg].agent = csp->c[dp->ring[i].cand].num;
            tg[ntg++].dev = (uint8_t)dp->ring[i].dev;
        }
    cands_release(csp);
    if ((rc = apply_pauses(t, c, dp, tpolicy, msg, sizeof msg))) return rc;
    call_trace(c, t->now, tkind, fell_back, tpolicy, dp->version, msg);

    switch (dp->kind) {
    case DEC_RING: {
        if (ntg == 0) goto wait;
        if ((rc = waiting_remove(t, c, q)) || (rc = call_timer_del(t, &c->wake_due, TM_WAKE, c)))
            return rc;
        c->nseq = 0;
        c->seqpos = 0;
        if (dp->sequence || dp->step) { /* one agent now, the others from the list */
            memcpy(c->seq, tg, sizeof(ring_target) * (size_t)ntg);
            c->nseq = (uint8_t)ntg;
        }
        if (dp->step) {
            rc = ring_progressive(t, c, q, dp->timeout, dp->step);
        } else if (dp->sequence) {
            c->nring = 0;
            rc = ring_next(t, c, q, dp->timeout, c->attempts + 1);
            if (rc == 0) rc = ring_begin(t, c, dp->timeout);
        } else {
            rc = ring_targets(t, c, q, tg, ntg, dp->timeout);
        }
        if (rc == 1) { /* nobody reachable after all: keep waiting */
            if ((rc = waiting_add(t, c, q))) return rc;
            return st_call_save(t->txn, e, t->acct, c);
        }
        if (rc) return rc;
        return st_call_save(t->txn, e, t->acct, c);
    }
    case DEC_MOVE:
        return move_call(t, c, q, dp->queue, dp->reason[0] ? dp->reason : POL_MOVE_REASON);
    case DEC_REJECT:
        return reject_call(t, c, q, dp->reason[0] ? dp->reason : POL_REJECT_REASON, 1);
    default:
    wait:
        if (c->state != CALL_WAITING && (rc = waiting_add(t, c, q))) return rc;
        if ((rc = call_timer_del(t, &c->wake_due, TM_WAKE, c))) return rc;
        if (dp->wait > 0) {
            c->wake_due = t->now + (int64_t)dp->wait * 1000;
            if ((rc = timer_set(t, c->wake_due, TM_WAKE, c->id, strlen(c->id)))) return rc;
        }
        if (announce) {
            sb_action *x = act(t, SB_ACT_WAIT, c->id, NULL, q->id, NULL);
            if (x) x->due_ms = wait_due(c);
        }
        return st_call_save(t->txn, e, t->acct, c);
    }
}

/* Read the ids of up to cap waiting calls of the queue into ids, in line
** order, starting after the key `last` (llen 0: at the head); `last`
** becomes the key of the last one read. */
static int waiting_ids(wtx *t, uint32_t queue, uint8_t *last, size_t *llen,
                       char (*ids)[SB_ID_MAX + 1], int cap, int *n)
{
    st_iter it;
    uint8_t p[8];
    int rc;
    *n = 0;
    key_acct2(p, t->acct, queue);
    /* The first batch from the range cache: an agent freed looks at the
    ** line of each of its queues, which is mostly empty. */
    for (rc = iter_batch(&it, t, DB_WAITING, p, last, *llen); rc == 0 && *n < cap;
         rc = st_iter_next(&it)) {
        size_t il = it.klen - 17;
        if (it.klen <= 17 || il > SB_ID_MAX) continue;
        memcpy(ids[*n], it.key + 17, il);
        ids[(*n)++][il] = 0;
        memcpy(last, it.key, it.klen);
        *llen = it.klen;
    }
    st_iter_close(&it);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Decide one waiting call of the queue, if anyone in it is free; *stop
** says nobody is. */
static int dispatch_one(wtx *t, uint32_t queue, const char *id, int *stop)
{
    sb_engine *e = t->e;
    st_iter it;
    uint8_t p[8];
    int r = st_iter_hot(&it, t->txn, e, DB_AVAIL, p, key_acct2(p, t->acct, queue));
    st_iter_close(&it);
    if (r) {
        *stop = 1;
        return r == MDB_NOTFOUND ? 0 : r;
    }
    call_rec *c = &e->call;
    if (st_call_load(t->txn, e, t->acct, id, c) || c->state != CALL_WAITING || c->queue != queue)
        return 0;
    queue_rec q = {0};
    int rc = load_queue(t, queue, &q);
    if (!rc) rc = route_call(t, c, &q, 0);
    queue_free(&q);
    return rc;
}

/* Route waiting calls of one queue, head first, while agents are free. A
** call its policy keeps waiting (say, for a skill no free agent has) is
** passed over, so one further back that a free agent can take is reached:
** with `all`, on to the end of the line, each call decided once (ids are
** read in line order, each batch after the last). The bound is the line's
** length, not a constant: one policy run and one write per call passed
** over (about 10 us; 1,000 waiting calls, 10 ms), paid only while free
** agents are refused by every call ahead. Without `all`, the head only: an
** offer frees nobody, and the calls in line were decided when the agents
** free now became free. Most often the head call takes the agent, so the
** first batch is small and on the stack; a longer walk reads batches into
** the heap. */
static int dispatch_line(wtx *t, uint32_t queue, int all)
{
    if (t->depth > 4) return 0; /* moves between queues: bounded */
    t->depth++;
    char head[DISPATCH_HEAD][SB_ID_MAX + 1];
    char(*ids)[SB_ID_MAX + 1] = head, (*more)[SB_ID_MAX + 1] = NULL;
    int cap = DISPATCH_HEAD, n = 0, stop = 0, rc;
    uint8_t last[17 + SB_ID_MAX];
    size_t llen = 0;
    /* Read a batch first, then route it: routing writes to the waiting
    ** list being read. */
    while ((rc = waiting_ids(t, queue, last, &llen, ids, cap, &n)) == 0 && n > 0) {
        for (int i = 0; i < n && !rc && !stop; i++)
            rc = dispatch_one(t, queue, ids[i], &stop);
        if (rc || stop || n < cap || !all) break;
        if (!more && !(more = malloc(DISPATCH_BATCH * sizeof *more))) {
            rc = SB_ENOMEM;
            break;
        }
        ids = more;
        cap = DISPATCH_BATCH;
    }
    free(more);
    t->depth--;
    return rc;
}

int dispatch_queue(wtx *t, uint32_t queue)
{
    return dispatch_line(t, queue, 1);
}

/* --- a queue left with nobody to take its calls ------------------------------------ */

/* When no member of a queue with calls waiting can take one any more (each
** offline or paused, or none left), its waiting calls are decided again at
** once: their wake-ups move to now, so the next tick runs their policies,
** in line order. A tick takes a millisecond's wake-ups of an account 32 at a
** time, each 32 read by call id and then sorted into line order, so the
** line's first 32 wake now, the next 32 a millisecond later, and so on. A
** policy that reads ctx.queue.logged_in turns callers away the moment the
** last agent leaves (app_queue's leavewhenempty) instead of at its next
** wake-up, or keeps them waiting.
** Its own call buffer: this runs inside events holding e->call. */
int queue_emptied(wtx *t, uint32_t queue)
{
    queue_rec q = {0};
    int rc = st_queue_load(t->txn, t->e, t->acct, queue, &q), in = 0, paused = 0;
    uint32_t waiting = q.waiting;
    queue_free(&q);
    if (rc) return rc == SB_ENOTFOUND ? 0 : rc;
    if (!waiting || (rc = staff_walk(t, queue, 1, &in, &paused)) || in > paused) return rc;
    call_rec *c = calloc(1, sizeof *c);
    char(*ids)[SB_ID_MAX + 1] = malloc(DISPATCH_BATCH * sizeof *ids);
    uint8_t last[17 + SB_ID_MAX];
    size_t llen = 0;
    int n = 0;
    if (!c || !ids) rc = SB_ENOMEM;
    /* The waiting list is read in batches and not written: a wake-up is
    ** the call's and the timers'. */
    int64_t woken = 0;
    while (!rc && (rc = waiting_ids(t, queue, last, &llen, ids, DISPATCH_BATCH, &n)) == 0) {
        for (int i = 0; i < n && !rc; i++) {
            int64_t due = t->now + woken / WAKE_GROUP;
            if (st_call_load(t->txn, t->e, t->acct, ids[i], c) || c->state != CALL_WAITING ||
                c->queue != queue || (c->wake_due && c->wake_due <= due))
                continue;
            woken++;
            c->wake_due = due; /* the one it had goes stale (call_timer_del) */
            if (!(rc = timer_set(t, c->wake_due, TM_WAKE, c->id, strlen(c->id))))
                rc = st_call_save(t->txn, t->e, t->acct, c);
        }
        if (n < DISPATCH_BATCH) break;
    }
    if (c) call_free(c);
    free(c);
    free(ids);
    return rc;
}

/* The agent left the calls' reach (offline or paused from a status in which
** it could take one): each of its queues, checked as above. */
static int agent_left_queues(wtx *t, uint32_t agent)
{
    uint8_t last[12];
    size_t llen = 0;
    for (;;) {
        uint32_t qs[AGENTQ_BATCH];
        int n, rc = agentq_batch(t, agent, last, &llen, qs, NULL, &n);
        for (int i = 0; i < n && !rc; i++)
            rc = queue_emptied(t, qs[i]);
        if (rc || n < AGENTQ_BATCH) return rc;
    }
}

int agent_left(wtx *t, const agent_rec *a, int old)
{
    int could = old != SB_AGENT_OFFLINE && old != SB_AGENT_PAUSED;
    int can = a->status != SB_AGENT_OFFLINE && a->status != SB_AGENT_PAUSED;
    return could && !can ? agent_left_queues(t, a->num) : 0;
}

/* A queue of an agent's with a call waiting: the call first in its line
** (the waiting list's order: priority, then time queued). */
typedef struct line_head {
    uint32_t queue;
    uint8_t rank; /* 100 - priority */
    uint64_t queued;
} line_head;

static int line_head_cmp(const void *x, const void *y)
{
    const line_head *a = x, *b = y;
    if (a->rank != b->rank) return a->rank < b->rank ? -1 : 1;
    if (a->queued != b->queued) return a->queued < b->queued ? -1 : 1;
    return a->queue < b->queue ? -1 : a->queue > b->queue;
}

/* Route waiting calls of the agent's queues to it, every queue however
** many (read in batches), but queue `skip`, whose line was just decided
** with the agent free already (0: none; queues are numbered from 1). The
** queues go in the order of the calls first in their lines, across them:
** the highest priority, then the longest in line, so that an agent in
** several queues takes the call that has waited longest rather than that
** of the queue made first. A queue with nobody waiting costs one seek. */
static int dispatch_agent_but(wtx *t, const agent_rec *a, uint32_t skip)
{
    uint8_t last[12];
    size_t llen = 0;
    sb_buf heads = {0}; /* line_head entries: a few, mostly none */
    int rc = 0, more = 1;
    while (more && !rc) {
        uint32_t qs[AGENTQ_BATCH];
        int n;
        st_iter it;
        uint8_t p[8];
        if ((rc = agentq_batch(t, a->num, last, &llen, qs, NULL, &n))) break;
        more = n == AGENTQ_BATCH;
        for (int i = 0; i < n && !rc; i++) {
            if (qs[i] == skip) continue;
            int r = st_iter_hot(&it, t->txn, t->e, DB_WAITING, p, key_acct2(p, t->acct, qs[i]));
            if (r == 0 && it.klen > 17) {
                line_head h = {qs[i], it.key[8], be64(it.key + 9)};
                if (buf_put(&heads, &h, sizeof h)) rc = SB_ENOMEM;
            } else if (r && r != MDB_NOTFOUND) {
                rc = r;
            }
            st_iter_close(&it);
        }
    }
    line_head *h = (line_head *)heads.p;
    size_t nh = heads.len / sizeof *h;
    if (!rc && nh > 1) qsort(h, nh, sizeof *h, line_head_cmp);
    for (size_t i = 0; i < nh && !rc; i++)
        rc = dispatch_queue(t, h[i].queue);
    buf_free(&heads);
    return rc;
}

int dispatch_agent(wtx *t, const agent_rec *a)
{
    return dispatch_agent_but(t, a, 0);
}

/* --- the end of a call ------------------------------------------------------------- */

/* End the call: its record, the END action, the live call gone. `agent`:
** the connected agent when the caller has it loaded (NULL otherwise);
** `reason`: why a rejected call was turned away (its REJECT action's);
** `by`: who ended it (sb_end_party; 0: not said). */
static int finish_call(wtx *t, call_rec *c, queue_rec *q, const char *outcome,
                       const agent_rec *agent, const char *reason, int by)
{
    int rc;
    if ((rc = call_timer_del(t, &c->ring_due, TM_RING, c)) ||
        (rc = call_timer_del(t, &c->wake_due, TM_WAKE, c)) ||
        (rc = call_timer_del(t, &c->maxwait_due, TM_MAXWAIT, c)))
        return rc;
    /* How it ended in its queue (its aggregates), then: a call an agent
    ** answered was answered, however it ends after a transfer (the caller
    ** hangs up waiting, max wait turns it away). */
    if ((rc = record_write(t, c, q, outcome, agent, reason, by))) return rc;
    if (c->answered) outcome = "answered";
    act(t, SB_ACT_END, c->id, NULL, q->id, outcome);
    if ((rc = acct_give_save(t, LIM_LIVE_CALLS))) return rc; /* counted at its offer */
    return st_call_del(t->txn, t->e, t->acct, c->id);
}

/* Close the agent's open ring attempt of the call with an outcome. */
static void attempt_end(wtx *t, call_rec *c, uint32_t agent, int outcome)
{
    for (int j = c->natt - 1; j >= 0; j--)
        if (c->att[j].agent == agent && !c->att[j].outcome) {
            c->att[j].outcome = (uint8_t)outcome;
            c->att[j].dur_ms = (int32_t)(t->now - c->att[j].start);
            return;
        }
}

/* Stop ringing every agent of the call but `keep`; they are free again.
** Each gets a CANCEL saying `why` (none when NULL), one of the short,
** stable reasons switchboard.h's sb_action lists, for a gateway to map to
** a SIP Reason: "ring timeout", "answered elsewhere", "caller hung up",
** "transferred", "max wait" (and "agent left", ev_agent_status's own). */
static int rings_end(wtx *t, call_rec *c, queue_rec *q, uint32_t keep, int outcome, const char *why)
{
    int rc = 0;
    for (int i = 0; i < c->nring; i++) {
        if (c->ring[i].agent == keep) continue;
        agent_rec a = {0};
        if (st_agent_load(t->txn, t->e, t->acct, c->ring[i].agent, &a) == 0 &&
            a.status == SB_AGENT_RESERVED && strcmp(a.call, c->id) == 0) {
            if (outcome == SB_RING_NO_ANSWER) {
                a.no_answers++;
                agent_missed(&a, t->now);
            }
            rc = agent_change(t, &a, SB_AGENT_AVAILABLE, NULL, NULL);
            if (!rc && why) act(t, SB_ACT_CANCEL, c->id, a.id, q->id, why);
        }
        attempt_end(t, c, c->ring[i].agent, outcome ? outcome : ATT_CANCELLED);
        agent_free(&a);
        if (rc) return rc;
    }
    int n = 0;
    for (int i = 0; i < c->nring; i++)
        if (c->ring[i].agent == keep) c->ring[n++] = c->ring[i];
    c->nring = (uint8_t)n;
    return 0;
}

/* Every ring of the call ends (rings_end with no agent kept); the agents
** it rang, free again, in freed (*nf of them), for redispatch_agents to
** offer to other waiting calls once the call has moved on. */
static int rings_cut(wtx *t, call_rec *c, queue_rec *q, int outcome, const char *why,
                     uint32_t freed[MAX_RING], int *nf)
{
    *nf = 0;
    for (int i = 0; i < c->nring; i++)
        freed[(*nf)++] = c->ring[i].agent;
    return rings_end(t, c, q, 0, outcome, why);
}

/* CONNECT: agent a answered the call's ring (still in c->ring), on the
** device it rang and that device's URI. */
static void act_connect(wtx *t, const call_rec *c, const agent_rec *a, const char *queue)
{
    sb_action *x = act(t, SB_ACT_CONNECT, c->id, a->id, queue, NULL);
    for (int i = 0; x && i < c->nring; i++) {
        int di = c->ring[i].agent == a->num ? dev_index(c->ring[i].dev) : -1;
        if (di < 0) continue;
        x->device = pol_dev_name(c->ring[i].dev);
        if (a->uri[di][0]) x->uri = res_str(t->res, a->uri[di]);
    }
}

/* Agents freed by a cancelled ring may serve other waiting calls (but in
** queue `skip`, 0 for none: its line was decided with them free). */
static int redispatch_agents(wtx *t, const uint32_t *nums, int n, uint32_t skip)
{
    for (int i = 0; i < n; i++) {
        agent_rec a = {0};
        int rc = st_agent_load(t->txn, t->e, t->acct, nums[i], &a);
        if (rc == 0 && a.status == SB_AGENT_AVAILABLE)
            rc = dispatch_agent_but(t, &a, skip);
        else if (rc == SB_ENOTFOUND)
            rc = 0;
        agent_free(&a);
        if (rc) return rc;
    }
    return 0;
}

/* A ring round failed for every agent: next in sequence, or decide again.
** *lined: the queue's line was decided again (the agents just freed were
** offered to it). */
static int ring_failed(wtx *t, call_rec *c, queue_rec *q, int *lined)
{
    int rc;
    *lined = 0;
    if ((rc = call_timer_del(t, &c->ring_due, TM_RING, c))) return rc;
    c->nring = 0;
    rc = ring_next(t, c, q, c->ring_timeout, c->attempts + 1);
    if (rc == 0 && (rc = ring_begin(t, c, c->ring_timeout)) == 0)
        return st_call_save(t->txn, t->e, t->acct, c);
    if (rc != 1) return rc;
    c->nseq = c->seqpos = 0;
    /* Back in line: calls ahead of it (higher priority, waiting longer) get
    ** the agents first. If nobody was free to decide it, its policy still
    ** decides it now, with no agents (it may move or reject it). */
    uint32_t before = c->ntrace_total;
    char id[SB_ID_MAX + 1];
    memcpy(id, c->id, sizeof id);
    if ((rc = waiting_add(t, c, q)) || (rc = st_call_save(t->txn, t->e, t->acct, c)) ||
        (rc = dispatch_queue(t, q->num)))
        return rc;
    *lined = 1;
    if (st_call_load(t->txn, t->e, t->acct, id, c) || c->state != CALL_WAITING ||
        c->ntrace_total != before)
        return 0;
    queue_rec fresh = {0};
    if ((rc = load_queue(t, c->queue, &fresh)) == 0) rc = route_call(t, c, &fresh, 0);
    queue_free(&fresh);
    return rc;
}

/* One agent's ring ended unanswered and the agent is out of c->ring: the
** call rings on while others ring, or while a progressive ring has agents
** still to join at their steps; otherwise the round failed. */
static int ring_lost_one(wtx *t, call_rec *c, queue_rec *q, int *lined)
{
    *lined = 0;
    if (c->nring > 0 || progressive_pending(c)) return st_call_save(t->txn, t->e, t->acct, c);
    return ring_failed(t, c, q, lined);
}

/* A progressive ring's step has come (at `at`): the next agent who can be
** rung joins those ringing, for what is left of the ring. The next step
** counts from `at`, not from a tick that came late. When nobody is left to
** join and nobody rings any more, the round failed. */
static int progressive_step(wtx *t, call_rec *c, queue_rec *q, int64_t at)
{
    c->ring_start = at;
    int rc = ring_next(t, c, q, (int)((c->ring_due - at) / 1000), c->attempts), lined;
    if (rc == 0) rc = progressive_arm(t, c);
    if (rc == 1) return ring_lost_one(t, c, q, &lined); /* the list ran out */
    return rc ? rc : st_call_save(t->txn, t->e, t->acct, c);
}

/* --- events ----------------------------------------------------------------------------- */

typedef struct ev_op {
    const sb_event *ev;
    json_t *attrs; /* validated attributes (OFFER) */
    char caller[SB_E164_MAX + 1], called[SB_E164_MAX + 1];
} ev_op;

static int need_call(wtx *t, const char *id, call_rec *c)
{
    int rc = st_call_load(t->txn, t->e, t->acct, id, c);
    if (rc != SB_ENOTFOUND) return rc;
    /* A call that has ended left a record: say so, rather than not found
    ** (of one that ended in the last 90 days: records.c, the index entries). */
    if (record_exists(t->e, t->txn, t->acct, id, t->now - REC_HISTORY_MS))
        return res_err(t->res, SB_ESTATE, "call", "call '%s' has already ended", id);
    return res_no_such(t->res, "call", "call", id);
}

/* An event is never earlier than what it follows: with a clock that stepped
** back (a gateway's replayed event, the system clock set back), the event
** takes the time of the latest step of the call or agent it changes, so no
** wait, talk or ring comes out negative, and no agent's talk time shrinks. */
static void time_floor(wtx *t, int64_t at)
{
    if (at > t->now) t->now = at;
}

/* The latest step of the call. */
static int64_t call_latest(const call_rec *c)
{
    int64_t v[] = {c->offered, c->queued, c->answered, c->connected, c->ring_start}, at = v[0];
    for (size_t i = 1; i < sizeof v / sizeof *v; i++)
        if (v[i] > at) at = v[i];
    return at;
}

static void call_time_floor(wtx *t, const call_rec *c)
{
    time_floor(t, call_latest(c));
}

static int need_queue(wtx *t, const char *id, queue_rec *q)
{
    int rc = st_queue_by_id(t->txn, t->e, t->acct, id, q);
    if (rc == SB_ENOTFOUND) return res_no_such(t->res, "queue", "queue", id);
    return rc;
}

static int need_agent(wtx *t, const char *id, agent_rec *a)
{
    int rc = st_agent_by_id(t->txn, t->e, t->acct, id, a);
    if (rc == SB_ENOTFOUND) return res_no_such(t->res, "agent", "agent", id);
    return rc;
}

static int ev_offer(wtx *t, ev_op *op)
{
    const sb_event *ev = op->ev;
    sb_engine *e = t->e;
    call_rec *c = &e->call;
    queue_rec q = {0};
    int rc = need_queue(t, ev->queue_id, &q);
    if (rc) goto out;
    rc = st_call_load(t->txn, e, t->acct, ev->call_id, c);
    if (rc == 0) {
        rc = res_err(t->res, SB_EEXIST, "call", "call '%s' exists already", ev->call_id);
        goto out;
    }
    if (rc != SB_ENOTFOUND) goto out;
    rc = 0;
    memset(c, 0, offsetof(call_rec, ring)); /* arrays are read up to their counts */
    c->attrs.len = c->pii.len = c->pattrs.len = 0;
    strcpy(c->id, ev->call_id);
    strcpy(c->caller, op->caller);
    strcpy(c->called, op->called);
    c->priority = ev->priority;
    c->offered = c->queued = c->q_entered = t->now;
    c->queue = c->first_queue = q.num;
    if (op->attrs) {
        char *s = json_dumps(op->attrs, JSON_COMPACT);
        if (!s || buf_puts(&c->attrs, s)) rc = SB_ENOMEM;
        free(s);
        if (rc) goto out;
    }
    /* From here on the numbers are stored only sealed. */
    if ((rc = rec_seal_call(t, c))) goto out;
    /* A live call of the account from here until finish_call; one past its
    ** limits.live_calls is turned away as a full queue turns one away. */
    int over = acct_at_limit(t->account, LIM_LIVE_CALLS);
    if (acct_live_kept(t->account)) {
        t->account->used[LIM_LIVE_CALLS]++;
        if ((rc = st_account_save(t->txn, e, t->account))) goto out;
    }
    if (over) {
        char why[96];
        snprintf(why, sizeof why, "account live call limit (limits.live_calls %d)",
                 (int)t->account->limit[LIM_LIVE_CALLS]);
        c->state = CALL_WAITING;
        engine_trace(t, c, TR_REJECT, why);
        rc = reject_call(t, c, &q, why, 0);
        goto out;
    }
    int full = 0;
    if ((rc = queue_full(t, &q, &full))) goto out;
    if (full) {
        /* Not in the list: move_call takes it out only if it is there. */
        c->state = CALL_WAITING;
        rc = arrive_full(t, c, &q);
        goto out;
    }
    if (q.max_wait) {
        c->maxwait_due = t->now + (int64_t)q.max_wait * 1000;
        if ((rc = timer_set(t, c->maxwait_due, TM_MAXWAIT, c->id, strlen(c->id)))) goto out;
    }
    /* Calls ahead of this one go first; this one when its turn comes. With
    ** none waiting it is decided at once, and joins the waiting list only
    ** if it has to wait. */
    if (q.waiting > 0) {
        if ((rc = waiting_add(t, c, &q))) goto out;
        if ((rc = st_call_save(t->txn, e, t->acct, c)) || (rc = dispatch_line(t, q.num, 0)))
            goto out;
        /* Not reached by the dispatch (nobody free)? Its policy still sees
        ** every new call: it may wait, or move or reject it at once. */
        if (st_call_load(t->txn, e, t->acct, ev->call_id, c) == 0 && c->state == CALL_WAITING) {
            if (c->ntrace_total == 0) {
                queue_free(&q);
                if ((rc = load_queue(t, c->queue, &q)) == 0) rc = route_call(t, c, &q, 1);
            } else {
                sb_action *x = act(t, SB_ACT_WAIT, c->id, NULL, q.id, NULL);
                if (x) x->due_ms = wait_due(c);
            }
        }
    } else {
        rc = route_call(t, c, &q, 1);
    }
out:
    queue_free(&q);
    return rc;
}

static int ev_ring_result(wtx *t, ev_op *op)
{
    const sb_event *ev = op->ev;
    sb_engine *e = t->e;
    call_rec *c = &e->call;
    agent_rec a = {0};
    queue_rec q = {0};
    int rc;
    if ((rc = need_call(t, ev->call_id, c)) || (rc = need_agent(t, ev->agent_id, &a))) goto out;
    call_time_floor(t, c);
    time_floor(t, a.status_since);
    if (ev->attempt > c->attempts) {
        /* Not a late result: no ring action ever gave this attempt (a
        ** gateway's own count, or another call's ring). */
        rc = res_err(t->res, SB_EINVAL, "attempt",
                     "call '%s' has had %u ring attempt%s: attempt %u was never made "
                     "(give the attempt of the ring action the result is for)",
                     c->id, (unsigned)c->attempts, c->attempts == 1 ? "" : "s", ev->attempt);
        goto out;
    }
    int idx = -1;
    for (int i = 0; i < c->nring; i++)
        if (c->ring[i].agent == a.num) idx = i;
    if (c->state != CALL_RINGING || idx < 0) {
        rc = ev->attempt ? res_err(t->res, SB_ESTATE, "attempt",
                                   "ring attempt %u of call '%s' is over: agent '%s' is not "
                                   "ringing for it (the result changes nothing)",
                                   ev->attempt, c->id, a.id)
                         : res_err(t->res, SB_ESTATE, "agent",
                                   "agent '%s' is not ringing for call '%s'", a.id, c->id);
        goto out;
    }
    if (ev->attempt && ev->attempt != c->attempts) {
        /* The ring it answers timed out (or was cancelled) and the agent
        ** rings again as a later attempt: a result sent as the timeout
        ** fired is not taken for the new ring's. */
        rc = res_err(t->res, SB_ESTATE, "attempt",
                     "ring attempt %u of call '%s' is over; agent '%s' rings for it as attempt "
                     "%u now (the result changes nothing)",
                     ev->attempt, c->id, a.id, c->attempts);
        goto out;
    }
    if ((rc = load_queue(t, c->queue, &q))) goto out;
    if (ev->outcome == SB_RING_ANSWERED) {
        uint32_t others[MAX_RING];
        int no = 0;
        for (int i = 0; i < c->nring; i++)
            if (c->ring[i].agent != a.num) others[no++] = c->ring[i].agent;
        if ((rc = rings_end(t, c, &q, a.num, 0, "answered elsewhere"))) goto out;
        attempt_end(t, c, a.num, SB_RING_ANSWERED);
        if ((rc = call_timer_del(t, &c->ring_due, TM_RING, c)) ||
            (rc = call_timer_del(t, &c->maxwait_due, TM_MAXWAIT, c)))
            goto out;
        c->state = CALL_CONNECTED;
        /* The first answer stays the call's answer through transfers: its
        ** record's wait ends there. This agent's talk counts from its own
        ** status change (agent_leaves_call). */
        if (!c->answered) c->answered = t->now;
        if (!c->q_answered) c->q_answered = t->now; /* its queue's answer */
        c->connected = t->now;
        c->agent = a.num;
        c->nseq = c->seqpos = 0;
        a.calls_taken++;
        a.no_answers = 0;
        if ((rc = agent_change(t, &a, SB_AGENT_ON_CALL, NULL, c->id))) goto out;
        act_connect(t, c, &a, q.id);
        if ((rc = st_call_save(t->txn, e, t->acct, c))) goto out;
        rc = redispatch_agents(t, others, no, 0);
        goto out;
    }
    /* Not answered: this agent is free again; the call rings on or re-decides. */
    c->ring[idx] = c->ring[c->nring - 1];
    c->nring--;
    if (ev->outcome == SB_RING_NO_ANSWER) a.no_answers++;
    agent_missed(&a, t->now); /* no answer, busy or rejected */
    attempt_end(t, c, a.num, ev->outcome);
    int lined;
    if ((rc = agent_change(t, &a, SB_AGENT_AVAILABLE, NULL, NULL)) ||
        (rc = ring_lost_one(t, c, &q, &lined)))
        goto out;
    /* The freed agent may suit another waiting call. */
    uint32_t num = a.num;
    agent_free(&a);
    rc = st_agent_load(t->txn, e, t->acct, num, &a);
    if (rc == 0 && a.status == SB_AGENT_AVAILABLE)
        rc = dispatch_agent_but(t, &a, lined ? q.num : 0);
out:
    agent_free(&a);
    queue_free(&q);
    return rc;
}

/* The agent leaves a call: statistics, then wrap-up, or straight back
** (agent_back: available and, with `route`, offered to waiting calls at
** once, otherwise by the caller later; or the status it asked for on the
** call). After a wrap-up that status waits for the wrap-up's end. */
static int agent_leaves_call(wtx *t, agent_rec *a, const queue_rec *q, int route)
{
    /* On the call since it answered it: the call's own answer time is its
    ** first, maybe another agent's before a transfer. */
    /* (A status time past now or below zero, or a total near the limit,
    ** from a damaged record, counts afresh rather than overflowing.) */
    int64_t talk = a->status == SB_AGENT_ON_CALL && a->status_since >= 0 && t->now > a->status_since
                       ? t->now - a->status_since
                       : 0;
    a->talk_ms = a->talk_ms >= 0 && a->talk_ms <= INT64_MAX - talk ? a->talk_ms + talk : talk;
    a->last_call = t->now;
    uint32_t wrap = a->wrapup_s ? a->wrapup_s : q->wrapup;
    int rc;
    if (wrap) {
        a->wrapup_due = t->now + (int64_t)wrap * 1000;
        uint8_t ref[4];
        put_be32(ref, a->num);
        if ((rc = timer_set(t, a->wrapup_due, TM_WRAPUP, ref, 4))) return rc;
        return agent_change(t, a, SB_AGENT_WRAP_UP, NULL, NULL);
    }
    return agent_back(t, a, NULL, route);
}

static int ev_end(wtx *t, ev_op *op, int abandon)
{
    const sb_event *ev = op->ev;
    sb_engine *e = t->e;
    call_rec *c = &e->call;
    queue_rec q = {0};
    agent_rec a = {0};
    int rc;
    if ((rc = need_call(t, ev->call_id, c)) || (rc = load_queue(t, c->queue, &q))) goto out;
    call_time_floor(t, c);
    if (c->state == CALL_CONNECTED) {
        if (abandon) {
            rc = res_err(t->res, SB_ESTATE, "call",
                         "call '%s' is connected; a connected call ends with hangup", c->id);
            goto out;
        }
        rc = st_agent_load(t->txn, e, t->acct, c->agent, &a);
        if (rc == 0 && a.status == SB_AGENT_ON_CALL && strcmp(a.call, c->id) == 0) {
            /* Record first: the agent's wrap-up may route other calls. */
            if ((rc = finish_call(t, c, &q, "answered", &a, NULL, ev->by))) goto out;
            rc = agent_leaves_call(t, &a, &q, 1);
        } else if (rc == 0 || rc == SB_ENOTFOUND) {
            rc = finish_call(t, c, &q, "answered", NULL, NULL, ev->by);
        }
        goto out;
    }
    /* Not connected: the caller gave up, or (by the system) the call failed. */
    if (ev->by == SB_END_AGENT) {
        rc = res_err(t->res, SB_ESTATE, "by",
                     "call '%s' is not connected: no agent can hang it up (an agent who lets a "
                     "ring go sends a ring_result)",
                     c->id);
        goto out;
    }
    int failed = ev->by == SB_END_SYSTEM;
    uint32_t freed[MAX_RING];
    int nf;
    if ((rc = rings_cut(t, c, &q, 0, failed ? "call failed" : "caller hung up", freed, &nf)))
        goto out;
    if ((rc = waiting_remove(t, c, &q)) ||
        (rc = finish_call(t, c, &q, failed ? "failed" : "abandoned", NULL, NULL, ev->by)))
        goto out;
    rc = redispatch_agents(t, freed, nf, 0);
out:
    queue_free(&q);
    agent_free(&a);
    return rc;
}

static int ev_transfer(wtx *t, ev_op *op)
{
    const sb_event *ev = op->ev;
    sb_engine *e = t->e;
    /* Its own copy: releasing the agent may route other calls through
    ** e->call while this one is still being moved. */
    call_rec *c = calloc(1, sizeof *c);
    if (!c) return SB_ENOMEM;
    queue_rec q = {0}, nq = {0};
    agent_rec a = {0}, target = {0};
    int rc;
    if ((rc = need_call(t, ev->call_id, c)) || (rc = load_queue(t, c->queue, &q))) goto out;
    call_time_floor(t, c);
    if (ev->queue_id && (rc = need_queue(t, ev->queue_id, &nq))) goto out;
    if (!ev->queue_id && (rc = need_agent(t, ev->agent_id, &target))) goto out;
    if (!ev->queue_id && target.status != SB_AGENT_AVAILABLE) {
        rc = res_err(t->res, SB_ESTATE, "agent", "agent '%s' is %s, not available", target.id,
                     agent_status_name(target.status));
        goto out;
    }
    /* Release whoever has the call now. To a queue, the agent released
    ** serves the calls waiting there before this one joins them. To an
    ** agent, it is offered to waiting calls only after the target rings:
    ** routing them first could ring the target for one of them. */
    uint32_t freed[MAX_RING];
    int nf = 0;
    if (c->state == CALL_CONNECTED) {
        if ((rc = st_agent_load(t->txn, e, t->acct, c->agent, &a)) == 0 &&
            a.status == SB_AGENT_ON_CALL && strcmp(a.call, c->id) == 0 && a.num != target.num) {
            if ((rc = agent_leaves_call(t, &a, &q, ev->queue_id != NULL))) goto out;
            if (!ev->queue_id) freed[nf++] = a.num;
        } else if (rc && rc != SB_ENOTFOUND) {
            goto out;
        }
        /* c->answered and c->agent stay: the call was answered, and its
        ** record names the agent it last spoke to; its talk so far is kept
        ** apart. Should it be back in line (the target does not answer),
        ** its wait starts now, for its queue's max wait as for its place in
        ** line. */
        if (c->connected) c->talked += t->now - c->connected;
        c->connected = 0;
        c->queued = t->now;
    } else if (c->state == CALL_RINGING) {
        if ((rc = rings_cut(t, c, &q, 0, "transferred", freed, &nf))) goto out;
        if ((rc = call_timer_del(t, &c->ring_due, TM_RING, c))) goto out;
    } else {
        if ((rc = waiting_remove(t, c, &q))) goto out;
    }
    rc = call_timer_del(t, &c->wake_due, TM_WAKE, c);
    if (!rc) rc = call_timer_del(t, &c->maxwait_due, TM_MAXWAIT, c);
    if (rc) goto out;
    c->nseq = c->seqpos = 0;
    c->nring = 0;
    if (ev->queue_id) {
        /* Full once the call's agent has served who it could there (read
        ** afresh: that routing changed the count)? Refused: the whole
        ** transfer is undone with this transaction. */
        int full = 0;
        if ((rc = load_queue(t, nq.num, &nq)) || (rc = queue_full(t, &nq, &full))) goto out;
        if (full) {
            rc = res_err(t->res, SB_ESTATE, "queue", "queue '%s' is full (max_length %u)", nq.id,
                         (unsigned)nq.max_length);
            goto out;
        }
        if (nq.num != q.num && (rc = rec_aggr_leave(t, c, &q))) goto out;
        c->queue = nq.num;
        c->queued = t->now;
        if (nq.max_wait) {
            c->maxwait_due = t->now + (int64_t)nq.max_wait * 1000;
            if ((rc = timer_set(t, c->maxwait_due, TM_MAXWAIT, c->id, strlen(c->id)))) goto out;
        }
        char detail[32 + SB_ID_MAX];
        snprintf(detail, sizeof detail, "transfer to queue %s", nq.id);
        engine_trace(t, c, TR_MOVE, detail);
        act(t, SB_ACT_OVERFLOW, c->id, NULL, nq.id, "transferred");
        /* Not back to the agent who transferred it while another is free: a
        ** blind transfer hands the call on, and that agent's phone is still
        ** in it. Alone free, the agent is rung (the call is not left to wait
        ** beside a free agent); later decisions may ring the agent too. */
        if ((rc = waiting_add(t, c, &nq)) || (rc = route_call_skip(t, c, &nq, 1, a.num))) goto out;
    } else {
        ring_target tg = {target.num, 0};
        pol_cand pc = {.id = target.id, .num = target.num, .load = cand_load};
        cand_set one = {.t = t};
        pc.load_arg = &one;
        for (int i = 0; i < 3; i++)
            if (target.uri[i][0]) pc.devices |= 1u << i;
        tg.dev = (uint8_t)pol_default_device(&pc, t->now);
        if (pc.config) free((void *)pc.config);
        char detail[32 + SB_ID_MAX];
        snprintf(detail, sizeof detail, "transfer to agent %s", target.id);
        engine_trace(t, c, TR_RING, detail);
        rc = ring_targets(t, c, &q, &tg, 1, (int)q.ring_timeout);
        if (rc == 1) {
            rc = res_err(t->res, SB_ESTATE, "agent", "agent '%s' cannot be rung", target.id);
            goto out;
        }
        if (rc || (rc = st_call_save(t->txn, e, t->acct, c))) goto out;
    }
    rc = redispatch_agents(t, freed, nf, 0);
out:
    queue_free(&q);
    queue_free(&nq);
    agent_free(&a);
    agent_free(&target);
    call_free(c);
    free(c);
    return rc;
}

static int ev_agent_status(wtx *t, ev_op *op)
{
    const sb_event *ev = op->ev;
    sb_engine *e = t->e;
    agent_rec a = {0};
    /* The reason as it is stored and reported: a gateway's free text, with
    ** no number or control character kept (reason_clean). */
    char why[SB_REASON_MAX + 1];
    str_copy(why, sizeof why, ev->reason ? ev->reason : "");
    reason_clean(why, sizeof why);
    const char *reason = ev->reason ? why : NULL;
    int rc = need_agent(t, ev->agent_id, &a);
    if (rc) goto out;
    time_floor(t, a.status_since);
    if (a.status == SB_AGENT_ON_CALL) {
        /* On a call: the status waits for its end (and its wrap-up's), and
        ** "available", what the end brings anyway, drops one asked for
        ** before. The same again changes nothing. */
        int has = ev->status != SB_AGENT_AVAILABLE;
        const char *next = has ? why : "";
        if (has == a.has_next &&
            (!has || (a.next_status == ev->status && !strcmp(a.next_reason, next))))
            goto out;
        a.has_next = (uint8_t)has;
        a.next_status = (uint8_t)(has ? ev->status : 0);
        str_copy(a.next_reason, sizeof a.next_reason, next);
        rc = st_agent_save(t->txn, e, t->acct, &a);
        goto out;
    }
    /* The status it has already changes nothing, as in sb_agent_put: sent
    ** again, "available" would restart the idle time longest-idle routing
    ** goes by, and any status its time since. (A pause with another reason
    ** is a new pause.) */
    if (a.status == ev->status && (ev->status != SB_AGENT_PAUSED || !strcmp(a.reason, why)))
        goto out;
    if (a.status == SB_AGENT_RESERVED) {
        /* Leaving while ringing: that ring is rejected and the call moves on.
        ** (A reservation for a call that rings the agent no more is lifted
        ** by any status.) */
        call_rec *c = &e->call;
        queue_rec q = {0};
        /* (st_queue_load, not load_queue: a queue that cannot be read means
        ** no ring goes on, not an error left in the result of an event that
        ** succeeds.) */
        if (st_call_load(t->txn, e, t->acct, a.call, c) == 0 && c->state == CALL_RINGING &&
            st_queue_load(t->txn, e, t->acct, c->queue, &q) == 0) {
            int idx = -1;
            for (int i = 0; i < c->nring; i++)
                if (c->ring[i].agent == a.num) idx = i;
            if (idx >= 0 && ev->status == SB_AGENT_AVAILABLE) {
                /* Available it is, for this call too: its ring goes on. */
                queue_free(&q);
                goto out;
            }
            if (idx >= 0) {
                c->ring[idx] = c->ring[--c->nring];
                act(t, SB_ACT_CANCEL, c->id, a.id, q.id, "agent left");
                attempt_end(t, c, a.num, SB_RING_REJECTED);
                int lined;
                if ((rc = agent_change(t, &a, (int)ev->status, reason, NULL)) == 0)
                    rc = ring_lost_one(t, c, &q, &lined);
                queue_free(&q);
                if (rc) goto out;
                act_agent(t, &a, reason);
                goto avail;
            }
        }
        queue_free(&q);
    }
    if ((rc = agent_change(t, &a, (int)ev->status, reason, NULL))) goto out;
avail:
    if (ev->status == SB_AGENT_AVAILABLE) {
        if ((rc = st_agent_load(t->txn, e, t->acct, a.num, &a)) == 0 &&
            a.status == SB_AGENT_AVAILABLE)
            rc = dispatch_agent(t, &a);
    }
out:
    agent_free(&a);
    return rc;
}

static int do_event(wtx *t, void *arg)
{
    ev_op *op = arg;
    t->clock = t->now;
    int rc = tx_account(t, op->ev->account);
    if (rc) return rc;
    switch (op->ev->type) {
    case SB_EV_OFFER:
        return ev_offer(t, op);
    case SB_EV_RING_RESULT:
        return ev_ring_result(t, op);
    case SB_EV_HANGUP:
        return ev_end(t, op, 0);
    case SB_EV_ABANDON:
        return ev_end(t, op, 1);
    case SB_EV_TRANSFER:
        return ev_transfer(t, op);
    case SB_EV_AGENT_STATUS:
        return ev_agent_status(t, op);
    }
    return res_err(t->res, SB_EINVAL, "type", "unknown event type");
}

/* An offer's caller that is there and not a number: the refusal says how
** to offer a call from a withheld number instead. */
static const char bad_caller[] = "'caller' must be an E.164 number like +4930123456 (leave it out "
                                 "for a call from a withheld number)";

/* The fields of events, as the JSON events name them, and those each type
** takes, as bits of ev_names (type first): one table for the JSON form and
** the C struct. A field another type takes is as unknown as one no type
** takes. */
static const char *const ev_names[] = {
    "type",    "call",   "queue",  "agent", "caller",  "called", "priority",
    "outcome", "status", "reason", "attrs", "attempt", "by",     NULL}; /* NULL: jv_keys' end */
#define EV_NFIELDS (countof(ev_names) - 1)
enum {
    EVF_TYPE = 1u << 0,
    EVF_CALL = 1u << 1,
    EVF_QUEUE = 1u << 2,
    EVF_AGENT = 1u << 3,
    EVF_CALLER = 1u << 4,
    EVF_CALLED = 1u << 5,
    EVF_PRIORITY = 1u << 6,
    EVF_OUTCOME = 1u << 7,
    EVF_STATUS = 1u << 8,
    EVF_REASON = 1u << 9,
    EVF_ATTRS = 1u << 10,
    EVF_ATTEMPT = 1u << 11,
    EVF_BY = 1u << 12
};
static const unsigned ev_takes[] = {
    [SB_EV_OFFER] =
        EVF_TYPE | EVF_CALL | EVF_QUEUE | EVF_CALLER | EVF_CALLED | EVF_PRIORITY | EVF_ATTRS,
    [SB_EV_RING_RESULT] = EVF_TYPE | EVF_CALL | EVF_AGENT | EVF_OUTCOME | EVF_ATTEMPT,
    [SB_EV_HANGUP] = EVF_TYPE | EVF_CALL | EVF_BY,
    [SB_EV_ABANDON] = EVF_TYPE | EVF_CALL | EVF_BY,
    [SB_EV_TRANSFER] = EVF_TYPE | EVF_CALL | EVF_QUEUE | EVF_AGENT,
    [SB_EV_AGENT_STATUS] = EVF_TYPE | EVF_AGENT | EVF_STATUS | EVF_REASON,
};
static const char *const ev_types[] = {NULL,      "offer",    "ring_result", "hangup",
                                       "abandon", "transfer", "agent_status"};

/* Refuse field k (ev_names[bit], or a name no event has: bit -1) for an
** event of type, naming the ones it takes. */
static int ev_unknown(int type, int bit, const char *k, sb_result *res)
{
    char list[96] = "", path[256];
    size_t n = 0;
    for (size_t i = 1; i < EV_NFIELDS; i++)
        if (ev_takes[type] & (1u << i))
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", ev_names[i]);
    const char *name = ev_types[type];
    if (bit >= 0) k = ev_names[bit];
    return res_err(res, SB_EINVAL, jv_path(path, sizeof path, NULL, k),
                   "unknown field '%s' for a%s %s event (expected %s)", k,
                   strchr("aeiou", name[0]) ? "n" : "", name, list);
}

/* Refuse a field of doc that an event of its type does not take. */
static int ev_keys(const json_t *doc, int type, sb_result *res)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)doc, k, v)
    {
        int bit = -1;
        for (size_t i = 0; bit < 0 && i < EV_NFIELDS; i++)
            if (strcmp(ev_names[i], k) == 0) bit = (int)i;
        if (bit < 0 || !(ev_takes[type] & (1u << bit))) return ev_unknown(type, bit, k, res);
    }
    return 0;
}

/* The same for the C struct: a field given (a string that is not NULL, a
** number that is not 0; caller "" is none, a withheld number) that the
** event's type does not take is refused, not left unread. (status 0 is
** SB_AGENT_OFFLINE: it cannot be told from none.) An event with no other
** field given, the usual case, costs a comparison. */
static int ev_struct_fields(const sb_event *ev, sb_result *res)
{
    unsigned given = (ev->call_id ? EVF_CALL : 0) | (ev->queue_id ? EVF_QUEUE : 0) |
                     (ev->agent_id ? EVF_AGENT : 0) |
                     (ev->caller && ev->caller[0] ? EVF_CALLER : 0) |
                     (ev->called ? EVF_CALLED : 0) | (ev->priority ? EVF_PRIORITY : 0) |
                     (ev->outcome ? EVF_OUTCOME : 0) | (ev->status ? EVF_STATUS : 0) |
                     (ev->reason ? EVF_REASON : 0) | (ev->attrs_json ? EVF_ATTRS : 0) |
                     (ev->attempt ? EVF_ATTEMPT : 0) | (ev->by ? EVF_BY : 0);
    unsigned extra = given & ~ev_takes[ev->type];
    for (int i = 0; extra; i++)
        if (extra & (1u << i)) return ev_unknown((int)ev->type, i, NULL, res);
    return 0;
}

/* Check an event before any transaction starts. */
static int check_event(const sb_event *ev, ev_op *op, sb_result *res)
{
    if (!ev) return res_err(res, SB_EINVAL, NULL, "no event");
    if (!id_valid(ev->account)) return res_err(res, SB_EINVAL, "account", "invalid account id");
    if (ev->type >= SB_EV_OFFER && ev->type <= SB_EV_AGENT_STATUS) {
        int rc = ev_struct_fields(ev, res);
        if (rc) return rc;
    }
    switch (ev->type) {
    case SB_EV_OFFER:
        if (!id_valid(ev->queue_id)) return res_err(res, SB_EINVAL, "queue", "invalid queue id");
        if (ev->priority < 0 || ev->priority > 100)
            return res_err(res, SB_EINVAL, "priority", "'priority' must be 0..100");
        /* No caller (NULL or ""): the number was withheld. */
        op->caller[0] = 0;
        if (ev->caller && ev->caller[0] && e164_normalize(ev->caller, op->caller))
            return res_err(res, SB_EINVAL, "caller", "%s", bad_caller);
        /* No called number (NULL or ""), as "called":"" in JSON. */
        op->called[0] = 0;
        if (ev->called && ev->called[0] && e164_normalize(ev->called, op->called))
            return res_err(res, SB_EINVAL, "called",
                           "'called' must be an E.164 number like +4930123456");
        if (ev->call_id) {
            /* The call id outlives the numbers: the audit log names it, and
            ** an anonymized record keeps it. */
            const char *num[2] = {op->caller, op->called}, *role[2] = {"caller", "called"};
            size_t idl = strlen(ev->call_id);
            for (int i = 0; i < 2; i++) {
                char needle[32];
                size_t nl = number_needle(num[i], needle, sizeof needle);
                int hit = nl && text_holds(ev->call_id, idl, needle, nl);
                cr_wipe(needle, sizeof needle);
                if (hit)
                    return res_err(res, SB_EINVAL, "call",
                                   "the call id holds the call's %s number: ids stay in the "
                                   "audit log and in anonymized records, where erasure "
                                   "requests cannot reach; give the call an id without it",
                                   role[i]);
            }
        }
        if (ev->attrs_json) {
            json_error_t err;
            size_t n = strlen(ev->attrs_json);
            if (n > ATTRS_MAX)
                return res_err(res, SB_EINVAL, "attrs", "'attrs' is larger than %d bytes",
                               ATTRS_MAX);
            json_oom_reset();
            op->attrs = json_loadb(ev->attrs_json, n, JSON_REJECT_DUPLICATES, &err);
            if (!op->attrs && json_oom(&err))
                return res_err(res, SB_ENOMEM, "attrs", "out of memory reading 'attrs'");
            if (!op->attrs && json_error_code(&err) == json_error_numeric_overflow)
                return jv_too_big(ev->attrs_json, n, &err, "attrs", res);
            if (!op->attrs || !json_is_object(op->attrs))
                return res_err(res, SB_EINVAL, "attrs", "'attrs' must be a JSON object");
            jv_drop_null(op->attrs, "skills");
            json_t *sk = json_object_get(op->attrs, "skills");
            if (sk) {
                const char *k;
                json_t *v;
                if (!json_is_object(sk))
                    return res_err(res, SB_EINVAL, "attrs.skills",
                                   "'attrs.skills' must be an object of minimum levels");
                json_object_foreach(sk, k, v)
                {
                    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                        json_integer_value(v) > 100)
                        return res_err(res, SB_EINVAL, "attrs.skills",
                                       "skill levels are integers 0..100");
                }
            }
        }
        if (!id_valid(ev->call_id)) return res_err(res, SB_EINVAL, "call", "invalid call id");
        return 0;
    case SB_EV_HANGUP:
    case SB_EV_ABANDON:
        if (!id_valid(ev->call_id)) return res_err(res, SB_EINVAL, "call", "invalid call id");
        if (ev->by && !end_party_name((int)ev->by))
            return res_err(res, SB_EINVAL, "by", "'by' must be caller, agent or system");
        if (ev->type == SB_EV_ABANDON && ev->by == SB_END_AGENT)
            return res_err(res, SB_EINVAL, "by",
                           "an abandon is the caller's (or, by the system, a failed call's)");
        return 0;
    case SB_EV_RING_RESULT:
        if (!id_valid(ev->call_id)) return res_err(res, SB_EINVAL, "call", "invalid call id");
        if (!id_valid(ev->agent_id)) return res_err(res, SB_EINVAL, "agent", "invalid agent id");
        if (ev->outcome < SB_RING_ANSWERED || ev->outcome > SB_RING_REJECTED)
            return res_err(res, SB_EINVAL, "outcome",
                           "'outcome' must be answered, no_answer, busy or rejected");
        return 0;
    case SB_EV_TRANSFER:
        if (!id_valid(ev->call_id)) return res_err(res, SB_EINVAL, "call", "invalid call id");
        if (!!ev->queue_id == !!ev->agent_id)
            return res_err(res, SB_EINVAL, "queue",
                           ev->queue_id ? "a transfer names a queue or an agent, not both"
                                        : "a transfer names a queue or an agent");
        if (ev->queue_id && !id_valid(ev->queue_id))
            return res_err(res, SB_EINVAL, "queue", "invalid queue id");
        if (ev->agent_id && !id_valid(ev->agent_id))
            return res_err(res, SB_EINVAL, "agent", "invalid agent id");
        return 0;
    case SB_EV_AGENT_STATUS:
        if (!id_valid(ev->agent_id)) return res_err(res, SB_EINVAL, "agent", "invalid agent id");
        if (ev->status != SB_AGENT_AVAILABLE && ev->status != SB_AGENT_PAUSED &&
            ev->status != SB_AGENT_OFFLINE)
            return res_err(res, SB_EINVAL, "status",
                           "'status' must be available, paused or offline");
        if (ev->reason && strlen(ev->reason) > SB_REASON_MAX)
            return res_err(res, SB_EINVAL, "reason", "'reason' is longer than %d bytes",
                           SB_REASON_MAX);
        /* As JSON text cannot hold it: the struct's reason is not cleaned
        ** into something the gateway never sent. */
        if (ev->reason && !utf8_valid(ev->reason))
            return res_err(res, SB_EINVAL, "reason", "'reason' is not valid UTF-8");
        return 0;
    }
    return res_err(res, SB_EINVAL, "type", "unknown event type %d", (int)ev->type);
}

int sb_submit(sb_engine *e, const sb_event *ev, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    uint64_t t0 = mono_ns();
    ev_op op = {.ev = ev};
    int rc = check_event(ev, &op, res);
    __atomic_add_fetch(&e->live_events, 1, __ATOMIC_RELAXED);
    /* A new call stops at a full map; the events of calls already taken
    ** may use its reserve, so that those calls can end. */
    if (!rc) rc = eng_write_event(e, do_event, &op, res, ev->type != SB_EV_OFFER);
    __atomic_sub_fetch(&e->live_events, 1, __ATOMIC_RELAXED);
    if (op.attrs) json_decref(op.attrs);
    /* An event of no known type is a failure only (type 0 is the tick's). */
    int type = ev && ev->type >= SB_EV_OFFER && ev->type <= SB_EV_AGENT_STATUS ? (int)ev->type : -1;
    eng_count_event(e, type, rc != 0, (mono_ns() - t0) / 1000);
    return rc;
}

/* --- the JSON form of events ------------------------------------------------------ */

int sb_submit_json(sb_engine *e, const char *account, const char *json, size_t len, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    uint64_t t0 = mono_ns();
    json_t *doc;
    int rc = jv_parse(json, len, &doc, res);
    if (rc) {
        eng_count_event(e, -1, 1, (mono_ns() - t0) / 1000);
        return rc;
    }
    char type[32] = "", call[SB_ID_MAX + 1] = "", queue[SB_ID_MAX + 1] = "",
         agent[SB_ID_MAX + 1] = "", caller[64] = "", called[64] = "", outcome[32] = "",
         status[32] = "", reason[SB_REASON_MAX + 1] = "", by[16] = "";
    long long prio = 0, attempt = 0;
    sb_event ev = {.account = account};
    char *attrs = NULL;
    /* The type first, when it is one, for the fields it takes; otherwise
    ** a field no type takes is refused before the type is. */
    json_t *jt = json_object_get(doc, "type");
    for (int i = 1; json_is_string(jt) && i < (int)countof(ev_types); i++)
        if (strcmp(json_string_value(jt), ev_types[i]) == 0) ev.type = (sb_event_type)i;
    if (ev.type) {
        if ((rc = ev_keys(doc, ev.type, res))) goto out;
    } else if ((rc = jv_keys(doc, ev_names, NULL, res)) ||
               (rc = jv_str(doc, "type", NULL, 1, type, sizeof type, res))) {
        goto out;
    }
    if (!ev.type) {
        rc = res_err(res, SB_EINVAL, "type",
                     "'type' must be offer, ring_result, hangup, abandon, transfer or "
                     "agent_status");
        goto out;
    }
    if ((rc = jv_id(doc, "call", NULL, ev.type != SB_EV_AGENT_STATUS, call, res)) ||
        (rc = jv_id(doc, "queue", NULL, ev.type == SB_EV_OFFER, queue, res)) ||
        (rc = jv_id(doc, "agent", NULL,
                    ev.type == SB_EV_RING_RESULT || ev.type == SB_EV_AGENT_STATUS, agent, res)) ||
        (rc = jv_str(doc, "caller", NULL, 0, caller, sizeof caller, res)) ||
        (rc = jv_str(doc, "called", NULL, 0, called, sizeof called, res)) ||
        (rc = jv_int(doc, "priority", NULL, 0, 0, 100, &prio, res)) ||
        (rc = jv_str(doc, "outcome", NULL, ev.type == SB_EV_RING_RESULT, outcome, sizeof outcome,
                     res)) ||
        (rc = jv_str(doc, "status", NULL, ev.type == SB_EV_AGENT_STATUS, status, sizeof status,
                     res)) ||
        (rc = jv_str(doc, "reason", NULL, 0, reason, sizeof reason, res)) ||
        (rc = jv_int(doc, "attempt", NULL, 0, 1, UINT32_MAX, &attempt, res)) ||
        (rc = jv_str(doc, "by", NULL, 0, by, sizeof by, res)))
        goto out;
    if (by[0] && end_party_parse(by) < 0) {
        rc = res_err(res, SB_EINVAL, "by", "'by' must be caller, agent or system");
        goto out;
    }
    ev.by = by[0] ? (sb_end_party)end_party_parse(by) : 0;
    ev.attempt = (uint32_t)attempt;
    if (ev.type == SB_EV_OFFER && caller[0] && e164_normalize(caller, (char[17]){0})) {
        rc = res_err(res, SB_EINVAL, "caller", "%s", bad_caller);
        goto out;
    }
    if (ev.type == SB_EV_RING_RESULT) {
        int o = ring_outcome_parse(outcome);
        if (o < 0) {
            rc = res_err(res, SB_EINVAL, "outcome",
                         "'outcome' must be answered, no_answer, busy or rejected");
            goto out;
        }
        ev.outcome = (sb_ring_outcome)o;
    }
    if (ev.type == SB_EV_AGENT_STATUS) {
        int s = agent_status_parse(status);
        if (s != SB_AGENT_AVAILABLE && s != SB_AGENT_PAUSED && s != SB_AGENT_OFFLINE) {
            rc = res_err(res, SB_EINVAL, "status", "'status' must be available, paused or offline");
            goto out;
        }
        ev.status = (sb_agent_status)s;
    }
    json_t *a = json_object_get(doc, "attrs");
    if (a && !json_is_null(a)) {
        if (!json_is_object(a)) {
            rc = res_err(res, SB_EINVAL, "attrs", "'attrs' must be a JSON object");
            goto out;
        }
        if (!(attrs = json_dumps(a, JSON_COMPACT))) {
            rc = res_err(res, SB_ENOMEM, NULL, "out of memory");
            goto out;
        }
    }
    ev.call_id = call[0] ? call : NULL;
    ev.queue_id = queue[0] ? queue : NULL;
    ev.agent_id = agent[0] ? agent : NULL;
    ev.caller = caller[0] ? caller : NULL;
    ev.called = called[0] ? called : NULL;
    ev.priority = (int)prio;
    ev.reason = reason[0] ? reason : NULL;
    ev.attrs_json = attrs;
    json_decref(doc);
    doc = NULL;
    rc = sb_submit(e, &ev, res); /* counts it */
out:
    /* doc is still here when the document was refused before sb_submit:
    ** it counts as a failed event of its type, as one sb_submit refuses
    ** does; without a type, as a failure only. */
    if (doc) eng_count_event(e, ev.type ? (int)ev.type : -1, 1, (mono_ns() - t0) / 1000);
    free(attrs);
    if (doc) json_decref(doc);
    return rc;
}

/* --- timers ------------------------------------------------------------------------- */

static int fire_timer(wtx *t, int kind, const uint8_t *ref, size_t rl, int64_t due)
{
    sb_engine *e = t->e;
    char id[SB_ID_MAX + 1];
    int rc = 0;
    if (kind == TM_WRAPUP) {
        if (rl != 4) return 0;
        agent_rec a = {0};
        if (st_agent_load(t->txn, e, t->acct, be32(ref), &a) == 0 && a.status == SB_AGENT_WRAP_UP &&
            a.wrapup_due == due) {
            a.wrapup_due = 0;
            rc = agent_back(t, &a, "wrap-up ended", 1);
        }
        agent_free(&a);
        return rc;
    }
    if (rl == 0 || rl > SB_ID_MAX) return 0;
    memcpy(id, ref, rl);
    id[rl] = 0;
    call_rec *c = &e->call;
    if (st_call_load(t->txn, e, t->acct, id, c)) return 0; /* gone: stale timer */
    queue_rec q = {0};
    if (load_queue(t, c->queue, &q)) {
        queue_free(&q);
        return 0;
    }
    /* A step the tick reaches only once the whole ring is over (the tick
    ** came that late) rings nobody: the end's own timer, due too, ends it. */
    if (kind == TM_RING && c->state == CALL_RINGING && progressive_pending(c) &&
        step_due(c) == due && t->now < c->ring_due) {
        rc = progressive_step(t, c, &q, due);
    } else if (kind == TM_RING && c->state == CALL_RINGING && c->ring_due == due) {
        /* A progressive ring's end: agents whose steps never came (a late
        ** tick) do not ring after it, as the next of a sequence would. */
        if (progressive_pending(c)) c->nseq = c->seqpos;
        c->ring_due = 0;
        uint32_t freed[MAX_RING];
        int nf, lined;
        if ((rc = rings_cut(t, c, &q, SB_RING_NO_ANSWER, "ring timeout", freed, &nf)) == 0 &&
            (rc = ring_failed(t, c, &q, &lined)) == 0)
            rc = redispatch_agents(t, freed, nf, lined ? q.num : 0);
    } else if (kind == TM_WAKE && c->state == CALL_WAITING && c->wake_due == due) {
        c->wake_due = 0;
        rc = route_call(t, c, &q, 0);
    } else if (kind == TM_MAXWAIT && c->maxwait_due == due) {
        c->maxwait_due = 0;
        int64_t until = q.max_wait ? c->queued + (int64_t)q.max_wait * 1000 : 0;
        if (until > t->now) {
            /* The queue's max wait was raised since the timer was set: it
            ** holds at its new time. */
            c->maxwait_due = until;
            if ((rc = timer_set(t, until, TM_MAXWAIT, c->id, strlen(c->id))) == 0)
                rc = st_call_save(t->txn, e, t->acct, c);
        } else if (until && c->state == CALL_WAITING) {
            rc = route_call(t, c, &q, 1);
        } else if (until && c->state == CALL_RINGING) {
            /* The caller's wait ends while agents ring: the ring is cut, as
            ** app_queue's timeout cuts it, rather than a sequence ringing
            ** on past it; the call overflows or is turned away (route_call,
            ** its max wait passed, decides nothing else), and the agents
            ** freed serve other calls. */
            uint32_t freed[MAX_RING];
            int nf;
            c->nseq = c->seqpos = 0;
            if ((rc = rings_cut(t, c, &q, 0, "max wait", freed, &nf)) == 0 &&
                (rc = call_timer_del(t, &c->ring_due, TM_RING, c)) == 0 &&
                (rc = route_call(t, c, &q, 1)) == 0)
                rc = redispatch_agents(t, freed, nf, 0);
        } else {
            rc = st_call_save(t->txn, e, t->acct, c); /* no max wait any more */
        }
    }
    queue_free(&q);
    return rc;
}

/* One tick transaction: up to limit timers due, in due order. When one
** fails to fire, failed_at is its place in the batch and key its key. */
typedef struct tick_run {
    int limit, fired, failed_at;
    uint8_t key[13 + SB_ID_MAX];
    size_t kl;
    uint64_t until_ns; /* sb_tick_for's budget ends (mono_ns; 0: none) */
    int cut;           /* it ended with timers still due */
} tick_run;

/* A timer of the tick, in the order it fires. */
typedef struct tick_ent {
    uint8_t key[13 + SB_ID_MAX];
    size_t kl;
    int64_t fire_due;
    int32_t priority; /* policy wake-ups: the call's place in line */
    int64_t queued;
} tick_ent;

/* Delete the timer and fire it. n: its place in the tick, for a failure. */
static int fire_ent(wtx *t, tick_run *r, const tick_ent *te, int n)
{
    sb_engine *e = t->e;
    int rc = st_del(t->txn, e, DB_TIMERS, te->key, te->kl);
    if (rc) return rc;
    r->fired++;
    uint32_t acct = be32(te->key + 9);
    uint8_t ak[4];
    MDB_val av;
    if (st_get(t->txn, e, DB_ACCOUNTS, ak, key_acct(ak, acct), &av) ||
        dec_account(av.mv_data, av.mv_size, &t->account_buf))
        return 0; /* account gone */
    t->account = &t->account_buf;
    t->acct = acct;
    pol_host_sync_gen(e->pol, acct, t->account_buf.policy_gen);
    if ((rc = fire_timer(t, te->key[8], te->key + 13, te->kl - 13, te->fire_due))) {
        r->failed_at = n;
        memcpy(r->key, te->key, te->kl);
        r->kl = te->kl;
    }
    return rc;
}

static int line_cmp(const void *a, const void *b)
{
    const tick_ent *x = a, *y = b;
    if (x->priority != y->priority) return x->priority > y->priority ? -1 : 1;
    if (x->queued != y->queued) return x->queued < y->queued ? -1 : 1;
    int k = memcmp(x->key, y->key, x->kl < y->kl ? x->kl : y->kl);
    if (k) return k;
    return x->kl < y->kl ? -1 : x->kl > y->kl; /* as the keys sort */
}

/* The policy wake-ups due with `first` (the same millisecond and account):
** in key order they would go by call id, so that of a caller further back
** in line could take the agent its policy waited for (an agent's no-answer
** delay ends for every call at once) from the one at the head. Read them
** (the first WAKE_GROUP in key order), sort them by place in line
** (priority, then time in line, as agents freed take calls), and keep the
** first `max`: the same ones in the same order for the same state, so a
** tick run again up to a timer that failed (sb_tick_for) fires exactly
** those before it. */
static int wake_group(wtx *t, const tick_ent *first, tick_ent *g, int max, int *ng)
{
    st_iter it;
    int n = 0, rc;
    for (rc = st_iter_open(&it, t->txn, t->e, DB_TIMERS, first->key, 13); rc == 0 && n < WAKE_GROUP;
         rc = st_iter_next(&it)) {
        if (it.klen <= 13 || it.klen > sizeof g[n].key) continue;
        tick_ent *te = &g[n++];
        memcpy(te->key, it.key, it.klen);
        te->kl = it.klen;
        te->fire_due = it.v.mv_size == 8 ? (int64_t)be64(it.v.mv_data) : (int64_t)be64(te->key);
    }
    st_iter_close(&it);
    if (rc && rc != MDB_NOTFOUND) return rc;
    call_rec *c = &t->e->call;
    for (int i = 0; i < n; i++) {
        char id[SB_ID_MAX + 1];
        memcpy(id, g[i].key + 13, g[i].kl - 13);
        id[g[i].kl - 13] = 0;
        g[i].priority = INT32_MIN; /* a stale one: last */
        g[i].queued = INT64_MAX;
        if (st_call_load(t->txn, t->e, be32(g[i].key + 9), id, c) == 0) {
            g[i].priority = c->priority;
            g[i].queued = c->queued;
        }
    }
    qsort(g, (size_t)n, sizeof *g, line_cmp);
    *ng = n < max ? n : max;
    return 0;
}

static int do_tick(wtx *t, void *arg)
{
    sb_engine *e = t->e;
    tick_run *r = arg;
    r->fired = 0; /* again from the start when the map grew and it reran */
    r->failed_at = -1;
    r->cut = 0;
    for (int n = 0; n < r->limit; n++) {
        st_iter it;
        int rc = st_iter_open(&it, t->txn, e, DB_TIMERS, "", 0);
        uint8_t key[13 + SB_ID_MAX];
        size_t kl = it.klen;
        if (rc == 0 && (kl < 13 || kl > sizeof key)) {
            rc = st_iter_del(&it); /* not ours: drop it */
            st_iter_close(&it);
            if (rc && rc != MDB_NOTFOUND) return rc;
            continue;
        }
        int64_t due = 0;
        if (rc == 0) {
            memcpy(key, it.key, kl);
            due = (int64_t)be64(key);
        }
        /* A timer tried again (timer_retry) fires as of its first due. */
        int64_t fire_due = rc == 0 && it.v.mv_size == 8 ? (int64_t)be64(it.v.mv_data) : due;
        st_iter_close(&it);
        if (rc == MDB_NOTFOUND) break;
        if (rc) return rc;
        if (due > t->now) break;
        /* Past the budget, the rest wait for the next call (one fires at
        ** least, so each call gets on); looked at after the next timer, so
        ** that a cut means one is due. */
        if (n && r->until_ns && mono_ns() >= r->until_ns) {
            r->cut = 1;
            break;
        }
        tick_ent te = {.kl = kl, .fire_due = fire_due};
        memcpy(te.key, key, kl);
        if (key[8] == TM_WAKE) {
            tick_ent g[WAKE_GROUP];
            int ng = 0, max = r->limit - n < WAKE_GROUP ? r->limit - n : WAKE_GROUP;
            if ((rc = wake_group(t, &te, g, max, &ng))) return rc;
            for (int i = 0; i < ng; i++) {
                if (n + i && r->until_ns && mono_ns() >= r->until_ns) {
                    r->cut = 1; /* the rest of the group, first in line, next time */
                    return 0;
                }
                if ((rc = fire_ent(t, r, &g[i], n + i))) return rc;
            }
            if (ng) n += ng - 1;
            continue;
        }
        if ((rc = fire_ent(t, r, &te, n))) return rc;
    }
    return 0;
}

/* The timer r->key failed to fire alone: it goes TICK_RETRY_MS later, keeping
** the due it fires as of, so the timers behind it fire meanwhile. The call
** (or agent) keeps that first due, which fire_timer matches: an event that
** drops the timer by its due (call_timer_del, timer_del) leaves this entry,
** which then fires as a no-op, as any stale timer does. */
static int do_timer_retry(wtx *t, void *arg)
{
    tick_run *r = arg;
    MDB_val v;
    uint8_t first[8], k[13 + SB_ID_MAX];
    int rc = st_get(t->txn, t->e, DB_TIMERS, r->key, r->kl, &v);
    if (rc) return rc == MDB_NOTFOUND ? 0 : rc; /* gone meanwhile */
    if (v.mv_size == 8)
        memcpy(first, v.mv_data, 8);
    else
        memcpy(first, r->key, 8);
    memcpy(k, r->key, r->kl);
    put_be64(k, (uint64_t)(t->now + TICK_RETRY_MS));
    if ((rc = st_del(t->txn, t->e, DB_TIMERS, r->key, r->kl))) return rc;
    return st_put(t->txn, t->e, DB_TIMERS, k, r->kl, first, 8);
}

/* What a timer is, for the log: "ring timeout of call 'c1' (account 'acme')". */
static void timer_name(sb_engine *e, const tick_run *r, char *out, size_t n)
{
    static const char *const kinds[] = {"", "ring timeout", "wrap-up end", "policy wake-up",
                                        "max wait"};
    int kind = r->key[8] < countof(kinds) ? r->key[8] : 0;
    char acct[SB_ID_MAX + 1] = "?";
    MDB_txn *txn;
    if (eng_read_begin(e, &txn) == 0) {
        uint8_t ak[4];
        MDB_val av;
        acct_rec a;
        if (st_get(txn, e, DB_ACCOUNTS, ak, key_acct(ak, be32(r->key + 9)), &av) == 0 &&
            dec_account(av.mv_data, av.mv_size, &a) == 0)
            str_copy(acct, sizeof acct, a.id);
        eng_read_end(e, txn);
    }
    if (r->key[8] == TM_WRAPUP && r->kl == 17)
        snprintf(out, n, "%s of agent #%u (account '%s')", kinds[kind], be32(r->key + 13), acct);
    else
        snprintf(out, n, "%s of call '%.*s' (account '%s')", kinds[kind] ? kinds[kind] : "timer",
                 (int)(r->kl - 13), (const char *)r->key + 13, acct);
}

/* Failures that are not one timer's: a full map or disk, no memory. */
static int tick_wide(int rc)
{
    return rc == SB_EFULL || rc == SB_ENOMEM || rc == SB_EBUSY || !IS_SB_ERR(rc);
}

int sb_tick(sb_engine *e, sb_result *res)
{
    return sb_tick_for(e, 0, NULL, res);
}

/* Is a timer due now? (sb_tick_for's more, where the tick did not see.) */
static int timer_due(sb_engine *e)
{
    return sb_next_deadline(e) <= eng_now(e);
}

int sb_tick_for(sb_engine *e, uint32_t max_ms, int *more, sb_result *res)
{
    res_reset(res);
    if (more) *more = 0;
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    int total = 0, rc;
    uint64_t t0 = mono_ns(), until = max_ms ? t0 + (uint64_t)max_ms * 1000000u : 0;
    do {
        tick_run r = {.limit = TICK_BATCH, .failed_at = -1, .until_ns = until};
        __atomic_add_fetch(&e->live_events, 1, __ATOMIC_RELAXED);
        rc = eng_write_ex(e, do_tick, &r, res, 1); /* timers of calls taken: as their events */
        __atomic_sub_fetch(&e->live_events, 1, __ATOMIC_RELAXED);
        if (rc && r.failed_at >= 0 && !tick_wide(rc)) {
            /* One timer failed (a call whose record does not read, say):
            ** those before it fire again without it; alone, it is put off
            ** and logged, and the rest go on. */
            if (r.failed_at > 0) {
                res_clear_error(res);
                r.limit = r.failed_at;
                rc = 0;
            } else {
                char what[SB_ID_MAX * 2 + 96], why[600];
                timer_name(e, &r, what, sizeof what);
                snprintf(why, sizeof why, "%s", sb_result_message(res));
                res_clear_error(res);
                rc = eng_write_ex(e, do_timer_retry, &r, res, 1);
                if (rc) break;
                /* Many may fail alike (a directory whose data keys were
                ** lost): one line a second, counting the others. */
                int64_t now = eng_now(e),
                        last = __atomic_load_n(&e->timer_log_ms, __ATOMIC_RELAXED);
                if (!last || now - last >= 1000 || now < last) {
                    sb_log(e, SB_LOG_ERROR,
                           "%s failed: %s; tried again in " OWN_D
                           " s, the other timers go on (" OWN_U " more "
                           "failed since the last such line)",
                           what, why, TICK_RETRY_MS / 1000,
                           __atomic_exchange_n(&e->timer_log_quiet, 0, __ATOMIC_RELAXED));
                    __atomic_store_n(&e->timer_log_ms, now, __ATOMIC_RELAXED);
                } else {
                    __atomic_add_fetch(&e->timer_log_quiet, 1, __ATOMIC_RELAXED);
                }
                eng_count_event(e, 0, 1, 0);
            }
            if (!rc && r.failed_at > 0) {
                __atomic_add_fetch(&e->live_events, 1, __ATOMIC_RELAXED);
                rc = eng_write_ex(e, do_tick, &r, res, 1);
                __atomic_sub_fetch(&e->live_events, 1, __ATOMIC_RELAXED);
                total += r.fired;
                if (rc) break;
            }
            /* Failures count against the share too. */
            if (until && (r.cut || mono_ns() >= until)) {
                if (more) *more = r.cut || timer_due(e);
                break;
            }
            continue;
        }
        total += r.fired;
        if (!rc && until && (r.cut || (r.fired == TICK_BATCH && mono_ns() >= until))) {
            if (more) *more = r.cut || timer_due(e); /* a batch's end looked at no next */
            break;
        }
        if (rc || r.fired < TICK_BATCH) break;
    } while (1);
    if (total) eng_count_event(e, 0, rc != 0, (mono_ns() - t0) / 1000);
    return rc;
}

int64_t sb_next_deadline(sb_engine *e)
{
    if (!e) return INT64_MAX;
    MDB_txn *txn;
    if (eng_read_begin(e, &txn)) return INT64_MAX;
    st_iter it;
    int64_t due = INT64_MAX;
    if (st_iter_open(&it, txn, e, DB_TIMERS, "", 0) == 0 && it.klen >= 8)
        due = (int64_t)be64(it.key);
    st_iter_close(&it);
    eng_read_end(e, txn);
    return due;
}

/* --- reading a call ------------------------------------------------------------------ */

static const char *const trace_kinds[] = {"", "ring", "wait", "move", "reject", "error"};
static const char *const call_states[] = {"", "waiting", "ringing", "connected"};

/* The agent a connected call is on (and the device it answered on), and
** the agents ringing for it. A connected call keeps its answered ring, which
** is not ringing any more. */
static void call_agents_json(MDB_txn *txn, sb_engine *e, uint32_t acct, const call_rec *c,
                             json_t *o)
{
    agent_rec a = {0};
    if (c->state == CALL_CONNECTED && st_agent_id_of(txn, e, acct, c->agent, &a)[0]) {
        json_object_set_new(o, "agent", json_string(a.id));
        for (int i = 0; i < c->nring; i++)
            if (c->ring[i].agent == c->agent)
                json_object_set_new(o, "device", json_string(pol_dev_name(c->ring[i].dev)));
        json_object_set_new(o, "answered_ms", json_integer(c->answered));
    }
    /* Each ring as its RING action gave it (the device's URI as the agent
    ** has it now, the call's ring attempt): what a gateway whose answer was
    ** lost (a timeout, a restart) needs to ring the phone and report the
    ** result. */
    json_t *ringing = json_array();
    for (int i = 0; i < c->nring && c->state == CALL_RINGING; i++)
        if (st_agent_load(txn, e, acct, c->ring[i].agent, &a) == 0) {
            json_t *r =
                json_pack("{s:s, s:s}", "agent", a.id, "device", pol_dev_name(c->ring[i].dev));
            int di = dev_index(c->ring[i].dev);
            if (r && di >= 0 && a.uri[di][0]) json_object_set_new(r, "uri", json_string(a.uri[di]));
            if (r) json_object_set_new(r, "attempt", json_integer((json_int_t)c->attempts));
            json_array_append_new(ringing, r);
        }
    json_object_set_new(o, "ringing", ringing);
    agent_free(&a);
}

int sb_call_list(sb_engine *e, const char *account, const char *queue, sb_result *res)
{
    return sb_call_list_page(e, account, queue, NULL, 0, res);
}

int sb_call_list_page(sb_engine *e, const char *account, const char *queue, const char *after,
                      size_t limit, sb_result *res)
{
    res_reset(res);
    if (after && *after && !id_valid(after))
        return res_err(res, SB_EINVAL, "after", "'after' must be a call id, the last of a page");
    if (queue && !*queue) return res_queue_empty(res);
    MDB_txn *txn;
    acct_rec acc;
    int rc = eng_read_account(e, account, &txn, &acc, res);
    if (rc) return rc;
    char last[SB_ID_MAX + 1] = "";
    int more = 0;
    queue_rec q = {0};
    call_rec *c = calloc(1, sizeof *c);
    json_t *arr = json_array();
    if (!c || !arr) {
        rc = res_err(res, SB_ENOMEM, NULL, "out of memory");
        goto done;
    }
    if (queue && (rc = st_queue_by_id(txn, e, acc.num, queue, &q))) {
        rc = rc == SB_ENOTFOUND ? res_no_such(res, "queue", "queue", queue)
                                : eng_mdb_err(res, rc, "read queue");
        goto done;
    }
    st_iter it;
    uint8_t p[4 + SB_ID_MAX + 1];
    size_t al = after ? strlen(after) : 0;
    key_acct(p, acc.num);
    if (al) memcpy(p + 4, after, al);
    for (rc = al ? st_iter_after(&it, txn, e, DB_CALLS, p, 4, p, 4 + al)
                 : st_iter_open(&it, txn, e, DB_CALLS, p, 4);
         rc == 0; rc = st_iter_next(&it)) {
        if (dec_call(it.v.mv_data, it.v.mv_size, c)) {
            call_free(c);
            continue;
        }
        queue_rec cq = {0}; /* the call's queue: q when listing one */
        int in = queue ? c->queue == q.num : st_queue_load(txn, e, acc.num, c->queue, &cq) == 0;
        if (in && limit && json_array_size(arr) == limit) {
            more = 1; /* one more to list */
            queue_free(&cq);
            call_free(c);
            break;
        }
        if (in) {
            json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:i}", "id", c->id, "state",
                                  call_states[c->state], "queue", queue ? q.id : cq.id, "priority",
                                  c->priority, "offered_ms", (json_int_t)c->offered, "queued_ms",
                                  (json_int_t)c->queued, "attempts", (int)c->attempts);
            call_agents_json(txn, e, acc.num, c, o);
            json_array_append_new(arr, o);
            str_copy(last, sizeof last, c->id);
        }
        queue_free(&cq);
        call_free(c);
    }
    st_iter_close(&it);
    rc = rc == MDB_NOTFOUND || (rc == 0 && more) ? 0 : eng_mdb_err(res, rc, "list calls");
done:
    if (!rc && more) res_doc(res, json_pack("{s:O, s:s}", "calls", arr, "next", last));
    if (!rc && !more) res_doc(res, json_pack("{s:O}", "calls", arr));
    json_decref(arr);
    queue_free(&q);
    free(c);
    eng_read_end(e, txn);
    return rc;
}

int sb_call_get(sb_engine *e, const char *account, const char *call_id, sb_result *res)
{
    res_reset(res);
    MDB_txn *txn;
    acct_rec acc;
    int rc = eng_read_account(e, account, &txn, &acc, res);
    if (rc) return rc;
    call_rec *c = calloc(1, sizeof *c);
    if (!c) {
        eng_read_end(e, txn);
        return res_err(res, SB_ENOMEM, NULL, "out of memory");
    }
    rc = st_call_load(txn, e, acc.num, call_id, c);
    if (rc == SB_ENOTFOUND) {
        /* A finished call is read from its record. */
        rc = record_get(e, txn, acc.num, call_id, res);
        goto done;
    }
    if (rc) {
        rc = eng_mdb_err(res, rc, "read call");
        goto done;
    }
    if ((rc = rec_open_call(e, acc.num, acc.id, c))) {
        rc = res_err(res, rc, NULL, "call '%s': its sealed numbers do not open (%s)", c->id,
                     sb_code_name(rc));
        goto done;
    }
    queue_rec q = {0};
    st_queue_load(txn, e, acc.num, c->queue, &q);
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:i}", "id", c->id, "state",
                          call_states[c->state], "queue", q.id, "priority", c->priority,
                          "offered_ms", (json_int_t)c->offered, "queued_ms", (json_int_t)c->queued,
                          "attempts", (int)c->attempts);
    queue_free(&q);
    if (c->state == CALL_WAITING) {
        /* Its place in line (1: next), for a gateway that announces it, as
        ** the policy's ctx.queue.position gives it. */
        wtx rt = {.e = e, .txn = txn, .acct = acc.num, .now = eng_now(e)};
        line_arg la = {&rt, c, c->queue};
        int pos = 0;
        double lw = 0;
        if (queue_line(&la, &pos, &lw) == 0) json_object_set_new(o, "position", json_integer(pos));
    }
    /* A number the call does not have (a withheld caller, none dialled) is
    ** left out. */
    if (c->caller[0]) json_object_set_new(o, "caller", json_string(c->caller));
    if (c->called[0]) json_object_set_new(o, "called", json_string(c->called));
    sb_buf tmp = {0};
    size_t al;
    const char *attrs = rec_call_attrs(c, &tmp, &al);
    if (al) json_object_set_new(o, "attrs", json_loadb(attrs, al, 0, NULL));
    buf_free(&tmp);
    char buf[SB_ID_MAX + 1];
    agent_rec a = {0};
    call_agents_json(txn, e, acc.num, c, o);
    json_t *att = json_array();
    for (int i = 0; i < c->natt; i++) {
        const attempt_rec *x = &c->att[i];
        const char *id = st_agent_id_of(txn, e, acc.num, x->agent, &a);
        str_copy(buf, sizeof buf, id[0] ? id : "?");
        json_array_append_new(att, json_pack("{s:s, s:s, s:s, s:I, s:f}", "agent", buf, "device",
                                             pol_dev_name(x->dev), "outcome",
                                             x->outcome ? ring_outcome_name(x->outcome) : "ringing",
                                             "start_ms", (json_int_t)x->start, "duration",
                                             x->dur_ms / 1000.0));
    }
    agent_free(&a);
    json_object_set_new(o, "attempts_detail", att);
    json_t *tr = json_array();
    for (int i = 0; i < c->ntrace; i++) {
        const trace_rec *x = &c->trace[i];
        json_array_append_new(tr, json_pack("{s:I, s:s, s:s, s:s, s:b, s:s}", "t_ms",
                                            (json_int_t)x->t, "decision", trace_kinds[x->kind],
                                            "policy", x->policy, "version", x->version, "fallback",
                                            x->fallback, "detail", x->detail));
    }
    json_object_set_new(o, "trace", tr);
    json_object_set_new(o, "decisions", json_integer(c->ntrace_total));
    res_doc(res, o);
done:
    call_free(c);
    free(c);
    eng_read_end(e, txn);
    return rc;
}
