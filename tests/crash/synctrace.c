/*
** synctrace.c — an LD_PRELOAD shim for sync.t: records, in order, what a
** process reads from and writes to its sockets, when it closes them, and
** every msync/fsync/fdatasync it makes (start and end), so a test can check
** that no acknowledgement leaves before the sync that makes it durable.
**
** The log (file named by $SB_SYNCTRACE) is a sequence of records: a header
** "<seq> <kind> <fd> <len>\n" then <len> bytes of data, where kind is
** R (read from a socket), W (written to a socket), C (close), S (a sync
** starts; data "tid=<thread> data=<1 if of a data.mdb, else 0>"), s (it
** returned; data "ok tid=<thread>" or "fail tid=<thread>") or P (bytes
** written to a data.mdb, by any write call; data "<offset> <length>").
** Only sockets are traced for R/W.
**
** Fault injection: with $SB_SYNCFAIL_EVERY=N, every Nth sync fails with EIO
** (without syncing), as a failing disk would — after the first
** $SB_SYNCFAIL_AFTER syncs (default 0), so a test can set up first.
**
** With $SB_SYNCFAIL_FILE=PATH, every sync fails while PATH exists.
** With $SB_SYNCFAIL_ONCE=PATH, the next sync fails if PATH exists, and
** removes it: the sync after it, whichever thread makes it, works.
** With $SB_WRITEFAIL_ONCE=PATH, the next write to a data.mdb fails with
** EIO if PATH exists, and removes it: a commit that cannot write its pages.
** $SB_SYNCFAIL_ERRNO=N: the injected failure's errno (default EIO; 28,
** ENOSPC, is a disk that filled up under the sync). With
** $SB_SYNCHOLD=PATH, a sync made by a thread other than the process's first
** (the daemon's sync thread) waits while PATH exists, having made
** "PATH.held" (removed as it goes on): a test sees the sync under way and
** what the process answers meanwhile.
**
** With $SB_REPORTHOLD=PATH, a write to an eventfd made by a thread other
** than the process's first that has made a sync (the daemon's sync thread
** reporting one done) waits while PATH exists, having made "PATH.held":
** a test sees what the process answers before it hears of the sync.
**
** With $SB_THREADFAIL=N, the Nth pthread_create fails with EAGAIN, as it
** would for a process at its limit of threads or memory.
**
** Kill points: with $SB_KILLAT=N, the Nth sync or rename(2), counted
** together, kills the process with SIGKILL before it is made: a kill -9
** at a chosen step of writing files (backup.t runs N = 1, 2, ... until the
** command gets through). $SB_STOPAT=N raises SIGTSTP there instead, as a
** Ctrl-Z at that moment would.
*/
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "interpose.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static __thread int synced_here; /* this thread has made a sync */
static void hold_on(const char *env);
static int logfd = -2;
static unsigned long seq;

static ssize_t raw_write(int fd, const void *p, size_t n)
{
    return REAL(write)(fd, p, n);
}

static int is_sock(int fd)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

static void record(char kind, int fd, const struct iovec *iov, int n, size_t len)
{
    pthread_mutex_lock(&mu);
    if (logfd == -2) {
        const char *path = getenv("SB_SYNCTRACE");
        logfd = path ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
    }
    if (logfd >= 0) {
        char head[96];
        int k = snprintf(head, sizeof head, "%lu %c %d %zu\n", ++seq, kind, fd, len);
        raw_write(logfd, head, (size_t)k);
        for (int i = 0; i < n && len; i++) {
            size_t take = iov[i].iov_len < len ? iov[i].iov_len : len;
            raw_write(logfd, iov[i].iov_base, take);
            len -= take;
        }
    }
    pthread_mutex_unlock(&mu);
}

static void data(char kind, int fd, const struct iovec *iov, int n, ssize_t done)
{
    if (done > 0 && is_sock(fd)) record(kind, fd, iov, n, (size_t)done);
}

/* done bytes written at off to fd: a P record if fd is a data file. */
static void file_write(int fd, off_t off, ssize_t done)
{
    if (done <= 0 || off < 0 || is_sock(fd) || !is_data_file(fd)) return;
    char b[64];
    struct iovec v = {b, (size_t)snprintf(b, sizeof b, "%lld %zd", (long long)off, done)};
    record('P', fd, &v, 1, v.iov_len);
}

/* SB_WRITEFAIL_ONCE: should this write to fd fail? */
static int file_write_fails(int fd)
{
    const char *once = getenv("SB_WRITEFAIL_ONCE");
    return once && !is_sock(fd) && is_data_file(fd) && unlink(once) == 0;
}

static off_t here(int fd)
{
    return is_sock(fd) ? -1 : lseek(fd, 0, SEEK_CUR);
}

ssize_t read(int fd, void *buf, size_t n)
{
    ssize_t r = REAL(read)(fd, buf, n);
    struct iovec v = {buf, n};
    data('R', fd, &v, 1, r);
    return r;
}

ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
    ssize_t r = REAL(readv)(fd, iov, cnt);
    data('R', fd, iov, cnt, r);
    return r;
}

ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    ssize_t r = REAL(recv)(fd, buf, n, flags);
    struct iovec v = {buf, n};
    if (!(flags & MSG_PEEK)) data('R', fd, &v, 1, r);
    return r;
}

/* Is fd an eventfd? */
static int is_eventfd(int fd)
{
    char path[64];
    return fd_target(fd, path, sizeof path) > 0 && strcmp(path, "anon_inode:[eventfd]") == 0;
}

