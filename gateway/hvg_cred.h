/* hvg_cred — who is calling the daemon: the credentials of its HTTP side,
 * checked against the hashes in the configuration (tokens and client
 * certificates are never configured themselves, only their SHA-256).
 *
 *  - a partner: a bearer token or a mutual-TLS client certificate listed
 *    in its "inbound" (the FHIR endpoint, subscription notifications);
 *  - a program: the bearer token of its intake_token_sha256 (the HV API);
 *  - operations: a bearer token of "ops" (/readyz, /metrics).
 * Comparisons take the same time whatever matches. Nothing is printed. */
#ifndef HVG_CRED_H
#define HVG_CRED_H

#include "hvg_config.h"
#include "hvg_httpd.h"

/* The SHA-256 (lower-case hex) of the request's "Authorization: Bearer
 * TOKEN" token into hex[65]: 1, or 0 when there is no bearer token. */
int hvg_cred_bearer_hash(const hvg_httpd_req *req, char hex[65]);

/* 1 when hex equals one of list[0..n) (64-digit hashes), else 0. */
int hvg_cred_in(const char *hex, const char *const *list, size_t n);

/* The partner the request authenticates as (client certificate first,
 * then bearer token), or NULL. */
const hvg_partner *hvg_cred_partner(const hvg_config *cfg,
                                    const hvg_httpd_req *req);

/* 1 when the request carries the program's token. */
int hvg_cred_program(const hvg_program *p, const hvg_httpd_req *req);

/* 1 when the request carries an operations token. */
int hvg_cred_ops(const hvg_config *cfg, const hvg_httpd_req *req);

#endif
