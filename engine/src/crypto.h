/*
** crypto.h — everything Switchboard does with libsodium (internal, not API).
**
** Shaped like libsodium: callers pass the buffers, nothing is allocated for
** them, intermediate secrets (subkeys, hash states, decoded key material) are
** wiped with sodium_memzero on every exit path, and every function whose
** result decides something (open, verify, compare, load) is
** warn_unused_result. Functions returning int give 0 on success and -1 on
** failure unless said otherwise.
**
** cr_init() must have succeeded before any other cr_* function is called
** (cr_master_load calls it itself).
**
** What is used where:
**   master key   32 random bytes in a 0600 file; wraps account data keys and
**                keys the API-key hashes (through a subkey, which data.keys
**                keeps wrapped once the master key has been rotated:
**                records.c). Never leaves the process.
**   data key     one per account, stored only wrapped (cr_wrap). Seals caller
**                numbers (cr_seal) and keys their pseudonyms (cr_pseudonym).
**                Deleting the wrapped key crypto-shreds the account.
**   API keys     handed out once (cr_apikey_new), stored only as a keyed hash.
**   policies     versioned by content hash (cr_version), optionally signed
**                with Ed25519 (cr_sign / cr_verify).
**
** Formats below are stored on disk; changing any of them (AD layout, KDF
** context or subkey id, hash input layout) makes existing data unreadable.
*/
#ifndef SB_CRYPTO_H
#define SB_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define CR_NODISCARD __attribute__((warn_unused_result))
#else
#define CR_NODISCARD
#endif

#define CR_KEY_BYTES 32
#define CR_WRAPPED_BYTES (24 + 32 + 16) /* nonce + key + tag */
#define CR_SEAL_OVERHEAD (24 + 16)      /* nonce + tag */
#define CR_PSEUDONYM_BYTES 16
#define CR_APIKEY_HASH_BYTES 32
#define CR_APIKEY_LEN 47 /* strlen of a key from cr_apikey_new: "sbk_" + 43 */
#define CR_APIKEY_PREFIX "sbk_"
#define CR_SIGN_PK_BYTES 32
#define CR_SIGN_SK_BYTES 64 /* libsodium layout: 32-byte seed, then the public key */
#define CR_SIGN_BYTES 64
#define CR_VERSION_LEN 16 /* strlen of a policy version from cr_version */

/* sodium_init(). 0 on success, also when already initialised; -1 when the
** library cannot be used (no randomness source). Thread-safe. */
CR_NODISCARD int cr_init(void);

/* Load the 32-byte master key from `path` into key.
**
** File format: 64 hex digits (lowercase written; either case read), optionally
** followed by one '\n'. Refused (-1, message in err): a file that is not a
** regular file (directories, FIFOs, devices; a symlink is followed and judged
** by its target, and one whose target does not exist is refused, create or
** not: nothing is made through it), that has any other size or content, or
** that group or others may read or write (mode & 0066). The owner is not
** checked.
**
** If the file does not exist and create != 0, a random key is written to a
** temporary file beside it (mkostemp: O_EXCL, mode 0600 regardless of umask),
** fsynced, published under `path` and the directory fsynced. Publishing uses
** link(2), not rename(2), so that two processes creating the key at once
** cannot both win: the loser discards its key and loads the winner's (with
** rename the loser would return a key that is no longer on disk, and data
** wrapped with it would be lost). On file systems without hard links it
** falls back to rename. In every case the key returned is the one re-read
** from `path`.
**
** err (may be NULL) receives a NUL-terminated message naming the path on
** failure, truncated to errlen. On failure key is zeroed. */
CR_NODISCARD int cr_master_load(const char *path, int create, uint8_t key[CR_KEY_BYTES], char *err,
                                size_t errlen);

/* Fill buf with len bytes from libsodium's CSPRNG. */
void cr_random(void *buf, size_t len);
/* Zero a secret so the compiler cannot optimise the write away. */
void cr_wipe(void *buf, size_t len);
/* Keep a long-lived secret out of swap and core dumps (mlock, and
** MADV_DONTDUMP where there is one), as far as the limits allow; then
** cr_unprotect zeroes it and lets it go. */
void cr_protect(void *buf, size_t len);
void cr_unprotect(void *buf, size_t len);

