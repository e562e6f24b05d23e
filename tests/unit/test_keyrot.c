/*
** test_keyrot.c — rotating the master key (sb_master_key_rotate): after it
** the data directory opens with the new key only, the numbers sealed before
** are read as before, API keys made before still authenticate, and the old
** key is refused as any other key; a second rotation works the same way.
** A rotation refused (another process or engine has the directory open, the
** old key is not the directory's, the new key file is not a key or is the old
** key) changes nothing: data.keys is the same to the byte and no key file is
** made. A rotation killed at each of its steps (the new key made, the new
** data.keys written, renamed in place) leaves a directory that opens with the
** old key before the rename and with the new one after it: this file defines
** rename, link and fsync itself, so the library calls them through the test,
** which ends the process there when KEYROT_CRASH names that step; an open
** after such a crash removes the data.keys.rotate it left. A rotation marks
** the directory with this version's format, refuses a new key file named as
** one of the directory's own files, and, run as root on a directory of
** another user, leaves data.keys and the new key that user's. A data.keys
** put back without slot 0 after a rotation is refused, saying why and what
** to do, unless the keys are declared lost for good.
*/
#include "engine.h" /* the directory's format mark (meta "schema") */
#include "switchboard.h"
#include "tap.h"
#define TESTKIT_LOG_KEEP
#include "testkit.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <grp.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256], key0[300], key1[300], key2[300], keys[300], apikey[64];
static sb_result *res;

/* --- the steps a crash is tried at -------------------------------------- */

