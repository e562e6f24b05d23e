/*
** test_retention_preview.c — sb_retention_preview, a sweep's dry run: its
** counts, reasons and samples are what the sweep then does (the due records
** at the next sweep and days ahead, legal holds overriding, a policy that
** fails, a pending change of the account's retention), a policy named or
** given as source previewed over every record, and bad input refused; and
** it writes nothing: the store's last transaction and a backup of the whole
** data are the same after a preview as before it.
*/
#include "engine.h" /* the LMDB environment, for its last transaction id */
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"
/* The hooks here run without their wall-clock budget (the instruction
** budget stays): a slow hook on a loaded machine failed it now and then,
** kept its record and so changed what a preview counted (deleted 39 of
** 40), and a looping one could be cut by the clock before its
** instructions ran out. */
#define RECKIT_NO_WALL
#include "reckit.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The monotonic clock that time budgets are measured on, injected: while
** mono_step_ns is set, each look at it moves it on that much (the engine's
** look before each key of a preview's walk), so where a budget runs out
** does not depend on the machine's speed. */
static uint64_t mono_step_ns, mono_fake_ns;
int clock_gettime(clockid_t id, struct timespec *ts)
{
    if (!mono_step_ns || id != CLOCK_MONOTONIC) return (int)syscall(SYS_clock_gettime, id, ts);
    mono_fake_ns += mono_step_ns;
    ts->tv_sec = (time_t)(mono_fake_ns / 1000000000u);
    ts->tv_nsec = (long)(mono_fake_ns % 1000000000u);
    return 0;
}

#define DAY 86400000LL

static const char *mixed_policy =
    "local P = {}\n"
    "function P.retain(record, ctx)\n"
    "  if record.age_days < 10 then return { review_in_days = 10 - record.age_days } end\n"
    "  if record.id:sub(1, 3) == 'bad' then error('cannot decide') end\n"
    "  if record.outcome == 'answered' then\n"
    "    return { anonymize = true, review_in_days = 30, reason = 'answered, 10 days' }\n"
    "  end\n"
    "  return { delete = true, reason = 'abandoned, 10 days' }\n"
    "end\n"
    "return P\n";

static void account(const char *id, const char *retention)
{
    char json[256];
    snprintf(json, sizeof json, "{\"id\":\"%s\"%s%s%s}", id, retention ? ",\"retention\":\"" : "",
             retention ? retention : "", retention ? "\"" : "");
    if (sb_account_put(eng, json, strlen(json), res)) diag("account: %s", sb_result_message(res));
    const char *a = "{\"id\":\"a1\",\"devices\":{\"softphone\":\"sip:a1@pbx.example\"},\"status\":"
                    "\"available\"}";
    if (sb_agent_put(eng, id, a, strlen(a), res)) diag("agent: %s", sb_result_message(res));
    const char *q =
        "{\"id\":\"support\",\"policy\":\"longest-idle\",\"members\":[{\"agent\":\"a1\"}]}";
    if (sb_queue_put(eng, id, q, strlen(q), res)) diag("queue: %s", sb_result_message(res));
}

static int call(const char *acct, const char *id, int answer)
{
    char json[256];
    snprintf(json, sizeof json,
             "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"support\",\"caller\":"
             "\"+442079460%03d\"}",
             id, rand() % 1000);
    if (ev(acct, json)) return -1;
    now_ms += 3000;
    return finish(acct, id, answer ? "a1" : NULL);
}

/* The preview with these options (JSON text, or NULL), or NULL. */
static json_t *preview(const char *acct, const char *opts)
{
    return doc(sb_retention_preview(eng, acct, opts, opts ? strlen(opts) : 0, res));
}

/* The id of the store's last committed transaction: any write moves it. */
static size_t last_txn(void)
{
    MDB_envinfo info;
    mdb_env_info(eng->env, &info);
    return info.me_last_txnid;
}

/* A backup of the whole data into a new directory: its data.mdb's bytes. */
static unsigned char *snapshot(size_t *n)
{
    static int k;
    char dest[300], path[320];
    snprintf(dest, sizeof dest, "%s-snap%d", dir, k++);
    *n = 0;
    sb_result *r = sb_result_new(); /* res keeps the preview's answer */
    int rc = sb_backup(eng, dest, r);
    if (rc) diag("backup: %s", sb_result_message(r));
    sb_result_free(r);
    if (rc) return NULL;
    snprintf(path, sizeof path, "%s/data.mdb", dest);
    unsigned char *b = slurp(path, n);
    rmtree(dest);
    return b;
}

/* Whether a preview with opts writes nothing: the same last transaction and
** the same whole data after it as before; *rc its code. */
static int writes_nothing(const char *acct, const char *opts, int *rc)
{
    size_t n0, n1, t0 = last_txn();
    unsigned char *b0 = snapshot(&n0);
    *rc = sb_retention_preview(eng, acct, opts, opts ? strlen(opts) : 0, res);
    size_t t1 = last_txn();
    unsigned char *b1 = snapshot(&n1);
    int same = b0 && b1 && n0 == n1 && !memcmp(b0, b1, n0) && t0 == t1;
    if (!same) diag("txn %zu -> %zu, %zu -> %zu bytes", t0, t1, n0, n1);
    free(b0);
    free(b1);
    return same;
}

/* Whether the id is in the preview's sample of count k. */
static int sampled(json_t *p, const char *k, const char *id)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(json_object_get(p, "samples"), k), i, v)
    {
        if (!strcmp(json_string_value(v), id)) return 1;
    }
    return 0;
}

