/*
** log.c — timestamped key=value log lines on stderr.
*/
#include "log.h"

#include <stdarg.h>
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

/* Escape s into out (size n) as a quoted log value. */
static void quote_into(char *out, size_t n, const char *s)
{
    size_t o = 0;
    if (n < 3) {
        if (n) out[0] = 0;
        return;
    }
    out[o++] = '"';
    for (; s && *s && o + 4 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if (c < 0x20 || c == 0x7f) {
            out[o++] = '?';
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = 0;
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
static void emit(sb_log_level level, const char *src, const char *msg, const char *kv)
{
    char ts[40], qmsg[1024];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    quote_into(qmsg, sizeof qmsg, msg);
    /* One fprintf on an unbuffered stream: one write, lines do not interleave. */
    fprintf(stderr, "%s.%03ldZ level=%s%s%s msg=%s%s%s\n", ts, (long)(now.tv_nsec / 1000000),
            level_names[level], src ? " src=" : "", src ? src : "", qmsg, kv && *kv ? " " : "",
            kv ? kv : "");
}

void sbd_log(sb_log_level level, const char *msg, const char *fmt, ...)
{
    if (level > cur_level) return;
    char kv[3072] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(kv, sizeof kv, fmt, ap);
        va_end(ap);
    }
    emit(level, NULL, msg, kv);
}

/* Is s[0] a digit, or a separator an E.164 number may be written with
** followed by a digit? */
static int number_char(const char *s)
{
    if (*s >= '0' && *s <= '9') return 1;
    return strchr(" -.()", *s) && *s && s[1] >= '0' && s[1] <= '9';
}

/* line with every phone number in it ("+" and at least two digits, as
** policies see call.caller and call.called, and as tel: URIs hold them)
** replaced by "[number]", into out (size n). */
static void redact_numbers(const char *line, char *out, size_t n)
{
    size_t o = 0;
    const char *s = line;
    while (*s && o + 1 < n) {
        if (s[0] == '+' && s[1] >= '0' && s[1] <= '9') {
            const char *e = s + 1;
            int digits = 0;
            while (number_char(e)) {
                digits += *e >= '0' && *e <= '9';
                e++;
            }
            if (digits >= 2) {
                static const char tag[] = "[number]";
                size_t tl = sizeof tag - 1 < n - 1 - o ? sizeof tag - 1 : n - 1 - o;
                memcpy(out + o, tag, tl);
                o += tl;
                s = e;
                continue;
            }
        }
        out[o++] = *s++;
    }
    out[o] = 0;
}

void sbd_log_engine(void *arg, sb_log_level level, const char *line)
{
    (void)arg;
    if (level > cur_level || level < SB_LOG_ERROR) return;
    /* The engine's lines may quote what a policy wrote or returned
    ** (ctx.log, an error, an invalid decision), which may be the caller's
    ** number: the log never holds one. */
    char clean[1024];
    redact_numbers(line ? line : "", clean, sizeof clean);
    emit(level, "engine", clean, NULL);
}
