/*
** fuzz_http.c — the daemon's HTTP request path: the parser (request line,
** headers, Content-Length and chunked bodies, Expect, pipelining), the
** router, authentication and every route's handler, down to the library.
**
** http.c keeps its parser static, so this file includes it and drives a
** connection through the daemon's own event loop: accept_cb() takes one end
** of a socketpair, the request bytes are written to the other end in
** chunks, the loop runs (EVLOOP_NONBLOCK) with sbd_flush() after each
** iteration as the daemon's main loop does (the group-commit batch), and the
** client end reads what comes back; then the client half-closes. The engine
** behind it is a provisioned scratch engine; the daemon runs with
** max_body 4K and max_header 2K so the limits are in reach.
**
** Input: one byte, the chunk size the request bytes arrive in (0: all at
** once), then the raw bytes a client sends. "@A@" in the input becomes valid
** account credentials ("Basic ..." for acme's API key) and "@T@" the admin
** token ("Bearer ..."), so inputs can reach the authenticated routes.
**
** Checked beyond "no crash, no sanitizer report, no leak": the output is a
** well-formed sequence of HTTP/1.x responses, each with a known status, a
** Content-Length that matches its body and (for JSON) a body that parses —
** and no request is answered 500.
*/
#include "fuzz.h"

#include <sodium.h>
#include <sys/socket.h>

#include "../../engine/daemon/http.c"
#include "log.h"

static sbd D;
static sbd_config C;
static char auth_hdr[512];
static const char admin_token[] = "fuzz-admin-token";
static unsigned long runs;

static void reset_engine(void)
{
    const char *dir = fz_scratch("http");
    if (D.eng) sb_close(D.eng);
    char data[512];
    snprintf(data, sizeof data, "%s/data", dir);
    rmtree(data);
    D.eng = fz_open(data, (size_t)1 << 20, (size_t)256 << 20, D.res);
    fz_provision(D.eng, D.res);
    fz_must(sb_apikey_create(D.eng, "acme", D.res), D.res, "api key");
    json_t *k = json_loads(sb_result_json(D.res, NULL), 0, NULL);
    char cred[256], b64[400];
    snprintf(cred, sizeof cred, "acme:%s", json_string_value(json_object_get(k, "key")));
    json_decref(k);
    sodium_bin2base64(b64, sizeof b64, (const unsigned char *)cred, strlen(cred),
                      sodium_base64_VARIANT_ORIGINAL);
    snprintf(auth_hdr, sizeof auth_hdr, "Basic %s", b64);
}

static void close_all(void)
{
    sbd_events_free(&D);
    sbd_stream_close_all(&D);
    sbd_http_close_all(&D);
    sbd_stream_free_backlogs(&D); /* what the daemon's teardown frees */
    if (D.eng) sb_close(D.eng);
    sb_result_free(D.res);
    free(D.preq);
    if (D.base) event_base_free(D.base);
    memset(&D, 0, sizeof D);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0) abort();
    sbd_log_set_level(getenv("SB_FUZZ_LOG") ? SB_LOG_DEBUG : SB_LOG_ERROR);
    C.listen = "127.0.0.1:0";
    C.sync = SBD_SYNC_NONE;
    C.max_body = 4096;
    C.max_header = 2048;
    C.max_connections = 16;
    C.stream_buffer = 65536;
    C.idle_timeout = 60;
    C.shutdown_timeout = 1;
    D.cfg = &C;
    D.pub_tail = &D.pub_head;
    D.armed_deadline = INT64_MIN;
    D.stuck_deadline = INT64_MIN;
    D.res = sb_result_new();
    D.base = event_base_new();
    crypto_generichash(D.admin_hash, sizeof D.admin_hash, (const unsigned char *)admin_token,
                       strlen(admin_token), NULL, 0);
    reset_engine();
    atexit(close_all);
    return 0;
}

/* The input with "@A@" and "@T@" expanded. */
static char *expand(const uint8_t *p, size_t n, size_t *out_len)
{
    char bearer[64];
    snprintf(bearer, sizeof bearer, "Bearer %s", admin_token);
    size_t cap = n * 4 + 1, o = 0;
    for (size_t i = 0; i + 2 < n; i++)
        if (p[i] == '@' && p[i + 2] == '@') cap += strlen(auth_hdr);
    char *s = malloc(cap);
    for (size_t i = 0; i < n;) {
        if (i + 2 < n && p[i] == '@' && p[i + 2] == '@' && (p[i + 1] == 'A' || p[i + 1] == 'T')) {
            const char *r = p[i + 1] == 'A' ? auth_hdr : bearer;
            memcpy(s + o, r, strlen(r));
            o += strlen(r);
            i += 3;
        } else {
            s[o++] = (char)p[i++];
        }
    }
    *out_len = o;
    return s;
}

static int alive(sbd_conn *c)
{
    for (sbd_conn *x = D.conns; x; x = x->next)
        if (x == c) return 1;
    return 0;
}

