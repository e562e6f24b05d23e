/*
** engine.c — opening and closing an engine, configuration defaults, the
** clock, logging and statistics.
*/
#include "engine.h"
#include "crypto.h"
#include "records.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MAP_DEFAULT ((size_t)64 << 20) /* the initial map when map_size is 0 */

void sb_config_init(sb_config *cfg)
{
    if (!cfg) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->version = SB_CONFIG_VERSION;
    cfg->sync = SB_SYNC_GROUP;
    cfg->map_size = MAP_DEFAULT;
    cfg->log_level = SB_LOG_INFO;
    cfg->policy_instructions = 1000000;
    cfg->policy_wall_ms = 50;
    cfg->policy_memory = (size_t)8 << 20;
    cfg->quarantine_after = 5;
}

static int64_t system_clock(void *arg)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The clock, log and sweep progress functions this thread is running,
** innermost first, each with the engine running it. From inside a clock or
** log function, a write on that engine's data directory (its shared
** environment, or the engine itself before it has one) is refused
** (txn_begin), as it would wait for ever for the write transaction its
** caller may hold; from inside any of them, sb_close of the engine is
** refused, as the call that ran the function goes on using the engine. */
static __thread eng_cb *cb_top;

static const void *dir_of(const sb_engine *e)
{
    return e->sh ? (const void *)e->sh : (const void *)e;
}

void eng_cb_enter(eng_cb *f, const sb_engine *e, int kind)
{
    f->e = e;
    f->kind = kind;
    f->up = cb_top;
    cb_top = f;
}

void eng_cb_leave(eng_cb *f)
{
    cb_top = f->up;
}

int eng_in_callback(const sb_engine *e)
{
    for (const eng_cb *f = cb_top; f; f = f->up)
        if (f->kind != ENG_CB_PROGRESS && dir_of(f->e) == dir_of(e)) return 1;
    return 0;
}

/* Whether this thread is inside a function e runs, or one whose writes on
** e's data directory are refused: closing e there would free what the call
** below is using, or sync and commit from inside a write transaction. */
static int in_callback_of(const sb_engine *e)
{
    for (const eng_cb *f = cb_top; f; f = f->up)
        if (f->e == e) return 1;
    return eng_in_callback(e);
}

int64_t eng_now(sb_engine *e)
{
    if (!e->cfg.clock) return system_clock(NULL);
    eng_cb f;
    eng_cb_enter(&f, e, ENG_CB_CLOCK);
    int64_t t = e->cfg.clock(e->cfg.clock_arg);
    eng_cb_leave(&f);
    /* An injected clock is read within 1970..9999, as every time the API
    ** takes is: timers and waits add to it, and a reading near 2^63 made
    ** each deadline wrap to the past (sb_tick fired for ever). */
    return t < 0 ? 0 : t > SB_CLOCK_MAX ? SB_CLOCK_MAX : t;
}

/* The time a line on stderr carries: the engine's clock, an injected one
** too (a replay or a test on a clock of its own logs the times its events
** have, the same at every run). The system time for a line logged from
** inside the engine's clock function (reading it there again could go
** round for ever), and without an engine. */
static int64_t log_time(sb_engine *e)
{
    if (!e || !e->cfg.clock) return system_clock(NULL);
    for (const eng_cb *f = cb_top; f; f = f->up)
        if (f->e == e && f->kind == ENG_CB_CLOCK) return system_clock(NULL);
    return eng_now(e);
}

static void stderr_log(int64_t ms, sb_log_level lvl, const char *line)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    struct tm tm;
    char when[32];
    int64_t s = ms / 1000, milli = ms % 1000;
    if (milli < 0) { /* before 1970: the second before, and what is past it */
        s--;
        milli += 1000;
    }
    time_t t = (time_t)s;
    if (!gmtime_r(&t, &tm) || !strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm)) {
        fprintf(stderr, "@%lldms %s %s\n", (long long)ms, names[lvl & 3], line);
        return;
    }
    fprintf(stderr, "%s.%03dZ %s %s\n", when, (int)milli, names[lvl & 3], line);
}

void logt_init(log_text *t)
{
    t->s[0] = 0;
    t->len = 0;
    t->nown = 0;
}

/* Append what one conversion wrote to t (snprintf's return r; the text is
** in t->s already, cut to fit), an own span if own. */
static void logt_took(log_text *t, int r, int own)
{
    size_t room = sizeof t->s - 1 - t->len;
    size_t n = r < 0 ? 0 : (size_t)r > room ? room : (size_t)r;
    if (own && n) {
        log_span *last = t->nown ? &t->own[t->nown - 1] : NULL;
        if (last && last->at + last->len == t->len)
            last->len += (uint32_t)n; /* "12" LOG_OWN'd piece by piece: one span */
        else if (t->nown < LOG_OWN_MAX)
            t->own[t->nown++] = (log_span){(uint32_t)t->len, (uint32_t)n};
    }
    t->len += n;
    t->s[t->len] = 0;
}

/* printf's formatting, one conversion at a time, so that what each wrote
** is known: the output of a number's conversion between LOG_OWN's marks is
** an own span; a string's or a character's never is. The conversions are
** those of the C library (with its checking at compile time through the
** format attribute), each formatted by it. */
/* An integer argument of printf's length len ("hh" "h" "" "l" "ll" "z" "j"
** "t"), read as its type and converted as printf converts it: to intmax_t
** when sgn (returned as uintmax_t), else to uintmax_t. */
static uintmax_t int_arg(va_list *args, const char *len, int sgn)
{
    switch (len[0]) {
    case 'l':
        if (len[1] == 'l')
            return sgn ? (uintmax_t)va_arg(*args, long long) : va_arg(*args, unsigned long long);
        return sgn ? (uintmax_t)va_arg(*args, long) : va_arg(*args, unsigned long);
    case 'z':
        return sgn ? (uintmax_t)va_arg(*args, ssize_t) : va_arg(*args, size_t);
    case 'j':
        return sgn ? (uintmax_t)va_arg(*args, intmax_t) : va_arg(*args, uintmax_t);
    case 't':
        return (uintmax_t)va_arg(*args, ptrdiff_t);
    default: /* int, or a char or short it was promoted from */
        if (sgn) {
            int v = va_arg(*args, int);
            if (len[0] == 'h') v = len[1] == 'h' ? (signed char)v : (short)v;
            return (uintmax_t)(intmax_t)v;
        } else {
            unsigned v = va_arg(*args, unsigned);
            if (len[0] == 'h') v = len[1] == 'h' ? (unsigned char)v : (unsigned short)v;
            return v;
        }
    }
}

/* (Each conversion's format is one of fmt's, cut out of it.) */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
void logt_vadd(log_text *t, const char *fmt, va_list ap)
{
    va_list args; /* its address for int_arg */
    va_copy(args, ap);
    int own = 0;
    for (const char *p = fmt; *p;) {
        if (*p == '\x1e' || *p == '\x1f') {
            own = *p++ == '\x1e';
            continue;
        }
        if (*p != '%') {
            size_t lit = strcspn(p, "%\x1e\x1f");
            logt_took(t, snprintf(t->s + t->len, sizeof t->s - t->len, "%.*s", (int)lit, p), own);
            p += lit;
            continue;
        }
        /* One conversion: flags, width, precision ('*' read from the
        ** arguments and written in), length, and its letter; an integer's
        ** length is written as 'j' (int_arg). */
        char spec[64];
        size_t k = 0;
        const char *q = p + 1;
        spec[k++] = '%';
        while (*q && strchr("-+ #0", *q) && k < 16)
            spec[k++] = *q++;
        for (int part = 0; part < 2; part++) {
            if (part) {
                if (*q != '.') break;
                spec[k++] = *q++;
            }
            if (*q == '*') {
                k += (size_t)snprintf(spec + k, 16, "%d", va_arg(args, int));
                q++;
            } else {
                while (*q >= '0' && *q <= '9' && k < 40)
                    spec[k++] = *q++;
            }
        }
        char len[3] = "";
        size_t ln = 0;
        while (*q && strchr("hlzjtL", *q) && ln < 2)
            len[ln++] = *q++;
        len[ln] = 0;
        char conv = *q ? *q++ : 0;
        int integer = conv && strchr("diouxX", conv);
        if (integer) {
            spec[k++] = 'j';
        } else {
            memcpy(spec + k, len, ln);
            k += ln;
        }
        spec[k++] = conv;
        spec[k] = 0;
        p = q;
        char *at = t->s + t->len;
        size_t room = sizeof t->s - t->len;
        int r = 0, num = 1;
        if (integer) {
            int sgn = conv == 'd' || conv == 'i';
            uintmax_t v = int_arg(&args, len, sgn);
            r = sgn ? snprintf(at, room, spec, (intmax_t)v) : snprintf(at, room, spec, v);
        } else if (conv && strchr("fFeEgGaA", conv)) {
            r = len[0] == 'L' ? snprintf(at, room, spec, va_arg(args, long double))
                              : snprintf(at, room, spec, va_arg(args, double));
        } else if (conv == 'c') {
            r = snprintf(at, room, spec, va_arg(args, int)), num = 0;
        } else if (conv == 's') {
            r = snprintf(at, room, spec, va_arg(args, const char *)), num = 0;
        } else if (conv == 'p') {
            r = snprintf(at, room, spec, va_arg(args, void *)), num = 0;
        } else if (conv == '%') {
            r = snprintf(at, room, "%%");
        } else { /* none the engine writes (%n among them): the rest unread */
            break;
        }
        logt_took(t, r, own && num);
    }
    va_end(args);
}

