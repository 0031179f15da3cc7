/* src/main.c -- the `journeyd` command: a table of subcommands.
 *
 * `serve` wires the parts together in the order data flows (DESIGN.md):
 * config -> engine (recover: snapshot + log) -> API routes -> HTTP server.
 * Shutdown runs it backwards: stop accepting, stop handlers reaching the
 * engine, drain and fsync and snapshot (eng_close), then stop HTTP.
 */
#include "journeyd/api.h"
#include "journeyd/config.h"
#include "journeyd/deliver.h"
#include "journeyd/engine.h"
#include "journeyd/expr_cli.h"
#include "journeyd/journey.h"
#include "journeyd/journey_cli.h"
#include "journeyd/http.h"
#include "journeyd/limits.h"
#include "journeyd/runtime.h"
#include "journeyd/template.h"

#include <dirent.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <json-c/json.h>

#define JOURNEYD_VERSION "0.1.0"

static int cmd_serve(int argc, char **argv);
static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const struct jd_cmd {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} cmds[] = {
    { "serve",   cmd_serve,   "run the server: Segment-compatible ingest, durable log, profiles" },
    { "validate", jrn_cli_validate, "check journey files; every error as file:line:col with its node" },
    { "eval",    expr_cli_eval, "evaluate a CEL expression against variables from a JSON file" },
    { "render",  tpl_cli_render, "render a Liquid message template with variables from a JSON file" },
    { "simulate", jrn_cli_simulate, "replay recorded events through a journey on a virtual clock (a backtest)" },
    { "version", cmd_version, "print the version" },
    { "help",    cmd_help,    "show this help, or a command's: journeyd help serve" },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: journeyd COMMAND [OPTIONS]\n\n"
               "journeyd is a real-time customer journey orchestration engine.\n\ncommands:\n");
    for (size_t i = 0; i < JD_ARRAY_LEN(cmds); i++) fprintf(f, "  %-9s %s\n", cmds[i].name, cmds[i].help);
    fprintf(f, "\n`journeyd COMMAND --help` explains a command's options.\n");
}

static const char serve_help[] =
    "usage: journeyd serve [OPTIONS]\n\n"
    "Runs journeyd in the foreground until SIGTERM or SIGINT, which drain, fsync\n"
    "and snapshot before exiting. Flags override the config file.\n\n"
    "options:\n"
    "  --config FILE        YAML config file (settings below)\n"
    "  --data DIR           data folder: log and snapshots (default: data)\n"
    "  --listen HOST:PORT   address to serve HTTP on (default: 127.0.0.1:8080; port 0: any free)\n"
    "  --write-key KEY      a Segment write key to accept; repeatable; replaces the config's list\n"
    "  --admin-token TOKEN  a token for the admin API; repeatable; replaces the config's list\n"
    "  --shards N           shard threads (default: one per core)\n"
    "  --log-level LEVEL    debug, info, warn or error (default: info)\n"
    "  --set KEY=VALUE      any setting below, e.g. --set dedupe.window=1h\n"
    "  -h, --help           this help\n\n"
    "With no write key and no admin token configured, journeyd creates one of each\n"
    "on first start, keeps them in DATA/credentials (mode 0600) and prints them.\n\n"
    "settings (config file keys; nested keys may be written as YAML maps):\n";

static int cmd_help(int argc, char **argv)
{
    if (argc > 1) {
        for (size_t i = 0; i < JD_ARRAY_LEN(cmds); i++)
            if (strcmp(argv[1], cmds[i].name) == 0) {
                char *args[] = { argv[1], "--help", NULL };
                return cmds[i].run(2, args);
            }
        fprintf(stderr, "journeyd: unknown command '%s'\n", argv[1]);
        return 2;
    }
    usage(stdout);
    return 0;
}

static int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("journeyd %s\n", JOURNEYD_VERSION);
    return 0;
}

/* The first start without configured credentials creates them (an edge: the
 * random bytes are drawn once and stored). */
static void hex_of(const unsigned char *r, char out[33])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) { out[2 * i] = hex[r[i] >> 4]; out[2 * i + 1] = hex[r[i] & 15]; }
    out[32] = '\0';
}

/* The credentials file: "write_key K\nadmin_token T\nlinks_secret S\n". A
 * file from before links.secret gets its third line added at the next start. */
