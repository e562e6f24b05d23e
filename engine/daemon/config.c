/*
** config.c — defaults, the INI-like config file and the serve flags.
*/
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

enum kind { K_STR, K_SIZE, K_UINT, K_U32, K_U64, K_BOOL, K_SYNC, K_LEVEL };

static const struct key {
    const char *name;
    enum kind kind;
    size_t off;
} keys[] = {
    {"listen", K_STR, offsetof(sbd_config, listen)},
    {"data_dir", K_STR, offsetof(sbd_config, data_dir)},
    {"policy_dir", K_STR, offsetof(sbd_config, policy_dir)},
    {"key_file", K_STR, offsetof(sbd_config, key_file)},
    {"admin_token_file", K_STR, offsetof(sbd_config, admin_token_file)},
    {"sync", K_SYNC, offsetof(sbd_config, sync)},
    {"max_body", K_SIZE, offsetof(sbd_config, max_body)},
    {"max_header", K_SIZE, offsetof(sbd_config, max_header)},
    {"max_connections", K_UINT, offsetof(sbd_config, max_connections)},
    {"log_level", K_LEVEL, offsetof(sbd_config, log_level)},
    {"map_size", K_SIZE, offsetof(sbd_config, map_size)},
    {"map_max", K_SIZE, offsetof(sbd_config, map_max)},
    {"policy_instructions", K_U64, offsetof(sbd_config, policy_instructions)},
    {"policy_wall_ms", K_U32, offsetof(sbd_config, policy_wall_ms)},
    {"policy_memory_kib", K_U64, offsetof(sbd_config, policy_memory_kib)},
    {"quarantine_after", K_U32, offsetof(sbd_config, quarantine_after)},
    {"require_signed_policies", K_BOOL, offsetof(sbd_config, require_signed_policies)},
    {"policy_public_key", K_STR, offsetof(sbd_config, policy_public_key)},
    {"seed", K_U64, offsetof(sbd_config, seed)},
    {"stream_keepalive", K_UINT, offsetof(sbd_config, stream_keepalive)},
    {"stream_buffer", K_SIZE, offsetof(sbd_config, stream_buffer)},
    {"idle_timeout", K_UINT, offsetof(sbd_config, idle_timeout)},
    {"request_timeout", K_UINT, offsetof(sbd_config, request_timeout)},
    {"shutdown_timeout", K_UINT, offsetof(sbd_config, shutdown_timeout)},
    {"sweep_interval", K_UINT, offsetof(sbd_config, sweep_interval)},
};

static const char usage[] =
    "usage: switchboard serve [--config FILE] [--listen ADDR] [--data-dir DIR]\n"
    "                         [--policy-dir DIR] [--sync group|sync|none]\n"
    "                         [--log-level error|warn|info|debug] [--demo]\n"
    "\n"
    "Run the HTTP/JSON daemon. Flags override the config file; every config key\n"
    "is documented in examples/switchboard.conf, every route in\n"
    "engine/daemon/API.md.\n"
    "\n"
    "  --config FILE      read settings from FILE (key = value, # comments)\n"
    "  --listen ADDR      address to listen on (default 127.0.0.1:8470; port 0\n"
    "                     picks a free port, logged at start)\n"
    "  --data-dir DIR     engine data directory (default ./var/switchboard)\n"
    "  --policy-dir DIR   shared policies (default ./policies)\n"
    "  --sync MODE        group (default), sync or none\n"
    "  --log-level L      error, warn, info (default) or debug\n"
    "  --demo             create the \"demo\" account with agents and queues if\n"
    "                     missing, and print curl lines to try the API\n";

static int set_str(char **slot, const char *v)
{
    char *s = strdup(v);
    if (!s) return -1;
    free(*slot);
    *slot = s;
    return 0;
}

