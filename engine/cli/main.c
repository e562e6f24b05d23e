/*
** main.c — the `switchboard` command: policy tooling, replay, the simulated
** demo day, and `serve` (the daemon). Uses only the public header.
*/
#include "switchboard.h"

#include "../daemon/daemon.h"
#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: switchboard COMMAND [ARGS]\n"
               "\n"
               "  policy check FILE...          compile and lint policies (file:line messages)\n"
               "  policy test FILE [CASES]      run a policy's scenario cases (default FILE's\n"
               "                                .cases.json beside it)\n"
               "  policy keygen                 print a new Ed25519 key pair for signing\n"
               "  policy sign --key KEYFILE FILE  print FILE signed with the secret key\n"
               "  replay FILE [--data-dir DIR] [--policy-dir DIR] [--json]\n"
               "                                run JSON-lines events through an engine and\n"
               "                                print each decision\n"
               "  simulate [--policy-dir DIR] [--calls N] [--seed N] [--data-dir DIR]\n"
               "                                a simulated day of calls, with a summary\n"
               "  records COMMAND ...           call records: export, erase, list, get, hold,\n"
               "                                release, holds, audit, stats (records --help)\n"
               "  sweep --data-dir DIR          run a retention sweep now, with a summary\n"
               "  serve [FLAGS]                 the HTTP/JSON daemon (serve --help)\n"
               "  version                       print the version\n");
}

char *cli_read_file(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "switchboard: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (f != stdin) fclose(f);
    if (!buf) {
        fprintf(stderr, "switchboard: %s: out of memory\n", path);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static int cmd_check(int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "usage: switchboard policy check FILE...\n");
        return 2;
    }
    int bad = 0;
    sb_result *res = sb_result_new();
    for (int i = 0; i < argc; i++) {
        size_t len;
        char *src = cli_read_file(argv[i], &len);
        if (!src) {
            bad++;
            continue;
        }
        int rc = sb_policy_check(argv[i], src, len, res);
        const char *msg = sb_result_message(res);
        if (rc) {
            bad++;
            fprintf(stderr, "%s%s", msg, msg[0] && msg[strlen(msg) - 1] != '\n' ? "\n" : "");
        } else {
            printf("%s: ok%s%s\n", argv[i], msg[0] ? "\n" : "", msg);
        }
        free(src);
    }
    sb_result_free(res);
    return bad ? 1 : 0;
}

static int cmd_test(int argc, char **argv)
{
    if (argc < 1 || argc > 2) {
        fprintf(stderr, "usage: switchboard policy test FILE [CASES]\n");
        return 2;
    }
    char cases_path[4096];
    if (argc == 2) {
        snprintf(cases_path, sizeof cases_path, "%s", argv[1]);
    } else {
        snprintf(cases_path, sizeof cases_path, "%s", argv[0]);
        size_t n = strlen(cases_path);
        if (n > 4 && strcmp(cases_path + n - 4, ".lua") == 0) cases_path[n - 4] = 0;
        strncat(cases_path, ".cases.json", sizeof cases_path - strlen(cases_path) - 1);
    }
    size_t sl, cl;
    char *src = cli_read_file(argv[0], &sl);
    char *cases = src ? cli_read_file(cases_path, &cl) : NULL;
    if (!src || !cases) {
        free(src);
        return 2;
    }
    sb_result *res = sb_result_new();
    int rc = sb_policy_test(argv[0], src, sl, cases, cl, res);
    json_t *doc = json_loads(sb_result_json(res, NULL), 0, NULL);
    json_t *arr = json_object_get(doc, "cases");
    if (json_is_array(arr)) {
        size_t i;
        json_t *c;
        json_array_foreach(arr, i, c)
        {
            int ok = json_is_true(json_object_get(c, "ok"));
            printf("%s %zu - %s\n", ok ? "ok" : "not ok", i + 1,
                   json_string_value(json_object_get(c, "name")));
            if (!ok) {
                char *got = json_dumps(json_object_get(c, "got"), JSON_COMPACT);
                char *exp = json_dumps(json_object_get(c, "expected"), JSON_COMPACT);
                printf("#   expected %s\n#   got      %s\n", exp ? exp : "?", got ? got : "?");
                const char *why = json_string_value(json_object_get(c, "message"));
                if (why) printf("#   %s\n", why);
                free(got);
                free(exp);
            }
        }
        printf("# %lld passed, %lld failed\n",
               (long long)json_integer_value(json_object_get(doc, "passed")),
               (long long)json_integer_value(json_object_get(doc, "failed")));
    } else {
        fprintf(stderr, "%s\n", sb_result_message(res));
    }
    json_decref(doc);
    sb_result_free(res);
    free(src);
    free(cases);
    return rc ? 1 : 0;
}

static int cmd_keygen(void)
{
    sb_result *res = sb_result_new();
    int rc = sb_policy_keygen(res);
    printf("%s\n", sb_result_json(res, NULL));
    sb_result_free(res);
    return rc ? 1 : 0;
}

static int cmd_sign(int argc, char **argv)
{
    const char *keyfile = NULL, *file = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
            keyfile = argv[++i];
        else
            file = argv[i];
    }
    if (!keyfile || !file) {
        fprintf(stderr, "usage: switchboard policy sign --key SECRET_KEY_FILE FILE\n");
        return 2;
    }
    size_t kl, sl;
    char *key = cli_read_file(keyfile, &kl), *src = key ? cli_read_file(file, &sl) : NULL;
    if (!key || !src) {
        free(key);
        return 2;
    }
    while (kl && (key[kl - 1] == '\n' || key[kl - 1] == ' '))
        key[--kl] = 0;
    sb_result *res = sb_result_new();
    int rc = sb_policy_sign(src, sl, key, res);
    if (rc) {
        fprintf(stderr, "switchboard: %s\n", sb_result_message(res));
    } else {
        json_t *doc = json_loads(sb_result_json(res, NULL), 0, NULL);
        fputs(json_string_value(json_object_get(doc, "source")), stdout);
        json_decref(doc);
    }
    memset(key, 0, kl);
    free(key);
    free(src);
    sb_result_free(res);
    return rc ? 1 : 0;
}

static int cmd_policy(int argc, char **argv)
{
    if (argc < 1) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[0], "check") == 0) return cmd_check(argc - 1, argv + 1);
    if (strcmp(argv[0], "test") == 0) return cmd_test(argc - 1, argv + 1);
    if (strcmp(argv[0], "keygen") == 0) return cmd_keygen();
    if (strcmp(argv[0], "sign") == 0) return cmd_sign(argc - 1, argv + 1);
    fprintf(stderr, "switchboard: unknown policy command '%s'\n", argv[0]);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "policy") == 0) return cmd_policy(argc - 2, argv + 2);
    if (strcmp(cmd, "replay") == 0) return cli_replay(argc - 2, argv + 2);
    if (strcmp(cmd, "simulate") == 0) return cli_simulate(argc - 2, argv + 2);
    if (strcmp(cmd, "records") == 0) return cli_records(argc - 2, argv + 2);
    if (strcmp(cmd, "sweep") == 0) return cli_sweep(argc - 2, argv + 2);
    if (strcmp(cmd, "serve") == 0) return sb_daemon_main(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("switchboard %s\n", sb_version());
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "switchboard: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
