#include "hvg_route.h"

#include <string.h>
#include <strings.h>

void hvg_route_record(const hvg_config *c, const hv_result *res,
                      hvg_route *out) {
  memset(out, 0, sizeof *out);
  const hv_record *r = &res->rec;
  hv_field f = r->type == HV_REC_SCREENING  ? HV_F_PRACTICE_NPI
               : r->type == HV_REC_REFERRAL ? HV_F_REF_TO_ORG_ID
                                            : HV_F_CONSENT_ORG_ID;
  out->org_field = hv_field_get(f)->name;
  out->org_id = r->v[f];
  out->sensitivity = r->type == HV_REC_SCREENING && res->instrument
                         ? res->instrument->sensitivity
                     : r->type == HV_REC_REFERRAL && res->service
                         ? res->service->sensitivity
                         : NULL;
  if (!out->org_id || !*out->org_id) {
    out->verdict = HVG_ROUTE_NO_ORG;
    return;
  }
  const hvg_partner *p = hvg_config_partner_for_org(c, out->org_id);
  if (!p) {
    out->verdict = HVG_ROUTE_NO_PARTNER;
    return;
  }
  out->partner = p;
  if (!(p->record_types & (1u << r->type))) {
    out->verdict = HVG_ROUTE_NOT_RECEIVED;
    return;
  }
  if (r->type == HV_REC_REFERRAL && p->n_services) {
    int ok = 0;
    const char *svc = r->v[HV_F_REF_SERVICE];
    for (size_t i = 0; svc && i < p->n_services && !ok; i++)
      ok = !strcasecmp(p->services[i], svc); /* as the catalogue matches */
    if (!ok) {
      out->verdict = HVG_ROUTE_NOT_RECEIVED;
      return;
    }
  }
  if (out->sensitivity) {
    int ok = 0;
    for (size_t i = 0; i < p->n_sensitivity && !ok; i++)
      ok = !strcmp(p->sensitivity[i], out->sensitivity);
    if (!ok) {
      out->verdict = HVG_ROUTE_SENSITIVE;
      return;
    }
  }
  out->verdict = HVG_ROUTE_SEND;
}

const char *hvg_route_consent_scope(hv_rectype t) {
  return t == HV_REC_SCREENING  ? "screening"
         : t == HV_REC_REFERRAL ? "referral"
         : t == HV_REC_WELLCHILD ? "well_child"
                                 : NULL;
}

const char *hvg_route_why(hvg_verdict v) {
  switch (v) {
  case HVG_ROUTE_SEND:
    return "sent";
  case HVG_ROUTE_NO_ORG:
    return "the record names no organization";
  case HVG_ROUTE_NO_PARTNER:
    return "no partner is configured for the organization";
  case HVG_ROUTE_NOT_RECEIVED:
    return "the partner does not receive this kind of record";
  case HVG_ROUTE_SENSITIVE:
    return "sensitive result: the partner is not cleared for its category";
  }
  return "?";
}
