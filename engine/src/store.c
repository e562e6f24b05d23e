/*
** store.c — LMDB access: keys, typed get/put of the model's records, the
** write-transaction runner (with map growth on MDB_MAP_FULL) and group sync.
*/
#include "engine.h"
#include "records.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

size_t key_acct(uint8_t *k, uint32_t acct)
{
    put_be32(k, acct);
    return 4;
}

size_t key_acct2(uint8_t *k, uint32_t acct, uint32_t a)
{
    put_be32(k, acct);
    put_be32(k + 4, a);
    return 8;
}

size_t key_acct3(uint8_t *k, uint32_t acct, uint32_t a, uint32_t b)
{
    put_be32(k, acct);
    put_be32(k + 4, a);
    put_be32(k + 8, b);
    return 12;
}

/* The small, hot tables share LMDB's main tree, each key led by its
** table's byte: an event then touches one B-tree instead of one per table,
** which saves copying each named tree's root and its record in the main
** tree on every commit (measured: about 1 µs per extra tree per commit).
** Tables that grow without bound (records, timers, documents) have trees
** of their own so they do not deepen the hot one. */
#define TB_KEY_MAX 511

static size_t tb_key(uint8_t *out, int table, const void *k, size_t kl)
{
    out[0] = (uint8_t)(table + 1);
    memcpy(out + 1, k, kl);
    return kl + 1;
}

/* --- undo: an event's writes in a batch -------------------------------------
** Before an event in a batch changes a key, the key and what it held (or
** that it held nothing) go into the undo log; if the event fails, its
** changes are put back in reverse, and the batch goes on as before it. An
** entry: table (1 byte), key length (2), had a value (1), value length (4),
** the key, the value. */
static int undo_add(sb_engine *e, int table, const MDB_val *key, const MDB_val *old)
{
    if (e->undo_n == e->undo_cap) {
        size_t cap = e->undo_cap ? e->undo_cap * 2 : 32;
        size_t *at = realloc(e->undo_at, cap * sizeof *at);
        if (!at) return SB_ENOMEM;
        e->undo_at = at;
        e->undo_cap = cap;
    }
    uint8_t h[8];
    size_t vl = old ? old->mv_size : 0;
    if (vl > UINT32_MAX) return MDB_BAD_VALSIZE;
    h[0] = (uint8_t)table;
    h[1] = (uint8_t)(key->mv_size >> 8);
    h[2] = (uint8_t)key->mv_size;
    h[3] = old != NULL;
    put_be32(h + 4, (uint32_t)vl);
    size_t at = e->undo.len;
    if (buf_put(&e->undo, h, 8) || buf_put(&e->undo, key->mv_data, key->mv_size) ||
        (vl && buf_put(&e->undo, old->mv_data, vl))) {
        e->undo.len = at;
        return SB_ENOMEM;
    }
    e->undo_at[e->undo_n++] = at;
    return 0;
}

/* Note what key holds in table before it changes. */
static int undo_note(MDB_txn *txn, sb_engine *e, int table, const MDB_val *key)
{
    MDB_val old;
    int rc = mdb_get(txn, e->dbi[table], (MDB_val *)key, &old);
    if (rc == MDB_NOTFOUND) return undo_add(e, table, key, NULL);
    return rc ? rc : undo_add(e, table, key, &old);
}

static void vc_flush(sb_engine *e);

/* Put back what the event changed, newest first. */
static int undo_apply(sb_engine *e, MDB_txn *txn)
{
    int rc = 0;
    vc_flush(e); /* the cache may hold what the event wrote */
    while (e->undo_n && !rc) {
        const uint8_t *h = (const uint8_t *)e->undo.p + e->undo_at[--e->undo_n];
        MDB_val k = {((size_t)h[1] << 8) | h[2], (void *)(h + 8)};
        MDB_val v = {be32(h + 4), (void *)(h + 8 + k.mv_size)};
        if (h[3]) {
            rc = mdb_put(txn, e->dbi[h[0]], &k, &v, 0);
        } else {
            rc = mdb_del(txn, e->dbi[h[0]], &k, NULL);
            if (rc == MDB_NOTFOUND) rc = 0;
        }
    }
    e->undo_n = 0;
    e->undo.len = 0;
    return rc;
}

int st_get(MDB_txn *txn, sb_engine *e, int table, const void *k, size_t kl, MDB_val *v)
{
    uint8_t buf[TB_KEY_MAX];
    if (kl >= TB_KEY_MAX) return MDB_BAD_VALSIZE;
    MDB_val key = {tb_key(buf, table, k, kl), buf};
    return mdb_get(txn, e->dbi[table], &key, v);
}

/* --- the record cache ---------------------------------------------------------
** Every event reads its account, and most read the call, agent and queue the
** event before wrote, the account's record settings and a call's end its
** day's counters (records.c: aggregates) again: a lookup in LMDB
** each (about 1,000 instructions, most of them the B-tree search), where a
** call cycle made 17 of them. The write transactions of this engine keep a
** copy of each such record they read or write, and use it instead while
** nobody else has written: when this engine's last commit took the id just
** before the running transaction's, no other engine or process committed in
** between (the same test as txn_catch_up's; an empty commit takes no id).
** Everything else drops the whole cache: a transaction that started after
** another's commit, an abort, a failed event undone in a batch. Every write
** to these tables goes through put_flags, st_del_exact or st_iter_del,
** which keep the copy equal to the store (or drop it). Only the write
** transaction may use it (vc_txn, set while its events run): readers keep
** their snapshot. Direct-mapped; a miss just reads LMDB. */
#define VC_SLOTS 256
#define VC_KEY_MAX (4 + SB_ID_MAX) /* a call's key: account, id */

struct vc_slot {
    uint64_t gen;        /* the slot holds a record while it equals vc_gen */
    uint8_t table, klen; /* klen 0: empty */
    uint8_t key[VC_KEY_MAX];
    uint32_t vlen, cap;
    uint8_t *val;
};

static int vc_table(int table)
{
    return table == DB_ACCOUNTS || table == DB_AGENTS || table == DB_QUEUES || table == DB_CALLS ||
           table == DB_PRIVACY || table == DB_AGGR;
}

/* The slot of n bytes at p, seeded (the caches and the name hints: FNV-1a,
** its high bits folded in); slots: a power of two. */
static size_t slot_of(uint64_t seed, const void *p, size_t n, size_t slots)
{
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const uint8_t *)p)[i]) * 1099511628211ULL;
    return (size_t)(h ^ (h >> 29)) & (slots - 1);
}

static struct vc_slot *vc_at(sb_engine *e, int table, const void *k, size_t kl)
{
    return &e->vc[slot_of((uint64_t)table, k, kl, VC_SLOTS)];
}

/* The key's slot, if txn may use the cache for table and the key fits. */
static struct vc_slot *vc_slot_of(MDB_txn *txn, sb_engine *e, int table, const void *k, size_t kl)
{
    if (!vc_table(table) || kl > VC_KEY_MAX || txn != __atomic_load_n(&e->vc_txn, __ATOMIC_RELAXED))
        return NULL;
    if (!e->vc && !(e->vc = calloc(VC_SLOTS, sizeof *e->vc))) return NULL;
    return vc_at(e, table, k, kl);
}

static int vc_match(const sb_engine *e, const struct vc_slot *s, int table, const void *k,
                    size_t kl)
{
    return s->gen == e->vc_gen && s->table == table && s->klen == kl && memcmp(s->key, k, kl) == 0;
}

/* Keep a copy of what key holds now (a failed allocation just leaves it out). */
static void vc_keep(sb_engine *e, struct vc_slot *s, int table, const void *k, size_t kl,
                    const void *v, size_t vl)
{
    s->klen = 0;
    if (vl > UINT32_MAX) return;
    if (s->cap < vl || !s->val) { /* never NULL: LMDB gives an empty value a pointer too */
        uint8_t *nv = realloc(s->val, vl ? vl : 1);
        if (!nv) return;
        s->val = nv;
        s->cap = (uint32_t)(vl ? vl : 1);
    }
    if (vl) memmove(s->val, v, vl); /* v may be this copy, read and put back */
    s->vlen = (uint32_t)vl;
    s->table = (uint8_t)table;
    s->klen = (uint8_t)kl;
    memcpy(s->key, k, kl);
    s->gen = e->vc_gen;
}

/* After a write to table that did not update the cache: the copy goes (all
** of the table's with k NULL: a write the cache cannot follow). */
static void vc_forget(sb_engine *e, int table, const void *k, size_t kl)
{
    if (!vc_table(table) || !e->vc) return;
    if (!k || kl > VC_KEY_MAX) {
        e->vc_gen++;
        return;
    }
    struct vc_slot *s = vc_at(e, table, k, kl);
    if (vc_match(e, s, table, k, kl)) s->klen = 0;
}

/* Drop everything: the store may have changed under the copies. */
static void vc_flush(sb_engine *e)
{
    e->vc_gen++;
    e->rc_writes++; /* and a range being copied is not kept */
}

static void rc_free(sb_engine *e);

void st_cache_free(sb_engine *e)
{
    rc_free(e);
    if (!e->vc) return;
    for (int i = 0; i < VC_SLOTS; i++)
        free(e->vc[i].val);
    free(e->vc);
    e->vc = NULL;
}

/* st_get through the cache: v is valid until the next call into the store
** (the caller decodes it at once). */
int st_get_hot(MDB_txn *txn, sb_engine *e, int table, const void *k, size_t kl, MDB_val *v)
{
    struct vc_slot *s = vc_slot_of(txn, e, table, k, kl);
    if (s && vc_match(e, s, table, k, kl)) {
        *v = (MDB_val){s->vlen, s->val};
        return 0;
    }
    int rc = st_get(txn, e, table, k, kl, v);
    if (rc == 0 && s) vc_keep(e, s, table, k, kl, v->mv_data, v->mv_size);
    return rc;
}

/* --- the range cache ----------------------------------------------------------
** An offer reads its queue's available agents (a cursor step of about 280
** instructions each, 50 in the benchmark, where routing reads them all),
** each change of an agent's status its memberships (three walks a call
** cycle), and an agent freed the line of each of its queues, mostly empty.
** Write transactions keep such ranges whole, in key order, under the record
** cache's rules (valid in vc_gen: dropped with it), and every put or delete
** of a key in a kept range updates the copy (put_flags, st_del_exact,
** st_iter_del). A range is kept once a walk reads it to its end with nothing
** written meanwhile; one over RC_MAX_BYTES is not. Each change gives the
** copy a new version and is logged (the last ST_EDITS_MAX), for
** st_range_edits. 1,024 slots: with 256, the lines of the ~400 queues of the
** benchmark's agents in ~8 queues each pushed each other out. */
#define RC_SLOTS 1024
#define RC_PLEN 8 /* account and queue (DB_AVAIL, DB_WAITING), account and agent (DB_AGENTQ) */
#define RC_MAX_BYTES (256 << 10)

struct rc_slot {
    uint64_t gen; /* holds the range while it equals vc_gen */
    uint8_t table, pre[RC_PLEN];
    int busy; /* a walk reads it or fills it: writes drop it instead */
    /* Entries in key order: key length (2), value length (4), the key with
    ** its table byte, the value; at[i] where entry i starts. */
    sb_buf data;
    size_t *at, n, cap;
    uint64_t ver; /* this copy's version (e->rc_ver when it was taken or last changed) */
    struct rc_edit {
        uint64_t prev; /* the version the edit was made to */
        st_edit ed;
    } log[ST_EDITS_MAX];
    int nlog; /* edits logged since the copy was taken, oldest first */
};

static int rc_table(int table)
{
    return table == DB_AVAIL || table == DB_AGENTQ || table == DB_WAITING;
}

static struct rc_slot *rc_at(sb_engine *e, int table, const uint8_t *pre)
{
    return &e->rc[slot_of((uint64_t)table, pre, RC_PLEN, RC_SLOTS)];
}

static int rc_holds(const sb_engine *e, const struct rc_slot *s, int table, const uint8_t *pre)
{
    return s->gen == e->vc_gen && s->table == table && memcmp(s->pre, pre, RC_PLEN) == 0;
}

static void rc_entry(const struct rc_slot *s, size_t i, MDB_val *k, MDB_val *v)
{
    const uint8_t *p = (const uint8_t *)s->data.p + s->at[i];
    k->mv_size = ((size_t)p[0] << 8) | p[1];
    v->mv_size = be32(p + 2);
    k->mv_data = (void *)(p + 6);
    v->mv_data = (void *)(p + 6 + k->mv_size);
}

