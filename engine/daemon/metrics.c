/*
** metrics.c — GET /metrics in the Prometheus text format: the engine's
** sb_stats() counters plus the daemon's own (requests by route, method and
** status; request latency until the response was released after its sync;
** connections; syncs; ticks; streams).
*/
#include "serve.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "log.h"

/* Every status the daemon answers (its own code label); another would count
** as "other". */
static const int statuses[SBD_NSTATUS - 1] = {200, 201, 400, 401, 403, 404, 405, 408, 409, 412,
                                              413, 417, 422, 429, 431, 500, 501, 503, 505};

/* Upper bounds of the latency buckets, seconds. */
static const double lat_le[SBD_LAT_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                               0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                               1,      2.5,     5,      10};

int sbd_status_index(int status)
{
    for (int i = 0; i < SBD_NSTATUS - 1; i++)
        if (statuses[i] == status) return i;
    return SBD_NSTATUS - 1;
}

void sbd_metrics_request(sbd *d, int route, int method, int status, double seconds)
{
    if (route < 0 || route >= SBD_MAX_ROUTES) route = SBD_MAX_ROUTES;
    if (method < 0 || method >= SBD_NMETHODS) method = SBD_OTHER;
    d->m.requests[route][method][sbd_status_index(status)]++;
    int b = 0;
    while (b < SBD_LAT_BUCKETS && seconds > lat_le[b])
        b++;
    d->m.lat_counts[b]++;
    d->m.lat_sum += seconds;
    d->m.lat_count++;
}

static void family(struct evbuffer *o, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric_u(struct evbuffer *o, const char *name, const char *type, const char *help,
                     unsigned long long v)
{
    family(o, name, type, help);
    evbuffer_add_printf(o, "%s %llu\n", name, v);
}

/* A label value with \ " and newlines escaped. */
static const char *label(const char *s)
{
    static char buf[4][256];
    static unsigned k;
    char *b = buf[k++ % 4];
    size_t o = 0;
    for (; *s && o + 3 < sizeof buf[0]; s++) {
        if (*s == '\\' || *s == '"')
            b[o++] = '\\', b[o++] = *s;
        else if (*s == '\n')
            b[o++] = '\\', b[o++] = 'n';
        else
            b[o++] = *s;
    }
    b[o] = 0;
    return b;
}

static int name_ok(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return 0;
    return 1;
}

/* events/decisions: one counter family with a label per key (but `skip`,
** which is not one of the family's kinds). */
static void labelled(struct evbuffer *o, json_t *obj, const char *name, const char *lbl,
                     const char *help, const char *skip)
{
    if (!json_is_object(obj)) return;
    family(o, name, "counter", help);
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (json_is_number(v) && !(skip && !strcmp(k, skip)))
            evbuffer_add_printf(o, "%s{%s=\"%s\"} %.17g\n", name, lbl, label(k),
                                json_number_value(v));
    }
}

/* The engine's latency histogram (microsecond bounds) as seconds. The
** counts may be per bucket or cumulative; accept either. */
static void histogram(struct evbuffer *o, json_t *h)
{
    json_t *le = json_object_get(h, "le"), *counts = json_object_get(h, "counts");
    if (!json_is_array(le) || !json_is_array(counts)) return;
    size_t n = json_array_size(le), nc = json_array_size(counts);
    double count = json_number_value(json_object_get(h, "count"));
    double sum_us = json_number_value(json_object_get(h, "sum"));
    double prev = 0;
    int cumulative = 1;
    for (size_t i = 0; i < nc; i++) {
        double c = json_number_value(json_array_get(counts, i));
        if (c < prev) cumulative = 0;
        prev = c;
    }
    if (nc && prev != count) cumulative = 0;
    const char *name = "switchboard_event_latency_seconds";
    family(o, name, "histogram", "Time the engine spent on each event.");
    double acc = 0;
    for (size_t i = 0; i < n && i < nc; i++) {
        double c = json_number_value(json_array_get(counts, i));
        acc = cumulative ? c : acc + c;
        evbuffer_add_printf(o, "%s_bucket{le=\"%.6g\"} %.17g\n", name,
                            json_number_value(json_array_get(le, i)) / 1e6, acc);
    }
    evbuffer_add_printf(o, "%s_bucket{le=\"+Inf\"} %.17g\n%s_sum %.9g\n%s_count %.17g\n", name,
                        count, name, sum_us / 1e6, name, count);
}