/* Wrap an account data key under the master key: XChaCha20-Poly1305-IETF,
** random nonce, the account id (without its NUL) as associated data, so a
** wrapped key copied to another account does not open.
** out = nonce(24) | encrypted key(32) | tag(16). -1 only for a NULL account. */
CR_NODISCARD int cr_wrap(const uint8_t master[CR_KEY_BYTES], const char *account,
                         const uint8_t key[CR_KEY_BYTES], uint8_t out[CR_WRAPPED_BYTES]);
/* Inverse of cr_wrap. -1 (key zeroed) when the tag does not verify: wrong
** master, wrong account, or tampered data. */
CR_NODISCARD int cr_unwrap(const uint8_t master[CR_KEY_BYTES], const char *account,
                           const uint8_t in[CR_WRAPPED_BYTES], uint8_t key[CR_KEY_BYTES]);

/* Seal a personal value (a caller number) with an account data key.
** ad binds the ciphertext to its record (e.g. the record id); it is not
** encrypted and must be given again to cr_open. ad may be NULL if adlen is 0.
** out receives len + CR_SEAL_OVERHEAD bytes: nonce(24) | ciphertext | tag(16).
** out must not overlap msg. -1 only when len is too large. */
CR_NODISCARD int cr_seal(const uint8_t key[CR_KEY_BYTES], const void *ad, size_t adlen,
                         const void *msg, size_t len, uint8_t *out);
/* Open what cr_seal produced. out receives inlen - CR_SEAL_OVERHEAD bytes and
** must not overlap in. -1 (out zeroed) when inlen < CR_SEAL_OVERHEAD or the
** key, the ad or the data are not the ones sealed. */
CR_NODISCARD int cr_open(const uint8_t key[CR_KEY_BYTES], const void *ad, size_t adlen,
                         const uint8_t *in, size_t inlen, uint8_t *out);

/* A check value of the master key, kept beside what it wrapped so that data
** wrapped by another master key is told apart from data that does not open
** for another reason (a stale or tampered slot):
**   subkey = crypto_kdf_derive_from_key(32, id 1, ctx "sbkcheck", master)
**   out    = BLAKE2b-128(key = subkey, msg = "switchboard master key")
** It reveals nothing of the master key. */
#define CR_MASTER_CHECK_BYTES 16
void cr_master_check(const uint8_t master[CR_KEY_BYTES], uint8_t out[CR_MASTER_CHECK_BYTES]);

/* Keyed pseudonym of a normalized (E.164) number, for finding a caller's
** records without storing the number in the clear:
**   subkey = crypto_kdf_derive_from_key(32, id 1, ctx "sbpseudo", key)
**   out    = BLAKE2b-128(key = subkey, msg = number without its NUL)
** Deterministic for one key; different data keys (accounts) give unrelated
** pseudonyms. The caller normalizes: "+4930123" and "004930123" differ. */
void cr_pseudonym(const uint8_t key[CR_KEY_BYTES], const char *number,
                  uint8_t out[CR_PSEUDONYM_BYTES]);
/* The same in two steps, for a caller that keeps the subkey (records.c's
** key cache): cr_pseudonym_subkey once per key, cr_pseudonym_with per number. */
void cr_pseudonym_subkey(const uint8_t key[CR_KEY_BYTES], uint8_t sub[CR_KEY_BYTES]);
void cr_pseudonym_with(const uint8_t sub[CR_KEY_BYTES], const char *number,
                       uint8_t out[CR_PSEUDONYM_BYTES]);

/* A new API key: "sbk_" + 43 chars of URL-safe base64 without padding
** ([A-Za-z0-9_-]) of 32 random bytes, NUL-terminated (CR_APIKEY_LEN chars).
** out must hold 64 bytes. The key is a secret: show it once, store only
** cr_apikey_hash, wipe out when done. */
void cr_apikey_new(char out[64]);
/* Keyed hash of an API key, the only form in which keys are stored:
**   subkey = crypto_kdf_derive_from_key(32, id 1, ctx "sbapikey", master)
**   out    = BLAKE2b-256(key = subkey, msg = account | 0x00 | key[0..len))
** Account ids contain no NUL byte, so the encoding is unambiguous. */
void cr_apikey_hash(const uint8_t master[CR_KEY_BYTES], const char *account, const char *key,
                    size_t len, uint8_t out[CR_APIKEY_HASH_BYTES]);
