/* hvg_http — the gateway's HTTP client (libcurl): one handle per partner
 * worker, so connections are kept alive and reused; connect and total
 * timeouts; TLS verification on unless the partner configuration turns it
 * off, with an optional CA file and client certificate (mutual TLS).
 *
 * A request returns what the caller needs to classify the outcome: the
 * status, Retry-After in seconds, Location, the body (capped), or a network
 * error. Nothing is printed. */
#ifndef HVG_HTTP_H
#define HVG_HTTP_H

#include "hvg_buf.h"
#include "hvg_err.h"

#include <stddef.h>

typedef struct hvg_http hvg_http;

typedef struct hvg_http_opts {
  long connect_timeout_ms; /* 0: 5000 */
  long timeout_ms;         /* whole request; 0: 60000 */
  int tls_verify;          /* 1 unless the partner says otherwise */
  const char *ca_file;     /* NULL: the system's CAs */
  const char *client_cert_file, *client_key_file; /* mutual TLS */
  size_t max_body;         /* response cap; 0: 32 MiB */
} hvg_http_opts;

typedef struct hvg_http_resp {
  long status;        /* 0 when no response (network error) */
  long retry_after_s; /* -1 when absent */
  char location[512]; /* Location header, "" when absent */
  char content_type[128];
  hvg_buf body;       /* owned by the response: hvg_http_resp_free */
} hvg_http_resp;

/* Returns 0 and *out, or HVG_ENOMEM (libcurl could not start). The caller
 * frees it with hvg_http_free. */
int hvg_http_new(hvg_http **out, const hvg_http_opts *opts, hvg_err *err);
void hvg_http_free(hvg_http *h);

/* One request. `headers` is NULL or a NULL-terminated list of "Name: value"
 * lines; body may be NULL. Returns 0 when a response arrived (any status,
 * in resp), HVG_EIO for a network failure (DNS, connect, TLS, timeout: the
 * message says which), HVG_ETOOBIG when the response body exceeds the cap,
 * or HVG_ENOMEM. resp (initialised once with hvg_http_resp_init) is reset
 * first, keeping its memory, so one response can serve many requests; free
 * it with hvg_http_resp_free. */
int hvg_http_request(hvg_http *h, const char *method, const char *url,
                     const char *const *headers, const char *body,
                     size_t body_len, hvg_http_resp *resp, hvg_err *err);

void hvg_http_resp_init(hvg_http_resp *r);
void hvg_http_resp_free(hvg_http_resp *r);

/* Retry-After as seconds from now: delta-seconds or an HTTP-date; -1 when it
 * is neither. */
long hvg_http_retry_after(const char *value, long now);

#endif
