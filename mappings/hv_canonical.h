/* hv_canonical — the canonical record: the one vocabulary between every
 * program's export layout and FHIR (design.md, "Canonical record").
 *
 * A mapping file maps source columns/paths onto these field names; the FHIR
 * builder reads only these. The list below is the single definition: names,
 * value types, which record types use a field, and whether the value is
 * personal (never echoed in messages or logs). */
#ifndef HV_CANONICAL_H
#define HV_CANONICAL_H

#include <stddef.h>

typedef enum hv_rectype {
  HV_REC_SCREENING = 0,
  HV_REC_REFERRAL,
  HV_REC_CONSENT,
  HV_REC_WELLCHILD,
  HV_REC__COUNT
} hv_rectype;

/* Value kinds: what the mapping engine normalises a value to. */
typedef enum hv_ftype {
  HV_T_STR = 0, /* free text */
  HV_T_ID,      /* identifier: no spaces at ends, <= 64 chars */
  HV_T_DATE,    /* normalised to YYYY-MM-DD */
  HV_T_NUM,     /* decimal number, normalised text */
  HV_T_CODE,    /* a canonical code (after value maps), checked per field */
  HV_T_LIST     /* comma separated canonical codes */
} hv_ftype;

#define HV_S (1u << HV_REC_SCREENING)
#define HV_R (1u << HV_REC_REFERRAL)
#define HV_C (1u << HV_REC_CONSENT)
#define HV_W (1u << HV_REC_WELLCHILD)
#define HV_ALL (HV_S | HV_R | HV_C | HV_W)
#define HV_PHI 0x100u /* personal: never echo the value */
/* Export only: values the gateway carries back to the program (referral
 * status from practices, well-child results). A mapping may name such a
 * field only under "export_fields", never under "fields": nothing in a
 * program's own export fills it. */
#define HV_OUT 0x200u