static const char *crash_at(void)
{
    return getenv("KEYROT_CRASH");
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

int rename(const char *from, const char *to)
{
    const char *c = crash_at();
    if (c && !strcmp(c, "before_rename") && ends_with(to, "/data.keys")) _exit(99);
    int rc = renameat(AT_FDCWD, from, AT_FDCWD, to);
    if (c && !strcmp(c, "after_rename") && ends_with(to, "/data.keys")) _exit(99);
    return rc;
}

int link(const char *from, const char *to)
{
    int rc = linkat(AT_FDCWD, from, AT_FDCWD, to, 0);
    const char *c = crash_at();
    if (c && !strcmp(c, "key_made") && ends_with(to, ".key")) _exit(99);
    return rc;
}

int fsync(int fd)
{
    char lk[48], path[4096];
    snprintf(lk, sizeof lk, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(lk, path, sizeof path - 1);
    path[n > 0 ? n : 0] = 0;
    const char *c = crash_at();
    if (c && !strcmp(c, "keys_written") && ends_with(path, "/data.keys.rotate")) _exit(99);
    const char *pause = getenv("KEYROT_PAUSE_FD");
    if (pause && ends_with(path, "/data.keys.rotate")) { /* say so, then take a while */
        if (write(atoi(pause), "p", 1) != 1) _exit(98);
        usleep(300000);
    }
    return (int)syscall(SYS_fsync, fd);
}

/* --- helpers --------------------------------------------------------------- */

/* The data directory the helpers work on, d, and its data.keys. */
static void use_dir(const char *d)
{
    snprintf(dir, sizeof dir, "%s", d);
    snprintf(keys, sizeof keys, "%s/data.keys", dir);
}

/* Work on a new directory named the current one's name and dir_suffix,
** empty, the current one's name kept in saved (for use_dir after), and a
** new key file's name (its name and key_suffix, not there) in newk. */
static void other_dir(char *saved, size_t n, const char *dir_suffix, char *newk, size_t kn,
                      const char *key_suffix)
{
    char d[sizeof dir];
    snprintf(saved, n, "%s", dir);
    snprintf(newk, kn, "%s%s", saved, key_suffix);
    snprintf(d, sizeof d, "%s%s", saved, dir_suffix);
    use_dir(d);
    rmtree(dir);
    unlink(newk);
}

static void config(sb_config *cfg, const char *key_file)
{
    test_engine_config(cfg, dir, NULL, 8 << 20);
    cfg->key_file = key_file;
    cfg->log = log_keep;
}

static sb_engine *open_with(const char *key_file)
{
    sb_config cfg;
    config(&cfg, key_file);
    sb_engine *e = NULL;
    if (sb_open(&e, &cfg, res)) return NULL;
    return e;
}

static int rotate(const char *old, const char *new_key)
{
    sb_config cfg;
    config(&cfg, old);
    return sb_master_key_rotate(&cfg, new_key, res);
}

/* The whole file, malloc'd and NUL-terminated, its length in *len (NULL:
** none). */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    *len = 0;
    if (!f) return NULL;
    char *b = malloc((1 << 16) + 1);
    if (b) b[ *len = fread(b, 1, 1 << 16, f)] = 0;
    fclose(f);
    return b;
}

static int same_file(const char *path, const char *was, size_t wlen)
{
    size_t n;
    char *b = slurp(path, &n);
    int same = b && n == wlen && memcmp(b, was, n) == 0;
    free(b);
    return same;
}

/* The caller numbers an access request for +442079460001 shows (-1: it
** failed). */
static int exported(sb_engine *e)
{
    if (sb_records_export(e, "acme", "+442079460001", SB_EXPORT_JSON, res)) {
        diag("export: %s", sb_result_message(res));
        return -1;
    }
    json_t *d = json_loads(sb_result_json(res, NULL), 0, NULL);
    json_t *r = json_array_get(json_object_get(d, "records"), 0);
    int n = (int)json_array_size(json_object_get(d, "records"));
    const char *caller = json_string_value(json_object_get(r, "caller"));
    if (n && (!caller || strcmp(caller, "+442079460001"))) n = -2;
    json_decref(d);
    return n;
}

static void provision(void)
{
    sb_engine *e = open_with(key0);
    ok(e != NULL, "engine opened with the first key");
    if (!e) return;
    const char *a = "{\"id\":\"acme\"}";
    ok(sb_account_put(e, a, strlen(a), res) == 0, "account acme");
    test_put(e, res, sb_agent_put, "acme",
             "{\"id\":\"alice\",\"devices\":{\"softphone\":\"sip:alice@pbx.example\"},"
             "\"status\":\"available\"}");
    test_put(e, res, sb_queue_put, "acme",
             "{\"id\":\"support\",\"members\":[{\"agent\":\"alice\"}]}");
    ok(test_event(e, res, "acme",
                  "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"support\","
                  "\"caller\":\"+442079460001\"}") == 0 &&
           test_event(e, res, "acme", "{\"type\":\"abandon\",\"call\":\"c1\"}") == 0,
       "a call from +442079460001 recorded");
    ok(sb_apikey_create(e, "acme", res) == 0, "an API key made");
    json_t *d = json_loads(sb_result_json(res, NULL), 0, NULL);
    snprintf(apikey, sizeof apikey, "%s", json_string_value(json_object_get(d, "key")));
    json_decref(d);
    is_int(exported(e), 1, "an access request shows the record's number");
    sb_close(e);
}

/* The directory opens with key and everything made before works there; any
** key of others is refused as not the one. */
static void opens_with(const char *key, const char *not1, const char *not2, const char *when)
{
    sb_engine *e = open_with(key);
    ok(e != NULL, "%s: opens with %s", when, key);
    if (!e) {
        diag("%s", sb_result_message(res));
        return;
    }
    is_int(exported(e), 1, "%s: the sealed number is read (an access request shows it)", when);
    is_int(sb_apikey_verify(e, "acme", apikey, strlen(apikey)), 0,
           "%s: the API key made before authenticates", when);
    is_int(sb_apikey_verify(e, "acme", "sbk_nope", 8), SB_EAUTH, "%s: another key does not", when);
    sb_close(e);
    const char *nots[] = {not1, not2};
    for (int i = 0; i < 2; i++) {
        if (!nots[i]) continue;
        e = open_with(nots[i]);
        ok(e == NULL && sb_result_code(res) == SB_ECRYPTO &&
               strstr(sb_result_message(res),
                      "is not the one this data directory's data keys were made with"),
           "%s: %s is refused as not the one (%s)", when, nots[i], sb_result_message(res));
        sb_close(e);
    }
}

/* A key file with key (64 hex digits) at path, mode 0600. */
static void write_key(const char *path, const char *hex, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || write(fd, hex, strlen(hex)) != (ssize_t)strlen(hex))
        diag("cannot write %s", path);
    if (fd >= 0) close(fd);
    chmod(path, mode);
}