/* The preview's counts are the sweep's. */
static void same_counts(json_t *p, json_t *s, const char *what)
{
    static const char *const keys[] = {"reviewed",   "kept",   "anonymized", "deleted",
                                       "overridden", "failed", NULL};
    int same = p && s;
    for (int i = 0; same && keys[i]; i++)
        if (jint(p, keys[i]) != jint(s, keys[i])) {
            diag("%s: preview %lld, sweep %lld", keys[i], jint(p, keys[i]), jint(s, keys[i]));
            same = 0;
        }
    ok(same, "%s: the preview's counts are the sweep's", what);
}

/* Each test on a data directory of its own: a sweep is of every account. */
static int fresh_engine(const char *name)
{
    sb_close(eng);
    rmtree(dir);
    snprintf(dir, sizeof dir, "/tmp/sb-test-preview-%s-%d", name, (int)getpid());
    eng = open_engine();
    return eng ? 0 : -1;
}

static void test_due(void)
{
    account("mx", NULL);
    ok(sb_policy_put(eng, "mx", "retention/mixed", mixed_policy, strlen(mixed_policy), NULL, res) ==
           0,
       "the mixed policy is uploaded");
    const char *acc = "{\"id\":\"mx\",\"retention\":\"retention/mixed\"}";
    sb_account_put(eng, acc, strlen(acc), res);
    int errors = 0;
    char id[16];
    for (int i = 0; i < 6; i++) {
        snprintf(id, sizeof id, "ans%d", i);
        errors += call("mx", id, 1) != 0;
    }
    for (int i = 0; i < 4; i++) {
        snprintf(id, sizeof id, "ab%d", i);
        errors += call("mx", id, 0) != 0;
    }
    errors += call("mx", "bad0", 1) != 0;
    errors += call("mx", "bad1", 0) != 0;
    errors += hold("mx", "{\"id\":\"h1\",\"call\":\"ab0\",\"reason\":\"litigation\"}") != 0;
    is_int(errors, 0, "12 calls, a hold on ab0");

    int rc;
    ok(writes_nothing("mx", NULL, &rc), "a preview writes nothing");
    json_t *p = doc(rc);
    is_int(jint(p, "reviewed"), 0, "at the next sweep nothing is due");
    is_str(jstr(p, "scope"), "due", "the scope: the due records");
    is_str(jstr(p, "policy"), "retention/mixed", "the account's policy");
    is_int(strlen(jstr(p, "version")), 16, "and its version");
    is_int(jint(p, "now_ms"), now_ms, "now: the engine's clock");
    json_decref(p);

    ok(writes_nothing("mx", "{\"in_days\":11}", &rc), "a preview 11 days ahead writes nothing");
    p = doc(rc);
    is_int(jint(p, "now_ms"), now_ms + 11 * DAY, "its now is 11 days ahead");
    is_int(jint(p, "reviewed"), 12, "in 11 days the 12 records are due");
    is_int(jint(p, "anonymized"), 6, "6 anonymized");
    is_int(jint(p, "deleted"), 3, "3 deleted");
    is_int(jint(p, "overridden"), 1, "1 deletion overridden by the hold");
    is_int(jint(p, "failed"), 2, "2 failures");
    is_int(jint(p, "kept"), 3, "kept: the overridden and the failed");
    json_t *reasons = json_object_get(p, "reasons");
    is_int(jint(reasons, "anonymize: answered, 10 days"), 6, "reasons: the anonymizations'");
    is_int(jint(reasons, "delete: abandoned, 10 days"), 3, "the deletions'");
    is_int(jint(reasons, "keep: legal hold h1: litigation"), 1, "the hold's");
    int failed_reason = 0;
    const char *k;
    json_t *v;
    json_object_foreach(reasons, k, v)
    {
        if (!strncmp(k, "failed: ", 8) && strstr(k, "cannot decide"))
            failed_reason += (int)json_integer_value(v);
    }
    is_int(failed_reason, 2, "the failures', with the policy's error");
    ok(sampled(p, "overridden", "ab0") && sampled(p, "kept", "ab0"), "ab0 sampled as overridden");
    ok(sampled(p, "failed", "bad0") && sampled(p, "failed", "bad1"), "bad0, bad1 as failed");
    ok(sampled(p, "deleted", "ab1") && !sampled(p, "deleted", "ab0"), "ab1 as deleted, ab0 not");
    is_int(json_array_size(json_object_get(json_object_get(p, "samples"), "anonymized")), 6,
           "6 anonymized sampled");
    ok(exists("mx", "ab1"), "ab1 is still there");
    json_t *a = doc(sb_audit_list(eng, "mx", 0, 0, res));
    size_t audited = json_array_size(json_object_get(a, "entries"));
    json_decref(a);

    json_t *small = preview("mx", "{\"in_days\":11,\"sample\":2}");
    is_int(json_array_size(json_object_get(json_object_get(small, "samples"), "anonymized")), 2,
           "sample 2: 2 ids a count");
    json_decref(small);
    json_t *none = preview("mx", "{\"now_ms\":1000}");
    is_int(jint(none, "reviewed"), 0, "now_ms in the past: nothing due");
    json_decref(none);

    /* The live policy state saw nothing of the preview's failures. */
    json_t *pl = doc(sb_policy_list(eng, "mx", res));
    ok(pl && !strstr(sb_result_json(res, NULL), "quarantined"), "no quarantine in the engine");
    json_decref(pl);
    a = doc(sb_audit_list(eng, "mx", 0, 0, res));
    is_int(json_array_size(json_object_get(a, "entries")), audited, "no audit entry was added");
    json_decref(a);

    now_ms += 11 * DAY;
    json_t *p2 = preview("mx", NULL);
    is_int(jint(p2, "reviewed"), 12, "11 days on, the preview at the engine's clock: 12 due");
    json_decref(p2);
    /* The check of writes_nothing sees what the sweep then writes. */
    size_t n0, n1, t0 = last_txn();
    unsigned char *b0 = snapshot(&n0);
    json_t *s = sweep();
    unsigned char *b1 = snapshot(&n1);
    ok(last_txn() != t0 && b0 && b1 && (n0 != n1 || memcmp(b0, b1, n0)),
       "the same check sees the sweep's writes");
    free(b0);
    free(b1);
    same_counts(p, s, "day 11");
    json_decref(s);
    json_decref(p);
    ok(!exists("mx", "ab1") && exists("mx", "ab0"), "the sweep deleted ab1, not ab0 (held)");

    /* A day later the held and the failed come up again. */
    p = preview("mx", "{\"in_days\":1}");
    is_int(jint(p, "reviewed"), 3, "a day later: the held one and the two failed are due");
    now_ms += DAY;
    s = sweep();
    same_counts(p, s, "day 12");
    json_decref(s);
    json_decref(p);
}

