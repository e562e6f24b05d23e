/*
** test_withheld.c — calls from withheld numbers (CLIR, SIP "anonymous")
** through the library: an offer without a caller is taken from sb_submit
** (NULL or "") and sb_submit_json (absent, null or ""), an invalid caller
** is still refused and told how to say "withheld"; the live call shows no
** caller and its policy sees call.caller == nil; caller history links no
** two withheld calls and takes no called number for a caller; the record
** has no caller pseudonym, its called number is indexed as called; access
** and erasure requests, holds, anonymization and reviews work on such
** records, which never come back as a number's caller.
*/
#include "engine.h"  /* DB_RIDX: the pseudonym index itself */
#include "records.h" /* ROLE_CALLER, ROLE_CALLED */
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"
#include "reckit.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define DAY 86400000LL
#define KNOWN "+442079461001"   /* a caller who gives their number */
#define DIALLED "+442079469001" /* a number withheld callers dial */

/* Ring attrs.want when free, else the agent this caller last spoke to,
** else the agent listed last. A call with attrs.probe is rejected with
** what the policy sees of its numbers (and attrs.ticket goes in the
** store, which refuses a call's own numbers). */
static const char *route_src =
    "local P = {}\n"
    "function P.route(call, agents, ctx)\n"
    "  if call.attrs.probe then\n"
    "    if call.attrs.ticket then ctx.set('ticket', call.attrs.ticket) end\n"
    "    return { reject = 'caller ' .. type(call.caller) .. ', called ' .. type(call.called) ..\n"
    "      ', previous ' .. type(call.previous_agent) }\n"
    "  end\n"
    "  local want = call.attrs.want or call.previous_agent\n"
    "  for _, a in ipairs(agents) do\n"
    "    if a.id == want then return { ring = a.id } end\n"
    "  end\n"
    "  if #agents == 0 then return { wait = 5 } end\n"
    "  return { ring = agents[#agents].id }\n"
    "end\n"
    "return P\n";

/* Erasure requests delete, saying by which role the number was found. */
static const char *erase_src =
    "local P = {}\n"
    "function P.retain(record, ctx)\n"
    "  if record.age_days < 90 then return { keep = true, review_in_days = 90 - record.age_days } "
    "end\n"
    "  return { delete = true, reason = 'older than 90 days' }\n"
    "end\n"
    "function P.erase(record, request, ctx)\n"
    "  return { delete = true, reason = 'erasure as ' .. request.role }\n"
    "end\n"
    "return P\n";

/* Account id with agents alice, bob and carol in queue support (routed by
** route_src) and retention policy `retention` (NULL: none). 0 or -1. */
static int account(const char *id, const char *retention)
{
    char json[512];
    snprintf(json, sizeof json, "{\"id\":\"%s\"%s%s%s}", id, retention ? ",\"retention\":\"" : "",
             retention ? retention : "", retention ? "\"" : "");
    if (sb_account_put(eng, json, strlen(json), res) ||
        sb_policy_put(eng, id, "route", route_src, strlen(route_src), NULL, res)) {
        diag("account %s: %s", id, sb_result_message(res));
        return -1;
    }
    return support_team(id, "route");
}

/* The first action of this result of that type for call, or NULL. */
static const sb_action *action(sb_action_type type, const char *call)
{
    for (size_t i = 0; i < sb_result_count(res); i++) {
        const sb_action *a = sb_result_action(res, i);
        if (a->type == type && a->call_id && !strcmp(a->call_id, call)) return a;
    }
    return NULL;
}

/* The agent this result rings for call, or "". */
static const char *rung(const char *call)
{
    const sb_action *a = action(SB_ACT_RING, call);
    return a ? a->agent_id : "";
}

/* The reason this result rejects call for, or "". */
static const char *rejected(const char *call)
{
    const sb_action *a = action(SB_ACT_REJECT, call);
    return a && a->reason ? a->reason : "";
}

/* A number as an offer's field: "" leaves the field out, NULL is JSON null. */
static void number_field(char *out, size_t cap, const char *key, const char *number)
{
    if (!number)
        snprintf(out, cap, ",\"%s\":null", key);
    else if (number[0])
        snprintf(out, cap, ",\"%s\":\"%s\"", key, number);
    else
        out[0] = 0;
}

