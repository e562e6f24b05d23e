/*
** http.c — connections and HTTP/1.1 on bufferevents.
**
** Why not evhttp: the daemon must hold every response until the sync that
** makes its batch durable (group commit), answer oversize headers with 431 and bodies with
** 413 in its own JSON, refuse connections past max_connections with a 503,
** and serve pipelined requests in order without waiting for each response to
** be written. A small parser over the bufferevent's input gives that control.
**
** A connection's life: HTTP (parsing requests; each response is appended to
** `pending`, tagged with the batch it was answered in, and the connection
** joins the batch list until every tagged segment is released) → CLOSING (no more requests;
** waits for its output to drain) → LINGER (write side shut, reading and
** discarding until EOF or 2 s, so the client sees the last response instead
** of a reset) → freed. GET /v1/events turns HTTP into STREAM.
*/
#include "serve.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/util.h>
#include <sodium.h>

#include "log.h"

enum { CS_HTTP, CS_STREAM, CS_CLOSING, CS_LINGER };

/* A request's head, parsed in place (the strings point into its buffer). */
struct head {
    char *method, *target, *auth, *ctype, *last_id, *if_match, *if_none_match;
    char *fetch_site; /* Sec-Fetch-Site, a browser's */
    int minor;
    int close, keepalive, chunked, expect;
    int has_cl;
    int hosts; /* Host fields seen */
    uint64_t cl;
};

/* Where the chunked body decoder is: a chunk-size line, a chunk's data, the
** CRLF after it, or the trailer section. */
enum { CK_SIZE, CK_DATA, CK_CRLF, CK_TRAILER };

/* A segment of a connection's held responses. The answer to a request that
** changed state is a segment of its own, which a failed sync replaces with
** its error alone (sbd_http_release); answers that changed nothing share
** one per batch. */
struct held {
    uint64_t seq;           /* batch: released once a sync covering it is done */
    size_t bytes;           /* length of this segment of pending */
    unsigned count;         /* responses in it */
    unsigned char mutating; /* a request in it changed state */
    unsigned char head;     /* its first response answers a HEAD */
    unsigned char minor;    /* ... the request's HTTP/1.x */
    unsigned char keep;     /* ... and it keeps the connection open */
};

struct sbd_conn {
    sbd *d;
    struct bufferevent *bev;
    evutil_socket_t fd;
    uint64_t id;
    char peer[64];
    int state;
    int counted; /* counts against max_connections (else: a 503 being sent) */
    /* The peer's address, for max_connections_per_peer: family (0: none,
    ** a unix socket) and bytes (4 or 16). */
    uint8_t pfam, paddr[16];
    struct evbuffer *pending; /* responses held until their batch is synced */
    struct held *held;        /* pending, cut into segments: held[0] at the front */
    int nheld, capheld;
    sbd_conn *next, *prev;   /* d->conns */
    sbd_conn *bnext, *bprev; /* d->batch */
    int in_batch;
    int expect_sent;    /* 100 Continue sent for the request being received */
    int paused;         /* reading stopped until the output drains */
    unsigned njobs;     /* its event requests the engine has, not yet answered */
    int last_taken;     /* it asked to close after a request the engine has */
    int answered_close; /* an answer closed it: later requests go unanswered */
    int dispatching;    /* a request of it is being handled (dispatch) */
    int eof;            /* the client half-closed while requests wait in its input */
    int resume;         /* take requests again once a job is answered (resume_cb) */
    sbd_sub *sub;
    int streamed; /* it was an event stream (it may be closing now) */
    size_t lingered;
    sbd_auth_cache auth; /* the last account credentials verified here */
    /* The request deadline (CS_HTTP: a request begun must be complete within
    ** request_timeout of its first byte, however steadily its bytes trickle
    ** in) and the linger deadline (CS_LINGER). Created when first needed. */
    struct event *timer;
    int timer_armed;
    /* A chunked request body on its way. Its head is taken off the input
    ** once parsed and each read decodes only the bytes it brought: the
    ** decoded body so far, the decoder's place, the wire bytes taken. */
    struct chunked {
        char *hbuf; /* the request head (hd points into it); NULL: none */
        struct head hd;
        struct evbuffer *body; /* decoded so far */
        int state;             /* CK_* */
        uint64_t left;         /* CK_DATA: bytes of the chunk still to come */
        size_t wire;           /* head and body bytes taken off the input */
    } ck;
};

/* A connection's responses waiting to go out (held for a sync, or not yet
** taken by the socket) past which its requests are no longer read: a
** client that pipelines and never reads holds this much of the daemon's
** memory (and its last response, which may be larger), not what it asks
** for. A client that reads keeps it far below: the socket takes them. */
#define OUTPUT_LIMIT (64u * 1024)
#define BATCH_LIMIT 512 /* flush early when this many responses wait */
/* A connection's event requests the engine may have at once (pipelined):
** more wait in its input until some are answered. */
#define JOBS_PER_CONN 64
#define MAX_HEADERS 100
#define LINGER_SECONDS 2
#define LINGER_BYTES (1024 * 1024)
#define MAX_REJECTING 64

static void conn_free(sbd_conn *c);
static void process_input(sbd_conn *c);
static void start_linger(sbd_conn *c);
static void timer_cb(evutil_socket_t fd, short what, void *arg);

/* Arm c's timer to fire `seconds` from now (a no-op if it is armed and
** `restart` is 0), or disarm it (seconds 0). */
static void conn_timer(sbd_conn *c, unsigned seconds, int restart)
{
    if (!seconds) {
        if (c->timer_armed) event_del(c->timer);
        c->timer_armed = 0;
        return;
    }
    if (c->timer_armed && !restart) return;
    if (!c->timer && !(c->timer = evtimer_new(c->d->base, timer_cb, c))) return;
    struct timeval tv = {(time_t)seconds, 0};
    if (event_add(c->timer, &tv) == 0) c->timer_armed = 1;
}

struct bufferevent *sbd_conn_bev(sbd_conn *c)
{
    return c->bev;
}

uint64_t sbd_conn_id(const sbd_conn *c)
{
    return c->id;
}

const char *sbd_conn_peer(const sbd_conn *c)
{
    return c->peer;
}

void sbd_conn_set_sub(sbd_conn *c, sbd_sub *s)
{
    c->sub = s;
}

void sbd_conn_close(sbd_conn *c)
{
    conn_free(c);
}

int sbd_conn_held(const sbd_conn *c)
{
    return c->in_batch;
}

/* ------------------------------------------------------------------------ */
/* Response writing. */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

static const char *http_date(void)
{
    static char buf[64];
    static time_t cached;
    time_t now = time(NULL);
    if (now != cached) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached = now;
    }
    return buf;
}

static const char *connection_field(int minor, int keep_alive)
{
    return !keep_alive ? "Connection: close\r\n" : minor == 0 ? "Connection: keep-alive\r\n" : "";
}

/* Append a complete response (head + rep->body, which is emptied) to out.
** To a HEAD only the head goes, its Content-Length that of the body it
** leaves out (RFC 9110 9.3.2): whatever follows is the next response. */
static void format_response(struct evbuffer *out, sbd_reply *rep, int minor, int keep_alive,
                            int head)
{
    size_t len = evbuffer_get_length(rep->body);
    evbuffer_add_printf(out,
                        "HTTP/1.%d %d %s\r\nDate: %s\r\nServer: switchboard/%s\r\n"
                        "Content-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
                        "%s%s\r\n",
                        minor, rep->status, reason_phrase(rep->status), http_date(),
                        SB_VERSION_STRING,
                        rep->content_type ? rep->content_type : "application/json", len,
                        connection_field(minor, keep_alive), rep->headers);
    if (head)
        evbuffer_drain(rep->body, len);
    else
        evbuffer_add_buffer(out, rep->body);
}

static void batch_join(sbd_conn *c)
{
    sbd *d = c->d;
    if (!c->in_batch) {
        c->nheld = 0;
        c->in_batch = 1;
        c->bprev = NULL;
        c->bnext = d->batch;
        if (d->batch) d->batch->bprev = c;
        d->batch = c;
    }
}

static void batch_leave(sbd_conn *c)
{
    sbd *d = c->d;
    if (!c->in_batch) return;
    if (c->bprev)
        c->bprev->bnext = c->bnext;
    else
        d->batch = c->bnext;
    if (c->bnext) c->bnext->bprev = c->bprev;
    c->in_batch = 0;
    c->bnext = c->bprev = NULL;
}

/* c is gone: its jobs are applied all the same, answered to no one. (The
** engine thread reads no job's c.) */
static void jobs_forget(sbd *d, const sbd_conn *c)
{
    for (sbd_job *j = d->jobs; j; j = j->next)
        if (j->c == c) j->c = NULL;
    for (sbd_job *j = d->eng_run; j; j = j->next)
        if (j->c == c) j->c = NULL;
}

/* An answer just put on c closes it: nothing after it is answered, and its
** events not yet handed to the engine thread are not applied either (the
** client will not be told of them; those the thread has are past stopping). */
static void close_by_answer(sbd_conn *c)
{
    c->state = CS_CLOSING;
    c->answered_close = 1;
    for (sbd_job *j = c->d->jobs; j; j = j->next)
        if (j->c == c) j->skip = 1;
}

