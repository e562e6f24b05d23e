/*
** model.c — binary encoding of the stored model. Each record starts with a
** format version; decoders reject versions they do not know and any value
** that is truncated or inconsistent (SB_ESTORE), so a corrupt database gives
** an error, never a crash.
*/
#include "model.h"
#include "crypto.h"

#include <stdlib.h>
#include <string.h>

#define V_ACCOUNT 2 /* 2: limits and counts */
#define V_AGENT                                                                                    \
    4              /* 1: before plain_devices; 2: before the status after a call; 3: before        \
                   ** missed_at */
#define V_QUEUE 2  /* 2: sl_seconds */
#define V_MEMBER 2 /* 2: paused (1 read as not) */
#define V_AVAIL 2  /* 1: before missed_at */
#define V_CALL                                                                                     \
    6 /* 2: numbers sealed (pii), pseudonyms, caller history; 3: talk across                       \
      ** transfers (connected, talked); 4: sealed_v3; 5: withheld; 6: the                          \
      ** queue's figures (q_entered, q_answered, q_talked, q_owed) */

static const char *const fb_names[] = {"longest_idle", "ring_all", "wait", "reject"};

const char *fallback_name(int fb)
{
    return fb >= 0 && fb < (int)countof(fb_names) ? fb_names[fb] : "longest_idle";
}

int fallback_parse(const char *s)
{
    for (int i = 0; s && i < (int)countof(fb_names); i++)
        if (strcmp(s, fb_names[i]) == 0) return i;
    return -1;
}

int dev_index(int bit)
{
    return bit == 1 ? 0 : bit == 2 ? 1 : bit == 4 ? 2 : -1;
}

static int done(rbuf *r, int version_ok)
{
    return (r->err || !version_ok || r->p != r->end) ? SB_ESTORE : 0;
}

/* Copy a length-prefixed blob into an owned buffer. */
static void rb_buf(rbuf *r, sb_buf *dst, size_t max)
{
    size_t n;
    const char *s = rb_strp(r, &n);
    dst->len = 0;
    if (r->err) return;
    if (n > max || buf_put(dst, s, n)) r->err = 1;
}

void enc_account(wbuf *w, const acct_rec *a)
{
    wb_u8(w, V_ACCOUNT);
    wb_u32(w, a->num);
    wb_str(w, a->id);
    wb_str(w, a->name);
    wb_u8(w, a->fallback);
    wb_u32(w, a->next_agent);
    wb_u32(w, a->next_queue);
    wb_i64(w, (int64_t)a->policy_gen);
    wb_i64(w, a->created);
    wb_u8(w, a->counted);
    for (int i = 0; i < LIM_COUNT; i++) {
        wb_u32(w, (uint32_t)a->limit[i]);
        wb_u32(w, a->used[i]);
    }
}

int dec_account(const void *p, size_t n, acct_rec *a)
{
    rbuf r;
    rb_init(&r, p, n);
    int v = rb_u8(&r);
    a->num = rb_u32(&r);
    rb_str(&r, a->id, sizeof a->id);
    rb_str(&r, a->name, sizeof a->name);
    a->fallback = rb_u8(&r);
    a->next_agent = rb_u32(&r);
    a->next_queue = rb_u32(&r);
    a->policy_gen = (uint64_t)rb_i64(&r);
    a->created = rb_i64(&r);
    a->counted = 0;
    int lim_ok = 1;
    for (int i = 0; i < LIM_COUNT; i++) {
        a->limit[i] = LIM_NONE;
        a->used[i] = 0;
    }
    if (v >= 2) { /* format 1: no limits, nothing counted */
        a->counted = rb_u8(&r);
        for (int i = 0; i < LIM_COUNT; i++) {
            a->limit[i] = (int32_t)rb_u32(&r);
            a->used[i] = rb_u32(&r);
            if (a->limit[i] != LIM_NONE && (a->limit[i] < 0 || a->limit[i] > LIM_MAX)) lim_ok = 0;
        }
        if (a->counted > 1) lim_ok = 0;
    }
    return done(&r, v >= 1 && v <= V_ACCOUNT && a->fallback <= FB_REJECT && lim_ok);
}

