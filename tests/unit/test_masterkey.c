/*
** test_masterkey.c — an engine opened on a data directory with another
** master key than the one its data keys were made with (a second process, a
** CLI run with another --key-file, a replaced key file) is refused, and
** nothing of the data directory changes: before, it opened, and the first
** offer wrote a new data key over the account's, so every number sealed
** before could no longer be read (access requests found nothing). An
** engine that opened before there was anything to check its key against
** does not replace a data key another master key wrapped either.
**
** Nor does an engine open whose data key file lacks an account's key (the
** file lost, or a backup restored without it): it opened with an empty
** data.keys, gave each account a new key at its next call, and access and
** erasure requests found none of the records sealed before, saying so as if
** there were none — unless SWITCHBOARD_DATA_KEYS_LOST says they are lost.
*/
#include "switchboard.h"
#include "tap.h"
#define TESTKIT_LOG_KEEP
#include "testkit.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256], other_key[300];
static sb_result *res;

static sb_engine *open_with(const char *key_file)
{
    sb_config cfg;
    test_engine_config(&cfg, dir, NULL, 8 << 20);
    cfg.key_file = key_file;
    sb_engine *e = NULL;
    if (sb_open(&e, &cfg, res)) return NULL;
    return e;
}

/* How many records an access request for number finds (-1: it failed). */
static int exported(sb_engine *e, const char *number)
{
    if (sb_records_export(e, "acme", number, SB_EXPORT_JSON, res)) {
        diag("export: %s", sb_result_message(res));
        return -1;
    }
    json_t *d = json_loads(sb_result_json(res, NULL), 0, NULL);
    int n = (int)json_array_size(json_object_get(d, "records"));
    json_decref(d);
    return n;
}

static void provision(sb_engine *e)
{
    const char *a = "{\"id\":\"acme\"}";
    ok(sb_account_put(e, a, strlen(a), res) == 0, "account acme");
    ok(test_put(e, res, sb_agent_put, "acme",
                "{\"id\":\"alice\",\"devices\":{\"softphone\":\"sip:alice@pbx.example\"},"
                "\"status\":\"available\"}") == 0,
       "agent alice");
    ok(test_put(e, res, sb_queue_put, "acme",
                "{\"id\":\"support\",\"members\":[{\"agent\":\"alice\"}]}") == 0,
       "queue support");
}

/* A call from +442079460001 to queue support, abandoned: its record. */
static int record_call(sb_engine *e, const char *id)
{
    char json[160];
    snprintf(json, sizeof json,
             "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"support\","
             "\"caller\":\"+442079460001\"}",
             id);
    if (test_event(e, res, "acme", json)) return -1;
    snprintf(json, sizeof json, "{\"type\":\"abandon\",\"call\":\"%s\"}", id);
    return test_event(e, res, "acme", json);
}

static void test_other_key_refused(void)
{
    sb_engine *e = open_with(NULL);
    ok(e != NULL, "engine opened with the data directory's own master key");
    if (!e) return;
    provision(e);
    ok(record_call(e, "c1") == 0, "a call from +442079460001 recorded");
    is_int(exported(e, "+442079460001"), 1, "an access request finds its record");
    sb_close(e);

    /* Another key file: a new master key is made there, and the engine
    ** must not open on data whose keys it cannot unwrap. */
    e = open_with(other_key);
    ok(e == NULL, "an engine with another master key is refused");
    is_int(sb_result_code(res), SB_ECRYPTO, "... with SB_ECRYPTO");
    ok(sb_result_field(res) && strcmp(sb_result_field(res), "key_file") == 0,
       "... naming key_file");
    ok(strstr(sb_result_message(res), other_key) != NULL,
       "... and the message names the key file (%s)", sb_result_message(res));
    ok(access(other_key, F_OK) != 0, "... and the key file that open made is gone again");
    if (e) { /* the old behaviour: an offer replaced the data key */
        test_event(e, res, "acme",
                   "{\"type\":\"offer\",\"call\":\"c2\",\"queue\":\"support\","
                   "\"caller\":\"+442079460002\"}");
        sb_close(e);
    }

    e = open_with(NULL);
    ok(e != NULL, "the right key still opens the data directory");
    if (!e) return;
    is_int(exported(e, "+442079460001"), 1, "and the record sealed before is still readable");
    ok(test_event(e, res, "acme",
                  "{\"type\":\"offer\",\"call\":\"c3\",\"queue\":\"support\","
                  "\"caller\":\"+442079460001\"}") == 0,
       "and calls are sealed as before");
    sb_close(e);
}