#pragma GCC diagnostic pop

void logt_append(log_text *t, const log_text *piece)
{
    size_t base = t->len;
    logt_took(t, snprintf(t->s + t->len, sizeof t->s - t->len, "%s", piece->s), 0);
    for (int i = 0; i < piece->nown && t->nown < LOG_OWN_MAX; i++) {
        size_t at = base + piece->own[i].at, end = at + piece->own[i].len;
        if (end > t->len) end = t->len;
        if (at < end) t->own[t->nown++] = (log_span){(uint32_t)at, (uint32_t)(end - at)};
    }
}

void logt_add(log_text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    logt_vadd(t, fmt, ap);
    va_end(ap);
}

/* Lines may quote what a policy wrote or returned (ctx.log, an error, an
** invalid decision) or an event's ids, any of which may be a caller's
** number: no engine log line holds one. Only the engine's own spans are
** kept as written. */
int logt_redact(const log_text *t, char *out, size_t n)
{
    return redact_numbers_own(t->s, t->own, t->nown, out, n, 1, 7);
}

void sb_log_text(sb_engine *e, sb_log_level lvl, const log_text *t)
{
    if (e && lvl > e->cfg.log_level) return;
    char clean[sizeof t->s];
    logt_redact(t, clean, sizeof clean);
    if (e && e->cfg.log) {
        eng_cb f;
        eng_cb_enter(&f, e, ENG_CB_LOG);
        e->cfg.log(e->cfg.log_arg, lvl, clean);
        eng_cb_leave(&f);
    } else {
        stderr_log(log_time(e), lvl, clean);
    }
}

void sb_log(sb_engine *e, sb_log_level lvl, const char *fmt, ...)
{
    if (e && lvl > e->cfg.log_level) return;
    log_text t;
    logt_init(&t);
    va_list ap;
    va_start(ap, fmt);
    logt_vadd(&t, fmt, ap);
    va_end(ap);
    sb_log_text(e, lvl, &t);
}

static void pol_log(void *arg, sb_log_level lvl, const log_text *line)
{
    sb_log_text(arg, lvl, line);
}

void eng_count_event(sb_engine *e, int type, int failed, uint64_t us)
{
    static const uint64_t le[LAT_BUCKETS] = {5,   10,   20,   50,   100,   200,
                                             500, 1000, 2000, 5000, 10000, 50000};
    int b = 0;
    while (b < LAT_BUCKETS && us > le[b])
        b++;
    pthread_mutex_lock(&e->stats_mu);
    if (type >= 0 && type < 7) e->st.events[type]++;
    if (failed) e->st.events[7]++;
    e->st.lat_counts[b]++;
    e->st.lat_sum_us += us;
    e->st.lat_n++;
    pthread_mutex_unlock(&e->stats_mu);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int mkdir_p(const char *path)
{
    char tmp[4096];
    if (str_copy(tmp, sizeof tmp, path)) return ENAMETOOLONG;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0700) && errno != EEXIST) return errno;
        *p = '/';
    }
    if (mkdir(tmp, 0700) && errno != EEXIST) return errno;
    return 0;
}

/* The engine writes in its data directory: LMDB's two files, and the master
** key when it is kept there and not made yet. A directory it cannot write
** in (a read-only file system, or permissions) is refused here, naming the
** directory, rather than later as a key that cannot be created or an LMDB
** error. Files already there and writable are enough when the directory
** itself is not (another user's directory shared with this one). */
static int check_writable(sb_engine *e, sb_result *res)
{
    if (access(e->data_dir, W_OK | X_OK) == 0) return 0;
    int err = errno;
    if (err != EROFS) {
        static const char *const files[] = {"data.mdb", "lock.mdb"};
        char path[4096];
        int have = 1;
        for (size_t i = 0; i < countof(files) && have; i++) {
            snprintf(path, sizeof path, "%s/%s", e->data_dir, files[i]);
            have = access(path, R_OK | W_OK) == 0;
        }
        if (have && access(e->key_file, R_OK) == 0) return 0;
    }
    return res_err(res, SB_ESTORE, "data_dir", "cannot write in the data directory %s: %s",
                   e->data_dir, strerror(err));
}

/* An existing data file keeps at least its size as the map size; its size
** (0: none yet). */
static size_t existing_size(const char *dir, size_t *map_size)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (stat(path, &st) != 0) return 0;
    if ((size_t)st.st_size > *map_size) *map_size = (size_t)st.st_size;
    return (size_t)st.st_size;
}

const char *eng_size_str(char *buf, size_t cap, size_t bytes)
{
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (u < 4 && bytes >> (10 * (u + 1))) /* the largest unit with at least 1 */
        u++;
    size_t unit = (size_t)1 << (10 * u);
    if (bytes % unit == 0)
        snprintf(buf, cap, "%zu %s", bytes / unit, units[u]);
    else
        snprintf(buf, cap, "%.1f %s", (double)bytes / (double)unit, units[u]);
    return buf;
}

/* --- the environment, shared by the engines of one process ----------------------
**
** LMDB forbids opening one environment twice in a process: its lock on
** lock.mdb is a POSIX record lock, which belongs to the process, so closing
** a second handle would drop the lock the first relies on, and the next
** process would reset the reader table and the writer mutex under it. So the
** first sb_open on a data directory opens the environment, later ones (any
** path to the same directory: it is found by device and inode) share it, and
** the last sb_close closes it. One process-wide mutex guards the list, the
** counts, and every opening and closing of an environment, so no two handles
** on one directory ever coexist, not even for a moment.
**
** What the environment fixes, every engine on it must agree with:
**  - the master key (key_file): the data keys are wrapped with it; a second
**    engine whose key differs fails with SB_EINVAL on "key_file";
**  - map_max (0 meaning 64 GiB): the map is one; a differing map_max fails
**    with SB_EINVAL on "map_max".
** map_size is the initial size of a map not yet open: later engines use the
** map as it has grown. The sync mode is each engine's: it decides when that
** engine's calls return (group commit batches the syncs of every engine on
** the environment that uses it), and each engine's sb_close syncs unless
** its mode is SB_SYNC_NONE. Policies, clock, log and budgets are per engine.
**
** Map growth (store.c) takes the environment's maplock for writing, and
** every transaction of every engine holds it for reading, so the map is
** only resized while no transaction of this process is active, as LMDB
** requires.
**
** Fork: a child never shares its parent's environments (each records the
** process that opened it); engines opened before a fork belong to the parent
** and must not be used or closed in the child, as LMDB says of its handles.
** A fork while another thread opens or closes an engine leaves the list's
** mutex usable in the child (pthread_atfork). */
typedef struct env_entry {
    eng_env sh; /* first: engines point at it */
    struct env_entry *next;
    int refs;
    pid_t pid;
    dev_t dev;
    ino_t ino;
    size_t map_max;
    char *key_file;
    uint8_t master[32];
    int rot_fd; /* lock.mdb, open while a master key rotation holds the directory
                ** (sb_master_key_rotate), else -1: closed after LMDB */
} env_entry;

static pthread_mutex_t envs_mu = PTHREAD_MUTEX_INITIALIZER;
static env_entry *envs;
static pthread_once_t envs_once = PTHREAD_ONCE_INIT;

static void envs_lock(void)
{
    pthread_mutex_lock(&envs_mu);
}

static void envs_unlock(void)
{
    pthread_mutex_unlock(&envs_mu);
}

/* In the child: the list's lock is released, and every environment on it
** is the parent's (pid 0 matches no process, even a grandchild that gets
** the opener's recycled pid). */
static void envs_child(void)
{
    for (env_entry *x = envs; x; x = x->next)
        x->pid = 0;
    envs_unlock();
}

static void envs_atfork(void)
{
    pthread_atfork(envs_lock, envs_unlock, envs_child);
}

#define MAP_MIN ((size_t)64 << 10)

/* Does the data directory hold data keys (a data.keys file with a slot)? */
static int has_data_keys(const char *data_dir)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/data.keys", data_dir);
    return stat(path, &st) == 0 && st.st_size > 0;
}

/* An errno that means no room: the disk, a quota, the file size limit. */
static int no_room(int err)
{
    return err == ENOSPC || err == EDQUOT || err == EFBIG;
}

size_t effective_map_max(const sb_config *cfg)
{
    return cfg->map_max ? cfg->map_max : ((size_t)64 << 30);
}

