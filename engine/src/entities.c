/*
** entities.c — accounts, agents, queues and memberships: strict JSON in,
** stored records, JSON out. Every write is one transaction; invalid input is
** refused with the field named and changes nothing.
*/
#include "engine.h"
#include "jsonv.h"
#include "records.h"
#include "schedule.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- shared helpers ------------------------------------------------------------ */

int eng_account(MDB_txn *txn, sb_engine *e, const char *account, acct_rec *a, sb_result *res)
{
    int rc = st_account_by_id(txn, e, account, a);
    if (rc == SB_ENOTFOUND) return res_no_such(res, "account", "account", account);
    if (rc) return eng_mdb_err(res, rc, "read account");
    return 0;
}

int eng_read_account(sb_engine *e, const char *account, MDB_txn **txn, acct_rec *a, sb_result *res)
{
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    int rc = eng_read_begin(e, txn);
    if (rc) return eng_mdb_err(res, rc, "begin read");
    if ((rc = eng_account(*txn, e, account, a, res))) eng_read_end(e, *txn);
    return rc;
}

int tx_account(wtx *t, const char *account)
{
    int rc = eng_account(t->txn, t->e, account, &t->account_buf, t->res);
    if (rc) return rc;
    t->account = &t->account_buf;
    t->acct = t->account_buf.num;
    pol_host_sync_gen(t->e->pol, t->acct, t->account_buf.policy_gen);
    return 0;
}

static json_t *text_json(const char *p, size_t len)
{
    json_t *j = len ? json_loadb(p, len, 0, NULL) : NULL;
    return j ? j : json_object();
}

static json_t *doc_json(const sb_buf *doc)
{
    return text_json(doc->p, doc->len);
}

static int store_doc(sb_buf *dst, const json_t *doc)
{
    char *s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    if (!s) return SB_ENOMEM;
    dst->len = 0;
    int rc = buf_puts(dst, s) ? SB_ENOMEM : 0;
    free(s);
    return rc;
}

/* Delete every key starting with prefix in db. */
static int del_prefix(MDB_txn *txn, sb_engine *e, int table, const uint8_t *prefix, size_t plen)
{
    st_iter it;
    int rc = st_iter_open(&it, txn, e, table, prefix, plen);
    while (rc == 0)
        rc = st_iter_del(&it);
    st_iter_close(&it);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* --- quotas ------------------------------------------------------------------ */

static const char *const lim_names[LIM_COUNT] = {"agents", "queues", "live_calls", "policies"};

const char *lim_name(int lim)
{
    return lim >= 0 && lim < LIM_COUNT ? lim_names[lim] : "?";
}

int acct_at_limit(const acct_rec *a, int lim)
{
    return a->counted && a->limit[lim] != LIM_NONE && a->used[lim] >= (uint32_t)a->limit[lim];
}

int acct_take(wtx *t, int lim)
{
    static const char *const what[LIM_COUNT] = {"agent", "queue", "live call", "policy"};
    static const char *const whats[LIM_COUNT] = {"agents", "queues", "live calls", "policies"};
    acct_rec *a = t->account;
    if (!a->counted) return 0;
    if (acct_at_limit(a, lim)) {
        char field[32];
        snprintf(field, sizeof field, "limits.%s", lim_names[lim]);
        return res_err(t->res, SB_ELIMIT, field,
                       "account '%s' has %u %s and may have %d (limits.%s is %d): no %s was "
                       "added; %shave the limit raised",
                       a->id, a->used[lim], a->used[lim] == 1 ? what[lim] : whats[lim],
                       (int)a->limit[lim], lim_names[lim], (int)a->limit[lim], what[lim],
                       a->used[lim] ? "delete one first, or " : "");
    }
    if (a->used[lim] < UINT32_MAX) a->used[lim]++;
    return 0;
}

void acct_give(wtx *t, int lim)
{
    acct_rec *a = t->account;
    if (a->counted && a->used[lim] > 0) a->used[lim]--;
}

int acct_live_kept(const acct_rec *a)
{
    return a->counted && a->limit[LIM_LIVE_CALLS] != LIM_NONE;
}

int acct_give_save(wtx *t, int lim)
{
    if (!t->account->counted || (lim == LIM_LIVE_CALLS && !acct_live_kept(t->account))) return 0;
    acct_give(t, lim);
    return st_account_save(t->txn, t->e, t->account);
}

/* How many records of the account a table holds under its number. */
static int count_acct(MDB_txn *txn, sb_engine *e, int table, uint32_t acct, uint32_t *n)
{
    st_iter it;
    uint8_t p[4];
    int rc;
    *n = 0;
    for (rc = st_iter_open(&it, txn, e, table, p, key_acct(p, acct)); rc == 0;
         rc = st_iter_next(&it))
        (*n)++;
    st_iter_close(&it);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Count what an account stored before account format 2 has, once, so its
** counts are kept from now on (an admin's put, not an event). */
static int acct_recount(MDB_txn *txn, sb_engine *e, acct_rec *a)
{
    static const int tables[LIM_COUNT] = {DB_AGENTS, DB_QUEUES, DB_CALLS, DB_POLICIES};
    for (int i = 0; i < LIM_COUNT; i++) {
        int rc = count_acct(txn, e, tables[i], a->num, &a->used[i]);
        if (rc) return rc;
    }
    a->counted = 1;
    return 0;
}

/* The document's "limits": absent or null, no limits; an object of the
** LIM_* names, each a whole number 0..LIM_MAX or null (none). */
static int limits_parse(const json_t *doc, int32_t lim[LIM_COUNT], sb_result *res)
{
    for (int i = 0; i < LIM_COUNT; i++)
        lim[i] = LIM_NONE;
    json_t *l = json_object_get(doc, "limits");
    if (!l || json_is_null(l)) return 0;
    if (!json_is_object(l))
        return res_err(res, SB_EINVAL, "limits",
                       "'limits' must be an object like {\"agents\":100,\"queues\":10,"
                       "\"live_calls\":50,\"policies\":20}, or null for none");
    const char *k;
    json_t *v;
    json_object_foreach(l, k, v)
    {
        int i = 0;
        while (i < LIM_COUNT && strcmp(k, lim_names[i]) != 0)
            i++;
        char path[256];
        if (i == LIM_COUNT)
            return res_err(res, SB_EINVAL, jv_path(path, sizeof path, "limits", k),
                           "unknown limit '%s' (limits are agents, queues, live_calls and "
                           "policies)",
                           k);
        long long x = LIM_NONE; /* null: none */
        int rc = jv_int(l, k, "limits", 0, 0, LIM_MAX, &x, res);
        if (rc) return rc;
        lim[i] = (int32_t)x;
    }
    return 0;
}

/* --- accounts ------------------------------------------------------------------ */

typedef struct {
    json_t *doc;
    acct_rec a;
    const char *id;
    int created;
    rec_settings rs; /* records and retention settings (records.h) */
    int32_t limit[LIM_COUNT];
    uint32_t live_now; /* its live calls, for the answer's "usage" */
} acct_op;

static int do_account_put(wtx *t, void *arg)
{
    acct_op *op = arg;
    sb_engine *e = t->e;
    acct_rec cur;
    int rc = st_account_by_id(t->txn, e, op->a.id, &cur);
    if (rc == 0) {
        cur.fallback = op->a.fallback;
        strcpy(cur.name, op->a.name);
        op->a = cur;
        op->created = 0;
        if (!op->a.counted && (rc = acct_recount(t->txn, e, &op->a))) return rc;
    } else if (rc == SB_ENOTFOUND) {
        uint64_t next;
        if ((rc = st_meta_u64(t->txn, e, "next_account", &next))) return rc;
        if (next == 0) next = 1;
        if (next > UINT32_MAX) return res_err(t->res, SB_ELIMIT, NULL, "too many accounts");
        op->a.num = (uint32_t)next;
        op->a.next_agent = op->a.next_queue = 1;
        op->a.created = t->now;
        op->a.counted = 1;
        memset(op->a.used, 0, sizeof op->a.used);
        if ((rc = st_meta_put_u64(t->txn, e, "next_account", next + 1))) return rc;
        if ((rc = st_name_put(t->txn, e, NK_ACCOUNT, 0, op->a.id, op->a.num))) return rc;
        op->created = 1;
    } else {
        return rc;
    }
    /* Live calls are counted only while the account has a limit on them
    ** (an offer and a call's end do not write the account otherwise): a
    ** limit set where there was none counts them now. */
    int live_was_kept = acct_live_kept(&op->a) && !op->created;
    memcpy(op->a.limit, op->limit, sizeof op->a.limit);
    if ((!live_was_kept || !acct_live_kept(&op->a)) &&
        (rc = count_acct(t->txn, e, DB_CALLS, op->a.num, &op->a.used[LIM_LIVE_CALLS])))
        return rc;
    op->live_now = op->a.used[LIM_LIVE_CALLS];
    if (!acct_live_kept(&op->a)) op->a.used[LIM_LIVE_CALLS] = 0;
    if (op->rs.retention[0]) {
        rec_settings was;
        int had = !op->created && rec_settings_load(t->txn, e, op->a.num, &was) == 0;
        if ((rc = policy_must_have(t, op->a.num, op->rs.retention, had ? was.retention : NULL,
                                   "retention", POL_HOOK_RETAIN, NULL)))
            return rc;
    }
    if ((rc = st_account_save(t->txn, e, &op->a)) ||
        (rc = rec_settings_save(t, op->a.num, &op->rs)))
        return rc;
    if (op->created) { /* its data key, made with it */
        uint8_t key[32];
        rc = rec_key(e, op->a.num, op->a.id, 1, key);
        memset(key, 0, sizeof key);
        t->no_room = rc == SB_EFULL; /* no map growth makes room in data.keys */
        if (rc == SB_EFULL)          /* as store.c says a full disk */
            return res_err(t->res, rc, NULL,
                           "cannot create the account's data key: storage full (data.keys could "
                           "not grow); the account was not created: free space on the disk of "
                           "the data directory (or raise its quota or file size limit)");
        if (rc) return res_err(t->res, rc, NULL, "cannot create the account's data key");
    }
    return 0;
}

/* The account as a document. txn: to count its live calls for "usage"
** where they are not kept (no live_calls limit); NULL: they are (a put's
** answer, which counted them, or 0 when it has none). */
static json_t *account_json(MDB_txn *txn, sb_engine *e, const acct_rec *a)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:I}", "id", a->id, "name", a->name, "fallback",
                          fallback_name(a->fallback), "created_ms", (json_int_t)a->created);
    json_t *lim = json_object(), *used = json_object();
    for (int i = 0; i < LIM_COUNT; i++) {
        if (a->limit[i] != LIM_NONE)
            json_object_set_new(lim, lim_names[i], json_integer(a->limit[i]));
        uint32_t n = a->used[i];
        if (i == LIM_LIVE_CALLS && !acct_live_kept(a) && txn &&
            count_acct(txn, e, DB_CALLS, a->num, &n))
            n = 0;
        json_object_set_new(used, lim_names[i], json_integer(n));
    }
    json_object_set_new(o, "limits", json_object_size(lim) ? lim : json_null());
    if (!json_object_size(lim)) json_decref(lim);
    if (a->counted)
        json_object_set_new(o, "usage", used);
    else
        json_decref(used);
    return o;
}

