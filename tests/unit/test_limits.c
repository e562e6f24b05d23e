/*
** test_limits.c — an account's quotas, the "limits" of its document: one
** agent, queue or policy more than its limit is refused with SB_ELIMIT
** naming the limit and changes nothing, a replace is not one more, an offer
** past live_calls is rejected (a REJECT action and a rejected record, as a
** full queue rejects), a limit lowered below what the account has keeps
** what it has and refuses more, bad limits are refused naming the field,
** another account is not touched, the limits and counts survive a reopen,
** and an account stored before account format 2 (no counts) is counted at
** its next put and limited from then on.
*/
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"

#include <jansson.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

static char dir[256];
static sb_engine *eng;
static sb_result *res;

static sb_engine *open_engine(void)
{
    sb_config cfg;
    test_engine_config(&cfg, dir, "policies", 4 << 20);
    return test_open(&cfg, res);
}

static int acct_put(const char *json)
{
    return sb_account_put(eng, json, strlen(json), res);
}

static int agent_put(const char *acct, const char *id)
{
    char json[256];
    snprintf(json, sizeof json,
             "{\"id\":\"%s\",\"devices\":{\"softphone\":\"sip:%s@pbx.example\"}}", id, id);
    return sb_agent_put(eng, acct, json, strlen(json), res);
}

static int queue_put(const char *acct, const char *id)
{
    char json[256];
    snprintf(json, sizeof json, "{\"id\":\"%s\",\"policy\":\"longest-idle\"}", id);
    return sb_queue_put(eng, acct, json, strlen(json), res);
}

static const char *pol_src = "local P = {}\n"
                             "function P.route(call, agents, ctx) return { wait = 5 } end\n"
                             "return P\n";

static int policy_put(const char *acct, const char *name)
{
    return sb_policy_put(eng, acct, name, pol_src, strlen(pol_src), NULL, res);
}

static int offer(const char *acct, const char *call)
{
    return test_eventf(eng, res, acct,
                       "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"q1\","
                       "\"caller\":\"+442079460001\"}",
                       call);
}

/* The account as sb_account_get reads it (NULL when it fails). */
static json_t *acct_get(const char *acct)
{
    sb_result *r = sb_result_new();
    json_t *o = sb_account_get(eng, acct, r) ? NULL : json_loads(sb_result_json(r, NULL), 0, NULL);
    sb_result_free(r);
    return o;
}

/* <part>.<what> of the account ("usage" or "limits"); -1 when it has none. */
static long long acct_num(const char *acct, const char *part, const char *what)
{
    json_t *o = acct_get(acct);
    json_t *n = json_object_get(json_object_get(o, part), what);
    long long v = json_is_integer(n) ? (long long)json_integer_value(n) : -1;
    json_decref(o);
    return v;
}

static long long usage(const char *acct, const char *what)
{
    return acct_num(acct, "usage", what);
}

static long long limit(const char *acct, const char *what)
{
    return acct_num(acct, "limits", what);
}

static int refused_limit(int rc, const char *field, const char *said)
{
    return rc == SB_ELIMIT && sb_result_field(res) && !strcmp(sb_result_field(res), field) &&
           strstr(sb_result_message(res), said) != NULL;
}

