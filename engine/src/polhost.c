/*
** polhost.c — pol_host: the account states, their policy files, failure
** counting and quarantine.
**
** Each account gets one sandboxed state, built on first use; each policy
** file is fetched (pol_source_fn) and loaded into it on first use, and kept
** with its version. When the account's policy generation changes, or on a
** flush, the state is thrown away and rebuilt lazily. A flush (a reload)
** lifts every quarantine; a new generation (an upload or a delete) only that
** of the policy uploaded or deleted: the others keep their failures while
** their source is the one stored then. Failures are counted per (account, policy): after
** quarantine_after in a row the policy is quarantined and route returns
** failed=1 without running Lua.
*/
#include "crypto.h"
#include "sandbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct polfile {
    struct polfile *next;
    char name[SB_NAME_MAX + 1];
    char version[17];
    int64_t stamp;     /* when the source was stored (pol_source_fn) */
    int refs[3];       /* route, retain, erase */
    char *error;       /* why it failed to load (kept until the state is rebuilt) */
    int transient;     /* the error may go away: retry on next use */
    int missing;       /* there is no such policy (a queue's default, longest-idle, without it) */
    uint32_t failures; /* consecutive */
    uint64_t calls;
    int quarantined;
    int stale;                   /* from a state rebuilt since: fetched again at its next use */
    char account[SB_ID_MAX + 1]; /* the account's id, for the log line of a quarantine's end */
} polfile;

typedef struct acct {
    uint32_t id;
    uint64_t gen;
    int have_gen;
    sbx *sb;
    polfile *files;
} acct;

struct pol_host {
    pol_limits lim;
    pol_source_fn src;
    void *src_arg;
    pol_log_fn log;
    void *log_arg;
    acct **slot; /* open addressing on the account number */
    size_t cap, n;
    uint64_t failures;
    int stale; /* flushed: every state is thrown away before the next use */
};

static size_t slot_of(const pol_host *h, uint32_t id)
{
    return (size_t)((id * 0x9E3779B1u) >> 7) & (h->cap - 1);
}

static acct *acct_find(const pol_host *h, uint32_t id)
{
    if (!h->cap) return NULL;
    for (size_t i = slot_of(h, id);; i = (i + 1) & (h->cap - 1)) {
        if (!h->slot[i]) return NULL;
        if (h->slot[i]->id == id) return h->slot[i];
    }
}

static int grow(pol_host *h)
{
    size_t cap = h->cap ? h->cap * 2 : 64;
    acct **s = calloc(cap, sizeof *s);
    if (!s) return -1;
    acct **old = h->slot;
    size_t ocap = h->cap;
    h->slot = s;
    h->cap = cap;
    for (size_t i = 0; i < ocap; i++) {
        if (!old[i]) continue;
        size_t j = slot_of(h, old[i]->id);
        while (s[j])
            j = (j + 1) & (cap - 1);
        s[j] = old[i];
    }
    free(old);
    return 0;
}

static acct *acct_get(pol_host *h, uint32_t id)
{
    acct *a = acct_find(h, id);
    if (a) return a;
    if ((h->n + 1) * 4 > h->cap * 3 && grow(h)) return NULL;
    a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->id = id;
    size_t i = slot_of(h, id);
    while (h->slot[i])
        i = (i + 1) & (h->cap - 1);
    h->slot[i] = a;
    h->n++;
    return a;
}

__attribute__((format(printf, 3, 4))) static void hlog(pol_host *h, sb_log_level lvl,
                                                       const char *fmt, ...);

/* The policy starts afresh: no failures; a quarantine it was in ends, said
** in the log (as its start was) with why. */
static void lift(pol_host *h, polfile *f, const char *why)
{
    if (f->quarantined)
        hlog(h, SB_LOG_WARN, "policy quarantine lifted: account=%s policy=%s version=%s: %s",
             f->account[0] ? f->account : "-", f->name, f->version[0] ? f->version : "-", why);
    f->failures = 0;
    f->quarantined = 0;
}

