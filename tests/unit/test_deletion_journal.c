/*
** test_deletion_journal.c — a deleted account stays deleted across a
** restore. A backup is taken, an account is deleted, and the backup's
** data.mdb and data.keys are put back as switchboard(1) says (the master
** key and erasures.journal stay): at the next open the account is deleted
** again (not found, its data key slot overwritten in the restored
** data.keys, its API key refused, its records purged by the next sweep),
** another account's records stay, the log says so, and it is not done a
** second time at the open after. The journal holds the account's id and
** number, no number of a caller. An account made again under the same id
** after a deletion is told apart by the journal's order and its number
** (restoring a backup with it deletes it alone, not the first), and by
** when it was made (one that a restore gave the same number). A restored
** account with a call live at the backup is deleted with the call ended; one
** with a legal hold the backup holds again is kept, saying so at warn and in
** its audit log, and not tried again. A full disk (the file size limit)
** while the deletion is journaled refuses it with SB_EFULL, deleting
** nothing. A deletion in the journal that data.mdb never saw (a crash before
** its commit) is done at the next open.
*/
#include "engine.h"
#include "records.h"
#include "switchboard.h"
#include "tap.h"
#define TESTKIT_LOG_KEEP
#include "testkit.h"
#include "reckit.h"
#include "restorekit.h"

#include <errno.h>
#include <signal.h>
#include <sys/resource.h>

/* The journal as text (malloc'd), or NULL. */
static char *journal_text(void)
{
    size_t n;
    unsigned char *b = slurp(jpath, &n);
    if (b) b[n] = 0;
    return (char *)b;
}

static int account_exists(const char *id)
{
    return sb_account_get(eng, id, res) == 0;
}

/* The account's internal number and creation time: 0, or -1. */
static int num_of(const char *id, uint32_t *num, int64_t *created)
{
    MDB_txn *txn;
    acct_rec a;
    if (eng_read_account(eng, id, &txn, &a, res)) return -1;
    eng_read_end(eng, txn);
    *num = a.num;
    *created = a.created;
    return 0;
}

/* data.mdb has seen the journal up to seq (as after an open that did not
** catch up). */
static int put_seen(wtx *t, void *arg)
{
    return st_meta_put_u64(t->txn, t->e, "erasure_seq", *(uint64_t *)arg);
}

/* An account with agents, a queue and n abandoned calls from number. */
static int account_with_calls(const char *acct, const char *prefix, const char *number, int n)
{
    char json[256], id[64];
    snprintf(json, sizeof json, "{\"id\":\"%s\"}", acct);
    if (sb_account_put(eng, json, strlen(json), res) || support_team(acct, "longest-idle"))
        return -1;
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "%s%d", prefix, i);
        snprintf(json, sizeof json,
                 "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"support\",\"caller\":\"%s\"}", id,
                 number);
        if (ev(acct, json)) return -1;
        now_ms += 2000;
        if (finish(acct, id, NULL)) return -1;
    }
    return 0;
}