int sb_account_put(sb_engine *e, const char *json, size_t len, sb_result *res)
{
    static const char *const keys[] = {"id",         "name",           "fallback",
                                       "retention",  "personal_attrs", "service_level_seconds",
                                       "audit_days", "timezone",       "limits",
                                       NULL};
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    acct_op op = {0};
    json_t *doc;
    int rc = jv_parse(json, len, &doc, res);
    if (rc) return rc;
    char fb[32] = "longest_idle";
    static const char *const readonly[] = {"created_ms", "usage", NULL}; /* what GET adds */
    jv_drop_readonly(doc, readonly);
    if ((rc = jv_keys(doc, keys, NULL, res)) || (rc = jv_id(doc, "id", NULL, 1, op.a.id, res)) ||
        (rc = jv_str(doc, "name", NULL, 0, op.a.name, sizeof op.a.name, res)) ||
        (rc = jv_str(doc, "fallback", NULL, 0, fb, sizeof fb, res)))
        goto out;
    int f = fallback_parse(fb);
    if (f < 0) {
        rc = res_err(res, SB_EINVAL, "fallback",
                     "'fallback' must be longest_idle, ring_all, wait or reject");
        goto out;
    }
    op.a.fallback = (uint8_t)f;
    for (int i = 0; i < LIM_COUNT; i++)
        op.a.limit[i] = LIM_NONE;
    if ((rc = limits_parse(doc, op.limit, res))) goto out;
    rec_settings_default(&op.rs);
    if ((rc = rec_settings_parse(doc, &op.rs, res))) goto out;
    rc = eng_write(e, do_account_put, &op, res);
    if (!rc) {
        acct_rec shown = op.a;
        shown.used[LIM_LIVE_CALLS] = op.live_now;
        json_t *o = account_json(NULL, e, &shown);
        rec_settings_json(&op.rs, o);
        json_object_set_new(o, "created", json_boolean(op.created));
        res_doc(res, o);
    }
out:
    json_decref(doc);
    return rc;
}

int sb_account_get(sb_engine *e, const char *account, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    MDB_txn *txn;
    int rc = eng_read_begin(e, &txn);
    if (rc) return eng_mdb_err(res, rc, "begin read");
    acct_rec a;
    rc = eng_account(txn, e, account, &a, res);
    if (!rc) {
        json_t *o = account_json(txn, e, &a);
        rec_settings rs;
        if (rec_settings_load(txn, e, a.num, &rs) == 0) rec_settings_json(&rs, o);
        res_doc(res, o);
    }
    eng_read_end(e, txn);
    return rc;
}

int sb_account_list(sb_engine *e, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    MDB_txn *txn;
    int rc = eng_read_begin(e, &txn);
    if (rc) return eng_mdb_err(res, rc, "begin read");
    st_iter it;
    json_t *arr = json_array();
    for (rc = st_iter_open(&it, txn, e, DB_ACCOUNTS, "", 0); rc == 0; rc = st_iter_next(&it)) {
        acct_rec a;
        if (dec_account(it.v.mv_data, it.v.mv_size, &a) == 0) {
            json_t *o = account_json(txn, e, &a);
            rec_settings rs;
            if (rec_settings_load(txn, e, a.num, &rs) == 0) rec_settings_json(&rs, o);
            json_array_append_new(arr, o);
        }
    }
    st_iter_close(&it);
    if (rc == MDB_NOTFOUND) rc = 0;
    eng_read_end(e, txn);
    if (rc) {
        json_decref(arr);
        return eng_mdb_err(res, rc, "list accounts");
    }
    res_doc(res, json_pack("{s:o}", "accounts", arr));
    return 0;
}

typedef struct {
    const char *id;
    uint32_t num;
    int evict;              /* its live calls end with it (sb_account_evict) */
    ejr *j;                 /* the erasure journal, locked: the deletion goes in it */
    uint64_t seq;           /* its entry's seq, once appended (0: none) */
    const ejr_entry *again; /* applied again from this entry of the journal */
    int outcome;            /* again: ACCT_AGAIN_* */
    uint32_t ended;         /* live calls ended */
    char why[600];          /* ACCT_AGAIN_HELD: the holds */
} acct_del_op;

/* A stored call's id and queue, read from the head of enc_call (version,
** id, queue) without decoding the rest. */
static uint32_t call_head(const MDB_val *v, char id[SB_ID_MAX + 1])
{
    rbuf r;
    rb_init(&r, v->mv_data, v->mv_size);
    rb_u8(&r);
    rb_str(&r, id, SB_ID_MAX + 1);
    return rb_u32(&r);
}

