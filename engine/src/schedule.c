/*
** schedule.c — weekly availability windows, and a small TZif reader to put them in the
** agent's own time zone.
**
** Time zones: a TZif file (RFC 8536) is read whole, checked, and reduced to a sorted list
** of (transition time, UTC offset) plus the POSIX TZ footer rule that gives offsets after
** the last transition. Version 1 files use their 32-bit block; version 2+ files their
** 64-bit block and footer. Leap-second records are ignored (we work in POSIX time).
*/
#include "schedule.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Calendar arithmetic (proleptic Gregorian, days since 1970-01-01). */

static int64_t floordiv(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static int64_t floormod(int64_t a, int64_t b)
{
    return a - floordiv(a, b) * b;
}

static int is_leap(int64_t y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

static int month_len(int64_t y, int m)
{
    static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return len[m - 1] + (m == 2 && is_leap(y));
}

/* Days from 1970-01-01 to y-m-d. Years are counted from March so that the leap day is
** the last day of a counting year; 146097 days make a 400-year cycle. */
int64_t sched_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floordiv(y, 400), yoe = y - era * 400;           /* year of era, 0..399 */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* day of March-year */
    return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

void sched_civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
    int64_t z = days + 719468, era = floordiv(z, 146097);
    int64_t doe = z - era * 146097;                                      /* day of era */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* year of era */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int64_t year_of_day(int64_t day)
{
    int64_t y = 1970 + floordiv(day * 400, 146097); /* estimate, then correct */
    while (sched_days_from_civil(y, 1, 1) > day)
        y--;
    while (sched_days_from_civil(y + 1, 1, 1) <= day)
        y++;
    return y;
}

/* ------------------------------------------------------------------------ */
/* POSIX TZ strings (the TZif footer), e.g. "CET-1CEST,M3.5.0,M10.5.0/3". */

typedef struct {
    char kind;    /* 'M' month.week.wday, 'J' 1..365 without Feb 29, 'N' 0..365 with it */
    int m, w, d;  /* M: month 1..12, week 1..5 (5 = last), weekday 0..6 (Sunday = 0) */
    int n;        /* J, N: day number */
    int32_t secs; /* local time of day the change happens (may be <0 or >24h) */
} tz_date;

typedef struct {
    int32_t std, dst; /* UTC offsets, seconds east */
    int has_dst;
    tz_date start, end; /* start: in standard time; end: in daylight time */
} tz_rule;

/* Abbreviation: 3+ letters, or <...> of 3+ [A-Za-z0-9+-]. */
static const char *p_abbr(const char *s)
{
    const char *q = s;
    if (*s == '<') {
        for (q = s + 1; (*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') ||
                        (*q >= '0' && *q <= '9') || *q == '+' || *q == '-';
             q++)
            ;
        return *q == '>' && q - s - 1 >= 3 ? q + 1 : NULL;
    }
    while ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z'))
        q++;
    return q - s >= 3 ? q : NULL;
}

/* Unsigned decimal of 1..3 digits, at most max. */
static const char *p_num(const char *s, int max, int *out)
{
    int v = 0, nd = 0;
    for (; *s >= '0' && *s <= '9' && nd < 3; s++, nd++)
        v = v * 10 + (*s - '0');
    if (nd == 0 || v > max || (*s >= '0' && *s <= '9')) return NULL;
    *out = v;
    return s;
}

/* [+-]hh[:mm[:ss]] with hh <= maxh, as signed seconds. */
static const char *p_hms(const char *s, int maxh, int32_t *out)
{
    int neg = *s == '-', h, m = 0, sec = 0;
    if (*s == '+' || *s == '-') s++;
    if (!(s = p_num(s, maxh, &h))) return NULL;
    if (*s == ':') {
        if (!(s = p_num(s + 1, 59, &m))) return NULL;
        if (*s == ':' && !(s = p_num(s + 1, 59, &sec))) return NULL;
    }
    *out = (neg ? -1 : 1) * (h * 3600 + m * 60 + sec);
    return s;
}

/* ",date[/time]": Mm.w.d, Jn or n; time defaults to 02:00 and may be -167..167 hours
** (RFC 8536 extension to POSIX). */
static const char *p_date(const char *s, tz_date *d)
{
    if (*s++ != ',') return NULL;
    if (*s == 'M') {
        d->kind = 'M';
        if (!(s = p_num(s + 1, 12, &d->m)) || d->m < 1 || *s != '.') return NULL;
        if (!(s = p_num(s + 1, 5, &d->w)) || d->w < 1 || *s != '.') return NULL;
        if (!(s = p_num(s + 1, 6, &d->d))) return NULL;
    } else if (*s == 'J') {
        d->kind = 'J';
        if (!(s = p_num(s + 1, 365, &d->n)) || d->n < 1) return NULL;
    } else {
        d->kind = 'N';
        if (!(s = p_num(s, 365, &d->n))) return NULL;
    }
    d->secs = 7200;
    if (*s == '/') s = p_hms(s + 1, 167, &d->secs);
    return s;
}

/* std offset [dst [offset] [,start[/time],end[/time]]]. 0 or -1. */
static int parse_posix_tz(const char *s, tz_rule *r)
{
    int32_t v;
    memset(r, 0, sizeof *r);
    if (!(s = p_abbr(s)) || !(s = p_hms(s, 24, &v))) return -1;
    r->std = r->dst = -v; /* POSIX offsets are west of UTC */
    if (*s == '\0') return 0;
    if (!(s = p_abbr(s))) return -1;
    r->has_dst = 1;
    r->dst = r->std + 3600;
    if ((*s == '+' || *s == '-' || (*s >= '0' && *s <= '9'))) {
        if (!(s = p_hms(s, 24, &v))) return -1;
        r->dst = -v;
    }
    if (*s == '\0') s = ",M3.2.0,M11.1.0"; /* POSIX leaves it open; the US rule, like glibc */
    if (!(s = p_date(s, &r->start)) || !(s = p_date(s, &r->end))) return -1;
    return *s == '\0' ? 0 : -1;
}

/* UTC instant of date d of year y, whose time of day is in local time at offset off. */
static int64_t rule_instant(int64_t y, const tz_date *d, int32_t off)
{
    int64_t day = sched_days_from_civil(y, 1, 1);
    if (d->kind == 'J') {
        day += d->n - 1 + (is_leap(y) && d->n >= 60);
    } else if (d->kind == 'N') {
        day += d->n;
    } else {
        int64_t first = sched_days_from_civil(y, d->m, 1);
        int wd1 = (int)floormod(first + 4, 7); /* 1970-01-01 was a Thursday */
        day = first + (d->d - wd1 + 7) % 7 + (d->w - 1) * 7;
        if (day >= first + month_len(y, d->m)) day -= 7; /* week 5: the last one */
    }
    return day * 86400 + d->secs - off;
}

/* Latest event at or before t wins; events are offered in time order so ties go to the
** later one (keeps all-year DST such as "0/0,J365/25" in DST across New Year). */
static void rule_event(int64_t at, int32_t off, int64_t t, int64_t *best, int32_t *res)
{
    if (at <= t && at >= *best) {
        *best = at;
        *res = off;
    }
}

static int32_t rule_offset(const tz_rule *r, int64_t t)
{
    if (!r->has_dst) return r->std;
    int64_t y = year_of_day(floordiv(t + r->std, 86400)), best = INT64_MIN;
    int32_t res = r->std;
    /* A change can fall up to a week outside its own year (times up to 167h): look at
    ** the neighbouring years' changes too. */
    for (int64_t yy = y - 2; yy <= y + 1; yy++) {
        int64_t s = rule_instant(yy, &r->start, r->std), e = rule_instant(yy, &r->end, r->dst);
        if (s <= e) {
            rule_event(s, r->dst, t, &best, &res);
            rule_event(e, r->std, t, &best, &res);
        } else {
            rule_event(e, r->std, t, &best, &res);
            rule_event(s, r->dst, t, &best, &res);
        }
    }
    return res;
}

/* ------------------------------------------------------------------------ */
/* TZif files. */

typedef struct {
    int64_t at;  /* transition time, UTC seconds */
    int32_t off; /* UTC offset from then on */
} tz_trans;

typedef struct tz_zone {
    uint32_t hash;
    const char *path; /* cache key: full file path (stored after trans[]) */
    int32_t off0;     /* before the first transition: time type 0 */
    int has_rule;
    tz_rule rule; /* after the last transition, when has_rule */
    size_t n;
    tz_trans trans[]; /* strictly increasing */
} tz_zone;

#define TZ_MAX_FILE (1 << 20)
#define TZ_HDR 44

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct {
    uint32_t isut, isstd, leap, time, type, chars;
} tz_counts;

/* Header at p (TZ_HDR bytes available); size of the data block after it in *size. */
static int read_header(const uint8_t *p, int tsize, tz_counts *c, uint64_t *size)
{
    if (memcmp(p, "TZif", 4) != 0) return -1;
    c->isut = be32(p + 20), c->isstd = be32(p + 24), c->leap = be32(p + 28);
    c->time = be32(p + 32), c->type = be32(p + 36), c->chars = be32(p + 40);
    if (c->type == 0 || c->type > 256 || (c->isut && c->isut != c->type) ||
        (c->isstd && c->isstd != c->type))
        return -1;
    *size = (uint64_t)c->time * (tsize + 1) + (uint64_t)c->type * 6 + c->chars +
            (uint64_t)c->leap * (tsize + 4) + c->isstd + c->isut;
    return 0;
}

/* Parse a whole file image. NULL if it is truncated or corrupt (or out of memory). */
static tz_zone *parse_tzif(const uint8_t *buf, size_t len, const char *path)
{
    tz_counts c;
    uint64_t size;
    size_t pos = 0;
    int tsize = 4;
    if (len < TZ_HDR || read_header(buf, 4, &c, &size) != 0) return NULL;
    if (buf[4] != 0) { /* version 2+: skip the v1 block, use the 64-bit one */
        if (buf[4] < '2' || size > len - TZ_HDR || len - TZ_HDR - size < TZ_HDR) return NULL;
        pos = TZ_HDR + (size_t)size;
        tsize = 8;
        if (read_header(buf + pos, 8, &c, &size) != 0) return NULL;
    }
    pos += TZ_HDR;
    if (size > len - pos) return NULL;

    const uint8_t *times = buf + pos, *idx = times + (size_t)c.time * tsize, *types = idx + c.time;
    int32_t offs[256];
    for (uint32_t i = 0; i < c.type; i++) {
        offs[i] = (int32_t)be32(types + 6 * i);
        if (offs[i] < -89999 || offs[i] > 93599 || types[6 * i + 4] > 1) return NULL;
    }

    tz_rule rule;
    int has_rule = 0;
    if (tsize == 8) { /* footer: "\n" TZ-string "\n" */
        const char *f = (const char *)buf + pos + size, *end = (const char *)buf + len;
        const char *nl = f < end && *f == '\n' ? memchr(f + 1, '\n', end - f - 1) : NULL;
        char tzs[128];
        if (!nl || nl - f - 1 >= (ptrdiff_t)sizeof tzs) return NULL;
        memcpy(tzs, f + 1, nl - f - 1);
        tzs[nl - f - 1] = '\0';
        if (tzs[0] != '\0') {
            if (parse_posix_tz(tzs, &rule) != 0) return NULL;
            has_rule = 1;
        }
    }

    size_t plen = strlen(path) + 1;
    tz_zone *z = malloc(sizeof *z + c.time * sizeof(tz_trans) + plen);
    if (!z) return NULL;
    for (uint32_t i = 0; i < c.time; i++) {
        const uint8_t *t = times + (size_t)i * tsize;
        z->trans[i].at = tsize == 8 ? be64(t) : (int32_t)be32(t);
        if (idx[i] >= c.type || (i > 0 && z->trans[i].at <= z->trans[i - 1].at)) {
            free(z);
            return NULL;
        }
        z->trans[i].off = offs[idx[i]];
    }
    z->n = c.time;
    z->off0 = offs[0];
    z->has_rule = has_rule;
    if (has_rule) z->rule = rule;
    z->path = memcpy((char *)(z->trans + c.time), path, plen);
    return z;
}

static tz_zone *load_tzif(const char *path)
{
    struct stat st;
    tz_zone *z = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return NULL;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && st.st_size <= TZ_MAX_FILE) {
        size_t len = (size_t)st.st_size, got = 0;
        uint8_t *buf = malloc(len);
        ssize_t r = 1;
        while (buf && got < len && (r = read(fd, buf + got, len - got)) > 0)
            got += (size_t)r;
        if (buf && got == len) z = parse_tzif(buf, len, path);
        free(buf);
    }
    close(fd);
    return z;
}

static int32_t zone_offset(const tz_zone *z, int64_t t)
{
    if (z->n == 0 || t < z->trans[0].at) {
        /* before any transition: type 0; with no transitions the footer rules all time */
        return z->n == 0 && z->has_rule ? rule_offset(&z->rule, t) : z->off0;
    }
    size_t lo = 0, hi = z->n; /* last transition <= t is in [lo, hi) */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->trans[mid].at <= t)
            lo = mid;
        else
            hi = mid;
    }
    return lo == z->n - 1 && z->has_rule ? rule_offset(&z->rule, t) : z->trans[lo].off;
}

