/* hvgate serve, status, replay: the delivery daemon and its operator
 * commands. The daemon's top level (this file) is the only place with
 * process-wide state: the stop flag set by SIGTERM/SIGINT. */
#include "hvg_cli.h"

#include "fhir_check.h"
#include "hvg_config.h"
#include "hvg_cred.h"
#include "hvg_deliver.h"
#include "hvg_export.h"
#include "hvg_fhir_http.h"
#include "hvg_fsrv.h"
#include "hvg_httpd.h"
#include "hvg_ingest.h"
#include "hvg_metrics.h"
#include "hvg_poll.h"
#include "hvg_webhook.h"
#include "store.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t serve_stop; /* set by SIGTERM / SIGINT */

/* libevent's own warnings, as JSON log lines like everything the daemon
 * says (they name sockets and errors, never request contents). */
static void serve__evlog(int severity, const char *msg) {
  hvg_buf b;
  hvg_buf_init(&b, 4096);
  hvg_buf_printf(&b, "{\"level\":\"%s\",\"event\":\"libevent\",\"detail\":",
                 severity >= EVENT_LOG_ERR    ? "error"
                 : severity >= EVENT_LOG_WARN ? "warn"
                                              : "debug");
  if (!hvg_buf_add_json_str(&b, msg ? msg : "") && !hvg_buf_adds(&b, "}\n"))
    fputs(b.data, stderr);
  hvg_buf_free(&b);
}

static void serve__on_signal(int sig) {
  (void)sig;
  serve_stop = 1;
}

typedef struct serve_worker {
  pthread_t th;
  const hvg_partner *p;
  const char *store_path;
  store_opts so;
  int started;
  int failed;
  hvg_deliverer d;
  atomic_int *stop; /* drain done */
  atomic_int idle;  /* the last round found nothing to do */
} serve_worker;

/* Sleeps ms, waking early when asked to stop. */
static void serve__nap(int ms, const atomic_int *stop) {
  while (ms > 0 && !serve_stop && !atomic_load(stop)) {
    int step = ms < 50 ? ms : 50;
    struct timespec ts = {0, (long)step * 1000000L};
    nanosleep(&ts, NULL);
    ms -= step;
  }
}

static void *serve__worker(void *arg) {
  serve_worker *w = arg;
  while (!serve_stop && !atomic_load(w->stop)) {
    int idle = 0;
    hvg_err err;
    hvg_err_clear(&err);
    int rc = hvg_deliver_round(&w->d, store_now_ms(), &idle, &err);
    atomic_store(&w->idle, rc == 0 && idle > 0);
    if (rc < 0) { /* the store: log it, back off, go on */
      fprintf(stderr,
              "{\"level\":\"error\",\"event\":\"store_error\",\"partner\":"
              "\"%s\",\"detail\":\"%s\"}\n",
              w->p->id, hvg_strerror(rc));
      idle = 1000;
    }
    serve__nap(idle, w->stop);
  }
  return NULL;
}

/* A partner's status-return poller (hvg_poll) on a thread of its own. */
typedef struct serve_poller {
  pthread_t th;
  int started;
  hvg_poller pl;
  atomic_int *stop;
  atomic_int idle;
} serve_poller;

static void *serve__poller(void *arg) {
  serve_poller *w = arg;
  while (!serve_stop && !atomic_load(w->stop)) {
    int idle = 0;
    hvg_err err;
    hvg_err_clear(&err);
    int rc = hvg_poll_round(&w->pl, store_now_ms(), &idle, &err);
    atomic_store(&w->idle, rc == 0);
    if (rc < 0) {
      fprintf(stderr,
              "{\"level\":\"error\",\"event\":\"store_error\",\"partner\":"
              "\"%s\",\"detail\":\"%s\"}\n",
              w->pl.p->id, hvg_strerror(rc));
      idle = 1000;
    }
    serve__nap(idle, w->stop);
  }
  return NULL;
}

/* A program's webhook notifier (hvg_webhook) on a thread of its own. */
typedef struct serve_hook {
  pthread_t th;
  int started;
  hvg_webhook wh;
  atomic_int *stop;
} serve_hook;

static void *serve__hook(void *arg) {
  serve_hook *w = arg;
  while (!serve_stop && !atomic_load(w->stop)) {
    int idle = 0;
    hvg_err err;
    hvg_err_clear(&err);
    if (hvg_webhook_round(&w->wh, store_now_ms(), &idle, &err) < 0) {
      fprintf(stderr,
              "{\"level\":\"error\",\"event\":\"store_error\",\"program\":"
              "\"%s\",\"detail\":\"%s\"}\n",
              w->wh.prog->id, err.msg);
      idle = 1000;
    }
    serve__nap(idle, w->stop);
  }
  return NULL;
}

/* ---- the HTTP side: intake, health, metrics --------------------------- */

typedef struct serve_http {
  const hvg_config *cfg;
  store *st; /* the loop thread's own handle */
  hvg_metrics *m;
  hvg_metric *pending, *in_flight, *dead, *oldest, *intake, *requests,
      *inbox;
  hvg_fhir_http *fhir;
} serve_http;

