/*
** journal.c — the erasure journal: every erasure request and every account
** deletion, kept in the data directory outside LMDB (erasures.journal), so
** that a data.mdb restored from a backup taken before one has it applied
** again when the directory next opens (retention.c, ret_erasures_catch_up).
**
** One a line, numbered from 1 in the order they were made, both kinds in
** one sequence:
**
**   e <seq> <account number> <account id> <pseudonym, 32 hex> <received ms> <check>
**   d <seq> <account number> <account id> <created ms> <deleted ms> <check>
**   x <seq> <account number> <account id> <received ms> <check>
**
** No number: the pseudonym, keyed with the account's data key, is what the
** records' index holds. A deletion names the account by its id, its
** internal number and when it was created: an account made again under the
** same id after it (a later line) is another, and is not deleted by it.
** Nothing personal is in either. <check> is 16 hex digits of an FNV-1a hash of the
** line before it: a line torn by a crash (or a full disk) mid-append, and
** whatever follows it, is not an entry, and the next append writes over it.
** Lines starting with '#' are notes for whoever opens the file. data.mdb
** keeps the number of the last request it has seen (meta "erasure_seq"), so
** a restored one is behind the journal by the requests since its backup.
** Appends and catching up hold an exclusive flock on the file, across the
** processes sharing the directory.
**
** The journal's horizon (sb_config.erasure_journal_days): a pseudonym kept
** for good would let whoever holds the directory and its master key find,
** by hashing every number, who asked to be erased. So the sweeps take the
** pseudonym out of each erasure request received before the horizon that
** data.mdb has applied (ejr_prune; when two sweeps a day apart agree on it:
** retention.c, horizon_sighting): its 'e' line becomes an 'x' line, the
** request's number in the sequence, its account and when it was received.
** A data.mdb restored from before such a request cannot have it applied
** again; sb_open refuses one that has its account as it was then
** (retention.c, ret_journal_check). The copy is renamed over the file; a
** process that was waiting for the old file's lock finds its name now
** names another and opens that one.
*/
#include "engine.h"
#include "records.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static const char head[] = "# Switchboard erasure journal: one erasure request (e, by the "
                           "number's pseudonym: no number; x, its pseudonym taken out at the "
                           "horizon) or account deletion (d) a line.\n"
                           "# Keep it in the data directory: a restore replaces data.mdb and "
                           "data.keys, never this file.\n";

static uint64_t fnv(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
    return h;
}

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One line (without its '\n') as an entry: 0, or -1 if it is none. */
static int parse_line(const char *p, size_t n, ejr_entry *x)
{
    char line[512];
    if (n < 20 || n >= sizeof line) return -1;
    memcpy(line, p, n);
    line[n] = 0;
    char *sp = strrchr(line, ' ');
    if (!sp || strlen(sp + 1) != 16) return -1;
    char want[17];
    snprintf(want, sizeof want, "%016" PRIx64, fnv(line, (size_t)(sp - line)));
    if (memcmp(sp + 1, want, 16)) return -1;
    *sp = 0;
    char account[SB_ID_MAX + 2], hex[40];
    unsigned long long seq, acct;
    long long received, created = 0;
    memset(x, 0, sizeof *x);
    if (line[0] == EJR_PRUNED) {
        char end;
        if (sscanf(line, "x %llu %llu %129s %lld%c", &seq, &acct, account, &received, &end) != 4)
            return -1;
    } else if (line[0] == EJR_DELETION) {
        if (sscanf(line, "d %llu %llu %129s %lld %lld", &seq, &acct, account, &created,
                   &received) != 5)
            return -1;
    } else if (sscanf(line, "e %llu %llu %129s %39s %lld", &seq, &acct, account, hex, &received) !=
                   5 ||
               strlen(hex) != 32) {
        return -1;
    } else {
        for (int i = 0; i < 16; i++) {
            int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
            if (hi < 0 || lo < 0) return -1;
            x->pseudo[i] = (uint8_t)(hi << 4 | lo);
        }
    }
    if (!seq || acct > UINT32_MAX || !id_valid(account)) return -1;
    x->kind = line[0];
    x->created = created;
    x->seq = seq;
    x->acct = (uint32_t)acct;
    snprintf(x->account, sizeof x->account, "%s", account);
    x->received = received;
    return 0;
}

/* The first n bytes of fd into buf: 0, or the errno. */
static int read_all(int fd, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return r < 0 ? errno : EIO;
        got += (size_t)r;
    }
    return 0;
}

static int journal_err(sb_result *res, int err, const char *what, const char *path)
{
    int full = err == ENOSPC || err == EDQUOT || err == EFBIG;
    return res_err(res, full ? SB_EFULL : SB_ESTORE, "data_dir",
                   "cannot %s the erasure journal %s: %s%s", what, path, strerror(err),
                   full ? ": free space on its disk" : "");
}

void ejr_close(ejr *j)
{
    if (j->fd >= 0) close(j->fd); /* and the lock with it */
    j->fd = -1;
    free(j->v);
    j->v = NULL;
    j->n = j->cap = 0;
}

