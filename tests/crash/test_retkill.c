/*
** test_retkill.c — retention work killed, starved of space and run twice at
** once, as an operator meets it. Every kill point is chosen by counting the
** engine's commits (LMDB's mdb_txn_commit is interposed), never by time:
**
**   kills   a sweep that anonymizes and deletes, a sweep carrying out a
**           rescan after the retention policy changed, an erasure request
**           over more records than one batch, and the purge of a deleted
**           account, each killed again and again (just before a commit and
**           just after one) until a run finishes. After every kill: the
**           daily aggregates are unchanged, each record is either there or
**           audited as gone (never both, never audited twice), audit
**           sequence numbers run without a gap, and no phone number is in
**           the clear in any file of the data directory. The run that
**           finishes covers the whole work: its counts add up with what the
**           killed runs committed, and a further run finds nothing to do.
**   full    a map that cannot grow (map_max): a sweep, an erasure and a
**           hold placement either complete, in the reserve past map_max
**           that what deletes records may use, or fail with SB_EFULL and
**           change nothing (the sweep and the erasure complete: that is how
**           a full map makes room); once space is freed the same operations
**           complete with the right counts.
**   two     two processes on one data directory, interleaved at chosen
**           points through pipes: a sweep beside another sweep, beside an
**           erasure, beside live calls from the other process. Each record
**           is handled once (one audit entry), no audit entry is lost, and
**           the counts the two report add up to the records handled.
*/
#include "engine.h"
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"
#define RECKIT_MAP_SIZE (8 << 20)
#include "reckit.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>

#define DAY 86400000LL

/* --- the kill hook --------------------------------------------------------- */

/* In a child: kill this process at its kill_at-th commit, before it (the
** transaction's work done but not committed) or after it. */
static long commits, kill_at;
static int kill_after;

int mdb_txn_commit(MDB_txn *txn)
{
    static int (*real)(MDB_txn *);
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "mdb_txn_commit");
    if (kill_at && ++commits == kill_at && !kill_after) raise(SIGKILL);
    int rc = real(txn);
    if (kill_at && commits == kill_at && kill_after) raise(SIGKILL);
    return rc;
}

/* --- the data ------------------------------------------------------------- */

static const char mix_policy[] =
    "local P = {}\n"
    "function P.retain(r, ctx)\n"
    "  if r.age_days < 30 then\n"
    "    return { keep = true, review_in_days = 30 - r.age_days, reason = 'recent' }\n"
    "  end\n"
    "  if r.outcome == 'abandoned' then return { delete = true, reason = 'abandoned' } end\n"
    "  return { anonymize = true, review_in_days = 3650, reason = 'old' }\n"
    "end\n"
    "function P.erase(r, req, ctx) return { delete = true, reason = 'erasure' } end\n"
    "return P\n";

static const char drop_policy[] = "local P = {}\n"
                                  "function P.retain(r, ctx)\n"
                                  "  return { delete = true, reason = 'dropped' }\n"
                                  "end\n"
                                  "return P\n";

#define ERASED "+442079460001" /* the number of the erasure requests */
#define N_OTHER 300            /* calls from other numbers: +4420794610NNN */
#define N_ERASED 1100          /* calls from ERASED: more than two erasure batches */

static void provision(const char *acct, const char *retention)
{
    char json[256];
    snprintf(json, sizeof json, "{\"id\":\"%s\"}", acct);
    sb_account_put(eng, json, strlen(json), res);
    test_put(eng, res, sb_agent_put, acct,
             "{\"id\":\"a1\",\"devices\":{\"softphone\":\"sip:a1@pbx.example\"},"
             "\"status\":\"available\"}");
    test_put(eng, res, sb_queue_put, acct,
             "{\"id\":\"support\",\"policy\":\"longest-idle\",\"members\":[{\"agent\":\"a1\"}]}");
    sb_policy_put(eng, acct, "mix", mix_policy, strlen(mix_policy), NULL, res);
    sb_policy_put(eng, acct, "drop", drop_policy, strlen(drop_policy), NULL, res);
    snprintf(json, sizeof json, "{\"id\":\"%s\",\"retention\":\"%s\"}", acct, retention);
    if (sb_account_put(eng, json, strlen(json), res))
        diag("account %s: %s", acct, sb_result_message(res));
}

/* n calls of the account from number (NULL: one number each), ids
** prefix0...; every third abandoned. The failures. */
static int calls(const char *acct, const char *prefix, const char *number, int n)
{
    int errors = 0;
    for (int i = 0; i < n; i++) {
        char json[256], num[32];
        snprintf(num, sizeof num, "+4420794610%03d", i);
        snprintf(json, sizeof json,
                 "{\"type\":\"offer\",\"call\":\"%s%d\",\"queue\":\"support\",\"caller\":\"%s\"}",
                 prefix, i, number ? number : num);
        if (ev(acct, json)) {
            errors++;
            continue;
        }
        now_ms += 2000;
        char id[32];
        snprintf(id, sizeof id, "%s%d", prefix, i);
        errors += finish(acct, id, i % 3 == 0 ? NULL : "a1") != 0;
    }
    return errors;
}

