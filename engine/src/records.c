/*
** records.c — call records: account settings for them, data keys, sealing
** the personal data of live calls, writing a record with its pseudonym
** index entries and aggregates in the call's final transaction, and reading
** records back. Retention (reviews, erasure, holds, sweeps) is retention.c.
*/
#include "records.h"
#include "crypto.h"
#include "jsonv.h"
#include "schedule.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Records: REC_VERSION (records.h); 1 was before sealing (no numbers at all),
** 2 before the review due and the offered time in the associated data, 3
** before a rejected call's reason. */
#define V_SETTINGS 3 /* 1: before audit_days, 2: before timezone */
#define V_AGGR 1
#define KEY_SLOT 128
#define KEY_MAGIC "SBK1"
#define PREV_AGENT_LOOK 16 /* index entries read back for caller history */
/* A slot: magic(4) acct(4) wrapped key(72) the master key's check value(16)
** (zeros in slots written before there was one), then zeros. */
#define SLOT_WRAPPED 8
#define SLOT_CHECK (SLOT_WRAPPED + CR_WRAPPED_BYTES)
_Static_assert(SLOT_CHECK + CR_MASTER_CHECK_BYTES <= KEY_SLOT, "key slot layout");
/* What key_read found besides a key (0) or no slot (SB_ECRYPTO). */
enum {
    KEY_UNCHECKED = 1,                    /* the key, from a slot without a check value */
    KEY_STALE = SB_ECRYPTO - 1000,        /* a slot of this master key that does not open: one
                                          ** left for another account id by a creation that
                                          ** never committed (or without a check value) */
    KEY_OTHER_MASTER = SB_ECRYPTO - 1001, /* a slot wrapped by another master key */
};

static const char *const outcome_names[OUT_COUNT] = {"",         "answered",   "abandoned",
                                                     "rejected", "overflowed", "failed"};

const char *rec_outcome_name(int o)
{
    return o > 0 && o < OUT_COUNT ? outcome_names[o] : "failed";
}

int rec_outcome_parse(const char *s)
{
    for (int i = 1; s && i < OUT_COUNT; i++)
        if (strcmp(s, outcome_names[i]) == 0) return i;
    return OUT_FAILED;
}

/* A key of a table with a tree of its own or shared: the table byte first
** (engine.h), for the cursor seeks st_iter does not offer. */
static MDB_val tkey(uint8_t *buf, int table, const void *k, size_t kl)
{
    buf[0] = (uint8_t)(table + 1);
    memcpy(buf + 1, k, kl);
    return (MDB_val){kl + 1, buf};
}

/* The period of the index entries of a call that ended then (below: the
** index entries). */
#define TIDX_SHIFT 29 /* a period: 2^29 ms, 6.2 days */
static unsigned tidx_period(int64_t ended)
{
    if (ended <= 0) return 0;
    uint64_t p = (uint64_t)ended >> TIDX_SHIFT;
    return p > 0xFFFF ? 0xFFFF : (unsigned)p;
}

static void put_period(uint8_t *k, unsigned period)
{
    k[0] = (uint8_t)(period >> 8);
    k[1] = (uint8_t)period;
}

static unsigned period_at(const uint8_t *k)
{
    return (unsigned)k[0] << 8 | k[1];
}

static int period_near(MDB_cursor *c, int table, uint32_t acct, unsigned from, unsigned *got);

/* --- settings ------------------------------------------------------------- */

void rec_settings_default(rec_settings *s)
{
    s->retention[0] = 0;
    s->epoch = 0;
    s->sl_seconds = REC_SL_DEFAULT;
    s->npersonal = 0;
    s->audit_days = 0;
    s->tz[0] = 0;
}

int rec_settings_decode(const MDB_val *v, rec_settings *s)
{
    rbuf r;
    rec_settings_default(s);
    rb_init(&r, v->mv_data, v->mv_size);
    int ver = rb_u8(&r);
    rb_str(&r, s->retention, sizeof s->retention);
    s->epoch = rb_u32(&r);
    s->sl_seconds = rb_u32(&r);
    s->npersonal = rb_u8(&r);
    if (s->npersonal > REC_PERSONAL_MAX) r.err = 1, s->npersonal = 0;
    for (int i = 0; i < s->npersonal; i++)
        rb_str(&r, s->personal[i], sizeof s->personal[i]);
    if (ver >= 2) s->audit_days = rb_u32(&r);      /* version 1 had none: kept for ever */
    if (ver >= 3) rb_str(&r, s->tz, sizeof s->tz); /* before 3 none: UTC */
    if (r.err || ver < 1 || ver > V_SETTINGS || r.p != r.end) {
        rec_settings_default(s);
        return SB_ESTORE;
    }
    return 0;
}

int rec_settings_load(MDB_txn *txn, sb_engine *e, uint32_t acct, rec_settings *s)
{
    uint8_t k[4];
    MDB_val v;
    rec_settings_default(s);
    int rc = st_get_hot(txn, e, DB_PRIVACY, k, key_acct(k, acct), &v);
    if (rc == MDB_NOTFOUND) return 0;
    return rc ? rc : rec_settings_decode(&v, s);
}

static int attr_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > REC_ATTR_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c == 0x7f || c == '"' || c == '\\') return 0;
    }
    return 1;
}

int rec_settings_parse(const json_t *doc, rec_settings *s, sb_result *res)
{
    json_t *r = json_object_get(doc, "retention");
    if (r && !json_is_null(r)) {
        const char *name = json_string_value(r);
        if (!name || !policy_name_valid(name) || strlen(name) > SB_NAME_MAX)
            return res_err(res, SB_EINVAL, "retention",
                           "'retention' must be a policy name like \"retention/keep-90-days-then-"
                           "delete\", or null to keep records forever");
        strcpy(s->retention, name);
    } else if (r) {
        s->retention[0] = 0;
    }
    json_t *p = json_object_get(doc, "personal_attrs");
    if (p && !json_is_null(p)) {
        if (!json_is_array(p) || json_array_size(p) > REC_PERSONAL_MAX)
            return res_err(res, SB_EINVAL, "personal_attrs",
                           "'personal_attrs' must be a list of at most %d attribute names",
                           REC_PERSONAL_MAX);
        size_t i;
        json_t *v;
        s->npersonal = 0;
        json_array_foreach(p, i, v)
        {
            const char *name = json_string_value(v);
            if (!name || !attr_name_valid(name)) {
                char path[64];
                snprintf(path, sizeof path, "personal_attrs[%zu]", i);
                return res_err(res, SB_EINVAL, path, "attribute names are 1..%d printable bytes",
                               REC_ATTR_NAME_MAX);
            }
            for (int j = 0; j < s->npersonal; j++)
                if (!strcmp(s->personal[j], name)) {
                    char path[64];
                    snprintf(path, sizeof path, "personal_attrs[%zu]", i);
                    return res_err(res, SB_EINVAL, path, "'%s' is listed twice", name);
                }
            strcpy(s->personal[s->npersonal++], name);
        }
    } else if (p) {
        s->npersonal = 0;
    }
    long long sl = s->sl_seconds;
    int rc = jv_int(doc, "service_level_seconds", NULL, 0, 1, 3600, &sl, res);
    if (rc) return rc;
    s->sl_seconds = (uint32_t)sl;
    json_t *ad = json_object_get(doc, "audit_days");
    long long days = s->audit_days;
    if (ad && json_is_null(ad))
        days = 0;
    else if (ad && jv_int(doc, "audit_days", NULL, 0, 1, REC_AUDIT_DAYS_MAX, &days, res))
        return res_err(res, SB_EINVAL, "audit_days",
                       "'audit_days' must be a whole number of days from 1 to %d, or null to "
                       "keep the audit log as long as the account",
                       REC_AUDIT_DAYS_MAX);
    s->audit_days = (uint32_t)days;
    json_t *tz = json_object_get(doc, "timezone");
    if (tz && json_is_null(tz)) {
        s->tz[0] = 0;
    } else if (tz) {
        const char *name = json_string_value(tz);
        if (!name || strlen(name) > REC_TZ_MAX || !tz_valid(name))
            return res_err(res, SB_EINVAL, "timezone",
                           "'timezone' must be a known IANA zone name, such as "
                           "\"America/New_York\", or null for UTC");
        strcpy(s->tz, name);
    }
    return 0;
}

static void enc_settings(wbuf *w, const rec_settings *s)
{
    wb_u8(w, V_SETTINGS);
    wb_str(w, s->retention);
    wb_u32(w, s->epoch);
    wb_u32(w, s->sl_seconds);
    wb_u8(w, (uint8_t)s->npersonal);
    for (int i = 0; i < s->npersonal; i++)
        wb_str(w, s->personal[i]);
    wb_u32(w, s->audit_days);
    wb_str(w, s->tz);
}

int rec_settings_save(wtx *t, uint32_t acct, const rec_settings *s)
{
    rec_settings old, cur = *s;
    int rc = rec_settings_load(t->txn, t->e, acct, &old);
    if (rc && rc != SB_ESTORE) return rc;
    cur.epoch = old.epoch;
    if (s->retention[0] && strcmp(s->retention, old.retention) != 0) {
        rc = ret_rescan(t, acct, old.epoch + 1);
        if (rc < 0 || IS_SB_ERR(rc)) return rc;
        if (rc == 1) cur.epoch = old.epoch + 1;
    }
    wbuf w = {0};
    enc_settings(&w, &cur);
    uint8_t k[4];
    rc = w.err ? SB_ENOMEM : st_put(t->txn, t->e, DB_PRIVACY, k, key_acct(k, acct), w.b.p, w.b.len);
    buf_free(&w.b);
    return rc;
}

void rec_settings_json(const rec_settings *s, json_t *o)
{
    json_object_set_new(o, "retention", s->retention[0] ? json_string(s->retention) : json_null());
    json_t *arr = json_array();
    for (int i = 0; i < s->npersonal; i++)
        json_array_append_new(arr, json_string(s->personal[i]));
    json_object_set_new(o, "personal_attrs", arr);
    json_object_set_new(o, "service_level_seconds", json_integer(s->sl_seconds));
    json_object_set_new(o, "audit_days", s->audit_days ? json_integer(s->audit_days) : json_null());
    json_object_set_new(o, "timezone", s->tz[0] ? json_string(s->tz) : json_null());
}

/* --- data keys ------------------------------------------------------------ */

static int key_read(rec_state *rs, const uint8_t master[32], uint32_t acct, const char *account,
                    uint8_t key[32]);

static int apisub_load(sb_engine *e, sb_result *res);

/* Does acct have a slot (of any master key)? */
static int slot_present(rec_state *rs, uint32_t acct)
{
    uint8_t head[8];
    ssize_t n = pread(rs->keyfd, head, sizeof head, (off_t)acct * KEY_SLOT);
    return n == (ssize_t)sizeof head && memcmp(head, KEY_MAGIC, 4) == 0 && be32(head + 4) == acct;
}

/* The environment variable that lets an engine open whose data key file
** lacks the keys of some accounts (lost for good): they get new keys. */
#define LOST_KEYS_ENV "SWITCHBOARD_DATA_KEYS_LOST"

typedef struct check_arg {
    sb_engine *e;
    int slots, opened, missing, accounts;
    char first[SB_ID_MAX + 1], lost[SB_ID_MAX + 1];
} check_arg;

/* Run fn(arg, num, id) for every account data.mdb holds, in one read
** transaction; stops at fn's first non-zero, which it returns. */
static int each_account(sb_engine *e, int (*fn)(void *arg, uint32_t num, const char *id), void *arg,
                        sb_result *res)
{
    MDB_txn *txn;
    int rc = eng_read_begin(e, &txn), frc = 0;
    if (rc) return eng_mdb_err(res, rc, "read accounts");
    st_iter it;
    uint8_t p[5] = {NK_ACCOUNT, 0, 0, 0, 0};
    for (rc = st_iter_open(&it, txn, e, DB_NAMES, p, sizeof p); rc == 0 && !frc;
         rc = st_iter_next(&it)) {
        if (it.v.mv_size != 4 || it.klen <= 5 || it.klen > 5 + SB_ID_MAX) continue;
        char id[SB_ID_MAX + 1];
        memcpy(id, it.key + 5, it.klen - 5);
        id[it.klen - 5] = 0;
        frc = fn(arg, be32(it.v.mv_data), id);
    }
    st_iter_close(&it);
    eng_read_end(e, txn);
    if (frc) return frc;
    if (rc != 0 && rc != MDB_NOTFOUND) return eng_mdb_err(res, rc, "read accounts");
    return 0;
}