/* Offer call (caller and called as number_field takes them; attrs a JSON
** object or NULL); the agent it rings ("" for none), copied. */
static const char *offer(const char *acct, const char *id, const char *caller, const char *called,
                         const char *attrs)
{
    static char agent[SB_ID_MAX + 1];
    char json[512], from[64], to[64];
    number_field(from, sizeof from, "caller", caller);
    number_field(to, sizeof to, "called", called);
    snprintf(json, sizeof json,
             "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"support\"%s%s%s%s}", id, from, to,
             attrs ? ",\"attrs\":" : "", attrs ? attrs : "");
    agent[0] = 0;
    if (ev(acct, json) == 0) snprintf(agent, sizeof agent, "%s", rung(id));
    return agent;
}

/* Offer and end it: answered by whoever rang (talk 60 s), or abandoned
** when nobody did. The agent who answered, or "". */
static const char *whole(const char *acct, const char *id, const char *caller, const char *called,
                         const char *attrs)
{
    static char agent[SB_ID_MAX + 1];
    snprintf(agent, sizeof agent, "%s", offer(acct, id, caller, called, attrs));
    now_ms += 2000;
    if (finish(acct, id, agent)) agent[0] = 0;
    return agent;
}

/* Every agent of the account paused (calls wait) or available. */
static void agents_status(const char *acct, const char *status)
{
    static const char *const agents[] = {"alice", "bob", "carol"};
    for (int i = 0; i < 3; i++) {
        char json[128];
        snprintf(json, sizeof json,
                 "{\"type\":\"agent_status\",\"agent\":\"%s\",\"status\":\"%s\"}", agents[i],
                 status);
        ev(acct, json);
    }
}

/* --- offers ----------------------------------------------------------------- */

