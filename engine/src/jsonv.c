/*
** jsonv.c — strict JSON field readers (see jsonv.h).
*/
#include "jsonv.h"
#include "sandbox.h" /* sbx_suggest_in: "did you mean" for an unknown field */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *jv_path(char *buf, size_t cap, const char *prefix, const char *key)
{
    int n;
    if (prefix && *prefix)
        n = snprintf(buf, cap, "%s.%s", prefix, key);
    else
        n = snprintf(buf, cap, "%s", key);
    if (cap && n >= (int)cap) utf8_cut_end(buf); /* a long key: cut between characters */
    return buf;
}

const char *jv_error_text(const json_error_t *e)
{
    enum json_error_code ec = json_error_code(e);
    if (ec == json_error_null_character || ec == json_error_null_byte_in_key)
        return "strings may not contain \\u0000";
    return e->text;
}

/* A number too big for a document: what a marker string stands in place
** of, to find where in the document it was. */
#define TOO_BIG "\001sb:too-big\001"
#define TOO_BIG_JSON "\"\\u0001sb:too-big\\u0001\""

/* The path of the TOO_BIG string in v, onto path (its length n so far,
** cap its size): 1 when found. */
static int too_big_at(const json_t *v, char *path, size_t n, size_t cap)
{
    if (json_is_string(v)) return !strcmp(json_string_value(v), TOO_BIG);
    if (n >= cap - 1) return 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            snprintf(path + n, cap - n, n ? ".%s" : "%s", k);
            if (too_big_at(x, path, strlen(path), cap)) return 1;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            snprintf(path + n, cap - n, "[%zu]", i);
            if (too_big_at(x, path, strlen(path), cap)) return 1;
        }
    }
    path[n] = 0;
    return 0;
}

/* The number literal ending at byte `end` of text (jansson's position after
** it): its start, a '-' or a digit (end when there is none). */
static size_t number_start(const char *text, size_t end)
{
    size_t i = end;
    while (i > 0 && text[i - 1] && strchr("0123456789+-.eE", text[i - 1]))
        i--;
    while (i < end && text[i] != '-' && (text[i] < '0' || text[i] > '9'))
        i++;
    return i;
}

int jv_too_big(const char *text, size_t len, const json_error_t *err, const char *prefix,
               sb_result *res)
{
    size_t end = (size_t)err->position, start = end <= len ? number_start(text, end) : end;
    if (start >= end)
        return res_err(res, SB_EINVAL, prefix, "malformed JSON at line %d column %d: %s", err->line,
                       err->column, err->text);
    const char *lit = text + start;
    size_t n = end - start;
    int neg = lit[0] == '-',
        real = memchr(lit, '.', n) || memchr(lit, 'e', n) || memchr(lit, 'E', n);
    /* Where it is: the literal made a marker string, and any other number
    ** too big after it 0, in a copy parsed again (a few times at most: each
    ** parse reads the whole text). */
    char path[256] = "";
    size_t cap = len - n + sizeof TOO_BIG_JSON;
    char *copy = malloc(cap);
    if (copy) {
        memcpy(copy, text, start);
        memcpy(copy + start, TOO_BIG_JSON, sizeof TOO_BIG_JSON - 1);
        memcpy(copy + start + sizeof TOO_BIG_JSON - 1, text + end, len - end);
        size_t cl = len - n + sizeof TOO_BIG_JSON - 1;
        for (int tries = 0; tries < 8; tries++) {
            json_error_t e2;
            json_t *j = json_loadb(copy, cl, JSON_REJECT_DUPLICATES, &e2);
            if (j) {
                too_big_at(j, path, 0, sizeof path);
                json_decref(j);
                break;
            }
            size_t e = (size_t)e2.position, s = e <= cl ? number_start(copy, e) : e;
            if (json_error_code(&e2) != json_error_numeric_overflow || s >= e) break;
            copy[s] = '0';
            memmove(copy + s + 1, copy + e, cl - e);
            cl -= e - s - 1;
        }
        free(copy);
    }
    if (strlen(path) == sizeof path - 1) utf8_cut_end(path);
    char shown[64];
    if (n > 40)
        snprintf(shown, sizeof shown, "%.24s... (%zu characters)", lit, n);
    else
        snprintf(shown, sizeof shown, "%.*s", (int)n, lit);
    const char *how = real ? (neg ? "too small a number (numbers go down to about -1.8e308)"
                                  : "too big a number (numbers go up to about 1.8e308)")
                           : (neg ? "too small a number (whole numbers go down to "
                                    "-9223372036854775808)"
                                  : "too big a number (whole numbers go up to "
                                    "9223372036854775807)");
    if (!path[0])
        return res_err(res, SB_EINVAL, prefix, "%s at line %d column %d: %s", shown, err->line,
                       err->column - (int)n + 1, how);
    char field[300];
    if (prefix && *prefix)
        snprintf(field, sizeof field, "%s%s%s", prefix, path[0] == '[' ? "" : ".", path);
    else
        snprintf(field, sizeof field, "%s", path);
    return res_err(res, SB_EINVAL, field, "'%s' is %s: %s", field, shown, how);
}