/* The live calls (waiting, ringing or connected) of the account, or of its
** queue `queue` when not 0: how many in *n, the ids of the first few in
** ids ("a, b, c, ..."), for an error message. */
#define LIVE_IDS 5
static int live_calls(wtx *t, uint32_t queue, uint32_t *n, char ids[LIVE_IDS * (SB_ID_MAX + 2) + 8])
{
    uint8_t p[4];
    st_iter it;
    int rc;
    size_t len = 0;
    *n = 0;
    ids[0] = 0;
    for (rc = st_iter_open(&it, t->txn, t->e, DB_CALLS, p, key_acct(p, t->acct)); rc == 0;
         rc = st_iter_next(&it)) {
        char id[SB_ID_MAX + 1];
        uint32_t in = call_head(&it.v, id);
        if (queue && in != queue) continue;
        if (!queue) {
            /* A call whose queue is gone (deleted under it by a version
            ** before the check above) can never end: it goes with the
            ** account rather than hold it forever. */
            queue_rec q = {0};
            int qrc = st_queue_load(t->txn, t->e, t->acct, in, &q);
            queue_free(&q);
            if (qrc == SB_ENOTFOUND) continue;
            if (qrc) {
                rc = qrc;
                break;
            }
        }
        if (*n < LIVE_IDS)
            len += (size_t)sprintf(ids + len, "%s%s", *n ? ", " : "", id);
        else if (*n == LIVE_IDS)
            strcpy(ids + len, ", ...");
        (*n)++;
    }
    st_iter_close(&it);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Every live call of the account ends with it: an END action each, reason
** "account deleted", for the gateway that had them (no record: the
** account's records go anyway). The calls themselves go with the account's
** tables; their timers find no account when they come due. */
static int end_live_calls(wtx *t)
{
    uint8_t p[4];
    st_iter it;
    int rc;
    for (rc = st_iter_open(&it, t->txn, t->e, DB_CALLS, p, key_acct(p, t->acct)); rc == 0;
         rc = st_iter_next(&it)) {
        char id[SB_ID_MAX + 1];
        queue_rec q = {0};
        int qrc = st_queue_load(t->txn, t->e, t->acct, call_head(&it.v, id), &q);
        sb_action *a = res_action(t->res, SB_ACT_END);
        if (a) {
            a->account = res_str(t->res, t->account->id);
            a->call_id = res_str(t->res, id);
            a->queue_id = qrc == 0 ? res_str(t->res, q.id) : NULL;
            a->reason = res_str(t->res, "account deleted");
        }
        queue_free(&q);
        if (!a) {
            rc = SB_ENOMEM;
            break;
        }
    }
    st_iter_close(&it);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The deletion's entry in the erasure journal, before it commits (a
** transaction that meets a full disk here is refused whole). */
static int journal_deletion(wtx *t, acct_del_op *op)
{
    ejr_entry x = {
        .kind = EJR_DELETION, .acct = t->acct, .created = t->account->created, .received = t->now};
    snprintf(x.account, sizeof x.account, "%s", t->account->id);
    int rc = ret_journal_next(t, op->j, &x.seq);
    if (!rc && (rc = ejr_append(t->e, op->j, &x, t->res))) {
        t->no_room = rc == SB_EFULL; /* the journal's disk: no map to grow */
        char why[512];
        snprintf(why, sizeof why, "%s", sb_result_message(t->res));
        return res_err(t->res, rc, sb_result_field(t->res),
                       "%s: the account deletion is refused, account '%s' was not deleted", why,
                       t->account->id);
    }
    if (!rc) op->seq = x.seq;
    return rc;
}

static int do_account_delete(wtx *t, void *arg)
{
    acct_del_op *op = arg;
    const ejr_entry *again = op->again;
    op->ended = 0;
    int rc = tx_account(t, op->id);
    if (again && (rc == SB_ENOTFOUND ||
                  (!rc && (t->acct != again->acct || t->account->created != again->created)))) {
        /* Not restored, or the id is another account's now: one made again
        ** after the deletion (and the backup), which it does not reach. */
        res_reset(t->res);
        op->outcome = ACCT_AGAIN_GONE;
        return ret_journal_seen_put(t, again->seq);
    }
    if (rc) return rc;
    sb_engine *e = t->e;
    op->num = t->acct;
    /* Refused while calls are live: the gateway would go on ringing agents
    ** (or holding callers) for calls the engine no longer knows. Applied
    ** again, the calls are the backup's: they ended before the deletion
    ** (which they could not outlive) and end with it. */
    uint32_t live;
    char ids[LIVE_IDS * (SB_ID_MAX + 2) + 8];
    /* Legal holds first: no deletion goes past them, while live calls can
    ** be ended (evicting), so the refusal names what stops it for good. */
    if (!again && (rc = ret_account_holds(t, t->acct))) return rc;
    if ((rc = live_calls(t, 0, &live, ids))) return rc;
    if (live && !op->evict && !again)
        return res_err(t->res, SB_ESTATE, "account",
                       "account '%s' has %u live call%s (%s); end them, then delete it (or "
                       "evict the account: its live calls end with it)",
                       t->account->id, live, live == 1 ? "" : "s", ids);
    /* Refused while legal holds exist; records are purged by sweeps. Applied
    ** again the same: no account is deleted under a hold, also one the
    ** restored data.mdb holds again after its release. The account stays,
    ** said and audited; data.mdb has seen the entry. */
    rc = ret_account_deleted(t, t->acct);
    if (rc == SB_EHOLD && again) {
        snprintf(op->why, sizeof op->why, "%s", sb_result_message(t->res));
        res_reset(t->res);
        op->outcome = ACCT_AGAIN_HELD;
        char reason[800];
        snprintf(reason, sizeof reason,
                 "account deletion of the erasure journal not applied again (data.mdb had not "
                 "seen it): %s",
                 op->why);
        if ((rc = ret_audit_hold_note(t, "account_delete_held", reason))) return rc;
        return ret_journal_seen_put(t, again->seq);
    }
    if (rc) return rc;
    if ((op->evict || again) && (rc = end_live_calls(t))) return rc;
    op->ended = live;
    /* In the journal before anything commits; data.mdb has seen it after. */
    if (op->j && !op->seq && (rc = journal_deletion(t, op))) return rc;
    if (op->seq || again) {
        if ((rc = ret_journal_seen_put(t, again ? again->seq : op->seq))) return rc;
        op->outcome = ACCT_AGAIN_DELETED;
    }
    uint8_t p[5];
    static const int dbs[] = {DB_ACCOUNTS, DB_AGENTS,    DB_QUEUES,    DB_MEMBERS, DB_AGENTQ,
                              DB_AVAIL,    DB_CALLS,     DB_WAITING,   DB_KV,      DB_POLICIES,
                              DB_APIKEYS,  DB_AGENTDOCS, DB_QUEUEDOCS, DB_POLHIST};
    key_acct(p, t->acct);
    for (size_t i = 0; i < countof(dbs); i++)
        if ((rc = del_prefix(t->txn, e, dbs[i], p, 4))) return rc;
    p[0] = NK_AGENT;
    put_be32(p + 1, t->acct);
    if ((rc = del_prefix(t->txn, e, DB_NAMES, p, 5))) return rc;
    p[0] = NK_QUEUE;
    if ((rc = del_prefix(t->txn, e, DB_NAMES, p, 5))) return rc;
    p[0] = NK_QUEUE_GONE;
    if ((rc = del_prefix(t->txn, e, DB_NAMES, p, 5))) return rc;
    p[0] = NK_AGENT_GONE;
    if ((rc = del_prefix(t->txn, e, DB_NAMES, p, 5))) return rc;
    /* Timers of the account are dropped when they fire: they find no account. */
    pol_host_drop(e->pol, t->acct);
    /* Other engines on the data directory drop theirs when they see it. */
    uint64_t gen;
    if ((rc = st_meta_u64(t->txn, e, "deleted_gen", &gen)) ||
        (rc = st_meta_put_u64(t->txn, e, "deleted_gen", gen + 1)))
        return rc;
    return st_name_del(t->txn, e, NK_ACCOUNT, 0, t->account->id);
}

/* Committed: destroy its data key now (everything sealed with it becomes
** unreadable); a crash before this is made good by the purge. */
static void key_destroy(sb_engine *e, const char *account, uint32_t num)
{
    if (rec_key_destroy(e, num))
        sb_log(e, SB_LOG_ERROR,
               "account %s deleted but its data key slot could not be wiped yet; "
               "the next sweep retries",
               account);
}

static int account_delete(sb_engine *e, const char *account, int evict, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    if (!id_valid(account)) return res_no_such(res, "account", "account", account);
    /* The deletion goes in the erasure journal first, after the entries
    ** data.mdb has not seen: a restore of an older data.mdb, or a crash
    ** before the commit, has the account deleted again at the next open.
    ** This thread's batch first: its write lock, held while the journal's
    ** lock is waited for, would keep the holder from finishing. */
    eng_batch_settle(e);
    ejr j;
    int rc = ejr_open(e, EJR_CREATE, &j, res);
    if (rc) {
        char why[1024];
        snprintf(why, sizeof why, "%s", sb_result_message(res));
        return res_err(res, rc, sb_result_field(res), "%s; account '%s' was not deleted", why,
                       account);
    }
    if ((rc = ret_journal_catch_up(e, &j, NULL, res))) {
        char why[1024];
        snprintf(why, sizeof why, "%s", sb_result_message(res));
        ejr_close(&j);
        return res_err(res, rc, sb_result_field(res), "%s; account '%s' was not deleted", why,
                       account);
    }
    acct_del_op op = {.id = account, .evict = evict, .j = &j};
    rc = eng_write_ex(e, do_account_delete, &op, res, 1);
    int done = rc == 0;
    if (rc && op.seq) {
        /* Refused before it committed: out of the journal too. One that
        ** committed (a sync failed after) stays there: data.mdb has seen it,
        ** or the next open deletes the account again. */
        uint64_t seen = 0;
        sb_result *tmp = sb_result_new();
        int rrc = tmp ? ret_journal_seen(e, &seen, tmp) : SB_ENOMEM;
        sb_result_free(tmp);
        if (rrc == 0 && seen < op.seq)
            ejr_unappend(e, &j);
        else
            done = 1;
    }
    ejr_close(&j);
    if (done) key_destroy(e, account, op.num);
    return rc;
}

int acct_delete_again(sb_engine *e, const ejr_entry *x, int *outcome, uint32_t *ended, char *why,
                      size_t cap, sb_result *res)
{
    acct_del_op op = {.id = x->account, .again = x};
    int rc = eng_write_ex(e, do_account_delete, &op, res, 1);
    if (rc) return rc;
    *outcome = op.outcome;
    *ended = op.ended;
    snprintf(why, cap, "%s", op.why);
    if (op.outcome == ACCT_AGAIN_DELETED) key_destroy(e, x->account, op.num);
    return 0;
}

int sb_account_delete(sb_engine *e, const char *account, sb_result *res)
{
    return account_delete(e, account, 0, res);
}

int sb_account_evict(sb_engine *e, const char *account, sb_result *res)
{
    return account_delete(e, account, 1, res);
}

/* --- agents ---------------------------------------------------------------------- */

typedef struct {
    const char *account;
    json_t *doc;
    agent_rec a; /* parsed fields of the document */
    int status;  /* initial status, -1 = keep / offline */
    int live;    /* the live state "status" named (reserved...): kept, not set; 0 none */
    int created;
} agent_op;

/* A device's dial URI as the gateway will dial it: not empty, no spaces or
** control characters; a tel: URI holds an E.164 number (RFC 3966: a global
** number, visual separators allowed); sip:/sips: name someone. Other forms
** (a bare +number, a gateway's own dial string) pass as they are. */
static int dial_uri_check(const char *uri, const char *dev, sb_result *res)
{
    char path[64], num[SB_E164_MAX + 1];
    jv_path(path, sizeof path, "devices", dev);
    if (!uri[0]) return res_err(res, SB_EINVAL, path, "a device's dial URI must not be empty");
    for (const unsigned char *p = (const unsigned char *)uri; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return res_err(res, SB_EINVAL, path,
                           "a dial URI must not contain spaces or control characters");
    if (!strncasecmp(uri, "tel:", 4)) {
        /* The number, then RFC 3966 parameters (;ext=12, ;phone-context=...). */
        char number[SB_E164_MAX + 8];
        size_t nl = strcspn(uri + 4, ";");
        int bad = nl >= sizeof number;
        if (!bad) {
            memcpy(number, uri + 4, nl);
            number[nl] = 0;
            bad = e164_normalize(number, num) || (uri[4 + nl] == ';' && !uri[5 + nl]);
        }
        if (bad)
            return res_err(res, SB_EINVAL, path,
                           "'%s' is not a tel: URI with an E.164 number like tel:+447700900001",
                           uri);
    }
    /* sip:user@host or sip:host, then ;parameters or ?headers: with an @,
    ** both sides of it are there. */
    const char *sip = !strncasecmp(uri, "sip:", 4)    ? uri + 4
                      : !strncasecmp(uri, "sips:", 5) ? uri + 5
                                                      : NULL;
    if (sip) {
        size_t end = strcspn(sip, ";?");
        const char *at = memchr(sip, '@', end);
        if (!end || at == sip || (at && at + 1 == sip + end))
            return res_err(res, SB_EINVAL, path,
                           "'%s' names no one to dial: a SIP URI is sip:user@host or sip:host",
                           uri);
    }
    return 0;
}

static int parse_agent(json_t *doc, agent_op *op, sb_result *res)
{
    static const char *const keys[] = {"id",     "name",        "weight",   "devices",
                                       "skills", "preferences", "timezone", "schedule",
                                       "wrapup", "status",      NULL};
    /* What GET adds: the live state and figures (agent_json). */
    static const char *const readonly[] = {"on_schedule", "devices_now", "reason",
                                           "call",        "next_status", "next_reason",
                                           "stats",       "queues",      NULL};
    char buf[SB_ID_MAX + 1];
    int rc;
    agent_rec *a = &op->a;
    jv_drop_readonly(doc, readonly);
    if ((rc = jv_keys(doc, keys, NULL, res)) || (rc = jv_id(doc, "id", NULL, 1, a->id, res)) ||
        (rc = jv_str(doc, "name", NULL, 0, buf, sizeof buf, res)))
        return rc;
    jv_drop_null(doc, "skills");
    jv_drop_null(doc, "preferences");
    jv_drop_null(json_object_get(doc, "preferences"), "device");
    size_t wi;
    json_t *win;
    json_array_foreach(json_object_get(doc, "schedule"), wi, win) jv_drop_null(win, "devices");
    a->weight = 1;
    if ((rc = jv_num(doc, "weight", NULL, 0.000001, 1000000, &a->weight, res))) return rc;
    long long wrap = 0;
    if ((rc = jv_int(doc, "wrapup", NULL, 0, 0, 3600, &wrap, res))) return rc;
    a->wrapup_s = (uint32_t)wrap;

    json_t *dev = json_object_get(doc, "devices");
    if (!dev || !json_is_object(dev) || json_object_size(dev) == 0)
        return res_err(res, SB_EINVAL, "devices",
                       "'devices' must be an object with at least one of landline, mobile, "
                       "softphone");
    static const char *const devkeys[] = {"landline", "mobile", "softphone", NULL};
    if ((rc = jv_keys(dev, devkeys, "devices", res))) return rc;
    for (int i = 0; i < 3; i++) {
        static const char *const names[] = {"landline", "mobile", "softphone"};
        a->uri[i][0] = 0;
        if ((rc = jv_str(dev, names[i], "devices", 0, a->uri[i], sizeof a->uri[i], res))) return rc;
        if (json_object_get(dev, names[i]) && (rc = dial_uri_check(a->uri[i], names[i], res)))
            return rc;
    }
    json_t *sk = json_object_get(doc, "skills");
    if (sk) {
        if (!json_is_object(sk))
            return res_err(res, SB_EINVAL, "skills", "'skills' must be an object of levels");
        if (json_object_size(sk) > SB_SKILLS_MAX)
            return res_err(res, SB_EINVAL, "skills", "at most %d skills", SB_SKILLS_MAX);
        const char *k;
        json_t *v;
        json_object_foreach(sk, k, v)
        {
            long long lvl;
            if (strlen(k) == 0 || strlen(k) > 64)
                return res_err(res, SB_EINVAL, "skills", "skill names are 1..64 bytes");
            if ((rc = jv_int(sk, k, "skills", 1, 0, 100, &lvl, res))) return rc;
        }
    }
    json_t *pref = json_object_get(doc, "preferences");
    if (pref) {
        if (!json_is_object(pref))
            return res_err(res, SB_EINVAL, "preferences", "'preferences' must be an object");
        json_t *pd = json_object_get(pref, "device");
        if (pd) {
            int bit = json_is_string(pd) ? pol_dev_parse(json_string_value(pd)) : 0;
            if (!bit || !a->uri[dev_index(bit)][0])
                return res_err(res, SB_EINVAL, "preferences.device",
                               "'preferences.device' must name one of the agent's devices");
        }
    }
    json_t *tz = json_object_get(doc, "timezone");
    if (json_is_null(tz)) tz = NULL; /* no zone: UTC, as everywhere a zone is read */
    if (tz && (!json_is_string(tz) || !tz_valid(json_string_value(tz))))
        return res_err(res, SB_EINVAL, "timezone", "'timezone' must be a known IANA zone name");
    json_t *sch = json_object_get(doc, "schedule");
    if (sch && !json_is_null(sch)) {
        char err[256], field[128];
        if (sched_validate(sch, tz ? json_string_value(tz) : NULL, err, sizeof err, field,
                           sizeof field))
            return res_err(res, SB_EINVAL, field, "%s", err);
    }
    op->status = -1;
    json_t *st = json_object_get(doc, "status");
    if (st) {
        int s = json_is_string(st) ? agent_status_parse(json_string_value(st)) : -1;
        /* A live state, as GET answers an agent ringing, on a call or in
        ** wrap-up: what a replace keeps anyway; a new agent cannot start so. */
        op->live = s == SB_AGENT_RESERVED || s == SB_AGENT_ON_CALL || s == SB_AGENT_WRAP_UP ? s : 0;
        if (s != SB_AGENT_OFFLINE && s != SB_AGENT_AVAILABLE && s != SB_AGENT_PAUSED && !op->live)
            return res_err(res, SB_EINVAL, "status",
                           "'status' must be available, paused or offline");
        op->status = op->live ? -1 : s;
        json_object_del(doc, "status"); /* live state, not part of the document */
    }
    return store_doc(&a->doc, doc);
}

static int do_agent_put(wtx *t, void *arg)
{
    agent_op *op = arg;
    int rc = tx_account(t, op->account);
    if (rc) return rc;
    sb_engine *e = t->e;
    agent_rec cur = {0};
    rc = st_agent_by_id(t->txn, e, t->acct, op->a.id, &cur);
    if (rc == 0) {
        /* Replace the document, keep the live state. */
        cur.weight = op->a.weight;
        cur.wrapup_s = op->a.wrapup_s;
        /* A device's URI is often an agent's own phone number, kept in the
        ** clear: the pages its old one was on are cleared when the next sweep
        ** ends (as for what a retention action removes). */
        if (memcmp(cur.uri, op->a.uri, sizeof cur.uri)) eng_scrub_want(t->txn, e);
        memcpy(cur.uri, op->a.uri, sizeof cur.uri);
        op->created = 0;
    } else if (rc == SB_ENOTFOUND) {
        acct_rec *acc = t->account;
        if (op->live)
            return res_err(t->res, SB_EINVAL, "status",
                           "'status' of a new agent must be available, paused or offline (%s is "
                           "the state of an agent ringing, on a call or in wrap-up)",
                           agent_status_name(op->live));
        if ((rc = acct_take(t, LIM_AGENTS))) return rc;
        cur = op->a;
        memset(&cur.doc, 0, sizeof cur.doc);
        cur.num = acc->next_agent++;
        cur.status = SB_AGENT_OFFLINE;
        cur.status_since = cur.idle_since = t->now;
        if ((rc = st_account_save(t->txn, e, acc)) ||
            (rc = st_name_put(t->txn, e, NK_AGENT, t->acct, cur.id, cur.num)))
            goto out;
        op->created = 1;
    } else {
        return rc;
    }
    int was_avail = !op->created && cur.status == SB_AGENT_AVAILABLE, old = cur.status;
    if (op->status >= 0 && cur.status != SB_AGENT_RESERVED && cur.status != SB_AGENT_ON_CALL &&
        cur.status != SB_AGENT_WRAP_UP && (int)cur.status != op->status) {
        cur.status = (uint8_t)op->status;
        cur.status_since = t->now;
        cur.reason[0] = 0; /* a pause's reason went with it (a document sets no reason) */
        if (op->status == SB_AGENT_AVAILABLE) { /* as a status event: see agent_change */
            cur.idle_since = t->now;
            cur.no_answers = 0;
        }
    }
    cur.plain_devices = !pol_doc_picks_device(op->a.doc.p, op->a.doc.len);
    if ((rc = st_agent_save(t->txn, e, t->acct, &cur)) ||
        (rc = st_agent_doc_save(t->txn, e, t->acct, cur.num, &op->a.doc)))
        goto out;
    /* Device or weight changes reach the avail entries; a new availability
    ** may let waiting calls ring. */
    if (cur.status == SB_AGENT_AVAILABLE || was_avail) {
        if ((rc = agent_set_avail(t, &cur, cur.status == SB_AGENT_AVAILABLE))) goto out;
        if (cur.status == SB_AGENT_AVAILABLE && (rc = dispatch_agent(t, &cur))) goto out;
    }
    if (!op->created && (rc = agent_left(t, &cur, old))) goto out;
    op->a.status = cur.status;
    if (cur.status == SB_AGENT_AVAILABLE) { /* a waiting call may ring it now: its status then */
        agent_rec now = {0};
        if ((rc = st_agent_load(t->txn, e, t->acct, cur.num, &now)) == 0) op->a.status = now.status;
        agent_free(&now);
    }
out:
    agent_free(&cur);
    return rc;
}

/* What a policy reads as agent.on_schedule and agent.devices_now, at the
** engine's clock: whether the schedule has the agent in hours now, and its
** devices the schedule allows now, in the order a ring picks them. */
static void schedule_now_json(json_t *o, const agent_rec *a, int64_t now_ms)
{
    unsigned allowed = pol_doc_allowed(o, now_ms), have = 0;
    for (int bit = 1; bit <= 4; bit <<= 1)
        if (a->uri[dev_index(bit)][0]) have |= (unsigned)bit;
    int devs[3], n = pol_dev_ordered(allowed & have, devs);
    json_t *now = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(now, json_string(pol_dev_name(devs[i])));
    json_object_set_new(o, "on_schedule", json_boolean(allowed != 0));
    json_object_set_new(o, "devices_now", now);
}

static json_t *agent_json(MDB_txn *txn, sb_engine *e, uint32_t acct, agent_rec *a)
{
    st_agent_doc_load(txn, e, acct, a->num, &a->doc);
    json_t *o = doc_json(&a->doc);
    schedule_now_json(o, a, eng_now(e));
    json_object_set_new(o, "status", json_string(agent_status_name(a->status)));
    if (a->reason[0]) json_object_set_new(o, "reason", json_string(a->reason));
    if (a->call[0]) json_object_set_new(o, "call", json_string(a->call));
    if (a->has_next) { /* asked for on a call: taken when it (and its wrap-up) ends */
        json_object_set_new(o, "next_status", json_string(agent_status_name(a->next_status)));
        if (a->next_reason[0]) json_object_set_new(o, "next_reason", json_string(a->next_reason));
    }
    json_t *live =
        json_pack("{s:I, s:I, s:i, s:f, s:i}", "status_since_ms", (json_int_t)a->status_since,
                  "idle_since_ms", (json_int_t)a->idle_since, "calls_taken", (int)a->calls_taken,
                  "talk_time", (double)a->talk_ms / 1000.0, "no_answers", (int)a->no_answers);
    if (a->last_call) json_object_set_new(live, "last_call_ms", json_integer(a->last_call));
    if (a->missed_at) json_object_set_new(live, "last_missed_ms", json_integer(a->missed_at));
    json_object_set_new(o, "stats", live);
    /* Queues the agent is a member of. */
    json_t *qs = json_array();
    st_iter it;
    uint8_t p[8];
    for (int rc = st_iter_open(&it, txn, e, DB_AGENTQ, p, key_acct2(p, acct, a->num)); rc == 0;
         rc = st_iter_next(&it)) {
        queue_rec q = {0};
        if (it.klen == 12 && st_queue_load(txn, e, acct, be32(it.key + 8), &q) == 0)
            json_array_append_new(qs, json_string(q.id));
        queue_free(&q);
    }
    st_iter_close(&it);
    json_object_set_new(o, "queues", qs);
    return o;
}

int sb_agent_put(sb_engine *e, const char *account, const char *json, size_t len, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    agent_op op = {.account = account};
    int rc = jv_parse(json, len, &op.doc, res);
    if (rc) return rc;
    if ((rc = parse_agent(op.doc, &op, res)) == 0 &&
        (rc = eng_write(e, do_agent_put, &op, res)) == 0) {
        json_t *o = json_pack("{s:s, s:b, s:s}", "id", op.a.id, "created", op.created, "status",
                              agent_status_name(op.a.status));
        res_doc(res, o);
    }
    agent_free(&op.a);
    json_decref(op.doc);
    return rc;
}

static int entity_get(sb_engine *e, const char *account, int kind, const char *id, sb_result *res);

int sb_agent_get(sb_engine *e, const char *account, const char *agent, sb_result *res)
{
    return entity_get(e, account, NK_AGENT, agent, res);
}

/* List the records of one kind of an account as a JSON array. */
/* The account's agents (kind NK_AGENT) or queues (NK_QUEUE) in id order,
** read through the names table: those after the id `after` (NULL or "":
** from the first), `limit` of them at most (0: all), and "next" (the last
** id given) when more follow. */
static int list_ids(sb_engine *e, const char *account, int kind, const char *after, size_t limit,
                    const char *field, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    if (after && *after && !id_valid(after))
        return res_err(res, SB_EINVAL, "after", "'after' must be an id, the last of a page");
    MDB_txn *txn;
    int rc = eng_read_begin(e, &txn);
    if (rc) return eng_mdb_err(res, rc, "begin read");
    acct_rec acc;
    json_t *arr = json_array();
    char last[SB_ID_MAX + 1] = "";
    int more = 0;
    if ((rc = eng_account(txn, e, account, &acc, res)) == 0) {
        st_iter it;
        uint8_t p[5 + SB_ID_MAX + 1];
        p[0] = (uint8_t)kind;
        put_be32(p + 1, acc.num);
        size_t al = after ? strlen(after) : 0;
        if (al) memcpy(p + 5, after, al);
        for (rc = al ? st_iter_after(&it, txn, e, DB_NAMES, p, 5, p, 5 + al)
                     : st_iter_open(&it, txn, e, DB_NAMES, p, 5);
             rc == 0; rc = st_iter_next(&it)) {
            if (it.klen <= 5 || it.klen - 5 > SB_ID_MAX || it.v.mv_size != 4) continue;
            if (limit && json_array_size(arr) == limit) {
                more = 1;
                break;
            }
            uint32_t num = be32(it.v.mv_data);
            if (kind == NK_AGENT) {
                agent_rec a = {0};
                if (st_agent_load(txn, e, acc.num, num, &a) == 0)
                    json_array_append_new(arr, agent_json(txn, e, acc.num, &a));
                agent_free(&a);
            } else {
                queue_rec q = {0};
                sb_buf d = {0};
                if (st_queue_load(txn, e, acc.num, num, &q) == 0 &&
                    st_doc_load(txn, e, DB_QUEUEDOCS, acc.num, q.num, &d) == 0) {
                    json_t *o = doc_json(&d);
                    json_object_set_new(o, "waiting", json_integer(q.waiting));
                    json_array_append_new(arr, o);
                }
                buf_free(&d);
                queue_free(&q);
            }
            memcpy(last, it.key + 5, it.klen - 5);
            last[it.klen - 5] = 0;
        }
        st_iter_close(&it);
        if (rc == MDB_NOTFOUND) rc = 0;
        if (rc) rc = eng_mdb_err(res, rc, "list");
    }
    eng_read_end(e, txn);
    if (rc) {
        json_decref(arr);
        return rc;
    }
    json_t *o = json_object();
    json_object_set_new(o, field, arr);
    if (more) json_object_set_new(o, "next", json_string(last));
    res_doc(res, o);
    return 0;
}

int sb_agent_list(sb_engine *e, const char *account, sb_result *res)
{
    return list_ids(e, account, NK_AGENT, NULL, 0, "agents", res);
}

int sb_agent_list_page(sb_engine *e, const char *account, const char *after, size_t limit,
                       sb_result *res)
{
    return list_ids(e, account, NK_AGENT, after, limit, "agents", res);
}

/* Remove one membership (and its avail entry). */
static int member_remove(wtx *t, uint32_t queue, uint32_t agent)
{
    uint8_t k[12];
    int rc;
    if ((rc = st_del(t->txn, t->e, DB_MEMBERS, k, key_acct3(k, t->acct, queue, agent))) ||
        (rc = st_del(t->txn, t->e, DB_AVAIL, k, key_acct3(k, t->acct, queue, agent))) ||
        (rc = st_del(t->txn, t->e, DB_AGENTQ, k, key_acct3(k, t->acct, agent, queue))))
        return rc;
    return 0;
}

static int do_agent_delete(wtx *t, void *arg)
{
    const char *id = arg;
    int rc = tx_account(t, ((const char **)arg)[0]);
    if (rc) return rc;
    id = ((const char **)arg)[1];
    agent_rec a = {0};
    rc = st_agent_by_id(t->txn, t->e, t->acct, id, &a);
    if (rc == SB_ENOTFOUND) {
        rc = res_no_such(t->res, "agent", "agent", id);
        goto out;
    }
    if (rc) goto out;
    if (a.status == SB_AGENT_RESERVED || a.status == SB_AGENT_ON_CALL) {
        rc = res_err(t->res, SB_ESTATE, "agent", "agent '%s' is %s; delete it after the call", id,
                     agent_status_name(a.status));
        goto out;
    }
    /* Leave every queue: collect the queue numbers first, then delete. */
    uint32_t qs[256];
    for (;;) {
        int n = 0;
        st_iter it;
        uint8_t p[8];
        for (int r = st_iter_open(&it, t->txn, t->e, DB_AGENTQ, p, key_acct2(p, t->acct, a.num));
             r == 0 && n < 256; r = st_iter_next(&it))
            if (it.klen == 12) qs[n++] = be32(it.key + 8);
        st_iter_close(&it);
        for (int i = 0; i < n; i++) {
            queue_rec q = {0};
            if ((rc = member_remove(t, qs[i], a.num))) goto out;
            if (st_queue_load(t->txn, t->e, t->acct, qs[i], &q) == 0 && q.members > 0) {
                q.members--;
                rc = st_queue_save(t->txn, t->e, t->acct, &q);
            }
            queue_free(&q);
            if (rc || (rc = queue_emptied(t, qs[i]))) goto out;
        }
        if (n < 256) break;
    }
    uint8_t k[8];
    if ((rc = st_del(t->txn, t->e, DB_AGENTS, k, key_acct2(k, t->acct, a.num))) ||
        (rc = st_del(t->txn, t->e, DB_AGENTDOCS, k, key_acct2(k, t->acct, a.num))))
        goto out;
    eng_scrub_want(t->txn, t->e); /* its devices' URIs, as for a changed one */
    /* Its id stays known by number: calls it rang or answered, still live,
    ** name it in their records when they end. */
    if ((rc = st_name_del(t->txn, t->e, NK_AGENT, t->acct, a.id)) == 0 &&
        (rc = st_gone_put(t->txn, t->e, NK_AGENT_GONE, t->acct, a.num, a.id)) == 0)
        rc = acct_give_save(t, LIM_AGENTS);
out:
    agent_free(&a);
    return rc;
}

int sb_agent_delete(sb_engine *e, const char *account, const char *agent, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    const char *args[2] = {account, agent};
    return eng_write_ex(e, do_agent_delete, args, res, 1);
}

/* --- queues and memberships ------------------------------------------------------------ */

static int parse_member(const json_t *m, const char *prefix, member_rec *out, int position,
                        sb_result *res)
{
    long long tier = 1, pos = position, pen = 0;
    double w = 1;
    int rc;
    out->tier = 1;
    if ((rc = jv_int(m, "tier", prefix, 0, 0, 1000, &tier, res)) ||
        (rc = jv_int(m, "position", prefix, 0, 0, 1000000, &pos, res)) ||
        (rc = jv_int(m, "penalty", prefix, 0, 0, 1000, &pen, res)) ||
        (rc = jv_num(m, "weight", prefix, 0.000001, 1000000, &w, res)))
        return rc;
    out->tier = (int32_t)tier;
    out->position = (int32_t)pos;
    out->penalty = (int32_t)pen;
    out->weight = w;
    out->paused = MEMBER_PAUSED_KEEP;
    json_t *p = json_object_get(m, "paused");
    if (p && !json_is_null(p)) {
        if (!json_is_boolean(p)) {
            char field[48];
            snprintf(field, sizeof field, "%s%spaused", prefix ? prefix : "", prefix ? "." : "");
            return res_err(res, SB_EINVAL, field, "'%s' must be true or false", field);
        }
        out->paused = json_is_true(p);
    }
    return 0;
}

/* Add or update one membership; makes the avail entry match the agent.
** *paused: the membership was not paused in this queue and now is. */
static int member_set(wtx *t, queue_rec *q, agent_rec *a, const member_rec *given, int *added,
                      int *paused)
{
    uint8_t k[12];
    MDB_val v;
    sb_engine *e = t->e;
    member_rec was = {0}, mr = *given, *m = &mr;
    int rc = st_get(t->txn, e, DB_MEMBERS, k, key_acct3(k, t->acct, q->num, a->num), &v);
    if (rc && rc != MDB_NOTFOUND) return rc;
    *added = rc == MDB_NOTFOUND;
    if (!*added && dec_member(v.mv_data, v.mv_size, &was)) return SB_ESTORE;
    if (m->paused == MEMBER_PAUSED_KEEP) m->paused = was.paused;
    *paused = m->paused && !was.paused;
    wb_reset(&e->wb);
    enc_member(&e->wb, m);
    if (e->wb.err) return SB_ENOMEM;
    uint8_t rk[12];
    if ((rc = st_put(t->txn, e, DB_MEMBERS, k, 12, e->wb.b.p, e->wb.b.len)) ||
        (rc = st_put(t->txn, e, DB_AGENTQ, rk, key_acct3(rk, t->acct, a->num, q->num), e->wb.b.p,
                     e->wb.b.len)))
        return rc;
    /* This queue's entry alone: the agent's others are as they were (all
    ** of them rewritten made a queue of 1,000 members, each in thousands of
    ** queues, cost seconds). */
    return agent_avail_in(t, a, q->num, m);
}

typedef struct {
    const char *account;
    json_t *doc;
    queue_rec q;
    sb_buf docbuf; /* owns q.doc */
    int created;
} queue_op;

static int parse_queue(json_t *doc, queue_op *op, sb_result *res)
{
    static const char *const keys[] = {"id",
                                       "name",
                                       "policy",
                                       "ring_timeout",
                                       "max_wait",
                                       "max_length",
                                       "overflow",
                                       "wrapup",
                                       "fallback",
                                       "members",
                                       "service_level_seconds",
                                       NULL};
    /* What GET adds: the line's figures (queue_json); a member's status. */
    static const char *const readonly[] = {"waiting", "longest_wait_since_ms", NULL};
    static const char *const mreadonly[] = {"status", NULL};
    char name[SB_ID_MAX + 1];
    int rc;
    queue_rec *q = &op->q;
    jv_drop_readonly(doc, readonly);
    if ((rc = jv_keys(doc, keys, NULL, res)) || (rc = jv_id(doc, "id", NULL, 1, q->id, res)) ||
        (rc = jv_str(doc, "name", NULL, 0, name, sizeof name, res)))
        return rc;
    strcpy(q->policy, "longest-idle");
    if ((rc = jv_str(doc, "policy", NULL, 0, q->policy, sizeof q->policy, res))) return rc;
    if (!policy_name_valid(q->policy))
        return res_err(res, SB_EINVAL, "policy",
                       "'policy' must be a policy name like 'longest-idle' or 'asterisk/rrmemory'");
    long long rt = 20, mw = 0, ml = 0, wu = 0, sl = 0;
    if ((rc = jv_int(doc, "ring_timeout", NULL, 0, 1, 600, &rt, res)) ||
        (rc = jv_int(doc, "service_level_seconds", NULL, 0, 1, 3600, &sl, res)) ||
        (rc = jv_int(doc, "max_wait", NULL, 0, 0, 86400, &mw, res)) ||
        (rc = jv_int(doc, "max_length", NULL, 0, 0, 1000000, &ml, res)) ||
        (rc = jv_int(doc, "wrapup", NULL, 0, 0, 3600, &wu, res)) ||
        (rc = jv_id(doc, "overflow", NULL, 0, q->overflow, res)))
        return rc;
    if (strcmp(q->overflow, q->id) == 0)
        return res_err(res, SB_EINVAL, "overflow", "a queue cannot overflow into itself");
    q->ring_timeout = (uint32_t)rt;
    q->max_wait = (uint32_t)mw;
    q->max_length = (uint32_t)ml;
    q->wrapup = (uint32_t)wu;
    q->sl_seconds = (uint32_t)sl;
    char fb[32] = "longest_idle";
    if ((rc = jv_str(doc, "fallback", NULL, 0, fb, sizeof fb, res))) return rc;
    int f = fallback_parse(fb);
    if (f < 0)
        return res_err(res, SB_EINVAL, "fallback",
                       "'fallback' must be longest_idle, ring_all, wait or reject");
    q->fallback = (uint8_t)f;
    jv_drop_null(doc, "members");
    json_t *mem = json_object_get(doc, "members");
    if (mem && !json_is_array(mem))
        return res_err(res, SB_EINVAL, "members", "'members' must be an array");
    if (mem && json_array_size(mem) > SB_MEMBERS_MAX)
        return res_err(res, SB_EINVAL, "members", "at most %d members", SB_MEMBERS_MAX);
    size_t i;
    json_t *m;
    static const char *const mkeys[] = {"agent",  "tier",   "position", "penalty",
                                        "weight", "paused", NULL};
    json_t *seen = json_object(); /* agent -> its index, to catch an agent listed twice */
    rc = seen ? 0 : SB_ENOMEM;
    json_array_foreach(mem, i, m)
    {
        char prefix[32], agent[SB_ID_MAX + 1];
        member_rec mr;
        snprintf(prefix, sizeof prefix, "members[%zu]", i);
        if (!json_is_object(m)) {
            rc = res_err(res, SB_EINVAL, prefix, "a member must be an object");
            break;
        }
        jv_drop_readonly(m, mreadonly);
        if ((rc = jv_keys(m, mkeys, prefix, res)) ||
            (rc = jv_id(m, "agent", prefix, 1, agent, res)) ||
            (rc = parse_member(m, prefix, &mr, (int)i + 1, res)))
            break;
        json_t *at = json_object_get(seen, agent);
        if (at) {
            char field[48];
            snprintf(field, sizeof field, "%s.agent", prefix);
            rc = res_err(res, SB_EINVAL, field, "agent '%s' is listed twice (members[%lld] too)",
                         agent, (long long)json_integer_value(at));
            break;
        }
        if (json_object_set_new(seen, agent, json_integer((json_int_t)i))) {
            rc = SB_ENOMEM;
            break;
        }
    }
    json_decref(seen);
    if (rc) return rc;
    /* The stored document keeps the queue's settings; members live apart. */
    json_t *copy = json_deep_copy(doc);
    json_object_del(copy, "members");
    rc = store_doc(&op->docbuf, copy);
    json_decref(copy);
    return rc;
}

static int do_queue_put(wtx *t, void *arg)
{
    queue_op *op = arg;
    int rc = tx_account(t, op->account);
    if (rc) return rc;
    sb_engine *e = t->e;
    queue_rec cur = {0};
    int dropped = 0; /* members the new list left out */
    /* A policy named must be there; the default (longest-idle) may be
    ** missing, e.g. for an engine opened without a policy_dir: its calls
    ** then take the fallback. Either, stored, must run. */
    {
        queue_rec was;
        int had = st_queue_by_id(t->txn, e, t->acct, op->q.id, &was) == 0;
        if ((rc = policy_must_have(t, t->acct, op->q.policy, had ? was.policy : NULL, "policy",
                                   POL_HOOK_ROUTE,
                                   json_object_get(op->doc, "policy")
                                       ? NULL
                                       : "a queue that names no policy routes with it")))
            return rc;
    }
    /* No fallback of its own: the account's, as it is now. */
    if (!json_object_get(op->doc, "fallback") || json_is_null(json_object_get(op->doc, "fallback")))
        op->q.fallback = t->account->fallback;
    uint32_t onum;
    if (op->q.overflow[0] &&
        (rc = st_name_get(t->txn, e, NK_QUEUE, t->acct, op->q.overflow, &onum))) {
        if (rc == MDB_NOTFOUND)
            return res_err(t->res, SB_EINVAL, "overflow",
                           "no queue '%s' to overflow into (create it first)", op->q.overflow);
        return rc;
    }
    rc = st_queue_by_id(t->txn, e, t->acct, op->q.id, &cur);
    if (rc == 0) {
        uint32_t waiting = cur.waiting, num = cur.num, members = cur.members;
        cur = op->q;
        cur.num = num;
        cur.waiting = waiting;
        cur.members = members;
        op->created = 0;
    } else if (rc == SB_ENOTFOUND) {
        if ((rc = acct_take(t, LIM_QUEUES))) return rc;
        cur = op->q;
        cur.num = t->account->next_queue++;
        cur.waiting = cur.members = 0;
        if ((rc = st_account_save(t->txn, e, t->account)) ||
            (rc = st_name_put(t->txn, e, NK_QUEUE, t->acct, cur.id, cur.num)))
            goto out;
        op->created = 1;
    } else {
        return rc;
    }
    json_t *mem = json_object_get(op->doc, "members");
    if (mem) {
        /* Replace the member list: drop members not listed, set the others. */
        uint32_t *keep = calloc(json_array_size(mem) + 1, sizeof *keep);
        size_t nkeep = 0, i;
        json_t *m;
        if (!keep) {
            rc = SB_ENOMEM;
            goto out;
        }
        json_array_foreach(mem, i, m)
        {
            char prefix[32], id[SB_ID_MAX + 1];
            member_rec mr;
            agent_rec a = {0};
            int added;
            snprintf(prefix, sizeof prefix, "members[%zu]", i);
            jv_id(m, "agent", prefix, 1, id, NULL);
            parse_member(m, prefix, &mr, (int)i + 1, NULL);
            rc = st_agent_by_id(t->txn, e, t->acct, id, &a);
            if (rc == SB_ENOTFOUND) {
                char field[48];
                snprintf(field, sizeof field, "members[%zu].agent", i);
                rc = res_err(t->res, SB_EINVAL, field, "unknown agent '%s'", id);
            }
            int paused = 0;
            if (!rc) rc = member_set(t, &cur, &a, &mr, &added, &paused);
            dropped += paused; /* as good as gone for the calls waiting */
            if (!rc) keep[nkeep++] = a.num;
            agent_free(&a);
            if (rc) {
                free(keep);
                goto out;
            }
        }
        /* Members of the stored queue that the new list does not name. */
        uint32_t drop[512];
        int ndrop;
        do {
            ndrop = 0;
            st_iter it;
            uint8_t p[8];
            for (int r =
                     st_iter_open(&it, t->txn, e, DB_MEMBERS, p, key_acct2(p, t->acct, cur.num));
                 r == 0 && ndrop < 512; r = st_iter_next(&it)) {
                if (it.klen != 12) continue;
                uint32_t an = be32(it.key + 8);
                size_t j = 0;
                while (j < nkeep && keep[j] != an)
                    j++;
                if (j == nkeep) drop[ndrop++] = an;
            }
            st_iter_close(&it);
            for (int d = 0; d < ndrop && !rc; d++)
                rc = member_remove(t, cur.num, drop[d]);
            dropped += ndrop;
        } while (!rc && ndrop == 512);
        free(keep);
        if (rc) goto out;
        cur.members = (uint32_t)nkeep;
    }
    if ((rc = st_queue_save(t->txn, e, t->acct, &cur)) ||
        (rc = st_doc_save(t->txn, e, DB_QUEUEDOCS, t->acct, cur.num, op->docbuf.p, op->docbuf.len)))
        goto out;
    op->q.num = cur.num;
    if (cur.waiting && !(rc = dispatch_queue(t, cur.num)) && dropped)
        rc = queue_emptied(t, cur.num);
out:
    queue_free(&cur);
    return rc;
}

int sb_queue_put(sb_engine *e, const char *account, const char *json, size_t len, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    queue_op op = {.account = account};
    int rc = jv_parse(json, len, &op.doc, res);
    if (rc) return rc;
    if ((rc = parse_queue(op.doc, &op, res)) == 0 &&
        (rc = eng_write(e, do_queue_put, &op, res)) == 0)
        res_doc(res, json_pack("{s:s, s:b}", "id", op.q.id, "created", op.created));
    queue_free(&op.q);
    buf_free(&op.docbuf);
    json_decref(op.doc);
    return rc;
}

/* When the call longest in the queue's line came to the queue (Unix ms;
** -1 when none waits): the earliest time queued of its waiting list, what
** ctx.queue.longest_wait counts from (events.c's queue_line). A time, not a
** duration, as an agent's idle_since_ms: a read says the same until the line
** changes. The line is ordered by priority first, so all of it is read: one
** step per call. */
static int64_t longest_wait_since(MDB_txn *txn, sb_engine *e, uint32_t acct, const queue_rec *q)
{
    int64_t first = INT64_MAX;
    st_iter it;
    uint8_t p[8];
    for (int rc = st_iter_open(&it, txn, e, DB_WAITING, p, key_acct2(p, acct, q->num)); rc == 0;
         rc = st_iter_next(&it)) {
        if (it.klen < 17) continue;
        int64_t queued = (int64_t)be64(it.key + 9);
        if (queued < first) first = queued;
    }
    st_iter_close(&it);
    return first != INT64_MAX ? first : -1;
}

static json_t *queue_json(MDB_txn *txn, sb_engine *e, uint32_t acct, const queue_rec *q)
{
    sb_buf d = {0};
    st_doc_load(txn, e, DB_QUEUEDOCS, acct, q->num, &d);
    json_t *o = doc_json(&d);
    buf_free(&d);
    /* The fallback in force, also one taken from the account. */
    json_object_set_new(o, "fallback", json_string(fallback_name(q->fallback)));
    json_object_set_new(o, "waiting", json_integer(q->waiting));
    int64_t since = longest_wait_since(txn, e, acct, q);
    if (since >= 0) json_object_set_new(o, "longest_wait_since_ms", json_integer(since));
    json_t *arr = json_array();
    st_iter it;
    uint8_t p[8];
    for (int rc = st_iter_open(&it, txn, e, DB_MEMBERS, p, key_acct2(p, acct, q->num)); rc == 0;
         rc = st_iter_next(&it)) {
        {
            member_rec m;
            agent_rec a = {0};
            if (it.klen == 12 && dec_member(it.v.mv_data, it.v.mv_size, &m) == 0 &&
                st_agent_load(txn, e, acct, be32(it.key + 8), &a) == 0)
                json_array_append_new(arr,
                                      json_pack("{s:s, s:i, s:i, s:i, s:f, s:b, s:s}", "agent",
                                                a.id, "tier", m.tier, "position", m.position,
                                                "penalty", m.penalty, "weight", m.weight, "paused",
                                                m.paused, "status", agent_status_name(a.status)));
            agent_free(&a);
        }
    }
    st_iter_close(&it);
    json_object_set_new(o, "members", arr);
    return o;
}

/* Read one agent or queue of an account into res as JSON. */
static int entity_get(sb_engine *e, const char *account, int kind, const char *id, sb_result *res)
{
    const char *what = kind == NK_AGENT ? "agent" : "queue";
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    MDB_txn *txn;
    int rc = eng_read_begin(e, &txn);
    if (rc) return eng_mdb_err(res, rc, "begin read");
    acct_rec acc;
    agent_rec a = {0};
    queue_rec q = {0};
    if ((rc = eng_account(txn, e, account, &acc, res)) == 0) {
        rc = kind == NK_AGENT ? st_agent_by_id(txn, e, acc.num, id, &a)
                              : st_queue_by_id(txn, e, acc.num, id, &q);
        if (rc == SB_ENOTFOUND)
            rc = res_no_such(res, what, what, id);
        else if (rc)
            rc = eng_mdb_err(res, rc, kind == NK_AGENT ? "read agent" : "read queue");
        else
            res_doc(res, kind == NK_AGENT ? agent_json(txn, e, acc.num, &a)
                                          : queue_json(txn, e, acc.num, &q));
    }
    agent_free(&a);
    queue_free(&q);
    eng_read_end(e, txn);
    return rc;
}

int sb_queue_get(sb_engine *e, const char *account, const char *queue, sb_result *res)
{
    return entity_get(e, account, NK_QUEUE, queue, res);
}

int sb_queue_list(sb_engine *e, const char *account, sb_result *res)
{
    return list_ids(e, account, NK_QUEUE, NULL, 0, "queues", res);
}

int sb_queue_list_page(sb_engine *e, const char *account, const char *after, size_t limit,
                       sb_result *res)
{
    return list_ids(e, account, NK_QUEUE, after, limit, "queues", res);
}

static int do_queue_delete(wtx *t, void *arg)
{
    const char **args = arg;
    int rc = tx_account(t, args[0]);
    if (rc) return rc;
    queue_rec q = {0};
    rc = st_queue_by_id(t->txn, t->e, t->acct, args[1], &q);
    if (rc == SB_ENOTFOUND) rc = res_no_such(t->res, "queue", "queue", args[1]);
    if (rc) goto out;
    /* Refused while another queue overflows into it: its calls would have
    ** nowhere to go. */
    st_iter qi;
    uint8_t qp[4];
    for (rc = st_iter_open(&qi, t->txn, t->e, DB_QUEUES, qp, key_acct(qp, t->acct)); rc == 0;
         rc = st_iter_next(&qi)) {
        queue_rec o = {0};
        int into = dec_queue(qi.v.mv_data, qi.v.mv_size, &o) == 0 && o.num != q.num &&
                   strcmp(o.overflow, q.id) == 0;
        if (into)
            rc = res_err(t->res, SB_ESTATE, "queue",
                         "queue '%s' overflows into '%s'; change its overflow first", o.id, q.id);
        queue_free(&o);
        if (rc) break;
    }
    st_iter_close(&qi);
    if (rc != MDB_NOTFOUND) goto out;
    /* Refused while a call is in the queue (waiting, ringing or connected):
    ** its later events need the queue. */
    uint32_t live;
    char ids[LIVE_IDS * (SB_ID_MAX + 2) + 8];
    if ((rc = live_calls(t, q.num, &live, ids))) goto out;
    if (live) {
        rc = res_err(t->res, SB_ESTATE, "queue",
                     "queue '%s' has %u live call%s (%s); end them, then delete it", q.id, live,
                     live == 1 ? "" : "s", ids);
        goto out;
    }
    for (;;) {
        uint32_t drop[512];
        int n = 0;
        st_iter it;
        uint8_t p[8];
        for (int r = st_iter_open(&it, t->txn, t->e, DB_MEMBERS, p, key_acct2(p, t->acct, q.num));
             r == 0 && n < 512; r = st_iter_next(&it))
            if (it.klen == 12) drop[n++] = be32(it.key + 8);
        st_iter_close(&it);
        for (int i = 0; i < n; i++)
            if ((rc = member_remove(t, q.num, drop[i]))) goto out;
        if (n < 512) break;
    }
    uint8_t k[8];
    if ((rc = st_del(t->txn, t->e, DB_QUEUES, k, key_acct2(k, t->acct, q.num))) ||
        (rc = st_del(t->txn, t->e, DB_QUEUEDOCS, k, key_acct2(k, t->acct, q.num))))
        goto out;
    /* Its id stays for its aggregates (sb_aggregates). */
    if ((rc = st_gone_put(t->txn, t->e, NK_QUEUE_GONE, t->acct, q.num, q.id))) goto out;
    if ((rc = st_name_del(t->txn, t->e, NK_QUEUE, t->acct, q.id)) == 0)
        rc = acct_give_save(t, LIM_QUEUES);
out:
    queue_free(&q);
    return rc;
}

int sb_queue_delete(sb_engine *e, const char *account, const char *queue, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    const char *args[2] = {account, queue};
    return eng_write_ex(e, do_queue_delete, (void *)args, res, 1);
}

typedef struct {
    const char *account, *queue, *agent;
    member_rec m;
    int remove;
    int keep_position; /* no position given: the member's own, or after the last */
} member_op;

/* Where a member whose position was not given goes: where it is, or (a new
** member) after the queue's last. */
static int member_position(wtx *t, uint32_t queue, uint32_t agent, int32_t *pos)
{
    uint8_t p[8];
    st_iter it;
    int rc;
    *pos = 1; /* positions count from 1, as in a queue document */
    for (rc = st_iter_open(&it, t->txn, t->e, DB_MEMBERS, p, key_acct2(p, t->acct, queue)); rc == 0;
         rc = st_iter_next(&it)) {
        member_rec m;
        if (it.klen != 12 || dec_member(it.v.mv_data, it.v.mv_size, &m)) continue;
        if (be32(it.key + 8) == agent) {
            *pos = m.position;
            break;
        }
        if (m.position >= *pos) *pos = m.position < 1000000 ? m.position + 1 : 1000000;
    }
    st_iter_close(&it);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int do_member(wtx *t, void *arg)
{
    member_op *op = arg;
    int rc = tx_account(t, op->account);
    if (rc) return rc;
    queue_rec q = {0};
    agent_rec a = {0};
    rc = st_queue_by_id(t->txn, t->e, t->acct, op->queue, &q);
    if (rc == SB_ENOTFOUND) rc = res_no_such(t->res, "queue", "queue", op->queue);
    if (rc) goto out;
    rc = st_agent_by_id(t->txn, t->e, t->acct, op->agent, &a);
    if (rc == SB_ENOTFOUND) rc = res_no_such(t->res, "agent", "agent", op->agent);
    if (rc) goto out;
    if (op->remove) {
        uint8_t k[12];
        MDB_val v;
        rc = st_get(t->txn, t->e, DB_MEMBERS, k, key_acct3(k, t->acct, q.num, a.num), &v);
        if (rc == MDB_NOTFOUND) {
            rc = res_err(t->res, SB_ENOTFOUND, "agent", "agent '%s' is not a member of '%s'", a.id,
                         q.id);
            goto out;
        }
        if (rc || (rc = member_remove(t, q.num, a.num))) goto out;
        if (q.members) q.members--;
        if (!(rc = st_queue_save(t->txn, t->e, t->acct, &q))) rc = queue_emptied(t, q.num);
    } else {
        int added;
        if (op->keep_position && (rc = member_position(t, q.num, a.num, &op->m.position))) goto out;
        int paused = 0;
        if ((rc = member_set(t, &q, &a, &op->m, &added, &paused))) goto out;
        if (added && q.members >= SB_MEMBERS_MAX) { /* as a queue document's (the write undone) */
            rc = res_err(t->res, SB_EINVAL, "agent", "queue '%s' has %d members, the most it takes",
                         q.id, SB_MEMBERS_MAX);
            goto out;
        }
        if (added) {
            q.members++;
            if ((rc = st_queue_save(t->txn, t->e, t->acct, &q))) goto out;
        }
        if (a.status == SB_AGENT_AVAILABLE && q.waiting) rc = dispatch_queue(t, q.num);
        if (!rc && paused) rc = queue_emptied(t, q.num);
    }
out:
    queue_free(&q);
    agent_free(&a);
    return rc;
}

int sb_member_put(sb_engine *e, const char *account, const char *queue, const char *agent,
                  const char *json, size_t len, sb_result *res)
{
    static const char *const keys[] = {"tier", "position", "penalty", "weight", "paused", NULL};
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    member_op op = {.account = account, .queue = queue, .agent = agent};
    int rc = 0;
    if (json && len) {
        json_t *doc;
        if ((rc = jv_parse(json, len, &doc, res))) return rc;
        if (!(rc = jv_keys(doc, keys, NULL, res))) rc = parse_member(doc, NULL, &op.m, 0, res);
        json_t *pos = json_object_get(doc, "position"); /* null: none, as jv_int reads it */
        op.keep_position = !pos || json_is_null(pos);
        json_decref(doc);
        if (rc) return rc;
    } else {
        op.m = (member_rec){
            .tier = 1, .position = 0, .penalty = 0, .weight = 1, .paused = MEMBER_PAUSED_KEEP};
        op.keep_position = 1;
    }
    return eng_write(e, do_member, &op, res);
}

int sb_member_delete(sb_engine *e, const char *account, const char *queue, const char *agent,
                     sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    member_op op = {.account = account, .queue = queue, .agent = agent, .remove = 1};
    return eng_write_ex(e, do_member, &op, res, 1);
}