/* A fresh data directory with the account "acme": N_OTHER calls from other
** numbers, then N_ERASED from ERASED. Leaves the engine closed. */
static int build(const char *retention)
{
    rmtree(dir);
    eng = open_engine();
    if (!eng) return -1;
    provision("acme", retention);
    int errors = calls("acme", "o", NULL, N_OTHER) + calls("acme", "e", ERASED, N_ERASED);
    sb_close(eng);
    eng = NULL;
    return errors;
}

/* --- what is checked after each kill --------------------------------------- */

static char *aggregates(const char *acct)
{
    if (sb_aggregates(eng, acct, NULL, 0, 0, res)) return strdup("?");
    return strdup(sb_result_json(res, NULL));
}

typedef struct state {
    int records, anonymized; /* records left, of them anonymized */
    int gone, anon_audits;   /* audited deletions, anonymizations */
    int dup;                 /* calls whose record was audited gone or anonymized twice */
    int gone_but_there;      /* audited deleted, record still there */
    int anon_mismatch;       /* anonymized records vs audited anonymizations */
    int seq_gap;             /* audit sequence numbers not 1, 2, 3... */
    int by_source[5];        /* deletions + anonymizations: write review erasure hold */
    long long audit_n;
} state;

static const char *src_list[] = {"", "write", "review", "erasure", "hold"};

static int state_of(const char *acct, state *s)
{
    memset(s, 0, sizeof *s);
    static const char q[] = "{\"limit\":10000}";
    json_t *l = doc(sb_records_list(eng, acct, q, strlen(q), res));
    /* The whole audit log, page by page. */
    json_t *a = json_pack("{s:[]}", "entries");
    for (uint64_t after = 0;;) {
        json_t *page = doc(sb_audit_list(eng, acct, after, 1000, res));
        json_t *es = json_object_get(page, "entries");
        if (!page || json_array_size(es) == 0) {
            if (!page) json_decref(a), a = NULL;
            json_decref(page);
            break;
        }
        json_array_extend(json_object_get(a, "entries"), es);
        after = (uint64_t)jint(page, "next");
        json_decref(page);
    }
    if (!l || !a) {
        json_decref(l);
        json_decref(a);
        return -1;
    }
    json_t *there = json_object(), *seen = json_object(), *v;
    size_t i;
    json_array_foreach(json_object_get(l, "records"), i, v)
    {
        json_object_set_new(there, jstr(v, "id"), json_true());
        s->records++;
        s->anonymized += json_is_true(json_object_get(v, "anonymized"));
    }
    json_array_foreach(json_object_get(a, "entries"), i, v)
    {
        s->audit_n++;
        if (jint(v, "seq") != (long long)i + 1) s->seq_gap++;
        const char *act = jstr(v, "action");
        int del = !strcmp(act, "delete"), anon = !strcmp(act, "anonymize");
        if (!del && !anon) continue;
        if (json_is_true(json_object_get(v, "overridden"))) continue;
        for (int k = 1; k < 5; k++)
            if (!strcmp(jstr(v, "source"), src_list[k])) s->by_source[k]++;
        char key[128];
        snprintf(key, sizeof key, "%s/%s", act, jstr(v, "call"));
        if (json_object_get(seen, key)) s->dup++;
        json_object_set_new(seen, key, json_true());
        if (del) {
            s->gone++;
            if (json_object_get(there, jstr(v, "call"))) s->gone_but_there++;
        } else {
            s->anon_audits++;
        }
    }
    /* Anonymized records deleted later have both entries. */
    int anon_then_gone = 0;
    const char *k;
    json_object_foreach(seen, k, v)
    {
        if (strncmp(k, "anonymize/", 10)) continue;
        char key[128];
        snprintf(key, sizeof key, "delete/%s", k + 10);
        anon_then_gone += json_object_get(seen, key) != NULL;
    }
    s->anon_mismatch = s->anonymized != s->anon_audits - anon_then_gone;
    json_decref(there);
    json_decref(seen);
    json_decref(l);
    json_decref(a);
    return 0;
}

/* Whether any file of the data directory holds one of the numbers in the
** clear (their digits, with or without the +). */
static int plaintext_numbers(void)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *de;
    int found = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t n;
        unsigned char *b = slurp(path, &n);
        if (!b) continue;
        static const char *needles[] = {"2079460001", "20794610"};
        for (size_t j = 0; j < 2; j++)
            if (memmem(b, n, needles[j], strlen(needles[j]))) found++;
        free(b);
    }
    closedir(d);
    return found;
}