/* Parse an unsigned number with an optional K/M/G (binary) suffix. */
static int parse_size(const char *v, uint64_t *out, int allow_suffix)
{
    char *end;
    if (!isdigit((unsigned char)*v)) return -1;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno) return -1;
    uint64_t mul = 1;
    if (allow_suffix && *end) {
        switch (toupper((unsigned char)*end)) {
        case 'K':
            mul = 1024;
            break;
        case 'M':
            mul = 1024 * 1024;
            break;
        case 'G':
            mul = 1024ull * 1024 * 1024;
            break;
        default:
            return -1;
        }
        end++;
        if (toupper((unsigned char)*end) == 'I') end++;
        if (toupper((unsigned char)*end) == 'B') end++;
    }
    if (*end) return -1;
    if (mul > 1 && n > UINT64_MAX / mul) return -1;
    *out = n * mul;
    return 0;
}

/* Apply one setting. Returns NULL or a static description of what is wrong. */
static const char *apply(sbd_config *c, const struct key *k, const char *v)
{
    void *slot = (char *)c + k->off;
    uint64_t n;
    switch (k->kind) {
    case K_STR:
        if (!*v) return "empty value";
        return set_str(slot, v) ? "out of memory" : NULL;
    case K_SIZE:
        if (parse_size(v, &n, 1) || n > SIZE_MAX) return "expected a size (bytes, or with K, M, G)";
        *(size_t *)slot = (size_t)n;
        return NULL;
    case K_UINT:
        if (parse_size(v, &n, 0) || n > UINT32_MAX) return "expected a non-negative integer";
        *(unsigned *)slot = (unsigned)n;
        return NULL;
    case K_U32:
        if (parse_size(v, &n, 0) || n > UINT32_MAX) return "expected a non-negative integer";
        *(uint32_t *)slot = (uint32_t)n;
        return NULL;
    case K_U64:
        if (parse_size(v, &n, 0)) return "expected a non-negative integer";
        *(uint64_t *)slot = n;
        return NULL;
    case K_BOOL:
        if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1") ||
            !strcasecmp(v, "on"))
            *(int *)slot = 1;
        else if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcmp(v, "0") ||
                 !strcasecmp(v, "off"))
            *(int *)slot = 0;
        else
            return "expected yes or no";
        return NULL;
    case K_SYNC:
        if (!strcmp(v, "group"))
            *(sbd_sync *)slot = SBD_SYNC_GROUP;
        else if (!strcmp(v, "sync"))
            *(sbd_sync *)slot = SBD_SYNC_SYNC;
        else if (!strcmp(v, "none"))
            *(sbd_sync *)slot = SBD_SYNC_NONE;
        else
            return "expected group, sync or none";
        return NULL;
    case K_LEVEL: {
        int l = sbd_log_parse_level(v);
        if (l < 0) return "expected error, warn, info or debug";
        *(sb_log_level *)slot = (sb_log_level)l;
        return NULL;
    }
    }
    return "bad key kind";
}

static const struct key *find_key(const char *name)
{
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!strcmp(keys[i].name, name)) return &keys[i];
    return NULL;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

static int load_file(sbd_config *c, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "switchboard: cannot read config file %s: %s\n", path, strerror(errno));
        return 3;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            fprintf(stderr, "switchboard: %s:%d: line too long\n", path, lineno);
            rc = 3;
            break;
        }
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            fprintf(stderr, "switchboard: %s:%d: expected `key = value`\n", path, lineno);
            rc = 3;
            break;
        }
        *eq = 0;
        char *key = trim(s), *val = trim(eq + 1);
        /* A value may carry a trailing comment after whitespace: `x = 1  # why`. */
        for (char *h = val; *h; h++)
            if (*h == '#' && h > val && isspace((unsigned char)h[-1])) {
                *h = 0;
                val = trim(val);
                break;
            }
        size_t vl = strlen(val);
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
            val[vl - 1] = 0;
            val++;
        }
        const struct key *k = find_key(key);
        if (!k) {
            fprintf(stderr, "switchboard: %s:%d: unknown key '%s'\n", path, lineno, key);
            rc = 3;
            break;
        }
        const char *err = apply(c, k, val);
        if (err) {
            fprintf(stderr, "switchboard: %s:%d: %s: %s (got '%s')\n", path, lineno, key, err, val);
            rc = 3;
            break;
        }
    }
    fclose(f);
    return rc;
}

