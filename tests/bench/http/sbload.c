/*
** sbload.c — the call-cycle load generator behind tests/bench/http.sh.
**
** Drives full call cycles — offer, then "answered" for the agent the offer's
** ring names, then hangup — over keep-alive connections, against either the
** switchboard daemon (HTTP/JSON) or Redis (RESP, one EVALSHA per event).
** Each connection carries `--depth` independent cycles (1: one request in
** flight at a time; more: HTTP/1.1 or RESP pipelining, answers in order).
** Every call id is unique (prefix, connection, slot, counter).
**
** Two ways to load:
**   closed loop (no --rate): every slot sends its next request as soon as the
**     previous answer is in; measures the most the server gives.
**   fixed rate (--rate R requests/s): every slot follows its own schedule,
**     spaced so the slots together send R requests/s; a late answer delays the
**     next send but not the schedule, and latency is taken from the scheduled
**     send time (what wrk2 does; no coordinated omission).
**
** Only answers completed after --warmup and before --duration count. After
** the duration no new call is offered; cycles in flight are finished (so
** every agent is free for the next run) within --drain seconds.
**
** usage:
**   sbload http  --port P --auth BASE64 [--queue Q] [common]
**   sbload redis --port P [--password PW] --sha OFFER,ANSWERED,HANGUP [--queue Q] [common]
**   sbload freeport              print a free loopback TCP port
**   sbload provision --port P --token-file F [--agents 50] [--policy longest-idle]
**                                account "bench" with an API key, agents a1..aN and
**                                queue Q over them; prints the BASE64 for --auth
**   sbload metrics --port P --token-file F     print the daemon's /metrics
** common: [--conns N] [--depth K] [--duration S] [--warmup S] [--rate R]
**         [--prefix STR] [--label STR] [--drain S]
**
** Output: a human line, then a machine line
**   RESULT label=.. requests=.. rps=.. cps=.. p50_us=.. p90_us=.. p99_us=..
**          p999_us=.. max_us=.. errors=.. all=.. gen_cpu=.. gen_wall=..
** (all: answers over the whole run, warm-up and drain included; gen_cpu: this
** generator's CPU seconds; gen_wall: its seconds from first send to last answer)
** Exit status 1 on any error, at the first one (a failed request, an offer
** that did not ring, a connection lost, drain not finished).
**
** Why not Debian's wrk with a Lua script: wrk keeps one Lua state per thread
** and response() does not say which connection answered, so a per-connection
** offer/answered/hangup state machine needs as many threads as connections
** (-t 32 -c 32 on a 2-core box). Measured side by side on the same daemon, wrk
** spent ~38 µs of CPU per request, this generator ~10 µs: on two cores every
** microsecond the generator burns is taken from the server it measures.
**
** Plain C, POSIX + Linux epoll/timerfd; no dependencies.
*/
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

enum { PROTO_HTTP, PROTO_REDIS };
enum { STEP_OFFER, STEP_ANSWER, STEP_HANGUP };

#define HIST_US 1000000 /* 1 µs buckets up to 1 s; beyond counts as 1 s */
#define MAX_DEPTH 64

typedef struct {
    int step;         /* the next (or in-flight) request of this slot's cycle */
    int busy;         /* a request is in flight */
    uint64_t n;       /* calls started by this slot */
    uint64_t sched;   /* rate mode: when the next request is due */
    uint64_t t_send;  /* when the in-flight request was sent */
    uint64_t t_sched; /* its scheduled time (rate mode) */
    char call[64];
    char agent[64];
} slot;

typedef struct {
    int fd;
    int idx;
    slot slots[MAX_DEPTH];
    int fifo[MAX_DEPTH]; /* slots with a request in flight, in send order */
    int fhead, fcount;
    char *in;
    size_t inlen, incap;
    char *out;
    size_t outlen, outoff, outcap;
    int want_out;
} conn;

static struct {
    int proto;
    int port;
    const char *auth;     /* HTTP: base64 of account:key */
    const char *password; /* Redis */
    char sha[3][48];      /* Redis: offer, answered, hangup */
    const char *queue;
    const char *prefix;
    const char *label;
    int conns, depth;
    double duration, warmup, rate, drain;
} opt = {.queue = "q",
         .prefix = "c",
         .label = "run",
         .conns = 32,
         .depth = 1,
         .duration = 10,
         .warmup = 1,
         .drain = 5};