/* XX(enum suffix, "canonical.name", type, flags) */
#define HV_FIELD_MAP(XX)                                                      \
  XX(RECORD_ID, "record_id", HV_T_ID, HV_ALL)                                 \
  XX(FAMILY_ID, "family_id", HV_T_ID, HV_ALL)                                 \
  XX(CHILD_ID, "child.id", HV_T_ID, HV_S | HV_R | HV_W)                       \
  XX(CHILD_GIVEN, "child.given", HV_T_STR, HV_S | HV_R | HV_W | HV_PHI)       \
  XX(CHILD_FAMILY, "child.family", HV_T_STR, HV_S | HV_R | HV_W | HV_PHI)     \
  XX(CHILD_BIRTH_DATE, "child.birth_date", HV_T_DATE,                         \
     HV_S | HV_R | HV_W | HV_PHI)                                             \
  XX(CHILD_SEX, "child.sex", HV_T_CODE, HV_S | HV_R | HV_W)                   \
  XX(CAREGIVER_ID, "caregiver.id", HV_T_ID, HV_ALL)                           \
  XX(CAREGIVER_GIVEN, "caregiver.given", HV_T_STR, HV_ALL | HV_PHI)           \
  XX(CAREGIVER_FAMILY, "caregiver.family", HV_T_STR, HV_ALL | HV_PHI)         \
  XX(CAREGIVER_BIRTH_DATE, "caregiver.birth_date", HV_T_DATE,                 \
     HV_ALL | HV_PHI)                                                         \
  XX(CAREGIVER_SEX, "caregiver.sex", HV_T_CODE, HV_ALL)                       \
  XX(CAREGIVER_PHONE, "caregiver.phone", HV_T_STR, HV_ALL | HV_PHI)           \
  XX(CAREGIVER_RELATIONSHIP, "caregiver.relationship", HV_T_CODE, HV_ALL)     \
  XX(PRACTICE_NPI, "practice.npi", HV_T_ID, HV_S | HV_R | HV_W)               \
  XX(PRACTICE_NAME, "practice.name", HV_T_STR, HV_S | HV_R | HV_W)            \
  XX(HOME_VISITOR_ID, "home_visitor.id", HV_T_ID, HV_S | HV_R)                \
  XX(SCREEN_INSTRUMENT, "screening.instrument", HV_T_CODE, HV_S | HV_W)       \
  XX(SCREEN_DATE, "screening.date", HV_T_DATE, HV_S | HV_W)                   \
  XX(SCREEN_SUBJECT, "screening.subject", HV_T_CODE, HV_S | HV_W)             \
  XX(SCREEN_TOTAL, "screening.total_score", HV_T_NUM, HV_S | HV_W)            \
  XX(SCREEN_INTERVAL, "screening.age_interval_months", HV_T_NUM, HV_S | HV_W) \
  XX(SCREEN_D1, "screening.domain.communication", HV_T_NUM, HV_S | HV_W)      \
  XX(SCREEN_D2, "screening.domain.gross_motor", HV_T_NUM, HV_S | HV_W)        \
  XX(SCREEN_D3, "screening.domain.fine_motor", HV_T_NUM, HV_S | HV_W)         \
  XX(SCREEN_D4, "screening.domain.problem_solving", HV_T_NUM, HV_S | HV_W)    \
  XX(SCREEN_D5, "screening.domain.personal_social", HV_T_NUM, HV_S | HV_W)    \
  XX(SCREEN_RESULT, "screening.result", HV_T_CODE, HV_S | HV_W)               \
  /* well-child results: screening.date + the instrument's rescreen          \
   * interval, and whether a rescreen is due as of the export day */         \
  XX(SCREEN_COVERS_UNTIL, "screening.covers_until", HV_T_DATE,                \
     HV_S | HV_W | HV_OUT)                                                    \
  XX(SCREEN_RESCREEN, "screening.rescreen_needed", HV_T_CODE,                 \
     HV_S | HV_W | HV_OUT)                                                    \
  XX(REF_SERVICE, "referral.service_type", HV_T_CODE, HV_R)                   \
  XX(REF_DATE, "referral.date", HV_T_DATE, HV_R)                              \
  XX(REF_REASON_ID, "referral.reason_record_id", HV_T_ID, HV_R)               \
  XX(REF_TO_ORG_ID, "referral.to_org_id", HV_T_ID, HV_R)                      \
  XX(REF_TO_ORG_NAME, "referral.to_org_name", HV_T_STR, HV_R)                 \
  XX(REF_URGENCY, "referral.urgency", HV_T_CODE, HV_R)                        \
  XX(REF_STATUS, "referral.status", HV_T_CODE, HV_R)                          \
  XX(REF_STATUS_DATE, "referral.status_date", HV_T_DATE, HV_R)                \
  XX(REF_NOTES, "referral.notes", HV_T_STR, HV_R | HV_PHI)                    \
  /* referral loop as the gateway knows it (FHIR Task), for the program */   \
  XX(REF_DIRECTION, "referral.direction", HV_T_CODE, HV_R | HV_OUT)           \
  XX(REF_FROM_ORG_ID, "referral.from_org_id", HV_T_ID, HV_R | HV_OUT)         \
  XX(REF_FROM_ORG_NAME, "referral.from_org_name", HV_T_STR, HV_R | HV_OUT)    \
  XX(REF_TASK_STATUS, "referral.task_status", HV_T_CODE, HV_R | HV_OUT)       \
  XX(REF_BUSINESS_STATUS, "referral.business_status", HV_T_STR,               \
     HV_R | HV_OUT)                                                           \
  XX(REF_STATUS_REASON, "referral.status_reason", HV_T_STR,                   \
     HV_R | HV_PHI | HV_OUT)                                                  \
  XX(REF_OUTCOME, "referral.outcome", HV_T_STR, HV_R | HV_PHI | HV_OUT)       \
  XX(REF_SENT_DATE, "referral.sent_date", HV_T_DATE, HV_R | HV_OUT)           \
  XX(REF_RECEIVED_DATE, "referral.received_date", HV_T_DATE, HV_R | HV_OUT)   \
  XX(REF_LINKED_DATE, "referral.linked_date", HV_T_DATE, HV_R | HV_OUT)       \
  XX(REF_SCHEDULED_DATE, "referral.scheduled_date", HV_T_DATE, HV_R | HV_OUT) \
  XX(REF_COMPLETED_DATE, "referral.completed_date", HV_T_DATE, HV_R | HV_OUT) \
  XX(REF_CLOSED_DATE, "referral.closed_date", HV_T_DATE, HV_R | HV_OUT)       \
  XX(CONSENT_ORG_ID, "consent.organization_id", HV_T_ID, HV_C)                \
  XX(CONSENT_SCOPE, "consent.scope", HV_T_LIST, HV_C)                         \
  XX(CONSENT_GRANTED, "consent.granted_date", HV_T_DATE, HV_C)                \
  XX(CONSENT_EXPIRES, "consent.expires_date", HV_T_DATE, HV_C)                \
  XX(CONSENT_REVOKED, "consent.revoked_date", HV_T_DATE, HV_C)                \
  XX(WC_VISIT_DATE, "well_child.visit_date", HV_T_DATE, HV_W)

typedef enum hv_field {
#define HV__FIELD_ENUM(id, name, type, flags) HV_F_##id,
  HV_FIELD_MAP(HV__FIELD_ENUM)
#undef HV__FIELD_ENUM
  HV_F__COUNT
} hv_field;

/* The ASQ-3 domain fields, in catalogue order. */
#define HV_F_DOMAIN_FIRST HV_F_SCREEN_D1
#define HV_DOMAIN_COUNT 5

typedef struct hv_field_info {
  const char *name;
  hv_ftype type;
  unsigned flags;
} hv_field_info;

/* Static description of field f; NULL when f is out of range. */
const hv_field_info *hv_field_get(hv_field f);

/* Field by canonical name, or -1 when unknown. */
int hv_field_lookup(const char *name);

/* Record type by name ("screening", ...) or -1; and its name. */
int hv_rectype_lookup(const char *name);
const char *hv_rectype_name(hv_rectype t);

/* Allowed canonical codes for a HV_T_CODE field (NULL-terminated list), or
 * NULL when the catalogue decides (instrument, service type). */
const char *const *hv_field_codes(hv_field f);

/* One canonical record: values by field, all owned by the caller's arena. */
typedef struct hv_record {
  hv_rectype type;
  const char *file;   /* source file name, for messages */
  unsigned long line; /* where the source record starts */
  const char *v[HV_F__COUNT]; /* NULL = absent */
} hv_record;

#endif
