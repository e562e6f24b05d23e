/*
** config.c — defaults, the INI-like config file and the serve flags.
*/
#include "config.h"
#include "daemon.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

enum kind { K_STR, K_SIZE, K_UINT, K_U32, K_U64, K_BOOL, K_SYNC, K_LEVEL };

/* Numeric keys carry their range, checked once the file and the flags are
** read (so a flag may override a file's value); `zero` names what 0 means
** when 0 is allowed outside that range. */
static const struct key {
    const char *name;
    enum kind kind;
    size_t off;
    uint64_t min, max; /* numeric keys; max 0: the type's largest */
    const char *zero;  /* NULL: 0 only if min is 0; else what 0 means */
    const char *unit;  /* "bytes" (printed with K, M, G), "seconds"... */
} keys[] = {
    {"listen", K_STR, offsetof(sbd_config, listen), 0, 0, NULL, NULL},
    {"data_dir", K_STR, offsetof(sbd_config, data_dir), 0, 0, NULL, NULL},
    {"policy_dir", K_STR, offsetof(sbd_config, policy_dir), 0, 0, NULL, NULL},
    {"key_file", K_STR, offsetof(sbd_config, key_file), 0, 0, NULL, NULL},
    {"admin_token_file", K_STR, offsetof(sbd_config, admin_token_file), 0, 0, NULL, NULL},
    {"sync", K_SYNC, offsetof(sbd_config, sync), 0, 0, NULL, NULL},
    {"max_body", K_SIZE, offsetof(sbd_config, max_body), 1024, 1024ull << 20, NULL, "bytes"},
    {"max_header", K_SIZE, offsetof(sbd_config, max_header), 256, 1024 * 1024, NULL, "bytes"},
    {"max_page", K_SIZE, offsetof(sbd_config, max_page), 4096, 1024ull << 20, NULL, "bytes"},
    {"max_connections", K_UINT, offsetof(sbd_config, max_connections), 1, 0, NULL, "connections"},
    {"max_connections_per_peer", K_UINT, offsetof(sbd_config, max_connections_per_peer), 1, 0,
     "no limit", "connections"},
    {"log_level", K_LEVEL, offsetof(sbd_config, log_level), 0, 0, NULL, NULL},
    {"map_size", K_SIZE, offsetof(sbd_config, map_size), 64 * 1024, 0, "the engine's default",
     "bytes"},
    {"map_max", K_SIZE, offsetof(sbd_config, map_max), 64 * 1024, 0, "the engine's default",
     "bytes"},
    {"policy_instructions", K_U64, offsetof(sbd_config, policy_instructions), 0, 0, NULL,
     "instructions"},
    {"policy_wall_ms", K_U32, offsetof(sbd_config, policy_wall_ms), 0, 0, NULL, "ms"},
    {"policy_memory_kib", K_U64, offsetof(sbd_config, policy_memory_kib), 0, SIZE_MAX / 1024, NULL,
     "KiB"},
    {"quarantine_after", K_U32, offsetof(sbd_config, quarantine_after), 0, 0, NULL, "failures"},
    {"require_signed_policies", K_BOOL, offsetof(sbd_config, require_signed_policies), 0, 0, NULL,
     NULL},
    {"policy_public_key", K_STR, offsetof(sbd_config, policy_public_key), 0, 0, NULL, NULL},
    {"seed", K_U64, offsetof(sbd_config, seed), 0, 0, NULL, NULL},
    {"stream_keepalive", K_UINT, offsetof(sbd_config, stream_keepalive), 0, 0, NULL, "seconds"},
    {"stream_buffer", K_SIZE, offsetof(sbd_config, stream_buffer), 4096, 0, NULL, "bytes"},
    {"stream_max_per_account", K_UINT, offsetof(sbd_config, stream_max_per_account), 1, 0,
     "no limit", "streams"},
    {"idle_timeout", K_UINT, offsetof(sbd_config, idle_timeout), 1, 0, NULL, "seconds"},
    {"request_timeout", K_UINT, offsetof(sbd_config, request_timeout), 1, 86400, NULL, "seconds"},
    {"shutdown_timeout", K_UINT, offsetof(sbd_config, shutdown_timeout), 1, 0, NULL, "seconds"},
    {"sweep_interval", K_UINT, offsetof(sbd_config, sweep_interval), 0, 0, NULL, "seconds"},
    {"erasure_journal_days", K_U32, offsetof(sbd_config, erasure_journal_days), 0, 36600, NULL,
     "days"},
};

