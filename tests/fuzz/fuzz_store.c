/*
** fuzz_store.c — a corrupted or truncated value in the data file gives an
** error, never a crash: every record the engine stores (accounts, agents and
** their documents, queues, memberships, the avail index, live calls, the
** waiting lists, timers, names, policies, policy stores, API keys, call
** records, meta) is replaced by the input, then the engine is opened on the
** file and driven through reads, events, ticks and deletions.
**
** At start-up a template data directory is built (account acme with agents,
** queues, a policy store, an API key, a finished call, a connected call,
** ringing calls and a waiting one), and every key of every tree is listed.
** Input: two bytes choosing the key (index modulo the number of keys), then
** the value written in its place. Each input starts again from the
** template file.
**
** FUZZ_DUMP_SEEDS=DIR writes each key's original value as a seed for this
** target (store-N) and, for the records model.c decodes, for fuzz_records
** (records-N) — tests/fuzz/corpus was made that way.
*/
#include "engine.h"
#include "fuzz.h"

#include <fcntl.h>
#include <lmdb.h>

typedef struct entry {
    int tree; /* 0 main, 1 timers, 2 records, 3 docs */
    size_t klen, vlen;
    uint8_t *k, *v;
} entry;

static const char *const trees[] = {NULL, "timers", "records", "docs"};
static entry *entries;
static size_t nentries;
static char tmpl_dir[512], run_dir[512];
static uint8_t *tmpl;
static size_t tmpl_len;
static sb_result *res;

/* A policy that keeps a round-robin counter in its store. */
static const char rr_policy[] = "local P = {}\n"
                                "function P.route(call, agents, ctx)\n"
                                "  local n = (ctx.get(call.queue) or 0) + 1\n"
                                "  ctx.set(call.queue, n)\n"
                                "  ctx.set('last', call.id)\n"
                                "  if #agents == 0 then return { wait = 30 } end\n"
                                "  table.sort(agents, function(a, b) return a.id < b.id end)\n"
                                "  return { ring = agents[(n - 1) % #agents + 1] }\n"
                                "end\n"
                                "return P\n";

static void ev(sb_engine *e, const char *json)
{
    fz_must(sb_submit_json(e, "acme", json, strlen(json), res), res, json);
}