/* What each of sb_stats()'s plain numbers is, for its HELP line. */
static const struct {
    const char *sec, *key, *help;
} stat_help[] = {
    {"policy", "failures", "Policy hook calls that failed (errors, budgets, bad decisions)."},
    {"policy", "quarantined", "Policies quarantined now (fallback routing until reloaded)."},
    {"policy", "reloads",
     "Reloads of policy_dir by this engine that succeeded (in the daemon its SIGHUPs', as "
     "switchboard_reloads_total); failed ones are not counted."},
    {"policy", "generation", "Generation of the shared policies in use."},
    {"policy", "memory_bytes", "Memory of the accounts' Lua policy states, in bytes."},
    {"policy", "dir_loaded",
     "1 when the last load of policy_dir (at start or SIGHUP) succeeded; 0: the policies "
     "stored before decide (see the log's error)."},
    {"lmdb", "map_size_bytes", "LMDB map size in bytes (it grows up to map_max)."},
    {"lmdb", "used_bytes",
     "Bytes of the LMDB map in use: its pages less the free ones LMDB hands out again (what "
     "map_max is weighed against; it goes down as data is deleted)."},
    {"lmdb", "high_water_bytes",
     "Bytes of the LMDB map up to its last page ever used (a high-water mark: free pages "
     "below it are reused, never given back)."},
    {"lmdb", "readers",
     "LMDB reader slots taken in the lock table, by every process on the data directory "
     "(a high-water mark: slots freed are reused, not given back)."},
    {"lmdb", "max_readers", "LMDB reader slots the lock table holds."},
    {"lmdb", "map_max_reached",
     "1 while new calls and documents are refused for want of room (503 SB_EFULL, map_max "
     "reached): the map has grown past map_max into the reserve kept for calls in progress, "
     "and what is in use is too near map_max; 0 otherwise."},
};

static const char *stat_help_of(const char *sec, const char *key)
{
    for (size_t i = 0; i < sizeof stat_help / sizeof stat_help[0]; i++)
        if (!strcmp(stat_help[i].sec, sec) && !strcmp(stat_help[i].key, key))
            return stat_help[i].help;
    return "From sb_stats().";
}

static void engine_stats(sbd *d, struct evbuffer *o)
{
    if (sb_stats(d->eng, d->res) != 0) {
        evbuffer_add_printf(o, "# sb_stats failed: %s\n", sb_strerror(sb_result_code(d->res)));
        return;
    }
    size_t len;
    const char *js = sb_result_json(d->res, &len);
    json_t *st = json_loadb(js, len, 0, NULL);
    if (!st) return;
    const char *sec;
    json_t *obj;
    json_object_foreach(st, sec, obj)
    {
        if (!strcmp(sec, "events")) {
            /* "errors" is no type: the failed events also count under
            ** their own type, so summing the family would count them twice. */
            labelled(o, obj, "switchboard_events_total", "type",
                     "Events submitted, by type, failed ones too; type tick: sb_tick() calls "
                     "that fired timers.",
                     "errors");
            json_t *errs = json_object_get(obj, "errors");
            if (json_is_number(errs)) {
                family(o, "switchboard_event_errors_total", "counter",
                       "Events that failed (each also counted in switchboard_events_total "
                       "under its type).");
                evbuffer_add_printf(o, "switchboard_event_errors_total %.17g\n",
                                    json_number_value(errs));
            }
        } else if (!strcmp(sec, "decisions")) {
            labelled(o, obj, "switchboard_decisions_total", "decision",
                     "Routing decisions of queues' policies, by kind; fallback: those the "
                     "fallback made, also counted under their kind. Overflows and rejections "
                     "the engine makes itself (max wait passed, a full queue) are none.",
                     NULL);
        } else if (!strcmp(sec, "latency_us")) {
            histogram(o, obj);
        } else if (json_is_object(obj) && name_ok(sec)) {
            const char *k;
            json_t *v;
            json_object_foreach(obj, k, v)
            {
                if (!json_is_number(v) || !name_ok(k)) continue;
                char name[160];
                int counter =
                    !strcmp(sec, "policy") && (!strcmp(k, "failures") || !strcmp(k, "reloads"));
                /* A size in bytes says so, as its neighbours do. */
                int bytes = !strcmp(sec, "lmdb") && !strcmp(k, "map_size");
                snprintf(name, sizeof name, "switchboard_%s_%s%s", sec, k,
                         counter ? "_total"
                         : bytes ? "_bytes"
                                 : "");
                family(o, name, counter ? "counter" : "gauge",
                       stat_help_of(sec, bytes ? "map_size_bytes" : k));
                evbuffer_add_printf(o, "%s %.17g\n", name, json_number_value(v));
                if (bytes) { /* the name before, for one release */
                    family(o, "switchboard_lmdb_map_size", "gauge",
                           "Deprecated: use switchboard_lmdb_map_size_bytes (the same value); "
                           "this name goes in the next release.");
                    evbuffer_add_printf(o, "switchboard_lmdb_map_size %.17g\n",
                                        json_number_value(v));
                }
            }
        }
    }
    json_decref(st);
}

