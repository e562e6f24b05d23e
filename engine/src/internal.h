/*
** internal.h — shared declarations of the engine's sources: growable buffers,
** identifier and number validation, result building, logging.
** Nothing here is API; the public contract is switchboard.h.
*/
#ifndef SB_INTERNAL_H
#define SB_INTERNAL_H

#include "switchboard.h"

#include <jansson.h>

/* Reals in the JSON we write: 12 significant digits, so seconds to the
** millisecond print as 3.311, not 3.3109999999999999. */
#define SB_JSON_REALS JSON_REAL_PRECISION(12)
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SB_HIDDEN __attribute__((visibility("hidden")))
#define SB_ID_MAX 128   /* longest identifier (agent, queue, call, account) */
#define SB_NAME_MAX 128 /* longest policy name */
#define SB_E164_MAX 16  /* "+" and up to 15 digits */
#define SB_REASON_MAX 128
/* A call record's reason: a policy's, or the engine's naming a queue. */
#define REC_REASON_MAX (SB_REASON_MAX + SB_ID_MAX)
#define SB_SKILLS_MAX 64     /* skills an agent may have */
#define SB_MEMBERS_MAX 10000 /* members of one queue, so agents a route sees */

#define IS_SB_ERR(rc) ((rc) <= SB_EINVAL && (rc) >= SB_EHOLD)
#define countof(a) (sizeof(a) / sizeof((a)[0]))

/* --- growable byte buffer ------------------------------------------------ */
typedef struct sb_buf {
    char *p;
    size_t len, cap;
    int wipe; /* it holds secrets: grown by a copy, the block left wiped */
} sb_buf;

