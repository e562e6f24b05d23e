/*
** policytest.c — the policy author's tools: pol_validate (what a reload
** runs before it swaps), sb_policy_check (compile and lint) and
** sb_policy_test (scenario cases, see policies/README.md).
**
** The lint reads the compiled chunk (lua_dump of our own compile, parsed
** here) instead of re-parsing Lua: the compiler has already resolved every
** name, so a global is exactly a GETTABUP/SETTABUP on the _ENV upvalue, at
** the line the debug info gives. The dump format is the one of the Lua
** release we link (5.4).
*/
#include "jsonv.h"
#include "sandbox.h"
#include "schedule.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CASE_NOW_DEFAULT 1767261600.0

/* The engine's limits as given (0: no limit), or the defaults of
** sb_config_init when there is no engine (the author's tools). */
pol_limits pol_limits_of(const sb_config *cfg)
{
    uint64_t ins =
        cfg->policy_instructions > UINT64_MAX / 10 ? UINT64_MAX / 10 : cfg->policy_instructions;
    return (pol_limits){.instructions = ins,
                        .wall_ms = cfg->policy_wall_ms,
                        .memory = cfg->policy_memory,
                        .quarantine_after = cfg->quarantine_after,
                        .load_instructions = ins * 10};
}

static void limits_or_default(const pol_limits *in, pol_limits *out)
{
    pol_limits l = {.instructions = SBX_DEF_INSTRUCTIONS,
                    .wall_ms = SBX_DEF_WALL_MS,
                    .memory = SBX_DEF_MEMORY,
                    .quarantine_after = SBX_DEF_QUARANTINE};
    if (in) l = *in;
    if (!l.load_instructions) l.load_instructions = sbx_load_instructions(l.instructions);
    *out = l;
}

/* "dir/name.lua" or "name" -> "dir/name" (the chunk is "<name>.lua"). */
static void base_name(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s", name && *name ? name : "policy");
    size_t n = strlen(out);
    if (n > 4 && strcmp(out + n - 4, ".lua") == 0) out[n - 4] = 0;
}

/* ------------------------------------------------------------------------ */
/* Scenario cases */

typedef struct logcap {
    json_t *lines; /* of the case running now, or NULL */
} logcap;

static void cap_log(void *arg, sb_log_level lvl, const log_text *line)
{
    logcap *c = arg;
    if (c->lines && json_array_size(c->lines) < 100)
        json_array_append_new(c->lines, json_string(line->s));
}

/* The fake store of a case run holds what the engine's store holds: typed
** values under keys of any bytes (1..64 of them; strings up to 1 KiB of any
** bytes, non-finite numbers included), so ctx.get reads back exactly what
** ctx.set wrote, in this case and the ones after it.
**
** Cases write "store" and "expect_store" as JSON, and the report shows the
** store as JSON, so keys and strings have a text form: bytes that are UTF-8
** without a zero byte or a backslash as they are; any other string with
** each backslash doubled and each zero byte, and each byte that does not
** belong to a well-formed UTF-8 sequence, as \xHH. Reading the text form,
** \\ and \xHH stand for their bytes and any other backslash for itself, so
** a store the author writes by hand needs no escapes but these. */
typedef struct fkv {
    char key[SBX_KV_KEY_MAX];
    size_t klen;
    char type; /* 's', 'b', 'i', 'n' as in pol_kv */
    char *val;
    size_t vlen;
} fkv;

typedef struct fstore {
    fkv *e;
    size_t n, cap;
} fstore;

static void fs_clear(fstore *fs)
{
    for (size_t i = 0; i < fs->n; i++)
        free(fs->e[i].val);
    free(fs->e);
    memset(fs, 0, sizeof *fs);
}

static fkv *fs_find(const fstore *fs, const char *key, size_t klen)
{
    for (size_t i = 0; i < fs->n; i++)
        if (fs->e[i].klen == klen && memcmp(fs->e[i].key, key, klen) == 0) return &fs->e[i];
    return NULL;
}

/* type 0 deletes. The engine's limits, and its SB_EINVAL past them. */
static int fs_put(fstore *fs, const char *key, size_t klen, char type, const void *val, size_t vlen)
{
    if (klen == 0 || klen > SBX_KV_KEY_MAX || vlen > SBX_KV_VAL_MAX) return SB_EINVAL;
    fkv *e = fs_find(fs, key, klen);
    if (!type) {
        if (e) {
            free(e->val);
            *e = fs->e[--fs->n];
        }
        return 0;
    }
    char *copy = malloc(vlen ? vlen : 1);
    if (!copy) return SB_ENOMEM;
    if (vlen) memcpy(copy, val, vlen);
    if (!e) {
        if (fs->n == fs->cap) {
            size_t cap = fs->cap ? fs->cap * 2 : 16;
            fkv *ne = realloc(fs->e, cap * sizeof *ne);
            if (!ne) {
                free(copy);
                return SB_ENOMEM;
            }
            fs->e = ne;
            fs->cap = cap;
        }
        e = &fs->e[fs->n++];
        memcpy(e->key, key, klen);
        e->klen = klen;
        e->val = NULL;
    }
    free(e->val);
    e->val = copy;
    e->vlen = vlen;
    e->type = type;
    return 0;
}

static int fake_get(void *arg, const char *key, size_t klen, char *type, sb_buf *val)
{
    const fkv *e = fs_find(arg, key, klen);
    if (!e) return 0;
    buf_clear(val);
    *type = e->type;
    return buf_put(val, e->val, e->vlen) ? SB_ENOMEM : 1;
}

static int fake_set(void *arg, const char *key, size_t klen, char type, const void *val,
                    size_t vlen)
{
    if ((type == 'i' || type == 'n') && vlen != 8) return SB_EINVAL;
    return fs_put(arg, key, klen, type, val, vlen);
}

/* The engine's limit on the keys of a store holds in cases too. */
static long fake_room(void *arg)
{
    const fstore *fs = arg;
    return fs->n >= POL_KV_KEYS_MAX ? 0 : (long)(POL_KV_KEYS_MAX - fs->n);
}

/* Bytes of the well-formed UTF-8 sequence at p (at most left bytes), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
    unsigned c = p[0], cp, min;
    size_t n;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0)
        n = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (left < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3Fu);
    }
    return cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ? 0 : n;
}

/* The text form of len bytes at s, as a JSON string (NULL: out of memory). */
static json_t *text_form(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n;
    while (i < len && p[i] && p[i] != '\\' && (n = utf8_seq(p + i, len - i)))
        i += n;
    if (i == len) return json_stringn(s, len);
    sb_buf b = {0};
    int err = 0;
    for (i = 0; i < len && !err; i += n) {
        n = p[i] ? utf8_seq(p + i, len - i) : 0;
        if (p[i] == '\\')
            err = buf_puts(&b, "\\\\");
        else if (n)
            err = buf_put(&b, p + i, n);
        else
            err = buf_printf(&b, "\\x%02X", p[i]), n = 1;
    }
    json_t *j = err ? NULL : json_stringn(b.p ? b.p : "", b.len);
    buf_free(&b);
    return j;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* The bytes a text form stands for, into out (at least len bytes). */
static size_t from_text(const char *s, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\' && i + 1 < len && s[i + 1] == '\\') {
            out[o++] = '\\';
            i++;
        } else if (s[i] == '\\' && i + 3 < len && s[i + 1] == 'x' && hexval(s[i + 2]) >= 0 &&
                   hexval(s[i + 3]) >= 0) {
            out[o++] = (char)(hexval(s[i + 2]) << 4 | hexval(s[i + 3]));
            i += 3;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

/* A store written as JSON ("store", "expect_store": what) into fs. A null
** value is a key not set, or with nan_for_null (expect_store: the report
** shows a number that is not finite as null) a NaN. 0, or -1 with why set. */
static int fs_from_json(fstore *fs, json_t *obj, const char *what, int nan_for_null, char *why,
                        size_t cap)
{
    const char *k;
    size_t kl;
    json_t *v;
    if (!json_is_object(obj)) return snprintf(why, cap, "%s: expected an object", what), -1;
    json_object_keylen_foreach(obj, k, kl, v)
    {
        char key[SBX_KV_KEY_MAX * 4 + 1], num[8], *sv = NULL;
        const void *val = num;
        size_t klen = kl <= sizeof key ? from_text(k, kl, key) : kl, vlen = 8;
        char type;
        if (json_is_null(v) && !nan_for_null) continue;
        if (klen == 0 || klen > SBX_KV_KEY_MAX) {
            snprintf(why, cap, "%s: a key must be 1..%d bytes (\"%.*s\")", what, SBX_KV_KEY_MAX,
                     (int)(kl < 80 ? kl : 80), k);
            return -1;
        }
        if (json_is_string(v)) {
            type = 's';
            sv = malloc(json_string_length(v) + 1);
            if (!sv) return snprintf(why, cap, "out of memory"), -1;
            vlen = from_text(json_string_value(v), json_string_length(v), sv);
            val = sv;
        } else if (json_is_boolean(v)) {
            type = 'b';
            num[0] = (char)json_is_true(v);
            vlen = 1;
        } else if (json_is_integer(v)) {
            type = 'i';
            put_le64(num, (uint64_t)(int64_t)json_integer_value(v));
        } else if (json_is_real(v) || json_is_null(v)) {
            double x = json_is_null(v) ? NAN : json_real_value(v);
            uint64_t u;
            memcpy(&u, &x, 8);
            type = 'n';
            put_le64(num, u);
        } else {
            snprintf(why, cap, "%s.%s: expected a string, number, boolean or null", what, k);
            return -1;
        }
        int rc = fs_put(fs, key, klen, type, val, vlen);
        free(sv);
        if (rc == SB_EINVAL)
            return snprintf(why, cap, "%s.%s: longer than %d bytes", what, k, SBX_KV_VAL_MAX), -1;
        if (rc) return snprintf(why, cap, "out of memory"), -1;
    }
    return 0;
}

static double fkv_number(const fkv *e)
{
    uint64_t u = get_le64(e->val);
    double x;
    if (e->type == 'i') return (double)(int64_t)u;
    memcpy(&x, &u, 8);
    return x;
}

/* The store as the report shows it (a non-finite number shows as null). */
static json_t *fs_to_json(const fstore *fs)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < fs->n; i++) {
        const fkv *e = &fs->e[i];
        json_t *k = text_form(e->key, e->klen), *v = NULL;
        double x = e->type == 'n' ? fkv_number(e) : 0;
        if (e->type == 's')
            v = text_form(e->val, e->vlen);
        else if (e->type == 'b')
            v = json_boolean(e->vlen && e->val[0]);
        else if (e->type == 'i')
            v = json_integer((json_int_t)(int64_t)get_le64(e->val));
        else
            v = isfinite(x) ? json_real(x) : json_null();
        if (!k || !v || json_object_setn_new(o, json_string_value(k), json_string_length(k), v)) {
            if (!k) json_decref(v);
            json_decref(o);
            o = NULL;
        }
        json_decref(k);
    }
    return o;
}

/* The same keys with the same values, where 1 and 1.0 are the same number
** and numbers that are not finite are all alike. */
static int fs_same(const fstore *a, const fstore *b)
{
    if (a->n != b->n) return 0;
    for (size_t i = 0; i < a->n; i++) {
        const fkv *x = &a->e[i], *y = fs_find(b, x->key, x->klen);
        if (!y) return 0;
        int xnum = x->type == 'i' || x->type == 'n', ynum = y->type == 'i' || y->type == 'n';
        if (xnum && ynum) {
            double xn = fkv_number(x), yn = fkv_number(y);
            if (x->type == 'i' && y->type == 'i' ? get_le64(x->val) != get_le64(y->val)
                                                 : xn != yn && (isfinite(xn) || isfinite(yn)))
                return 0;
        } else if (x->type != y->type || x->vlen != y->vlen ||
                   (x->vlen && memcmp(x->val, y->val, x->vlen) != 0)) {
            return 0;
        }
    }
    return 1;
}

/* Deep equality where 1 and 1.0 are the same number. */
static int same(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) return json_number_value(a) == json_number_value(b);
    if (json_typeof(a) != json_typeof(b)) return 0;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b)) return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same(json_array_get(a, i), json_array_get(b, i))) return 0;
        return 1;
    }
    if (json_is_object(a)) {
        const char *k;
        json_t *v;
        if (json_object_size(a) != json_object_size(b)) return 0;
        json_object_foreach((json_t *)a, k, v)
        {
            json_t *w = json_object_get(b, k);
            if (!w || !same(v, w)) return 0;
        }
        return 1;
    }
    return json_equal((json_t *)a, (json_t *)b);
}

/* Everything one case needs, built from its JSON and freed after it. */
typedef struct cbuild {
    pol_call call;
    pol_queue q;
    pol_cand *cands;
    size_t n;
    char **configs;
    json_t *queues; /* the case's "queues" (borrowed), or NULL */
    const char **tried_ids;
    int *tried_n;
    char *attrs;
    int64_t now_ms;
    uint64_t seed;
    char err[300];
} cbuild;

static void cb_free(cbuild *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->configs ? b->configs[i] : NULL);
    free(b->configs);
    free(b->cands);
    free(b->tried_ids);
    free(b->tried_n);
    free(b->attrs);
}

__attribute__((format(printf, 2, 3))) static int cb_bad(cbuild *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err, sizeof b->err, fmt, ap);
    va_end(ap);
    return -1;
}

/* Every key of o is one of allowed (NULL-terminated); else "unknown field
** 'idel_for' (did you mean 'idle_for'?)", the hint the key of near_in
** (allowed when NULL) it is most likely a typo of, by the rule the views'
** and decisions' unknown fields get theirs (sbx_suggest_in). */
static int only_keys_near(cbuild *b, json_t *o, const char *what, const char *const *allowed,
                          const char *const *near_in)
{
    const char *k;
    json_t *v;
    if (!near_in) near_in = allowed;
    int nn = 0;
    while (near_in[nn])
        nn++;
    json_object_foreach(o, k, v)
    {
        const char *const *a = allowed;
        while (*a && strcmp(*a, k) != 0)
            a++;
        if (*a) continue;
        const char *near = sbx_suggest_in(k, strlen(k), near_in, NULL, nn);
        return cb_bad(b, "%s: unknown field '%s'%s%s%s", what, k, near ? " (did you mean '" : "",
                      near ? near : "", near ? "'?)" : "");
    }
    return 0;
}

/* only_keys_near, the hint from allowed itself. */
static int only_keys(cbuild *b, json_t *o, const char *what, const char *const *allowed)
{
    return only_keys_near(b, o, what, allowed, NULL);
}

/* What a case's value is, for "got ..." (strings quoted, cut short at a
** character's start, control bytes shown as '?': the report prints it on a
** line of its own). */
static const char *jgot(const json_t *v, char *buf, size_t cap)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v), m = n > 40 ? 40 : n, o = 0;
        while (m < n && m > 0 && ((unsigned char)s[m] & 0xC0) == 0x80)
            m--; /* not inside a UTF-8 sequence */
        char t[48];
        for (size_t i = 0; i < m && o + 1 < sizeof t; i++)
            t[o++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
        t[o] = 0;
        snprintf(buf, cap, "'%s%s'", t, m < n ? "..." : "");
    } else if (json_is_integer(v))
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, cap, "%.14g", json_real_value(v));
    else
        snprintf(buf, cap, "%s",
                 json_is_true(v)     ? "true"
                 : json_is_false(v)  ? "false"
                 : json_is_array(v)  ? "a list"
                 : json_is_object(v) ? "an object"
                                     : "null");
    return buf;
}

static int num_of(cbuild *b, json_t *o, const char *k, const char *what, double def, double *out)
{
    char g[64];
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_number(v))
        return cb_bad(b, "%s.%s: expected a number, got %s", what, k, jgot(v, g, sizeof g));
    *out = json_number_value(v);
    /* Seconds and weights: anything past ~30,000 years is a mistake, and
    ** would overflow the millisecond arithmetic. */
    if (!(fabs(*out) <= 1e12)) return cb_bad(b, "%s.%s: out of range", what, k);
    return 0;
}