static int rc_append(sb_buf *b, const MDB_val *k, const MDB_val *v)
{
    uint8_t h[6] = {(uint8_t)(k->mv_size >> 8), (uint8_t)k->mv_size};
    if (v->mv_size > UINT32_MAX) return SB_ENOMEM;
    put_be32(h + 2, (uint32_t)v->mv_size);
    return buf_put(b, h, 6) || buf_put(b, k->mv_data, k->mv_size) ||
           (v->mv_size && buf_put(b, v->mv_data, v->mv_size));
}

static int rc_grow(struct rc_slot *s)
{
    size_t cap = s->cap ? s->cap * 2 : 64, *at = realloc(s->at, cap * sizeof *at);
    if (!at) return SB_ENOMEM;
    s->at = at;
    s->cap = cap;
    return 0;
}

static int rc_index(struct rc_slot *s)
{
    s->n = 0;
    for (size_t o = 0; o < s->data.len;) {
        if (s->n == s->cap && rc_grow(s)) return SB_ENOMEM;
        const uint8_t *p = (const uint8_t *)s->data.p + o;
        s->at[s->n++] = o;
        o += 6 + (((size_t)p[0] << 8) | p[1]) + be32(p + 2);
    }
    return 0;
}

/* LMDB's order of keys (mdb_cmp_memn): bytes, then the shorter first. */
int st_key_cmp(const MDB_val *a, const MDB_val *b)
{
    size_t n = a->mv_size < b->mv_size ? a->mv_size : b->mv_size;
    int c = memcmp(a->mv_data, b->mv_data, n);
    return c ? c : (a->mv_size > b->mv_size) - (a->mv_size < b->mv_size);
}

/* A write of key (with its table byte) in table: the kept range it falls
** in, if any (and a range being copied is not kept). */
static struct rc_slot *rc_written(sb_engine *e, int table, const MDB_val *key)
{
    if (!rc_table(table)) return NULL;
    e->rc_writes++;
    if (!e->rc || key->mv_size < 1 + RC_PLEN) return NULL;
    const uint8_t *pre = (const uint8_t *)key->mv_data + 1;
    struct rc_slot *s = rc_at(e, table, pre);
    return rc_holds(e, s, table, pre) ? s : NULL;
}

/* Log an edit of the copy s, which gets a new version. */
static void rc_log(sb_engine *e, struct rc_slot *s, int op, size_t at)
{
    if (s->nlog == ST_EDITS_MAX) {
        memmove(s->log, s->log + 1, (ST_EDITS_MAX - 1) * sizeof *s->log);
        s->nlog--;
    }
    s->log[s->nlog++] = (struct rc_edit){s->ver, {(uint32_t)at, (uint8_t)op}};
    s->ver = ++e->rc_ver;
}

