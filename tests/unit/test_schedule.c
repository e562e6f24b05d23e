/*
** test_schedule.c — time zones (TZif reader, POSIX footer rules) and availability windows.
*/
#include "schedule.h"
#include "tap.h"
#include "testkit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#define BAD_OFF (-999999)

static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return (int64_t)timegm(&tm);
}

static int32_t off(const char *tz, int64_t t)
{
    int32_t o;
    return tz_offset(tz, t, &o) == 0 ? o : BAD_OFF;
}

static unsigned at(const char *sched, const char *tz, int64_t t)
{
    json_error_t e;
    json_t *j = json_loads(sched, 0, &e);
    if (!j) diag("bad test JSON: %s", e.text);
    unsigned m = sched_devices_at(j, tz, t * 1000);
    json_decref(j);
    return m;
}

/* Validate; returns the field path ("" on success), message in msg. */
static char vfield[128], vmsg[128];
static const char *check(const char *sched, const char *tz)
{
    json_t *j = json_loads(sched, 0, NULL);
    int rc = sched_validate(j, tz, vmsg, sizeof vmsg, vfield, sizeof vfield);
    json_decref(j);
    if ((rc == 0) != (vfield[0] == '\0')) diag("rc %d but field '%s'", rc, vfield);
    return vfield;
}

/* Offsets from glibc's own TZif reader, for cross-checking. */
static int32_t libc_off(const char *tz, int64_t t)
{
    struct tm tm;
    time_t tt = (time_t)t;
    setenv("TZ", tz, 1);
    tzset();
    return localtime_r(&tt, &tm) ? (int32_t)tm.tm_gmtoff : BAD_OFF;
}

/* ------------------------------------------------------------------------ */
/* Hand-made TZif files. */

static uint8_t *put32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = (uint8_t)v;
    return p + 4;
}

/* One header plus data block with n transitions and nt types (designation "ZZZ"). */
static uint8_t *tzif_block(uint8_t *p, char ver, int tsize, int n, const int64_t *when,
                           const uint8_t *idx, int nt, const int32_t *offs)
{
    memcpy(p, "TZif", 4);
    p[4] = (uint8_t)ver;
    memset(p + 5, 0, 15);
    p = put32(put32(put32(p + 20, 0), 0), 0);
    p = put32(put32(put32(p, (uint32_t)n), (uint32_t)nt), 4);
    for (int i = 0; i < n; i++) {
        if (tsize == 8) p = put32(p, (uint32_t)((uint64_t)when[i] >> 32));
        p = put32(p, (uint32_t)when[i]);
    }
    if (n) memcpy(p, idx, (size_t)n);
    p += n;
    for (int i = 0; i < nt; i++) {
        p = put32(p, (uint32_t)offs[i]);
        *p++ = 0, *p++ = 0;
    }
    memcpy(p, "ZZZ", 4);
    return p + 4;
}

static char tzdir[64];

static void write_file_in(const char *dir, const char *name, const void *data, size_t len)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) diag("cannot write %s", path);
    if (f) fclose(f);
}

static void write_file(const char *name, const void *data, size_t len)
{
    write_file_in(tzdir, name, data, len);
}

/* A v2 file with no transitions, type 0 at offset std, and the given footer. */
static void write_footer_zone(const char *name, int32_t std, const char *footer)
{
    uint8_t buf[512], *p = buf;
    p = tzif_block(p, '2', 4, 0, NULL, NULL, 1, &std);
    p = tzif_block(p, '2', 8, 0, NULL, NULL, 1, &std);
    p += sprintf((char *)p, "\n%s\n", footer);
    write_file(name, buf, (size_t)(p - buf));
}

static void *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = malloc(1 << 20);
    *len = f && buf ? fread(buf, 1, 1 << 20, f) : 0;
    if (f) fclose(f);
    return buf;
}

/* ------------------------------------------------------------------------ */

static void test_devices(void)
{
    is_int(sched_device_bit("landline"), DEV_LANDLINE, "device bit landline");
    is_int(sched_device_bit("mobile"), DEV_MOBILE, "device bit mobile");
    is_int(sched_device_bit("softphone"), DEV_SOFTPHONE, "device bit softphone");
    is_int(sched_device_bit("fax"), 0, "device bit of unknown name is 0");
    is_int(sched_device_bit(NULL), 0, "device bit of NULL is 0");
    is_str(sched_device_name(DEV_MOBILE), "mobile", "device name of DEV_MOBILE");
    ok(sched_device_name(DEV_LANDLINE | DEV_MOBILE) == NULL, "device name of two bits is NULL");
    ok(sched_device_name(0) == NULL && sched_device_name(8) == NULL, "device name of 0/8 is NULL");
}

static void test_offsets(void)
{
    is_int(off("UTC", utc(2026, 6, 1, 0, 0, 0)), 0, "UTC is +0");
    is_int(off("Etc/UTC", 0), 0, "Etc/UTC is +0");
    is_int(off(NULL, 0), 0, "NULL zone is UTC");

    const char *b = "Europe/Berlin";
    is_int(off(b, utc(2026, 1, 15, 12, 0, 0)), 3600, "Berlin winter +1");
    is_int(off(b, utc(2026, 3, 29, 0, 59, 59)), 3600, "Berlin 1 s before 2026 spring change");
    is_int(off(b, utc(2026, 3, 29, 1, 0, 0)), 7200, "Berlin at 2026 spring change +2");
    is_int(off(b, utc(2026, 10, 25, 0, 59, 59)), 7200, "Berlin 1 s before 2026 autumn change");
    is_int(off(b, utc(2026, 10, 25, 1, 0, 0)), 3600, "Berlin at 2026 autumn change +1");
    is_int(off(b, utc(1800, 1, 1, 0, 0, 0)), 3208, "Berlin before first transition: LMT +0:53:28");
    is_int(off(b, utc(2100, 7, 1, 12, 0, 0)), 7200, "Berlin summer 2100 (footer rule) +2");
    is_int(off(b, utc(2100, 1, 1, 12, 0, 0)), 3600, "Berlin winter 2100 (footer rule) +1");
    is_int(off(b, utc(2100, 3, 28, 1, 0, 0)), 7200, "Berlin 2100 spring change (last Sun Mar 28)");
    is_int(off(b, utc(2100, 3, 28, 0, 59, 59)), 3600, "Berlin 1 s before 2100 spring change");

    const char *ny = "America/New_York";
    is_int(off(ny, utc(2026, 1, 15, 12, 0, 0)), -18000, "New York winter -5");
    is_int(off(ny, utc(2026, 3, 8, 6, 59, 59)), -18000, "New York 1 s before DST");
    is_int(off(ny, utc(2026, 3, 8, 7, 0, 0)), -14400, "New York DST starts 2026-03-08");
    is_int(off(ny, utc(2026, 11, 1, 6, 0, 0)), -18000, "New York DST ends 2026-11-01");
    is_int(off(ny, utc(2100, 7, 4, 12, 0, 0)), -14400, "New York summer 2100 -4");

    is_int(off("Asia/Kolkata", utc(2026, 6, 1, 0, 0, 0)), 19800, "Kolkata +5:30");
    const char *lh = "Australia/Lord_Howe";
    is_int(off(lh, utc(2026, 1, 15, 0, 0, 0)), 39600, "Lord Howe summer +11 (30-min DST)");
    is_int(off(lh, utc(2026, 7, 1, 0, 0, 0)), 37800, "Lord Howe winter +10:30");
    is_int(off(lh, utc(2026, 10, 3, 15, 29, 59)), 37800, "Lord Howe 1 s before DST 2026-10-04");
    is_int(off(lh, utc(2026, 10, 3, 15, 30, 0)), 39600, "Lord Howe DST from 02:00 local");
    is_int(off(lh, utc(2100, 1, 1, 0, 0, 0)), 39600, "Lord Howe 2100 (footer, southern) +11");

    /* Cross-check against glibc over 1900..2200 (tables and footer rules). */
    static const char *zones[] = {"Europe/Berlin",     "America/New_York",  "Australia/Lord_Howe",
                                  "Asia/Kolkata",      "America/Nuuk",      "America/Santiago",
                                  "Africa/Casablanca", "Asia/Tehran",       "Pacific/Chatham",
                                  "Europe/Dublin",     "America/Sao_Paulo", "Antarctica/Troll"};
    for (size_t z = 0; z < sizeof zones / sizeof *zones; z++) {
        int bad = 0, n = 0;
        for (int64_t t = utc(1900, 1, 1, 0, 0, 0); t < utc(2200, 1, 1, 0, 0, 0);
             t += 7 * 86400 + 1237) {
            int32_t mine = off(zones[z], t), theirs = libc_off(zones[z], t);
            n++;
            if (mine != theirs && bad++ < 3)
                diag("%s at %lld: %d vs libc %d", zones[z], (long long)t, mine, theirs);
        }
        ok(bad == 0, "%s agrees with libc at %d instants 1900..2200", zones[z], n);
    }
    unsetenv("TZ");

    static const char *bad[] = {"../etc/passwd",
                                "/etc/passwd",
                                "No/Such_Zone",
                                "",
                                "Europe/../Europe/Berlin",
                                "Europe//Berlin",
                                "Europe/Berlin/",
                                "Europe/Berlin ",
                                "Europe",
                                "A234567890123456789012345678901234567890123456789012345678901234"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int32_t o = 77;
        ok(tz_offset(bad[i], 0, &o) == -1 && !tz_valid(bad[i]) && o == 77, "zone '%s' is invalid",
           bad[i]);
    }
    ok(tz_valid("Europe/Berlin") && tz_valid("UTC") && tz_valid(NULL), "valid zones are valid");
}