static int check_one(void *arg, uint32_t num, const char *id)
{
    check_arg *a = arg;
    uint8_t key[32];
    a->accounts++;
    if (!slot_present(a->e->rec, num)) {
        if (!a->missing++) str_copy(a->lost, sizeof a->lost, id);
        return 0;
    }
    if (a->opened) return 0; /* one that opens is enough */
    int kr = key_read(a->e->rec, a->e->master, num, id, key);
    cr_wipe(key, sizeof key);
    if (kr == 0 || kr == KEY_UNCHECKED) a->opened = 1;
    if ((kr == KEY_STALE || kr == KEY_OTHER_MASTER) && !a->slots++)
        str_copy(a->first, sizeof a->first, id);
    return 0;
}

/* What to do about a master key that is not the directory's. After a
** rotation (slot 0 of data.keys, APISUB_SLOT below, is there) the
** likely cause is a daemon or a command still given the key from before it. */
static const char *which_key(sb_engine *e)
{
    if (slot_present(e->rec, 0)) /* APISUB_SLOT */
        return "its master key has been rotated (switchboard key rotate), so give the key file it "
               "was rotated to (key_file; --key-file for a switchboard command)";
    return "give the key file this data was written with (key_file; --key-file for a "
           "switchboard command)";
}

/* The data key file must hold a key for every account and the master key
** must be the one they were wrapped with.
**
** Every account has a slot from its creation (made in the transaction that
** creates it, wiped only after its deletion commits), so an account without
** one means data.keys was lost, emptied or replaced (a backup restored
** without it): a new key would leave what was sealed unreadable, and access
** and erasure requests would find nothing while saying they looked. So the
** engine does not open, unless LOST_KEYS_ENV says the keys are lost for
** good.
**
** A master key that is not the one (another key_file, a key file replaced)
** opens no slot: every read of sealed data would fail, and a slot without a
** check value would be taken for one left by a creation that never
** committed and get a new key (everything sealed before lost). So an engine
** opens only when an account's slot opens with its key, or when no account
** has a slot yet. */
static int master_check(sb_engine *e, sb_result *res)
{
    check_arg a = {.e = e};
    int rc = each_account(e, check_one, &a, res);
    if (rc) return rc;
    int slots = a.slots, opened = a.opened, missing = a.missing, accounts = a.accounts;
    const char *first = a.first, *lost = a.lost;
    if (missing && !getenv(LOST_KEYS_ENV))
        return res_err(res, SB_ECRYPTO, "data_dir",
                       "%s/data.keys holds no data key for account '%s'%s (%d of %d accounts), "
                       "and every account has one from its creation: the file was lost, emptied "
                       "or replaced. Restore it from the backup this data came from (switchboard "
                       "backup copies both files); new keys would leave the numbers sealed "
                       "before unreadable and access and erasure requests finding none of them. "
                       "If the keys are lost for good, set %s=1 once to open with new keys",
                       e->data_dir, lost, missing > 1 ? " and others" : "", missing, accounts,
                       LOST_KEYS_ENV);
    if (missing)
        sb_log(e, SB_LOG_ERROR,
               "%s/data.keys holds no data key for account '%s'%s (" OWN_D " of " OWN_D
               " accounts): %s is set, "
               "so each gets a new one; the numbers sealed before cannot be read or found again",
               e->data_dir, lost, missing > 1 ? " and others" : "", missing, accounts,
               LOST_KEYS_ENV);
    if (!opened && slots)
        return res_err(res, SB_ECRYPTO, "key_file",
                       "master key %s is not the one this data directory's data keys were made "
                       "with (the data key of account '%s'%s does not open with it): %s",
                       e->key_file, first, slots > 1 ? " and others" : "", which_key(e));
    return 0;
}

int records_open(sb_engine *e, sb_result *res)
{
    rec_state *rs = calloc(1, sizeof *rs);
    if (!rs) return res_err(res, SB_ENOMEM, NULL, "out of memory");
    cr_protect(rs->kc, sizeof rs->kc);
    pthread_mutex_init(&rs->mu, NULL);
    pthread_mutex_init(&rs->held_mu, NULL);
    char path[4096];
    snprintf(path, sizeof path, "%s/data.keys", e->data_dir);
    /* Made when missing, and removed again when the open is refused (a
    ** data.mdb whose accounts have no keys: a backup restored without its
    ** data.keys): an empty file left there would be taken for the data
    ** keys by whoever looks, and a check of a backup would change it. */
    int made = 0;
    /* A data.keys.rotate left by a rotation that crashed before its rename
    ** (sb_master_key_rotate) holds every data key wrapped under a key that
    ** is on disk too: a deletion wipes an account's slot in data.keys only,
    ** so that copy would keep what the deletion shreds. No rotation is
    ** writing it: one holds LMDB's lock on the directory alone while it
    ** does, and this engine holds it shared since env_acquire. */
    char left[4096 + 16];
    snprintf(left, sizeof left, "%s/data.keys.rotate", e->data_dir);
    if (unlink(left) == 0)
        sb_log(e, SB_LOG_WARN,
               "%s removed: left by a master key rotation that did not finish (the data keys "
               "stay under the key they were under before it)",
               left);
    rs->keyfd = open(path, O_RDWR | O_CLOEXEC);
    if (rs->keyfd < 0 && errno == ENOENT) {
        rs->keyfd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        made = rs->keyfd >= 0;
        if (rs->keyfd < 0 && errno == EEXIST) rs->keyfd = open(path, O_RDWR | O_CLOEXEC);
    }
    e->rec = rs;
    if (rs->keyfd < 0)
        return res_err(res, SB_ECRYPTO, "data_dir", "cannot open the data key file %s: %s", path,
                       strerror(errno));
    int rc = master_check(e, res);
    if (!rc) rc = apisub_load(e, res);
    if (rc && made) unlink(path);
    return rc;
}

/* The end of writing a new data key file out (path, for messages): synced
** and closed whatever happened; err, the errno of a write that failed (0:
** none), or of the sync or close, is the error, SB_EFULL when it says there
** was no room (the disk, a quota, the file size limit: as write_slot). */
static int keys_written(int out, int err, const char *path, const char *field, sb_result *res)
{
    if (!err && fsync(out)) err = errno;
    if (close(out) && !err) err = errno;
    if (err)
        return res_err(res, err == ENOSPC || err == EDQUOT || err == EFBIG ? SB_EFULL : SB_ESTORE,
                       field, "cannot write %s: %s", path, strerror(err));
    return 0;
}

int rec_keys_copy(sb_engine *e, int out, const char *path, sb_result *res)
{
    rec_state *rs = e->rec;
    if (!rs || rs->keyfd < 0) {
        close(out);
        return res_err(res, SB_ECRYPTO, NULL, "no data key file open");
    }
    /* Under the lock this engine writes slots with: a slot is copied whole. */
    pthread_mutex_lock(&rs->mu);
    uint8_t buf[1 << 14];
    off_t at = 0;
    int err = 0;
    for (;;) {
        ssize_t n = pread(rs->keyfd, buf, sizeof buf, at);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            err = n < 0 ? errno : 0;
            break;
        }
        for (ssize_t w = 0; w < n && !err;) {
            ssize_t m = write(out, buf + w, (size_t)(n - w));
            if (m < 0 && errno != EINTR) err = errno;
            if (m > 0) w += m;
        }
        if (err) break;
        at += n;
    }
    pthread_mutex_unlock(&rs->mu);
    cr_wipe(buf, sizeof buf);
    return keys_written(out, err, path, "dest", res);
}

void records_close(sb_engine *e)
{
    rec_state *rs = e->rec;
    if (!rs) return;
    ret_free(e);
    if (rs->keyfd >= 0) close(rs->keyfd);
    cr_unprotect(rs->kc, sizeof rs->kc);
    if (rs->tmp.p) cr_wipe(rs->tmp.p, rs->tmp.cap);
    buf_free(&rs->tmp);
    pthread_mutex_destroy(&rs->mu);
    pthread_mutex_destroy(&rs->held_mu);
    free(rs);
    e->rec = NULL;
}

/* The account's key from its slot: 0 (KEY_UNCHECKED: from a slot without a
** check value); SB_ECRYPTO when it has no slot; KEY_STALE or
** KEY_OTHER_MASTER when its slot does not open; SB_ESTORE. */
static int key_read(rec_state *rs, const uint8_t master[32], uint32_t acct, const char *account,
                    uint8_t key[32])
{
    uint8_t slot[KEY_SLOT], check[CR_MASTER_CHECK_BYTES], none[CR_MASTER_CHECK_BYTES] = {0};
    ssize_t n = pread(rs->keyfd, slot, sizeof slot, (off_t)acct * KEY_SLOT);
    if (n < 0) return SB_ESTORE;
    int rc = SB_ECRYPTO;
    if (n == KEY_SLOT && memcmp(slot, KEY_MAGIC, 4) == 0 && be32(slot + 4) == acct) {
        int unchecked = memcmp(slot + SLOT_CHECK, none, sizeof none) == 0;
        cr_master_check(master, check);
        if (cr_unwrap(master, account, slot + SLOT_WRAPPED, key) == 0)
            rc = unchecked ? KEY_UNCHECKED : 0;
        else if (unchecked || cr_equal(slot + SLOT_CHECK, check, sizeof check))
            rc = KEY_STALE;
        else
            rc = KEY_OTHER_MASTER;
    } else {
        cr_wipe(key, 32);
    }
    cr_wipe(slot, sizeof slot);
    return rc;
}

/* SB_EFULL when there was no room for the slot (a full disk, a quota, the
** file size limit; a short write is the disk filling up), else SB_ESTORE. */
static int write_slot(int fd, uint32_t acct, const uint8_t slot[KEY_SLOT], int sync)
{
    ssize_t n = pwrite(fd, slot, KEY_SLOT, (off_t)acct * KEY_SLOT);
    int err = n == KEY_SLOT ? 0 : n < 0 ? errno : ENOSPC;
    if (!err && sync && fdatasync(fd)) err = errno;
    if (!err) return 0;
    return err == ENOSPC || err == EDQUOT || err == EFBIG ? SB_EFULL : SB_ESTORE;
}

/* The slot of acct holding key wrapped under master with account as its
** associated data, and master's check value. -1 only for a NULL account. */
static int make_slot(const uint8_t master[32], uint32_t acct, const char *account,
                     const uint8_t key[32], uint8_t slot[KEY_SLOT])
{
    memset(slot, 0, KEY_SLOT);
    memcpy(slot, KEY_MAGIC, 4);
    put_be32(slot + 4, acct);
    cr_master_check(master, slot + SLOT_CHECK);
    return cr_wrap(master, account, key, slot + SLOT_WRAPPED);
}

/* Data keys destroyed in this process (account deletions): every engine's
** cache forgets what it holds when this moves; engines of other processes
** forget at their next write transaction (rec_keys_forget). */
static uint64_t key_epoch;

