/* hvg_fhir_http — the FHIR R4 endpoint's HTTP binding on the daemon's
 * server (issue 4): routes under /fhir, who is calling (hvg_cred: a
 * partner's bearer token or client certificate; anonymous -> 401), content
 * negotiation (application/fhir+json and application/fhir+xml by _format,
 * Accept and Content-Type; 406 and 415 otherwise), FHIR REST status codes,
 * ETag / Last-Modified / Location, Prefer: return=, and every error as an
 * OperationOutcome. The interactions themselves are hvg_fsrv's; this file
 * only turns HTTP into calls and results into HTTP.
 *
 *   GET  /fhir/metadata                      CapabilityStatement
 *   POST /fhir                               Bundle (transaction, batch)
 *   GET  /fhir/{type}?...  POST /fhir/{type}/_search   search (Task)
 *   POST /fhir/{type}                        create (If-None-Exist)
 *   GET  /fhir/{type}/{id}[/_history/{vid}]  read (vread: current only)
 *   PUT  /fhir/{type}/{id}                   update (If-Match)
 *   PATCH /fhir/{type}/{id}                  JSON Patch (If-Match)
 *   POST /fhir/subscription-notification     rest-hook notifications
 *                                            (Subscriptions Backport, R4)
 *
 * A notification is acknowledged once the references it names are durable
 * in the partner's inbox; the poller fetches them (hvg_poll). Handlers run
 * on the server's loop thread with that thread's store handle. */
#ifndef HVG_FHIR_HTTP_H
#define HVG_FHIR_HTTP_H

#include "hvg_config.h"
#include "hvg_fsrv.h"
#include "hvg_httpd.h"
#include "store.h"

typedef struct hvg_fhir_http hvg_fhir_http;

/* Prepares the endpoint over cfg and the loop thread's store handle st
 * (both outlive it) and registers its routes and error renderer on srv
 * (before hvg_httpd_start). Returns 0 and *out (free with
 * hvg_fhir_http_free after the server stopped), or HVG_ENOMEM / the
 * server's route error, with err set. */
int hvg_fhir_http_new(hvg_fhir_http **out, const hvg_config *cfg, store *st,
                      hvg_httpd *srv, hvg_err *err);
void hvg_fhir_http_free(hvg_fhir_http *h);

/* The FHIR server behind the endpoint (for the HV API's referral updates,
 * on the same loop thread and store handle). */
hvg_fsrv *hvg_fhir_http_server(hvg_fhir_http *h);

/* Group commit (hvg_httpd_opts.on_batch): the handlers keep one store
 * transaction open across the requests of a turn of the loop; this commits
 * it. Returns 0 (committed, or nothing open) or 503 (the commit failed:
 * none of those requests' changes is stored). Loop thread only. */
int hvg_fhir_http_flush(hvg_fhir_http *h);

/* The CapabilityStatement this endpoint serves, as a tree (the caller
 * deletes it), for `base` (its implementation.url). NULL when out of
 * memory. */
cJSON *hvg_fhir_capabilities(const char *base);

/* Parses a subscription notification Bundle (type history, Parameters
 * subscription-status first) into the Task references it names, relative
 * to `base` (the partner's FHIR base URL): "Task/123". refs[i] point into
 * buf (cap bytes). Returns the number of references (>= 0), or -1 with
 * *why set (a static string) when it is not a notification. *kind gets
 * the notification type ("handshake", "heartbeat", "event-notification",
 * ...; a static string or one in buf). */
int hvg_fhir_notification_refs(const cJSON *bundle, const char *base,
                               const char **refs, size_t max, char *buf,
                               size_t cap, const char **kind, const char **why);

#endif
