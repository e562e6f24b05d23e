/*
** test_full.c — a full map and a full disk through the library.
**
** Map: the engine opens with a 256 KiB map that may grow to 512 KiB; agents
** with big documents, then ever smaller ones, fill it until even a tiny
** write fails. Every failing write must return SB_EFULL ("storage full"),
** commit nothing (LMDB's transaction id does not move) and leave no trace
** (the agent does not exist); reads keep working; an event that cannot be
** written leaves the call and its agent as they were. Then space is freed
** through the API (deleting the big agents) and service resumes without
** reopening the engine: the call cycle completes.
**
** Disk (only where this process may mount a tmpfs; skipped otherwise): the
** data directory on a 3 MiB tmpfs beside a 1 MiB filler file, map_max far
** above what fits; writes fail with SB_EFULL once the map cannot grow
** (posix_fallocate: ENOSPC), nothing is half-written, and once the filler
** is removed the next write grows the map and succeeds, still without
** reopening. A full directory opens again, at its size, where the disk has
** no room for the map the configuration asks for.
*/
#include "engine.h"
#include "tap.h"
#include "testkit.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

static sb_engine *eng;
static sb_result *res;

static const char policy[] = "local P = {}\n"
                             "function P.route(call, agents, ctx)\n"
                             "  table.sort(agents, function(a, b) return a.id < b.id end)\n"
                             "  if agents[1] then return { ring = agents[1] } end\n"
                             "  return { wait = 60 }\n"
                             "end\n"
                             "return P\n";

/* The map's growth as the engine logs it: the lines since the last
** grown_clear(), each in brackets with its level. */
static char grown[2048];

static void grown_clear(void)
{
    grown[0] = 0;
}

static void grown_log(void *arg, sb_log_level l, const char *line)
{
    size_t n = strlen(grown);
    if (strstr(line, "storage map grown"))
        snprintf(grown + n, sizeof grown - n, "[%s: %s]", l == SB_LOG_WARN ? "warn" : "info", line);
    quiet(arg, l, line);
}

/* The engine on data, as it is: 0, or -1 saying why. */
static int reopen_engine(const char *data, size_t map, size_t max)
{
    sb_config cfg;
    sb_config_init(&cfg);
    cfg.data_dir = data;
    cfg.sync = SB_SYNC_NONE;
    cfg.clock = test_clock;
    cfg.map_size = map;
    cfg.map_max = max;
    cfg.log = grown_log;
    if (sb_open(&eng, &cfg, res)) {
        diag("open: %s", sb_result_message(res));
        return -1;
    }
    return 0;
}

/* ... with an account, two agents and a queue. */
static int open_engine(const char *data, size_t map, size_t max)
{
    if (reopen_engine(data, map, max)) return -1;
    static const char acct[] = "{\"id\":\"acme\"}";
    static const char a1[] = "{\"id\":\"alice\",\"devices\":{\"softphone\":\"sip:a@x\"},"
                             "\"status\":\"available\"}";
    static const char a2[] = "{\"id\":\"bob\",\"devices\":{\"softphone\":\"sip:b@x\"},"
                             "\"status\":\"available\"}";
    static const char q[] =
        "{\"id\":\"support\",\"policy\":\"p\",\"members\":[{\"agent\":\"alice\"},"
        "{\"agent\":\"bob\"}]}";
    if (sb_account_put(eng, acct, strlen(acct), res) ||
        sb_policy_put(eng, "acme", "p", policy, strlen(policy), NULL, res) ||
        sb_agent_put(eng, "acme", a1, strlen(a1), res) ||
        sb_agent_put(eng, "acme", a2, strlen(a2), res) ||
        sb_queue_put(eng, "acme", q, strlen(q), res)) {
        diag("provision: %s", sb_result_message(res));
        return -1;
    }
    return 0;
}

static size_t txnid(void)
{
    MDB_envinfo info;
    mdb_env_info(eng->env, &info);
    return info.me_last_txnid;
}