/* The entry of this process for the directory dir (stat st), if it is still
** that directory's environment: a directory removed and made anew may get
** the same inode, so its data file must be the one the environment has open. */
static env_entry *env_find(const char *dir, const struct stat *st)
{
    pid_t me = getpid();
    for (env_entry *x = envs; x; x = x->next) {
        if (x->pid != me || x->dev != st->st_dev || x->ino != st->st_ino) continue;
        char path[4096];
        struct stat df, of;
        int fd = -1;
        snprintf(path, sizeof path, "%s/data.mdb", dir);
        if (stat(path, &df) || mdb_env_get_fd(x->sh.env, &fd) || fstat(fd, &of)) continue;
        if (df.st_dev == of.st_dev && df.st_ino == of.st_ino) return x;
    }
    return NULL;
}

/* Open LMDB on e's data directory into x (the first engine on it). */
static int open_tables(sb_engine *e, eng_env *sh, sb_result *res);

static int env_open(env_entry *x, sb_engine *e, sb_result *res)
{
    eng_env *sh = &x->sh;
    int rc;
    if ((rc = mdb_env_create(&sh->env))) return eng_mdb_err(res, rc, "create environment");
    mdb_env_set_maxreaders(sh->env, 510);
    mdb_env_set_maxdbs(sh->env, 8);
    size_t map = e->cfg.map_size ? e->cfg.map_size : MAP_DEFAULT;
    map = (map + 4095) & ~(size_t)4095;
    size_t had = existing_size(e->data_dir, &map);
    mdb_env_set_mapsize(sh->env, map);
    /* Writes: through the map when nothing is synced (sync=none: a commit
    ** copies no pages), by pwrite at commit when syncs are wanted. Syncing a
    ** writable map is msync over the whole map, which walks every page of it
    ** and write-protects the dirty ones again (a page fault at the next
    ** write); fdatasync on a file written with pwrite flushes just the
    ** written pages. Measured here: 1 dirty page 0.47 ms against 0.06 ms,
    ** 16 pages 6.9 ms against 0.39 ms.
    **
    ** Order: when syncs are wanted, a commit syncs the pages it wrote before
    ** it writes the meta page that points at them (MDB_NOMETASYNC), and the
    ** meta page is on disk after the next sync of the file (store.c, "What
    ** is durable"). With MDB_NOSYNC a commit's pages and its meta page reach
    ** the disk in whatever order the kernel writes them back (by offset:
    ** the meta pages, at the file's start, first), so a power loss during a
    ** sync could leave a meta page pointing at pages never written: a broken
    ** tree, not just lost transactions. sync=none takes that risk (README).
    ** The first engine of a process on a directory decides for every engine
    ** sharing it. */
    unsigned flags = MDB_NOMETASYNC;
    if (e->cfg.sync == SB_SYNC_NONE) flags = MDB_WRITEMAP | MDB_NOSYNC;
    sh->ordered = e->cfg.sync != SB_SYNC_NONE;
    if ((rc = mdb_env_open(sh->env, e->data_dir, flags, 0600)))
        return res_err(res, SB_ESTORE, "data_dir", "cannot open LMDB in %s: %s%s", e->data_dir,
                       mdb_strerror(rc),
                       rc == MDB_INVALID || rc == MDB_CORRUPTED ? ": " ENG_RESTORE_HINT : "");
    MDB_envinfo info;
    mdb_env_info(sh->env, &info);
    sh->map_size = info.me_mapsize;
    MDB_stat mst;
    if (mdb_env_stat(sh->env, &mst) == 0)
        sh->psize = mst.ms_psize;
    else
        sh->zero_off = 1; /* no page size: no zeros ahead (store.c, zero_ahead) */
    /* Reserve the file's blocks for the whole map: with a writable map, a
    ** write to an unreserved block on a full disk would be SIGBUS; reserved
    ** up front, a full disk is an error here, and later at map growth. */
    int fd = -1;
    mdb_env_get_fd(sh->env, &fd);
    rc = posix_fallocate(fd, 0, (off_t)sh->map_size);
    /* Synced modes only: they write with pwrite, where a block the file
    ** lacks (a sparse copy) is an error on a full disk; a writable map
    ** (sync=none) would fault on it, and resizing one truncates the file
    ** that another process may have grown meanwhile. */
    if (rc && no_room(rc) && sh->ordered && had >= MAP_MIN && had < sh->map_size &&
        mdb_env_set_mapsize(sh->env, had) == 0 && mdb_env_info(sh->env, &info) == 0 &&
        info.me_mapsize <= had) {
        /* An existing file on a disk without room for the map asked for (it
        ** filled up): it opens as large as it is, already reserved, so that
        ** the calls in progress can end and space can be freed; the map
        ** grows once there is room. */
        char want[32], got[32];
        sb_log(e, SB_LOG_WARN,
               "%s: no room to reserve %s for data.mdb (%s): opened at its current size, %s; "
               "writes that need more fail with storage full until space is freed on its disk",
               e->data_dir, eng_size_str(want, sizeof want, sh->map_size), strerror(rc),
               eng_size_str(got, sizeof got, info.me_mapsize));
        sh->map_size = info.me_mapsize;
        rc = 0;
    }
    if (rc) {
        char sz[32];
        return res_err(res, no_room(rc) ? SB_EFULL : SB_ESTORE, "data_dir",
                       "cannot reserve %s for %s/data.mdb: %s%s",
                       eng_size_str(sz, sizeof sz, sh->map_size), e->data_dir, strerror(rc),
                       no_room(rc) ? ": free space on its disk, or set a smaller map_size (the "
                                     "map grows as it fills)"
                                   : "");
    }
    int dead = 0;
    mdb_reader_check(sh->env, &dead);
    if (dead) sb_log(e, SB_LOG_INFO, "cleared " OWN_D " stale reader slots", dead);

    /* The tables, and the schema check; st_meta_* read e->dbi. */
    eng_stops_hold();
    rc = open_tables(e, sh, res);
    eng_stops_release();
    return rc;
}

/* env_open's write transaction: the tables, and the schema check. */
static int open_tables(sb_engine *e, eng_env *sh, sb_result *res)
{
    int rc;
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(sh->env, NULL, 0, &txn))) return eng_mdb_err(res, rc, "open");
    MDB_dbi main_dbi;
    rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
    for (int i = 0; i < DB_COUNT && !rc; i++) {
        static const char *const own[DB_COUNT] = {
            [DB_TIMERS] = "timers",  [DB_RECORDS] = "records",    [DB_AGENTDOCS] = "docs",
            [DB_QUEUEDOCS] = "docs", [DB_RIDX] = "records",       [DB_RECID] = "records",
            [DB_AGGR] = "records",   [DB_REVIEW] = "retention",   [DB_JOBS] = "retention",
            [DB_AUDIT] = "audit",    [DB_ERASURES] = "retention", [DB_POLHIST] = "polhist",
            [DB_RECIDT] = "records", [DB_RIDXT] = "records"};
        sh->dbi[i] = main_dbi;
        if (own[i]) rc = mdb_dbi_open(txn, own[i], MDB_CREATE, &sh->dbi[i]);
    }
    memcpy(e->dbi, sh->dbi, sizeof e->dbi);
    uint64_t schema = 0;
    if (!rc) rc = st_meta_u64(txn, e, "schema", &schema);
    if (!rc && schema > SCHEMA_VERSION) {
        mdb_txn_abort(txn);
        return res_err(res, SB_EVERSION, "data_dir",
                       "%s was written by a newer Switchboard (format %llu, this one reads %d)",
                       e->data_dir, (unsigned long long)schema, SCHEMA_VERSION);
    }
    /* A new directory is marked now; an older one by the first write. */
    uint64_t accounts = 0;
    if (!rc && schema == 0) rc = st_meta_u64(txn, e, "next_account", &accounts);
    if (!rc && schema == 0 && accounts == 0)
        rc = st_meta_put_u64(txn, e, "schema", SCHEMA_VERSION);
    else if (!rc && schema < SCHEMA_VERSION)
        sh->schema_from = schema, sh->schema_pending = 1;
    if (!rc && !sh->schema_pending) rc = rec_old_empty(txn, e, &sh->tidx_only);
    if (rc) {
        mdb_txn_abort(txn);
        return eng_mdb_err(res, rc, "open tables");
    }
    if ((rc = mdb_txn_commit(txn))) return eng_mdb_err(res, rc, "open");
    return 0;
}

static void env_free(env_entry *x)
{
    if (x->sh.env) mdb_env_close(x->sh.env);
    if (x->rot_fd >= 0) close(x->rot_fd);
    pthread_rwlock_destroy(&x->sh.maplock);
    pthread_mutex_destroy(&x->sh.sync_mu);
    pthread_cond_destroy(&x->sh.sync_cv);
    pthread_mutex_destroy(&x->sh.fsync_mu);
    cr_wipe(x->master, sizeof x->master);
    free(x->key_file);
    free(x);
}

