/*
** test_keys_audit.c — secrets and numbers at rest, checked as a customer's
** security auditor would: the master key file (symbolic links, modes,
** sizes), data keys bound to their accounts (a slot copied to another
** account does not open there, and is never used for it), sealed numbers
** bound to their account and call, pseudonyms keyed per account, account
** deletion shredding the data key, API keys that are never stored and whose
** checks cost the same whatever the account (counted, not timed: this
** program interposes libsodium's crypto_generichash_final), and the modes of
** every file of the data directory and of a backup, also while the backup
** is written (this program interposes write(2)), and a backup taken while
** an account is deleted opening (fsync(2) interposed to delete it between
** the backup's two copies), and one restored after a ring it held timed out
** firing that timeout once.
*/
#include "crypto.h"
#include "engine.h"
#include "records.h"
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"
#include "reckit.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- interposed: hashes counted, writes to files others may read ---------- */

static atomic_int hashes;

int crypto_generichash_final(crypto_generichash_state *state, unsigned char *out, size_t outlen)
{
    static int (*real)(crypto_generichash_state *, unsigned char *, size_t);
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "crypto_generichash_final");
    atomic_fetch_add(&hashes, 1);
    return real(state, out, outlen);
}

/* While watch_dir is set: writes to a regular file under it that group or
** others could open at that moment. */
static char watch_dir[300];
static atomic_int exposed_writes;

ssize_t write(int fd, const void *buf, size_t n)
{
    static ssize_t (*real)(int, const void *, size_t);
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "write");
    if (watch_dir[0]) {
        struct stat st;
        char link[64], target[600];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t l = readlink(link, target, sizeof target - 1);
        if (l > 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
            target[l] = 0;
            size_t wl = strlen(watch_dir);
            if (!strncmp(target, watch_dir, wl) && target[wl] == '/' && (st.st_mode & 077))
                atomic_fetch_add(&exposed_writes, 1);
        }
    }
    return real(fd, buf, n);
}

/* While on_mdb_synced is set: called once, and cleared, when the copy of
** data.mdb in a backup is synced (between its snapshot and the copy of
** data.keys). */
static void (*on_mdb_synced)(void);

int fsync(int fd)
{
    static int (*real)(int);
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "fsync");
    if (on_mdb_synced) {
        char link[64], target[600];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t l = readlink(link, target, sizeof target - 1);
        const char *tail = "/data.mdb.partial";
        size_t tl = strlen(tail);
        if (l > (ssize_t)tl && !memcmp(target + l - tl, tail, tl)) {
            void (*f)(void) = on_mdb_synced;
            on_mdb_synced = NULL;
            f();
        }
    }
    return real(fd);
}

/* --- helpers ----------------------------------------------------------------- */

static int is_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

static void write_file(const char *p, const char *content, mode_t mode)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0) return;
    if (write(fd, content, strlen(content)) < 0) diag("write %s failed", p);
    fchmod(fd, mode);
    close(fd);
}

/* An account with one agent (a1) and one queue (support); personal "name". */
static int account(const char *id)
{
    char json[256];
    snprintf(json, sizeof json, "{\"id\":\"%s\",\"personal_attrs\":[\"name\"]}", id);
    int rc = sb_account_put(eng, json, strlen(json), res);
    rc |= sb_agent_put(eng, id,
                       "{\"id\":\"a1\",\"devices\":{\"softphone\":\"sip:a1@pbx.example\"},"
                       "\"status\":\"available\"}",
                       strlen("{\"id\":\"a1\",\"devices\":{\"softphone\":\"sip:a1@pbx.example\"},"
                              "\"status\":\"available\"}"),
                       res);
    const char *q = "{\"id\":\"support\",\"members\":[{\"agent\":\"a1\"}]}";
    rc |= sb_queue_put(eng, id, q, strlen(q), res);
    if (rc) diag("account %s: %s", id, sb_result_message(res));
    return rc;
}

/* A call from caller with a personal attribute, abandoned a second later. */
static int call(const char *acct, const char *id, const char *caller)
{
    char json[320];
    snprintf(json, sizeof json,
             "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"support\",\"caller\":\"%s\","
             "\"attrs\":{\"name\":\"Subject %s\"}}",
             id, caller, caller);
    if (ev(acct, json)) return -1;
    now_ms += 1000;
    return finish(acct, id, NULL);
}