#define NKEYS (sizeof keys / sizeof keys[0])

/* Where a setting came from, for the messages: a line of the config file or
** a flag (neither: the default). */
struct origin {
    int line;
    const char *flag;
};

int sbd_doc_path(const char *name, const char *in_tree, char *buf, size_t n)
{
    char exe[PATH_MAX], real[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash = len > 0 ? (exe[len] = 0, strrchr(exe, '/')) : NULL;
    if (slash) {
        *slash = 0;
        char want[PATH_MAX + 64];
        snprintf(want, sizeof want, "%s/../share/doc/switchboard/%s", exe, name);
        if (realpath(want, real) && snprintf(buf, n, "%s", real) < (int)n) return 1;
    }
    snprintf(buf, n, "%s", in_tree);
    return 0;
}

static const char usage_head[] =
    "usage: switchboard serve [--config FILE] [--listen ADDR] [--data-dir DIR]\n"
    "                         [--policy-dir DIR] [--sync group|sync|none]\n"
    "                         [--log-level error|warn|info|debug] [--key-file FILE]\n"
    "                         [--demo]\n"
    "\n"
    "Run the HTTP/JSON daemon. Flags override the config file, each given once.\n";

static const char usage_flags[] =
    "  --config FILE      read settings from FILE (key = value, # comments)\n"
    "  --listen ADDR      address to listen on (default 127.0.0.1:8470; port 0\n"
    "                     picks a free port, logged at start)\n"
    "  --data-dir DIR     engine data directory (default ./var/switchboard)\n"
    "  --policy-dir DIR   shared policies (default ./policies)\n"
    "  --sync MODE        group (default), sync or none\n"
    "  --log-level L      error, warn, info (default) or debug\n"
    "  --key-file FILE    the master key (default DIR/master.key; after switchboard\n"
    "                     key rotate, the key it rotated to)\n"
    "  --demo             create the \"demo\" account with agents and queues if\n"
    "                     missing, and print curl lines to try the API\n";

/* The usage, naming the documents where this command finds them: installed
** beside it, else in the source tree. */
static const char *usage(void)
{
    static char text[4096];
    char conf[PATH_MAX], api[PATH_MAX];
    int installed =
        sbd_doc_path("switchboard.conf", "examples/switchboard.conf", conf, sizeof conf);
    installed &= sbd_doc_path("API.md", "engine/daemon/API.md", api, sizeof api);
    snprintf(text, sizeof text,
             "%sEvery config key is documented in\n  %s\nand every route in\n  %s\n%s\n%s",
             usage_head, conf, api,
             installed ? ""
                       : "in the source tree; make install puts both in\n"
                         "PREFIX/share/doc/switchboard.\n",
             usage_flags);
    return text;
}

static int set_str(char **slot, const char *v)
{
    char *s = strdup(v);
    if (!s) return -1;
    free(*slot);
    *slot = s;
    return 0;
}

/* Parse an unsigned number, with allow_suffix an optional K, M or G
** (binary), either case, alone or followed by B or iB ("2M", "2mb", "2MiB").
** Returns 0, -1 when it is not such a number, -2 when it is one past
** UINT64_MAX. */
static int parse_size(const char *v, uint64_t *out, int allow_suffix)
{
    char *end;
    if (!isdigit((unsigned char)*v)) return -1;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    int overflow = errno == ERANGE;
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
        if (!strcasecmp(end, "B"))
            end += 1;
        else if (!strcasecmp(end, "iB"))
            end += 2;
    }
    if (*end) return -1;
    if (overflow || (mul > 1 && n > UINT64_MAX / mul)) return -2;
    *out = n * mul;
    return 0;
}

