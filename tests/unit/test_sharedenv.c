/*
** test_sharedenv.c — the engines of one process on one data directory share
** one LMDB environment (engine.c): found by the directory's device and inode
** whatever the path, kept open while any engine uses it, closed by the last;
** a second engine must agree with the first on the master key and map_max;
** opening and closing from many threads at once never leaves two
** environments on one directory; the map grows under every engine's
** transactions; and the growth log line names a fitting unit.
** (tests/crash/test_locks.c checks the lock another process sees.)
*/
#include "engine.h"
#include "tap.h"
#include "testkit.h"

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64] = "/tmp/sb-sharedenv-XXXXXX";
static char data[128];

/* Log lines of every engine, for the map growth message. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char logged[8192];

static void capture(void *arg, sb_log_level l, const char *line)
{
    (void)arg;
    (void)l;
    if (getenv("SB_TEST_LOG")) fprintf(stderr, "log: %s\n", line);
    pthread_mutex_lock(&log_mu);
    size_t n = strlen(logged);
    snprintf(logged + n, sizeof logged - n, "%s\n", line);
    pthread_mutex_unlock(&log_mu);
}

static void config(sb_config *cfg, const char *path)
{
    sb_config_init(cfg);
    cfg->data_dir = path;
    cfg->sync = SB_SYNC_NONE;
    cfg->log = capture;
}

static sb_engine *open_cfg(const sb_config *cfg, sb_result *res)
{
    sb_engine *e = NULL;
    if (sb_open(&e, cfg, res)) diag("open %s: %s", cfg->data_dir, sb_result_message(res));
    return e;
}

static sb_engine *open_at(const char *path, sb_result *res)
{
    sb_config cfg;
    config(&cfg, path);
    return open_cfg(&cfg, res);
}

static int put_agent(sb_engine *e, const char *id, sb_result *res)
{
    char doc[256];
    snprintf(doc, sizeof doc, "{\"id\":\"%s\",\"devices\":{\"softphone\":\"sip:%s@x\"}}", id, id);
    int rc = sb_agent_put(e, "acme", doc, strlen(doc), res);
    if (rc) diag("agent %s: %s", id, sb_result_message(res));
    return rc;
}

static int has_agent(sb_engine *e, const char *id, sb_result *res)
{
    return sb_agent_get(e, "acme", id, res) == 0;
}

static int copy_file(const char *from, const char *to)
{
    char buf[256];
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ssize_t n = in < 0 ? -1 : read(in, buf, sizeof buf);
    int rc = n > 0 && out >= 0 && write(out, buf, (size_t)n) == n ? 0 : -1;
    if (in >= 0) close(in);
    if (out >= 0) close(out);
    return rc;
}

static void test_sizes(void)
{
    char b[32];
    is_str(eng_size_str(b, sizeof b, 0), "0 bytes", "size: 0");
    is_str(eng_size_str(b, sizeof b, 1000), "1000 bytes", "size: 1000 bytes");
    is_str(eng_size_str(b, sizeof b, 256 << 10), "256 KiB", "size: 256 KiB");
    is_str(eng_size_str(b, sizeof b, 512 << 10), "512 KiB", "size: 512 KiB (was \"0 MiB\")");
    is_str(eng_size_str(b, sizeof b, (size_t)64 << 20), "64 MiB", "size: 64 MiB");
    is_str(eng_size_str(b, sizeof b, (size_t)3 << 29), "1.5 GiB", "size: 1.5 GiB");
    is_str(eng_size_str(b, sizeof b, (size_t)64 << 30), "64 GiB", "size: 64 GiB");
}

/* Two engines, any path to the directory; the first closed, the second on. */
static void test_sharing(sb_result *res)
{
    sb_engine *e1 = open_at(data, res);
    if (!ok(e1 && sb_account_put(e1, "{\"id\":\"acme\"}", 13, res) == 0, "engine 1 open")) return;
    char other[200];
    snprintf(other, sizeof other, "%s/../data/.", data);
    sb_engine *e2 = open_at(other, res);
    ok(e2 && e2->sh == e1->sh && e2->env == e1->env,
       "engine 2, opened by another path to the directory, shares engine 1's environment");
    char link[200];
    snprintf(link, sizeof link, "%s/link", dir);
    if (symlink(data, link)) diag("symlink failed");
    sb_engine *e3 = open_at(link, res);
    ok(e3 && e3->sh == e1->sh, "engine 3, through a symbolic link, shares it too");
    sb_close(e3);

    ok(e2 && put_agent(e2, "a1", res) == 0 && has_agent(e1, "a1", res),
       "a write through engine 2 is read through engine 1");
    sb_close(e1);
    ok(e2 && put_agent(e2, "a2", res) == 0 && has_agent(e2, "a1", res) && has_agent(e2, "a2", res),
       "with engine 1 (the first) closed, engine 2 reads and writes");
    sb_engine *e4 = open_at(data, res);
    ok(e4 && e2 && e4->sh == e2->sh, "an engine opened now joins engine 2's environment");
    sb_close(e4);
    sb_close(e2);

    /* A renamed directory is the same environment; a new one at the old
    ** path is another. */
    sb_engine *r1 = open_at(data, res);
    char moved[200];
    snprintf(moved, sizeof moved, "%s/moved", dir);
    int renamed = rename(data, moved) == 0;
    sb_engine *r2 = renamed ? open_at(moved, res) : NULL;
    ok(r1 && r2 && r2->sh == r1->sh, "after a rename, the new path finds the same environment");
    sb_engine *r3 = open_at(data, res);
    ok(r3 && r1 && r3->sh != r1->sh && !has_agent(r3, "a1", res),
       "a new directory at the old path gets its own environment");
    sb_close(r3);
    sb_close(r2);
    sb_close(r1);
    rmtree(data);
    if (renamed && rename(moved, data)) diag("rename back failed");
    sb_engine *back = open_at(data, res);
    ok(back && has_agent(back, "a2", res), "the moved directory, back in place, has its data");
    sb_close(back);
    unlink(link);
}

