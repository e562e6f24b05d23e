/*
** test_records.c — call records through the public API: what a record
** holds, numbers and personal attributes sealed (a scan of every file in the
** data directory finds no number after thousands of calls), caller history,
** daily aggregates, access requests (JSON and CSV; each in the audit log,
** refused when its entry cannot be written), erasure requests, legal
** holds, the audit log, account deletion (data key destroyed at once,
** records purged by a sweep).
*/
#include "records.h" /* ret_access_audit: an access request's entry of any count */
#include "switchboard.h"
#include "tap.h"
#define TESTKIT_LOG_KEEP
#include "testkit.h"
#define RECKIT_MAP_SIZE (8 << 20)
#include "reckit.h"

#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const sb_action *find(sb_action_type type, const char *call)
{
    for (size_t i = 0; i < sb_result_count(res); i++) {
        const sb_action *a = sb_result_action(res, i);
        if (a->type == type && (!call || (a->call_id && strcmp(a->call_id, call) == 0))) return a;
    }
    return NULL;
}

/* One whole call: offer (caller NULL: withheld), answered by whoever
** rings, hangup after talk_s. Returns the agent that answered ("" when
** nobody rang). */
static const char *cycle(const char *acct, const char *call, const char *caller, const char *extra,
                         int wait_s, int talk_s)
{
    static char agent[64];
    char json[512];
    snprintf(json, sizeof json,
             "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"support\"%s%s%s%s}", call,
             caller ? ",\"caller\":\"" : "", caller ? caller : "", caller ? "\"" : "",
             extra ? extra : "");
    agent[0] = 0;
    if (ev(acct, json)) return agent;
    const sb_action *a = find(SB_ACT_RING, call);
    if (!a) return agent;
    snprintf(agent, sizeof agent, "%s", a->agent_id);
    now_ms += wait_s * 1000;
    snprintf(json, sizeof json,
             "{\"type\":\"ring_result\",\"call\":\"%s\",\"agent\":\"%s\",\"outcome\":\"answered\"}",
             call, agent);
    ev(acct, json);
    now_ms += talk_s * 1000;
    snprintf(json, sizeof json, "{\"type\":\"hangup\",\"call\":\"%s\"}", call);
    ev(acct, json);
    now_ms += 1000;
    return agent;
}

/* Sticky routing by caller history: ring the agent this caller last spoke
** to when free, else the agent listed last. */
static const char *sticky = "local P = {}\n"
                            "function P.route(call, agents, ctx)\n"
                            "  for _, a in ipairs(agents) do\n"
                            "    if a.id == call.previous_agent then return { ring = a.id } end\n"
                            "  end\n"
                            "  if #agents == 0 then return { wait = 5 } end\n"
                            "  return { ring = agents[#agents].id }\n"
                            "end\n"
                            "return P\n";

static void provision(const char *acct)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"id\":\"%s\",\"personal_attrs\":[\"name\",\"email\"],"
             "\"service_level_seconds\":10}",
             acct);
    ok(sb_account_put(eng, json, strlen(json), res) == 0, "account %s with personal attributes",
       acct);
    ok(sb_policy_put(eng, acct, "sticky", sticky, strlen(sticky), NULL, res) == 0,
       "sticky policy stored (%s)", sb_result_message(res));
    ok(support_team(acct, "sticky") == 0, "agents alice, bob, carol and queue support");
    const char *q = "{\"id\":\"sales\",\"policy\":\"sticky\",\"members\":[{\"agent\":\"alice\"}]}";
    sb_queue_put(eng, acct, q, strlen(q), res);
}

static void test_record_contents(void)
{
    const char *who = cycle("acme", "c1", "+44 20 7946 0001",
                            ",\"called\":\"+442079469999\",\"attrs\":{\"language\":\"en\","
                            "\"name\":\"Jane Doe\",\"email\":\"jane@example.com\"}",
                            4, 60);
    is_str(who, "carol", "c1 answered by carol (no history: the agent listed last)");
    json_t *c = doc(sb_call_get(eng, "acme", "c1", res));
    is_str(jstr(c, "state"), "ended", "the record of c1 is read back");
    is_str(jstr(c, "outcome"), "answered", "outcome answered");
    is_str(jstr(c, "agent"), "carol", "agent carol");
    is_str(jstr(c, "queue"), "support", "queue support");
    ok(json_real_value(json_object_get(c, "wait")) == 4.0, "wait 4 s");
    ok(json_real_value(json_object_get(c, "talk")) == 60.0, "talk 60 s");
    is_int(json_array_size(json_object_get(c, "attempts_detail")), 1, "one ring attempt");
    json_t *att = json_array_get(json_object_get(c, "attempts_detail"), 0);
    is_str(jstr(att, "device"), "softphone", "the attempt's device");
    is_str(jstr(att, "outcome"), "answered", "the attempt's outcome");
    json_t *pv = json_array_get(json_object_get(c, "policy_versions"), 0);
    is_str(jstr(pv, "policy"), "sticky", "the policy that decided");
    is_int(strlen(jstr(pv, "version")), 16, "and its version");
    json_t *attrs = json_object_get(c, "attrs");
    is_str(jstr(attrs, "language"), "en", "gateway attributes kept");
    ok(!json_object_get(attrs, "name") && !json_object_get(attrs, "email"),
       "personal attributes are not in the record's readable part");
    ok(!json_object_get(c, "caller") && !json_object_get(c, "called"),
       "the record shows no number");
    json_decref(c);

    /* A live call shows its numbers to its account (decrypted on read). */
    ev("acme", "{\"type\":\"offer\",\"call\":\"live1\",\"queue\":\"support\","
               "\"caller\":\"+442079460077\",\"attrs\":{\"name\":\"Ann\",\"vip\":true}}");
    c = doc(sb_call_get(eng, "acme", "live1", res));
    is_str(jstr(c, "caller"), "+442079460077", "a live call shows its caller");
    is_str(jstr(json_object_get(c, "attrs"), "name"), "Ann",
           "and all its attributes, personal ones too");
    ok(json_is_true(json_object_get(json_object_get(c, "attrs"), "vip")), "vip attribute too");
    json_decref(c);
    ev("acme", "{\"type\":\"abandon\",\"call\":\"live1\"}");
}

static void test_caller_history(void)
{
    now_ms += 5000;
    const char *who = cycle("acme", "c2", "+442079460001", NULL, 2, 30);
    is_str(who, "carol", "the same caller again rings carol, the agent they last spoke to");
    now_ms += 5000;
    who = cycle("acme", "c3", "+442079460002", NULL, 2, 30);
    is_str(who, "carol", "a new caller has no previous agent");
    ev("acme", "{\"type\":\"agent_status\",\"agent\":\"carol\",\"status\":\"paused\"}");
    who = cycle("acme", "c4", "+442079460001", NULL, 2, 30);
    is_str(who, "bob", "with carol paused, the caller gets someone else");
    ev("acme", "{\"type\":\"agent_status\",\"agent\":\"carol\",\"status\":\"available\"}");
    who = cycle("acme", "c5", "+442079460001", NULL, 2, 30);
    is_str(who, "bob", "and next time sticks to bob, the last one they spoke to");
}

static void test_aggregates(void)
{
    /* Today so far: c1, live1 (abandoned), c2, c3, c4, c5. */
    ev("acme",
       "{\"type\":\"offer\",\"call\":\"r1\",\"queue\":\"nosuch\",\"caller\":\"+15550001\"}");
    json_t *d = doc(sb_aggregates(eng, "acme", NULL, 0, 0, res));
    json_t *days = json_object_get(d, "days");
    json_t *acct = NULL, *support = NULL;
    size_t i;
    json_t *row;
    json_array_foreach(days, i, row)
    {
        if (json_is_null(json_object_get(row, "queue")))
            acct = row;
        else if (!strcmp(jstr(row, "queue"), "support"))
            support = row;
    }
    ok(acct && support, "rows for the account and the queue");
    is_str(jstr(acct, "day"), "2026-01-05", "by day");
    is_int(jint(acct, "offered"), 6, "6 calls offered");
    is_int(jint(acct, "answered"), 5, "5 answered");
    is_int(jint(acct, "abandoned"), 1, "1 abandoned");
    is_int(jint(support, "answered"), 5, "the queue's row agrees");
    ok(json_real_value(json_object_get(acct, "talk_total")) == 180.0, "talk total 180 s");
    is_int(jint(acct, "answered_within_sl"), 5, "all answered within 10 s");
    ok(json_real_value(json_object_get(acct, "service_level")) > 0.83 &&
           json_real_value(json_object_get(acct, "service_level")) < 0.84,
       "service level 5/6");
    json_decref(d);
    d = doc(sb_aggregates(eng, "acme", "sales", 0, 0, res));
    is_int(json_array_size(json_object_get(d, "days")), 0, "no calls in sales");
    json_decref(d);
    ok(sb_aggregates(eng, "acme", "nosuch", 0, 0, res) == SB_ENOTFOUND, "unknown queue");
}

/* --- aggregates of calls that move between queues ------------------------ */

