/*
** restorekit.h — what the tests of a restore share (test_erasure_journal,
** test_deletion_journal): an engine that keeps its log lines, the restore
** switchboard(1) gives, the erasure journal's file. Include after reckit.h.
*/
#ifndef SB_RESTOREKIT_H
#define SB_RESTOREKIT_H

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

static sb_engine *open_logged(void)
{
    sb_config cfg;
    test_engine_config(&cfg, dir, "policies", RECKIT_MAP_SIZE);
    cfg.log = log_keep;
    log_clear();
    return test_open(&cfg, res);
}

static __attribute__((unused)) int reopen(void)
{
    sb_close(eng);
    eng = open_logged();
    return eng ? 0 : -1;
}

/* Records of number in the account (an access request), -1 on failure. */
static long long records_of(const char *acct, const char *number)
{
    json_t *d = doc(sb_records_export(eng, acct, number, SB_EXPORT_JSON, res));
    long long n = d ? (long long)json_array_size(json_object_get(d, "records")) : -1;
    json_decref(d);
    return n;
}

static int copy_file(const char *from, const char *to)
{
    size_t n;
    unsigned char *b = slurp(from, &n);
    if (!b) return -1;
    int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int rc = fd >= 0 && write(fd, b, n) == (ssize_t)n ? 0 : -1;
    if (fd >= 0) close(fd);
    free(b);
    return rc;
}

/* The restore switchboard(1) gives: the engine closed, the backup's two
** files in place. */
static int restore_files(const char *bk)
{
    char from[600], to[600];
    sb_close(eng);
    eng = NULL;
    int rc = 0;
    for (int i = 0; i < 2 && !rc; i++) {
        const char *f = i ? "data.keys" : "data.mdb";
        snprintf(from, sizeof from, "%s/%s", bk, f);
        snprintf(to, sizeof to, "%s/%s", dir, f);
        rc = copy_file(from, to);
    }
    return rc;
}

/* ... and the directory opened again. */
static __attribute__((unused)) int restore(const char *bk)
{
    int rc = restore_files(bk);
    eng = open_logged();
    return rc || !eng ? -1 : 0;
}

/* n calls of `number` to acme's support queue, each abandoned 2 s in. */
static __attribute__((unused)) void calls_from(const char *prefix, const char *number, int n)
{
    char id[64], json[256];
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "%s%d", prefix, i);
        snprintf(json, sizeof json,
                 "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"support\",\"caller\":\"%s\"}", id,
                 number);
        ev("acme", json);
        now_ms += 2000;
        finish("acme", id, NULL); /* abandoned: no agent to wait for */
    }
}

static char jpath[600];

static __attribute__((unused)) size_t journal_size(void)
{
    struct stat st;
    return stat(jpath, &st) == 0 ? (size_t)st.st_size : 0;
}

/* Writes past `bytes` of a file fail from now as on a full disk (EFBIG,
** SIGXFSZ ignored), until setrlimit(RLIMIT_FSIZE, old). */
static __attribute__((unused)) void fsize_limit(size_t bytes, struct rlimit *old)
{
    struct rlimit lim;
    getrlimit(RLIMIT_FSIZE, old);
    lim = *old;
    lim.rlim_cur = bytes;
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
}

#endif
