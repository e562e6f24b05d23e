/*
** test_retention.c — retention decided by Lua, through the public API: the
** stock policies deciding when records are written and at their review
** dates (an injected clock walks through the days), anonymization and what
** it leaves, legal holds overriding decisions (and the policy seeing them),
** erasure through a policy's erase hook, failures, a retention policy
** changing, and a sweep killed half way that the next one finishes without
** redoing or skipping a record; erasures retried after a full map, calls
** from a number to itself, and time-range holds over calls in progress.
*/
#include "engine.h"  /* DB_AUDIT, for the injected failure below */
#include "records.h" /* an account's settings, as sb_account_put does not set audit_days yet */
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"
#include "reckit.h"

#include <dlfcn.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define DAY 86400000LL

/* LMDB's mdb_put, but when armed the next audit-log write fails the way a
** full map makes it fail there: the engine grows the map and runs the
** transaction again from the start. */
static int fail_audit_put;
int mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data, unsigned int flags)
{
    static int (*real)(MDB_txn *, MDB_dbi, MDB_val *, MDB_val *, unsigned int);
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "mdb_put");
    if (fail_audit_put && key->mv_size && ((unsigned char *)key->mv_data)[0] == DB_AUDIT + 1) {
        fail_audit_put = 0;
        return MDB_MAP_FULL;
    }
    return real(txn, dbi, key, data, flags);
}

/* A sweep's round applies its deferred index deletes after its last record,
** in key order, each found by mdb_cursor_get(MDB_SET) without a value (no
** other lookup of the engine reads none): when counting, the most applied
** in one run of them and in all; when armed, the first makes an event of
** the engine wait for the write lock, as one arriving then would. */
static int raise_at_dels, count_dels;
static size_t dels_max, dels_all, dels_run;

/* LMDB's mdb_cursor_get, counting when asked the audit log's values it
** reads (their keys start with its table byte), and a round's deletes
** (above). */
static int count_audit_reads;
static long audit_reads;
int mdb_cursor_get(MDB_cursor *c, MDB_val *key, MDB_val *data, MDB_cursor_op op)
{
    static int (*real)(MDB_cursor *, MDB_val *, MDB_val *, MDB_cursor_op);
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "mdb_cursor_get");
    if (op == MDB_SET && !data) {
        if (count_dels) {
            dels_all++;
            if (++dels_run > dels_max) dels_max = dels_run;
        }
        if (raise_at_dels && eng) {
            raise_at_dels = 0;
            __atomic_add_fetch(&eng->live_events, 1, __ATOMIC_RELAXED);
        }
    } else {
        dels_run = 0;
    }
    int rc = real(c, key, data, op);
    if (count_audit_reads && rc == 0 && key && key->mv_size &&
        ((unsigned char *)key->mv_data)[0] == DB_AUDIT + 1)
        audit_reads++;
    return rc;
}

static void account(const char *id, const char *retention)
{
    char json[512];
    snprintf(json, sizeof json, "{\"id\":\"%s\",\"personal_attrs\":[\"name\"]%s%s%s}", id,
             retention ? ",\"retention\":\"" : "", retention ? retention : "",
             retention ? "\"" : "");
    if (sb_account_put(eng, json, strlen(json), res)) diag("account: %s", sb_result_message(res));
    snprintf(json, sizeof json,
             "{\"id\":\"a1\",\"devices\":{\"softphone\":\"sip:a1@pbx.example\"},"
             "\"status\":\"available\"}");
    sb_agent_put(eng, id, json, strlen(json), res);
    const char *q =
        "{\"id\":\"support\",\"policy\":\"longest-idle\",\"members\":[{\"agent\":\"a1\"}]}";
    if (sb_queue_put(eng, id, q, strlen(q), res)) diag("queue: %s", sb_result_message(res));
}

/* An account whose retention policy is `name` (source src): the account,
** the policy put (its result returned), then the account naming it. */
static int with_policy(const char *id, const char *name, const char *src)
{
    account(id, NULL);
    int rc = sb_policy_put(eng, id, name, src, strlen(src), NULL, res);
    char json[256];
    snprintf(json, sizeof json, "{\"id\":\"%s\",\"retention\":\"%s\"}", id, name);
    sb_account_put(eng, json, strlen(json), res);
    return rc;
}

/* A call from caller: answered (talk 60 s) or abandoned while waiting. */
static int call(const char *acct, const char *id, const char *caller, int answer, const char *attrs)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"support\",\"caller\":\"%s\"%s%s}", id,
             caller, attrs ? ",\"attrs\":" : "", attrs ? attrs : "");
    if (ev(acct, json)) return -1;
    now_ms += 3000;
    return finish(acct, id, answer ? "a1" : NULL);
}

/* An erasure request for number: the count under key in its report. */
static long long erased(const char *acct, const char *number, const char *key)
{
    json_t *d = doc(sb_erase(eng, acct, number, res));
    long long n = d ? jint(d, key) : -1;
    json_decref(d);
    return n;
}

/* n abandoned calls from number, ids prefix0, prefix1...: the failures. */
static int calls_from(const char *acct, const char *prefix, const char *number, int n)
{
    int errors = 0;
    for (int i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "%s%d", prefix, i);
        errors += call(acct, id, number, 0, NULL) != 0;
    }
    return errors;
}

static void test_keep_90_days(void)
{
    account("k90", "retention/keep-90-days-then-delete");
    int errors = 0;
    for (int i = 0; i < 20; i++) {
        char id[16], caller[32];
        snprintf(id, sizeof id, "k%d", i);
        snprintf(caller, sizeof caller, "+44207946%04d", i);
        errors += call("k90", id, caller, i % 4 != 3, NULL) != 0;
    }
    is_int(errors, 0, "keep-90: 20 calls");
    json_t *s = sweep();
    is_int(jint(s, "reviewed"), 0, "nothing is due right after the calls (retain at write: keep)");
    json_decref(s);
    is_int(audit_matching("k90", "delete", NULL, NULL, 0) +
               audit_matching("k90", "keep", NULL, NULL, 0),
           0, "routine keeps are not audited");
    now_ms += 89 * DAY;
    s = sweep();
    is_int(jint(s, "reviewed"), 0, "after 89 days still nothing is due");
    json_decref(s);
    ok(exists("k90", "k0"), "k0 is still there");
    now_ms += 2 * DAY;
    s = sweep();
    is_int(jint(s, "reviewed"), 20, "after 91 days the 20 records are reviewed");
    is_int(jint(s, "deleted"), 20, "and deleted");
    ok(json_is_true(json_object_get(s, "done")), "the sweep is done");
    json_decref(s);
    ok(!exists("k90", "k0") && !exists("k90", "k19"), "the records are gone");
    is_int(audit_matching("k90", "delete", "older than 90 days", NULL, 0), 20,
           "the audit log has 20 deletions with the policy's reason");
    json_t *a = doc(sb_audit_list(eng, "k90", 0, 1, res));
    json_t *e0 = json_array_get(json_object_get(a, "entries"), 0);
    is_str(jstr(e0, "policy"), "retention/keep-90-days-then-delete", "audit names the policy");
    is_int(strlen(jstr(e0, "version")), 16, "and its version");
    is_str(jstr(e0, "source"), "review", "and the source: a review");
    ok(!strstr(sb_result_json(res, NULL), "+44"), "no number in the audit log");
    json_decref(a);
    json_t *d = doc(sb_aggregates(eng, "k90", NULL, 0, 0, res));
    json_t *row = json_array_get(json_object_get(d, "days"), 0);
    is_int(jint(row, "offered"), 20, "aggregates still count 20 calls offered");
    is_int(jint(row, "answered"), 15, "15 answered");
    is_int(jint(row, "abandoned"), 5, "5 abandoned");
    json_decref(d);
    s = sweep();
    is_int(jint(s, "reviewed"), 0, "a second sweep finds nothing due");
    json_decref(s);
}

static void test_anonymize(void)
{
    account("anon", "retention/anonymize-30-days-delete-2-years");
    call("anon", "n1", "+442079461111", 1, "{\"name\":\"Jane\",\"lang\":\"en\"}");
    call("anon", "n2", "+442079461111", 0, NULL);
    call("anon", "n3", "+442079462222", 1, NULL);
    json_t *d = doc(sb_records_export(eng, "anon", "+442079461111", SB_EXPORT_JSON, res));
    is_int(json_array_size(json_object_get(d, "records")), 2, "before: 2 records of the caller");
    json_decref(d);
    now_ms += 31 * DAY;
    json_t *s = sweep();
    is_int(jint(s, "anonymized"), 3, "day 31: all 3 anonymized");
    json_decref(s);
    json_t *c = doc(sb_call_get(eng, "anon", "n1", res));
    ok(json_is_true(json_object_get(c, "anonymized")), "n1 is anonymized");
    is_str(jstr(json_object_get(c, "attrs"), "lang"), "en", "its other attributes stay");
    is_str(jstr(c, "agent"), "a1", "so do agent, times, outcome");
    ok(json_real_value(json_object_get(c, "talk")) == 60.0, "and talk time");
    json_decref(c);
    d = doc(sb_records_export(eng, "anon", "+442079461111", SB_EXPORT_JSON, res));
    is_int(json_array_size(json_object_get(d, "records")), 0,
           "after: the number finds nothing (pseudonyms gone)");
    json_decref(d);
    /* Caller history forgets anonymized calls: a new call has no previous agent. */
    is_int(audit_matching("anon", "anonymize", "older than 30 days", NULL, 0), 3,
           "3 anonymizations audited");
    now_ms += 700 * DAY;
    s = sweep();
    is_int(jint(s, "deleted"), 3, "at two years they are deleted");
    json_decref(s);
}

