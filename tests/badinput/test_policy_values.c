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
**  - ctx.set takes keys and values of any bytes (a zero byte, bytes that are
**    not UTF-8, NaN) and ctx.get reads them back, in the engine and alike in
**    sb_policy_test, whose report escapes them (\xHH, \\) so that it is JSON
**    a C reader takes whole; a case's "store" may hold only what the
**    engine's store can;
**  - sb_policy_test reports a failing decision with its error text, as the
**    README promises ({"action":"error","error":"<file>:<line>: ..."}).
*/
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"

#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static sb_engine *eng;
static sb_result *res;
static char dir[64] = "/tmp/sb-polvalues-XXXXXX";

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
    "    ctx.set('k\\255', 'v\\255'); ctx.set('n\\0ul', 1)\n"
    "    ctx.set('b\\\\s', 'x\\\\y'); ctx.set('nan', 0/0); return { wait = 60 }\n"
    "  end\n"
    "  if c == 'kv-read' then\n" /* wait 61 when every value reads back as written */
    "    local x = ctx.get('nan')\n"
    "    local same = ctx.get('k\\255') == 'v\\255' and ctx.get('n\\0ul') == 1 and\n"
    "      ctx.get('n') == nil and ctx.get('b\\\\s') == 'x\\\\y' and x ~= x\n"
    "    return { wait = same and 61 or 62 }\n"
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
    ** runner that is to predict what the engine does (so a case's report
    ** escapes what JSON readers in C cannot take). */
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
    /* The case runner, with the same policy, takes the same writes, and
    ** predicts the next call's reads (below, the engine's). */
    static const char kvc[] =
        "[{\"call\":{\"attrs\":{\"case\":\"kv-bytes\"}},\"agents\":[{\"id\":\"a\"}],"
        "  \"expect\":{\"action\":\"wait\",\"wait\":60}},"
        " {\"call\":{\"attrs\":{\"case\":\"kv-read\"}},\"agents\":[{\"id\":\"a\"}],"
        "  \"expect\":{\"action\":\"wait\",\"wait\":61},"
        "  \"expect_store\":{\"k\\\\xFF\":\"v\\\\xff\",\"n\\\\x00ul\":1,\"b\\\\\\\\s\":\"x\\\\y\","
        "                  \"nan\":null}},"
        " {\"name\":\"a wrong store\",\"call\":{\"attrs\":{\"case\":\"kv-read\"}},"
        "  \"expect_store\":{\"n\":1}}]";
    int kvrc = sb_policy_test("kv.lua", policy, strlen(policy), kvc, strlen(kvc), res);
    size_t replen;
    const char *rep = sb_result_json(res, &replen);
    json_t *report = json_loadb(rep, replen, 0, NULL);
    json_t *kcases = json_object_get(report, "cases");
    ok(kvrc == SB_EPOLICY && json_is_true(json_object_get(json_array_get(kcases, 0), "ok")),
       "sb_policy_test: ctx.set takes keys and values that are not UTF-8 or hold a zero byte, as "
       "the engine does (%s)",
       rep);
    ok(json_is_true(json_object_get(json_array_get(kcases, 1), "ok")),
       "... the next case reads them back (wait 61, as the engine does below), and "
       "expect_store names them with \\xHH escapes (%s)",
       json_string_value(json_object_get(json_array_get(kcases, 1), "message")) ?: "passed");
    ok(report && !memchr(rep, 0, replen) && !strstr(rep, "\\u0000"),
       "the report is JSON without a zero byte or \\u0000, which C readers cut or refuse");
    json_t *shown = json_object_get(json_array_get(kcases, 2), "store");
    const char *why = json_string_value(json_object_get(json_array_get(kcases, 2), "message"));
    ok(json_object_size(shown) == 4 &&
           json_integer_value(json_object_get(shown, "n\\x00ul")) == 1 &&
           !strcmp(json_string_value(json_object_get(shown, "k\\xFF")) ?: "", "v\\xFF") &&
           !strcmp(json_string_value(json_object_get(shown, "b\\\\s")) ?: "", "x\\\\y") &&
           json_is_null(json_object_get(shown, "nan")) && why && strstr(why, "n\\\\x00ul"),
       "a failing store is reported with the zero byte, the bytes that are not UTF-8 and the "
       "backslashes escaped (%s)",
       why ? why : "-");
    json_decref(report);
    static const char badstore[] = "[{\"store\":{\"k\":[1]}},{\"store\":{\"\":1}}]";
    sb_policy_test("kv.lua", policy, strlen(policy), badstore, strlen(badstore), res);
    report = as_json(0);
    kcases = json_object_get(report, "cases");
    const char *m1 = json_string_value(json_object_get(json_array_get(kcases, 0), "message"));
    const char *m2 = json_string_value(json_object_get(json_array_get(kcases, 1), "message"));
    ok(m1 && strstr(m1, "store.k: expected a string") && m2 && strstr(m2, "1..64 bytes"),
       "a case's store holds only what the engine's can (%s; %s)", m1 ? m1 : "-", m2 ? m2 : "-");
    json_decref(report);

    /* The engine reads every value back as it was written. */
    ok(offer("k2", "kv-read") == 0, "a later call reads the store");
    kc = as_json(sb_call_get(eng, "acme", "k2", res));
    k0 = json_array_get(json_object_get(kc, "trace"), 0);
    const char *kdetail = json_string_value(json_object_get(k0, "detail"));
    ok(kdetail && !strcmp(kdetail, "wait 61"),
       "... the engine's ctx.get returns those keys' bytes, values and NaN as ctx.set wrote them "
       "(%s)",
       kdetail ? kdetail : "-");
    json_decref(kc);
    finish("k2");

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