/* A change of offset can only leave the wall clock behind its past maximum for this long
** after it: the largest step back in tzdata is 24 h (Alaska 1867, Samoa 1892). */
#define TZ_MAX_BACK (2 * 86400)

/* Wall time (ms) of the last millisecond before an offset change at c (seconds). */
static int64_t wall_before(const tz_zone *z, int64_t c)
{
    return c * 1000 - 1 + (int64_t)zone_offset(z, c - 1) * 1000;
}

/* The wall clock as a schedule sees it at t_ms: local time in ms, except that after the
** clocks go back it stands still at the moment before the change until it catches up. That
** is the largest wall time shown up to t_ms, which is the wall time now or the one just
** before a change in the last TZ_MAX_BACK. */
static int64_t zone_wall(const tz_zone *z, int64_t t_ms)
{
    int64_t t = floordiv(t_ms, 1000), from = t - TZ_MAX_BACK, w;
    int64_t wall = t_ms + (int64_t)zone_offset(z, t) * 1000;
    size_t lo = 0, hi = z->n; /* first transition after from */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->trans[mid].at <= from)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* tzdata never has two changes within TZ_MAX_BACK; 64 bounds odd files */
    for (size_t k = 0; lo < z->n && z->trans[lo].at <= t && k < 64; lo++, k++)
        if ((w = wall_before(z, z->trans[lo].at)) > wall) wall = w;
    if (z->has_rule && z->rule.has_dst) { /* the footer rule's changes, as in rule_offset */
        int64_t y = year_of_day(floordiv(t, 86400));
        for (int64_t yy = y - 2; yy <= y + 1; yy++) {
            int64_t c[2] = {rule_instant(yy, &z->rule.start, z->rule.std),
                            rule_instant(yy, &z->rule.end, z->rule.dst)};
            for (int k = 0; k < 2; k++)
                if (c[k] > from && c[k] <= t && (w = wall_before(z, c[k])) > wall) wall = w;
        }
    }
    return wall;
}

