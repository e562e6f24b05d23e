/*
** crypto.c — libsodium behind the small interface of crypto.h: the master key
** file, key wrapping, sealing of personal values, pseudonyms, API-key hashes,
** policy versions and signatures, hex and constant-time comparison.
*/
#include "crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

_Static_assert(CR_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "aead key size");
_Static_assert(CR_KEY_BYTES == crypto_kdf_KEYBYTES, "kdf key size");
_Static_assert(CR_WRAPPED_BYTES == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + CR_KEY_BYTES +
                                       crypto_aead_xchacha20poly1305_ietf_ABYTES,
               "wrapped size");
_Static_assert(CR_SEAL_OVERHEAD == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES +
                                       crypto_aead_xchacha20poly1305_ietf_ABYTES,
               "seal overhead");
_Static_assert(CR_SIGN_PK_BYTES == crypto_sign_PUBLICKEYBYTES, "sign pk size");
_Static_assert(CR_SIGN_SK_BYTES == crypto_sign_SECRETKEYBYTES, "sign sk size");
_Static_assert(CR_SIGN_BYTES == crypto_sign_BYTES, "signature size");
_Static_assert(CR_APIKEY_LEN + 1 ==
                   4 + sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
               "api key length");
_Static_assert(CR_APIKEY_LEN + 1 <= 64, "api key buffer");

#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define MASTER_HEX_LEN (2 * CR_KEY_BYTES)

/* KDF contexts are exactly crypto_kdf_CONTEXTBYTES (8) characters. Stored
** formats depend on them and on the subkey ids: never change either. */
static const char KDF_PSEUDONYM[] = "sbpseudo";
static const char KDF_APIKEY[] = "sbapikey";
static const char KDF_CHECK[] = "sbkcheck";
_Static_assert(sizeof KDF_PSEUDONYM - 1 == crypto_kdf_CONTEXTBYTES, "kdf context length");
_Static_assert(sizeof KDF_APIKEY - 1 == crypto_kdf_CONTEXTBYTES, "kdf context length");
_Static_assert(sizeof KDF_CHECK - 1 == crypto_kdf_CONTEXTBYTES, "kdf context length");
enum { SUBKEY_ID = 1, SUBKEY_BYTES = 32 };
_Static_assert(SUBKEY_BYTES == CR_KEY_BYTES, "a kept pseudonym subkey is a key");

int cr_init(void)
{
    return sodium_init() < 0 ? -1 : 0; /* 1 means "already initialised" */
}

void cr_random(void *buf, size_t len)
{
    randombytes_buf(buf, len);
}

/* ------------------------------------------------------------------------ */
/* Master key file. */

__attribute__((format(printf, 3, 4))) static void seterr(char *err, size_t errlen, const char *fmt,
                                                         ...)
{
    va_list ap;
    if (!err || errlen == 0) return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* fsync the directory holding path, so a new name in it survives a crash. */
static int fsync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    int fd, rc, saved;

    if (!slash)
        dir = strdup(".");
    else if (slash == path)
        dir = strdup("/");
    else
        dir = strndup(path, (size_t)(slash - path));
    if (!dir) return -1;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0) return -1;
    rc = fsync(fd);
    saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* The owner of the directory holding path (-1 when it cannot be read). */
static long long key_dir_owner(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (n >= sizeof dir) return -1;
    if (slash && n == 0) n = 1; /* "/key" */
    memcpy(dir, slash ? path : ".", slash ? n : 1);
    dir[slash ? n : 1] = 0;
    struct stat ds;
    return stat(dir, &ds) == 0 ? (long long)ds.st_uid : -1;
}

