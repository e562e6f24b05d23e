/*
** main.c — the `switchboard` command: policy tooling, replay, the simulated
** demo day, and `serve` (the daemon). Uses only the public header.
*/
#include "switchboard.h"

#include "../daemon/daemon.h"
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: switchboard COMMAND [ARGS]\n"
               "\n"
               "  policy check [--public-key KEYFILE] [--config CONF] FILE...\n"
               "                                compile and lint policies (file:line messages),\n"
               "                                verify their signatures\n"
               "  policy test [-v] [--config CONF] FILE [CASES]\n"
               "                                run a policy's scenario cases (default FILE's\n"
               "                                .cases.json beside it; -v: every case's log);\n"
               "                                --config: serve's budgets from CONF\n"
               "  policy keygen                 print a new Ed25519 key pair for signing\n"
               "  policy sign --key KEYFILE FILE  print FILE signed with the secret key\n"
               "  replay FILE [--data-dir DIR] [--policy-dir DIR] [--json]\n"
               "                                run JSON-lines events through an engine and\n"
               "                                print each decision\n"
               "  simulate [--policy-dir DIR] [--calls N] [--seed N] [--data-dir DIR]\n"
               "           [--policy FILE [--queue Q[,Q...]]]\n"
               "                                a simulated day of calls, with a summary;\n"
               "                                --policy: your policy routes the day\n"
               "  records COMMAND ...           call records: export, erase, list, get, hold,\n"
               "                                release, holds, audit, stats (records --help)\n"
               "  sweep --data-dir DIR [--budget-ms N] [--policy-dir DIR] [--key-file F]\n"
               "        [--json] [--quiet]\n"
               "                                run a retention sweep now, with a summary\n"
               "  sweep --dry-run --data-dir DIR --account ID [--policy FILE]\n"
               "        [--policy-name NAME] [--now T | --in-days N] [--scope due|all]\n"
               "        [--sample N] [--key-file F] [--json]\n"
               "                                what a sweep would do to an account's records\n"
               "                                (counts per decision and reason), changing\n"
               "                                nothing\n"
               "  backup --data-dir DIR [--key-file F] [--json] DEST\n"
               "                                a consistent, compacted copy of the data\n"
               "                                (not the master key), while others work\n"
               "  key rotate --data-dir DIR [--key-file OLD] --new-key-file NEW [--json]\n"
               "                                wrap every data key under a new master key\n"
               "                                (made when NEW is not there); nothing else\n"
               "                                may have DIR open; old backups need OLD\n"
               "  serve [FLAGS]                 the HTTP/JSON daemon (serve --help)\n"
               "  version                       print the versions of the command and the\n"
               "                                library\n"
               "\n"
               "Every command takes --help (-h) for its usage. Usage errors exit 2.\n");
}

/* tm as UTC milliseconds, or -1 when it names no such time: strptime takes
** any day 1..31 of any month and a 60th second, which timegm would carry
** into the next month or minute (2026-02-30 as 2026-03-02). */
static int64_t utc_ms(struct tm *tm)
{
    struct tm want = *tm, got;
    time_t t = timegm(tm);
    if (!gmtime_r(&t, &got) || got.tm_year != want.tm_year || got.tm_mon != want.tm_mon ||
        got.tm_mday != want.tm_mday || got.tm_hour != want.tm_hour || got.tm_min != want.tm_min ||
        got.tm_sec != want.tm_sec)
        return -1;
    return (int64_t)t * 1000;
}

int64_t cli_parse_time(const char *s)
{
    if (!s) return -1;
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (end && (!*end || !strcmp(end, "Z"))) return utc_ms(&tm);
    memset(&tm, 0, sizeof tm);
    end = strptime(s, "%Y-%m-%d", &tm);
    if (end && !*end) return utc_ms(&tm);
    char *e;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    if (!*s || *e || v < 0 || errno || v > 253402300799999LL) return -1;
    return v >= 100000000000LL ? (int64_t)v : (int64_t)v * 1000;
}

int64_t cli_parse_until(const char *s)
{
    int64_t t = cli_parse_time(s);
    struct tm tm = {0};
    const char *end = t >= 0 ? strptime(s, "%Y-%m-%d", &tm) : NULL;
    return end && !*end ? t + 86400000 : t; /* a day: up to its end */
}

