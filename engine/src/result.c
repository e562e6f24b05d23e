/*
** result.c — sb_result: the error, actions and document of one engine call.
** Strings handed out through actions live in a block arena whose blocks never
** move, so pointers stay valid until the result is reused or freed.
*/
#include "crypto.h" /* cr_wipe */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    char data[];
} arena_block;

struct sb_result {
    int code;
    sb_buf msg;
    sb_buf field;
    sb_action *acts;
    size_t nacts, capacts;
    arena_block *arena;
    json_t *doc;
    char *json;
    /* A document given as its JSON text (res_doc_text), handed out as it
    ** is: what built it encoded it once, and it is not encoded again. */
    char *text;
    size_t textlen;
    int changed; /* the call committed a change (res_changed) */
};

sb_result *sb_result_new(void)
{
    sb_result *r = calloc(1, sizeof(sb_result));
    /* The message and field may quote an id a caller gave, which may be a
    ** number: grown by a copy, the block before left wiped (sb_buf.wipe),
    ** as sb_result_free wipes the last. */
    if (r) r->msg.wipe = r->field.wipe = 1;
    return r;
}

/* A result may carry what the engine decrypted (an access request's
** numbers and personal attributes, in its document and its JSON text) and
** what a caller gave (ids that may be numbers, in its actions' strings and
** its message): what it lets go, reused or freed, is wiped first. Only what
** was written is wiped (an arena block's used bytes; the message and field
** buffers, reused in place, once when freed), so an event's result, reused
** for the next, pays for the few strings it held. */
static void arena_reset(sb_result *r)
{
    if (!r->arena) return;
    arena_block *b = r->arena->next;
    while (b) {
        arena_block *n = b->next;
        cr_wipe(b->data, b->used);
        free(b);
        b = n;
    }
    cr_wipe(r->arena->data, r->arena->used);
    r->arena->next = NULL;
    r->arena->used = 0;
}

static void json_text_free(char *s)
{
    if (!s) return;
    cr_wipe(s, strlen(s));
    free(s);
}

/* A document's text (res_doc_text: an access request's page, its numbers
** in the clear), wiped as it goes. */
static void doc_text_free(sb_result *r)
{
    if (r->text) cr_wipe(r->text, r->textlen);
    free(r->text);
    r->text = NULL;
    r->textlen = 0;
}

void res_reset(sb_result *r)
{
    if (!r) return;
    r->code = 0;
    r->changed = 0;
    buf_clear(&r->msg);
    buf_clear(&r->field);
    r->nacts = 0;
    arena_reset(r);
    if (r->doc) json_wipe_decref(r->doc);
    r->doc = NULL;
    json_text_free(r->json);
    r->json = NULL;
    doc_text_free(r);
}

/* A buffer wiped to its capacity: a longer message before the last one
** left its tail past the length. */
static void buf_wipe_free(sb_buf *b)
{
    if (b->p) cr_wipe(b->p, b->cap);
    buf_free(b);
}

void sb_result_free(sb_result *r)
{
    if (!r) return;
    res_reset(r);
    free(r->arena);
    free(r->acts);
    buf_wipe_free(&r->msg);
    buf_wipe_free(&r->field);
    free(r);
}

int res_no_such(sb_result *r, const char *field, const char *what, const char *id)
{
    if (id && id_valid(id)) return res_err(r, SB_ENOTFOUND, field, "no such %s '%s'", what, id);
    return res_err(r, SB_ENOTFOUND, field, "no such %s: the id given is not one (" ID_RULE ")",
                   what);
}

int res_queue_empty(sb_result *r)
{
    return res_err(r, SB_EINVAL, "queue",
                   "'queue' is empty: give a queue id, or leave it out for every queue");
}

int res_err(sb_result *r, int code, const char *field, const char *fmt, ...)
{
    if (!r) return code;
    r->code = code;
    buf_clear(&r->msg);
    va_list ap;
    char tmp[1024];
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof tmp) utf8_cut_end(tmp); /* cut between characters, not in one */
    utf8_clean(tmp);
    buf_puts(&r->msg, tmp);
    /* The message may quote an id a caller gave, which may be a number: no
    ** copy of it left on the stack (the message's buffer is wiped when it
    ** grows and when the result is freed). Only what was written. */
    cr_wipe(tmp, n >= 0 && (size_t)n < sizeof tmp ? (size_t)n + 1 : sizeof tmp);
    /* The field r has already (sb_result_field(r), a message wrapped in
    ** another): kept, not cleared under itself. */
    if (field && field == r->field.p) return code;
    buf_clear(&r->field);
    if (field) {
        /* A field may be a path built from a document's keys (and cut to
        ** fit): it goes out as a JSON string, so it must be UTF-8. */
        buf_puts(&r->field, field);
        if (r->field.p) utf8_clean(r->field.p);
    }
    return code;
}