/* A put (v) or a delete (v NULL) of key (with its table byte) in table. */
static void rc_write(MDB_txn *txn, sb_engine *e, int table, const MDB_val *key, const MDB_val *v)
{
    struct rc_slot *s = rc_written(e, table, key);
    if (!s) return;
    if (s->busy || txn != __atomic_load_n(&e->vc_txn, __ATOMIC_RELAXED)) {
        s->gen = 0;
        return;
    }
    size_t lo = 0, hi = s->n;
    while (lo < hi) { /* the first entry not before key */
        size_t mid = lo + (hi - lo) / 2;
        MDB_val ek, ev;
        rc_entry(s, mid, &ek, &ev);
        if (st_key_cmp(&ek, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    MDB_val ek = {0}, ev;
    if (lo < s->n) rc_entry(s, lo, &ek, &ev);
    int found = lo < s->n && st_key_cmp(&ek, key) == 0;
    if (!v && !found) return;
    /* In place: the entries after it move, and their offsets with them. */
    size_t from = lo < s->n ? s->at[lo] : s->data.len;
    size_t had = found ? 6 + ek.mv_size + ev.mv_size : 0;
    size_t now = v ? 6 + key->mv_size + v->mv_size : 0;
    if ((v && v->mv_size > UINT32_MAX) || s->data.len - had + now > RC_MAX_BYTES ||
        (now > had && buf_reserve(&s->data, now - had)) ||
        (v && !found && s->n == s->cap && rc_grow(s))) {
        s->gen = 0;
        return;
    }
    uint8_t *p = (uint8_t *)s->data.p + from;
    memmove(p + now, p + had, s->data.len - from - had);
    s->data.len = s->data.len - had + now;
    if (v) {
        p[0] = (uint8_t)(key->mv_size >> 8);
        p[1] = (uint8_t)key->mv_size;
        put_be32(p + 2, (uint32_t)v->mv_size);
        memcpy(p + 6, key->mv_data, key->mv_size);
        if (v->mv_size) memcpy(p + 6 + key->mv_size, v->mv_data, v->mv_size);
    }
    if (v && !found) { /* a new entry at lo */
        memmove(s->at + lo + 1, s->at + lo, (s->n - lo) * sizeof *s->at);
        s->at[lo] = from;
        s->n++;
    } else if (!v) { /* entry lo gone: the next is entry lo now */
        memmove(s->at + lo, s->at + lo + 1, (s->n - lo - 1) * sizeof *s->at);
        s->n--;
    }
    for (size_t i = v ? lo + 1 : lo; i < s->n; i++)
        s->at[i] = s->at[i] - had + now;
    rc_log(e, s, !v ? ST_EDIT_DEL : found ? ST_EDIT_SET : ST_EDIT_INS, lo);
}

/* The copy of table's range under prefix, if txn may read it and it is kept. */
static struct rc_slot *rc_kept(MDB_txn *txn, sb_engine *e, int table, const void *prefix)
{
    if (!rc_table(table) || !e->rc || txn != __atomic_load_n(&e->vc_txn, __ATOMIC_RELAXED))
        return NULL;
    struct rc_slot *s = rc_at(e, table, prefix);
    return rc_holds(e, s, table, prefix) ? s : NULL;
}

uint64_t st_range_version(MDB_txn *txn, sb_engine *e, int table, const void *prefix)
{
    struct rc_slot *s = rc_kept(txn, e, table, prefix);
    return s ? s->ver : 0;
}

int st_range_edits(MDB_txn *txn, sb_engine *e, int table, const void *prefix, uint64_t since,
                   st_edit *out, uint64_t *now, size_t *n)
{
    struct rc_slot *s = rc_kept(txn, e, table, prefix);
    if (!s || !since) return -1;
    int from = s->nlog;
    if (since != s->ver) /* the edit made to version since, and those after it */
        for (from = s->nlog - 1; from >= 0 && s->log[from].prev != since; from--)
            ;
    if (from < 0) return -1;
    for (int i = from; i < s->nlog; i++)
        out[i - from] = s->log[i].ed;
    *now = s->ver;
    *n = s->n;
    return s->nlog - from;
}

int st_range_entry(MDB_txn *txn, sb_engine *e, int table, const void *prefix, size_t i, MDB_val *k,
                   MDB_val *v)
{
    struct rc_slot *s = rc_kept(txn, e, table, prefix);
    if (!s || i >= s->n) return -1;
    rc_entry(s, i, k, v);
    return 0;
}

void st_cache_forget(sb_engine *e, int table)
{
    if (rc_table(table)) {
        vc_flush(e); /* which stops a range being copied too */
        return;
    }
    vc_forget(e, table, NULL, 0);
}

static void rc_free(sb_engine *e)
{
    if (!e->rc) return;
    for (int i = 0; i < RC_SLOTS; i++) {
        buf_free(&e->rc[i].data);
        free(e->rc[i].at);
    }
    free(e->rc);
    e->rc = NULL;
}

static int put_flags(MDB_txn *txn, sb_engine *e, int table, const void *k, size_t kl, const void *v,
                     size_t vl, unsigned flags)
{
    uint8_t buf[TB_KEY_MAX];
    if (kl >= TB_KEY_MAX) return MDB_BAD_VALSIZE;
    MDB_val key = {tb_key(buf, table, k, kl), buf}, val = {vl, (void *)v};
    if (e->undo_on) {
        int rc = undo_note(txn, e, table, &key);
        if (rc) return rc;
    }
    int rc = mdb_put(txn, e->dbi[table], &key, &val, flags);
    if (rc == 0) e->txn_dirty = 1;
    if (rc_table(table)) {
        if (rc == 0)
            rc_write(txn, e, table, &key, &val);
        else
            st_cache_forget(e, table);
    }
    if (vc_table(table)) {
        struct vc_slot *s = rc == 0 ? vc_slot_of(txn, e, table, k, kl) : NULL;
        if (s)
            vc_keep(e, s, table, k, kl, v, vl);
        else
            vc_forget(e, table, k, kl);
    }
    return rc;
}

int st_put(MDB_txn *txn, sb_engine *e, int table, const void *k, size_t kl, const void *v,
           size_t vl)
{
    return put_flags(txn, e, table, k, kl, v, vl, 0);
}

int st_put_last(MDB_txn *txn, sb_engine *e, int table, const void *k, size_t kl, const void *v,
                size_t vl)
{
    int rc = put_flags(txn, e, table, k, kl, v, vl, MDB_APPEND);
    return rc == MDB_KEYEXIST ? put_flags(txn, e, table, k, kl, v, vl, 0) : rc;
}

int st_put_new(MDB_txn *txn, sb_engine *e, int table, const void *k, size_t kl, const void *v,
               size_t vl)
{
    return put_flags(txn, e, table, k, kl, v, vl, MDB_NOOVERWRITE);
}

int st_del_exact(MDB_txn *txn, sb_engine *e, int table, const void *k, size_t kl)
{
    uint8_t buf[TB_KEY_MAX];
    if (kl >= TB_KEY_MAX) return MDB_BAD_VALSIZE;
    MDB_val key = {tb_key(buf, table, k, kl), buf};
    if (e->undo_on) {
        int rc = undo_note(txn, e, table, &key);
        if (rc) return rc;
    }
    int rc = mdb_del(txn, e->dbi[table], &key, NULL);
    if (rc == 0) e->txn_dirty = 1;
    vc_forget(e, table, k, kl);
    if (rc == 0 || rc == MDB_NOTFOUND)
        rc_write(txn, e, table, &key, NULL);
    else
        st_cache_forget(e, table);
    return rc;
}

int st_del(MDB_txn *txn, sb_engine *e, int table, const void *k, size_t kl)
{
    int rc = st_del_exact(txn, e, table, k, kl);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Position it on the current record if it still has the prefix. */
static int it_check(st_iter *it, int rc)
{
    if (rc == 0 && it->k.mv_size >= it->plen && memcmp(it->k.mv_data, it->pre, it->plen) == 0) {
        it->key = (const uint8_t *)it->k.mv_data + 1;
        it->klen = it->k.mv_size - 1;
        return 0;
    }
    it->key = NULL;
    it->klen = 0;
    return rc == 0 || rc == MDB_NOTFOUND ? MDB_NOTFOUND : rc;
}

int st_iter_open(st_iter *it, MDB_txn *txn, sb_engine *e, int table, const void *prefix,
                 size_t plen)
{
    memset(it, 0, sizeof *it);
    if (plen + 1 > sizeof it->pre) return MDB_BAD_VALSIZE;
    it->plen = tb_key(it->pre, table, prefix, plen);
    it->e = e;
    int rc = mdb_cursor_open(txn, e->dbi[table], &it->c);
    if (rc) {
        it->c = NULL;
        return rc;
    }
    it->k = (MDB_val){it->plen, it->pre};
    return it_check(it, mdb_cursor_get(it->c, &it->k, &it->v, MDB_SET_RANGE));
}

/* st_iter_hot reading the copy: stand on entry ri. */
static int rc_step(st_iter *it)
{
    if (it->ri >= it->rs->n) {
        it->key = NULL;
        it->klen = 0;
        return MDB_NOTFOUND;
    }
    rc_entry(it->rs, it->ri, &it->k, &it->v);
    it->key = (const uint8_t *)it->k.mv_data + 1;
    it->klen = it->k.mv_size - 1;
    return 0;
}

/* st_iter_hot taking a copy as the cursor walks: the entry it stands on
** (rc 0), or the walk's end, where the copy is kept if it is whole and
** nothing was written to the table meanwhile. */
static void rc_take(st_iter *it, int rc)
{
    struct rc_slot *s = it->build;
    if (!s) return;
    if (rc == 0 && s->data.len < RC_MAX_BYTES && !rc_append(&s->data, &it->k, &it->v)) return;
    if (rc == MDB_NOTFOUND && it->e->rc_writes == it->build_writes && rc_index(s) == 0) {
        s->gen = it->e->vc_gen;
        s->ver = ++it->e->rc_ver;
        s->nlog = 0;
    }
    s->busy--;
    it->build = NULL;
}

int st_iter_hot(st_iter *it, MDB_txn *txn, sb_engine *e, int table, const void *prefix, size_t plen)
{
    struct rc_slot *s = NULL;
    if (rc_table(table) && plen == RC_PLEN &&
        txn == __atomic_load_n(&e->vc_txn, __ATOMIC_RELAXED) &&
        (e->rc || (e->rc = calloc(RC_SLOTS, sizeof *e->rc))))
        s = rc_at(e, table, prefix);
    if (s && !s->busy && rc_holds(e, s, table, prefix)) {
        memset(it, 0, sizeof *it);
        it->e = e;
        it->plen = tb_key(it->pre, table, prefix, plen);
        it->rs = s;
        s->busy++;
        return rc_step(it);
    }
    int rc = st_iter_open(it, txn, e, table, prefix, plen);
    if (s && !s->busy && (rc == 0 || rc == MDB_NOTFOUND)) {
        s->gen = 0;
        s->table = (uint8_t)table;
        memcpy(s->pre, prefix, RC_PLEN);
        s->data.len = 0;
        s->busy++;
        it->build = s;
        it->build_writes = e->rc_writes;
        rc_take(it, rc);
    }
    return rc;
}

int st_iter_next(st_iter *it)
{
    if (!it->key) return MDB_NOTFOUND;
    if (it->rs) {
        it->ri++;
        return rc_step(it);
    }
    int rc = it_check(it, mdb_cursor_get(it->c, &it->k, &it->v, MDB_NEXT));
    if (it->build) rc_take(it, rc);
    return rc;
}

size_t st_kv_key(uint8_t *k, uint32_t acct, const char *policy, const char *key, size_t klen)
{
    size_t pl = strlen(policy);
    put_be32(k, acct);
    memcpy(k + 4, policy, pl);
    k[4 + pl] = 0;
    if (klen) memcpy(k + 5 + pl, key, klen);
    return 5 + pl + klen;
}

int st_kv_drop(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *policy, size_t *dropped)
{
    uint8_t k[5 + SB_NAME_MAX];
    size_t n = 0;
    if (dropped) *dropped = 0;
    if (strlen(policy) > SB_NAME_MAX) return SB_EINVAL;
    st_iter it;
    int rc;
    for (rc = st_iter_open(&it, txn, e, DB_KV, k, st_kv_key(k, acct, policy, "", 0)); rc == 0;
         rc = st_iter_del(&it))
        n++;
    st_iter_close(&it);
    if (rc != MDB_NOTFOUND) return rc;
    if (dropped) *dropped = n;
    return 0;
}

int st_iter_del(st_iter *it)
{
    if (!it->key) return MDB_NOTFOUND;
    if (it->rs || it->build) return SB_EINVAL; /* st_iter_hot's walks only read */
    int rc = it->e->undo_on ? undo_add(it->e, it->pre[0] - 1, &it->k, &it->v) : 0;
    if (!rc)
        vc_forget(it->e, it->pre[0] - 1, (const uint8_t *)it->k.mv_data + 1, it->k.mv_size - 1);
    if (!rc) { /* its kept range goes: the delete may yet fail */
        struct rc_slot *s = rc_written(it->e, it->pre[0] - 1, &it->k);
        if (s) s->gen = 0;
    }
    if (!rc) rc = mdb_cursor_del(it->c, 0);
    if (rc) return rc;
    it->e->txn_dirty = 1;
    /* After a delete the cursor stands on the next record, if any. */
    rc = mdb_cursor_get(it->c, &it->k, &it->v, MDB_GET_CURRENT);
    if (rc == MDB_NOTFOUND || rc == EINVAL) {
        it->k = (MDB_val){it->plen, it->pre};
        rc = mdb_cursor_get(it->c, &it->k, &it->v, MDB_SET_RANGE);
    }
    return it_check(it, rc);
}

/* st_iter_open, then the cursor to the first key at or after `at` (when
** atlen is not 0): MDB_SET_RANGE's code, *exact when that key is `at`. */
static int iter_seek(st_iter *it, MDB_txn *txn, sb_engine *e, int table, const void *prefix,
                     size_t plen, const uint8_t *at, size_t atlen, int *exact)
{
    *exact = 0;
    int rc = st_iter_open(it, txn, e, table, prefix, plen);
    if (rc || !atlen) return rc;
    uint8_t kb[TB_KEY_MAX];
    if (atlen >= TB_KEY_MAX) return MDB_BAD_VALSIZE;
    size_t kl = tb_key(kb, table, at, atlen);
    it->k = (MDB_val){kl, kb};
    rc = mdb_cursor_get(it->c, &it->k, &it->v, MDB_SET_RANGE);
    *exact = rc == 0 && it->k.mv_size == kl && !memcmp(it->k.mv_data, kb, kl);
    return rc;
}

int st_iter_after(st_iter *it, MDB_txn *txn, sb_engine *e, int table, const void *prefix,
                  size_t plen, const uint8_t *after, size_t afterlen)
{
    int exact, rc = iter_seek(it, txn, e, table, prefix, plen, after, afterlen, &exact);
    if (!afterlen || (rc && !it->c)) return rc;
    if (exact) rc = mdb_cursor_get(it->c, &it->k, &it->v, MDB_NEXT);
    return it_check(it, rc);
}

int st_iter_floor(st_iter *it, MDB_txn *txn, sb_engine *e, int table, const void *prefix,
                  size_t plen, const uint8_t *at, size_t atlen)
{
    int exact, rc = iter_seek(it, txn, e, table, prefix, plen, at, atlen, &exact);
    if (!atlen || (rc && !it->c)) return rc;
    if (exact) return it_check(it, 0);
    if (rc == 0)
        rc = mdb_cursor_get(it->c, &it->k, &it->v, MDB_PREV);
    else if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(it->c, &it->k, &it->v, MDB_LAST);
    if (rc == 0 && it_check(it, 0) == 0) return 0;
    if (rc && rc != MDB_NOTFOUND) return it_check(it, rc);
    it->k = (MDB_val){it->plen, it->pre}; /* nothing at or before `at`: the range's first */
    return it_check(it, mdb_cursor_get(it->c, &it->k, &it->v, MDB_SET_RANGE));
}

void st_iter_close(st_iter *it)
{
    if (it->c) mdb_cursor_close(it->c);
    it->c = NULL;
    if (it->rs) it->rs->busy--;
    it->rs = NULL;
    if (it->build) it->build->busy--; /* a walk left before its end: not kept */
    it->build = NULL;
}

/* --- names ------------------------------------------------------------------- */
static size_t name_key(uint8_t *k, int kind, uint32_t acct, const char *id)
{
    size_t n = strlen(id);
    k[0] = (uint8_t)kind;
    put_be32(k + 1, acct);
    memcpy(k + 5, id, n);
    return 5 + n;
}

int st_name_get(MDB_txn *txn, sb_engine *e, int kind, uint32_t acct, const char *id, uint32_t *num)
{
    uint8_t k[5 + SB_NAME_MAX + 1];
    MDB_val v;
    *num = 0;
    int rc = st_get(txn, e, DB_NAMES, k, name_key(k, kind, acct, id), &v);
    if (rc) return rc;
    if (v.mv_size != 4) return SB_ESTORE;
    *num = be32(v.mv_data);
    return 0;
}

int st_name_put(MDB_txn *txn, sb_engine *e, int kind, uint32_t acct, const char *id, uint32_t num)
{
    uint8_t k[5 + SB_NAME_MAX + 1], v[4];
    put_be32(v, num);
    return st_put(txn, e, DB_NAMES, k, name_key(k, kind, acct, id), v, 4);
}

int st_name_del(MDB_txn *txn, sb_engine *e, int kind, uint32_t acct, const char *id)
{
    uint8_t k[5 + SB_NAME_MAX + 1];
    return st_del(txn, e, DB_NAMES, k, name_key(k, kind, acct, id));
}

static size_t gone_key(uint8_t k[9], int kind, uint32_t acct, uint32_t num)
{
    k[0] = (uint8_t)kind;
    put_be32(k + 1, acct);
    put_be32(k + 5, num);
    return 9;
}

int st_gone_put(MDB_txn *txn, sb_engine *e, int kind, uint32_t acct, uint32_t num, const char *id)
{
    uint8_t k[9];
    return st_put(txn, e, DB_NAMES, k, gone_key(k, kind, acct, num), id, strlen(id));
}

int st_gone_id(MDB_txn *txn, sb_engine *e, int kind, uint32_t acct, uint32_t num, char *id)
{
    uint8_t k[9];
    MDB_val v;
    int rc = st_get(txn, e, DB_NAMES, k, gone_key(k, kind, acct, num), &v);
    if (rc) return rc;
    if (v.mv_size > SB_ID_MAX) return SB_ESTORE;
    memcpy(id, v.mv_data, v.mv_size);
    id[v.mv_size] = 0;
    return 0;
}

/* --- id -> number hints ----------------------------------------------------------
** Every event names its account, and agents and queues by id; resolving an id
** through the names table costs a lookup each time. Numbers are never reused
** (counters only grow), so a remembered number is safe to try: the record it
** names either is gone or carries the same id, which the caller checks. Other
** processes may delete and re-create: a stale hint just misses. */
#define HINTS 4096
#define HINT_ID 47

struct name_hint {
    uint32_t acct, num;
    uint8_t kind, len;
    char id[HINT_ID];
};

static size_t hint_slot(int kind, uint32_t acct, const char *id, size_t len)
{
    return slot_of((uint64_t)kind ^ ((uint64_t)acct << 8), id, len, HINTS);
}

static int hint_get(sb_engine *e, int kind, uint32_t acct, const char *id, uint32_t *num)
{
    size_t len = strlen(id);
    int hit = 0;
    if (len > HINT_ID || !e->hints) return 0;
    pthread_mutex_lock(&e->hints_mu);
    struct name_hint *h = &e->hints[hint_slot(kind, acct, id, len)];
    if (h->kind == kind && h->acct == acct && h->len == len && memcmp(h->id, id, len) == 0) {
        *num = h->num;
        hit = 1;
    }
    pthread_mutex_unlock(&e->hints_mu);
    return hit;
}

static void hint_put(sb_engine *e, int kind, uint32_t acct, const char *id, uint32_t num)
{
    size_t len = strlen(id);
    if (len > HINT_ID) return;
    pthread_mutex_lock(&e->hints_mu);
    if (!e->hints) e->hints = calloc(HINTS, sizeof *e->hints);
    if (e->hints) {
        struct name_hint *h = &e->hints[hint_slot(kind, acct, id, len)];
        h->kind = (uint8_t)kind;
        h->acct = acct;
        h->num = num;
        h->len = (uint8_t)len;
        memcpy(h->id, id, len);
    }
    pthread_mutex_unlock(&e->hints_mu);
}

/* --- records ----------------------------------------------------------------- */
static int put_encoded(MDB_txn *txn, sb_engine *e, int db, const void *k, size_t kl)
{
    if (e->wb.err) return SB_ENOMEM;
    return st_put(txn, e, db, k, kl, e->wb.b.p, e->wb.b.len);
}

int st_account_load(MDB_txn *txn, sb_engine *e, uint32_t num, acct_rec *out)
{
    uint8_t k[4];
    MDB_val v;
    int rc = st_get_hot(txn, e, DB_ACCOUNTS, k, key_acct(k, num), &v);
    if (rc == MDB_NOTFOUND) return SB_ENOTFOUND;
    if (rc) return rc;
    return dec_account(v.mv_data, v.mv_size, out);
}

/* A record by its id: through the name hint when it still names the record
** of that id, else through the names table (and the hint is refreshed).
** load fills out and returns 0; idof gives the loaded record's id. */
typedef int (*by_num_fn)(MDB_txn *txn, sb_engine *e, uint32_t acct, uint32_t num, void *out);

static int by_id(MDB_txn *txn, sb_engine *e, int kind, uint32_t acct, const char *id,
                 by_num_fn load, const char *(*idof)(const void *out), void *out)
{
    uint32_t num;
    if (!id_valid(id)) return SB_ENOTFOUND;
    if (hint_get(e, kind, acct, id, &num) && load(txn, e, acct, num, out) == 0 &&
        strcmp(idof(out), id) == 0)
        return 0;
    int rc = st_name_get(txn, e, kind, acct, id, &num);
    if (rc == MDB_NOTFOUND) return SB_ENOTFOUND;
    if (rc) return rc;
    if ((rc = load(txn, e, acct, num, out)) == 0) hint_put(e, kind, acct, id, num);
    return rc;
}

static int account_by_num(MDB_txn *txn, sb_engine *e, uint32_t acct, uint32_t num, void *out)
{
    return st_account_load(txn, e, num, out);
}

static const char *account_idof(const void *out)
{
    return ((const acct_rec *)out)->id;
}

int st_account_by_id(MDB_txn *txn, sb_engine *e, const char *id, acct_rec *out)
{
    return by_id(txn, e, NK_ACCOUNT, 0, id, account_by_num, account_idof, out);
}

int st_account_save(MDB_txn *txn, sb_engine *e, const acct_rec *a)
{
    uint8_t k[4];
    wb_reset(&e->wb);
    enc_account(&e->wb, a);
    return put_encoded(txn, e, DB_ACCOUNTS, k, key_acct(k, a->num));
}

int st_agent_load(MDB_txn *txn, sb_engine *e, uint32_t acct, uint32_t num, agent_rec *out)
{
    uint8_t k[8];
    MDB_val v;
    int rc = st_get_hot(txn, e, DB_AGENTS, k, key_acct2(k, acct, num), &v);
    if (rc == MDB_NOTFOUND) return SB_ENOTFOUND;
    if (rc) return rc;
    return dec_agent(v.mv_data, v.mv_size, out);
}

const char *st_agent_id_of(MDB_txn *txn, sb_engine *e, uint32_t acct, uint32_t num, agent_rec *a)
{
    if (st_agent_load(txn, e, acct, num, a) == 0) return a->id;
    a->num = num;
    if (st_gone_id(txn, e, NK_AGENT_GONE, acct, num, a->id)) a->id[0] = 0;
    return a->id;
}

static int agent_by_num(MDB_txn *txn, sb_engine *e, uint32_t acct, uint32_t num, void *out)
{
    return st_agent_load(txn, e, acct, num, out);
}

static const char *agent_idof(const void *out)
{
    return ((const agent_rec *)out)->id;
}

int st_agent_by_id(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *id, agent_rec *out)
{
    return by_id(txn, e, NK_AGENT, acct, id, agent_by_num, agent_idof, out);
}

int st_agent_save(MDB_txn *txn, sb_engine *e, uint32_t acct, const agent_rec *a)
{
    uint8_t k[8];
    wb_reset(&e->wb);
    enc_agent(&e->wb, a);
    return put_encoded(txn, e, DB_AGENTS, k, key_acct2(k, acct, a->num));
}

int st_doc_load(MDB_txn *txn, sb_engine *e, int table, uint32_t acct, uint32_t num, sb_buf *out)
{
    uint8_t k[8];
    MDB_val v;
    out->len = 0;
    int rc = st_get(txn, e, table, k, key_acct2(k, acct, num), &v);
    if (rc == MDB_NOTFOUND) return buf_put(out, "", 0) ? SB_ENOMEM : 0;
    if (rc) return rc;
    return buf_put(out, v.mv_data, v.mv_size) ? SB_ENOMEM : 0;
}

int st_doc_save(MDB_txn *txn, sb_engine *e, int table, uint32_t acct, uint32_t num, const char *doc,
                size_t len)
{
    uint8_t k[8];
    return st_put(txn, e, table, k, key_acct2(k, acct, num), doc ? doc : "", len);
}

int st_agent_doc_load(MDB_txn *txn, sb_engine *e, uint32_t acct, uint32_t num, sb_buf *out)
{
    return st_doc_load(txn, e, DB_AGENTDOCS, acct, num, out);
}

int st_agent_doc_save(MDB_txn *txn, sb_engine *e, uint32_t acct, uint32_t num, const sb_buf *doc)
{
    return st_doc_save(txn, e, DB_AGENTDOCS, acct, num, doc->p, doc->len);
}

int st_queue_load(MDB_txn *txn, sb_engine *e, uint32_t acct, uint32_t num, queue_rec *out)
{
    uint8_t k[8];
    MDB_val v;
    int rc = st_get_hot(txn, e, DB_QUEUES, k, key_acct2(k, acct, num), &v);
    if (rc == MDB_NOTFOUND) return SB_ENOTFOUND;
    if (rc) return rc;
    return dec_queue(v.mv_data, v.mv_size, out);
}

static int queue_by_num(MDB_txn *txn, sb_engine *e, uint32_t acct, uint32_t num, void *out)
{
    return st_queue_load(txn, e, acct, num, out);
}

static const char *queue_idof(const void *out)
{
    return ((const queue_rec *)out)->id;
}

int st_queue_by_id(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *id, queue_rec *out)
{
    return by_id(txn, e, NK_QUEUE, acct, id, queue_by_num, queue_idof, out);
}

int st_queue_save(MDB_txn *txn, sb_engine *e, uint32_t acct, const queue_rec *q)
{
    uint8_t k[8];
    wb_reset(&e->wb);
    enc_queue(&e->wb, q);
    return put_encoded(txn, e, DB_QUEUES, k, key_acct2(k, acct, q->num));
}

static size_t call_key(uint8_t *k, uint32_t acct, const char *id)
{
    size_t n = strlen(id);
    put_be32(k, acct);
    memcpy(k + 4, id, n);
    return 4 + n;
}

int st_call_load(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *id, call_rec *out)
{
    uint8_t k[4 + SB_ID_MAX];
    MDB_val v;
    if (!id_valid(id)) return SB_ENOTFOUND;
    int rc = st_get_hot(txn, e, DB_CALLS, k, call_key(k, acct, id), &v);
    if (rc == MDB_NOTFOUND) return SB_ENOTFOUND;
    if (rc) return rc;
    return dec_call(v.mv_data, v.mv_size, out);
}

int st_call_exists(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *id)
{
    uint8_t k[4 + SB_ID_MAX];
    MDB_val v;
    if (!id_valid(id)) return 0;
    return st_get(txn, e, DB_CALLS, k, call_key(k, acct, id), &v) == 0;
}

int st_call_save(MDB_txn *txn, sb_engine *e, uint32_t acct, const call_rec *c)
{
    uint8_t k[4 + SB_ID_MAX];
    wb_reset(&e->wb);
    enc_call(&e->wb, c);
    return put_encoded(txn, e, DB_CALLS, k, call_key(k, acct, c->id));
}

int st_call_del(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *id)
{
    uint8_t k[4 + SB_ID_MAX];
    return st_del(txn, e, DB_CALLS, k, call_key(k, acct, id));
}

int st_meta_u64(MDB_txn *txn, sb_engine *e, const char *key, uint64_t *v)
{
    MDB_val val;
    *v = 0;
    int rc = st_get(txn, e, DB_META, key, strlen(key), &val);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return rc;
    if (val.mv_size != 8) return SB_ESTORE;
    *v = be64(val.mv_data);
    return 0;
}

int st_meta_put_u64(MDB_txn *txn, sb_engine *e, const char *key, uint64_t v)
{
    uint8_t b[8];
    put_be64(b, v);
    return st_put(txn, e, DB_META, key, strlen(key), b, 8);
}

/* --- errors -------------------------------------------------------------------- */
int eng_mdb_err(sb_result *res, int rc, const char *what)
{
    if (IS_SB_ERR(rc)) { /* already ours */
        if (res && !sb_result_code(res))
            return res_err(res, rc, NULL, "%s: %s", what, sb_strerror(rc) + 0);
        return rc;
    }
    switch (rc) {
    case ENG_EFORKED:
        return res_err(res, SB_ESTATE, NULL,
                       "%s: this engine was opened by another process (before fork()): open one "
                       "in this process",
                       what);
    case ENG_ECALLBACK:
        return res_err(res, SB_ESTATE, NULL,
                       "%s: called from the engine's clock or log function, which may run "
                       "inside the write transaction of the call that called it: this would "
                       "wait for that transaction for ever; make it once that call has "
                       "returned",
                       what);
    case ENG_EOTHERBATCH:
        return res_err(res, SB_ESTATE, NULL,
                       "%s: this thread has a batch open on another engine of this data "
                       "directory, which holds its one writer: end that batch (sb_batch_end) "
                       "first, or write through that engine",
                       what);
    case MDB_MAP_FULL:
        return res_err(res, SB_EFULL, NULL,
                       "%s: storage full (%s); nothing was written: raise map_max and restart, "
                       "or make room with a sweep, an erasure request or deletes",
                       what, mdb_strerror(rc));
    case ENOSPC:
    case EDQUOT:
    case EFBIG: /* past the file size the process may write (RLIMIT_FSIZE) */
        return res_err(res, SB_EFULL, NULL,
                       "%s: storage full (%s); nothing was written: free space on the disk of "
                       "the data directory (or raise its quota or file size limit); until then "
                       "nothing that grows the data file can be written, not even the end of a "
                       "call in progress",
                       what, mdb_strerror(rc));
    case ENOMEM:
        return res_err(res, SB_ENOMEM, NULL, "%s: out of memory", what);
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
        return res_err(res, SB_ESTORE, NULL, "%s: database corrupt (%s): " ENG_RESTORE_HINT, what,
                       mdb_strerror(rc));
    default:
        return res_err(res, SB_ESTORE, NULL, "%s: %s", what, mdb_strerror(rc));
    }
}

/* --- map growth ------------------------------------------------------------------- */

/* The reserve past map_max (see grow_map). */
static size_t map_reserve(size_t max)
{
    return max / 16 < ((size_t)1 << 20) ? ((size_t)1 << 20) : max / 16;
}

/* How far below map_max the pages in use must be for a write that may not
** use the reserve, once the map has grown into it (see past_max). */
static size_t reserve_margin(size_t max)
{
    size_t margin = max / 16 > ((size_t)256 << 10) ? max / 16 : ((size_t)256 << 10);
    return margin > max / 2 ? max / 2 : margin;
}

/* Grow the map (and reserve the disk blocks first, so a full disk shows as
** an error here rather than as SIGBUS on a write through the map).
**
** LMDB copies pages even to delete, so a map filled to map_max could not
** free anything. Writes that free space (deletes) may therefore grow the
** map past map_max into a reserve of map_max/16 (at least 1 MiB); so may
** the events of calls already taken (a hangup writes the call's record)
** and their timers, or a full map would leave them ringing and connected for good. Other
** writes (a new call, a new agent) stop at map_max, and reuse the pages the
** deletes freed. */
static int grow_map(sb_engine *e, size_t had, int freeing)
{
    size_t limit = effective_map_max(&e->cfg), max = limit;
    if (freeing) max += map_reserve(limit);
    int rc = 0;
    pthread_rwlock_wrlock(&e->sh->maplock);
    if (e->sh->map_size == had) {
        if (had >= max) {
            rc = MDB_MAP_FULL;
        } else {
            size_t want = had * 2 > max ? max : had * 2;
            want = (want + 4095) & ~(size_t)4095;
            int fd = -1;
            mdb_env_get_fd(e->env, &fd);
            /* The file takes its new size on disk now. A disk without room
            ** for the double takes what it has room for, in halving steps
            ** down to 256 KiB more: writes stop when the disk is full, not
            ** when it is half full. */
            int err;
            while ((err = posix_fallocate(fd, 0, (off_t)want)) == ENOSPC &&
                   want - had > ((size_t)256 << 10))
                want = (had + (want - had) / 2 + 4095) & ~(size_t)4095;
            if (err) {
                rc = err == ENOSPC ? ENOSPC : err;
            } else if ((rc = mdb_env_set_mapsize(e->env, want)) == 0) {
                __atomic_store_n(&e->sh->map_size, want,
                                 __ATOMIC_RELAXED); /* past_max reads it unlocked */
                char sz[32], lim[32], top[32], mg[32];
                /* Past map_max it is the reserve, which only a freeing write
                ** takes: said at warn, with what it means for new calls, or
                ** the line would read as the last write of any kind, a new
                ** call, having grown the map past its limit. */
                if (want > limit)
                    sb_log(e, SB_LOG_WARN,
                           "storage map grown to %s, past map_max (%s) into its reserve (to %s "
                           "at most) for a write that ends calls in progress or makes room (an "
                           "event or timer of a call taken, a delete, a sweep); new calls and "
                           "documents go in only while what is in use is %s or more below "
                           "map_max",
                           eng_size_str(sz, sizeof sz, want), eng_size_str(lim, sizeof lim, limit),
                           eng_size_str(top, sizeof top, max),
                           eng_size_str(mg, sizeof mg, reserve_margin(limit)));
                else
                    sb_log(e, SB_LOG_INFO, "storage map grown to %s",
                           eng_size_str(sz, sizeof sz, want));
            }
        }
    }
    pthread_rwlock_unlock(&e->sh->maplock);
    return rc;
}

static int adopt_map(sb_engine *e)
{
    pthread_rwlock_wrlock(&e->sh->maplock);
    int rc = mdb_env_set_mapsize(e->env, 0);
    MDB_envinfo info;
    if (!rc && !mdb_env_info(e->env, &info))
        __atomic_store_n(&e->sh->map_size, info.me_mapsize, __ATOMIC_RELAXED);
    pthread_rwlock_unlock(&e->sh->maplock);
    return rc;
}

/* Is a batch open, and the calling thread its owner? */
static int batch_mine(sb_engine *e)
{
    return __atomic_load_n(&e->batch_on, __ATOMIC_ACQUIRE) == 1 &&
           pthread_equal(e->batch_owner, pthread_self());
}

static int batch_commit(sb_engine *e);

/* The batch's transaction ends (committed or aborted): the environment's
** writer is free again. */
static void batch_owner_clear(sb_engine *e)
{
    if (__atomic_load_n(&e->sh->batch_engine, __ATOMIC_ACQUIRE) == (const void *)e)
        __atomic_store_n(&e->sh->batch_engine, NULL, __ATOMIC_RELEASE);
}

void eng_batch_settle(sb_engine *e)
{
    if (batch_mine(e) && e->batch_txn) batch_commit(e);
}

static void zero_ahead(sb_engine *e);

/* The first write of this process on a directory of an older format marks
** it with this version's, in a transaction of its own before that write's
** (LMDB's writer lock orders the threads that race here: the first marks
** it, the others find it done). Records stored before version 4 get their
** review dates from a walk the sweeps run (retention.c). */
static int schema_settle(sb_engine *e)
{
    if (!__atomic_load_n(&e->sh->schema_pending, __ATOMIC_ACQUIRE)) return 0;
    MDB_txn *txn;
    pthread_rwlock_rdlock(&e->sh->maplock);
    int rc = mdb_txn_begin(e->env, NULL, 0, &txn);
    if (rc) {
        pthread_rwlock_unlock(&e->sh->maplock);
        return rc;
    }
    uint64_t schema = 0;
    int done = !__atomic_load_n(&e->sh->schema_pending, __ATOMIC_ACQUIRE);
    if (!done && !(rc = st_meta_u64(txn, e, "schema", &schema)) && schema < SCHEMA_VERSION) {
        if (schema < 4) rc = ret_upgrade_queue(txn, e);
        if (!rc && schema < 11) rc = ret_reindex_queue(txn, e);
        if (!rc) rc = st_meta_put_u64(txn, e, "schema", SCHEMA_VERSION);
    }
    if (done || rc || schema >= SCHEMA_VERSION)
        mdb_txn_abort(txn);
    else
        rc = mdb_txn_commit(txn);
    pthread_rwlock_unlock(&e->sh->maplock);
    if (!rc && !done) {
        __atomic_store_n(&e->sh->schema_pending, 0, __ATOMIC_RELEASE);
        if (schema < SCHEMA_VERSION)
            sb_log(e, SB_LOG_WARN,
                   "%s: format " OWN_LLU " marked as format " OWN_D
                   " at this version's first write: an "
                   "earlier Switchboard can no longer open it (a backup taken before, with "
                   "either version, can)",
                   e->data_dir, (unsigned long long)e->sh->schema_from, SCHEMA_VERSION);
    }
    return rc;
}

/* TXN_NO_MARK: a write transaction that only reads under the write lock
** (eng_write_locked, always aborted), which must not mark the format. */
#define TXN_NO_MARK 0x80000000u

/* sb_defer_stop_signals: a thread's write transactions run with the signals
** that stop a process (SIGTSTP, the terminal's Ctrl-Z; SIGTTIN, SIGTTOU)
** blocked, so that a stop waits until the transaction has ended: a process
** stopped inside one holds LMDB's one writer, and every other writer on the
** data directory (a daemon's events, their answers) waits for it until it
** is continued. Counted per thread: the mask is put back when its last
** write transaction ends, and a stop that came meanwhile takes effect. */
static int stops_defer;
static __thread unsigned stops_depth;
static __thread sigset_t stops_saved;

void sb_defer_stop_signals(int on)
{
    __atomic_store_n(&stops_defer, on != 0, __ATOMIC_RELAXED);
}

/* (The setting is read once per transaction, at its start: one switched
** meanwhile takes effect at the next.) */
static __thread int stops_held;

void eng_stops_hold(void)
{
    if (!stops_depth++) stops_held = __atomic_load_n(&stops_defer, __ATOMIC_RELAXED);
    if (!stops_held || stops_depth > 1) return;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGTSTP);
    sigaddset(&s, SIGTTIN);
    sigaddset(&s, SIGTTOU);
    pthread_sigmask(SIG_BLOCK, &s, &stops_saved);
}

void eng_stops_release(void)
{
    if (!stops_depth || --stops_depth || !stops_held) return;
    stops_held = 0;
    pthread_sigmask(SIG_SETMASK, &stops_saved, NULL);
}

/* A write transaction has ended (committed or aborted): the map may be
** resized again, and a stop held back by it takes effect. */
static void write_unlock(sb_engine *e)
{
    pthread_rwlock_unlock(&e->sh->maplock);
    eng_stops_release();
}

static int txn_begin_held(sb_engine *e, unsigned flags, MDB_txn **txn);

static int txn_begin(sb_engine *e, unsigned flags, MDB_txn **txn)
{
    if (flags & MDB_RDONLY) return txn_begin_held(e, flags, txn);
    eng_stops_hold();
    int rc = txn_begin_held(e, flags, txn);
    if (rc) eng_stops_release();
    return rc;
}

static int txn_begin_held(sb_engine *e, unsigned flags, MDB_txn **txn)
{
    if (eng_forked(e)) return ENG_EFORKED;
    if (!(flags & MDB_RDONLY) && eng_in_callback(e)) return ENG_ECALLBACK;
    int mark = !(flags & TXN_NO_MARK);
    flags &= ~TXN_NO_MARK;
    /* A write of the batch's owner that is not one of its events: the
    ** batch is committed first (LMDB has one writer, and this thread is it). */
    if (!(flags & MDB_RDONLY)) eng_batch_settle(e);
    /* This thread holds the environment's one writer in another engine's
    ** batch: a write here would wait for itself for ever. */
    const void *owner = __atomic_load_n(&e->sh->batch_engine, __ATOMIC_ACQUIRE);
    if (!(flags & MDB_RDONLY) && owner && owner != e &&
        pthread_equal(e->sh->batch_thread, pthread_self()))
        return ENG_EOTHERBATCH;
    if (!(flags & MDB_RDONLY) && mark) {
        int rc = schema_settle(e);
        if (rc) return rc;
    }
    for (int tries = 0;; tries++) {
        pthread_rwlock_rdlock(&e->sh->maplock);
        int rc = mdb_txn_begin(e->env, NULL, flags, txn);
        if (rc == 0) {
            /* Before the transaction can have put any page of its own in
            ** the file (LMDB spills dirty pages of a big one before its
            ** commit, past the end too). */
            if (!(flags & MDB_RDONLY) && e->sh->ordered) zero_ahead(e);
            return 0;
        }
        pthread_rwlock_unlock(&e->sh->maplock);
        if (rc != MDB_MAP_RESIZED || tries > 3) return rc;
        if ((rc = adopt_map(e))) return rc;
    }
}

int eng_write_locked(sb_engine *e, void (*fn)(sb_engine *e, void *arg), void *arg)
{
    MDB_txn *txn;
    int rc = txn_begin(e, TXN_NO_MARK, &txn);
    if (rc) return rc;
    fn(e, arg);
    mdb_txn_abort(txn);
    write_unlock(e);
    return 0;
}

int eng_write_peek(sb_engine *e, write_fn fn, void *arg, sb_result *res)
{
    wtx t = {.e = e, .res = res};
    int rc = txn_begin(e, TXN_NO_MARK, &t.txn);
    if (rc) return eng_mdb_err(res, rc, "begin transaction");
    t.now = eng_now(e);
    rc = fn(&t, arg);
    mdb_txn_abort(t.txn);
    write_unlock(e);
    return rc;
}

/* The batch's owner reads through the batch's transaction: it sees the
** batch's events, and a thread may not hold two transactions. */
int eng_read_begin(sb_engine *e, MDB_txn **txn)
{
    if (batch_mine(e) && e->batch_txn) {
        *txn = e->batch_txn;
        return eng_forked(e) ? ENG_EFORKED : 0;
    }
    return txn_begin(e, MDB_RDONLY, txn);
}

void eng_read_end(sb_engine *e, MDB_txn *txn)
{
    if (batch_mine(e) && txn == e->batch_txn) return;
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&e->sh->maplock);
}

/* What is durable, and what a failed sync may have lost.
**
** Commits are numbered under the write lock. A commit that wrote something
** syncs its pages, then writes its meta page (MDB_NOMETASYNC); the meta page
** is on disk after the next sync of the file that succeeds, a commit's own
** included. The newest meta page on disk decides the tree, which holds
** every earlier commit: so a successful sync makes every commit up to the
** newest meta page written before it durable.
**
** A failed sync can drop the dirty pages it was writing (Linux marks them
** clean; no later sync writes them), and Linux reports a failed write-back
** to one of the syncs on a file: so the process runs one sync of the file
** at a time, commits' own included (fsync_mu), and notes a failure under
** it. The meta pages written before a failure count as lost (lost_upto)
** until a later one, written after it, is synced: a success whose newest
** meta page is not past lost_upto proves nothing. Under fsync_mu:
** meta_written, lost_upto; under sync_mu: the rest. */

/* One sync of the file (the map held steady: a map growing during a sync
** could make it fail, and fail a batch that was in fact committed). *claim:
** what its success makes durable (0: nothing new); *lost: lost_upto after
** it. */
static int file_sync(sb_engine *e, uint64_t *claim, uint64_t *lost)
{
    eng_env *sh = e->sh;
    pthread_rwlock_rdlock(&sh->maplock);
    pthread_mutex_lock(&sh->fsync_mu);
    uint64_t newest = sh->meta_written; /* 0 where a sync=none engine opened the environment */
    int rc = mdb_env_sync(e->env, 1);
    *claim = rc == 0 && newest > sh->lost_upto ? newest : 0;
    if (rc) sh->lost_upto = sh->meta_written;
    *lost = sh->lost_upto;
    /* A failed sync is logged with the system's reason (the caller has only
    ** SB_ESTORE): one line a second at most, saying how many it stands for. */
    int say = 0;
    uint64_t unsaid = 0;
    if (rc) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if ((int64_t)ts.tv_sec != sh->sync_said_s || !sh->sync_said_s) {
            say = 1;
            unsaid = sh->sync_unsaid;
            sh->sync_unsaid = 0;
            sh->sync_said_s = (int64_t)ts.tv_sec;
        } else {
            sh->sync_unsaid++;
        }
    }
    pthread_mutex_unlock(&sh->fsync_mu);
    pthread_rwlock_unlock(&sh->maplock);
    if (say)
        sb_log(e, SB_LOG_ERROR,
               "sync of %s/data.mdb failed: %s; what was committed since the last sync that "
               "worked is not durable until a later one works%s" LOG_OWN("%.0llu") "%s",
               e->data_dir, mdb_strerror(rc), unsaid ? " (" : "", (unsigned long long)unsaid,
               unsaid ? " more failed syncs since the last such line)" : "");
    return rc;
}

/* Note what a sync made durable or lost (sync_mu held). */
static void note_sync(eng_env *sh, uint64_t claim, uint64_t lost)
{
    if (claim > sh->durable) sh->durable = claim;
    if (lost > sh->sync_err) sh->sync_err = lost;
    pthread_cond_broadcast(&sh->sync_cv);
}

/* Write zeros into the file ahead of the pages LMDB has used.
**
** The file's blocks are reserved for the whole map (posix_fallocate, so a
** full disk is an error at open or growth). On ext4 a reserved block is an
** "unwritten" extent until first written, and a sync after that first write
** must commit the filesystem's journal too, to record the extent as written:
** a commit that takes a page past the end of the used pages, which in a day of
** calls is most of them, pays for a journal commit in its sync. Writing zeros
** 256 KiB at a time ahead of the end moves that cost to one sync in about 64:
** a commit writing 8 pages and one new one synced in 214-293 us instead of
** 371-415 us (mean of 3,000, this machine class). Zeros are written when a
** write transaction begins, under its write lock and before it can have put
** any page of its own in the file (LMDB writes a big transaction's dirty
** pages before its commit, "spilling" them, past the end too: zeros written
** at the commit would overwrite those; a review found it, with a program that
** lost 18,820 of 140,000 values that way). No other commit, in this process
** or another, writes meanwhile; this transaction's pages overwrite the zeros. */
#define ZERO_AHEAD ((size_t)256 << 10)

static void zero_ahead(sb_engine *e)
{
    static const char zeros[64 << 10];
    eng_env *sh = e->sh;
    MDB_envinfo info;
    if (sh->zero_off || mdb_env_info(e->env, &info)) return;
    size_t used = (info.me_last_pgno + 1) * sh->psize;
    int fd = -1;
    mdb_env_get_fd(e->env, &fd);
    if (!sh->zeroed) {
        /* First look in this process: what an earlier one wrote ahead is
        ** there still (ext4 reports an unwritten extent as a hole). */
        off_t hole = lseek(fd, (off_t)used, SEEK_HOLE);
        if (hole > 0) sh->zeroed = (size_t)hole;
    }
    if (sh->zeroed < used) sh->zeroed = used;
    if (sh->zeroed - used >= ZERO_AHEAD / 2) return;
    size_t to = sh->zeroed + ZERO_AHEAD < sh->map_size ? sh->zeroed + ZERO_AHEAD : sh->map_size;
    while (sh->zeroed < to) {
        size_t n = to - sh->zeroed < sizeof zeros ? to - sh->zeroed : sizeof zeros;
        ssize_t w = pwrite(fd, zeros, n, (off_t)sh->zeroed);
        if (w <= 0) {
            sh->zero_off = 1; /* costs speed only: LMDB writes its own pages */
            sb_log(e, SB_LOG_DEBUG, "writing zeros ahead in data.mdb: %s",
                   w < 0 ? strerror(errno) : "short write");
            return;
        }
        sh->zeroed += (size_t)w;
    }
}

/* --- clearing free pages ----------------------------------------------------
** LMDB copies a page before it changes it and frees the old copy, which
** stays in data.mdb as it was until a later transaction reuses the page: an
** anonymized or deleted record's pseudonyms and sealed numbers would
** outlive it there, readable with the account's data key. So a transaction
** that removes them notes its id (META "scrub_want", eng_scrub_want), and
** the sweep or erasure request that ran it ends with eng_scrub: every free
** page no snapshot can still need is overwritten with zeros.
**
** Which pages: those LMDB itself would hand out again, by its own rule. The
** free-page table (LMDB's tree 0) lists, under the id of each transaction,
** the pages it freed; they belong to the snapshot before it, and are free
** for good once no reader holds that snapshot and neither of the two meta
** pages points at it: entries under an id below both the oldest reader's
** and the last commit's (a commit's own sync puts the meta page before it
** on disk, so a crash comes back to one of the last two). The pages are
** written with pwrite under the write lock, before the transaction has
** taken any page (nothing else can take one meanwhile), and the
** transaction is then dropped. The entries under the last commit's id are
** free only after one more commit: eng_scrub makes one (it writes
** "scrub_want" again) when nothing else has. A reader that keeps an older
** snapshot open defers the clearing to the next eng_scrub. */
void eng_scrub_want(MDB_txn *txn, sb_engine *e)
{
    uint64_t id = mdb_txn_id(txn), had = 0;
    /* Once a transaction: the table's write is undone with it. */
    if (st_meta_u64(txn, e, "scrub_want", &had) == 0 && had != id)
        (void)st_meta_put_u64(txn, e, "scrub_want", id);
}

/* The oldest snapshot a reader of the lock file's table holds (its lines:
** pid, thread, then the snapshot's id, or "-" for a slot not in use). */
static int oldest_reader(const char *line, void *arg)
{
    uint64_t *oldest = arg;
    unsigned long long pid, id;
    char tid[32];
    if (sscanf(line, "%llu %31s %llu", &pid, tid, &id) == 3 && id < *oldest) *oldest = id;
    return 0;
}

/* The oldest snapshot any reader holds, `last` (the newest commit) at most:
** free pages LMDB lists under ids before it are the ones it hands out again.
** Slots of dead processes (killed, or gone without mdb_env_close) keep
** their snapshot's id: LMDB clears them only when asked, so they go first. */
static uint64_t oldest_snapshot(sb_engine *e, uint64_t last)
{
    int dead = 0;
    mdb_reader_check(e->env, &dead);
    mdb_reader_list(e->env, oldest_reader, &last);
    return last;
}

typedef struct scrub_job {
    uint64_t want;  /* entries up to this id must go */
    int done;       /* they could, and went */
    int advance;    /* a commit is needed first */
    size_t cleared; /* pages written with zeros */
    size_t clear;   /* pages found clear already */
    int err;
} scrub_job;

/* Zeros over pages [first, first + n) that are not all zeros already. */
static int scrub_run(int fd, size_t psize, uint64_t first, size_t n, uint8_t *buf, scrub_job *j)
{
    size_t len = n * psize;
    off_t off = (off_t)(first * psize);
    ssize_t r = pread(fd, buf, len, off);
    if (r < 0) return errno;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *pg = buf + i * psize;
        size_t have = (size_t)r > i * psize ? (size_t)r - i * psize : 0;
        int clear = have >= psize && pg[0] == 0 && !memcmp(pg, pg + 1, psize - 1);
        if (clear) {
            j->clear++;
            continue;
        }
        static const uint8_t zeros[1 << 16];
        size_t done = 0;
        while (done < psize) {
            size_t w = psize - done < sizeof zeros ? psize - done : sizeof zeros;
            ssize_t rc = pwrite(fd, zeros, w, off + (off_t)(i * psize + done));
            if (rc <= 0) return rc < 0 ? errno : EIO;
            done += (size_t)rc;
        }
        j->cleared++;
    }
    return 0;
}