/* Account acct: agents alice and carol available, dave paused; queues sales
** (alice), backup (carol), and q1 -> q2 -> q3 (dave), q1 and q2 overflowing
** after 10 s; a 20 s service level. */
static int moves_account(const char *acct)
{
    char json[512];
    static const char *const agents[] = {"alice", "carol", "dave"};
    static const char *const queues[] = {
        "{\"id\":\"sales\",\"policy\":\"longest-idle\",\"members\":[{\"agent\":\"alice\"}]}",
        "{\"id\":\"backup\",\"policy\":\"longest-idle\",\"members\":[{\"agent\":\"carol\"}]}",
        "{\"id\":\"q3\",\"policy\":\"longest-idle\",\"members\":[{\"agent\":\"dave\"}]}",
        "{\"id\":\"q2\",\"policy\":\"longest-idle\",\"max_wait\":10,\"overflow\":\"q3\","
        "\"members\":[{\"agent\":\"dave\"}]}",
        "{\"id\":\"q1\",\"policy\":\"longest-idle\",\"max_wait\":10,\"overflow\":\"q2\","
        "\"members\":[{\"agent\":\"dave\"}]}"};
    snprintf(json, sizeof json, "{\"id\":\"%s\",\"service_level_seconds\":20}", acct);
    int rc = sb_account_put(eng, json, strlen(json), res);
    for (int i = 0; i < 3 && !rc; i++) {
        snprintf(json, sizeof json,
                 "{\"id\":\"%s\",\"devices\":{\"softphone\":\"sip:%s@pbx.example\"},"
                 "\"status\":\"%s\"}",
                 agents[i], agents[i], i == 2 ? "paused" : "available");
        rc = sb_agent_put(eng, acct, json, strlen(json), res);
    }
    for (int i = 0; i < 5 && !rc; i++)
        rc = sb_queue_put(eng, acct, queues[i], strlen(queues[i]), res);
    if (rc) diag("account %s: %s", acct, sb_result_message(res));
    return rc;
}

/* acct's row of queue (NULL: the account's) on day: exactly these counts
** (offered answered abandoned rejected overflowed within-SL), these times
** (ms: wait, answer wait, talk, max wait), and no other row of that queue. */
static void row_is(const char *acct, const char *queue, const char *day, const int n[6],
                   const long long ms[4], const char *what)
{
    static const char *const counts[] = {"offered",  "answered",   "abandoned",
                                         "rejected", "overflowed", "answered_within_sl"};
    static const char *const times[] = {"wait_total", "answer_wait_total", "talk_total",
                                        "max_wait"};
    json_t *d = doc(sb_aggregates(eng, acct, NULL, 0, 0, res));
    json_t *row = NULL, *x;
    size_t i;
    int rows = 0;
    json_array_foreach(json_object_get(d, "days"), i, x)
    {
        json_t *q = json_object_get(x, "queue");
        if (queue ? json_is_string(q) && !strcmp(json_string_value(q), queue) : json_is_null(q)) {
            rows++;
            if (!strcmp(jstr(x, "day"), day)) row = x;
        }
    }
    char got[256] = "", want[256] = "";
    size_t g = 0, w = 0;
    for (int k = 0; k < 6; k++) {
        g += (size_t)snprintf(got + g, sizeof got - g, "%s %lld ", counts[k], jint(row, counts[k]));
        w += (size_t)snprintf(want + w, sizeof want - w, "%s %d ", counts[k], n[k]);
    }
    for (int k = 0; k < 4; k++) {
        g += (size_t)snprintf(got + g, sizeof got - g, "%s %lld ", times[k],
                              llround(json_number_value(json_object_get(row, times[k])) * 1000));
        w += (size_t)snprintf(want + w, sizeof want - w, "%s %lld ", times[k], ms[k]);
    }
    ok(row && rows == 1 && !strcmp(got, want), "%s: %s's row%s%s", what, queue ? queue : "account",
       row ? "" : " is missing", rows > 1 ? " (and more than one)" : "");
    if (strcmp(got, want)) diag("got  %s\nwant %s", got, want);
    json_decref(d);
}

static void no_row(const char *acct, const char *queue, const char *what)
{
    json_t *d = doc(sb_aggregates(eng, acct, queue, 0, 0, res));
    is_int(json_array_size(json_object_get(d, "days")), 0, "%s: no row for %s", what, queue);
    json_decref(d);
}

static void test_moved_calls(void)
{
    static const char *const day = "2026-01-05";
    char json[256];
#define EV(acct, ...) (snprintf(json, sizeof json, __VA_ARGS__), ev(acct, json))
#define ANSWER(acct, call, agent)                                                                  \
    EV(acct,                                                                                       \
       "{\"type\":\"ring_result\",\"call\":\"%s\",\"agent\":\"%s\",\"outcome\":\"answered\"}",     \
       call, agent)
    /* Answered in sales after 4 s, 50 s of talk, transferred to backup,
    ** answered there 6 s later, 30 s of talk. */
    ok(moves_account("mv1") == 0, "moves: account mv1");
    EV("mv1",
       "{\"type\":\"offer\",\"call\":\"x1\",\"queue\":\"sales\",\"caller\":\"+4420794601\"}");
    now_ms += 4000;
    ANSWER("mv1", "x1", "alice");
    now_ms += 50000;
    EV("mv1", "{\"type\":\"transfer\",\"call\":\"x1\",\"queue\":\"backup\"}");
    now_ms += 6000;
    ANSWER("mv1", "x1", "carol");
    now_ms += 30000;
    EV("mv1", "{\"type\":\"hangup\",\"call\":\"x1\"}");
    row_is("mv1", "sales", day, (int[]){1, 1, 0, 0, 0, 1}, (long long[]){4000, 4000, 50000, 4000},
           "transfer after answer");
    row_is("mv1", "backup", day, (int[]){1, 1, 0, 0, 0, 1}, (long long[]){6000, 6000, 30000, 6000},
           "transfer after answer");
    row_is("mv1", NULL, day, (int[]){1, 1, 0, 0, 0, 1}, (long long[]){4000, 4000, 80000, 4000},
           "transfer after answer");

    /* The same, but the caller hangs up 8 s into backup, still ringing. */
    ok(moves_account("mv5") == 0, "moves: account mv5");
    EV("mv5",
       "{\"type\":\"offer\",\"call\":\"x5\",\"queue\":\"sales\",\"caller\":\"+4420794605\"}");
    now_ms += 4000;
    ANSWER("mv5", "x5", "alice");
    now_ms += 50000;
    EV("mv5", "{\"type\":\"transfer\",\"call\":\"x5\",\"queue\":\"backup\"}");
    now_ms += 8000;
    EV("mv5", "{\"type\":\"abandon\",\"call\":\"x5\"}");
    row_is("mv5", "sales", day, (int[]){1, 1, 0, 0, 0, 1}, (long long[]){4000, 4000, 50000, 4000},
           "transfer after answer, hung up in backup");
    row_is("mv5", "backup", day, (int[]){1, 0, 1, 0, 0, 0}, (long long[]){8000, 0, 0, 8000},
           "transfer after answer, hung up in backup");
    row_is("mv5", NULL, day, (int[]){1, 1, 0, 0, 0, 1}, (long long[]){4000, 4000, 50000, 4000},
           "transfer after answer, hung up in backup");
    json_t *r = doc(sb_call_get(eng, "mv5", "x5", res));
    is_str(jstr(r, "outcome"), "answered", "moves: x5's record says answered, as it was");
    json_decref(r);

    /* A queue's own service level (app_queue's servicelevel): sales 3 s,
    ** backup 10 s, the account 20 s. x1's day again: answered in sales
    ** after 4 s (past sales' 3 s, within the account's 20 s), in backup
    ** after 6 s. Every row took the account's threshold before. */
    int64_t before_mv7 = now_ms; /* put back after: the checks below count on the time */
    ok(moves_account("mv7") == 0, "moves: account mv7");
    ok(sb_queue_put(eng, "mv7",
                    "{\"id\":\"sales\",\"service_level_seconds\":3,\"members\":[{\"agent\":"
                    "\"alice\"}]}",
                    strlen("{\"id\":\"sales\",\"service_level_seconds\":3,\"members\":[{"
                           "\"agent\":\"alice\"}]}"),
                    res) == 0 &&
           sb_queue_put(eng, "mv7",
                        "{\"id\":\"backup\",\"service_level_seconds\":10,\"members\":[{"
                        "\"agent\":\"carol\"}]}",
                        strlen("{\"id\":\"backup\",\"service_level_seconds\":10,\"members\":[{"
                               "\"agent\":\"carol\"}]}"),
                        res) == 0,
       "sales with a 3 s service level, backup with 10 s (%s)", sb_result_message(res));
    EV("mv7",
       "{\"type\":\"offer\",\"call\":\"x7\",\"queue\":\"sales\",\"caller\":\"+4420794607\"}");
    now_ms += 4000;
    ANSWER("mv7", "x7", "alice");
    now_ms += 50000;
    EV("mv7", "{\"type\":\"transfer\",\"call\":\"x7\",\"queue\":\"backup\"}");
    now_ms += 6000;
    ANSWER("mv7", "x7", "carol");
    now_ms += 30000;
    EV("mv7", "{\"type\":\"hangup\",\"call\":\"x7\"}");
    row_is("mv7", "sales", day, (int[]){1, 1, 0, 0, 0, 0}, (long long[]){4000, 4000, 50000, 4000},
           "queue service levels: 4 s is past sales' 3 s");
    row_is("mv7", "backup", day, (int[]){1, 1, 0, 0, 0, 1}, (long long[]){6000, 6000, 30000, 6000},
           "queue service levels: 6 s is within backup's 10 s");
    row_is("mv7", NULL, day, (int[]){1, 1, 0, 0, 0, 1}, (long long[]){4000, 4000, 80000, 4000},
           "queue service levels: the account's row keeps the account's 20 s");
    static const char zero[] = "{\"id\":\"sales\",\"service_level_seconds\":0}";
    ok(sb_queue_put(eng, "mv7", zero, strlen(zero), res) == SB_EINVAL &&
           !strcmp(sb_result_field(res), "service_level_seconds"),
       "a service level of 0 is refused, naming the field (%s)", sb_result_message(res));
    now_ms = before_mv7;

    /* Transferred while ringing alice in sales, 5 s in; answered in backup
    ** 3 s later, 20 s of talk. */
    ok(moves_account("mv2") == 0, "moves: account mv2");
    EV("mv2",
       "{\"type\":\"offer\",\"call\":\"x2\",\"queue\":\"sales\",\"caller\":\"+4420794602\"}");
    now_ms += 5000;
    EV("mv2", "{\"type\":\"transfer\",\"call\":\"x2\",\"queue\":\"backup\"}");
    now_ms += 3000;
    ANSWER("mv2", "x2", "carol");
    now_ms += 20000;
    EV("mv2", "{\"type\":\"hangup\",\"call\":\"x2\"}");
    row_is("mv2", "sales", day, (int[]){1, 0, 0, 0, 1, 0}, (long long[]){5000, 0, 0, 5000},
           "transfer before answer");
    row_is("mv2", "backup", day, (int[]){1, 1, 0, 0, 0, 1}, (long long[]){3000, 3000, 20000, 3000},
           "transfer before answer");
    row_is("mv2", NULL, day, (int[]){1, 1, 0, 0, 0, 1}, (long long[]){8000, 8000, 20000, 8000},
           "transfer before answer");

    /* q1 -> q2 after 10 s -> q3 after 10 s, abandoned 5 s later. */
    ok(moves_account("mv3") == 0, "moves: account mv3");
    EV("mv3", "{\"type\":\"offer\",\"call\":\"x3\",\"queue\":\"q1\",\"caller\":\"+4420794603\"}");
    for (int i = 0; i < 2; i++) {
        now_ms += 10000;
        sb_tick(eng, res);
    }
    now_ms += 5000;
    EV("mv3", "{\"type\":\"abandon\",\"call\":\"x3\"}");
    row_is("mv3", "q1", day, (int[]){1, 0, 0, 0, 1, 0}, (long long[]){10000, 0, 0, 10000},
           "overflow chain");
    row_is("mv3", "q2", day, (int[]){1, 0, 0, 0, 1, 0}, (long long[]){10000, 0, 0, 10000},
           "overflow chain");
    row_is("mv3", "q3", day, (int[]){1, 0, 1, 0, 0, 0}, (long long[]){5000, 0, 0, 5000},
           "overflow chain");
    row_is("mv3", NULL, day, (int[]){1, 0, 1, 0, 0, 0}, (long long[]){25000, 0, 0, 25000},
           "overflow chain");

    /* Never moved: answered after 7 s, 40 s of talk. */
    ok(moves_account("mv4") == 0, "moves: account mv4");
    EV("mv4",
       "{\"type\":\"offer\",\"call\":\"x4\",\"queue\":\"sales\",\"caller\":\"+4420794604\"}");
    now_ms += 7000;
    ANSWER("mv4", "x4", "alice");
    now_ms += 40000;
    EV("mv4", "{\"type\":\"hangup\",\"call\":\"x4\"}");
    row_is("mv4", "sales", day, (int[]){1, 1, 0, 0, 0, 1}, (long long[]){7000, 7000, 40000, 7000},
           "never moved");
    row_is("mv4", NULL, day, (int[]){1, 1, 0, 0, 0, 1}, (long long[]){7000, 7000, 40000, 7000},
           "never moved");
    no_row("mv4", "backup", "never moved");

    /* Offered 5 s before midnight, overflowing after it: every row on the
    ** day it was offered. */
    ok(moves_account("mv6") == 0, "moves: account mv6");
    int64_t saved = now_ms;
    now_ms = 1767657595000; /* 2026-01-05 23:59:55 UTC */
    EV("mv6", "{\"type\":\"offer\",\"call\":\"x6\",\"queue\":\"q1\",\"caller\":\"+4420794606\"}");
    now_ms += 10000;
    sb_tick(eng, res);
    now_ms += 2000;
    EV("mv6", "{\"type\":\"abandon\",\"call\":\"x6\"}");
    row_is("mv6", "q1", day, (int[]){1, 0, 0, 0, 1, 0}, (long long[]){10000, 0, 0, 10000},
           "across midnight");
    row_is("mv6", "q2", day, (int[]){1, 0, 1, 0, 0, 0}, (long long[]){2000, 0, 0, 2000},
           "across midnight");
    row_is("mv6", NULL, day, (int[]){1, 0, 1, 0, 0, 0}, (long long[]){12000, 0, 0, 12000},
           "across midnight");
    if (now_ms < saved) now_ms = saved;
#undef ANSWER
#undef EV
}

