/*
** policies.c — where policy sources live and how they change.
**
** Sources are kept in LMDB (account 0 for the shared policies read from
** cfg->policy_dir, the account's number for its own uploads), so every
** process on a data directory runs the same versions. A change validates
** the new source first (pol_validate: compile, top level under budget,
** hooks, the policy's own cases), stores it and bumps a generation: the
** account's (in its record) or the shared one (in meta). Each event reads
** the generations and rebuilds a stale Lua state before deciding, so all
** processes move to the new version at their next event.
**
** Signatures: a policy may end with a line "--@signature <128 hex>", an
** Ed25519 signature of everything before that line. With
** require_signed_policies, sources without a valid one are refused.
*/
#include "crypto.h"
#include "engine.h"
#include "records.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define V_POLICY 1
#define MAX_POLICY_BYTES (256 * 1024)
#define MAX_CASES_BYTES (4 << 20)
/* An upload's cases run on the caller's thread (in the daemon, its one event
** loop, which every account's requests wait for): at most this many, for at
** most this long in all. The policy directory's files are the operator's
** and have no such limit. */
#define MAX_UPLOAD_CASES 100
#define MAX_UPLOAD_CASES_MS 500
#define SIG_TAG "--@signature "

/* Lua's parser takes time that grows with the square of a function's gotos
** and breaks (each one resolved shifts the rest of the pending list; each
** label scans it) and of its labels (each checks the function's others for
** a repeat): 30,000 forward gotos to one label, or breaks out of one loop,
** compile in 0.4-1.7 s, outside any budget, on whichever thread loads the
** file. At most this many of each. */
#define MAX_POLICY_GOTOS 1000

/* The line end at s[i], as Lua's lexer reads one: "\n", "\r", "\r\n" or
** "\n\r" (a pair is one line); its length, 0 for none. */
static size_t line_end(const char *s, size_t len, size_t i)
{
    if (i >= len || (s[i] != '\n' && s[i] != '\r')) return 0;
    return i + 1 < len && (s[i + 1] == '\n' || s[i + 1] == '\r') && s[i + 1] != s[i] ? 2 : 1;
}

/* Skip a long bracket "[", "="*, "[" at s[i] (a long string, or a comment's
** after "--"), to just past its closing bracket; i if s[i] opens none. */
static size_t skip_long(const char *s, size_t len, size_t i, int *line)
{
    size_t j = i + 1, level = 0;
    while (j < len && s[j] == '=')
        j++, level++;
    if (j >= len || s[j] != '[') return i;
    for (j++; j < len;) {
        size_t n = line_end(s, len, j);
        if (n) {
            (*line)++, j += n;
            continue;
        }
        if (s[j++] != ']') continue;
        size_t k = j, eq = 0;
        while (k < len && s[k] == '=')
            k++, eq++;
        if (eq == level && k < len && s[k] == ']') return k + 1;
    }
    return len;
}

