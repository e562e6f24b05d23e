/*
** records.c — `switchboard records ...` (access and erasure requests, legal
** holds, the audit log, daily aggregates, listing records) and
** `switchboard sweep` (run a retention sweep now), on a data directory. Uses
** only the public header; safe beside a running daemon (LMDB serialises
** writers across processes).
*/
#include "switchboard.h"

#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void records_usage(FILE *f)
{
    fprintf(f, "usage: switchboard records COMMAND --data-dir DIR --account ID [ARGS]\n"
               "\n"
               "  export NUMBER [--format json|csv]   every record of a number, decrypted\n"
               "                                      (an access request, in the audit log)\n"
               "  erase NUMBER                        an erasure request: each record of the\n"
               "                                      number through the retention policy\n"
               "  list [--from T] [--to T] [--queue Q] [--limit N] [--before MS:ID]\n"
               "                                      records without their sealed data, newest\n"
               "                                      first (100 unless --limit, at most 10000;\n"
               "                                      --before: the page after that record)\n"
               "  get CALL                            one call's record\n"
               "  hold (--call C | --number N | --from T --to T) --reason TEXT [--id ID]\n"
               "                                      place a legal hold\n"
               "  release HOLD_ID                     release a legal hold\n"
               "  holds                               list legal holds\n"
               "  audit [--after SEQ] [--limit N]     the audit log (retention, erasure and\n"
               "                                      access requests, holds), oldest first\n"
               "                                      (1000 entries unless --limit, at most\n"
               "                                      100000; --after SEQ: those after SEQ)\n"
               "  stats [--queue Q] [--from T] [--to T]  daily aggregates\n"
               "\n"
               "Common flags: --key-file F (default DIR/master.key), --json (print results as\n"
               "JSON). erase, hold and release take --policy-dir DIR (shared policies to load,\n"
               "and so store in the data, first; refused while `switchboard serve` runs on\n"
               "DIR, which routes with the policies the data holds). Times T are UTC:\n"
               "YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or Unix seconds, as replay's \"at\" (an\n"
               "integer of 12 digits or more is read as Unix milliseconds). stats: \"avg\n"
               "wait\" is over all offered calls (abandoned ones too), \"avg talk\" over\n"
               "answered calls.\n"
               "A command refuses a flag it does not take, and one given twice. When list\n"
               "or audit fill a page, stderr says there may be more, with the next page's\n"
               "--before MS:ID or --after SEQ (with --json, also the JSON's \"next\").\n"
               "\n"
               "DIR must be an existing data directory (with its data.mdb and master key):\n"
               "these commands never create one.\n"
               "\n"
               "Exit status: 0 done; 1 an error (the data directory, an unknown account,\n"
               "number or hold, a refused request); 2 a usage error; 3 erase: some records\n"
               "were kept because the retention policy failed (nothing of theirs changed;\n"
               "fix the policy and run the erasure again).\n");
}

typedef struct opts {
    const char *data_dir, *account, *key_file, *policy_dir, *new_key_file;
    const char *format, *queue, *call, *number, *reason, *id;
    const char *from, *to, *after, *limit, *budget, *before;
    const char *policy, *policy_name, *now, *in_days, *scope, *sample; /* sweep --dry-run */
    int json, quiet, help, dry_run;
    int warn_only; /* the engine logs warnings and errors only */
    const char *args[4];
    int nargs;
} opts;

/* records list and audit: pages the library returns when --limit is not
** given, and the largest it takes. */
#define LIST_DEFAULT 100
#define LIST_MAX 10000
#define AUDIT_DEFAULT 1000
#define AUDIT_MAX 100000

/* The flags taking a value, and where each goes. */
static const struct {
    const char *flag;
    size_t off;
} flags[] = {
    {"--data-dir", offsetof(opts, data_dir)},
    {"--account", offsetof(opts, account)},
    {"--key-file", offsetof(opts, key_file)},
    {"--policy-dir", offsetof(opts, policy_dir)},
    {"--format", offsetof(opts, format)},
    {"--queue", offsetof(opts, queue)},
    {"--call", offsetof(opts, call)},
    {"--number", offsetof(opts, number)},
    {"--reason", offsetof(opts, reason)},
    {"--id", offsetof(opts, id)},
    {"--from", offsetof(opts, from)},
    {"--to", offsetof(opts, to)},
    {"--after", offsetof(opts, after)},
    {"--limit", offsetof(opts, limit)},
    {"--budget-ms", offsetof(opts, budget)},
    {"--before", offsetof(opts, before)},
    {"--policy", offsetof(opts, policy)},
    {"--policy-name", offsetof(opts, policy_name)},
    {"--now", offsetof(opts, now)},
    {"--in-days", offsetof(opts, in_days)},
    {"--scope", offsetof(opts, scope)},
    {"--sample", offsetof(opts, sample)},
    {"--new-key-file", offsetof(opts, new_key_file)},
};

/* flag is one of the space-separated words of list. */
static int listed(const char *list, const char *flag)
{
    size_t n = strlen(flag);
    for (const char *p = list; (p = strstr(p, flag)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0)) return 1;
    return 0;
}

/* Every flag given is one cmd takes (allowed: space-separated). A flag a
** command does not take is refused, not ignored: `records erase N --from T`
** is not an erasure of that range, `sweep --account A` not a sweep of one
** account. 0, or -1 said which (one line). */
static int only_flags(const char *cmd, const opts *o, const char *allowed)
{
    const char *bad = NULL;
    for (size_t f = 0; !bad && f < sizeof flags / sizeof flags[0]; f++)
        if (*(const char *const *)((const char *)o + flags[f].off) &&
            !listed(allowed, flags[f].flag))
            bad = flags[f].flag;
    if (!bad && o->json && !listed(allowed, "--json")) bad = "--json";
    if (!bad && o->quiet && !listed(allowed, "--quiet")) bad = "--quiet";
    if (!bad && o->dry_run && !listed(allowed, "--dry-run")) bad = "--dry-run";
    if (!bad) return 0;
    /* A sweep of one account, or at another time, is a dry run's. */
    int dry = !strcmp(cmd, "sweep") && listed("--account --policy --policy-name --now --in-days "
                                              "--scope --sample",
                                              bad);
    fprintf(stderr, "switchboard: %s does not take %s (switchboard %s --help lists its flags%s)\n",
            cmd, bad, strncmp(cmd, "records ", 8) ? cmd : "records",
            dry ? "; what a sweep would do to one account: sweep --dry-run --account ID" : "");
    return -1;
}

static int parse_opts(int argc, char **argv, opts *o)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int matched = 0;
        if (!strcmp(a, "--json")) {
            o->json = 1;
            continue;
        }
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            o->quiet = 1;
            continue;
        }
        if (!strcmp(a, "--dry-run")) {
            o->dry_run = 1;
            continue;
        }
        if (cli_is_help(a, 0)) {
            o->help = 1;
            continue;
        }
        for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++) {
            size_t n = strlen(flags[f].flag);
            if (strncmp(a, flags[f].flag, n) != 0) continue;
            const char **dst = (const char **)((char *)o + flags[f].off);
            const char *was = *dst;
            if (a[n] == '=')
                *dst = a + n + 1;
            else if (a[n] == 0 && i + 1 < argc)
                *dst = argv[++i];
            else if (a[n] == 0) {
                fprintf(stderr, "switchboard: %s needs a value\n", a);
                return -1;
            } else
                continue;
            /* Given twice: which was meant? (`records erase N --account A
            ** --account B` must not erase in B alone.) */
            if (was) {
                fprintf(stderr, "switchboard: %s given twice: give it once\n", flags[f].flag);
                return -1;
            }
            /* --account "" names no account, --data-dir= no directory (numbers,
            ** times and the reason say what they expect themselves) */
            if (!**dst && listed("--data-dir --account --key-file --new-key-file --policy-dir "
                                 "--queue --call --id "
                                 "--policy --policy-name --scope",
                                 flags[f].flag)) {
                fprintf(stderr, "switchboard: %s needs a value (it is empty)\n", flags[f].flag);
                return -1;
            }
            matched = 1;
            break;
        }
        if (matched) continue;
        if (a[0] == '-' && a[1]) {
            fprintf(stderr, "switchboard: unknown flag '%s'\n", a);
            return -1;
        }
        if (o->nargs == 4) {
            fprintf(stderr, "switchboard: too many arguments\n");
            return -1;
        }
        o->args[o->nargs++] = a;
    }
    return 0;
}