static void test_data_keys_lost(void)
{
    char keys[300], saved[300], master[300], msaved[300];
    snprintf(keys, sizeof keys, "%s/data.keys", dir);
    snprintf(saved, sizeof saved, "%s.keys.saved", dir);
    snprintf(master, sizeof master, "%s/master.key", dir);
    snprintf(msaved, sizeof msaved, "%s.master.saved", dir);
    sb_engine *e = open_with(NULL);
    int before = e ? exported(e, "+442079460001") : -1;
    ok(before > 0, "the account's records are found (%d)", before);
    sb_close(e);

    ok(rename(keys, saved) == 0, "data.keys taken away");
    e = open_with(NULL);
    ok(e == NULL, "an engine on data whose account has no data key is refused");
    is_int(sb_result_code(res), SB_ECRYPTO, "... with SB_ECRYPTO");
    ok(sb_result_field(res) && strcmp(sb_result_field(res), "data_dir") == 0,
       "... naming data_dir");
    const char *m = sb_result_message(res);
    ok(strstr(m, "holds no data key for account 'acme' (1 of 1 accounts)") &&
           strstr(m, "Restore it from the backup") && strstr(m, "SWITCHBOARD_DATA_KEYS_LOST=1"),
       "... saying which account, what to do, and how to go on without (%s)", m);
    ok(access(keys, F_OK) != 0, "... and leaves no data.keys in the missing one's place");
    sb_close(e);

    ok(rename(master, msaved) == 0, "master.key taken away too");
    e = open_with(NULL);
    ok(e == NULL && sb_result_code(res) == SB_ECRYPTO, "refused again (%s)",
       sb_result_message(res));
    ok(access(master, F_OK) != 0, "... and the master key that open made is gone again");
    sb_close(e);
    ok(rename(msaved, master) == 0 && rename(saved, keys) == 0, "both files restored");

    e = open_with(NULL);
    ok(e != NULL, "the restored files open");
    is_int(e ? exported(e, "+442079460001") : -1, before, "and every record is found again");
    sb_close(e);

    ok(rename(keys, saved) == 0, "data.keys taken away again");
    setenv("SWITCHBOARD_DATA_KEYS_LOST", "1", 1);
    e = open_with(NULL);
    unsetenv("SWITCHBOARD_DATA_KEYS_LOST");
    ok(e != NULL, "SWITCHBOARD_DATA_KEYS_LOST=1: it opens (%s)", e ? "" : sb_result_message(res));
    if (!e) {
        rename(saved, keys);
        return;
    }
    is_int(exported(e, "+442079460001"), 0, "the records sealed before are not found");
    ok(record_call(e, "lost1") == 0, "a new call is sealed with a new key");
    is_int(exported(e, "+442079460001"), 1, "and found");
    sb_close(e);
    e = open_with(NULL);
    ok(e != NULL, "the account has a key now: it opens without the variable");
    sb_close(e);
    unlink(saved);
}

