/*
** test_contract.c — what switchboard.h promises a gateway embedding the
** library, checked one promise at a time: NULL arguments refused with a
** message, a text for every error code, results reset by every call, the
** lifetime of what a result hands out, sb_open's refusals (a file for a data
** directory, an unwritable one, configuration out of range), sb_config_init's
** defaults, several threads on one engine, JSON bodies with stray NUL bytes,
** the fields of each kind of action, and timers under a clock that goes
** backwards.
*/
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];
static sb_engine *eng;
static sb_result *res;

#define AGENT(id)                                                                                  \
    "{\"id\":\"" id "\",\"devices\":{\"softphone\":\"sip:" id "@pbx.example\"},"                   \
    "\"status\":\"available\"}"

static int ev(const char *json)
{
    return test_event(eng, res, "acme", json);
}

static const char *field_of(const sb_result *r)
{
    return sb_result_field(r) ? sb_result_field(r) : "(none)";
}

/* 1. Every code has its text, starting with its name. */
static void test_strerror(void)
{
    static const struct {
        int code;
        const char *name;
    } codes[] = {
        {SB_OK, "SB_OK"},           {SB_EINVAL, "SB_EINVAL"},     {SB_ENOTFOUND, "SB_ENOTFOUND"},
        {SB_EEXIST, "SB_EEXIST"},   {SB_ESTATE, "SB_ESTATE"},     {SB_EPOLICY, "SB_EPOLICY"},
        {SB_EFULL, "SB_EFULL"},     {SB_ESTORE, "SB_ESTORE"},     {SB_ENOMEM, "SB_ENOMEM"},
        {SB_EBUSY, "SB_EBUSY"},     {SB_EAUTH, "SB_EAUTH"},       {SB_ELIMIT, "SB_ELIMIT"},
        {SB_ECRYPTO, "SB_ECRYPTO"}, {SB_EVERSION, "SB_EVERSION"}, {SB_EHOLD, "SB_EHOLD"}};
    int bad = 0;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = sb_strerror(codes[i].code);
        size_t n = strlen(codes[i].name);
        if (!s || strncmp(s, codes[i].name, n) || strncmp(s + n, ": ", 2) || !s[n + 2]) {
            diag("%d: %s", codes[i].code, s ? s : "(null)");
            bad++;
        }
    }
    ok(bad == 0, "strerror: every code's text starts with its name and says something");
    is_str(sb_strerror(-1), "SB_E?: unknown error", "strerror: an unknown code");
    is_str(sb_strerror(SB_EHOLD - 1), "SB_E?: unknown error", "strerror: one past the last code");
}

/* 2. sb_config_init's defaults, as the header lists them. */
/* sb_redact: what the header promises, cut and counted. */
static void test_redact(void)
{
    char out[256];
    is_int(sb_redact("call +44 20 7946 0001 or (030) 1234567 at 2026-11-28 12:00", out, sizeof out),
           2, "redact: two numbers found");
    is_str(out, "call [number] or [number] at 2026-11-28 12:00", "redact: both read [number]");
    is_int(sb_redact("queue q7 waited 1767603600 s, agent c1234567", out, sizeof out), 0,
           "redact: a time stamp and ids are not numbers");
    is_str(out, "queue q7 waited 1767603600 s, agent c1234567", "redact: kept as they were");
    is_int(sb_redact("/v1/calls/call_02079460001 c.02079460001 a02079460001", out, sizeof out), 2,
           "redact: a number joined to an id by '_' or '.' is found");
    is_str(out, "/v1/calls/call_[number] c.[number] a02079460001",
           "redact: ... joined to a letter it is an id");
    is_int(sb_redact("agent_1234567 v1.2.3 10.0.0.1 x_20261128", out, sizeof out), 0,
           "redact: short runs, versions, addresses and dates joined so are not");
    /* Numbers written to slip past: spaced out after '+', underscores,
    ** percent-encoded, fullwidth digits, tabs. */
    static const char *const slips[] = {
        "+4 4 7 9 1 1 0 0 0 6 6 6",
        "+44_7911_000666",
        "%2B447911000666",
        "%2b447911000666",
        "+\xef\xbc\x94\xef\xbc\x94\xef\xbc\x97\xef\xbc\x99\xef\xbc\x91\xef\xbc\x91"
        "\xef\xbc\x90\xef\xbc\x90\xef\xbc\x90\xef\xbc\x96\xef\xbc\x96\xef\xbc\x96",
        "\xef\xbc\x8b"
        "447911000666",
        "\xef\xbc\x90\xef\xbc\x97\xef\xbc\x99\xef\xbc\x91\xef\xbc\x91\xef\xbc\x90"
        "\xef\xbc\x90\xef\xbc\x90\xef\xbc\x96\xef\xbc\x96\xef\xbc\x96",
        "+44\t7911\t000666",
        "07911_000_666",
        "+44/7911/000666"};
    for (size_t i = 0; i < sizeof slips / sizeof slips[0]; i++) {
        char in[128];
        snprintf(in, sizeof in, "cb %s.", slips[i]);
        is_int(sb_redact(in, out, sizeof out), 1, "redact: one number in '%s'", slips[i]);
        is_str(out, "cb [number].", "redact: ... and nothing of it left");
    }
    /* Kept: what is not written so, also with the new separators. */
    static const char *const kept =
        "at 2026_11_28 \xef\xbc\x91\xef\xbc\x92:\xef\xbc\x93\xef\xbc\x90 id "
        "1767603600123_5 x_20261128 agent_1234567 counts 1 2 3 4 5 6 7 8 9 and 4_5_6, 100%20off "
        "5%205 %2Bfoo";
    is_int(sb_redact(kept, out, sizeof out), 0,
           "redact: dates, fullwidth times, ids, counts, time stamps: none");
    is_str(out, kept, "redact: ... kept as written (fullwidth and percent signs too)");
    is_int(sb_redact("0301234567 0409876543", NULL, 0), 2, "redact: counts with no buffer");
    is_int(sb_redact("abc 0301234567", out, 8), 1, "redact: counts past a cut");
    is_str(out, "abc [nu", "redact: the text is cut to the buffer and ends in NUL");
    is_int(sb_redact(NULL, out, sizeof out), 0, "redact: NULL reads as empty");
    is_str(out, "", "redact: and gives empty");
}

/* sb_suggest: the engine's "did you mean" rule, for a gateway's or the
** daemon's own names. */
static void test_suggest(void)
{
    static const char *const names[] = {"policy_instructions", "policy_wall_ms", "log_level"};
    is_str(sb_suggest("policy_instrucions", names, 3), "policy_instructions",
           "suggest: a letter left out");
    is_str(sb_suggest("log_levle", names, 3), "log_level", "suggest: two letters swapped");
    ok(sb_suggest("bogus_key", names, 3) == NULL, "suggest: nothing close, nothing suggested");
    ok(sb_suggest("log_level", names, 3) == NULL,
       "suggest: a name given exactly is no misspelling");
    ok(sb_suggest(NULL, names, 3) == NULL && sb_suggest("x", NULL, 0) == NULL,
       "suggest: NULL reads as nothing");
}

static void test_config_defaults(void)
{
    sb_config c;
    memset(&c, 0xa5, sizeof c);
    sb_config_init(&c);
    ok(c.version == SB_CONFIG_VERSION && c.sync == SB_SYNC_GROUP &&
           c.map_size == ((size_t)64 << 20) && c.map_max == 0 && c.policy_instructions == 1000000 &&
           c.policy_wall_ms == 50 && c.policy_memory == ((size_t)8 << 20) &&
           c.quarantine_after == 5,
       "config: group sync, 64 MiB, 1,000,000 instructions, 50 ms, 8 MiB, quarantine after 5");
    ok(!c.data_dir && !c.policy_dir && !c.key_file && !c.clock && !c.log && !c.clock_arg &&
           !c.log_arg && !c.policy_public_key && c.seed == 0 && !c.require_signed_policies &&
           c.log_level == SB_LOG_INFO,
       "config: no paths, clock or log set; seed 0; unsigned policies; info logging");
}

