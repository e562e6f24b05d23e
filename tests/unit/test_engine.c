/*
** test_engine.c — the engine through its public API: provisioning, the call
** cycle, timers on an injected clock, waiting calls served when an agent
** frees up, overflow, wrap-up, transfers, policy decisions and failures,
** tenant isolation, bad input, persistence and concurrent writers.
*/
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"

#include <jansson.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256];
static sb_engine *eng;
static sb_result *res;

static sb_engine *open_engine(const char *policy_dir)
{
    sb_config cfg;
    test_engine_config(&cfg, dir, policy_dir, 4 << 20);
    return test_open(&cfg, res);
}

static int put(int (*fn)(sb_engine *, const char *, const char *, size_t, sb_result *),
               const char *acct, const char *json)
{
    return test_put(eng, res, fn, acct, json);
}

static int ev(const char *acct, const char *json)
{
    return test_event(eng, res, acct, json);
}

/* The first action of a type, or NULL. */
static const sb_action *find(sb_action_type type, const char *call)
{
    for (size_t i = 0; i < sb_result_count(res); i++) {
        const sb_action *a = sb_result_action(res, i);
        if (a->type == type && (!call || (a->call_id && strcmp(a->call_id, call) == 0))) return a;
    }
    return NULL;
}

static const char *agent_status(const char *acct, const char *agent)
{
    static char buf[32];
    if (sb_agent_get(eng, acct, agent, res)) return "?";
    json_t *o = json_loads(sb_result_json(res, NULL), 0, NULL);
    snprintf(buf, sizeof buf, "%s", json_string_value(json_object_get(o, "status")));
    json_decref(o);
    return buf;
}

static json_t *get_json(int rc)
{
    return rc ? NULL : json_loads(sb_result_json(res, NULL), 0, NULL);
}

#define AGENT(id, extra)                                                                           \
    "{\"id\":\"" id "\",\"devices\":{\"softphone\":\"sip:" id "@pbx.example\",\"mobile\":"         \
    "\"tel:+447700900001\"},\"status\":\"available\"" extra "}"

static void provision(void)
{
    ok(sb_account_put(eng, "{\"id\":\"acme\",\"name\":\"Acme\"}", 27, res) == 0, "account created");
    ok(put(sb_agent_put, "acme", AGENT("alice", "")) == 0, "agent alice");
    now_ms += 1000;
    ok(put(sb_agent_put, "acme", AGENT("bob", "")) == 0, "agent bob");
    now_ms += 1000;
    ok(put(sb_agent_put, "acme", AGENT("carol", ",\"skills\":{\"billing\":4}")) == 0,
       "agent carol");
    ok(put(sb_queue_put, "acme",
           "{\"id\":\"support\",\"ring_timeout\":20,"
           "\"members\":[{\"agent\":\"alice\"},{\"agent\":\"bob\"},{\"agent\":\"carol\"}]}") == 0,
       "queue support with three members");
    ok(put(sb_queue_put, "acme", "{\"id\":\"empty\",\"overflow\":\"support\",\"max_wait\":30}") ==
           0,
       "queue empty (overflows to support after 30 s)");
}

static void test_cycle(void)
{
    now_ms += 5000;
    ok(ev("acme", "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"support\","
                  "\"caller\":\"+44 20 7946 0001\"}") == 0,
       "offer accepted");
    const sb_action *a = find(SB_ACT_RING, "c1");
    ok(a != NULL, "offer rings an agent");
    if (a) {
        is_str(a->agent_id, "alice", "the agent idle longest (alice) rings");
        is_str(a->device, "softphone", "on her softphone");
        is_str(a->uri, "sip:alice@pbx.example", "with her dial URI");
        is_int(a->timeout_s, 20, "for the queue's ring timeout");
    }
    is_str(agent_status("acme", "alice"), "reserved", "alice is reserved while ringing");
    ok(ev("acme", "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"support\","
                  "\"caller\":\"+442079460001\"}") == SB_EEXIST,
       "offering the same call id twice is refused");
    now_ms += 4000;
    ok(ev("acme", "{\"type\":\"ring_result\",\"call\":\"c1\",\"agent\":\"alice\","
                  "\"outcome\":\"answered\"}") == 0,
       "answered");
    ok(find(SB_ACT_CONNECT, "c1") != NULL, "connect action");
    is_str(agent_status("acme", "alice"), "on_call", "alice is on the call");
    ok(ev("acme", "{\"type\":\"ring_result\",\"call\":\"c1\",\"agent\":\"bob\","
                  "\"outcome\":\"answered\"}") == SB_ESTATE,
       "a ring result for an agent not ringing is refused");
    now_ms += 60000;
    ok(ev("acme", "{\"type\":\"hangup\",\"call\":\"c1\"}") == 0, "hangup");
    const sb_action *end = find(SB_ACT_END, "c1");
    ok(end && strcmp(end->reason, "answered") == 0, "call ended as answered");
    is_str(agent_status("acme", "alice"), "available", "alice is free again");
    ok(ev("acme", "{\"type\":\"hangup\",\"call\":\"c1\"}") == SB_ESTATE,
       "a second hangup is refused: the call has ended (%s)", sb_result_message(res));
    json_t *c = get_json(sb_call_get(eng, "acme", "c1", res));
    ok(c != NULL, "the finished call can be read");
    is_str(json_string_value(json_object_get(c, "outcome")), "answered",
           "its record says answered");
    is_str(json_string_value(json_object_get(c, "agent")), "alice", "and names the agent");
    ok(json_real_value(json_object_get(c, "talk")) == 60.0, "talk time 60 s");
    ok(json_array_size(json_object_get(c, "policy_versions")) == 1, "one policy version decided");
    json_decref(c);
    json_t *ag = get_json(sb_agent_get(eng, "acme", "alice", res));
    json_t *st = json_object_get(ag, "stats");
    is_int(json_integer_value(json_object_get(st, "calls_taken")), 1, "alice took one call");
    json_decref(ag);
}

/* The default device follows the agent's preferences as soon as its document
** changes: the avail index records whether the document can pick a device. */
static void test_device_follows_document(void)
{
    static const char *const docs[] = {
        AGENT("dee", ""),
        AGENT("dee", ",\"preferences\":{\"device\":\"mobile\"}"),
        AGENT("dee", ""),
    };
    static const char *const want[] = {"softphone", "mobile", "softphone"};
    ok(sb_account_put(eng, "{\"id\":\"devs\"}", 13, res) == 0, "devices: account");
    ok(put(sb_queue_put, "devs", "{\"id\":\"dq\"}") == 0, "devices: queue");
    for (int i = 0; i < 3; i++) {
        char call[16], offer[128], abandon[64];
        snprintf(call, sizeof call, "dv%d", i);
        snprintf(offer, sizeof offer,
                 "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"dq\",\"caller\":"
                 "\"+442079460001\"}",
                 call);
        snprintf(abandon, sizeof abandon, "{\"type\":\"abandon\",\"call\":\"%s\"}", call);
        ok(put(sb_agent_put, "devs", docs[i]) == 0, "devices: agent document %d", i + 1);
        if (i == 0)
            ok(put(sb_queue_put, "devs",
                   "{\"id\":\"dq\",\"members\":[{\"agent\":"
                   "\"dee\"}]}") == 0,
               "devices: dee joins the queue");
        now_ms += 1000;
        const sb_action *a = ev("devs", offer) == 0 ? find(SB_ACT_RING, call) : NULL;
        is_str(a ? a->device : "none", want[i], "devices: document %d rings the %s", i + 1,
               want[i]);
        ok(ev("devs", abandon) == 0, "devices: the caller hangs up");
    }
}