/* An answer on c goes behind the answers to its events in hand: they are
** applied and answered first. 1 if one of those closed c (nothing more is
** answered on it). */
static int behind_jobs(sbd_conn *c)
{
    if (c->njobs) sbd_batch_close(c->d);
    return c->answered_close;
}

/* Room for one more segment on c: 0 if there is none to be had. */
static int held_room(sbd_conn *c)
{
    if (c->nheld < c->capheld) return 1;
    int cap = c->capheld ? c->capheld * 2 : 4;
    struct held *h = realloc(c->held, (size_t)cap * sizeof *h);
    if (!h) return 0;
    c->held = h;
    c->capheld = cap;
    return 1;
}

/* What was appended to c->pending since it was `before` bytes long, the
** response to one request, belongs to batch `seq` (sbd_seq() or
** sbd_commit_tag()): tag it, and put c on the batch list. mutating: the
** request changed state; head: it answers a HEAD (or is the 100 Continue
** of one); minor and keep: the request's HTTP/1.x and whether the response
** keeps the connection open, for an error put in its place. */
static void hold(sbd_conn *c, size_t before, int mutating, uint64_t seq, int head, int minor,
                 int keep)
{
    size_t n = evbuffer_get_length(c->pending) - before;
    batch_join(c);
    struct held *h = c->nheld ? &c->held[c->nheld - 1] : NULL;
    /* Out of memory, it merges into the last segment under the later tag
    ** (held longer, never released early; a failed sync then answers the
    ** two as one, sbd_http_release). */
    if ((!h || mutating || h->mutating || h->seq != seq) && held_room(c)) {
        h = &c->held[c->nheld++];
        memset(h, 0, sizeof *h);
        h->head = (unsigned char)head;
        h->minor = (unsigned char)minor;
        h->keep = (unsigned char)keep;
    }
    h->seq = seq; /* tags only grow: merging raises the tag */
    h->bytes += n;
    h->count++;
    h->mutating |= (unsigned char)mutating;
}

static void note_request(sbd *d, int route, int method, int status, int mutating, uint64_t t0,
                         uint64_t seq)
{
    if (d->npreq == d->cappreq) {
        size_t cap = d->cappreq ? d->cappreq * 2 : 64;
        sbd_pending_req *p = realloc(d->preq, cap * sizeof *p);
        if (!p) return;
        d->preq = p;
        d->cappreq = cap;
    }
    d->preq[d->npreq++] = (sbd_pending_req){route, method, status, mutating, t0, seq};
}

/* An empty buffer for a response's body, reused: one for each kind of
** response that may be made while another is (a request's; an applied
** event's, answered as sbd_batch_close runs before that request's is
** formatted; a failed batch's 500s). */
enum { SCRATCH_REQUEST, SCRATCH_JOB, SCRATCH_FAILED, SCRATCH_HELD, SCRATCH_N };
static struct evbuffer *scratch_body(int which)
{
    static struct evbuffer *b[SCRATCH_N];
    if (!b[which])
        b[which] = evbuffer_new();
    else
        evbuffer_drain(b[which], evbuffer_get_length(b[which]));
    return b[which];
}

/* Drop the chunked body being received on c, if any. */
static void chunked_end(sbd_conn *c)
{
    struct chunked *k = &c->ck;
    sbd_free_wiped(k->hbuf);
    k->hbuf = NULL;
    if (k->body) evbuffer_drain(k->body, evbuffer_get_length(k->body));
}

static int method_index(const char *m);

/* Queue a transport-level error and stop reading requests on c. hd: the
** request's head as far as it was read (NULL: none), for the route and
** method it is counted under; head: the request is a HEAD. */
static void queue_error(sbd_conn *c, int status, const char *code, const char *msg,
                        const struct head *hd, int head, uint64_t t0)
{
    /* (Before chunked_end, which frees the head hd may point into.) */
    int known = hd && hd->method && hd->target && hd->target[0] == '/';
    int route = known ? sbd_api_route_of(hd->target) : -1;
    int method = known ? method_index(hd->method) : SBD_OTHER;
    /* Behind the answers to the connection's events before it; if one of
    ** those closed the connection, nothing more is. */
    if (behind_jobs(c)) {
        chunked_end(c);
        return;
    }
    sbd_reply rep;
    memset(&rep, 0, sizeof rep);
    rep.body = scratch_body(SCRATCH_REQUEST);
    rep.route = -1;
    sbd_api_error(&rep, status, code, msg, NULL);
    size_t before = evbuffer_get_length(c->pending);
    format_response(c->pending, &rep, 1, 0, head);
    close_by_answer(c);
    chunked_end(c);
    uint64_t seq = sbd_seq(c->d);
    hold(c, before, 0, seq, head, 1, 0);
    c->d->batch_len++;
    note_request(c->d, route, method, status, 0, t0, seq);
    sbd_log(SB_LOG_DEBUG, "bad request", "conn=%llu peer=%s status=%d code=%s",
            (unsigned long long)c->id, c->peer, status, code);
}

/* ------------------------------------------------------------------------ */
/* Request parsing. */

static int is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Does a comma-separated header value contain token tok? */
static int has_token(const char *v, const char *tok)
{
    size_t tl = strlen(tok);
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *s = v;
        while (*v && *v != ',')
            v++;
        const char *e = v;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) == tl && !strncasecmp(s, tok, tl)) return 1;
    }
    return 0;
}

/* Take a Transfer-Encoding field's value v: a list of transfer codings in
** the order they were applied (RFC 9112 6.1), empty elements ignored (RFC
** 9110 5.6.1). Chunked alone is taken, and only once: "chunked, chunked"
** and two fields each saying chunked are one list (RFC 9110 5.3), applying
** it twice. 0, or an HTTP status for the error (with *why). */
static int take_codings(const char *v, struct head *hd, const char **why)
{
    int any = 0;
    for (;;) {
        size_t n = strcspn(v, ",");
        const char *s = v, *e = v + n;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > s) {
            if (e - s != 7 || strncasecmp(s, "chunked", 7) != 0) {
                *why = "only the chunked transfer coding is supported";
                return 501;
            }
            if (hd->chunked) {
                *why = "the chunked transfer coding is applied more than once (RFC 9112 6.1)";
                return 400;
            }
            hd->chunked = 1;
            any = 1;
        }
        if (!v[n]) break;
        v += n + 1;
    }
    if (!any) {
        /* No coding at all: not chunked, and no other either. */
        *why = "only the chunked transfer coding is supported";
        return 501;
    }
    return 0;
}