/* A policy that anonymizes at every review: the second time, the record is
** anonymous already and nothing changes, so nothing is counted or audited as
** an anonymization (it was, at every review, an audit entry a review without
** end) nor as a hold's override. */
static void test_anonymize_again(void)
{
    with_policy("again", "again",
                "local P = {}\n"
                "function P.retain(record, ctx)\n"
                "  return { anonymize = true, review_in_days = 1, reason = 'again' }\n"
                "end\nreturn P\n");
    call("again", "g1", "+442079463333", 1, NULL);
    call("again", "g2", "+442079464444", 1, NULL);
    is_int(audit_matching("again", "anonymize", "again", NULL, 0), 2,
           "anonymized as written, audited");
    ok(hold("again", "{\"id\":\"hg\",\"call\":\"g2\",\"reason\":\"kept\"}") == 0, "a hold on g2");
    for (int i = 0; i < 3; i++) {
        now_ms += DAY + 1000;
        json_t *s = sweep();
        ok(jint(s, "reviewed") == 2 && jint(s, "kept") == 2 && jint(s, "anonymized") == 0 &&
               jint(s, "overridden") == 0,
           "review %d: both anonymous already: kept, not anonymized again nor overridden (%lld "
           "reviewed, %lld anonymized, %lld overridden)",
           i + 1, jint(s, "reviewed"), jint(s, "anonymized"), jint(s, "overridden"));
        json_decref(s);
    }
    is_int(audit_matching("again", "anonymize", NULL, NULL, 0), 2,
           "the audit holds the two anonymizations, no more");
    is_int(audit_matching("again", "keep", NULL, NULL, 0), 0, "and no override of the hold");
    /* A reason shown in lists: a right-to-left override would show
    ** "\u202egnp.exe" as "exe.png"; numbers with their digits spaced out are
    ** numbers. */
    const char *bidi = "{\"id\":\"hb\",\"call\":\"g1\",\"reason\":\"\xe2\x80\xaegnp.exe\"}";
    ok(hold("again", bidi) == 0, "a hold whose reason has a right-to-left override");
    json_t *h = doc(sb_hold_get(eng, "again", "hb", res));
    is_str(jstr(h, "reason"), "   gnp.exe", "... kept as a space");
    json_decref(h);
    const char *spaced = "{\"id\":\"hs\",\"call\":\"g1\",\"reason\":\"4 9 3 0 1 2 3 4 5 6 7\"}";
    ok(sb_hold_place(eng, "again", spaced, strlen(spaced), res) == SB_EINVAL &&
           strstr(sb_result_message(res), "number"),
       "a hold reason of a number's digits spaced out is refused: %s", sb_result_message(res));
}

/* A hold by call id holds the calls of that id offered by the time it was
** placed: a later call reusing the id (another caller, another person) is
** not kept from its policy by it. */
static void test_call_hold_reuse(void)
{
    account("reuse", "retention/keep-90-days-then-delete");
    call("reuse", "r1", "+442079467777", 1, NULL);
    ok(hold("reuse", "{\"id\":\"hr\",\"call\":\"r1\",\"reason\":\"case 9\"}") == 0,
       "a hold on call r1");
    now_ms += 1000;
    call("reuse", "r1", "+442079468888", 1, NULL);
    json_t *d = doc(sb_records_list(eng, "reuse", "", 0, res));
    json_t *recs = json_object_get(d, "records");
    int held = 0, free_ = 0;
    size_t nrec = json_array_size(recs);
    for (size_t i = 0; i < nrec; i++) {
        size_t n = json_array_size(json_object_get(json_array_get(recs, i), "held_by"));
        held += n == 1, free_ += n == 0;
    }
    json_decref(d);
    ok(nrec == 2 && held == 1 && free_ == 1,
       "two records of r1: the first held by hr, the later one not (%d held, %d not)", held, free_);
    now_ms += 91 * DAY;
    json_t *s = sweep();
    ok(jint(s, "deleted") == 1 && jint(s, "overridden") == 1,
       "at 90 days the later call is deleted, the held one kept (%lld deleted, %lld overridden)",
       jint(s, "deleted"), jint(s, "overridden"));
    json_decref(s);
}

static const char *held_policy =
    "local P = {}\n"
    "function P.retain(record, ctx)\n"
    "  if record.age_days < 10 then return { review_in_days = 10 - record.age_days } end\n"
    "  if record.overridden then\n"
    "    return { delete = true, reason = 'again, held ' .. tostring(record.legal_hold) }\n"
    "  end\n"
    "  return { delete = true, reason = record.legal_hold and 'held' or 'free' }\n"
    "end\n"
    "function P.erase(record, request, ctx) return { delete = true } end\n"
    "return P\n";

/* The "held_by" of call id's record: in its document, in the account's
** list, and (number given) in an access request's export, joined with
** ","; "(differ)" when they do not agree. */
static void held_ids(const char *acct, const char *id, const char *number, char *out, size_t n)
{
    char where[3][128] = {"(none)", "(none)", "(none)"};
    json_t *docs[3] = {
        doc(sb_call_get(eng, acct, id, res)), doc(sb_records_list(eng, acct, NULL, 0, res)),
        number ? doc(sb_records_export(eng, acct, number, SB_EXPORT_JSON, res)) : NULL};
    for (int d = 0; d < 3; d++) {
        json_t *r = d == 0 ? docs[0] : NULL, *x;
        size_t i;
        json_array_foreach(json_object_get(docs[d], "records"), i,
                           x) if (!strcmp(jstr(x, "id"), id)) r = x;
        json_t *ids = json_object_get(r, "held_by");
        if (!json_is_array(ids)) continue;
        where[d][0] = 0;
        json_array_foreach(ids, i, x)
        {
            size_t l = strlen(where[d]);
            snprintf(where[d] + l, sizeof where[d] - l, "%s%s", i ? "," : "", json_string_value(x));
        }
    }
    int same = !strcmp(where[0], where[1]) && (!number || !strcmp(where[0], where[2]));
    snprintf(out, n, "%s", same ? where[0] : "(differ)");
    if (!same) diag("%s: get %s, list %s, export %s", id, where[0], where[1], where[2]);
    for (int d = 0; d < 3; d++)
        json_decref(docs[d]);
}

static void test_holds(void)
{
    ok(with_policy("held", "ret-held", held_policy) == 0,
       "a retention policy that tells whether it sees a hold");
    call("held", "h1", "+442079463333", 1, NULL);
    call("held", "h2", "+442079463333", 1, NULL);
    call("held", "h3", "+442079464444", 1, NULL);
    int64_t t0 = now_ms;
    call("held", "h4", "+442079465555", 1, NULL);
    int64_t t1 = now_ms;
    const char *h = "{\"id\":\"lit\",\"number\":\"+442079463333\",\"reason\":\"case 7\"}";
    ok(sb_hold_place(eng, "held", h, strlen(h), res) == 0, "hold on +442079463333");
    char range[128];
    snprintf(range, sizeof range,
             "{\"id\":\"audit-q1\",\"from_ms\":%lld,\"to_ms\":%lld,\"reason\":\"auditors\"}",
             (long long)t0, (long long)t1);
    ok(sb_hold_place(eng, "held", range, strlen(range), res) == 0, "hold on a time range (h4)");
    const char *one = "{\"id\":\"one\",\"call\":\"h1\",\"reason\":\"case 8\"}";
    ok(sb_hold_place(eng, "held", one, strlen(one), res) == 0, "a second hold on h1 alone");
    char ids[128];
    held_ids("held", "h1", "+442079463333", ids, sizeof ids);
    is_str(ids, "lit,one", "h1's record is held by lit and one (get, list, export)");
    held_ids("held", "h2", "+442079463333", ids, sizeof ids);
    is_str(ids, "lit", "h2's by lit");
    held_ids("held", "h3", "+442079464444", ids, sizeof ids);
    is_str(ids, "", "h3's by none");
    held_ids("held", "h4", NULL, ids, sizeof ids);
    is_str(ids, "audit-q1", "h4's by audit-q1");
    ok(sb_hold_release(eng, "held", "one", res) == 0, "release one");
    held_ids("held", "h1", "+442079463333", ids, sizeof ids);
    is_str(ids, "lit", "h1's record then by lit alone");
    now_ms += 11 * DAY;
    json_t *s = sweep();
    is_int(jint(s, "reviewed"), 4, "day 11: 4 reviewed");
    is_int(jint(s, "deleted"), 1, "only h3 deleted");
    is_int(jint(s, "overridden"), 3, "3 decisions overridden by holds");
    json_decref(s);
    ok(exists("held", "h1") && exists("held", "h2") && exists("held", "h4") &&
           !exists("held", "h3"),
       "h1, h2 (number hold) and h4 (range hold) kept, h3 deleted");
    is_int(audit_matching("held", "keep", "legal hold lit: case 7", NULL, 0), 2,
           "audit: 2 kept by hold lit");
    is_int(audit_matching("held", "keep", "(policy: delete: held)", NULL, 0), 3,
           "the policy saw legal_hold = true and the audit keeps what it said");
    is_int(audit_matching("held", "delete", "free", NULL, 0), 1,
           "h3's deletion: the policy saw no hold");
    json_t *a = doc(sb_audit_list(eng, "held", 0, 0, res));
    int ovr = 0;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(a, "entries"), i,
                       e) if (json_is_true(json_object_get(e, "overridden")) &&
                              !strcmp(jstr(e, "decision"), "delete")) ovr++;
    is_int(ovr, 3, "audit: overridden = true, decision delete");
    json_decref(a);
    /* Held records come up again daily; the policy is told its last decision was overridden. */
    now_ms += DAY + 1000;
    s = sweep();
    is_int(jint(s, "reviewed"), 3, "a day later the 3 held records are reviewed again");
    json_decref(s);
    is_int(audit_matching("held", "keep", "again, held true", NULL, 0), 3,
           "the policy sees record.overridden (its last decision was overridden)");
    ok(sb_hold_release(eng, "held", "lit", res) == 0, "release hold lit");
    now_ms += DAY + 1000;
    s = sweep();
    is_int(jint(s, "deleted"), 2, "the next day h1 and h2 are deleted");
    json_decref(s);
    ok(exists("held", "h4"), "h4 still under the range hold");
    int del = sb_account_delete(eng, "held", res);
    ok(del == SB_EHOLD && strstr(sb_result_message(res), "has 1 legal hold (audit-q1);"),
       "the account cannot go while a hold stands, which the refusal names: %s",
       sb_result_message(res));
    ok(sb_hold_release(eng, "held", "audit-q1", res) == 0, "release the range hold");
    /* Sweeps cover every account: leave none behind for the tests below. */
    ok(sb_account_delete(eng, "held", res) == 0, "then it can");
}

