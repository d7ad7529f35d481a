#include "hvg_export.h"

#include "fhir_check.h"
#include "hvg_tracker.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EX__PAGE 200
#define EX__SINK_MAX ((size_t)64 << 20)
#define EX__HISTORY 256

int64_t hvg_export_since(const char *s) {
  int64_t ms;
  long days;
  if (!s)
    return -1;
  if (!fhir_instant_ms(s, &ms))
    return ms;
  if (!fhir_date_days(s, &days))
    return (int64_t)days * 86400000;
  return -1;
}

/* Fields of a JSON object of canonical names into v (strings stay in the
 * tree). */
static void ex__fields(const cJSON *o, const char *v[HV_F__COUNT]) {
  const cJSON *it;
  cJSON_ArrayForEach(it, o) {
    int f = it->string ? hv_field_lookup(it->string) : -1;
    if (f >= 0 && cJSON_IsString(it))
      v[f] = it->valuestring;
  }
}

static void ex__date(int64_t ms, char out[11]) {
  if (ms <= 0) {
    out[0] = '\0';
    return;
  }
  fhir_date_utc((time_t)(ms / 1000), out);
}

/* The text of a CodeableConcept: text, else the first coding's display or
 * code. */
static const char *ex__cc(const cJSON *cc) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(cc, "text");
  if (cJSON_IsString(t))
    return t->valuestring;
  const cJSON *c0 =
      cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(cc, "coding"), 0);
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(c0, "display");
  if (!cJSON_IsString(d))
    d = cJSON_GetObjectItemCaseSensitive(c0, "code");
  return cJSON_IsString(d) ? d->valuestring : NULL;
}

/* What was done (Task.output), as text: each output's string, concept
 * text or reference display, "; " between. */
static void ex__outcome(const cJSON *task, char *out, size_t cap) {
  out[0] = '\0';
  const cJSON *o;
  cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(task, "output")) {
    const char *t = NULL;
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(o, "valueString");
    if (cJSON_IsString(vs))
      t = vs->valuestring;
    if (!t)
      t = ex__cc(cJSON_GetObjectItemCaseSensitive(o, "valueCodeableConcept"));
    if (!t) {
      const cJSON *d = cJSON_GetObjectItemCaseSensitive(
          cJSON_GetObjectItemCaseSensitive(o, "valueReference"), "display");
      if (cJSON_IsString(d))
        t = d->valuestring;
    }
    if (!t)
      t = ex__cc(cJSON_GetObjectItemCaseSensitive(o, "type"));
    size_t l = strlen(out);
    if (t && l + 3 < cap)
      snprintf(out + l, cap - l, "%s%s", l ? "; " : "", t);
  }
}

/* Dates of the loop from a referral's transitions. */
typedef struct ex__dates {
  char received[11], linked[11], scheduled[11], completed[11], closed[11],
      status[11];
  int partner_moved; /* a partner changed the status at least once */
} ex__dates;

static void ex__history(const store_transition *t, size_t n, ex__dates *d) {
  memset(d, 0, sizeof *d);
  for (size_t i = 0; i < n; i++) {
    char day[11];
    ex__date(t[i].at_ms, day);
    const char *hv = t[i].hv_status;
    if (t[i].actor && !strncmp(t[i].actor, "partner:", 8))
      d->partner_moved = 1;
    if (!d->received[0] && !strcmp(t[i].to_status, "received"))
      memcpy(d->received, day, 11);
    if (hv && !d->linked[0] && !strcmp(hv, "linked"))
      memcpy(d->linked, day, 11);
    if (hv && !d->scheduled[0] && !strcmp(hv, "scheduled"))
      memcpy(d->scheduled, day, 11);
    if (!d->completed[0] && !strcmp(t[i].to_status, "completed"))
      memcpy(d->completed, day, 11);
    if (hvg_task_status_final(t[i].to_status) &&
        strcmp(t[i].to_status, "completed"))
      memcpy(d->closed, day, 11);
    memcpy(d->status, day, 11);
  }
}

/* The loop's dates of referral r, from its stored transitions; on error
 * returns it with d empty. */
