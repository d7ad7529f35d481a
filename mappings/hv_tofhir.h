/* hv_tofhir — canonical record -> one FHIR R4 transaction Bundle.
 *
 * The one place where home visiting meets FHIR, shared by every source
 * layout: a screening becomes an Observation (plus the Patients,
 * RelatedPerson, Practitioner and Organization it refers to); a referral a
 * ServiceRequest plus a Task (status requested, focus = the ServiceRequest,
 * owner = the receiving Organization); a consent a Consent. Patterns follow
 * US Core screening assessments and Gravity SDOH Clinical Care (see
 * docs/fhir-mapping.md). Every resource carries an identifier from the
 * program's identifier base; entry ids are urn:uuid derived from it and
 * creates are conditional on it, so a record sent twice makes nothing new. */
#ifndef HV_TOFHIR_H
#define HV_TOFHIR_H

#include "fhir_uuid.h"
#include "fhir_writer.h"
#include "hv_mapper.h"

typedef struct hv__tofhir_memo hv__tofhir_memo;

/* Not thread-safe (the SHA-1 context and the caches below change with every
 * Bundle): one per thread. */
typedef struct hv_tofhir {
  const hv_mapping *map;
  const hv_catalog *cat;
  hvg_arena arena; /* identifier systems below */
  fhir_uuid_gen *uuid; /* owned */
  hv__tofhir_memo *memo; /* owned: entries of repeating inputs (.c) */
  const char *sys_child, *sys_caregiver, *sys_home_visitor, *sys_screening,
      *sys_referral, *sys_task, *sys_consent, *sys_org, *sys_program;
} hv_tofhir;

/* Prepare identifier systems. Returns 0 or HVG_ENOMEM (t unusable). */
int hv_tofhir_init(hv_tofhir *t, const hv_mapping *m, const hv_catalog *cat);
void hv_tofhir_free(hv_tofhir *t);

/* Write the Bundle of an accepted record (res->rejected == 0). `a` is a
 * scratch arena for this record. On error returns HVG_E* with err filled;
 * the writer is then left mid-document: the caller truncates its buffer to
 * where the Bundle began and re-initialises the writer. */
int hv_tofhir_bundle(const hv_tofhir *t, fhir_writer *w, const hv_result *res,
                     hvg_arena *a, hvg_err *err);

/* The Task status a program's referral status asks for, with its
 * statusReason text in *reason (may be NULL): family_declined and
 * withdrawn -> "cancelled", unable_to_reach -> "failed". NULL for the rest:
 * referred is the initial "requested"; linked, scheduled, completed and
 * declined are the receiver's to set, so the program's record of them
 * does not move the Task. */
const char *hv_task_status_for(const char *hv_status, const char **reason);

/* 1 when id is a 10-digit NPI with a valid check digit (Luhn over the
 * "80840" prefix). */
int hv_is_npi(const char *id);

#endif