__attribute__((format(printf, 1, 2))) static int ev(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return sb_submit_json(eng, "acme", buf, strlen(buf), res);
}

static char *filler_doc(const char *id, size_t pad)
{
    char *doc = malloc(pad + 200);
    int n = snprintf(doc, 200,
                     "{\"id\":\"%s\",\"devices\":{\"softphone\":\"sip:%s@x\"},"
                     "\"preferences\":{\"pad\":\"",
                     id, id);
    memset(doc + n, 'y', pad);
    strcpy(doc + n + pad, "\"}}");
    return doc;
}

static char last_msg[512];

/* Put filler agents of `pad` bytes until one fails; returns how many went in. */
static int fill(const char *prefix, size_t pad, int *count, int *last_rc, int *clean)
{
    int n = 0;
    for (;;) {
        char id[64];
        snprintf(id, sizeof id, "%s%d", prefix, ++*count);
        char *doc = filler_doc(id, pad);
        size_t before = txnid();
        int rc = sb_agent_put(eng, "acme", doc, strlen(doc), res);
        free(doc);
        if (rc) {
            *last_rc = rc;
            snprintf(last_msg, sizeof last_msg, "%s", sb_result_message(res));
            int gone = sb_agent_get(eng, "acme", id, res) == SB_ENOTFOUND;
            if (txnid() != before || !gone) *clean = 0;
            --*count;
            return n;
        }
        n++;
        if (*count > 100000) return n;
    }
}

static const char *status_of(const char *agent)
{
    static char buf[32];
    if (sb_agent_get(eng, "acme", agent, res)) return "?";
    json_t *o = json_loads(sb_result_json(res, NULL), 0, NULL);
    snprintf(buf, sizeof buf, "%s", json_string_value(json_object_get(o, "status")));
    json_decref(o);
    return buf;
}

static const char *call_state(const char *call)
{
    static char buf[32];
    if (sb_call_get(eng, "acme", call, res)) return "?";
    json_t *o = json_loads(sb_result_json(res, NULL), 0, NULL);
    snprintf(buf, sizeof buf, "%s", json_string_value(json_object_get(o, "state")));
    json_decref(o);
    return buf;
}

/* sb_stats' lmdb.map_max_reached: new calls and documents refused for want
** of room below map_max (-1: no such figure). */
static int map_max_reached(void)
{
    if (sb_stats(eng, res)) return -1;
    json_t *o = json_loads(sb_result_json(res, NULL), 0, NULL);
    json_t *v = json_object_get(json_object_get(o, "lmdb"), "map_max_reached");
    int r = json_is_integer(v) ? (int)json_integer_value(v) : -1;
    json_decref(o);
    return r;
}