/* Corrupt, truncated and hand-made files in a private TZDIR. */
static void test_tzdir(void)
{
    size_t len;
    uint8_t *berlin = read_all("/usr/share/zoneinfo/Europe/Berlin", &len);
    snprintf(tzdir, sizeof tzdir, "/tmp/sch_tzXXXXXX");
    if (!mkdtemp(tzdir) || len < 100) diag("setup failed");
    setenv("TZDIR", tzdir, 1);

    ok(tz_valid("UTC") && tz_valid("Etc/UTC") && off("Etc/UTC", 12345) == 0,
       "UTC and Etc/UTC work without tzdata files");
    ok(!tz_valid("Europe/Berlin"), "Berlin is unknown in an empty TZDIR (cache keyed by path)");

    write_file("Copy", berlin, len);
    is_int(off("Copy", utc(2026, 7, 1, 0, 0, 0)), 7200, "a copy of Berlin in TZDIR loads");

    /* Files of the tz directory that are not zones: "localtime" is the server's own zone
    ** (a link to /etc/localtime), "posixrules" the default rules of POSIX TZ strings, and
    ** right/ the zones counting leap seconds (their times run 27 s apart from the clock's).
    ** An agent's schedule is not to follow them, whatever they hold. */
    char sub[96];
    snprintf(sub, sizeof sub, "%s/right", tzdir);
    mkdir(sub, 0700);
    write_file("localtime", berlin, len);
    write_file("posixrules", berlin, len);
    write_file("right/Copy", berlin, len);
    ok(!tz_valid("localtime") && !tz_valid("posixrules") && !tz_valid("right/Copy"),
       "localtime, posixrules and right/ are not zone names, even where their files load");
    is_str(check("[]", "localtime"), "timezone", "an agent in 'localtime' is refused");
    ok(tz_valid("Copy"), "the same file under a zone's name is valid");

    /* Routing: a zone file that is not there is told once and not read again
    ** at every decision; validation still reads it. */
    json_t *always =
        json_loads("[{\"days\":[\"all\"],\"from\":\"00:00\",\"to\":\"24:00\"}]", 0, NULL);
    char failed[256], want[128];
    snprintf(want, sizeof want, "%s/Later", tzdir);
    ok(sched_devices_told(always, "Later", 0, failed, sizeof failed) == 0 &&
           strcmp(failed, want) == 0,
       "a missing zone: outside the schedule, its file told (%s)", failed);
    ok(sched_devices_told(always, "Later", 0, failed, sizeof failed) == 0 && failed[0] == 0,
       "told once");
    write_file("Later", berlin, len);
    ok(sched_devices_told(always, "Later", 0, failed, sizeof failed) == 0 && failed[0] == 0,
       "not read again at once when it appears");
    ok(tz_valid("Later") && sched_devices_told(always, "Later", 0, failed, sizeof failed) != 0,
       "validation reads it, and routing uses it from then on");
    /* The retry goes by the clock the caller passes (the engine's), a minute from the
    ** failure either way: a clock that never moves never retries, however long the process
    ** runs, and one set back far retries at once. */
    const int64_t t0 = 1767603600000; /* ms */
    ok(sched_devices_told(always, "Soon", t0, failed, sizeof failed) == 0 && failed[0],
       "a missing zone at t0: told");
    write_file("Soon", berlin, len);
    ok(sched_devices_told(always, "Soon", t0 + 59999, failed, sizeof failed) == 0 && failed[0] == 0,
       "its file there, the clock 59.999 s on: not read again");
    ok(sched_devices_told(always, "Soon", t0 + 60000, failed, sizeof failed) != 0,
       "a minute on by that clock: read, on schedule");
    ok(sched_devices_told(always, "Back", t0, failed, sizeof failed) == 0 && failed[0],
       "another missing zone at t0: told");
    write_file("Back", berlin, len);
    ok(sched_devices_told(always, "Back", t0 - 59999, failed, sizeof failed) == 0 && failed[0] == 0,
       "its file there, the clock set back 59.999 s: not read again");
    ok(sched_devices_told(always, "Back", INT64_MIN, failed, sizeof failed) != 0,
       "the clock set back as far as it goes: read at once, on schedule");
    ok(sched_devices_told(always, "Gone2", INT64_MAX, failed, sizeof failed) == 0 && failed[0] &&
           sched_devices_told(always, "Gone2", INT64_MIN, failed, sizeof failed) == 0 && failed[0],
       "a failure at the clock's end, then at its start: tried and told again (%s)", failed);
    /* The same where the tz directory's path is long (a release tree, a container's
    ** mount): the failure is still told, once. */
    char longdir[256], saved[sizeof longdir];
    snprintf(longdir, sizeof longdir, "%s/", tzdir);
    while (strlen(longdir) < 200)
        strcat(longdir, "deep/");
    longdir[strlen(longdir) - 1] = 0;
    snprintf(saved, sizeof saved, "%s", tzdir);
    for (char *p = longdir + strlen(tzdir); p && *p; p = strchr(p + 1, '/')) {
        *p = 0;
        mkdir(longdir, 0700);
        *p = '/';
    }
    mkdir(longdir, 0700);
    setenv("TZDIR", longdir, 1);
    snprintf(want, sizeof want, "%.100s", longdir); /* the start of the path told */
    ok(sched_devices_told(always, "Gone", 0, failed, sizeof failed) == 0 &&
           strncmp(failed, want, strlen(want)) == 0 && strstr(failed, "/Gone"),
       "a missing zone under a long TZDIR: told too (%.40s...)", failed);
    ok(sched_devices_told(always, "Gone", 0, failed, sizeof failed) == 0 && failed[0] == 0,
       "and told once");
    setenv("TZDIR", saved, 1);
    snprintf(longdir, sizeof longdir, "%s/deep", tzdir);
    rmtree(longdir);
    json_decref(always);
    json_t *none = json_loads("[]", 0, NULL);
    ok(sched_devices_told(none, "Gone", 0, failed, sizeof failed) == DEV_ALL && failed[0] == 0,
       "no windows: every device, the zone not read (nothing to tell)");
    json_decref(none);
    int fails = 0;
    for (size_t n = 0; n < len; n++) {
        write_file("Trunc", berlin, n);
        fails += off("Trunc", utc(2026, 7, 1, 0, 0, 0)) == BAD_OFF;
    }
    is_int(fails, len, "every truncation of Berlin (0..%zu bytes) gives -1", len - 1);

    uint8_t *mut = malloc(len);
    memcpy(mut, berlin, len);
    mut[0] = 'X';
    write_file("BadMagic", mut, len);
    ok(off("BadMagic", 0) == BAD_OFF, "bad magic gives -1");
    memcpy(mut, berlin, len);
    memcpy(mut + len - 10, "garbage\n", 8); /* footer that does not parse */
    write_file("BadFooter", mut, len - 2);
    ok(off("BadFooter", 0) == BAD_OFF, "unparsable footer gives -1");

    /* v1 only: 32-bit times, no footer; the last transition's type rules forever. */
    uint8_t buf[512], *p;
    int32_t offs[2] = {3600, 7200};
    int64_t when[2] = {1000000000, 1100000000};
    uint8_t idx[2] = {1, 0};
    p = tzif_block(buf, 0, 4, 2, when, idx, 2, offs);
    write_file("V1", buf, (size_t)(p - buf));
    ok(off("V1", 999999999) == 3600 && off("V1", 1000000000) == 7200 &&
           off("V1", 1100000000) == 3600 && off("V1", utc(2100, 1, 1, 0, 0, 0)) == 3600,
       "v1 file: type 0 before, table after, last type after the end");
    idx[1] = 2; /* type index out of range */
    p = tzif_block(buf, 0, 4, 2, when, idx, 2, offs);
    write_file("BadIdx", buf, (size_t)(p - buf));
    ok(off("BadIdx", 0) == BAD_OFF, "transition type index out of range gives -1");
    idx[1] = 0, when[1] = when[0]; /* not increasing */
    p = tzif_block(buf, 0, 4, 2, when, idx, 2, offs);
    write_file("BadOrder", buf, (size_t)(p - buf));
    ok(off("BadOrder", 0) == BAD_OFF, "transitions out of order give -1");

    /* Footer forms: Jn (Feb 29 never counted), n (zero-based, counted), all-year DST. */
    write_footer_zone("J", 7200, "XST-2XDT,J60/2,J300/3");
    is_int(off("J", utc(2026, 2, 28, 23, 59, 59)), 7200, "J60: std until Mar 1 02:00 local");
    is_int(off("J", utc(2026, 3, 1, 0, 0, 0)), 10800, "J60: DST from Mar 1 02:00 local");
    is_int(off("J", utc(2028, 2, 29, 12, 0, 0)), 7200, "J60 skips Feb 29 in a leap year");
    is_int(off("J", utc(2026, 10, 26, 23, 59, 59)), 10800, "J300 = Oct 27: still DST before");
    is_int(off("J", utc(2026, 10, 27, 0, 0, 0)), 7200, "J300/3 ends DST at 03:00 DST");
    write_footer_zone("N", 7200, "<+02>-2<+03>,59,299/3");
    is_int(off("N", utc(2028, 2, 29, 0, 0, 0)), 10800, "n=59 is Feb 29 in a leap year");
    is_int(off("N", utc(2026, 2, 28, 23, 59, 59)), 7200, "n=59 is Mar 1 in 2026");
    write_footer_zone("AllDST", -18000, "EST5EDT,0/0,J365/25");
    ok(off("AllDST", utc(2026, 1, 1, 4, 30, 0)) == -14400 &&
           off("AllDST", utc(2026, 12, 31, 23, 0, 0)) == -14400 &&
           off("AllDST", utc(2027, 1, 1, 5, 0, 0)) == -14400,
       "0/0,J365/25 is DST all year, across New Year");
    write_footer_zone("Neg", -7200, "<-02>2<-01>,M3.5.0/-1,M10.5.0/0");
    is_int(off("Neg", utc(2030, 3, 31, 0, 59, 59)), -7200, "negative rule time: before");
    is_int(off("Neg", utc(2030, 3, 31, 1, 0, 0)), -3600, "M3.5.0/-1: Sat 23:00 local");
    write_footer_zone("Default", -18000, "EST5EDT");
    is_int(off("Default", utc(2026, 7, 1, 0, 0, 0)), -14400, "DST without rule: US default");
    write_footer_zone("HalfStd", 0, "<+0545>-5:45");
    is_int(off("HalfStd", 0), 20700, "footer-only zone +5:45");
    static const char *badf[] = {
        "X1",    "EST",   "EST5EDT,M13.1.0,M11.1.0", "EST5EDT,M3.2.0",        "EST5;",
        "EST25", "<AB>1", "EST5EDT,J0,J10",          "EST5EDT,M3.6.0,M11.1.0"};
    for (size_t i = 0; i < sizeof badf / sizeof *badf; i++) {
        write_footer_zone("BadF", 0, badf[i]);
        ok(off("BadF", 0) == BAD_OFF, "footer '%s' is rejected", badf[i]);
    }

    /* Every zone a system has (about 600 names, 1300 with posix/ and right/) stays cached:
    ** a zone past the cache would be read and parsed again on every lookup. Shown by
    ** deleting the files once loaded: cached zones still work. */
    int stale = 0;
    for (int i = 0; i < 600; i++) {
        char name[16];
        snprintf(name, sizeof name, "C%d", i);
        write_footer_zone(name, 3600, "<+01>-1");
        stale += off(name, 0) != 3600;
    }
    for (int i = 0; i < 600; i++) {
        char name[16];
        snprintf(name, sizeof name, "C%d", i);
        snprintf((char *)buf, sizeof buf, "%s/%s", tzdir, name);
        unlink((char *)buf);
        stale += off(name, 0) != 3600;
    }
    is_int(stale, 0, "600 zones loaded once are all cached (not read again per lookup)");

    /* Random corruption must never crash (run under ASan); load either succeeds or fails. */
    srand(7);
    int loaded = 0;
    for (int i = 0; i < 1500; i++) {
        char name[32];
        memcpy(mut, berlin, len);
        for (int k = 0; k < 1 + rand() % 4; k++)
            mut[rand() % len] = (uint8_t)rand();
        snprintf(name, sizeof name, "F%d", i);
        write_file(name, mut, len);
        loaded += off(name, utc(2026, 1, 1, 0, 0, 0)) != BAD_OFF;
        off(name, utc(2200, 1, 1, 0, 0, 0));
        snprintf((char *)buf, sizeof buf, "%s/%s", tzdir, name);
        unlink((char *)buf);
    }
    ok(1, "1500 randomly corrupted files did not crash (%d loaded)", loaded);

    /* Fill the cache (2048 zones); zones past it are loaded for each call. */
    int bad_full = 0;
    const char *allday = "[{\"days\":[\"all\"],\"from\":\"00:00\",\"to\":\"24:00\"}]";
    for (int i = 0; i < 2100; i++) {
        char name[16];
        snprintf(name, sizeof name, "O%d", i);
        write_footer_zone(name, -3600, "<-01>1<+00>,M3.5.0/0,M10.5.0/1");
        bad_full += off(name, utc(2026, 1, 1, 0, 0, 0)) != -3600;
        bad_full += at(allday, name, utc(2026, 1, 1, 0, 0, 0)) != DEV_ALL;
        bad_full += at("[]", name, 0) != DEV_ALL;
        snprintf((char *)buf, sizeof buf, "%s/%s", tzdir, name);
        unlink((char *)buf);
    }
    is_int(bad_full, 0, "zones and schedules work past a full cache");
    is_int(off("Copy", utc(2026, 1, 1, 0, 0, 0)), 3600, "zones still work with the cache full");

    static const char *files[] = {"Copy",       "Trunc",      "BadMagic", "BadFooter", "V1",
                                  "BadIdx",     "BadOrder",   "J",        "N",         "AllDST",
                                  "Neg",        "Default",    "HalfStd",  "BadF",      "localtime",
                                  "posixrules", "right/Copy", "Later",    "Soon",      "Back"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf((char *)buf, sizeof buf, "%s/%s", tzdir, files[i]);
        unlink((char *)buf);
    }
    rmdir(sub);
    rmdir(tzdir);
    unsetenv("TZDIR");
    free(mut);
    free(berlin);
}