static void test_offers(void)
{
    sb_event e = {.type = SB_EV_OFFER, .account = "wh", .call_id = "s1", .queue_id = "support"};
    ok(sb_submit(eng, &e, res) == 0, "sb_submit: an offer with caller NULL is a withheld call (%s)",
       sb_result_message(res));
    is_str(rung("s1"), "carol", "and it is routed (the agent listed last)");
    e.call_id = "s2";
    e.caller = "";
    ok(sb_submit(eng, &e, res) == 0, "sb_submit: caller \"\" is withheld too (%s)",
       sb_result_message(res));
    e.call_id = "s3";
    e.caller = "12345";
    ok(sb_submit(eng, &e, res) == SB_EINVAL && sb_result_field(res) &&
           !strcmp(sb_result_field(res), "caller"),
       "sb_submit: an invalid caller is still refused, naming the field");
    ok(strstr(sb_result_message(res), "E.164") && strstr(sb_result_message(res), "withheld"),
       "and the message says how to offer a withheld call (%s)", sb_result_message(res));
    ok(sb_call_get(eng, "wh", "s3", res) == SB_ENOTFOUND, "the refused offer made no call");

    static const struct {
        const char *name, *json;
        int rc;
    } cases[] = {
        {"no caller", "{\"type\":\"offer\",\"call\":\"j1\",\"queue\":\"support\"}", 0},
        {"caller null",
         "{\"type\":\"offer\",\"call\":\"j2\",\"queue\":\"support\",\"caller\":null}", 0},
        {"caller \"\"",
         "{\"type\":\"offer\",\"call\":\"j3\",\"queue\":\"support\",\"caller\":\"\"}", 0},
        {"caller 'anonymous'",
         "{\"type\":\"offer\",\"call\":\"j4\",\"queue\":\"support\",\"caller\":\"anonymous\"}",
         SB_EINVAL},
        {"caller 42", "{\"type\":\"offer\",\"call\":\"j5\",\"queue\":\"support\",\"caller\":42}",
         SB_EINVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = sb_submit_json(eng, "wh", cases[i].json, strlen(cases[i].json), res);
        is_int(rc, cases[i].rc, "sb_submit_json, %s: %s", cases[i].name,
               rc ? sb_result_message(res) : "taken");
    }
    const char *bad =
        "{\"type\":\"offer\",\"call\":\"j6\",\"queue\":\"support\",\"caller\":\"0301\"}";
    sb_submit_json(eng, "wh", bad, strlen(bad), res);
    ok(strstr(sb_result_message(res), "withheld") != NULL,
       "sb_submit_json's message for an invalid caller says how to offer a withheld call too (%s)",
       sb_result_message(res));

    /* A live withheld call shows no caller; its called number it shows. */
    offer("wh", "s4", "", DIALLED, NULL);
    json_t *c = doc(sb_call_get(eng, "wh", "s4", res));
    ok(c && !json_object_get(c, "caller"), "a live withheld call shows no caller (%s)",
       sb_result_json(res, NULL));
    is_str(jstr(c, "called"), DIALLED, "and the number it dialled");
    json_decref(c);
    static const char *const live[] = {"s1", "s2", "s4", "j1", "j2", "j3"};
    int ended = 0;
    for (size_t i = 0; i < sizeof live / sizeof live[0]; i++)
        ended += finish("wh", live[i], NULL) == 0;
    is_int(ended, 6, "the withheld calls end (abandoned)");
    c = doc(sb_call_get(eng, "wh", "s4", res));
    is_str(jstr(c, "state"), "ended", "an ended withheld call reads from its record");
    ok(c && !json_object_get(c, "caller") && !json_object_get(c, "called"),
       "which shows no number, as every record");
    json_decref(c);
}

/* --- what the policy sees ------------------------------------------------------------ */

static void test_policy_view(void)
{
    offer("wh", "p1", "", "", "{\"probe\":true}");
    is_str(rejected("p1"), "caller nil, called nil, previous nil",
           "a withheld caller is nil to the policy, and has no previous agent");
    offer("wh", "p2", NULL, DIALLED, "{\"probe\":true}");
    is_str(rejected("p2"), "caller nil, called string, previous nil",
           "with a called number: caller nil, called a string");
    /* No number of its own: digits in the store and in attributes are not
    ** taken for one. */
    offer("wh", "p3", "", "", "{\"probe\":true,\"ticket\":\"5550001234567\"}");
    is_str(rejected("p3"), "caller nil, called nil, previous nil",
           "ctx.set of digits is not refused as the call's own number");
    json_t *c = doc(sb_call_get(eng, "wh", "p3", res));
    is_str(jstr(json_object_get(c, "attrs"), "ticket"), "5550001234567",
           "and the attribute stays readable in the record (not sealed as a number)");
    json_decref(c);
}

/* --- caller history ---------------------------------------------------------------- */

static void test_history(void)
{
    is_str(whole("wh", "h1", KNOWN, "", "{\"want\":\"bob\"}"), "bob",
           "a known caller talks to bob");
    is_str(whole("wh", "h2", KNOWN, "", NULL), "bob",
           "and next time rings bob again (caller history)");
    is_str(whole("wh", "w1", "", "", "{\"want\":\"alice\"}"), "alice",
           "a withheld caller talks to alice");
    is_str(whole("wh", "w2", "", "", NULL), "carol",
           "the next withheld caller is not taken for the same person: no previous agent");
    is_str(whole("wh", "w3", NULL, DIALLED, "{\"want\":\"alice\"}"), "alice",
           "a withheld caller dialling " DIALLED " talks to alice");
    is_str(whole("wh", "f1", DIALLED, "", NULL), "carol",
           "a call from " DIALLED " has no previous agent: it was only ever dialled");
}

/* --- the pseudonym index ------------------------------------------------------------- */

typedef struct ridx_seen {
    int entries;      /* of the account */
    int empty;        /* keyed by the pseudonym of "" */
    int as_caller[2]; /* of KNOWN, DIALLED in the caller role */
    int as_called[2]; /* in the called role */
    int withheld;     /* of withheld calls (ids s*, j*, p*, w*) */
} ridx_seen;

/* Tally an index entry of either layout (ctx: the seen, the pseudonyms). */
typedef struct ridx_tally {
    ridx_seen *s;
    int o; /* ridxt's keys: the period (2 bytes) after the account */
    uint8_t empty[16], num[2][16];
} ridx_tally;

static void ridx_count(const uint8_t *key, size_t kl, const MDB_val *v, void *arg)
{
    ridx_tally *c = arg;
    if (kl < 30u + c->o) return;
    const uint8_t *k = key + c->o;
    c->s->entries++;
    c->s->empty += !memcmp(k + 4, c->empty, 16);
    for (int i = 0; i < 2; i++)
        if (!memcmp(k + 4, c->num[i], 16)) {
            c->s->as_caller[i] += k[20] == ROLE_CALLER;
            c->s->as_called[i] += k[20] == ROLE_CALLED;
        }
    c->s->withheld += strchr("sjpw", k[29]) != NULL;
}

static int ridx_scan(const char *acct, ridx_seen *s)
{
    ridx_tally c = {.s = s};
    memset(s, 0, sizeof *s);
    if (pseudonym_of(acct, "", c.empty) || pseudonym_of(acct, KNOWN, c.num[0]) ||
        pseudonym_of(acct, DIALLED, c.num[1]) || acct_entries(acct, DB_RIDX, ridx_count, &c) < 0)
        return -1;
    c.o = 2;
    return acct_entries(acct, DB_RIDXT, ridx_count, &c) < 0 ? -1 : 0;
}

static void test_index(void)
{
    ridx_seen s;
    ok(ridx_scan("wh", &s) == 0, "the pseudonym index read");
    is_int(s.empty, 0, "no entry is keyed by the pseudonym of an empty number");
    is_int(s.as_caller[0], 2, KNOWN " is indexed as the caller of h1 and h2");
    is_int(s.as_called[1], 3, DIALLED " is indexed as called by s4, p2 and w3");
    is_int(s.as_caller[1], 1, "and as caller only by f1, the call from it");
    is_int(s.withheld, 3, "withheld calls have entries only for their called number");
    is_int(s.entries, 6, "6 entries in all");
}

/* --- access requests ----------------------------------------------------------------- */

static void test_export(void)
{
    json_t *d = doc(sb_records_export(eng, "wh", DIALLED, SB_EXPORT_JSON, res));
    json_t *recs = json_object_get(d, "records");
    is_int(json_array_size(recs), 4, "access request for " DIALLED ": s4, p2, w3 and f1");
    int called = 0, caller = 0;
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r)
    {
        if (!strcmp(jstr(r, "id"), "f1"))
            caller += !strcmp(jstr(r, "role"), "caller") && !strcmp(jstr(r, "caller"), DIALLED);
        else
            called += !strcmp(jstr(r, "role"), "called") &&
                      json_is_null(json_object_get(r, "caller")) &&
                      !strcmp(jstr(r, "called"), DIALLED);
    }
    is_int(called, 3, "the withheld calls to it: role called, caller null");
    is_int(caller, 1, "the call from it: role caller");
    json_decref(d);
    d = doc(sb_records_export(eng, "wh", DIALLED, SB_EXPORT_CSV, res));
    const char *csv = jstr(d, "csv");
    ok(strstr(csv, "\r\nw3,called,," DIALLED ",support,") != NULL,
       "CSV: a withheld caller is an empty field (%s)", csv);
    json_decref(d);
    d = doc(sb_records_export(eng, "wh", KNOWN, SB_EXPORT_JSON, res));
    is_int(json_array_size(json_object_get(d, "records")), 2,
           "access request for " KNOWN ": its own 2 calls, no withheld one");
    json_decref(d);
    ok(sb_records_export(eng, "wh", "", SB_EXPORT_JSON, res) == SB_EINVAL,
       "an access request for no number is refused");
    ok(sb_erase(eng, "wh", "", res) == SB_EINVAL, "and so is an erasure request");
}