static const char *delete_all =
    "local P = {}\n"
    "function P.retain(record, ctx) return { delete = true, reason = 'all gone' } end\n"
    "return P\n";

static void test_other_policy(void)
{
    if (fresh_engine("other")) return;
    account("op", "retention/keep-90-days-then-delete");
    int errors = 0;
    char id[16];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "c%d", i);
        errors += call("op", id, i % 2) != 0;
    }
    errors += hold("op", "{\"id\":\"h2\",\"call\":\"c0\",\"reason\":\"dispute\"}") != 0;
    is_int(errors, 0, "5 calls, a hold on c0");

    int rc;
    char opts[512];
    json_t *src = json_pack("{s:s,s:s}", "policy", "retention/delete-all", "source", delete_all);
    char *text = json_dumps(src, 0);
    snprintf(opts, sizeof opts, "%s", text);
    free(text);
    json_decref(src);
    ok(writes_nothing("op", opts, &rc), "a preview of a source writes nothing");
    json_t *p = doc(rc);
    is_str(jstr(p, "scope"), "all", "a source is previewed over every record");
    is_str(jstr(p, "source"), "given", "the source given");
    is_str(jstr(p, "policy"), "retention/delete-all", "under the name given");
    char want[17];
    json_t *pg = doc(sb_policy_get(eng, "op", "retention/keep-90-days-then-delete", res));
    snprintf(want, sizeof want, "%s", jstr(pg, "version"));
    json_decref(pg);
    ok(strlen(jstr(p, "version")) == 16 && strcmp(jstr(p, "version"), want),
       "its version is the source's, not the account's policy's");
    is_int(jint(p, "reviewed"), 5, "5 reviewed");
    is_int(jint(p, "deleted"), 4, "4 would be deleted");
    is_int(jint(p, "overridden"), 1, "1 held");
    is_int(jint(json_object_get(p, "reasons"), "delete: all gone"), 4, "with the policy's reason");
    json_decref(p);
    ok(sb_policy_get(eng, "op", "retention/delete-all", res) == SB_ENOTFOUND,
       "the source was not stored");

    /* A stored policy by name: every record at its age now. */
    p = preview("op", "{\"policy\":\"retention/anonymize-30-days-delete-2-years\",\"in_days\":31}");
    is_int(jint(p, "reviewed"), 5, "a stored policy by name: every record");
    is_int(jint(p, "anonymized"), 4, "31 days on: 4 anonymized");
    is_int(jint(p, "overridden"), 1, "1 held");
    json_decref(p);

    /* "due" with a source: the records' own review dates (none yet). */
    snprintf(opts, sizeof opts, "{\"scope\":\"due\",\"source\":%s}",
             "\"local P = {} function P.retain(r, c) return { delete = true } end return P\"");
    p = preview("op", opts);
    is_str(jstr(p, "policy"), "retention/keep-90-days-then-delete",
           "a source without a name: the account's");
    ok(strcmp(jstr(p, "version"), want) != 0, "with the source's version");
    is_int(jint(p, "reviewed"), 0, "due: nothing yet");
    json_decref(p);

    /* The account's retention changed: the next sweep reviews every record
    ** with the new one, and so does the preview. */
    const char *acc = "{\"id\":\"op\",\"retention\":\"retention/delete-abandoned-7-days\"}";
    ok(sb_account_put(eng, acc, strlen(acc), res) == 0, "the account's retention changes");
    now_ms += 8 * DAY;
    p = preview("op", NULL);
    is_int(jint(p, "reviewed"), 5, "the pending rescan: every record reviewed");
    is_str(jstr(p, "policy"), "retention/delete-abandoned-7-days", "by the new policy");
    json_t *s = sweep();
    same_counts(p, s, "after a change of retention");
    ok(jint(s, "deleted") > 0, "which deletes some");
    json_decref(s);
    json_decref(p);
}

