/*
** util.c — buffers, validation of identifiers and numbers, clocks, names.
*/
#include "internal.h"
#include "crypto.h"

#include <errno.h>
#include <malloc.h>
#include <sodium.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int buf_reserve(sb_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) return -1;
        cap *= 2;
    }
    char *p;
    if (b->wipe) { /* realloc would free the old block as it is */
        if (!(p = malloc(cap))) return -1;
        if (b->p) {
            memcpy(p, b->p, b->len + 1);
            cr_wipe(b->p, b->cap);
            free(b->p);
        }
    } else if (!(p = realloc(b->p, cap))) {
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

int buf_put(sb_buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

int buf_puts(sb_buf *b, const char *s)
{
    return buf_put(b, s, strlen(s));
}

int buf_printf(sb_buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    /* What it formats may quote a number (an access request's page opens
    ** with it): not left on the stack for whatever runs next to find. Only
    ** what was written is wiped, so a short line pays for its own bytes. */
    if (n >= 0 && (size_t)n < sizeof small) {
        int rc = buf_put(b, small, (size_t)n);
        cr_wipe(small, (size_t)n + 1);
        return rc;
    }
    cr_wipe(small, sizeof small); /* cut short (or failed): all of it */
    if (n < 0) return -1;
    if (buf_reserve(b, (size_t)n)) return -1;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void buf_free(sb_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static bool id_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '@' || c == '+' || c == '-';
}

bool id_valid(const char *s)
{
    if (!s || !*s) return false;
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= SB_ID_MAX || !id_char((unsigned char)s[n])) return false;
    return true;
}

bool policy_name_valid(const char *s)
{
    if (!s || !*s || *s == '/') return false;
    size_t n = 0, comp = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (n >= SB_NAME_MAX) return false;
        if (c == '/') {
            if (comp == 0) return false; /* "//" */
            comp = 0;
            continue;
        }
        if (!id_char(c) || c == ':' || c == '@' || c == '+') return false;
        if (c == '.' && comp == 0) return false; /* no hidden or ".." parts */
        comp++;
    }
    return comp > 0;
}

int e164_normalize(const char *in, char out[SB_E164_MAX + 1])
{
    if (!in) return -1;
    size_t o = 0;
    const char *p = in;
    while (*p == ' ')
        p++;
    if (*p != '+') return -1;
    out[o++] = '+';
    for (p++; *p; p++) {
        unsigned char c = (unsigned char)*p;
        /* "+44 (0)20 ...": the national trunk prefix some write after the
        ** country code is not dialled from abroad and is not part of the
        ** number (without this, two spellings of one number would be two
        ** numbers to erasure and access requests). */
        if (c == '(' && p[1] == '0' && p[2] == ')' && o > 1) {
            p += 2;
            continue;
        }
        if (c >= '0' && c <= '9') {
            if (o == 1 && c == '0') return -1; /* country codes never start with 0 */
            if (o >= SB_E164_MAX) return -1;
            out[o++] = (char)c;
        } else if (c != ' ' && c != '-' && c != '.' && c != '(' && c != ')') {
            return -1;
        }
    }
    if (o < 3) return -1; /* "+" and at least two digits */
    out[o] = 0;
    return 0;
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0 where none starts.
** A NUL ends a string: it fails as a continuation byte. */
static size_t utf8_seq(const unsigned char *p)
{
    unsigned char c = *p;
    size_t n = c < 0x80             ? 1
               : (c & 0xE0) == 0xC0 ? 2
               : (c & 0xF0) == 0xE0 ? 3
               : (c & 0xF8) == 0xF0 ? 4
                                    : 0;
    int good = n > 0 && !(n == 2 && c < 0xC2) && !(n == 4 && c > 0xF4);
    for (size_t i = 1; good && i < n; i++)
        if ((p[i] & 0xC0) != 0x80) good = 0;
    if (good && n == 3) {
        unsigned cp = (c & 0x0Fu) << 12 | (p[1] & 0x3Fu) << 6 | (p[2] & 0x3Fu);
        if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) good = 0;
    }
    if (good && n == 4) {
        unsigned cp =
            (c & 0x07u) << 18 | (p[1] & 0x3Fu) << 12 | (p[2] & 0x3Fu) << 6 | (p[3] & 0x3Fu);
        if (cp < 0x10000 || cp > 0x10FFFF) good = 0;
    }
    return good ? n : 0;
}

void utf8_clean(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (p && *p) {
        if (*p < 0x80) { /* ids and most text: ASCII, a byte at a time */
            p++;
            continue;
        }
        size_t n = utf8_seq(p);
        if (!n) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

void text_clean(char *s)
{
    utf8_clean(s);
    for (unsigned char *p = (unsigned char *)s; p && *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = ' ';
        else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) /* C1: U+009B is a CSI too */
            p[0] = p[1] = ' ';
        /* Bidirectional overrides and isolates (U+202A..U+202E, U+2066..U+2069):
        ** "\u202egnp.exe" shows as "exe.png" in a terminal's list. */
        else if (*p == 0xe2 && ((p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae) ||
                                (p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9)))
            p[0] = p[1] = p[2] = ' ';
}

void utf8_cut_end(char *s)
{
    size_t n = s ? strlen(s) : 0, i = n;
    while (i > 0 && n - i < 3 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0) return;
    unsigned char c = (unsigned char)s[i - 1];
    size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (need > n - (i - 1)) s[i - 1] = 0;
}

size_t utf8_bom(const char *s, size_t len)
{
    return len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
}

size_t utf8_bad_at(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        /* utf8_seq reads up to 4 bytes: near the end, from a padded copy. */
        unsigned char tail[5] = {0};
        const unsigned char *q = p + i;
        if (len - i < 4) q = memcpy(tail, p + i, len - i);
        size_t n = utf8_seq(q);
        if (!n || n > len - i) return i;
        i += n;
    }
    return len;
}

int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (p && *p) {
        size_t n = utf8_seq(p);
        if (!n) return 0;
        p += n;
    }
    return 1;
}

/* The strings j frees with its last reference, wiped. One another
** reference keeps (a document holding it too) is left as it is: it is not
** freed, and may be an answer still to be read. */
static void json_wipe(json_t *j)
{
    if (!j || j->refcount != 1) return; /* shared, or jansson's own true/false/null */
    const char *k;
    size_t i;
    json_t *v;
    switch (json_typeof(j)) {
    case JSON_STRING:
        cr_wipe((char *)json_string_value(j), json_string_length(j));
        break;
    case JSON_ARRAY:
        json_array_foreach(j, i, v) json_wipe(v);
        break;
    case JSON_OBJECT:
        json_object_foreach(j, k, v) json_wipe(v);
        break;
    default:
        break;
    }
}

void json_wipe_decref(json_t *j)
{
    json_wipe(j);
    json_decref(j);
}

/* A file made to take another's place (the erasure journal's pruned copy,
** data.keys rotated) or a key made beside one, made by root or by another
** user of the group, is left as its user and group can read it: made by
** root, the daemon's user could open neither. */
int file_own_like(int fd, const struct stat *was, int mode)
{
    struct stat st;
    if (fstat(fd, &st)) return errno;
    uid_t u = geteuid() == 0 ? was->st_uid : (uid_t)-1;
    if (((u != (uid_t)-1 && st.st_uid != u) || st.st_gid != was->st_gid) &&
        fchown(fd, u, was->st_gid))
        return errno;
    if (mode && (st.st_mode & 07777) != (was->st_mode & 07777) && fchmod(fd, was->st_mode & 07777))
        return errno;
    return 0;
}

json_t *json_string_clean(const char *s)
{
    if (!s) return json_null();
    json_t *j = json_string(s);
    if (j) return j;
    char *copy = strdup(s);
    if (!copy) return json_null();
    utf8_clean(copy);
    j = json_string(copy);
    free(copy);
    return j ? j : json_null();
}

int str_copy(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) {
        if (cap) dst[0] = 0;
        return -1;
    }
    if (n) memcpy(dst, src, n);
    dst[n] = 0;
    return 0;
}