static void test_bad_limits(void)
{
    ok(acct_put("{\"id\":\"acme\",\"limits\":{\"agents\":5}}") == 0, "an account with a limit");
    static const struct {
        const char *doc, *field;
    } bad[] = {
        {"{\"id\":\"acme\",\"limits\":5}", "limits"},
        {"{\"id\":\"acme\",\"limits\":[1]}", "limits"},
        {"{\"id\":\"acme\",\"limits\":{\"agent\":1}}", "limits.agent"},
        {"{\"id\":\"acme\",\"limits\":{\"agents\":-1}}", "limits.agents"},
        {"{\"id\":\"acme\",\"limits\":{\"queues\":1.5}}", "limits.queues"},
        {"{\"id\":\"acme\",\"limits\":{\"live_calls\":\"3\"}}", "limits.live_calls"},
        {"{\"id\":\"acme\",\"limits\":{\"policies\":true}}", "limits.policies"},
        {"{\"id\":\"acme\",\"limits\":{\"agents\":1000001}}", "limits.agents"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = acct_put(bad[i].doc);
        ok(rc == SB_EINVAL && sb_result_field(res) && !strcmp(sb_result_field(res), bad[i].field),
           "%s refused naming %s (%s: %s)", bad[i].doc, bad[i].field,
           sb_result_field(res) ? sb_result_field(res) : "no field", sb_result_message(res));
    }
    int unknown = acct_put("{\"id\":\"acme\",\"limits\":{\"agent\":1}}");
    ok(unknown == SB_EINVAL &&
           strstr(sb_result_message(res), "agents, queues, live_calls and policies"),
       "an unknown limit is told the names: %s", sb_result_message(res));
    is_int((int)limit("acme", "agents"), 5, "and nothing changed");
    ok(acct_put("{\"id\":\"acme\",\"limits\":{\"agents\":null,\"queues\":0}}") == 0,
       "null is no limit, 0 a limit");
    is_int((int)limit("acme", "agents"), -1, "agents: none");
    is_int((int)limit("acme", "queues"), 0, "queues: 0");
    {
        /* None to delete: the refusal does not say to delete one. */
        int rc = queue_put("acme", "q0");
        ok(refused_limit(rc, "limits.queues", "has 0 queues and may have 0") &&
               strstr(sb_result_message(res), "no queue was added; have the limit raised"),
           "a queue at a limit of 0: refused, saying to have it raised: %s",
           sb_result_message(res));
    }
    ok(acct_put("{\"id\":\"acme\",\"limits\":{\"agents\":5.0}}") == 0 &&
           limit("acme", "agents") == 5,
       "a whole number written 5.0 is 5");
    ok(acct_put("{\"id\":\"acme\"}") == 0 && limit("acme", "agents") == -1,
       "a put without limits has none (the document replaces the stored one)");
    json_t *o = acct_get("acme");
    ok(json_is_null(json_object_get(o, "limits")), "read back as null");
    json_decref(o);
}

static void test_agents_queues_policies(void)
{
    ok(acct_put("{\"id\":\"acme\",\"limits\":{\"agents\":2,\"queues\":1,\"policies\":1}}") == 0,
       "limits set");
    ok(agent_put("acme", "a1") == 0 && agent_put("acme", "a2") == 0, "two agents");
    {
        /* The call first: ok()'s arguments are evaluated in no set order. */
        int rc = agent_put("acme", "a3");
        ok(refused_limit(rc, "limits.agents", "limits.agents is 2"), "a third refused: %s",
           sb_result_message(res));
    }
    ok(sb_agent_get(eng, "acme", "a3", res) == SB_ENOTFOUND, "and not made");
    is_int((int)usage("acme", "agents"), 2, "usage.agents 2");
    ok(agent_put("acme", "a1") == 0, "replacing an agent is not one more");
    ok(sb_agent_delete(eng, "acme", "a2", res) == 0 && usage("acme", "agents") == 1,
       "a delete counts down");
    ok(agent_put("acme", "a3") == 0, "and makes room");

    ok(queue_put("acme", "q1") == 0, "a queue");
    {
        /* The call first: ok()'s arguments are evaluated in no set order. */
        int rc = queue_put("acme", "q2");
        ok(refused_limit(rc, "limits.queues", "limits.queues is 1"), "a second refused: %s",
           sb_result_message(res));
    }
    ok(sb_queue_get(eng, "acme", "q2", res) == SB_ENOTFOUND, "and not made");
    ok(queue_put("acme", "q1") == 0, "replacing the queue is not one more");

    ok(policy_put("acme", "p1") == 0, "a policy");
    {
        /* The call first: ok()'s arguments are evaluated in no set order. */
        int rc = policy_put("acme", "p2");
        ok(refused_limit(rc, "limits.policies", "limits.policies is 1"), "a second refused: %s",
           sb_result_message(res));
    }
    ok(sb_policy_get(eng, "acme", "p2", res) == SB_ENOTFOUND, "and not stored");
    ok(policy_put("acme", "p1") == 0, "a new version of the one uploaded is not one more");
    ok(sb_policy_delete(eng, "acme", "p1", res) == 0 && usage("acme", "policies") == 0,
       "a delete counts down");
    ok(policy_put("acme", "p2") == 0, "and makes room");
    ok(policy_put("acme", "longest-idle") == SB_ELIMIT,
       "an upload over a policy_dir name is the account's own: counted");

    /* Lowered below what it has: what it has stays, more is refused. */
    ok(acct_put("{\"id\":\"acme\",\"limits\":{\"agents\":1,\"queues\":1,\"policies\":1}}") == 0,
       "agents lowered to 1 with 2 agents");
    ok(sb_agent_get(eng, "acme", "a1", res) == 0 && sb_agent_get(eng, "acme", "a3", res) == 0,
       "both agents stay");
    {
        /* The call first: ok()'s arguments are evaluated in no set order. */
        int rc = agent_put("acme", "a4");
        ok(refused_limit(rc, "limits.agents", "has 2 agents") &&
               strstr(sb_result_message(res), "delete one first, or have the limit raised"),
           "a new one is refused: %s", sb_result_message(res));
    }
    ok(agent_put("acme", "a3") == 0, "an existing one can still be replaced");
    ok(sb_agent_delete(eng, "acme", "a3", res) == 0, "one deleted");
    ok(agent_put("acme", "a4") == SB_ELIMIT, "at the limit, still refused");
    ok(acct_put("{\"id\":\"acme\",\"limits\":{\"queues\":1,\"policies\":1}}") == 0 &&
           agent_put("acme", "a4") == 0,
       "the limit lifted, it is made");
}

static void test_live_calls(void)
{
    ok(acct_put("{\"id\":\"acme\",\"limits\":{\"live_calls\":1}}") == 0, "live_calls 1");
    ok(offer("acme", "c1") == 0, "a call offered");
    is_int((int)usage("acme", "live_calls"), 1, "usage.live_calls 1");
    ok(offer("acme", "c2") == 0, "a second offer is answered");
    const sb_action *a = sb_result_count(res) ? sb_result_action(res, 0) : NULL;
    ok(a && a->type == SB_ACT_REJECT && a->reason &&
           strstr(a->reason, "live call limit (limits.live_calls 1)"),
       "with a REJECT saying the limit: %s", a && a->reason ? a->reason : "none");
    ok(sb_call_get(eng, "acme", "c2", res) == 0, "c2 can be read (its record)");
    json_t *c = json_loads(sb_result_json(res, NULL), 0, NULL);
    is_str(json_string_value(json_object_get(c, "outcome")), "rejected", "it was rejected");
    json_decref(c);
    is_int((int)usage("acme", "live_calls"), 1, "usage.live_calls still 1");
    ok(test_event(eng, res, "acme", "{\"type\":\"abandon\",\"call\":\"c1\"}") == 0 &&
           usage("acme", "live_calls") == 0,
       "an abandon counts down");
    ok(offer("acme", "c3") == 0 && sb_call_get(eng, "acme", "c3", res) == 0, "c3 is taken");
    c = json_loads(sb_result_json(res, NULL), 0, NULL);
    is_str(json_string_value(json_object_get(c, "state")), "waiting", "and waits");
    json_decref(c);
    ok(acct_put("{\"id\":\"acme\",\"limits\":{\"live_calls\":0}}") == 0,
       "live_calls 0 with a call live");
    ok(sb_call_get(eng, "acme", "c3", res) == 0, "the live call stays");
    ok(offer("acme", "c4") == 0 && sb_result_count(res) == 2 &&
           sb_result_action(res, 0)->type == SB_ACT_REJECT,
       "every new offer is rejected");
    ok(test_event(eng, res, "acme", "{\"type\":\"abandon\",\"call\":\"c3\"}") == 0 &&
           usage("acme", "live_calls") == 0,
       "the live call ends as ever");

    /* Live calls are counted only while the limit is set (an offer and a
    ** call's end write the account then alone): without it a read counts
    ** them, and setting it counts them, also after the limit was off. */
    ok(acct_put("{\"id\":\"acme\"}") == 0 && offer("acme", "c5") == 0 && offer("acme", "c6") == 0,
       "no limit: two calls offered");
    is_int((int)usage("acme", "live_calls"), 2, "usage.live_calls 2 without a limit");
    ok(acct_put("{\"id\":\"acme\",\"limits\":{\"live_calls\":2}}") == 0, "live_calls 2 set");
    is_int((int)usage("acme", "live_calls"), 2, "the two counted when it is set");
    ok(offer("acme", "c7") == 0 && sb_result_count(res) == 2 &&
           sb_result_action(res, 0)->type == SB_ACT_REJECT,
       "a third is rejected");
    ok(test_event(eng, res, "acme", "{\"type\":\"abandon\",\"call\":\"c5\"}") == 0 &&
           offer("acme", "c8") == 0 && sb_result_count(res) &&
           sb_result_action(res, 0)->type != SB_ACT_REJECT,
       "one ends, the next is taken");
    ok(acct_put("{\"id\":\"acme\"}") == 0 &&
           test_event(eng, res, "acme", "{\"type\":\"abandon\",\"call\":\"c6\"}") == 0,
       "the limit lifted, a call ends");
    is_int((int)usage("acme", "live_calls"), 1, "usage.live_calls 1");
    ok(acct_put("{\"id\":\"acme\",\"limits\":{\"live_calls\":1}}") == 0 &&
           usage("acme", "live_calls") == 1,
       "set again: counted again, not the count kept before (2)");
    ok(offer("acme", "c9") == 0 && sb_result_count(res) == 2 &&
           sb_result_action(res, 0)->type == SB_ACT_REJECT,
       "and held to");
    ok(test_event(eng, res, "acme", "{\"type\":\"abandon\",\"call\":\"c8\"}") == 0 &&
           usage("acme", "live_calls") == 0,
       "the last call ends");
}

static void test_other_account(void)
{
    ok(acct_put("{\"id\":\"other\"}") == 0 && queue_put("other", "q1") == 0, "another account");
    int all = 1;
    char id[16];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "b%d", i);
        all &= agent_put("other", id) == 0;
        snprintf(id, sizeof id, "x%d", i);
        all &= offer("other", id) == 0 && sb_call_get(eng, "other", id, res) == 0;
    }
    ok(all, "makes agents and takes calls past acme's limits");
    is_int((int)usage("other", "live_calls"), 5, "its own count");
    is_int((int)usage("acme", "live_calls"), 0, "acme's unchanged");
}