static const char *loops = "local P = {}\n"
                           "function P.retain(record, ctx) while true do end end\n"
                           "return P\n";

/* A preview refused: its code and field (and, if given, part of its text),
** with nothing written. */
static void refused(const char *acct, const char *opts, int code, const char *field,
                    const char *says, const char *what)
{
    int rc, same = writes_nothing(acct, opts, &rc);
    const char *f = sb_result_field(res), *m = sb_result_message(res);
    int good = rc == code && (!field || (f && !strcmp(f, field))) && (!says || strstr(m, says));
    if (!good) diag("%s: %d, field %s: %s", what, rc, f ? f : "-", m);
    ok(good && same, "%s: refused (%s), nothing written", what, field ? field : "-");
}

static void json_opts(char *buf, size_t cap, const char *policy, const char *source)
{
    json_t *o = json_pack("{s:s,s:s}", "policy", policy, "source", source);
    char *t = json_dumps(o, 0);
    snprintf(buf, cap, "%s", t);
    free(t);
    json_decref(o);
}

static void test_bad_input(void)
{
    if (fresh_engine("bad")) return;
    account("bi", NULL);
    call("bi", "b1", 1);
    char opts[1024];
    refused("nobody", NULL, SB_ENOTFOUND, "account", NULL, "an unknown account");
    refused("bi", "{\"in_days\":-1}", SB_EINVAL, "in_days", NULL, "negative days");
    refused("bi", "{\"in_days\":36601}", SB_EINVAL, "in_days", NULL, "too many days");
    refused("bi", "{\"in_days\":1,\"now_ms\":5}", SB_EINVAL, "in_days", "not both", "both times");
    refused("bi", "{\"now_ms\":-5}", SB_EINVAL, "now_ms", NULL, "a negative now");
    refused("bi", "{\"when\":1}", SB_EINVAL, NULL, "when", "an unknown option");
    refused("bi", "{\"scope\":\"some\"}", SB_EINVAL, "scope", NULL, "an unknown scope");
    refused("bi", "{\"sample\":1001}", SB_EINVAL, "sample", NULL, "a sample too large");
    refused("bi", "{", SB_EINVAL, NULL, NULL, "bad JSON");
    refused("bi", "{\"policy\":\"../x\"}", SB_EINVAL, "policy", NULL, "a bad policy name");
    refused("bi", "{\"policy\":\"retention/none\"}", SB_ENOTFOUND, "policy", "retention/none",
            "a policy that does not exist");
    refused("bi", "{\"policy\":\"longest-idle\"}", SB_EINVAL, "policy", "no retain hook",
            "a policy without retain");
    refused("bi", "{\"source\":\"return {}\"}", SB_EINVAL, "policy", "no retention policy",
            "a source without a name, the account having no retention");
    json_opts(opts, sizeof opts, "retention/x", "local P = {\nfunction P.retain(");
    refused("bi", opts, SB_EPOLICY, "source", "retention/x.lua:", "a source that does not compile");
    json_opts(opts, sizeof opts, "retention/x", "while true do end");
    refused("bi", opts, SB_EPOLICY, "source", NULL, "a source whose top level loops");
    json_opts(opts, sizeof opts, "retention/x", "return { route = function() end }");
    refused("bi", opts, SB_EINVAL, "source", "no retain hook", "a source without retain");
    refused("bi", "{\"source\":\"\"}", SB_EINVAL, "source", NULL, "an empty source");

    /* A hook that loops: each review runs out of its budget and fails, as
    ** in a sweep (which quarantines it after 5 in a row). */
    for (int i = 0; i < 7; i++) {
        char id[16];
        snprintf(id, sizeof id, "l%d", i);
        call("bi", id, 0);
    }
    json_opts(opts, sizeof opts, "retention/loops", loops);
    int rc;
    ok(writes_nothing("bi", opts, &rc), "a looping hook's preview writes nothing");
    json_t *p = doc(rc);
    is_int(jint(p, "reviewed"), 8, "the looping hook: 8 reviewed");
    is_int(jint(p, "failed"), 8, "all 8 failed");
    is_int(jint(p, "kept"), 8, "and kept");
    int budget = 0, quarantined = 0;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(p, "reasons"), k, v)
    {
        if (strstr(k, "instruction")) budget += (int)json_integer_value(v);
        if (strstr(k, "quarantined")) quarantined += (int)json_integer_value(v);
    }
    is_int(budget, 5, "5 ran out of their budget");
    is_int(quarantined, 3, "then quarantined, as in a sweep: 3");
    json_decref(p);
    ok(sb_retention_preview(eng, "bi", NULL, 0, res) == 0, "and the engine previews on");
}