static uint32_t *hist; /* latency histogram (µs), from scheduled or send time */
static uint64_t hist_n, hist_over;
static uint64_t ok_requests, ok_cycles, errors, all_requests;
static uint64_t t_start, t_warm, t_end;
static int epfd;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "sbload: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(2);
}

static void error_note(conn *c, const char *what, const char *body, size_t len)
{
    errors++;
    fprintf(stderr, "sbload: conn %d: %s failed: %.*s\n", c->idx, what,
            (int)(len > 400 ? 400 : len), body ? body : "");
}

/* ------------------------------------------------------------------------ */
/* Buffers. */

static void grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    char *p = realloc(*buf, n);
    if (!p) die("%s", "out of memory");
    *buf = p;
    *cap = n;
}

static void out_add(conn *c, const char *s, size_t n)
{
    grow(&c->out, &c->outcap, c->outlen + n);
    memcpy(c->out + c->outlen, s, n);
    c->outlen += n;
}

static void out_str(conn *c, const char *s)
{
    out_add(c, s, strlen(s));
}

/* A RESP bulk string. */
static void out_bulk(conn *c, const char *s)
{
    char h[32];
    size_t n = strlen(s);
    int k = snprintf(h, sizeof h, "$%zu\r\n", n);
    out_add(c, h, (size_t)k);
    out_add(c, s, n);
    out_add(c, "\r\n", 2);
}

/* ------------------------------------------------------------------------ */
/* Requests. */

static void http_post(conn *c, const char *path, const char *body)
{
    char h[512];
    size_t bl = strlen(body);
    int k = snprintf(h, sizeof h,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     path, opt.auth, bl);
    out_add(c, h, (size_t)k);
    out_add(c, body, bl);
}

static void build_request(conn *c, slot *s)
{
    char path[160], body[256], key[96], idle[96];
    if (s->step == STEP_OFFER) {
        s->n++;
        snprintf(s->call, sizeof s->call, "%s-%d-%d-%llu", opt.prefix, c->idx, (int)(s - c->slots),
                 (unsigned long long)s->n);
        s->agent[0] = 0;
    }
    if (opt.proto == PROTO_HTTP) {
        switch (s->step) {
        case STEP_OFFER:
            snprintf(body, sizeof body,
                     "{\"call\":\"%s\",\"queue\":\"%s\",\"caller\":\"+4930123456\"}", s->call,
                     opt.queue);
            http_post(c, "/v1/calls", body);
            break;
        case STEP_ANSWER:
            snprintf(path, sizeof path, "/v1/calls/%s/ring_result", s->call);
            snprintf(body, sizeof body, "{\"agent\":\"%s\",\"outcome\":\"answered\"}", s->agent);
            http_post(c, path, body);
            break;
        default:
            snprintf(path, sizeof path, "/v1/calls/%s/hangup", s->call);
            http_post(c, path, "");
        }
        return;
    }
    snprintf(key, sizeof key, "call:%s", s->call);
    snprintf(idle, sizeof idle, "idle:%s", opt.queue);
    switch (s->step) {
    case STEP_OFFER: /* EVALSHA offer 2 idle:Q call:ID ID Q CALLER */
        out_str(c, "*8\r\n$7\r\nEVALSHA\r\n");
        out_bulk(c, opt.sha[0]);
        out_bulk(c, "2");
        out_bulk(c, idle);
        out_bulk(c, key);
        out_bulk(c, s->call);
        out_bulk(c, opt.queue);
        out_bulk(c, "+4930123456");
        break;
    case STEP_ANSWER: /* EVALSHA answered 1 call:ID AGENT */
        out_str(c, "*5\r\n$7\r\nEVALSHA\r\n");
        out_bulk(c, opt.sha[1]);
        out_bulk(c, "1");
        out_bulk(c, key);
        out_bulk(c, s->agent);
        break;
    default: /* EVALSHA hangup 2 call:ID idle:Q */
        out_str(c, "*5\r\n$7\r\nEVALSHA\r\n");
        out_bulk(c, opt.sha[2]);
        out_bulk(c, "2");
        out_bulk(c, key);
        out_bulk(c, idle);
    }
}

/* ------------------------------------------------------------------------ */
/* Answers. */