/* rec_key, and with psub (not NULL) the key's pseudonym subkey too, kept
** with the key: every offer makes a pseudonym (rec_seal_call). */
static int key_get(sb_engine *e, uint32_t acct, const char *account, int create, uint8_t key[32],
                   uint8_t psub[32])
{
    rec_state *rs = e->rec;
    if (!rs || rs->keyfd < 0) return SB_ECRYPTO;
    int rc = 0;
    pthread_mutex_lock(&rs->mu);
    uint64_t epoch = __atomic_load_n(&key_epoch, __ATOMIC_ACQUIRE);
    if (epoch != rs->kc_epoch) {
        cr_wipe(rs->kc, sizeof rs->kc);
        rs->kc_epoch = epoch;
    }
    rec_keyc *c = &rs->kc[acct & 63];
    if (c->acct == acct && strcmp(c->id, account) == 0) {
        memcpy(key, c->key, 32);
        if (psub) memcpy(psub, c->psub, 32);
        goto out;
    }
    rc = key_read(rs, e->master, acct, account, key);
    if (rc == SB_ECRYPTO) rc = REC_NO_KEY; /* no slot: nothing was sealed */
    if (create && (rc == REC_NO_KEY || rc == KEY_STALE || rc == KEY_UNCHECKED)) {
        /* None yet, or a slot left by an account whose creation never
        ** committed: a new key. A slot without a check value gets one (the
        ** same key). Never over a slot another master key wrote: that is
        ** another process's account, whose data the new key would shred.
        ** Only inside a write transaction, which serialises creators across
        ** processes. */
        uint8_t slot[KEY_SLOT];
        if (rc != KEY_UNCHECKED) cr_random(key, 32);
        rc = make_slot(e->master, acct, account, key, slot)
                 ? SB_ECRYPTO
                 : write_slot(rs->keyfd, acct, slot, e->cfg.sync != SB_SYNC_NONE);
        cr_wipe(slot, sizeof slot);
    }
    if (rc == KEY_UNCHECKED) { /* not kept: the next write gives its slot a check value */
        rc = 0;
        if (psub) cr_pseudonym_subkey(key, psub);
        goto out;
    }
    if (rc == KEY_STALE || rc == KEY_OTHER_MASTER) rc = SB_ECRYPTO;
    if (rc == 0) {
        c->acct = acct;
        str_copy(c->id, sizeof c->id, account);
        memcpy(c->key, key, 32);
        cr_pseudonym_subkey(key, c->psub);
        if (psub) memcpy(psub, c->psub, 32);
    } else {
        cr_wipe(key, 32);
    }
out:
    pthread_mutex_unlock(&rs->mu);
    return rc;
}

int rec_key(sb_engine *e, uint32_t acct, const char *account, int create, uint8_t key[32])
{
    return key_get(e, acct, account, create, key, NULL);
}

void rec_keys_forget(sb_engine *e)
{
    rec_state *rs = e->rec;
    if (!rs) return;
    pthread_mutex_lock(&rs->mu);
    cr_wipe(rs->kc, sizeof rs->kc);
    pthread_mutex_unlock(&rs->mu);
}

int rec_key_destroy(sb_engine *e, uint32_t acct)
{
    rec_state *rs = e->rec;
    if (!rs || rs->keyfd < 0) return SB_ECRYPTO;
    pthread_mutex_lock(&rs->mu);
    rec_keyc *c = &rs->kc[acct & 63];
    if (c->acct == acct) memset(c, 0, sizeof *c);
    uint8_t zero[KEY_SLOT] = {0}, cur[KEY_SLOT];
    int rc = 0;
    /* Only a slot that holds something is written (the file stays sparse). */
    ssize_t n = pread(rs->keyfd, cur, sizeof cur, (off_t)acct * KEY_SLOT);
    if (n > 0 && memcmp(cur, zero, (size_t)n) != 0) rc = write_slot(rs->keyfd, acct, zero, 1);
    cr_wipe(cur, sizeof cur);
    /* After the slot is gone: a cache filled from it before is dropped. */
    __atomic_add_fetch(&key_epoch, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&rs->mu);
    return rc;
}

/* --- the API-key hashing subkey, and a rotation of the master key ----------
**
** API keys are stored only as hashes keyed by a subkey of the master key
** (cr_apikey_hash); the keys themselves are kept nowhere, so a new master key
** could not hash them again. Once the master key has been rotated, slot 0 of
** data.keys (account numbers start at 1) holds the subkey the stored hashes
** were made with, wrapped under the current master key like a data key, with
** APISUB_AD (which no account id can be: ids have no parentheses or spaces)
** as its associated data; each rotation wraps it again under the new key, so
** every API key keeps working. Absent (a data directory never rotated), the
** subkey is derived from the master key, as it always was: nothing changes
** for it. It is kept in data.keys and not in data.mdb so that the one rename
** that puts the rotated data keys in place puts it there too: there is no
** state in which one follows the new key and the other the old. */
#define APISUB_SLOT 0
#define APISUB_AD "(api key hashing)"

#define APISUB_MARK "apikey_check"

/* Once the master key has been rotated, data.mdb holds the check value of
** the subkey (APISUB_MARK, rec_apikey_mark): slot 0 of data.keys can then be
** lost on its own (a data.keys put back from a copy that left it out, or
** made before the rotation's, beside data.mdb as it is now), and the subkey
** derived from the master key in its place would refuse every API key made
** before without a word. The mark is written at the rotation's start, before
** data.keys changes: the subkey is the same before and after it (the
** rotation wraps it again, no more), so a rotation that crashed before its
** rename leaves a mark that the old data.keys and key still match; and a
** backup made before a rotation has no mark. So a mark that does not match
** means data.keys is not the one the API keys were made with: the open is
** refused, as for an account's lost data key, unless LOST_KEYS_ENV says the
** subkey is lost for good; then the subkey in use is taken and the API keys
** made before are refused (said here, and the mark made anew once the
** engine is open: rec_apikey_settle). */
static int apisub_check(sb_engine *e, int in_slot, sb_result *res)
{
    MDB_txn *txn;
    MDB_val v;
    int rc = eng_read_begin(e, &txn);
    if (rc) return eng_mdb_err(res, rc, "read the API-key check");
    rc = st_get(txn, e, DB_META, APISUB_MARK, strlen(APISUB_MARK), &v);
    int same = 1;
    if (rc == 0 && v.mv_size == CR_APIKEY_CHECK_BYTES) {
        uint8_t check[CR_APIKEY_CHECK_BYTES];
        cr_apikey_check(e->apisub, check);
        same = cr_equal(check, v.mv_data, sizeof check);
    } else if (rc == 0) {
        rc = SB_ESTORE;
    }
    eng_read_end(e, txn);
    if (rc && rc != MDB_NOTFOUND) return eng_mdb_err(res, rc, "read the API-key check");
    if (same) return 0;
    const char *what =
        in_slot ? "holds in slot 0 another key than the one this directory's API keys are hashed "
                  "with, which its master key rotation (switchboard key rotate) put there: the "
                  "file was replaced by one the rotation did not write"
                : "has no slot 0, the key this directory's API keys are hashed with, which its "
                  "master key rotation (switchboard key rotate) put there: the file was put back "
                  "from a copy made before the rotation or one that left slot 0 out";
    if (!getenv(LOST_KEYS_ENV))
        return res_err(res, SB_ECRYPTO, "data_dir",
                       "%s/data.keys %s, and every API key made before would be refused. Put back "
                       "the data.keys the rotation wrote, or the one of the backup data.mdb came "
                       "from (switchboard backup copies both files). If it is lost for good, set "
                       "%s=1 once to open with a new one: the API keys made before are then "
                       "refused, and new ones must be made",
                       e->data_dir, what, LOST_KEYS_ENV);
    sb_log(e, SB_LOG_ERROR,
           "%s/data.keys %s. %s is set, so a new one is taken: every API key made before is "
           "refused, make new ones",
           e->data_dir, what, LOST_KEYS_ENV);
    e->rec->apisub_lost = 1;
    return 0;
}

static int apisub_load(sb_engine *e, sb_result *res)
{
    int kr = key_read(e->rec, e->master, APISUB_SLOT, APISUB_AD, e->apisub);
    if (kr == 0 || kr == KEY_UNCHECKED) return apisub_check(e, 1, res);
    if (kr == SB_ECRYPTO) { /* none: never rotated, or slot 0 lost */
        cr_apikey_subkey(e->master, e->apisub);
        return apisub_check(e, 0, res);
    }
    if (kr == SB_ESTORE)
        return res_err(res, SB_ESTORE, "data_dir", "cannot read %s/data.keys: %s", e->data_dir,
                       strerror(errno));
    return res_err(res, SB_ECRYPTO, "key_file",
                   "master key %s is not the one this data directory's data keys were made with "
                   "(the API-key hashing key in %s/data.keys does not open with it): %s",
                   e->key_file, e->data_dir, which_key(e));
}

int rec_apikey_mark(wtx *t)
{
    uint8_t check[CR_APIKEY_CHECK_BYTES];
    cr_apikey_check(t->e->apisub, check);
    return st_put(t->txn, t->e, DB_META, APISUB_MARK, strlen(APISUB_MARK), check, sizeof check);
}

static int apikey_mark_fn(wtx *t, void *arg)
{
    (void)arg;
    return rec_apikey_mark(t);
}

int rec_apikey_settle(sb_engine *e, sb_result *res)
{
    if (!e->rec || !e->rec->apisub_lost) return 0;
    int rc = eng_write(e, apikey_mark_fn, NULL, res);
    if (!rc) e->rec->apisub_lost = 0;
    return rc;
}

typedef struct rotate_arg {
    sb_engine *e;
    const uint8_t *newkey;
    int out, rc, accounts;
    sb_result *res;
} rotate_arg;

/* One account's slot, wrapped again under the new key into the new file. */
static int rotate_one(void *arg, uint32_t num, const char *id)
{
    rotate_arg *a = arg;
    uint8_t key[32], slot[KEY_SLOT];
    if (!slot_present(a->e->rec, num)) return 0; /* lost (LOST_KEYS_ENV): none to carry over */
    int kr = key_read(a->e->rec, a->e->master, num, id, key);
    if (kr == SB_ESTORE)
        return res_err(a->res, SB_ESTORE, "data_dir", "cannot read %s/data.keys: %s",
                       a->e->data_dir, strerror(errno));
    if (kr != 0 && kr != KEY_UNCHECKED)
        return res_err(a->res, SB_ECRYPTO, "key_file",
                       "the data key of account '%s' does not open with the master key %s: "
                       "nothing was changed",
                       id, a->e->key_file);
    int rc =
        make_slot(a->newkey, num, id, key, slot) ? SB_ECRYPTO : write_slot(a->out, num, slot, 0);
    cr_wipe(key, sizeof key);
    cr_wipe(slot, sizeof slot);
    if (rc)
        return res_err(a->res, rc, "data_dir", "cannot write %s/data.keys.rotate: %s",
                       a->e->data_dir, rc == SB_EFULL ? "no room" : strerror(errno));
    a->accounts++;
    return 0;
}

int rec_keys_rotate(sb_engine *e, const uint8_t newkey[32], int out, const char *path,
                    int *accounts, int *dropped, sb_result *res)
{
    rec_state *rs = e->rec;
    rotate_arg a = {.e = e, .newkey = newkey, .out = out, .res = res};
    *accounts = *dropped = 0;
    if (!rs || rs->keyfd < 0) {
        close(out);
        return res_err(res, SB_ECRYPTO, NULL, "no data key file open");
    }
    pthread_mutex_lock(&rs->mu);
    int rc = each_account(e, rotate_one, &a, res);
    uint8_t slot[KEY_SLOT];
    if (!rc) {
        rc = make_slot(newkey, APISUB_SLOT, APISUB_AD, e->apisub, slot)
                 ? SB_ECRYPTO
                 : write_slot(out, APISUB_SLOT, slot, 0);
        if (rc)
            res_err(res, rc, "data_dir", "cannot write %s: %s", path,
                    rc == SB_EFULL ? "no room" : strerror(errno));
    }
    /* Slots no account has (left by a deletion whose wipe never ran, or a
    ** creation that never committed) cannot be wrapped again: whose they
    ** were is not known. Nothing can read them; they are left out. */
    struct stat st;
    if (!rc && fstat(rs->keyfd, &st) == 0)
        for (uint32_t n = 1; (off_t)n * KEY_SLOT < st.st_size; n++)
            *dropped += slot_present(rs, n);
    pthread_mutex_unlock(&rs->mu);
    cr_wipe(slot, sizeof slot);
    *dropped -= a.accounts;
    *accounts = a.accounts;
    if (rc) {
        close(out);
        return rc;
    }
    return keys_written(out, 0, path, "data_dir", res);
}