/* Through an engine: an agent whose zone cannot be loaded where the engine
** runs (put where it could) is outside its schedule, and the log says why,
** once. */
static char logged[8][512];
static int nlogged;
static void keep_log(void *arg, sb_log_level l, const char *line)
{
    (void)arg;
    (void)l;
    if (strstr(line, "time zone") && nlogged < 8) snprintf(logged[nlogged++], 512, "%s", line);
}

/* GET of an agent says what a policy reads as on_schedule and devices_now,
** at the engine's clock: a supervisor could not see whether an agent was in
** hours without a policy. Desk phone 09:00-17:00 London on weekdays, mobile
** 17:00-20:00; no schedule: always on, every device. */
static int agent_now(sb_engine *e, sb_result *res, const char *id, char *devs, size_t cap)
{
    devs[0] = 0;
    if (sb_agent_get(e, "acme", id, res)) return -1;
    json_t *o = json_loads(sb_result_json(res, NULL), 0, NULL);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(o, "devices_now"), i, v) snprintf(
        devs + strlen(devs), cap - strlen(devs), "%s%s", i ? "," : "", json_string_value(v));
    json_t *on = json_object_get(o, "on_schedule");
    int r = json_is_boolean(on) ? json_is_true(on) : -2;
    json_decref(o);
    return r;
}

