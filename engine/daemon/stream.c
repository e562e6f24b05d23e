/*
** stream.c — GET /v1/events: each account's action stream as Server-Sent
** Events. Actions wait in the batch with the responses and go out after the
** sync that covers them (each is tagged with its batch, like the responses),
** as `data: <action json>\n\n`. A subscriber gets the events of the batch it
** subscribed in and later ones, never before its own response head. A
** subscriber whose unsent output passes stream_buffer bytes, or whose
** connection accepts nothing for idle_timeout, is dropped (and logged)
** rather than slowing the loop.
**
** An action published while its account has no subscriber (none connected
** yet after a start, between a drop and the reconnect, a timer firing while
** the gateway restarts) is kept in the account's backlog and goes to the
** next subscriber, first thing after its head: up to half of stream_buffer
** per account and 64 times that in all, the oldest dropped (logged, counted)
** beyond. Backlogs are in memory: a restart of the daemon loses them.
*/
#include "serve.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "log.h"

struct sbd_sub {
    sbd_sub *next, *prev;
    sbd_conn *conn;
    uint64_t since; /* batch it subscribed in */
    char account[132];
    char *auth;          /* the Authorization header it was opened with */
    uint64_t checked_ns; /* when those credentials were last verified */
};

struct sbd_pub {
    sbd_pub *next;
    uint64_t seq; /* batch the action was committed in */
    char *account;
    char *json;
};

/* One account's actions published while it had no subscriber, oldest first. */
struct sbd_backlog {
    sbd_backlog *next;
    char account[132];
    sbd_pub *head, **tail;
    size_t bytes;
    int warned; /* "backlog full" logged since the last delivery */
};

/* Across accounts, the backlogs hold at most this many stream_buffers. */
#define BACKLOG_ACCOUNTS 64

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
        free(s);
        return 0;
    }
    evbuffer_add(out, sep, strlen(sep));
    evbuffer_add(out, s, n);
    if (s != stack) free(s);
    return 1;
}

char *sbd_action_json(const sb_action *a, const char *account)
{
    sb_action b = *a;
    if (!b.account) b.account = account;
    size_t n = sb_action_json(&b, NULL, 0);
    char *s = malloc(n + 1);
    if (s && sb_action_json(&b, s, n + 1) != n) {
        free(s);
        s = NULL;
    }
    return s;
}

static void pub_free(sbd_pub *p)
{
    free(p->account);
    free(p->json);
    free(p);
}

static void pub_queue(sbd *d, sbd_pub *p)
{
    p->next = NULL;
    *d->pub_tail = p;
    d->pub_tail = &p->next;
}

static sbd_backlog *backlog_of(sbd *d, const char *account, int create)
{
    for (sbd_backlog *b = d->backlogs; b; b = b->next)
        if (!strcmp(b->account, account)) return b;
    if (!create) return NULL;
    sbd_backlog *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    snprintf(b->account, sizeof b->account, "%s", account);
    b->tail = &b->head;
    b->next = d->backlogs;
    d->backlogs = b;
    return b;
}

static void backlog_drop_oldest(sbd *d, sbd_backlog *b)
{
    sbd_pub *p = b->head;
    b->head = p->next;
    if (!b->head) b->tail = &b->head;
    size_t n = strlen(p->json);
    b->bytes -= n;
    d->backlog_bytes -= n;
    d->m.stream_backlog_dropped++;
    pub_free(p);
}