int main(void)
{
    if (start_engine("djournal")) return done_testing();
    sb_close(eng);
    eng = open_logged();
    snprintf(jpath, sizeof jpath, "%s/erasures.journal", dir);
    ok(account_with_calls("acme", "a", "+442079460101", 2) == 0, "an account with two records");
    ok(account_with_calls("gone", "g", "+442079460202", 2) == 0, "another, to be deleted");
    json_t *d = doc(sb_apikey_create(eng, "gone", res));
    char key[200];
    snprintf(key, sizeof key, "%s", d ? jstr(d, "key") : "");
    json_decref(d);
    ok(key[0] && sb_apikey_verify(eng, "gone", key, strlen(key)) == 0, "... with an API key");
    uint32_t gnum = 0, num = 0;
    int64_t gcreated = 0, created = 0;
    ok(num_of("gone", &gnum, &gcreated) == 0, "... account #%u", (unsigned)gnum);

    char bk1[600], bk2[600], bk3[600], bk4[600];
    snprintf(bk1, sizeof bk1, "%s-b1", dir);
    snprintf(bk2, sizeof bk2, "%s-b2", dir);
    snprintf(bk3, sizeof bk3, "%s-b3", dir);
    snprintf(bk4, sizeof bk4, "%s-b4", dir);
    ok(sb_backup(eng, bk1, res) == 0, "a backup (%s)", sb_result_message(res));

    now_ms += 60000;
    int64_t deleted_at = now_ms;
    ok(sb_account_delete(eng, "gone", res) == 0, "the account deleted (%s)",
       sb_result_message(res));
    char *txt = journal_text(), want[300];
    snprintf(want, sizeof want, "d 1 %u gone %lld %lld ", (unsigned)gnum, (long long)gcreated,
             (long long)deleted_at);
    ok(txt && strstr(txt, want), "the deletion is in the journal: %s", want);
    ok(txt && !strstr(txt, "2079460") && !strstr(txt, "+44"), "... which holds no number");
    free(txt);
    uint8_t dk[32];
    ok(data_key_of("gone", dk) != 0, "... its data key slot overwritten");

    /* The restore: the account, its key and its records would be back. */
    ok(restore(bk1) == 0, "the backup restored in place, the directory opened");
    ok(!account_exists("gone") && sb_result_code(res) == SB_ENOTFOUND,
       "the deleted account is not back: deleted again at the open");
    ok(strstr(logbuf, "account deletion 1 of the erasure journal: account 'gone' deleted again") &&
           strstr(logbuf, "0 live calls"),
       "... the log says so");
    ok(data_key_of("gone", dk) != 0, "... its data key slot in the restored data.keys overwritten");
    ok(sb_apikey_verify(eng, "gone", key, strlen(key)) == SB_EAUTH, "... its API key refused");
    ok(records_of("acme", "+442079460101") == 2, "... another account's records stay");
    ok(swept("purged", NULL) == 2, "... the next sweep purges its two records");
    ok(reopen() == 0 && !strstr(logbuf, "account deletion"),
       "opened again: not done a second time");

    /* Made again under the same id: another account, another number. */
    now_ms += 60000;
    ok(account_with_calls("gone", "h", "+442079460303", 1) == 0, "'gone' made again");
    uint32_t gnum2 = 0;
    int64_t gcreated2 = 0;
    ok(num_of("gone", &gnum2, &gcreated2) == 0 && gnum2 != gnum, "... as #%u", (unsigned)gnum2);
    ok(sb_backup(eng, bk2, res) == 0, "a backup with it");
    now_ms += 60000;
    ok(sb_account_delete(eng, "gone", res) == 0, "... deleted again");
    txt = journal_text();
    ok(txt && strstr(txt, "\nd 2 "), "... the journal's second entry");
    free(txt);
    ok(restore(bk1) == 0 && !account_exists("gone") &&
           strstr(logbuf, "account deletion 1 of the erasure journal: account 'gone' deleted") &&
           strstr(logbuf, "account deletion 2 of the erasure journal: data.mdb has no account "
                          "'gone'"),
       "the first backup: the first account deleted again, the second deletion finds no "
       "account of its own");
    ok(restore(bk2) == 0 && !account_exists("gone") &&
           strstr(logbuf, "account deletion 2 of the erasure journal: account 'gone' deleted") &&
           !strstr(logbuf, "account deletion 1 "),
       "the second backup: the account made again deleted again, the first deletion seen");
    ok(data_key_of("gone", dk) != 0, "... no data key of either opens");

    /* A restore gives a number again: an account of the same id and number
    ** made after the deletion is not the one it deleted. */
    ok(restore(bk1) == 0 && !account_exists("gone"), "the first backup again");
    now_ms += 60000;
    ok(account_with_calls("gone", "k", "+442079460404", 1) == 0 &&
           num_of("gone", &num, &created) == 0 && num == gnum2 && created != gcreated2,
       "'gone' made a third time, with the second one's number #%u", (unsigned)num);
    uint64_t seen = 1;
    ok(eng_write(eng, put_seen, &seen, res) == 0,
       "data.mdb set back to before the second deletion (an open that did not catch up)");
    ok(reopen() == 0 && account_exists("gone") && records_of("gone", "+442079460404") == 1 &&
           strstr(logbuf, "account deletion 2 of the erasure journal: data.mdb has no account "
                          "'gone' (#"),
       "... the second deletion does not reach it: made after it, saying so");

    /* Live calls at the backup: they ended before the deletion. */
    ok(account_with_calls("busy", "b", "+442079460505", 0) == 0 &&
           ev("busy", "{\"type\":\"offer\",\"call\":\"live1\",\"queue\":\"support\","
                      "\"caller\":\"+442079460505\"}") == 0,
       "an account with a live call");
    ok(sb_backup(eng, bk3, res) == 0, "a backup with the call live");
    ok(finish("busy", "live1", NULL) == 0 && sb_account_delete(eng, "busy", res) == 0,
       "the call ended, the account deleted");
    ok(restore(bk3) == 0 && !account_exists("busy") && !exists("busy", "live1") &&
           strstr(logbuf, "account 'busy' deleted again") &&
           strstr(logbuf, "1 live call it held ended with it"),
       "restored: deleted again, its call of the backup ended with it, saying so");

    /* A legal hold the backup holds again: kept, as sb_account_delete would. */
    ok(account_with_calls("kept", "c", "+442079460606", 1) == 0 &&
           hold("kept", "{\"id\":\"case-7\",\"call\":\"c0\",\"reason\":\"dispute\"}") == 0,
       "an account with a legal hold");
    ok(sb_backup(eng, bk4, res) == 0, "a backup with the hold");
    ok(sb_hold_release(eng, "kept", "case-7", res) == 0 && sb_account_delete(eng, "kept", res) == 0,
       "the hold released, the account deleted");
    char why[600] = "";
    ok(restore(bk4) == 0 && account_exists("kept") && strstr(logbuf, "account 'kept' is back") &&
           strstr(logbuf, "NOT deleted again") && strstr(logbuf, "case-7"),
       "restored: the account its hold holds again is kept, saying so at warn");
    ok(audit_matching("kept", "account_delete_held", NULL, why, sizeof why) == 1 &&
           strstr(why, "case-7") && strstr(why, "not applied again"),
       "... and in its audit log (%s)", why);
    ok(reopen() == 0 && account_exists("kept") && !strstr(logbuf, "account deletion"),
       "... not tried again at the next open");
    ok(sb_hold_release(eng, "kept", "case-7", res) == 0 &&
           sb_account_delete(eng, "kept", res) == 0 && !account_exists("kept"),
       "... released and deleted again, it is gone");

    /* A full disk while journaling: refused, nothing deleted. */
    const char *full = "{\"id\":\"full\"}";
    ok(sb_account_put(eng, full, strlen(full), res) == 0 && data_key_of("full", dk) == 0,
       "an account 'full'");
    size_t before = journal_size();
    struct rlimit old;
    fsize_limit(before, &old);
    int rc = sb_account_delete(eng, "full", res);
    setrlimit(RLIMIT_FSIZE, &old);
    ok(rc == SB_EFULL && strstr(sb_result_message(res), "erasure journal") &&
           strstr(sb_result_message(res), "account 'full' was not deleted"),
       "a full disk while the deletion is journaled: SB_EFULL, saying so (%s)",
       sb_result_message(res));
    ok(rc == SB_EFULL && sb_result_field(res) && !strcmp(sb_result_field(res), "data_dir"),
       "... naming the data directory as the field to see to (%s)",
       sb_result_field(res) ? sb_result_field(res) : "none");
    ok(account_exists("full") && data_key_of("full", dk) == 0 && journal_size() == before,
       "... the account and its data key there, the journal as it was");
    ok(reopen() == 0 && account_exists("full") && !strstr(logbuf, "account deletion"),
       "... and nothing of it is done at the next open");

    /* In the journal, not in data.mdb: a crash before the commit. */
    ejr j;
    ejr_entry x = {.kind = EJR_DELETION, .received = now_ms};
    snprintf(x.account, sizeof x.account, "full");
    ok(num_of("full", &x.acct, &x.created) == 0 && ejr_open(eng, EJR_CREATE, &j, res) == 0 &&
           (x.seq = j.last + 1) && ejr_append(eng, &j, &x, res) == 0,
       "a deletion journaled, its transaction never committed");
    ejr_close(&j);
    ok(reopen() == 0 && !account_exists("full") && strstr(logbuf, "account 'full' deleted again") &&
           data_key_of("full", dk) != 0,
       "... done at the next open, its data key slot overwritten");

    char cmd[2600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s' '%s'", bk1, bk2, bk3, bk4);
    if (system(cmd)) diag("could not remove the backups");
    return end_engine();
}