static void test_agent_get_now(void)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/sch_getXXXXXX");
    if (!mkdtemp(dir)) diag("setup failed");
    sb_result *res = sb_result_new();
    sb_config cfg;
    test_engine_config(&cfg, dir, NULL, 0);
    sb_engine *e = test_open(&cfg, res);
    int rc = !e || sb_account_put(e, "{\"id\":\"acme\"}", 13, res) ||
             test_put(e, res, sb_agent_put, "acme",
                      "{\"id\":\"desk\",\"devices\":{\"landline\":\"sip:d@x\",\"mobile\":"
                      "\"tel:+447700900001\",\"softphone\":\"sip:s@x\"},\"timezone\":"
                      "\"Europe/London\",\"schedule\":[{\"days\":[\"mon\",\"tue\",\"wed\",\"thu\","
                      "\"fri\"],\"from\":\"09:00\",\"to\":\"17:00\",\"devices\":[\"landline\"]},"
                      "{\"days\":[\"mon\"],\"from\":\"17:00\",\"to\":\"20:00\",\"devices\":["
                      "\"mobile\"]}]}") ||
             test_put(e, res, sb_agent_put, "acme",
                      "{\"id\":\"free\",\"devices\":{\"mobile\":\"tel:+447700900002\","
                      "\"softphone\":\"sip:f@x\"}}");
    ok(!rc, "two agents, one with a schedule (%s)", sb_result_message(res));
    static const struct {
        int h, on;
        const char *devs;
    } at_h[] = {{8, 0, ""}, {10, 1, "landline"}, {18, 1, "mobile"}, {21, 0, ""}};
    int64_t saved = now_ms;
    char devs[64];
    for (size_t i = 0; i < sizeof at_h / sizeof at_h[0]; i++) {
        now_ms = utc(2026, 6, 1, at_h[i].h - 1, 30, 0) * 1000; /* a Monday; London is UTC+1 */
        int on = agent_now(e, res, "desk", devs, sizeof devs);
        ok(on == at_h[i].on && strcmp(devs, at_h[i].devs) == 0,
           "Monday %02d:30 in London: on_schedule %d, devices_now [%s] (got %d, [%s])", at_h[i].h,
           at_h[i].on, at_h[i].devs, on, devs);
    }
    int on = agent_now(e, res, "free", devs, sizeof devs);
    ok(on == 1 && strcmp(devs, "softphone,mobile") == 0,
       "no schedule: on, its devices in the order a ring picks them (got %d, [%s])", on, devs);
    now_ms = saved;
    sb_close(e);
    sb_result_free(res);
    rmtree(dir);
}

/* An engine in dir logging to keep_log, with account acme, policy "sched" (it rejects each
** call with the reason agents[1].on_schedule), agent a1 always on schedule in zone tz and
** queue q of a1 under "sched". NULL if any of it fails, the message in res. */
static sb_engine *zone_engine(const char *dir, const char *tz, sb_result *res)
{
    static const char *pol = "local P = {}\n"
                             "function P.route(call, agents, ctx)\n"
                             "  return { reject = tostring(agents[1].on_schedule) }\n"
                             "end\nreturn P\n";
    char a1[256];
    snprintf(a1, sizeof a1,
             "{\"id\":\"a1\",\"status\":\"available\",\"devices\":{\"softphone\":\"sip:a1@x\"},"
             "\"timezone\":\"%s\",\"schedule\":[{\"days\":[\"all\"],\"from\":\"00:00\",\"to\":"
             "\"24:00\"}]}",
             tz);
    sb_config cfg;
    test_engine_config(&cfg, dir, NULL, 0);
    cfg.log = keep_log;
    sb_engine *e = test_open(&cfg, res);
    if (e && (sb_account_put(e, "{\"id\":\"acme\"}", 13, res) ||
              sb_policy_put(e, "acme", "sched", pol, strlen(pol), NULL, res) ||
              test_put(e, res, sb_agent_put, "acme", a1) ||
              test_put(e, res, sb_queue_put, "acme",
                       "{\"id\":\"q\",\"policy\":\"sched\",\"members\":[{\"agent\":\"a1\"}]}"))) {
        sb_close(e);
        e = NULL;
    }
    return e;
}