/* A second engine on an open environment: does it agree with it? */
static int env_agrees(env_entry *x, sb_engine *e, sb_result *res)
{
    if (effective_map_max(&e->cfg) != x->map_max) {
        char a[32], b[32];
        return res_err(res, SB_EINVAL, "map_max",
                       "%s is open in this process with map_max %s; another engine on it must "
                       "use the same (not %s)",
                       e->data_dir, eng_size_str(a, sizeof a, x->map_max),
                       eng_size_str(b, sizeof b, effective_map_max(&e->cfg)));
    }
    if (strcmp(e->key_file, x->key_file) == 0) {
        memcpy(e->master, x->master, sizeof e->master);
        return 0;
    }
    /* The same key under another name will do; a missing file will not
    ** (a new key would be made). */
    char err[256] = "";
    if (cr_master_load(e->key_file, 0, e->master, err, sizeof err) == 0 &&
        cr_equal(e->master, x->master, sizeof x->master))
        return 0;
    return res_err(res, SB_EINVAL, "key_file",
                   "%s is open in this process with the master key %s; another engine on it "
                   "must use the same key, and %s is not it%s%s",
                   e->data_dir, x->key_file, e->key_file, err[0] ? ": " : "", err);
}

/* Attach e to its data directory's environment, opening it (and loading the
** master key) if no engine of this process has it open. */
static int env_acquire(sb_engine *e, sb_result *res)
{
    pthread_once(&envs_once, envs_atfork);
    envs_lock();
    int rc = 0;
    struct stat st;
    env_entry *x = NULL;
    if (stat(e->data_dir, &st)) {
        rc =
            res_err(res, SB_ESTORE, "data_dir", "cannot open %s: %s", e->data_dir, strerror(errno));
        goto out;
    }
    if ((x = env_find(e->data_dir, &st))) {
        if (x->rot_fd >= 0) {
            rc = res_err(res, SB_EBUSY, "data_dir",
                         "the master key of %s is being rotated: open it again once that is done, "
                         "with the new key",
                         e->data_dir);
            goto out;
        }
        if ((rc = env_agrees(x, e, res))) goto out;
        x->refs++;
    } else {
        char err[256];
        if (access(e->key_file, F_OK) != 0 && has_data_keys(e->data_dir)) {
            /* Data keys without their master key: a new one would open
            ** none (and where the key file's directory is missing,
            ** creating it failed with a message about a temporary file). */
            rc = res_err(res, SB_ECRYPTO, "key_file",
                         "no master key at %s, and %s holds data keys made with one: give the "
                         "key file this data was written with (key_file); no master key was made",
                         e->key_file, e->data_dir);
            goto out;
        }
        if (cr_master_load(e->key_file, 1, e->master, err, sizeof err)) {
            /* err names the key file already ("master key PATH: why"). */
            rc = res_err(res, SB_ECRYPTO, "key_file", "%s", err);
            goto out;
        }
        if (!(x = calloc(1, sizeof *x)) || !(x->key_file = strdup(e->key_file))) {
            free(x);
            rc = res_err(res, SB_ENOMEM, NULL, "out of memory");
            goto out;
        }
        x->rot_fd = -1;
        pthread_rwlock_init(&x->sh.maplock, NULL);
        pthread_mutex_init(&x->sh.sync_mu, NULL);
        pthread_cond_init(&x->sh.sync_cv, NULL);
        pthread_mutex_init(&x->sh.fsync_mu, NULL);
        x->pid = getpid();
        x->dev = st.st_dev;
        x->ino = st.st_ino;
        x->map_max = effective_map_max(&e->cfg);
        memcpy(x->master, e->master, sizeof x->master);
        if ((rc = env_open(x, e, res))) {
            env_free(x);
            goto out;
        }
        x->refs = 1;
        x->next = envs;
        envs = x;
    }
    e->sh = &x->sh;
    e->env = x->sh.env;
    memcpy(e->dbi, x->sh.dbi, sizeof e->dbi);
out:
    envs_unlock();
    return rc;
}

/* Detach e from its environment; the last engine closes it. */
static void env_release(sb_engine *e)
{
    env_entry *x = (env_entry *)e->sh;
    if (!x) return;
    if (e->cfg.sync != SB_SYNC_NONE && sb_sync(e))
        sb_log(e, SB_LOG_ERROR, "closing: the last changes could not be synced to disk");
    envs_lock();
    if (--x->refs == 0) {
        for (env_entry **p = &envs; *p; p = &(*p)->next)
            if (*p == x) {
                *p = x->next;
                break;
            }
        env_free(x); /* closes LMDB before any other open of the directory */
    }
    envs_unlock();
    e->sh = NULL;
    e->env = NULL;
}

static unsigned forks_seen;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void forked_child(void)
{
    __atomic_add_fetch(&forks_seen, 1, __ATOMIC_RELAXED);
}

static void watch_forks(void)
{
    pthread_atfork(NULL, NULL, forked_child);
}

unsigned eng_forks(void)
{
    return __atomic_load_n(&forks_seen, __ATOMIC_RELAXED);
}