/* --- sealing ----------------------------------------------------------------- */

/* Associated data before version 3: account id NUL call id. Ids hold no
** NUL, so it never equals rec_seal_ad's, which has one more. */
static size_t legacy_ad(uint8_t *ad, const char *account, const char *id, size_t idlen)
{
    size_t al = strlen(account);
    memcpy(ad, account, al);
    ad[al] = 0;
    memcpy(ad + al + 1, id, idlen);
    return al + 1 + idlen;
}

size_t rec_seal_ad(uint8_t *ad, const char *account, const char *id, size_t idlen, int64_t offered)
{
    size_t n = legacy_ad(ad, account, id, idlen);
    ad[n] = 0;
    put_be64(ad + n + 1, (uint64_t)offered);
    return n + 9;
}

/* Open sealed numbers (len >= CR_SEAL_OVERHEAD) into pt: with the
** associated data of a call offered at `offered`, or with the old one when
** legacy (a value sealed before version 3, as its call or record says):
** one way only, so a value sealed the old way opens in no record of the
** same call id but its own. -1 when it does not open. */
static int open_pii(const uint8_t key[32], const char *account, const char *id, size_t idlen,
                    int64_t offered, int legacy, const uint8_t *in, size_t len, uint8_t *pt)
{
    uint8_t ad[REC_AD_MAX];
    size_t adl =
        legacy ? legacy_ad(ad, account, id, idlen) : rec_seal_ad(ad, account, id, idlen, offered);
    return cr_open(key, ad, adl, in, len, pt) == 0 ? 0 : -1;
}

static int seal_pii(const uint8_t key[32], const char *account, const char *id, int64_t offered,
                    const char *caller, const char *called, const sb_buf *pattrs, sb_buf *tmp,
                    sb_buf *out)
{
    size_t cl = strlen(caller), dl = strlen(called), pl = pattrs ? pattrs->len : 0;
    size_t n = cl + 1 + dl + 1 + pl;
    tmp->len = 0;
    if (buf_reserve(tmp, n) || buf_reserve(out, n + CR_SEAL_OVERHEAD)) return SB_ENOMEM;
    memcpy(tmp->p, caller, cl + 1);
    memcpy(tmp->p + cl + 1, called, dl + 1);
    if (pl) memcpy(tmp->p + cl + dl + 2, pattrs->p, pl);
    uint8_t ad[REC_AD_MAX];
    size_t adl = rec_seal_ad(ad, account, id, strlen(id), offered);
    int rc = cr_seal(key, ad, adl, tmp->p, n, (uint8_t *)out->p) ? SB_ECRYPTO : 0;
    cr_wipe(tmp->p, n);
    out->len = rc ? 0 : n + CR_SEAL_OVERHEAD;
    return rc;
}

/* Does the attribute, its name k or its value v, hold one of needles (the
** call's own numbers)? A value that is not a string is read as its JSON
** text: a number (whole or not), or an object or array at any depth, its
** names included. */
static int holds_own_number(const char *k, const json_t *v, char needle[2][32], const size_t nl[2])
{
    const char *text = json_string_value(v);
    char *dumped = NULL;
    if (!text) text = dumped = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) return -1;
    size_t len = strlen(text), kl = strlen(k);
    int r = 0;
    for (int i = 0; i < 2 && !r; i++)
        r = nl[i] &&
            (text_holds(k, kl, needle[i], nl[i]) || text_holds(text, len, needle[i], nl[i]));
    if (dumped) {
        cr_wipe(dumped, len);
        free(dumped);
    }
    return r;
}

/* Move the account's personal attributes out of c->attrs into c->pattrs,
** and every attribute whose value holds the call's own caller or called
** number, however written ("callback": "030 555123"): sealed with the
** numbers, erased and anonymized with them. */
static int split_attrs(const rec_settings *s, call_rec *c)
{
    c->pattrs.len = 0;
    if (!c->attrs.len) return 0;
    char needle[2][32];
    size_t nl[2] = {number_needle(c->caller, needle[0], sizeof needle[0]),
                    number_needle(c->called, needle[1], sizeof needle[1])};
    /* Nothing to move (the common offer): no personal attribute named, and
    ** the numbers' digits nowhere in the text, so in no value either. */
    int own = 0;
    for (int i = 0; i < 2; i++)
        own |= nl[i] && text_holds(c->attrs.p, c->attrs.len, needle[i], nl[i]);
    if (!s->npersonal && !own) {
        cr_wipe(needle, sizeof needle);
        return 0;
    }
    json_t *a = json_loadb(c->attrs.p, c->attrs.len, 0, NULL);
    if (!json_is_object(a)) {
        cr_wipe(needle, sizeof needle);
        json_decref(a);
        return 0;
    }
    json_t *p = json_object();
    int rc = 0;
    for (int i = 0; i < s->npersonal && p; i++) {
        json_t *v = json_object_get(a, s->personal[i]);
        if (!v) continue;
        json_object_set(p, s->personal[i], v);
        json_object_del(a, s->personal[i]);
    }
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(a, tmp, k, v)
    {
        int hit = p ? holds_own_number(k, v, needle, nl) : 0;
        if (hit < 0) {
            json_decref(p);
            p = NULL;
        }
        if (hit <= 0) continue;
        json_object_set(p, k, v);
        json_object_del(a, k);
    }
    cr_wipe(needle, sizeof needle);
    if (!p)
        rc = SB_ENOMEM;
    else if (json_object_size(p)) {
        char *ps = json_dumps(p, JSON_COMPACT), *as = json_dumps(a, JSON_COMPACT);
        if (!ps || !as)
            rc = SB_ENOMEM;
        else {
            c->attrs.len = 0;
            if (buf_puts(&c->pattrs, ps) || buf_puts(&c->attrs, strcmp(as, "{}") ? as : ""))
                rc = SB_ENOMEM;
            cr_wipe(ps, strlen(ps));
        }
        free(ps);
        free(as);
    }
    json_decref(p);
    json_decref(a);
    return rc;
}

/* The newest answered entry among the caller entries with prefix p (plen
** bytes, the role last; the end time follows) in table, ended at `since` or
** later: 1 with *agent, else 0; *look, the entries it may read, counts down.
** *more: 1 when c stands on the key before those entries, where an older
** one may be; 0 when none can be (c on no key, at the horizon, or *look
** spent). */
static int newest_answered(MDB_cursor *c, int table, const uint8_t *p, size_t plen, int64_t since,
                           int *look, uint32_t *agent, int *more)
{
    uint8_t hi[23], kb[24];
    memcpy(hi, p, plen);
    hi[plen - 1]++; /* just past the caller entries */
    MDB_val k = tkey(kb, table, hi, plen), v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    *more = 0;
    if (rc && rc != MDB_NOTFOUND) return 0;
    rc = mdb_cursor_get(c, &k, &v, rc == 0 ? MDB_PREV : MDB_LAST);
    for (; rc == 0 && *look > 0; (*look)--) {
        const uint8_t *key = k.mv_data;
        if (k.mv_size < plen + 9 || key[0] != table + 1 || memcmp(key + 1, p, plen) != 0) {
            *more = 1;
            return 0;
        }
        if ((int64_t)be64(key + 1 + plen) < since) return 0; /* older than the horizon */
        if (v.mv_size >= 4 && (*agent = be32(v.mv_data))) return 1;
        rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
    }
    return 0;
}

/* The newest answered entry of the caller's pseudonym in the index since
** `since`, newest period first, then ridx's. Each period the account has
** entries in from `since` on costs a seek and a step back: the key before
** the caller's entries of a period says which period to look in next, so
** periods without entries are not visited. */
uint32_t rec_history(MDB_txn *txn, sb_engine *e, uint32_t acct, const uint8_t pseudo[16],
                     int64_t since)
{
    uint8_t p[23];
    uint32_t agent = 0;
    int look = PREV_AGENT_LOOK, more = 1;
    unsigned period = 0xFFFF, first = tidx_period(since);
    MDB_cursor *c;
    if (mdb_cursor_open(txn, e->dbi[DB_RIDXT], &c)) return 0;
    put_be32(p, acct);
    memcpy(p + 6, pseudo, 16);
    p[22] = ROLE_CALLER;
    for (;;) {
        put_period(p + 4, period);
        if (newest_answered(c, DB_RIDXT, p, sizeof p, since, &look, &agent, &more)) goto out;
        if (!more || look <= 0) break;
        /* The key before: the last of the period to look in next. */
        MDB_val k, v;
        if (mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT)) break;
        const uint8_t *key = k.mv_data;
        if (k.mv_size < 7 || key[0] != DB_RIDXT + 1 || memcmp(key + 1, p, 4)) break;
        unsigned q = period_at(key + 5);
        if (q < period)
            period = q;
        else if (period == 0)
            break;
        else
            period--;
        if (period < first) break;
    }
    agent = 0;
    if (look > 0 && rec_old_layout(e)) {
        /* ridx shares ridxt's tree (engine.c): the same cursor serves. */
        if (e->dbi[DB_RIDX] != e->dbi[DB_RIDXT]) {
            mdb_cursor_close(c);
            if (mdb_cursor_open(txn, e->dbi[DB_RIDX], &c)) return 0;
        }
        memmove(p + 4, p + 6, 17);
        if (!newest_answered(c, DB_RIDX, p, 21, since, &look, &agent, &more)) agent = 0;
    }
out:
    mdb_cursor_close(c);
    return agent;
}

uint32_t rec_prev_agent(wtx *t, call_rec *c)
{
    if (c->prev_agent == REC_PREV_UNKNOWN) /* a withheld caller has no history */
        c->prev_agent =
            c->npseudo && !c->withheld
                ? rec_history(t->txn, t->e, t->acct, c->pseudo[0], t->now - REC_HISTORY_MS)
                : 0;
    return c->prev_agent;
}

int rec_seal_call(wtx *t, call_rec *c)
{
    sb_engine *e = t->e;
    rec_settings s;
    uint8_t key[32], psub[32];
    int rc = rec_settings_load(t->txn, e, t->acct, &s);
    if (rc) return rc;
    if ((rc = key_get(e, t->acct, t->account->id, 1, key, psub)))
        return res_err(t->res, rc, NULL, "the account's data key is unavailable (%s)",
                       sb_code_name(rc));
    if ((rc = split_attrs(&s, c)) == 0 &&
        (rc = seal_pii(key, t->account->id, c->id, c->offered, c->caller, c->called, &c->pattrs,
                       &e->rec->tmp, &c->pii)) == 0) {
        c->sealed_v3 = 1;
        /* A withheld number has no pseudonym: one of "" would make every
        ** withheld call the same caller to history, erasure and access. */
        c->withheld = !c->caller[0];
        c->npseudo = 0;
        if (!c->withheld) cr_pseudonym_with(psub, c->caller, c->pseudo[c->npseudo++]);
        if (c->called[0]) cr_pseudonym_with(psub, c->called, c->pseudo[c->npseudo++]);
        /* Caller history is looked up if a policy asks; a withheld caller has none. */
        c->prev_agent = c->withheld ? 0 : REC_PREV_UNKNOWN;
        c->pii_open = 1;
    }
    cr_wipe(key, sizeof key);
    cr_wipe(psub, sizeof psub);
    return rc;
}

