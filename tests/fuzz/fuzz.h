/*
** fuzz.h — helpers shared by the libFuzzer targets: a scratch data
** directory under /tmp removed at exit, an injected clock, a quiet log, and
** a provisioned engine (account "acme", agents alice/bob/carol, queue
** "support" with the deterministic "first" policy) to aim inputs at.
**
** Targets reset their engine every FUZZ_RESET_EVERY inputs so the state an
** input meets stays small and the runs stay fast.
*/
#ifndef SB_FUZZ_H
#define SB_FUZZ_H

#include "switchboard.h"
#include "testkit.h"

#include <dirent.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUZZ_RESET_EVERY 2000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static int64_t fz_now = 1767603600000; /* Monday 2026-01-05 09:00 UTC */

__attribute__((unused)) static int64_t fz_clock(void *arg)
{
    (void)arg;
    return fz_now;
}

__attribute__((unused)) static void fz_quiet(void *arg, sb_log_level l, const char *line)
{
    (void)arg;
    if (getenv("SB_FUZZ_LOG")) fprintf(stderr, "log %d: %s\n", (int)l, line);
}

static char fz_base[256];

static void fz_cleanup(void)
{
    if (fz_base[0]) rmtree(fz_base);
}

/* A fresh scratch directory for this process, removed at exit. */
__attribute__((unused)) static const char *fz_scratch(const char *tag)
{
    if (!fz_base[0]) {
        /* $SB_FUZZ_TMP (fuzz.t's own directory), else tmpfs when there is
        ** one: inputs rewrite data files all the time. */
        const char *root = getenv("SB_FUZZ_TMP");
        if (!root || !*root) root = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fz_base, sizeof fz_base, "%s/sbfuzz-%s-XXXXXX", root, tag);
        if (!mkdtemp(fz_base)) {
            perror("mkdtemp");
            abort();
        }
        atexit(fz_cleanup);
    }
    return fz_base;
}

/* A deterministic policy: ring the available agent whose id sorts first, on
** the softphone; wait when nobody is available. */
static const char fz_first_policy[] =
    "local P = {}\n"
    "function P.route(call, agents, ctx)\n"
    "  local best\n"
    "  for _, a in ipairs(agents) do\n"
    "    if not best or a.id < best.id then best = a end\n"
    "  end\n"
    "  if not best then return { wait = 60 } end\n"
    "  return { ring = best.id, device = \"softphone\", timeout = 20 }\n"
    "end\n"
    "return P\n";

#define FZ_AGENT(id)                                                                               \
    "{\"id\":\"" id "\",\"name\":\"" id "\",\"devices\":{\"softphone\":\"sip:" id                  \
    "@pbx.example\",\"mobile\":\"tel:+447700900001\"},\"skills\":{\"english\":3},"                 \
    "\"status\":\"available\"}"

static void fz_must(int rc, sb_result *res, const char *what)
{
    if (rc) {
        fprintf(stderr, "fuzz setup: %s: %s\n", what, sb_result_message(res));
        abort();
    }
}

/* Open an engine on dir (created) with SB_SYNC_NONE and the test clock. */
__attribute__((unused)) static sb_engine *fz_open(const char *dir, size_t map_size, size_t map_max,
                                                  sb_result *res)
{
    sb_config cfg;
    sb_config_init(&cfg);
    cfg.data_dir = dir;
    cfg.sync = SB_SYNC_NONE;
    cfg.clock = fz_clock;
    cfg.log = fz_quiet;
    cfg.map_size = map_size;
    cfg.map_max = map_max;
    cfg.policy_instructions = 200000;
    cfg.policy_memory = (size_t)2 << 20;
    sb_engine *e = NULL;
    fz_must(sb_open(&e, &cfg, res), res, "sb_open");
    return e;
}

/* Account acme: policy "first", agents alice/bob/carol, queue support (all
** three), queue backup (carol), overflow support -> backup. */
__attribute__((unused)) static void fz_provision(sb_engine *e, sb_result *res)
{
    static const char acct[] = "{\"id\":\"acme\",\"name\":\"Acme\"}";
    fz_must(sb_account_put(e, acct, strlen(acct), res), res, "account");
    fz_must(sb_policy_put(e, "acme", "first", fz_first_policy, strlen(fz_first_policy), NULL, res),
            res, "policy");
    static const char *const agents[] = {FZ_AGENT("alice"), FZ_AGENT("bob"), FZ_AGENT("carol")};
    for (size_t i = 0; i < 3; i++)
        fz_must(sb_agent_put(e, "acme", agents[i], strlen(agents[i]), res), res, "agent");
    static const char backup[] = "{\"id\":\"backup\",\"policy\":\"first\",\"members\":[{\"agent\":"
                                 "\"carol\"}]}";
    fz_must(sb_queue_put(e, "acme", backup, strlen(backup), res), res, "queue backup");
    static const char support[] =
        "{\"id\":\"support\",\"policy\":\"first\",\"ring_timeout\":20,\"max_wait\":300,"
        "\"overflow\":\"backup\",\"members\":[{\"agent\":\"alice\"},{\"agent\":\"bob\",\"tier\":2},"
        "{\"agent\":\"carol\"}]}";
    fz_must(sb_queue_put(e, "acme", support, strlen(support), res), res, "queue support");
}

/* sb_result_json must always be valid JSON of the documented shape. */
__attribute__((unused)) static void fz_check_result(sb_result *res, int rc, const char *what)
{
    size_t len = 0;
    const char *js = sb_result_json(res, &len);
    json_error_t err;
    json_t *doc = json_loadb(js, len, JSON_ALLOW_NUL, &err);
    if (!doc || !json_is_object(doc)) {
        fprintf(stderr, "%s: sb_result_json is not a JSON object (%s): %.*s\n", what, err.text,
                (int)(len > 400 ? 400 : len), js);
        abort();
    }
    if (rc == SB_EPOLICY && json_object_get(doc, "cases")) {
        /* sb_policy_test's report of failing cases */
    } else if (rc != 0) {
        json_t *e = json_object_get(doc, "error");
        const char *code = json_string_value(json_object_get(e, "code"));
        const char *name = sb_strerror(rc);
        if (!code || strncmp(name, code, strlen(code)) != 0 || name[strlen(code)] != ':') {
            fprintf(stderr, "%s: rc %d (%s) but the result JSON says %.*s\n", what, rc, name,
                    (int)(len > 400 ? 400 : len), js);
            abort();
        }
        /* The error shape: message and field always there (field may be null),
        ** and the field the same as sb_result_field says. */
        json_t *f = json_object_get(e, "field");
        const char *rf = sb_result_field(res);
        if (!json_is_string(json_object_get(e, "message")) || !f ||
            (json_is_string(f) ? !rf || strcmp(rf, json_string_value(f))
                               : !json_is_null(f) || rf)) {
            fprintf(stderr, "%s: the error lacks its message or field: %.*s\n", what,
                    (int)(len > 400 ? 400 : len), js);
            abort();
        }
    }
    if (rc != 0) {
        if (sb_result_count(res) != 0) {
            fprintf(stderr, "%s: failed with %s but returned %zu actions\n", what, sb_strerror(rc),
                    sb_result_count(res));
            abort();
        }
    } else if (sb_result_code(res) != 0) {
        fprintf(stderr, "%s: returned 0 but the result's code is %d\n", what, sb_result_code(res));
        abort();
    }
    if (rc != 0 && (rc > SB_EINVAL || rc < SB_EHOLD)) {
        fprintf(stderr, "%s: returned %d, not an SB_E* code\n", what, rc);
        abort();
    }
    json_decref(doc);
}

#endif