/* Is v a well-formed HTTP-version, HTTP/DIGIT.DIGIT (RFC 9112 2.3), or a
** major version alone as HTTP/2 and HTTP/3 are named? */
static int is_http_version(const char *v)
{
    if (strncmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9') return 0;
    if (!v[6]) return 1;
    return v[6] == '.' && v[7] >= '0' && v[7] <= '9' && !v[8];
}

/* An absolute-form request target, "http://authority/path?query" (RFC 9112
** 3.2.2, what a client sends to a proxy), which a server must take too: *t
** moves to its path and query, the authority's last byte made the '/' of a
** path it leaves out. The authority is not checked, as Host's value is not.
** 0, or -1 when *t is no http or https URI with an authority. */
static int origin_form(char **t)
{
    char *p = *t;
    size_t n = !strncasecmp(p, "http://", 7) ? 7 : !strncasecmp(p, "https://", 8) ? 8 : 0;
    if (!n) return -1;
    char *path = p + n + strcspn(p + n, "/?");
    if (path == p + n) return -1;
    if (*path != '/') *--path = '/';
    *t = path;
    return 0;
}

/* Parse the header block h (NUL-terminated, ends with CRLF CRLF) in place.
** Returns 0, or an HTTP status for the error (with *why). */
static int parse_head(char *h, struct head *hd, const char **why)
{
    memset(hd, 0, sizeof *hd);
    char *eol = strstr(h, "\r\n");
    *eol = 0;
    char *sp1 = strchr(h, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || strchr(sp2 + 1, ' ')) {
        *why = "malformed request line";
        return 400;
    }
    *sp1 = *sp2 = 0;
    hd->method = h;
    hd->target = sp1 + 1;
    for (char *m = h; *m; m++)
        if (!is_tchar((unsigned char)*m)) {
            *why = "malformed method";
            return 400;
        }
    for (char *t = hd->target; *t; t++)
        if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f) {
            *why = "malformed request target";
            return 400;
        }
    if (!*h || (hd->target[0] != '/' && origin_form(&hd->target))) {
        *why = "request target must be an absolute path (or an http: or https: URI)";
        return 400;
    }
    const char *ver = sp2 + 1;
    if (!strcmp(ver, "HTTP/1.1"))
        hd->minor = 1;
    else if (!strcmp(ver, "HTTP/1.0"))
        hd->minor = 0;
    else if (is_http_version(ver)) {
        *why = "only HTTP/1.0 and HTTP/1.1 are supported";
        return 505;
    } else {
        *why = "malformed request line";
        return 400;
    }
    hd->keepalive = hd->minor == 1;

    int n = 0;
    char *line = eol + 2;
    while (!(line[0] == '\r' && line[1] == '\n')) {
        eol = strstr(line, "\r\n");
        *eol = 0;
        if (++n > MAX_HEADERS) {
            *why = "too many header fields";
            return 431;
        }
        char *colon = strchr(line, ':');
        if (!colon || colon == line) {
            *why = "malformed header field";
            return 400;
        }
        for (char *p = line; p < colon; p++)
            if (!is_tchar((unsigned char)*p)) {
                *why = "malformed header field name";
                return 400;
            }
        *colon = 0;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        char *ve = v + strlen(v);
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            *--ve = 0;
        for (char *p = v; *p; p++)
            if ((unsigned char)*p < 0x20 && *p != '\t') {
                *why = "control character in header field";
                return 400;
            }
        if (!strcasecmp(line, "content-length")) {
            char *end;
            if (!*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 18) {
                *why = "malformed Content-Length";
                return 400;
            }
            uint64_t cl = strtoull(v, &end, 10);
            if (hd->has_cl && cl != hd->cl) {
                *why = "conflicting Content-Length";
                return 400;
            }
            hd->has_cl = 1;
            hd->cl = cl;
        } else if (!strcasecmp(line, "transfer-encoding")) {
            int st = take_codings(v, hd, why);
            if (st) return st;
        } else if (!strcasecmp(line, "connection")) {
            if (has_token(v, "close")) hd->close = 1;
            if (has_token(v, "keep-alive")) hd->keepalive = 1;
        } else if (!strcasecmp(line, "host")) {
            hd->hosts++;
        } else if (!strcasecmp(line, "authorization")) {
            if (hd->auth) {
                *why = "more than one Authorization header field";
                return 400;
            }
            hd->auth = v;
        } else if (!strcasecmp(line, "content-type")) {
            if (hd->ctype) {
                *why = "more than one Content-Type header field";
                return 400;
            }
            hd->ctype = v;
        } else if (!strcasecmp(line, "sec-fetch-site")) {
            if (hd->fetch_site) {
                *why = "more than one Sec-Fetch-Site header field";
                return 400;
            }
            hd->fetch_site = v;
        } else if (!strcasecmp(line, "last-event-id")) {
            if (hd->last_id) {
                *why = "more than one Last-Event-ID header field";
                return 400;
            }
            hd->last_id = v;
        } else if (!strcasecmp(line, "if-match") || !strcasecmp(line, "if-none-match")) {
            int none = line[3] == 'n' || line[3] == 'N';
            if (none ? hd->if_none_match : hd->if_match) {
                *why = none ? "more than one If-None-Match header field"
                            : "more than one If-Match header field";
                return 400;
            }
            *(none ? &hd->if_none_match : &hd->if_match) = v;
        } else if (!strcasecmp(line, "expect")) {
            if (strcasecmp(v, "100-continue") != 0) {
                *why = "unsupported expectation";
                return 417;
            }
            hd->expect = 1;
        }
        line = eol + 2;
    }
    if (hd->chunked && hd->has_cl) {
        *why = "both Content-Length and Transfer-Encoding";
        return 400;
    }
    /* RFC 9112 3.2. The value is not checked: there is one name served. */
    if (hd->hosts > 1) {
        *why = "more than one Host header field";
        return 400;
    }
    if (hd->minor == 1 && !hd->hosts) {
        *why = "an HTTP/1.1 request needs a Host header field";
        return 400;
    }
    /* RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has framing
    ** another HTTP/1.0 hop may not share: close after answering it. */
    if (hd->close || (hd->chunked && hd->minor == 0)) hd->keepalive = 0;
    return 0;
}

static int method_index(const char *m)
{
    if (!strcmp(m, "GET")) return SBD_GET;
    if (!strcmp(m, "PUT")) return SBD_PUT;
    if (!strcmp(m, "POST")) return SBD_POST;
    if (!strcmp(m, "DELETE")) return SBD_DELETE;
    if (!strcmp(m, "HEAD")) return SBD_HEAD;
    return SBD_OTHER;
}

#define CHUNK_LINE_MAX 1024   /* a chunk-size line, extensions included */
#define TRAILER_LINE_MAX 8192 /* a trailer field line */

/* Is the trailer field line at the front of in (ll bytes before its LF) one
** a header line could be: ending in CR LF, "name:" with a token name, no
** other control character? Trailer fields are ignored, but one the head's
** parser would refuse (a bare LF ending it) is refused as well: another
** parser on the way could read the bytes after it as a request. */
static int trailer_line_ok(struct evbuffer *in, size_t ll)
{
    char line[TRAILER_LINE_MAX + 1];
    if (ll < 2 || ll > TRAILER_LINE_MAX) return 0;
    evbuffer_copyout(in, line, ll);
    if (line[ll - 1] != '\r') return 0;
    size_t name = 0;
    while (name < ll - 1 && is_tchar((unsigned char)line[name]))
        name++;
    if (!name || line[name] != ':') return 0;
    for (size_t i = name + 1; i < ll - 1; i++)
        if ((unsigned char)line[i] < 0x20 && line[i] != '\t') return 0;
    return 1;
}

/* Decode what has arrived of c's chunked body, taking it off in: resumes
** where the last call stopped, so no byte is decoded twice. Returns 1
** when the body is complete (in c->ck.body, the trailer consumed), 0 when
** more input is needed, or an HTTP status (with *why). */
static int dechunk(sbd_conn *c, struct evbuffer *in, size_t max_body, const char **why)
{
    struct chunked *k = &c->ck;
    for (;;) {
        size_t avail = evbuffer_get_length(in);
        if (k->state == CK_DATA) {
            size_t n = avail < k->left ? avail : (size_t)k->left;
            if (!n) return 0;
            evbuffer_remove_buffer(in, k->body, n);
            k->wire += n;
            k->left -= n;
            if (!k->left) k->state = CK_CRLF;
            continue;
        }
        if (k->state == CK_CRLF) {
            char crlf[2];
            if (avail < 2) return 0;
            evbuffer_remove(in, crlf, 2);
            k->wire += 2;
            if (crlf[0] != '\r' || crlf[1] != '\n') {
                *why = "malformed chunk";
                return 400;
            }
            k->state = CK_SIZE;
            continue;
        }
        /* A line: a chunk size, or a trailer field. ll excludes the LF. */
        size_t max = k->state == CK_SIZE ? CHUNK_LINE_MAX : TRAILER_LINE_MAX;
        struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
        if (eol.pos < 0 ? avail > max : (size_t)eol.pos > max) {
            if (k->state == CK_SIZE) {
                *why = "malformed chunk size";
                return 400;
            }
            *why = "trailer too large";
            return 431;
        }
        if (eol.pos < 0) return 0;
        size_t ll = (size_t)eol.pos;
        k->wire += ll + 1;
        if (k->state == CK_TRAILER) {
            /* Trailer fields (ignored), then an empty line. */
            char cr = 0;
            evbuffer_copyout(in, &cr, 1);
            if (ll == 1 && cr == '\r') {
                evbuffer_drain(in, ll + 1);
                return 1;
            }
            if (ll == 0 || !trailer_line_ok(in, ll)) {
                evbuffer_drain(in, ll + 1);
                *why = "malformed trailer";
                return 400;
            }
            evbuffer_drain(in, ll + 1);
            continue;
        }
        char line[CHUNK_LINE_MAX + 1];
        evbuffer_remove(in, line, ll + 1);
        if (ll < 1 || line[ll - 1] != '\r') {
            *why = "malformed chunk size";
            return 400;
        }
        /* The size's value counts, not its digits (leading zeros are
        ** allowed): past max_body it stops growing, and is refused below. */
        uint64_t sz = 0;
        size_t i = 0;
        for (; i < ll - 1; i++) {
            char ch = line[i];
            int v = ch >= '0' && ch <= '9'   ? ch - '0'
                    : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                             : -1;
            if (v < 0) break;
            if (sz <= max_body) sz = sz * 16 + (uint64_t)v;
        }
        /* After the digits, only chunk extensions (RFC 9112 7.1.1: BWS ";"
        ** name ["=" value], ignored here), with no control character in
        ** them: "2 zz" or "2\rx" is not a chunk size another parser reads
        ** the same way. */
        size_t j = i;
        while (j < ll - 1 && (line[j] == ' ' || line[j] == '\t'))
            j++;
        int ext_ok = j == ll - 1 ? j == i : line[j] == ';';
        for (; ext_ok && j < ll - 1; j++)
            if (((unsigned char)line[j] < 0x20 && line[j] != '\t') || line[j] == 0x7f) ext_ok = 0;
        if (!i || !ext_ok) {
            *why = "malformed chunk size";
            return 400;
        }
        if (sz == 0) {
            k->state = CK_TRAILER;
            continue;
        }
        /* max_body bounds the decoded body, checked before the data comes. */
        if ((uint64_t)evbuffer_get_length(k->body) + sz > max_body) {
            *why = "request body exceeds max_body (its chunks' sizes together)";
            return 413;
        }
        k->left = sz;
        k->state = CK_DATA;
    }
}