/* n in the key's unit: sizes as 256 bytes, 1K, 64M, 1G; "1 second". */
static const char *in_unit(const struct key *k, uint64_t n, char *buf, size_t len)
{
    static const char sfx[] = "GMK";
    const char *u = k->unit ? k->unit : "";
    if (!strcmp(u, "bytes") && n >= 1024) {
        for (int i = 0; i < 3; i++) {
            uint64_t m = 1ull << (10 * (3 - i));
            if (n % m == 0) {
                snprintf(buf, len, "%" PRIu64 "%c", n / m, sfx[i]);
                return buf;
            }
        }
    }
    size_t ul = strlen(u);
    int one = n == 1 && ul > 1 && u[ul - 1] == 's'; /* "1 second" */
    snprintf(buf, len, "%" PRIu64 "%s%.*s", n, ul ? " " : "", (int)(ul - (size_t)one), u);
    return buf;
}

/* What apply() says of a number past what key k can hold: its largest value
** (the key's range's, else its type's, `type_max`). */
static const char *too_large(const struct key *k, uint64_t type_max, char *buf, size_t n)
{
    char m[64];
    snprintf(buf, n, "too large, at most %s",
             in_unit(k, k->max && k->max < type_max ? k->max : type_max, m, sizeof m));
    return buf;
}

/* Resolve "host:port", "[v6addr]:port", ":port" or "port" (all interfaces)
** into *ss (unless ss is NULL). Returns NULL, or what is wrong. All
** interfaces are IPv6's wildcard where the system has IPv6 (the listener
** takes IPv4 on it too), else IPv4's. */
const char *sbd_listen_parse(const char *spec, struct sockaddr_storage *ss, int *sslen)
{
    char host[256] = "";
    const char *port;
    if (spec[0] == '[') {
        const char *e = strchr(spec, ']');
        if (!e || e[1] != ':') return "expected [v6addr]:port";
        if ((size_t)(e - spec - 1) >= sizeof host) return "host name too long";
        memcpy(host, spec + 1, (size_t)(e - spec - 1));
        host[e - spec - 1] = 0;
        port = e + 2;
    } else {
        const char *c = strrchr(spec, ':');
        if (c) {
            if ((size_t)(c - spec) >= sizeof host) return "host name too long";
            memcpy(host, spec, (size_t)(c - spec));
            host[c - spec] = 0;
            port = c + 1;
        } else {
            port = spec;
        }
    }
    if (!*port || strspn(port, "0123456789") != strlen(port))
        return "expected host:port, [v6addr]:port, :port or port";
    if (strlen(port) > 5 || atol(port) > 65535) return "the port must be 0 to 65535";
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    const char *h = *host && strcmp(host, "*") ? host : NULL;
    int rc = getaddrinfo(h, port, &hints, &ai);
    if (rc != 0 || !ai) return rc ? gai_strerror(rc) : "no such address";
    const struct addrinfo *pick = ai;
    for (const struct addrinfo *a = ai; !h && a; a = a->ai_next)
        if (a->ai_family == AF_INET6) pick = a;
    if (ss) {
        memcpy(ss, pick->ai_addr, pick->ai_addrlen);
        *sslen = (int)pick->ai_addrlen;
    }
    freeaddrinfo(ai);
    return NULL;
}

