#include "hvg_webhook.h"

#include "fhir_check.h"
#include "hvg_auth.h"

#include <stdlib.h>
#include <string.h>

#define WH__BACKOFF_MIN_MS 1000
#define WH__BACKOFF_MAX_MS 300000

int hvg_webhook_init(hvg_webhook *w, const hvg_program *prog,
                     const char *store_path, const store_opts *so, FILE *log,
                     hvg_err *err) {
  memset(w, 0, sizeof *w);
  w->prog = prog;
  w->log = log;
  hvg_http_resp_init(&w->resp);
  snprintf(w->cursor_key, sizeof w->cursor_key, "webhook:%s", prog->id);
  int rc = 0;
  if (prog->webhook_token_file || prog->webhook_token_env) {
    char owner[128];
    snprintf(owner, sizeof owner, "program %s's webhook", prog->id);
    rc = hvg_auth_read_token(owner, prog->webhook_token_file,
                             prog->webhook_token_env, &w->token, err);
  }
  if (!rc)
    rc = store_open(&w->st, store_path, so, err);
  hvg_http_opts ho = {5000, 30000, 1, NULL, NULL, NULL, (size_t)64 << 10};
  if (!rc)
    rc = hvg_http_new(&w->http, &ho, err);
  return rc;
}

void hvg_webhook_free(hvg_webhook *w) {
  if (!w)
    return;
  hvg_http_resp_free(&w->resp);
  hvg_http_free(w->http);
  store_close(w->st);
  free(w->token);
  w->http = NULL;
  w->st = NULL;
  w->token = NULL;
}

static void wh__log(hvg_webhook *w, const char *level, const char *event,
                    long status, size_t n, const char *detail) {
  if (!w->log)
    return;
  hvg_buf b;
  hvg_buf_init(&b, 2048);
  hvg_buf_printf(&b, "{\"level\":\"%s\",\"event\":\"%s\",\"program\":", level,
                 event);
  hvg_buf_add_json_str(&b, w->prog->id);
  if (status)
    hvg_buf_printf(&b, ",\"http_status\":%ld", status);
  if (n)
    hvg_buf_printf(&b, ",\"events\":%zu", n);
  if (detail) {
    hvg_buf_adds(&b, ",\"detail\":");
    hvg_buf_add_json_str(&b, detail);
  }
  if (!hvg_buf_adds(&b, "}\n")) {
    fwrite(b.data, 1, b.len, w->log);
    fflush(w->log);
  }
  hvg_buf_free(&b);
}

int hvg_webhook_round(hvg_webhook *w, int64_t now_ms, int *idle_ms,
                      hvg_err *err) {
  if (idle_ms)
    *idle_ms = 1000;
  if (now_ms < w->next_ms)
    return 0;
  hvg_buf cur;
  hvg_buf_init(&cur, 32);
  int rc = store_cursor_get(w->st, w->cursor_key, &cur, err);
  int64_t after = rc == 0 ? strtoll(cur.data, NULL, 10) : 0;
  hvg_buf_free(&cur);
  if (rc && rc != HVG_ENOTFOUND)
    return rc;
  store_event ev[HVG_WEBHOOK_BATCH];
  size_t n = 0;
  if ((rc = store_event_list(w->st, w->prog->id, after, HVG_WEBHOOK_BATCH, ev,
                             &n, err)) != 0)
    return rc;
  if (!n)
    return 0;
  hvg_buf body;
  hvg_buf_init(&body, (size_t)1 << 20);
  int brc = hvg_buf_adds(&body, "{\"program\":");
  brc = brc ? brc : hvg_buf_add_json_str(&body, w->prog->id);
  brc = brc ? brc : hvg_buf_adds(&body, ",\"events\":[");
  for (size_t i = 0; !brc && i < n; i++) {
    char at[32];
    fhir_instant_format(ev[i].at_ms, at);
    brc = hvg_buf_printf(&body,
                         "%s{\"id\":%lld,\"at\":\"%s\",\"kind\":", i ? "," : "",
                         (long long)ev[i].id, at);
    brc = brc ? brc : hvg_buf_add_json_str(&body, ev[i].kind);
    brc = brc ? brc : hvg_buf_adds(&body, ",\"ref\":");
    brc = brc ? brc : hvg_buf_add_json_str(&body, ev[i].ref ? ev[i].ref : "");
    brc = brc ? brc : hvg_buf_addc(&body, '}');
  }
  brc = brc ? brc : hvg_buf_adds(&body, "]}");
  int64_t last = ev[n - 1].id;
  for (size_t i = 0; i < n; i++)
    store_event_release(&ev[i]);
  if (brc) {
    hvg_buf_free(&body);
    return hvg_err_set(err, brc, NULL, "webhook body");
  }
  char auth[8300] = "";
  if (w->token)
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", w->token);
  const char *hdr[] = {"Content-Type: application/json", w->token ? auth : NULL,
                       NULL};
  hvg_err herr;
  hvg_err_clear(&herr);
  int hrc = hvg_http_request(w->http, "POST", w->prog->webhook_url, hdr,
                             body.data, body.len, &w->resp, &herr);
  hvg_buf_free(&body);
  long st = hrc ? 0 : w->resp.status;
  if (st >= 200 && st < 300) {
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)last);
    if ((rc = store_cursor_set(w->st, w->cursor_key, v, now_ms, err)) != 0)
      return rc;
    w->failures = 0;
    w->sent += n;
    wh__log(w, "info", "webhook_sent", st, n, NULL);
    if (idle_ms)
      *idle_ms = n == HVG_WEBHOOK_BATCH ? 0 : 1000;
    return (int)n;
  }
  int64_t back = WH__BACKOFF_MIN_MS;
  for (int i = 0; i < w->failures && back < WH__BACKOFF_MAX_MS; i++)
    back *= 2;
  w->next_ms = now_ms + (back > WH__BACKOFF_MAX_MS ? WH__BACKOFF_MAX_MS : back);
  w->failures++;
  if (w->failures == 1 || w->failures % 10 == 0) /* not one line per try */
    wh__log(w, "warn", "webhook_failed", st, n,
            st ? "the webhook did not answer 2xx; retrying" : herr.msg);
  return 0;
}
