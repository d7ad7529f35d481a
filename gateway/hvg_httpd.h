/* hvg_httpd — the daemon's HTTP/1.1 server: libevent's evhttp on one event
 * loop thread, optionally TLS through OpenSSL with client certificates
 * (mutual TLS). See docs/decisions.md section 6.
 *
 * Life cycle: hvg_httpd_new, register routes (and error renderers), then
 * hvg_httpd_start binds the listening socket and runs the loop on its own
 * thread; hvg_httpd_stop stops accepting, lets the responses of requests
 * already handled finish, closes idle connections and joins the thread;
 * hvg_httpd_free releases everything.
 *
 * Routes are "METHOD /path" patterns: METHOD is a token such as GET or POST,
 * or "*" for any method; a path segment "{name}" matches one non-empty
 * segment whose percent-decoded value the handler gets as a parameter; a
 * pattern ending in '/' matches that path and everything below it (a
 * subtree: "* /fhir/"), the rest of the path given to the handler raw.
 * Literal segments are compared with the percent-decoded request segment.
 * When several patterns match, the most specific wins: an exact pattern
 * before a subtree, a longer subtree before a shorter, a literal segment
 * before a parameter (leftmost difference decides), a named method before
 * "*". A HEAD request is served by a GET route when there is no HEAD one
 * (the answer keeps the headers and Content-Length, drops the body).
 * No route for the path: 404; routes for the path but not for the method:
 * 405 with Allow. Paths with "." or ".." segments (also percent-encoded),
 * bad percent-encoding or an encoded NUL are refused with 400; paths longer
 * than HVG_HTTPD_MAX_PATH with 414.
 *
 * Threading: handlers, error renderers and on_request run on the loop
 * thread, one at a time, so they need no locking among themselves but must
 * not block for long (a SQLite transaction is fine; a network call is not).
 * Everything they receive is valid only during the call. Routes and error
 * renderers are registered before hvg_httpd_start and fixed afterwards.
 *
 * Limits: request line plus headers over max_header get 400, a body over
 * max_body 413 (a Content-Length over the cap is refused before any of the
 * body is read; a chunked body when it passes the cap), so no more than
 * max_body bytes of a body are ever buffered (made contiguous for the
 * handler, which may copy it once). A connection on which
 * nothing is read or written for timeout_s seconds is closed.
 *
 * Those 400/413 answers (and 501 for TRACE/CONNECT or an unknown method)
 * are made by libevent 2.1 itself with a short HTML body: it has no hook to
 * render them. Errors the server makes (400 bad path, 404, 405, 414, 500
 * after a failed handler) and those handlers ask for with
 * hvg_httpd_resp_error go through the error renderer of the longest
 * matching path prefix; the default writes {"error": "..."}.
 *
 * Nothing is printed here; libevent itself may log a rare warning (e.g. on
 * accept errors) to stderr unless the daemon sets event_set_log_callback. */
#ifndef HVG_HTTPD_H
#define HVG_HTTPD_H

#include "hvg_buf.h"
#include "hvg_err.h"

#include <stddef.h>

#define HVG_HTTPD_MAX_PARAMS 8    /* {param} segments per pattern */
#define HVG_HTTPD_MAX_SEGMENTS 32 /* segments per pattern */
#define HVG_HTTPD_MAX_PATH 8192   /* request path bytes (without query) */
#define HVG_HTTPD_MAX_ROUTES 256

typedef struct hvg_httpd hvg_httpd;
typedef struct hvg_httpd_resp hvg_httpd_resp;

/* The verified client certificate of a mutual-TLS connection. */
typedef struct hvg_httpd_peer {
  char cn[256];    /* subject commonName (UTF-8), "" when absent */
  char sha256[65]; /* SHA-256 of the DER certificate, lowercase hex */
} hvg_httpd_peer;

