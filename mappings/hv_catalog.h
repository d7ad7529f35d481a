/* hv_catalog — instrument and referral-service catalogues (data files in
 * conf/catalog/, schemas in conf/schema/): codes, subjects, score ranges,
 * positive cutoffs, age intervals, sensitivity and security labels.
 * Adding an instrument or a service is a data change, never a code change. */
#ifndef HV_CATALOG_H
#define HV_CATALOG_H

#include "fhir_build.h"
#include "hvg_arena.h"
#include "hvg_buf.h"

#include <stddef.h>

typedef enum hv_subject { HV_SUBJ_CHILD = 0, HV_SUBJ_CAREGIVER } hv_subject;

typedef enum hv_rule {
  HV_RULE_NONE = 0,
  HV_RULE_TOTAL_AT_LEAST,          /* positive when total >= value */
  HV_RULE_ANY_DOMAIN_BELOW_CUTOFF, /* ASQ-3: any domain below its cutoff */
  HV_RULE_TOTAL_AT_LEAST_INTERVAL  /* ASQ:SE-2: total >= interval cutoff */
} hv_rule;

#define HV_MAX_DOMAINS 5

typedef struct hv_interval {
  int months;
  long min_age_days, max_age_days; /* administration window; -1 unknown */
  int has_cutoffs;
  double cutoffs[HV_MAX_DOMAINS]; /* domain order of the instrument */
  int has_total_cutoff;
  double cutoff_total;
  int has_max;
  double score_max;
} hv_interval;

typedef struct hv_domain {
  const char *id, *name;
  fhir_coding code;
} hv_domain;

typedef struct hv_instrument {
  const char *id, *name;
  hv_subject subject;
  fhir_coding code;
  int has_panel;
  fhir_coding panel;
  int has_score, score_integer;
  double score_min, score_max;
  hv_rule rule;
  double cutoff; /* HV_RULE_TOTAL_AT_LEAST */
  long rescreen_days;
  fhir_concept *categories; /* each of one coding */
  size_t n_categories;
  const char *sensitivity; /* NULL, "mental-health", ... */
  fhir_coding *security;
  size_t n_security;
  hv_domain domains[HV_MAX_DOMAINS];
  size_t n_domains;
  hv_interval *intervals;
  size_t n_intervals;
} hv_instrument;

typedef struct hv_service {
  const char *id, *name;
  fhir_coding code;
  int has_category;
  fhir_coding category;
  hv_subject subject;
  const char *sensitivity;
} hv_service;

typedef struct hv_catalog {
  hvg_arena arena; /* owns every string and array below */
  const char *instrument_system, *service_system;
  hv_instrument *instruments;
  size_t n_instruments;
  hv_service *services;
  size_t n_services;
} hv_catalog;

/* Load both files. On success returns 0 and *out (free with
 * hv_catalog_free). On error returns HVG_ENOINPUT / HVG_ECONFIG / HVG_ENOMEM,
 * *out is NULL, and every problem found is appended to `diag` as
 * "FILE:LINE: /json/pointer: message\n" lines (diag may be NULL). */
int hv_catalog_load(hv_catalog **out, const char *instruments_path,
                    const char *services_path, hvg_buf *diag);

void hv_catalog_free(hv_catalog *c);

/* Case-insensitive lookups by canonical id; NULL when unknown. */
const hv_instrument *hv_catalog_instrument(const hv_catalog *c,
                                           const char *id);
const hv_service *hv_catalog_service(const hv_catalog *c, const char *id);

/* The interval of an instrument for `months` (exact match), or the one whose
 * administration window holds `age_days` when months < 0; NULL if none. */
const hv_interval *hv_instrument_interval(const hv_instrument *in, int months,
                                          long age_days);

#endif
