/* fhir_build — builders for the FHIR R4 datatypes and resources the gateway
 * emits, written through a fhir_writer (JSON or XML) in specification order.
 *
 * Each resource builder takes a plain C description, checks it first
 * (required elements, required-binding codes, date formats) and only then
 * writes. Failure contract of every fhir_*_write: on a check failure returns
 * HVG_EMISSING / HVG_EFORMAT / HVG_EUNKNOWN with err->field naming the FHIR
 * element ("Observation.status") and writes NOTHING; writer failures (size
 * cap, memory) return the writer's sticky error. Strings are borrowed, never
 * freed. NULL or "" means absent. fhir/ knows nothing of home visiting. */
#ifndef FHIR_BUILD_H
#define FHIR_BUILD_H

#include "fhir_writer.h"

#include <stddef.h>

/* ---- datatypes -------------------------------------------------------- */

typedef struct fhir_coding {
  const char *system, *code, *display;
} fhir_coding;

typedef struct fhir_concept {
  const fhir_coding *coding; /* n_coding items */
  size_t n_coding;
  const char *text;
} fhir_concept;

typedef struct fhir_identifier {
  const char *system, *value;
} fhir_identifier;

/* A reference by URL (reference), by identifier (logical), or both. */
typedef struct fhir_ref {
  const char *reference;
  const char *type;
  const fhir_identifier *identifier;
  const char *display;
} fhir_ref;

typedef struct fhir_period {
  const char *start, *end;
} fhir_period;

typedef struct fhir_meta {
  const char *const *profile; /* NULL-terminated list, or NULL */
  const fhir_coding *security;
  size_t n_security;
} fhir_meta;

void fhir_b_coding(fhir_writer *w, const char *name, const fhir_coding *c);
void fhir_b_concept(fhir_writer *w, const char *name, const fhir_concept *c);
/* A concept of exactly one coding (the common case). */
void fhir_b_concept1(fhir_writer *w, const char *name, const char *system,
                     const char *code, const char *display);
void fhir_b_identifier(fhir_writer *w, const char *name,
                       const fhir_identifier *id);
void fhir_b_reference(fhir_writer *w, const char *name, const fhir_ref *r);
void fhir_b_period(fhir_writer *w, const char *name, const fhir_period *p);
void fhir_b_meta(fhir_writer *w, const fhir_meta *m);
/* A one-item array of identifier (the common case). */
void fhir_b_identifier1(fhir_writer *w, const fhir_identifier *id);

/* ---- resources -------------------------------------------------------- */

typedef struct fhir_person_name {
  const char *family, *given; /* one given name */
} fhir_person_name;

typedef struct fhir_patient {
  const fhir_meta *meta;
  const fhir_identifier *identifier; /* required */
  const fhir_person_name *name;
  const char *phone;
  const char *gender;     /* male | female | other | unknown */
  const char *birth_date; /* date */
  const fhir_ref *general_practitioner;
} fhir_patient;
int fhir_patient_write(fhir_writer *w, const fhir_patient *p, hvg_err *err);

typedef struct fhir_related_person {
  const fhir_identifier *identifier; /* required */
  const fhir_ref *patient;           /* required */
  const fhir_concept *relationship;
  const fhir_person_name *name;
  const char *phone;
  const char *gender, *birth_date;
} fhir_related_person;
int fhir_related_person_write(fhir_writer *w, const fhir_related_person *p,
                              hvg_err *err);

typedef struct fhir_organization {
  const fhir_identifier *identifier; /* required */
  const char *name;
} fhir_organization;
int fhir_organization_write(fhir_writer *w, const fhir_organization *o,
                            hvg_err *err);

typedef struct fhir_practitioner {
  const fhir_identifier *identifier; /* required */
  const fhir_person_name *name;
} fhir_practitioner;
int fhir_practitioner_write(fhir_writer *w, const fhir_practitioner *p,
                            hvg_err *err);

typedef struct fhir_obs_component {
  const fhir_concept *code; /* required */
  const char *value_integer; /* integer text, or */
  const char *value_decimal; /* decimal text with unit: */
  const char *unit, *unit_system, *unit_code;
  const fhir_concept *interpretation;
} fhir_obs_component;

typedef struct fhir_observation {
  const fhir_meta *meta;
  const fhir_identifier *identifier;
  const char *status; /* required, ObservationStatus */
  const fhir_concept *category;
  size_t n_category;
  const fhir_concept *code; /* required */
  const fhir_ref *subject;  /* required */
  const char *effective;    /* dateTime */
  const fhir_ref *performer;
  const char *value_integer; /* one of these value forms, or none */
  const char *value_decimal;
  const fhir_concept *value_concept;
  const fhir_concept *interpretation;
  const char *note;
  const fhir_obs_component *component;
  size_t n_component;
} fhir_observation;
int fhir_observation_write(fhir_writer *w, const fhir_observation *o,
                           hvg_err *err);

typedef struct fhir_qr_item {
  const char *link_id; /* required */
  const char *text;
  const char *answer_string; /* one answer form, or none */
  const char *answer_integer;
  const fhir_coding *answer_coding;
  const struct fhir_qr_item *item; /* nested items */
  size_t n_item;
} fhir_qr_item;

