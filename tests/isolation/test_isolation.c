/*
** test_isolation.c — nothing crosses accounts, through the library and
** through policies.
**
** Two accounts: acme (A) and globex (B), each with its agents, queues, a
** policy of the same name ("pol"), calls (live, waiting, finished) and an API
** key; both also use one shared policy from the policy directory. Then:
**
**  - every library call that takes an account is made as B with A's ids
**    (agents, queues, memberships, calls live and finished, key ids, queue
**    and agent targets of transfers) and must answer exactly as it does for
**    an id that never existed: the same code, the same field, the same
**    message up to the id itself; B's lists hold only B's things; A's keys
**    do not verify for B (nor B's for A); and A's state reads back unchanged;
**
**  - every policy API is tried from B's policies for a way to A's data:
**    ctx.get of the keys A's policy set (same policy name, and the shared
**    policy), module-level state of the shared policy (each account has its
**    own Lua state), call.previous_agent for a caller A served, ctx.queue's
**    figures for a queue id both accounts use, the agents list, and
**    decisions naming A's agents (ring, pause) and A's queue (move) — which
**    must behave like names that do not exist and touch nothing of A's;
**
**  - call records: B's access requests (JSON and CSV) and erasure requests
**    for a number that called A find what they find for a number that never
**    called, B's hold on A's call id neither protects nor shows A's record,
**    A's holds cannot be released by B, and B's records list, holds,
**    aggregates and audit log hold only B's.
**
** Policies report what they saw through the reject reason of the call.
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

static char dir[256];
static sb_engine *eng;
static sb_result *res;

/* ------------------------------------------------------------------------ */
/* Policies. */

/* A's "pol": rings the first agent by id, and writes its store. */
static const char pol_a[] = "local P = {}\n"
                            "function P.route(call, agents, ctx)\n"
                            "  ctx.set('secret', 'acme-secret')\n"
                            "  ctx.set('n', (ctx.get('n') or 0) + 1)\n"
                            "  table.sort(agents, function(x, y) return x.id < y.id end)\n"
                            "  if call.attrs.probe == 'history' then\n"
                            "    return { reject = 'prev=' .. tostring(call.previous_agent) }\n"
                            "  end\n"
                            "  if agents[1] then return { ring = agents[1] } end\n"
                            "  return { wait = 600 }\n"
                            "end\n"
                            "return P\n";

/* B's "pol": reports what it can see, or tries to reach A, as attrs ask. */
static const char pol_b[] =
    "local P = {}\n"
    "function P.route(call, agents, ctx)\n"
    "  local probe = call.attrs.probe\n"
    "  if probe == 'kv' then\n"
    "    return { reject = 'secret=' .. tostring(ctx.get('secret')) .. ' n=' .. "
    "tostring(ctx.get('n')) }\n"
    "  elseif probe == 'history' then\n"
    "    return { reject = 'prev=' .. tostring(call.previous_agent) }\n"
    "  elseif probe == 'queue' then\n"
    "    local q = ctx.queue\n"
    "    return { reject = string.format('q=%s w=%d m=%d a=%d', q.id, q.waiting, q.members, "
    "q.available) }\n"
    "  elseif probe == 'agents' then\n"
    "    local ids = {}\n"
    "    for _, a in ipairs(agents) do ids[#ids + 1] = a.id end\n"
    "    table.sort(ids)\n"
    "    return { reject = 'agents=' .. table.concat(ids, ',') }\n"
    "  elseif probe == 'ring' then\n"
    "    return { ring = call.attrs.target }\n"
    "  elseif probe == 'pause' then\n"
    "    return { pause = { agent = call.attrs.target, reason = 'from B' }, wait = 600 }\n"
    "  elseif probe == 'move' then\n"
    "    return { move = call.attrs.target, reason = 'from B' }\n"
    "  end\n"
    "  return { wait = 600 }\n"
    "end\n"
    "return P\n";

/* The shared policy: module-level memory of the calls it saw, and a store. */
static const char shared_pol[] =
    "local P = {}\n"
    "local seen = {}\n"
    "function P.route(call, agents, ctx)\n"
    "  local before = table.concat(seen, ',')\n"
    "  seen[#seen + 1] = call.id\n"
    "  local k = ctx.get('shared')\n"
    "  ctx.set('shared', call.id)\n"
    "  return { reject = 'seen=' .. before .. ' kv=' .. tostring(k) }\n"
    "end\n"
    "return P\n";