/* The account's access_request entries in its audit log; -1 when it cannot
** be read. */
static int access_entries(const char *acct)
{
    return audit_matching(acct, "access_request", NULL, NULL, 0);
}

/* The account's last audit entry is an access request's as switchboard.h
** has it: action access_request, source access, `reason`, and nothing an
** entry of no call does not have (no call, no number, no pseudonym). */
static void audited_as(const char *acct, const char *reason, const char *what)
{
    static const char *const keys[] = {"seq",        "t_ms",   "action", "decision",
                                       "overridden", "reason", "source"};
    json_t *d = doc(sb_audit_list(eng, acct, 0, 100000, res)), *es = json_object_get(d, "entries");
    json_t *e = json_array_get(es, json_array_size(es) - 1);
    char *txt = e ? json_dumps(e, JSON_SORT_KEYS) : NULL;
    int fields = json_object_size(e) == 7;
    for (size_t i = 0; i < 7; i++)
        fields &= json_object_get(e, keys[i]) != NULL;
    ok(fields && !strcmp(jstr(e, "action"), "access_request") &&
           !strcmp(jstr(e, "source"), "access") && !strcmp(jstr(e, "reason"), reason) && txt &&
           !strstr(txt, "7946") && !strchr(txt, '+'),
       "%s: the audit log's last entry is the access request's, \"%s\", with no number (%s)", what,
       reason, txt ? txt : "no entry");
    free(txt);
    json_decref(d);
}

/* An access request's entry and log line as the engine composes them keep
** the count as counted: seven digits or more are a count the engine wrote,
** not a number to redact ("1234567 records" read "[number] records"). The
** entry is written as an export writes it, without disclosing a million
** records, by an engine of its own on the directory whose log is kept. The
** account id in the line is the caller's and is still redacted, as a
** policy's reason in the audit log is (test_compliance). */
static void test_export_count(void)
{
    sb_config cfg;
    test_engine_config(&cfg, dir, "policies", RECKIT_MAP_SIZE);
    cfg.log = log_keep;
    sb_engine *le = test_open(&cfg, res);
    MDB_txn *txn;
    acct_rec acc;
    if (!ok(le && eng_read_account(le, "acme", &txn, &acc, res) == 0, "the account acme")) {
        sb_close(le);
        return;
    }
    eng_read_end(le, txn);
    log_clear();
    ok(ret_access_audit(le, "acme", acc.num, 1234567, SB_EXPORT_JSON, 0, 0, res) == 0,
       "an access request's entry of 1234567 records");
    ok(strstr(logbuf, "access request: account acme: 1234567 records disclosed as JSON\n") != NULL,
       "... the log line has the count as counted (%s)", logbuf);
    audited_as("acme", "access request: 1234567 records disclosed as JSON",
               "a count of seven digits");
    log_clear();
    ok(ret_access_audit(le, "acme", acc.num, 4930123456789, SB_EXPORT_CSV, 1, 1, res) == 0,
       "one of 4930123456789 records, of a later page");
    ok(strstr(logbuf, "access request: account acme: 4930123456789 records disclosed as CSV, a "
                      "later page, more to follow\n") != NULL,
       "... in the log line too (%s)", logbuf);
    audited_as("acme",
               "access request: 4930123456789 records disclosed as CSV, a later page, more to "
               "follow",
               "a count of thirteen digits, as a number would have them");
    sb_close(le);
    /* An account named as a number, in a directory of its own: the id is
    ** the caller's text. */
    char other[300];
    snprintf(other, sizeof other, "%s-log", dir);
    rmtree(other);
    test_engine_config(&cfg, other, NULL, RECKIT_MAP_SIZE);
    cfg.log = log_keep;
    le = test_open(&cfg, res);
    const char *num_acct = "{\"id\":\"+442079460123\"}";
    ok(le && sb_account_put(le, num_acct, strlen(num_acct), res) == 0 &&
           eng_read_account(le, "+442079460123", &txn, &acc, res) == 0,
       "an account whose id is a number");
    if (le) eng_read_end(le, txn);
    log_clear();
    ok(le &&
           ret_access_audit(le, "+442079460123", acc.num, 1234567, SB_EXPORT_JSON, 0, 0, res) == 0,
       "an access request's entry in it");
    ok(strstr(logbuf, "access request: account [number]: 1234567 records disclosed as JSON\n") &&
           !strstr(logbuf, "7946"),
       "... its log line redacts the account id, not the count (%s)", logbuf);
    sb_close(le);
    rmtree(other);
}