/* 3. sb_open's refusals: each a clear error, nothing opened. */
static int open_rc(sb_config *c)
{
    sb_engine *e = (sb_engine *)&e; /* not NULL: a failure must set it so */
    int rc = sb_open(&e, c, res);
    if (rc == 0) sb_close(e);
    if (rc && e) {
        diag("a failed open left *out set");
        return 1;
    }
    return rc;
}

static void test_open_refusals(void)
{
    char path[512];
    sb_config c;

    /* A data directory that is a file. */
    snprintf(path, sizeof path, "%s-file", dir);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    close(fd);
    test_engine_config(&c, path, NULL, 0);
    int rc = open_rc(&c);
    ok(rc == SB_EINVAL && !strcmp(field_of(res), "data_dir") &&
           strstr(sb_result_message(res), "not a directory"),
       "open: a data_dir that is a file is refused on data_dir: %s (%s)", sb_result_message(res),
       field_of(res));
    char key[600];
    snprintf(key, sizeof key, "%s/master.key", path);
    ok(access(key, F_OK) != 0, "open: and nothing is created");
    unlink(path);

    /* A key file that is a directory: one "master key" in the message. */
    snprintf(path, sizeof path, "%s-kd", dir);
    test_engine_config(&c, path, NULL, 0);
    c.key_file = "/tmp";
    rc = open_rc(&c);
    const char *m = sb_result_message(res);
    const char *first = strstr(m, "master key");
    ok(rc == SB_ECRYPTO && first && !strstr(first + 1, "master key"),
       "open: a key_file that is a directory says so once: %s", m);
    rmtree(path);

    /* Configuration out of range. */
    snprintf(path, sizeof path, "%s-cfg", dir);
    test_engine_config(&c, path, NULL, 0);
    c.log_level = (sb_log_level)77;
    rc = open_rc(&c);
    ok(rc == SB_EINVAL && !strcmp(field_of(res), "log_level"),
       "open: log_level past SB_LOG_DEBUG is refused: %s (%s)", sb_result_message(res),
       field_of(res));
    test_engine_config(&c, path, NULL, 0);
    c.map_size = SIZE_MAX;
    rc = open_rc(&c);
    ok(rc == SB_EINVAL && !strcmp(field_of(res), "map_size"),
       "open: a map_size past the default map_max (64 GiB) is refused: %s (%s)",
       sb_result_message(res), field_of(res));
    test_engine_config(&c, path, NULL, 0);
    c.sync = (sb_sync_mode)9;
    ok(open_rc(&c) == SB_EINVAL && !strcmp(field_of(res), "sync"), "open: unknown sync mode");
    test_engine_config(&c, path, NULL, 0);
    c.version = SB_CONFIG_VERSION + 1;
    ok(open_rc(&c) == SB_EINVAL && *sb_result_message(res) && !strcmp(field_of(res), "version"),
       "open: another config version, naming version (%s)", field_of(res));
    memset(&c, 0, sizeof c); /* never through sb_config_init */
    c.data_dir = path;
    ok(open_rc(&c) == SB_EINVAL && !strcmp(field_of(res), "version"),
       "open: a config not from sb_config_init, naming version: %s", sb_result_message(res));
    ok(sb_master_key_rotate(&c, "/nonexistent/k", res) == SB_EINVAL &&
           !strcmp(field_of(res), "version"),
       "master key rotation: the same (%s)", field_of(res));
    ok(sb_open(NULL, &c, res) == SB_EINVAL && *sb_result_message(res), "open: no output handle");
    sb_engine *e = (sb_engine *)&e;
    ok(sb_open(&e, NULL, NULL) == SB_EINVAL && e == NULL,
       "open: no config and no result: SB_EINVAL, *out NULL");
    test_engine_config(&c, "", NULL, 0);
    ok(open_rc(&c) == SB_EINVAL && !strcmp(field_of(res), "data_dir"), "open: empty data_dir");
    rmtree(path);
    /* Signatures required without a key to check them: refused like the
    ** other settings, before the data directory is made. */
    const char *pks[] = {NULL, "not hex"};
    for (int i = 0; i < 2; i++) {
        test_engine_config(&c, path, NULL, 0);
        c.require_signed_policies = 1;
        c.policy_public_key = pks[i];
        rc = open_rc(&c);
        ok(rc == SB_EINVAL && !strcmp(field_of(res), "policy_public_key") &&
               access(path, F_OK) != 0,
           "open: require_signed_policies with %s policy_public_key is refused, and no data "
           "directory is made: %s",
           i ? "a malformed" : "no", sb_result_message(res));
        rmtree(path);
    }

    /* A load budget of ten times policy_instructions must not wrap round. */
    snprintf(path, sizeof path, "%s-budget", dir);
    test_engine_config(&c, path, NULL, 0);
    c.policy_instructions = UINT64_MAX / 10 + 1;
    e = NULL;
    rc = sb_open(&e, &c, res);
    ok(rc == 0, "open: a huge instruction budget opens: %s", sb_result_message(res));
    if (e) {
        static const char pol[] = "local P = {}\nfor i = 1, 10 do P.n = i end\n"
                                  "function P.route(call, agents, ctx) return { wait = 5 } end\n"
                                  "return P\n";
        ok(sb_account_put(e, "{\"id\":\"acme\"}", 13, res) == 0 &&
               sb_policy_put(e, "acme", "loop", pol, strlen(pol), NULL, res) == 0,
           "open: and a policy with a loop at its top level loads under it: %s",
           sb_result_message(res));
        sb_close(e);
    }
    /* Its data keys without their master key: refused, saying so, and no
    ** key made (a missing file, or one in a missing directory). */
    char absent[700], nodir[700];
    snprintf(absent, sizeof absent, "%s/absent.key", path);
    snprintf(nodir, sizeof nodir, "%s/nodir/master.key", path);
    const char *keys[] = {absent, nodir};
    for (int i = 0; i < 2; i++) {
        test_engine_config(&c, path, NULL, 0);
        c.key_file = keys[i];
        rc = open_rc(&c);
        ok(rc == SB_ECRYPTO && !strcmp(field_of(res), "key_file") &&
               strstr(sb_result_message(res), "no master key at") &&
               strstr(sb_result_message(res), "no master key was made") &&
               access(keys[i], F_OK) != 0,
           "open: data keys without their key file (%s): %s",
           i ? "its directory missing" : "missing", sb_result_message(res));
    }
    rmtree(path);
}

/* 4. A data directory that cannot be written: a read-only file system. */
static void test_open_readonly(void)
{
    char mnt[300], path[400];
    snprintf(mnt, sizeof mnt, "%s-ro", dir);
    mkdir(mnt, 0700);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m,mode=0700") != 0) {
        printf("ok %d # skip read-only data_dir: cannot mount a tmpfs here (%s)\n", ++tap_n,
               strerror(errno));
        printf("ok %d # skip\n", ++tap_n);
        rmdir(mnt);
        return;
    }
    snprintf(path, sizeof path, "%s/data", mnt);
    mkdir(path, 0700);
    if (mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL) != 0) {
        printf("ok %d # skip read-only data_dir: cannot remount read-only (%s)\n", ++tap_n,
               strerror(errno));
        printf("ok %d # skip\n", ++tap_n);
    } else {
        sb_config c;
        test_engine_config(&c, path, NULL, 0);
        int rc = open_rc(&c);
        ok(rc == SB_ESTORE && !strcmp(field_of(res), "data_dir") &&
               strstr(sb_result_message(res), "cannot write"),
           "open: a data_dir on a read-only file system is refused on data_dir: %s (%s)",
           sb_result_message(res), field_of(res));
        /* With the key kept elsewhere, the same. */
        char key[400];
        snprintf(key, sizeof key, "%s-ro.key", dir);
        c.key_file = key;
        rc = open_rc(&c);
        ok(rc == SB_ESTORE && !strcmp(field_of(res), "data_dir"),
           "open: also with a key file elsewhere: %s (%s)", sb_result_message(res), field_of(res));
        unlink(key);
    }
    if (umount(mnt) != 0) umount2(mnt, MNT_DETACH);
    rmdir(mnt);
}