static void test_waiting_and_freeing(void)
{
    /* Everyone busy: calls wait, and the next free agent is handed one. */
    now_ms += 1000;
    ev("acme", "{\"type\":\"agent_status\",\"agent\":\"alice\",\"status\":\"paused\","
               "\"reason\":\"lunch\"}");
    ev("acme", "{\"type\":\"agent_status\",\"agent\":\"bob\",\"status\":\"offline\"}");
    ev("acme", "{\"type\":\"agent_status\",\"agent\":\"carol\",\"status\":\"paused\"}");
    is_str(agent_status("acme", "alice"), "paused", "alice paused");
    ok(ev("acme", "{\"type\":\"offer\",\"call\":\"w1\",\"queue\":\"support\","
                  "\"caller\":\"+15550000001\"}") == 0,
       "offer with nobody available");
    ok(find(SB_ACT_WAIT, "w1") != NULL && !find(SB_ACT_RING, NULL), "the call waits");
    now_ms += 1000;
    ok(ev("acme", "{\"type\":\"offer\",\"call\":\"w2\",\"queue\":\"support\","
                  "\"caller\":\"+15550000002\",\"priority\":50}") == 0,
       "a second, higher-priority call");
    now_ms += 1000;
    ok(ev("acme", "{\"type\":\"agent_status\",\"agent\":\"bob\",\"status\":\"available\"}") == 0,
       "bob becomes available");
    const sb_action *a = find(SB_ACT_RING, NULL);
    ok(a && strcmp(a->agent_id, "bob") == 0 && strcmp(a->call_id, "w2") == 0,
       "the agent status event rings bob for the higher-priority waiting call");
    now_ms += 1000;
    ok(ev("acme", "{\"type\":\"abandon\",\"call\":\"w1\"}") == 0, "caller of w1 hangs up");
    const sb_action *e = find(SB_ACT_END, "w1");
    ok(e && strcmp(e->reason, "abandoned") == 0, "w1 ended as abandoned");
    ok(ev("acme", "{\"type\":\"abandon\",\"call\":\"w2\"}") == 0,
       "caller of w2 hangs up while ringing");
    ok(find(SB_ACT_CANCEL, "w2") != NULL, "bob's ring is cancelled");
    is_str(agent_status("acme", "bob"), "available", "bob is free");
    ev("acme", "{\"type\":\"agent_status\",\"agent\":\"alice\",\"status\":\"available\"}");
    ev("acme", "{\"type\":\"agent_status\",\"agent\":\"carol\",\"status\":\"available\"}");
}

static void test_timeout_and_no_answer(void)
{
    now_ms += 10000;
    ev("acme",
       "{\"type\":\"offer\",\"call\":\"t1\",\"queue\":\"support\",\"caller\":\"+15550000003\"}");
    const sb_action *a = find(SB_ACT_RING, "t1");
    char first[64] = "";
    if (a) snprintf(first, sizeof first, "%s", a->agent_id);
    ok(first[0], "t1 rings %s", first);
    ok(sb_next_deadline(eng) <= now_ms + 20000, "a deadline is due by the ring timeout");
    now_ms += 19999;
    sb_tick(eng, res);
    is_int(sb_result_count(res), 0, "nothing fires a millisecond early");
    now_ms += 1;
    ok(sb_tick(eng, res) == 0, "tick at the ring timeout");
    ok(find(SB_ACT_CANCEL, "t1") != NULL, "the unanswered ring is cancelled");
    a = find(SB_ACT_RING, "t1");
    ok(a && strcmp(a->agent_id, first) != 0, "and another agent rings (%s)", a ? a->agent_id : "-");
    char second[64] = "";
    if (a) snprintf(second, sizeof second, "%s", a->agent_id);
    json_t *ag = get_json(sb_agent_get(eng, "acme", first, res));
    is_int(json_integer_value(json_object_get(json_object_get(ag, "stats"), "no_answers")), 1,
           "the first agent has one consecutive no-answer");
    json_decref(ag);
    now_ms += 3000;
    char json[256];
    snprintf(json, sizeof json,
             "{\"type\":\"ring_result\",\"call\":\"t1\",\"agent\":\"%s\",\"outcome\":\"busy\"}",
             second);
    ok(ev("acme", json) == 0, "the second agent is busy");
    ok(find(SB_ACT_RING, "t1") != NULL, "the call is decided again and rings on");
    json_t *c = get_json(sb_call_get(eng, "acme", "t1", res));
    is_int(json_integer_value(json_object_get(c, "attempts")), 3, "three attempts so far");
    ok(json_array_size(json_object_get(c, "trace")) == 3, "three decisions in the trace");
    json_decref(c);
    ev("acme", "{\"type\":\"abandon\",\"call\":\"t1\"}");
}

static void test_overflow_and_limits(void)
{
    now_ms += 1000;
    ok(ev("acme",
          "{\"type\":\"offer\",\"call\":\"o1\",\"queue\":\"empty\",\"caller\":\"+15550000004\"}") ==
           0,
       "offer into a queue without members");
    ok(find(SB_ACT_WAIT, "o1") != NULL, "it waits");
    now_ms += 30000;
    ok(sb_tick(eng, res) == 0, "tick at max wait");
    const sb_action *o = find(SB_ACT_OVERFLOW, "o1");
    ok(o && strcmp(o->queue_id, "support") == 0, "moved to the overflow queue");
    ok(find(SB_ACT_RING, "o1") != NULL, "and rings there");
    ev("acme", "{\"type\":\"abandon\",\"call\":\"o1\"}");
    ok(put(sb_queue_put, "acme", "{\"id\":\"tiny\",\"max_length\":1}") == 0, "queue of length 1");
    ev("acme",
       "{\"type\":\"offer\",\"call\":\"m1\",\"queue\":\"tiny\",\"caller\":\"+15550000005\"}");
    ok(ev("acme",
          "{\"type\":\"offer\",\"call\":\"m2\",\"queue\":\"tiny\",\"caller\":\"+15550000006\"}") ==
           0,
       "a second offer into the full queue");
    const sb_action *r = find(SB_ACT_REJECT, "m2");
    ok(r && strcmp(r->reason, "queue full") == 0, "is rejected: queue full");
    ok(sb_queue_delete(eng, "acme", "tiny", res) == SB_ESTATE, "a queue with waiting calls stays");
    ev("acme", "{\"type\":\"abandon\",\"call\":\"m1\"}");
    ok(sb_queue_delete(eng, "acme", "tiny", res) == 0, "then it can be deleted");

    /* A call ringing or connected in a queue holds the queue too: its later
    ** events need it. */
    ok(put(sb_queue_put, "acme", "{\"id\":\"rq\",\"members\":[{\"agent\":\"carol\"}]}") == 0,
       "queue rq with carol");
    ev("acme", "{\"type\":\"offer\",\"call\":\"r1\",\"queue\":\"rq\",\"caller\":\"+15550000007\"}");
    ok(find(SB_ACT_RING, "r1") != NULL, "r1 rings carol");
    ok(sb_queue_delete(eng, "acme", "rq", res) == SB_ESTATE &&
           strstr(sb_result_message(res), "r1") != NULL,
       "a queue with a ringing call stays, and the error names the call");
    ev("acme",
       "{\"type\":\"ring_result\",\"call\":\"r1\",\"agent\":\"carol\",\"outcome\":\"answered\"}");
    ok(sb_queue_delete(eng, "acme", "rq", res) == SB_ESTATE, "and with a connected call");
    ok(ev("acme", "{\"type\":\"hangup\",\"call\":\"r1\"}") == 0, "the call ends normally");
    ok(sb_queue_delete(eng, "acme", "rq", res) == 0, "then the queue can be deleted");

    /* So does a live call hold its account. */
    ok(sb_account_put(eng, "{\"id\":\"brief\"}", 14, res) == 0 &&
           put(sb_agent_put, "brief", AGENT("ann", "")) == 0 &&
           put(sb_queue_put, "brief", "{\"id\":\"q\",\"members\":[{\"agent\":\"ann\"}]}") == 0,
       "account brief with an agent and a queue");
    ev("brief", "{\"type\":\"offer\",\"call\":\"b1\",\"queue\":\"q\",\"caller\":\"+15550000008\"}");
    ok(find(SB_ACT_RING, "b1") != NULL, "b1 rings ann");
    ok(sb_account_delete(eng, "brief", res) == SB_ESTATE &&
           strstr(sb_result_message(res), "b1") != NULL,
       "an account with a live call stays, and the error names the call");
    ok(sb_agent_get(eng, "brief", "ann", res) == 0, "nothing of it was deleted");
    ev("brief", "{\"type\":\"abandon\",\"call\":\"b1\"}");
    ok(sb_account_delete(eng, "brief", res) == 0, "after the call, the account can be deleted");
}

