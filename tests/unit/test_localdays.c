/*
** test_localdays.c — daily aggregates in an account's time zone
** ("timezone" in the account document): calls counted on the local day
** they were offered across both changes of offset of America/New_York and
** Australia/Sydney (23- and 25-hour days, the repeated hour of a fall-back
** day on that day), from_ms/to_ms picking whole local days, an account
** without a zone counting UTC days as before, a change of zone with rows
** already written (they stay where they are, new calls go to the new
** zone's days, each row saying its zone), settings stored before there were
** zones, zones refused, and a zone whose tzdata is gone (UTC days, a
** warning once a minute). The clock is injected and only moves forward.
*/
#include "engine.h" /* DB_PRIVACY, for settings stored as version 2 wrote them */
#include "switchboard.h"
#include "tap.h"
#define TESTKIT_LOG_KEEP
#include "testkit.h"
#include "reckit.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Unix ms of a UTC date and time. */
static int64_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm) * 1000;
}

/* An account of that zone (NULL: none given) with agents and queue support. */
static void account(const char *id, const char *tz)
{
    char json[256];
    if (tz)
        snprintf(json, sizeof json, "{\"id\":\"%s\",\"timezone\":\"%s\"}", id, tz);
    else
        snprintf(json, sizeof json, "{\"id\":\"%s\"}", id);
    ok(sb_account_put(eng, json, strlen(json), res) == 0, "account %s in %s (%s)", id,
       tz ? tz : "no zone", sb_result_message(res));
    ok(support_team(id, "longest-idle") == 0, "%s: agents and queue support", id);
}

/* A call offered at t (the clock moves there: tests go forward in time),
** abandoned a second later. */
static void call_at(const char *acct, const char *id, int64_t t)
{
    char json[256];
    ok(t >= now_ms, "the clock goes forward to %lld", (long long)t);
    now_ms = t;
    snprintf(json, sizeof json, "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"support\"}", id);
    ev(acct, json);
    now_ms += 1000;
    snprintf(json, sizeof json, "{\"type\":\"abandon\",\"call\":\"%s\"}", id);
    ev(acct, json);
}

/* The aggregates of [from, to) for the account's rows (queue NULL) or one
** queue's; NULL on an error (on the TAP stream). */
static json_t *aggr(const char *acct, const char *queue, int64_t from, int64_t to)
{
    return doc(sb_aggregates(eng, acct, queue, from, to, res));
}

/* "offered" of the row of day in zone tz (queue NULL: the account's row)
** in d; -1 when there is none. */
static long long offered(json_t *d, const char *queue, const char *day, const char *tz)
{
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(d, "days"), i, row)
    {
        json_t *q = json_object_get(row, "queue");
        if ((queue ? !json_is_string(q) || strcmp(json_string_value(q), queue) : !json_is_null(q)))
            continue;
        if (!strcmp(jstr(row, "day"), day) && !strcmp(jstr(row, "timezone"), tz))
            return jint(row, "offered");
    }
    return -1;
}

/* The account's rows (queue null) in d. */
static size_t account_rows(json_t *d)
{
    size_t i, n = 0;
    json_t *row;
    json_array_foreach(json_object_get(d, "days"), i, row) n +=
        json_is_null(json_object_get(row, "queue"));
    return n;
}

