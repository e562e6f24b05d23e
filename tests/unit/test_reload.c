/*
** test_reload.c — changing policies safely: reload from the policy directory
** (all or nothing, with the reason; cases that cannot be read fail it), two
** engines on one data directory both moving to a new version, every decision
** recording the version that made it (also with reloads under threads that
** route), quarantine lifted by a reload or an upload and the policy list and
** statistics saying so at once, and signed policies: what names one that
** does not run (test_signed_use).
*/
#include "switchboard.h"
#include "tap.h"
#define TESTKIT_LOG_KEEP
#include "testkit.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256], pdir[300];
static sb_result *res;

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", pdir, name);
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static sb_engine *open_engine(int signed_only, const char *pk)
{
    sb_config cfg;
    sb_config_init(&cfg);
    cfg.data_dir = dir;
    cfg.policy_dir = pdir;
    cfg.sync = SB_SYNC_NONE;
    cfg.clock = test_clock;
    cfg.map_size = 4 << 20;
    cfg.log = log_keep;
    cfg.require_signed_policies = signed_only;
    cfg.policy_public_key = pk;
    sb_engine *e = NULL;
    if (sb_open(&e, &cfg, res) && getenv("SB_TEST_LOG")) diag("open: %s", sb_result_message(res));
    return e;
}

static const char *POLICY_A = "local P = {}\n"
                              "function P.route(call, agents, ctx) return { reject = 'A' } end\n"
                              "return P\n";
static const char *POLICY_B = "local P = {}\n"
                              "function P.route(call, agents, ctx) return { reject = 'B' } end\n"
                              "return P\n";

/* Offer a call and return the reject reason (the policy's letter). */
static const char *decide(sb_engine *e, int n)
{
    static char reason[64];
    char json[200];
    snprintf(json, sizeof json,
             "{\"type\":\"offer\",\"call\":\"r%d\",\"queue\":\"q\",\"caller\":\"+15550000001\"}",
             n);
    reason[0] = 0;
    if (sb_submit_json(e, "acme", json, strlen(json), res)) return "error";
    for (size_t i = 0; i < sb_result_count(res); i++) {
        const sb_action *a = sb_result_action(res, i);
        if (a->type == SB_ACT_REJECT) snprintf(reason, sizeof reason, "%s", a->reason);
    }
    return reason;
}

static const char *version_of(sb_engine *e, int n)
{
    static char v[32];
    char id[32];
    snprintf(id, sizeof id, "r%d", n);
    v[0] = 0;
    if (sb_call_get(e, "acme", id, res)) return "";
    json_t *o = json_loads(sb_result_json(res, NULL), 0, NULL);
    json_t *pv = json_array_get(json_object_get(o, "policy_versions"), 0);
    snprintf(v, sizeof v, "%s", json_string_value(json_object_get(pv, "version")));
    json_decref(o);
    return v;
}

/* Offer a call to queue `queue` of account `acct` and take it away again:
** the reject reason the policy gave, or "" when something else decided (a
** fallback rings). */
static const char *decide_at(sb_engine *e, const char *acct, const char *queue, int n)
{
    static char reason[64];
    char json[200];
    snprintf(json, sizeof json,
             "{\"type\":\"offer\",\"call\":\"%s%d\",\"queue\":\"%s\",\"caller\":"
             "\"+15550000001\"}",
             queue, n, queue);
    reason[0] = 0;
    if (sb_submit_json(e, acct, json, strlen(json), res)) return "error";
    for (size_t i = 0; i < sb_result_count(res); i++) {
        const sb_action *a = sb_result_action(res, i);
        if (a->type == SB_ACT_REJECT) snprintf(reason, sizeof reason, "%s", a->reason);
    }
    snprintf(json, sizeof json, "{\"type\":\"abandon\",\"call\":\"%s%d\"}", queue, n);
    sb_submit_json(e, acct, json, strlen(json), res); /* refused once it ended: fine */
    return reason;
}

static const char *decide_in(sb_engine *e, const char *queue, int n)
{
    return decide_at(e, "acme", queue, n);
}

/* What sb_policy_list says of policy `name`: its state ("none" when not
** listed) and its failures, as "state/failures" (in one of four buffers,
** so that two calls can go in one message); "differs" when sb_policy_get
** says otherwise. */
static const char *state_of(sb_engine *e, const char *name)
{
    static char bufs[4][48];
    static int next;
    char *state = bufs[next++ % 4];
    snprintf(state, sizeof bufs[0], "none");
    if (sb_policy_list(e, "acme", res)) return "error";
    json_t *o = json_loads(sb_result_json(res, NULL), 0, NULL);
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(o, "policies"), i, p)
    {
        if (strcmp(json_string_value(json_object_get(p, "name")), name) != 0) continue;
        snprintf(state, sizeof bufs[0], "%s/%d", json_string_value(json_object_get(p, "state")),
                 (int)json_integer_value(json_object_get(p, "failures")));
    }
    json_decref(o);
    if (sb_policy_get(e, "acme", name, res)) return strcmp(state, "none") ? "differs" : state;
    o = json_loads(sb_result_json(res, NULL), 0, NULL);
    char got[48];
    snprintf(got, sizeof got, "%s/%d", json_string_value(json_object_get(o, "state")),
             (int)json_integer_value(json_object_get(o, "failures")));
    json_decref(o);
    return strcmp(got, state) ? "differs" : state;
}

/* sb_stats' policy figure `key` ("quarantined", "generation", ...). */
static long long policy_stat(sb_engine *e, const char *key)
{
    if (sb_stats(e, res)) return -1;
    json_t *o = json_loads(sb_result_json(res, NULL), 0, NULL);
    long long n = json_integer_value(json_object_get(json_object_get(o, "policy"), key));
    json_decref(o);
    return n;
}

/* A policy that fails while nobody is free to ring (agents[1] is nil) and
** otherwise rejects with the id of the first agent: it fails for a reason
** outside its file, which an operator fixes without changing the file. */
static const char *PICKY = "local P = {}\n"
                           "function P.route(call, agents, ctx)\n"
                           "  return { reject = agents[1].id }\n"
                           "end\n"
                           "return P\n";

/* Quarantine ends when the policy is reloaded (policies/README.md): a
** shared policy by a reload, also one that changes no file, in every engine
** on the data directory; an upload by uploading it again. And the policy
** list says so at once: it shows no quarantine the next decision lifts. */
static void test_quarantine_ends(sb_engine *e1, sb_engine *e2)
{
    write_file("picky.lua", PICKY);
    const char *pq = "{\"id\":\"pq\",\"policy\":\"picky\"}";
    ok(sb_reload(e1, res) == 0 && sb_queue_put(e1, "acme", pq, strlen(pq), res) == 0,
       "quarantine: queue pq routed by the shared policy picky, nobody in it");
    for (int i = 0; i < 5; i++) {
        decide_in(e1, "pq", 100 + i);
        decide_in(e2, "pq", 200 + i);
    }
    const char *s1 = state_of(e1, "picky"), *s2 = state_of(e2, "picky");
    ok(!strcmp(s1, "quarantined/5") && !strcmp(s2, "quarantined/5"),
       "5 failures quarantine picky in both engines (%s, %s)", s1, s2);
    const char *alice = "{\"id\":\"alice\",\"devices\":{\"softphone\":\"sip:alice@x\"},"
                        "\"status\":\"available\"}";
    ok(sb_agent_put(e1, "acme", alice, strlen(alice), res) == 0 &&
           sb_member_put(e1, "acme", "pq", "alice", "{}", 2, res) == 0,
       "the operator puts alice in pq: picky would decide now");
    is_str(decide_in(e2, "pq", 300), "", "but it is quarantined: the fallback decides");

    long long gen = policy_stat(e1, "generation");
    ok(policy_stat(e1, "quarantined") == 1, "engine 1's statistics count the quarantine");
    ok(sb_reload(e1, res) == 0, "the operator reloads, no file changed (%s)",
       sb_result_message(res));
    ok(policy_stat(e1, "quarantined") == 0 && policy_stat(e1, "generation") > gen,
       "engine 1's statistics show it at once: no quarantine, a new generation");
    s1 = state_of(e1, "picky");
    s2 = state_of(e2, "picky");
    ok(!strcmp(s1, "ok/0") && !strcmp(s2, "ok/0"),
       "the list shows the quarantine lifted in both engines at once (%s, %s)", s1, s2);
    is_str(decide_in(e2, "pq", 301), "alice", "engine 2: picky decides again");
    is_str(decide_in(e1, "pq", 302), "alice", "engine 1 too");

    /* An upload: a fixed version, or the same text again, lifts it. */
    ok(sb_policy_put(e1, "acme", "own", PICKY, strlen(PICKY), NULL, res) == 0 &&
           sb_queue_put(e1, "acme", "{\"id\":\"oq\",\"policy\":\"own\"}", 26, res) == 0,
       "an upload 'own' like picky routes queue oq, nobody in it");
    for (int i = 0; i < 5; i++)
        decide_in(e1, "oq", 400 + i);
    s1 = state_of(e1, "own");
    ok(!strcmp(s1, "quarantined/5"), "5 failures quarantine it (%s)", s1);
    /* Another policy of the account uploaded and deleted: 'own' is not
    ** uploaded again, so it stays quarantined (it was lifted). */
    ok(sb_policy_put(e1, "acme", "spare", PICKY, strlen(PICKY), NULL, res) == 0,
       "another policy, spare, uploaded");
    s1 = state_of(e1, "own");
    ok(!strcmp(s1, "quarantined/5"), "own stays quarantined (%s)", s1);
    is_int((int)policy_stat(e1, "quarantined"), 1, "the statistics count it still");
    is_str(decide_in(e1, "oq", 405), "", "the fallback decides oq's call");
    s1 = state_of(e1, "own");
    ok(!strcmp(s1, "quarantined/5"), "own did not run: still quarantined/5 (%s)", s1);
    ok(sb_policy_delete(e1, "acme", "spare", res) == 0, "spare deleted");
    s1 = state_of(e1, "own");
    ok(!strcmp(s1, "quarantined/5"), "own stays quarantined after that too (%s)", s1);
    ok(sb_policy_put(e1, "acme", "own", PICKY, strlen(PICKY), NULL, res) == 0,
       "the same text uploaded again");
    is_int((int)policy_stat(e1, "quarantined"), 0, "the statistics count no quarantine");
    s1 = state_of(e1, "own");
    ok(!strcmp(s1, "ok/0"), "the list shows no quarantine (%s)", s1);
    is_str(decide_in(e1, "oq", 410), "", "its next decision runs it (it fails: nobody in oq)");
    s1 = state_of(e1, "own");
    ok(!strcmp(s1, "ok/1"), "one failure counted, not quarantined (%s)", s1);
    for (int i = 0; i < 4; i++)
        decide_in(e1, "oq", 420 + i);
    static const char *FIXED =
        "local P = {}\n"
        "function P.route(call, agents, ctx) return { reject = 'fixed' } end\n"
        "return P\n";
    ok(!strcmp(state_of(e1, "own"), "quarantined/5") &&
           sb_policy_put(e1, "acme", "own", FIXED, strlen(FIXED), NULL, res) == 0,
       "quarantined again; a fixed version uploaded");
    s1 = state_of(e1, "own");
    s2 = state_of(e2, "own");
    ok(!strcmp(s1, "ok/0") && !strcmp(s2, "ok/0"),
       "the list shows the fixed version not quarantined, in both engines (%s, %s)", s1, s2);
    is_str(decide_in(e1, "oq", 430), "fixed", "and it decides");
    ok(sb_queue_delete(e1, "acme", "oq", res) == 0 && sb_queue_delete(e1, "acme", "pq", res) == 0 &&
           sb_policy_delete(e1, "acme", "own", res) == 0,
       "quarantine: cleaned up");
    char path[512];
    snprintf(path, sizeof path, "%s/picky.lua", pdir);
    unlink(path);
    ok(sb_reload(e1, res) == 0, "and picky goes");
}

