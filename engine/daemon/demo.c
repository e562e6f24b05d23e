/*
** demo.c — `serve --demo`: the "demo" account with four agents and two
** queues, created through the library on first start, then curl lines to
** try the API. The demo key is kept in <data_dir>/demo.key (0600) so later
** starts can print it again; real keys are shown once and never stored.
*/
#include "serve.h"

#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"

static const char *const agents[] = {
    "{\"id\":\"alice\",\"name\":\"Alice Archer\",\"status\":\"available\","
    "\"devices\":{\"softphone\":\"sip:alice@pbx.demo.example\",\"mobile\":\"tel:+447700900001\","
    "\"landline\":\"tel:+442079460001\"},\"skills\":{\"english\":5,\"billing\":3},"
    "\"preferences\":{\"device\":\"softphone\"},\"timezone\":\"Europe/London\","
    "\"schedule\":[{\"days\":[\"weekdays\"],\"from\":\"09:00\",\"to\":\"17:00\","
    "\"devices\":[\"landline\",\"softphone\"]},{\"days\":[\"all\"],\"from\":\"00:00\","
    "\"to\":\"24:00\",\"devices\":[\"softphone\",\"mobile\"]}]}",
    "{\"id\":\"bob\",\"name\":\"Bob Baker\",\"status\":\"available\","
    "\"devices\":{\"softphone\":\"sip:bob@pbx.demo.example\",\"mobile\":\"tel:+447700900002\"},"
    "\"skills\":{\"english\":4,\"german\":5},\"timezone\":\"Europe/Berlin\","
    "\"schedule\":[{\"days\":[\"all\"],\"from\":\"00:00\",\"to\":\"24:00\","
    "\"devices\":[\"softphone\",\"mobile\"]}]}",
    "{\"id\":\"carol\",\"name\":\"Carol Chen\",\"status\":\"available\","
    "\"devices\":{\"softphone\":\"sip:carol@pbx.demo.example\",\"mobile\":\"tel:+15555550103\"},"
    "\"skills\":{\"english\":5,\"sales\":4},\"preferences\":{\"device\":\"mobile\"},"
    "\"timezone\":\"America/New_York\","
    "\"schedule\":[{\"days\":[\"all\"],\"from\":\"00:00\",\"to\":\"24:00\","
    "\"devices\":[\"softphone\",\"mobile\"]}],\"wrapup\":5}",
    "{\"id\":\"dave\",\"name\":\"Dave Duarte\",\"status\":\"available\","
    "\"devices\":{\"softphone\":\"sip:dave@pbx.demo.example\",\"landline\":\"tel:+15555550104\"},"
    "\"skills\":{\"spanish\":5,\"sales\":3},\"timezone\":\"America/New_York\","
    "\"schedule\":[{\"days\":[\"weekdays\"],\"from\":\"08:00\",\"to\":\"20:00\","
    "\"devices\":[\"landline\"]},{\"days\":[\"all\"],\"from\":\"00:00\",\"to\":\"24:00\","
    "\"devices\":[\"softphone\"]}]}",
};

static const char *const queues[] = {
    "{\"id\":\"support\",\"policy\":\"freeswitch/"
    "longest-idle-agent\",\"ring_timeout\":20,\"max_wait\":300,"
    "\"members\":[{\"agent\":\"alice\",\"tier\":1},{\"agent\":\"bob\",\"tier\":1},"
    "{\"agent\":\"carol\",\"tier\":2},{\"agent\":\"dave\",\"tier\":2}]}",
    "{\"id\":\"sales\",\"policy\":\"freeswitch/round-robin\",\"ring_timeout\":15,"
    "\"members\":[{\"agent\":\"carol\",\"position\":1},{\"agent\":\"dave\",\"position\":2},"
    "{\"agent\":\"alice\",\"position\":3}]}",
};

static int step(sbd *d, int rc, const char *what)
{
    if (rc != 0)
        sbd_log(SB_LOG_ERROR, "demo setup failed", "step=%s error=%s", sbd_q(what),
                sbd_q(sb_result_message(d->res)));
    return rc;
}

static int create(sbd *d, char *key, size_t keylen)
{
    sb_engine *e = d->eng;
    static const char acct[] = "{\"id\":\"demo\",\"name\":\"Demo Ltd\"}";
    if (step(d, sb_account_put(e, acct, strlen(acct), d->res), "account")) return -1;
    for (size_t i = 0; i < sizeof agents / sizeof agents[0]; i++)
        if (step(d, sb_agent_put(e, "demo", agents[i], strlen(agents[i]), d->res), "agent"))
            return -1;
    for (size_t i = 0; i < sizeof queues / sizeof queues[0]; i++)
        if (step(d, sb_queue_put(e, "demo", queues[i], strlen(queues[i]), d->res), "queue"))
            return -1;
    if (step(d, sb_apikey_create(e, "demo", d->res), "api key")) return -1;
    json_t *k = json_loads(sb_result_json(d->res, NULL), 0, NULL);
    const char *ks = json_string_value(json_object_get(k, "key"));
    snprintf(key, keylen, "%s", ks ? ks : "");
    json_decref(k);
    return sb_sync(e);
}

