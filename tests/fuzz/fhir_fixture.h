/* The FHIR endpoint as the daemon serves it, without a socket: shared by
 * the unit test of the API (tests/unit/test_fhir_api.c) and its fuzzer
 * (fuzz_fhir_requests.c).
 *
 *  - the example configuration (conf/hvgate.json) rewritten into a
 *    temporary file with an "inbound" credential for each partner (bearer
 *    tokens FX_TOKEN_PEDS / FX_TOKEN_EI, and a client certificate hash for
 *    county-ei: fx_cert_ei), loaded by hvg_config_load;
 *  - a ":memory:" store seeded the way intake does it: every referral of
 *    tests/data/program-export/referrals.csv mapped by the real mapping
 *    (hvg_run, hv_tofhir) and tracked with hvg_fsrv_track_referral for the
 *    partner hvg_route picks, so the gateway hosts their Tasks and
 *    ServiceRequests (ids: the urn:uuid of the Bundle entries, which are
 *    derived from the identifiers, hence the same in every run);
 *  - an hvg_httpd (not started) with the endpoint registered by
 *    hvg_fhir_http_new, served through hvg_httpd_dispatch.
 * Nothing here prints except a reason when the fixture cannot be built. */
#ifndef HVG_FUZZ_FHIR_FIXTURE_H
#define HVG_FUZZ_FHIR_FIXTURE_H

#include "fhir_check.h"
#include "hv_tofhir.h"
#include "hvg_fhir_http.h"
#include "hvg_fsrv.h"
#include "hvg_route.h"
#include "hvg_run.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef HVG_SOURCE_DIR
#error "HVG_SOURCE_DIR must name the source tree"
#endif

#define FX_TOKEN_PEDS "riverside-peds-inbound-token"
#define FX_TOKEN_EI "county-ei-inbound-token"
#define FX_CERT_EI_DER "county-ei client certificate (stand-in for DER)"
#define FX_PARTNER_BASE "http://127.0.0.1:8103/fhir/R4"
#define FX_CHILD_SYSTEM "https://sunrise-hv.example.org/fhir/id/child"
#define FX_MAX_TASKS 160

/* A seeded referral whose Task the gateway hosts for a partner. */
typedef struct fx_task {
  char id[37];    /* Task id */
  char sr_id[37]; /* its ServiceRequest */
  char referral_id[32];
  char partner[64];
  char status[24];         /* as hosted after intake */
  char patient[80];        /* Task.for reference, "Patient/..." */
  char owner[80];          /* Task.owner reference */
  char identifier[160];    /* "system|value" of Task.identifier[0] */
  char program_status[32]; /* referral.status of the export */
  char *bundle;            /* the referral's Bundle (JSON), as tracked */
  size_t bundle_len;
} fx_task;

typedef struct fhir_fx {
  hvg_config *cfg;
  store *st;
  hvg_httpd *srv;
  hvg_fhir_http *fh;
  const hvg_partner *peds, *ei;
  hvg_httpd_peer cert_ei; /* county-ei's client certificate */
  fx_task tasks[FX_MAX_TASKS];
  size_t n_tasks;
  size_t n_referrals; /* tracked, hosted or not */
} fhir_fx;