/* --from and --to: each well formed, and from before to when both are
** given (need_both: a range hold needs the two). 0, or -1 said why. */
static int parse_range(const opts *o, int64_t *from, int64_t *to, int need_both)
{
    static const char forms[] = "YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or Unix seconds";
    *from = o->from ? cli_parse_time(o->from) : 0;
    *to = o->to ? cli_parse_until(o->to) : 0;
    if (o->from && *from < 0) {
        fprintf(stderr, "switchboard: --from '%s' is not a time (%s)\n", o->from, forms);
        return -1;
    }
    if (o->to && *to < 0) {
        fprintf(stderr, "switchboard: --to '%s' is not a time (%s)\n", o->to, forms);
        return -1;
    }
    if (need_both && (!o->from != !o->to)) {
        fprintf(stderr, "switchboard: a time range needs both --from and --to\n");
        return -1;
    }
    if (o->from && o->to && *from >= *to) {
        fprintf(stderr, "switchboard: --from (%s) must be before --to (%s)\n", o->from, o->to);
        return -1;
    }
    return 0;
}

/* A date given to stats' --from or --to (YYYY-MM-DD, nothing else) is a day
** of the account's: its midnight on the wall clock of the account's zone
** tz (next: the midnight after it, where --to's day ends). -1 for another
** form, which means the instant it names. */
static int64_t local_midnight(const char *s, const char *tz, int next)
{
    struct tm tm = {0};
    const char *end = s ? strptime(s, "%Y-%m-%d", &tm) : NULL;
    if (!end || *end) return -1;
    tm.tm_mday += next;
    tm.tm_isdst = -1; /* whichever the zone has that day */
    const char *was = getenv("TZ");
    char *old = was ? strdup(was) : NULL;
    char zone[80];
    snprintf(zone, sizeof zone, ":%s", tz);
    setenv("TZ", zone, 1);
    tzset();
    time_t t = mktime(&tm);
    if (old)
        setenv("TZ", old, 1);
    else
        unsetenv("TZ");
    free(old);
    tzset();
    return t == (time_t)-1 ? -1 : (int64_t)t * 1000;
}

/* The flag behind a field the library names in an error. */
static const char *flag_of(const char *field)
{
    static const char *const map[][2] = {
        {"reason", "--reason"}, {"from_ms", "--from"},  {"to_ms", "--to"},
        {"call", "--call"},     {"number", "--number"}, {"id", "--id"},
        {"queue", "--queue"},   {"limit", "--limit"},   {"account", "--account"},
        {"format", "--format"}, {"hold", "HOLD_ID"},    {NULL, NULL}};
    for (int i = 0; field && map[i][0]; i++)
        if (!strcmp(field, map[i][0])) return map[i][1];
    return NULL;
}

/* A whole number 1..max given to flag (NULL: absent, *out untouched). 0, or
** -1 said why. */
static int positive_int(const char *flag, const char *v, long long max, long long *out)
{
    char *e;
    if (!v) return 0;
    errno = 0;
    long long n = strtoll(v, &e, 10);
    if (*v >= '0' && *v <= '9' && !*e && !errno && n > 0 && n <= max) {
        *out = n;
        return 0;
    }
    fprintf(stderr, "switchboard: %s '%s': expected a whole number from 1 to %lld\n", flag, v, max);
    return -1;
}

/* A whole number 0..max given to flag (NULL: absent, *out untouched). 0, or
** -1 said why. */
static int whole_number(const char *flag, const char *v, unsigned long long max,
                        unsigned long long *out)
{
    char *e;
    if (!v) return 0;
    errno = 0;
    unsigned long long n = strtoull(v, &e, 10);
    if (*v >= '0' && *v <= '9' && !*e && !errno && n <= max) {
        *out = n;
        return 0;
    }
    fprintf(stderr, "switchboard: %s '%s': expected a whole number from 0 to %llu\n", flag, v, max);
    return -1;
}

/* Records and sweeps only read and maintain data that exists: a data
** directory that is missing or holds no Switchboard data (a mistyped
** --data-dir) is refused before sb_open could create a new, empty store and
** master key there. */
static int data_dir_exists(const opts *o)
{
    struct stat st;
    char path[4096];
    if (stat(o->data_dir, &st) || !S_ISDIR(st.st_mode)) {
        fprintf(stderr,
                "switchboard: --data-dir %s: %s (this command works on an existing data "
                "directory and creates nothing)\n",
                o->data_dir, errno == ENOENT ? "no such directory" : "not a directory");
        return 0;
    }
    snprintf(path, sizeof path, "%s/data.mdb", o->data_dir);
    if (stat(path, &st)) {
        fprintf(stderr,
                "switchboard: --data-dir %s holds no Switchboard data (no data.mdb): is it the "
                "right directory? Nothing was created\n",
                o->data_dir);
        return 0;
    }
    if (!o->key_file) snprintf(path, sizeof path, "%s/master.key", o->data_dir);
    if (stat(o->key_file ? o->key_file : path, &st)) {
        fprintf(stderr,
                "switchboard: no master key at %s: give the one this data was written with "
                "(--key-file F); nothing was created\n",
                o->key_file ? o->key_file : path);
        return 0;
    }
    return 1;
}

/* The width of the progress bar's line on the terminal, while a sweep draws
** one (records.c's sweep), else NULL: the engine's log lines start a line
** of their own rather than end the bar's. */
static int *bar_drawn;

static void cli_log(void *arg, sb_log_level lvl, const char *line)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char t[40];
    (void)arg;
    if (bar_drawn && *bar_drawn) {
        fputc('\n', stderr);
        *bar_drawn = 0;
    }
    fprintf(stderr, "%s %s %s\n",
            cli_iso_time((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, t, sizeof t),
            names[lvl & 3], line);
}

static sb_engine *open_dir(const opts *o, sb_result *res)
{
    if (!o->data_dir) {
        fprintf(stderr, "switchboard: --data-dir is required\n");
        return NULL;
    }
    if (!data_dir_exists(o)) return NULL;
    sb_config cfg;
    sb_config_init(&cfg);
    cfg.data_dir = o->data_dir;
    cfg.key_file = o->key_file;
    cfg.policy_dir = o->policy_dir;
    /* A policy directory's policies are stored in the data as they load,
    ** and a daemon serving it routes with them from then on: not behind
    ** its back (its own policy_dir comes back only at its next reload). */
    char pid[32];
    if (o->policy_dir && cli_served(o->data_dir, pid, sizeof pid)) {
        fprintf(stderr,
                "switchboard: --policy-dir would store the policies of %s in %s, which a running "
                "`switchboard serve`%s%s%s routes with: leave --policy-dir out (the data holds "
                "the policies the daemon uses), or change the daemon's policy_dir and send it "
                "SIGHUP\n",
                o->policy_dir, o->data_dir, *pid ? " (pid " : "", pid, *pid ? ")" : "");
        return NULL;
    }
    /* Info: a retention hook's ctx.log lines (a policy author debugging
    ** record.overridden runs a sweep or an erasure here), and what changed. */
    cfg.log_level = o->warn_only ? SB_LOG_WARN : SB_LOG_INFO;
    cfg.log = cli_log;
    sb_engine *e = NULL;
    if (sb_open(&e, &cfg, res)) {
        fprintf(stderr, "switchboard: %s\n", sb_result_message(res));
        return NULL;
    }
    return e;
}

static json_t *result_doc(sb_result *res)
{
    return json_loads(sb_result_json(res, NULL), 0, NULL);
}

static void print_doc(json_t *d)
{
    json_object_del(d, "actions");
    char *s = json_dumps(d, JSON_INDENT(2) | JSON_SORT_KEYS | CLI_JSON_REALS);
    if (s) printf("%s\n", s);
    free(s);
}

static void print_json(sb_result *res)
{
    json_t *d = result_doc(res);
    print_doc(d);
    json_decref(d);
}

