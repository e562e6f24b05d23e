/*
** test_policy_values.c — hostile values returned by policies, through the
** engine (the fuzz_decision target explores the same ground with
** sb_policy_test; these are the cases it or review turned up, pinned down).
**
**  - an agent id with a zero byte in it ('a\0b') names no agent: the
**    decision is invalid and the fallback decides, as for any unknown id;
**  - bytes that are not UTF-8 in what a policy returns (an error() message,
**    a reject reason, a pause reason, a move target) or in a long error
**    message cut to fit the trace, never make a decision, a trace entry, an
**    action field or an agent's status disappear from the JSON the library
**    hands out: every decision counted is in the trace, every action and
**    every document read keeps its fields;
**  - sb_policy_test reports a failing decision with its error text, as the
**    README promises ({"action":"error","error":"<file>:<line>: ..."}).
*/
#include "switchboard.h"
#include "tap.h"

#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int64_t now_ms = 1767603600000;
static int64_t test_clock(void *arg)
{
    (void)arg;
    return now_ms;
}

static void quiet(void *arg, sb_log_level l, const char *line)
{
    (void)arg;
    (void)l;
    if (getenv("SB_TEST_LOG")) fprintf(stderr, "log: %s\n", line);
}

static sb_engine *eng;
static sb_result *res;
static char dir[64] = "/tmp/sb-polvalues-XXXXXX";

static void rmtree(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char sub[600];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            rmtree(sub);
        else
            unlink(sub);
    }
    closedir(d);
    rmdir(path);
}

/* The policy returns what call.attrs.case selects. */
static const char policy[] =
    "local P = {}\n"
    "function P.route(call, agents, ctx)\n"
    "  local c = call.attrs.case\n"
    "  if c == 'nul-id' then return { ring = 'a\\0b' } end\n"
    "  if c == 'nul-id-long' then return { ring = 'a\\0' .. string.rep('z', 200) } end\n"
    "  if c == 'error-bytes' then error('bad \\255\\254 bytes') end\n"
    "  if c == 'error-long' then error(string.rep('\\195\\169', 200)) end\n" /* é x 200 */
    "  if c == 'reject-bytes' then return { reject = 'closed \\255' } end\n"
    "  if c == 'move-bytes' then return { move = '\\255' } end\n"
    "  if c == 'kv-bytes' then\n"
    "    ctx.set('k\\255', 'v\\255'); ctx.set('n\\0ul', 1); return { wait = 60 }\n"
    "  end\n"
    "  if c == 'pause-bytes' then\n"
    "    return { pause = { agent = 'b', reason = 'lunch \\255' }, wait = 60 }\n"
    "  end\n"
    "  return { wait = 60 }\n"
    "end\n"
    "return P\n";

#define AGENT(id)                                                                                  \
    "{\"id\":\"" id "\",\"devices\":{\"softphone\":\"sip:" id "@x.example\"},\"status\":"          \
    "\"available\"}"

static int setup(void)
{
    if (!mkdtemp(dir)) return -1;
    char data[128];
    snprintf(data, sizeof data, "%s/data", dir);
    sb_config cfg;
    sb_config_init(&cfg);
    cfg.data_dir = data;
    cfg.sync = SB_SYNC_NONE;
    cfg.clock = test_clock;
    cfg.log = quiet;
    cfg.quarantine_after = 0;
    static const char q[] = "{\"id\":\"q\",\"policy\":\"p\",\"members\":[{\"agent\":\"a\"},"
                            "{\"agent\":\"b\"}]}";
    if (sb_open(&eng, &cfg, res) || sb_account_put(eng, "{\"id\":\"acme\"}", 13, res) ||
        sb_policy_put(eng, "acme", "p", policy, strlen(policy), NULL, res) ||
        sb_agent_put(eng, "acme", AGENT("a"), strlen(AGENT("a")), res) ||
        sb_agent_put(eng, "acme", AGENT("b"), strlen(AGENT("b")), res) ||
        sb_queue_put(eng, "acme", q, strlen(q), res)) {
        diag("setup: %s", sb_result_message(res));
        return -1;
    }
    return 0;
}

static json_t *as_json(int rc)
{
    if (rc) return NULL;
    size_t len;
    const char *js = sb_result_json(res, &len);
    return json_loadb(js, len, 0, NULL);
}

/* Offer call `id` with attrs {"case": c}; returns the submit code. */
static int offer(const char *id, const char *c)
{
    char buf[256];
    now_ms += 1000;
    snprintf(buf, sizeof buf,
             "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"q\",\"caller\":\"+4930100001\","
             "\"attrs\":{\"case\":\"%s\"}}",
             id, c);
    return sb_submit_json(eng, "acme", buf, strlen(buf), res);
}

static void finish(const char *id)
{
    char buf[128];
    snprintf(buf, sizeof buf, "{\"type\":\"abandon\",\"call\":\"%s\"}", id);
    (void)sb_submit_json(eng, "acme", buf, strlen(buf), res);
    static const char *const av[] = {
        "{\"type\":\"agent_status\",\"agent\":\"a\",\"status\":\"available\"}",
        "{\"type\":\"agent_status\",\"agent\":\"b\",\"status\":\"available\"}"};
    for (int i = 0; i < 2; i++)
        (void)sb_submit_json(eng, "acme", av[i], strlen(av[i]), res);
}

