/*
** test_crypto.c — engine/src/crypto.c: master key file, wrapping, sealing,
** pseudonyms, API keys, policy versions and signatures, hex, comparison.
** Vectors marked "independent" were computed with Python's hashlib, not with
** this code, so they pin the stored formats.
*/
#include "crypto.h"
#include "tap.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

static char dir[64];
static char path[128];

static const uint8_t K0[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                               16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};

static int is_zero(const void *p, size_t n)
{
    return sodium_is_zero(p, n) == 1;
}

static void write_file(const char *p, const char *content, mode_t mode)
{
    int fd;
    unlink(p);
    fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || write(fd, content, strlen(content)) != (ssize_t)strlen(content)) {
        perror(p);
        exit(2);
    }
    close(fd);
    if (chmod(p, mode) != 0) {
        perror(p);
        exit(2);
    }
}

static int count_dir_entries(const char *d)
{
    DIR *dp = opendir(d);
    struct dirent *e;
    int n = 0;
    if (!dp) return -1;
    while ((e = readdir(dp)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(dp);
    return n;
}

static void test_master(void)
{
    uint8_t k1[32], k2[32], k3[32];
    char err[256], p2[160];
    struct stat st;
    mode_t old_umask;
    int rc;

    snprintf(path, sizeof path, "%s/master.key", dir);

    memset(k1, 0xaa, sizeof k1);
    rc = cr_master_load(path, 0, k1, err, sizeof err);
    is_int(rc, -1, "master: missing file without create fails");
    ok(strstr(err, "master.key") != NULL, "master: message names the file (%s)", err);
    ok(is_zero(k1, sizeof k1), "master: key zeroed on failure");

    old_umask = umask(0); /* creation must give 0600 whatever the umask */
    rc = cr_master_load(path, 1, k1, err, sizeof err);
    umask(old_umask);
    is_int(rc, 0, "master: created (%s)", err);
    ok(!is_zero(k1, sizeof k1), "master: created key is not zero");
    ok(stat(path, &st) == 0 && S_ISREG(st.st_mode), "master: file exists");
    is_int(st.st_mode & 07777, 0600, "master: created with mode 0600");
    is_int(st.st_size, 65, "master: 64 hex digits and a newline");
    is_int(count_dir_entries(dir), 1, "master: no temporary file left behind");

    rc = cr_master_load(path, 0, k2, err, sizeof err);
    is_int(rc, 0, "master: reload (%s)", err);
    ok(memcmp(k1, k2, 32) == 0, "master: reloaded key identical");
    rc = cr_master_load(path, 1, k3, NULL, 0);
    ok(rc == 0 && memcmp(k1, k3, 32) == 0, "master: create=1 on an existing file loads it");

    umask(0277); /* even a umask that would leave the owner unable to read */
    snprintf(p2, sizeof p2, "%s/umask.key", dir);
    rc = cr_master_load(p2, 1, k3, err, sizeof err);
    umask(old_umask);
    ok(rc == 0 && stat(p2, &st) == 0 && (st.st_mode & 07777) == 0600,
       "master: mode 0600 under umask 0277 (%s)", err);
    unlink(p2);

    chmod(path, 0644);
    rc = cr_master_load(path, 0, k2, err, sizeof err);
    is_int(rc, -1, "master: mode 0644 refused");
    ok(strstr(err, "0644") != NULL, "master: message gives the mode (%s)", err);
    chmod(path, 0620);
    is_int(cr_master_load(path, 0, k2, err, sizeof err), -1, "master: group-writable refused");
    chmod(path, 0400);
    ok(cr_master_load(path, 0, k2, err, sizeof err) == 0 && memcmp(k1, k2, 32) == 0,
       "master: mode 0400 accepted");
    chmod(path, 0600);

    write_file(path, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 0600);
    ok(cr_master_load(path, 0, k2, err, sizeof err) == 0 && memcmp(k2, K0, 32) == 0,
       "master: 64 digits without newline read");
    write_file(path, "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F\n", 0600);
    ok(cr_master_load(path, 0, k2, err, sizeof err) == 0 && memcmp(k2, K0, 32) == 0,
       "master: uppercase digits read");

    write_file(path, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e\n", 0600);
    is_int(cr_master_load(path, 1, k2, err, sizeof err), -1, "master: wrong size refused");
    ok(strstr(err, "size") != NULL, "master: message says size (%s)", err);
    write_file(path, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n\n", 0600);
    is_int(cr_master_load(path, 0, k2, err, sizeof err), -1, "master: two newlines refused");
    write_file(path, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fx", 0600);
    is_int(cr_master_load(path, 0, k2, err, sizeof err), -1,
           "master: 65th char not a newline refused");
    memset(k2, 0xaa, sizeof k2);
    write_file(path, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g\n", 0600);
    is_int(cr_master_load(path, 0, k2, err, sizeof err), -1, "master: bad hex refused");
    ok(is_zero(k2, sizeof k2), "master: key zeroed after bad hex");
    unlink(path);

    snprintf(p2, sizeof p2, "%s/adir", dir);
    mkdir(p2, 0700);
    is_int(cr_master_load(p2, 1, k2, err, sizeof err), -1, "master: directory refused");
    ok(strstr(err, "regular") != NULL, "master: message says not a regular file (%s)", err);
    rmdir(p2);

    snprintf(p2, sizeof p2, "%s/fifo", dir);
    if (mkfifo(p2, 0600) == 0) {
        is_int(cr_master_load(p2, 0, k2, err, sizeof err), -1,
               "master: FIFO refused without blocking");
        unlink(p2);
    } else {
        ok(1, "master: FIFO # SKIP mkfifo failed");
    }

    snprintf(p2, sizeof p2, "%s/nodir/master.key", dir);
    is_int(cr_master_load(p2, 1, k2, err, sizeof err), -1,
           "master: create in a missing directory fails");
    ok(cr_master_load("", 1, k2, err, sizeof err) == -1, "master: empty path fails");
    ok(cr_master_load(path, 0, k2, err, 1) == -1 && err[0] == '\0',
       "master: err truncated to errlen");
    is_int(count_dir_entries(dir), 0, "master: directory clean afterwards");
}

/* Processes creating the same key at once must all end up with one key, the
** one on disk (link(2) lets only one creator publish). */
static void test_master_race(void)
{
    enum { N = 8 };
    uint8_t keys[N][32], disk[32];
    int fds[N][2], all = 1, ok_exit = 1;
    pid_t pids[N];
    char err[256];

    snprintf(path, sizeof path, "%s/race.key", dir);
    for (int i = 0; i < N; i++) {
        if (pipe(fds[i]) != 0) exit(2);
        pids[i] = fork();
        if (pids[i] < 0) exit(2);
        if (pids[i] == 0) {
            uint8_t k[32];
            close(fds[i][0]);
            if (cr_master_load(path, 1, k, NULL, 0) != 0) _exit(1);
            if (write(fds[i][1], k, 32) != 32) _exit(1);
            _exit(0);
        }
        close(fds[i][1]);
    }
    for (int i = 0; i < N; i++) {
        int st;
        if (read(fds[i][0], keys[i], 32) != 32) all = 0;
        close(fds[i][0]);
        if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            ok_exit = 0;
    }
    ok(ok_exit, "master race: %d concurrent creators all succeed", N);
    ok(cr_master_load(path, 0, disk, err, sizeof err) == 0, "master race: key on disk loads");
    for (int i = 0; i < N; i++)
        if (memcmp(keys[i], disk, 32) != 0) all = 0;
    ok(all, "master race: every creator returned the key on disk");
    unlink(path);
    is_int(count_dir_entries(dir), 0, "master race: no temporary files left behind");
}

static void test_wrap(void)
{
    uint8_t master[32], other[32], key[32], got[32], w[CR_WRAPPED_BYTES], w2[CR_WRAPPED_BYTES];
    uint8_t t[CR_WRAPPED_BYTES];
    size_t i;
    int all;

    cr_random(master, 32);
    cr_random(other, 32);
    cr_random(key, 32);
    is_int(cr_wrap(master, "acme", key, w), 0, "wrap: ok");
    ok(cr_unwrap(master, "acme", w, got) == 0 && memcmp(got, key, 32) == 0,
       "wrap: unwrap round trip");
    ok(cr_wrap(master, "acme", key, w2) == 0 && memcmp(w, w2, sizeof w) != 0,
       "wrap: random nonce, two wraps differ");
    ok(memmem(w, sizeof w, key, 32) == NULL, "wrap: key not in the clear");

    /* The layout is nonce | ciphertext | tag with the account as AD. */
    ok(crypto_aead_xchacha20poly1305_ietf_decrypt(
           got, NULL, NULL, w + 24, 48, (const unsigned char *)"acme", 4, w, master) == 0 &&
           memcmp(got, key, 32) == 0,
       "wrap: layout nonce|ct|tag, AD = account id");

    memset(got, 0xaa, sizeof got);
    is_int(cr_unwrap(master, "other", w, got), -1, "wrap: another account fails");
    ok(is_zero(got, 32), "wrap: key zeroed on failure");
    is_int(cr_unwrap(master, "acme2", w, got), -1, "wrap: account with a suffix fails");
    is_int(cr_unwrap(master, "acm", w, got), -1, "wrap: account prefix fails");
    is_int(cr_unwrap(other, "acme", w, got), -1, "wrap: another master fails");

    all = 1;
    for (i = 0; i < sizeof w * 8; i++) {
        memcpy(t, w, sizeof w);
        t[i / 8] ^= (uint8_t)(1u << (i % 8));
        if (cr_unwrap(master, "acme", t, got) != -1) all = 0;
    }
    ok(all, "wrap: every single flipped bit fails (nonce, ciphertext, tag)");
    is_int(cr_wrap(master, NULL, key, w), -1, "wrap: NULL account refused");
}

static void test_seal(void)
{
    const char *num = "+493012345678";
    size_t n = strlen(num), i;
    uint8_t key[32], other[32], sealed[64], t[64], out[64];
    int all;

    cr_random(key, 32);
    cr_random(other, 32);
    is_int(cr_seal(key, "rec:1", 5, num, n, sealed), 0, "seal: ok");
    ok(memmem(sealed, n + CR_SEAL_OVERHEAD, num, n) == NULL, "seal: number not in the clear");
    ok(cr_open(key, "rec:1", 5, sealed, n + CR_SEAL_OVERHEAD, out) == 0 && memcmp(out, num, n) == 0,
       "seal: open round trip");

    memset(out, 0xaa, sizeof out);
    is_int(cr_open(key, "rec:2", 5, sealed, n + CR_SEAL_OVERHEAD, out), -1, "seal: wrong ad fails");
    ok(is_zero(out, n), "seal: output zeroed on failure");
    is_int(cr_open(key, NULL, 0, sealed, n + CR_SEAL_OVERHEAD, out), -1, "seal: missing ad fails");
    is_int(cr_open(other, "rec:1", 5, sealed, n + CR_SEAL_OVERHEAD, out), -1,
           "seal: wrong key fails");
    is_int(cr_open(key, "rec:1", 5, sealed, n + CR_SEAL_OVERHEAD - 1, out), -1,
           "seal: truncated input fails");
    is_int(cr_open(key, "rec:1", 5, sealed, CR_SEAL_OVERHEAD - 1, out), -1,
           "seal: input shorter than the overhead fails");

    all = 1;
    for (i = 0; i < (n + CR_SEAL_OVERHEAD) * 8; i++) {
        memcpy(t, sealed, n + CR_SEAL_OVERHEAD);
        t[i / 8] ^= (uint8_t)(1u << (i % 8));
        if (cr_open(key, "rec:1", 5, t, n + CR_SEAL_OVERHEAD, out) != -1) all = 0;
    }
    ok(all, "seal: every single flipped bit fails");

    ok(cr_seal(key, NULL, 0, "", 0, sealed) == 0 &&
           cr_open(key, NULL, 0, sealed, CR_SEAL_OVERHEAD, out) == 0,
       "seal: empty message, no ad round trip");
}

/* Seal nonces come from a per-process prefix and a counter: never the same
** twice in a process, and a forked child does not repeat its parent's. */
static void test_nonces(void)
{
    uint8_t key[32], a[CR_SEAL_OVERHEAD], b[CR_SEAL_OVERHEAD], c[CR_SEAL_OVERHEAD];
    enum { NB = 24 }; /* XChaCha20-Poly1305 nonce, at the front of a sealed value */
    cr_random(key, 32);
    int same = 0;
    int bad = cr_seal(key, NULL, 0, "", 0, a);
    for (int i = 0; i < 1000; i++) {
        bad |= cr_seal(key, NULL, 0, "", 0, b);
        if (memcmp(a, b, NB) == 0) same++;
        memcpy(a, b, NB);
    }
    is_int(same + bad, 0, "nonces: 1000 seals in a row, no nonce repeats");
    int fds[2];
    if (pipe(fds)) return;
    pid_t pid = fork();
    if (pid == 0) {
        if (cr_seal(key, NULL, 0, "", 0, c)) _exit(1);
        ssize_t w = write(fds[1], c, NB);
        _exit(w == NB ? 0 : 1);
    }
    bad = cr_seal(key, NULL, 0, "", 0, a); /* the parent's next nonce */
    int st = 0;
    ssize_t r = read(fds[0], c, NB);
    waitpid(pid, &st, 0);
    close(fds[0]);
    close(fds[1]);
    ok(!bad && r == NB && memcmp(a, c, NB) != 0 && memcmp(a, c, NB - 8) != 0,
       "nonces: a forked child draws its own prefix");
}

/* The master key's check value, kept in data key slots (records.c) to tell
** a slot of another master key from a stale one. */
static void test_master_check(void)
{
    uint8_t c1[CR_MASTER_CHECK_BYTES], c2[CR_MASTER_CHECK_BYTES], other[32];
    char hex[2 * CR_MASTER_CHECK_BYTES + 1];

    cr_master_check(K0, c1);
    cr_master_check(K0, c2);
    ok(memcmp(c1, c2, sizeof c1) == 0, "master check: deterministic");
    cr_hex_encode(c1, sizeof c1, hex);
    is_str(hex, "2b6ab40e8ceefb49749d648004c18a14", "master check: independent vector");
    cr_random(other, 32);
    cr_master_check(other, c2);
    ok(memcmp(c1, c2, sizeof c1) != 0, "master check: another master key differs");
    ok(!is_zero(c1, sizeof c1), "master check: never all zeros (a slot without one)");
}

static void test_pseudonym(void)
{
    uint8_t p1[16], p2[16], p3[16], other[32];
    char hex[33];

    cr_pseudonym(K0, "+4930123456", p1);
    cr_pseudonym(K0, "+4930123456", p2);
    ok(memcmp(p1, p2, 16) == 0, "pseudonym: deterministic");
    cr_hex_encode(p1, 16, hex);
    is_str(hex, "ce138d3290a07995c04573c0f8266b63", "pseudonym: independent vector");
    cr_pseudonym(K0, "+4930123457", p3);
    ok(memcmp(p1, p3, 16) != 0, "pseudonym: another number differs");
    cr_random(other, 32);
    cr_pseudonym(other, "+4930123456", p3);
    ok(memcmp(p1, p3, 16) != 0, "pseudonym: another account key differs");
}

static void test_apikey(void)
{
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t master[32], other[32], h[32];
    char k[64], k2[64], bad[64], hex[65];
    size_t len;

    cr_random(master, 32);
    cr_random(other, 32);
    cr_apikey_new(k);
    len = strlen(k);
    is_int(len, CR_APIKEY_LEN, "apikey: 47 chars");
    ok(strncmp(k, "sbk_", 4) == 0, "apikey: sbk_ prefix");
    ok(strspn(k + 4, b64url) == 43, "apikey: URL-safe base64 body, no padding (%s)", k);
    cr_apikey_new(k2);
    ok(strcmp(k, k2) != 0, "apikey: two keys differ");

    cr_apikey_hash(master, "acme", k, len, h);
    is_int(cr_apikey_verify(master, "acme", k, len, h), 0, "apikey: right key verifies");
    memcpy(bad, k, len + 1);
    bad[10] = bad[10] == 'A' ? 'B' : 'A';
    is_int(cr_apikey_verify(master, "acme", bad, len, h), -1, "apikey: changed char rejected");
    is_int(cr_apikey_verify(master, "acme2", k, len, h), -1, "apikey: another account rejected");
    is_int(cr_apikey_verify(master, "acme", k, len - 1, h), -1, "apikey: truncated key rejected");
    is_int(cr_apikey_verify(other, "acme", k, len, h), -1, "apikey: another master rejected");
    /* The 0 separator keeps ("acme", "1sbk...") and ("acme1", "sbk...") apart. */
    cr_apikey_hash(master, "ac", "mesbk_x", 7, h);
    is_int(cr_apikey_verify(master, "acme", "sbk_x", 5, h), -1,
           "apikey: account/key boundary is unambiguous");

    for (int i = 0; i < 32; i++)
        master[i] = (uint8_t)(32 + i);
    cr_apikey_hash(master, "acme", "sbk_test", 8, h);
    cr_hex_encode(h, 32, hex);
    is_str(hex, "549350502e831237168128b10d0db765f32bbd5ecfe71dd6915a2d96d59c26e0",
           "apikey: independent hash vector");
}

static void test_version(void)
{
    char v[17];

    cr_version("", 0, v);
    is_str(v, "e3b0c44298fc1c14", "version: SHA-256 of \"\"");
    cr_version("abc", 3, v);
    is_str(v, "ba7816bf8f01cfea", "version: SHA-256 of \"abc\"");
}

static void test_sign(void)
{
    /* RFC 8032 section 7.1, test 1 (empty message). libsodium sk = seed | pk. */
    static const char seed_hex[] =
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    static const char pk_hex[] = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    static const char sig_hex[] =
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701c"
        "f9b46bd25bf5f0595bbe24655141438e7a100b";
    const char *policy = "return { route = function() return { wait = 10 } end }\n";
    uint8_t pk[32], sk[64], sig[64], pk2[32], sk2[64];
    char hex[129];

    ok(cr_hex_decode(seed_hex, 64, sk, 32) == 0 && cr_hex_decode(pk_hex, 64, sk + 32, 32) == 0 &&
           cr_hex_decode(pk_hex, 64, pk, 32) == 0,
       "sign: RFC 8032 keys decoded");
    ok(cr_sign(sk, "", 0, sig) == 0, "sign: RFC 8032 sign");
    cr_hex_encode(sig, 64, hex);
    is_str(hex, sig_hex, "sign: RFC 8032 signature");
    is_int(cr_verify(pk, "", 0, sig), 0, "sign: RFC 8032 verifies");

    is_int(cr_sign_keypair(pk, sk), 0, "sign: keypair");
    is_int(cr_sign(sk, policy, strlen(policy), sig), 0, "sign: policy signed");
    is_int(cr_verify(pk, policy, strlen(policy), sig), 0, "sign: good signature verifies");
    is_int(cr_verify(pk, policy, strlen(policy) - 1, sig), -1, "sign: truncated source rejected");
    {
        char t[128];
        memcpy(t, policy, strlen(policy));
        t[7] ^= 1;
        is_int(cr_verify(pk, t, strlen(policy), sig), -1, "sign: tampered source rejected");
    }
    sig[0] ^= 0x80;
    is_int(cr_verify(pk, policy, strlen(policy), sig), -1, "sign: tampered signature rejected");
    sig[0] ^= 0x80;
    ok(cr_sign_keypair(pk2, sk2) == 0 && cr_verify(pk2, policy, strlen(policy), sig) == -1,
       "sign: another key rejected");
}

static void test_hex(void)
{
    uint8_t bin[256], back[256], out[4];
    char hex[513];
    int all = 1, c;

    for (int i = 0; i < 256; i++)
        bin[i] = (uint8_t)i;
    cr_hex_encode(bin, 256, hex);
    is_int(strlen(hex), 512, "hex: encoded length");
    ok(strncmp(hex, "000102", 6) == 0 && strcmp(hex + 506, "fdfeff") == 0,
       "hex: lowercase encoding");
    ok(cr_hex_decode(hex, 512, back, 256) == 0 && memcmp(bin, back, 256) == 0, "hex: round trip");
    ok(cr_hex_decode("DEADbeef", 8, out, 4) == 0 && out[0] == 0xde && out[3] == 0xef,
       "hex: either case decoded");
    is_int(cr_hex_decode("abc", 3, out, 1), -1, "hex: odd length rejected");
    is_int(cr_hex_decode("abcdef", 6, out, 4), -1, "hex: too short for outlen rejected");
    is_int(cr_hex_decode("abcdef0011", 10, out, 4), -1, "hex: too long for outlen rejected");
    memset(out, 0xaa, sizeof out);
    is_int(cr_hex_decode("0011zz33", 8, out, 4), -1, "hex: non-hex rejected");
    ok(is_zero(out, 4), "hex: output zeroed on failure");
    is_int(cr_hex_decode("", 0, out, 0), 0, "hex: empty is fine");

    /* Every byte value, in either position, against isxdigit. */
    for (c = 0; c < 256; c++) {
        char s[2] = {'0', (char)c};
        int want = isxdigit(c) ? 0 : -1;
        if (cr_hex_decode(s, 2, out, 1) != want) all = 0;
        if (want == 0 && out[0] != (uint8_t)strtol((char[]){(char)c, 0}, NULL, 16)) all = 0;
        s[0] = (char)c;
        s[1] = '0';
        if (cr_hex_decode(s, 2, out, 1) != want) all = 0;
    }
    ok(all, "hex: exactly [0-9a-fA-F] accepted, with the right values");
}

static void test_equal(void)
{
    ok(cr_equal("secret-token", "secret-token", 12) == 1, "equal: same bytes -> 1");
    ok(cr_equal("secret-token", "secret-tokeN", 12) == 0, "equal: different bytes -> 0");
    ok(cr_token_equal("tok", 3, "tok", 3) == 1, "token_equal: same token -> 1");
    ok(cr_token_equal("tok", 3, "tok2", 4) == 0, "token_equal: prefix -> 0");
    ok(cr_token_equal("", 0, "tok", 3) == 0, "token_equal: empty -> 0");
}

int main(void)
{
    is_int(cr_init(), 0, "init");
    is_int(cr_init(), 0, "init again is fine");

    snprintf(dir, sizeof dir, "/tmp/sb_test_crypto.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    test_master();
    test_master_race();
    rmdir(dir);

    test_wrap();
    test_seal();
    test_nonces();
    test_pseudonym();
    test_master_check();
    test_apikey();
    test_version();
    test_sign();
    test_hex();
    test_equal();
    return done_testing();
}