/* An engine that runs only signed policies runs no unsigned source in a
** preview either, as it stores none: signed, it is previewed. */
static void test_signed(void)
{
    if (fresh_engine("signed")) return;
    json_t *kp = doc(sb_policy_keygen(res));
    char pk[80], sk[160];
    snprintf(pk, sizeof pk, "%s", jstr(kp, "public_key"));
    snprintf(sk, sizeof sk, "%s", jstr(kp, "secret_key"));
    json_decref(kp);
    sb_close(eng);
    rmtree(dir);
    sb_config cfg;
    test_engine_config(&cfg, dir, NULL, RECKIT_MAP_SIZE);
    cfg.require_signed_policies = 1;
    cfg.policy_public_key = pk;
    eng = test_open(&cfg, res);
    if (!eng) return;
    const char *acc = "{\"id\":\"sg\"}";
    ok(sb_account_put(eng, acc, strlen(acc), res) == 0, "an engine that runs signed policies only");
    char opts[1024];
    json_opts(opts, sizeof opts, "retention/x", delete_all);
    refused("sg", opts, SB_EPOLICY, "signature", "unsigned", "an unsigned source");
    json_t *signed_src = doc(sb_policy_sign(delete_all, strlen(delete_all), sk, res));
    json_opts(opts, sizeof opts, "retention/x", jstr(signed_src, "source"));
    json_decref(signed_src);
    json_t *p = preview("sg", opts);
    ok(p && jint(p, "reviewed") == 0, "the same source signed is previewed");
    json_decref(p);

    /* Stored, signed, and the account's: a preview without options runs it
    ** (its version read, its signature checked, as a sweep's would be). */
    signed_src = doc(sb_policy_sign(delete_all, strlen(delete_all), sk, res));
    const char *ss = jstr(signed_src, "source");
    ok(sb_policy_put(eng, "sg", "retention/x", ss, strlen(ss), NULL, res) == 0,
       "the signed source stored as the account's retention/x");
    json_decref(signed_src);
    acc = "{\"id\":\"sg\",\"retention\":\"retention/x\"}";
    ok(sb_account_put(eng, acc, strlen(acc), res) == 0, "and set as its retention");
    p = preview("sg", NULL);
    ok(p && jstr(p, "version") && strlen(jstr(p, "version")) == 16,
       "a preview of the account's own signed policy: its version");
    json_decref(p);
}