static void test_wrapup(void)
{
    ok(put(sb_queue_put, "acme",
           "{\"id\":\"wq\",\"wrapup\":15,\"members\":[{\"agent\":\"carol\"}]}") == 0,
       "queue with 15 s wrap-up");
    now_ms += 1000;
    ev("acme", "{\"type\":\"offer\",\"call\":\"u1\",\"queue\":\"wq\",\"caller\":\"+15550000007\"}");
    ev("acme",
       "{\"type\":\"ring_result\",\"call\":\"u1\",\"agent\":\"carol\",\"outcome\":\"answered\"}");
    now_ms += 30000;
    ev("acme", "{\"type\":\"hangup\",\"call\":\"u1\"}");
    is_str(agent_status("acme", "carol"), "wrap_up", "carol is in wrap-up after the call");
    ev("acme", "{\"type\":\"offer\",\"call\":\"u2\",\"queue\":\"wq\",\"caller\":\"+15550000008\"}");
    ok(find(SB_ACT_WAIT, "u2") != NULL, "a call in the meantime waits");
    now_ms += 15000;
    sb_tick(eng, res);
    const sb_action *ag = find(SB_ACT_AGENT, NULL);
    ok(ag && strcmp(ag->agent_id, "carol") == 0 && strcmp(ag->status, "available") == 0,
       "the wrap-up timer frees carol");
    const sb_action *r = find(SB_ACT_RING, "u2");
    ok(r && strcmp(r->agent_id, "carol") == 0, "and the waiting call rings her at once");
    ev("acme", "{\"type\":\"abandon\",\"call\":\"u2\"}");
}

static void test_transfer(void)
{
    now_ms += 1000;
    ev("acme",
       "{\"type\":\"offer\",\"call\":\"x1\",\"queue\":\"support\",\"caller\":\"+15550000009\"}");
    const sb_action *a = find(SB_ACT_RING, "x1");
    char who[64] = "";
    if (a) snprintf(who, sizeof who, "%s", a->agent_id);
    char json[256];
    snprintf(json, sizeof json,
             "{\"type\":\"ring_result\",\"call\":\"x1\",\"agent\":\"%s\",\"outcome\":\"answered\"}",
             who);
    ev("acme", json);
    now_ms += 20000;
    ok(ev("acme", "{\"type\":\"transfer\",\"call\":\"x1\",\"agent\":\"carol\"}") == 0 ||
           strcmp(who, "carol") == 0,
       "transfer the connected call to carol");
    a = find(SB_ACT_RING, "x1");
    ok(strcmp(who, "carol") == 0 || (a && strcmp(a->agent_id, "carol") == 0), "carol rings");
    ok(strcmp(who, "carol") == 0 || strcmp(agent_status("acme", who), "available") == 0,
       "the first agent is free again");
    ok(ev("acme", "{\"type\":\"transfer\",\"call\":\"x1\",\"queue\":\"nope\"}") == SB_ENOTFOUND,
       "transfer to an unknown queue is refused");
    ev("acme", "{\"type\":\"abandon\",\"call\":\"x1\"}");
}