static void test_reopen(void)
{
    ok(acct_put("{\"id\":\"acme\",\"limits\":{\"agents\":2,\"queues\":1}}") == 0, "limits set");
    sb_close(eng);
    eng = open_engine();
    is_int((int)limit("acme", "agents"), 2, "limits.agents after a reopen");
    is_int((int)usage("acme", "agents"), 2, "usage.agents after a reopen");
    ok(agent_put("acme", "a9") == SB_ELIMIT, "and still enforced");
}

/* Rewrite an account record as account format 1 wrote it (no limits, no
** counts): the tail format 2 added dropped, the version byte 1. */
static int acct_to_v1(uint32_t num)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    unsigned char kb[5] = {3, (unsigned char)(num >> 24), (unsigned char)(num >> 16),
                           (unsigned char)(num >> 8), (unsigned char)num};
    MDB_val k = {5, kb}, v;
    int done = 0;
    if (mdb_env_create(&env)) return 0;
    mdb_env_set_mapsize(env, 64 << 20);
    if (mdb_env_open(env, dir, 0, 0600) == 0 && mdb_txn_begin(env, NULL, 0, &txn) == 0) {
        if (mdb_dbi_open(txn, NULL, 0, &dbi) == 0 && mdb_get(txn, dbi, &k, &v) == 0 &&
            v.mv_size > 33 && ((unsigned char *)v.mv_data)[0] == 2) {
            unsigned char b[512];
            memcpy(b, v.mv_data, v.mv_size - 33);
            b[0] = 1;
            MDB_val nv = {v.mv_size - 33, b};
            done = mdb_put(txn, dbi, &k, &nv, 0) == 0;
        }
        if (mdb_txn_commit(txn)) done = 0;
    }
    mdb_env_close(env);
    return done;
}