/* ------------------------------------------------------------------------ */

static int must(int rc, const char *what)
{
    if (rc) diag("%s: %s", what, sb_result_message(res));
    return rc;
}

__attribute__((format(printf, 2, 3))) static int ev(const char *acct, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return sb_submit_json(eng, acct, buf, strlen(buf), res);
}

static int put(int (*fn)(sb_engine *, const char *, const char *, size_t, sb_result *),
               const char *acct, const char *json)
{
    return must(fn(eng, acct, json, strlen(json), res), json);
}

#define AGENT(id)                                                                                  \
    "{\"id\":\"" id "\",\"devices\":{\"softphone\":\"sip:" id "@x.example\"},\"status\":"          \
    "\"available\"}"

static char key_a[128], key_a_id[64], key_b[128];

static int provision(void)
{
    char data[300], pols[300];
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(pols, sizeof pols, "%s/policies", dir);
    mkdir(pols, 0700);
    char path[400];
    snprintf(path, sizeof path, "%s/shared.lua", pols);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(shared_pol, f);
    fclose(f);
    sb_config cfg;
    sb_config_init(&cfg);
    cfg.data_dir = data;
    cfg.policy_dir = pols;
    cfg.sync = SB_SYNC_NONE;
    cfg.clock = test_clock;
    cfg.log = quiet;
    cfg.map_size = (size_t)4 << 20;
    if (must(sb_open(&eng, &cfg, res), "open")) return -1;
    if (must(sb_account_put(eng, "{\"id\":\"acme\"}", 13, res), "acme") ||
        must(sb_account_put(eng, "{\"id\":\"globex\"}", 15, res), "globex"))
        return -1;
    if (must(sb_policy_put(eng, "acme", "pol", pol_a, strlen(pol_a), NULL, res), "pol A") ||
        must(sb_policy_put(eng, "globex", "pol", pol_b, strlen(pol_b), NULL, res), "pol B"))
        return -1;
    if (put(sb_agent_put, "acme", AGENT("alice")) || put(sb_agent_put, "acme", AGENT("bob")) ||
        put(sb_agent_put, "acme", AGENT("carol")) || put(sb_agent_put, "globex", AGENT("xavier")) ||
        put(sb_agent_put, "globex", AGENT("yolanda")))
        return -1;
    if (put(sb_queue_put, "acme",
            "{\"id\":\"support\",\"policy\":\"pol\",\"members\":[{\"agent\":\"alice\"},"
            "{\"agent\":\"bob\"}]}") ||
        put(sb_queue_put, "acme", "{\"id\":\"secretq\",\"policy\":\"shared\",\"members\":[]}") ||
        put(sb_queue_put, "acme", "{\"id\":\"asq\",\"policy\":\"shared\",\"members\":[]}") ||
        put(sb_queue_put, "globex",
            "{\"id\":\"sales\",\"policy\":\"pol\",\"members\":[{\"agent\":\"xavier\"},"
            "{\"agent\":\"yolanda\"}]}") ||
        /* B's own queue named like A's, with its own figures */
        put(sb_queue_put, "globex",
            "{\"id\":\"support\",\"policy\":\"pol\",\"members\":[{\"agent\":\"yolanda\"}]}") ||
        put(sb_queue_put, "globex", "{\"id\":\"bsq\",\"policy\":\"shared\",\"members\":[]}"))
        return -1;
    /* A's keys and calls: c0 finished (alice answered; its caller has history),
    ** c1 ringing, c2 ringing bob, c3 and c4 waiting. */
    json_t *k;
    if (must(sb_apikey_create(eng, "acme", res), "key A")) return -1;
    k = json_loads(sb_result_json(res, NULL), 0, NULL);
    snprintf(key_a, sizeof key_a, "%s", json_string_value(json_object_get(k, "key")));
    snprintf(key_a_id, sizeof key_a_id, "%s", json_string_value(json_object_get(k, "key_id")));
    json_decref(k);
    if (must(sb_apikey_create(eng, "globex", res), "key B")) return -1;
    k = json_loads(sb_result_json(res, NULL), 0, NULL);
    snprintf(key_b, sizeof key_b, "%s", json_string_value(json_object_get(k, "key")));
    json_decref(k);
    int rc = ev("acme", "{\"type\":\"offer\",\"call\":\"c0\",\"queue\":\"support\",\"caller\":"
                        "\"+4930555000\"}") ||
             ev("acme", "{\"type\":\"ring_result\",\"call\":\"c0\",\"agent\":\"alice\","
                        "\"outcome\":\"answered\"}") ||
             (now_ms += 30000, ev("acme", "{\"type\":\"hangup\",\"call\":\"c0\"}")) ||
             ev("acme", "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"support\",\"caller\":"
                        "\"+4930555001\"}") ||
             ev("acme", "{\"type\":\"offer\",\"call\":\"c2\",\"queue\":\"support\",\"caller\":"
                        "\"+4930555002\"}") ||
             ev("acme", "{\"type\":\"offer\",\"call\":\"c3\",\"queue\":\"support\",\"caller\":"
                        "\"+4930555003\"}") ||
             ev("acme", "{\"type\":\"offer\",\"call\":\"c4\",\"queue\":\"support\",\"caller\":"
                        "\"+4930555004\"}") ||
             ev("acme", "{\"type\":\"offer\",\"call\":\"s1\",\"queue\":\"secretq\",\"caller\":"
                        "\"+4930555005\"}");
    if (must(rc, "A's calls")) return -1;
    /* B's call b1 rings xavier. */
    if (must(ev("globex", "{\"type\":\"offer\",\"call\":\"b1\",\"queue\":\"sales\",\"caller\":"
                          "\"+4930555009\"}"),
             "B's call"))
        return -1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Comparing an answer about another account's id with one about a missing id. */

typedef struct answer {
    int rc;
    char field[64];
    char msg[512];
    char json[1024];
} answer;

/* Replace every occurrence of `id` in s with "ID". */
static void mask(char *s, size_t cap, const char *id)
{
    if (!id || !*id) return;
    char out[1024];
    size_t o = 0, n = strlen(id);
    for (const char *p = s; *p && o + 3 < sizeof out;) {
        if (!strncmp(p, id, n)) {
            memcpy(out + o, "ID", 2);
            o += 2;
            p += n;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = 0;
    snprintf(s, cap, "%s", out);
}

static answer grab(int rc, const char *id)
{
    answer a;
    a.rc = rc;
    snprintf(a.field, sizeof a.field, "%s", sb_result_field(res) ? sb_result_field(res) : "-");
    snprintf(a.msg, sizeof a.msg, "%s", sb_result_message(res));
    snprintf(a.json, sizeof a.json, "%s", sb_result_json(res, NULL));
    mask(a.msg, sizeof a.msg, id);
    mask(a.json, sizeof a.json, id);
    return a;
}

static void same(answer other, answer missing, const char *what)
{
    int good = other.rc == missing.rc && !strcmp(other.field, missing.field) &&
               !strcmp(other.msg, missing.msg) && !strcmp(other.json, missing.json);
    if (!ok(good, "%s: %s like an id that does not exist (%s)", what,
            other.rc ? "refused" : "answered", sb_strerror(other.rc)))
        diag("  other:   %s %s\n#   missing: %s %s", sb_strerror(other.rc), other.json,
             sb_strerror(missing.rc), missing.json);
}

/* Run `call` twice: with A's id and with a missing one, as B. */
#define SAME(what, id_a, id_missing, call_with_id)                                                 \
    do {                                                                                           \
        const char *ID = (id_a);                                                                   \
        answer x_ = grab((call_with_id), ID);                                                      \
        ID = (id_missing);                                                                         \
        answer y_ = grab((call_with_id), ID);                                                      \
        same(x_, y_, what);                                                                        \
    } while (0)

static char *snapshot_a(void)
{
    static const char *const calls[] = {"c0", "c1", "c2", "c3", "c4", "s1"};
    static const char *const agents[] = {"alice", "bob", "carol"};
    size_t cap = 1 << 16, len = 0;
    char *s = malloc(cap);
    s[0] = 0;
#define ADD(rc)                                                                                    \
    do {                                                                                           \
        (void)(rc);                                                                                \
        len += (size_t)snprintf(s + len, cap - len, "%s\n", sb_result_json(res, NULL));            \
    } while (0)
    ADD(sb_agent_list(eng, "acme", res));
    ADD(sb_queue_list(eng, "acme", res));
    ADD(sb_queue_get(eng, "acme", "support", res));
    ADD(sb_account_get(eng, "acme", res));
    for (size_t i = 0; i < 6; i++)
        ADD(sb_call_get(eng, "acme", calls[i], res));
    for (size_t i = 0; i < 3; i++)
        ADD(sb_agent_get(eng, "acme", agents[i], res));
#undef ADD
    return s;
}

static int by_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The sorted ids of a list result ({"agents":[{"id":...}...]}), comma-joined. */
static const char *ids_of(int rc, const char *key)
{
    static char out[1024];
    const char *ids[64];
    size_t n = 0, i;
    json_t *v, *doc = rc ? NULL : json_loads(sb_result_json(res, NULL), 0, NULL);
    json_array_foreach(json_object_get(doc, key), i, v)
    {
        if (n < 64) ids[n++] = json_string_value(json_object_get(v, "id"));
    }
    qsort(ids, n, sizeof ids[0], by_str);
    out[0] = 0;
    for (i = 0; i < n; i++)
        snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s", i ? "," : "", ids[i]);
    json_decref(doc);
    return out;
}

static void library_calls(void)
{
    char buf[1024];
#define J(...) (snprintf(buf, sizeof buf, __VA_ARGS__), buf)
    SAME("agent_get", "alice", "nobody", sb_agent_get(eng, "globex", ID, res));
    SAME("agent_delete", "alice", "nobody", sb_agent_delete(eng, "globex", ID, res));
    SAME("queue_get (A's queue id B lacks)", "secretq", "nothere",
         sb_queue_get(eng, "globex", ID, res));
    SAME("queue_delete", "secretq", "nothere", sb_queue_delete(eng, "globex", ID, res));
    SAME("queue_put naming A's agent as member", "alice", "nobody",
         (J("{\"id\":\"sales2\",\"members\":[{\"agent\":\"%s\"}]}", ID),
          sb_queue_put(eng, "globex", buf, strlen(buf), res)));
    SAME("member_put into A's queue", "secretq", "nothere",
         sb_member_put(eng, "globex", ID, "xavier", NULL, 0, res));
    SAME("member_put of A's agent", "alice", "nobody",
         sb_member_put(eng, "globex", "sales", ID, NULL, 0, res));
    SAME("member_delete in A's queue", "secretq", "nothere",
         sb_member_delete(eng, "globex", ID, "alice", res));
    SAME("member_delete of A's agent", "alice", "nobody",
         sb_member_delete(eng, "globex", "sales", ID, res));
    SAME("offer into A's queue", "secretq", "nothere",
         ev("globex",
            "{\"type\":\"offer\",\"call\":\"bx\",\"queue\":\"%s\",\"caller\":\"+4930555010\"}",
            ID));
    SAME("call_get of A's live call", "c1", "nocall", sb_call_get(eng, "globex", ID, res));
    SAME("call_get of A's finished call", "c0", "nocall", sb_call_get(eng, "globex", ID, res));
    SAME("ring_result on A's call", "c1", "nocall",
         ev("globex",
            "{\"type\":\"ring_result\",\"call\":\"%s\",\"agent\":\"alice\","
            "\"outcome\":\"answered\"}",
            ID));
    SAME("ring_result naming A's agent on B's call", "alice", "nobody",
         ev("globex",
            "{\"type\":\"ring_result\",\"call\":\"b1\",\"agent\":\"%s\","
            "\"outcome\":\"answered\"}",
            ID));
    SAME("hangup of A's call", "c1", "nocall",
         ev("globex", "{\"type\":\"hangup\",\"call\":\"%s\"}", ID));
    SAME("abandon of A's call", "c3", "nocall",
         ev("globex", "{\"type\":\"abandon\",\"call\":\"%s\"}", ID));
    SAME("transfer of A's call", "c3", "nocall",
         ev("globex", "{\"type\":\"transfer\",\"call\":\"%s\",\"queue\":\"sales\"}", ID));
    SAME("transfer of B's call into A's queue", "secretq", "nothere",
         ev("globex", "{\"type\":\"transfer\",\"call\":\"b1\",\"queue\":\"%s\"}", ID));
    SAME("transfer of B's call to A's agent", "alice", "nobody",
         ev("globex", "{\"type\":\"transfer\",\"call\":\"b1\",\"agent\":\"%s\"}", ID));
    SAME("agent_status of A's agent", "alice", "nobody",
         ev("globex", "{\"type\":\"agent_status\",\"agent\":\"%s\",\"status\":\"paused\"}", ID));
    SAME("apikey_revoke of A's key id", key_a_id, "k000000000000000",
         sb_apikey_revoke(eng, "globex", ID, res));
    SAME("queue_put overflowing into A's queue", "secretq", "nothere",
         (J("{\"id\":\"o-%s\",\"policy\":\"pol\",\"max_wait\":5,\"overflow\":\"%s\"}", ID, ID),
          sb_queue_put(eng, "globex", buf, strlen(buf), res)));
#undef J
    ok(sb_apikey_verify(eng, "globex", key_a, strlen(key_a)) == SB_EAUTH &&
           sb_apikey_verify(eng, "acme", key_b, strlen(key_b)) == SB_EAUTH &&
           sb_apikey_verify(eng, "nobody", key_a, strlen(key_a)) == SB_EAUTH,
       "A's key does not verify for B, B's not for A, nor for an unknown account");
    ok(sb_apikey_verify(eng, "acme", key_a, strlen(key_a)) == 0,
       "... while A's key verifies for A");

    /* Lists hold only the account's own. */
    is_str(ids_of(sb_agent_list(eng, "globex", res), "agents"), "xavier,yolanda",
           "B's agent list holds only B's agents");
    is_str(ids_of(sb_queue_list(eng, "globex", res), "queues"), "bsq,sales,support",
           "B's queue list holds only B's queues (no overflow into A's was stored)");
    char ver_a[40] = "";
    if (sb_policy_list(eng, "acme", res) == 0) {
        json_t *p = json_loads(sb_result_json(res, NULL), 0, NULL);
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(p, "policies"), i, v)
        {
            if (!strcmp(json_string_value(json_object_get(v, "name")), "pol"))
                snprintf(ver_a, sizeof ver_a, "%s",
                         json_string_value(json_object_get(v, "version")));
        }
        json_decref(p);
    }
    ok(ver_a[0] && sb_policy_list(eng, "globex", res) == 0 &&
           !strstr(sb_result_json(res, NULL), ver_a),
       "B's policy list does not show A's policy (same name, version %s)", ver_a);

    /* Ids are per account: B may have its own alice; A's is untouched. */
    char *before = snapshot_a();
    ok(sb_agent_put(eng, "globex", AGENT("alice"), strlen(AGENT("alice")), res) == 0 &&
           sb_agent_delete(eng, "globex", "alice", res) == 0,
       "B creates and deletes its own agent alice");
    ok(ev("globex", "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"sales\",\"caller\":"
                    "\"+4930555011\"}") == 0 &&
           ev("globex", "{\"type\":\"abandon\",\"call\":\"c1\"}") == 0,
       "B may use call id c1 too (A's c1 is not B's business)");
    char *after = snapshot_a();
    ok(!strcmp(before, after), "A's agents, queues, account and calls read back unchanged");
    if (strcmp(before, after)) diag("before:\n%s\nafter:\n%s", before, after);
    free(before);
    free(after);
}

/* ------------------------------------------------------------------------ */
/* Policies looking for a way out. */

static char reason[256];

/* Offer a B call into queue with attrs; the reject reason (what the policy
** saw) in `reason`; returns the submit code. */
static int probe(const char *call, const char *queue, const char *caller, const char *attrs)
{
    now_ms += 1000;
    reason[0] = 0;
    int rc = ev("globex",
                "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"%s\",\"caller\":\"%s\","
                "\"attrs\":%s}",
                call, queue, caller, attrs);
    for (size_t i = 0; i < sb_result_count(res); i++) {
        const sb_action *a = sb_result_action(res, i);
        if (a->type == SB_ACT_REJECT && a->reason) snprintf(reason, sizeof reason, "%s", a->reason);
    }
    if (getenv("SB_TEST_LOG") && sb_call_get(eng, "globex", call, res) == 0)
        diag("%s: %s", call, sb_result_json(res, NULL));
    return rc;
}

static const char *trace0(const char *acct, const char *call)
{
    static char detail[512];
    detail[0] = 0;
    if (sb_call_get(eng, acct, call, res)) return "";
    json_t *c = json_loads(sb_result_json(res, NULL), 0, NULL);
    json_t *tr = json_object_get(c, "trace");
    const char *d = json_string_value(json_object_get(json_array_get(tr, 0), "detail"));
    snprintf(detail, sizeof detail, "%s", d ? d : "");
    json_decref(c);
    return detail;
}

static const char *field_of(const char *acct, const char *call, const char *key)
{
    static char out[128];
    out[0] = 0;
    if (sb_call_get(eng, acct, call, res)) return "(none)";
    json_t *c = json_loads(sb_result_json(res, NULL), 0, NULL);
    snprintf(out, sizeof out, "%s",
             json_string_value(json_object_get(c, key)) ? json_string_value(json_object_get(c, key))
                                                        : "");
    json_decref(c);
    return out;
}

static void policies(void)
{
    /* A's history: caller +4930555000 spoke to alice (c0). A sees it... */
    ok(ev("acme", "{\"type\":\"offer\",\"call\":\"h1\",\"queue\":\"support\",\"caller\":"
                  "\"+4930555000\",\"attrs\":{\"probe\":\"history\"}}") == 0,
       "A: a second call from c0's caller");
    const char *why = "";
    for (size_t i = 0; i < sb_result_count(res); i++)
        if (sb_result_action(res, i)->type == SB_ACT_REJECT) why = sb_result_action(res, i)->reason;
    is_str(why, "prev=alice", "A's policy sees the caller's previous agent (the feature works)");

    ok(ev("acme", "{\"type\":\"offer\",\"call\":\"s2\",\"queue\":\"asq\",\"caller\":"
                  "\"+4930555006\"}") == 0,
       "A: another call through the shared policy");
    char *before = snapshot_a();
    probe("p1", "sales", "+4930555000", "{\"probe\":\"history\"}");
    is_str(reason, "prev=nil", "B's policy: call.previous_agent of a caller A served is nil");
    probe("p2", "sales", "+4930555001", "{\"probe\":\"kv\"}");
    is_str(reason, "secret=nil n=nil",
           "B's policy 'pol': ctx.get of the keys A's 'pol' set is nil");
    probe("p3", "support", "+4930555001", "{\"probe\":\"queue\"}");
    is_str(reason, "q=support w=1 m=1 a=1",
           "B's ctx.queue for its own 'support' counts only B's: the probe itself (A's has calls "
           "waiting)");
    probe("p4", "sales", "+4930555001", "{\"probe\":\"agents\"}");
    is_str(reason, "agents=xavier,yolanda", "B's agents list holds only B's free members");

    /* The shared policy: a Lua state per account, a store per account. */
    probe("p5", "bsq", "+4930555001", "{}");
    is_str(reason, "seen= kv=nil",
           "the shared policy in B's state has seen none of A's calls, and B's store is empty");
    probe("p6", "bsq", "+4930555001", "{}");
    is_str(reason, "seen=p5 kv=p5", "... while it remembers B's own");

    /* Decisions naming A's things behave like names that do not exist. */
    probe("r1", "sales", "+4930555001", "{\"probe\":\"ring\",\"target\":\"alice\"}");
    char d1[512];
    snprintf(d1, sizeof d1, "%s", trace0("globex", "r1"));
    probe("r2", "sales", "+4930555001", "{\"probe\":\"ring\",\"target\":\"nobody\"}");
    char d2[512];
    snprintf(d2, sizeof d2, "%s", trace0("globex", "r2"));
    if (strstr(d1, "; fallback")) *strstr(d1, "; fallback") = 0;
    if (strstr(d2, "; fallback")) *strstr(d2, "; fallback") = 0;
    mask(d1, sizeof d1, "alice");
    mask(d1, sizeof d1, "r1");
    mask(d2, sizeof d2, "nobody");
    mask(d2, sizeof d2, "r2");
    ok(strstr(d1, "not eligible") && !strcmp(d1, d2),
       "B's policy ringing A's agent: an invalid decision like an unknown agent (%s)", d1);
    if (strcmp(d1, d2)) diag("  A's agent: %s\n#   unknown:   %s", d1, d2);

    probe("m1", "sales", "+4930555001", "{\"probe\":\"move\",\"target\":\"secretq\"}");
    char m1[512], m2[512], q1[64], q2[64];
    snprintf(m1, sizeof m1, "%s", reason);
    snprintf(q1, sizeof q1, "%s", field_of("globex", "m1", "queue"));
    probe("m2", "sales", "+4930555001", "{\"probe\":\"move\",\"target\":\"nothere\"}");
    snprintf(m2, sizeof m2, "%s", reason);
    snprintf(q2, sizeof q2, "%s", field_of("globex", "m2", "queue"));
    mask(m1, sizeof m1, "secretq");
    mask(m2, sizeof m2, "nothere");
    ok(!strcmp(q1, "sales") && !strcmp(q1, q2) && !strcmp(m1, m2),
       "B's policy moving a call to A's queue: like a queue that does not exist (stays in '%s', "
       "'%s')",
       q1, m1);
    if (strcmp(m1, m2) || strcmp(q1, q2))
        diag("  A's queue: %s %s\n#   unknown:   %s %s", q1, m1, q2, m2);

    /* An overflow into A's queue id is refused when configured, as one
    ** into a queue that does not exist (above): none can fire. */

    probe("x1", "sales", "+4930555001", "{\"probe\":\"pause\",\"target\":\"carol\"}");
    char x1[512];
    snprintf(x1, sizeof x1, "%s", trace0("globex", "x1"));
    probe("x2", "sales", "+4930555001", "{\"probe\":\"pause\",\"target\":\"nobody\"}");
    char x2[512];
    snprintf(x2, sizeof x2, "%s", trace0("globex", "x2"));
    mask(x1, sizeof x1, "carol");
    mask(x2, sizeof x2, "nobody");
    ok(!strcmp(x1, x2), "B's policy pausing A's agent: like an agent that does not exist (%s)", x1);
    if (strcmp(x1, x2)) diag("  A's agent: %s\n#   unknown:   %s", x1, x2);

    char *after = snapshot_a();
    ok(!strcmp(before, after), "A's agents, queues, account and calls read back unchanged after "
                               "B's policies tried all that");
    if (strcmp(before, after)) diag("before:\n%s\nafter:\n%s", before, after);
    json_t *carol = NULL;
    if (sb_agent_get(eng, "acme", "carol", res) == 0)
        carol = json_loads(sb_result_json(res, NULL), 0, NULL);
    is_str(carol ? json_string_value(json_object_get(carol, "status")) : "?", "available",
           "A's carol is still available after B's policy tried to pause her");
    json_decref(carol);
    free(before);
    free(after);
}

/* ------------------------------------------------------------------------ */
/* Call records, erasure, holds, aggregates, the audit log. */

static void records(void)
{
    char buf[256];
#define J(...) (snprintf(buf, sizeof buf, __VA_ARGS__), buf)
    static const char hold[] = "{\"id\":\"ha1\",\"call\":\"h1\",\"reason\":\"audit\"}";
    ok(sb_hold_place(eng, "acme", hold, strlen(hold), res) == 0,
       "A places a legal hold ha1 on its call h1");
    /* +4930555006 called A (s2, finished) and never B. */
    SAME("records_export of a number A's calls came from", "+4930555006", "+4930999999",
         sb_records_export(eng, "globex", ID, SB_EXPORT_JSON, res));
    SAME("records_export (CSV) of A's caller", "+4930555006", "+4930999999",
         sb_records_export(eng, "globex", ID, SB_EXPORT_CSV, res));
    SAME("hold_release of A's hold", "ha1", "hnothere", sb_hold_release(eng, "globex", ID, res));
    SAME("hold_place on A's call id", "c0", "nocall",
         (J("{\"id\":\"hb-%s\",\"call\":\"%s\",\"reason\":\"x\"}", ID, ID),
          sb_hold_place(eng, "globex", buf, strlen(buf), res)));
    SAME("aggregates of A's queue id", "secretq", "nothere",
         sb_aggregates(eng, "globex", ID, 0, 0, res));
    is_str(ids_of(sb_hold_list(eng, "globex", res), "holds"), "",
           "B's hold list: none (a hold on a call id B has not is refused, A's or none)");
    char list[1 << 14];
    snprintf(list, sizeof list, "%s",
             sb_records_list(eng, "globex", NULL, 0, res) == 0 ? sb_result_json(res, NULL) : "");
    ok(!strstr(list, "\"c0\"") && !strstr(list, "\"h1\"") && !strstr(list, "\"s2\"") &&
           strstr(list, "\"p1\""),
       "B's records list holds B's calls and none of A's");
    json_t *lj = json_loads(list, 0, NULL);
    json_int_t b_records = (json_int_t)json_array_size(json_object_get(lj, "records"));
    json_decref(lj);
    json_t *ag = sb_aggregates(eng, "globex", NULL, 0, 0, res) == 0
                     ? json_loads(sb_result_json(res, NULL), 0, NULL)
                     : NULL;
    json_int_t offered = 0;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(ag, "days"), i, v)
    {
        if (json_is_null(json_object_get(v, "queue")))
            offered += json_integer_value(json_object_get(v, "offered"));
    }
    json_decref(ag);
    ok(offered > 0 && offered == b_records,
       "B's aggregates count B's %lld finished calls only (%lld)", (long long)b_records,
       (long long)offered);
    /* B's dry run of a policy over every record: B's records alone, none of
    ** A's ids in its samples, A's hold on h1 overriding nothing of B's. */
    static const char all[] =
        "{\"policy\":\"retention/t\",\"sample\":1000,\"source\":\"local P = {} "
        "function P.retain(r, c) return { delete = true } end return P\"}";
    char pv[1 << 14];
    snprintf(pv, sizeof pv, "%s",
             sb_retention_preview(eng, "globex", all, strlen(all), res) == 0
                 ? sb_result_json(res, NULL)
                 : "");
    json_t *pj = json_loads(pv, 0, NULL);
    ok(pj && json_integer_value(json_object_get(pj, "reviewed")) == b_records &&
           json_integer_value(json_object_get(pj, "overridden")) == 0 && !strstr(pv, "\"c0\"") &&
           !strstr(pv, "\"h1\"") && !strstr(pv, "\"s2\"") && strstr(pv, "\"p1\""),
       "B's retention preview reviews B's %lld records and none of A's (%s)", (long long)b_records,
       pv);
    json_decref(pj);
    const char *audit =
        sb_audit_list(eng, "globex", 0, 0, res) == 0 ? sb_result_json(res, NULL) : "";
    ok(!strstr(audit, "ha1") && !strstr(audit, "\"h1\"") && !strstr(audit, "\"s2\""),
       "B's audit log shows nothing of A's");
    /* B's erasure of A's caller, and B's hold on the id of A's call: A's
    ** records are B's business in neither way. */
    SAME("erase of A's caller", "+4930555006", "+4930999999", sb_erase(eng, "globex", ID, res));
    ok(sb_call_get(eng, "acme", "s2", res) == 0, "A's record s2 is still there after B's erasure");
    /* c0's caller: B's hold on "c0" (an id B has not) was refused, and whatever
    ** B holds must not keep A's c0. */
    char er[512];
    snprintf(er, sizeof er, "%s",
             sb_erase(eng, "acme", "+4930555000", res) == 0 ? sb_result_json(res, NULL) : "");
    json_t *ej = json_loads(er, 0, NULL);
    ok(ej && json_integer_value(json_object_get(ej, "deleted")) >= 1 &&
           sb_call_get(eng, "acme", "c0", res) == SB_ENOTFOUND && !strstr(er, "hb-c0"),
       "A's own erasure of c0's caller is not held back by B's hold on 'c0' (%s)", er);
    json_decref(ej);
    is_str(ids_of(sb_hold_list(eng, "acme", res), "holds"), "ha1", "A's hold list: only ha1");
#undef J
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sb-isolation-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    res = sb_result_new();
    if (ok(provision() == 0, "two accounts provisioned, with calls, keys, policies")) {
        library_calls();
        policies();
        records();
    }
    sb_close(eng);
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
}