/* text as JSON (jansson's flags), or SB_EINVAL (SB_ENOMEM) saying why not. */
static int load(const char *text, size_t len, size_t flags, json_t **out, sb_result *res)
{
    json_error_t err;
    *out = NULL;
    if (!text) return res_err(res, SB_EINVAL, NULL, "no JSON document given");
    json_oom_reset();
    json_t *j = json_loadb(text, len, flags | JSON_REJECT_DUPLICATES, &err);
    if (!j && json_oom(&err)) return res_err(res, SB_ENOMEM, NULL, "out of memory reading JSON");
    size_t nul = j ? len : strnlen(text, len);
    if (!j && len && nul == len - 1)
        return res_err(res, SB_EINVAL, NULL,
                       "the length given counts the string's terminating NUL: pass strlen()");
    /* JSON text holds no NUL byte (a string's is written \u0000): one inside
    ** the length is a length too long or a body cut short, and jansson would
    ** speak of a control character or an end of file instead. */
    if (!j && nul < len)
        return res_err(res, SB_EINVAL, NULL,
                       "a NUL byte at offset %zu of the %zu bytes given: JSON text has none "
                       "(is the length right?)",
                       nul, len);
    if (!j && jv_error_text(&err) != err.text)
        return res_err(res, SB_EINVAL, NULL, "%s (line %d column %d)", jv_error_text(&err),
                       err.line, err.column);
    if (!j && json_error_code(&err) == json_error_numeric_overflow)
        return jv_too_big(text, len, &err, NULL, res);
    if (!j)
        return res_err(res, SB_EINVAL, NULL, "malformed JSON at line %d column %d: %s", err.line,
                       err.column, err.text);
    *out = j;
    return 0;
}

int jv_parse(const char *text, size_t len, json_t **out, sb_result *res)
{
    int rc = load(text, len, 0, out, res);
    if (rc || json_is_object(*out)) return rc;
    json_decref(*out);
    *out = NULL;
    return res_err(res, SB_EINVAL, NULL, "expected a JSON object");
}

int sb_json_check(const char *json, size_t len, sb_result *res)
{
    json_t *j;
    res_reset(res);
    int rc = load(json, len, JSON_DECODE_ANY, &j, res);
    if (rc) return rc;
    json_decref(j);
    return SB_OK;
}

int jv_keys(const json_t *obj, const char *const *allowed, const char *prefix, sb_result *res)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        int found = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, k) == 0) {
                found = 1;
                break;
            }
        if (!found) {
            char path[256];
            int n = 0;
            while (allowed[n])
                n++;
            const char *near = sbx_suggest_in(k, strlen(k), allowed, NULL, n);
            /* Nothing it is close to, among a few: those few ('deskphone' in
            ** devices: expected landline, mobile or softphone). */
            char few[160] = "";
            if (!near && n <= 4) {
                size_t o = 0;
                for (int i = 0; i < n && o < sizeof few; i++)
                    o += (size_t)snprintf(few + o, sizeof few - o, "%s%s",
                                          i == 0       ? " (expected "
                                          : i == n - 1 ? " or "
                                                       : ", ",
                                          allowed[i]);
                if (o < sizeof few) snprintf(few + o, sizeof few - o, ")");
            }
            return res_err(res, SB_EINVAL, jv_path(path, sizeof path, prefix, k),
                           "unknown field '%s'%s%s%s%s", k, near ? " (did you mean '" : "",
                           near ? near : "", near ? "'?)" : "", few);
        }
    }
    return 0;
}