/* Apply one setting. Returns NULL or a description of what is wrong (static,
** or written into buf). Words (sync, log_level, yes/no) are taken in any
** case. */
static const char *apply(sbd_config *c, const struct key *k, const char *v, char *buf,
                         size_t buflen)
{
    void *slot = (char *)c + k->off;
    uint64_t n;
    int rc;
    switch (k->kind) {
    case K_STR:
        if (!*v) return "empty value";
        return set_str(slot, v) ? "out of memory" : NULL;
    case K_SIZE:
        if ((rc = parse_size(v, &n, 1)) == -1)
            return "expected a size: bytes, or a number with K, M or G (binary: 1K is 1024 "
                   "bytes; KB and KiB alike)";
        if (rc || n > SIZE_MAX) return too_large(k, SIZE_MAX, buf, buflen);
        *(size_t *)slot = (size_t)n;
        return NULL;
    case K_UINT:
    case K_U32:
        if ((rc = parse_size(v, &n, 0)) == -1) return "expected a non-negative integer";
        if (rc || n > UINT32_MAX) return too_large(k, UINT32_MAX, buf, buflen);
        if (k->kind == K_UINT)
            *(unsigned *)slot = (unsigned)n;
        else
            *(uint32_t *)slot = (uint32_t)n;
        return NULL;
    case K_U64:
        if ((rc = parse_size(v, &n, 0)) == -1) return "expected a non-negative integer";
        if (rc) return too_large(k, UINT64_MAX, buf, buflen);
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
        if (!strcasecmp(v, "group"))
            *(sbd_sync *)slot = SBD_SYNC_GROUP;
        else if (!strcasecmp(v, "sync"))
            *(sbd_sync *)slot = SBD_SYNC_SYNC;
        else if (!strcasecmp(v, "none"))
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

/* The key `name` is most likely a misspelling of, or NULL (sb_suggest). */
static const char *near_key(const char *name)
{
    const char *names[NKEYS];
    for (size_t i = 0; i < NKEYS; i++)
        names[i] = keys[i].name;
    return sb_suggest(name, names, NKEYS);
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

static int load_file(sbd_config *c, const char *path, struct origin *org)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        sbd_errorf("switchboard: cannot read config file %s: %s\n", path, strerror(errno));
        return 3;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            sbd_errorf("switchboard: %s:%d: line too long\n", path, lineno);
            rc = 3;
            break;
        }
        char *s = line;
        /* A byte-order mark some editors put first is no part of the key. */
        if (lineno == 1) s += sbd_bom(s, strlen(s));
        s = trim(s);
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            sbd_errorf("switchboard: %s:%d: expected `key = value`\n", path, lineno);
            rc = 3;
            break;
        }
        *eq = 0;
        char *key = trim(s), *val = trim(eq + 1);
        const struct key *k = find_key(key);
        if (!k) {
            const char *near = near_key(key);
            sbd_errorf("switchboard: %s:%d: unknown key '%s'%s%s%s\n", path, lineno, key,
                       near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
            rc = 3;
            break;
        }
        /* A "quoted" value ends at its closing quote (a # inside it is
        ** part of it); after it, or after an unquoted value and
        ** whitespace, a # starts a comment: `x = 1  # why`. */
        const char *qerr = NULL;
        char *rest = val;
        if (*val == '"') {
            char *close = strchr(val + 1, '"');
            if (!close) {
                qerr = "missing closing quote";
            } else {
                *close = 0;
                rest = trim(close + 1);
                val++;
                if (*rest && *rest != '#') qerr = "unexpected text after the closing quote";
            }
        } else {
            for (char *h = val; *h; h++)
                if (*h == '#' && h > val && isspace((unsigned char)h[-1])) {
                    *h = 0;
                    val = trim(val);
                    break;
                }
        }
        if (qerr) {
            sbd_errorf("switchboard: %s:%d: %s: %s (got '%s')\n", path, lineno, key, qerr, rest);
            rc = 3;
            break;
        }
        struct origin *o = &org[k - keys];
        if (o->line) {
            sbd_errorf("switchboard: %s:%d: '%s' is set twice (first on line %d)\n", path, lineno,
                       key, o->line);
            rc = 3;
            break;
        }
        o->line = lineno;
        char why[128];
        const char *err = apply(c, k, val, why, sizeof why);
        if (err) {
            sbd_errorf("switchboard: %s:%d: %s: %s (got '%s')\n", path, lineno, key, err, val);
            rc = 3;
            break;
        }
    }
    /* A read error (a directory, an I/O error) is not an empty file. */
    if (!rc && ferror(f)) {
        sbd_errorf("switchboard: cannot read config file %s: %s\n", path, strerror(errno));
        rc = 3;
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
    set_str(&c->policy_dir, SBD_DEFAULT_POLICY_DIR);
    c->sync = SBD_SYNC_GROUP;
    c->max_body = 1024 * 1024;
    c->max_header = 8 * 1024;
    c->max_page = 1024 * 1024;
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
    c->stream_max_per_account = 16;
    c->idle_timeout = 60;
    c->request_timeout = 30;
    c->shutdown_timeout = 10;
    c->sweep_interval = 300;
    /* Longer than a year of backups; the library's own default keeps them
    ** for good (its CLI tools never take requests out). */
    c->erasure_journal_days = 400;
}

static const struct flag {
    const char *name, *key;
} flags[] = {
    {"--listen", "listen"}, {"--data-dir", "data_dir"},   {"--policy-dir", "policy_dir"},
    {"--sync", "sync"},     {"--log-level", "log_level"}, {"--key-file", "key_file"},
};

/* The value of flag argv[*i] ("--x v" or "--x=v"), advancing *i. */
static const char *flag_value(int argc, char **argv, int *i, size_t namelen)
{
    const char *a = argv[*i];
    if (a[namelen] == '=') return a + namelen + 1;
    if (*i + 1 >= argc) return NULL;
    return argv[++*i];
}

/* Report what is wrong with the setting of key `name`, where it was set:
** "switchboard: FILE:LINE: ..." (returns 3) or "switchboard serve: --flag:
** ..." (returns 2). */
static int bad(const sbd_config *c, const struct origin *org, const char *name, const char *fmt,
               ...) __attribute__((format(printf, 4, 5)));
static int bad(const sbd_config *c, const struct origin *org, const char *name, const char *fmt,
               ...)
{
    const struct origin *o = &org[find_key(name) - keys];
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (o->flag) {
        /* "--listen: '...': why", not "--listen: listen: '...': why". */
        size_t nl = strlen(name);
        const char *m = strncmp(msg, name, nl) == 0 && msg[nl] == ':' && msg[nl + 1] == ' '
                            ? msg + nl + 2
                            : msg;
        sbd_errorf("switchboard serve: %s: %s\n", o->flag, m);
        return 2;
    }
    if (o->line)
        sbd_errorf("switchboard: %s:%d: %s\n", c->config_file, o->line, msg);
    else
        sbd_errorf("switchboard: %s\n", msg);
    return 3;
}

/* "file:line", "--flag" or "the default": where key `name` was set. */
static const char *where(const sbd_config *c, const struct origin *org, const char *name, char *buf,
                         size_t n)
{
    const struct origin *o = &org[find_key(name) - keys];
    if (o->flag) return o->flag;
    if (!o->line) return "the default";
    snprintf(buf, n, "%s:%d", c->config_file, o->line);
    return buf;
}

static uint64_t num_value(const sbd_config *c, const struct key *k)
{
    const void *slot = (const char *)c + k->off;
    switch (k->kind) {
    case K_SIZE:
        return *(const size_t *)slot;
    case K_UINT:
        return *(const unsigned *)slot;
    case K_U32:
        return *(const uint32_t *)slot;
    case K_U64:
        return *(const uint64_t *)slot;
    default:
        return 0;
    }
}

/* The settings as a whole: every number in its key's range, the listen
** address usable, and no combination that cannot work. */
static int check(sbd_config *c, const struct origin *org)
{
    char a[64], b[64], w[4200];
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        if (k->kind != K_SIZE && k->kind != K_UINT && k->kind != K_U32 && k->kind != K_U64)
            continue;
        uint64_t n = num_value(c, k);
        if (n == 0 && k->zero) continue;
        if (n >= k->min && (!k->max || n <= k->max)) continue;
        if (k->zero)
            return bad(c, org, k->name, "%s must be 0 (%s) or at least %s (got %s)", k->name,
                       k->zero, in_unit(k, k->min, a, sizeof a), in_unit(k, n, b, sizeof b));
        if (k->min && k->max && k->unit && strcmp(k->unit, "bytes"))
            return bad(c, org, k->name, "%s must be %" PRIu64 " to %s (got %" PRIu64 ")", k->name,
                       k->min, in_unit(k, k->max, a, sizeof a), n);
        if (k->min && k->max)
            return bad(c, org, k->name, "%s must be %s to %s (got %s)", k->name,
                       in_unit(k, k->min, a, sizeof a), in_unit(k, k->max, w, sizeof w),
                       in_unit(k, n, b, sizeof b));
        if (k->max)
            return bad(c, org, k->name, "%s must be at most %s (got %s)", k->name,
                       in_unit(k, k->max, a, sizeof a), in_unit(k, n, b, sizeof b));
        return bad(c, org, k->name, "%s must be at least %s (got %s)", k->name,
                   in_unit(k, k->min, a, sizeof a), in_unit(k, n, b, sizeof b));
    }
    if (!c->policy_instructions && !c->policy_wall_ms)
        return bad(c, org, "policy_wall_ms",
                   "policy_wall_ms and policy_instructions (%s) are both 0: a policy that never "
                   "returns would stop the daemon; set at least one of them",
                   where(c, org, "policy_instructions", w, sizeof w));
    if (!c->map_max && (uint64_t)c->map_size > SBD_DEFAULT_MAP_MAX) {
        const struct key *ms = find_key("map_size");
        return bad(c, org, "map_size",
                   "map_size (%s) is above the largest map, %s (map_max 0: the engine's "
                   "default); raise map_max too",
                   in_unit(ms, c->map_size, a, sizeof a),
                   in_unit(ms, SBD_DEFAULT_MAP_MAX, b, sizeof b));
    }
    if (c->map_max) {
        size_t initial = c->map_size ? c->map_size : (size_t)64 << 20;
        const struct key *ms = find_key("map_size");
        if (c->map_max < initial)
            return bad(c, org, "map_max", "map_max (%s) is below the initial map size %s (%s%s)",
                       in_unit(ms, c->map_max, a, sizeof a), in_unit(ms, initial, b, sizeof b),
                       c->map_size ? "map_size, " : "map_size 0: the engine's default",
                       c->map_size ? where(c, org, "map_size", w, sizeof w) : "");
    }
    /* The engine checks these only when it opens, after the data directory
    ** is locked and the admin token made, and without FILE:LINE. */
    if (c->policy_public_key && (strlen(c->policy_public_key) != 64 ||
                                 strspn(c->policy_public_key, "0123456789abcdefABCDEF") != 64))
        return bad(c, org, "policy_public_key",
                   "policy_public_key must be 64 hex characters (got '%.80s')",
                   c->policy_public_key);
    if (c->require_signed_policies && !c->policy_public_key)
        return bad(c, org, "require_signed_policies",
                   "require_signed_policies is on but policy_public_key is not set (the "
                   "Ed25519 public key policies are signed for, 64 hex characters)");
    /* A policy directory named in the file or a flag must be one (the
    ** default may be absent: see SBD_DEFAULT_POLICY_DIR). Checked here, so
    ** that nothing is made before the error. */
    struct stat pst;
    if (strcmp(c->policy_dir, SBD_DEFAULT_POLICY_DIR) != 0) {
        if (stat(c->policy_dir, &pst) != 0)
            return bad(c, org, "policy_dir", "policy_dir: '%s': %s", c->policy_dir,
                       strerror(errno));
        if (!S_ISDIR(pst.st_mode))
            return bad(c, org, "policy_dir", "policy_dir: '%s': not a directory", c->policy_dir);
    }
    /* The data directory is made if missing; something else in its place
    ** (a file, or a file where a parent directory should be) is an error
    ** naming the setting, not a failure to open serve.lock in it. */
    int there = stat(c->data_dir, &pst) == 0;
    if (there ? !S_ISDIR(pst.st_mode) : errno == ENOTDIR)
        return bad(c, org, "data_dir", "data_dir: '%s': %s", c->data_dir,
                   there ? "not a directory" : "a part of the path is not a directory");
    const char *why = sbd_listen_parse(c->listen, NULL, NULL);
    if (why) return bad(c, org, "listen", "listen: '%s': %s", c->listen, why);
    return 0;
}