/* Process-wide cache of loaded zones. Entries are immutable and never freed, so a pointer
** found under the lock stays usable after it is released. */
#define TZ_CACHE_MAX 2048 /* a system has about 600 names, 1300 with posix/ and right/ */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static tz_zone *cache[TZ_CACHE_MAX];
static size_t cache_n;

static tz_zone *cache_find(const char *path, uint32_t h)
{
    for (size_t i = 0; i < cache_n; i++)
        if (cache[i]->hash == h && strcmp(cache[i]->path, path) == 0) return cache[i];
    return NULL;
}

/* Letters, digits, '/', '_', '+', '-' only (so no '.' and no ".."), no empty component
** (so no leading '/'), at most 64 bytes. */
static int name_ok(const char *tz)
{
    size_t n = strlen(tz);
    if (n == 0 || n > 64 || tz[0] == '/' || tz[n - 1] == '/') return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = tz[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '/' || ch == '_' || ch == '+' || ch == '-'))
            return 0;
        if (ch == '/' && tz[i + 1] == '/') return 0;
    }
    return 1;
}

/* Zones that failed to load while routing. A missing file would otherwise be opened again
** for every agent in the zone at every routing decision; it is tried again once the
** caller's clock (the engine's, injected or not) has moved TZ_RETRY_MS from the failure,
** and each failure is told once (see sched_devices_told). The engine's clock, not the
** process's: a test or a replay on its own clock then sees the retry where that clock puts
** it, as a run in real time would. That clock may be set back or jump (a replay, a fixed
** clock); the distance either way counts, so a clock set back far retries at once rather
** than waiting for the time of the failure to come round again, and one that moved back a
** little retries a minute after that. Validation (tz_valid, tz_offset) always tries the
** file. */
#define TZ_BAD_MAX 32
#define TZ_RETRY_MS 60000
static struct {
    char *path; /* malloc'd, any length: a long TZDIR must not leave a failure untold */
    uint32_t hash;
    int64_t at; /* the caller's clock at the failure, ms */
    int told;
} tz_bad[TZ_BAD_MAX];
static size_t bad_next;