static uint32_t acct_num(const char *id)
{
    MDB_txn *txn;
    acct_rec a;
    if (eng_read_begin(eng, &txn)) return 0;
    int rc = st_account_by_id(txn, eng, id, &a);
    eng_read_end(eng, txn);
    return rc ? 0 : a.num;
}

/* The records of account acct with call id `id`, copied (pii included):
** up to max of them, oldest first. Their count. */
typedef struct {
    rec_data r;
    uint8_t raw[2048];
} rec_copy;

static int records_of(uint32_t acct, const char *id, rec_copy *out, int max)
{
    MDB_txn *txn;
    if (eng_read_begin(eng, &txn)) return -1;
    st_iter it;
    uint8_t p[4];
    int n = 0, rc;
    for (rc = st_iter_open(&it, txn, eng, DB_RECORDS, p, key_acct(p, acct)); rc == 0 && n < max;
         rc = st_iter_next(&it)) {
        if (it.v.mv_size > sizeof out[n].raw) continue;
        memcpy(out[n].raw, it.v.mv_data, it.v.mv_size);
        if (rec_decode(out[n].raw, it.v.mv_size, &out[n].r)) continue;
        if (out[n].r.idlen == strlen(id) && !memcmp(out[n].r.id, id, out[n].r.idlen)) n++;
    }
    st_iter_close(&it);
    eng_read_end(eng, txn);
    return n;
}

/* --- the master key file ------------------------------------------------------- */

static void test_master_file(void)
{
    char d[300], path[400], target[400], err[256];
    uint8_t k[32], k2[32];
    snprintf(d, sizeof d, "%s-mk", dir);
    mkdir(d, 0700);
    snprintf(target, sizeof target, "%s/real.key", d);
    snprintf(path, sizeof path, "%s/master.key", d);
    write_file(target, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", 0600);
    ok(symlink("real.key", path) == 0, "master.key a symbolic link to a 0600 file");
    ok(cr_master_load(path, 0, k, err, sizeof err) == 0 && k[31] == 0x1f,
       "the link is followed: its target's key (%s)", err);
    chmod(target, 0644);
    memset(k, 0xaa, sizeof k);
    is_int(cr_master_load(path, 1, k, err, sizeof err), -1,
           "a link to a key others may read is refused, create or not");
    ok(strstr(err, "0644") && is_zero(k, sizeof k), "naming the mode, the key zeroed (%s)", err);
    unlink(target);

    /* A link whose target is gone: no key is made somewhere else, and the
    ** link stays as it was. */
    memset(k, 0xaa, sizeof k);
    is_int(cr_master_load(path, 1, k, err, sizeof err), -1, "a dangling link is refused");
    ok(strstr(err, "master.key") != NULL && strstr(err, "symbolic link") != NULL &&
           is_zero(k, sizeof k),
       "the message names the file and says it is a link to nothing (%s)", err);
    struct stat st;
    ok(lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && access(target, F_OK) != 0,
       "nothing written through the link, nor in its place");
    unlink(path);

    /* Truncated, empty, too long, or not hex: refused, nothing replaced. */
    static const char *const bad[] = {
        "", "\n", "000102030405060708090a0b0c0d0e0f",
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00\n",
        " 00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"};
    int refused = 0, kept = 0;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_file(path, bad[i], 0600);
        refused += cr_master_load(path, 1, k, err, sizeof err) == -1 && is_zero(k, sizeof k);
        size_t n;
        unsigned char *b = slurp(path, &n);
        kept += b && n == strlen(bad[i]) && !memcmp(b, bad[i], n);
        free(b);
    }
    is_int(refused, 5, "truncated, empty, long or malformed key files refused, create or not");
    is_int(kept, 5, "and none of them replaced by a new key");
    unlink(path);

    /* Created: mode 0600 and nothing else left in the directory. */
    mode_t old = umask(0);
    ok(cr_master_load(path, 1, k, err, sizeof err) == 0, "a missing key file is created");
    umask(old);
    ok(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600, "mode 0600 under umask 0");
    ok(cr_master_load(path, 0, k2, err, sizeof err) == 0 && !memcmp(k, k2, 32),
       "and read back the same");
    unlink(path);
    rmdir(d);
}

