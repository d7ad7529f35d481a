#include "fhir_build.h"

#include "fhir_check.h"

#include <string.h>

const char *const fhir_vs_observation_status[] = {
    "registered", "preliminary", "final", "amended", "corrected",
    "cancelled", "entered-in-error", "unknown", NULL};
const char *const fhir_vs_request_status[] = {
    "draft", "active", "on-hold", "revoked", "completed",
    "entered-in-error", "unknown", NULL};
const char *const fhir_vs_request_intent[] = {
    "proposal", "plan", "directive", "order", "original-order",
    "reflex-order", "filler-order", "instance-order", "option", NULL};
const char *const fhir_vs_request_priority[] = {"routine", "urgent", "asap",
                                                "stat", NULL};
const char *const fhir_vs_task_status[] = {
    "draft", "requested", "received", "accepted", "rejected", "ready",
    "cancelled", "in-progress", "on-hold", "failed", "completed",
    "entered-in-error", NULL};
const char *const fhir_vs_task_intent[] = {
    "unknown", "proposal", "plan", "order", "original-order",
    "reflex-order", "filler-order", "instance-order", "option", NULL};
const char *const fhir_vs_consent_state[] = {
    "draft", "proposed", "active", "rejected", "inactive",
    "entered-in-error", NULL};
const char *const fhir_vs_administrative_gender[] = {"male", "female",
                                                     "other", "unknown", NULL};
const char *const fhir_vs_issue_severity[] = {"fatal", "error", "warning",
                                              "information", NULL};
const char *const fhir_vs_issue_type[] = {
    "invalid", "structure", "required", "value", "invariant", "security",
    "login", "unknown", "expired", "forbidden", "suppressed", "processing",
    "not-supported", "duplicate", "multiple-matches", "not-found", "deleted",
    "too-long", "code-invalid", "extension", "too-costly", "business-rule",
    "conflict", "transient", "lock-error", "no-store", "exception",
    "timeout", "incomplete", "throttled", "informational", NULL};
const char *const fhir_vs_bundle_type[] = {
    "document", "message", "transaction", "transaction-response", "batch",
    "batch-response", "history", "searchset", "collection", NULL};
const char *const fhir_vs_http_verb[] = {"GET", "HEAD", "POST", "PUT",
                                         "DELETE", "PATCH", NULL};
const char *const fhir_vs_qr_status[] = {
    "in-progress", "completed", "amended", "entered-in-error", "stopped",
    NULL};
static const char *const fb__consent_provision_type[] = {"deny", "permit",
                                                         NULL};

/* ---- checks ----------------------------------------------------------- */

static int fb__set(const char *s) { return s && *s; }

#define FB_REQUIRE(cond, field)                                               \
  do {                                                                        \
    if (!(cond))                                                              \
      return hvg_err_set(err, HVG_EMISSING, field, "required element missing"); \
  } while (0)

#define FB_CODE(val, vs, field)                                               \
  do {                                                                        \
    if (fb__set(val) && !fhir_check_in(val, vs))                              \
      return hvg_err_set(err, HVG_EUNKNOWN, field,                            \
                         "'%s' is not in the required value set", val);       \
  } while (0)

#define FB_CHECK(val, fn, field, what)                                        \
  do {                                                                        \
    if (fb__set(val) && !fn(val))                                             \
      return hvg_err_set(err, HVG_EFORMAT, field, "not a valid " what);       \
  } while (0)

static int fb__ident_ok(const fhir_identifier *id) {
  return id && fb__set(id->system) && fb__set(id->value) &&
         fhir_check_uri(id->system);
}

static int fb__ref_ok(const fhir_ref *r) {
  return r && (fb__set(r->reference) ||
               (r->identifier && fb__ident_ok(r->identifier)));
}

static int fb__concept_ok(const fhir_concept *c) {
  if (!c)
    return 0;
  for (size_t i = 0; i < c->n_coding; i++)
    if (!fb__set(c->coding[i].code) || !fhir_check_code(c->coding[i].code) ||
        (c->coding[i].system && !fhir_check_uri(c->coding[i].system)))
      return 0;
  return c->n_coding > 0 || fb__set(c->text);
}