/* Under cache_lock: path's entry, or -1. */
static int bad_slot(const char *path, uint32_t h)
{
    for (int i = 0; i < TZ_BAD_MAX; i++)
        if (tz_bad[i].hash == h && tz_bad[i].path && strcmp(tz_bad[i].path, path) == 0) return i;
    return -1;
}

/* Under cache_lock: the recent failure for path, or -1. Recent: less than TZ_RETRY_MS
** away from now, before or after (unsigned, as a clock may read anything). */
static int bad_find(const char *path, uint32_t h, int64_t now)
{
    int i = bad_slot(path, h);
    if (i < 0) return -1;
    uint64_t a = (uint64_t)tz_bad[i].at, n = (uint64_t)now;
    return (now >= tz_bad[i].at ? n - a : a - n) < TZ_RETRY_MS ? i : -1;
}

static void bad_note(const char *path, uint32_t h, int64_t now)
{
    int i = bad_slot(path, h);
    if (i < 0) {
        char *copy = strdup(path); /* out of memory: not noted, so read again next time */
        if (!copy) return;
        i = (int)(bad_next++ % TZ_BAD_MAX);
        free(tz_bad[i].path);
        tz_bad[i].path = copy;
    }
    tz_bad[i].hash = h;
    tz_bad[i].at = now;
    tz_bad[i].told = 0;
}

