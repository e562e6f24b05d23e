/*
** test_erasure_journal.c — erasure requests survive a restore. A backup is
** taken, a caller's records are erased, and the backup's data.mdb and
** data.keys are put back in the data directory as switchboard(1) says (the
** master key and erasures.journal stay): at the next open the request is
** applied again (the caller's records are gone, the other caller's stay),
** the log and the audit log say so, and it is not applied a second time at
** the open after. The journal holds no number. A line torn by a crash at
** its end is ignored (the directory opens, nothing is applied from it) and
** written over by the next request; a damaged line in the middle is
** skipped, saying so, and the entries after it stand. A full disk (the file size limit) while
** the request is appended refuses it with SB_EFULL, erasing nothing and
** leaving the journal as it was. An open that finds nothing to apply again
** writes nothing: a directory of an earlier format keeps it. A request for
** an account deleted since is applied again when a restore brings the
** account back, before the account's deletion is (test_deletion_journal),
** in the journal's order, and passed over, saying so, when the restored
** data.mdb does not have the account.
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

static int requests_audited(const char *acct, char *why, size_t cap)
{
    return audit_matching(acct, "erasure_request", NULL, why, cap);
}

static long long schema_at(long long set)
{
    return test_schema_at(dir, RECKIT_MAP_SIZE, set);
}

static void calls3(const char *prefix, const char *number)
{
    calls_from(prefix, number, 3);
}

int main(void)
{
    if (start_engine("ejournal")) return done_testing();
    sb_close(eng);
    eng = open_logged();
    snprintf(jpath, sizeof jpath, "%s/erasures.journal", dir);
    const char *acct = "{\"id\":\"acme\"}";
    sb_account_put(eng, acct, strlen(acct), res);
    ok(support_team("acme", "longest-idle") == 0, "an account with a team");
    calls3("x", "+442079460101");
    calls3("y", "+442079460202");
    ok(records_of("acme", "+442079460101") == 3 && records_of("acme", "+442079460202") == 3,
       "three records of each caller");

    char bk[600];
    snprintf(bk, sizeof bk, "%s-backup", dir);
    ok(sb_backup(eng, bk, res) == 0, "a backup (%s)", sb_result_message(res));
    ok(journal_size() == 0, "no journal before the first erasure request");

    now_ms += 60000;
    json_t *d = doc(sb_erase(eng, "acme", "+44 20 7946 0101", res));
    ok(d && jint(d, "deleted") == 3, "the erasure request deletes the caller's three records");
    json_decref(d);
    ok(records_of("acme", "+442079460101") == 0, "... none left");

    size_t n;
    unsigned char *b = slurp(jpath, &n);
    ok(b && n > 0, "the request is in the journal (%zu bytes)", n);
    if (b) b[n] = 0;
    ok(b && !strstr((char *)b, "2079460101") && !strstr((char *)b, "+44"),
       "... which holds no number, nor a part of one");
    struct stat st;
    ok(stat(jpath, &st) == 0 && (st.st_mode & 0777) == 0600, "... readable by the owner only");
    free(b);

    /* The restore: the erased caller's records would be back. */
    ok(restore(bk) == 0, "the backup restored in place, the directory opened");
    ok(records_of("acme", "+442079460101") == 0,
       "the erasure request since the backup is applied again at the open");
    ok(records_of("acme", "+442079460202") == 3, "... the other caller's records stay");
    ok(strstr(logbuf, "erasure request 1 of the erasure journal (account 'acme') applied again") &&
           strstr(logbuf, "3 deleted"),
       "... the log says so, with what it did");
    char why[400] = "";
    ok(requests_audited("acme", why, sizeof why) == 1 && strstr(why, "applied again") &&
           strstr(why, "3 deleted"),
       "... and the audit log has it (%s)", why);
    ok(reopen() == 0 && !strstr(logbuf, "applied again") && requests_audited("acme", NULL, 0) == 1,
       "opened again: not applied a second time");

    /* A request after the restore is numbered after those before it. */
    now_ms += 60000;
    calls3("z", "+442079460303");
    d = doc(sb_erase(eng, "acme", "+442079460303", res));
    ok(d && jint(d, "deleted") == 3, "a new request after the restore deletes its caller's");
    json_decref(d);
    b = slurp(jpath, &n);
    int lines = 0;
    for (size_t i = 0; b && i < n; i++)
        lines += b[i] == '\n' && i + 2 < n && b[i + 1] == 'e';
    ok(b && lines == 2 && b[n - 1] == '\n' && strstr((char *)b, "\ne 2 "),
       "... as the journal's second entry");
    free(b);

    /* A crash mid-append: half a line at the end. */
    int fd = open(jpath, O_WRONLY | O_APPEND);
    ok(fd >= 0 && write(fd, "e 3 1 acme torn", 15) == 15, "a torn line at the journal's end");
    if (fd >= 0) close(fd);
    ok(reopen() == 0 && strstr(logbuf, "no whole entry") && !strstr(logbuf, "applied again") &&
           records_of("acme", "+442079460202") == 3,
       "the directory opens, the torn line is said and ignored, nothing applied");
    calls3("w", "+442079460404");
    d = doc(sb_erase(eng, "acme", "+442079460404", res));
    ok(d && jint(d, "deleted") == 3, "the next request works");
    json_decref(d);
    b = slurp(jpath, &n);
    if (b) b[n] = 0;
    ok(b && !strstr((char *)b, "torn") && strstr((char *)b, "\ne 3 ") && b[n - 1] == '\n',
       "... written over the torn line, as entry 3");
    free(b);
    ok(reopen() == 0 && !strstr(logbuf, "no whole entry") && !strstr(logbuf, "applied again"),
       "... and the journal reads whole again");

    /* A damaged line in the middle: skipped, those after it stand. */
    b = slurp(jpath, &n);
    unsigned char *e2 = b ? (unsigned char *)strstr((char *)b, "\ne 2 ") : NULL;
    if (e2) e2[6] = e2[6] == '1' ? '2' : '1'; /* its account number: the check fails */
    fd = open(jpath, O_WRONLY);
    ok(e2 && fd >= 0 && write(fd, b, n) == (ssize_t)n, "entry 2 damaged in place");
    if (fd >= 0) close(fd);
    free(b);
    ok(reopen() == 0 && strstr(logbuf, "1 whole line is no entry (damaged): skipped") &&
           !strstr(logbuf, "no whole entry"),
       "... the open says so");
    calls3("v", "+442079460606");
    d = doc(sb_erase(eng, "acme", "+442079460606", res));
    b = slurp(jpath, &n);
    if (b) b[n] = 0;
    ok(d && jint(d, "deleted") == 3 && b && strstr((char *)b, "\ne 3 ") &&
           strstr((char *)b, "\ne 4 ") && b[n - 1] == '\n',
       "... the next request is entry 4, entry 3 after the damaged line kept");
    json_decref(d);
    free(b);

    /* A full disk while appending: refused, nothing changes. */
    size_t before = journal_size();
    int audited = requests_audited("acme", NULL, 0);
    struct rlimit old;
    fsize_limit(before, &old);
    int rc = sb_erase(eng, "acme", "+442079460202", res);
    setrlimit(RLIMIT_FSIZE, &old);
    ok(rc == SB_EFULL && strstr(sb_result_message(res), "erasure journal") &&
           strstr(sb_result_message(res), "nothing was erased"),
       "a full disk while the request is journaled: SB_EFULL, saying so (%s)",
       sb_result_message(res));
    ok(rc == SB_EFULL && sb_result_field(res) && !strcmp(sb_result_field(res), "data_dir"),
       "... naming the data directory as the field to see to");
    ok(records_of("acme", "+442079460202") == 3 && journal_size() == before &&
           requests_audited("acme", NULL, 0) == audited,
       "... nothing erased, the journal and the audit log as they were");
    ok(reopen() == 0 && !strstr(logbuf, "applied again") && !strstr(logbuf, "no whole entry"),
       "... and nothing of it is applied at the next open");

    /* With a journal data.mdb has seen whole, an open writes nothing: a
    ** directory an older version wrote stays open to it. */
    sb_close(eng);
    eng = NULL;
    long long cur = schema_at(-1);
    schema_at(cur - 1);
    sb_config cfg;
    test_engine_config(&cfg, dir, NULL, RECKIT_MAP_SIZE); /* (a policy folder is stored) */
    eng = test_open(&cfg, res);
    ok(eng && sb_account_list(eng, res) == 0, "a directory of the format before opened and read");
    sb_close(eng);
    eng = NULL;
    ok(schema_at(-1) == cur - 1,
       "... its format left as it was: nothing to apply again, nothing written (%lld)", cur - 1);
    schema_at(cur);
    eng = open_logged();

    /* A request for an account deleted since the backup's data.mdb. */
    sb_close(eng);
    eng = open_logged();
    char bk2[600];
    snprintf(bk2, sizeof bk2, "%s-backup2", dir);
    const char *other = "{\"id\":\"other\"}";
    sb_account_put(eng, other, strlen(other), res);
    ok(support_team("other", "longest-idle") == 0, "a second account");
    char json[256];
    snprintf(json, sizeof json,
             "{\"type\":\"offer\",\"call\":\"o1\",\"queue\":\"support\",\"caller\":\"%s\"}",
             "+442079460505");
    ev("other", json);
    finish("other", "o1", NULL);
    ok(sb_backup(eng, bk2, res) == 0, "a backup with it");
    d = doc(sb_erase(eng, "other", "+442079460505", res));
    ok(d && jint(d, "deleted") == 1, "its caller erased");
    json_decref(d);
    ok(sb_account_delete(eng, "other", res) == 0, "... then the account deleted (%s)",
       sb_result_message(res));
    const char *erased = NULL, *deleted = NULL;
    ok(restore(bk2) == 0 && sb_account_get(eng, "other", res) == SB_ENOTFOUND &&
           (erased = strstr(logbuf, "(account 'other') applied again")) &&
           (deleted = strstr(logbuf, "account 'other' deleted again")) && erased < deleted,
       "restored: its caller's erasure applied again, then the account deleted again");
    /* The first backup, from before the second account: its request is
    ** passed over, those of the first applied again. */
    ok(restore(bk) == 0 && records_of("acme", "+442079460303") == 0 &&
           records_of("acme", "+442079460202") == 3 &&
           strstr(logbuf, "account 'other' no longer exists") &&
           strstr(logbuf, "erasure request 3 of the erasure journal (account 'acme') applied"),
       "an older backup: the requests of its accounts applied again, one of an account it "
       "does not have passed over, saying so");
    /* A request sent again (its answer lost): its own counts are what was
    ** left to erase, none, and "earlier" has what the first did; after a
    ** restore from before both, what each did when applied again. */
    char bk3[600];
    snprintf(bk3, sizeof bk3, "%s-backup3", dir);
    calls3("r", "+442079460707");
    ok(sb_backup(eng, bk3, res) == 0, "a backup with a third caller's records");
    now_ms += 60000;
    long long first = now_ms;
    d = doc(sb_erase(eng, "acme", "+442079460707", res));
    ok(d && jint(d, "deleted") == 3 && json_array_size(json_object_get(d, "earlier")) == 0 &&
           json_is_array(json_object_get(d, "earlier")),
       "its erasure request deletes the three, \"earlier\" empty");
    json_decref(d);
    now_ms += 1000;
    d = doc(sb_erase(eng, "acme", "+44 20 7946 0707", res));
    json_t *ea = json_object_get(d, "earlier"), *e0 = json_array_get(ea, 0);
    ok(d && jint(d, "deleted") == 0 && jint(d, "anonymized") == 0 && json_array_size(ea) == 1 &&
           jint(e0, "received_ms") == first && jint(e0, "deleted") == 3 &&
           jint(e0, "anonymized") == 0 && jint(e0, "kept") == 0 && jint(e0, "live") == 0 &&
           json_is_false(json_object_get(e0, "applied_again")),
       "sent again: none left to delete, and \"earlier\" has the first's 3 deleted (%s)",
       sb_result_json(res, NULL));
    json_decref(d);
    ok(restore(bk3) == 0 && records_of("acme", "+442079460707") == 0,
       "restored from before both: they are applied again at the open");
    now_ms += 1000;
    d = doc(sb_erase(eng, "acme", "+442079460707", res));
    ea = json_object_get(d, "earlier");
    e0 = json_array_get(ea, 0);
    json_t *e1 = json_array_get(ea, 1);
    ok(d && jint(d, "deleted") == 0 && json_array_size(ea) == 2 &&
           jint(e0, "received_ms") == first && jint(e0, "deleted") == 3 &&
           json_is_true(json_object_get(e0, "applied_again")) && jint(e1, "deleted") == 0 &&
           json_is_true(json_object_get(e1, "applied_again")),
       "sent again after the restore: \"earlier\" has the first's 3 deleted and the second's "
       "none, both applied again (%s)",
       sb_result_json(res, NULL));
    json_decref(d);
    d = doc(sb_erase(eng, "acme", "+442079460202", res));
    ok(d && jint(d, "deleted") == 3 && json_array_size(json_object_get(d, "earlier")) == 0,
       "a request of another number names none of them");
    json_decref(d);
    char cmd[1900];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s'", bk, bk2, bk3);
    if (system(cmd)) diag("could not remove the backups");
    return end_engine();
}
