/*
** test_locks.c — two engines of one process on one data directory, then
** another process. switchboard.h allows "several engines — in one process
** or many" on a data directory; LMDB's caveat is that a process must not
** open an environment twice, because POSIX record locks belong to the
** process: closing one handle's lock-file descriptor would drop the lock the
** other engine still relies on, and the next process to open the directory
** would find no lock, take itself for the only user and reset the lock file
** — the reader table and the writer mutex — under the engine still running.
** The engines of a process therefore share one environment per directory.
**
** Checked:
**  1. with one engine open, another process sees lock.mdb locked;
**  2. after a second engine of the same process opened and closed, another
**     process still sees it locked;
**  3. writers stay serialised: while engine 1 holds a write transaction (a
**     policy that runs for a second inside it), a write from another process
**     that opened the directory after step 2 must wait for it — measured as
**     "the other process's write did not finish while engine 1's transaction
**     was clearly still running";
**  4. the same with the engines closed the other way round: the first engine
**     closed, the second still holds the lock and still excludes writers;
**  5. once the last engine is closed, the lock is released.
*/
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[64] = "/tmp/sb-locks-XXXXXX";
static char data[128];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static sb_engine *open_engine(sb_result *res)
{
    sb_config cfg;
    sb_config_init(&cfg);
    cfg.data_dir = data;
    cfg.sync = SB_SYNC_NONE;
    cfg.log = quiet;
    cfg.policy_wall_ms = 5000;
    cfg.policy_instructions = (uint64_t)1 << 40;
    sb_engine *e = NULL;
    if (sb_open(&e, &cfg, res)) diag("open: %s", sb_result_message(res));
    return e;
}

/* In a child process: is byte 0 of lock.mdb locked by someone? */
static int locked_elsewhere(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        char path[200];
        snprintf(path, sizeof path, "%s/lock.mdb", data);
        int fd = open(path, O_RDWR);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
        if (fd < 0 || fcntl(fd, F_GETLK, &fl) != 0) _exit(2);
        _exit(fl.l_type == F_UNLCK ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 1;
}

/* A policy that spins for about a second inside the event's transaction. */
static const char slow_policy[] = "local P = {}\n"
                                  "function P.route(call, agents, ctx)\n"
                                  "  local x = 0\n"
                                  "  for i = 1, 1.2e8 do x = x + i end\n"
                                  "  return { reject = 'slow' }\n"
                                  "end\n"
                                  "return P\n";

typedef struct slow_arg {
    sb_engine *e;
    double start, done;
    int rc;
} slow_arg;

static void *slow_offer(void *p)
{
    slow_arg *a = p;
    sb_result *res = sb_result_new();
    static const char ev[] =
        "{\"type\":\"offer\",\"call\":\"slow\",\"queue\":\"q\",\"caller\":\"+4930100001\"}";
    a->start = now_s();
    a->rc = sb_submit_json(a->e, "acme", ev, strlen(ev), res);
    a->done = now_s();
    sb_result_free(res);
    return NULL;
}

/* Engine e holds a write transaction ~1 s; a child process opens the data
** directory and writes meanwhile. Returns 1 if the child's write finished
** while e's transaction was still running (two writers at once), 0 if it
** waited, -1 if the child failed. e's transaction ends a little before its
** sb_submit returns, so a child that waited may finish a few milliseconds
** before that: only a write finished well before it counts as overlapping. */
static int writers_overlap(sb_engine *e, double *child_done, double *parent_done, double *held)
{
    int fds[2];
    if (pipe(fds)) return -1;
    slow_arg a = {e, 0, 0, 0};
    pthread_t th;
    pthread_create(&th, NULL, slow_offer, &a);
    usleep(200000); /* e is inside its transaction now */
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        sb_result *res = sb_result_new();
        sb_engine *e3 = open_engine(res);
        static const char ag[] = "{\"id\":\"zed\",\"devices\":{\"softphone\":\"sip:z@x\"}}";
        int rc = e3 ? sb_agent_put(e3, "acme", ag, strlen(ag), res) : -1;
        double t = rc ? -1 : now_s();
        if (write(fds[1], &t, sizeof t) != sizeof t || rc) _exit(1);
        sb_close(e3);
        sb_result_free(res);
        _exit(0);
    }
    close(fds[1]);
    double t = 0;
    if (read(fds[0], &t, sizeof t) != sizeof t) t = 0;
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    pthread_join(th, NULL);
    *child_done = t;
    *parent_done = a.done;
    *held = a.rc == 0 ? a.done - a.start : -1;
    if (t <= 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return -1;
    return t < a.done - 0.2;
}

static void end_slow_call(sb_engine *e, sb_result *res)
{
    static const char ab[] = "{\"type\":\"abandon\",\"call\":\"slow\"}";
    (void)sb_submit_json(e, "acme", ab, strlen(ab), res);
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    snprintf(data, sizeof data, "%s/data", dir);
    sb_result *res = sb_result_new();
    sb_engine *e1 = open_engine(res);
    static const char q[] = "{\"id\":\"q\",\"policy\":\"slow\"}";
    if (!ok(e1 && sb_account_put(e1, "{\"id\":\"acme\"}", 13, res) == 0 &&
                sb_policy_put(e1, "acme", "slow", slow_policy, strlen(slow_policy), NULL, res) ==
                    0 &&
                sb_queue_put(e1, "acme", q, strlen(q), res) == 0,
            "engine 1 open, with a policy that holds its transaction about a second")) {
        diag("%s", sb_result_message(res));
        return done_testing();
    }
    fflush(stdout);
    ok(locked_elsewhere(), "with engine 1 open, another process sees lock.mdb locked");
    double c = 0, p = 0, held = 0;
    int ov = writers_overlap(e1, &c, &p, &held);
    ok(held > 0.5, "engine 1's event held its transaction %.2f s", held);
    ok(ov == 0, "control: another process's write waits for engine 1's transaction (%.2f s %s)",
       c > p ? c - p : p - c, c > p ? "after" : "before its sb_submit returned");
    end_slow_call(e1, res);

    sb_engine *e2 = open_engine(res);
    ok(e2 != NULL, "engine 2 of the same process opens the same data directory (allowed)");
    sb_close(e2);
    fflush(stdout);
    ok(locked_elsewhere(),
       "after engine 2 closed, another process still sees lock.mdb locked (engine 1 is open)");
    ov = writers_overlap(e1, &c, &p, &held);
    ok(ov == 0,
       "after engine 2 closed, another process's write still waits for engine 1's "
       "transaction (it finished %.2f s %s engine 1's sb_submit returned)",
       c > p ? c - p : p - c, c > p ? "after" : "before");
    end_slow_call(e1, res);

    /* The other order: the first engine closes, the second stays. */
    sb_engine *e3 = open_engine(res);
    ok(e3 != NULL, "engine 3 of the same process opens the same data directory");
    sb_close(e1);
    fflush(stdout);
    ok(e3 && locked_elsewhere(),
       "after engine 1 (the first opened) closed, another process still sees lock.mdb locked "
       "(engine 3 is open)");
    ov = e3 ? writers_overlap(e3, &c, &p, &held) : -1;
    ok(ov == 0 && held > 0.5,
       "after engine 1 closed, another process's write still waits for engine 3's "
       "transaction of %.2f s (it finished %.2f s %s engine 3's sb_submit returned)",
       held, c > p ? c - p : p - c, c > p ? "after" : "before");
    end_slow_call(e3, res);
    sb_close(e3);
    fflush(stdout);
    ok(!locked_elsewhere(), "with every engine closed, lock.mdb is no longer locked");
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
}