/* 5. NULL arguments: SB_EINVAL (or the documented code) with a message. */
static void test_null_arguments(void)
{
    sb_result *r = res;
    int bad = 0;
#define NULL_ENGINE(call)                                                                          \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != SB_EINVAL || !*sb_result_message(r)) {                                          \
            diag("%s: %d %s", #call, rc_, sb_result_message(r));                                   \
            bad++;                                                                                 \
        }                                                                                          \
    } while (0)
    NULL_ENGINE(sb_account_put(NULL, "{}", 2, r));
    NULL_ENGINE(sb_account_get(NULL, "acme", r));
    NULL_ENGINE(sb_account_list(NULL, r));
    NULL_ENGINE(sb_account_delete(NULL, "acme", r));
    NULL_ENGINE(sb_account_evict(NULL, "acme", r));
    NULL_ENGINE(sb_agent_put(NULL, "acme", "{}", 2, r));
    NULL_ENGINE(sb_agent_get(NULL, "acme", "a", r));
    NULL_ENGINE(sb_agent_list(NULL, "acme", r));
    NULL_ENGINE(sb_agent_list_page(NULL, "acme", NULL, 10, r));
    NULL_ENGINE(sb_call_list_page(NULL, "acme", NULL, "c1", 10, r));
    NULL_ENGINE(sb_agent_delete(NULL, "acme", "a", r));
    NULL_ENGINE(sb_queue_put(NULL, "acme", "{}", 2, r));
    NULL_ENGINE(sb_queue_get(NULL, "acme", "q", r));
    NULL_ENGINE(sb_queue_list(NULL, "acme", r));
    NULL_ENGINE(sb_queue_list_page(NULL, "acme", "q", 10, r));
    NULL_ENGINE(sb_queue_delete(NULL, "acme", "q", r));
    NULL_ENGINE(sb_member_put(NULL, "acme", "q", "a", NULL, 0, r));
    NULL_ENGINE(sb_member_delete(NULL, "acme", "q", "a", r));
    NULL_ENGINE(sb_submit(NULL, NULL, r));
    NULL_ENGINE(sb_submit_json(NULL, "acme", "{}", 2, r));
    NULL_ENGINE(sb_tick(NULL, r));
    NULL_ENGINE(sb_call_get(NULL, "acme", "c", r));
    NULL_ENGINE(sb_policy_put(NULL, "acme", "p", "return {}", 9, NULL, r));
    NULL_ENGINE(sb_policy_list(NULL, "acme", r));
    NULL_ENGINE(sb_policy_get(NULL, "acme", "p", r));
    NULL_ENGINE(sb_policy_delete(NULL, "acme", "p", r));
    NULL_ENGINE(sb_reload(NULL, r));
    NULL_ENGINE(sb_apikey_create(NULL, "acme", r));
    NULL_ENGINE(sb_apikey_list(NULL, "acme", r));
    NULL_ENGINE(sb_apikey_revoke(NULL, "acme", "k", r));
    NULL_ENGINE(sb_records_export(NULL, "acme", "+441234", SB_EXPORT_JSON, r));
    NULL_ENGINE(sb_erase(NULL, "acme", "+441234", r));
    NULL_ENGINE(sb_records_list(NULL, "acme", NULL, 0, r));
    NULL_ENGINE(sb_hold_place(NULL, "acme", "{}", 2, r));
    NULL_ENGINE(sb_hold_release(NULL, "acme", "h", r));
    NULL_ENGINE(sb_hold_list(NULL, "acme", r));
    NULL_ENGINE(sb_hold_get(NULL, "acme", "h", r));
    NULL_ENGINE(sb_aggregates(NULL, "acme", NULL, 0, 0, r));
    NULL_ENGINE(sb_audit_list(NULL, "acme", 0, 0, r));
    NULL_ENGINE(sb_sweep(NULL, 0, NULL, NULL, r));
    NULL_ENGINE(sb_retention_preview(NULL, "acme", NULL, 0, r));
    NULL_ENGINE(sb_stats(NULL, r));
    NULL_ENGINE(sb_submit(eng, NULL, r));
    NULL_ENGINE(sb_account_put(eng, NULL, 5, r));
    NULL_ENGINE(sb_submit_json(eng, "acme", NULL, 5, r));
    NULL_ENGINE(sb_hold_place(eng, "acme", NULL, 0, r));
    NULL_ENGINE(sb_policy_check("p", NULL, 5, r));
    NULL_ENGINE(sb_policy_sign(NULL, 0, NULL, r));
    NULL_ENGINE(sb_policy_verify(NULL, 0, NULL, r));
    NULL_ENGINE(sb_records_export(eng, "acme", NULL, SB_EXPORT_JSON, r));
    NULL_ENGINE(sb_erase(eng, "acme", NULL, r));
#undef NULL_ENGINE
    ok(bad == 0, "null: a NULL engine, event, document or source is SB_EINVAL with a message");
    ok(sb_sync(NULL) == SB_EINVAL, "null: sb_sync(NULL) is SB_EINVAL");
    ok(sb_next_deadline(NULL) == INT64_MAX, "null: sb_next_deadline(NULL) is INT64_MAX");
    ok(sb_apikey_verify(NULL, NULL, NULL, 0) == SB_EAUTH, "null: sb_apikey_verify is SB_EAUTH");

    /* NULL ids: they name nothing. */
    bad = 0;
#define NOT_FOUND(call)                                                                            \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != SB_ENOTFOUND || !*sb_result_message(r) || !sb_result_field(r)) {                \
            diag("%s: %d %s", #call, rc_, sb_result_message(r));                                   \
            bad++;                                                                                 \
        }                                                                                          \
    } while (0)
    NOT_FOUND(sb_account_get(eng, NULL, r));
    NOT_FOUND(sb_agent_get(eng, "acme", NULL, r));
    NOT_FOUND(sb_agent_list(eng, NULL, r));
    NOT_FOUND(sb_queue_get(eng, "acme", NULL, r));
    NOT_FOUND(sb_call_get(eng, "acme", NULL, r));
    NOT_FOUND(sb_call_get(eng, NULL, "c1", r));
    NOT_FOUND(sb_hold_release(eng, "acme", NULL, r));
    NOT_FOUND(sb_member_delete(eng, "acme", NULL, NULL, r));
    NOT_FOUND(sb_retention_preview(eng, NULL, NULL, 0, r));
#undef NOT_FOUND
    ok(bad == 0, "null: a NULL id is SB_ENOTFOUND naming its field");

    /* A NULL policy name is no policy's name, as "" is: SB_EINVAL naming
    ** "name", from every call that takes one, before the account is looked
    ** at (a NULL account beside it is not what is said). */
    static const char pol[] = "return { route = function() return { wait = 5 } end }";
    const char *v16 = "0123456789abcdef";
    bad = 0;
#define NO_NAME(call)                                                                              \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != SB_EINVAL || !sb_result_field(r) || strcmp(sb_result_field(r), "name") ||       \
            !strstr(sb_result_message(r), "no policy name given")) {                               \
            diag("%s: %d %s", #call, rc_, sb_result_message(r));                                   \
            bad++;                                                                                 \
        }                                                                                          \
    } while (0)
    for (int i = 0; i < 2; i++) {
        const char *acct = i ? NULL : "acme";
        NO_NAME(sb_policy_put(eng, acct, NULL, pol, sizeof pol - 1, NULL, r));
        NO_NAME(sb_policy_put_if(eng, acct, NULL, pol, sizeof pol - 1, NULL, "", r));
        NO_NAME(sb_policy_get(eng, acct, NULL, r));
        NO_NAME(sb_policy_delete(eng, acct, NULL, r));
        NO_NAME(sb_policy_delete_if(eng, acct, NULL, "*", r));
        NO_NAME(sb_policy_versions(eng, acct, NULL, 0, 0, r));
        NO_NAME(sb_policy_version_get(eng, acct, NULL, v16, r));
        NO_NAME(sb_policy_versions_forget(eng, acct, NULL, NULL, r));
    }