int64_t mono_ms(void)
{
    return (int64_t)(mono_ns() / 1000000);
}

uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *const status_names[] = {"offline",  "available", "paused",
                                           "reserved", "on_call",   "wrap_up"};

const char *agent_status_name(int st)
{
    return st >= 0 && st < (int)countof(status_names) ? status_names[st] : "unknown";
}

int agent_status_parse(const char *s)
{
    for (int i = 0; s && i < (int)countof(status_names); i++)
        if (strcmp(s, status_names[i]) == 0) return i;
    return -1;
}

static const char *const outcome_names[] = {NULL,   "answered", "no_answer",
                                            "busy", "rejected", "cancelled"};

const char *ring_outcome_name(int o)
{
    return o >= 1 && o < (int)countof(outcome_names) ? outcome_names[o] : "unknown";
}

/* What a gateway may report: not "cancelled", which only the engine does. */
int ring_outcome_parse(const char *s)
{
    for (int i = 1; s && i <= SB_RING_REJECTED; i++)
        if (strcmp(s, outcome_names[i]) == 0) return i;
    return -1;
}

static const char *const party_names[] = {NULL, "caller", "agent", "system"};

const char *end_party_name(int p)
{
    return p >= 1 && p < (int)countof(party_names) ? party_names[p] : NULL;
}

