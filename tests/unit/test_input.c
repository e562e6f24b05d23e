/*
** test_input.c — validation and encoding of what comes in and goes out:
** E.164 numbers (util.c), identifiers, the strict JSON field readers
** (jsonv.c), error messages and fields as results carry and render them
** (result.c), and stored call records that are corrupt (model.c): each must
** be refused, or rendered as valid JSON, never crash.
*/
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"

#include "engine.h" /* DB_CALLS: a call record corrupted in the data file */
#include "jsonv.h"
#include "model.h"

#include <jansson.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

static char dir[256];

/* --- E.164 ---------------------------------------------------------------- */

static void test_e164(void)
{
    static const struct {
        const char *in, *out; /* out NULL: refused */
    } cases[] = {
        {"+442079460001", "+442079460001"},
        {"+44 20 7946 0001", "+442079460001"},
        {"+44-20-7946-0001", "+442079460001"},
        {"+44.20.7946.0001", "+442079460001"},
        {"+44 (20) 7946 0001", "+442079460001"},
        {"+44 (0)20 7946 0001", "+442079460001"}, /* the trunk prefix: not dialled from abroad */
        {"+44(0)2079460001", "+442079460001"},
        {"+(0)442079460001", NULL},            /* not before the country code */
        {"+39 06 6982 0001", "+390669820001"}, /* a 0 that is part of the number stays */
        {" +442079460001", "+442079460001"},
        {"+12", "+12"},
        {"+123456789012345", "+123456789012345"}, /* 15 digits */
        {"+1234567890123456", NULL},              /* 16 */
        {"+1", NULL},
        {"+", NULL},
        {"", NULL},
        {"442079460001", NULL},
        {"00442079460001", NULL},
        {"+0442079460001", NULL},   /* country codes never start with 0 */
        {"+44 20 7946 000x", NULL}, /* letters */
        {"+44\t2079460001", NULL},  /* a tab is no separator */
        {"\xef\xbc\x8b"
         "442079460001",
         NULL},                              /* fullwidth plus */
        {"+\xef\xbc\x94\xef\xbc\x94", NULL}, /* fullwidth digits */
        {"+\xd9\xa4\xd9\xa4"
         "2079460001",
         NULL}, /* Arabic-Indic digits */
        {"+ - ( ) .", NULL},
    };
    for (size_t i = 0; i < countof(cases); i++) {
        char out[SB_E164_MAX + 1] = "";
        int rc = e164_normalize(cases[i].in, out);
        if (cases[i].out) {
            char again[SB_E164_MAX + 1] = "";
            ok(rc == 0 && strcmp(out, cases[i].out) == 0 && e164_normalize(out, again) == 0 &&
                   strcmp(again, out) == 0,
               "e164: '%s' is %s (and stays so normalized again)", cases[i].in, cases[i].out);
        } else {
            ok(rc != 0, "e164: '%s' is refused", cases[i].in);
        }
    }
    ok(e164_normalize(NULL, (char[SB_E164_MAX + 1]){0}) != 0, "e164: NULL is refused");
}

/* --- identifiers ------------------------------------------------------------ */

static void test_ids(void)
{
    char id[SB_ID_MAX + 2];
    memset(id, 'a', sizeof id);
    id[SB_ID_MAX] = 0;
    ok(id_valid(id), "id: 128 bytes");
    id[SB_ID_MAX] = 'a';
    id[SB_ID_MAX + 1] = 0;
    ok(!id_valid(id), "id: 129 bytes refused");
    ok(id_valid("A-z_0.9:x@y+1"), "id: every allowed character");
    static const char *const bad[] = {"", "a b", "a/b", "a\x01", "\xc3\xa9", "a,b", "a%20"};
    for (size_t i = 0; i < countof(bad); i++)
        ok(!id_valid(bad[i]), "id: '%s' refused", bad[i]);
    ok(!id_valid(NULL), "id: NULL refused");
}

/* --- JSON fields ------------------------------------------------------------ */

static int int_field(const char *doc, long long lo, long long hi, long long *v, sb_result *res)
{
    json_t *j;
    int rc = jv_parse(doc, strlen(doc), &j, res);
    if (!rc) rc = jv_int(j, "n", NULL, 1, lo, hi, v, res);
    json_decref(j);
    return rc;
}