const char *res_str(sb_result *r, const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    arena_block *b = r->arena;
    while (b && b->cap - b->used < n)
        b = b->next;
    if (!b) {
        size_t cap = n > 4000 ? n : 4000;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->used = 0;
        b->cap = cap;
        if (r->arena) {
            b->next = r->arena->next;
            r->arena->next = b;
        } else {
            b->next = NULL;
            r->arena = b;
        }
    }
    char *p = b->data + b->used;
    memcpy(p, s, n);
    b->used += n;
    utf8_clean(p);
    return p;
}

sb_action *res_action(sb_result *r, sb_action_type type)
{
    if (!r) return NULL;
    if (r->nacts == r->capacts) {
        size_t cap = r->capacts ? r->capacts * 2 : 8;
        sb_action *a = realloc(r->acts, cap * sizeof *a);
        if (!a) return NULL;
        r->acts = a;
        r->capacts = cap;
    }
    sb_action *a = &r->acts[r->nacts++];
    memset(a, 0, sizeof *a);
    a->type = type;
    return a;
}

void res_truncate(sb_result *r, size_t mark)
{
    if (r && mark < r->nacts) r->nacts = mark;
}

void res_clear_error(sb_result *r)
{
    if (!r) return;
    r->code = 0;
    buf_clear(&r->msg);
    buf_clear(&r->field);
}

/* The result's document, as a JSON value or as its text (the other NULL);
** both are the result's from here on, and what it had is dropped. */
static void set_doc(sb_result *r, json_t *doc, char *text, size_t len)
{
    if (!r) {
        json_decref(doc);
        free(text);
        return;
    }
    if (r->doc) json_wipe_decref(r->doc);
    doc_text_free(r);
    r->doc = doc;
    r->text = text;
    r->textlen = len;
}

void res_doc(sb_result *r, json_t *doc)
{
    set_doc(r, doc, NULL, 0);
}

void res_doc_text(sb_result *r, char *text, size_t len)
{
    set_doc(r, NULL, text, len);
}

json_t *res_get_doc(sb_result *r)
{
    return r ? r->doc : NULL;
}

int sb_result_code(const sb_result *r)
{
    return r ? r->code : SB_EINVAL;
}

int sb_result_changed(const sb_result *r)
{
    return r && r->changed;
}

void res_changed(sb_result *r)
{
    if (r) r->changed = 1;
}

const char *sb_result_message(const sb_result *r)
{
    return r && r->msg.p ? r->msg.p : "";
}

const char *sb_result_field(const sb_result *r)
{
    return r && r->field.len ? r->field.p : NULL;
}

size_t sb_result_count(const sb_result *r)
{
    return r ? r->nacts : 0;
}

const sb_action *sb_result_action(const sb_result *r, size_t i)
{
    return r && i < r->nacts ? &r->acts[i] : NULL;
}

static const char *const act_names[] = {NULL,       "ring", "cancel", "connect", "reject",
                                        "overflow", "wait", "end",    "agent"};

/* An action's string fields, in the order its JSON lists them. */
static const struct {
    const char *key;
    size_t off;
} act_strs[] = {
    {"account", offsetof(sb_action, account)}, {"call", offsetof(sb_action, call_id)},
    {"agent", offsetof(sb_action, agent_id)},  {"device", offsetof(sb_action, device)},
    {"uri", offsetof(sb_action, uri)},         {"queue", offsetof(sb_action, queue_id)},
    {"reason", offsetof(sb_action, reason)},   {"status", offsetof(sb_action, status)},
};

static const char *act_str(const sb_action *a, size_t i)
{
    return *(const char *const *)((const char *)a + act_strs[i].off);
}

static const char *act_type(const sb_action *a)
{
    return a->type < countof(act_names) && act_names[a->type] ? act_names[a->type] : "unknown";
}

/* An action's number fields, in the order its JSON lists them: 1 and *v
** when field i is there (a ring's timeout always, its attempt and a wait's
** due_ms when set), else 0. One list for both writers below. */
static const char *const act_nums[] = {"timeout", "attempt", "due_ms"};