static const char *const method_names[SBD_NMETHODS] = {"GET",    "PUT",  "POST",
                                                       "DELETE", "HEAD", "OTHER"};

void sbd_metrics_render(sbd *d, struct evbuffer *o)
{
    const sbd_metrics *m = &d->m;
    engine_stats(d, o);
    /* The engine's stats give the map's size, not its limit: the daemon's
    ** own setting is it (one engine per process on a data directory). */
    metric_u(o, "switchboard_lmdb_map_max_bytes", "gauge",
             "The largest the LMDB map grows, in bytes (map_max; 64G when 0): writes past it "
             "fail with SB_EFULL (503). Alert on switchboard_lmdb_used_bytes against it.",
             d->cfg->map_max ? (unsigned long long)d->cfg->map_max
                             : (unsigned long long)SBD_DEFAULT_MAP_MAX);
    const char *name = "switchboard_http_requests_total";
    family(o, name, "counter", "HTTP requests answered, by route, method and status.");
    for (int r = 0; r <= SBD_MAX_ROUTES; r++)
        for (int meth = 0; meth < SBD_NMETHODS; meth++)
            for (int s = 0; s < SBD_NSTATUS; s++) {
                unsigned long long v = m->requests[r][meth][s];
                if (!v) continue;
                char code[8] = "other";
                if (s < SBD_NSTATUS - 1) snprintf(code, sizeof code, "%d", statuses[s]);
                evbuffer_add_printf(o, "%s{route=\"%s\",method=\"%s\",code=\"%s\"} %llu\n", name,
                                    label(sbd_api_route_name(r < SBD_MAX_ROUTES ? r : -1)),
                                    method_names[meth], code, v);
            }
    name = "switchboard_http_request_duration_seconds";
    family(o, name, "histogram",
           "From a request's last byte to its response's release after the sync.");
    unsigned long long acc = 0;
    for (int b = 0; b < SBD_LAT_BUCKETS; b++) {
        acc += m->lat_counts[b];
        evbuffer_add_printf(o, "%s_bucket{le=\"%g\"} %llu\n", name, lat_le[b], acc);
    }
    acc += m->lat_counts[SBD_LAT_BUCKETS];
    evbuffer_add_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9f\n%s_count %llu\n", name, acc,
                        name, m->lat_sum, name, (unsigned long long)m->lat_count);

    metric_u(o, "switchboard_http_connections", "gauge", "Open HTTP connections.", d->nconns);
    metric_u(o, "switchboard_http_connections_accepted_total", "counter",
             "HTTP connections accepted.", m->conns_accepted);
    metric_u(o, "switchboard_http_connections_rejected_total", "counter",
             "Connections refused with 503 past max_connections or past "
             "max_connections_per_peer (those also in "
             "switchboard_http_connections_rejected_per_peer_total).",
             m->conns_rejected);
    metric_u(o, "switchboard_http_connections_rejected_per_peer_total", "counter",
             "Connections refused with 503 past max_connections_per_peer (one address's).",
             m->conns_rejected_per_peer);
    evbuffer_add_printf(o,
                        "# HELP switchboard_auth_failures_total Requests whose credentials were "
                        "refused (401): an API key, or the admin token, given and wrong.\n"
                        "# TYPE switchboard_auth_failures_total counter\n"
                        "switchboard_auth_failures_total{kind=\"api_key\"} %llu\n"
                        "switchboard_auth_failures_total{kind=\"admin_token\"} %llu\n",
                        (unsigned long long)m->auth_failures_key,
                        (unsigned long long)m->auth_failures_admin);
    metric_u(o, "switchboard_stream_subscribers", "gauge", "Open /v1/events streams.", d->nsubs);
    metric_u(o, "switchboard_stream_refused_total", "counter",
             "Streams refused with 429: their account had stream_max_per_account open.",
             m->stream_refused);
    metric_u(o, "switchboard_stream_backlog_actions", "gauge",
             "Actions held for accounts' next subscribers (no subscriber was sent them yet).",
             d->backlog_n);
    metric_u(o, "switchboard_stream_history_bytes", "gauge",
             "Bytes of the accounts' stream histories (what a subscriber that falls behind or "
             "resumes is fed from).",
             d->backlog_bytes);
    metric_u(o, "switchboard_stream_actions_total", "counter",
             "Actions published to event streams.", m->stream_events);
    metric_u(o, "switchboard_stream_dropped_total", "counter",
             "Stream subscribers dropped: fallen behind further than the account's history "
             "reaches (slow consumer), or accepting nothing of what waits for idle_timeout "
             "(stalled).",
             m->stream_dropped);
    metric_u(o, "switchboard_stream_backlog_dropped_total", "counter",
             "Actions dropped from a full backlog of an account without a subscriber.",
             m->stream_backlog_dropped);
    metric_u(o, "switchboard_batch_errors_total", "counter",
             "Turns of the loop whose events could not be stored (answered with 500).",
             m->batch_errors);
    metric_u(o, "switchboard_stream_resumes_total", "counter", "Streams opened with Last-Event-ID.",
             m->stream_resumes);
    metric_u(o, "switchboard_stream_resyncs_total", "counter",
             "Resumed streams told to resync: actions after their Last-Event-ID were no longer "
             "held.",
             m->stream_resyncs);
    metric_u(o, "switchboard_batch_commits_total", "counter",
             "Commits of a turn's events (each syncs the pages it wrote; the loop waits).",
             m->batch_commits);
    family(o, "switchboard_batch_commit_seconds_total", "counter",
           "The loop's time in those commits.");
    evbuffer_add_printf(o, "switchboard_batch_commit_seconds_total %.9f\n",
                        m->batch_commit_seconds);
    metric_u(o, "switchboard_batches_total", "counter", "Request batches released.", m->batches);
    metric_u(o, "switchboard_syncs_total", "counter",
             "sb_sync() calls for group commit (the page pointing at what commits wrote).",
             m->syncs);
    metric_u(o, "switchboard_sync_errors_total", "counter", "sb_sync() calls that failed.",
             m->sync_errors);
    family(o, "switchboard_sync_seconds_total", "counter", "Time spent in sb_sync().");
    evbuffer_add_printf(o, "switchboard_sync_seconds_total %.9f\n", m->sync_seconds);
    metric_u(o, "switchboard_ticks_total", "counter", "sb_tick() calls.", m->ticks);
    metric_u(o, "switchboard_tick_errors_total", "counter", "sb_tick() calls that failed.",
             m->tick_errors);
    metric_u(o, "switchboard_tick_actions_total", "counter", "Actions from timers.",
             m->tick_actions);
    metric_u(o, "switchboard_tick_cuts_total", "counter",
             "Ticks ended at their 10 ms share of the loop with timers still due.", m->tick_cuts);
    metric_u(o, "switchboard_reloads_total", "counter",
             "SIGHUP reloads of policy_dir that succeeded (reload ok in the log).", m->reloads_ok);
    metric_u(o, "switchboard_reload_failures_total", "counter",
             "SIGHUP reloads of policy_dir that failed, the policies left unchanged (reload "
             "failed in the log), also for want of a policy directory.",
             m->reloads_failed);
    metric_u(o, "switchboard_sweeps_total", "counter", "Retention sweep turns (sb_sweep).",
             m->sweeps);
    metric_u(o, "switchboard_sweep_errors_total", "counter", "Retention sweep turns that failed.",
             m->sweep_errors);
    metric_u(o, "switchboard_swept_records_total", "counter",
             "Records reviewed or purged by retention sweeps.", m->swept);
}