/* Skip the short string opening with quote s[i], to just past its closing
** quote, or to the line end that leaves it unfinished (the parser's error).
** Inside: a backslash escapes the next character, and before a line end
** continues the string on the next line; \z skips the white space after it,
** line ends too. */
static size_t skip_short(const char *s, size_t len, size_t i, int *line)
{
    char q = s[i++];
    while (i < len && s[i] != q && !line_end(s, len, i)) {
        if (s[i++] != '\\' || i >= len) continue;
        size_t n = line_end(s, len, i);
        if (n) {
            (*line)++, i += n;
        } else if (s[i] == 'z') {
            for (i++; i < len && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r'));)
                if ((n = line_end(s, len, i)))
                    (*line)++, i += n;
                else
                    i++;
        } else {
            i++;
        }
    }
    return i < len && s[i] == q ? i + 1 : i;
}

/* A letter, digit or underscore: a name's, or a number's (skipped whole). */
static int name_char(char c)
{
    return c == '_' || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9');
}

/* The line of the first goto (or break, which Lua compiles as a goto to a
** label at the loop's end) or label past MAX_POLICY_GOTOS of either, and
** which, or 0. A token scan: comments and strings skipped as Lua's lexer
** does (an unfinished one runs to the end, where the parser will fail). */
static int too_many_gotos(const char *s, size_t len, const char **what)
{
    int line = 1, gotos = 0, labels = 0;
    for (size_t i = 0; i < len;) {
        char c = s[i];
        size_t n = line_end(s, len, i);
        if (n) {
            line++, i += n;
        } else if (c == '-' && i + 1 < len && s[i + 1] == '-') {
            size_t j = i + 2 < len && s[i + 2] == '[' ? skip_long(s, len, i + 2, &line) : i + 2;
            if (j == i + 2)
                while (j < len && !line_end(s, len, j))
                    j++;
            i = j;
        } else if (c == '[') {
            size_t j = skip_long(s, len, i, &line);
            i = j > i ? j : i + 1;
        } else if (c == '"' || c == '\'') {
            i = skip_short(s, len, i, &line);
        } else if (c == ':' && i + 1 < len && s[i + 1] == ':') {
            if (++labels > 2 * MAX_POLICY_GOTOS) { /* "::" twice a label */
                *what = "labels";
                return line;
            }
            i += 2;
        } else if (name_char(c)) {
            size_t j = i;
            while (j < len && name_char(s[j]))
                j++;
            if (((j - i == 4 && !memcmp(s + i, "goto", 4)) ||
                 (j - i == 5 && !memcmp(s + i, "break", 5))) &&
                ++gotos > MAX_POLICY_GOTOS) {
                *what = "goto and break statements";
                return line;
            }
            i = j;
        } else {
            i++;
        }
    }
    return 0;
}

/* What every policy source must be, wherever it comes from (an upload, the
** policy directory, `switchboard policy check`): at most MAX_POLICY_BYTES,
** UTF-8 text, since the API hands sources back inside JSON, and at most
** MAX_POLICY_GOTOS gotos and labels. 0, or a message "FILE: ..." /
** "FILE:LINE: ..." in err. */
int pol_source_check(const char *file, const char *src, size_t len, char *err, size_t errlen)
{
    if (len > MAX_POLICY_BYTES) {
        snprintf(err, errlen, "%s: larger than %d KiB (%zu bytes)", file, MAX_POLICY_BYTES / 1024,
                 len);
        return -1;
    }
    size_t bad = utf8_bad_at(src, len);
    if (bad < len) {
        int line = 1;
        for (size_t i = 0; i < bad; i++)
            line += src[i] == '\n';
        snprintf(err, errlen, "%s:%d: not valid UTF-8 (byte 0x%02x): policy sources are UTF-8 text",
                 file, line, (unsigned char)src[bad]);
        return -1;
    }
    const char *what = NULL;
    int line = too_many_gotos(src, len, &what);
    if (line) {
        snprintf(err, errlen,
                 "%s:%d: more than %d %s in one file (Lua takes time that grows with the square "
                 "of their number to compile them, outside any budget)",
                 file, line, MAX_POLICY_GOTOS, what);
        return -1;
    }
    return 0;
}

static size_t pol_key(uint8_t *k, uint32_t acct, const char *name)
{
    size_t n = strlen(name);
    put_be32(k, acct);
    memcpy(k + 4, name, n);
    return 4 + n;
}

/* Split off a trailing signature line; returns the signed length. */
static size_t signed_part(const char *src, size_t len, const char **sig_hex)
{
    *sig_hex = NULL;
    size_t end = len;
    while (end > 0 && (src[end - 1] == '\n' || src[end - 1] == '\r' || src[end - 1] == ' '))
        end--;
    size_t start = end;
    while (start > 0 && src[start - 1] != '\n')
        start--;
    size_t tl = sizeof SIG_TAG - 1;
    if (end - start == tl + 128 && memcmp(src + start, SIG_TAG, tl) == 0) {
        *sig_hex = src + start + tl;
        return start;
    }
    return len;
}

/* Is there a signature line anywhere but at the end (text added after it)? */
static int sig_line_inside(const char *src, size_t len)
{
    size_t tl = sizeof SIG_TAG - 1;
    for (size_t i = 0; i + tl <= len; i++)
        if ((i == 0 || src[i - 1] == '\n') && memcmp(src + i, SIG_TAG, tl) == 0) return 1;
    return 0;
}

/* The signature check itself: 0, or why it fails. */
enum { SIG_OK, SIG_BADKEY, SIG_UNSIGNED, SIG_BAD };
static int sig_check(const char *src, size_t len, const char *public_hex)
{
    uint8_t pk[32], sig[64];
    if (!public_hex || cr_hex_decode(public_hex, strlen(public_hex), pk, 32)) return SIG_BADKEY;
    const char *hex;
    size_t n = signed_part(src, len, &hex);
    if (!hex) return SIG_UNSIGNED;
    if (cr_init() || cr_hex_decode(hex, 128, sig, 64) || cr_verify(pk, src, n, sig)) return SIG_BAD;
    return SIG_OK;
}

int sb_policy_verify(const char *source, size_t len, const char *public_hex, sb_result *res)
{
    res_reset(res);
    if (!source) return res_err(res, SB_EINVAL, "source", "no source");
    switch (sig_check(source, len, public_hex)) {
    case SIG_BADKEY:
        return res_err(res, SB_EINVAL, "public_key", "the public key must be 64 hex characters");
    case SIG_UNSIGNED:
        if (sig_line_inside(source, len))
            return res_err(res, SB_EPOLICY, "signature",
                           "changed after signing: text follows its \"%s\" line, which must "
                           "be the last",
                           SIG_TAG);
        return res_err(res, SB_EPOLICY, "signature",
                       "unsigned (no \"%s<signature>\" line at the end)", SIG_TAG);
    case SIG_BAD:
        return res_err(res, SB_EPOLICY, "signature", "the signature does not verify with the key");
    }
    return 0;
}

/* What a source lacks to run on engine e: SIG_OK when it runs (or
** signatures are not required). With require_signed_policies, one stored
** before they were required, or signed with another key, is kept but does
** not run (policies_source_at). */
static int sig_verdict(sb_engine *e, const char *src, size_t len)
{
    return e->cfg.require_signed_policies ? sig_check(src, len, e->pubkey) : SIG_OK;
}

/* Why a stored source does not run (verdict: sig_verdict's): "<whose>
** (version V) is unsigned". whose: "this account's upload of it"... */
static void unrun_why(char *out, size_t cap, const char *whose, const char *version, int verdict)
{
    snprintf(out, cap, "%s (version %s) %s", whose, version[0] ? version : "-",
             verdict == SIG_UNSIGNED
                 ? "is unsigned"
                 : "is signed, but its signature does not verify with policy_public_key");
}

/* What makes policy `name` run then: a signed version of the account's
** upload (own), or of the shared one, or an upload standing in for it. */
static void unrun_fix(char *out, size_t cap, const char *name, int own)
{
    if (own)
        snprintf(out, cap, "upload a signed version");
    else
        snprintf(out, cap, "sign policy_dir's %s.lua and reload, upload a signed version", name);
}

static int check_signature(sb_engine *e, const char *name, const char *src, size_t len,
                           sb_result *res)
{
    int why = sig_verdict(e, src, len);
    if (why == SIG_UNSIGNED)
        return res_err(res, SB_EPOLICY, "signature",
                       "%s: unsigned, and require_signed_policies is on", name);
    if (why)
        return res_err(res, SB_EPOLICY, "signature",
                       "%s: signature does not verify with the configured key", name);
    return 0;
}

int policy_signature_check(sb_engine *e, const char *name, const char *src, size_t len,
                           sb_result *res)
{
    return check_signature(e, name, src, len, res);
}

int sb_policy_sign(const char *source, size_t len, const char *secret_hex, sb_result *res)
{
    uint8_t sk[64], sig[64];
    char hex[129];
    const char *old;
    res_reset(res);
    if (!source) return res_err(res, SB_EINVAL, "source", "no source");
    size_t n = signed_part(source, len, &old);
    if (!secret_hex || cr_hex_decode(secret_hex, strlen(secret_hex), sk, 64))
        return res_err(res, SB_EINVAL, "secret_key", "the secret key must be 128 hex characters");
    /* What is signed is the text as handed back, up to its signature line:
    ** the source, with the newline that ends its last line added when it
    ** has none (sig_check verifies everything before that line). */
    sb_buf out = {0};
    if (buf_put(&out, source, n) || (n && source[n - 1] != '\n' && buf_puts(&out, "\n"))) {
        cr_wipe(sk, sizeof sk);
        buf_free(&out);
        return res_err(res, SB_ENOMEM, NULL, "out of memory");
    }
    int rc = cr_sign(sk, out.p, out.len, sig);
    cr_wipe(sk, sizeof sk);
    if (rc) {
        buf_free(&out);
        return res_err(res, SB_ECRYPTO, NULL, "signing failed");
    }
    cr_hex_encode(sig, 64, hex);
    if (buf_printf(&out, "%s%s\n", SIG_TAG, hex)) {
        buf_free(&out);
        return res_err(res, SB_ENOMEM, NULL, "out of memory");
    }
    res_doc(res, json_pack("{s:s%}", "source", out.p, out.len));
    buf_free(&out);
    return 0;
}

int sb_policy_keygen(sb_result *res)
{
    uint8_t pk[32], sk[64];
    char pkh[65], skh[129];
    res_reset(res);
    if (cr_init() || cr_sign_keypair(pk, sk))
        return res_err(res, SB_ECRYPTO, NULL, "keygen failed");
    cr_hex_encode(pk, 32, pkh);
    cr_hex_encode(sk, 64, skh);
    res_doc(res, json_pack("{s:s, s:s}", "public_key", pkh, "secret_key", skh));
    cr_wipe(sk, sizeof sk);
    cr_wipe(skh, sizeof skh);
    return 0;
}

/* --- stored sources ----------------------------------------------------------- */

static int read_policy_at(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *name, sb_buf *src,
                          char version[17], int64_t *stamp)
{
    uint8_t k[4 + SB_NAME_MAX];
    MDB_val v;
    int rc = st_get(txn, e, DB_POLICIES, k, pol_key(k, acct, name), &v);
    if (rc == MDB_NOTFOUND) return SB_ENOTFOUND;
    if (rc) return SB_ESTORE;
    rbuf r;
    rb_init(&r, v.mv_data, v.mv_size);
    int ver = rb_u8(&r);
    char vbuf[17];
    rb_str(&r, vbuf, sizeof vbuf);
    size_t sl;
    const char *s = rb_strp(&r, &sl);
    int64_t at = rb_i64(&r);
    if (r.err || ver != V_POLICY) return SB_ESTORE;
    if (version) memcpy(version, vbuf, 17);
    if (stamp) *stamp = at;
    if (src) {
        src->len = 0;
        if (buf_put(src, s, sl)) return SB_ENOMEM;
    }
    return 0;
}

static int read_policy(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *name, sb_buf *src,
                       char version[17])
{
    return read_policy_at(txn, e, acct, name, src, version, NULL);
}

/* The policy an account runs under that name: its own upload, else the
** shared one (acct 0: the shared one only). As read_policy_at. */
static int read_running_at(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *name, sb_buf *src,
                           char version[17], int64_t *stamp)
{
    int rc = read_policy_at(txn, e, acct, name, src, version, stamp);
    if (rc == SB_ENOTFOUND && acct != 0) rc = read_policy_at(txn, e, 0, name, src, version, stamp);
    return rc;
}

static int read_running(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *name, sb_buf *src,
                        char version[17])
{
    return read_running_at(txn, e, acct, name, src, version, NULL);
}

int policy_must_exist(wtx *t, uint32_t acct, const char *name, const char *field)
{
    int rc = read_running(t->txn, t->e, acct, name, NULL, NULL);
    if (rc == SB_ENOTFOUND && !t->e->policy_dir)
        return res_err(t->res, SB_EINVAL, field,
                       "no policy '%s': this account has uploaded none by that name, and no "
                       "policy_dir is configured (upload the policy)",
                       name);
    if (rc == SB_ENOTFOUND && !__atomic_load_n(&t->e->dir_loaded, __ATOMIC_RELAXED)) {
        /* Its file may be there: the directory loads all or nothing. What
        ** an earlier load stored stays in use meanwhile (a failed reload
        ** changes nothing), so that is what the message says. */
        char why[sizeof t->e->dir_error];
        pthread_mutex_lock(&t->e->stats_mu);
        snprintf(why, sizeof why, "%s", t->e->dir_error);
        pthread_mutex_unlock(&t->e->stats_mu);
        return res_err(t->res, SB_EINVAL, field,
                       "no policy '%s': policy_dir's last load failed (%s), so its files as "
                       "they are now are not in use (the shared policies an earlier load "
                       "stored, if any, still decide, and none is named '%s'); fix it and "
                       "reload, or upload the policy",
                       name, why[0] ? why : "see the log", name);
    }
    if (rc == SB_ENOTFOUND)
        return res_err(t->res, SB_EINVAL, field,
                       "no policy '%s': policy_dir has no %s.lua and this account has uploaded "
                       "none by that name (add the file, or upload the policy)",
                       name, name);
    return rc ? res_err(t->res, rc, field, "cannot read policy '%s'", name) : 0;
}

static pol_limits limits_of(sb_engine *e);

/* What each hook is for, in the messages of the checks below. */
static const char *hook_name(unsigned hook)
{
    return hook == POL_HOOK_ROUTE ? "route" : hook == POL_HOOK_RETAIN ? "retain" : "erase";
}

/* The hooks (POL_HOOK_*) of the source in src. Stored sources passed this
** at upload or reload; one that no longer loads (an engine with smaller
** budgets) says so at its first call instead, so it counts here as having
** every hook. 0, or SB_ENOMEM. */
static int stored_hooks(sb_engine *e, const char *name, const sb_buf *src, unsigned *hooks)
{
    pol_limits lim = limits_of(e);
    sb_result *scratch = sb_result_new();
    *hooks = 0;
    int rc = scratch ? pol_validate_hooks(&lim, name, src->p, src->len, NULL, 0, scratch, hooks)
                     : SB_ENOMEM;
    sb_result_free(scratch);
    if (rc == SB_ENOMEM) return rc;
    if (rc) *hooks = POL_HOOK_ROUTE | POL_HOOK_RETAIN | POL_HOOK_ERASE;
    return 0;
}

int policy_must_have(wtx *t, uint32_t acct, const char *name, const char *kept, const char *field,
                     unsigned hook, const char *by_default)
{
    sb_buf src = {0};
    char version[17] = "";
    int rc = read_running(t->txn, t->e, acct, name, &src, version);
    if (rc) {
        buf_free(&src);
        if (rc == SB_ENOTFOUND && by_default) return 0;
        return policy_must_exist(t, acct, name, field);
    }
    const char *o = by_default ? " (" : "", *d = by_default ? by_default : "",
               *c = by_default ? ")" : "";
    /* Stored, but not to run (signatures required since it was stored, or
    ** another key's): named, every call would get the fallback and every
    ** review fail. Refused, as a policy that is not there is, when it is
    ** newly named; one the queue or setting names already (`kept`) is left
    ** to the open's and reloads' log lines, so that its other fields (a
    ** fallback that rings while the policy does not run) can still be
    ** changed. */
    int verdict = kept && strcmp(kept, name) == 0 ? 0 : sig_verdict(t->e, src.p, src.len);
    if (verdict) {
        buf_free(&src);
        int own = read_policy(t->txn, t->e, acct, name, NULL, NULL) == 0;
        char why[256], fix[SB_NAME_MAX + 128];
        unrun_why(why, sizeof why, own ? "this account's upload of it" : "the shared one", version,
                  verdict);
        unrun_fix(fix, sizeof fix, name, own);
        return res_err(t->res, SB_EINVAL, field,
                       "policy '%s' does not run: require_signed_policies is on, and %s; %s, or "
                       "name another policy%s%s%s",
                       name, why, fix, o, d, c);
    }
    unsigned hooks;
    rc = stored_hooks(t->e, name, &src, &hooks);
    buf_free(&src);
    if (rc) return res_err(t->res, rc, field, "out of memory");
    if (hooks & hook) return 0;
    return res_err(t->res, SB_EINVAL, field, "policy '%s' has no %s hook; %s%s%s%s", name,
                   hook_name(hook),
                   hook == POL_HOOK_ROUTE ? "a queue routes with a policy that defines route"
                                          : "records are reviewed by a policy that defines retain",
                   o, d, c);
}

/* pol_source_fn: called by the runtime inside the event's transaction, so
** it reads through that transaction. */
int policies_source(void *arg, uint32_t acct, const char *name, sb_buf *src, char version[17],
                    int64_t *stamp)
{
    sb_engine *e = arg;
    MDB_txn *txn = e->cur_txn;
    int own = 0;
    if (!txn) {
        if (eng_read_begin(e, &txn)) return SB_ESTORE;
        own = 1;
    }
    int rc = policies_source_at(txn, e, acct, name, src, version, stamp);
    if (own) eng_read_end(e, txn);
    return rc;
}

int policies_source_at(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *name, sb_buf *src,
                       char version[17], int64_t *stamp)
{
    if (!policy_name_valid(name)) return SB_ENOTFOUND;
    /* Without src (only its version asked for), the source is read all the
    ** same when its signature is to be checked. */
    sb_buf own = {0};
    if (!src && e->cfg.require_signed_policies) src = &own;
    int rc = read_running_at(txn, e, acct, name, src, version, stamp);
    /* Stored before signatures were required? Then it does not run. (No
    ** src: they are not, and nothing was read.) */
    if (rc == 0 && src && sig_verdict(e, src->p, src->len)) rc = SB_EPOLICY;
    buf_free(&own);
    return rc;
}

static int write_policy(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *name,
                        const char *src, size_t len, const char *version, int64_t now)
{
    wbuf w = {0};
    wb_u8(&w, V_POLICY);
    wb_str(&w, version);
    wb_strn(&w, src, len);
    wb_i64(&w, now);
    uint8_t k[4 + SB_NAME_MAX];
    int rc =
        w.err ? SB_ENOMEM : st_put(txn, e, DB_POLICIES, k, pol_key(k, acct, name), w.b.p, w.b.len);
    buf_free(&w.b);
    return rc;
}

static pol_limits limits_of(sb_engine *e)
{
    return pol_limits_of(&e->cfg);
}

static int bad_name(sb_result *res, const char *name);

/* --- version history ------------------------------------------------------------- */

/* Each account's past uploads and deletes of each of its policies, written
** in the transaction of the upload or delete (DB_POLHIST; keys after
** acct(4)):
**   'h' name 0 ~seq(8) -> V_POLHIST(1) change(1) version previous at_ms source
**   'o' seq(8)         -> name, bytes     the account's entries, oldest first
**   's'                -> next seq(8), bytes kept(8)
** ~seq (UINT64_MAX - seq) walks a name's entries newest first. Bounded: the
** last HIST_PER_NAME entries of a name, and HIST_ACCOUNT_BYTES of an
** account's entries (each counts its source and HIST_ENTRY_BYTES), the
** oldest dropped first; a name's newest entry (what it is now: the upload in
** use, or its delete) is never dropped. Histories began with format 9: a
** name's first entry after that also records the upload it replaced. */
#define V_POLHIST 1
#define HIST_PER_NAME 50
#define HIST_ACCOUNT_BYTES (16u << 20)
#define HIST_ENTRY_BYTES 64
enum { HIST_UPLOAD = 1, HIST_DELETE = 2 };

typedef struct {
    uint64_t seq;
    int change; /* HIST_* */
    char version[17], previous[17];
    int64_t at;
    const char *src; /* in the transaction's memory */
    size_t len;
} hist_ent;

static size_t hist_prefix(uint8_t *k, uint32_t acct, const char *name)
{
    size_t n = strlen(name);
    put_be32(k, acct);
    k[4] = 'h';
    memcpy(k + 5, name, n);
    k[5 + n] = 0;
    return 6 + n;
}

static size_t hist_key(uint8_t *k, uint32_t acct, const char *name, uint64_t seq)
{
    size_t n = hist_prefix(k, acct, name);
    put_be64(k + n, UINT64_MAX - seq);
    return n + 8;
}

static size_t hist_okey(uint8_t *k, uint32_t acct, uint64_t seq)
{
    put_be32(k, acct);
    k[4] = 'o';
    put_be64(k + 5, seq);
    return 13;
}

static int hist_decode(const uint8_t *key, size_t klen, const MDB_val *v, hist_ent *h)
{
    rbuf r;
    rb_init(&r, v->mv_data, v->mv_size);
    int ver = rb_u8(&r);
    h->change = rb_u8(&r);
    rb_str(&r, h->version, sizeof h->version);
    rb_str(&r, h->previous, sizeof h->previous);
    h->at = rb_i64(&r);
    h->src = rb_strp(&r, &h->len);
    if (r.err || ver != V_POLHIST || klen < 8) return SB_ESTORE;
    h->seq = UINT64_MAX - be64(key + klen - 8);
    return 0;
}

static int hist_state(MDB_txn *txn, sb_engine *e, uint32_t acct, uint64_t *next, uint64_t *bytes)
{
    uint8_t k[5];
    put_be32(k, acct);
    k[4] = 's';
    MDB_val v;
    int rc = st_get(txn, e, DB_POLHIST, k, 5, &v);
    *next = 1, *bytes = 0;
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return rc;
    if (v.mv_size != 16) return SB_ESTORE;
    *next = be64(v.mv_data);
    *bytes = be64((const uint8_t *)v.mv_data + 8);
    return 0;
}

static int hist_state_put(MDB_txn *txn, sb_engine *e, uint32_t acct, uint64_t next, uint64_t bytes)
{
    uint8_t k[5], v[16];
    put_be32(k, acct);
    k[4] = 's';
    put_be64(v, next);
    put_be64(v + 8, bytes);
    return st_put(txn, e, DB_POLHIST, k, 5, v, 16);
}

/* The newest entry of the account's history of name: 0, MDB_NOTFOUND, or
** an error. */
static int hist_newest(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *name, hist_ent *h)
{
    uint8_t p[6 + SB_NAME_MAX];
    st_iter it;
    int rc = st_iter_open(&it, txn, e, DB_POLHIST, p, hist_prefix(p, acct, name));
    if (rc == 0 && hist_decode(it.key, it.klen, &it.v, h)) rc = SB_ESTORE;
    st_iter_close(&it);
    return rc;
}

static int hist_write(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *name,
                      const hist_ent *h, uint64_t *bytes)
{
    wbuf w = {0};
    wb_u8(&w, V_POLHIST);
    wb_u8(&w, (uint8_t)h->change);
    wb_str(&w, h->version);
    wb_str(&w, h->previous);
    wb_i64(&w, h->at);
    wb_strn(&w, h->src ? h->src : "", h->len);
    uint8_t k[6 + SB_NAME_MAX + 8];
    int rc = w.err ? SB_ENOMEM
                   : st_put(txn, e, DB_POLHIST, k, hist_key(k, acct, name, h->seq), w.b.p, w.b.len);
    /* The account's index: name and the bytes the entry counts. */
    uint64_t cost = h->len + HIST_ENTRY_BYTES;
    wb_reset(&w);
    wb_str(&w, name);
    wb_i64(&w, (int64_t)cost);
    if (!rc)
        rc = w.err ? SB_ENOMEM
                   : st_put(txn, e, DB_POLHIST, k, hist_okey(k, acct, h->seq), w.b.p, w.b.len);
    buf_free(&w.b);
    if (!rc) *bytes += cost;
    return rc;
}

static int hist_drop(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *name, uint64_t seq,
                     uint64_t cost, uint64_t *bytes)
{
    uint8_t k[6 + SB_NAME_MAX + 8];
    int rc = st_del(txn, e, DB_POLHIST, k, hist_key(k, acct, name, seq));
    if (!rc) rc = st_del(txn, e, DB_POLHIST, k, hist_okey(k, acct, seq));
    *bytes = *bytes > cost ? *bytes - cost : 0;
    return rc;
}

/* Name's entries past its HIST_PER_NAME newest go. */
static int hist_trim_name(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *name,
                          uint64_t *bytes)
{
    uint8_t p[6 + SB_NAME_MAX];
    uint64_t seqs[8], costs[8];
    for (;;) {
        size_t n = 0, i = 0;
        st_iter it;
        int rc;
        for (rc = st_iter_open(&it, txn, e, DB_POLHIST, p, hist_prefix(p, acct, name));
             rc == 0 && n < 8; rc = st_iter_next(&it)) {
            hist_ent h;
            if (i++ < HIST_PER_NAME) continue;
            if (hist_decode(it.key, it.klen, &it.v, &h)) {
                rc = SB_ESTORE;
                break;
            }
            seqs[n] = h.seq;
            costs[n++] = h.len + HIST_ENTRY_BYTES;
        }
        st_iter_close(&it);
        if (rc && rc != MDB_NOTFOUND) return rc;
        for (i = 0; i < n; i++)
            if ((rc = hist_drop(txn, e, acct, name, seqs[i], costs[i], bytes))) return rc;
        if (n < 8) return 0;
    }
}

/* The account's oldest entries go while it keeps more than
** HIST_ACCOUNT_BYTES, but never a name's newest. */
static int hist_trim_account(MDB_txn *txn, sb_engine *e, uint32_t acct, uint64_t *bytes)
{
    uint8_t p[5], after[13];
    size_t alen = 0;
    put_be32(p, acct);
    p[4] = 'o';
    while (*bytes > HIST_ACCOUNT_BYTES) {
        st_iter it;
        char name[SB_NAME_MAX + 1];
        uint64_t seq = 0, cost = 0;
        int rc = st_iter_after(&it, txn, e, DB_POLHIST, p, 5, after, alen);
        if (rc == 0) {
            rbuf r;
            rb_init(&r, it.v.mv_data, it.v.mv_size);
            rb_str(&r, name, sizeof name);
            cost = (uint64_t)rb_i64(&r);
            seq = it.klen == 13 ? be64(it.key + 5) : 0;
            memcpy(after, it.key, it.klen == 13 ? 13 : 0);
            alen = 13;
            if (r.err || it.klen != 13) rc = SB_ESTORE;
        }
        st_iter_close(&it);
        if (rc == MDB_NOTFOUND) return 0; /* only names' newest left */
        if (rc) return rc;
        hist_ent newest;
        if ((rc = hist_newest(txn, e, acct, name, &newest)) && rc != MDB_NOTFOUND) return rc;
        if (rc == 0 && newest.seq == seq) continue;
        if ((rc = hist_drop(txn, e, acct, name, seq, cost, bytes))) return rc;
    }
    return 0;
}

/* Record a change of the account's policy name in its history, in the
** transaction that makes it (before it writes: the upload there now is
** read as what was replaced): an upload of version (src, len) or, with
** change HIST_DELETE, a delete. previous: the version replaced ("" none).
** An upload of the version the history ends with adds nothing. */
static int hist_add(wtx *t, const char *name, int change, const char *version, const char *previous,
                    const char *src, size_t len)
{
    MDB_txn *txn = t->txn;
    sb_engine *e = t->e;
    uint64_t next, bytes;
    hist_ent last;
    int was_seeded = 0;
    int rc = hist_state(txn, e, t->acct, &next, &bytes);
    if (rc) return rc;
    rc = hist_newest(txn, e, t->acct, name, &last);
    if (rc == MDB_NOTFOUND && previous[0]) {
        /* The first entry of a name uploaded before histories were kept:
        ** the upload it replaces comes first. */
        sb_buf cur = {0};
        hist_ent seed = {.seq = next++, .change = HIST_UPLOAD};
        rc = read_policy_at(txn, e, t->acct, name, &cur, seed.version, &seed.at);
        if (rc == 0) {
            seed.src = cur.p, seed.len = cur.len;
            rc = hist_write(txn, e, t->acct, name, &seed, &bytes);
            last = seed;
            was_seeded = 1;
        } else if (rc == SB_ESTORE) { /* unreadable: there is nothing to keep of it */
            rc = MDB_NOTFOUND;
        }
        buf_free(&cur);
        if (rc && rc != MDB_NOTFOUND) return rc;
    } else if (rc && rc != MDB_NOTFOUND) {
        return rc;
    }
    int same = rc == 0 && change == HIST_UPLOAD && last.change == HIST_UPLOAD &&
               !strcmp(last.version, version); /* the same text again */
    if (same && !was_seeded) return 0;
    if (!same) {
        hist_ent h = {.seq = next++, .change = change, .at = t->now, .src = src, .len = len};
        snprintf(h.version, sizeof h.version, "%s", version ? version : "");
        snprintf(h.previous, sizeof h.previous, "%s", previous);
        if ((rc = hist_write(txn, e, t->acct, name, &h, &bytes)) ||
            (rc = hist_trim_name(txn, e, t->acct, name, &bytes)) ||
            (rc = hist_trim_account(txn, e, t->acct, &bytes)))
            return rc;
    }
    return hist_state_put(txn, e, t->acct, next, bytes);
}

/* A version as the API names one: 16 lowercase hex digits. */
static int version_check(const char *v, sb_result *res)
{
    if (v && strlen(v) == 16 && strspn(v, "0123456789abcdef") == 16) return 0;
    return res_err(res, SB_EINVAL, "version",
                   "'version' must be a policy version: 16 lowercase hex digits, as \"version\" "
                   "gives it");
}

static json_t *hist_json(const hist_ent *h, int current)
{
    json_t *o = json_pack("{s:I, s:s, s:s?, s:I}", "seq", (json_int_t)h->seq, "change",
                          h->change == HIST_DELETE ? "delete" : "upload", "version",
                          h->change == HIST_DELETE ? NULL : h->version, "at_ms", (json_int_t)h->at);
    if (o && h->previous[0]) json_object_set_new(o, "previous", json_string(h->previous));
    if (o && h->change == HIST_UPLOAD)
        json_object_set_new(o, "bytes", json_integer((json_int_t)h->len));
    if (o) json_object_set_new(o, "current", json_boolean(current));
    return o;
}

int sb_policy_versions(sb_engine *e, const char *account, const char *name, uint64_t before,
                       size_t limit, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    if (!policy_name_valid(name)) return bad_name(res, name);
    if (before > INT64_MAX)
        return res_err(res, SB_EINVAL, "before", "'before' must be a \"seq\" a list gave");
    if (limit == 0 || limit > HIST_PER_NAME) limit = HIST_PER_NAME;
    MDB_txn *txn;
    acct_rec acc;
    int rc = eng_read_account(e, account, &txn, &acc, res);
    if (rc) return rc;
    char cur[17] = "";
    int64_t stamp = 0;
    int has = read_policy_at(txn, e, acc.num, name, NULL, cur, &stamp) == 0;
    hist_ent top;
    int named = has || hist_newest(txn, e, acc.num, name, &top) == 0; /* a page past its end: [] */
    json_t *arr = json_array();
    uint8_t p[6 + SB_NAME_MAX], after[6 + SB_NAME_MAX + 8];
    size_t pl = hist_prefix(p, acc.num, name);
    size_t al = before ? hist_key(after, acc.num, name, before) : 0;
    uint64_t last = 0;
    int more = 0, any = 0;
    st_iter it;
    for (rc = st_iter_after(&it, txn, e, DB_POLHIST, p, pl, after, al); rc == 0;
         rc = st_iter_next(&it)) {
        hist_ent h;
        if (json_array_size(arr) == limit) {
            more = 1;
            break;
        }
        if (hist_decode(it.key, it.klen, &it.v, &h)) {
            rc = SB_ESTORE;
            break;
        }
        /* The newest entry is what the name is now. */
        int newest = !any && !before;
        any = 1;
        json_array_append_new(arr, hist_json(&h, newest && has && h.change == HIST_UPLOAD &&
                                                     !strcmp(h.version, cur)));
        last = h.seq;
    }
    st_iter_close(&it);
    if (rc == MDB_NOTFOUND || (rc == 0 && more)) rc = 0;
    if (!rc && !any && !before && has) {
        /* Uploaded before histories were kept, and not changed since. */
        hist_ent h = {.seq = 0, .change = HIST_UPLOAD, .at = stamp};
        sb_buf src = {0};
        memcpy(h.version, cur, sizeof cur);
        if (read_policy(txn, e, acc.num, name, &src, NULL) == 0) h.len = src.len;
        buf_free(&src);
        json_array_append_new(arr, hist_json(&h, 1));
        any = 1;
    }
    eng_read_end(e, txn);
    if (rc) {
        json_decref(arr);
        return res_err(res, SB_ESTORE, "name", "cannot read the history of policy '%s'", name);
    }
    if (!any && (!before || !named)) {
        json_decref(arr);
        return res_err(res, SB_ENOTFOUND, "name",
                       "no policy '%s' uploaded to this account, now or before (shared "
                       "policies' versions are policy_dir's files)",
                       name);
    }
    json_t *doc = json_pack("{s:s, s:o}", "name", name, "versions", arr);
    if (doc && more) json_object_set_new(doc, "next", json_integer((json_int_t)last));
    res_doc(res, doc);
    return 0;
}

int sb_policy_version_get(sb_engine *e, const char *account, const char *name, const char *version,
                          sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    if (!policy_name_valid(name)) return bad_name(res, name);
    if (version_check(version, res)) return SB_EINVAL;
    MDB_txn *txn;
    acct_rec acc;
    int rc = eng_read_account(e, account, &txn, &acc, res);
    if (rc) return rc;
    char cur[17] = "";
    int has = read_policy(txn, e, acc.num, name, NULL, cur) == 0;
    uint8_t p[6 + SB_NAME_MAX];
    st_iter it;
    hist_ent h;
    int i = 0, found = 0;
    for (rc = st_iter_open(&it, txn, e, DB_POLHIST, p, hist_prefix(p, acc.num, name)); rc == 0;
         rc = st_iter_next(&it), i++) {
        if (hist_decode(it.key, it.klen, &it.v, &h)) {
            rc = SB_ESTORE;
            break;
        }
        if (h.change == HIST_UPLOAD && !strcmp(h.version, version)) {
            found = 1;
            break;
        }
    }
    json_t *doc = NULL;
    if (found) {
        doc = hist_json(&h, i == 0 && has && !strcmp(cur, version));
        json_object_set_new(doc, "name", json_string(name));
        json_object_set_new(doc, "code", json_stringn(h.src, h.len));
    }
    st_iter_close(&it);
    if (!found && (rc == 0 || rc == MDB_NOTFOUND) && has && !strcmp(cur, version)) {
        /* Uploaded before histories were kept, and not changed since. */
        sb_buf src = {0};
        hist_ent c = {.seq = 0, .change = HIST_UPLOAD};
        memcpy(c.version, cur, sizeof cur);
        if ((rc = read_policy_at(txn, e, acc.num, name, &src, NULL, &c.at)) == 0) {
            c.len = src.len;
            doc = hist_json(&c, 1);
            json_object_set_new(doc, "name", json_string(name));
            json_object_set_new(doc, "code", json_stringn(src.p ? src.p : "", src.len));
            found = 1;
        }
        buf_free(&src);
    }
    eng_read_end(e, txn);
    if (!found && rc != 0 && rc != MDB_NOTFOUND)
        return res_err(res, SB_ESTORE, "name", "cannot read the history of policy '%s'", name);
    if (!found)
        return res_err(res, SB_ENOTFOUND, "version",
                       "policy '%s' has no version %s in this account's history (it keeps the "
                       "last %d versions of each name, %u MiB an account)",
                       name, version, HIST_PER_NAME, HIST_ACCOUNT_BYTES >> 20);
    if (!doc) return res_err(res, SB_ENOMEM, NULL, "out of memory");
    res_doc(res, doc);
    return 0;
}

/* sb_policy_versions_forget: drop entries of a name's history. */
typedef struct {
    const char *account, *name, *version; /* version NULL: all but the newest */
    size_t dropped;
} forget_op;

static int do_versions_forget(wtx *t, void *arg)
{
    forget_op *op = arg;
    int rc = tx_account(t, op->account);
    if (rc) return rc;
    MDB_txn *txn = t->txn;
    sb_engine *e = t->e;
    uint64_t next, bytes;
    if ((rc = hist_state(txn, e, t->acct, &next, &bytes))) return rc;
    char cur[17] = "";
    if (read_policy(txn, e, t->acct, op->name, NULL, cur)) cur[0] = 0;
    uint8_t p[6 + SB_NAME_MAX];
    struct {
        uint64_t seq, cost;
    } *drop = NULL;
    size_t n = 0, i = 0;
    int any = 0;
    st_iter it;
    for (rc = st_iter_open(&it, txn, e, DB_POLHIST, p, hist_prefix(p, t->acct, op->name)); rc == 0;
         rc = st_iter_next(&it), i++) {
        hist_ent h;
        if (hist_decode(it.key, it.klen, &it.v, &h)) {
            rc = SB_ESTORE;
            break;
        }
        any = 1;
        /* Never the newest (what the name is now); at most HIST_PER_NAME. */
        if (i == 0 || (op->version && (h.change != HIST_UPLOAD || strcmp(h.version, op->version))))
            continue;
        if (!drop && !(drop = malloc(HIST_PER_NAME * sizeof *drop))) {
            rc = SB_ENOMEM;
            break;
        }
        if (n < HIST_PER_NAME) drop[n].seq = h.seq, drop[n++].cost = h.len + HIST_ENTRY_BYTES;
    }
    st_iter_close(&it);
    if (rc == MDB_NOTFOUND) rc = 0;
    if (!rc && op->version && !strcmp(cur, op->version))
        rc = res_err(t->res, SB_ESTATE, "version",
                     "version %s is the upload of policy '%s' in use: upload another version, "
                     "or delete the policy, first; nothing changed",
                     op->version, op->name);
    else if (!rc && !any && !cur[0])
        rc = res_err(t->res, SB_ENOTFOUND, "name",
                     "no policy '%s' uploaded to this account, now or before (shared policies' "
                     "versions are policy_dir's files)",
                     op->name);
    else if (!rc && op->version && !n)
        rc = res_err(t->res, SB_ENOTFOUND, "version",
                     "policy '%s' has no earlier version %s in this account's history", op->name,
                     op->version);
    for (i = 0; !rc && i < n; i++)
        rc = hist_drop(txn, e, t->acct, op->name, drop[i].seq, drop[i].cost, &bytes);
    free(drop);
    if (rc) return rc;
    op->dropped = n;
    return n ? hist_state_put(txn, e, t->acct, next, bytes) : 0;
}

int sb_policy_versions_forget(sb_engine *e, const char *account, const char *name,
                              const char *version, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    if (!policy_name_valid(name)) return bad_name(res, name);
    if (version && version_check(version, res)) return SB_EINVAL;
    forget_op op = {account, name, version, 0};
    int rc = eng_write_ex(e, do_versions_forget, &op, res, 1); /* a delete */
    if (rc) return rc;
    /* The caller has it in res and says it (the daemon's one log line):
    ** the engine's own line is for debugging, as a reload's. */
    sb_log(e, SB_LOG_DEBUG,
           "policy history forgotten account=%s policy=%s version=%s entries=" OWN_ZU, account,
           name, version ? version : "all-past", op.dropped);
    res_doc(res, json_pack("{s:s, s:I}", "name", name, "forgotten", (json_int_t)op.dropped));
    return 0;
}

/* --- account uploads ------------------------------------------------------------- */

/* The account's policies changed: a new generation, which every engine's
** next event of the account sees. *gen: the one written. */
static int bump_account_gen(wtx *t, uint64_t *gen)
{
    *gen = ++t->account->policy_gen;
    return st_account_save(t->txn, t->e, t->account);
}

/* Once that committed, this engine's state of the account moves to it now,
** so that what the engine reports (a quarantine, memory) is at once what it
** runs. Only forward: an event may have moved it to a newer one already. */
typedef struct {
    uint32_t acct;
    uint64_t gen;
    const char *name; /* the policy uploaded or deleted: it starts afresh */
} gen_arg;

static void adopt_account_gen(sb_engine *e, void *arg)
{
    const gen_arg *a = arg;
    uint64_t have;
    if (pol_host_gen(e->pol, a->acct, &have) && have < a->gen)
        pol_host_sync_gen(e->pol, a->acct, a->gen);
    pol_host_lift(e->pol, a->acct, a->name);
}

static void adopt_account(sb_engine *e, uint32_t acct, uint64_t gen, const char *name)
{
    gen_arg a = {acct, gen, name};
    if (eng_write_locked(e, adopt_account_gen, &a)) /* its next event does it then */
        sb_log(e, SB_LOG_WARN,
               "account policies changed; this engine moves to them at the "
               "account's next event");
}

/* An if_version: NULL (no condition), "*" (an upload of it), "" (none) or a
** version. Else SB_EINVAL. */
static int if_version_check(const char *iv, sb_result *res)
{
    if (!iv || !strcmp(iv, "*") || !iv[0]) return 0;
    if (strlen(iv) == 16 && strspn(iv, "0123456789abcdef") == 16) return 0;
    return res_err(res, SB_EINVAL, "if_version",
                   "'if_version' must be a policy version (16 hex digits, as \"version\" gives "
                   "it), \"*\" or \"\"");
}

/* The condition of a conditional put or delete, in its transaction: the
** account's upload of name has the version iv asks for (rc: how reading it
** went, have: its version then), or SB_ESTATE naming what it has. */
static int if_version_met(sb_result *res, const char *name, const char *iv, int rc,
                          const char *have)
{
    if (!iv) return 0;
    if (rc && rc != SB_ENOTFOUND && rc != SB_ESTORE)
        return res_err(res, rc, "name", "cannot read policy '%s'", name);
    int exists = rc != SB_ENOTFOUND;
    const char *shown = rc ? "(unreadable)" : have;
    if (!strcmp(iv, "*")) {
        if (exists) return 0;
    } else if (!iv[0]) {
        if (!exists) return 0;
        return res_err(res, SB_ESTATE, "if_version",
                       "policy '%s' is uploaded already (version %s), and none was expected: "
                       "nothing changed",
                       name, shown);
    } else if (exists && !rc && !strcmp(iv, have)) {
        return 0;
    }
    if (!exists)
        return res_err(res, SB_ESTATE, "if_version",
                       "the account has no upload of policy '%s' (expected %s%s): nothing changed",
                       name, strcmp(iv, "*") ? "version " : "one", strcmp(iv, "*") ? iv : "");
    return res_err(res, SB_ESTATE, "if_version",
                   "policy '%s' is at version %s, not %s (changed since it was read?): nothing "
                   "changed",
                   name, shown, iv);
}

typedef struct {
    const char *account, *name, *src;
    size_t len;
    const char *if_version; /* sb_policy_put_if's condition (NULL: none) */
    char version[17];
    char previous[17]; /* the account's upload it replaced ("" for none) */
    unsigned hooks;
    uint32_t acct;
    uint64_t gen;
} put_op;

static unsigned hooks_needed(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *name,
                             unsigned hooks, char *who, size_t cap, int *rc);
static const char *hook_users_do(unsigned hook);
static const char *hook_users_fix(unsigned hook);

static int do_policy_put(wtx *t, void *arg)
{
    put_op *op = arg;
    int rc = tx_account(t, op->account);
    if (rc) return rc;
    char who[SB_ID_MAX * 2 + 64];
    unsigned miss = hooks_needed(t->txn, t->e, t->acct, op->name, op->hooks, who, sizeof who, &rc);
    if (rc) return rc;
    if (miss)
        return res_err(t->res, SB_ESTATE, "source",
                       "%s %s with policy '%s', and this version has no %s hook; add one, or %s "
                       "first",
                       who, hook_users_do(miss), op->name, hook_name(miss), hook_users_fix(miss));
    op->previous[0] = 0;
    rc = read_policy(t->txn, t->e, t->acct, op->name, NULL, op->previous);
    int met = if_version_met(t->res, op->name, op->if_version, rc, op->previous);
    if (met) return met;
    if (rc == SB_ESTORE) /* a stored value it cannot read: the upload replaces it */
        sb_log(t->e, SB_LOG_WARN, "policy '%s' of account=%s could not be read; replaced", op->name,
               op->account);
    else if (rc && rc != SB_ENOTFOUND)
        return res_err(t->res, rc, "name", "cannot read policy '%s'", op->name);
    int added = rc == SB_ENOTFOUND; /* a new one: one more of the account's */
    if (rc) op->previous[0] = 0;
    if (added && (rc = acct_take(t, LIM_POLICIES))) return rc;
    if ((rc = hist_add(t, op->name, HIST_UPLOAD, op->version, op->previous, op->src, op->len)) ||
        (rc = write_policy(t->txn, t->e, t->acct, op->name, op->src, op->len, op->version, t->now)))
        return rc;
    op->acct = t->acct;
    return bump_account_gen(t, &op->gen);
}

/* A name no policy can have: said as such (SB_EINVAL), not as a policy that
** is not there, for a put, a get or a delete alike. The name is quoted as
** far as it is printable: the result goes back to its own account, and a
** log line that quotes it is redacted. */
static int bad_name(sb_result *res, const char *name)
{
    /* NULL too, as "" (switchboard.h's conventions), said as no name. */
    if (!name) return res_err(res, SB_EINVAL, "name", "no policy name given");
    char shown[64];
    size_t o = 0;
    for (const char *p = name; *p && o + 4 < sizeof shown; p++)
        shown[o++] = (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f ? *p : '?';
    shown[o] = 0;
    return res_err(res, SB_EINVAL, "name",
                   "'%s%s' is not a policy name: names are 1..128 characters of A-Z a-z 0-9 . _ "
                   "- in parts separated by /, none starting with '.'",
                   shown, strlen(name) > o ? "..." : "");
}

/* The sources an account's policy state would hold beside a new version of
** `name`: every other upload of the account, and each shared policy its
** queues route with or its retention setting names that it has no upload
** of. Appended to *srcs (names in *names), copied out of the transaction. */
typedef struct {
    sb_buf *srcs;
    char (*names)[SB_NAME_MAX + 1];
    size_t n, cap;
} sibling_set;

static int sibling_add(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *nm, const char *skip,
                       sibling_set *set)
{
    if (!nm[0] || !strcmp(nm, skip)) return 0;
    for (size_t i = 0; i < set->n; i++)
        if (!strcmp(set->names[i], nm)) return 0;
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 8;
        sb_buf *s = realloc(set->srcs, cap * sizeof *s);
        if (!s) return SB_ENOMEM;
        set->srcs = s;
        char(*n)[SB_NAME_MAX + 1] = realloc(set->names, cap * sizeof *n);
        if (!n) return SB_ENOMEM;
        set->names = n;
        set->cap = cap;
    }
    sb_buf src = {0};
    int rc = read_running(txn, e, acct, nm, &src, NULL);
    if (rc) {
        buf_free(&src);
        return rc == SB_ENOTFOUND ? 0 : rc;
    }
    snprintf(set->names[set->n], sizeof set->names[0], "%s", nm);
    set->srcs[set->n++] = src;
    return 0;
}

static int siblings_of(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *skip,
                       sibling_set *set)
{
    uint8_t p[4];
    st_iter it;
    int rc, err = 0;
    for (rc = st_iter_open(&it, txn, e, DB_POLICIES, p, key_acct(p, acct)); rc == 0 && !err;
         rc = st_iter_next(&it)) {
        char nm[SB_NAME_MAX + 1];
        size_t nl = it.klen - 4;
        if (it.klen <= 4 || nl > SB_NAME_MAX) continue;
        memcpy(nm, it.key + 4, nl);
        nm[nl] = 0;
        err = sibling_add(txn, e, acct, nm, skip, set);
    }
    st_iter_close(&it);
    for (rc = st_iter_open(&it, txn, e, DB_QUEUES, p, key_acct(p, acct)); rc == 0 && !err;
         rc = st_iter_next(&it)) {
        queue_rec q = {0};
        if (dec_queue(it.v.mv_data, it.v.mv_size, &q) == 0)
            err = sibling_add(txn, e, acct, q.policy, skip, set);
        queue_free(&q);
    }
    st_iter_close(&it);
    rec_settings rs;
    if (!err && rec_settings_load(txn, e, acct, &rs) == 0)
        err = sibling_add(txn, e, acct, rs.retention, skip, set);
    return err;
}

/* What `switchboard policy check` says of a policy (an undefined global, a
** hook with the wrong parameters...), one string a finding, each after
** "<dir>/" when dir is given, and logged as a warning when e is. NULL when
** out of memory. */
static json_t *lint_findings(sb_engine *e, const char *dir, const char *name, const char *src,
                             size_t len)
{
    json_t *w = json_array();
    sb_result *lint = sb_result_new();
    if (w && lint && sb_policy_check(name, src, len, lint)) {
        const char *m = sb_result_message(lint);
        while (m && *m) {
            size_t n = strcspn(m, "\n");
            if (n) {
                char line[1400];
                snprintf(line, sizeof line, "%s%s%.*s", dir ? dir : "", dir ? "/" : "", (int)n, m);
                if (e) sb_log(e, SB_LOG_WARN, "policy warning: %s", line);
                json_array_append_new(w, json_string(line));
            }
            m += n + (m[n] == '\n');
        }
    }
    sb_result_free(lint);
    return w;
}

/* An account's policies run in one policy state, under one memory budget
** (policy_memory): a version that loads alone but not beside the account's
** other policies would fail at its first call, or make the one loaded after
** it fail. Refused here, at upload (SB_EPOLICY). When the others do not fit
** together already, the new version is not to blame: it is let through. */
static int fits_beside(sb_engine *e, const char *account, const char *name, const char *source,
                       size_t len, const pol_limits *lim, sb_result *res)
{
    MDB_txn *txn;
    acct_rec acc;
    int rc = eng_read_account(e, account, &txn, &acc, res);
    if (rc) return rc == SB_ENOTFOUND ? 0 : rc; /* said by the write that follows */
    sibling_set set = {0};
    rc = siblings_of(txn, e, acc.num, name, &set);
    eng_read_end(e, txn);
    char err[512];
    if (!rc && set.n &&
        pol_load_beside(lim, (const char(*)[SB_NAME_MAX + 1]) set.names, set.srcs, set.n, name,
                        source, len, err, sizeof err) == 2) {
        char sz[32];
        rc = res_err(res, SB_EPOLICY, "source",
                     "%s.lua loads alone but not beside the account's %zu other "
                     "polic%s, which share one policy memory of %s (policy_memory): %s",
                     name, set.n, set.n == 1 ? "y" : "ies",
                     eng_size_str(sz, sizeof sz, lim->memory), err);
    }
    for (size_t i = 0; i < set.n; i++)
        buf_free(&set.srcs[i]);
    free(set.srcs);
    free(set.names);
    return rc;
}

int sb_policy_put(sb_engine *e, const char *account, const char *name, const char *source,
                  size_t len, const char *cases_json, sb_result *res)
{
    return sb_policy_put_if(e, account, name, source, len, cases_json, NULL, res);
}

int sb_policy_put_if(sb_engine *e, const char *account, const char *name, const char *source,
                     size_t len, const char *cases_json, const char *if_version, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    if (!policy_name_valid(name)) return bad_name(res, name);
    if (if_version_check(if_version, res)) return SB_EINVAL;
    size_t nl = strlen(name);
    if (nl > 4 && !strcasecmp(name + nl - 4, ".lua")) /* a file's name, not the policy's */
        return res_err(res, SB_EINVAL, "name",
                       "'%s' ends in .lua: a policy is named without it ('%.*s', as queues "
                       "name it and as policy_dir's %s would be)",
                       name, (int)(nl - 4), name, name);
    if (!source || len == 0) return res_err(res, SB_EINVAL, "source", "empty policy source");
    char file[SB_NAME_MAX + 8], why[SB_NAME_MAX + 128];
    snprintf(file, sizeof file, "%s.lua", name);
    if (pol_source_check(file, source, len, why, sizeof why))
        return res_err(res, SB_EINVAL, "source", "%s", why);
    int rc = check_signature(e, name, source, len, res);
    if (rc) return rc;
    pol_limits lim = limits_of(e);
    lim.cases_max = MAX_UPLOAD_CASES;
    lim.cases_wall_ms = MAX_UPLOAD_CASES_MS;
    unsigned hooks;
    if ((rc = pol_validate_hooks(&lim, name, source, len, cases_json,
                                 cases_json ? strlen(cases_json) : 0, res, &hooks)))
        return rc;
    res_reset(res);
    if ((rc = fits_beside(e, account, name, source, len, &lim, res))) return rc;
    put_op op = {.account = account,
                 .name = name,
                 .src = source,
                 .len = len,
                 .if_version = if_version,
                 .hooks = hooks};
    cr_version(source, len, op.version);
    if ((rc = eng_write(e, do_policy_put, &op, res))) return rc;
    adopt_account(e, op.acct, op.gen, name);
    /* (At debug: the caller has it in res, as a reload's outcome.) */
    sb_log(e, SB_LOG_DEBUG, "policy loaded account=%s policy=%s version=%s previous=%s", account,
           name, op.version, op.previous[0] ? op.previous : "none");
    json_t *doc = json_pack("{s:s, s:s}", "name", name, "version", op.version);
    if (doc && op.previous[0]) json_object_set_new(doc, "previous", json_string(op.previous));
    /* What `switchboard policy check` would say of it: stored all the same,
    ** as it loads and passes its cases, but the author hears of it. */
    json_t *w = lint_findings(NULL, NULL, name, source, len);
    if (doc && json_array_size(w)) json_object_set(doc, "warnings", w);
    json_decref(w);
    res_doc(res, doc);
    return 0;
}

/* The policy host's status of an account, read under the write lock: only
** when its state was built for the generations stored now (the account's
** and the shared one). Otherwise its next event rebuilds it (a reload lifts
** every quarantine; an upload or a delete, that of the policy it changed):
** the status is empty (every policy ok) until this engine has moved. */
typedef struct status_arg {
    uint32_t acct;
    uint64_t policy_gen, shared_gen; /* as stored */
    json_t *status;
} status_arg;

static void status_of(sb_engine *e, void *arg)
{
    status_arg *a = arg;
    uint64_t gen;
    if (e->shared_gen == a->shared_gen && pol_host_gen(e->pol, a->acct, &gen) &&
        gen == a->policy_gen)
        a->status = pol_host_status(e->pol, a->acct);
    else
        a->status = json_array();
}

/* The policy host's status of account acc, read in txn (an array, *status,
** the caller's to free). Ends txn: the write lock it then takes must wait
** for no transaction of this thread. */
static int account_status(sb_engine *e, MDB_txn *txn, const acct_rec *acc, json_t **status)
{
    status_arg sa = {acc->num, acc->policy_gen, 0, NULL};
    int rc = st_meta_u64(txn, e, "shared_gen", &sa.shared_gen);
    eng_read_end(e, txn);
    if (!rc) rc = eng_write_locked(e, status_of, &sa);
    if (rc) {
        json_decref(sa.status);
        return rc;
    }
    *status = sa.status;
    return 0;
}

/* Policy document o (with "state":"ok","failures":0) as the status says
** policy `name` runs: its state, failures and the version loaded. */
static json_t *with_status(json_t *o, json_t *status, const char *name)
{
    size_t j;
    json_t *st;
    json_array_foreach(status, j, st)
    {
        if (strcmp(json_string_value(json_object_get(st, "name")), name) != 0) continue;
        json_object_set(o, "state", json_object_get(st, "state"));
        json_object_set(o, "failures", json_object_get(st, "failures"));
        json_object_set(o, "loaded_version", json_object_get(st, "version"));
    }
    return o;
}

/* The policy of that name the account's queues would run: its own upload,
** else policy_dir's; with its source. */
int sb_policy_get(sb_engine *e, const char *account, const char *name, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    if (!policy_name_valid(name)) return bad_name(res, name);
    MDB_txn *txn;
    acct_rec acc;
    int rc = eng_read_account(e, account, &txn, &acc, res);
    if (rc) return rc;
    sb_buf src = {0};
    char version[17];
    int own = read_policy(txn, e, acc.num, name, &src, version);
    rc = own == SB_ENOTFOUND ? read_policy(txn, e, 0, name, &src, version) : own;
    int shadows = own == 0 && read_policy(txn, e, 0, name, NULL, NULL) == 0;
    json_t *status = NULL, *doc = NULL;
    if (rc) eng_read_end(e, txn);
    if (rc == SB_ENOTFOUND)
        rc = res_err(res, SB_ENOTFOUND, "name", "no such policy '%s'", name);
    else if (rc)
        rc = res_err(res, rc, "name", "cannot read policy '%s'", name);
    else if ((rc = account_status(e, txn, &acc, &status)))
        rc = eng_mdb_err(res, rc, "read policies");
    else if (!(doc = json_pack("{s:s, s:s, s:s, s:s, s:i, s:b, s:s%}", "name", name, "version",
                               version, "source", own == 0 ? "account" : "shared", "state", "ok",
                               "failures", 0, "shadows_shared", shadows, "code", src.p ? src.p : "",
                               src.len)))
        rc = res_err(res, SB_ENOMEM, NULL, "out of memory");
    else
        res_doc(res, with_status(doc, status, name));
    json_decref(status);
    buf_free(&src);
    return rc;
}

#define ALL_ACCOUNTS UINT32_MAX
enum { USE_QUEUES = 1, USE_RETENTION = 2, USE_ANY = 3 };

/* A use of a policy: queue `queue` (NULL for the retention setting) of
** account acct names `name`. Nonzero stops the walk (returned by it). */
typedef int (*use_fn)(void *arg, MDB_txn *txn, uint32_t acct, const char *name, const char *queue);

/* Every use of a policy by name, what of them (USE_*) in account acct or
** (ALL_ACCOUNTS) in every account: the queues, keyed acct(4) queue(4), then
** the retention settings, one an account. 0 at the end, an LMDB code, or
** what fn stopped it with. */
static int uses_walk(MDB_txn *txn, sb_engine *e, uint32_t acct, int what, use_fn fn, void *arg)
{
    int all = acct == ALL_ACCOUNTS, rc, stop = 0;
    uint8_t p[4];
    st_iter it;
    if (what & USE_QUEUES) {
        for (rc = st_iter_open(&it, txn, e, DB_QUEUES, p, all ? 0 : key_acct(p, acct));
             rc == 0 && !stop; rc = st_iter_next(&it)) {
            queue_rec q = {0};
            if (it.klen >= 4 && dec_queue(it.v.mv_data, it.v.mv_size, &q) == 0 && q.policy[0])
                stop = fn(arg, txn, be32(it.key), q.policy, q.id);
            queue_free(&q);
        }
        st_iter_close(&it);
        if (stop) return stop;
        if (rc != MDB_NOTFOUND && rc != 0) return rc;
    }
    if (!(what & USE_RETENTION)) return 0;
    for (rc = st_iter_open(&it, txn, e, DB_ACCOUNTS, p, all ? 0 : key_acct(p, acct));
         rc == 0 && !stop; rc = st_iter_next(&it)) {
        acct_rec ar;
        rec_settings s;
        if (it.klen == 4 && dec_account(it.v.mv_data, it.v.mv_size, &ar) == 0 &&
            rec_settings_load(txn, e, ar.num, &s) == 0 && s.retention[0])
            stop = fn(arg, txn, ar.num, s.retention, NULL);
    }
    st_iter_close(&it);
    if (stop) return stop;
    return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

typedef struct users_find {
    sb_engine *e;
    const char *name;
    int all;
    char *who;
    size_t cap;
} users_find;

static int user_found(void *arg, MDB_txn *txn, uint32_t acct, const char *name, const char *queue)
{
    users_find *f = arg;
    if (strcmp(name, f->name) != 0) return 0;
    /* For a shared policy going, an account's upload of the name stands in. */
    if (f->all && read_policy(txn, f->e, acct, name, NULL, NULL) != SB_ENOTFOUND) return 0;
    if (queue && !f->all) {
        snprintf(f->who, f->cap, "queue '%s'", queue);
        return 1;
    }
    acct_rec ar;
    if (st_account_load(txn, f->e, acct, &ar) != 0) return 0;
    if (queue)
        snprintf(f->who, f->cap, "queue '%s' of account '%s'", queue, ar.id);
    else
        snprintf(f->who, f->cap, "the retention setting of account '%s'", ar.id);
    return 1;
}

/* Who needs policy `name` with nothing to stand in for it: a queue or the
** retention setting of account `acct`, or (acct ALL_ACCOUNTS, for a shared
** policy going) of any account without an upload of that name. 0 and who
** empty when nobody; else 0 and who says who, first found. */
static int policy_users(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *name, int what,
                        char *who, size_t cap)
{
    users_find f = {e, name, acct == ALL_ACCOUNTS, who, cap};
    who[0] = 0;
    int rc = uses_walk(txn, e, acct, what, user_found, &f);
    return rc == 1 ? 0 : rc;
}

/* Queues route by calling a policy's `route`, and an account's retention
** setting reviews records by calling its `retain`: a version without the
** hook its users call would send every call to the fallback, or fail every
** review. Returns the hook missing (POL_HOOK_*) with who: the first queue or
** retention setting (of account acct, or ALL_ACCOUNTS without an upload of
** that name) that would lose it; 0 and who "" when none would. */
static unsigned hooks_needed(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *name,
                             unsigned hooks, char *who, size_t cap, int *rc)
{
    static const struct {
        unsigned hook;
        int users;
    } needs[] = {{POL_HOOK_ROUTE, USE_QUEUES}, {POL_HOOK_RETAIN, USE_RETENTION}};
    who[0] = 0;
    *rc = 0;
    for (size_t i = 0; i < sizeof needs / sizeof needs[0]; i++) {
        if (hooks & needs[i].hook) continue;
        if ((*rc = policy_users(txn, e, acct, name, needs[i].users, who, cap))) return 0;
        if (who[0]) return needs[i].hook;
    }
    return 0;
}

/* "queue 'q' routes with it", "the retention setting of account 'a'
** reviews records with it"; and what to do about it. */
static const char *hook_users_do(unsigned hook)
{
    return hook == POL_HOOK_ROUTE ? "routes" : "reviews records";
}

static const char *hook_users_fix(unsigned hook)
{
    return hook == POL_HOOK_ROUTE ? "move the queue to another policy"
                                  : "change the account's retention setting";
}

typedef struct {
    const char *account, *name;
    const char *if_version; /* sb_policy_delete_if's condition (NULL: none) */
    int shared;             /* policy_dir has one of that name: it decides from now on */
    uint32_t acct;
    uint64_t gen;
} del_op;

static int do_policy_delete(wtx *t, void *arg)
{
    del_op *op = arg;
    int rc = tx_account(t, op->account);
    if (rc) return rc;
    sb_engine *e = t->e;
    uint8_t k[4 + SB_NAME_MAX];
    size_t kl = pol_key(k, t->acct, op->name);
    MDB_val v;
    if (op->if_version) {
        char have[17] = "";
        rc = read_policy(t->txn, e, t->acct, op->name, NULL, have);
        if ((rc = if_version_met(t->res, op->name, op->if_version, rc, have))) return rc;
    }
    if ((rc = st_get(t->txn, e, DB_POLICIES, k, kl, &v)) == MDB_NOTFOUND)
        return res_err(t->res, SB_ENOTFOUND, "name",
                       "no policy '%s' uploaded to this account (policy_dir's are changed there)",
                       op->name);
    if (rc) return rc;
    sb_buf shared = {0};
    char shared_v[17] = "";
    rc = read_policy(t->txn, e, 0, op->name, &shared, shared_v);
    op->shared = rc == 0;
    char who[SB_ID_MAX * 2 + 64];
    if (!op->shared) { /* nothing would stand in: refused while in use */
        buf_free(&shared);
        if (rc != SB_ENOTFOUND)
            return res_err(t->res, rc, "name", "cannot read policy '%s'", op->name);
        if ((rc = policy_users(t->txn, e, t->acct, op->name, USE_ANY, who, sizeof who))) return rc;
        if (who[0])
            return res_err(t->res, SB_ESTATE, "name", "%s uses policy '%s'; change it first", who,
                           op->name);
    } else {
        /* The shared one stands in, for the account's queues and retention
        ** setting alike: refused, as an upload would be, when it lacks the
        ** hook one of them calls (every call to the fallback, every review
        ** failing). */
        unsigned hooks;
        int verdict = sig_verdict(e, shared.p, shared.len);
        rc = stored_hooks(e, op->name, &shared, &hooks);
        buf_free(&shared);
        if (rc) return res_err(t->res, rc, "name", "out of memory");
        /* Nor when it would not run (signatures required since policy_dir's
        ** load stored it): every call to the fallback, every review failing. */
        if (verdict && (rc = policy_users(t->txn, e, t->acct, op->name, USE_ANY, who, sizeof who)))
            return rc;
        if (verdict && who[0]) {
            char why[256];
            unrun_why(why, sizeof why, "it", shared_v, verdict);
            return res_err(t->res, SB_ESTATE, "name",
                           "%s uses policy '%s', and the shared one that would stand in for this "
                           "upload does not run: require_signed_policies is on, and %s; sign "
                           "policy_dir's %s.lua and reload, or change it first",
                           who, op->name, why, op->name);
        }
        unsigned miss = hooks_needed(t->txn, e, t->acct, op->name, hooks, who, sizeof who, &rc);
        if (rc) return rc;
        if (miss)
            return res_err(t->res, SB_ESTATE, "name",
                           "%s %s with policy '%s', and the shared one that would stand in for "
                           "this upload has no %s hook; %s first",
                           who, hook_users_do(miss), op->name, hook_name(miss),
                           hook_users_fix(miss));
    }
    char had[17] = "";
    if (read_policy(t->txn, e, t->acct, op->name, NULL, had)) had[0] = 0;
    if ((rc = hist_add(t, op->name, HIST_DELETE, NULL, had, NULL, 0)) ||
        (rc = st_del(t->txn, e, DB_POLICIES, k, kl)))
        return rc;
    /* Its store goes with it, unless the shared policy of that name decides
    ** from now on (it carries on with the store, as before the upload). */
    if (!op->shared && (rc = st_kv_drop(t->txn, e, t->acct, op->name, NULL))) return rc;
    acct_give(t, LIM_POLICIES); /* saved with its generation */
    op->acct = t->acct;
    return bump_account_gen(t, &op->gen);
}

int sb_policy_delete(sb_engine *e, const char *account, const char *name, sb_result *res)
{
    return sb_policy_delete_if(e, account, name, NULL, res);
}

int sb_policy_delete_if(sb_engine *e, const char *account, const char *name, const char *if_version,
                        sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    if (!policy_name_valid(name)) return bad_name(res, name);
    if (if_version && !if_version[0])
        return res_err(res, SB_EINVAL, "if_version",
                       "a delete's 'if_version' is a version or \"*\" (\"\": none, there is "
                       "nothing to delete)");
    if (if_version_check(if_version, res)) return SB_EINVAL;
    del_op op = {account, name, if_version, 0, 0, 0};
    int rc = eng_write_ex(e, do_policy_delete, &op, res, 1); /* a delete */
    if (rc) return rc;
    adopt_account(e, op.acct, op.gen, name);
    sb_log(e, SB_LOG_DEBUG, "policy deleted account=%s policy=%s", account, name); /* as above */
    res_doc(res, json_pack("{s:s, s:b, s:s?}", "name", name, "deleted", 1, "now",
                           op.shared ? "shared" : NULL));
    return 0;
}

int sb_policy_list(sb_engine *e, const char *account, sb_result *res)
{
    res_reset(res);
    MDB_txn *txn;
    acct_rec acc;
    int rc = eng_read_account(e, account, &txn, &acc, res);
    if (rc) return rc;
    json_t *status;
    if ((rc = account_status(e, txn, &acc, &status))) return eng_mdb_err(res, rc, "read policies");
    if ((rc = eng_read_begin(e, &txn))) {
        json_decref(status);
        return eng_mdb_err(res, rc, "read policies");
    }
    json_t *arr = json_array();
    uint32_t accts[2] = {acc.num, 0};
    for (int i = 0; i < 2; i++) {
        st_iter it;
        uint8_t p[4];
        for (int r = st_iter_open(&it, txn, e, DB_POLICIES, p, key_acct(p, accts[i])); r == 0;
             r = st_iter_next(&it)) {
            char name[SB_NAME_MAX + 1], version[17];
            size_t nl = it.klen - 4;
            if (it.klen <= 4 || nl > SB_NAME_MAX) continue;
            memcpy(name, it.key + 4, nl);
            name[nl] = 0;
            if (read_policy(txn, e, accts[i], name, NULL, version)) continue;
            if (i == 1) { /* shared, unless the account has its own of that name */
                size_t j;
                json_t *x;
                int dup = 0;
                json_array_foreach(
                    arr, j, x) if (strcmp(json_string_value(json_object_get(x, "name")), name) == 0)
                    dup = 1;
                if (dup) continue;
            }
            json_t *o =
                json_pack("{s:s, s:s, s:s, s:s, s:i}", "name", name, "version", version, "source",
                          i == 0 ? "account" : "shared", "state", "ok", "failures", 0);
            if (i == 0 && read_policy(txn, e, 0, name, NULL, NULL) == 0)
                json_object_set_new(o, "shadows_shared", json_true());
            json_array_append_new(arr, with_status(o, status, name));
        }
        st_iter_close(&it);
    }
    json_decref(status);
    eng_read_end(e, txn);
    res_doc(res, json_pack("{s:o}", "policies", arr));
    return 0;
}

/* --- the shared policy directory ---------------------------------------------------- */

typedef struct dir_policy {
    char name[SB_NAME_MAX + 1];
    char *src;
    size_t len;
    char version[17];
    unsigned hooks;    /* POL_HOOK_* */
    int changed;       /* this load stored it: new, or not the version stored */
    char previous[17]; /* the version it replaced ("" when new) */
} dir_policy;

typedef struct dir_scan {
    dir_policy *p;
    size_t n, cap;
} dir_scan;

/* read_file's error for what is not a file: a FIFO, a socket, a device. */
#define NOT_A_FILE (-1)

/* The whole file at path, up to max bytes: 0, EFBIG past max, NOT_A_FILE,
** or an errno. Opened without blocking, and only a regular file (or a
** directory, EISDIR) is read: a FIFO named like a policy or its cases would
** otherwise block the open until something writes into it, and the daemon,
** which reloads on its one event loop, with it. */
static int read_file(const char *path, char **out, size_t *len, size_t max)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return errno;
    struct stat st;
    int err = fstat(fd, &st) ? errno : S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) ? 0 : NOT_A_FILE;
    if (err) {
        close(fd);
        return err;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        err = errno;
        close(fd);
        return err;
    }
    sb_buf b = {0};
    char chunk[8192];
    size_t n;
    errno = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > max || buf_put(&b, chunk, n)) {
            fclose(f);
            buf_free(&b);
            return EFBIG;
        }
    }
    err = ferror(f) ? (errno ? errno : EIO) : 0; /* EISDIR for a directory */
    fclose(f);
    if (err) {
        buf_free(&b);
        return err;
    }
    if (!b.p && buf_put(&b, "", 0)) return ENOMEM;
    *out = b.p;
    *len = b.len;
    return 0;
}