static void test_erase_with_policy(void)
{
    account("tax", "retention/tax-7-years");
    call("tax", "t1", "+442079467777", 1, NULL);
    call("tax", "t2", "+442079467777", 0, NULL);
    call("tax", "t3", "+442079467777", 0, "{\"invoice\":\"INV-1\"}");
    json_t *d = doc(sb_erase(eng, "tax", "+44 20 7946 7777", res));
    is_int(jint(d, "anonymized"), 2, "tax: the answered call and the invoiced one are anonymized");
    is_int(jint(d, "deleted"), 1, "the abandoned call is deleted");
    json_t *r = json_object_get(d, "reasons");
    is_int(json_integer_value(
               json_object_get(r, "anonymize: tax: billing record kept 7 years, numbers removed")),
           2, "with the policy's reasons");
    json_decref(d);
    ok(exists("tax", "t1") && !exists("tax", "t2") && exists("tax", "t3"),
       "t1 and t3 remain (anonymized), t2 is gone");
    is_int(audit_matching("tax", "anonymize", NULL, NULL, 0), 2,
           "audit: 2 anonymized by the erasure");
    d = doc(sb_erase(eng, "tax", "+442079467777", res));
    is_int(jint(d, "deleted") + jint(d, "anonymized") + jint(d, "kept"), 0,
           "a second request finds nothing left under that number");
    json_decref(d);
    /* Their schedule stands: at 7 years and 2 days they are deleted. */
    now_ms += 31 * DAY;
    json_decref(sweep());
    ok(exists("tax", "t1"), "t1 still there after 31 days (billing record)");
    now_ms += 2557 * DAY;
    json_decref(sweep());
    ok(!exists("tax", "t1") && !exists("tax", "t3"), "deleted after 7 years");
}

/* An erasure whose transaction runs again (a full map at its audit write)
** does every record once: none skipped, none done twice. */
static void test_erase_retried(void)
{
    account("full", "retention/keep-90-days-then-delete");
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "f%d", i);
        call("full", id, "+442079468888", 1, NULL);
    }
    fail_audit_put = 1;
    json_t *d = doc(sb_erase(eng, "full", "+442079468888", res));
    is_int(fail_audit_put, 0, "the erasure's audit write failed once (a full map), and ran again");
    is_int(jint(d, "deleted"), 5, "all 5 records deleted all the same");
    json_decref(d);
    ok(!exists("full", "f0") && !exists("full", "f4"), "none of them is left");
    is_int(audit_matching("full", "delete", NULL, NULL, 0), 5,
           "5 deletions in the audit log, once each");
    ok(sb_account_delete(eng, "full", res) == 0, "account removed");
}

/* A call from a number to itself: one record, two index entries under one
** pseudonym; an erasure decides it once, an access request lists it once. */
static void test_erase_self_call(void)
{
    account("self", "retention/anonymize-30-days-delete-2-years");
    const char *o = "{\"type\":\"offer\",\"call\":\"s1\",\"queue\":\"support\","
                    "\"caller\":\"+442079461111\",\"called\":\"+442079461111\"}";
    ok(ev("self", o) == 0 && ev("self", "{\"type\":\"abandon\",\"call\":\"s1\"}") == 0,
       "a call from +442079461111 to itself");
    json_t *x = doc(sb_records_export(eng, "self", "+442079461111", SB_EXPORT_JSON, res));
    is_int((int)json_array_size(json_object_get(x, "records")), 1,
           "an access request lists it once");
    json_decref(x);
    const char *h = "{\"id\":\"hs\",\"call\":\"s1\",\"reason\":\"dispute\"}";
    ok(sb_hold_place(eng, "self", h, strlen(h), res) == 0, "a hold on the call");
    json_t *d = doc(sb_erase(eng, "self", "+442079461111", res));
    is_int(jint(d, "kept"), 1, "held, the erasure keeps it, counted once");
    json_decref(d);
    ok(sb_hold_release(eng, "self", "hs", res) == 0, "the hold released");
    d = doc(sb_erase(eng, "self", "+442079461111", res));
    is_int(jint(d, "anonymized"), 1, "the request run again anonymizes it, counted once");
    is_int(jint(d, "kept") + jint(d, "deleted"), 0, "and nothing else");
    json_decref(d);
    is_int(audit_matching("self", "anonymize", NULL, NULL, 0), 1,
           "one anonymization in the audit log");
    ok(sb_account_delete(eng, "self", res) == 0, "account removed");
}

/* An erasure request a hold kept from records is remembered: once the hold
** is released, the next sweep runs it again over what the request could not
** reach, and it is forgotten when no hold keeps anything from it. */
static void test_erase_after_release(void)
{
    account("rem", "retention/keep-90-days-then-delete");
    call("rem", "r1", "+442079462222", 1, NULL);
    call("rem", "r2", "+442079462222", 0, NULL);
    call("rem", "r3", "+442079462222", 1, NULL);
    call("rem", "r4", "+442079463434", 1, NULL);
    const char *h1 = "{\"id\":\"hr1\",\"call\":\"r1\",\"reason\":\"dispute\"}";
    const char *h2 = "{\"id\":\"hr2\",\"call\":\"r2\",\"reason\":\"audit\"}";
    ok(hold("rem", h1) == 0 && hold("rem", h2) == 0, "holds on r1 and r2");
    json_t *d = doc(sb_erase(eng, "rem", "+442079462222", res));
    is_int(jint(d, "deleted"), 1, "the erasure deletes r3");
    is_int(jint(d, "kept"), 2, "and keeps r1 and r2");
    is_int(jint(d, "held"), 2, "both because of a hold");
    json_decref(d);
    is_int(swept("deleted", NULL), 0, "a sweep while both holds stand deletes nothing");
    ok(exists("rem", "r1") && exists("rem", "r2"), "r1 and r2 are there");

    ok(sb_hold_release(eng, "rem", "hr1", res) == 0, "hr1 released");
    ok(exists("rem", "r1"), "r1 is still there until the next sweep");
    is_int(swept("deleted", NULL), 1, "the next sweep runs the erasure again: one deleted");
    ok(!exists("rem", "r1"), "r1 is gone");
    ok(exists("rem", "r2"), "r2 is kept: hr2 still stands");
    ok(exists("rem", "r4"), "another number's call is untouched");
    is_int(audit_matching("rem", "delete", "erasure request", NULL, 0), 2,
           "audit: r3 and r1 deleted by the request");
    is_int(audit_matching("rem", "keep", "legal hold hr2", NULL, 0), 2,
           "audit: r2 kept by hr2 at the request and again at its rerun");
    is_int(swept("deleted", "kept"), 0, "one more sweep has nothing to do");

    ok(sb_hold_release(eng, "rem", "hr2", res) == 0, "hr2 released");
    is_int(swept("deleted", NULL), 1, "the next sweep deletes r2");
    ok(!exists("rem", "r2") && exists("rem", "r4"), "r2 is gone, r4 is not");
    is_int(audit_matching("rem", "delete", "erasure request", NULL, 0), 3,
           "audit: three deleted in all");

    /* Forgotten: a hold placed and released later brings nothing back. */
    call("rem", "r5", "+442079462222", 1, NULL);
    const char *h3 = "{\"id\":\"hr3\",\"call\":\"r4\",\"reason\":\"later\"}";
    ok(hold("rem", h3) == 0 && sb_hold_release(eng, "rem", "hr3", res) == 0,
       "another hold placed and released");
    is_int(swept("deleted", NULL), 0,
           "the request was forgotten: a later call of the number stays");
    ok(exists("rem", "r5"), "r5 is there");

    /* Run again by hand before the sweep: the rerun finds nothing left. */
    const char *h4 = "{\"id\":\"hr4\",\"call\":\"r5\",\"reason\":\"dispute\"}";
    ok(hold("rem", h4) == 0, "r5 held");
    is_int(erased("rem", "+442079462222", "held"), 1, "a new request is kept from r5");
    ok(sb_hold_release(eng, "rem", "hr4", res) == 0, "hr4 released");
    is_int(erased("rem", "+442079462222", "deleted"), 1,
           "the request run again by hand deletes r5");
    is_int(swept("deleted", "kept"), 0, "and the sweep after it has nothing to do");

    /* An account deleted with a remembered request leaves nothing behind. */
    call("rem", "r6", "+442079462222", 1, NULL);
    const char *h5 = "{\"id\":\"hr5\",\"call\":\"r6\",\"reason\":\"dispute\"}";
    ok(hold("rem", h5) == 0, "r6 held");
    is_int(erased("rem", "+442079462222", "held"), 1, "the request is kept from r6");
    ok(sb_hold_release(eng, "rem", "hr5", res) == 0 && sb_account_delete(eng, "rem", res) == 0,
       "hold released and account deleted before any sweep");
    is_int(swept("deleted", NULL), 0,
           "the sweep after it purges the account and runs no erasure for it");
}