/* Optional reference: absent or resolvable. */
#define FB_REF(r, field)                                                      \
  do {                                                                        \
    if ((r) && !fb__ref_ok(r))                                                \
      return hvg_err_set(err, HVG_EFORMAT, field,                             \
                         "reference needs a URL or an identifier");           \
  } while (0)

#define FB_CONCEPT(c, field)                                                  \
  do {                                                                        \
    if ((c) && !fb__concept_ok(c))                                            \
      return hvg_err_set(err, HVG_EFORMAT, field,                             \
                         "CodeableConcept needs valid codes or text");        \
  } while (0)

#define FB_IDENT(id, field)                                                   \
  do {                                                                        \
    if ((id) && !fb__ident_ok(id))                                            \
      return hvg_err_set(err, HVG_EFORMAT, field,                             \
                         "identifier needs a system URI and a value");        \
  } while (0)

static int fb__is_int(const char *s) {
  if (!s || !*s)
    return 0;
  const char *p = s;
  if (*p == '-')
    p++;
  if (!*p)
    return 0;
  if (*p == '0' && p[1])
    return 0;
  size_t n = 0;
  for (; *p; p++, n++)
    if (*p < '0' || *p > '9')
      return 0;
  return n <= 10; /* fits the FHIR 32-bit integer range check below */
}

/* ---- datatypes -------------------------------------------------------- */

void fhir_b_coding(fhir_writer *w, const char *name, const fhir_coding *c) {
  if (!c)
    return;
  fhir_w_object_begin(w, name);
  fhir_w_string(w, "system", c->system);
  fhir_w_string(w, "code", c->code);
  fhir_w_string(w, "display", c->display);
  fhir_w_object_end(w);
}

void fhir_b_concept(fhir_writer *w, const char *name, const fhir_concept *c) {
  if (!c)
    return;
  fhir_w_object_begin(w, name);
  fhir_w_array_begin(w, "coding");
  for (size_t i = 0; i < c->n_coding; i++)
    fhir_b_coding(w, NULL, &c->coding[i]);
  fhir_w_array_end(w);
  fhir_w_string(w, "text", c->text);
  fhir_w_object_end(w);
}

void fhir_b_concept1(fhir_writer *w, const char *name, const char *system,
                     const char *code, const char *display) {
  fhir_coding c = {system, code, display};
  fhir_concept cc = {&c, 1, NULL};
  fhir_b_concept(w, name, &cc);
}

void fhir_b_identifier(fhir_writer *w, const char *name,
                       const fhir_identifier *id) {
  if (!id)
    return;
  fhir_w_object_begin(w, name);
  fhir_w_string(w, "system", id->system);
  fhir_w_string(w, "value", id->value);
  fhir_w_object_end(w);
}

void fhir_b_identifier1(fhir_writer *w, const fhir_identifier *id) {
  if (!id)
    return;
  fhir_w_array_begin(w, "identifier");
  fhir_b_identifier(w, NULL, id);
  fhir_w_array_end(w);
}

void fhir_b_reference(fhir_writer *w, const char *name, const fhir_ref *r) {
  if (!r)
    return;
  fhir_w_object_begin(w, name);
  fhir_w_string(w, "reference", r->reference);
  fhir_w_string(w, "type", r->type);
  fhir_b_identifier(w, "identifier", r->identifier);
  fhir_w_string(w, "display", r->display);
  fhir_w_object_end(w);
}

void fhir_b_period(fhir_writer *w, const char *name, const fhir_period *p) {
  if (!p)
    return;
  fhir_w_object_begin(w, name);
  fhir_w_string(w, "start", p->start);
  fhir_w_string(w, "end", p->end);
  fhir_w_object_end(w);
}

void fhir_b_meta(fhir_writer *w, const fhir_meta *m) {
  if (!m)
    return;
  fhir_w_object_begin(w, "meta");
  if (m->profile) {
    fhir_w_array_begin(w, "profile");
    for (const char *const *p = m->profile; *p; p++)
      fhir_w_string(w, NULL, *p);
    fhir_w_array_end(w);
  }
  fhir_w_array_begin(w, "security");
  for (size_t i = 0; i < m->n_security; i++)
    fhir_b_coding(w, NULL, &m->security[i]);
  fhir_w_array_end(w);
  fhir_w_object_end(w);
}