static void test_export(void)
{
    int audited = access_entries("acme");
    json_t *d = doc(sb_records_export(eng, "acme", "+44 (20) 7946-0001", SB_EXPORT_JSON, res));
    json_t *recs = json_object_get(d, "records");
    is_int(json_array_size(recs), 4, "access request: the 4 records of +442079460001");
    json_t *r = json_array_get(recs, 0);
    is_str(jstr(r, "id"), "c1", "oldest first");
    is_str(jstr(r, "caller"), "+442079460001", "with the caller decrypted");
    is_str(jstr(r, "called"), "+442079469999", "and the called number");
    is_str(jstr(json_object_get(r, "personal_attrs"), "name"), "Jane Doe",
           "and the personal attributes");
    is_str(jstr(r, "role"), "caller", "the number's role");
    json_decref(d);
    audited_as("acme", "access request: 4 records disclosed as JSON", "access request");
    d = doc(sb_records_export(eng, "acme", "+442079469999", SB_EXPORT_JSON, res));
    is_int(json_array_size(json_object_get(d, "records")), 1, "the called number finds c1");
    is_str(jstr(json_array_get(json_object_get(d, "records"), 0), "role"), "called", "as called");
    json_decref(d);
    audited_as("acme", "access request: 1 record disclosed as JSON", "the called number's");
    d = doc(sb_records_export(eng, "acme", "+442079460001", SB_EXPORT_CSV, res));
    const char *csv = jstr(d, "csv");
    int lines = 0;
    for (const char *p = csv; *p; p++)
        lines += *p == '\n';
    is_int(lines, 5, "CSV: a header and 4 lines");
    ok(strncmp(csv, "id,role,caller,called,", 22) == 0, "CSV header");
    ok(strstr(csv, "\"{\"\"email\"\":\"\"jane@example.com\"\",\"\"name\"\":\"\"Jane Doe\"\"}\"") !=
           NULL,
       "CSV quotes JSON fields");
    json_decref(d);
    audited_as("acme", "access request: 4 records disclosed as CSV", "CSV");
    is_int(access_entries("acme"), audited + 3, "one entry for each of the three requests");
    /* Seconds with milliseconds print as such, not as binary noise. */
    const char *acct = "{\"id\":\"csvp\"}",
               *ag = "{\"id\":\"p1\",\"devices\":{\"softphone\":\"sip:p1@x\"},"
                     "\"status\":\"available\"}",
               *q = "{\"id\":\"support\",\"members\":[{\"agent\":\"p1\"}]}";
    ok(sb_account_put(eng, acct, strlen(acct), res) == 0 &&
           sb_agent_put(eng, "csvp", ag, strlen(ag), res) == 0 &&
           sb_queue_put(eng, "csvp", q, strlen(q), res) == 0,
       "account csvp");
    ev("csvp", "{\"type\":\"offer\",\"call\":\"ms1\",\"queue\":\"support\",\"caller\":"
               "\"+442079460077\"}");
    int64_t offered = now_ms;
    now_ms += 3311;
    ev("csvp", "{\"type\":\"ring_result\",\"call\":\"ms1\",\"agent\":\"p1\",\"outcome\":"
               "\"answered\"}");
    now_ms += 15;
    ev("csvp", "{\"type\":\"hangup\",\"call\":\"ms1\"}");
    d = doc(sb_records_export(eng, "csvp", "+442079460077", SB_EXPORT_CSV, res));
    csv = jstr(d, "csv");
    ok(strstr(csv, ",3.311,0.015,") && strstr(csv, "\"\"duration\"\":3.311") &&
           !strstr(csv, "99999") && !strstr(csv, "00000"),
       "CSV: wait 3.311, talk 0.015, no binary noise (%s)", csv);
    ok(strstr(csv, ",attempts_detail,offered_at,answered_at,ended_at,reason,ended_by\r\n") != NULL,
       "CSV: the times as ISO 8601 come after the other fields, then reason and ended_by");
    char iso[3][32], want[128];
    for (int i = 0; i < 3; i++) {
        int64_t t = offered + (i ? 3311 : 0) + (i == 2 ? 15 : 0);
        time_t s = (time_t)(t / 1000);
        struct tm tm;
        gmtime_r(&s, &tm);
        size_t n = strftime(iso[i], sizeof iso[i], "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(iso[i] + n, sizeof iso[i] - n, ".%03dZ", (int)(t % 1000));
    }
    snprintf(want, sizeof want, ",%lld,%lld,%lld,", (long long)offered, (long long)offered + 3311,
             (long long)offered + 3326);
    ok(strstr(csv, want) != NULL, "CSV: offered_ms, answered_ms and ended_ms, Unix ms (%s)", want);
    snprintf(want, sizeof want, ",%s,%s,%s,,\r\n", iso[0], iso[1], iso[2]);
    ok(strstr(csv, want) != NULL, "CSV: and the same in UTC, to the ms (%s)", want);
    json_decref(d);
    /* A call id a spreadsheet would compute is shown as written. */
    ev("csvp", "{\"type\":\"offer\",\"call\":\"-2+3\",\"queue\":\"support\",\"caller\":"
               "\"+442079460078\"}");
    ev("csvp", "{\"type\":\"abandon\",\"call\":\"-2+3\"}");
    d = doc(sb_records_export(eng, "csvp", "+442079460078", SB_EXPORT_CSV, res));
    csv = jstr(d, "csv");
    ok(csv && strstr(csv, "\r\n'-2+3,caller,+442079460078,"),
       "CSV: a field that reads as a formula starts with ', a number stays as it is (%s)", csv);
    json_decref(d);
    now_ms += 1000;
    d = doc(sb_records_export(eng, "other", "+442079460001", SB_EXPORT_JSON, res));
    is_int(json_array_size(json_object_get(d, "records")), 0,
           "another account finds nothing for the same number");
    json_decref(d);
    audited_as("other", "access request: 0 records disclosed as JSON",
               "one that finds nothing, in its own account's log");
    audited = access_entries("acme");
    ok(sb_records_export(eng, "acme", "0044207", SB_EXPORT_JSON, res) == SB_EINVAL,
       "a number that is not E.164 is refused");
    is_int(access_entries("acme"), audited, "... disclosing nothing, and is not in the audit log");
}

/* The pages of an access request (sb_records_export_page): the number as
** caller, then as called; pages of `limit` records or `max_bytes` bytes of
** them, each saying "next" while more follow, give the whole export, each
** record once and in its order; CSV pages one after another are the whole
** CSV. Sizes and cursors only. */
static void test_export_pages(void)
{
    provision("pages");
    char extra[64];
    snprintf(extra, sizeof extra, ",\"called\":\"+442079460066\"");
    for (int i = 0; i < 3; i++) {
        char id[8];
        snprintf(id, sizeof id, "pa%d", i);
        cycle("pages", id, "+442079460055", extra, 1, 1);
        snprintf(id, sizeof id, "pb%d", i);
        cycle("pages", id, "+442079460066", ",\"called\":\"+442079460055\"", 1, 1);
    }
    const char *num = "+442079460055";
    json_t *all = doc(sb_records_export(eng, "pages", num, SB_EXPORT_JSON, res));
    json_t *recs = json_object_get(all, "records");
    is_int(json_array_size(recs), 6, "the number's 6 records, whole");
    ok(!json_object_get(all, "next"), "the whole export says no next");
    char order[64] = "";
    for (size_t i = 0; i < json_array_size(recs); i++)
        snprintf(order + strlen(order), sizeof order - strlen(order), "%s%s", i ? " " : "",
                 jstr(json_array_get(recs, i), "id"));
    is_str(order, "pa0 pa1 pa2 pb0 pb1 pb2", "as caller, then as called, each by end time");
    /* Pages of limit 1..7: together the whole export, in order; each page
    ** read is in the audit log. */
    int audited = access_entries("pages"), read = 0;
    for (size_t limit = 1; limit <= 7; limit++) {
        json_t *got = json_array();
        char after[256] = "";
        int pages = 0, bad = 0;
        for (; pages < 20; pages++) {
            json_t *d = doc(
                sb_records_export_page(eng, "pages", num, SB_EXPORT_JSON, after, limit, 0, res));
            json_t *pr = json_object_get(d, "records"), *nx = json_object_get(d, "next");
            if (!d || json_array_size(pr) > limit) bad++;
            json_array_extend(got, pr);
            if (nx && json_array_size(pr) != limit) bad++;
            if (nx) snprintf(after, sizeof after, "%s", json_string_value(nx));
            json_decref(d);
            if (!nx) break;
        }
        ok(!bad && json_equal(got, recs) && pages + 1 == (int)((6 + limit - 1) / limit),
           "limit %zu: %d pages, together the whole export in order, next on each but the last",
           limit, pages + 1);
        read += pages + 1;
        json_decref(got);
    }
    is_int(access_entries("pages") - audited, read,
           "the audit log has an access_request entry for each page read");
    json_t *d = doc(sb_records_export_page(eng, "pages", num, SB_EXPORT_JSON, NULL, 3, 0, res));
    char want[128];
    snprintf(want, sizeof want, "caller:%lld:pa2",
             jint(json_array_get(json_object_get(d, "records"), 2), "ended_ms"));
    is_str(jstr(d, "next"), want, "a page of the 3 as caller: next is the last's role, end, id");
    json_decref(d);
    audited_as("pages", "access request: 3 records disclosed as JSON, more to follow",
               "a first page");
    d = doc(sb_records_export_page(eng, "pages", num, SB_EXPORT_JSON, want, 0, 0, res));
    is_int(json_array_size(json_object_get(d, "records")), 3, "after it: the 3 as called");
    is_str(jstr(json_array_get(json_object_get(d, "records"), 0), "id"), "pb0", "... from pb0");
    json_decref(d);
    audited_as("pages", "access request: 3 records disclosed as JSON, a later page",
               "the page after it, with its own count");
    /* Bytes: one record at least; then as many as fit. */
    char *one = json_dumps(json_array_get(recs, 0), JSON_COMPACT | JSON_ENSURE_ASCII);
    size_t each = one ? strlen(one) : 0;
    free(one);
    d = doc(sb_records_export_page(eng, "pages", num, SB_EXPORT_JSON, NULL, 0, 1, res));
    ok(json_array_size(json_object_get(d, "records")) == 1 && json_object_get(d, "next"),
       "max_bytes 1: one record, however large, and next");
    json_decref(d);
    d = doc(sb_records_export_page(eng, "pages", num, SB_EXPORT_JSON, NULL, 0, each * 2 + 5, res));
    ok(json_array_size(json_object_get(d, "records")) == 2 && json_object_get(d, "next"),
       "max_bytes for two records and a bit: two, and next (%zu bytes a record)", each);
    json_decref(d);
    /* The text itself: each page as jansson encodes its document (keys in
    ** their order, compact, ASCII), and the pages' records one after
    ** another, byte for byte, the whole export's. */
    int wrc = sb_records_export(eng, "pages", num, SB_EXPORT_JSON, res);
    char *whole = strdup(wrc ? "" : sb_result_json(res, NULL));
    for (size_t max = 1; max <= each * 3 + 5; max += each) {
        char after[256] = "", joined[16384] = "";
        int pages = 0, same = 1;
        for (; pages < 20; pages++) {
            if (sb_records_export_page(eng, "pages", num, SB_EXPORT_JSON, after, 0, max, res))
                break;
            const char *js = sb_result_json(res, NULL);
            json_t *pd = json_loads(js, 0, NULL);
            char *again =
                json_dumps(pd, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(12));
            same &= again && !strcmp(again, js);
            const char *from = strstr(js, "\"records\":["), *to = strstr(js, "],\"live\":");
            if (from && to && to > from + 11)
                snprintf(joined + strlen(joined), sizeof joined - strlen(joined), "%s%.*s",
                         joined[0] ? "," : "", (int)(to - from - 11), from + 11);
            json_t *nx = json_object_get(pd, "next");
            if (nx) snprintf(after, sizeof after, "%s", json_string_value(nx));
            free(again);
            json_decref(pd);
            if (!nx) break;
        }
        const char *wf = strstr(whole, "\"records\":["), *wt = strstr(whole, "],\"live\":");
        ok(same && wf && wt && strlen(joined) == (size_t)(wt - wf - 11) &&
               !strncmp(joined, wf + 11, strlen(joined)),
           "max_bytes %zu: %d pages, each as jansson encodes it, their records byte for byte "
           "the whole export's",
           max, pages + 1);
    }
    free(whole);
    /* CSV: the header on the first page only; the pages together are the
    ** whole CSV. */
    json_t *wc = doc(sb_records_export(eng, "pages", num, SB_EXPORT_CSV, res));
    char csv[16384] = "", after[256] = "";
    int pages = 0, counts = 0;
    for (; pages < 20; pages++) {
        d = doc(sb_records_export_page(eng, "pages", num, SB_EXPORT_CSV, after, 0, 300, res));
        json_t *nx = json_object_get(d, "next");
        snprintf(csv + strlen(csv), sizeof csv - strlen(csv), "%s", jstr(d, "csv"));
        counts += (int)jint(d, "count");
        if (nx) snprintf(after, sizeof after, "%s", json_string_value(nx));
        json_decref(d);
        if (!nx) break;
    }
    ok(pages >= 5 && counts == 6, "CSV pages of 300 bytes: one record each (%d pages, %d records)",
       pages + 1, counts);
    is_str(csv, jstr(wc, "csv"), "... together the whole CSV, its header once");
    json_decref(wc);
    audited_as("pages", "access request: 1 record disclosed as CSV, a later page",
               "the last CSV page");
    /* An after that is no page's next. */
    const char *bads[] = {
        "x", "caller:", "caller:12", "caller:12:", "called:1x:pa0", "callee:1:pa0", "caller:1:a b"};
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++)
        ok(sb_records_export_page(eng, "pages", num, SB_EXPORT_JSON, bads[i], 0, 0, res) ==
                   SB_EINVAL &&
               !strcmp(sb_result_field(res), "after"),
           "after \"%s\": SB_EINVAL naming after", bads[i]);
    d = doc(sb_records_export_page(eng, "pages", num, SB_EXPORT_JSON, "called:99999999999999:z", 0,
                                   0, res));
    ok(d && json_array_size(json_object_get(d, "records")) == 0 && !json_object_get(d, "next"),
       "after past the last record: an empty page, no next");
    json_decref(d);
    json_decref(all);
}