int sb_open(sb_engine **out, const sb_config *cfg, sb_result *res)
{
    res_reset(res);
    if (!out) return res_err(res, SB_EINVAL, NULL, "no output handle");
    *out = NULL;
    if (!cfg) return res_err(res, SB_EINVAL, NULL, "no config");
    if (cfg->version != SB_CONFIG_VERSION)
        return res_err(res, SB_EINVAL, "version", "config not initialised with sb_config_init");
    if (!cfg->data_dir || !*cfg->data_dir)
        return res_err(res, SB_EINVAL, "data_dir", "no data directory given");
    if (cfg->sync > SB_SYNC_DEFER)
        return res_err(res, SB_EINVAL, "sync", "unknown sync mode %d", (int)cfg->sync);
    if ((unsigned)cfg->log_level > SB_LOG_DEBUG)
        return res_err(res, SB_EINVAL, "log_level",
                       "unknown log level %u (SB_LOG_ERROR 0 to SB_LOG_DEBUG 3)",
                       (unsigned)cfg->log_level);
    /* LMDB cannot open a map smaller than a few pages of each tree. */
    if (cfg->map_size && cfg->map_size < MAP_MIN)
        return res_err(res, SB_EINVAL, "map_size",
                       "map_size must be 0 (the default, 64 MiB) or at least 64 KiB");
    if (cfg->map_max && cfg->map_max < MAP_MIN)
        return res_err(res, SB_EINVAL, "map_max",
                       "map_max must be 0 (the default, 64 GiB) or at least 64 KiB");
    if (cfg->map_max && (cfg->map_size ? cfg->map_size : MAP_DEFAULT) > cfg->map_max)
        return res_err(res, SB_EINVAL, "map_max", "map_max is below map_size%s",
                       cfg->map_size ? "" : " (64 MiB by default)");
    /* Without a map_max, map_size is bounded by its default (and a size near
    ** SIZE_MAX would wrap round when rounded up to a page). */
    if (cfg->map_size > effective_map_max(cfg))
        return res_err(res, SB_EINVAL, "map_size",
                       "map_size is above map_max (64 GiB by default): raise map_max too");
    if (cfg->erasure_journal_days > 36600)
        return res_err(res, SB_EINVAL, "erasure_journal_days",
                       "erasure_journal_days must be 0 (kept for good) to 36600, not %lu",
                       (unsigned long)cfg->erasure_journal_days);
    /* A policy directory that is not there is a typo, not a broken policy
    ** (which the engine starts with, below). */
    if (cfg->policy_dir) {
        struct stat pst;
        int bad = stat(cfg->policy_dir, &pst) ? errno : !S_ISDIR(pst.st_mode) ? ENOTDIR : 0;
        if (bad)
            return res_err(res, SB_EINVAL, "policy_dir", "policy directory %s: %s", cfg->policy_dir,
                           strerror(bad));
    }
    if (cr_init()) return res_err(res, SB_ECRYPTO, NULL, "libsodium failed to initialise");
    /* Checked with the rest of the configuration, before the data directory
    ** is made: a refused open leaves nothing behind. */
    if (cfg->require_signed_policies) {
        uint8_t pk[32];
        if (!cfg->policy_public_key ||
            cr_hex_decode(cfg->policy_public_key, strlen(cfg->policy_public_key), pk, 32))
            return res_err(res, SB_EINVAL, "policy_public_key",
                           "require_signed_policies needs policy_public_key: 64 hex characters");
    }
    json_alloc_init();

    pthread_once(&fork_once, watch_forks);
    sb_engine *e = calloc(1, sizeof *e);
    if (!e) return res_err(res, SB_ENOMEM, NULL, "out of memory");
    cr_protect(e->master, sizeof e->master);
    cr_protect(e->apisub, sizeof e->apisub);
    e->forks = eng_forks();
    e->cfg = *cfg;
    e->data_dir = strdup(cfg->data_dir);
    e->policy_dir = dup_or_null(cfg->policy_dir);
    e->pubkey = dup_or_null(cfg->policy_public_key);
    if (cfg->key_file) {
        e->key_file = strdup(cfg->key_file);
    } else if (e->data_dir) {
        size_t n = strlen(e->data_dir) + sizeof "/master.key";
        if ((e->key_file = malloc(n))) snprintf(e->key_file, n, "%s/master.key", e->data_dir);
    }
    e->cfg.data_dir = e->data_dir;
    e->cfg.policy_dir = e->policy_dir;
    e->cfg.key_file = e->key_file;
    e->cfg.policy_public_key = e->pubkey;
    pthread_mutex_init(&e->stats_mu, NULL);
    pthread_mutex_init(&e->hints_mu, NULL);
    int rc;
    if (!e->data_dir || !e->key_file) {
        rc = res_err(res, SB_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    /* A file where the directory should be: nothing in it can be made. */
    struct stat dst;
    if (stat(e->data_dir, &dst) == 0 && !S_ISDIR(dst.st_mode)) {
        rc = res_err(res, SB_EINVAL, "data_dir", "%s is not a directory", e->data_dir);
        goto fail;
    }
    if ((rc = mkdir_p(e->data_dir))) {
        rc = res_err(res, SB_ESTORE, "data_dir", "cannot create %s: %s", e->data_dir, strerror(rc));
        goto fail;
    }
    if ((rc = check_writable(e, res))) goto fail;
    /* A key file this open creates goes again when the data directory turns
    ** out to hold data keys of another master key (it could open nothing) or
    ** to have lost its data keys (restored, they need the old one). */
    int key_existed = access(e->key_file, F_OK) == 0;
    if ((rc = env_acquire(e, res)) || (rc = records_open(e, res))) {
        const char *field = sb_result_field(res);
        if (!key_existed && rc == SB_ECRYPTO && field &&
            (!strcmp(field, "key_file") || !strcmp(field, "data_dir")) && e->sh)
            unlink(e->key_file);
        goto fail;
    }
    /* A policy's top level loads under ten times the hook budget: a budget
    ** past UINT64_MAX / 10 (no limit to speak of) is taken as that. */
    if (e->cfg.policy_instructions > UINT64_MAX / 10) e->cfg.policy_instructions = UINT64_MAX / 10;
    pol_limits lim = pol_limits_of(&e->cfg);
    e->pol = pol_host_new(&lim, policies_source, e, pol_log, e);
    if (!e->pol) {
        rc = res_err(res, SB_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    e->shared_gen = UINT64_MAX; /* forces a look at the stored generation */
    e->dir_loaded = 1;
    if ((rc = rec_apikey_settle(e, res))) goto fail;
    if (e->policy_dir) {
        /* A broken policy directory must not keep the engine from starting:
        ** the versions stored by the last good load keep deciding, as after
        ** a failed reload, and the log says what is wrong. */
        int changed = 0;
        sb_result *tmp = sb_result_new();
        if (policies_reload_dir(e, tmp, &changed))
            sb_log(e, SB_LOG_ERROR, "policies in %s not loaded, the stored ones stay: %s",
                   e->policy_dir, sb_result_message(tmp));
        sb_result_free(tmp);
    }
    /* Switched on at this start, require_signed_policies stops the policies
    ** stored before it that are not signed: who names them is logged. */
    policies_report_unrun(e);
    /* Erasure requests data.mdb has not seen (restored from a backup taken
    ** before them): applied again now, before anything reads the records
    ** they erased. A failure is said and does not keep the engine from
    ** opening; the next erasure request tries again, and is refused while
    ** they cannot be. Requests whose pseudonym the journal no longer has
    ** (its horizon) never can be: that data.mdb is not opened, whoever
    ** holds the journal's lock (the check reads it without). */
    int refused;
    sb_result *tmp = sb_result_new();
    if ((rc = ret_journal_check(e, &refused, tmp)) && refused) {
        res_err(res, rc, sb_result_field(tmp), "%s", sb_result_message(tmp));
        sb_result_free(tmp);
        goto fail;
    }
    if (rc) sb_log(e, SB_LOG_ERROR, "%s", sb_result_message(tmp));
    res_reset(tmp);
    rc = 0;
    if (ret_erasures_catch_up(e, 0, tmp)) sb_log(e, SB_LOG_ERROR, "%s", sb_result_message(tmp));
    sb_result_free(tmp);
    *out = e;
    return 0;
fail:
    sb_close(e);
    return rc;
}

void sb_close(sb_engine *e)
{
    if (!e) return;
    /* In the child of a fork, the engine is the parent's copy: its locks may
    ** be held by threads that did not come along, and closing LMDB here is
    ** what LMDB forbids. Left as it is (copy-on-write memory). */
    if (eng_forked(e)) return;
    /* From inside a function the engine runs (its clock, log or a sweep's
    ** progress), the call that ran it is still using the engine: freeing
    ** it would pull everything from under that call. Refused, said in the
    ** log (once: a log function closing at every line is not asked again
    ** from inside this line). */
    if (in_callback_of(e)) {
        static __thread int refusing;
        if (!refusing) {
            refusing = 1;
            sb_log(e, SB_LOG_ERROR,
                   "sb_close: called from inside a clock, log or sweep progress function of "
                   "the engine (or of one on its data directory) while the call that ran it "
                   "still uses the engine: not closed; close it once that call has returned");
            refusing = 0;
        }
        return;
    }
    sb_batch_end(e, NULL); /* a batch left open is committed */
    ret_flush(e);          /* reads the clock, which may read the engine */
    eng_batch_free(e);
    st_cache_free(e);
    env_release(e);
    if (e->pol) pol_host_free(e->pol);
    records_close(e);
    call_free(&e->call);
    events_free(e);
    buf_free(&e->wb.b);
    buf_free(&e->wb2.b);
    pthread_mutex_destroy(&e->stats_mu);
    pthread_mutex_destroy(&e->hints_mu);
    free(e->hints);
    free(e->data_dir);
    free(e->policy_dir);
    free(e->key_file);
    free(e->pubkey);
    cr_unprotect(e->master, sizeof e->master);
    cr_unprotect(e->apisub, sizeof e->apisub);
    free(e);
}

/* The policy host's totals, read under the write lock. */
typedef struct totals_arg {
    uint64_t failures, quarantined, generation;
    size_t memory;
} totals_arg;

/* The generation too: events and reloads change it under the same lock. */
static void totals_of(sb_engine *e, void *arg)
{
    totals_arg *t = arg;
    pol_host_totals(e->pol, &t->failures, &t->quarantined, &t->memory);
    t->generation = e->shared_gen == UINT64_MAX ? 0 : e->shared_gen;
}

/* A backup's files are written under temporary names (".partial" added)
** and renamed to theirs only when both are written and synced, data.keys
** first and data.mdb last: a backup killed part-way leaves no data.mdb, so
** a backup is whole when its data.mdb is there. */
#define BACKUP_PART ".partial"

/* What an interrupted backup leaves in dest, which a new one removes: its
** files under their temporary names, and data.keys beside data.mdb.partial
** (killed between the renames). 0 if dest holds anything else. */
static int backup_leftovers(DIR *d, int *mdb_part, int *keys_part, int *keys)
{
    *mdb_part = *keys_part = *keys = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        if (!strcmp(n, ".") || !strcmp(n, ".."))
            continue;
        else if (!strcmp(n, "data.mdb" BACKUP_PART))
            *mdb_part = 1;
        else if (!strcmp(n, "data.keys" BACKUP_PART))
            *keys_part = 1;
        else if (!strcmp(n, "data.keys"))
            *keys = 1;
        else
            return 0;
    }
    return !*keys || *mdb_part;
}

/* Removes what an interrupted backup left in dest (backup_leftovers),
** unless a backup still runs there: it holds a lock on data.mdb.partial. */
static int backup_clean(sb_engine *e, const char *dest, int mdb_part, int keys_part, int keys,
                        sb_result *res)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb" BACKUP_PART, dest);
    int fd = mdb_part ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB)) {
        close(fd);
        return res_err(res, SB_EBUSY, "dest", "another backup is being written into %s", dest);
    }
    int err = mdb_part && unlink(path) ? errno : 0;
    if (fd >= 0) close(fd);
    snprintf(path, sizeof path, "%s/data.keys" BACKUP_PART, dest);
    if (keys_part && unlink(path) && !err) err = errno;
    snprintf(path, sizeof path, "%s/data.keys", dest);
    if (keys && unlink(path) && !err) err = errno;
    if (err)
        return res_err(res, SB_ESTORE, "dest",
                       "cannot remove what an interrupted backup left in %s: %s", dest,
                       strerror(err));
    sb_log(e, SB_LOG_WARN, "removed what an interrupted backup left in %s", dest);
    return 0;
}

/* 2 when dest is the data directory, 1 when it is inside it, or would be
** made inside it (through symbolic links too): the longest part of dest that
** exists, and its parents up to the root as ".." finds them. */
static int backup_in_data_dir(const sb_engine *e, const char *dest)
{
    struct stat dd, st;
    char p[4096];
    if (stat(e->data_dir, &dd) != 0 || snprintf(p, sizeof p, "%s", dest) >= (int)sizeof p) return 0;
    int whole = 1;
    while (stat(p, &st) != 0) {
        char *slash = strrchr(p, '/');
        whole = 0;
        if (!slash)
            snprintf(p, sizeof p, ".");
        else
            slash[slash == p] = 0; /* "/x": "/" */
        if (!slash || slash == p) {
            if (stat(p, &st) != 0) return 0;
            break;
        }
    }
    for (int depth = 0; depth < 512; depth++) {
        if (st.st_dev == dd.st_dev && st.st_ino == dd.st_ino) return whole && !depth ? 2 : 1;
        size_t n = strlen(p);
        struct stat up;
        if (n + 4 > sizeof p) return 0;
        memcpy(p + n, "/..", 4);
        if (stat(p, &up) != 0 || (up.st_dev == st.st_dev && up.st_ino == st.st_ino)) return 0;
        st = up;
    }
    return 0;
}