/* A request run again after a release counts as "erased" the records it
** decided: not a call of the number offered after it came. */
static void test_erased_count(void)
{
    account("ercnt", "retention/keep-90-days-then-delete");
    call("ercnt", "e1", "+442079464545", 1, NULL);
    const char *h = "{\"id\":\"he1\",\"call\":\"e1\",\"reason\":\"dispute\"}";
    ok(hold("ercnt", h) == 0, "e1 held");
    is_int(erased("ercnt", "+442079464545", "held"), 1, "the request is kept from e1");
    now_ms += 1000;
    call("ercnt", "e2", "+442079464545", 1, NULL);
    ok(sb_hold_release(eng, "ercnt", "he1", res) == 0, "a later call e2; he1 released");
    json_t *d = sweep();
    is_int(d ? jint(d, "deleted") : -1, 1, "the sweep runs the request again: e1 deleted");
    is_int(d ? jint(d, "erased") : -1, 1,
           "erased counts that one record, not e2, which the request does not cover");
    json_decref(d);
    ok(!exists("ercnt", "e1") && exists("ercnt", "e2"), "e1 gone, e2 there");
    is_int(erased("ercnt", "+442079464545", "deleted"), 1,
           "(e2 erased, out of the way of the sweeps after)");
}

/* A remembered request over more records than one erasure batch: its rerun
** goes on from where each batch ended, and reaches every record once. */
static void test_erase_after_release_many(void)
{
    account("many", "retention/keep-90-days-then-delete");
    is_int(calls_from("many", "m", "+442079465656", 520), 0, "520 calls of one number");
    const char *h = "{\"id\":\"hm\",\"number\":\"+442079465656\",\"reason\":\"case 9\"}";
    ok(hold("many", h) == 0, "a hold on the number");
    is_int(erased("many", "+442079465656", "held"), 520, "the erasure is kept from all 520");
    ok(sb_hold_release(eng, "many", "hm", res) == 0, "the hold released");
    is_int(swept("deleted", NULL), 520, "the next sweep deletes all 520");
    ok(!exists("many", "m0") && !exists("many", "m519"), "the first and the last are gone");
    is_int(audit_matching("many", "delete", "erasure request", NULL, 0), 520,
           "520 deletions audited, once each");
    ok(sb_account_delete(eng, "many", res) == 0, "account removed");
}

/* A hold released while a sweep is half way through the rerun of a
** remembered request (over more records than one sweep transaction takes):
** the rerun starts over, so the records that hold kept before the cut are
** reached too, not left for a release that may never come. */
static sb_result *mid_res;
static int mid_released;
static void release_mid(void *arg, uint64_t done, uint64_t total)
{
    (void)arg;
    (void)done;
    (void)total;
    if (mid_released++) return;
    if (sb_hold_release(eng, "mid", "hc", mid_res)) diag("release: %s", sb_result_message(mid_res));
}

static void test_erase_release_midway(void)
{
    account("mid", "retention/keep-90-days-then-delete");
    is_int(calls_from("mid", "x", "+442079467878", 1100), 0, "1100 calls of one number");
    const char *hn = "{\"id\":\"hn\",\"number\":\"+442079467878\",\"reason\":\"case 1\"}";
    const char *hc = "{\"id\":\"hc\",\"call\":\"x5\",\"reason\":\"case 2\"}";
    ok(hold("mid", hn) == 0 && hold("mid", hc) == 0,
       "a hold on the number, and one on its call x5");
    is_int(erased("mid", "+442079467878", "held"), 1100, "the erasure is kept from all 1100");
    ok(sb_hold_release(eng, "mid", "hn", res) == 0, "the number's hold released");
    mid_res = sb_result_new();
    mid_released = 0;
    json_t *d = doc(sb_sweep(eng, 0, release_mid, NULL, res));
    ok(mid_released >= 2 && jint(d, "transactions") >= 2,
       "the sweep's rerun takes several transactions; x5's hold is released after the first");
    long long first = jint(d, "deleted");
    json_decref(d);
    sb_result_free(mid_res);
    long long then = swept("deleted", NULL);
    is_int(first + then, 1100, "that sweep and the next delete all 1100 (%lld, then %lld)", first,
           then);
    ok(!exists("mid", "x5"), "x5 too, whose hold went while the rerun was half way");
    is_int(audit_matching("mid", "delete", "erasure request", NULL, 0), 1100,
           "1100 deletions audited, once each");
    ok(sb_account_delete(eng, "mid", res) == 0, "account removed");
}

/* A remembered request whose erase hook fails when it runs again stays
** remembered: the next release runs it again (with the hook fixed). */
static void test_erase_rerun_fails(void)
{
    const char *flaky = "local P = {}\n"
                        "function P.retain(record, ctx) return { keep = true } end\n"
                        "function P.erase(record, request, ctx)\n"
                        "  if not record.legal_hold then error('erase broken') end\n"
                        "  return { delete = true, reason = 'erasure request' }\n"
                        "end\nreturn P\n";
    ok(with_policy("flaky", "flaky", flaky) == 0, "an erase hook that fails unless held");
    call("flaky", "f1", "+442079464545", 1, NULL);
    const char *h = "{\"id\":\"hf\",\"call\":\"f1\",\"reason\":\"dispute\"}";
    ok(hold("flaky", h) == 0, "f1 held");
    is_int(erased("flaky", "+442079464545", "held"), 1, "the erasure is kept from f1");
    ok(sb_hold_release(eng, "flaky", "hf", res) == 0, "the hold released");
    is_int(swept("failed", NULL), 1, "the rerun's hook fails");
    ok(exists("flaky", "f1"), "f1 stays");
    const char *fixed = "local P = {}\n"
                        "function P.retain(record, ctx) return { keep = true } end\n"
                        "function P.erase(record, request, ctx)\n"
                        "  return { delete = true, reason = 'erasure request' }\n"
                        "end\nreturn P\n";
    ok(sb_policy_put(eng, "flaky", "flaky", fixed, strlen(fixed), NULL, res) == 0,
       "the hook fixed");
    const char *h2 = "{\"id\":\"hf2\",\"call\":\"f1\",\"reason\":\"x\"}";
    ok(hold("flaky", h2) == 0 && sb_hold_release(eng, "flaky", "hf2", res) == 0,
       "a hold placed and released");
    const char *h9 = "{\"id\":\"hf9\",\"call\":\"other\",\"reason\":\"typo\"}";
    int hrc = hold("flaky", h9);
    ok(hrc == SB_ENOTFOUND && !strcmp(sb_result_field(res), "call"),
       "a hold on a call id the account has neither live nor recorded: 404 naming the call (%s)",
       sb_result_message(res));
    is_int(swept("deleted", NULL), 1, "the request, still remembered, deletes f1 now");
    ok(!exists("flaky", "f1"), "f1 is gone");
    ok(sb_account_delete(eng, "flaky", res) == 0, "account removed");
}