/* Reloads while other threads route on both engines and read the policy
** list and statistics: every decision is made, and recorded, by one whole
** version (the reject reason and the version in its record agree). */
static sb_engine *thr_eng[2];
static char thr_va[32], thr_vb[32];
static volatile int thr_stop;

typedef struct {
    int id, decided, wrong, errors;
} thr_arg;

static void *thr_route(void *p)
{
    thr_arg *a = p;
    sb_result *r = sb_result_new();
    sb_engine *e = thr_eng[a->id % 2];
    for (int i = 0; !thr_stop; i++) {
        char json[200], id[32];
        snprintf(id, sizeof id, "t%d-%d", a->id, i);
        snprintf(json, sizeof json,
                 "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"q\",\"caller\":"
                 "\"+15550000001\"}",
                 id);
        if (sb_submit_json(e, "acme", json, strlen(json), r)) {
            a->errors++;
            continue;
        }
        char reason[8] = "";
        for (size_t k = 0; k < sb_result_count(r); k++)
            if (sb_result_action(r, k)->type == SB_ACT_REJECT)
                snprintf(reason, sizeof reason, "%s", sb_result_action(r, k)->reason);
        if (sb_call_get(e, "acme", id, r)) {
            a->errors++;
            continue;
        }
        json_t *o = json_loads(sb_result_json(r, NULL), 0, NULL);
        const char *v = json_string_value(
            json_object_get(json_array_get(json_object_get(o, "policy_versions"), 0), "version"));
        const char *want = !strcmp(reason, "A") ? thr_va : !strcmp(reason, "B") ? thr_vb : NULL;
        a->wrong += !want || !v || strcmp(v, want) != 0;
        a->decided++;
        json_decref(o);
    }
    sb_result_free(r);
    return NULL;
}

static void *thr_read(void *p)
{
    thr_arg *a = p;
    sb_result *r = sb_result_new();
    while (!thr_stop) {
        a->errors += sb_policy_list(thr_eng[0], "acme", r) != 0;
        a->errors += sb_stats(thr_eng[1], r) != 0;
        a->decided++;
    }
    sb_result_free(r);
    return NULL;
}

static void test_reload_threads(sb_engine *e1, sb_engine *e2)
{
    char cases[512];
    snprintf(cases, sizeof cases, "%s/router.cases.json", pdir);
    unlink(cases);
    write_file("router.lua", POLICY_A);
    ok(sb_reload(e1, res) == 0 && decide(e1, 900)[0] == 'A', "threads: router is A");
    snprintf(thr_va, sizeof thr_va, "%s", version_of(e1, 900));
    write_file("router.lua", POLICY_B);
    ok(sb_reload(e1, res) == 0 && decide(e1, 901)[0] == 'B', "threads: router is B");
    snprintf(thr_vb, sizeof thr_vb, "%s", version_of(e1, 901));
    thr_eng[0] = e1;
    thr_eng[1] = e2;
    thr_stop = 0;
    pthread_t th[4];
    thr_arg a[4];
    for (int i = 0; i < 4; i++)
        a[i] = (thr_arg){.id = i};
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, i < 3 ? thr_route : thr_read, &a[i]);
    int failed = 0;
    for (int k = 0; k < 60; k++) {
        write_file("router.lua", k % 2 ? POLICY_B : POLICY_A);
        failed += sb_reload(k % 3 ? e1 : e2, res) != 0;
    }
    thr_stop = 1;
    int decided = 0, wrong = 0, errors = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        if (i < 3) decided += a[i].decided, wrong += a[i].wrong;
        errors += a[i].errors;
    }
    ok(failed == 0 && errors == 0,
       "threads: 60 reloads on both engines while three threads route and one reads the list "
       "and statistics: %d failed, %d errors",
       failed, errors);
    ok(decided > 0 && wrong == 0,
       "threads: each of %d decisions recorded the version that made it (%d did not)", decided,
       wrong);
}

/* An account deleted by one engine: the others drop its policy state at
** their next write (it would stay until a reload otherwise). */
static void test_deleted_account(sb_engine *e1, sb_engine *e2)
{
    const char *q = "{\"id\":\"q\",\"policy\":\"router\"}";
    const char *offer =
        "{\"type\":\"offer\",\"call\":\"g1\",\"queue\":\"q\",\"caller\":\"+15550000001\"}";
    decide(e2, 900); /* acme's state is built in engine 2 */
    long long before = policy_stat(e2, "memory_bytes");
    ok(sb_account_put(e1, "{\"id\":\"gone\"}", 13, res) == 0 &&
           sb_queue_put(e1, "gone", q, strlen(q), res) == 0 &&
           sb_submit_json(e2, "gone", offer, strlen(offer), res) == 0,
       "account gone routes a call in engine 2");
    long long with = policy_stat(e2, "memory_bytes");
    ok(with > before, "engine 2 holds its policy state (%lld bytes, %lld before)", with, before);
    ok(sb_account_delete(e1, "gone", res) == 0, "engine 1 deletes the account (%s)",
       sb_result_message(res));
    decide(e2, 901); /* any write of engine 2 */
    long long after = policy_stat(e2, "memory_bytes");
    ok(after < with, "engine 2 dropped it at its next write (%lld bytes, %lld with it)", after,
       with);
}

/* An account's upload that shadows a shared policy of the same name: its
** delete puts the shared one in its place, so it is refused, naming the
** queue or setting, when the shared one lacks the hook one of the
** account's queues (route) or its retention setting (retain) calls;
** refused exactly as an upload without that hook would be. */
static void test_delete_shadowing(sb_engine *e1, sb_engine *e2)
{
    static const char *RETAIN_ONLY = "local P = {}\n"
                                     "function P.retain(record, ctx) return { keep = true } end\n"
                                     "return P\n";
    static const char *BOTH = "local P = {}\n"
                              "function P.route(call, agents, ctx) return { reject = 'own' } end\n"
                              "function P.retain(record, ctx) return { keep = true } end\n"
                              "return P\n";
    write_file("shadow.lua", RETAIN_ONLY);
    write_file("keeper.lua", POLICY_A);
    ok(sb_reload(e1, res) == 0, "shared shadow (retain only) and keeper (route only) (%s)",
       sb_result_message(res));
    ok(sb_policy_put(e1, "acme", "shadow", BOTH, strlen(BOTH), NULL, res) == 0 &&
           sb_policy_put(e1, "acme", "keeper", BOTH, strlen(BOTH), NULL, res) == 0,
       "acme uploads its own shadow and keeper, with both hooks");
    const char *sq = "{\"id\":\"sq\",\"policy\":\"shadow\"}";
    ok(sb_queue_put(e1, "acme", sq, strlen(sq), res) == 0, "queue sq routes with acme's shadow");
    int rc = sb_policy_delete(e1, "acme", "shadow", res);
    ok(rc == SB_ESTATE && sb_result_field(res) && !strcmp(sb_result_field(res), "name") &&
           strstr(sb_result_message(res), "queue 'sq' routes with policy 'shadow'") &&
           strstr(sb_result_message(res), "no route hook"),
       "deleting it is refused: the shared shadow, which would stand in, has no route (%s)",
       sb_result_message(res));
    is_str(decide_in(e2, "sq", 1), "own", "and acme's upload still decides");
    ok(sb_queue_delete(e1, "acme", "sq", res) == 0 &&
           sb_policy_delete(e1, "acme", "shadow", res) == 0 &&
           strstr(sb_result_json(res, NULL), "\"now\":\"shared\""),
       "once no queue routes with it, it goes and the shared one stands in (%s)",
       sb_result_message(res));

    const char *ak = "{\"id\":\"acme\",\"retention\":\"keeper\"}";
    ok(sb_account_put(e1, ak, strlen(ak), res) == 0,
       "acme's records are reviewed by its keeper (%s)", sb_result_message(res));
    rc = sb_policy_delete(e1, "acme", "keeper", res);
    ok(rc == SB_ESTATE &&
           strstr(sb_result_message(res), "the retention setting of account 'acme' reviews "
                                          "records with policy 'keeper'") &&
           strstr(sb_result_message(res), "no retain hook"),
       "deleting it is refused: the shared keeper has no retain (%s)", sb_result_message(res));
    ok(sb_policy_get(e1, "acme", "keeper", res) == 0 &&
           strstr(sb_result_json(res, NULL), "\"source\":\"account\""),
       "and the upload is still there");
    const char *an = "{\"id\":\"acme\"}";
    ok(sb_account_put(e1, an, strlen(an), res) == 0 &&
           sb_policy_delete(e1, "acme", "keeper", res) == 0,
       "once the account's retention is another policy's, it goes (%s)", sb_result_message(res));

    char path[600];
    snprintf(path, sizeof path, "%s/shadow.lua", pdir);
    unlink(path);
    snprintf(path, sizeof path, "%s/keeper.lua", pdir);
    unlink(path);
    ok(sb_reload(e1, res) == 0, "the shared shadow and keeper go (%s)", sb_result_message(res));
}