int jv_str(const json_t *obj, const char *key, const char *prefix, int required, char *dst,
           size_t cap, sb_result *res)
{
    char path[256];
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return res_err(res, SB_EINVAL, jv_path(path, sizeof path, prefix, key),
                           "missing field '%s'", path);
        return 0;
    }
    if (!json_is_string(v))
        return res_err(res, SB_EINVAL, jv_path(path, sizeof path, prefix, key),
                       "'%s' must be a string", path);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n >= cap || memchr(s, 0, n))
        return res_err(res, SB_EINVAL, jv_path(path, sizeof path, prefix, key),
                       "'%s' must be at most %zu bytes without NUL", path, cap - 1);
    memcpy(dst, s, n);
    dst[n] = 0;
    return 0;
}

int jv_id(const json_t *obj, const char *key, const char *prefix, int required, char *dst,
          sb_result *res)
{
    char tmp[SB_ID_MAX + 2] = "";
    char path[256];
    int rc = jv_str(obj, key, prefix, required, tmp, sizeof tmp, res);
    if (rc == SB_EINVAL && json_is_string(json_object_get(obj, key)))
        return res_err(res, SB_EINVAL, jv_path(path, sizeof path, prefix, key),
                       "'%s' must be 1..128 characters of A-Z a-z 0-9 . _ : @ + -", path);
    if (rc) return rc;
    if (!json_object_get(obj, key) || json_is_null(json_object_get(obj, key))) return 0;
    if (!id_valid(tmp))
        return res_err(res, SB_EINVAL, jv_path(path, sizeof path, prefix, key),
                       "'%s' must be 1..128 characters of A-Z a-z 0-9 . _ : @ + -", path);
    strcpy(dst, tmp);
    return 0;
}

int jv_int(const json_t *obj, const char *key, const char *prefix, int required, long long lo,
           long long hi, long long *v, sb_result *res)
{
    char path[256];
    json_t *j = json_object_get(obj, key);
    if (!j || json_is_null(j)) {
        if (required)
            return res_err(res, SB_EINVAL, jv_path(path, sizeof path, prefix, key),
                           "missing field '%s'", path);
        return 0;
    }
    long long x;
    if (json_is_integer(j)) {
        x = json_integer_value(j);
    } else if (json_is_real(j) && json_real_value(j) == floor(json_real_value(j)) &&
               fabs(json_real_value(j)) < 9e15) {
        x = (long long)json_real_value(j);
    } else if (json_is_real(j) && json_real_value(j) == floor(json_real_value(j)) &&
               (json_real_value(j) < (double)lo || json_real_value(j) > (double)hi)) {
        /* A whole number written as a real (1e30, a float of Lua 5.1 or
        ** JavaScript) past the range: said as any number past it is. */
        return res_err(res, SB_EINVAL, jv_path(path, sizeof path, prefix, key),
                       "'%s' must be between %lld and %lld", path, lo, hi);
    } else {
        return res_err(res, SB_EINVAL, jv_path(path, sizeof path, prefix, key),
                       "'%s' must be an integer", path);
    }
    if (x < lo || x > hi)
        return res_err(res, SB_EINVAL, jv_path(path, sizeof path, prefix, key),
                       "'%s' must be between %lld and %lld", path, lo, hi);
    *v = x;
    return 0;
}

int jv_num(const json_t *obj, const char *key, const char *prefix, double lo, double hi, double *v,
           sb_result *res)
{
    char path[256];
    json_t *j = json_object_get(obj, key);
    if (!j || json_is_null(j)) return 0;
    if (!json_is_number(j))
        return res_err(res, SB_EINVAL, jv_path(path, sizeof path, prefix, key),
                       "'%s' must be a number", path);
    double x = json_number_value(j);
    if (!(x >= lo && x <= hi))
        return res_err(res, SB_EINVAL, jv_path(path, sizeof path, prefix, key),
                       "'%s' must be between %g and %g", path, lo, hi);
    *v = x;
    return 0;
}

void jv_drop_null(json_t *obj, const char *key)
{
    if (json_is_object(obj) && json_is_null(json_object_get(obj, key))) json_object_del(obj, key);
}

void jv_drop_readonly(json_t *obj, const char *const *names)
{
    if (!json_is_object(obj)) return;
    for (const char *const *n = names; *n; n++)
        json_object_del(obj, *n);
}