/* The call's trace holds as many entries as decisions were made (≤ 16). */
static void trace_complete(const char *id, const char *what)
{
    json_t *c = as_json(sb_call_get(eng, "acme", id, res));
    json_t *tr = json_object_get(c, "trace");
    json_int_t decisions = json_integer_value(json_object_get(c, "decisions"));
    const char *first = json_string_value(json_object_get(json_array_get(tr, 0), "decision"));
    ok(c && decisions >= 1 && (json_int_t)json_array_size(tr) == decisions && first &&
           json_string_value(json_object_get(json_array_get(tr, 0), "detail")),
       "%s: the call's trace shows its %lld decision(s) (%zu entries, first '%s')", what,
       (long long)decisions, json_array_size(tr), first ? first : "-");
    json_decref(c);
}

int main(void)
{
    res = sb_result_new();
    if (!ok(setup() == 0, "engine with a policy returning hostile values")) return done_testing();

    /* An id with a zero byte names no agent. */
    const char *cases[] = {"nul-id", "nul-id-long"};
    for (int i = 0; i < 2; i++) {
        char id[16];
        snprintf(id, sizeof id, "z%d", i);
        ok(offer(id, cases[i]) == 0, "%s: the offer goes through", cases[i]);
        json_t *c = as_json(sb_call_get(eng, "acme", id, res));
        json_t *t0 = json_array_get(json_object_get(c, "trace"), 0);
        ok(json_is_true(json_object_get(t0, "fallback")) &&
               strstr(json_string_value(json_object_get(t0, "detail")) ?: "", "not eligible"),
           "%s: ring = 'a\\0...' is an invalid decision (no such agent), the fallback decides "
           "(trace: %s)",
           cases[i], json_string_value(json_object_get(t0, "detail")) ?: "none");
        json_decref(c);
        finish(id);
    }

    /* Bytes that are not UTF-8, and long messages cut to fit. */
    ok(offer("e1", "error-bytes") == 0, "error() with bytes that are not UTF-8: the offer goes "
                                        "through (fallback)");
    trace_complete("e1", "error-bytes");
    finish("e1");
    ok(offer("e2", "error-long") == 0, "a 400-byte UTF-8 error message: the offer goes through");
    trace_complete("e2", "error-long (cut to fit the trace)");
    finish("e2");
    ok(offer("e3", "move-bytes") == 0, "move to a queue id that is not UTF-8: the offer goes "
                                       "through");
    trace_complete("e3", "move-bytes");
    finish("e3");

    int rc = offer("r1", "reject-bytes");
    json_t *doc = as_json(rc);
    json_t *act = json_array_get(json_object_get(doc, "actions"), 0);
    const sb_action *a = rc == 0 && sb_result_count(res) ? sb_result_action(res, 0) : NULL;
    ok(rc == 0 && a && a->type == SB_ACT_REJECT && act &&
           json_string_value(json_object_get(act, "reason")),
       "a reject reason that is not UTF-8: the reject action keeps a reason in the result JSON "
       "(%s)",
       sb_result_json(res, NULL));
    json_decref(doc);

    rc = offer("x1", "pause-bytes");
    ok(rc == 0, "a pause reason that is not UTF-8: the offer goes through");
    json_t *b = as_json(sb_agent_get(eng, "acme", "b", res));
    ok(b && !strcmp(json_string_value(json_object_get(b, "status")) ?: "", "paused") &&
           json_string_value(json_object_get(b, "reason")),
       "... agent b reads back paused, with a reason (%s)", sb_result_json(res, NULL));
    json_decref(b);
    finish("x1");

    /* The store takes any bytes as keys and values: the engine, and the case
    ** runner that is to predict what the engine does. */
    ok(offer("k1", "kv-bytes") == 0, "ctx.set with keys and values that are not UTF-8 (or hold a "
                                     "zero byte): the offer goes through");
    json_t *kc = as_json(sb_call_get(eng, "acme", "k1", res));
    json_t *k0 = json_array_get(json_object_get(kc, "trace"), 0);
    ok(k0 && !json_is_true(json_object_get(k0, "fallback")),
       "... and the engine takes the policy's decision (no failure: %s)",
       json_string_value(json_object_get(k0, "detail"))
           ? json_string_value(json_object_get(k0, "detail"))
           : "-");
    json_decref(kc);
    finish("k1");
    static const char kvp[] = "local P = {}\n"
                              "function P.route(call, agents, ctx)\n"
                              "  ctx.set('k\\255', 'v\\255'); ctx.set('n\\0ul', 1)\n"
                              "  return { wait = 60 }\n"
                              "end\n"
                              "return P\n";
    static const char kvc[] = "[{\"agents\":[{\"id\":\"a\"}],\"expect\":{\"action\":\"wait\"}}]";
    int kvrc = sb_policy_test("kv.lua", kvp, strlen(kvp), kvc, strlen(kvc), res);
    ok_todo(kvrc == 0,
            "policytest.c fake_set: a store key or string that is not UTF-8 fails as "
            "'store error (SB_ENOMEM)' (jansson refuses it), where the engine stores any bytes",
            "sb_policy_test agrees: the same policy's case passes (%s)", sb_result_json(res, NULL));

    /* sb_policy_test reports the error text of a failing decision. */
    static const char bad[] = "local P = {}\n"
                              "function P.route(call, agents, ctx) return { move = '\\255' } end\n"
                              "return P\n";
    static const char cs[] = "[{\"agents\":[{\"id\":\"a\"}],\"expect\":{\"action\":\"error\"}}]";
    rc = sb_policy_test("bad.lua", bad, strlen(bad), cs, strlen(cs), res);
    doc = as_json(0);
    json_t *got = json_object_get(json_array_get(json_object_get(doc, "cases"), 0), "got");
    ok(json_string_value(json_object_get(got, "error")) != NULL,
       "sb_policy_test: a failing decision is reported with its error text (%s)",
       sb_result_json(res, NULL));
    json_decref(doc);

    sb_close(eng);
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
}