/* s as one shell word: as it is when it needs no quoting, else in single
** quotes. */
static void shell_word(const char *s, char *out, size_t n)
{
    if (*s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._-+:,@") ==
                  strlen(s)) {
        snprintf(out, n, "%s", s);
        return;
    }
    size_t o = 0;
    if (o + 1 < n) out[o++] = '\'';
    for (; *s && o + 5 < n; s++) {
        if (*s == '\'') {
            memcpy(out + o, "'\\''", 4); /* close, a quoted quote, reopen */
            o += 4;
        } else {
            out[o++] = *s;
        }
    }
    if (o + 1 < n) out[o++] = '\'';
    out[o < n ? o : n - 1] = 0;
}

int sbd_demo_setup(sbd *d)
{
    char path[PATH_MAX], key[256] = "";
    snprintf(path, sizeof path, "%s/demo.key", d->cfg->data_dir);
    int created = 0;
    if (sb_account_get(d->eng, "demo", d->res) == SB_ENOTFOUND) {
        if (create(d, key, sizeof key) != 0) return -1;
        created = 1;
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) {
            if (write(fd, key, strlen(key)) < 0) sbd_log(SB_LOG_WARN, "cannot save demo key", NULL);
            close(fd);
        }
        sbd_log(SB_LOG_INFO, "demo account created", "account=demo agents=4 queues=2");
    } else {
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(key, sizeof key, f)) key[0] = 0;
            key[strcspn(key, "\r\n")] = 0;
            fclose(f);
        }
    }
    /* The variables engine/daemon/API.md's examples use, so they can be
    ** pasted after these lines: SB the base URL, KEY and AUTH (curl's
    ** option for HTTP Basic account:key), ADMIN the admin token header. */
    /* Absolute paths: the second terminal starts elsewhere (its home). */
    char tok[PATH_MAX + 8], abs_tok[PATH_MAX], abs_dir[PATH_MAX];
    const char *tokp = realpath(d->admin_token_path, abs_tok) ? abs_tok : d->admin_token_path;
    const char *dirp = realpath(d->cfg->data_dir, abs_dir) ? abs_dir : d->cfg->data_dir;
    shell_word(tokp, tok, sizeof tok);
    const char *a = d->listen_addr;
    char api[PATH_MAX];
    sbd_doc_path("API.md", "engine/daemon/API.md", api, sizeof api);
    printf(
        "\n"
        "Switchboard demo %s on http://%s\n"
        "  account: demo   api key: %s\n"
        "  agents: alice, bob, carol, dave   queues: support (freeswitch/longest-idle-agent),"
        " sales (freeswitch/round-robin)\n"
        "  admin token: in %s (Authorization: Bearer ...; e.g. GET /metrics)\n\n"
        "Try it in a second terminal (the variables are the ones the examples of\n"
        "%s use, so those work after these lines too):\n"
        "  export SB=http://%s\n"
        "  export KEY=%s%s\n"
        "  export AUTH=\"-u demo:$KEY\"\n"
        "  export ADMIN=\"Authorization: Bearer $(cat %s)\"\n"
        "  curl -sN $AUTH $SB/v1/events &        # the action stream: what no response\n"
        "                                        # carries (timers, calls rung for others)\n"
        "  curl -s $AUTH $SB/v1/queues/support\n"
        "  curl -s $AUTH -d '{\"call\":\"c1\",\"queue\":\"support\",\"caller\":\"+441632960001\"}'"
        " $SB/v1/calls\n"
        "  # answer with the agent from the ring action above:\n"
        "  curl -s $AUTH -d '{\"agent\":\"alice\",\"outcome\":\"answered\"}'"
        " $SB/v1/calls/c1/ring_result\n"
        "  curl -s $AUTH $SB/v1/calls/c1   # the live call: state, attempts, decision trace\n"
        "  curl -s $AUTH -X POST $SB/v1/calls/c1/hangup\n"
        "  curl -s $AUTH $SB/v1/calls/c1   # now its record: outcome, times, attempts,\n"
        "                                  # policy versions (a record keeps no trace)\n"
        "  curl -s $AUTH -d '{\"status\":\"paused\",\"reason\":\"lunch\"}'"
        " $SB/v1/agents/bob/status\n\n"
        "The demo's state stays in %s between runs; for a fresh one, stop\n"
        "the daemon and remove that directory.\n\n",
        created ? "ready (created now)" : "ready", a,
        *key ? key : "<the key printed when the demo account was created>", tokp, api, a,
        *key ? key : "",
        *key ? "" : "   # the key printed when the demo account was created (not saved)", tok,
        dirp);
    fflush(stdout);
    return 0;
}