/* --- refusals ---------------------------------------------------------------- */

static void refused(int rc, int code, const char *why, const char *was, size_t wlen,
                    const char *msg)
{
    is_int(rc, code, "refused: %s (%s)", why, sb_result_message(res));
    ok(msg == NULL || strstr(sb_result_message(res), msg), "... saying so ('%s')", msg ? msg : "");
    ok(same_file(keys, was, wlen), "... data.keys unchanged");
    ok(access(key1, F_OK) != 0, "... no new key file made");
}

static void test_refusals(void)
{
    size_t wlen;
    char *was = slurp(keys, &wlen);
    ok(was && wlen > 0, "data.keys read (%zu bytes)", wlen);

    /* Another engine of this process. */
    sb_engine *e = open_with(key0);
    refused(rotate(key0, key1), SB_EBUSY, "another engine of this process has it open", was, wlen,
            "open in this process by another engine");
    is_int(exported(e), 1, "that engine still works");
    sb_close(e);

    /* Another process. */
    int go[2], ready[2];
    if (pipe(go) || pipe(ready)) {
        ok(0, "pipes made");
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(go[1]);
        close(ready[0]);
        sb_engine *c = open_with(key0);
        char b = c ? 'y' : 'n';
        if (write(ready[1], &b, 1) != 1) _exit(2);
        if (read(go[0], &b, 1) < 0) _exit(2);
        int n = c ? exported(c) : -1;
        sb_close(c);
        _exit(n == 1 ? 0 : 1);
    }
    close(go[0]);
    close(ready[1]);
    char b = 0;
    ok(read(ready[0], &b, 1) == 1 && b == 'y', "another process opened the directory");
    refused(rotate(key0, key1), SB_EBUSY, "another process has it open", was, wlen,
            "is open in another process");
    char pidstr[32];
    snprintf(pidstr, sizeof pidstr, "pid %d", (int)pid);
    ok(strstr(sb_result_message(res), pidstr) != NULL, "... naming its pid");
    if (write(go[1], "x", 1) != 1) diag("cannot tell the child to go on");
    int st = 0;
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the other process read its records throughout");
    close(go[1]);
    close(ready[0]);

    /* A key that is not the directory's. */
    char wrong[300];
    snprintf(wrong, sizeof wrong, "%s.wrong.key", dir);
    write_key(wrong, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 0600);
    refused(rotate(wrong, key1), SB_ECRYPTO, "the old key is not the directory's", was, wlen,
            "is not the one this data directory's data keys were made with");
    ok(strstr(sb_result_message(res), "give the key file this data was written with") &&
           !strstr(sb_result_message(res), "rotated"),
       "... never rotated: saying to give the key it was written with, not a rotated one");

    /* New key files that are not keys, or the old key. */
    write_key(key2, "not a key\n", 0600);
    refused(rotate(key0, key2), SB_EINVAL, "the new key file is not a key", was, wlen, key2);
    write_key(key2, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 0644);
    refused(rotate(key0, key2), SB_EINVAL, "the new key file may be read by others", was, wlen,
            key2);
    refused(rotate(key0, key0), SB_EINVAL, "the new key file is the old one", was, wlen,
            "is the key file in use");
    size_t kl;
    char *k = slurp(key0, &kl);
    write_key(key2, k ? k : "", 0600);
    free(k);
    refused(rotate(key0, key2), SB_EINVAL, "the new key file holds the old key", was, wlen,
            "holds the master key in use");
    unlink(key2);
    refused(rotate(key0, ""), SB_EINVAL, "no new key file", was, wlen, NULL);
    /* A path that is not UTF-8: the answer, JSON, could not name it, and
    ** was empty after the rotation took effect. */
    char bad[320];
    snprintf(bad, sizeof bad, "%s.\xff.key", dir);
    refused(rotate(key0, bad), SB_EINVAL, "the new key file's path is not UTF-8", was, wlen,
            "not UTF-8");
    ok(!strcmp(sb_result_field(res), "new_key_file") && access(bad, F_OK) != 0,
       "... naming new_key_file, the file not made");
    opens_with(key0, NULL, NULL, "after the refusals");
    free(was);
}