/* A flag given twice is a usage error, as a key given twice in the file is
** one: the last one winning would leave the first unread (a --config) or
** unused, and nothing would say so. `first` is the first one's value (NULL:
** none yet; "" for a flag without one); returns 2 after saying so, else 0. */
static int once(const char *flag, const char *first, const char *v)
{
    if (!first) return 0;
    if (*v)
        sbd_errorf("switchboard serve: %s is given twice ('%s', then '%s'); give it once\n", flag,
                   first, v);
    else
        sbd_errorf("switchboard serve: %s is given twice; give it once\n", flag);
    return 2;
}

int sbd_config_load(sbd_config *c, int argc, char **argv)
{
    struct origin org[NKEYS];
    memset(org, 0, sizeof org);
    defaults(c);
    /* First pass: --config and --help, so the file applies before the flags. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage(), stdout);
            return 1;
        }
        if (!strcmp(a, "--config") || !strncmp(a, "--config=", 9)) {
            const char *v = flag_value(argc, argv, &i, 8);
            if (!v || !*v) {
                sbd_errorf("switchboard serve: --config needs a file\n");
                return 2;
            }
            if (once("--config", c->config_file, v)) return 2;
            if (set_str(&c->config_file, v)) return 3;
        }
    }
    const char *given[sizeof flags / sizeof flags[0]] = {NULL};
    if (c->config_file) {
        int rc = load_file(c, c->config_file, org);
        if (rc) return rc;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config") || !strncmp(a, "--config=", 9)) {
            flag_value(argc, argv, &i, 8);
            continue;
        }
        if (!strcmp(a, "--demo")) {
            if (once("--demo", c->demo ? "" : NULL, "")) return 2;
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
            sbd_errorf("switchboard serve: unknown argument '%s'\n%s", a, usage());
            return 2;
        }
        const char *v = flag_value(argc, argv, &i, nl);
        if (!v) {
            sbd_errorf("switchboard serve: %s needs a value\n", fl->name);
            return 2;
        }
        if (once(fl->name, given[fl - flags], v)) return 2;
        given[fl - flags] = v;
        const struct key *k = find_key(fl->key);
        char why[128];
        const char *err = apply(c, k, v, why, sizeof why);
        if (err) {
            sbd_errorf("switchboard serve: %s: %s (got '%s')\n", fl->name, err, v);
            return 2;
        }
        org[k - keys].flag = fl->name;
    }
    int rc = check(c, org);
    if (rc) return rc;
    /* For errors met when the daemon binds the address. */
    const struct origin *lo = &org[find_key("listen") - keys];
    char w[4200] = "";
    if (lo->flag)
        snprintf(w, sizeof w, "%s: ", lo->flag);
    else if (lo->line)
        snprintf(w, sizeof w, "%s:%d: ", c->config_file, lo->line);
    return set_str(&c->listen_origin, w) ? 3 : 0;
}