#define SCRUB_RUN 32 /* pages read at once */

static void scrub_locked(sb_engine *e, void *arg)
{
    scrub_job *j = arg;
    eng_env *sh = e->sh;
    MDB_txn *r;
    MDB_cursor *c = NULL;
    /* Begun under our write lock: it sees the last commit, and no commit
    ** can come between it and the pages we write. */
    if ((j->err = mdb_txn_begin(e->env, NULL, MDB_RDONLY, &r))) return;
    uint64_t last = mdb_txn_id(r), oldest = oldest_snapshot(e, last);
    if (j->want >= oldest) {
        /* Still needed by a snapshot: one more commit frees them, unless
        ** a reader holds on to an older one. */
        j->advance = oldest == last;
        mdb_txn_abort(r);
        return;
    }
    int fd = -1;
    mdb_env_get_fd(e->env, &fd);
    size_t psize = sh->psize;
    uint8_t *buf = psize ? malloc(psize * SCRUB_RUN) : NULL;
    if (!buf || (j->err = mdb_cursor_open(r, 0, &c))) {
        if (!j->err) j->err = ENOMEM;
        free(buf);
        mdb_txn_abort(r);
        return;
    }
    /* With MDB_WRITEMAP a transaction that did not commit wrote its pages
    ** into free pages, which stay listed under their old ids: after one,
    ** every entry is read again (reading them all each time cost a sweep of
    ** 400,000 records that kept them all 0.14 s more). */
    int rescan = !sh->ordered && sh->scrub_rescan;
    size_t from = rescan ? 1 : (size_t)sh->scrubbed + 1;
    MDB_val k = {sizeof from, &from}, v;
    int rc;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        size_t id;
        if (k.mv_size != sizeof id) break;
        memcpy(&id, k.mv_data, sizeof id);
        if (id >= oldest) break;
        /* The pages, as LMDB lists them: a count, then the page numbers,
        ** largest first; consecutive ones are read and written together. */
        size_t n = 0;
        if (v.mv_size >= sizeof n) memcpy(&n, v.mv_data, sizeof n);
        if (n > v.mv_size / sizeof n - 1) n = v.mv_size / sizeof n - 1;
        const uint8_t *ids = (const uint8_t *)v.mv_data + sizeof n;
        size_t i = n;
        while (i > 0 && !j->err) {
            size_t pg, next;
            memcpy(&pg, ids + (i - 1) * sizeof pg, sizeof pg);
            size_t run = 1;
            while (
                run < SCRUB_RUN && i > run &&
                (memcpy(&next, ids + (i - 1 - run) * sizeof next, sizeof next), next == pg + run))
                run++;
            j->err = scrub_run(fd, psize, pg, run, buf, j);
            i -= run;
        }
        if (j->err) break;
    }
    if (!j->err && rc != 0 && rc != MDB_NOTFOUND) j->err = rc;
    if (!j->err) {
        __atomic_store_n(&sh->scrubbed, oldest - 1, __ATOMIC_RELEASE);
        if (rescan) sh->scrub_rescan = 0;
        j->done = 1;
    }
    mdb_cursor_close(c);
    free(buf);
    mdb_txn_abort(r);
}