static void test_bad_input(void)
{
    struct {
        const char *json;
        int code;
        const char *field;
    } cases[] = {
        {"{\"type\":\"offer\",\"call\":\"b1\",\"queue\":\"support\",\"caller\":\"12345\"}",
         SB_EINVAL, "caller"},
        {"{\"type\":\"offer\",\"call\":\"b1\",\"queue\":\"support\",\"caller\":\"+0123\"}",
         SB_EINVAL, "caller"},
        {"{\"type\":\"offer\",\"call\":\"b1\",\"queue\":\"support\",\"caller\":\"+15550000001\","
         "\"colour\":\"red\"}",
         SB_EINVAL, "colour"},
        {"{\"type\":\"offer\",\"call\":\"b1\",\"queue\":\"support\",\"caller\":\"+15550000001\","
         "\"priority\":101}",
         SB_EINVAL, "priority"},
        {"{\"type\":\"offer\",\"call\":\"b 1\",\"queue\":\"support\",\"caller\":\"+15550000001\"}",
         SB_EINVAL, "call"},
        {"{\"type\":\"offer\",\"call\":\"b1\",\"queue\":\"nope\",\"caller\":\"+15550000001\"}",
         SB_ENOTFOUND, "queue"},
        {"{\"type\":\"ring_result\",\"call\":\"b1\",\"agent\":\"alice\",\"outcome\":\"maybe\"}",
         SB_EINVAL, "outcome"},
        {"{\"type\":\"hangup\",\"call\":\"never\"}", SB_ENOTFOUND, "call"},
        {"{\"type\":\"launch\"}", SB_EINVAL, "type"},
        {"{\"type\":\"offer\",", SB_EINVAL, NULL},
        {"[1,2]", SB_EINVAL, NULL},
        {"{\"type\":\"agent_status\",\"agent\":\"alice\",\"status\":\"on_call\"}", SB_EINVAL,
         "status"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = ev("acme", cases[i].json);
        const char *f = sb_result_field(res);
        ok(rc == cases[i].code && (!cases[i].field || (f && strcmp(f, cases[i].field) == 0)),
           "bad event %zu refused with %s field %s (%s)", i, sb_strerror(cases[i].code),
           cases[i].field ? cases[i].field : "-", sb_result_message(res));
    }
    ok(sb_call_get(eng, "acme", "b1", res) == SB_ENOTFOUND, "and no call was created");
    const char *bad_agents[][2] = {
        {"{\"id\":\"z\",\"devices\":{}}", "devices"},
        {"{\"id\":\"z\",\"devices\":{\"fax\":\"x\"}}", "devices.fax"},
        {"{\"id\":\"z\",\"devices\":{\"mobile\":\"tel:+15550001\"},\"skills\":{\"a\":500}}",
         "skills.a"},
        {"{\"id\":\"z\",\"devices\":{\"mobile\":\"tel:+15550001\"},\"timezone\":\"Mars/Olympus\"}",
         "timezone"},
        {"{\"id\":\"z\",\"devices\":{\"mobile\":\"tel:+15550001\"},\"schedule\":[{\"days\":["
         "\"mon\"],"
         "\"from\":\"25:00\",\"to\":\"26:00\"}]}",
         "schedule[0].from"},
        {"{\"id\":\"z\",\"devices\":{\"mobile\":\"tel:+15550001\"},\"preferences\":{\"device\":"
         "\"landline\"}}",
         "preferences.device"},
        {"{\"id\":\"z\",\"devices\":{\"mobile\":\"tel:+15550001\"},\"weight\":\"heavy\"}",
         "weight"},
        {"{\"devices\":{\"mobile\":\"tel:+15550001\"}}", "id"},
    };
    for (size_t i = 0; i < sizeof bad_agents / sizeof *bad_agents; i++) {
        int rc = sb_agent_put(eng, "acme", bad_agents[i][0], strlen(bad_agents[i][0]), res);
        const char *f = sb_result_field(res);
        ok(rc == SB_EINVAL && f && strcmp(f, bad_agents[i][1]) == 0,
           "bad agent %zu refused naming %s (%s)", i, bad_agents[i][1], sb_result_message(res));
    }
    ok(sb_agent_get(eng, "acme", "z", res) == SB_ENOTFOUND, "and no agent was created");
    /* "timezone": null is no zone (UTC), as "schedule": null is no schedule. */
    const char *ntz = "{\"id\":\"ntz\",\"devices\":{\"mobile\":\"tel:+15550001\"},"
                      "\"timezone\":null,\"schedule\":null}";
    ok(sb_agent_put(eng, "acme", ntz, strlen(ntz), res) == 0,
       "an agent with \"timezone\": null is taken, as in UTC (%s)", sb_result_message(res));
    sb_agent_delete(eng, "acme", "ntz", res);
    /* null is "none" for the optional objects and lists too (Go's encoding/json
    ** writes an empty map or slice as null): left out of the stored document. */
    const char *nul_agent =
        "{\"id\":\"nul\",\"devices\":{\"mobile\":\"tel:+15550001\"},\"skills\":null,"
        "\"preferences\":{\"device\":null},\"schedule\":[{\"days\":[\"all\"],\"from\":\"00:00\","
        "\"to\":\"24:00\",\"devices\":null}]}";
    ok(sb_agent_put(eng, "acme", nul_agent, strlen(nul_agent), res) == 0,
       "an agent with skills, preferences.device and a window's devices null is taken (%s)",
       sb_result_message(res));
    {
        const char *got =
            sb_agent_get(eng, "acme", "nul", res) == 0 ? sb_result_json(res, NULL) : "";
        ok(!strstr(got, "null") && strstr(got, "\"devices_now\":[\"mobile\"]"),
           "read back without the nulls, the window allowing every device (%s)", got);
    }
    const char *nul_prefs =
        "{\"id\":\"nul\",\"devices\":{\"mobile\":\"tel:+15550001\"},\"preferences\":null}";
    ok(sb_agent_put(eng, "acme", nul_prefs, strlen(nul_prefs), res) == 0 &&
           sb_agent_get(eng, "acme", "nul", res) == 0 &&
           !strstr(sb_result_json(res, NULL), "preferences"),
       "\"preferences\": null is no preferences (%s)", sb_result_message(res));
    sb_agent_delete(eng, "acme", "nul", res);
    const char *nul_queue = "{\"id\":\"nulq\",\"members\":null}";
    ok(sb_queue_put(eng, "acme", nul_queue, strlen(nul_queue), res) == 0 &&
           sb_queue_get(eng, "acme", "nulq", res) == 0 &&
           strstr(sb_result_json(res, NULL), "\"members\":[]"),
       "a queue with \"members\": null has none (%s)", sb_result_message(res));
    const char *with_alice = "{\"id\":\"nulq\",\"members\":[{\"agent\":\"alice\"}]}";
    ok(sb_queue_put(eng, "acme", with_alice, strlen(with_alice), res) == 0 &&
           sb_queue_put(eng, "acme", nul_queue, strlen(nul_queue), res) == 0 &&
           sb_queue_get(eng, "acme", "nulq", res) == 0 &&
           strstr(sb_result_json(res, NULL), "\"agent\":\"alice\""),
       "replaced with \"members\": null, it keeps them, as left out (%s)", sb_result_message(res));
    const char *no_members = "{\"id\":\"nulq\",\"members\":[]}";
    ok(sb_queue_put(eng, "acme", no_members, strlen(no_members), res) == 0, "[] empties it");
    const char *nul_offer =
        "{\"type\":\"offer\",\"call\":\"nulc\",\"queue\":\"nulq\",\"attrs\":{\"skills\":null}}";
    ok(sb_submit_json(eng, "acme", nul_offer, strlen(nul_offer), res) == 0,
       "an offer with attrs.skills null is taken (%s)", sb_result_message(res));
    {
        const char *ab = "{\"type\":\"abandon\",\"call\":\"nulc\"}";
        ok(sb_submit_json(eng, "acme", ab, strlen(ab), res) == 0, "and ended (%s)",
           sb_result_message(res));
    }
    sb_queue_delete(eng, "acme", "nulq", res);
    const char *q = "{\"id\":\"bq\",\"members\":[{\"agent\":\"alice\"},{\"agent\":\"ghost\"}]}";
    ok(sb_queue_put(eng, "acme", q, strlen(q), res) == SB_EINVAL &&
           strcmp(sb_result_field(res), "members[1].agent") == 0,
       "a queue naming an unknown agent is refused at members[1].agent");
    ok(sb_queue_get(eng, "acme", "bq", res) == SB_ENOTFOUND, "and nothing of it was stored");
    is_str(agent_status("acme", "alice"), "available", "alice was not touched");
    const char *nul = "{\"type\":\"offer\",\"call\":\"b\\u0000\",\"queue\":\"support\"}";
    int nrc = sb_submit_json(eng, "acme", nul, strlen(nul), res);
    ok(nrc == SB_EINVAL && strstr(sb_result_message(res), "may not contain \\u0000") &&
           !strstr(sb_result_message(res), "JSON_"),
       "a \\u0000 in a string: a plain message (%s)", sb_result_message(res));
}

/* What the account's calls and agents look like, for "nothing changed". */
static void snapshot(char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = 0;
    if (sb_call_list(eng, "acme", NULL, res) == 0)
        n += (size_t)snprintf(buf + n, cap - n, "%s\n", sb_result_json(res, NULL));
    if (sb_agent_list(eng, "acme", res) == 0 && n < cap)
        snprintf(buf + n, cap - n, "%s\n", sb_result_json(res, NULL));
}

/* Each event type takes its own fields: one another type takes is refused
** naming it, and nothing changes. (A ring_result with "caller", "queue" and
** "status" in it connected the call.) */
static void test_foreign_fields(void)
{
    now_ms += 1000;
    ok(ev("acme", "{\"type\":\"offer\",\"call\":\"ff1\",\"queue\":\"support\",\"caller\":\"+"
                  "15550000041\"}") == 0,
       "ff1 offered");
    const sb_action *a = find(SB_ACT_RING, "ff1");
    char who[64] = "";
    if (a) snprintf(who, sizeof who, "%s", a->agent_id);
    ok(who[0] != 0, "ff1 rings %s", who);
    static const struct {
        const char *type, *fields, *foreign;
    } cases[] = {
        {"offer", "\"call\":\"ff2\",\"queue\":\"support\",\"caller\":\"+15550000042\"", "agent"},
        {"offer", "\"call\":\"ff2\",\"queue\":\"support\",\"caller\":\"+15550000042\"", "outcome"},
        {"offer", "\"call\":\"ff2\",\"queue\":\"support\",\"caller\":\"+15550000042\"", "status"},
        {"offer", "\"call\":\"ff2\",\"queue\":\"support\",\"caller\":\"+15550000042\"", "reason"},
        {"ring_result", "\"call\":\"ff1\",\"agent\":\"AGENT\",\"outcome\":\"answered\"", "caller"},
        {"ring_result", "\"call\":\"ff1\",\"agent\":\"AGENT\",\"outcome\":\"answered\"", "queue"},
        {"ring_result", "\"call\":\"ff1\",\"agent\":\"AGENT\",\"outcome\":\"answered\"", "status"},
        {"ring_result", "\"call\":\"ff1\",\"agent\":\"AGENT\",\"outcome\":\"answered\"", "called"},
        {"ring_result", "\"call\":\"ff1\",\"agent\":\"AGENT\",\"outcome\":\"answered\"",
         "priority"},
        {"ring_result", "\"call\":\"ff1\",\"agent\":\"AGENT\",\"outcome\":\"answered\"", "attrs"},
        {"ring_result", "\"call\":\"ff1\",\"agent\":\"AGENT\",\"outcome\":\"answered\"", "reason"},
        {"hangup", "\"call\":\"ff1\"", "agent"},
        {"hangup", "\"call\":\"ff1\"", "queue"},
        {"hangup", "\"call\":\"ff1\"", "outcome"},
        {"hangup", "\"call\":\"ff1\"", "reason"},
        {"abandon", "\"call\":\"ff1\"", "agent"},
        {"abandon", "\"call\":\"ff1\"", "caller"},
        {"abandon", "\"call\":\"ff1\"", "status"},
        {"transfer", "\"call\":\"ff1\",\"queue\":\"empty\"", "caller"},
        {"transfer", "\"call\":\"ff1\",\"queue\":\"empty\"", "outcome"},
        {"transfer", "\"call\":\"ff1\",\"queue\":\"empty\"", "priority"},
        {"transfer", "\"call\":\"ff1\",\"queue\":\"empty\"", "attrs"},
        {"agent_status", "\"agent\":\"AGENT\",\"status\":\"paused\"", "call"},
        {"agent_status", "\"agent\":\"AGENT\",\"status\":\"paused\"", "caller"},
        {"agent_status", "\"agent\":\"AGENT\",\"status\":\"paused\"", "queue"},
        {"agent_status", "\"agent\":\"AGENT\",\"status\":\"paused\"", "outcome"},
    };
    char before[8192], after[8192];
    int changed = 0;
    snapshot(before, sizeof before);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char fields[256], json[512], want[128];
        /* AGENT: the agent ff1 rings */
        const char *ag = strstr(cases[i].fields, "AGENT");
        if (ag)
            snprintf(fields, sizeof fields, "%.*s%s%s", (int)(ag - cases[i].fields),
                     cases[i].fields, who, ag + 5);
        else
            snprintf(fields, sizeof fields, "%s", cases[i].fields);
        const char *f = cases[i].foreign;
        const char *v = !strcmp(f, "priority") ? "7"
                        : !strcmp(f, "attrs")  ? "{\"a\":1}"
                        : !strcmp(f, "caller") ? "\"+15550000043\""
                        : !strcmp(f, "status") ? "\"available\""
                                               : "\"support\"";
        if (!strcmp(f, "outcome")) v = "\"answered\"";
        if (!strcmp(f, "agent") || !strcmp(f, "call")) v = "\"ff1\"";
        snprintf(json, sizeof json, "{\"type\":\"%s\",%s,\"%s\":%s}", cases[i].type, fields, f, v);
        snprintf(want, sizeof want, "unknown field '%s' for a%s %s event", f,
                 strchr("aeiou", cases[i].type[0]) ? "n" : "", cases[i].type);
        int rc = ev("acme", json);
        const char *rf = sb_result_field(res);
        ok(rc == SB_EINVAL && rf && !strcmp(rf, f) && strstr(sb_result_message(res), want),
           "%s with \"%s\": SB_EINVAL naming it (%s)", cases[i].type, f, sb_result_message(res));
        snapshot(after, sizeof after);
        if (strcmp(before, after)) {
            diag("changed by %s: %s", json, after);
            snprintf(before, sizeof before, "%s", after);
            changed++;
        }
    }
    is_int(changed, 0, "none of them changed a call or an agent");
    ok(ev("acme", "{\"type\":\"launch\",\"call\":\"ff1\",\"colour\":\"red\"}") == SB_EINVAL &&
           !strcmp(sb_result_field(res), "colour") &&
           !strcmp(sb_result_message(res), "unknown field 'colour'"),
       "a field no event takes, with an unknown type: unknown field (%s)", sb_result_message(res));
    ok(ev("acme", "{\"type\":\"launch\",\"call\":\"ff1\",\"agent\":\"x\"}") == SB_EINVAL &&
           !strcmp(sb_result_field(res), "type"),
       "fields some event takes, with an unknown type: the type is refused (%s)",
       sb_result_message(res));
    ok(ev("acme", "{\"type\":\"hangup\",\"call\":\"ff1\",\"colour\":\"red\"}") == SB_EINVAL &&
           !strcmp(sb_result_field(res), "colour") &&
           !strcmp(sb_result_message(res),
                   "unknown field 'colour' for a hangup event (expected call, by)"),
       "a field no event takes, with a known type: the fields it takes (%s)",
       sb_result_message(res));
    snprintf(after, sizeof after,
             "{\"type\":\"ring_result\",\"call\":\"ff1\",\"agent\":\"%s\",\"outcome\":\"answered\","
             "\"caller\":\"+15550000043\",\"queue\":\"nonexistent\",\"status\":\"whatever\","
             "\"called\":\"xx\",\"priority\":99,\"attrs\":{\"a\":1}}",
             who);
    ok(ev("acme", after) == SB_EINVAL, "the ring_result the report gave: refused (%s)",
       sb_result_message(res));
    ok(sb_call_get(eng, "acme", "ff1", res) == 0 &&
           strstr(sb_result_json(res, NULL), "\"state\":\"ringing\""),
       "... ff1 still rings");
    ok(ev("acme", "{\"type\":\"abandon\",\"call\":\"ff1\"}") == 0, "ff1 abandoned");
}