/* A hold on a time range covers every call in progress in it: one offered
** just before the range and ended in it is held. */
/* A hold on a call id placed after the clock stepped back: the call, live
** at the hold (offered before it, at a later time by the clock), is held
** when its record is written; so is a call of that id that had ended
** before the hold. */
static void test_call_hold_clock_back(void)
{
    account("cbh", "retention/keep-90-days-then-delete");
    char json[256];
    snprintf(json, sizeof json,
             "{\"type\":\"offer\",\"call\":\"l1\",\"queue\":\"support\",\"caller\":"
             "\"+442079465555\"}");
    ok(call("cbh", "e1", "+442079466666", 1, NULL) == 0 && ev("cbh", json) == 0,
       "clock back: call e1 answered and ended, call l1 offered");
    int64_t was = now_ms;
    now_ms -= 3600000; /* the clock steps back an hour */
    ok(hold("cbh", "{\"id\":\"hl\",\"call\":\"l1\",\"reason\":\"case 10\"}") == 0 &&
           hold("cbh", "{\"id\":\"he\",\"call\":\"e1\",\"reason\":\"case 10\"}") == 0,
       "clock back: an hour back, holds on l1 (live) and e1 (ended) (%s)", sb_result_message(res));
    now_ms += 3000;
    ok(finish("cbh", "l1", "a1") == 0, "clock back: l1 ends");
    char ids[128];
    held_ids("cbh", "l1", NULL, ids, sizeof ids);
    is_str(ids, "hl", "clock back: l1's record is held by hl");
    held_ids("cbh", "e1", NULL, ids, sizeof ids);
    is_str(ids, "he", "clock back: e1's record is held by he");
    now_ms = was + 91 * DAY;
    json_t *sw = sweep();
    ok(exists("cbh", "l1") && exists("cbh", "e1"),
       "clock back: at 90 days both are kept (%lld deleted, %lld overridden)", jint(sw, "deleted"),
       jint(sw, "overridden"));
    json_decref(sw);
    ok(sb_hold_release(eng, "cbh", "hl", res) == 0 && sb_hold_release(eng, "cbh", "he", res) == 0,
       "clock back: holds released");
}

static void test_range_hold_in_progress(void)
{
    ok(with_policy("span", "ret-held", held_policy) == 0, "an account whose policy deletes");
    int64_t from = now_ms + 2000; /* the call is offered before, and ends after */
    call("span", "r1", "+442079462222", 1, NULL);
    int64_t to = now_ms;
    now_ms += 60000;
    call("span", "r2", "+442079462222", 1, NULL); /* after the range */
    char range[128];
    snprintf(range, sizeof range,
             "{\"id\":\"span\",\"from_ms\":%lld,\"to_ms\":%lld,\"reason\":\"audit\"}",
             (long long)from, (long long)to);
    ok(sb_hold_place(eng, "span", range, strlen(range), res) == 0, "a range hold");
    json_t *d = doc(sb_erase(eng, "span", "+442079462222", res));
    is_int(jint(d, "kept"), 1, "the call offered before the range and ended in it is held");
    is_int(jint(d, "deleted"), 1, "the call after the range is not");
    json_decref(d);
    ok(exists("span", "r1") && !exists("span", "r2"), "r1 kept, r2 deleted");
    ok(sb_hold_release(eng, "span", "span", res) == 0 && sb_account_delete(eng, "span", res) == 0,
       "hold released, account removed");
}

/* ctx.get and ctx.set in a retention hook: no store (get gives nil, a set
** is dropped), not an error. */
static void test_ctx_store(void)
{
    const char *src = "local P = {}\n"
                      "function P.retain(record, ctx)\n"
                      "  ctx.set('k', 1)\n"
                      "  return { delete = true, reason = 'got ' .. tostring(ctx.get('k')) }\n"
                      "end\n"
                      "return P\n";
    ok(with_policy("kvret", "ret-kv", src) == 0, "a retain hook that uses ctx.set and ctx.get");
    call("kvret", "k1", "+442079463210", 1, NULL);
    ok(!exists("kvret", "k1"), "its decision stands (the record is deleted at once)");
    is_int(audit_matching("kvret", "delete", "got nil", NULL, 0), 1,
           "ctx.get gave nil, the set was dropped");
    ok(sb_account_delete(eng, "kvret", res) == 0, "account removed");
}

static const char *bad_policy = "local P = {}\n"
                                "function P.retain(record, ctx)\n"
                                "  if record.attrs.boom then error('boom') end\n"
                                "  return { delete = true, reason = 'ok' }\n"
                                "end\n"
                                "return P\n";

static void test_failures(void)
{
    ok(with_policy("fail", "ret-bad", bad_policy) == 0,
       "a retention policy that fails on some records");
    call("fail", "f1", "+442079468888", 1, "{\"boom\":true}");
    ok(exists("fail", "f1"), "a record whose retain failed at write is kept");
    is_int(audit_matching("fail", "error", "ret-bad.lua:3:", NULL, 0), 1,
           "the failure is audited with file:line");
    call("fail", "f2", "+442079468888", 1, NULL);
    ok(!exists("fail", "f2"), "one that did not fail is deleted at once (delete at write)");
    now_ms += DAY + 1000;
    json_t *s = sweep();
    is_int(jint(s, "failed"), 1, "a day later the failed one is tried again (and fails again)");
    json_decref(s);
    ok(exists("fail", "f1"), "and is still kept");
    sb_account_delete(eng, "fail", res);
}

static void test_policy_change(void)
{
    account("chg", NULL);
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof id, "g%d", i);
        call("chg", id, "+442079469999", 1, NULL);
    }
    json_t *s = sweep();
    is_int(jint(s, "reviewed"), 0, "no retention policy: nothing to review");
    json_decref(s);
    now_ms += 100 * DAY;
    const char *acct = "{\"id\":\"chg\",\"retention\":\"retention/keep-90-days-then-delete\"}";
    ok(sb_account_put(eng, acct, strlen(acct), res) == 0, "the account gets a retention policy");
    s = sweep();
    is_int(jint(s, "reviewed"), 10, "the next sweep reviews every older record");
    is_int(jint(s, "deleted"), 10, "older than 90 days: deleted");
    json_decref(s);
    /* With time passing while the sweep works (a real clock), the records
    ** a change schedules are still due in that same sweep. */
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof id, "t%d", i);
        call("chg", id, "+442079469999", 1, NULL);
    }
    now_ms += 100 * DAY;
    acct = "{\"id\":\"chg\",\"retention\":\"retention/delete-abandoned-7-days\"}";
    ok(sb_account_put(eng, acct, strlen(acct), res) == 0, "the retention policy changed again");
    tick_ms = 1;
    s = sweep();
    tick_ms = 0;
    is_int(jint(s, "reviewed"), 10, "a clock that moves on during the sweep: it reviews them all");
    ok(json_is_true(json_object_get(s, "done")), "and is done");
    json_decref(s);
    acct = "{\"id\":\"chg\",\"retention\":\"retention/keep-90-days-then-delete\"}";
    sb_account_put(eng, acct, strlen(acct), res);
    s = sweep();
    is_int(jint(s, "reviewed"), 10, "... and changed back, the next sweep all of them again");
    json_decref(s);
    /* Changing it again leaves no duplicate reviews behind. */
    call("chg", "g10", "+442079469999", 1, NULL);
    acct = "{\"id\":\"chg\",\"retention\":\"retention/delete-abandoned-7-days\"}";
    sb_account_put(eng, acct, strlen(acct), res);
    acct = "{\"id\":\"chg\",\"retention\":\"retention/keep-90-days-then-delete\"}";
    sb_account_put(eng, acct, strlen(acct), res);
    s = sweep();
    is_int(jint(s, "reviewed"), 1, "policy changed twice: g10 reviewed once");
    json_decref(s);
    now_ms += 91 * DAY;
    s = sweep();
    is_int(jint(s, "reviewed"), 1, "and at 90 days once more (no duplicate entries)");
    is_int(jint(s, "deleted"), 1, "deleted");
    json_decref(s);
}

/* Deletions and anonymizations interleaved in one sweep transaction: every
** record anonymized stays readable under its call id with its fields, every
** one deleted is gone, and no number finds any of them any more. */
static const char *mixed_policy =
    "local P = {}\n"
    "function P.retain(record, ctx)\n"
    "  if record.age_days < 1 then return { review_in_days = 1 } end\n"
    "  if record.anonymized then return { delete = true, reason = 'second look' } end\n"
    "  if record.attrs.kind == 'd' then return { delete = true, reason = 'kind d' } end\n"
    "  return { anonymize = true, review_in_days = 2, reason = 'kind a' }\n"
    "end\n"
    "return P\n";

/* The event raised at the first delete above is gone once the transaction ends. */
static void event_done(void *arg, uint64_t done, uint64_t total)
{
    int *raised = arg;
    if (*raised && !raise_at_dels) {
        *raised = 0;
        __atomic_sub_fetch(&eng->live_events, 1, __ATOMIC_RELAXED);
    }
}

/* An event that arrives while a round's deferred deletes are applied ends
** the transaction's rounds, and the sweep waits for it (a yield) as for one
** seen between two records: it did neither, or went on to its next
** transaction at once, ahead of the event. */
static void test_yield_after_round(void)
{
    ok(with_policy("yld", "ret-mixed-y", mixed_policy) == 0, "a policy deleting some records");
    int errors = 0;
    for (int i = 0; i < 600; i++) {
        char id[16], caller[32];
        snprintf(id, sizeof id, "y%d", i);
        snprintf(caller, sizeof caller, "+44207946%04d", i % 40);
        errors += call("yld", id, caller, 1, i % 3 ? "{\"kind\":\"a\"}" : "{\"kind\":\"d\"}");
    }
    is_int(errors, 0, "600 calls");
    now_ms += DAY + 1000;
    int raised = 1;
    raise_at_dels = 1;
    json_t *s = doc(sb_sweep(eng, 0, event_done, &raised, res));
    ok(!raise_at_dels && !raised, "an event came as the first round's deletes were applied");
    is_int(jint(s, "reviewed"), 600, "all 600 reviewed");
    ok(jint(s, "yields") >= 1 && jint(s, "transactions") >= 2,
       "the sweep yielded to it (%lld yields, %lld transactions)", jint(s, "yields"),
       jint(s, "transactions"));
    json_decref(s);
    /* Sweeps cover every account: leave none behind for the tests below. */
    ok(sb_account_delete(eng, "yld", res) == 0 && swept("purged", NULL) == 400,
       "the account goes, its anonymized records with it");
}

