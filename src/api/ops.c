/* src/api/ops.c -- GET /healthz and GET /metrics (no token: probes and
 * Prometheus scrapers run without one; neither shows customer data), and the
 * clock (admin token): GET /v1/clock, POST /v1/clock under clock.travel. */
#include "api_int.h"
#include "journeyd/analytics.h"

#include <json-c/json.h>
#include <stdio.h>

void api__healthz(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    eng_stats s;
    eng_get_stats(a->e, &s);
    jd_buf b;
    jd_buf_init(&b, 4096);
    /* 503 when writes cannot be stored, so a load balancer moves traffic away;
     * reads are still served meanwhile. */
    jd_buf_addf(&b, "{\"status\":\"%s\",\"log\":\"%s\",\"durable_lsn\":%llu,\"refused_writes\":%llu,"
                    "\"pending\":%llu,\"shards\":%u}",
                s.log_failed ? "degraded" : "ok", s.log_failed ? "failed" : "ok",
                (unsigned long long)s.durable_lsn, (unsigned long long)s.txns_refused_io,
                (unsigned long long)s.pending_txns, s.shards);
    http_reply(r, s.log_failed ? 503 : 200, "application/json", b.data, b.len);
    jd_buf_release(&b);
}

/* ---- the clock: GET shows it; POST moves it forward when clock.travel is on -- */

static void clock_reply(api_ctx *a, http_req *r, int status)
{
    char now[JD_TIME_TEXT];
    jd_time_format((int64_t)jd_clock_now(eng_clock(a->e)), now);
    jd_buf b;
    jd_buf_init(&b, 512);
    jd_buf_addf(&b, "{\"now\":\"%s\",\"travel\":%s,\"offset_ms\":%lld}", now, a->travel ? "true" : "false",
                (long long)(a->travel ? jd_travel_offset(a->travel) / 1000 : 0));
    http_reply(r, status, "application/json", b.data, b.len);
    jd_buf_release(&b);
}

void api__clock_get(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admitted(a, r)) return;
    clock_reply(a, r, 200);
}

/* {"advance":"3d"}: every edge reads the same clock (receivedAt, the
 * committer's ticks), so due waits and timed segment flips happen as if that
 * much time had passed. Forward only: the log's time never goes back. */
void api__clock_post(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    if (!api__admitted(a, r)) return;
    if (!a->travel) {
        api__refuse(a, r, R_INVALID, 409, "time travel is off: start journeyd with clock.travel: 1 (never in production)", "clock.travel");
        return;
    }
    size_t n;
    const char *body = http_req_body(r, &n);
    json_object *o = body ? json_tokener_parse(body) : NULL, *v;
    uint64_t by = 0;
    const char *s = o && json_object_object_get_ex(o, "advance", &v) && json_object_is_type(v, json_type_string)
                        ? json_object_get_string(v) : NULL;
    if (!s || jd_duration_parse(s, &by) != JD_OK || by == 0) {
        json_object_put(o);
        api__refuse(a, r, R_INVALID, 400, "expected {\"advance\": a positive duration such as \"3d\" or \"90m\"}", "advance");
        return;
    }
    json_object_put(o);
    jd_travel_advance(a->travel, by);
    if (api__enter(a)) {
        eng_wake(a->e);
        api__leave(a);
    }
    clock_reply(a, r, 200);
}