/* --- data keys bound to their accounts ------------------------------------------- */

static void test_slot_swap(void)
{
    ok(account("acme") == 0 && account("bravo") == 0, "accounts acme and bravo");
    ok(call("acme", "s1", "+442079460001") == 0 && call("bravo", "s1", "+442079460002") == 0,
       "a call in each");
    uint32_t na = acct_num("acme"), nb = acct_num("bravo");
    uint8_t ka[32], kb[32];
    ok(data_key_of("acme", ka) == 0 && data_key_of("bravo", kb) == 0 && memcmp(ka, kb, 32),
       "each account has a data key of its own");

    /* Every number in both accounts: unrelated pseudonyms. */
    uint8_t pa[16], pb[16];
    cr_pseudonym(ka, "+442079460001", pa);
    cr_pseudonym(kb, "+442079460001", pb);
    ok(memcmp(pa, pb, 16) != 0, "one number, two accounts: two unrelated pseudonyms");

    /* acme's slot copied over bravo's (its account number patched). */
    sb_close(eng);
    eng = NULL;
    char path[600];
    snprintf(path, sizeof path, "%s/data.keys", dir);
    int fd = open(path, O_RDWR);
    uint8_t slot[128];
    int copied = fd >= 0 && pread(fd, slot, 128, (off_t)na * 128) == 128;
    put_be32(slot + 4, nb);
    copied = copied && pwrite(fd, slot, 128, (off_t)nb * 128) == 128;
    if (fd >= 0) close(fd);
    ok(copied, "acme's wrapped key copied into bravo's slot");
    eng = open_engine();
    ok(eng != NULL, "the engine opens (acme's slot still opens)");
    if (!eng) return;
    /* bravo's slot no longer opens: its records cannot be read. An access
    ** or erasure request must say so, not answer that there is nothing. */
    int rc = sb_records_export(eng, "bravo", "+442079460002", SB_EXPORT_JSON, res);
    ok(rc == SB_ECRYPTO, "an access request for bravo fails as the data key does not open (%s: %s)",
       sb_code_name(rc), rc ? sb_result_message(res) : sb_result_json(res, NULL));
    rc = sb_erase(eng, "bravo", "+442079460002", res);
    ok(rc == SB_ECRYPTO, "so does an erasure request (%s: %s)", sb_code_name(rc),
       rc ? sb_result_message(res) : sb_result_json(res, NULL));
    rc = call("bravo", "s2", "+442079460003");
    uint8_t kb2[32];
    ok(data_key_of("bravo", kb2) != 0 || memcmp(kb2, ka, 32) != 0,
       "a new call of bravo (%s) is never sealed with acme's key", rc ? "refused" : "taken");
    cr_wipe(ka, 32);
    cr_wipe(kb, 32);
    cr_wipe(kb2, 32);
}

/* --- sealed numbers bound to their account and call -------------------------------- */

