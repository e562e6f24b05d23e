/*
** jsonv.h — strict reading of JSON input: every field checked for type and
** range, unknown fields refused, and every failure named by its field path.
*/
#ifndef SB_JSONV_H
#define SB_JSONV_H

#include "internal.h"

/* jansson's error text as we say it: its text for a NUL names a flag of its
** API. */
const char *jv_error_text(const json_error_t *e);
/* Parse text as one JSON object. SB_EINVAL with the position on failure;
** a number too big for a document (jv_too_big) with its field. */
int jv_parse(const char *text, size_t len, json_t **out, sb_result *res);
/* SB_EINVAL for the number jansson could not hold in text (err: its
** json_error_numeric_overflow), named by its field (prefix.path, the path
** in text): "'weight' is 1000000000000000000000000000000: too big a number
** (whole numbers go up to 9223372036854775807)". Without a field found (a
** text malformed after it as well), by its line and column. */
int jv_too_big(const char *text, size_t len, const json_error_t *err, const char *prefix,
               sb_result *res);
/* Refuse keys of obj not in allowed (NULL-terminated). prefix names obj. */
int jv_keys(const json_t *obj, const char *const *allowed, const char *prefix, sb_result *res);
/* Read a string field into dst (cap with terminator). required: missing is
** an error; otherwise missing leaves dst untouched and returns 0. */
int jv_str(const json_t *obj, const char *key, const char *prefix, int required, char *dst,
           size_t cap, sb_result *res);
/* An identifier field (see id_valid). */
int jv_id(const json_t *obj, const char *key, const char *prefix, int required, char *dst,
          sb_result *res);
/* An integer field in [lo, hi]; missing leaves *v untouched. */
int jv_int(const json_t *obj, const char *key, const char *prefix, int required, long long lo,
           long long hi, long long *v, sb_result *res);
/* A number field in [lo, hi]. */
int jv_num(const json_t *obj, const char *key, const char *prefix, double lo, double hi, double *v,
           sb_result *res);
/* An optional object or list sent as null is left out, as a null scalar is
** (jv_str, jv_int): a client that writes an empty map or list as null (Go's
** encoding/json does) means "none". Removed from obj itself, so a stored
** document and everything reading it see the field absent. obj may be any
** value (nothing happens unless it is an object). */
void jv_drop_null(json_t *obj, const char *key);
/* The fields a read answers that a write does not set (names, NULL-ended),
** removed from obj: a document as GET answers it can be put back, its live
** and derived figures (an agent's stats, a queue's waiting) ignored. obj
** may be any value. */
void jv_drop_readonly(json_t *obj, const char *const *names);
/* Build "prefix.key" (or "key") into buf. */
const char *jv_path(char *buf, size_t cap, const char *prefix, const char *key);

#endif