/* Why read_file failed, as a reload says it; big: what EFBIG means. */
static const char *read_error(int err, const char *big)
{
    return err == EFBIG        ? big
           : err == NOT_A_FILE ? "not a regular file (a FIFO, socket or device): policies and "
                                 "their cases are read from files"
                               : strerror(err);
}

/* Subdirectories below policy_dir that are read: "a/b/c/d/name.lua" at most. */
#define MAX_DIR_DEPTH 4

/* A folder or policy file of policy_dir that any user may write into: its
** policies would run for every account, deciding their calls and which
** records are deleted, as that user wrote them. Refused (the load fails, a
** reload keeps what was loaded) unless signatures are required, which
** makes what the directory holds not matter. Group write is left alone: a
** user's own group often has that user alone. */
static int others_may_write(sb_engine *e, const char *path, const struct stat *st, sb_result *res)
{
    if (!(st->st_mode & S_IWOTH) || e->cfg.require_signed_policies) return 0;
    return res_err(res, SB_EPOLICY, "policy_dir",
                   "%s has mode %04o: any user on this machine may %s, and every account runs "
                   "the policies here (chmod o-w it, or turn require_signed_policies on)",
                   path, (unsigned)(st->st_mode & 07777),
                   S_ISDIR(st->st_mode) ? "put policies in it" : "change it");
}