static void test_new_york_spring_forward(void)
{
    const char *ny = "America/New_York";
    account("ny", ny);
    json_t *a = doc(sb_account_get(eng, "ny", res));
    is_str(jstr(a, "timezone"), ny, "the account document shows its zone");
    json_decref(a);

    /* Spring forward, Sun 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC):
    ** a 23-hour day. */
    call_at("ny", "s1", utc(2026, 3, 8, 4, 30)); /* Sat 23:30 EST */
    call_at("ny", "s2", utc(2026, 3, 8, 6, 30)); /* Sun 01:30 EST */
    call_at("ny", "s3", utc(2026, 3, 8, 7, 30)); /* Sun 03:30 EDT */
    call_at("ny", "s4", utc(2026, 3, 9, 3, 30)); /* Sun 23:30 EDT */
    call_at("ny", "s5", utc(2026, 3, 9, 4, 30)); /* Mon 00:30 EDT */
    json_t *d = aggr("ny", NULL, 0, 0);
    is_str(jstr(d, "timezone"), ny, "the answer says the zone its days are in");
    is_int(offered(d, NULL, "2026-03-07", ny), 1, "23:30 on Saturday evening is Saturday's");
    is_int(offered(d, NULL, "2026-03-08", ny), 3,
           "the 23-hour Sunday: 01:30 EST, 03:30 EDT and 23:30 EDT");
    is_int(offered(d, NULL, "2026-03-09", ny), 1, "00:30 on Monday is Monday's");
    is_int(offered(d, "support", "2026-03-08", ny), 3, "the queue's rows count the same days");
    is_int(offered(d, NULL, "2026-03-08", "UTC"), -1, "no UTC row");
    json_decref(d);
    /* Whole local days: from local midnight to the next, 23 hours apart. */
    d = aggr("ny", NULL, utc(2026, 3, 8, 5, 0), utc(2026, 3, 9, 4, 0));
    ok(account_rows(d) == 1 && offered(d, NULL, "2026-03-08", ny) == 3,
       "[Sunday 00:00, Monday 00:00) local: Sunday alone");
    json_decref(d);
    d = aggr("ny", NULL, utc(2026, 3, 8, 12, 0), utc(2026, 3, 8, 12, 0) + 1);
    ok(account_rows(d) == 1 && offered(d, NULL, "2026-03-08", ny) == 3,
       "a range inside the day gives that whole day");
    json_decref(d);
    d = aggr("ny", NULL, utc(2026, 3, 9, 3, 59), utc(2026, 3, 9, 4, 1));
    ok(account_rows(d) == 2 && offered(d, NULL, "2026-03-08", ny) == 3 &&
           offered(d, NULL, "2026-03-09", ny) == 1,
       "a range across local midnight (04:00 UTC in summer) gives both days");
    json_decref(d);
}

static void test_new_york_fall_back(void)
{
    const char *ny = "America/New_York";
    /* Fall back, Sun 2026-11-01 02:00 EDT -> 01:00 EST (06:00 UTC): 01:30
    ** comes twice, both on Sunday, a 25-hour day. */
    call_at("ny", "f1", utc(2026, 11, 1, 3, 30)); /* Sat 23:30 EDT */
    call_at("ny", "f2", utc(2026, 11, 1, 5, 30)); /* Sun 01:30 EDT */
    call_at("ny", "f3", utc(2026, 11, 1, 6, 30)); /* Sun 01:30 EST */
    call_at("ny", "f4", utc(2026, 11, 2, 4, 30)); /* Sun 23:30 EST */
    call_at("ny", "f5", utc(2026, 11, 2, 5, 30)); /* Mon 00:30 EST */
    json_t *d = aggr("ny", NULL, utc(2026, 11, 1, 4, 0), utc(2026, 11, 2, 5, 0));
    ok(account_rows(d) == 1, "[Sunday 00:00, Monday 00:00) local, 25 hours: one day");
    is_int(offered(d, NULL, "2026-11-01", ny), 3, "both 01:30s and 23:30 are Sunday's");
    json_decref(d);
    d = aggr("ny", NULL, utc(2026, 10, 31, 12, 0), 0);
    is_int(offered(d, NULL, "2026-10-31", ny), 1, "Saturday 23:30 EDT is Saturday's");
    is_int(offered(d, NULL, "2026-11-02", ny), 1, "Monday 00:30 EST is Monday's");
    json_decref(d);
}

