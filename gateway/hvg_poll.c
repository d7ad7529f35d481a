#include "hvg_poll.h"

#include "fhir_check.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POLL__BACKOFF_MIN_MS 2000
#define POLL__BACKOFF_MAX_MS 600000
#define POLL__INBOX_BATCH 32

int hvg_poll_init(hvg_poller *pl, const hvg_config *cfg, const hvg_partner *p,
                  const char *store_path, const store_opts *so,
                  hvg_partner_hold *hold, FILE *log, hvg_err *err) {
  memset(pl, 0, sizeof *pl);
  pl->p = p;
  pl->log = log;
  hvg_partner_hold_init(&pl->own);
  pl->hold = hold ? hold : &pl->own;
  hvg_http_resp_init(&pl->resp);
  int rc = store_open(&pl->st, store_path, so, err);
  if (!rc)
    rc = hvg_fsrv_new(&pl->fs, cfg, pl->st, err);
  hvg_http_opts ho = {p->connect_timeout_ms,
                      p->timeout_ms,
                      p->tls_verify,
                      p->ca_file,
                      p->client_cert_file,
                      p->client_key_file,
                      0};
  if (!rc)
    rc = hvg_http_new(&pl->http, &ho, err);
  if (!rc)
    rc = hvg_auth_init(&pl->auth, p, err);
  return rc;
}

void hvg_poll_free(hvg_poller *pl) {
  if (!pl)
    return;
  hvg_http_resp_free(&pl->resp);
  hvg_auth_free(&pl->auth);
  hvg_http_free(pl->http);
  hvg_fsrv_free(pl->fs);
  store_close(pl->st);
  pl->http = NULL;
  pl->fs = NULL;
  pl->st = NULL;
}

/* One JSON log line (ids and counts only). */
static void poll__log(hvg_poller *pl, const char *level, const char *event,
                      const char *ref, long status, const char *detail,
                      unsigned long applied) {
  if (!pl->log)
    return;
  char ts[32];
  fhir_instant_format(store_now_ms(), ts);
  hvg_buf b;
  hvg_buf_init(&b, 4096);
  hvg_buf_printf(&b,
                 "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"%s\","
                 "\"partner\":",
                 ts, level, event);
  hvg_buf_add_json_str(&b, pl->p->id);
  if (ref) {
    hvg_buf_adds(&b, ",\"ref\":");
    hvg_buf_add_json_str(&b, ref);
  }
  if (status)
    hvg_buf_printf(&b, ",\"http_status\":%ld", status);
  if (applied)
    hvg_buf_printf(&b, ",\"applied\":%lu", applied);
  if (detail) {
    hvg_buf_adds(&b, ",\"detail\":");
    hvg_buf_add_json_str(&b, detail);
  }
  if (!hvg_buf_adds(&b, "}\n")) {
    fwrite(b.data, 1, b.len, pl->log);
    fflush(pl->log);
  }
  hvg_buf_free(&b);
}

/* GET url with the partner's credentials (one fresh token after a 401).
 * Returns the HTTP status (0: no answer, err says why); -1 when the
 * partner refused the gateway's credentials (held). */
static long poll__get(hvg_poller *pl, const char *url, hvg_err *err) {
  for (int tries = 0;; tries++) {
    char auth[8300];
    int rc = hvg_auth_header(&pl->auth, pl->http, time(NULL), auth, sizeof auth,
                             err);
    if (rc == HVG_ESECURITY)
      return -1;
    if (rc)
      return 0;
    const char *hdr[] = {"Accept: application/fhir+json", auth[0] ? auth : NULL,
                         NULL};
    rc = hvg_http_request(pl->http, "GET", url, hdr, NULL, 0, &pl->resp, err);
    if (rc)
      return 0;
    long st = pl->resp.status;
    if (st == 401 && pl->p->auth == HVG_AUTH_SMART && tries == 0) {
      hvg_auth_forget(&pl->auth);
      continue;
    }
    return st == 401 || st == 403 ? -1 : st;
  }
}

/* The partner refused the gateway's credentials: hold it (shared with the
 * workers), reported once per incident. */
static void poll__held(hvg_poller *pl, int64_t now, const char *ref,
                       const char *why) {
  pl->n.errors++;
  if (hvg_partner_hold_fail(pl->hold, now))
    poll__log(pl, "error", "partner_auth_failed", ref, 0,
              why && why[0] ? why
                            : "the partner refused the gateway's credentials",
              0);
}