/* --- rotations -------------------------------------------------------------- */

static void test_rotate(void)
{
    is_int(rotate(key0, key1), 0, "rotated to a new key (%s)", sb_result_message(res));
    json_t *d = json_loads(sb_result_json(res, NULL), 0, NULL);
    is_int((int)json_integer_value(json_object_get(d, "accounts")), 1, "... one account's key");
    ok(json_is_true(json_object_get(d, "new_key_made")), "... the new key made");
    ok(strstr(json_string_value(json_object_get(d, "backups")), "old key") != NULL,
       "... saying backups made before need the old key");
    json_decref(d);
    struct stat st;
    ok(stat(key1, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == 65,
       "the new key file: 64 hex digits and a newline, mode 0600");
    ok(stat(key0, &st) == 0, "the old key file is left where it was");
    opens_with(key1, key0, NULL, "after a rotation");
    /* The key from before, given by a daemon or command not told of the
    ** rotation: the refusal says the key was rotated and where to give the
    ** new one. */
    sb_engine *old = open_with(key0);
    ok(old == NULL && strstr(sb_result_message(res), "its master key has been rotated") &&
           strstr(sb_result_message(res), "--key-file"),
       "the key from before the rotation: refused, saying the key was rotated and how to give "
       "the new one (%s)",
       sb_result_message(res));
    sb_close(old);

    /* API keys made after the rotation work too, before and after reopening. */
    sb_engine *e = open_with(key1);
    ok(e && sb_apikey_create(e, "acme", res) == 0, "an API key made under the new key");
    json_t *k = json_loads(sb_result_json(res, NULL), 0, NULL);
    char later[64];
    snprintf(later, sizeof later, "%s", json_string_value(json_object_get(k, "key")));
    json_decref(k);
    sb_close(e);
    e = open_with(key1);
    ok(e && sb_apikey_verify(e, "acme", later, strlen(later)) == 0, "... and it authenticates");
    ok(e && sb_apikey_verify(e, "acme", apikey, strlen(apikey)) == 0, "... as the old one does");
    sb_close(e);

    /* A second rotation, to a key given. */
    write_key(key2, "8899aabbccddeeff00112233445566778899aabbccddeeff0011223344556677\n", 0600);
    is_int(rotate(key1, key2), 0, "a second rotation, to an existing key (%s)",
           sb_result_message(res));
    opens_with(key2, key1, key0, "after a second rotation");
}

/* Killed at each step: the directory opens with the old key before the
** rename, with the new key after it; a rotation run again then goes through. */
static void test_crashes(void)
{
    static const struct {
        const char *step;
        int new_opens;
    } steps[] = {{"key_made", 0}, {"keys_written", 0}, {"before_rename", 0}, {"after_rename", 1}};
    const char *from = key2, *to = key1, *other = key0;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        unlink(to);
        pid_t pid = fork();
        if (pid == 0) {
            setenv("KEYROT_CRASH", steps[i].step, 1);
            rotate(from, to);
            _exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        ok(WIFEXITED(st) && WEXITSTATUS(st) == 99, "a rotation killed at %s", steps[i].step);
        ok(access(to, F_OK) == 0, "... the new key is on disk");
        if (steps[i].new_opens) {
            opens_with(to, from, other, steps[i].step);
            const char *t = from;
            from = to;
            to = other;
            other = t;
        } else {
            opens_with(from, to, NULL, steps[i].step);
        }
        /* A data.keys.rotate left by the crash holds every data key wrapped
        ** under a key that is on disk: an account deleted later would have
        ** its slot wiped in data.keys only. The open removes it. */
        char left[300];
        snprintf(left, sizeof left, "%s/data.keys.rotate", dir);
        ok(access(left, F_OK) != 0, "... no data.keys.rotate left after an open (%s)",
           steps[i].step);
    }
    char left[300];
    snprintf(left, sizeof left, "%s/data.keys.rotate", dir);
    unlink(to);
    is_int(rotate(from, to), 0, "a rotation after the crashes (%s)", sb_result_message(res));
    ok(access(left, F_OK) != 0, "... leaves no data.keys.rotate");
    opens_with(to, from, other, "after the crashes");
}

/* An engine opened while a rotation runs waits for it (LMDB's shared lock),
** then finds the new data keys: with the new key it opens and works
** (LMDB's lock file left usable for it), with the old one it is refused. */
static void test_open_during(void)
{
    const char *keyfor[2] = {key1, key0}, *all[3] = {key0, key1, key2}, *cur = NULL;
    for (int i = 0; i < 3 && !cur; i++) {
        sb_engine *e = open_with(all[i]);
        if (e) cur = all[i];
        sb_close(e);
    }
    ok(cur != NULL, "the key the crashes left the directory with (%s)", cur ? cur : "none");
    if (!cur) return;
    if (cur != key0) {
        unlink(key0);
        is_int(rotate(cur, key0), 0, "rotated to a new key0 (%s)", sb_result_message(res));
    }
    for (int with_new = 1; with_new >= 0; with_new--) {
        int p[2];
        if (pipe(p)) {
            ok(0, "a pipe");
            return;
        }
        unlink(key1);
        pid_t pid = fork();
        if (pid == 0) {
            char fd[16];
            close(p[0]);
            snprintf(fd, sizeof fd, "%d", p[1]);
            setenv("KEYROT_PAUSE_FD", fd, 1);
            _exit(rotate(key0, key1) == 0 ? 0 : 1);
        }
        close(p[1]);
        char b;
        ok(read(p[0], &b, 1) == 1, "a rotation is writing the new data.keys");
        close(p[0]);
        char left[300];
        snprintf(left, sizeof left, "%s/data.keys.rotate", dir);
        sb_engine *e = open_with(keyfor[!with_new]);
        ok(access(left, F_OK) != 0, "an open meanwhile (the %s key) returned after the rename",
           with_new ? "new" : "old");
        if (with_new) {
            ok(e != NULL, "... opened with the new key (%s)", e ? "" : sb_result_message(res));
            is_int(e ? exported(e) : -1, 1, "... reads the sealed number");
            ok(e && sb_apikey_create(e, "acme", res) == 0, "... and writes (%s)",
               sb_result_message(res));
        } else {
            ok(e == NULL && strstr(sb_result_message(res), "is not the one"),
               "... refused with the old key (%s)", sb_result_message(res));
        }
        sb_close(e);
        int st = 0;
        waitpid(pid, &st, 0);
        ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the rotation went through");
        if (with_new) { /* back to key0, for the second round */
            unlink(key0);
            is_int(rotate(key1, key0), 0, "rotated back to a new key0 (%s)",
                   sb_result_message(res));
        }
    }
    opens_with(key1, key0, NULL, "after the opens during rotations");
}

static int put_schema(wtx *t, void *arg)
{
    return st_meta_put_u64(t->txn, t->e, "schema", *(uint64_t *)arg);
}

/* The directory's format mark, or 0. */
static uint64_t schema_of(const char *key_file)
{
    sb_engine *e = open_with(key_file);
    MDB_txn *txn;
    uint64_t v = 0;
    if (e && eng_read_begin(e, &txn) == 0) {
        if (st_meta_u64(txn, e, "schema", &v)) v = 0;
        eng_read_end(e, txn);
    }
    sb_close(e);
    return v;
}

/* A rotation marks the directory with this version's format, as a write
** does: an earlier version, which knows nothing of slot 0, would open the
** rotated directory with the new key and hash API keys with a subkey of it,
** refusing every API key made before and making ones this version refuses. */
static void test_format_mark(void)
{
    sb_engine *e = open_with(key1);
    uint64_t earlier = SCHEMA_VERSION - 1;
    ok(e && eng_write(e, put_schema, &earlier, res) == 0,
       "the directory marked as an earlier version's (format %llu)", (unsigned long long)earlier);
    sb_close(e);
    is_int((int)schema_of(key1), (int)earlier, "... which an open that writes nothing leaves");
    unlink(key2);
    is_int(rotate(key1, key2), 0, "rotated (%s)", sb_result_message(res));
    is_int((int)schema_of(key2), SCHEMA_VERSION,
           "the rotation marked it with this version's format, which an earlier one refuses");
    unlink(key1);
    is_int(rotate(key2, key1), 0, "rotated back to a new key1 (%s)", sb_result_message(res));
}

/* data.keys as it is, with slot 0 (the API-key hashing subkey a rotation
** writes) wiped: what a copy of the account keys alone puts back. */
static void wipe_slot0(const char *was, size_t wlen)
{
    char *b = malloc(wlen);
    if (!b || wlen < 128) {
        ok(0, "data.keys holds slot 0");
        free(b);
        return;
    }
    memcpy(b, was, wlen);
    memset(b, 0, 128);
    FILE *f = fopen(keys, "wb");
    ok(f && fwrite(b, 1, wlen, f) == wlen && fclose(f) == 0, "data.keys put back without slot 0");
    free(b);
}

static void put_back(const char *was, size_t wlen)
{
    FILE *f = fopen(keys, "wb");
    ok(f && fwrite(was, 1, wlen, f) == wlen && fclose(f) == 0, "the rotation's data.keys put back");
}

/* After a rotation, slot 0 of data.keys holds the subkey the API keys were
** hashed with; a data.keys put back without it would have the engine derive
** another from the master key and refuse every API key made before, without
** a word. The open refuses it instead, saying what and how to put right;
** with the keys declared lost for good it opens with a new subkey, says the
** API keys made before are refused, and the next open is quiet. In a
** directory of its own, whose first rotation is first killed before its
** rename: that leaves the subkey's check value in data.mdb and data.keys
** without slot 0, which the old key still opens, API keys and all. */
static void test_lost_slot0(void)
{
    char saved_dir[256], saved_api[64], newk[300];
    snprintf(saved_api, sizeof saved_api, "%s", apikey);
    other_dir(saved_dir, sizeof saved_dir, ".lost", newk, sizeof newk, ".lost.key");
    provision(); /* with key0, which is there */

    pid_t pid = fork();
    if (pid == 0) {
        setenv("KEYROT_CRASH", "before_rename", 1);
        rotate(key0, newk);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 99, "a first rotation killed before its rename");
    opens_with(key0, newk, NULL, "a first rotation killed before its rename");
    unlink(newk);
    is_int(rotate(key0, newk), 0, "rotated (%s)", sb_result_message(res));

    size_t wlen;
    char *was = slurp(keys, &wlen);
    wipe_slot0(was, wlen);
    size_t wiped_len;
    char *wiped = slurp(keys, &wiped_len);
    sb_engine *e = open_with(newk);
    const char *m = sb_result_message(res);
    ok(e == NULL && sb_result_code(res) == SB_ECRYPTO && strstr(m, "has no slot 0") &&
           strstr(m, "switchboard key rotate") && strstr(m, "Put back the data.keys") &&
           strstr(m, "SWITCHBOARD_DATA_KEYS_LOST"),
       "the open is refused, naming slot 0, the rotation and what to do (%s)", m);
    sb_close(e);
    ok(wiped && same_file(keys, wiped, wiped_len), "... data.keys unchanged");
    free(wiped);
    put_back(was, wlen);
    opens_with(newk, key0, NULL, "data.keys put back");

    /* Lost for good: opens, says so once, refuses the API keys made before. */
    wipe_slot0(was, wlen);
    setenv("SWITCHBOARD_DATA_KEYS_LOST", "1", 1);
    log_clear();
    e = open_with(newk);
    unsetenv("SWITCHBOARD_DATA_KEYS_LOST");
    ok(e != NULL, "with SWITCHBOARD_DATA_KEYS_LOST=1 it opens (%s)",
       e ? "" : sb_result_message(res));
    ok(strstr(logbuf, "has no slot 0") && strstr(logbuf, "every API key made before is refused"),
       "... saying the API keys made before are refused");
    is_int(e ? sb_apikey_verify(e, "acme", apikey, strlen(apikey)) : -1, SB_EAUTH,
           "... which they are");
    char later[64] = "";
    if (e && sb_apikey_create(e, "acme", res) == 0) {
        json_t *k = json_loads(sb_result_json(res, NULL), 0, NULL);
        snprintf(later, sizeof later, "%s", json_string_value(json_object_get(k, "key")));
        json_decref(k);
    }
    ok(later[0], "... a new API key made");
    sb_close(e);
    log_clear();
    e = open_with(newk);
    ok(e != NULL && !strstr(logbuf, "slot 0"), "the next open, without it, opens and is quiet (%s)",
       e ? logbuf : sb_result_message(res));
    ok(e && sb_apikey_verify(e, "acme", later, strlen(later)) == 0,
       "... and takes the new API key");
    is_int(e ? exported(e) : -1, 1, "... and reads the sealed number");
    sb_close(e);
    free(was);

    rmtree(dir);
    unlink(newk);
    use_dir(saved_dir);
    snprintf(apikey, sizeof apikey, "%s", saved_api);
}

/* A new key file named as one of the files the data directory holds is
** refused, nothing changed: data.keys.rotate, for one, is removed at the
** start of the rotation's writes and then renamed over data.keys, which
** took the new key with it and left a directory no key opens. */
static void test_new_key_names(void)
{
    static const char *const names[] = {"data.keys.rotate", "erasures.journal.new", "admin.token",
                                        "serve.lock"};
    size_t wlen;
    char *was = slurp(keys, &wlen);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char nk[400];
        snprintf(nk, sizeof nk, "%s/%s", dir, names[i]);
        unlink(nk);
        int rc = rotate(key1, nk);
        ok(rc == SB_EINVAL && strstr(sb_result_message(res), names[i]),
           "a new key file %s in the data directory refused (%s)", names[i],
           sb_result_message(res));
        ok(same_file(keys, was, wlen), "... data.keys unchanged");
        ok(access(nk, F_OK) != 0, "... no key made there");
        unlink(nk);
    }
    free(was);
    opens_with(key1, key0, key2, "after new key files in the data directory refused");
}