#undef NO_NAME
    ok(bad == 0,
       "null: a NULL policy name is SB_EINVAL naming \"name\", from every call taking one");
    ok(sb_policy_get(eng, "acme", "", r) == SB_EINVAL && sb_result_field(r) &&
           !strcmp(sb_result_field(r), "name"),
       "null: ... as \"\" is");
    ok(sb_policy_get(eng, "acme", "nope", r) == SB_ENOTFOUND && sb_result_field(r) &&
           !strcmp(sb_result_field(r), "name"),
       "null: a valid name the account has no policy of is SB_ENOTFOUND: %s", sb_result_message(r));
    ok(sb_policy_check(NULL, "return {", 8, r) == SB_EPOLICY &&
           strstr(sb_result_message(r), "policy.lua:1:"),
       "null: sb_policy_check's name is a file name for its messages: NULL is \"policy\": %s",
       sb_result_message(r));

    /* res NULL: only the code. */
    ok(sb_agent_get(eng, "acme", "alice", NULL) == 0 && sb_stats(eng, NULL) == 0 &&
           sb_tick(eng, NULL) == 0 && sb_account_get(eng, "nobody", NULL) == SB_ENOTFOUND,
       "null: every call works without a result");

    /* Accessors on a NULL result. */
    size_t len = 12345;
    const char *j = sb_result_json(NULL, &len);
    json_t *o = json_loads(j, 0, NULL);
    ok(o && len == strlen(j) &&
           !strcmp(json_string_value(json_object_get(json_object_get(o, "error"), "code")),
                   "SB_EINVAL") &&
           json_object_get(json_object_get(o, "error"), "field"),
       "null: sb_result_json(NULL) is an SB_EINVAL error of the documented shape, its length "
       "set: %s",
       j);
    json_decref(o);
    ok(sb_result_count(NULL) == 0 && sb_result_action(NULL, 0) == NULL &&
           !strcmp(sb_result_message(NULL), "") && sb_result_field(NULL) == NULL &&
           sb_result_code(NULL) == SB_EINVAL,
       "null: the other accessors on a NULL result");
    ok(sb_action_json(NULL, NULL, 0) == 0, "null: sb_action_json(NULL) is 0");
    sb_result_free(NULL);
    sb_close(NULL);
}

/* 6. Every call resets its result: nothing stale leaks. */
static void test_reset(void)
{
    ok(ev("{\"type\":\"offer\",\"call\":\"r1\",\"queue\":\"q\",\"caller\":\"+442079460001\"}") ==
               0 &&
           sb_result_count(res) > 0,
       "reset: an offer with actions");
    ok(sb_agent_get(eng, "acme", "nobody", res) == SB_ENOTFOUND && sb_result_count(res) == 0 &&
           sb_result_action(res, 0) == NULL,
       "reset: a failure after it has no actions");
    ok(strstr(sb_result_json(res, NULL), "\"actions\"") == NULL, "reset: nor in its JSON");
    ok(sb_agent_get(eng, "acme", "alice", res) == 0 && !*sb_result_message(res) &&
           sb_result_field(res) == NULL && sb_result_code(res) == 0,
       "reset: a success after a failure has no message or field");
    ok(sb_next_deadline(eng) != INT64_MAX && sb_result_code(res) == 0,
       "reset: a call without a result leaves it alone");
    ok(sb_policy_check("p", NULL, 0, res) == SB_EINVAL && sb_policy_keygen(res) == 0 &&
           !*sb_result_message(res) && strstr(sb_result_json(res, NULL), "public_key"),
       "reset: engine-less calls reset too");
    ok(ev("{\"type\":\"abandon\",\"call\":\"r1\"}") == 0, "reset: r1 abandoned");

    /* Lifetime: strings of an action stay put until the result is used
    ** again, also while more actions are added (the arena never moves). */
    ok(ev("{\"type\":\"offer\",\"call\":\"r2\",\"queue\":\"q\",\"caller\":\"+442079460001\"}") == 0,
       "lifetime: r2 offered");
    const sb_action *a = test_action_nth(res, SB_ACT_RING, 0);
    const char *call = a ? a->call_id : NULL, *uri = a ? a->uri : NULL;
    size_t jl = 0;
    const char *j1 = sb_result_json(res, &jl);
    ok(a && call && !strcmp(call, "r2") && uri && !strcmp(uri, "sip:alice@pbx.example") &&
           jl == strlen(j1),
       "lifetime: the ring's strings and the JSON read back");
    char *copy = strdup(j1);
    const char *j2 = sb_result_json(res, NULL);
    ok(!strcmp(copy, j2) && !strcmp(a->call_id, "r2"),
       "lifetime: a second sb_result_json writes the same text; the actions stand");
    free(copy);
    ok(ev("{\"type\":\"abandon\",\"call\":\"r2\"}") == 0, "lifetime: r2 abandoned");
}