static const char *slow_delete =
    "local P = {}\n"
    "function P.retain(record, ctx)\n"
    "  local n = 0\n"
    "  for i = 1, 200000 do n = n + 1 end\n"
    "  return { delete = true, reason = 'slow ' .. (n > 0 and 'yes' or 'no') }\n"
    "end\n"
    "return P\n";

/* A preview cut by its time budget carries on from its "next": the calls'
** counts add up to the whole preview's, each record once, whatever the
** machine's speed (how many calls that takes is not what is checked). */
static void test_paged(void)
{
    if (fresh_engine("paged")) return;
    account("pg", NULL);
    int errors = 0;
    char id[16];
    for (int i = 0; i < 40; i++) {
        snprintf(id, sizeof id, "p%02d", i);
        errors += call("pg", id, i % 2) != 0;
    }
    is_int(errors, 0, "40 calls");
    json_t *base = json_pack("{s:s,s:s,s:I,s:i}", "policy", "retention/slow", "source", slow_delete,
                             "now_ms", (json_int_t)now_ms, "sample", 1000);
    char *text = json_dumps(base, 0);
    json_t *whole = preview("pg", text);
    free(text);
    is_int(jint(whole, "deleted"), 40, "the whole preview: 40 deleted");
    ok(json_is_true(json_object_get(whole, "done")) && !json_object_get(whole, "next"),
       "done, no next");
    json_decref(whole);

    json_object_set_new(base, "budget_ms", json_integer(1));
    long long deleted = 0;
    int calls = 0, done = 0, dup = 0;
    json_t *seen = json_object();
    while (!done && calls < 1000) {
        text = json_dumps(base, 0);
        int rc;
        int same = writes_nothing("pg", text, &rc);
        free(text);
        json_t *p = doc(rc);
        if (!p || !same) break;
        calls++;
        deleted += jint(p, "deleted");
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(json_object_get(p, "samples"), "deleted"), i, v)
        {
            dup += json_object_get(seen, json_string_value(v)) != NULL;
            json_object_set_new(seen, json_string_value(v), json_true());
        }
        done = json_is_true(json_object_get(p, "done"));
        json_t *next = json_object_get(p, "next");
        if (!done && !json_is_string(next)) break;
        if (!done) json_object_set(base, "next", next);
        json_decref(p);
    }
    ok(done, "budget_ms 1: the calls, each carrying on from the last one's next, come to the end");
    is_int(deleted, 40, "their counts add up to the whole preview's");
    is_int(json_object_size(seen), 40, "each record in one of them");
    is_int(dup, 0, "none twice");
    json_decref(seen);
    json_decref(base);

    refused("pg", "{\"next\":\"x12\"}", SB_EINVAL, "next", NULL, "a next that is none");
    refused("pg", "{\"next\":\"i1\"}", SB_EINVAL, "next", NULL, "a next of odd length");
    refused("pg", "{\"next\":\"i12\"}", SB_EINVAL, "next", NULL, "a next that is not hex");
    char forged[2 * 120 + 16];
    memset(forged, 'a', 2 * 60);
    forged[2 * 60] = 0;
    char body[sizeof forged + 16];
    snprintf(body, sizeof body, "{\"next\":\"%s\"}", forged);
    refused("pg", body, SB_EINVAL, "next", NULL, "a next made up");
    refused("pg", "{\"budget_ms\":0}", SB_EINVAL, "budget_ms", NULL, "budget_ms 0");
}