/* A case's time (now, request.received): Unix seconds, as the policy sees
** them. One written in milliseconds, as the API gives times, is past ~30,000
** years: refused saying which unit is wanted. */
static int time_of(cbuild *b, json_t *o, const char *k, const char *what, double def, double *out)
{
    json_t *v = json_object_get(o, k);
    if (json_is_number(v) && fabs(json_number_value(v)) > 1e12)
        return cb_bad(b, "%s.%s: expected Unix seconds, got %.0f (milliseconds? divide by 1000)",
                      what, k, json_number_value(v));
    return num_of(b, o, k, what, def, out);
}

static int int_of(cbuild *b, json_t *o, const char *k, const char *what, long long def,
                  long long *out)
{
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    double x = json_is_number(v) ? json_number_value(v) : NAN;
    char g[64];
    if (!(x == floor(x)) || fabs(x) > 9e15)
        return cb_bad(b, "%s.%s: expected an integer, got %s", what, k, jgot(v, g, sizeof g));
    *out = (long long)x;
    return 0;
}

static int str_of(cbuild *b, json_t *o, const char *k, const char *what, const char *def,
                  const char **out)
{
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    char g[64];
    if (!json_is_string(v))
        return cb_bad(b, "%s.%s: expected a string, got %s", what, k, jgot(v, g, sizeof g));
    *out = json_string_value(v);
    return 0;
}

/* A number (num_of) of at least lo; with above, more than lo. */
static int num_min(cbuild *b, json_t *o, const char *k, const char *what, double def, double lo,
                   int above, double *out)
{
    if (num_of(b, o, k, what, def, out)) return -1;
    if (above ? *out > lo : *out >= lo) return 0;
    if (lo == 0)
        return cb_bad(b, "%s.%s: expected %s (got %g)", what, k,
                      above ? "more than 0" : "0 or more", *out);
    return cb_bad(b, "%s.%s: expected %g or more (got %g)", what, k, lo, *out);
}

/* An integer (int_of) in lo..hi (hi < 0: no upper bound). */
static int int_range(cbuild *b, json_t *o, const char *k, const char *what, long long def,
                     long long lo, long long hi, long long *out)
{
    if (int_of(b, o, k, what, def, out)) return -1;
    if (*out >= lo && (hi < 0 || *out <= hi)) return 0;
    /* A bound that is only the width of the engine's field is not worth
    ** naming to someone below the lower one. */
    if (*out < lo && (hi < 0 || hi > 1000000))
        return cb_bad(b, "%s.%s: expected %lld or more (got %lld)", what, k, lo, *out);
    return cb_bad(b, "%s.%s: expected %lld..%lld (got %lld)", what, k, lo, hi, *out);
}

/* A field path as the engine's validators write it ("schedule[0].days[2]")
** with each index counted from 1, as the case runner counts agents. */
static void from_one(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    while (*in && o + 24 < cap) {
        if (*in == '[' && in[1] >= '0' && in[1] <= '9') {
            char *end;
            unsigned long long n = strtoull(in + 1, &end, 10);
            if (*end == ']') {
                o += (size_t)snprintf(out + o, cap - o, "[%llu]", n + 1);
                in = end + 1;
                continue;
            }
        }
        out[o++] = *in++;
    }
    out[o] = 0;
}

/* What sb_agent_put would refuse in the agent's document, so that a case
** cannot describe an agent no engine holds (a schedule with a typo would
** otherwise read as an agent never on schedule). */
static int check_agent_doc(cbuild *b, json_t *a, const char *what, unsigned devices)
{
    const char *k;
    json_t *v;
    json_t *name = json_object_get(a, "name");
    if (name && !json_is_string(name)) return cb_bad(b, "%s.name: expected a string", what);
    json_t *sk = json_object_get(a, "skills");
    if (sk && !json_is_object(sk))
        return cb_bad(b, "%s.skills: expected an object of levels (skill -> 0..100)", what);
    if (json_object_size(sk) > SB_SKILLS_MAX)
        return cb_bad(b, "%s.skills: at most %d skills", what, SB_SKILLS_MAX);
    json_object_foreach(sk, k, v)
    {
        double x = json_is_integer(v) ? (double)json_integer_value(v) : -1;
        if (!*k || strlen(k) > 64) return cb_bad(b, "%s.skills: skill names are 1..64 bytes", what);
        if (x < 0 || x > 100)
            return cb_bad(b, "%s.skills.%s: expected a level, an integer 0..100", what, k);
    }
    json_t *pref = json_object_get(a, "preferences");
    if (pref && !json_is_object(pref)) return cb_bad(b, "%s.preferences: expected an object", what);
    json_t *pd = json_object_get(pref, "device");
    if (pd) {
        const char *dn = json_string_value(pd);
        int bit = dn ? pol_dev_parse(dn) : 0;
        if (!bit || !(devices & (unsigned)bit))
            return cb_bad(b, "%s.preferences.device: '%s' is not one of the agent's devices", what,
                          dn ? dn : "(not a string)");
    }
    json_t *tz = json_object_get(a, "timezone");
    if (json_is_null(tz)) tz = NULL; /* UTC, as sb_agent_put takes it */
    if (tz && !json_is_string(tz)) return cb_bad(b, "%s.timezone: expected a string", what);
    if (tz && !tz_valid(json_string_value(tz)))
        return cb_bad(b, "%s.timezone: '%s' is not a known IANA zone name", what,
                      json_string_value(tz));
    json_t *sch = json_object_get(a, "schedule");
    char err[256], field[128], field1[160];
    if (sch && !json_is_null(sch) &&
        sched_validate(sch, tz ? json_string_value(tz) : NULL, err, sizeof err, field,
                       sizeof field)) {
        from_one(field, field1, sizeof field1);
        return cb_bad(b, "%s.%s: %s", what, field1, err);
    }
    return 0;
}

static int build_agent(cbuild *b, json_t *a, size_t i, pol_cand *c)
{
    static const char *const keys[] = {
        "id",        "name",    "idle_for",    "calls_taken", "talk_time",     "no_answers",
        "last_call", "weight",  "tier",        "position",    "member_weight", "penalty",
        "skills",    "devices", "preferences", "timezone",    "schedule",      "missed_for",
        NULL};
    char what[32];
    snprintf(what, sizeof what, "agents[%zu]", i + 1);
    if (!json_is_object(a)) return cb_bad(b, "%s: expected an object", what);
    if (only_keys(b, a, what, keys)) return -1;
    const char *id = NULL;
    if (str_of(b, a, "id", what, NULL, &id)) return -1;
    if (!id || !id_valid(id)) return cb_bad(b, "%s.id: expected an agent id", what);
    double idle = 0, talk = 0, last = 0, weight = 1, mweight = 1, missed = -1;
    long long calls = 0, noans = 0, tier = 1, pos = 1, pen = 0;
    /* The ranges the engine's documents and statistics can hold. */
    if (num_min(b, a, "idle_for", what, 0, 0, 0, &idle) ||
        num_min(b, a, "talk_time", what, 0, 0, 0, &talk) ||
        num_min(b, a, "last_call", what, 0, 0, 0, &last) ||
        (json_object_get(a, "missed_for") && num_min(b, a, "missed_for", what, 0, 0, 0, &missed)) ||
        num_min(b, a, "weight", what, 1, 0, 1, &weight) ||
        num_min(b, a, "member_weight", what, 1, 0, 1, &mweight) ||
        int_range(b, a, "calls_taken", what, 0, 0, UINT32_MAX, &calls) ||
        int_range(b, a, "no_answers", what, 0, 0, UINT32_MAX, &noans) ||
        int_range(b, a, "tier", what, 1, 0, 1000, &tier) ||
        int_range(b, a, "position", what, (long long)i + 1, 0, 1000000, &pos) ||
        int_range(b, a, "penalty", what, 0, 0, 1000, &pen))
        return -1;
    memset(c, 0, sizeof *c);
    c->id = id;
    c->num = (uint32_t)i + 1;
    c->idle_since = b->now_ms - (int64_t)llround(idle * 1000);
    c->last_call = (int64_t)llround(last * 1000);
    /* Absent: never missed a ring (nil to the policy). */
    c->missed_at = missed >= 0 ? b->now_ms - (int64_t)llround(missed * 1000) : 0;
    if (missed >= 0 && c->missed_at <= 0) c->missed_at = 1; /* 0 reads as none */
    c->talk_ms = (int64_t)llround(talk * 1000);
    c->calls_taken = (uint32_t)calls;
    c->no_answers = (uint32_t)noans;
    c->weight = weight;
    c->member_weight = mweight;
    c->tier = (int32_t)tier;
    c->position = (int32_t)pos;
    c->penalty = (int32_t)pen;

    json_t *doc = json_object();
    if (!doc) return cb_bad(b, "out of memory");
    static const char *const copied[] = {"name",     "skills",   "preferences",
                                         "timezone", "schedule", NULL};
    for (const char *const *k = copied; *k; k++) {
        json_t *v = json_object_get(a, *k);
        if (v) json_object_set(doc, *k, v);
    }
    json_t *dev = json_object_get(a, "devices");
    if (!dev) {
        char uri[SB_ID_MAX + 32];
        snprintf(uri, sizeof uri, "sip:%s@example.invalid", id);
        json_object_set_new(doc, "devices", json_pack("{ss}", "softphone", uri));
    } else if (!json_is_object(dev)) {
        json_decref(doc);
        return cb_bad(b, "%s.devices: expected an object", what);
    } else {
        json_object_set(doc, "devices", dev);
    }
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(doc, "devices"), k, v)
    {
        int bit = pol_dev_parse(k);
        if (!bit || !json_is_string(v) || !json_string_length(v)) {
            json_decref(doc);
            return cb_bad(b, "%s.devices.%s: expected landline, mobile or softphone with a URI",
                          what, k);
        }
        c->devices |= (unsigned)bit;
    }
    if (!c->devices) {
        json_decref(doc);
        return cb_bad(b, "%s.devices: expected at least one of landline, mobile, softphone", what);
    }
    if (check_agent_doc(b, a, what, c->devices)) {
        json_decref(doc);
        return -1;
    }
    b->configs[i] = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!b->configs[i]) return cb_bad(b, "out of memory");
    c->config = b->configs[i];
    c->config_len = strlen(b->configs[i]);
    return 0;
}

/* Agents by id, then by position: two of one id sit side by side. */
typedef struct idpos {
    const char *id;
    size_t pos;
} idpos;

static int idpos_cmp(const void *a, const void *b)
{
    const idpos *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

/* The first agent (by position) whose id an earlier one has: refused. Sorted,
** not pairwise: a case may list a queue's 10,000 members. */
static int dup_agent(cbuild *b)
{
    idpos *v = malloc((b->n ? b->n : 1) * sizeof *v);
    if (!v) return cb_bad(b, "out of memory");
    size_t m = 0, at = SIZE_MAX, first = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->cands[i].id) v[m++] = (idpos){b->cands[i].id, i};
    qsort(v, m, sizeof *v, idpos_cmp);
    for (size_t i = 1; i < m; i++)
        if (!strcmp(v[i].id, v[i - 1].id) && v[i].pos < at) {
            size_t j = i;
            while (j > 0 && !strcmp(v[j - 1].id, v[i].id))
                j--;
            at = v[i].pos, first = v[j].pos;
        }
    int rc = 0;
    if (at != SIZE_MAX)
        rc = cb_bad(b, "agents[%zu].id: '%s' is agents[%zu]'s id already", at, b->cands[at].id,
                    first);
    free(v);
    return rc;
}

/* pol_queue.queue_exists for a case that lists its account's queues. */
static int case_queue_exists(void *arg, const char *id)
{
    cbuild *b = arg;
    size_t i;
    json_t *v;
    json_array_foreach(b->queues, i, v) if (strcmp(json_string_value(v), id) == 0) return 1;
    return strcmp(b->q.id, id) == 0;
}

