/*
** gateway.c — a small gateway embedding the Switchboard library.
**
** Reads call events as JSON lines on stdin (sb_submit_json's shape, e.g.
** {"type":"offer","call":"c1","queue":"support","caller":"+442079460001"}),
** hands each to the engine and prints the actions it caused, one JSON object
** per line, in the order a gateway applies them:
**
**   {"type":"ring","account":"acme","call":"c1","agent":"alice",
**    "device":"softphone","uri":"sip:alice@pbx.example","queue":"support","timeout":20,"attempt":1}
**
** A refused event prints the engine's error instead
** ({"error":{"code":"SB_EINVAL","message":"...","field":"caller"}}) and the
** gateway carries on; an event whose sync failed after it committed prints
** its error ("sync: ...") and then its actions, as the event stands.
** Between events it sleeps until the engine's next timer
** (sb_next_deadline) and fires it with sb_tick, printing those actions
** too: ring timeouts, wrap-up ends, policy wake-ups; a tick that fails is
** reported on stderr ("gateway: tick: ...") and tried again a second later.
** It exits at the end of its input or on SIGINT/SIGTERM.
**
**   usage: gateway --data-dir DIR [--policy-dir DIR] [--account ID]
**                  [--sync group|sync|none]
**
** Build against the source tree (make builds build/libswitchboard.a):
**   cc -std=c11 -Iengine/include examples/c-gateway/gateway.c -o gateway \
**      build/libswitchboard.a $(pkg-config --libs lua5.4 lmdb libsodium jansson) -lpthread -lm
** or against an installed library (make install):
**   cc -std=c11 examples/c-gateway/gateway.c -o gateway $(pkg-config --cflags --libs switchboard)
** examples/c-gateway/README.md walks through a session.
*/
#define _POSIX_C_SOURCE 200809L
#include <switchboard.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

/* A tick that fails (a full or failing disk) leaves its timers due, and
** sb_next_deadline in the past: it is tried again this much later, not at
** once, or the loop would spin and print an error line after another. */
#define TICK_RETRY_MS 1000

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* Milliseconds since the epoch: the clock the engine uses when none is injected. */
static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Print "key":"value" (value JSON-escaped), preceded by a comma. NULL prints nothing. */
static void put_str(const char *key, const char *v)
{
    if (!v) return;
    printf(",\"%s\":\"", key);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", stdout);
        else if (*p == '\t')
            fputs("\\t", stdout);
        else if (*p == '\r')
            fputs("\\r", stdout);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static const char *const type_names[] = {"?",        "ring", "cancel", "connect", "reject",
                                         "overflow", "wait", "end",    "agent"};

/* One line per action, the same shape as sb_result_json's "actions". */
static void print_actions(const sb_result *res)
{
    for (size_t i = 0; i < sb_result_count(res); i++) {
        const sb_action *a = sb_result_action(res, i);
        unsigned t = (unsigned)a->type;
        printf("{\"type\":\"%s\"",
               t < sizeof type_names / sizeof *type_names ? type_names[t] : "?");
        put_str("account", a->account);
        put_str("call", a->call_id);
        put_str("agent", a->agent_id);
        put_str("device", a->device);
        put_str("uri", a->uri);
        put_str("queue", a->queue_id);
        put_str("reason", a->reason);
        put_str("status", a->status);
        if (a->type == SB_ACT_RING) printf(",\"timeout\":%d", a->timeout_s);
        if (a->type == SB_ACT_RING && a->attempt) printf(",\"attempt\":%u", a->attempt);
        if (a->type == SB_ACT_WAIT && a->due_ms) printf(",\"due_ms\":%lld", (long long)a->due_ms);
        puts("}");
    }
}

/* Submit one input line (blank lines and # comments are skipped). */
static void handle_line(sb_engine *eng, const char *account, char *line, size_t len, sb_result *res)
{
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
        len--;
    while (len && (*line == ' ' || *line == '\t'))
        line++, len--;
    if (!len || *line == '#') return;
    if (sb_submit_json(eng, account, line, len, res) != 0)
        puts(sb_result_json(res, NULL)); /* {"error":{"code":..,"message":..,"field":..}} */
    /* Also after an error: an event whose sync failed after it committed
    ** (SB_ESTORE, "sync: ...") stands, and its actions are in res. */
    print_actions(res);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: gateway --data-dir DIR [--policy-dir DIR] [--account ID] "
                "[--sync group|sync|none]\n");
}