/* Throw away the account's state and loaded files (rebuilt lazily). */
static void acct_reset(acct *a)
{
    polfile *f = a->files;
    while (f) {
        polfile *next = f->next;
        free(f->error);
        free(f);
        f = next;
    }
    a->files = NULL;
    sbx_free(a->sb); /* drops every reference with it */
    a->sb = NULL;
}

/* The account's policies changed (an upload or a delete, of any name): its
** state is rebuilt, but a policy that was failing keeps its count and its
** quarantine while the same source (version and time stored) is what it
** runs. Only what was uploaded or deleted starts afresh, as a reload lifts
** every quarantine (acct_reset). */
static void acct_rebuild(pol_host *h, acct *a)
{
    polfile **pp = &a->files;
    while (*pp) {
        polfile *f = *pp;
        if ((f->failures || f->quarantined) && !f->error && !f->missing && !f->transient) {
            f->refs[0] = f->refs[1] = f->refs[2] = LUA_NOREF;
            f->stale = 1;
            pp = &f->next;
            continue;
        }
        /* One that failed to load is read and loaded anew. */
        lift(h, f, "the account's policies changed: it is loaded again");
        *pp = f->next;
        free(f->error);
        free(f);
    }
    sbx_free(a->sb); /* drops every reference with it */
    a->sb = NULL;
}

static void acct_remove(pol_host *h, uint32_t id)
{
    if (!h->cap) return;
    size_t i = slot_of(h, id);
    for (;; i = (i + 1) & (h->cap - 1)) {
        if (!h->slot[i]) return;
        if (h->slot[i]->id == id) break;
    }
    acct_reset(h->slot[i]);
    free(h->slot[i]);
    h->slot[i] = NULL;
    h->n--;
    /* Backward-shift the cluster that followed. */
    for (size_t j = (i + 1) & (h->cap - 1); h->slot[j]; j = (j + 1) & (h->cap - 1)) {
        size_t home = slot_of(h, h->slot[j]->id);
        int movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            h->slot[i] = h->slot[j];
            h->slot[j] = NULL;
            i = j;
        }
    }
}

pol_host *pol_host_new(const pol_limits *lim, pol_source_fn src, void *src_arg, pol_log_fn log,
                       void *log_arg)
{
    pol_host *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    /* Limits of 0 mean no limit (budgets off); quarantine_after 0: never. */
    if (lim) h->lim = *lim;
    if (!h->lim.load_instructions)
        h->lim.load_instructions = sbx_load_instructions(h->lim.instructions);
    h->src = src;
    h->src_arg = src_arg;
    h->log = log;
    h->log_arg = log_arg;
    return h;
}

void pol_host_free(pol_host *h)
{
    if (!h) return;
    for (size_t i = 0; i < h->cap; i++)
        if (h->slot[i]) {
            acct_reset(h->slot[i]);
            free(h->slot[i]);
        }
    free(h->slot);
    free(h);
}

/* A flush only marks the states (closing a thousand of them takes about a
** tenth of a second, and a reload should not hold the write lock for it):
** they go here, at the host's next use. Until then they count for nothing
** but their memory: no quarantine, no status. */
static void host_fresh(pol_host *h)
{
    if (!h->stale) return;
    h->stale = 0;
    for (size_t i = 0; i < h->cap; i++) {
        if (!h->slot[i]) continue;
        for (polfile *f = h->slot[i]->files; f; f = f->next)
            lift(h, f, "the policies were reloaded");
        acct_reset(h->slot[i]);
    }
}

void pol_host_sync_gen(pol_host *h, uint32_t acct_id, uint64_t gen)
{
    host_fresh(h);
    acct *a = acct_get(h, acct_id);
    if (!a) return;
    if (a->have_gen && a->gen != gen) acct_rebuild(h, a);
    a->gen = gen;
    a->have_gen = 1;
}

int pol_host_gen(pol_host *h, uint32_t acct_id, uint64_t *gen)
{
    acct *a = h->stale ? NULL : acct_find(h, acct_id);
    if (!a || !a->have_gen) return 0;
    *gen = a->gen;
    return 1;
}