static void build_template(void)
{
    const char *base = fz_scratch("store");
    snprintf(tmpl_dir, sizeof tmpl_dir, "%s/template", base);
    snprintf(run_dir, sizeof run_dir, "%s/run", base);
    sb_engine *e = fz_open(tmpl_dir, (size_t)256 << 10, (size_t)64 << 20, res);
    fz_provision(e, res);
    fz_must(sb_policy_put(e, "acme", "rr", rr_policy, strlen(rr_policy), NULL, res), res, "rr");
    static const char dave[] =
        "{\"id\":\"dave\",\"devices\":{\"landline\":\"tel:+442079460000\"},\"timezone\":"
        "\"Europe/London\",\"schedule\":[{\"days\":[\"weekdays\"],\"from\":\"08:00\",\"to\":"
        "\"18:00\",\"devices\":[\"landline\"]}],\"wrapup\":30,\"status\":\"available\"}";
    fz_must(sb_agent_put(e, "acme", dave, strlen(dave), res), res, "dave");
    static const char sales[] = "{\"id\":\"sales\",\"policy\":\"rr\",\"wrapup\":10,\"members\":["
                                "{\"agent\":\"dave\",\"tier\":1,\"position\":1,\"weight\":2.5}]}";
    fz_must(sb_queue_put(e, "acme", sales, strlen(sales), res), res, "sales");
    fz_must(sb_apikey_create(e, "acme", res), res, "key");
    static const char globex[] = "{\"id\":\"globex\",\"name\":\"Globex\",\"fallback\":\"wait\"}";
    fz_must(sb_account_put(e, globex, strlen(globex), res), res, "globex");
    /* c0 finished (a record), c1 connected to alice, c2 ringing bob, c3
    ** ringing carol, c4 waiting; s1 rang dave in sales and ended. */
    ev(e, "{\"type\":\"offer\",\"call\":\"c0\",\"queue\":\"support\",\"caller\":\"+4930100000\","
          "\"attrs\":{\"language\":\"de\",\"skills\":{\"billing\":2}}}");
    fz_now += 2000;
    ev(e,
       "{\"type\":\"ring_result\",\"call\":\"c0\",\"agent\":\"alice\",\"outcome\":\"answered\"}");
    fz_now += 30000;
    ev(e, "{\"type\":\"hangup\",\"call\":\"c0\"}");
    ev(e, "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"support\",\"caller\":\"+4930100001\"}");
    ev(e,
       "{\"type\":\"ring_result\",\"call\":\"c1\",\"agent\":\"alice\",\"outcome\":\"answered\"}");
    ev(e, "{\"type\":\"offer\",\"call\":\"c2\",\"queue\":\"support\",\"caller\":\"+4930100002\","
          "\"priority\":5}");
    ev(e, "{\"type\":\"offer\",\"call\":\"c3\",\"queue\":\"support\",\"caller\":\"+4930100003\"}");
    ev(e, "{\"type\":\"offer\",\"call\":\"c4\",\"queue\":\"support\",\"caller\":\"+4930100004\"}");
    ev(e, "{\"type\":\"offer\",\"call\":\"s1\",\"queue\":\"sales\",\"caller\":\"+4930100005\"}");
    ev(e, "{\"type\":\"ring_result\",\"call\":\"s1\",\"agent\":\"dave\",\"outcome\":\"answered\"}");
    fz_now += 5000;
    ev(e, "{\"type\":\"hangup\",\"call\":\"s1\"}");
    sb_close(e);

    /* The file, and every key of every tree. */
    char path[600];
    snprintf(path, sizeof path, "%s/data.mdb", tmpl_dir);
    FILE *f = fopen(path, "rb");
    if (!f) abort();
    fseek(f, 0, SEEK_END);
    tmpl_len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    tmpl = malloc(tmpl_len);
    if (fread(tmpl, 1, tmpl_len, f) != tmpl_len) abort();
    fclose(f);

    MDB_env *env;
    MDB_txn *txn;
    if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 8) ||
        mdb_env_open(env, tmpl_dir, MDB_RDONLY, 0600) || mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))
        abort();
    for (int t = 0; t < 4; t++) {
        MDB_dbi dbi;
        MDB_cursor *cur;
        MDB_val k, v;
        if (mdb_dbi_open(txn, trees[t], 0, &dbi) || mdb_cursor_open(txn, dbi, &cur)) abort();
        for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            int named = 0; /* the main tree's records of the named trees are LMDB's own */
            for (int i = 1; t == 0 && i < 4; i++)
                named |= k.mv_size == strlen(trees[i]) && !memcmp(k.mv_data, trees[i], k.mv_size);
            if (named) continue;
            entries = realloc(entries, (nentries + 1) * sizeof *entries);
            entry *x = &entries[nentries++];
            x->tree = t;
            x->klen = k.mv_size;
            x->vlen = v.mv_size;
            x->k = malloc(k.mv_size);
            x->v = malloc(v.mv_size ? v.mv_size : 1);
            memcpy(x->k, k.mv_data, k.mv_size);
            memcpy(x->v, v.mv_data, v.mv_size);
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

/* The fuzz_records selector for a key's value, or -1. */
static int record_kind(const entry *x)
{
    if (x->tree != 0 || !x->klen) return -1;
    switch (x->k[0] - 1) {
    case DB_ACCOUNTS:
        return 0;
    case DB_AGENTS:
        return 1;
    case DB_QUEUES:
        return 2;
    case DB_MEMBERS:
    case DB_AGENTQ:
        return 3;
    case DB_AVAIL:
        return 4;
    case DB_CALLS:
        return 5;
    default:
        return -1;
    }
}

static void dump_seeds(const char *dir)
{
    for (size_t i = 0; i < nentries; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/store-%03zu", dir, i);
        FILE *f = fopen(path, "wb");
        if (!f) continue;
        uint8_t sel[2] = {(uint8_t)(i & 0xff), (uint8_t)(i >> 8)};
        fwrite(sel, 1, 2, f);
        fwrite(entries[i].v, 1, entries[i].vlen, f);
        fclose(f);
        int kind = record_kind(&entries[i]);
        if (kind < 0) continue;
        snprintf(path, sizeof path, "%s/records-%03zu", dir, i);
        if (!(f = fopen(path, "wb"))) continue;
        uint8_t k = (uint8_t)kind;
        fwrite(&k, 1, 1, f);
        fwrite(entries[i].v, 1, entries[i].vlen, f);
        fclose(f);
    }
    fprintf(stderr, "fuzz_store: wrote seeds for %zu keys to %s\n", nentries, dir);
}

static void free_all(void)
{
    for (size_t i = 0; i < nentries; i++) {
        free(entries[i].k);
        free(entries[i].v);
    }
    free(entries);
    free(tmpl);
    sb_result_free(res);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    res = sb_result_new();
    build_template();
    atexit(free_all);
    const char *dump = getenv("FUZZ_DUMP_SEEDS");
    if (dump) dump_seeds(dump);
    return 0;
}

/* Put the template back in run_dir. */
static void restore(void)
{
    char path[600];
    mkdir(run_dir, 0700);
    snprintf(path, sizeof path, "%s/lock.mdb", run_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/master.key", run_dir);
    char from[600];
    snprintf(from, sizeof from, "%s/master.key", tmpl_dir);
    FILE *in = fopen(from, "rb"), *out = fopen(path, "wb");
    char buf[256];
    size_t n;
    while (in && out && (n = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, n, out);
    if (in) fclose(in);
    if (out) fclose(out);
    chmod(path, 0600);
    snprintf(path, sizeof path, "%s/data.mdb", run_dir);
    /* Overwritten in place: what lies past the template's end is free space
    ** to LMDB (its meta pages say where the data ends). */
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    if (fd < 0 || write(fd, tmpl, tmpl_len) != (ssize_t)tmpl_len) abort();
    close(fd);
}

#define CALL(expr)                                                                                 \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        fz_check_result(res, rc_, #expr);                                                          \
    } while (0)

static void drive(sb_engine *e)
{
    static const char *const agents[] = {"alice", "bob", "carol", "dave"};
    static const char *const calls[] = {"c0", "c1", "c2", "c3", "c4", "s1"};
    CALL(sb_account_list(e, res));
    CALL(sb_account_get(e, "acme", res));
    CALL(sb_agent_list(e, "acme", res));
    CALL(sb_queue_list(e, "acme", res));
    CALL(sb_queue_get(e, "acme", "support", res));
    CALL(sb_queue_get(e, "acme", "sales", res));
    for (size_t i = 0; i < 4; i++)
        CALL(sb_agent_get(e, "acme", agents[i], res));
    for (size_t i = 0; i < 6; i++)
        CALL(sb_call_get(e, "acme", calls[i], res));
    CALL(sb_policy_list(e, "acme", res));
    CALL(sb_stats(e, res));
    (void)!sb_apikey_verify(e, "acme", "sbk_nope", 8);
    fz_now += 1000;
    /* (strlen, not counted by hand: a length past the text made each of
    ** these a parse error, and the events never happened) */
#define SUBMIT(js) CALL(sb_submit_json(e, "acme", js, strlen(js), res))
    SUBMIT(
        "{\"type\":\"ring_result\",\"call\":\"c2\",\"agent\":\"bob\",\"outcome\":\"no_answer\"}");
    SUBMIT("{\"type\":\"hangup\",\"call\":\"c1\"}");
    SUBMIT("{\"type\":\"offer\",\"call\":\"s2\",\"queue\":\"sales\",\"caller\":\"+4930100009\"}");
    SUBMIT("{\"type\":\"transfer\",\"call\":\"c4\",\"queue\":\"sales\"}");
    SUBMIT("{\"type\":\"agent_status\",\"agent\":\"carol\",\"status\":\"paused\"}");
#undef SUBMIT
    fz_now += 25000;
    CALL(sb_tick(e, res));
    fz_now += 400000;
    CALL(sb_tick(e, res));
    CALL(sb_agent_put(e, "acme", FZ_AGENT("alice"), strlen(FZ_AGENT("alice")), res));
    CALL(sb_member_delete(e, "acme", "support", "bob", res));
    CALL(sb_queue_delete(e, "acme", "sales", res));
    CALL(sb_agent_delete(e, "acme", "dave", res));
    CALL(sb_apikey_create(e, "acme", res));
    CALL(sb_account_delete(e, "acme", res));
    CALL(sb_account_delete(e, "globex", res));
    CALL(sb_account_list(e, res));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || !nentries) return 0;
    const entry *x = &entries[(data[0] | (size_t)data[1] << 8) % nentries];
    restore();
    int64_t saved_now = fz_now;
    sb_config cfg;
    sb_config_init(&cfg);
    cfg.data_dir = run_dir;
    cfg.sync = SB_SYNC_NONE;
    cfg.clock = fz_clock;
    cfg.log = fz_quiet;
    cfg.map_size = (size_t)256 << 10;
    cfg.map_max = (size_t)64 << 20;
    cfg.policy_instructions = 200000;
    /* The corruption goes in through LMDB itself, as a bad write would. */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {x->klen, x->k}, v = {size - 2, (void *)(data + 2)};
    if (mdb_env_create(&env)) abort();
    mdb_env_set_maxdbs(env, 8);
    if (mdb_env_open(env, run_dir, MDB_NOSYNC, 0600) == 0 &&
        mdb_txn_begin(env, NULL, 0, &txn) == 0) {
        if (mdb_dbi_open(txn, trees[x->tree], 0, &dbi) == 0 && mdb_put(txn, dbi, &k, &v, 0) == 0)
            mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    sb_engine *e = NULL;
    if (sb_open(&e, &cfg, res) == 0) {
        drive(e);
        sb_close(e);
    }
    fz_now = saved_now;
    return 0;
}