typedef struct hvg_httpd_param {
  const char *name;  /* as in the pattern, without braces */
  const char *value; /* percent-decoded; never contains NUL */
} hvg_httpd_param;

/* What a handler gets. All pointers are owned by the server and valid only
 * during the handler call. */
typedef struct hvg_httpd_req {
  const char *method; /* "GET", "POST", ... */
  const char *path;   /* as received (percent-encoded), without the query */
  const char *query;  /* raw query string without '?', "" when none */
  const char *route;  /* the matching pattern, "POST /hv/{program}/records" */
  const char *rest;   /* subtree route: the raw path after the prefix, e.g.
                         "Patient/123" for "* /fhir/"; "" otherwise */
  size_t nparams;
  const hvg_httpd_param *params;
  const char *body; /* NUL-terminated (the NUL not counted); "" when none */
  size_t body_len;
  const char *remote_addr; /* peer IP address as text */
  unsigned remote_port;
  int tls;                    /* 1 when the connection is TLS */
  const hvg_httpd_peer *peer; /* verified client certificate, or NULL */
  void *hvg__ev;              /* internal */
} hvg_httpd_req;

/* A route handler. Set the response through resp and return 0; the status
 * is 200 unless set. A negative HVG_E* return discards what was set and
 * answers 500 through the error renderer (the handler logs the cause). */
typedef int (*hvg_httpd_handler)(void *ctx, const hvg_httpd_req *req,
                                 hvg_httpd_resp *resp);

/* Renders the body of an error response: set Content-Type and a body on
 * resp (the status is already set) and return 0. `msg` is a short English
 * reason without PHI. req->route is NULL and req->params empty when no
 * route matched. A negative return makes the server fall back to the
 * default JSON body. */
typedef int (*hvg_httpd_error_fn)(void *ctx, const hvg_httpd_req *req,
                                  int status, const char *msg,
                                  hvg_httpd_resp *resp);

typedef struct hvg_httpd_opts {
  const char *listen;  /* "host:port" or "[v6]:port"; port 0 picks a free
                          one (see hvg_httpd_port); NULL: "127.0.0.1:0" */
  size_t max_header;   /* request line + headers; 0: 32 KiB */
  size_t max_body;     /* request body; 0: 64 MiB */
  int timeout_s;       /* read/write idle timeout per connection; 0: 30 */
  int drain_timeout_s; /* hvg_httpd_stop waits this long at most for
                          responses being written; 0: 10 */
  int backlog;         /* listen backlog; 0: 128 */
  /* TLS: both set to serve HTTPS only (PEM; the certificate file may hold
   * the chain). TLS 1.2 or later, no renegotiation. */
  const char *cert_file, *key_file;
  /* Mutual TLS: client certificates are requested and verified against the
   * CAs in this PEM file; a client without a valid one fails the handshake
   * unless client_cert_optional, in which case req->peer is NULL. */
  const char *client_ca_file;
  int client_cert_optional;
  /* Called on the loop thread after each request the server answered
   * itself (not libevent's 400/413/501), for access logs and metrics:
   * req->route is NULL when no route matched; seconds is the time from
   * dispatch to the response being queued. */
  void (*on_request)(void *ctx, const hvg_httpd_req *req, int status,
                     double seconds);
  void *on_request_ctx;
  /* Group commit: with on_batch set, the responses of the requests handled
   * in one turn of the loop (all that were ready together) are held, then
   * on_batch runs on the loop thread (e.g. committing the store
   * transaction those handlers kept open), then they are sent. It returns
   * 0, or a status 500..599 that replaces every held response with an
   * error (the changes did not become durable). A handler that needs its
   * changes durable at once (others must see them) may commit early
   * itself. Without on_batch each response goes as soon as its handler
   * returns. */
  int (*on_batch)(void *ctx);
  void *on_batch_ctx;
} hvg_httpd_opts;