/* One check after a kill (or at the end): the problems found, as text. */
static int consistent(const char *acct, const char *aggr_before, int total, char *why, size_t cap)
{
    state s;
    why[0] = 0;
    if (state_of(acct, &s)) {
        snprintf(why, cap, "cannot read the records or the audit log");
        return 0;
    }
    char *ag = aggregates(acct);
    int same = !strcmp(ag, aggr_before);
    free(ag);
    int plain = plaintext_numbers();
    if (!same) snprintf(why, cap, "aggregates changed");
    if (s.records + s.gone != total)
        snprintf(why, cap, "%d records left + %d audited deleted != %d", s.records, s.gone, total);
    if (s.dup) snprintf(why, cap, "%d records audited twice", s.dup);
    if (s.gone_but_there) snprintf(why, cap, "%d audited deleted but there", s.gone_but_there);
    if (s.anon_mismatch)
        snprintf(why, cap, "%d anonymized records, %d audited anonymizations", s.anonymized,
                 s.anon_audits);
    if (s.seq_gap) snprintf(why, cap, "audit sequence numbers with gaps (%d)", s.seq_gap);
    if (plain) snprintf(why, cap, "a number in the clear in the data directory (%d)", plain);
    return why[0] == 0;
}

/* --- children -------------------------------------------------------------- */

typedef int (*op_fn)(void *arg);

static char result_path[300];

/* Run op in a child on its own engine, killed at its kill_at-th commit
** (0: never). 1: killed; 0: finished (its result JSON in result_path);
** -1: anything else. */
static int child(op_fn op, void *arg, long at, int after)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        eng = open_engine();
        if (!eng) _exit(3);
        commits = 0;
        kill_at = at;
        kill_after = after;
        int rc = op(arg);
        kill_at = 0;
        if (rc) {
            fprintf(stderr, "op: %s\n", sb_result_message(res));
            _exit(4);
        }
        FILE *f = fopen(result_path, "w");
        if (f) {
            fputs(sb_result_json(res, NULL), f);
            fclose(f);
        }
        sb_close(eng);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) return 1;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
    diag("child: status %d", st);
    return -1;
}

static json_t *result(void)
{
    return json_load_file(result_path, 0, NULL);
}

static int op_sweep(void *arg)
{
    (void)arg;
    return sb_sweep(eng, 0, NULL, NULL, res);
}

static int op_erase(void *arg)
{
    (void)arg;
    return sb_erase(eng, "acme", ERASED, res);
}

/* Run op again and again, each run killed at a commit a little further on
** (just after its first, just before its second...) until one finishes;
** after each kill, the checks. The finishing run's result; *kills. */
static json_t *kill_until_done(const char *what, op_fn op, const char *acct,
                               const char *aggr_before, int total, int *kills)
{
    int bad = 0;
    char first[300] = "";
    *kills = 0;
    for (int round = 0; round < 400; round++) {
        /* after commit 1, before commit 2, after 2, before 3, again: each
        ** run commits at least one transaction before it dies */
        static const long ats[] = {1, 2, 2, 3};
        long at = ats[round % 4];
        int after = round % 2 == 0;
        int r = child(op, NULL, at, after);
        if (r < 0) {
            ok(0, "%s: the run in round %d neither finished nor was killed", what, round);
            return NULL;
        }
        if (r == 0) {
            ok(bad == 0,
               "%s: after each of %d kills nothing half-done was visible, aggregates "
               "unchanged, no number in the clear%s%s",
               what, *kills, bad ? ": " : "", first);
            return result();
        }
        ++*kills;
        if (getenv("SB_RETKILL_VERBOSE"))
            diag("%s: killed %s commit %ld", what, after ? "after" : "before", at);
        eng = open_engine();
        char why[300];
        if (acct && !consistent(acct, aggr_before, total, why, sizeof why) && !bad++)
            snprintf(first, sizeof first, "kill %d (%s commit %ld): %s", *kills,
                     after ? "after" : "before", at, why);
        if (!acct && plaintext_numbers() && !bad++)
            snprintf(first, sizeof first, "kill %d: a number in the clear", *kills);
        sb_close(eng);
        eng = NULL;
    }
    ok(0, "%s: no run finished in 400 rounds", what);
    return NULL;
}

/* --- kills ----------------------------------------------------------------- */

static const int TOTAL = N_OTHER + N_ERASED;
static const int ABANDONED = (N_OTHER + 2) / 3 + (N_ERASED + 2) / 3;