/* The zone named tz: 0 with *zp set, or with *zp NULL for UTC; -1 if unknown or invalid.
** *owned: the zone is not in the cache (full) and the caller frees it. With routing set, a
** failure to load it recent at now (ms of the caller's clock) is not retried, and failed
** (if not NULL) gets the file's path the first time that failure is asked about, else "". */
static int zone_get_ex(const char *tz, tz_zone **zp, int *owned, int routing, int64_t now,
                       char *failed, size_t failed_cap)
{
    *zp = NULL;
    *owned = 0;
    if (failed && failed_cap) failed[0] = 0;
    if (!tz || strcmp(tz, "UTC") == 0 || strcmp(tz, "Etc/UTC") == 0) return 0; /* no tzdata */
    if (!name_ok(tz)) return -1;

    char path[PATH_MAX];
    const char *dir = getenv("TZDIR");
    int len = snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", tz);
    if (len < 0 || (size_t)len >= sizeof path) return -1;
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = path; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;

    pthread_mutex_lock(&cache_lock);
    tz_zone *z = cache_find(path, h);
    int b = z || !routing ? -1 : bad_find(path, h, now);
    if (b >= 0 && failed && !tz_bad[b].told) {
        tz_bad[b].told = 1;
        snprintf(failed, failed_cap, "%s", path);
    }
    pthread_mutex_unlock(&cache_lock);
    if (b >= 0) return -1;
    if (!z) { /* load outside the lock; another thread may win the race, then use its copy */
        tz_zone *mine = load_tzif(path);
        if (!mine) {
            if (routing) {
                pthread_mutex_lock(&cache_lock);
                bad_note(path, h, now);
                if (failed && (b = bad_find(path, h, now)) >= 0 && !tz_bad[b].told) {
                    tz_bad[b].told = 1;
                    snprintf(failed, failed_cap, "%s", path);
                }
                pthread_mutex_unlock(&cache_lock);
            }
            return -1;
        }
        mine->hash = h;
        pthread_mutex_lock(&cache_lock);
        if (!(z = cache_find(path, h)) && cache_n < TZ_CACHE_MAX) z = cache[cache_n++] = mine;
        pthread_mutex_unlock(&cache_lock);
        if (!z) { /* cache full: use this copy once */
            *zp = mine;
            *owned = 1;
            return 0;
        }
        if (z != mine) free(mine);
    }
    *zp = z;
    return 0;
}

static int zone_get(const char *tz, tz_zone **zp, int *owned)
{
    return zone_get_ex(tz, zp, owned, 0, 0, NULL, 0);
}

int tz_offset(const char *tz, int64_t utc_s, int32_t *offset)
{
    tz_zone *z;
    int owned;
    if (zone_get(tz, &z, &owned)) return -1;
    /* Keep the arithmetic far from overflow: +-2^53 s is +-285 million years. */
    const int64_t lim = (int64_t)1 << 53;
    utc_s = utc_s < -lim ? -lim : utc_s > lim ? lim : utc_s;
    *offset = z ? zone_offset(z, utc_s) : 0;
    if (owned) free(z);
    return 0;
}