/* A backup directory: created, or an empty one given (or one holding only
** what an interrupted backup left, removed); never the data directory
** itself, nor one inside it (the backup would go with it: a lost disk, a
** restore that moves the directory aside). */
static int backup_dest(sb_engine *e, const char *dest, int *made, sb_result *res)
{
    *made = 0;
    int in = backup_in_data_dir(e, dest);
    if (in == 2) return res_err(res, SB_EINVAL, "dest", "%s is the data directory itself", dest);
    if (in)
        return res_err(res, SB_EINVAL, "dest",
                       "%s is inside the data directory %s: a backup there is lost with it "
                       "(give a directory elsewhere, on another disk at best)",
                       dest, e->data_dir);
    if (mkdir(dest, 0700) == 0) {
        *made = 1;
        return 0;
    }
    if (errno != EEXIST)
        return res_err(res, no_room(errno) ? SB_EFULL : SB_ESTORE, "dest", "cannot create %s: %s",
                       dest, strerror(errno));
    struct stat ds, dd;
    if (stat(dest, &ds) || !S_ISDIR(ds.st_mode))
        return res_err(res, SB_EINVAL, "dest", "%s is not a directory", dest);
    if (stat(e->data_dir, &dd) == 0 && ds.st_dev == dd.st_dev && ds.st_ino == dd.st_ino)
        return res_err(res, SB_EINVAL, "dest", "%s is the data directory itself", dest);
    DIR *d = opendir(dest);
    if (!d) return res_err(res, SB_EINVAL, "dest", "cannot read %s: %s", dest, strerror(errno));
    int mdb_part, keys_part, keys;
    int left = backup_leftovers(d, &mdb_part, &keys_part, &keys);
    closedir(d);
    if (!left)
        return res_err(res, SB_EEXIST, "dest",
                       "%s is not empty: a backup goes into a new or empty directory", dest);
    return mdb_part || keys_part || keys ? backup_clean(e, dest, mdb_part, keys_part, keys, res)
                                         : 0;
}

static int backup_write(sb_engine *e, const char *dest, sb_result *res);

int sb_backup(sb_engine *e, const char *dest, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    if (!dest || !*dest) return res_err(res, SB_EINVAL, "dest", "no backup directory given");
    /* The answer names it, and JSON holds UTF-8 alone: a path that is not
    ** would leave the answer empty after the backup was written. */
    if (!utf8_valid(dest))
        return res_err(res, SB_EINVAL, "dest",
                       "the backup directory's path is not UTF-8 text, which the answer naming it "
                       "must be; choose one that is");
    if (eng_forked(e)) return eng_mdb_err(res, ENG_EFORKED, "backup"); /* the copy is no txn */
    int made, rc = backup_dest(e, dest, &made, res);
    if (rc) return rc;
    rc = backup_write(e, dest, res);
    if (rc && made) rmdir(dest); /* backup_write removed its files */
    return rc;
}

/* A new file of the backup, made 0600 before the first byte goes in: no
** one else may open the copy while it is written (LMDB's own copy makes
** its file 0666 less the umask). Its fd, or -1 with res set. */
static int backup_open(const char *path, sb_result *res)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        res_err(res, no_room(errno) ? SB_EFULL : SB_ESTORE, "dest", "cannot create %s: %s", path,
                strerror(errno));
    return fd;
}

/* 0 or the errno of syncing dir's entries (the renames into it). */
static int sync_dir(const char *dir)
{
    int err = 0, fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno;
    if (fsync(fd)) err = errno;
    close(fd);
    return err;
}

/* How many times a backup copies again when accounts were deleted during
** its copy (backup_write). */
#define BACKUP_ROUNDS 5

/* The count of account deletions ever committed in the data directory. */
static int deleted_gen(sb_engine *e, uint64_t *gen)
{
    MDB_txn *txn;
    int rc = eng_read_begin(e, &txn);
    if (rc) return rc;
    rc = st_meta_u64(txn, e, "deleted_gen", gen);
    eng_read_end(e, txn);
    return rc;
}

static int backup_write(sb_engine *e, const char *dest, sb_result *res)
{
    int rc, kfd = -1, step = 0; /* 1 data.mdb.partial made, 2 data.keys.partial, 3 data.keys */
    const char *what = "data.keys";
    char mpart[4096], kpart[4096], mpath[4096], kpath[4096];
    snprintf(mpart, sizeof mpart, "%s/data.mdb" BACKUP_PART, dest);
    snprintf(kpart, sizeof kpart, "%s/data.keys" BACKUP_PART, dest);
    snprintf(mpath, sizeof mpath, "%s/data.mdb", dest);
    snprintf(kpath, sizeof kpath, "%s/data.keys", dest);
    struct stat st;
    int fd = backup_open(mpart, res);
    if (fd < 0) return sb_result_code(res);
    step = 1;
    /* Held until the end: another backup into dest does not take this one's
    ** files for an interrupted one's. */
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        rc = res_err(res, SB_EBUSY, "dest", "another backup is being written into %s", dest);
        goto fail;
    }
    /* data.mdb as one read transaction saw it, then data.keys: an account
    ** deleted in between (here or by another process) has its slot wiped
    ** after its deletion commits, so the copy of data.keys would lack the
    ** key of an account the snapshot still holds, and the backup would not
    ** open. Each deletion moves deleted_gen in its transaction, before the
    ** wipe: when it moved across the two copies, both are taken again. */
    for (int round = 1;; round++) {
        uint64_t gen0, gen1;
        if ((rc = deleted_gen(e, &gen0))) {
            rc = eng_mdb_err(res, rc, "backup: read the data directory");
            goto fail;
        }
        if (round > 1 && (ftruncate(fd, 0) || lseek(fd, 0, SEEK_SET) < 0)) {
            rc = errno;
            goto fail_copy;
        }
        /* One read transaction's snapshot, written page by page without the
        ** free ones: old versions of changed or deleted data stay behind. */
        eng_batch_settle(e); /* the copy takes a transaction of its own */
        rc = mdb_env_copyfd2(e->env, fd, MDB_CP_COMPACT);
        if (!rc && fsync(fd)) rc = errno;
        if (!rc && fstat(fd, &st)) rc = errno;
        if (rc) goto fail_copy;
        if ((kfd = backup_open(kpart, res)) < 0) {
            rc = sb_result_code(res);
            goto fail;
        }
        step = 2;
        if ((rc = rec_keys_copy(e, kfd, kpart, res))) goto fail; /* it closes kfd */
        if ((rc = deleted_gen(e, &gen1))) {
            rc = eng_mdb_err(res, rc, "backup: read the data directory");
            goto fail;
        }
        if (gen1 == gen0) break;
        unlink(kpart);
        step = 1;
        if (round == BACKUP_ROUNDS) {
            rc = res_err(res, SB_EBUSY, NULL,
                         "accounts were deleted while each of %d copies was taken: run the "
                         "backup again",
                         BACKUP_ROUNDS);
            goto fail;
        }
        sb_log(e, SB_LOG_INFO, "backup: an account was deleted during the copy; copying again");
    }
    /* data.keys in place (and so on the disk) before data.mdb: a directory
    ** with data.mdb holds a whole backup, even after a power loss. */
    if (rename(kpart, kpath)) goto fail_errno;
    step = 3;
    if ((rc = sync_dir(dest))) goto fail_sync;
    what = "data.mdb";
    if (rename(mpart, mpath)) goto fail_errno;
    step = 4;
    if ((rc = sync_dir(dest))) goto fail_sync;
    close(fd);
    char sz[32];
    sb_log(e, SB_LOG_INFO, "backup written to %s (%s)", dest,
           eng_size_str(sz, sizeof sz, (size_t)st.st_size));
    res_doc(res,
            json_pack("{s:s, s:I, s:s}", "dir", dest, "bytes", (json_int_t)st.st_size, "master_key",
                      "not copied: the backup opens only with this data directory's "
                      "master key, kept apart from it"));
    return 0;
fail_copy:
    rc = res_err(res, no_room(rc) ? SB_EFULL : SB_ESTORE, "dest", "cannot write the copy in %s: %s",
                 dest, mdb_strerror(rc));
    goto fail;
fail_errno:
    rc = res_err(res, SB_ESTORE, "dest", "cannot put %s in place in %s: %s", what, dest,
                 strerror(errno));
    goto fail;
fail_sync:
    rc = res_err(res, no_room(rc) ? SB_EFULL : SB_ESTORE, "dest", "cannot sync %s: %s", dest,
                 strerror(rc));