static void map_full(const char *base)
{
    char data[400];
    snprintf(data, sizeof data, "%s/map", base);
    if (!ok(open_engine(data, (size_t)256 << 10, (size_t)512 << 10) == 0, "map: engine opened "
                                                                          "(256 KiB, max 512 KiB)"))
        return;
    ok(ev("{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"support\",\"caller\":\"+"
          "4930100001\"}") == 0,
       "a call rings before the map fills");
    int count = 0, rc = 0, clean = 1, total = 0;
    static const size_t pads[] = {30000, 3000, 300, 20, 0};
    for (size_t i = 0; i < 5; i++)
        total += fill("f", pads[i], &count, &rc, &clean);
    /* Then every small write there is, until a whole round of them fails:
    ** calls offered, API keys, memberships. */
    int offers = 0, small = 0, orc = 0, progress = 1;
    while (progress && small < 100000) {
        progress = 0;
        size_t before = txnid();
        char id[32];
        snprintf(id, sizeof id, "w%d", offers + 1);
        orc = ev("{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"support\",\"caller\":"
                 "\"+4930100002\"}",
                 id);
        if (orc == 0)
            offers++, progress = 1;
        else if (txnid() != before || sb_call_get(eng, "acme", id, res) != SB_ENOTFOUND)
            clean = 0;
        before = txnid();
        int krc = sb_apikey_create(eng, "acme", res);
        if (krc == 0)
            small++, progress = 1;
        else if (krc != SB_EFULL || txnid() != before)
            clean = 0;
        total += fill("f", 0, &count, &rc, &clean) ? (progress = 1) : 0;
    }
    if (getenv("SB_TEST_LOG")) diag("%d agents, %d calls, %d keys went in", total, offers, small);
    is_int(rc, SB_EFULL, "map: once full, writes fail with SB_EFULL (%d agents went in)", total);
    is_int(orc, SB_EFULL, "map: ... and so do the smallest events (%d calls, %d keys went in)",
           offers, small);
    ok(strstr(last_msg, "full") != NULL, "map: ... saying so: %s", last_msg);
    ok(strstr(last_msg, "raise map_max and restart") && strstr(last_msg, "sweep"),
       "map: ... and what to do: raise map_max, or make room (%s)", last_msg);
    ok(clean, "map: every failed write committed nothing and left no agent behind");
    ok(sb_agent_get(eng, "acme", "alice", res) == 0 && sb_agent_list(eng, "acme", res) == 0 &&
           sb_call_get(eng, "acme", "c1", res) == 0,
       "map: reads still work");
    size_t before = txnid();
    rc = ev(
        "{\"type\":\"ring_result\",\"call\":\"c1\",\"agent\":\"alice\",\"outcome\":\"answered\"}");
    if (rc == SB_EFULL)
        ok(txnid() == before && !strcmp(call_state("c1"), "ringing") &&
               !strcmp(status_of("alice"), "reserved"),
           "map: an answer that cannot be written leaves the call ringing and alice reserved");
    else
        ok(rc == 0, "map: the answer went in (%s)", sb_strerror(rc));
    /* Free space through the API, without reopening. */
    int freed = 0, del_rc = 0;
    for (int i = 1; i <= count && i <= 8; i++) {
        char id[32];
        snprintf(id, sizeof id, "f%d", i);
        del_rc = sb_agent_delete(eng, "acme", id, res);
        if (del_rc == 0)
            freed++;
        else if (i == 1)
            diag("deleting %s: %s", id, sb_result_message(res));
    }
    ok(freed == 8 || freed == count,
       "map: with the map full, deleting agents frees space (%d of %d deletes went in; last: %s)",
       freed, count < 8 ? count : 8, sb_strerror(del_rc));
    int r1 = strcmp(call_state("c1"), "ringing")
                 ? 0
                 : ev("{\"type\":\"ring_result\",\"call\":\"c1\",\"agent\":\"alice\",\"outcome\":"
                      "\"answered\"}");
    int r2 = ev("{\"type\":\"hangup\",\"call\":\"c1\"}");
    char *doc = filler_doc("after", 20);
    int r3 = sb_agent_put(eng, "acme", doc, strlen(doc), res);
    free(doc);
    ok(r1 == 0 && r2 == 0 && r3 == 0,
       "map: service resumes without reopening: answer %s, hangup %s, a new agent %s",
       sb_strerror(r1), sb_strerror(r2), sb_strerror(r3));
    sb_close(eng);
    eng = NULL;
}

/* A small tmpfs at mnt (a skip on the TAP stream where this process may
** not mount one: -1), and taking it away. */
static int tmpfs_on(const char *mnt, const char *opts, const char *what)
{
    mkdir(mnt, 0700);
    if (mount("tmpfs", mnt, "tmpfs", 0, opts) == 0) return 0;
    printf("ok %d # skip %s: cannot mount a tmpfs here (%s)\n", ++tap_n, what, strerror(errno));
    rmdir(mnt);
    return -1;
}