/* Operations endpoints need an ops token: 0 when it is there, else the
 * 401 answer is set. */
static int http__ops_auth(serve_http *h, const hvg_httpd_req *req,
                          hvg_httpd_resp *resp, int *rc) {
  if (hvg_cred_ops(h->cfg, req))
    return 0;
  *rc = hvg_httpd_resp_error(resp, 401, "an operations token is needed "
                                       "(ops.token_sha256)");
  if (!*rc)
    *rc = hvg_httpd_resp_header(resp, "WWW-Authenticate", "Bearer");
  return -1;
}

/* The end of a turn of the loop: what its requests changed becomes
 * durable before any of them is answered (group commit). */
static int http__on_batch(void *ctx) {
  serve_http *h = ctx;
  return hvg_fhir_http_flush(h->fhir);
}

/* Access log and request counts: method, route pattern and status only
 * (paths and queries may carry ids of families; bodies carry more). */
static void http__on_request(void *ctx, const hvg_httpd_req *req, int status,
                             double seconds) {
  serve_http *h = ctx;
  char st[8];
  snprintf(st, sizeof st, "%d", status);
  const char *route = req->route ? req->route : "(none)";
  const char *lv[] = {route, st};
  hvg_metric_add(h->requests, lv, 1);
  hvg_buf b;
  hvg_buf_init(&b, 1024);
  hvg_buf_adds(&b, "{\"level\":\"info\",\"event\":\"http\",\"route\":");
  hvg_buf_add_json_str(&b, route);
  if (!hvg_buf_printf(&b, ",\"method\":\"%.10s\",\"status\":%d,\"ms\":%.2f}\n",
                      req->method, status, seconds * 1000))
    fputs(b.data, stderr);
  hvg_buf_free(&b);
}

static int http__healthz(void *ctx, const hvg_httpd_req *req,
                         hvg_httpd_resp *resp) {
  (void)ctx;
  (void)req;
  return hvg_httpd_resp_send(resp, 200, "text/plain", "ok\n", 3);
}

static int http__readyz(void *ctx, const hvg_httpd_req *req,
                        hvg_httpd_resp *resp) {
  serve_http *h = ctx;
  int v, rc;
  if (http__ops_auth(h, req, resp, &rc))
    return rc;
  hvg_err err;
  if (store_schema_version(h->st, &v, &err))
    return hvg_httpd_resp_error(resp, 503, "the store is not available");
  return hvg_httpd_resp_send(resp, 200, "text/plain", "ready\n", 6);
}

static int http__metrics(void *ctx, const hvg_httpd_req *req,
                         hvg_httpd_resp *resp) {
  serve_http *h = ctx;
  int rc;
  if (http__ops_auth(h, req, resp, &rc))
    return rc;
  store_partner_stats s[256];
  size_t n = 0;
  hvg_err err;
  if (!store_stats(h->st, store_now_ms(), s, 256, &n, NULL, &err))
    for (size_t i = 0; i < n; i++) {
      const char *lv[] = {s[i].partner};
      hvg_metric_set(h->pending, lv, (double)s[i].pending);
      hvg_metric_set(h->in_flight, lv, (double)s[i].in_flight);
      hvg_metric_set(h->dead, lv, (double)s[i].dead);
      hvg_metric_set(h->oldest, lv, (double)s[i].oldest_pending_age_ms / 1000);
    }
  for (size_t i = 0; i < h->cfg->n_partners; i++) {
    int64_t waiting = 0;
    const char *lv[] = {h->cfg->partners[i].id};
    if (!store_inbox_count(h->st, h->cfg->partners[i].id, &waiting, &err))
      hvg_metric_set(h->inbox, lv, (double)waiting);
  }
  hvg_buf b;
  hvg_buf_init(&b, (size_t)16 << 20);
  rc = hvg_metrics_render(h->m, &b);
  if (!rc)
    rc = hvg_httpd_resp_header(resp, "Content-Type", HVG_METRICS_CONTENT_TYPE);
  if (!rc)
    rc = hvg_httpd_resp_body_buf(resp, &b);
  hvg_buf_free(&b);
  return rc;
}


/* The program's credential for /hv/{program}/...: the program, or NULL
 * with the 401/403/404 answer set in *rc. */
static const hvg_program *http__program(serve_http *h,
                                        const hvg_httpd_req *req,
                                        hvg_httpd_resp *resp, int *rc) {
  const hvg_program *prog =
      hvg_config_program(h->cfg, hvg_httpd_path_param(req, "program"));
  if (!prog) {
    *rc = hvg_httpd_resp_error(resp, 404, "no such program");
    return NULL;
  }
  if (!prog->intake_token_sha256) {
    *rc = hvg_httpd_resp_error(resp, 403, "the HV API is not enabled for "
                                          "this program (no "
                                          "intake_token_sha256)");
    return NULL;
  }
  if (!hvg_cred_program(prog, req)) {
    *rc = hvg_httpd_resp_error(resp, 401, "a valid bearer token is needed");
    if (!*rc)
      *rc = hvg_httpd_resp_header(resp, "WWW-Authenticate", "Bearer");
    return NULL;
  }
  return prog;
}