static void fb__name(fhir_writer *w, const fhir_person_name *n) {
  if (!n)
    return;
  fhir_w_array_begin(w, "name");
  fhir_w_object_begin(w, NULL);
  fhir_w_string(w, "family", n->family);
  fhir_w_array_begin(w, "given");
  fhir_w_string(w, NULL, n->given);
  fhir_w_array_end(w);
  fhir_w_object_end(w);
  fhir_w_array_end(w);
}

static void fb__phone(fhir_writer *w, const char *phone) {
  if (!fb__set(phone))
    return;
  fhir_w_array_begin(w, "telecom");
  fhir_w_object_begin(w, NULL);
  fhir_w_string(w, "system", "phone");
  fhir_w_string(w, "value", phone);
  fhir_w_object_end(w);
  fhir_w_array_end(w);
}

static void fb__note(fhir_writer *w, const char *text) {
  if (!fb__set(text))
    return;
  fhir_w_array_begin(w, "note");
  fhir_w_object_begin(w, NULL);
  fhir_w_string(w, "text", text);
  fhir_w_object_end(w);
  fhir_w_array_end(w);
}

static void fb__ref_array(fhir_writer *w, const char *name, const fhir_ref *r) {
  if (!r)
    return;
  fhir_w_array_begin(w, name);
  fhir_b_reference(w, NULL, r);
  fhir_w_array_end(w);
}

static void fb__concept_array(fhir_writer *w, const char *name,
                              const fhir_concept *c, size_t n) {
  fhir_w_array_begin(w, name);
  for (size_t i = 0; i < n; i++)
    fhir_b_concept(w, NULL, &c[i]);
  fhir_w_array_end(w);
}

/* The resource is written as Bundle.entry.resource when inside an entry
 * (the writer's top frame is an object), else as a top-level document. */
static void fb__begin(fhir_writer *w, const char *type) {
  fhir_w_resource_begin(w, w->depth ? "resource" : NULL, type);
}

/* ---- resources -------------------------------------------------------- */

int fhir_patient_write(fhir_writer *w, const fhir_patient *p, hvg_err *err) {
  if (!w || !p)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  FB_REQUIRE(p->identifier, "Patient.identifier");
  FB_IDENT(p->identifier, "Patient.identifier");
  FB_CODE(p->gender, fhir_vs_administrative_gender, "Patient.gender");
  FB_CHECK(p->birth_date, fhir_check_date, "Patient.birthDate", "date");
  FB_REF(p->general_practitioner, "Patient.generalPractitioner");
  fb__begin(w, "Patient");
  fhir_b_meta(w, p->meta);
  fhir_b_identifier1(w, p->identifier);
  fb__name(w, p->name);
  fb__phone(w, p->phone);
  fhir_w_string(w, "gender", p->gender);
  fhir_w_string(w, "birthDate", p->birth_date);
  fb__ref_array(w, "generalPractitioner", p->general_practitioner);
  fhir_w_resource_end(w);
  return fhir_w_error(w);
}

int fhir_related_person_write(fhir_writer *w, const fhir_related_person *p,
                              hvg_err *err) {
  if (!w || !p)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  FB_REQUIRE(p->identifier, "RelatedPerson.identifier");
  FB_IDENT(p->identifier, "RelatedPerson.identifier");
  FB_REQUIRE(fb__ref_ok(p->patient), "RelatedPerson.patient");
  FB_CONCEPT(p->relationship, "RelatedPerson.relationship");
  FB_CODE(p->gender, fhir_vs_administrative_gender, "RelatedPerson.gender");
  FB_CHECK(p->birth_date, fhir_check_date, "RelatedPerson.birthDate", "date");
  fb__begin(w, "RelatedPerson");
  fhir_b_identifier1(w, p->identifier);
  fhir_b_reference(w, "patient", p->patient);
  if (p->relationship)
    fb__concept_array(w, "relationship", p->relationship, 1);
  fb__name(w, p->name);
  fb__phone(w, p->phone);
  fhir_w_string(w, "gender", p->gender);
  fhir_w_string(w, "birthDate", p->birth_date);
  fhir_w_resource_end(w);
  return fhir_w_error(w);
}

int fhir_organization_write(fhir_writer *w, const fhir_organization *o,
                            hvg_err *err) {
  if (!w || !o)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  FB_REQUIRE(o->identifier, "Organization.identifier");
  FB_IDENT(o->identifier, "Organization.identifier");
  fb__begin(w, "Organization");
  fhir_b_identifier1(w, o->identifier);
  fhir_w_bool(w, "active", 1);
  fhir_w_string(w, "name", o->name);
  fhir_w_resource_end(w);
  return fhir_w_error(w);
}