/* Every event refused counts under its type and as an error, whether the
** engine refused it or its JSON did; one of no known type as an error. */
static void test_refused_counted(void)
{
    static const char *const names[] = {"offer",    "ring_result",  "hangup", "abandon",
                                        "transfer", "agent_status", "tick",   "errors"};
    json_int_t was[8], now[8];
    for (int round = 0; round < 2; round++) {
        json_t *o = get_json(sb_stats(eng, res));
        json_t *evs = json_object_get(o, "events");
        for (int i = 0; i < 8; i++)
            (round ? now : was)[i] = json_integer_value(json_object_get(evs, names[i]));
        json_decref(o);
        if (round) break;
        ev("acme",
           "{\"type\":\"offer\",\"call\":\"rc1\",\"queue\":\"support\",\"caller\":\"12345\"}");
        ev("acme",
           "{\"type\":\"offer\",\"call\":\"rc1\",\"queue\":\"nope\",\"caller\":\"+15550000044\"}");
        ev("acme",
           "{\"type\":\"offer\",\"call\":\"rc1\",\"queue\":\"support\",\"caller\":\"+15550000044\","
           "\"shoe_size\":9}");
        ev("acme",
           "{\"type\":\"ring_result\",\"call\":\"rc1\",\"agent\":\"alice\",\"outcome\":\"maybe\"}");
        ev("acme", "{\"type\":\"ring_result\",\"call\":\"rc1\",\"agent\":\"alice\"}");
        ev("acme", "{\"type\":\"hangup\",\"call\":\"rc1\",\"agent\":\"alice\"}");
        ev("acme", "{\"type\":\"agent_status\",\"agent\":\"alice\",\"status\":\"on_call\"}");
        ev("acme", "{\"type\":\"launch\"}");
        ev("acme", "{\"call\":\"rc1\"}");
        ev("acme", "{\"type\":\"offer\",");
        sb_event e0 = {.account = "acme", .call_id = "rc1"}; /* type 0: none */
        sb_submit(eng, &e0, res);
    }
    static const json_int_t want[8] = {3, 2, 1, 0, 0, 1, 0, 11};
    for (int i = 0; i < 8; i++)
        is_int((int)(now[i] - was[i]), (int)want[i], "events.%s counts the refused ones", names[i]);
}