/* Read and check an existing key file. Returns 0, -1 with errno = ENOENT when
** the file does not exist (message set too), -1 otherwise. */
static int master_read(const char *path, uint8_t key[CR_KEY_BYTES], char *err, size_t errlen)
{
    /* Room for one byte more than the longest valid file, to notice growth
    ** between fstat and read. */
    char buf[MASTER_HEX_LEN + 2];
    struct stat st;
    size_t got = 0;
    int fd, rc = -1;

    /* O_NONBLOCK: opening a FIFO must not hang; fstat then refuses it. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int saved = errno;
        seterr(err, errlen, "master key %s: %s", path, strerror(saved));
        errno = saved;
        return -1;
    }
    if (fstat(fd, &st) != 0) {
        seterr(err, errlen, "master key %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        seterr(err, errlen, "master key %s: not a regular file", path);
        goto out;
    }
    if (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) {
        seterr(err, errlen,
               "master key %s: mode %04o lets group or others read or write it (chmod 600)", path,
               (unsigned)(st.st_mode & 07777));
        goto out;
    }
    /* Another user's file is a key that user knows (one put there before the
    ** first start seals every account's data with it). Root's is trusted,
    ** and root takes the key of the user whose directory holds it (the
    ** daemon's user's, for a command an operator runs as root). */
    if (st.st_uid != geteuid() && st.st_uid != 0 &&
        !(geteuid() == 0 && key_dir_owner(path) == (long long)st.st_uid)) {
        seterr(err, errlen,
               "master key %s: owned by uid %u, not by this process's user (uid %u) or root "
               "(chown it, or run as its owner)",
               path, (unsigned)st.st_uid, (unsigned)geteuid());
        goto out;
    }
    if (st.st_size != MASTER_HEX_LEN && st.st_size != MASTER_HEX_LEN + 1) {
        seterr(err, errlen, "master key %s: size %lld, want %d hex digits and an optional newline",
               path, (long long)st.st_size, MASTER_HEX_LEN);
        goto out;
    }
    while (got < sizeof buf) {
        ssize_t n = read(fd, buf + got, sizeof buf - got);
        if (n < 0) {
            if (errno == EINTR) continue;
            seterr(err, errlen, "master key %s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0) break;
        got += (size_t)n;
    }
    if (got != (size_t)st.st_size) {
        seterr(err, errlen, "master key %s: changed while being read", path);
        goto out;
    }
    if (got == MASTER_HEX_LEN + 1 && buf[MASTER_HEX_LEN] != '\n') {
        seterr(err, errlen, "master key %s: want %d hex digits and an optional newline", path,
               MASTER_HEX_LEN);
        goto out;
    }
    if (cr_hex_decode(buf, MASTER_HEX_LEN, key, CR_KEY_BYTES) != 0) {
        seterr(err, errlen, "master key %s: not %d hex digits", path, MASTER_HEX_LEN);
        goto out;
    }
    rc = 0;
out:
    sodium_memzero(buf, sizeof buf);
    close(fd);
    errno = 0;
    return rc;
}

/* Create path with a fresh random key, without ever replacing an existing
** file. 0 when path now exists (ours or a concurrent creator's), -1 if not. */
static int master_create(const char *path, char *err, size_t errlen)
{
    uint8_t key[CR_KEY_BYTES];
    char hex[MASTER_HEX_LEN + 2];
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof ".tmp.XXXXXX");
    int fd = -1, rc = -1, created = 0;

    if (!tmp) {
        seterr(err, errlen, "master key %s: out of memory", path);
        return -1;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");

    randombytes_buf(key, sizeof key);
    cr_hex_encode(key, sizeof key, hex);
    sodium_memzero(key, sizeof key);
    hex[MASTER_HEX_LEN] = '\n';

    fd = mkostemp(tmp, O_CLOEXEC); /* O_CREAT | O_EXCL, mode 0600 */
    if (fd < 0) {
        seterr(err, errlen, "master key %s: cannot create %s: %s", path, tmp, strerror(errno));
        goto out;
    }
    created = 1;
    /* The umask may have taken bits off 0600; we must be able to read it back. */
    if (fchmod(fd, S_IRUSR | S_IWUSR) != 0 || write_all(fd, hex, MASTER_HEX_LEN + 1) != 0 ||
        fsync(fd) != 0) {
        seterr(err, errlen, "master key %s: cannot write %s: %s", path, tmp, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        seterr(err, errlen, "master key %s: cannot write %s: %s", path, tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    /* link() refuses to replace an existing name, so of two concurrent
    ** creators exactly one publishes its key and the other reads it. */
    if (link(tmp, path) == 0 || errno == EEXIST) {
        /* published, or lost the race: the caller re-reads the winner's key */
    } else if (errno == EPERM || errno == EOPNOTSUPP || errno == ENOSYS || errno == EMLINK) {
        /* No hard links here (vfat, some network file systems). rename is
        ** atomic but may replace a concurrent creator's key; the caller
        ** re-reads, so at least what it returns is what is on disk. */
        if (rename(tmp, path) != 0) {
            seterr(err, errlen, "master key %s: cannot rename %s: %s", path, tmp, strerror(errno));
            goto out;
        }
        created = 0; /* the temporary name is gone */
    } else {
        seterr(err, errlen, "master key %s: cannot link %s: %s", path, tmp, strerror(errno));
        goto out;
    }
    if (fsync_parent(path) != 0) {
        seterr(err, errlen, "master key %s: cannot sync its directory: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0) close(fd);
    if (created) unlink(tmp);
    free(tmp);
    sodium_memzero(hex, sizeof hex);
    return rc;
}

/* Whether path is a symbolic link whose target does not exist. */
static int dangling_link(const char *path)
{
    struct stat ls, ts;
    int saved = errno, r = lstat(path, &ls) == 0 && S_ISLNK(ls.st_mode) && stat(path, &ts) != 0;
    errno = saved;
    return r;
}

int cr_master_load(const char *path, int create, uint8_t key[CR_KEY_BYTES], char *err,
                   size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (!path || !*path) {
        seterr(err, errlen, "master key: no path given");
        goto fail;
    }
    if (cr_init() != 0) {
        seterr(err, errlen, "master key %s: libsodium failed to initialise", path);
        goto fail;
    }
    if (master_read(path, key, err, errlen) == 0) return 0;
    if (errno == ENOENT && dangling_link(path)) {
        /* link(2) would not replace the link and open(2) would not find its
        ** target: say what is wrong, rather than "No such file" for a file
        ** this call was to create. Nothing is made through the link. */
        seterr(err, errlen,
               "master key %s: a symbolic link to a file that does not exist (create the key "
               "file there, or remove the link)",
               path);
        goto fail;
    }
    if (errno != ENOENT || !create) goto fail;
    if (master_create(path, err, errlen) != 0) goto fail;
    /* Return what is on disk, whether we or a concurrent creator wrote it. */
    if (master_read(path, key, err, errlen) == 0) {
        if (err && errlen) err[0] = '\0';
        return 0;
    }
fail:
    sodium_memzero(key, CR_KEY_BYTES);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Account data keys, wrapped under the master key. */

int cr_wrap(const uint8_t master[CR_KEY_BYTES], const char *account,
            const uint8_t key[CR_KEY_BYTES], uint8_t out[CR_WRAPPED_BYTES])
{
    if (!account) return -1;
    randombytes_buf(out, NONCE_BYTES);
    return crypto_aead_xchacha20poly1305_ietf_encrypt(out + NONCE_BYTES, NULL, key, CR_KEY_BYTES,
                                                      (const unsigned char *)account,
                                                      strlen(account), NULL, out, master) == 0
               ? 0
               : -1;
}

int cr_unwrap(const uint8_t master[CR_KEY_BYTES], const char *account,
              const uint8_t in[CR_WRAPPED_BYTES], uint8_t key[CR_KEY_BYTES])
{
    if (account && crypto_aead_xchacha20poly1305_ietf_decrypt(
                       key, NULL, NULL, in + NONCE_BYTES, CR_WRAPPED_BYTES - NONCE_BYTES,
                       (const unsigned char *)account, strlen(account), in, master) == 0)
        return 0;
    sodium_memzero(key, CR_KEY_BYTES);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Personal values sealed with an account data key. */

/* Seal nonces: 16 random bytes drawn once per process, then a 64-bit
** counter. XChaCha20's 192-bit nonce has room for both, so every seal is
** unique under its key (random prefixes of different processes collide with
** probability 2^-128) without a getrandom system call per sealed call. A
** forked child draws a prefix of its own before its first seal. */
static pthread_mutex_t nonce_mu = PTHREAD_MUTEX_INITIALIZER;
static uint8_t nonce_prefix[NONCE_BYTES - 8];
static uint64_t nonce_ctr;
static int nonce_ready;
static pthread_once_t nonce_once = PTHREAD_ONCE_INIT;

static void nonce_forked(void)
{
    nonce_ready = 0; /* the child alone runs this: no lock is held */
    pthread_mutex_init(&nonce_mu, NULL);
}

static void nonce_setup(void)
{
    pthread_atfork(NULL, NULL, nonce_forked);
}

static void nonce_next(uint8_t out[NONCE_BYTES])
{
    pthread_once(&nonce_once, nonce_setup);
    pthread_mutex_lock(&nonce_mu);
    if (!nonce_ready || nonce_ctr == UINT64_MAX) {
        randombytes_buf(nonce_prefix, sizeof nonce_prefix);
        nonce_ctr = 0;
        nonce_ready = 1;
    }
    uint64_t n = ++nonce_ctr;
    memcpy(out, nonce_prefix, sizeof nonce_prefix);
    pthread_mutex_unlock(&nonce_mu);
    for (int i = 0; i < 8; i++)
        out[NONCE_BYTES - 1 - i] = (uint8_t)(n >> (8 * i));
}

int cr_seal(const uint8_t key[CR_KEY_BYTES], const void *ad, size_t adlen, const void *msg,
            size_t len, uint8_t *out)
{
    if (len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX ||
        len > SIZE_MAX - CR_SEAL_OVERHEAD)
        return -1;
    nonce_next(out);
    return crypto_aead_xchacha20poly1305_ietf_encrypt(out + NONCE_BYTES, NULL, msg, len, ad, adlen,
                                                      NULL, out, key) == 0
               ? 0
               : -1;
}

int cr_open(const uint8_t key[CR_KEY_BYTES], const void *ad, size_t adlen, const uint8_t *in,
            size_t inlen, uint8_t *out)
{
    if (inlen < CR_SEAL_OVERHEAD) return -1; /* nothing written to out */
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, in + NONCE_BYTES,
                                                   inlen - NONCE_BYTES, ad, adlen, in, key) == 0)
        return 0;
    sodium_memzero(out, inlen - CR_SEAL_OVERHEAD);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Keyed hashes: pseudonyms and API keys. */

void cr_master_check(const uint8_t master[CR_KEY_BYTES], uint8_t out[CR_MASTER_CHECK_BYTES])
{
    static const char msg[] = "switchboard master key";
    uint8_t subkey[SUBKEY_BYTES];

    crypto_kdf_derive_from_key(subkey, sizeof subkey, SUBKEY_ID, KDF_CHECK, master);
    crypto_generichash(out, CR_MASTER_CHECK_BYTES, (const unsigned char *)msg, sizeof msg - 1,
                       subkey, sizeof subkey);
    sodium_memzero(subkey, sizeof subkey);
}

void cr_pseudonym_subkey(const uint8_t key[CR_KEY_BYTES], uint8_t sub[CR_KEY_BYTES])
{
    crypto_kdf_derive_from_key(sub, SUBKEY_BYTES, SUBKEY_ID, KDF_PSEUDONYM, key);
}

void cr_pseudonym_with(const uint8_t sub[CR_KEY_BYTES], const char *number,
                       uint8_t out[CR_PSEUDONYM_BYTES])
{
    crypto_generichash(out, CR_PSEUDONYM_BYTES, (const unsigned char *)number, strlen(number), sub,
                       SUBKEY_BYTES);
}

void cr_pseudonym(const uint8_t key[CR_KEY_BYTES], const char *number,
                  uint8_t out[CR_PSEUDONYM_BYTES])
{
    uint8_t subkey[SUBKEY_BYTES];

    cr_pseudonym_subkey(key, subkey);
    cr_pseudonym_with(subkey, number, out);
    sodium_memzero(subkey, sizeof subkey);
}

void cr_apikey_new(char out[64])
{
    uint8_t raw[32];

    randombytes_buf(raw, sizeof raw);
    memcpy(out, CR_APIKEY_PREFIX, 4);
    sodium_bin2base64(out + 4, 64 - 4, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
}

void cr_apikey_subkey(const uint8_t master[CR_KEY_BYTES], uint8_t sub[CR_KEY_BYTES])
{
    crypto_kdf_derive_from_key(sub, CR_KEY_BYTES, SUBKEY_ID, KDF_APIKEY, master);
}

void cr_apikey_hash_with(const uint8_t sub[CR_KEY_BYTES], const char *account, const char *key,
                         size_t len, uint8_t out[CR_APIKEY_HASH_BYTES])
{
    static const unsigned char zero = 0;
    crypto_generichash_state st;

    crypto_generichash_init(&st, sub, CR_KEY_BYTES, CR_APIKEY_HASH_BYTES);
    crypto_generichash_update(&st, (const unsigned char *)account, strlen(account));
    crypto_generichash_update(&st, &zero, 1);
    crypto_generichash_update(&st, (const unsigned char *)key, len);
    crypto_generichash_final(&st, out, CR_APIKEY_HASH_BYTES);
    sodium_memzero(&st, sizeof st);
}

void cr_apikey_check(const uint8_t sub[CR_KEY_BYTES], uint8_t out[CR_APIKEY_CHECK_BYTES])
{
    static const char msg[] = "switchboard api key subkey";
    crypto_generichash(out, CR_APIKEY_CHECK_BYTES, (const unsigned char *)msg, sizeof msg - 1, sub,
                       CR_KEY_BYTES);
}

void cr_apikey_hash(const uint8_t master[CR_KEY_BYTES], const char *account, const char *key,
                    size_t len, uint8_t out[CR_APIKEY_HASH_BYTES])
{
    uint8_t subkey[CR_KEY_BYTES];

    cr_apikey_subkey(master, subkey);
    cr_apikey_hash_with(subkey, account, key, len, out);
    sodium_memzero(subkey, sizeof subkey);
}

int cr_apikey_verify(const uint8_t master[CR_KEY_BYTES], const char *account, const char *key,
                     size_t len, const uint8_t stored[CR_APIKEY_HASH_BYTES])
{
    uint8_t h[CR_APIKEY_HASH_BYTES];
    int rc;

    cr_apikey_hash(master, account, key, len, h);
    rc = sodium_memcmp(h, stored, sizeof h) == 0 ? 0 : -1;
    sodium_memzero(h, sizeof h);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Policies: content versions and signatures. */

void cr_version(const void *src, size_t len, char out[CR_VERSION_LEN + 1])
{
    uint8_t h[crypto_hash_sha256_BYTES];

    crypto_hash_sha256(h, src, len);
    cr_hex_encode(h, CR_VERSION_LEN / 2, out);
}

int cr_sign_keypair(uint8_t pk[CR_SIGN_PK_BYTES], uint8_t sk[CR_SIGN_SK_BYTES])
{
    return crypto_sign_keypair(pk, sk) == 0 ? 0 : -1;
}

int cr_sign(const uint8_t sk[CR_SIGN_SK_BYTES], const void *msg, size_t len,
            uint8_t sig[CR_SIGN_BYTES])
{
    return crypto_sign_detached(sig, NULL, msg, len, sk) == 0 ? 0 : -1;
}

int cr_verify(const uint8_t pk[CR_SIGN_PK_BYTES], const void *msg, size_t len,
              const uint8_t sig[CR_SIGN_BYTES])
{
    return crypto_sign_verify_detached(sig, msg, len, pk) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* Hex and comparison. */

/* Value of one hex digit in the low 4 bits, bit 8 set if c is not a hex
** digit. No branch depends on c (the technique of libsodium's hex2bin), so
** decoding a secret key leaks nothing about it through timing. */
static unsigned int hex_value(unsigned char c)
{
    unsigned int num = (unsigned int)c ^ 48U;                     /* '0'..'9' -> 0..9 */
    unsigned int num_ok = (num - 10U) >> 8;                       /* all ones iff num < 10 */
    unsigned int alpha = ((unsigned int)c & ~32U) - 55U;          /* 'A'..'F', 'a'..'f' -> 10..15 */
    unsigned int alpha_ok = ((alpha - 10U) ^ (alpha - 16U)) >> 8; /* iff 10 <= alpha < 16 */
    unsigned int v = ((num_ok & num) | (alpha_ok & alpha)) & 0xfU;

    return v | (~(num_ok | alpha_ok) & 0x100U);
}

int cr_hex_decode(const char *hex, size_t hexlen, uint8_t *out, size_t outlen)
{
    unsigned int bad = 0;
    size_t i;

    if (outlen > SIZE_MAX / 2) return -1;
    if (hexlen != 2 * outlen) {
        sodium_memzero(out, outlen);
        return -1;
    }
    for (i = 0; i < outlen; i++) {
        unsigned int hi = hex_value((unsigned char)hex[2 * i]);
        unsigned int lo = hex_value((unsigned char)hex[2 * i + 1]);
        bad |= hi | lo;
        out[i] = (uint8_t)(((hi & 0xfU) << 4) | (lo & 0xfU));
    }
    if (bad & 0x100U) {
        sodium_memzero(out, outlen);
        return -1;
    }
    return 0;
}

void cr_hex_encode(const uint8_t *in, size_t len, char *out)
{
    sodium_bin2hex(out, 2 * len + 1, in, len);
}

int cr_equal(const void *a, const void *b, size_t len)
{
    return sodium_memcmp(a, b, len) == 0;
}

int cr_token_equal(const void *given, size_t givenlen, const void *expected, size_t expectedlen)
{
    uint8_t hg[32], he[32];
    int eq;

    crypto_generichash(hg, sizeof hg, given, givenlen, NULL, 0);
    crypto_generichash(he, sizeof he, expected, expectedlen, NULL, 0);
    eq = sodium_memcmp(hg, he, sizeof hg) == 0;
    sodium_memzero(hg, sizeof hg);
    sodium_memzero(he, sizeof he);
    return eq;
}

void cr_wipe(void *buf, size_t len)
{
    sodium_memzero(buf, len);
}

void cr_protect(void *buf, size_t len)
{
    (void)sodium_mlock(buf, len); /* best effort: RLIMIT_MEMLOCK may be 0 */
}

void cr_unprotect(void *buf, size_t len)
{
    (void)sodium_munlock(buf, len); /* zeroes it first */
}
