/*
** test_reload.c — changing policies safely: reload from the policy directory
** (all or nothing, with the reason), two engines on one data directory both
** moving to a new version, every decision recording the version that made
** it, and signed policies.
*/
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"

#include <jansson.h>
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
    cfg.log = quiet;
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
    ok(sb_policy_get(e1, "acme", "nope", res) == SB_ENOTFOUND, "policy_get of no policy");
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
    write_file(
        "router.cases.json",
        "[{\"name\":\"rejects with B\",\"expect\":{\"action\":\"reject\",\"reason\":\"B\"}}]");
    ok(sb_reload(e1, res) == 0, "with the cases fixed, reload succeeds");
    is_str(decide(e1, 6), "B", "engine 1 now decides with B");
    is_str(decide(e2, 7), "B", "and engine 2 moved to B at its next event");
    ok(strcmp(version_of(e2, 7), va) != 0 && strlen(version_of(e2, 7)) == 16,
       "with a new version recorded");
    is_str(version_of(e1, 5), va, "earlier records keep the version that decided them");

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
    sb_close(e2);

    /* Signed policies. */
    ok(sb_policy_keygen(res) == 0, "generate a signing key pair");
    json_t *keys = json_loads(sb_result_json(res, NULL), 0, NULL);
    char pk[80], sk[160];
    snprintf(pk, sizeof pk, "%s", json_string_value(json_object_get(keys, "public_key")));
    snprintf(sk, sizeof sk, "%s", json_string_value(json_object_get(keys, "secret_key")));
    json_decref(keys);
    sb_close(e1);
    sb_engine *s = open_engine(1, pk);
    ok(s != NULL, "with signatures required, an engine still opens over unsigned files");
    if (s) {
        const char *r = decide(s, 9);
        ok(strcmp(r, "A") != 0 && strcmp(r, "B") != 0,
           "but no unsigned policy decides: the queue's fallback does (reject '%s')", r);
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
        free(tampered);
        sb_close(s);
    }
    json_decref(signed_doc);
    sb_result_free(res);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir, pdir);
    if (system(cmd)) diag("cleanup failed");
    return done_testing();
}