void api__metrics(http_req *r, void *ctx)
{
    api_ctx *a = ctx;
    eng_stats s;
    eng_get_stats(a->e, &s);
    jd_buf b;
    jd_buf_init(&b, 1 << 20);
    anl_prom_family(&b, "journeyd_events_accepted_total", "counter", "events made durable and applied");
    anl_prom_sample(&b, "journeyd_events_accepted_total", NULL, NULL, (double)s.events_accepted);
    anl_prom_family(&b, "journeyd_events_duplicate_total", "counter", "events dropped as a repeated messageId");
    anl_prom_sample(&b, "journeyd_events_duplicate_total", NULL, NULL, (double)s.events_duplicate);
    anl_prom_family(&b, "journeyd_events_refused_total", "counter", "ingest requests refused, by reason");
    for (int i = 0; i < R_COUNT; i++)
        anl_prom_sample(&b, "journeyd_events_refused_total", "reason", api__refused_names[i],
                        (double)atomic_load_explicit(&a->refused[i], memory_order_relaxed));
    anl_prom_family(&b, "journeyd_ingest_requests_total", "counter", "ingest requests acknowledged");
    anl_prom_sample(&b, "journeyd_ingest_requests_total", NULL, NULL,
                    (double)atomic_load_explicit(&a->requests_ok, memory_order_relaxed));
    anl_prom_family(&b, "journeyd_ingest_bytes_total", "counter", "request body bytes received by ingest routes");
    anl_prom_sample(&b, "journeyd_ingest_bytes_total", NULL, NULL,
                    (double)atomic_load_explicit(&a->bytes_in, memory_order_relaxed));
    anl_prom_family(&b, "journeyd_log_bytes", "gauge", "bytes in the log's segment files");
    anl_prom_sample(&b, "journeyd_log_bytes", NULL, NULL, (double)s.log_bytes);
    anl_prom_family(&b, "journeyd_log_durable_lsn", "gauge", "highest durable log sequence number");
    anl_prom_sample(&b, "journeyd_log_durable_lsn", NULL, NULL, (double)s.durable_lsn);
    anl_prom_family(&b, "journeyd_log_failed", "gauge", "1 after an fsync error: writes refused until restart");
    anl_prom_sample(&b, "journeyd_log_failed", NULL, NULL, s.log_failed ? 1 : 0);
    anl_prom_family(&b, "journeyd_log_refused_requests_total", "counter", "requests the log could not store");
    anl_prom_sample(&b, "journeyd_log_refused_requests_total", NULL, NULL, (double)s.txns_refused_io);
    const double *bounds;
    uint64_t cum[32], count;
    double sum;
    size_t nb = eng_fsync_histogram(a->e, &bounds, cum, 32, &count, &sum);
    anl_prom_histogram(&b, "journeyd_fsync_seconds", "time of each group commit's fsync", bounds, cum, nb, count, sum);
    anl_prom_family(&b, "journeyd_pending_requests", "gauge", "requests waiting for the log");
    anl_prom_sample(&b, "journeyd_pending_requests", NULL, NULL, (double)s.pending_txns);
    anl_prom_family(&b, "journeyd_shard_queue_depth", "gauge", "messages waiting for each shard thread");
    for (uint32_t i = 0; i < s.shards; i++) {
        char id[16];
        snprintf(id, sizeof id, "%u", i);
        anl_prom_sample(&b, "journeyd_shard_queue_depth", "shard", id, (double)eng_shard_queue_depth(a->e, i));
    }
    anl_prom_family(&b, "journeyd_dedupe_entries", "gauge", "messageIds remembered for deduplication");
    anl_prom_sample(&b, "journeyd_dedupe_entries", NULL, NULL, (double)s.dedupe_entries);
    anl_prom_family(&b, "journeyd_dedupe_evicted_early_total", "counter",
                    "messageIds forgotten before the window ended because dedupe.max_entries was reached");
    anl_prom_sample(&b, "journeyd_dedupe_evicted_early_total", NULL, NULL, (double)s.dedupe_evicted_early);
    anl_prom_family(&b, "journeyd_snapshots_total", "counter", "snapshots written");
    anl_prom_sample(&b, "journeyd_snapshots_total", NULL, NULL, (double)s.snapshots);
    anl_prom_family(&b, "journeyd_profiles_deleted_total", "counter", "profiles deleted (DELETE /v1/profiles/{id})");
    anl_prom_sample(&b, "journeyd_profiles_deleted_total", NULL, NULL, (double)s.deleted);
    anl_prom_family(&b, "journeyd_events_suppressed_total", "counter",
                    "events not applied because their person was deleted (until an identify brings them back)");
    anl_prom_sample(&b, "journeyd_events_suppressed_total", NULL, NULL, (double)s.suppressed);
    anl_prom_family(&b, "journeyd_identity_merges_total", "counter",
                    "profiles merged into another by identity resolution (identify, alias, a shared identifier)");
    anl_prom_sample(&b, "journeyd_identity_merges_total", NULL, NULL, (double)s.merges);
    anl_prom_family(&b, "journeyd_identity_merges_refused_total", "counter",
                    "merges and identifiers refused by identity.max_user_ids, profiles.max_anonymous_ids or identity.max_per_identifier");
    anl_prom_sample(&b, "journeyd_identity_merges_refused_total", NULL, NULL, (double)s.merges_refused);
    anl_prom_family(&b, "journeyd_deliveries_total", "counter",
                    "send intents by outcome: sent, failed, dead (results recorded), skipped (consent, no channel or template, render error)");
    anl_prom_sample(&b, "journeyd_deliveries_total", "outcome", "sent", (double)s.dlv_sent);
    anl_prom_sample(&b, "journeyd_deliveries_total", "outcome", "failed", (double)s.dlv_failed);
    anl_prom_sample(&b, "journeyd_deliveries_total", "outcome", "dead", (double)s.dlv_dead);
    anl_prom_sample(&b, "journeyd_deliveries_total", "outcome", "skipped", (double)s.dlv_skipped);
    anl_prom_family(&b, "journeyd_identity_links", "gauge", "identifiers the identity directory holds (at the last snapshot)");
    anl_prom_sample(&b, "journeyd_identity_links", NULL, NULL, (double)s.identity_links);
    anl_prom_family(&b, "journeyd_backlog_waits_total", "counter",
                    "times requests were held because a shard was engine.max_backlog records behind");
    anl_prom_sample(&b, "journeyd_backlog_waits_total", NULL, NULL, (double)s.backlog_waits);
    anl_prom_family(&b, "journeyd_clock_records_total", "counter", "clock records written to move journey waits");
    anl_prom_sample(&b, "journeyd_clock_records_total", NULL, NULL, (double)s.ticks);
    anl_prom_family(&b, "journeyd_journey_instances", "gauge", "people in a journey now, all journeys");
    anl_prom_sample(&b, "journeyd_journey_instances", NULL, NULL, (double)s.instances);
    anl_prom_family(&b, "journeyd_journey_waits", "gauge", "journey waits armed in the timer wheels");
    anl_prom_sample(&b, "journeyd_journey_waits", NULL, NULL, (double)s.timers);
    anl_prom_family(&b, "journeyd_intents_total", "counter", "send and task intents produced by journeys");
    anl_prom_sample(&b, "journeyd_intents_total", NULL, NULL, (double)s.intents);
    anl_prom_family(&b, "journeyd_tasks_dropped_total", "counter", "task intents dropped: tasks.max_open open tasks in their partition");
    anl_prom_sample(&b, "journeyd_tasks_dropped_total", NULL, NULL, (double)s.tasks_dropped);
    http_reply(r, 200, "text/plain; version=0.0.4", b.data, b.len);
    jd_buf_release(&b);
}