static int scrub_advance(wtx *t, void *arg)
{
    uint64_t had = 0, want = *(uint64_t *)arg;
    int rc = st_meta_u64(t->txn, t->e, "scrub_want", &had);
    return rc ? rc : st_meta_put_u64(t->txn, t->e, "scrub_want", had > want ? had : want);
}

static int scrub_reset(wtx *t, void *arg)
{
    (void)arg;
    uint64_t had = 0, id = mdb_txn_id(t->txn);
    int rc = st_meta_u64(t->txn, t->e, "scrub_want", &had);
    return rc || had <= id ? rc : st_meta_put_u64(t->txn, t->e, "scrub_want", id);
}

static int scrub(sb_engine *e, sb_result *res)
{
    eng_env *sh = e->sh;
    scrub_job j = {0};
    MDB_txn *txn;
    int rc = eng_read_begin(e, &txn);
    if (rc) return eng_mdb_err(res, rc, "read");
    rc = st_meta_u64(txn, e, "scrub_want", &j.want);
    eng_read_end(e, txn);
    if (rc) return eng_mdb_err(res, rc, "read");
    /* Nothing removed since the last clearing: nothing to do (clearing
    ** anyway, for what later writes move out of pages in use, cost a sweep
    ** of 400,000 records that kept them all 0.13 s, a quarter of its time).
    ** Else every transaction up to now, not just the last that noted
    ** scrub_want: a later one (the erasure's last turn) frees pages that hold
    ** removed data too. */
    if (!j.want || j.want <= __atomic_load_n(&sh->scrubbed, __ATOMIC_ACQUIRE)) return 0;
    MDB_envinfo info;
    pthread_rwlock_rdlock(&sh->maplock);
    rc = mdb_env_info(e->env, &info);
    pthread_rwlock_unlock(&sh->maplock);
    if (rc) return eng_mdb_err(res, rc, "read");
    /* A want above the last commit came with a copy: sb_backup compacts,
    ** LMDB numbers the copy's transactions from 1 again, and the copy has
    ** no free page from before it. Taken as it is, it would look like a
    ** reader's snapshot to wait for; it is set back to the last commit. */
    if (j.want > info.me_last_txnid) {
        if ((rc = eng_write_ex(e, scrub_reset, NULL, res, 1))) return rc;
        j.want = info.me_last_txnid;
    }
    if (info.me_last_txnid > j.want) j.want = info.me_last_txnid;
    /* Readers are short: one that holds an older snapshot is waited for, a
    ** little (2 ms a try, outside the write lock), before giving up. */
    for (int tries = 0, advances = 0; tries < 25 && !j.done; tries++) {
        j.advance = 0;
        if ((rc = eng_write_locked(e, scrub_locked, &j)) || (rc = j.err)) break;
        if (j.done) break;
        if (j.advance && advances++ < 2) {
            if ((rc = eng_write_ex(e, scrub_advance, &j.want, res, 1)))
                return rc; /* after deletes */
        } else {
            struct timespec nap = {0, 2000000};
            nanosleep(&nap, NULL);
        }
    }
    if (rc) return eng_mdb_err(res, rc, "clearing free pages");
    if (j.cleared && sh->ordered) {
        /* On disk before the request that removed the data is answered. */
        uint64_t claim, lost;
        rc = file_sync(e, &claim, &lost);
        pthread_mutex_lock(&sh->sync_mu);
        note_sync(sh, claim, lost);
        pthread_mutex_unlock(&sh->sync_mu);
        if (rc) return eng_mdb_err(res, rc, "sync");
    }
    if (j.done)
        sb_log(e, SB_LOG_DEBUG,
               "free pages cleared: " OWN_ZU " written with zeros, " OWN_ZU " clear already",
               j.cleared, j.clear);
    else
        sb_log(e, SB_LOG_INFO,
               "free pages not cleared: a reader holds an older snapshot; the next sweep or "
               "erasure clears them");
    return 0;
}