/* A policy keeping a count of its calls in its store: each call adds an x. */
static const char *COUNTER = "local P = {}\n"
                             "function P.route(call, agents, ctx)\n"
                             "  local n = (ctx.get('n') or '') .. 'x'\n"
                             "  ctx.set('n', n)\n"
                             "  return { reject = n }\n"
                             "end\n"
                             "return P\n";

/* What the last reload's document says of policy `name` removed: its
** "stores_dropped", -1 when it lists no such removal, -2 without the count. */
static long long dropped_of(const char *name)
{
    json_t *o = json_loads(sb_result_json(res, NULL), 0, NULL), *p;
    long long n = -1;
    size_t i;
    json_array_foreach(json_object_get(o, "policies"), i, p)
    {
        const char *pn = json_string_value(json_object_get(p, "name"));
        if (!pn || strcmp(pn, name) != 0 || !json_is_null(json_object_get(p, "version"))) continue;
        json_t *d = json_object_get(p, "stores_dropped");
        n = json_is_integer(d) ? json_integer_value(d) : -2;
    }
    json_decref(o);
    return n;
}

static int queue_kq(sb_engine *e, const char *acct)
{
    const char *kq = "{\"id\":\"kq\",\"policy\":\"counter\"}";
    return sb_queue_put(e, acct, kq, strlen(kq), res);
}

/* A policy's store (ctx.set) was kept, account by account, after its shared
** file was removed, and a new file of that name read the old one's state:
** the store now goes with the policy, in the reload's transaction (also the
** load of an engine opening), and the reload's document (or, opening, the
** log) says in how many accounts. An account with an upload of that name
** keeps its store (the upload decides with it), as the shared policy
** standing in for a deleted upload carries that store on; a reload that
** fails, for a file that cannot be read or one that does not load, takes
** nothing. */
static void test_store_dropped(sb_engine *e1, sb_engine *e2)
{
    write_file("counter.lua", COUNTER);
    ok(sb_reload(e1, res) == 0, "a shared policy counting its calls in its store (%s)",
       sb_result_message(res));
    ok(sb_account_put(e1, "{\"id\":\"kv2\"}", 12, res) == 0 &&
           sb_account_put(e1, "{\"id\":\"kv3\"}", 12, res) == 0 &&
           sb_policy_put(e1, "kv3", "counter", COUNTER, strlen(COUNTER), NULL, res) == 0,
       "accounts kv2 and kv3, kv3 with an upload of its own named counter (%s)",
       sb_result_message(res));
    ok(queue_kq(e1, "acme") == 0 && queue_kq(e1, "kv2") == 0 && queue_kq(e1, "kv3") == 0,
       "each of acme, kv2, kv3 has a queue kq routing with counter");
    is_str(decide_at(e1, "acme", "kq", 1), "x", "acme's store counts its first call");
    is_str(decide_at(e2, "acme", "kq", 2), "xx", "and its second, in the other engine");
    is_str(decide_at(e2, "kv2", "kq", 1), "x", "kv2's its first");
    is_str(decide_at(e1, "kv3", "kq", 1), "x", "kv3's upload its first");
    ok(sb_queue_delete(e1, "acme", "kq", res) == 0 && sb_queue_delete(e1, "kv2", "kq", res) == 0,
       "acme's and kv2's queues go: nothing but kv3's upload uses a counter");

    char path[600], away[600], broken[600];
    snprintf(path, sizeof path, "%s/counter.lua", pdir);
    snprintf(away, sizeof away, "%s/no-such-release/counter.lua", pdir);
    snprintf(broken, sizeof broken, "%s/broken.lua", pdir);
    unlink(path);
    write_file("broken.lua", "return {\n");
    int rc = sb_reload(e1, res);
    ok(rc == SB_EPOLICY && strstr(sb_result_message(res), "broken.lua"),
       "counter.lua removed beside a file that does not load: the reload fails (%s)",
       sb_result_message(res));
    unlink(broken);
    ok(symlink(away, path) == 0, "counter.lua a link to a file not there yet");
    rc = sb_reload(e1, res);
    ok(rc == SB_EPOLICY &&
           strstr(sb_result_message(res), "counter.lua: a symbolic link to nothing"),
       "the reload fails, naming it (%s)", sb_result_message(res));
    unlink(path);
    write_file("counter.lua", COUNTER);
    ok(sb_reload(e1, res) == 0 && queue_kq(e1, "acme") == 0,
       "counter.lua back as it was, and acme's queue on it again (%s)", sb_result_message(res));
    is_str(decide_at(e2, "acme", "kq", 3), "xxx",
           "the failed reloads took nothing: acme counts on");
    ok(sb_queue_delete(e1, "acme", "kq", res) == 0, "acme's queue goes again");

    unlink(path);
    ok(sb_reload(e1, res) == 0, "counter.lua removed: the reload takes counter (%s)",
       sb_result_message(res));
    long long n = dropped_of("counter");
    ok(n == 2, "and says it dropped the stores of 2 accounts, acme's and kv2's (%lld) %s", n,
       sb_result_json(res, NULL));
    is_str(decide_at(e2, "kv3", "kq", 2), "xx", "kv3's upload keeps its own store");

    write_file("counter.lua", COUNTER);
    ok(sb_reload(e1, res) == 0 && queue_kq(e1, "acme") == 0 && queue_kq(e1, "kv2") == 0,
       "a counter.lua again, acme's and kv2's queues on it (%s)", sb_result_message(res));
    is_str(decide_at(e2, "acme", "kq", 4), "x",
           "acme's counter starts afresh: the removed one's store went with it");
    is_str(decide_at(e1, "kv2", "kq", 2), "x", "kv2's too");

    /* An engine opening loads the directory as a reload does; nobody is
    ** answered, so its log says what went. */
    ok(sb_queue_delete(e1, "acme", "kq", res) == 0 && sb_queue_delete(e1, "kv2", "kq", res) == 0,
       "acme's and kv2's queues go");
    unlink(path);
    log_clear();
    sb_engine *e3 = open_engine(0, NULL);
    ok(e3 && strstr(logbuf, "shared policy 'counter' removed") &&
           strstr(logbuf, "its store (ctx.set) dropped in 2 accounts"),
       "an engine opening without counter.lua removes counter, logging whose stores went (%s)",
       logbuf);
    sb_close(e3);
    write_file("counter.lua", COUNTER);
    ok(sb_reload(e1, res) == 0 && queue_kq(e1, "acme") == 0, "counter.lua back, acme on it (%s)",
       sb_result_message(res));
    is_str(decide_at(e2, "acme", "kq", 5), "x", "acme's count starts afresh again");

    /* kv3's upload deleted: the shared counter stands in and carries its
    ** store on (deleted with the upload only when none would). */
    ok(sb_queue_delete(e1, "kv3", "kq", res) == 0 &&
           sb_policy_delete(e1, "kv3", "counter", res) == 0 &&
           strstr(sb_result_json(res, NULL), "\"now\":\"shared\"") && queue_kq(e1, "kv3") == 0,
       "kv3's upload goes, the shared counter stands in (%s)", sb_result_message(res));
    is_str(decide_at(e2, "kv3", "kq", 3), "xxx", "with the store kv3's upload left");

    ok(sb_account_delete(e1, "kv2", res) == 0 && sb_account_delete(e1, "kv3", res) == 0 &&
           sb_queue_delete(e1, "acme", "kq", res) == 0,
       "kv2, kv3 and acme's queue go (%s)", sb_result_message(res));
    unlink(path);
    ok(sb_reload(e1, res) == 0 && dropped_of("counter") == 1,
       "and counter with acme's store, the accounts deleted having taken theirs (%s)",
       sb_result_json(res, NULL));
}