static int build_case(cbuild *b, json_t *cs)
{
    static const char *const case_keys[] = {"name",   "now",          "seed",   "queue",
                                            "queues", "call",         "agents", "store",
                                            "expect", "expect_store", NULL};
    /* A case without "record" is a routing case: a misspelt "record" is
    ** named as one of a retention case's keys. */
    static const char *const any_keys[] = {"name",   "now",     "seed",  "queue",  "queues",
                                           "call",   "agents",  "store", "expect", "expect_store",
                                           "record", "request", NULL};
    memset(b, 0, sizeof *b);
    if (!json_is_object(cs)) return cb_bad(b, "a case must be an object");
    if (json_object_get(cs, "request"))
        return cb_bad(b, "case: 'request' goes with 'record' (an erase case gives both, a "
                         "retain case 'record' alone, a routing case neither)");
    if (only_keys_near(b, cs, "case", case_keys, any_keys)) return -1;
    double now = CASE_NOW_DEFAULT;
    long long seed = 1;
    if (time_of(b, cs, "now", "case", CASE_NOW_DEFAULT, &now) ||
        int_of(b, cs, "seed", "case", 1, &seed))
        return -1;
    b->now_ms = (int64_t)llround(now * 1000);
    b->seed = (uint64_t)seed;

    json_t *agents = json_object_get(cs, "agents");
    if (agents && !json_is_array(agents)) return cb_bad(b, "agents: expected an array");
    b->n = json_array_size(agents);
    if (b->n > SB_MEMBERS_MAX)
        return cb_bad(b, "agents: %zu given, more than a queue has (at most %d members)", b->n,
                      SB_MEMBERS_MAX);
    b->cands = calloc(b->n ? b->n : 1, sizeof *b->cands);
    b->configs = calloc(b->n ? b->n : 1, sizeof *b->configs);
    if (!b->cands || !b->configs) return cb_bad(b, "out of memory");
    for (size_t i = 0; i < b->n; i++)
        if (build_agent(b, json_array_get(agents, i), i, &b->cands[i])) return -1;
    if (dup_agent(b)) return -1;

    json_t *call = json_object_get(cs, "call"), *queue = json_object_get(cs, "queue");
    if (call && !json_is_object(call)) return cb_bad(b, "call: expected an object");
    if (queue && !json_is_object(queue)) return cb_bad(b, "queue: expected an object");
    static const char *const call_keys[] = {
        "id",           "queue",    "caller", "called",     "priority",       "waited",
        "queue_waited", "attempts", "tried",  "last_agent", "previous_agent", "since_last_ring",
        "attrs",        NULL};
    static const char *const queue_keys[] = {"id",        "waiting",  "longest_wait", "members",
                                             "available", "position", "ring_timeout", "logged_in",
                                             "paused",    NULL};
    if (call && only_keys(b, call, "call", call_keys)) return -1;
    if (queue && only_keys(b, queue, "queue", queue_keys)) return -1;

    pol_call *c = &b->call;
    const char *cq = NULL, *qid = NULL;
    if (str_of(b, call, "queue", "call", NULL, &cq) || str_of(b, queue, "id", "queue", NULL, &qid))
        return -1;
    if (!qid) qid = cq ? cq : "support";
    if (!cq) cq = qid;
    c->queue = cq;
    double waited = 0, qwaited = 0, lw = 0;
    long long prio = 0, att = 0, waiting = 1, members = 0, avail = 0, position = 1, rt = 20,
              logged_in = 0, paused = 0;
    if (str_of(b, call, "id", "call", "c1", &c->id) ||
        str_of(b, call, "caller", "call", "+15550100", &c->caller) ||
        str_of(b, call, "called", "call", NULL, &c->called) ||
        str_of(b, call, "last_agent", "call", NULL, &c->last_agent) ||
        str_of(b, call, "previous_agent", "call", NULL, &c->previous_agent) ||
        int_range(b, call, "priority", "call", 0, 0, 100, &prio) ||
        int_range(b, call, "attempts", "call", 0, 0, INT32_MAX, &att) ||
        num_min(b, call, "queue_waited", "call", 0, 0, 0, &qwaited))
        return -1;
    /* Each left out is the other: a call offered to this queue (waited
    ** alone: in it since it was offered; queue_waited alone: offered here). */
    int has_qw = json_object_get(call, "queue_waited") &&
                 !json_is_null(json_object_get(call, "queue_waited"));
    if (num_min(b, call, "waited", "call", qwaited, 0, 0, &waited)) return -1;
    if (!has_qw) qwaited = waited;
    /* "caller": null (or "") is a call from a withheld number, nil to the
    ** policy as in the engine; left out, the default number. */
    if (json_is_null(json_object_get(call, "caller")) || !c->caller[0]) c->caller = NULL;
    if (!c->caller && c->previous_agent)
        return cb_bad(b, "call.previous_agent: a withheld caller (caller null) has no caller "
                         "history");
    c->since_last_ring = -1; /* absent: no ring has ended */
    if (json_object_get(call, "since_last_ring") &&
        num_min(b, call, "since_last_ring", "call", 0, 0, 0, &c->since_last_ring))
        return -1;
    if (qwaited > waited)
        return cb_bad(b,
                      "call.queue_waited: %g is more than call.waited (%g): a call is in its "
                      "queue no longer than since it was offered",
                      qwaited, waited);
    if (att == 0) {
        static const char *const rung[] = {"last_agent", "since_last_ring", NULL};
        for (const char *const *k = rung; *k; k++)
            if (json_object_get(call, *k) && !json_is_null(json_object_get(call, *k)))
                return cb_bad(b,
                              "call.%s: given for a call with attempts 0, which has rung "
                              "nobody yet (give attempts too)",
                              *k);
    }
    c->priority = (int)prio;
    c->attempts = (int)att;
    c->waited = waited;
    c->queue_waited = qwaited;
    json_t *attrs = json_object_get(call, "attrs");
    if (attrs && !json_is_object(attrs)) return cb_bad(b, "call.attrs: expected an object");
    if (attrs) {
        b->attrs = json_dumps(attrs, JSON_COMPACT);
        if (!b->attrs) return cb_bad(b, "out of memory");
        c->attrs = b->attrs;
        c->attrs_len = strlen(b->attrs);
    }
    json_t *tried = json_object_get(call, "tried");
    if (tried && !json_is_object(tried)) return cb_bad(b, "call.tried: expected an object");
    size_t nt = json_object_size(tried);
    if (nt) {
        b->tried_ids = calloc(nt, sizeof *b->tried_ids);
        b->tried_n = calloc(nt, sizeof *b->tried_n);
        if (!b->tried_ids || !b->tried_n) return cb_bad(b, "out of memory");
        const char *k;
        json_t *v;
        json_object_foreach(tried, k, v)
        {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > INT32_MAX)
                return cb_bad(b, "call.tried.%s: expected a number of rings, 1 or more", k);
            if (att == 0)
                return cb_bad(b,
                              "call.tried.%s: given for a call with attempts 0, which has "
                              "rung nobody yet (give attempts too)",
                              k);
            b->tried_ids[c->ntried] = k;
            b->tried_n[c->ntried++] = (int)json_integer_value(v);
        }
        c->tried_ids = b->tried_ids;
        c->tried_n = b->tried_n;
    }

    pol_queue *q = &b->q;
    q->id = qid;
    /* members left out: the agents given, or those logged_in says are
    ** logged in when more ("logged_in": 3, "paused": 3 and no agents). */
    long long li_given = (long long)b->n;
    if (json_is_integer(json_object_get(queue, "logged_in")) &&
        json_integer_value(json_object_get(queue, "logged_in")) > li_given)
        li_given = json_integer_value(json_object_get(queue, "logged_in"));
    if (int_range(b, queue, "waiting", "queue", 1, 0, INT32_MAX, &waiting) ||
        num_min(b, queue, "longest_wait", "queue", qwaited, 0, 0, &lw) ||
        int_range(b, queue, "members", "queue", li_given, 0, INT32_MAX, &members) ||
        int_range(b, queue, "available", "queue", (long long)b->n, 0, INT32_MAX, &avail) ||
        int_range(b, queue, "position", "queue", 1, 0, INT32_MAX, &position) ||
        int_range(b, queue, "logged_in", "queue", members, 0, INT32_MAX, &logged_in) ||
        int_range(b, queue, "paused", "queue", 0, 0, INT32_MAX, &paused) ||
        int_range(b, queue, "ring_timeout", "queue", 20, 1, 600, &rt))
        return -1;
    /* What no engine gives a policy is refused, as a call's impossible
    ** values are: the call is counted among the calls waiting and in
    ** longest_wait (alone, waiting 1); the agents offered are members,
    ** logged in and not paused; paused members are logged in. */
    if (waiting < 1)
        return cb_bad(b,
                      "queue.waiting: expected 1 or more (got %lld): the call being decided "
                      "is counted among the calls waiting",
                      waiting);
    if (position < 1 || position > waiting)
        return cb_bad(b,
                      "queue.position: expected 1..%lld, the call's place among the %lld "
                      "calls waiting (got %lld)",
                      waiting, waiting, position);
    if (lw < qwaited)
        return cb_bad(b,
                      "queue.longest_wait: %g is less than the call's own queue_waited (%g): "
                      "the call being decided is counted in it",
                      lw, qwaited);
    if (avail != (long long)b->n)
        return cb_bad(b,
                      "queue.available: %lld, but %zu agent%s given: available is the "
                      "number of agents offered to the call (leave it out)",
                      avail, b->n, b->n == 1 ? " is" : "s are");
    if (members < (long long)b->n)
        return cb_bad(b, "queue.members: %lld, fewer than the %zu agents given, who are members",
                      members, b->n);
    if (logged_in > members)
        return cb_bad(b, "queue.logged_in: %lld, more than the queue's %lld members", logged_in,
                      members);
    if (paused > logged_in)
        return cb_bad(b,
                      "queue.paused: %lld, more than the %lld members logged in (the paused "
                      "are counted among them)",
                      paused, logged_in);
    if (logged_in - paused < (long long)b->n)
        return cb_bad(b,
                      "queue.logged_in - queue.paused: %lld, fewer than the %zu agents given, "
                      "who are logged in and not paused",
                      logged_in - paused, b->n);
    q->waiting = (int)waiting;
    q->longest_wait = lw;
    q->members = (int)members;
    q->available = (int)avail;
    q->position = (int)position;
    q->logged_in = (int)logged_in;
    q->paused = (int)paused;
    q->ring_timeout = (int)rt;
    /* "queues": the account's other queues; a move to one not listed is
    ** then an invalid decision, as the engine makes it. */
    json_t *qs = json_object_get(cs, "queues");
    if (qs) {
        size_t i;
        json_t *v;
        if (!json_is_array(qs)) return cb_bad(b, "queues: expected an array of queue ids");
        json_array_foreach(
            qs, i, v) if (!json_is_string(v) ||
                          !id_valid(json_string_value(
                              v))) return cb_bad(b, "queues[%zu]: expected a queue id", i + 1);
        b->queues = qs;
        q->queue_exists = case_queue_exists;
        q->line_arg = b;
    }
    return 0;
}

/* A decision's reason as the engine sends and stores it (events.c):
** numbers as [number], control characters as spaces, then valid UTF-8. */
static json_t *reason_json(const char *r)
{
    char b[SB_REASON_MAX * 2 + 1];
    str_copy(b, sizeof b, r);
    reason_clean(b, sizeof b);
    return json_string_clean(b);
}

/* The decision as policies/README.md normalizes it. */
static json_t *normalize(const pol_decision *d, const pol_cand *cands)
{
    json_t *o = json_object();
    if (!o) return NULL;
    if (d->failed) {
        json_object_set_new(o, "action", json_string("error"));
        json_object_set_new(o, "error", json_string_clean(d->error));
        return o;
    }
    switch (d->kind) {
    case DEC_RING: {
        json_t *ids = json_array(), *devs = json_array();
        for (int i = 0; i < d->nring; i++) {
            json_array_append_new(ids, json_string(cands[d->ring[i].cand].id));
            json_array_append_new(devs, json_string(pol_dev_name(d->ring[i].dev)));
        }
        json_object_set_new(o, "action", json_string("ring"));
        json_object_set_new(o, "agents", ids);
        json_object_set_new(o, "mode",
                            json_string(d->step       ? "progressive"
                                        : d->sequence ? "sequence"
                                                      : "all"));
        json_object_set_new(o, "devices", devs);
        json_object_set_new(o, "timeout", json_integer(d->timeout));
        if (d->step) json_object_set_new(o, "step", json_integer(d->step));
        break;
    }
    case DEC_MOVE:
        json_object_set_new(o, "action", json_string("move"));
        json_object_set_new(o, "queue", json_string(d->queue));
        /* Without a reason of its own, the engine's: what the gateway gets. */
        json_object_set_new(o, "reason", reason_json(d->reason[0] ? d->reason : POL_MOVE_REASON));
        break;
    case DEC_REJECT:
        json_object_set_new(o, "action", json_string("reject"));
        json_object_set_new(o, "reason", reason_json(d->reason[0] ? d->reason : POL_REJECT_REASON));
        break;
    default:
        json_object_set_new(o, "action", json_string("wait"));
        json_object_set_new(o, "wait", json_integer(d->wait));
    }
    if (d->npause) {
        json_t *p = json_array();
        for (int i = 0; i < d->npause; i++) {
            json_t *e = json_pack("{ss}", "agent", d->pause[i].agent);
            if (d->pause[i].reason[0])
                json_object_set_new(e, "reason", reason_json(d->pause[i].reason));
            json_array_append_new(p, e);
        }
        json_object_set_new(o, "pause", p);
    }
    return o;
}

/* --- retention cases: {"record": {...}, "request": {...}?, "expect": {...}} --- */

typedef struct rbuild {
    pol_record rec;
    pol_erasure req;
    int erase;
    int64_t now_ms;
    char *attrs;
    json_t *attempts;
    const char **pols, **vers;
    char err[300];
} rbuild;

static void rb_free(rbuild *b)
{
    free(b->attrs);
    free(b->pols);
    free(b->vers);
}

static int rb_attempt(void *arg, int i, pol_attempt *out)
{
    json_t *a = json_array_get(arg, (size_t)i);
    if (!json_is_object(a)) return -1;
    /* Checked by check_attempts; the defaults are the ones it names. */
    const char *dev = json_string_value(json_object_get(a, "device"));
    const char *outcome = json_string_value(json_object_get(a, "outcome"));
    out->agent = json_string_value(json_object_get(a, "agent"));
    out->dev = pol_dev_parse(dev ? dev : "softphone");
    out->outcome = outcome ? outcome : "no_answer";
    out->start_ms = (int64_t)llround(json_number_value(json_object_get(a, "start")) * 1000);
    out->dur_ms = (int32_t)llround(json_number_value(json_object_get(a, "duration")) * 1000);
    return 0;
}

static int rbool(cbuild *e, json_t *o, const char *k, int *out)
{
    json_t *v = json_object_get(o, k);
    if (!v) return *out = 0, 0;
    if (!json_is_boolean(v)) return cb_bad(e, "record.%s: expected true or false", k);
    *out = json_is_true(v);
    return 0;
}

/* record.attempts as the engine keeps them: {agent, device, outcome,
** start, duration}, each entry checked, so that a typo never reaches the
** hook as a nil. */
static int check_attempts(cbuild *e, json_t *att)
{
    static const char *const keys[] = {"agent", "device", "outcome", "start", "duration", NULL};
    static const char *const outcomes[] = {"answered", "no_answer", "busy",
                                           "rejected", "cancelled", NULL};
    size_t i;
    json_t *a;
    json_array_foreach(att, i, a)
    {
        char what[40];
        const char *agent = NULL, *dev = NULL, *out = NULL;
        double x;
        snprintf(what, sizeof what, "record.attempts[%zu]", i + 1);
        if (!json_is_object(a)) return cb_bad(e, "%s: expected an object", what);
        if (only_keys(e, a, what, keys) || str_of(e, a, "agent", what, NULL, &agent) ||
            str_of(e, a, "device", what, "softphone", &dev) ||
            str_of(e, a, "outcome", what, "no_answer", &out) ||
            num_min(e, a, "start", what, 0, 0, 0, &x) ||
            num_min(e, a, "duration", what, 0, 0, 0, &x))
            return -1;
        if (x > 86400) return cb_bad(e, "%s.duration: expected seconds, 0..86400", what);
        if (!agent || !id_valid(agent)) return cb_bad(e, "%s.agent: expected an agent id", what);
        if (!pol_dev_parse(dev))
            return cb_bad(e, "%s.device: expected landline, mobile or softphone (got '%s')", what,
                          dev);
        int known = 0;
        for (int k = 0; outcomes[k]; k++)
            known |= !strcmp(out, outcomes[k]);
        if (!known)
            return cb_bad(e,
                          "%s.outcome: '%s' is not a ring outcome (answered, no_answer, busy, "
                          "rejected or cancelled)",
                          what, out);
    }
    return 0;
}

/* record.decided_by: {policy, version}, both strings. */
static int check_decided_by(cbuild *e, json_t *dec)
{
    static const char *const keys[] = {"policy", "version", NULL};
    size_t i;
    json_t *d;
    json_array_foreach(dec, i, d)
    {
        char what[40];
        const char *p = NULL, *v = NULL;
        snprintf(what, sizeof what, "record.decided_by[%zu]", i + 1);
        if (!json_is_object(d)) return cb_bad(e, "%s: expected an object", what);
        if (only_keys(e, d, what, keys) || str_of(e, d, "policy", what, NULL, &p) ||
            str_of(e, d, "version", what, NULL, &v))
            return -1;
        if (!p || !v) return cb_bad(e, "%s: expected {\"policy\": ..., \"version\": ...}", what);
    }
    return 0;
}