/* SHA-256 of s as lower-case hex. */
static void fx_sha256_hex(const char *s, char hex[65]) {
  unsigned char md[32];
  unsigned int ml = 0;
  EVP_Digest(s, strlen(s), md, &ml, EVP_sha256(), NULL);
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static int fx__add_inbound(cJSON *partner, const char *token,
                           const char *cert) {
  char hex[65];
  cJSON_DeleteItemFromObjectCaseSensitive(partner, "inbound"); /* the demo's */
  cJSON *inb = cJSON_AddObjectToObject(partner, "inbound");
  cJSON *toks = inb ? cJSON_AddArrayToObject(inb, "token_sha256") : NULL;
  if (!toks)
    return -1;
  fx_sha256_hex(token, hex);
  cJSON_AddItemToArray(toks, cJSON_CreateString(hex));
  if (cert) {
    cJSON *certs = cJSON_AddArrayToObject(inb, "client_cert_sha256");
    if (!certs)
      return -1;
    fx_sha256_hex(cert, hex);
    cJSON_AddItemToArray(certs, cJSON_CreateString(hex));
  }
  return 0;
}

/* conf/hvgate.json with inbound credentials, through a temporary file
 * and the loader. 0 or -1. */
static int fx_config_load(hvg_config **out) {
  *out = NULL;
  FILE *f = fopen(HVG_SOURCE_DIR "/conf/hvgate.json", "rb");
  if (!f)
    return -1;
  static char text[1 << 16];
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  cJSON *root = cJSON_Parse(text);
  cJSON *progs = cJSON_GetObjectItemCaseSensitive(root, "programs");
  cJSON *p0 = cJSON_GetArrayItem(progs, 0);
  cJSON *parts = cJSON_GetObjectItemCaseSensitive(root, "partners");
  if (!p0 || !parts) {
    cJSON_Delete(root);
    return -1;
  }
  cJSON_ReplaceItemInObjectCaseSensitive(
      p0, "mapping",
      cJSON_CreateString(HVG_SOURCE_DIR "/conf/mappings/program-export.json"));
  cJSON_DeleteItemFromObjectCaseSensitive(root, "$schema");
  cJSON *pt;
  int rc = 0;
  cJSON_ArrayForEach(pt, parts) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(pt, "id");
    if (cJSON_IsString(id) && !strcmp(id->valuestring, "riverside-peds"))
      rc |= fx__add_inbound(pt, FX_TOKEN_PEDS, NULL);
    else if (cJSON_IsString(id) && !strcmp(id->valuestring, "county-ei"))
      rc |= fx__add_inbound(pt, FX_TOKEN_EI, FX_CERT_EI_DER);
  }
  char *js = rc ? NULL : cJSON_Print(root);
  cJSON_Delete(root);
  if (!js)
    return -1;
  char path[] = "/tmp/hvg-fhir-fixture-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) {
    free(js);
    return -1;
  }
  size_t len = strlen(js);
  int ok = write(fd, js, len) == (ssize_t)len;
  close(fd);
  free(js);
  hvg_buf diag;
  hvg_buf_init(&diag, 1 << 16);
  rc = ok ? hvg_config_load(out, path, 0, &diag, NULL) : -1;
  unlink(path);
  if (rc)
    fprintf(stderr, "fixture config: %s\n", diag.data ? diag.data : "");
  hvg_buf_free(&diag);
  return rc ? -1 : 0;
}

/* ---- seeding ------------------------------------------------------------- */

typedef struct fx__seed {
  fhir_fx *fx;
  hvg_fsrv *fs;
  hv_tofhir tf;
  hvg_arena scratch;
  hvg_buf bundle;
  int failed;
} fx__seed;

static const char *fx__str(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Remembers the hosted Task of a tracked referral (as the store has it). */
static void fx__remember(fhir_fx *fx, const char *bundle, size_t len,
                         const char *referral_id, const char *partner,
                         const char *program_status) {
  cJSON *b = cJSON_ParseWithLength(bundle, len);
  const cJSON *e;
  char task_id[37] = "", sr_id[37] = "";
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(b, "entry")) {
    const char *full = fx__str(e, "fullUrl");
    const char *rt = fx__str(cJSON_GetObjectItemCaseSensitive(e, "resource"),
                             "resourceType");
    if (!full || !rt || strncmp(full, "urn:uuid:", 9) || strlen(full) != 45)
      continue;
    if (!strcmp(rt, "Task"))
      memcpy(task_id, full + 9, 37);
    else if (!strcmp(rt, "ServiceRequest"))
      memcpy(sr_id, full + 9, 37);
  }
  cJSON_Delete(b);
  store_resource row;
  if (!task_id[0] || fx->n_tasks == FX_MAX_TASKS ||
      store_resource_get(fx->st, "Task", task_id, &row, NULL))
    return;
  fx_task *x = &fx->tasks[fx->n_tasks++];
  memset(x, 0, sizeof *x);
  snprintf(x->id, sizeof x->id, "%s", task_id);
  snprintf(x->sr_id, sizeof x->sr_id, "%s", sr_id);
  snprintf(x->referral_id, sizeof x->referral_id, "%s", referral_id);
  snprintf(x->partner, sizeof x->partner, "%s", partner);
  snprintf(x->status, sizeof x->status, "%s", row.status ? row.status : "");
  snprintf(x->patient, sizeof x->patient, "%s", row.patient ? row.patient : "");
  snprintf(x->owner, sizeof x->owner, "%s", row.owner ? row.owner : "");
  snprintf(x->identifier, sizeof x->identifier, "%s",
           row.identifier ? row.identifier : "");
  snprintf(x->program_status, sizeof x->program_status, "%s",
           program_status ? program_status : "");
  x->bundle = malloc(len + 1);
  if (x->bundle) {
    memcpy(x->bundle, bundle, len);
    x->bundle[len] = '\0';
    x->bundle_len = len;
  }
  store_resource_release(&row);
}

