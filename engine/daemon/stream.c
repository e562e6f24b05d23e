/*
** stream.c — GET /v1/events: each account's action stream as Server-Sent
** Events. Actions wait in the batch with the responses and go out after the
** sync that covers them (each is tagged with its batch, like the responses),
** as `id: <n>\ndata: <action json>\n\n`, ids growing by one per action
** of the account (from the clock's microseconds when the account's entry
** is made, so they also grow across restarts; counted per account, so that
** no account learns from its ids how many actions the others had). A
** subscriber's own events never go out before its response head.
**
** Each account keeps a history of its recent actions, marked sent or not:
** up to twice stream_buffer per account and 32 times it in all, the oldest
** dropped beyond (sent ones first when all are full). A subscriber is fed
** from it when it is not live: after its head (with Last-Event-ID, the
** history after that id, with a resync action before it when that is not
** all of it; without, the backlog: what was not sent to anyone, published
** while the account had no subscriber), and whenever half of stream_buffer
** waits unsent on its connection (it falls behind, and catches up a little
** each time the connection drains). One that falls behind further than the
** history reaches, or whose connection accepts nothing for idle_timeout, is
** dropped (and logged) rather than slowing the loop. In memory: a restart
** of the daemon loses it.
*/
#include "serve.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "log.h"

struct sbd_sub {
    sbd_sub *next, *prev;   /* every subscriber */
    sbd_sub *anext, *aprev; /* its account's */
    sbd_backlog *acct;
    sbd_conn *conn;
    uint64_t since; /* batch it subscribed in */
    int replay;     /* not live: its head is not out yet, or it is catching up */
    int resume;     /* it gave Last-Event-ID: the account's actions after `after` */
    uint64_t after;
    int started;      /* its first step is done (the resync, when one is due) */
    int was_live;     /* it had caught up once: from then on it lags, if behind */
    uint64_t cur;     /* the history up to this id is done for it */
    uint64_t from_id; /* the last id given when it subscribed */
    char account[132];
    char *auth;          /* the Authorization header it was opened with */
    uint64_t checked_ns; /* when those credentials were last verified */
    uint64_t ending;     /* its account's deletion (serial): told the last, then closed */
    int said;            /* why it closes is logged already: no "stream closed" after */
};

struct sbd_pub {
    sbd_pub *next;
    uint64_t seq;  /* batch the action was committed in */
    uint64_t last; /* a deleted account's (its deletion's serial): for those ending with it */
    char *account;
    char *json;
};

/* One published action in its account's history: sent to the subscribers
** connected then, or to none yet (then it is the account's backlog). */
struct sbd_hent {
    sbd_hent *prev, *next;   /* the account's, oldest first */
    sbd_hent *gprev, *gnext; /* the sent ones of every account, oldest first */
    sbd_backlog *b;
    uint64_t id;
    int sent;
    size_t len;
    char json[];
};

/* An account's stream: its subscribers, and its history of actions (what a
** subscriber resuming after an event id missed, and what waits for the
** next subscriber). Found by the account's id through a hash table, so an
** action costs the same however many accounts have streams. */
struct sbd_backlog {
    sbd_backlog *hnext; /* in its hash bucket */
    char account[132];
    sbd_sub *subs;
    unsigned nsubs; /* in subs, against stream_max_per_account */
    sbd_hent *head, *tail;
    size_t bytes;
    uint64_t floor; /* a resume after this id finds all: the newest dropped (or,
                    ** made anew, the id it starts from) */
    uint64_t last;  /* the last id given in the account's stream */
    uint64_t start; /* the id it started from */
    int gone;       /* the account was deleted: freed once nothing holds it */
    int warned;     /* "backlog full" logged since the last delivery */
    int told;       /* a resync gave a client its id (start): kept as one that gave ids */
};

/* Across accounts, the histories hold at most this many stream_buffers. */
#define BACKLOG_ACCOUNTS 64
/* An event's framing beside its JSON: "id: <20 digits>\ndata: " and "\n\n". */
#define EVENT_FRAMING 36