/* jansson's free while an export is watched: counts the blocks freed with
** the number's digits still in them (its strings: the records' numbers,
** the answer's "number", a CSV answer's lines). */
static const char *watched_num;
static int freed_unwiped;
static json_free_t engine_free;
static void watching_free(void *p)
{
    size_t n = p ? malloc_usable_size(p) : 0, w = strlen(watched_num);
    for (size_t i = 0; i + w <= n; i++)
        if (!memcmp((char *)p + i, watched_num, w)) {
            freed_unwiped++;
            break;
        }
    engine_free(p);
}

/* An access request whose entry the audit log cannot take is refused and
** discloses nothing: on a full disk (a file size limit at the data file's
** size, so the map cannot grow) and at map_max. Requests are made until
** one is refused; each that went in left its entry, the refused one none.
** On an engine of its own with a small map. */
static void test_export_refused(void)
{
    static const struct {
        const char *what, *says;
        size_t map_max;
        int disk;
    } cases[] = {{"a full disk", "free space on the disk", 0, 1},
                 {"map_max reached", "map_max", 512 << 10, 0}};
    sb_engine *main_eng = eng;
    const char *num = "+442079460091";
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char path[300], mdb[320];
        snprintf(path, sizeof path, "%s-full%zu", dir, c);
        snprintf(mdb, sizeof mdb, "%s/data.mdb", path);
        sb_config cfg;
        test_engine_config(&cfg, path, NULL, 256 << 10);
        cfg.map_max = cases[c].map_max;
        eng = test_open(&cfg, res);
        if (!ok(eng != NULL, "%s: an engine with a 256 KiB map", cases[c].what)) break;
        provision("full");
        cycle("full", "f1", num, NULL, 1, 1);
        struct rlimit old;
        struct stat st;
        if (cases[c].disk && stat(mdb, &st) == 0) {
            struct rlimit lim;
            getrlimit(RLIMIT_FSIZE, &old);
            lim = old;
            lim.rlim_cur = (rlim_t)st.st_size;
            signal(SIGXFSZ, SIG_IGN);
            setrlimit(RLIMIT_FSIZE, &lim);
        }
        int went = 0, rc;
        while ((rc = sb_records_export(eng, "full", num, SB_EXPORT_JSON, res)) == 0 &&
               went < 100000)
            went++;
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sb_result_message(res));
        const char *js = sb_result_json(res, NULL);
        int clean = js && !strstr(js, "7946") && !strstr(js, "records");
        /* Refused as CSV and as a page too: what each decrypted is freed
        ** (none left: the sanitizer's leak check), and wiped first. */
        json_malloc_t engine_malloc;
        json_get_alloc_funcs(&engine_malloc, &engine_free);
        watched_num = num + 1; /* the digits, as a JSON string or CSV holds them */
        freed_unwiped = 0;
        json_set_alloc_funcs(engine_malloc, watching_free);
        int csv = sb_records_export(eng, "full", num, SB_EXPORT_CSV, res);
        js = sb_result_json(res, NULL);
        clean &= js && !strstr(js, "7946") && !strstr(js, "csv");
        int page = sb_records_export_page(eng, "full", num, SB_EXPORT_JSON, NULL, 1, 0, res);
        js = sb_result_json(res, NULL);
        clean &= js && !strstr(js, "7946") && !strstr(js, "records");
        json_set_alloc_funcs(engine_malloc, engine_free);
        if (cases[c].disk) setrlimit(RLIMIT_FSIZE, &old);
        ok(rc == SB_EFULL && strstr(msg, "access request refused, nothing disclosed") &&
               strstr(msg, "audit log") && strstr(msg, cases[c].says),
           "%s: after %d access requests, one whose audit entry cannot be written is refused, "
           "SB_EFULL saying why (%s)",
           cases[c].what, went, msg);
        ok(csv == SB_EFULL && page == SB_EFULL, "%s: ... as CSV and as a page too", cases[c].what);
        is_int(freed_unwiped, 0,
               "%s: ... and what they decrypted was wiped before it was freed (blocks freed "
               "with the number in them)",
               cases[c].what);
        ok(clean, "%s: ... their results hold no record and no number (%s)", cases[c].what,
           js ? js : "");
        is_int(access_entries("full"), went,
               "%s: ... and the audit log has the entry of each that went in, none of it",
               cases[c].what);
        if (cases[c].disk) {
            json_t *d = doc(sb_records_export(eng, "full", num, SB_EXPORT_JSON, res));
            ok(d && json_array_size(json_object_get(d, "records")) == 1 &&
                   access_entries("full") == went + 1,
               "%s: with room again, the request is answered and audited", cases[c].what);
            json_decref(d);
        }
        sb_close(eng);
        if (!getenv("SB_TEST_KEEP")) rmtree(path);
    }
    eng = main_eng;
}

static int place(const char *json)
{
    return sb_hold_place(eng, "acme", json, strlen(json), res);
}

/* A result lets an access request's answer go wiped: its document (the
** numbers decrypted, the number asked for) and its JSON text, when it is
** reused for the next call and when it is freed. jansson's free is watched
** for blocks freed with the number's digits in them, json_dumps's own
** buffers included: the text is made where it can be wiped. */
static void test_result_wiped(void)
{
    const char *num = "+442079460001";
    json_malloc_t engine_malloc;
    json_get_alloc_funcs(&engine_malloc, &engine_free);
    watched_num = num + 1;
    freed_unwiped = 0;
    json_set_alloc_funcs(engine_malloc, watching_free);
    sb_result *r = sb_result_new();
    int rc = sb_records_export(eng, "acme", num, SB_EXPORT_JSON, r);
    const char *js = sb_result_json(r, NULL);
    int shown = js && strstr(js, "7946") != NULL;
    /* The same result again: the first answer goes, and so does its text. */
    rc |= sb_records_export(eng, "acme", num, SB_EXPORT_CSV, r);
    js = sb_result_json(r, NULL);
    shown &= js && strstr(js, "7946") != NULL;
    js = sb_result_json(r, NULL); /* made again: the text before goes */
    sb_result_free(r);
    json_set_alloc_funcs(engine_malloc, engine_free);
    ok(rc == 0 && shown, "two access requests answered in one result, then freed");
    is_int(freed_unwiped, 0,
           "... what they decrypted was wiped before it was freed (blocks freed with the "
           "number in them)");
}