/* Collect every .lua below dir (not *.cases.json, not hidden, not the types
** folder). What is passed over that looks meant to load (a folder too deep,
** a .lua whose name no queue could give) is logged through e's log. */
static int scan_dir(sb_engine *e, const char *root, const char *rel, dir_scan *s, int depth,
                    sb_result *res)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d)
        return res_err(res, SB_EPOLICY, "policy_dir", "cannot read %s: %s", path, strerror(errno));
    struct stat dst;
    int rc = fstat(dirfd(d), &dst)
                 ? res_err(res, SB_EPOLICY, "policy_dir", "%s: %s", path, strerror(errno))
                 : others_may_write(e, path, &dst, res);
    if (rc) {
        closedir(d);
        return rc;
    }
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        const char *n = de->d_name;
        if (n[0] == '.') continue;
        char relp[SB_NAME_MAX + 64], full[4096];
        snprintf(relp, sizeof relp, "%s%s%s", rel, *rel ? "/" : "", n);
        snprintf(full, sizeof full, "%s/%s", root, relp);
        /* An entry that cannot be looked at (a symbolic link to nothing, a
        ** subdirectory listable but not searchable) might be a policy, or a
        ** folder of them: skipping it would delete them. It fails the
        ** reload, as a file that cannot be read does. */
        struct stat st;
        if (stat(full, &st)) {
            int err = errno;
            struct stat lst;
            int dangling = err == ENOENT && lstat(full, &lst) == 0 && S_ISLNK(lst.st_mode);
            rc = res_err(res, SB_EPOLICY, "policy_dir", "%s: %s", full,
                         dangling ? "a symbolic link to nothing (its target does not exist)"
                                  : strerror(err));
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            if (strcmp(n, "types") == 0) continue;
            if (depth >= MAX_DIR_DEPTH) {
                sb_log(e, SB_LOG_WARN,
                       "policy_dir: skipping %s/ and all below it: deeper than the " OWN_D
                       " levels of "
                       "subdirectories policies are read from",
                       full, MAX_DIR_DEPTH);
                continue;
            }
            rc = scan_dir(e, root, relp, s, depth + 1, res);
            continue;
        }
        size_t l = strlen(relp);
        if (l < 5 || strcmp(relp + l - 4, ".lua") != 0) continue;
        if ((rc = others_may_write(e, full, &st, res))) break;
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 32;
            dir_policy *np = realloc(s->p, cap * sizeof *np);
            if (!np) {
                rc = res_err(res, SB_ENOMEM, NULL, "out of memory");
                break;
            }
            s->p = np;
            s->cap = cap;
        }
        dir_policy *p = &s->p[s->n];
        memset(p, 0, sizeof *p);
        relp[l - 4] = 0;
        if (!policy_name_valid(relp) || str_copy(p->name, sizeof p->name, relp)) {
            sb_log(e, SB_LOG_WARN,
                   "policy_dir: skipping %s: not a valid policy name (1..128 characters of "
                   "A-Z a-z 0-9 . _ - in parts separated by /)",
                   full);
            continue;
        }
        int err = read_file(full, &p->src, &p->len, MAX_POLICY_BYTES);
        char why[sizeof full + 128];
        if (err) {
            rc = res_err(res, SB_EPOLICY, "policy_dir", "%s: %s", full,
                         read_error(err, "larger than 256 KiB"));
            break;
        }
        s->n++;
        if (pol_source_check(full, p->src, p->len, why, sizeof why)) {
            rc = res_err(res, SB_EPOLICY, "policy_dir", "%s", why);
            break;
        }
    }
    closedir(d);
    return rc;
}