/* A forked child opens its own environment, never its parent's. */
static void test_fork(sb_result *res)
{
    sb_engine *e = open_at(data, res);
    if (!ok(e != NULL, "an engine open before fork")) return;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        sb_result *r = sb_result_new();
        sb_engine *c = open_at(data, r);
        int code = !c ? 2 : c->sh == e->sh ? 3 : put_agent(c, "from-child", r) ? 4 : 0;
        sb_close(c);
        sb_result_free(r);
        _exit(code);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    is_int(
        WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0,
        "in a forked child, an engine on the directory gets an environment of its own and writes");
    ok(has_agent(e, "from-child", res) && put_agent(e, "after-child", res) == 0,
       "the parent's engine reads the child's write and writes on");
    sb_close(e);
}

/* What a second engine must agree on, and what it may choose. */
static void test_config(sb_result *res)
{
    sb_config cfg;
    config(&cfg, data);
    cfg.map_max = (size_t)1 << 30;
    sb_engine *e1 = open_cfg(&cfg, res);
    if (!ok(e1 != NULL, "engine 1 open with map_max 1 GiB")) return;

    sb_config c2 = cfg;
    c2.map_max = (size_t)2 << 30;
    sb_engine *e2 = NULL;
    int rc = sb_open(&e2, &c2, res);
    ok(rc == SB_EINVAL && e2 == NULL && sb_result_field(res) &&
           !strcmp(sb_result_field(res), "map_max") && strstr(sb_result_message(res), "1 GiB") &&
           strstr(sb_result_message(res), "2 GiB"),
       "a second engine with another map_max: SB_EINVAL on map_max (%s)", sb_result_message(res));
    c2.map_max = 0;
    rc = sb_open(&e2, &c2, res);
    ok(rc == SB_EINVAL && e2 == NULL, "map_max 0 (64 GiB) is another map_max too");

    char key[200], same[200];
    snprintf(key, sizeof key, "%s/other.key", dir);
    c2 = cfg;
    c2.key_file = key;
    rc = sb_open(&e2, &c2, res);
    ok(rc == SB_EINVAL && e2 == NULL && sb_result_field(res) &&
           !strcmp(sb_result_field(res), "key_file"),
       "a second engine with a key file that does not exist: SB_EINVAL on key_file (%s)",
       sb_result_message(res));
    ok(access(key, F_OK) != 0, "and no key file was made for it");

    /* A key of its own: made by an engine on another directory. */
    char elsewhere[200];
    snprintf(elsewhere, sizeof elsewhere, "%s/elsewhere", dir);
    sb_config c3;
    config(&c3, elsewhere);
    c3.key_file = key;
    sb_engine *x = open_cfg(&c3, res);
    sb_close(x);
    rc = sb_open(&e2, &c2, res);
    ok(x && rc == SB_EINVAL && e2 == NULL && !strcmp(sb_result_field(res), "key_file"),
       "a second engine with another master key: SB_EINVAL on key_file");

    char master[200];
    snprintf(master, sizeof master, "%s/master.key", data);
    snprintf(same, sizeof same, "%s/same.key", dir);
    c2.key_file = same;
    ok(copy_file(master, same) == 0 && (e2 = open_cfg(&c2, res)) != NULL && e2->sh == e1->sh,
       "the same master key under another name will do");
    sb_close(e2);
    e2 = NULL;

    c2 = cfg;
    c2.sync = SB_SYNC_GROUP;
    c2.map_size = (size_t)256 << 20;
    size_t map_before = e1->sh->map_size;
    e2 = open_cfg(&c2, res);
    ok(e2 && e2->sh == e1->sh && e2->cfg.sync == SB_SYNC_GROUP && e1->cfg.sync == SB_SYNC_NONE,
       "another sync mode is the engine's own");
    ok(e2 && e2->sh->map_size == map_before,
       "another map_size leaves the open map as it is (%zu bytes)", map_before);
    ok(e2 && sb_account_put(e2, "{\"id\":\"acme\"}", 13, res) == 0 &&
           put_agent(e2, "g1", res) == 0 && put_agent(e1, "n1", res) == 0,
       "both engines write, each in its own sync mode");
    sb_close(e2);
    sb_close(e1);
    rmtree(elsewhere);
}