void enc_agent(wbuf *w, const agent_rec *a)
{
    wb_u8(w, V_AGENT);
    wb_u32(w, a->num);
    wb_str(w, a->id);
    wb_u8(w, a->status);
    wb_i64(w, a->status_since);
    wb_i64(w, a->idle_since);
    wb_i64(w, a->last_call);
    wb_u32(w, a->calls_taken);
    wb_u32(w, a->no_answers);
    wb_i64(w, a->talk_ms);
    wb_str(w, a->reason);
    wb_str(w, a->call);
    wb_f64(w, a->weight);
    wb_u32(w, a->wrapup_s);
    wb_i64(w, a->wrapup_due);
    for (int i = 0; i < 3; i++)
        wb_str(w, a->uri[i]);
    wb_u8(w, a->plain_devices);
    wb_u8(w, a->has_next);
    wb_u8(w, a->next_status);
    wb_str(w, a->next_reason);
    wb_i64(w, a->missed_at);
}

int dec_agent(const void *p, size_t n, agent_rec *a)
{
    rbuf r;
    rb_init(&r, p, n);
    int v = rb_u8(&r);
    a->num = rb_u32(&r);
    rb_str(&r, a->id, sizeof a->id);
    a->status = rb_u8(&r);
    a->status_since = rb_i64(&r);
    a->idle_since = rb_i64(&r);
    a->last_call = rb_i64(&r);
    a->calls_taken = rb_u32(&r);
    a->no_answers = rb_u32(&r);
    a->talk_ms = rb_i64(&r);
    rb_str(&r, a->reason, sizeof a->reason);
    rb_str(&r, a->call, sizeof a->call);
    a->weight = rb_f64(&r);
    a->wrapup_s = rb_u32(&r);
    a->wrapup_due = rb_i64(&r);
    for (int i = 0; i < 3; i++)
        rb_str(&r, a->uri[i], sizeof a->uri[i]);
    a->plain_devices = v >= 2 ? rb_u8(&r) : 0; /* unknown: look at the document */
    a->has_next = a->next_status = 0;
    a->next_reason[0] = 0;
    if (v >= 3) {
        a->has_next = rb_u8(&r);
        a->next_status = rb_u8(&r);
        rb_str(&r, a->next_reason, sizeof a->next_reason);
    }
    a->missed_at = v >= 4 ? rb_i64(&r) : 0;
    /* A status after the call is a pause or offline; none leaves the
    ** fields empty (the decoder takes nothing its encoder would not write). */
    int next_ok = a->has_next ? a->has_next == 1 && (a->next_status == SB_AGENT_PAUSED ||
                                                     a->next_status == SB_AGENT_OFFLINE)
                              : a->next_status == 0 && !a->next_reason[0];
    return done(&r, v >= 1 && v <= V_AGENT && a->status <= SB_AGENT_WRAP_UP &&
                        a->plain_devices <= 1 && next_ok);
}

void enc_queue(wbuf *w, const queue_rec *q)
{
    wb_u8(w, V_QUEUE);
    wb_u32(w, q->num);
    wb_str(w, q->id);
    wb_str(w, q->policy);
    wb_str(w, q->overflow);
    wb_u32(w, q->ring_timeout);
    wb_u32(w, q->max_wait);
    wb_u32(w, q->max_length);
    wb_u32(w, q->wrapup);
    wb_u8(w, q->fallback);
    wb_u32(w, q->waiting);
    wb_u32(w, q->members);
    wb_u32(w, q->sl_seconds);
}

int dec_queue(const void *p, size_t n, queue_rec *q)
{
    rbuf r;
    rb_init(&r, p, n);
    int v = rb_u8(&r);
    q->num = rb_u32(&r);
    rb_str(&r, q->id, sizeof q->id);
    rb_str(&r, q->policy, sizeof q->policy);
    rb_str(&r, q->overflow, sizeof q->overflow);
    q->ring_timeout = rb_u32(&r);
    q->max_wait = rb_u32(&r);
    q->max_length = rb_u32(&r);
    q->wrapup = rb_u32(&r);
    q->fallback = rb_u8(&r);
    q->waiting = rb_u32(&r);
    q->members = rb_u32(&r);
    q->sl_seconds = v >= 2 ? rb_u32(&r) : 0;
    return done(&r, v >= 1 && v <= V_QUEUE && q->fallback <= FB_REJECT && q->sl_seconds <= 3600);
}

void enc_member(wbuf *w, const member_rec *m)
{
    wb_u8(w, V_MEMBER);
    wb_i32(w, m->tier);
    wb_i32(w, m->position);
    wb_i32(w, m->penalty);
    wb_f64(w, m->weight);
    wb_u8(w, m->paused == 1);
}

int dec_member(const void *p, size_t n, member_rec *m)
{
    rbuf r;
    rb_init(&r, p, n);
    int v = rb_u8(&r);
    m->tier = rb_i32(&r);
    m->position = rb_i32(&r);
    m->penalty = rb_i32(&r);
    m->weight = rb_f64(&r);
    m->paused = v >= 2 ? rb_u8(&r) : 0;
    return done(&r, v >= 1 && v <= V_MEMBER && m->paused <= 1);
}