/* hvg_run's accept: the record's Bundle, routed and tracked. */
static int fx__accept(void *ctx, const hv_result *res) {
  fx__seed *sd = ctx;
  if (res->rec.type != HV_REC_REFERRAL)
    return 0;
  hvg_err err;
  hvg_err_clear(&err);
  fhir_writer w;
  hvg_buf_reset(&sd->bundle);
  hvg_arena_reset(&sd->scratch);
  fhir_w_init(&w, &sd->bundle, FHIR_JSON, 0);
  if (hv_tofhir_bundle(&sd->tf, &w, res, &sd->scratch, &err) ||
      fhir_w_finish(&w)) {
    fprintf(stderr, "fixture: a referral Bundle failed: %s\n", err.msg);
    sd->failed = 1;
    return 2;
  }
  hvg_route route;
  hvg_route_record(sd->fx->cfg, res, &route);
  const hvg_partner *to =
      route.verdict == HVG_ROUTE_SEND ? route.partner : NULL;
  const char *rid = res->rec.v[HV_F_RECORD_ID];
  char data[256];
  snprintf(data, sizeof data,
           "{\"referral.direction\":\"outbound\",\"record_id\":\"%.64s\"}",
           rid);
  hvg_fsrv_referral ref = {&sd->fx->cfg->programs[0],
                           rid,
                           to,
                           sd->bundle.data,
                           sd->bundle.len,
                           data,
                           strlen(data),
                           res->rec.v[HV_F_REF_STATUS]};
  char warn[400];
  int rc = hvg_fsrv_track_referral(sd->fs, &ref, 1780000000000LL, warn,
                                   sizeof warn, &err);
  if (rc < 0) {
    fprintf(stderr, "fixture: tracking %s failed: %s\n", rid, err.msg);
    sd->failed = 1;
    return 2;
  }
  sd->fx->n_referrals++;
  if (to)
    fx__remember(sd->fx, sd->bundle.data, sd->bundle.len, rid, to->id,
                 res->rec.v[HV_F_REF_STATUS]);
  return 0;
}

static void fx_close(fhir_fx *fx) {
  for (size_t i = 0; i < fx->n_tasks; i++)
    free(fx->tasks[i].bundle);
  hvg_httpd_free(fx->srv);
  hvg_fhir_http_free(fx->fh);
  store_close(fx->st);
  memset(fx, 0, sizeof *fx);
}

/* Store, seed and server over cfg (loaded by fx_config_load). 0 or -1. */
static int fx_open(fhir_fx *fx, hvg_config *cfg) {
  memset(fx, 0, sizeof *fx);
  fx->cfg = cfg;
  fx->peds = hvg_config_partner(cfg, "riverside-peds");
  fx->ei = hvg_config_partner(cfg, "county-ei");
  fx_sha256_hex(FX_CERT_EI_DER, fx->cert_ei.sha256);
  snprintf(fx->cert_ei.cn, sizeof fx->cert_ei.cn, "county-ei");
  hvg_err err;
  hvg_err_clear(&err);
  if (!fx->peds || !fx->ei || store_open(&fx->st, ":memory:", NULL, &err))
    return -1;
  fx__seed sd;
  memset(&sd, 0, sizeof sd);
  sd.fx = fx;
  hvg_buf_init(&sd.bundle, 1 << 20);
  hvg_arena_init(&sd.scratch, 1 << 20);
  int ok = !hvg_fsrv_new(&sd.fs, cfg, fx->st, &err) &&
           !hv_tofhir_init(&sd.tf, cfg->programs[0].map, cfg->programs[0].cat);
  if (ok) {
    long today = 0;
    fhir_date_days("2026-12-01", &today);
    FILE *quiet = fopen("/dev/null", "w");
    hvg_run run = {cfg->programs[0].map,
                   cfg->programs[0].cat,
                   today,
                   NULL,
                   quiet,
                   fx__accept,
                   NULL,
                   &sd,
                   {0, 0, 0, 0}};
    char *paths[] = {HVG_SOURCE_DIR "/tests/data/program-export/referrals.csv"};
    int code = hvg_run_files(&run, 1, paths);
    if (quiet)
      fclose(quiet);
    ok = !sd.failed && (code == 0 || code == 65) && fx->n_tasks > 0;
    hv_tofhir_free(&sd.tf);
  }
  hvg_fsrv_free(sd.fs);
  hvg_buf_free(&sd.bundle);
  hvg_arena_free(&sd.scratch);
  if (ok)
    ok = !hvg_httpd_new(&fx->srv, NULL, &err) &&
         !hvg_fhir_http_new(&fx->fh, cfg, fx->st, fx->srv, &err);
  if (!ok) {
    fprintf(stderr, "fixture: %s\n", err.msg);
    fx_close(fx);
    return -1;
  }
  return 0;
}

/* The first seeded Task of partner (with status, when not NULL). */
static inline const fx_task *fx_task_of(const fhir_fx *fx, const char *partner,
                                        const char *status) {
  for (size_t i = 0; i < fx->n_tasks; i++)
    if (!strcmp(fx->tasks[i].partner, partner) &&
        (!status || !strcmp(fx->tasks[i].status, status)))
      return &fx->tasks[i];
  return NULL;
}

#endif