/* A call sealed with a key lost for good cannot be routed again: its ring
** timeout fails at every tick. It is put off and logged, and the other
** calls' timers fire (the first failing timer stopped them all, every tick). */
static void test_timer_of_lost_call(void)
{
    char d3[300], keys[300];
    snprintf(d3, sizeof d3, "%s.timers", dir);
    snprintf(keys, sizeof keys, "%s/data.keys", d3);
    rmtree(d3);
    sb_config cfg;
    test_engine_config(&cfg, d3, NULL, 8 << 20);
    cfg.log = log_keep;
    sb_engine *e = NULL;
    ok(sb_open(&e, &cfg, res) == 0, "engine on a new directory");
    if (!e) return;
    const char *a = "{\"id\":\"acme\"}";
    ok(sb_account_put(e, a, strlen(a), res) == 0, "account acme");
    for (int i = 0; i < 2; i++)
        test_put(e, res, sb_agent_put, "acme",
                 i ? "{\"id\":\"bob\",\"devices\":{\"softphone\":\"sip:b@x\"},"
                     "\"status\":\"available\"}"
                   : "{\"id\":\"alice\",\"devices\":{\"softphone\":\"sip:a@x\"},"
                     "\"status\":\"available\"}");
    ok(test_put(e, res, sb_queue_put, "acme",
                "{\"id\":\"support\",\"ring_timeout\":10,"
                "\"members\":[{\"agent\":\"alice\"},{\"agent\":\"bob\"}]}") == 0,
       "queue support, alice and bob, ring timeout 10 s");
    ok(test_event(e, res, "acme",
                  "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"support\","
                  "\"caller\":\"+442079460001\"}") == 0 &&
           test_action_count(res, SB_ACT_RING) == 1,
       "c1 rings an agent");
    sb_close(e);
    e = NULL;
    unlink(keys);
    setenv("SWITCHBOARD_DATA_KEYS_LOST", "1", 1);
    ok(sb_open(&e, &cfg, res) == 0, "opened again with its data keys lost for good");
    unsetenv("SWITCHBOARD_DATA_KEYS_LOST");
    if (!e) return;
    now_ms += 1000;
    /* c2's ring timeout falls due before c1's: the failing timer is not the
    ** first of its batch (the timers before it fire again without it). */
    ok(test_put(e, res, sb_queue_put, "acme",
                "{\"id\":\"support\",\"ring_timeout\":2,"
                "\"members\":[{\"agent\":\"alice\"},{\"agent\":\"bob\"}]}") == 0,
       "the queue's ring timeout now 2 s");
    ok(test_event(e, res, "acme",
                  "{\"type\":\"offer\",\"call\":\"c2\",\"queue\":\"support\","
                  "\"caller\":\"+442079460002\"}") == 0 &&
           test_action_count(res, SB_ACT_RING) == 1,
       "c2, sealed with the new key, rings the other agent, due before c1's");
    now_ms += 30000;
    log_clear();
    int rc = sb_tick(e, res);
    is_int(rc, 0, "the tick past both ring timeouts works (%s)", rc ? sb_result_message(res) : "");
    int c2 = 0;
    for (size_t i = 0; i < sb_result_count(res); i++)
        if (!strcmp(sb_result_action(res, i)->call_id, "c2")) c2++;
    ok(c2 > 0, "c2's ring timeout fired (%d actions)", c2);
    ok(strstr(logbuf, "ring timeout of call 'c1' (account 'acme') failed: ") &&
           strstr(logbuf, "tried again in 60 s, the other timers go on"),
       "c1's is put off, and the log says which and why: %s", logbuf);
    log_clear();
    now_ms += 5000;
    sb_tick(e, res);
    ok(!strstr(logbuf, "'c1'"), "not tried at the next tick");
    now_ms += 60000;
    sb_tick(e, res);
    ok(strstr(logbuf, "ring timeout of call 'c1' (account 'acme') failed: ") != NULL,
       "but a minute on, again");
    sb_close(e);
    rmtree(d3);
}