/* Creates a server (nothing bound yet). opts may be NULL for defaults; its
 * strings are copied. Returns 0 and *out, HVG_EINVAL (listen address not
 * "host:port", a negative timeout, key without certificate, ...) or
 * HVG_ENOMEM, with err set. Free with hvg_httpd_free. */
int hvg_httpd_new(hvg_httpd **out, const hvg_httpd_opts *opts, hvg_err *err);

/* Stops the server if running (hvg_httpd_stop) and frees it. NULL is
 * ignored. Not from a handler. */
void hvg_httpd_free(hvg_httpd *s);

/* Registers `fn` for `spec`, "METHOD /pattern" (see above); ctx is passed
 * to fn as is (not owned). Returns 0; HVG_EINVAL for a malformed spec (bad
 * method token, path not starting with '/', empty or '%' in a literal
 * segment, a parameter name not [A-Za-z_][A-Za-z0-9_]* or repeated, too many
 * segments or parameters) or the same method and pattern shape registered
 * twice; HVG_ETOOBIG past HVG_HTTPD_MAX_ROUTES; HVG_ESTATE after
 * hvg_httpd_start; HVG_ENOMEM. err says which. */
int hvg_httpd_route(hvg_httpd *s, const char *spec, hvg_httpd_handler fn,
                    void *ctx, hvg_err *err);

/* Uses `fn` to render the error bodies of requests whose raw path starts
 * with `prefix` ("/" for all); the longest registered prefix wins, the
 * default is {"error": msg} as application/json. Registering a prefix
 * again replaces its renderer. Returns 0, HVG_EINVAL (prefix not starting
 * with '/'), HVG_ETOOBIG, HVG_ESTATE after start, HVG_ENOMEM. */
int hvg_httpd_error_renderer(hvg_httpd *s, const char *prefix,
                             hvg_httpd_error_fn fn, void *ctx, hvg_err *err);

/* Loads the TLS material, binds the listening socket and starts the event
 * loop thread. Returns 0; HVG_ECONFIG for unreadable or mismatched TLS
 * files (OpenSSL's reason in err); HVG_EIO when the address cannot be
 * resolved or bound (in use, permission); HVG_ESTATE when already started
 * (a stopped server cannot start again); HVG_ENOMEM. On error nothing is
 * left running. */
int hvg_httpd_start(hvg_httpd *s, hvg_err *err);

/* The bound TCP port (the actual one when the listen port was 0); 0 before
 * hvg_httpd_start. */
int hvg_httpd_port(const hvg_httpd *s);

/* Graceful stop: closes the listening socket (new connections are
 * refused), lets responses already being written finish (at most
 * drain_timeout_s), answers requests still arriving on open connections
 * with "Connection: close", then closes all connections and joins the loop
 * thread. Requests whose head or body is still being received when the
 * drain ends are cut. Returns 0 (also when not running or already
 * stopped); HVG_ESTATE when called from the loop thread (a handler). Call
 * from one thread, e.g. the daemon's main thread after SIGTERM. */
int hvg_httpd_stop(hvg_httpd *s);

/* Case-insensitive request header lookup: the first value, or NULL. */
const char *hvg_httpd_header(const hvg_httpd_req *req, const char *name);

/* The decoded value of path parameter `name`, or NULL. */
const char *hvg_httpd_path_param(const hvg_httpd_req *req, const char *name);

/* ---- Building the response (in a handler or error renderer) ----------- */

/* Sets the status (100..599; other values are ignored, keeping the old). */
void hvg_httpd_resp_status(hvg_httpd_resp *r, int status);

/* Adds a header. Returns 0; HVG_EINVAL for a name that is not an HTTP
 * token, a value with CR, LF or NUL, or Content-Length, Transfer-Encoding
 * or Connection (the server frames responses itself); HVG_ENOMEM. */
int hvg_httpd_resp_header(hvg_httpd_resp *r, const char *name,
                          const char *value);