static void test_engine_zone(void)
{
    char dir[64], zdir[64], empty[64], empty2[64], path[128];
    snprintf(dir, sizeof dir, "/tmp/sch_engXXXXXX");
    snprintf(zdir, sizeof zdir, "/tmp/sch_zoneXXXXXX");
    snprintf(empty, sizeof empty, "/tmp/sch_emptyXXXXXX");
    snprintf(empty2, sizeof empty2, "/tmp/sch_empty2XXXXXX");
    if (!mkdtemp(dir) || !mkdtemp(zdir) || !mkdtemp(empty) || !mkdtemp(empty2))
        diag("setup failed");
    size_t len;
    uint8_t *berlin = read_all("/usr/share/zoneinfo/Europe/Berlin", &len);
    snprintf(path, sizeof path, "%s/Office", zdir);
    write_file_in(zdir, "Office", berlin, len);
    free(berlin);
    setenv("TZDIR", zdir, 1);

    sb_result *res = sb_result_new();
    sb_engine *e = zone_engine(dir, "Office", res);
    static const char *boom = "local P = {}\n"
                              "function P.route(call, agents, ctx) error('boom') end\n"
                              "return P\n";
    static const char *ev1 =
        "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"q\",\"caller\":\"+15550001111\"}";
    static const char *ev2 =
        "{\"type\":\"offer\",\"call\":\"c2\",\"queue\":\"q\",\"caller\":\"+15550001111\"}";
    int rc =
        !e || sb_policy_put(e, "acme", "boom", boom, strlen(boom), NULL, res) ||
        test_put(e, res, sb_agent_put, "acme",
                 "{\"id\":\"a2\",\"status\":\"available\",\"devices\":{\"softphone\":\"sip:a2@x\"},"
                 "\"timezone\":\"Office\",\"schedule\":[{\"days\":[\"all\"],"
                 "\"from\":\"00:00\",\"to\":\"24:00\"}]}") ||
        test_put(e, res, sb_queue_put, "acme",
                 "{\"id\":\"qf\",\"policy\":\"boom\",\"members\":[{\"agent\":\"a2\"}]}") ||
        test_put(e, res, sb_agent_put, "acme",
                 "{\"id\":\"a3\",\"status\":\"available\",\"devices\":{\"softphone\":\"sip:a3@x\"},"
                 "\"timezone\":\"Office\",\"schedule\":[]}") ||
        test_put(e, res, sb_queue_put, "acme",
                 "{\"id\":\"qe\",\"policy\":\"sched\",\"members\":[{\"agent\":\"a3\"}]}");
    ok(!rc, "an agent in zone Office, put where TZDIR has it (%s)", sb_result_message(res));
    const sb_action *r = (test_event(e, res, "acme", ev1), test_action_nth(res, SB_ACT_REJECT, 0));
    ok(r && strcmp(r->reason, "true") == 0, "on schedule there");
    is_int(nlogged, 0, "nothing logged");
    setenv("TZDIR", empty, 1); /* the same data, opened where the zone is missing */
    r = (test_event(e, res, "acme", ev2), test_action_nth(res, SB_ACT_REJECT, 0));
    ok(r && strcmp(r->reason, "false") == 0, "where the zone cannot be loaded: off schedule");
    r = (test_event(
             e, res, "acme",
             "{\"type\":\"offer\",\"call\":\"c3\",\"queue\":\"q\",\"caller\":\"+15550001111\"}"),
         test_action_nth(res, SB_ACT_REJECT, 0));
    ok(r && strcmp(r->reason, "false") == 0, "at the next call too");
    is_int(nlogged, 1, "the log says so once");
    ok(nlogged && strstr(logged[0], "time zone 'Office' of agent 'a1' cannot be loaded from ") &&
           strstr(logged[0], "/Office") && strstr(logged[0], "account=acme"),
       "naming the zone, the agent, the file and the account (%s)", nlogged ? logged[0] : "-");

    /* Missing again elsewhere, met first where the engine picks a device itself (the
    ** fallback of a failing policy rings a2): that cannot log, and must not use up the
    ** one time it is told, so the next policy that reads the schedule says so. */
    setenv("TZDIR", empty2, 1);
    test_event(e, res, "acme",
               "{\"type\":\"offer\",\"call\":\"c4\",\"queue\":\"qf\",\"caller\":\"+15550001111\"}");
    ok(test_action_nth(res, SB_ACT_RING, 0) != NULL, "the fallback rings a2");
    r = (test_event(
             e, res, "acme",
             "{\"type\":\"offer\",\"call\":\"c5\",\"queue\":\"q\",\"caller\":\"+15550001111\"}"),
         test_action_nth(res, SB_ACT_REJECT, 0));
    ok(r && strcmp(r->reason, "false") == 0, "off schedule in the other directory too");
    is_int(nlogged, 2, "the log says so for it, though the fallback met it first");
    ok(nlogged == 2 &&
           strstr(logged[1], "time zone 'Office' of agent 'a1' cannot be loaded from ") &&
           strstr(logged[1], empty2),
       "naming the zone, the agent and the file (%s)", nlogged > 1 ? logged[1] : "-");

    /* An empty schedule is no schedule: always on, whatever its zone, which only windows
    ** are read in (a zone gone in a tzdata upgrade must not take such agents out). */
    r = (test_event(
             e, res, "acme",
             "{\"type\":\"offer\",\"call\":\"c6\",\"queue\":\"qe\",\"caller\":\"+15550001111\"}"),
         test_action_nth(res, SB_ACT_REJECT, 0));
    ok(r && strcmp(r->reason, "true") == 0,
       "schedule [] in a zone that cannot be loaded: on schedule (%s)", r ? r->reason : "-");
    char devs[64];
    int on = agent_now(e, res, "a3", devs, sizeof devs);
    ok(on == 1 && strcmp(devs, "softphone") == 0,
       "and GET says so: on_schedule 1, devices_now [softphone] (got %d, [%s])", on, devs);
    is_int(nlogged, 2, "nothing logged for it");
    sb_close(e);
    sb_result_free(res);
    unsetenv("TZDIR");
    unlink(path);
    rmdir(zdir);
    rmdir(empty);
    rmdir(empty2);
    rmtree(dir);
}

/* Offer call to queue q, whose policy rejects it with its agent's on_schedule: 1 if on
** schedule, 0 if not, -1 for no such answer. */
static int route_on(sb_engine *e, sb_result *res, const char *call)
{
    char ev[160];
    snprintf(ev, sizeof ev,
             "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"q\",\"caller\":\"+15550001111\"}",
             call);
    const sb_action *r = (test_event(e, res, "acme", ev), test_action_nth(res, SB_ACT_REJECT, 0));
    return !r ? -1 : strcmp(r->reason, "true") == 0;
}