/* An action's JSON (the library's, which writes it without building a
** tree), naming the account when the action does not, after sep (may be
** ""). Writes nothing (and returns 0) when memory runs out. */
int sbd_action_write(struct evbuffer *out, const sb_action *a, const char *account, const char *sep)
{
    sb_action b = *a;
    if (!b.account) b.account = account;
    char stack[1024], *s = stack;
    size_t n = sb_action_json(&b, stack, sizeof stack);
    if (n >= sizeof stack && (!(s = malloc(n + 1)) || sb_action_json(&b, s, n + 1) != n)) {
        sbd_free_wiped(s);
        return 0;
    }
    evbuffer_add(out, sep, strlen(sep));
    evbuffer_add(out, s, n);
    if (s != stack) sbd_free_wiped(s);
    return 1;
}

char *sbd_action_json(const sb_action *a, const char *account)
{
    sb_action b = *a;
    if (!b.account) b.account = account;
    size_t n = sb_action_json(&b, NULL, 0);
    char *s = malloc(n + 1);
    if (s && sb_action_json(&b, s, n + 1) != n) {
        sbd_free_wiped(s);
        s = NULL;
    }
    return s;
}

static void pub_free(sbd_pub *p)
{
    free(p->account);
    sbd_free_wiped(p->json);
    free(p);
}

static void pub_queue(sbd *d, sbd_pub *p)
{
    p->next = NULL;
    *d->pub_tail = p;
    d->pub_tail = &p->next;
}

static size_t acct_hash(const char *account)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)account; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (size_t)(h ^ (h >> 32));
}