static int ensure_credentials(jd_config *c, jd_err *err)
{
    if (c->n_write_keys && c->n_admin_tokens && c->links_secret) return JD_OK;
    char *path = jd_strfmt("%s/credentials", c->data_dir), *text = NULL;
    size_t n;
    int rc = jd_read_file(path, 4096, &text, &n, err);
    char wk[65] = "", at[65] = "", ls[65] = "";
    unsigned char r[48];
    if (rc == JD_OK) {
        if (sscanf(text, "write_key %64s\nadmin_token %64s", wk, at) != 2) {
            rc = jd_err_set(err, JD_ECORRUPT, path, "unreadable credentials file");
            goto out;
        }
        const char *l = strstr(text, "\nlinks_secret ");
        if (l) sscanf(l, "\nlinks_secret %64s", ls);
    } else if (rc == JD_ENOTFOUND) {
        jd_random_bytes(r, 32);
        hex_of(r, wk);
        hex_of(r + 16, at);
    } else {
        goto out;
    }
    if (!ls[0]) {   /* the links secret: 32 random bytes (hex), drawn once */
        jd_random_bytes(r, 32);
        hex_of(r, ls);
        hex_of(r + 16, ls + 32);
        char line[300];
        int len = snprintf(line, sizeof line, "write_key %s\nadmin_token %s\nlinks_secret %s\n", wk, at, ls);
        if ((rc = jd_mkdir_p(c->data_dir, err)) != JD_OK) goto out;
        if ((rc = jd_write_file_atomic(path, line, (size_t)len, err)) != JD_OK) goto out;
        chmod(path, 0600);
        jd_info("%s %s", text ? "added links_secret to" : "created credentials in", path);
    }
    if (!c->n_write_keys) jd_config_set(c, "write_keys", wk, path, err);
    if (!c->n_admin_tokens) jd_config_set(c, "admin_tokens", at, path, err);
    if (!c->links_secret) jd_config_set(c, "links.secret", ls, path, err);
    rc = JD_OK;
out:
    free(text);
    free(path);
    return rc;
}

static void fail_line(const char *what, const jd_err *err);

/* A journey document from journeys.dir: published at start when it changed. */
typedef struct jfile { char *path, *text, *id; size_t n; } jfile;

static void jfiles_free(jfile *v, size_t n)
{
    for (size_t i = 0; i < n; i++) { free(v[i].path); free(v[i].text); free(v[i].id); }
    free(v);
}

/* Parses one document of a folder (a journey or a segment) for its id and
 * its diagnostics: JD_OK with *id owned. */
typedef int (*doc_check_fn)(const char *path, const char *text, size_t n, char **id, jrn_diags *d);

/* serve checks journeys.dir against the configured channels and templates
 * (eng_env); set before load_docs, NULL elsewhere. */
static const jrn_env *serve_env;

static int check_journey(const char *path, const char *text, size_t n, char **id, jrn_diags *d)
{
    jrn_doc *doc = NULL;
    if (jrn_doc_parse(path, text, n, serve_env ? serve_env : jrn_env_default(), &doc, d) != JD_OK) return JD_EINVAL;
    *id = jd_xstrdup(doc->id);
    jrn_doc_destroy(doc);
    return JD_OK;
}

static int check_segment(const char *path, const char *text, size_t n, char **id, jrn_diags *d)
{
    jrn_segment *s = NULL;
    if (jrn_segment_parse(path, text, n, &s, d) != JD_OK) return JD_EINVAL;
    *id = jd_xstrdup(s->id);
    jrn_segment_destroy(s);
    return JD_OK;
}

/* Loads and validates every *.yaml / *.yml / *.json document in dir. A bad
 * document stops start-up with every diagnostic. Returns owned files
 * (jfiles_free); a missing folder is none. */