void enc_avail(wbuf *w, const avail_rec *a)
{
    wb_u8(w, V_AVAIL);
    wb_i64(w, a->idle_since);
    wb_i64(w, a->last_call);
    wb_i64(w, a->talk_ms);
    wb_u32(w, a->calls_taken);
    wb_u32(w, a->no_answers);
    wb_f64(w, a->weight);
    wb_i32(w, a->m.tier);
    wb_i32(w, a->m.position);
    wb_i32(w, a->m.penalty);
    wb_f64(w, a->m.weight);
    wb_u8(w, a->devices);
    wb_i64(w, a->missed_at);
    wb_str(w, a->id);
}

/* The fixed part of an availability entry, before its id's length and
** bytes; format 1 had no missed_at. */
#define AVAIL_FIXED (1 + 3 * 8 + 2 * 4 + 8 + 3 * 4 + 8 + 1 + 8)
#define AVAIL_FIXED_V1 (AVAIL_FIXED - 8)

int dec_avail(const void *p, size_t n, avail_rec *a)
{
    /* Routing reads one entry per available agent of the queue, so it is
    ** read at fixed offsets, in enc_avail's order (test_events checks the
    ** two agree); anything not exactly that shape is a damaged entry. */
    const uint8_t *b = p;
    uint32_t idl;
    size_t fixed = n && b[0] == 1 ? AVAIL_FIXED_V1 : AVAIL_FIXED;
    if (n < fixed + 4 || (b[0] != V_AVAIL && b[0] != 1)) return SB_ESTORE;
    memcpy(&idl, b + fixed, 4);
    if (idl != n - fixed - 4 || idl >= sizeof a->id) return SB_ESTORE;
    /* The id, checked for NULs as it is copied: agent ids are a few bytes,
    ** where a call of memchr and one of memcpy cost more than the loop. */
    const uint8_t *id = b + fixed + 4;
    for (uint32_t i = 0; i < idl; i++)
        if (!(a->id[i] = (char)id[i])) return SB_ESTORE;
    a->id[idl] = 0;
    memcpy(&a->idle_since, b + 1, 8);
    memcpy(&a->last_call, b + 9, 8);
    memcpy(&a->talk_ms, b + 17, 8);
    memcpy(&a->calls_taken, b + 25, 4);
    memcpy(&a->no_answers, b + 29, 4);
    memcpy(&a->weight, b + 33, 8);
    memcpy(&a->m.tier, b + 41, 4);
    memcpy(&a->m.position, b + 45, 4);
    memcpy(&a->m.penalty, b + 49, 4);
    memcpy(&a->m.weight, b + 53, 8);
    a->devices = b[61];
    if (fixed == AVAIL_FIXED)
        memcpy(&a->missed_at, b + 62, 8);
    else
        a->missed_at = 0;
    return 0;
}

static void enc_targets(wbuf *w, const ring_target *t, int n)
{
    wb_u8(w, (uint8_t)n);
    for (int i = 0; i < n; i++) {
        wb_u32(w, t[i].agent);
        wb_u8(w, t[i].dev);
    }
}

static int dec_targets(rbuf *r, ring_target *t)
{
    int n = rb_u8(r);
    if (n > MAX_RING) {
        r->err = 1;
        return 0;
    }
    for (int i = 0; i < n; i++) {
        t[i].agent = rb_u32(r);
        t[i].dev = rb_u8(r);
    }
    return n;
}