void pol_host_lift(pol_host *h, uint32_t acct_id, const char *name)
{
    acct *a = h->stale ? NULL : acct_find(h, acct_id);
    for (polfile *f = a ? a->files : NULL; f; f = f->next)
        if (!strcmp(f->name, name) && f->stale) lift(h, f, "it was uploaded or deleted");
}

void pol_host_flush(pol_host *h)
{
    h->stale = 1;
}

void pol_host_drop(pol_host *h, uint32_t acct_id)
{
    acct_remove(h, acct_id);
}

int pol_host_prune(pol_host *h, int (*keep)(void *arg, uint32_t acct_id), void *arg)
{
    if (!h->n) return 0;
    uint32_t *gone = malloc(h->n * sizeof *gone);
    if (!gone) return SB_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < h->cap; i++)
        if (h->slot[i] && !keep(arg, h->slot[i]->id)) gone[n++] = h->slot[i]->id;
    for (size_t i = 0; i < n; i++) /* apart: a removal moves the others */
        acct_remove(h, gone[i]);
    free(gone);
    return 0;
}

__attribute__((format(printf, 3, 4))) static void hlog(pol_host *h, sb_log_level lvl,
                                                       const char *fmt, ...)
{
    if (!h->log) return;
    log_text line;
    logt_init(&line);
    va_list ap;
    va_start(ap, fmt);
    logt_vadd(&line, fmt, ap);
    va_end(ap);
    for (char *p = line.s; *p; p++) /* in place: the spans stay where they are */
        if ((unsigned char)*p < 0x20) *p = ' ';
    h->log(h->log_arg, lvl, &line);
}