static void test_format1(void)
{
    ok(acct_put("{\"id\":\"old\"}") == 0 && queue_put("old", "q1") == 0 &&
           agent_put("old", "o1") == 0 && agent_put("old", "o2") == 0 &&
           policy_put("old", "p") == 0 && offer("old", "k1") == 0,
       "an account with agents, a queue, a policy and a call");
    sb_close(eng);
    /* Accounts are numbered in creation order: acme 1, other 2, old 3. */
    ok(acct_to_v1(3), "its record rewritten as format 1");
    eng = open_engine();
    json_t *o = acct_get("old");
    ok(o && json_is_null(json_object_get(o, "limits")) && !json_object_get(o, "usage"),
       "it reads, with no limits and no usage (not counted)");
    json_decref(o);
    ok(agent_put("old", "o3") == 0 && offer("old", "k2") == 0 &&
           sb_agent_delete(eng, "old", "o3", res) == 0,
       "and works as before");
    ok(acct_put("{\"id\":\"old\",\"limits\":{\"agents\":2,\"live_calls\":2}}") == 0,
       "limits put on it");
    is_int((int)usage("old", "agents"), 2, "counted: 2 agents");
    is_int((int)usage("old", "queues"), 1, "1 queue");
    is_int((int)usage("old", "policies"), 1, "1 policy");
    is_int((int)usage("old", "live_calls"), 2, "2 live calls");
    ok(agent_put("old", "o3") == SB_ELIMIT, "its agents limit holds");
    ok(offer("old", "k3") == 0 && sb_result_count(res) > 0 &&
           sb_result_action(res, 0)->type == SB_ACT_REJECT,
       "and its live_calls limit");
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sb_test_limits_%d", (int)getpid());
    rmtree(dir);
    res = sb_result_new();
    eng = open_engine();
    ok(eng != NULL, "engine opened");
    if (!eng) return done_testing();
    test_bad_limits();
    test_agents_queues_policies();
    test_live_calls();
    test_other_account();
    test_reopen();
    test_format1();
    sb_close(eng);
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
}