static void record(uint64_t from, uint64_t done)
{
    uint64_t us = (done - from) / 1000;
    if (us >= HIST_US) {
        us = HIST_US - 1;
        hist_over++;
    }
    hist[us]++;
    hist_n++;
}

/* One answer for slot s: ok says whether it was the expected success; for an
** offer, agent is the agent rung (NUL-terminated copy made here). */
static void complete(conn *c, slot *s, int ok, const char *agent, size_t alen, const char *raw,
                     size_t rawlen)
{
    uint64_t t = now_ns();
    s->busy = 0;
    all_requests++;
    if (!ok) {
        /* Stop at the first failure: a call left ringing or waiting would
        ** hold an agent and skew everything after it. */
        static const char *names[] = {"offer", "answered", "hangup"};
        error_note(c, names[s->step], raw, rawlen);
        if (s->step == STEP_OFFER)
            fprintf(stderr, "sbload: an offer that does not ring: more connections x depth than "
                            "free agents, or agents left busy by an earlier run?\n");
        exit(1);
    } else {
        uint64_t from = opt.rate > 0 ? s->t_sched : s->t_send;
        if (s->t_sched >= t_warm && t <= t_end) {
            ok_requests++;
            if (s->step == STEP_HANGUP) ok_cycles++;
            record(from, t);
        }
        if (s->step == STEP_OFFER) {
            if (alen >= sizeof s->agent) alen = sizeof s->agent - 1;
            memcpy(s->agent, agent, alen);
            s->agent[alen] = 0;
        }
        s->step = (s->step + 1) % 3;
    }
    if (opt.rate > 0) {
        double interval = (double)opt.conns * opt.depth / opt.rate * 1e9;
        s->sched += (uint64_t)interval;
    }
}

static const char *find(const char *h, size_t n, const char *needle)
{
    return memmem(h, n, needle, strlen(needle));
}

/* Parse as many whole HTTP responses as the input holds. */
static int parse_http(conn *c)
{
    size_t off = 0;
    while (c->fcount) {
        char *p = c->in + off;
        size_t avail = c->inlen - off;
        const char *eoh = avail >= 4 ? memmem(p, avail, "\r\n\r\n", 4) : NULL;
        if (!eoh) break;
        size_t hlen = (size_t)(eoh - p) + 4;
        if (avail < 12 || memcmp(p, "HTTP/1.", 7) != 0) return -1;
        int status = atoi(p + 9);
        size_t cl = 0;
        const char *q = memchr(p, '\n', hlen);
        while (q && ++q < eoh) {
            size_t ll = (size_t)((const char *)memchr(q, '\n', (size_t)(eoh + 2 - q)) - q);
            if (ll > 15 && strncasecmp(q, "content-length:", 15) == 0)
                cl = strtoul(q + 15, NULL, 10);
            else if (ll > 11 && strncasecmp(q, "connection:", 11) == 0 && memmem(q, ll, "close", 5))
                return -1; /* the server is closing: keep-alive lost */
            q += ll;
        }
        if (avail < hlen + cl) break;
        const char *body = p + hlen;
        slot *s = &c->slots[c->fifo[c->fhead]];
        c->fhead = (c->fhead + 1) % MAX_DEPTH;
        c->fcount--;
        int ok = 0;
        const char *agent = NULL;
        size_t alen = 0;
        switch (s->step) {
        case STEP_OFFER: {
            const char *r = status == 201 ? find(body, cl, "\"type\":\"ring\"") : NULL;
            const char *a = r ? find(r, cl - (size_t)(r - body), "\"agent\":\"") : NULL;
            if (a) {
                agent = a + 9;
                const char *e = memchr(agent, '"', cl - (size_t)(agent - body));
                if (e) {
                    alen = (size_t)(e - agent);
                    ok = 1;
                }
            }
            break;
        }
        case STEP_ANSWER:
            ok = status == 200 && find(body, cl, "\"type\":\"connect\"");
            break;
        default:
            ok = status == 200 && find(body, cl, "\"type\":\"end\"");
        }
        complete(c, s, ok, agent, alen, p, hlen + cl);
        off += hlen + cl;
    }
    if (off) {
        memmove(c->in, c->in + off, c->inlen - off);
        c->inlen -= off;
    }
    return 0;
}