/* Keep p, published while its account had no subscriber, for the next.
** An account's backlog holds half of stream_buffer: it all goes into the
** new subscriber's output at once, after its head and with each event's
** framing, and a full stream_buffer there would drop that subscriber as
** slow before it read a byte. */
static void backlog_keep(sbd *d, sbd_pub *p)
{
    size_t n = strlen(p->json), cap = d->cfg->stream_buffer / 2;
    sbd_backlog *b = backlog_of(d, p->account, 1);
    if (!b || n > cap) {
        d->m.stream_backlog_dropped++;
        pub_free(p);
        return;
    }
    size_t before = d->m.stream_backlog_dropped;
    while (b->head && b->bytes + n > cap)
        backlog_drop_oldest(d, b);
    /* All the backlogs full: this account's oldest go first, then this one. */
    while (b->head && d->backlog_bytes + n > cap * BACKLOG_ACCOUNTS)
        backlog_drop_oldest(d, b);
    if (d->backlog_bytes + n > cap * BACKLOG_ACCOUNTS) {
        d->m.stream_backlog_dropped++;
        pub_free(p);
    } else {
        p->next = NULL;
        *b->tail = p;
        b->tail = &p->next;
        b->bytes += n;
        d->backlog_bytes += n;
    }
    if (d->m.stream_backlog_dropped != before && !b->warned) {
        b->warned = 1;
        sbd_log(SB_LOG_WARN, "stream backlog full: oldest actions dropped",
                "account=%s backlog_bytes=%zu stream_buffer=%zu", sbd_q(b->account), b->bytes,
                d->cfg->stream_buffer);
    }
}

/* A subscriber of account arrived in batch seq: what its account's backlog
** holds goes out with that batch, after the subscriber's head. */
static size_t backlog_deliver(sbd *d, const char *account, uint64_t seq)
{
    sbd_backlog *b = backlog_of(d, account, 0);
    if (!b) return 0;
    size_t n = 0;
    while (b->head) {
        sbd_pub *p = b->head;
        b->head = p->next;
        d->backlog_bytes -= strlen(p->json);
        p->seq = seq;
        pub_queue(d, p);
        n++;
    }
    sbd_backlog **pp = &d->backlogs;
    while (*pp != b)
        pp = &(*pp)->next;
    *pp = b->next;
    free(b);
    return n;
}

void sbd_stream_forget(sbd *d, const char *account)
{
    sbd_backlog **pp = &d->backlogs;
    while (*pp && strcmp((*pp)->account, account) != 0)
        pp = &(*pp)->next;
    if (*pp) {
        sbd_backlog *b = *pp;
        *pp = b->next;
        while (b->head) {
            sbd_pub *p = b->head;
            b->head = p->next;
            pub_free(p);
        }
        d->backlog_bytes -= b->bytes;
        free(b);
    }
    /* And what its last requests caused, still waiting for their sync. */
    sbd_pub **q = &d->pub_head;
    d->pub_tail = &d->pub_head;
    while (*q) {
        sbd_pub *p = *q;
        if (!strcmp(p->account, account)) {
            *q = p->next;
            pub_free(p);
        } else {
            q = &p->next;
            d->pub_tail = q;
        }
    }
}

void sbd_stream_free_backlogs(sbd *d)
{
    while (d->backlogs) {
        sbd_backlog *b = d->backlogs;
        d->backlogs = b->next;
        while (b->head) {
            sbd_pub *p = b->head;
            b->head = p->next;
            pub_free(p);
        }
        free(b);
    }
    d->backlog_bytes = 0;
    while (d->pub_head) {
        sbd_pub *p = d->pub_head;
        d->pub_head = p->next;
        pub_free(p);
    }
    d->pub_tail = &d->pub_head;
}

int sbd_stream_subscribe(sbd *d, sbd_conn *c, const char *account, const char *auth)
{
    /* Shutting down: the drain closed the streams there were; one whose
    ** request was still arriving then gets its head and the close, instead
    ** of holding the exit until shutdown_timeout. */
    if (d->draining) {
        sbd_log(SB_LOG_INFO, "stream not opened: shutting down", "conn=%llu peer=%s account=%s",
                (unsigned long long)sbd_conn_id(c), sbd_conn_peer(c), sbd_q(account));
        return -1;
    }
    sbd_sub *s = calloc(1, sizeof *s);
    if (!s || !auth || !(s->auth = strdup(auth))) {
        free(s);
        return -1;
    }
    s->checked_ns = sbd_now_ns();
    s->conn = c;
    s->since = sbd_seq(d);
    snprintf(s->account, sizeof s->account, "%s", account);
    s->next = d->subs;
    if (d->subs) d->subs->prev = s;
    d->subs = s;
    d->nsubs++;
    sbd_conn_set_sub(c, s);
    size_t kept = backlog_deliver(d, account, s->since);
    sbd_log(SB_LOG_INFO, "stream subscribed", "conn=%llu peer=%s account=%s backlog=%zu",
            (unsigned long long)sbd_conn_id(c), sbd_conn_peer(c), sbd_q(account), kept);
    return 0;
}

