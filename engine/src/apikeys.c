/*
** apikeys.c — per-account API keys: random (libsodium), shown once, stored
** only as a hash keyed from the master key, compared in constant time.
*/
#include "crypto.h"
#include "engine.h"

#include <string.h>

#define MAX_KEYS_PER_ACCOUNT 64

static size_t key_key(uint8_t *k, uint32_t acct, const char *key_id)
{
    size_t n = strlen(key_id);
    put_be32(k, acct);
    memcpy(k + 4, key_id, n);
    return 4 + n;
}

typedef struct {
    const char *account;
    char key[64];
    char key_id[17];
    int64_t created;
} key_op;

static int do_create(wtx *t, void *arg)
{
    key_op *op = arg;
    int rc = tx_account(t, op->account);
    if (rc) return rc;
    /* Bound the number of keys: verification looks at each. */
    st_iter it;
    int n = 0;
    uint8_t p[4];
    for (rc = st_iter_open(&it, t->txn, t->e, DB_APIKEYS, p, key_acct(p, t->acct)); rc == 0;
         rc = st_iter_next(&it))
        n++;
    st_iter_close(&it);
    if (rc != MDB_NOTFOUND) return rc;
    if (n >= MAX_KEYS_PER_ACCOUNT)
        return res_err(t->res, SB_ELIMIT, NULL, "account has %d keys; revoke one first", n);
    /* The value: the key's hash, then when it was made (Unix ms; keys made
    ** before data directory format 7 have the hash alone). */
    uint8_t rnd[8], val[CR_APIKEY_HASH_BYTES + 8], kb[4 + 16];
    cr_random(rnd, sizeof rnd);
    cr_hex_encode(rnd, sizeof rnd, op->key_id);
    cr_apikey_new(op->key);
    cr_apikey_hash_with(t->e->apisub, op->account, op->key, strlen(op->key), val);
    put_be64(val + CR_APIKEY_HASH_BYTES, (uint64_t)t->now);
    op->created = t->now;
    rc = st_put(t->txn, t->e, DB_APIKEYS, kb, key_key(kb, t->acct, op->key_id), val, sizeof val);
    cr_wipe(val, sizeof val);
    return rc;
}

int sb_apikey_create(sb_engine *e, const char *account, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    key_op op = {.account = account};
    int rc = eng_write(e, do_create, &op, res);
    if (!rc)
        res_doc(res, json_pack("{s:s, s:s, s:s, s:I}", "account", account, "key_id", op.key_id,
                               "key", op.key, "created_ms", (json_int_t)op.created));
    cr_wipe(op.key, sizeof op.key);
    return rc;
}

int sb_apikey_verify(sb_engine *e, const char *account, const char *key, size_t len)
{
    if (!e || !key || !id_valid(account) || len == 0 || len > 256) return SB_EAUTH;
    /* The hash of what was presented, computed once, whether the account
    ** exists or not and however many keys it has: then only 32-byte
    ** constant-time comparisons depend on the stored keys, so the time of a
    ** refusal tells neither whether the account exists nor how many keys
    ** it has (a hash per stored key did: an account with three keys cost
    ** three hashes, an unknown one a single hash). */
    uint8_t h[CR_APIKEY_HASH_BYTES];
    cr_apikey_hash_with(e->apisub, account, key, len, h);
    MDB_txn *txn;
    if (eng_read_begin(e, &txn)) {
        cr_wipe(h, sizeof h);
        return SB_ESTORE;
    }
    acct_rec acc;
    int ok = 0;
    if (st_account_by_id(txn, e, account, &acc) == 0) {
        st_iter it;
        uint8_t p[4];
        for (int r = st_iter_open(&it, txn, e, DB_APIKEYS, p, key_acct(p, acc.num)); r == 0;
             r = st_iter_next(&it))
            if (it.v.mv_size == CR_APIKEY_HASH_BYTES || it.v.mv_size == CR_APIKEY_HASH_BYTES + 8)
                ok |= cr_equal(h, it.v.mv_data, sizeof h); /* no early exit */
        st_iter_close(&it);
    }
    eng_read_end(e, txn);
    cr_wipe(h, sizeof h);
    return ok ? 0 : SB_EAUTH;
}

int sb_apikey_list(sb_engine *e, const char *account, sb_result *res)
{
    res_reset(res);
    MDB_txn *txn;
    acct_rec acc;
    int rc = eng_read_account(e, account, &txn, &acc, res);
    if (rc) return rc;
    json_t *keys = json_array();
    st_iter it;
    uint8_t p[4];
    for (rc = st_iter_open(&it, txn, e, DB_APIKEYS, p, key_acct(p, acc.num)); rc == 0;
         rc = st_iter_next(&it))
        if (it.klen == 4 + 16) {
            json_t *k = json_pack("{s:s%}", "key_id", it.key + 4, (size_t)16);
            if (it.v.mv_size == CR_APIKEY_HASH_BYTES + 8)
                json_object_set_new(k, "created_ms",
                                    json_integer((json_int_t)be64((const uint8_t *)it.v.mv_data +
                                                                  CR_APIKEY_HASH_BYTES)));
            json_array_append_new(keys, k);
        }
    st_iter_close(&it);
    eng_read_end(e, txn);
    if (rc != MDB_NOTFOUND) {
        json_decref(keys);
        return eng_mdb_err(res, rc, "list keys");
    }
    res_doc(res, json_pack("{s:o}", "keys", keys));
    return 0;
}

typedef struct {
    const char *account, *key_id;
} revoke_op;

static int do_revoke(wtx *t, void *arg)
{
    revoke_op *op = arg;
    int rc = tx_account(t, op->account);
    if (rc) return rc;
    if (!op->key_id || strlen(op->key_id) != 16)
        return res_err(t->res, SB_ENOTFOUND, "key_id", "no such key");
    uint8_t k[4 + 16];
    rc = st_del_exact(t->txn, t->e, DB_APIKEYS, k, key_key(k, t->acct, op->key_id));
    if (rc == MDB_NOTFOUND) return res_err(t->res, SB_ENOTFOUND, "key_id", "no such key");
    return rc;
}

int sb_apikey_revoke(sb_engine *e, const char *account, const char *key_id, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    revoke_op op = {account, key_id};
    return eng_write_ex(e, do_revoke, &op, res, 1); /* a delete */
}