int rec_open_call(sb_engine *e, uint32_t acct, const char *account, call_rec *c)
{
    if (c->pii_open) return 0;
    c->pattrs.len = 0;
    if (!c->pii.len) {
        c->pii_open = 1;
        return 0;
    }
    uint8_t key[32];
    int rc = rec_key(e, acct, account, 0, key);
    if (rc) return rc == REC_NO_KEY ? SB_ECRYPTO : rc; /* sealed, yet no key */
    size_t n = c->pii.len - CR_SEAL_OVERHEAD;
    sb_buf pt = {0};
    /* A call offered before version 3 (live across the upgrade) has its
    ** numbers sealed the old way, and says so. */
    if (c->pii.len < CR_SEAL_OVERHEAD || buf_reserve(&pt, n + 1))
        rc = SB_ENOMEM;
    else if (open_pii(key, account, c->id, strlen(c->id), c->offered, !c->sealed_v3,
                      (const uint8_t *)c->pii.p, c->pii.len, (uint8_t *)pt.p))
        rc = SB_ECRYPTO;
    cr_wipe(key, sizeof key);
    if (!rc) {
        pt.p[n] = 0;
        const char *caller = pt.p, *called = memchr(caller, 0, n);
        const char *pa = called ? memchr(called + 1, 0, n - (size_t)(called + 1 - pt.p)) : NULL;
        if (!pa || str_copy(c->caller, sizeof c->caller, caller) ||
            str_copy(c->called, sizeof c->called, called + 1))
            rc = SB_ESTORE;
        else if (pa + 1 < pt.p + n && buf_put(&c->pattrs, pa + 1, (size_t)(pt.p + n - pa - 1)))
            rc = SB_ENOMEM;
        cr_wipe(pt.p, n);
    }
    buf_free(&pt);
    if (!rc) c->pii_open = 1;
    return rc;
}

const char *rec_call_attrs(const call_rec *c, sb_buf *tmp, size_t *len)
{
    if (!c->pattrs.len) {
        *len = c->attrs.len;
        return c->attrs.len ? c->attrs.p : NULL;
    }
    if (!c->attrs.len) {
        *len = c->pattrs.len;
        return c->pattrs.p;
    }
    /* Two JSON objects: "{a...}" and "{p...}" make "{a...,p...}". */
    tmp->len = 0;
    if (buf_put(tmp, c->attrs.p, c->attrs.len - 1) || buf_put(tmp, ",", 1) ||
        buf_put(tmp, c->pattrs.p + 1, c->pattrs.len - 1)) {
        *len = c->attrs.len;
        return c->attrs.p;
    }
    *len = tmp->len;
    return tmp->p;
}

/* --- keys --------------------------------------------------------------------- */

size_t rec_key_of(uint8_t *k, uint32_t acct, const char *id, size_t idlen, int64_t ended)
{
    put_be32(k, acct);
    put_be64(k + 4, (uint64_t)ended);
    memcpy(k + 12, id, idlen);
    return 12 + idlen;
}

/* --- the index entries --------------------------------------------------------------
** A record is found by its call id (recid) and by the pseudonyms of its numbers
** (ridx). Records written since format 11 keep those entries in recidt and
** ridxt, whose keys lead with the period the call ended in (TIDX_SHIFT: 2^29
** ms, 6.2 days). A sweep removes records of one stretch of time, and their
** entries now lie together on the few pages of their period, where in recid
** and ridx, ordered by call id and pseudonym alone, each was on a page of its
** own and every delete copied one: those deletes were half of a sweep's time
** that anonymized or deleted, and the sweep benchmark's mix runs 1.2-2.1x as
** fast (median 1.72x, seven pairs; engine/PERFORMANCE.md). A lookup by
** pseudonym or call id pays a seek or two for each period the account has
** entries in instead of one: caller history looks back REC_HISTORY_MS (15
** periods), an event for an ended call the same, while access and erasure
** requests and a record read by its call id see every period. Entries of
** earlier versions are in recid and ridx, read and deleted there, until a
** walk the sweeps run moves them (rec_reindex; retention.c, JOB_REINDEX); a
** record says which (RF_TIDX). Callers see every entry as ridx lays it out
** (ridx_key), whichever table holds it. */

size_t recid_key(uint8_t *k, uint32_t acct, const char *id, size_t idlen, int64_t ended)
{
    put_be32(k, acct);
    memcpy(k + 4, id, idlen);
    k[4 + idlen] = 0;
    put_be64(k + 5 + idlen, (uint64_t)ended);
    return 13 + idlen;
}

/* recidt's key: acct, period, then recid's. */
static size_t recidt_key(uint8_t *k, uint32_t acct, const char *id, size_t idlen, int64_t ended)
{
    put_be32(k, acct);
    put_period(k + 4, tidx_period(ended));
    memcpy(k + 6, id, idlen);
    k[6 + idlen] = 0;
    put_be64(k + 7 + idlen, (uint64_t)ended);
    return 15 + idlen;
}

size_t ridx_key(uint8_t *k, uint32_t acct, const uint8_t pseudo[16], int role, int64_t ended,
                const char *id, size_t idlen)
{
    put_be32(k, acct);
    memcpy(k + 4, pseudo, 16);
    k[20] = (uint8_t)role;
    put_be64(k + 21, (uint64_t)ended);
    memcpy(k + 29, id, idlen);
    return 29 + idlen;
}

/* ridxt's key of ridx's key k (kl > 29). */
static size_t ridxt_of(uint8_t *out, const uint8_t *k, size_t kl)
{
    memcpy(out, k, 4);
    put_period(out + 4, tidx_period((int64_t)be64(k + 21)));
    memcpy(out + 6, k + 4, kl - 4);
    return kl + 2;
}

int rec_index_put(MDB_txn *txn, sb_engine *e, uint32_t acct, const rec_data *r,
                  const uint8_t val[5])
{
    uint8_t k[REC_RIDX_MAX], ik[REC_RIDX_MAX], tk[REC_RIDX_MAX];
    int rc = st_put(txn, e, DB_RECIDT, k, recidt_key(k, acct, r->id, r->idlen, r->ended), "", 0);
    for (int i = 0; i < r->npseudo && !rc; i++) {
        size_t kl = ridx_key(ik, acct, r->pseudo[i], rec_role(r, i), r->ended, r->id, r->idlen);
        rc = st_put(txn, e, DB_RIDXT, tk, ridxt_of(tk, ik, kl), val, 5);
    }
    return rc;
}

size_t rec_recid_entry(uint8_t *k, const uint8_t *rk, size_t rkl, int flags, int *table)
{
    uint32_t acct = be32(rk);
    int64_t ended = (int64_t)be64(rk + 4);
    const char *id = (const char *)rk + 12;
    *table = flags & RF_TIDX ? DB_RECIDT : DB_RECID;
    return flags & RF_TIDX ? recidt_key(k, acct, id, rkl - 12, ended)
                           : recid_key(k, acct, id, rkl - 12, ended);
}

size_t rec_ridx_entry(uint8_t *k, uint32_t acct, const rec_data *r, int i, int *table)
{
    uint8_t ik[REC_RIDX_MAX];
    size_t kl = ridx_key(ik, acct, r->pseudo[i], rec_role(r, i), r->ended, r->id, r->idlen);
    *table = r->flags & RF_TIDX ? DB_RIDXT : DB_RIDX;
    if (!(r->flags & RF_TIDX)) {
        memcpy(k, ik, kl);
        return kl;
    }
    return ridxt_of(k, ik, kl);
}

int rec_delete(MDB_txn *txn, sb_engine *e, const uint8_t *rk, size_t rkl, int flags)
{
    uint8_t k[REC_KEY_MAX + 3];
    int table;
    if (rkl <= 12 || rkl > 12 + SB_ID_MAX) return SB_ESTORE;
    int rc = st_del(txn, e, DB_RECORDS, rk, rkl);
    if (rc) return rc;
    size_t kl = rec_recid_entry(k, rk, rkl, flags, &table);
    return st_del(txn, e, table, k, kl);
}

int rec_ridx_del(MDB_txn *txn, sb_engine *e, uint32_t acct, const rec_data *r)
{
    uint8_t k[REC_RIDX_MAX];
    int table;
    for (int i = 0; i < r->npseudo; i++) {
        size_t kl = rec_ridx_entry(k, acct, r, i, &table);
        int rc = st_del(txn, e, table, k, kl);
        if (rc) return rc;
    }
    return 0;
}

int rec_old_layout(const sb_engine *e)
{
    return !__atomic_load_n(&e->sh->tidx_only, __ATOMIC_RELAXED);
}

int rec_old_empty(MDB_txn *txn, sb_engine *e, int *empty)
{
    int rc = MDB_NOTFOUND;
    for (int i = 0; i < 2 && rc == MDB_NOTFOUND; i++) {
        st_iter it;
        rc = st_iter_open(&it, txn, e, i ? DB_RIDX : DB_RECID, "", 0);
        st_iter_close(&it);
    }
    *empty = rc == MDB_NOTFOUND;
    return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

int rec_tidx_settle(MDB_txn *txn, sb_engine *e)
{
    int empty = 0, rc;
    if (!rec_old_layout(e) || __atomic_load_n(&e->sh->schema_pending, __ATOMIC_ACQUIRE)) return 0;
    if (!(rc = rec_old_empty(txn, e, &empty)) && empty)
        __atomic_store_n(&e->sh->tidx_only, 1, __ATOMIC_RELAXED);
    return rc;
}

int rec_ridx_get(MDB_txn *txn, sb_engine *e, const uint8_t *k, size_t kl, MDB_val *v)
{
    uint8_t tk[REC_RIDX_MAX];
    int rc = st_get(txn, e, DB_RIDXT, tk, ridxt_of(tk, k, kl), v);
    return rc == MDB_NOTFOUND && rec_old_layout(e) ? st_get(txn, e, DB_RIDX, k, kl, v) : rc;
}

int rec_ridx_del_key(MDB_txn *txn, sb_engine *e, const uint8_t *k, size_t kl)
{
    uint8_t tk[REC_RIDX_MAX];
    int rc = st_del(txn, e, DB_RIDXT, tk, ridxt_of(tk, k, kl));
    return rc || !rec_old_layout(e) ? rc : st_del(txn, e, DB_RIDX, k, kl);
}

/* The first period at or after `from` with an entry of acct in table
** (recidt, ridxt): 0 with *got, or MDB_NOTFOUND. */
static int period_near(MDB_cursor *c, int table, uint32_t acct, unsigned from, unsigned *got)
{
    uint8_t at[6], kb[8];
    put_be32(at, acct);
    put_period(at + 4, from);
    MDB_val k = tkey(kb, table, at, sizeof at), v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc) return rc;
    const uint8_t *key = k.mv_data;
    if (k.mv_size < 7 || key[0] != table + 1 || memcmp(key + 1, at, 4)) return MDB_NOTFOUND;
    *got = period_at(key + 5);
    return 0;
}

int rec_reindex(MDB_txn *txn, sb_engine *e, const uint8_t *rk, size_t rkl, const void *val,
                size_t vl)
{
    rec_data r;
    uint8_t *copy = NULL;
    if (rkl <= 12 || rkl > 12 + SB_ID_MAX || vl <= REC_OFF_FLAGS) return 0;
    if (((const uint8_t *)val)[REC_OFF_FLAGS] & RF_TIDX) return 0;
    if (!(copy = malloc(vl))) return SB_ENOMEM;
    memcpy(copy, val, vl); /* the value moves under the writes below */
    int rc = 0;
    if (rec_decode(copy, vl, &r)) goto out; /* unreadable: left, where the sweep logs it */
    uint32_t acct = be32(rk);
    int64_t ended = (int64_t)be64(rk + 4);
    const char *id = (const char *)rk + 12;
    uint8_t k[REC_RIDX_MAX], tk[REC_RIDX_MAX], iv[8];
    if ((rc = st_del(txn, e, DB_RECID, k, recid_key(k, acct, id, rkl - 12, ended))) ||
        (rc = st_put(txn, e, DB_RECIDT, tk, recidt_key(tk, acct, id, rkl - 12, ended), "", 0)))
        goto out;
    for (int i = 0; i < r.npseudo; i++) {
        size_t kl = ridx_key(k, acct, r.pseudo[i], rec_role(&r, i), r.ended, r.id, r.idlen);
        MDB_val v;
        rc = st_get(txn, e, DB_RIDX, k, kl, &v);
        if (rc == MDB_NOTFOUND) continue; /* gone with an erasure that met it */
        if (rc) goto out;
        size_t n = v.mv_size < sizeof iv ? v.mv_size : sizeof iv; /* agent, outcome */
        memcpy(iv, v.mv_data, n);
        if ((rc = st_del(txn, e, DB_RIDX, k, kl)) ||
            (rc = st_put(txn, e, DB_RIDXT, tk, ridxt_of(tk, k, kl), iv, n)))
            goto out;
    }
    copy[REC_OFF_FLAGS] |= RF_TIDX;
    rc = st_put(txn, e, DB_RECORDS, rk, rkl, copy, vl);
    if (!rc) rc = 1;
out:
    free(copy);
    return rc;
}