/* A finishing run's count: the whole run's when it carried on a killed one;
** nothing when the last kill came right after the run's last commit (the
** run was done, its report lost with the process). */
static int whole_or_nothing(json_t *r, const char *key, long long whole)
{
    if (!r) return 0;
    if (json_is_true(json_object_get(r, "resumed"))) return jint(r, key) == whole;
    return jint(r, key) == 0 && jint(r, "reviewed") == 0 && jint(r, "purged") == 0;
}

static void kill_sweep(void)
{
    ok(build("mix") == 0, "sweep: %d calls, every third abandoned", TOTAL);
    now_ms += 31 * DAY;
    eng = open_engine();
    char *ag = aggregates("acme");
    sb_close(eng);
    eng = NULL;
    int kills;
    json_t *r = kill_until_done("sweep", op_sweep, "acme", ag, TOTAL, &kills);
    ok(kills > 0, "sweep: killed %d times before a run finished", kills);
    ok(whole_or_nothing(r, "reviewed", TOTAL) && whole_or_nothing(r, "deleted", ABANDONED) &&
           whole_or_nothing(r, "anonymized", TOTAL - ABANDONED),
       "sweep: the finishing run carried on the killed ones and its totals cover the whole run "
       "(%lld reviewed, %lld deleted, %lld anonymized), or it found nothing left",
       jint(r, "reviewed"), jint(r, "deleted"), jint(r, "anonymized"));
    json_decref(r);
    eng = open_engine();
    state s;
    state_of("acme", &s);
    is_int(s.by_source[2], TOTAL, "sweep: one review decision audited per record, none twice");
    char why[300];
    ok(consistent("acme", ag, TOTAL, why, sizeof why), "sweep: consistent at the end %s", why);
    is_int(s.records, TOTAL - ABANDONED, "sweep: the anonymized records are left");
    is_int(swept("reviewed", NULL), 0, "sweep: a further sweep finds nothing due");
    sb_close(eng);
    eng = NULL;
    free(ag);
}

static void kill_rescan(void)
{
    ok(build("mix") == 0, "rescan: %d calls", TOTAL);
    now_ms += 1 * DAY;
    eng = open_engine();
    char *ag = aggregates("acme");
    /* A new retention policy: every record is reviewed again at once. */
    const char *acct = "{\"id\":\"acme\",\"retention\":\"drop\"}";
    ok(sb_account_put(eng, acct, strlen(acct), res) == 0, "rescan: the retention policy changed");
    sb_close(eng);
    eng = NULL;
    int kills;
    json_t *r = kill_until_done("rescan", op_sweep, "acme", ag, TOTAL, &kills);
    ok(kills > 0, "rescan: killed %d times before a run finished", kills);
    ok(whole_or_nothing(r, "deleted", TOTAL),
       "rescan: the finishing run's totals cover every record deleted (%lld), or it found "
       "nothing left",
       jint(r, "deleted"));
    json_decref(r);
    eng = open_engine();
    state s;
    state_of("acme", &s);
    is_int(s.records, 0, "rescan: no record is left");
    is_int(s.gone, TOTAL, "rescan: one deletion audited per record");
    is_int(swept("reviewed", NULL), 0, "rescan: a further sweep finds nothing due");
    sb_close(eng);
    eng = NULL;
    free(ag);
}

/* The records the account's erasure requests say they deleted, added up
** from their audit entries ("erasure request...: N deleted, ..."). */
static long long erasure_requests_deleted(void)
{
    json_t *a = doc(sb_audit_list(eng, "acme", 0, 100000, res));
    long long sum = 0;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(a, "entries"), i, v)
    {
        const char *why = jstr(v, "reason"), *p = strstr(why, " deleted,");
        if (strcmp(jstr(v, "action"), "erasure_request") || !p) continue;
        while (p > why && p[-1] >= '0' && p[-1] <= '9')
            p--;
        sum += atoll(p);
    }
    json_decref(a);
    return sum;
}

static void kill_erase(void)
{
    ok(build("mix") == 0, "erase: %d calls, %d of them from the number erased", TOTAL, N_ERASED);
    eng = open_engine();
    char *ag = aggregates("acme");
    sb_close(eng);
    eng = NULL;
    int kills;
    json_t *r = kill_until_done("erasure", op_erase, "acme", ag, TOTAL, &kills);
    ok(kills > 0, "erasure: killed %d times before a run finished", kills);
    long long last = jint(r, "deleted");
    json_decref(r);
    eng = open_engine();
    state s;
    state_of("acme", &s);
    is_int(s.by_source[3], N_ERASED,
           "erasure: one deletion audited per record of the number, none redone (the last "
           "run deleted %lld)",
           last);
    is_int(s.records, N_OTHER, "erasure: the other numbers' records are all there");
    json_t *x = doc(sb_records_export(eng, "acme", ERASED, SB_EXPORT_JSON, res));
    is_int(json_array_size(json_object_get(x, "records")), 0,
           "erasure: an access request finds nothing of the number");
    json_decref(x);
    x = doc(sb_erase(eng, "acme", ERASED, res));
    ok(x && jint(x, "deleted") == 0 && jint(x, "kept") == 0,
       "erasure: running it again finds nothing left");
    json_decref(x);
    /* Each killed request was finished when the directory next opened:
    ** its audit entry counts what it did before the kill too. */
    is_int(erasure_requests_deleted(), N_ERASED,
           "erasure: the requests' audit entries count each deleted record once");
    sb_close(eng);
    eng = NULL;
    free(ag);
}