static void test_json_ints(sb_result *res)
{
    long long v = -1;
    ok(int_field("{\"n\":1e3}", 0, 5000, &v, res) == 0 && v == 1000, "int: 1e3 reads as 1000");
    ok(int_field("{\"n\":2.0}", 0, 5000, &v, res) == 0 && v == 2, "int: 2.0 reads as 2");
    ok(int_field("{\"n\":1.5}", 0, 5000, &v, res) == SB_EINVAL &&
           strcmp(sb_result_field(res), "n") == 0,
       "int: 1.5 refused, naming the field");
    ok(int_field("{\"n\":-1}", 0, 5000, &v, res) == SB_EINVAL &&
           strcmp(sb_result_field(res), "n") == 0,
       "int: -1 refused where unsigned");
    ok(int_field("{\"n\":9007199254740993}", 0, 5000, &v, res) == SB_EINVAL,
       "int: 2^53+1 refused by its range");
    ok(int_field("{\"n\":1e17}", 0, INT64_MAX, &v, res) == SB_EINVAL,
       "int: 1e17 (not exact as a double) refused");
    ok(int_field("{\"n\":99999999999999999999}", 0, 5000, &v, res) == SB_EINVAL,
       "int: past 64 bits refused");
    ok(int_field("{\"n\":\"5\"}", 0, 5000, &v, res) == SB_EINVAL, "int: a string refused");
}

/* --- results: fields and messages cut in the middle of a character --------- */

static int valid_error_json(sb_result *res, const char *want_field_prefix)
{
    size_t len;
    const char *js = sb_result_json(res, &len);
    json_t *doc = json_loadb(js, len, 0, NULL);
    json_t *e = json_object_get(doc, "error");
    json_t *f = json_object_get(e, "field");
    int good =
        e && json_is_string(json_object_get(e, "message")) && f &&
        (want_field_prefix ? json_is_string(f) && strncmp(json_string_value(f), want_field_prefix,
                                                          strlen(want_field_prefix)) == 0
                           : json_is_null(f));
    if (!good) diag("  result JSON: %.300s", js);
    json_decref(doc);
    return good;
}

static void test_cut_utf8(sb_result *res)
{
    /* An unknown key of 300 two-byte characters: its path (the field) is
    ** cut at 255 bytes, in the middle of one. */
    sb_buf doc = {0};
    buf_puts(&doc, "{\"");
    for (int i = 0; i < 300; i++)
        buf_puts(&doc, "\xc3\xa9");
    buf_puts(&doc, "\":1}");
    json_t *j;
    static const char *const keys[] = {"id", NULL};
    int rc = jv_parse(doc.p, doc.len, &j, res);
    if (!rc) rc = jv_keys(j, keys, NULL, res);
    json_decref(j);
    ok(rc == SB_EINVAL && sb_result_field(res) && utf8_valid(sb_result_field(res)),
       "long unknown key: the field is valid UTF-8");
    ok(valid_error_json(res, "\xc3\xa9\xc3\xa9"), "long unknown key: the error JSON names it");
    const char *f = sb_result_field(res);
    ok(f && !strchr(f, '?'), "long unknown key: the cut leaves no replacement character");

    /* A message cut at its limit in the middle of a character. */
    buf_clear(&doc);
    for (int i = 0; i < 700; i++)
        buf_puts(&doc, "\xc3\xa9");
    for (int shift = 0; shift < 3; shift++) {
        res_err(res, SB_EPOLICY, NULL, "%.*s%s", shift, "xx", doc.p);
        const char *m = sb_result_message(res);
        size_t n = strlen(m);
        ok(utf8_valid(m) && n > 1000 && m[n - 1] != '?',
           "long message (shift %d): cut between characters", shift);
    }
    ok(valid_error_json(res, NULL), "long message: valid error JSON");

    /* A field given with bytes that are not UTF-8 (a policy's name, say). */
    res_err(res, SB_EPOLICY,
            "bad\xff"
            "name",
            "failed");
    ok(sb_result_field(res) && utf8_valid(sb_result_field(res)),
       "a field that is not UTF-8 is made UTF-8");
    ok(valid_error_json(res, "bad"), "a field that is not UTF-8 still appears in the JSON");
    buf_free(&doc);
}

/* --- stored call records -------------------------------------------------- */

