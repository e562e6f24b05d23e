/*
** test_decisions.c — every kind of routing decision applied by the engine,
** with policies uploaded to an account: ring one, ring several at once (the
** first to answer wins, the others are cancelled), ring in sequence, pick the
** device, wait with a re-decide time, move, reject, pause; the key-value
** store across calls and engines; a policy that fails gets the fallback and
** the trace says why; a policy upload that fails changes nothing.
*/
#include "switchboard.h"
#include "tap.h"
#define TESTKIT_LOG_KEEP
#include "testkit.h"

#include "engine.h"  /* DB_KV: a store as an earlier version left it */
#include "sandbox.h" /* the field names the lint knows (views_has_field) */

#include <jansson.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char dir[256];
static sb_engine *eng;
static sb_result *res;
static int ncall;

static sb_engine *open_engine(void)
{
    sb_config cfg;
    test_engine_config(&cfg, dir, NULL, 4 << 20);
    cfg.quarantine_after = 3;
    cfg.log = log_keep;
    /* A hook past its budget stops at the instruction count, not the wall
    ** clock, however loaded the machine (the spinner's message says which). */
    cfg.policy_wall_ms = 60000;
    return test_open(&cfg, res);
}

static int policy(const char *name, const char *src)
{
    int rc = sb_policy_put(eng, "acme", name, src, strlen(src), NULL, res);
    if (rc) diag("policy %s: %s", name, sb_result_message(res));
    return rc;
}

static int ev(const char *json)
{
    return sb_submit_json(eng, "acme", json, strlen(json), res);
}

static int count(sb_action_type type)
{
    return test_action_count(res, type);
}

static const sb_action *nth(sb_action_type type, int n)
{
    return test_action_nth(res, type, n);
}

static void queue_with(const char *policy_name)
{
    char q[512];
    snprintf(q, sizeof q,
             "{\"id\":\"q\",\"policy\":\"%s\",\"ring_timeout\":20,\"overflow\":\"backup\","
             "\"members\":[{\"agent\":\"a1\",\"position\":1},{\"agent\":\"a2\",\"position\":2},"
             "{\"agent\":\"a3\",\"position\":3}]}",
             policy_name);
    if (sb_queue_put(eng, "acme", q, strlen(q), res)) diag("queue: %s", sb_result_message(res));
}

/* Offer a new call into q; returns its id (static buffer). */
static const char *offer(void)
{
    static char id[32];
    char json[256];
    snprintf(id, sizeof id, "d%d", ++ncall);
    snprintf(json, sizeof json,
             "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"q\",\"caller\":\"+15550000%03d\"}",
             id, ncall % 1000);
    if (ev(json)) diag("offer: %s", sb_result_message(res));
    return id;
}

static void end_call(const char *id)
{
    char json[128];
    snprintf(json, sizeof json, "{\"type\":\"abandon\",\"call\":\"%s\"}", id);
    ev(json);
}

static const char *status_of(const char *agent)
{
    static char buf[32];
    if (sb_agent_get(eng, "acme", agent, res)) return "?";
    json_t *o = json_loads(sb_result_json(res, NULL), 0, NULL);
    snprintf(buf, sizeof buf, "%s", json_string_value(json_object_get(o, "status")));
    json_decref(o);
    return buf;
}

static json_t *trace_of(const char *call)
{
    if (sb_call_get(eng, "acme", call, res)) return NULL;
    return json_loads(sb_result_json(res, NULL), 0, NULL);
}

static void setup(void)
{
    sb_account_put(eng, "{\"id\":\"acme\"}", 13, res);
    const char *agents[] = {
        "{\"id\":\"a1\",\"devices\":{\"softphone\":\"sip:a1@x\",\"mobile\":\"tel:+447700900001\"},"
        "\"status\":\"available\",\"skills\":{\"de\":3}}",
        "{\"id\":\"a2\",\"devices\":{\"landline\":\"sip:desk2@x\"},\"status\":\"available\"}",
        "{\"id\":\"a3\",\"devices\":{\"softphone\":\"sip:a3@x\"},\"status\":\"available\"}",
    };
    for (int i = 0; i < 3; i++)
        sb_agent_put(eng, "acme", agents[i], strlen(agents[i]), res);
    const char *backup = "{\"id\":\"backup\",\"members\":[{\"agent\":\"a3\"}]}";
    if (sb_queue_put(eng, "acme", backup, strlen(backup), res))
        diag("backup: %s", sb_result_message(res));
}

static void test_ring_all(void)
{
    ok(policy("all", "local P = {}\n"
                     "function P.route(call, agents, ctx)\n"
                     "  if #agents == 0 then return {} end\n"
                     "  local ids = {}\n"
                     "  for i, a in ipairs(agents) do ids[i] = a.id end\n"
                     "  return { ring = ids, timeout = 12 }\n"
                     "end\nreturn P\n") == 0,
       "upload a ring-everyone policy");
    queue_with("all");
    const char *id = offer();
    is_int(count(SB_ACT_RING), 3, "all three agents ring at once");
    ok(nth(SB_ACT_RING, 0)->timeout_s == 12, "for the policy's timeout");
    char call[32];
    snprintf(call, sizeof call, "%s", id);
    ok(ev("{\"type\":\"ring_result\",\"call\":\"d1\",\"agent\":\"a2\",\"outcome\":\"answered\"}") ==
           0,
       "a2 answers first");
    is_int(count(SB_ACT_CANCEL), 2, "the other two rings are cancelled");
    ok(count(SB_ACT_CONNECT) == 1 && strcmp(nth(SB_ACT_CONNECT, 0)->agent_id, "a2") == 0,
       "the call connects to a2");
    ok(strcmp(status_of("a1"), "available") == 0 && strcmp(status_of("a3"), "available") == 0,
       "a1 and a3 are free again");
    ok(ev("{\"type\":\"ring_result\",\"call\":\"d1\",\"agent\":\"a1\",\"outcome\":\"answered\"}") ==
           SB_ESTATE,
       "a late answer from a1 is refused");
    ev("{\"type\":\"hangup\",\"call\":\"d1\"}");
    /* The record: a2 answered; the engine stopped the others' rings. */
    json_t *c = trace_of("d1");
    json_t *att = json_object_get(c, "attempts_detail");
    int answered = 0, cancelled = 0, other = 0;
    for (size_t i = 0; i < json_array_size(att); i++) {
        json_t *a = json_array_get(att, i);
        const char *ag = json_string_value(json_object_get(a, "agent"));
        const char *o = json_string_value(json_object_get(a, "outcome"));
        if (!ag || !o)
            other++;
        else if (!strcmp(ag, "a2") && !strcmp(o, "answered"))
            answered++;
        else if (strcmp(ag, "a2") && !strcmp(o, "cancelled"))
            cancelled++;
        else
            other++;
    }
    ok(answered == 1 && cancelled == 2 && other == 0,
       "the record: a2 answered, the rings of a1 and a3 cancelled (not rejected)");
    json_decref(c);
    /* "cancelled" is the engine's word: a gateway cannot report it. */
    ok(ev("{\"type\":\"ring_result\",\"call\":\"d1\",\"agent\":\"a1\",\"outcome\":"
          "\"cancelled\"}") == SB_EINVAL,
       "a gateway cannot report a ring as cancelled");
}