/* A preview of the due records walks the review index, which holds every
** account's entries (due time, account, the record's offered time and call
** id): a preview cut short among another account's entries answers a
** "next" that carries nothing of theirs, and carried on from it, counts
** each of its own records once. The clock moves 100 us a look: a budget
** of 1 ms runs out every ten keys or so, mostly among the others'. */
static void test_paged_isolated(void)
{
    if (fresh_engine("paged-iso")) return;
    static const char *const ids[] = {"lo", "me", "hi"}; /* accounts 1, 2, 3 */
    int errors = 0;
    for (int a = 0; a < 3; a++) {
        account(ids[a], NULL);
        errors += sb_policy_put(eng, ids[a], "retention/mixed", mixed_policy, strlen(mixed_policy),
                                NULL, res) != 0;
        char acc[96];
        snprintf(acc, sizeof acc, "{\"id\":\"%s\",\"retention\":\"retention/mixed\"}", ids[a]);
        errors += sb_account_put(eng, acc, strlen(acc), res) != 0;
    }
    char id[32];
    int mine = 0;
    for (int i = 0; i < 400; i++) {
        snprintf(id, sizeof id, "c%04d-+44207946%04d", i, i);
        errors += call(i % 2 ? "hi" : "lo", id, 1) != 0;
        if (i % 40 == 0) {
            snprintf(id, sizeof id, "m%02d", mine++);
            errors += call("me", id, 1) != 0;
        }
    }
    is_int(errors, 0, "400 calls of accounts lo and hi, %d of me among them", mine);
    json_t *base = json_pack("{s:I,s:i,s:i}", "now_ms", (json_int_t)(now_ms + 11 * DAY), "sample",
                             1000, "budget_ms", 1);
    long long reviewed = 0;
    int calls = 0, done = 0, leaked = 0;
    char *first = NULL;
    while (!done && calls < 10000) {
        char *text = json_dumps(base, 0);
        mono_step_ns = 100000;
        json_t *p = preview("me", text);
        mono_step_ns = 0;
        free(text);
        if (!p) break;
        calls++;
        reviewed += jint(p, "reviewed");
        done = json_is_true(json_object_get(p, "done"));
        const char *next = json_string_value(json_object_get(p, "next"));
        if (!done && !next) break;
        /* Sealed, nothing of lo's or hi's (accounts 1 and 3) in it as there
        ** was in the clear before: after "i" and a due time's 8 bytes, an
        ** account's number (4). A sealed one begins with its nonce, whose
        ** last 8 bytes are a counter, in the clear: looked for after it. */
        const char *sealed_part = next && strlen(next) > 48 ? next + 48 : next;
        if (next && (strstr(sealed_part, "00000001") || strstr(sealed_part, "00000003"))) {
            if (!leaked++) diag("next %s", next);
        }
        if (next && !first) first = strdup(next);
        if (next) json_object_set_new(base, "next", json_string(next));
        json_decref(p);
    }
    ok(done, "budget_ms 1: carried on from each next, the preview comes to the end (%d calls)",
       calls);
    is_int(reviewed, mine, "it reviewed me's %d records, each once", mine);
    is_int(leaked, 0, "no next held another account's number in the clear");
    ok(first != NULL, "a preview stopped by its budget answered a next");
    if (first) {
        /* Only the account it was made for can carry on from it, unchanged,
        ** with the scope it was made for. */
        char body[512];
        snprintf(body, sizeof body, "{\"now_ms\":%lld,\"next\":\"%s\"}",
                 (long long)(now_ms + 11 * DAY), first);
        json_t *p = preview("me", body);
        ok(p != NULL, "me carries on from its first next again");
        json_decref(p);
        refused("lo", body, SB_EINVAL, "next", "this account", "me's next given by lo");
        refused("hi", body, SB_EINVAL, "next", "this account", "me's next given by hi");
        char *at = strstr(body, first);
        at[10] = at[10] == '0' ? '1' : '0';
        refused("me", body, SB_EINVAL, "next", NULL, "a next with one digit changed");
        at[10] = first[10];
        snprintf(body, sizeof body, "{\"now_ms\":%lld,\"scope\":\"all\",\"next\":\"%s\"}",
                 (long long)(now_ms + 11 * DAY), first);
        refused("me", body, SB_EINVAL, "next", "scope", "an index next for scope all");
        free(first);
    }
    json_decref(base);
}

int main(void)
{
    srand(7);
    if (start_engine("retention_preview")) return done_testing();
    test_due();
    test_other_policy();
    test_bad_input();
    test_paged();
    test_paged_isolated();
    test_signed();
    return end_engine();
}