/* --- walking one pseudonym's entries -------------------------------------- */

static int rw_check(rec_walk *w, int rc)
{
    w->key = NULL;
    w->klen = 0;
    if (rc && rc != MDB_NOTFOUND) return rc;
    const uint8_t *a = w->old_rc == 0 ? w->old.key : NULL;
    const uint8_t *b = w->new_rc == 0 ? w->kb : NULL;
    size_t al = w->old.klen, bl = w->nklen;
    if (a && b) {
        int c = memcmp(a, b, al < bl ? al : bl);
        if (c > 0 || (c == 0 && al > bl))
            a = NULL;
        else
            b = NULL;
    }
    if (!a && !b) return MDB_NOTFOUND;
    w->from_old = a != NULL;
    w->key = a ? a : b;
    w->klen = a ? al : bl;
    w->val = a ? w->old.v : w->nv;
    return 0;
}

/* Stand on the entry ridxt's iterator is on, in ridx's layout. */
static int rw_take(rec_walk *w)
{
    const uint8_t *k = w->cur.key;
    if (w->cur.klen < 31 || w->cur.klen - 2 > sizeof w->kb) return SB_ESTORE;
    memcpy(w->kb, k, 4);
    memcpy(w->kb + 4, k + 6, w->cur.klen - 6);
    w->nklen = w->cur.klen - 2;
    w->nv = w->cur.v;
    return 0;
}

/* ridxt's walk from period `period` of role `role` on: the first entry after
** `after` (ridx's layout; NULL: the first) of the pseudonym. */
static int rw_seek(rec_walk *w, int role, unsigned period, const uint8_t *after, size_t afterlen)
{
    for (; role <= ROLE_CALLED; role++, period = 0, after = NULL) {
        for (;;) {
            unsigned got;
            int rc = period_near(w->pc, DB_RIDXT, w->acct, period, &got);
            if (rc == MDB_NOTFOUND) break;
            if (rc) return rc;
            uint8_t pre[23], ak[REC_RIDX_MAX];
            size_t akl = 0;
            put_be32(pre, w->acct);
            put_period(pre + 4, got);
            memcpy(pre + 6, w->pseudo, 16);
            pre[22] = (uint8_t)role;
            if (after && got == tidx_period((int64_t)be64(after + 21)))
                akl = ridxt_of(ak, after, afterlen);
            st_iter_close(&w->cur);
            rc = st_iter_after(&w->cur, w->txn, w->e, DB_RIDXT, pre, sizeof pre, ak, akl);
            if (rc == 0) {
                w->role = role;
                w->period = got;
                return rw_take(w);
            }
            if (rc != MDB_NOTFOUND) return rc;
            if (got == 0xFFFF) break;
            period = got + 1;
        }
    }
    st_iter_close(&w->cur);
    return MDB_NOTFOUND;
}
int rec_walk_after(rec_walk *w, MDB_txn *txn, sb_engine *e, uint32_t acct, const uint8_t pseudo[16],
                   const uint8_t *after, size_t afterlen)
{
    memset(w, 0, sizeof *w);
    w->txn = txn;
    w->e = e;
    w->acct = acct;
    memcpy(w->pseudo, pseudo, 16);
    w->old_rc = w->new_rc = MDB_NOTFOUND;
    if (afterlen && (afterlen < 29 || afterlen > REC_RIDX_MAX)) return SB_EINVAL;
    int rc = mdb_cursor_open(txn, e->dbi[DB_RIDXT], &w->pc);
    if (rc) {
        w->pc = NULL;
        return rc;
    }
    uint8_t p[20];
    put_be32(p, acct);
    memcpy(p + 4, pseudo, 16);
    if (rec_old_layout(e))
        w->old_rc = st_iter_after(&w->old, txn, e, DB_RIDX, p, sizeof p, after, afterlen);
    if (w->old_rc && w->old_rc != MDB_NOTFOUND) return w->old_rc;
    w->new_rc = afterlen
                    ? rw_seek(w, after[20], tidx_period((int64_t)be64(after + 21)), after, afterlen)
                    : rw_seek(w, ROLE_CALLER, 0, NULL, 0);
    return rw_check(w, w->new_rc);
}

int rec_walk_next(rec_walk *w)
{
    if (!w->key) return MDB_NOTFOUND;
    int rc;
    if (w->from_old) {
        rc = w->old_rc = st_iter_next(&w->old);
    } else {
        rc = st_iter_next(&w->cur);
        if (rc == 0)
            rc = rw_take(w);
        else if (rc == MDB_NOTFOUND)
            rc = w->period < 0xFFFF ? rw_seek(w, w->role, w->period + 1, NULL, 0)
                                    : rw_seek(w, w->role + 1, 0, NULL, 0);
        w->new_rc = rc;
    }
    return rw_check(w, rc);
}

void rec_walk_close(rec_walk *w)
{
    st_iter_close(&w->old);
    st_iter_close(&w->cur);
    if (w->pc) mdb_cursor_close(w->pc);
    w->pc = NULL;
    w->key = NULL;
}

/* --- the stored record ------------------------------------------------------------ */

/* flags, epoch and review due sit at fixed offsets (REC_OFF_*) so they can
** be patched. */
void rec_encode(wbuf *w, const rec_data *r)
{
    wb_u8(w, REC_VERSION);
    /* A version 2 record written as version 3 keeps its numbers as they
    ** were sealed: the old way, which the flag says. */
    wb_u8(w, (uint8_t)(r->flags |
                       (r->version && r->version < REC_V_DUE && r->pii_len ? RF_SEAL_V2 : 0)));
    wb_u32(w, r->epoch);
    wb_i64(w, r->review_due);
    wb_strn(w, r->id, r->idlen);
    wb_strn(w, r->queue, r->queuelen);
    wb_strn(w, r->first_queue, r->first_queuelen);
    wb_u8(w, (uint8_t)r->outcome);
    wb_i32(w, r->priority);
    wb_i64(w, r->offered);
    wb_i64(w, r->answered);
    wb_i64(w, r->ended);
    wb_i64(w, r->wait_ms);
    wb_i64(w, r->talk_ms);
    wb_strn(w, r->agent, r->agentlen);
    wb_u8(w, (uint8_t)r->natt);
    wb_put(w, r->att, r->attlen);
    wb_u8(w, (uint8_t)r->nver);
    wb_put(w, r->ver, r->verlen);
    wb_strn(w, r->attrs ? r->attrs : "", r->attrs_len);
    wb_strn(w, (const char *)(r->pii ? r->pii : (const uint8_t *)""), r->pii_len);
    wb_u8(w, (uint8_t)r->npseudo);
    for (int i = 0; i < r->npseudo; i++)
        wb_put(w, r->pseudo[i], 16);
    wb_strn(w, r->reason ? r->reason : "", r->reasonlen);
    wb_u8(w, r->ended_by);
}

static int skip_str(rbuf *r)
{
    size_t n;
    rb_strp(r, &n);
    return r->err;
}

int rec_decode(const void *p, size_t n, rec_data *r)
{
    rbuf b;
    rb_init(&b, p, n);
    int ver = rb_u8(&b);
    r->version = (uint8_t)ver;
    r->flags = rb_u8(&b);
    r->epoch = rb_u32(&b);
    r->review_due = ver >= 3 ? rb_i64(&b) : REC_DUE_UNKNOWN;
    r->id = rb_strp(&b, &r->idlen);
    r->queue = rb_strp(&b, &r->queuelen);
    r->first_queue = rb_strp(&b, &r->first_queuelen);
    r->outcome = rb_u8(&b);
    r->priority = rb_i32(&b);
    r->offered = rb_i64(&b);
    r->answered = rb_i64(&b);
    r->ended = rb_i64(&b);
    r->wait_ms = rb_i64(&b);
    r->talk_ms = rb_i64(&b);
    r->agent = rb_strp(&b, &r->agentlen);
    r->natt = rb_u8(&b);
    r->att = b.p;
    for (int i = 0; i < r->natt && !b.err; i++) {
        skip_str(&b);
        uint8_t skip[2 + 8 + 4];
        rb_take(&b, skip, sizeof skip);
    }
    r->attlen = (size_t)(b.p - r->att);
    r->nver = rb_u8(&b);
    r->ver = b.p;
    for (int i = 0; i < r->nver && !b.err; i++) {
        skip_str(&b);
        skip_str(&b);
    }
    r->verlen = (size_t)(b.p - r->ver);
    r->attrs = rb_strp(&b, &r->attrs_len);
    r->pii = (const uint8_t *)rb_strp(&b, &r->pii_len);
    r->npseudo = rb_u8(&b);
    if (r->npseudo > 2) b.err = 1;
    for (int i = 0; i < r->npseudo && !b.err; i++)
        rb_take(&b, r->pseudo[i], 16);
    r->reason = "";
    r->reasonlen = 0;
    r->ended_by = 0;
    if (ver >= 4) {
        r->reason = rb_strp(&b, &r->reasonlen);
        r->ended_by = rb_u8(&b);
    }
    if (b.err || ver < 2 || ver > REC_VERSION || b.p != b.end || r->idlen == 0 ||
        r->idlen > SB_ID_MAX || r->queuelen > SB_ID_MAX || r->first_queuelen > SB_ID_MAX ||
        r->agentlen > SB_ID_MAX || r->reasonlen > REC_REASON_MAX || r->ended_by > SB_END_SYSTEM)
        return SB_ESTORE;
    return 0;
}

int rec_attempt(const rec_data *r, int i, char *agent, size_t cap, int *dev, int *outcome,
                int64_t *start, int32_t *dur_ms)
{
    rbuf b;
    rb_init(&b, r->att, r->attlen);
    for (int k = 0; k < i && !b.err; k++) {
        skip_str(&b);
        uint8_t skip[2 + 8 + 4];
        rb_take(&b, skip, sizeof skip);
    }
    rb_str(&b, agent, cap);
    *dev = rb_u8(&b);
    *outcome = rb_u8(&b);
    *start = rb_i64(&b);
    *dur_ms = rb_i32(&b);
    return b.err ? SB_ESTORE : 0;
}

static json_t *jstrn(const char *s, size_t n)
{
    return json_stringn(s, n);
}