static char *dupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dupf(const char *fmt, ...)
{
    char tmp[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    return strdup(tmp);
}

/* Fetch and load `name` into the account's state (on first use); f is its
** entry when the account has one already (enter looked it up). */
static polfile *file_get(pol_host *h, acct *a, polfile *f, const char *name, int64_t now_ms)
{
    if (f && !f->transient && !f->stale) return f;
    if (!f) {
        f = calloc(1, sizeof *f);
        if (!f) return NULL;
        memcpy(f->name, name, strlen(name) + 1);
        f->refs[0] = f->refs[1] = f->refs[2] = LUA_NOREF;
        f->next = a->files;
        a->files = f;
    }
    free(f->error);
    f->error = NULL;
    f->transient = 0;

    sb_buf src = {0};
    char ver[17] = "";
    int64_t stamp = 0;
    int rc = h->src ? h->src(h->src_arg, a->id, name, &src, ver, &stamp) : SB_ENOTFOUND;
    if (f->stale) { /* still the source that failed? Then it keeps its count */
        char v[17] = "";
        if (!rc && !ver[0]) cr_version(src.p ? src.p : "", src.len, v);
        /* Gone or changed: afresh. A read that failed (unavailable for now,
        ** below) tells neither: it keeps its count and is asked again. */
        if (rc == SB_ENOTFOUND)
            lift(h, f, "it was deleted");
        else if ((!rc || rc == SB_EPOLICY) &&
                 (strcmp(ver[0] ? ver : v, f->version) || stamp != f->stamp))
            lift(h, f, "its source changed");
        if (!rc || rc == SB_ENOTFOUND || rc == SB_EPOLICY) f->stale = 0;
    }
    f->missing = rc == SB_ENOTFOUND;
    if (rc == SB_ENOTFOUND) {
        f->error = dupf("%s.lua: policy '%s' not found", name, name);
    } else if (rc == SB_EPOLICY) {
        /* Stored, but not to run: it stays so until another source is
        ** stored (a new generation, or a reload, rebuilds the state). Said as
        ** such, not as a source unavailable for now and fetched again at
        ** every call. */
        memcpy(f->version, ver, sizeof f->version);
        f->version[16] = 0;
        f->stamp = stamp;
        f->error = dupf("%s.lua: not run: require_signed_policies is on, and version %s is "
                        "unsigned or its signature does not verify with policy_public_key "
                        "(upload a signed version, or sign the policy directory's file and "
                        "reload)",
                        name, f->version[0] ? f->version : "-");
    } else if (rc) {
        f->error = dupf("%s.lua: policy source unavailable (%s)", name, sb_code_name(rc));
        f->transient = 1;
    } else {
        if (!ver[0]) cr_version(src.p ? src.p : "", src.len, ver);
        memcpy(f->version, ver, sizeof f->version);
        f->version[16] = 0;
        f->stamp = stamp;
        char err[512];
        a->sb->now_ms = now_ms;
        /* A quarantined one is not loaded: its hooks never run. */
        if (!f->quarantined &&
            sbx_load(a->sb, name, src.p ? src.p : "", src.len, h->lim.load_instructions,
                     sbx_load_wall(h->lim.wall_ms), f->refs, NULL, err, sizeof err))
            f->error = strdup(err);
    }
    buf_free(&src);
    if (rc != 0 && rc != SB_ENOTFOUND && !f->error) f->transient = 1;
    return f;
}

static void drop_docs(pol_cand *cands, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (cands[i].doc) {
            json_decref(cands[i].doc);
            cands[i].doc = NULL;
        }
}

/* The start of every hook call: the account's state (built on first use)
** and the policy file (loaded on first use). NULL with *why (and *rc for
** out of memory) when there is neither. */
static polfile *enter(pol_host *h, uint32_t acct_id, const char *account_id, const char *policy,
                      int64_t now_ms, acct **pa, const char **why, int *rc)
{
    *why = NULL;
    *rc = 0;
    if (!policy) {
        *why = "invalid policy name";
        return NULL;
    }
    host_fresh(h);
    acct *a = *pa = acct_get(h, acct_id);
    if (!a) {
        *why = "out of memory";
        *rc = SB_ENOMEM;
        return NULL;
    }
    /* A name already loaded was valid; only new names are checked (a sweep
    ** asks for the same retention policy for every record). */
    polfile *known = a->files;
    while (known && strcmp(known->name, policy) != 0)
        known = known->next;
    if (!known && !policy_name_valid(policy)) {
        *why = "invalid policy name";
        return NULL;
    }
    if (!a->sb && !(a->sb = sbx_new(h->lim.memory, h->log, h->log_arg))) {
        *why = "cannot create the policy state (out of memory)";
        *rc = SB_ENOMEM;
        return NULL;
    }
    a->sb->account = account_id; /* lines the file's top level logs name the account */
    polfile *f = file_get(h, a, known, policy, now_ms);
    a->sb->account = NULL;
    if (!f) {
        *why = "out of memory";
        *rc = SB_ENOMEM;
    }
    return f;
}

/* What a quarantined policy's calls fail with: why, and the way out. */
static void quarantine_error(char *out, size_t cap, const polfile *f)
{
    snprintf(out, cap,
             "policy quarantined after %u consecutive failures (it runs again once a fixed "
             "version is uploaded or policies are reloaded: SIGHUP, sb_reload)",
             f->failures);
}

/* The end of every hook call that ran (or would have): count, log, and
** quarantine after quarantine_after failures in a row. what: the call or
** record it ran for, as the log line names it ("call", "record"), id its
** id (NULL: none). */
static void settle(pol_host *h, acct *a, polfile *f, const char *account_id, int failed,
                   const char *error, const char *what, const char *id)
{
    if (!failed) {
        f->failures = 0;
        return;
    }
    f->failures++;
    h->failures++;
    if (f->missing) {
        /* Nothing runs, so nothing to quarantine: said once, its calls get
        ** the fallback until it is uploaded (or the files reloaded). */
        if (f->failures == 1)
            hlog(h, SB_LOG_WARN,
                 "policy not found: account=%s policy=%s: its calls get the queue's fallback "
                 "until it is uploaded, or put in the policy directory and reloaded",
                 account_id ? account_id : "-", f->name);
        return;
    }
    hlog(h, SB_LOG_WARN, "policy failure: account=%s policy=%s version=%s %s=%s: %s",
         account_id ? account_id : "-", f->name, f->version[0] ? f->version : "-", what,
         id && *id ? id : "-", error);
    if (h->lim.quarantine_after && f->failures >= h->lim.quarantine_after) {
        f->quarantined = 1;
        snprintf(f->account, sizeof f->account, "%s", account_id ? account_id : "");
        /* What stands in for its hooks, said before they go. */
        int routes = f->refs[0] != LUA_NOREF,
            retains = f->refs[1] != LUA_NOREF || f->refs[2] != LUA_NOREF;
        /* Its hooks never run again: drop them, and with them whatever the
        ** file holds in its globals and upvalues (the account's other
        ** policies share the state's memory). */
        for (int i = 0; i < 3; i++) {
            sbx_unref(a->sb, f->refs[i]);
            f->refs[i] = LUA_NOREF;
        }
        sbx_collect(a->sb);
        hlog(h, SB_LOG_ERROR,
             "policy quarantined: account=%s policy=%s version=%s after " OWN_U
             " consecutive failures; "
             "%s%s%s until a fixed version is uploaded or the policies are reloaded",
             account_id ? account_id : "-", f->name, f->version[0] ? f->version : "-", f->failures,
             routes || !retains ? "calls get the queue's fallback" : "",
             routes && retains ? " and " : "",
             retains ? "records it reviews are kept and retried a day later" : "");
    }
}

int pol_route(pol_host *h, uint32_t acct_id, const char *account_id, const char *policy,
              const pol_call *call, pol_cand *cands, size_t ncands, const pol_queue *q,
              const pol_kv *kv, int64_t now_ms, uint64_t seed, pol_decision *out)
{
    pol_decision_clear(out);
    str_copy(out->policy, sizeof out->policy, policy ? policy : "");
    acct *a = NULL;
    const char *why;
    int rc;
    polfile *f = enter(h, acct_id, account_id, policy, now_ms, &a, &why, &rc);
    if (!f) {
        drop_docs(cands, ncands);
        out->failed = 1;
        snprintf(out->error, sizeof out->error, "%s", why);
        hlog(h, SB_LOG_ERROR, "policy failure: account=%s policy=%s call=%s: %s",
             account_id ? account_id : "-", policy ? policy : "-",
             call && call->id && *call->id ? call->id : "-", why);
        return rc;
    }
    memcpy(out->version, f->version, sizeof out->version);
    f->calls++;
    if (f->quarantined) {
        out->failed = 1;
        quarantine_error(out->error, sizeof out->error, f);
        drop_docs(cands, ncands);
        return 0;
    }
    if (f->error || f->refs[0] == LUA_NOREF) {
        out->failed = 1;
        if (f->error)
            snprintf(out->error, sizeof out->error, "%s", f->error);
        else
            snprintf(out->error, sizeof out->error, "%s.lua: the policy has no 'route' hook",
                     f->name);
        drop_docs(cands, ncands);
    } else {
        a->sb->account = account_id;
        views_route(a->sb, f->name, f->refs[0], call, cands, ncands, q, kv, now_ms, seed,
                    h->lim.instructions, h->lim.wall_ms, out);
        a->sb->account = NULL;
    }
    settle(h, a, f, account_id, out->failed, out->error, "call", call ? call->id : NULL);
    return 0;
}

/* retain (req NULL) or erase. */
static int retention(pol_host *h, uint32_t acct_id, const char *account_id, const char *policy,
                     const pol_record *rec, const pol_erasure *req, int64_t now_ms,
                     pol_retention *out)
{
    out->action = RET_NONE;
    out->review_ms = 0;
    out->reason[0] = 0;
    out->failed = 0;
    out->error[0] = 0;
    out->version[0] = 0;
    str_copy(out->policy, sizeof out->policy, policy ? policy : "");
    acct *a = NULL;
    const char *why;
    int rc;
    polfile *f = enter(h, acct_id, account_id, policy, now_ms, &a, &why, &rc);
    if (!f) {
        out->failed = 1;
        snprintf(out->error, sizeof out->error, "%s", why);
        hlog(h, SB_LOG_ERROR, "policy failure: account=%s policy=%s record=%s: %s",
             account_id ? account_id : "-", policy ? policy : "-",
             rec && rec->id && *rec->id ? rec->id : "-", why);
        return rc;
    }
    memcpy(out->version, f->version, sizeof out->version);
    if (f->quarantined) {
        out->failed = 1;
        quarantine_error(out->error, sizeof out->error, f);
        return 0;
    }
    int ref = f->refs[req ? 2 : 1];
    if (!f->error && ref == LUA_NOREF) return 0; /* no such hook: RET_NONE, not a failure */
    f->calls++;
    if (f->error) {
        out->failed = 1;
        snprintf(out->error, sizeof out->error, "%s", f->error);
    } else {
        a->sb->account = account_id;
        views_retain(a->sb, f->name, ref, rec, req, now_ms, h->lim.instructions, h->lim.wall_ms,
                     out);
        a->sb->account = NULL;
    }
    settle(h, a, f, account_id, out->failed, out->error, "record", rec ? rec->id : NULL);
    return 0;
}

int pol_retain(pol_host *h, uint32_t acct_id, const char *account_id, const char *policy,
               const pol_record *rec, int64_t now_ms, pol_retention *out)
{
    return retention(h, acct_id, account_id, policy, rec, NULL, now_ms, out);
}

int pol_erase(pol_host *h, uint32_t acct_id, const char *account_id, const char *policy,
              const pol_record *rec, const pol_erasure *req, int64_t now_ms, pol_retention *out)
{
    static const pol_erasure none = {"caller", 0};
    return retention(h, acct_id, account_id, policy, rec, req ? req : &none, now_ms, out);
}

static int by_name(const void *a, const void *b)
{
    const polfile *x = *(polfile *const *)a, *y = *(polfile *const *)b;
    return strcmp(x->name, y->name);
}

json_t *pol_host_status(pol_host *h, uint32_t acct_id)
{
    json_t *arr = json_array();
    acct *a = h->stale ? NULL : acct_find(h, acct_id);
    if (!arr || !a) return arr;
    size_t n = 0;
    for (polfile *f = a->files; f; f = f->next)
        n++;
    polfile **v = n ? malloc(n * sizeof *v) : NULL;
    if (n && !v) return arr;
    n = 0;
    for (polfile *f = a->files; f; f = f->next)
        v[n++] = f;
    if (n) qsort(v, n, sizeof *v, by_name);
    for (size_t i = 0; i < n; i++) {
        polfile *f = v[i];
        json_t *o = json_object();
        if (!o) break;
        json_object_set_new(o, "name", json_string(f->name));
        json_object_set_new(o, "version", json_string(f->version));
        json_object_set_new(o, "state", json_string(f->quarantined ? "quarantined" : "ok"));
        json_object_set_new(o, "failures", json_integer((json_int_t)f->failures));
        json_object_set_new(o, "calls", json_integer((json_int_t)f->calls));
        /* A load error quotes the script's own message: any bytes, maybe
        ** cut inside a character. */
        if (f->error) json_object_set_new(o, "error", json_string_clean(f->error));
        json_array_append_new(arr, o);
    }
    free(v);
    return arr;
}

void pol_host_totals(pol_host *h, uint64_t *failures, uint64_t *quarantined, size_t *memory)
{
    uint64_t q = 0;
    size_t mem = 0;
    for (size_t i = 0; i < h->cap; i++) {
        acct *a = h->slot[i];
        if (!a) continue;
        if (a->sb) mem += a->sb->mem; /* held until the states go, stale or not */
        for (polfile *f = h->stale ? NULL : a->files; f; f = f->next)
            q += f->quarantined != 0;
    }
    if (failures) *failures = h->failures;
    if (quarantined) *quarantined = q;
    if (memory) *memory = mem;
}