/* --- threads opening and closing ------------------------------------------ */

enum { THREADS = 6, ROUNDS = 25 };

typedef struct loop_arg {
    int id;
    const eng_env *anchor; /* every engine must share it, when set */
    int failures, strangers;
} loop_arg;

static void *open_close_loop(void *p)
{
    loop_arg *a = p;
    sb_result *res = sb_result_new();
    for (int i = 0; i < ROUNDS; i++) {
        sb_engine *e = open_at(data, res);
        char id[32];
        snprintf(id, sizeof id, "t%d-%d-%s", a->id, i, a->anchor ? "b" : "a");
        if (!e || put_agent(e, id, res) || !has_agent(e, id, res))
            a->failures++;
        else if (a->anchor && e->sh != a->anchor)
            a->strangers++;
        sb_close(e);
    }
    sb_result_free(res);
    return NULL;
}

static int run_loops(const eng_env *anchor, int *strangers)
{
    pthread_t th[THREADS];
    loop_arg a[THREADS];
    for (int i = 0; i < THREADS; i++) {
        a[i] = (loop_arg){.id = i, .anchor = anchor};
        pthread_create(&th[i], NULL, open_close_loop, &a[i]);
    }
    int failures = 0;
    *strangers = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        failures += a[i].failures;
        *strangers += a[i].strangers;
    }
    return failures;
}

static int count_agents(sb_engine *e, const char *suffix, sb_result *res)
{
    int n = 0;
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < ROUNDS; i++) {
            char id[32];
            snprintf(id, sizeof id, "t%d-%d-%s", t, i, suffix);
            n += has_agent(e, id, res);
        }
    return n;
}

static void test_threads(sb_result *res)
{
    int strangers = 0;
    /* No engine stays open: environments open and close under the threads. */
    int failures = run_loops(NULL, &strangers);
    ok(failures == 0,
       "%d threads × %d open, write, read, close with no engine kept open: %d failed", THREADS,
       ROUNDS, failures);
    sb_engine *anchor = open_at(data, res);
    if (!ok(anchor != NULL, "an engine kept open")) return;
    failures = run_loops(anchor->sh, &strangers);
    ok(failures == 0 && strangers == 0,
       "the same with an engine kept open: %d failed, %d engines not on its environment", failures,
       strangers);
    is_int(count_agents(anchor, "a", res) + count_agents(anchor, "b", res), 2 * THREADS * ROUNDS,
           "every thread's every write is there");
    sb_close(anchor);
}

/* --- map growth under two engines ------------------------------------------- */

typedef struct grow_arg {
    sb_engine *e;
    int id, failures;
} grow_arg;