/* Stored text as the terminal is to show it: control characters (C0, DEL
** and C1, U+0080..U+009F) as spaces, so that a reason cannot move the
** cursor, clear the screen or colour what follows. The engine stores
** reasons cleaned so; data written by earlier versions may not be. In one
** of a few buffers used in turn: as many as one printf takes. */
static const char *shown(const char *s)
{
    static char bufs[8][1024];
    static unsigned next;
    char *b = bufs[next++ % 8];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p && o + 1 < sizeof bufs[0];
         p++) {
        if (*p < 0x20 || *p == 0x7f) {
            b[o++] = ' ';
        } else if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) { /* as the engine does */
            b[o++] = ' ';
            if (o + 1 < sizeof bufs[0]) b[o++] = ' ';
            p++;
        } else {
            b[o++] = (char)*p;
        }
    }
    b[o] = 0;
    return b;
}

/* A string field as shown() shows it, or "". */
static const char *jstr(json_t *o, const char *k)
{
    return shown(json_string_value(json_object_get(o, k)));
}

static void print_record_line(json_t *r)
{
    char t[32], held[256] = "";
    cli_iso_time((int64_t)json_integer_value(json_object_get(r, "ended_ms")), t, sizeof t);
    size_t i, n = 0;
    json_t *h;
    json_array_foreach(json_object_get(r, "held_by"), i, h)
    {
        if (n < sizeof held)
            n += (size_t)snprintf(held + n, sizeof held - n, "%s%s", i ? ", " : "  (held by ",
                                  shown(json_string_value(h)));
    }
    if (n && n < sizeof held) snprintf(held + n, sizeof held - n, ")");
    printf("%-20s %s  %-10s %-11s wait %5.0fs talk %5.0fs  %s%s%s\n", jstr(r, "id"), t,
           jstr(r, "queue"), jstr(r, "outcome"), json_number_value(json_object_get(r, "wait")),
           json_number_value(json_object_get(r, "talk")), jstr(r, "agent"),
           json_is_true(json_object_get(r, "anonymized")) ? "  (anonymized)" : "", held);
}

/* A command's --account and its n arguments (the first named argname):
** 0, or -1 said which is missing or too many, with the usage line. */
static int need_args(const opts *o, const char *cmd, int n, const char *argname, const char *usage)
{
    if (o->account && o->nargs == n) return 0;
    if (!o->account)
        fprintf(stderr, "switchboard: records %s: --account ID is required\n", cmd);
    else if (o->nargs < n)
        fprintf(stderr, "switchboard: records %s: %s is missing\n", cmd, argname);
    else
        fprintf(stderr, "switchboard: records %s: unexpected argument '%s'\n", cmd, o->args[n]);
    fprintf(stderr, "usage: switchboard records %s\n", usage);
    return -1;
}