ssize_t write(int fd, const void *buf, size_t n)
{
    if (synced_here && n == 8 && is_eventfd(fd)) hold_on("SB_REPORTHOLD");
    off_t off = here(fd);
    ssize_t r = refused(fd) ? -1 : REAL(write)(fd, buf, n);
    struct iovec v = {(void *)buf, n};
    data('W', fd, &v, 1, r);
    file_write(fd, off, r);
    return r;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    off_t off = here(fd);
    ssize_t r = refused(fd) ? -1 : REAL(writev)(fd, iov, cnt);
    data('W', fd, iov, cnt, r);
    file_write(fd, off, r);
    return r;
}

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    ssize_t r = REAL(send)(fd, buf, n, flags);
    struct iovec v = {(void *)buf, n};
    data('W', fd, &v, 1, r);
    return r;
}

ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
    ssize_t r = REAL(sendmsg)(fd, m, flags);
    data('W', fd, m->msg_iov, (int)m->msg_iovlen, r);
    return r;
}

int close(int fd)
{
    if (is_sock(fd)) record('C', fd, NULL, 0, 0);
    return REAL(close)(fd);
}

/* Wait while the file named by $env exists (threads other than the first). */
static void hold_on(const char *env)
{
    const char *p = getenv(env);
    if (!p || syscall(SYS_gettid) == getpid() || access(p, F_OK) != 0) return;
    char held[4096];
    snprintf(held, sizeof held, "%s.held", p);
    int fd = open(held, O_WRONLY | O_CREAT, 0600);
    if (fd >= 0) REAL(close)(fd);
    while (access(p, F_OK) == 0)
        usleep(10000);
    unlink(held);
}

/* Should this sync fail (SB_SYNCFAIL_EVERY, SB_SYNCFAIL_FILE)? Sets errno
** to the failure's (SB_SYNCFAIL_ERRNO) when it should. */
static int inject(void)
{
    static unsigned long every = (unsigned long)-1, after, n;
    const char *f = getenv("SB_SYNCFAIL_FILE"), *en = getenv("SB_SYNCFAIL_ERRNO");
    const char *once = getenv("SB_SYNCFAIL_ONCE");
    int err = en ? atoi(en) : EIO;
    /* (unlink, not access: of syncs racing for it, one fails.) */
    if ((f && access(f, F_OK) == 0) || (once && unlink(once) == 0)) {
        errno = err;
        return 1;
    }
    pthread_mutex_lock(&mu);
    if (every == (unsigned long)-1) {
        const char *e = getenv("SB_SYNCFAIL_EVERY"), *a = getenv("SB_SYNCFAIL_AFTER");
        every = e ? strtoul(e, NULL, 10) : 0;
        after = a ? strtoul(a, NULL, 10) : 0;
    }
    int fail = every && ++n > after && (n - after) % every == 0;
    pthread_mutex_unlock(&mu);
    if (fail) errno = err;
    return fail;
}

/* A count of calls and the one of them named by an environment variable
** (0: none). */
typedef struct nth {
    const char *env;
    unsigned long at, n;
    int read;
} nth;

/* Is this call the one named? */
static int nth_call(nth *x)
{
    pthread_mutex_lock(&mu);
    if (!x->read) {
        const char *k = getenv(x->env);
        x->at = k ? strtoul(k, NULL, 10) : 0;
        x->read = 1;
    }
    int hit = x->at && ++x->n == x->at;
    pthread_mutex_unlock(&mu);
    return hit;
}

/* SB_KILLAT: is this the call to die at? SB_STOPAT: to stop at? */
static void kill_point(void)
{
    static nth killat = {"SB_KILLAT", 0, 0, 0}, stopat = {"SB_STOPAT", 0, 0, 0};
    if (nth_call(&killat)) raise(SIGKILL);
    if (nth_call(&stopat)) raise(SIGTSTP);
}

int pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    static nth threadfail = {"SB_THREADFAIL", 0, 0, 0};
    return nth_call(&threadfail) ? EAGAIN : REAL(pthread_create)(th, attr, fn, arg);
}

/* SB_SYNCHOLD: the sync thread's sync waits. */
static void hold(void)
{
    synced_here = 1;
    hold_on("SB_SYNCHOLD");
}

static void sync_start(int fd)
{
    kill_point();
    hold();
    char b[64];
    struct iovec v = {b, (size_t)snprintf(b, sizeof b, "tid=%ld data=%d", (long)syscall(SYS_gettid),
                                          fd >= 0 && is_data_file(fd))};
    record('S', fd, &v, 1, v.iov_len);
}

static void sync_end(int fd, int r)
{
    char b[64];
    struct iovec v = {b, (size_t)snprintf(b, sizeof b, "%s tid=%ld", r == 0 ? "ok" : "fail",
                                          (long)syscall(SYS_gettid))};
    record('s', fd, &v, 1, v.iov_len);
}

int msync(void *addr, size_t len, int flags)
{
    sync_start(-1);
    int r = inject() ? -1 : REAL(msync)(addr, len, flags);
    int err = errno;
    sync_end(-1, r);
    errno = err;
    return r;
}

int fsync(int fd)
{
    sync_start(fd);
    int r = inject() ? -1 : REAL(fsync)(fd);
    int err = errno;
    sync_end(fd, r);
    errno = err;
    return r;
}

int fdatasync(int fd)
{
    sync_start(fd);
    int r = inject() ? -1 : REAL(fdatasync)(fd);
    int err = errno;
    sync_end(fd, r);
    errno = err;
    return r;
}

int rename(const char *from, const char *to)
{
    kill_point();
    return REAL(rename)(from, to);
}