static void *grow_writer(void *p)
{
    grow_arg *a = p;
    sb_result *res = sb_result_new();
    char doc[4096];
    for (int i = 0; i < 400; i++) {
        /* About 1 KiB a document, in skills. */
        int n = snprintf(doc, sizeof doc,
                         "{\"id\":\"g%d-%d\",\"devices\":{\"softphone\":\"sip:g@x\"},"
                         "\"skills\":{",
                         a->id, i);
        for (int k = 0; k < 32; k++)
            n += snprintf(doc + n, sizeof doc - (size_t)n, "%s\"skill-%02d-of-agent-%d-%d\":%d",
                          k ? "," : "", k, a->id, i, k % 9);
        snprintf(doc + n, sizeof doc - (size_t)n, "}}");
        if (sb_agent_put(a->e, "acme", doc, strlen(doc), res)) {
            diag("grow %d/%d: %s", a->id, i, sb_result_message(res));
            a->failures++;
        }
        if (i % 8 == 0 && !has_agent(a->e, "n1", res)) {
            diag("grow %d/%d: reading n1: %s", a->id, i, sb_result_message(res));
            a->failures++;
        }
    }
    sb_result_free(res);
    return NULL;
}

static void test_growth(sb_result *res)
{
    char gdir[200];
    snprintf(gdir, sizeof gdir, "%s/grow", dir);
    sb_config cfg;
    config(&cfg, gdir);
    cfg.map_size = 256 << 10;
    cfg.sync = SB_SYNC_GROUP;
    sb_engine *e1 = open_cfg(&cfg, res), *e2 = open_cfg(&cfg, res);
    if (!ok(e1 && e2 && e1->sh == e2->sh && sb_account_put(e1, "{\"id\":\"acme\"}", 13, res) == 0 &&
                put_agent(e2, "n1", res) == 0,
            "two engines on a 256 KiB map"))
        return;
    pthread_mutex_lock(&log_mu);
    logged[0] = 0;
    pthread_mutex_unlock(&log_mu);
    pthread_t th[4];
    grow_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (grow_arg){.e = i % 2 ? e2 : e1, .id = i};
        pthread_create(&th[i], NULL, grow_writer, &a[i]);
    }
    int failures = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        failures += a[i].failures;
    }
    ok(failures == 0, "four threads on the two engines write 1,600 documents: %d failed", failures);
    ok(e1->sh->map_size > (size_t)(256 << 10), "the map grew to %zu bytes", e1->sh->map_size);
    pthread_mutex_lock(&log_mu);
    ok(strstr(logged, "storage map grown to 512 KiB") != NULL && !strstr(logged, " 0 MiB"),
       "the growth is logged in a fitting unit (\"storage map grown to 512 KiB\")");
    pthread_mutex_unlock(&log_mu);
    sb_close(e1);
    sb_close(e2);
    sb_engine *e3 = open_cfg(&cfg, res);
    ok(e3 && has_agent(e3, "g3-399", res) && has_agent(e3, "g0-0", res),
       "reopened after both closed, every document is there");
    sb_close(e3);
}

/* One engine, two threads: one reads policy status and statistics while
** the other routes through a policy whose state each new version resets.
** The reads wait for the write lock, so they never meet freed state (the
** sanitizer build would say so). */
static sb_engine *status_eng;
static volatile int status_stop;
static int status_reads;

static void *status_reader(void *arg)
{
    (void)arg;
    sb_result *r = sb_result_new();
    while (!status_stop) {
        if (sb_policy_list(status_eng, "acme", r) == 0 && sb_stats(status_eng, r) == 0)
            __atomic_add_fetch(&status_reads, 1, __ATOMIC_RELAXED);
    }
    sb_result_free(r);
    return NULL;
}

static void test_status_beside_routing(sb_result *res)
{
    char path[160];
    snprintf(path, sizeof path, "%s/status", dir);
    status_eng = open_at(path, res);
    const char *src =
        "local P = {}\nfunction P.route(c, a, ctx) return { wait = 1 } end\nreturn P\n";
    const char *q = "{\"id\":\"q\",\"policy\":\"p\",\"members\":[{\"agent\":\"alice\"}]}";
    if (!ok(status_eng && sb_account_put(status_eng, "{\"id\":\"acme\"}", 13, res) == 0 &&
                sb_policy_put(status_eng, "acme", "p", src, strlen(src), NULL, res) == 0 &&
                put_agent(status_eng, "alice", res) == 0 &&
                sb_queue_put(status_eng, "acme", q, strlen(q), res) == 0,
            "status: an account routed by its own policy p"))
        return;
    pthread_t th;
    status_stop = 0;
    pthread_create(&th, NULL, status_reader, NULL);
    int fails = 0;
    char ev[160], ver[160];
    for (int i = 0; i < 300; i++) {
        snprintf(ver, sizeof ver, "%s-- %d\n", src, i); /* a new version: the state resets */
        fails += sb_policy_put(status_eng, "acme", "p", ver, strlen(ver), NULL, res) != 0;
        snprintf(
            ev, sizeof ev,
            "{\"type\":\"offer\",\"call\":\"c%d\",\"queue\":\"q\",\"caller\":\"+442079460001\"}",
            i);
        fails += sb_submit_json(status_eng, "acme", ev, strlen(ev), res) != 0;
        snprintf(ev, sizeof ev, "{\"type\":\"abandon\",\"call\":\"c%d\"}", i);
        fails += sb_submit_json(status_eng, "acme", ev, strlen(ev), res) != 0;
    }
    status_stop = 1;
    pthread_join(th, NULL);
    ok(fails == 0 && status_reads > 0,
       "status: 300 new versions routed while another thread read status and statistics %d times",
       status_reads);
    sb_close(status_eng);
}