static void test_sydney_fall_back(void)
{
    const char *syd = "Australia/Sydney";
    account("syd", syd);
    /* Fall back, Sun 2026-04-05 03:00 AEDT -> 02:00 AEST (Sat 16:00 UTC):
    ** the morning is Sunday's, though UTC still says Saturday. */
    call_at("syd", "a1", utc(2026, 4, 4, 12, 30)); /* Sat 23:30 AEDT */
    call_at("syd", "a2", utc(2026, 4, 4, 13, 30)); /* Sun 00:30 AEDT */
    call_at("syd", "a3", utc(2026, 4, 4, 15, 30)); /* Sun 02:30 AEDT */
    call_at("syd", "a4", utc(2026, 4, 4, 16, 30)); /* Sun 02:30 AEST */
    call_at("syd", "a5", utc(2026, 4, 4, 23, 0));  /* Sun 09:00 AEST */
    call_at("syd", "a6", utc(2026, 4, 5, 13, 30)); /* Sun 23:30 AEST */
    call_at("syd", "a7", utc(2026, 4, 5, 14, 30)); /* Mon 00:30 AEST */
    json_t *d = aggr("syd", NULL, 0, 0);
    is_str(jstr(d, "timezone"), syd, "the answer's zone");
    is_int(offered(d, NULL, "2026-04-04", syd), 1, "Saturday 23:30 is Saturday's");
    is_int(offered(d, NULL, "2026-04-05", syd), 5,
           "the 25-hour Sunday: both 02:30s, the morning and 23:30");
    is_int(offered(d, NULL, "2026-04-06", syd), 1, "Monday 00:30 is Monday's");
    json_decref(d);
    d = aggr("syd", "support", utc(2026, 4, 4, 13, 0), utc(2026, 4, 5, 14, 0));
    ok(json_array_size(json_object_get(d, "days")) == 1 &&
           offered(d, "support", "2026-04-05", syd) == 5,
       "[Sunday 00:00 AEDT, Monday 00:00 AEST): that day's row of the queue alone");
    json_decref(d);
}

static void test_sydney_spring_forward(void)
{
    const char *syd = "Australia/Sydney";
    /* Spring forward, Sun 2026-10-04 02:00 AEST -> 03:00 AEDT (Sat 16:00
    ** UTC): a 23-hour day. */
    call_at("syd", "o1", utc(2026, 10, 3, 13, 30)); /* Sat 23:30 AEST */
    call_at("syd", "o2", utc(2026, 10, 3, 15, 30)); /* Sun 01:30 AEST */
    call_at("syd", "o3", utc(2026, 10, 3, 16, 30)); /* Sun 03:30 AEDT */
    call_at("syd", "o4", utc(2026, 10, 4, 12, 30)); /* Sun 23:30 AEDT */
    call_at("syd", "o5", utc(2026, 10, 4, 13, 30)); /* Mon 00:30 AEDT */
    json_t *d = aggr("syd", NULL, utc(2026, 10, 3, 14, 0), utc(2026, 10, 4, 13, 0));
    ok(account_rows(d) == 1 && offered(d, NULL, "2026-10-04", syd) == 3,
       "[Sunday 00:00 AEST, Monday 00:00 AEDT), 23 hours: Sunday's three calls");
    json_decref(d);
    d = aggr("syd", NULL, 0, INT64_MAX - 1);
    is_int(account_rows(d), 6, "to_ms near INT64_MAX, east of UTC: every day");
    json_decref(d);
    d = aggr("syd", NULL, utc(2026, 10, 3, 0, 0), 0);
    ok(offered(d, NULL, "2026-10-03", syd) == 1 && offered(d, NULL, "2026-10-05", syd) == 1,
       "and Saturday's and Monday's their own");
    json_decref(d);
}

/* An account without a zone: UTC days, as before accounts had zones. */
static void test_no_zone(void)
{
    account("plain", NULL);
    json_t *a = doc(sb_account_get(eng, "plain", res));
    ok(a && json_is_null(json_object_get(a, "timezone")), "no zone: \"timezone\" null");
    json_decref(a);
    call_at("plain", "p1", utc(2026, 11, 3, 23, 30));
    call_at("plain", "p2", utc(2026, 11, 4, 0, 30));
    json_t *d = aggr("plain", NULL, utc(2026, 11, 3, 0, 0), utc(2026, 11, 4, 0, 0));
    is_str(jstr(d, "timezone"), "UTC", "its days are UTC");
    ok(account_rows(d) == 1 && offered(d, NULL, "2026-11-03", "UTC") == 1,
       "to_ms at UTC midnight stops before the day it starts");
    json_decref(d);
}

