/*
** redact.c — phone numbers found in free text, whatever their format, for
** the text the engine or its daemon writes where numbers must not go: log
** lines, audit reasons, hold reasons (sb_redact in switchboard.h).
*/
#include "internal.h"
#include "crypto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Phone numbers in text the engine keeps or prints.
**
** A log quotes what policies wrote (ctx.log), values that were refused
** (an invalid decision naming what a policy returned, an error a policy
** raised) and policy source (a compile error quotes the token it stopped
** at). None of it may put a caller's number in the log, however it is
** written, so each number reads "[number]". A number is what a log reader
** would take for one:
**
**  - '+' and at least two digits, with the separators numbers are written
**    with between the digit groups: "+4930123456", "+44 20 7946 0001",
**    "+44 (0)20 7946-0001", "tel:+1-212-555-0100";
**  - without '+': 7 to 15 digits in all (the shortest subscriber number
**    with its area code; E.164's longest) standing as a word of its own —
**    not glued to a letter, digit, '_' or '.' before it, nor to a letter,
**    digit or '_' after it: "0301234567", "030 1234567", "030-123-4567",
**    "(030) 1234567", "030/1234567", "01 23 45 67 89", "4930123456" (E.164
**    without its '+'), "00493012345678", "sip:0301234567@pbx".
**
** Kept, because a log reader needs them and they are not written so:
**  - fewer than 7 digits (counts, ports, durations, short codes like 112)
**    and more than 15 (hashes, long ids);
**  - digits inside a word: ids such as c1234567 or agent_0301234, versions;
**  - the value of an id key the engine writes in its lines (account=
**    policy= version=), whatever its digits; other ids that are numbers
**    of that length (a call named after its caller) read [number];
**  - a decimal, digits '.' digits with no other separator: seconds such as
**    ctx.now's 1795885484.142, durations such as 0.033 (so "030.1234567"
**    is kept too: a number is rarely written with one dot);
**  - a time stamp: 10 or 13 digits starting with 1, without separators
**    (Unix seconds or milliseconds, from 2001 to 2286; a number written
**    without '+' that starts with 1 is a NANP one, of 11 digits);
**  - an ISO date (2026-11-28 or 2026/11/28), an IPv4 address (four groups
**    of 1 to 3 digits between dots), and clock times and host:port: a
**    group followed by ':' and a digit never joins a number across a space.
**
** How groups join: across one separator of " -./()_" or ") ", ")-", " (",
** "-(" followed by a digit. A space joins only groups of at most 8 digits,
** never past 15 digits in all, and not a group of one digit that follows
** it; so two numbers in a row are two numbers, a time stamp beside a count
** stays a time stamp, and "1 2 3 4 5 6 7" (a policy logging counts) is
** not a number, unless there are 9 or more of them in a row in a reason
** (a hold's, the audit's: "4 9 3 0 1 2 3 4 5 6 7", someone spacing a
** number's digits out; in a log line they stay counts). Such counts in groups
** of two ("12 34 56 78") are redacted: that is how many countries write
** their numbers. After a '+' a number is unmistakable, and single digits
** join across spaces at once: "+4 4 7 9 1 1 0 0 0 6 6 6".
**
** Other ways of writing the same characters read as them first: fullwidth
** digits (U+FF10..U+FF19) as digits and a fullwidth plus (U+FF0B) before
** one as '+', "%2B" (or "%2b", percent-encoded) before a digit as '+', and
** "%20" and a tab between digits as a space: "+４４７９１１０００６６６",
** "%2B447911000666" and "+44%207911000666" are numbers. What is kept is
** kept as written. An underscore joins groups as a space does (at most 8
** digits each side), so "+44_7911_000666" is a number and a time stamp
** with a count after it ("1767603600123_5") is not. */

#define SPACED_MIN 9

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_word(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/* A run of digit groups and the separators between them. */
typedef struct num_run {
    const char *end; /* past the last digit */
    int digits, groups, dots, others;
    int glen[4]; /* the first groups' lengths */
} num_run;

/* The separator at s between two digit groups: its length (0: none). */
static size_t sep_len(const char *s)
{
    static const char seps[] = " -./()_";
    if (!*s || !strchr(seps, *s)) return 0;
    if (is_digit(s[1])) return 1;
    if (s[1] && strchr(seps, s[1]) && s[0] != s[1] && (s[0] == ')' || s[1] == '(') &&
        is_digit(s[2]))
        return 2;
    return 0;
}

static size_t group_len(const char *s)
{
    size_t n = 0;
    while (is_digit(s[n]))
        n++;
    return n;
}

/* Scan the run of digit groups at s (a digit, or '(' and a digit); plus:
** it follows a '+'; spaced_ok: nine or more single digits spaced out are
** one number (in reasons, not in log lines, where a policy's logged counts
** would read as one: "waiting per queue: 0 0 0 0 0 0 0 0 0"). */
static void scan_number(const char *s, num_run *r, int plus, int spaced_ok)
{
    const char *p = s + (*s == '(');
    memset(r, 0, sizeof *r);
    /* Single digits spaced out: from SPACED_MIN of them a number ("4 9 3 0 1
    ** 2 3 4 5 6 7"), fewer a list of counts; after a '+' at once. */
    int spaced = plus;
    if (!plus && spaced_ok && group_len(p) == 1) {
        int k = 1;
        for (const char *q = p + 1; q[0] == ' ' && is_digit(q[1]) && !is_digit(q[2]); q += 2)
            k++;
        spaced = k >= SPACED_MIN;
    }
    for (;;) {
        size_t gl = group_len(p);
        if (r->groups < 4) r->glen[r->groups] = (int)gl;
        r->groups++;
        r->digits += (int)gl;
        p += gl;
        r->end = p;
        size_t sl = sep_len(p);
        if (!sl) return;
        const char *next = p + sl;
        size_t nl = group_len(next);
        /* '_' as a space: "1767603600123_5" is a time stamp and a count */
        if (memchr(p, '_', sl) && (gl > 8 || nl > 8)) return;
        if (memchr(p, ' ', sl)) {
            if (gl > 8 || nl > 8 || (size_t)r->digits + nl > 15) return;
            if (sl == 1 && nl == 1 && !spaced) return;
            if (next[nl] == ':' && is_digit(next[nl + 1])) return;
        }
        for (size_t i = 0; i < sl; i++)
            if (p[i] == '.')
                r->dots++;
            else if (p[i] != ' ')
                r->others++;
        p = next;
    }
}

/* Is the run at s, just after `line`'s text before it, the value of an id
** key ("account=...")? */
static int after_id_key(const char *line, const char *s)
{
    static const char *const keys[] = {"account", "policy", "version"};
    if (s == line || s[-1] != '=') return 0;
    const char *k = s - 1;
    while (k > line && is_word(k[-1]))
        k--;
    size_t kl = (size_t)(s - 1 - k);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strlen(keys[i]) == kl && !memcmp(keys[i], k, kl)) return 1;
    return 0;
}

/* Is the run at s (without '+') a phone number? See above. */
static int national_number(const char *line, const char *s, const num_run *r, int min_digits)
{
    if (r->digits < min_digits || r->digits > 15 || is_word(*r->end)) return 0;
    if (r->groups == 1 && *s == '1' && (r->digits == 10 || r->digits == 13)) return 0;
    if (r->groups == 2 && r->dots == 1 && r->others == 0 && *s != '(' &&
        !memchr(s, ' ', (size_t)(r->end - s)))
        return 0;
    if (r->groups == 4 && r->dots == 3 && r->others == 0 && r->glen[0] <= 3 && r->glen[1] <= 3 &&
        r->glen[2] <= 3 && r->glen[3] <= 3)
        return 0;
    if (r->groups == 3 && r->dots == 0 && r->others == 2 && r->glen[0] == 4 && r->glen[1] == 2 &&
        r->glen[2] == 2 && *s != '(' && !memchr(s, ' ', (size_t)(r->end - s)))
        return 0;
    return !after_id_key(line, s);
}

/* Append len bytes of src to out (size n, o used) as far as they fit,
** leaving room for the terminating NUL. */
static void put_text(char *out, size_t n, size_t *o, const char *src, size_t len)
{
    if (!out || *o + 1 >= n) return;
    if (len > n - 1 - *o) len = n - 1 - *o;
    memcpy(out + *o, src, len);
    *o += len;
}

/* A run of digits joined to what comes before it by '_' or '.' (an id a
** gateway built from the caller's number: "call_02079460001") is a number
** when it looks like a whole one: 10 digits or more, or 9 or more after a
** trunk prefix '0'. (Joined to a letter, "c1234567", it is an id.) */
static int joined(const char *text, const char *s)
{
    if (s[-1] != '_' && s[-1] != '.') return 0;
    if (s - 1 > text && s[-1] == '.' && is_digit(s[-2])) return 0; /* 1.5, 10.0.0.1 */
    size_t n = 0;
    while (is_digit(s[n]))
        n++;
    return n >= 10 || (s[0] == '0' && n >= 9);
}

int redact_numbers(const char *text, char *out, size_t n, int broad)
{
    return redact_numbers_min(text, out, n, broad, broad ? 7 : 0);
}

/* The byte at t[i] of a segment that ends at `to`: 0 past it, so that a
** segment reads as if its text ended there. */
static unsigned char byte_at(const unsigned char *t, size_t i, size_t to)
{
    return i < to ? t[i] : 0;
}

/* A fullwidth digit (U+FF10..U+FF19) at t[i]: its value's character, or 0. */
static char fullwidth_digit(const unsigned char *t, size_t i, size_t to)
{
    unsigned char c = byte_at(t, i + 2, to);
    return byte_at(t, i, to) == 0xEF && byte_at(t, i + 1, to) == 0xBC && c >= 0x90 && c <= 0x99
               ? (char)('0' + c - 0x90)
               : 0;
}

/* Is there a digit, plain or fullwidth, at t[i]? */
static int any_digit(const unsigned char *t, size_t i, size_t to)
{
    return is_digit((char)byte_at(t, i, to)) || fullwidth_digit(t, i, to);
}

/* text[from..to) as the rule reads it, appended to norm at m, each
** character of it at map[m] in text: fullwidth digits as digits, a
** fullwidth plus or "%2B" before a digit as '+', "%20" between digits as
** ' '. Returns norm's length after it. */
static size_t normalize(const char *text, size_t from, size_t to, char *norm, uint32_t *map,
                        size_t m)
{
    const unsigned char *t = (const unsigned char *)text;
    size_t i = from, start = m;
    while (i < to) {
        char c = (char)t[i];
        size_t w = 1;
        char d = fullwidth_digit(t, i, to);
        int after_digit = m > start && is_digit(norm[m - 1]);
        if (d) {
            c = d, w = 3;
        } else if (t[i] == 0xEF && byte_at(t, i + 1, to) == 0xBC && byte_at(t, i + 2, to) == 0x8B &&
                   any_digit(t, i + 3, to)) {
            c = '+', w = 3;
        } else if (t[i] == '%' && byte_at(t, i + 1, to) == '2' &&
                   (byte_at(t, i + 2, to) == 'B' || byte_at(t, i + 2, to) == 'b') &&
                   any_digit(t, i + 3, to)) {
            c = '+', w = 3;
        } else if (t[i] == '%' && byte_at(t, i + 1, to) == '2' && byte_at(t, i + 2, to) == '0' &&
                   after_digit && any_digit(t, i + 3, to)) {
            c = ' ', w = 3;
        } else if (t[i] == '\t' && after_digit && any_digit(t, i + 1, to)) {
            c = ' ';
        }
        norm[m] = c;
        map[m++] = (uint32_t)i;
        i += w;
    }
    return m;
}

/* What an own span reads as: one character that is no digit, letter,
** separator or sign, as a mark would be. */
#define OWN_MARK '\x1e'

/* Does the run of digits from s to end touch an own span (its mark in norm)
** that has a digit on that side? Then the two would read as one number
** ("0207" and 9460001), and the run is taken for one, whatever its length,
** so that no text beside a count can make a number of it. */
static int glued(const char *norm, const char *src, const uint32_t *map, const char *s,
                 const char *end)
{
    if (!map) return 0;
    if (s > norm && s[-1] == OWN_MARK && map[s - norm] > 0 && is_digit(src[map[s - norm] - 1]))
        return 1;
    return *end == OWN_MARK && is_digit(src[map[end - norm]]);
}

int redact_numbers_min(const char *text, char *out, size_t n, int broad, int national_min)
{
    return redact_numbers_own(text, NULL, 0, out, n, broad, national_min);
}

int redact_numbers_own(const char *text, const log_span *own, int nown, char *out, size_t n,
                       int broad, int national_min)
{
    static const char tag[] = "[number]";
    size_t o = 0;
    int found = 0;
    const char *src = text ? text : "";
    size_t len = strlen(src);
    /* Most texts are log lines and reasons: on the stack. */
    char nbuf[512];
    uint32_t mbuf[sizeof nbuf];
    char *norm = nbuf;
    uint32_t *map = mbuf;
    if (len >= sizeof nbuf || len > UINT32_MAX - 1) {
        norm = len <= UINT32_MAX - 1 ? malloc(len + 1) : NULL;
        map = norm ? malloc((len + 1) * sizeof *map) : NULL;
    }
    if (!norm || !map) { /* no memory: read as written, which finds the rest */
        if (norm != nbuf) free(norm);
        norm = (char *)src; /* own spans redacted too: a count may read [number] */
        map = NULL;
    } else {
        /* Each own span one mark (never longer than the span), its text
        ** copied as written from the map; the text between read alone.
        ** A span out of order or past the text is no span. */
        size_t m = 0, from = 0;
        for (int k = 0; own && k < nown; k++) {
            size_t at = own[k].at, end = at + own[k].len;
            if (at < from || end <= at || end > len) continue;
            m = normalize(src, from, at, norm, map, m);
            norm[m] = OWN_MARK;
            map[m++] = (uint32_t)at;
            from = end;
        }
        m = normalize(src, from, len, norm, map, m);
        norm[m] = 0;
        map[m] = (uint32_t)len;
    }
#define SRC(p) (map ? src + map[(p)-norm] : (p)) /* where norm's p was written */
    const char *s = norm;
    while (*s) {
        const char *e = NULL;
        num_run r;
        if (s[0] == '+' && (is_digit(s[1]) || (s[1] == '(' && is_digit(s[2])))) {
            scan_number(s + 1, &r, 1, 0);
            if (r.digits >= (broad ? 2 : 7) || glued(norm, src, map, s + 1, r.end)) e = r.end;
        } else if (national_min && (is_digit(s[0]) || (s[0] == '(' && is_digit(s[1]))) &&
                   (s == norm || (!is_word(s[-1]) && s[-1] != '.') || joined(norm, s))) {
            scan_number(s, &r, 0, !broad);
            if (national_number(norm, s, &r, national_min) || glued(norm, src, map, s, r.end)) {
                e = r.end;
            } else { /* kept whole: its digits do not start another number */
                put_text(out, n, &o, SRC(s), (size_t)(SRC(r.end) - SRC(s)));
                s = r.end;
                continue;
            }
        }
        if (e) {
            put_text(out, n, &o, tag, sizeof tag - 1);
            found++;
            s = e;
            continue;
        }
        put_text(out, n, &o, SRC(s), (size_t)(SRC(s + 1) - SRC(s)));
        s++;
    }
#undef SRC
    if (out && n) out[o] = 0;
    if (map && norm != nbuf) {
        free(norm);
        free(map);
    }
    return found;
}

int reason_clean(char *s, size_t cap)
{
    char tmp[1024];
    if (!s || !cap || !*s) return 0; /* nothing to clean: most agent changes */
    text_clean(s); /* first: a tab or line break between digit groups reads as a space */
    size_t len = strlen(s);
    if (len >= sizeof tmp) len = sizeof tmp - 1; /* callers' reasons are shorter */
    memcpy(tmp, s, len);
    tmp[len] = 0;
    int found = redact_numbers_min(tmp, s, cap, 0, REASON_NATIONAL_MIN);
    cr_wipe(tmp, len + 1);
    return found;
}

int sb_redact(const char *text, char *out, size_t n)
{
    return redact_numbers(text, out, n, 1);
}
