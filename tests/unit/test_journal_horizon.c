/*
** test_journal_horizon.c — the erasure journal's horizon
** (sb_config.erasure_journal_days). A sweep takes the pseudonym out of each
** erasure request received longer ago than the horizon that data.mdb has
** applied, so no pseudonym of an erased number is kept for good: not one day
** early, never one data.mdb has not seen, never with the horizon 0; its line
** keeps the request's number, account and time, and every other line (an
** account deletion, a note, a damaged line) stays as it was, as do the
** file's mode and owner. A data.mdb restored from a backup taken before such
** a request, that has its account, is refused at open, saying which backup
** to restore, also while another holds the journal's lock; one taken after
** it opens and has the later requests applied again; one whose only account
** had no such request opens, as does one whose account a later line of the
** journal deletes (deleted again), and a new data.mdb. An erasure request
** waiting for the journal's lock while the journal is replaced by its
** pruned copy goes in the copy. The setting's range is checked.
*/
#include "engine.h"
#include "records.h"
#include "switchboard.h"
#include "tap.h"
#define TESTKIT_LOG_KEEP
#include "testkit.h"
#include "reckit.h"
#include "restorekit.h"

#include <pthread.h>
#include <sys/file.h>

#define DAY (86400000ll)

static sb_engine *open_days(uint32_t days, sb_result *r)
{
    sb_config cfg;
    test_engine_config(&cfg, dir, "policies", RECKIT_MAP_SIZE);
    cfg.log = log_keep;
    cfg.erasure_journal_days = days;
    log_clear();
    sb_engine *e = NULL;
    if (sb_open(&e, &cfg, r)) return NULL;
    return e;
}

static char *journal(void)
{
    size_t n;
    unsigned char *b = slurp(jpath, &n);
    if (b) b[n] = 0;
    return (char *)b;
}

/* The pseudonym (32 hex) of the journal's erasure request seq. */
static int journal_pseudonym(int seq, char out[33])
{
    char *b = journal(), want[32];
    snprintf(want, sizeof want, "\ne %d ", seq);
    char *at = b ? strstr(b, want) : NULL;
    int rc = -1;
    if (at && sscanf(at + strlen(want), "%*s %*s %32s", out) == 1 && strlen(out) == 32) rc = 0;
    free(b);
    return rc;
}

static int journal_has(const char *s)
{
    char *b = journal();
    int has = b && strstr(b, s);
    free(b);
    return has;
}

/* Whether data.mdb keeps what erasure request seq did (meta
** "erasure_did" and the seq), for later requests of its number. */
static int did_kept(uint64_t seq)
{
    uint8_t k[11 + 8];
    memcpy(k, "erasure_did", 11);
    for (int i = 0; i < 8; i++)
        k[11 + i] = (uint8_t)(seq >> (56 - 8 * i));
    MDB_txn *txn;
    MDB_val v;
    if (eng_read_begin(eng, &txn)) return -1;
    int rc = st_get(txn, eng, DB_META, k, sizeof k, &v);
    eng_read_end(eng, txn);
    return rc == 0 ? 1 : rc == MDB_NOTFOUND ? 0 : -1;
}

static int erase_deleted(const char *number)
{
    json_t *d = doc(sb_erase(eng, "acme", number, res));
    int n = d ? (int)jint(d, "deleted") : -1;
    json_decref(d);
    return n;
}

static int backup_to(const char *bk)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", bk);
    if (system(cmd)) return -1;
    return sb_backup(eng, bk, res);
}

/* The backup's two files in place, then an open with the horizon. */
static sb_engine *restore_days(const char *bk, uint32_t days, sb_result *r)
{
    return restore_files(bk) ? NULL : open_days(days, r);
}

/* Whether a lock on the journal's file (inode ino) is being waited for:
** /proc/locks shows a waiter as "N: -> FLOCK ...". */
static int lock_waited(unsigned long ino)
{
    FILE *f = fopen("/proc/locks", "r");
    char line[256], want[40];
    int found = 0;
    snprintf(want, sizeof want, ":%lu ", ino);
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, "->") && strstr(line, "FLOCK") && strstr(line, want);
    if (f) fclose(f);
    return found;
}