/* One RESP reply at p (no arrays: the scripts never return one). Returns its
** length, 0 if incomplete, -1 if malformed. */
static long resp_reply(const char *p, size_t n, int *type, const char **val, size_t *vlen)
{
    const char *nl = n ? memchr(p, '\n', n) : NULL;
    if (!nl) return 0;
    size_t line = (size_t)(nl - p) + 1;
    *type = p[0];
    switch (p[0]) {
    case '+':
    case '-':
    case ':':
        *val = p + 1;
        *vlen = line - 3;
        return (long)line;
    case '$': {
        long bl = strtol(p + 1, NULL, 10);
        if (bl < 0) {
            *val = NULL;
            *vlen = 0;
            return (long)line;
        }
        if (n < line + (size_t)bl + 2) return 0;
        *val = p + line;
        *vlen = (size_t)bl;
        return (long)(line + (size_t)bl + 2);
    }
    default:
        return -1;
    }
}

static int parse_redis(conn *c)
{
    size_t off = 0;
    while (c->fcount) {
        int type;
        const char *val;
        size_t vlen;
        long r = resp_reply(c->in + off, c->inlen - off, &type, &val, &vlen);
        if (r < 0) return -1;
        if (r == 0) break;
        slot *s = &c->slots[c->fifo[c->fhead]];
        c->fhead = (c->fhead + 1) % MAX_DEPTH;
        c->fcount--;
        int ok = type == '$' && val != NULL; /* offer: the agent; others: a word */
        complete(c, s, ok, val, vlen, c->in + off, (size_t)r);
        off += (size_t)r;
    }
    if (off) {
        memmove(c->in, c->in + off, c->inlen - off);
        c->inlen -= off;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Sockets. */

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) die("connect: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Redis AUTH, blocking, before the connection goes non-blocking. */
static void redis_auth(int fd)
{
    if (!opt.password) return;
    char buf[512];
    int n = snprintf(buf, sizeof buf, "*2\r\n$4\r\nAUTH\r\n$%zu\r\n%s\r\n", strlen(opt.password),
                     opt.password);
    if (write(fd, buf, (size_t)n) != n) die("AUTH: %s", strerror(errno));
    ssize_t r = read(fd, buf, sizeof buf - 1);
    if (r < 3 || memcmp(buf, "+OK", 3) != 0) {
        buf[r > 0 ? r : 0] = 0;
        die("AUTH refused: %s", buf);
    }
}

static void flush_out(conn *c)
{
    while (c->outoff < c->outlen) {
        ssize_t w = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            die("write: %s", strerror(errno));
        }
        c->outoff += (size_t)w;
    }
    if (c->outoff == c->outlen) c->outoff = c->outlen = 0;
    int want = c->outlen > 0;
    if (want != c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = want;
    }
}

static int read_in(conn *c)
{
    for (;;) {
        grow(&c->in, &c->incap, c->inlen + 65536);
        size_t space = c->incap - c->inlen;
        ssize_t r = read(c->fd, c->in + c->inlen, space);
        if (r > 0) {
            c->inlen += (size_t)r;
            if ((size_t)r < space) return 0; /* drained */
            continue;
        }
        if (r == 0) return -1;
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return 0;
        return -1;
    }
}

/* ------------------------------------------------------------------------ */
/* Provisioning (blocking, one connection): the account, an API key, the
** agents and the queue. Prints base64(account:key) for --auth. */

static int http_blocking(int fd, const char *method, const char *path, const char *authz,
                         const char *body, char *resp, size_t cap)
{
    char req[8192];
    size_t bl = body ? strlen(body) : 0;
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     method, path, authz, bl, body ? body : "");
    if (n >= (int)sizeof req || write(fd, req, (size_t)n) != n) die("%s", "provision: write");
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, resp + len, cap - 1 - len);
        if (r <= 0) die("%s", "provision: connection closed");
        len += (size_t)r;
        resp[len] = 0;
        char *eoh = strstr(resp, "\r\n\r\n");
        if (!eoh) continue;
        char *clh = strcasestr(resp, "\ncontent-length:");
        size_t cl = clh && clh < eoh ? strtoul(clh + 16, NULL, 10) : 0;
        if (len >= (size_t)(eoh + 4 - resp) + cl) break;
    }
    return atoi(resp + 9);
}