static int ex__referral_dates(store *st, const store_referral *r, ex__dates *d,
                              hvg_err *err) {
  store_transition t[EX__HISTORY];
  size_t nt = 0;
  void *mem = NULL;
  int rc = store_referral_history(st, r->program, r->referral_id, t,
                                  EX__HISTORY, &nt, &mem, err);
  ex__history(t, rc ? 0 : nt, d);
  store_referral_history_free(mem);
  return rc;
}

/* Writes one row, skipping it (counted, reason in warn) when the layout
 * cannot carry it; drains when the buffer grows. */
static int ex__row(hv_export *x, const char *v[HV_F__COUNT], hvg_buf *b,
                   const hvg_export_req *req, hvg_export_stats *stats,
                   hvg_err *warn, hvg_err *err) {
  hvg_err e;
  int rc = hv_export_row(x, v, &e);
  if (rc == HVG_ETOOBIG && b->len) { /* drain and try once more */
    if ((rc = req->drain(req->ctx, b, 0)) != 0)
      return rc;
    rc = hv_export_row(x, v, &e);
  }
  if (rc == HVG_EENCODING || rc == HVG_EFORMAT || rc == HVG_EINVAL) {
    stats->skipped++;
    if (warn)
      *warn = e;
    return 0;
  }
  if (rc) {
    if (err)
      *err = e;
    return rc;
  }
  stats->rows++;
  return b->len >= ((size_t)1 << 20) ? req->drain(req->ctx, b, 0) : 0;
}

static int ex__referrals(store *st, const hvg_export_req *req, hv_export *x,
                         hvg_buf *b, hvg_export_stats *stats, hvg_err *warn,
                         hvg_err *err) {
  store_referral page[EX__PAGE];
  int64_t after = 0;
  for (;;) {
    size_t n = 0;
    int rc = store_referral_list(st, req->program->id, req->since_ms, after,
                                 EX__PAGE, page, &n, err);
    if (rc)
      return rc;
    for (size_t i = 0; i < n && !rc; i++) {
      const store_referral *r = &page[i];
      after = r->id;
      const char *v[HV_F__COUNT] = {0};
      cJSON *data =
          r->data ? cJSON_ParseWithLength(r->data, r->data_len) : NULL;
      ex__fields(data, v);
      ex__dates d;
      rc = ex__referral_dates(st, r, &d, err);
      cJSON *task = NULL;
      store_resource row;
      if (!rc && r->task_id &&
          !store_resource_get(st, "Task", r->task_id, &row, NULL)) {
        task = cJSON_ParseWithLength(row.body, row.body_len);
        store_resource_release(&row);
      }
      char sent[11], outcome[1024];
      ex__date(r->sent_at_ms, sent);
      ex__outcome(task, outcome, sizeof outcome);
      int inbound = r->direction && !strcmp(r->direction, "inbound");
      if (d.partner_moved || inbound || !v[HV_F_REF_STATUS]) {
        v[HV_F_REF_STATUS] = r->hv_status;
        v[HV_F_REF_STATUS_DATE] = d.status;
      }
      v[HV_F_REF_DIRECTION] = r->direction;
      v[HV_F_REF_TASK_STATUS] = r->status;
      v[HV_F_REF_BUSINESS_STATUS] =
          ex__cc(cJSON_GetObjectItemCaseSensitive(task, "businessStatus"));
      v[HV_F_REF_STATUS_REASON] =
          ex__cc(cJSON_GetObjectItemCaseSensitive(task, "statusReason"));
      v[HV_F_REF_OUTCOME] = outcome;
      v[HV_F_REF_SENT_DATE] = sent;
      v[HV_F_REF_RECEIVED_DATE] = d.received;
      v[HV_F_REF_LINKED_DATE] = d.linked;
      v[HV_F_REF_SCHEDULED_DATE] = d.scheduled;
      v[HV_F_REF_COMPLETED_DATE] = d.completed;
      v[HV_F_REF_CLOSED_DATE] = d.closed;
      if (!v[HV_F_RECORD_ID])
        v[HV_F_RECORD_ID] = r->referral_id;
      if (!rc)
        rc = ex__row(x, v, b, req, stats, warn, err);
      cJSON_Delete(task);
      cJSON_Delete(data);
    }
    for (size_t i = 0; i < n; i++)
      store_referral_release(&page[i]);
    if (rc || n < EX__PAGE)
      return rc;
  }
}