/* Each engine's write transactions keep the records they read and wrote,
** and the queues' available agents and the agents' memberships they walked,
** across transactions (store.c: the record and range caches) while nobody
** else writes: a write by another engine on the directory must be seen all
** the same (alice rung again: the available agents engine 2 changed). */
static int submit(sb_engine *e, const char *json, sb_result *res)
{
    return sb_submit_json(e, "acme", json, strlen(json), res);
}

static void test_record_cache(sb_result *res)
{
    char path[160];
    snprintf(path, sizeof path, "%s/cache", dir);
    sb_engine *e1 = open_at(path, res), *e2 = open_at(path, res);
    const char *src = "local P = {}\nfunction P.route(c, a, ctx)\n"
                      "  if #a > 0 then return { ring = a[1].id } end\n"
                      "  return { wait = 1 }\nend\nreturn P\n";
    const char *q = "{\"id\":\"q\",\"policy\":\"p\",\"members\":[{\"agent\":\"alice\"}]}";
    if (!ok(e1 && e2 && sb_account_put(e1, "{\"id\":\"acme\"}", 13, res) == 0 &&
                sb_policy_put(e1, "acme", "p", src, strlen(src), NULL, res) == 0 &&
                put_agent(e1, "alice", res) == 0 &&
                sb_queue_put(e1, "acme", q, strlen(q), res) == 0 &&
                submit(e1,
                       "{\"type\":\"agent_status\",\"agent\":\"alice\",\"status\":\"available\"}",
                       res) == 0,
            "cache: two engines on one directory, one queue, one agent available"))
        goto out;
    const char *offer = "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"q\","
                        "\"caller\":\"+442079460001\"}";
    ok(submit(e1, offer, res) == 0 && sb_result_count(res) > 0 &&
           sb_result_action(res, 0)->type == SB_ACT_RING,
       "cache: engine 1 rings alice for c1 (and keeps the call, agent, queue and account)");
    ok(submit(e2, "{\"type\":\"abandon\",\"call\":\"c1\"}", res) == 0,
       "cache: engine 2 ends c1 while it rings");
    ok(submit(e1,
              "{\"type\":\"ring_result\",\"call\":\"c1\",\"agent\":\"alice\","
              "\"outcome\":\"answered\"}",
              res) != 0 &&
           strstr(sb_result_message(res), "already ended") != NULL,
       "cache: engine 1 then finds c1 ended (not its own copy of the ringing call)");
    ok(submit(e1, offer, res) == 0 && sb_result_count(res) > 0 &&
           sb_result_action(res, 0)->type == SB_ACT_RING,
       "cache: engine 1 rings alice again for a new c1: engine 2 freed her");
    ok(submit(e1, "{\"type\":\"abandon\",\"call\":\"c1\"}", res) == 0 &&
           submit(e2, "{\"type\":\"agent_status\",\"agent\":\"alice\",\"status\":\"paused\"}",
                  res) == 0 &&
           submit(e1, "{\"type\":\"agent_status\",\"agent\":\"alice\",\"status\":\"paused\"}",
                  res) == 0 &&
           sb_agent_get(e1, "acme", "alice", res) == 0 &&
           strstr(sb_result_json(res, NULL), "\"paused\"") != NULL,
       "cache: engine 1 sees the status engine 2 gave alice");
out:
    sb_close(e2);
    sb_close(e1);
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    snprintf(data, sizeof data, "%s/data", dir);
    sb_result *res = sb_result_new();
    test_sizes();
    test_sharing(res);
    test_fork(res);
    test_config(res);
    test_threads(res);
    test_growth(res);
    test_status_beside_routing(res);
    test_record_cache(res);
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
}