/* Rows written stay on their days; calls after a change count on the new
** zone's days; a day counted in both has a row in each. */
static void test_zone_change(void)
{
    const char *ny = "America/New_York";
    account("moving", NULL);
    call_at("moving", "m1", utc(2026, 11, 10, 2, 0));  /* UTC Tue; Mon 21:00 in New York */
    call_at("moving", "m2", utc(2026, 11, 10, 20, 0)); /* Tue in both */
    now_ms = utc(2026, 11, 10, 21, 0);
    const char *put = "{\"id\":\"moving\",\"timezone\":\"America/New_York\"}";
    ok(sb_account_put(eng, put, strlen(put), res) == 0, "the account moves to New York");
    call_at("moving", "m3", utc(2026, 11, 10, 23, 0)); /* Tue 18:00 EST */
    call_at("moving", "m4", utc(2026, 11, 11, 3, 0));  /* Tue 22:00 EST */
    call_at("moving", "m5", utc(2026, 11, 11, 12, 0)); /* Wed 07:00 EST */
    json_t *d = aggr("moving", NULL, 0, 0);
    is_str(jstr(d, "timezone"), ny, "the answer is in the new zone");
    is_int(offered(d, NULL, "2026-11-10", "UTC"), 2, "the calls before stay on their UTC day");
    is_int(offered(d, NULL, "2026-11-10", ny), 2,
           "the calls after count on New York's Tuesday, in a row of their own");
    is_int(offered(d, NULL, "2026-11-11", ny), 1, "and Wednesday's");
    is_int(account_rows(d), 3, "three rows, none mixing two zones");
    json_decref(d);
    /* A range picks each row's days in the row's own zone. */
    d = aggr("moving", NULL, utc(2026, 11, 10, 5, 0), utc(2026, 11, 11, 5, 0));
    ok(account_rows(d) == 2 && offered(d, NULL, "2026-11-10", "UTC") == 2 &&
           offered(d, NULL, "2026-11-10", ny) == 2,
       "Tuesday in New York: its New York row, and the UTC Tuesday the range touches");
    json_decref(d);

    /* Back to no zone: new calls on UTC days, the New York rows kept. */
    now_ms = utc(2026, 11, 11, 13, 0);
    put = "{\"id\":\"moving\",\"timezone\":null}";
    ok(sb_account_put(eng, put, strlen(put), res) == 0, "the zone taken away (null)");
    call_at("moving", "m6", utc(2026, 11, 11, 14, 0));
    d = aggr("moving", NULL, 0, 0);
    is_str(jstr(d, "timezone"), "UTC", "the answer is in UTC again");
    ok(offered(d, NULL, "2026-11-11", "UTC") == 1 && offered(d, NULL, "2026-11-11", ny) == 1 &&
           offered(d, NULL, "2026-11-10", ny) == 2,
       "the new call on its UTC day, the New York rows as they were");
    json_decref(d);
    /* "UTC" given by name counts in the same rows as no zone. */
    put = "{\"id\":\"moving\",\"timezone\":\"Etc/UTC\"}";
    ok(sb_account_put(eng, put, strlen(put), res) == 0, "the zone Etc/UTC");
    call_at("moving", "m7", utc(2026, 11, 11, 15, 0));
    d = aggr("moving", NULL, utc(2026, 11, 11, 0, 0), utc(2026, 11, 12, 0, 0));
    ok(offered(d, NULL, "2026-11-11", "UTC") == 2 && !strcmp(jstr(d, "timezone"), "UTC"),
       "Etc/UTC's calls in the UTC rows");
    json_decref(d);
}

/* Bad zones are refused and change nothing. */
static void test_refused(void)
{
    static const char *const bad[] = {
        "{\"id\":\"ny\",\"timezone\":\"Mars/Olympus_Mons\"}",
        "{\"id\":\"ny\",\"timezone\":\"localtime\"}",
        "{\"id\":\"ny\",\"timezone\":\"../../etc/passwd\"}",
        "{\"id\":\"ny\",\"timezone\":\"\"}",
        "{\"id\":\"ny\",\"timezone\":-5}",
        "{\"id\":\"ny\",\"timezone\":\"EST5EDT,M3.2.0,M11.1.0 is not a name at all, far too "
        "long\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = sb_account_put(eng, bad[i], strlen(bad[i]), res);
        ok(rc == SB_EINVAL && !strcmp(sb_result_field(res), "timezone") &&
               strstr(sb_result_message(res), "IANA"),
           "refused, naming timezone: %s (%s)", bad[i], sb_result_message(res));
    }
    json_t *a = doc(sb_account_get(eng, "ny", res));
    is_str(jstr(a, "timezone"), "America/New_York", "the account kept its zone");
    json_decref(a);
}