/* Run by a user other than the directory's, not root, who reaches it
** through the directory's group (data.keys 0660): the new data.keys keeps
** that group and mode, so the directory's user still opens it; its owner is
** the rotating user's (only root gives a file away). cur: the directory's
** key now. */
static void test_group(const char *cur)
{
    const uid_t b = 65532;
    const gid_t bg = 65532, g = 65533;
    char bdir[300], oldk[340], newk[340], cmd[1400];
    snprintf(bdir, sizeof bdir, "%s.b", dir);
    snprintf(oldk, sizeof oldk, "%s/old.key", bdir);
    snprintf(newk, sizeof newk, "%s/new.key", bdir);
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s' && mkdir -m 700 '%s' && cp '%s' '%s' && chmod 600 '%s' && "
             "chown -R %u:%u '%s' && chgrp -R %u '%s' && chmod -R g+rw '%s' && chmod g+x '%s'",
             bdir, bdir, cur, oldk, oldk, (unsigned)b, (unsigned)bg, bdir, (unsigned)g, dir, dir,
             dir);
    ok(system(cmd) == 0, "the directory given to group %u, 0660, a key of uid %u's", (unsigned)g,
       (unsigned)b);
    pid_t pid = fork();
    if (pid == 0) {
        if (setgroups(1, &g) || setgid(bg) || setuid(b)) _exit(2);
        int rc = rotate(oldk, newk);
        if (rc) fprintf(stderr, "# as uid %u: %s\n", (unsigned)b, sb_result_message(res));
        _exit(rc ? 1 : 0);
    }
    int rst = 0;
    waitpid(pid, &rst, 0);
    ok(WIFEXITED(rst) && WEXITSTATUS(rst) == 0, "rotated by uid %u, a member of the group",
       (unsigned)b);
    struct stat st;
    ok(stat(keys, &st) == 0 && st.st_gid == g && (st.st_mode & 0777) == 0660,
       "data.keys keeps the directory's group and mode 0660 (gid %u, mode %o)", (unsigned)st.st_gid,
       (unsigned)(st.st_mode & 0777));
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", bdir);
    ok(system(cmd) == 0, "uid %u's keys removed", (unsigned)b);
}