/* The engine retries a zone that failed to load by its own clock: a test's, a replay's.
** An agent put where its zone is read, then routed where the file is missing: the file
** put there, it is read a minute of the engine's clock later, not before, and a clock
** set back a minute from a failure retries at once. */
static void test_engine_zone_retry(void)
{
    /* The engine's data in dir; the zone's directories under zones: where the agent is
    ** put, and one for each case where it is missing. */
    char dir[64], zones[64], put[96], late[96], back[96];
    snprintf(dir, sizeof dir, "/tmp/sch_retXXXXXX");
    snprintf(zones, sizeof zones, "/tmp/sch_rzXXXXXX");
    if (!mkdtemp(dir) || !mkdtemp(zones)) diag("setup failed");
    snprintf(put, sizeof put, "%s/put", zones);
    snprintf(late, sizeof late, "%s/late", zones);
    snprintf(back, sizeof back, "%s/back", zones);
    if (mkdir(put, 0700) || mkdir(late, 0700) || mkdir(back, 0700)) diag("setup failed");
    size_t len;
    uint8_t *berlin = read_all("/usr/share/zoneinfo/Europe/Berlin", &len);
    setenv("TZDIR", put, 1);
    write_file_in(put, "Desk", berlin, len);

    int64_t saved = now_ms;
    nlogged = 0;
    sb_result *res = sb_result_new();
    sb_engine *e = zone_engine(dir, "Desk", res);
    ok(e != NULL, "an agent in zone Desk, put where TZDIR has it (%s)", sb_result_message(res));

    /* Forward: tried again a minute later by the engine's clock. */
    setenv("TZDIR", late, 1);
    const int64_t t0 = now_ms;
    ok(route_on(e, res, "r1") == 0 && nlogged == 1, "the zone missing: off schedule, told");
    write_file_in(late, "Desk", berlin, len);
    ok(route_on(e, res, "r2") == 0, "its file put there, the clock where it was: not read yet");
    now_ms = t0 + 59999;
    ok(route_on(e, res, "r3") == 0, "59.999 s on by the engine's clock: not read yet");
    now_ms = t0 + 60000;
    ok(route_on(e, res, "r4") == 1, "a minute on by the engine's clock: read, on schedule");
    is_int(nlogged, 1, "told once");

    /* Back: a clock set back a minute from the failure retries at once, where waiting
    ** for the time of the failure to come round again could take for ever. */
    setenv("TZDIR", back, 1);
    now_ms = t0 + 3600000;
    ok(route_on(e, res, "r5") == 0 && nlogged == 2, "missing in another directory: told");
    write_file_in(back, "Desk", berlin, len);
    now_ms = t0 + 3600000 - 59999;
    ok(route_on(e, res, "r6") == 0, "its file there, the clock set back 59.999 s: not read yet");
    now_ms = t0;
    ok(route_on(e, res, "r7") == 1, "the clock set back an hour: read at once, on schedule");
    is_int(nlogged, 2, "nothing more told");

    now_ms = saved;
    sb_close(e);
    sb_result_free(res);
    free(berlin);
    unsetenv("TZDIR");
    rmtree(zones);
    rmtree(dir);
}

static void test_windows(void)
{
    /* 2026-01-12 is a Monday; 01-16 Friday; 01-17 Saturday; 07-13 Monday. */
    const char *office = "[{\"days\":[\"weekdays\"],\"from\":\"09:00\",\"to\":\"17:00\"}]";
    is_int(at(office, "UTC", utc(2026, 1, 12, 10, 0, 0)), DEV_ALL, "inside window: all devices");
    is_int(at(office, "UTC", utc(2026, 1, 12, 8, 59, 0)), 0, "before window: none");
    is_int(at(office, "UTC", utc(2026, 1, 12, 16, 59, 59)), DEV_ALL, "last second of window");
    is_int(at(office, "UTC", utc(2026, 1, 12, 17, 0, 0)), 0, "window end is exclusive");
    is_int(at(office, "UTC", utc(2026, 1, 16, 12, 0, 0)), DEV_ALL, "weekdays includes Friday");
    is_int(at(office, "UTC", utc(2026, 1, 17, 12, 0, 0)), 0, "weekdays excludes Saturday");
    is_int(at("[]", "UTC", 0), DEV_ALL, "empty schedule: always on");
    ok(sched_devices_at(NULL, NULL, 0) == DEV_ALL, "NULL schedule: always on");

    /* Desk phones in office hours, the mobile otherwise. */
    const char *split = "[{\"days\":[\"weekdays\"],\"from\":\"09:00\",\"to\":\"17:00\","
                        "\"devices\":[\"landline\",\"softphone\"]},"
                        "{\"days\":[\"weekdays\"],\"from\":\"17:00\",\"to\":\"09:00\","
                        "\"devices\":[\"mobile\"]},"
                        "{\"days\":[\"weekend\"],\"from\":\"00:00\",\"to\":\"24:00\","
                        "\"devices\":[\"mobile\"]}]";
    is_int(at(split, "UTC", utc(2026, 1, 12, 10, 0, 0)), DEV_LANDLINE | DEV_SOFTPHONE,
           "office hours: landline and softphone");
    is_int(at(split, "UTC", utc(2026, 1, 12, 20, 0, 0)), DEV_MOBILE, "Monday evening: mobile");
    is_int(at(split, "UTC", utc(2026, 1, 13, 3, 0, 0)), DEV_MOBILE,
           "Tuesday 03:00: Monday's overnight window");
    is_int(at(split, "UTC", utc(2026, 1, 12, 3, 0, 0)), 0,
           "Monday 03:00: no window (Sunday's is not overnight)");
    is_int(at(split, "UTC", utc(2026, 1, 17, 23, 59, 0)), DEV_MOBILE, "Saturday: mobile");
    const char *both = "[{\"days\":[\"mon\"],\"from\":\"09:00\",\"to\":\"17:00\","
                       "\"devices\":[\"landline\"]},"
                       "{\"days\":[\"mon\"],\"from\":\"12:00\",\"to\":\"13:00\","
                       "\"devices\":[\"mobile\",\"softphone\"]}]";
    is_int(at(both, "UTC", utc(2026, 1, 12, 12, 30, 0)), DEV_ALL, "overlapping windows: union");
    is_int(at(both, "UTC", utc(2026, 1, 12, 13, 0, 0)), DEV_LANDLINE, "after the overlap");

    const char *night = "[{\"days\":[\"fri\"],\"from\":\"22:00\",\"to\":\"06:00\"}]";
    is_int(at(night, "UTC", utc(2026, 1, 16, 23, 0, 0)), DEV_ALL, "cross-midnight: Fri 23:00");
    is_int(at(night, "UTC", utc(2026, 1, 17, 5, 59, 59)), DEV_ALL, "cross-midnight: Sat 05:59");
    is_int(at(night, "UTC", utc(2026, 1, 17, 6, 0, 0)), 0, "cross-midnight: Sat 06:00 is out");
    is_int(at(night, "UTC", utc(2026, 1, 16, 5, 0, 0)), 0, "cross-midnight: Fri 05:00 is out");
    is_int(at(night, "UTC", utc(2026, 1, 17, 23, 0, 0)), 0, "cross-midnight: Sat 23:00 is out");

    const char *late = "[{\"days\":[\"sun\"],\"from\":\"20:00\",\"to\":\"24:00\"}]";
    is_int(at(late, "UTC", utc(2026, 1, 18, 23, 59, 59)), DEV_ALL, "to 24:00 includes 23:59:59");
    is_int(at(late, "UTC", utc(2026, 1, 19, 0, 0, 0)), 0, "to 24:00 excludes next midnight");

    /* The agent's own zone. */
    const char *mon9 = "[{\"days\":[\"mon\"],\"from\":\"09:00\",\"to\":\"17:00\"}]";
    const char *b = "Europe/Berlin";
    is_int(at(mon9, b, utc(2026, 1, 12, 8, 0, 0)), DEV_ALL, "09:00 Berlin in winter is 08:00 UTC");
    is_int(at(mon9, b, utc(2026, 1, 12, 7, 59, 59)), 0, "07:59:59 UTC is before 09:00 Berlin");
    is_int(at(mon9, b, utc(2026, 7, 13, 7, 0, 0)), DEV_ALL, "09:00 Berlin in summer is 07:00 UTC");
    is_int(at(mon9, b, utc(2026, 7, 13, 15, 0, 0)), 0, "17:00 Berlin summer is the end");
    is_int(at(mon9, "America/New_York", utc(2026, 1, 12, 14, 0, 0)), DEV_ALL,
           "09:00 New York is 14:00 UTC");
    is_int(at("[{\"days\":[\"mon\"],\"from\":\"00:00\",\"to\":\"02:00\"}]", "Asia/Kolkata",
              utc(2026, 1, 11, 18, 30, 0)),
           DEV_ALL, "Sunday 18:30 UTC is Monday 00:00 in Kolkata");

    is_int(at(office, "No/Such_Zone", utc(2026, 1, 12, 10, 0, 0)), 0, "unknown zone: 0");
    is_int(at("[{\"days\":[\"mon\"],\"from\":\"9:00\",\"to\":\"17:00\"}]", "UTC",
              utc(2026, 1, 12, 10, 0, 0)),
           0, "invalid schedule: 0");
    unsigned m = at(office, "Europe/Berlin", INT64_MAX / 1000);
    ok(m == 0 || m == DEV_ALL, "extreme times do not overflow");
}