static void b64(const char *in, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)in[i] << 16;
        if (i + 1 < n) v |= (unsigned char)in[i + 1] << 8;
        if (i + 2 < n) v |= (unsigned char)in[i + 2];
        out[o++] = t[(v >> 18) & 63];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = 0;
}

/* GET /metrics with the admin token: print the body. */
static int metrics(const char *token_file)
{
    char token[256] = "", bearer[300];
    static char resp[1 << 20];
    FILE *f = fopen(token_file, "r");
    if (!f || !fgets(token, sizeof token, f))
        die("cannot read the admin token file %s", token_file);
    fclose(f);
    token[strcspn(token, "\r\n")] = 0;
    snprintf(bearer, sizeof bearer, "Bearer %s", token);
    int fd = dial();
    int st = http_blocking(fd, "GET", "/metrics", bearer, NULL, resp, sizeof resp);
    close(fd);
    char *b = strstr(resp, "\r\n\r\n");
    fputs(b ? b + 4 : resp, stdout);
    return st == 200 ? 0 : 1;
}

static int provision(const char *token_file, int agents, const char *policy)
{
    char token[256] = "", bearer[300], resp[65536], path[256], body[8192], basic[400], cred[400];
    FILE *f = fopen(token_file, "r");
    if (!f || !fgets(token, sizeof token, f))
        die("cannot read the admin token file %s", token_file);
    fclose(f);
    token[strcspn(token, "\r\n")] = 0;
    snprintf(bearer, sizeof bearer, "Bearer %s", token);
    int fd = dial();
    int st = http_blocking(fd, "POST", "/v1/accounts", bearer,
                           "{\"id\":\"bench\",\"name\":\"Bench\"}", resp, sizeof resp);
    if (st != 201) die("create account: %s", resp);
    st = http_blocking(fd, "POST", "/v1/accounts/bench/keys", bearer, NULL, resp, sizeof resp);
    char *k = strstr(resp, "\"key\":\"");
    if (st != 201 || !k) die("create key: %s", resp);
    k += 7;
    snprintf(cred, sizeof cred, "bench:%.*s", (int)strcspn(k, "\""), k);
    b64(cred, basic);
    char authz[420];
    snprintf(authz, sizeof authz, "Basic %s", basic);
    for (int i = 1; i <= agents; i++) {
        snprintf(path, sizeof path, "/v1/agents/a%d", i);
        snprintf(body, sizeof body,
                 "{\"name\":\"Agent %d\",\"devices\":{\"softphone\":\"sip:a%d@pbx.example\"},"
                 "\"status\":\"available\"}",
                 i, i);
        if ((st = http_blocking(fd, "PUT", path, authz, body, resp, sizeof resp)) != 200)
            die("create agent: %s", resp);
    }
    int o =
        snprintf(body, sizeof body, "{\"policy\":\"%s\",\"ring_timeout\":20,\"members\":[", policy);
    for (int i = 1; i <= agents; i++)
        o += snprintf(body + o, sizeof body - (size_t)o, "%s{\"agent\":\"a%d\"}", i > 1 ? "," : "",
                      i);
    snprintf(body + o, sizeof body - (size_t)o, "]}");
    snprintf(path, sizeof path, "/v1/queues/%s", opt.queue);
    if ((st = http_blocking(fd, "PUT", path, authz, body, resp, sizeof resp)) != 200)
        die("create queue: %s", resp);
    close(fd);
    printf("%s\n", basic);
    return 0;
}

/* ------------------------------------------------------------------------ */

static void print_us(const char *name, uint64_t us)
{
    printf(" %s %.2f ms", name, (double)us / 1000.0);
}

static uint64_t pct(double p)
{
    if (!hist_n) return 0;
    uint64_t want = (uint64_t)(p * (double)hist_n);
    if (want >= hist_n) want = hist_n - 1;
    uint64_t seen = 0;
    for (uint64_t i = 0; i < HIST_US; i++) {
        seen += hist[i];
        if (seen > want) return i;
    }
    return HIST_US - 1;
}

static int freeport(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &l) != 0) {
        perror("sbload: freeport");
        return 1;
    }
    printf("%d\n", ntohs(sa.sin_port));
    close(fd);
    return 0;
}