/* An entry of the policy directory that cannot be looked at might be a
** policy or a folder of them: the reload fails, naming it and why, and
** changes nothing (it is not taken as deleted). As root, permissions do not
** bite: a symbolic link to nothing and one to itself stand in for an entry
** that cannot be stat'ed; a subdirectory listable but not searchable is
** tried when not root. */
static void test_unstatable_entries(sb_engine *e1, sb_engine *e2)
{
    write_file("spare.lua", POLICY_A);
    ok(sb_reload(e1, res) == 0, "a shared policy nobody uses, spare (%s)", sb_result_message(res));
    char spare[600], away[600], cases[600];
    snprintf(spare, sizeof spare, "%s/spare.lua", pdir);
    snprintf(away, sizeof away, "%s/no-such-release/spare.lua", pdir);
    unlink(spare);
    ok(symlink(away, spare) == 0, "spare.lua becomes a link to a file not there yet");
    int rc = sb_reload(e1, res);
    ok(rc == SB_EPOLICY && strstr(sb_result_message(res), "spare.lua: a symbolic link to nothing"),
       "the reload fails, naming it (%s)", sb_result_message(res));
    ok(strcmp(state_of(e2, "spare"), "ok/0") == 0, "and spare is still there (%s)",
       state_of(e2, "spare"));
    unlink(spare);
    ok(symlink("spare.lua", spare) == 0, "a link to itself");
    rc = sb_reload(e1, res);
    ok(rc == SB_EPOLICY && strstr(sb_result_message(res), "spare.lua: Too many levels"),
       "the reload fails with the reason (%s)", sb_result_message(res));
    unlink(spare);
    write_file("spare.lua", POLICY_A);
    snprintf(cases, sizeof cases, "%s/spare.cases.json", pdir);
    ok(symlink(away, cases) == 0, "spare's cases file a link to nothing");
    rc = sb_reload(e1, res);
    ok(rc == SB_EPOLICY &&
           strstr(sb_result_message(res), "spare.cases.json: a symbolic link to nothing"),
       "the reload fails: cases that cannot be read are not cases that pass (%s)",
       sb_result_message(res));
    unlink(cases);
    if (geteuid() != 0) {
        char sub[600];
        snprintf(sub, sizeof sub, "%s/sub", pdir);
        mkdir(sub, 0700);
        write_file("sub/deep.lua", POLICY_A);
        ok(sb_reload(e1, res) == 0, "a shared sub/deep");
        chmod(sub, 0400);
        rc = sb_reload(e1, res);
        ok(rc == SB_EPOLICY && strstr(sb_result_message(res), "sub/deep.lua: Permission denied"),
           "sub/ listable but not searchable: the reload fails, naming the file (%s)",
           sb_result_message(res));
        ok(strcmp(state_of(e2, "sub/deep"), "ok/0") == 0, "and sub/deep is still there");
        chmod(sub, 0700);
        char deep[700];
        snprintf(deep, sizeof deep, "%s/deep.lua", sub);
        unlink(deep);
        rmdir(sub);
    } else {
        diag("as root, a subdirectory not searchable is searched all the same: not tried");
    }
    unlink(spare);
    ok(sb_reload(e1, res) == 0 && strcmp(state_of(e2, "spare"), "none") == 0,
       "with the file gone for real, the reload removes it (%s)", sb_result_message(res));
}

/* A FIFO named like a policy or its cases (left by a tool, or made by
** mistake) blocked the reload in open() until something wrote into it, and
** with it the daemon's event loop, which reloads on SIGHUP: now it fails the
** reload, naming it, and changes nothing. (The alarm ends the test, failed,
** if the reload blocks.) */
static void test_fifo(sb_engine *e1, sb_engine *e2)
{
    char spare[600], cases[600];
    snprintf(spare, sizeof spare, "%s/spare.lua", pdir);
    snprintf(cases, sizeof cases, "%s/spare.cases.json", pdir);
    write_file("spare.lua", POLICY_A);
    ok(sb_reload(e1, res) == 0, "a shared policy nobody uses, spare (%s)", sb_result_message(res));
    alarm(60);
    unlink(spare);
    ok(mkfifo(spare, 0600) == 0, "spare.lua becomes a FIFO");
    int rc = sb_reload(e1, res);
    ok(rc == SB_EPOLICY && strstr(sb_result_message(res), "spare.lua: not a regular file"),
       "the reload fails at once, naming it (%s)", sb_result_message(res));
    ok(strcmp(state_of(e2, "spare"), "ok/0") == 0, "and spare is still there (%s)",
       state_of(e2, "spare"));
    unlink(spare);
    write_file("spare.lua", POLICY_A);
    ok(mkfifo(cases, 0600) == 0, "spare's cases file a FIFO");
    rc = sb_reload(e1, res);
    ok(rc == SB_EPOLICY && strstr(sb_result_message(res), "spare.cases.json: cannot read the "
                                                          "policy's cases: not a regular file"),
       "the reload fails at once, naming it (%s)", sb_result_message(res));
    alarm(0);
    unlink(cases);
    unlink(spare);
    ok(sb_reload(e1, res) == 0 && strcmp(state_of(e2, "spare"), "none") == 0,
       "with both gone, the reload removes spare (%s)", sb_result_message(res));
}

/* Policies of the directory run for every account and decide its calls and
** which records are deleted: a folder or file of it that any user on the
** machine may write into is refused, naming it and its mode, and changes
** nothing (a 0777 directory and 0666 files were loaded as they came). Group
** write is taken. */
static void test_others_may_write(sb_engine *e1, sb_engine *e2)
{
    char sub[600], file[700];
    write_file("spare.lua", POLICY_A);
    ok(sb_reload(e1, res) == 0, "a shared policy nobody uses, spare (%s)", sb_result_message(res));
    snprintf(file, sizeof file, "%s/spare.lua", pdir);
    chmod(file, 0666);
    int rc = sb_reload(e1, res);
    ok(rc == SB_EPOLICY && strstr(sb_result_message(res), "spare.lua has mode 0666: any user") &&
           strstr(sb_result_message(res), "chmod o-w"),
       "a policy file any user may write: the reload fails, naming it (%s)",
       sb_result_message(res));
    write_file("spare.lua", POLICY_B);
    ok(sb_reload(e1, res) == SB_EPOLICY, "nor once another user has written into it");
    ok(sb_policy_get(e2, "acme", "spare", res) == 0 &&
           strstr(sb_result_json(res, NULL), "reject = 'A'") != NULL,
       "what was written is not taken: spare is still A");
    chmod(file, 0664);
    ok(sb_reload(e1, res) == 0, "group write is taken (%s)", sb_result_message(res));
    snprintf(sub, sizeof sub, "%s/team", pdir);
    mkdir(sub, 0700);
    write_file("team/vip.lua", POLICY_A);
    chmod(sub, 0777);
    rc = sb_reload(e1, res);
    ok(rc == SB_EPOLICY && strstr(sb_result_message(res), "team has mode 0777: any user") &&
           strstr(sb_result_message(res), "put policies in it"),
       "a folder any user may write into: refused, naming it (%s)", sb_result_message(res));
    ok(strcmp(state_of(e2, "team/vip"), "none") == 0, "and team/vip is not loaded");
    chmod(sub, 01777);
    ok(sb_reload(e1, res) == SB_EPOLICY && strstr(sb_result_message(res), "mode 1777"),
       "sticky is no better: any user may still add a policy (%s)", sb_result_message(res));
    chmod(sub, 0755);
    chmod(pdir, 0777);
    ok(sb_reload(e1, res) == SB_EPOLICY && strstr(sb_result_message(res), "has mode 0777") &&
           !strstr(sb_result_message(res), "team"),
       "policy_dir itself too (%s)", sb_result_message(res));
    chmod(pdir, 0700);
    ok(sb_reload(e1, res) == 0 && strcmp(state_of(e2, "team/vip"), "ok/0") == 0,
       "with the modes fixed, the reload takes them (%s)", sb_result_message(res));
    snprintf(file, sizeof file, "%s/vip.lua", sub);
    unlink(file);
    rmdir(sub);
    snprintf(file, sizeof file, "%s/spare.lua", pdir);
    unlink(file);
    ok(sb_reload(e1, res) == 0, "spare and team/vip go (%s)", sb_result_message(res));
}

/* A source that is not UTF-8 is refused the same way from the policy
** directory and by upload, naming its line (sources come back inside JSON):
** a reload that met one used to take it, an upload of the same refused it. */
static void test_not_utf8(sb_engine *e1, sb_engine *e2)
{
    static const char latin1[] = "local P = {}\n-- caf\xe9\n"
                                 "function P.route(c, a, ctx) return { wait = 1 } end\nreturn P\n";
    write_file("latin.lua", latin1);
    int rc = sb_reload(e1, res);
    ok(rc == SB_EPOLICY && strstr(sb_result_message(res), "latin.lua:2: not valid UTF-8"),
       "a reload meeting a file that is not UTF-8 fails, naming its line (%s)",
       sb_result_message(res));
    ok(strcmp(state_of(e2, "latin"), "none") == 0, "and takes nothing");
    char path[600];
    snprintf(path, sizeof path, "%s/latin.lua", pdir);
    unlink(path);
    rc = sb_policy_put(e1, "acme", "latin", latin1, strlen(latin1), NULL, res);
    ok(rc == SB_EINVAL && strstr(sb_result_message(res), "latin.lua:2: not valid UTF-8"),
       "an upload of it is refused with the same words (%s)", sb_result_message(res));
    ok(sb_reload(e1, res) == 0, "the file gone, reloads work again (%s)", sb_result_message(res));
}