/* A failure is logged, never put in the caller's result: the sweep or
** erasure it follows is done, and answered as such. */
int eng_scrub(sb_engine *e)
{
    sb_result *r = sb_result_new();
    int rc = scrub(e, r);
    if (rc)
        sb_log(e, SB_LOG_WARN, "free pages not cleared: %s",
               r ? sb_result_message(r) : "out of memory");
    sb_result_free(r);
    return rc;
}

/* Commit txn (a write transaction of e), numbered. Its own sync counts as
** one for the meta pages written before it. *num: the commit to wait for
** to be durable: this one if it wrote something, else the last that did.
** Where a sync=none engine opened the environment nothing is synced in
** order, so nothing is noted (wait_durable and sb_sync just sync there). */
static int commit_numbered(sb_engine *e, MDB_txn *txn, uint64_t *num)
{
    eng_env *sh = e->sh;
    if (!sh->ordered) {
        *num = 0;
        return mdb_txn_commit(txn);
    }
    int dirty = e->txn_dirty; /* read while the write lock is still ours */
    uint64_t n = __atomic_add_fetch(&sh->commit_seq, 1, __ATOMIC_RELAXED);
    uint64_t claim = 0;
    pthread_mutex_lock(&sh->fsync_mu);
    uint64_t newest = sh->meta_written;
    int rc = mdb_txn_commit(txn);
    if (rc == 0 && dirty) {
        if (newest > sh->lost_upto) claim = newest;
        sh->meta_written = n;
    } else if (rc > 0) { /* the system's: a failed write or sync */
        sh->lost_upto = sh->meta_written;
    }
    uint64_t lost = sh->lost_upto;
    pthread_mutex_unlock(&sh->fsync_mu);
    pthread_mutex_lock(&sh->sync_mu);
    /* Commits note their end in any order once LMDB lets go of them. */
    if (n > sh->commit_ended) sh->commit_ended = n;
    if (rc == 0 && dirty && n > sh->written) sh->written = n;
    *num = rc == 0 && dirty ? n : sh->written;
    note_sync(sh, claim, lost); /* also wakes those waiting for this commit */
    pthread_mutex_unlock(&sh->sync_mu);
    return rc;
}