int end_party_parse(const char *s)
{
    for (int i = 1; s && i < (int)countof(party_names); i++)
        if (strcmp(s, party_names[i]) == 0) return i;
    return -1;
}

/* --- jansson's allocator ---------------------------------------------------- */
static __thread unsigned json_failures;

static void *json_alloc(size_t n)
{
    void *p = malloc(n);
    if (!p) json_failures++;
    return p;
}

/* Every string jansson frees is wiped first: the documents it parses and
** writes hold callers' numbers and personal attributes (an offer, a call
** record, an access request's page) and API keys (an account's answer), and
** a freed block is what a later allocation, a core dump or a read of the
** process's memory finds. jansson does not say a block's size: it is the
** usable size (glibc's malloc_usable_size; the sanitizers' runtimes have
** it too). This allocator is the process's (jansson has one), set at the
** first sb_open: an embedder's own jansson documents are wiped likewise. */
static void json_free(void *p)
{
    if (!p) return;
    sodium_memzero(p, malloc_usable_size(p));
    free(p);
}

static void json_init_once(void)
{
    json_set_alloc_funcs(json_alloc, json_free);
}

void json_alloc_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, json_init_once);
}

void json_oom_reset(void)
{
    json_failures = 0;
}

int json_oom_seen(void)
{
    return json_failures != 0;
}

/* --- a call's own number in text (views.c ctx.set, records.c attributes) ---- */

/* The part of a number that every way of writing it keeps: its digits
** without the first three (country code, maybe a trunk prefix's place),
** when 7 or more are left, else its last 7; 0 when it has fewer than 7. */
size_t number_needle(const char *number, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = number ? number : ""; *p && *p != '@' && n + 1 < cap; p++)
        if (*p >= '0' && *p <= '9') out[n++] = *p;
    if (n < 7) return 0;
    size_t from = n >= 10 ? 3 : n - 7;
    memmove(out, out + from, n - from);
    return n - from;
}

/* The length of the separator inside a number at text[i] (0: none): one of
** " -./()_" or a tab, or "%20" (the same spellings redact.c reads). */
static size_t num_sep(const char *text, size_t len, size_t i)
{
    if (i >= len) return 0;
    if (text[i] && strchr(" -./()_\t", text[i])) return 1;
    return i + 2 < len && text[i] == '%' && text[i + 1] == '2' && text[i + 2] == '0' ? 3 : 0;
}