/* Appends a copy of n bytes to the body. Returns 0 or HVG_ENOMEM. */
int hvg_httpd_resp_body(hvg_httpd_resp *r, const void *p, size_t n);

/* printf-style append to the body. Returns 0, HVG_EINVAL or HVG_ENOMEM. */
int hvg_httpd_resp_printf(hvg_httpd_resp *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Hands a malloc'd block over as (the rest of) the body, without copying:
 * the server calls free_fn(p) (free when NULL) once it is sent, or at once
 * when this fails. Returns 0 or HVG_ENOMEM (p freed either way). */
int hvg_httpd_resp_body_take(hvg_httpd_resp *r, void *p, size_t n,
                             void (*free_fn)(void *));

/* Hands the content of b over as (the rest of) the body; b is left empty
 * (and reusable) either way. Returns 0 or HVG_ENOMEM. */
int hvg_httpd_resp_body_buf(hvg_httpd_resp *r, hvg_buf *b);

/* Convenience: status, Content-Type (may be NULL) and a copy of the body,
 * replacing any body set before. Returns 0, HVG_EINVAL or HVG_ENOMEM. */
int hvg_httpd_resp_send(hvg_httpd_resp *r, int status, const char *content_type,
                        const void *body, size_t n);

/* Replaces the response with an error: status (400..599), and the body of
 * the error renderer for the request's path with `msg` (short, no PHI).
 * Headers set before are dropped. Returns 0 or HVG_ENOMEM. */
int hvg_httpd_resp_error(hvg_httpd_resp *r, int status, const char *msg);

/* ---- Serving without a socket (tests, fuzzing) ------------------------- */

/* What a dispatched request was answered: status, the response headers as
 * "Name: value\n" lines, and the body (both capped by the caller's
 * hvg_buf_init; reset by each dispatch). */
typedef struct hvg_httpd_answer {
  int status;
  hvg_buf headers, body;
} hvg_httpd_answer;

/* Serves one request in the calling thread exactly as the server would
 * (routing, handlers, error renderers, on_request, and the framing: a
 * HEAD answer has Content-Length and no body, an empty body no
 * Content-Type), without a socket: for tests and fuzz targets. Not while the server runs (handlers assume one
 * thread). target is "/path?query"; headers a NULL-terminated list of
 * "Name: value" (may be NULL); peer plays the verified client certificate
 * of a TLS connection (NULL: plain HTTP). Returns 0 with *out filled;
 * HVG_EINVAL (a target that is not "/...", a header not "Name: value"),
 * HVG_ETOOBIG (the answer does not fit out's buffers), HVG_ENOMEM. */
int hvg_httpd_dispatch(hvg_httpd *s, const char *method, const char *target,
                       const char *const *headers, const void *body,
                       size_t body_len, const hvg_httpd_peer *peer,
                       hvg_httpd_answer *out, hvg_err *err);

/* ---- Routing without a server (tests, fuzzing, diagnostics) ----------- */

typedef struct hvg_httpd_match {
  int status;        /* 200 route found; 400, 404, 405 or 414 */
  const char *msg;   /* reason for a status other than 200 */
  const char *route; /* the matching pattern spec when 200 */
  const char *rest;  /* as hvg_httpd_req.rest */
  char allow[128];   /* 405: the Allow header value */
  size_t nparams;
  hvg_httpd_param params[HVG_HTTPD_MAX_PARAMS];
  /* internal */
  const void *hvg__route;
  char hvg__scratch[HVG_HTTPD_MAX_PATH + 1];
} hvg_httpd_match;

/* Resolves `method` and a raw request `path` (without the query) against
 * the registered routes exactly as the server does, into *m (whose
 * pointers stay valid while m and the routes do). Never fails: the outcome
 * is m->status. Reads the route table only, so it is safe while the server
 * runs. */
void hvg_httpd_match_path(const hvg_httpd *s, const char *method,
                          const char *path, hvg_httpd_match *m);

#endif