const char *cli_iso_time(int64_t ms, char *buf, size_t cap)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    /* Milliseconds only when there are some: a range of 600 ms is not shown
    ** as one from a second to the same second. */
    if (ms % 1000)
        snprintf(buf + n, cap - n, ".%03dZ", (int)(ms % 1000));
    else
        snprintf(buf + n, cap - n, "Z");
    return buf;
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
    errno = 0;
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
    /* A read error (FILE is a directory, an I/O error) is not the end of the
    ** file: what was read is not the whole of it. */
    int rerr = buf && ferror(f) ? (errno ? errno : EIO) : 0;
    if (f != stdin) fclose(f);
    if (rerr) {
        fprintf(stderr, "switchboard: %s: %s\n", path, strerror(rerr));
        free(buf);
        return NULL;
    }
    if (!buf) {
        fprintf(stderr, "switchboard: %s: out of memory\n", path);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

int cli_served(const char *dir, char *pid, size_t cap)
{
    char path[4096];
    if (cap) pid[0] = 0;
    if (!dir || snprintf(path, sizeof path, "%s/serve.lock", dir) >= (int)sizeof path) return 0;
    /* Opened, never created: a directory no daemon ever ran on has none. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return 0;
    int held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    if (held && cap > 1) {
        ssize_t n = pread(fd, pid, cap - 1, 0);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\r\n")] = 0;
    }
    close(fd); /* also drops the shared lock taken when it was free */
    return held;
}

int cli_refuse_served_dir(const char *cmd, const char *dir)
{
    char pid[32];
    if (!cli_served(dir, pid, sizeof pid)) return 0;
    fprintf(stderr,
            "switchboard %s: --data-dir %s is in use by a running `switchboard serve`%s%s%s: "
            "%s runs its own clock and would write into its data; stop the daemon or use "
            "another directory\n",
            cmd, dir, *pid ? " (pid " : "", pid, *pid ? ")" : "", cmd);
    return 1;
}

/* --- a temporary data directory ------------------------------------------
** replay and simulate without --data-dir make one of their own: a master key
** and the numbers they were given, sealed with it. It goes when the command
** ends, also when a signal ends it (`| head` closing the pipe, Ctrl-C, a
** kill): the handler removes it, then the command dies of the signal as it
** would have. Everything the handler calls is async-signal-safe; the
** directory is flat (the engine's files only). */
static char tmp_path[4096];
static int tmp_fd = -1;
static volatile sig_atomic_t tmp_armed;
/* cli_tmpdir_remove at work: it blocks the signals in its own thread only,
** so a signal another thread (the engine's) takes then waits for it. */
static volatile sig_atomic_t tmp_removing;
static const int tmp_signals[] = {SIGHUP, SIGINT, SIGTERM, SIGPIPE};

/* Remove the files in the directory open as fd, then the directory. */
static int remove_flat(int fd, const char *path)
{
    char buf[4096] __attribute__((aligned(8)));
    for (int passes = 0; fd >= 0 && passes < 64; passes++) {
        if (lseek(fd, 0, SEEK_SET) < 0) break;
        ssize_t n = getdents64(fd, buf, sizeof buf);
        int removed = 0;
        for (ssize_t off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(void *)(buf + off);
            const char *nm = d->d_name;
            if (!(nm[0] == '.' && (!nm[1] || (nm[1] == '.' && !nm[2]))) && unlinkat(fd, nm, 0) == 0)
                removed++;
            off += d->d_reclen;
        }
        if (n <= 0 || !removed) break;
    }
    return rmdir(path);
}

long long cli_stat(json_t *doc, const char *group, const char *key)
{
    return (long long)json_integer_value(json_object_get(json_object_get(doc, group), key));
}

int cli_flag(const char *flag, int argc, char **argv, int *i, const char **val)
{
    size_t n = strlen(flag);
    const char *a = argv[*i];
    if (strncmp(a, flag, n) != 0 || (a[n] && a[n] != '=')) return 0;
    if (a[n] == '=')
        *val = a + n + 1;
    else
        *val = *i + 1 < argc ? argv[++*i] : NULL;
    return 1;
}

int cli_twice(const char *cmd, int argc, char **argv, const char *const *flags)
{
    for (const char *const *f = flags; *f; f++) {
        size_t n = strlen(*f);
        int seen = 0;
        for (int i = 0; i < argc; i++) {
            const char *a = argv[i];
            if (!a || strncmp(a, *f, n) != 0 || (a[n] && a[n] != '=')) continue;
            if (seen++) {
                fprintf(stderr, "switchboard %s: %s given twice: give it once\n", cmd, *f);
                return 1;
            }
        }
    }
    return 0;
}

static void tmp_on_signal(int sig)
{
    while (tmp_removing) { /* the directory is going already: let it go, then die */
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    if (tmp_armed) {
        tmp_armed = 0;
        remove_flat(tmp_fd, tmp_path);
    }
    signal(sig, SIG_DFL);
    raise(sig); /* delivered as the handler returns: the command dies of it */
}

char *cli_tmpdir_make(const char *name)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    if (snprintf(tmp_path, sizeof tmp_path, "%s/switchboard-%s-XXXXXX", base, name) >=
        (int)sizeof tmp_path) {
        fprintf(stderr, "switchboard: TMPDIR %s: name too long\n", base);
        return NULL;
    }
    if (!mkdtemp(tmp_path)) {
        fprintf(stderr, "switchboard: cannot make a temporary directory in %s: %s\n", base,
                strerror(errno));
        return NULL;
    }
    tmp_fd = open(tmp_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (tmp_fd < 0) { /* the signal handler removes it through this */
        fprintf(stderr, "switchboard: cannot open %s: %s\n", tmp_path, strerror(errno));
        rmdir(tmp_path);
        return NULL;
    }
    tmp_armed = 1;
    for (size_t i = 0; i < sizeof tmp_signals / sizeof tmp_signals[0]; i++) {
        struct sigaction sa, old;
        if (sigaction(tmp_signals[i], NULL, &old) || old.sa_handler == SIG_IGN)
            continue; /* ignored (nohup, a background job's SIGINT): left so */
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = tmp_on_signal;
        sigemptyset(&sa.sa_mask);
        for (size_t j = 0; j < sizeof tmp_signals / sizeof tmp_signals[0]; j++)
            sigaddset(&sa.sa_mask, tmp_signals[j]);
        sigaction(tmp_signals[i], &sa, NULL);
    }
    return tmp_path;
}

int cli_tmpdir_remove(void)
{
    if (!tmp_armed) return 0;
    sigset_t set, old;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof tmp_signals / sizeof tmp_signals[0]; i++)
        sigaddset(&set, tmp_signals[i]);
    sigprocmask(SIG_BLOCK, &set, &old);
    tmp_removing = 1;
    tmp_armed = 0;
    int rc = remove_flat(tmp_fd, tmp_path);
    if (rc) fprintf(stderr, "switchboard: could not remove %s: %s\n", tmp_path, strerror(errno));
    if (tmp_fd >= 0) close(tmp_fd);
    tmp_fd = -1;
    tmp_removing = 0;
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static const char policy_usage_text[] =
    "usage: switchboard policy COMMAND [ARGS]\n"
    "\n"
    "  check [--public-key KEY] FILE...   compile and lint policies (file:line\n"
    "                                     messages); with --public-key, also verify\n"
    "                                     each file's signature\n"
    "  test [-v|--verbose] FILE [CASES]   run a policy's scenario cases (default: the\n"
    "                                     .cases.json beside FILE); a failing case's\n"
    "                                     ctx.log lines are shown, every case's with -v\n"
    "  check and test take --config CONF: the budgets (policy_instructions,\n"
    "  policy_wall_ms, policy_memory_kib) of `switchboard serve --config CONF`\n"
    "  instead of the defaults, as a reload or an upload there would meet them\n"
    "  keygen                             print a new Ed25519 key pair as JSON\n"
    "  sign --key KEYFILE FILE            print FILE signed with the secret key\n"
    "                                     (KEYFILE: keygen's JSON, or the 128-hex\n"
    "                                     secret key)\n"
    "\n"
    "Signing: `switchboard policy keygen > key.json` (keep it secret), then\n"
    "`switchboard policy sign --key key.json mine.lua > signed/mine.lua`; engines\n"
    "with require_signed_policies = yes and policy_public_key = key.json's\n"
    "public_key load only files signed that way. policies/README.md has more.\n"
    "Exit status: 0 ok; 1 a policy, case or signature failed; 2 a usage error or\n"
    "a file that cannot be read.\n";

int cli_is_help(const char *a, int word)
{
    return !strcmp(a, "--help") || !strcmp(a, "-h") || (word && !strcmp(a, "help"));
}

static int policy_usage(FILE *f, const char *why, const char *arg)
{
    if (why)
        fprintf(stderr, "switchboard policy: %s%s%s%s\n", why, arg ? " '" : "", arg ? arg : "",
                arg ? "'" : "");
    fputs(policy_usage_text, f);
    return f == stdout ? 0 : 2;
}

/* A key given on the command line: the hex itself, or a file holding it or
** keygen's JSON (field `field`). Returns a malloc'd, trimmed hex string or
** NULL (reported). */
static char *read_key(const char *arg, const char *field, size_t hexlen, int may_be_literal)
{
    size_t n = strlen(arg), kl;
    if (may_be_literal && n == hexlen && strspn(arg, "0123456789abcdefABCDEF") == n)
        return strdup(arg);
    char *key = cli_read_file(arg, &kl);
    if (!key) return NULL;
    char *p = key;
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
        p++;
    char *out = NULL;
    if (*p == '{') {
        json_error_t err;
        json_t *doc = json_loads(p, 0, &err);
        const char *v = json_string_value(json_object_get(doc, field));
        if (!doc)
            fprintf(stderr, "switchboard: %s: not JSON: %s (line %d)\n", arg, sbd_json_error(&err),
                    err.line);
        else if (!v)
            fprintf(stderr, "switchboard: %s: no \"%s\" in it (give policy keygen's output)\n", arg,
                    field);
        else
            out = strdup(v);
        json_decref(doc);
    } else {
        kl = strlen(p);
        while (kl &&
               (p[kl - 1] == '\n' || p[kl - 1] == '\r' || p[kl - 1] == ' ' || p[kl - 1] == '\t'))
            p[--kl] = 0;
        out = strdup(p);
    }
    memset(key, 0, strlen(key));
    free(key);
    if (out && (strlen(out) != hexlen || strspn(out, "0123456789abcdefABCDEF") != hexlen)) {
        fprintf(stderr, "switchboard: %s: the %s must be %zu hex characters\n", arg,
                strcmp(field, "secret_key") == 0 ? "secret key" : "public key", hexlen);
        memset(out, 0, strlen(out));
        free(out);
        out = NULL;
    }
    return out;
}

/* Does path lie in a folder named types (any level)? */
static int in_types_folder(const char *path)
{
    for (const char *p = path; (p = strstr(p, "types/")); p++)
        if (p == path || p[-1] == '/') return 1;
    return 0;
}

/* --config FILE at argv[*i]: the daemon's budgets from FILE into cfg; the
** two arguments are taken out of argv. 0, or the exit status. */
/* --config FILE or --config=FILE (v, from cli_flag): the budgets of FILE. */
static int config_flag(const char *v, sb_config *cfg, int *have)
{
    if (!v || !*v) return policy_usage(stderr, "--config needs a file", NULL);
    int rc = sbd_config_budgets(v, cfg);
    *have = rc == 0;
    return rc;
}

static int cmd_check(int argc, char **argv)
{
    const char *pubarg = NULL;
    int nfiles = 0, have_cfg = 0;
    sb_config cfg;
    static const char *const once[] = {"--public-key", "--config", NULL};
    if (cli_twice("policy check", argc, argv, once)) return 2;
    for (int i = 0; i < argc; i++) {
        if (!argv[i]) continue;
        if (cli_is_help(argv[i], 1)) return policy_usage(stdout, NULL, NULL);
        const char *v;
        int at = i;
        if (cli_flag("--public-key", argc, argv, &i, &v)) {
            if (!v || !*v) return policy_usage(stderr, "--public-key needs a key", NULL);
            pubarg = v;
            while (at <= i) /* the flag and its value are no FILE */
                argv[at++] = NULL;
        } else if (cli_flag("--config", argc, argv, &i, &v)) {
            int rc = config_flag(v, &cfg, &have_cfg);
            if (rc) return rc;
            while (at <= i)
                argv[at++] = NULL;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return policy_usage(stderr, "unknown flag", argv[i]);
        } else {
            nfiles++;
        }
    }
    if (nfiles < 1) return policy_usage(stderr, "check: no FILE", NULL);
    char *pub = pubarg ? read_key(pubarg, "public_key", 64, 1) : NULL;
    if (pubarg && !pub) return 2;
    int bad = 0, unreadable = 0;
    sb_result *res = sb_result_new();
    for (int i = 0; i < argc; i++) {
        if (!argv[i]) continue;
        size_t len;
        char *src = cli_read_file(argv[i], &len);
        if (!src) {
            unreadable++;
            continue;
        }
        /* A language server's annotations (policies/types/): not a policy,
        ** though a glob over the folder picks them up. Skipped as the policy
        ** directory's reload skips them, by their folder: a file elsewhere is
        ** loaded by a reload, so it is checked here, whatever its first line. */
        if (in_types_folder(argv[i])) {
            printf("%s: in a types/ folder (type annotations), which policy_dir's reload "
                   "skips: not checked\n",
                   argv[i]);
            free(src);
            continue;
        }
        int rc = sb_policy_check_cfg(have_cfg ? &cfg : NULL, argv[i], src, len, res);
        const char *msg = sb_result_message(res);
        char *lint = strdup(msg); /* the verify below reuses res */
        if (rc) {
            bad++;
            fprintf(stderr, "%s%s", msg, msg[0] && msg[strlen(msg) - 1] != '\n' ? "\n" : "");
        } else if (pub && sb_policy_verify(src, len, pub, res)) {
            bad++;
            fprintf(stderr, "%s: %s\n", argv[i], sb_result_message(res));
        } else {
            printf("%s: ok%s%s%s\n", argv[i], pub ? ", signature verified" : "",
                   lint && lint[0] ? "\n" : "", lint ? lint : "");
        }
        free(lint);
        free(src);
    }
    sb_result_free(res);
    free(pub);
    return bad ? 1 : unreadable ? 2 : 0;
}

static void print_log(json_t *c)
{
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(c, "log"), i, l)
    {
        /* "policy log: account=- policy=NAME: TEXT" -> TEXT */
        const char *line = json_string_value(l), *p = line ? strstr(line, " policy=") : NULL;
        if (line && !strncmp(line, "policy log: ", 12) && p && (p = strstr(p, ": "))) line = p + 2;
        printf("#   log: %s\n", line ? line : "");
    }
}

static int cmd_test(int argc, char **argv)
{
    const char *args[2];
    int nargs = 0, verbose = 0, have_cfg = 0;
    sb_config cfg;
    static const char *const once[] = {"--config", NULL};
    if (cli_twice("policy test", argc, argv, once)) return 2;
    for (int i = 0; i < argc; i++) {
        if (cli_is_help(argv[i], 1)) return policy_usage(stdout, NULL, NULL);
        const char *v;
        if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
            verbose = 1;
        } else if (cli_flag("--config", argc, argv, &i, &v)) {
            int rc = config_flag(v, &cfg, &have_cfg);
            if (rc) return rc;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return policy_usage(stderr, "unknown flag", argv[i]);
        } else if (nargs == 2) {
            return policy_usage(stderr, "test: too many arguments at", argv[i]);
        } else {
            args[nargs++] = argv[i];
        }
    }
    if (nargs < 1) return policy_usage(stderr, "test: no FILE", NULL);
    char cases_path[4096];
    if (nargs == 2) {
        snprintf(cases_path, sizeof cases_path, "%s", args[1]);
    } else {
        snprintf(cases_path, sizeof cases_path, "%s", args[0]);
        size_t n = strlen(cases_path);
        if (n > 4 && strcmp(cases_path + n - 4, ".lua") == 0) cases_path[n - 4] = 0;
        strncat(cases_path, ".cases.json", sizeof cases_path - strlen(cases_path) - 1);
    }
    /* As policy check: annotations in a types/ folder are no policy. */
    if (in_types_folder(args[0]) && nargs == 1) {
        fprintf(stderr,
                "switchboard: %s is in a types/ folder (type annotations for an editor, which "
                "policy_dir's reload skips): no policy to test\n",
                args[0]);
        return 2;
    }
    size_t sl, cl;
    char *src = cli_read_file(args[0], &sl);
    int had_cases = nargs == 2 || access(cases_path, F_OK) == 0;
    char *cases = src && had_cases ? cli_read_file(cases_path, &cl) : NULL;
    if (!src || !cases) {
        if (src && !had_cases)
            fprintf(stderr,
                    "switchboard: %s has no cases: write them in %s (a JSON array of "
                    "scenarios, policies/README.md shows the format), or name a cases file\n",
                    args[0], cases_path);
        free(src);
        return 2;
    }
    /* A case file that is not JSON: say which file, with the line. */
    json_error_t jerr;
    size_t bom = sbd_bom(cases, cl); /* the engine skips it */
    json_t *parsed = json_loadb(cases + bom, cl - bom, 0, &jerr);
    if (!parsed) {
        fprintf(stderr, "%s:%d: not JSON: %s\n", cases_path, jerr.line, sbd_json_error(&jerr));
        free(src);
        free(cases);
        return 1;
    }
    /* Named as given: the library names the cases file beside the policy. */
    const char *notcases = !json_is_array(parsed)         ? "expected a JSON array of cases"
                           : json_array_size(parsed) == 0 ? "no cases in it (a case file "
                                                            "that tests nothing passes nothing)"
                                                          : NULL;
    json_decref(parsed);
    if (notcases) {
        fprintf(stderr, "%s: %s\n", cases_path, notcases);
        free(src);
        free(cases);
        return 1;
    }
    sb_result *res = sb_result_new();
    int rc = sb_policy_test_cfg(have_cfg ? &cfg : NULL, args[0], src, sl, cases, cl, res);
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
                char *got = json_dumps(json_object_get(c, "got"),
                                       JSON_COMPACT | JSON_ENCODE_ANY | CLI_JSON_REALS);
                char *exp = json_dumps(json_object_get(c, "expected"),
                                       JSON_COMPACT | JSON_ENCODE_ANY | CLI_JSON_REALS);
                /* A case with only expect_store checks no decision: "expected
                ** null" read as if the decision had to be null. One with
                ** neither (a retention case takes no expect_store) is told
                ** so by its message. */
                const char *why = json_string_value(json_object_get(c, "message"));
                if (json_is_null(json_object_get(c, "expected")))
                    printf("#   expected (no expect%s)\n", why && strstr(why, "case has no expect")
                                                               ? ""
                                                               : ": the store only, expect_store");
                else
                    printf("#   expected %s\n", exp ? exp : "?");
                if (got) printf("#   got      %s\n", got);
                if (why) printf("#   %s\n", why);
                free(got);
                free(exp);
            }
            const char *note = json_string_value(json_object_get(c, "note"));
            if (note) printf("#   note: %s\n", note);
            if (!ok || verbose) print_log(c);
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

