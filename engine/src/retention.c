/*
** retention.c — what becomes of records once written: the account's
** retention policy decides when a record is written and at each review date
** it asks for; erasure and access requests by number; legal holds; the audit
** log; the purge of deleted accounts; and sweeps in short transactions.
**
** The review index (DB_REVIEW: due time, then the record's key; the value
** the account's review epoch) holds at most one live entry per record. A
** sweep walks it from the start with one cursor, reviews each record due,
** deletes the entry under the cursor and, when the policy asks for another
** review, puts a new entry further on — all in the same transaction, so a
** sweep can stop anywhere (a crash, a kill, its time budget) and the next
** one carries on with exactly the records not yet handled. A record
** carries its entry's due (records.h), patched in place when a review moves
** it, so whatever deletes a record outside a sweep (an erasure request, a
** hold's release running one again, a decision at the record's write) takes
** its entry in the same transaction. An entry whose record is gone anyway
** (a version 2 record, which did not keep the due; a purge) or whose epoch
** is not the record's (the retention policy changed since) is dropped when
** it comes up.
**
** Background work that walks an account — purging a deleted account,
** scheduling every record for review after the retention policy changed —
** is a job (DB_JOBS) whose cursor is persisted in the same transactions as
** the work. The audit log gets one value per account and transaction
** holding that transaction's entries (numbered one by one).
*/
#include "crypto.h"
#include "jsonv.h"
#include "records.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Records per sweep transaction, or time, whichever comes first. The time
** is also the longest another process's events wait for a sweep
** transaction, as they cannot make it yield early. A transaction that
** anonymizes or deletes dirties a leaf of the pseudonym or call-id index
** for nearly every record (their keys are random) and the branch pages
** above them: one of 2 ms dirties each branch page once for about three
** times the records of a 1 ms one, about 600 instead of 200 (measured with
** tests/bench/bench_sweep, 400,000 records, side by side: 9% more records
** per CPU second; 4 ms gave 15%). Keeps cost the same at 1 and 5 ms. */
#define SWEEP_BATCH 1000
#define SWEEP_TXN_NS 2000000ull
/* Index deletes a sweep transaction defers, at most, in one round: they
** are applied after the loop that watches for waiting events, so they
** bound how long an event arriving meanwhile waits (about 2 us each). A
** transaction takes another round while no event waits and it has time. */
#define SWEEP_DELS_MAX 256
#define SWEEP_MIN 2 /* records a transaction handles before yielding to events */
/* How long a sweep that yielded lets events go first, at most, when no quiet
** spell comes. Under steady events the wait runs out every time, and the
** transaction that follows (cold caches: about 90 us for its two records)
** delays the event it blocks or whose commit wakes it: measured with
** tests/bench/bench_sweep, at 2 ms one offer in 70 met one, which set the
** offers' p99 during a sweep (2.4-3.0x that without one); at 10 ms it is
** 1.1-1.4x, with the sweep's rate beside the events unchanged (it is made in
** the quiet spells). The least a sweep does under events that never pause:
** SWEEP_MIN records per wait. */
#define SWEEP_YIELD_NS 10000000ull
#define ERASE_BATCH 500 /* records per erasure transaction */
#define JOB_BATCH 256   /* keys a job step collects at once */
#define DAY_MS 86400000LL
#define HOLD_RECHECK_MS DAY_MS /* a record a hold kept is looked at again daily */
#define FAIL_RETRY_MS DAY_MS   /* a review that failed is tried again a day later */
#define HOLDS_MAX 1000         /* holds per account */
#define AUDIT_VALUE_MAX                                                                            \
    1500 /* bytes of entries per audit value: no overflow pages                                    \
          ** (contiguous runs LMDB must search its free list for) */
/* Audit values: V_AUDIT before format 12 (read, no longer written), V_AUDIT2
** since (the strings a value's entries share written once). */
#define V_AUDIT 1
#define V_AUDIT2 2
#define AUDIT_STRS_MAX 32 /* strings one audit value defines, at most */
#define AUDIT_OWN_MAX 512 /* the engine's own text in an audit reason, at most (audit_add) */
#define AUDIT_NEW_STR 0xFF
#define V_HOLD 1
#define V_JOB 1

enum { SRC_WRITE = 1, SRC_REVIEW, SRC_ERASURE, SRC_HOLD, SRC_ACCESS };

/* A hold's reason and id: a run of this many digits reads as a number. */
#define HOLD_NATIONAL_MIN REASON_NATIONAL_MIN
static const char *const src_names[] = {"", "write", "review", "erasure", "hold", "access"};
static const char *const act_names[] = {"none", "keep", "anonymize", "delete"};

enum { HK_CALL = 1, HK_NUMBER, HK_RANGE };
static const char *const hk_names[] = {"", "call", "number", "range"};

/* Job keys: kind(1) acct(4); the sweep's run state is the single key "S",
** and where its walk of the accounts' audit logs is the single key "A".
** The upgrade walks (JOB_UPGRADE, JOB_REINDEX) are of every account's
** records: account 0. */
enum {
    JOB_AUDIT = 'A',
    JOB_ERASURE = 'E',
    JOB_REINDEX = 'I',
    JOB_PURGE = 'P',
    JOB_RESCAN = 'R',
    JOB_SWEEP = 'S',
    JOB_UPGRADE = 'U'
};

typedef struct hold {
    char id[SB_ID_MAX + 1];
    int kind;
    char call[SB_ID_MAX + 1];
    uint8_t pseudo[16];
    int64_t from, to;
    char reason[SB_REASON_MAX + 1];
    int64_t created;
} hold;

typedef struct counts {
    uint64_t reviewed, kept, anonymized, deleted, overridden, failed, purged;
    uint64_t erased;        /* records an erasure request a hold had kept from reached */
    uint64_t audit_expired; /* audit entries older than their account's audit_days, removed */
} counts;
#define NCOUNTS 9 /* as stored: 7 before erased came, 8 before audit_expired */

/* The context of one transaction's retention work. Built per transaction
** (eng_write may run a function again from scratch), never kept across. */
typedef struct rctx {
    wtx *t;
    sb_engine *e;
    uint32_t acct; /* the account loaded (0: none) */
    int exists;
    acct_rec a;
    rec_settings s;
    hold *holds;
    int nholds, capholds;
    /* the audit entries of this transaction for account audit_acct */
    uint32_t audit_acct;
    uint64_t audit_first; /* sequence number of the first buffered entry */
    int audit_n;
    wbuf audit;
    /* the strings the buffered value defines: where in it, how long */
    int audit_nstr;
    struct {
        uint32_t off, len;
    } audit_str[AUDIT_STRS_MAX];
    /* Sweeps: review entries to put once the cursor on the index is closed,
    ** and the index entries to delete (pseudonym index, call-id index);
    ** both go in key order at the end of the transaction's batch. */
    int defer;
    wbuf pend;
    wbuf dels;
    int ndels;
    /* Sweeps: a cursor on the records, which meet in key order. */
    MDB_cursor *rcur;
    sb_buf val; /* a private copy of the record being handled */
    wbuf w;
    counts n;
    int64_t due; /* sweeps: what counts as now for this run (a rescan's reviews are due by it) */
    int64_t reviewing; /* sweeps: due of the entry under review (deleted already) */
    int erase_held;    /* erasure decisions a hold overrode in this transaction */
    held_tally held;   /* the decisions holds overrode in it, per hold (for the log) */
    json_t *reasons;   /* erasure: "action: reason" -> count */
    int memo;          /* audit_add: memo_raw and memo_clean hold a reason */
    int scrub_noted;   /* eng_scrub_want called in this transaction */
    /* sweeps: the account whose rescan job was looked up last, and that
    ** job's epoch (rescan 0: none pending) */
    uint32_t rescan_acct, rescan_epoch;
    int rescan;
    pol_host *pol; /* the policy state that decides (NULL: the engine's; previews: their own) */
    /* the record view */
    char id[SB_ID_MAX + 1], queue[SB_ID_MAX + 1], first_queue[SB_ID_MAX + 1], agent[SB_ID_MAX + 1],
        att_agent[SB_ID_MAX + 1], reason[REC_REASON_MAX + 1];
    char vpol[MAX_TRACE][SB_NAME_MAX + 1], vver[MAX_TRACE][17];
    const char *vpols[MAX_TRACE], *vvers[MAX_TRACE];
    const rec_data *cur;
    /* audit_add: the last reason and what the audit keeps of it. A sweep's
    ** reasons repeat record after record (the policy's few texts), and
    ** redacting each again was an eighth of a sweep's instructions. */
    char memo_raw[2 * SB_REASON_MAX + SB_ID_MAX + 64];
    char memo_clean[3 * (2 * SB_REASON_MAX + SB_ID_MAX + 64)];
} rctx;

static void rctx_init(rctx *x, wtx *t)
{
    memset(x, 0, offsetof(rctx, id));
    x->id[0] = 0;
    x->t = t;
    x->e = t->e;
}

static void rctx_free(rctx *x)
{
    free(x->holds);
    free(x->held.v);
    buf_free(&x->val);
    buf_free(&x->w.b);
    buf_free(&x->audit.b);
    buf_free(&x->pend.b);
    buf_free(&x->dels.b);
    if (x->rcur) mdb_cursor_close(x->rcur);
    if (x->reasons) json_decref(x->reasons);
}

/* --- what legal holds overrode, for the log ------------------------------------ */
/* A decision a hold overrode is in the audit log, with its record. The
** engine's log says so once per hold, with a count: for a sweep run (the
** daemon's is many calls, one a turn of its loop), for an erasure request,
** and for records as they are written, at once for a hold's first and then
** at most once a minute of the engine's clock, those between counted into
** its next line or said at the end of the next sweep run. A line per record
** made a time-range hold over a busy month, reviewed again daily, hundreds
** of thousands of lines a day. */
#define HELD_LOG_MS 60000

struct held_count {
    int scope; /* HELD_*; 0 in a transaction's own tally */
    char account[SB_ID_MAX + 1], hold[SB_ID_MAX + 1];
    uint64_t n[2];  /* what the policy decided: delete, anonymize */
    int64_t logged; /* HELD_WRITE: when its last line was said (0: never) */
};

/* The count of hold hold_id of account `account` in t, made if need be;
** NULL when there is no memory for it. */
static struct held_count *held_find(held_tally *t, int scope, const char *account,
                                    const char *hold_id)
{
    for (int i = 0; i < t->n; i++) {
        struct held_count *c = &t->v[i];
        if (c->scope == scope && !strcmp(c->hold, hold_id) && !strcmp(c->account, account))
            return c;
    }
    if (t->n == t->cap) {
        int nc = t->cap ? 2 * t->cap : 4;
        struct held_count *nv = realloc(t->v, (size_t)nc * sizeof *nv);
        if (!nv) return NULL;
        t->v = nv;
        t->cap = nc;
    }
    struct held_count *c = &t->v[t->n++];
    memset(c, 0, sizeof *c);
    c->scope = scope;
    str_copy(c->account, sizeof c->account, account);
    str_copy(c->hold, sizeof c->hold, hold_id);
    return c;
}

void ret_held_line(log_text *t, const char *account, const char *hold_id, int scope,
                   uint64_t deletes, uint64_t anonymizes)
{
    static const char *const where[] = {"as records were written since its last line",
                                        "in this sweep", "in an erasure request"};
    unsigned long long n = deletes + anonymizes;
    logt_init(t);
    logt_add(t,
             "retention: account %s: " OWN_LLU
             " decision%s overridden by legal hold %s %s (" OWN_LLU " delete, " OWN_LLU
             " anonymize; the audit log has each)",
             account, n, n == 1 ? "" : "s", hold_id, where[scope], (unsigned long long)deletes,
             (unsigned long long)anonymizes);
}

/* The counts said with the engine's own marked (LOG_OWN): a sweep over a
** large store overrides millions of decisions, and the ids around them,
** the account's and the hold's, are the caller's. */
static void held_say(sb_engine *e, const struct held_count *c, int scope)
{
    if (!c->n[0] && !c->n[1]) return;
    log_text t;
    ret_held_line(&t, c->account, c->hold, scope, c->n[0], c->n[1]);
    sb_log_text(e, SB_LOG_INFO, &t);
}

/* Add src's counts into dst under scope; a count there is no memory for is
** said at once. */
static void held_merge(sb_engine *e, held_tally *dst, const held_tally *src, int scope)
{
    for (int i = 0; src && i < src->n; i++) {
        const struct held_count *s = &src->v[i];
        struct held_count *c = held_find(dst, scope, s->account, s->hold);
        if (!c) {
            held_say(e, s, scope);
            continue;
        }
        c->n[0] += s->n[0];
        c->n[1] += s->n[1];
    }
}

/* Move src's counts into dst (src left empty). */
static void held_take(held_tally *dst, held_tally *src)
{
    free(dst->v);
    *dst = *src;
    memset(src, 0, sizeof *src);
}

/* The engine's counts: src (a committed transaction's, or NULL) added
** under scope, then what is due said (after the lock, as the log callback
** runs outside it): with all, every count (a sweep run ended, the engine
** closes); else the records written, by each hold's minute. */
static void held_engine(sb_engine *e, const held_tally *src, int scope, int64_t now, int all)
{
    rec_state *rs = e->rec;
    held_tally due = {0};
    pthread_mutex_lock(&rs->held_mu);
    held_merge(e, &rs->held, src, scope);
    int k = 0;
    for (int i = 0; i < rs->held.n; i++) {
        struct held_count c = rs->held.v[i];
        int write = c.scope == HELD_WRITE, have = c.n[0] + c.n[1] > 0;
        if (have && (all || (write && (!c.logged || now - c.logged >= HELD_LOG_MS)))) {
            struct held_count *d = held_find(&due, c.scope, c.account, c.hold);
            if (d) {
                d->n[0] = c.n[0];
                d->n[1] = c.n[1];
            } else {
                held_say(e, &c, c.scope);
            }
            c.n[0] = c.n[1] = 0;
            c.logged = now;
            have = 0;
        }
        /* Kept while it has a count, or while a write's minute runs. */
        if (have || (write && now - c.logged < HELD_LOG_MS)) rs->held.v[k++] = c;
    }
    rs->held.n = k;
    pthread_mutex_unlock(&rs->held_mu);
    for (int i = 0; i < due.n; i++)
        held_say(e, &due.v[i], due.v[i].scope);
    free(due.v);
}

void ret_flush(sb_engine *e)
{
    if (e->rec) held_engine(e, NULL, 0, eng_now(e), 1);
}

void ret_free(sb_engine *e)
{
    free(e->rec->held.v);
    memset(&e->rec->held, 0, sizeof e->rec->held);
}

/* --- holds ------------------------------------------------------------------- */

static size_t hold_key(uint8_t *k, uint32_t acct, const char *id)
{
    size_t n = strlen(id);
    put_be32(k, acct);
    memcpy(k + 4, id, n);
    return 4 + n;
}

static void enc_hold(wbuf *w, const hold *h)
{
    wb_u8(w, V_HOLD);
    wb_u8(w, (uint8_t)h->kind);
    wb_str(w, h->call);
    wb_put(w, h->pseudo, 16);
    wb_i64(w, h->from);
    wb_i64(w, h->to);
    wb_str(w, h->reason);
    wb_i64(w, h->created);
}

static int dec_hold(const uint8_t *key, size_t kl, const MDB_val *v, hold *h)
{
    rbuf r;
    if (kl <= 4 || kl - 4 > SB_ID_MAX) return SB_ESTORE;
    memcpy(h->id, key + 4, kl - 4);
    h->id[kl - 4] = 0;
    rb_init(&r, v->mv_data, v->mv_size);
    int ver = rb_u8(&r);
    h->kind = rb_u8(&r);
    rb_str(&r, h->call, sizeof h->call);
    rb_take(&r, h->pseudo, 16);
    h->from = rb_i64(&r);
    h->to = rb_i64(&r);
    rb_str(&r, h->reason, sizeof h->reason);
    h->created = rb_i64(&r);
    return r.err || ver != V_HOLD || r.p != r.end || h->kind < HK_CALL || h->kind > HK_RANGE
               ? SB_ESTORE
               : 0;
}