int ejr_open(sb_engine *e, int flags, ejr *j, sb_result *res)
{
    int create = flags & EJR_CREATE;
    memset(j, 0, sizeof *j);
    j->fd = -1;
    snprintf(j->path, sizeof j->path, "%s/erasures.journal", e->data_dir);
    int peek = flags & EJR_PEEK;
    int fd = open(j->path, (peek ? O_RDONLY : O_RDWR) | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
    if (fd < 0) {
        if (errno == ENOENT && !create) return 0;
        return journal_err(res, errno, "open", j->path);
    }
    j->fd = fd;
    j->oldest = INT64_MAX;
    int rc = 0;
    while (!peek && (rc = flock(fd, LOCK_EX | (flags & EJR_TRY ? LOCK_NB : 0))) && errno == EINTR)
        ;
    if (rc && errno == EWOULDBLOCK) {
        ejr_close(j);
        j->busy = 1;
        return 0;
    }
    struct stat st, named;
    if (rc || fstat(fd, &st)) {
        int err = errno;
        ejr_close(j);
        return journal_err(res, err, "lock", j->path);
    }
    /* Pruned while this waited for the lock: the name is another file's. */
    if (!peek && stat(j->path, &named) == 0 &&
        (named.st_ino != st.st_ino || named.st_dev != st.st_dev)) {
        ejr_close(j);
        return ejr_open(e, flags, j, res);
    }
    char *buf = st.st_size ? malloc((size_t)st.st_size) : NULL;
    if (st.st_size && !buf) {
        ejr_close(j);
        return res_err(res, SB_ENOMEM, NULL, "out of memory");
    }
    size_t len = (size_t)st.st_size;
    int err = read_all(fd, buf, len);
    if (err) {
        free(buf);
        ejr_close(j);
        return journal_err(res, err, "read", j->path);
    }
    /* The entries up to the last newline: past it is an append cut short,
    ** never acknowledged (an append syncs before its request runs). A whole
    ** line that is no entry (damaged) is skipped, not written over: the
    ** entries after it stand. */
    size_t at = 0, bad = 0;
    while (at < len) {
        char *nl = memchr(buf + at, '\n', len - at);
        if (!nl) break;
        size_t n = (size_t)(nl - (buf + at));
        if (buf[at] != '#') {
            ejr_entry x;
            if (parse_line(buf + at, n, &x) || x.seq <= j->last) {
                bad++;
                at += n + 1;
                continue;
            }
            if (x.kind == EJR_ERASURE && x.received < j->oldest) j->oldest = x.received;
            if (j->n == j->cap) {
                size_t cap = j->cap ? j->cap * 2 : 16;
                ejr_entry *v = realloc(j->v, cap * sizeof *v);
                if (!v) {
                    free(buf);
                    ejr_close(j);
                    return res_err(res, SB_ENOMEM, NULL, "out of memory");
                }
                j->v = v;
                j->cap = cap;
            }
            j->v[j->n++] = x;
            j->last = x.seq;
        }
        at += n + 1;
    }
    j->good = at;
    j->torn = at < len;
    free(buf);
    if (bad && !peek)
        sb_log(e, SB_LOG_ERROR,
               "%s: " OWN_ZU " whole line%s no entry (damaged): skipped; the erasure requests or "
               "account deletions they held are lost to a restore",
               j->path, bad, bad == 1 ? " is" : "s are");
    if (j->torn && !peek) /* a peek may meet an append being written */
        sb_log(e, SB_LOG_WARN,
               "%s: " OWN_ZU " bytes at its end are no whole entry (an append cut short): ignored, "
               "and written over by the next erasure request or account deletion",
               j->path, len - at);
    return 0;
}

static int write_all(int fd, const char *p, size_t n, off_t off)
{
    while (n) {
        ssize_t w = pwrite(fd, p, n, off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? errno : ENOSPC;
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

/* x as its line, '\n' and all, into line (512 bytes): its length. */
static int format_line(const ejr_entry *x, char *line)
{
    const size_t cap = 512;
    int n = snprintf(line, cap, "%c %llu %lu %s", x->kind, (unsigned long long)x->seq,
                     (unsigned long)x->acct, x->account);
    if (x->kind == EJR_DELETION)
        n += snprintf(line + n, cap - (size_t)n, " %lld", (long long)x->created);
    else if (x->kind == EJR_ERASURE)
        for (int i = 0; i < 16; i++)
            n += snprintf(line + n, cap - (size_t)n, "%s%02x", i ? "" : " ", x->pseudo[i]);
    n += snprintf(line + n, cap - (size_t)n, " %lld", (long long)x->received);
    n += snprintf(line + n, cap - (size_t)n, " %016" PRIx64 "\n", fnv(line, (size_t)n));
    return n;
}

int ejr_append(sb_engine *e, ejr *j, ejr_entry *x, sb_result *res)
{
    char line[512];
    int n = format_line(x, line);
    off_t at = (off_t)j->good;
    int err = 0;
    /* A torn tail goes first, so that nothing before this entry is half a
    ** line; a new file starts with its notes. */
    if (j->torn && ftruncate(j->fd, at)) err = errno;
    if (!err && at == 0) {
        err = write_all(j->fd, head, sizeof head - 1, 0);
        at = sizeof head - 1;
    }
    if (!err) err = write_all(j->fd, line, (size_t)n, at);
    if (!err && fdatasync(j->fd)) err = errno;
    if (!err && j->good == 0) { /* a new file: its name too */
        int d = open(e->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d < 0 || fsync(d)) err = errno;
        if (d >= 0) close(d);
    }
    if (err) {
        /* Nothing of it stays: the request is refused. */
        if (ftruncate(j->fd, (off_t)j->good) == 0) (void)fdatasync(j->fd);
        return journal_err(res, err, "append to", j->path);
    }
    j->torn = 0;
    j->prev = j->good;
    j->good = (size_t)at + (size_t)n;
    j->last = x->seq;
    return 0;
}

void ejr_unappend(sb_engine *e, ejr *j)
{
    if (ftruncate(j->fd, (off_t)j->prev) || fdatasync(j->fd)) {
        sb_log(e, SB_LOG_ERROR,
               "%s: cannot take back the entry of a refused erasure request or account "
               "deletion (%s): it will be applied when the directory next opens",
               j->path, strerror(errno));
        return;
    }
    j->good = j->prev;
}

static int prunable(const ejr_entry *x, uint64_t seen, int64_t before)
{
    return x->kind == EJR_ERASURE && x->seq <= seen && x->received < before;
}

int ejr_prune(sb_engine *e, ejr *j, uint64_t seen, int64_t before, size_t *removed, sb_result *res)
{
    *removed = 0;
    size_t gone = 0;
    for (size_t i = 0; i < j->n; i++)
        gone += prunable(&j->v[i], seen, before);
    if (!gone) return 0;
    /* The copy: the file's whole lines as they are (notes, damaged lines,
    ** kinds a later version may add), each request past the horizon as its
    ** 'x' line. What follows the last whole line is an append cut short. */
    char *old = malloc(j->good + 1), *buf = malloc(j->good + 1);
    if (!old || !buf) {
        free(old);
        free(buf);
        return res_err(res, SB_ENOMEM, NULL, "out of memory");
    }
    size_t len = 0;
    int err = read_all(j->fd, old, j->good);
    for (size_t at = 0; !err && at < j->good;) {
        char *nl = memchr(old + at, '\n', j->good - at);
        size_t n = nl ? (size_t)(nl - (old + at)) : j->good - at;
        ejr_entry x;
        if (old[at] != '#' && parse_line(old + at, n, &x) == 0 && prunable(&x, seen, before)) {
            x.kind = EJR_PRUNED;
            len += (size_t)format_line(&x, buf + len); /* never longer than the 'e' line */
        } else {
            memcpy(buf + len, old + at, n);
            buf[len + n] = '\n';
            len += n + 1;
        }
        at += n + 1;
    }
    free(old);
    char tmp[sizeof j->path + 8];
    snprintf(tmp, sizeof tmp, "%s.new", j->path);
    struct stat st;
    int fd = -1;
    if (!err && fstat(j->fd, &st)) err = errno;
    if (!err && (fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) err = errno;
    /* Locked before its name is the journal's: whoever opens it then waits.
    ** Its owner, group and mode the old file's (a prune by root keeps the
    ** daemon's user's file). */
    if (!err && flock(fd, LOCK_EX)) err = errno;
    if (!err) err = file_own_like(fd, &st, 1);
    if (!err) err = write_all(fd, buf, len, 0);
    if (!err && fdatasync(fd)) err = errno;
    if (!err && rename(tmp, j->path)) err = errno;
    free(buf);
    if (err) { /* the journal as it was */
        if (fd >= 0) close(fd);
        (void)unlink(tmp);
        return journal_err(res, err, "write the copy without the pseudonyms past its horizon of",
                           j->path);
    }
    int d = open(e->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0 || fsync(d))
        sb_log(e, SB_LOG_WARN,
               "%s: its directory not synced after taking pseudonyms out (%s): a crash may "
               "bring back the journal before it, and lose what was appended since",
               j->path, strerror(errno));
    if (d >= 0) close(d);
    close(j->fd); /* the old file, and its lock */
    j->fd = fd;
    j->oldest = INT64_MAX;
    for (size_t i = 0; i < j->n; i++) {
        ejr_entry *x = &j->v[i];
        if (prunable(x, seen, before)) {
            x->kind = EJR_PRUNED;
            memset(x->pseudo, 0, sizeof x->pseudo);
        } else if (x->kind == EJR_ERASURE && x->received < j->oldest) {
            j->oldest = x->received;
        }
    }
    j->good = j->prev = len;
    j->torn = 0;
    *removed = gone;
    return 0;
}