static void test_mixed_batch(void)
{
    ok(with_policy("mix", "ret-mixed", mixed_policy) == 0,
       "a policy deleting some records and anonymizing others");
    int n = 1200, errors = 0, deleted = 0;
    for (int i = 0; i < n; i++) {
        char id[16], caller[32];
        snprintf(id, sizeof id, "m%d", i);
        snprintf(caller, sizeof caller, "+44207946%04d", i % 40);
        /* runs of deletions and anonymizations of varied length */
        int del = (i * 7 / 5) % 3 == 0 || i % 11 == 0;
        deleted += del;
        errors +=
            call("mix", id, caller, i % 4 != 0, del ? "{\"kind\":\"d\"}" : "{\"kind\":\"a\"}");
    }
    is_int(errors, 0, "%d calls", n);
    now_ms += DAY + 1000;
    count_dels = 1;
    dels_max = dels_all = dels_run = 0;
    json_t *s = sweep();
    count_dels = 0;
    is_int(jint(s, "reviewed"), n, "all %d reviewed", n);
    is_int(jint(s, "deleted"), deleted, "%d deleted", deleted);
    is_int(jint(s, "anonymized"), n - deleted, "%d anonymized", n - deleted);
    /* Index deletes (a deletion's pseudonym and call-id entries, an
    ** anonymization's pseudonym entry) wait for the end of their round, 256
    ** at most (257: a deletion's two may cross it), so that they bound how
    ** long an event waits; a transaction takes rounds while no event waits,
    ** 1,000 records at most. */
    int dels = 2 * deleted + (n - deleted);
    ok(dels_max <= 257 && dels_all >= (size_t)dels,
       "%d index deletes applied in rounds of at most 257 (%zu at most, %zu applied in all, "
       "%lld transactions)",
       dels, dels_max, dels_all, jint(s, "transactions"));
    json_decref(s);
    int wrong = 0;
    for (int i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "m%d", i);
        int del = (i * 7 / 5) % 3 == 0 || i % 11 == 0;
        if (del) {
            wrong += exists("mix", id);
            continue;
        }
        json_t *c = doc(sb_call_get(eng, "mix", id, res));
        if (!c || !json_is_true(json_object_get(c, "anonymized")) || strcmp(jstr(c, "id"), id) ||
            strcmp(jstr(json_object_get(c, "attrs"), "kind"), "a") ||
            (i % 4 != 0 && strcmp(jstr(c, "agent"), "a1")))
            wrong++;
        json_decref(c);
    }
    is_int(wrong, 0, "anonymized records are intact under their ids, deleted ones are gone");
    int found = 0;
    for (int k = 0; k < 40; k++) {
        char caller[32];
        snprintf(caller, sizeof caller, "+44207946%04d", k);
        json_t *d = doc(sb_records_export(eng, "mix", caller, SB_EXPORT_JSON, res));
        found += (int)json_array_size(json_object_get(d, "records"));
        json_decref(d);
        d = doc(sb_erase(eng, "mix", caller, res));
        found += (int)(jint(d, "deleted") + jint(d, "anonymized") + jint(d, "kept"));
        json_decref(d);
    }
    is_int(found, 0, "no number finds any of them (pseudonym index entries gone)");
    is_int(audit_matching("mix", "delete", "kind d", NULL, 0), deleted,
           "one deletion audited per record");
    is_int(audit_matching("mix", "anonymize", "kind a", NULL, 0), n - deleted,
           "one anonymization audited per record");
    now_ms += 2 * DAY;
    s = sweep();
    is_int(jint(s, "reviewed"), n - deleted, "the anonymized ones come up again at their date");
    is_int(jint(s, "deleted"), n - deleted, "and go");
    json_decref(s);
    json_t *l = doc(sb_records_list(eng, "mix", NULL, 0, res));
    is_int(json_array_size(json_object_get(l, "records")), 0, "no record is left");
    json_decref(l);
    sb_account_delete(eng, "mix", res);
}

/* A sweep killed after its first transaction; the next carries on. */
static void die(void *arg, uint64_t done, uint64_t total)
{
    if (done > 0) raise(SIGKILL);
}

static void test_killed_sweep(void)
{
    account("big", "retention/keep-90-days-then-delete");
    const char *q =
        "{\"id\":\"support\",\"policy\":\"longest-idle\",\"members\":[{\"agent\":\"a1\"}]}";
    sb_queue_put(eng, "big", q, strlen(q), res);
    int n = 2500, errors = 0;
    for (int i = 0; i < n; i++) {
        char id[16], caller[32];
        snprintf(id, sizeof id, "b%d", i);
        snprintf(caller, sizeof caller, "+44207946%04d", i % 1000);
        errors += call("big", id, caller, i % 5 != 0, NULL) != 0;
    }
    is_int(errors, 0, "%d calls", n);
    now_ms += 91 * DAY;
    sb_close(eng);
    pid_t pid = fork();
    if (pid == 0) {
        eng = open_engine();
        if (eng) sb_sweep(eng, 0, die, NULL, res);
        _exit(0); /* not reached when killed */
    }
    int st = 0;
    waitpid(pid, &st, 0);
    ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "a sweep killed after its first transaction");
    eng = open_engine();
    json_t *s = sweep();
    ok(json_is_true(json_object_get(s, "resumed")),
       "the next sweep carries on the interrupted one");
    is_int(jint(s, "reviewed"), n, "its totals cover the whole run: %d reviewed", n);
    is_int(jint(s, "deleted"), n, "all deleted");
    json_decref(s);
    is_int(audit_matching("big", "delete", NULL, NULL, 0), n,
           "exactly one deletion audited per record: nothing redone, nothing skipped");
    json_t *l = doc(sb_records_list(eng, "big", NULL, 0, res));
    is_int(json_array_size(json_object_get(l, "records")), 0, "no record is left");
    json_decref(l);
    /* Records of the killed transaction's run are not reviewed twice. */
    s = sweep();
    ok(!json_is_true(json_object_get(s, "resumed")) && jint(s, "reviewed") == 0,
       "a further sweep starts afresh and finds nothing");
    json_decref(s);
}

/* Listing records page by page: newest first, the next page from the last
** record's ended_ms and id, nothing lost or repeated where records end in
** the same millisecond. */
static void test_list_pages(void)
{
    account("pg", NULL);
    char json[256], want[512] = "", got[512] = "";
    /* 9 abandoned calls: three end in each of three milliseconds. */
    for (int i = 0; i < 9; i++) {
        snprintf(json, sizeof json,
                 "{\"type\":\"offer\",\"call\":\"p%d\",\"queue\":\"support\","
                 "\"caller\":\"+4420794655%02d\"}",
                 i, i);
        ok(ev("pg", json) == 0, "p%d offered", i);
        snprintf(json, sizeof json, "{\"type\":\"abandon\",\"call\":\"p%d\"}", i);
        ev("pg", json);
        if (i % 3 == 2) now_ms += 1;
    }
    json_t *all = doc(sb_records_list(eng, "pg", "{\"limit\":100}", 13, res)), *r;
    size_t i;
    json_array_foreach(json_object_get(all, "records"), i, r)
    {
        strcat(want, json_string_value(json_object_get(r, "id")));
        strcat(want, " ");
    }
    is_int(json_array_size(json_object_get(all, "records")), 9, "one page of 100 holds all 9");
    json_decref(all);
    long long before = -1;
    char bid[64] = "";
    int pages = 0;
    for (; pages < 10; pages++) {
        if (before < 0)
            snprintf(json, sizeof json, "{\"limit\":2}");
        else
            snprintf(json, sizeof json, "{\"limit\":2,\"before_ms\":%lld,\"before_id\":\"%s\"}",
                     before, bid);
        json_t *d = doc(sb_records_list(eng, "pg", json, strlen(json), res));
        json_t *recs = json_object_get(d, "records");
        if (!json_array_size(recs)) {
            json_decref(d);
            break;
        }
        json_array_foreach(recs, i, r)
        {
            strcat(got, json_string_value(json_object_get(r, "id")));
            strcat(got, " ");
            before = jint(r, "ended_ms");
            snprintf(bid, sizeof bid, "%s", json_string_value(json_object_get(r, "id")));
        }
        json_decref(d);
    }
    is_str(got, want, "pages of 2 from before_ms/before_id give every record once, in order");
    is_int(pages, 5, "in 5 pages");
    ok(sb_records_list(eng, "pg", "{\"before_ms\":5}", 15, res) == SB_EINVAL &&
           !strcmp(sb_result_field(res), "before_id"),
       "before_ms without before_id: refused, naming it");
}