static void test_holds_and_erasure(void)
{
    json_t *d = doc(place("{\"id\":\"lit-1\",\"number\":\"+442079460001\","
                          "\"reason\":\"dispute 2026-001\"}"));
    is_str(jstr(d, "kind"), "number", "hold by number placed");
    ok(!strstr(sb_result_json(res, NULL), "7946"), "the hold does not show the number");
    json_decref(d);
    ok(place("{\"id\":\"lit-1\",\"call\":\"c3\",\"reason\":\"x\"}") == SB_EEXIST,
       "hold ids are unique");
    ok(place("{\"call\":\"c3\",\"number\":\"+4411\",\"reason\":\"x\"}") == SB_EINVAL,
       "a hold covers one thing");
    d = doc(place("{\"call\":\"c3\",\"reason\":\"audit\"}"));
    char c3hold[64];
    snprintf(c3hold, sizeof c3hold, "%s", jstr(d, "id"));
    ok(c3hold[0] == 'h' && strlen(c3hold) == 9, "generated hold id %s", c3hold);
    json_decref(d);
    d = doc(sb_hold_list(eng, "acme", res));
    is_int(json_array_size(json_object_get(d, "holds")), 2, "two holds listed");
    /* One hold read alone: as the list gives it. */
    for (size_t i = 0; i < 2; i++) {
        json_t *listed = json_array_get(json_object_get(d, "holds"), i), *one;
        const char *id = jstr(listed, "id");
        one = doc(sb_hold_get(eng, "acme", id, res));
        ok(one && json_equal(one, listed), "sb_hold_get %s: the hold as the list gives it", id);
        json_decref(one);
    }
    json_decref(d);
    ok(!strstr((sb_hold_get(eng, "acme", "lit-1", res), sb_result_json(res, NULL)), "7946"),
       "... a number hold without the number");
    ok(sb_hold_get(eng, "acme", "lit-2", res) == SB_ENOTFOUND &&
           !strcmp(sb_result_field(res), "hold"),
       "sb_hold_get of an id the account has no hold of: SB_ENOTFOUND, field hold (%s)",
       sb_result_message(res));
    ok(sb_hold_get(eng, "other", "lit-1", res) == SB_ENOTFOUND &&
           !strcmp(sb_result_field(res), "hold"),
       "... and of another account's hold");
    ok(sb_hold_get(eng, "acme", "a b", res) == SB_ENOTFOUND &&
           sb_hold_get(eng, "acme", NULL, res) == SB_ENOTFOUND,
       "... and of an id no hold can have, or NULL");
    ok(sb_hold_get(eng, "nobody", "lit-1", res) == SB_ENOTFOUND &&
           !strcmp(sb_result_field(res), "account"),
       "... and an unknown account: SB_ENOTFOUND, field account");

    d = doc(sb_erase(eng, "acme", "+442079460001", res));
    is_int(jint(d, "deleted"), 0, "erasure under a hold deletes nothing");
    is_int(jint(d, "kept"), 4, "the 4 records are kept");
    json_t *reasons = json_object_get(d, "reasons");
    is_int(json_integer_value(json_object_get(reasons, "keep: legal hold lit-1: dispute 2026-001")),
           4, "because of the hold");
    json_decref(d);
    ok(sb_account_delete(eng, "acme", res) == SB_EHOLD,
       "an account with legal holds cannot be deleted (%s)", sb_result_message(res));
    /* With a live call too, the holds are named first: the call can be
    ** ended (evicting ends it), the holds only released. */
    ev("acme", "{\"type\":\"offer\",\"call\":\"live2\",\"queue\":\"support\"}");
    ok(sb_account_delete(eng, "acme", res) == SB_EHOLD &&
           strstr(sb_result_message(res), "legal hold"),
       "... with a live call as well: the holds named first (%s)", sb_result_message(res));
    ok(sb_account_evict(eng, "acme", res) == SB_EHOLD, "... evicting too (%s)",
       sb_result_message(res));
    ok(sb_call_get(eng, "acme", "live2", res) == 0, "... and the live call was not ended");
    ev("acme", "{\"type\":\"abandon\",\"call\":\"live2\"}");

    ok(sb_hold_release(eng, "acme", "lit-1", res) == 0, "hold released");
    ok(sb_hold_release(eng, "acme", "lit-1", res) == SB_ENOTFOUND, "released only once");
    ok(sb_hold_get(eng, "acme", "lit-1", res) == SB_ENOTFOUND, "a released hold is not found");
    d = doc(sb_erase(eng, "acme", "+442079460001", res));
    is_int(jint(d, "deleted"), 4, "the erasure now deletes all 4 records");
    json_decref(d);
    ok(sb_call_get(eng, "acme", "c1", res) == SB_ENOTFOUND, "c1's record is gone");
    d = doc(sb_records_export(eng, "acme", "+442079460001", SB_EXPORT_JSON, res));
    is_int(json_array_size(json_object_get(d, "records")), 0, "the number finds nothing any more");
    json_decref(d);
    d = doc(sb_aggregates(eng, "acme", NULL, 0, 0, res));
    is_int(jint(json_array_get(json_object_get(d, "days"), 0), "answered"), 5,
           "aggregates do not change when records go");
    json_decref(d);

    /* A call hold: erasure of c3's caller keeps c3. */
    d = doc(sb_erase(eng, "acme", "+442079460002", res));
    is_int(jint(d, "kept"), 1, "c3 kept under its call hold");
    json_decref(d);
    ok(sb_hold_release(eng, "acme", c3hold, res) == 0, "call hold released");

    d = doc(sb_audit_list(eng, "acme", 0, 0, res));
    json_t *ents = json_object_get(d, "entries");
    int placed = 0, released = 0, overridden = 0, deleted = 0;
    size_t i;
    json_t *e;
    json_array_foreach(ents, i, e)
    {
        const char *a = jstr(e, "action");
        placed += !strcmp(a, "hold_placed");
        released += !strcmp(a, "hold_released");
        overridden += json_is_true(json_object_get(e, "overridden"));
        deleted += !strcmp(a, "delete");
        char *txt = json_dumps(e, 0);
        if (txt && strstr(txt, "7946")) ok(0, "audit entry holds a number");
        free(txt);
    }
    is_int(placed, 2, "audit: two holds placed");
    is_int(released, 2, "audit: two released");
    is_int(overridden, 5, "audit: five decisions overridden by holds");
    is_int(deleted, 4, "audit: four deletions");
    json_decref(d);
    /* A cursor past what "next" can say came back as a negative "next"
    ** ((uint64_t)-1 as -1): refused, naming it. */
    uint64_t far[] = {(uint64_t)INT64_MAX + 1, UINT64_MAX};
    for (size_t k = 0; k < 2; k++)
        ok(sb_audit_list(eng, "acme", far[k], 0, res) == SB_EINVAL &&
               !strcmp(sb_result_field(res), "after"),
           "audit: after = %llu refused (%s)", (unsigned long long)far[k], sb_result_message(res));
    d = doc(sb_audit_list(eng, "acme", INT64_MAX, 0, res));
    ok(d && json_array_size(json_object_get(d, "entries")) == 0 &&
           json_integer_value(json_object_get(d, "next")) == INT64_MAX,
       "audit: after = INT64_MAX: no entries, next as given");
    json_decref(d);
}

/* --- no number in the clear anywhere ----------------------------------------- */

static int has(const unsigned char *b, size_t n, const void *pat, size_t pl)
{
    return memmem(b, n, pat, pl) != NULL;
}

/* Every file of the data directory, byte by byte, for every number in
** several encodings: each run of ASCII digits (and of UTF-16LE digits) is
** checked for every number as "+44..." / digits only, without the country
** code, and the called numbers; the names as text; the numbers as 64-bit
** integers. Returns how many hits (at most a few are reported). */
static int scan_dir(int n, int *files, size_t *bytes, int verbose)
{
    int found = 0;
    *files = 0;
    *bytes = 0;
    char **pats = malloc(sizeof *pats * (size_t)n * 3);
    int np = 0;
    for (int i = 0; i < n; i++) {
        pats[np] = malloc(32);
        snprintf(pats[np++], 32, "4420794%05d", 10000 + i);
        pats[np] = malloc(32);
        snprintf(pats[np++], 32, "20794%05d", 10000 + i); /* national, without 44 */
        pats[np] = malloc(32);
        snprintf(pats[np++], 32, "3361234%04d", i);
    }
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t len;
        unsigned char *b = slurp(path, &len);
        if (!b) continue;
        (*files)++;
        *bytes += len;
        for (int mode = 0; mode < 3; mode++) { /* ASCII; UTF-16LE at even, odd offsets */
            char run[256];
            int wide = mode > 0;
            size_t rl = 0, step = wide ? 2 : 1;
            for (size_t o = mode == 2 ? 1 : 0; o + step <= len + step; o += step) {
                int digit =
                    o + step <= len && b[o] >= '0' && b[o] <= '9' && (!wide || b[o + 1] == 0);
                if (digit && rl < sizeof run - 1) {
                    run[rl++] = (char)b[o];
                    continue;
                }
                run[rl] = 0;
                for (int k = 0; rl >= 9 && k < np && found < 5; k++)
                    if (strstr(run, pats[k])) {
                        found++;
                        if (verbose)
                            diag("%s holds %s in the clear (%s)", de->d_name, pats[k],
                                 wide ? "UTF-16" : "ASCII");
                    }
                rl = 0;
            }
        }
        if (has(b, len, "Subject ", 8)) {
            found++;
            if (verbose) diag("%s holds a personal attribute in the clear", de->d_name);
        }
        for (size_t o = 0; o + 8 <= len; o++) {
            uint64_t v;
            memcpy(&v, b + o, 8);
            if (v >= 442079410000ull && v < 442079410000ull + (uint64_t)n) {
                found++;
                if (verbose) diag("%s holds a number as an integer at %zu", de->d_name, o);
                break;
            }
        }
        free(b);
    }
    for (int k = 0; k < np; k++)
        free(pats[k]);
    free(pats);
    if (d) closedir(d);
    return found;
}