void enc_call(wbuf *w, const call_rec *c)
{
    wb_u8(w, V_CALL);
    wb_str(w, c->id);
    wb_u32(w, c->queue);
    wb_u32(w, c->first_queue);
    wb_u8(w, c->state);
    /* Numbers are never stored in the clear: only their sealed form. */
    wb_strn(w, c->pii.p ? c->pii.p : "", c->pii.len);
    wb_u8(w, c->npseudo);
    wb_put(w, c->pseudo, sizeof c->pseudo);
    wb_u32(w, c->prev_agent);
    wb_i32(w, c->priority);
    wb_i64(w, c->offered);
    wb_i64(w, c->queued);
    wb_i64(w, c->answered);
    wb_u32(w, c->attempts);
    wb_u32(w, c->agent);
    wb_u32(w, c->last_agent);
    enc_targets(w, c->ring, c->nring);
    wb_i64(w, c->ring_start);
    wb_i32(w, c->ring_timeout);
    enc_targets(w, c->seq, c->nseq);
    wb_u8(w, c->seqpos);
    wb_i64(w, c->ring_due);
    wb_i64(w, c->wake_due);
    wb_i64(w, c->maxwait_due);
    wb_u8(w, c->ntried);
    for (int i = 0; i < c->ntried; i++) {
        wb_u32(w, c->tried[i].agent);
        wb_u32(w, c->tried[i].n);
    }
    wb_u8(w, c->natt);
    for (int i = 0; i < c->natt; i++) {
        const attempt_rec *a = &c->att[i];
        wb_u32(w, a->agent);
        wb_u8(w, a->dev);
        wb_u8(w, a->outcome);
        wb_i64(w, a->start);
        wb_i32(w, a->dur_ms);
    }
    wb_u8(w, c->ntrace);
    wb_u32(w, c->ntrace_total);
    for (int i = 0; i < c->ntrace; i++) {
        const trace_rec *t = &c->trace[i];
        wb_i64(w, t->t);
        wb_u8(w, t->kind);
        wb_u8(w, t->fallback);
        wb_str(w, t->version);
        wb_str(w, t->policy);
        wb_str(w, t->detail);
    }
    wb_u8(w, c->moves);
    wb_strn(w, c->attrs.p ? c->attrs.p : "", c->attrs.len);
    wb_i64(w, c->connected);
    wb_i64(w, c->talked);
    wb_u8(w, c->sealed_v3);
    wb_u8(w, c->withheld);
    wb_i64(w, c->q_entered);
    wb_i64(w, c->q_answered);
    wb_i64(w, c->q_talked);
    wb_u8(w, c->q_owed);
}

int dec_call(const void *p, size_t n, call_rec *c)
{
    rbuf r;
    rb_init(&r, p, n);
    int v = rb_u8(&r);
    rb_str(&r, c->id, sizeof c->id);
    c->queue = rb_u32(&r);
    c->first_queue = rb_u32(&r);
    c->state = rb_u8(&r);
    c->caller[0] = c->called[0] = 0;
    c->pii_open = 0;
    c->pattrs.len = 0;
    if (v == 1) { /* before sealing: the numbers in the clear */
        rb_str(&r, c->caller, sizeof c->caller);
        rb_str(&r, c->called, sizeof c->called);
        c->pii.len = 0;
        c->npseudo = 0;
        c->prev_agent = 0;
        c->pii_open = 1;
    } else {
        rb_buf(&r, &c->pii, ATTRS_MAX + 2 * SB_E164_MAX + 64);
        c->npseudo = rb_u8(&r);
        rb_take(&r, c->pseudo, sizeof c->pseudo);
        c->prev_agent = rb_u32(&r);
        if (c->npseudo > 2) r.err = 1;
    }
    c->priority = rb_i32(&r);
    if (c->priority < 0 || c->priority > 100) r.err = 1, c->priority = 0; /* keys index by it */
    c->offered = rb_i64(&r);
    c->queued = rb_i64(&r);
    c->answered = rb_i64(&r);
    c->attempts = rb_u32(&r);
    c->agent = rb_u32(&r);
    c->last_agent = rb_u32(&r);
    c->nring = (uint8_t)dec_targets(&r, c->ring);
    c->ring_start = rb_i64(&r);
    c->ring_timeout = rb_i32(&r);
    c->nseq = (uint8_t)dec_targets(&r, c->seq);
    c->seqpos = rb_u8(&r);
    c->ring_due = rb_i64(&r);
    c->wake_due = rb_i64(&r);
    c->maxwait_due = rb_i64(&r);
    c->ntried = rb_u8(&r);
    if (c->ntried > MAX_TRIED) r.err = 1, c->ntried = 0;
    for (int i = 0; i < c->ntried; i++) {
        c->tried[i].agent = rb_u32(&r);
        c->tried[i].n = (uint16_t)rb_u32(&r);
    }
    c->natt = rb_u8(&r);
    if (c->natt > MAX_ATTEMPTS) r.err = 1, c->natt = 0;
    for (int i = 0; i < c->natt; i++) {
        attempt_rec *a = &c->att[i];
        a->agent = rb_u32(&r);
        a->dev = rb_u8(&r);
        a->outcome = rb_u8(&r);
        a->start = rb_i64(&r);
        a->dur_ms = rb_i32(&r);
    }
    c->ntrace = rb_u8(&r);
    c->ntrace_total = rb_u32(&r);
    if (c->ntrace > MAX_TRACE) r.err = 1, c->ntrace = 0;
    for (int i = 0; i < c->ntrace; i++) {
        trace_rec *t = &c->trace[i];
        t->t = rb_i64(&r);
        t->kind = rb_u8(&r);
        t->fallback = rb_u8(&r);
        if (t->kind < TR_RING || t->kind > TR_ERROR) r.err = 1; /* names index by it */
        rb_str(&r, t->version, sizeof t->version);
        rb_str(&r, t->policy, sizeof t->policy);
        rb_str(&r, t->detail, sizeof t->detail);
    }
    c->moves = rb_u8(&r);
    rb_buf(&r, &c->attrs, ATTRS_MAX);
    c->sealed_v3 = 0; /* before call format 4: sealed the old way */
    c->withheld = 0;  /* before format 5 every call had a caller */
    if (v >= 3) {
        c->connected = rb_i64(&r);
        c->talked = rb_i64(&r);
        if (v >= 4) c->sealed_v3 = rb_u8(&r);
        if (v >= 5) c->withheld = rb_u8(&r);
    } else { /* before transfers kept the answer: connected since it */
        c->connected = c->state == CALL_CONNECTED ? c->answered : 0;
        c->talked = 0;
    }
    if (v >= 6) {
        c->q_entered = rb_i64(&r);
        c->q_answered = rb_i64(&r);
        c->q_talked = rb_i64(&r);
        c->q_owed = rb_u8(&r);
    } else if (c->queue == c->first_queue) { /* never moved: its queue's figures are its own */
        c->q_entered = c->offered;
        c->q_answered = c->answered;
        c->q_talked = 0;
        c->q_owed = 0;
    } else {
        /* Moved, before calls kept their queue's figures: in the queue it is
        ** in since it was queued there (a transfer to an agent since moves
        ** that later), answered there if its first answer came after; the
        ** queues it left had no row, the first one's is added at its end. */
        c->q_entered = c->queued;
        c->q_answered = c->answered >= c->queued ? c->answered : 0;
        c->q_talked = c->q_answered ? 0 : c->talked;
        c->q_owed = 1;
    }
    int ok = v >= 1 && v <= V_CALL && c->state >= CALL_WAITING && c->state <= CALL_CONNECTED &&
             c->seqpos <= c->nseq && c->sealed_v3 <= 1 && c->withheld <= 1 && c->q_owed <= 1;
    return done(&r, ok);
}