/* Records and live calls written before version 3 still open: a record as
** version 2 stored it, and a call offered before (sealed the old way) that
** ends after. */
static void test_sealed_before_v3(uint32_t nc, const uint8_t kc[32])
{
    const char *num = "+442079460012";
    static rec_copy c2[1];
    uint8_t sealed[600];
    int rc = records_of(nc, "c2", c2, 1) == 1 ? 0 : -1;
    rec_data r = c2[0].r;
    size_t sl = seal_v2(kc, "carol", "c2", num, "", "{\"name\":\"Subject +442079460012\"}", sealed);
    r.pii = sealed;
    r.pii_len = sl;
    uint8_t rk[REC_KEY_MAX];
    size_t rkl = rec_key_of(rk, nc, "c2", 2, r.ended);
    if (!rc && sl) rc = put_v2(rk, rkl, &r);
    ok(rc == 0 && records_of(nc, "c2", c2, 1) == 1 && c2[0].r.version == 2,
       "carol's c2 replaced by a record as version 2 stored it");
    char caller[SB_E164_MAX + 1], called[SB_E164_MAX + 1];
    ok(rec_open(kc, "carol", &c2[0].r, caller, called, NULL) == 0 && !strcmp(caller, num),
       "a version 2 record opens with the associated data it was sealed with");
    ok(sb_records_export(eng, "carol", num, SB_EXPORT_JSON, res) == 0 &&
           strstr(sb_result_json(res, NULL), num) && strstr(sb_result_json(res, NULL), "\"c2\""),
       "an access request finds it, its number in the clear");

    /* A call offered before version 3, live across the upgrade. */
    const char *offer = "{\"type\":\"offer\",\"call\":\"c9\",\"queue\":\"support\","
                        "\"caller\":\"+442079460019\"}";
    ok(ev("carol", offer) == 0, "carol's call c9 offered");
    call_rec *c = calloc(1, sizeof *c);
    MDB_txn *txn;
    rc = eng_read_begin(eng, &txn);
    if (!rc) {
        rc = st_call_load(txn, eng, nc, "c9", c);
        eng_read_end(eng, txn);
    }
    sl = rc ? 0 : seal_v2(kc, "carol", "c9", "+442079460019", "", "", sealed);
    c->pii.len = 0;
    rc = sl && !buf_put(&c->pii, (const char *)sealed, sl) ? 0 : -1;
    wbuf cw = {0};
    enc_call(&cw, c);
    /* As call format 3 stored it: without sealed_v3 and withheld (format 4
    ** and 5, a byte each) and format 6's queue figures (25 bytes), its last
    ** bytes. */
    cw.b.p[0] = 3;
    cw.b.len -= 2 + 25;
    uint8_t ck[4 + SB_ID_MAX];
    put_be32(ck, nc);
    memcpy(ck + 4, "c9", 2);
    if (!rc) rc = store_put(DB_CALLS, ck, 6, cw.b.p, cw.b.len);
    buf_free(&cw.b);
    call_free(c);
    free(c);
    ok(rc == 0, "its numbers sealed as before version 3");
    now_ms += 1000;
    ok(finish("carol", "c9", NULL) == 0, "it ends: its record is written");
    static rec_copy c9[1];
    ok(records_of(nc, "c9", c9, 1) == 1 && c9[0].r.version == REC_VERSION &&
           rec_open(kc, "carol", &c9[0].r, caller, called, NULL) == 0 &&
           !strcmp(caller, "+442079460019"),
       "a record of this version whose numbers were sealed before version 3, and they open");
    ok(sb_records_export(eng, "carol", "+442079460019", SB_EXPORT_JSON, res) == 0 &&
           strstr(sb_result_json(res, NULL), "+442079460019"),
       "an access request finds it");
}

