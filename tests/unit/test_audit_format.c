/*
** test_audit_format.c — how the retention audit log is stored (format 12):
** a value's entries name the strings they share with its earlier entries
** (action, reason, policy, version) by number, so a sweep's entries take
** about 40 bytes each; a transaction whose entries bring more strings than
** one value defines goes on in the next value (an erasure request's, one
** transaction, shows it); and values written before (version 1, every
** string spelled out in every entry) list and expire beside the new ones,
** with the numbers going on after them.
*/
#include "engine.h"
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"
#include "reckit.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define DAY 86400000LL

/* Kept a day, then deleted: records whose id starts with 'u' with a reason
** of their own, the others with one they share. */
static const char *policy = "local P = {}\n"
                            "function P.retain(record, ctx)\n"
                            "  if record.age_days < 1 then\n"
                            "    return { keep = true, review_in_days = 1, reason = 'new' }\n"
                            "  end\n"
                            "  if string.sub(record.id, 1, 1) == 'u' then\n"
                            "    return { delete = true, reason = 'unique ' .. record.id }\n"
                            "  end\n"
                            "  return { delete = true, reason = 'routine' }\n"
                            "end\n"
                            "function P.erase(record, request, ctx)\n"
                            "  return { delete = true, reason = 'erased ' .. record.id }\n"
                            "end\n"
                            "return P\n";

/* The account's audit values: their bytes, and how many are of version 2. */
typedef struct values {
    size_t bytes;
    int v2;
} values;

static void value_of(const uint8_t *k, size_t kl, const MDB_val *v, void *arg)
{
    values *s = arg;
    s->bytes += v->mv_size;
    s->v2 += v->mv_size && ((const uint8_t *)v->mv_data)[0] == 2;
}

/* A value of version 1 as Switchboard wrote them before format 12: two
** entries, every string spelled out, at sequence number seq. */
static int put_v1_value(const char *acct, uint64_t seq, int64_t t)
{
    MDB_txn *txn;
    acct_rec a;
    if (eng_read_account(eng, acct, &txn, &a, res)) return -1;
    eng_read_end(eng, txn);
    wbuf w = {0};
    wb_u8(&w, 1);
    wb_u32(&w, 2);
    for (int i = 0; i < 2; i++) {
        wb_i64(&w, t);
        wb_str(&w, i ? "old2" : "old1");
        wb_i64(&w, t - DAY);
        wb_str(&w, "anonymize");
        wb_str(&w, "anonymize");
        wb_u8(&w, 0);
        wb_str(&w, i ? "older than 30 days" : "an old reason");
        wb_u8(&w, 2); /* review */
        wb_str(&w, "perrec");
        wb_str(&w, "0123456789abcdef");
    }
    uint8_t k[12];
    put_be32(k, a.num);
    put_be64(k + 4, seq);
    int rc = w.err ? -1 : store_put(DB_AUDIT, k, 12, w.b.p, w.b.len);
    buf_free(&w.b);
    return rc;
}

/* Abandoned calls r1..rN and u1..uN of account acct. */
static void calls(const char *acct, int n)
{
    char json[256], id[16];
    for (int i = 1; i <= 2 * n; i++) {
        snprintf(id, sizeof id, "%c%d", i <= n ? 'r' : 'u', i <= n ? i : i - n);
        snprintf(json, sizeof json,
                 "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"support\","
                 "\"caller\":\"+4420794600%02d\"}",
                 id, i % 100);
        ev(acct, json);
        now_ms += 1000;
        finish(acct, id, NULL);
    }
}