static int erase_rc;
static void *erase_thread(void *arg)
{
    sb_result *r = sb_result_new();
    erase_rc = sb_erase(eng, "acme", arg, r);
    sb_result_free(r);
    return NULL;
}

int main(void)
{
    if (start_engine("jhorizon")) return done_testing();
    sb_close(eng);
    snprintf(jpath, sizeof jpath, "%s/erasures.journal", dir);

    /* The setting's range. */
    sb_engine *bad = open_days(36601, res);
    ok(!bad && sb_result_code(res) == SB_EINVAL && sb_result_field(res) &&
           !strcmp(sb_result_field(res), "erasure_journal_days") &&
           strstr(sb_result_message(res), "0 (kept for good) to 36600"),
       "erasure_journal_days 36601: SB_EINVAL naming it (%s)", sb_result_message(res));
    sb_close(bad);

    eng = open_days(30, res);
    ok(eng != NULL, "opened with a horizon of 30 days");
    const char *acct = "{\"id\":\"acme\"}", *other = "{\"id\":\"other\"}";
    char bk0[600], bk1[600], bko[600];
    snprintf(bk0, sizeof bk0, "%s-bk0", dir);
    snprintf(bk1, sizeof bk1, "%s-bk1", dir);
    snprintf(bko, sizeof bko, "%s-bko", dir);
    sb_account_put(eng, other, strlen(other), res);
    ok(backup_to(bko) == 0, "a backup with one account, 'other', whose numbers no request names");
    sb_account_put(eng, acct, strlen(acct), res);
    ok(support_team("acme", "longest-idle") == 0, "an account with a team");
    calls_from("a", "+442079460111", 2);
    calls_from("b", "+442079460222", 2);
    calls_from("c", "+442079460333", 2);
    ok(backup_to(bk0) == 0, "a backup before any erasure request");

    /* Day 0: A erased and an account deleted; day 10: B erased. */
    int64_t day0 = now_ms;
    ok(erase_deleted("+442079460111") == 2, "day 0: the first caller erased");
    ok(sb_account_delete(eng, "other", res) == 0, "... and an account deleted");
    char pa[33] = "", pb[33] = "";
    ok(journal_pseudonym(1, pa) == 0 && journal_has(pa) && journal_has("\nd 2 "),
       "... both in the journal (request 1's pseudonym %s, deletion 2)", pa);
    ok(backup_to(bk1) == 0, "a backup after request 1");
    now_ms = day0 + 10 * DAY;
    ok(erase_deleted("+442079460222") == 2 && journal_pseudonym(3, pb) == 0,
       "day 10: the second caller erased (request 3)");
    ok(did_kept(1) == 1 && did_kept(3) == 1,
       "... what each request did is kept for a later request of its number");

    /* A clock set years ahead for a sweep: everything is past the horizon
    ** by it, and nothing is taken out (its sighting is the first). Then the
    ** clock steps back and ahead again: the step back reset the sighting,
    ** so the sweep a day after the first, ahead again, takes nothing out
    ** either. */
    int64_t ahead = day0 + 5 * 365 * DAY;
    now_ms = ahead;
    ok(sb_sweep(eng, 0, NULL, NULL, res) == 0 && journal_has(pa) && journal_has(pb) &&
           !journal_has("\nx "),
       "a sweep with the clock five years ahead takes nothing out (%s)", sb_result_message(res));
    now_ms = day0 + 20 * DAY;
    ok(sb_sweep(eng, 0, NULL, NULL, res) == 0 && journal_has(pa) && journal_has(pb),
       "... the clock set right (day 20): a sweep takes nothing out");
    now_ms = ahead + DAY + 1000;
    ok(sb_sweep(eng, 0, NULL, NULL, res) == 0 && journal_has(pa) && journal_has(pb) &&
           !journal_has("\nx "),
       "... ahead again a day after the first: the step back reset its sighting, nothing taken "
       "out");

    /* Day 29.9: nothing is older than 30 days. */
    now_ms = day0 + 30 * DAY - 1000;
    ok(sb_sweep(eng, 0, NULL, NULL, res) == 0 && journal_has(pa) && journal_has(pb) &&
           !journal_has("\nx "),
       "a sweep a second before request 1 is 30 days old takes nothing out");

    /* A note and a damaged line an operator left: kept as they are. */
    int fd = open(jpath, O_WRONLY | O_APPEND);
    ok(fd >= 0 && write(fd, "# restored on day 29\ne 9 damaged\n", 34) == 34 &&
           chmod(jpath, 0640) == 0,
       "a note and a damaged line appended, the file made group-readable");
    if (fd >= 0) close(fd);

    /* Day 30: request 1 is past the horizon, seen so by a first sweep; day
    ** 31: a second sweep takes it out, the deletion and request 3 stay. */
    now_ms = day0 + 30 * DAY + 1000;
    log_clear();
    ok(sb_sweep(eng, 0, NULL, NULL, res) == 0 && journal_has(pa) && !journal_has("\nx "),
       "a first sweep past 30 days takes nothing out (%s)", sb_result_message(res));
    now_ms = day0 + 31 * DAY - 1000;
    ok(sb_sweep(eng, 0, NULL, NULL, res) == 0 && journal_has(pa),
       "... nor one less than a day after it");
    now_ms = day0 + 31 * DAY + 1000;
    ok(sb_sweep(eng, 0, NULL, NULL, res) == 0, "a sweep a day after the first (%s)",
       sb_result_message(res));
    char mark[64];
    snprintf(mark, sizeof mark, "\nx 1 2 acme %lld ", (long long)day0);
    ok(!journal_has(pa), "... request 1's pseudonym is gone from the journal");
    ok(did_kept(1) == 0 && did_kept(3) == 1,
       "... and what it did from data.mdb (nothing can find it); request 3's stays");
    ok(journal_has(mark) && journal_has("\nd 2 ") && journal_has(pb),
       "... its line keeps its number, account and time ('x 1 2 acme <received>'); the "
       "deletion and request 3 stay");
    ok(journal_has("\n# restored on day 29\ne 9 damaged\n"),
       "... the note and the damaged line as they were");
    ok(strstr(logbuf, "the pseudonyms of 1 erasure request received more than 30 days ago "
                      "(erasure_journal_days) taken out") != NULL,
       "... logged at info");
    struct stat st;
    /* (Its owner too, which only a prune run by another user, root, shows.) */
    ok(stat(jpath, &st) == 0 && (st.st_mode & 0777) == 0640, "... the file's mode as it was");
    chmod(jpath, 0600);

    /* The journal reads whole, and numbering goes on after the mark. */
    sb_close(eng);
    eng = open_days(30, res);
    ok(eng && strstr(logbuf, "1 whole line is no entry") && !strstr(logbuf, "no whole entry"),
       "reopened: the pruned journal reads whole, the damaged line said as before");
    calls_from("d", "+442079460444", 2);
    ok(erase_deleted("+442079460444") == 2 && journal_has("\ne 4 "),
       "the next request is numbered 4");

    /* A request waiting for the journal's lock while it is replaced goes in
    ** the replacement: hold the lock, start a request, put a copy in place,
    ** let go. */
    calls_from("w", "+442079460555", 2);
    fd = open(jpath, O_RDWR);
    ok(fd >= 0 && flock(fd, LOCK_EX) == 0 && fstat(fd, &st) == 0, "the journal's lock held");
    pthread_t th;
    pthread_create(&th, NULL, erase_thread, "+442079460555");
    int waited = 0;
    for (int i = 0; i < 5000 && !(waited = lock_waited((unsigned long)st.st_ino)); i++)
        usleep(1000);
    ok(waited, "... an erasure request waits for it");
    char copy[700];
    snprintf(copy, sizeof copy, "cp '%s' '%s.copy' && mv '%s.copy' '%s'", jpath, jpath, jpath,
             jpath);
    ok(system(copy) == 0, "... the journal replaced by a copy");
    close(fd);
    pthread_join(th, NULL);
    ok(erase_rc == 0 && journal_has("\ne 5 "), "... the request is in the file the name has now");

    /* Ahead again, then back to a day (41) when request 3 is past the
    ** horizon: the step back starts the sighting again from day 41, and a
    ** sweep ahead a day after the first, more than a year after day 41,
    ** starts it again too: nothing is taken out. */
    int64_t was = now_ms;
    now_ms = ahead;
    ok(sb_sweep(eng, 0, NULL, NULL, res) == 0 && journal_has(pb), "ahead again: a sweep");
    now_ms = day0 + 41 * DAY;
    ok(sb_sweep(eng, 0, NULL, NULL, res) == 0 && journal_has(pb),
       "... back to day 41, when request 3 is past the horizon: a sweep");
    now_ms = ahead + DAY + 1000;
    ok(sb_sweep(eng, 0, NULL, NULL, res) == 0 && journal_has(pb) && journal_has("\ne 4 ") &&
           journal_has("\ne 5 "),
       "... ahead a day after the first: nothing taken out");
    now_ms = was;

    /* Restores. */
    sb_engine *refused = restore_days(bk0, 30, res);
    ok(refused == NULL && sb_result_code(res) == SB_ESTORE && sb_result_field(res) &&
           !strcmp(sb_result_field(res), "data_dir"),
       "a backup from before request 1 (taken out): the open is refused, SB_ESTORE on data_dir");
    ok(strstr(sb_result_message(res), "data.mdb has not seen erasure request 1 of account "
                                      "'acme' (received 2026-") &&
           strstr(sb_result_message(res), "raising it does not bring it back") &&
           strstr(sb_result_message(res), "whose data.mdb has seen request 1"),
       "... saying why and what to restore (%s)", sb_result_message(res));
    sb_close(refused);
    refused = restore_days(bk0, 0, res);
    ok(refused == NULL && sb_result_code(res) == SB_ESTORE,
       "... whatever the horizon of the engine opening it");
    sb_close(refused);
    /* Whoever holds the journal's lock: the check reads it without. */
    fd = open(jpath, O_RDWR);
    ok(fd >= 0 && flock(fd, LOCK_EX) == 0, "the journal's lock held by another");
    refused = open_days(30, res);
    ok(refused == NULL && sb_result_code(res) == SB_ESTORE, "... the open is refused all the same");
    sb_close(refused);
    if (fd >= 0) close(fd);
    eng = restore_days(bko, 30, res);
    ok(eng != NULL, "a backup whose one account had no request taken out opens (%s)",
       sb_result_message(res));
    sb_close(eng);
    eng = NULL;
    eng = restore_days(bk1, 30, res);
    ok(eng != NULL, "a backup from after request 1 opens (%s)", sb_result_message(res));
    ok(eng &&
           strstr(logbuf, "erasure request 3 of the erasure journal (account 'acme') applied "
                          "again") &&
           records_of("acme", "+442079460222") == 0 && records_of("acme", "+442079460333") == 2,
       "... the requests after it applied again, the other caller's records kept");

    /* The account of request 1 deleted since: the backup from before the
    ** request opens, the account deleted again with everything it had. */
    ok(eng && sb_account_delete(eng, "acme", res) == 0, "acme deleted (%s)",
       sb_result_message(res));
    eng = restore_days(bk0, 30, res);
    ok(eng && sb_account_get(eng, "acme", res) == SB_ENOTFOUND &&
           strstr(logbuf, "account 'acme' deleted again"),
       "the backup from before request 1 opens once its account's deletion follows in the "
       "journal, and the account is deleted again (%s)",
       eng ? "" : sb_result_message(res));

    /* A new data.mdb: nothing of the requests taken out can be in it. */
    sb_close(eng);
    eng = NULL;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -f '%s/data.mdb' '%s/data.keys' '%s/lock.mdb'", dir, dir, dir);
    ok(system(cmd) == 0 && (eng = open_days(30, res)) != NULL,
       "a new data.mdb beside the journal opens (%s)", sb_result_message(res));

    /* Horizon 0: kept for good. */
    sb_account_put(eng, acct, strlen(acct), res);
    ok(support_team("acme", "longest-idle") == 0, "an account again");
    calls_from("k", "+442079460666", 2);
    ok(erase_deleted("+442079460666") == 2, "a request with the horizon 0 ahead");
    char pk[33] = "";
    char *b = journal();
    char *last = b ? strrchr(b, '\n') : NULL;
    while (last && last > b && last[-1] != '\n')
        last--;
    ok(last && sscanf(last, "e %*s %*s %*s %32s", pk) == 1, "... its pseudonym %s", pk);
    free(b);
    sb_close(eng);
    eng = open_days(0, res);
    now_ms += 1000 * DAY;
    ok(eng && sb_sweep(eng, 0, NULL, NULL, res) == 0 && journal_has(pk),
       "horizon 0: a sweep 1,000 days later keeps it");
    sb_close(eng);
    eng = open_days(30, res);
    ok(eng && sb_sweep(eng, 0, NULL, NULL, res) == 0 && journal_has(pk),
       "... the horizon of 30 days: its open and a sweep find it past the horizon, and keep it");
    now_ms += DAY;
    ok(eng && sb_sweep(eng, 0, NULL, NULL, res) == 0 && !journal_has(pk),
       "... a sweep a day later takes it out");

    /* At map_max (the map past it, in its reserve), where only what frees
    ** room is written: the sighting is written still, and a sweep a day
    ** after it takes the pseudonym out. */
    calls_from("m", "+442079460999", 1);
    char pm[33] = "";
    int md = erase_deleted("+442079460999");
    b = journal();
    last = b ? strrchr(b, '\n') : NULL;
    while (last && last > b && last[-1] != '\n')
        last--;
    ok(md == 1 && last && sscanf(last, "e %*s %*s %*s %32s", pm) == 1,
       "a caller erased (%d deleted, pseudonym %s)", md, pm);
    free(b);
    sb_close(eng);
    now_ms += 31 * DAY;
    {
        sb_config cfg;
        test_engine_config(&cfg, dir, "policies", 64 << 10);
        cfg.map_max = 64 << 10; /* below the map as it is */
        cfg.log = log_keep;
        cfg.erasure_journal_days = 30;
        log_clear();
        eng = NULL;
        ok(sb_open(&eng, &cfg, res) == 0 && eng_map_max_reached(eng, 0) && journal_has(pm) &&
               !strstr(logbuf, "storage full"),
           "open at map_max 31 days later: the request past the horizon is sighted (%s)",
           sb_result_message(res));
    }
    now_ms += DAY;
    ok(eng && sb_sweep(eng, 0, NULL, NULL, res) == 0 && !journal_has(pm),
       "... a sweep a day later takes its pseudonym out (%s)", sb_result_message(res));
    sb_close(eng);
    eng = open_days(30, res);

    /* A backup holding the account under a legal hold: the account's later
    ** deletion is not applied again to it (no account is deleted under a
    ** hold), so it is refused as if no deletion followed. */
    char bkh[600];
    snprintf(bkh, sizeof bkh, "%s-bkh", dir);
    const char *h = "{\"id\":\"case-1\",\"number\":\"+442079460777\",\"reason\":\"case\"}";
    ok(sb_hold_place(eng, "acme", h, strlen(h), res) == 0 && backup_to(bkh) == 0,
       "a legal hold on acme, and a backup with it (%s)", sb_result_message(res));
    calls_from("h", "+442079460888", 2);
    ok(sb_hold_release(eng, "acme", "case-1", res) == 0 && erase_deleted("+442079460888") == 2 &&
           sb_account_delete(eng, "acme", res) == 0,
       "the hold released, a caller erased, acme deleted (%s)", sb_result_message(res));
    now_ms += 31 * DAY;
    ok(sb_sweep(eng, 0, NULL, NULL, res) == 0, "31 days later a sweep finds it past the horizon");
    now_ms += DAY;
    ok(sb_sweep(eng, 0, NULL, NULL, res) == 0 && journal_has("\nx 9 "),
       "... and a sweep a day after takes the pseudonym out");
    refused = restore_days(bkh, 30, res);
    ok(refused == NULL && sb_result_code(res) == SB_ESTORE &&
           strstr(sb_result_message(res), "of account 'acme'"),
       "the backup with the hold is refused: its acme would not be deleted again (%s)",
       sb_result_message(res));
    sb_close(refused);

    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s' '%s'", bk0, bk1, bko, bkh);
    if (system(cmd)) diag("could not remove the backups");
    return end_engine();
}