int cli_records(int argc, char **argv)
{
    if (argc < 1 || cli_is_help(argv[0], 1)) {
        records_usage(argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
    const char *cmd = argv[0];
    opts o = {0};
    if (parse_opts(argc - 1, argv + 1, &o)) {
        records_usage(stderr);
        return 2;
    }
    if (o.help) {
        records_usage(stdout);
        return 0;
    }
    /* Each command and the flags it takes besides the common ones. Those
    ** that run no policy take no --policy-dir: loading one stores its
    ** policies in the data, a write no reading command should make. */
    static const char *const cmds[][2] = {
        {"export", "--format"},
        {"erase", "--policy-dir"},
        {"list", "--from --to --queue --limit --before"},
        {"get", ""},
        {"hold", "--call --number --from --to --reason --id --policy-dir"},
        {"release", "--policy-dir"},
        {"holds", ""},
        {"audit", "--after --limit"},
        {"stats", "--queue --from --to"},
    };
    const char *takes = NULL;
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(cmd, cmds[i][0])) takes = cmds[i][1];
    if (!takes) {
        /* One line, not the whole usage: a script's loop of commands with
        ** one mistake would print it at each. */
        char names[128] = "";
        size_t n = 0;
        for (size_t i = 0; i < sizeof cmds / sizeof cmds[0] && n < sizeof names; i++)
            n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", i ? ", " : "", cmds[i][0]);
        fprintf(stderr,
                "switchboard: unknown records command '%s'; usage: switchboard records COMMAND "
                "[FLAGS], COMMAND one of %s (switchboard records --help)\n",
                cmd, names);
        return 2;
    }
    char name[64], allowed[160];
    snprintf(name, sizeof name, "records %s", cmd);
    snprintf(allowed, sizeof allowed, "--data-dir --account --key-file --json %s", takes);
    if (o.policy_dir && !strstr(takes, "--policy-dir")) {
        fprintf(stderr,
                "switchboard: records %s does not take --policy-dir: it runs no policy, and "
                "loading a policy directory stores its policies in the data (a running daemon "
                "would route with them)\n",
                cmd);
        return 2;
    }
    if (only_flags(name, &o, allowed)) return 2;
    if (!o.data_dir) {
        fprintf(stderr, "switchboard: records %s: --data-dir DIR is required\n", cmd);
        records_usage(stderr);
        return 2;
    }
    sb_result *res = sb_result_new();
    sb_engine *e = NULL;
    int rc = 2;
    if (!strcmp(cmd, "export")) {
        if (need_args(&o, cmd, 1, "NUMBER",
                      "export --data-dir DIR --account ID NUMBER [--format json|csv]"))
            goto out;
        int csv = o.format && !strcmp(o.format, "csv");
        if (o.format && !csv && strcmp(o.format, "json")) {
            fprintf(stderr, "switchboard: --format is json or csv\n");
            goto out;
        }
        o.warn_only = 1; /* the records it prints are what it disclosed */
        if (!(e = open_dir(&o, res))) goto fail;
        rc = sb_records_export(e, o.account, o.args[0], csv ? SB_EXPORT_CSV : SB_EXPORT_JSON, res);
        if (!rc) {
            json_t *d = result_doc(res);
            if (csv) {
                const char *text = json_string_value(json_object_get(d, "csv"));
                fputs(text ? text : "", stdout); /* as it is: lines of CSV */
            } else
                print_json(res);
            long long live = (long long)json_integer_value(json_object_get(d, "live"));
            if (live)
                fprintf(stderr,
                        "switchboard: %lld call%s of the number in progress, in no record yet "
                        "(export again when %s ended)\n",
                        live, live == 1 ? "" : "s", live == 1 ? "it has" : "they have");
            json_decref(d);
        }
    } else if (!strcmp(cmd, "erase")) {
        if (need_args(&o, cmd, 1, "NUMBER", "erase --data-dir DIR --account ID NUMBER")) goto out;
        if (!(e = open_dir(&o, res))) goto fail;
        rc = sb_erase(e, o.account, o.args[0], res);
        long long erase_failed = 0;
        if (!rc) {
            json_t *d = result_doc(res);
            erase_failed = (long long)json_integer_value(json_object_get(d, "failed"));
            json_decref(d);
        }
        if (!rc && o.json) {
            print_json(res);
        } else if (!rc) {
            json_t *d = result_doc(res);
            printf("deleted %lld, anonymized %lld, kept %lld",
                   (long long)json_integer_value(json_object_get(d, "deleted")),
                   (long long)json_integer_value(json_object_get(d, "anonymized")),
                   (long long)json_integer_value(json_object_get(d, "kept")));
            long long failed = (long long)json_integer_value(json_object_get(d, "failed"));
            if (failed) printf(" (%lld because the policy failed: run it again)", failed);
            long long held = (long long)json_integer_value(json_object_get(d, "held"));
            if (held)
                printf(" (%lld under a legal hold: the request reaches them at the first sweep "
                       "after a hold is released)",
                       held);
            printf("\n");
            /* Calls of the number in progress: in no count above, yet the
            ** request reaches each as it ends. */
            long long live = (long long)json_integer_value(json_object_get(d, "live"));
            if (live)
                printf("%lld call%s of the number in progress: the request reaches %s when it "
                       "ends (calls offered from now on are not covered)\n",
                       live, live == 1 ? "" : "s", live == 1 ? "it" : "each");
            const char *k;
            json_t *v;
            json_object_foreach(json_object_get(d, "reasons"), k, v)
                printf("  %6lld  %s\n", (long long)json_integer_value(v), shown(k));
            /* The number erased before: the counts above are what was left,
            ** and these what the requests before did. */
            size_t i;
            json_array_foreach(json_object_get(d, "earlier"), i, v)
            {
                char when[40];
                cli_iso_time(json_integer_value(json_object_get(v, "received_ms")), when,
                             sizeof when);
                printf("earlier request of the number, received %s", when);
                if (json_object_get(v, "deleted"))
                    printf(": deleted %lld, anonymized %lld, kept %lld%s",
                           (long long)json_integer_value(json_object_get(v, "deleted")),
                           (long long)json_integer_value(json_object_get(v, "anonymized")),
                           (long long)json_integer_value(json_object_get(v, "kept")),
                           json_is_true(json_object_get(v, "applied_again"))
                               ? " (applied again to a restored backup)"
                               : "");
                printf("\n");
            }
            json_decref(d);
        }
        if (erase_failed) {
            fprintf(stderr,
                    "switchboard: erasure incomplete: %lld record%s kept because the retention "
                    "policy failed; fix it and run the erasure again\n",
                    erase_failed, erase_failed == 1 ? "" : "s");
            rc = 3;
        }
    } else if (!strcmp(cmd, "list")) {
        if (need_args(&o, cmd, 0, NULL,
                      "list --data-dir DIR --account ID [--from T] [--to T] [--queue Q] "
                      "[--limit N] [--before MS:ID]"))
            goto out;
        int64_t from, to;
        long long limit = LIST_DEFAULT;
        if (parse_range(&o, &from, &to, 0) || positive_int("--limit", o.limit, LIST_MAX, &limit))
            goto out;
        json_t *q = json_object();
        if (o.from) json_object_set_new(q, "from_ms", json_integer(from));
        if (o.to) json_object_set_new(q, "to_ms", json_integer(to));
        if (o.queue) json_object_set_new(q, "queue", json_string(o.queue));
        if (o.limit) json_object_set_new(q, "limit", json_integer(limit));
        if (o.before) { /* MS:ID, the last record shown: the page after it */
            char *end;
            errno = 0;
            long long bms = strtoll(o.before, &end, 10);
            if (end == o.before || *end != ':' || !end[1] || bms < 0 || errno) {
                fprintf(stderr,
                        "switchboard: --before '%s' is not ENDED_MS:ID (the last record "
                        "shown, as the hint after a full page gives it)\n",
                        o.before);
                json_decref(q);
                goto out;
            }
            json_object_set_new(q, "before_ms", json_integer(bms));
            json_object_set_new(q, "before_id", json_string(end + 1));
        }
        char *qs = json_dumps(q, JSON_COMPACT | CLI_JSON_REALS);
        json_decref(q);
        if ((e = open_dir(&o, res))) rc = sb_records_list(e, o.account, qs, strlen(qs), res);
        free(qs);
        if (!e) goto fail;
        if (!rc) {
            json_t *d = result_doc(res);
            json_t *recs = json_object_get(d, "records");
            /* A full page may not be all: say so where scripts reading
            ** stdout do not see it, and in the JSON as "next" (the
            ** --before of the next page), as audit's says its --after. */
            json_t *last = json_array_get(recs, json_array_size(recs) - 1);
            char next[48 + 256] = "";
            if (last && json_array_size(recs) == (size_t)limit)
                snprintf(next, sizeof next, "%lld:%s",
                         (long long)json_integer_value(json_object_get(last, "ended_ms")),
                         jstr(last, "id"));
            if (o.json) {
                json_object_del(d, "actions");
                if (*next) json_object_set_new(d, "next", json_string(next));
                char *text = json_dumps(d, JSON_INDENT(2) | JSON_SORT_KEYS | CLI_JSON_REALS);
                if (text) printf("%s\n", text);
                free(text);
            } else {
                size_t i;
                json_t *r;
                json_array_foreach(recs, i, r) print_record_line(r);
                if (!json_array_size(recs))
                    fprintf(stderr, "switchboard: no records in account %s%s\n", o.account,
                            o.from || o.to || o.queue ? " that match" : "");
            }
            if (*next)
                fprintf(stderr,
                        "switchboard: %lld record%s shown (the newest): there may be more "
                        "(--limit N up to %d; the next page: --before %s)\n",
                        limit, limit == 1 ? "" : "s", LIST_MAX, next);
            json_decref(d);
        }
    } else if (!strcmp(cmd, "get")) {
        if (need_args(&o, cmd, 1, "CALL", "get --data-dir DIR --account ID CALL")) goto out;
        if (!(e = open_dir(&o, res))) goto fail;
        rc = sb_call_get(e, o.account, o.args[0], res);
        if (!rc) print_json(res);
    } else if (!strcmp(cmd, "hold")) {
        if (need_args(&o, cmd, 0, NULL,
                      "hold --data-dir DIR --account ID (--call C | --number N | --from T "
                      "--to T) --reason TEXT [--id ID]"))
            goto out;
        int64_t from, to;
        if (!o.reason || !*o.reason) {
            fprintf(stderr, "switchboard: records hold: --reason TEXT is required (it goes in "
                            "the audit log)\n");
            goto out;
        }
        if (!o.call + !o.number + !o.from != 2) {
            fprintf(stderr, "switchboard: records hold: give one of --call C, --number N or "
                            "--from T --to T\n");
            goto out;
        }
        if (parse_range(&o, &from, &to, 1)) goto out;
        json_t *h = json_object();
        if (o.id) json_object_set_new(h, "id", json_string(o.id));
        if (o.call) json_object_set_new(h, "call", json_string(o.call));
        if (o.number) json_object_set_new(h, "number", json_string(o.number));
        if (o.from) json_object_set_new(h, "from_ms", json_integer(from));
        if (o.to) json_object_set_new(h, "to_ms", json_integer(to));
        if (o.reason) json_object_set_new(h, "reason", json_string(o.reason));
        char *hs = json_dumps(h, JSON_COMPACT | CLI_JSON_REALS);
        json_decref(h);
        if ((e = open_dir(&o, res))) rc = sb_hold_place(e, o.account, hs, strlen(hs), res);
        free(hs);
        if (!e) goto fail;
        if (!rc && o.json)
            print_json(res);
        else if (!rc) {
            json_t *d = result_doc(res);
            printf("hold %s placed (%s): %s\n", jstr(d, "id"), jstr(d, "kind"), jstr(d, "reason"));
            if (o.from) {
                char a[40], b[40];
                printf("  calls in progress from %s to %s\n", cli_iso_time(from, a, sizeof a),
                       cli_iso_time(to, b, sizeof b));
            }
            json_decref(d);
        }
    } else if (!strcmp(cmd, "release")) {
        if (need_args(&o, cmd, 1, "HOLD_ID", "release --data-dir DIR --account ID HOLD_ID"))
            goto out;
        if (!(e = open_dir(&o, res))) goto fail;
        rc = sb_hold_release(e, o.account, o.args[0], res);
        if (!rc && o.json)
            print_json(res);
        else if (!rc)
            printf("hold %s released\n", o.args[0]);
    } else if (!strcmp(cmd, "holds")) {
        if (need_args(&o, cmd, 0, NULL, "holds --data-dir DIR --account ID")) goto out;
        if (!(e = open_dir(&o, res))) goto fail;
        rc = sb_hold_list(e, o.account, res);
        if (!rc && o.json) {
            print_json(res);
        } else if (!rc) {
            json_t *d = result_doc(res);
            size_t i;
            json_t *h;
            json_array_foreach(json_object_get(d, "holds"), i, h)
            {
                char t[32], f[32], u[32];
                cli_iso_time((int64_t)json_integer_value(json_object_get(h, "created_ms")), t,
                             sizeof t);
                printf("%-12s %-7s placed %s  %s", jstr(h, "id"), jstr(h, "kind"), t,
                       jstr(h, "reason"));
                if (json_object_get(h, "call")) printf("  call %s", jstr(h, "call"));
                if (json_object_get(h, "from_ms")) {
                    cli_iso_time((int64_t)json_integer_value(json_object_get(h, "from_ms")), f,
                                 sizeof f);
                    cli_iso_time((int64_t)json_integer_value(json_object_get(h, "to_ms")), u,
                                 sizeof u);
                    printf("  calls in progress from %s to %s", f, u);
                }
                printf("\n");
            }
            /* On stderr: stdout stays the list, empty, for a script. */
            if (!json_array_size(json_object_get(d, "holds")))
                fprintf(stderr, "switchboard: no legal holds in account %s\n", o.account);
            json_decref(d);
        }
    } else if (!strcmp(cmd, "audit")) {
        unsigned long long after = 0;
        long long limit = AUDIT_DEFAULT;
        if (need_args(&o, cmd, 0, NULL,
                      "audit --data-dir DIR --account ID [--after SEQ] [--limit N]") ||
            positive_int("--limit", o.limit, AUDIT_MAX, &limit) ||
            whole_number("--after", o.after, UINT64_MAX, &after))
            goto out;
        if (!(e = open_dir(&o, res))) goto fail;
        rc = sb_audit_list(e, o.account, after, (size_t)limit, res);
        if (!rc && o.json) {
            print_json(res);
        } else if (!rc) {
            json_t *d = result_doc(res);
            size_t i;
            json_t *x;
            json_array_foreach(json_object_get(d, "entries"), i, x)
            {
                char t[32];
                cli_iso_time((int64_t)json_integer_value(json_object_get(x, "t_ms")), t, sizeof t);
                /* An overridden decision's reason names the hold, then what
                ** the policy decided and said: "legal hold h1: dispute 7
                ** (policy: delete: older than 90 days)". */
                printf("%6lld %s %-8s %-13s %-12s %s\n",
                       (long long)json_integer_value(json_object_get(x, "seq")), t,
                       jstr(x, "source"), jstr(x, "action"), jstr(x, "call"), jstr(x, "reason"));
            }
            size_t got = json_array_size(json_object_get(d, "entries"));
            if (!got)
                fprintf(stderr, "switchboard: no audit entries in account %s%s%.0llu\n", o.account,
                        after ? " after entry " : "", after);
            if (got == (size_t)limit)
                fprintf(stderr, "switchboard: %zu entr%s shown: more may follow (--after %lld)\n",
                        got, got == 1 ? "y" : "ies",
                        (long long)json_integer_value(json_object_get(d, "next")));
            json_decref(d);
        }
    } else { /* stats */
        if (need_args(&o, cmd, 0, NULL,
                      "stats --data-dir DIR --account ID [--queue Q] [--from T] [--to T]"))
            goto out;
        int64_t from, to;
        if (parse_range(&o, &from, &to, 0)) goto out;
        if (!(e = open_dir(&o, res))) goto fail;
        json_t *acc =
            (o.from || o.to) && !sb_account_get(e, o.account, res) ? result_doc(res) : NULL;
        const char *tz = json_string_value(json_object_get(acc, "timezone"));
        int64_t lf = tz ? local_midnight(o.from, tz, 0) : -1,
                lt = tz ? local_midnight(o.to, tz, 1) : -1;
        if (lf >= 0) from = lf;
        if (lt >= 0) to = lt;
        json_decref(acc);
        rc = sb_aggregates(e, o.account, o.queue, from, to, res);
        if (!rc && o.json) {
            print_json(res);
        } else if (!rc) {
            json_t *d = result_doc(res);
            size_t i;
            json_t *x;
            printf("%-10s %-12s %8s %8s %8s %8s %8s %8s %9s %9s %7s\n", "day", "queue", "offered",
                   "answered", "abandon", "reject", "overflow", "failed", "avg wait", "avg talk",
                   "SL");
            /* avg wait: over every offered call, answered or not (an abandoned
            ** call's wait counts); avg talk: over answered calls. */
            json_array_foreach(json_object_get(d, "days"), i, x)
            {
                double ans = (double)json_integer_value(json_object_get(x, "answered"));
                double offered = (double)json_integer_value(json_object_get(x, "offered"));
                json_t *sl = json_object_get(x, "service_level");
                char slb[16] = "-", qb[160];
                snprintf(qb, sizeof qb, "%s%s",
                         json_is_null(json_object_get(x, "queue")) ? "(all)" : jstr(x, "queue"),
                         json_is_true(json_object_get(x, "queue_deleted")) ? " (deleted)" : "");
                if (json_is_number(sl))
                    snprintf(slb, sizeof slb, "%.1f%%", 100 * json_number_value(sl));
                /* a row written in the zone the account had before */
                const char *rowtz = jstr(x, "timezone");
                int other = strcmp(rowtz, jstr(d, "timezone")) != 0;
                printf("%-10s %-12s %8lld %8.0f %8lld %8lld %8lld %8lld %8.1fs %8.1fs %7s%s%s%s\n",
                       jstr(x, "day"), qb, (long long)offered, ans,
                       (long long)json_integer_value(json_object_get(x, "abandoned")),
                       (long long)json_integer_value(json_object_get(x, "rejected")),
                       (long long)json_integer_value(json_object_get(x, "overflowed")),
                       (long long)json_integer_value(json_object_get(x, "failed")),
                       offered ? json_number_value(json_object_get(x, "wait_total")) / offered : 0,
                       ans ? json_number_value(json_object_get(x, "talk_total")) / ans : 0, slb,
                       other ? "  (a day in " : "", other ? rowtz : "", other ? ")" : "");
            }
            printf("days in %s; avg wait: over all offered calls, answered or not; avg talk: over "
                   "answered calls; SL: service level\n",
                   jstr(d, "timezone"));
            json_decref(d);
        }
    }
    if (rc && rc != 2 && rc != 3) {
        const char *flag = rc == SB_EINVAL ? flag_of(sb_result_field(res)) : NULL;
        /* export and erase take the number as an argument, not --number */
        if (flag && !strcmp(flag, "--number") && (!strcmp(cmd, "export") || !strcmp(cmd, "erase")))
            flag = "NUMBER";
        fprintf(stderr, "switchboard: %s%s%s\n", flag ? flag : "", flag ? ": " : "",
                sb_result_message(res));
    }
    goto out;
fail:
    rc = 1; /* the data directory would not open: already said why */
out:
    sb_close(e);
    sb_result_free(res);
    return rc == 0 ? 0 : rc == 2 || rc == 3 ? rc : 1;
}

/* --- sweep ---------------------------------------------------------------- */

typedef struct bar {
    int tty, estimated; /* estimated: a total ahead of done was seen */
    int drawn;          /* the width of the line drawn last (0: none yet) */
    double t0;
    uint64_t last_done;
} bar;

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The bar at done of total records: full and 100% only when finished. */
static void bar_draw(bar *b, uint64_t done, uint64_t total, int finished)
{
    double el = mono() - b->t0, rate = el > 0 ? (double)done / el : 0.0;
    char line[160];
    if (finished || (b->estimated && total > done)) {
        if (finished) total = done;
        int width = 30, fill = total ? (int)((double)done / (double)total * width) : width;
        char fillbar[31];
        for (int i = 0; i < width; i++)
            fillbar[i] = i < fill ? '#' : '.';
        fillbar[width] = 0;
        /* Rounded down: 2,997 of 3,000 is 99%, not a "100%" with work left. */
        snprintf(line, sizeof line, "[%s] %3.0f%%  %llu/%llu records  %.0f/s", fillbar,
                 total ? floor(100.0 * (double)done / (double)total) : 100.0,
                 (unsigned long long)done, (unsigned long long)total, rate);
    } else if (b->estimated) {
        /* The estimate is used up, but the sweep goes on: the records a
        ** retention change queues for review are found on the way, so
        ** there is no percentage to give (not "100%" with work left). */
        snprintf(line, sizeof line, "sweeping: %llu records so far, %s estimated  %.0f/s",
                 (unsigned long long)done, done > total ? "more than" : "as many as", rate);
    } else {
        snprintf(line, sizeof line, "sweeping: %llu records so far  %.0f/s",
                 (unsigned long long)done, rate);
    }
    /* padded to overwrite a longer line before it */
    int n = (int)strlen(line);
    fprintf(stderr, "\r%-*s", n > b->drawn ? n : b->drawn, line);
    b->drawn = n;
}

static void progress(void *arg, uint64_t done, uint64_t total)
{
    bar *b = arg;
    if (!b->tty) return;
    /* total is an estimate made as the sweep starts, never below done: the
    ** records a retention change queues for review are found on the way.
    ** Until an estimate ahead of done is seen: no bar, no percentage (not
    ** "100%" of 0/0 before the work is found). */
    if (total > done) b->estimated = 1;
    bar_draw(b, done, total, 0);
    b->last_done = done;
}

/* What sweep and backup share: the usage check (nargs arguments) and the
** engine on --data-dir. 0 with *e and *res set, or the exit status. */
static int open_for(const char *cmd, const char *usage, int bad, int nargs, const opts *o,
                    sb_engine **e, sb_result **res)
{
    if (bad || o->nargs != nargs || !o->data_dir) {
        /* bad: parse_opts or a value check said why already */
        if (!bad && !o->data_dir)
            fprintf(stderr, "switchboard: %s: --data-dir DIR is required\n", cmd);
        else if (!bad && o->nargs < nargs)
            fprintf(stderr, "switchboard: %s: DEST is missing\n", cmd);
        else if (!bad)
            fprintf(stderr, "switchboard: %s: unexpected argument '%s'\n", cmd, o->args[nargs]);
        fprintf(stderr, "usage: switchboard %s\n", usage);
        return 2;
    }
    *res = sb_result_new();
    if ((*e = open_dir(o, *res))) return 0;
    sb_result_free(*res);
    return 1;
}

/* --- sweep --dry-run -------------------------------------------------------- */

static const char dry_usage[] =
    "sweep --dry-run --data-dir DIR --account ID [--policy FILE] [--policy-name NAME]\n"
    "        [--now T | --in-days N] [--scope due|all] [--sample N] [--key-file F] [--json]";

/* A source given with --policy FILE is previewed under a policy's name (the
** account's retention name, or --policy-name's): its store is that name's,
** and its failures say NAME.lua:LINE, a file the author may have too, with
** other lines. In the preview's reasons each NAME.lua:LINE is said of FILE,
** the file that was run. */
static void reasons_of_file(json_t *d, const char *file)
{
    const char *pol = json_string_value(json_object_get(d, "policy"));
    json_t *reasons = json_object_get(d, "reasons"), *out = json_object(), *v;
    char chunk[300]; /* a policy name and .lua: */
    if (!pol || !json_is_object(reasons) || !out ||
        (size_t)snprintf(chunk, sizeof chunk, "%s.lua:", pol) >= sizeof chunk) {
        json_decref(out);
        return;
    }
    size_t cl = strlen(chunk), fl = strlen(file);
    const char *k;
    json_object_foreach(reasons, k, v)
    {
        size_t n = strlen(k), len = 0;
        char *t = malloc(n / cl * fl + n + 1); /* each NAME.lua: at most FILE: */
        if (!t) {
            json_decref(out);
            return;
        }
        for (const char *p = k; *p;) {
            /* NAME.lua:LINE as a name of its own: not the tail of
            ** another's (secret.lua:3 for a policy named ret). */
            int whole = p == k || strchr(" \t'\"([", p[-1]);
            if (whole && !strncmp(p, chunk, cl) && p[cl] >= '0' && p[cl] <= '9') {
                memcpy(t + len, file, fl);
                t[len + fl] = ':';
                len += fl + 1;
                p += cl;
            } else {
                t[len++] = *p++;
            }
        }
        t[len] = 0;
        json_t *was = json_object_get(out, t); /* two reasons now one: their counts */
        json_object_set_new(out, t, json_integer(json_integer_value(v) + json_integer_value(was)));
        free(t);
    }
    json_object_set_new(d, "reasons", out);
}

/* The reasons of a preview, most frequent first. */
static int by_count(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "n")),
               y = json_integer_value(json_object_get(*(json_t *const *)b, "n"));
    if (x != y) return x > y ? -1 : 1;
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "r")),
                  json_string_value(json_object_get(*(json_t *const *)b, "r")));
}