static void test_sequence_and_device(void)
{
    ok(policy("seq", "local P = {}\n"
                     "function P.route(call, agents, ctx)\n"
                     "  if #agents < 3 then return { wait = 5 } end\n"
                     "  return { ring = { {agent='a1', device='mobile'}, 'a3', 'a2' },\n"
                     "           mode = 'sequence', timeout = 10 }\n"
                     "end\nreturn P\n") == 0,
       "upload a sequence policy");
    queue_with("seq");
    const char *id = offer();
    const sb_action *r = nth(SB_ACT_RING, 0);
    ok(count(SB_ACT_RING) == 1 && r && strcmp(r->agent_id, "a1") == 0, "only a1 rings first");
    ok(r && strcmp(r->device, "mobile") == 0 && strcmp(r->uri, "tel:+447700900001") == 0,
       "on the mobile the policy chose");
    char call[32], json[160];
    snprintf(call, sizeof call, "%s", id);
    snprintf(
        json, sizeof json,
        "{\"type\":\"ring_result\",\"call\":\"%s\",\"agent\":\"a1\",\"outcome\":\"no_answer\"}",
        call);
    ev(json);
    r = nth(SB_ACT_RING, 0);
    ok(r && strcmp(r->agent_id, "a3") == 0, "no answer: a3 rings next without a new decision");
    now_ms += 10000;
    sb_tick(eng, res);
    r = nth(SB_ACT_RING, 0);
    ok(r && strcmp(r->agent_id, "a2") == 0 && strcmp(r->device, "landline") == 0,
       "timeout: then a2, on its only device");
    json_t *t = trace_of(call);
    is_int(json_integer_value(json_object_get(t, "decisions")), 1,
           "the whole sequence came from one decision");
    json_decref(t);
    end_call(call);
}

static void test_wait_move_reject(void)
{
    ok(policy("mover", "local P = {}\n"
                       "function P.route(call, agents, ctx)\n"
                       "  if call.attrs.vip then return { move = 'backup', reason = 'vip' } end\n"
                       "  if call.attrs.spam then return { reject = 'spam' } end\n"
                       "  return { wait = 30 }\n"
                       "end\nreturn P\n") == 0,
       "upload a wait/move/reject policy");
    queue_with("mover");
    ok(ev("{\"type\":\"offer\",\"call\":\"m1\",\"queue\":\"q\",\"caller\":\"+15551110001\"}") ==
               0 &&
           count(SB_ACT_WAIT) == 1,
       "wait: the call waits");
    ok(nth(SB_ACT_WAIT, 0)->due_ms == now_ms + 30000, "with the re-decide time 30 s on");
    ev("{\"type\":\"offer\",\"call\":\"m2\",\"queue\":\"q\",\"caller\":\"+15551110002\","
       "\"attrs\":{\"vip\":true}}");
    const sb_action *o = nth(SB_ACT_OVERFLOW, 0);
    ok(o && strcmp(o->queue_id, "backup") == 0 && strcmp(o->reason, "vip") == 0,
       "move: to the backup queue with the policy's reason");
    ok(count(SB_ACT_RING) == 1 && strcmp(nth(SB_ACT_RING, 0)->agent_id, "a3") == 0,
       "and rings there (backup's longest-idle policy)");
    ev("{\"type\":\"offer\",\"call\":\"m3\",\"queue\":\"q\",\"caller\":\"+15551110003\","
       "\"attrs\":{\"spam\":true}}");
    const sb_action *r = nth(SB_ACT_REJECT, 0);
    ok(r && strcmp(r->reason, "spam") == 0, "reject: with the policy's reason");
    json_t *c = trace_of("m3");
    ok(c && strcmp(json_string_value(json_object_get(c, "outcome")), "rejected") == 0,
       "the record says rejected");
    json_decref(c);
    end_call("m1");
    end_call("m2");
}

static void test_pause_and_store(void)
{
    ok(policy("pauser",
              "local P = {}\n"
              "function P.route(call, agents, ctx)\n"
              "  local n = (ctx.get('calls') or 0) + 1\n"
              "  ctx.set('calls', n)\n"
              "  for _, a in ipairs(agents) do\n"
              "    if a.id == 'a2' then\n"
              "      return { ring = 'a1', pause = { agent = 'a2', reason = 'training' } }\n"
              "    end\n"
              "  end\n"
              "  return { ring = agents[1] }\n"
              "end\nreturn P\n") == 0,
       "upload a pausing policy with a counter in its store");
    queue_with("pauser");
    const char *id = offer();
    const sb_action *p = nth(SB_ACT_AGENT, 0);
    ok(p && strcmp(p->agent_id, "a2") == 0 && strcmp(p->status, "paused") == 0 &&
           strcmp(p->reason, "training") == 0,
       "a2 is paused with the policy's reason");
    ok(count(SB_ACT_RING) == 1 && strcmp(nth(SB_ACT_RING, 0)->agent_id, "a1") == 0, "a1 rings");
    ok(strcmp(status_of("a2"), "paused") == 0, "and a2 stays paused");
    char call[32];
    snprintf(call, sizeof call, "%s", id);
    end_call(call);
    ev("{\"type\":\"agent_status\",\"agent\":\"a2\",\"status\":\"available\"}");
    /* The store survives calls and reopening the engine. */
    sb_close(eng);
    eng = open_engine();
    id = offer();
    snprintf(call, sizeof call, "%s", id);
    end_call(call);
    ok(policy("counter", "local P = {}\n"
                         "function P.route(call, agents, ctx)\n"
                         "  return { reject = 'n=' .. tostring(ctx.get('calls')) }\n"
                         "end\nreturn P\n") == 0,
       "another policy");
    queue_with("counter");
    offer();
    const sb_action *r = nth(SB_ACT_REJECT, 0);
    ok(r && strcmp(r->reason, "n=nil") == 0, "cannot read the first policy's store (%s)",
       r ? r->reason : "-");
    queue_with("pauser");
    ev("{\"type\":\"agent_status\",\"agent\":\"a2\",\"status\":\"available\"}");
    ok(policy("peek",
              "local P = {}\n"
              "function P.route(call, agents, ctx) return { wait = 1 } end\nreturn P\n") == 0,
       "policies are independent");
}

/* decisions.fallback of sb_stats. */
static long long fallbacks(void)
{
    if (sb_stats(eng, res)) return -1;
    json_t *o = json_loads(sb_result_json(res, NULL), 0, NULL);
    long long n = json_integer_value(json_object_get(json_object_get(o, "decisions"), "fallback"));
    json_decref(o);
    return n;
}