/* 7. The fields of each kind of action, as sb_action documents them. */
static void test_action_fields(void)
{
    now_ms += 1000;
    ok(ev("{\"type\":\"offer\",\"call\":\"f1\",\"queue\":\"q\",\"caller\":\"+442079460001\"}") == 0,
       "fields: f1 offered");
    const sb_action *a = test_action_nth(res, SB_ACT_RING, 0);
    ok(a && a->account && !strcmp(a->account, "acme") && a->call_id && a->agent_id && a->device &&
           !strcmp(a->device, "softphone") && a->uri && a->queue_id && !strcmp(a->queue_id, "q") &&
           a->timeout_s == 20 && !a->status,
       "fields: RING has account, call, agent, device, uri, queue, timeout");
    now_ms += 1000;
    ok(ev("{\"type\":\"ring_result\",\"call\":\"f1\",\"agent\":\"alice\",\"outcome\":"
          "\"answered\"}") == 0,
       "fields: answered");
    a = test_action_nth(res, SB_ACT_CONNECT, 0);
    ok(a && a->call_id && a->agent_id && !strcmp(a->agent_id, "alice") && a->queue_id &&
           a->device && !strcmp(a->device, "softphone") && a->uri && !a->reason && !a->status,
       "fields: CONNECT has call, agent, device, uri, queue");
    now_ms += 1000;
    ok(ev("{\"type\":\"hangup\",\"call\":\"f1\"}") == 0, "fields: hangup");
    a = test_action_nth(res, SB_ACT_END, 0);
    ok(a && a->call_id && a->reason && !strcmp(a->reason, "answered") && a->queue_id,
       "fields: END has call, queue, reason (its outcome)");
    ok(ev("{\"type\":\"agent_status\",\"agent\":\"alice\",\"status\":\"paused\",\"reason\":"
          "\"lunch\"}") == 0 &&
           sb_result_count(res) == 0,
       "fields: alice paused by the gateway: no action (the gateway knows)");
    ok(ev("{\"type\":\"offer\",\"call\":\"f2\",\"queue\":\"q\",\"caller\":\"+442079460001\"}") == 0,
       "fields: f2 offered with nobody free");
    a = test_action_nth(res, SB_ACT_WAIT, 0);
    ok(a && a->call_id && a->queue_id && !a->agent_id && a->due_ms == 0,
       "fields: WAIT has call and queue; due_ms 0: no time set");
    ok(ev("{\"type\":\"agent_status\",\"agent\":\"alice\",\"status\":\"available\"}") == 0 &&
           test_action_nth(res, SB_ACT_RING, 0),
       "fields: alice back rings f2");
    ok(ev("{\"type\":\"agent_status\",\"agent\":\"alice\",\"status\":\"offline\",\"reason\":"
          "\"home\"}") == 0,
       "fields: alice goes offline while ringing");
    a = test_action_nth(res, SB_ACT_CANCEL, 0);
    ok(a && a->call_id && a->agent_id && a->queue_id && a->reason,
       "fields: CANCEL has call, agent, queue and here a reason (%s)",
       a && a->reason ? a->reason : "NULL");
    a = test_action_nth(res, SB_ACT_AGENT, 0);
    ok(a && !a->call_id && a->agent_id && a->status && !strcmp(a->status, "offline") && a->reason &&
           !strcmp(a->reason, "home") && !a->queue_id,
       "fields: AGENT has no call or queue; agent, status, reason");
    ok(ev("{\"type\":\"abandon\",\"call\":\"f2\"}") == 0, "fields: f2 abandoned");
    ok(ev("{\"type\":\"agent_status\",\"agent\":\"alice\",\"status\":\"available\"}") == 0,
       "fields: alice available");
    /* The struct: a field the event's type does not take is refused, as in
    ** JSON, not left unread. */
    sb_event bad[] = {
        {.type = SB_EV_RING_RESULT,
         .account = "acme",
         .call_id = "f9",
         .agent_id = "alice",
         .outcome = SB_RING_ANSWERED,
         .caller = "+442079460001"},
        {.type = SB_EV_AGENT_STATUS,
         .account = "acme",
         .agent_id = "alice",
         .status = SB_AGENT_PAUSED,
         .call_id = "f1"},
        {.type = SB_EV_OFFER,
         .account = "acme",
         .call_id = "f9",
         .queue_id = "q",
         .caller = "+442079460001",
         .outcome = SB_RING_BUSY},
        {.type = SB_EV_HANGUP, .account = "acme", .call_id = "f9", .reason = "why"},
        {.type = SB_EV_ABANDON, .account = "acme", .call_id = "f9", .status = SB_AGENT_PAUSED},
    };
    const char *field[] = {"caller", "call", "outcome", "reason", "status"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = sb_submit(eng, &bad[i], res);
        ok(rc == SB_EINVAL && !strcmp(field_of(res), field[i]) &&
               strstr(sb_result_message(res), "unknown field"),
           "struct: a %s on an event that does not take it is refused (%s)", field[i],
           sb_result_message(res));
    }
    sb_event good = {.type = SB_EV_OFFER,
                     .account = "acme",
                     .call_id = "f9",
                     .queue_id = "q",
                     .caller = "",
                     .called = "+442079460002"};
    ok(sb_submit(eng, &good, res) == 0 &&
           sb_submit(eng, &(sb_event){.type = SB_EV_ABANDON, .account = "acme", .call_id = "f9"},
                     res) == 0,
       "struct: an offer with an empty caller (withheld) and its abandon: fine");
    sb_event nocalled = {.type = SB_EV_OFFER,
                         .account = "acme",
                         .call_id = "f10",
                         .queue_id = "q",
                         .caller = "+442079460003",
                         .called = ""};
    ok(sb_submit(eng, &nocalled, res) == 0 &&
           sb_submit(eng, &(sb_event){.type = SB_EV_ABANDON, .account = "acme", .call_id = "f10"},
                     res) == 0,
       "struct: an empty called is none, as \"called\":\"\" is in JSON (%s)",
       sb_result_message(res));
    /* A reason that is not UTF-8 is refused, as JSON text cannot hold it,
    ** not stored with its bytes made '?'; the agent stays as it was. */
    sb_event pause = {.type = SB_EV_AGENT_STATUS,
                      .account = "acme",
                      .agent_id = "alice",
                      .status = SB_AGENT_PAUSED,
                      .reason = "lu\xffnch"};
    int rc = sb_submit(eng, &pause, res);
    ok(rc == SB_EINVAL && !strcmp(field_of(res), "reason") &&
           strstr(sb_result_message(res), "UTF-8"),
       "struct: a reason that is not UTF-8 is refused (%s)", sb_result_message(res));
    ok(sb_agent_get(eng, "acme", "alice", res) == 0 &&
           strstr(sb_result_json(res, NULL), "\"status\":\"available\""),
       "struct: the agent refused a reason is still available");
    ok(ev("{\"type\":\"agent_status\",\"agent\":\"alice\",\"status\":\"paused\",\"reason\":"
          "\"lu\xffnch\"}") == SB_EINVAL,
       "JSON: the same reason is refused");
}

/* 7b. sb_action_json into a buffer too small: cut and NUL-terminated as
** snprintf does, so that printing a fixed buffer never reads past it (a
** RING of long ids and a 255-byte URI is well past 512 bytes). */
static void test_action_json_cut(void)
{
    char id[129], uri[256], full[2048], buf[512];
    memset(id, 'x', 128);
    id[128] = 0;
    memcpy(uri, "sip:", 4);
    memset(uri + 4, 'u', 251);
    uri[255] = 0;
    sb_action a = {.type = SB_ACT_RING,
                   .account = id,
                   .call_id = id,
                   .agent_id = id,
                   .device = "softphone",
                   .uri = uri,
                   .queue_id = id,
                   .timeout_s = 20,
                   .attempt = 1};
    size_t need = sb_action_json(&a, full, sizeof full);
    ok(need > sizeof buf && need < sizeof full && strlen(full) == need,
       "action json: a long RING needs %zu bytes, whole in a large buffer", need);
    memset(buf, 'Z', sizeof buf);
    size_t n = sb_action_json(&a, buf, sizeof buf);
    ok(n == need && buf[sizeof buf - 1] == 0 && strlen(buf) == sizeof buf - 1 &&
           !memcmp(buf, full, sizeof buf - 1),
       "action json: into 512 bytes it is cut at 511 and NUL-terminated, returning %zu", n);
    char exact[2048];
    memset(exact, 'Z', sizeof exact);
    ok(sb_action_json(&a, exact, need) == need && exact[need - 1] == 0 && strlen(exact) == need - 1,
       "action json: cap equal to the length leaves room for the NUL only (as snprintf)");
    ok(sb_action_json(&a, exact, need + 1) == need && !strcmp(exact, full),
       "action json: cap of the length plus one holds it whole");
    char one = 'Z';
    ok(sb_action_json(&a, &one, 1) == need && one == 0, "action json: cap 1 holds the NUL alone");
}

/* 8. Timers under a clock that goes backwards. */
static void test_clock_backwards(void)
{
    now_ms += 60000;
    ok(sb_tick(eng, res) == 0, "clock: timers of calls gone are dropped");
    ok(ev("{\"type\":\"offer\",\"call\":\"t1\",\"queue\":\"q\",\"caller\":\"+442079460001\"}") ==
               0 &&
           test_action_nth(res, SB_ACT_RING, 0),
       "clock: t1 rings");
    int64_t due = sb_next_deadline(eng);
    ok(due == now_ms + 20000, "clock: the ring timeout is the next deadline (%lld after now)",
       (long long)(due - now_ms));
    int64_t saved = now_ms;
    now_ms -= 3600 * 1000; /* an hour back */
    ok(sb_tick(eng, res) == 0 && sb_result_count(res) == 0,
       "clock: a tick an hour back fires nothing");
    ok(sb_next_deadline(eng) == due, "clock: the deadline stands");
    now_ms = due - 1;
    ok(sb_tick(eng, res) == 0 && sb_result_count(res) == 0, "clock: a ms early fires nothing");
    now_ms = due;
    ok(sb_tick(eng, res) == 0 && test_action_nth(res, SB_ACT_CANCEL, 0),
       "clock: at the deadline the ring times out");
    ok(sb_next_deadline(eng) >= saved, "clock: the next deadline is not behind the offer");
    now_ms = saved - 7200 * 1000;
    ok(ev("{\"type\":\"abandon\",\"call\":\"t1\"}") == 0, "clock: t1 abandoned two hours back");
    json_t *c = json_loads(sb_call_get(eng, "acme", "t1", res) ? "null" : sb_result_json(res, NULL),
                           0, NULL);
    json_t *w = json_object_get(c, "wait");
    ok(w && json_number_value(w) >= 0, "clock: its wait is not negative (%g)",
       json_number_value(w));
    json_decref(c);
    now_ms = saved + 3600 * 1000;
    sb_tick(eng, res);
}