/* The digit at text[i], ASCII or fullwidth (U+FF10..U+FF19, 3 bytes): its
** value and *w its length, or -1. */
static int num_digit(const char *text, size_t len, size_t i, size_t *w)
{
    const unsigned char *u = (const unsigned char *)text;
    *w = 1;
    if (i < len && u[i] >= '0' && u[i] <= '9') return u[i] - '0';
    if (i + 2 < len && u[i] == 0xEF && u[i + 1] == 0xBC && u[i + 2] >= 0x90 && u[i + 2] <= 0x99) {
        *w = 3;
        return u[i + 2] - 0x90;
    }
    return -1;
}

/* The first number in text[from..len) whose digits hold the needle, however
** written (digit groups between one or two separators, num_sep; ASCII or
** fullwidth digits): 1 with its span, the first digit to past the last, in
** [*s, *e); 0 when none does. A number of any length is read whole: its
** digits pass through a window that keeps, when it fills, the last nl - 1
** (where a match may still begin), so a needle after 64 other digits is
** found as at the start ("0000...0447911001234": the window kept the first
** 64 digits, and the number went into reasons and the store in the clear). */
static int find_held(const char *text, size_t len, size_t from, const char *needle, size_t nl,
                     size_t *s, size_t *e)
{
    char run[64];
    size_t r = 0, w, start = 0, end = 0;
    int in = 0, held = 0;
    if (!nl || nl >= sizeof run) return 0;
    for (size_t i = from; i <= len; i++) {
        int d = i < len ? num_digit(text, len, i, &w) : -1;
        if (d >= 0) {
            if (!in) in = 1, start = i, r = 0, held = 0;
            if (r == sizeof run) {
                held |= memmem(run, r, needle, nl) != NULL;
                memmove(run, run + r - (nl - 1), nl - 1);
                r = nl - 1;
            }
            run[r++] = (char)('0' + d);
            i += w - 1;
            end = i + 1;
            continue;
        }
        size_t s1 = in ? num_sep(text, len, i) : 0;
        if (s1) { /* a separator inside the number: "(555) 765-4321" */
            size_t s2 = num_sep(text, len, i + s1), j = i + s1 + s2;
            if (num_digit(text, len, j, &w) >= 0) {
                i = j - 1;
                continue;
            }
        }
        if (in && (held || (r >= nl && memmem(run, r, needle, nl)))) {
            *s = start;
            *e = end;
            return 1;
        }
        in = 0;
    }
    return 0;
}

int text_holds(const char *text, size_t len, const char *needle, size_t nl)
{
    size_t s, e;
    return find_held(text, len, 0, needle, nl, &s, &e);
}

int text_mask(char *text, size_t cap, const char *needle, size_t nl)
{
    size_t len = strlen(text), from = 0, o = 0, s, e;
    int found = 0;
    if (!cap || !find_held(text, len, 0, needle, nl, &s, &e)) return 0;
    char *out = malloc(len + 8 * (len / 7 + 1) + 1);
    if (!out) { /* no memory: the text goes, not the number */
        snprintf(text, cap, "[number]");
        return 1;
    }
    do {
        /* its plus goes with it, however written (+, %2B, fullwidth) */
        if (s >= from + 1 && text[s - 1] == '+')
            s -= 1;
        else if (s >= from + 3 &&
                 (!memcmp(text + s - 3, "%2B", 3) || !memcmp(text + s - 3, "%2b", 3) ||
                  !memcmp(text + s - 3, "\xef\xbc\x8b", 3)))
            s -= 3;
        memcpy(out + o, text + from, s - from);
        o += s - from;
        memcpy(out + o, "[number]", 8);
        o += 8;
        from = e;
        found++;
    } while (find_held(text, len, from, needle, nl, &s, &e));
    memcpy(out + o, text + from, len - from);
    o += len - from;
    out[o] = 0;
    snprintf(text, cap, "%s", out);
    free(out);
    return found;
}