/* A queue or account naming a policy, queue or member that is not there
** is refused at once, naming the field: a typo would otherwise show only
** when calls arrive (every decision a fallback). Nothing is stored. */
static void test_references(void)
{
    struct {
        const char *json, *field;
    } cases[] = {
        {"{\"id\":\"ref\",\"policy\":\"no-such-policy\"}", "policy"},
        {"{\"id\":\"ref\",\"overflow\":\"no-such-queue\"}", "overflow"},
        {"{\"id\":\"ref\",\"members\":[{\"agent\":\"alice\"},{\"agent\":\"bob\"},"
         "{\"agent\":\"alice\",\"tier\":2}]}",
         "members[2].agent"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = sb_queue_put(eng, "acme", cases[i].json, strlen(cases[i].json), res);
        const char *f = sb_result_field(res);
        ok(rc == SB_EINVAL && f && strcmp(f, cases[i].field) == 0, "queue %s: SB_EINVAL on %s (%s)",
           cases[i].json, cases[i].field, sb_result_message(res));
        ok(sb_queue_get(eng, "acme", "ref", res) == SB_ENOTFOUND, "and no queue was stored");
    }
    const char *acct = "{\"id\":\"acme\",\"retention\":\"retention/no-such-policy\"}";
    int rc = sb_account_put(eng, acct, strlen(acct), res);
    ok(rc == SB_EINVAL && sb_result_field(res) && !strcmp(sb_result_field(res), "retention"),
       "account: SB_EINVAL on an unknown retention policy (%s)", sb_result_message(res));
    json_t *a = get_json(sb_account_get(eng, "acme", res));
    ok(a && json_is_null(json_object_get(a, "retention")), "and the account is unchanged");
    json_decref(a);
    const char *keeper = "local P = {}\n"
                         "function P.retain(record, ctx) return { keep = true } end\n"
                         "return P\n";
    ok(sb_policy_put(eng, "acme", "keeper", keeper, strlen(keeper), NULL, res) == 0,
       "upload a retention policy");
    acct = "{\"id\":\"acme\",\"retention\":\"keeper\"}";
    ok(sb_account_put(eng, acct, strlen(acct), res) == 0, "then the account can name it");
    acct = "{\"id\":\"acme\"}";
    ok(sb_account_put(eng, acct, strlen(acct), res) == 0, "and can be unset");

    /* Dial URIs: checked where their form is known. */
    static const struct {
        const char *uri;
        int ok;
    } uris[] = {
        {"tel:12345", 0},
        {"tel:+44 7700 900001", 0},
        {"sip:", 0},
        {"sip:a b@pbx", 0},
        {"sip:\\u0001x@pbx", 0},
        {"tel:+44-7700-900001", 1},
        {"+447700900001", 1},
        {"sips:ann@pbx.example", 1},
        {"user/1000@pbx.example", 1},
        {"TEL:+447700900001", 1},
        {"tel:+14155550123;ext=12", 1},
        {"tel:+14155550123;", 0},
        {"tel:;ext=12", 0},
        {"sip:@pbx.example", 0},
        {"sip:ann@", 0},
        {"sips:ann@;transport=tls", 0},
        {"sip:;lr", 0},
        {"sip:pbx.example", 1},
        {"sip:ann@pbx.example;transport=tcp", 1},
    };
    for (size_t i = 0; i < sizeof uris / sizeof uris[0]; i++) {
        char json[200];
        snprintf(json, sizeof json, "{\"id\":\"uri\",\"devices\":{\"mobile\":\"%s\"}}",
                 uris[i].uri);
        int urc = sb_agent_put(eng, "acme", json, strlen(json), res);
        const char *f = sb_result_field(res);
        if (uris[i].ok)
            ok(urc == 0, "dial URI %s is accepted", uris[i].uri);
        else
            ok(urc == SB_EINVAL && f && !strcmp(f, "devices.mobile"),
               "dial URI %s: SB_EINVAL on devices.mobile (%s)", uris[i].uri,
               sb_result_message(res));
    }
    ok(sb_agent_delete(eng, "acme", "uri", res) == 0, "(the test agent goes)");

    /* A member put without a position goes after the last, within range. */
    ok(put(sb_queue_put, "acme",
           "{\"id\":\"pq\",\"members\":[{\"agent\":\"alice\",\"position\":"
           "1000000}]}") == 0 &&
           sb_member_put(eng, "acme", "pq", "bob", NULL, 0, res) == 0,
       "queue pq: alice at the last position, bob added without one");
    json_t *pq = get_json(sb_queue_get(eng, "acme", "pq", res));
    json_t *pm = json_object_get(pq, "members");
    long long maxpos = 0;
    for (size_t i = 0; i < json_array_size(pm); i++) {
        long long ps = json_integer_value(json_object_get(json_array_get(pm, i), "position"));
        if (ps > maxpos) maxpos = ps;
    }
    ok(json_array_size(pm) == 2 && maxpos == 1000000, "bob's position stays in range (%lld)",
       maxpos);
    json_decref(pq);
    /* "position": null is no position: bob keeps his own. */
    ok(sb_member_put(eng, "acme", "pq", "bob", "{\"position\":7}", 14, res) == 0 &&
           sb_member_put(eng, "acme", "pq", "bob", "{\"position\":null}", 17, res) == 0,
       "bob put at position 7, then with position null");
    pq = get_json(sb_queue_get(eng, "acme", "pq", res));
    long long bobpos = -1;
    pm = json_object_get(pq, "members");
    for (size_t i = 0; i < json_array_size(pm); i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(pm, i), "agent")), "bob"))
            bobpos = json_integer_value(json_object_get(json_array_get(pm, i), "position"));
    is_int((int)bobpos, 7, "... keeps position 7");
    json_decref(pq);
    ok(sb_queue_delete(eng, "acme", "pq", res) == 0, "(pq goes)");

    /* A queue takes 10,000 members, in its document or added one by one. */
    int made = sb_account_put(eng, "{\"id\":\"big\"}", 12, res) == 0;
    char doc[128];
    for (int i = 0; made && i <= 10000; i++) {
        snprintf(doc, sizeof doc, "{\"id\":\"m%d\",\"devices\":{\"softphone\":\"sip:m%d@x\"}}", i,
                 i);
        made = sb_agent_put(eng, "big", doc, strlen(doc), res) == 0;
    }
    size_t cap = 10000 * 20 + 64, n = 0;
    char *qd = malloc(cap);
    n += (size_t)snprintf(qd + n, cap - n, "{\"id\":\"bq\",\"members\":[");
    for (int i = 0; i < 10000; i++)
        n += (size_t)snprintf(qd + n, cap - n, "%s{\"agent\":\"m%d\"}", i ? "," : "", i);
    snprintf(qd + n, cap - n, "]}");
    ok(made && sb_queue_put(eng, "big", qd, strlen(qd), res) == 0,
       "queue bq with 10,000 members in its document (%s)", sb_result_message(res));
    free(qd);
    int mrc = sb_member_put(eng, "big", "bq", "m10000", NULL, 0, res);
    ok(mrc == SB_EINVAL && !strcmp(sb_result_field(res), "agent") &&
           strstr(sb_result_message(res), "10000"),
       "a 10,001st member added alone: SB_EINVAL on agent (%s)", sb_result_message(res));
    json_t *bq = get_json(sb_queue_get(eng, "big", "bq", res));
    is_int((int)json_array_size(json_object_get(bq, "members")), 10000, "... bq still has 10,000");
    json_decref(bq);
    ok(sb_member_put(eng, "big", "bq", "m5", "{\"tier\":2}", 10, res) == 0,
       "a member already there is still updated");
    ok(sb_account_delete(eng, "big", res) == 0, "(account big goes)");

    /* A status set by the agent's document drops a pause's reason. */
    ok(ev("acme", "{\"type\":\"agent_status\",\"agent\":\"carol\",\"status\":\"paused\","
                  "\"reason\":\"lunch\"}") == 0,
       "carol paused for lunch");
    ok(put(sb_agent_put, "acme", AGENT("carol", ",\"skills\":{\"billing\":4}")) == 0,
       "carol's document put back with status available");
    json_t *cj = get_json(sb_agent_get(eng, "acme", "carol", res));
    const char *why = json_string_value(json_object_get(cj, "reason"));
    ok(!strcmp(json_string_value(json_object_get(cj, "status")), "available") && (!why || !*why),
       "carol is available, and no longer says lunch (%s)", why ? why : "none");
    json_decref(cj);

    /* A queue another overflows into stays until that one changes. */
    ok(put(sb_queue_put, "acme", "{\"id\":\"spill\"}") == 0 &&
           put(sb_queue_put, "acme", "{\"id\":\"front\",\"overflow\":\"spill\"}") == 0,
       "queue front overflows into spill");
    ok(sb_queue_delete(eng, "acme", "spill", res) == SB_ESTATE &&
           strstr(sb_result_message(res), "front") != NULL,
       "spill cannot be deleted while front overflows into it (%s)", sb_result_message(res));
    ok(put(sb_queue_put, "acme", "{\"id\":\"front\"}") == 0 &&
           sb_queue_delete(eng, "acme", "spill", res) == 0 &&
           sb_queue_delete(eng, "acme", "front", res) == 0,
       "after front drops its overflow, both can be deleted");
}