static int encode_decode(call_rec *c)
{
    wbuf w = {{0}, 0};
    enc_call(&w, c);
    call_rec *d = calloc(1, sizeof *d);
    int rc = w.err ? -1 : dec_call(w.b.p, w.b.len, d);
    call_free(d);
    free(d);
    buf_free(&w.b);
    return rc;
}

static void test_call_codec(void)
{
    call_rec *c = calloc(1, sizeof *c);
    strcpy(c->id, "c1");
    c->state = CALL_WAITING;
    call_trace(c, 1000, TR_RING, 0, "longest-idle", "0123456789abcdef", "ring alice/softphone");
    is_int(encode_decode(c), 0, "call: a record with a trace decodes");
    c->trace[0].kind = TR_ERROR;
    is_int(encode_decode(c), 0, "call: trace kind error decodes");
    c->trace[0].kind = TR_ERROR + 1;
    is_int(encode_decode(c), SB_ESTORE, "call: a trace kind past the last is corrupt");
    c->trace[0].kind = 0;
    is_int(encode_decode(c), SB_ESTORE, "call: trace kind 0 is corrupt");
    c->trace[0].kind = 200;
    is_int(encode_decode(c), SB_ESTORE, "call: trace kind 200 is corrupt");

    /* A long detail (a policy's reason, say) is cut to fit the trace: between
    ** characters, then "...". */
    sb_buf d = {0};
    buf_puts(&d, "x");
    for (int i = 0; i < 300; i++)
        buf_puts(&d, "\xc3\xa9");
    call_trace(c, 2000, TR_REJECT, 0, "longest-idle", "0123456789abcdef", d.p);
    const char *got = c->trace[c->ntrace - 1].detail;
    size_t n = strlen(got);
    ok(utf8_valid(got) && n > 200 && strcmp(got + n - 3, "...") == 0 && !strchr(got, '?'),
       "call: a long trace detail is cut between characters");
    buf_free(&d);
    call_free(c);
    free(c);
}

/* Rewrite call c1's stored record (the engine closed) with its first trace
** entry's kind set to `kind`. */
static int corrupt_trace_kind(uint8_t kind)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    MDB_val k, v;
    int done = 0;
    if (mdb_env_create(&env)) return 0;
    mdb_env_set_mapsize(env, 32 << 20);
    if (mdb_env_open(env, dir, 0, 0600) == 0 && mdb_txn_begin(env, NULL, 0, &txn) == 0) {
        if (mdb_dbi_open(txn, NULL, 0, &dbi) == 0 && mdb_cursor_open(txn, dbi, &cur) == 0) {
            for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && !done;
                 rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
                const uint8_t *kb = k.mv_data;
                if (k.mv_size != 7 || kb[0] != DB_CALLS + 1 || memcmp(kb + 5, "c1", 2)) continue;
                call_rec *c = calloc(1, sizeof *c);
                wbuf w = {{0}, 0};
                if (dec_call(v.mv_data, v.mv_size, c) == 0 && c->ntrace > 0) {
                    c->trace[0].kind = kind;
                    enc_call(&w, c);
                    MDB_val nv = {w.b.len, w.b.p};
                    MDB_val key = {k.mv_size, k.mv_data};
                    done = !w.err && mdb_put(txn, dbi, &key, &nv, 0) == 0;
                }
                buf_free(&w.b);
                call_free(c);
                free(c);
            }
            mdb_cursor_close(cur);
        }
        mdb_txn_commit(txn);
    }
    mdb_env_close(env);
    return done;
}

static void test_corrupt_call(sb_result *res)
{
    sb_config cfg;
    test_engine_config(&cfg, dir, NULL, 32 << 20);
    sb_engine *eng = test_open(&cfg, res);
    if (!eng) return;
    static const char acct[] = "{\"id\":\"acme\"}";
    static const char agent[] = "{\"id\":\"alice\",\"status\":\"available\","
                                "\"devices\":{\"softphone\":\"sip:alice@pbx.example\"}}";
    static const char queue[] = "{\"id\":\"support\",\"members\":[{\"agent\":\"alice\"}]}";
    static const char offer[] =
        "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"support\",\"caller\":\"+442079460001\"}";
    ok(sb_account_put(eng, acct, strlen(acct), res) == 0 &&
           test_put(eng, res, sb_agent_put, "acme", agent) == 0 &&
           test_put(eng, res, sb_queue_put, "acme", queue) == 0 &&
           test_event(eng, res, "acme", offer) == 0,
       "corrupt call: c1 offered and ringing alice");
    is_int(sb_call_get(eng, "acme", "c1", res), 0, "corrupt call: c1 reads before");
    /* A C caller passing sizeof (the NUL counted) is told so. */
    static const char again[] = "{\"id\":\"acme\"}";
    int nrc = sb_account_put(eng, again, sizeof again, res);
    ok(nrc == SB_EINVAL && strstr(sb_result_message(res), "counts the string's terminating NUL"),
       "a length with the terminating NUL: %s", sb_result_message(res));
    sb_close(eng);
    ok(corrupt_trace_kind(77), "corrupt call: c1's trace kind set to 77 in the data file");
    eng = test_open(&cfg, res);
    if (!eng) return;
    is_int(sb_call_get(eng, "acme", "c1", res), SB_ESTORE,
           "corrupt call: reading c1 is a storage error, not a crash");
    sb_close(eng);
}