/* The partner's base without a trailing '/'. */
static size_t poll__base_len(const char *base) {
  size_t n = strlen(base);
  while (n && base[n - 1] == '/')
    n--;
  return n;
}

/* Applies one Task of the partner; counts what happened. */
static int poll__apply(hvg_poller *pl, const cJSON *task, const char *source,
                       hvg_err *err) {
  hvg_fres r;
  memset(&r, 0, sizeof r);
  hvg_remote_outcome out;
  int rc = hvg_fsrv_remote_task(pl->fs, pl->p, task, source, store_now_ms(),
                                &out, &r);
  if (rc) {
    hvg_err_set(err, rc, NULL, "%s", r.diagnostics);
  } else if (out == HVG_REMOTE_APPLIED) {
    pl->n.applied++;
  } else if (out == HVG_REMOTE_REFUSED) {
    pl->n.refused++;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(task, "id");
    char ref[100];
    snprintf(ref, sizeof ref, "Task/%.64s",
             cJSON_IsString(id) ? id->valuestring : "?");
    poll__log(pl, "warn", "status_refused", ref, 0, r.diagnostics, 0);
  }
  hvg_fres_reset(&r);
  return rc;
}

void hvg_poll_cursor_max(const cJSON *bundle, const char *cur, char *out,
                         size_t cap) {
  int64_t best = 0, t;
  if (cur && !fhir_instant_ms(cur, &t))
    best = t;
  const cJSON *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(bundle, "entry")) {
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(e, "resource"), "meta");
    const cJSON *lu = cJSON_GetObjectItemCaseSensitive(meta, "lastUpdated");
    if (cJSON_IsString(lu) && !fhir_instant_ms(lu->valuestring, &t) && t > best)
      best = t;
  }
  char s[32] = "";
  if (best)
    fhir_instant_format(best, s);
  snprintf(out, cap, "%s", s);
}

/* The inbox: Tasks that notifications named. */
static int poll__inbox(hvg_poller *pl, int64_t now, hvg_err *err) {
  store_inbox_item due[POLL__INBOX_BATCH];
  size_t n = 0;
  int rc =
      store_inbox_due(pl->st, pl->p->id, now, due, POLL__INBOX_BATCH, &n, err);
  size_t bl = poll__base_len(pl->p->base_url);
  for (size_t i = 0; !rc && i < n; i++) {
    char url[2048];
    snprintf(url, sizeof url, "%.*s/%s", (int)bl, pl->p->base_url, due[i].ref);
    hvg_err herr;
    hvg_err_clear(&herr);
    long st = poll__get(pl, url, &herr);
    pl->n.fetched++;
    if (st == -1) {
      poll__held(pl, now, due[i].ref, herr.msg);
      break;
    }
    if (st >= 200 && st < 300) {
      cJSON *t = cJSON_ParseWithLength(
          pl->resp.body.data ? pl->resp.body.data : "", pl->resp.body.len);
      if (t)
        rc = poll__apply(pl, t, "subscription", err);
      cJSON_Delete(t);
      if (!rc)
        rc = store_inbox_done(pl->st, pl->p->id, due[i].ref, 0, NULL, now, err);
    } else if (st == 404 || st == 410) {
      poll__log(pl, "warn", "fetch_gone", due[i].ref, st,
                "the notified Task is not on the partner's server", 0);
      rc = store_inbox_done(pl->st, pl->p->id, due[i].ref, 0, NULL, now, err);
    } else {
      int64_t back = POLL__BACKOFF_MIN_MS;
      for (int k = 0; k < due[i].attempts && back < POLL__BACKOFF_MAX_MS; k++)
        back *= 2;
      if (back > POLL__BACKOFF_MAX_MS)
        back = POLL__BACKOFF_MAX_MS;
      char why[300];
      if (st)
        snprintf(why, sizeof why, "HTTP %ld", st);
      else
        snprintf(why, sizeof why, "network: %.200s", herr.msg);
      pl->n.errors++;
      poll__log(pl, "warn", "fetch_retry", due[i].ref, st, why, 0);
      rc = store_inbox_done(pl->st, pl->p->id, due[i].ref, now + back, why, now,
                            err);
    }
  }
  return rc;
}