static int cmd_keygen(int argc, char **argv)
{
    if (argc >= 1 && cli_is_help(argv[0], 1)) return policy_usage(stdout, NULL, NULL);
    if (argc >= 1) return policy_usage(stderr, "keygen takes no arguments:", argv[0]);
    sb_result *res = sb_result_new();
    int rc = sb_policy_keygen(res);
    printf("%s\n", sb_result_json(res, NULL));
    sb_result_free(res);
    return rc ? 1 : 0;
}

static int cmd_sign(int argc, char **argv)
{
    const char *keyfile = NULL, *file = NULL;
    static const char *const once[] = {"--key", NULL};
    if (cli_twice("policy sign", argc, argv, once)) return 2;
    for (int i = 0; i < argc; i++) {
        if (cli_is_help(argv[i], 1)) return policy_usage(stdout, NULL, NULL);
        const char *v;
        if (cli_flag("--key", argc, argv, &i, &v)) {
            if (!v || !*v) return policy_usage(stderr, "--key needs a key file", NULL);
            keyfile = v;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return policy_usage(stderr, "unknown flag", argv[i]);
        } else if (file) {
            return policy_usage(stderr, "sign: one FILE only, not also", argv[i]);
        } else {
            file = argv[i];
        }
    }
    if (!keyfile || !file) return policy_usage(stderr, "sign needs --key KEYFILE and FILE", NULL);
    size_t sl;
    char *key = read_key(keyfile, "secret_key", 128, 0);
    char *src = key ? cli_read_file(file, &sl) : NULL;
    if (!key || !src) {
        if (key) memset(key, 0, strlen(key));
        free(key);
        return 2;
    }
    sb_result *res = sb_result_new();
    int rc = sb_policy_sign(src, sl, key, res);
    if (rc) {
        fprintf(stderr, "switchboard: %s\n", sb_result_message(res));
    } else {
        json_t *doc = json_loads(sb_result_json(res, NULL), 0, NULL);
        fputs(json_string_value(json_object_get(doc, "source")), stdout);
        json_decref(doc);
    }
    memset(key, 0, strlen(key));
    free(key);
    free(src);
    sb_result_free(res);
    return rc ? 1 : 0;
}