static int field_is(const sb_result *res, const char *f)
{
    return sb_result_field(res) && !strcmp(sb_result_field(res), f);
}

/* Read one document (get) and put it back as it was read (put): its code. */
static int put_back(sb_engine *eng, sb_result *res, int get_rc, const char *acct,
                    int (*put)(sb_engine *, const char *, const char *, size_t, sb_result *))
{
    if (get_rc) return get_rc;
    size_t n;
    char *doc = strdup(sb_result_json(res, &n));
    int rc = put ? put(eng, acct, doc, n, res) : sb_account_put(eng, doc, n, res);
    if (rc) diag("put back %s: %s", doc, sb_result_message(res));
    free(doc);
    return rc;
}

/* A document as GET answers it can be put back (read, edit, put): the
** fields a read adds (an account's created_ms, an agent's live state and
** figures, a queue's line, a member's status) are ignored by a put, not
** refused as unknown, and none of them is stored or changes anything. */
static void test_put_back(sb_result *res)
{
    sb_config cfg;
    test_engine_config(&cfg, dir, NULL, 32 << 20);
    rmtree(dir);
    sb_engine *eng = test_open(&cfg, res);
    if (!eng) return;
    static const char acct[] = "{\"id\":\"acme\",\"timezone\":\"Europe/Berlin\"}";
    ok(sb_account_put(eng, acct, strlen(acct), res) == 0 &&
           test_put(eng, res, sb_agent_put, "acme",
                    "{\"id\":\"alice\",\"status\":\"available\","
                    "\"devices\":{\"softphone\":\"sip:alice@pbx.example\"}}") == 0 &&
           test_put(eng, res, sb_agent_put, "acme",
                    "{\"id\":\"bob\",\"devices\":{\"mobile\":\"sip:bob@pbx.example\"}}") == 0 &&
           test_put(
               eng, res, sb_queue_put, "acme",
               "{\"id\":\"support\",\"members\":[{\"agent\":\"alice\"},{\"agent\":\"bob\"}]}") ==
               0 &&
           test_event(eng, res, "acme",
                      "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"support\"}") == 0 &&
           test_event(eng, res, "acme",
                      "{\"type\":\"ring_result\",\"call\":\"c1\",\"agent\":\"alice\","
                      "\"outcome\":\"answered\"}") == 0 &&
           test_event(eng, res, "acme",
                      "{\"type\":\"agent_status\",\"agent\":\"bob\",\"status\":\"paused\","
                      "\"reason\":\"lunch\"}") == 0 &&
           test_event(eng, res, "acme",
                      "{\"type\":\"offer\",\"call\":\"c2\",\"queue\":\"support\"}") == 0,
       "put back: alice on c1, bob paused for lunch, c2 waiting");
    is_int(put_back(eng, res, sb_account_get(eng, "acme", res), NULL, NULL), 0,
           "put back: the account as read (created_ms)");
    is_int(put_back(eng, res, sb_agent_get(eng, "acme", "alice", res), "acme", sb_agent_put), 0,
           "put back: alice as read on a call (status on_call, call, stats, queues...)");
    is_int(put_back(eng, res, sb_agent_get(eng, "acme", "bob", res), "acme", sb_agent_put), 0,
           "put back: bob as read while paused (reason)");
    is_int(put_back(eng, res, sb_queue_get(eng, "acme", "support", res), "acme", sb_queue_put), 0,
           "put back: the queue as read with a call waiting (waiting, members' status)");
    size_t n;
    sb_agent_get(eng, "acme", "alice", res);
    json_t *a = json_loads(sb_result_json(res, &n), 0, NULL);
    sb_agent_get(eng, "acme", "bob", res);
    json_t *b = json_loads(sb_result_json(res, &n), 0, NULL);
    sb_queue_get(eng, "acme", "support", res);
    json_t *q = json_loads(sb_result_json(res, &n), 0, NULL);
    ok(a && !strcmp(json_string_value(json_object_get(a, "status")), "on_call") &&
           !strcmp(json_string_value(json_object_get(a, "call")), "c1") && b &&
           !strcmp(json_string_value(json_object_get(b, "status")), "paused") &&
           !strcmp(json_string_value(json_object_get(b, "reason")), "lunch") && q &&
           json_integer_value(json_object_get(q, "waiting")) == 1,
       "put back: nothing changed (alice on c1, bob paused for lunch, c2 waiting)");
    json_decref(a);
    json_decref(b);
    json_decref(q);
    /* Figures put with a document are not stored: the next read has the
    ** engine's own. */
    ok(test_put(eng, res, sb_agent_put, "acme",
                "{\"id\":\"bob\",\"devices\":{\"mobile\":\"sip:bob@pbx.example\"},"
                "\"stats\":{\"calls_taken\":99},\"queues\":[\"elsewhere\"],"
                "\"on_schedule\":false}") == 0 &&
           sb_agent_get(eng, "acme", "bob", res) == 0 &&
           strstr(sb_result_json(res, &n), "\"calls_taken\":0") &&
           strstr(sb_result_json(res, &n), "\"queues\":[\"support\"]") &&
           strstr(sb_result_json(res, &n), "\"on_schedule\":true"),
       "put back: an agent's figures put are not stored");
    /* A live state names what a replace keeps; a new agent cannot start so. */
    static const char carol[] = "{\"id\":\"carol\",\"status\":\"on_call\","
                                "\"devices\":{\"mobile\":\"sip:carol@pbx.example\"}}",
                      busy[] = "{\"id\":\"bob\",\"status\":\"busy\","
                               "\"devices\":{\"mobile\":\"sip:bob@pbx.example\"}}",
                      stat[] = "{\"id\":\"bob\",\"stat\":{}}";
    int rc = sb_agent_put(eng, "acme", carol, strlen(carol), res);
    ok(rc == SB_EINVAL && field_is(res, "status") && strstr(sb_result_message(res), "new agent"),
       "put back: a new agent with status on_call refused: %s", sb_result_message(res));
    ok(sb_agent_get(eng, "acme", "carol", res) == SB_ENOTFOUND, "... and not made");
    rc = sb_agent_put(eng, "acme", busy, strlen(busy), res);
    ok(rc == SB_EINVAL && field_is(res, "status"),
       "put back: a status no read answers is still refused: %s", sb_result_message(res));
    rc = sb_agent_put(eng, "acme", stat, strlen(stat), res);
    ok(rc == SB_EINVAL && field_is(res, "stat"), "put back: an unknown field is still refused: %s",
       sb_result_message(res));
    /* An unknown field close to none of a few: those few named. */
    static const char desk[] =
        "{\"id\":\"dan\",\"devices\":{\"deskphone\":\"sip:dan@pbx.example\"}}";
    rc = sb_agent_put(eng, "acme", desk, strlen(desk), res);
    ok(rc == SB_EINVAL && field_is(res, "devices.deskphone") &&
           strstr(sb_result_message(res),
                  "unknown field 'deskphone' (expected landline, mobile or softphone)"),
       "an unknown device names the three there are: %s", sb_result_message(res));
    static const char both[] =
        "{\"type\":\"transfer\",\"call\":\"c1\",\"queue\":\"support\",\"agent\":\"bob\"}";
    rc = sb_submit_json(eng, "acme", both, strlen(both), res);
    ok(rc == SB_EINVAL && strstr(sb_result_message(res), "a queue or an agent, not both"),
       "a transfer to a queue and an agent: not both: %s", sb_result_message(res));
    sb_close(eng);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sb-test-input-%d", (int)getpid());
    rmtree(dir);
    sb_result *res = sb_result_new();
    test_e164();
    test_ids();
    test_json_ints(res);
    test_cut_utf8(res);
    test_call_codec();
    test_corrupt_call(res);
    test_put_back(res);
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
}