/* An account's policies share one policy state and its memory budget: an
** upload that loads alone but not beside the account's other policies is
** refused, naming the budget; before, it was stored and then failed at its
** first call, or made the one loaded after it fail. */
static void test_upload_fits_beside(sb_engine *e1)
{
    static const char big[] =
        "local blob = string.rep('x', 3 * 1024 * 1024)\n"
        "local P = {}\n"
        "function P.route(c, a, ctx) return { reject = tostring(#blob) } end\n"
        "return P\n";
    int rc = sb_policy_put(e1, "acme", "big1", big, strlen(big), NULL, res);
    ok(rc == 0, "a policy holding 3 MiB loads alone and is stored (%s)", sb_result_message(res));
    rc = sb_policy_put(e1, "acme", "big2", big, strlen(big), NULL, res);
    ok(rc == SB_EPOLICY && strstr(sb_result_message(res), "big2.lua") &&
           strstr(sb_result_message(res), "beside"),
       "a second one, which cannot load beside it in the account's 8 MiB, is refused (%s)",
       sb_result_message(res));
    ok(sb_policy_get(e1, "acme", "big2", res) == SB_ENOTFOUND, "and not stored");
    rc = sb_policy_put(e1, "acme", "big1", big, strlen(big), NULL, res);
    ok(rc == 0, "big1 uploaded again (its own old version does not count) (%s)",
       sb_result_message(res));
    ok(sb_policy_delete(e1, "acme", "big1", res) == 0, "big1 deleted (%s)", sb_result_message(res));
    rc = sb_policy_put(e1, "acme", "big2", big, strlen(big), NULL, res);
    ok(rc == 0, "then big2 fits (%s)", sb_result_message(res));
    sb_policy_delete(e1, "acme", "big2", res);
}

/* What the scan passes over that looks meant to load is said in the
** engine's log (its callback, not stderr): a folder deeper than the four
** levels of subdirectories policies are read from, a .lua whose name no
** queue could give. Neither fails the reload. */
static void test_skipped_entries(sb_engine *e1)
{
    char path[700];
    snprintf(path, sizeof path, "%s/a", pdir);
    mkdir(path, 0700);
    strcat(path, "/b");
    mkdir(path, 0700);
    strcat(path, "/c");
    mkdir(path, 0700);
    strcat(path, "/d");
    mkdir(path, 0700);
    strcat(path, "/e");
    mkdir(path, 0700);
    write_file("a/b/c/d/four.lua", POLICY_A);
    write_file("a/b/c/d/e/five.lua", POLICY_A);
    write_file("bad name.lua", POLICY_A);
    log_clear();
    ok(sb_reload(e1, res) == 0, "a reload with a folder too deep and a bad name succeeds (%s)",
       sb_result_message(res));
    ok(strcmp(state_of(e1, "a/b/c/d/four"), "ok/0") == 0, "four levels down is read");
    ok(strcmp(state_of(e1, "a/b/c/d/e/five"), "none") == 0, "five levels down is not");
    ok(strstr(logbuf, "policy_dir: skipping ") && strstr(logbuf, "/a/b/c/d/e/ and all below it: "
                                                                 "deeper than the 4 levels"),
       "the log says which folder is passed over and why (%s)", logbuf);
    ok(strstr(logbuf, "/bad name.lua: not a valid policy name (") != NULL,
       "and which file has a name no queue could give");
    snprintf(path, sizeof path, "%s/bad name.lua", pdir);
    unlink(path);
    snprintf(path, sizeof path, "%s/a/b/c/d/e/five.lua", pdir);
    unlink(path);
    snprintf(path, sizeof path, "%s/a/b/c/d/four.lua", pdir);
    unlink(path);
    static const char *dirs[] = {"a/b/c/d/e", "a/b/c/d", "a/b/c", "a/b", "a"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", pdir, dirs[i]);
        rmdir(path);
    }
    ok(sb_reload(e1, res) == 0, "and they go");
}

/* A policy that loads but that `policy check` faults: the reload says so
** in its answer and as a warning in the log, naming file and line. */
static void test_reload_lint(sb_engine *e1)
{
    write_file("lintme.lua", "local P = {}\n"
                             "function P.route(call, agents, ctx)\n"
                             "  if call.attempts > 5 then retrun {} end\n"
                             "  return { wait = 5 }\n"
                             "end\nreturn P\n");
    log_clear();
    char want[512];
    snprintf(want, sizeof want, "%s/lintme.lua:3: accessing undefined variable 'retrun'", pdir);
    ok(sb_reload(e1, res) == 0, "a policy with a typo in a branch loads (%s)",
       sb_result_message(res));
    const char *j = sb_result_json(res, NULL);
    ok(strstr(j, "\"warnings\":[") && strstr(j, want), "the reload's answer has the warning (%s)",
       j);
    ok(strstr(logbuf, "policy warning: ") && strstr(logbuf, want), "and so has the log (%s)",
       logbuf);
    log_clear();
    ok(sb_reload(e1, res) == 0 && !strstr(sb_result_json(res, NULL), "warnings") &&
           !strstr(logbuf, "policy warning"),
       "a reload that stores nothing new lints nothing (each sb_open would pay for it)");
    char path[512];
    snprintf(path, sizeof path, "%s/lintme.lua", pdir);
    unlink(path);
    ok(sb_reload(e1, res) == 0 && !strstr(sb_result_json(res, NULL), "warnings"),
       "mended (here: removed), the answer has none");
    /* A hook setting a global fails every time it runs: the reload refuses
    ** it as it refuses a file that does not load, and nothing changes. */
    write_file("setsglobal.lua", "local P = {}\n"
                                 "function P.route(call, agents, ctx)\n"
                                 "  last = call.id\n"
                                 "  return { wait = 5 }\n"
                                 "end\nreturn P\n");
    snprintf(want, sizeof want, "%s/setsglobal.lua:3: assignment to global 'last'", pdir);
    ok(sb_reload(e1, res) == SB_EPOLICY && strstr(sb_result_message(res), want),
       "a hook setting a global fails the reload (%s)", sb_result_message(res));
    snprintf(path, sizeof path, "%s/setsglobal.lua", pdir);
    unlink(path);
    ok(sb_reload(e1, res) == 0, "removed, the reload goes through (%s)", sb_result_message(res));
}

/* A new signing key pair, as hex: 0, or sb_policy_keygen's code. */
static int keygen(char pk[80], char sk[160])
{
    int rc = sb_policy_keygen(res);
    json_t *keys = rc ? NULL : json_loads(sb_result_json(res, NULL), 0, NULL);
    snprintf(pk, 80, "%s", keys ? json_string_value(json_object_get(keys, "public_key")) : "");
    snprintf(sk, 160, "%s", keys ? json_string_value(json_object_get(keys, "secret_key")) : "");
    json_decref(keys);
    return rc;
}

/* Routes with its letter and keeps every record. */
#define POLICY(letter)                                                                             \
    "local P = {}\n"                                                                               \
    "function P.route(call, agents, ctx) return { reject = '" letter "' } end\n"                   \
    "function P.retain(record, ctx) return { keep = true } end\n"                                  \
    "return P\n"

/* The source signed with secret key sk (static: one at a time). */
static const char *sign(const char *src, const char *sk)
{
    static char out[4096];
    out[0] = 0;
    if (sb_policy_sign(src, strlen(src), sk, res)) return out;
    json_t *d = json_loads(sb_result_json(res, NULL), 0, NULL);
    snprintf(out, sizeof out, "%s", json_string_value(json_object_get(d, "source")));
    json_decref(d);
    return out;
}

/* A queue document field as a string ("" when absent, "none" when there
** is no such queue). */
static const char *queue_field(sb_engine *e, const char *queue, const char *field)
{
    static char v[64];
    if (sb_queue_get(e, "acme", queue, res)) return "none";
    json_t *d = json_loads(sb_result_json(res, NULL), 0, NULL);
    json_t *f = json_object_get(d, field);
    if (json_is_string(f))
        snprintf(v, sizeof v, "%s", json_string_value(f));
    else if (json_is_integer(f))
        snprintf(v, sizeof v, "%lld", (long long)json_integer_value(f));
    else
        v[0] = 0;
    json_decref(d);
    return v;
}

static int put_queue(sb_engine *e, const char *json)
{
    return sb_queue_put(e, "acme", json, strlen(json), res);
}

static int put_account(sb_engine *e, const char *json)
{
    return sb_account_put(e, json, strlen(json), res);
}

/* The one line of logbuf holding `what` (static), "" when none does. */
static const char *log_line(const char *what)
{
    static char line[2048];
    line[0] = 0;
    const char *p = strstr(logbuf, what);
    if (!p) return line;
    const char *s = p;
    while (s > logbuf && s[-1] != '\n')
        s--;
    size_t n = strcspn(s, "\n");
    snprintf(line, sizeof line, "%.*s", (int)n, s);
    return line;
}

