/*
** config.h — the daemon's settings: built-in defaults, then the config file
** (`key = value` lines, `#` comments), then command-line flags. Every key is
** documented in examples/switchboard.conf.
*/
#ifndef SBD_CONFIG_H
#define SBD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "switchboard.h"

/* policy_dir when none is given: a daemon starts without it, uploads only. */
#define SBD_DEFAULT_POLICY_DIR "./policies"

/* The largest LMDB map when map_max is 0 (the engine's default). */
#define SBD_DEFAULT_MAP_MAX ((uint64_t)64 << 30)

typedef enum sbd_sync { SBD_SYNC_GROUP, SBD_SYNC_SYNC, SBD_SYNC_NONE } sbd_sync;

typedef struct sbd_config {
    char *config_file; /* NULL: none given                         */
    char *listen;      /* "host:port"; port 0 picks a free port     */
    char *data_dir;
    char *policy_dir;
    char *key_file;         /* NULL: the engine's default               */
    char *admin_token_file; /* NULL: <data_dir>/admin.token             */
    sbd_sync sync;
    size_t max_body;
    size_t max_header;
    size_t max_page; /* bytes of items a page of a list is built to */
    unsigned max_connections;
    unsigned max_connections_per_peer; /* from one IP address (0: no limit) */
    sb_log_level log_level;
    size_t map_size; /* 0: the engine's default                 */
    size_t map_max;  /* 0: the engine's default                 */
    uint64_t policy_instructions;
    uint32_t policy_wall_ms;
    uint64_t policy_memory_kib;
    uint32_t quarantine_after;
    uint32_t erasure_journal_days;
    int require_signed_policies;
    char *policy_public_key;
    uint64_t seed;
    unsigned stream_keepalive;       /* seconds between SSE keep-alive comments */
    size_t stream_buffer;            /* bytes queued per subscriber before drop */
    unsigned stream_max_per_account; /* open streams an account may have (0: no limit) */
    unsigned idle_timeout;           /* seconds an idle connection is kept      */
    unsigned request_timeout;        /* seconds from a request's first byte to its last */
    unsigned shutdown_timeout;       /* seconds SIGTERM waits for in-flight work */
    unsigned sweep_interval;         /* seconds between retention sweeps (0: none) */
    int demo;
    int policy_dir_absent; /* the default policy_dir was missing at start: none in use */
    char *listen_origin;   /* where listen was set: "FILE:LINE: ", "--listen: " or "" */
} sbd_config;

/* Fill c from defaults, the file named by --config and the flags in argv
** (argv[0] is the subcommand). Returns 0 to run, 1 when --help was printed
** (exit 0), 2 on a usage error or a bad flag value and 3 on a configuration
** error (both reported on stderr, naming the flag or the file's
** FILE:LINE). Numbers are checked against their ranges once the file and
** the flags are read, so a flag overrides a file's value before it is
** checked; a key given twice in the file is an error. On any return,
** sbd_config_free() releases c. */
int sbd_config_load(sbd_config *c, int argc, char **argv);
void sbd_config_free(sbd_config *c);
/* The keys whose values differ between a and b, as "k1,k2" in names (size
** n); returns how many. */
int sbd_config_differs(const sbd_config *a, const sbd_config *b, char *names, size_t n);

/* Where `make install` put the daemon's document `name` (switchboard.conf,
** API.md) into buf (size n): its absolute path in share/doc/switchboard
** beside the bin/ this command runs from, and 1, when it is there; else
** in_tree (its place in the source tree), and 0. */
int sbd_doc_path(const char *name, const char *in_tree, char *buf, size_t n);

/* Resolve a listen address ("host:port", "[v6addr]:port", ":port" or
** "port": all interfaces) into *ss and *sslen, unless ss is NULL. Returns
** NULL, or what is wrong with it. */
const char *sbd_listen_parse(const char *spec, struct sockaddr_storage *ss, int *sslen);

#endif