static int holds_load(MDB_txn *txn, sb_engine *e, uint32_t acct, hold **out, int *n, int *cap)
{
    uint8_t p[4];
    st_iter it;
    int rc;
    *n = 0;
    for (rc = st_iter_open(&it, txn, e, DB_HOLDS, p, key_acct(p, acct)); rc == 0;
         rc = st_iter_next(&it)) {
        if (*n == *cap) {
            int nc = *cap ? *cap * 2 : 8;
            hold *nh = realloc(*out, (size_t)nc * sizeof *nh);
            if (!nh) {
                rc = SB_ENOMEM;
                break;
            }
            *out = nh;
            *cap = nc;
        }
        if (dec_hold(it.key, it.klen, &it.v, &(*out)[*n]) == 0) (*n)++;
    }
    st_iter_close(&it);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int hold_covers(const hold *h, const rec_data *r)
{
    switch (h->kind) {
    case HK_CALL: /* the calls of that id offered by the time it was placed, not a
                   ** later one reusing the id (at the same millisecond, held too) */
        return r->offered <= h->created && strlen(h->call) == r->idlen &&
               memcmp(h->call, r->id, r->idlen) == 0;
    case HK_NUMBER:
        for (int k = 0; k < r->npseudo; k++)
            if (memcmp(h->pseudo, r->pseudo[k], 16) == 0) return 1;
        return 0;
    case HK_RANGE: /* a call in progress at any time in [from, to) */
        return r->offered < h->to && r->ended >= h->from;
    }
    return 0;
}

static const hold *hold_match(const rctx *x, const rec_data *r)
{
    for (int i = 0; i < x->nholds; i++)
        if (hold_covers(&x->holds[i], r)) return &x->holds[i];
    return NULL;
}

/* A record's document gets "held_by": the ids of the legal holds that
** cover it now (of hs, the account's n), in id order; [] for none. */
static void held_by(json_t *o, const hold *hs, int n, const rec_data *r)
{
    json_t *ids = json_array();
    for (int i = 0; i < n; i++)
        if (hold_covers(&hs[i], r)) json_array_append_new(ids, json_string(hs[i].id));
    json_object_set_new(o, "held_by", ids);
}

int rec_held_by(MDB_txn *txn, sb_engine *e, uint32_t acct, const rec_data *r, json_t *o)
{
    hold *hs = NULL;
    int n = 0, cap = 0, rc = holds_load(txn, e, acct, &hs, &n, &cap);
    if (!rc) held_by(o, hs, n, r);
    free(hs);
    return rc;
}

/* --- audit log ---------------------------------------------------------------- */
/* Key acct(4) seq(8) (the first entry's number). A value holds the entries
** of one transaction and account, up to about AUDIT_VALUE_MAX bytes:
** V_AUDIT2, u32 count, t (the transaction's time, every entry's), then the
** entries: call id, ended, action, decision, overridden, reason, source,
** policy, version. Each of the five strings but the call id is a byte: the
** number of a string the value defined before, or AUDIT_NEW_STR and the
** string, which takes the next number. A sweep's entries repeat their
** action, reason, policy and version record after record: an entry is
** about 40 bytes where spelling them out took about 170. Values of V_AUDIT
** (before format 12) have t in each entry and every string spelled out. */

/* A string of an audit entry: by its number if the value defined it. */
static void audit_sref(rctx *x, const char *s)
{
    wbuf *w = &x->audit;
    size_t n = strlen(s);
    for (int i = 0; i < x->audit_nstr; i++)
        if (x->audit_str[i].len == n && !memcmp(w->b.p + x->audit_str[i].off, s, n)) {
            wb_u8(w, (uint8_t)i);
            return;
        }
    wb_u8(w, AUDIT_NEW_STR);
    wb_strn(w, s, n);
    if (w->err || x->audit_nstr >= AUDIT_STRS_MAX) return; /* audit_add keeps room */
    x->audit_str[x->audit_nstr].off = (uint32_t)(w->b.len - n);
    x->audit_str[x->audit_nstr].len = (uint32_t)n;
    x->audit_nstr++;
}

/* The audit entry's strings as audit_sref wrote them (V_AUDIT2), or
** spelled out (V_AUDIT), into dst. */
typedef struct audit_strs {
    int n;
    struct {
        const char *p;
        size_t len;
    } s[AUDIT_STRS_MAX];
} audit_strs;

static void audit_sread(rbuf *r, int ver, audit_strs *t, char *dst, size_t cap)
{
    if (ver == V_AUDIT) {
        rb_str(r, dst, cap);
        return;
    }
    int tag = rb_u8(r);
    const char *s = "";
    size_t n = 0;
    if (tag == AUDIT_NEW_STR) {
        s = rb_strp(r, &n);
        if (t->n < AUDIT_STRS_MAX) {
            t->s[t->n].p = s;
            t->s[t->n].len = n;
            t->n++;
        } else {
            r->err = 1;
        }
    } else if (tag < t->n) {
        s = t->s[tag].p;
        n = t->s[tag].len;
    } else {
        r->err = 1;
    }
    if (r->err || n >= cap || memchr(s, 0, n)) {
        r->err = 1;
        n = 0;
    }
    memcpy(dst, s, n);
    dst[n] = 0;
}

/* Written as the table's last key when it is (LMDB then starts a page for
** the next rather than splitting this one in two, which left about one value
** a page): the values of the account with the highest number always are. */
static int audit_flush(rctx *x)
{
    if (!x->audit_n) return 0;
    uint8_t k[12];
    put_be32(k, x->audit_acct);
    put_be64(k + 4, x->audit_first);
    uint32_t n = (uint32_t)x->audit_n;
    memcpy(x->audit.b.p + 1, &n, 4);
    int rc = x->audit.err
                 ? SB_ENOMEM
                 : st_put_last(x->t->txn, x->e, DB_AUDIT, k, 12, x->audit.b.p, x->audit.b.len);
    x->audit_first += n;
    x->audit_n = 0;
    return rc;
}

/* The account's next sequence number: one past its last entry. */
static int audit_next(rctx *x, uint32_t acct, uint64_t *next)
{
    uint8_t kb[16];
    MDB_cursor *cur;
    int rc = mdb_cursor_open(x->t->txn, x->e->dbi[DB_AUDIT], &cur);
    if (rc) return rc;
    kb[0] = DB_AUDIT + 1;
    put_be32(kb + 1, acct + 1);
    MDB_val k = {5, kb}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    rc = mdb_cursor_get(cur, &k, &v, rc == 0 ? MDB_PREV : MDB_LAST);
    *next = 1;
    if (rc == 0 && k.mv_size == 13 && ((uint8_t *)k.mv_data)[0] == DB_AUDIT + 1 &&
        be32((uint8_t *)k.mv_data + 1) == acct && v.mv_size >= 5) {
        uint32_t n;
        memcpy(&n, (uint8_t *)v.mv_data + 1, 4);
        *next = be64((uint8_t *)k.mv_data + 5) + n;
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : rc;
}

/* An audit entry. Its reason is the engine's own text `own` (NULL: none),
** kept as written, followed by `reason`, a policy's or a customer's, which
** is redacted: the engine composes its text of counts ("access request:
** 1234567 records disclosed"), which are not numbers and must read as the
** engine wrote them. */
static int audit_add(rctx *x, const char *call, size_t calllen, int64_t ended, const char *action,
                     const char *decision, int overridden, const char *own, const char *reason,
                     int source, const char *policy, const char *version)
{
    uint32_t acct = x->acct ? x->acct : x->t->acct;
    int rc;
    if (x->audit_acct != acct || !x->audit_first) {
        if ((rc = audit_flush(x))) return rc;
        x->audit_acct = acct;
        if ((rc = audit_next(x, acct, &x->audit_first))) return rc;
    }
    wbuf *w = &x->audit;
    /* Room for the entry's five strings in the value's table. */
    if (x->audit_n && x->audit_nstr > AUDIT_STRS_MAX - 5 && (rc = audit_flush(x))) return rc;
    if (!x->audit_n) {
        wb_reset(w);
        wb_u8(w, V_AUDIT2);
        wb_u32(w, 0); /* the count, filled in by audit_flush */
        wb_i64(w, x->t->now);
        x->audit_nstr = 0;
    }
    wb_strn(w, call ? call : "", call ? calllen : 0);
    wb_i64(w, ended);
    audit_sref(x, action);
    audit_sref(x, decision ? decision : "");
    wb_u8(w, (uint8_t)overridden);
    /* Reasons are the policy's or the customer's text and may quote a
    ** number, written any way: the audit log holds none. (Room for every
    ** shortest number, "+12", read as "[number]".) */
    size_t rl = reason ? strlen(reason) : 0;
    if (reason && source == SRC_HOLD && rl < sizeof x->memo_raw) {
        /* A hold's reason was checked by the rule sb_hold_place applies (no
        ** run of 9 digits or more, no number written with '+'): by that
        ** rule, so that "ref 12-345-678" stays as the hold list shows it. */
        char *clean = x->memo_clean;
        str_copy(clean, sizeof x->memo_clean, reason);
        reason_clean(clean, sizeof x->memo_clean);
        x->memo = 0; /* memo_clean holds this, not memo_raw's */
        reason = clean;
    } else if (reason && rl < sizeof x->memo_raw) {
        if (!x->memo || memcmp(x->memo_raw, reason, rl + 1)) {
            sb_redact(reason, x->memo_clean, sizeof x->memo_clean);
            /* policies write any bytes; the audit lists one entry a line */
            text_clean(x->memo_clean);
            memcpy(x->memo_raw, reason, rl + 1);
            x->memo = 1;
        }
        reason = x->memo_clean;
    } else if (reason && sb_redact(reason, NULL, 0)) {
        reason = "[reason withheld: it quotes a number]";
    }
    char both[AUDIT_OWN_MAX + sizeof x->memo_clean];
    if (own) {
        snprintf(both, sizeof both, "%.*s%s", AUDIT_OWN_MAX - 1, own, reason ? reason : "");
        reason = both;
    }
    audit_sref(x, reason ? reason : "");
    wb_u8(w, (uint8_t)source);
    audit_sref(x, policy ? policy : "");
    audit_sref(x, version ? version : "");
    x->audit_n++;
    if (w->err) return SB_ENOMEM;
    return w->b.len >= AUDIT_VALUE_MAX ? audit_flush(x) : 0;
}

/* The audit log's own retention: an account's "audit_days" (records.h; 0,
** the default: as long as the account). A value holds the entries of one
** transaction, all of one time (its t), and the values of an account follow
** its sequence numbers, so in time: the oldest entries are its first. The
** sweep deletes values from the account's first while they are older than
** `before` and stops at the first that is not (a clock that stepped back
** leaves an older one after it for a later sweep), never reading the rest.
** The last value deleted gives way to an empty one (count 0) at the next
** sequence number, which audit_next reads as the last and the next entries
** then replace: numbers go on and are never given twice, so a reader paging
** with `after` misses nothing. budget: values at most. Returns the values
** removed (their entries are counted in x->n); *done when the account has
** no more to remove. */
static int audit_expire(rctx *x, uint32_t acct, int64_t before, int budget, int *done)
{
    uint8_t p[4];
    st_iter it;
    int values = 0, rc;
    uint64_t next = 0;
    *done = 0;
    for (rc = st_iter_open(&it, x->t->txn, x->e, DB_AUDIT, p, key_acct(p, acct));
         rc == 0 && values < budget;) {
        rbuf r;
        rb_init(&r, it.v.mv_data, it.v.mv_size);
        int ver = rb_u8(&r);
        uint32_t count = rb_u32(&r);
        int64_t t = count ? rb_i64(&r) : 0;
        if (it.klen != 12 || r.err || (ver != V_AUDIT && ver != V_AUDIT2)) { /* not one of ours */
            rc = st_iter_next(&it);
            continue;
        }
        if (!count || t >= before) break; /* the numbers' mark, or young enough: done */
        next = be64(it.key + 4) + count;
        values++;
        x->n.audit_expired += count;
        rc = st_iter_del(&it);            /* moves on to the next */
        if (rc == MDB_NOTFOUND && next) { /* that was the last: numbers go on from it */
            uint8_t k[12], v[5] = {V_AUDIT, 0, 0, 0, 0};
            put_be32(k, acct);
            put_be64(k + 4, next);
            st_iter_close(&it);
            rc = st_put(x->t->txn, x->e, DB_AUDIT, k, 12, v, 5);
            if (rc) return rc;
            *done = 1;
            return values;
        }
    }
    st_iter_close(&it);
    if (rc && rc != MDB_NOTFOUND) return rc;
    *done = values < budget;
    return values;
}

/* --- the account of the work at hand -------------------------------------------- */

/* Load account acct (by number) into x: settings, holds. 0 with exists=0
** when the account is gone. */
static int use_account(rctx *x, uint32_t acct)
{
    if (x->acct == acct) return 0;
    int rc = audit_flush(x);
    if (rc) return rc;
    x->acct = acct;
    x->exists = 0;
    x->nholds = 0;
    uint8_t k[4];
    MDB_val v;
    rc = st_get(x->t->txn, x->e, DB_ACCOUNTS, k, key_acct(k, acct), &v);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return rc;
    if (dec_account(v.mv_data, v.mv_size, &x->a)) return SB_ESTORE;
    x->exists = 1;
    pol_host_sync_gen(x->e->pol, acct, x->a.policy_gen);
    if ((rc = rec_settings_load(x->t->txn, x->e, acct, &x->s)) && rc != SB_ESTORE) return rc;
    return holds_load(x->t->txn, x->e, acct, &x->holds, &x->nholds, &x->capholds);
}

/* --- the record as the policy sees it --------------------------------------------- */

static void cpy(char *dst, const char *s, size_t n)
{
    memcpy(dst, s, n);
    dst[n] = 0;
}

static int view_attempt(void *arg, int i, pol_attempt *out)
{
    rctx *x = arg;
    int dev, outcome;
    if (!x->cur || i < 0 || i >= x->cur->natt) return -1;
    if (rec_attempt(x->cur, i, x->att_agent, sizeof x->att_agent, &dev, &outcome, &out->start_ms,
                    &out->dur_ms))
        return -1;
    out->agent = x->att_agent;
    out->dev = dev;
    out->outcome = outcome ? ring_outcome_name(outcome) : "cancelled";
    return 0;
}

static void view_of(rctx *x, const rec_data *r, const hold *h, pol_record *pr)
{
    cpy(x->id, r->id, r->idlen);
    cpy(x->queue, r->queue, r->queuelen);
    cpy(x->first_queue, r->first_queue, r->first_queuelen);
    cpy(x->agent, r->agent, r->agentlen);
    cpy(x->reason, r->reason, r->reasonlen);
    x->cur = r;
    int nv = 0;
    rbuf b;
    rb_init(&b, r->ver, r->verlen);
    for (int i = 0; i < r->nver && nv < MAX_TRACE && !b.err; i++) {
        rb_str(&b, x->vpol[nv], sizeof x->vpol[nv]);
        rb_str(&b, x->vver[nv], sizeof x->vver[nv]);
        x->vpols[nv] = x->vpol[nv];
        x->vvers[nv] = x->vver[nv];
        if (!b.err) nv++;
    }
    *pr = (pol_record){
        .id = x->id,
        .queue = x->queue,
        .first_queue = x->first_queue,
        .outcome = rec_outcome_name(r->outcome),
        .agent = r->agentlen ? x->agent : NULL,
        .reason = r->reasonlen ? x->reason : NULL,
        .ended_by = end_party_name(r->ended_by),
        .offered_ms = r->offered,
        .answered_ms = r->answered,
        .ended_ms = r->ended,
        .wait_ms = r->wait_ms,
        .talk_ms = r->talk_ms,
        .priority = r->priority,
        .anonymized = (r->flags & RF_ANONYMIZED) != 0,
        .legal_hold = h != NULL,
        .overridden = (r->flags & RF_OVERRIDDEN) != 0,
        .attrs = r->attrs_len ? r->attrs : NULL,
        .attrs_len = r->attrs_len,
        .natt = r->natt,
        .attempt = view_attempt,
        .attempt_arg = x,
        .nversions = nv,
        .policies = x->vpols,
        .versions = x->vvers,
    };
}

/* --- applying a decision ------------------------------------------------------------ */

static size_t review_key(uint8_t *k, int64_t due, const uint8_t *rk, size_t rkl)
{
    put_be64(k, (uint64_t)due);
    memcpy(k + 8, rk, rkl);
    return 8 + rkl;
}

/* Writes a sweep batches: each entry is table(1) klen(1) key (with its
** table byte, as the store lays it out) vlen(1) value. Applied in key
** order with one cursor per tree, a batch meets the tree's pages in order
** and finds most of them from where the cursor stands rather than from the
** root. */
static int batch_add(wbuf *w, int table, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    if (kl + 1 > 255 || vl > 255) return MDB_BAD_VALSIZE;
    wb_u8(w, (uint8_t)table);
    wb_u8(w, (uint8_t)(kl + 1));
    wb_u8(w, (uint8_t)(table + 1)); /* the table byte (store.c) */
    wb_put(w, k, kl);
    wb_u8(w, (uint8_t)vl);
    if (vl) wb_put(w, v, vl);
    return w->err ? SB_ENOMEM : 0;
}

static int batch_cmp(const uint8_t *x, const uint8_t *y)
{
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    size_t xl = x[1], yl = y[1];
    int c = memcmp(x + 2, y + 2, xl < yl ? xl : yl);
    if (c) return c;
    if (xl != yl) return xl < yl ? -1 : 1;
    return x < y ? -1 : x > y; /* the same key: in the order added (the last put wins) */
}

/* An entry of a batch to sort: its table and first 15 key bytes after the
** table byte as two numbers (zeros past the key's end), which order two
** entries as batch_cmp does wherever they differ (a key that ends inside
** them is a prefix of the other or ends where the other has a byte above
** zero) without a call or a memcmp; batch_cmp orders the rest. A round's
** entries differ there nearly always: an index entry's period and
** pseudonym or call id, a review entry's due. */
typedef struct batch_ent {
    uint64_t hi, lo;
    const uint8_t *p;
} batch_ent;

static batch_ent batch_ent_of(const uint8_t *p)
{
    uint8_t b[16] = {0};
    size_t n = p[1] - 1u; /* the key after its table byte */
    b[0] = p[0];
    memcpy(b + 1, p + 3, n < 15 ? n : 15);
    return (batch_ent){be64(b), be64(b + 8), p};
}

static int batch_less(const batch_ent *a, const batch_ent *b)
{
    if (a->hi != b->hi) return a->hi < b->hi;
    if (a->lo != b->lo) return a->lo < b->lo;
    return batch_cmp(a->p, b->p) < 0;
}

/* Sort a[0..n) by batch_less, tmp of n entries beside it: a merge sort,
** insertion sort for short runs, each merge skipped where the halves are
** in order already (a sweep's review entries come nearly so). */
static void batch_sort(batch_ent *a, batch_ent *tmp, size_t n)
{
    if (n <= 12) {
        for (size_t i = 1; i < n; i++) {
            batch_ent v = a[i];
            size_t j = i;
            for (; j > 0 && batch_less(&v, &a[j - 1]); j--)
                a[j] = a[j - 1];
            a[j] = v;
        }
        return;
    }
    size_t h = n / 2;
    batch_sort(a, tmp, h);
    batch_sort(a + h, tmp, n - h);
    if (!batch_less(&a[h], &a[h - 1])) return;
    memcpy(tmp, a, h * sizeof *a);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        a[k++] = batch_less(&a[j], &tmp[i]) ? a[j++] : tmp[i++];
    while (i < h)
        a[k++] = tmp[i++];
}

/* Apply a batch: puts when put, else deletes (a key not there is fine). */
static int batch_flush(rctx *x, wbuf *w, int put)
{
    const uint8_t *p = (const uint8_t *)w->b.p, *end = p + w->b.len;
    size_t n = 0;
    while (p < end) {
        n++;
        p += 2 + p[1];
        p += 1 + *p;
    }
    if (!n) return 0;
    batch_ent *ord = malloc(n * 2 * sizeof *ord);
    if (!ord) return SB_ENOMEM;
    n = 0;
    for (p = (const uint8_t *)w->b.p; p < end; p += 1 + p[2 + p[1]] + 2 + p[1])
        ord[n++] = batch_ent_of(p);
    batch_sort(ord, ord + n, n);
    MDB_cursor *c = NULL;
    int table = -1, rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const uint8_t *q = ord[i].p;
        if (q[0] != table || !c) {
            if (c) mdb_cursor_close(c);
            c = NULL;
            table = q[0];
            if ((rc = mdb_cursor_open(x->t->txn, x->e->dbi[table], &c))) break;
            st_cache_forget(x->e, table); /* written past the store's functions */
        }
        MDB_val k = {q[1], (void *)(q + 2)}, v = {q[2 + q[1]], (void *)(q + 3 + q[1])};
        if (put) {
            rc = mdb_cursor_put(c, &k, &v, 0);
            if (!rc) x->e->txn_dirty = 1; /* store.c: what a commit wrote */
        } else {
            rc = mdb_cursor_get(c, &k, NULL, MDB_SET);
            if (!rc && !(rc = mdb_cursor_del(c, 0))) x->e->txn_dirty = 1;
            if (rc == MDB_NOTFOUND) rc = 0;
        }
    }
    if (c) mdb_cursor_close(c);
    free(ord);
    wb_reset(w);
    return rc;
}

static int review_put(rctx *x, const uint8_t *rk, size_t rkl, int64_t due, uint32_t epoch)
{
    uint8_t k[8 + REC_KEY_MAX], v[4];
    put_be32(v, epoch);
    size_t kl = review_key(k, due, rk, rkl);
    if (!x->defer) return st_put(x->t->txn, x->e, DB_REVIEW, k, kl, v, 4);
    return batch_add(&x->pend, DB_REVIEW, k, kl, v, 4);
}

/* Delete the review entry of the record at rk due then, now or (sweeps)
** with the batch; one not there is fine. */
static int review_del(rctx *x, const uint8_t *rk, size_t rkl, int64_t due)
{
    uint8_t k[8 + REC_KEY_MAX];
    size_t kl = review_key(k, due, rk, rkl);
    if (x->defer) {
        x->ndels++;
        return batch_add(&x->dels, DB_REVIEW, k, kl, NULL, 0);
    }
    int rc = st_del(x->t->txn, x->e, DB_REVIEW, k, kl);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Put the review entries deferred while a cursor walked the index. */
static int review_flush(rctx *x)
{
    return batch_flush(x, &x->pend, 1);
}

/* The pseudonym index entries of record r (key acct) go, now or (sweeps)
** with the batch. */
static int ridx_del(rctx *x, const rec_data *r)
{
    if (!x->scrub_noted) { /* the old copies go at the sweep's end */
        eng_scrub_want(x->t->txn, x->e);
        x->scrub_noted = 1;
    }
    if (!x->defer) return rec_ridx_del(x->t->txn, x->e, x->acct, r);
    uint8_t k[REC_RIDX_MAX];
    int table;
    for (int i = 0; i < r->npseudo; i++) {
        size_t kl = rec_ridx_entry(k, x->acct, r, i, &table);
        int rc = batch_add(&x->dels, table, k, kl, NULL, 0);
        if (rc) return rc;
        x->ndels++;
    }
    return 0;
}

/* A record's key as the store lays it out (its table byte first), in kb. */
static MDB_val rkey(uint8_t kb[1 + REC_KEY_MAX], const uint8_t *rk, size_t rkl)
{
    kb[0] = DB_RECORDS + 1;
    memcpy(kb + 1, rk, rkl);
    return (MDB_val){rkl + 1, kb};
}

/* Stand the records cursor on rk (where load_record left it, normally). */
static int rcur_at(rctx *x, const uint8_t *rk, size_t rkl)
{
    MDB_val k, v;
    int rc = mdb_cursor_get(x->rcur, &k, &v, MDB_GET_CURRENT);
    if (rc == 0 && k.mv_size == rkl + 1 && ((uint8_t *)k.mv_data)[0] == DB_RECORDS + 1 &&
        !memcmp((uint8_t *)k.mv_data + 1, rk, rkl))
        return 0;
    uint8_t kb[1 + REC_KEY_MAX];
    k = rkey(kb, rk, rkl);
    return mdb_cursor_get(x->rcur, &k, &v, MDB_SET);
}

/* Replace the record at rk. */
static int rec_put(rctx *x, const uint8_t *rk, size_t rkl, const void *p, size_t n)
{
    if (!x->rcur) return st_put(x->t->txn, x->e, DB_RECORDS, rk, rkl, p, n);
    int rc = rcur_at(x, rk, rkl);
    if (rc) return rc;
    /* The key from our buffer: one pointing into the page would move under
    ** the put. */
    uint8_t kb[1 + REC_KEY_MAX];
    MDB_val k = rkey(kb, rk, rkl), v = {n, (void *)p};
    rc = mdb_cursor_put(x->rcur, &k, &v, MDB_CURRENT);
    if (!rc) x->e->txn_dirty = 1;
    return rc;
}

/* Replace the record at rk with r, encoded (as version 3). */
static int rec_rewrite(rctx *x, const uint8_t *rk, size_t rkl, const rec_data *r)
{
    wb_reset(&x->w);
    rec_encode(&x->w, r);
    if (x->w.err) return SB_ENOMEM;
    return rec_put(x, rk, rkl, x->w.b.p, x->w.b.len);
}

/* Delete the record at rk (flags: its RF_*) and its call-id index entry. */
static int rec_del(rctx *x, const uint8_t *rk, size_t rkl, int flags)
{
    if (!x->rcur) return rec_delete(x->t->txn, x->e, rk, rkl, flags);
    if (rkl <= 12 || rkl > 12 + SB_ID_MAX) return SB_ESTORE;
    int rc = rcur_at(x, rk, rkl);
    if (rc == 0 && (rc = mdb_cursor_del(x->rcur, 0)) == 0)
        x->e->txn_dirty = 1;
    else if (rc == MDB_NOTFOUND)
        rc = 0;
    if (rc) return rc;
    uint8_t k[REC_KEY_MAX + 3];
    int table;
    x->ndels++;
    size_t kl = rec_recid_entry(k, rk, rkl, flags, &table);
    return batch_add(&x->dels, table, k, kl, NULL, 0);
}

static void count_reason(rctx *x, const char *action, const char *reason)
{
    if (!x->reasons) return;
    char raw[SB_REASON_MAX + 300], key[3 * sizeof raw];
    snprintf(raw, sizeof raw, "%s: %s", action, reason && *reason ? reason : "(no reason given)");
    /* The answer of an erasure request shows no number, as the audit log
    ** does not: a policy may quote one in its reason (read as hold reasons
    ** are: with '+', or 9 digits or more the national way, so that case
    ** numbers such as 2026-001 stay). */
    str_copy(key, sizeof key, raw);
    reason_clean(key, sizeof key);
    /* A policy's reason may hold bytes that are not UTF-8 (cleaned where
    ** shown): a JSON key must be UTF-8, or the count would be dropped. */
    utf8_cut_end(key);
    utf8_clean(key);
    json_t *v = json_object_get(x->reasons, key);
    json_object_set_new(x->reasons, key, json_integer(v ? json_integer_value(v) + 1 : 1));
}

/* The action decision d takes on r: a failure's, or no action's, is a keep,
** and so is anonymizing a record anonymous already, which changes nothing
** (not an anonymization again at each review, counted and audited as one,
** nor one a legal hold overrides). */
static int keep_or(const pol_retention *d, const rec_data *r)
{
    if (d->failed || d->action == RET_NONE) return RET_KEEP;
    if (d->action == RET_ANONYMIZE && (r->flags & RF_ANONYMIZED)) return RET_KEEP;
    return d->action;
}

/* Apply decision d to the record at rk (decoded into r from x->val). Its
** review entry, if it had one, is gone already (sweeps: x->reviewing), goes
** with it (deleted) or stays (erasure: its schedule is not the request's). */
static int apply(rctx *x, const uint8_t *rk, size_t rkl, rec_data *r, const pol_retention *d,
                 int source)
{
    sb_engine *e = x->e;
    int64_t now = x->t->now;
    int action = keep_or(d, r);
    int64_t due = d->failed ? now + FAIL_RETRY_MS : d->review_ms;
    const char *reason = d->failed ? d->error : d->reason, *counted = NULL;
    char held[SB_ID_MAX + SB_REASON_MAX + 16], audited[2 * SB_REASON_MAX + SB_ID_MAX + 48];
    const hold *h = x->nholds ? hold_match(x, r) : NULL;
    int overridden = 0, decided = action;
    if (h && (action == RET_DELETE || action == RET_ANONYMIZE)) {
        overridden = 1;
        action = RET_KEEP;
        if (!due || due > now + HOLD_RECHECK_MS) due = now + HOLD_RECHECK_MS;
        snprintf(held, sizeof held, "legal hold %s: %s", h->id, h->reason);
        /* The audit keeps what the policy decided and said. */
        snprintf(audited, sizeof audited, "%s (policy: %s%s%s)", held, act_names[decided],
                 d->reason[0] ? ": " : "", d->reason);
        counted = held;
        reason = audited;
        x->n.overridden++;
        if (source == SRC_ERASURE) x->erase_held++;
        /* Logged per hold with a count once the work is done (held_engine). */
        struct held_count *c = held_find(&x->held, 0, x->exists ? x->a.id : "?", h->id);
        if (c)
            c->n[decided == RET_DELETE ? 0 : 1]++;
        else
            sb_log(e, SB_LOG_INFO,
                   "retention: account %s call %.*s: %s (%s) overridden by legal hold %s",
                   x->exists ? x->a.id : "?", (int)r->idlen, r->id, act_names[decided],
                   d->policy[0] ? d->policy : "default", h->id);
    }
    if (d->failed) x->n.failed++;
    int rc = 0;
    uint8_t flags = r->flags;
    if (overridden)
        flags |= RF_OVERRIDDEN;
    else if (!d->failed)
        flags &= (uint8_t)~RF_OVERRIDDEN;
    if (source == SRC_ERASURE) due = 0; /* the entry it has stays as it is */
    /* A review asked for now (or a date rounded to it) comes with the next
    ** sweep: one now would meet the record again in this sweep's next
    ** transaction, and again, for as long as the clock stood still. */
    if (due && due <= now) due = now + 1;
    /* The entry the record has (a sweep deleted the one it reviews), and
    ** the one it gets: the same for an erasure's keep. */
    int64_t had = source == SRC_REVIEW && r->review_due == x->reviewing ? 0 : r->review_due;
    int64_t next = source == SRC_ERASURE ? r->review_due : due;
    if (action == RET_DELETE) next = 0;
    if (had > 0 && had != next && (rc = review_del(x, rk, rkl, had))) return rc;

    if (action == RET_DELETE) {
        if ((rc = ridx_del(x, r)) || (rc = rec_del(x, rk, rkl, r->flags))) return rc;
        x->n.deleted++;
    } else if (action == RET_ANONYMIZE) {
        if ((rc = ridx_del(x, r))) return rc;
        r->flags = flags | RF_ANONYMIZED;
        r->review_due = next;
        r->pii = NULL;
        r->pii_len = 0;
        r->npseudo = 0;
        if ((rc = rec_rewrite(x, rk, rkl, r))) return rc;
        x->n.anonymized++;
    } else {
        /* Keep. */
        if (r->version < REC_V_DUE && next != r->review_due) {
            /* Written in the current version now that its due is known. */
            r->flags = flags;
            r->review_due = next;
            if ((rc = rec_rewrite(x, rk, rkl, r))) return rc;
        } else if (flags != r->flags || next != r->review_due) {
            x->val.p[REC_OFF_FLAGS] = (char)flags; /* patch the copy */
            if (r->version >= REC_V_DUE) memcpy(x->val.p + REC_OFF_DUE, &next, 8);
            if ((rc = rec_put(x, rk, rkl, x->val.p, x->val.len))) return rc;
        }
        x->n.kept++;
    }
    if (action != RET_DELETE && due && (rc = review_put(x, rk, rkl, due, r->epoch))) return rc;
    const char *applied = act_names[action];
    /* The audit: every deletion and anonymization, every override, every
    ** failure, and every decision about an erasure request. Routine keeps
    ** (a new review date) are not actions. */
    if (d->failed)
        rc = audit_add(x, r->id, r->idlen, r->ended, "error", "none", 0, NULL, reason, source,
                       d->policy, d->version);
    else if (overridden || action != RET_KEEP || source == SRC_ERASURE)
        rc = audit_add(x, r->id, r->idlen, r->ended, applied, act_names[decided], overridden, NULL,
                       reason, source, d->policy, d->version);
    if (x->reasons) count_reason(x, d->failed ? "failed" : applied, counted ? counted : reason);
    return rc;
}

/* Read the record at rk into x->val and decode it. SB_ENOTFOUND if gone. */
static int load_record(rctx *x, const uint8_t *rk, size_t rkl, rec_data *r)
{
    MDB_val v;
    int rc;
    if (x->rcur) { /* sweeps meet records in key order: mostly on the cursor's page */
        uint8_t kb[1 + REC_KEY_MAX];
        if (rkl > REC_KEY_MAX) return SB_ENOTFOUND;
        MDB_val k = rkey(kb, rk, rkl);
        rc = mdb_cursor_get(x->rcur, &k, &v, MDB_SET);
    } else {
        rc = st_get(x->t->txn, x->e, DB_RECORDS, rk, rkl, &v);
    }
    if (rc == MDB_NOTFOUND) return SB_ENOTFOUND;
    if (rc) return rc;
    x->val.len = 0;
    if (buf_put(&x->val, v.mv_data, v.mv_size)) return SB_ENOMEM;
    return rec_decode(x->val.p, x->val.len, r);
}

/* The account's retention policy decides about r (no policy: keep forever). */
static int decide_retain(rctx *x, const rec_data *r, pol_retention *d)
{
    memset(d, 0, offsetof(pol_retention, error) + 1);
    if (!x->s.retention[0]) {
        d->action = RET_KEEP;
        snprintf(d->reason, sizeof d->reason, "no retention policy: kept");
        return 0;
    }
    pol_record pr;
    view_of(x, r, x->nholds ? hold_match(x, r) : NULL, &pr);
    int rc = pol_retain(x->pol ? x->pol : x->e->pol, x->acct, x->a.id, x->s.retention, &pr,
                        x->t->now, d);
    x->cur = NULL;
    if (!rc) pol_retention_default(d, x->s.retention, 0);
    return rc;
}

int ret_on_write(wtx *t, const uint8_t *rk, size_t rkl, const rec_settings *s, const void *val,
                 size_t n)
{
    rctx x;
    rctx_init(&x, t);
    rec_data r;
    pol_retention d;
    int rc = use_account(&x, t->acct);
    if (!rc && !x.exists) rc = SB_ENOTFOUND;
    if (!rc) rc = buf_put(&x.val, val, n) ? SB_ENOMEM : rec_decode(x.val.p, x.val.len, &r);
    if (!rc) rc = decide_retain(&x, &r, &d);
    if (!rc) rc = apply(&x, rk, rkl, &r, &d, SRC_WRITE);
    if (!rc) rc = audit_flush(&x);
    if (!rc && x.held.n) held_engine(t->e, &x.held, HELD_WRITE, t->now, 0);
    rctx_free(&x);
    return rc;
}

/* --- jobs --------------------------------------------------------------------------- */

static int job_put(rctx *x, int kind, uint32_t acct, const void *v, size_t vl)
{
    uint8_t k[5];
    k[0] = (uint8_t)kind;
    put_be32(k + 1, acct);
    return st_put(x->t->txn, x->e, DB_JOBS, k, 5, v, vl);
}

int ret_rescan(wtx *t, uint32_t acct, uint32_t epoch)
{
    uint8_t p[4];
    st_iter it;
    int rc = st_iter_open(&it, t->txn, t->e, DB_RECORDS, p, key_acct(p, acct));
    st_iter_close(&it);
    if (rc == MDB_NOTFOUND) return 0; /* no records yet: nothing to queue */
    if (rc) return rc;
    rctx x;
    rctx_init(&x, t);
    /* From the account's first record (no cursor yet). Records written from
    ** now on carry the new epoch and are scheduled by their write. */
    uint8_t v[5] = {V_JOB};
    put_be32(v + 1, epoch);
    rc = job_put(&x, JOB_RESCAN, acct, v, 5);
    rctx_free(&x);
    return rc ? rc : 1;
}

int ret_account_holds(wtx *t, uint32_t acct)
{
    uint8_t p[4];
    st_iter it;
    /* Its holds, by id (the first five) for the message. */
    char ids[5 * (SB_ID_MAX + 2) + 8] = "";
    size_t len = 0;
    int n = 0, rc;
    for (rc = st_iter_open(&it, t->txn, t->e, DB_HOLDS, p, key_acct(p, acct)); rc == 0;
         rc = st_iter_next(&it), n++)
        if (n < 5 && it.klen > 4 && it.klen - 4 <= SB_ID_MAX)
            len += (size_t)snprintf(ids + len, sizeof ids - len, "%s%.*s", n ? ", " : "",
                                    (int)(it.klen - 4), (const char *)it.key + 4);
    st_iter_close(&it);
    if (rc != MDB_NOTFOUND) return rc;
    if (n)
        return res_err(t->res, SB_EHOLD, "account",
                       "account '%s' has %d legal hold%s (%s%s); release %s before deleting it",
                       t->account ? t->account->id : "?", n, n == 1 ? "" : "s", ids,
                       n > 5 ? ", ..." : "", n == 1 ? "it" : "them");
    return 0;
}

int ret_account_deleted(wtx *t, uint32_t acct)
{
    int rc = ret_account_holds(t, acct);
    if (rc) return rc;
    rctx x;
    rctx_init(&x, t);
    uint8_t p[4];
    key_acct(p, acct);
    uint8_t v[2] = {V_JOB, 0}; /* stage 0 */
    if ((rc = st_del(t->txn, t->e, DB_PRIVACY, p, 4)) == 0) rc = job_put(&x, JOB_PURGE, acct, v, 2);
    /* A rescan or an erasure run of a deleted account has nothing left to do. */
    static const uint8_t gone[] = {JOB_RESCAN, JOB_ERASURE};
    for (size_t i = 0; i < countof(gone) && !rc; i++) {
        uint8_t k[5] = {gone[i]};
        put_be32(k + 1, acct);
        rc = st_del(t->txn, t->e, DB_JOBS, k, 5);
    }
    rctx_free(&x);
    return rc;
}

/* The review entries of a deleted account's records: the index is in due
** order, so it is walked whole, after cur (curlen 0: from the first), one
** batch a call; they would otherwise keep its call ids until their review
** dates, years on for some policies. Returns the entries met. */
static int purge_reviews(rctx *x, uint32_t acct, uint8_t *cur, size_t *curlen, int *done)
{
    uint8_t(*keys)[8 + REC_KEY_MAX] = malloc(JOB_BATCH * sizeof *keys);
    size_t kls[JOB_BATCH];
    int k = 0, seen = 0, rc;
    if (!keys) return SB_ENOMEM;
    st_iter it;
    for (rc = st_iter_after(&it, x->t->txn, x->e, DB_REVIEW, "", 0, cur, *curlen);
         rc == 0 && seen < JOB_BATCH; rc = st_iter_next(&it)) {
        seen++;
        if (it.klen < 8 + 4 || it.klen > 8 + REC_KEY_MAX) continue; /* the sweep drops these */
        memcpy(cur, it.key, it.klen);
        *curlen = it.klen;
        if (be32(it.key + 8) != acct) continue;
        memcpy(keys[k], it.key, it.klen);
        kls[k++] = it.klen;
    }
    st_iter_close(&it);
    *done = rc == MDB_NOTFOUND;
    if (rc == MDB_NOTFOUND) rc = 0;
    for (int i = 0; i < k && !rc; i++)
        rc = st_del(x->t->txn, x->e, DB_REVIEW, keys[i], kls[i]);
    free(keys);
    return rc ? rc : seen;
}

/* Purge a deleted account, in stages: its records, pseudonym index,
** aggregates, audit log, then the review entries of its records (cur: how
** far that walk has come). Returns the keys deleted or met. */
static int job_purge(rctx *x, uint32_t acct, uint8_t *stage, uint8_t *cur, size_t *curlen,
                     int budget, int *done)
{
    static const int tables[] = {DB_RECORDS, DB_RECID, DB_RIDX,  DB_RECIDT,
                                 DB_RIDXT,   DB_AGGR,  DB_AUDIT, DB_ERASURES};
    MDB_txn *txn = x->t->txn;
    uint8_t p[4];
    key_acct(p, acct);
    int n = 0, rc = 0;
    if (*stage == 0 && rec_key_destroy(x->e, acct)) return SB_ESTORE; /* again: crash-safe */
    *done = 0;
    while (*stage < countof(tables) && n < budget) {
        int table = tables[*stage], k = 0;
        st_iter it;
        /* Deleting under the cursor moves it on: a prefix emptied in turns. */
        for (rc = st_iter_open(&it, txn, x->e, table, p, 4); rc == 0 && k < JOB_BATCH;
             rc = st_iter_del(&it)) {
            k++;
            if (table == DB_RECORDS) x->n.purged++;
        }
        st_iter_close(&it);
        if (rc && rc != MDB_NOTFOUND) return rc;
        n += k;
        if (k < JOB_BATCH) (*stage)++;
    }
    while (*stage == countof(tables) && n < budget) {
        int end = 0, k = purge_reviews(x, acct, cur, curlen, &end);
        if (k < 0 || IS_SB_ERR(k)) return k;
        n += k;
        if (end) (*stage)++;
    }
    *done = *stage > countof(tables);
    return n;
}

/* Schedule every record of the account older than the epoch for review
** now, after the cursor; returns records handled. */
static int job_rescan(rctx *x, uint32_t acct, uint32_t epoch, uint8_t *cur, size_t *curlen,
                      int budget, int *done)
{
    MDB_txn *txn = x->t->txn;
    uint8_t p[4];
    key_acct(p, acct);
    uint8_t keys[64][REC_KEY_MAX];
    size_t kls[64];
    int n = 0, rc;
    *done = 0;
    while (n < budget) {
        int k = 0;
        st_iter it;
        for (rc = st_iter_after(&it, txn, x->e, DB_RECORDS, p, 4, cur, *curlen); rc == 0 && k < 64;
             rc = st_iter_next(&it)) {
            if (it.klen > REC_KEY_MAX || it.v.mv_size < 6) continue;
            memcpy(keys[k], it.key, it.klen);
            kls[k++] = it.klen;
        }
        st_iter_close(&it);
        if (rc && rc != MDB_NOTFOUND) return rc;
        for (int i = 0; i < k; i++) {
            rec_data r;
            if ((rc = load_record(x, keys[i], kls[i], &r))) {
                if (rc == SB_ENOTFOUND || rc == SB_ESTORE) continue;
                return rc;
            }
            if (r.epoch == epoch) continue; /* written since: scheduled by its write */
            /* Its entry of the older epoch goes; the new one is due now. */
            int64_t due = x->due ? x->due : x->t->now;
            if (r.review_due > 0 && r.review_due != due &&
                (rc = review_del(x, keys[i], kls[i], r.review_due)))
                return rc;
            uint8_t *v = (uint8_t *)x->val.p;
            const void *val = v;
            size_t vl = x->val.len;
            if (r.version >= REC_V_DUE) {
                memcpy(v + REC_OFF_EPOCH, &epoch, 4);
                memcpy(v + REC_OFF_DUE, &due, 8);
            } else { /* written in the current version, with its due */
                r.epoch = epoch;
                r.review_due = due;
                wb_reset(&x->w);
                rec_encode(&x->w, &r);
                if (x->w.err) return SB_ENOMEM;
                val = x->w.b.p;
                vl = x->w.b.len;
            }
            if ((rc = st_put(txn, x->e, DB_RECORDS, keys[i], kls[i], val, vl)) ||
                (rc = review_put(x, keys[i], kls[i], due, epoch)))
                return rc;
        }
        if (k) {
            memcpy(cur, keys[k - 1], kls[k - 1]);
            *curlen = kls[k - 1];
        }
        n += k;
        if (k < 64) {
            *done = 1;
            break;
        }
    }
    return n;
}

/* --- records stored before version 3 ------------------------------------------------ */
/* A version 2 record does not know the due of its review entry, so a record
** deleted outside a sweep (an erasure, a hold's release, a decision at its
** write) could not take its entry with it. The data directory of an earlier
** version gets, when this one first opens it, a walk of the whole review
** index (JOB_UPGRADE, value V_JOB then the last entry handled) that writes
** each such record's due into it: the record is written as version 3, its
** sealed values as they were (rec_open opens them the old way). Only its
** live entry names it: the entry of its epoch (one of an older epoch is
** stale, and dropped when it comes up). An entry whose record is gone (a
** version 2 record erased before the walk came to it) goes now.
**
** Entries put behind the walk's cursor meanwhile are of records written as
** version 3 already (every write since the upgrade is), and an entry moved
** by a review is the record's rewrite as version 3 too: one walk is enough. */

int ret_upgrade_queue(MDB_txn *txn, sb_engine *e)
{
    st_iter it;
    int rc = st_iter_open(&it, txn, e, DB_REVIEW, "", 0);
    st_iter_close(&it);
    if (rc == MDB_NOTFOUND) return 0; /* no review entry: no record to give a due */
    if (rc) return rc;
    uint8_t k[5] = {JOB_UPGRADE, 0, 0, 0, 0}, v[1] = {V_JOB};
    rc = st_put_new(txn, e, DB_JOBS, k, 5, v, 1);
    return rc == MDB_KEYEXIST ? 0 : rc; /* queued already: its cursor stays */
}

/* A walk of the whole of a table for a job, in steps: the entries after cur
** (curlen 0: from the first; keys of keymax bytes at most, others skipped),
** batch by batch while the budget and the deadline last (a batch at least),
** each given to `each` with the first 4 bytes of its value (vl: its size);
** cur is then the last entry handled. Returns the entries met. */
typedef int (*walk_fn)(rctx *x, const uint8_t *k, size_t kl, const uint8_t *vh, size_t vl);

static int job_walk(rctx *x, int table, size_t keymax, walk_fn each, uint8_t *cur, size_t *curlen,
                    int budget, uint64_t deadline, int *done)
{
    enum { B = 64 };
    uint8_t keys[B][8 + REC_KEY_MAX], vh[B][4];
    size_t kls[B], vls[B];
    int n = 0, rc;
    *done = 0;
    if (keymax > sizeof keys[0]) keymax = sizeof keys[0];
    while (n < budget && (n == 0 || mono_ns() < deadline)) {
        int k = 0;
        st_iter it;
        for (rc = st_iter_after(&it, x->t->txn, x->e, table, "", 0, cur, *curlen); rc == 0 && k < B;
             rc = st_iter_next(&it)) {
            if (it.klen > keymax) continue; /* not ours: the sweep drops it */
            memcpy(keys[k], it.key, it.klen);
            kls[k] = it.klen;
            vls[k] = it.v.mv_size;
            memcpy(vh[k++], it.v.mv_data, it.v.mv_size < 4 ? it.v.mv_size : 4);
        }
        st_iter_close(&it);
        if (rc && rc != MDB_NOTFOUND) return rc;
        int end = rc == MDB_NOTFOUND;
        for (int i = 0; i < k; i++)
            if ((rc = each(x, keys[i], kls[i], vh[i], vls[i]))) return rc;
        if (k) {
            memcpy(cur, keys[k - 1], kls[k - 1]);
            *curlen = kls[k - 1];
        }
        n += k;
        if (end) {
            *done = 1;
            break;
        }
    }
    return n;
}

/* The review walk's step for one entry of the review index (value: the
** epoch it was written in). */
static int upgrade_one(rctx *x, const uint8_t *k, size_t kl, const uint8_t *vh, size_t vl)
{
    const uint8_t *rk = k + 8;
    size_t rkl = kl - 8;
    rec_data r;
    if (kl < 8 + 13) return 0; /* not ours: the sweep drops it */
    int rc = load_record(x, rk, rkl, &r);
    if (rc == SB_ENOTFOUND) { /* its record is gone */
        rc = st_del(x->t->txn, x->e, DB_REVIEW, k, kl);
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    if (rc == SB_ESTORE) return 0; /* the sweep logs it when it comes up */
    if (rc) return rc;
    /* Its due known (or an older epoch's entry): nothing to write. A
    ** version 3 record may lack it too: one an erasure rewrote. */
    if (r.review_due >= 0 || r.epoch != (vl == 4 ? be32(vh) : UINT32_MAX)) return 0;
    r.review_due = (int64_t)be64(k);
    return rec_rewrite(x, rk, rkl, &r); /* no cursor in jobs: st_put */
}

/* The index entries of records written before format 11 are in recid and
** ridx, where they are read and deleted as they are; this walk moves them to
** recidt and ridxt (records.c says why), record by record in key order
** (value V_JOB then the last record key handled), so that a sweep meets
** them where it meets those of newer records. Records written meanwhile have
** theirs there already. */
int ret_reindex_queue(MDB_txn *txn, sb_engine *e)
{
    int empty, rc = rec_old_empty(txn, e, &empty);
    if (rc || empty) return rc; /* nothing to move */
    uint8_t k[5] = {JOB_REINDEX, 0, 0, 0, 0}, v[1] = {V_JOB};
    rc = st_put_new(txn, e, DB_JOBS, k, 5, v, 1);
    return rc == MDB_KEYEXIST ? 0 : rc;
}

/* The reindex walk's step for one record. */
static int reindex_one(rctx *x, const uint8_t *k, size_t kl, const uint8_t *vh, size_t vl)
{
    MDB_val v;
    int rc = st_get(x->t->txn, x->e, DB_RECORDS, k, kl, &v);
    if (rc == 0) rc = rec_reindex(x->t->txn, x->e, k, kl, v.mv_data, v.mv_size);
    return rc == 1 || rc == MDB_NOTFOUND ? 0 : rc;
}

/* Erasure requests a hold kept from records (DB_ERASURES): key acct(4)
** pseudonym(16), value V_PEND received(8) flags(1) cursor (a pseudonym
** index key, or nothing). The pseudonym is in the pseudonym index already:
** nothing new about the number is stored. When a hold of the account is
** released, a job (JOB_ERASURE) runs each of them again, so a request
** reaches every record of the number once no hold keeps it; one that a hold
** still keeps stays for the next release. PF_RUN_HELD and cursor are the
** state of a run of that job cut into transactions.
**
** A request also covers the calls of the number that were live when it
** came: it is remembered (PF_LIVE) until the last of them has ended, and
** each of their records goes through the erase hook when it is written.
** An entry with PF_LIVE is one a hold kept records from only with PF_HOLD
** too (entries without PF_LIVE always are). A request reaches the records
** of calls offered up to the time it was received, never later ones. */
#define V_PEND 1
#define PEND_MAX (10 + 29 + SB_ID_MAX)
enum { PF_RUN_HELD = 1, PF_LIVE = 2, PF_HOLD = 4 };

static size_t pend_key(uint8_t k[20], uint32_t acct, const uint8_t pseudo[16])
{
    put_be32(k, acct);
    memcpy(k + 4, pseudo, 16);
    return 20;
}

static int pend_put(rctx *x, const uint8_t pseudo[16], int64_t received, int flags,
                    const uint8_t *cur, size_t curlen)
{
    uint8_t k[20], v[PEND_MAX];
    if (curlen > PEND_MAX - 10) return SB_ESTORE;
    v[0] = V_PEND;
    put_be64(v + 1, (uint64_t)received);
    v[9] = (uint8_t)flags;
    if (curlen) memcpy(v + 10, cur, curlen);
    return st_put(x->t->txn, x->e, DB_ERASURES, k, pend_key(k, x->acct, pseudo), v, 10 + curlen);
}

/* The request remembered for the pseudonym in the account x works on:
** 0 with its time and flags, MDB_NOTFOUND when there is none. */
static int pend_read(wtx *t, uint32_t acct, const uint8_t pseudo[16], int64_t *received, int *flags)
{
    uint8_t k[20];
    MDB_val v;
    int rc = st_get(t->txn, t->e, DB_ERASURES, k, pend_key(k, acct, pseudo), &v);
    if (rc) return rc;
    const uint8_t *b = v.mv_data;
    if (v.mv_size < 10 || b[0] != V_PEND) return MDB_NOTFOUND;
    *received = (int64_t)be64(b + 1);
    *flags = b[9];
    return 0;
}

/* How many live calls of account acct (id account_id), other than `except`
** (NULL: none), offered at or before `before`, have the number whose
** pseudonym is pseudo (as caller or called): their count, or an error. */
static int live_calls_of(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *account_id,
                         const uint8_t pseudo[16], int64_t before, const char *except)
{
    call_rec *c = calloc(1, sizeof *c);
    if (!c) return SB_ENOMEM;
    uint8_t p[4], key[32];
    int have_key = 0, found = 0, rc;
    st_iter it;
    for (rc = st_iter_open(&it, txn, e, DB_CALLS, p, key_acct(p, acct)); rc == 0;
         rc = st_iter_next(&it)) {
        if (dec_call(it.v.mv_data, it.v.mv_size, c)) continue;
        if (c->offered > before || (except && strcmp(c->id, except) == 0)) continue;
        uint8_t ps[2][16];
        int n = c->npseudo > 2 ? 2 : c->npseudo;
        memcpy(ps, c->pseudo, sizeof ps);
        if (!n && c->caller[0]) { /* stored before numbers were sealed */
            if (!have_key && account_id && rec_key(e, acct, account_id, 0, key) == 0) have_key = 1;
            if (!have_key) continue;
            cr_pseudonym(key, c->caller, ps[n++]);
            if (c->called[0]) cr_pseudonym(key, c->called, ps[n++]);
        }
        int mine = 0;
        for (int i = 0; i < n; i++)
            mine |= !memcmp(ps[i], pseudo, 16);
        found += mine;
    }
    st_iter_close(&it);
    if (have_key) cr_wipe(key, sizeof key);
    cr_wipe(c->caller, sizeof c->caller);
    cr_wipe(c->called, sizeof c->called);
    call_free(c);
    free(c);
    return rc == MDB_NOTFOUND ? found : rc;
}

/* live_calls_of for the account x works on. */
static int live_call_of(rctx *x, const uint8_t pseudo[16], int64_t before, const char *except)
{
    return live_calls_of(x->t->txn, x->e, x->acct, x->exists ? x->a.id : NULL, pseudo, before,
                         except);
}

static int erase_batch(rctx *x, const uint8_t pseudo[16], int64_t received, const uint8_t *cur,
                       size_t curlen, uint8_t *next, size_t *nextlen, int *done, int *handled);

/* Run the erasure requests a hold kept from records of the account again,
** after a hold was released: those after the pseudonym in cur (curlen 0:
** from the first). Returns the index entries handled. */
static int job_erasure(rctx *x, uint32_t acct, uint8_t cur[16], size_t *curlen, int budget,
                       int *done)
{
    MDB_txn *txn = x->t->txn;
    int rc = use_account(x, acct), n = 0;
    *done = 0;
    if (rc) return rc;
    if (!x->exists) { /* deleted meanwhile: the purge takes the entries */
        *done = 1;
        return 0;
    }
    uint8_t p[4], after[20];
    key_acct(p, acct);
    while (n < budget) {
        uint8_t pseudo[16], v[PEND_MAX], next[29 + SB_ID_MAX];
        size_t vl = 0, nextlen;
        st_iter it;
        if (*curlen) pend_key(after, acct, cur);
        rc = st_iter_after(&it, txn, x->e, DB_ERASURES, p, 4, after, *curlen ? 20 : 0);
        int ok = rc == 0 && it.klen == 20 && it.v.mv_size >= 10 && it.v.mv_size <= sizeof v &&
                 ((const uint8_t *)it.v.mv_data)[0] == V_PEND;
        if (ok) {
            memcpy(pseudo, it.key + 4, 16);
            memcpy(v, it.v.mv_data, it.v.mv_size);
            vl = it.v.mv_size;
        } else if (rc == 0) {
            rc = st_iter_del(&it); /* not ours: dropped */
        }
        st_iter_close(&it);
        if (rc == MDB_NOTFOUND) {
            *done = 1;
            break;
        }
        if (rc) return rc;
        if (!ok) continue;
        int flags = v[9] & ~PF_RUN_HELD;
        if ((flags & PF_LIVE) && !(flags & PF_HOLD)) {
            /* Remembered for live calls only: no hold kept anything from it. */
            memcpy(cur, pseudo, 16);
            *curlen = 16;
            n++;
            continue;
        }
        int edone = 0, handled = 0, held = v[9] & PF_RUN_HELD;
        uint64_t failed = x->n.failed, decided = x->n.deleted + x->n.anonymized + x->n.kept;
        x->erase_held = 0;
        rc = erase_batch(x, pseudo, (int64_t)be64(v + 1), v + 10, vl - 10, next, &nextlen, &edone,
                         &handled);
        if (rc) return rc;
        /* A record whose erase hook failed keeps the request too: it is not
        ** done (the audit has the error; the next release runs it again). */
        held |= x->erase_held > 0 || x->n.failed > failed;
        /* The records it decided (not the index entries it walked: a call
        ** offered after the request is not the request's). */
        x->n.erased += x->n.deleted + x->n.anonymized + x->n.kept - decided;
        n += handled + 1;
        if (!edone) { /* its next batch, from where this one ended */
            if ((rc = pend_put(x, pseudo, (int64_t)be64(v + 1), flags | (held ? PF_RUN_HELD : 0),
                               next, nextlen)))
                return rc;
            continue;
        }
        /* Done with it: kept for the next release while a hold still keeps
        ** a record from it, for its live calls while they last, forgotten
        ** otherwise. */
        uint8_t k[20];
        if (held)
            rc = pend_put(x, pseudo, (int64_t)be64(v + 1), flags & PF_LIVE ? PF_LIVE | PF_HOLD : 0,
                          NULL, 0);
        else if (flags & PF_LIVE)
            rc = pend_put(x, pseudo, (int64_t)be64(v + 1), PF_LIVE, NULL, 0);
        else
            rc = st_del(txn, x->e, DB_ERASURES, k, pend_key(k, acct, pseudo));
        if (rc) return rc;
        memcpy(cur, pseudo, 16);
        *curlen = 16;
    }
    return n;
}

/* A hold of the account was released: the job runs every request again
** from the first, and so from its first record the one a run cut into
** transactions was half way through (with a cursor, and maybe held set by
** records the released hold kept before the cut: resumed, those would stay
** until another release). Only the job leaves a request so; at most one. */
static int pend_restart(rctx *x)
{
    uint8_t p[4], after[20];
    size_t alen = 0;
    key_acct(p, x->acct);
    for (;;) {
        uint8_t pseudo[16];
        int64_t received = 0;
        int found = 0, flags = 0, rc;
        st_iter it;
        for (rc = st_iter_after(&it, x->t->txn, x->e, DB_ERASURES, p, 4, after, alen); rc == 0;
             rc = st_iter_next(&it)) {
            const uint8_t *v = it.v.mv_data;
            if (it.klen == 20 && it.v.mv_size >= 10 && v[0] == V_PEND &&
                (it.v.mv_size > 10 || (v[9] & PF_RUN_HELD))) {
                memcpy(pseudo, it.key + 4, 16);
                received = (int64_t)be64(v + 1);
                flags = v[9] & ~PF_RUN_HELD;
                found = 1;
                break;
            }
        }
        st_iter_close(&it);
        if (rc && rc != MDB_NOTFOUND) return rc;
        if (!found) return 0;
        if ((rc = pend_put(x, pseudo, received, flags, NULL, 0))) return rc;
        alen = pend_key(after, x->acct, pseudo);
    }
}

/* Run background jobs within the budget; returns the work done. */
static int run_jobs(rctx *x, int budget, uint64_t deadline, int *more)
{
    MDB_txn *txn = x->t->txn;
    int used = 0, rc;
    while (used < budget && mono_ns() < deadline) {
        uint8_t key[5];
        uint8_t val[10 + REC_KEY_MAX]; /* a purge's: V_JOB stage review-key */
        size_t vl = 0;
        int found = 0;
        st_iter it;
        for (rc = st_iter_open(&it, txn, x->e, DB_JOBS, "", 0); rc == 0; rc = st_iter_next(&it)) {
            if (it.klen == 5 &&
                (it.key[0] == JOB_PURGE || it.key[0] == JOB_RESCAN || it.key[0] == JOB_ERASURE ||
                 it.key[0] == JOB_UPGRADE || it.key[0] == JOB_REINDEX) &&
                it.v.mv_size <= sizeof val) {
                memcpy(key, it.key, 5);
                memcpy(val, it.v.mv_data, it.v.mv_size);
                vl = it.v.mv_size;
                found = 1;
                break;
            }
        }
        st_iter_close(&it);
        if (rc && rc != MDB_NOTFOUND) return rc;
        if (!found) return used;
        uint32_t acct = be32(key + 1);
        int done = 0, n;
        if (key[0] == JOB_PURGE) {
            uint8_t stage = vl >= 2 ? val[1] : 0;
            size_t curlen = vl > 2 ? vl - 2 : 0;
            n = job_purge(x, acct, &stage, val + 2, &curlen, budget - used, &done);
            if (n < 0 || IS_SB_ERR(n)) return n;
            val[0] = V_JOB;
            val[1] = stage;
            vl = 2 + curlen;
            if (done)
                sb_log(x->e, SB_LOG_INFO, "sweep: deleted account #" OWN_U " purged",
                       (unsigned)acct);
        } else if (key[0] == JOB_UPGRADE) {
            size_t curlen = vl > 1 ? vl - 1 : 0; /* V_JOB, the last entry handled */
            n = job_walk(x, DB_REVIEW, 8 + REC_KEY_MAX, upgrade_one, val + 1, &curlen,
                         budget - used, deadline, &done);
            if (n < 0 || IS_SB_ERR(n)) return n;
            val[0] = V_JOB;
            vl = 1 + curlen;
            if (done) sb_log(x->e, SB_LOG_INFO, "sweep: every record carries its review due");
        } else if (key[0] == JOB_REINDEX) {
            size_t curlen = vl > 1 ? vl - 1 : 0; /* V_JOB, the last record handled */
            n = job_walk(x, DB_RECORDS, REC_KEY_MAX, reindex_one, val + 1, &curlen, budget - used,
                         deadline, &done);
            if (n < 0 || IS_SB_ERR(n)) return n;
            val[0] = V_JOB;
            vl = 1 + curlen;
            if (done)
                sb_log(x->e, SB_LOG_INFO,
                       "sweep: every record's index entries are kept by period (format 11)");
        } else if (key[0] == JOB_ERASURE) {
            size_t curlen = vl == 17 ? 16 : 0; /* V_JOB, the last pseudonym done */
            n = job_erasure(x, acct, val + 1, &curlen, budget - used, &done);
            if (n < 0 || IS_SB_ERR(n)) return n;
            val[0] = V_JOB;
            vl = 1 + curlen;
        } else {
            if (vl < 5) { /* unreadable: drop it */
                done = 1;
                n = 0;
            } else {
                size_t curlen = vl - 5;
                n = job_rescan(x, acct, be32(val + 1), val + 5, &curlen, budget - used, &done);
                if (n < 0 || IS_SB_ERR(n)) return n;
                vl = 5 + curlen;
            }
        }
        used += n > 0 ? n : 1;
        rc =
            done ? st_del(txn, x->e, DB_JOBS, key, 5) : st_put(txn, x->e, DB_JOBS, key, 5, val, vl);
        if (rc) return rc;
        if (!done) {
            *more = 1;
            return used;
        }
    }
    *more = 1;
    return used;
}

/* --- sweeps ----------------------------------------------------------------------------- */

typedef struct sweep_run {
    int64_t now;  /* review what is due by then */
    counts n;     /* this transaction */
    counts total; /* the run so far (persisted) */
    int more;
    int resumed;
    int yielded; /* ended early: events were waiting */
    int64_t started;
    uint64_t txn_ns; /* time one transaction may take */
    held_tally held; /* decisions holds overrode in this transaction */
} sweep_run;

static void enc_counts(uint8_t *b, const counts *c, int64_t started)
{
    b[0] = V_JOB;
    put_be64(b + 1, (uint64_t)started);
    const uint64_t *v = &c->reviewed;
    for (int i = 0; i < NCOUNTS; i++)
        put_be64(b + 9 + 8 * i, v[i]);
}

static void add_counts(counts *a, const counts *b)
{
    uint64_t *x = &a->reviewed;
    const uint64_t *y = &b->reviewed;
    for (int i = 0; i < NCOUNTS; i++)
        x[i] += y[i];
}

/* A sweep run's walk of the accounts' audit logs, after its reviews: the
** accounts whose settings give audit_days, after the one the walk finished
** last (JOB_AUDIT: its number; from the first when there is none), each once
** a run: a read of each account's settings, in order, and a seek into the
** log of each that sets audit_days, which reads no further than its first
** value young enough (audit_expire). Returns the work done (settings read,
** values removed); *done when the walk has ended, *yielded when it stopped
** for events waiting. */
static int sweep_audit(rctx *x, int budget, uint64_t deadline, int *yielded, int *done)
{
    MDB_txn *txn = x->t->txn;
    uint8_t jk[1] = {JOB_AUDIT}, after[4] = {0};
    size_t alen = 0;
    MDB_val v;
    int used = 0, rc = st_get(txn, x->e, DB_JOBS, jk, 1, &v);
    if (rc == 0 && v.mv_size == 5 && ((const uint8_t *)v.mv_data)[0] == V_JOB) {
        memcpy(after, (const uint8_t *)v.mv_data + 1, 4);
        alen = 4;
    } else if (rc && rc != MDB_NOTFOUND) {
        return rc;
    }
    *done = 0;
    while (used < budget && !*done) {
        rec_settings s;
        uint32_t acct = 0;
        st_iter it;
        for (rc = st_iter_after(&it, txn, x->e, DB_PRIVACY, "", 0, after, alen); rc == 0;
             rc = st_iter_next(&it)) {
            if (it.klen != 4) continue;
            memcpy(after, it.key, 4);
            alen = 4;
            used++;
            if (rec_settings_decode(&it.v, &s) == 0 && s.audit_days) {
                acct = be32(it.key);
                break;
            }
            if (used >= budget) break;
        }
        st_iter_close(&it);
        if (rc && rc != MDB_NOTFOUND) return rc;
        *done = rc == MDB_NOTFOUND;
        if (acct) {
            int whole = 0;
            int k = audit_expire(x, acct, x->t->now - (int64_t)s.audit_days * DAY_MS,
                                 budget > used ? budget - used : 1, &whole);
            if (k < 0 || IS_SB_ERR(k)) return k;
            used += k;
            if (!whole) { /* the rest of its log in the next transaction */
                put_be32(after, acct - 1);
                break;
            }
        }
        if (mono_ns() >= deadline) break;
        if (used >= SWEEP_MIN && __atomic_load_n(&x->e->live_events, __ATOMIC_RELAXED)) {
            *yielded = 1;
            break;
        }
    }
    uint8_t cur[5] = {V_JOB};
    memcpy(cur + 1, after, 4);
    rc = *done ? st_del(txn, x->e, DB_JOBS, jk, 1) : st_put(txn, x->e, DB_JOBS, jk, 1, cur, 5);
    return rc ? rc : used;
}

/* Look up the account's rescan job (pending since its retention policy
** changed): x->rescan and its epoch. */
static int rescan_load(rctx *x, uint32_t acct)
{
    uint8_t k[5] = {JOB_RESCAN};
    put_be32(k + 1, acct);
    MDB_val v;
    int rc = st_get(x->t->txn, x->e, DB_JOBS, k, 5, &v);
    if (rc && rc != MDB_NOTFOUND) return rc;
    x->rescan_acct = acct;
    x->rescan = rc == 0 && v.mv_size >= 5;
    x->rescan_epoch = x->rescan ? be32((const uint8_t *)v.mv_data + 1) : 0;
    return 0;
}

/* Whether the account's rescan (its retention policy changed) is still to
** reach record r, which it will give an entry due in this sweep's run:
** *ahead 1 or 0; returns 0 or an error. */
static int rescan_ahead(rctx *x, uint32_t acct, const rec_data *r, int *ahead)
{
    int rc = x->rescan_acct != acct ? rescan_load(x, acct) : 0;
    *ahead = !rc && x->rescan && r->epoch != x->rescan_epoch;
    return rc;
}

/* Review the record of the entry under the cursor; the entry goes with
** the round's (review_drop). */
static int review_one(rctx *x, st_iter *it)
{
    uint8_t key[8 + REC_KEY_MAX];
    size_t kl = it->klen;
    memcpy(key, it->key, kl);
    uint32_t epoch = it->v.mv_size == 4 ? be32(it->v.mv_data) : UINT32_MAX;
    const uint8_t *rk = key + 8;
    size_t rkl = kl - 8;
    int rc = use_account(x, be32(rk));
    if (rc) return rc;
    rec_data r;
    if (x->exists) rc = load_record(x, rk, rkl, &r);
    /* The entry goes in any case (review_drop, at the round's end); the
    ** decision may put a new one. */
    if (!x->exists || rc == SB_ENOTFOUND || rc == SB_ESTORE || (rc == 0 && r.epoch != epoch)) {
        /* Account or record gone, or an entry of an older epoch: dropped. */
        if (rc == SB_ESTORE) sb_log(x->e, SB_LOG_ERROR, "sweep: a corrupt record was skipped");
        return 0;
    }
    if (rc) return rc;
    /* Not yet rescanned after a change of policy (a transaction that ran
    ** out of time before the rescan job, or one cut in the middle of it):
    ** the rescan gives it an entry due in this run, so this one goes
    ** unreviewed, or the record would be reviewed twice. */
    int ahead;
    if ((rc = rescan_ahead(x, be32(rk), &r, &ahead))) return rc;
    if (ahead) return 0;
    pol_retention d;
    if ((rc = decide_retain(x, &r, &d))) return rc;
    x->n.reviewed++;
    x->reviewing = (int64_t)be64(key);
    return apply(x, rk, rkl, &r, &d, SRC_REVIEW);
}

/* Delete the review index's entries from its first to `last` (its key as
** stored, table byte first): those a round walked, each handled. LMDB
** rebalances a leaf that falls below a quarter full by moving the first
** entry of its neighbour into it while the neighbour is fuller, so deleting
** from the index's start one entry after another moved an entry (and
** rewrote a branch key) for about three deletes of four. Two passes
** instead: the first deletes four entries of five, leaving each leaf about
** a fifth full, the second the rest, a leaf then merged with its
** neighbour, as sparse, as it empties. */
static int review_drop(rctx *x, const uint8_t *last, size_t lastlen)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(x->t->txn, x->e->dbi[DB_REVIEW], &c);
    if (rc) return rc;
    st_cache_forget(x->e, DB_REVIEW); /* written past the store's functions */
    MDB_val lim = {lastlen, (void *)last}, k, v;
    uint8_t first = DB_REVIEW + 1, kb[512];
    for (int pass = 0; pass < 2 && (!rc || rc == MDB_NOTFOUND); pass++) {
        k = (MDB_val){1, &first};
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        for (unsigned n = 0; rc == 0 && st_key_cmp(&k, &lim) <= 0; n++) {
            if (pass == 0 && n % 5 == 4) {
                rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
                continue;
            }
            size_t kl = k.mv_size < sizeof kb ? k.mv_size : sizeof kb;
            memcpy(kb, k.mv_data, kl);
            if ((rc = mdb_cursor_del(c, 0))) break;
            x->e->txn_dirty = 1;
            /* The cursor stands on the next entry, or past its leaf's last. */
            rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
            if (rc == MDB_NOTFOUND || rc == EINVAL) {
                k = (MDB_val){kl, kb};
                rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
            }
        }
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int do_sweep(wtx *t, void *arg)
{
    sweep_run *sr = arg;
    rctx x;
    rctx_init(&x, t);
    sr->more = 0;
    sr->yielded = 0;
    memset(&sr->n, 0, sizeof sr->n);
    sr->held.n = 0;
    uint64_t deadline = mono_ns() + sr->txn_ns;
    MDB_txn *txn = t->txn;
    /* The run's state: carried on when an earlier sweep was cut short. */
    uint8_t sk[1] = {JOB_SWEEP}, sv[9 + NCOUNTS * 8];
    MDB_val v;
    int rc = st_get(txn, t->e, DB_JOBS, sk, 1, &v);
    memset(&sr->total, 0, sizeof sr->total);
    sr->resumed = 0;
    sr->started = t->now;
    if (rc == 0 && v.mv_size >= 9 + 7 * 8 && v.mv_size <= sizeof sv && (v.mv_size - 9) % 8 == 0 &&
        ((uint8_t *)v.mv_data)[0] == V_JOB) { /* counts added since are 0 */
        const uint8_t *b = v.mv_data;
        sr->started = (int64_t)be64(b + 1);
        uint64_t *c = &sr->total.reviewed;
        for (int i = 0; i < (int)(v.mv_size - 9) / 8; i++)
            c[i] = be64(b + 9 + 8 * i);
        sr->resumed = 1;
    } else if (rc && rc != MDB_NOTFOUND) {
        goto out;
    }
    /* Reviews a rescan schedules are due in this run: its now, not this
    ** transaction's, which the clock may have moved past. */
    x.due = sr->now;
    int used = run_jobs(&x, SWEEP_BATCH, deadline, &sr->more);
    if (used < 0 || IS_SB_ERR(used)) {
        rc = used;
        goto out;
    }
    /* Reviews: the due entries from the start of the index, one cursor,
    ** which deletes each entry it handles; new entries wait until it is
    ** closed (nothing else writes to the index meanwhile). In rounds: the
    ** index deletes a round defers bound how long an event arriving
    ** meanwhile waits, and while none waits the transaction takes another
    ** round, until its time is up. */
    int i = 0, budget = SWEEP_BATCH - used, jobs_more = sr->more, left;
    do {
        x.defer = 1;
        x.ndels = 0;
        if ((rc = mdb_cursor_open(txn, t->e->dbi[DB_RECORDS], &x.rcur))) {
            x.rcur = NULL;
            goto out;
        }
        st_iter it;
        uint8_t last[512]; /* the key of the last entry walked, as stored */
        size_t lastlen = 0;
        for (rc = st_iter_open(&it, txn, t->e, DB_REVIEW, "", 0); rc == 0 && i < budget; i++) {
            int ours = it.klen >= 8 + 13 && it.klen <= 8 + REC_KEY_MAX;
            if (ours && (int64_t)be64(it.key) > sr->now) {
                rc = MDB_NOTFOUND; /* nothing more is due */
                break;
            }
            lastlen = it.k.mv_size < sizeof last ? it.k.mv_size : sizeof last;
            memcpy(last, it.k.mv_data, lastlen);
            if (!ours) { /* goes with the round's */
                rc = st_iter_next(&it);
                continue;
            }
            if ((rc = review_one(&x, &it))) break;
            rc = st_iter_next(&it);
            if (rc && rc != MDB_NOTFOUND) break;
            /* Events waiting for the write lock go first: end here. */
            if (i + 1 >= SWEEP_MIN && __atomic_load_n(&t->e->live_events, __ATOMIC_RELAXED)) {
                sr->yielded = 1;
                i++;
                break;
            }
            if (x.ndels >= SWEEP_DELS_MAX || ((i & 15) == 15 && mono_ns() > deadline)) {
                i++;
                break;
            }
        }
        st_iter_close(&it);
        left = rc == 0 || sr->yielded; /* stopped by the budget, not the end */
        if (!left && rc != MDB_NOTFOUND) goto out;
        x.defer = 0;
        mdb_cursor_close(x.rcur);
        x.rcur = NULL;
        if ((lastlen && (rc = review_drop(&x, last, lastlen))) ||
            (rc = batch_flush(&x, &x.dels, 0)) || (rc = review_flush(&x)))
            goto out;
        /* An event that came while the round's deletes were applied ends the
        ** rounds as one seen between records does: the sweep yields to it. */
        if (left && __atomic_load_n(&t->e->live_events, __ATOMIC_RELAXED)) sr->yielded = 1;
    } while (left && !sr->yielded && i < budget && mono_ns() < deadline);
    sr->more = jobs_more || left;
    if ((rc = audit_flush(&x))) goto out;
    /* Then the audit logs past their accounts' audit_days, once a run. */
    if (!sr->more) {
        int walked = 0;
        if (!sr->yielded && i < budget && mono_ns() < deadline) {
            int k = sweep_audit(&x, budget - i, deadline, &sr->yielded, &walked);
            if (k < 0 || IS_SB_ERR(k)) {
                rc = k;
                goto out;
            }
        }
        sr->more = !walked;
    }
    sr->n = x.n;
    add_counts(&sr->total, &x.n);
    if (sr->more) {
        enc_counts(sv, &sr->total, sr->started);
        rc = st_put(txn, t->e, DB_JOBS, sk, 1, sv, sizeof sv);
    } else {
        rc = st_del(txn, t->e, DB_JOBS, sk, 1);
    }
    if (!rc) held_take(&sr->held, &x.held);
out:
    rctx_free(&x);
    return rc;
}

/* Records due for review by `now` (an estimate for the progress bar). */
static uint64_t count_due(sb_engine *e, int64_t now)
{
    MDB_txn *txn;
    if (eng_read_begin(e, &txn)) return 0;
    uint64_t n = 0;
    st_iter it;
    int rc;
    for (rc = st_iter_open(&it, txn, e, DB_REVIEW, "", 0); rc == 0; rc = st_iter_next(&it))
        if (it.klen >= 8 && (int64_t)be64(it.key) <= now)
            n++;
        else
            break;
    st_iter_close(&it);
    eng_read_end(e, txn);
    return n;
}

/* A sweep's counts as a JSON object. */
static json_t *counts_json(const counts *c)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "reviewed", (json_int_t)c->reviewed,
                     "kept", (json_int_t)c->kept, "anonymized", (json_int_t)c->anonymized,
                     "deleted", (json_int_t)c->deleted, "overridden", (json_int_t)c->overridden,
                     "failed", (json_int_t)c->failed, "purged", (json_int_t)c->purged, "erased",
                     (json_int_t)c->erased, "audit_expired", (json_int_t)c->audit_expired);
}

int sb_sweep(sb_engine *e, uint32_t budget_ms, sb_sweep_progress_fn progress, void *arg,
             sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    /* A small budget also makes each transaction shorter (the daemon sweeps
    ** in its event loop, one transaction a turn). */
    sweep_run sr = {.now = eng_now(e), .txn_ns = SWEEP_TXN_NS};
    if (budget_ms && (uint64_t)budget_ms * 1000000u < sr.txn_ns)
        sr.txn_ns = (uint64_t)budget_ms * 1000000u;
    /* An erasure request another process left cut short (killed part way)
    ** is finished by the next sweep, before the reviews: its number's
    ** records could otherwise be read until some process opened the
    ** directory again. A failure is logged; the sweep goes on. */
    int jrc = ret_erasures_catch_up(e, budget_ms, res);
    if (jrc)
        sb_log(e, SB_LOG_ERROR, "%s",
               *sb_result_message(res) ? sb_result_message(res) : sb_strerror(jrc));
    res_reset(res);
    uint64_t t0 = mono_ns();
    uint64_t total = progress ? count_due(e, sr.now) : 0, done = 0;
    int txns = 0, rc = 0, resumed = 0, yields = 0;
    counts own = {0}; /* this call's own work (the run's may include another's) */
    do {
        rc = eng_write_ex(e, do_sweep, &sr, res, 1); /* it deletes: so may a full map */
        if (rc) break;
        if (sr.held.n) held_engine(e, &sr.held, HELD_SWEEP, eng_now(e), 0);
        if (txns == 0) resumed = sr.resumed;
        txns++;
        add_counts(&own, &sr.n);
        done += sr.n.reviewed + sr.n.purged;
        if (progress) {
            eng_cb f;
            eng_cb_enter(&f, e, ENG_CB_PROGRESS);
            progress(arg, done, total > done ? total : done);
            eng_cb_leave(&f);
        }
        if (budget_ms && (mono_ns() - t0) / 1000000 >= budget_ms) break;
        /* Let waiting events in before the next transaction. */
        if (sr.more && sr.yielded) {
            yields++;
            /* Sleep, do not spin: the events need the CPU more than we do.
            ** Carry on after a quiet spell (no event in flight twice in a
            ** row, 50 us apart), or SWEEP_YIELD_NS at most. */
            uint64_t until = mono_ns() + SWEEP_YIELD_NS;
            struct timespec nap = {0, 50000};
            int quiet = 0;
            do {
                nanosleep(&nap, NULL);
                quiet = __atomic_load_n(&e->live_events, __ATOMIC_RELAXED) ? 0 : quiet + 1;
            } while (quiet < 2 && mono_ns() < until);
        }
    } while (sr.more);
    free(sr.held.v);
    if (rc) return rc;
    /* The run's end: one line per hold that overrode decisions in it, and
    ** those of records written since each hold's last line. */
    if (!sr.more) held_engine(e, NULL, 0, eng_now(e), 1);
    /* Done: the pages that held what it removed are cleared. A failure
    ** leaves them for the next sweep's end. */
    if (!sr.more) (void)eng_scrub(e);
    /* Once the upgrade walk has emptied recid and ridx, lookups leave them
    ** alone (rec_tidx_settle). */
    MDB_txn *rtxn;
    if (!sr.more && rec_old_layout(e) && !eng_read_begin(e, &rtxn)) {
        (void)rec_tidx_settle(rtxn, e);
        eng_read_end(e, rtxn);
    }
    /* The run's totals: a resumed run's include the work done before it
    ** was interrupted. */
    json_t *o = counts_json(&sr.total);
    json_object_update_new(o,
                           json_pack("{s:i,s:i,s:f,s:b,s:b,s:o}", "transactions", txns, "yields",
                                     yields, "seconds", (double)(mono_ns() - t0) / 1e9, "done",
                                     !sr.more, "resumed", resumed, "this_call", counts_json(&own)));
    res_doc(res, o);
    return 0;
}

/* --- retention previews ------------------------------------------------------------------ */
/* What a sweep would do to an account's records, decided and counted but not
** applied: the records walked in read transactions of PREVIEW_KEYS each (no
** snapshot held for long), the retention hook run in a policy state of the
** preview's own (the engine's, its Lua globals, failure counts and
** quarantines, stay as they are), nothing written. */

#define PREVIEW_KEYS 256        /* keys one read transaction of a preview walks */
#define PREVIEW_SAMPLE_MAX 1000 /* ids a preview shows per count, at most */
#define PREVIEW_SAMPLE 10
#define PREVIEW_DAYS_MAX 36600
#define PREVIEW_NOW_MAX 253402300799999LL /* 9999-12-31T23:59:59.999Z */
#define PREVIEW_BUDGET_MAX 3600000        /* ms */

enum { PV_KEPT, PV_ANONYMIZED, PV_DELETED, PV_OVERRIDDEN, PV_FAILED, PV_N };
static const char *const pv_names[PV_N] = {"kept", "anonymized", "deleted", "overridden", "failed"};

typedef struct preview {
    wtx t;           /* t.txn: the read transaction of the round at hand; nothing writes */
    rctx x;          /* the account, its settings (retention: the policy previewed), holds */
    int all;         /* every record of the account, not only those due */
    const char *src; /* the source previewed as x.s.retention, or NULL: the stored one */
    size_t srclen;
    char version[17];     /* src's */
    char ran_version[17]; /* the version that decided, as the hook reported it */
    size_t sample;
    uint64_t reviewed, n[PV_N];
    json_t *ids[PV_N];
    uint8_t keys[PREVIEW_KEYS][8 + REC_KEY_MAX];
    size_t kls[PREVIEW_KEYS];
    uint32_t epochs[PREVIEW_KEYS];
    uint8_t ours[PREVIEW_KEYS];    /* the key is of a record to consider */
    uint64_t deadline;             /* mono_ns: stop at it (0: no budget) */
    int from_index;                /* where this call began: the index or the records, */
    uint8_t from[8 + REC_KEY_MAX]; /* after this key ("next") */
    size_t fromlen;
    int stopped; /* the budget ran out before the end */
} preview;

/* Has the walk moved on since this call began? A call stops for its
** budget only then, so each comes nearer the end. */
static int preview_moved(const preview *p, int index, const uint8_t *cur, size_t curlen)
{
    return index != p->from_index || curlen != p->fromlen || memcmp(cur, p->from, curlen);
}

/* pol_source_fn of the preview's policy state: the source given for the
** policy previewed, else the stored one (read through the round's read
** transaction, which is open whenever a hook runs). */
static int preview_source(void *arg, uint32_t acct, const char *name, sb_buf *src, char version[17],
                          int64_t *stamp)
{
    preview *p = arg;
    if (p->src && !strcmp(name, p->x.s.retention)) {
        src->len = 0;
        if (buf_put(src, p->src, p->srclen)) return SB_ENOMEM;
        memcpy(version, p->version, 17);
        if (stamp) *stamp = 0;
        return 0;
    }
    return policies_source_at(p->t.txn, p->t.e, acct, name, src, version, stamp);
}

/* The preview's policy failures and ctx.log lines: at debug level, said to
** be a preview's (a quarantine there is no quarantine of the engine's). */
static void preview_log(void *arg, sb_log_level lvl, const log_text *line)
{
    (void)lvl;
    log_text t;
    logt_init(&t);
    logt_add(&t, "retention preview: ");
    logt_append(&t, line);
    sb_log_text(arg, SB_LOG_DEBUG, &t);
}

static void preview_count(preview *p, int k, const rec_data *r)
{
    p->n[k]++;
    if (json_array_size(p->ids[k]) < p->sample)
        json_array_append_new(p->ids[k], json_stringn(r->id, r->idlen));
}

/* The decision a review of r would take and apply, as apply() takes it,
** counted. */
static int preview_one(preview *p, rec_data *r)
{
    rctx *x = &p->x;
    pol_retention d;
    int rc = decide_retain(x, r, &d);
    if (rc) return rc;
    int action = keep_or(&d, r);
    const char *reason = d.failed ? d.error : d.reason;
    char held[SB_ID_MAX + SB_REASON_MAX + 16];
    const hold *h = x->nholds ? hold_match(x, r) : NULL;
    int overridden = h && (action == RET_DELETE || action == RET_ANONYMIZE);
    if (overridden) {
        action = RET_KEEP;
        snprintf(held, sizeof held, "legal hold %s: %s", h->id, h->reason);
        reason = held;
    }
    p->reviewed++;
    preview_count(p,
                  action == RET_DELETE      ? PV_DELETED
                  : action == RET_ANONYMIZE ? PV_ANONYMIZED
                                            : PV_KEPT,
                  r);
    if (overridden) preview_count(p, PV_OVERRIDDEN, r);
    if (d.failed) preview_count(p, PV_FAILED, r);
    count_reason(x, d.failed ? "failed" : act_names[action], reason);
    if (d.version[0]) memcpy(p->ran_version, d.version, sizeof p->ran_version);
    return 0;
}

/* One read transaction of the walk, from just after cur: the review index
** (index: the entries due by now; of other accounts passed over) or the
** account's records (every one, or with a rescan pending only those it has
** still to reach); cur moves on with each key handled. *done once the walk
** has ended; p->stopped when the time budget ran out first. */
static int preview_round(preview *p, int index, uint8_t *cur, size_t *curlen, int *done)
{
    rctx *x = &p->x;
    sb_engine *e = p->t.e;
    MDB_txn *txn;
    if (eng_read_begin(e, &txn)) return SB_ESTORE;
    p->t.txn = txn;
    int k = 0, rc;
    uint8_t pre[4];
    key_acct(pre, x->acct);
    st_iter it;
    if (index)
        rc = st_iter_after(&it, txn, e, DB_REVIEW, "", 0, cur, *curlen);
    else
        rc = st_iter_after(&it, txn, e, DB_RECORDS, pre, 4, cur, *curlen);
    for (; rc == 0 && k < PREVIEW_KEYS; rc = st_iter_next(&it)) {
        if (it.klen > 8 + REC_KEY_MAX) continue;
        if (index && (int64_t)be64(it.key) > p->t.now) {
            rc = MDB_NOTFOUND; /* nothing more is due */
            break;
        }
        memcpy(p->keys[k], it.key, it.klen);
        p->kls[k] = it.klen;
        if (index)
            p->ours[k] = it.klen >= 8 + 13 && be32((const uint8_t *)it.key + 8) == x->acct;
        else
            p->ours[k] = it.klen <= REC_KEY_MAX && it.v.mv_size >= 6;
        p->epochs[k++] = index && it.v.mv_size == 4 ? be32(it.v.mv_data) : UINT32_MAX;
    }
    st_iter_close(&it);
    *done = rc == MDB_NOTFOUND;
    if (rc && rc != MDB_NOTFOUND) goto out;
    rc = 0;
    for (int i = 0; i < k && !rc; i++) {
        /* Out of time: stop before this key (once "next" has moved on). */
        if (p->deadline && mono_ns() > p->deadline && preview_moved(p, index, cur, *curlen)) {
            p->stopped = 1;
            *done = 0;
            break;
        }
        memcpy(cur, p->keys[i], p->kls[i]);
        *curlen = p->kls[i];
        if (!p->ours[i]) continue;
        const uint8_t *rk = index ? p->keys[i] + 8 : p->keys[i];
        size_t rkl = index ? p->kls[i] - 8 : p->kls[i];
        rec_data r;
        if ((rc = load_record(x, rk, rkl, &r))) {
            if (rc == SB_ENOTFOUND || rc == SB_ESTORE) rc = 0; /* a sweep drops it */
            continue;
        }
        int ahead = 0;
        if (!p->all && (rc = rescan_ahead(x, x->acct, &r, &ahead))) break;
        /* The index: an entry of an older epoch is dropped, and a record
        ** the pending rescan has still to reach is reviewed by it (the walk
        ** of the records), as in review_one. The records: all, or those. */
        if (index ? r.epoch != p->epochs[i] || ahead : !p->all && !ahead) continue;
        rc = preview_one(p, &r);
    }
out:
    eng_read_end(e, txn);
    p->t.txn = NULL;
    return rc;
}

/* Walk the index (index 1) or the account's records from cur to the end, or
** until the time budget runs out (p->stopped, cur where to go on). */
static int preview_walk(preview *p, int index, uint8_t *cur, size_t *curlen)
{
    int done = 0, rc = 0;
    while (!done && !rc && !p->stopped)
        rc = preview_round(p, index, cur, curlen, &done);
    return rc;
}

/* A preview's "next": where it stopped ('i' the index or 'r' the records,
** then the last key walked), sealed with the account's data key under
** associated data naming the account. That key may be an entry of another
** account's record in the index (its due time, account, offered time and
** call id), and a handle nobody can forge or read is all a caller needs:
** the caller gets the hex of the sealed bytes, and another account's
** "next", or one changed, does not open. */
#define PREVIEW_NEXT_PT (1 + 8 + REC_KEY_MAX)
#define PREVIEW_NEXT_MAX (PREVIEW_NEXT_PT + CR_SEAL_OVERHEAD)

static size_t preview_next_ad(uint8_t *ad, const char *account)
{
    static const char tag[] = "switchboard retention preview next";
    size_t al = strlen(account);
    memcpy(ad, tag, sizeof tag); /* its NUL separates the account's id */
    memcpy(ad + sizeof tag, account, al);
    return sizeof tag + al;
}

/* The account's data key into key: 0, 1 when it has none (it never had a
** record), or an error said in res. */
static int preview_key(sb_engine *e, const rctx *x, uint8_t key[32], sb_result *res)
{
    int rc = rec_key(e, x->acct, x->a.id, 0, key);
    if (rc == REC_NO_KEY) return 1;
    if (rc)
        return res_err(res, rc == SB_ECRYPTO ? SB_ECRYPTO : SB_ESTORE, NULL,
                       "the data key of account '%s' %s", x->a.id,
                       rc == SB_ECRYPTO ? "does not open" : "cannot be read");
    return 0;
}

/* The sealed cursor of hex s into sealed (*len bytes). -1 when s is none. */
static int preview_next_hex(const char *s, uint8_t *sealed, size_t *len)
{
    size_t n = strlen(s);
    if (n % 2 || n / 2 <= CR_SEAL_OVERHEAD || n / 2 > PREVIEW_NEXT_MAX) return -1;
    *len = n / 2;
    return cr_hex_decode(s, n, sealed, *len) ? -1 : 0;
}

/* Open the account's sealed cursor: where to carry on (*index, cur). */
static int preview_next_open(sb_engine *e, const rctx *x, const uint8_t *sealed, size_t len,
                             int *index, uint8_t *cur, size_t *curlen, sb_result *res)
{
    uint8_t key[32], ad[64 + SB_ID_MAX], pt[PREVIEW_NEXT_MAX];
    int rc = preview_key(e, x, key, res);
    if (rc < 0) return rc;
    size_t n = len - CR_SEAL_OVERHEAD;
    int bad = rc || cr_open(key, ad, preview_next_ad(ad, x->a.id), sealed, len, pt) ||
              (pt[0] != 'i' && pt[0] != 'r');
    cr_wipe(key, sizeof key);
    if (bad)
        return res_err(res, SB_EINVAL, "next",
                       "'next' must be the \"next\" of an earlier preview's answer for "
                       "this account");
    *index = pt[0] == 'i';
    *curlen = n - 1;
    memcpy(cur, pt + 1, n - 1);
    return 0;
}

/* Seal where the preview stopped into next (hex, NUL-terminated). 1 when
** the account has no data key: it never had a record, so nothing of its
** is left to walk. */
static int preview_next_seal(sb_engine *e, const rctx *x, const uint8_t *pt, size_t n, char *next,
                             sb_result *res)
{
    uint8_t key[32], ad[64 + SB_ID_MAX], sealed[PREVIEW_NEXT_MAX];
    int rc = preview_key(e, x, key, res);
    if (rc) return rc;
    rc = cr_seal(key, ad, preview_next_ad(ad, x->a.id), pt, n, sealed);
    cr_wipe(key, sizeof key);
    if (rc) return res_err(res, SB_ECRYPTO, NULL, "could not seal the preview's next");
    cr_hex_encode(sealed, n + CR_SEAL_OVERHEAD, next);
    return 0;
}

int sb_retention_preview(sb_engine *e, const char *account, const char *opts, size_t len,
                         sb_result *res)
{
    static const char *const keys[] = {"now_ms", "in_days",   "policy", "source", "scope",
                                       "sample", "budget_ms", "next",   NULL};
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    json_t *doc = NULL;
    long long now = -1, days = -1, sample = PREVIEW_SAMPLE, budget = 0;
    char name[SB_NAME_MAX + 1] = "", scope[8] = "", next[2 * PREVIEW_NEXT_MAX + 1] = "";
    uint8_t cur[8 + REC_KEY_MAX], sealed[PREVIEW_NEXT_MAX];
    size_t curlen = 0, sealedlen = 0;
    int index = -1;
    const char *src = NULL;
    size_t srclen = 0;
    int rc;
    if (opts && len) {
        if ((rc = jv_parse(opts, len, &doc, res))) return rc;
        json_t *sv = json_object_get(doc, "source"), *pv = json_object_get(doc, "policy");
        if ((rc = jv_keys(doc, keys, NULL, res)) ||
            (rc = jv_int(doc, "now_ms", NULL, 0, 0, PREVIEW_NOW_MAX, &now, res)) ||
            (rc = jv_int(doc, "in_days", NULL, 0, 0, PREVIEW_DAYS_MAX, &days, res)) ||
            (rc = jv_int(doc, "sample", NULL, 0, 0, PREVIEW_SAMPLE_MAX, &sample, res)) ||
            (rc = jv_int(doc, "budget_ms", NULL, 0, 1, PREVIEW_BUDGET_MAX, &budget, res)) ||
            (rc = jv_str(doc, "scope", NULL, 0, scope, sizeof scope, res)) ||
            (rc = jv_str(doc, "next", NULL, 0, next, sizeof next, res)))
            goto fail;
        if (json_object_get(doc, "next") && preview_next_hex(next, sealed, &sealedlen)) {
            rc = res_err(res, SB_EINVAL, "next",
                         "'next' must be the \"next\" of an earlier preview's answer");
            goto fail;
        }
        if (pv && !json_is_null(pv) &&
            (!json_is_string(pv) || !policy_name_valid(json_string_value(pv)))) {
            rc = res_err(res, SB_EINVAL, "policy", "'policy' must be a policy name");
            goto fail;
        }
        if (json_is_string(pv)) str_copy(name, sizeof name, json_string_value(pv));
        if (sv && !json_is_null(sv) && (!json_is_string(sv) || !json_string_length(sv))) {
            rc = res_err(res, SB_EINVAL, "source", "'source' must be a policy's Lua source text");
            goto fail;
        }
        if (json_is_string(sv)) {
            src = json_string_value(sv);
            srclen = json_string_length(sv);
        }
    }
    if (now >= 0 && days >= 0) {
        rc = res_err(res, SB_EINVAL, "in_days", "give now_ms or in_days, not both");
        goto fail;
    }
    if (scope[0] && strcmp(scope, "due") && strcmp(scope, "all")) {
        rc = res_err(res, SB_EINVAL, "scope",
                     "'scope' must be \"due\" (the records a sweep then would review) or "
                     "\"all\" (every record, as after a change of the account's retention)");
        goto fail;
    }
    preview *p = calloc(1, sizeof *p);
    if (!p) {
        rc = res_err(res, SB_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    p->t.e = e;
    rctx_init(&p->x, &p->t);
    rctx *x = &p->x;
    p->sample = (size_t)sample;
    p->src = src;
    p->srclen = srclen;
    for (int i = 0; i < PV_N; i++)
        p->ids[i] = json_array();
    x->reasons = json_object();
    MDB_txn *txn;
    if ((rc = eng_read_account(e, account, &txn, &x->a, res))) goto done;
    x->acct = x->a.num;
    x->exists = 1;
    p->t.acct = x->acct;
    p->t.now = now >= 0 ? now : eng_now(e) + (days > 0 ? days * DAY_MS : 0);
    rc = rec_settings_load(txn, e, x->acct, &x->s);
    if (rc == SB_ESTORE) rc = 0;
    if (!rc) rc = holds_load(txn, e, x->acct, &x->holds, &x->nholds, &x->capholds);
    p->t.txn = txn;
    if (!rc) rc = rescan_load(x, x->acct);
    p->t.txn = NULL;
    if (rc) rc = eng_mdb_err(res, rc, "read the account's retention");
    /* The policy previewed: the one named, else the account's. A name or a
    ** source given must be one a setting of retention could take: it loads
    ** and defines retain. */
    int named = name[0] || src;
    if (!rc && name[0]) str_copy(x->s.retention, sizeof x->s.retention, name);
    sb_buf stored = {0};
    if (!rc && src) cr_version(src, srclen, p->version);
    if (!rc && named && !x->s.retention[0])
        rc = res_err(res, SB_EINVAL, "policy",
                     "the account has no retention policy: name the one the source is to be "
                     "previewed as ('policy')");
    else if (!rc && named && !src) {
        rc = policies_source_at(txn, e, x->acct, x->s.retention, &stored, p->version, NULL);
        if (rc == SB_ENOTFOUND)
            rc = res_err(res, SB_ENOTFOUND, "policy",
                         "no policy '%s' for account %s (neither its own nor a shared one)",
                         x->s.retention, x->a.id);
        else if (rc == SB_EPOLICY)
            rc = res_err(res, SB_EPOLICY, "policy",
                         "policy '%s' is not signed, and the engine runs only signed policies",
                         x->s.retention);
        else if (rc)
            rc = eng_mdb_err(res, rc, "read the policy");
    } else if (!rc && !named && x->s.retention[0]) {
        /* The account's own: what it runs, as a sweep would run it (a
        ** missing or broken one fails each review, as there). */
        if (policies_source_at(txn, e, x->acct, x->s.retention, NULL, p->version, NULL))
            p->version[0] = 0;
    }
    eng_read_end(e, txn);
    if (!rc && named) {
        char file[SB_NAME_MAX + 8], why[SB_NAME_MAX + 128];
        snprintf(file, sizeof file, "%s.lua", x->s.retention);
        const char *text = src ? src : stored.p;
        size_t tl = src ? srclen : stored.len;
        pol_limits vlim = pol_limits_of(&e->cfg);
        unsigned hooks = 0;
        if (src && pol_source_check(file, text, tl, why, sizeof why))
            rc = res_err(res, SB_EINVAL, "source", "%s", why);
        else if (src && (rc = policy_signature_check(e, x->s.retention, text, tl, res)))
            ; /* what runs must be signed, as an upload must be */
        else if (!(rc =
                       pol_validate_hooks(&vlim, x->s.retention, text, tl, NULL, 0, res, &hooks)) &&
                 !(hooks & POL_HOOK_RETAIN))
            rc = res_err(res, SB_EINVAL, src ? "source" : "policy",
                         "%s '%s' has no retain hook; records are reviewed by a policy that "
                         "defines retain",
                         src ? "the source previewed as" : "policy", x->s.retention);
        if (!rc) res_reset(res);
    }
    buf_free(&stored);
    if (!rc && sealedlen)
        rc = preview_next_open(e, x, sealed, sealedlen, &index, cur, &curlen, res);
    if (rc) goto done;
    p->all = scope[0] ? !strcmp(scope, "all") : named;
    if (index == 1 && p->all) {
        rc = res_err(res, SB_EINVAL, "next", "this 'next' is of a preview of scope \"due\"");
        goto done;
    }
    if (index < 0) index = !p->all;
    p->from_index = index;
    memcpy(p->from, cur, curlen);
    p->fromlen = curlen;
    if (budget) p->deadline = mono_ns() + (uint64_t)budget * 1000000u;
    pol_limits lim = pol_limits_of(&e->cfg);
    if (!(x->pol = pol_host_new(&lim, preview_source, p, preview_log, e))) {
        rc = res_err(res, SB_ENOMEM, NULL, "out of memory");
        goto done;
    }
    /* Due: the index's entries, then the records a pending rescan (the
    ** account's retention changed since the last sweep) has still to reach;
    ** all: every record. */
    if (index) {
        rc = preview_walk(p, 1, cur, &curlen);
        index = rc || p->stopped;
        if (!index) curlen = 0; /* on to the records, from the first */
    }
    if (!rc && !index && (p->all || x->rescan)) rc = preview_walk(p, 0, cur, &curlen);
    if (rc) {
        rc = rc == SB_ENOMEM ? res_err(res, SB_ENOMEM, NULL, "out of memory")
                             : eng_mdb_err(res, rc, "read the records");
        goto done;
    }
    const char *ver = p->ran_version[0] ? p->ran_version : p->version;
    json_t *o = json_pack("{s:s,s:o,s:o,s:s,s:I,s:s,s:I}", "account", x->a.id, "policy",
                          x->s.retention[0] ? json_string(x->s.retention) : json_null(), "version",
                          ver[0] ? json_string(ver) : json_null(), "source",
                          src ? "given" : "stored", "now_ms", (json_int_t)p->t.now, "scope",
                          p->all ? "all" : "due", "reviewed", (json_int_t)p->reviewed);
    json_t *samples = json_object();
    for (int i = 0; i < PV_N; i++) {
        json_object_set_new(o, pv_names[i], json_integer((json_int_t)p->n[i]));
        json_object_set(samples, pv_names[i], p->ids[i]);
    }
    json_object_set(o, "reasons", x->reasons);
    json_object_set_new(o, "samples", samples);
    if (p->stopped) {
        uint8_t pt[PREVIEW_NEXT_PT];
        pt[0] = index ? 'i' : 'r';
        memcpy(pt + 1, cur, curlen);
        size_t n = 1 + curlen;
        int none = preview_next_seal(e, x, pt, n, next, res);
        cr_wipe(pt, sizeof pt);
        if (none < 0) {
            json_decref(o);
            rc = none;
            goto done;
        }
        if (none == 0) json_object_set_new(o, "next", json_string(next));
        p->stopped = !none;
    }
    json_object_set_new(o, "done", json_boolean(!p->stopped));
    res_doc(res, o);
done:
    if (x->pol) pol_host_free(x->pol);
    x->pol = NULL;
    for (int i = 0; i < PV_N; i++)
        json_decref(p->ids[i]);
    rctx_free(x);
    free(p);
fail:
    json_decref(doc);
    return rc;
}

/* --- erasure requests --------------------------------------------------------------- */

/* Put record r (at rk, of the account loaded in x) through the erase hook
** for a request received then, which found it by the number in `role`. */
static int erase_one(rctx *x, const uint8_t *rk, size_t rkl, rec_data *r, int role,
                     int64_t received)
{
    pol_retention d;
    memset(&d, 0, offsetof(pol_retention, error) + 1);
    if (x->s.retention[0]) {
        pol_record pr;
        pol_erasure req = {role == ROLE_CALLER ? "caller" : "called", received};
        view_of(x, r, hold_match(x, r), &pr);
        int rc = pol_erase(x->e->pol, x->acct, x->a.id, x->s.retention, &pr, &req, x->t->now, &d);
        x->cur = NULL;
        if (rc) return rc;
    }
    pol_retention_default(&d, x->s.retention, 1);
    return apply(x, rk, rkl, r, &d, SRC_ERASURE);
}

/* Put the number with pseudonym pseudo through the erase hook of the
** account loaded in x: its pseudonym index entries after cur (curlen 0:
** from the first), ERASE_BATCH at most. next: the last entry handled (cur
** when none; may not be cur's buffer); *done when none is left after it;
** *handled: the entries met. x->erase_held counts the records a hold kept. */
static int erase_batch(rctx *x, const uint8_t pseudo[16], int64_t received, const uint8_t *cur,
                       size_t curlen, uint8_t *next, size_t *nextlen, int *done, int *handled)
{
    wtx *t = x->t;
    uint32_t acct = x->acct;
    uint8_t(*keys)[REC_RIDX_MAX] = malloc(ERASE_BATCH * sizeof *keys);
    size_t *kls = malloc(ERASE_BATCH * sizeof *kls);
    int k = 0, rc;
    *handled = 0;
    if (!keys || !kls) {
        rc = SB_ENOMEM;
        goto out;
    }
    rec_walk it;
    for (rc = rec_walk_after(&it, t->txn, x->e, acct, pseudo, cur, curlen);
         rc == 0 && k < ERASE_BATCH; rc = rec_walk_next(&it)) {
        if (it.klen < 30 || it.klen > sizeof keys[0]) continue;
        memcpy(keys[k], it.key, it.klen);
        kls[k++] = it.klen;
    }
    rec_walk_close(&it);
    if (rc && rc != MDB_NOTFOUND) goto out;
    rc = 0;
    *done = k < ERASE_BATCH;
    for (int i = 0; i < k && !rc; i++) {
        const uint8_t *ik = keys[i];
        int role = ik[20];
        int64_t ended = (int64_t)be64(ik + 21);
        uint8_t rk[REC_KEY_MAX];
        size_t rkl = rec_key_of(rk, acct, (const char *)ik + 29, kls[i] - 29, ended);
        rec_data r;
        MDB_val iv;
        /* A record whose caller and called number are this number has an
        ** entry in each role: it is decided once, in the caller's. Its
        ** called entry is gone if that decision dropped the pseudonyms. */
        if (role == ROLE_CALLED && rec_ridx_get(t->txn, x->e, ik, kls[i], &iv) == MDB_NOTFOUND)
            continue;
        rc = load_record(x, rk, rkl, &r);
        if (rc == SB_ENOTFOUND) { /* a stale entry: the record is gone */
            rc = rec_ridx_del_key(t->txn, x->e, ik, kls[i]);
            continue;
        }
        if (rc) break;
        if (role == ROLE_CALLED && r.npseudo == 2 && !memcmp(r.pseudo[0], r.pseudo[1], 16))
            continue;
        /* A call offered after the request came is not the request's (one
        ** run again after a hold was released meets such records too). */
        if (r.offered > received) continue;
        rc = erase_one(x, rk, rkl, &r, role, received);
    }
    *nextlen = curlen;
    if (curlen) memcpy(next, cur, curlen);
    if (k && !rc) {
        memcpy(next, keys[k - 1], kls[k - 1]);
        *nextlen = kls[k - 1];
    }
    *handled = k;
out:
    free(keys);
    free(kls);
    return rc;
}

typedef struct erase_op {
    const char *account;
    char number[SB_E164_MAX + 1];
    int64_t received;
    uint8_t cur[29 + SB_ID_MAX]; /* the last index entry handled (committed) */
    size_t curlen;
    uint8_t next[29 + SB_ID_MAX]; /* cur once this transaction commits: eng_write
                                  ** may run do_erase again from cur */
    size_t nextlen;
    int done;
    int held;        /* a committed transaction met a record a hold kept */
    int held_now;    /* this transaction did */
    int live;        /* calls of the number in progress (once done) */
    counts n;        /* this transaction */
    counts all;      /* the committed transactions */
    json_t *reasons; /* this transaction */
    held_tally over; /* decisions holds overrode in this transaction */
    /* The request's entry in the erasure journal (journal.c): its seq, kept
    ** in data.mdb by the request's last transaction (0: none), and the
    ** pseudonym it holds, which stands for the number once known. */
    uint64_t seq;
    int have_pseudo;
    uint8_t pseudo[16];
    uint32_t acct;        /* the account's number the entry names */
    ejr *j;               /* the journal, locked: the request goes in it (sb_erase) */
    int again;            /* applied again from the journal */
    int started;          /* a transaction of it committed in this run */
    uint64_t deadline_ns; /* again, from a sweep: stop after this (0: never) */
    int paused;           /* stopped at the deadline, not done: a later run goes on */
    counts before;        /* again: what a run of it cut short had done */
    int gone;             /* again, and the account is gone (or another now) */
} erase_op;

int ret_journal_seen_put(wtx *t, uint64_t seq)
{
    uint64_t seen = 0;
    int rc = st_meta_u64(t->txn, t->e, "erasure_seq", &seen);
    if (!rc && seq > seen) rc = st_meta_put_u64(t->txn, t->e, "erasure_seq", seq);
    return rc;
}

int ret_journal_next(wtx *t, const ejr *j, uint64_t *seq)
{
    uint64_t seen;
    int rc = st_meta_u64(t->txn, t->e, "erasure_seq", &seen);
    if (rc) return eng_mdb_err(t->res, rc, "read the erasure journal's place");
    *seq = (j->last > seen ? j->last : seen) + 1;
    return 0;
}

/* A request runs in many transactions; should it be cut short, the next
** run of it (ret_journal_catch_up) starts again from the first record it
** had left and would count only those. So each transaction keeps the
** request's counts so far (meta "erasure_run": its journal seq, then the
** counts as the sweep's run state has them), and a run again of the same
** request starts from them: its answer, log line and audit entry count
** the whole request. */
#define ERASE_RUN_KEY "erasure_run"

static int erase_progress_put(wtx *t, const erase_op *op, const counts *now)
{
    if (op->done) {
        int rc = st_del(t->txn, t->e, DB_META, ERASE_RUN_KEY, sizeof ERASE_RUN_KEY - 1);
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    uint8_t v[8 + 9 + NCOUNTS * 8];
    counts c = op->all;
    add_counts(&c, now);
    put_be64(v, op->seq);
    enc_counts(v + 8, &c, 0);
    return st_put(t->txn, t->e, DB_META, ERASE_RUN_KEY, sizeof ERASE_RUN_KEY - 1, v, sizeof v);
}

/* Run again (op->again, before any transaction of this run committed):
** what the run cut short had done, into op->before, and what it had
** deleted or anonymized into op->all. */
static int erase_progress_get(wtx *t, erase_op *op)
{
    MDB_val v;
    memset(&op->all, 0, sizeof op->all);
    memset(&op->before, 0, sizeof op->before);
    int rc = st_get(t->txn, t->e, DB_META, ERASE_RUN_KEY, sizeof ERASE_RUN_KEY - 1, &v);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return rc;
    const uint8_t *b = v.mv_data;
    if (v.mv_size != 8 + 9 + NCOUNTS * 8 || be64(b) != op->seq || b[8] != V_JOB) return 0;
    uint64_t *c = &op->before.reviewed;
    for (int i = 0; i < NCOUNTS; i++)
        c[i] = be64(b + 17 + 8 * i);
    /* The records it deleted or anonymized are gone from the number's
    ** index; those it kept (held or failed ones too) are met again. */
    op->all.deleted = op->before.deleted;
    op->all.anonymized = op->before.anonymized;
    return 0;
}

/* What a request did, kept by its number in the journal (meta
** "erasure_did" and its seq: when it came, deleted, anonymized, kept,
** failed, held and live calls, then 1 when applied again from the journal):
** a later request of the same number answers with it, so that one sent
** again (its answer lost, or the first applied again to a restored backup)
** says what the first did, beside its own counts, which are then none. No
** number: the journal's entry has the pseudonym that finds it. */
#define ERASE_DID_KEY "erasure_did"
#define ERASE_DID_LEN (8 + 6 * 8 + 1)
#define ERASE_EARLIER_MAX 10 /* the latest earlier requests an answer names */

static size_t did_key(uint8_t *k, uint64_t seq)
{
    memcpy(k, ERASE_DID_KEY, sizeof ERASE_DID_KEY - 1);
    put_be64(k + sizeof ERASE_DID_KEY - 1, seq);
    return sizeof ERASE_DID_KEY - 1 + 8;
}

/* The request itself in the audit log, with what it did (in its last
** transaction, beside its last records' entries): a request that found
** nothing is on record too. No number: the log holds none. And what it
** did by its seq (ERASE_DID_KEY) for a request of the number after it. */
static int audit_request(rctx *x, const erase_op *op)
{
    counts c = op->all;
    add_counts(&c, &x->n);
    if (op->seq) {
        uint8_t k[sizeof ERASE_DID_KEY - 1 + 8], v[ERASE_DID_LEN];
        const uint64_t n[6] = {c.deleted, c.anonymized, c.kept,
                               c.failed,  c.overridden, (uint64_t)op->live};
        put_be64(v, (uint64_t)op->received);
        for (int i = 0; i < 6; i++)
            put_be64(v + 8 + 8 * i, n[i]);
        v[ERASE_DID_LEN - 1] = (uint8_t)(op->again != 0);
        int rc = st_put(x->t->txn, x->t->e, DB_META, k, did_key(k, op->seq), v, sizeof v);
        if (rc) return eng_mdb_err(x->t->res, rc, "write what the erasure request did");
    }
    char why[320];
    snprintf(why, sizeof why,
             "erasure request%s: %llu deleted, %llu anonymized, %llu kept (%llu held, %llu "
             "failed); %d live call%s",
             op->again ? " (applied again from the erasure journal: data.mdb had not seen it)" : "",
             (unsigned long long)c.deleted, (unsigned long long)c.anonymized,
             (unsigned long long)c.kept, (unsigned long long)c.overridden,
             (unsigned long long)c.failed, op->live, op->live == 1 ? "" : "s");
    return audit_add(x, NULL, 0, 0, "erasure_request", NULL, 0, why, NULL, SRC_ERASURE, NULL, NULL);
}

/* The request's entry in the journal, before its first change (the
** transaction that meets a full disk here is refused whole), numbered past
** both the journal's last and data.mdb's (a journal lost or begun again).
** None when the account has no data key: nothing of it was ever sealed. */
static int journal_request(wtx *t, erase_op *op, const uint8_t pseudo[16])
{
    ejr_entry x = {.kind = EJR_ERASURE, .acct = t->acct, .received = op->received};
    int rc = ret_journal_next(t, op->j, &x.seq);
    if (rc) return rc;
    snprintf(x.account, sizeof x.account, "%s", t->account->id);
    memcpy(x.pseudo, pseudo, sizeof x.pseudo);
    if ((rc = ejr_append(t->e, op->j, &x, t->res))) {
        t->no_room = rc == SB_EFULL; /* the journal's disk: no map to grow */
        char why[512];
        snprintf(why, sizeof why, "%s", sb_result_message(t->res));
        return res_err(t->res, rc, sb_result_field(t->res),
                       "%s: the erasure request is refused, nothing was erased", why);
    }
    op->seq = x.seq;
    op->acct = t->acct;
    op->have_pseudo = 1;
    memcpy(op->pseudo, pseudo, sizeof op->pseudo);
    return 0;
}

static int do_erase(wtx *t, void *arg)
{
    erase_op *op = arg;
    op->done = 0;
    op->live = 0;
    op->held_now = 0;
    memset(&op->n, 0, sizeof op->n);
    op->over.n = 0;
    json_object_clear(op->reasons);
    int rc = tx_account(t, op->account);
    if (op->again && (rc == SB_ENOTFOUND || (!rc && t->acct != op->acct))) {
        /* Deleted since, or deleted and made again: its data key, and with
        ** it every record the request could reach, is gone. */
        res_reset(t->res);
        op->done = op->gone = 1;
        return ret_journal_seen_put(t, op->seq);
    }
    if (rc) return rc;
    if (op->again && !op->started && (rc = erase_progress_get(t, op))) return rc;
    rctx x;
    rctx_init(&x, t);
    x.reasons = json_incref(op->reasons);
    if ((rc = use_account(&x, t->acct))) goto out;
    uint8_t key[32], pseudo[16];
    rc = rec_key(t->e, t->acct, t->account->id, 0, key);
    if (rc == REC_NO_KEY) { /* no data key: nothing was ever sealed */
        op->done = 1;
        if ((rc = audit_request(&x, op)) == 0 && (rc = ret_journal_seen_put(t, op->seq)) == 0)
            rc = audit_flush(&x);
        goto out;
    }
    if (rc == SB_ECRYPTO) {
        rc = res_err(t->res, SB_ECRYPTO, NULL,
                     "the data key of account '%s' does not open (data.keys damaged, or its "
                     "slot copied from elsewhere): no record of the number can be found, so "
                     "nothing was erased",
                     t->account->id);
        goto out;
    }
    if (rc) goto out;
    if (op->have_pseudo)
        memcpy(pseudo, op->pseudo, sizeof pseudo);
    else
        cr_pseudonym(key, op->number, pseudo);
    cr_wipe(key, sizeof key);
    if (op->j && !op->seq && (rc = journal_request(t, op, pseudo))) goto out;
    int handled;
    rc = erase_batch(&x, pseudo, op->received, op->cur, op->curlen, op->next, &op->nextlen,
                     &op->done, &handled);
    op->held_now = x.erase_held > 0;
    /* The request is remembered while a hold keeps any record from it (from
    ** the transaction that met the first such record: a hold released before
    ** the request ends must find it), and while calls of the number that
    ** were live when it came go on (their records are written later);
    ** forgotten once a run of it met neither (one run again after a
    ** release). */
    int live = 0;
    if (!rc && op->done) {
        live = live_call_of(&x, pseudo, op->received, NULL);
        if (live < 0 || IS_SB_ERR(live)) rc = live;
    }
    op->live = live > 0 ? live : 0;
    if (!rc && live > 0) {
        rc = pend_put(&x, pseudo, op->received, PF_LIVE | (op->held || op->held_now ? PF_HOLD : 0),
                      NULL, 0);
    } else if (!rc && (op->held_now || (op->done && !op->held))) {
        uint8_t k[20];
        if (op->held_now)
            rc = pend_put(&x, pseudo, op->received, 0, NULL, 0);
        else
            rc = st_del(t->txn, t->e, DB_ERASURES, k, pend_key(k, t->acct, pseudo));
    }
    if (!rc && op->done && (rc = audit_request(&x, op)) == 0) rc = ret_journal_seen_put(t, op->seq);
    if (!rc && op->seq) rc = erase_progress_put(t, op, &x.n);
    if (!rc) rc = audit_flush(&x);
out:
    op->n = x.n;
    if (!rc) held_take(&op->over, &x.held);
    rctx_free(&x);
    return rc;
}

int ret_erase_on_write(wtx *t, const uint8_t *rk, size_t rkl, const char *call_id, int64_t offered,
                       const uint8_t pseudo[][16], int npseudo)
{
    /* Every call's end asks: one lookup per number, and nothing set up
    ** unless a request made after the call was offered is waiting. */
    int64_t received[2];
    int flags[2], due[2] = {0, 0}, rc = 0, any = 0;
    for (int i = 0; i < npseudo && i < 2; i++) {
        if (i == 1 && !memcmp(pseudo[0], pseudo[1], 16)) break; /* a call to itself */
        rc = pend_read(t, t->acct, pseudo[i], &received[i], &flags[i]);
        if (rc == MDB_NOTFOUND) continue;
        if (rc) return rc;
        any |= due[i] = received[i] >= offered; /* a request before the call: not its */
    }
    if (!any) return 0;
    rctx x;
    rctx_init(&x, t);
    rc = use_account(&x, t->acct);
    for (int i = 0; i < 2 && !rc && x.exists; i++) {
        if (!due[i]) continue;
        rec_data r;
        x.erase_held = 0;
        rc = load_record(&x, rk, rkl, &r);
        if (rc == 0 && r.npseudo) /* (not gone nor anonymized at its write) */
            rc = erase_one(&x, rk, rkl, &r, rec_role(&r, i), received[i]);
        else if (rc == SB_ENOTFOUND)
            rc = 0;
        if (rc || !(flags[i] & PF_LIVE)) continue;
        /* A hold kept this record: the request stays for the hold's release. */
        if (x.erase_held) flags[i] |= PF_HOLD;
        int live = live_call_of(&x, pseudo[i], received[i], call_id);
        if (live < 0 || IS_SB_ERR(live)) {
            rc = live;
            break;
        }
        uint8_t k[20];
        if (live)
            rc = pend_put(&x, pseudo[i], received[i], flags[i], NULL, 0);
        else if (flags[i] & PF_HOLD)
            rc = pend_put(&x, pseudo[i], received[i], 0, NULL, 0);
        else
            rc = st_del(t->txn, t->e, DB_ERASURES, k, pend_key(k, t->acct, pseudo[i]));
    }
    if (!rc) rc = audit_flush(&x);
    if (!rc && x.held.n) held_engine(t->e, &x.held, HELD_WRITE, t->now, 0);
    rctx_free(&x);
    return rc;
}

static int number_arg(const char *number, char out[SB_E164_MAX + 1], sb_result *res)
{
    if (e164_normalize(number, out))
        return res_err(res, SB_EINVAL, "number",
                       "'number' must be an E.164 number like +4930123456");
    return 0;
}

/* Run the request in op to its end, its reasons merged into reasons;
** committed: whether a transaction of it committed (a failure after one
** leaves the request part done). */
static int erase_run(sb_engine *e, erase_op *op, json_t *reasons, int *committed, sb_result *res)
{
    held_tally over = {0}; /* the request's, per hold: one line each */
    int rc;
    *committed = 0;
    op->reasons = json_object();
    do {
        rc = eng_write_ex(e, do_erase, op, res, 1); /* it deletes */
        if (rc) break;
        *committed = op->started = 1;
        held_merge(e, &over, &op->over, HELD_ERASURE);
        op->held |= op->held_now;
        memcpy(op->cur, op->next, op->nextlen);
        op->curlen = op->nextlen;
        add_counts(&op->all, &op->n);
        const char *k;
        json_t *v;
        json_object_foreach(op->reasons, k, v)
        {
            json_t *o = json_object_get(reasons, k);
            json_object_set_new(
                reasons, k, json_integer(json_integer_value(v) + (o ? json_integer_value(o) : 0)));
        }
        if (!op->done && op->deadline_ns && mono_ns() > op->deadline_ns) op->paused = 1;
    } while (!op->done && !op->paused);
    for (int i = 0; i < over.n; i++)
        held_say(e, &over.v[i], HELD_ERASURE);
    free(over.v);
    free(op->over.v);
    op->over.v = NULL;
    json_decref(op->reasons);
    op->reasons = NULL;
    return rc;
}

/* The journal's seq data.mdb has seen (its last entry's). Read in a
** write transaction that writes nothing: sb_erase may be called from a
** thread holding a read transaction, and LMDB gives a thread one. One that
** is aborted and leaves the format as it was: an open that finds nothing
** to apply again writes nothing, and a directory an older version wrote
** stays open to it (a backup or a read taken beside its daemon). */
static int read_seen(wtx *t, void *arg)
{
    int rc = st_meta_u64(t->txn, t->e, "erasure_seq", arg);
    return rc ? eng_mdb_err(t->res, rc, "read the erasure journal's place") : 0;
}

int ret_journal_seen(sb_engine *e, uint64_t *seen, sb_result *res)
{
    return eng_write_peek(e, read_seen, seen, res);
}

/* One audit entry of no call in t's account (action, the engine's own
** text and a reason after it, source: audit_add). */
static int audit_note(wtx *t, const char *action, const char *own, const char *reason, int src)
{
    rctx x;
    rctx_init(&x, t);
    int rc = audit_add(&x, NULL, 0, 0, action, NULL, 0, own, reason, src, NULL, NULL);
    if (!rc) rc = audit_flush(&x);
    rctx_free(&x);
    return rc;
}

int ret_audit_hold_note(wtx *t, const char *action, const char *reason)
{
    return audit_note(t, action, NULL, reason, SRC_HOLD);
}

/* An account deletion of the journal that data.mdb has not seen: the
** account deleted again (entities.c), said at warn. */
static int deletion_again(sb_engine *e, const ejr *j, const ejr_entry *x, sb_result *res)
{
    int outcome;
    uint32_t ended = 0;
    char held[600] = "";
    /* Its own result: the END actions of the calls it ends are for no one
    ** (they ended long ago), least of all the caller of sb_account_delete. */
    sb_result *own = sb_result_new();
    if (!own) return res_err(res, SB_ENOMEM, NULL, "out of memory");
    int rc = acct_delete_again(e, x, &outcome, &ended, held, sizeof held, own);
    if (rc)
        res_err(res, rc, sb_result_field(own),
                "account deletion %llu of %s (account '%s'), which data.mdb has not seen, "
                "cannot be applied again: %s",
                (unsigned long long)x->seq, j->path, x->account, sb_result_message(own));
    sb_result_free(own);
    if (rc) return rc;
    if (outcome == ACCT_AGAIN_GONE)
        sb_log(e, SB_LOG_INFO,
               "account deletion " OWN_LLU " of the erasure journal: data.mdb has no account '%s' "
               "(#" OWN_LU ", created at " OWN_LLD
               " ms), or another made since under its id: nothing to "
               "delete again",
               (unsigned long long)x->seq, x->account, (unsigned long)x->acct,
               (long long)x->created);
    else if (outcome == ACCT_AGAIN_HELD)
        sb_log(e, SB_LOG_WARN,
               "account deletion " OWN_LLU
               " of the erasure journal: account '%s' is back (data.mdb "
               "is from a backup taken before its deletion) and is NOT deleted again, as no "
               "account is deleted under a legal hold: %s (released after the backup, before "
               "the deletion, and holding again since the restore); the audit log has it",
               (unsigned long long)x->seq, x->account, held);
    else
        sb_log(
            e, SB_LOG_WARN,
            "account deletion " OWN_LLU " of the erasure journal: account '%s' deleted again, as "
            "data.mdb had not seen its deletion (restored from a backup taken before it, "
            "or the deletion was cut short): its data key, agents, queues, API keys and "
            "settings are gone, its records purged by sweeps; " OWN_LU " live call%s it held ended "
            "with it (the deletion came after them)",
            (unsigned long long)x->seq, x->account, (unsigned long)ended, ended == 1 ? "" : "s");
    return 0;
}

/* The first erasure request of the journal that data.mdb has not seen and
** cannot have applied again, its pseudonym taken out at the horizon
** (journal.c), though data.mdb may hold records it erased: data.mdb has its
** account, made by the time the request came, and no deletion of that
** account follows in the journal that will be applied again (one would
** delete it again, records and all; not under a legal hold, which no
** account is deleted under). Found: *hit. */
typedef struct {
    const ejr *j;
    uint64_t seen;
    const ejr_entry *hit;
} behind_arg;

static int find_behind(wtx *t, void *arg)
{
    behind_arg *b = arg;
    const ejr *j = b->j;
    for (size_t i = 0; i < j->n && !b->hit; i++) {
        const ejr_entry *x = &j->v[i];
        if (x->kind != EJR_PRUNED || x->seq <= b->seen) continue;
        acct_rec a;
        int rc = st_account_by_id(t->txn, t->e, x->account, &a);
        if (rc == SB_ENOTFOUND) continue;
        if (rc) return eng_mdb_err(t->res, rc, "read the accounts");
        if (a.num != x->acct || a.created > x->received) continue; /* made since */
        int deleted = 0;
        for (size_t k = 0; k < j->n && !deleted; k++) {
            const ejr_entry *d = &j->v[k];
            deleted = d->kind == EJR_DELETION && d->seq > b->seen && d->acct == a.num &&
                      d->created == a.created && !strcmp(d->account, a.id);
        }
        if (deleted) {
            uint8_t p[4];
            st_iter it;
            rc = st_iter_open(&it, t->txn, t->e, DB_HOLDS, p, key_acct(p, a.num));
            st_iter_close(&it);
            if (rc && rc != MDB_NOTFOUND) return eng_mdb_err(t->res, rc, "read the legal holds");
            deleted = rc == MDB_NOTFOUND; /* held: the deletion is not applied again */
        }
        if (!deleted) b->hit = x;
    }
    return 0;
}

/* Whether the journal has a request after seen whose pseudonym it took
** out: what find_behind looks at, without reading data.mdb. */
static int pruned_after(const ejr *j, uint64_t seen)
{
    for (size_t i = 0; i < j->n; i++)
        if (j->v[i].kind == EJR_PRUNED && j->v[i].seq > seen) return 1;
    return 0;
}

/* SB_ESTORE, saying so, when data.mdb (which has seen the journal up to
** seen) is behind a request whose pseudonym the journal no longer holds
** (find_behind); *refused set then. */
static int journal_behind(sb_engine *e, const ejr *j, uint64_t seen, int *refused, sb_result *res)
{
    behind_arg b = {.j = j, .seen = seen};
    if (!pruned_after(j, seen)) return 0; /* the common case: no read of data.mdb */
    int rc = eng_write_peek(e, find_behind, &b, res);
    if (rc || !b.hit) return rc;
    char when[40] = "?";
    time_t secs = (time_t)(b.hit->received / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    if (refused) *refused = 1;
    return res_err(res, SB_ESTORE, "data_dir",
                   "data.mdb has not seen erasure request %llu of account '%s' (received %s), "
                   "whose number's pseudonym %s no longer holds (taken out after "
                   "erasure_journal_days; raising it does not bring it back): data.mdb is older "
                   "than that request and may hold records it erased, which nothing can find "
                   "to erase again. Restore a backup taken after the request was done (one "
                   "whose data.mdb has seen request %llu)",
                   (unsigned long long)b.hit->seq, b.hit->account, when, j->path,
                   (unsigned long long)b.hit->seq);
}

int ret_journal_check(sb_engine *e, int *refused, sb_result *res)
{
    ejr j;
    uint64_t seen;
    *refused = 0;
    int rc = ejr_open(e, EJR_PEEK, &j, res);
    if (!rc && pruned_after(&j, 0) && !(rc = ret_journal_seen(e, &seen, res)))
        rc = journal_behind(e, &j, seen, refused, res);
    ejr_close(&j);
    return rc;
}

void ret_replay_line(log_text *t, uint64_t seq, const char *account, const uint64_t all[5],
                     const uint64_t before[2])
{
    logt_init(t);
    logt_add(t,
             "erasure request " OWN_LLU " of the erasure journal (account '%s') applied again, as "
             "data.mdb had not seen it (restored from a backup taken before it, or the request "
             "was cut short): " OWN_LLU " deleted, " OWN_LLU " anonymized, " OWN_LLU
             " kept (" OWN_LLU " held, " OWN_LLU " failed) in all",
             (unsigned long long)seq, account, (unsigned long long)all[0],
             (unsigned long long)all[1], (unsigned long long)all[2], (unsigned long long)all[3],
             (unsigned long long)all[4]);
    if (before[0] || before[1])
        logt_add(t, " (" OWN_LLU " deleted and " OWN_LLU " anonymized before it was cut short)",
                 (unsigned long long)before[0], (unsigned long long)before[1]);
    logt_add(t, "; the audit log has it");
}

/* ret_journal_catch_up with a deadline (0: none): a request still running
** at it is left for a later call (*unfinished set). */
static int journal_catch_up(sb_engine *e, const ejr *j, int *applied, uint64_t deadline_ns,
                            int *unfinished, sb_result *res)
{
    uint64_t seen;
    int rc = ret_journal_seen(e, &seen, res);
    if (!rc) rc = journal_behind(e, j, seen, NULL, res);
    for (size_t i = 0; i < j->n && !rc; i++) {
        const ejr_entry *x = &j->v[i];
        if (x->seq <= seen || x->kind == EJR_PRUNED) continue;
        if (applied) *applied = 1;
        if (x->kind == EJR_DELETION) {
            rc = deletion_again(e, j, x, res);
            continue;
        }
        erase_op op = {.account = x->account,
                       .received = x->received,
                       .seq = x->seq,
                       .have_pseudo = 1,
                       .acct = x->acct,
                       .again = 1,
                       .deadline_ns = deadline_ns};
        memcpy(op.pseudo, x->pseudo, sizeof op.pseudo);
        json_t *reasons = json_object();
        int committed;
        rc = erase_run(e, &op, reasons, &committed, res);
        json_decref(reasons);
        if (!rc && op.paused) {
            if (unfinished) *unfinished = 1;
            break;
        }
        if (rc) {
            char why[512];
            snprintf(why, sizeof why, "%s", sb_result_message(res));
            rc = res_err(res, rc, sb_result_field(res),
                         "erasure request %llu of %s (account '%s'), which data.mdb has not "
                         "seen, cannot be applied again: %s",
                         (unsigned long long)x->seq, j->path, x->account, why);
            break;
        }
        if (op.gone)
            sb_log(e, SB_LOG_INFO,
                   "erasure request " OWN_LLU
                   " of the erasure journal: account '%s' no longer exists "
                   "(nor its data key): nothing to apply again",
                   (unsigned long long)x->seq, x->account);
        else {
            const uint64_t all[5] = {op.all.deleted, op.all.anonymized, op.all.kept,
                                     op.all.overridden, op.all.failed},
                           before[2] = {op.before.deleted, op.before.anonymized};
            log_text line;
            ret_replay_line(&line, x->seq, x->account, all, before);
            sb_log_text(e, SB_LOG_WARN, &line);
        }
    }
    return rc;
}

int ret_journal_catch_up(sb_engine *e, const ejr *j, int *applied, sb_result *res)
{
    return journal_catch_up(e, j, applied, 0, NULL, res);
}

/* The horizon is judged by the engine's clock, which NTP or an operator can
** set wrong and step: a clock set years ahead for one sweep would find every
** request past it and take out every pseudonym for good (a backup from
** before them then never opens again), while it can only be wrong for a
** while. So a pseudonym goes only when two sweeps at least a day apart by
** the clock both find its request past the horizon: the first sweep that
** finds one past it keeps its time in data.mdb (meta "erasure_sighted"; 0:
** none) and takes nothing out; a sweep a day or more after it takes out
** what was past the horizon at that first one (received before it, less the
** horizon: what both found) and is the next first sighting. A sweep earlier
** than the sighting (the clock stepped back: the sighting's clock was
** ahead, or this one is behind), or more than HORIZON_GAP_MAX after it (a
** step ahead cannot be told from the time that passed), starts again from
** itself; one that finds nothing past the horizon clears it. What the
** sighting's clock got wrong is then never taken out unless the clock stays
** that wrong for a day; a request is taken out a day or two after it passed
** the horizon. Kept in data.mdb: a backup restored brings back an earlier
** sighting, or none, which only waits longer. */
#define HORIZON_GAP_MAX (366 * DAY_MS)

typedef struct {
    int64_t now, horizon;
    int past;        /* a request was past the horizon at now */
    int write;       /* in a write: the sighting is written when it changes */
    int64_t before;  /* out: take out those received before this (INT64_MIN: none) */
    int64_t sighted; /* out: the sighting as it is now (0: none) */
    int changed;     /* out: it is not the one data.mdb has */
    uint64_t seen;   /* out: the journal's seq data.mdb has seen */
} sighting;

static int horizon_sighting(wtx *t, void *arg)
{
    sighting *s = arg;
    uint64_t v = 0;
    int rc = st_meta_u64(t->txn, t->e, "erasure_sighted", &v);
    if (!rc) rc = st_meta_u64(t->txn, t->e, "erasure_seq", &s->seen);
    if (rc) return eng_mdb_err(t->res, rc, "read the erasure journal's horizon");
    int64_t then = (int64_t)v;
    s->before = INT64_MIN;
    s->sighted = s->now;
    if (!s->past)
        s->sighted = 0;
    else if (then && s->now >= then && s->now - then <= HORIZON_GAP_MAX) {
        if (s->now - then >= DAY_MS)
            s->before = i64_sub_sat(then, s->horizon); /* both found these past it */
        else
            s->sighted = then; /* less than a day: the first sighting stands */
    }
    s->changed = (uint64_t)s->sighted != v;
    if (s->write && s->changed &&
        (rc = st_meta_put_u64(t->txn, t->e, "erasure_sighted", (uint64_t)s->sighted)))
        return eng_mdb_err(t->res, rc, "write the erasure journal's horizon");
    return 0;
}

/* What the requests taken out of the journal did (ERASE_DID_KEY) goes
** with their pseudonyms: no later request of the number can find it. The
** same rule as ejr_prune's: seen by data.mdb, received before `before`. */
typedef struct {
    uint64_t seen;
    int64_t before;
} did_drop;

static int drop_did(wtx *t, void *arg)
{
    const did_drop *d = arg;
    st_iter it;
    int rc = st_iter_open(&it, t->txn, t->e, DB_META, ERASE_DID_KEY, sizeof ERASE_DID_KEY - 1);
    while (rc == 0) {
        if (it.klen == sizeof ERASE_DID_KEY - 1 + 8 && it.v.mv_size == ERASE_DID_LEN &&
            be64(it.key + sizeof ERASE_DID_KEY - 1) <= d->seen &&
            (int64_t)be64(it.v.mv_data) < d->before)
            rc = st_iter_del(&it);
        else
            rc = st_iter_next(&it);
    }
    st_iter_close(&it);
    return rc == MDB_NOTFOUND ? 0 : eng_mdb_err(t->res, rc, "delete what erasure requests did");
}

/* The erasure requests past the horizon that data.mdb has seen, and that
** the sweep before found past it too (horizon_sighting), out of the
** journal; *prune_at: when the journal is next to be read for its horizon. */
static int prune(sb_engine *e, ejr *j, int64_t *prune_at, sb_result *res)
{
    int64_t horizon = (int64_t)e->cfg.erasure_journal_days * DAY_MS;
    size_t removed = 0;
    *prune_at = INT64_MAX;
    if (!horizon) return 0;
    sighting s = {.now = eng_now(e), .horizon = horizon};
    s.past = j->oldest != INT64_MAX && j->oldest < i64_sub_sat(s.now, horizon);
    /* Read first (as ret_journal_seen does): a sighting that stands (or
    ** none, nothing being past the horizon: an open of a directory that has
    ** no request past it writes nothing) is not written again. */
    int rc = eng_write_peek(e, horizon_sighting, &s, res);
    if (!rc && s.changed) {
        /* Its 8 bytes may go in the reserve past map_max (as a sweep's
        ** deletes do): a full map would otherwise keep every pseudonym. */
        s.write = 1;
        rc = eng_write_ex(e, horizon_sighting, &s, res, 1);
    }
    if (!rc && s.changed && s.sighted && s.before == INT64_MIN)
        sb_log(e, SB_LOG_INFO,
               "%s: erasure requests received more than " OWN_LU " days ago (erasure_journal_days) "
               "found; their pseudonyms are taken out by a sweep a day from now by the clock, "
               "if it still finds them past the horizon",
               j->path, (unsigned long)e->cfg.erasure_journal_days);
    if (!rc && s.before != INT64_MIN) rc = ejr_prune(e, j, s.seen, s.before, &removed, res);
    if (!rc && s.before != INT64_MIN) { /* a delete: it may use the reserve too */
        did_drop d = {s.seen, s.before};
        rc = eng_write_ex(e, drop_did, &d, res, 1);
    }
    if (!rc && removed)
        sb_log(e, SB_LOG_INFO,
               "%s: the pseudonyms of " OWN_ZU " erasure request%s received more than " OWN_LU
               " days ago "
               "(erasure_journal_days) taken out, data.mdb having applied them; a backup "
               "from before one of them, holding its account, no longer opens",
               j->path, removed, removed == 1 ? "" : "s",
               (unsigned long)e->cfg.erasure_journal_days);
    if (s.sighted)
        *prune_at = i64_add_sat(s.sighted, DAY_MS);
    else if (j->oldest != INT64_MAX)
        *prune_at = i64_add_sat(j->oldest, horizon);
    return rc;
}

/* checked: whether the journal was read to its end (not when another
** holds it, nor when a request was left at the deadline); *prune_at then
** says when it is to be read again for its horizon. */
static int catch_up(sb_engine *e, int *checked, int64_t *prune_at, uint64_t deadline_ns,
                    sb_result *res)
{
    ejr j;
    *checked = 0;
    /* Another holding the journal is catching up itself (sb_erase does
    ** before its request): not waited for. */
    int rc = ejr_open(e, EJR_TRY, &j, res);
    if (rc || j.fd < 0) return rc;
    int applied = 0, unfinished = 0;
    rc = journal_catch_up(e, &j, &applied, deadline_ns, &unfinished, res);
    if (!rc && !unfinished) rc = prune(e, &j, prune_at, res);
    ejr_close(&j);
    *checked = !unfinished;
    if (!rc && applied) (void)eng_scrub(e); /* nothing written, nothing to clear */
    return rc;
}

int ret_erasures_catch_up(sb_engine *e, uint32_t budget_ms, sb_result *res)
{
    char path[PATH_MAX];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/erasures.journal", e->data_dir) >= (int)sizeof path ||
        stat(path, &st) != 0)
        return 0; /* none yet, or unreadable: the next erasure request says so */
    int64_t now = eng_now(e), prune_at = INT64_MAX;
    pthread_mutex_lock(&e->stats_mu); /* sweeps of several threads */
    int same = (long long)st.st_size == e->ejr_size && st.st_mtim.tv_sec == e->ejr_mtim.tv_sec &&
               st.st_mtim.tv_nsec == e->ejr_mtim.tv_nsec && now < e->ejr_prune_at &&
               now >= e->ejr_checked; /* a clock stepped back resets the sighting */
    pthread_mutex_unlock(&e->stats_mu);
    if (same) return 0;
    int checked;
    int rc = catch_up(e, &checked, &prune_at,
                      budget_ms ? mono_ns() + (uint64_t)budget_ms * 1000000u : 0, res);
    /* Read to its end as it was at least: a change made while it was read
    ** is seen by the next call (and one held by another, or left at the
    ** deadline, by a call after). One that failed is not tried again
    ** until it changes, a day has passed (the horizon waits for it), the
    ** next sb_open or an erasure request: its error is said once a day. */
    if (rc && e->cfg.erasure_journal_days) prune_at = i64_add_sat(now, DAY_MS);
    if (rc || checked) {
        pthread_mutex_lock(&e->stats_mu);
        e->ejr_size = (long long)st.st_size;
        e->ejr_mtim = st.st_mtim;
        e->ejr_prune_at = prune_at;
        e->ejr_checked = now;
        pthread_mutex_unlock(&e->stats_mu);
    }
    return rc;
}

/* The requests of the journal before op's of its number (its pseudonym)
** in its account, the latest ERASE_EARLIER_MAX, oldest first, each with
** what it did as data.mdb kept it (ERASE_DID_KEY; none for one it did not
** keep: made by a version before it was kept, or not yet applied). */
typedef struct {
    const ejr *j;
    const erase_op *op;
    json_t *out;
} earlier_arg;

static int read_earlier(wtx *t, void *arg)
{
    earlier_arg *a = arg;
    const ejr_entry *hit[ERASE_EARLIER_MAX];
    int n = 0;
    for (size_t i = a->j->n; i-- > 0 && n < ERASE_EARLIER_MAX;) {
        const ejr_entry *x = &a->j->v[i];
        if (x->kind == EJR_ERASURE && x->seq < a->op->seq && x->acct == a->op->acct &&
            !strcmp(x->account, a->op->account) && !memcmp(x->pseudo, a->op->pseudo, 16))
            hit[n++] = x;
    }
    static const char *const names[6] = {"deleted", "anonymized", "kept", "failed", "held", "live"};
    while (n-- > 0) {
        json_t *o = json_pack("{s:I}", "received_ms", (json_int_t)hit[n]->received);
        uint8_t k[sizeof ERASE_DID_KEY - 1 + 8];
        MDB_val v;
        int rc = st_get(t->txn, t->e, DB_META, k, did_key(k, hit[n]->seq), &v);
        if (rc && rc != MDB_NOTFOUND) {
            json_decref(o);
            return eng_mdb_err(t->res, rc, "read what the earlier erasure requests did");
        }
        if (!rc && v.mv_size == ERASE_DID_LEN) {
            const uint8_t *b = v.mv_data;
            for (int i = 0; i < 6; i++)
                json_object_set_new(o, names[i], json_integer((json_int_t)be64(b + 8 + 8 * i)));
            json_object_set_new(o, "applied_again", json_boolean(b[ERASE_DID_LEN - 1]));
        }
        json_array_append_new(a->out, o);
    }
    return 0;
}

int sb_erase(sb_engine *e, const char *account, const char *number, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    erase_op op = {.account = account, .received = eng_now(e)};
    if (!id_valid(account)) return res_no_such(res, "account", "account", account);
    int rc = number_arg(number, op.number, res);
    if (rc) return rc;
    /* The request goes in the journal first, after the requests before it
    ** that data.mdb has not seen: a restore of an older data.mdb, or a crash
    ** part way, has it applied again at the next open. */
    ejr j;
    /* This thread's batch first: its write lock, held while the journal's
    ** lock is waited for, would keep the holder from finishing. */
    eng_batch_settle(e);
    if ((rc = ejr_open(e, EJR_CREATE, &j, res))) goto out;
    if ((rc = ret_journal_catch_up(e, &j, NULL, res))) {
        char why[1024];
        snprintf(why, sizeof why, "%s", sb_result_message(res));
        rc = res_err(res, rc, sb_result_field(res), "%s; this request was not taken", why);
        goto out;
    }
    op.j = &j;
    json_t *reasons = json_object();
    int committed;
    rc = erase_run(e, &op, reasons, &committed, res);
    if (rc) {
        /* Refused before it changed anything: out of the journal too. One
        ** that did part of its work stays there, to be finished. */
        if (!committed && op.seq) ejr_unappend(e, &j);
        json_decref(reasons);
        goto out;
    }
    /* The request is done: an error now would have it sent again. So the
    ** earlier requests that cannot be read are null, and the log says why. */
    earlier_arg ea = {.j = &j, .op = &op, .out = json_array()};
    if (op.have_pseudo && eng_write_peek(e, read_earlier, &ea, res)) {
        sb_log(e, SB_LOG_ERROR,
               "erasure request " OWN_LLU
               " (account '%s') done, but what the earlier requests of its "
               "number did cannot be read (its answer has \"earlier\":null): %s",
               (unsigned long long)op.seq, account, sb_result_message(res));
        res_clear_error(res);
        json_decref(ea.out);
        ea.out = json_null();
    }
    ejr_close(&j);
    cr_wipe(op.number, sizeof op.number);
    cr_wipe(op.pseudo, sizeof op.pseudo);
    (void)eng_scrub(e);
    /* Kept and failed records both stay: "kept" counts every record left. */
    res_doc(res, json_pack("{s:I,s:I,s:I,s:I,s:I,s:i,s:o,s:o}", "deleted",
                           (json_int_t)op.all.deleted, "anonymized", (json_int_t)op.all.anonymized,
                           "kept", (json_int_t)(op.all.kept), "failed", (json_int_t)op.all.failed,
                           "held", (json_int_t)op.all.overridden, "live", op.live, "reasons",
                           reasons, "earlier", ea.out));
    return 0;
out:
    ejr_close(&j);
    cr_wipe(op.number, sizeof op.number);
    return rc;
}

/* --- access requests ------------------------------------------------------------------- */

/* A plain number: an optional sign, digits, at most one '.' among them. */
static int plain_number(const char *s, size_t n)
{
    size_t i = s[0] == '+' || s[0] == '-', digits = 0, dots = 0;
    for (; i < n; i++)
        if (s[i] >= '0' && s[i] <= '9')
            digits++;
        else if (s[i] != '.' || ++dots > 1)
            return 0;
    return digits > 0;
}

/* One CSV field (RFC 4180). A field a spreadsheet would take for a formula
** (starting with = + - @, a tab or a carriage return, and not a plain number
** such as an E.164 number) starts with ' so that it is shown, never
** evaluated: a call id "-2+3" is data, not a sum. */
static void csv_field(sb_buf *b, const char *s, size_t n)
{
    int shown = n && s[0] && strchr("=+-@\t\r", s[0]) && !plain_number(s, n), quote = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r') quote = 1;
    if (quote) buf_put(b, "\"", 1);
    if (shown) buf_put(b, "'", 1);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') buf_put(b, "\"", 1);
        buf_put(b, &s[i], 1);
    }
    if (quote) buf_put(b, "\"", 1);
}

static void csv_json(sb_buf *b, json_t *v)
{
    if (!v || json_is_null(v)) return;
    if (json_is_string(v)) {
        csv_field(b, json_string_value(v), json_string_length(v));
        return;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS | SB_JSON_REALS);
    if (s) csv_field(b, s, strlen(s));
    free(s);
}

/* The columns of a CSV export: the record's fields, then its times as
** ISO 8601 UTC for a reader without a converter (after the others, so that
** the columns of earlier versions keep their places). */
static const char *const csv_cols[] = {
    "id",          "role",           "caller",          "called",          "queue",
    "first_queue", "outcome",        "offered_ms",      "answered_ms",     "ended_ms",
    "wait",        "talk",           "agent",           "attempts",        "priority",
    "attrs",       "personal_attrs", "policy_versions", "attempts_detail", "offered_at",
    "answered_at", "ended_at",       "reason",          "ended_by",        NULL};

/* o's time field `ms` (Unix milliseconds) as `at`, 2026-01-05T09:00:03.311Z;
** nothing when o has no such time. */
static void csv_iso_time(json_t *o, const char *ms, const char *at)
{
    json_t *v = json_object_get(o, ms);
    if (!json_is_integer(v) || json_integer_value(v) < 0) return;
    json_int_t t = json_integer_value(v);
    time_t secs = (time_t)(t / 1000);
    struct tm tm;
    char s[40];
    if (!gmtime_r(&secs, &tm)) return;
    size_t n = strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(s + n, sizeof s - n, ".%03dZ", (int)(t % 1000));
    json_object_set_new(o, at, json_string(s));
}

/* An access request's cursor, "caller:<ended_ms>:<call id>" or "called:...":
** the rest of the pseudonym index's key of the last record a page gave
** (role, when it ended, its id), into k (after the 20 bytes of the
** pseudonym's prefix). Its length, or 0 when it is not one. */
static size_t export_after(const char *s, uint8_t *k)
{
    int role = !strncmp(s, "caller:", 7)   ? ROLE_CALLER
               : !strncmp(s, "called:", 7) ? ROLE_CALLED
                                           : 0;
    if (!role) return 0;
    const char *q = s + 7;
    uint64_t ms = 0;
    size_t digits = 0;
    for (; *q >= '0' && *q <= '9' && digits < 19; q++, digits++)
        ms = ms * 10 + (uint64_t)(*q - '0');
    if (!digits || *q != ':' || !id_valid(q + 1)) return 0;
    size_t il = strlen(q + 1);
    k[20] = (uint8_t)role;
    put_be64(k + 21, ms);
    memcpy(k + 29, q + 1, il);
    return 29 + il;
}

/* An access request's entry in the account's audit log (action
** "access_request", source "access"): how many records it disclosed and
** how, never the number or its pseudonym. Written after the records are
** read and before any of them is handed out, so a disclosure the log does
** not have never happens: the request is refused when the entry cannot be
** written. A new write like any other (eng_write): at map_max it does not
** take the reserve the calls in progress need to end. */
typedef struct access_op {
    const char *account;
    uint32_t acct; /* the account the records were read from */
    const char *why;
} access_op;

static int do_access_audit(wtx *t, void *arg)
{
    access_op *op = arg;
    int rc = tx_account(t, op->account);
    if (rc) return rc;
    /* Deleted, and made again under its id, since the records were read:
    ** they were the deleted account's, whose audit log went with it. */
    if (t->acct != op->acct)
        return res_err(t->res, SB_ENOTFOUND, "account",
                       "account '%s' was deleted while its records were read", op->account);
    return audit_note(t, "access_request", op->why, NULL, SRC_ACCESS);
}

/* The access request refused because its audit entry could not be written
** (rc, res saying why): the same code and field, the message saying what
** it means for the request. */
static int access_refused(sb_result *res, int rc)
{
    char why[600], field[64];
    snprintf(why, sizeof why, "%s", res && sb_result_message(res) ? sb_result_message(res) : "");
    snprintf(field, sizeof field, "%s", res && sb_result_field(res) ? sb_result_field(res) : "");
    return res_err(res, rc, field[0] ? field : NULL,
                   "access request refused, nothing disclosed: its entry in the account's audit "
                   "log, which every disclosure must have, could not be written (%s)",
                   why);
}

int ret_access_audit(sb_engine *e, const char *account, uint32_t acct, size_t taken,
                     sb_export_format format, int later, int more, sb_result *res)
{
    char why[128];
    const char *as = format == SB_EXPORT_CSV ? "CSV" : "JSON",
               *page = later ? ", a later page" : "", *next = more ? ", more to follow" : "";
    snprintf(why, sizeof why, "access request: %zu record%s disclosed as %s%s%s", taken,
             taken == 1 ? "" : "s", as, page, next);
    access_op op = {.account = account, .acct = acct, .why = why};
    int rc = eng_write(e, do_access_audit, &op, res);
    if (rc) return access_refused(res, rc);
    /* The count as counted, as in the entry: only the account id, given by
    ** the caller, is redacted. */
    sb_log(e, SB_LOG_INFO, "access request: account %s: " OWN_ZU " record%s disclosed as %s%s%s",
           account, taken, taken == 1 ? "" : "s", as, page, next);
    return 0;
}

/* jansson's writer, appending to an sb_buf. */
static int dump_to_buf(const char *p, size_t n, void *arg)
{
    return buf_put(arg, p, n);
}

/* sb_records_export and its pages: from the record after `after` (NULL or
** "": the first), at most `limit` records (0: every one) and, past the
** first, at most `max_bytes` of them (0: no bound), as the answer has them
** (JSON: each record written compactly; CSV: its line). Every request that
** reads the records is audited (access_op), one entry per call: a page is a
** request of its own, which a client may make at any time or never, so each
** page has its entry with the count of that page. The numbers and personal
** attributes it decrypts are wiped wherever it lets them go: a record that
** is not the number's, the one past a full page, each CSV record once it
** is a line, and the whole answer when its entry cannot be written. */
static int export_run(sb_engine *e, const char *account, const char *number,
                      sb_export_format format, const char *after, size_t limit, size_t max_bytes,
                      sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    if (format != SB_EXPORT_JSON && format != SB_EXPORT_CSV)
        return res_err(res, SB_EINVAL, "format", "format must be json or csv");
    char num[SB_E164_MAX + 1];
    int rc = number_arg(number, num, res);
    if (rc) return rc;
    uint8_t ak[REC_RIDX_MAX];
    size_t akl = 0;
    if (after && after[0] && !(akl = export_after(after, ak))) {
        cr_wipe(num, sizeof num);
        return res_err(res, SB_EINVAL, "after",
                       "\"after\" is not a page's \"next\" (\"caller:\" or \"called:\", when the "
                       "record ended, ':' and its id)");
    }
    MDB_txn *txn;
    acct_rec acc;
    if ((rc = eng_read_account(e, account, &txn, &acc, res))) {
        cr_wipe(num, sizeof num);
        return rc;
    }
    /* CSV: the header line (on the first page), then a line a record. JSON:
    ** the answer's text itself, each record encoded once, where it is
    ** measured (a page's bytes are counted as it has them) and then kept:
    ** jansson's encoding of the whole answer, as sb_result_json would do it,
    ** byte for byte ("number", "records", "live", "next", in that order). */
    sb_buf b = {.wipe = 1};       /* numbers in the clear: no copy of them left behind */
    int oom = 0;                  /* the JSON text is short of something */
    if (format == SB_EXPORT_JSON) /* E.164: '+' and digits, nothing to escape */
        oom |= buf_printf(&b, "{\"number\":\"%s\",\"records\":[", num) != 0;
    if (format == SB_EXPORT_CSV && !akl) {
        for (int c = 0; csv_cols[c]; c++) {
            if (c) buf_put(&b, ",", 1);
            buf_puts(&b, csv_cols[c]);
        }
        buf_put(&b, "\r\n", 2);
    }
    uint8_t key[32], p[20], last[REC_RIDX_MAX];
    size_t taken = 0, bytes = 0, lastl = 0;
    int live = 0, more = 0;
    rc = rec_key(e, acc.num, acc.id, 0, key);
    if (rc == REC_NO_KEY) { /* no key: nothing sealed, nothing to find */
        rc = 0;
        goto done;
    }
    if (rc) {
        rc = res_err(res, rc, NULL,
                     rc == SB_ECRYPTO ? "the data key of account '%s' does not open (data.keys "
                                        "damaged, or its slot copied from elsewhere): its records "
                                        "cannot be found"
                                      : "the data key of account '%s' cannot be read",
                     acc.id);
        goto out;
    }
    put_be32(p, acc.num);
    cr_pseudonym(key, num, p + 4);
    /* Calls of the number in progress: in no record yet. */
    live = live_calls_of(txn, e, acc.num, acc.id, p + 4, INT64_MAX, NULL);
    if (live < 0 || IS_SB_ERR(live)) {
        cr_wipe(key, sizeof key);
        rc = live == SB_ENOMEM ? res_err(res, SB_ENOMEM, NULL, "out of memory")
                               : eng_mdb_err(res, live, "read live calls");
        goto out;
    }
    hold *hs = NULL;
    int nh = 0, caph = 0;
    if ((rc = holds_load(txn, e, acc.num, &hs, &nh, &caph))) {
        cr_wipe(key, sizeof key);
        free(hs);
        rc = rc == SB_ENOMEM ? res_err(res, SB_ENOMEM, NULL, "out of memory")
                             : eng_mdb_err(res, rc, "read the legal holds");
        goto out;
    }
    if (akl) memcpy(ak, p, 20);
    rec_walk it;
    for (rc = rec_walk_after(&it, txn, e, acc.num, p + 4, ak, akl); rc == 0;
         rc = rec_walk_next(&it)) {
        if (it.klen < 30) continue;
        uint8_t rk[REC_KEY_MAX];
        size_t rkl = rec_key_of(rk, acc.num, (const char *)it.key + 29, it.klen - 29,
                                (int64_t)be64(it.key + 21));
        MDB_val v;
        rec_data r;
        if (st_get(txn, e, DB_RECORDS, rk, rkl, &v) || rec_decode(v.mv_data, v.mv_size, &r))
            continue;
        char caller[SB_E164_MAX + 1], called[SB_E164_MAX + 1];
        json_t *pattrs = NULL;
        if (rec_open(key, acc.id, &r, caller, called, &pattrs)) {
            /* It may have copied the caller before it failed. */
            cr_wipe(caller, sizeof caller);
            cr_wipe(called, sizeof called);
            continue;
        }
        /* The pseudonym found it; the number itself must match too. A call
        ** from the number to itself is listed once, as the caller's. */
        if (strcmp(it.key[20] == ROLE_CALLER ? caller : called, num) != 0 ||
            (it.key[20] == ROLE_CALLED && strcmp(caller, num) == 0)) {
            json_wipe_decref(pattrs);
            cr_wipe(caller, sizeof caller);
            cr_wipe(called, sizeof called);
            continue;
        }
        json_t *o = rec_json(&r);
        json_object_set_new(o, "role",
                            json_string(it.key[20] == ROLE_CALLER ? "caller" : "called"));
        /* A number the call did not have (a withheld caller, none dialled)
        ** is null, and an empty field in CSV. */
        json_object_set_new(o, "caller", caller[0] ? json_string(caller) : json_null());
        json_object_set_new(o, "called", called[0] ? json_string(called) : json_null());
        json_object_set_new(o, "personal_attrs", pattrs ? pattrs : json_object());
        held_by(o, hs, nh, &r);
        cr_wipe(caller, sizeof caller);
        cr_wipe(called, sizeof called);
        /* The page is full: this record, which follows it, says more do. */
        if (taken && limit && taken == limit) {
            json_wipe_decref(o);
            more = 1;
            break;
        }
        size_t at = b.len, size;
        if (format == SB_EXPORT_CSV) {
            csv_iso_time(o, "offered_ms", "offered_at");
            csv_iso_time(o, "answered_ms", "answered_at");
            csv_iso_time(o, "ended_ms", "ended_at");
            for (int c = 0; csv_cols[c]; c++) {
                if (c) buf_put(&b, ",", 1);
                csv_json(&b, json_object_get(o, csv_cols[c]));
            }
            buf_put(&b, "\r\n", 2);
            size = b.len - at;
        } else {
            if (taken) oom |= buf_put(&b, ",", 1) != 0;
            size_t from = b.len;
            if (json_dump_callback(o, dump_to_buf, &b,
                                   JSON_COMPACT | JSON_ENSURE_ASCII | SB_JSON_REALS)) {
                json_wipe_decref(o);
                rc = SB_ENOMEM;
                break;
            }
            size = b.len - from; /* the record's, without the comma before it */
        }
        json_wipe_decref(o); /* it is in b now */
        if (taken && max_bytes && bytes + size > max_bytes) {
            if (b.p) cr_wipe(b.p + at, b.len - at);
            b.len = at;
            if (b.p) b.p[at] = 0;
            more = 1;
            break;
        }
        bytes += size;
        taken++;
        lastl = it.klen;
        memcpy(last, it.key, lastl);
    }
    rec_walk_close(&it);
    cr_wipe(key, sizeof key);
    free(hs);
    if (rc == SB_ENOMEM) {
        rc = res_err(res, SB_ENOMEM, NULL, "out of memory");
        goto out;
    }
    if (!more && rc != MDB_NOTFOUND) {
        rc = eng_mdb_err(res, rc, "read records");
        goto out;
    }
    rc = 0;
done:;
    char nx[7 + 21 + 1 + SB_ID_MAX + 1] = "";
    if (more)
        snprintf(nx, sizeof nx, "%s:%llu:%.*s", last[20] == ROLE_CALLER ? "caller" : "called",
                 (unsigned long long)be64(last + 21), (int)(lastl - 29), (const char *)last + 29);
    json_t *doc = NULL;
    if (format == SB_EXPORT_JSON) {
        /* Ids are letters, digits and . _ : @ + -: nothing to escape. */
        oom |= buf_printf(&b, "],\"live\":%d", live) != 0;
        if (more) oom |= buf_printf(&b, ",\"next\":\"%s\"", nx) != 0;
        oom |= buf_put(&b, "}", 1) != 0;
    } else {
        doc = json_pack("{s:s,s:I,s:i,s:s%}", "number", num, "count", (json_int_t)taken, "live",
                        live, "csv", b.p ? b.p : "", b.len);
        if (doc && more) json_object_set_new(doc, "next", json_string(nx));
    }
    if (format == SB_EXPORT_JSON ? oom : !doc) {
        rc = res_err(res, SB_ENOMEM, NULL, "out of memory");
        goto out;
    }
    /* Who disclosed what: the account and the count, never the number. The
    ** read ends first (LMDB gives a thread one transaction); the answer
    ** waits for the entry. */
    eng_read_end(e, txn);
    txn = NULL;
    if ((rc = ret_access_audit(e, account, acc.num, taken, format, akl != 0, more, res))) {
        json_wipe_decref(doc);
        goto out;
    }
    if (doc) {
        res_doc(res, doc);
    } else { /* the text is the answer's now */
        res_doc_text(res, b.p, b.len);
        b = (sb_buf){0};
    }
out:
    if (b.p) cr_wipe(b.p, b.len);
    buf_free(&b);
    if (txn) eng_read_end(e, txn);
    cr_wipe(num, sizeof num);
    return rc;
}

int sb_records_export(sb_engine *e, const char *account, const char *number,
                      sb_export_format format, sb_result *res)
{
    return export_run(e, account, number, format, NULL, 0, 0, res);
}

int sb_records_export_page(sb_engine *e, const char *account, const char *number,
                           sb_export_format format, const char *after, size_t limit,
                           size_t max_bytes, sb_result *res)
{
    return export_run(e, account, number, format, after, limit, max_bytes, res);
}

/* --- listing records ---------------------------------------------------------------------- */

/* Whether the account has, or had, a queue of that id: 0 when it has one or
** a deleted one kept the id (NK_QUEUE_GONE: its records outlive it, as its
** aggregates do), SB_ENOTFOUND when neither, else an LMDB error. */
static int queue_known(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *queue)
{
    queue_rec q = {0};
    int rc = st_queue_by_id(txn, e, acct, queue, &q);
    if (rc != SB_ENOTFOUND) return rc;
    size_t idl = strlen(queue);
    st_iter it;
    uint8_t gp[5] = {NK_QUEUE_GONE};
    put_be32(gp + 1, acct);
    for (rc = st_iter_open(&it, txn, e, DB_NAMES, gp, sizeof gp); rc == 0; rc = st_iter_next(&it))
        if (it.klen == 9 && it.v.mv_size == idl && !memcmp(it.v.mv_data, queue, idl)) break;
    st_iter_close(&it);
    return rc == MDB_NOTFOUND ? SB_ENOTFOUND : rc;
}

int sb_records_list(sb_engine *e, const char *account, const char *query, size_t len,
                    sb_result *res)
{
    static const char *const keys[] = {"from_ms",   "to_ms",     "queue", "limit",
                                       "before_ms", "before_id", NULL};
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    long long from = 0, to = INT64_MAX, limit = 100, before = -1;
    char queue[SB_ID_MAX + 1] = "", before_id[SB_ID_MAX + 1] = "";
    json_t *doc = NULL;
    int rc;
    if (query && len) {
        if ((rc = jv_parse(query, len, &doc, res))) return rc;
        json_t *qv = json_object_get(doc, "queue");
        if (json_is_string(qv) && !json_string_length(qv)) {
            json_decref(doc);
            return res_queue_empty(res);
        }
        if ((rc = jv_keys(doc, keys, NULL, res)) ||
            (rc = jv_int(doc, "from_ms", NULL, 0, 0, INT64_MAX, &from, res)) ||
            (rc = jv_int(doc, "to_ms", NULL, 0, 0, INT64_MAX, &to, res)) ||
            (rc = jv_int(doc, "limit", NULL, 0, 1, 10000, &limit, res)) ||
            (rc = jv_id(doc, "queue", NULL, 0, queue, res)) ||
            (rc = jv_int(doc, "before_ms", NULL, 0, 0, INT64_MAX, &before, res)) ||
            (rc = jv_id(doc, "before_id", NULL, 0, before_id, res))) {
            json_decref(doc);
            return rc;
        }
        json_decref(doc);
    }
    if (to < from)
        return res_err(res, SB_EINVAL, "to_ms",
                       "the time range ends (%lld) before it starts (%lld)", to, from);
    if ((before < 0) != !before_id[0])
        return res_err(res, SB_EINVAL, before < 0 ? "before_ms" : "before_id",
                       "a page after another needs both \"before_ms\" and \"before_id\" (the "
                       "last record's ended_ms and id)");
    MDB_txn *txn;
    acct_rec acc;
    if ((rc = eng_read_account(e, account, &txn, &acc, res))) return rc;
    if (queue[0] && (rc = queue_known(txn, e, acc.num, queue))) {
        eng_read_end(e, txn);
        return rc == SB_ENOTFOUND ? res_no_such(res, "queue", "queue", queue)
                                  : eng_mdb_err(res, rc, "read queue");
    }
    /* Records are keyed by the time they ended, then their id: walk back
    ** from the end of the range (or from just before the record a page
    ** ended with), newest first, until `limit` or `from`. */
    uint8_t kb[1 + REC_KEY_MAX];
    kb[0] = DB_RECORDS + 1;
    put_be32(kb + 1, acc.num);
    size_t kl = 13;
    if (before >= 0 && before < to) {
        put_be64(kb + 5, (uint64_t)before);
        size_t il = strlen(before_id);
        memcpy(kb + 13, before_id, il);
        kl += il;
    } else {
        put_be64(kb + 5, (uint64_t)to);
    }
    json_t *out = json_array();
    MDB_cursor *cur;
    size_t ql = strlen(queue);
    hold *hs = NULL;
    int nh = 0, caph = 0;
    if ((rc = holds_load(txn, e, acc.num, &hs, &nh, &caph))) goto out;
    if ((rc = mdb_cursor_open(txn, e->dbi[DB_RECORDS], &cur))) goto out;
    MDB_val k = {kl, kb}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    rc = mdb_cursor_get(cur, &k, &v, rc == 0 ? MDB_PREV : MDB_LAST);
    for (; rc == 0 && json_array_size(out) < (size_t)limit;
         rc = mdb_cursor_get(cur, &k, &v, MDB_PREV)) {
        const uint8_t *key = k.mv_data;
        if (k.mv_size < 14 || key[0] != DB_RECORDS + 1 || be32(key + 1) != acc.num ||
            (int64_t)be64(key + 5) < from)
            break;
        rec_data r;
        if (rec_decode(v.mv_data, v.mv_size, &r)) continue;
        if (ql && (r.queuelen != ql || memcmp(r.queue, queue, ql) != 0)) continue;
        json_t *o = rec_json(&r);
        held_by(o, hs, nh, &r);
        json_array_append_new(out, o);
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND) rc = 0;
out:
    free(hs);
    eng_read_end(e, txn);
    if (rc) {
        json_decref(out);
        return eng_mdb_err(res, rc, "read records");
    }
    res_doc(res, json_pack("{s:o}", "records", out));
    return 0;
}

/* --- legal holds ----------------------------------------------------------------------------- */

static json_t *hold_json(const hold *h)
{
    char reason[sizeof h->reason];
    memcpy(reason, h->reason, sizeof reason);
    text_clean(reason); /* holds placed before reasons were cleaned */
    json_t *o = json_pack("{s:s,s:s,s:s,s:I}", "id", h->id, "kind", hk_names[h->kind], "reason",
                          reason, "created_ms", (json_int_t)h->created);
    if (h->kind == HK_CALL) json_object_set_new(o, "call", json_string(h->call));
    if (h->kind == HK_RANGE) {
        json_object_set_new(o, "from_ms", json_integer(h->from));
        json_object_set_new(o, "to_ms", json_integer(h->to));
    }
    return o;
}

typedef struct hold_op {
    const char *account;
    hold h;
    char number[SB_E164_MAX + 1];
    int gen_id;
    const char *release;
} hold_op;

static int do_hold_place(wtx *t, void *arg)
{
    hold_op *op = arg;
    int rc = tx_account(t, op->account);
    if (rc) return rc;
    rctx x;
    rctx_init(&x, t);
    uint8_t k[4 + SB_ID_MAX];
    MDB_val v;
    if (op->number[0]) {
        uint8_t key[32];
        if ((rc = rec_key(t->e, t->acct, t->account->id, 1, key))) goto out;
        cr_pseudonym(key, op->number, op->h.pseudo);
        cr_wipe(key, sizeof key);
    }
    for (int tries = 0;; tries++) {
        if (op->gen_id) {
            uint8_t r[4];
            cr_random(r, sizeof r);
            snprintf(op->h.id, sizeof op->h.id, "h%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
        }
        rc = st_get(t->txn, t->e, DB_HOLDS, k, hold_key(k, t->acct, op->h.id), &v);
        if (rc == MDB_NOTFOUND) break;
        if (rc) goto out;
        if (!op->gen_id || tries > 8) {
            rc = res_err(t->res, SB_EEXIST, "id", "hold '%s' exists already", op->h.id);
            goto out;
        }
    }
    /* A hold on a call id: one live (its record comes when it ends) or with
    ** a record; a mistyped id would hold nothing while the list said it did. */
    if (op->h.kind == HK_CALL && !st_call_exists(t->txn, t->e, t->acct, op->h.call) &&
        !record_exists(t->e, t->txn, t->acct, op->h.call, 0)) {
        rc = res_err(t->res, SB_ENOTFOUND, "call",
                     "no call '%s' in this account, live or with a record: nothing to hold",
                     op->h.call);
        goto out;
    }
    uint8_t p[4];
    st_iter it;
    int n = 0;
    for (rc = st_iter_open(&it, t->txn, t->e, DB_HOLDS, p, key_acct(p, t->acct)); rc == 0;
         rc = st_iter_next(&it))
        n++;
    st_iter_close(&it);
    if (n >= HOLDS_MAX) {
        rc = res_err(t->res, SB_ELIMIT, NULL, "an account has at most %d legal holds", HOLDS_MAX);
        goto out;
    }
    op->h.created = t->now;
    if (op->h.kind == HK_CALL) {
        /* A call hold covers the calls of its id offered by the time it
        ** was placed (hold_covers): by the clock, which may have stepped
        ** back since the call live now was offered, or since one of that
        ** id ended, and their times would then be past the hold's and
        ** escape it. The hold's time is never earlier than theirs. The
        ** cost: a call reusing the id, offered after the hold while the
        ** clock is still behind that time, is held too (held rather than
        ** lost; telling it apart would need an order of calls that is not
        ** the clock's). */
        call_rec live = {0};
        if (st_call_load(t->txn, t->e, t->acct, op->h.call, &live) == 0 &&
            live.offered > op->h.created)
            op->h.created = live.offered;
        call_free(&live);
        int64_t ended = record_latest_end(t->e, t->txn, t->acct, op->h.call, 0);
        if (ended > op->h.created) op->h.created = ended;
    }
    wb_reset(&x.w);
    enc_hold(&x.w, &op->h);
    if (x.w.err) {
        rc = SB_ENOMEM;
        goto out;
    }
    if ((rc =
             st_put(t->txn, t->e, DB_HOLDS, k, hold_key(k, t->acct, op->h.id), x.w.b.p, x.w.b.len)))
        goto out;
    x.acct = t->acct;
    char why[SB_ID_MAX + SB_REASON_MAX + 40];
    snprintf(why, sizeof why, "%s hold %s: %s", hk_names[op->h.kind], op->h.id, op->h.reason);
    rc = audit_add(&x, op->h.kind == HK_CALL ? op->h.call : NULL, strlen(op->h.call), 0,
                   "hold_placed", NULL, 0, NULL, why, SRC_HOLD, NULL, NULL);
    if (!rc) rc = audit_flush(&x);
out:
    rctx_free(&x);
    return rc;
}

int sb_hold_place(sb_engine *e, const char *account, const char *json, size_t len, sb_result *res)
{
    static const char *const keys[] = {"id", "call", "number", "from_ms", "to_ms", "reason", NULL};
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    json_t *doc;
    int rc = jv_parse(json, len, &doc, res);
    if (rc) return rc;
    hold_op op = {.account = account};
    char number[64] = "";
    long long from = -1, to = -1;
    if ((rc = jv_keys(doc, keys, NULL, res)) || (rc = jv_id(doc, "id", NULL, 0, op.h.id, res)) ||
        (rc = jv_id(doc, "call", NULL, 0, op.h.call, res)) ||
        (rc = jv_str(doc, "number", NULL, 0, number, sizeof number, res)) ||
        (rc = jv_int(doc, "from_ms", NULL, 0, 0, INT64_MAX, &from, res)) ||
        (rc = jv_int(doc, "to_ms", NULL, 0, 0, INT64_MAX, &to, res)) ||
        (rc = jv_str(doc, "reason", NULL, 1, op.h.reason, sizeof op.h.reason, res)))
        goto out;
    /* Listed by the hold list and `switchboard records holds` as it is
    ** stored: a line break or an escape sequence in it would paint the
    ** terminal reading the list (as the audit log's entries, spaces). */
    text_clean(op.h.reason);
    int kinds = !!op.h.call[0] + !!number[0] + (from >= 0 || to >= 0);
    if (kinds != 1) {
        rc = res_err(res, SB_EINVAL, NULL,
                     "a hold covers one of: \"call\", \"number\", or \"from_ms\" and \"to_ms\"");
        goto out;
    }
    if (!op.h.reason[0]) {
        rc = res_err(res, SB_EINVAL, "reason", "a hold needs a reason");
        goto out;
    }
    /* The hold list and the audit log hold no number. A person writes this
    ** reason: one with what reads as a phone number is refused, written
    ** with its '+' or the national way with 9 digits or more (an area code
    ** and a line: "030 123456"; shorter runs are case and ticket numbers
    ** more often than not, and the audit shows them as [number] anyway). */
    /* Its id likewise, by the same rule: the hold list, the audit log and
    ** the daemon's log name holds by id. */
    const char *const fields[2][2] = {{"reason", op.h.reason}, {"id", op.h.id}};
    for (int i = 0; i < 2; i++) {
        char shown[3 * sizeof op.h.reason];
        if (redact_numbers_min(fields[i][1], shown, sizeof shown, 0, HOLD_NATIONAL_MIN)) {
            rc = res_err(res, SB_EINVAL, fields[i][0],
                         "a hold's %s must not contain a phone number (the hold list and the "
                         "audit log, which hold no personal data, show it): it reads \"%s\" "
                         "(a number written with '+', or a run of %d digits or more; write a "
                         "case number in parts, as 2026-001234)",
                         fields[i][0], shown, HOLD_NATIONAL_MIN);
            goto out;
        }
    }
    if (number[0]) {
        if ((rc = number_arg(number, op.number, res))) goto out;
        op.h.kind = HK_NUMBER;
    } else if (op.h.call[0]) {
        op.h.kind = HK_CALL;
    } else {
        /* Before 1973-03-03 in milliseconds: seconds meant (the CLI takes
        ** those), or a range that holds nothing. (from_ms 0: from the
        ** start, as a hold open at its start is given.) */
        const long long ms_floor = 100000000000LL;
        if (from < 0 || to < 0) {
            const char *missing = from < 0 ? "from_ms" : "to_ms";
            rc = res_err(res, SB_EINVAL, missing, "a time range hold needs \"%s\" too", missing);
        } else if ((from && from < ms_floor) || to < ms_floor) {
            int f_bad = from && from < ms_floor;
            const char *f = f_bad ? "from_ms" : "to_ms";
            long long v = f_bad ? from : to;
            if (!v) /* to_ms 0: no time, in seconds or milliseconds */
                rc = res_err(res, SB_EINVAL, f,
                             "\"to_ms\" 0 ends the range before it starts: give its end in "
                             "Unix milliseconds (from_ms 0 is from the start; to_ms has no "
                             "such value)");
            else
                rc = res_err(res, SB_EINVAL, f,
                             "\"%s\" %lld is before 1973 in Unix milliseconds: times here are "
                             "milliseconds (%lld000 if seconds were meant)",
                             f, v, v);
        } else if (to <= from) {
            rc =
                res_err(res, SB_EINVAL, "to_ms", "a time range hold needs \"from_ms\" < \"to_ms\"");
        }
        if (rc) goto out;
        op.h.kind = HK_RANGE;
        op.h.from = from;
        op.h.to = to;
    }
    op.gen_id = !op.h.id[0];
    rc = eng_write_ex(e, do_hold_place, &op, res, 1); /* a legal duty, and small */
    if (!rc) res_doc(res, hold_json(&op.h));
out:
    cr_wipe(number, sizeof number);
    cr_wipe(op.number, sizeof op.number);
    json_decref(doc);
    return rc;
}

static int do_hold_release(wtx *t, void *arg)
{
    hold_op *op = arg;
    int rc = tx_account(t, op->account);
    if (rc) return rc;
    uint8_t k[4 + SB_ID_MAX];
    MDB_val v;
    size_t kl = hold_key(k, t->acct, op->release);
    rc = st_get(t->txn, t->e, DB_HOLDS, k, kl, &v);
    if (rc == MDB_NOTFOUND)
        return res_err(t->res, SB_ENOTFOUND, "hold", "no such hold '%s'", op->release);
    if (rc) return rc;
    if ((rc = dec_hold(k, kl, &v, &op->h))) return rc;
    if ((rc = st_del(t->txn, t->e, DB_HOLDS, k, kl))) return rc;
    rctx x;
    rctx_init(&x, t);
    x.acct = t->acct;
    /* Erasure requests this hold (or any) kept from records run again with
    ** the next sweep, from the first. */
    uint8_t p[4], jv[1] = {V_JOB};
    st_iter it;
    rc = st_iter_open(&it, t->txn, t->e, DB_ERASURES, p, key_acct(p, t->acct));
    st_iter_close(&it);
    if (rc == 0 && (rc = pend_restart(&x)) == 0)
        rc = job_put(&x, JOB_ERASURE, t->acct, jv, 1);
    else if (rc == MDB_NOTFOUND)
        rc = 0;
    if (rc) {
        rctx_free(&x);
        return rc;
    }
    char why[SB_ID_MAX + SB_REASON_MAX + 40];
    snprintf(why, sizeof why, "%s hold %s: %s", hk_names[op->h.kind], op->h.id, op->h.reason);
    rc = audit_add(&x, op->h.kind == HK_CALL ? op->h.call : NULL, strlen(op->h.call), 0,
                   "hold_released", NULL, 0, NULL, why, SRC_HOLD, NULL, NULL);
    if (!rc) rc = audit_flush(&x);
    rctx_free(&x);
    return rc;
}

int sb_hold_release(sb_engine *e, const char *account, const char *hold_id, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    if (!id_valid(hold_id)) return res_no_such(res, "hold", "hold", hold_id);
    hold_op op = {.account = account, .release = hold_id};
    int rc = eng_write_ex(e, do_hold_release, &op, res, 1); /* it lets deletes go on */
    if (!rc) {
        json_t *o = hold_json(&op.h);
        json_object_set_new(o, "released", json_true());
        res_doc(res, o);
    }
    return rc;
}

int sb_hold_list(sb_engine *e, const char *account, sb_result *res)
{
    res_reset(res);
    MDB_txn *txn;
    acct_rec acc;
    int rc = eng_read_account(e, account, &txn, &acc, res);
    if (rc) return rc;
    hold *hs = NULL;
    int n = 0, cap = 0;
    rc = holds_load(txn, e, acc.num, &hs, &n, &cap);
    eng_read_end(e, txn);
    if (rc) {
        free(hs);
        return eng_mdb_err(res, rc, "read holds");
    }
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, hold_json(&hs[i]));
    free(hs);
    res_doc(res, json_pack("{s:o}", "holds", arr));
    return 0;
}

int sb_hold_get(sb_engine *e, const char *account, const char *hold_id, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    MDB_txn *txn;
    acct_rec acc;
    int rc = eng_read_account(e, account, &txn, &acc, res);
    if (rc) return rc;
    if (!id_valid(hold_id)) {
        eng_read_end(e, txn);
        return res_no_such(res, "hold", "hold", hold_id);
    }
    uint8_t k[4 + SB_ID_MAX];
    size_t kl = hold_key(k, acc.num, hold_id);
    MDB_val v;
    hold h;
    rc = st_get(txn, e, DB_HOLDS, k, kl, &v);
    if (rc == 0) rc = dec_hold(k, kl, &v, &h);
    eng_read_end(e, txn);
    if (rc == MDB_NOTFOUND) return res_no_such(res, "hold", "hold", hold_id);
    if (rc) return eng_mdb_err(res, rc, "read hold");
    json_t *o = hold_json(&h);
    if (!o) return res_err(res, SB_ENOMEM, NULL, "out of memory");
    res_doc(res, o);
    return 0;
}

/* --- aggregates ------------------------------------------------------------------------------ */

static json_t *aggr_json(const uint64_t *v, int64_t day, const char *queue, const char *tz)
{
    char d[16];
    time_t secs = (time_t)(day * 86400);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(d, sizeof d, "%Y-%m-%d", &tm);
    double offered = (double)v[AG_OFFERED];
    return json_pack(
        "{s:s,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:f,s:f,s:I,s:o,s:s}", "day", d, "queue",
        queue ? json_string(queue) : json_null(), "offered", (json_int_t)v[AG_OFFERED], "answered",
        (json_int_t)v[AG_ANSWERED], "abandoned", (json_int_t)v[AG_ABANDONED], "rejected",
        (json_int_t)v[AG_REJECTED], "overflowed", (json_int_t)v[AG_OVERFLOWED], "failed",
        (json_int_t)v[AG_FAILED], "wait_total", (double)v[AG_WAIT_MS] / 1000.0, "answer_wait_total",
        (double)v[AG_ANSWER_WAIT_MS] / 1000.0, "talk_total", (double)v[AG_TALK_MS] / 1000.0,
        "max_wait", (double)v[AG_MAX_WAIT_MS] / 1000.0, "answered_within_sl",
        (json_int_t)v[AG_ANSWERED_SL], "service_level",
        offered > 0 ? json_real((double)v[AG_ANSWERED_SL] / offered) : json_null(), "timezone", tz);
}

/* The days a range picks in one zone: every day [from_ms, to_ms) touches
** on its wall clock (to_ms INT64_MAX: every day from from_ms's on). */
typedef struct {
    char tz[REC_TZ_MAX + 1]; /* "": UTC */
    int64_t from_ms, to_ms;
    int64_t dfrom, dto; /* [dfrom, dto) */
} day_range;

static void range_in(day_range *r, const char *tz, size_t n)
{
    memcpy(r->tz, tz, n);
    r->tz[n] = 0;
    rec_day_in(r->tz, r->from_ms, &r->dfrom); /* a zone that cannot be loaded: UTC days */
    r->dto = INT64_MAX;
    if (r->to_ms != INT64_MAX) {
        rec_day_in(r->tz, r->to_ms - 1, &r->dto);
        r->dto++;
    }
}

/* The rows of the aggregates under prefix p (an account's, or one queue's)
** of the days r picks, each in its row's own zone, onto arr: MDB_NOTFOUND
** at the end, or an error. */
static int aggr_rows(MDB_txn *txn, sb_engine *e, uint32_t acct, const uint8_t *p, size_t pl,
                     day_range *r, json_t *arr)
{
    st_iter it;
    int rc;
    uint32_t qnum = UINT32_MAX;
    int gone = 0;
    char qid[SB_ID_MAX + 1] = "";
    for (rc = st_iter_open(&it, txn, e, DB_AGGR, p, pl); rc == 0; rc = st_iter_next(&it)) {
        /* a zone's name after the day, none for UTC (records.h) */
        if (it.klen < 12 || it.klen > REC_AGGR_KEY_MAX) continue;
        const char *tz = (const char *)it.key + 12;
        size_t tzl = it.klen - 12;
        if (strlen(r->tz) != tzl || memcmp(r->tz, tz, tzl)) range_in(r, tz, tzl);
        int64_t day = be32(it.key + 8);
        if (day < r->dfrom || day >= r->dto) continue;
        uint64_t v[AG_COUNT];
        if (rec_aggr_decode(&it.v, v)) continue;
        uint32_t qn = be32(it.key + 4);
        if (qn != qnum) { /* the queue's id (its aggregates outlive it) */
            qnum = qn;
            queue_rec qq = {0};
            gone = 0;
            if (qn == 0)
                qid[0] = 0;
            else if (st_queue_load(txn, e, acct, qn, &qq) == 0)
                str_copy(qid, sizeof qid, qq.id);
            else if (st_gone_id(txn, e, NK_QUEUE_GONE, acct, qn, qid) == 0)
                gone = 1;
            else /* deleted before deleted queues kept their ids */
                snprintf(qid, sizeof qid, "#%u", (unsigned)qn);
        }
        json_t *row = aggr_json(v, day, qn ? qid : NULL, r->tz[0] ? r->tz : "UTC");
        if (gone) json_object_set_new(row, "queue_deleted", json_true());
        json_array_append_new(arr, row);
    }
    st_iter_close(&it);
    return rc;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int sb_aggregates(sb_engine *e, const char *account, const char *queue, int64_t from_ms,
                  int64_t to_ms, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    if (from_ms < 0) return res_err(res, SB_EINVAL, "from_ms", "'from_ms' must not be negative");
    if (queue && !*queue) return res_queue_empty(res);
    if (to_ms == 0) to_ms = INT64_MAX;
    if (to_ms < from_ms) /* as sb_records_list says it */
        return res_err(res, SB_EINVAL, "to_ms",
                       "the time range ends (%lld) before it starts (%lld)", (long long)to_ms,
                       (long long)from_ms);
    MDB_txn *txn;
    acct_rec acc;
    int rc = eng_read_account(e, account, &txn, &acc, res);
    if (rc) return rc;
    json_t *arr = json_array();
    sb_buf nums = {0}; /* uint32_t: the queues' numbers */
    rec_settings s;    /* its zone: the answer's */
    if ((rc = rec_settings_load(txn, e, acc.num, &s)) && rc != SB_ESTORE) {
        rc = eng_mdb_err(res, rc, "read account settings");
        goto out;
    }
    day_range r = {.from_ms = from_ms, .to_ms = to_ms};
    range_in(&r, "", 0);
    uint8_t p[8];
    if (!queue) {
        rc = aggr_rows(txn, e, acc.num, p, key_acct(p, acc.num), &r, arr);
    } else {
        /* The queue of that id, and the deleted queues that had it: each
        ** with its own rows, the deleted ones' marked. */
        queue_rec q = {0};
        rc = st_queue_by_id(txn, e, acc.num, queue, &q);
        if (rc && rc != SB_ENOTFOUND) {
            rc = eng_mdb_err(res, rc, "read queue");
            goto out;
        }
        size_t idl = strlen(queue);
        if (rc == 0 && buf_put(&nums, &q.num, sizeof q.num)) goto oom;
        st_iter it;
        uint8_t gp[5] = {NK_QUEUE_GONE};
        put_be32(gp + 1, acc.num);
        for (rc = st_iter_open(&it, txn, e, DB_NAMES, gp, sizeof gp); rc == 0;
             rc = st_iter_next(&it)) {
            if (it.klen != 9 || it.v.mv_size != idl || memcmp(it.v.mv_data, queue, idl)) continue;
            uint32_t n = be32(it.key + 5);
            if (buf_put(&nums, &n, sizeof n)) break;
        }
        st_iter_close(&it);
        if (rc == 0) goto oom; /* the loop left for memory */
        if (rc != MDB_NOTFOUND) {
            rc = eng_mdb_err(res, rc, "read deleted queues");
            goto out;
        }
        size_t nn = nums.len / sizeof(uint32_t);
        if (!nn) {
            rc = res_no_such(res, "queue", "queue", queue);
            goto out;
        }
        uint32_t *num = (uint32_t *)(void *)nums.p;
        qsort(num, nn, sizeof *num, cmp_u32);
        rc = MDB_NOTFOUND;
        for (size_t i = 0; i < nn && rc == MDB_NOTFOUND; i++)
            rc = aggr_rows(txn, e, acc.num, p, key_acct2(p, acc.num, num[i]), &r, arr);
    }
    if (rc != MDB_NOTFOUND) {
        rc = eng_mdb_err(res, rc, "read aggregates");
        goto out;
    }
    rc = 0;
    res_doc(res, json_pack("{s:s,s:O}", "timezone", rec_tz_utc(s.tz) ? "UTC" : s.tz, "days", arr));
    goto out;
oom:
    rc = res_err(res, SB_ENOMEM, NULL, "out of memory");
out:
    buf_free(&nums);
    json_decref(arr);
    eng_read_end(e, txn);
    return rc;
}

/* --- the audit log --------------------------------------------------------------------------- */

int sb_audit_list(sb_engine *e, const char *account, uint64_t after, size_t limit, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    /* "next" is a JSON integer, at most INT64_MAX: a larger cursor would
    ** come back negative (and after + 1 wrap to 0). No entry has such a seq. */
    if (after > INT64_MAX)
        return res_err(res, SB_EINVAL, "after", "'after' must be an audit entry's seq, 0 to %lld",
                       (long long)INT64_MAX);
    if (!limit || limit > 100000) limit = limit ? 100000 : 1000;
    MDB_txn *txn;
    acct_rec acc;
    int rc = eng_read_account(e, account, &txn, &acc, res);
    if (rc) return rc;
    json_t *arr = json_array();
    uint64_t next = after;
    uint8_t p[4], at[12];
    st_iter it;
    /* From the value holding entry after + 1 (a value's key is its first
    ** entry's number): a page far into a long log reads no value before it. */
    key_acct(at, acc.num);
    put_be64(at + 4, after < UINT64_MAX ? after + 1 : after);
    for (rc = st_iter_floor(&it, txn, e, DB_AUDIT, p, key_acct(p, acc.num), at, after ? 12 : 0);
         rc == 0 && json_array_size(arr) < limit; rc = st_iter_next(&it)) {
        if (it.klen != 12 || it.v.mv_size < 5) continue;
        uint64_t seq = be64(it.key + 4);
        rbuf r;
        rb_init(&r, it.v.mv_data, it.v.mv_size);
        int ver = rb_u8(&r);
        uint32_t n = rb_u32(&r);
        if ((ver != V_AUDIT && ver != V_AUDIT2) || seq + n <= after + 1)
            continue; /* not ours, or all before `after` */
        int64_t vt = ver == V_AUDIT2 ? rb_i64(&r) : 0;
        audit_strs strs = {0};
        for (uint32_t i = 0; i < n && !r.err && json_array_size(arr) < limit; i++, seq++) {
            char call[SB_ID_MAX + 1], action[32], decision[32], reason[SB_REASON_MAX + 300],
                policy[SB_NAME_MAX + 1], version[17];
            int64_t t = ver == V_AUDIT ? rb_i64(&r) : vt;
            rb_str(&r, call, sizeof call);
            int64_t ended = rb_i64(&r);
            audit_sread(&r, ver, &strs, action, sizeof action);
            audit_sread(&r, ver, &strs, decision, sizeof decision);
            int overridden = rb_u8(&r);
            audit_sread(&r, ver, &strs, reason, sizeof reason);
            int src = rb_u8(&r);
            audit_sread(&r, ver, &strs, policy, sizeof policy);
            audit_sread(&r, ver, &strs, version, sizeof version);
            if (r.err || seq <= after) continue;
            text_clean(reason); /* entries written before reasons were cleaned */
            text_clean(call);
            json_t *o =
                json_pack("{s:I,s:I,s:s,s:s,s:b,s:s,s:s}", "seq", (json_int_t)seq, "t_ms",
                          (json_int_t)t, "action", action, "decision",
                          decision[0] ? decision : action, "overridden", overridden, "reason",
                          reason, "source", src > 0 && src <= SRC_ACCESS ? src_names[src] : "?");
            if (call[0]) json_object_set_new(o, "call", json_string(call));
            if (ended) json_object_set_new(o, "ended_ms", json_integer(ended));
            if (policy[0]) json_object_set_new(o, "policy", json_string(policy));
            if (version[0]) json_object_set_new(o, "version", json_string(version));
            json_array_append_new(arr, o);
            next = seq;
        }
    }
    st_iter_close(&it);
    if (rc && rc != MDB_NOTFOUND) {
        rc = eng_mdb_err(res, rc, "read audit log");
        goto out;
    }
    rc = 0;
    res_doc(res, json_pack("{s:O,s:I}", "entries", arr, "next", (json_int_t)next));
out:
    json_decref(arr);
    eng_read_end(e, txn);
    return rc;
}