/* 9. JSON bodies: the length rules, not NUL bytes. */
static void test_json_bodies(void)
{
    static const char body[] = "{\"id\":\"acme2\"}trailing";
    ok(sb_account_put(eng, body, 14, res) == 0, "json: len shorter than the string reads len");
    ok(sb_account_put(eng, body, 10, res) == SB_EINVAL, "json: a len that cuts the text is EINVAL");
    static const char nul_after[] = "{\"id\":\"acme2\"}\0{}";
    ok(sb_account_put(eng, nul_after, sizeof nul_after - 1, res) == SB_EINVAL &&
           strstr(sb_result_message(res), "NUL"),
       "json: a NUL byte inside len is named: %s", sb_result_message(res));
    static const char nul_in[] = "{\"id\":\"ac\0me2\"}";
    ok(sb_account_put(eng, nul_in, sizeof nul_in - 1, res) == SB_EINVAL &&
           strstr(sb_result_message(res), "NUL"),
       "json: a NUL byte inside a string is named: %s", sb_result_message(res));
    ok(sb_account_put(eng, "{\"id\":\"acme2\"}", 15, res) == SB_EINVAL &&
           strstr(sb_result_message(res), "strlen"),
       "json: a len counting the terminator says so");
    ok(sb_account_put(eng, "{\"id\":\"acme2\",\"id\":\"x\"}", 23, res) == SB_EINVAL &&
           strstr(sb_result_message(res), "duplicate"),
       "json: duplicate keys are refused");
    ok(sb_account_put(eng, "{\"id\":\"acme2\",\"name\":\"\xc0\xaf\"}", 26, res) == SB_EINVAL,
       "json: an overlong UTF-8 sequence is refused");
    ok(sb_account_put(eng, "{\"id\":\"acme2\",\"name\":\"\\ud800\"}", 29, res) == SB_EINVAL,
       "json: a lone surrogate escape is refused");
    static const char big[] = "{\"id\":\"acme2\",\"service_level_seconds\":9007199254740993}";
    ok(sb_account_put(eng, big, sizeof big - 1, res) == SB_EINVAL &&
           !strcmp(field_of(res), "service_level_seconds"),
       "json: an integer past 2^53 is out of range, not rounded");
    static const char q[] = "{\"from_ms\":9007199254740993.0}";
    ok(sb_records_list(eng, "acme", q, sizeof q - 1, res) == SB_EINVAL,
       "json: a real past 2^53 is not taken for an integer");
    static const char huge[] = "{\"from_ms\":99999999999999999999}";
    ok(sb_records_list(eng, "acme", huge, sizeof huge - 1, res) == SB_EINVAL &&
           strstr(sb_result_message(res), "too big") && !strcmp(field_of(res), "from_ms"),
       "json: an integer past 2^63, named by its field: %s", sb_result_message(res));
    /* A number jansson cannot hold is named by its field and said for what
    ** it is, not "malformed JSON" at a column: a binding's dict or map
    ** holding one is no malformed text to its caller. */
    static const char weight[] = "{\"id\":\"big\",\"weight\":1000000000000000000000000000000}";
    ok(sb_agent_put(eng, "acme", weight, sizeof weight - 1, res) == SB_EINVAL &&
           !strcmp(field_of(res), "weight") &&
           !strcmp(sb_result_message(res), "'weight' is 1000000000000000000000000000000: too big "
                                           "a number (whole numbers go up to "
                                           "9223372036854775807)"),
       "json: 10^30 for a weight: %s (field %s)", sb_result_message(res), field_of(res));
    ok(sb_agent_get(eng, "acme", "big", res) == SB_ENOTFOUND, "json: and no agent made");
    static const char member[] = "{\"id\":\"bq\",\"members\":[{\"agent\":\"alice\"},"
                                 "{\"agent\":\"alice\",\"tier\":-1e400}],\"max_wait\":2e400}";
    ok(sb_queue_put(eng, "acme", member, sizeof member - 1, res) == SB_EINVAL &&
           !strcmp(field_of(res), "members[1].tier") &&
           strstr(sb_result_message(res), "-1e400: too small a number"),
       "json: the first of two reals past a double, with its path: %s (field %s)",
       sb_result_message(res), field_of(res));
    sb_event ev = {.type = SB_EV_OFFER,
                   .account = "acme",
                   .call_id = "big1",
                   .queue_id = "q",
                   .attrs_json = "{\"ids\":[1,2,99999999999999999999]}"};
    ok(sb_submit(eng, &ev, res) == SB_EINVAL && !strcmp(field_of(res), "attrs.ids[2]") &&
           strstr(sb_result_message(res), "too big a number"),
       "json: an offer's attrs_json holding one: %s (field %s)", sb_result_message(res),
       field_of(res));
    static const char cut[] = "{\"type\":\"offer\",\"priority\":\n  -99999999999999999999,";
    ok(sb_submit_json(eng, "acme", cut, sizeof cut - 1, res) == SB_EINVAL &&
           !sb_result_field(res) &&
           !strcmp(sb_result_message(res),
                   "-99999999999999999999 at line 2 column 3: too small a number (whole "
                   "numbers go down to -9223372036854775808)"),
       "json: in a text malformed after it, by line and column: %s", sb_result_message(res));
    ok(sb_call_get(eng, "acme", "big1", res) == SB_ENOTFOUND, "json: and no call made");
    /* sb_json_check: the same words for a gateway that parses a body itself
    ** (the daemon does), on any JSON value. */
    static const char jbody[] = "{\"skills\":{\"de\":1e400}}";
    int jrc = sb_json_check(jbody, sizeof jbody - 1, res);
    ok(jrc == SB_EINVAL && !strcmp(field_of(res), "skills.de") &&
           !strcmp(sb_result_message(res), "'skills.de' is 1e400: too big a number (numbers go "
                                           "up to about 1.8e308)"),
       "sb_json_check: a number too big named by its field: %s (field %s)", sb_result_message(res),
       field_of(res));
    jrc = sb_json_check("[1,", 3, res);
    ok(jrc == SB_EINVAL && !sb_result_field(res) && strstr(sb_result_message(res), "line 1"),
       "sb_json_check: malformed text by its line and column: %s", sb_result_message(res));
    jrc = sb_json_check("[1,2]", 5, res);
    ok(jrc == SB_OK && sb_result_code(res) == SB_OK, "sb_json_check: any JSON value is JSON");
    ok(sb_json_check("{\"a\":1,\"a\":2}", 13, NULL) == SB_EINVAL &&
           sb_json_check(NULL, 0, NULL) == SB_EINVAL,
       "sb_json_check: a duplicate key and no text refused, res NULL");
    static const char back[] = "{\"from_ms\":100,\"to_ms\":1}";
    int brc = sb_records_list(eng, "acme", back, sizeof back - 1, res);
    ok(brc == SB_EINVAL && !strcmp(field_of(res), "to_ms"),
       "records: a range that ends before it starts is refused, as sb_aggregates does (%s)",
       sb_result_message(res));
    char rmsg[256];
    snprintf(rmsg, sizeof rmsg, "%s", sb_result_message(res));
    ok(sb_aggregates(eng, "acme", NULL, 100, 1, res) == SB_EINVAL &&
           !strcmp(field_of(res), "to_ms") && !strcmp(sb_result_message(res), rmsg),
       "aggregates: the same range refused the same way, on to_ms (%s)", sb_result_message(res));
}

/* 10. Several threads on one engine, and engines of one directory. */
typedef struct worker {
    sb_engine *e;
    int id, failures;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    sb_result *r = sb_result_new();
    if (w->id == 5) {
        /* Reloads (every engine moves to a new generation) while the others
        ** route and read statistics. */
        for (int i = 0; i < 20; i++)
            if (sb_reload(w->e, r)) w->failures++;
        sb_result_free(r);
        return NULL;
    }
    char json[256], call[32];
    for (int i = 0; i < 40; i++) {
        snprintf(call, sizeof call, "w%d-%d", w->id, i);
        snprintf(
            json, sizeof json,
            "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"q\",\"caller\":\"+44207946%04d\"}",
            call, i);
        if (sb_submit_json(w->e, "acme", json, strlen(json), r)) w->failures++;
        for (size_t k = 0; k < sb_result_count(r); k++)
            if (!sb_result_action(r, k)->account) w->failures++;
        snprintf(json, sizeof json, "{\"type\":\"abandon\",\"call\":\"%s\"}", call);
        if (sb_submit_json(w->e, "acme", json, strlen(json), r)) w->failures++;
        if (sb_stats(w->e, r) || sb_agent_get(w->e, "acme", "alice", r) ||
            sb_next_deadline(w->e) == 0)
            w->failures++;
        if (sb_agent_get(w->e, "acme", "nobody", r) != SB_ENOTFOUND) w->failures++;
    }
    sb_result_free(r);
    return NULL;
}