int sbd_config_differs(const sbd_config *a, const sbd_config *b, char *names, size_t n)
{
    int count = 0;
    size_t used = 0;
    if (n) names[0] = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        const char *pa = (const char *)a + k->off, *pb = (const char *)b + k->off;
        /* Numbers, switches and enums are compared as their bytes. */
        static const size_t width[] = {[K_SIZE] = sizeof(size_t),       [K_UINT] = sizeof(unsigned),
                                       [K_U32] = sizeof(uint32_t),      [K_U64] = sizeof(uint64_t),
                                       [K_BOOL] = sizeof(int),          [K_SYNC] = sizeof(sbd_sync),
                                       [K_LEVEL] = sizeof(sb_log_level)};
        int same;
        if (k->kind == K_STR) {
            const char *sa = *(char *const *)(const void *)pa,
                       *sb = *(char *const *)(const void *)pb;
            same = sa && sb ? !strcmp(sa, sb) : sa == sb;
        } else {
            same = !memcmp(pa, pb, width[k->kind]);
        }
        if (same) continue;
        count++;
        int w =
            snprintf(names + used, used < n ? n - used : 0, "%s%s", count > 1 ? "," : "", k->name);
        if (w > 0) used += (size_t)w;
    }
    return count;
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
    free(c->listen_origin);
    memset(c, 0, sizeof *c);
}

int sbd_config_budgets(const char *file, sb_config *cfg)
{
    sbd_config c;
    char *argv[] = {"policy", "--config", (char *)file};
    int rc = sbd_config_load(&c, 3, argv);
    sb_config_init(cfg);
    if (rc == 0) {
        cfg->policy_instructions = c.policy_instructions;
        cfg->policy_wall_ms = c.policy_wall_ms;
        cfg->policy_memory = (size_t)c.policy_memory_kib * 1024;
        cfg->quarantine_after = c.quarantine_after;
    }
    sbd_config_free(&c);
    return rc == 0 ? 0 : 2;
}