static void test_isolation(void)
{
    ok(sb_account_put(eng, "{\"id\":\"other\"}", 14, res) == 0, "second account");
    ok(sb_agent_get(eng, "other", "alice", res) == SB_ENOTFOUND, "cannot read acme's agent");
    char msg_other[256], msg_none[256];
    snprintf(msg_other, sizeof msg_other, "%s", sb_result_message(res));
    sb_agent_get(eng, "other", "nobody-at-all", res);
    snprintf(msg_none, sizeof msg_none, "%s", sb_result_message(res));
    ok(strstr(msg_other, "alice") && strstr(msg_none, "nobody-at-all"),
       "the not-found message names only the id asked for");
    ok(sb_queue_get(eng, "other", "support", res) == SB_ENOTFOUND, "cannot read acme's queue");
    ok(ev("other", "{\"type\":\"offer\",\"call\":\"i1\",\"queue\":\"support\",\"caller\":\"+"
                   "15550000010\"}") == SB_ENOTFOUND,
       "cannot offer into acme's queue");
    ok(ev("other", "{\"type\":\"agent_status\",\"agent\":\"alice\",\"status\":\"paused\"}") ==
           SB_ENOTFOUND,
       "cannot pause acme's agent");
    ok(put(sb_agent_put, "other", AGENT("alice", "")) == 0, "other has its own alice");
    is_str(agent_status("acme", "alice"), "available", "acme's alice is unaffected");
    ev("acme", "{\"type\":\"offer\",\"call\":\"shared-id\",\"queue\":\"support\",\"caller\":\"+"
               "15550000011\"}");
    ok(sb_call_get(eng, "other", "shared-id", res) == SB_ENOTFOUND, "cannot read acme's call");
    ok(sb_agent_delete(eng, "other", "bob", res) == SB_ENOTFOUND, "cannot delete acme's agent");
    ev("acme", "{\"type\":\"abandon\",\"call\":\"shared-id\"}");
    ok(sb_account_delete(eng, "other", res) == 0, "delete the second account");
    ok(sb_agent_get(eng, "other", "alice", res) == SB_ENOTFOUND, "its data is gone");
    is_str(agent_status("acme", "alice"), "available", "acme's data stays");
}

typedef struct {
    int id, n, errors;
} worker;

static void *offer_worker(void *arg)
{
    worker *w = arg;
    sb_result *r = sb_result_new();
    for (int i = 0; i < w->n; i++) {
        char json[256], call[32];
        snprintf(call, sizeof call, "th%d-%d", w->id, i);
        snprintf(json, sizeof json,
                 "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"support\",\"caller\":\"+15550001%"
                 "03d\"}",
                 call, i % 1000);
        if (sb_submit_json(eng, "acme", json, strlen(json), r)) w->errors++;
        for (size_t k = 0; k < sb_result_count(r); k++) {
            const sb_action *a = sb_result_action(r, k);
            if (a->type != SB_ACT_RING) continue;
            snprintf(json, sizeof json,
                     "{\"type\":\"ring_result\",\"call\":\"%s\",\"agent\":\"%s\",\"outcome\":"
                     "\"answered\"}",
                     a->call_id, a->agent_id);
            char cid[64];
            snprintf(cid, sizeof cid, "%s", a->call_id);
            if (sb_submit_json(eng, "acme", json, strlen(json), r) == 0) {
                snprintf(json, sizeof json, "{\"type\":\"hangup\",\"call\":\"%s\"}", cid);
                if (sb_submit_json(eng, "acme", json, strlen(json), r)) w->errors++;
            }
            break;
        }
        snprintf(json, sizeof json, "{\"type\":\"abandon\",\"call\":\"%s\"}", call);
        sb_submit_json(eng, "acme", json, strlen(json), r); /* may be ended already */
    }
    sb_result_free(r);
    return NULL;
}

/* An injected clock at the end of int64_t (2^63 - 1, which every binding
** takes): the engine reads it as 9999-12-31T23:59:59.999Z, so a ring's
** timeout lands after it and sb_tick returns. It wrapped to the past, and
** sb_tick fired the same timer for ever. */
static void test_clock_extremes(void)
{
    int64_t saved = now_ms;
    now_ms = INT64_MAX;
    ok(sb_account_put(eng, "{\"id\":\"far\"}", 12, res) == 0 &&
           put(sb_agent_put, "far", AGENT("zed", "")) == 0 &&
           put(sb_queue_put, "far", "{\"id\":\"q\",\"members\":[{\"agent\":\"zed\"}]}") == 0,
       "clock at 2^63 - 1: an account provisioned (%s)", sb_result_message(res));
    ok(ev("far", "{\"type\":\"offer\",\"call\":\"f1\",\"queue\":\"q\"}") == 0 &&
           find(SB_ACT_RING, "f1"),
       "... a call offered rings (%s)", sb_result_message(res));
    alarm(30); /* a tick that never returns fails the test, not the suite */
    int trc = sb_tick(eng, res);
    alarm(0);
    int f1_acted = 0;
    for (size_t i = 0; i < sb_result_count(res); i++) {
        const sb_action *a = sb_result_action(res, i);
        f1_acted |= a->call_id && !strcmp(a->call_id, "f1");
    }
    ok(trc == 0 && !f1_acted, "... and a tick returns, the ring's timeout not come: it falls after "
                              "9999-12-31T23:59:59.999Z, not in the past");
    ok(ev("far", "{\"type\":\"abandon\",\"call\":\"f1\"}") == 0, "... the call ends");
    now_ms = -1000;
    int offered = ev("far", "{\"type\":\"offer\",\"call\":\"f2\",\"queue\":\"q\"}");
    json_t *c = get_json(sb_call_get(eng, "far", "f2", res));
    ok(offered == 0 && c && json_integer_value(json_object_get(c, "offered_ms")) == 0 &&
           ev("far", "{\"type\":\"abandon\",\"call\":\"f2\"}") == 0,
       "a clock before 1970 is read as 1970: a call offered at 0 ms, and ended (%s)",
       sb_result_message(res));
    json_decref(c);
    now_ms = saved;
}

static void test_threads(void)
{
    pthread_t th[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){i, 200, 0};
        pthread_create(&th[i], NULL, offer_worker, &w[i]);
    }
    int errors = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        errors += w[i].errors;
    }
    is_int(errors, 0, "4 threads x 200 call cycles without an error");
    const char *names[] = {"alice", "bob", "carol"};
    int free_now = 0;
    for (int i = 0; i < 3; i++)
        free_now += strcmp(agent_status("acme", names[i]), "available") == 0;
    is_int(free_now, 3, "every agent is free at the end: none stuck reserved or double-booked");
}

static void test_persistence(void)
{
    ev("acme",
       "{\"type\":\"offer\",\"call\":\"p1\",\"queue\":\"support\",\"caller\":\"+15550000012\"}");
    const sb_action *a = find(SB_ACT_RING, "p1");
    char who[64] = "";
    if (a) snprintf(who, sizeof who, "%s", a->agent_id);
    sb_close(eng);
    eng = open_engine(NULL);
    ok(eng != NULL, "reopened");
    is_str(agent_status("acme", who), "reserved",
           "the ringing agent is still reserved after reopening");
    json_t *c = get_json(sb_call_get(eng, "acme", "p1", res));
    is_str(json_string_value(json_object_get(c, "state")), "ringing", "the call is still ringing");
    json_decref(c);
    ev("acme", "{\"type\":\"abandon\",\"call\":\"p1\"}");
    is_str(agent_status("acme", who), "available", "and can be finished");
}

static long long schema_at(long long set)
{
    return test_schema_at(dir, 64 << 20, set);
}