static void test_failure_and_fallback(void)
{
    ok(policy("broken", "local P = {}\n"
                        "function P.route(call, agents, ctx)\n"
                        "  local x = nil\n"
                        "  return x.field\n"
                        "end\nreturn P\n") == 0,
       "upload a policy that errors at run time (it loads fine)");
    queue_with("broken");
    long long fb = fallbacks();
    const char *id = offer();
    ok(count(SB_ACT_RING) == 1, "the call still rings someone: the fallback decided");
    is_int((int)(fallbacks() - fb), 1, "and the engine counts one fallback decision");
    char call[32];
    snprintf(call, sizeof call, "%s", id);
    json_t *c = trace_of(call);
    json_t *tr = json_array_get(json_object_get(c, "trace"), 0);
    ok(json_is_true(json_object_get(tr, "fallback")), "the trace marks the fallback");
    const char *detail = json_string_value(json_object_get(tr, "detail"));
    ok(detail && strstr(detail, ":4:"), "and names the failing line (%s)", detail ? detail : "-");
    ok(json_string_value(json_object_get(tr, "version")) &&
           strlen(json_string_value(json_object_get(tr, "version"))) == 16,
       "and the policy version");
    json_decref(c);
    end_call(call);
    ok(policy("garbage", "local P = {}\n"
                         "function P.route(call, agents, ctx) return { ring = 'nobody' } end\n"
                         "return P\n") == 0,
       "upload a policy returning an agent that is not eligible");
    queue_with("garbage");
    id = offer();
    snprintf(call, sizeof call, "%s", id);
    c = trace_of(call);
    tr = json_array_get(json_object_get(c, "trace"), 0);
    detail = json_string_value(json_object_get(tr, "detail"));
    ok(detail && strstr(detail, "nobody"), "the trace says what was wrong (%s)",
       detail ? detail : "-");
    json_decref(c);
    end_call(call);
    /* Failing uploads change nothing. */
    ok(sb_policy_put(eng, "acme", "garbage", "return 42", 9, NULL, res) == SB_EPOLICY,
       "a policy returning no hooks is refused");
    ok(sb_policy_put(eng, "acme", "garbage", "local P = {", 11, NULL, res) == SB_EPOLICY &&
           strstr(sb_result_message(res), ":1:"),
       "a syntax error is refused with file:line (%s)", sb_result_message(res));
    sb_policy_list(eng, "acme", res);
    json_t *l = json_loads(sb_result_json(res, NULL), 0, NULL);
    size_t i;
    json_t *p;
    int still = 0;
    json_array_foreach(json_object_get(l, "policies"), i, p)
    {
        if (strcmp(json_string_value(json_object_get(p, "name")), "garbage") == 0) still = 1;
    }
    json_decref(l);
    ok(still, "the previous version of 'garbage' is still in place");

    /* A queue naming no policy, on an engine without a policy directory (so
    ** without longest-idle): its calls get the fallback, said once in the
    ** log, and nothing is quarantined (there is nothing to run). */
    const char *plain = "{\"id\":\"q\",\"members\":[{\"agent\":\"a1\"}]}";
    ok(sb_queue_put(eng, "acme", plain, strlen(plain), res) == 0, "queue q names no policy now");
    log_clear();
    int rang = 0;
    for (int k = 0; k < 5; k++) {
        id = offer();
        rang += count(SB_ACT_RING) == 1;
        snprintf(call, sizeof call, "%s", id);
        end_call(call);
    }
    is_int(rang, 5, "five calls: each rings by the fallback");
    int said = 0;
    for (const char *q = logbuf; (q = strstr(q, "policy not found")); q++)
        said++;
    ok(said == 1 && !strstr(logbuf, "quarantined") && !strstr(logbuf, "policy failure"),
       "the log says once that longest-idle is not there, and quarantines nothing:\n%s", logbuf);

    /* A queue without a fallback of its own takes the account's. */
    const char *arj = "{\"id\":\"acme\",\"fallback\":\"reject\"}";
    ok(sb_account_put(eng, arj, strlen(arj), res) == 0, "the account's fallback: reject");
    queue_with("broken");
    id = offer();
    ok(count(SB_ACT_REJECT) == 1 && count(SB_ACT_RING) == 0,
       "queue q, naming none, fails: its call is rejected, the account's fallback");
    int grc = sb_queue_get(eng, "acme", "q", res);
    const char *qj = sb_result_json(res, NULL);
    ok(grc == 0 && strstr(qj, "\"fallback\":\"reject\""), "GET of the queue says so (%s)", qj);
    const char *qra = "{\"id\":\"q\",\"policy\":\"broken\",\"fallback\":\"ring_all\","
                      "\"members\":[{\"agent\":\"a1\"},{\"agent\":\"a2\"}]}";
    ok(sb_queue_put(eng, "acme", qra, strlen(qra), res) == 0, "queue q sets ring_all");
    id = offer();
    snprintf(call, sizeof call, "%s", id);
    is_int(count(SB_ACT_RING), 2, "its own fallback wins: both members ring");
    end_call(call);
    ok(sb_account_put(eng, "{\"id\":\"acme\"}", 13, res) == 0,
       "the account's fallback back to longest_idle");
}

/* Put q with the broken policy, this fallback and these members (JSON). */
static void fallback_queue(const char *fb, const char *members)
{
    char q[512];
    snprintf(q, sizeof q,
             "{\"id\":\"q\",\"policy\":\"broken\",\"fallback\":\"%s\",\"ring_timeout\":20,"
             "\"members\":[%s]}",
             fb, members);
    if (sb_queue_put(eng, "acme", q, strlen(q), res)) diag("queue: %s", sb_result_message(res));
}

/* The ids the last event rang, in order, joined by commas. */
static const char *rang(void)
{
    static char out[64];
    out[0] = 0;
    for (int i = 0; i < count(SB_ACT_RING); i++)
        snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s", i ? "," : "",
                 nth(SB_ACT_RING, i)->agent_id);
    return out;
}