int buf_reserve(sb_buf *b, size_t extra);
int buf_put(sb_buf *b, const void *p, size_t n);
int buf_puts(sb_buf *b, const char *s);
int buf_printf(sb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_free(sb_buf *b);
static inline void buf_clear(sb_buf *b)
{
    b->len = 0;
    if (b->p) b->p[0] = 0;
}

/* --- validation ------------------------------------------------------------ */
/* 1 if s is a valid identifier: 1..128 bytes of [A-Za-z0-9._:@+-]. */
bool id_valid(const char *s);
/* What id_valid takes, for messages about an id it refused (which they do
** not quote: it may be anything, a phone number too). */
#define ID_RULE "ids are 1..128 letters, digits and . _ : @ + -"
/* Policy names also allow '/' between components (no "..", no leading '/'). */
bool policy_name_valid(const char *s);
/* Normalize an E.164 number (spaces, dashes, dots, parentheses dropped):
** writes "+digits" into out (SB_E164_MAX+1 bytes). 0 ok, -1 invalid. */
int e164_normalize(const char *in, char out[SB_E164_MAX + 1]);
/* Make s valid UTF-8 in place: every byte that does not begin or continue a
** well-formed sequence becomes '?'. Policy output (reasons, error messages)
** may hold any bytes; what we store and render as JSON must be UTF-8. */
void utf8_clean(char *s);
/* utf8_clean, and control characters (a line break, an escape) as spaces:
** text shown one entry to a line. */
void text_clean(char *s);
/* s was cut to fit a buffer: drop a last character the cut left incomplete,
** so that what remains ends between characters. */
void utf8_cut_end(char *s);
/* 1 if the string is valid UTF-8 (NULL counts as valid). */
int utf8_valid(const char *s);
/* The offset of the first byte of s[0..len) that is not valid UTF-8
** (NUL bytes are), or len. */
size_t utf8_bad_at(const char *s, size_t len);
/* 3 when s[0..len) starts with a UTF-8 byte-order mark (some editors write
** one first), else 0: the length to skip before the text. */
size_t utf8_bom(const char *s, size_t len);
/* jansson reports some failed allocations as syntax errors; our allocator
** for it counts failures per thread so callers can tell the two apart.
** json_alloc_init installs it (once per process); json_oom_reset/json_oom_seen
** bracket a parse. */
void json_alloc_init(void);
void json_oom_reset(void);
int json_oom_seen(void);
/* 1 if a failed jansson load failed for want of memory. */
static inline int json_oom(const json_error_t *err)
{
    return json_oom_seen() || json_error_code(err) == json_error_out_of_memory ||
           (err->line == -1 && err->text[0] == 0);
}
/* json_string of a cleaned copy of s (never NULL for a non-NULL s). */
json_t *json_string_clean(const char *s);
/* json_decref(j), the strings it frees wiped first (decrypted numbers and
** personal attributes): every string of j, and of the arrays and objects in
** it, that no other reference keeps. NULL: nothing. */
void json_wipe_decref(json_t *j);
struct stat;
/* Give the file open at fd the group of `was`, its owner too when run as
** root (nobody else can give a file away), and with mode its permission
** bits, where they differ from the file's: 0 or an errno (util.c). */
int file_own_like(int fd, const struct stat *was, int mode);
/* Copy at most cap-1 bytes and terminate. Returns 0, or -1 if it did not fit. */
int str_copy(char *dst, size_t cap, const char *src);

/* --- results --------------------------------------------------------------- */
/* A call begins: what an earlier call left goes, sb_result_changed's flag
** with it. */
void res_reset(sb_result *res);
/* The call committed a change (store.c, after a write transaction that
** wrote something; in a batch, an event that did): sb_result_changed. */
void res_changed(sb_result *res);
/* Record a failure; returns code so callers can `return res_err(...)`. */
/* SB_ENOTFOUND: "no such WHAT 'ID'", or, for an id id_valid refuses, why
** none can be found (without quoting it). */
int res_no_such(sb_result *res, const char *field, const char *what, const char *id);
/* SB_EINVAL on "queue" for a queue filter that is empty: it names no queue
** (left out, the filter is every queue's), rather than read as none. */
int res_queue_empty(sb_result *res);
int res_err(sb_result *res, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Append an action; strings are copied into the result. NULL on OOM. */
sb_action *res_action(sb_result *res, sb_action_type type);
const char *res_str(sb_result *res, const char *s);
/* Attach a JSON document (the result steals the reference). */
void res_doc(sb_result *res, json_t *doc);
json_t *res_get_doc(sb_result *res);
/* Attach a document as its JSON text, a JSON object encoded as
** sb_result_json encodes one (compact, ASCII; the result takes the malloc'd
** text): for an answer its maker had to encode anyway, which is then not
** encoded again. sb_result_json hands it out as it is while res has no
** action (none is added where it is used). */
void res_doc_text(sb_result *res, char *text, size_t len);
/* Drop actions added after `mark` (a retried transaction). */
void res_truncate(sb_result *res, size_t mark);
/* Forget the failure recorded, keeping the actions. */
void res_clear_error(sb_result *res);
/* The name of an SB_E* code, e.g. "SB_EINVAL". */

/* --- logging --------------------------------------------------------------- */
/* Every line goes through the redaction (sb_redact), which takes a count of
** seven digits or more for a number ("[number] records"). LOG_OWN(conv)
** marks a conversion of the format whose output is the engine's own (a
** count it made, a sequence number it gave), kept as written while the
** rest of the line, ids a caller gave among it, is redacted as before:
**     sb_log(e, lvl, "account %s: " LOG_OWN("%llu") " deleted", id, n);
** (OWN_LLU is that LOG_OWN("%llu"), and so on for the usual conversions.)
** The marks are bytes of the format, which is the engine's text; what a
** %s or %c (or %p) writes is never taken for its own, inside the marks or
** out, so no caller's or policy's text can have itself kept, whatever
** bytes it holds. */
#define LOG_OWN(conv) "\x1e" conv "\x1f"
#define OWN_D LOG_OWN("%d")
#define OWN_U LOG_OWN("%u")
#define OWN_LU LOG_OWN("%lu")
#define OWN_LLD LOG_OWN("%lld")
#define OWN_LLU LOG_OWN("%llu")
#define OWN_ZU LOG_OWN("%zu")
#define LOG_OWN_MAX 24 /* own spans a line keeps; past them, redacted */
typedef struct log_span {
    uint32_t at, len; /* in the line's text */
} log_span;
/* A line as formatted, before the redaction: its text and its own spans. */
typedef struct log_text {
    char s[1024];
    size_t len;
    int nown;
    log_span own[LOG_OWN_MAX];
} log_text;
/* Empty t, then append fmt's text (LOG_OWN marks read as above), cut to
** fit. */
void logt_init(log_text *t);
void logt_add(log_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void logt_vadd(log_text *t, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Append piece's text to t, its own spans with it (cut to fit). */
void logt_append(log_text *t, const log_text *piece);
/* t as logged: redacted but for its own spans, into out (size n);
** returns how many numbers were redacted. */
int logt_redact(const log_text *t, char *out, size_t n);
void sb_log(sb_engine *eng, sb_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Log a line made with logt_add. */
void sb_log_text(sb_engine *eng, sb_log_level lvl, const log_text *t);

/* --- small helpers ----------------------------------------------------------- */
int64_t mono_ms(void); /* monotonic milliseconds, for budgets */
uint64_t mono_ns(void);
static inline uint32_t be32(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}
static inline void put_be32(void *p, uint32_t v)
{
    uint8_t *b = p;
    b[0] = v >> 24, b[1] = v >> 16, b[2] = v >> 8, b[3] = v;
}
static inline uint64_t be64(const void *p)
{
    const uint8_t *b = p;
    return (uint64_t)be32(b) << 32 | be32(b + 4);
}
static inline void put_be64(void *p, uint64_t v)
{
    put_be32(p, v >> 32);
    put_be32((uint8_t *)p + 4, (uint32_t)v);
}

/* sb_redact (redact.c) when `broad`; otherwise only the unmistakable
** numbers: '+' and 7 or more digits (a hold's reason may quote case
** numbers such as 2026-117, which the broad reading takes for one). */
int redact_numbers(const char *text, char *out, size_t n, int broad);
/* The same, with numbers written the national way (no '+') taken from
** national_min digits on (0: none; redact_numbers: 7 when broad). */
int redact_numbers_min(const char *text, char *out, size_t n, int broad, int national_min);
/* The same, the nown spans of own (in text, in order, not overlapping)
** copied as written: a number never starts, ends or runs inside one, so
** the text on each side is read as if the span were a mark of its own. */
int redact_numbers_own(const char *text, const log_span *own, int nown, char *out, size_t n,
                       int broad, int national_min);
/* A run of this many digits written the national way reads as a number in
** a free-text reason (a hold's, checked by sb_hold_place, and those
** reason_clean stores); shorter runs are case and ticket numbers. */
#define REASON_NATIONAL_MIN 9
/* A free-text reason the engine stores, cleaned in place (s is a string
** in a buffer of cap bytes): control characters as spaces (text_clean),
** then the numbers in it as "[number]" by the hold reasons' rule (with '+'
** and 7 digits or more, or REASON_NATIONAL_MIN digits the national way;
** never longer than the number, so it fits where the text did). For an
** agent's status and pause reasons and what a call's trace keeps of its
** decisions: a reason a policy or gateway quotes a number in must not put
** it on disk in the clear, where no erasure reaches it. Returns how many
** numbers it replaced. */
int reason_clean(char *s, size_t cap);

/* A number's digits that every way of writing it keeps (without the first
** three when 10 or more, else its last 7), in out; their count, 0 when it
** has fewer than 7 digits. */
size_t number_needle(const char *number, char *out, size_t cap);
/* Does text hold needle among the digits of one of its numbers, however
** written (digit groups between one or two of " -./()")? */
int text_holds(const char *text, size_t len, const char *needle, size_t nl);
/* Each number in text (NUL-terminated, cap bytes) that holds needle, as
** text_holds reads them, replaced by "[number]", the text cut to cap; how
** many were. */
int text_mask(char *text, size_t cap, const char *needle, size_t nl);

/* a - b and a + b, held at the int64 range's ends instead of overflowing
** (times read back from a damaged store may be anything). */
static inline int64_t i64_sub_sat(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_sub_overflow(a, b, &r) ? (b < 0 ? INT64_MAX : INT64_MIN) : r;
}

static inline int64_t i64_add_sat(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? (b < 0 ? INT64_MIN : INT64_MAX) : r;
}

/* Names of enumerations, shared by JSON in and out. */
const char *agent_status_name(int st);
int agent_status_parse(const char *s);
const char *ring_outcome_name(int o);
int ring_outcome_parse(const char *s);
/* sb_end_party: "caller", "agent", "system"; NULL for none. */
const char *end_party_name(int p);
int end_party_parse(const char *s);

#endif