int main(int argc, char **argv)
{
    const char *data_dir = NULL, *policy_dir = NULL, *account = "acme", *sync = "group";
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--data-dir") == 0)
            data_dir = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--policy-dir") == 0)
            policy_dir = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--account") == 0)
            account = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--sync") == 0)
            sync = argv[++i];
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout); /* asked for: exit 0, as the Python and Go gateways do */
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!data_dir) {
        usage(stderr);
        return 2;
    }

    sb_config cfg;
    sb_config_init(&cfg);
    cfg.data_dir = data_dir;
    cfg.policy_dir = policy_dir;
    if (strcmp(sync, "sync") == 0)
        cfg.sync = SB_SYNC_SYNC;
    else if (strcmp(sync, "none") == 0)
        cfg.sync = SB_SYNC_NONE;
    else if (strcmp(sync, "group") != 0) {
        usage(stderr);
        return 2;
    }
    cfg.log_level = SB_LOG_WARN;

    sb_result *res = sb_result_new();
    sb_engine *eng = NULL;
    if (!res) {
        fprintf(stderr, "gateway: out of memory\n");
        return 1;
    }
    if (sb_open(&eng, &cfg, res) != 0) {
        fprintf(stderr, "gateway: %s\n", sb_result_message(res));
        sb_result_free(res);
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    size_t cap = 4096, used = 0;
    char *buf = malloc(cap);
    int eof = 0, rc = 0;
    int64_t retry_at = 0; /* after a failed tick, the next not before this */
    while (buf && !eof && !stop) {
        /* Sleep until input arrives or the next timer is due. */
        int64_t due = sb_next_deadline(eng), wait = -1;
        if (due != INT64_MAX) {
            if (due < retry_at) due = retry_at;
            wait = due - now_ms();
            if (wait < 0) wait = 0;
            if (wait > INT_MAX) wait = INT_MAX;
        }
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int n = poll(&pfd, 1, (int)wait);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("gateway: poll");
            rc = 1;
            break;
        }
        if (n == 0 || (due != INT64_MAX && now_ms() >= due)) {
            if (sb_tick(eng, res) != 0) {
                fprintf(stderr, "gateway: tick: %s\n", sb_result_message(res));
                retry_at = now_ms() + TICK_RETRY_MS;
            }
            print_actions(res); /* the timers that did fire, failed or not */
        }
        if (n > 0) {
            if (used == cap) {
                char *nb = realloc(buf, cap * 2);
                if (!nb) {
                    fprintf(stderr, "gateway: out of memory for a line of %zu bytes\n", used);
                    rc = 1;
                    break;
                }
                buf = nb;
                cap *= 2;
            }
            ssize_t got = read(STDIN_FILENO, buf + used, cap - used);
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) { /* not an end of input: say so, and fail */
                perror("gateway: reading input");
                rc = 1;
                break;
            }
            if (got == 0) {
                eof = 1; /* a last line without a newline still counts */
                if (used) handle_line(eng, account, buf, used, res);
                used = 0;
            } else {
                used += (size_t)got;
                char *start = buf, *nl;
                while ((nl = memchr(start, '\n', used - (size_t)(start - buf)))) {
                    handle_line(eng, account, start, (size_t)(nl - start), res);
                    start = nl + 1;
                }
                used -= (size_t)(start - buf);
                memmove(buf, start, used);
            }
        }
        fflush(stdout);
    }
    if (!buf) {
        fprintf(stderr, "gateway: out of memory\n");
        rc = 1;
    }
    free(buf);
    fflush(stdout);
    sb_close(eng);
    sb_result_free(res);
    return rc;
}