json_t *rec_json(const rec_data *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", jstrn(r->id, r->idlen));
    json_object_set_new(o, "state", json_string("ended"));
    json_object_set_new(o, "queue", jstrn(r->queue, r->queuelen));
    json_object_set_new(o, "first_queue", jstrn(r->first_queue, r->first_queuelen));
    json_object_set_new(o, "outcome", json_string(rec_outcome_name(r->outcome)));
    json_object_set_new(o, "priority", json_integer(r->priority));
    json_object_set_new(o, "offered_ms", json_integer(r->offered));
    if (r->answered) json_object_set_new(o, "answered_ms", json_integer(r->answered));
    json_object_set_new(o, "ended_ms", json_integer(r->ended));
    json_object_set_new(o, "wait", json_real((double)r->wait_ms / 1000.0));
    json_object_set_new(o, "talk", json_real((double)r->talk_ms / 1000.0));
    if (r->agentlen) json_object_set_new(o, "agent", jstrn(r->agent, r->agentlen));
    if (r->reasonlen) json_object_set_new(o, "reason", jstrn(r->reason, r->reasonlen));
    if (r->ended_by) json_object_set_new(o, "ended_by", json_string(end_party_name(r->ended_by)));
    json_object_set_new(o, "attempts", json_integer(r->natt));
    json_t *att = json_array();
    for (int i = 0; i < r->natt; i++) {
        char aid[SB_ID_MAX + 1];
        int dev, out;
        int64_t start;
        int32_t dur;
        if (rec_attempt(r, i, aid, sizeof aid, &dev, &out, &start, &dur)) break;
        json_array_append_new(att, json_pack("{s:s, s:s, s:s, s:I, s:f}", "agent", aid, "device",
                                             pol_dev_name(dev), "outcome",
                                             out ? ring_outcome_name(out) : "cancelled", "start_ms",
                                             (json_int_t)start, "duration", dur / 1000.0));
    }
    json_object_set_new(o, "attempts_detail", att);
    json_t *vs = json_array();
    rbuf b;
    rb_init(&b, r->ver, r->verlen);
    for (int i = 0; i < r->nver && !b.err; i++) {
        char pol[SB_NAME_MAX + 1], version[17];
        rb_str(&b, pol, sizeof pol);
        rb_str(&b, version, sizeof version);
        if (!b.err)
            json_array_append_new(vs, json_pack("{s:s, s:s}", "policy", pol, "version", version));
    }
    json_object_set_new(o, "policy_versions", vs);
    json_t *attrs = r->attrs_len ? json_loadb(r->attrs, r->attrs_len, 0, NULL) : NULL;
    json_object_set_new(o, "attrs", attrs ? attrs : json_object());
    json_object_set_new(o, "anonymized", json_boolean(r->flags & RF_ANONYMIZED));
    /* Its retention: when the policy looks at it again (null: never; not
    ** known for a version 2 record until a sweep writes it), and whether a
    ** legal hold overrode the last decision. */
    if (r->review_due != REC_DUE_UNKNOWN)
        json_object_set_new(o, "review_ms",
                            r->review_due > 0 ? json_integer(r->review_due) : json_null());
    json_object_set_new(o, "overridden", json_boolean(r->flags & RF_OVERRIDDEN));
    return o;
}

int rec_open(const uint8_t key[32], const char *account, const rec_data *r,
             char caller[SB_E164_MAX + 1], char called[SB_E164_MAX + 1], json_t **pattrs)
{
    caller[0] = called[0] = 0;
    if (pattrs) *pattrs = NULL;
    if (!r->pii_len) return SB_ENOTFOUND; /* anonymized */
    if (r->pii_len < CR_SEAL_OVERHEAD) return SB_ESTORE;
    size_t n = r->pii_len - CR_SEAL_OVERHEAD;
    char *pt = malloc(n + 1);
    if (!pt) return SB_ENOMEM;
    int rc = 0;
    /* Version 2, and version 3 records marked RF_SEAL_V2 (a version 2
    ** record rewritten, a call live across the upgrade): the old associated
    ** data. Every other record: the new one alone. */
    if (open_pii(key, account, r->id, r->idlen, r->offered,
                 r->version < REC_V_DUE || (r->flags & RF_SEAL_V2), r->pii, r->pii_len,
                 (uint8_t *)pt)) {
        rc = SB_ECRYPTO;
    } else {
        pt[n] = 0;
        const char *d = memchr(pt, 0, n);
        const char *pa = d ? memchr(d + 1, 0, n - (size_t)(d + 1 - pt)) : NULL;
        if (!pa || str_copy(caller, SB_E164_MAX + 1, pt) ||
            str_copy(called, SB_E164_MAX + 1, d + 1))
            rc = SB_ESTORE;
        else if (pattrs && pa + 1 < pt + n)
            *pattrs = json_loadb(pa + 1, (size_t)(pt + n - pa - 1), 0, NULL);
        cr_wipe(pt, n);
    }
    free(pt);
    return rc;
}

/* --- aggregates --------------------------------------------------------------------- */

int rec_tz_utc(const char *tz)
{
    return !tz || !tz[0] || strcmp(tz, "UTC") == 0 || strcmp(tz, "Etc/UTC") == 0;
}

int rec_day_in(const char *tz, int64_t t_ms, int64_t *day)
{
    int32_t off = 0;
    int rc = 0;
    int64_t s = t_ms / 1000 - (t_ms % 1000 < 0);
    if (!rec_tz_utc(tz) && tz_offset(tz, s, &off)) rc = -1, off = 0;
    int64_t w = i64_add_sat(t_ms, (int64_t)off * 1000); /* to_ms may be near INT64_MAX */
    *day = w / REC_DAY_MS - (w % REC_DAY_MS < 0);
    return rc;
}

/* The day a call's rows count it on: the date it was offered on the wall
** clock of the account's zone tz, found once for all the rows one event
** adds to. A zone that cannot be loaded (its tzdata gone since it was set)
** counts it on its UTC day, in UTC rows, and the log says so at most once a
** minute. */
typedef struct {
    uint32_t day;
    const char *tz; /* the zone the rows are keyed by, NULL for UTC */
} aggr_day;

static aggr_day aggr_day_of(wtx *t, int64_t offered, const char *tz)
{
    int64_t day;
    if (rec_day_in(tz, offered, &day)) {
        rec_state *rs = t->e->rec;
        if (!rs->tz_warned_ms || t->now - rs->tz_warned_ms >= 60000 || t->now < rs->tz_warned_ms) {
            rs->tz_warned_ms = t->now ? t->now : 1;
            sb_log(t->e, SB_LOG_WARN,
                   "time zone '%s' of account '%s' cannot be loaded (is tzdata installed? is "
                   "TZDIR right?): its aggregates count calls on their UTC days until it can",
                   tz, t->account ? t->account->id : "?");
        }
        tz = NULL;
    }
    return (aggr_day){.day = (uint32_t)(day < 0            ? 0
                                        : day > UINT32_MAX ? UINT32_MAX
                                                           : day),
                      .tz = rec_tz_utc(tz) ? NULL : tz};
}

/* The key of queue's row (0: the account's) of day ad. */
static size_t aggr_key(wtx *t, uint8_t k[REC_AGGR_KEY_MAX], uint32_t queue, const aggr_day *ad)
{
    size_t n = ad->tz ? strlen(ad->tz) : 0;
    key_acct3(k, t->acct, queue, ad->day);
    if (n) memcpy(k + 12, ad->tz, n);
    return 12 + n;
}

static int aggr_add(wtx *t, uint32_t queue, const aggr_day *ad, int outcome, int64_t wait_ms,
                    int64_t talk_ms, int within_sl)
{
    uint8_t k[REC_AGGR_KEY_MAX];
    uint64_t v[AG_COUNT] = {0};
    MDB_val old;
    size_t kl = aggr_key(t, k, queue, ad);
    int rc = st_get_hot(t->txn, t->e, DB_AGGR, k, kl, &old);
    if (rc == 0 && old.mv_size == 1 + sizeof v && ((uint8_t *)old.mv_data)[0] == V_AGGR)
        memcpy(v, (uint8_t *)old.mv_data + 1, sizeof v);
    else if (rc && rc != MDB_NOTFOUND)
        return rc;
    v[AG_OFFERED]++;
    int slot = outcome == OUT_ANSWERED     ? AG_ANSWERED
               : outcome == OUT_ABANDONED  ? AG_ABANDONED
               : outcome == OUT_REJECTED   ? AG_REJECTED
               : outcome == OUT_OVERFLOWED ? AG_OVERFLOWED
                                           : AG_FAILED;
    v[slot]++;
    if (wait_ms < 0) wait_ms = 0;
    v[AG_WAIT_MS] += (uint64_t)wait_ms;
    if (outcome == OUT_ANSWERED) {
        v[AG_ANSWER_WAIT_MS] += (uint64_t)wait_ms;
        v[AG_TALK_MS] += (uint64_t)(talk_ms > 0 ? talk_ms : 0);
        if (within_sl) v[AG_ANSWERED_SL]++;
    }
    if ((uint64_t)wait_ms > v[AG_MAX_WAIT_MS]) v[AG_MAX_WAIT_MS] = (uint64_t)wait_ms;
    uint8_t buf[1 + sizeof v];
    buf[0] = V_AGGR;
    memcpy(buf + 1, v, sizeof v);
    return st_put(t->txn, t->e, DB_AGGR, k, kl, buf, sizeof buf);
}

/* The figures of the queue c is in, from when it came there to `until`:
** answered there or not (then `left`, the outcome given), the wait to its
** first answer there or to `until`, the talk since it came (total_talk: the
** call's talk so far). */
static int aggr_queue(wtx *t, const call_rec *c, uint32_t queue, int left, int64_t until,
                      int64_t total_talk, uint32_t sl_seconds, const aggr_day *ad)
{
    int outcome = c->q_answered ? OUT_ANSWERED : left;
    int64_t wait = i64_sub_sat(c->q_answered ? c->q_answered : until, c->q_entered);
    int within = outcome == OUT_ANSWERED && wait <= (int64_t)sl_seconds * 1000;
    return aggr_add(t, queue, ad, outcome, wait, i64_sub_sat(total_talk, c->q_talked), within);
}

/* The call's talk up to now: its agents' before the one it is with, and
** that one's since answering. */
static int64_t talk_so_far(const call_rec *c, int64_t now)
{
    return i64_add_sat(c->talked, c->connected ? i64_sub_sat(now, c->connected) : 0);
}

/* The first queue's row of a call that moved before calls kept their
** queue's figures (q_owed), never added: as it was counted then, overflowed
** after waiting until the call was queued where it is, or answered if
** answered before that. Added when the call next leaves a queue or ends. */
static int aggr_owed(wtx *t, const call_rec *c, uint32_t sl_seconds, const aggr_day *ad)
{
    int before = c->answered && c->answered < c->q_entered;
    int64_t wait = i64_sub_sat(before ? c->answered : c->q_entered, c->offered);
    return aggr_add(t, c->first_queue, ad, before ? OUT_ANSWERED : OUT_OVERFLOWED, wait,
                    c->q_talked, before && wait <= (int64_t)sl_seconds * 1000);
}

/* A queue's row counts answers within its own threshold, when it has one. */
static uint32_t queue_sl(const queue_rec *q, const rec_settings *s)
{
    return q->sl_seconds ? q->sl_seconds : s->sl_seconds;
}

int rec_aggr_leave(wtx *t, call_rec *c, const queue_rec *q)
{
    rec_settings s;
    int rc = rec_settings_load(t->txn, t->e, t->acct, &s);
    if (rc) return rc;
    aggr_day ad = aggr_day_of(t, c->offered, s.tz);
    if (c->q_owed) rc = aggr_owed(t, c, s.sl_seconds, &ad);
    if (!rc)
        rc = aggr_queue(t, c, q->num, OUT_OVERFLOWED, t->now, talk_so_far(c, t->now),
                        queue_sl(q, &s), &ad);
    if (rc) return rc;
    c->q_owed = 0;
    c->q_entered = t->now;
    c->q_answered = 0;
    c->q_talked = talk_so_far(c, t->now);
    return 0;
}

/* Counters of a call that ends in queue q: the account counts it once, with
** its outcome (answered if it ever was), the wait to its first answer and
** all its talk; q counts it from when it came there, with its outcome there
** (`ended`: abandoned or rejected there unless answered there). The queues
** it left counted it then (rec_aggr_leave). */
static int aggr_call(wtx *t, const call_rec *c, const queue_rec *q, int outcome, int ended,
                     int64_t end, int64_t wait, int64_t talk, const rec_settings *s)
{
    int within = outcome == OUT_ANSWERED && wait <= (int64_t)s->sl_seconds * 1000;
    aggr_day ad = aggr_day_of(t, c->offered, s->tz);
    int rc = aggr_add(t, 0, &ad, outcome, wait, talk, within);
    if (!rc && c->q_owed) rc = aggr_owed(t, c, s->sl_seconds, &ad);
    if (!rc) rc = aggr_queue(t, c, q->num, ended, end, talk, queue_sl(q, s), &ad);
    return rc;
}

