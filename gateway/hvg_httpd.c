#include "hvg_httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

/* ---- Routes ------------------------------------------------------------ */

typedef struct hvg__seg {
  const char *lit;  /* literal text, or NULL for a {param} */
  const char *name; /* parameter name */
} hvg__seg;

typedef struct hvg__route {
  char *spec;      /* "METHOD /pattern", owned */
  char *segbuf;    /* the pattern's segments, NUL-separated, owned */
  char method[16]; /* "" for any */
  int subtree;     /* pattern ended with '/' */
  size_t nseg, nparams;
  hvg__seg seg[HVG_HTTPD_MAX_SEGMENTS];
  hvg_httpd_handler fn;
  void *ctx;
} hvg__route;

typedef struct hvg__errr {
  char *prefix;
  size_t len;
  hvg_httpd_error_fn fn;
  void *ctx;
} hvg__errr;

/* A response queued but not yet fully written (graceful stop waits). */
typedef struct hvg__flight {
  hvg_httpd *s;
  struct evhttp_connection *evcon;
  struct hvg__flight *prev, *next;
} hvg__flight;

typedef struct hvg__held hvg__held;

enum { HVG__NEW, HVG__RUNNING, HVG__STOPPED };

struct hvg_httpd {
  hvg_httpd_opts o;
  char *listen, *host, *port_s, *cert, *key, *ca;
  hvg__route *routes;
  size_t nroutes;
  hvg__errr *errrs;
  size_t nerrrs;

  int state;
  int port;
  pthread_t thread;
  SSL_CTX *ssl;
  struct event_base *base;
  struct evhttp *http;
  struct evhttp_bound_socket *bound;
  struct event *stop_ev, *finish_ev, *drain_ev, *batch_ev;
  /* loop thread only: */
  int stopping, finishing;
  hvg__flight *flights;
  hvg__held *held, **held_tail; /* responses waiting for the batch hook */
  hvg_httpd_match m; /* the current request's match */
};

struct hvg_httpd_resp {
  hvg_httpd *s;
  struct evhttp_request *ev;
  const hvg_httpd_req *req;
  struct evbuffer *body;
  struct evkeyvalq *hdrs;
  int status;
  int failed;   /* an append ran out of memory: answer 500 */
  int in_error; /* inside an error renderer */
};

/* A response its handler made, held until the end of the loop iteration
 * for the batch hook (group commit): ev, hdrs and body stay valid until
 * it is sent; req keeps what on_request needs. */
struct hvg__held {
  hvg_httpd_resp rs;
  hvg_httpd_req rq;
  char *path;
  struct timespec t0;
  struct hvg__held *next;
};