/* Calls offered until the map is full can all end: their events may use a
** reserve past map_max (a hangup or an abandon writes the call's record),
** while new calls stay refused. Before, the offers that still fitted were
** taken while the calls before them could not end. */
static void calls_end_when_full(const char *base)
{
    char data[400];
    snprintf(data, sizeof data, "%s/calls", base);
    if (!ok(open_engine(data, (size_t)256 << 10, (size_t)512 << 10) == 0,
            "calls: engine opened (256 KiB, max 512 KiB)"))
        return;
    /* Records kept a day, then deleted: how room is made again after. */
    static const char day[] = "local P = {}\n"
                              "function P.retain(record, ctx)\n"
                              "  if record.age_days >= 1 then return { delete = true } end\n"
                              "  return { keep = true, review_in_days = 1 }\n"
                              "end\n"
                              "return P\n";
    static const char acct[] = "{\"id\":\"acme\",\"retention\":\"day\"}";
    ok(sb_policy_put(eng, "acme", "day", day, strlen(day), NULL, res) == 0 &&
           sb_account_put(eng, acct, strlen(acct), res) == 0,
       "calls: records are kept a day: %s", sb_result_message(res));
    char pad[301];
    memset(pad, 'y', 300);
    pad[300] = 0;
    int n = 0, rc = 0;
    grown_clear();
    while (n < 100000) {
        rc = ev("{\"type\":\"offer\",\"call\":\"k%d\",\"queue\":\"support\",\"caller\":"
                "\"+49301%06d\",\"attrs\":{\"note\":\"%s\"}}",
                n + 1, n + 1, pad);
        if (rc) break;
        n++;
    }
    ok(rc == SB_EFULL && n > 10, "calls: offered until the map is full (%d), then SB_EFULL: %s", n,
       sb_result_message(res));
    if (!ok(strstr(grown, "[info: storage map grown to 512 KiB]") && !strstr(grown, "warn:") &&
                !strstr(grown, "reserve"),
            "calls: the offers grew the map to map_max and no further, logged at info"))
        diag("logged: %s", grown);
    grown_clear();
    int failed = 0, taken = 0;
    for (int i = 1; i <= n; i++) {
        failed += ev("{\"type\":\"abandon\",\"call\":\"k%d\"}", i) != 0;
        /* While the calls end into the reserve, new ones stay refused. */
        if (i % 50 == 1)
            taken += ev("{\"type\":\"offer\",\"call\":\"n%d\",\"queue\":\"support\","
                        "\"caller\":\"+4930100009\",\"attrs\":{\"note\":\"%s\"}}",
                        i, pad) != SB_EFULL;
    }
    is_int(failed, 0, "calls: every one of them can still end (each abandon writes its record)");
    is_int(taken, 0, "calls: meanwhile a new call is refused (SB_EFULL) each time it is tried");
    /* The growth into the reserve says so, and for what: a line that read
    ** as any growth had operators take it for the new calls'. */
    if (!ok(strstr(grown,
                   "[warn: storage map grown to 1 MiB, past map_max (512 KiB) into its reserve "
                   "(to 1.5 MiB at most) for a write that ends calls in progress or makes room") &&
                strstr(grown,
                       "new calls and documents go in only while what is in use is 256 KiB or "
                       "more below map_max") &&
                !strstr(grown, "info:"),
            "calls: the abandons grew the map past map_max, into its reserve, logged at warn "
            "saying "
            "so"))
        diag("logged: %s", grown);
    is_int(map_max_reached(), 1, "calls: sb_stats says so: lmdb.map_max_reached 1");
    /* Opened again so, new calls are refused before they are tried, and
    ** sb_stats says so from the open (the daemon's /healthz reads it at
    ** its start). */
    sb_close(eng);
    ok(reopen_engine(data, (size_t)256 << 10, (size_t)512 << 10) == 0 && map_max_reached() == 1,
       "calls: opened again, lmdb.map_max_reached is 1 from the open: %s", sb_result_message(res));
    ok(ev("{\"type\":\"offer\",\"call\":\"n1\",\"queue\":\"support\",\"caller\":"
          "\"+4930100009\"}") == SB_EFULL,
       "calls: ... and a new call is refused there (SB_EFULL)");
    /* Room is made again by what deletes records: a sweep, an erasure. */
    ok(sb_erase(eng, "acme", "+49301000001", res) == 0,
       "calls: an erasure request runs with the reserve in use: %s", sb_result_message(res));
    now_ms += 2 * 86400000LL;
    rc = sb_sweep(eng, 0, NULL, NULL, res);
    ok(rc == 0 && strstr(sb_result_json(res, NULL), "\"deleted\":"),
       "calls: so does a sweep, two days on: %s", rc ? sb_result_message(res) : "ok");
    usleep(30000); /* past the 20 ms the count of pages in use is kept */
    ok(ev("{\"type\":\"offer\",\"call\":\"n0\",\"queue\":\"support\",\"caller\":"
          "\"+4930100009\"}") == 0,
       "calls: with the records deleted, a new call is taken again: %s", sb_result_message(res));
    is_int(map_max_reached(), 0, "calls: lmdb.map_max_reached is 0 again");
    sb_close(eng);
    eng = NULL;
}

