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
      store_transition t[EX__HISTORY];
      size_t nt = 0;
      void *mem = NULL;
      rc = store_referral_history(st, r->program, r->referral_id, t,
                                  EX__HISTORY, &nt, &mem, err);
      ex__dates d;
      ex__history(t, rc ? 0 : nt, &d);
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
      store_referral_history_free(mem);
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