/* Files of the tz directory that load but name no zone: "localtime" (on Debian a link to
** /etc/localtime: the server's own zone, whatever it is set to), "posixrules" (the rules
** POSIX TZ strings default to), and right/ (zones counting leap seconds, whose times are
** 27 s apart from the POSIX clock the engine keeps). */
static int not_a_zone(const char *tz)
{
    return tz && (strcmp(tz, "localtime") == 0 || strcmp(tz, "posixrules") == 0 ||
                  strncmp(tz, "right/", 6) == 0);
}

int tz_valid(const char *tz)
{
    int32_t off;
    return !not_a_zone(tz) && tz_offset(tz, 0, &off) == 0;
}

/* ------------------------------------------------------------------------ */
/* Schedules. */

typedef struct {
    unsigned days;    /* bit 0 = Monday .. bit 6 = Sunday */
    int from, to;     /* minutes 0..1440 */
    unsigned devices; /* DEV_* mask */
} window;

typedef struct {
    char *err, *field;
    size_t errlen, fieldlen;
} verr;

static const char *const device_names[] = {"landline", "mobile", "softphone"};

int sched_device_bit(const char *name)
{
    for (int i = 0; name && i < 3; i++)
        if (strcmp(name, device_names[i]) == 0) return 1 << i;
    return 0;
}

const char *sched_device_name(int bit)
{
    return bit == DEV_LANDLINE    ? device_names[0]
           : bit == DEV_MOBILE    ? device_names[1]
           : bit == DEV_SOFTPHONE ? device_names[2]
                                  : NULL;
}

__attribute__((format(printf, 3, 4))) static int fail(verr *v, const char *msg,
                                                      const char *field_fmt, ...)
{
    if (!v) return -1;
    if (v->err && v->errlen) snprintf(v->err, v->errlen, "%s", msg);
    if (v->field && v->fieldlen) {
        va_list ap;
        va_start(ap, field_fmt);
        vsnprintf(v->field, v->fieldlen, field_fmt, ap);
        va_end(ap);
    }
    return -1;
}