/* What names a policy that does not run. With require_signed_policies
** switched on at a restart, a policy stored before (an account's upload, or
** policy_dir's as an earlier load stored it) is kept but does not run: its
** calls get the queue's fallback. A queue put, or an account's retention
** setting, naming one is refused as naming a policy that does not exist is
** (SB_EINVAL, the field named, nothing changed), saying which policy and
** why; deleting an upload when the shared one that would stand in does not
** run is refused while something uses it; and the queues and retention
** settings named before are logged at sb_open and at each reload, naming
** the policy and its users. On data and policy directories of its own. */
static void test_signed_use(void)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "%s-signed", dir);
    snprintf(dir, sizeof dir, "%s", cmd);
    snprintf(pdir, sizeof pdir, "%s-policies", dir);
    mkdir(pdir, 0700);
    char pk[80], sk[160], other_pk[80], other_sk[160];
    ok(keygen(pk, sk) == 0 && keygen(other_pk, other_sk) == 0, "two signing key pairs");

    /* Before signatures are required: a shared policy unsigned (router), one
    ** signed (good), an upload unsigned (mine) and one signed with another
    ** key (stranger), each used. */
    write_file("router.lua", POLICY("R"));
    write_file("good.lua", sign(POLICY("G"), sk));
    write_file("longest-idle.lua", POLICY("L")); /* the default, unsigned */
    sb_engine *e = open_engine(0, NULL);
    ok(e != NULL, "an engine without signatures required");
    if (!e) return;
    const char *mine = POLICY("M");
    char stranger[4096];
    snprintf(stranger, sizeof stranger, "%s", sign(POLICY("S"), other_sk));
    ok(put_account(e, "{\"id\":\"acme\"}") == 0 &&
           sb_policy_put(e, "acme", "mine", mine, strlen(mine), NULL, res) == 0 &&
           sb_policy_put(e, "acme", "stranger", stranger, strlen(stranger), NULL, res) == 0,
       "acme uploads mine, unsigned, and stranger, signed with another key (%s)",
       sb_result_message(res));
    ok(put_queue(e, "{\"id\":\"q1\",\"policy\":\"mine\",\"max_wait\":60}") == 0 &&
           put_queue(e, "{\"id\":\"q2\",\"policy\":\"router\"}") == 0 &&
           put_queue(e, "{\"id\":\"q5\",\"policy\":\"stranger\"}") == 0 &&
           put_account(e, "{\"id\":\"acme\",\"retention\":\"mine\"}") == 0,
       "queues q1 on mine, q2 on router, q5 on stranger, and the retention setting on mine "
       "(%s)",
       sb_result_message(res));
    is_str(decide_in(e, "q1", 1), "M", "q1 decides with mine while signatures are not required");
    sb_close(e);

    /* Switched on at a restart: the unsigned file fails the directory's
    ** load (the stored router stays, and does not run); the users of what
    ** does not run are logged, one line a policy. */
    log_clear();
    e = open_engine(1, pk);
    ok(e != NULL, "signatures required from this start");
    if (!e) return;
    const char *l = log_line("policy 'mine' of account 'acme'");
    ok(strstr(l, "does not run") && strstr(l, "the account's upload") && strstr(l, "is unsigned") &&
           strstr(l, "queue 'q1'") && strstr(l, "the retention setting") && !strstr(l, "q2"),
       "the open logs mine's users: q1 and the retention setting (%s)", l);
    l = log_line("policy 'router' of account 'acme'");
    ok(strstr(l, "does not run") && strstr(l, "the shared one") && strstr(l, "queue 'q2'") &&
           strstr(l, "router.lua"),
       "and router's, q2, saying it is the shared one (%s)", l);
    l = log_line("policy 'stranger' of account 'acme'");
    ok(strstr(l, "does not verify with policy_public_key") && strstr(l, "queue 'q5'"),
       "and stranger's, q5, whose signature is another key's (%s)", l);
    ok(!strstr(logbuf, "policy 'good'"), "not good, which runs");
    is_str(decide_in(e, "q1", 2), "", "q1's calls get the fallback");

    /* A queue naming a policy that does not run is refused, as one naming
    ** a policy that does not exist is: SB_EINVAL, field policy, nothing
    ** changed. */
    int rc = put_queue(e, "{\"id\":\"q3\",\"policy\":\"mine\"}");
    const char *m = sb_result_message(res);
    ok(rc == SB_EINVAL && !strcmp(sb_result_field(res), "policy") &&
           strstr(m, "policy 'mine' does not run: require_signed_policies is on, and this "
                     "account's upload of it (version ") &&
           strstr(m, ") is unsigned; upload a signed version, or name another policy"),
       "a new queue naming mine: SB_EINVAL, field policy, saying why (%s)", m);
    is_str(queue_field(e, "q3", "id"), "none", "and no queue q3");
    rc = put_queue(e, "{\"id\":\"q3\",\"policy\":\"router\"}");
    m = sb_result_message(res);
    ok(rc == SB_EINVAL && !strcmp(sb_result_field(res), "policy") &&
           strstr(m, "policy 'router' does not run: require_signed_policies is on, and the "
                     "shared one (version ") &&
           strstr(m, "is unsigned; sign policy_dir's router.lua and reload, upload a signed "
                     "version, or name another policy"),
       "naming the shared router: refused, saying it is policy_dir's (%s)", m);
    rc = put_queue(e, "{\"id\":\"q3\",\"policy\":\"stranger\"}");
    m = sb_result_message(res);
    ok(rc == SB_EINVAL && strstr(m, "policy 'stranger' does not run") &&
           strstr(m, "its signature does not verify with policy_public_key"),
       "naming stranger: refused, its signature another key's (%s)", m);
    is_str(queue_field(e, "q3", "id"), "none", "still no queue q3");
    /* Naming none is naming the default, longest-idle: stored unsigned, it
    ** does not run either (its queue took every call's fallback). */
    rc = put_queue(e, "{\"id\":\"q3\"}");
    m = sb_result_message(res);
    ok(rc == SB_EINVAL && !strcmp(sb_result_field(res), "policy") &&
           strstr(m, "policy 'longest-idle' does not run") &&
           strstr(m, "(a queue that names no policy routes with it)"),
       "a queue naming no policy, the stored default unsigned: refused, saying so (%s)", m);
    is_str(queue_field(e, "q3", "id"), "none", "still no queue q3");
    char lip[600];
    snprintf(lip, sizeof lip, "%s/longest-idle.lua", pdir);
    unlink(lip); /* the reloads below meet router.lua alone */
    /* A queue that names it already may still be put (a fallback of its
    ** own while the policy does not run); moved to another that does not
    ** run, it is refused. */
    ok(put_queue(e, "{\"id\":\"q1\",\"policy\":\"mine\",\"max_wait\":120}") == 0,
       "q1 put again naming mine, which it names already: accepted (%s)", sb_result_message(res));
    is_str(queue_field(e, "q1", "max_wait"), "120", "and q1 has the new max_wait");
    rc = put_queue(e, "{\"id\":\"q1\",\"policy\":\"stranger\",\"max_wait\":90}");
    ok(rc == SB_EINVAL && strstr(sb_result_message(res), "policy 'stranger' does not run"),
       "q1 put naming stranger instead: refused (%s)", sb_result_message(res));
    is_str(queue_field(e, "q1", "max_wait"), "120", "and q1 is as it was");
    ok(put_queue(e, "{\"id\":\"q1\",\"policy\":\"good\",\"max_wait\":120}") == 0,
       "q1 moved to good, which is signed: accepted (%s)", sb_result_message(res));
    is_str(decide_in(e, "q1", 3), "G", "and decides with it");
    ok(put_queue(e, "{\"id\":\"q3\",\"policy\":\"nosuch\"}") == SB_EINVAL &&
           !strcmp(sb_result_field(res), "policy") &&
           strstr(sb_result_message(res), "no policy 'nosuch'"),
       "(as a policy that does not exist is refused: %s)", sb_result_message(res));

    /* The retention setting likewise. */
    ok(put_account(e, "{\"id\":\"acme\",\"retention\":\"mine\",\"audit_days\":30}") == 0,
       "the account put again with the retention setting it has (mine): accepted (%s)",
       sb_result_message(res));
    rc = put_account(e, "{\"id\":\"acme\",\"retention\":\"stranger\",\"audit_days\":31}");
    m = sb_result_message(res);
    ok(rc == SB_EINVAL && !strcmp(sb_result_field(res), "retention") &&
           strstr(m, "policy 'stranger' does not run"),
       "the account's retention setting moved to stranger: SB_EINVAL, field retention (%s)", m);
    ok(sb_account_get(e, "acme", res) == 0 &&
           strstr(sb_result_json(res, NULL), "\"audit_days\":30") &&
           !strstr(sb_result_json(res, NULL), "\"audit_days\":31"),
       "and the account is as it was");
    ok(put_account(e, "{\"id\":\"acme\",\"retention\":\"good\"}") == 0,
       "retention on good: accepted (%s)", sb_result_message(res));

    /* A signed upload of mine runs, and may be named again. */
    ok(sb_policy_put(e, "acme", "mine", sign(mine, sk), strlen(sign(mine, sk)), NULL, res) == 0,
       "mine uploaded again, signed (%s)", sb_result_message(res));
    ok(put_queue(e, "{\"id\":\"q3\",\"policy\":\"mine\"}") == 0,
       "a queue naming mine now: accepted (%s)", sb_result_message(res));
    is_str(decide_in(e, "q3", 1), "M", "and it decides with mine");

    /* An upload shadowing the unsigned shared router: deleting it would
    ** leave q2 and q4 with a policy that does not run. */
    const char *own_router = sign(POLICY("O"), sk);
    ok(sb_policy_put(e, "acme", "router", own_router, strlen(own_router), NULL, res) == 0 &&
           put_queue(e, "{\"id\":\"q4\",\"policy\":\"router\"}") == 0,
       "acme uploads router, signed, and q4 names it (%s)", sb_result_message(res));
    is_str(decide_in(e, "q2", 1), "O", "q2 decides with the upload");
    rc = sb_policy_delete(e, "acme", "router", res);
    m = sb_result_message(res);
    ok(rc == SB_ESTATE && !strcmp(sb_result_field(res), "name") && strstr(m, "uses policy") &&
           strstr(m, "'router'") &&
           strstr(m, "the shared one that would stand in for this upload does not run"),
       "deleting it is refused: the shared one would stand in and does not run (%s)", m);
    is_str(decide_in(e, "q2", 2), "O", "nothing changed");

    /* A reload logs again what does not run (the unsigned router.lua fails
    ** it; the stored one, shadowed for acme, is used by nobody now). */
    ok(put_queue(e, "{\"id\":\"q1\",\"policy\":\"stranger\"}") == SB_EINVAL,
       "(q1 cannot be moved back to stranger)");
    log_clear();
    ok(sb_reload(e, res) == SB_EPOLICY, "a reload meets the unsigned router.lua (%s)",
       sb_result_message(res));
    l = log_line("policy 'stranger' of account 'acme'");
    ok(strstr(l, "queue 'q5'") && strstr(l, "does not run"), "and logs q5, still on stranger (%s)",
       l);
    ok(!strstr(logbuf, "policy 'router' of account"), "not router, which acme's upload shadows");
    write_file("router.lua", sign(POLICY("R"), sk));
    log_clear();
    ok(sb_reload(e, res) == 0, "router.lua signed: the reload succeeds (%s)",
       sb_result_message(res));
    ok(strstr(log_line("policy 'stranger' of account 'acme'"), "queue 'q5'") != NULL,
       "and still logs q5 (%s)", log_line("stranger"));
    ok(sb_policy_delete(e, "acme", "router", res) == 0,
       "now acme's router can go: the shared one runs (%s)", sb_result_message(res));
    ok(put_queue(e, "{\"id\":\"q5\",\"policy\":\"good\"}") == 0, "q5 moved to good");
    log_clear();
    ok(sb_reload(e, res) == 0 && !strstr(logbuf, "does not run"),
       "with every user on a policy that runs, a reload logs none (%s)", logbuf);
    sb_close(e);

    /* Without the requirement nothing of this is logged or refused. */
    log_clear();
    e = open_engine(0, NULL);
    ok(e && put_queue(e, "{\"id\":\"q6\",\"policy\":\"stranger\"}") == 0 &&
           !strstr(logbuf, "does not run"),
       "signatures not required: stranger may be named, and nothing is logged");
    sb_close(e);

    snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir, pdir);
    if (system(cmd)) diag("cleanup failed");
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sb-test-reload-%d", (int)getpid());
    snprintf(pdir, sizeof pdir, "%s-policies", dir);
    mkdir(pdir, 0700);
    res = sb_result_new();
    write_file("router.lua", POLICY_A);

    sb_engine *e1 = open_engine(0, NULL), *e2 = open_engine(0, NULL);
    ok(e1 && e2, "two engines open the same data directory");
    if (!e1 || !e2) return done_testing();
    sb_account_put(e1, "{\"id\":\"acme\"}", 13, res);
    const char *q = "{\"id\":\"q\",\"policy\":\"router\"}";
    ok(sb_queue_put(e1, "acme", q, strlen(q), res) == 0, "queue using the shared policy 'router'");
    is_str(decide(e1, 1), "A", "engine 1 decides with version A");
    is_str(decide(e2, 2), "A", "engine 2 too");
    char va[32];
    snprintf(va, sizeof va, "%s", version_of(e1, 1));
    ok(strlen(va) == 16, "the record names the version that decided (%s)", va);

    /* An account's upload stands in for the shared policy of that name, in
    ** every engine, until it is deleted. */
    static const char *POLICY_C =
        "local P = {}\n"
        "function P.route(call, agents, ctx) return { reject = 'C' } end\n"
        "return P\n";
    ok(sb_policy_put(e1, "acme", "router", POLICY_C, strlen(POLICY_C), NULL, res) == 0,
       "acme uploads its own 'router'");
    is_str(decide(e2, 100), "C", "engine 2 decides with acme's upload");
    json_t *g = NULL;
    if (sb_policy_get(e2, "acme", "router", res) == 0)
        g = json_loads(sb_result_json(res, NULL), 0, NULL);
    ok(g && !strcmp(json_string_value(json_object_get(g, "source")), "account") &&
           json_is_true(json_object_get(g, "shadows_shared")) &&
           !strcmp(json_string_value(json_object_get(g, "code")), POLICY_C),
       "policy_get: the upload, with its code, standing in for the shared one");
    json_decref(g);
    ok(sb_policy_list(e2, "acme", res) == 0 &&
           strstr(sb_result_json(res, NULL), "\"shadows_shared\":true") != NULL,
       "policy_list marks the upload that shadows a shared one");
    int prc = sb_policy_delete(e1, "acme", "router", res);
    const char *pj = sb_result_json(res, NULL);
    ok(prc == 0 && strstr(pj, "\"now\":\"shared\"") != NULL,
       "policy_delete: the upload goes; the shared one decides (%s)", pj);
    is_str(decide(e2, 101), "A", "engine 2 is back on the shared version");
    g = NULL;
    if (sb_policy_get(e1, "acme", "router", res) == 0)
        g = json_loads(sb_result_json(res, NULL), 0, NULL);
    ok(g && !strcmp(json_string_value(json_object_get(g, "source")), "shared") &&
           json_is_false(json_object_get(g, "shadows_shared")),
       "policy_get: the shared one now");
    json_decref(g);
    ok(sb_policy_delete(e1, "acme", "router", res) == SB_ENOTFOUND,
       "the shared policy cannot be deleted through the account");
    ok(sb_policy_get(e1, "acme", "nope", res) == SB_ENOTFOUND &&
           strstr(sb_result_message(res), "no such policy 'nope'"),
       "policy_get of no policy (%s)", sb_result_message(res));
    /* A name no policy can have is said as such, quoting it, not as a policy
    ** that is not there ("no such policy '?'"). */
    static const char *bad[] = {"../router", "a//b", ".hidden", "a:b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "'%s' is not a policy name: names are 1..128", bad[i]);
        int grc = sb_policy_get(e1, "acme", bad[i], res);
        ok(grc == SB_EINVAL && sb_result_field(res) && !strcmp(sb_result_field(res), "name") &&
               strstr(sb_result_message(res), want),
           "policy_get of %s: SB_EINVAL, saying why (%s)", bad[i], sb_result_message(res));
        int drc = sb_policy_delete(e1, "acme", bad[i], res);
        ok(drc == SB_EINVAL && strstr(sb_result_message(res), want), "policy_delete of %s too (%s)",
           bad[i], sb_result_message(res));
    }
    char longname[300];
    memset(longname, 'x', 200);
    longname[200] = 0;
    ok(sb_policy_get(e1, "acme", longname, res) == SB_EINVAL &&
           strstr(sb_result_message(res), "xxx...' is not a policy name"),
       "a name too long is quoted in part (%s)", sb_result_message(res));
    ok(sb_policy_put(e1, "acme", "own", POLICY_C, strlen(POLICY_C), NULL, res) == 0 &&
           sb_queue_put(e1, "acme", "{\"id\":\"oq\",\"policy\":\"own\"}", 26, res) == 0,
       "a queue uses an upload no shared policy backs");
    int drc = sb_policy_delete(e1, "acme", "own", res);
    ok(drc == SB_ESTATE && strstr(sb_result_message(res), "oq"),
       "which cannot be deleted while the queue uses it (%s)", sb_result_message(res));
    ok(sb_queue_delete(e1, "acme", "oq", res) == 0 && sb_policy_delete(e1, "acme", "own", res) == 0,
       "after the queue goes, it can");

    /* A broken file makes the whole reload fail and changes nothing. */
    write_file("router.lua", POLICY_B);
    write_file("broken.lua",
               "local P = {}\nfunction P.route(call, agents, ctx)\n  return {\nend\n");
    ok(sb_reload(e1, res) == SB_EPOLICY, "reload with a broken file fails");
    ok(strstr(sb_result_message(res), "broken.lua") != NULL, "and names the file (%s)",
       sb_result_message(res));
    is_str(decide(e1, 3), "A", "nothing changed: still A");
    is_str(decide(e2, 4), "A", "in both engines");
    /* A policy whose file is there, beside the broken one, is not in use:
    ** a queue naming it is refused for that reason, not for a missing file
    ** (the message said "policy_dir has no newpol.lua"), and without saying
    ** that none of the directory's policies is in use: router, as the load
    ** before stored it, still decides (the message said "none of its files
    ** is in use"). */
    write_file("newpol.lua", POLICY_A);
    ok(sb_reload(e1, res) == SB_EPOLICY, "reload with newpol.lua beside the broken file fails");
    int qrc = sb_queue_put(e1, "acme", "{\"id\":\"nq\",\"policy\":\"newpol\"}", 29, res);
    ok(qrc == SB_EINVAL && strstr(sb_result_message(res), "policy_dir's last load failed") &&
           strstr(sb_result_message(res), "broken.lua") &&
           strstr(sb_result_message(res), "an earlier load stored, if any, still decide") &&
           !strstr(sb_result_message(res), "none of its files is in use") &&
           !strstr(sb_result_message(res), "has no"),
       "a queue naming newpol: refused, naming the broken file, and saying that what an "
       "earlier load stored still decides (%s)",
       sb_result_message(res));
    is_str(decide(e1, 501), "A", "as it does");
    {
        char np[512];
        snprintf(np, sizeof np, "%s/newpol.lua", pdir);
        unlink(np);
    }

    /* A policy whose own cases fail is refused too. */
    char path[512];
    snprintf(path, sizeof path, "%s/broken.lua", pdir);
    unlink(path);
    write_file(
        "router.cases.json",
        "[{\"name\":\"rejects with B\",\"expect\":{\"action\":\"reject\",\"reason\":\"A\"}}]");
    ok(sb_reload(e1, res) == SB_EPOLICY, "reload where a policy fails its own cases fails (%s)",
       sb_result_message(res));
    is_str(decide(e1, 5), "A", "still A");
    /* Cases that cannot be read are not cases that pass: here the cases
    ** "file" is a directory (as a file the engine may not read would be). */
    char cpath[512];
    snprintf(cpath, sizeof cpath, "%s/router.cases.json", pdir);
    unlink(cpath);
    mkdir(cpath, 0700);
    ok(sb_reload(e1, res) == SB_EPOLICY && strstr(sb_result_message(res), "router.cases.json"),
       "reload where a policy's cases cannot be read fails, naming them (%s)",
       sb_result_message(res));
    is_str(decide(e1, 50), "A", "still A");
    rmdir(cpath);
    write_file(
        "router.cases.json",
        "[{\"name\":\"rejects with B\",\"expect\":{\"action\":\"reject\",\"reason\":\"B\"}}]");
    ok(sb_reload(e1, res) == 0, "with the cases fixed, reload succeeds");
    is_str(decide(e1, 6), "B", "engine 1 now decides with B");
    is_str(decide(e2, 7), "B", "and engine 2 moved to B at its next event");
    ok(strcmp(version_of(e2, 7), va) != 0 && strlen(version_of(e2, 7)) == 16,
       "with a new version recorded");
    is_str(version_of(e1, 5), va, "earlier records keep the version that decided them");

    test_deleted_account(e1, e2);
    test_delete_shadowing(e1, e2);
    test_store_dropped(e1, e2);
    test_unstatable_entries(e1, e2);
    test_fifo(e1, e2);
    test_others_may_write(e1, e2);
    test_not_utf8(e1, e2);
    test_upload_fits_beside(e1);
    test_skipped_entries(e1);
    test_reload_lint(e1);

    /* A shared file that loses its route hook while a queue routes with it. */
    write_file("router.lua", "local P = {}\n"
                             "function P.retain(record, ctx) return { keep = true } end\n"
                             "return P\n");
    write_file("router.cases.json", "[]");
    int hrc = sb_reload(e1, res);
    ok(hrc == SB_EPOLICY &&
           strstr(sb_result_message(res), "router.lua has no route hook, but queue "
                                          "'q' of account 'acme' routes with it"),
       "a reload that would take route from queue q's policy is refused (%s)",
       sb_result_message(res));
    is_str(decide(e2, 30), "B", "nothing changed");
    write_file("router.lua", POLICY_B);
    write_file(
        "router.cases.json",
        "[{\"name\":\"rejects with B\",\"expect\":{\"action\":\"reject\",\"reason\":\"B\"}}]");

    /* An empty commit takes no transaction id: after one, an engine must
    ** still see the reload another engine commits next. */
    static const char *CASES_A =
        "[{\"name\":\"rejects with A\",\"expect\":{\"action\":\"reject\",\"reason\":\"A\"}}]";
    static const char *CASES_B =
        "[{\"name\":\"rejects with B\",\"expect\":{\"action\":\"reject\",\"reason\":\"B\"}}]";
    ok(sb_tick(e2, res) == 0, "engine 2 ticks with nothing due (an empty commit)");
    write_file("router.lua", POLICY_A);
    write_file("router.cases.json", CASES_A);
    ok(sb_reload(e1, res) == 0, "engine 1 reloads A (%s)", sb_result_message(res));
    is_str(decide(e2, 20), "A", "engine 2's next event after its empty commit decides with A");
    write_file("router.lua", POLICY_B);
    write_file("router.cases.json", CASES_B);
    ok(sb_reload(e1, res) == 0, "and back to B");
    is_str(decide(e2, 21), "B", "which engine 2 follows too");

    /* A file removed while a queue needs it: the reload is refused, naming
    ** the queue, until the queue moves to another policy. */
    write_file("other.lua", POLICY_A);
    ok(sb_reload(e1, res) == 0, "a second shared policy, other");
    char rpath[600];
    snprintf(rpath, sizeof rpath, "%s/router.lua", pdir);
    char rbuf[600];
    snprintf(rbuf, sizeof rbuf, "%s.away", rpath);
    rename(rpath, rbuf);
    int rrc = sb_reload(e1, res);
    ok(rrc == SB_EPOLICY && strstr(sb_result_message(res), "queue 'q' of account 'acme'"),
       "removing router.lua while queue q uses it is refused (%s)", sb_result_message(res));
    is_str(decide(e2, 22), "B", "and nothing changed");
    const char *oq = "{\"id\":\"q\",\"policy\":\"other\"}";
    ok(sb_queue_put(e1, "acme", oq, strlen(oq), res) == 0 && sb_reload(e1, res) == 0,
       "once q uses other, the reload removes router (%s)", sb_result_message(res));
    is_str(decide(e2, 23), "A", "q decides with other");
    rename(rbuf, rpath);
    const char *bq = "{\"id\":\"q\",\"policy\":\"router\"}";
    ok(sb_reload(e1, res) == 0 && sb_queue_put(e1, "acme", bq, strlen(bq), res) == 0,
       "router back, and q on it again");
    snprintf(rpath, sizeof rpath, "%s/other.lua", pdir);
    unlink(rpath);
    ok(sb_reload(e1, res) == 0, "and other goes, used by none");
    test_quarantine_ends(e1, e2);
    test_reload_threads(e1, e2);
    sb_close(e2);

    /* Signed policies. */
    char pk[80], sk[160];
    ok(keygen(pk, sk) == 0, "generate a signing key pair");
    sb_close(e1);
    sb_engine *s = open_engine(1, pk);
    ok(s != NULL, "with signatures required, an engine still opens over unsigned files");
    if (s) {
        const char *r = decide(s, 9);
        ok(strcmp(r, "A") != 0 && strcmp(r, "B") != 0,
           "but no unsigned policy decides: the queue's fallback does (reject '%s')", r);
        /* The call's trace says why (it said "policy source unavailable
        ** (SB_EPOLICY)", as for a read that failed), with the version. */
        json_t *c = sb_call_get(s, "acme", "r9", res) == 0
                        ? json_loads(sb_result_json(res, NULL), 0, NULL)
                        : NULL;
        json_t *t0 = json_array_get(json_object_get(c, "trace"), 0);
        const char *detail = json_string_value(json_object_get(t0, "detail"));
        ok(detail &&
               strstr(detail, "router.lua: not run: require_signed_policies is on, and "
                              "version ") &&
               strstr(detail, " is unsigned or its signature does not verify with "
                              "policy_public_key") &&
               strlen(json_string_value(json_object_get(t0, "version"))) == 16,
           "and the call's trace says why, naming the version (%s)", detail ? detail : "none");
        json_decref(c);
        sb_close(s);
    }
    ok(sb_policy_sign(POLICY_A, strlen(POLICY_A), sk, res) == 0, "sign policy A");
    json_t *signed_doc = json_loads(sb_result_json(res, NULL), 0, NULL);
    const char *signed_a = json_string_value(json_object_get(signed_doc, "source"));
    ok(signed_a && strstr(signed_a, "--@signature "), "the signature is a trailing comment line");
    write_file("router.lua", signed_a);
    snprintf(path, sizeof path, "%s/router.cases.json", pdir);
    unlink(path);
    s = open_engine(1, pk);
    ok(s != NULL, "signed files load");
    if (s) {
        is_str(decide(s, 8), "A", "and decide");
        if (getenv("SB_TEST_LOG")) {
            sb_call_get(s, "acme", "r8", res);
            diag("%s", sb_result_json(res, NULL));
        }
        char *tampered = strdup(signed_a);
        char *p = strstr(tampered, "'A'");
        if (p) p[1] = 'Z';
        ok(sb_policy_put(s, "acme", "mine", tampered, strlen(tampered), NULL, res) == SB_EPOLICY,
           "an upload whose source was changed after signing is refused (%s)",
           sb_result_message(res));
        ok(sb_policy_put(s, "acme", "mine", POLICY_B, strlen(POLICY_B), NULL, res) == SB_EPOLICY,
           "an unsigned upload is refused");
        ok(sb_policy_put(s, "acme", "mine", signed_a, strlen(signed_a), NULL, res) == 0,
           "a signed upload is accepted");
        chmod(pdir, 0777);
        ok(sb_reload(s, res) == 0,
           "with signatures required, a directory any user may write into loads: only signed "
           "code runs from it (%s)",
           sb_result_message(res));
        chmod(pdir, 0700);
        /* A source without a newline at its end (a string built in code):
        ** the signer ends its last line before the signature line, and the
        ** signature covers the text as handed back, so it verifies. */
        char bare[200];
        snprintf(bare, sizeof bare, "%.*s", (int)strlen(POLICY_B) - 1, POLICY_B);
        int rc = sb_policy_sign(bare, strlen(bare), sk, res);
        json_t *signed_bare = rc ? NULL : json_loads(sb_result_json(res, NULL), 0, NULL);
        const char *sb_src =
            signed_bare ? json_string_value(json_object_get(signed_bare, "source")) : NULL;
        ok(sb_src && sb_policy_verify(sb_src, strlen(sb_src), pk, res) == 0,
           "a source signed without a final newline verifies (%s)",
           sb_src ? sb_result_message(res) : "not signed");
        ok(sb_src && sb_policy_put(s, "acme", "bare", sb_src, strlen(sb_src), NULL, res) == 0,
           "and is accepted as an upload (%s)", sb_src ? sb_result_message(res) : "not signed");
        json_decref(signed_bare);
        /* An unsigned file in the directory: the reload names it once, not
        ** "<dir>/plain.lua: plain: unsigned, ...". */
        write_file("plain.lua", POLICY_B);
        char want[600];
        snprintf(want, sizeof want, "%s/plain.lua: unsigned, and require_signed_policies is on",
                 pdir);
        ok(sb_reload(s, res) == SB_EPOLICY && !strcmp(sb_result_message(res), want),
           "a reload meeting an unsigned file says so, naming it once (%s)",
           sb_result_message(res));
        snprintf(want, sizeof want, "%s/plain.lua", pdir);
        unlink(want);
        free(tampered);
        sb_close(s);
    }
    json_decref(signed_doc);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir, pdir);
    if (system(cmd)) diag("cleanup failed");
    test_signed_use();
    sb_result_free(res);
    return done_testing();
}