static void test_budget(void)
{
    account("bud", "retention/keep-90-days-then-delete");
    for (int i = 0; i < 1500; i++) {
        char id[16], caller[32];
        snprintf(id, sizeof id, "u%d", i);
        snprintf(caller, sizeof caller, "+44207946%04d", i);
        call("bud", id, caller, 1, NULL);
    }
    now_ms += 91 * DAY;
    json_t *s = doc(sb_sweep(eng, 1, NULL, NULL, res));
    ok(!json_is_true(json_object_get(s, "done")), "a sweep with a 1 ms budget stops early");
    long long first = jint(s, "reviewed");
    json_decref(s);
    s = sweep();
    ok(json_is_true(json_object_get(s, "resumed")), "the next one carries on");
    is_int(jint(s, "reviewed"), 1500, "and the run reviews each record once (%lld, then the rest)",
           first);
    json_decref(s);
}

/* A retention policy that deletes every record, at its write: an audit
** entry for each call. */
static const char *gone_policy =
    "local P = {}\n"
    "function P.retain(record, ctx) return { delete = true } end\n"
    "function P.erase(record, request, ctx) return { delete = true } end\n"
    "return P\n";

/* The account's "audit_days" set in its stored settings, as sb_account_put
** would set it from the account document (the list of fields it takes is
** entities.c's, which does not name it yet). */
typedef struct days_op {
    const char *account;
    uint32_t days;
} days_op;

static int set_days(wtx *t, void *arg)
{
    days_op *o = arg;
    acct_rec a;
    rec_settings s;
    int rc = eng_account(t->txn, t->e, o->account, &a, t->res);
    if (!rc) rc = rec_settings_load(t->txn, t->e, a.num, &s);
    if (!rc) {
        s.audit_days = o->days;
        rc = rec_settings_save(t, a.num, &s);
    }
    return rc;
}

static int set_audit_days(const char *account, uint32_t days)
{
    days_op o = {account, days};
    return eng_write(eng, set_days, &o, res);
}

/* The account's settings stored as version 1 wrote them (before
** audit_days): no retention policy, a 25 s service level, "name" personal. */
static int put_v1_settings(wtx *t, void *arg)
{
    acct_rec a;
    int rc = eng_account(t->txn, t->e, arg, &a, t->res);
    wbuf w = {0};
    wb_u8(&w, 1);
    wb_str(&w, "");
    wb_u32(&w, 0);
    wb_u32(&w, 25);
    wb_u8(&w, 1);
    wb_str(&w, "name");
    uint8_t k[4];
    if (!rc)
        rc = w.err ? SB_ENOMEM
                   : st_put(t->txn, t->e, DB_PRIVACY, k, key_acct(k, a.num), w.b.p, w.b.len);
    buf_free(&w.b);
    return rc;
}

/* n calls offered and abandoned at once (the clock still), ids prefix0...:
** the failures. */
static int quick_calls(const char *acct, const char *prefix, int n)
{
    int errors = 0;
    for (int i = 0; i < n; i++) {
        char json[160];
        snprintf(json, sizeof json,
                 "{\"type\":\"offer\",\"call\":\"%s%d\",\"queue\":\"support\","
                 "\"caller\":\"+442079468%03d\"}",
                 prefix, i, i % 1000);
        errors += ev(acct, json) != 0;
        snprintf(json, sizeof json, "{\"type\":\"abandon\",\"call\":\"%s%d\"}", prefix, i);
        errors += ev(acct, json) != 0;
    }
    return errors;
}

/* The account's audit log from the start: entries, first and last seq. */
static int audit_span(const char *acct, long long *first, long long *last)
{
    json_t *d = doc(sb_audit_list(eng, acct, 0, 100000, res));
    json_t *es = json_object_get(d, "entries");
    int n = (int)json_array_size(es);
    *first = n ? jint(json_array_get(es, 0), "seq") : 0;
    *last = n ? jint(json_array_get(es, n - 1), "seq") : 0;
    json_decref(d);
    return n;
}