static int ex__results(store *st, const hvg_export_req *req, hv_export *x,
                       hvg_buf *b, hvg_export_stats *stats, hvg_err *warn,
                       hvg_err *err) {
  store_result page[EX__PAGE];
  long today;
  if (fhir_date_days(req->today, &today))
    return hvg_err_set(err, HVG_EINVAL, NULL, "today is not YYYY-MM-DD");
  int64_t after = 0;
  for (;;) {
    size_t n = 0;
    int rc = store_result_list(st, req->program->id, req->since_ms, after,
                               EX__PAGE, page, &n, err);
    if (rc)
      return rc;
    for (size_t i = 0; i < n && !rc; i++) {
      const store_result *r = &page[i];
      after = r->id;
      const char *v[HV_F__COUNT] = {0};
      cJSON *data = cJSON_ParseWithLength(r->data, r->data_len);
      ex__fields(data, v);
      /* shared screening: current until its date + the rescreen interval */
      const hv_instrument *in =
          r->instrument
              ? hv_catalog_instrument(req->program->cat, r->instrument)
              : NULL;
      long day;
      char until[11] = "";
      if (in && in->rescreen_days > 0 && r->date &&
          !fhir_date_days(r->date, &day)) {
        ex__date((int64_t)(day + in->rescreen_days) * 86400000, until);
        v[HV_F_SCREEN_COVERS_UNTIL] = until;
        v[HV_F_SCREEN_RESCREEN] =
            today > day + in->rescreen_days ? "yes" : "no";
      }
      rc = ex__row(x, v, b, req, stats, warn, err);
      cJSON_Delete(data);
    }
    for (size_t i = 0; i < n; i++)
      store_result_release(&page[i]);
    if (rc || n < EX__PAGE)
      return rc;
  }
}

int hvg_export_run(store *st, const hvg_export_req *req,
                   hvg_export_stats *stats, hvg_err *warn, hvg_err *err) {
  hvg_export_stats local = {0, 0};
  if (!stats)
    stats = &local;
  memset(stats, 0, sizeof *stats);
  if (!st || !req || !req->program || !req->drain || !req->today)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  hv_rectype t =
      req->what == HVG_EXPORT_RESULTS ? HV_REC_WELLCHILD : HV_REC_REFERRAL;
  const hv_source *src = hv_mapping_source_of_type(req->program->map, t);
  if (!src)
    return hvg_err_set(err, HVG_ENOTFOUND, "mapping",
                       "the mapping of program %s has no source of record "
                       "type %s: add one to describe the layout to export",
                       req->program->id, hv_rectype_name(t));
  hvg_buf b;
  hvg_buf_init(&b, EX__SINK_MAX);
  hv_export *x = NULL;
  int rc = hv_export_new(&x, src, req->format, &b, err);
  if (!rc)
    rc = t == HV_REC_REFERRAL ? ex__referrals(st, req, x, &b, stats, warn, err)
                              : ex__results(st, req, x, &b, stats, warn, err);
  if (!rc)
    rc = req->drain(req->ctx, &b, 1);
  hv_export_free(x);
  hvg_buf_free(&b);
  return rc;
}

/* ---- the coordination report -----------------------------------------------
 */

#define RP__SERVICES 64

/* One service's counts and the days to linkage and completion. */
typedef struct rp__bucket {
  char service[64];
  unsigned long referrals, open, linked, completed, closed;
  long *to_linked, *to_completed; /* days, n = linked / completed kept */
  size_t n_linked, n_completed, cap_linked, cap_completed;
} rp__bucket;

static int rp__push(long **v, size_t *n, size_t *cap, long x) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 64;
    long *nv = realloc(*v, c * sizeof *nv);
    if (!nv)
      return HVG_ENOMEM;
    *v = nv;
    *cap = c;
  }
  (*v)[(*n)++] = x;
  return 0;
}