static int cmd_policy(int argc, char **argv)
{
    if (argc < 1) return policy_usage(stderr, "no policy command", NULL);
    if (cli_is_help(argv[0], 1)) return policy_usage(stdout, NULL, NULL);
    if (strcmp(argv[0], "check") == 0) return cmd_check(argc - 1, argv + 1);
    if (strcmp(argv[0], "test") == 0) return cmd_test(argc - 1, argv + 1);
    if (strcmp(argv[0], "keygen") == 0) return cmd_keygen(argc - 1, argv + 1);
    if (strcmp(argv[0], "sign") == 0) return cmd_sign(argc - 1, argv + 1);
    return policy_usage(stderr, "unknown policy command", argv[0]);
}

/* What the command printed must have reached its standard output: a full
** disk (or a closed pipe, when SIGPIPE is ignored) loses it, and a command
** that says nothing and exits 0 then loses a key, an export or a report.
** rc, or 1 when the output could not be written. */
static int output_written(int rc)
{
    errno = 0;
    int flushed = fflush(stdout) == 0, err = errno;
    if (flushed && !ferror(stdout)) return rc;
    fprintf(stderr, "switchboard: standard output: %s (what was printed is not all there)\n",
            err ? strerror(err) : "a write failed");
    return rc ? rc : 1;
}