/* One sync for every commit written before it starts (called with sync_mu
** held and no sync of ours running; returns with it held). */
static int sync_upto(sb_engine *e)
{
    eng_env *sh = e->sh;
    uint64_t claim = 0, lost = 0;
    sh->syncing = 1;
    pthread_mutex_unlock(&sh->sync_mu);
    int rc = file_sync(e, &claim, &lost);
    pthread_mutex_lock(&sh->sync_mu);
    sh->syncing = 0;
    note_sync(sh, claim, lost);
    return rc;
}

/* Has a commit after transaction txnid ended, this process's or another
** process's? Its own sync came after txnid's meta page was written. (A
** process with sync=none on the directory syncs nothing: README.) */
static int later_commit(sb_engine *e, size_t txnid)
{
    MDB_envinfo info;
    pthread_rwlock_rdlock(&e->sh->maplock);
    int rc = mdb_env_info(e->env, &info);
    pthread_rwlock_unlock(&e->sh->maplock);
    return rc == 0 && info.me_last_txnid > txnid;
}

/* Wait until commit `mine` is durable (group) or sync for it (own: every
** event synced on its own). Group: a later commit's own sync covers it, so
** while one is under way (another thread's, holding the write lock) it is
** waited for; otherwise the first to arrive syncs for everyone committed
** before it started, and the others wait for that. Eight threads writing
** at once: 1.0 to 1.7 syncs per write, against 2.0 when each syncs for
** itself (test_durable's diagnostics). Another process's commit counts too,
** seen by its transaction id (mine: txnid). A commit whose meta page a
** failed sync may have lost fails. */
static int wait_durable(sb_engine *e, uint64_t mine, size_t txnid, int own)
{
    eng_env *sh = e->sh;
    int rc = 0, synced = 0;
    pthread_mutex_lock(&sh->sync_mu);
    for (;;) {
        if (!sh->ordered) { /* a sync=none engine opened the environment: sync, no more */
            while (sh->syncing)
                pthread_cond_wait(&sh->sync_cv, &sh->sync_mu);
            rc = sync_upto(e);
            break;
        }
        if (sh->durable >= mine && (!own || synced)) break;
        if (mine && sh->sync_err >= mine) { /* (0: nothing written yet) */
            rc = EIO;
            break;
        }
        int committing = __atomic_load_n(&sh->commit_seq, __ATOMIC_RELAXED) > sh->commit_ended;
        if (sh->syncing || (committing && !own)) {
            pthread_cond_wait(&sh->sync_cv, &sh->sync_mu);
        } else if (!own && later_commit(e, txnid)) {
            if (mine > sh->durable) sh->durable = mine;
            pthread_cond_broadcast(&sh->sync_cv);
        } else {
            if ((rc = sync_upto(e))) break;
            synced = 1;
        }
    }
    pthread_mutex_unlock(&sh->sync_mu);
    return rc;
}

/* Make every commit written so far durable: fails when a failed sync may
** have lost one of them (until a later commit's meta page is synced: then
** it is durable again, with that one's tree). */
int sb_sync(sb_engine *e)
{
    if (!e) return SB_EINVAL;
    if (eng_forked(e)) return SB_ESTATE;
    eng_env *sh = e->sh;
    int rc = 0;
    pthread_mutex_lock(&sh->sync_mu);
    while (sh->syncing)
        pthread_cond_wait(&sh->sync_cv, &sh->sync_mu);
    uint64_t want = sh->written;
    if (!want || sh->durable < want) rc = sync_upto(e);
    if (!rc && sh->ordered && sh->durable < want) rc = EIO;
    pthread_mutex_unlock(&sh->sync_mu);
    return rc ? eng_mdb_err(NULL, rc, "sync") : 0;
}

int sb_sync_progress(sb_engine *e, uint64_t *written, uint64_t *durable)
{
    if (!e) return SB_EINVAL;
    if (eng_forked(e)) return SB_ESTATE;
    eng_env *sh = e->sh;
    pthread_mutex_lock(&sh->sync_mu);
    if (written) *written = sh->written;
    if (durable) *durable = sh->ordered ? sh->durable : 0;
    int ordered = sh->ordered;
    pthread_mutex_unlock(&sh->sync_mu);
    return ordered ? 0 : SB_ESTATE;
}

/* After commit `num` of transaction txnid: the sync the engine's mode asks
** for. */
static int sync_committed(sb_engine *e, uint64_t num, size_t txnid, sb_result *res)
{
    int rc = 0;
    if (e->cfg.sync == SB_SYNC_GROUP || e->cfg.sync == SB_SYNC_SYNC)
        rc = wait_durable(e, num, txnid, e->cfg.sync == SB_SYNC_SYNC);
    return rc ? eng_mdb_err(res, rc, "sync") : 0;
}

int eng_write(sb_engine *e, write_fn fn, void *arg, sb_result *res)
{
    return eng_write_ex(e, fn, arg, res, 0);
}

static int account_alive(void *arg, uint32_t acct)
{
    wtx *t = arg;
    uint8_t k[4];
    MDB_val v;
    return st_get(t->txn, t->e, DB_ACCOUNTS, k, key_acct(k, acct), &v) != MDB_NOTFOUND;
}

/* At the start of a write transaction: has anyone else committed since
** this engine's last commit, which is known to have succeeded? The running
** transaction has the id that commit left for the next (vc_ending) when
** nobody has. Then what this engine keeps between transactions still
** matches the store: its record cache, and the generation of the shared
** policies and of account deletions it knows (unless its own commit moved
** the former). Otherwise the cache goes and both are read again: shared
** policies reloaded, or accounts deleted, by another engine or process. */
static int txn_catch_up(wtx *t)
{
    sb_engine *e = t->e;
    size_t id = mdb_txn_id(t->txn);
    e->txn_dirty = 0;
    uint64_t gen;
    int rc = 0;
    int alone =
        e->vc_next && id == e->vc_next && __atomic_load_n(&e->vc_ok, __ATOMIC_ACQUIRE) == e->vc_seq;
    if (!alone) vc_flush(e);
    if (!alone || e->gen_stale) {
        e->gen_stale = 0;
        if ((rc = st_meta_u64(t->txn, e, "shared_gen", &gen)) == 0 && gen != e->shared_gen) {
            pol_host_flush(e->pol);
            e->shared_gen = gen;
        }
        /* Accounts deleted by someone else: their policy states go, and
        ** their data keys from the cache. */
        if (rc == 0 && (rc = st_meta_u64(t->txn, e, "deleted_gen", &gen)) == 0 &&
            gen != e->deleted_gen && (rc = pol_host_prune(e->pol, account_alive, t)) == 0) {
            rec_keys_forget(e);
            e->deleted_gen = gen;
        }
    }
    return rc;
}

/* Just before a write transaction's commit or abort (commit: 0 or 1),
** while the write lock is still ours: LMDB lets it go inside those calls,
** and another thread of this engine may begin a transaction at once. If
** the commit succeeds, the store is as the cache has it and the next
** transaction of anyone's has the next id: one past this one if it wrote
** something, else this one again (an empty commit takes no id). Trusted
** only once vc_committed says the commit succeeded: a failed one takes no
** id either, and another engine or process may then commit with this very
** id, which would make ours look like the next (seen: a call never stored
** answered as connected, its agent given a second call). A thread that
** begins before vc_committed drops the cache, which is always safe. */
static uint64_t vc_ending(sb_engine *e, int commit, int dirty, size_t id)
{
    e->vc_next = !commit ? 0 : dirty ? id + 1 : id;
    return ++e->vc_seq;
}

static void vc_committed(sb_engine *e, uint64_t seq)
{
    __atomic_store_n(&e->vc_ok, seq, __ATOMIC_RELEASE);
}

/* The bytes of the map in use: its pages up to the last one used, less the
** free pages LMDB may hand out again (those freed before every reader's
** snapshot, by its own rule: a page a reader may still read is in use).
** Under the map lock, as every transaction. -1 when it cannot be read. */
static int64_t map_in_use_count(sb_engine *e)
{
    MDB_envinfo info;
    MDB_stat st;
    MDB_txn *r = NULL;
    MDB_cursor *c;
    int64_t used = -1;
    pthread_rwlock_rdlock(&e->sh->maplock);
    if (mdb_env_info(e->env, &info) || mdb_env_stat(e->env, &st) ||
        mdb_txn_begin(e->env, NULL, MDB_RDONLY, &r))
        goto out;
    uint64_t oldest = oldest_snapshot(e, mdb_txn_id(r)); /* ours: the last commit */
    size_t pages = info.me_last_pgno + 1, nfree = 0;
    if (mdb_cursor_open(r, 0, &c) == 0) {
        MDB_val k, v;
        for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            size_t id = 0, n = 0; /* each entry: a count, then the page numbers */
            if (k.mv_size == sizeof id) memcpy(&id, k.mv_data, sizeof id);
            if (id >= oldest) break; /* ids in order: the rest are newer */
            if (v.mv_size >= sizeof n) memcpy(&n, v.mv_data, sizeof n);
            nfree += n;
        }
        mdb_cursor_close(c);
    }
    used = nfree < pages ? (int64_t)((pages - nfree) * st.ms_psize) : 0;
out:
    if (r) mdb_txn_abort(r);
    pthread_rwlock_unlock(&e->sh->maplock);
    return used;
}