/* POST /hv/{program}/records?source=NAME: the body is an export in a format
 * the program's mapping reads. 202 once every accepted record is durable,
 * with the same per-record report as `hvgate ingest`. */
static int http__intake(void *ctx, const hvg_httpd_req *req,
                        hvg_httpd_resp *resp) {
  serve_http *h = ctx;
  int prc = 0;
  const hvg_program *prog = http__program(h, req, resp, &prc);
  if (!prog)
    return prc;
  /* intake writes through handles of its own: the loop's open batch
   * transaction would hold them off, so it commits first */
  if (hvg_fhir_http_flush(h->fhir))
    return hvg_httpd_resp_error(resp, 503, "the store is not available");
  char source[128] = "";
  int has_source = hvg_fsrv_query_param(req->query, "source", source, sizeof source);
  char *text = NULL;
  size_t tlen = 0;
  FILE *issues = open_memstream(&text, &tlen);
  if (!issues)
    return HVG_ENOMEM;
  char today[11];
  fhir_date_utc(time(NULL), today);
  hvg_ingest *x = NULL;
  hvg_err err;
  hvg_err_clear(&err);
  hvg_run_stats st = {0, 0, 0, 0};
  int code = hvg_ingest_new(&x, h->cfg, prog, today, issues, &err)
                 ? HVG_EXIT_IOERR
                 : hvg_ingest_mem(x, has_source ? source : NULL, "body",
                                  req->body, req->body_len, &st);
  fclose(issues);
  cJSON *o = cJSON_CreateObject();
  cJSON *lines = cJSON_AddArrayToObject(o, "issues");
  for (char *l = text, *e; l && *l; l = e + 1) {
    e = strchr(l, '\n');
    if (!e)
      e = l + strlen(l) - 1;
    else
      *e = '\0';
    cJSON_AddItemToArray(lines, cJSON_CreateString(l));
  }
  const hvg_ingest_counts *k = x ? hvg_ingest_counts_get(x) : NULL;
  cJSON_AddNumberToObject(o, "records", (double)st.records);
  cJSON_AddNumberToObject(o, "rejected", (double)st.rejected);
  if (k) {
    cJSON_AddNumberToObject(o, "new", (double)k->fresh);
    cJSON_AddNumberToObject(o, "changed", (double)k->changed);
    cJSON_AddNumberToObject(o, "unchanged", (double)k->unchanged);
    cJSON_AddNumberToObject(o, "queued", (double)k->queued);
    cJSON_AddNumberToObject(o, "withheld_consent", (double)k->withheld_consent);
    cJSON_AddNumberToObject(o, "withheld_sensitive",
                            (double)k->withheld_sensitive);
  }
  int status = code == HVG_EXIT_OK || code == HVG_EXIT_DATAERR ? 202
               : code == HVG_EXIT_USAGE || code == HVG_EXIT_CONFIG ||
                       code == HVG_EXIT_NOINPUT
                   ? 400
                   : 503;
  const char *result = status == 202 ? "stored" : "not stored";
  cJSON_AddStringToObject(o, "result", result);
  const char *lv[] = {prog->id, status == 202 ? "stored" : "failed"};
  hvg_metric_add(h->intake, lv, (double)(st.records - st.rejected));
  char *body = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  free(text);
  hvg_ingest_free(x);
  if (!body)
    return HVG_ENOMEM;
  int rc = hvg_httpd_resp_send(resp, status, "application/json", body,
                               strlen(body));
  free(body);
  return rc;
}

/* Moves exported rows into the response body. */
static int http__to_body(void *ctx, hvg_buf *b, int final) {
  (void)final;
  int rc = b->len ? hvg_httpd_resp_body(ctx, b->data, b->len) : 0;
  hvg_buf_reset(b);
  return rc;
}

/* GET /hv/{program}/referrals and /results: what came back, in the
 * program's layout; ?since=T, ?format=ndjson (default) or csv. */
static int http__hv_export(serve_http *h, const hvg_httpd_req *req,
                           hvg_httpd_resp *resp, hvg_export_what what) {
  int rc = 0;
  const hvg_program *prog = http__program(h, req, resp, &rc);
  if (!prog)
    return rc;
  hvg_export_req x;
  memset(&x, 0, sizeof x);
  x.program = prog;
  x.what = what;
  x.format = HV_EXPORT_NDJSON;
  char v[64];
  if (hvg_fsrv_query_param(req->query, "format", v, sizeof v)) {
    if (!strcmp(v, "csv"))
      x.format = HV_EXPORT_CSV;
    else if (strcmp(v, "ndjson"))
      return hvg_httpd_resp_error(resp, 400, "format is ndjson or csv");
  }
  if (hvg_fsrv_query_param(req->query, "since", v, sizeof v)) {
    if ((x.since_ms = hvg_export_since(v)) < 0)
      return hvg_httpd_resp_error(resp, 400, "since must be YYYY-MM-DD or an "
                                             "instant with a time zone");
  }
  char today[11];
  fhir_date_utc(time(NULL), today);
  x.today = today;
  x.drain = http__to_body;
  x.ctx = resp;
  hvg_export_stats stats;
  hvg_err err, warn;
  hvg_err_clear(&err);
  hvg_err_clear(&warn);
  rc = hvg_export_run(h->st, &x, &stats, &warn, &err);
  if (rc == HVG_ENOTFOUND)
    return hvg_httpd_resp_error(resp, 501, err.msg);
  if (rc == HVG_EIO)
    return hvg_httpd_resp_error(resp, 503, "the store is not available");
  if (rc)
    return rc;
  char n[32];
  snprintf(n, sizeof n, "%lu", stats.skipped);
  rc = hvg_httpd_resp_header(resp, "Content-Type",
                             x.format == HV_EXPORT_CSV
                                 ? "text/csv; charset=utf-8"
                                 : "application/x-ndjson");
  if (!rc && stats.skipped)
    rc = hvg_httpd_resp_header(resp, "X-Rows-Skipped", n);
  return rc;
}