/* What the client reads: everything waiting on its end of the pair. */
static void drain(int fd, struct evbuffer *out)
{
    char buf[65536];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
        evbuffer_add(out, buf, (size_t)n);
}

/* A few turns of the daemon's loop: an iteration of ready events, then the
** batch's flush (as sb_daemon_main does), then what the client reads. */
static void pump(int fd, struct evbuffer *out)
{
    for (int i = 0; i < 4; i++) {
        event_base_loop(D.base, EVLOOP_NONBLOCK);
        sbd_flush(&D);
        drain(fd, out);
    }
}

static void bad(const char *why, const char *p, size_t n)
{
    fprintf(stderr, "fuzz_http: %s\n--- output (%zu bytes) ---\n%.*s\n", why, n,
            (int)(n > 2000 ? 2000 : n), p);
    abort();
}

static const int known_status[] = {200, 201, 400, 401, 403, 404, 405, 409, 412,
                                   413, 417, 422, 429, 431, 501, 503, 505};

/* The output must be well-formed HTTP/1.x responses. */
/* The responses the daemon wrote, one after the other: each a status line,
** a head and as many bytes of body as its Content-Length says, except the
** answers to HEAD requests (heads): those end at their head, and are told
** by what follows it, the next status line or nothing (no body the daemon
** sends starts like a status line). */
static void check_output(struct evbuffer *out, int heads)
{
    size_t n = evbuffer_get_length(out);
    const char *p = (const char *)evbuffer_pullup(out, -1);
    size_t pos = 0;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    while (pos < n) {
        if (n - pos >= sizeof cont - 1 && !memcmp(p + pos, cont, sizeof cont - 1)) {
            pos += sizeof cont - 1;
            continue;
        }
        if (n - pos < 13 || memcmp(p + pos, "HTTP/1.", 7) ||
            (p[pos + 7] != '0' && p[pos + 7] != '1'))
            bad("not a status line", p + pos, n - pos);
        int status = atoi(p + pos + 9);
        int known = 0;
        for (size_t i = 0; i < sizeof known_status / sizeof known_status[0]; i++)
            known |= status == known_status[i];
        if (!known) bad("unexpected status", p + pos, n - pos);
        const char *end = memmem(p + pos, n - pos, "\r\n\r\n", 4);
        if (!end) bad("response head not terminated", p + pos, n - pos);
        size_t hl = (size_t)(end - (p + pos)) + 4;
        char *head = strndup(p + pos, hl);
        int stream = strstr(head, "\r\nContent-Type: text/event-stream\r\n") != NULL;
        int json = strstr(head, "\r\nContent-Type: application/json\r\n") != NULL;
        const char *cl = strstr(head, "\r\nContent-Length: ");
        size_t len = cl ? strtoull(cl + 18, NULL, 10) : 0;
        free(head);
        if (stream) return; /* the rest is the event stream */
        if (!cl) bad("response without Content-Length", p + pos, n - pos);
        if (heads && (pos + hl == n || (n - pos - hl >= 7 && !memcmp(p + pos + hl, "HTTP/1.", 7))))
            len = 0, json = 0; /* a HEAD's */
        if (n - pos - hl < len) bad("body shorter than Content-Length", p + pos, n - pos);
        if (json) {
            json_error_t err;
            json_t *doc = json_loadb(p + pos + hl, len, 0, &err);
            if (!doc) bad("response body is not JSON", p + pos, n - pos);
            json_decref(doc);
        }
        pos += hl + len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (++runs % FUZZ_RESET_EVERY == 0) reset_engine();
    size_t chunk = data[0] ? data[0] : size;
    size_t n;
    char *req = expand(data + 1, size - 1, &n);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) abort();
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(0x7f000001);
    sin.sin_port = htons(40000);
    accept_cb(NULL, sv[0], (struct sockaddr *)&sin, (int)sizeof sin, &D);
    sbd_conn *c = D.conns;
    if (!c || c->fd != sv[0]) abort();
    struct evbuffer *out = evbuffer_new();

    for (size_t pos = 0; pos < n && alive(c); pos += chunk) {
        size_t k = n - pos < chunk ? n - pos : chunk, off = 0;
        while (off < k) {
            ssize_t w = send(sv[1], req + pos + off, k - off, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0)
                off += (size_t)w;
            else if (!alive(c))
                break;
            pump(sv[1], out); /* the daemon reads; room again */
        }
        pump(sv[1], out);
    }
    shutdown(sv[1], SHUT_WR); /* the client is done sending */
    pump(sv[1], out);
    if (alive(c)) conn_free(c);
    sbd_flush(&D);
    /* libevent finalizes a freed bufferevent from the loop. */
    event_base_loop(D.base, EVLOOP_NONBLOCK);
    drain(sv[1], out);
    close(sv[1]);
    check_output(out, memmem(req, n, "HEAD", 4) != NULL);
    evbuffer_free(out);
    free(req);
    return 0;
}