static void test_no_plaintext(void)
{
    char json[512];
    int n = 3000, errors = 0;
    const char *acct = "{\"id\":\"scan\",\"personal_attrs\":[\"name\"]}";
    ok(sb_account_put(eng, acct, strlen(acct), res) == 0, "account scan");
    sb_policy_put(eng, "scan", "sticky", sticky, strlen(sticky), NULL, res);
    for (int i = 0; i < 5; i++) {
        snprintf(json, sizeof json,
                 "{\"id\":\"a%d\",\"devices\":{\"softphone\":\"sip:a%d@pbx.example\"},"
                 "\"status\":\"available\"}",
                 i, i);
        sb_agent_put(eng, "scan", json, strlen(json), res);
    }
    const char *q = "{\"id\":\"support\",\"policy\":\"sticky\",\"members\":[{\"agent\":\"a0\"},"
                    "{\"agent\":\"a1\"},{\"agent\":\"a2\"},{\"agent\":\"a3\"},{\"agent\":\"a4\"}]}";
    sb_queue_put(eng, "scan", q, strlen(q), res);
    q = "{\"id\":\"parked\",\"policy\":\"sticky\"}"; /* nobody: calls wait there */
    sb_queue_put(eng, "scan", q, strlen(q), res);
    for (int i = 0; i < n; i++) {
        char call[32], caller[32], extra[200];
        snprintf(call, sizeof call, "s%d", i);
        snprintf(caller, sizeof caller, "+4420794%05d", 10000 + i);
        snprintf(extra, sizeof extra,
                 ",\"called\":\"+3361234%04d\",\"attrs\":{\"name\":\"Subject %05d\"}", i, i);
        if (i % 10 == 9) { /* some abandon, some stay live */
            snprintf(
                json, sizeof json,
                "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"parked\",\"caller\":\"%s\"%s}",
                call, caller, extra);
            errors += ev("scan", json) != 0;
            if (i % 20 == 19) {
                snprintf(json, sizeof json, "{\"type\":\"abandon\",\"call\":\"%s\"}", call);
                errors += ev("scan", json) != 0;
            }
            continue;
        }
        /* Some from withheld numbers: their called numbers are sealed too. */
        if (!cycle("scan", call, i % 10 == 4 ? NULL : caller, extra, 1, 1)[0]) errors++;
    }
    is_int(errors, 0, "%d calls through the engine", n);
    sb_close(eng);
    eng = NULL;

    int files, found;
    size_t bytes;
    /* The scanner finds what it should: a control file with one number
    ** as text, as UTF-16 and as an integer. */
    char ctl[600];
    snprintf(ctl, sizeof ctl, "%s/control", dir);
    FILE *f = fopen(ctl, "wb");
    uint64_t num = 442079410042ull;
    fprintf(f, "x+442079410042y");
    fwrite("+\0"
           "4\0"
           "4\0"
           "2\0"
           "0\0"
           "7\0"
           "9\0"
           "4\0"
           "1\0"
           "0\0"
           "0\0"
           "4\0"
           "2\0",
           1, 26, f);
    fwrite(&num, 8, 1, f);
    fclose(f);
    found = scan_dir(n, &files, &bytes, 0);
    ok(found >= 3, "the scan finds a planted number as text, UTF-16 and integer (%d hits)", found);
    unlink(ctl);
    found = scan_dir(n, &files, &bytes, 1);
    ok(files >= 3, "scanned %d files, %zu bytes", files, bytes);
    is_int(found, 0, "no number or personal attribute of %d calls appears in the clear", n);
    eng = open_engine();
}

/* --- account deletion ------------------------------------------------------- */

/* The map's bytes in use and its high-water mark, from sb_stats. */
static void map_bytes(long long *used, long long *high)
{
    json_t *d = doc(sb_stats(eng, res));
    json_t *l = json_object_get(d, "lmdb");
    *used = jint(l, "used_bytes");
    *high = jint(l, "high_water_bytes");
    json_decref(d);
}

static void test_account_deletion(void)
{
    long long used0, high0, used1, high1;
    map_bytes(&used0, &high0);
    json_t *d = doc(sb_records_export(eng, "scan", "+442079410000", SB_EXPORT_JSON, res));
    is_int(json_array_size(json_object_get(d, "records")), 1, "scan's records are readable");
    json_decref(d);
    /* The data key file: one 128-byte slot per account; find scan's. */
    char path[600];
    snprintf(path, sizeof path, "%s/data.keys", dir);
    size_t len;
    unsigned char *before = slurp(path, &len);
    int slots_before = 0;
    for (size_t o = 0; before && o + 128 <= len; o += 128)
        slots_before += !memcmp(before + o, "SBK1", 4);
    free(before);
    /* Its calls still waiting first end: an account with live calls stays. */
    ok(sb_account_delete(eng, "scan", res) == SB_ESTATE, "an account with live calls stays");
    int ended = 0;
    for (int i = 9; i < 3000; i += 20) {
        char json[96];
        snprintf(json, sizeof json, "{\"type\":\"abandon\",\"call\":\"s%d\"}", i);
        ended += ev("scan", json) == 0;
    }
    is_int(ended, 150, "its 150 waiting calls end");
    ok(sb_account_delete(eng, "scan", res) == 0, "account deleted");
    unsigned char *after = slurp(path, &len);
    int slots_after = 0;
    for (size_t o = 0; after && o + 128 <= len; o += 128)
        slots_after += !memcmp(after + o, "SBK1", 4);
    free(after);
    is_int(slots_after, slots_before - 1, "its data key slot is wiped at once");
    ok(sb_records_export(eng, "scan", "+442079410000", SB_EXPORT_JSON, res) == SB_ENOTFOUND,
       "the account is gone");
    d = doc(sb_sweep(eng, 0, NULL, NULL, res));
    ok(jint(d, "purged") >= 2700, "the sweep purges its records (%lld)", jint(d, "purged"));
    ok(json_is_true(json_object_get(d, "done")), "and finishes");
    ok(jint(d, "transactions") >= 3, "in short transactions (%lld)", jint(d, "transactions"));
    json_decref(d);
    d = doc(sb_sweep(eng, 0, NULL, NULL, res));
    is_int(jint(d, "purged"), 0, "a second sweep has nothing left to purge");
    json_decref(d);
    /* What an operator alerts on against map_max: the pages in use, which
    ** the purge gave back; the high-water mark (the file up to its last page
    ** used) stays, as LMDB reuses free pages but never hands them back. */
    map_bytes(&used1, &high1);
    ok(used0 > 0 && used1 > 0 && used1 < used0 / 2,
       "sb_stats' used_bytes goes down once the records are purged (%lld -> %lld)", used0, used1);
    ok(high0 >= used0 && high1 >= high0 && high1 > used1,
       "high_water_bytes, the last page ever used, does not (%lld -> %lld)", high0, high1);
    /* A new account with the same id starts afresh. */
    ok(sb_account_put(eng, "{\"id\":\"scan\"}", 13, res) == 0, "account id reused");
    d = doc(sb_records_export(eng, "scan", "+442079410000", SB_EXPORT_JSON, res));
    is_int(json_array_size(json_object_get(d, "records")), 0,
           "the new account sees no old records");
    json_decref(d);
}

/* A rejected call's record says why it was turned away: the policy's reason,
** or the engine's (a full queue); the CSV export has it in its last column,
** and the retention hook reads it as record.reason. Answered and abandoned
** calls have none. */
static const char *gatekeeper =
    "local P = {}\n"
    "function P.route(call, agents, ctx)\n"
    "  if call.attrs.closed then return { reject = 'closed: Sunday' } end\n"
    "  if #agents == 0 then return { wait = 30 } end\n"
    "  return { ring = agents[1].id }\n"
    "end\n"
    "return P\n";
static const char *drop_full = "local P = {}\n"
                               "function P.retain(record, ctx)\n"
                               "  if record.reason == 'queue full' then\n"
                               "    return { delete = true, reason = 'nobody heard it' }\n"
                               "  end\n"
                               "  return { keep = true }\n"
                               "end\n"
                               "return P\n";

/* An account with the gatekeeper policy and alice, bob and carol. */
static int gate_account(const char *id)
{
    char json[64];
    snprintf(json, sizeof json, "{\"id\":\"%s\"}", id);
    return sb_account_put(eng, json, strlen(json), res) ||
                   sb_policy_put(eng, id, "gate", gatekeeper, strlen(gatekeeper), NULL, res) ||
                   support_team(id, "gate")
               ? -1
               : 0;
}

/* The account's records retained by the policy src, stored as `name`. */
static int retain_by(const char *id, const char *name, const char *src)
{
    char json[128];
    snprintf(json, sizeof json, "{\"id\":\"%s\",\"retention\":\"%s\"}", id, name);
    return sb_policy_put(eng, id, name, src, strlen(src), NULL, res) ||
                   sb_account_put(eng, json, strlen(json), res)
               ? -1
               : 0;
}

/* The CSV of an access request for the number (static; "" when none). */
static const char *csv_of(const char *acct, const char *number)
{
    static char out[8192];
    json_t *d = doc(sb_records_export(eng, acct, number, SB_EXPORT_CSV, res));
    const char *csv = jstr(d, "csv");
    snprintf(out, sizeof out, "%s", csv ? csv : "");
    json_decref(d);
    return out;
}

/* Whether the record of call has that outcome and `key` as want (NULL:
** no such key). */
static int record_is(const char *acct, const char *call, const char *outcome, const char *key,
                     const char *want)
{
    json_t *c = doc(sb_call_get(eng, acct, call, res));
    const char *got = jstr(c, key);
    int is = c && !strcmp(jstr(c, "outcome"), outcome) &&
             (want ? got && !strcmp(got, want) : !json_object_get(c, key));
    json_decref(c);
    return is;
}