static sbd_backlog *backlog_of(sbd *d, const char *account, int create)
{
    if (d->acct_cap) {
        sbd_backlog *b = d->acct_tab[acct_hash(account) & (d->acct_cap - 1)];
        for (; b; b = b->hnext)
            if (!strcmp(b->account, account)) return b;
    }
    if (!create) return NULL;
    if (d->acct_n >= d->acct_cap) { /* grow: twice the buckets, rehashed */
        size_t cap = d->acct_cap ? d->acct_cap * 2 : 64;
        sbd_backlog **tab = calloc(cap, sizeof *tab);
        if (!tab) return NULL;
        for (size_t i = 0; i < d->acct_cap; i++)
            while (d->acct_tab[i]) {
                sbd_backlog *b = d->acct_tab[i];
                d->acct_tab[i] = b->hnext;
                size_t k = acct_hash(b->account) & (cap - 1);
                b->hnext = tab[k];
                tab[k] = b;
            }
        free(d->acct_tab);
        d->acct_tab = tab;
        d->acct_cap = cap;
    }
    sbd_backlog *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    snprintf(b->account, sizeof b->account, "%s", account);
    /* Its ids start at the clock's microseconds (the start's, at least):
    ** an entry that gave ids stays while the daemon runs, so that a resume
    ** finds them whole, unless its account is deleted; one made again then
    ** starts above the ids of before unless the account had more than an
    ** action a microsecond, and what it had before is gone. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    b->floor = b->last = b->start = now_us > d->event_id_base ? now_us : d->event_id_base;
    size_t k = acct_hash(account) & (d->acct_cap - 1);
    b->hnext = d->acct_tab[k];
    d->acct_tab[k] = b;
    d->acct_n++;
    return b;
}

/* An account with no subscriber and nothing kept leaves the table, when
** it gave no id (or was deleted): one that did keeps its last id, or a
** subscriber resuming after it would be told its actions are lost. A
** resync's id counts as given: a client reconnecting with it resumes. */
static void backlog_release(sbd *d, sbd_backlog *b)
{
    if (b->subs || b->head || ((b->last != b->start || b->told) && !b->gone)) return;
    sbd_backlog **pp = &d->acct_tab[acct_hash(b->account) & (d->acct_cap - 1)];
    while (*pp != b)
        pp = &(*pp)->hnext;
    *pp = b->hnext;
    d->acct_n--;
    free(b);
}

static void sent_link(sbd *d, sbd_hent *e)
{
    if (!e->sent) d->backlog_n--;
    e->sent = 1;
    e->gnext = NULL;
    e->gprev = d->sent_tail;
    if (d->sent_tail)
        d->sent_tail->gnext = e;
    else
        d->sent_head = e;
    d->sent_tail = e;
}

/* Take e out of its account's history and free it. */
static void hent_free(sbd *d, sbd_hent *e)
{
    sbd_backlog *b = e->b;
    if (e->prev)
        e->prev->next = e->next;
    else
        b->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        b->tail = e->prev;
    if (e->sent) {
        if (e->gprev)
            e->gprev->gnext = e->gnext;
        else
            d->sent_head = e->gnext;
        if (e->gnext)
            e->gnext->gprev = e->gprev;
        else
            d->sent_tail = e->gprev;
    } else {
        d->backlog_n--;
    }
    b->bytes -= e->len;
    d->backlog_bytes -= e->len;
    sbd_free_wiped(e); /* its action: a dial URI, an agent's number */
}

/* Make room: e leaves the history, a resume from before it can no longer
** be whole; one not sent yet is a backlog entry lost (counted). */
static void hent_drop(sbd *d, sbd_hent *e)
{
    if (!e->sent) d->m.stream_backlog_dropped++;
    if (e->id > e->b->floor) e->b->floor = e->id;
    if (e->b->subs) d->lag_check = 1; /* one behind may have lost its place */
    hent_free(d, e);
}

/* Keep action `id` in its account's history, sent or not. An account's
** history holds twice stream_buffer: what a subscriber that falls behind,
** or one that reconnects with Last-Event-ID, is fed from (a little at a
** time, as its connection drains). Beyond, the account's oldest go; when
** all the histories together are full (64 halves of stream_buffer), what
** was sent goes first, oldest first, whatever its account, then this
** account's oldest, then this one. */
static void history_keep(sbd *d, sbd_backlog *b, const char *json, uint64_t id, int sent)
{
    size_t n = strlen(json), cap = d->cfg->stream_buffer * 2,
           all = d->cfg->stream_buffer / 2 * BACKLOG_ACCOUNTS;
    size_t before = d->m.stream_backlog_dropped;
    sbd_hent *e = NULL;
    if (n <= d->cfg->stream_buffer / 2) {
        while (b->head && b->bytes + n > cap)
            hent_drop(d, b->head);
        while (d->backlog_bytes + n > all && (d->sent_head || b->head)) {
            sbd_hent *old = d->sent_head ? d->sent_head : b->head;
            sbd_backlog *ob = old->b;
            hent_drop(d, old);
            if (ob != b) backlog_release(d, ob);
        }
        /* Still no room: the others' backlogs fill it. */
        if (d->backlog_bytes + n <= all) e = malloc(sizeof *e + n + 1);
    }
    if (!e) { /* lost: a resume from before it cannot be whole */
        if (id > b->floor) b->floor = id;
        if (!sent) d->m.stream_backlog_dropped++;
    } else {
        e->b = b;
        e->id = id;
        e->len = n;
        memcpy(e->json, json, n + 1);
        e->next = NULL;
        e->prev = b->tail;
        if (b->tail)
            b->tail->next = e;
        else
            b->head = e;
        b->tail = e;
        b->bytes += n;
        d->backlog_bytes += n;
        e->sent = 0;
        d->backlog_n++;
        if (sent) sent_link(d, e);
    }
    if (d->m.stream_backlog_dropped != before && !b->warned) {
        b->warned = 1;
        sbd_log(SB_LOG_WARN, "stream backlog full: oldest actions dropped",
                "account=%s backlog_bytes=%zu stream_buffer=%zu", sbd_qacct(b->account), b->bytes,
                d->cfg->stream_buffer);
    }
}

/* Does subscriber s still want history entry e? After its cursor: with
** Last-Event-ID, all of them; without, those published since it
** subscribed, and the backlog (what no subscriber was sent) before. */
static int wanted(const sbd_sub *s, const sbd_hent *e)
{
    return e->id > s->cur && (s->resume || e->id > s->from_id || !e->sent);
}

/* A resume that cannot be whole: the id is of an earlier start of the
** daemon, or older than what the account's history still holds, or one
** not given yet. */
static int resume_gap(const sbd *d, const sbd_sub *s, const sbd_backlog *b)
{
    return s->resume && (s->after < (b ? b->floor : d->event_id_base) ||
                         s->after > (b ? b->last : d->event_id_base));
}

static void free_history(sbd *d, sbd_backlog *b)
{
    while (b->head)
        hent_free(d, b->head);
}

static void hold(sbd *d, const sb_action *a, const char *account, uint64_t last);
static void end_told(sbd *d);

/* The account was deleted. Its subscribers leave its entry, whose history
** goes, and end: they are sent what its requests caused that is still
** held for a sync, and the actions of res (the ends of its live calls), as
** the last events of their streams, then closed (end_told). Held for them
** alone, with ids after the last they were given: an account made again
** under the id (the same entry) gets none of it, nor do they get its
** actions. With no subscriber, nothing is held. */
void sbd_stream_forget(sbd *d, const char *account, const sb_result *res)
{
    /* Each deletion its serial: an account made again under the id and
    ** deleted again before a sync has subscribers and actions of its own. */
    uint64_t serial = ++d->forget_serial;
    sbd_backlog *b = backlog_of(d, account, 0);
    int told = 0;
    if (b) {
        free_history(d, b);
        b->floor = b->last; /* a resume across the deletion is not whole */
        b->gone = 1;
        while (b->subs) {
            sbd_sub *s = b->subs;
            b->subs = s->anext;
            s->anext = s->aprev = NULL;
            s->acct = NULL;
            s->ending = serial;
            s->cur = b->last; /* the ids it is told go on from the account's */
            told = 1;
        }
        b->nsubs = 0;
        backlog_release(d, b);
    }
    sbd_pub **q = &d->pub_head;
    d->pub_tail = &d->pub_head;
    while (*q) {
        sbd_pub *p = *q;
        /* Those of an earlier deletion stay theirs. */
        int mine = !p->last && !strcmp(p->account, account);
        if (mine && !told) {
            *q = p->next;
            pub_free(p);
        } else {
            if (mine) p->last = serial;
            q = &p->next;
            d->pub_tail = q;
        }
    }
    if (!told) return;
    size_t n = sb_result_count(res);
    for (size_t i = 0; i < n; i++)
        hold(d, sb_result_action(res, i), account, serial);
}

void sbd_stream_free_backlogs(sbd *d)
{
    for (size_t i = 0; i < d->acct_cap; i++)
        while (d->acct_tab[i]) {
            sbd_backlog *b = d->acct_tab[i];
            d->acct_tab[i] = b->hnext;
            free_history(d, b);
            for (sbd_sub *x = b->subs; x; x = x->anext)
                x->acct = NULL;
            free(b);
        }
    free(d->acct_tab);
    d->acct_tab = NULL;
    d->acct_cap = d->acct_n = 0;
    d->backlog_bytes = 0;
    while (d->pub_head) {
        sbd_pub *p = d->pub_head;
        d->pub_head = p->next;
        pub_free(p);
    }
    d->pub_tail = &d->pub_head;
}

int sbd_stream_subscribe(sbd *d, sbd_conn *c, const char *account, const char *auth, int resume,
                         uint64_t after)
{
    /* Shutting down: the drain closed the streams there were; one whose
    ** request was still arriving then gets its head and the close, instead
    ** of holding the exit until shutdown_timeout. */
    if (d->draining) {
        sbd_log(SB_LOG_INFO, "stream not opened: shutting down", "conn=%llu peer=%s account=%s",
                (unsigned long long)sbd_conn_id(c), sbd_conn_peer(c), sbd_qacct(account));
        return -1;
    }
    sbd_backlog *b = backlog_of(d, account, 1);
    sbd_sub *s = b ? calloc(1, sizeof *s) : NULL;
    if (!s || !auth || !(s->auth = strdup(auth))) {
        free(s);
        if (b) backlog_release(d, b);
        return -1;
    }
    s->checked_ns = sbd_now_ns();
    s->conn = c;
    s->since = sbd_seq(d);
    s->replay = 1;
    s->resume = resume;
    s->after = after;
    /* An id past the account's last (of an earlier start whose clock ran
    ** ahead, or made up) resumes from the last: the resync goes out with
    ** it, and the ids after it are the ones to send. */
    s->cur = !resume ? 0 : after < b->last ? after : b->last;
    s->from_id = b->last;
    snprintf(s->account, sizeof s->account, "%s", account);
    s->next = d->subs;
    if (d->subs) d->subs->prev = s;
    d->subs = s;
    s->acct = b;
    s->anext = b->subs;
    if (b->subs) b->subs->aprev = s;
    b->subs = s;
    b->nsubs++;
    d->nsubs++;
    sbd_conn_set_sub(c, s);
    /* What it will be given first (more may come before its head is out). */
    size_t kept = 0;
    for (sbd_hent *e = b->head; e; e = e->next)
        kept += wanted(s, e);
    if (resume) {
        d->m.stream_resumes++;
        sbd_log(SB_LOG_INFO, "stream subscribed",
                "conn=%llu peer=%s account=%s last_event_id=%llu backlog=%zu whole=%s",
                (unsigned long long)sbd_conn_id(c), sbd_conn_peer(c), sbd_qacct(account),
                (unsigned long long)after, kept, resume_gap(d, s, b) ? "no" : "yes");
    } else {
        sbd_log(SB_LOG_INFO, "stream subscribed", "conn=%llu peer=%s account=%s backlog=%zu",
                (unsigned long long)sbd_conn_id(c), sbd_conn_peer(c), sbd_qacct(account), kept);
    }
    return 0;
}

unsigned sbd_stream_count(sbd *d, const char *account)
{
    sbd_backlog *b = backlog_of(d, account, 0);
    return b ? b->nsubs : 0;
}

void sbd_stream_unsubscribe(sbd *d, sbd_sub *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        d->subs = s->next;
    if (s->next) s->next->prev = s->prev;
    if (s->acct) {
        if (s->aprev)
            s->aprev->anext = s->anext;
        else
            s->acct->subs = s->anext;
        if (s->anext) s->anext->aprev = s->aprev;
        s->acct->nsubs--;
        backlog_release(d, s->acct);
    }
    d->nsubs--;
    sbd_conn_set_sub(s->conn, NULL);
    if (!s->said)
        sbd_log(SB_LOG_INFO, "stream closed", "conn=%llu account=%s",
                (unsigned long long)sbd_conn_id(s->conn), sbd_qacct(s->account));
    sodium_memzero(s->auth, strlen(s->auth));
    free(s->auth);
    free(s);
}

/* A stream lives as long as the credentials it was opened with: the key
** revoked or the account deleted (and maybe made again under its id), its
** connection closes, as a request with them would be refused. A check that
** cannot be made (storage) leaves it open until the next. */
void sbd_stream_recheck(sbd *d, int force)
{
    uint64_t now = sbd_now_ns();
    sbd_sub *s = d->subs;
    int ending = 0;
    while (s) {
        sbd_sub *next = s->next;
        if (s->ending) {
            ending = 1; /* closed once told (end_told) */
        } else if (force || now - s->checked_ns >= SBD_AUTH_CACHE_TTL_NS) {
            char acct[136];
            int rc = sbd_auth_basic(d, s->auth, acct, sizeof acct);
            s->checked_ns = now;
            if (rc == SB_EAUTH || (rc == 0 && strcmp(acct, s->account) != 0)) {
                sbd_log(SB_LOG_INFO, "stream closed: its credentials no longer verify",
                        "conn=%llu peer=%s account=%s", (unsigned long long)sbd_conn_id(s->conn),
                        sbd_conn_peer(s->conn), sbd_qacct(s->account));
                s->said = 1;
                sbd_conn_close(s->conn); /* unsubscribes s */
            }
        }
        s = next;
    }
    if (ending) end_told(d); /* those left with nothing to be told */
}

static void hold(sbd *d, const sb_action *a, const char *account, uint64_t last)
{
    const char *acct = a->account ? a->account : account;
    if (!acct) return;
    d->m.stream_events++;
    /* Held whether or not anyone listens now: with nobody at publish, it
    ** waits in the account's backlog for the next subscriber. */
    sbd_pub *p = calloc(1, sizeof *p);
    if (!p) return;
    p->account = strdup(acct);
    p->json = sbd_action_json(a, acct);
    if (!p->account || !p->json) {
        free(p->account);
        sbd_free_wiped(p->json);
        free(p);
        return;
    }
    /* An event of the batch being answered: held until it is tagged. */
    p->seq = d->answering ? SBD_SEQ_UNCOMMITTED : sbd_seq(d);
    p->last = last;
    pub_queue(d, p);
}

void sbd_stream_hold(sbd *d, const sb_action *a, const char *account)
{
    hold(d, a, account, 0);
}

void sbd_stream_settle(sbd *d, uint64_t seq, int failed)
{
    sbd_pub **q = &d->pub_head;
    d->pub_tail = &d->pub_head;
    while (*q) {
        sbd_pub *p = *q;
        if (p->seq == SBD_SEQ_UNCOMMITTED && failed) {
            *q = p->next; /* what did not happen is not told */
            pub_free(p);
            continue;
        }
        if (p->seq == SBD_SEQ_UNCOMMITTED) p->seq = seq;
        q = &p->next;
        d->pub_tail = q;
    }
}

static void drop(sbd *d, sbd_sub *s, size_t queued)
{
    sbd_log(SB_LOG_WARN, "stream subscriber dropped: slow consumer",
            "conn=%llu peer=%s account=%s queued_bytes=%zu stream_buffer=%zu",
            (unsigned long long)sbd_conn_id(s->conn), sbd_conn_peer(s->conn), sbd_qacct(s->account),
            queued, d->cfg->stream_buffer);
    d->m.stream_dropped++;
    s->said = 1;
    sbd_conn_close(s->conn); /* unsubscribes s */
}

void sbd_stream_stalled(sbd *d, sbd_sub *s)
{
    struct evbuffer *out = bufferevent_get_output(sbd_conn_bev(s->conn));
    sbd_log(SB_LOG_WARN, "stream subscriber dropped: stalled",
            "conn=%llu peer=%s account=%s queued_bytes=%zu idle_timeout=%u",
            (unsigned long long)sbd_conn_id(s->conn), sbd_conn_peer(s->conn), sbd_qacct(s->account),
            evbuffer_get_length(out), d->cfg->idle_timeout);
    d->m.stream_dropped++;
    s->said = 1;
    sbd_conn_close(s->conn); /* unsubscribes s */
}

/* Write one event to s: 1, or 0 when s was dropped as slow (it is gone). */
static int send_event(sbd *d, sbd_sub *s, uint64_t id, const char *json, size_t jl)
{
    struct evbuffer *out = bufferevent_get_output(sbd_conn_bev(s->conn));
    size_t queued = evbuffer_get_length(out);
    if (queued + jl + EVENT_FRAMING > d->cfg->stream_buffer) {
        drop(d, s, queued);
        return 0;
    }
    if (id)
        evbuffer_add_printf(out, "id: %llu\ndata: ", (unsigned long long)id);
    else
        evbuffer_add(out, "data: ", 6);
    evbuffer_add(out, json, jl);
    evbuffer_add(out, "\n\n", 2);
    return 1;
}

/* A subscriber is fed from the history while it is not live: after its
** head goes out (what it asked for: the actions after its Last-Event-ID,
** or the backlog) and whenever it falls behind (its output holds half of
** stream_buffer). A step writes what fits under that half and waits for
** the connection to drain; at the history's end it is live again, written
** to as actions are published. One that falls behind further than the
** history reaches is dropped as slow; a resume that cannot be whole begins
** with a resync action (read the state of the calls again). */
static int lag_room(sbd *d, sbd_sub *s, size_t jl)
{
    struct evbuffer *out = bufferevent_get_output(sbd_conn_bev(s->conn));
    return evbuffer_get_length(out) + jl + EVENT_FRAMING <= d->cfg->stream_buffer / 2;
}

/* Behind further than the history reaches: what it still needed is gone.
** The history drops its oldest first, and floor is the newest dropped: past
** the cursor, it is one this subscriber was owed, unless it is of the
** backlog the subscriber came for (an id it was not given at its subscribe,
** one no subscriber was sent): those are the backlog's losses, counted as
** such. One that came for a backlog and fell behind while catching up, so
** that actions published after it subscribed went too, has lost its place
** as one that had caught up does. */
static int lost_place(const sbd_sub *s)
{
    return s->replay && s->started && s->acct && s->cur < s->acct->floor &&
           (s->was_live || s->resume || s->acct->floor > s->from_id);
}

/* After the history dropped entries: those that lost their place go now,
** not when they next read. */
static void drop_lagging(sbd *d)
{
    d->lag_check = 0;
    for (sbd_sub *s = d->subs, *next; s; s = next) {
        next = s->next;
        if (lost_place(s)) {
            struct evbuffer *out = bufferevent_get_output(sbd_conn_bev(s->conn));
            drop(d, s, evbuffer_get_length(out));
        }
    }
}

/* One step; 1 when s was dropped instead (it and its connection are freed). */
static int replay_step(sbd *d, sbd_sub *s)
{
    sbd_backlog *b = s->acct;
    if (!b) return 0;
    if (!s->started) {
        s->started = 1;
        /* Without Last-Event-ID: actions published after it subscribed went
        ** before its first step (its response's head waits for the batch
        ** before it to be durable), more than the history holds meanwhile. */
        int gap = resume_gap(d, s, b), missed = !s->resume && b->floor > s->from_id;
        if (gap || missed) {
            d->m.stream_resyncs++;
            json_t *j = json_pack(
                "{s:s, s:s, s:s}", "type", "resync", "account", s->account, "reason",
                gap ? "actions after the given Last-Event-ID are no longer held: read the state "
                      "of your calls again"
                    : "actions published since this stream opened are no longer held: read the "
                      "state of your calls again");
            char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
            json_decref(j);
            /* With the id it resumes from: a client that reconnects after
            ** it gives that, not the old id, and is not resynced again. */
            if (s->cur < b->floor) s->cur = b->floor;
            b->told = 1;
            int ok = t && send_event(d, s, s->cur, t, strlen(t));
            free(t);
            if (!ok) return 1;
        }
    } else if (lost_place(s)) {
        struct evbuffer *out = bufferevent_get_output(sbd_conn_bev(s->conn));
        drop(d, s, evbuffer_get_length(out));
        return 1;
    }
    sbd_hent *e = b->head;
    for (; e; e = e->next) {
        if (!wanted(s, e)) continue;
        if (!lag_room(d, s, e->len)) break; /* the rest when the connection drains */
        if (!send_event(d, s, e->id, e->json, e->len)) return 1;
        s->cur = e->id;
        if (!e->sent) {
            sent_link(d, e);
            b->warned = 0; /* the backlog is being delivered */
        }
    }
    if (e) return 0;
    if (b->last > s->cur) s->cur = b->last;
    s->replay = 0;
    s->was_live = 1;
    return 0;
}

int sbd_stream_drained(sbd *d, sbd_sub *s)
{
    if (!s->replay || sbd_conn_held(s->conn)) return 0;
    return replay_step(d, s);
}

/* A deleted account's last action, to its subscribers (those that were
** its subscribers when it was deleted). */
static void tell_ending(sbd *d, const sbd_pub *p)
{
    size_t jl = strlen(p->json);
    for (sbd_sub *s = d->subs, *next; s; s = next) {
        next = s->next;
        if (s->ending != p->last || sbd_conn_held(s->conn)) continue;
        /* Without the lag check: one whose output cannot take it is
        ** dropped, and logged, rather than left without its last events. */
        if (send_event(d, s, s->cur + 1, p->json, jl)) s->cur++;
    }
}

static int last_held(const sbd *d, uint64_t serial)
{
    for (const sbd_pub *p = d->pub_head; p; p = p->next)
        if (p->last == serial) return 1;
    return 0;
}

/* Ending subscribers with nothing more to be told: closed, once what
** they were sent is out. */
static void end_told(sbd *d)
{
    for (sbd_sub *s = d->subs, *next; s; s = next) {
        next = s->next;
        /* Its response head is not out yet: at the next recheck. */
        if (!s->ending || last_held(d, s->ending) || sbd_conn_held(s->conn)) continue;
        sbd_conn *c = s->conn;
        sbd_log(SB_LOG_INFO, "stream closed: its account was deleted",
                "conn=%llu peer=%s account=%s", (unsigned long long)sbd_conn_id(c),
                sbd_conn_peer(c), sbd_qacct(s->account));
        s->said = 1;
        sbd_stream_unsubscribe(d, s);
        sbd_conn_end_stream(c);
    }
}

void sbd_stream_publish(sbd *d, uint64_t upto)
{
    /* Subscribers whose head went out with this release. */
    for (sbd_sub *s = d->subs, *next; s; s = next) {
        next = s->next;
        if (s->replay && !s->started && s->since <= upto) replay_step(d, s);
    }
    int told = 0;
    while (d->pub_head && d->pub_head->seq <= upto) {
        sbd_pub *p = d->pub_head;
        d->pub_head = p->next;
        if (!d->pub_head) d->pub_tail = &d->pub_head;
        if (p->last) {
            tell_ending(d, p);
            pub_free(p);
            told = 1;
            continue;
        }
        /* The history first: one made now starts at the clock, so this
        ** action is after its floor, for a resume to find. */
        sbd_backlog *b = backlog_of(d, p->account, 1);
        uint64_t id = b ? ++b->last : 0;
        size_t jl = strlen(p->json);
        int sent = 0;
        for (sbd_sub *s = b ? b->subs : NULL, *next; s; s = next) {
            next = s->anext;
            /* One not live gets it from the history; one whose output is
            ** half full falls behind, to catch up from there. */
            if (s->replay) continue;
            if (!lag_room(d, s, jl)) {
                s->replay = 1;
                continue;
            }
            if (send_event(d, s, id, p->json, jl)) {
                s->cur = id;
                sent = 1;
            }
        }
        if (b) {
            history_keep(d, b, p->json, id, sent);
            backlog_release(d, b); /* when it kept nothing and nobody listens */
        }
        pub_free(p);
        if (d->lag_check) drop_lagging(d);
    }
    if (told) end_told(d);
}

void sbd_stream_keepalive(sbd *d)
{
    sbd_sub *s = d->subs;
    while (s) {
        sbd_sub *next = s->next;
        if (sbd_conn_held(s->conn)) { /* its response head is not out yet */
            s = next;
            continue;
        }
        struct evbuffer *out = bufferevent_get_output(sbd_conn_bev(s->conn));
        size_t queued = evbuffer_get_length(out);
        if (queued + 16 > d->cfg->stream_buffer)
            drop(d, s, queued);
        else
            evbuffer_add(out, ": keep-alive\n\n", 14);
        s = next;
    }
}

void sbd_stream_close_all(sbd *d)
{
    while (d->subs)
        sbd_conn_close(d->subs->conn);
}