/* One poll: the Tasks changed since the cursor, page by page. */
static int poll__search(hvg_poller *pl, int64_t now, hvg_err *err) {
  hvg_buf cur;
  hvg_buf_init(&cur, 64);
  int rc = store_cursor_get(pl->st, pl->p->id, &cur, err);
  int64_t since = now - (int64_t)HVG_POLL_LOOKBACK_S * 1000;
  if (rc == 0 && !fhir_instant_ms(cur.data, &since))
    since -= HVG_POLL_OVERLAP_MS;
  else if (rc && rc != HVG_ENOTFOUND) {
    hvg_buf_free(&cur);
    return rc;
  }
  rc = 0;
  char cursor[40];
  snprintf(cursor, sizeof cursor, "%s", cur.data ? cur.data : "");
  hvg_buf_free(&cur);
  char gt[32];
  fhir_instant_format(since, gt);
  size_t bl = poll__base_len(pl->p->base_url);
  char url[4096];
  snprintf(url, sizeof url,
           "%.*s/Task?_lastUpdated=gt%s&_sort=_lastUpdated"
           "&_count=100%s%s",
           (int)bl, pl->p->base_url, gt, pl->p->poll_query ? "&" : "",
           pl->p->poll_query ? pl->p->poll_query : "");
  unsigned long before = pl->n.applied;
  pl->n.polls++;
  for (int page = 0; !rc && page < HVG_POLL_PAGES && url[0]; page++) {
    hvg_err herr;
    hvg_err_clear(&herr);
    long st = poll__get(pl, url, &herr);
    if (st == -1) {
      poll__held(pl, now, NULL, herr.msg);
      break;
    }
    if (hvg_partner_hold_clear(pl->hold))
      poll__log(pl, "info", "partner_auth_recovered", NULL, 0, NULL, 0);
    if (st < 200 || st >= 300) {
      pl->n.errors++;
      poll__log(pl, "warn", "poll_failed", NULL, st,
                st ? "the partner's search failed" : herr.msg, 0);
      break;
    }
    cJSON *b = cJSON_ParseWithLength(
        pl->resp.body.data ? pl->resp.body.data : "", pl->resp.body.len);
    const cJSON *e;
    url[0] = '\0';
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(b, "entry")) {
      const cJSON *res = cJSON_GetObjectItemCaseSensitive(e, "resource");
      pl->n.fetched++;
      if ((rc = poll__apply(pl, res, "poll", err)) != 0)
        break;
    }
    if (!rc) { /* the cursor moves once the page is applied */
      char next_cursor[40];
      hvg_poll_cursor_max(b, cursor, next_cursor, sizeof next_cursor);
      if (next_cursor[0] && strcmp(next_cursor, cursor)) {
        rc = store_cursor_set(pl->st, pl->p->id, next_cursor, now, err);
        snprintf(cursor, sizeof cursor, "%s", next_cursor);
      }
    }
    const cJSON *l;
    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(b, "link")) {
      const cJSON *rel = cJSON_GetObjectItemCaseSensitive(l, "relation");
      const cJSON *u = cJSON_GetObjectItemCaseSensitive(l, "url");
      /* only pages of the same server: never a URL somewhere else */
      if (cJSON_IsString(rel) && !strcmp(rel->valuestring, "next") &&
          cJSON_IsString(u) && !strncmp(u->valuestring, pl->p->base_url, bl))
        snprintf(url, sizeof url, "%s", u->valuestring);
    }
    cJSON_Delete(b);
  }
  if (!rc && pl->n.applied > before)
    poll__log(pl, "info", "polled", NULL, 0, NULL, pl->n.applied - before);
  return rc;
}

int hvg_poll_round(hvg_poller *pl, int64_t now_ms, int *idle_ms, hvg_err *err) {
  if (idle_ms)
    *idle_ms = 1000;
  int64_t held = hvg_partner_held_until(pl->hold);
  if (now_ms < held) {
    if (idle_ms)
      *idle_ms = (int)(held - now_ms > 1000 ? 1000 : held - now_ms);
    return 0;
  }
  unsigned long before = pl->n.applied;
  int rc = poll__inbox(pl, now_ms, err);
  if (!rc && pl->p->status_mode == HVG_STATUS_POLL &&
      now_ms >= pl->next_poll_ms) {
    pl->next_poll_ms = now_ms + (int64_t)pl->p->poll_interval_s * 1000;
    rc = poll__search(pl, now_ms, err);
  }
  if (rc)
    return rc;
  int64_t wait =
      pl->p->status_mode == HVG_STATUS_POLL ? pl->next_poll_ms - now_ms : 1000;
  if (idle_ms)
    *idle_ms = (int)(wait < 200 ? 200 : wait > 1000 ? 1000 : wait);
  return (int)(pl->n.applied - before);
}