static int rp__cmp(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return (x > y) - (x < y);
}

/* The median of v[0..n) (sorted here), or -1 when empty. */
static double rp__median(long *v, size_t n) {
  if (!n)
    return -1;
  qsort(v, n, sizeof *v, rp__cmp);
  return n % 2 ? (double)v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

/* Days from the referral date to a loop date ("" -> no sample). */
static int rp__days(const char *from, const char *to, long *d) {
  long a, b;
  if (!from || !to || !*to || fhir_date_days(from, &a) ||
      fhir_date_days(to, &b) || b < a)
    return 0;
  *d = b - a;
  return 1;
}

static rp__bucket *rp__bucket_for(rp__bucket *bk, size_t *n,
                                  const char *service) {
  for (size_t i = 0; i < *n; i++)
    if (!strcmp(bk[i].service, service))
      return &bk[i];
  if (*n == RP__SERVICES)
    return NULL;
  rp__bucket *b = &bk[(*n)++];
  memset(b, 0, sizeof *b);
  snprintf(b->service, sizeof b->service, "%s", service);
  return b;
}

static int rp__count(rp__bucket *b, const ex__dates *d, const char *status,
                     const char *date) {
  b->referrals++;
  int final = hvg_task_status_final(status);
  int done = !strcmp(status, "completed");
  if (d->linked[0] || d->scheduled[0] || done)
    b->linked++;
  if (done)
    b->completed++;
  else if (final)
    b->closed++;
  else if (!d->linked[0] && !d->scheduled[0])
    b->open++;
  long days;
  const char *linked = d->linked[0]      ? d->linked
                       : d->scheduled[0] ? d->scheduled
                                         : d->completed;
  int rc = 0;
  if (rp__days(date, linked, &days))
    rc = rp__push(&b->to_linked, &b->n_linked, &b->cap_linked, days);
  if (!rc && rp__days(date, d->completed, &days))
    rc = rp__push(&b->to_completed, &b->n_completed, &b->cap_completed, days);
  return rc;
}

static int rp__write(hvg_buf *out, int json, rp__bucket *bk, size_t n,
                     const unsigned long *in_status, const char *const *names,
                     size_t n_in, const char *program) {
  int rc = 0;
  if (json) {
    rc = hvg_buf_adds(out, "{\"program\":");
    rc = rc ? rc : hvg_buf_add_json_str(out, program);
    rc = rc ? rc : hvg_buf_adds(out, ",\"referrals\":[");
  } else {
    rc = hvg_buf_printf(out, "%-26s %9s %6s %6s %9s %6s %14s %16s\n", "service",
                        "referrals", "open", "linked", "completed", "closed",
                        "days-to-linked", "days-to-complete");
  }
  for (size_t i = 0; !rc && i < n; i++) {
    rp__bucket *b = &bk[i];
    double ml = rp__median(b->to_linked, b->n_linked);
    double mc = rp__median(b->to_completed, b->n_completed);
    if (json) {
      rc = hvg_buf_printf(out, "%s{\"service\":", i ? "," : "");
      rc = rc ? rc : hvg_buf_add_json_str(out, b->service);
      rc = rc ? rc
              : hvg_buf_printf(out,
                               ",\"referrals\":%lu,\"open\":%lu,\"linked\":%lu,"
                               "\"completed\":%lu,\"closed\":%lu",
                               b->referrals, b->open, b->linked, b->completed,
                               b->closed);
      if (!rc && ml >= 0)
        rc = hvg_buf_printf(out, ",\"median_days_to_linked\":%.1f", ml);
      if (!rc && mc >= 0)
        rc = hvg_buf_printf(out, ",\"median_days_to_completed\":%.1f", mc);
      rc = rc ? rc : hvg_buf_addc(out, '}');
    } else {
      char l[16] = "-", c[16] = "-";
      if (ml >= 0)
        snprintf(l, sizeof l, "%.1f", ml);
      if (mc >= 0)
        snprintf(c, sizeof c, "%.1f", mc);
      rc = hvg_buf_printf(out, "%-26s %9lu %6lu %6lu %9lu %6lu %14s %16s\n",
                          b->service, b->referrals, b->open, b->linked,
                          b->completed, b->closed, l, c);
    }
  }
  if (!rc && json) {
    rc = hvg_buf_adds(out, "],\"from_practices\":{");
    for (size_t i = 0, k = 0; !rc && i < n_in; i++)
      if (in_status[i])
        rc = hvg_buf_printf(out, "%s\"%s\":%lu", k++ ? "," : "", names[i],
                            in_status[i]);
    rc = rc ? rc : hvg_buf_adds(out, "}}\n");
  } else if (!rc) {
    rc = hvg_buf_adds(out, "referrals from practices:");
    unsigned long total = 0;
    for (size_t i = 0; !rc && i < n_in; i++)
      if (in_status[i]) {
        total += in_status[i];
        rc = hvg_buf_printf(out, " %s %lu", names[i], in_status[i]);
      }
    rc = rc ? rc : hvg_buf_adds(out, total ? "\n" : " none\n");
  }
  return rc;
}

int hvg_export_report(store *st, const hvg_program *prog, int64_t since_ms,
                      int json, hvg_buf *out, hvg_err *err) {
  if (!st || !prog || !out)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  static const char *const hv_names[] = {
      "referred", "linked",          "scheduled", "completed",
      "declined", "family_declined", "withdrawn", "unable_to_reach"};
  const size_t n_hv = sizeof hv_names / sizeof *hv_names;
  unsigned long in_status[8] = {0};
  rp__bucket *bk = calloc(RP__SERVICES, sizeof *bk);
  if (!bk)
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  size_t nb = 0;
  rp__bucket_for(bk, &nb, "(all)");
  store_referral page[EX__PAGE];
  int64_t after = 0;
  int rc = 0;
  for (;;) {
    size_t n = 0;
    if ((rc = store_referral_list(st, prog->id, 0, after, EX__PAGE, page, &n,
                                  err)) != 0)
      break;
    for (size_t i = 0; i < n && !rc; i++) {
      const store_referral *r = &page[i];
      after = r->id;
      if (r->direction && !strcmp(r->direction, "inbound")) {
        for (size_t k = 0; k < n_hv; k++)
          if (r->hv_status && !strcmp(r->hv_status, hv_names[k]))
            in_status[k]++;
        continue;
      }
      if (!r->partner) /* never sent: no loop to close */
        continue;
      cJSON *data =
          r->data ? cJSON_ParseWithLength(r->data, r->data_len) : NULL;
      const cJSON *dt = cJSON_GetObjectItemCaseSensitive(data, "referral.date");
      const cJSON *sv =
          cJSON_GetObjectItemCaseSensitive(data, "referral.service_type");
      const char *date = cJSON_IsString(dt) ? dt->valuestring : NULL;
      long day;
      if (since_ms && (!date || fhir_date_days(date, &day) ||
                       (int64_t)day * 86400000 < since_ms)) {
        cJSON_Delete(data);
        continue;
      }
      ex__dates d;
      rc = ex__referral_dates(st, r, &d, err);
      rp__bucket *b = rp__bucket_for(
          bk, &nb, cJSON_IsString(sv) ? sv->valuestring : "(unknown)");
      if (!rc)
        rc = rp__count(&bk[0], &d, r->status, date);
      if (!rc && b)
        rc = rp__count(b, &d, r->status, date);
      if (rc == HVG_ENOMEM)
        hvg_err_set(err, rc, NULL, NULL);
      cJSON_Delete(data);
    }
    for (size_t i = 0; i < n; i++)
      store_referral_release(&page[i]);
    if (rc || n < EX__PAGE)
      break;
  }
  if (!rc && (rc = rp__write(out, json, bk, nb, in_status, hv_names, n_hv,
                             prog->id)) != 0)
    hvg_err_set(err, rc, NULL, "the report does not fit");
  for (size_t i = 0; i < nb; i++) {
    free(bk[i].to_linked);
    free(bk[i].to_completed);
  }
  free(bk);
  return rc;
}
