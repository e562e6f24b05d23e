/*
** test_status.c — every SB_E* code the library has maps to a sensible HTTP
** status in the daemon (sbd_api_status): 500 only for what is wrong inside
** the server, and the table in engine/daemon/API.md says the same.
**
** The codes are found through sb_strerror(), so a code added to the library
** and not given a status here (and in sbd_api_status) fails this test.
**
** And the error body the daemon writes (sbd_api_error) keeps its code,
** message and field whatever their bytes: text that is not UTF-8, which
** JSON cannot hold, has those bytes replaced, not the whole field dropped.
*/
#include "serve.h"
#include "switchboard.h"
#include "tap.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int status;
} want[] = {
    {"SB_EINVAL", 400},   {"SB_ENOTFOUND", 404}, {"SB_EEXIST", 409}, {"SB_ESTATE", 409},
    {"SB_EPOLICY", 422},  {"SB_EFULL", 503},     {"SB_ESTORE", 500}, {"SB_ENOMEM", 503},
    {"SB_EBUSY", 503},    {"SB_EAUTH", 401},     {"SB_ELIMIT", 429}, {"SB_ECRYPTO", 500},
    {"SB_EVERSION", 500}, {"SB_EHOLD", 409},
};
#define NWANT (sizeof want / sizeof want[0])

/* "SB_EHOLD" from "SB_EHOLD: under legal hold". */
static void code_name(int code, char *buf, size_t n)
{
    const char *m = sb_strerror(code);
    snprintf(buf, n, "%.*s", (int)strcspn(m, ":"), m);
}

/* The status API.md's table gives the code, or 0. */
static int documented(const char *doc, const char *name)
{
    char tick[40];
    snprintf(tick, sizeof tick, "`%s`", name);
    for (const char *l = doc; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        const char *e = strchr(l, '\n');
        size_t len = e ? (size_t)(e - l) : strlen(l);
        const char *hit = strstr(l, tick);
        if (l[0] != '|' || !hit || (size_t)(hit - l) >= len) continue;
        const char *bar = strchr(hit, '|');
        if (bar && (size_t)(bar - l) < len) return atoi(bar + 1);
    }
    return 0;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    (void)n;
    fclose(f);
    return buf;
}

int main(void)
{
    const char *root = getenv("SB_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/engine/daemon/API.md", root ? root : ".");
    char *doc = slurp(path);
    ok(doc != NULL, "read %s", path);

    int found[NWANT] = {0};
    /* Codes run down from SB_EINVAL; stop after a long run of unknown ones. */
    for (int code = SB_EINVAL, misses = 0; misses < 100; code--) {
        char name[40];
        code_name(code, name, sizeof name);
        if (!strcmp(name, "SB_E?")) {
            misses++;
            continue;
        }
        misses = 0;
        size_t i = 0;
        while (i < NWANT && strcmp(want[i].name, name))
            i++;
        if (!ok(i < NWANT, "%s (%d) has an expected status", name, code)) {
            diag("  a new library code: give it a status in sbd_api_status (engine/daemon/api.c),");
            diag("  in API.md's table and here; 500 only if it is an internal error");
            continue;
        }
        found[i] = 1;
        int st = sbd_api_status(code);
        is_int(st, want[i].status, "%s answers %d", name, want[i].status);
        if (doc) is_int(documented(doc, name), st, "... and API.md says %d", st);
    }
    for (size_t i = 0; i < NWANT; i++)
        ok(found[i], "%s is a library code", want[i].name);
    is_int(sbd_api_status(SB_OK), 200, "SB_OK answers 200");
    is_int(sbd_api_status(-31999), 500, "an unknown code answers 500");

    /* Error bodies: message and field as given, or with their stray bytes
    ** replaced by U+FFFD. */
    static const struct {
        const char *message, *field, *want_message, *want_field;
    } errs[] = {
        {"plain", "name", "plain", "name"},
        {"caf\xc3\xa9 \"q\" \\ \n", "k\xc3\xa9y", "caf\xc3\xa9 \"q\" \\ \n", "k\xc3\xa9y"},
        {"bad \xff byte", "name", "bad \xef\xbf\xbd byte", "name"},
        {"cut \xc3", "f\xfe\x01\"", "cut \xef\xbf\xbd", "f\xef\xbf\xbd\x01\""},
        {"", NULL, "", NULL},
    };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        sbd_reply rep;
        memset(&rep, 0, sizeof rep);
        rep.body = evbuffer_new();
        sbd_api_error(&rep, 400, "SB_EINVAL", errs[i].message, errs[i].field);
        size_t n = evbuffer_get_length(rep.body);
        char *body = calloc(1, n + 1);
        evbuffer_remove(rep.body, body, n);
        json_t *j = json_loads(body, 0, NULL);
        json_t *e = json_object_get(j, "error");
        const char *m = json_string_value(json_object_get(e, "message"));
        json_t *f = json_object_get(e, "field");
        ok(j && rep.status == 400 && json_is_string(json_object_get(e, "code")) &&
               !strcmp(json_string_value(json_object_get(e, "code")), "SB_EINVAL"),
           "error body %zu: valid JSON, status and code kept (%s)", i, body);
        ok(m && !strcmp(m, errs[i].want_message), "... the message kept");
        ok(errs[i].want_field
               ? json_is_string(f) && !strcmp(json_string_value(f), errs[i].want_field)
               : json_is_null(f),
           "... the field kept");
        json_decref(j);
        free(body);
        evbuffer_free(rep.body);
    }
    free(doc);
    return done_testing();
}