/* Clocks going back repeat an hour of wall time. A window is one unbroken stretch of real
** time: it starts the first time the clock reaches "from" and ends the first time it
** reaches "to"; the repeated hour does not switch it off and on again. */
static void test_fall_back(void)
{
    const char *ny = "America/New_York"; /* 2026-11-01 06:00 UTC: 02:00 EDT -> 01:00 EST */
    const char *from130 = "[{\"days\":[\"sun\"],\"from\":\"01:30\",\"to\":\"05:00\"}]";
    is_int(at(from130, ny, utc(2026, 11, 1, 5, 29, 59)), 0, "NY fall back: 01:29 EDT before 01:30");
    is_int(at(from130, ny, utc(2026, 11, 1, 5, 30, 0)), DEV_ALL, "NY fall back: on at 01:30 EDT");
    is_int(at(from130, ny, utc(2026, 11, 1, 6, 10, 0)), DEV_ALL,
           "NY fall back: a window begun at 01:30 EDT stays on at 01:10 EST");
    is_int(at(from130, ny, utc(2026, 11, 1, 6, 40, 0)), DEV_ALL, "NY fall back: on at 01:40 EST");
    is_int(at(from130, ny, utc(2026, 11, 1, 9, 59, 59)), DEV_ALL, "NY fall back: on at 04:59 EST");
    is_int(at(from130, ny, utc(2026, 11, 1, 10, 0, 0)), 0, "NY fall back: off at 05:00 EST");

    const char *to130 = "[{\"days\":[\"sat\"],\"from\":\"22:00\",\"to\":\"01:30\"}]";
    is_int(at(to130, ny, utc(2026, 11, 1, 5, 29, 59)), DEV_ALL, "NY fall back: on at 01:29 EDT");
    is_int(at(to130, ny, utc(2026, 11, 1, 5, 30, 0)), 0, "NY fall back: ends at 01:30 EDT");
    is_int(at(to130, ny, utc(2026, 11, 1, 6, 10, 0)), 0,
           "NY fall back: a window ended at 01:30 EDT does not come back at 01:10 EST");
    is_int(at(to130, ny, utc(2026, 11, 1, 6, 29, 59)), 0, "NY fall back: still off at 01:29 EST");

    const char *inside = "[{\"days\":[\"sun\"],\"from\":\"01:10\",\"to\":\"01:40\"}]";
    is_int(at(inside, ny, utc(2026, 11, 1, 5, 20, 0)), DEV_ALL,
           "window in the repeated hour: on once");
    is_int(at(inside, ny, utc(2026, 11, 1, 6, 20, 0)), 0, "window in the repeated hour: not twice");

    const char *across = "[{\"days\":[\"sun\"],\"from\":\"01:45\",\"to\":\"02:15\"}]";
    is_int(at(across, ny, utc(2026, 11, 1, 5, 50, 0)), DEV_ALL, "01:45-02:15: on at 01:50 EDT");
    is_int(at(across, ny, utc(2026, 11, 1, 6, 5, 0)), DEV_ALL, "01:45-02:15: on at 01:05 EST");
    is_int(at(across, ny, utc(2026, 11, 1, 7, 14, 59)), DEV_ALL, "01:45-02:15: on at 02:14 EST");
    is_int(at(across, ny, utc(2026, 11, 1, 7, 15, 0)), 0, "01:45-02:15: off at 02:15 EST");

    const char *two = "[{\"days\":[\"sun\"],\"from\":\"02:00\",\"to\":\"03:00\"}]";
    is_int(at(two, ny, utc(2026, 11, 1, 6, 59, 59)), 0,
           "02:00-03:00: the clock first shows 02:00 at 02:00 EST, not during the repeat");
    is_int(at(two, ny, utc(2026, 11, 1, 7, 0, 0)), DEV_ALL, "02:00-03:00: on at 02:00 EST");
    const char *to2 = "[{\"days\":[\"sun\"],\"from\":\"00:00\",\"to\":\"02:00\"}]";
    is_int(at(to2, ny, utc(2026, 11, 1, 6, 30, 0)), DEV_ALL, "00:00-02:00: on through the repeat");
    is_int(at(to2, ny, utc(2026, 11, 1, 7, 0, 0)), 0, "00:00-02:00: off at 02:00 EST");

    /* London: 2026-10-25 01:00 UTC, 02:00 BST -> 01:00 GMT. */
    const char *lon = "[{\"days\":[\"sun\"],\"from\":\"01:15\",\"to\":\"09:00\"}]";
    is_int(at(lon, "Europe/London", utc(2026, 10, 25, 1, 5, 0)), DEV_ALL,
           "London fall back: 01:05 GMT stays in a window begun at 01:15 BST");
    /* Lord Howe, 30-minute DST: 2026-04-04 15:00 UTC, 02:00 +11 -> 01:30 +10:30. */
    const char *lh = "[{\"days\":[\"sun\"],\"from\":\"01:45\",\"to\":\"06:00\"}]";
    is_int(at(lh, "Australia/Lord_Howe", utc(2026, 4, 4, 14, 45, 0)), DEV_ALL,
           "Lord Howe fall back: on at 01:45 +11");
    is_int(at(lh, "Australia/Lord_Howe", utc(2026, 4, 4, 15, 10, 0)), DEV_ALL,
           "Lord Howe fall back: on at 01:40 +10:30 (repeated half hour)");
    /* The same rule from a footer (no transition table). */
    is_int(at(lh, "Australia/Lord_Howe", utc(2100, 4, 3, 15, 10, 0)), DEV_ALL,
           "Lord Howe 2100 (footer rule): on in the repeated half hour");

    /* Spring forward (2026-03-08 07:00 UTC, 02:00 EST -> 03:00 EDT): a window that starts
    ** or ends in the skipped hour starts or ends at the change. */
    const char *gap = "[{\"days\":[\"sun\"],\"from\":\"02:30\",\"to\":\"04:00\"}]";
    is_int(at(gap, ny, utc(2026, 3, 8, 6, 59, 59)), 0, "spring forward: off at 01:59:59 EST");
    is_int(at(gap, ny, utc(2026, 3, 8, 7, 0, 0)), DEV_ALL, "spring forward: on at 03:00 EDT");
    const char *gapend = "[{\"days\":[\"sat\"],\"from\":\"22:00\",\"to\":\"02:30\"}]";
    is_int(at(gapend, ny, utc(2026, 3, 8, 6, 59, 59)), DEV_ALL, "spring forward: on at 01:59:59");
    is_int(at(gapend, ny, utc(2026, 3, 8, 7, 0, 0)), 0, "spring forward: ends at 03:00 EDT");
}