static void print_preview(json_t *d)
{
#define N(k) ((unsigned long long)json_integer_value(json_object_get(d, k)))
    char t[32];
    const char *pol = json_string_value(json_object_get(d, "policy"));
    const char *ver = json_string_value(json_object_get(d, "version"));
    int all = !strcmp(json_string_value(json_object_get(d, "scope")), "all");
    printf("dry run for account %s: a sweep at %s, %s, %s%s%s%s%s; nothing was changed\n",
           jstr(d, "account"),
           cli_iso_time((int64_t)json_integer_value(json_object_get(d, "now_ms")), t, sizeof t),
           all ? "every record" : "the records due by then",
           pol ? "policy " : "no retention policy", pol ? shown(pol) : "",
           !strcmp(jstr(d, "source"), "given") ? " (the source given)" : "", ver ? " version " : "",
           ver ? shown(ver) : "");
    printf("%llu reviewed: %llu kept (%llu overridden by legal holds, %llu failed), %llu "
           "anonymized, %llu deleted\n",
           N("reviewed"), N("kept"), N("overridden"), N("failed"), N("anonymized"), N("deleted"));
#undef N
    json_t *reasons = json_object_get(d, "reasons");
    size_t n = json_object_size(reasons), i = 0;
    json_t **v = n ? calloc(n, sizeof *v) : NULL;
    const char *k;
    json_t *c;
    json_object_foreach(reasons, k, c)
    {
        if (v) v[i++] = json_pack("{s:s,s:O}", "r", k, "n", c);
    }
    if (v && n) {
        qsort(v, n, sizeof *v, by_count);
        printf("reasons:\n");
        for (i = 0; i < n; i++) {
            printf("  %8llu  %s\n",
                   (unsigned long long)json_integer_value(json_object_get(v[i], "n")),
                   jstr(v[i], "r"));
            json_decref(v[i]);
        }
    }
    free(v);
    static const char *const kinds[] = {"deleted", "anonymized", "overridden", "failed", "kept"};
    json_t *samples = json_object_get(d, "samples");
    for (size_t j = 0; j < sizeof kinds / sizeof kinds[0]; j++) {
        json_t *ids = json_object_get(samples, kinds[j]);
        if (!json_array_size(ids)) continue;
        unsigned long long all_n =
            (unsigned long long)json_integer_value(json_object_get(d, kinds[j]));
        printf("%s%s:", kinds[j], all_n > json_array_size(ids) ? ", for example" : "");
        json_array_foreach(ids, i, c)
        {
            printf(" %s", shown(json_string_value(c)));
        }
        printf("\n");
    }
}