static void test_threads(void)
{
    sb_config c;
    char pdir[300];
    snprintf(pdir, sizeof pdir, "%s-policies", dir);
    mkdir(pdir, 0700);
    test_engine_config(&c, dir, pdir, 4 << 20);
    sb_engine *e2 = test_open(&c, res);
    ok(e2 != NULL, "threads: a second engine on the directory");
    pthread_t th[6];
    worker w[6];
    for (int i = 0; i < 6; i++) {
        w[i] = (worker){i < 4 ? eng : e2, i, 0};
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    int failures = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        failures += w[i].failures;
    }
    is_int(failures, 0,
           "threads: 4 threads on one engine, 2 on another (one reloading): no failure");
    ok(sb_agent_get(eng, "acme", "alice", res) == 0 &&
           strstr(sb_result_json(res, NULL), "\"status\":\"available\""),
       "threads: alice is free at the end");
    ok(sb_stats(eng, res) == 0 && strstr(sb_result_json(res, NULL), "\"generation\":"),
       "threads: statistics read the generation the reloads made");
    sb_close(e2);
    rmdir(pdir);
}

/* An empty queue id filters nothing away silently: SB_EINVAL on "queue"
** (NULL, or no "queue", is every queue), as the daemon's ?queue= answers. */
static void test_empty_queue(void)
{
    int a = sb_call_list_page(eng, "acme", "", NULL, 0, res);
    ok(a == SB_EINVAL && !strcmp(sb_result_field(res), "queue"),
       "sb_call_list_page with queue \"\": SB_EINVAL on queue (%s)", sb_result_message(res));
    int b = sb_aggregates(eng, "acme", "", 0, 0, res);
    ok(b == SB_EINVAL && !strcmp(sb_result_field(res), "queue"),
       "sb_aggregates with queue \"\": SB_EINVAL on queue (%s)", sb_result_message(res));
    int c = sb_records_list(eng, "acme", "{\"queue\":\"\"}", 12, res);
    ok(c == SB_EINVAL && !strcmp(sb_result_field(res), "queue"),
       "sb_records_list with \"queue\":\"\": SB_EINVAL on queue (%s)", sb_result_message(res));
    ok(sb_call_list_page(eng, "acme", NULL, NULL, 0, res) == 0 &&
           sb_aggregates(eng, "acme", NULL, 0, 0, res) == 0 &&
           sb_records_list(eng, "acme", "{}", 2, res) == 0,
       "NULL, or no queue: every queue's");
}

/* 11. The clock and log functions calling the engine. They run inside the
** engine's calls, maybe in the write transaction of the call that called
** them: a write from there (or sb_stats, which reads under the write lock)
** is refused with SB_ESTATE rather than waiting for that transaction for
** ever; a read works. A watchdog fails the test instead of hanging it. */
typedef struct cb_state {
    sb_engine *e;
    int lines, stats_rc, put_rc, get_rc, tick_rc;
    char put_msg[512];
} cb_state;

static cb_state cbs;

static void cb_log(void *arg, sb_log_level level, const char *line)
{
    cb_state *s = arg;
    if (!s->e || s->lines++) return; /* the first line only */
    sb_result *r = sb_result_new();
    s->stats_rc = sb_stats(s->e, r);
    s->put_rc = sb_account_put(s->e, "{\"id\":\"other\"}", 14, r);
    snprintf(s->put_msg, sizeof s->put_msg, "%s", sb_result_message(r));
    s->get_rc = sb_account_get(s->e, "acme", r);
    s->tick_rc = sb_tick(s->e, r);
    sb_result_free(r);
}

static void watchdog(int sig)
{
    static const char msg[] = "not ok - callbacks: a call from the log function hung\n";
    (void)sig;
    if (write(1, msg, sizeof msg - 1)) _exit(1);
    _exit(1);
}

static void test_callbacks_reentry(void)
{
    char path[300];
    snprintf(path, sizeof path, "%s-cb", dir);
    sb_config c;
    test_engine_config(&c, path, NULL, 0);
    c.log = cb_log;
    c.log_arg = &cbs;
    c.log_level = SB_LOG_WARN;
    sb_engine *e = test_open(&c, res);
    ok(e && sb_account_put(e, "{\"id\":\"acme\"}", 13, res) == 0 &&
           sb_queue_put(e, "acme", "{\"id\":\"q\"}", 10, res) == 0,
       "callbacks: an engine whose log function calls the engine; a queue without a policy");
    if (!e) return;
    cbs.e = e;
    signal(SIGALRM, watchdog);
    alarm(60);
    /* The queue's policy is not there: the offer logs a warning from inside
    ** its write transaction. */
    int rc = test_event(e, res, "acme", "{\"type\":\"offer\",\"call\":\"k1\",\"queue\":\"q\"}");
    alarm(0);
    ok(rc == 0 && cbs.lines >= 1, "callbacks: the offer went through and logged (%d lines)",
       cbs.lines);
    ok(cbs.put_rc == SB_ESTATE && strstr(cbs.put_msg, "clock or log function"),
       "callbacks: a put from the log function is refused, SB_ESTATE (%s)", cbs.put_msg);
    ok(cbs.stats_rc == SB_ESTATE, "callbacks: so is sb_stats (%d)", cbs.stats_rc);
    ok(cbs.tick_rc == SB_ESTATE, "callbacks: and sb_tick (%d)", cbs.tick_rc);
    ok(cbs.get_rc == 0, "callbacks: a read works (%d)", cbs.get_rc);
    cbs.e = NULL;
    ok(sb_account_get(e, "other", res) == SB_ENOTFOUND && sb_stats(e, res) == 0 &&
           sb_account_put(e, "{\"id\":\"other\"}", 14, res) == 0,
       "callbacks: nothing of the refused put was made, and the engine writes afterwards");
    sb_close(e);
    rmtree(path);
}

/* A clock that reads the engine at every reading, as one looking up an
** account's settings would: the engine closes (it read the clock after it
** had let its data go, and the read crashed). */
static sb_engine *reading_engine;
static sb_result *reading_res;
static int reading_closing, reading_at_close, reading_failed_at_close;

static int64_t reading_clock(void *arg)
{
    (void)arg;
    if (reading_engine) {
        int rc = sb_account_get(reading_engine, "acme", reading_res);
        reading_at_close += reading_closing;
        reading_failed_at_close += reading_closing && rc != 0;
    }
    return now_ms;
}

static void test_clock_reads_at_close(void)
{
    char path[300];
    snprintf(path, sizeof path, "%s-rc", dir);
    sb_config c;
    test_engine_config(&c, path, NULL, 0);
    c.clock = reading_clock;
    reading_res = sb_result_new();
    reading_engine = test_open(&c, res);
    ok(reading_engine && sb_account_put(reading_engine, "{\"id\":\"acme\"}", 13, res) == 0,
       "a clock that reads the engine: an account put");
    reading_closing = 1;
    sb_close(reading_engine);
    reading_engine = NULL;
    ok(reading_at_close > 0 && reading_failed_at_close == 0,
       "... and the engine closes, its clock read %d times while the engine could still be "
       "read (%d failed)",
       reading_at_close, reading_failed_at_close);
    sb_result_free(reading_res);
    rmtree(path);
}

/* sb_close from inside the engine's own clock, log and sweep progress
** functions: the call that ran the function still uses the engine, so the
** close is refused and said in the log, and the engine goes on working (a
** close that went through would leave that call on freed memory: the
** sanitizer build and valgrind see it). A log function closing at every
** line, the refusal's line too, is not asked again from inside it. */
typedef struct close_cb {
    sb_engine *e;
    int close_in_log, close_in_clock, close_in_progress;
    int closes, refusals, lines;
    int64_t now;
} close_cb;