int fhir_practitioner_write(fhir_writer *w, const fhir_practitioner *p,
                            hvg_err *err) {
  if (!w || !p)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  FB_REQUIRE(p->identifier, "Practitioner.identifier");
  FB_IDENT(p->identifier, "Practitioner.identifier");
  fb__begin(w, "Practitioner");
  fhir_b_identifier1(w, p->identifier);
  fb__name(w, p->name);
  fhir_w_resource_end(w);
  return fhir_w_error(w);
}

static int fb__check_value(const char *vi, const char *vd, const char *field,
                           hvg_err *err) {
  if (vi && (!fb__is_int(vi)))
    return hvg_err_set(err, HVG_EFORMAT, field, "'%s' is not an integer", vi);
  if (vi) {
    long long v = 0;
    const char *p = vi[0] == '-' ? vi + 1 : vi;
    for (; *p; p++)
      v = v * 10 + (*p - '0');
    if (v > 2147483647LL + (vi[0] == '-'))
      return hvg_err_set(err, HVG_ERANGE, field, "integer out of 32-bit range");
  }
  if (vd) {
    hvg_buf tmp;
    hvg_buf_init(&tmp, 64);
    fhir_writer tw;
    fhir_w_init(&tw, &tmp, FHIR_JSON, 0);
    fhir_w_resource_begin(&tw, NULL, "X");
    fhir_w_number(&tw, "v", vd);
    int bad = fhir_w_error(&tw) == HVG_EFORMAT;
    hvg_buf_free(&tmp);
    if (bad)
      return hvg_err_set(err, HVG_EFORMAT, field, "'%s' is not a decimal", vd);
  }
  return 0;
}