/* The error code for a status the parser answers with. */
static const char *http_code(int status)
{
    switch (status) {
    case 413:
        return "HTTP_BODY_TOO_LARGE";
    case 417:
        return "HTTP_EXPECTATION_FAILED";
    case 431:
        return "HTTP_HEADERS_TOO_LARGE";
    case 501:
        return "HTTP_NOT_IMPLEMENTED";
    case 505:
        return "HTTP_VERSION_NOT_SUPPORTED";
    default:
        return "HTTP_BAD_REQUEST";
    }
}

static int kernel_has_data(evutil_socket_t fd)
{
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n > 0;
}

static size_t read_limit(const sbd *d)
{
    return d->cfg->max_header + d->cfg->max_body + 64 * 1024;
}

/* The request the API reads from the head hd (path and query q as split
** from its target; no body yet), and an empty reply. */
static void request_of(sbd_conn *c, const struct head *hd, char *path, const char *q, sbd_req *req,
                       sbd_reply *rep)
{
    *req = (sbd_req){
        .method = method_index(hd->method),
        .method_name = hd->method,
        .path = path,
        .query = q ? q : "",
        .authorization = hd->auth,
        .content_type = hd->ctype,
        .last_event_id = hd->last_id,
        .if_match = hd->if_match,
        .if_none_match = hd->if_none_match,
        .fetch_site = hd->fetch_site,
        .auth_cache = &c->auth,
        .peer = c->peer,
    };
    memset(rep, 0, sizeof *rep);
    rep->body = scratch_body(SCRATCH_REQUEST);
    rep->route = -1;
}

/* Hold rep's response on c, tagged seq (or, while a batch's events are
** answered, untagged for sbd_http_settle), and count it. */
static void answer(sbd_conn *c, sbd_reply *rep, int minor, int keepalive, int head, int method,
                   const char *method_name, const char *path, uint64_t t0, uint64_t seq)
{
    sbd *d = c->d;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    int keep = keepalive && !rep->close;
    /* Shutting down: the last request we have gets "Connection: close" (not
    ** an event's answer while a request after it is in hand). */
    if (d->draining && keep && !c->njobs && !c->dispatching && !evbuffer_get_length(in) &&
        !kernel_has_data(c->fd))
        keep = 0;
    size_t before = evbuffer_get_length(c->pending);
    format_response(c->pending, rep, minor, keep, head);
    hold(c, before, rep->mutating, seq, head, minor, keep);
    note_request(d, rep->route, method, rep->status, rep->mutating, t0, seq);
    if (sbd_log_enabled(SB_LOG_DEBUG))
        sbd_log(SB_LOG_DEBUG, "request", "conn=%llu method=%s path=%s status=%d",
                (unsigned long long)c->id, method_name, sbd_qpath(path), rep->status);
    if (!keep) close_by_answer(c);
}

/* Handle one complete request. */
static void dispatch(sbd_conn *c, struct head *hd, char *body, size_t body_len, uint64_t t0)
{
    sbd *d = c->d;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    char *q = strchr(hd->target, '?');
    if (q) *q++ = 0;
    sbd_req req;
    sbd_reply rep;
    request_of(c, hd, hd->target, q, &req, &rep);
    req.body = body;
    req.body_len = body_len;
    req.conn_closed = &c->answered_close;
    c->dispatching = 1;
    sbd_api_handle(d, &req, &rep);
    /* Behind an answer that closed the connection: not handled, unanswered. */
    if (rep.dropped) {
        c->dispatching = 0;
        return;
    }

    int head = req.method == SBD_HEAD;
    if (rep.job) {
        /* An event: answered once the engine has applied it. */
        sbd_job *j = rep.job;
        j->c = c;
        j->rep = rep;
        j->rep.job = NULL;
        j->minor = hd->minor;
        j->keepalive = hd->keepalive;
        j->head = head;
        j->t0 = t0;
        c->njobs++;
        c->dispatching = 0;
        if (!hd->keepalive) c->last_taken = 1;
        sbd_job_add(d, j);
        d->batch_len++;
        return;
    }
    /* Behind the answers to the connection's events before it (a request
    ** refused before it became an event's job). */
    int closed = behind_jobs(c);
    c->dispatching = 0;
    if (closed) return;
    if (!rep.stream) {
        answer(c, &rep, hd->minor, hd->keepalive, head, req.method, hd->method, req.path, t0,
               rep.mutating ? sbd_commit_tag(d) : sbd_seq(d));
        d->batch_len++;
        return;
    }
    /* HEAD /v1/events: the stream's head alone; nothing is subscribed. */
    int stream = !head;
    int keep = hd->keepalive && !stream && !rep.close;
    if (d->draining && keep && !evbuffer_get_length(in) && !kernel_has_data(c->fd)) keep = 0;
    size_t before = evbuffer_get_length(c->pending);
    evbuffer_add_printf(c->pending,
                        "HTTP/1.%d 200 OK\r\nDate: %s\r\nServer: switchboard/%s\r\n"
                        "Content-Type: text/event-stream\r\nCache-Control: no-store\r\n"
                        "X-Accel-Buffering: no\r\n%s\r\n%s",
                        hd->minor, http_date(), SB_VERSION_STRING,
                        connection_field(hd->minor, keep), stream ? ": connected\n\n" : "");
    uint64_t seq = rep.mutating ? sbd_commit_tag(d) : sbd_seq(d);
    hold(c, before, rep.mutating, seq, head, hd->minor, keep);
    d->batch_len++;
    note_request(d, rep.route, req.method, 200, rep.mutating, t0, seq);
    if (sbd_log_enabled(SB_LOG_DEBUG))
        sbd_log(SB_LOG_DEBUG, "request", "conn=%llu method=%s path=%s status=%d",
                (unsigned long long)c->id, hd->method, sbd_qpath(req.path), rep.status);
    if (stream) {
        if (sbd_stream_subscribe(d, c, rep.stream_account, rep.stream_auth, rep.stream_resume,
                                 rep.stream_after) == 0) {
            c->state = CS_STREAM;
            c->streamed = 1;
            /* Bound the kernel's buffering too, so stream_buffer measures
            ** how far behind the subscriber really is. */
            int sndbuf = d->cfg->stream_buffer > INT32_MAX ? INT32_MAX : (int)d->cfg->stream_buffer;
            if (sndbuf < 4096) sndbuf = 4096;
            setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
            struct timeval wt = {d->cfg->idle_timeout, 0};
            bufferevent_set_timeouts(c->bev, NULL, &wt);
            /* Told when a quarter is left, to feed one that fell behind. */
            bufferevent_setwatermark(c->bev, EV_WRITE, d->cfg->stream_buffer / 4, 0);
            evbuffer_drain(in, evbuffer_get_length(in));
        } else {
            c->state = CS_CLOSING;
        }
    } else if (!keep) {
        c->state = CS_CLOSING;
    }
}

/* The connections whose job was answered take their next request. */
static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    sbd *d = arg;
    (void)fd;
    (void)what;
    /* From the start after each: taking requests may free any connection
    ** (an admin request closing streams, a slow subscriber dropped). Each
    ** is taken once, its flag cleared first. */
    for (sbd_conn *c = d->conns; c;) {
        if (!c->resume || c->njobs >= JOBS_PER_CONN) {
            c = c->next;
            continue;
        }
        c->resume = 0;
        if (c->state == CS_HTTP && !c->paused) {
            process_input(c); /* may free c, and others */
            c = d->conns;
        } else {
            c = c->next;
        }
    }
}

void sbd_http_finish(sbd *d, sbd_job *j)
{
    if (j->skip) { /* not applied: nothing to answer, nobody to tell */
        if (j->c) j->c->njobs--;
        return;
    }
    sbd_reply rep = j->rep;
    rep.body = scratch_body(SCRATCH_JOB);
    sbd_api_finish(d, j, &rep);
    sbd_conn *c = j->c;
    if (!c) return; /* gone: the event was applied all the same */
    c->njobs--;
    /* An answer before closed it: applied, answered to no one, as when the
    ** connection drops. (Closing as the client half-closed: answered.) */
    if (c->answered_close || (c->state != CS_HTTP && c->state != CS_CLOSING)) return;
    answer(c, &rep, j->minor, j->keepalive, j->head, j->method, j->method_name, j->path, j->t0,
           SBD_SEQ_UNCOMMITTED);
    if (!c->resume) return;
    /* From the loop, as a read would be: this may run inside a request's
    ** handling (sbd_batch_close). */
    if (!d->resume_ev) {
        d->resume_ev = event_new(d->base, -1, 0, resume_cb, d);
        if (d->resume_ev) event_priority_set(d->resume_ev, 1);
    }
    if (d->resume_ev) event_active(d->resume_ev, EV_TIMEOUT, 1);
}

/* Is the request (as parsed) a HEAD? */
static int is_head(const struct head *hd)
{
    return hd->method && !strcmp(hd->method, "HEAD");
}

/* Is the request at the front of in (its leading empty lines drained) a
** HEAD, whether or not its head is whole or parses? The method comes first:
** an answer refusing it before (or without) its head being read is the
** head alone all the same. */
static int starts_head(struct evbuffer *in)
{
    unsigned char *p = evbuffer_pullup(in, 5);
    return p && !memcmp(p, "HEAD ", 5);
}