static void test_sealed_binding(void)
{
    ok(account("carol") == 0 && account("dave") == 0, "accounts carol and dave");
    ok(call("carol", "c1", "+442079460011") == 0 && call("carol", "c2", "+442079460012") == 0 &&
           call("dave", "c1", "+442079460013") == 0,
       "calls c1, c2 of carol, c1 of dave");
    now_ms += 60000;
    ok(call("carol", "c1", "+442079460014") == 0, "carol's call id c1 offered again later");
    uint32_t nc = acct_num("carol"), nd = acct_num("dave");
    static rec_copy c1[2], c2[1], d1[1];
    is_int(records_of(nc, "c1", c1, 2), 2, "carol has two records of c1");
    is_int(records_of(nc, "c2", c2, 1), 1, "and one of c2");
    is_int(records_of(nd, "c1", d1, 1), 1, "dave one of c1");
    uint8_t kc[32], kd[32];
    if (!ok(rec_key(eng, nc, "carol", 0, kc) == 0 && rec_key(eng, nd, "dave", 0, kd) == 0,
            "the data keys of carol and dave"))
        return;
    char caller[SB_E164_MAX + 1], called[SB_E164_MAX + 1];
    json_t *pa = NULL;
    ok(rec_open(kc, "carol", &c1[0].r, caller, called, &pa) == 0 &&
           !strcmp(caller, "+442079460011") &&
           !strcmp(json_string_value(json_object_get(pa, "name")), "Subject +442079460011"),
       "carol's first c1 opens: its number and personal attribute");
    json_decref(pa);

    rec_data r = c2[0].r; /* c2 with c1's sealed data */
    r.pii = c1[0].r.pii;
    r.pii_len = c1[0].r.pii_len;
    is_int(rec_open(kc, "carol", &r, caller, called, NULL), SB_ECRYPTO,
           "another call's sealed data does not open in a record of carol's");
    r = d1[0].r; /* dave's c1 with carol's c1 sealed data, either key */
    r.pii = c1[0].r.pii;
    r.pii_len = c1[0].r.pii_len;
    ok(rec_open(kd, "dave", &r, caller, called, NULL) == SB_ECRYPTO &&
           rec_open(kc, "dave", &r, caller, called, NULL) == SB_ECRYPTO,
       "nor in a record of another account with the same call id");
    r = c1[1].r; /* carol's second c1 with the first one's sealed data */
    r.pii = c1[0].r.pii;
    r.pii_len = c1[0].r.pii_len;
    int rc = rec_open(kc, "carol", &r, caller, called, NULL);
    ok(rc == SB_ECRYPTO, "nor in another record of the same call id (it opened as %s)",
       rc ? sb_code_name(rc) : caller);
    r = c1[0].r; /* and the other way round */
    r.pii = c1[1].r.pii;
    r.pii_len = c1[1].r.pii_len;
    is_int(rec_open(kc, "carol", &r, caller, called, NULL), SB_ECRYPTO,
           "nor the second record's in the first");
    r = c1[1].r; /* the offered time is what binds them */
    r.offered = c1[0].r.offered;
    is_int(rec_open(kc, "carol", &r, caller, called, NULL), SB_ECRYPTO,
           "a record whose offered time was changed does not open either");
    /* A value sealed the old way (account id NUL call id: a record of c1
    ** from before version 3) put into the record of c1 offered since. */
    uint8_t old[600];
    size_t oldlen = seal_v2(kc, "carol", "c1", "+442079460019", "", "{}", old);
    r = c1[1].r;
    r.pii = old;
    r.pii_len = oldlen;
    rc = rec_open(kc, "carol", &r, caller, called, NULL);
    ok(oldlen && rc == SB_ECRYPTO,
       "nor a value sealed before version 3 for the same call id (it opened as %s)",
       rc ? sb_code_name(rc) : caller);
    test_sealed_before_v3(nc, kc);
    cr_wipe(kc, 32);
    cr_wipe(kd, 32);
}

/* --- account deletion shreds the data key -------------------------------------------- */

static void test_delete_shreds(void)
{
    ok(account("erin") == 0 && call("erin", "e1", "+442079460021") == 0, "account erin, a call");
    uint32_t ne = acct_num("erin");
    uint8_t ke[32];
    ok(data_key_of("erin", ke) == 0, "erin's data key opens from data.keys");

    /* A second engine of this process on the directory, which used the key. */
    sb_config cfg;
    test_engine_config(&cfg, dir, "policies", RECKIT_MAP_SIZE);
    sb_engine *e2 = test_open(&cfg, res);
    ok(e2 && sb_records_export(e2, "erin", "+442079460021", SB_EXPORT_JSON, res) == 0,
       "a second engine reads erin's records");

    ok(sb_account_delete(eng, "erin", res) == 0, "erin deleted");
    char path[600];
    snprintf(path, sizeof path, "%s/data.keys", dir);
    size_t len;
    unsigned char *b = slurp(path, &len);
    ok(b && len >= (size_t)(ne + 1) * 128 && is_zero(b + (size_t)ne * 128, 128),
       "erin's slot is all zeros");
    uint8_t k[32];
    ok(data_key_of("erin", k) == -1, "no slot of data.keys opens for erin");
    free(b);
    uint8_t got[32];
    int rc = rec_key(eng, ne, "erin", 0, got);
    ok(rc == REC_NO_KEY && is_zero(got, 32), "the deleting engine no longer has the key");
    if (e2) {
        rc = rec_key(e2, ne, "erin", 0, got);
        ok(rc == REC_NO_KEY, "nor does another engine of the process (%s)",
           rc ? sb_code_name(rc) : "kept");
        cr_wipe(got, 32);
        sb_close(e2);
    }
    cr_wipe(ke, 32);
}

