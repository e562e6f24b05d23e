/*
** records.c — call records: written with the call's final event, read back
** by sb_call_get once the live call is gone.
*/
#include "records.h"

#include <stdlib.h>
#include <string.h>

#define V_RECORD 1

static size_t rec_key(uint8_t *k, uint32_t acct, const char *id)
{
    size_t n = strlen(id);
    put_be32(k, acct);
    memcpy(k + 4, id, n);
    return 4 + n;
}

/* The agent's id, remembering the last one looked up (attempts of a call
** mostly name the same one or two agents). */
static const char *agent_name(wtx *t, uint32_t num, agent_rec *a)
{
    if (!num) return "";
    if (a->num == num && a->id[0]) return a->id;
    a->id[0] = 0;
    if (st_agent_load(t->txn, t->e, t->acct, num, a)) return "";
    return a->id;
}

int record_write(wtx *t, const call_rec *c, const queue_rec *q, const char *outcome)
{
    sb_engine *e = t->e;
    wbuf *wp = &e->wb2, w;
    wb_reset(wp);
    w = *wp;
    agent_rec a = {0};
    queue_rec first = {0};
    int64_t end = t->now;
    int64_t wait = (c->answered ? c->answered : end) - c->offered;
    int64_t talk = c->answered ? end - c->answered : 0;
    wb_u8(&w, V_RECORD);
    wb_str(&w, c->id);
    wb_str(&w, q->id);
    if (c->first_queue != c->queue && st_queue_load(t->txn, e, t->acct, c->first_queue, &first) == 0)
        wb_str(&w, first.id);
    else
        wb_str(&w, q->id);
    wb_str(&w, outcome);
    wb_i32(&w, c->priority);
    wb_i64(&w, c->offered);
    wb_i64(&w, c->answered);
    wb_i64(&w, end);
    wb_i64(&w, wait);
    wb_i64(&w, talk);
    wb_str(&w, agent_name(t, c->answered ? c->agent : 0, &a));
    wb_u8(&w, c->natt);
    for (int i = 0; i < c->natt; i++) {
        const attempt_rec *x = &c->att[i];
        wb_str(&w, agent_name(t, x->agent, &a));
        wb_u8(&w, x->dev);
        wb_u8(&w, x->outcome);
        wb_i64(&w, x->start);
        wb_i32(&w, x->dur_ms);
    }
    /* The distinct policy versions that decided. */
    int nv = 0;
    const trace_rec *vs[MAX_TRACE];
    for (int i = 0; i < c->ntrace; i++) {
        int seen = 0;
        for (int j = 0; j < nv; j++)
            if (strcmp(vs[j]->version, c->trace[i].version) == 0 &&
                strcmp(vs[j]->policy, c->trace[i].policy) == 0)
                seen = 1;
        if (!seen) vs[nv++] = &c->trace[i];
    }
    wb_u8(&w, (uint8_t)nv);
    for (int i = 0; i < nv; i++) {
        wb_str(&w, vs[i]->policy);
        wb_str(&w, vs[i]->version);
    }
    wb_strn(&w, c->attrs.p ? c->attrs.p : "", c->attrs.len);
    agent_free(&a);
    queue_free(&first);
    int rc = w.err ? SB_ENOMEM : 0;
    if (!rc) {
        uint8_t k[4 + SB_ID_MAX];
        rc = st_put(t->txn, e, DB_RECORDS, k, rec_key(k, t->acct, c->id), w.b.p, w.b.len);
    }
    *wp = w; /* keep the (possibly grown) buffer for the next record */
    return rc;
}

int record_get(sb_engine *e, MDB_txn *txn, const char *account, const char *call_id,
               sb_result *res)
{
    acct_rec acc;
    int rc = st_account_by_id(txn, e, account, &acc);
    if (rc == SB_ENOTFOUND)
        return res_err(res, SB_ENOTFOUND, "account", "no such account");
    if (rc) return eng_mdb_err(res, rc, "read account");
    uint8_t k[4 + SB_ID_MAX];
    MDB_val v;
    if (!id_valid(call_id)) return res_err(res, SB_ENOTFOUND, "call", "no such call '?'");
    rc = st_get(txn, e, DB_RECORDS, k, rec_key(k, acc.num, call_id), &v);
    if (rc == MDB_NOTFOUND)
        return res_err(res, SB_ENOTFOUND, "call", "no such call '%s'", call_id);
    if (rc) return eng_mdb_err(res, rc, "read record");
    rbuf r;
    rb_init(&r, v.mv_data, v.mv_size);
    char id[SB_ID_MAX + 1], queue[SB_ID_MAX + 1], first[SB_ID_MAX + 1], outcome[32],
        agent[SB_ID_MAX + 1];
    int ver = rb_u8(&r);
    rb_str(&r, id, sizeof id);
    rb_str(&r, queue, sizeof queue);
    rb_str(&r, first, sizeof first);
    rb_str(&r, outcome, sizeof outcome);
    int prio = rb_i32(&r);
    int64_t offered = rb_i64(&r), answered = rb_i64(&r), ended = rb_i64(&r);
    int64_t wait = rb_i64(&r), talk = rb_i64(&r);
    rb_str(&r, agent, sizeof agent);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:f, s:f}", "id", id,
                          "state", "ended", "queue", queue, "first_queue", first, "outcome",
                          outcome, "priority", prio, "offered_ms", (json_int_t)offered,
                          "ended_ms", (json_int_t)ended, "wait", wait / 1000.0, "talk",
                          talk / 1000.0);
    if (answered) json_object_set_new(o, "answered_ms", json_integer(answered));
    if (agent[0]) json_object_set_new(o, "agent", json_string(agent));
    int natt = rb_u8(&r);
    json_t *att = json_array();
    for (int i = 0; i < natt && !r.err; i++) {
        char aid[SB_ID_MAX + 1];
        rb_str(&r, aid, sizeof aid);
        int dev = rb_u8(&r), out = rb_u8(&r);
        int64_t start = rb_i64(&r);
        int32_t dur = rb_i32(&r);
        json_array_append_new(att, json_pack("{s:s, s:s, s:s, s:I, s:f}", "agent", aid, "device",
                                             pol_dev_name(dev), "outcome",
                                             out ? ring_outcome_name(out) : "cancelled",
                                             "start_ms", (json_int_t)start, "duration",
                                             dur / 1000.0));
    }
    json_object_set_new(o, "attempts_detail", att);
    int nv = rb_u8(&r);
    json_t *vs = json_array();
    for (int i = 0; i < nv && !r.err; i++) {
        char pol[SB_NAME_MAX + 1], version[17];
        rb_str(&r, pol, sizeof pol);
        rb_str(&r, version, sizeof version);
        json_array_append_new(vs, json_pack("{s:s, s:s}", "policy", pol, "version", version));
    }
    json_object_set_new(o, "policy_versions", vs);
    size_t al;
    const char *attrs = rb_strp(&r, &al);
    if (al && !r.err) json_object_set_new(o, "attrs", json_loadb(attrs, al, 0, NULL));
    if (r.err || ver != V_RECORD || r.p != r.end) {
        json_decref(o);
        return res_err(res, SB_ESTORE, NULL, "record of call '%s' is corrupt", call_id);
    }
    res_doc(res, o);
    return 0;
}