/* An erasure request killed part way beside an engine that stays open, as a
** daemon does: that engine's next sweep finishes it (not the next sb_open
** alone), and its audit entry counts the whole request. */
static void sweep_finishes_erase(void)
{
    ok(build("mix") == 0, "erase beside an open engine: %d calls", TOTAL);
    eng = open_engine();
    ok(child(op_erase, NULL, 1, 1) == 1, "erase beside an open engine: killed after its first "
                                         "commit");
    json_t *x = doc(sb_records_export(eng, "acme", ERASED, SB_EXPORT_JSON, res));
    size_t left = json_array_size(json_object_get(x, "records"));
    json_decref(x);
    ok(left > 0 && left < N_ERASED, "... which left %zu of the number's %d records", left,
       N_ERASED);
    /* As a daemon sweeps: 1 ms a call, each going on with the request. */
    int calls = 0, swept = 0;
    size_t now_left = left;
    while (calls < 2000 && now_left > 0) {
        swept |= sb_sweep(eng, 1, NULL, NULL, res);
        calls++;
        x = doc(sb_records_export(eng, "acme", ERASED, SB_EXPORT_JSON, res));
        now_left = json_array_size(json_object_get(x, "records"));
        json_decref(x);
    }
    ok(swept == 0 && now_left == 0,
       "... the open engine's sweeps of 1 ms finished the request in %d calls: an access "
       "request finds nothing",
       calls);
    is_int(erasure_requests_deleted(), N_ERASED,
           "... its audit entry counts the whole request, the part before the kill too");
    sb_close(eng);
    eng = NULL;
}

static void kill_purge(void)
{
    ok(build("mix") == 0, "purge: %d calls", TOTAL);
    eng = open_engine();
    ok(sb_account_delete(eng, "acme", res) == 0, "purge: the account deleted");
    sb_close(eng);
    eng = NULL;
    int kills;
    json_t *r = kill_until_done("purge", op_sweep, NULL, NULL, TOTAL, &kills);
    ok(kills > 0, "purge: killed %d times before a run finished", kills);
    ok(whole_or_nothing(r, "purged", TOTAL),
       "purge: the finishing run's totals cover every record purged (%lld), or it found "
       "nothing left",
       jint(r, "purged"));
    json_decref(r);
    eng = open_engine();
    is_int(swept("purged", NULL), 0, "purge: a further sweep has nothing to purge");
    /* Nothing of the old account under its number in any table. */
    MDB_txn *txn;
    int left = 0;
    if (mdb_txn_begin(eng->env, NULL, MDB_RDONLY, &txn) == 0) {
        static const int tables[] = {DB_RECORDS, DB_RECID, DB_RIDX,     DB_RECIDT, DB_RIDXT,
                                     DB_AGGR,    DB_AUDIT, DB_ERASURES, DB_REVIEW};
        for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
            st_iter it;
            int here = 0;
            for (int rc = st_iter_open(&it, txn, eng, tables[i], "", 0); rc == 0;
                 rc = st_iter_next(&it))
                here++;
            st_iter_close(&it);
            if (here) diag("purge: %d keys left in table %d", here, tables[i]);
            left += here;
        }
        mdb_txn_abort(txn);
    }
    is_int(left, 0, "purge: no record, index, aggregate, audit or review entry is left");
    provision("acme", "mix");
    json_t *l = doc(sb_records_list(eng, "acme", NULL, 0, res));
    json_t *a = doc(sb_audit_list(eng, "acme", 0, 0, res));
    ok(json_array_size(json_object_get(l, "records")) == 0 &&
           json_array_size(json_object_get(a, "entries")) == 0,
       "purge: an account of the same name sees no record and no audit entry");
    json_decref(l);
    json_decref(a);
    sb_close(eng);
    eng = NULL;
}

/* --- a full map ------------------------------------------------------------ */