static void test_validate(void)
{
    const char *w = "{\"days\":[\"mon\"],\"from\":\"09:00\",\"to\":\"17:00\"}";
    char buf[4096];
    is_str(check("[{\"days\":[\"all\"],\"from\":\"22:00\",\"to\":\"06:00\","
                 "\"devices\":[\"mobile\"]}]",
                 "Europe/Berlin"),
           "", "a valid schedule validates");
    is_str(check("null", NULL), "", "no schedule and no zone validate");
    is_str(check("{}", NULL), "schedule", "schedule not an array");
    is_str(vmsg, "expected an array of windows", "message for a non-array");

    snprintf(buf, sizeof buf, "[%s,%s,%s]", w, w,
             "{\"days\":[\"mon\"],\"from\":\"9:00\",\"to\":\"17:00\"}");
    is_str(check(buf, NULL), "schedule[2].from", "malformed from names schedule[2].from");
    is_str(vmsg, "expected HH:MM (00:00..24:00)", "message for malformed time");
    is_str(check("[{\"days\":[\"mon\"],\"from\":\"09:00\",\"to\":\"24:01\"}]", NULL),
           "schedule[0].to", "24:01 is invalid");
    is_str(check("[{\"days\":[\"mon\"],\"from\":\"12:60\",\"to\":\"13:00\"}]", NULL),
           "schedule[0].from", "12:60 is invalid");
    is_str(check("[{\"days\":[\"mon\"],\"from\":\"09:00\",\"to\":\"09:00\"}]", NULL),
           "schedule[0].to", "from == to is an error");
    /* 24:00 of the window's day is 00:00 of the next: the same moment, an empty window. */
    is_str(check("[{\"days\":[\"mon\"],\"from\":\"24:00\",\"to\":\"00:00\"}]", NULL),
           "schedule[0].to", "24:00 to 00:00 (an empty window) is an error");
    is_int(at("[{\"days\":[\"all\"],\"from\":\"24:00\",\"to\":\"00:00\"}]", "UTC", 0), 0,
           "24:00 to 00:00 is invalid: 0");
    is_str(check("[{\"days\":[\"mon\"],\"from\":\"24:00\",\"to\":\"06:00\"}]", NULL), "",
           "24:00 to 06:00 (Tuesday 00:00-06:00) is valid");
    is_str(check("[{\"days\":[\"mon\",\"funday\"],\"from\":\"09:00\",\"to\":\"17:00\"}]", NULL),
           "schedule[0].days[1]", "unknown day names its index");
    is_str(check("[{\"from\":\"09:00\",\"to\":\"17:00\"}]", NULL), "schedule[0].days",
           "missing days");
    is_str(check("[{\"days\":[],\"from\":\"09:00\",\"to\":\"17:00\"}]", NULL), "schedule[0].days",
           "empty days");
    snprintf(buf, sizeof buf,
             "[%s,{\"days\":[\"mon\"],\"from\":\"09:00\",\"to\":\"17:00\","
             "\"devices\":[\"mobile\",\"fax\"]}]",
             w);
    is_str(check(buf, NULL), "schedule[1].devices[1]", "unknown device names its index");
    is_str(check("[{\"days\":[\"mon\"],\"from\":\"09:00\",\"to\":\"17:00\",\"devices\":[]}]", NULL),
           "schedule[0].devices", "empty devices");
    is_str(check("[{\"days\":[\"mon\"],\"from\":\"09:00\",\"to\":\"17:00\",\"color\":1}]", NULL),
           "schedule[0].color", "unknown field is named");
    is_str(check("[{\"days\":[\"mon\"],\"from\":\"09:00\",\"to\":\"17:00\"},3]", NULL),
           "schedule[1]", "window not an object");
    is_str(check("[]", "Mars/Olympus"), "timezone", "unknown zone names timezone");
    is_str(vmsg, "unknown time zone", "message for unknown zone");

    size_t n = 1;
    buf[0] = '[';
    for (int i = 0; i < 65; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? "," : "", w);
    snprintf(buf + n, sizeof buf - n, "]");
    is_str(check(buf, NULL), "schedule", "65 windows are too many");
    snprintf(buf + n - strlen(w) - 1, sizeof buf - n, "]");
    is_str(check(buf, NULL), "", "64 windows are fine");

    json_t *bad = json_loads("[{\"days\":[\"mon\"],\"from\":\"x\",\"to\":\"17:00\"}]", 0, NULL);
    char e[8], f[8];
    ok(sched_validate(bad, NULL, e, sizeof e, f, sizeof f) == -1 && strcmp(f, "schedul") == 0 &&
           strlen(e) == 7,
       "small buffers are truncated, NUL-terminated");
    ok(sched_validate(bad, NULL, NULL, 0, NULL, 0) == -1, "NULL buffers are allowed");
    json_decref(bad);
}

struct job {
    int id, bad;
};

static void *worker(void *arg)
{
    static const char *z[] = {"Europe/Berlin",    "America/New_York", "Asia/Kolkata",
                              "Europe/Paris",     "Asia/Tokyo",       "America/Chicago",
                              "Australia/Sydney", "Europe/London"};
    struct job *j = arg;
    for (int i = 0; i < 2000; i++) {
        int32_t o;
        j->bad += tz_offset(z[(i + j->id) % 8], utc(2026, 1 + i % 12, 1, 0, 0, 0), &o) != 0;
    }
    return NULL;
}

static void test_threads(void)
{
    pthread_t th[8];
    struct job jobs[8];
    int total = 0;
    for (int i = 0; i < 8; i++) {
        jobs[i] = (struct job){i, 0};
        pthread_create(&th[i], NULL, worker, &jobs[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        total += jobs[i].bad;
    }
    is_int(total, 0, "8 threads loading and reading zones concurrently");
}

/* The calendar both ways (os.time, os.date and the zones' rules use it)
** against glibc's gmtime over years -2000 to 5000. */
static void test_civil(void)
{
    int bad = 0;
    long n = 0;
    for (int64_t day = -1450000; day <= 1100000 && bad < 3; day += 13, n++) {
        time_t t = (time_t)(day * 86400);
        struct tm tm;
        gmtime_r(&t, &tm);
        int64_t y;
        int m, d;
        sched_civil_from_days(day, &y, &m, &d);
        if (y != (int64_t)tm.tm_year + 1900 || m != tm.tm_mon + 1 || d != tm.tm_mday ||
            sched_days_from_civil(y, m, d) != day) {
            diag("day %lld: %lld-%d-%d, glibc %d-%d-%d", (long long)day, (long long)y, m, d,
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
            bad++;
        }
    }
    ok(bad == 0, "%ld days from year -2000 to 5000: the calendar both ways as glibc has it", n);
}

int main(void)
{
    test_civil();
    test_devices();
    test_offsets();
    test_windows();
    test_fall_back();
    test_validate();
    test_threads();
    test_agent_get_now();
    test_engine_zone();
    test_engine_zone_retry();
    test_tzdir(); /* last: it fills the zone cache */
    return done_testing();
}