static int hvg__is_tchar(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* RFC 3986 pchar without '%' (patterns carry no percent-encoding). */
static int hvg__is_plit(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || (c && strchr("-._~!$&'()*+,;=:@", c));
}

static int hvg__is_name(const char *p, size_t n) {
  if (!n || n > 31 ||
      !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_'))
    return 0;
  for (size_t i = 1; i < n; i++)
    if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
          (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
      return 0;
  return 1;
}

static void hvg__route_free(hvg__route *r) {
  free(r->spec);
  free(r->segbuf);
}

/* Parses "METHOD /pattern" into r (owning copies). */
static int hvg__parse_spec(hvg__route *r, const char *spec, hvg_err *err) {
  memset(r, 0, sizeof *r);
  const char *sp = strchr(spec, ' ');
  size_t ml = sp ? (size_t)(sp - spec) : 0;
  if (!sp || !ml || ml >= sizeof r->method)
    return hvg_err_set(err, HVG_EINVAL, spec,
                       "route: expected \"METHOD /path\"");
  if (!(ml == 1 && spec[0] == '*'))
    for (size_t i = 0; i < ml; i++)
      if (!hvg__is_tchar((unsigned char)spec[i]))
        return hvg_err_set(err, HVG_EINVAL, spec,
                           "route: the method is not an HTTP token");
  const char *path = sp + 1;
  if (*path != '/')
    return hvg_err_set(err, HVG_EINVAL, spec,
                       "route: the path must start with '/'");
  size_t pl = strlen(path);
  if (pl > HVG_HTTPD_MAX_PATH)
    return hvg_err_set(err, HVG_EINVAL, spec, "route: path too long");
  if (!(r->spec = strdup(spec)) || !(r->segbuf = malloc(pl + 1))) {
    hvg__route_free(r);
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  }
  if (!(ml == 1 && spec[0] == '*'))
    memcpy(r->method, spec, ml);
  memcpy(r->segbuf, path + 1, pl); /* with the NUL */
  r->subtree = path[pl - 1] == '/';
  if (pl == 1) /* "/": every path */
    return 0;
  if (r->subtree)
    r->segbuf[pl - 2] = '\0'; /* drop the trailing '/' */
  const char *why = NULL;
  char *p = r->segbuf;
  for (;;) {
    char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (slash)
      *slash = '\0';
    if (r->nseg == HVG_HTTPD_MAX_SEGMENTS) {
      why = "too many path segments";
      break;
    }
    hvg__seg *g = &r->seg[r->nseg++];
    if (n >= 2 && p[0] == '{' && p[n - 1] == '}') {
      p[n - 1] = '\0';
      if (!hvg__is_name(p + 1, n - 2)) {
        why = "parameter names are [A-Za-z_][A-Za-z0-9_]*, at most 31";
        break;
      }
      for (size_t i = 0; i + 1 < r->nseg; i++)
        if (!r->seg[i].lit && !strcmp(r->seg[i].name, p + 1))
          why = "repeated parameter name";
      if (why)
        break;
      if (r->nparams == HVG_HTTPD_MAX_PARAMS) {
        why = "too many parameters";
        break;
      }
      g->name = p + 1;
      r->nparams++;
    } else {
      if (!n) {
        why = "empty path segment";
        break;
      }
      for (size_t i = 0; i < n && !why; i++)
        if (!hvg__is_plit((unsigned char)p[i]))
          why = "literal segments take unreserved characters, sub-delims, "
                "':' and '@' only";
      if (!why && ((n == 1 && p[0] == '.') || (n == 2 && !strncmp(p, "..", 2))))
        why = "dot segment";
      if (why)
        break;
      g->lit = p;
    }
    if (!slash)
      break;
    p = slash + 1;
  }
  if (why) {
    int rc = hvg_err_set(err, HVG_EINVAL, spec, "route: %s", why);
    hvg__route_free(r);
    memset(r, 0, sizeof *r);
    return rc;
  }
  return 0;
}

static int hvg__same_shape(const hvg__route *a, const hvg__route *b) {
  if (strcmp(a->method, b->method) || a->subtree != b->subtree ||
      a->nseg != b->nseg)
    return 0;
  for (size_t i = 0; i < a->nseg; i++) {
    if (!a->seg[i].lit != !b->seg[i].lit)
      return 0;
    if (a->seg[i].lit && strcmp(a->seg[i].lit, b->seg[i].lit))
      return 0;
  }
  return 1;
}

/* >0 when a is more specific than b for the same path, <0 less, 0 tie. */
static int hvg__path_cmp(const hvg__route *a, const hvg__route *b) {
  if (a->subtree != b->subtree)
    return a->subtree ? -1 : 1;
  if (a->nseg != b->nseg) /* only subtrees differ in length */
    return a->nseg > b->nseg ? 1 : -1;
  for (size_t i = 0; i < a->nseg; i++)
    if (!a->seg[i].lit != !b->seg[i].lit)
      return a->seg[i].lit ? 1 : -1;
  return 0;
}

/* 3 the method itself, 2 GET serving HEAD, 1 any, 0 no match. */
static int hvg__method_rank(const hvg__route *r, const char *method) {
  if (!r->method[0])
    return 1;
  if (!strcmp(r->method, method))
    return 3;
  if (!strcmp(method, "HEAD") && !strcmp(r->method, "GET"))
    return 2;
  return 0;
}

static int hvg__hex(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static void hvg__allow_add(hvg_httpd_match *m, const char *method) {
  size_t len = strlen(m->allow), ml = strlen(method);
  for (const char *p = m->allow; *p;) { /* already listed? */
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n == ml && !strncmp(p, method, n))
      return;
    p = e ? e + 2 : p + n;
  }
  if (len + ml + 3 > sizeof m->allow)
    return;
  if (len) {
    memcpy(m->allow + len, ", ", 2);
    len += 2;
  }
  memcpy(m->allow + len, method, ml + 1);
}

void hvg_httpd_match_path(const hvg_httpd *s, const char *method,
                          const char *path, hvg_httpd_match *m) {
  m->status = 404;
  m->msg = "not found";
  m->route = NULL;
  m->rest = "";
  m->allow[0] = '\0';
  m->nparams = 0;
  m->hvg__route = NULL;
  if (!path || path[0] != '/' || !method) {
    m->status = 400;
    m->msg = "the request target is not an absolute path";
    return;
  }
  size_t plen = strlen(path);
  if (plen > HVG_HTTPD_MAX_PATH) {
    m->status = 414;
    m->msg = "request path too long";
    return;
  }
  /* Decode every segment once into the scratch area; keep the first
   * HVG_HTTPD_MAX_SEGMENTS + 1 (no pattern is longer). */
  const char *dseg[HVG_HTTPD_MAX_SEGMENTS + 1];
  size_t rawoff[HVG_HTTPD_MAX_SEGMENTS + 1];
  size_t nseg = 0;
  char *o = m->hvg__scratch;
  const char *p = path + 1;
  for (;;) {
    const char *start = o;
    size_t off = (size_t)(p - path);
    while (*p && *p != '/') {
      if (*p == '%') {
        int h = hvg__hex((unsigned char)p[1]);
        int l = h < 0 ? -1 : hvg__hex((unsigned char)p[2]);
        if (l < 0) {
          m->status = 400;
          m->msg = "bad percent-encoding in the path";
          return;
        }
        if (!(h | l)) {
          m->status = 400;
          m->msg = "encoded NUL in the path";
          return;
        }
        *o++ = (char)(h << 4 | l);
        p += 3;
      } else {
        *o++ = *p++;
      }
    }
    *o++ = '\0';
    size_t dl = (size_t)(o - start) - 1;
    if ((dl == 1 && start[0] == '.') ||
        (dl == 2 && start[0] == '.' && start[1] == '.')) {
      m->status = 400;
      m->msg = "dot segments are not allowed in the path";
      return;
    }
    if (nseg <= HVG_HTTPD_MAX_SEGMENTS) {
      dseg[nseg] = start;
      rawoff[nseg] = off;
    }
    nseg++;
    if (!*p)
      break;
    p++; /* the '/' */
  }
  const hvg__route *best = NULL;
  int best_rank = 0, path_matched = 0;
  for (size_t i = 0; s && i < s->nroutes; i++) {
    const hvg__route *r = &s->routes[i];
    if (r->subtree ? nseg <= r->nseg : nseg != r->nseg)
      continue;
    size_t k;
    for (k = 0; k < r->nseg; k++)
      if (r->seg[k].lit ? strcmp(r->seg[k].lit, dseg[k]) != 0 : !dseg[k][0])
        break;
    if (k < r->nseg)
      continue;
    path_matched = 1;
    int rank = hvg__method_rank(r, method);
    if (!rank) {
      hvg__allow_add(m, r->method);
      if (!strcmp(r->method, "GET"))
        hvg__allow_add(m, "HEAD");
      continue;
    }
    if (best) {
      int c = hvg__path_cmp(r, best);
      if (c < 0 || (c == 0 && rank <= best_rank))
        continue;
    }
    best = r;
    best_rank = rank;
  }
  if (!best) {
    if (path_matched) {
      m->status = 405;
      m->msg = "method not allowed";
    } else {
      m->allow[0] = '\0';
    }
    return;
  }
  m->status = 200;
  m->msg = "";
  m->allow[0] = '\0';
  m->route = best->spec;
  m->hvg__route = best;
  for (size_t k = 0; k < best->nseg; k++)
    if (!best->seg[k].lit) {
      m->params[m->nparams].name = best->seg[k].name;
      m->params[m->nparams++].value = dseg[k];
    }
  if (best->subtree)
    m->rest = path + rawoff[best->nseg];
}

/* ---- Server object ----------------------------------------------------- */

static int hvg__dup(char **dst, const char *src) {
  *dst = NULL;
  if (!src)
    return 0;
  return (*dst = strdup(src)) ? 0 : HVG_ENOMEM;
}

/* Splits "host:port" / "[v6]:port" into s->host and s->port_s. */
static int hvg__parse_listen(hvg_httpd *s, hvg_err *err) {
  const char *a = s->listen;
  const char *colon = strrchr(a, ':');
  if (!colon || colon == a || !colon[1])
    return hvg_err_set(err, HVG_EINVAL, "listen",
                       "expected host:port, got \"%.100s\"", a);
  const char *h = a;
  size_t hl = (size_t)(colon - a);
  if (*a == '[') {
    if (colon[-1] != ']' || hl < 3)
      return hvg_err_set(err, HVG_EINVAL, "listen",
                         "expected [address]:port, got \"%.100s\"", a);
    h++;
    hl -= 2;
  }
  long port = 0;
  for (const char *p = colon + 1; *p; p++) {
    if (*p < '0' || *p > '9' || p - colon > 5)
      return hvg_err_set(err, HVG_EINVAL, "listen", "bad port in \"%.100s\"",
                         a);
    port = port * 10 + (*p - '0');
  }
  if (port > 65535)
    return hvg_err_set(err, HVG_EINVAL, "listen", "port out of range");
  if (!(s->host = strndup(h, hl)) || !(s->port_s = strdup(colon + 1)))
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  return 0;
}

int hvg_httpd_new(hvg_httpd **out, const hvg_httpd_opts *opts, hvg_err *err) {
  *out = NULL;
  hvg_httpd *s = calloc(1, sizeof *s);
  if (!s)
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  if (opts)
    s->o = *opts;
  s->held_tail = &s->held;
  int rc = 0;
  if (s->o.timeout_s < 0 || s->o.drain_timeout_s < 0 || s->o.backlog < 0)
    rc = hvg_err_set(err, HVG_EINVAL, NULL, "negative timeout or backlog");
  else if (!s->o.cert_file != !s->o.key_file)
    rc = hvg_err_set(err, HVG_EINVAL, "tls",
                     "TLS needs both a certificate and a key file");
  else if (s->o.client_ca_file && !s->o.cert_file)
    rc = hvg_err_set(err, HVG_EINVAL, "tls",
                     "client certificates need TLS (cert_file, key_file)");
  else if (hvg__dup(&s->listen, s->o.listen ? s->o.listen : "127.0.0.1:0") ||
           hvg__dup(&s->cert, s->o.cert_file) ||
           hvg__dup(&s->key, s->o.key_file) ||
           hvg__dup(&s->ca, s->o.client_ca_file))
    rc = hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  else
    rc = hvg__parse_listen(s, err);
  if (rc) {
    hvg_httpd_free(s);
    return rc;
  }
  s->o.listen = s->listen;
  s->o.cert_file = s->cert;
  s->o.key_file = s->key;
  s->o.client_ca_file = s->ca;
  if (!s->o.max_header)
    s->o.max_header = (size_t)32 << 10;
  if (!s->o.max_body)
    s->o.max_body = (size_t)64 << 20;
  if (!s->o.timeout_s)
    s->o.timeout_s = 30;
  if (!s->o.drain_timeout_s)
    s->o.drain_timeout_s = 10;
  if (!s->o.backlog)
    s->o.backlog = 128;
  *out = s;
  return 0;
}

int hvg_httpd_route(hvg_httpd *s, const char *spec, hvg_httpd_handler fn,
                    void *ctx, hvg_err *err) {
  if (!s || !spec || !fn)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  if (s->state != HVG__NEW)
    return hvg_err_set(err, HVG_ESTATE, spec,
                       "routes are registered before the server starts");
  if (s->nroutes == HVG_HTTPD_MAX_ROUTES)
    return hvg_err_set(err, HVG_ETOOBIG, spec, "too many routes");
  hvg__route r;
  int rc = hvg__parse_spec(&r, spec, err);
  if (rc)
    return rc;
  for (size_t i = 0; i < s->nroutes; i++)
    if (hvg__same_shape(&s->routes[i], &r)) {
      hvg__route_free(&r);
      return hvg_err_set(err, HVG_EINVAL, spec,
                         "route: same method and pattern as \"%.200s\"",
                         s->routes[i].spec);
    }
  hvg__route *nr = realloc(s->routes, (s->nroutes + 1) * sizeof *nr);
  if (!nr) {
    hvg__route_free(&r);
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  }
  s->routes = nr;
  r.fn = fn;
  r.ctx = ctx;
  /* the segments point into r.segbuf, which moves with r: fine */
  s->routes[s->nroutes++] = r;
  return 0;
}

int hvg_httpd_error_renderer(hvg_httpd *s, const char *prefix,
                             hvg_httpd_error_fn fn, void *ctx, hvg_err *err) {
  if (!s || !prefix || !fn)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  if (prefix[0] != '/')
    return hvg_err_set(err, HVG_EINVAL, prefix,
                       "an error prefix must start with '/'");
  if (s->state != HVG__NEW)
    return hvg_err_set(err, HVG_ESTATE, prefix,
                       "error renderers are set before the server starts");
  for (size_t i = 0; i < s->nerrrs; i++)
    if (!strcmp(s->errrs[i].prefix, prefix)) {
      s->errrs[i].fn = fn;
      s->errrs[i].ctx = ctx;
      return 0;
    }
  if (s->nerrrs == HVG_HTTPD_MAX_ROUTES)
    return hvg_err_set(err, HVG_ETOOBIG, prefix, "too many error renderers");
  hvg__errr *ne = realloc(s->errrs, (s->nerrrs + 1) * sizeof *ne);
  if (!ne)
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  s->errrs = ne;
  hvg__errr *e = &s->errrs[s->nerrrs];
  if (!(e->prefix = strdup(prefix)))
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  e->len = strlen(prefix);
  e->fn = fn;
  e->ctx = ctx;
  s->nerrrs++;
  return 0;
}

int hvg_httpd_port(const hvg_httpd *s) {
  return s ? s->port : 0;
}

/* ---- Requests and responses -------------------------------------------- */

const char *hvg_httpd_header(const hvg_httpd_req *req, const char *name) {
  if (!req || !req->hvg__ev || !name)
    return NULL;
  return evhttp_find_header(evhttp_request_get_input_headers(req->hvg__ev),
                            name);
}

const char *hvg_httpd_path_param(const hvg_httpd_req *req, const char *name) {
  if (!req || !name)
    return NULL;
  for (size_t i = 0; i < req->nparams; i++)
    if (!strcmp(req->params[i].name, name))
      return req->params[i].value;
  return NULL;
}

void hvg_httpd_resp_status(hvg_httpd_resp *r, int status) {
  if (status >= 100 && status <= 599)
    r->status = status;
}

int hvg_httpd_resp_header(hvg_httpd_resp *r, const char *name,
                          const char *value) {
  if (!name || !*name || !value)
    return HVG_EINVAL;
  for (const char *p = name; *p; p++)
    if (!hvg__is_tchar((unsigned char)*p))
      return HVG_EINVAL;
  if (strpbrk(value, "\r\n"))
    return HVG_EINVAL;
  if (!strcasecmp(name, "Content-Length") ||
      !strcasecmp(name, "Transfer-Encoding") || !strcasecmp(name, "Connection"))
    return HVG_EINVAL;
  if (evhttp_add_header(r->hdrs, name, value)) {
    r->failed = 1;
    return HVG_ENOMEM;
  }
  return 0;
}

int hvg_httpd_resp_body(hvg_httpd_resp *r, const void *p, size_t n) {
  if (n && evbuffer_add(r->body, p, n)) {
    r->failed = 1;
    return HVG_ENOMEM;
  }
  return 0;
}

int hvg_httpd_resp_printf(hvg_httpd_resp *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = evbuffer_add_vprintf(r->body, fmt, ap);
  va_end(ap);
  if (n < 0) {
    r->failed = 1;
    return HVG_ENOMEM;
  }
  return 0;
}

typedef struct hvg__handover {
  void (*free_fn)(void *);
  void *p;
} hvg__handover;

static void hvg__free_plain(const void *data, size_t len, void *extra) {
  (void)len;
  (void)extra;
  free((void *)(uintptr_t)data);
}

static void hvg__free_custom(const void *data, size_t len, void *extra) {
  (void)data;
  (void)len;
  hvg__handover *h = extra;
  h->free_fn(h->p);
  free(h);
}

int hvg_httpd_resp_body_take(hvg_httpd_resp *r, void *p, size_t n,
                             void (*free_fn)(void *)) {
  if (!free_fn || free_fn == free) {
    if (evbuffer_add_reference(r->body, p, n, hvg__free_plain, NULL)) {
      free(p);
      r->failed = 1;
      return HVG_ENOMEM;
    }
    return 0;
  }
  hvg__handover *h = malloc(sizeof *h);
  if (!h || evbuffer_add_reference(r->body, p, n, hvg__free_custom, h)) {
    free(h);
    free_fn(p);
    r->failed = 1;
    return HVG_ENOMEM;
  }
  h->free_fn = free_fn;
  h->p = p;
  return 0;
}

int hvg_httpd_resp_body_buf(hvg_httpd_resp *r, hvg_buf *b) {
  if (!b->len) {
    hvg_buf_reset(b);
    return 0;
  }
  size_t n;
  char *p = hvg_buf_take(b, &n);
  if (!p) {
    hvg_buf_free(b);
    r->failed = 1;
    return HVG_ENOMEM;
  }
  return hvg_httpd_resp_body_take(r, p, n, NULL);
}

static void hvg__drop_body(hvg_httpd_resp *r) {
  evbuffer_drain(r->body, evbuffer_get_length(r->body));
}

int hvg_httpd_resp_send(hvg_httpd_resp *r, int status, const char *content_type,
                        const void *body, size_t n) {
  hvg_httpd_resp_status(r, status);
  hvg__drop_body(r);
  if (content_type) {
    evhttp_remove_header(r->hdrs, "Content-Type");
    int rc = hvg_httpd_resp_header(r, "Content-Type", content_type);
    if (rc)
      return rc;
  }
  return hvg_httpd_resp_body(r, body, n);
}

/* {"error": "msg"} with JSON escaping. */
static int hvg__default_error(hvg_httpd_resp *r, const char *msg) {
  evhttp_remove_header(r->hdrs, "Content-Type");
  if (evhttp_add_header(r->hdrs, "Content-Type", "application/json"))
    return HVG_ENOMEM;
  char buf[512];
  size_t n = 0;
  n += (size_t)snprintf(buf, sizeof buf, "{\"error\": \"");
  for (const unsigned char *p = (const unsigned char *)msg;
       *p && n < sizeof buf - 16; p++) {
    if (*p == '"' || *p == '\\') {
      buf[n++] = '\\';
      buf[n++] = (char)*p;
    } else if (*p < 0x20 || *p == 0x7f) {
      n += (size_t)snprintf(buf + n, sizeof buf - n, "\\u%04x", *p);
    } else {
      buf[n++] = (char)*p;
    }
  }
  memcpy(buf + n, "\"}\n", 3);
  n += 3;
  return evbuffer_add(r->body, buf, n) ? HVG_ENOMEM : 0;
}

static const hvg__errr *hvg__find_errr(const hvg_httpd *s, const char *path) {
  const hvg__errr *best = NULL;
  for (size_t i = 0; path && i < s->nerrrs; i++)
    if (!strncmp(path, s->errrs[i].prefix, s->errrs[i].len) &&
        (!best || s->errrs[i].len > best->len))
      best = &s->errrs[i];
  return best;
}

int hvg_httpd_resp_error(hvg_httpd_resp *r, int status, const char *msg) {
  if (status < 400 || status > 599)
    status = 500;
  if (!msg)
    msg = "";
  r->status = status;
  evhttp_clear_headers(r->hdrs);
  hvg__drop_body(r);
  r->failed = 0;
  const hvg__errr *e = r->in_error ? NULL : hvg__find_errr(r->s, r->req->path);
  if (e) {
    r->in_error = 1;
    int rc = e->fn(e->ctx, r->req, status, msg, r);
    r->in_error = 0;
    r->status = status;
    if (!rc && !r->failed)
      return 0;
    evhttp_clear_headers(r->hdrs);
    hvg__drop_body(r);
    r->failed = 0;
  }
  if (hvg__default_error(r, msg)) {
    r->failed = 1;
    return HVG_ENOMEM;
  }
  return 0;
}

/* ---- Responses in flight (for the graceful stop) ----------------------- */

static void hvg__maybe_finish(hvg_httpd *s) {
  if (s->stopping && !s->finishing && !s->flights)
    event_active(s->finish_ev, 0, 0);
}

static void hvg__flight_drop(hvg__flight *f) {
  hvg_httpd *s = f->s;
  if (f->prev)
    f->prev->next = f->next;
  else
    s->flights = f->next;
  if (f->next)
    f->next->prev = f->prev;
  free(f);
}

static void hvg__on_complete(struct evhttp_request *ev, void *arg) {
  (void)ev;
  hvg__flight *f = arg;
  hvg_httpd *s = f->s;
  hvg__flight_drop(f);
  hvg__maybe_finish(s);
}

static void hvg__on_close(struct evhttp_connection *evcon, void *arg) {
  hvg_httpd *s = arg;
  for (hvg__flight *f = s->flights, *next; f; f = next) {
    next = f->next;
    if (f->evcon == evcon)
      hvg__flight_drop(f);
  }
  hvg__maybe_finish(s);
}

/* ---- Dispatch ---------------------------------------------------------- */

static const char *hvg__method_name(enum evhttp_cmd_type t) {
  switch (t) {
  case EVHTTP_REQ_GET: return "GET";
  case EVHTTP_REQ_POST: return "POST";
  case EVHTTP_REQ_HEAD: return "HEAD";
  case EVHTTP_REQ_PUT: return "PUT";
  case EVHTTP_REQ_DELETE: return "DELETE";
  case EVHTTP_REQ_OPTIONS: return "OPTIONS";
  case EVHTTP_REQ_TRACE: return "TRACE";
  case EVHTTP_REQ_CONNECT: return "CONNECT";
  case EVHTTP_REQ_PATCH: return "PATCH";
  default: return "UNKNOWN";
  }
}

/* The verified client certificate of the connection, if any. */
static const hvg_httpd_peer *hvg__peer(SSL *ssl, hvg_httpd_peer *peer) {
  X509 *cert = SSL_get0_peer_certificate(ssl);
  if (!cert || SSL_get_verify_result(ssl) != X509_V_OK)
    return NULL;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdl = 0;
  if (!X509_digest(cert, EVP_sha256(), md, &mdl) || mdl != 32)
    return NULL;
  for (unsigned i = 0; i < mdl; i++)
    snprintf(peer->sha256 + 2 * i, 3, "%02x", md[i]);
  peer->cn[0] = '\0';
  const X509_NAME *nm = X509_get_subject_name(cert);
  int idx = X509_NAME_get_index_by_NID(nm, NID_commonName, -1);
  /* one CN only: with several, which one names the client is ambiguous */
  if (idx >= 0 && X509_NAME_get_index_by_NID(nm, NID_commonName, idx) < 0) {
    unsigned char *u8 = NULL;
    int n = ASN1_STRING_to_UTF8(
        &u8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(nm, idx)));
    if (n >= 0 && (size_t)n < sizeof peer->cn && !memchr(u8, 0, (size_t)n)) {
      memcpy(peer->cn, u8, (size_t)n);
      peer->cn[n] = '\0';
    }
    OPENSSL_free(u8);
  }
  return peer;
}

static double hvg__elapsed(const struct timespec *t0) {
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0->tv_sec) +
         (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Queues the response; tracks it until written. */
static void hvg__send(hvg_httpd *s, hvg_httpd_resp *r) {
  struct evhttp_connection *evcon = evhttp_request_get_connection(r->ev);
  if (r->failed) /* out of memory while building: a bare 500 */
    hvg_httpd_resp_error(r, 500, "out of memory");
  if (s->stopping || r->failed)
    evhttp_add_header(r->hdrs, "Connection", "close");
  size_t blen = evbuffer_get_length(r->body);
  if (evhttp_request_get_command(r->ev) == EVHTTP_REQ_HEAD) {
    /* libevent 2.1 would send the body: keep only its length */
    char cl[32];
    snprintf(cl, sizeof cl, "%zu", blen);
    evhttp_add_header(r->hdrs, "Content-Length", cl);
    hvg__drop_body(r);
  } else if (!blen) {
    evhttp_remove_header(r->hdrs, "Content-Type");
  }
  hvg__flight *f = malloc(sizeof *f);
  if (f) { /* without it the stop just does not wait for this one */
    f->s = s;
    f->evcon = evcon;
    f->prev = NULL;
    f->next = s->flights;
    if (f->next)
      f->next->prev = f;
    s->flights = f;
    evhttp_request_set_on_complete_cb(r->ev, hvg__on_complete, f);
    evhttp_connection_set_closecb(evcon, hvg__on_close, s);
  }
  evhttp_send_reply(r->ev, r->status, NULL, NULL);
}

static void hvg__send(hvg_httpd *s, hvg_httpd_resp *r);
static double hvg__elapsed(const struct timespec *t0);

/* The end of a batch: the hook decides (its changes durable, or an error
 * for all), then every held response goes out. */
static void hvg__flush(hvg_httpd *s) {
  if (!s->held)
    return;
  int status = s->o.on_batch ? s->o.on_batch(s->o.on_batch_ctx) : 0;
  hvg__held *h = s->held;
  s->held = NULL;
  s->held_tail = &s->held;
  while (h) {
    hvg__held *next = h->next;
    if (status >= 500 && status <= 599)
      hvg_httpd_resp_error(&h->rs, status,
                           "the changes of the request could not be stored");
    hvg__send(s, &h->rs);
    if (s->o.on_request)
      s->o.on_request(s->o.on_request_ctx, &h->rq, h->rs.status,
                      hvg__elapsed(&h->t0));
    free(h->path);
    free(h);
    h = next;
  }
}

static void hvg__on_batch(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  hvg__flush(arg);
}

/* Holds a handled response until the batch ends. 0, or -1 when out of
 * memory (the caller sends it at once, after flushing the batch). */
static int hvg__hold(hvg_httpd *s, const hvg_httpd_req *rq,
                     const hvg_httpd_resp *rs, const struct timespec *t0) {
  hvg__held *h = calloc(1, sizeof *h);
  if (!h || !(h->path = strdup(rq->path ? rq->path : "/"))) {
    free(h);
    return -1;
  }
  h->rq = *rq;
  h->rq.path = h->path; /* the rest of rq dies with the handler call */
  h->rq.rest = h->rq.body = h->rq.query = "";
  h->rq.body_len = 0;
  h->rq.params = NULL;
  h->rq.nparams = 0;
  h->rq.peer = NULL;
  h->rs = *rs;
  h->rs.req = &h->rq;
  h->t0 = *t0;
  *s->held_tail = h;
  s->held_tail = &h->next;
  if (s->held == h)
    event_active(s->batch_ev, EV_TIMEOUT, 1);
  return 0;
}

/* Routes rq (method, path, headers and body of rq->hvg__ev) into m and
 * runs the handler, or answers the routing error, into rs. */
static void hvg__serve(hvg_httpd *s, hvg_httpd_match *m, hvg_httpd_req *rq,
                       hvg_httpd_resp *rs) {
  hvg_httpd_match_path(s, rq->method, rq->path, m);
  if (m->status != 200) {
    hvg_httpd_resp_error(rs, m->status, m->msg);
    if (m->status == 405 && m->allow[0])
      evhttp_add_header(rs->hdrs, "Allow", m->allow);
    return;
  }
  const hvg__route *r = m->hvg__route;
  rq->route = m->route;
  rq->rest = m->rest;
  rq->params = m->params;
  rq->nparams = m->nparams;
  struct evbuffer *in = evhttp_request_get_input_buffer(rq->hvg__ev);
  size_t blen = evbuffer_get_length(in);
  char *body = NULL;
  if (!evbuffer_add(in, "", 1)) /* a NUL after the body */
    body = (char *)evbuffer_pullup(in, -1);
  if (!body) {
    hvg_httpd_resp_error(rs, 503, "out of memory");
    return;
  }
  rq->body = body;
  rq->body_len = blen;
  int rc = r->fn(r->ctx, rq, rs);
  if (rc < 0)
    hvg_httpd_resp_error(rs, 500, "internal error");
}

int hvg_httpd_dispatch(hvg_httpd *s, const char *method, const char *target,
                       const char *const *headers, const void *body,
                       size_t body_len, const hvg_httpd_peer *peer,
                       hvg_httpd_answer *out, hvg_err *err) {
  if (!s || !method || !target || !out || (!body && body_len))
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  memset(&out->status, 0, sizeof out->status);
  hvg_buf_reset(&out->headers);
  hvg_buf_reset(&out->body);
  struct evhttp_request *ev = evhttp_request_new(NULL, NULL);
  struct evhttp_uri *u = ev ? evhttp_uri_parse_with_flags(
                                  target, EVHTTP_URI_NONCONFORMANT)
                            : NULL;
  int rc = 0;
  if (!ev)
    rc = hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  else if (!u || !evhttp_uri_get_path(u) || evhttp_uri_get_path(u)[0] != '/')
    rc = hvg_err_set(err, HVG_EINVAL, "target", "not an origin-form target");
  for (size_t i = 0; !rc && headers && headers[i]; i++) {
    const char *colon = strchr(headers[i], ':');
    char name[256];
    if (!colon || colon == headers[i] ||
        (size_t)(colon - headers[i]) >= sizeof name) {
      rc = hvg_err_set(err, HVG_EINVAL, "headers", "not 'Name: value'");
      break;
    }
    memcpy(name, headers[i], (size_t)(colon - headers[i]));
    name[colon - headers[i]] = '\0';
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
      v++;
    if (evhttp_add_header(evhttp_request_get_input_headers(ev), name, v))
      rc = hvg_err_set(err, HVG_EINVAL, "headers", "a header libevent refuses");
  }
  if (!rc && body_len &&
      evbuffer_add(evhttp_request_get_input_buffer(ev), body, body_len))
    rc = hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  hvg_httpd_match *m = rc ? NULL : malloc(sizeof *m);
  if (!rc && !m)
    rc = hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  if (!rc) {
    hvg_httpd_req rq;
    memset(&rq, 0, sizeof rq);
    hvg_httpd_resp rs;
    memset(&rs, 0, sizeof rs);
    rs.s = s;
    rs.ev = ev;
    rs.req = &rq;
    rs.status = 200;
    rs.body = evhttp_request_get_output_buffer(ev);
    rs.hdrs = evhttp_request_get_output_headers(ev);
    rq.hvg__ev = ev;
    rq.method = method;
    rq.path = evhttp_uri_get_path(u);
    rq.query = evhttp_uri_get_query(u) ? evhttp_uri_get_query(u) : "";
    rq.rest = rq.body = "";
    rq.remote_addr = "127.0.0.1";
    rq.tls = peer != NULL;
    rq.peer = peer;
    hvg__serve(s, m, &rq, &rs);
    int bst = s->o.on_batch ? s->o.on_batch(s->o.on_batch_ctx) : 0;
    if (bst >= 500 && bst <= 599)
      hvg_httpd_resp_error(&rs, bst,
                           "the changes of the request could not be stored");
    if (rs.failed)
      hvg_httpd_resp_error(&rs, 500, "out of memory");
    /* the framing hvg__send adds on a connection */
    size_t blen = evbuffer_get_length(rs.body);
    if (!strcmp(method, "HEAD")) {
      char cl[32];
      snprintf(cl, sizeof cl, "%zu", blen);
      evhttp_add_header(rs.hdrs, "Content-Length", cl);
      hvg__drop_body(&rs);
    } else if (!blen) {
      evhttp_remove_header(rs.hdrs, "Content-Type");
    }
    out->status = rs.status;
    for (const struct evkeyval *h = rs.hdrs->tqh_first; h;
         h = h->next.tqe_next)
      if (hvg_buf_printf(&out->headers, "%s: %s\n", h->key, h->value))
        rc = hvg_err_set(err, HVG_ETOOBIG, "headers", NULL);
    size_t n = evbuffer_get_length(rs.body);
    char *dst = n ? hvg_buf_reserve(&out->body, n) : NULL;
    if (n && !dst)
      rc = hvg_err_set(err, HVG_ETOOBIG, "body", NULL);
    else if (n) {
      evbuffer_copyout(rs.body, dst, n);
      hvg_buf_commit(&out->body, n);
    }
    if (s->o.on_request)
      s->o.on_request(s->o.on_request_ctx, &rq, rs.status, 0);
  }
  free(m);
  if (u)
    evhttp_uri_free(u);
  if (ev)
    evhttp_request_free(ev);
  return rc;
}

static void hvg__on_request(struct evhttp_request *ev, void *arg) {
  hvg_httpd *s = arg;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
  hvg_httpd_req rq;
  memset(&rq, 0, sizeof rq);
  hvg_httpd_resp rs;
  memset(&rs, 0, sizeof rs);
  rs.s = s;
  rs.ev = ev;
  rs.req = &rq;
  rs.status = 200;
  rs.body = evhttp_request_get_output_buffer(ev);
  rs.hdrs = evhttp_request_get_output_headers(ev);
  rq.hvg__ev = ev;
  rq.method = hvg__method_name(evhttp_request_get_command(ev));
  const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(ev);
  rq.path = u ? evhttp_uri_get_path(u) : NULL;
  rq.query = u ? evhttp_uri_get_query(u) : NULL;
  if (!rq.query)
    rq.query = "";
  rq.rest = "";
  rq.body = "";
  char *addr = NULL;
  ev_uint16_t port = 0;
  evhttp_connection_get_peer(evcon, &addr, &port);
  rq.remote_addr = addr ? addr : "";
  rq.remote_port = port;
  hvg_httpd_peer peer;
  if (s->ssl) {
    SSL *ssl =
        bufferevent_openssl_get_ssl(evhttp_connection_get_bufferevent(evcon));
    if (!ssl) { /* libevent fell back to plain TCP (no memory for TLS) */
      hvg_httpd_resp_error(&rs, 500, "TLS unavailable");
      rs.failed = 1; /* closes the connection */
      hvg__send(s, &rs);
      return;
    }
    rq.tls = 1;
    rq.peer = hvg__peer(ssl, &peer);
  }
  hvg__serve(s, &s->m, &rq, &rs);
  if (s->o.on_batch && hvg__hold(s, &rq, &rs, &t0) == 0)
    return; /* sent when the batch ends */
  hvg__flush(s); /* no memory to hold it: what came before goes first */
  if (s->o.on_batch && s->o.on_batch(s->o.on_batch_ctx))
    hvg_httpd_resp_error(&rs, 503, "the changes could not be stored");
  hvg__send(s, &rs);
  if (s->o.on_request)
    s->o.on_request(s->o.on_request_ctx, &rq, rs.status, hvg__elapsed(&t0));
}

/* ---- TLS ---------------------------------------------------------------- */

static int hvg__ssl_fail(hvg_err *err, const char *what, const char *file) {
  unsigned long e = ERR_get_error();
  char reason[256] = "";
  if (e)
    ERR_error_string_n(e, reason, sizeof reason);
  ERR_clear_error();
  return hvg_err_set(err, HVG_ECONFIG, "tls", "%s %.200s: %s", what,
                     file ? file : "", e ? reason : "failed");
}

static int hvg__tls_setup(hvg_httpd *s, hvg_err *err) {
  ERR_clear_error();
  SSL_CTX *c = SSL_CTX_new(TLS_server_method());
  if (!c)
    return hvg_err_set(err, HVG_ENOMEM, "tls", "cannot create a TLS context");
  s->ssl = c;
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                             SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_use_certificate_chain_file(c, s->cert) != 1)
    return hvg__ssl_fail(err, "cannot load the certificate", s->cert);
  if (SSL_CTX_use_PrivateKey_file(c, s->key, SSL_FILETYPE_PEM) != 1)
    return hvg__ssl_fail(err, "cannot load the private key", s->key);
  if (SSL_CTX_check_private_key(c) != 1)
    return hvg__ssl_fail(err, "the private key does not match", s->cert);
  static const unsigned char sid[] = "hvgate";
  SSL_CTX_set_session_id_context(c, sid, sizeof sid - 1);
  if (s->ca) {
    if (SSL_CTX_load_verify_locations(c, s->ca, NULL) != 1)
      return hvg__ssl_fail(err, "cannot load the client CA file", s->ca);
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(s->ca);
    if (!names)
      return hvg__ssl_fail(err, "no CA names in", s->ca);
    SSL_CTX_set_client_CA_list(c, names);
    SSL_CTX_set_verify(
        c,
        SSL_VERIFY_PEER |
            (s->o.client_cert_optional ? 0 : SSL_VERIFY_FAIL_IF_NO_PEER_CERT),
        NULL);
    SSL_CTX_set_verify_depth(c, 8);
  }
  return 0;
}

static struct bufferevent *hvg__bevcb(struct event_base *base, void *arg) {
  hvg_httpd *s = arg;
  SSL *ssl = SSL_new(s->ssl);
  if (!ssl)
    return NULL; /* hvg__on_request refuses the plain connection */
  return bufferevent_openssl_socket_new(
      base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

/* ---- Loop thread, start and stop --------------------------------------- */

static void hvg__on_finish(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  hvg_httpd *s = arg;
  hvg__flush(s);
  s->finishing = 1;
  evtimer_del(s->drain_ev);
  if (s->http) {
    evhttp_free(s->http); /* closes the remaining (idle) connections */
    s->http = NULL;
  }
  event_base_loopbreak(s->base);
}

static void hvg__on_stop(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  hvg_httpd *s = arg;
  if (s->stopping)
    return;
  hvg__flush(s); /* what was handled is answered before the drain */
  s->stopping = 1;
  if (s->bound) {
    evhttp_del_accept_socket(s->http, s->bound);
    s->bound = NULL;
  }
  struct timeval tv = {s->o.drain_timeout_s, 0};
  evtimer_add(s->drain_ev, &tv);
  hvg__maybe_finish(s);
}

static void *hvg__loop(void *arg) {
  hvg_httpd *s = arg;
  event_base_dispatch(s->base);
  return NULL;
}

static void hvg__threads_once(void) {
  evthread_use_pthreads();
}

/* Resolves and binds the listening socket. */
static int hvg__bind(hvg_httpd *s, hvg_err *err) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int gai = getaddrinfo(s->host, s->port_s, &hints, &res);
  if (gai)
    return hvg_err_set(err, HVG_EIO, "listen", "cannot resolve %.200s: %s",
                       s->host, gai_strerror(gai));
  struct evconnlistener *lev = NULL;
  int saved = 0;
  for (struct addrinfo *ai = res; ai && !lev; ai = ai->ai_next) {
    lev = evconnlistener_new_bind(
        s->base, NULL, NULL,
        LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        s->o.backlog, ai->ai_addr, (int)ai->ai_addrlen);
    if (!lev)
      saved = errno;
  }
  freeaddrinfo(res);
  if (!lev)
    return hvg_err_set(err, HVG_EIO, "listen", "cannot listen on %.200s: %s",
                       s->listen, strerror(saved));
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&ss, &sl)) {
    saved = errno;
    evconnlistener_free(lev);
    return hvg_err_set(err, HVG_EIO, "listen", "getsockname: %s",
                       strerror(saved));
  }
  s->port =
      ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                     : ((struct sockaddr_in *)&ss)->sin_port);
  if (!(s->bound = evhttp_bind_listener(s->http, lev))) {
    evconnlistener_free(lev);
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  }
  return 0;
}