/* POST /hv/{program}/referrals/{id}/status {"status": "linked", "reason":
 * "..."}: the program moves a referral a practice made to it. */
static int http__hv_referral_status(void *ctx, const hvg_httpd_req *req,
                                    hvg_httpd_resp *resp) {
  serve_http *h = ctx;
  int rc = 0;
  const hvg_program *prog = http__program(h, req, resp, &rc);
  if (!prog)
    return rc;
  cJSON *body = cJSON_ParseWithLength(req->body, req->body_len);
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(body, "status");
  const cJSON *why = cJSON_GetObjectItemCaseSensitive(body, "reason");
  if (!cJSON_IsString(st) || (why && !cJSON_IsString(why))) {
    cJSON_Delete(body);
    return hvg_httpd_resp_error(resp, 400, "the body is {\"status\": "
                                           "\"linked\", \"reason\": "
                                           "\"...\"}");
  }
  hvg_fres r;
  memset(&r, 0, sizeof r);
  rc = hvg_fsrv_program_update(hvg_fhir_http_server(h->fhir), prog,
                               hvg_httpd_path_param(req, "id"),
                               st->valuestring,
                               cJSON_IsString(why) ? why->valuestring : NULL,
                               store_now_ms(), &r);
  if (!rc && r.status >= 400)
    rc = hvg_httpd_resp_error(resp, r.status, r.diagnostics);
  else if (!rc) {
    cJSON *o = cJSON_CreateObject();
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(r.body, "status");
    if (!o || !cJSON_AddStringToObject(o, "referral_id",
                                       hvg_httpd_path_param(req, "id")) ||
        !cJSON_AddStringToObject(o, "status", st->valuestring) ||
        (cJSON_IsString(ts) &&
         !cJSON_AddStringToObject(o, "task_status", ts->valuestring)))
      rc = HVG_ENOMEM;
    char *text = rc ? NULL : cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    rc = text ? hvg_httpd_resp_send(resp, 200, "application/json", text,
                                    strlen(text))
              : HVG_ENOMEM;
    free(text);
  }
  cJSON_Delete(body); /* st points into it */
  hvg_fres_reset(&r);
  return rc;
}

static int http__hv_referrals(void *ctx, const hvg_httpd_req *req,
                              hvg_httpd_resp *resp) {
  return http__hv_export(ctx, req, resp, HVG_EXPORT_REFERRALS);
}

static int http__hv_results(void *ctx, const hvg_httpd_req *req,
                            hvg_httpd_resp *resp) {
  return http__hv_export(ctx, req, resp, HVG_EXPORT_RESULTS);
}

/* Registers the metric families and routes; 0 or an error. */
static int http__setup(serve_http *h, hvg_httpd *s, hvg_err *err) {
  static const char *const by_partner[] = {"partner", NULL};
  static const char *const intake_l[] = {"program", "result", NULL};
  int rc = hvg_metrics_gauge(h->m, "hvgate_queue_pending",
                             "Records waiting to be delivered", by_partner,
                             &h->pending, err);
  if (!rc)
    rc = hvg_metrics_gauge(h->m, "hvgate_queue_in_flight",
                           "Records being delivered", by_partner,
                           &h->in_flight, err);
  if (!rc)
    rc = hvg_metrics_gauge(h->m, "hvgate_dead_letters",
                           "Records refused by the partner, awaiting replay",
                           by_partner, &h->dead, err);
  if (!rc)
    rc = hvg_metrics_gauge(h->m, "hvgate_oldest_pending_seconds",
                           "Age of the oldest record waiting", by_partner,
                           &h->oldest, err);
  if (!rc)
    rc = hvg_metrics_counter(h->m, "hvgate_intake_records_total",
                             "Records received over HTTP", intake_l,
                             &h->intake, err);
  static const char *const req_l[] = {"route", "status", NULL};
  if (!rc)
    rc = hvg_metrics_counter(h->m, "hvgate_http_requests_total",
                             "Requests answered, by route and status", req_l,
                             &h->requests, err);
  if (!rc)
    rc = hvg_metrics_gauge(h->m, "hvgate_inbox_pending",
                           "Notified Tasks waiting to be fetched from the "
                           "partner",
                           by_partner, &h->inbox, err);
  if (!rc)
    rc = hvg_fhir_http_new(&h->fhir, h->cfg, h->st, s, err);
  if (!rc)
    rc = hvg_httpd_route(s, "GET /healthz", http__healthz, h, err);
  if (!rc)
    rc = hvg_httpd_route(s, "GET /readyz", http__readyz, h, err);
  if (!rc)
    rc = hvg_httpd_route(s, "GET /metrics", http__metrics, h, err);
  if (!rc)
    rc = hvg_httpd_route(s, "POST /hv/{program}/records", http__intake, h,
                         err);
  if (!rc)
    rc = hvg_httpd_route(s, "GET /hv/{program}/referrals", http__hv_referrals,
                         h, err);
  if (!rc)
    rc = hvg_httpd_route(s, "GET /hv/{program}/results", http__hv_results, h,
                         err);
  if (!rc)
    rc = hvg_httpd_route(s, "POST /hv/{program}/referrals/{id}/status",
                         http__hv_referral_status, h, err);
  return rc;
}