static int sweep_dry_run(opts *o, int bad)
{
    /* Opening the engine with a policy directory stores what it holds as the
    ** shared policies, which sweeps and the daemon then run: a write. */
    if (!bad && o->policy_dir) {
        fprintf(stderr, "switchboard: sweep --dry-run does not take --policy-dir: loading a policy "
                        "directory stores its policies in the data, which a dry run must not "
                        "change (it runs the policies the data holds; --policy FILE previews "
                        "one that is not there)\n");
        return 2;
    }
    if (!bad && only_flags("sweep --dry-run", o,
                           "--dry-run --data-dir --account --key-file --policy "
                           "--policy-name --now --in-days --scope --sample --json"))
        return 2;
    unsigned long long days = 0, sample = 0;
    if (!bad) bad = whole_number("--in-days", o->in_days, 36600, &days);
    if (!bad) bad = whole_number("--sample", o->sample, 1000, &sample);
    int64_t now = -1;
    if (!bad && o->now && (now = cli_parse_time(o->now)) < 0) {
        fprintf(stderr,
                "switchboard: --now '%s' is not a time (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or Unix "
                "seconds)\n",
                o->now);
        bad = -1;
    }
    if (!bad && o->now && o->in_days) {
        fprintf(stderr, "switchboard: give --now or --in-days, not both\n");
        bad = -1;
    }
    if (!bad && o->scope && strcmp(o->scope, "due") && strcmp(o->scope, "all")) {
        fprintf(stderr, "switchboard: --scope '%s': expected due or all\n", o->scope);
        bad = -1;
    }
    if (!bad && !o->account) {
        fprintf(stderr, "switchboard: sweep --dry-run: --account ID is required (a dry run is of "
                        "one account)\n");
        bad = -1;
    }
    if (bad || o->nargs || !o->data_dir) {
        if (!bad && !o->data_dir)
            fprintf(stderr, "switchboard: sweep: --data-dir DIR is required\n");
        else if (!bad)
            fprintf(stderr, "switchboard: sweep: unexpected argument '%s'\n", o->args[0]);
        fprintf(stderr, "usage: switchboard %s\n", dry_usage);
        return 2;
    }
    /* The options, built before the engine opens: a file that cannot be read
    ** is said before anything else. */
    json_t *q = json_object();
    if (o->policy) {
        size_t len;
        char *src = cli_read_file(o->policy, &len);
        if (!src) {
            json_decref(q);
            return 1;
        }
        json_t *sv = json_stringn(src, len);
        free(src);
        if (!sv) {
            fprintf(stderr, "switchboard: %s: not UTF-8 text, which a policy source must be\n",
                    o->policy);
            json_decref(q);
            return 1;
        }
        json_object_set_new(q, "source", sv);
    }
    if (o->policy_name) json_object_set_new(q, "policy", json_string(o->policy_name));
    if (o->now) json_object_set_new(q, "now_ms", json_integer(now));
    if (o->in_days) json_object_set_new(q, "in_days", json_integer((json_int_t)days));
    if (o->scope) json_object_set_new(q, "scope", json_string(o->scope));
    if (o->sample) json_object_set_new(q, "sample", json_integer((json_int_t)sample));
    char *text = json_dumps(q, 0);
    json_decref(q);
    sb_result *res = sb_result_new();
    o->warn_only = 1; /* what it did is what it prints */
    sb_engine *e = text ? open_dir(o, res) : NULL;
    if (!e) {
        free(text);
        sb_result_free(res);
        return 1;
    }
    int rc = sb_retention_preview(e, o->account, text, strlen(text), res), st = 0;
    free(text);
    if (rc) {
        const char *field = sb_result_field(res);
        const char *flag = !field                                                    ? NULL
                           : !strcmp(field, "source") || !strcmp(field, "signature") ? "--policy"
                           : !strcmp(field, "policy")  ? (o->policy_name ? "--policy-name" : NULL)
                           : !strcmp(field, "in_days") ? "--in-days"
                           : !strcmp(field, "now_ms")  ? "--now"
                           : !strcmp(field, "account") ? "--account"
                                                       : NULL;
        const char *arg = !flag                            ? NULL
                          : !strcmp(flag, "--policy")      ? o->policy
                          : !strcmp(flag, "--policy-name") ? o->policy_name
                          : !strcmp(flag, "--in-days")     ? o->in_days
                          : !strcmp(flag, "--now")         ? o->now
                                                           : o->account;
        const char *msg = sb_result_message(res);
        /* The API's field, named in its message, is a flag here. */
        static const char api_field[] = " ('policy')";
        size_t ml = strlen(msg), al = sizeof api_field - 1;
        if (field && !strcmp(field, "policy") && !flag && ml > al &&
            !strcmp(msg + ml - al, api_field))
            fprintf(stderr, "switchboard: sweep --dry-run failed: %.*s with --policy-name NAME\n",
                    (int)(ml - al), msg);
        else
            fprintf(stderr, "switchboard: sweep --dry-run failed: %s%s%s%s%s%s\n", msg,
                    flag ? " (" : "", flag ? flag : "", arg ? " " : "", arg ? arg : "",
                    flag ? ")" : "");
        st = 1;
    } else {
        json_t *d = result_doc(res);
        if (o->policy) reasons_of_file(d, o->policy);
        if (o->json)
            print_doc(d);
        else
            print_preview(d);
        /* As records erase: some reviews would fail (kept, tried again a
        ** day later), which the policy's author wants to hear of. */
        if (json_integer_value(json_object_get(d, "failed"))) st = 3;
        json_decref(d);
    }
    sb_close(e);
    sb_result_free(res);
    return st;
}