static void defaults(sbd_config *c)
{
    sb_config lib;
    sb_config_init(&lib);
    memset(c, 0, sizeof *c);
    set_str(&c->listen, "127.0.0.1:8470");
    set_str(&c->data_dir, "./var/switchboard");
    set_str(&c->policy_dir, "./policies");
    c->sync = SBD_SYNC_GROUP;
    c->max_body = 1024 * 1024;
    c->max_header = 8 * 1024;
    c->max_connections = 1024;
    c->log_level = SB_LOG_INFO;
    c->policy_instructions = lib.policy_instructions;
    c->policy_wall_ms = lib.policy_wall_ms;
    c->policy_memory_kib = lib.policy_memory / 1024;
    c->quarantine_after = lib.quarantine_after;
    c->require_signed_policies = lib.require_signed_policies;
    c->seed = lib.seed;
    c->stream_keepalive = 15;
    c->stream_buffer = 1024 * 1024;
    c->idle_timeout = 60;
    c->request_timeout = 30;
    c->shutdown_timeout = 10;
    c->sweep_interval = 300;
}

static const struct flag {
    const char *name, *key;
} flags[] = {
    {"--listen", "listen"}, {"--data-dir", "data_dir"},   {"--policy-dir", "policy_dir"},
    {"--sync", "sync"},     {"--log-level", "log_level"},
};

/* The value of flag argv[*i] ("--x v" or "--x=v"), advancing *i. */
static const char *flag_value(int argc, char **argv, int *i, size_t namelen)
{
    const char *a = argv[*i];
    if (a[namelen] == '=') return a + namelen + 1;
    if (*i + 1 >= argc) return NULL;
    return argv[++*i];
}

int sbd_config_load(sbd_config *c, int argc, char **argv)
{
    defaults(c);
    /* First pass: --config and --help, so the file applies before the flags. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 1;
        }
        if (!strcmp(a, "--config") || !strncmp(a, "--config=", 9)) {
            const char *v = flag_value(argc, argv, &i, 8);
            if (!v || !*v) {
                fprintf(stderr, "switchboard serve: --config needs a file\n");
                return 2;
            }
            if (set_str(&c->config_file, v)) return 3;
        }
    }
    if (c->config_file) {
        int rc = load_file(c, c->config_file);
        if (rc) return rc;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config") || !strncmp(a, "--config=", 9)) {
            flag_value(argc, argv, &i, 8);
            continue;
        }
        if (!strcmp(a, "--demo")) {
            c->demo = 1;
            continue;
        }
        const struct flag *fl = NULL;
        size_t nl = 0;
        for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++) {
            nl = strlen(flags[f].name);
            if (!strncmp(a, flags[f].name, nl) && (a[nl] == 0 || a[nl] == '=')) {
                fl = &flags[f];
                break;
            }
        }
        if (!fl) {
            fprintf(stderr, "switchboard serve: unknown argument '%s'\n%s", a, usage);
            return 2;
        }
        const char *v = flag_value(argc, argv, &i, nl);
        if (!v) {
            fprintf(stderr, "switchboard serve: %s needs a value\n", fl->name);
            return 2;
        }
        const char *err = apply(c, find_key(fl->key), v);
        if (err) {
            fprintf(stderr, "switchboard serve: %s: %s (got '%s')\n", fl->name, err, v);
            return 2;
        }
    }
    if (c->max_header < 256) {
        fprintf(stderr, "switchboard: max_header must be at least 256 bytes\n");
        return 3;
    }
    if (c->request_timeout < 1 || c->request_timeout > 86400) {
        fprintf(stderr, "switchboard: request_timeout must be 1 to 86400 seconds\n");
        return 3;
    }
    if (c->max_connections < 1) {
        fprintf(stderr, "switchboard: max_connections must be at least 1\n");
        return 3;
    }
    return 0;
}

void sbd_config_free(sbd_config *c)
{
    free(c->config_file);
    free(c->listen);
    free(c->data_dir);
    free(c->policy_dir);
    free(c->key_file);
    free(c->admin_token_file);
    free(c->policy_public_key);
    memset(c, 0, sizeof *c);
}
