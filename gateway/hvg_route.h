/* hvg_route — which partner a canonical record goes to, and whether it may:
 * routing by organization id (a screening to the child's medical home, a
 * referral to the receiving organization, a consent to the organization it
 * names), what the partner receives (record types, referral services) and
 * sensitivity (a partner-violence, substance-use or mental-health result
 * only to a partner cleared for that category). Consent is checked by the
 * caller against the store (hvg_route_consent_scope says for what). */
#ifndef HVG_ROUTE_H
#define HVG_ROUTE_H

#include "hv_mapper.h"
#include "hvg_config.h"

typedef enum hvg_verdict {
  HVG_ROUTE_SEND = 0,      /* to route->partner (consent still to check) */
  HVG_ROUTE_NO_ORG,        /* the record names no organization */
  HVG_ROUTE_NO_PARTNER,    /* no partner has that organization id */
  HVG_ROUTE_NOT_RECEIVED,  /* the partner does not take this type/service */
  HVG_ROUTE_SENSITIVE      /* withheld: the partner is not cleared */
} hvg_verdict;

typedef struct hvg_route {
  hvg_verdict verdict;
  const hvg_partner *partner; /* set unless NO_ORG / NO_PARTNER */
  const char *org_id;         /* the organization id routed on */
  const char *org_field;      /* canonical field it came from */
  const char *sensitivity;    /* category of the record, or NULL */
} hvg_route;

/* Decides for an accepted record. Never fails. */
void hvg_route_record(const hvg_config *c, const hv_result *res,
                      hvg_route *out);

/* The consent scope a record of this type needs ("screening", "referral"),
 * or NULL when it needs none (a consent record is the permission itself). */
const char *hvg_route_consent_scope(hv_rectype t);

/* A short reason for a verdict other than SEND, for reports. */
const char *hvg_route_why(hvg_verdict v);

#endif