/* The same in two steps: the subkey (crypto_kdf_derive_from_key above), and
** the hash keyed by a subkey. The engine hashes with the subkey data.keys
** keeps once the master key has been rotated (records.c, rec_apikey_subkey):
** the stored hashes were made with the subkey of the first master key, and
** the keys themselves are not stored, so they cannot be hashed again. */
void cr_apikey_subkey(const uint8_t master[CR_KEY_BYTES], uint8_t sub[CR_KEY_BYTES]);
void cr_apikey_hash_with(const uint8_t sub[CR_KEY_BYTES], const char *account, const char *key,
                         size_t len, uint8_t out[CR_APIKEY_HASH_BYTES]);
/* A check value of the API-key hashing subkey, kept in data.mdb once the
** master key has been rotated, so that an open can tell a data.keys whose
** slot 0 is missing (or another's) from the one the API keys were made with:
**   out = BLAKE2b-128(key = sub, msg = "switchboard api key subkey")
** It reveals nothing of the subkey. */
#define CR_APIKEY_CHECK_BYTES 16
void cr_apikey_check(const uint8_t sub[CR_KEY_BYTES], uint8_t out[CR_APIKEY_CHECK_BYTES]);
/* Recompute the hash of (account, key) and compare it with stored in constant
** time. 0 if it matches, -1 otherwise. */
CR_NODISCARD int cr_apikey_verify(const uint8_t master[CR_KEY_BYTES], const char *account,
                                  const char *key, size_t len,
                                  const uint8_t stored[CR_APIKEY_HASH_BYTES]);

/* Policy version: the first 8 bytes of SHA-256(src) as 16 lowercase hex
** digits, NUL-terminated. */
void cr_version(const void *src, size_t len, char out[CR_VERSION_LEN + 1]);

/* Ed25519 detached signatures over policy sources. sk is libsodium's 64-byte
** secret key (seed | public key). Keys and signatures are kept in files as
** lowercase hex (cr_hex_encode / cr_hex_decode). */
CR_NODISCARD int cr_sign_keypair(uint8_t pk[CR_SIGN_PK_BYTES], uint8_t sk[CR_SIGN_SK_BYTES]);
CR_NODISCARD int cr_sign(const uint8_t sk[CR_SIGN_SK_BYTES], const void *msg, size_t len,
                         uint8_t sig[CR_SIGN_BYTES]);
/* 0 if sig is a valid signature of msg by pk, -1 otherwise. */
CR_NODISCARD int cr_verify(const uint8_t pk[CR_SIGN_PK_BYTES], const void *msg, size_t len,
                           const uint8_t sig[CR_SIGN_BYTES]);

/* Decode exactly outlen bytes from exactly hexlen = 2 * outlen hex digits
** (either case; no whitespace, no prefix). Runs in time independent of the
** digits' values, so it may decode secret keys. -1 (out zeroed) on any other
** length or a non-hex character. */
CR_NODISCARD int cr_hex_decode(const char *hex, size_t hexlen, uint8_t *out, size_t outlen);
/* Lowercase hex of in; out must hold 2 * len + 1 bytes (NUL-terminated).
** Constant time. */
void cr_hex_encode(const uint8_t *in, size_t len, char *out);

/* Constant-time equality of two secrets of the same length.
** NOTE: a predicate, unlike sodium_memcmp: 1 if equal, 0 if not. */
CR_NODISCARD int cr_equal(const void *a, const void *b, size_t len);
/* Constant-time comparison of a presented token (e.g. the admin bearer token)
** with the expected one when their lengths may differ: both are hashed
** (BLAKE2b-256) and the hashes compared, so neither the position of the first
** difference nor the expected length leaks through timing.
** A predicate: 1 if equal, 0 if not. */
CR_NODISCARD int cr_token_equal(const void *given, size_t givenlen, const void *expected,
                                size_t expectedlen);

#endif