static void test_reject_reasons(void)
{
    ok(gate_account("rj") == 0, "account rj, its gatekeeper policy and team");
    const char *q = "{\"id\":\"tiny\",\"policy\":\"gate\",\"max_length\":1}";
    ok(sb_queue_put(eng, "rj", q, strlen(q), res) == 0, "queue tiny holds one waiting call (%s)",
       sb_result_message(res));
    ev("rj", "{\"type\":\"offer\",\"call\":\"sun\",\"queue\":\"support\","
             "\"caller\":\"+442079460031\",\"attrs\":{\"closed\":true}}");
    const sb_action *a = find(SB_ACT_REJECT, "sun");
    is_str(a ? a->reason : NULL, "closed: Sunday", "the policy turns sun away");
    json_t *c = doc(sb_call_get(eng, "rj", "sun", res));
    is_str(jstr(c, "outcome"), "rejected", "sun's record: rejected");
    is_str(jstr(c, "reason"), "closed: Sunday", "with the policy's reason");
    json_decref(c);

    ev("rj", "{\"type\":\"offer\",\"call\":\"w1\",\"queue\":\"tiny\"}");
    ev("rj", "{\"type\":\"offer\",\"call\":\"w2\",\"queue\":\"tiny\","
             "\"caller\":\"+442079460031\"}");
    a = find(SB_ACT_REJECT, "w2");
    is_str(a ? a->reason : NULL, "queue full", "w2 finds tiny full");
    c = doc(sb_call_get(eng, "rj", "w2", res));
    is_str(jstr(c, "reason"), "queue full", "w2's record: the engine's reason");
    json_decref(c);
    ev("rj", "{\"type\":\"abandon\",\"call\":\"w1\"}");
    ok(record_is("rj", "w1", "abandoned", "reason", NULL),
       "an abandoned call's record has no reason");
    cycle("rj", "ok1", "+442079460032", NULL, 1, 5);
    ok(record_is("rj", "ok1", "answered", "reason", NULL), "nor an answered one");

    const char *csv = csv_of("rj", "+442079460031");
    ok(strstr(csv, ",ended_at,reason,ended_by\r\n") && strstr(csv, "Z,closed: Sunday,\r\n") &&
           strstr(csv, "Z,queue full,\r\n"),
       "the CSV export ends each line with the reason (%s)", csv);
    csv = csv_of("rj", "+442079460032");
    ok(strlen(csv) > 5 && !strcmp(csv + strlen(csv) - 5, "Z,,\r\n"),
       "an empty last column for an answered call (%s)", csv);

    /* The retention hook reads the reason: calls nobody heard go at once. */
    ok(retain_by("rj", "drop-full", drop_full) == 0,
       "rj retains by a policy that deletes records of calls turned away by a full queue");
    ev("rj", "{\"type\":\"offer\",\"call\":\"w3\",\"queue\":\"tiny\"}");
    ev("rj", "{\"type\":\"offer\",\"call\":\"w4\",\"queue\":\"tiny\"}");
    ok(find(SB_ACT_REJECT, "w4") != NULL, "w4 finds tiny full");
    ok(sb_call_get(eng, "rj", "w4", res) == SB_ENOTFOUND,
       "its record is deleted as it is written: the hook read record.reason");
    ev("rj", "{\"type\":\"offer\",\"call\":\"sun2\",\"queue\":\"support\",\"attrs\":{\"closed\":"
             "true}}");
    c = doc(sb_call_get(eng, "rj", "sun2", res));
    is_str(jstr(c, "reason"), "closed: Sunday", "a call the policy turned away is kept");
    json_decref(c);
    ev("rj", "{\"type\":\"abandon\",\"call\":\"w3\"}");
}

/* Who ended a call: the hangup or abandon says (by: caller, agent, system),
** its record keeps it (ended_by, also in the CSV and for retention), and a
** call the system ended before anyone answered is failed, counted so in
** the aggregates. What cannot be is refused and changes nothing. */
static const char *keep_agent_ended = "local P = {}\n"
                                      "function P.retain(record, ctx)\n"
                                      "  if record.ended_by == 'system' then\n"
                                      "    return { delete = true, reason = 'no caller spoke' }\n"
                                      "  end\n"
                                      "  return { keep = true }\n"
                                      "end\n"
                                      "return P\n";

static long long failed_in(const char *acct, const char *queue)
{
    json_t *d = doc(sb_aggregates(eng, acct, NULL, 0, 0, res)), *row;
    long long n = -1;
    size_t i;
    json_array_foreach(json_object_get(d, "days"), i, row)
    {
        json_t *q = json_object_get(row, "queue");
        if (queue ? json_is_string(q) && !strcmp(json_string_value(q), queue) : json_is_null(q))
            n = jint(row, "failed");
    }
    json_decref(d);
    return n;
}

static void test_ended_by(void)
{
    ok(gate_account("eb") == 0, "ended by: account eb and its team");
    ev("eb", "{\"type\":\"offer\",\"call\":\"h1\",\"queue\":\"support\","
             "\"caller\":\"+442079460041\"}");
    ev("eb", "{\"type\":\"ring_result\",\"call\":\"h1\",\"agent\":\"alice\",\"outcome\":"
             "\"answered\"}");
    ok(ev("eb", "{\"type\":\"hangup\",\"call\":\"h1\",\"by\":\"agent\"}") == 0,
       "ended by: the agent hangs up h1 (%s)", sb_result_message(res));
    json_t *c = doc(sb_call_get(eng, "eb", "h1", res));
    ok(c && !strcmp(jstr(c, "outcome"), "answered") && !strcmp(jstr(c, "ended_by"), "agent"),
       "ended by: h1's record: answered, ended by the agent");
    json_decref(c);

    ev("eb", "{\"type\":\"offer\",\"call\":\"h2\",\"queue\":\"support\","
             "\"caller\":\"+442079460041\"}");
    is_int(ev("eb", "{\"type\":\"hangup\",\"call\":\"h2\",\"by\":\"agent\"}"), SB_ESTATE,
           "ended by: an agent cannot hang up a call that rings (%s)", sb_result_message(res));
    c = doc(sb_call_get(eng, "eb", "h2", res));
    is_str(jstr(c, "state"), "ringing", "ended by: and h2 rings on");
    json_decref(c);
    is_int(ev("eb", "{\"type\":\"abandon\",\"call\":\"h2\",\"by\":\"agent\"}"), SB_EINVAL,
           "ended by: nor abandon one (%s)", sb_result_message(res));
    is_int(ev("eb", "{\"type\":\"hangup\",\"call\":\"h2\",\"by\":\"nobody\"}"), SB_EINVAL,
           "ended by: 'nobody' is no party (%s)", sb_result_message(res));
    is_str(sb_result_field(res), "by", "ended by: the field is named");
    is_int(ev("eb", "{\"type\":\"offer\",\"call\":\"h9\",\"queue\":\"support\",\"by\":\"caller\"}"),
           SB_EINVAL, "ended by: an offer takes no 'by' (%s)", sb_result_message(res));
    sb_event se = {.type = SB_EV_OFFER,
                   .account = "eb",
                   .call_id = "h9",
                   .queue_id = "support",
                   .by = SB_END_CALLER};
    is_int(sb_submit(eng, &se, res), SB_EINVAL, "ended by: nor in C (%s)", sb_result_message(res));
    se = (sb_event){.type = SB_EV_HANGUP, .account = "eb", .call_id = "h2", .by = 9};
    is_int(sb_submit(eng, &se, res), SB_EINVAL, "ended by: a value past the enum is refused");
    long long before = failed_in("eb", NULL);
    ok(ev("eb", "{\"type\":\"hangup\",\"call\":\"h2\",\"by\":\"system\"}") == 0 &&
           find(SB_ACT_CANCEL, "h2") && !strcmp(find(SB_ACT_CANCEL, "h2")->reason, "call failed") &&
           !strcmp(find(SB_ACT_END, "h2")->reason, "failed"),
       "ended by: the system ends h2 while it rings: its ring cancelled, 'call failed'; it ends "
       "failed");
    ok(record_is("eb", "h2", "failed", "ended_by", "system"),
       "ended by: h2's record: failed, ended by the system");
    is_int(failed_in("eb", NULL), before + 1, "ended by: the account's row counts it failed");
    is_int(failed_in("eb", "support"), before + 1, "ended by: and so does the queue's");

    ev("eb", "{\"type\":\"offer\",\"call\":\"h3\",\"queue\":\"support\","
             "\"caller\":\"+442079460041\"}");
    ok(ev("eb", "{\"type\":\"abandon\",\"call\":\"h3\",\"by\":\"caller\"}") == 0,
       "ended by: the caller abandons h3");
    ok(record_is("eb", "h3", "abandoned", "ended_by", "caller"),
       "ended by: h3's record: abandoned, by the caller");
    ev("eb", "{\"type\":\"offer\",\"call\":\"h4\",\"queue\":\"support\","
             "\"caller\":\"+442079460041\"}");
    ev("eb", "{\"type\":\"abandon\",\"call\":\"h4\"}");
    ok(record_is("eb", "h4", "abandoned", "ended_by", NULL),
       "ended by: an abandon that does not say: no ended_by");

    const char *csv = csv_of("eb", "+442079460041");
    ok(strstr(csv, ",reason,ended_by\r\n") && strstr(csv, "Z,,agent\r\n") &&
           strstr(csv, "Z,,system\r\n") && strstr(csv, "Z,,\r\n"),
       "ended by: the CSV's last column (%s)", csv);

    ok(retain_by("eb", "drop-failed", keep_agent_ended) == 0,
       "ended by: eb retains by a policy deleting calls the system ended");
    ev("eb", "{\"type\":\"offer\",\"call\":\"h5\",\"queue\":\"support\"}");
    ev("eb", "{\"type\":\"hangup\",\"call\":\"h5\",\"by\":\"system\"}");
    ok(sb_call_get(eng, "eb", "h5", res) == SB_ENOTFOUND,
       "ended by: h5's record goes as it is written: the hook read record.ended_by");
}

int main(void)
{
    if (start_engine("records")) return done_testing();
    provision("acme");
    provision("other");
    json_t *a = doc(sb_account_get(eng, "acme", res));
    is_int(json_array_size(json_object_get(a, "personal_attrs")), 2,
           "account shows personal_attrs");
    ok(json_is_null(json_object_get(a, "retention")), "and no retention policy: keep forever");
    json_decref(a);
    const char *bad = "{\"id\":\"bad\",\"personal_attrs\":\"name\"}";
    ok(sb_account_put(eng, bad, strlen(bad), res) == SB_EINVAL, "personal_attrs must be a list");
    bad = "{\"id\":\"bad\",\"retention\":\"../x\"}";
    ok(sb_account_put(eng, bad, strlen(bad), res) == SB_EINVAL, "retention must name a policy");
    test_record_contents();
    test_caller_history();
    test_aggregates();
    test_export();
    test_export_count();
    test_export_pages();
    test_export_refused();
    test_result_wiped();
    test_holds_and_erasure();
    test_no_plaintext();
    test_account_deletion();
    test_reject_reasons();
    test_ended_by();
    test_moved_calls(); /* last: its clock goes to midnight */
    return end_engine();
}