/* Root takes a key owned by the user whose directory holds it: an operator
** running a command as root on the daemon's data directory (another user's
** key elsewhere is refused: one planted there would seal data with a key its
** owner knows). */
static void test_root_and_owner(void)
{
    if (geteuid() != 0) {
        diag("not root: the owners cannot be changed, skipped");
        return;
    }
    char d4[300], key[320];
    snprintf(d4, sizeof d4, "%s.owner", dir);
    snprintf(key, sizeof key, "%s/master.key", d4);
    rmtree(d4);
    sb_config cfg;
    test_engine_config(&cfg, d4, NULL, 8 << 20);
    sb_engine *e = NULL;
    ok(sb_open(&e, &cfg, res) == 0, "a data directory made by root");
    sb_close(e);
    e = NULL;
    ok(chown(key, 65534, 65534) == 0, "its master key given to uid 65534");
    ok(sb_open(&e, &cfg, res) == SB_ECRYPTO && strstr(sb_result_message(res), "owned by uid 65534"),
       "root refuses it while root owns the directory (%s)", sb_result_message(res));
    sb_close(e);
    e = NULL;
    ok(chown(d4, 65534, 65534) == 0, "the directory given to uid 65534 too (the daemon's user)");
    ok(sb_open(&e, &cfg, res) == 0, "root takes the key of the directory's owner (%s)",
       e ? "" : sb_result_message(res));
    sb_close(e);
    rmtree(d4);
}

static void test_fresh_directory(void)
{
    /* No account has a data key yet: any key will do (a new directory). */
    char fresh[300];
    snprintf(fresh, sizeof fresh, "%s.fresh", dir);
    rmtree(fresh);
    sb_config cfg;
    test_engine_config(&cfg, fresh, NULL, 8 << 20);
    cfg.key_file = other_key;
    sb_engine *e = NULL;
    ok(sb_open(&e, &cfg, res) == 0, "a new data directory opens with any key file");
    const char *a = "{\"id\":\"acme\"}";
    ok(e && sb_account_put(e, a, strlen(a), res) == 0, "and takes an account");
    sb_close(e);
    e = NULL;
    ok(sb_open(&e, &cfg, res) == 0, "and opens again with that key");
    sb_close(e);
    rmtree(fresh);
}

/* An engine that opened before any account existed (nothing to check its
** key against) must not take over an account another process made with
** another master key: the offer is refused and that account's key stays. */
static void test_open_before_other_key(void)
{
    char fresh[300];
    snprintf(fresh, sizeof fresh, "%s.race", dir);
    rmtree(fresh);
    unlink(other_key);
    sb_config cfg;
    test_engine_config(&cfg, fresh, NULL, 8 << 20);
    sb_engine *a = NULL;
    ok(sb_open(&a, &cfg, res) == 0, "engine A opens a new data directory (its own key)");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) { /* process B: another master key, an account, a call */
        sb_result *r = sb_result_new();
        sb_config c2 = cfg;
        c2.key_file = other_key;
        sb_engine *b = NULL;
        const char *acct = "{\"id\":\"acme\"}";
        int bad = sb_open(&b, &c2, r) || sb_account_put(b, acct, strlen(acct), r) ||
                  test_put(b, r, sb_queue_put, "acme", "{\"id\":\"support\"}") ||
                  test_event(b, r, "acme",
                             "{\"type\":\"offer\",\"call\":\"b1\",\"queue\":\"support\","
                             "\"caller\":\"+442079460001\"}") ||
                  test_event(b, r, "acme", "{\"type\":\"abandon\",\"call\":\"b1\"}");
        sb_close(b);
        sb_result_free(r);
        _exit(bad ? 1 : 0);
    }
    int st = -1;
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
       "process B (another master key) made account acme and recorded a call");
    if (a) {
        int rc = test_event(a, res, "acme",
                            "{\"type\":\"offer\",\"call\":\"a1\",\"queue\":\"support\","
                            "\"caller\":\"+442079460002\"}");
        is_int(rc, SB_ECRYPTO, "engine A cannot seal a call of acme: SB_ECRYPTO, nothing written");
        sb_close(a);
    }
    test_engine_config(&cfg, fresh, NULL, 8 << 20);
    cfg.key_file = other_key;
    sb_engine *b = test_open(&cfg, res);
    ok(b != NULL, "B's key opens the data directory again");
    if (b) {
        if (sb_records_export(b, "acme", "+442079460001", SB_EXPORT_JSON, res) == 0) {
            json_t *d = json_loads(sb_result_json(res, NULL), 0, NULL);
            is_int(json_array_size(json_object_get(d, "records")), 1,
                   "and B's record is still readable: its data key was not replaced");
            json_decref(d);
        } else {
            ok(0, "and B's record is still readable (%s)", sb_result_message(res));
        }
        sb_close(b);
    }
    rmtree(fresh);
}