/* An Expect: 100-continue request whose body is still to come, refused on
** its head alone (no route, a method its route does not take, credentials
** refused, a query parameter it does not take): answered now, as RFC 9110
** 10.1.1 has it, rather than after a 100 Continue invited a body that
** changes nothing; the connection closes, as the body is not read. 1 if
** so. */
static int refuse_expect(sbd_conn *c, const struct head *hd, uint64_t t0)
{
    if (!hd->expect || c->expect_sent || hd->minor != 1 || !hd->target) return 0;
    /* Whatever it answers goes behind the answers to the connection's events
    ** before it; if one of those closed the connection, nothing more is. */
    if (behind_jobs(c)) {
        chunked_end(c); /* hd may be its head */
        return 1;
    }
    char *path = strdup(hd->target), *q = path ? strchr(path, '?') : NULL;
    if (!path) return 0; /* the request itself will say so */
    if (q) *q++ = 0;
    sbd_req req;
    sbd_reply rep;
    request_of(c, hd, path, q, &req, &rep);
    int refused = sbd_api_refuse_head(c->d, &req, &rep);
    sbd_free_wiped(path);
    if (!refused) return 0;
    int head = is_head(hd);
    size_t before = evbuffer_get_length(c->pending);
    format_response(c->pending, &rep, hd->minor, 0, head);
    close_by_answer(c);
    uint64_t seq = sbd_seq(c->d);
    hold(c, before, 0, seq, head, hd->minor, 0);
    c->d->batch_len++;
    note_request(c->d, rep.route, req.method, rep.status, 0, t0, seq);
    chunked_end(c); /* the last: hd may be its head */
    return 1;
}

/* An Expect: 100-continue request whose body is still to come: invite it,
** once. */
static void send_continue(sbd_conn *c, const struct head *hd)
{
    if (!hd->expect || c->expect_sent || hd->minor != 1) return;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    /* Behind held responses it must wait its turn, and behind the answers
    ** to the connection's events in hand; otherwise send it now. */
    if (behind_jobs(c)) return;
    if (c->in_batch) {
        size_t before = evbuffer_get_length(c->pending);
        evbuffer_add(c->pending, cont, sizeof cont - 1);
        hold(c, before, 0, sbd_seq(c->d), is_head(hd), 1, 1);
    } else
        bufferevent_write(c->bev, cont, sizeof cont - 1);
    c->expect_sent = 1;
}

/* Go on with the chunked body being received on c (its head is in c->ck).
** Returns as take_request() does. */
static int take_chunked(sbd_conn *c, uint64_t t0)
{
    sbd *d = c->d;
    struct chunked *k = &c->ck;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    const char *why = NULL;
    int head = is_head(&k->hd);
    int r = dechunk(c, in, d->cfg->max_body, &why);
    if (r > 1) {
        queue_error(c, r, http_code(r), why, &k->hd, head, t0);
        return 1;
    }
    if (r == 0) {
        /* Decoded, it is within max_body so far; on the wire, chunk
        ** framing may not make it much bigger than a body could be. */
        if (k->wire + evbuffer_get_length(in) >= read_limit(d)) {
            queue_error(c, 413, "HTTP_BODY_TOO_LARGE",
                        "chunked request too large on the wire: its head and chunk framing "
                        "reached max_header + max_body + 64K before its last chunk, its body "
                        "within max_body so far (send it in fewer, larger chunks)",
                        &k->hd, head, t0);
            return 1;
        }
        if (refuse_expect(c, &k->hd, t0)) return 1;
        send_continue(c, &k->hd);
        return 0;
    }
    size_t body_len = evbuffer_get_length(k->body);
    char *body = malloc(body_len + 1);
    if (!body) {
        queue_error(c, sbd_api_status(SB_ENOMEM), "SB_ENOMEM", "out of memory", &k->hd, head, t0);
        return 1;
    }
    evbuffer_remove(k->body, body, body_len);
    body[body_len] = 0;
    c->expect_sent = 0;
    dispatch(c, &k->hd, body, body_len, t0);
    sbd_free_wiped(body);
    chunked_end(c);
    return 1;
}

/* Is the start of a request's head, p[0..n) (n >= 1, past any empty
** lines), no HTTP/1.x whatever follows? Then why, answered at once, rather
** than with a 408 once request_timeout is over: a TLS handshake (https://
** to this port), bytes no method begins with, lines ending in a bare LF.
** NULL when it may still be a request. */
static const char *not_http(const unsigned char *p, size_t n)
{
    if (p[0] == 0x16) return "a TLS handshake: this port speaks plain HTTP (http://, not https://)";
    for (const unsigned char *lf = memchr(p, '\n', n); lf;
         lf = memchr(lf + 1, '\n', n - (size_t)(lf + 1 - p)))
        if (lf == p || lf[-1] != '\r') return "lines of a request must end in CRLF, not a bare LF";
    if (!is_tchar(p[0]) && !(p[0] == '\r' && n == 1))
        return "not an HTTP request: it must begin with a request line (GET /path HTTP/1.1)";
    return NULL;
}

/* Take one request off the input if it is complete. Returns 1 if one was
** handled (or answered with an error), 0 if more input is needed. */
static int take_request(sbd_conn *c)
{
    sbd *d = c->d;
    const sbd_config *cfg = d->cfg;
    struct evbuffer *in = bufferevent_get_input(c->bev);

    /* Whatever this returns 1 for ends the request: the deadline with it. */
    if (c->ck.hbuf) return take_chunked(c, sbd_now_ns());

    /* Empty lines before a request line are ignored (RFC 9112 2.2). */
    for (;;) {
        unsigned char *p = evbuffer_pullup(in, 2);
        if (p && p[0] == '\r' && p[1] == '\n')
            evbuffer_drain(in, 2);
        else
            break;
    }
    size_t avail = evbuffer_get_length(in);
    if (!avail) return 0;
    uint64_t t0 = sbd_now_ns();
    int head = starts_head(in);

    /* The head, or as much of it as has come. */
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    size_t hlen = end.pos < 0 ? avail : (size_t)end.pos + 4;
    if (hlen > cfg->max_header) {
        queue_error(c, 431, "HTTP_HEADERS_TOO_LARGE", "request header exceeds max_header", NULL,
                    head, t0);
        return 1;
    }
    const char *bad = not_http(evbuffer_pullup(in, (ev_ssize_t)hlen), hlen);
    if (bad) {
        queue_error(c, 400, "HTTP_BAD_REQUEST", bad, NULL, head, t0);
        return 1;
    }
    if (end.pos < 0) return 0;
    char *hbuf = malloc(hlen + 1);
    if (!hbuf) {
        queue_error(c, sbd_api_status(SB_ENOMEM), "SB_ENOMEM", "out of memory", NULL, head, t0);
        return 1;
    }
    evbuffer_copyout(in, hbuf, hlen);
    hbuf[hlen] = 0;
    if (memchr(hbuf, 0, hlen)) {
        queue_error(c, 400, "HTTP_BAD_REQUEST", "NUL byte in the request header", NULL, head, t0);
        sbd_free_wiped(hbuf);
        return 1;
    }
    struct head hd;
    const char *why = NULL;
    int st = parse_head(hbuf, &hd, &why);
    head |= is_head(&hd);
    if (st) {
        queue_error(c, st, http_code(st), why, &hd, head, t0);
        sbd_free_wiped(hbuf);
        return 1;
    }

    if (hd.chunked) {
        /* The head is done with: from here on the input holds the body. */
        struct chunked *k = &c->ck;
        if (!k->body && !(k->body = evbuffer_new())) {
            queue_error(c, sbd_api_status(SB_ENOMEM), "SB_ENOMEM", "out of memory", &hd, head, t0);
            sbd_free_wiped(hbuf);
            return 1;
        }
        k->hbuf = hbuf;
        k->hd = hd;
        k->state = CK_SIZE;
        k->left = 0;
        k->wire = hlen;
        evbuffer_drain(in, hlen);
        return take_chunked(c, t0);
    }
    if (hd.has_cl && hd.cl > cfg->max_body) {
        queue_error(c, 413, "HTTP_BODY_TOO_LARGE", "request body exceeds max_body", &hd, head, t0);
        sbd_free_wiped(hbuf);
        return 1;
    }
    size_t body_len = hd.has_cl ? (size_t)hd.cl : 0;
    if (avail - hlen < body_len) {
        if (refuse_expect(c, &hd, t0)) {
            sbd_free_wiped(hbuf);
            return 1;
        }
        send_continue(c, &hd);
        sbd_free_wiped(hbuf);
        return 0;
    }
    char *body = malloc(body_len + 1);
    if (!body) {
        queue_error(c, sbd_api_status(SB_ENOMEM), "SB_ENOMEM", "out of memory", &hd, head, t0);
        sbd_free_wiped(hbuf);
        return 1;
    }
    evbuffer_drain(in, hlen);
    evbuffer_remove(in, body, body_len);
    body[body_len] = 0;
    c->expect_sent = 0;
    dispatch(c, &hd, body, body_len, t0);
    sbd_free_wiped(body);
    sbd_free_wiped(hbuf);
    return 1;
}