static void scan_free(dir_scan *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->p[i].src);
    free(s->p);
}

typedef struct {
    dir_scan *s;
    int changed;
    int lift;     /* an operator's reload: move every engine to a new generation even
                  ** when no file changed, which lifts every quarantine */
    uint64_t gen; /* the generation written, 0: none */
    json_t *gone; /* {"name","previous","stores_dropped"} of each shared policy removed */
} reload_op;

/* A shared policy going takes its store (ctx.set) from every account that
** ran it: a later file of that name, another policy, would read the old
** one's state, and the data would stay with nothing using it. An account
** with an upload of that name keeps its store, which the upload decides
** with (as a deleted upload's store goes with it unless a shared policy
** stands in). In the reload's transaction: the removal and the drop commit
** together, for every engine on the data directory. *accounts: how many
** accounts had a store. */
static int drop_shared_stores(wtx *t, const char *name, long long *accounts)
{
    sb_engine *e = t->e;
    uint8_t p[4];
    st_iter it;
    int rc;
    *accounts = 0;
    for (rc = st_iter_open(&it, t->txn, e, DB_ACCOUNTS, p, 0); rc == 0; rc = st_iter_next(&it)) {
        if (it.klen != 4) continue;
        uint32_t a = be32(it.key);
        size_t n;
        rc = read_policy(t->txn, e, a, name, NULL, NULL);
        if (rc == 0) continue; /* its own upload: the store is the upload's */
        if (rc != SB_ENOTFOUND || (rc = st_kv_drop(t->txn, e, a, name, &n))) break;
        *accounts += n > 0;
    }
    st_iter_close(&it);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int do_reload(wtx *t, void *arg)
{
    reload_op *op = arg;
    sb_engine *e = t->e;
    int rc = 0;
    op->changed = 0;
    json_array_clear(op->gone); /* a transaction tried again starts afresh */
    for (size_t i = 0; i < op->s->n && !rc; i++) {
        dir_policy *p = &op->s->p[i];
        char have[17];
        p->changed = 0;
        p->previous[0] = 0;
        int hrc = read_policy(t->txn, e, 0, p->name, NULL, have);
        if (hrc == 0 && strcmp(have, p->version) == 0) continue;
        if (hrc == 0) memcpy(p->previous, have, sizeof p->previous);
        char who[SB_ID_MAX * 2 + 64];
        unsigned miss =
            hooks_needed(t->txn, e, ALL_ACCOUNTS, p->name, p->hooks, who, sizeof who, &rc);
        if (rc) break;
        if (miss) {
            rc = res_err(t->res, SB_EPOLICY, p->name,
                         "%s/%s.lua has no %s hook, but %s %s with it; add one, or %s first",
                         e->policy_dir, p->name, hook_name(miss), who, hook_users_do(miss),
                         hook_users_fix(miss));
            break;
        }
        rc = write_policy(t->txn, e, 0, p->name, p->src, p->len, p->version, t->now);
        p->changed = 1;
        op->changed++;
    }
    /* Shared policies whose file is gone are removed. */
    if (!rc) {
        st_iter it;
        uint8_t p[4] = {0};
        int r = st_iter_open(&it, t->txn, e, DB_POLICIES, p, 4);
        while (r == 0) {
            size_t nl = it.klen - 4, i;
            for (i = 0; i < op->s->n; i++)
                if (strlen(op->s->p[i].name) == nl && memcmp(op->s->p[i].name, it.key + 4, nl) == 0)
                    break;
            if (i == op->s->n) {
                /* Not while an account needs it with no upload of its own. */
                char name[SB_NAME_MAX + 1], who[SB_ID_MAX * 2 + 64];
                snprintf(name, sizeof name, "%.*s", (int)nl, (const char *)it.key + 4);
                if ((r = policy_users(t->txn, e, ALL_ACCOUNTS, name, USE_ANY, who, sizeof who)))
                    break;
                if (who[0]) {
                    rc = res_err(t->res, SB_EPOLICY, name,
                                 "%s.lua is gone from the policy directory but %s uses it; "
                                 "put it back, or move its users to another policy first",
                                 name, who);
                    break;
                }
                long long dropped;
                if ((r = drop_shared_stores(t, name, &dropped))) break;
                char gone_v[17];
                if (op->gone && read_policy(t->txn, e, 0, name, NULL, gone_v) == 0)
                    json_array_append_new(op->gone,
                                          json_pack("{s:s, s:n, s:s, s:I}", "name", name, "version",
                                                    "previous", gone_v, "stores_dropped",
                                                    (json_int_t)dropped));
                r = st_iter_del(&it);
                op->changed++;
                continue;
            }
            r = st_iter_next(&it);
        }
        st_iter_close(&it);
        if (!rc && r != MDB_NOTFOUND) rc = r;
    }
    if (!rc && (op->changed || op->lift)) {
        uint64_t gen;
        if ((rc = st_meta_u64(t->txn, e, "shared_gen", &gen)) == 0)
            rc = st_meta_put_u64(t->txn, e, "shared_gen", gen + 1);
        op->gen = gen + 1;
        t->wrote_gen = 1;
    }
    return rc;
}

/* After a reload committed generation gen: this engine moves to it now (the
** others at their next event), so that its statistics and policy list show
** at once what it runs (the flush only marks the states: they go at the
** next use). Only forward: a newer one may be loaded already. */
static void adopt_shared_gen(sb_engine *e, void *arg)
{
    uint64_t gen = *(const uint64_t *)arg;
    if (e->shared_gen == UINT64_MAX || gen > e->shared_gen) {
        pol_host_flush(e->pol);
        e->shared_gen = gen;
    }
}

/* The findings in the directory's policies that this load stored (new or
** changed): they load and pass their cases all the same, but the operator
** hears of them (a warning in the log each). Only those: linting all 27
** stock policies at every sb_open made each process start 8 ms (1.23x)
** slower. Returns an array of "<policy_dir>/<name>.lua:<line>: ..." (NULL
** when out of memory). */
static json_t *dir_lint(sb_engine *e, const dir_scan *s)
{
    json_t *all = json_array();
    for (size_t i = 0; all && i < s->n; i++) {
        if (!s->p[i].changed) continue;
        json_t *w = lint_findings(e, e->policy_dir, s->p[i].name, s->p[i].src, s->p[i].len);
        json_array_extend(all, w);
        json_decref(w);
    }
    return all;
}

/* Validate policy_dir and swap it in. lift: sb_reload's, see reload_op.
** *warnings: what dir_lint found (or NULL), the caller's to free. */
static int reload_dir(sb_engine *e, sb_result *res, int *changed, json_t **warnings, int lift,
                      json_t **changes)
{
    *warnings = NULL;
    if (changes) *changes = NULL;
    dir_scan s = {0};
    *changed = 0;
    int rc = scan_dir(e, e->policy_dir, "", &s, 0, res);
    pol_limits lim = limits_of(e);
    /* Validate everything before anything changes. */
    for (size_t i = 0; i < s.n && !rc; i++) {
        dir_policy *p = &s.p[i];
        char cpath[4096];
        char *cases = NULL;
        size_t cl = 0;
        snprintf(cpath, sizeof cpath, "%s/%s.cases.json", e->policy_dir, p->name);
        /* No cases file: no cases. One that cannot be read fails the reload
        ** (its cases would not run, and a policy failing them would load). */
        int cerr = read_file(cpath, &cases, &cl, MAX_CASES_BYTES);
        if (cerr && cerr != ENOENT) {
            rc = res_err(res, SB_EPOLICY, p->name, "%s: cannot read the policy's cases: %s", cpath,
                         read_error(cerr, "larger than 4 MiB"));
            break;
        }
        if (cerr) cases = NULL, cl = 0;
        if ((rc = check_signature(e, p->name, p->src, p->len, res)) == 0)
            rc = pol_validate_hooks(&lim, p->name, p->src, p->len, cases, cl, res, &p->hooks);
        free(cases);
        if (rc) {
            char msg[1200];
            /* "<dir>/name.lua:3: ..." where the message names the file
            ** already, not "<dir>/name.lua: name.lua:3: ...". */
            const char *m = sb_result_message(res);
            size_t nl = strlen(p->name);
            if (!strncmp(m, p->name, nl) && !strncmp(m + nl, ".lua:", 5))
                snprintf(msg, sizeof msg, "%s/%s", e->policy_dir, m);
            else if (!strncmp(m, p->name, nl) && !strncmp(m + nl, ": ", 2)) /* a signature's */
                snprintf(msg, sizeof msg, "%s/%s.lua: %s", e->policy_dir, p->name, m + nl + 2);
            else
                snprintf(msg, sizeof msg, "%s/%s.lua: %s", e->policy_dir, p->name, m);
            res_err(res, SB_EPOLICY, p->name, "%s", msg);
            break;
        }
        cr_version(p->src, p->len, p->version);
    }
    if (!rc) {
        reload_op op = {&s, 0, lift, 0, json_array()};
        res_reset(res);
        rc = eng_write_ex(e, do_reload, &op, res, 1); /* small, and how a fix reaches a full map */
        *changed = op.changed;
        /* What changed, for the operator's log: each policy stored, with the
        ** version it replaced, then each removed. */
        if (rc == 0 && changes && (*changes = json_array())) {
            for (size_t i = 0; i < s.n; i++)
                if (s.p[i].changed)
                    json_array_append_new(
                        *changes, s.p[i].previous[0]
                                      ? json_pack("{s:s, s:s, s:s}", "name", s.p[i].name, "version",
                                                  s.p[i].version, "previous", s.p[i].previous)
                                      : json_pack("{s:s, s:s}", "name", s.p[i].name, "version",
                                                  s.p[i].version));
            json_array_extend(*changes, op.gone);
        }
        /* Each removal, with the stores it dropped: sb_reload's caller has
        ** it in res (the daemon's "shared policy removed" line), so the
        ** engine's line is for debugging; at sb_open only the log says it. */
        size_t i;
        json_t *g;
        json_array_foreach(rc == 0 ? op.gone : NULL, i, g)
        {
            long long n = (long long)json_integer_value(json_object_get(g, "stores_dropped"));
            sb_log(e, changes ? SB_LOG_DEBUG : SB_LOG_INFO,
                   "policy_dir: shared policy '%s' removed (its file is gone); its store "
                   "(ctx.set) dropped in " OWN_LLD " account%s",
                   json_string_value(json_object_get(g, "name")), n, n == 1 ? "" : "s");
        }
        json_decref(op.gone);
        if (rc == 0 && op.gen) {
            int lrc = eng_write_locked(e, adopt_shared_gen, &op.gen);
            if (lrc) /* the next event moves to it then */
                sb_log(e, SB_LOG_WARN,
                       "policies reloaded; this engine moves to them at its "
                       "next event (error " OWN_D ")",
                       lrc);
        }
    }
    if (!rc) *warnings = dir_lint(e, &s);
    scan_free(&s);
    /* Is what policy_dir holds what this engine runs? */
    pthread_mutex_lock(&e->stats_mu);
    snprintf(e->dir_error, sizeof e->dir_error, "%s", rc ? sb_result_message(res) : "");
    pthread_mutex_unlock(&e->stats_mu);
    __atomic_store_n(&e->dir_loaded, rc == 0, __ATOMIC_RELAXED);
    return rc;
}

/* At sb_open: a generation only when something changed, so that a process
** starting does not make every other one rebuild its states. */
int policies_reload_dir(sb_engine *e, sb_result *res, int *changed)
{
    json_t *warnings;
    int rc = reload_dir(e, res, changed, &warnings, 0, NULL);
    json_decref(warnings);
    return rc;
}

/* --- what is named but does not run ------------------------------------------------ */

/* At most this many users named in a log line of policies_report_unrun. */
#define UNRUN_USERS_SHOWN 10

/* Note that `who` of account acct uses policy `name`, in seen: keyed
** "acct/name", null when what the account runs by that name runs (or is not
** there: a missing policy is refused where it is named, and a removal while
** it is used), else {acct, name, own, version, verdict, users (the first
** UNRUN_USERS_SHOWN), count}. Shared verdicts are kept under "/name", so
** that each shared source is checked once. 0, or SB_ENOMEM. */
static int unrun_note(MDB_txn *txn, sb_engine *e, json_t *seen, uint32_t acct, const char *name,
                      const char *who)
{
    char key[SB_NAME_MAX + 16];
    snprintf(key, sizeof key, "%u/%s", (unsigned)acct, name);
    json_t *u = json_object_get(seen, key);
    if (!u) {
        sb_buf src = {0};
        char version[17] = "";
        int verdict = SIG_OK, own = 1;
        int rc = read_policy(txn, e, acct, name, &src, version);
        if (rc == SB_ENOTFOUND) {
            own = 0;
            char skey[SB_NAME_MAX + 2];
            snprintf(skey, sizeof skey, "/%s", name);
            json_t *sh = json_object_get(seen, skey);
            if (!sh) {
                rc = read_policy(txn, e, 0, name, &src, version);
                sh = json_pack("{s:i, s:s}", "verdict",
                               rc ? SIG_OK : sig_verdict(e, src.p, src.len), "version", version);
                if (json_object_set_new(seen, skey, sh)) sh = NULL;
            }
            if (!sh) {
                buf_free(&src);
                return SB_ENOMEM;
            }
            verdict = (int)json_integer_value(json_object_get(sh, "verdict"));
            snprintf(version, sizeof version, "%s",
                     json_string_value(json_object_get(sh, "version")));
        } else if (rc == 0) {
            verdict = sig_verdict(e, src.p, src.len);
        }
        buf_free(&src);
        u = verdict ? json_pack("{s:I, s:s, s:b, s:s, s:i, s:[], s:i}", "acct", (json_int_t)acct,
                                "name", name, "own", own, "version", version, "verdict", verdict,
                                "users", "count", 0)
                    : json_null();
        if (!u || json_object_set_new(seen, key, u)) return SB_ENOMEM;
    }
    if (json_is_null(u)) return 0;
    json_int_t n = json_integer_value(json_object_get(u, "count"));
    if (n < UNRUN_USERS_SHOWN &&
        json_array_append_new(json_object_get(u, "users"), json_string(who)))
        return SB_ENOMEM;
    return json_object_set_new(u, "count", json_integer(n + 1)) ? SB_ENOMEM : 0;
}

typedef struct unrun_walk {
    sb_engine *e;
    json_t *seen;
} unrun_walk;

/* use_fn: each use noted (unrun_note); SB_ENOMEM stops the walk. */
static int unrun_use(void *arg, MDB_txn *txn, uint32_t acct, const char *name, const char *queue)
{
    unrun_walk *w = arg;
    char who[SB_ID_MAX + 16];
    if (queue)
        snprintf(who, sizeof who, "queue '%s'", queue);
    else
        snprintf(who, sizeof who, "the retention setting");
    return unrun_note(txn, w->e, w->seen, acct, name, who);
}

/* The queues and retention settings, of every account, that name a policy
** stored but not to run (signatures required since it was stored, or
** another key's): their calls get the queue's fallback and their reviews
** fail. Naming one is refused (policy_must_have), but these were named
** before, so the operator who switched the requirement on hears of them:
** one line a policy and account, logged at sb_open and at each reload. */
void policies_report_unrun(sb_engine *e)
{
    if (!e->cfg.require_signed_policies) return;
    MDB_txn *txn;
    if (eng_read_begin(e, &txn)) {
        sb_log(e, SB_LOG_WARN, "could not check which queues' policies run: store unreadable");
        return;
    }
    json_t *seen = json_object();
    int rc = seen ? 0 : SB_ENOMEM;
    unrun_walk walk = {e, seen};
    /* (A store that cannot be read part way: what was read is reported.) */
    if (!rc && uses_walk(txn, e, ALL_ACCOUNTS, USE_ANY, unrun_use, &walk) == SB_ENOMEM)
        rc = SB_ENOMEM;
    const char *key;
    json_t *u;
    json_object_foreach(seen, key, u)
    {
        if (!json_is_object(u) || !json_object_get(u, "users")) continue;
        acct_rec ar;
        uint32_t acct = (uint32_t)json_integer_value(json_object_get(u, "acct"));
        const char *name = json_string_value(json_object_get(u, "name"));
        int own = json_is_true(json_object_get(u, "own"));
        if (st_account_load(txn, e, acct, &ar)) snprintf(ar.id, sizeof ar.id, "#%u", acct);
        char why[256], fix[SB_NAME_MAX + 128];
        unrun_why(why, sizeof why, own ? "the account's upload of it" : "the shared one",
                  json_string_value(json_object_get(u, "version")),
                  (int)json_integer_value(json_object_get(u, "verdict")));
        unrun_fix(fix, sizeof fix, name, own);
        sb_buf users = {0};
        json_t *shown = json_object_get(u, "users"), *w;
        size_t i;
        json_array_foreach(shown, i, w)
            buf_printf(&users, "%s%s", i ? ", " : "", json_string_value(w));
        json_int_t n = json_integer_value(json_object_get(u, "count"));
        if (n > UNRUN_USERS_SHOWN)
            buf_printf(&users, " and %lld more", (long long)(n - UNRUN_USERS_SHOWN));
        sb_log(e, SB_LOG_ERROR,
               "policy '%s' of account '%s' does not run: require_signed_policies is on, and %s; "
               "named by %s, which get%s the fallback meanwhile (a queue's calls its fallback "
               "decision, a retention setting's reviews fail); %s, or move %s to another policy",
               name, ar.id, why, users.p ? users.p : "", n == 1 ? "s" : "", fix,
               n == 1 ? "it" : "them");
        buf_free(&users);
    }
    eng_read_end(e, txn);
    json_decref(seen);
    if (rc) sb_log(e, SB_LOG_WARN, "could not check which queues' policies run: out of memory");
}

/* A quarantined policy stays so "until it is reloaded" (policies/README.md):
** an operator's reload lifts every quarantine in every engine on the data
** directory, also when no file changed (the policy may have failed for a
** reason outside its file: agents, their documents, its store). */
int sb_reload(sb_engine *e, sb_result *res)
{
    res_reset(res);
    if (!e) return res_err(res, SB_EINVAL, NULL, "no engine");
    if (!e->policy_dir)
        return res_err(res, SB_EINVAL, "policy_dir", "no policy directory configured");
    int changed = 0;
    json_t *warnings, *changes;
    int rc = reload_dir(e, res, &changed, &warnings, 1, &changes);
    /* The caller has the outcome in res and says it (the daemon's one log
    ** line a reload): the engine's own lines are for debugging. */
    /* A reload fixes no upload, and one that failed leaves what does not
    ** run as it was: said again after either, as at sb_open. */
    policies_report_unrun(e);
    if (rc) {
        sb_log(e, SB_LOG_DEBUG, "policy reload failed, nothing changed: %s",
               sb_result_message(res));
        return rc;
    }
    pthread_mutex_lock(&e->stats_mu);
    e->st.reloads++;
    pthread_mutex_unlock(&e->stats_mu);
    sb_log(e, SB_LOG_DEBUG, "policies reloaded from %s: " OWN_D " changed", e->policy_dir, changed);
    json_t *doc = json_pack("{s:i}", "changed", changed);
    if (doc && json_array_size(warnings)) json_object_set(doc, "warnings", warnings);
    if (doc && json_array_size(changes)) json_object_set(doc, "policies", changes);
    json_decref(warnings);
    json_decref(changes);
    res_doc(res, doc);
    return 0;
}