typedef struct fhir_questionnaire_response {
  const fhir_meta *meta;
  const fhir_identifier *identifier;
  const char *questionnaire; /* canonical */
  const char *status;        /* required, QuestionnaireResponseStatus */
  const fhir_ref *subject;
  const char *authored; /* dateTime */
  const fhir_ref *author;
  const fhir_qr_item *item;
  size_t n_item;
} fhir_questionnaire_response;
int fhir_questionnaire_response_write(fhir_writer *w,
                                      const fhir_questionnaire_response *q,
                                      hvg_err *err);

typedef struct fhir_service_request {
  const fhir_meta *meta;
  const fhir_identifier *identifier;
  const char *status; /* required, RequestStatus */
  const char *intent; /* required, RequestIntent */
  const fhir_concept *category;
  size_t n_category;
  const char *priority; /* RequestPriority */
  const fhir_concept *code;
  const fhir_ref *subject; /* required */
  const char *authored_on; /* dateTime */
  const fhir_ref *requester;
  const fhir_ref *performer;
  const fhir_ref *reason_reference;
  const fhir_ref *supporting_info;
  const char *note;
} fhir_service_request;
int fhir_service_request_write(fhir_writer *w, const fhir_service_request *s,
                               hvg_err *err);

typedef struct fhir_task_output {
  const fhir_concept *type; /* required */
  const char *value_string;
  const fhir_ref *value_reference;
} fhir_task_output;

typedef struct fhir_task {
  const fhir_meta *meta;
  const fhir_identifier *identifier;
  const char *status; /* required, TaskStatus */
  const char *status_reason; /* text */
  const char *business_status; /* text */
  const char *intent; /* required, TaskIntent */
  const char *priority;
  const fhir_concept *code;
  const fhir_ref *focus;
  const fhir_ref *for_;
  const char *authored_on;
  const char *last_modified;
  const fhir_ref *requester;
  const fhir_ref *owner;
  const fhir_ref *reason_reference;
  const char *note;
  const fhir_task_output *output;
  size_t n_output;
} fhir_task;
int fhir_task_write(fhir_writer *w, const fhir_task *t, hvg_err *err);

typedef struct fhir_consent {
  const fhir_meta *meta;
  const fhir_identifier *identifier;
  const char *status; /* required, ConsentState */
  const fhir_concept *scope;    /* required */
  const fhir_concept *category; /* required (one) */
  const fhir_ref *patient;
  const char *date_time;
  const fhir_ref *performer;
  const fhir_ref *organization;
  const fhir_concept *policy_rule;
  /* one provision */
  const char *provision_type; /* deny | permit */
  const fhir_period *provision_period;
  const fhir_concept *actor_role;
  const fhir_ref *actor;
  const fhir_concept *action;
  const fhir_coding *purpose;
  const char *const *classes; /* NULL-terminated resource type names */
} fhir_consent;
int fhir_consent_write(fhir_writer *w, const fhir_consent *c, hvg_err *err);

typedef struct fhir_oo_issue {
  const char *severity; /* fatal | error | warning | information */
  const char *code;     /* IssueType */
  const char *diagnostics;
  const char *expression; /* FHIRPath of the element, or NULL */
} fhir_oo_issue;
int fhir_operation_outcome_write(fhir_writer *w, const fhir_oo_issue *issue,
                                 size_t n, hvg_err *err);

/* ---- Bundle ------------------------------------------------------------
 * fhir_bundle_begin, then for each entry fhir_bundle_entry_begin, the
 * resource's own *_write (it writes the "resource" element), and
 * fhir_bundle_entry_end with the request; then fhir_bundle_end. */
typedef struct fhir_bundle_request {
  const char *method; /* required: GET | POST | PUT | DELETE | PATCH */
  const char *url;    /* required */
  const char *if_none_exist;
  const char *if_match;
} fhir_bundle_request;

/* type: transaction | batch | collection | searchset | ... ; id, timestamp
 * optional. Returns 0 or HVG_EUNKNOWN (type) with nothing written. */
int fhir_bundle_begin(fhir_writer *w, const char *id, const char *type,
                      const char *timestamp, hvg_err *err);
void fhir_bundle_entry_begin(fhir_writer *w, const char *full_url);
/* req may be NULL (collection). Returns 0 or HVG_EMISSING/HVG_EUNKNOWN;
 * the entry is closed either way so the writer stays balanced. */
int fhir_bundle_entry_end(fhir_writer *w, const fhir_bundle_request *req,
                          hvg_err *err);
void fhir_bundle_end(fhir_writer *w);

/* Required-binding value sets used by the builders (NULL-terminated). */
extern const char *const fhir_vs_observation_status[];
extern const char *const fhir_vs_request_status[];
extern const char *const fhir_vs_request_intent[];
extern const char *const fhir_vs_request_priority[];
extern const char *const fhir_vs_task_status[];
extern const char *const fhir_vs_task_intent[];
extern const char *const fhir_vs_consent_state[];
extern const char *const fhir_vs_administrative_gender[];
extern const char *const fhir_vs_issue_severity[];
extern const char *const fhir_vs_issue_type[];
extern const char *const fhir_vs_bundle_type[];
extern const char *const fhir_vs_http_verb[];
extern const char *const fhir_vs_qr_status[];

#endif