/* Has a request begun on c that is not complete yet? */
static int mid_request(sbd_conn *c)
{
    return c->ck.hbuf || evbuffer_get_length(bufferevent_get_input(c->bev));
}

static void process_input(sbd_conn *c)
{
    sbd *d = c->d;
    while (c->state == CS_HTTP && !c->last_taken) {
        if (c->njobs >= JOBS_PER_CONN) {
            /* Taken again once the engine has answered some. */
            c->resume = 1;
            break;
        }
        size_t backlog =
            evbuffer_get_length(bufferevent_get_output(c->bev)) + evbuffer_get_length(c->pending);
        if (backlog > OUTPUT_LIMIT) {
            /* The client is not reading its responses: stop taking requests. */
            bufferevent_disable(c->bev, EV_READ);
            c->paused = 1;
            break;
        }
        if (!take_request(c)) break;
        conn_timer(c, 0, 0);
        /* A big batch: commit and close it now (the rest of the turn's
        ** commit or a sync makes it durable). */
        if (d->batch_len >= BATCH_LIMIT) sbd_flush(d);
    }
    if (c->eof && c->state == CS_HTTP && !c->resume && !c->paused) {
        /* Half-closed, and all it sent is taken: close once it is answered. */
        c->state = CS_CLOSING;
        if (!c->in_batch && !c->njobs && !evbuffer_get_length(bufferevent_get_output(c->bev))) {
            start_linger(c); /* may free c */
            return;
        }
    }
    if (c->state != CS_HTTP && c->state != CS_STREAM) {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        evbuffer_drain(in, evbuffer_get_length(in));
    }
    /* Part of a request is in: it has request_timeout from now (its first
    ** byte, or the end of the request before it) to arrive whole. Not while
    ** reading is paused: then the wait is ours, not the client's. */
    if (c->state == CS_HTTP) {
        if (!c->paused && !c->resume && !c->last_taken && mid_request(c))
            conn_timer(c, d->cfg->request_timeout, 0);
        else
            conn_timer(c, 0, 0);
    }
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    sbd_conn *c = arg;
    (void)fd;
    (void)what;
    c->timer_armed = 0;
    if (c->state == CS_LINGER) {
        conn_free(c);
        return;
    }
    struct evbuffer *in = bufferevent_get_input(c->bev);
    if (c->state != CS_HTTP || c->paused || c->resume || c->last_taken || !mid_request(c)) return;
    /* Many slow clients at once (a flood of them) write a line a second. */
    static sbd_log_limit limit;
    char more[48];
    if (sbd_log_limit_take(&limit, 0, more, sizeof more))
        sbd_log(SB_LOG_INFO, "request timed out: closing", "conn=%llu peer=%s received=%zu%s",
                (unsigned long long)c->id, c->peer,
                c->ck.hbuf ? c->ck.wire + evbuffer_get_length(in) : evbuffer_get_length(in), more);
    char msg[128];
    snprintf(msg, sizeof msg, "the request was not complete within request_timeout (%u s)",
             c->d->cfg->request_timeout);
    /* Was it a HEAD? (A chunked request's head is in c->ck, off the input.) */
    int head = c->ck.hbuf ? is_head(&c->ck.hd) : starts_head(in);
    /* Sent behind the responses held on c, when the loop flushes the batch. */
    queue_error(c, 408, "HTTP_REQUEST_TIMEOUT", msg, c->ck.hbuf ? &c->ck.hd : NULL, head,
                sbd_now_ns());
    evbuffer_drain(in, evbuffer_get_length(in));
}

/* ------------------------------------------------------------------------ */
/* Connection life cycle. */

static void conn_free(sbd_conn *c)
{
    sbd *d = c->d;
    if (c->njobs) jobs_forget(d, c);
    batch_leave(c);
    if (c->sub) sbd_stream_unsubscribe(d, c->sub);
    c->sub = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else if (d->conns == c)
        d->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    if (c->counted)
        d->nconns--;
    else
        d->nrejecting--;
    if (c->bev) bufferevent_free(c->bev);
    if (c->pending) evbuffer_free(c->pending);
    free(c->held);
    if (c->timer) event_free(c->timer);
    sbd_free_wiped(c->ck.hbuf);
    if (c->ck.body) evbuffer_free(c->ck.body);
    sodium_memzero(&c->auth, sizeof c->auth);
    sbd_log(SB_LOG_DEBUG, "connection closed", "conn=%llu peer=%s", (unsigned long long)c->id,
            c->peer);
    free(c);
    sbd_conn_gone(d);
}

static void start_linger(sbd_conn *c)
{
    c->state = CS_LINGER;
    if (shutdown(c->fd, SHUT_WR) != 0) {
        conn_free(c);
        return;
    }
    struct evbuffer *in = bufferevent_get_input(c->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    struct timeval t = {LINGER_SECONDS, 0};
    bufferevent_set_timeouts(c->bev, &t, NULL);
    bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
    bufferevent_enable(c->bev, EV_READ);
    /* The read timeout restarts with every byte; lingering must end anyway. */
    conn_timer(c, LINGER_SECONDS, 1);
}

static int conn_idle(sbd_conn *c)
{
    return c->state == CS_HTTP && !c->in_batch && !c->njobs && !mid_request(c) &&
           !evbuffer_get_length(bufferevent_get_output(c->bev)) && !kernel_has_data(c->fd);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    sbd_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    switch (c->state) {
    case CS_HTTP:
        process_input(c);
        break;
    case CS_LINGER:
        c->lingered += evbuffer_get_length(in);
        evbuffer_drain(in, evbuffer_get_length(in));
        if (c->lingered > LINGER_BYTES) conn_free(c);
        break;
    default: /* streams and closing connections ignore what the client sends */
        evbuffer_drain(in, evbuffer_get_length(in));
        break;
    }
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    sbd_conn *c = arg;
    if (c->state == CS_STREAM && c->sub && sbd_stream_drained(c->d, c->sub)) return; /* freed */
    if (evbuffer_get_length(bufferevent_get_output(bev))) return;
    if (c->state == CS_CLOSING && !c->in_batch && (!c->njobs || c->answered_close)) {
        start_linger(c);
        return;
    }
    if (c->state == CS_HTTP) {
        if (c->paused) {
            c->paused = 0;
            bufferevent_enable(bev, EV_READ);
            process_input(c);
            return;
        }
        if (c->d->draining && conn_idle(c)) conn_free(c);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    sbd_conn *c = arg;
    (void)bev;
    if (what & BEV_EVENT_EOF) {
        /* A client may half-close after its last request: answer it first,
        ** and take the requests still waiting in its input (while its
        ** events in hand are at JOBS_PER_CONN) once it may. */
        if (c->state == CS_HTTP && c->resume) {
            c->eof = 1;
            bufferevent_disable(c->bev, EV_READ);
            return;
        }
        if ((c->state == CS_HTTP || c->state == CS_CLOSING) &&
            (c->in_batch || c->njobs || evbuffer_get_length(bufferevent_get_output(c->bev)))) {
            c->state = CS_CLOSING;
            bufferevent_disable(c->bev, EV_READ);
            return;
        }
        conn_free(c);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        if (c->state == CS_STREAM && c->sub) { /* the write timeout: a stalled reader */
            sbd_stream_stalled(c->d, c->sub);
            return;
        }
        sbd_log(SB_LOG_DEBUG, "connection timed out", "conn=%llu peer=%s state=%d",
                (unsigned long long)c->id, c->peer, c->state);
    } else if (what & BEV_EVENT_ERROR) {
        sbd_log(SB_LOG_DEBUG, "connection error", "conn=%llu peer=%s error=%s",
                (unsigned long long)c->id, c->peer,
                sbd_q(evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR())));
    }
    conn_free(c);
}

static void describe_peer(const struct sockaddr *sa, char *out, size_t n)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
        evutil_inet_ntop(AF_INET, &s->sin_addr, host, sizeof host);
        port = ntohs(s->sin_port);
        snprintf(out, n, "%s:%d", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
        evutil_inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof host);
        port = ntohs(s->sin6_port);
        snprintf(out, n, "[%s]:%d", host, port);
    } else {
        snprintf(out, n, "unix");
    }
}

/* A connection past max_connections, or past max_connections_per_peer
** (per_peer): counted, and logged one line a second (a flood of them would
** flood the log), which says how many it stands for. */
static void refused(sbd *d, const struct sockaddr *sa, const char *answer, int per_peer)
{
    static sbd_log_limit limit, peer_limit;
    char more[48], peer[64];
    d->m.conns_rejected++;
    if (per_peer) d->m.conns_rejected_per_peer++;
    if (!sbd_log_limit_take(per_peer ? &peer_limit : &limit, 0, more, sizeof more)) return;
    describe_peer(sa, peer, sizeof peer);
    if (per_peer)
        sbd_log(SB_LOG_WARN, "connection refused: too many connections from one address",
                "peer=%s max_connections_per_peer=%u answer=%s%s", peer,
                d->cfg->max_connections_per_peer, answer, more);
    else
        sbd_log(SB_LOG_WARN, "connection refused: too many connections",
                "peer=%s max_connections=%u answer=%s%s", peer, d->cfg->max_connections, answer,
                more);
}