static int load_docs(const char *dir, doc_check_fn check, const char *what, jfile **out, size_t *n)
{
    int rc = JD_OK;
    *out = NULL;
    *n = 0;
    struct dirent **names = NULL;
    int count = scandir(dir, &names, NULL, alphasort);
    if (count < 0) {
        jd_info("%s: no folder %s, none loaded", what, dir);
        return JD_OK;
    }
    jrn_diags diags = { 0 };
    for (int i = 0; i < count; i++) {
        const char *nm = names[i]->d_name;
        size_t len = strlen(nm);
        bool doc = (len > 5 && strcmp(nm + len - 5, ".yaml") == 0) || (len > 4 && strcmp(nm + len - 4, ".yml") == 0) ||
                   (len > 5 && strcmp(nm + len - 5, ".json") == 0);
        if (doc) {
            char *path = jd_strfmt("%s/%s", dir, nm), *text = NULL, *id = NULL;
            size_t tn;
            jd_err err;
            if (jd_read_file(path, 1 << 20, &text, &tn, &err) != JD_OK) {
                fail_line("", &err);
                rc = JD_EINVAL;
            } else if (check(path, text, tn, &id, &diags) == JD_OK) {
                *out = jd_xrealloc(*out, (*n + 1) * sizeof **out);
                (*out)[(*n)++] = (jfile){ path, text, id, tn };
                path = text = NULL;
            } else {
                rc = JD_EINVAL;
            }
            free(text);
            free(path);
        }
        free(names[i]);
    }
    free(names);
    if (diags.n) {
        jd_buf b;
        jd_buf_init(&b, SIZE_MAX);
        jrn_diags_format(&diags, &b);
        fprintf(stderr, "%s", b.data);
        jd_buf_release(&b);
    }
    jrn_diags_release(&diags);
    return rc;
}

/* Waiting for an engine answer on the main thread (start-up only). */
typedef struct sync_reply {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    bool            done;
    int             rc;
    jd_err          err;
    char           *json;
} sync_reply;

static void on_sync_reply(void *ctx, int rc, const jd_err *err, const char *json, size_t n)
{
    sync_reply *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->rc = rc;
    if (err) s->err = *err;
    s->json = json ? jd_xstrndup(json, n) : NULL;
    s->done = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Publishes each file whose text differs from its journey's newest version,
 * or defines each segment whose text changed (op "segment"): people edit
 * them in git; a restart deploys them. */
static int publish_docs(eng *e, const char *op, const jfile *files, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sync_reply s = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, { 0 }, NULL };
        eng_journey_req req = { op, files[i].id, files[i].text, files[i].n, files[i].path, true, false, false };
        eng_journey_change(e, &req, on_sync_reply, &s);
        pthread_mutex_lock(&s.mu);
        while (!s.done) pthread_cond_wait(&s.cv, &s.mu);
        pthread_mutex_unlock(&s.mu);
        if (s.rc != JD_OK) {
            fprintf(stderr, "journeyd: %s: cannot %s '%s': %s\n", files[i].path, op, files[i].id, s.err.msg);
            free(s.json);
            return JD_EINVAL;
        }
        json_object *o = s.json ? json_tokener_parse(s.json) : NULL, *v = NULL;
        if (o) json_object_object_get_ex(o, "version", &v);
        jd_info("%s: %s (%s) is at version %d", strcmp(op, "segment") == 0 ? "segments" : "journeys", files[i].id,
                files[i].path, v ? json_object_get_int(v) : 0);
        json_object_put(o);
        free(s.json);
    }
    return JD_OK;
}

static void fail_line(const char *what, const jd_err *err)
{
    fprintf(stderr, "journeyd: %s%s%s%s\n", what, err->where[0] ? err->where : "", err->where[0] ? ": " : "", err->msg);
}