int cli_sweep(int argc, char **argv)
{
    opts o = {0};
    int bad = parse_opts(argc, argv, &o);
    if (!bad && o.help && o.dry_run) {
        printf("usage: switchboard %s\n"
               "What a sweep would do to one account's records, without doing it: the\n"
               "account's retention policy (or, with --policy FILE, that Lua source, not\n"
               "uploaded; --policy-name NAME: a stored policy of that name, or the name FILE\n"
               "is run under) decides about each record as a sweep's review would (legal\n"
               "holds, failures and budgets as there), and the counts per decision and per\n"
               "reason are printed, with a few record ids of each. Nothing is written: no\n"
               "record, review date, audit entry or policy state changes.\n"
               "--now T: the sweep's time (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or Unix seconds);\n"
               "--in-days N: N days from now (0..36600); default: now.\n"
               "--scope due: the records a sweep then would review (their review date has\n"
               "come, or the account's retention changed since the last sweep): the default\n"
               "without --policy or --policy-name. all: every record, as the sweep after a\n"
               "change of the account's retention to that policy would: the default with\n"
               "them.\n"
               "--sample N: record ids shown per decision (0..1000, default 10).\n"
               "Exit status: 0 done, 1 an error (an unknown account, a policy that does not\n"
               "load or has no retain hook), 2 a usage error, 3 done but some reviews would\n"
               "fail (those records would be kept and tried again a day later).\n",
               dry_usage);
        return 0;
    }
    if (o.dry_run) return sweep_dry_run(&o, bad);
    if (!bad && o.help) {
        printf("usage: switchboard sweep --data-dir DIR [--budget-ms N] [--policy-dir DIR]\n"
               "                         [--key-file F] [--json] [--quiet]\n"
               "Review every record whose retention review is due, purge deleted accounts'\n"
               "records, remove audit log entries older than their account's audit_days,\n"
               "in short transactions beside live traffic; prints a progress bar\n"
               "on stderr (on a terminal; not with --json or --quiet) and a summary on\n"
               "stdout. Every account is swept. --budget-ms N: stop after about N ms (0, the\n"
               "default: until nothing is due). Stopped half way (the budget, a kill,\n"
               "Ctrl-C), the next sweep carries on without redoing or skipping a record.\n"
               "DIR must be an existing data directory: a sweep never creates one.\n"
               "--dry-run --account ID: what a sweep would do to that account's records,\n"
               "changing nothing (switchboard sweep --dry-run --help). --policy-dir DIR\n"
               "loads, and so stores in the data, those shared policies first: refused while\n"
               "`switchboard serve` runs on DIR (the data holds the policies it uses).\n"
               "Exit status: 0 done, 1 an error, 2 a usage error, 3 done but some of this\n"
               "command's reviews failed (those records were kept, and are tried again a\n"
               "day later).\n");
        return 0;
    }
    if (!bad &&
        only_flags("sweep", &o, "--data-dir --key-file --policy-dir --budget-ms --json --quiet"))
        return 2;
    unsigned long long budget = 0;
    if (!bad) bad = whole_number("--budget-ms", o.budget, UINT32_MAX, &budget);
    sb_result *res;
    sb_engine *e;
    int st = open_for("sweep",
                      "sweep --data-dir DIR [--budget-ms N] [--policy-dir DIR] [--key-file F] "
                      "[--json] [--quiet]",
                      bad, 0, &o, &e, &res);
    if (st) return st;
    bar b = {.tty = !o.quiet && !o.json && isatty(2), .t0 = mono()};
    bar_drawn = &b.drawn;
    int rc = sb_sweep(e, (uint32_t)budget, progress, &b, res);
    bar_drawn = NULL;
    json_t *d = rc ? NULL : result_doc(res);
    if (b.drawn) {
        /* Finished: the bar full, at last (the last report cannot tell). */
        if (b.estimated && json_is_true(json_object_get(d, "done")))
            bar_draw(&b, b.last_done, b.last_done, 1);
        fprintf(stderr, "\n");
    }
    /* As sweep --dry-run and records erase, reviews that failed are told:
    ** this command's own (a carried-on run's counts hold the earlier one's). */
    json_t *own = json_object_get(d, "this_call");
    int failed = json_integer_value(json_object_get(own, "failed")) > 0;
    if (rc) {
        fprintf(stderr, "switchboard: sweep failed: %s\n", sb_result_message(res));
    } else if (o.json) {
        print_json(res);
    } else {
#define N(k) ((unsigned long long)json_integer_value(json_object_get(d, k)))
        double secs = json_number_value(json_object_get(d, "seconds"));
        /* Decisions without a review come first when there are any: erasure
        ** requests a hold had kept from records, run again now that the hold
        ** was released; the counts after them cover both. (Failed reviews are
        ** among the kept.) */
        char erased[160] = "";
        if (N("erased"))
            snprintf(erased, sizeof erased,
                     ", %llu record%s reached by erasure requests run again now that a legal "
                     "hold was released",
                     N("erased"), N("erased") == 1 ? "" : "s");
        /* Audit entries past their account's audit_days, when there were any. */
        char audit[96] = "";
        if (N("audit_expired"))
            snprintf(audit, sizeof audit, ", %llu audit log entr%s past audit_days removed",
                     N("audit_expired"), N("audit_expired") == 1 ? "y" : "ies");
        printf("sweep %s%s: %llu reviewed%s (%llu kept, %llu anonymized, %llu deleted; %llu "
               "overridden by legal holds, %llu failed), %llu purged%s, %llu transaction%s, "
               "%.2f s\n",
               json_is_true(json_object_get(d, "done")) ? "done" : "stopped (budget used up)",
               json_is_true(json_object_get(d, "resumed")) ? " (carried on an interrupted sweep)"
                                                           : "",
               N("reviewed"), erased, N("kept"), N("anonymized"), N("deleted"), N("overridden"),
               N("failed"), N("purged"), audit, N("transactions"),
               N("transactions") == 1 ? "" : "s", secs);
        /* A run carried on: the counts above are the whole run's, the rate
        ** this command's own. */
        unsigned long long mine =
            (unsigned long long)json_integer_value(json_object_get(own, "reviewed"));
        if (json_is_true(json_object_get(d, "resumed")))
            printf("this command reviewed %llu of them\n", mine);
        if (secs > 0 && mine) printf("%.0f records/s reviewed\n", (double)mine / secs);
#undef N
    }
    json_decref(d);
    sb_close(e);
    sb_result_free(res);
    return rc ? 1 : failed ? 3 : 0;
}