/* --- API keys ------------------------------------------------------------------------- */

static int cost(const char *account, const char *key, int *rc)
{
    atomic_store(&hashes, 0);
    *rc = sb_apikey_verify(eng, account, key, strlen(key));
    return atomic_load(&hashes);
}

static void test_apikeys(void)
{
    ok(account("frank") == 0, "account frank");
    char keys[3][64];
    long long created[3] = {0};
    int made = 0;
    for (int i = 0; i < 3; i++) {
        json_t *d = doc(sb_apikey_create(eng, "frank", res));
        const char *s = jstr(d, "key");
        made += strlen(s) == CR_APIKEY_LEN && !strncmp(s, "sbk_", 4);
        snprintf(keys[i], sizeof keys[i], "%s", s);
        created[i] = jint(d, "created_ms");
        json_decref(d);
    }
    is_int(made, 3, "three API keys for frank, sbk_ and 43 characters");

    /* Never stored: neither the key nor any part of its random body. */
    char path[600];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    size_t len;
    unsigned char *b = slurp(path, &len);
    int found = 0;
    for (int i = 0; i < 3; i++)
        for (size_t o = 0; b && o + 16 <= len; o++)
            if (!memcmp(b + o, keys[i] + 4, 16)) found++;
    free(b);
    is_int(found, 0, "data.mdb holds no key, nor 16 characters of one");
    json_t *l = doc(sb_apikey_list(eng, "frank", res));
    ok(l && !strstr(sb_result_json(res, NULL), keys[0] + 4), "the list shows ids, not keys");
    int dated = 0;
    for (size_t i = 0; i < json_array_size(json_object_get(l, "keys")); i++) {
        long long c = jint(json_array_get(json_object_get(l, "keys"), i), "created_ms");
        dated += c > 0 && (c == created[0] || c == created[1] || c == created[2]);
    }
    ok(created[0] > 0 && dated == 3, "each key listed with when it was made (%s)",
       sb_result_json(res, NULL));
    json_decref(l);
    /* A key stored before keys kept their time (the hash alone) verifies,
    ** and lists without one. */
    char oldkey[64];
    cr_apikey_new(oldkey);
    uint8_t h[CR_APIKEY_HASH_BYTES];
    cr_apikey_hash(eng->master, "frank", oldkey, strlen(oldkey), h);
    MDB_txn *txn;
    acct_rec fr;
    int wrc = mdb_txn_begin(eng->env, NULL, 0, &txn);
    if (!wrc) wrc = st_account_by_id(txn, eng, "frank", &fr);
    uint8_t kb[4 + 16];
    put_be32(kb, fr.num);
    memcpy(kb + 4, "00000000000000aa", 16);
    if (!wrc) wrc = st_put(txn, eng, DB_APIKEYS, kb, sizeof kb, h, sizeof h);
    if (!wrc)
        wrc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    ok(wrc == 0 && sb_apikey_verify(eng, "frank", oldkey, strlen(oldkey)) == 0,
       "a key stored as its hash alone (before 0.2.0) verifies");
    l = doc(sb_apikey_list(eng, "frank", res));
    json_t *first = json_array_get(json_object_get(l, "keys"), 0);
    ok(first && !strcmp(jstr(first, "key_id"), "00000000000000aa") &&
           !json_object_get(first, "created_ms"),
       "and lists with no created_ms");
    json_decref(l);
    ok(sb_apikey_revoke(eng, "frank", "00000000000000aa", res) == 0, "and is revoked as any");

    int rc, good = cost("frank", keys[2], &rc);
    ok(rc == 0, "frank's third key verifies");
    int wrong = cost("frank", "sbk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &rc);
    ok(rc == SB_EAUTH, "a wrong key for frank is refused");
    int ghost = cost("ghost", "sbk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &rc);
    ok(rc == SB_EAUTH, "any key of an account that does not exist is refused");
    is_int(ghost, wrong,
           "an unknown account costs what a wrong key of an account with three keys does");
    is_int(good, wrong, "a right key costs what a wrong one does");
    ok(cost("frank", keys[0], &rc) == good && rc == 0,
       "whichever of the keys it is (first or last)");
    ok(sb_apikey_verify(eng, "bravo", keys[0], strlen(keys[0])) == SB_EAUTH,
       "frank's key is no key of another account");
}

/* --- file modes: the data directory and a backup --------------------------------------- */

/* Regular files in d that group or others may read or write; their names
** in out. */
static int open_files(const char *d, char *out, size_t cap)
{
    DIR *dh = opendir(d);
    struct dirent *de;
    int n = 0;
    out[0] = 0;
    while (dh && (de = readdir(dh))) {
        char p[900];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", d, de->d_name);
        if (lstat(p, &st) || !S_ISREG(st.st_mode) || !(st.st_mode & 077)) continue;
        n++;
        size_t l = strlen(out);
        snprintf(out + l, cap - l, " %s(%04o)", de->d_name, (unsigned)(st.st_mode & 07777));
    }
    if (dh) closedir(dh);
    return n;
}

static void test_modes(void)
{
    char names[512];
    mode_t old = umask(022);
    is_int(open_files(dir, names, sizeof names), 0,
           "no file of the data directory is open to others%s", names);
    struct stat st = {0};
    stat(dir, &st);
    ok((st.st_mode & 077) == 0, "the data directory is 0700 (%04o)",
       (unsigned)(st.st_mode & 07777));

    /* Into a directory of its own: made 0700. */
    char bdir[400];
    snprintf(bdir, sizeof bdir, "%s-backup", dir);
    ok(sb_backup(eng, bdir, res) == 0, "a backup into a new directory");
    memset(&st, 0, sizeof st);
    stat(bdir, &st);
    ok(S_ISDIR(st.st_mode) && (st.st_mode & 077) == 0, "made with mode 0700 (%04o)",
       (unsigned)(st.st_mode & 07777));
    is_int(open_files(bdir, names, sizeof names), 0, "its files are open to nobody else%s", names);
    char kp[600];
    snprintf(kp, sizeof kp, "%s/master.key", bdir);
    ok(access(kp, F_OK) != 0, "and the master key is not among them");
    rmtree(bdir);

    /* Into an empty directory others may enter: not a byte of the copy is
    ** written while they could open the file. */
    mkdir(bdir, 0755);
    chmod(bdir, 0755);
    snprintf(watch_dir, sizeof watch_dir, "%s", bdir);
    atomic_store(&exposed_writes, 0);
    int rc = sb_backup(eng, bdir, res);
    watch_dir[0] = 0;
    ok(rc == 0, "a backup into an existing empty directory (0755)");
    is_int(open_files(bdir, names, sizeof names), 0, "its files end up open to nobody else%s",
           names);
    int w = atomic_load(&exposed_writes);
    ok(w == 0, "no write while the copy was open to others (%d were)", w);
    rmtree(bdir);
    umask(old);
}

/* An account deleted (by another engine, as a daemon beside the backup
** command) after the backup's snapshot of data.mdb and before its copy of
** data.keys: the copy would hold the account without its data key, a
** backup that does not open. */
static sb_engine *other;

static void delete_gina(void)
{
    if (sb_account_delete(other, "gina", res)) diag("delete gina: %s", sb_result_message(res));
}

static void test_backup_during_delete(void)
{
    ok(account("gina") == 0 && call("gina", "g1", "+442079460031") == 0, "account gina, a call");
    sb_config cfg;
    test_engine_config(&cfg, dir, "policies", RECKIT_MAP_SIZE);
    other = test_open(&cfg, res);
    ok(other != NULL, "a second engine on the directory");
    if (!other) return;
    char bdir[400];
    snprintf(bdir, sizeof bdir, "%s-backup", dir);
    rmtree(bdir);
    on_mdb_synced = delete_gina;
    int rc = sb_backup(eng, bdir, res);
    ok(rc == 0 && on_mdb_synced == NULL, "a backup while gina is deleted between its copies (%s)",
       sb_result_message(res));
    on_mdb_synced = NULL;
    sb_close(other);
    other = NULL;

    char key[600];
    snprintf(key, sizeof key, "%s/master.key", dir);
    sb_config bc;
    test_engine_config(&bc, bdir, NULL, 0);
    bc.key_file = key;
    sb_engine *be = test_open(&bc, res);
    ok(be != NULL, "the backup opens with the master key (%s)", be ? "" : sb_result_message(res));
    if (be) {
        ok(sb_account_get(be, "gina", res) == SB_ENOTFOUND && sb_account_get(be, "frank", res) == 0,
           "without gina, as the data directory after the deletion");
        sb_close(be);
    }
    rmtree(bdir);
}

/* The actions of call `id` that tick gave back with `reason` (NULL: any). */
static int actions_of(sb_engine *e, const char *id, const char *type, const char *reason)
{
    json_t *d = doc(sb_tick(e, res)), *a;
    size_t i;
    int n = 0;
    json_array_foreach(json_object_get(d, "actions"), i, a)
    {
        n += !strcmp(jstr(a, "call"), id) && !strcmp(jstr(a, "type"), type) &&
             (!reason || !strcmp(jstr(a, "reason"), reason));
    }
    json_decref(d);
    return n;
}

/* A backup holds the calls in progress with their timers: restored after
** the ring timeout of one fell due, that timer fires once, at the first
** tick, as the daemon's start does (switchboard(1), backup). */
static void test_restored_timers(void)
{
    ok(account("hank") == 0 &&
           ev("hank", "{\"type\":\"offer\",\"call\":\"h1\",\"queue\":\"support\","
                      "\"caller\":\"+442079460041\"}") == 0,
       "account hank, a call ringing a1");
    char bdir[400], key[600];
    snprintf(bdir, sizeof bdir, "%s-backup", dir);
    rmtree(bdir);
    ok(sb_backup(eng, bdir, res) == 0, "a backup while it rings (%s)", sb_result_message(res));
    now_ms += 10 * 60000; /* the daemon down past the ring timeout */
    snprintf(key, sizeof key, "%s/master.key", dir);
    sb_config bc;
    test_engine_config(&bc, bdir, "policies", 0);
    bc.key_file = key;
    sb_engine *be = test_open(&bc, res);
    ok(be != NULL, "the backup opens");
    if (!be) return;
    is_int(actions_of(be, "h1", "cancel", "ring timeout"), 1,
           "its first tick ends the ring that timed out while it was down");
    is_int(actions_of(be, "h1", "cancel", NULL), 0, "once: the next tick has nothing for it");
    json_t *c = doc(sb_call_get(be, "hank", "h1", res));
    ok(c && strcmp(jstr(c, "state"), "ended") != 0,
       "the call is in progress again in the restored copy (%s)", jstr(c, "state"));
    json_decref(c);
    sb_close(be);
    rmtree(bdir);
}

/* Memory locked by this process, from /proc/self/status (kB; -1: unknown). */
static long locked_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmLck: %ld kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

/* The master key and the data-key cache stay out of swap and core dumps:
** locked in memory while an engine is open, where the limits allow. */
static void test_locked(void)
{
#if defined(__SANITIZE_ADDRESS__)
    ok(1, "# SKIP AddressSanitizer takes mlock over and locks nothing");
    return;
#endif
    struct rlimit rl;
    if (getrlimit(RLIMIT_MEMLOCK, &rl) || rl.rlim_cur < 64 * 1024 || locked_kb() < 0) {
        ok(1, "# SKIP RLIMIT_MEMLOCK under 64 KiB or no VmLck here");
        return;
    }
    ok(locked_kb() > 0, "an open engine holds its keys in locked memory (%ld kB)", locked_kb());
}

int main(void)
{
    if (start_engine("keys-audit")) return done_testing();
    test_master_file();
    test_slot_swap();
    if (eng) {
        test_sealed_binding();
        test_delete_shreds();
        test_apikeys();
        test_modes();
        test_backup_during_delete();
        test_restored_timers();
        test_locked();
        sb_close(eng);
    }
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
}