static void serve__usage(FILE *f) {
  fputs("usage: hvgate serve -c CONFIG [--drain [--timeout SECONDS]]\n"
        "\n"
        "Deliver the queued records to the partners: per-partner workers,\n"
        "kept-alive connections, retries with backoff on network errors,\n"
        "408, 429 and 5xx (honouring Retry-After), dead letters for other\n"
        "refusals, the partner held after an authentication failure. Logs\n"
        "are JSON lines on standard error. SIGTERM or SIGINT finishes the\n"
        "requests in flight and exits.\n"
        "\n"
        "  -c, --config FILE   gateway configuration (required)\n"
        "      --drain         exit once nothing is pending or in flight\n"
        "      --timeout S     with --drain: give up after S seconds (exit 69)\n"
        "  -h, --help          this help\n"
        "\n"
        "exit status: 0 stopped (or drained), 64 usage, 69 not drained in\n"
        "time, 74 store error, 78 configuration error.\n",
        f);
}

/* Nothing pending or in flight for any partner. -1 on a store error. */
static int serve__drained(store *st) {
  store_partner_stats s[64];
  size_t n = 0, total = 0;
  hvg_err err;
  if (store_stats(st, store_now_ms(), s, 64, &n, &total, &err))
    return -1;
  for (size_t i = 0; i < n; i++)
    if (s[i].pending || s[i].in_flight)
      return 0;
  int64_t inbox = 0;
  if (store_inbox_count(st, NULL, &inbox, &err))
    return -1;
  return total <= n && inbox == 0;
}