/* The check value of account 1's slot in data.keys (80 bytes in, 16 long):
** read into out, or (out NULL) zeroed, as in a slot written before slots
** had one. 0 on success. */
static int slot_check(const char *data_dir, uint8_t *out)
{
    char path[320];
    uint8_t zero[16] = {0};
    snprintf(path, sizeof path, "%s/data.keys", data_dir);
    int fd = open(path, O_RDWR);
    if (fd < 0) return -1;
    ssize_t n = out ? pread(fd, out, 16, 128 + 80) : pwrite(fd, zero, 16, 128 + 80);
    close(fd);
    return n == 16 ? 0 : -1;
}

/* A slot written before slots had a check value still opens with its key,
** gets one the first time the account seals a call, and from then on
** another master key is refused for it too. */
static void test_unchecked_slot(void)
{
    char d2[300];
    uint8_t check[16], zero[16] = {0};
    snprintf(d2, sizeof d2, "%s.old", dir);
    rmtree(d2);
    unlink(other_key);
    sb_config cfg;
    test_engine_config(&cfg, d2, NULL, 8 << 20);
    sb_engine *e = test_open(&cfg, res);
    if (!e) return;
    const char *a = "{\"id\":\"acme\"}";
    ok(sb_account_put(e, a, strlen(a), res) == 0 &&
           test_put(e, res, sb_queue_put, "acme", "{\"id\":\"support\"}") == 0 &&
           record_call(e, "o1") == 0,
       "an account with a recorded call");
    sb_close(e);
    ok(slot_check(d2, check) == 0 && memcmp(check, zero, 16) != 0,
       "its data key slot carries the master key's check value");
    ok(slot_check(d2, NULL) == 0, "... taken out, as in a slot of an older version");
    e = test_open(&cfg, res);
    ok(e != NULL, "the data directory opens with its key");
    if (!e) return;
    is_int(exported(e, "+442079460001"), 1, "the record sealed before is readable");
    ok(record_call(e, "o2") == 0, "a new call is sealed");
    is_int(exported(e, "+442079460001"), 2, "with the same data key: both records read");
    sb_close(e);
    ok(slot_check(d2, check) == 0 && memcmp(check, zero, 16) != 0,
       "and the slot has its check value again");
    cfg.key_file = other_key;
    e = NULL;
    ok(sb_open(&e, &cfg, res) == SB_ECRYPTO, "another master key is refused");
    sb_close(e);
    rmtree(d2);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sb-masterkey-%d", (int)getpid());
    snprintf(other_key, sizeof other_key, "%s.other.key", dir);
    rmtree(dir);
    unlink(other_key);
    res = sb_result_new();
    test_other_key_refused();
    unlink(other_key);
    test_data_keys_lost();
    test_timer_of_lost_call();
    test_root_and_owner();
    test_fresh_directory();
    test_open_before_other_key();
    test_unchecked_slot();
    sb_result_free(res);
    rmtree(dir);
    unlink(other_key);
    return done_testing();
}
