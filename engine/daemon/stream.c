/*
** stream.c — GET /v1/events: each account's action stream as Server-Sent
** Events. Actions wait in the batch with the responses and go out after the
** sync that covers them (each is tagged with its batch, like the responses),
** as `data: <action json>\n\n`. A subscriber gets the events of the batch it
** subscribed in and later ones, never before its own response head. A subscriber whose unsent
*output passes
** stream_buffer bytes is dropped (and logged) rather than slowing the loop.
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
    sbd_log(SB_LOG_INFO, "stream subscribed", "conn=%llu peer=%s account=%s",
            (unsigned long long)sbd_conn_id(c), sbd_conn_peer(c), sbd_q(account));
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
    /* Nobody listening to this account: nothing to hold. */
    sbd_sub *s = d->subs;
    while (s && strcmp(s->account, acct) != 0)
        s = s->next;
    if (!s) return;
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
    *d->pub_tail = p;
    d->pub_tail = &p->next;
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

void sbd_stream_publish(sbd *d, uint64_t upto)
{
    while (d->pub_head && d->pub_head->seq <= upto) {
        sbd_pub *p = d->pub_head;
        d->pub_head = p->next;
        if (!d->pub_head) d->pub_tail = &d->pub_head;
        size_t jl = strlen(p->json);
        sbd_sub *s = d->subs;
        while (s) {
            sbd_sub *next = s->next;
            if (s->since <= p->seq && !strcmp(s->account, p->account)) {
                struct evbuffer *out = bufferevent_get_output(sbd_conn_bev(s->conn));
                size_t queued = evbuffer_get_length(out);
                if (queued + jl + 8 > d->cfg->stream_buffer) {
                    drop(d, s, queued);
                } else {
                    evbuffer_add(out, "data: ", 6);
                    evbuffer_add(out, p->json, jl);
                    evbuffer_add(out, "\n\n", 2);
                }
            }
            s = next;
        }
        free(p->account);
        free(p->json);
        free(p);
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