static void close_log(void *arg, sb_log_level level, const char *line)
{
    close_cb *s = arg;
    s->lines++;
    if (level == SB_LOG_ERROR && strstr(line, "sb_close: called from inside")) s->refusals++;
    if (s->e && s->close_in_log) {
        s->closes++;
        sb_close(s->e);
    }
}

static int64_t close_clock(void *arg)
{
    close_cb *s = arg;
    if (s->e && s->close_in_clock) {
        s->close_in_clock = 0; /* once */
        s->closes++;
        sb_close(s->e);
    }
    return s->now;
}

static void close_progress(void *arg, uint64_t done, uint64_t total)
{
    close_cb *s = arg;
    if (s->e && s->close_in_progress) {
        s->closes++;
        sb_close(s->e);
    }
}

static void test_close_in_callbacks(void)
{
    char path[300];
    snprintf(path, sizeof path, "%s-close", dir);
    static close_cb cc = {.now = 1767600000000};
    sb_config c;
    test_engine_config(&c, path, NULL, 0);
    c.log = close_log;
    c.log_arg = &cc;
    c.clock = close_clock;
    c.clock_arg = &cc;
    c.log_level = SB_LOG_WARN;
    sb_engine *e = test_open(&c, res);
    ok(e && sb_account_put(e, "{\"id\":\"acme\"}", 13, res) == 0 &&
           sb_queue_put(e, "acme", "{\"id\":\"q\"}", 10, res) == 0,
       "close in callbacks: an engine with a queue without a policy");
    if (!e) return;
    cc.e = e;

    /* The log function: the offer's warning comes from inside its write
    ** transaction. */
    cc.close_in_log = 1;
    int rc = test_event(e, res, "acme", "{\"type\":\"offer\",\"call\":\"k1\",\"queue\":\"q\"}");
    cc.close_in_log = 0;
    ok(rc == 0 && cc.closes >= 1,
       "close in callbacks: the log function closed (%d times) and the "
       "offer went through (%s)",
       cc.closes, rc ? sb_result_message(res) : "ok");
    is_int(cc.refusals, 1, "close in callbacks: the refusal logged at error, once");
    ok(sb_call_get(e, "acme", "k1", res) == 0 &&
           test_event(e, res, "acme", "{\"type\":\"abandon\",\"call\":\"k1\"}") == 0,
       "close in callbacks: the engine still reads and writes (%s)", sb_result_message(res));

    /* The clock, read at the start of an event. */
    int refusals = cc.refusals, closes = cc.closes;
    cc.close_in_clock = 1;
    rc = test_event(e, res, "acme", "{\"type\":\"offer\",\"call\":\"k2\",\"queue\":\"q\"}");
    ok(rc == 0 && cc.closes == closes + 1,
       "close in callbacks: the clock function closed and the offer went through (%s)",
       rc ? sb_result_message(res) : "ok");
    is_int(cc.refusals, refusals + 1, "close in callbacks: the clock's refusal logged");
    cc.now += 1000;
    ok(test_event(e, res, "acme", "{\"type\":\"abandon\",\"call\":\"k2\"}") == 0 &&
           sb_call_get(e, "acme", "k2", res) == 0,
       "close in callbacks: the engine goes on (%s)", sb_result_message(res));

    /* A sweep's progress, called outside its transactions. */
    refusals = cc.refusals;
    closes = cc.closes;
    cc.close_in_progress = 1;
    rc = sb_sweep(e, 0, close_progress, &cc, res);
    cc.close_in_progress = 0;
    ok(rc == 0 && cc.closes > closes,
       "close in callbacks: the progress function closed (%d) and "
       "the sweep ended (%s)",
       cc.closes - closes, rc ? sb_result_message(res) : "ok");
    is_int(cc.refusals, refusals + (cc.closes - closes), "close in callbacks: each refusal logged");
    ok(sb_sweep(e, 0, NULL, NULL, res) == 0 && sb_account_get(e, "acme", res) == 0,
       "close in callbacks: the engine goes on");

    /* Closed once the calls have returned. */
    cc.e = NULL;
    refusals = cc.refusals;
    sb_close(e);
    is_int(cc.refusals, refusals, "close in callbacks: a close outside them is no refusal");
    rmtree(path);
}

/* Without a log function the lines go to stderr after their time: the
** engine's clock's, the injected one's too (a replay or a test logs the
** same times at every run), in UTC to the millisecond. stderr is sent to a
** file for the while. */
static int64_t fixed_ms;

static int64_t fixed_clock(void *arg)
{
    return fixed_ms;
}

static void test_stderr_time(void)
{
    char path[300], out[320];
    snprintf(path, sizeof path, "%s-stderr", dir);
    snprintf(out, sizeof out, "%s-stderr.log", dir);
    sb_config c;
    test_engine_config(&c, path, NULL, 0);
    c.clock = fixed_clock;
    c.log = NULL;
    c.log_level = SB_LOG_WARN;
    fixed_ms = 1767600000123; /* 2026-01-05T08:00:00.123Z */
    fflush(stderr);
    int saved = dup(2), fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (saved < 0 || fd < 0 || dup2(fd, 2) < 0) {
        ok(0, "stderr log: stderr sent to %s (%s)", out, strerror(errno));
        return;
    }
    close(fd);
    sb_engine *e = test_open(&c, res);
    int made = e && sb_account_put(e, "{\"id\":\"acme\"}", 13, res) == 0 &&
               sb_queue_put(e, "acme", "{\"id\":\"q\"}", 10, res) == 0 &&
               sb_account_put(e, "{\"id\":\"beta\"}", 13, res) == 0 &&
               sb_queue_put(e, "beta", "{\"id\":\"q\"}", 10, res) == 0;
    /* The queues' policy is not there: the first offer of each account
    ** logs a warning. */
    int rc1 =
        made ? test_event(e, res, "acme", "{\"type\":\"offer\",\"call\":\"s1\",\"queue\":\"q\"}")
             : -1;
    fixed_ms = -1; /* 1969-12-31T23:59:59.999Z: the engine reads it as 1970 */
    int rc2 =
        made ? test_event(e, res, "beta", "{\"type\":\"offer\",\"call\":\"s2\",\"queue\":\"q\"}")
             : -1;
    if (e) sb_close(e);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ok(made && rc1 == 0 && rc2 == 0, "stderr log: two offers to a queue without its policy");
    char text[8192] = "";
    FILE *f = fopen(out, "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = 0;
    if (f) fclose(f);
    const char *l1 = strstr(text, "2026-01-05T08:00:00.123Z warn ");
    const char *l2 = strstr(text, "1970-01-01T00:00:00.000Z warn ");
    ok(l1 && (l1 == text || l1[-1] == '\n'),
       "stderr log: a line at the injected clock's time, its level after it");
    ok(l2 && l2 > l1,
       "stderr log: the next at the clock's next reading, one before 1970 read as 1970");
    if (!l1 || !l2) diag("stderr: %s", text);
    unlink(out);
    rmtree(path);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sb-test-contract-%d", (int)getpid());
    res = sb_result_new();
    test_strerror();
    test_redact();
    test_suggest();
    test_config_defaults();
    test_open_refusals();
    test_open_readonly();

    sb_config cfg;
    test_engine_config(&cfg, dir, NULL, 4 << 20);
    eng = test_open(&cfg, res);
    if (!eng) return done_testing();
    ok(sb_account_put(eng, "{\"id\":\"acme\"}", 13, res) == 0 &&
           test_put(eng, res, sb_agent_put, "acme", AGENT("alice")) == 0 &&
           test_put(eng, res, sb_queue_put, "acme",
                    "{\"id\":\"q\",\"ring_timeout\":20,\"members\":[{\"agent\":\"alice\"}]}") == 0,
       "provisioned: acme, alice, queue q");
    test_null_arguments();
    test_reset();
    test_action_fields();
    test_action_json_cut();
    test_clock_backwards();
    test_json_bodies();
    test_empty_queue();
    test_threads();
    test_callbacks_reentry();
    test_clock_reads_at_close();
    test_close_in_callbacks();
    test_stderr_time();
    sb_close(eng);
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
}