/* A file size limit (RLIMIT_FSIZE, SIGXFSZ ignored: EFBIG) is a full disk
** too: SB_EFULL, not SB_ESTORE (which the daemon's /healthz did not take
** for a lack of room). In a child, which the limit would outlive. */
static int warned;

static void warned_log(void *arg, sb_log_level l, const char *line)
{
    if (strstr(line, "opened at its current size")) warned = 1;
    quiet(arg, l, line);
}

static void fsize_full(const char *base)
{
    char data[400];
    snprintf(data, sizeof data, "%s/fsize", base);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {(rlim_t)2 << 20, (rlim_t)2 << 20};
        if (setrlimit(RLIMIT_FSIZE, &rl) || open_engine(data, (size_t)256 << 10, (size_t)64 << 20))
            _exit(2);
        int count = 0, rc = 0, clean = 1;
        fill("z", 3000, &count, &rc, &clean);
        _exit(rc == SB_EFULL ? (strstr(last_msg, "free space on the disk") ? 0 : 4)
              : rc == 0      ? 3
                             : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    is_int(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0,
           "fsize: writes past the file size limit fail with SB_EFULL, saying to free space "
           "(exit 0; 1: another code, 4: no next step)");
    /* Opened again, with the default map_size (64 MiB), where the disk has
    ** no room for it: it opens at the file's size, to end the calls in
    ** progress and free space, saying so. */
    fflush(stdout);
    if ((pid = fork()) == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {(rlim_t)2 << 20, (rlim_t)2 << 20};
        if (setrlimit(RLIMIT_FSIZE, &rl)) _exit(2);
        sb_config cfg;
        sb_config_init(&cfg);
        cfg.data_dir = data; /* synced: with sync=none the file is sized to the map */
        cfg.log = warned_log;
        if (sb_open(&eng, &cfg, res)) _exit(1);
        int rc = sb_agent_get(eng, "acme", "alice", res);
        sb_close(eng);
        _exit(rc ? 3 : warned ? 0 : 4);
    }
    waitpid(pid, &st, 0);
    is_int(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0,
           "fsize: that directory, full, opens again with the default map_size, at its size, "
           "saying so (exit 0; 1: refused, 3: no read, 4: no warning)");
    /* A first open whose map does not fit: the message names map_size. */
    snprintf(data, sizeof data, "%s/fsize-open", base);
    fflush(stdout);
    if ((pid = fork()) == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {(rlim_t)1 << 20, (rlim_t)1 << 20};
        if (setrlimit(RLIMIT_FSIZE, &rl)) _exit(2);
        sb_config cfg;
        sb_config_init(&cfg);
        cfg.data_dir = data;
        cfg.log = quiet;
        cfg.map_size = (size_t)4 << 20;
        int rc = sb_open(&eng, &cfg, res);
        _exit(rc == SB_EFULL && strstr(sb_result_message(res), "cannot reserve") &&
                      strstr(sb_result_message(res), "smaller map_size")
                  ? 0
                  : 1);
    }
    waitpid(pid, &st, 0);
    is_int(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0,
           "fsize: a map that does not fit at the first open: SB_EFULL naming map_size (exit 0)");
}

/* An account made when data.keys cannot take its data key's slot (the file
** size limit, as a full disk): SB_EFULL (the daemon's 503 and /healthz
** storage_full), not SB_ESTORE, and no account. */
static void account_full(const char *base)
{
    char data[400];
    snprintf(data, sizeof data, "%s/keys", base);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        /* acme's slot (account 1) is bytes 128 to 255 of data.keys; the map,
        ** written through (sync none), is not limited by it while it does
        ** not grow. */
        struct rlimit rl = {256, 256};
        if (open_engine(data, (size_t)1 << 20, (size_t)64 << 20) || setrlimit(RLIMIT_FSIZE, &rl))
            _exit(2);
        static const char beta[] = "{\"id\":\"beta\"}";
        int rc = sb_account_put(eng, beta, strlen(beta), res);
        int said = strstr(sb_result_message(res), "storage full (data.keys could not grow)") &&
                   strstr(sb_result_message(res), "free space on the disk");
        int gone = sb_account_get(eng, "beta", res) == SB_ENOTFOUND;
        _exit(rc != SB_EFULL ? 1 : !gone ? 3 : !said ? 4 : 0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    is_int(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0,
           "account: its data key past the file size limit is SB_EFULL, saying storage is full "
           "and what to do, and no account (exit 0; 1: another code, 3: the account is there, "
           "4: the message names no cause)");
}

/* A backup whose copy of data.keys goes past the file size limit: SB_EFULL,
** as a full disk, not SB_ESTORE. data.keys is made longer than the compacted
** copy of data.mdb (accounts made and deleted leave their slots, zeroed), so
** the copy of data.mdb fits under the limit and that of data.keys does not. */
static void keys_copy_full(const char *base)
{
    char data[400], dest[450];
    snprintf(data, sizeof data, "%s/kcopy", base);
    snprintf(dest, sizeof dest, "%s/kcopy-backup", base);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        if (open_engine(data, (size_t)1 << 20, (size_t)64 << 20)) _exit(2);
        for (int i = 0; i < 1000; i++) {
            char doc[64], id[16];
            snprintf(id, sizeof id, "k%d", i);
            snprintf(doc, sizeof doc, "{\"id\":\"%s\"}", id);
            if (sb_account_put(eng, doc, strlen(doc), res) || sb_account_delete(eng, id, res))
                _exit(2);
        }
        char keys[450];
        snprintf(keys, sizeof keys, "%s/data.keys", data);
        struct stat st;
        if (stat(keys, &st)) _exit(2);
        struct rlimit rl = {(rlim_t)st.st_size - 64, (rlim_t)st.st_size - 64};
        if (setrlimit(RLIMIT_FSIZE, &rl)) _exit(2);
        int rc = sb_backup(eng, dest, res);
        const char *m = sb_result_message(res);
        _exit(rc == SB_EFULL ? 0 : rc == 0 ? 3 : strstr(m, "data.keys") ? 1 : 4);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    is_int(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0,
           "keys copy: a backup's data.keys past the file size limit is SB_EFULL (exit 0; 1: "
           "another code, 3: it fit, 4: data.mdb's copy failed first)");
}

static void tmpfs_off(const char *mnt)
{
    if (umount(mnt) != 0 && umount2(mnt, MNT_DETACH) != 0)
        diag("umount %s: %s", mnt, strerror(errno));
    rmdir(mnt);
}

static void disk_full(const char *base)
{
    char mnt[400], data[450], filler[450];
    snprintf(mnt, sizeof mnt, "%s/disk", base);
    if (tmpfs_on(mnt, "size=3m,mode=0700", "disk")) return;
    snprintf(data, sizeof data, "%s/data", mnt);
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    FILE *f = fopen(filler, "wb");
    static char mib[1 << 20];
    int wrote = f && fwrite(mib, 1, sizeof mib, f) == sizeof mib;
    if (f) fclose(f);
    if (ok(wrote && open_engine(data, (size_t)256 << 10, (size_t)64 << 20) == 0,
           "disk: engine opened on a 3 MiB tmpfs beside a 1 MiB filler")) {
        ok(ev("{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"support\",\"caller\":"
              "\"+4930100001\"}") == 0,
           "disk: a call rings");
        int count = 0, rc = 0, clean = 1;
        int n = fill("g", 20000, &count, &rc, &clean);
        is_int(rc, SB_EFULL,
               "disk: once the map cannot grow, writes fail with SB_EFULL (%d "
               "agents went in)",
               n);
        ok(strstr(last_msg, "full") && strstr(last_msg, "No space"), "disk: ... saying so: %s",
           last_msg);
        ok(clean, "disk: the failed write committed nothing and left no agent behind");
        ok(!strcmp(call_state("c1"), "ringing") && !strcmp(status_of("alice"), "reserved"),
           "disk: the call still rings alice");
        unlink(filler);
        char *doc = filler_doc("g-after", 20000);
        rc = sb_agent_put(eng, "acme", doc, strlen(doc), res);
        free(doc);
        ok(rc == 0,
           "disk: space freed on the disk, the next write grows the map and succeeds "
           "without reopening (%s)",
           rc ? sb_result_message(res) : "ok");
        ok(ev("{\"type\":\"ring_result\",\"call\":\"c1\",\"agent\":\"alice\",\"outcome\":"
              "\"answered\"}") == 0 &&
               ev("{\"type\":\"hangup\",\"call\":\"c1\"}") == 0,
           "disk: the call cycle completes");
        sb_close(eng);
        eng = NULL;
    }
    tmpfs_off(mnt);
}

/* A backup onto a disk too small for it: SB_EFULL, and nothing of it left
** behind (a retry would otherwise find the directory not empty). */
static void backup_full(const char *base)
{
    char data[450], mnt[400], dest[450];
    snprintf(data, sizeof data, "%s/bdata", base);
    snprintf(mnt, sizeof mnt, "%s/bdisk", base);
    if (tmpfs_on(mnt, "size=64k,mode=0700", "backup")) return;
    snprintf(dest, sizeof dest, "%s/copy", mnt);
    if (ok(open_engine(data, (size_t)4 << 20, 0) == 0, "backup: an engine with data")) {
        for (int i = 0; i < 40; i++) {
            char id[32];
            snprintf(id, sizeof id, "b%d", i);
            char *doc = filler_doc(id, 4000);
            if (sb_agent_put(eng, "acme", doc, strlen(doc), res))
                diag("%s", sb_result_message(res));
            free(doc);
        }
        int rc = sb_backup(eng, dest, res);
        struct stat st;
        ok(rc == SB_EFULL && stat(dest, &st) != 0,
           "backup: onto a full disk, SB_EFULL and nothing left behind (%s)",
           sb_result_message(res));
        sb_close(eng);
        eng = NULL;
    }
    tmpfs_off(mnt);
}

int main(void)
{
    char base[] = "/tmp/sb-full-XXXXXX";
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    res = sb_result_new();
    map_full(base);
    calls_end_when_full(base);
    fsize_full(base);
    account_full(base);
    keys_copy_full(base);
    disk_full(base);
    backup_full(base);
    sb_result_free(res);
    rmtree(base);
    return done_testing();
}