/* Run as root on a directory and key of another user (the daemon's): the
** new data.keys and the new key file are that user's, so the daemon, started
** as it with the new key, opens the directory. */
/* A data directory whose path is not UTF-8 rotates, its answer naming the
** directory with '?' for each byte that is not (it was empty: JSON could
** not hold the path), and the new key file as given. */
static void test_path_not_utf8(void)
{
    char was[sizeof dir], nk[sizeof dir + 16];
    other_dir(was, sizeof was, "-\xff", nk, sizeof nk, "-odd.key");
    sb_engine *e = open_with(NULL);
    ok(e != NULL, "a data directory whose path is not UTF-8 (%s)", sb_result_message(res));
    sb_close(e);
    is_int(rotate(NULL, nk), 0, "... rotated (%s)", sb_result_message(res));
    json_t *d = json_loads(sb_result_json(res, NULL), 0, NULL);
    char shown[sizeof dir + 8];
    snprintf(shown, sizeof shown, "%s-?", was);
    ok(d && !strcmp(json_string_value(json_object_get(d, "data_dir")) ?: "", shown) &&
           !strcmp(json_string_value(json_object_get(d, "key_file")) ?: "", nk),
       "... its answer naming the directory with '?' and the new key file (%s)",
       sb_result_json(res, NULL));
    json_decref(d);
    rmtree(dir);
    unlink(nk);
    use_dir(was);
}