/* The 503 a connection past the limits is answered with, into out. */
static void refusal(struct evbuffer *out, int per_peer)
{
    sbd_reply rep;
    memset(&rep, 0, sizeof rep);
    rep.body = scratch_body(SCRATCH_REQUEST);
    sbd_api_error(&rep, 503, "HTTP_TOO_MANY_CONNECTIONS",
                  per_peer ? "too many connections from this address; try again later"
                           : "too many connections; try again later",
                  NULL);
    snprintf(rep.headers, sizeof rep.headers, "Retry-After: 1\r\n");
    format_response(out, &rep, 1, 0, 0);
}

/* Past MAX_REJECTING connections being refused (each waits up to
** LINGER_SECONDS for its client to close, so the client reads the 503
** rather than a reset), a burst of them is refused without a connection
** of its own: the 503 written at once (a fresh socket's buffer takes it
** whole), what the client sent so far read off (unread, the close would
** be a reset), and the socket closed. A request still arriving then may
** meet a reset instead. */
static void refuse_at_once(evutil_socket_t fd, int per_peer)
{
    struct evbuffer *out = evbuffer_new();
    if (out) {
        refusal(out, per_peer);
        evbuffer_write(out, fd);
        evbuffer_free(out);
    }
    char sink[4096];
    for (int i = 0; i < 16 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
        ;
    shutdown(fd, SHUT_WR);
    evutil_closesocket(fd);
}

/* The peer's address as a key: its family, and its bytes. An IPv6 peer
** counts by its /64 (one client is given a /64 and may use any address in
** it); an IPv4 address mapped into IPv6 counts as the IPv4 one. */
static uint8_t peer_key(const struct sockaddr *sa, uint8_t addr[16])
{
    memset(addr, 0, 16);
    if (sa->sa_family == AF_INET) {
        memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 4;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            memcpy(addr, a->s6_addr + 12, 4);
            return 4;
        }
        memcpy(addr, a->s6_addr, 8);
        return 6;
    }
    return 0;
}

/* Connections open from the address (those counted against the limits).
** A walk of them all: at most max_connections, and only at accept. */
static unsigned peer_conns(const sbd *d, uint8_t fam, const uint8_t addr[16])
{
    unsigned n = 0;
    for (const sbd_conn *c = d->conns; c; c = c->next)
        n += c->counted && c->pfam == fam && !memcmp(c->paddr, addr, 16);
    return n;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    sbd *d = arg;
    (void)l;
    (void)socklen;
    uint8_t addr[16], fam = peer_key(sa, addr);
    int reject = d->nconns >= d->cfg->max_connections;
    /* One address may not take them all (a client, or an attacker, holding
    ** connections open would keep every other out). */
    int per_peer = !reject && fam && d->cfg->max_connections_per_peer &&
                   peer_conns(d, fam, addr) >= d->cfg->max_connections_per_peer;
    reject |= per_peer;
    if (reject && d->nrejecting >= MAX_REJECTING) {
        refused(d, sa, "503", per_peer);
        refuse_at_once(fd, per_peer);
        return;
    }
    sbd_conn *c = calloc(1, sizeof *c);
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->d = d;
    c->fd = fd;
    c->id = ++d->next_conn_id;
    describe_peer(sa, c->peer, sizeof c->peer);
    c->pfam = fam;
    memcpy(c->paddr, addr, sizeof c->paddr);
    c->bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->pending = evbuffer_new();
    if (!c->bev || !c->pending || !held_room(c)) {
        if (c->bev)
            bufferevent_free(c->bev);
        else
            evutil_closesocket(fd);
        if (c->pending) evbuffer_free(c->pending);
        free(c->held);
        free(c);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->next = d->conns;
    if (d->conns) d->conns->prev = c;
    d->conns = c;
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    struct timeval idle = {d->cfg->idle_timeout, 0};
    bufferevent_set_timeouts(c->bev, &idle, &idle);

    if (reject) {
        d->nrejecting++;
        refused(d, sa, "503", per_peer);
        refusal(bufferevent_get_output(c->bev), per_peer);
        c->state = CS_CLOSING;
        bufferevent_enable(c->bev, EV_WRITE);
        bufferevent_enable(c->bev, EV_READ);
        return;
    }
    c->counted = 1;
    d->nconns++;
    d->m.conns_accepted++;
    bufferevent_setwatermark(c->bev, EV_READ, 0, read_limit(d));
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    sbd_log(SB_LOG_DEBUG, "connection accepted", "conn=%llu peer=%s", (unsigned long long)c->id,
            c->peer);
}

#define ACCEPT_PAUSE_MS 100

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sbd *d = arg;
    if (d->listener) evconnlistener_enable(d->listener);
}

/* accept() failed. Out of descriptors or memory (the process's or the
** system's), the pending connection stays in the backlog and the listener
** would retry at once, spinning the loop and the log: it pauses for
** ACCEPT_PAUSE_MS instead (connections closing meanwhile free descriptors),
** and one line is logged per pause with the failures since the last. */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    sbd *d = arg;
    int err = EVUTIL_SOCKET_ERROR();
    d->accept_failed++;
    int scarce = err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
    if (scarce && d->accept_pause && !evtimer_pending(d->accept_pause, NULL)) {
        evconnlistener_disable(l);
        struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
        evtimer_add(d->accept_pause, &tv);
    } else if (scarce) {
        return; /* paused already: logged */
    }
    sbd_log(SB_LOG_WARN, "accept failed", "error=%s failures=%llu paused_ms=%d",
            sbd_q(evutil_socket_error_to_string(err)), (unsigned long long)d->accept_failed,
            scarce ? ACCEPT_PAUSE_MS : 0);
    d->accept_failed = 0;
}

static int is_v6_any(const struct sockaddr_storage *ss)
{
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    return ss->ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
}

/* A socket bound to ss, or -1 (errno set). IPv6's wildcard takes IPv4 too,
** whatever the system's default (net.ipv6.bindv6only): "all interfaces"
** means both. */
static int bind_to(const struct sockaddr_storage *ss, int sslen)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int on = 1, off = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        (is_v6_any(ss) && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) != 0) ||
        bind(fd, (const struct sockaddr *)ss, (socklen_t)sslen) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* A listening socket on ss. */
static struct evconnlistener *listen_on(sbd *d, const struct sockaddr_storage *ss, int sslen)
{
    int fd = bind_to(ss, sslen);
    if (fd < 0) return NULL;
    struct evconnlistener *l =
        evconnlistener_new(d->base, accept_cb, d, LEV_OPT_CLOSE_ON_FREE, 1024, fd);
    if (!l) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return l;
}

/* The listen address, parsed into *ss; -1 after saying why it is not one. */
static int listen_addr(sbd *d, struct sockaddr_storage *ss, int *sslen)
{
    memset(ss, 0, sizeof *ss);
    const char *why = sbd_listen_parse(d->cfg->listen, ss, sslen);
    if (!why) return 0;
    fprintf(stderr, "switchboard: %slisten: '%s': %s\n", d->cfg->listen_origin, d->cfg->listen,
            why);
    return -1;
}

/* IPv6's wildcard where IPv6 is there but not usable: IPv4's, same port. */
static void v4_any(struct sockaddr_storage *ss, int *sslen)
{
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    uint16_t port = ((struct sockaddr_in6 *)ss)->sin6_port;
    memset(ss, 0, sizeof *ss);
    in->sin_family = AF_INET;
    in->sin_port = port;
    in->sin_addr.s_addr = htonl(INADDR_ANY);
    *sslen = (int)sizeof *in;
}

static int cannot_listen(sbd *d)
{
    fprintf(stderr, "switchboard: %scannot listen on %s: %s\n", d->cfg->listen_origin,
            d->cfg->listen, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    return -1;
}

int sbd_http_can_listen(sbd *d)
{
    struct sockaddr_storage ss;
    int sslen = 0;
    if (listen_addr(d, &ss, &sslen)) return -1;
    int fd = bind_to(&ss, sslen);
    if (fd < 0 && is_v6_any(&ss)) {
        v4_any(&ss, &sslen);
        fd = bind_to(&ss, sslen);
    }
    if (fd < 0) return cannot_listen(d);
    close(fd);
    return 0;
}

int sbd_http_listen(sbd *d)
{
    struct sockaddr_storage ss;
    int sslen = 0;
    if (listen_addr(d, &ss, &sslen)) return -1;
    d->listener = listen_on(d, &ss, sslen);
    if (!d->listener && is_v6_any(&ss)) {
        v4_any(&ss, &sslen);
        d->listener = listen_on(d, &ss, sslen);
    }
    if (!d->listener) return cannot_listen(d);
    evconnlistener_set_error_cb(d->listener, accept_error_cb);
    d->accept_pause = evtimer_new(d->base, accept_resume_cb, d);
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    if (getsockname(evconnlistener_get_fd(d->listener), (struct sockaddr *)&bound, &bl) == 0)
        describe_peer((struct sockaddr *)&bound, d->listen_addr, sizeof d->listen_addr);
    else
        snprintf(d->listen_addr, sizeof d->listen_addr, "%s", d->cfg->listen);
    return 0;
}

/* Send the first `bytes` of c->pending. When nothing is queued before them
** they go straight to the socket (one writev, no write event to arm and
** disarm); what the socket does not take goes through the bufferevent. Not
** for connections whose write callback has work to do once the output
** drains (closing, paused, draining): theirs stays the bufferevent's. */
static void send_pending(sbd_conn *c, size_t bytes)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (c->state == CS_HTTP && !c->paused && !c->d->draining && !evbuffer_get_length(out)) {
        int n = evbuffer_write_atmost(c->pending, c->fd, (ev_ssize_t)bytes);
        if (n > 0) bytes -= (size_t)n < bytes ? (size_t)n : bytes;
    }
    if (bytes) evbuffer_remove_buffer(c->pending, out, bytes);
}