int main(void)
{
    if (start_engine("audit_format")) return done_testing();
    ok(sb_account_put(eng, "{\"id\":\"a\"}", 10, res) == 0, "account a");
    ok(sb_policy_put(eng, "a", "perrec", policy, strlen(policy), NULL, res) == 0,
       "a retention policy with a reason of its own for some records");
    const char *acct = "{\"id\":\"a\",\"retention\":\"perrec\"}";
    ok(sb_account_put(eng, acct, strlen(acct), res) == 0, "a's retention policy");
    ok(support_team("a", "longest-idle") == 0, "a's queue");
    calls("a", 60);
    now_ms += 2 * DAY;
    is_int(swept("deleted", NULL), 120, "a sweep deletes the 120 records");

    /* What the log says, entry by entry. */
    json_t *d = doc(sb_audit_list(eng, "a", 0, 1000, res));
    json_t *es = json_object_get(d, "entries"), *e;
    size_t i;
    int routine = 0, unique = 0, wrong = 0, policy_ok = 0;
    const char *version = NULL;
    long long last = 0;
    json_array_foreach(es, i, e)
    {
        char want[64];
        snprintf(want, sizeof want, "unique %s", jstr(e, "call"));
        if (!strcmp(jstr(e, "reason"), "routine") && jstr(e, "call")[0] == 'r')
            routine++;
        else if (!strcmp(jstr(e, "reason"), want))
            unique++;
        else
            wrong++;
        if (!strcmp(jstr(e, "policy"), "perrec") && !strcmp(jstr(e, "action"), "delete") &&
            !strcmp(jstr(e, "source"), "review") && jint(e, "ended_ms") > 0)
            policy_ok++;
        if (!version) version = jstr(e, "version");
        if (strcmp(jstr(e, "version"), version) || jint(e, "seq") != last + 1) wrong++;
        last = jint(e, "seq");
    }
    is_int(routine, 60, "60 entries with the reason they share");
    is_int(unique, 60, "60 with a reason of their own, each its record's");
    is_int(wrong, 0, "none other, one policy version, numbers one after another");
    is_int(policy_ok, 120, "each names the policy, the action, the source and the call's end");
    ok(version && strlen(version) == 16, "and the policy's version");
    json_decref(d);

    values vs = {0};
    int nv = acct_entries("a", DB_AUDIT, value_of, &vs);
    ok(nv >= 3 && vs.v2 == nv, "the sweep's entries are in %d values, all of version 2", nv);
    ok(vs.bytes / 120 <= 60, "about %zu bytes an entry (spelled out, about 170)", vs.bytes / 120);

    /* A value written before format 12 after them, then another sweep's. */
    int64_t t_old = now_ms;
    ok(put_v1_value("a", (uint64_t)last + 1, t_old) == 0, "a value of version 1 after them");
    calls("a", 1);
    now_ms += 2 * DAY;
    is_int(swept("deleted", NULL), 2, "another sweep deletes 2 more");
    d = doc(sb_audit_list(eng, "a", (uint64_t)last, 1000, res));
    es = json_object_get(d, "entries");
    is_int((long long)json_array_size(es), 4,
           "the log goes on: the value of version 1's two, then 2");
    e = json_array_get(es, 0);
    ok(e && jint(e, "seq") == last + 1 && !strcmp(jstr(e, "call"), "old1") &&
           !strcmp(jstr(e, "reason"), "an old reason") && jint(e, "t_ms") == t_old &&
           jint(e, "ended_ms") == t_old - DAY && !strcmp(jstr(e, "action"), "anonymize") &&
           !strcmp(jstr(e, "policy"), "perrec") && !strcmp(jstr(e, "version"), "0123456789abcdef"),
       "an entry of version 1 reads as it was written");
    e = json_array_get(es, 1);
    ok(e && !strcmp(jstr(e, "call"), "old2") && !strcmp(jstr(e, "reason"), "older than 30 days"),
       "and the next");
    e = json_array_get(es, 2);
    ok(e && jint(e, "seq") == last + 3 && !strcmp(jstr(e, "reason"), "routine"),
       "the new entries are numbered after them");
    json_decref(d);

    /* An erasure request's records are decided in one transaction: 60
    ** reasons of their own are more strings than one value defines. */
    const char *eacct = "{\"id\":\"e\",\"retention\":\"perrec\"}";
    ok(sb_account_put(eng, "{\"id\":\"e\"}", 10, res) == 0 &&
           sb_policy_put(eng, "e", "perrec", policy, strlen(policy), NULL, res) == 0 &&
           sb_account_put(eng, eacct, strlen(eacct), res) == 0 &&
           support_team("e", "longest-idle") == 0,
       "account e, with an erase hook giving each record a reason of its own");
    for (int k = 1; k <= 60; k++) {
        char json[160];
        snprintf(json, sizeof json,
                 "{\"type\":\"offer\",\"call\":\"e%d\",\"queue\":\"support\","
                 "\"caller\":\"+442079460001\"}",
                 k);
        ev("e", json);
        snprintf(json, sizeof json, "e%d", k);
        finish("e", json, NULL);
    }
    d = doc(sb_erase(eng, "e", "+442079460001", res));
    is_int(d ? jint(d, "deleted") : -1, 60, "an erasure request deletes its 60 records");
    json_decref(d);
    int erased = 0;
    d = doc(sb_audit_list(eng, "e", 0, 1000, res));
    json_array_foreach(json_object_get(d, "entries"), i, e)
    {
        char want[64];
        snprintf(want, sizeof want, "erased %s", jstr(e, "call"));
        erased += !strcmp(jstr(e, "reason"), want);
    }
    json_decref(d);
    is_int(erased, 60, "each entry with its record's reason");
    values ve = {0};
    nv = acct_entries("e", DB_AUDIT, value_of, &ve);
    ok(nv >= 3 && ve.bytes < 2 * 1500,
       "in %d values of %zu bytes in all: cut for their strings, not their size", nv, ve.bytes);

    /* The audit log's retention removes values of both versions. */
    const char *days = "{\"id\":\"a\",\"retention\":\"perrec\",\"audit_days\":1}";
    ok(sb_account_put(eng, days, strlen(days), res) == 0, "audit entries kept a day");
    now_ms += 3 * DAY;
    is_int(swept("audit_expired", NULL), 124, "a sweep removes all 124 entries");
    is_int(audit_matching("a", NULL, NULL, NULL, 0), 0, "none is left");
    return end_engine();
}