int64_t eng_map_in_use(sb_engine *e, int64_t max_age_ns)
{
    eng_env *sh = e->sh;
    int64_t now = (int64_t)mono_ns(), used = __atomic_load_n(&sh->inuse_bytes, __ATOMIC_RELAXED);
    if (now - __atomic_load_n(&sh->inuse_at, __ATOMIC_RELAXED) > max_age_ns) {
        used = map_in_use_count(e);
        __atomic_store_n(&sh->inuse_bytes, used, __ATOMIC_RELAXED);
        __atomic_store_n(&sh->inuse_at, now, __ATOMIC_RELAXED);
    }
    return used;
}

/* A write that may not use the reserve (see grow_map), when the map has
** grown into it: refused until the pages in use are a margin below map_max
** (a sixteenth of it, 256 KiB at least, half of it at most: room for the
** pages a write copies before it frees the old ones), or new calls would
** take the reserve the calls in progress need to end. A map within map_max
** costs one comparison; past it (for good: a file does not shrink), the
** count of pages in use walks LMDB's free list, at most once every 20 ms
** (the writes between take the last count). */
int eng_map_max_reached(sb_engine *e, int64_t max_age_ns)
{
    size_t max = effective_map_max(&e->cfg);
    if (__atomic_load_n(&e->sh->map_size, __ATOMIC_RELAXED) <= max) return 0;
    int64_t used = eng_map_in_use(e, max_age_ns);
    return used >= 0 && (size_t)used + reserve_margin(max) >= max;
}

static int past_max(sb_engine *e, sb_result *res)
{
    if (!eng_map_max_reached(e, 20000000)) return 0;
    return res_err(res, SB_EFULL, NULL,
                   "storage full (map_max reached; its reserve is kept for the calls in "
                   "progress to end); nothing was written: raise map_max and restart, or make "
                   "room with a sweep, an erasure request or deletes");
}

int eng_write_ex(sb_engine *e, write_fn fn, void *arg, sb_result *res, int freeing)
{
    if (!freeing) {
        int rc = past_max(e, res);
        if (rc) return rc;
    }
    size_t mark = sb_result_count(res);
    uint64_t num = 0;
    size_t txnid = 0;
    for (int attempt = 0;; attempt++) {
        wtx t = {.e = e, .res = res};
        int rc = txn_begin(e, 0, &t.txn);
        if (rc) return eng_mdb_err(res, rc, "begin transaction");
        size_t map_before = e->sh->map_size; /* read under the maplock */
        t.now = eng_now(e);
        size_t id = txnid = mdb_txn_id(t.txn);
        rc = txn_catch_up(&t);
        e->cur_txn = t.txn;
        __atomic_store_n(&e->vc_txn, t.txn, __ATOMIC_RELAXED);
        if (rc == 0) rc = fn(&t, arg);
        __atomic_store_n(&e->vc_txn, NULL, __ATOMIC_RELAXED);
        e->cur_txn = NULL;
        if (rc == 0) {
            int dirty = e->txn_dirty; /* read while the write lock is still ours */
            uint64_t seq = vc_ending(e, 1, dirty, id);
            if (t.wrote_gen) e->gen_stale = 1;
            rc = commit_numbered(e, t.txn, &num);
            if (rc == 0) vc_committed(e, seq);
            if (rc == 0 && dirty) res_changed(res);
            write_unlock(e);
        } else {
            vc_ending(e, 0, 0, id);
            if (!e->sh->ordered) e->sh->scrub_rescan = 1;
            mdb_txn_abort(t.txn);
            write_unlock(e);
            /* Whatever fn pushed belongs to a transaction that never happened. */
            res_truncate(res, mark);
            if (rc == SB_EFULL && !t.no_room) rc = MDB_MAP_FULL;
            if (IS_SB_ERR(rc)) { /* an SB_E* from fn, normally with res set */
                if (res && sb_result_code(res) != rc) res_err(res, rc, NULL, "%s", sb_strerror(rc));
                return rc;
            }
        }
        /* Full: grow the map and run again. A growth by another thread or
        ** engine between this one's MDB_MAP_FULL and grow_map counts as an
        ** attempt too, and under contention a writer may lose that race
        ** several times in a row while the map doubles (four threads on a
        ** 256 KiB map lost it four times running, 1 in about 40 runs on a
        ** loaded machine); each round needs a growth, so the map's
        ** doublings up to map_max bound them, and 40 is past any. */
        if (rc == MDB_MAP_FULL && attempt < 40) {
            res_truncate(res, mark);
            int g = grow_map(e, map_before, freeing);
            if (g == 0) {
                /* What an earlier transaction of the call committed stays
                ** said (sb_result_changed). */
                int changed = sb_result_changed(res);
                res_reset(res);
                if (changed) res_changed(res);
                continue;
            }
            return eng_mdb_err(res, g == MDB_MAP_FULL ? MDB_MAP_FULL : g, "grow storage");
        }
        if (rc) {
            res_truncate(res, mark);
            return eng_mdb_err(res, rc, "commit");
        }
        break;
    }
    return sync_committed(e, num, txnid, res);
}

/* --- batches ----------------------------------------------------------------
** The owner thread's events between sb_batch_begin and sb_batch_end run in
** one write transaction: one commit (and one sync) for all of them. An event
** that fails is undone in the transaction (its writes put back from the undo
** log), so it changes nothing and the batch goes on. Reads of the owner go
** through the batch's transaction; any other write of the owner commits the
** batch first. If a commit or an undo fails, the batch is void: its
** remaining events are refused and sb_batch_end reports the failure. */
int sb_batch_begin(sb_engine *e)
{
    if (!e) return SB_EINVAL;
    if (eng_forked(e)) return SB_ESTATE;
    /* Claimed (2) in one step, so that two threads beginning at once
    ** cannot both take it; the owner is set before it reads as on (1). */
    int was = 0;
    if (!__atomic_compare_exchange_n(&e->batch_on, &was, 2, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return batch_mine(e) ? 0 : SB_ESTATE;
    e->batch_owner = pthread_self();
    e->batch_err = 0;
    e->batch_committed = 0;
    __atomic_store_n(&e->batch_on, 1, __ATOMIC_RELEASE);
    return 0;
}

static int batch_commit(sb_engine *e)
{
    MDB_txn *txn = e->batch_txn;
    e->batch_txn = NULL;
    batch_owner_clear(e);
    int dirty = e->txn_dirty; /* read while the write lock is still ours */
    uint64_t num;
    uint64_t seq = vc_ending(e, 1, dirty, e->batch_id);
    if (e->batch_wrote_gen) e->gen_stale = 1;
    int rc = commit_numbered(e, txn, &num);
    if (rc == 0) {
        vc_committed(e, seq);
        e->batch_num = num;
        e->batch_done_id = e->batch_id;
        e->batch_committed = 1;
    }
    write_unlock(e);
    if (rc && !e->batch_err) e->batch_err = rc;
    return rc;
}

static void batch_abort(sb_engine *e, int why)
{
    vc_ending(e, 0, 0, 0);
    if (!e->sh->ordered) e->sh->scrub_rescan = 1;
    mdb_txn_abort(e->batch_txn);
    e->batch_txn = NULL;
    batch_owner_clear(e);
    write_unlock(e);
    if (!e->batch_err) e->batch_err = why;
}

int sb_batch_end(sb_engine *e, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    if (!__atomic_load_n(&e->batch_on, __ATOMIC_ACQUIRE)) return 0;
    if (!batch_mine(e)) return res_err(res, SB_ESTATE, NULL, "the batch is another thread's");
    /* Part of it may have been committed already (another write of this
    ** thread settled it, or a full map): that is synced for too. */
    if (e->batch_txn) batch_commit(e);
    int committed = e->batch_committed;
    e->batch_committed = 0;
    int err = e->batch_err;
    e->batch_err = 0;
    __atomic_store_n(&e->batch_on, 0, __ATOMIC_RELEASE);
    if (err)
        return IS_SB_ERR(err)
                   ? res_err(res, err, NULL, "the batch was not stored: %s", sb_strerror(err))
                   : eng_mdb_err(res, err, "commit the batch");
    return committed ? sync_committed(e, e->batch_num, e->batch_done_id, res) : 0;
}

/* Room for a batch: the map past its last page in use holds a quarter of
** it, and 2 MiB at least: more than one turn's events allocate before
** their commit, where a full map would void the batch (an event that finds
** the map full is undone and runs alone, but the commit's own pages cannot
** be had that way). The map is grown until it does, as far as map_max
** lets it; 0 when there is room. */
static int batch_room(sb_engine *e)
{
    for (int tries = 0; tries < 8; tries++) {
        MDB_envinfo info;
        MDB_stat st;
        pthread_rwlock_rdlock(&e->sh->maplock);
        int rc = mdb_env_info(e->env, &info);
        if (!rc) rc = mdb_env_stat(e->env, &st);
        size_t had = e->sh->map_size;
        pthread_rwlock_unlock(&e->sh->maplock);
        if (rc) return rc;
        size_t used = (info.me_last_pgno + 1) * st.ms_psize;
        size_t want = had / 4 > ((size_t)2 << 20) ? had / 4 : ((size_t)2 << 20);
        if (had > used && had - used >= want) return 0;
        if ((rc = grow_map(e, had, 0))) return rc;
    }
    return MDB_MAP_FULL;
}

/* An event of the batch. */
static int batch_write(sb_engine *e, write_fn fn, void *arg, sb_result *res, int freeing)
{
    if (e->batch_err)
        return res_err(res, SB_ESTORE, NULL,
                       "an earlier event of this batch could not be stored: the batch is void");
    if (!freeing) {
        int full = past_max(e, res);
        if (full) return full;
    }
    size_t mark = sb_result_count(res);
    int rc;
    wtx t = {.e = e, .res = res};
    if (!e->batch_txn) {
        /* Near a full map (or a full disk), events run one by one. */
        if (batch_room(e)) return eng_write_ex(e, fn, arg, res, freeing);
        if ((rc = txn_begin(e, 0, &t.txn))) return eng_mdb_err(res, rc, "begin transaction");
        e->batch_txn = t.txn;
        e->sh->batch_thread = pthread_self();
        __atomic_store_n(&e->sh->batch_engine, (const void *)e, __ATOMIC_RELEASE);
        e->batch_id = mdb_txn_id(t.txn);
        e->batch_wrote_gen = 0;
        if ((rc = txn_catch_up(&t))) {
            batch_abort(e, rc);
            return eng_mdb_err(res, rc, "begin transaction");
        }
    }
    t.txn = e->batch_txn;
    t.now = eng_now(e);
    e->undo_n = 0;
    e->undo.len = 0;
    e->undo_on = 1;
    e->cur_txn = t.txn;
    /* Whether this event wrote, apart from the events before it in the
    ** transaction (sb_result_changed); the commit's own flag is both. */
    int dirty = e->txn_dirty;
    e->txn_dirty = 0;
    __atomic_store_n(&e->vc_txn, t.txn, __ATOMIC_RELAXED);
    rc = fn(&t, arg);
    __atomic_store_n(&e->vc_txn, NULL, __ATOMIC_RELAXED);
    e->cur_txn = NULL;
    e->undo_on = 0;
    int wrote = e->txn_dirty;
    e->txn_dirty |= dirty;
    if (rc == 0) {
        if (t.wrote_gen) e->batch_wrote_gen = 1;
        if (wrote) res_changed(res);
        return 0;
    }
    /* Whatever fn pushed belongs to an event that did not happen. */
    res_truncate(res, mark);
    int u = undo_apply(e, t.txn);
    if (u) batch_abort(e, u);
    if (rc == SB_EFULL && !t.no_room) rc = MDB_MAP_FULL;
    if (rc == MDB_MAP_FULL && !u) {
        /* The batch so far is committed; this event runs alone, where the
        ** map can grow. */
        if (e->batch_txn && batch_commit(e)) return eng_mdb_err(res, e->batch_err, "commit");
        return eng_write_ex(e, fn, arg, res, freeing);
    }
    if (IS_SB_ERR(rc)) {
        if (res && sb_result_code(res) != rc) res_err(res, rc, NULL, "%s", sb_strerror(rc));
        return rc;
    }
    return eng_mdb_err(res, rc, "write");
}

int eng_write_event(sb_engine *e, write_fn fn, void *arg, sb_result *res, int freeing)
{
    return batch_mine(e) ? batch_write(e, fn, arg, res, freeing)
                         : eng_write_ex(e, fn, arg, res, freeing);
}

void eng_batch_free(sb_engine *e)
{
    buf_free(&e->undo);
    free(e->undo_at);
    e->undo_at = NULL;
    e->undo_n = e->undo_cap = 0;
}