static int act_num(const sb_action *a, size_t i, long long *v)
{
    switch (i) {
    case 0:
        *v = a->timeout_s;
        return a->type == SB_ACT_RING;
    case 1:
        *v = a->attempt;
        return a->type == SB_ACT_RING && a->attempt;
    default:
        *v = a->due_ms;
        return a->type == SB_ACT_WAIT && a->due_ms;
    }
}

static json_t *action_to_json(const sb_action *a)
{
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string(act_type(a)));
    for (size_t i = 0; i < countof(act_strs); i++)
        if (act_str(a, i)) json_object_set_new(o, act_strs[i].key, json_string(act_str(a, i)));
    long long v;
    for (size_t i = 0; i < countof(act_nums); i++)
        if (act_num(a, i, &v)) json_object_set_new(o, act_nums[i], json_integer(v));
    return o;
}

/* o as compact JSON text, malloc'd (NULL: no memory). Not json_dumps: it
** builds the text in buffers it grows and frees as they were, the numbers
** of an access request's answer in them. Here the text is made once into a
** buffer on the stack, which is wiped, and again only when it is larger. */
static char *json_text(const json_t *o)
{
    const size_t flags = JSON_COMPACT | JSON_ENSURE_ASCII | SB_JSON_REALS;
    char first[4096];
    size_t n = json_dumpb(o, first, sizeof first, flags);
    char *s = n ? malloc(n + 1) : NULL;
    if (s && n <= sizeof first)
        memcpy(s, first, n);
    else if (s && json_dumpb(o, s, n, flags) != n) {
        cr_wipe(s, n);
        free(s);
        s = NULL;
    }
    cr_wipe(first, n < sizeof first ? n : sizeof first);
    if (s) s[n] = 0;
    return s;
}

const char *sb_result_json(sb_result *r, size_t *len)
{
    static const char oom[] =
        "{\"error\":{\"code\":\"SB_ENOMEM\",\"message\":\"out of memory\",\"field\":null}}";
    static const char nores[] =
        "{\"error\":{\"code\":\"SB_EINVAL\",\"message\":\"no result\",\"field\":null}}";
    if (!r) {
        if (len) *len = sizeof nores - 1;
        return nores;
    }
    json_text_free(r->json);
    r->json = NULL;
    if (!r->code && r->text && !r->nacts) {
        if (len) *len = r->textlen;
        return r->text;
    }
    json_t *o;
    if (r->code) {
        json_t *e = json_object();
        json_object_set_new(e, "code", json_string(sb_code_name(r->code)));
        json_object_set_new(e, "message", json_string(r->msg.p ? r->msg.p : ""));
        json_object_set_new(e, "field", r->field.len ? json_string(r->field.p) : json_null());
        o = json_object();
        json_object_set_new(o, "error", e);
    } else {
        o = r->doc && json_is_object(r->doc) ? json_copy(r->doc) : json_object();
        if (r->doc && !json_is_object(r->doc)) json_object_set(o, "data", r->doc);
        if (r->nacts || !r->doc) {
            json_t *arr = json_array();
            for (size_t i = 0; i < r->nacts; i++)
                json_array_append_new(arr, action_to_json(&r->acts[i]));
            json_object_set_new(o, "actions", arr);
        }
    }
    r->json = json_text(o);
    json_wipe_decref(o); /* the strings it holds of its own: the actions', the message */
    if (!r->json) {
        if (len) *len = sizeof oom - 1;
        return oom;
    }
    if (len) *len = strlen(r->json);
    return r->json;
}

/* Name and full message of every code; sb_strerror returns the latter. */
#define SB_ERR(code, name, msg)                                                                    \
    {                                                                                              \
        code, name, name ": " msg                                                                  \
    }
static const struct {
    int code;
    const char *name, *full;
} errs[] = {
    SB_ERR(SB_OK, "SB_OK", "success"),
    SB_ERR(SB_EINVAL, "SB_EINVAL", "invalid argument"),
    SB_ERR(SB_ENOTFOUND, "SB_ENOTFOUND", "not found"),
    SB_ERR(SB_EEXIST, "SB_EEXIST", "already exists"),
    SB_ERR(SB_ESTATE, "SB_ESTATE", "not valid in the current state"),
    SB_ERR(SB_EPOLICY, "SB_EPOLICY", "policy failed"),
    SB_ERR(SB_EFULL, "SB_EFULL", "storage full"),
    SB_ERR(SB_ESTORE, "SB_ESTORE", "storage error"),
    SB_ERR(SB_ENOMEM, "SB_ENOMEM", "out of memory"),
    SB_ERR(SB_EBUSY, "SB_EBUSY", "busy"),
    SB_ERR(SB_EAUTH, "SB_EAUTH", "authentication failed"),
    SB_ERR(SB_ELIMIT, "SB_ELIMIT", "limit reached"),
    SB_ERR(SB_ECRYPTO, "SB_ECRYPTO", "key or sealed data unusable"),
    SB_ERR(SB_EVERSION, "SB_EVERSION", "data written by a newer version"),
    SB_ERR(SB_EHOLD, "SB_EHOLD", "under legal hold"),
};