/* --- erasure, holds, reviews ------------------------------------------------------------ */

static void test_erasure(void)
{
    const char *acct = "{\"id\":\"whe\",\"retention\":\"ret\"}";
    ok(account("whe", NULL) == 0 &&
           sb_policy_put(eng, "whe", "ret", erase_src, strlen(erase_src), NULL, res) == 0 &&
           sb_account_put(eng, acct, strlen(acct), res) == 0,
       "account whe with a retention policy whose erase hook names the role");
    whole("whe", "w1", "", "", NULL);
    whole("whe", "w2", "", DIALLED, NULL);
    whole("whe", "k1", KNOWN, DIALLED, NULL);
    json_t *d = doc(sb_erase(eng, "whe", KNOWN, res));
    is_int(jint(d, "deleted"), 1, "erasure of " KNOWN ": its one call deleted");
    json_decref(d);
    ok(exists("whe", "w1") && exists("whe", "w2") && !exists("whe", "k1"),
       "the withheld calls stay");
    d = doc(sb_erase(eng, "whe", DIALLED, res));
    is_int(jint(d, "deleted"), 1, "erasure of " DIALLED ": the withheld call to it deleted");
    is_int(json_integer_value(
               json_object_get(json_object_get(d, "reasons"), "delete: erasure as called")),
           1, "found as the called number");
    json_decref(d);
    ok(exists("whe", "w1") && !exists("whe", "w2"), "w2 is gone, w1 (no number) stays");

    /* A withheld call live when the request comes is erased when it ends. */
    agents_status("whe", "paused");
    offer("whe", "w3", "", DIALLED, NULL);
    d = doc(sb_erase(eng, "whe", DIALLED, res));
    is_int(jint(d, "live"), 1,
           "an erasure of " DIALLED " while a withheld call to it waits: live 1");
    json_decref(d);
    now_ms += 1000;
    finish("whe", "w3", NULL);
    ok(!exists("whe", "w3"), "its record is erased as it is written");
    is_int(audit_matching("whe", NULL, "erasure as called", NULL, 0), 2,
           "audit: both erasures found it as called");
    is_int(audit_matching("whe", NULL, "erasure as caller", NULL, 0), 1,
           "and the one of " KNOWN " as caller");

    /* A hold on the number keeps a withheld call to it. */
    ok(hold("whe", "{\"id\":\"hd\",\"number\":\"" DIALLED "\",\"reason\":\"dispute\"}") == 0,
       "a hold on " DIALLED);
    whole("whe", "w4", "", DIALLED, NULL);
    d = doc(sb_erase(eng, "whe", DIALLED, res));
    is_int(jint(d, "held"), 1, "the erasure is held for the withheld call to it");
    json_decref(d);
    ok(exists("whe", "w4"), "which stays");
    ok(sb_hold_release(eng, "whe", "hd", res) == 0, "hold released");
    is_int(swept("erased", NULL), 1, "the next sweep erases it");
    ok(!exists("whe", "w4"), "w4 is gone");

    /* Reviews: a record without any pseudonym is reviewed and deleted. */
    now_ms += 91 * DAY;
    ok(swept("deleted", NULL) >= 1, "at 91 days the sweep deletes what is left");
    ok(!exists("whe", "w1"), "w1, the withheld call without a number, too");
    ridx_seen s;
    ok(ridx_scan("whe", &s) == 0 && s.entries == 0, "no index entry is left (%d)", s.entries);
}