/* --- backup --------------------------------------------------------------- */

int cli_backup(int argc, char **argv)
{
    opts o = {0};
    int bad = parse_opts(argc, argv, &o);
    if (!bad && o.help) {
        printf("usage: switchboard backup --data-dir DIR [--key-file F] [--json] DEST\n"
               "Copy the data directory into DEST (created, or an empty directory;\n"
               "not inside DIR, where it would be lost with it) while the daemon and\n"
               "others keep working: the data as one transaction saw it,\n"
               "compacted (old versions of anonymized or deleted records left behind),\n"
               "and the wrapped data keys. The master key is not copied: keep it apart;\n"
               "the backup opens only with it. A backup is whole when DEST holds data.mdb\n"
               "(put in place last): an interrupted one leaves none; run it again into\n"
               "the same DEST. To restore, stop everything using DIR and put DEST's\n"
               "files (and the master key) in its place, leaving DIR/erasures.journal\n"
               "there: the next open applies again the erasure requests and account\n"
               "deletions made since the backup. switchboard(1) says how to check a\n"
               "backup, what a restore undoes and what to do about it.\n"
               "Exit status: 0 written, 1 an error, 2 a usage error.\n");
        return 0;
    }
    if (!bad && only_flags("backup", &o, "--data-dir --key-file --json")) return 2;
    sb_result *res;
    sb_engine *e;
    o.warn_only = 1; /* the engine's info line says what the command prints */
    int st = open_for("backup", "backup --data-dir DIR [--key-file F] [--json] DEST", bad, 1, &o,
                      &e, &res);
    if (st) return st;
    int rc = sb_backup(e, o.args[0], res);
    if (rc) {
        fprintf(stderr, "switchboard: backup failed: %s\n", sb_result_message(res));
    } else if (o.json) {
        print_json(res);
    } else {
        json_t *d = result_doc(res);
        /* In the unit that fits it: a small backup read "0.0 MiB", as if empty. */
        double b = (double)json_integer_value(json_object_get(d, "bytes"));
        int unit = b < 1048576.0 ? 1 : b < 1073741824.0 ? 2 : 3;
        printf("backup written to %s (%.1f %s); the master key was not copied: keep it apart, "
               "the backup opens only with it\n",
               o.args[0],
               b / (unit == 1   ? 1024.0
                    : unit == 2 ? 1048576.0
                                : 1073741824.0),
               unit == 1   ? "KiB"
               : unit == 2 ? "MiB"
                           : "GiB");
        json_decref(d);
    }
    sb_close(e);
    sb_result_free(res);
    return rc ? 1 : 0;
}

/* --- key rotate ------------------------------------------------------------ */

static const char key_usage[] =
    "usage: switchboard key rotate --data-dir DIR [--key-file OLD] --new-key-file NEW [--json]\n"
    "Rotate the master key of DIR: every account's data key, and the key the API\n"
    "keys are hashed with, are wrapped again under the key in NEW, made (64 hex\n"
    "digits, mode 0600) when it is not there. Every record and API key stays\n"
    "readable and valid; from then on DIR opens only with NEW: set key_file to it,\n"
    "or give --key-file NEW to serve and the commands (or copy DIR/master.key\n"
    "elsewhere to keep it, then put NEW in its place). OLD (default\n"
    "DIR/master.key) is left as it was: backups made before the rotation open\n"
    "only with it, so keep it as long as them, then destroy it.\n"
    "Nothing else may have DIR open (stop the daemon first). A crash at any point\n"
    "leaves DIR opening with OLD or NEW. Refused, nothing changed: DIR open\n"
    "elsewhere, OLD not DIR's key, NEW not a valid key or the same key as OLD,\n"
    "NEW named as one of DIR's own files (data.keys.rotate, admin.token, ...).\n"
    "Exit status: 0 rotated, 1 an error (nothing changed unless it says so: the\n"
    "data keys wrapped under NEW, DIR not synced after), 2 a usage error.\n";

int cli_key(int argc, char **argv)
{
    if (argc < 1 || cli_is_help(argv[0], 1)) {
        fputs(key_usage, argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
    if (strcmp(argv[0], "rotate") != 0) {
        fprintf(stderr, "switchboard: unknown key command '%s'\n%s", argv[0], key_usage);
        return 2;
    }
    opts o = {0};
    int bad = parse_opts(argc - 1, argv + 1, &o);
    if (!bad && o.help) {
        fputs(key_usage, stdout);
        return 0;
    }
    if (!bad && only_flags("key rotate", &o, "--data-dir --key-file --new-key-file --json"))
        return 2;
    if (!bad && (!o.data_dir || !o.new_key_file || o.nargs)) {
        if (o.nargs)
            fprintf(stderr, "switchboard: key rotate: unexpected argument '%s'\n", o.args[0]);
        else
            fprintf(stderr, "switchboard: key rotate: %s is required\n",
                    o.data_dir ? "--new-key-file NEW" : "--data-dir DIR");
        bad = 1;
    }
    if (bad) {
        fputs(key_usage, stderr);
        return 2;
    }
    char pid[32];
    if (cli_served(o.data_dir, pid, sizeof pid)) {
        fprintf(stderr,
                "switchboard: key rotate: %s is in use by a running `switchboard serve`%s%s%s: "
                "stop the daemon, rotate, then start it with the new key; nothing was changed\n",
                o.data_dir, *pid ? " (pid " : "", pid, *pid ? ")" : "");
        return 1;
    }
    sb_config cfg;
    sb_config_init(&cfg);
    cfg.data_dir = o.data_dir;
    cfg.key_file = o.key_file;
    cfg.log_level = SB_LOG_WARN;
    cfg.log = cli_log;
    sb_result *res = sb_result_new();
    int rc = sb_master_key_rotate(&cfg, o.new_key_file, res);
    if (rc) {
        fprintf(stderr, "switchboard: key rotate failed: %s\n", sb_result_message(res));
    } else if (o.json) {
        print_json(res);
    } else {
        json_t *d = result_doc(res);
        long long dropped = json_integer_value(json_object_get(d, "slots_dropped"));
        long long n = json_integer_value(json_object_get(d, "accounts"));
        printf("master key rotated: the data keys of %lld account%s in %s, and the key API keys "
               "are hashed with, are wrapped under %s (%s) now",
               n, n == 1 ? "" : "s", o.data_dir, o.new_key_file,
               json_is_true(json_object_get(d, "new_key_made")) ? "a new key, made"
                                                                : "the key given");
        if (dropped) printf("; %lld key slots no account had were left out", dropped);
        printf(".\n%s opens only with %s from now on: set key_file to it, or give it as "
               "--key-file to serve and the commands%s.\n"
               "The old key %s was left as it was: backups made before this rotation open only "
               "with it; keep it as long as you keep them, then destroy it.\n",
               o.data_dir, o.new_key_file,
               o.key_file
                   ? ""
                   : " (or copy the old key below elsewhere to keep it, then put the new one in "
                     "its place)",
               jstr(d, "old_key_file"));
        json_decref(d);
    }
    sb_result_free(res);
    return rc ? 1 : 0;
}