fail:
    /* Nothing of a failed backup is left, for a retry to trip over or to be
    ** taken for a whole one. */
    if (step >= 4) unlink(mpath);
    if (step >= 3) unlink(kpath);
    if (step == 2) unlink(kpart);
    if (step < 4) unlink(mpart);
    close(fd);
    return rc;
}

int sb_stats(sb_engine *e, sb_result *res)
{
    static const int le[LAT_BUCKETS] = {5,   10,   20,   50,   100,   200,
                                        500, 1000, 2000, 5000, 10000, 50000};
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    eng_stats s;
    pthread_mutex_lock(&e->stats_mu);
    s = e->st;
    pthread_mutex_unlock(&e->stats_mu);
    totals_arg tot = {0, 0, 0, 0};
    int rc = eng_write_locked(e, totals_of, &tot);
    if (rc) return eng_mdb_err(res, rc, "read statistics");
    uint64_t failures = tot.failures, quarantined = tot.quarantined;
    size_t polmem = tot.memory;
    MDB_envinfo info;
    MDB_stat mst;
    mdb_env_info(e->env, &info);
    mdb_env_stat(e->env, &mst);
    /* In use: what past_max weighs against map_max, so what an alert on it
    ** should watch; it goes down as records go. The high-water mark, the
    ** map up to its last page used, never does (LMDB reuses free pages
    ** below it, and never gives them back). */
    uint64_t high = (info.me_last_pgno + 1) * (uint64_t)mst.ms_psize;
    int64_t used = eng_map_in_use(e, 0);
    /* New calls and documents refused for want of room below map_max, by
    ** the rule writes are refused by, on the count just taken. */
    int reached = eng_map_max_reached(e, INT64_MAX);
    if (used < 0 || (uint64_t)used > high) used = (int64_t)high;
    json_t *lat_le = json_array(), *lat_n = json_array();
    for (int i = 0; i < LAT_BUCKETS; i++) {
        json_array_append_new(lat_le, json_integer(le[i]));
        json_array_append_new(lat_n, json_integer((json_int_t)s.lat_counts[i]));
    }
    json_array_append_new(lat_n, json_integer((json_int_t)s.lat_counts[LAT_BUCKETS]));
    json_t *o = json_pack(
        "{s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I},"
        " s:{s:I,s:I,s:I,s:I,s:I},"
        " s:{s:I,s:I,s:I,s:I,s:I,s:i},"
        " s:{s:o,s:o,s:I,s:I},"
        " s:{s:I,s:I,s:I,s:i,s:i,s:i}}",
        "events", "offer", (json_int_t)s.events[SB_EV_OFFER], "ring_result",
        (json_int_t)s.events[SB_EV_RING_RESULT], "hangup", (json_int_t)s.events[SB_EV_HANGUP],
        "abandon", (json_int_t)s.events[SB_EV_ABANDON], "transfer",
        (json_int_t)s.events[SB_EV_TRANSFER], "agent_status",
        (json_int_t)s.events[SB_EV_AGENT_STATUS], "tick", (json_int_t)s.events[0], "errors",
        (json_int_t)s.events[7], "decisions", "ring", (json_int_t)s.dec_ring, "wait",
        (json_int_t)s.dec_wait, "move", (json_int_t)s.dec_move, "reject", (json_int_t)s.dec_reject,
        "fallback", (json_int_t)s.dec_fallback, "policy", "failures", (json_int_t)failures,
        "quarantined", (json_int_t)quarantined, "reloads", (json_int_t)s.reloads, "generation",
        (json_int_t)tot.generation, "memory_bytes", (json_int_t)polmem, "dir_loaded",
        __atomic_load_n(&e->dir_loaded, __ATOMIC_RELAXED), "latency_us", "le", lat_le, "counts",
        lat_n, "sum", (json_int_t)s.lat_sum_us, "count", (json_int_t)s.lat_n, "lmdb", "map_size",
        (json_int_t)info.me_mapsize, "used_bytes", (json_int_t)used, "high_water_bytes",
        (json_int_t)high, "readers", (int)info.me_numreaders, "max_readers",
        (int)info.me_maxreaders, "map_max_reached", reached);
    res_doc(res, o);
    return 0;
}

/* --- rotating the master key ---------------------------------------------- */

/* Hold e's data directory alone, or say who else has it open.
**
** Every process with an LMDB environment open on a directory holds a shared
** record lock (fcntl) on byte 0 of its lock.mdb for as long as it is open:
** mdb_env_open takes it (exclusively for a moment when it is the first),
** mdb_env_close drops it, and the kernel drops it with a process that dies.
** So it covers the daemon (which also holds serve.lock), every program
** embedding the library, and other `switchboard` commands, of this version
** or any before, without a lock of Switchboard's own. This process holds it
** shared through e; it is made exclusive, which succeeds only when no other
** process holds it, and then keeps any other process's open waiting (LMDB
** waits for its shared lock) until the rotation ends; that open then finds
** the new data keys, and with the old key it is refused ("not the one").
** Within this process, e must be the only engine on the environment, and no
** other is let on while the rotation runs (env_acquire).
**
** The lock is taken through a descriptor of its own (record locks are the
** process's, whatever descriptor takes them), kept open until LMDB is
** closed (env_free): closing it would drop LMDB's shared lock too. */
static int hold_alone(sb_engine *e, sb_result *res)
{
    env_entry *x = (env_entry *)e->sh;
    char path[4096];
    snprintf(path, sizeof path, "%s/lock.mdb", e->data_dir);
    envs_lock();
    int refs = x->refs, fd = refs == 1 ? open(path, O_RDWR | O_CLOEXEC) : -1, err = errno;
    if (fd >= 0) x->rot_fd = fd;
    envs_unlock();
    if (refs != 1)
        return res_err(res, SB_EBUSY, "data_dir",
                       "%s is open in this process by another engine: close it first (nothing was "
                       "changed)",
                       e->data_dir);
    if (fd < 0)
        return res_err(res, SB_ESTORE, "data_dir", "cannot open %s: %s", path, strerror(err));
    struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    int rc;
    while ((rc = fcntl(fd, F_SETLK, &l)) && errno == EINTR)
        ;
    if (!rc) return 0;
    err = errno;
    struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    long pid = fcntl(fd, F_GETLK, &q) == 0 && q.l_type != F_UNLCK ? (long)q.l_pid : 0;
    if (err != EAGAIN && err != EACCES)
        return res_err(res, SB_ESTORE, "data_dir", "cannot lock %s: %s", path, strerror(err));
    char who[48] = "";
    if (pid > 0) snprintf(who, sizeof who, " (pid %ld, and maybe others)", pid);
    return res_err(res, SB_EBUSY, "data_dir",
                   "%s is open in another process%s: stop every process using it (the daemon, "
                   "programs embedding the library, other switchboard commands) and rotate "
                   "again; nothing was changed",
                   e->data_dir, who);
}

/* Let the processes waiting to open the directory in: the lock made shared
** again before LMDB closes, so that one waiting takes it shared at once and
** the close does not take itself for the last user of lock.mdb. */
static void let_others_in(sb_engine *e)
{
    env_entry *x = (env_entry *)e->sh;
    struct flock l = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    if (x && x->rot_fd >= 0)
        while (fcntl(x->rot_fd, F_SETLK, &l) && errno == EINTR)
            ;
}

/* Give the file at path (not through a symbolic link) the owner and group
** of was when run as root: 0 or an errno. */
static int key_owner(const char *path, const struct stat *was)
{
    if (geteuid() != 0) return 0;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno;
    int err = file_own_like(fd, was, 0);
    close(fd);
    return err;
}