static int build_rcase(rbuild *b, json_t *cs)
{
    static const char *const case_keys[] = {"name", "now", "record", "request", "expect", NULL};
    static const char *const rec_keys[] = {
        "id",         "queue",      "first_queue", "outcome",  "agent",      "reason",
        "ended_by",   "priority",   "age_days",    "wait",     "talk",       "anonymized",
        "legal_hold", "overridden", "attrs",       "attempts", "decided_by", NULL};
    cbuild e; /* for its error helpers */
    memset(&e, 0, sizeof e);
    memset(b, 0, sizeof *b);
    json_t *r = json_object_get(cs, "record"), *q = json_object_get(cs, "request");
    double now = CASE_NOW_DEFAULT, age = 0, wait = 0, talk = 0;
    long long prio = 0;
    pol_record *rec = &b->rec;
    if (only_keys(&e, cs, "case", case_keys) || !json_is_object(r) ||
        only_keys(&e, r, "record", rec_keys) || time_of(&e, cs, "now", "case", now, &now) ||
        num_of(&e, r, "age_days", "record", 0, &age) ||
        num_min(&e, r, "wait", "record", 0, 0, 0, &wait) ||
        num_min(&e, r, "talk", "record", 0, 0, 0, &talk) ||
        int_range(&e, r, "priority", "record", 0, 0, 100, &prio) ||
        str_of(&e, r, "id", "record", "r1", &rec->id) ||
        str_of(&e, r, "queue", "record", "support", &rec->queue) ||
        str_of(&e, r, "outcome", "record", "answered", &rec->outcome) ||
        str_of(&e, r, "agent", "record", NULL, &rec->agent) ||
        str_of(&e, r, "reason", "record", NULL, &rec->reason) ||
        str_of(&e, r, "ended_by", "record", NULL, &rec->ended_by) ||
        rbool(&e, r, "anonymized", &rec->anonymized) ||
        rbool(&e, r, "legal_hold", &rec->legal_hold) ||
        rbool(&e, r, "overridden", &rec->overridden)) {
        snprintf(b->err, sizeof b->err, "%s", e.err[0] ? e.err : "record: expected an object");
        return -1;
    }
    if (str_of(&e, r, "first_queue", "record", rec->queue, &rec->first_queue)) goto bad;
    /* What records say: an overflowed call ends in one of these (so the
    ** aggregates' overflowed and failed are no record's outcome). */
    static const char *const outcomes[] = {"answered", "abandoned", "rejected", "failed", NULL};
    int known = 0;
    for (int i = 0; outcomes[i]; i++)
        known |= !strcmp(rec->outcome, outcomes[i]);
    if (!known) {
        cb_bad(&e,
               "record.outcome: '%s' is not an outcome (answered, abandoned, rejected or "
               "failed; a call that overflowed ends in one of these)",
               rec->outcome);
        goto bad;
    }
    if (age < 0 || age != floor(age)) {
        cb_bad(&e, "record.age_days: expected whole days, 0 or more (got %g)", age);
        goto bad;
    }
    /* Only records the engine can write: an answered call has the agent who
    ** answered (a1 unless given) and only an answered call has talk time
    ** or an agent. */
    int answered = !strcmp(rec->outcome, "answered");
    if (!answered && talk > 0) {
        cb_bad(&e, "record.talk: only an answered call has talk time (outcome '%s')", rec->outcome);
        goto bad;
    }
    if (!answered && rec->agent) {
        cb_bad(&e, "record.agent: only an answered call has an agent (outcome '%s')", rec->outcome);
        goto bad;
    }
    if (answered && !rec->agent) rec->agent = "a1";
    if (rec->reason && strcmp(rec->outcome, "rejected")) {
        cb_bad(&e, "record.reason: only a rejected call has a reason (outcome '%s')", rec->outcome);
        goto bad;
    }
    if (rec->ended_by &&
        (end_party_parse(rec->ended_by) < 0 || (!answered && !strcmp(rec->ended_by, "agent")) ||
         (!strcmp(rec->outcome, "abandoned") && strcmp(rec->ended_by, "caller")) ||
         (!strcmp(rec->outcome, "failed") && strcmp(rec->ended_by, "system")) ||
         !strcmp(rec->outcome, "rejected"))) {
        cb_bad(&e,
               "record.ended_by: '%s' cannot end a call whose outcome is '%s' (caller, agent or "
               "system hang up an answered call; the caller abandons, the system fails one "
               "never answered; nobody ends a rejected one)",
               rec->ended_by, rec->outcome);
        goto bad;
    }
    if (rec->reason && (!*rec->reason || strlen(rec->reason) > REC_REASON_MAX)) {
        cb_bad(&e, "record.reason: expected 1 to %d bytes", REC_REASON_MAX);
        goto bad;
    }
    b->now_ms = (int64_t)llround(now * 1000);
    rec->priority = (int)prio;
    rec->ended_ms = b->now_ms - (int64_t)llround(age * 86400000.0);
    rec->wait_ms = (int64_t)llround(wait * 1000);
    rec->talk_ms = (int64_t)llround(talk * 1000);
    rec->offered_ms = rec->ended_ms - rec->wait_ms - rec->talk_ms;
    if (answered) rec->answered_ms = rec->offered_ms + rec->wait_ms;
    json_t *attrs = json_object_get(r, "attrs");
    if (attrs && !json_is_object(attrs)) {
        cb_bad(&e, "record.attrs: expected an object");
        goto bad;
    }
    if (attrs) {
        b->attrs = json_dumps(attrs, JSON_COMPACT);
        rec->attrs = b->attrs;
        rec->attrs_len = b->attrs ? strlen(b->attrs) : 0;
    }
    json_t *att = json_object_get(r, "attempts"), *dec = json_object_get(r, "decided_by");
    if ((att && !json_is_array(att)) || (dec && !json_is_array(dec))) {
        cb_bad(&e, "record.attempts and record.decided_by are arrays");
        goto bad;
    }
    if (check_attempts(&e, att) || check_decided_by(&e, dec)) goto bad;
    b->attempts = att;
    rec->natt = (int)json_array_size(att);
    rec->attempt = rb_attempt;
    rec->attempt_arg = att;
    size_t nd = json_array_size(dec);
    if (nd) {
        b->pols = calloc(nd, sizeof *b->pols);
        b->vers = calloc(nd, sizeof *b->vers);
        if (!b->pols || !b->vers) goto bad;
        for (size_t i = 0; i < nd; i++) {
            json_t *o = json_array_get(dec, i);
            b->pols[i] = json_string_value(json_object_get(o, "policy"));
            b->vers[i] = json_string_value(json_object_get(o, "version"));
        }
        rec->nversions = (int)nd;
        rec->policies = b->pols;
        rec->versions = b->vers;
    }
    if (q) {
        static const char *const req_keys[] = {"role", "received", NULL};
        double rcv = now;
        if (!json_is_object(q) || only_keys(&e, q, "request", req_keys) ||
            str_of(&e, q, "role", "request", "caller", &b->req.role) ||
            time_of(&e, q, "received", "request", now, &rcv)) {
            if (!e.err[0]) cb_bad(&e, "request: expected an object");
            goto bad;
        }
        if (strcmp(b->req.role, "caller") && strcmp(b->req.role, "called")) {
            cb_bad(&e, "request.role: '%s' is not a role (caller or called)", b->req.role);
            goto bad;
        }
        /* The engine runs erase when the request comes, or later (a call
        ** in progress then ends; a hold that kept the record is released):
        ** never before it is received. */
        if (rcv > now) {
            cb_bad(&e,
                   "request.received: %.0f is after the case's now (%.0f): erase runs when a "
                   "request is received or later, never before",
                   rcv, now);
            goto bad;
        }
        b->req.received_ms = (int64_t)llround(rcv * 1000);
        b->erase = 1;
    }
    return 0;
bad:
    snprintf(b->err, sizeof b->err, "%s", e.err[0] ? e.err : "out of memory");
    return -1;
}

static json_t *normalize_ret(const pol_retention *d, int64_t now_ms)
{
    static const char *const names[] = {"none", "keep", "anonymize", "delete"};
    json_t *o = json_object();
    if (!o) return NULL;
    if (d->failed) {
        json_object_set_new(o, "action", json_string("error"));
        json_object_set_new(o, "error", json_string_clean(d->error));
        return o;
    }
    json_object_set_new(
        o, "action",
        json_string(d->action >= 0 && d->action <= RET_DELETE ? names[d->action] : "?"));
    if (d->review_ms) {
        double days = (double)(d->review_ms - now_ms) / 86400000.0;
        json_object_set_new(o, "review_in_days",
                            days == floor(days) && fabs(days) < 1e15
                                ? json_integer((json_int_t)days)
                                : json_real(days));
    } else {
        json_object_set_new(o, "review_in_days", json_null());
    }
    json_object_set_new(o, "reason", json_string_clean(d->reason));
    return o;
}