int fhir_observation_write(fhir_writer *w, const fhir_observation *o,
                           hvg_err *err) {
  if (!w || !o)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  FB_IDENT(o->identifier, "Observation.identifier");
  FB_REQUIRE(fb__set(o->status), "Observation.status");
  FB_CODE(o->status, fhir_vs_observation_status, "Observation.status");
  FB_REQUIRE(o->code, "Observation.code");
  FB_CONCEPT(o->code, "Observation.code");
  for (size_t i = 0; i < o->n_category; i++)
    FB_CONCEPT(&o->category[i], "Observation.category");
  FB_REQUIRE(fb__ref_ok(o->subject), "Observation.subject");
  FB_CHECK(o->effective, fhir_check_datetime, "Observation.effectiveDateTime",
           "dateTime");
  FB_REF(o->performer, "Observation.performer");
  int nvalues = (o->value_integer != NULL) + (o->value_decimal != NULL) +
                (o->value_concept != NULL);
  if (nvalues > 1)
    return hvg_err_set(err, HVG_EINVAL, "Observation.value[x]",
                       "more than one value form given");
  int rc = fb__check_value(o->value_integer, o->value_decimal,
                           "Observation.value[x]", err);
  if (rc)
    return rc;
  FB_CONCEPT(o->value_concept, "Observation.valueCodeableConcept");
  FB_CONCEPT(o->interpretation, "Observation.interpretation");
  for (size_t i = 0; i < o->n_component; i++) {
    const fhir_obs_component *c = &o->component[i];
    FB_REQUIRE(c->code, "Observation.component.code");
    FB_CONCEPT(c->code, "Observation.component.code");
    rc = fb__check_value(c->value_integer, c->value_decimal,
                         "Observation.component.value[x]", err);
    if (rc)
      return rc;
  }
  /* us-core-2 / obs-6: no value, no component -> needs dataAbsentReason */
  int absent = nvalues == 0 && o->n_component == 0;

  fb__begin(w, "Observation");
  fhir_b_meta(w, o->meta);
  fhir_b_identifier1(w, o->identifier);
  fhir_w_string(w, "status", o->status);
  fb__concept_array(w, "category", o->category, o->n_category);
  fhir_b_concept(w, "code", o->code);
  fhir_b_reference(w, "subject", o->subject);
  fhir_w_string(w, "effectiveDateTime", o->effective);
  fb__ref_array(w, "performer", o->performer);
  if (o->value_integer)
    fhir_w_number(w, "valueInteger", o->value_integer);
  if (o->value_decimal) {
    fhir_w_object_begin(w, "valueQuantity");
    fhir_w_number(w, "value", o->value_decimal);
    fhir_w_object_end(w);
  }
  fhir_b_concept(w, "valueCodeableConcept", o->value_concept);
  if (absent)
    fhir_b_concept1(w, "dataAbsentReason",
                    "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                    "unknown", "Unknown");
  if (o->interpretation)
    fb__concept_array(w, "interpretation", o->interpretation, 1);
  fb__note(w, o->note);
  fhir_w_array_begin(w, "component");
  for (size_t i = 0; i < o->n_component; i++) {
    const fhir_obs_component *c = &o->component[i];
    fhir_w_object_begin(w, NULL);
    fhir_b_concept(w, "code", c->code);
    if (c->value_integer)
      fhir_w_number(w, "valueInteger", c->value_integer);
    if (c->value_decimal) {
      fhir_w_object_begin(w, "valueQuantity");
      fhir_w_number(w, "value", c->value_decimal);
      fhir_w_string(w, "unit", c->unit);
      fhir_w_string(w, "system", c->unit_system);
      fhir_w_string(w, "code", c->unit_code);
      fhir_w_object_end(w);
    }
    if (!c->value_integer && !c->value_decimal)
      fhir_b_concept1(w, "dataAbsentReason",
                      "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                      "unknown", "Unknown");
    if (c->interpretation)
      fb__concept_array(w, "interpretation", c->interpretation, 1);
    fhir_w_object_end(w);
  }
  fhir_w_array_end(w);
  fhir_w_resource_end(w);
  return fhir_w_error(w);
}

static int fb__qr_items_check(const fhir_qr_item *it, size_t n, int depth,
                              hvg_err *err) {
  if (depth > 16)
    return hvg_err_set(err, HVG_ETOOBIG, "QuestionnaireResponse.item",
                       "items nested too deeply");
  for (size_t i = 0; i < n; i++) {
    FB_REQUIRE(fb__set(it[i].link_id), "QuestionnaireResponse.item.linkId");
    if (it[i].answer_integer && !fb__is_int(it[i].answer_integer))
      return hvg_err_set(err, HVG_EFORMAT,
                         "QuestionnaireResponse.item.answer.valueInteger",
                         "'%s' is not an integer", it[i].answer_integer);
    int rc = fb__qr_items_check(it[i].item, it[i].n_item, depth + 1, err);
    if (rc)
      return rc;
  }
  return 0;
}

static void fb__qr_items(fhir_writer *w, const fhir_qr_item *it, size_t n) {
  fhir_w_array_begin(w, "item");
  for (size_t i = 0; i < n; i++) {
    fhir_w_object_begin(w, NULL);
    fhir_w_string(w, "linkId", it[i].link_id);
    fhir_w_string(w, "text", it[i].text);
    fhir_w_array_begin(w, "answer");
    fhir_w_object_begin(w, NULL);
    fhir_w_string(w, "valueString", it[i].answer_string);
    if (it[i].answer_integer)
      fhir_w_number(w, "valueInteger", it[i].answer_integer);
    fhir_b_coding(w, "valueCoding", it[i].answer_coding);
    fhir_w_object_end(w);
    fhir_w_array_end(w);
    fb__qr_items(w, it[i].item, it[i].n_item);
    fhir_w_object_end(w);
  }
  fhir_w_array_end(w);
}

int fhir_questionnaire_response_write(fhir_writer *w,
                                      const fhir_questionnaire_response *q,
                                      hvg_err *err) {
  if (!w || !q)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  FB_IDENT(q->identifier, "QuestionnaireResponse.identifier");
  FB_REQUIRE(fb__set(q->status), "QuestionnaireResponse.status");
  FB_CODE(q->status, fhir_vs_qr_status, "QuestionnaireResponse.status");
  FB_REF(q->subject, "QuestionnaireResponse.subject");
  FB_REF(q->author, "QuestionnaireResponse.author");
  FB_CHECK(q->authored, fhir_check_datetime, "QuestionnaireResponse.authored",
           "dateTime");
  int rc = fb__qr_items_check(q->item, q->n_item, 0, err);
  if (rc)
    return rc;
  fb__begin(w, "QuestionnaireResponse");
  fhir_b_meta(w, q->meta);
  fhir_b_identifier(w, "identifier", q->identifier);
  fhir_w_string(w, "questionnaire", q->questionnaire);
  fhir_w_string(w, "status", q->status);
  fhir_b_reference(w, "subject", q->subject);
  fhir_w_string(w, "authored", q->authored);
  fhir_b_reference(w, "author", q->author);
  fb__qr_items(w, q->item, q->n_item);
  fhir_w_resource_end(w);
  return fhir_w_error(w);
}

int fhir_service_request_write(fhir_writer *w, const fhir_service_request *s,
                               hvg_err *err) {
  if (!w || !s)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  FB_IDENT(s->identifier, "ServiceRequest.identifier");
  FB_REQUIRE(fb__set(s->status), "ServiceRequest.status");
  FB_CODE(s->status, fhir_vs_request_status, "ServiceRequest.status");
  FB_REQUIRE(fb__set(s->intent), "ServiceRequest.intent");
  FB_CODE(s->intent, fhir_vs_request_intent, "ServiceRequest.intent");
  FB_CODE(s->priority, fhir_vs_request_priority, "ServiceRequest.priority");
  for (size_t i = 0; i < s->n_category; i++)
    FB_CONCEPT(&s->category[i], "ServiceRequest.category");
  FB_CONCEPT(s->code, "ServiceRequest.code");
  FB_REQUIRE(fb__ref_ok(s->subject), "ServiceRequest.subject");
  FB_CHECK(s->authored_on, fhir_check_datetime, "ServiceRequest.authoredOn",
           "dateTime");
  FB_REF(s->requester, "ServiceRequest.requester");
  FB_REF(s->performer, "ServiceRequest.performer");
  FB_REF(s->reason_reference, "ServiceRequest.reasonReference");
  FB_REF(s->supporting_info, "ServiceRequest.supportingInfo");
  fb__begin(w, "ServiceRequest");
  fhir_b_meta(w, s->meta);
  fhir_b_identifier1(w, s->identifier);
  fhir_w_string(w, "status", s->status);
  fhir_w_string(w, "intent", s->intent);
  fb__concept_array(w, "category", s->category, s->n_category);
  fhir_w_string(w, "priority", s->priority);
  fhir_b_concept(w, "code", s->code);
  fhir_b_reference(w, "subject", s->subject);
  fhir_w_string(w, "authoredOn", s->authored_on);
  fhir_b_reference(w, "requester", s->requester);
  fb__ref_array(w, "performer", s->performer);
  fb__ref_array(w, "reasonReference", s->reason_reference);
  fb__ref_array(w, "supportingInfo", s->supporting_info);
  fb__note(w, s->note);
  fhir_w_resource_end(w);
  return fhir_w_error(w);
}

int fhir_task_write(fhir_writer *w, const fhir_task *t, hvg_err *err) {
  if (!w || !t)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  FB_IDENT(t->identifier, "Task.identifier");
  FB_REQUIRE(fb__set(t->status), "Task.status");
  FB_CODE(t->status, fhir_vs_task_status, "Task.status");
  FB_REQUIRE(fb__set(t->intent), "Task.intent");
  FB_CODE(t->intent, fhir_vs_task_intent, "Task.intent");
  FB_CODE(t->priority, fhir_vs_request_priority, "Task.priority");
  FB_CONCEPT(t->code, "Task.code");
  FB_REF(t->focus, "Task.focus");
  FB_REF(t->for_, "Task.for");
  FB_CHECK(t->authored_on, fhir_check_datetime, "Task.authoredOn", "dateTime");
  FB_CHECK(t->last_modified, fhir_check_datetime, "Task.lastModified",
           "dateTime");
  FB_REF(t->requester, "Task.requester");
  FB_REF(t->owner, "Task.owner");
  FB_REF(t->reason_reference, "Task.reasonReference");
  for (size_t i = 0; i < t->n_output; i++) {
    FB_REQUIRE(t->output[i].type, "Task.output.type");
    FB_CONCEPT(t->output[i].type, "Task.output.type");
    FB_REQUIRE(fb__set(t->output[i].value_string) ||
                   fb__ref_ok(t->output[i].value_reference),
               "Task.output.value[x]");
  }
  fb__begin(w, "Task");
  fhir_b_meta(w, t->meta);
  fhir_b_identifier1(w, t->identifier);
  fhir_w_string(w, "status", t->status);
  if (fb__set(t->status_reason)) {
    fhir_w_object_begin(w, "statusReason");
    fhir_w_string(w, "text", t->status_reason);
    fhir_w_object_end(w);
  }
  if (fb__set(t->business_status)) {
    fhir_w_object_begin(w, "businessStatus");
    fhir_w_string(w, "text", t->business_status);
    fhir_w_object_end(w);
  }
  fhir_w_string(w, "intent", t->intent);
  fhir_w_string(w, "priority", t->priority);
  fhir_b_concept(w, "code", t->code);
  fhir_b_reference(w, "focus", t->focus);
  fhir_b_reference(w, "for", t->for_);
  fhir_w_string(w, "authoredOn", t->authored_on);
  fhir_w_string(w, "lastModified", t->last_modified);
  fhir_b_reference(w, "requester", t->requester);
  fhir_b_reference(w, "owner", t->owner);
  fhir_b_reference(w, "reasonReference", t->reason_reference);
  fb__note(w, t->note);
  fhir_w_array_begin(w, "output");
  for (size_t i = 0; i < t->n_output; i++) {
    fhir_w_object_begin(w, NULL);
    fhir_b_concept(w, "type", t->output[i].type);
    fhir_w_string(w, "valueString", t->output[i].value_string);
    fhir_b_reference(w, "valueReference", t->output[i].value_reference);
    fhir_w_object_end(w);
  }
  fhir_w_array_end(w);
  fhir_w_resource_end(w);
  return fhir_w_error(w);
}

int fhir_consent_write(fhir_writer *w, const fhir_consent *c, hvg_err *err) {
  if (!w || !c)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  FB_IDENT(c->identifier, "Consent.identifier");
  FB_REQUIRE(fb__set(c->status), "Consent.status");
  FB_CODE(c->status, fhir_vs_consent_state, "Consent.status");
  FB_REQUIRE(c->scope, "Consent.scope");
  FB_CONCEPT(c->scope, "Consent.scope");
  FB_REQUIRE(c->category, "Consent.category");
  FB_CONCEPT(c->category, "Consent.category");
  FB_REF(c->patient, "Consent.patient");
  FB_CHECK(c->date_time, fhir_check_datetime, "Consent.dateTime", "dateTime");
  FB_REF(c->performer, "Consent.performer");
  FB_REF(c->organization, "Consent.organization");
  /* ppc-1: a policy or policyRule is required */
  FB_REQUIRE(c->policy_rule, "Consent.policyRule");
  FB_CONCEPT(c->policy_rule, "Consent.policyRule");
  FB_CODE(c->provision_type, fb__consent_provision_type,
          "Consent.provision.type");
  if (c->provision_period) {
    FB_CHECK(c->provision_period->start, fhir_check_datetime,
             "Consent.provision.period.start", "dateTime");
    FB_CHECK(c->provision_period->end, fhir_check_datetime,
             "Consent.provision.period.end", "dateTime");
  }
  FB_REF(c->actor, "Consent.provision.actor.reference");
  if (c->actor)
    FB_REQUIRE(c->actor_role, "Consent.provision.actor.role");
  FB_CONCEPT(c->action, "Consent.provision.action");
  fb__begin(w, "Consent");
  fhir_b_meta(w, c->meta);
  fhir_b_identifier1(w, c->identifier);
  fhir_w_string(w, "status", c->status);
  fhir_b_concept(w, "scope", c->scope);
  fb__concept_array(w, "category", c->category, 1);
  fhir_b_reference(w, "patient", c->patient);
  fhir_w_string(w, "dateTime", c->date_time);
  fb__ref_array(w, "performer", c->performer);
  fb__ref_array(w, "organization", c->organization);
  fhir_b_concept(w, "policyRule", c->policy_rule);
  fhir_w_object_begin(w, "provision");
  fhir_w_string(w, "type", c->provision_type);
  fhir_b_period(w, "period", c->provision_period);
  if (c->actor) {
    fhir_w_array_begin(w, "actor");
    fhir_w_object_begin(w, NULL);
    fhir_b_concept(w, "role", c->actor_role);
    fhir_b_reference(w, "reference", c->actor);
    fhir_w_object_end(w);
    fhir_w_array_end(w);
  }
  if (c->action)
    fb__concept_array(w, "action", c->action, 1);
  if (c->purpose) {
    fhir_w_array_begin(w, "purpose");
    fhir_b_coding(w, NULL, c->purpose);
    fhir_w_array_end(w);
  }
  if (c->classes) {
    fhir_w_array_begin(w, "class");
    for (const char *const *p = c->classes; *p; p++) {
      fhir_coding cl = {"http://hl7.org/fhir/resource-types", *p, NULL};
      fhir_b_coding(w, NULL, &cl);
    }
    fhir_w_array_end(w);
  }
  fhir_w_object_end(w);
  fhir_w_resource_end(w);
  return fhir_w_error(w);
}

int fhir_operation_outcome_write(fhir_writer *w, const fhir_oo_issue *issue,
                                 size_t n, hvg_err *err) {
  if (!w || (!issue && n))
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  FB_REQUIRE(n > 0, "OperationOutcome.issue");
  for (size_t i = 0; i < n; i++) {
    FB_REQUIRE(fb__set(issue[i].severity), "OperationOutcome.issue.severity");
    FB_CODE(issue[i].severity, fhir_vs_issue_severity,
            "OperationOutcome.issue.severity");
    FB_REQUIRE(fb__set(issue[i].code), "OperationOutcome.issue.code");
    FB_CODE(issue[i].code, fhir_vs_issue_type, "OperationOutcome.issue.code");
  }
  fb__begin(w, "OperationOutcome");
  fhir_w_array_begin(w, "issue");
  for (size_t i = 0; i < n; i++) {
    fhir_w_object_begin(w, NULL);
    fhir_w_string(w, "severity", issue[i].severity);
    fhir_w_string(w, "code", issue[i].code);
    fhir_w_string(w, "diagnostics", issue[i].diagnostics);
    if (fb__set(issue[i].expression)) {
      fhir_w_array_begin(w, "expression");
      fhir_w_string(w, NULL, issue[i].expression);
      fhir_w_array_end(w);
    }
    fhir_w_object_end(w);
  }
  fhir_w_array_end(w);
  fhir_w_resource_end(w);
  return fhir_w_error(w);
}

int fhir_bundle_begin(fhir_writer *w, const char *id, const char *type,
                      const char *timestamp, hvg_err *err) {
  if (!w)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  FB_REQUIRE(fb__set(type), "Bundle.type");
  FB_CODE(type, fhir_vs_bundle_type, "Bundle.type");
  FB_CHECK(id, fhir_check_id, "Bundle.id", "id");
  FB_CHECK(timestamp, fhir_check_instant, "Bundle.timestamp", "instant");
  fb__begin(w, "Bundle");
  fhir_w_string(w, "id", id);
  fhir_w_string(w, "type", type);
  fhir_w_string(w, "timestamp", timestamp);
  fhir_w_array_begin(w, "entry");
  return fhir_w_error(w);
}

void fhir_bundle_entry_begin(fhir_writer *w, const char *full_url) {
  fhir_w_object_begin(w, NULL);
  fhir_w_string(w, "fullUrl", full_url);
}

int fhir_bundle_entry_end(fhir_writer *w, const fhir_bundle_request *req,
                          hvg_err *err) {
  int rc = 0;
  if (req) {
    if (!fb__set(req->method) || !fb__set(req->url))
      rc = hvg_err_set(err, HVG_EMISSING, "Bundle.entry.request",
                       "method and url are required");
    else if (!fhir_check_in(req->method, fhir_vs_http_verb))
      rc = hvg_err_set(err, HVG_EUNKNOWN, "Bundle.entry.request.method",
                       "'%s' is not an HTTP verb", req->method);
    if (!rc) {
      fhir_w_object_begin(w, "request");
      fhir_w_string(w, "method", req->method);
      fhir_w_string(w, "url", req->url);
      fhir_w_string(w, "ifMatch", req->if_match);
      fhir_w_string(w, "ifNoneExist", req->if_none_exist);
      fhir_w_object_end(w);
    }
  }
  fhir_w_object_end(w);
  return rc ? rc : fhir_w_error(w);
}

void fhir_bundle_end(fhir_writer *w) {
  fhir_w_array_end(w);
  fhir_w_resource_end(w);
}