/* The name, when path is (or would be) one of the files data_dir holds for
** the engine or the daemon, else NULL. A key there would be lost: the
** rotation removes data.keys.rotate before writing it and renames it over
** data.keys, a prune of the erasure journal replaces erasures.journal.new,
** and the daemon would take a key in admin.token for its token. */
static const char *dir_file_named(const char *data_dir, const char *path)
{
    static const char *const names[] = {"data.mdb",         "lock.mdb",
                                        "data.keys",        "data.keys.rotate",
                                        "erasures.journal", "erasures.journal.new",
                                        "serve.lock",       "admin.token"};
    char buf[4096], *slash;
    struct stat d, p;
    /* Through symbolic links: the file it names when it is there, else the
    ** directory it would be made in. */
    if (!realpath(path, buf) && snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return NULL;
    const char *base = (slash = strrchr(buf, '/')) ? slash + 1 : buf;
    const char *name = NULL;
    for (size_t i = 0; i < countof(names) && !name; i++)
        if (!strcmp(base, names[i])) name = names[i];
    if (!name) return NULL;
    if (slash == buf)
        slash[1] = 0;
    else if (slash)
        *slash = 0;
    else
        snprintf(buf, sizeof buf, ".");
    return stat(buf, &p) == 0 && stat(data_dir, &d) == 0 && p.st_dev == d.st_dev &&
                   p.st_ino == d.st_ino
               ? name
               : NULL;
}

/* The rotation's first write: the check value of the API-key hashing
** subkey (records.c, apisub_check), which also marks the directory's
** format as any write does. */
static int mark_rotated(wtx *t, void *arg)
{
    (void)arg;
    return rec_apikey_mark(t);
}

/* What a rotation does, in the order that makes a crash at any point leave
** a directory that opens with the old key or the new one, both kept:
**   1. checks: the directory and its key, the new key file (an existing one
**      must be a valid key other than the old), the old key opening every
**      account's data key (sb_open, then rec_keys_rotate), the directory
**      held alone (hold_alone); then data.mdb marked with the check value
**      of the API-key hashing subkey, which the rotation does not change
**      (mark_rotated: an open refuses a data.keys that lost slot 0 after
**      it), and so with this version's format, which an earlier version
**      refuses;
**   2. the new key file, when it is not there, made and synced (cr_master_load
**      creates it as every key: 0600, synced, published by link) — a crash
**      from here to 4 leaves a key nothing uses yet, and the old key opens;
**   3. data.keys written again under a temporary name (data.keys.rotate), every
**      data key and the API-key hashing subkey wrapped under the new key with
**      its check value, and synced;
**   4. renamed over data.keys, then the directory synced: the rename is the
**      one moment the directory changes keys, since the check values (records.c,
**      master_check) and the API-key subkey live in data.keys with the data
**      keys. Before it the old key opens, after it the new one (a power loss
**      before the directory sync may bring back either: both keys are kept).
** The old key file is not touched: backups made before the rotation need it,
** and so would the directory, should step 4 not have reached the disk. A
** data.keys.rotate left by a crash is removed by the next open (records_open:
** it would keep the data keys an account deletion wipes) or rotation. */
int sb_master_key_rotate(const sb_config *cfg, const char *new_key_file, sb_result *res)
{
    res_reset(res);
    if (!cfg) return res_err(res, SB_EINVAL, NULL, "no config");
    if (cfg->version != SB_CONFIG_VERSION)
        return res_err(res, SB_EINVAL, "version", "config not initialised with sb_config_init");
    if (!cfg->data_dir || !*cfg->data_dir)
        return res_err(res, SB_EINVAL, "data_dir", "no data directory given");
    if (!new_key_file || !*new_key_file)
        return res_err(res, SB_EINVAL, "new_key_file", "no new key file given");
    /* As sb_backup's dest: the answer names it, for the opens after it. */
    if (!utf8_valid(new_key_file))
        return res_err(res, SB_EINVAL, "new_key_file",
                       "the new key file's path is not UTF-8 text, which the answer naming it "
                       "must be; choose one that is");
    if (cr_init()) return res_err(res, SB_ECRYPTO, NULL, "libsodium failed to initialise");
    char old[4096], path[4096], tmp[4096], err[256] = "";
    snprintf(old, sizeof old, "%s%s", cfg->key_file ? cfg->key_file : cfg->data_dir,
             cfg->key_file ? "" : "/master.key");
    snprintf(path, sizeof path, "%s/data.mdb", cfg->data_dir);
    /* Nothing made here: sb_open would make a directory and a key. */
    if (access(path, F_OK))
        return res_err(res, SB_EINVAL, "data_dir",
                       "%s holds no data (no data.mdb): nothing to rotate", cfg->data_dir);
    if (access(old, F_OK))
        return res_err(res, SB_EINVAL, "key_file",
                       "no master key at %s: give the key file this data directory was written "
                       "with (key_file); nothing was changed",
                       old);
    struct stat so, sn;
    int exists = stat(new_key_file, &sn) == 0, serr = errno;
    if (!exists && serr != ENOENT)
        return res_err(res, SB_EINVAL, "new_key_file", "new master key %s: %s", new_key_file,
                       strerror(serr));
    if (exists && stat(old, &so) == 0 && so.st_dev == sn.st_dev && so.st_ino == sn.st_ino)
        return res_err(res, SB_EINVAL, "new_key_file",
                       "%s is the key file in use: give a new file for the new key (it is made "
                       "when it is not there)",
                       new_key_file);
    const char *own = dir_file_named(cfg->data_dir, new_key_file);
    if (own)
        return res_err(res, SB_EINVAL, "new_key_file",
                       "%s is the data directory's own %s, which the engine writes, replaces or "
                       "removes: give a file of another name (or elsewhere) for the new key; "
                       "nothing was changed",
                       new_key_file, own);
    uint8_t newkey[32];
    cr_protect(newkey, sizeof newkey);
    int rc = 0, made = 0, accounts = 0, dropped = 0;
    sb_engine *e = NULL;
    if (exists && cr_master_load(new_key_file, 0, newkey, err, sizeof err)) {
        rc = res_err(res, SB_EINVAL, "new_key_file", "new %s; nothing was changed", err);
        goto out;
    }
    sb_config c = *cfg;
    c.policy_dir = NULL; /* the policies play no part, and are not loaded into the data */
    if ((rc = sb_open(&e, &c, res)) || (rc = hold_alone(e, res))) goto out;
    if (exists && cr_equal(newkey, e->master, sizeof newkey)) {
        rc = res_err(res, SB_EINVAL, "new_key_file",
                     "%s holds the master key in use: a rotation needs another key; nothing was "
                     "changed",
                     new_key_file);
        goto out;
    }
    /* This version's format mark, as at any write (store.c, schema_settle):
    ** an earlier version knows nothing of slot 0, and would open the rotated
    ** directory with the new key, refuse every API key made before and make
    ** ones this version refuses. Before anything else is written. */
    if ((rc = eng_write(e, mark_rotated, NULL, res))) goto out;
    if (!exists) {
        if (cr_master_load(new_key_file, 1, newkey, err, sizeof err)) {
            rc = res_err(res, SB_ECRYPTO, "new_key_file", "new %s; nothing was changed", err);
            goto out;
        }
        made = 1;
        /* Run as root for a daemon of another user: the new key is that
        ** user's, as the old one was, or the daemon could not read it. */
        if (stat(old, &so) == 0 && (rc = key_owner(new_key_file, &so))) {
            rc = res_err(res, SB_ESTORE, "new_key_file",
                         "cannot give %s the owner of %s (uid %u, gid %u): %s; nothing was changed",
                         new_key_file, old, (unsigned)so.st_uid, (unsigned)so.st_gid, strerror(rc));
            unlink(new_key_file);
            goto out;
        }
    }
    snprintf(tmp, sizeof tmp, "%s/data.keys.rotate", cfg->data_dir);
    snprintf(path, sizeof path, "%s/data.keys", cfg->data_dir);
    unlink(tmp); /* a crashed rotation's: the directory is held alone */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = res_err(res, no_room(errno) ? SB_EFULL : SB_ESTORE, "data_dir", "cannot create %s: %s",
                     tmp, strerror(errno));
        goto undo;
    }
    /* The new data.keys gets the old one's group and mode, and its owner
    ** when run as root (as the erasure journal's copy does, journal.c): a
    ** data.keys of root's, or of another user's group, would keep the
    ** daemon's user from opening the directory. */
    struct stat sk;
    if ((rc = stat(path, &sk) ? errno : file_own_like(fd, &sk, 1))) {
        rc = res_err(res, SB_ESTORE, "data_dir",
                     "cannot give %s the owner and mode of %s: %s; nothing was changed", tmp, path,
                     strerror(rc));
        close(fd);
        goto undo;
    }
    if ((rc = rec_keys_rotate(e, newkey, fd, tmp, &accounts, &dropped, res))) goto undo;
    if (rename(tmp, path)) {
        rc = res_err(res, SB_ESTORE, "data_dir", "cannot put %s in place: %s; nothing was changed",
                     tmp, strerror(errno));
        goto undo;
    }
    if ((rc = sync_dir(cfg->data_dir))) {
        rc = res_err(res, no_room(rc) ? SB_EFULL : SB_ESTORE, "data_dir",
                     "the data keys of %s are wrapped under %s now, but the directory could not be "
                     "synced (%s): until it is, a power loss may bring back the old ones; keep "
                     "both keys",
                     cfg->data_dir, new_key_file, strerror(rc));
        goto out;
    }
    sb_log(e, SB_LOG_INFO,
           "master key rotated: the data keys of " OWN_D
           " accounts in %s are wrapped under %s now%s",
           accounts, cfg->data_dir, new_key_file, made ? " (made)" : "");
    /* The directory and the old key's file as they were given, but for
    ** bytes that are not UTF-8 ('?' each): the answer only shows them. */
    char shown_dir[4096];
    snprintf(shown_dir, sizeof shown_dir, "%s", cfg->data_dir);
    utf8_clean(shown_dir);
    utf8_clean(old);
    res_doc(res, json_pack("{s:s, s:s, s:s, s:b, s:i, s:i, s:s}", "data_dir", shown_dir, "key_file",
                           new_key_file, "old_key_file", old, "new_key_made", made, "accounts",
                           accounts, "slots_dropped", dropped, "backups",
                           "backups made before the rotation open only with the old key"));
    goto out;
undo:
    unlink(tmp);
    if (made) unlink(new_key_file); /* nothing was wrapped under it */
out:
    if (e) let_others_in(e);
    sb_close(e);
    cr_unprotect(newkey, sizeof newkey);
    return rc;
}