static void usage(void)
{
    fprintf(
        stderr,
        "usage: sbload http  --port P --auth BASE64 [options]\n"
        "       sbload redis --port P [--password PW] --sha OFFER,ANSWERED,HANGUP [options]\n"
        "       sbload freeport\n"
        "       sbload provision --port P --token-file F [--agents N] [--policy NAME] [--queue Q]\n"
        "       sbload metrics --port P --token-file F\n"
        "options: --queue Q --conns N --depth K --duration S --warmup S --rate R\n"
        "         --prefix STR --label STR --drain S\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2) usage();
    if (!strcmp(argv[1], "freeport")) return freeport();
    int prov = 0, agents = 50, met = 0;
    const char *token_file = NULL, *policy = "longest-idle";
    if (!strcmp(argv[1], "provision"))
        prov = 1;
    else if (!strcmp(argv[1], "metrics"))
        met = 1;
    else if (!strcmp(argv[1], "http"))
        opt.proto = PROTO_HTTP;
    else if (!strcmp(argv[1], "redis"))
        opt.proto = PROTO_REDIS;
    else
        usage();
    int have_sha = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        i++;
        if (!strcmp(a, "--port"))
            opt.port = atoi(v);
        else if (!strcmp(a, "--auth"))
            opt.auth = v;
        else if (!strcmp(a, "--password"))
            opt.password = v;
        else if (!strcmp(a, "--queue"))
            opt.queue = v;
        else if (!strcmp(a, "--prefix"))
            opt.prefix = v;
        else if (!strcmp(a, "--label"))
            opt.label = v;
        else if (!strcmp(a, "--conns"))
            opt.conns = atoi(v);
        else if (!strcmp(a, "--depth"))
            opt.depth = atoi(v);
        else if (!strcmp(a, "--duration"))
            opt.duration = atof(v);
        else if (!strcmp(a, "--warmup"))
            opt.warmup = atof(v);
        else if (!strcmp(a, "--rate"))
            opt.rate = atof(v);
        else if (!strcmp(a, "--drain"))
            opt.drain = atof(v);
        else if (!strcmp(a, "--token-file"))
            token_file = v;
        else if (!strcmp(a, "--agents"))
            agents = atoi(v);
        else if (!strcmp(a, "--policy"))
            policy = v;
        else if (!strcmp(a, "--sha")) {
            if (sscanf(v, "%47[0-9a-f],%47[0-9a-f],%47[0-9a-f]", opt.sha[0], opt.sha[1],
                       opt.sha[2]) != 3)
                die("--sha wants three SHA1s separated by commas, got %s", v);
            have_sha = 1;
        } else
            usage();
    }
    if (met) {
        if (opt.port <= 0 || !token_file) usage();
        return metrics(token_file);
    }
    if (prov) {
        if (opt.port <= 0 || !token_file || agents < 1 || agents > 500) usage();
        return provision(token_file, agents, policy);
    }
    if (opt.port <= 0 || opt.conns < 1 || opt.depth < 1 || opt.depth > MAX_DEPTH ||
        opt.duration <= opt.warmup || (opt.proto == PROTO_HTTP && !opt.auth) ||
        (opt.proto == PROTO_REDIS && !have_sha))
        usage();
    signal(SIGPIPE, SIG_IGN);
    hist = calloc(HIST_US, sizeof *hist);
    conn *cs = calloc((size_t)opt.conns, sizeof *cs);
    if (!hist || !cs) die("%s", "out of memory");
    epfd = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev);

    for (int i = 0; i < opt.conns; i++) {
        conn *c = &cs[i];
        c->idx = i;
        c->fd = dial();
        if (opt.proto == PROTO_REDIS) redis_auth(c->fd);
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    }

    t_start = now_ns();
    t_warm = t_start + (uint64_t)(opt.warmup * 1e9);
    t_end = t_start + (uint64_t)(opt.duration * 1e9);
    uint64_t t_drain = t_end + (uint64_t)(opt.drain * 1e9);
    /* Rate mode: spread the slots' first sends evenly over one interval. */
    int nslots = opt.conns * opt.depth;
    double interval = opt.rate > 0 ? nslots / opt.rate * 1e9 : 0;
    for (int i = 0; i < opt.conns; i++)
        for (int k = 0; k < opt.depth; k++)
            cs[i].slots[k].sched = t_start + (uint64_t)(interval * (k * opt.conns + i) / nslots);

    int draining = 0, lost = 0;
    struct epoll_event evs[256];
    for (;;) {
        uint64_t now = now_ns();
        if (now >= t_end) draining = 1;
        if (now >= t_drain) break;
        /* Send what is due. */
        uint64_t next_due = UINT64_MAX;
        int inflight = 0, open_cycles = 0;
        for (int i = 0; i < opt.conns; i++) {
            conn *c = &cs[i];
            for (int k = 0; k < opt.depth; k++) {
                slot *s = &c->slots[k];
                if (s->busy) {
                    inflight++;
                    continue;
                }
                if (draining && s->step == STEP_OFFER) continue;
                open_cycles++;
                uint64_t due = opt.rate > 0 && !draining ? s->sched : now;
                if (due > now) {
                    if (due < next_due) next_due = due;
                    continue;
                }
                build_request(c, s);
                s->busy = 1;
                s->t_send = now;
                s->t_sched = opt.rate > 0 && !draining ? s->sched : now;
                c->fifo[(c->fhead + c->fcount) % MAX_DEPTH] = k;
                c->fcount++;
                inflight++;
            }
            if (c->outlen) flush_out(c);
        }
        if (draining && !inflight && !open_cycles) break;
        int timeout = 100;
        if (next_due != UINT64_MAX) {
            struct itimerspec its = {
                .it_value = {(time_t)(next_due / 1000000000u), (long)(next_due % 1000000000u)}};
            timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        }
        int n = epoll_wait(epfd, evs, 256, timeout);
        if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        for (int e = 0; e < n; e++) {
            conn *c = evs[e].data.ptr;
            if (!c) {
                uint64_t x;
                if (read(tfd, &x, sizeof x) < 0) { /* spurious: nothing to do */
                }
                continue;
            }
            if (evs[e].events & EPOLLOUT) flush_out(c);
            if (evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                int r = read_in(c);
                int p = opt.proto == PROTO_HTTP ? parse_http(c) : parse_redis(c);
                if (r < 0 || p < 0) {
                    fprintf(stderr, "sbload: conn %d: connection lost or bad reply\n", c->idx);
                    lost = 1;
                    goto done;
                }
            }
        }
    }