int hvg_cli_serve(int argc, char **argv) {
  static const struct option longopts[] = {
      {"config", required_argument, NULL, 'c'},
      {"drain", no_argument, NULL, 'd'},
      {"timeout", required_argument, NULL, 't'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *path = NULL;
  int drain = 0;
  long timeout_s = 0;
  optind = 1;
  opterr = 0;
  int ch;
  while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
    switch (ch) {
    case 'c': path = optarg; break;
    case 'd': drain = 1; break;
    case 't': timeout_s = strtol(optarg, NULL, 10); break;
    case 'h': serve__usage(stdout); return HVG_EXIT_OK;
    default: serve__usage(stderr); return HVG_EXIT_USAGE;
    }
  }
  if (!path || optind != argc || timeout_s < 0) {
    serve__usage(stderr);
    return HVG_EXIT_USAGE;
  }
  hvg_config *cfg = NULL;
  int code = hvg_cli_load_config(path, HVG_CONFIG_CHECK_FILES, 0, &cfg);
  if (code >= 0)
    return code;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  event_set_log_callback(serve__evlog);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = serve__on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  /* workers need little cache: each claims a few heads and writes back */
  store_opts so = {.full_sync = cfg->store_full_sync, .cache_mib = 4};
  hvg_err err;
  hvg_err_clear(&err);
  store *st = NULL; /* the daemon's own handle: migrations, status */
  int lockfd = -1;
  hvg_httpd *httpd = NULL;
  serve_http hs;
  memset(&hs, 0, sizeof hs);
  hvg_deliver_obs *obs = NULL;
  code = HVG_EXIT_OK;
  if (hvg_config_open_store_opts(cfg, &st, 0, 4, &err)) {
    fprintf(stderr, "hvgate: cannot open the store %s: %s\n", cfg->store_path,
            err.msg);
    code = err.code == HVG_ECONFIG ? HVG_EXIT_CONFIG : HVG_EXIT_IOERR;
    goto out;
  }
  /* One daemon per SQLite store: then what a killed daemon had in flight
   * can be taken up at once instead of when its leases run out. */
  char lockpath[4200];
  snprintf(lockpath, sizeof lockpath, "%s.lock", cfg->store_path);
  lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB)) {
    fprintf(stderr, "hvgate: %s: %s\n", lockpath,
            lockfd < 0 ? strerror(errno)
                       : "another hvgate serve is running on this store");
    code = HVG_EXIT_UNAVAILABLE;
    goto out;
  }
  if (store_release_leases(st, store_now_ms(), &err)) {
    fprintf(stderr, "hvgate: store: %s\n", err.msg);
    code = HVG_EXIT_IOERR;
    goto out;
  }
  /* the HTTP side: intake, health, metrics */
  hs.cfg = cfg;
  hvg_httpd_opts ho;
  memset(&ho, 0, sizeof ho);
  ho.listen = cfg->listen;
  ho.cert_file = cfg->tls_cert_file;
  ho.key_file = cfg->tls_key_file;
  ho.client_ca_file = cfg->tls_client_ca_file;
  ho.client_cert_optional = 1; /* partners may use a token instead */
  ho.on_request = http__on_request;
  ho.on_request_ctx = &hs;
  ho.on_batch = http__on_batch;
  ho.on_batch_ctx = &hs;
  if (hvg_metrics_new(&hs.m, &err) ||
      /* the HTTP side writes (Task updates): its own checkpoint thread,
       * so that commits do not wait for WAL checkpoints */
      hvg_config_open_store_opts(cfg, &hs.st, 0, 8, &err) ||
      hvg_httpd_new(&httpd, &ho, &err) || http__setup(&hs, httpd, &err) ||
      hvg_httpd_start(httpd, &err)) {
    fprintf(stderr, "hvgate: HTTP on %s: %s\n", cfg->listen, err.msg);
    code = HVG_EXIT_UNAVAILABLE;
    goto out;
  }
  size_t nw = 0;
  for (size_t i = 0; i < cfg->n_partners; i++)
    nw += (size_t)cfg->partners[i].workers;
  serve_worker *ws = calloc(nw ? nw : 1, sizeof *ws);
  atomic_int stop = 0;
  if (!ws) {
    code = HVG_EXIT_SOFTWARE;
    goto out;
  }
  hvg_partner_hold *holds = calloc(cfg->n_partners ? cfg->n_partners : 1,
                                   sizeof *holds);
  if (!holds) {
    free(ws);
    code = HVG_EXIT_SOFTWARE;
    goto out;
  }
  hvg_metric *deliv = NULL, *lat = NULL;
  static const char *const dl[] = {"partner", "outcome", NULL};
  static const char *const pl[] = {"partner", NULL};
  static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                  0.5,   1,    2.5,   5,    10,  30};
  obs = calloc(cfg->n_partners ? cfg->n_partners : 1, sizeof *obs);
  if (!obs ||
      hvg_metrics_counter(hs.m, "hvgate_deliveries_total",
                          "Delivery attempts by outcome", dl, &deliv, &err) ||
      hvg_metrics_histogram(hs.m, "hvgate_delivery_seconds",
                            "Time to deliver one Bundle", pl, bounds,
                            sizeof bounds / sizeof *bounds, &lat, &err)) {
    free(ws);
    free(holds);
    code = HVG_EXIT_SOFTWARE;
    goto out;
  }
  for (size_t i = 0; i < cfg->n_partners; i++) {
    const char *id = cfg->partners[i].id;
    const char *v1[] = {id, "delivered"}, *v2[] = {id, "retry"},
               *v3[] = {id, "dead_letter"}, *v4[] = {id, "auth_failure"},
               *v5[] = {id};
    hvg_metric_series(deliv, v1, &obs[i].delivered);
    hvg_metric_series(deliv, v2, &obs[i].retried);
    hvg_metric_series(deliv, v3, &obs[i].dead);
    hvg_metric_series(deliv, v4, &obs[i].auth_failed);
    hvg_metric_series(lat, v5, &obs[i].latency);
  }
  size_t k = 0;
  for (size_t i = 0; i < cfg->n_partners; i++) {
    hvg_partner_hold_init(&holds[i]);
    for (long j = 0; j < cfg->partners[i].workers && code == HVG_EXIT_OK;
         j++, k++) {
      serve_worker *w = &ws[k];
      w->p = &cfg->partners[i];
      w->stop = &stop;
      if (hvg_deliver_init(&w->d, w->p, cfg->store_path, &so, &holds[i],
                           stderr, &err)) {
        fprintf(stderr, "hvgate: partner %s: %s\n", w->p->id, err.msg);
        code = err.code == HVG_ECONFIG || err.code == HVG_ENOINPUT
                   ? HVG_EXIT_CONFIG
                   : HVG_EXIT_IOERR;
        break;
      }
      if (pthread_create(&w->th, NULL, serve__worker, w)) {
        code = HVG_EXIT_SOFTWARE;
        break;
      }
      w->d.obs = &obs[i];
      w->started = 1;
    }
  }
  /* status return: a poller per partner (polls for "poll" partners,
   * fetches what notifications named for all) */
  serve_poller *pls = calloc(cfg->n_partners ? cfg->n_partners : 1,
                             sizeof *pls);
  if (!pls)
    code = HVG_EXIT_SOFTWARE;
  for (size_t i = 0; code == HVG_EXIT_OK && i < cfg->n_partners; i++) {
    serve_poller *w = &pls[i];
    w->stop = &stop;
    atomic_init(&w->idle, 0);
    if (hvg_poll_init(&w->pl, cfg, &cfg->partners[i], cfg->store_path, &so,
                      &holds[i], stderr, &err)) {
      fprintf(stderr, "hvgate: partner %s: %s\n", cfg->partners[i].id,
              err.msg);
      code = err.code == HVG_ECONFIG || err.code == HVG_ENOINPUT
                 ? HVG_EXIT_CONFIG
                 : HVG_EXIT_IOERR;
      break;
    }
    if (pthread_create(&w->th, NULL, serve__poller, w)) {
      code = HVG_EXIT_SOFTWARE;
      break;
    }
    w->started = 1;
  }
  /* webhooks: one notifier per program that has one */
  serve_hook *hooks = calloc(cfg->n_programs ? cfg->n_programs : 1,
                             sizeof *hooks);
  if (!hooks)
    code = HVG_EXIT_SOFTWARE;
  for (size_t i = 0; code == HVG_EXIT_OK && i < cfg->n_programs; i++) {
    if (!cfg->programs[i].webhook_url)
      continue;
    serve_hook *w = &hooks[i];
    w->stop = &stop;
    if (hvg_webhook_init(&w->wh, &cfg->programs[i], cfg->store_path, &so,
                         stderr, &err)) {
      fprintf(stderr, "hvgate: %s\n", err.msg);
      code = err.code == HVG_EIO || err.code == HVG_ENOMEM ? HVG_EXIT_IOERR
                                                           : HVG_EXIT_CONFIG;
      break;
    }
    if (pthread_create(&w->th, NULL, serve__hook, w)) {
      code = HVG_EXIT_SOFTWARE;
      break;
    }
    w->started = 1;
  }
  if (code == HVG_EXIT_OK)
    fprintf(stderr,
            "{\"level\":\"info\",\"event\":\"started\",\"partners\":%zu,"
            "\"workers\":%zu,\"http_port\":%d}\n",
            cfg->n_partners, nw, hvg_httpd_port(httpd));
  time_t t0 = time(NULL);
  while (code == HVG_EXIT_OK && !serve_stop) {
    struct timespec ts = {0, 200 * 1000000L};
    nanosleep(&ts, NULL);
    if (!drain)
      continue;
    /* ask the store only when every worker is idle: counting the queue
     * costs more than a delivery */
    int busy = 0;
    for (size_t i = 0; i < nw && !busy; i++)
      busy = !atomic_load(&ws[i].idle);
    for (size_t i = 0; pls && i < cfg->n_partners && !busy; i++)
      busy = pls[i].started && !atomic_load(&pls[i].idle);
    if (busy)
      continue;
    int d = serve__drained(st);
    if (d < 0) {
      code = HVG_EXIT_IOERR;
    } else if (d) {
      break;
    } else if (timeout_s && time(NULL) - t0 >= timeout_s) {
      fprintf(stderr, "hvgate: not drained after %ld s (see hvgate status)\n",
              timeout_s);
      code = HVG_EXIT_UNAVAILABLE;
    }
  }
  atomic_store(&stop, 1);
  hvg_httpd_stop(httpd); /* finishes the requests in flight */
  for (size_t i = 0; pls && i < cfg->n_partners; i++) {
    if (pls[i].started)
      pthread_join(pls[i].th, NULL);
    hvg_poll_free(&pls[i].pl);
  }
  free(pls);
  for (size_t i = 0; hooks && i < cfg->n_programs; i++) {
    if (hooks[i].started)
      pthread_join(hooks[i].th, NULL);
    hvg_webhook_free(&hooks[i].wh);
  }
  free(hooks);
  hvg_deliver_counts tot = {0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i < nw; i++) {
    if (ws[i].started)
      pthread_join(ws[i].th, NULL);
    tot.delivered += ws[i].d.n.delivered;
    tot.retried += ws[i].d.n.retried;
    tot.dead += ws[i].d.n.dead;
    tot.auth_failures += ws[i].d.n.auth_failures;
    hvg_deliver_free(&ws[i].d);
  }
  fprintf(stderr,
          "{\"level\":\"info\",\"event\":\"stopped\",\"delivered\":%lu,"
          "\"retried\":%lu,\"dead_letters\":%lu,\"auth_failures\":%lu}\n",
          tot.delivered, tot.retried, tot.dead, tot.auth_failures);
  free(ws);
  free(holds);