/* The fallback keeps to the queue's tiers and penalties, as the stock
** policies do: a backup tier (supervisors, another site) rings once the
** first tier has let the call ring, not while the first has agents free.
** It took the longest idle, or everyone, whatever their tier. */
static void test_fallback_tiers(void)
{
    char call[32];
    fallback_queue("longest_idle", "{\"agent\":\"a1\",\"tier\":2},{\"agent\":\"a2\",\"tier\":1},"
                                   "{\"agent\":\"a3\",\"tier\":2}");
    snprintf(call, sizeof call, "%s", offer());
    is_str(rang(), "a2", "longest_idle: the one agent of tier 1 rings, whoever is idle longest");
    char json[160];
    snprintf(
        json, sizeof json,
        "{\"type\":\"ring_result\",\"call\":\"%s\",\"agent\":\"a2\",\"outcome\":\"no_answer\"}",
        call);
    ok(ev(json) == 0 && count(SB_ACT_RING) == 1 && strcmp(rang(), "a2") != 0,
       "a2 lets it ring: an agent of tier 2 rings next (%s)", rang());
    end_call(call);
    static const struct {
        const char *fb, *members, *want, *what;
    } cases[] = {
        {"longest_idle",
         "{\"agent\":\"a1\",\"tier\":1},{\"agent\":\"a2\",\"tier\":2},{\"agent\":\"a3\","
         "\"tier\":2}",
         "a1", "tiers the other way round: a1 rings"},
        {"longest_idle",
         "{\"agent\":\"a1\",\"penalty\":5},{\"agent\":\"a2\",\"penalty\":5},{\"agent\":"
         "\"a3\",\"penalty\":0}",
         "a3", "one tier: the lowest penalty rings"},
        {"ring_all",
         "{\"agent\":\"a1\",\"tier\":1},{\"agent\":\"a2\",\"tier\":2},{\"agent\":\"a3\","
         "\"tier\":1}",
         "a1,a3", "ring_all: every agent of tier 1, not a2 of tier 2"},
        {"ring_all", "{\"agent\":\"a1\"},{\"agent\":\"a2\"},{\"agent\":\"a3\"}", "a1,a2,a3",
         "ring_all in one tier: everyone"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        fallback_queue(cases[k].fb, cases[k].members);
        snprintf(call, sizeof call, "%s", offer());
        is_str(rang(), cases[k].want, "%s", cases[k].what);
        end_call(call);
    }
}

/* Delete the key counts of the account's stores with LMDB itself, as a
** store written by an earlier version has none (the engine closed). */
static int drop_store_counts(void)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *c;
    int n = 0;
    if (mdb_env_create(&env)) return 0;
    mdb_env_set_mapsize(env, 64 << 20);
    if (mdb_env_open(env, dir, 0, 0600) == 0 && mdb_txn_begin(env, NULL, 0, &txn) == 0) {
        unsigned char t = DB_KV + 1; /* the store's table byte (store.c) */
        MDB_val k = {1, &t}, v;
        if (mdb_dbi_open(txn, NULL, 0, &dbi) == 0 && mdb_cursor_open(txn, dbi, &c) == 0) {
            for (int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
                 rc == 0 && ((unsigned char *)k.mv_data)[0] == t;
                 rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
                if (((unsigned char *)k.mv_data)[k.mv_size - 1] == 0) /* acct policy NUL */
                    n += mdb_cursor_del(c, 0) == 0;
            mdb_cursor_close(c);
        }
        mdb_txn_commit(txn);
    }
    mdb_env_close(env);
    return n;
}

/* Overwrite the stored value of account policy `name` with bytes no
** version wrote (the engine closed): 1 when one was found. */
static int garble_policy(const char *name)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *c;
    int n = 0;
    size_t nl = strlen(name);
    if (mdb_env_create(&env)) return 0;
    mdb_env_set_mapsize(env, 64 << 20);
    if (mdb_env_open(env, dir, 0, 0600) == 0 && mdb_txn_begin(env, NULL, 0, &txn) == 0) {
        unsigned char t = DB_POLICIES + 1, junk = 0xEE; /* the table byte (store.c) */
        MDB_val k = {1, &t}, v;
        if (mdb_dbi_open(txn, NULL, 0, &dbi) == 0 && mdb_cursor_open(txn, dbi, &c) == 0) {
            for (int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
                 rc == 0 && ((unsigned char *)k.mv_data)[0] == t;
                 rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
                if (k.mv_size == 5 + nl && !memcmp((char *)k.mv_data + 5, name, nl)) {
                    MDB_val jv = {1, &junk};
                    n += mdb_cursor_put(c, &k, &jv, MDB_CURRENT) == 0;
                }
            mdb_cursor_close(c);
        }
        mdb_txn_commit(txn);
    }
    mdb_env_close(env);
    return n;
}

/* Offer a call from `caller` and give its reject reason ("" if none). */
static const char *offer_from(const char *caller)
{
    static char reason[64];
    char json[256];
    snprintf(json, sizeof json,
             "{\"type\":\"offer\",\"call\":\"s%d\",\"queue\":\"q\",\"caller\":\"%s\"}", ++ncall,
             caller);
    reason[0] = 0;
    if (ev(json) == 0 && nth(SB_ACT_REJECT, 0))
        snprintf(reason, sizeof reason, "%s", nth(SB_ACT_REJECT, 0)->reason);
    for (int i = 0; i < count(SB_ACT_RING); i++) { /* the fallback rang: hang up */
        snprintf(json, sizeof json, "{\"type\":\"abandon\",\"call\":\"s%d\"}", ncall);
        ev(json);
        break;
    }
    return reason;
}

/* A policy's store keeps POL_KV_KEYS_MAX keys at most: a call whose writes
** would pass that fails (the fallback decides) and writes none of them. */
static void test_store_limit(void)
{
    ok(policy("filler", "local P = {}\n"
                        "local ADD = { ['+15558888845'] = 45, ['+15558888801'] = 1 }\n"
                        "function P.route(call, agents, ctx)\n"
                        "  if call.caller == '+15559999999' then\n"
                        "    for i = 1, 63 do ctx.set('k1:' .. i, nil) end\n"
                        "    return { reject = 'dropped' }\n"
                        "  end\n"
                        "  local add = ADD[call.caller]\n"
                        "  if add then\n"
                        "    for i = 1, add do ctx.set('add' .. add .. ':' .. i, true) end\n"
                        "    return { reject = 'added ' .. add }\n"
                        "  end\n"
                        "  local n = (ctx.get('n') or 0) + 1\n"
                        "  for i = 1, 63 do ctx.set('k' .. n .. ':' .. i, true) end\n"
                        "  ctx.set('n', n)\n"
                        "  return { reject = 'batch ' .. n }\n"
                        "end\nreturn P\n") == 0,
       "a policy adding 63 keys a call");
    queue_with("filler");
    /* 158 calls: 158 * 63 + 1 = 9,955 keys; the 159th would make 10,018. */
    int rejected = 0;
    for (int i = 1; i <= 158; i++) {
        char want[32];
        snprintf(want, sizeof want, "batch %d", i);
        rejected += strcmp(offer_from("+15550001000"), want) == 0;
    }
    is_int(rejected, 158, "158 calls write their keys");
    char call[32];
    snprintf(call, sizeof call, "%s", offer());
    ok(count(SB_ACT_REJECT) == 0 && count(SB_ACT_RING) == 1,
       "the 159th, which would pass 10,000 keys, gets the fallback");
    json_t *c = trace_of(call);
    const char *detail = json_string_value(
        json_object_get(json_array_get(json_object_get(c, "trace"), 0), "detail"));
    ok(detail && strstr(detail, "ctx.set: the store is full (10000 keys at most"),
       "the trace says the store is full (%s)", detail ? detail : "-");
    json_decref(c);
    end_call(call);
    /* An upload replaces a stored version that cannot be read (the way
    ** out of it): reading the one it replaced, to answer "previous", made
    ** it fail. */
    ok(policy("garbled", "local P = {}\nfunction P.route() return { wait = 1 } end\nreturn P\n") ==
           0,
       "policy 'garbled' uploaded");
    sb_close(eng);
    is_int(garble_policy("garbled"), 1,
           "its stored value overwritten with a byte no version wrote");
    eng = open_engine();
    ok(policy("garbled", "local P = {}\nfunction P.route() return { wait = 2 } end\nreturn P\n") ==
           0,
       "uploading it again replaces it (%s)", sb_result_message(res));
    /* A store an earlier version wrote has no count: it is counted. */
    sb_close(eng);
    ok(drop_store_counts() >= 1, "the store's count removed, as an earlier version left it");
    eng = open_engine();
    is_str(offer_from("+15558888845"), "added 45", "45 more keys fit: exactly 10,000");
    is_str(offer_from("+15558888801"), "", "one more does not");
    is_str(offer_from("+15559999999"), "dropped", "a call deletes 63 keys");
    is_str(offer_from("+15550001000"), "batch 159",
           "then 63 fit again, and the count goes on from 158: the failed calls wrote nothing");
    is_str(offer_from("+15558888801"), "", "and the store is full again");
    /* Deleting the policy deletes its store. */
    const char *src = "local P = {}\n"
                      "function P.route(call, agents, ctx)\n"
                      "  local n = (ctx.get('n') or 0) + 1\n"
                      "  ctx.set('n', n)\n"
                      "  return { reject = 'batch ' .. n }\n"
                      "end\nreturn P\n";
    queue_with("pauser");
    ok(sb_policy_delete(eng, "acme", "filler", res) == 0, "the policy deleted");
    ok(policy("filler", src) == 0, "and uploaded again under its name");
    queue_with("filler");
    is_str(offer_from("+15550001000"), "batch 1", "it starts with an empty store");
    /* A version without route, while a queue routes with the policy: refused. */
    const char *ret_only = "local P = {}\n"
                           "function P.retain(record, ctx) return { keep = true } end\n"
                           "return P\n";
    int prc = sb_policy_put(eng, "acme", "filler", ret_only, strlen(ret_only), NULL, res);
    ok(prc == SB_ESTATE && strstr(sb_result_message(res), "queue 'q' routes with policy 'filler'"),
       "a version without route is refused while queue q routes with it (%s)",
       sb_result_message(res));
    is_str(offer_from("+15550001000"), "batch 2", "and the old version still decides");
    queue_with("pauser");
    ok(sb_policy_put(eng, "acme", "filler", ret_only, strlen(ret_only), NULL, res) == 0,
       "once no queue routes with it, it is taken");
    /* ...and a queue cannot be put on it then. */
    static const char *qf = "{\"id\":\"q2\",\"policy\":\"filler\"}";
    int qrc = sb_queue_put(eng, "acme", qf, strlen(qf), res);
    ok(qrc == SB_EINVAL && sb_result_field(res) && !strcmp(sb_result_field(res), "policy") &&
           strstr(sb_result_message(res), "policy 'filler' has no route hook"),
       "a queue routing with a policy without route is refused (%s)", sb_result_message(res));
    ok(sb_queue_get(eng, "acme", "q2", res) == SB_ENOTFOUND, "and not created");
    /* The same for retention: the account's setting needs a retain hook. */
    static const char *ar = "{\"id\":\"acme\",\"retention\":\"pauser\"}";
    int arc = sb_account_put(eng, ar, strlen(ar), res);
    ok(arc == SB_EINVAL && sb_result_field(res) && !strcmp(sb_result_field(res), "retention") &&
           strstr(sb_result_message(res), "policy 'pauser' has no retain hook"),
       "a retention setting naming a policy without retain is refused (%s)",
       sb_result_message(res));
    static const char *af = "{\"id\":\"acme\",\"retention\":\"filler\"}";
    ok(sb_account_put(eng, af, strlen(af), res) == 0, "one with retain is taken (%s)",
       sb_result_message(res));
    prc = sb_policy_put(eng, "acme", "filler", src, strlen(src), NULL, res);
    ok(prc == SB_ESTATE &&
           strstr(sb_result_message(res), "the retention setting of account 'acme' reviews "
                                          "records with policy 'filler'"),
       "a version without retain is refused while the account's retention uses it (%s)",
       sb_result_message(res));
    static const char *an = "{\"id\":\"acme\"}";
    ok(sb_account_put(eng, an, strlen(an), res) == 0 &&
           sb_policy_put(eng, "acme", "filler", src, strlen(src), NULL, res) == 0,
       "once the account keeps its records, it is taken");
    /* What policy check finds comes back with the upload. */
    const char *typo = "local P = {}\n"
                       "function P.route(call, agents, ctx)\n"
                       "  if call.attempts > 5 then retrun {} end\n"
                       "  return { wait = 5 }\n"
                       "end\nreturn P\n";
    ok(sb_policy_put(eng, "acme", "typo", typo, strlen(typo), NULL, res) == 0,
       "a policy with a typo in a branch loads, and is stored");
    const char *answer = sb_result_json(res, NULL); /* once: each call makes it anew */
    ok(strstr(answer, "\"warnings\":[\"typo.lua:3: accessing undefined variable 'retrun'") != NULL,
       "with the lint's warning in the answer (%s)", answer);
    ok(sb_policy_put(eng, "acme", "clean", src, strlen(src), NULL, res) == 0 &&
           !strstr(sb_result_json(res, NULL), "warnings"),
       "a clean one has none");
    /* A file's name given as the policy's: refused, saying what to name it. */
    ok(sb_policy_put(eng, "acme", "mine.lua", src, strlen(src), NULL, res) == SB_EINVAL &&
           !strcmp(sb_result_field(res), "name") && strstr(sb_result_message(res), "'mine'"),
       "a policy named mine.lua is refused: name it mine (%s)", sb_result_message(res));
    /* A hook whose own body sets a global fails every time that line runs
    ** (the sandbox refuses it): refused at upload, with file:line, as one
    ** that does not load is; a global the top level sets, or one a helper
    ** sets, is only a warning (the helper may be called at load time). */
    const char *counting = "local P = {}\n"
                           "function P.route(call, agents, ctx)\n"
                           "  count = (count or 0) + 1\n"
                           "  return { wait = 5 }\n"
                           "end\nreturn P\n";
    ok(sb_policy_put(eng, "acme", "counting", counting, strlen(counting), NULL, res) ==
               SB_EPOLICY &&
           strstr(sb_result_message(res), "counting.lua:3: assignment to global 'count' in a "
                                          "hook") &&
           strstr(sb_result_message(res), "ctx.set") &&
           sb_policy_get(eng, "acme", "counting", res) == SB_ENOTFOUND,
       "a hook setting a global is refused at upload, and nothing is stored (%s)",
       sb_result_message(res));
    const char *helper = "total = 0\nlocal function reset() total = 0 end\nreset()\n"
                         "local P = {}\n"
                         "function P.route(call, agents, ctx) return { wait = total + 5 } end\n"
                         "return P\n";
    ok(sb_policy_put(eng, "acme", "helper", helper, strlen(helper), NULL, res) == 0 &&
           strstr(sb_result_json(res, NULL), "\"warnings\":["),
       "globals set at the top level or by a helper: stored, with warnings");
    /* ... also a helper the hook defines on the hook's own line. */
    const char *oneline =
        "local P = {}\n"
        "function P.route(call, agents, ctx) local f = function() seen = true end "
        "if call.attrs.never then f() end return { wait = 5 } end\n"
        "return P\n";
    ok(sb_policy_put(eng, "acme", "oneline", oneline, strlen(oneline), NULL, res) == 0 &&
           strstr(sb_result_json(res, NULL), "\"warnings\":["),
       "a helper setting a global, on its hook's line: stored, with warnings (%s)",
       sb_result_message(res));
}

/* The detail of the call's trace entry i (a static copy; "" if none). */
static const char *detail_of(const char *call, int i)
{
    static char buf[512];
    json_t *c = trace_of(call);
    const char *d = json_string_value(
        json_object_get(json_array_get(json_object_get(c, "trace"), i), "detail"));
    snprintf(buf, sizeof buf, "%s", d ? d : "");
    json_decref(c);
    return buf;
}

static int fell_back(const char *call, int i)
{
    json_t *c = trace_of(call);
    int fb =
        json_is_true(json_object_get(json_array_get(json_object_get(c, "trace"), i), "fallback"));
    json_decref(c);
    return fb;
}

/* A pause naming an agent the account does not have (a typo): the rest of
** the decision still applies, and the call's trace and the log say so. */
static void test_pause_unknown_agent(void)
{
    ok(policy("typo", "local P = {}\n"
                      "function P.route(call, agents, ctx)\n"
                      "  if call.attrs.many then\n"
                      "    return { ring = 'a1', pause = { { agent = 'a22', reason = 'x' },\n"
                      "                                    { agent = 'a2', reason = 'break' } } }\n"
                      "  end\n"
                      "  return { ring = 'a1', pause = { agent = 'a22', reason = 'missed' } }\n"
                      "end\nreturn P\n") == 0,
       "upload a policy pausing 'a22', an agent the account does not have");
    queue_with("typo");
    long long fb = fallbacks();
    log_clear();
    char call[32];
    snprintf(call, sizeof call, "%s", offer());
    ok(count(SB_ACT_RING) == 1 && strcmp(nth(SB_ACT_RING, 0)->agent_id, "a1") == 0,
       "pause typo: the ring still applies, a1 rings");
    is_int(count(SB_ACT_AGENT), 0, "pause typo: nobody is paused");
    ok(fallbacks() == fb && !fell_back(call, 0),
       "pause typo: not a policy failure, the policy's decision stands");
    const char *d = detail_of(call, 0);
    ok(strstr(d, "ring a1/") && strstr(d, "pause: no agent 'a22' in this account"),
       "pause typo: the call's trace says so (%s)", d);
    ok(strstr(logbuf, "pause: no agent 'a22' in this account") && strstr(logbuf, "account=acme") &&
           strstr(logbuf, "policy=typo"),
       "pause typo: and the log, with account and policy");
    end_call(call);
    log_clear();
    ok(ev("{\"type\":\"offer\",\"call\":\"pt2\",\"queue\":\"q\",\"caller\":\"+15551110009\","
          "\"attrs\":{\"many\":true}}") == 0 &&
           count(SB_ACT_RING) == 1 && strcmp(nth(SB_ACT_RING, 0)->agent_id, "a1") == 0,
       "pause typo in a list: a1 rings");
    const sb_action *p = nth(SB_ACT_AGENT, 0);
    ok(count(SB_ACT_AGENT) == 1 && p && strcmp(p->agent_id, "a2") == 0 &&
           strcmp(p->status, "paused") == 0,
       "pause typo in a list: the agent that exists is paused");
    d = detail_of("pt2", 0);
    ok(strstr(d, "pause: no agent 'a22' in this account") && !strstr(d, "'a2' "),
       "pause typo in a list: the trace names only the unknown one (%s)", d);
    end_call("pt2");
    ev("{\"type\":\"agent_status\",\"agent\":\"a2\",\"status\":\"available\"}");
}

/* An agent not in `agents` rung: the message says what that means. */
static void test_not_offered(void)
{
    ok(policy("zed", "local P = {}\n"
                     "function P.route(call, agents, ctx) return { ring = 'zed' } end\n"
                     "return P\n") == 0,
       "upload a policy ringing 'zed'");
    queue_with("zed");
    char call[32];
    snprintf(call, sizeof call, "%s", offer());
    const char *d = detail_of(call, 0);
    ok(fell_back(call, 0) &&
           strstr(d, "ring: agent 'zed' is not eligible: not in `agents`, the agents offered to "
                     "this call (not available, not a member of queue 'q', or unknown); "
                     "fallback longest_idle: ring a1/softphone"),
       "the trace says 'zed' is not among the agents offered, and why that can be (%s)", d);
    end_call(call);
}

/* Numbers a policy returned that are not finite read the same whatever
** their sign bit: nan, inf, -inf. */
static void test_nan_in_messages(void)
{
    static const char *src =
        "local P = {}\n"
        "local V = { nan = 0/0, negnan = -(0/0), inf = 1/0, neginf = -1/0 }\n"
        "function P.route(call, agents, ctx)\n"
        "  if call.attrs.t then return { ring = 'a1', timeout = V[call.attrs.v] } end\n"
        "  return { wait = V[call.attrs.v] }\n"
        "end\nreturn P\n";
    ok(policy("nan", src) == 0, "upload a policy returning NaN and infinities");
    queue_with("nan");
    static const struct {
        const char *v, *field, *want;
    } cases[] = {
        {"nan", "\"t\":true,",
         "timeout: expected an integer 1..600, got nan (it returns at lines 4, 5);"},
        {"negnan", "\"t\":true,",
         "timeout: expected an integer 1..600, got nan (it returns at lines 4, 5);"},
        {"nan", "", "wait: expected an integer 0..3600, got nan (it returns at lines 4, 5);"},
        {"negnan", "", "wait: expected an integer 0..3600, got nan (it returns at lines 4, 5);"},
        {"inf", "", "wait: expected an integer 0..3600, got inf (it returns at lines 4, 5);"},
        {"neginf", "", "wait: expected an integer 0..3600, got -inf (it returns at lines 4, 5);"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[256], call[16];
        snprintf(call, sizeof call, "nan%zu", i);
        snprintf(json, sizeof json,
                 "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"q\",\"caller\":"
                 "\"+15551110010\",\"attrs\":{%s\"v\":\"%s\"}}",
                 call, cases[i].field, cases[i].v);
        policy("nan", src); /* again: lifts the quarantine that 3 failures bring */
        ev(json);
        const char *d = detail_of(call, 0);
        ok(strstr(d, cases[i].want) != NULL, "%s %s: '%s' (%s)", cases[i].v,
           cases[i].field[0] ? "timeout" : "wait", cases[i].want, d);
        end_call(call);
    }
}

/* A policy's move to a queue the account does not have (a typo in a queue
** id) or to the queue the call waits in already: an invalid decision like
** any other, so the call gets the fallback and the trace says why, with the
** file and line; the caller is not turned away. */
static void test_bad_moves(void)
{
    static const struct {
        const char *policy, *target, *why;
    } cases[] = {
        {"lost", "'nosuch'",
         "lost.lua:3: route returned invalid decision: move: no queue "
         "'nosuch' in this account"},
        {"stay", "call.queue",
         "stay.lua:3: route returned invalid decision: move: the call "
         "waits in queue 'q' already"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char src[256];
        snprintf(src, sizeof src,
                 "local P = {}\nfunction P.route(call, agents, ctx)\n"
                 "  return { move = %s, reason = 'busy' }\nend\nreturn P\n",
                 cases[i].target);
        ok(policy(cases[i].policy, src) == 0, "upload a policy moving calls to %s",
           cases[i].target);
        queue_with(cases[i].policy);
        char call[32];
        snprintf(call, sizeof call, "%s", offer());
        is_int(count(SB_ACT_REJECT), 0, "move to %s: the caller is not turned away",
               cases[i].target);
        ok(count(SB_ACT_RING) == 1, "the fallback rings");
        const char *d = detail_of(call, 0);
        ok(fell_back(call, 0) && strstr(d, cases[i].why), "the trace says why (%s)", d);
        end_call(call);
    }
}

/* What a policy logs reaches the embedder's log sink with its numbers read
** [number], however written; other digits stay. */
static void test_log_redacted(void)
{
    ok(policy("chatty",
              "local P = {}\n"
              "function P.route(call, agents, ctx)\n"
              "  ctx.log('caller ' .. call.caller .. ' or 030 1234567, wait 12 s')\n"
              "  local c = call.caller\n"
              "  ctx.log('spaced', (c:gsub('%d', '%0 ')), 'under', (c:gsub('(%d%d%d)', '%1_')),\n"
              "          'encoded', (c:gsub('^%+', '%%2B')), 'wide', (c:gsub('%d', function(d)\n"
              "            return utf8.char(0xFF10 + tonumber(d)) end)))\n"
              "  return { wait = 5 }\n"
              "end\nreturn P\n") == 0,
       "upload a policy logging the caller's number");
    queue_with("chatty");
    log_clear();
    char call[32];
    snprintf(call, sizeof call, "%s", offer());
    ok(strstr(logbuf, "caller [number] or [number], wait 12 s") && !strstr(logbuf, "1234567"),
       "the log sink gets the line with both numbers as [number]: %s", logbuf);
    ok(strstr(logbuf, "spaced [number]  under [number] encoded [number] wide [number]\n") &&
           !strstr(logbuf, "5 5 5") && !strstr(logbuf, "555_") && !strstr(logbuf, "%2B"),
       "also the caller's digits spaced out, in groups by '_', percent-encoded and fullwidth: "
       "%s",
       logbuf);
    end_call(call);
    /* The sandbox's own figures are not numbers to redact: they are written
    ** grouped by thousands, which no phone number is, so the log keeps them. */
    static const struct {
        const char *name, *body, *want;
    } trips[] = {
        {"spinner", "while true do end", "instruction budget exceeded (1,000,000 instructions)"},
        {"hoarder", "local s = 'x' for i = 1, 40 do s = s .. s end",
         "memory limit exceeded (8,388,608 bytes)"},
    };
    for (size_t i = 0; i < sizeof trips / sizeof trips[0]; i++) {
        char src[300];
        snprintf(src, sizeof src,
                 "local P = {}\nfunction P.route(call, agents, ctx) %s end\nreturn P\n",
                 trips[i].body);
        ok(policy(trips[i].name, src) == 0, "upload %s", trips[i].name);
        queue_with(trips[i].name);
        log_clear();
        snprintf(call, sizeof call, "%s", offer());
        ok(strstr(logbuf, trips[i].want) && !strstr(logbuf, "[number]"),
           "%s: the log line keeps the budget's figure (%s)", trips[i].name, logbuf);
        end_call(call);
    }
}

/* A route policy's store is out of reach of erasure requests: the call's
** own numbers, however written, never get in, as key or value; the call
** gets the fallback and the store is as it was. The caller's last digit
** says how the policy tries. */
static void test_store_refuses_numbers(void)
{
    static const char *sticky_src =
        "local P = {}\n"
        "local HOW = { ['0'] = 'count', ['1'] = 'key', ['2'] = 'national',\n"
        "              ['3'] = 'integer', ['4'] = 'check', ['5'] = 'underscore',\n"
        "              ['6'] = 'fullwidth' }\n"
        "function P.route(call, agents, ctx)\n"
        "  local how = HOW[call.caller:sub(-1)]\n"
        "  local d = call.caller:sub(-10)\n"
        "  if how == 'key' then ctx.set('last:' .. call.caller, 'a1')\n"
        "  elseif how == 'national' then\n"
        "    ctx.set('last', '(' .. d:sub(1, 3) .. ') ' .. d:sub(4, 6) .. '-' .. d:sub(7))\n"
        "  elseif how == 'integer' then ctx.set('last', tonumber(d))\n"
        "  elseif how == 'underscore' then\n"
        "    ctx.set('last', d:sub(1, 3) .. '_' .. d:sub(4, 6) .. '_' .. d:sub(7))\n"
        "  elseif how == 'fullwidth' then\n"
        "    ctx.set('last', (d:gsub('%d', function(x)\n"
        "      return string.char(0xEF, 0xBC, 0x90 + tonumber(x)) end)))\n"
        "  elseif how == 'count' then ctx.set('last', 1234567)\n"
        "  end\n"
        "  return { reject = how .. ' ' .. tostring(ctx.get('last')) }\n"
        "end\nreturn P\n";
    ok(policy("sticky", sticky_src) == 0, "upload a policy keeping callers in its store");
    queue_with("sticky");
    is_str(offer_from("+15557654320"), "count 1234567",
           "a count of 7 digits that is no number of the call is stored");
    static const char *const hows[] = {"key", "national", "integer"};
    for (int i = 0; i < 3; i++) {
        char caller[16];
        snprintf(caller, sizeof caller, "+1555765432%d", i + 1);
        log_clear();
        is_str(offer_from(caller), "",
               "%s: the policy's decision is not taken (the fallback rings)", hows[i]);
        ok(strstr(logbuf, "holds the call's caller number") && !strstr(logbuf, "765432"),
           "%s: the log says why, without the number: %s", hows[i], logbuf);
    }
    /* three failures quarantine it (quarantine_after = 3): upload it again */
    policy("sticky", sticky_src);
    is_str(offer_from("+15557654324"), "check 1234567", "the store is as it was");
    /* Spellings the log's redaction knows: digit groups joined by '_', and
    ** fullwidth digits (they went into the store in the clear). */
    is_str(offer_from("+15557654325"), "", "underscore: the decision is not taken");
    is_str(offer_from("+15557654326"), "", "fullwidth: the decision is not taken");
    policy("sticky", sticky_src);
    is_str(offer_from("+15557654324"), "check 1234567", "the store is as it was still");
}

/* The lint (policy check) and the views must agree on each view's fields:
** views_has_field is a list of its own beside the switches that answer the
** reads. A route policy reads every interned name on an agent, the call,
** ctx and ctx.queue, and reports each read that succeeds or fails against
** what views_has_field says (a reject reason naming the first mismatches). */
static void test_lint_matches_views(void)
{
    static const struct {
        const char *lua;
        int kind;
    } kinds[] = {{"agent", VK_AGENT}, {"call", VK_CALL}, {"ctx", VK_CTX}, {"queue", VK_QUEUE}};
    sb_buf src = {0};
    int err = buf_puts(&src, "local NAMES = {");
    for (int k = 1; k < K_COUNT; k++)
        err |= buf_printf(&src, "'%s',", sbx_key_names[k]);
    err |= buf_puts(&src, "}\nlocal WANT = {");
    for (size_t v = 0; v < sizeof kinds / sizeof kinds[0]; v++) {
        err |= buf_printf(&src, "%s = {", kinds[v].lua);
        for (int k = 1; k < K_COUNT; k++) {
            int next;
            const char *n = sbx_key_names[k];
            if (views_has_field(kinds[v].kind, n, strlen(n), &next))
                err |= buf_printf(&src, "%s = true,", n);
        }
        err |= buf_puts(&src, "},");
    }
    err |= buf_puts(
        &src, "}\nlocal P = {}\n"
              "function P.route(call, agents, ctx)\n"
              "  local views = { agent = agents[1], call = call, ctx = ctx, queue = ctx.queue }\n"
              "  local bad, n = {}, 0\n"
              "  for kind, v in pairs(views) do\n"
              "    for _, name in ipairs(NAMES) do\n"
              "      n = n + 1\n"
              "      if pcall(function() return v[name] end) ~= (WANT[kind][name] == true) then\n"
              "        bad[#bad + 1] = kind .. '.' .. name\n"
              "      end\n"
              "    end\n"
              "  end\n"
              "  return { reject = #bad > 0 and table.concat(bad, ' ') or ('agree: ' .. n) }\n"
              "end\nreturn P\n");
    ok(!err && policy("fields", src.p) == 0, "upload a policy reading every field name");
    buf_free(&src);
    queue_with("fields");
    char call[32];
    snprintf(call, sizeof call, "%s", offer());
    const sb_action *r = nth(SB_ACT_REJECT, 0);
    char want[32];
    snprintf(want, sizeof want, "agree: %d", 4 * (K_COUNT - 1));
    is_str(r ? r->reason : "-", want,
           "the lint's field names are what the views answer, on all four route views");
}

/* `n` scenario cases for an upload, each expecting what `expect` says. */
static char *cases_of(int n, const char *expect)
{
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "case %d", i + 1);
        json_array_append_new(arr, json_pack("{s:s, s:[{s:s}], s:o}", "name", name, "agents", "id",
                                             "a1", "expect", json_loads(expect, 0, NULL)));
    }
    char *s = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return s;
}

/* An upload's cases run on the caller's thread, in the daemon its one
** event loop: bounded in number and in the time they take in all, so that
** one account's upload cannot hold up every account's calls for long.
** Here each case runs its hook to the wall clock (20 ms, no instruction
** budget to stop it sooner): a hundred of them would take 2 s. */
static void test_upload_cases_bounded(void)
{
    char cdir[300];
    snprintf(cdir, sizeof cdir, "%s-cases", dir);
    sb_config cfg;
    test_engine_config(&cfg, cdir, NULL, 4 << 20);
    cfg.policy_instructions = 1000000000000ull;
    cfg.policy_wall_ms = 20;
    sb_engine *e = test_open(&cfg, res);
    if (!ok(e != NULL, "an engine whose hooks are stopped by the wall clock alone")) return;
    ok(sb_account_put(e, "{\"id\":\"acme\"}", 13, res) == 0, "with an account");
    const char *quick = "local P = {}\n"
                        "function P.route(call, agents, ctx) return { reject = 'no' } end\n"
                        "return P\n";
    const char *spin = "local P = {}\n"
                       "function P.route(call, agents, ctx) while true do end end\n"
                       "return P\n";
    char *many = cases_of(101, "{\"action\":\"reject\",\"reason\":\"no\"}");
    int rc = sb_policy_put(e, "acme", "quick", quick, strlen(quick), many, res);
    ok(rc == SB_EINVAL && sb_result_field(res) && !strcmp(sb_result_field(res), "cases") &&
           strstr(sb_result_message(res), "101 cases, more than the 100 an upload may carry"),
       "an upload with 101 cases is refused, naming the limit (%s)", sb_result_message(res));
    ok(sb_policy_get(e, "acme", "quick", res) == SB_ENOTFOUND, "and not stored");
    free(many);
    char *hundred = cases_of(100, "{\"action\":\"reject\",\"reason\":\"no\"}");
    ok(sb_policy_put(e, "acme", "quick", quick, strlen(quick), hundred, res) == 0,
       "one with 100 quick cases is stored (%s)", sb_result_message(res));
    free(hundred);

    char *slow = cases_of(100, "{\"action\":\"error\"}");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = sb_policy_put(e, "acme", "spin", spin, strlen(spin), slow, res);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    ok(rc == SB_EPOLICY && sb_result_field(res) && !strcmp(sb_result_field(res), "cases") &&
           strstr(sb_result_message(res), "spin: the cases ran for more than 500 ms in all") &&
           strstr(sb_result_message(res), " of 100)"),
       "100 cases of 20 ms each are stopped at the 500 ms an upload's cases may take (%s)",
       sb_result_message(res));
    ok(ms < 1500,
       "within the limit and one hook's wall clock, give or take (%ld ms; 2,000 "
       "without the limit)",
       ms);
    ok(sb_policy_get(e, "acme", "spin", res) == SB_ENOTFOUND, "and nothing is stored");
    free(slow);
    sb_close(e);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", cdir);
    if (system(cmd)) diag("cleanup failed");
}

/* An upload's cases are read as `policy test` reads them: an unknown field
** is refused with the field it is close to, and nothing is stored. */
static void test_upload_case_typo(void)
{
    const char *src = "local P = {}\n"
                      "function P.route(call, agents, ctx) return { ring = agents[1].id } end\n"
                      "return P\n";
    const char *cases = "[{\"name\":\"typo\",\"agents\":[{\"id\":\"a\",\"idel_for\":3}],"
                        "\"expect\":{\"action\":\"ring\"}}]";
    int rc = sb_policy_put(eng, "acme", "neartypo", src, strlen(src), cases, res);
    ok(rc == SB_EPOLICY && strstr(sb_result_message(res),
                                  "agents[1]: unknown field 'idel_for' (did you mean 'idle_for'?)"),
       "an upload's case with a typo is refused, naming the field it is close to (%s)",
       sb_result_message(res));
    ok(sb_policy_get(eng, "acme", "neartypo", res) == SB_ENOTFOUND, "and not stored");
}

/* Conditional uploads and deletes: a release tool's read-modify-write. */
static void test_conditional_put(void)
{
    const char *v1 = "local P = {}\nfunction P.route() return { wait = 1 } end\nreturn P\n",
               *v2 = "local P = {}\nfunction P.route() return { wait = 2 } end\nreturn P\n",
               *v3 = "local P = {}\nfunction P.route() return { wait = 3 } end\nreturn P\n";
    char ver1[17] = "", ver2[17] = "";
    ok(sb_policy_put_if(eng, "acme", "cond", v1, strlen(v1), NULL, "*", res) == SB_ESTATE &&
           !strcmp(sb_result_field(res), "if_version") &&
           strstr(sb_result_message(res), "no upload of policy 'cond'"),
       "\"*\" with no upload: refused (%s)", sb_result_message(res));
    ok(sb_policy_get(eng, "acme", "cond", res) == SB_ENOTFOUND, "and nothing stored");
    ok(sb_policy_put_if(eng, "acme", "cond", v1, strlen(v1), NULL, "", res) == 0,
       "\"\": created when there is none (%s)", sb_result_message(res));
    json_t *o = json_loads(sb_result_json(res, NULL), 0, NULL);
    snprintf(ver1, sizeof ver1, "%s", json_string_value(json_object_get(o, "version")));
    json_decref(o);
    ok(sb_policy_put_if(eng, "acme", "cond", v2, strlen(v2), NULL, "", res) == SB_ESTATE &&
           strstr(sb_result_message(res), "is uploaded already"),
       "\"\" again: refused (%s)", sb_result_message(res));
    ok(sb_policy_put_if(eng, "acme", "cond", v2, strlen(v2), NULL, ver1, res) == 0,
       "the version read: replaced (%s)", sb_result_message(res));
    o = json_loads(sb_result_json(res, NULL), 0, NULL);
    snprintf(ver2, sizeof ver2, "%s", json_string_value(json_object_get(o, "version")));
    is_str(json_string_value(json_object_get(o, "previous")), ver1, "its previous is the one read");
    json_decref(o);
    /* A second tool that read ver1 too loses, and is told what is there. */
    int rc = sb_policy_put_if(eng, "acme", "cond", v3, strlen(v3), NULL, ver1, res);
    ok(rc == SB_ESTATE && !strcmp(sb_result_field(res), "if_version") &&
           strstr(sb_result_message(res), ver2) && strstr(sb_result_message(res), ver1),
       "a stale version: refused, naming both (%s)", sb_result_message(res));
    ok(sb_policy_get(eng, "acme", "cond", res) == 0 && strstr(sb_result_json(res, NULL), ver2),
       "and the upload made since stands");
    ok(sb_policy_put_if(eng, "acme", "cond", v3, strlen(v3), NULL, "ABC", res) == SB_EINVAL &&
           !strcmp(sb_result_field(res), "if_version"),
       "a malformed version: SB_EINVAL (%s)", sb_result_message(res));
    ok(sb_policy_delete_if(eng, "acme", "cond", ver1, res) == SB_ESTATE &&
           sb_policy_get(eng, "acme", "cond", res) == 0,
       "a delete of a stale version: refused, the policy still there");
    ok(sb_policy_delete_if(eng, "acme", "cond", "", res) == SB_EINVAL,
       "a delete expecting none: SB_EINVAL");
    ok(sb_policy_delete_if(eng, "acme", "cond", ver2, res) == 0 &&
           sb_policy_get(eng, "acme", "cond", res) == SB_ENOTFOUND,
       "a delete of the version there: deleted");
    ok(sb_policy_delete_if(eng, "acme", "cond", "*", res) == SB_ESTATE,
       "\"*\" once it is gone: refused");
    ok(sb_policy_put_if(eng, "acme", "cond", v1, strlen(v1), NULL, NULL, res) == 0 &&
           sb_policy_delete_if(eng, "acme", "cond", NULL, res) == 0,
       "NULL: no condition, as sb_policy_put and sb_policy_delete");
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sb-test-decisions-%d", (int)getpid());
    res = sb_result_new();
    eng = open_engine();
    if (!ok(eng != NULL, "engine opened")) return done_testing();
    setup();
    test_ring_all();
    test_sequence_and_device();
    test_wait_move_reject();
    test_pause_and_store();
    test_failure_and_fallback();
    test_fallback_tiers();
    test_store_limit();
    test_pause_unknown_agent();
    test_not_offered();
    test_nan_in_messages();
    test_bad_moves();
    test_lint_matches_views();
    test_log_redacted();
    test_store_refuses_numbers();
    test_upload_cases_bounded();
    test_upload_case_typo();
    test_conditional_put();
    sb_close(eng);
    sb_result_free(res);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) diag("cleanup failed");
    return done_testing();
}