static unsigned day_bits(const char *s)
{
    static const char *const names[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    for (int i = 0; i < 7; i++)
        if (strcmp(s, names[i]) == 0) return 1u << i;
    return strcmp(s, "weekdays") == 0  ? 0x1f
           : strcmp(s, "weekend") == 0 ? 0x60
           : strcmp(s, "all") == 0     ? 0x7f
                                       : 0;
}

/* "HH:MM", 00:00..24:00, as minutes; -1 if malformed. */
static int parse_hhmm(const json_t *j)
{
    const char *s = json_string_value(j);
    if (!s || strlen(s) != 5 || s[2] != ':') return -1;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9')) return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    return h > 24 || m > 59 || (h == 24 && m != 0) ? -1 : h * 60 + m;
}

/* A JSON array of names mapped by fn; field names the array for error paths. */
static int parse_names(const json_t *arr, unsigned (*fn)(const char *), unsigned *out, verr *v,
                       size_t i, const char *field, const char *what, const char *bad)
{
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return fail(v, what, "schedule[%zu].%s", i, field);
    *out = 0;
    for (size_t k = 0; k < json_array_size(arr); k++) {
        const char *s = json_string_value(json_array_get(arr, k));
        unsigned bits = s ? fn(s) : 0;
        if (!bits) return fail(v, bad, "schedule[%zu].%s[%zu]", i, field, k);
        *out |= bits;
    }
    return 0;
}

static unsigned device_bits(const char *s)
{
    return (unsigned)sched_device_bit(s);
}

static int parse_window(const json_t *j, size_t i, window *w, verr *v)
{
    static const char hhmm[] = "expected HH:MM (00:00..24:00)";
    if (!json_is_object(j)) return fail(v, "expected an object", "schedule[%zu]", i);
    /* json_object_iter takes a non-const pointer but does not modify the object */
    for (void *it = json_object_iter((json_t *)j); it;
         it = json_object_iter_next((json_t *)j, it)) {
        const char *k = json_object_iter_key(it);
        if (strcmp(k, "days") && strcmp(k, "from") && strcmp(k, "to") && strcmp(k, "devices"))
            return fail(v, "unknown field (expected days, from, to, devices)", "schedule[%zu].%s",
                        i, k);
    }
    if (parse_names(json_object_get(j, "days"), day_bits, &w->days, v, i, "days",
                    "expected a non-empty array of days",
                    "expected mon..sun, weekdays, weekend or all"))
        return -1;
    if ((w->from = parse_hhmm(json_object_get(j, "from"))) < 0)
        return fail(v, hhmm, "schedule[%zu].from", i);
    if ((w->to = parse_hhmm(json_object_get(j, "to"))) < 0)
        return fail(v, hhmm, "schedule[%zu].to", i);
    if (w->from == w->to)
        return fail(v, "must differ from \"from\" (00:00 to 24:00 is the whole day)",
                    "schedule[%zu].to", i);
    if (w->from == 1440 && w->to == 0) /* 24:00 of its day is 00:00 of the next */
        return fail(v, "24:00 to 00:00 is an empty window (00:00 to 24:00 is the whole day)",
                    "schedule[%zu].to", i);
    w->devices = DEV_ALL;
    const json_t *dev = json_object_get(j, "devices");
    if (dev && parse_names(dev, device_bits, &w->devices, v, i, "devices",
                           "expected a non-empty array of devices",
                           "expected landline, mobile or softphone"))
        return -1;
    return 0;
}

static int parse_schedule(const json_t *s, window *w, size_t *n, verr *v)
{
    *n = 0;
    if (!s || json_is_null(s)) return 0;
    if (!json_is_array(s)) return fail(v, "expected an array of windows", "schedule");
    if (json_array_size(s) > SCHED_MAX_WINDOWS) return fail(v, "at most 64 windows", "schedule");
    for (size_t i = 0; i < json_array_size(s); i++)
        if (parse_window(json_array_get(s, i), i, &w[i], v)) return -1;
    *n = json_array_size(s);
    return 0;
}

int sched_validate(const json_t *schedule, const char *tz, char *err, size_t errlen, char *field,
                   size_t fieldlen)
{
    verr v = {err, field, errlen, fieldlen};
    window w[SCHED_MAX_WINDOWS];
    size_t n;
    if (err && errlen) err[0] = '\0';
    if (field && fieldlen) field[0] = '\0';
    if (parse_schedule(schedule, w, &n, &v)) return -1;
    if (!tz_valid(tz)) return fail(&v, "unknown time zone", "timezone");
    return 0;
}

unsigned sched_devices_at(const json_t *schedule, const char *tz, int64_t now_ms)
{
    return sched_devices_told(schedule, tz, now_ms, NULL, 0);
}

unsigned sched_devices_told(const json_t *schedule, const char *tz, int64_t now_ms, char *failed,
                            size_t failed_cap)
{
    window w[SCHED_MAX_WINDOWS];
    size_t n;
    tz_zone *z;
    int owned;
    if (failed && failed_cap) failed[0] = 0;
    if (parse_schedule(schedule, w, &n, NULL)) return 0;
    /* No windows, no schedule: the zone is read for windows alone, so one that cannot be
    ** loaded (gone in a tzdata upgrade, another TZDIR) does not take the agent out. */
    if (n == 0) return DEV_ALL;
    if (zone_get_ex(tz, &z, &owned, 1, now_ms, failed, failed_cap)) return 0;
    /* Wall time as schedules see it (see zone_wall); clamp so the arithmetic cannot
    ** overflow (+-2^52 s: dates stay absurd). */
    const int64_t lim = ((int64_t)1 << 52) * 1000;
    int64_t t = now_ms < -lim ? -lim : now_ms > lim ? lim : now_ms;
    int64_t local = z ? zone_wall(z, t) : t;
    if (owned) free(z);
    int64_t day = floordiv(local, 86400000);
    int min = (int)(floormod(local, 86400000) / 60000);
    unsigned today = 1u << floormod(day + 3, 7); /* 1970-01-01 was a Thursday: bit 3 */
    unsigned yesterday = 1u << floormod(day + 2, 7);
    unsigned mask = 0;
    for (size_t i = 0; i < n; i++) {
        int hit = w[i].from < w[i].to
                      ? (w[i].days & today) && min >= w[i].from && min < w[i].to
                      /* crosses midnight: the evening part today, the morning part of a
                      ** window that started yesterday */
                      : ((w[i].days & today) && min >= w[i].from) ||
                            ((w[i].days & yesterday) && min < w[i].to);
        if (hit) mask |= w[i].devices;
    }
    return mask;
}
