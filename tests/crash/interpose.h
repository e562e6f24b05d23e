/*
** interpose.h — for the crash tests that stand between a process and the
** system (synctrace.c, preloaded; test_durable.c, defining them itself):
** REAL(name), the next definition of a call, and the positioned writes,
** each reported to the includer's file_write(fd, offset, bytes written)
** (writev, which synctrace also traces for sockets, is each file's own),
** and each made only if the includer's file_write_fails(fd) says 0: else
** it fails with errno EIO, as a failing disk's write would.
*/
#ifndef SB_INTERPOSE_H
#define SB_INTERPOSE_H

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* The next definition of `name` (libc's, or a sanitizer's), looked up once. */
#define REAL(name)                                                                                 \
    ({                                                                                             \
        static __typeof__(&name) real_;                                                            \
        if (!real_) real_ = (__typeof__(&name))dlsym(RTLD_NEXT, #name);                            \
        real_;                                                                                     \
    })

/* What fd is open on, as /proc names it, into path (cap bytes): its length,
** or -1. */
static ssize_t fd_target(int fd, char *path, size_t cap)
{
    char link[48];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, cap - 1);
    if (n >= 0) path[n] = 0;
    return n;
}

/* Is fd open on a file named data.mdb (LMDB's data file)? */
static int is_data_file(int fd)
{
    char path[4096];
    ssize_t n = fd_target(fd, path, sizeof path);
    return n >= 9 && strcmp(path + n - 9, "/data.mdb") == 0;
}

static void file_write(int fd, off_t off, ssize_t done);
static int file_write_fails(int fd);

/* Is this write to fail (errno EIO), as the includer says? */
static int refused(int fd)
{
    if (!file_write_fails(fd)) return 0;
    errno = EIO;
    return 1;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    ssize_t r = refused(fd) ? -1 : REAL(pwrite)(fd, buf, n, off);
    file_write(fd, off, r);
    return r;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    ssize_t r = refused(fd) ? -1 : REAL(pwrite64)(fd, buf, n, off);
    file_write(fd, off, r);
    return r;
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    ssize_t r = refused(fd) ? -1 : REAL(pwritev)(fd, iov, cnt, off);
    file_write(fd, off, r);
    return r;
}

#endif
