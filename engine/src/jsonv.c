/*
** jsonv.c — strict JSON field readers (see jsonv.h).
*/
#include "jsonv.h"

#include <math.h>
#include <stdio.h>
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

int jv_parse(const char *text, size_t len, json_t **out, sb_result *res)
{
    json_error_t err;
    *out = NULL;
    if (!text) return res_err(res, SB_EINVAL, NULL, "no JSON document given");
    json_oom_reset();
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
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
    if (!j)
        return res_err(res, SB_EINVAL, NULL, "malformed JSON at line %d column %d: %s", err.line,
                       err.column, err.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return res_err(res, SB_EINVAL, NULL, "expected a JSON object");
    }
    *out = j;
    return 0;
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
            return res_err(res, SB_EINVAL, jv_path(path, sizeof path, prefix, k),
                           "unknown field '%s'", k);
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
                           "missing field '%s'", key);
        return 0;
    }
    if (!json_is_string(v))
        return res_err(res, SB_EINVAL, jv_path(path, sizeof path, prefix, key),
                       "'%s' must be a string", key);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n >= cap || memchr(s, 0, n))
        return res_err(res, SB_EINVAL, jv_path(path, sizeof path, prefix, key),
                       "'%s' must be at most %zu bytes without NUL", key, cap - 1);
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
                       "'%s' must be 1..128 characters of A-Z a-z 0-9 . _ : @ + -", key);
    if (rc) return rc;
    if (!json_object_get(obj, key) || json_is_null(json_object_get(obj, key))) return 0;
    if (!id_valid(tmp))
        return res_err(res, SB_EINVAL, jv_path(path, sizeof path, prefix, key),
                       "'%s' must be 1..128 characters of A-Z a-z 0-9 . _ : @ + -", key);
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
                           "missing field '%s'", key);
        return 0;
    }
    long long x;
    if (json_is_integer(j)) {
        x = json_integer_value(j);
    } else if (json_is_real(j) && json_real_value(j) == floor(json_real_value(j)) &&
               fabs(json_real_value(j)) < 9e15) {
        x = (long long)json_real_value(j);
    } else {
        return res_err(res, SB_EINVAL, jv_path(path, sizeof path, prefix, key),
                       "'%s' must be an integer", key);
    }
    if (x < lo || x > hi)
        return res_err(res, SB_EINVAL, jv_path(path, sizeof path, prefix, key),
                       "'%s' must be between %lld and %lld", key, lo, hi);
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
                       "'%s' must be a number", key);
    double x = json_number_value(j);
    if (!(x >= lo && x <= hi))
        return res_err(res, SB_EINVAL, jv_path(path, sizeof path, prefix, key),
                       "'%s' must be between %g and %g", key, lo, hi);
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