static int run_command(int argc, char **argv);

int main(int argc, char **argv)
{
    return output_written(run_command(argc, argv));
}

static int run_command(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    /* A write past a file size limit (RLIMIT_FSIZE) fails with EFBIG, which
    ** the commands that write (replay, records, sweep, backup, policy keygen
    ** and sign, serve) report as a full disk, instead of SIGXFSZ killing
    ** the command part-way with a core dump. */
    signal(SIGXFSZ, SIG_IGN);
    /* Ctrl-Z stops a command between its write transactions, never inside
    ** one, where it would hold up every write of a daemon on the same data
    ** directory until it went on (the daemon, serve, stops whole anyway). */
    if (strcmp(cmd, "serve") != 0) sb_defer_stop_signals(1);
    if (strcmp(cmd, "policy") == 0) return cmd_policy(argc - 2, argv + 2);
    if (strcmp(cmd, "replay") == 0) return cli_replay(argc - 2, argv + 2);
    if (strcmp(cmd, "simulate") == 0) return cli_simulate(argc - 2, argv + 2);
    if (strcmp(cmd, "records") == 0) return cli_records(argc - 2, argv + 2);
    if (strcmp(cmd, "sweep") == 0) return cli_sweep(argc - 2, argv + 2);
    if (strcmp(cmd, "backup") == 0) return cli_backup(argc - 2, argv + 2);
    if (strcmp(cmd, "key") == 0) return cli_key(argc - 2, argv + 2);
    if (strcmp(cmd, "serve") == 0) return sb_daemon_main(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        if (argc > 2 && cli_is_help(argv[2], 1)) {
            printf("usage: switchboard version\nPrint the version of the command (switchboard "
                   "X.Y.Z) and of the library it\nruns with (libswitchboard X.Y.Z), one a "
                   "line.\n");
            return 0;
        }
        if (argc > 2) {
            fprintf(stderr, "switchboard: version takes no arguments ('%s')\n", argv[2]);
            return 2;
        }
        /* The command as built (the header it was compiled with), then the
        ** library it runs with: one build links both, and they agree. */
        printf("switchboard %s\nlibswitchboard %s\n", SB_VERSION_STRING, sb_version());
        return 0;
    }
    if (cli_is_help(cmd, 1)) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "switchboard: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
