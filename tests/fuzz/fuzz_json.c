/*
** fuzz_json.c — the library's JSON request decoding: events (sb_submit_json),
** agent, queue, member and account documents, policy uploads and scenario
** cases, on a provisioned scratch engine (SB_SYNC_NONE, injected clock).
**
** Input: one selector byte, then the document.
**   sel % 10: 0-3 sb_submit_json   4 sb_agent_put   5 sb_queue_put
**             6 sb_member_put(support, alice)   7 sb_account_put
**             8 sb_policy_test(first policy, cases = document)
**             9 sb_policy_put(source NUL cases)
**   (sel >> 4) & 7: seconds the clock moves first; sel & 0x80: sb_tick after.
**
** Checked on every input, beyond "no crash, no sanitizer report, no leak":
** the result JSON is a valid object of the documented shape, a failure
** carries no actions and its code's name, and a failed call committed
** nothing (LMDB's last transaction id did not move).
*/
#include "engine.h"
#include "fuzz.h"

static sb_engine *eng;
static sb_result *res;
static unsigned long runs;

static void reset(void)
{
    const char *dir = fz_scratch("json");
    if (eng) sb_close(eng);
    char data[512];
    snprintf(data, sizeof data, "%s/data", dir);
    rmtree(data);
    eng = fz_open(data, (size_t)1 << 20, (size_t)256 << 20, res);
    fz_provision(eng, res);
    static const char offer[] =
        "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"support\",\"caller\":\"+4930100001\"}";
    fz_must(sb_submit_json(eng, "acme", offer, strlen(offer), res), res, "offer c1");
}

static void close_all(void)
{
    sb_close(eng);
    sb_result_free(res);
    eng = NULL;
    res = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    res = sb_result_new();
    reset();
    atexit(close_all);
    return 0;
}

static size_t last_txnid(void)
{
    MDB_envinfo info;
    mdb_env_info(eng->env, &info);
    return info.me_last_txnid;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (++runs % FUZZ_RESET_EVERY == 0) reset();
    unsigned sel = data[0];
    const char *doc = (const char *)data + 1;
    size_t n = size - 1;
    fz_now += 1000 * (int64_t)((sel >> 4) & 7);
    size_t before = last_txnid();
    int rc, db = 1;
    const char *what;
    switch (sel % 10) {
    case 4:
        what = "sb_agent_put";
        rc = sb_agent_put(eng, "acme", doc, n, res);
        break;
    case 5:
        what = "sb_queue_put";
        rc = sb_queue_put(eng, "acme", doc, n, res);
        break;
    case 6:
        what = "sb_member_put";
        rc = sb_member_put(eng, "acme", "support", "alice", doc, n, res);
        break;
    case 7:
        what = "sb_account_put";
        rc = sb_account_put(eng, doc, n, res);
        break;
    case 8:
        what = "sb_policy_test";
        db = 0;
        rc = sb_policy_test("first.lua", fz_first_policy, strlen(fz_first_policy), doc, n, res);
        break;
    case 9: {
        what = "sb_policy_put";
        const char *nul = memchr(doc, 0, n);
        size_t sl = nul ? (size_t)(nul - doc) : n;
        char *cases = NULL;
        if (nul) {
            cases = malloc(n - sl);
            memcpy(cases, nul + 1, n - sl - 1);
            cases[n - sl - 1] = 0;
        }
        rc = sb_policy_put(eng, "acme", "fz", doc, sl, cases, res);
        free(cases);
        break;
    }
    default:
        what = "sb_submit_json";
        rc = sb_submit_json(eng, "acme", doc, n, res);
        break;
    }
    fz_check_result(res, rc, what);
    if (rc != 0 && db && last_txnid() != before) {
        fprintf(stderr, "%s failed with %s but committed a transaction\n", what, sb_strerror(rc));
        abort();
    }
    if (sel & 0x80) {
        rc = sb_tick(eng, res);
        fz_check_result(res, rc, "sb_tick");
        if (rc != 0) {
            fprintf(stderr, "sb_tick failed: %s\n", sb_result_message(res));
            abort();
        }
    }
    return 0;
}
