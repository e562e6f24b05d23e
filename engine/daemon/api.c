/*
** api.c — the routes. Each maps onto one library call; the daemon adds only
** transport: authentication, JSON well-formedness, the path's id in the
** document, the HTTP status for the SB_E* code, and which actions go to the
** event stream instead of the response.
**
** Actions: the response carries the actions that answer the request (those
** for the request's call, or the agent's own status change); every other
** action the request caused — a waiting call that can now ring, say — goes
** to the account's event stream, so each action reaches the gateway once.
*/
#include "serve.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <sodium.h>

#include "log.h"
#include "utf8.h"

enum auth { AUTH_NONE, AUTH_ADMIN, AUTH_ACCOUNT };

#define MAX_SEGS 8

/* The most audit entries one page holds (sb_audit_list cuts there), and
** those it holds when ?limit= is not given (the library's default). */
#define SBD_AUDIT_LIMIT_MAX 100000
#define SBD_AUDIT_LIMIT 1000
#define SBD_RECORDS_LIMIT 100       /* records a page holds by default (sb_records_list's) */
#define SBD_RECORDS_LIMIT_MAX 10000 /* and at most */
#define SBD_LIST_LIMIT 1000         /* agents, queues or calls a list gives by default */
#define SBD_LIST_LIMIT_MAX 10000    /* and at most */

typedef struct ctx {
    sbd *d;
    const sbd_req *req;
    sbd_reply *rep;
    const struct route *rt;
    const char *account; /* the authenticated account (AUTH_ACCOUNT) */
    char acct[136];
    const char *p[MAX_SEGS]; /* path parameters, decoded */
    int np;
    sb_result *res; /* reply_result's; NULL: d->res */
} ctx;

typedef void (*handler)(ctx *x);

struct route {
    const char *pattern; /* {x} matches one segment, {x...} the rest */
    enum auth auth;
    handler h[SBD_NMETHODS];
    const char *event;  /* call event routes: the event type */
    const char *params; /* the query parameters its GET takes, space-separated (a
                        ** DELETE's: delete_params) */
};

/* ------------------------------------------------------------------------ */
/* Replies. */

/* The HTTP status for a library result. 500 only for what is wrong inside
** the server (storage, keys, the data format); running out of memory or
** meeting a data directory that is busy is 503: try again. */
int sbd_api_status(int code)
{
    switch (code) {
    case SB_OK:
        return 200;
    case SB_EINVAL:
        return 400;
    case SB_ENOTFOUND:
        return 404;
    case SB_EEXIST:
        return 409;
    case SB_ESTATE:
        return 409;
    case SB_EHOLD:
        return 409;
    case SB_EPOLICY:
        return 422;
    case SB_EFULL:
    case SB_ENOMEM:
    case SB_EBUSY:
        return 503;
    case SB_ELIMIT:
        return 429;
    case SB_EAUTH:
        return 401;
    default:
        return 500;
    }
}

/* s as a JSON string: '"', '\\' and control characters escaped, a byte
** that is no part of a UTF-8 character written as U+FFFD. */
static void add_json_string(struct evbuffer *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    evbuffer_add(out, "\"", 1);
    while (n) {
        size_t k = sbd_utf8_char(p, n);
        if (!k) {
            evbuffer_add(out, "\\ufffd", 6);
            k = 1;
        } else if (*p == '"' || *p == '\\') {
            evbuffer_add_printf(out, "\\%c", *p);
        } else if (*p < 0x20) {
            evbuffer_add_printf(out, "\\u%04x", *p);
        } else {
            evbuffer_add(out, p, k);
        }
        p += k;
        n -= k;
    }
    evbuffer_add(out, "\"", 1);
}

void sbd_api_error(sbd_reply *rep, int status, const char *code, const char *message,
                   const char *field)
{
    if (!message) message = "";
    json_t *o = json_pack("{s:{s:s,s:s,s:o}}", "error", "code", code, "message", message, "field",
                          field ? json_string(field) : json_null());
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    rep->status = status;
    rep->content_type = NULL;
    /* Storage failed: nothing later on this connection is to be mistaken
    ** for the answer, so it closes (API.md, "Durability"). */
    rep->close = status == 500 && !strcmp(code, "SB_ESTORE");
    if (s) {
        evbuffer_add(rep->body, s, strlen(s));
    } else {
        /* Text jansson would not take (bytes that are not UTF-8, quoted
        ** from a request), or memory ran out: written here, whole. */
        evbuffer_add_printf(rep->body, "{\"error\":{\"code\":\"%s\",\"message\":", code);
        add_json_string(rep->body, message);
        evbuffer_add(rep->body, ",\"field\":", 9);
        if (field)
            add_json_string(rep->body, field);
        else
            evbuffer_add(rep->body, "null", 4);
        evbuffer_add(rep->body, "}}", 2);
    }
    sbd_free_wiped(s);
    json_decref(o);
}