out:
  hvg_httpd_free(httpd);
  hvg_fhir_http_free(hs.fhir);
  store_close(hs.st);
  hvg_metrics_free(hs.m);
  free(obs);
  if (lockfd >= 0)
    close(lockfd); /* releases the lock */
  store_close(st);
  hvg_config_free(cfg);
  curl_global_cleanup();
  return code;
}

/* ---- status ---------------------------------------------------------- */

static void status__usage(FILE *f) {
  fputs("usage: hvgate status -c CONFIG\n\n"
        "Queue depth, deliveries and dead letters per partner, and the age\n"
        "of the oldest pending record.\n\n"
        "  -c, --config FILE   gateway configuration (required)\n"
        "  -h, --help          this help\n",
        f);
}

/* Opens the store of a configuration for the operator commands. */
static int ops__open(const char *path, hvg_config **cfg, store **st) {
  int code = hvg_cli_load_config(path, 0, 0, cfg);
  if (code >= 0)
    return code;
  hvg_err err;
  if (hvg_config_open_store(*cfg, st, &err)) {
    fprintf(stderr, "hvgate: cannot open the store %s: %s\n",
            (*cfg)->store_path, err.msg);
    hvg_config_free(*cfg);
    return err.code == HVG_ECONFIG ? HVG_EXIT_CONFIG : HVG_EXIT_IOERR;
  }
  return -1;
}