/* "audit_days" in an account document: a whole number of days, 1 to 36500,
** or null (as long as the account, the default); the settings as stored by
** an earlier version (without it) read as null. */
static void test_audit_days_setting(void)
{
    static const struct {
        const char *json;
        int rc;
        long long days;
    } cases[] = {
        {"{\"audit_days\":400}", 0, 400},
        {"{\"audit_days\":null}", 0, 0},
        {"{}", 0, 0},
        {"{\"audit_days\":36500}", 0, 36500},
        {"{\"audit_days\":0}", SB_EINVAL, 0},
        {"{\"audit_days\":-1}", SB_EINVAL, 0},
        {"{\"audit_days\":36501}", SB_EINVAL, 0},
        {"{\"audit_days\":\"400\"}", SB_EINVAL, 0},
        {"{\"audit_days\":1.5}", SB_EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *d = json_loads(cases[i].json, 0, NULL);
        rec_settings s;
        rec_settings_default(&s);
        int rc = rec_settings_parse(d, &s, res);
        ok(rc == cases[i].rc && (rc ? !strcmp(sb_result_field(res), "audit_days") &&
                                          strstr(sb_result_message(res), "or null")
                                    : s.audit_days == cases[i].days),
           "%s: %s", cases[i].json, rc ? sb_result_message(res) : "taken");
        json_t *o = json_object();
        rec_settings_json(&s, o);
        json_t *ad = json_object_get(o, "audit_days");
        ok(rc || (cases[i].days ? json_integer_value(ad) == cases[i].days : json_is_null(ad)),
           "... and shown as it was given");
        json_decref(o);
        json_decref(d);
    }
    account("adset", NULL);
    json_t *a = doc(sb_account_get(eng, "adset", res));
    ok(a && json_is_null(json_object_get(a, "audit_days")),
       "an account keeps its audit log as long as it lives unless it says otherwise");
    json_decref(a);
    ok(eng_write(eng, put_v1_settings, "adset", res) == 0, "settings as version 1 stored them");
    a = doc(sb_account_get(eng, "adset", res));
    ok(a && json_is_null(json_object_get(a, "audit_days")) &&
           jint(a, "service_level_seconds") == 25 &&
           json_array_size(json_object_get(a, "personal_attrs")) == 1,
       "read with audit_days null, the rest as they were");
    json_decref(a);
    const char *put = "{\"id\":\"adset\",\"audit_days\":400}";
    int rc = sb_account_put(eng, put, strlen(put), res);
    ok(rc == 0, "the account document sets audit_days (%s)", rc ? sb_result_message(res) : "taken");
    ok(set_audit_days("adset", 400) == 0, "audit_days 400 in the account's settings");
    a = doc(sb_account_get(eng, "adset", res));
    is_int(jint(a, "audit_days"), 400, "the account shows it");
    json_decref(a);
    ok(sb_account_delete(eng, "adset", res) == 0, "account removed");
}

/* The audit log's own retention: a sweep removes an account's entries older
** than its audit_days, counting them in its summary, reading no further
** than the first entry young enough; numbering goes on after them; an
** account without audit_days keeps all; a sweep cut into many short calls
** (the daemon's) carries the walk on. A retention policy that deletes every
** record left an entry per call ever made, kept until the account went. */
static void test_audit_days(void)
{
    ok(with_policy("ad", "ret-gone", gone_policy) == 0 &&
           with_policy("adkeep", "ret-gone", gone_policy) == 0,
       "two accounts whose policy deletes every record at its write");
    ok(set_audit_days("ad", 30) == 0, "ad keeps its audit log 30 days, adkeep as long as it lives");
    int64_t day0 = now_ms;
    is_int(quick_calls("ad", "a", 100) + quick_calls("adkeep", "k", 10), 0,
           "day 0: 100 calls in ad, 10 in adkeep");
    now_ms = day0 + 20 * DAY;
    is_int(quick_calls("ad", "b", 50), 0, "day 20: 50 more in ad");
    long long first, last;
    is_int(audit_span("ad", &first, &last), 150, "ad's audit log: 150 deletions");
    now_ms = day0 + 29 * DAY;
    json_t *s = sweep();
    is_int(jint(s, "audit_expired"), 0, "day 29: nothing is 30 days old");
    json_decref(s);
    now_ms = day0 + 30 * DAY + 1000;
    s = sweep();
    is_int(jint(s, "audit_expired"), 100, "day 30: the sweep removes day 0's 100 entries");
    is_int(jint(json_object_get(s, "this_call"), "audit_expired"), 100, "... this call's own");
    json_decref(s);
    is_int(audit_span("ad", &first, &last), 50, "50 entries left");
    ok(first == 101 && last == 150, "day 20's, numbered as they were (%lld..%lld)", first, last);
    is_int(audit_span("adkeep", &first, &last), 10, "adkeep has its 10 still");
    s = sweep();
    is_int(jint(s, "audit_expired"), 0, "a second sweep finds nothing more");
    json_decref(s);
    now_ms = day0 + 51 * DAY;
    s = sweep();
    is_int(jint(s, "audit_expired"), 50, "day 51: day 20's go too");
    json_decref(s);
    is_int(audit_span("ad", &first, &last), 0, "ad's audit log is empty");
    json_t *d = doc(sb_audit_list(eng, "ad", 0, 10, res));
    is_int(jint(d, "next"), 0, "... a page from the start is empty, next 0");
    json_decref(d);
    is_int(quick_calls("ad", "c", 1), 0, "a call");
    is_int(audit_span("ad", &first, &last), 1, "its entry");
    is_int(first, 151, "numbered after the ones removed: no number is given twice");
    d = doc(sb_audit_list(eng, "ad", 150, 10, res));
    is_int(json_array_size(json_object_get(d, "entries")), 1,
           "a reader that had read up to 150 finds it with after=150");
    json_decref(d);
    /* Many, removed by the daemon's kind of sweep: a short transaction a call. */
    is_int(quick_calls("ad", "d", 2500), 0, "2,500 calls");
    now_ms += DAY;
    count_audit_reads = 1;
    s = sweep();
    count_audit_reads = 0;
    ok(jint(s, "audit_expired") == 0 && audit_reads <= 8,
       "a sweep with nothing old enough reads no further than the first value (%ld reads)",
       audit_reads);
    json_decref(s);
    /* Paging far into the log starts at the value holding the next entry:
    ** an auditor reading a long log page by page read every value before
    ** its page again for each page. */
    count_audit_reads = 1;
    audit_reads = 0;
    d = doc(sb_audit_list(eng, "ad", 2600, 5, res));
    count_audit_reads = 0;
    json_t *es = json_object_get(d, "entries");
    ok(json_array_size(es) == 5 && jint(json_array_get(es, 0), "seq") == 2601 &&
           jint(d, "next") == 2605,
       "a page after entry 2600 holds 2601..2605 (next %lld)", jint(d, "next"));
    ok(audit_reads <= 8, "... and reads the values it shows, not the 2,450 before (%ld reads)",
       audit_reads);
    json_decref(d);
    d = doc(sb_audit_list(eng, "ad", 2651, 5, res));
    es = json_object_get(d, "entries");
    ok(json_array_size(es) == 0 && jint(d, "next") == 2651,
       "a page after the last entry is empty, next unchanged");
    json_decref(d);
    d = doc(sb_audit_list(eng, "ad", 1, 2, res));
    es = json_object_get(d, "entries");
    ok(json_array_size(es) == 2 && jint(json_array_get(es, 0), "seq") == 151,
       "a page after a number already removed starts at the first kept");
    json_decref(d);
    now_ms += 30 * DAY;
    int calls = 0, done = 0;
    long long own = 0, run = 0, txns = 0;
    while (!done && calls < 10000) {
        s = doc(sb_sweep(eng, 1, NULL, NULL, res));
        done = !s || json_is_true(json_object_get(s, "done"));
        own += jint(json_object_get(s, "this_call"), "audit_expired");
        run = jint(s, "audit_expired");
        txns += jint(s, "transactions");
        calls++;
        json_decref(s);
    }
    ok(txns >= 3,
       "a sweep of 1 ms calls: %d calls, %lld transactions (1,000 removals at most "
       "each)",
       calls, txns);
    is_int(own, 2501, "their own counts add up to the 2,501 entries");
    is_int(run, 2501, "the run's total says as much");
    is_int(audit_span("ad", &first, &last), 0, "none left");
    is_int(audit_span("adkeep", &first, &last), 10, "adkeep's 10 stay, months later");
    ok(sb_account_delete(eng, "ad", res) == 0 && sb_account_delete(eng, "adkeep", res) == 0,
       "accounts removed");
    s = sweep();
    json_decref(s);
}

/* The engine's lines saying a legal hold overrode a decision, counted (the
** engine reopened with this log callback for the test below). */
static int hold_lines;
static char hold_line[1024];
static void count_hold_lines(void *arg, sb_log_level l, const char *line)
{
    if (strstr(line, "overridden by legal hold")) {
        hold_lines++;
        snprintf(hold_line + strlen(hold_line), sizeof hold_line - strlen(hold_line), "%s|", line);
    }
    quiet(arg, l, line);
}

static int hold_lines_since(void)
{
    int n = hold_lines;
    hold_lines = 0;
    hold_line[0] = 0;
    return n;
}

/* Decisions a legal hold overrides are each in the audit log; the engine's
** log says so once per hold with a count: per sweep (also one cut into
** many calls, as the daemon makes), per erasure request, and for records
** as they are written, at most once a minute of the clock (the first at
** once). One line per record made a time-range hold over a busy month
** hundreds of thousands of lines a day. */
static void test_hold_log_lines(void)
{
    sb_close(eng);
    sb_config cfg;
    test_engine_config(&cfg, dir, "policies", RECKIT_MAP_SIZE);
    cfg.log = count_hold_lines;
    eng = test_open(&cfg, res);
    if (!eng) return;
    ok(with_policy("hl", "ret-gone", gone_policy) == 0,
       "a retention policy that deletes every record");
    char range[160];
    snprintf(range, sizeof range,
             "{\"id\":\"month\",\"from_ms\":%lld,\"to_ms\":%lld,\"reason\":\"audit\"}",
             (long long)now_ms, (long long)(now_ms + 30 * DAY));
    ok(hold("hl", "{\"id\":\"lit\",\"number\":\"+442079469001\",\"reason\":\"case 9\"}") == 0 &&
           hold("hl", range) == 0,
       "a number hold and a month's time-range hold");
    hold_lines_since();
    /* Calls in the same second: the number's held by lit, the others by the range. */
    int errors = 0;
    for (int i = 0; i < 1200; i++) {
        char json[160];
        snprintf(json, sizeof json,
                 "{\"type\":\"offer\",\"call\":\"w%d\",\"queue\":\"support\","
                 "\"caller\":\"%s\"}",
                 i, i < 1170 ? "+442079469001" : "+442079469002");
        errors += ev("hl", json) != 0;
        snprintf(json, sizeof json, "{\"type\":\"abandon\",\"call\":\"w%d\"}", i);
        errors += ev("hl", json) != 0;
    }
    is_int(errors, 0, "1,200 calls, all held at their write");
    is_int(audit_matching("hl", "keep", "legal hold", NULL, 0), 1200,
           "the audit log has each override");
    is_int(hold_lines_since(), 2, "written in the same minute: one line per hold, at its first");
    now_ms += 61000;
    call("hl", "w-late", "+442079469001", 0, NULL);
    int n = hold_lines;
    ok(n == 2 && strstr(hold_line, "account hl: 1170 decisions overridden by legal hold lit") &&
           strstr(hold_line, "account hl: 29 decisions overridden by legal hold month"),
       "a minute on, the next write's lines count those since, of either hold (%s)", hold_line);
    hold_lines_since();
    /* The held records come up for review a day later. */
    now_ms += DAY + 1000;
    json_t *s = sweep();
    is_int(jint(s, "overridden"), 1201, "a sweep: 1,201 decisions overridden");
    json_decref(s);
    n = hold_lines;
    ok(n == 2 && strstr(hold_line, "1171 decisions overridden by legal hold lit in this sweep") &&
           strstr(hold_line, "30 decisions overridden by legal hold month in this sweep"),
       "one line per hold for the sweep, with its count (%d: %s)", n, hold_line);
    hold_lines_since();
    /* The daemon's way: one short transaction per call, the run over many. */
    now_ms += DAY + 1000;
    int calls = 0, done = 0;
    while (!done && calls < 10000) {
        s = doc(sb_sweep(eng, 1, NULL, NULL, res));
        done = !s || json_is_true(json_object_get(s, "done"));
        calls++;
        json_decref(s);
    }
    n = hold_lines;
    ok(calls > 1 && n == 2, "a sweep cut into %d calls: one line per hold for the run (%d)", calls,
       n);
    hold_lines_since();
    for (int i = 0; i < 3; i++) {
        json_t *d = doc(sb_erase(eng, "hl", "+442079469001", res));
        is_int(jint(d, "held"), 1171, "erasure request %d: 1,171 records held", i + 1);
        json_decref(d);
    }
    n = hold_lines;
    is_int(n, 3, "one line per erasure request (in three transactions each)");
    hold_lines_since();
    ok(sb_hold_release(eng, "hl", "lit", res) == 0 && sb_hold_release(eng, "hl", "month", res) == 0,
       "the holds released");
    s = sweep(); /* the erasure requests run again: nothing held now */
    json_decref(s);
    ok(sb_account_delete(eng, "hl", res) == 0, "account removed");
}

int main(void)
{
    if (start_engine("retention")) return done_testing();
    test_keep_90_days();
    test_anonymize();
    test_holds();
    test_erase_with_policy();
    test_erase_retried();
    test_erase_self_call();
    test_erase_after_release();
    test_erased_count();
    test_erase_after_release_many();
    test_erase_release_midway();
    test_erase_rerun_fails();
    test_range_hold_in_progress();
    test_ctx_store();
    test_failures();
    test_policy_change();
    test_mixed_batch();
    test_yield_after_round();
    test_killed_sweep();
    test_list_pages();
    test_budget();
    test_audit_days_setting();
    test_audit_days();
    test_hold_log_lines();
    test_anonymize_again(); /* its account is reviewed every day */
    test_call_hold_reuse();
    test_call_hold_clock_back();
    return end_engine();
}