static void fail(ctx *x, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void fail(ctx *x, int status, const char *code, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    sbd_utf8_vformat(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sbd_api_error(x->rep, status, code, msg, field);
}

static void add_header(sbd_reply *rep, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_header(sbd_reply *rep, const char *fmt, ...)
{
    size_t used = strlen(rep->headers);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->headers + used, sizeof rep->headers - used, fmt, ap);
    va_end(ap);
}

/* Does action a answer the request (its call, or its agent's status)? */
static int is_answer(const sb_action *a, const char *call, const char *agent)
{
    if (call) return a->call_id && !strcmp(a->call_id, call);
    if (agent) return a->type == SB_ACT_AGENT && a->agent_id && !strcmp(a->agent_id, agent);
    return 0;
}

/* The library's JSON of a request that no action answers (provisioning: a
** PUT of an agent, queue or member, a delete) once its actions have gone to
** the stream: the document without them, or {"actions":[]} for a result
** without a document. NULL when out of memory. */
static char *without_actions(const char *js, size_t len)
{
    json_t *o = json_loadb(js, len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    json_object_del(o, "actions");
    if (json_object_size(o) == 0) json_object_set_new(o, "actions", json_array());
    char *out = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    return out;
}

static void h_call_event(ctx *x);
static void h_agent_status(ctx *x);

/* Is the request one whose write may use the map's reserve past map_max
** (engine.h, eng_write_ex) and whose success says nothing of the room left:
** the event of a call in progress or an agent's status? (A delete's success
** clears the flag: it made room, and the next new call finds out how much.) */
static int uses_reserve(const ctx *x)
{
    return x->rt &&
           (x->rt->h[x->req->method] == h_call_event || x->rt->h[x->req->method] == h_agent_status);
}

/* Turn the library's outcome into the reply. On success, actions that do not
** answer this request go to the stream and leave the response. Events (a
** call or an agent given) answer {"actions":[...]}, as the library's result
** JSON would, written here without building it. */
static void reply_result(ctx *x, int rc, int ok_status, const char *call, const char *agent)
{
    sb_result *res = x->res ? x->res : x->d->res;
    size_t len = 0;
    /* Writes failing for lack of storage: /healthz says so until one works
    ** that does not use the reserve kept for calls in progress (their events
    ** succeed there while new calls are refused). A storage error (an I/O
    ** error, a broken page): until any write works. Works: committed and
    ** durable, not while its sync may still fail; a request that found
    ** everything as it asked wrote nothing, and says nothing of storage. */
    int changed = sb_result_changed(res);
    if (rc == SB_EFULL || rc == SB_ESTORE)
        sbd_storage_failed(x->d, rc, sb_result_message(res));
    else if (rc == 0 && changed)
        sbd_storage_wrote(x->d, !uses_reserve(x));
    if (rc != 0) {
        const char *js = sb_result_json(res, &len);
        x->rep->status = sbd_api_status(rc);
        x->rep->close = rc == SB_ESTORE; /* as sbd_api_error's */
        evbuffer_add(x->rep->body, js, len);
        if (x->rep->status >= 500) {
            /* A full disk fails every write: one line a second for a run of
            ** the same failure, with how many it stood for. */
            static sbd_log_limit limit;
            char more[48];
            if (!sbd_log_limit_take(&limit, rc, more, sizeof more)) return;
            sbd_log(SB_LOG_ERROR, "request failed", "method=%s path=%s code=%s error=%s%s",
                    x->req->method_name, sbd_qpath(x->req->path), sb_code_name(rc),
                    sbd_qn(sb_result_message(res)), more);
        }
        return;
    }
    /* A change: answered once its sync is done, and with the error if that
    ** sync fails (http.c, sbd_http_release). What the engine found already
    ** as asked (an agent's status set to the one it has, a history with
    ** nothing to forget) is not one, whatever the method: its answer stands
    ** as a refusal's or a read's does. */
    if (changed) x->rep->mutating = 1;
    x->rep->status = ok_status;
    size_t n = sb_result_count(res);
    if (!call && !agent) {
        const char *js = sb_result_json(res, &len);
        if (n == 0) {
            evbuffer_add(x->rep->body, js, len);
            return;
        }
        /* Provisioning that let waiting calls ring (an agent made available,
        ** a member added): those rings answer no request, so they go to the
        ** stream like any other (API.md, "Actions: response or stream"). */
        char *body = x->account ? without_actions(js, len) : NULL;
        if (!body) { /* admin routes, or out of memory: they stay in the response */
            evbuffer_add(x->rep->body, js, len);
            return;
        }
        for (size_t i = 0; i < n; i++)
            sbd_stream_hold(x->d, sb_result_action(res, i), x->account);
        evbuffer_add(x->rep->body, body, strlen(body));
        sbd_free_wiped(body);
        return;
    }
    evbuffer_add(x->rep->body, "{\"actions\":[", 12);
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        const sb_action *a = sb_result_action(res, i);
        if (!is_answer(a, call, agent)) {
            sbd_stream_hold(x->d, a, x->account);
            continue;
        }
        if (sbd_action_write(x->rep->body, a, x->account, first ? "" : ",")) first = 0;
    }
    evbuffer_add(x->rep->body, "]}", 2);
}

/* ------------------------------------------------------------------------ */
/* Request bodies. */

static int check_utf8(ctx *x)
{
    if (sbd_valid_utf8((const unsigned char *)x->req->body, x->req->body_len)) return 0;
    fail(x, 400, "SB_EINVAL", NULL, "request body is not valid UTF-8");
    return -1;
}

/* The length of a UTF-8 byte-order mark text begins with (3), or 0. */
size_t sbd_bom(const char *text, size_t len)
{
    return len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
}

const char *sbd_json_error(const json_error_t *e)
{
    enum json_error_code ec = json_error_code(e);
    if (ec == json_error_null_character || ec == json_error_null_byte_in_key)
        return "strings may not contain \\u0000";
    return e->text;
}

/* A NUL byte in the body (valid UTF-8): -1 after a 400 saying where, by
** line and column as jansson counts them (a column in characters), rather
** than what jansson makes of the end of the text it takes it for. */
static int nul_in_body(ctx *x)
{
    const char *b = x->req->body, *nul = memchr(b, 0, x->req->body_len);
    if (!nul) return 0;
    int line = 1, column = 1;
    for (const char *p = b; p < nul; p++)
        if (*p == '\n') {
            line++;
            column = 1;
        } else if (((unsigned char)*p & 0xC0) != 0x80) {
            column++;
        }
    fail(x, 400, "SB_EINVAL", NULL, "the body holds a NUL byte (line %d, column %d)", line, column);
    return -1;
}

/* The body as a JSON object; NULL after replying 400. An empty body is {}
** unless `required`. */
static json_t *body_object(ctx *x, int required)
{
    if (x->req->body_len == 0) {
        if (required) {
            fail(x, 400, "SB_EINVAL", NULL, "a JSON object body is required");
            return NULL;
        }
        return json_object();
    }
    if (check_utf8(x)) return NULL;
    if (nul_in_body(x)) return NULL;
    json_error_t err;
    /* Any JSON value is read, so that a number, a string or an array is
    ** refused as not an object rather than as malformed. */
    json_t *o =
        json_loadb(x->req->body, x->req->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (!o && json_error_code(&err) == json_error_numeric_overflow) {
        /* A number too big for the engine: named by its field, in the words
        ** the library gives the bindings ("'weight' is 1e400: too big a
        ** number ..."). */
        sb_json_check(x->req->body, x->req->body_len, x->d->res);
        fail(x, 400, "SB_EINVAL", sb_result_field(x->d->res), "%s", sb_result_message(x->d->res));
        return NULL;
    }
    if (!o) {
        const char *why = sbd_json_error(&err);
        fail(x, 400, "SB_EINVAL", NULL, "%s%s (line %d, column %d)",
             why == err.text ? "malformed JSON: " : "", why, err.line, err.column);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        fail(x, 400, "SB_EINVAL", NULL, "the body must be a JSON object");
        return NULL;
    }
    return o;
}

/* A string from the request's path or query as JSON. Its bytes that are
** not UTF-8 cannot go in as they are: they become U+FFFD, and the library
** refuses the value as one of the wrong characters (jansson would give
** NULL, and the value would be left out). NULL when memory runs out. */
static json_t *json_text(const char *s)
{
    if (sbd_valid_utf8((const unsigned char *)s, strlen(s))) return json_string(s);
    char *fixed = sbd_utf8_fix(s);
    json_t *j = fixed ? json_string(fixed) : NULL;
    sbd_free_wiped(fixed);
    return j;
}

/* Fill doc[key] with the path's value, or check that it matches. */
static int fill(ctx *x, json_t *doc, const char *key, const char *value)
{
    json_t *path = json_text(value), *v = json_object_get(doc, key);
    int rc = -1;
    if (!path || (!v && json_object_set(doc, key, path) != 0))
        fail(x, sbd_api_status(SB_ENOMEM), "SB_ENOMEM", NULL, "out of memory");
    else if (!v || json_equal(v, path))
        rc = 0;
    else if (!json_is_string(v))
        fail(x, 400, "SB_EINVAL", key, "\"%s\" must be a string (or left out: the path gives it)",
             key);
    else
        fail(x, 400, "SB_EINVAL", key, "\"%s\" in the body does not match the path (%s)", key,
             json_string_value(path));
    json_decref(path);
    return rc;
}

static char *dump(ctx *x, json_t *doc, size_t *len)
{
    char *s = json_dumps(doc, JSON_COMPACT);
    if (!s) {
        fail(x, sbd_api_status(SB_ENOMEM), "SB_ENOMEM", NULL, "out of memory");
        return NULL;
    }
    *len = strlen(s);
    return s;
}

/* ------------------------------------------------------------------------ */
/* Handlers: service. */

/* /healthz's 503 for a failing state: its status, and why (what it says,
** then the failure's own text). */
static void health_failing(ctx *x, const char *status, const char *what, const char *why)
{
    json_t *j = json_pack("{s:s, s:s, s:s+}", "status", status, "version", sb_version(), "message",
                          what, why);
    char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
    x->rep->status = 503;
    if (t)
        evbuffer_add_printf(x->rep->body, "%s", t);
    else
        evbuffer_add_printf(x->rep->body, "{\"status\":\"%s\"}", status);
    sbd_free_wiped(t);
    json_decref(j);
}

static void h_health(ctx *x)
{
    if (x->d->draining) {
        x->rep->status = 503;
        evbuffer_add_printf(x->rep->body, "{\"status\":\"draining\",\"version\":\"%s\"}",
                            sb_version());
        return;
    }
    sbd_full_at_start_recheck(x->d); /* room made since, by a sweep or a delete */
    if (x->d->full.on) {
        health_failing(x, "storage_full",
                       x->d->full.at_start
                           ? "the map was found past map_max at start, in the reserve kept for "
                             "calls in progress to end: new calls and documents are refused (503 "
                             "SB_EFULL, map_max reached) until room is made (deletes, a sweep, an "
                             "erasure request) or map_max is raised and the daemon restarted; "
                             "reads work (not access requests, whose audit entry is a write) and "
                             "calls in progress can end"
                           : "a write failed for lack of storage: reads work (not access "
                             "requests, whose audit entry is a write) and new calls are refused; "
                             "at map_max calls in progress can end (make room or raise map_max "
                             "and restart); on a full disk nothing that grows the data file is "
                             "written, calls in progress cannot end either, until space is freed "
                             "on it. The failed request's message names the cause",
                       "");
        return;
    }
    if (x->d->failing.on) {
        health_failing(x, "storage_failing",
                       "a storage error, not for lack of room (a request, read or write, "
                       "answered 500 SB_ESTORE, or a turn's commit or a sync that failed; "
                       "see the log's error lines and the kernel's for the disk): ",
                       x->d->storage_error);
        return;
    }
    if (x->d->tick_error[0]) {
        health_failing(x, "timers_failing",
                       "timers fail to fire (ring timeouts, wrap-ups, wake-ups, max waits "
                       "wait until they do): ",
                       x->d->tick_error);
        return;
    }
    x->rep->status = 200;
    evbuffer_add_printf(x->rep->body, "{\"status\":\"ok\",\"version\":\"%s\"}", sb_version());
}

static void h_metrics(ctx *x)
{
    x->rep->status = 200;
    x->rep->content_type = "text/plain; version=0.0.4; charset=utf-8";
    sbd_metrics_render(x->d, x->rep->body);
}

/* Handlers: accounts (admin). */

static void h_account_list(ctx *x)
{
    reply_result(x, sb_account_list(x->d->eng, x->d->res), 200, NULL, NULL);
}

/* The address an admin change came from, for its log line: what a key
** or an account became is told with who asked. */
static const char *peer_of(const ctx *x)
{
    return x->req->peer ? x->req->peer : "-";
}

static void h_account_create(ctx *x)
{
    json_t *doc = body_object(x, 1);
    if (!doc) return;
    json_t *id = json_object_get(doc, "id");
    if (!id || !json_is_string(id)) {
        fail(x, 400, "SB_EINVAL", "id", id ? "\"id\" must be a string" : "\"id\" is required");
        json_decref(doc);
        return;
    }
    char *idc = strdup(json_string_value(id));
    int rc = sb_account_get(x->d->eng, idc, x->d->res);
    if (rc == 0) {
        fail(x, 409, "SB_EEXIST", "id", "account %s already exists", idc);
    } else if (rc != SB_ENOTFOUND) {
        reply_result(x, rc, 200, NULL, NULL);
    } else {
        rc = sb_account_put(x->d->eng, x->req->body, x->req->body_len, x->d->res);
        reply_result(x, rc, 201, NULL, NULL);
        if (rc == 0) {
            add_header(x->rep, "Location: /v1/accounts/%s\r\n", idc);
            sbd_log(SB_LOG_INFO, "account created", "account=%s peer=%s", sbd_qacct(idc),
                    peer_of(x));
        }
    }
    sbd_free_wiped(idc);
    json_decref(doc);
}

static void h_account_get(ctx *x)
{
    reply_result(x, sb_account_get(x->d->eng, x->p[0], x->d->res), 200, NULL, NULL);
}

static void h_account_put(ctx *x)
{
    json_t *doc = body_object(x, 1);
    size_t len;
    char *s;
    if (!doc) return;
    if (fill(x, doc, "id", x->p[0]) == 0 && (s = dump(x, doc, &len))) {
        int rc = sb_account_put(x->d->eng, s, len, x->d->res);
        reply_result(x, rc, 200, NULL, NULL);
        sbd_free_wiped(s);
        /* As POST's and DELETE's are: a replacement can change which
        ** records are kept (retention, personal_attrs, audit_days). */
        if (rc == 0) {
            json_t *put = json_loads(sb_result_json(x->d->res, NULL), 0, NULL);
            sbd_log(SB_LOG_INFO,
                    json_is_false(json_object_get(put, "created")) ? "account replaced"
                                                                   : "account created",
                    "account=%s peer=%s", sbd_qacct(x->p[0]), peer_of(x));
            json_decref(put);
        }
    }
    json_decref(doc);
}

static int query_param(ctx *x, const char *name, char *buf, size_t cap, const char **out);
static int query_int(ctx *x, const char *name, long long *v);

static void h_account_delete(ctx *x)
{
    /* ?live_calls=end: its live calls end with it (sb_account_evict). */
    char lc[16];
    const char *v;
    if (query_param(x, "live_calls", lc, sizeof lc, &v)) return;
    if (v && strcmp(v, "end") != 0) {
        fail(x, 400, "SB_EINVAL", "live_calls",
             "\"live_calls\" takes \"end\" alone: the account's live calls end with it");
        return;
    }
    int rc = (v ? sb_account_evict : sb_account_delete)(x->d->eng, x->p[0], x->d->res);
    reply_result(x, rc, 200, NULL, NULL);
    if (rc == 0) {
        /* The live calls an eviction ended, for the log: an operator asked
        ** why calls dropped finds them there. */
        size_t ended = 0, n = sb_result_count(x->d->res);
        for (size_t i = 0; i < n; i++)
            ended += sb_result_action(x->d->res, i)->type == SB_ACT_END;
        /* Its subscribers are told what its last requests caused and the
        ** end of each live call, then their streams close; none of it
        ** reaches an account made again under the same id. */
        sbd_stream_forget(x->d, x->p[0], x->d->res);
        if (v)
            sbd_log(SB_LOG_INFO, "account deleted", "account=%s live_calls_ended=%zu peer=%s",
                    sbd_qacct(x->p[0]), ended, peer_of(x));
        else
            sbd_log(SB_LOG_INFO, "account deleted", "account=%s peer=%s", sbd_qacct(x->p[0]),
                    peer_of(x));
    }
}

static void h_key_create(ctx *x)
{
    /* No body, or an empty object: a key has no settings. */
    json_t *body = body_object(x, 0);
    if (!body) return;
    const char *k = json_object_iter_key(json_object_iter(body));
    int bad = k != NULL;
    if (bad) fail(x, 400, "SB_EINVAL", k, "unknown field '%s' (a new key takes no fields)", k);
    json_decref(body);
    if (bad) return;
    int rc = sb_apikey_create(x->d->eng, x->p[0], x->d->res);
    reply_result(x, rc, 201, NULL, NULL);
    if (rc == 0) {
        json_t *made = json_loads(sb_result_json(x->d->res, NULL), 0, NULL);
        sbd_log(SB_LOG_INFO, "api key created", "account=%s key_id=%s peer=%s", sbd_qacct(x->p[0]),
                sbd_q(json_string_value(json_object_get(made, "key_id"))), peer_of(x));
        json_decref(made);
    }
}

static void h_key_list(ctx *x)
{
    reply_result(x, sb_apikey_list(x->d->eng, x->p[0], x->d->res), 200, NULL, NULL);
}

static void h_key_revoke(ctx *x)
{
    int rc = sb_apikey_revoke(x->d->eng, x->p[0], x->p[1], x->d->res);
    reply_result(x, rc, 200, NULL, NULL);
    if (rc == 0)
        sbd_log(SB_LOG_INFO, "api key revoked", "account=%s key_id=%s peer=%s", sbd_qacct(x->p[0]),
                sbd_q(x->p[1]), peer_of(x));
}

/* Handlers: agents and queues (account). */

typedef int (*put_fn)(sb_engine *, const char *, const char *, size_t, sb_result *);

static void put_doc(ctx *x, put_fn fn)
{
    json_t *doc = body_object(x, 1);
    size_t len;
    char *s;
    if (!doc) return;
    if (fill(x, doc, "id", x->p[0]) == 0 && (s = dump(x, doc, &len))) {
        reply_result(x, fn(x->d->eng, x->account, s, len, x->d->res), 200, NULL, NULL);
        sbd_free_wiped(s);
    }
    json_decref(doc);
}

/* A page of a list: ?after=<the last id read>&limit=N (1 to
** SBD_LIST_LIMIT_MAX, SBD_LIST_LIMIT by default): a list is never written
** whole on the loop's thread for an account of 40,000 agents. */
static int page_params(ctx *x, char after[136], const char **a, long long *limit)
{
    *limit = SBD_LIST_LIMIT;
    if (query_param(x, "after", after, 136, a) || query_int(x, "limit", limit)) return -1;
    if (*limit >= 1 && *limit <= SBD_LIST_LIMIT_MAX) return 0;
    fail(x, 400, "SB_EINVAL", "limit", "\"limit\" must be between 1 and %d", SBD_LIST_LIMIT_MAX);
    return -1;
}

/* Pages bounded by bytes as well as by count. The loop serves no other
** request, account, stream or timer while it builds an answer, and a page
** of `limit` large documents takes seconds: so a page is built from the
** library's pages of a few items each, its items copied as the library
** wrote them, until it holds `limit` of them or `max_page` bytes of them
** (one at least, however large), and says where to go on from as any page
** does. The pages of one turn of the loop share max_page: pipelined
** requests, or many connections' at once, are answered in the same turn,
** whose answers all wait for its end; a page after max_page was built in
** the turn holds one item. Each of the library's pages asks for one item
** more than it takes, to tell whether more follow. */
#define PAGE_FIRST 16       /* items the first of the library's pages asks for */
#define PAGE_CHUNK_MAX 1000 /* and any other at most */

enum page_kind { PAGE_AGENTS, PAGE_QUEUES, PAGE_CALLS, PAGE_RECORDS, PAGE_AUDIT };

/* Where a page goes on from, as the request gave it and then past each
** item taken. */
typedef struct page_cursor {
    enum page_kind kind;
    const char *key; /* the list's name in the answer: "agents" */
    char id[136];    /* the last id read: agents', queues', calls' after; records' before_id */
    int has_id;      /* records: before_id given (agents...: id "" is from the first) */
    long long ms;    /* records: before_ms (-1: none) */
    long long from_ms, to_ms; /* records (-1: not given) */
    uint64_t seq;             /* audit: after */
    const char *queue;        /* calls, records: ?queue= (NULL: every queue) */
} page_cursor;

/* The library's page of at most n items after c, into the result. */
static int page_fetch(ctx *x, const page_cursor *c, size_t n)
{
    sb_engine *e = x->d->eng;
    sb_result *res = x->d->res;
    const char *a = c->id[0] ? c->id : NULL;
    switch (c->kind) {
    case PAGE_AGENTS:
        return sb_agent_list_page(e, x->account, a, n, res);
    case PAGE_QUEUES:
        return sb_queue_list_page(e, x->account, a, n, res);
    case PAGE_CALLS:
        return sb_call_list_page(e, x->account, c->queue, a, n, res);
    case PAGE_AUDIT:
        return sb_audit_list(e, x->account, c->seq, n, res);
    case PAGE_RECORDS:
        break;
    }
    json_t *q = json_object();
    if (c->ms >= 0) json_object_set_new(q, "before_ms", json_integer(c->ms));
    if (c->has_id) json_object_set_new(q, "before_id", json_text(c->id));
    if (c->from_ms >= 0) json_object_set_new(q, "from_ms", json_integer(c->from_ms));
    if (c->to_ms >= 0) json_object_set_new(q, "to_ms", json_integer(c->to_ms));
    json_object_set_new(q, "limit", json_integer((json_int_t)n));
    if (c->queue) json_object_set_new(q, "queue", json_text(c->queue));
    char *qs = json_dumps(q, JSON_COMPACT);
    json_decref(q);
    int rc = sb_records_list(e, x->account, qs, qs ? strlen(qs) : 0, res);
    sbd_free_wiped(qs);
    return rc;
}

/* Move c past item, the JSON text of the last item taken: 0, or -1 when it
** does not say where it is. */
static int page_past(page_cursor *c, const char *item, size_t len)
{
    json_t *o = json_loadb(item, len, 0, NULL);
    json_t *id = json_object_get(o, "id"), *v;
    int rc = -1;
    if (c->kind == PAGE_AUDIT) {
        if (json_is_integer(v = json_object_get(o, "seq")) && json_integer_value(v) >= 0) {
            c->seq = (uint64_t)json_integer_value(v);
            rc = 0;
        }
    } else if (json_is_string(id) && json_string_length(id) < sizeof c->id) {
        snprintf(c->id, sizeof c->id, "%s", json_string_value(id));
        c->has_id = 1;
        rc = 0;
        if (c->kind == PAGE_RECORDS) {
            v = json_object_get(o, "ended_ms");
            c->ms = json_is_integer(v) ? json_integer_value(v) : -1;
            rc = c->ms >= 0 ? 0 : -1;
        }
    }
    json_decref(o);
    return rc;
}

/* The end of the JSON object starting at js[i] (just past its '}'), or 0. */
static size_t object_end(const char *js, size_t len, size_t i)
{
    size_t depth = 0;
    if (i >= len || js[i] != '{') return 0;
    for (; i < len; i++) {
        char ch = js[i];
        if (ch == '"') {
            for (i++; i < len && js[i] != '"'; i++)
                if (js[i] == '\\') i++;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if ((ch == '}' || ch == ']') && --depth == 0) {
            return i + 1;
        }
    }
    return 0;
}

static size_t skip_blanks(const char *js, size_t len, size_t i)
{
    while (i < len && strchr(" \t\r\n", js[i]) && js[i])
        i++;
    return i;
}

/* Answer a page of at most `limit` items from c on, bounded by max_page. */
static void page_reply(ctx *x, page_cursor *c, long long limit)
{
    struct evbuffer *out = x->rep->body;
    size_t budget = x->d->cfg->max_page > x->d->turn_page_bytes
                        ? x->d->cfg->max_page - x->d->turn_page_bytes
                        : 0,
           bytes = 0, klen = strlen(c->key);
    long long taken = 0;
    int more = 0;
    evbuffer_add_printf(out, "{\"%s\":[", c->key);
    while (taken < limit && !more) {
        /* As many as the items so far say fit in what is left, at least one. */
        size_t n = (size_t)(limit - taken), each = taken ? bytes / (size_t)taken : 1,
               fit = taken    ? (bytes < budget ? (budget - bytes) / (each ? each : 1) : 0) + 1
                     : budget ? PAGE_FIRST
                              : 1;
        if (n > fit) n = fit;
        if (n > PAGE_CHUNK_MAX) n = PAGE_CHUNK_MAX;
        int rc = page_fetch(x, c, n + 1);
        if (rc) {
            evbuffer_drain(out, evbuffer_get_length(out));
            reply_result(x, rc, 200, NULL, NULL);
            return;
        }
        size_t len, got = 0, last = 0, last_len = 0;
        const char *js = sb_result_json(x->d->res, &len);
        /* {"<key>":[item,...]...}: the library's lists begin so. */
        size_t i = klen + 5;
        if (len < i || memcmp(js, "{\"", 2) || memcmp(js + 2, c->key, klen) ||
            memcmp(js + 2 + klen, "\":[", 3))
            goto broken;
        for (;;) {
            i = skip_blanks(js, len, i);
            if (i < len && js[i] == ']') break;
            size_t end = object_end(js, len, i);
            if (!end) goto broken;
            if (got == n || (taken && bytes + 1 + (end - i) > budget)) {
                more = 1; /* an item after those taken: the one asked for to tell */
                break;
            }
            if (taken) evbuffer_add(out, ",", 1);
            evbuffer_add(out, js + i, end - i);
            bytes += end - i + (taken > 0);
            taken++, got++;
            last = i, last_len = end - i;
            i = skip_blanks(js, len, end);
            if (i < len && js[i] == ',') i++;
        }
        if (got && page_past(c, js + last, last_len)) goto broken;
        if (got < n) break;                  /* the list ended, or max_page was reached */
        if (more && taken < limit) more = 0; /* n taken: the next page of the library's */
    }
    evbuffer_add(out, "]", 1);
    if (c->kind == PAGE_AUDIT) {
        evbuffer_add_printf(out, ",\"next\":%llu", (unsigned long long)c->seq);
    } else if (more) {
        json_t *id = json_text(c->id);
        char *ids = id ? json_dumps(id, JSON_ENCODE_ANY) : NULL;
        json_decref(id);
        if (!ids) goto broken;
        if (c->kind == PAGE_RECORDS)
            evbuffer_add_printf(out, ",\"next\":{\"before_ms\":%lld,\"before_id\":%s}", c->ms, ids);
        else
            evbuffer_add_printf(out, ",\"next\":%s", ids);
        sbd_free_wiped(ids);
    }
    evbuffer_add(out, "}", 1);
    x->rep->status = 200;
    x->d->turn_page_bytes += bytes;
    return;
broken: /* memory ran out (or an answer not shaped as the library's lists are) */
    evbuffer_drain(out, evbuffer_get_length(out));
    fail(x, 503, "SB_ENOMEM", NULL, "out of memory building a page of %s: try again", c->key);
}

static void list_page(ctx *x, enum page_kind kind, const char *key)
{
    page_cursor c = {.kind = kind, .key = key, .ms = -1, .from_ms = -1, .to_ms = -1};
    const char *a;
    long long limit;
    if (page_params(x, c.id, &a, &limit)) return;
    if (!a) c.id[0] = 0;
    page_reply(x, &c, limit);
}

static void h_agent_list(ctx *x)
{
    list_page(x, PAGE_AGENTS, "agents");
}

static void h_agent_get(ctx *x)
{
    reply_result(x, sb_agent_get(x->d->eng, x->account, x->p[0], x->d->res), 200, NULL, NULL);
}

static void h_agent_put(ctx *x)
{
    put_doc(x, sb_agent_put);
}

static void h_agent_delete(ctx *x)
{
    reply_result(x, sb_agent_delete(x->d->eng, x->account, x->p[0], x->d->res), 200, NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* Event bodies read once. The event document is the body plus "type" (and
** the path's id): rather than parse the body, add to it and print it again
** for the library to parse a second time, a body of the common shape — one
** flat object of plain ASCII strings without escapes, numbers, booleans and
** nulls, without "type" or the path's key — is checked by a scan that
** builds nothing, and the two members are written in front of its own. The
** library parses the result once. Anything else (nested values, escapes,
** bytes past ASCII, a number jansson might refuse, duplicate keys, an
** error of any kind) takes the general path, so every error reads as
** before. */

#define SCAN_KEYS 16

typedef struct scan {
    const char *end;
    const char *key[SCAN_KEYS];
    size_t klen[SCAN_KEYS];
    int nkeys;
} scan;

static const char *scan_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* A string of printable ASCII without escapes; returns past its closing
** quote, or NULL. */
static const char *scan_str(const char *p, const char *end)
{
    if (p >= end || *p != '"') return NULL;
    for (p++; p < end; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"') return p + 1;
        if (ch < 0x20 || ch >= 0x7f || ch == '\\') return NULL;
    }
    return NULL;
}

static int digits(const char **pp, const char *end, int most)
{
    const char *p = *pp;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    int n = (int)(p - *pp);
    *pp = p;
    return n >= 1 && n <= most;
}

/* A JSON number jansson reads without overflow: at most 15 digits before
** the point, 15 after, a 2-digit exponent. */
static const char *scan_num(const char *p, const char *end)
{
    if (p < end && *p == '-') p++;
    if (p < end && *p == '0')
        p++;
    else if (!digits(&p, end, 15))
        return NULL;
    if (p < end && *p == '.') {
        p++;
        if (!digits(&p, end, 15)) return NULL;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (!digits(&p, end, 2)) return NULL;
    }
    return p;
}

static const char *scan_value(const char *p, const char *end)
{
    if (p >= end) return NULL;
    if (*p == '"') return scan_str(p, end);
    if (*p == '-' || (*p >= '0' && *p <= '9')) return scan_num(p, end);
    static const char *const words[] = {"true", "false", "null"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(end - p) >= n && !memcmp(p, words[i], n)) return p + n;
    }
    return NULL;
}

/* Is the body a flat object the scan vouches for? Fills sc with its keys
** (quotes excluded) and sets *members to its first member (or NULL). */
static int scan_flat(const char *body, size_t len, scan *sc, const char **members)
{
    const char *end = body + len, *p = scan_ws(body, end);
    sc->nkeys = 0;
    *members = NULL;
    if (p >= end || *p != '{') return 0;
    p = scan_ws(p + 1, end);
    if (p < end && *p == '}') return scan_ws(p + 1, end) == end;
    *members = p;
    for (;;) {
        const char *k = p;
        if (!(p = scan_str(p, end)) || sc->nkeys == SCAN_KEYS) return 0;
        size_t kl = (size_t)(p - k) - 2;
        for (int i = 0; i < sc->nkeys; i++)
            if (sc->klen[i] == kl && !memcmp(sc->key[i], k + 1, kl)) return 0;
        sc->key[sc->nkeys] = k + 1;
        sc->klen[sc->nkeys++] = kl;
        p = scan_ws(p, end);
        if (p >= end || *p != ':') return 0;
        if (!(p = scan_value(scan_ws(p + 1, end), end))) return 0;
        p = scan_ws(p, end);
        if (p < end && *p == ',') {
            p = scan_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}') return scan_ws(p + 1, end) == end;
        return 0;
    }
}

/* The scanned member named key: its value's text, or NULL. */
static const char *scan_get(const scan *sc, const char *key, const char *end)
{
    size_t kl = strlen(key);
    for (int i = 0; i < sc->nkeys; i++)
        if (sc->klen[i] == kl && !memcmp(sc->key[i], key, kl))
            return scan_ws(sc->key[i] + kl + 1, end) + 1; /* past the ':' */
    return NULL;
}

/* Can s go between quotes as it is? */
static int plain(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f || *s == '"' || *s == '\\')
            return 0;
    return 1;
}

/* Leave an event document for the engine (daemon.c, "Events"); it is
** answered once applied (sbd_api_finish). */
static void run_event(ctx *x, const char *doc, size_t len, int ok_status, const char *call,
                      const char *agent)
{
    /* The document, the path and the ids, each with its NUL, in the job's
    ** buffer (kept from job to job: no allocation once it is big enough). */
    const char *part[4] = {doc, x->req->path, call, agent};
    size_t plen[4] = {len, strlen(x->req->path), call ? strlen(call) : 0,
                      agent ? strlen(agent) : 0};
    sbd_job *j = sbd_job_new(x->d);
    char *p = j ? sbd_job_room(j, plen[0] + plen[1] + plen[2] + plen[3] + 4) : NULL;
    if (!p) {
        if (j) sbd_job_free(x->d, j);
        fail(x, sbd_api_status(SB_ENOMEM), "SB_ENOMEM", NULL, "out of memory");
        return;
    }
    char **at[4] = {&j->doc, &j->path, &j->call, &j->agent};
    for (int i = 0; i < 4; i++) {
        if (!part[i]) continue; /* no call, or no agent: NULL */
        memcpy(p, part[i], plen[i]);
        p[plen[i]] = 0;
        *at[i] = p;
        p += plen[i] + 1;
    }
    j->len = len;
    snprintf(j->account, sizeof j->account, "%s", x->account);
    j->rt = x->rt;
    j->method = x->req->method;
    snprintf(j->method_name, sizeof j->method_name, "%s", x->req->method_name);
    j->ok_status = ok_status;
    x->rep->job = j;
}

void sbd_api_finish(sbd *d, sbd_job *j, sbd_reply *rep)
{
    sbd_req req = {.method = j->method, .method_name = j->method_name, .path = j->path};
    ctx x;
    memset(&x, 0, sizeof x);
    x.d = d;
    x.req = &req;
    x.rep = rep;
    x.rt = j->rt;
    x.account = j->account;
    x.res = j->res;
    reply_result(&x, j->rc, j->ok_status, j->call, j->agent);
    if (j->rc == 0 && j->ok_status == 201 && j->call)
        add_header(rep, "Location: /v1/calls/%s\r\n", j->call);
}

/* The fast path of submit(): 1 if it answered, 0 if the body needs the
** general path. */
static int submit_flat(ctx *x, const char *type, int required, const char *key, const char *id,
                       int ok_status)
{
    const char *body = x->req->body, *end = body + x->req->body_len, *members;
    scan sc;
    if (x->req->body_len == 0 ? required : !scan_flat(body, x->req->body_len, &sc, &members))
        return 0;
    if (x->req->body_len == 0) {
        sc.nkeys = 0;
        members = NULL;
    }
    if (scan_get(&sc, "type", end) || (key && (scan_get(&sc, key, end) || !plain(id)))) return 0;
    /* The call the response answers: the path's, or the body's "call". */
    char callbuf[256] = ""; /* longer than any valid id */
    const char *call = NULL, *agent = NULL;
    if (!strcmp(type, "agent_status")) {
        agent = id;
    } else if (key) {
        call = id;
    } else {
        const char *v = scan_get(&sc, "call", end);
        if (v) {
            v = scan_ws(v, end);
            const char *ve = *v == '"' ? scan_str(v, end) : NULL;
            if (!ve) return 0; /* not a string: the general path says so */
            size_t n = (size_t)(ve - v) - 2;
            if (n >= sizeof callbuf) return 0;
            memcpy(callbuf, v + 1, n);
            callbuf[n] = 0;
        }
        call = callbuf;
    }
    size_t idl = key ? strlen(id) : 0, kl = key ? strlen(key) : 0;
    size_t cap = x->req->body_len + strlen(type) + idl + kl + 32;
    char stackbuf[1024], *doc = cap <= sizeof stackbuf ? stackbuf : malloc(cap);
    if (!doc) {
        fail(x, sbd_api_status(SB_ENOMEM), "SB_ENOMEM", NULL, "out of memory");
        return 1;
    }
    int n = key ? snprintf(doc, cap, "{\"type\":\"%s\",\"%s\":\"%s\"", type, key, id)
                : snprintf(doc, cap, "{\"type\":\"%s\"", type);
    size_t len = (size_t)n;
    if (members) {
        doc[len++] = ',';
        memcpy(doc + len, members, (size_t)(end - members));
        len += (size_t)(end - members);
    } else {
        doc[len++] = '}';
    }
    run_event(x, doc, len, ok_status, call, agent);
    if (doc != stackbuf) sbd_free_wiped(doc);
    return 1;
}

/* Build the event document from the body plus the path, then submit it. */
static void submit(ctx *x, const char *type, int required, const char *key, const char *id,
                   int ok_status)
{
    if (submit_flat(x, type, required, key, id, ok_status)) return;
    json_t *doc = body_object(x, required);
    if (!doc) return;
    json_t *t = json_object_get(doc, "type");
    if (t && (!json_is_string(t) || strcmp(json_string_value(t), type) != 0)) {
        fail(x, 400, "SB_EINVAL", "type", "\"type\" must be \"%s\" on this route (or left out)",
             type);
        json_decref(doc);
        return;
    }
    if (!t) json_object_set_new(doc, "type", json_string(type));
    if (key && fill(x, doc, key, id)) {
        json_decref(doc);
        return;
    }
    const char *call = NULL, *agent = NULL;
    if (!strcmp(type, "agent_status")) {
        agent = id;
    } else {
        json_t *c = json_object_get(doc, "call");
        call = json_is_string(c) ? json_string_value(c) : "";
    }
    size_t len;
    char *s = dump(x, doc, &len);
    if (s) {
        run_event(x, s, len, ok_status, call, agent);
        sbd_free_wiped(s);
    }
    json_decref(doc);
}

static void h_agent_status(ctx *x)
{
    submit(x, "agent_status", 1, "agent", x->p[0], 200);
}

static void h_queue_list(ctx *x)
{
    list_page(x, PAGE_QUEUES, "queues");
}

static void h_queue_get(ctx *x)
{
    reply_result(x, sb_queue_get(x->d->eng, x->account, x->p[0], x->d->res), 200, NULL, NULL);
}

static void h_queue_put(ctx *x)
{
    put_doc(x, sb_queue_put);
}

static void h_queue_delete(ctx *x)
{
    reply_result(x, sb_queue_delete(x->d->eng, x->account, x->p[0], x->d->res), 200, NULL, NULL);
}

static void h_member_put(ctx *x)
{
    const char *js = NULL;
    size_t len = 0;
    if (x->req->body_len) {
        json_t *doc = body_object(x, 0);
        if (!doc) return;
        json_decref(doc);
        js = x->req->body;
        len = x->req->body_len;
    }
    reply_result(x, sb_member_put(x->d->eng, x->account, x->p[0], x->p[1], js, len, x->d->res), 200,
                 NULL, NULL);
}

static void h_member_delete(ctx *x)
{
    reply_result(x, sb_member_delete(x->d->eng, x->account, x->p[0], x->p[1], x->d->res), 200, NULL,
                 NULL);
}

/* Handlers: calls (account). */

static void h_call_offer(ctx *x)
{
    submit(x, "offer", 1, NULL, NULL, 201);
}

static void h_call_event(ctx *x)
{
    submit(x, x->rt->event, 0, "call", x->p[0], 200);
}

static void h_call_get(ctx *x)
{
    reply_result(x, sb_call_get(x->d->eng, x->account, x->p[0], x->d->res), 200, NULL, NULL);
}

/* Handlers: policies (account). */

/* The most entries a page of a policy's history gives (the library keeps
** 50 of a name). */
#define SBD_POLICY_VERSIONS_MAX 50

static int is_json_type(const char *ct)
{
    if (!ct) return 0;
    size_t n = strlen("application/json");
    return !strncasecmp(ct, "application/json", n) &&
           (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t');
}

static void h_policy_list(ctx *x)
{
    reply_result(x, sb_policy_list(x->d->eng, x->account, x->d->res), 200, NULL, NULL);
}

/* Are s's first 16 characters a policy version (lowercase hex), and n 16? */
static int is_version(const char *s, size_t n)
{
    return n == 16 && strspn(s, "0123456789abcdef") >= 16;
}

/* The ETag of a policy answer (doc: its JSON, read back once by the
** caller): the "version" of the account's upload, for an If-Match on its
** next upload or delete (none for a shared policy the account has no
** upload of: If-Match conditions the account's upload). */
static void policy_etag(ctx *x, const json_t *doc)
{
    const char *v = json_string_value(json_object_get(doc, "version")),
               *src = json_string_value(json_object_get(doc, "source"));
    if (v && (!src || !strcmp(src, "account")) && is_version(v, strlen(v)))
        add_header(x->rep, "ETag: \"%s\"\r\n", v);
}

/* A policy upload's or delete's condition, from If-Match ("version" or *)
** and If-None-Match (* alone: there must be none; an upload only), into the
** library's if_version (NULL: none). 0, or -1 with the 400 sent. */
static int policy_condition(ctx *x, char iv[20], const char **out)
{
    const char *m = x->req->if_match, *nm = x->req->if_none_match;
    *out = NULL;
    if (m && nm) {
        fail(x, 400, "SB_EINVAL", "If-None-Match", "If-Match and If-None-Match cannot go together");
        return -1;
    }
    if (nm) {
        if (strcmp(nm, "*") || x->req->method != SBD_PUT) {
            fail(x, 400, "SB_EINVAL", "If-None-Match",
                 "If-None-Match takes * alone, on an upload (there must be no upload of the "
                 "policy yet)");
            return -1;
        }
        iv[0] = 0;
        *out = iv;
        return 0;
    }
    if (!m) return 0;
    size_t n = strlen(m);
    if (!strcmp(m, "*")) {
        strcpy(iv, "*");
    } else if (n == 18 && m[0] == '"' && m[17] == '"' && is_version(m + 1, 16)) {
        memcpy(iv, m + 1, 16);
        iv[16] = 0;
    } else {
        fail(x, 400, "SB_EINVAL", "If-Match",
             "If-Match takes one policy version in quotes, as the ETag gives it "
             "(\"d784b7ecbfa91075\"), or *");
        return -1;
    }
    *out = iv;
    return 0;
}

/* A condition that did not hold: 412, naming the header. */
static int policy_precondition_failed(ctx *x, int rc)
{
    const char *f = sb_result_field(x->d->res);
    if (rc != SB_ESTATE || !f || strcmp(f, "if_version")) return 0;
    fail(x, 412, "SB_ESTATE", x->req->if_none_match ? "If-None-Match" : "If-Match", "%s",
         sb_result_message(x->d->res));
    return 1;
}

/* The length of the policy name before a trailing "/versions" or
** "/versions/<version>" in name (0: none), as a client guessing where a
** policy's history is would write it. */
static size_t versions_suffix(const char *name)
{
    const char *s = strstr(name, "/versions");
    for (; s; s = strstr(s + 1, "/versions")) {
        const char *rest = s + strlen("/versions");
        if (s > name && (!*rest || (*rest == '/' && is_version(rest + 1, strlen(rest + 1)))))
            return (size_t)(s - name);
    }
    return 0;
}

static void h_policy_get(ctx *x)
{
    int rc = sb_policy_get(x->d->eng, x->account, x->p[0], x->d->res);
    size_t vn = rc == SB_ENOTFOUND ? versions_suffix(x->p[0]) : 0;
    if (vn) { /* a policy named so could exist: what is not there is said as before */
        fail(x, 404, "SB_ENOTFOUND", "name",
             "%s (a policy's versions are at /v1/policy-versions/%.*s, and one version's code "
             "at ?version=)",
             sb_result_message(x->d->res), (int)vn, x->p[0]);
        return;
    }
    if (rc == 0) {
        json_t *o = json_loads(sb_result_json(x->d->res, NULL), 0, NULL);
        policy_etag(x, o);
        json_decref(o);
    }
    reply_result(x, rc, 200, NULL, NULL);
}

/* A policy's version history (sb_policy_versions), or with ?version= one
** version's code (sb_policy_version_get). No ETag: If-Match conditions the
** upload in use, which GET /v1/policies/{name} gives. */
static void h_policy_versions(ctx *x)
{
    char vb[64];
    const char *v;
    long long before = -1, limit = -1; /* -1: not given */
    if (query_param(x, "version", vb, sizeof vb, &v) || query_int(x, "before", &before) ||
        query_int(x, "limit", &limit))
        return;
    if (v && (before >= 0 || limit >= 0)) {
        fail(x, 400, "SB_EINVAL", before >= 0 ? "before" : "limit",
             "\"version\" reads one version: it takes no \"before\" or \"limit\"");
        return;
    }
    if (v) {
        reply_result(x, sb_policy_version_get(x->d->eng, x->account, x->p[0], v, x->d->res), 200,
                     NULL, NULL);
        return;
    }
    if (limit == 0 || limit > SBD_POLICY_VERSIONS_MAX) {
        fail(x, 400, "SB_EINVAL", "limit", "\"limit\" must be between 1 and %d",
             SBD_POLICY_VERSIONS_MAX);
        return;
    }
    reply_result(x,
                 sb_policy_versions(x->d->eng, x->account, x->p[0],
                                    before < 0 ? 0 : (uint64_t)before,
                                    limit < 0 ? 0 : (size_t)limit, x->d->res),
                 200, NULL, NULL);
}

/* Forget entries of a policy's history (sb_policy_versions_forget): with
** ?version= the earlier uploads of that version, else all but the newest. */
static void h_policy_versions_forget(ctx *x)
{
    char vb[64];
    const char *v;
    if (query_param(x, "version", vb, sizeof vb, &v)) return;
    int rc = sb_policy_versions_forget(x->d->eng, x->account, x->p[0], v, x->d->res);
    long long entries = 0;
    if (rc == 0) {
        json_t *o = json_loads(sb_result_json(x->d->res, NULL), 0, NULL);
        entries = (long long)json_integer_value(json_object_get(o, "forgotten"));
        json_decref(o);
    }
    reply_result(x, rc, 200, NULL, NULL);
    if (rc == 0)
        sbd_log(SB_LOG_INFO, "policy history forgotten",
                "account=%s policy=%s version=%s entries=%lld", sbd_qacct(x->account),
                sbd_q(x->p[0]), v ? v : "all-past", entries);
}

static void h_policy_delete(ctx *x)
{
    char ivb[20];
    const char *iv;
    if (policy_condition(x, ivb, &iv)) return;
    int rc = sb_policy_delete_if(x->d->eng, x->account, x->p[0], iv, x->d->res);
    if (policy_precondition_failed(x, rc)) return;
    reply_result(x, rc, 200, NULL, NULL);
    if (rc == 0)
        sbd_log(SB_LOG_INFO, "policy deleted", "account=%s policy=%s", sbd_qacct(x->account),
                sbd_q(x->p[0]));
}

/* Policy uploads compile the source and run its cases on the event loop
** that serves every account: each is bounded (500 ms of cases and one
** hook's wall time), but one account sending them back to back would hold
** the loop from the others. So an account's uploads take a tenth of the
** loop over time: the time each took is owed and paid back at a tenth of
** the time passing, and an upload is refused while more than
** UPLOAD_OWED_MAX_MS is owed (two full uploads back to back, then one
** every five seconds or so). */
#define UPLOAD_OWED_MAX_MS 600.0
#define UPLOAD_SHARE 10.0

static sbd_upload_debt *upload_slot(sbd *d, const char *account)
{
    size_t h = 5381;
    for (const char *p = account; *p; p++)
        h = h * 33 + (unsigned char)*p;
    uint64_t now = sbd_now_ns();
    /* Its own slot first, wherever the probe put it: a slot taken over
    ** before it is found would start its debt afresh. */
    for (size_t i = 0; i < SBD_UPLOAD_SLOTS; i++) {
        sbd_upload_debt *u = &d->uploads[(h + i) % SBD_UPLOAD_SLOTS];
        if (!strcmp(u->account, account)) return u;
    }
    /* Else a free one, one paid off, or the least owing account's. */
    sbd_upload_debt *best = NULL;
    double best_owed = 0;
    for (size_t i = 0; i < SBD_UPLOAD_SLOTS; i++) {
        sbd_upload_debt *u = &d->uploads[(h + i) % SBD_UPLOAD_SLOTS];
        double owed =
            u->account[0] ? u->owed_ms - (double)(now - u->at_ns) / 1e6 / UPLOAD_SHARE : 0;
        if (owed <= 0) {
            best = u;
            break;
        }
        if (!best || owed < best_owed) best = u, best_owed = owed;
    }
    snprintf(best->account, sizeof best->account, "%s", account);
    best->owed_ms = 0;
    best->at_ns = now;
    return best;
}

/* What u owes now (paid back since at_ns). */
static double upload_owed(sbd_upload_debt *u)
{
    uint64_t now = sbd_now_ns();
    double owed = u->owed_ms - (double)(now - u->at_ns) / 1e6 / UPLOAD_SHARE;
    u->owed_ms = owed > 0 ? owed : 0;
    u->at_ns = now;
    return u->owed_ms;
}

/* Is the body a policy upload as JSON, {"source": ...}? */
static int is_json_upload(const char *body, size_t len)
{
    json_t *o = json_loadb(body, len, 0, NULL);
    int yes = json_is_object(o) && json_object_get(o, "source");
    json_decref(o);
    return yes;
}

/* A source sent as a form (curl -d) with no line break in it and a "--"
** comment, which the lost line breaks make run to the end. */
static int form_flattened(const ctx *x, const char *src, size_t len)
{
    const char *ct = x->req->content_type;
    static const char form[] = "application/x-www-form-urlencoded";
    return ct && strncasecmp(ct, form, sizeof form - 1) == 0 &&
           (ct[sizeof form - 1] == 0 || ct[sizeof form - 1] == ';') && !memchr(src, '\n', len) &&
           memmem(src, len, "--", 2);
}

static void h_policy_put(ctx *x)
{
    sbd_upload_debt *u = upload_slot(x->d, x->account);
    double owed = upload_owed(u);
    if (owed > UPLOAD_OWED_MAX_MS) {
        int wait_s = (int)((owed - UPLOAD_OWED_MAX_MS) * UPLOAD_SHARE / 1000.0) + 1;
        add_header(x->rep, "Retry-After: %d\r\n", wait_s);
        fail(x, 429, "SB_ELIMIT", NULL,
             "this account's policy uploads took %.0f ms of the daemon's event loop lately, "
             "more than one account may (a tenth of it over time: uploads run their cases on "
             "the loop that serves every account); retry in %d s",
             owed, wait_s);
        return;
    }
    char ivb[20];
    const char *iv;
    if (policy_condition(x, ivb, &iv)) return;
    uint64_t t0 = sbd_now_ns();
    const char *src = x->req->body;
    size_t len = x->req->body_len;
    char *cases = NULL;
    json_t *doc = NULL;
    if (is_json_type(x->req->content_type)) {
        if (!(doc = body_object(x, 1))) return;
        const char *k;
        json_t *v;
        json_object_foreach(doc, k, v)
        {
            if (strcmp(k, "source") != 0 && strcmp(k, "cases") != 0) {
                fail(x, 400, "SB_EINVAL", k, "unknown field '%s' (expected source, cases)", k);
                goto out;
            }
        }
        json_t *s = json_object_get(doc, "source");
        if (!json_is_string(s)) {
            fail(x, 400, "SB_EINVAL", "source",
                 s ? "\"source\" must be a string" : "\"source\" is required");
            goto out;
        }
        src = json_string_value(s);
        len = json_string_length(s);
        json_t *c = json_object_get(doc, "cases");
        if (c && !json_is_null(c)) {
            if (!json_is_array(c)) {
                fail(x, 400, "SB_EINVAL", "cases", "\"cases\" must be an array");
                goto out;
            }
            cases = json_dumps(c, JSON_COMPACT);
        }
    } else if (check_utf8(x)) {
        return;
    }
    int rc = sb_policy_put_if(x->d->eng, x->account, x->p[0], src, len, cases, iv, x->d->res);
    u->owed_ms += (double)(sbd_now_ns() - t0) / 1e6;
    if (rc == 0) { /* which version is live now, and which it replaced */
        json_t *o = json_loads(sb_result_json(x->d->res, NULL), 0, NULL);
        const char *v = json_string_value(json_object_get(o, "version")),
                   *pv = json_string_value(json_object_get(o, "previous"));
        sbd_log(SB_LOG_INFO, "policy stored", "account=%s policy=%s version=%s previous=%s",
                sbd_qacct(x->account), sbd_q(x->p[0]), v ? v : "?", pv ? pv : "none");
        policy_etag(x, o);
        json_decref(o);
    } else if (sbd_api_status(rc) < 500) {
        /* The upload's own fault; one the daemon failed to store (no room, a
        ** storage error) is logged as a failed request, not as the code's. */
        sbd_log(SB_LOG_WARN, "policy rejected", "account=%s policy=%s error=%s",
                sbd_qacct(x->account), sbd_q(x->p[0]), sbd_qn(sb_result_message(x->d->res)));
    }
    if (rc == SB_EPOLICY && !doc && is_json_upload(src, len)) {
        /* A JSON upload sent as something else (curl -d's form type): its
        ** Lua error alone would not say why. */
        const char *ct = x->req->content_type;
        fail(x, 422, "SB_EPOLICY", "source",
             "%s (the body was read as Lua source, its Content-Type being %s%.64s%s: an upload "
             "as JSON, {\"source\": ...}, needs Content-Type: application/json)",
             sb_result_message(x->d->res), ct ? "\"" : "", ct ? ct : "none", ct ? "\"" : "");
    } else if (rc == SB_EPOLICY && !doc && form_flattened(x, src, len)) {
        /* curl -d @file sends a form and drops the file's line breaks: the
        ** first -- comment then runs to the end, and Lua's error (often
        ** "'end' expected near <eof>") would not say why. */
        fail(x, 422, "SB_EPOLICY", "source",
             "%s (the body has no line breaks and was sent as a form, Content-Type "
             "\"application/x-www-form-urlencoded\": curl -d drops a file's line breaks; send "
             "it with --data-binary @FILE)",
             sb_result_message(x->d->res));
    } else if (!policy_precondition_failed(x, rc)) {
        reply_result(x, rc, 200, NULL, NULL);
    }
out:
    sbd_free_wiped(cases);
    json_decref(doc);
}

/* Handlers: records and retention (account). */

static int hexval(char c);

/* Is parameter name[0..nl) in the query q (up to `stop`, or all of it)? */
static int query_has_before(const char *q, const char *stop, const char *name, size_t nl)
{
    for (const char *p = q; *p && (!stop || p < stop);) {
        size_t len = strcspn(p, "&"), pl = strcspn(p, "=&");
        if (pl == nl && !memcmp(p, name, nl)) return 1;
        p += len;
        if (*p) p++;
    }
    return 0;
}

static int query_has(const char *q, const char *name, size_t nl)
{
    return query_has_before(q, NULL, name, nl);
}

/* Does the space-separated list hold name[0..nl)? */
static int in_list(const char *list, const char *name, size_t nl)
{
    for (const char *p = list; p && *p;) {
        size_t l = strcspn(p, " ");
        if (l == nl && !memcmp(p, name, nl)) return 1;
        p += l;
        if (*p) p++;
    }
    return 0;
}

/* Every route refuses, as it refuses unknown JSON fields, a query parameter
** it does not take, one given twice, one without a value and a malformed
** percent-escape: 400 SB_EINVAL naming the parameter. */
/* A DELETE takes no body: one sent (a reason, a document meant for another
** route, malformed JSON) is refused rather than left unread. */
static int check_no_body(ctx *x)
{
    if (x->req->method != SBD_DELETE || !x->req->body_len) return 0;
    fail(x, 400, "SB_EINVAL", NULL, "DELETE %s takes no body (%zu bytes sent); nothing was deleted",
         x->rt->pattern, x->req->body_len);
    return -1;
}

/* If-Match and If-None-Match on a write to a route without versions: HTTP
** says a condition that does not hold must not be carried out, and ignoring
** it would be an unconditional overwrite the client did not ask for. A
** read's are ignored (its answer is the same whatever they say). */
static int check_conditions(ctx *x, handler h)
{
    const sbd_req *r = x->req;
    if ((!r->if_match && !r->if_none_match) || r->method == SBD_GET || r->method == SBD_HEAD ||
        h == h_policy_put || h == h_policy_delete)
        return 0;
    fail(x, 400, "SB_EINVAL", r->if_match ? "If-Match" : "If-None-Match",
         "%s %s takes no %s: conditional requests are taken by PUT and DELETE "
         "/v1/policies/{name} alone (nothing else has versions to compare); nothing changed",
         r->method_name, x->rt->pattern, r->if_match ? "If-Match" : "If-None-Match");
    return -1;
}

/* The query parameters a DELETE takes (a route's params are its GET's). */
static const char *delete_params(const struct route *rt)
{
    return rt->h[SBD_DELETE] == h_account_delete           ? "live_calls"
           : rt->h[SBD_DELETE] == h_policy_versions_forget ? "version"
                                                           : NULL;
}

static int check_query(ctx *x)
{
    /* Reads take query parameters, and a DELETE its own (POST /v1/calls
    ** takes none of GET's). */
    const char *q = x->req->query;
    const char *takes = x->req->method == SBD_GET || x->req->method == SBD_HEAD ? x->rt->params
                        : x->req->method == SBD_DELETE ? delete_params(x->rt)
                                                       : NULL;
    for (const char *p = q; *p;) {
        size_t len = strcspn(p, "&"), nl = strcspn(p, "=&");
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(nl < sizeof name ? nl : sizeof name - 1), p);
        if (len && !in_list(takes, p, nl)) {
            char list[128];
            size_t o = 0;
            for (const char *t = takes; t && *t && o + 3 < sizeof list; t++)
                if (*t == ' ') {
                    list[o++] = ',';
                    list[o++] = ' ';
                } else {
                    list[o++] = *t;
                }
            list[o] = 0;
            if (*list)
                fail(x, 400, "SB_EINVAL", name, "unknown query parameter \"%s\" (%s %s takes %s)",
                     name, x->req->method_name, x->rt->pattern, list);
            else
                fail(x, 400, "SB_EINVAL", name,
                     "unknown query parameter \"%s\" (%s %s takes no query parameters)", name,
                     x->req->method_name, x->rt->pattern);
            return -1;
        }
        if (len && query_has_before(q, p, p, nl)) {
            fail(x, 400, "SB_EINVAL", name, "query parameter \"%s\" is given twice", name);
            return -1;
        }
        if (len && nl == len) {
            fail(x, 400, "SB_EINVAL", name, "query parameter \"%s\" needs a value (%s=...)", name,
                 name);
            return -1;
        }
        for (size_t i = nl + 1; i < len; i++) {
            if (p[i] != '%') continue;
            if (i + 2 >= len || hexval(p[i + 1]) < 0 || hexval(p[i + 2]) < 0) {
                fail(x, 400, "SB_EINVAL", name,
                     "malformed percent-escape in query parameter \"%s\"", name);
                return -1;
            }
            if (p[i + 1] == '0' && p[i + 2] == '0') {
                fail(x, 400, "SB_EINVAL", name,
                     "query parameter \"%s\" may not hold a NUL byte (%%00)", name);
                return -1;
            }
        }
        p += len;
        if (*p) p++;
    }
    return 0;
}

/* Query parameter `name`, percent-decoded into *out (buf); *out is NULL when
** it is absent. -1 after a 400 for a value longer than buf. check_query()
** has already refused unknown, repeated and malformed parameters. '+' stays
** '+' (phone numbers), so "number=+44..." works as typed; %2B works too. */
static int query_param(ctx *x, const char *name, char *buf, size_t cap, const char **out)
{
    size_t nl = strlen(name);
    *out = NULL;
    for (const char *p = x->req->query; p && *p;) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > nl && p[nl] == '=' && !strncmp(p, name, nl)) {
            size_t o = 0;
            for (size_t i = nl + 1; i < len; i++) {
                char c = p[i];
                if (c == '%' && i + 2 < len) {
                    c = (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
                    i += 2;
                }
                if (o + 1 >= cap) {
                    fail(x, 400, "SB_EINVAL", name, "\"%s\" is too long (at most %zu bytes)", name,
                         cap - 1);
                    return -1;
                }
                buf[o++] = c;
            }
            buf[o] = 0;
            *out = buf;
            return 0;
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* An integer query parameter into *v (left alone when absent); -1 after a 400. */
static int query_int(ctx *x, const char *name, long long *v)
{
    char buf[32];
    const char *s;
    if (query_param(x, name, buf, sizeof buf, &s)) return -1;
    if (!s) return 0;
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (*s >= '0' && *s <= '9' && !*end && errno == ERANGE && n > 0) {
        fail(x, 400, "SB_EINVAL", name, "\"%s\" is too large (at most %lld)", name, LLONG_MAX);
        return -1;
    }
    /* digits only: strtoll would also take a sign and leading spaces */
    if (*s < '0' || *s > '9' || *end || n < 0 || errno) {
        fail(x, 400, "SB_EINVAL", name, "\"%s\" must be a non-negative integer", name);
        return -1;
    }
    *v = n;
    return 0;
}

static void h_erasure(ctx *x)
{
    json_t *doc = body_object(x, 1);
    if (!doc) return;
    const char *k;
    json_t *v;
    json_object_foreach(doc, k, v)
    {
        if (strcmp(k, "number") != 0) {
            fail(x, 400, "SB_EINVAL", k, "unknown field '%s' (expected number)", k);
            json_decref(doc);
            return;
        }
    }
    json_t *n = json_object_get(doc, "number");
    if (!json_is_string(n)) {
        fail(x, 400, "SB_EINVAL", "number",
             n ? "\"number\" must be a string" : "\"number\" is required");
    } else {
        int rc = sb_erase(x->d->eng, x->account, json_string_value(n), x->d->res);
        /* The log names the account and counts, never the number. */
        if (rc == 0) {
            json_t *o = json_loads(sb_result_json(x->d->res, NULL), 0, NULL);
#define COUNT(k) (long long)json_integer_value(json_object_get(o, k))
            sbd_log(SB_LOG_INFO, "erasure request",
                    "account=%s deleted=%lld anonymized=%lld kept=%lld held=%lld failed=%lld "
                    "live=%lld",
                    sbd_qacct(x->account), COUNT("deleted"), COUNT("anonymized"), COUNT("kept"),
                    COUNT("held"), COUNT("failed"), COUNT("live"));
#undef COUNT
            json_decref(o);
        }
        reply_result(x, rc, 200, NULL, NULL);
    }
    json_decref(doc);
}

/* A retention preview runs in the event loop like every request, calls'
** events waiting behind it, so it takes a time budget: 20 ms unless the
** body gives one, 100 at most (a sweep's turn is one short transaction); a
** preview it cuts short answers "next" to carry on from. */
#define PREVIEW_BUDGET_MS 20
#define PREVIEW_BUDGET_MAX_MS 100

static void h_retention_preview(ctx *x)
{
    json_t *doc = body_object(x, 0);
    if (!doc) return;
    /* null is the default, as the library reads it; 100.0 is 100, as there. */
    json_t *b = json_object_get(doc, "budget_ms");
    if (json_is_number(b) && json_number_value(b) > PREVIEW_BUDGET_MAX_MS) {
        fail(x, 400, "SB_EINVAL", "budget_ms",
             "\"budget_ms\" is at most %d here (the daemon's requests share one event loop): "
             "carry on from the answer's \"next\"",
             PREVIEW_BUDGET_MAX_MS);
        json_decref(doc);
        return;
    }
    if (!b || json_is_null(b))
        json_object_set_new(doc, "budget_ms", json_integer(PREVIEW_BUDGET_MS));
    char *body = json_dumps(doc, 0);
    json_decref(doc);
    sb_result *res = x->d->res;
    int rc =
        body ? sb_retention_preview(x->d->eng, x->account, body, strlen(body), res) : SB_ENOMEM;
    sbd_free_wiped(body);
    if (rc) {
        reply_result(x, rc, 200, NULL, NULL);
        return;
    }
    /* It writes nothing: answered as a read is (no sync to wait for, and
    ** not a write that worked to /healthz). */
    size_t len = 0;
    const char *js = sb_result_json(res, &len);
    x->rep->status = 200;
    evbuffer_add(x->rep->body, js, len);
}

/* --- access requests' pages ------------------------------------------------
** A page holds numbers and personal attributes in the clear. evbuffer_add
** copies it into libevent's chains, which libevent frees unwiped when they
** are written, drained (the HEAD of an access request, an answer a failed
** sync replaces) or dropped with their connection: the engine wipes what it
** lets go (sb_result), and the daemon's copy of the page was left in the
** heap. A page is added by reference instead, in a block of its own that
** page_free wipes and frees whenever libevent lets it go. libevent moves a
** referenced block from buffer to buffer (rep->body, the connection's held
** answers, its output) without copying it as long as no buffer is cut
** inside it: held answers are cut only between responses, and the page is
** the last of its response; the kernel's, as it is written, is the only
** other copy. */
static void page_free(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    sbd_free_wiped((void *)data);
}

/* Add page (len bytes, malloc'd) to out, which owns it from here on, out
** of memory included (it is wiped and freed then). 0, or -1 when it could
** not be added. */
static int add_page(struct evbuffer *out, char *page, size_t len)
{
    if (!len) {
        free(page);
        return 0;
    }
    if (evbuffer_add_reference(out, page, len, page_free, NULL) == 0) return 0;
    page_free(page, len, NULL);
    return -1;
}

/* The four hex digits at p (before lim) as a number, or -1. */
static long hex4(const char *p, const char *lim)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = p + i < lim ? hexval(p[i]) : -1;
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* The value of the JSON string that starts (its opening quote passed) at p,
** in text written by jansson with JSON_ENSURE_ASCII (sb_result_json's), into
** out, which has room for the escaped text (never longer decoded). Returns
** its length and sets *end past its closing quote; (size_t)-1 if it is none.
** A CSV page is taken out of the answer's text this way, not by json_loads,
** whose lexer copies every string it reads into buffers it frees unwiped. */
static size_t json_string_decode(const char *p, const char *lim, char *out, const char **end)
{
    static const char esc[] = "\"\\/bfnrt", val[] = "\"\\/\b\f\n\r\t";
    size_t n = 0;
    while (p < lim && *p != '"') {
        if (*p != '\\') {
            out[n++] = *p++;
            continue;
        }
        const char *e = p + 1 < lim && p[1] ? strchr(esc, p[1]) : NULL;
        if (e) {
            out[n++] = val[e - esc];
            p += 2;
            continue;
        }
        long cp = p + 1 < lim && p[1] == 'u' ? hex4(p + 2, lim) : -1;
        if (cp < 0) return (size_t)-1;
        p += 6;
        if (cp >= 0xd800 && cp < 0xdc00) { /* the first of a pair: \uD8xx\uDCxx */
            long lo = lim - p >= 2 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2, lim) : -1;
            if (lo < 0xdc00 || lo > 0xdfff) return (size_t)-1;
            p += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        if (cp < 0x80) {
            out[n++] = (char)cp;
        } else if (cp < 0x800) {
            out[n++] = (char)(0xc0 | cp >> 6);
            out[n++] = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            out[n++] = (char)(0xe0 | cp >> 12);
            out[n++] = (char)(0x80 | (cp >> 6 & 0x3f));
            out[n++] = (char)(0x80 | (cp & 0x3f));
        } else {
            out[n++] = (char)(0xf0 | cp >> 18);
            out[n++] = (char)(0x80 | (cp >> 12 & 0x3f));
            out[n++] = (char)(0x80 | (cp >> 6 & 0x3f));
            out[n++] = (char)(0x80 | (cp & 0x3f));
        }
    }
    if (p >= lim) return (size_t)-1;
    *end = p + 1;
    return n;
}

static void h_records(ctx *x)
{
    char number[64], format[16], queue[136];
    const char *num, *fmt, *q;
    if (query_param(x, "number", number, sizeof number, &num) ||
        query_param(x, "format", format, sizeof format, &fmt))
        return;
    if (fmt && strcmp(fmt, "json") && strcmp(fmt, "csv")) {
        fail(x, 400, "SB_EINVAL", "format", "\"format\" must be json or csv");
        return;
    }
    if (!num) {
        if (fmt && !strcmp(fmt, "csv")) {
            fail(x, 400, "SB_EINVAL", "format", "CSV is for access requests (?number=...)");
            return;
        }
        if (query_has(x->req->query, "after", 5)) {
            fail(x, 400, "SB_EINVAL", "after",
                 "\"after\" is for access requests (?number=...): a page of the list goes on "
                 "from \"before_ms\" and \"before_id\"");
            return;
        }
        long long from = -1, to = -1, limit = -1, before = -1;
        char bid[136];
        const char *b = NULL;
        if (query_int(x, "from_ms", &from) || query_int(x, "to_ms", &to) ||
            query_int(x, "limit", &limit) || query_param(x, "queue", queue, sizeof queue, &q) ||
            query_int(x, "before_ms", &before) || query_param(x, "before_id", bid, sizeof bid, &b))
            return;
        if (limit == 0 || limit > SBD_RECORDS_LIMIT_MAX) {
            fail(x, 400, "SB_EINVAL", "limit", "\"limit\" must be between 1 and %d",
                 SBD_RECORDS_LIMIT_MAX);
            return;
        }
        page_cursor c = {.kind = PAGE_RECORDS,
                         .key = "records",
                         .ms = before,
                         .has_id = !!b,
                         .from_ms = from,
                         .to_ms = to,
                         .queue = q};
        snprintf(c.id, sizeof c.id, "%s", b ? b : "");
        page_reply(x, &c, limit < 0 ? SBD_RECORDS_LIMIT : limit);
        return;
    }
    /* An access request is every record of the number: the list's filters
    ** do not apply to it. */
    static const char *const list_only[] = {"from_ms", "to_ms", "queue", "before_ms", "before_id"};
    for (size_t i = 0; i < sizeof list_only / sizeof list_only[0]; i++)
        if (query_has(x->req->query, list_only[i], strlen(list_only[i]))) {
            fail(x, 400, "SB_EINVAL", list_only[i],
                 "\"%s\" does not apply to an access request (?number=...), which returns "
                 "every record of the number",
                 list_only[i]);
            sodium_memzero(number, sizeof number);
            return;
        }
    /* It is paged as the lists are: at most `limit` records and max_page
    ** bytes of them (shared by the pages of the turn, one record at least),
    ** "next" (CSV: Switchboard-Next) the next page's ?after=. A number on
    ** every call has every record of the account, and its export built
    ** whole held the loop for seconds. */
    long long limit = SBD_RECORDS_LIMIT_MAX;
    char after[192];
    const char *a = NULL;
    if (query_int(x, "limit", &limit) || query_param(x, "after", after, sizeof after, &a)) {
        sodium_memzero(number, sizeof number);
        return;
    }
    if (limit < 1 || limit > SBD_RECORDS_LIMIT_MAX) {
        fail(x, 400, "SB_EINVAL", "limit", "\"limit\" must be between 1 and %d",
             SBD_RECORDS_LIMIT_MAX);
        sodium_memzero(number, sizeof number);
        return;
    }
    size_t budget = x->d->cfg->max_page > x->d->turn_page_bytes
                        ? x->d->cfg->max_page - x->d->turn_page_bytes
                        : 1;
    int csv = fmt && !strcmp(fmt, "csv");
    int rc =
        sb_records_export_page(x->d->eng, x->account, num, csv ? SB_EXPORT_CSV : SB_EXPORT_JSON, a,
                               (size_t)limit, budget, x->d->res);
    sodium_memzero(number, sizeof number);
    /* The page wrote its entry in the audit log (refused, and nothing
    ** disclosed, when it could not): answered once that entry is synced, as
    ** a write is, and never if the sync fails; and a write that worked, for
    ** /healthz. */
    if (!rc) {
        x->rep->mutating = 1;
        sbd_storage_wrote(x->d, 1);
    }
    if (rc) {
        reply_result(x, rc, 200, NULL, NULL);
        return;
    }
    size_t len = 0;
    const char *js = sb_result_json(x->d->res, &len);
    char *page = malloc(len ? len : 1);
    if (!csv) { /* the answer's text, as it is */
        if (page) memcpy(page, js, len);
        if (!page || add_page(x->rep->body, page, len)) {
            fail(x, sbd_api_status(SB_ENOMEM), "SB_ENOMEM", NULL, "out of memory");
            return;
        }
        x->rep->status = 200;
        x->d->turn_page_bytes += len;
        return;
    }
    /* {"number":...,"count":...,"live":...,"csv":"...","next":...}: the
    ** page decoded by hand (the first "csv":" is the key, as nothing before
    ** it holds a quote of its own: numbers are E.164, ids have none), the
    ** rest, the page left out, by jansson. The engine's own text always
    ** decodes: what fails here is memory. */
    const char *lim = js + len, *at = memmem(js, len, "\"csv\":\"", 7), *end = NULL;
    size_t n = at && page ? json_string_decode(at + 7, lim, page, &end) : (size_t)-1;
    size_t head = at ? (size_t)(at + 7 - js) : 0, tail = end ? (size_t)(lim - end) : 0;
    char *rest = n != (size_t)-1 ? malloc(head + 1 + tail) : NULL;
    json_t *d = NULL;
    if (rest) {
        memcpy(rest, js, head);
        rest[head] = '"';
        memcpy(rest + head + 1, end, tail);
        d = json_loadb(rest, head + 1 + tail, 0, NULL);
        sbd_free_wiped(rest);
    }
    if (!d) {
        if (page) page_free(page, len, NULL);
        fail(x, sbd_api_status(SB_ENOMEM), "SB_ENOMEM", NULL, "out of memory");
        return;
    }
    if (add_page(x->rep->body, page, n)) {
        json_decref(d);
        fail(x, sbd_api_status(SB_ENOMEM), "SB_ENOMEM", NULL, "out of memory");
        return;
    }
    json_t *nx = json_object_get(d, "next");
    x->rep->status = 200;
    x->rep->content_type = "text/csv; charset=utf-8";
    /* Calls of the number in progress, in no record yet (JSON: "live"). */
    add_header(x->rep, "Switchboard-Live-Calls: %lld\r\n",
               (long long)json_integer_value(json_object_get(d, "live")));
    /* More follow: the next page's ?after= (JSON: "next"). */
    if (json_is_string(nx)) add_header(x->rep, "Switchboard-Next: %s\r\n", json_string_value(nx));
    json_decref(d);
    x->d->turn_page_bytes += n;
}

static void h_hold_list(ctx *x)
{
    reply_result(x, sb_hold_list(x->d->eng, x->account, x->d->res), 200, NULL, NULL);
}

static void h_hold_place(ctx *x)
{
    json_t *doc = body_object(x, 1);
    if (!doc) return;
    json_decref(doc);
    int rc = sb_hold_place(x->d->eng, x->account, x->req->body, x->req->body_len, x->d->res);
    reply_result(x, rc, 201, NULL, NULL);
    if (rc == 0) {
        json_t *h = json_loads(sb_result_json(x->d->res, NULL), 0, NULL);
        const char *id = json_string_value(json_object_get(h, "id"));
        add_header(x->rep, "Location: /v1/holds/%s\r\n", id ? id : "");
        sbd_log(SB_LOG_INFO, "legal hold placed", "account=%s hold=%s", sbd_qacct(x->account),
                sbd_qn(id ? id : ""));
        json_decref(h);
    }
}

static void h_hold_get(ctx *x)
{
    reply_result(x, sb_hold_get(x->d->eng, x->account, x->p[0], x->d->res), 200, NULL, NULL);
}

static void h_hold_release(ctx *x)
{
    int rc = sb_hold_release(x->d->eng, x->account, x->p[0], x->d->res);
    reply_result(x, rc, 200, NULL, NULL);
    if (rc == 0)
        sbd_log(SB_LOG_INFO, "legal hold released", "account=%s hold=%s", sbd_qacct(x->account),
                sbd_qn(x->p[0]));
}

static void h_call_list(ctx *x)
{
    char queue[136], after[136];
    const char *q, *a;
    long long limit;
    if (query_param(x, "queue", queue, sizeof queue, &q) || page_params(x, after, &a, &limit))
        return;
    page_cursor c = {
        .kind = PAGE_CALLS, .key = "calls", .ms = -1, .from_ms = -1, .to_ms = -1, .queue = q};
    snprintf(c.id, sizeof c.id, "%s", a ? a : "");
    page_reply(x, &c, limit);
}

static void h_aggregates(ctx *x)
{
    char queue[136];
    const char *q;
    long long from = 0, to = 0;
    if (query_int(x, "from_ms", &from) || query_int(x, "to_ms", &to) ||
        query_param(x, "queue", queue, sizeof queue, &q))
        return;
    reply_result(x, sb_aggregates(x->d->eng, x->account, q, from, to, x->d->res), 200, NULL, NULL);
}

static void h_audit(ctx *x)
{
    long long after = 0, limit = -1;
    if (query_int(x, "after", &after) || query_int(x, "limit", &limit)) return;
    /* The library reads 0 as its default and cuts a larger limit to its
    ** most without a word: a limit given is one it takes as asked. */
    if (limit == 0 || limit > SBD_AUDIT_LIMIT_MAX) {
        fail(x, 400, "SB_EINVAL", "limit", "\"limit\" must be between 1 and %d",
             SBD_AUDIT_LIMIT_MAX);
        return;
    }
    page_cursor c = {.kind = PAGE_AUDIT, .key = "entries", .seq = (uint64_t)after};
    page_reply(x, &c, limit < 0 ? SBD_AUDIT_LIMIT : limit);
}

/* The event stream (account). */

static void h_events(ctx *x)
{
    if (x->d->draining) { /* a stream would end at once: say so */
        sbd_api_error(x->rep, 503, "HTTP_DRAINING", "the daemon is shutting down", NULL);
        return;
    }
    /* Resuming: the id of the last event the client has (SSE ids are
    ** decimal here; an EventSource sends back what it was given). */
    const char *li = x->req->last_event_id;
    if (li && *li) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(li, &end, 10);
        if (*end || *li < '0' || *li > '9' || errno == ERANGE) {
            fail(x, 400, "SB_EINVAL", "Last-Event-ID",
                 "Last-Event-ID must be the id of an event this stream sent (a decimal number)");
            return;
        }
        x->rep->stream_resume = 1;
        x->rep->stream_after = v;
    }
    /* One account's streams may not take every connection: each is exempt
    ** from idle_timeout (keep-alives), so past max_connections the other
    ** accounts could not connect at all. HEAD, which subscribes nothing,
    ** is answered as the GET would be. */
    unsigned cap = x->d->cfg->stream_max_per_account, open = sbd_stream_count(x->d, x->account);
    if (cap && open >= cap) {
        static sbd_log_limit limit;
        char more[48];
        x->d->m.stream_refused++;
        if (sbd_log_limit_take(&limit, 0, more, sizeof more))
            sbd_log(SB_LOG_WARN, "stream refused: the account has stream_max_per_account open",
                    "account=%s open=%u stream_max_per_account=%u%s", sbd_qacct(x->account), open,
                    cap, more);
        fail(x, 429, "SB_ELIMIT", NULL,
             "this account has %u event streams open, stream_max_per_account (%u): close one "
             "first, or raise stream_max_per_account in the daemon's configuration",
             open, cap);
        return;
    }
    x->rep->status = 200;
    x->rep->stream = 1;
    snprintf(x->rep->stream_account, sizeof x->rep->stream_account, "%s", x->account);
    x->rep->stream_auth = x->req->authorization;
}

/* ------------------------------------------------------------------------ */
/* Routing. */

/* Every GET handler only reads, but for an access request's audit entry
** (h_records): it answers HEAD too (sbd_api_handle). */
static const struct route routes[] = {
    {"/healthz", AUTH_NONE, {[SBD_GET] = h_health}, NULL, NULL},
    {"/metrics", AUTH_ADMIN, {[SBD_GET] = h_metrics}, NULL, NULL},
    {"/v1/accounts",
     AUTH_ADMIN,
     {[SBD_GET] = h_account_list, [SBD_POST] = h_account_create},
     NULL,
     NULL},
    {"/v1/accounts/{id}",
     AUTH_ADMIN,
     {[SBD_GET] = h_account_get, [SBD_PUT] = h_account_put, [SBD_DELETE] = h_account_delete},
     NULL,
     NULL},
    {"/v1/accounts/{id}/keys",
     AUTH_ADMIN,
     {[SBD_GET] = h_key_list, [SBD_POST] = h_key_create},
     NULL,
     NULL},
    {"/v1/accounts/{id}/keys/{key_id}", AUTH_ADMIN, {[SBD_DELETE] = h_key_revoke}, NULL, NULL},
    {"/v1/agents", AUTH_ACCOUNT, {[SBD_GET] = h_agent_list}, NULL, "after limit"},
    {"/v1/agents/{id}",
     AUTH_ACCOUNT,
     {[SBD_GET] = h_agent_get, [SBD_PUT] = h_agent_put, [SBD_DELETE] = h_agent_delete},
     NULL,
     NULL},
    {"/v1/agents/{id}/status", AUTH_ACCOUNT, {[SBD_POST] = h_agent_status}, NULL, NULL},
    {"/v1/queues", AUTH_ACCOUNT, {[SBD_GET] = h_queue_list}, NULL, "after limit"},
    {"/v1/queues/{id}",
     AUTH_ACCOUNT,
     {[SBD_GET] = h_queue_get, [SBD_PUT] = h_queue_put, [SBD_DELETE] = h_queue_delete},
     NULL,
     NULL},
    {"/v1/queues/{id}/members/{agent}",
     AUTH_ACCOUNT,
     {[SBD_PUT] = h_member_put, [SBD_DELETE] = h_member_delete},
     NULL,
     NULL},
    {"/v1/calls",
     AUTH_ACCOUNT,
     {[SBD_GET] = h_call_list, [SBD_POST] = h_call_offer},
     NULL,
     "queue after limit"},
    {"/v1/calls/{id}", AUTH_ACCOUNT, {[SBD_GET] = h_call_get}, NULL, NULL},
    {"/v1/calls/{id}/ring_result", AUTH_ACCOUNT, {[SBD_POST] = h_call_event}, "ring_result", NULL},
    {"/v1/calls/{id}/hangup", AUTH_ACCOUNT, {[SBD_POST] = h_call_event}, "hangup", NULL},
    {"/v1/calls/{id}/abandon", AUTH_ACCOUNT, {[SBD_POST] = h_call_event}, "abandon", NULL},
    {"/v1/calls/{id}/transfer", AUTH_ACCOUNT, {[SBD_POST] = h_call_event}, "transfer", NULL},
    {"/v1/policies", AUTH_ACCOUNT, {[SBD_GET] = h_policy_list}, NULL, NULL},
    {"/v1/policies/{name...}",
     AUTH_ACCOUNT,
     {[SBD_GET] = h_policy_get, [SBD_PUT] = h_policy_put, [SBD_DELETE] = h_policy_delete},
     NULL,
     NULL},
    {"/v1/policy-versions/{name...}",
     AUTH_ACCOUNT,
     {[SBD_GET] = h_policy_versions, [SBD_DELETE] = h_policy_versions_forget},
     NULL,
     "version before limit"},
    {"/v1/events", AUTH_ACCOUNT, {[SBD_GET] = h_events}, NULL, NULL},
    {"/v1/records",
     AUTH_ACCOUNT,
     {[SBD_GET] = h_records},
     NULL,
     "number format from_ms to_ms queue limit before_ms before_id after"},
    {"/v1/erasure", AUTH_ACCOUNT, {[SBD_POST] = h_erasure}, NULL, NULL},
    {"/v1/retention/preview", AUTH_ACCOUNT, {[SBD_POST] = h_retention_preview}, NULL, NULL},
    {"/v1/holds", AUTH_ACCOUNT, {[SBD_GET] = h_hold_list, [SBD_POST] = h_hold_place}, NULL, NULL},
    {"/v1/holds/{id}",
     AUTH_ACCOUNT,
     {[SBD_GET] = h_hold_get, [SBD_DELETE] = h_hold_release},
     NULL,
     NULL},
    {"/v1/aggregates", AUTH_ACCOUNT, {[SBD_GET] = h_aggregates}, NULL, "queue from_ms to_ms"},
    {"/v1/audit", AUTH_ACCOUNT, {[SBD_GET] = h_audit}, NULL, "after limit"},
};

#define NROUTES ((int)(sizeof routes / sizeof routes[0]))
_Static_assert(sizeof routes / sizeof routes[0] <= SBD_MAX_ROUTES, "raise SBD_MAX_ROUTES");

int sbd_api_route_count(void)
{
    return NROUTES;
}

const char *sbd_api_route_name(int route)
{
    return route >= 0 && route < NROUTES ? routes[route].pattern : "unmatched";
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Split path into percent-decoded segments in buf. Returns the count, or -1
** for a malformed escape, -2 for too many segments, -3 for a %00 (well
** formed, but a NUL no name can hold). */
static int split_path(const char *path, char *buf, char **segs)
{
    int n = 0;
    const char *s = path + 1; /* skip the leading '/' */
    char *o = buf;
    for (;;) {
        if (n == MAX_SEGS) return -2;
        segs[n++] = o;
        while (*s && *s != '/') {
            if (*s == '%') {
                int hi = hexval(s[1]), lo = hi < 0 ? -1 : hexval(s[2]);
                if (lo < 0) return -1;
                if (hi == 0 && lo == 0) return -3;
                *o++ = (char)(hi * 16 + lo);
                s += 3;
            } else {
                *o++ = *s++;
            }
        }
        *o++ = 0;
        if (!*s) return n;
        s++;
    }
}

/* Match segs against a route pattern; fills x->p. */
static int match(const char *pattern, char **segs, int n, ctx *x)
{
    const char *p = pattern + 1;
    int i = 0;
    x->np = 0;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t pl = e ? (size_t)(e - p) : strlen(p);
        if (i >= n) return 0;
        if (p[0] == '{') {
            if (!*segs[i]) return 0;
            if (pl > 5 && !strncmp(p + pl - 4, "...}", 4)) {
                /* The rest of the path, joined back with '/', empty parts
                ** too ("a//b", "team/"): the handler says why no name can be
                ** that (400), rather than "no route" (404). */
                for (int k = i + 1; k < n; k++)
                    segs[k][-1] = '/';
                x->p[x->np++] = segs[i];
                return 1;
            }
            x->p[x->np++] = segs[i];
        } else if (strlen(segs[i]) != pl || strncmp(segs[i], p, pl) != 0) {
            return 0;
        }
        i++;
        p += pl;
        if (*p == '/') p++;
    }
    return i == n;
}

/* The route a path names: its index in routes[], -1 for none, -2 for a
** path with malformed percent-encoding, -3 for one with a %00. buf holds
** the decoded segments (strlen(path) + 1 bytes), which x's parameters
** point into. */
static int find_route(const char *path, char *buf, ctx *x)
{
    char *segs[MAX_SEGS];
    int n = split_path(path, buf, segs);
    if (n == -1) return -2;
    if (n == -3) return -3;
    for (int i = 0; n > 0 && i < NROUTES; i++)
        if (match(routes[i].pattern, segs, n, x)) return i;
    return -1;
}

int sbd_api_route_of(const char *target)
{
    size_t n = strcspn(target, "?");
    char *buf = malloc(2 * n + 2);
    if (!buf) return -1;
    memcpy(buf, target, n);
    buf[n] = 0;
    ctx x;
    memset(&x, 0, sizeof x);
    int i = find_route(buf, buf + n + 1, &x);
    sbd_free_wiped(buf);
    return i < 0 ? -1 : i;
}

/* Credentials given and refused: counted, logged at warn (one line a second
** for each kind, with how many it stood for: a guesser would flood the log)
** with the account tried, never the key, and the peer; the connection is
** closed after SBD_AUTH_FAILURES_CLOSE of them in a row. Requests without
** credentials are not attempts and are not counted. After fail(), which
** sets rep->close for storage errors only. */
static void auth_failed(ctx *x, int admin, const char *account)
{
    static sbd_log_limit limits[2];
    char more[48];
    sbd_auth_cache *ac = x->req->auth_cache;
    unsigned run = 0;
    if (admin)
        x->d->m.auth_failures_admin++;
    else
        x->d->m.auth_failures_key++;
    if (ac) {
        run = ++ac->failures;
        if (run >= SBD_AUTH_FAILURES_CLOSE) x->rep->close = 1;
    }
    if (!sbd_log_limit_take(&limits[admin], 0, more, sizeof more)) return;
    if (admin)
        sbd_log(SB_LOG_WARN, "authentication failed", "kind=admin_token peer=%s in_a_row=%u%s%s",
                x->req->peer ? x->req->peer : "-", run, x->rep->close ? " closed=yes" : "", more);
    else
        sbd_log(SB_LOG_WARN, "authentication failed",
                "kind=api_key account=%s peer=%s in_a_row=%u%s%s", sbd_qn(account),
                x->req->peer ? x->req->peer : "-", run, x->rep->close ? " closed=yes" : "", more);
}

static void auth_ok(ctx *x)
{
    if (x->req->auth_cache) x->req->auth_cache->failures = 0;
}

/* No cache here: every admin request is checked against d->admin_hash, so a
** token replaced on SIGHUP (daemon.c) applies from the next request on, on
** connections already open too. */
static int auth_admin(ctx *x)
{
    const char *h = x->req->authorization;
    if (h && !strncasecmp(h, "Bearer ", 7)) {
        h += 7;
        while (*h == ' ')
            h++;
        unsigned char hash[32];
        crypto_generichash(hash, sizeof hash, (const unsigned char *)h, strlen(h), NULL, 0);
        if (sodium_memcmp(hash, x->d->admin_hash, sizeof hash) == 0) {
            auth_ok(x);
            return 0;
        }
    }
    fail(x, 401, "SB_EAUTH", NULL, "the admin token is required (Authorization: Bearer <token>)");
    if (x->req->authorization) auth_failed(x, 1, NULL);
    add_header(x->rep, "WWW-Authenticate: Bearer realm=\"switchboard\"\r\n");
    return -1;
}

int sbd_auth_basic(sbd *d, const char *h, char *acct, size_t cap)
{
    unsigned char buf[512];
    size_t len = 0;
    int rc = SB_EAUTH;
    if (!strncasecmp(h, "Basic ", 6)) {
        h += 6;
        while (*h == ' ')
            h++;
        if (sodium_base642bin(buf, sizeof buf - 1, h, strlen(h), NULL, &len, NULL,
                              sodium_base64_VARIANT_ORIGINAL) == 0) {
            /* At the last colon: an account id may hold one (ids take ':'), a
            ** key never does, so "acme:eu:sbk_..." is account "acme:eu". */
            unsigned char *colon = memrchr(buf, ':', len);
            size_t al = colon ? (size_t)(colon - buf) : 0;
            if (colon && al > 0 && al < cap && !memchr(buf, 0, al)) {
                memcpy(acct, buf, al);
                acct[al] = 0;
                rc = sb_apikey_verify(d->eng, acct, (const char *)colon + 1, len - al - 1);
            }
        }
    }
    sodium_memzero(buf, sizeof buf);
    return rc;
}

static int auth_account(ctx *x)
{
    const char *h = x->req->authorization;
    int rc = SB_EAUTH;
    /* The connection verified these very credentials lately, and no key or
    ** account changed through this daemon since: skip sb_apikey_verify(). */
    sbd_auth_cache *ac = x->req->auth_cache;
    unsigned char hh[32];
    uint64_t now = 0;
    if (ac && h) {
        crypto_generichash(hh, sizeof hh, (const unsigned char *)h, strlen(h), NULL, 0);
        now = sbd_now_ns();
        if (ac->valid && ac->gen == x->d->auth_gen && now < ac->expires_ns &&
            sodium_memcmp(hh, ac->hash, sizeof hh) == 0) {
            memcpy(x->acct, ac->account, sizeof x->acct);
            x->account = x->acct;
            auth_ok(x);
            return 0;
        }
        ac->valid = 0;
    }
    if (h) rc = sbd_auth_basic(x->d, h, x->acct, sizeof x->acct);
    if (rc == 0) {
        x->account = x->acct;
        auth_ok(x);
        if (ac && h) {
            memcpy(ac->hash, hh, sizeof hh);
            memcpy(ac->account, x->acct, sizeof ac->account);
            ac->gen = x->d->auth_gen;
            ac->expires_ns = now + SBD_AUTH_CACHE_TTL_NS;
            ac->valid = 1;
        }
        return 0;
    }
    if (rc != SB_EAUTH) {
        const char *m = sb_strerror(rc);
        char code[32];
        snprintf(code, sizeof code, "%.*s", (int)strcspn(m, ":"), m);
        fail(x, sbd_api_status(rc), code, NULL, "credentials could not be checked: %s", m);
        return -1;
    }
    fail(x, 401, "SB_EAUTH", NULL,
         "valid account credentials are required (HTTP Basic account_id:api_key)");
    if (h) auth_failed(x, 0, x->acct);
    add_header(x->rep, "WWW-Authenticate: Basic realm=\"switchboard\"\r\n");
    return -1;
}

static const char *const method_names[SBD_NMETHODS] = {"GET",    "PUT",  "POST",
                                                       "DELETE", "HEAD", "OTHER"};

/* Does the route take method m? HEAD wherever GET. */
static int allowed(const struct route *rt, int m)
{
    return m != SBD_OTHER && (rt->h[m] || (m == SBD_HEAD && rt->h[SBD_GET]));
}

/* A request that changes something, sent by a browser from a page of
** another site (its Sec-Fetch-Site): refused, 1. A browser that holds an
** account's Basic login (the 401's WWW-Authenticate asks it for one) sends
** it with any page's form or fetch, and the daemon answers no CORS: such a
** request is a forgery, never a client of the API (Go's net/http
** CrossOriginProtection draws the same line). Gateways and other programs
** send no Sec-Fetch-Site; a browser sends "same-origin" from a page the
** daemon's own origin serves (through a proxy), "none" when its user typed
** the address. */
static int cross_site(ctx *x)
{
    const sbd_req *req = x->req;
    const char *s = req->fetch_site;
    if (!s || req->method == SBD_GET || req->method == SBD_HEAD || !strcasecmp(s, "same-origin") ||
        !strcasecmp(s, "none"))
        return 0;
    fail(x, 403, "HTTP_FORBIDDEN", NULL,
         "a browser sent this %s from a page of another site (Sec-Fetch-Site: %.32s): "
         "changes are taken from programs and from pages of this origin only",
         req->method_name, s);
    return 1;
}

/* What a request's head alone decides: its route, its method (and, for a
** browser's, the site that sent it: cross_site) and its credentials. 0 with x->rt set when the
*request goes on (for an account
** route, x->account set); -1 once it is answered (404, 405, 401...). buf
** holds the decoded path segments x->p point into (as long as the path). */
static int front(ctx *x, char *buf)
{
    const sbd_req *req = x->req;
    sbd_reply *rep = x->rep;
    int ri = find_route(req->path, buf, x);
    if (ri == -2 || ri == -3) {
        fail(x, 400, "HTTP_BAD_REQUEST", NULL, "%s",
             ri == -2 ? "malformed percent-encoding in the path"
                      : "the path may not hold a NUL byte (%00)");
        return -1;
    }
    const struct route *rt = ri >= 0 ? &routes[ri] : NULL;
    rep->route = ri;
    if (!rt) {
        fail(x, 404, "HTTP_NOT_FOUND", NULL, "no route for %s %s", req->method_name, req->path);
        return -1;
    }
    x->rt = rt;
    handler h = rt->h[req->method];
    if (req->method == SBD_OTHER || !h) {
        static const int order[] = {SBD_GET, SBD_HEAD, SBD_PUT, SBD_POST, SBD_DELETE};
        char allow[64] = "";
        for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
            if (allowed(rt, order[i])) {
                if (*allow) strcat(allow, ", ");
                strcat(allow, method_names[order[i]]);
            }
        fail(x, 405, "HTTP_METHOD_NOT_ALLOWED", NULL, "%s is not allowed on %s (allowed: %s)",
             req->method_name, rt->pattern, allow);
        add_header(rep, "Allow: %s\r\n", allow);
        return -1;
    }
    if (cross_site(x)) return -1;
    if (rt->auth == AUTH_ADMIN) return auth_admin(x);
    if (rt->auth == AUTH_ACCOUNT) return auth_account(x);
    return 0;
}

/* HEAD is GET without the body (RFC 9110 9.3.2): it is answered exactly as
** the GET would be, 404, 405 and all, and http.c leaves the body out. GET
** handlers only read (see routes[]), so a HEAD changes nothing, but for an
** access request's entry in the audit log: its head discloses something of
** the person too (Switchboard-Live-Calls, Switchboard-Next, the length), and
** the GET it is answered as is audited, so it is. */
static const sbd_req *as_get(const sbd_req *req, sbd_req *get)
{
    if (req->method != SBD_HEAD) return req;
    *get = *req;
    get->method = SBD_GET;
    get->method_name = "GET"; /* messages name it: the same length as GET's */
    return get;
}

int sbd_api_refuse_head(sbd *d, const sbd_req *req, sbd_reply *rep)
{
    sbd_req get;
    ctx x;
    memset(&x, 0, sizeof x);
    x.d = d;
    x.req = as_get(req, &get);
    x.rep = rep;
    rep->route = -1;
    char *buf = malloc(strlen(req->path) + 1);
    if (!buf) return 0; /* the request itself will say so */
    int refused = front(&x, buf) != 0 || check_query(&x) != 0;
    sbd_free_wiped(buf);
    return refused;
}

void sbd_api_handle(sbd *d, const sbd_req *req, sbd_reply *rep)
{
    sbd_req get;
    req = as_get(req, &get);
    ctx x;
    memset(&x, 0, sizeof x);
    x.d = d;
    x.req = req;
    x.rep = rep;
    rep->route = -1;

    char *buf = malloc(strlen(req->path) + 1);
    if (!buf) {
        fail(&x, sbd_api_status(SB_ENOMEM), "SB_ENOMEM", NULL, "out of memory");
        return;
    }
    if (front(&x, buf)) {
        sbd_free_wiped(buf);
        return;
    }
    const struct route *rt = x.rt;
    handler h = rt->h[req->method];
    /* A JSON body saved with a UTF-8 byte-order mark (an editor's or a
    ** shell's, sent with curl -d @file) reads as it would without it, as
    ** RFC 8259 8.1 lets a parser do and as policy files and the config
    ** are read; a policy's Lua source keeps its own, which the library
    ** reads as it reads a file's. */
    sbd_req nobom;
    size_t bom = sbd_bom(req->body, req->body_len);
    if (bom && (h != h_policy_put || is_json_type(req->content_type))) {
        nobom = *req;
        nobom.body += bom;
        nobom.body_len -= bom;
        x.req = &nobom;
    }
    if (check_query(&x) == 0 && check_no_body(&x) == 0 && check_conditions(&x, h) == 0) {
        /* Events join the loop's engine batch; anything else sees it
        ** committed first. */
        if (h != h_call_offer && h != h_call_event && h != h_agent_status) {
            sbd_batch_close(d);
            /* One of those answers closed the connection: nothing more. */
            if (req->conn_closed && *req->conn_closed) {
                rep->dropped = 1;
                sbd_free_wiped(buf);
                return;
            }
        }
        h(&x);
        /* An admin change (a key created or revoked, an account deleted...):
        ** every connection's cached credentials are checked afresh. */
        if (rt->auth == AUTH_ADMIN && req->method != SBD_GET) {
            d->auth_gen++;
            sbd_stream_recheck(d, 1); /* and every stream's */
        }
    }
    sbd_free_wiped(buf);
}