/* A directory written by a newer Switchboard is refused with a clear error;
** an older one is read and marked with this version. */
static void test_schema(void)
{
    sb_close(eng);
    eng = NULL;
    long long cur = schema_at(-1);
    ok(cur >= 2, "the directory is marked with its format (%lld)", cur);
    schema_at(cur + 1);
    sb_engine *e = NULL;
    sb_config cfg;
    sb_config_init(&cfg);
    cfg.data_dir = dir;
    cfg.policy_dir = "policies";
    cfg.log = quiet;
    ok(sb_open(&e, &cfg, res) == SB_EVERSION && e == NULL, "a newer format is refused");
    ok(strstr(sb_result_message(res), "newer Switchboard") != NULL, "saying why: %s",
       sb_result_message(res));
    schema_at(1);
    eng = open_engine(NULL);
    ok(eng != NULL, "format 1 opens");
    ok(eng && sb_account_list(eng, res) == 0 && sb_stats(eng, res) == 0,
       "and reads (sb_stats reads under the write lock, in a write transaction it aborts)");
    sb_close(eng); /* (LMDB: one open of a directory per process at a time) */
    is_int((int)schema_at(-1), 1,
           "an open that writes nothing leaves the format (a backup or a read taken beside an "
           "older version's daemon: that version could no longer open it)");
    eng = open_engine(NULL);
    const char *acct = "{\"id\":\"schema-mark\"}";
    ok(eng && sb_account_put(eng, acct, strlen(acct), res) == 0, "a write");
    sb_close(eng);
    is_int((int)schema_at(-1), (int)cur, "marks it with the current format");
    eng = open_engine(NULL);
}

/* A call whose queue an older version let go while the call rang (before
** queue deletion waited for live calls) can never end; it must not hold
** its account forever. Made by deleting the queue's record under it. */
static void test_stranded_call(void)
{
    sb_close(eng);
    char keep[sizeof dir];
    memcpy(keep, dir, sizeof dir);
    snprintf(dir, sizeof dir, "%s-stranded", keep);
    eng = open_engine(NULL);
    ok(eng && sb_account_put(eng, "{\"id\":\"old\"}", 12, res) == 0 &&
           put(sb_agent_put, "old", AGENT("al", "")) == 0 &&
           put(sb_queue_put, "old", "{\"id\":\"q\",\"members\":[{\"agent\":\"al\"}]}") == 0,
       "stranded: account old (number 1) with queue q (number 1)");
    ev("old", "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"q\",\"caller\":\"+15550000009\"}");
    ev("old",
       "{\"type\":\"ring_result\",\"call\":\"c1\",\"agent\":\"al\",\"outcome\":\"answered\"}");
    sb_close(eng);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    int gone = 0;
    unsigned char qk[9] = {5, 0, 0, 0, 1, 0, 0, 0, 1}; /* queues table: acct 1, queue 1 */
    MDB_val k = {sizeof qk, qk};
    if (mdb_env_create(&env) == 0) {
        mdb_env_set_mapsize(env, 64 << 20);
        if (mdb_env_open(env, dir, 0, 0600) == 0 && mdb_txn_begin(env, NULL, 0, &txn) == 0) {
            gone = mdb_dbi_open(txn, NULL, 0, &dbi) == 0 && mdb_del(txn, dbi, &k, NULL) == 0;
            mdb_txn_commit(txn);
        }
        mdb_env_close(env);
    }
    ok(gone, "stranded: the queue's record deleted under its connected call");
    eng = open_engine(NULL);
    ok(sb_account_delete(eng, "old", res) == 0, "stranded: the account can still be deleted (%s)",
       sb_result_message(res));
    sb_close(eng);
    rmtree(dir);
    memcpy(dir, keep, sizeof dir);
    eng = open_engine(NULL);
}

/* An engine opened before fork() is the parent's (LMDB forbids using an
** environment after fork()): in the child every call is refused with
** SB_ESTATE and a message that says why, sb_close leaves the parent's
** environment alone, and the parent goes on as before. The child reports
** through its exit status: a bit per check that failed. */
static void test_fork(void)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int bad = 0;
        sb_result *r = sb_result_new();
        int rc = sb_agent_get(eng, "acme", "alice", r);
        if (rc != SB_ESTATE || !strstr(sb_result_message(r), "another process")) bad |= 1;
        const char *offer = "{\"type\":\"offer\",\"call\":\"f1\",\"queue\":\"support\",\"caller\":"
                            "\"+15550000031\"}";
        rc = sb_submit_json(eng, "acme", offer, strlen(offer), r);
        if (rc != SB_ESTATE) bad |= 2;
        if (sb_sync(eng) != SB_ESTATE) bad |= 4;
        char bdir[300];
        snprintf(bdir, sizeof bdir, "%s-forkbackup", dir);
        if (sb_backup(eng, bdir, r) != SB_ESTATE || access(bdir, F_OK) == 0) bad |= 8;
        sb_close(eng);
        _exit(bad);
    }
    int st = 0;
    ok(pid > 0 && waitpid(pid, &st, 0) == pid, "forked a child");
    ok(WIFEXITED(st) && (WEXITSTATUS(st) & 1) == 0,
       "in the child of a fork, a read is refused: SB_ESTATE, opened by another process");
    ok(WIFEXITED(st) && (WEXITSTATUS(st) & 2) == 0, "... an event too");
    ok(WIFEXITED(st) && (WEXITSTATUS(st) & 4) == 0, "... sb_sync");
    ok(WIFEXITED(st) && (WEXITSTATUS(st) & 8) == 0, "... and sb_backup, creating nothing");
    is_str(agent_status("acme", "alice"), "available",
           "the parent's engine works after the child closed its copy");
    ok(ev("acme", "{\"type\":\"offer\",\"call\":\"f2\",\"queue\":\"support\",\"caller\":\"+"
                  "15550000032\"}") == 0 &&
           find(SB_ACT_RING, "f2") != NULL,
       "and routes: no call from the child was recorded");
    ev("acme", "{\"type\":\"abandon\",\"call\":\"f2\"}");
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sb-test-engine-%d", (int)getpid());
    res = sb_result_new();
    ok(sb_open(&eng, NULL, res) == SB_EINVAL && eng == NULL, "open without config fails cleanly");
    sb_config_init(NULL); /* a no-op, not a crash */
    sb_config cfg0;
    sb_config_init(&cfg0);
    cfg0.data_dir = dir;
    cfg0.policy_dir = "/nonexistent/policies";
    cfg0.log = quiet;
    int orc = sb_open(&eng, &cfg0, res);
    ok(orc == SB_EINVAL && eng == NULL && sb_result_field(res) &&
           !strcmp(sb_result_field(res), "policy_dir"),
       "a policy_dir that is not there is refused: %s", sb_result_message(res));
    struct stat dst;
    ok(stat(dir, &dst) != 0, "and nothing was created");
    cfg0.policy_dir = NULL;
    cfg0.map_size = 16 << 10;
    orc = sb_open(&eng, &cfg0, res);
    ok(orc == SB_EINVAL && sb_result_field(res) && !strcmp(sb_result_field(res), "map_size"),
       "a map_size under 64 KiB is refused: %s", sb_result_message(res));
    cfg0.map_size = 0; /* the default, 64 MiB */
    cfg0.map_max = 1 << 20;
    orc = sb_open(&eng, &cfg0, res);
    ok(orc == SB_EINVAL && sb_result_field(res) && !strcmp(sb_result_field(res), "map_max"),
       "a map_max under the default map size is refused: %s", sb_result_message(res));
    cfg0.map_size = 1 << 20;
    cfg0.map_max = 512 << 10;
    orc = sb_open(&eng, &cfg0, res);
    ok(orc == SB_EINVAL && sb_result_field(res) && !strcmp(sb_result_field(res), "map_max"),
       "a map_max under map_size is refused: %s", sb_result_message(res));
    ok(stat(dir, &dst) != 0, "and nothing was created");
    eng = open_engine(NULL);
    ok(eng != NULL, "engine opened on %s", dir);
    if (!eng) return done_testing();
    provision();
    test_cycle();
    test_device_follows_document();
    test_waiting_and_freeing();
    test_timeout_and_no_answer();
    test_overflow_and_limits();
    test_wrapup();
    test_transfer();
    test_bad_input();
    test_foreign_fields();
    test_refused_counted();
    test_references();
    test_stranded_call();
    test_isolation();
    test_threads();
    test_persistence();
    test_fork();
    test_schema();
    test_clock_extremes();
    sb_close(eng);
    sb_result_free(res);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) diag("could not remove %s", dir);
    return done_testing();
}
