/*
** log.c — timestamped key=value log lines on stderr.
*/
#include "log.h"
#include "utf8.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static sb_log_level cur_level = SB_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void sbd_log_set_level(sb_log_level level)
{
    cur_level = level;
}

sb_log_level sbd_log_level(void)
{
    return cur_level;
}

int sbd_log_enabled(sb_log_level level)
{
    return level <= cur_level;
}

int sbd_log_parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, level_names[i]) == 0) return i;
    if (strcasecmp(s, "warning") == 0) return SB_LOG_WARN;
    return -1;
}

/* Escape s into out (size n) as a quoted log value: '"', '\\' and newlines
** escaped, other control characters '?', a byte that is no part of a UTF-8
** character \xHH (a client's text may hold any: the log stays text). Cut
** between characters to fit. */
static void quote_into(char *out, size_t n, const char *s)
{
    size_t o = 0;
    if (n < 3) {
        if (n) out[0] = 0;
        return;
    }
    out[o++] = '"';
    while (s && *s) {
        unsigned char c = (unsigned char)*s;
        size_t take = sbd_utf8_char((const unsigned char *)s, strnlen(s, 4));
        char esc[5];
        const char *piece = esc;
        size_t len = 2;
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
        } else if (c == '\n') {
            esc[0] = '\\', esc[1] = 'n';
        } else if (c < 0x20 || c == 0x7f) {
            esc[0] = '?', len = 1;
        } else if (!take) {
            snprintf(esc, sizeof esc, "\\x%02X", c);
            len = 4, take = 1;
        } else {
            piece = s, len = take;
        }
        if (o + len + 2 > n) break; /* and the closing quote, and the NUL */
        memcpy(out + o, piece, len);
        o += len;
        s += take;
    }
    out[o++] = '"';
    out[o] = 0;
}

int sbd_log_limit_take(sbd_log_limit *l, int kind, char *more, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    if (l->last_ns && kind == l->last_kind && now - l->last_ns < 1000000000ull) {
        l->quiet++;
        return 0;
    }
    if (l->quiet)
        snprintf(more, n, " not_logged_before=%lu", l->quiet);
    else if (n)
        more[0] = 0;
    l->last_ns = now;
    l->last_kind = kind;
    l->quiet = 0;
    return 1;
}

const char *sbd_q(const char *s)
{
    static char bufs[8][1024];
    static unsigned next;
    char *b = bufs[next++ % 8];
    quote_into(b, sizeof bufs[0], s ? s : "");
    return b;
}

/* Write one line: timestamp, level, [src,] msg, then the key=value text. */
/* Under systemd, stderr is the journal's stream when JOURNAL_STREAM names
** it ("device:inode"): each line then starts with its syslog priority,
** "<3>" for an error to "<7>" for debug, which the journal takes for the
** line's level (journalctl -p warning) and strips. */
static int journal_prefix(void)
{
    static int known = -1;
    if (known < 0) {
        const char *js = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        known = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
                (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
    }
    return known;
}

static void emit(sb_log_level level, const char *src, const char *msg, const char *kv)
{
    static const char *const prio[] = {"<3>", "<4>", "<6>", "<7>"};
    char ts[40], qmsg[1024];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    quote_into(qmsg, sizeof qmsg, msg);
    /* One fprintf on an unbuffered stream: one write, lines do not interleave. */
    fprintf(stderr, "%s%s.%03ldZ level=%s%s%s msg=%s%s%s\n", journal_prefix() ? prio[level] : "",
            ts, (long)(now.tv_nsec / 1000000), level_names[level], src ? " src=" : "",
            src ? src : "", qmsg, kv && *kv ? " " : "", kv ? kv : "");
}

static char *capture;
static size_t capture_n;

void sbd_errorf_capture(char *buf, size_t n)
{
    capture = buf;
    capture_n = n;
    if (buf && n) buf[0] = 0;
}

void sbd_errorf(const char *fmt, ...)
{
    char text[4096];
    va_list ap;
    va_start(ap, fmt);
    sbd_utf8_vformat(text, sizeof text, fmt, ap);
    va_end(ap);
    if (capture) {
        if (capture_n && !capture[0]) {
            snprintf(capture, capture_n, "%s", text);
            capture[strcspn(capture, "\n")] = 0; /* its first line: a usage follows some */
        }
        return;
    }
    fprintf(stderr, "%s%s", journal_prefix() ? "<3>" : "", text);
}

void sbd_log(sb_log_level level, const char *msg, const char *fmt, ...)
{
    if (level > cur_level) return;
    char kv[3072] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        sbd_utf8_vformat(kv, sizeof kv, fmt, ap);
        va_end(ap);
    }
    emit(level, NULL, msg, kv);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A request's path for the log: ids in it may be numbers too (a gateway
** may name a call after its caller, "/v1/calls/+4930123456/hangup"), so it
** is redacted like any echo of input, percent-escapes read first as the
** router reads them ("%2B" the '+', "%34%39" the digits 49: a number
** written so is the same number). A path segment of 7 to 15 digits
** therefore reads "[number]" even when it is an id: the daemon cannot tell
** the two apart; conn= still ties the line to its connection. "%00" stays
** as written (no path holds it: the router refuses it). */
const char *sbd_qpath(const char *path)
{
    char plain[1024];
    size_t o = 0;
    for (const char *p = path ? path : ""; *p && o + 1 < sizeof plain; p++) {
        int hi = p[0] == '%' ? hex_digit(p[1]) : -1, lo = hi >= 0 ? hex_digit(p[2]) : -1;
        if (lo >= 0 && (hi || lo)) {
            plain[o++] = (char)(hi << 4 | lo);
            p += 2;
        } else {
            plain[o++] = *p;
        }
    }
    plain[o] = 0;
    return sbd_qn(plain);
}

/* Ids may be written with '+' and digits ("+4930123456" is an account id
** the API takes): the daemon's lines say an account as the engine's do,
** through sb_redact as the value of their account= key, so that the same
** account reads the same in both and a number written with '+' never shows. */
const char *sbd_qacct(const char *id)
{
    static const char key[] = "account=";
    char line[sizeof key + 512], clean[sizeof line];
    snprintf(line, sizeof line, "%s%s", key, id ? id : "");
    sb_redact(line, clean, sizeof clean);
    return sbd_q(clean + sizeof key - 1);
}

const char *sbd_qn(const char *s)
{
    char clean[1024];
    sb_redact(s, clean, sizeof clean);
    return sbd_q(clean);
}

void sbd_log_engine(void *arg, sb_log_level level, const char *line)
{
    (void)arg;
    if (level > cur_level || level < SB_LOG_ERROR) return;
    /* (The engine's lines come with their numbers redacted: sb_redact.) */
    emit(level, "engine", line ? line : "", NULL);
}