static sb_engine *open_small(size_t max)
{
    sb_config cfg;
    test_engine_config(&cfg, dir, "policies", 1 << 20);
    cfg.map_max = max;
    return test_open(&cfg, res);
}

/* Filler agents until a put fails: the code of the failure. */
static int fill(int *n)
{
    static char pad[4000];
    memset(pad, 'y', sizeof pad - 1);
    for (size_t size = sizeof pad - 1; size > 0; size /= 4) {
        for (;;) {
            char json[4300];
            snprintf(json, sizeof json,
                     "{\"id\":\"f%d\",\"devices\":{\"softphone\":\"sip:f@x\"},"
                     "\"preferences\":{\"pad\":\"%.*s\"}}",
                     *n, (int)size, pad);
            int rc = sb_agent_put(eng, "acme", json, strlen(json), res);
            if (rc) {
                if (size < 16) return rc;
                break;
            }
            ++*n;
        }
    }
    return SB_EFULL;
}

static void unfill(int n)
{
    for (int i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "f%d", i);
        sb_agent_delete(eng, "acme", id, res);
    }
}

static void full_map(void)
{
    rmtree(dir);
    size_t max = 4 << 20;
    eng = open_small(max);
    if (!ok(eng != NULL, "full: engine opened with map_max 4 MiB")) return;
    provision("acme", "mix");
    int errors = calls("acme", "o", NULL, 200) + calls("acme", "e", ERASED, 100);
    ok(errors == 0, "full: 300 calls");
    now_ms += 31 * DAY;
    char *ag = aggregates("acme");
    int n = 0, rc = fill(&n);
    is_int(rc, SB_EFULL, "full: the map is full after %d filler agents", n);
    state before, after;
    state_of("acme", &before);
    char why[300];

    /* A hold, a sweep and an erasure, each failing with SB_EFULL or not
    ** at all; a failure changes nothing. */
    rc = hold("acme", "{\"id\":\"h1\",\"call\":\"o1\",\"reason\":\"dispute\"}");
    int hold_full = rc == SB_EFULL;
    ok(rc == 0 || hold_full, "full: a hold is placed or refused with SB_EFULL (%s)",
       sb_strerror(rc));
    json_t *hl = doc(sb_hold_list(eng, "acme", res));
    is_int(json_array_size(json_object_get(hl, "holds")), hold_full ? 0 : 1,
           "full: ... and the hold list says so");
    json_decref(hl);
    if (!hold_full) sb_hold_release(eng, "acme", "h1", res);
    state_of("acme", &before);

    rc = sb_sweep(eng, 0, NULL, NULL, res);
    int sweep_full = rc == SB_EFULL;
    ok(rc == 0 || sweep_full, "full: a sweep finishes or fails with SB_EFULL (%s: %s)",
       sb_strerror(rc), sb_result_message(res));
    state_of("acme", &after);
    long long swept_first = 0;
    if (!rc) {
        json_t *d = json_loads(sb_result_json(res, NULL), 0, NULL);
        swept_first = jint(d, "reviewed");
        json_decref(d);
    }
    ok(consistent("acme", ag, 300, why, sizeof why),
       "full: after the sweep, nothing half-done (%lld reviewed) %s", swept_first, why);
    int before_erase = after.by_source[3];
    rc = sb_erase(eng, "acme", ERASED, res);
    int erase_full = rc == SB_EFULL;
    ok(rc == 0 || erase_full, "full: an erasure finishes or fails with SB_EFULL (%s)",
       sb_strerror(rc));
    ok(consistent("acme", ag, 300, why, sizeof why),
       "full: after the erasure, nothing half-done %s", why);
    diag("full: hold %s, sweep %s, erasure %s", hold_full ? "refused" : "placed",
         sweep_full ? "refused" : "done", erase_full ? "refused" : "done");
    ok(!sweep_full && !erase_full,
       "full: the sweep and the erasure ran in the reserve past map_max (what deletes records "
       "may use, so that a full map can make room)");

    /* Space freed: all of it completes. */
    unfill(n);
    ok(hold("acme", "{\"id\":\"h2\",\"call\":\"o2\",\"reason\":\"dispute\"}") == 0,
       "full: space freed, a hold is placed");
    sb_hold_release(eng, "acme", "h2", res);
    json_t *s = sweep();
    ok(s != NULL, "full: space freed, the sweep completes");
    json_decref(s);
    json_t *e = doc(sb_erase(eng, "acme", ERASED, res));
    ok(e != NULL, "full: space freed, the erasure completes");
    json_decref(e);
    state_of("acme", &after);
    (void)before_erase;
    is_int(after.by_source[2] + after.by_source[3], 300,
           "full: in the end every record was handled once (reviews %d, erasures %d)",
           after.by_source[2], after.by_source[3]);
    ok(consistent("acme", ag, 300, why, sizeof why), "full: consistent at the end %s", why);
    sb_close(eng);
    eng = NULL;
    free(ag);
}