static int ops__args(int argc, char **argv, const char **path, int *all,
                     const char **partner, void (*usage)(FILE *)) {
  static const struct option longopts[] = {
      {"config", required_argument, NULL, 'c'},
      {"all", no_argument, NULL, 'a'},
      {"partner", required_argument, NULL, 'p'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  optind = 1;
  opterr = 0;
  int ch;
  while ((ch = getopt_long(argc, argv, "c:p:h", longopts, NULL)) != -1) {
    if (ch == 'c') {
      *path = optarg;
    } else if (ch == 'a' && all) {
      *all = 1;
    } else if (ch == 'p' && partner) {
      *partner = optarg;
    } else if (ch == 'h') {
      usage(stdout);
      return HVG_EXIT_OK;
    } else {
      usage(stderr);
      return HVG_EXIT_USAGE;
    }
  }
  if (!*path) {
    usage(stderr);
    return HVG_EXIT_USAGE;
  }
  return -1;
}

int hvg_cli_status(int argc, char **argv) {
  const char *path = NULL;
  int code = ops__args(argc, argv, &path, NULL, NULL, status__usage);
  if (code >= 0)
    return code;
  if (optind != argc) {
    status__usage(stderr);
    return HVG_EXIT_USAGE;
  }
  hvg_config *cfg;
  store *st;
  if ((code = ops__open(path, &cfg, &st)) >= 0)
    return code;
  store_partner_stats s[256];
  size_t n = 0;
  hvg_err err;
  code = HVG_EXIT_OK;
  if (store_stats(st, store_now_ms(), s, 256, &n, NULL, &err)) {
    fprintf(stderr, "hvgate: store: %s\n", err.msg);
    code = HVG_EXIT_IOERR;
  } else {
    printf("%-20s %9s %9s %9s %9s %14s\n", "partner", "pending", "in-flight",
           "dead", "delivered", "oldest-pending");
    for (size_t i = 0; i < cfg->n_partners; i++) {
      const store_partner_stats *p = NULL;
      for (size_t j = 0; j < n && !p; j++)
        if (!strcmp(s[j].partner, cfg->partners[i].id))
          p = &s[j];
      store_partner_stats zero;
      memset(&zero, 0, sizeof zero);
      if (!p)
        p = &zero;
      char age[32] = "-";
      if (p->oldest_pending_age_ms)
        snprintf(age, sizeof age, "%llds",
                 (long long)(p->oldest_pending_age_ms / 1000));
      printf("%-20s %9lld %9lld %9lld %9lld %14s\n", cfg->partners[i].id,
             (long long)p->pending, (long long)p->in_flight,
             (long long)p->dead, (long long)p->delivered, age);
    }
  }
  store_close(st);
  hvg_config_free(cfg);
  return code;
}

/* ---- replay ---------------------------------------------------------- */

static void replay__usage(FILE *f) {
  fputs("usage: hvgate replay -c CONFIG (--all [--partner P] | ID...)\n\n"
        "Put dead letters back in the queue (after the record or the\n"
        "partner configuration was fixed). IDs are outbox ids, as in the\n"
        "logs' \"outbox_id\".\n\n"
        "  -c, --config FILE   gateway configuration (required)\n"
        "      --all           every dead letter (of --partner P only)\n"
        "  -h, --help          this help\n",
        f);
}

int hvg_cli_replay(int argc, char **argv) {
  const char *path = NULL, *partner = NULL;
  int all = 0;
  int code = ops__args(argc, argv, &path, &all, &partner, replay__usage);
  if (code >= 0)
    return code;
  int nids = argc - optind;
  if (all == (nids > 0) || (partner && !all)) {
    replay__usage(stderr);
    return HVG_EXIT_USAGE;
  }
  int64_t *ids = nids ? calloc((size_t)nids, sizeof *ids) : NULL;
  for (int i = 0; i < nids; i++) {
    char *end;
    long long v = strtoll(argv[optind + i], &end, 10);
    if (*end || v <= 0) {
      fprintf(stderr, "hvgate: '%s' is not an outbox id\n", argv[optind + i]);
      free(ids);
      return HVG_EXIT_USAGE;
    }
    ids[i] = v;
  }
  hvg_config *cfg;
  store *st;
  if ((code = ops__open(path, &cfg, &st)) >= 0) {
    free(ids);
    return code;
  }
  size_t moved = 0;
  hvg_err err;
  int rc = all ? store_replay_all(st, partner, store_now_ms(), &moved, &err)
               : store_replay(st, ids, (size_t)nids, store_now_ms(), &moved,
                              &err);
  if (rc) {
    fprintf(stderr, "hvgate: store: %s\n", err.msg);
    code = HVG_EXIT_IOERR;
  } else {
    printf("%zu dead letter%s queued again\n", moved, moved == 1 ? "" : "s");
    code = HVG_EXIT_OK;
  }
  free(ids);
  store_close(st);
  hvg_config_free(cfg);
  return code;
}