void call_trace(call_rec *c, int64_t t, int kind, int fallback, const char *policy,
                const char *version, const char *detail)
{
    trace_rec *e;
    if (c->ntrace < MAX_TRACE) {
        e = &c->trace[c->ntrace++];
    } else { /* keep the first four, slide the rest */
        memmove(&c->trace[4], &c->trace[5], sizeof(trace_rec) * (MAX_TRACE - 5));
        e = &c->trace[MAX_TRACE - 1];
    }
    c->ntrace_total++;
    e->t = t;
    e->kind = (uint8_t)kind;
    e->fallback = (uint8_t)fallback;
    str_copy(e->version, sizeof e->version, version ? version : "");
    str_copy(e->policy, sizeof e->policy, policy ? policy : "");
    /* The detail quotes a decision's reason or a policy's error, the
    ** policy's own text: stored with no number in it (reason_clean). */
    char clean[768];
    str_copy(clean, sizeof clean, detail ? detail : "");
    reason_clean(clean, sizeof clean);
    detail = clean;
    if (str_copy(e->detail, sizeof e->detail, detail)) {
        memcpy(e->detail, detail, sizeof e->detail - 4);
        e->detail[sizeof e->detail - 4] = 0;
        utf8_cut_end(e->detail); /* between characters, not in one */
        strcat(e->detail, "...");
    }
    utf8_clean(e->detail); /* a cut can split a character, and policies write any bytes */
    utf8_clean(e->policy);
}

void call_tried(call_rec *c, uint32_t agent)
{
    for (int i = 0; i < c->ntried; i++)
        if (c->tried[i].agent == agent) {
            if (c->tried[i].n < UINT16_MAX) c->tried[i].n++;
            return;
        }
    if (c->ntried < MAX_TRIED) {
        c->tried[c->ntried].agent = agent;
        c->tried[c->ntried++].n = 1;
    }
}

void call_free(call_rec *c)
{
    buf_free(&c->attrs);
    if (c->pattrs.p) cr_wipe(c->pattrs.p, c->pattrs.cap);
    buf_free(&c->pii);
    buf_free(&c->pattrs);
}

void agent_free(agent_rec *a)
{
    buf_free(&a->doc);
}

void queue_free(queue_rec *q)
{
    (void)q; /* nothing owned; kept so every record type has a release */
}