void sbd_stream_unsubscribe(sbd *d, sbd_sub *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        d->subs = s->next;
    if (s->next) s->next->prev = s->prev;
    d->nsubs--;
    sbd_conn_set_sub(s->conn, NULL);
    sbd_log(SB_LOG_INFO, "stream closed", "conn=%llu account=%s",
            (unsigned long long)sbd_conn_id(s->conn), sbd_q(s->account));
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
    while (s) {
        sbd_sub *next = s->next;
        if (force || now - s->checked_ns >= SBD_AUTH_CACHE_TTL_NS) {
            char acct[136];
            int rc = sbd_auth_basic(d, s->auth, acct, sizeof acct);
            s->checked_ns = now;
            if (rc == SB_EAUTH || (rc == 0 && strcmp(acct, s->account) != 0)) {
                sbd_log(SB_LOG_INFO, "stream closed: its credentials no longer verify",
                        "conn=%llu peer=%s account=%s", (unsigned long long)sbd_conn_id(s->conn),
                        sbd_conn_peer(s->conn), sbd_q(s->account));
                sbd_conn_close(s->conn); /* unsubscribes s */
            }
        }
        s = next;
    }
}

void sbd_stream_hold(sbd *d, const sb_action *a, const char *account)
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
        free(p->json);
        free(p);
        return;
    }
    p->seq = sbd_seq(d);
    pub_queue(d, p);
}

static void drop(sbd *d, sbd_sub *s, size_t queued)
{
    sbd_log(SB_LOG_WARN, "stream subscriber dropped: slow consumer",
            "conn=%llu peer=%s account=%s queued_bytes=%zu stream_buffer=%zu",
            (unsigned long long)sbd_conn_id(s->conn), sbd_conn_peer(s->conn), sbd_q(s->account),
            queued, d->cfg->stream_buffer);
    d->m.stream_dropped++;
    sbd_conn_close(s->conn); /* unsubscribes s */
}

void sbd_stream_stalled(sbd *d, sbd_sub *s)
{
    struct evbuffer *out = bufferevent_get_output(sbd_conn_bev(s->conn));
    sbd_log(SB_LOG_WARN, "stream subscriber dropped: stalled",
            "conn=%llu peer=%s account=%s queued_bytes=%zu idle_timeout=%u",
            (unsigned long long)sbd_conn_id(s->conn), sbd_conn_peer(s->conn), sbd_q(s->account),
            evbuffer_get_length(out), d->cfg->idle_timeout);
    d->m.stream_dropped++;
    sbd_conn_close(s->conn); /* unsubscribes s */
}

void sbd_stream_publish(sbd *d, uint64_t upto)
{
    while (d->pub_head && d->pub_head->seq <= upto) {
        sbd_pub *p = d->pub_head;
        d->pub_head = p->next;
        if (!d->pub_head) d->pub_tail = &d->pub_head;
        size_t jl = strlen(p->json);
        int sent = 0;
        uint64_t later = 0; /* the batch of a subscriber whose head is not out yet */
        sbd_sub *s = d->subs;
        while (s) {
            sbd_sub *next = s->next;
            if (!strcmp(s->account, p->account)) {
                if (s->since > p->seq) {
                    if (s->since > later) later = s->since;
                } else {
                    struct evbuffer *out = bufferevent_get_output(sbd_conn_bev(s->conn));
                    size_t queued = evbuffer_get_length(out);
                    if (queued + jl + 8 > d->cfg->stream_buffer) {
                        drop(d, s, queued);
                    } else {
                        evbuffer_add(out, "data: ", 6);
                        evbuffer_add(out, p->json, jl);
                        evbuffer_add(out, "\n\n", 2);
                        sent = 1;
                    }
                }
            }
            s = next;
        }
        if (sent) {
            pub_free(p);
        } else if (later) {
            /* Its only subscriber came after it, head still held: it goes
            ** out with that subscriber's batch. */
            p->seq = later;
            pub_queue(d, p);
        } else {
            backlog_keep(d, p);
        }
    }
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