done:;
    int unfinished = 0;
    for (int i = 0; i < opt.conns; i++)
        for (int k = 0; k < opt.depth; k++)
            if (cs[i].slots[k].busy || cs[i].slots[k].step != STEP_OFFER) unfinished++;
    if (unfinished) fprintf(stderr, "sbload: %d cycles unfinished after the drain\n", unfinished);
    for (int i = 0; i < opt.conns; i++) {
        close(cs[i].fd);
        free(cs[i].in);
        free(cs[i].out);
    }
    free(cs);
    close(tfd);
    close(epfd);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    double wall = (double)(now_ns() - t_start) / 1e9;
    double secs = (double)(t_end - t_warm) / 1e9;
    double rps = (double)ok_requests / secs, cps = (double)ok_cycles / secs;
    uint64_t p50 = pct(0.50), p90 = pct(0.90), p99 = pct(0.99), p999 = pct(0.999), mx = 0;
    for (uint64_t i = HIST_US; i-- > 0;)
        if (hist[i]) {
            mx = i;
            break;
        }
    printf("  %-28s %8.0f requests/s %7.0f cycles/s  latency", opt.label, rps, cps);
    print_us("p50", p50);
    print_us("p90", p90);
    print_us("p99", p99);
    print_us("p99.9", p999);
    print_us("max", mx);
    printf("%s  errors %llu\n", hist_over ? " (some >1 s)" : "", (unsigned long long)errors);
    printf("RESULT label=%s requests=%llu seconds=%.3f rps=%.1f cps=%.1f p50_us=%llu p90_us=%llu "
           "p99_us=%llu p999_us=%llu max_us=%llu errors=%llu all=%llu gen_cpu=%.3f gen_wall=%.3f\n",
           opt.label, (unsigned long long)ok_requests, secs, rps, cps, (unsigned long long)p50,
           (unsigned long long)p90, (unsigned long long)p99, (unsigned long long)p999,
           (unsigned long long)mx, (unsigned long long)errors, (unsigned long long)all_requests,
           cpu, wall);
    fflush(stdout);
    free(hist);
    return errors || lost || unfinished ? 1 : 0;
}
