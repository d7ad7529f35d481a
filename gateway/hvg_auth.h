/* hvg_auth — how the gateway authenticates to one partner: nothing, a
 * static bearer token (from a file or an environment variable), or SMART
 * Backend Services: discover the token endpoint from
 * {base}/.well-known/smart-configuration (unless configured), send a
 * client_credentials grant with a signed JWT assertion, and cache the access
 * token until shortly before it expires. After a 401 the caller forgets the
 * token and asks again once; a second 401 is the partner's auth failure. */
#ifndef HVG_AUTH_H
#define HVG_AUTH_H

#include "hvg_config.h"
#include "hvg_err.h"
#include "hvg_http.h"

#include <openssl/evp.h>
#include <time.h>

/* Renew this long before the token's announced expiry. */
#define HVG_AUTH_EXPIRY_MARGIN 30

typedef struct hvg_auth {
  const hvg_partner *p;
  EVP_PKEY *key;        /* SMART */
  char *static_token;   /* bearer */
  char *token_url;      /* SMART: configured or discovered */
  char *token;          /* SMART: current access token */
  time_t token_expires; /* when to fetch a new one */
  unsigned long tokens_fetched;
} hvg_auth;

/* A bearer token from `file` (its first line) or, when file is NULL, the
 * environment variable `env`, trimmed, into *out (the caller frees it).
 * Returns 0; HVG_ENOINPUT (unreadable, unset), HVG_ECONFIG (empty, or with
 * spaces or control characters), HVG_ENOMEM; messages start with `owner`
 * ("partner x", "program y's webhook"). */
int hvg_auth_read_token(const char *owner, const char *file, const char *env,
                        char **out, hvg_err *err);

/* Prepares the partner's credentials: reads the bearer token or loads the
 * private key now, so that a wrong configuration shows at start. Returns 0,
 * or HVG_ENOINPUT / HVG_ECONFIG / HVG_ENOMEM with err set; on error a is
 * left empty (hvg_auth_free is safe). */
int hvg_auth_init(hvg_auth *a, const hvg_partner *p, hvg_err *err);
void hvg_auth_free(hvg_auth *a);

/* Writes "Authorization: Bearer ..." into hdr[cap], or "" for no auth,
 * fetching a SMART token through h when none is cached. Returns 0;
 * HVG_ESECURITY when the partner refused the credentials (its message in
 * err: not retried record by record); HVG_EIO when the token endpoint could
 * not be reached or answered 5xx/429 (retry later); HVG_ETOOBIG if the
 * token does not fit hdr; HVG_ENOMEM. */
int hvg_auth_header(hvg_auth *a, hvg_http *h, time_t now, char *hdr,
                    size_t cap, hvg_err *err);

/* Drops the cached SMART token (after a 401), so the next header fetches a
 * new one. No effect for other kinds. */
void hvg_auth_forget(hvg_auth *a);

#endif