/* --- a backup onto a full disk ------------------------------------------- */

static void backup_full(void)
{
    char mnt[300], dest[400], filler[400];
    snprintf(mnt, sizeof mnt, "%s-mnt", dir);
    mkdir(mnt, 0700);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=2m,mode=0700")) {
        printf("ok %d # skip backup: cannot mount a tmpfs here (%s)\n", ++tap_n, strerror(errno));
        rmdir(mnt);
        return;
    }
    ok(build("mix") == 0, "backup: %d calls", TOTAL);
    snprintf(dest, sizeof dest, "%s/copy", mnt);
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    int fd = open(filler, O_WRONLY | O_CREAT, 0600);
    static char block[64 << 10];
    memset(block, 1, sizeof block);
    while (fd >= 0 && write(fd, block, sizeof block) > 0)
        ;
    if (fd >= 0) close(fd);
    eng = open_engine();
    int rc = sb_backup(eng, dest, res);
    is_int(rc, SB_EFULL, "backup: onto a full disk, SB_EFULL (%s)", sb_result_message(res));
    struct stat st;
    ok(stat(dest, &st) != 0 && errno == ENOENT, "backup: ... and nothing half-written is left");
    unlink(filler);
    rc = sb_backup(eng, dest, res);
    ok(rc == 0, "backup: space freed, the same backup succeeds (%s)",
       rc ? sb_result_message(res) : "ok");
    sb_close(eng);
    eng = NULL;
    umount2(mnt, MNT_DETACH);
    rmdir(mnt);
}

/* --- two processes --------------------------------------------------------- */

/* Process A sweeps; after its first transaction it tells B (pipe) and waits
** until B says it is done, then carries on. */
static int go_fd[2], back_fd[2];

static void pause_once(void *arg, uint64_t done, uint64_t total)
{
    (void)done;
    (void)total;
    int *paused = arg;
    if (*paused) return;
    *paused = 1;
    char c;
    if (write(go_fd[1], &done, sizeof done) != sizeof done) _exit(5);
    if (read(back_fd[0], &c, 1) != 1) _exit(6);
}

static int op_paused_sweep(void *arg)
{
    (void)arg;
    int paused = 0;
    return sb_sweep(eng, 0, pause_once, &paused, res);
}

static int op_calls(void *arg)
{
    (void)arg;
    if (calls("acme", "late", NULL, 50)) return -1;
    return sb_audit_list(eng, "acme", 0, 1, res);
}

/* A sweeps; after its first transaction B runs op to the end; A finishes.
** Their results. */
static uint64_t a_first; /* what A had done when it paused */