/* Settings stored before accounts had zones (version 2): no zone, UTC. */
static int put_v2_settings(wtx *t, void *arg)
{
    acct_rec a;
    int rc = eng_account(t->txn, t->e, arg, &a, t->res);
    wbuf w = {0};
    wb_u8(&w, 2);
    wb_str(&w, "");
    wb_u32(&w, 0);
    wb_u32(&w, 30);
    wb_u8(&w, 0);
    wb_u32(&w, 400);
    uint8_t k[4];
    if (!rc)
        rc = w.err ? SB_ENOMEM
                   : st_put(t->txn, t->e, DB_PRIVACY, k, key_acct(k, a.num), w.b.p, w.b.len);
    buf_free(&w.b);
    return rc;
}

static void test_before_zones(void)
{
    account("old", "Australia/Sydney");
    ok(eng_write(eng, put_v2_settings, "old", res) == 0, "settings as version 2 stored them");
    json_t *a = doc(sb_account_get(eng, "old", res));
    ok(a && json_is_null(json_object_get(a, "timezone")) && jint(a, "audit_days") == 400 &&
           jint(a, "service_level_seconds") == 30,
       "read with timezone null, the rest as they were");
    json_decref(a);
    call_at("old", "v1", utc(2026, 11, 12, 23, 30));
    json_t *d = aggr("old", NULL, 0, 0);
    ok(offered(d, NULL, "2026-11-12", "UTC") == 1 && !strcmp(jstr(d, "timezone"), "UTC"),
       "its calls count on UTC days");
    json_decref(d);
}

/* A zone whose tzdata is gone since it was set (TZDIR now elsewhere):
** calls count on their UTC days, in UTC rows, and the log says so once a
** minute; back, the zone's days again. */
static void test_zone_gone(void)
{
    const char *syd = "Australia/Sydney";
    account("gone", syd);
    setenv("TZDIR", "/nonexistent-tzdir", 1);
    log_clear();
    call_at("gone", "g1", utc(2026, 11, 13, 20, 0));         /* Sat 07:00 AEDT */
    call_at("gone", "g2", utc(2026, 11, 13, 20, 0) + 30000); /* 30 s on */
    ok(strstr(logbuf, "time zone 'Australia/Sydney' of account 'gone' cannot be loaded") &&
           strstr(logbuf, "UTC days"),
       "the log says the zone cannot be loaded and what is done");
    const char *first = strstr(logbuf, "cannot be loaded");
    ok(first && !strstr(first + 1, "cannot be loaded"), "once in a minute of calls");
    unsetenv("TZDIR");
    call_at("gone", "g3", utc(2026, 11, 13, 21, 0)); /* Sat 08:00 AEDT */
    json_t *d = aggr("gone", NULL, 0, 0);
    ok(offered(d, NULL, "2026-11-13", "UTC") == 2 && offered(d, NULL, "2026-11-14", syd) == 1,
       "the two calls without tzdata on their UTC day, in a UTC row; the one after on Sydney's");
    is_str(jstr(d, "timezone"), syd, "the answer is still in the account's zone");
    json_decref(d);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sb-test-localdays-%d", (int)getpid());
    res = sb_result_new();
    sb_config cfg;
    test_engine_config(&cfg, dir, "policies", RECKIT_MAP_SIZE);
    cfg.log = log_keep; /* for the lines of a zone that cannot be loaded */
    eng = test_open(&cfg, res);
    if (!ok(eng != NULL, "engine opened on %s", dir)) return done_testing();
    now_ms = utc(2026, 3, 1, 0, 0);
    /* In the order of their dates: the clock goes forward. */
    test_new_york_spring_forward();
    test_sydney_fall_back();
    test_sydney_spring_forward();
    test_new_york_fall_back();
    test_no_zone();
    test_zone_change();
    test_refused();
    test_before_zones();
    test_zone_gone();
    return end_engine();
}