static void test_owner(void)
{
    if (geteuid() != 0) {
        ok(1, "# skip: ownership needs root");
        return;
    }
    const uid_t u = 65534;
    const gid_t g = 65534;
    /* The keys in a directory of that user's, as /etc/switchboard would be. */
    char kdir[300], oldk[340], newk[340], cmd[1200];
    snprintf(kdir, sizeof kdir, "%s.keys", dir);
    snprintf(oldk, sizeof oldk, "%s/old.key", kdir);
    snprintf(newk, sizeof newk, "%s/new.key", kdir);
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s' && mkdir '%s' && cp -p '%s' '%s' && chown -R %u:%u '%s' '%s'", kdir, kdir,
             key1, oldk, (unsigned)u, (unsigned)g, dir, kdir);
    ok(system(cmd) == 0, "the directory and its key given to uid %u", (unsigned)u);
    is_int(rotate(oldk, newk), 0, "rotated by root (%s)", sb_result_message(res));
    struct stat st;
    ok(stat(keys, &st) == 0 && st.st_uid == u && st.st_gid == g && (st.st_mode & 0777) == 0600,
       "data.keys is still the directory's user's, mode 0600 (uid %u, mode %o)",
       (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
    ok(stat(newk, &st) == 0 && st.st_uid == u && st.st_gid == g && (st.st_mode & 0777) == 0600,
       "the new key file is the old one's user's, mode 0600 (uid %u)", (unsigned)st.st_uid);
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(g) || setuid(u)) _exit(2);
        sb_engine *e = open_with(newk);
        if (!e) fprintf(stderr, "# as uid %u: %s\n", (unsigned)u, sb_result_message(res));
        int n = e ? exported(e) : -1;
        sb_close(e);
        _exit(n == 1 ? 0 : 1);
    }
    int rst = 0;
    waitpid(pid, &rst, 0);
    ok(WIFEXITED(rst) && WEXITSTATUS(rst) == 0,
       "... which opens the directory with the new key and reads the number");
    test_group(newk);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", kdir);
    ok(system(cmd) == 0, "the keys' directory removed");
}

int main(void)
{
    char d[64];
    snprintf(d, sizeof d, "/tmp/sb-keyrot-%d", (int)getpid());
    use_dir(d);
    snprintf(key0, sizeof key0, "%s.0.key", dir);
    snprintf(key1, sizeof key1, "%s.1.key", dir);
    snprintf(key2, sizeof key2, "%s.2.key", dir);
    rmtree(dir);
    unlink(key0);
    unlink(key1);
    unlink(key2);
    res = sb_result_new();
    provision();
    test_refusals();
    test_rotate();
    test_crashes();
    test_open_during();
    test_format_mark();
    test_lost_slot0();
    test_new_key_names();
    test_owner();
    test_path_not_utf8();
    sb_result_free(res);
    rmtree(dir);
    unlink(key0);
    unlink(key1);
    unlink(key2);
    char wrong[300];
    snprintf(wrong, sizeof wrong, "%s.wrong.key", dir);
    unlink(wrong);
    return done_testing();
}