/* Storage failed (rc) for a change about to be acknowledged: rep, made
** empty, is the error that says so. For want of room, 503 SB_EFULL as a
** write refused so is answered, with the why; else 500 SB_ESTORE. */
static int storage_status(int rc)
{
    return rc == SB_EFULL ? sbd_api_status(rc) : 500;
}

static void storage_reply(sbd_reply *rep, int rc, const char *msg)
{
    memset(rep, 0, sizeof *rep);
    rep->body = scratch_body(SCRATCH_FAILED);
    char full[320];
    if (rc == SB_EFULL) {
        snprintf(full, sizeof full, "%s: %s", msg, sb_strerror(rc));
        sbd_api_error(rep, storage_status(rc), sb_code_name(rc), full, NULL);
    } else {
        sbd_api_error(rep, 500, "SB_ESTORE", msg, NULL);
    }
}

#define SYNC_FAILED "the change was committed but could not be synced to disk"

#define COMMIT_FAILED                                                                              \
    "storage failed while this change was being committed: it may not have been made; read "       \
    "the state back before trying again"

/* What c holds from segment `from` on is not stored or not durable (rc):
** none of it stands. The first is answered with the error (msg), which
** closes the connection; the rest go, and its events in hand are not
** applied. The segments before `from` stay held and go out first, as their
** sync has them. The error is final: a failed sync of the batch it is
** tagged with does not replace it (not mutating).
**
** For a failed commit, `from` is the batch's first answer on c: refusals
** and requests that changed nothing fail too, as each may have read what
** an event before it in the batch (of any connection) wrote, which was
** never stored; the answers of batches committed before it were dropped
** with the rest, and their changes stood unanswered. */
static void fail_from(sbd_conn *c, int from, int rc, const char *msg)
{
    size_t keep = 0;
    for (int k = 0; k < from; k++)
        keep += c->held[k].bytes;
    struct held *h = &c->held[from];
    size_t total = evbuffer_get_length(c->pending);
    struct evbuffer *out = scratch_body(SCRATCH_HELD);
    evbuffer_remove_buffer(c->pending, out, keep);
    evbuffer_drain(c->pending, total - keep);
    sbd_reply rep;
    storage_reply(&rep, rc, msg);
    format_response(out, &rep, h->minor, 0, h->head);
    h->bytes = evbuffer_get_length(out) - keep;
    h->count = 1;
    h->keep = 0;
    h->mutating = 0;
    c->nheld = from + 1;
    evbuffer_add_buffer(c->pending, out);
    if (c->state == CS_STREAM && c->sub) {
        sbd_stream_unsubscribe(c->d, c->sub);
        c->sub = NULL;
    }
    close_by_answer(c);
}

void sbd_http_settle(sbd *d, uint64_t seq, int rc)
{
    for (sbd_conn *c = d->batch, *next; c; c = next) {
        next = c->bnext;
        int from = -1;
        for (int i = 0; i < c->nheld; i++)
            if (c->held[i].seq == SBD_SEQ_UNCOMMITTED) {
                c->held[i].seq = seq;
                if (from < 0) from = i;
            }
        if (from >= 0 && rc) fail_from(c, from, rc, COMMIT_FAILED);
    }
    /* The metrics count what the client was answered: the error, for every
    ** request of a batch whose commit failed (fail_from; those after the
    ** first on a connection had no answer, and count as it). */
    for (size_t i = 0; i < d->npreq; i++)
        if (d->preq[i].seq == SBD_SEQ_UNCOMMITTED) {
            d->preq[i].seq = seq;
            if (rc) d->preq[i].status = storage_status(rc);
        }
}

/* The sync of the first n segments held on c failed (rc): each answer to a
** change among them becomes the error, in its place; the others (reads,
** refusals: they changed nothing) go as they are. Returns the length the n
** segments now have at the front of c->pending. */
static size_t fail_changes(sbd_conn *c, int n, int rc)
{
    struct evbuffer *out = scratch_body(SCRATCH_HELD);
    for (int i = 0; i < n; i++) {
        const struct held *h = &c->held[i];
        if (!h->mutating) {
            evbuffer_remove_buffer(c->pending, out, h->bytes);
            continue;
        }
        evbuffer_drain(c->pending, h->bytes);
        sbd_reply rep;
        storage_reply(&rep, rc, SYNC_FAILED);
        format_response(out, &rep, h->minor, h->keep, h->head);
    }
    size_t bytes = evbuffer_get_length(out);
    evbuffer_prepend_buffer(c->pending, out);
    return bytes;
}

void sbd_http_release(sbd *d, uint64_t upto, int sync_rc)
{
    /* The metrics (account_requests, after this) count what the client was
    ** answered: the error, for a change whose sync failed. */
    for (size_t i = 0; sync_rc && i < d->npreq && d->preq[i].seq <= upto; i++)
        if (d->preq[i].mutating) d->preq[i].status = storage_status(sync_rc);
    sbd_conn *c = d->batch;
    while (c) {
        sbd_conn *next = c->bnext;
        int n = 0, failed = 0, merged = 0;
        size_t bytes = 0;
        while (n < c->nheld && c->held[n].seq <= upto) {
            const struct held *h = &c->held[n++];
            bytes += h->bytes;
            failed |= sync_rc && h->mutating;
            merged |= sync_rc && h->mutating && h->count > 1;
        }
        /* The requests after those the sync covered may have been applied
        ** already (read while it ran), their answers held behind: so each
        ** change the sync covered is answered with the error in its place
        ** and the connection goes on, every later request answered as its
        ** own sync has it. (Closing it here, as was done, left those
        ** changes made and unanswered.) Answers merged for want of memory
        ** cannot be told apart: one error for all, and the connection
        ** closes. */
        if (failed && merged) {
            fail_from(c, 0, sync_rc, SYNC_FAILED);
            batch_leave(c);
            send_pending(c, evbuffer_get_length(c->pending));
        } else if (n) {
            if (failed) bytes = fail_changes(c, n, sync_rc);
            if (n == c->nheld) {
                batch_leave(c);
                send_pending(c, evbuffer_get_length(c->pending));
            } else {
                memmove(c->held, c->held + n, (size_t)(c->nheld - n) * sizeof c->held[0]);
                c->nheld -= n;
                send_pending(c, bytes);
            }
        }
        c = next;
    }
}

void sbd_http_drain(sbd *d)
{
    if (d->listener) {
        evconnlistener_free(d->listener);
        d->listener = NULL;
    }
    if (d->accept_pause) {
        event_free(d->accept_pause);
        d->accept_pause = NULL;
    }
    /* Streams stay open until the requests still in flight are answered:
    ** the actions those cause go out on them (sbd_http_end_streams). */
    sbd_conn *c = d->conns;
    while (c) {
        sbd_conn *next = c->next;
        if (conn_idle(c)) conn_free(c);
        c = next;
    }
}

int sbd_http_only_streams(const sbd *d)
{
    for (const sbd_conn *c = d->conns; c; c = c->next)
        if (c->state != CS_STREAM && c->state != CS_LINGER) return 0;
    return 1;
}

void sbd_conn_end_stream(sbd_conn *c)
{
    if (c->state != CS_STREAM) return;
    /* What it holds goes out first (write_cb), then the close; a response
    ** still held for its sync too. */
    c->state = CS_CLOSING;
    bufferevent_disable(c->bev, EV_READ);
    if (!c->in_batch && !evbuffer_get_length(bufferevent_get_output(c->bev))) start_linger(c);
}

void sbd_http_end_streams(sbd *d)
{
    sbd_conn *c = d->conns;
    while (c) {
        sbd_conn *next = c->next;
        sbd_conn_end_stream(c); /* may free c */
        c = next;
    }
}

unsigned sbd_http_unsent(const sbd *d, size_t *bytes)
{
    unsigned n = 0;
    *bytes = 0;
    for (const sbd_conn *c = d->conns; c; c = c->next) {
        if (!c->streamed) continue;
        /* What waits in its buffer, and in the kernel's for the peer to read. */
        size_t b = evbuffer_get_length(bufferevent_get_output(c->bev));
        int queued = 0;
        if (ioctl(c->fd, TIOCOUTQ, &queued) == 0 && queued > 0) b += (size_t)queued;
        if (b) n++, *bytes += b;
    }
    return n;
}

void sbd_http_close_all(sbd *d)
{
    while (d->conns)
        conn_free(d->conns);
}
