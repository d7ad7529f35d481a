#include "hv_canonical.h"

#include <string.h>

static const hv_field_info hv__fields[HV_F__COUNT] = {
#define HV__FIELD_INFO(id, name, type, flags) {name, type, flags},
    HV_FIELD_MAP(HV__FIELD_INFO)
#undef HV__FIELD_INFO
};

static const char *const hv__rectype_names[HV_REC__COUNT] = {
    "screening", "referral", "consent", "well_child"};

const hv_field_info *hv_field_get(hv_field f) {
  if ((int)f < 0 || f >= HV_F__COUNT)
    return NULL;
  return &hv__fields[f];
}

int hv_field_lookup(const char *name) {
  if (!name)
    return -1;
  for (int i = 0; i < HV_F__COUNT; i++)
    if (strcmp(hv__fields[i].name, name) == 0)
      return i;
  return -1;
}

int hv_rectype_lookup(const char *name) {
  if (!name)
    return -1;
  for (int i = 0; i < HV_REC__COUNT; i++)
    if (strcmp(hv__rectype_names[i], name) == 0)
      return i;
  return -1;
}

const char *hv_rectype_name(hv_rectype t) {
  if ((int)t < 0 || t >= HV_REC__COUNT)
    return "unknown";
  return hv__rectype_names[t];
}

static const char *const hv__sex_codes[] = {"female", "male", "other",
                                            "unknown", NULL};
static const char *const hv__subject_codes[] = {"child", "caregiver", NULL};
static const char *const hv__result_codes[] = {"positive", "negative", NULL};
static const char *const hv__urgency_codes[] = {"routine", "urgent", "asap",
                                                "stat", NULL};
/* HV referral status vocabulary (design.md, closed-loop table). */
static const char *const hv__status_codes[] = {
    "referred", "linked", "scheduled", "completed", "declined",
    "withdrawn", "family_declined", "unable_to_reach", NULL};
static const char *const hv__relationship_codes[] = {
    "mother", "father", "parent", "grandparent", "guardian", "foster_parent",
    "other", NULL};
static const char *const hv__scope_codes[] = {"screening", "referral",
                                              "well_child", NULL};
/* outbound: the program referred (to a practice or service); inbound: a
 * practice referred to the program. */
static const char *const hv__direction_codes[] = {"outbound", "inbound", NULL};
/* FHIR R4 TaskStatus (http://hl7.org/fhir/task-status), all 12 codes. */
static const char *const hv__task_status_codes[] = {
    "draft",     "requested", "received", "accepted",
    "rejected",  "ready",     "cancelled", "in-progress",
    "on-hold",   "failed",    "completed", "entered-in-error",
    NULL};
static const char *const hv__yes_no_codes[] = {"yes", "no", NULL};

const char *const *hv_field_codes(hv_field f) {
  switch (f) {
  case HV_F_CHILD_SEX:
  case HV_F_CAREGIVER_SEX:
    return hv__sex_codes;
  case HV_F_SCREEN_SUBJECT:
    return hv__subject_codes;
  case HV_F_SCREEN_RESULT:
    return hv__result_codes;
  case HV_F_REF_URGENCY:
    return hv__urgency_codes;
  case HV_F_REF_STATUS:
    return hv__status_codes;
  case HV_F_CAREGIVER_RELATIONSHIP:
    return hv__relationship_codes;
  case HV_F_CONSENT_SCOPE:
    return hv__scope_codes;
  case HV_F_REF_DIRECTION:
    return hv__direction_codes;
  case HV_F_REF_TASK_STATUS:
    return hv__task_status_codes;
  case HV_F_SCREEN_RESCREEN:
    return hv__yes_no_codes;
  default:
    return NULL;
  }
}