const char *sb_code_name(int err)
{
    for (size_t i = 0; i < countof(errs); i++)
        if (errs[i].code == err) return errs[i].name;
    return "SB_E?";
}

const char *sb_strerror(int err)
{
    for (size_t i = 0; i < countof(errs); i++)
        if (errs[i].code == err) return errs[i].full;
    return "SB_E?: unknown error";
}

const char *sb_version(void)
{
    return SB_VERSION_STRING;
}

/* sb_action_json writes its text directly (the daemon sends every action
** through it): byte for byte what jansson prints with JSON_COMPACT |
** JSON_ENSURE_ASCII, which sb_result_json uses. Output goes to a buffer of
** cap bytes and is counted past it, as snprintf does; like snprintf, a text
** cut short ends in a NUL at buf[cap - 1], so that a caller printing a
** fixed buffer never reads past it. */
typedef struct sink {
    char *buf;
    size_t cap, len;
} sink;

static void sk_put(sink *k, const char *s, size_t n)
{
    if (k->len < k->cap) {
        size_t room = k->cap - k->len;
        memcpy(k->buf + k->len, s, n < room ? n : room);
    }
    k->len += n;
}

static void sk_str(sink *k, const char *s)
{
    sk_put(k, s, strlen(s));
}

/* A JSON string as jansson escapes it: the short escapes, other control
** bytes and everything past ASCII as \uXXXX (upper-case hex, surrogate
** pairs past U+FFFF). The caller checked that s is valid UTF-8. */
static void sk_json_string(sink *k, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    sk_put(k, "\"", 1);
    while (*p) {
        const unsigned char *run = p;
        while (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        sk_put(k, (const char *)run, (size_t)(p - run));
        if (!*p) break;
        unsigned c = *p;
        char esc[16];
        const char *e = c == '"'    ? "\\\""
                        : c == '\\' ? "\\\\"
                        : c == '\b' ? "\\b"
                        : c == '\f' ? "\\f"
                        : c == '\n' ? "\\n"
                        : c == '\r' ? "\\r"
                        : c == '\t' ? "\\t"
                                    : NULL;
        if (e) {
            sk_str(k, e);
            p++;
            continue;
        }
        size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        uint32_t cp = len == 1 ? c : c & (0x7fu >> len);
        for (size_t i = 1; i < len; i++)
            cp = (cp << 6) | (p[i] & 0x3fu);
        p += len;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            snprintf(esc, sizeof esc, "\\u%04X\\u%04X", 0xd800 | (cp >> 10), 0xdc00 | (cp & 0x3ff));
        } else {
            snprintf(esc, sizeof esc, "\\u%04X", cp);
        }
        sk_str(k, esc);
    }
    sk_put(k, "\"", 1);
}

size_t sb_action_json(const sb_action *a, char *buf, size_t cap)
{
    if (!a) return 0;
    sink k = {buf, buf ? cap : 0, 0};
    char num[32];
    sk_str(&k, "{\"type\":\"");
    sk_str(&k, act_type(a));
    sk_put(&k, "\"", 1);
    for (size_t i = 0; i < countof(act_strs); i++) {
        const char *v = act_str(a, i);
        if (!v || !utf8_valid(v)) continue; /* as jansson: no string, no field */
        sk_put(&k, ",\"", 2);
        sk_str(&k, act_strs[i].key);
        sk_put(&k, "\":", 2);
        sk_json_string(&k, v);
    }
    long long v;
    for (size_t i = 0; i < countof(act_nums); i++)
        if (act_num(a, i, &v)) {
            snprintf(num, sizeof num, ",\"%s\":%lld", act_nums[i], v);
            sk_str(&k, num);
        }
    sk_put(&k, "}", 1);
    if (k.cap) buf[k.len < k.cap ? k.len : k.cap - 1] = 0;
    return k.len;
}