static int beside(op_fn b_op, json_t **ra, json_t **rb)
{
    *ra = *rb = NULL;
    if (pipe(go_fd) || pipe(back_fd)) return -1;
    char pa[300], pb[300];
    snprintf(pa, sizeof pa, "%s.a", result_path);
    snprintf(pb, sizeof pb, "%s.b", result_path);
    fflush(stdout);
    pid_t a = fork();
    if (a == 0) {
        close(go_fd[0]);
        close(back_fd[1]);
        snprintf(result_path, sizeof result_path, "%s", pa);
        _exit(child(op_paused_sweep, NULL, 0, 0) == 0 ? 0 : 7);
    }
    close(go_fd[1]);
    close(back_fd[0]);
    go_fd[1] = back_fd[0] = -1;
    char c;
    a_first = 0;
    int got = read(go_fd[0], &a_first, sizeof a_first) == sizeof a_first;
    char keep[300];
    snprintf(keep, sizeof keep, "%s", result_path);
    snprintf(result_path, sizeof result_path, "%s", pb);
    int rb_rc = got ? child(b_op, NULL, 0, 0) : -1;
    snprintf(result_path, sizeof result_path, "%s", keep);
    c = 'b';
    if (write(back_fd[1], &c, 1) != 1) rb_rc = -1;
    int st = 0;
    waitpid(a, &st, 0);
    close(go_fd[0]);
    close(back_fd[1]);
    *ra = json_load_file(pa, 0, NULL);
    *rb = json_load_file(pb, 0, NULL);
    unlink(pa);
    unlink(pb);
    return got && rb_rc == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static void two_sweeps(void)
{
    ok(build("mix") == 0, "two sweeps: %d calls", TOTAL);
    now_ms += 31 * DAY;
    eng = open_engine();
    char *ag = aggregates("acme");
    sb_close(eng);
    eng = NULL;
    json_t *ra, *rb;
    ok(beside(op_sweep, &ra, &rb) == 0, "two sweeps: A paused after its first transaction, B ran "
                                        "a whole sweep, A finished");
    long long a = jint(ra, "reviewed"), b = jint(rb, "reviewed");
    diag("two sweeps: A reviewed %lld (resumed %d), B reviewed %lld (resumed %d)", a,
         json_is_true(json_object_get(ra, "resumed")), b,
         json_is_true(json_object_get(rb, "resumed")));
    eng = open_engine();
    state s;
    state_of("acme", &s);
    is_int(s.by_source[2], TOTAL, "two sweeps: each record reviewed once (one audit entry each)");
    char why[300];
    ok(consistent("acme", ag, TOTAL, why, sizeof why), "two sweeps: consistent %s", why);
    /* The run is shared: its totals count both sweeps' work; this_call
    ** counts each one's own. */
    long long ao = jint(json_object_get(ra, "this_call"), "reviewed"),
              bo = jint(json_object_get(rb, "this_call"), "reviewed");
    is_int(ao + bo, TOTAL,
           "two sweeps: what each says it did itself (this_call) adds up to the "
           "records reviewed (A %lld, B %lld)",
           ao, bo);
    ok(ao >= (long long)a_first,
       "two sweeps: A counts at least the %llu records of its first "
       "transaction as its own (%lld)",
       (unsigned long long)a_first, ao);
    ok(b >= bo && b <= TOTAL,
       "two sweeps: B's run totals include its own work, and A's before it (%lld)", b);
    diag("two sweeps: A's run totals %lld (a run B finished: A's later turns start another)", a);
    sb_close(eng);
    eng = NULL;
    json_decref(ra);
    json_decref(rb);
    free(ag);
}

static void sweep_beside_erase(void)
{
    ok(build("mix") == 0, "sweep and erasure: %d calls", TOTAL);
    now_ms += 31 * DAY;
    eng = open_engine();
    char *ag = aggregates("acme");
    sb_close(eng);
    eng = NULL;
    json_t *ra, *rb;
    ok(beside(op_erase, &ra, &rb) == 0,
       "sweep and erasure: A paused after its first transaction, B erased the number, A finished");
    eng = open_engine();
    state s;
    state_of("acme", &s);
    char why[300];
    ok(consistent("acme", ag, TOTAL, why, sizeof why), "sweep and erasure: consistent %s", why);
    diag("sweep and erasure: A reviewed %lld (deleted %lld, anonymized %lld); B deleted %lld, "
         "kept %lld",
         jint(ra, "reviewed"), jint(ra, "deleted"), jint(ra, "anonymized"), jint(rb, "deleted"),
         jint(rb, "kept"));
    is_int(jint(ra, "deleted") + jint(rb, "deleted"), s.gone,
           "sweep and erasure: the deletions the two report add up to those audited (%d)", s.gone);
    is_int(jint(ra, "reviewed") + jint(rb, "deleted") + jint(rb, "kept"), TOTAL,
           "sweep and erasure: each record handled by one of them");
    json_t *x = doc(sb_records_export(eng, "acme", ERASED, SB_EXPORT_JSON, res));
    is_int(json_array_size(json_object_get(x, "records")), 0,
           "sweep and erasure: nothing of the number can be found");
    json_decref(x);
    sb_close(eng);
    eng = NULL;
    json_decref(ra);
    json_decref(rb);
    free(ag);
}

static void sweep_beside_calls(void)
{
    ok(build("mix") == 0, "sweep and calls: %d calls", TOTAL);
    now_ms += 31 * DAY;
    json_t *ra, *rb;
    ok(beside(op_calls, &ra, &rb) == 0,
       "sweep and calls: A paused after its first transaction, B took 50 calls, A finished");
    is_int(jint(ra, "reviewed"), TOTAL, "sweep and calls: A reviewed the old records, not the new");
    eng = open_engine();
    state s;
    state_of("acme", &s);
    is_int(s.records, TOTAL - ABANDONED + 50, "sweep and calls: the new records are all there");
    is_int(s.by_source[2], TOTAL, "sweep and calls: one review audited per old record");
    is_int(s.seq_gap, 0, "sweep and calls: no audit entry lost");
    sb_close(eng);
    eng = NULL;
    json_decref(ra);
    json_decref(rb);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sb-retkill-%d", (int)getpid());
    snprintf(result_path, sizeof result_path, "/tmp/sb-retkill-%d.json", (int)getpid());
    res = sb_result_new();
    kill_sweep();
    kill_rescan();
    kill_erase();
    sweep_finishes_erase();
    kill_purge();
    full_map();
    backup_full();
    two_sweeps();
    sweep_beside_erase();
    sweep_beside_calls();
    rmtree(dir);
    unlink(result_path);
    sb_result_free(res);
    return done_testing();
}
