/*
** callkit.h — what the C tests of the call state machine share: one engine
** on a scratch directory, events as JSON (each shown on the TAP stream when
** SB_TEST_LOG is set), the actions they returned, and what the engine says
** of queues, agents and calls afterwards. Include after switchboard.h,
** tap.h and testkit.h; set dir, then eng = open_engine().
*/
#ifndef SB_CALLKIT_H
#define SB_CALLKIT_H

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static char dir[256];
static sb_engine *eng;
static sb_result *res;

static __attribute__((unused)) sb_engine *open_engine(void)
{
    sb_config cfg;
    test_engine_config(&cfg, dir, NULL, 32 << 20);
    return test_open(&cfg, res);
}

static __attribute__((unused)) int put(int (*fn)(sb_engine *, const char *, const char *, size_t,
                                                 sb_result *),
                                       const char *acct, const char *json)
{
    return test_put(eng, res, fn, acct, json);
}

/* Every action of res on the TAP stream when SB_TEST_LOG is set. */
static __attribute__((unused)) void show(const char *what)
{
    if (!getenv("SB_TEST_LOG")) return;
    diag("%s -> %d: %s", what, sb_result_code(res),
         sb_result_code(res) ? sb_result_message(res) : "");
    for (size_t i = 0; i < sb_result_count(res); i++) {
        char buf[512];
        sb_action_json(sb_result_action(res, i), buf, sizeof buf);
        diag("   %s", buf);
    }
}

/* An event as JSON: its code. */
static __attribute__((unused)) int ev(const char *acct, const char *json)
{
    int rc = test_event(eng, res, acct, json);
    show(json);
    return rc;
}

static int evf(const char *acct, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static __attribute__((unused)) int evf(const char *acct, const char *fmt, ...)
{
    char json[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(json, sizeof json, fmt, ap);
    va_end(ap);
    return ev(acct, json);
}

static __attribute__((unused)) int offer(const char *acct, const char *call, const char *queue)
{
    return evf(acct,
               "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"%s\",\"caller\":"
               "\"+442079460001\"}",
               call, queue);
}

static __attribute__((unused)) int ring_result(const char *acct, const char *call,
                                               const char *agent, const char *outcome)
{
    return evf(acct,
               "{\"type\":\"ring_result\",\"call\":\"%s\",\"agent\":\"%s\",\"outcome\":\"%s\"}",
               call, agent, outcome);
}

static __attribute__((unused)) int status(const char *acct, const char *agent, const char *st)
{
    return evf(acct, "{\"type\":\"agent_status\",\"agent\":\"%s\",\"status\":\"%s\"}", agent, st);
}

static __attribute__((unused)) int tick(void)
{
    int rc = sb_tick(eng, res);
    show("tick");
    return rc;
}

static __attribute__((unused)) int policy(const char *acct, const char *name, const char *src)
{
    int rc = sb_policy_put(eng, acct, name, src, strlen(src), NULL, res);
    if (rc) diag("policy %s: %s", name, sb_result_message(res));
    return rc;
}

/* The first action of a type (for a call, for an agent), or NULL. */
static __attribute__((unused)) const sb_action *find(sb_action_type type, const char *call,
                                                     const char *agent)
{
    for (size_t i = 0; i < sb_result_count(res); i++) {
        const sb_action *a = sb_result_action(res, i);
        if (a->type == type && (!call || (a->call_id && strcmp(a->call_id, call) == 0)) &&
            (!agent || (a->agent_id && strcmp(a->agent_id, agent) == 0)))
            return a;
    }
    return NULL;
}

static __attribute__((unused)) int count(sb_action_type type)
{
    return test_action_count(res, type);
}

static __attribute__((unused)) json_t *get_json(int rc)
{
    return rc ? NULL : json_loads(sb_result_json(res, NULL), 0, NULL);
}

/* A number in the document a get returned (rc its code), in ms for
** seconds, or -1. */
static __attribute__((unused)) long long doc_num(int rc, const char *key)
{
    json_t *d = get_json(rc);
    json_t *v = json_object_get(d, key);
    long long n = !v                ? -1
                  : json_is_real(v) ? llround(json_real_value(v) * 1000)
                                    : json_integer_value(v);
    json_decref(d);
    return n;
}

static __attribute__((unused)) long long queue_num(const char *acct, const char *queue,
                                                   const char *key)
{
    return doc_num(sb_queue_get(eng, acct, queue, res), key);
}

static __attribute__((unused)) long long waiting(const char *acct, const char *queue)
{
    return queue_num(acct, queue, "waiting");
}

/* A string field of the document a get returned (rc its code), or "?". */
static __attribute__((unused)) const char *field(int rc, const char *key)
{
    static char buf[64];
    json_t *d = get_json(rc);
    const char *v = json_string_value(json_object_get(d, key));
    snprintf(buf, sizeof buf, "%s", v ? v : "?");
    json_decref(d);
    return buf;
}

static __attribute__((unused)) const char *agent_status(const char *acct, const char *agent)
{
    return field(sb_agent_get(eng, acct, agent, res), "status");
}

static __attribute__((unused)) long long agent_stat(const char *acct, const char *agent,
                                                    const char *key)
{
    json_t *a = get_json(sb_agent_get(eng, acct, agent, res));
    json_t *v = json_object_get(json_object_get(a, "stats"), key);
    long long n = json_is_real(v) ? llround(json_real_value(v) * 1000) : json_integer_value(v);
    json_decref(a);
    return v ? n : -1;
}

static __attribute__((unused)) const char *call_state(const char *acct, const char *call)
{
    return field(sb_call_get(eng, acct, call, res), "state");
}

static __attribute__((unused)) const char *call_field(const char *acct, const char *call,
                                                      const char *key)
{
    return field(sb_call_get(eng, acct, call, res), key);
}

/* A number of the call (live or its record), in ms for seconds, or -1. */
static __attribute__((unused)) long long call_num(const char *acct, const char *call,
                                                  const char *key)
{
    return doc_num(sb_call_get(eng, acct, call, res), key);
}

#define AGENT(id, extra)                                                                           \
    "{\"id\":\"" id "\",\"devices\":{\"softphone\":\"sip:" id "@pbx.example\"},"                   \
    "\"status\":\"available\"" extra "}"

/* An account with agents a, b and c, idle since 20, 10 and 0 seconds ago. */
static __attribute__((unused)) int account(const char *acct)
{
    char json[128];
    snprintf(json, sizeof json, "{\"id\":\"%s\"}", acct);
    int rc = sb_account_put(eng, json, strlen(json), res);
    if (!rc) rc = put(sb_agent_put, acct, AGENT("a", ""));
    now_ms += 10000;
    if (!rc) rc = put(sb_agent_put, acct, AGENT("b", ""));
    now_ms += 10000;
    if (!rc) rc = put(sb_agent_put, acct, AGENT("c", ""));
    return rc;
}

/* Ring the longest idle; nobody free: wait for someone. */
static __attribute__((unused)) const char *const LW =
    "local P = {}\n"
    "function P.route(call, agents, ctx)\n"
    "  local best\n"
    "  for _, a in ipairs(agents) do\n"
    "    if not best or a.idle_for > best.idle_for then best = a end\n"
    "  end\n"
    "  if not best then return {} end\n"
    "  return { ring = best.id }\n"
    "end\nreturn P\n";

#endif