/* Undoes a failed start. */
static void hvg__teardown(hvg_httpd *s) {
  while (s->held) { /* never sent: the connections are gone */
    hvg__held *h = s->held;
    s->held = h->next;
    free(h->path);
    free(h);
  }
  s->held_tail = &s->held;
  if (s->batch_ev)
    event_free(s->batch_ev);
  s->batch_ev = NULL;
  if (s->stop_ev)
    event_free(s->stop_ev);
  if (s->finish_ev)
    event_free(s->finish_ev);
  if (s->drain_ev)
    event_free(s->drain_ev);
  s->stop_ev = s->finish_ev = s->drain_ev = NULL;
  if (s->http)
    evhttp_free(s->http);
  s->http = NULL;
  s->bound = NULL;
  if (s->base)
    event_base_free(s->base);
  s->base = NULL;
  SSL_CTX_free(s->ssl);
  s->ssl = NULL;
  while (s->flights)
    hvg__flight_drop(s->flights);
  s->port = 0;
}

int hvg_httpd_start(hvg_httpd *s, hvg_err *err) {
  if (!s)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  if (s->state != HVG__NEW)
    return hvg_err_set(err, HVG_ESTATE, NULL, "the server was started before");
  /* libevent's locking, once per process: hvg_httpd_stop wakes the loop
   * from another thread. */
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, hvg__threads_once);
  int rc = 0;
  if (s->cert && (rc = hvg__tls_setup(s, err)))
    goto fail;
  /* three priorities: evhttp's events take the middle one, the end of a
   * batch the last, so it runs once the ready requests were handled */
  if (!(s->base = event_base_new()) || event_base_priority_init(s->base, 3) ||
      !(s->http = evhttp_new(s->base)) ||
      !(s->batch_ev = event_new(s->base, -1, 0, hvg__on_batch, s)) ||
      event_priority_set(s->batch_ev, 2) ||
      !(s->stop_ev = event_new(s->base, -1, 0, hvg__on_stop, s)) ||
      !(s->finish_ev = event_new(s->base, -1, 0, hvg__on_finish, s)) ||
      !(s->drain_ev = evtimer_new(s->base, hvg__on_finish, s))) {
    rc = hvg_err_set(err, HVG_ENOMEM, NULL, "cannot create the event loop");
    goto fail;
  }
  evhttp_set_max_headers_size(s->http, (ev_ssize_t)s->o.max_header);
  evhttp_set_max_body_size(s->http, (ev_ssize_t)s->o.max_body);
  evhttp_set_timeout(s->http, s->o.timeout_s);
  evhttp_set_allowed_methods(
      s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                   EVHTTP_REQ_PATCH);
  evhttp_set_default_content_type(s->http, NULL);
  evhttp_set_gencb(s->http, hvg__on_request, s);
  if (s->ssl)
    evhttp_set_bevcb(s->http, hvg__bevcb, s);
  if ((rc = hvg__bind(s, err)))
    goto fail;
  /* the loop thread takes no signals: they go to the daemon's main thread,
   * and a write to a closed socket gives EPIPE instead of killing us */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int e = pthread_create(&s->thread, NULL, hvg__loop, s);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (e) {
    rc = hvg_err_set(err, HVG_ENOMEM, NULL,
                     "cannot start the server thread: %s", strerror(e));
    goto fail;
  }
  s->state = HVG__RUNNING;
  return 0;
fail:
  hvg__teardown(s);
  return rc;
}

int hvg_httpd_stop(hvg_httpd *s) {
  if (!s || s->state != HVG__RUNNING)
    return 0;
  if (pthread_equal(pthread_self(), s->thread))
    return HVG_ESTATE;
  event_active(s->stop_ev, 0, 0); /* thread-safe: wakes the loop */
  pthread_join(s->thread, NULL);
  s->state = HVG__STOPPED;
  return 0;
}

void hvg_httpd_free(hvg_httpd *s) {
  if (!s)
    return;
  if (s->state == HVG__RUNNING && hvg_httpd_stop(s))
    return; /* from a handler: cannot free the running server */
  hvg__teardown(s);
  for (size_t i = 0; i < s->nroutes; i++)
    hvg__route_free(&s->routes[i]);
  free(s->routes);
  for (size_t i = 0; i < s->nerrrs; i++)
    free(s->errrs[i].prefix);
  free(s->errrs);
  free(s->listen);
  free(s->host);
  free(s->port_s);
  free(s->cert);
  free(s->key);
  free(s->ca);
  free(s);
}