int rec_aggr_decode(const MDB_val *val, uint64_t *v)
{
    if (val->mv_size != 1 + AG_COUNT * 8 || ((uint8_t *)val->mv_data)[0] != V_AGGR)
        return SB_ESTORE;
    memcpy(v, (uint8_t *)val->mv_data + 1, AG_COUNT * 8);
    return 0;
}

/* --- writing a record ------------------------------------------------------------------ */

/* The agent's id: the one the caller has loaded, or the last one looked up
** (attempts of a call mostly name the same one or two agents). */
static const char *agent_name(wtx *t, uint32_t num, const agent_rec *known, agent_rec *a)
{
    if (!num) return "";
    if (known && known->num == num) return known->id;
    if (a->num == num && a->id[0]) return a->id;
    return st_agent_id_of(t->txn, t->e, t->acct, num, a);
}

int record_write(wtx *t, const call_rec *c, const queue_rec *q, const char *outcome_name,
                 const agent_rec *known, const char *reason, int by)
{
    sb_engine *e = t->e;
    rec_settings s;
    int rc = rec_settings_load(t->txn, e, t->acct, &s);
    if (rc) return rc;
    /* A call stored before numbers were sealed is sealed now. */
    sb_buf legacy = {0};
    const sb_buf *pii = &c->pii;
    uint8_t pseudo[2][16];
    int npseudo = c->npseudo;
    memcpy(pseudo, c->pseudo, sizeof pseudo);
    if (!c->pii.len && c->caller[0]) {
        uint8_t key[32];
        if ((rc = rec_key(e, t->acct, t->account->id, 1, key))) return rc;
        rc = seal_pii(key, t->account->id, c->id, c->offered, c->caller, c->called, NULL,
                      &e->rec->tmp, &legacy);
        cr_pseudonym(key, c->caller, pseudo[0]);
        npseudo = 1;
        if (c->called[0]) cr_pseudonym(key, c->called, pseudo[npseudo++]);
        cr_wipe(key, sizeof key);
        if (rc) {
            buf_free(&legacy);
            return rc;
        }
        pii = &legacy;
    }

    agent_rec a = {0};
    queue_rec first = {0};
    /* A call an agent answered was answered, however it ended after a
    ** transfer (the caller hung up waiting, max wait turned it away); its
    ** queue counts how it ended there unless answered there. */
    int ended = rec_outcome_parse(outcome_name);
    int outcome = c->answered ? OUT_ANSWERED : ended;
    int64_t end = t->now;
    size_t idlen = strlen(c->id);
    uint8_t rk[REC_KEY_MAX];
    size_t rkl = 0;

    /* Attempts and the distinct policy versions, encoded as stored. */
    wbuf *wp = &e->wb2, w;
    wb_reset(wp);
    w = *wp;
    for (int i = 0; i < c->natt; i++) {
        const attempt_rec *x = &c->att[i];
        wb_str(&w, agent_name(t, x->agent, known, &a));
        wb_u8(&w, x->dev);
        wb_u8(&w, x->outcome);
        wb_i64(&w, x->start);
        wb_i32(&w, x->dur_ms);
    }
    size_t attlen = w.b.len;
    int nv = 0;
    const trace_rec *vs[MAX_TRACE];
    for (int i = 0; i < c->ntrace; i++) {
        /* The engine's own entries (a transfer, max wait, a full queue)
        ** name no policy and are no fallback: no policy decided there. */
        int seen = !c->trace[i].policy[0] && !c->trace[i].fallback;
        for (int j = 0; j < nv; j++)
            if (strcmp(vs[j]->version, c->trace[i].version) == 0 &&
                strcmp(vs[j]->policy, c->trace[i].policy) == 0)
                seen = 1;
        if (!seen) vs[nv++] = &c->trace[i];
    }
    for (int i = 0; i < nv; i++) {
        wb_str(&w, vs[i]->policy);
        wb_str(&w, vs[i]->version);
    }
    size_t parts = w.b.len;
    const char *agent = agent_name(t, c->answered ? c->agent : 0, known, &a);
    char agent_id[SB_ID_MAX + 1];
    str_copy(agent_id, sizeof agent_id, agent);
    char why[REC_REASON_MAX + 1] = "";
    if (outcome == OUT_REJECTED && reason) {
        snprintf(why, sizeof why, "%s", reason);
        utf8_cut_end(why);
    }
    const char *first_id = q->id;
    if (c->first_queue != c->queue &&
        st_queue_load(t->txn, e, t->acct, c->first_queue, &first) == 0)
        first_id = first.id;
    if (w.err) {
        rc = SB_ENOMEM;
        *wp = w;
        goto out;
    }
    rec_data r = {
        .id = c->id,
        .idlen = idlen,
        .queue = q->id,
        .queuelen = strlen(q->id),
        .first_queue = first_id,
        .first_queuelen = strlen(first_id),
        .agent = agent_id,
        .agentlen = strlen(agent_id),
        .outcome = outcome,
        .reason = why,
        .reasonlen = strlen(why),
        .ended_by = (uint8_t)by,
        .epoch = s.epoch,
        .priority = c->priority,
        .offered = c->offered,
        .answered = c->answered,
        .natt = c->natt,
        .nver = nv,
        .attrs = c->attrs.p,
        .attrs_len = c->attrs.len,
        .pii = (const uint8_t *)pii->p,
        .pii_len = pii->len,
        .npseudo = npseudo,
        /* numbers sealed when a call offered before version 3 was */
        .flags = (pii == &c->pii && c->pii.len && !c->sealed_v3 ? RF_SEAL_V2 : 0) |
                 (c->withheld ? RF_WITHHELD : 0) | RF_TIDX,
    };
    memcpy(r.pseudo, pseudo, sizeof pseudo);
    /* The parts are in the buffer the record is encoded into: copy them out. */
    uint8_t *partbuf = malloc(parts ? parts : 1);
    if (!partbuf) {
        *wp = w;
        rc = SB_ENOMEM;
        goto out;
    }
    if (parts) memcpy(partbuf, w.b.p, parts);
    r.att = partbuf;
    r.attlen = attlen;
    r.ver = partbuf + attlen;
    r.verlen = parts - attlen;
    /* The same call id may finish twice in one millisecond only in tests
    ** with a frozen clock: its record then ends a millisecond later. */
    for (int i = 0;; i++, end++) {
        r.ended = end;
        r.wait_ms = i64_sub_sat(c->answered ? c->answered : end, c->offered);
        r.talk_ms = i64_add_sat(c->talked, c->connected ? i64_sub_sat(end, c->connected) : 0);
        wb_reset(&w);
        rec_encode(&w, &r);
        rc = w.err ? SB_ENOMEM : i > 1000 ? SB_ESTORE : 0;
        if (!rc) {
            rkl = rec_key_of(rk, t->acct, c->id, idlen, end);
            rc = st_put_new(t->txn, e, DB_RECORDS, rk, rkl, w.b.p, w.b.len);
        }
        if (rc != MDB_KEYEXIST) break;
    }
    free(partbuf);
    *wp = w; /* keep the (possibly grown) buffer for the next record */
    if (rc) goto out;
    int64_t wait = r.wait_ms, talk = r.talk_ms;
    /* The call-id and pseudonym index: records by call id, caller history,
    ** erasure and access requests. */
    uint8_t iv[5];
    put_be32(iv, outcome == OUT_ANSWERED ? c->agent : 0);
    iv[4] = (uint8_t)outcome;
    if ((rc = rec_index_put(t->txn, e, t->acct, &r, iv))) goto out;
    if (!rc) rc = aggr_call(t, c, q, outcome, ended, r.ended, wait, talk, &s);
    if (!rc && s.retention[0]) rc = ret_on_write(t, rk, rkl, &s, wp->b.p, wp->b.len);
    if (!rc) rc = ret_erase_on_write(t, rk, rkl, c->id, c->offered, pseudo, npseudo);
out:
    agent_free(&a);
    queue_free(&first);
    if (legacy.p) buf_free(&legacy);
    return rc;
}

/* --- reading ----------------------------------------------------------------------------- */

/* The latest end of call_id's records in acct, of those in recid or in
** recidt's periods from since's on: 0 with *ended (-1: none). */
static int recid_latest(sb_engine *e, MDB_txn *txn, uint32_t acct, const char *call_id,
                        int64_t since, int64_t *ended)
{
    size_t n = strlen(call_id);
    uint8_t p[7 + SB_ID_MAX], kb[8 + SB_ID_MAX];
    st_iter it;
    int rc;
    *ended = -1;
    put_be32(p, acct);
    if (rec_old_layout(e)) {
        memcpy(p + 4, call_id, n);
        p[4 + n] = 0; /* recid: acct, id, NUL, end */
        for (rc = st_iter_open(&it, txn, e, DB_RECID, p, n + 5); rc == 0; rc = st_iter_next(&it))
            if (it.klen == n + 13 && (int64_t)be64(it.key + n + 5) > *ended)
                *ended = (int64_t)be64(it.key + n + 5);
        st_iter_close(&it);
        if (rc != MDB_NOTFOUND) return rc;
    }
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(txn, e->dbi[DB_RECIDT], &c))) return rc;
    unsigned period = tidx_period(since), got;
    memcpy(p + 6, call_id, n);
    p[6 + n] = 0; /* recidt: acct, period, id, NUL, end */
    /* One cursor finds the periods and, in each, the id's entries. */
    while ((rc = period_near(c, DB_RECIDT, acct, period, &got)) == 0) {
        put_period(p + 4, got);
        MDB_val pre = tkey(kb, DB_RECIDT, p, n + 7), k = pre, v;
        for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
             rc == 0 && k.mv_size >= pre.mv_size && !memcmp(k.mv_data, pre.mv_data, pre.mv_size);
             rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
            if (k.mv_size == n + 16 && (int64_t)be64((uint8_t *)k.mv_data + n + 8) > *ended)
                *ended = (int64_t)be64((uint8_t *)k.mv_data + n + 8);
        if ((rc && rc != MDB_NOTFOUND) || got == 0xFFFF) break;
        period = got + 1;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

int64_t record_latest_end(sb_engine *e, MDB_txn *txn, uint32_t acct, const char *call_id,
                          int64_t since)
{
    int64_t ended;
    return id_valid(call_id) && recid_latest(e, txn, acct, call_id, since, &ended) == 0 ? ended
                                                                                        : -1;
}

int record_exists(sb_engine *e, MDB_txn *txn, uint32_t acct, const char *call_id, int64_t since)
{
    return record_latest_end(e, txn, acct, call_id, since) >= 0;
}

int record_get(sb_engine *e, MDB_txn *txn, uint32_t acct, const char *call_id, sb_result *res)
{
    int rc;
    if (!id_valid(call_id)) return res_no_such(res, "call", "call", call_id);
    /* The latest record of that call id. */
    size_t n = strlen(call_id);
    int64_t ended;
    if ((rc = recid_latest(e, txn, acct, call_id, 0, &ended)))
        return eng_mdb_err(res, rc, "read record");
    if (ended < 0) return res_err(res, SB_ENOTFOUND, "call", "no such call '%s'", call_id);
    uint8_t rk[REC_KEY_MAX];
    MDB_val last;
    rc = st_get(txn, e, DB_RECORDS, rk, rec_key_of(rk, acct, call_id, n, ended), &last);
    if (rc == MDB_NOTFOUND) return res_err(res, SB_ENOTFOUND, "call", "no such call '%s'", call_id);
    if (rc) return eng_mdb_err(res, rc, "read record");
    rec_data r;
    if (rec_decode(last.mv_data, last.mv_size, &r))
        return res_err(res, SB_ESTORE, NULL, "record of call '%s' is corrupt", call_id);
    json_t *o = rec_json(&r);
    if ((rc = rec_held_by(txn, e, acct, &r, o))) {
        json_decref(o);
        return rc == SB_ENOMEM ? res_err(res, rc, NULL, "out of memory")
                               : eng_mdb_err(res, rc, "read the legal holds");
    }
    res_doc(res, o);
    return 0;
}