static void test_anonymize(void)
{
    ok(account("wha", "retention/anonymize-30-days-delete-2-years") == 0,
       "account wha anonymizing at 30 days");
    whole("wha", "w1", "", DIALLED, NULL);
    whole("wha", "w2", "", "", NULL);
    json_t *d = doc(sb_records_export(eng, "wha", DIALLED, SB_EXPORT_JSON, res));
    is_int(json_array_size(json_object_get(d, "records")), 1, "before: " DIALLED " finds w1");
    json_decref(d);
    now_ms += 31 * DAY;
    is_int(swept("anonymized", NULL), 2, "day 31: both withheld calls anonymized");
    d = doc(sb_records_export(eng, "wha", DIALLED, SB_EXPORT_JSON, res));
    is_int(json_array_size(json_object_get(d, "records")), 0, "after: it finds nothing");
    json_decref(d);
    ridx_seen s;
    ok(ridx_scan("wha", &s) == 0 && s.entries == 0, "and no index entry is left (%d)", s.entries);
    json_t *c = doc(sb_call_get(eng, "wha", "w1", res));
    ok(json_is_true(json_object_get(c, "anonymized")), "w1 reads as anonymized");
    json_decref(c);
}

int main(void)
{
    if (start_engine("withheld")) return done_testing();
    ok(account("wh", NULL) == 0, "account wh");
    test_offers();
    test_policy_view();
    test_history();
    test_index();
    test_export();
    test_erasure();
    test_anonymize();
    return end_engine();
}