/* Each key of expect must equal got's. 0, or -1 with why set. */
static int compare_expect(json_t *expect, json_t *got, int failed, const char *error, char *why,
                          size_t cap)
{
    const char *k;
    json_t *v;
    json_object_foreach(expect, k, v)
    {
        json_t *g = json_object_get(got, k);
        if (!g && !failed) {
            /* A key the decision does not have: often a typo ("agent"),
            ** named with the key it is close to. */
            char keys[200] = "";
            const char *gk, *names[16];
            int nn = 0;
            json_t *gv;
            json_object_foreach(got, gk, gv)
            {
                size_t n = strlen(keys);
                snprintf(keys + n, sizeof keys - n, "%s%s", n ? ", " : "", gk);
                if (nn < 16) names[nn++] = gk;
            }
            const char *near = sbx_suggest_in(k, strlen(k), names, NULL, nn);
            snprintf(why, cap, "expect.%s: the decision has no '%s' (%s%s%sit has %s)", k, k,
                     near ? "did you mean '" : "", near ? near : "", near ? "'? " : "", keys);
            return -1;
        }
        if (!g || !same(g, v)) {
            char *gs = g ? json_dumps(g, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            char *es = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            snprintf(why, cap, "%s: expected %s, got %s%s%s", k, es ? es : "?", gs ? gs : "nothing",
                     failed && error && error[0] ? " (the policy failed: " : "",
                     failed && error && error[0] ? error : "");
            if (failed && error && error[0] && strlen(why) + 2 <= cap) strcat(why, ")");
            free(gs);
            free(es);
            return -1;
        }
    }
    if (failed && !json_object_get(expect, "action")) {
        snprintf(why, cap, "the policy failed: %s", error);
        return -1;
    }
    return 0;
}

/* The store after a case against expect_store. 0, or -1 with why set. */
static int check_store(const fstore *store, json_t *estore, json_t *res, char *why, size_t cap)
{
    fstore want = {0};
    json_t *shown = fs_to_json(store);
    int rc = fs_from_json(&want, estore, "expect_store", 1, why, cap);
    json_object_set_new(res, "store", shown ? shown : json_null());
    json_object_set(res, "expected_store", estore);
    if (rc == 0 && !fs_same(store, &want)) {
        char *gs = shown ? json_dumps(shown, JSON_COMPACT) : NULL;
        char *es = json_dumps(estore, JSON_COMPACT);
        snprintf(why, cap, "store: expected %s, got %s", es ? es : "?", gs ? gs : "?");
        free(gs);
        free(es);
        rc = -1;
    }
    fs_clear(&want);
    return rc;
}

/* A route case. 0 when it passes; else why is set. */
static int run_route_case(sbx *sb, const char *name, const int refs[3], const pol_limits *lim,
                          json_t *cs, fstore *store, json_t *res, char *why, size_t cap)
{
    json_t *expect = json_object_get(cs, "expect"), *estore = json_object_get(cs, "expect_store");
    json_t *init = json_object_get(cs, "store");
    fstore given = {0};
    cbuild b;
    int rc = -1;
    if (build_case(&b, cs)) {
        snprintf(why, cap, "%s", b.err);
    } else if (init && fs_from_json(&given, init, "store", 0, why, cap)) {
        /* why is set */
    } else if (expect && !json_is_object(expect)) {
        snprintf(why, cap, "expect: expected an object");
    } else if (estore && !json_is_object(estore)) {
        snprintf(why, cap, "expect_store: expected an object");
    } else {
        if (init) {
            fs_clear(store);
            *store = given;
            memset(&given, 0, sizeof given);
        }
        pol_kv kv = {fake_get, fake_set, fake_room, NULL, store};
        pol_decision *d = calloc(1, sizeof *d);
        if (!d) {
            snprintf(why, cap, "out of memory");
        } else {
            if (refs[0] == LUA_NOREF) {
                d->failed = 1;
                snprintf(d->error, sizeof d->error, "%s.lua: the policy has no 'route' hook", name);
            } else {
                views_route(sb, name, refs[0], &b.call, b.cands, b.n, &b.q, &kv, b.now_ms, b.seed,
                            lim->instructions, lim->wall_ms, d);
            }
            json_t *got = normalize(d, b.cands);
            rc = compare_expect(expect, got, d->failed, d->error, why, cap);
            json_object_set_new(res, "got", got);
            if (estore) {
                char swhy[600] = "";
                if (check_store(store, estore, res, swhy, sizeof swhy) && rc == 0) {
                    snprintf(why, cap, "%s", swhy);
                    rc = -1;
                }
            }
            free(d);
        }
    }
    fs_clear(&given);
    cb_free(&b);
    return rc;
}

/* A retention case: retain, or erase when it has a request. */
static int run_retention_case(sbx *sb, const char *name, const int refs[3], const pol_limits *lim,
                              json_t *cs, json_t *res, char *why, size_t cap)
{
    json_t *expect = json_object_get(cs, "expect");
    rbuild b;
    int rc = -1;
    if (build_rcase(&b, cs)) {
        snprintf(why, cap, "%s", b.err);
    } else if (expect && !json_is_object(expect)) {
        snprintf(why, cap, "expect: expected an object");
    } else {
        pol_retention d;
        memset(&d, 0, sizeof d);
        int ref = refs[b.erase ? 2 : 1];
        if (ref != LUA_NOREF) {
            views_retain(sb, name, ref, &b.rec, b.erase ? &b.req : NULL, b.now_ms,
                         lim->instructions, lim->wall_ms, &d);
            /* The engine ignores a review date erase gives (the record's own
            ** schedule stands): show the decision as it is applied. */
            if (b.erase && !d.failed && d.review_ms) {
                char note[160];
                snprintf(note, sizeof note,
                         "erase's review_in_days (%g) is ignored: the record keeps its own "
                         "review schedule, as in the engine",
                         (double)(d.review_ms - b.now_ms) / 86400000.0);
                json_object_set_new(res, "note", json_string(note));
                d.review_ms = 0;
            }
        } else if (pol_retention_default(&d, name, b.erase) && b.erase) {
            json_object_set_new(res, "note",
                                json_string("the policy has no 'erase' hook: an erasure "
                                            "deletes the record, as the engine does"));
        }
        json_t *got = normalize_ret(&d, b.now_ms);
        rc = compare_expect(expect, got, d.failed, d.error, why, cap);
        json_object_set_new(res, "got", got);
    }
    rb_free(&b);
    return rc;
}

/* Run every case against the loaded hooks (refs: route, retain, erase).
** Returns the report ({"passed","failed","cases"}); *nfail counts the
** failures; summary (when given) gets one line per failing case. *ran: how
** many cases ran, fewer than there are when lim->cases_wall_ms ran out. */
static json_t *run_cases(sbx *sb, logcap *lc, const char *name, const int refs[3],
                         const pol_limits *lim, json_t *cases, int *nfail, sb_buf *summary,
                         size_t *ran)
{
    json_t *report = json_object(), *list = json_array();
    fstore store = {0};
    int passed = 0, failed = 0;
    int64_t start = mono_ms();
    size_t ci;
    for (ci = 0; ci < json_array_size(cases); ci++) {
        if (ci && lim->cases_wall_ms && mono_ms() - start >= (int64_t)lim->cases_wall_ms) break;
        json_t *cs = json_array_get(cases, ci), *res = json_object();
        const char *cname =
            json_is_object(cs) ? json_string_value(json_object_get(cs, "name")) : NULL;
        char cbuf[32], why[600] = "";
        if (!cname) snprintf(cbuf, sizeof cbuf, "case %zu", ci + 1), cname = cbuf;
        json_object_set_new(res, "name", json_string(cname));
        json_t *log = json_array();
        lc->lines = log;
        int rc;
        if (!json_is_object(cs)) {
            snprintf(why, sizeof why, "a case must be an object");
            rc = -1;
        } else {
            /* A case that failed on the wall clock alone runs once more, in
            ** the author's tools and make test (not an upload's): a machine
            ** busy with other work may hold the process off its CPU past
            ** policy_wall_ms, where the instruction budget says the same each
            ** run. A failed call writes nothing to the store, so the second
            ** run starts where the first did (file-level locals a hook
            ** changed keep what the first run left them). */
            for (int attempt = 0; attempt < 2; attempt++) {
                if (attempt) {
                    why[0] = 0;
                    json_array_clear(log);
                }
                rc = json_object_get(cs, "record")
                         ? run_retention_case(sb, name, refs, lim, cs, res, why, sizeof why)
                         : run_route_case(sb, name, refs, lim, cs, &store, res, why, sizeof why);
                /* Not in an upload, whose cases hold the daemon's loop. */
                if (rc == 0 || lim->cases_wall_ms || !strstr(why, "wall-clock limit exceeded"))
                    break;
            }
        }
        /* A case that checks nothing passes nothing; one that failed
        ** anyway says that too. */
        if (json_is_object(cs) && !json_object_get(cs, "expect") &&
            (json_object_get(cs, "record") || !json_object_get(cs, "expect_store"))) {
            static const char noexp[] =
                "case has no expect: add \"expect\" with the decision it must produce";
            size_t wl = strlen(why);
            if (rc == 0)
                snprintf(why, sizeof why, "%s", noexp);
            else if (wl + 8 < sizeof why)
                snprintf(why + wl, sizeof why - wl, "; and the %s", noexp);
            rc = -1;
        }
        lc->lines = NULL;
        if (json_array_size(log)) json_object_set(res, "log", log);
        json_decref(log);
        json_t *expect = json_is_object(cs) ? json_object_get(cs, "expect") : NULL;
        json_object_set_new(res, "ok", json_boolean(rc == 0));
        json_object_set(res, "expected", expect ? expect : json_null());
        if (rc) {
            json_object_set_new(res, "message", json_string_clean(why));
            if (summary) buf_printf(summary, "case '%s': %s\n", cname, why);
        }
        json_array_append_new(list, res);
        rc == 0 ? passed++ : failed++;
    }
    fs_clear(&store);
    json_object_set_new(report, "passed", json_integer(passed));
    json_object_set_new(report, "failed", json_integer(failed));
    json_object_set_new(report, "cases", list);
    *nfail = failed;
    *ran = ci;
    return report;
}

/* Errors name the cases file as the engine finds it: NAME.cases.json beside
** NAME.lua. */
static json_t *parse_cases(const char *nm, const char *cases, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_oom_reset();
    size_t bom = utf8_bom(cases, len);
    json_t *j = json_loadb(cases + bom, len - bom, JSON_REJECT_DUPLICATES, &je);
    if (!j && json_oom(&je)) {
        snprintf(err, errlen, "%s.cases.json: out of memory", nm);
        return NULL;
    }
    if (!j) {
        snprintf(err, errlen, "%s.cases.json:%d: %s (column %d)", nm, je.line, jv_error_text(&je),
                 je.column);
        return NULL;
    }
    if (!json_is_array(j)) {
        json_decref(j);
        snprintf(err, errlen, "%s.cases.json: expected a JSON array of cases", nm);
        return NULL;
    }
    return j;
}

/* Load src as policy nm into a state of its own and run the cases cj (if
** any): *rep their report, *nfail how many failed, sum (if given) a summary
** of the failures. SB_EPOLICY with res set when the source does not load,
** or when lim->cases_wall_ms ran out before every case ran. */
static int hook_global(lua_State *L, int ref, char *name, size_t n);

static int load_and_run(const char *nm, const char *src, size_t len, const pol_limits *lim,
                        json_t *cj, json_t **rep, int *nfail, sb_buf *sum, sb_result *res,
                        unsigned *hooks)
{
    size_t ran = 0;
    char err[512];
    logcap lc = {NULL};
    sbx *sb = sbx_new(lim->memory, cap_log, &lc);
    if (!sb) return res_err(res, SB_ENOMEM, NULL, "cannot create a policy state");
    sb->now_ms = (int64_t)(CASE_NOW_DEFAULT * 1000);
    int refs[3], rc = 0;
    if (sbx_load(sb, nm, src ? src : "", src ? len : 0, lim->load_instructions,
                 sbx_load_wall(lim->wall_ms), refs, NULL, err, sizeof err))
        rc = res_err(res, SB_EPOLICY, "source", "%s", err);
    else if (cj && (*rep = run_cases(sb, &lc, nm, refs, lim, cj, nfail, sum, &ran)) &&
             ran < json_array_size(cj))
        rc = res_err(res, SB_EPOLICY, "cases",
                     "%s: the cases ran for more than %u ms in all, the most an upload's cases "
                     "may take (stopped after %zu of %zu): upload fewer cases, or faster ones",
                     nm, lim->cases_wall_ms, ran, json_array_size(cj));
    for (int i = 0; i < 3 && !rc; i++) {
        char g[80];
        int line = refs[i] != LUA_NOREF ? hook_global(sb->L, refs[i], g, sizeof g) : 0;
        if (line)
            rc = res_err(res, SB_EPOLICY, "source",
                         "%s.lua:%d: assignment to global '%s' in a hook, which fails every "
                         "time it runs: make it local; keep what later calls need with ctx.set",
                         nm, line, g);
    }
    if (hooks)
        for (int i = 0; i < 3; i++)
            if (!rc && refs[i] != LUA_NOREF) *hooks |= 1u << i;
    sbx_free(sb);
    return rc;
}

int pol_validate(const pol_limits *lim, const char *name, const char *src, size_t len,
                 const char *cases, size_t cases_len, sb_result *res)
{
    return pol_validate_hooks(lim, name, src, len, cases, cases_len, res, NULL);
}

int pol_validate_hooks(const pol_limits *lim_in, const char *name, const char *src, size_t len,
                       const char *cases, size_t cases_len, sb_result *res, unsigned *hooks)
{
    if (hooks) *hooks = 0;
    pol_limits lim;
    limits_or_default(lim_in, &lim);
    char nm[SB_NAME_MAX + 8], err[512];
    base_name(name, nm, sizeof nm);
    json_t *cj = NULL, *rep = NULL;
    if (cases && cases_len && !(cj = parse_cases(nm, cases, cases_len, err, sizeof err)))
        return res_err(res, SB_EPOLICY, "cases", "%s", err);
    if (cj && lim.cases_max && json_array_size(cj) > lim.cases_max) {
        size_t n = json_array_size(cj);
        json_decref(cj);
        return res_err(res, SB_EINVAL, "cases",
                       "%s: %zu cases, more than the %u an upload may carry", nm, n, lim.cases_max);
    }
    int nfail = 0;
    sb_buf sum = {0};
    int rc = load_and_run(nm, src, len, &lim, cj, &rep, &nfail, &sum, res, hooks);
    if (sum.len && sum.p[sum.len - 1] == '\n') sum.p[--sum.len] = 0; /* no newline at the end */
    if (!rc && nfail)
        rc = res_err(res, SB_EPOLICY, "cases", "%d of %zu cases failed:\n%s", nfail,
                     json_array_size(cj), sum.p ? sum.p : "");
    json_decref(rep);
    buf_free(&sum);
    json_decref(cj);
    return rc;
}

int sb_policy_test(const char *name, const char *source, size_t len, const char *cases_json,
                   size_t cases_len, sb_result *res)
{
    return sb_policy_test_cfg(NULL, name, source, len, cases_json, cases_len, res);
}

/* cfg's budgets, else the defaults. */
static void limits_for(const sb_config *cfg, pol_limits *lim)
{
    pol_limits l;
    if (cfg) l = pol_limits_of(cfg);
    limits_or_default(cfg ? &l : NULL, lim);
}

int sb_policy_test_cfg(const sb_config *cfg, const char *name, const char *source, size_t len,
                       const char *cases_json, size_t cases_len, sb_result *res)
{
    res_reset(res);
    if (!source) return res_err(res, SB_EINVAL, "source", "no source given");
    pol_limits lim;
    limits_for(cfg, &lim);
    char nm[SB_NAME_MAX + 8], err[512];
    base_name(name, nm, sizeof nm);
    if (!cases_json) return res_err(res, SB_EINVAL, "cases", "no cases given");
    json_alloc_init();
    json_t *cj = parse_cases(nm, cases_json, cases_len, err, sizeof err), *rep = NULL;
    if (!cj) return res_err(res, json_oom_seen() ? SB_ENOMEM : SB_EINVAL, "cases", "%s", err);
    int nfail = 0;
    int rc = load_and_run(nm, source, len, &lim, cj, &rep, &nfail, NULL, res, NULL);
    if (!rc) {
        /* The report is the result's document also when cases fail: the
        ** return code says whether all passed. */
        res_doc(res, rep);
        rc = nfail ? SB_EPOLICY : 0;
    }
    json_decref(cj);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Lint: reading our own compile's dump (Lua 5.4 format). */

/* The Lua 5.4 opcodes the lint reads (lopcodes.h). */
enum {
    OP_MOVE = 0,
    OP_LOADI = 1,
    OP_LOADF = 2,
    OP_LOADK = 3,
    OP_LOADKX = 4,
    OP_LOADFALSE = 5,
    OP_LFALSESKIP = 6,
    OP_LOADTRUE = 7,
    OP_LOADNIL = 8,
    OP_GETUPVAL = 9,
    OP_GETTABUP = 11,
    OP_GETTABLE = 12,
    OP_GETI = 13,
    OP_GETFIELD = 14,
    OP_SETTABUP = 15,
    OP_SETTABLE = 16,
    OP_SETI = 17,
    OP_SETFIELD = 18,
    OP_NEWTABLE = 19,
    OP_SELF = 20,
    OP_NOT = 51,
    OP_CONCAT = 53,
    OP_JMP = 56,
    OP_EQ = 57, /* the tests, EQ to TESTSET (57..67), skip the jump after them or not */
    OP_TESTSET = 67,
    OP_CALL = 68,
    OP_TAILCALL = 69,
    OP_RETURN = 70,
    OP_RETURN0 = 71,
    OP_RETURN1 = 72,
    OP_FORLOOP = 73,
    OP_FORPREP = 74,
    OP_TFORPREP = 75,
    OP_TFORCALL = 76,
    OP_TFORLOOP = 77,
    OP_SETLIST = 78,
    OP_CLOSURE = 79,
    OP_VARARG = 80
};

/* What each operand of an instruction is (lopcodes.h's comments, 5.4's 83
** opcodes): a register read (O_REG), one written (O_SET, A only), a
** constant's index (O_K), a register or a constant as the k bit says (O_RK),
** an upvalue's index (O_UP), or none of those (O_NUM: an immediate, a count,
** a size, a flag; or no such field, the instruction being one of the Bx, sJ
** or Ax forms). Reading B or C as a register where it is a constant's index
** or a number mistakes an unrelated value for the register. The ranges some
** instructions read or write (a call's arguments, LOADNIL's A..A+B, ...) are
** reads()'s and writes()'. */
enum { O_NUM, O_REG, O_SET, O_K, O_RK, O_UP };
#define OPS(a, b, c) (uint16_t)((a) | (b) << 3 | (c) << 6)
static const uint16_t op_modes[83] = {
    OPS(O_SET, O_REG, O_NUM), /* MOVE */
    OPS(O_SET, O_NUM, O_NUM), /* LOADI (sBx) */
    OPS(O_SET, O_NUM, O_NUM), /* LOADF (sBx) */
    OPS(O_SET, O_NUM, O_NUM), /* LOADK (Bx) */
    OPS(O_SET, O_NUM, O_NUM), /* LOADKX */
    OPS(O_SET, O_NUM, O_NUM), /* LOADFALSE */
    OPS(O_SET, O_NUM, O_NUM), /* LFALSESKIP */
    OPS(O_SET, O_NUM, O_NUM), /* LOADTRUE */
    OPS(O_SET, O_NUM, O_NUM), /* LOADNIL: A..A+B */
    OPS(O_SET, O_UP, O_NUM),  /* GETUPVAL */
    OPS(O_REG, O_UP, O_NUM),  /* SETUPVAL */
    OPS(O_SET, O_UP, O_K),    /* GETTABUP */
    OPS(O_SET, O_REG, O_REG), /* GETTABLE */
    OPS(O_SET, O_REG, O_NUM), /* GETI */
    OPS(O_SET, O_REG, O_K),   /* GETFIELD */
    OPS(O_UP, O_K, O_RK),     /* SETTABUP */
    OPS(O_REG, O_REG, O_RK),  /* SETTABLE */
    OPS(O_REG, O_NUM, O_RK),  /* SETI */
    OPS(O_REG, O_K, O_RK),    /* SETFIELD */
    OPS(O_SET, O_NUM, O_NUM), /* NEWTABLE (sizes) */
    OPS(O_SET, O_REG, O_RK),  /* SELF: A and A+1 */
    OPS(O_SET, O_REG, O_NUM), /* ADDI */
    OPS(O_SET, O_REG, O_K),   /* ADDK */
    OPS(O_SET, O_REG, O_K),   /* SUBK */
    OPS(O_SET, O_REG, O_K),   /* MULK */
    OPS(O_SET, O_REG, O_K),   /* MODK */
    OPS(O_SET, O_REG, O_K),   /* POWK */
    OPS(O_SET, O_REG, O_K),   /* DIVK */
    OPS(O_SET, O_REG, O_K),   /* IDIVK */
    OPS(O_SET, O_REG, O_K),   /* BANDK */
    OPS(O_SET, O_REG, O_K),   /* BORK */
    OPS(O_SET, O_REG, O_K),   /* BXORK */
    OPS(O_SET, O_REG, O_NUM), /* SHRI */
    OPS(O_SET, O_REG, O_NUM), /* SHLI */
    OPS(O_SET, O_REG, O_REG), /* ADD */
    OPS(O_SET, O_REG, O_REG), /* SUB */
    OPS(O_SET, O_REG, O_REG), /* MUL */
    OPS(O_SET, O_REG, O_REG), /* MOD */
    OPS(O_SET, O_REG, O_REG), /* POW */
    OPS(O_SET, O_REG, O_REG), /* DIV */
    OPS(O_SET, O_REG, O_REG), /* IDIV */
    OPS(O_SET, O_REG, O_REG), /* BAND */
    OPS(O_SET, O_REG, O_REG), /* BOR */
    OPS(O_SET, O_REG, O_REG), /* BXOR */
    OPS(O_SET, O_REG, O_REG), /* SHL */
    OPS(O_SET, O_REG, O_REG), /* SHR */
    OPS(O_REG, O_REG, O_NUM), /* MMBIN (C: the event) */
    OPS(O_REG, O_NUM, O_NUM), /* MMBINI */
    OPS(O_REG, O_K, O_NUM),   /* MMBINK */
    OPS(O_SET, O_REG, O_NUM), /* UNM */
    OPS(O_SET, O_REG, O_NUM), /* BNOT */
    OPS(O_SET, O_REG, O_NUM), /* NOT */
    OPS(O_SET, O_REG, O_NUM), /* LEN */
    OPS(O_SET, O_NUM, O_NUM), /* CONCAT: reads A..A+B-1 */
    OPS(O_NUM, O_NUM, O_NUM), /* CLOSE (A: a level, not a value) */
    OPS(O_REG, O_NUM, O_NUM), /* TBC */
    OPS(O_NUM, O_NUM, O_NUM), /* JMP (sJ) */
    OPS(O_REG, O_REG, O_NUM), /* EQ */
    OPS(O_REG, O_REG, O_NUM), /* LT */
    OPS(O_REG, O_REG, O_NUM), /* LE */
    OPS(O_REG, O_K, O_NUM),   /* EQK */
    OPS(O_REG, O_NUM, O_NUM), /* EQI */
    OPS(O_REG, O_NUM, O_NUM), /* LTI */
    OPS(O_REG, O_NUM, O_NUM), /* LEI */
    OPS(O_REG, O_NUM, O_NUM), /* GTI */
    OPS(O_REG, O_NUM, O_NUM), /* GEI */
    OPS(O_REG, O_NUM, O_NUM), /* TEST */
    OPS(O_SET, O_REG, O_NUM), /* TESTSET */
    OPS(O_SET, O_NUM, O_NUM), /* CALL: reads A..A+B-1, its results from A */
    OPS(O_SET, O_NUM, O_NUM), /* TAILCALL: reads A..A+B-1 */
    OPS(O_REG, O_NUM, O_NUM), /* RETURN: A..A+B-2 */
    OPS(O_NUM, O_NUM, O_NUM), /* RETURN0 */
    OPS(O_REG, O_NUM, O_NUM), /* RETURN1 */
    OPS(O_SET, O_NUM, O_NUM), /* FORLOOP (Bx) */
    OPS(O_SET, O_NUM, O_NUM), /* FORPREP (Bx) */
    OPS(O_SET, O_NUM, O_NUM), /* TFORPREP (Bx) */
    OPS(O_REG, O_NUM, O_NUM), /* TFORCALL: reads A..A+3, writes its loop's variables */
    OPS(O_SET, O_NUM, O_NUM), /* TFORLOOP (Bx) */
    OPS(O_REG, O_NUM, O_NUM), /* SETLIST: reads A..A+B */
    OPS(O_SET, O_NUM, O_NUM), /* CLOSURE (Bx) */
    OPS(O_SET, O_NUM, O_NUM), /* VARARG: A..A+C-2 */
    OPS(O_NUM, O_NUM, O_NUM), /* VARARGPREP */
    OPS(O_NUM, O_NUM, O_NUM), /* EXTRAARG (Ax) */
};
#undef OPS

/* What operand n (0 A, 1 B, 2 C) of ins is, with its value in *v: O_RK
** resolved by the k bit, an opcode past 5.4's O_NUM. */
static int operand(uint32_t ins, int n, int *v)
{
    int op = (int)(ins & 0x7f);
    int kind = op < (int)(sizeof op_modes / sizeof *op_modes) ? op_modes[op] >> (3 * n) & 7 : O_NUM;
    *v = n == 0 ? (int)((ins >> 7) & 0xff) : n == 1 ? (int)((ins >> 16) & 0xff) : (int)(ins >> 24);
    return kind == O_RK ? ((ins >> 15) & 1 ? O_K : O_REG) : kind;
}

/* Does the instruction write register reg: its A when that is written
** (op_modes), LOADNIL's A..A+B, SELF's A+1? (A call's or loop's other
** results land above the live locals, never in one.) */
static int writes(uint32_t ins, int reg)
{
    int op = (int)(ins & 0x7f), a;
    if (operand(ins, 0, &a) != O_SET) return 0;
    if (op == OP_LOADNIL) return reg >= a && reg <= a + (int)((ins >> 16) & 0xff);
    return reg == a || (op == OP_SELF && reg == a + 1);
}

/* Does the instruction read register reg: an operand that is one
** (op_modes), or in the range a call, a return, a concatenation, a list
** store or a generic for reads (B 0: up to the top, anywhere above A)? */
static int reads(uint32_t ins, int reg)
{
    int op = (int)(ins & 0x7f), a = (int)((ins >> 7) & 0xff), b = (int)((ins >> 16) & 0xff), v;
    for (int n = 0; n < 3; n++)
        if (operand(ins, n, &v) == O_REG && v == reg) return 1;
    switch (op) {
    case OP_CALL:
    case OP_TAILCALL:
    case OP_CONCAT:
        return reg >= a && (!b || reg <= a + b - 1);
    case OP_RETURN:
        return reg >= a && (!b || reg <= a + b - 2);
    case OP_SETLIST:
        return reg >= a && (!b || reg <= a + b);
    case OP_TFORCALL:
        return reg >= a && reg <= a + 3;
    default:
        return 0;
    }
}

typedef struct rd {
    const uint8_t *p, *end;
    int err;
} rd;

static size_t rd_size(rd *r)
{
    size_t x = 0;
    for (int i = 0; i < 10; i++) {
        if (r->p >= r->end) {
            r->err = 1;
            return 0;
        }
        uint8_t c = *r->p++;
        x = (x << 7) | (c & 0x7f);
        if (c & 0x80) return x;
    }
    r->err = 1;
    return 0;
}

static const uint8_t *rd_skip(rd *r, size_t n)
{
    if (r->err || (size_t)(r->end - r->p) < n) {
        r->err = 1;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

static uint8_t rd_byte(rd *r)
{
    const uint8_t *p = rd_skip(r, 1);
    return p ? *p : 0;
}

typedef struct kstr {
    const char *s; /* a string constant's bytes, else NULL */
    size_t n;
    int tag; /* the dump's tag of the constant: 0 nil, 1 false, 17 true, 3 integer, 19 float,
             ** 4 or 20 a string */
    lua_Integer i;
    lua_Number x;
} kstr;

static kstr rd_string(rd *r)
{
    kstr k = {NULL, 0, 0, 0, 0};
    size_t n = rd_size(r);
    if (n == 0) return k;
    k.n = n - 1;
    k.s = (const char *)rd_skip(r, k.n);
    if (!k.s) k.n = 0;
    return k;
}

typedef struct finding {
    int line;
    char msg[200];
} finding;

typedef struct lint {
    lua_State *L; /* the check's state: its globals table is the allow-list */
    sbx *sb;
    finding *f;
    size_t n, cap;
    char file[SB_NAME_MAX + 16];
    int hook_first[3], hook_last[3]; /* lines of route, retain, erase (0: none) */
    int writes_only;                 /* hook_global: only the globals set, nothing else */
    int set_line;                    /* ... the first a hook's own body sets, and its name */
    char set_name[80];
    int *ret_lines, nret, maxret; /* pol_return_lines: the hook's returns, distinct lines */
    int count_only;               /* a first walk: only count hook_protos */
    int hook_protos[3];           /* functions defined on the lines of each hook (0: not counted):
                                  ** more than one, and which is the hook is not known */
} lint;

static void add_finding(lint *l, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_finding(lint *l, int line, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < l->n; i++)
        if (l->f[i].line == line && strcmp(l->f[i].msg, msg) == 0) return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        finding *f = realloc(l->f, cap * sizeof *f);
        if (!f) return;
        l->f = f;
        l->cap = cap;
    }
    l->f[l->n].line = line;
    memcpy(l->f[l->n].msg, msg, sizeof msg);
    l->n++;
}

/* Does the sandbox's global table have `name` (and, with field, name.field)? */
static int known(lint *l, kstr name, kstr field)
{
    lua_State *L = l->L;
    char n[80], f[80];
    if (name.n >= sizeof n || field.n >= sizeof f) return 0;
    memcpy(n, name.s, name.n);
    n[name.n] = 0;
    if (strcmp(n, "_G") == 0 && !field.s) return 1;
    lua_rawgeti(L, LUA_REGISTRYINDEX, l->sb->ref_genv);
    int t = lua_getfield(L, -1, n);
    int r = t != LUA_TNIL;
    if (r && field.s) {
        memcpy(f, field.s, field.n);
        f[field.n] = 0;
        r = lua_type(L, -1) == LUA_TTABLE && lua_getfield(L, -1, f) != LUA_TNIL;
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    return r;
}

static const char *blocked_hint(kstr name)
{
    static const struct {
        const char *name, *hint;
    } hints[] = {
        {"io", "not available in policies"},
        {"debug", "not available in policies"},
        {"package", "not available in policies"},
        {"require", "not available in policies"},
        {"load", "not available in policies"},
        {"loadstring", "not available in policies"},
        {"dofile", "not available in policies"},
        {"loadfile", "not available in policies"},
        {"warn", "use ctx.log"},
        {"unpack", "use table.unpack"},
        {"setfenv", "not in Lua 5.4"},
        {"getfenv", "not in Lua 5.4"},
        {"module", "not in Lua 5.4"},
        {"bit32", "not in Lua 5.4; use the operators"},
    };
    for (size_t i = 0; i < countof(hints); i++)
        if (strlen(hints[i].name) == name.n && memcmp(hints[i].name, name.s, name.n) == 0)
            return hints[i].hint;
    return NULL;
}

typedef struct locvar {
    kstr name;
    int startpc, endpc, reg, kind; /* kind: VK_* of a view it holds throughout */
} locvar;

typedef struct fnread {
    int depth; /* 0: the function dumped; 1: a function it defines, ... */
    int linedefined, lastlinedefined, nparams;
    locvar *loc;
    int nloc;
    const uint8_t *code;
    int ncode;
    kstr *k;
    int nk;
    int env; /* index of the _ENV upvalue, -1 if none */
    const int8_t *lineinfo;
    int nline;
    struct {
        int pc, line;
    } * abs;
    int nabs;
    uint8_t captured[32]; /* bit r: register r is an upvalue of a function it defines */
} fnread;

static int line_at(const fnread *f, int pc)
{
    int basepc = -1, line = f->linedefined;
    for (int i = 0; i < f->nabs && f->abs[i].pc <= pc; i++) {
        basepc = f->abs[i].pc;
        line = f->abs[i].line;
    }
    while (basepc++ < pc && basepc < f->nline)
        line += f->lineinfo[basepc];
    return line;
}

static uint32_t ins_at(const fnread *f, int pc)
{
    uint32_t i;
    memcpy(&i, f->code + (size_t)pc * 4, 4);
    return i;
}

static kstr kget(const fnread *f, int idx)
{
    kstr none = {NULL, 0, 0, 0, 0};
    return idx >= 0 && idx < f->nk ? f->k[idx] : none;
}

/* Where instruction pc of f goes next (Lua 5.4's control flow, lvm.c): up
** to two places, -1 for none (a return). */
static void successors(const fnread *f, int pc, int next[2])
{
    uint32_t ins = ins_at(f, pc);
    int op = (int)(ins & 0x7f), bx = (int)((ins >> 15) & 0x1ffff);
    next[0] = pc + 1, next[1] = -1;
    switch (op) {
    case OP_RETURN:
    case OP_RETURN0:
    case OP_RETURN1:
        next[0] = -1;
        break;
    case OP_JMP:
        next[0] = pc + 1 + ((int)((ins >> 7) & 0x1ffffff) - 0xffffff);
        break;
    case OP_LOADKX:     /* skips its EXTRAARG */
    case OP_LFALSESKIP: /* skips the LOADTRUE after it */
        next[0] = pc + 2;
        break;
    case OP_FORLOOP:
    case OP_TFORLOOP:
        next[1] = pc + 1 - bx;
        break;
    case OP_FORPREP: /* past the loop when it runs 0 times */
        next[1] = pc + bx + 2;
        break;
    case OP_TFORPREP: /* to its TFORCALL */
        next[0] = pc + 1 + bx;
        break;
    default: /* a test: on to the jump after it, or past that jump */
        if (op >= OP_EQ && op <= OP_TESTSET) next[1] = pc + 2;
        break;
    }
}

/* Which of f's instructions can run: a malloc'd array of ncode flags, or
** NULL. */
static uint8_t *reachable(const fnread *f)
{
    int n = f->ncode, top = 0;
    uint8_t *seen = calloc((size_t)n, 1);
    int *work = malloc((size_t)n * sizeof *work);
    if (!seen || !work) {
        free(seen);
        free(work);
        return NULL;
    }
    seen[0] = 1;
    work[top++] = 0;
    while (top > 0) {
        int next[2];
        successors(f, work[--top], next);
        for (int k = 0; k < 2; k++)
            if (next[k] >= 0 && next[k] < n && !seen[next[k]]) {
                seen[next[k]] = 1;
                work[top++] = next[k];
            }
    }
    free(work);
    return seen;
}

/* Straight lines through f, made once for its lint: br[q] counts the
** instructions before q that do not just go on to the next one (a jump, a
** test, a loop, a skip, a return), lands[q] the places before q that an
** instruction other than the one before goes to. */
typedef struct flow {
    int *br, *lands;
} flow;

static int flow_init(flow *fl, const fnread *f)
{
    int n = f->ncode;
    fl->br = calloc((size_t)n + 1, sizeof *fl->br);
    fl->lands = calloc((size_t)n + 1, sizeof *fl->lands);
    if (!fl->br || !fl->lands) {
        free(fl->br);
        free(fl->lands);
        return -1;
    }
    for (int q = 0; q < n; q++) {
        int next[2];
        successors(f, q, next);
        fl->br[q + 1] = fl->br[q] + (next[0] != q + 1 || next[1] >= 0);
        for (int k = 0; k < 2; k++)
            if (next[k] >= 0 && next[k] < n && next[k] != q + 1) fl->lands[next[k] + 1]++;
    }
    for (int q = 0; q < n; q++)
        fl->lands[q + 1] += fl->lands[q];
    return 0;
}

static void flow_free(flow *fl)
{
    free(fl->br);
    free(fl->lands);
}

/* Could the instructions from..to-1 not all run, one after the other, when
** `from` does: one among them that does not go on to the next, or one from
** anywhere going to a place after `from`, up to `to`? */
static int branches(const flow *fl, int from, int to)
{
    return fl->br[to] > fl->br[from] || fl->lands[to + 1] > fl->lands[from + 1];
}

/* One line among pol_return_lines' (each line once: returns can share one). */
static void return_line(lint *l, int line)
{
    for (int i = 0; i < l->nret && i < l->maxret; i++)
        if (l->ret_lines[i] == line) return;
    if (l->nret < l->maxret) l->ret_lines[l->nret] = line;
    l->nret++;
}

/* pol_return_lines: the lines of the dumped function's own returns (not
** those of the functions it defines) that can run, and its end if it can. */
static void return_lines(lint *l, const fnread *f)
{
    if (f->depth != 0 || f->ncode < 1) return;
    uint8_t *seen = reachable(f);
    if (!seen) return;
    int end = f->ncode - 1; /* the implicit return */
    for (int pc = 0; pc < end; pc++) {
        int op = (int)(ins_at(f, pc) & 0x7f);
        if (seen[pc] && (op == OP_RETURN || op == OP_RETURN0 || op == OP_RETURN1))
            return_line(l, line_at(f, pc));
    }
    if (l->nret && seen[end]) return_line(l, line_at(f, end)); /* falls off: nothing returned */
    free(seen);
}

static void lint_fn(lint *l, const fnread *f)
{
    kstr none = {NULL, 0, 0, 0, 0};
    int envreg = -1; /* a register holding _ENV (GETUPVAL), until overwritten */
    for (int pc = 0; pc < f->ncode; pc++) {
        uint32_t ins = ins_at(f, pc);
        int op = (int)(ins & 0x7f), a = (int)((ins >> 7) & 0xff);
        int b = (int)((ins >> 16) & 0xff), c = (int)((ins >> 24) & 0xff);
        kstr name = none;
        int read = 0, write = 0, reg = -1;
        if (op == OP_GETTABUP && b == f->env)
            name = kget(f, c), read = 1, reg = a;
        else if (op == OP_SETTABUP && a == f->env)
            name = kget(f, b), write = 1;
        else if (op == OP_GETFIELD && envreg >= 0 && b == envreg)
            name = kget(f, c), read = 1, reg = a;
        else if (op == OP_SETFIELD && envreg >= 0 && a == envreg)
            name = kget(f, b), write = 1;
        if (op == OP_GETUPVAL && b == f->env)
            envreg = a;
        else if (envreg >= 0 && writes(ins, envreg))
            envreg = -1;
        if (!name.s || (l->writes_only && !write)) continue;
        int line = line_at(f, pc);
        if (l->writes_only) { /* the hook's own body (depth 0), not a helper it defines */
            if (f->depth == 0 && !l->set_line) {
                l->set_line = line;
                snprintf(l->set_name, sizeof l->set_name, "%.*s", (int)name.n, name.s);
            }
            continue;
        }
        if (write) {
            add_finding(l, line, "setting global variable '%.*s' (make it local)", (int)name.n,
                        name.s);
            continue;
        }
        if (!read) continue;
        if (!known(l, name, none)) {
            const char *hint = blocked_hint(name);
            add_finding(l, line, "accessing undefined variable '%.*s'%s%s%s", (int)name.n, name.s,
                        hint ? " (" : "", hint ? hint : "", hint ? ")" : "");
            continue;
        }
        /* lib.field right after loading lib: the field must exist. */
        if (pc + 1 < f->ncode) {
            uint32_t nx = ins_at(f, pc + 1);
            if ((nx & 0x7f) == OP_GETFIELD && (int)((nx >> 16) & 0xff) == reg) {
                kstr field = kget(f, (int)((nx >> 24) & 0xff));
                if (field.s && !known(l, name, field))
                    add_finding(l, line, "'%.*s.%.*s' is not available in policies", (int)name.n,
                                name.s, (int)field.n, field.s);
            }
        }
    }
}

/* --- view fields: the hooks' parameters and what comes from them ---------- */

static int written(const fnread *f, int reg, int from, int to)
{
    for (int pc = from; pc < to && pc < f->ncode; pc++)
        if (writes(ins_at(f, pc), reg)) return 1;
    return 0;
}

static int kind_at(const fnread *f, const int *params, int pc, int reg, int depth);

/* The view the instruction at pc leaves in its register A, or VK_NONE. */
static int produced(const fnread *f, const int *params, int pc, int *reg, int depth)
{
    if (pc < 0 || depth > 8) return VK_NONE;
    uint32_t ins = ins_at(f, pc);
    int op = (int)(ins & 0x7f), b = (int)((ins >> 16) & 0xff), c = (int)((ins >> 24) & 0xff);
    *reg = (int)((ins >> 7) & 0xff);
    if (op == OP_MOVE) return kind_at(f, params, pc, b, depth + 1);
    if (op == OP_GETI || op == OP_GETTABLE)
        return kind_at(f, params, pc, b, depth + 1) == VK_AGENTS ? VK_AGENT : VK_NONE;
    if (op == OP_GETFIELD) {
        int kind = kind_at(f, params, pc, b, depth + 1), next = VK_NONE;
        kstr k = kget(f, c);
        if (kind != VK_NONE && k.s) views_has_field(kind, k.s, k.n, &next);
        return next;
    }
    return VK_NONE;
}

/* The view register reg holds when the instruction at pc runs, or VK_NONE
** when that is not known for sure. */
static int kind_at(const fnread *f, const int *params, int pc, int reg, int depth)
{
    int r, kind;
    if (pc > 0 && (kind = produced(f, params, pc - 1, &r, depth)) != VK_NONE && r == reg)
        return kind;
    for (int i = f->nloc - 1; i >= 0; i--) {
        const locvar *v = &f->loc[i];
        if (v->reg == reg && v->startpc <= pc && pc < v->endpc)
            return i < f->nparams ? (reg < 3 ? params[reg] : VK_NONE) : v->kind;
    }
    return reg < f->nparams && reg < 3 ? params[reg] : VK_NONE;
}

/* A generic for over ipairs(agents) whose TFORPREP is at pc: 1 or 0. */
static int ipairs_agents(lint *l, const fnread *f, const int *params, int pc)
{
    if (pc < 3) return 0;
    uint32_t g = ins_at(f, pc - 3), m = ins_at(f, pc - 2), c = ins_at(f, pc - 1);
    int a = (int)((g >> 7) & 0xff);
    kstr name = kget(f, (int)((g >> 24) & 0xff)), none = {NULL, 0, 0, 0, 0};
    return (g & 0x7f) == OP_GETTABUP && (int)((g >> 16) & 0xff) == f->env && name.n == 6 &&
           memcmp(name.s, "ipairs", 6) == 0 && known(l, name, none) && (m & 0x7f) == OP_MOVE &&
           (int)((m >> 7) & 0xff) == a + 1 &&
           kind_at(f, params, pc - 2, (int)((m >> 16) & 0xff), 0) == VK_AGENTS &&
           (c & 0x7f) == OP_CALL && (int)((c >> 7) & 0xff) == a &&
           (int)((ins_at(f, pc) >> 7) & 0xff) == a;
}

/* Push constant k onto L: 1, or 0 (nothing pushed) if it is none a
** decision's field takes as it is (nil, or no room). */
static int push_const(lua_State *L, kstr k)
{
    if (!L || !lua_checkstack(L, 2)) return 0;
    switch (k.tag) {
    case 1:
    case 17:
        lua_pushboolean(L, k.tag == 17);
        return 1;
    case 3:
        lua_pushinteger(L, k.i);
        return 1;
    case 19:
        lua_pushnumber(L, k.x);
        return 1;
    case 4:
    case 20:
        if (!k.s) return 0;
        lua_pushlstring(L, k.s, k.n);
        return 1;
    default:
        return 0;
    }
}

/* Could the instructions from..to (the table in reg being built, then
** returned at `to`) let anything else see or change the table: one reading
** reg (reads) other than as the table stored into? A constant's index or an
** immediate that happens to equal reg is no read of it (op_modes). A local
** a function defined in the hook holds as an upvalue may be changed by any
** call on the way, or a metamethod: that table is seen. */
static int table_seen(const fnread *f, int reg, int from, int to)
{
    if (reg >= 0 && reg < 256 && f->captured[reg >> 3] & 1u << (reg & 7)) return 1;
    for (int q = from; q < to; q++) {
        uint32_t x = ins_at(f, q);
        int op = (int)(x & 0x7f), v;
        if ((op == OP_SETFIELD || op == OP_SETI || op == OP_SETTABLE) &&
            (int)((x >> 7) & 0xff) == reg) {
            for (int n = 1; n < 3; n++) /* its key or value being the table too */
                if (operand(x, n, &v) == O_REG && v == reg) return 1;
        } else if (reads(x, reg)) {
            return 1;
        }
    }
    return 0;
}

/* Is key k set again on reg between from and to? */
static int key_set_again(const fnread *f, int reg, kstr k, int from, int to)
{
    for (int q = from; q < to; q++) {
        uint32_t x = ins_at(f, q);
        if ((x & 0x7f) != OP_SETFIELD || (int)((x >> 7) & 0xff) != reg) continue;
        kstr o = kget(f, (int)((x >> 16) & 0xff));
        if (o.s && o.n == k.n && memcmp(o.s, k.s, k.n) == 0) return 1;
    }
    return 0;
}

static const char *const hook_names[3] = {"route", "retain", "erase"};

/* What instruction y of f puts in register c when it is a load whose value
** is known to be nil or not: "nil", or what it is ("a number", "a table",
** ...); NULL for any other (or another register's). */
static const char *loads(const fnread *f, uint32_t y, int c)
{
    int op = (int)(y & 0x7f), a = (int)((y >> 7) & 0xff);
    if (op == OP_LOADNIL) /* A..A+B */
        return c >= a && c <= a + (int)((y >> 16) & 0xff) ? "nil" : NULL;
    if (a != c) return NULL;
    switch (op) {
    case OP_LOADI:
    case OP_LOADF:
        return "a number";
    case OP_LOADK: {
        kstr k = kget(f, (int)(y >> 15));
        return k.s                         ? "a string"
               : k.tag == 0                ? "nil"
               : k.tag == 1 || k.tag == 17 ? "a boolean"
                                           : "a number";
    }
    case OP_LOADKX:
        return "a constant";
    case OP_LOADFALSE:
    case OP_LOADTRUE:
    case OP_NOT:
        return "a boolean";
    case OP_NEWTABLE:
        return "a table";
    case OP_CLOSURE:
        return "a function";
    default:
        return NULL;
    }
}

/* A constant returned as the decision (return 42, return nil, return
** 'wait'): a load of anything but a table into the register a reachable
** RETURN1 returns, just before it, nothing else going to the return. A
** decision is a table, always. */
static void lint_const_return(lint *l, const fnread *f, const flow *fl, int hook)
{
    uint8_t *seen = reachable(f);
    if (!seen) return;
    for (int pc = 1; pc < f->ncode; pc++) {
        uint32_t ins = ins_at(f, pc);
        if (!seen[pc] || (ins & 0x7f) != OP_RETURN1 || branches(fl, pc - 1, pc)) continue;
        const char *what = loads(f, ins_at(f, pc - 1), (int)((ins >> 7) & 0xff));
        if (what && strcmp(what, "a table"))
            add_finding(l, line_at(f, pc),
                        "%s returns %s here: a decision is a table (%s), so this one is invalid",
                        hook_names[hook], what,
                        hook == 0 ? "{ ring = agent.id }, { wait = 10 }, ..."
                                  : "{ keep = true, review_in_days = 30 }, { delete = true }, ...");
    }
    free(seen);
}

/* What SETFIELD x (at q, of a table built from `from` on, in a straight line)
** stores: 1 a value that is not nil, 0 nil, -1 either. A constant, an
** agent view's id, or the last load into its register (loads). */
static int set_value(const fnread *f, const int *params, uint32_t x, int from, int q)
{
    int c = (int)((x >> 24) & 0xff);
    if ((x >> 15) & 1) return kget(f, c).tag == 0 ? 0 : 1;
    for (int p = q - 1; p >= from; p--) {
        uint32_t y = ins_at(f, p);
        int op = (int)(y & 0x7f), a = (int)((y >> 7) & 0xff);
        const char *what = loads(f, y, c);
        if (what) return strcmp(what, "nil") ? 1 : 0;
        /* An agent's id (agents[1].id, a.id in an ipairs loop): an agent
        ** view always has one (an index of nil stops the hook there). */
        if (op == OP_GETFIELD && a == c) {
            kstr k = kget(f, (int)((y >> 24) & 0xff));
            if (k.s && k.n == 2 && !memcmp(k.s, "id", 2) &&
                kind_at(f, params, p, (int)((y >> 16) & 0xff), 0) == VK_AGENT)
                return 1;
        }
        /* Anything else that writes it: unknown (a call or ... may write
        ** registers from A on). */
        if (writes(y, c) || ((op == OP_CALL || op == OP_VARARG || op == OP_TFORCALL) && a <= c))
            return -1;
    }
    return -1;
}

/* A table the hook returns as it was built ({ keep = true, ... }, or a local
** {} given fields and returned as the same register): each field it is given
** must be one of the hook's decision (views.c), or the decision is invalid.
** A table whose register is written before the return is not judged. Built
** and returned in a straight line, seen by nothing else on the way, its
** fields must also be able to go together ({ ring = ..., wait = 10 }, an
** erase's {}). */
static void lint_decision(lint *l, const fnread *f, const int *params, int hook)
{
    if (l->hook_protos[hook] > 1) return; /* which function is the hook is not known */
    flow fl;
    if (flow_init(&fl, f)) return;
    lint_const_return(l, f, &fl, hook);
    for (int pc = 0; pc < f->ncode; pc++) {
        uint32_t ins = ins_at(f, pc);
        if ((ins & 0x7f) != OP_NEWTABLE) continue;
        int reg = (int)((ins >> 7) & 0xff), end = -1;
        for (int q = pc + 1; q < f->ncode && end < 0; q++) {
            uint32_t x = ins_at(f, q);
            int op = (int)(x & 0x7f), a = (int)((x >> 7) & 0xff);
            if ((op == OP_RETURN1 || (op == OP_RETURN && ((x >> 16) & 0xff) == 2)) && a == reg)
                end = q;
            else if (op == OP_RETURN || op == OP_RETURN0 || op == OP_RETURN1 || writes(x, reg))
                break;
        }
        for (int q = pc + 1; q < end; q++) {
            uint32_t x = ins_at(f, q);
            if ((x & 0x7f) != OP_SETFIELD || (int)((x >> 7) & 0xff) != reg) continue;
            kstr k = kget(f, (int)((x >> 16) & 0xff));
            const char *near;
            if (!k.s) continue;
            if (!views_decision_field(hook, k.s, k.n, &near)) {
                add_finding(l, line_at(f, q),
                            "%s returns a decision with unknown field '%.*s'%s%s%s: it is invalid",
                            hook_names[hook], (int)k.n, k.s, near ? " (did you mean '" : "",
                            near ? near : "", near ? "'?)" : "");
                continue;
            }
            /* A constant value (the instruction's k bit: C is a constant's
            ** index) that the field can never take, and that is what is
            ** returned: not set again, the table seen by nothing else (a
            ** helper given it could change it) on the way to the return. */
            char msg[400];
            if (((x >> 15) & 1) && !key_set_again(f, reg, k, q + 1, end) &&
                !table_seen(f, reg, pc + 1, end) &&
                push_const(l->L, kget(f, (int)((x >> 24) & 0xff)))) {
                int bad = views_decision_const(hook, k.s, k.n, l->L, -1, msg, sizeof msg);
                lua_pop(l->L, 1);
                if (bad)
                    add_finding(l, line_at(f, q), "%s returns an invalid decision here: %s",
                                hook_names[hook], msg);
            }
        }
        if (end < 0 || table_seen(f, reg, pc + 1, end) || branches(&fl, pc, end)) continue;
        /* A field set to nil is no field: one whose value is surely not nil
        ** is there (definite), one whose value may be nil may be (maybe). */
        unsigned definite = 0, maybe = 0;
        int judged = 1;
        for (int q = pc + 1; q < end && judged; q++) {
            uint32_t x = ins_at(f, q);
            int op = (int)(x & 0x7f);
            if ((int)((x >> 7) & 0xff) != reg) continue;
            kstr k = op == OP_SETFIELD ? kget(f, (int)((x >> 16) & 0xff)) : (kstr){0};
            int bit = k.s ? views_decision_key_bit(hook, k.s, k.n) : -1;
            if (op == OP_SETFIELD && bit >= 0) {
                int v = set_value(f, params, x, pc + 1, q); /* the last set wins */
                definite = v > 0 ? definite | 1u << bit : definite & ~(1u << bit);
                maybe = v < 0 ? maybe | 1u << bit : maybe & ~(1u << bit);
            } else if (op == OP_SETFIELD || op == OP_SETTABLE || op == OP_SETI ||
                       op == OP_SETLIST) {
                judged = 0; /* a field it cannot have, reported above, or keys unknown here */
            }
        }
        /* Invalid only if no choice of the maybe fields passes (each proper
        ** subset of them after all of them), and said as the run time says it
        ** of all of them there: a value that may be nil is most often not,
        ** so { ring = best.id, timeout = 20, wait = 5 } is "'ring' and 'wait'
        ** cannot go together", not what it would be without its ring. */
        char msg[400], other[400];
        if (!judged || !views_decision_keys(hook, definite | maybe, msg, sizeof msg)) continue;
        for (unsigned sub = (maybe - 1) & maybe; judged && sub != maybe; sub = (sub - 1) & maybe)
            if (!views_decision_keys(hook, definite | sub, other, sizeof other)) judged = 0;
        if (judged)
            add_finding(l, line_at(f, end), "%s returns an invalid decision here: %s",
                        hook_names[hook], msg);
    }
    flow_free(&fl);
}

/* A hook's body: field names read from its views (route: call, agents,
** ctx; retain: record, ctx; erase: record, request, ctx), from ctx.queue,
** and from agents: an ipairs loop's value, a local set from agents[i] and
** never reassigned, or agents[i].field itself. */
static void lint_fields(lint *l, fnread *f, int hook)
{
    static const int kinds[3][3] = {{VK_CALL, VK_AGENTS, VK_CTX},
                                    {VK_RECORD, VK_RCTX, VK_NONE},
                                    {VK_RECORD, VK_REQUEST, VK_RCTX}};
    int params[3] = {VK_NONE, VK_NONE, VK_NONE};
    /* return a, b: the hook's second value makes the decision invalid
    ** (views.c, one_result). RETURN's B is the count plus one; 0 is "what
    ** a call returned", which cannot be known here. */
    for (int pc = 0; pc < f->ncode; pc++) {
        uint32_t ins = ins_at(f, pc);
        int b = (int)((ins >> 16) & 0xff);
        if ((ins & 0x7f) == OP_RETURN && b >= 3)
            add_finding(l, line_at(f, pc),
                        "%s returns %d values here; a decision is one table (the second value "
                        "makes it invalid)",
                        hook_names[hook], b - 1);
    }
    if (f->nloc > 0 && f->loc[0].name.n == 4 && memcmp(f->loc[0].name.s, "self", 4) == 0) {
        lint_decision(l, f, params, hook); /* its parameters are not the views */
        return;                            /* declared with ':': check_params says so */
    }
    for (int i = 0; i < 3 && i < f->nparams; i++)
        if (!written(f, i, 0, f->ncode)) params[i] = kinds[hook][i];
    /* Locals that hold an agent view (or ctx.queue) from start to end. */
    for (int i = 0; i < f->nloc; i++) {
        locvar *v = &f->loc[i];
        int def = v->startpc - 1, r;
        if (i < f->nparams || def < 0 || def >= f->ncode) continue;
        uint32_t ins = ins_at(f, def);
        int kind = VK_NONE;
        if ((ins & 0x7f) == OP_TFORPREP) {
            if (v->reg == (int)((ins >> 7) & 0xff) + 5 && ipairs_agents(l, f, params, def))
                kind = VK_AGENT;
        } else if ((kind = produced(f, params, def, &r, 0)) != VK_NONE && r != v->reg) {
            kind = VK_NONE;
        }
        if (kind != VK_NONE && !written(f, v->reg, v->startpc, v->endpc)) v->kind = kind;
    }
    lint_decision(l, f, params, hook);
    for (int pc = 0; pc < f->ncode; pc++) {
        uint32_t ins = ins_at(f, pc);
        if ((ins & 0x7f) != OP_GETFIELD) continue;
        int kind = kind_at(f, params, pc, (int)((ins >> 16) & 0xff), 0), next;
        kstr k = kget(f, (int)((ins >> 24) & 0xff));
        if (kind == VK_NONE || kind == VK_AGENTS || !k.s || views_has_field(kind, k.s, k.n, &next))
            continue;
        const char *near = views_field_near(kind, k.s, k.n);
        add_finding(l, line_at(f, pc), "%s has no field '%.*s'%s%s%s", views_kind_name(kind),
                    (int)k.n, k.s, near ? " (did you mean '" : "", near ? near : "",
                    near ? "'?)" : "");
    }
}

static void read_fn(lint *l, rd *r, int depth, uint8_t *outer)
{
    if (depth > 200) {
        r->err = 1;
        return;
    }
    fnread f = {0};
    f.env = -1;
    f.depth = depth;
    rd_string(r); /* source */
    f.linedefined = (int)rd_size(r);
    f.lastlinedefined = (int)rd_size(r);
    f.nparams = rd_byte(r);
    rd_skip(r, 2); /* is_vararg, maxstacksize */
    f.ncode = (int)rd_size(r);
    f.code = rd_skip(r, (size_t)f.ncode * 4);
    f.nk = (int)rd_size(r);
    if (r->err || f.nk < 0 || (size_t)f.nk > (size_t)(r->end - r->p)) {
        r->err = 1;
        return;
    }
    f.k = calloc((size_t)f.nk + 1, sizeof *f.k);
    for (int i = 0; i < f.nk && !r->err && f.k; i++) {
        int tag = rd_byte(r);
        const uint8_t *p;
        switch (tag) {
        case 3: /* integer */
            if ((p = rd_skip(r, sizeof(lua_Integer)))) memcpy(&f.k[i].i, p, sizeof(lua_Integer));
            break;
        case 19: /* float */
            if ((p = rd_skip(r, sizeof(lua_Number)))) memcpy(&f.k[i].x, p, sizeof(lua_Number));
            break;
        case 4:  /* short string */
        case 20: /* long string */
            f.k[i] = rd_string(r);
            break;
        default: /* nil, false, true */
            break;
        }
        f.k[i].tag = tag;
    }
    /* Its upvalues (instack, idx, kind): one in the stack is the defining
    ** function's register idx, which this one can then change when called. */
    int nup = (int)rd_size(r);
    for (int i = 0; i < nup && !r->err; i++) {
        int instack = rd_byte(r), idx = rd_byte(r);
        rd_byte(r);
        if (instack && outer) outer[idx >> 3] |= (uint8_t)(1u << (idx & 7));
    }
    int np = (int)rd_size(r);
    for (int i = 0; i < np && !r->err; i++)
        read_fn(l, r, depth + 1, f.captured);
    f.nline = (int)rd_size(r);
    f.lineinfo = (const int8_t *)rd_skip(r, (size_t)f.nline);
    f.nabs = (int)rd_size(r);
    if (!r->err && f.nabs > 0 && (size_t)f.nabs <= (size_t)(r->end - r->p)) {
        f.abs = calloc((size_t)f.nabs, sizeof *f.abs);
        for (int i = 0; i < f.nabs && f.abs; i++) {
            f.abs[i].pc = (int)rd_size(r);
            f.abs[i].line = (int)rd_size(r);
        }
    }
    int nloc = (int)rd_size(r);
    if (!r->err && nloc > 0 && (size_t)nloc <= (size_t)(r->end - r->p))
        f.loc = calloc((size_t)nloc, sizeof *f.loc);
    for (int i = 0; i < nloc && !r->err; i++) {
        kstr name = rd_string(r);
        int sp = (int)rd_size(r), ep = (int)rd_size(r);
        if (!f.loc) continue;
        /* A local's register: the locals active where it starts, before it. */
        int reg = 0;
        for (int j = 0; j < i; j++)
            if (f.loc[j].startpc <= sp && sp < f.loc[j].endpc) reg++;
        f.loc[i] = (locvar){name, sp, ep, reg, VK_NONE};
        f.nloc = i + 1;
    }
    int nupn = (int)rd_size(r);
    for (int i = 0; i < nupn && !r->err; i++) {
        kstr s = rd_string(r);
        if (s.n == 4 && memcmp(s.s, "_ENV", 4) == 0) f.env = i;
    }
    if (!r->err && l->count_only) {
        for (int h = 0; h < 3; h++)
            l->hook_protos[h] += l->hook_first[h] && l->hook_first[h] == f.linedefined &&
                                 l->hook_last[h] == f.lastlinedefined;
    } else if (!r->err && f.k && (f.nabs == 0 || f.abs) && l->ret_lines) {
        return_lines(l, &f);
    } else if (!r->err && f.k && (f.nabs == 0 || f.abs)) {
        lint_fn(l, &f);
        for (int h = 0; h < 3 && (f.loc || !nloc) && !l->writes_only; h++)
            if (l->hook_first[h] && l->hook_first[h] == f.linedefined &&
                l->hook_last[h] == f.lastlinedefined) {
                lint_fields(l, &f, h);
                break;
            }
    }
    free(f.k);
    free(f.abs);
    free(f.loc);
}

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud)
{
    (void)L;
    return buf_put(ud, p, sz);
}

typedef struct checkjob {
    lint *l;
    const char *src;
    size_t len;
    int ok;
} checkjob;

/* Compile (again, cheaply) and walk the dump. */
static int check_job(lua_State *L)
{
    checkjob *j = lua_touserdata(L, 1);
    char chunk[SB_NAME_MAX + 24];
    snprintf(chunk, sizeof chunk, "@%s", j->l->file);
    size_t bom = utf8_bom(j->src, j->len);
    if (luaL_loadbufferx(L, j->src + bom, j->len - bom, chunk, "t") != LUA_OK) return lua_error(L);
    sb_buf dump = {0};
    if (lua_dump(L, dump_writer, &dump, 0) == 0 && dump.len > 32) {
        /* Twice: first to count the functions on each hook's lines (a helper
        ** defined on the hook's one line is told from it by nothing else). */
        for (int pass = 1; pass >= 0; pass--) {
            rd r = {(const uint8_t *)dump.p, (const uint8_t *)dump.p + dump.len, 0};
            rd_skip(&r, 4 + 1 + 1 + 6 + 3 + 8 + 8); /* header */
            rd_byte(&r);                            /* upvalues of the main closure */
            j->l->count_only = pass;
            read_fn(j->l, &r, 0, NULL);
            j->ok = !r.err;
        }
    }
    buf_free(&dump);
    return 0;
}

/* Read the Lua function in registry slot ref through l (set up for one
** job: hook_global's or pol_return_lines'; the function read is depth 0). */
static void scan_fn(lua_State *L, int ref, lint *l)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    if (lua_type(L, -1) != LUA_TFUNCTION || lua_iscfunction(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    l->L = L;
    sb_buf dump = {0};
    if (lua_dump(L, dump_writer, &dump, 0) == 0 && dump.len > 32) {
        rd r = {(const uint8_t *)dump.p, (const uint8_t *)dump.p + dump.len, 0};
        rd_skip(&r, 4 + 1 + 1 + 6 + 3 + 8 + 8); /* header */
        rd_byte(&r);                            /* upvalues of the closure */
        read_fn(l, &r, 0, NULL);
    }
    lua_pop(L, 1);
    buf_free(&dump);
    free(l->f);
    l->f = NULL;
}

/* Does the hook in registry slot ref set a global in its own body? Its line
** (0: no) and the global's name. The sandbox fails such a hook every time
** that line runs, so upload and reload refuse it (load_and_run) as they
** refuse a policy that does not load; `switchboard policy check` reports it
** with its other findings. Reads only the hook's bytecode: no code runs. */
static int hook_global(lua_State *L, int ref, char *name, size_t n)
{
    lint l = {.writes_only = 1};
    scan_fn(L, ref, &l);
    snprintf(name, n, "%s", l.set_name);
    return l.set_line;
}

int pol_return_lines(lua_State *L, int ref, int *lines, int max)
{
    lint l = {.ret_lines = lines, .maxret = max};
    scan_fn(L, ref, &l);
    return l.nret;
}

/* Hook signatures: parameter count and a method-style 'self'. */
static void check_params(lint *l, int ref, const char *hook, int maxp, const char *sig)
{
    lua_State *L = l->L;
    lua_Debug ar;
    if (ref == LUA_NOREF) return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    const char *p1 = lua_getlocal(L, NULL, 1);
    int self = p1 && strcmp(p1, "self") == 0;
    lua_pushvalue(L, -1);
    if (!lua_getinfo(L, ">Su", &ar)) {
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    if (self)
        add_finding(l, ar.linedefined,
                    "hook '%s' is declared with ':' (its first parameter is 'self'); declare "
                    "function P.%s%s",
                    hook, hook, sig);
    else if (ar.nparams > maxp)
        add_finding(l, ar.linedefined, "hook '%s' takes %d parameters; it is called as %s%s", hook,
                    ar.nparams, hook, sig);
}

static int by_line(const void *a, const void *b)
{
    const finding *x = a, *y = b;
    return x->line != y->line ? (x->line < y->line ? -1 : 1) : strcmp(x->msg, y->msg);
}

int pol_load_beside(const pol_limits *lim, const char (*names)[SB_NAME_MAX + 1], const sb_buf *srcs,
                    size_t n, const char *name, const char *src, size_t len, char *err,
                    size_t errlen)
{
    sbx *sb = sbx_new(lim->memory, NULL, NULL);
    if (!sb) return 1;
    int refs[3], rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        if (sbx_load(sb, names[i], srcs[i].p, srcs[i].len, lim->load_instructions,
                     sbx_load_wall(lim->wall_ms), refs, NULL, err, errlen))
            rc = 1;
    if (!rc && sbx_load(sb, name, src, len, lim->load_instructions, sbx_load_wall(lim->wall_ms),
                        refs, NULL, err, errlen))
        rc = 2;
    sbx_free(sb);
    return rc;
}

int sb_policy_check(const char *name, const char *source, size_t len, sb_result *res)
{
    return sb_policy_check_cfg(NULL, name, source, len, res);
}

int sb_policy_check_cfg(const sb_config *cfg, const char *name, const char *source, size_t len,
                        sb_result *res)
{
    res_reset(res);
    pol_limits lim;
    limits_for(cfg, &lim);
    char nm[SB_NAME_MAX + 8], err[512];
    base_name(name, nm, sizeof nm);
    if (!source) return res_err(res, SB_EINVAL, "source", "no source given");
    char file[SB_NAME_MAX + 8], why[SB_NAME_MAX + 160];
    snprintf(file, sizeof file, "%s.lua", nm);
    if (pol_source_check(file, source, len, why, sizeof why))
        return res_err(res, SB_EPOLICY, "source", "%s", why);
    sbx *sb = sbx_new(lim.memory, NULL, NULL);
    if (!sb) return res_err(res, SB_ENOMEM, NULL, "cannot create a policy state");
    sb->now_ms = (int64_t)(CASE_NOW_DEFAULT * 1000);
    lint l = {.L = sb->L, .sb = sb};
    snprintf(l.file, sizeof l.file, "%s.lua", nm);

    sb_buf problems = {0}, warn = {0};
    int refs[3], nproblems = 0;
    int load_failed = 0;
    if (sbx_load(sb, nm, source, len, lim.load_instructions, sbx_load_wall(lim.wall_ms), refs,
                 &warn, err, sizeof err)) {
        load_failed = 1;
        refs[0] = refs[1] = refs[2] = LUA_NOREF;
    }
    /* Lint whatever compiles, also when the top level failed. */
    for (int i = 0; i < 3; i++) {
        lua_Debug ar;
        if (refs[i] == LUA_NOREF) continue;
        lua_rawgeti(sb->L, LUA_REGISTRYINDEX, refs[i]);
        if (lua_getinfo(sb->L, ">S", &ar) && ar.what[0] == 'L') {
            l.hook_first[i] = ar.linedefined;
            l.hook_last[i] = ar.lastlinedefined;
        }
    }
    checkjob cj = {&l, source, len, 0};
    sbx_arm(sb, lim.load_instructions, sbx_load_wall(lim.wall_ms));
    sbx_pause(sb);
    if (sbx_run(sb, check_job, &cj, NULL, 0) == 0) {
        check_params(&l, refs[0], "route", 3, "(call, agents, ctx)");
        check_params(&l, refs[1], "retain", 2, "(record, ctx)");
        check_params(&l, refs[2], "erase", 3, "(record, request, ctx)");
        if (l.n) qsort(l.f, l.n, sizeof *l.f, by_line);
        /* The top level calling a library function policies do not have
        ** (os.getenv) fails "attempt to call a nil value (field 'getenv')"
        ** where the lint says what it is: its line once, in the lint's words. */
        const char *at = load_failed ? strchr(err, ':') : NULL, *f;
        int eline = at ? atoi(at + 1) : 0;
        if (eline && (f = strstr(err, ": attempt to call a nil value (field '"))) {
            char want[96];
            const char *fn = f + sizeof ": attempt to call a nil value (field '" - 1,
                       *q = strchr(fn, '\'');
            snprintf(want, sizeof want, ".%.*s' is not available in policies",
                     q ? (int)(q - fn) : 0, fn);
            for (size_t i = 0; q && i < l.n && load_failed; i++)
                if (l.f[i].line == eline && strstr(l.f[i].msg, want)) load_failed = 0;
        }
        if (load_failed) {
            buf_printf(&problems, "%s\n", err);
            nproblems++;
            load_failed = 0;
        }
        for (size_t i = 0; i < l.n; i++) {
            buf_printf(&problems, "%s:%d: %s\n", l.file, l.f[i].line, l.f[i].msg);
            nproblems++;
        }
    }
    if (load_failed) { /* the lint did not run */
        buf_printf(&problems, "%s\n", err);
        nproblems++;
    }
    if (warn.len) {
        buf_puts(&problems, warn.p);
        for (size_t i = 0; i < warn.len; i++)
            nproblems += warn.p[i] == '\n';
    }
    int rc = 0;
    if (nproblems) {
        /* Messages are capped (res keeps about 1 KiB): the whole list is
        ** also the result's document. */
        json_t *arr = json_array();
        char *save = NULL, *text = problems.p ? strdup(problems.p) : NULL;
        for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line;
             line = strtok_r(NULL, "\n", &save))
            json_array_append_new(arr, json_string(line));
        free(text);
        if (problems.len && problems.p[problems.len - 1] == '\n') problems.p[--problems.len] = 0;
        if (problems.len > 960) {
            size_t cut = 900;
            while (cut > 0 && problems.p[cut] != '\n')
                cut--;
            problems.p[cut] = 0;
            rc = res_err(res, SB_EPOLICY, "source", "%s\n... (%d problems in all)", problems.p,
                         nproblems);
        } else {
            rc = res_err(res, SB_EPOLICY, "source", "%s", problems.p);
        }
        res_doc(res, json_pack("{so}", "problems", arr));
    }
    free(l.f);
    buf_free(&problems);
    buf_free(&warn);
    sbx_free(sb);
    return rc;
}