static int parse_serve_args(int argc, char **argv, jd_config *c)
{
    enum { O_CONFIG = 1, O_DATA, O_LISTEN, O_WKEY, O_ATOKEN, O_SHARDS, O_LEVEL, O_SET, O_HELP };
    static const struct option opts[] = {
        { "config", required_argument, 0, O_CONFIG }, { "data", required_argument, 0, O_DATA },
        { "listen", required_argument, 0, O_LISTEN }, { "write-key", required_argument, 0, O_WKEY },
        { "admin-token", required_argument, 0, O_ATOKEN }, { "shards", required_argument, 0, O_SHARDS },
        { "log-level", required_argument, 0, O_LEVEL }, { "set", required_argument, 0, O_SET },
        { "help", no_argument, 0, O_HELP }, { 0, 0, 0, 0 },
    };
    /* Flags map to settings; the row says which. */
    static const struct { int opt; const char *key; const char *flag; } flag_keys[] = {
        { O_DATA, "data", "--data" }, { O_LISTEN, "listen", "--listen" },
        { O_WKEY, "write_keys", "--write-key" }, { O_ATOKEN, "admin_tokens", "--admin-token" },
        { O_SHARDS, "engine.shards", "--shards" }, { O_LEVEL, "log_level", "--log-level" },
    };
    jd_err err;
    /* First pass: only --config and --help, so the file is loaded before flags override it. */
    opterr = 0;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == O_HELP || ch == 'h') {
            jd_buf b;
            jd_buf_init(&b, 1 << 16);
            jd_config_describe(&b);
            printf("%s%s", serve_help, b.data);
            jd_buf_release(&b);
            return 1;
        }
        if (ch == '?') {
            fprintf(stderr, "journeyd: unknown or incomplete option '%s' (see journeyd serve --help)\n", argv[optind - 1]);
            return 2;
        }
        if (ch == O_CONFIG && jd_config_load_file(c, optarg, &err) != JD_OK) {
            fail_line("", &err);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "journeyd: unexpected argument '%s' (see journeyd serve --help)\n", argv[optind]);
        return 2;
    }
    bool cleared_wk = false, cleared_at = false;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        const char *key = NULL, *flag = NULL, *value = optarg;
        char setkey[128];
        if (ch == O_SET) {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || (size_t)(eq - optarg) >= sizeof setkey) {
                fprintf(stderr, "journeyd: --set: expected KEY=VALUE, got '%s'\n", optarg);
                return 2;
            }
            memcpy(setkey, optarg, (size_t)(eq - optarg));
            setkey[eq - optarg] = '\0';
            key = setkey;
            flag = "--set";
            value = eq + 1;
        }
        for (size_t i = 0; i < JD_ARRAY_LEN(flag_keys); i++)
            if (flag_keys[i].opt == ch) { key = flag_keys[i].key; flag = flag_keys[i].flag; }
        if (!key) continue;
        if (ch == O_WKEY && !cleared_wk) {   /* flags replace the file's list */
            for (uint32_t i = 0; i < c->n_write_keys; i++) free(c->write_keys[i]);
            c->n_write_keys = 0;
            cleared_wk = true;
        }
        if (ch == O_ATOKEN && !cleared_at) {
            for (uint32_t i = 0; i < c->n_admin_tokens; i++) free(c->admin_tokens[i]);
            c->n_admin_tokens = 0;
            cleared_at = true;
        }
        if (jd_config_set(c, key, value, flag, &err) != JD_OK) {
            fail_line("", &err);
            return 2;
        }
    }
    if (jd_config_check(c, &err) != JD_OK) {
        fail_line("", &err);
        return 2;
    }
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    int rc = 1;
    jd_config c;
    jd_config_init(&c);
    eng *e = NULL;
    api_ctx *api = NULL;
    jfile *journeys = NULL, *segments = NULL;
    size_t njourneys = 0, nsegments = 0;
    http_server *srv = NULL;
    dlv_templates *tpls = NULL;
    dlv *d = NULL;
    dlv_links *links = NULL;
    eng_env jenv = { 0 };
    jd_err err;
    jd_err_clear(&err);

    int prc = parse_serve_args(argc, argv, &c);
    if (prc != 0) { rc = prc == 1 ? 0 : 2; goto out; }
    jd_log_set_level(c.log_level);

    /* Signals: SIGTERM/SIGINT are taken by sigwait in this thread only (every
     * thread created below inherits the mask). A write past a file-size limit
     * must be an error the log reports, not a death. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);

    if (ensure_credentials(&c, &err) != JD_OK) { fail_line("", &err); rc = 2; goto out; }
    jd_info("journeyd %s starting: data %s, %u partitions, %u shard(s)%s%s", JOURNEYD_VERSION, c.data_dir,
            c.partitions, c.shards ? c.shards : (uint32_t)sysconf(_SC_NPROCESSORS_ONLN),
            c.config_path ? ", config " : "", c.config_path ? c.config_path : "");

    /* Journeys are checked before anything is opened: a bad document is a bad
     * configuration. They are published (when changed) once the engine is open. */
    if (load_docs(c.segments_dir, check_segment, "segments", &segments, &nsegments) != JD_OK) {
        fprintf(stderr, "journeyd: segments in %s have errors\n", c.segments_dir);
        rc = 2;
        goto out;
    }
    /* Message templates too: a send node's template that does not compile is
     * a bad configuration, found now rather than at the first send. */
    {
        jd_buf diags;
        jd_buf_init(&diags, 1 << 20);
        if (dlv_templates_load_all(c.templates_dir, &tpls, &diags, &err) != JD_OK) {
            fprintf(stderr, "%s", diags.len ? diags.data : "");
            if (!diags.len) fail_line("templates: ", &err);
            jd_buf_release(&diags);
            rc = 2;
            goto out;
        }
        jd_buf_release(&diags);
        jd_info("templates: %zu in %s", dlv_templates_count(tpls), c.templates_dir);
    }
    size_t nch = 0;
    const dlv_channel_cfg *chs = dlv_channels_list(c.channels, &nch);
    eng_env_init(&jenv, chs, nch, tpls);
    serve_env = &jenv.env;
    if (load_docs(c.journeys_dir, check_journey, "journeys", &journeys, &njourneys) != JD_OK) {
        fprintf(stderr, "journeyd: journeys in %s have errors (journeyd validate shows the same)\n", c.journeys_dir);
        rc = 2;
        goto out;
    }
    if (njourneys) {
        jd_buf names;
        jd_buf_init(&names, 4096);
        for (size_t i = 0; i < njourneys; i++) jd_buf_addf(&names, "%s%s", i ? ", " : "", journeys[i].id);
        jd_info("journeys: %zu valid in %s (%s)", njourneys, c.journeys_dir, names.data);
        jd_buf_release(&names);
    }

    /* Tracking links (docs/delivery.md "Feedback loop"): before the engine,
     * whose replay renders messages with them. */
    {
        bool v6 = strchr(c.listen_host, ':') != NULL;
        char *base = c.links_base_url ? jd_xstrdup(c.links_base_url)
                                      : jd_strfmt("http://%s%s%s:%u", v6 ? "[" : "", c.listen_host, v6 ? "]" : "", c.listen_port);
        int lrc = dlv_links_create(&links, c.links_secret, base, c.links_max_age_us, &err);
        free(base);
        if (lrc != JD_OK) { fail_line("", &err); rc = 2; goto out; }
    }
    eng_opts eo = {
        .data_dir = c.data_dir, .partitions = c.partitions, .shards = c.shards, .max_pending = c.max_pending,
        .snapshot_every = c.snapshot_every, .dedupe_window_us = c.dedupe_window_us,
        .dedupe_max_entries = c.dedupe_max_entries, .log = { .segment_bytes = c.segment_bytes },
        .tick_us = c.tick_us, .recent_intents = c.recent_intents, .max_backlog = c.max_backlog,
        .tasks_max_open = c.tasks_max_open,
    };
    prof_limits_default(&eo.prof);
    eo.prof.max_traits_bytes = c.max_traits_bytes;
    eo.prof.max_anonymous_ids = c.max_anonymous_ids;
    eo.prof.max_event_names = c.max_event_names;
    eo.prof.max_groups = c.max_groups;
    eo.prof.max_tags = c.max_tags;
    eo.prof.timeline = c.timeline;
    eo.prof.computed = c.computed;   /* borrowed: c outlives the engine */
    eo.prof.consent = &c.consent;    /* borrowed, likewise */
    eo.identity.max_user_ids = c.max_user_ids;
    eo.identity.max_anonymous_ids = c.max_anonymous_ids;
    eo.identity.max_per_identifier = c.max_per_identifier;
    eo.identity.declared = c.identifiers;   /* borrowed, like computed */
    eo.identity.ndeclared = c.n_identifiers;
    eo.templates = tpls;   /* borrowed: destroyed after the engine */
    eo.channels = dlv_channels_list(c.channels, &eo.nchannels);
    eo.guards = c.guards;
    eo.links = links;   /* borrowed: destroyed after the engine and the API */
    /* clock.travel: the engine and the ingest edge read one clock that
     * POST /v1/clock can move forward (static: it outlives both). */
    static jd_travel_clock travel;
    jd_travel_init(&travel);
    if (c.clock_travel) {
        eo.clock = &travel.clock;
        jd_warn("clock.travel is on: POST /v1/clock moves this server's time forward; never use it in production");
    }
    eng_recovery rec;
    if (eng_open(&e, &eo, &rec, &err) != JD_OK) { fail_line("cannot open the data folder: ", &err); goto out; }
    if (rec.log.truncated_bytes)
        jd_warn("recovery: torn log tail truncated (%llu bytes, %llu unfinished records): %s",
                (unsigned long long)rec.log.truncated_bytes, (unsigned long long)rec.log.dropped_records, rec.log.torn_at);
    jd_info("recovered: snapshot at lsn %llu, replayed %llu records, %llu profiles, in %.3f s",
            (unsigned long long)rec.snapshot_lsn, (unsigned long long)rec.replayed, (unsigned long long)rec.profiles,
            rec.seconds);
    /* Segments first: journeys may enter on them. */
    if (publish_docs(e, "segment", segments, nsegments) != JD_OK || publish_docs(e, "publish", journeys, njourneys) != JD_OK) {
        rc = 2;
        goto out;
    }

    /* Delivery last: the replay above rendered every send intent with no
     * result yet into the outboxes; attaching submits them (outbox.c). */
    if (eo.nchannels) {
        dlv_opts dop = { .channels = eo.channels, .nchannels = eo.nchannels, .wall = eo.clock };
        eng_dlv_callbacks(e, &dop);
        if (dlv_create(&d, &dop, &err) != JD_OK) { fail_line("delivery: ", &err); rc = 2; goto out; }
        eng_set_delivery(e, d);
        jd_info("delivery: %zu channel(s)", eo.nchannels);
    }

    api = api_create(&c, e);
    api_set_links(api, links);
    if (c.clock_travel) api_set_travel(api, &travel);
    size_t nroutes;
    const http_route *routes = api_routes(api, &nroutes);
    http_opts ho = {
        .host = c.listen_host, .port = c.listen_port, .threads = c.http_threads,
        .max_connections = c.max_connections, .connection_timeout_s = c.connection_timeout_s,
        .max_inflated = c.max_inflated_bytes,
    };
    if (http_server_create(&srv, &ho, routes, nroutes, api, &err) != JD_OK) {
        fail_line("cannot listen: ", &err);
        goto out;
    }
    bool v6 = strchr(c.listen_host, ':') != NULL;
    jd_info("write key: %s", c.write_keys[0]);
    jd_info("admin token: %s", c.admin_tokens[0]);
    jd_info("listening on http://%s%s%s:%u", v6 ? "[" : "", c.listen_host, v6 ? "]" : "", http_server_port(srv));

    int sig = 0;
    sigwait(&stop, &sig);
    jd_info("shutting down (%s): draining, fsync, snapshot", sig == SIGINT ? "SIGINT" : "SIGTERM");
    http_server_quiesce(srv);
    api_stop(api);
    if (d) {           /* results of sends in flight still reach the log; the rest is sent after the restart */
        eng_set_delivery(e, NULL);
        dlv_destroy(d, 2 * JD_SEC);
        d = NULL;
    }
    eng_close(e);      /* answers every deferred write, fsyncs, snapshots */
    e = NULL;
    http_server_destroy(srv);
    srv = NULL;
    jd_info("stopped");
    rc = 0;
out:
    if (api) api_stop(api);
    if (d && e) eng_set_delivery(e, NULL);
    dlv_destroy(d, 0);
    eng_close(e);
    serve_env = NULL;
    eng_env_release(&jenv);
    dlv_templates_destroy(tpls);
    http_server_destroy(srv);
    api_destroy(api);
    dlv_links_destroy(links);
    jfiles_free(journeys, njourneys);
    jfiles_free(segments, nsegments);
    jd_config_release(&c);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) return cmd_help(1, argv);
    if (strcmp(argv[1], "--version") == 0) return cmd_version(1, argv);
    for (size_t i = 0; i < JD_ARRAY_LEN(cmds); i++)
        if (strcmp(argv[1], cmds[i].name) == 0) return cmds[i].run(argc - 1, argv + 1);
    fprintf(stderr, "journeyd: unknown command '%s' (see journeyd --help)\n", argv[1]);
    return 2;
}
