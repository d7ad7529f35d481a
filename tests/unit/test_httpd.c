/* The daemon's HTTP server over real loopback connections (libcurl as the
 * client): routes and decoded parameters, 404/405/400, per-prefix error
 * bodies, header lookup, HEAD, the body and header caps, many clients at
 * once, slow clients timed out, a graceful stop that lets the request in
 * flight finish, and mutual TLS with a CA, server and client certificates
 * made here with OpenSSL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hvg_httpd.h"
#include "hvg_metrics.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- client helpers ---------------------------------------------------- */

typedef struct reply {
  long status;
  CURLcode rc;
  hvg_buf body;
  char ctype[128];
  char allow[128];
  char conn[64];
} reply;

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
  reply *r = ud;
  return hvg_buf_add(&r->body, p, sz * n) ? 0 : sz * n;
}

static void hval(char *dst, size_t cap, const char *p, size_t n) {
  while (n && (*p == ' ')) {
    p++;
    n--;
  }
  while (n && (p[n - 1] == '\r' || p[n - 1] == '\n'))
    n--;
  snprintf(dst, cap, "%.*s", (int)n, p);
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
  reply *r = ud;
  size_t len = sz * n;
  if (len > 13 && !strncasecmp(p, "content-type:", 13))
    hval(r->ctype, sizeof r->ctype, p + 13, len - 13);
  else if (len > 6 && !strncasecmp(p, "allow:", 6))
    hval(r->allow, sizeof r->allow, p + 6, len - 6);
  else if (len > 11 && !strncasecmp(p, "connection:", 11))
    hval(r->conn, sizeof r->conn, p + 11, len - 11);
  return len;
}

typedef struct tls_files {
  const char *ca, *cert, *key; /* client side: CA to trust, client cert */
} tls_files;

/* One request on handle c (reused across calls for keep-alive). */
static void req_on(CURL *c, reply *r, const char *method, const char *url,
                   const char *body, long blen, const char *const *hdrs,
                   const tls_files *tls) {
  memset(r, 0, sizeof *r);
  hvg_buf_init(&r->body, (size_t)64 << 20);
  struct curl_slist *hl = NULL;
  for (const char *const *h = hdrs; h && *h; h++)
    hl = curl_slist_append(hl, *h);
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L); /* send dot segments raw */
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
  if (!strcmp(method, "HEAD"))
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  else if (strcmp(method, "GET"))
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if (body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, blen);
  }
  if (hl)
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
  if (tls) {
    curl_easy_setopt(c, CURLOPT_CAINFO, tls->ca);
    if (tls->cert) {
      curl_easy_setopt(c, CURLOPT_SSLCERT, tls->cert);
      curl_easy_setopt(c, CURLOPT_SSLKEY, tls->key);
    }
  }
  r->rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  curl_slist_free_all(hl);
}

static void req(reply *r, const char *method, const char *url, const char *body,
                long blen, const char *const *hdrs) {
  CURL *c = curl_easy_init();
  assert_non_null(c);
  req_on(c, r, method, url, body, blen, hdrs, NULL);
  curl_easy_cleanup(c);
}

static const char *text(const reply *r) {
  return r->body.data ? r->body.data : "";
}

static void reply_free(reply *r) {
  hvg_buf_free(&r->body);
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void nap_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

/* ---- handlers ---------------------------------------------------------- */

typedef struct app {
  atomic_int requests; /* on_request calls */
  atomic_int last_status;
  atomic_size_t max_body; /* largest body a handler saw */
  atomic_int slow_entered;
  hvg_metrics *metrics;
  hvg_metric *req_total;
} app;

static int h_hello(void *ctx, const hvg_httpd_req *rq, hvg_httpd_resp *rs) {
  (void)ctx;
  (void)rq;
  return hvg_httpd_resp_send(rs, 200, "text/plain", "hello\n", 6);
}

static int h_record(void *ctx, const hvg_httpd_req *rq, hvg_httpd_resp *rs) {
  app *a = ctx;
  size_t seen = atomic_load(&a->max_body);
  while (rq->body_len > seen &&
         !atomic_compare_exchange_weak(&a->max_body, &seen, rq->body_len))
    ;
  const char *h = hvg_httpd_header(rq, "x-TEST");
  hvg_httpd_resp_status(rs, 201);
  int rc = hvg_httpd_resp_header(rs, "Content-Type", "text/plain");
  if (!rc)
    rc = hvg_httpd_resp_header(rs, "Location", "/hv/x/records/1");
  if (!rc)
    rc = hvg_httpd_resp_printf(
        rs, "program=%s len=%zu nul=%d hdr=%s q=%s route=%s tls=%d",
        hvg_httpd_path_param(rq, "program"), rq->body_len,
        rq->body[rq->body_len] == '\0', h ? h : "-", rq->query, rq->route,
        rq->tls);
  return rc;
}

static int h_item(void *ctx, const hvg_httpd_req *rq, hvg_httpd_resp *rs) {
  (void)ctx;
  char b[128];
  int n = snprintf(b, sizeof b, "%s item %s", rq->method,
                   hvg_httpd_path_param(rq, "id"));
  return hvg_httpd_resp_send(rs, 200, "text/plain", b, (size_t)n);
}

static int h_special(void *ctx, const hvg_httpd_req *rq, hvg_httpd_resp *rs) {
  (void)ctx;
  (void)rq;
  char *p = strdup("special");
  if (!p)
    return HVG_ENOMEM;
  hvg_httpd_resp_header(rs, "Content-Type", "text/plain");
  return hvg_httpd_resp_body_take(rs, p, 7, NULL); /* handed over */
}

static int h_fhir(void *ctx, const hvg_httpd_req *rq, hvg_httpd_resp *rs) {
  (void)ctx;
  if (!strcmp(rq->rest, "Unknown"))
    return hvg_httpd_resp_error(rs, 404, "unknown resource type \"Unknown\"");
  hvg_buf b;
  hvg_buf_init(&b, 1024);
  int rc = hvg_buf_printf(&b, "%s fhir rest=%s", rq->method, rq->rest);
  if (!rc)
    rc = hvg_httpd_resp_header(rs, "Content-Type", "application/fhir+json");
  if (!rc)
    rc = hvg_httpd_resp_body_buf(rs, &b);
  hvg_buf_free(&b);
  return rc;
}

static int h_fail(void *ctx, const hvg_httpd_req *rq, hvg_httpd_resp *rs) {
  (void)ctx;
  (void)rq;
  hvg_httpd_resp_send(rs, 200, "text/plain", "partial", 7); /* discarded */
  return HVG_EIO;
}

static int h_slow(void *ctx, const hvg_httpd_req *rq, hvg_httpd_resp *rs) {
  app *a = ctx;
  (void)rq;
  atomic_store(&a->slow_entered, 1);
  nap_ms(400);
  return hvg_httpd_resp_send(rs, 200, "text/plain", "done", 4);
}

#define BIG ((size_t)16 << 20)

static int h_big(void *ctx, const hvg_httpd_req *rq, hvg_httpd_resp *rs) {
  (void)ctx;
  (void)rq;
  char *p = malloc(BIG);
  if (!p)
    return HVG_ENOMEM;
  memset(p, 'b', BIG);
  hvg_httpd_resp_header(rs, "Content-Type", "application/octet-stream");
  return hvg_httpd_resp_body_take(rs, p, BIG, free);
}

static int h_whoami(void *ctx, const hvg_httpd_req *rq, hvg_httpd_resp *rs) {
  (void)ctx;
  hvg_httpd_resp_header(rs, "Content-Type", "text/plain");
  return hvg_httpd_resp_printf(rs, "tls=%d cn=%s fp=%s", rq->tls,
                               rq->peer ? rq->peer->cn : "-",
                               rq->peer ? rq->peer->sha256 : "-");
}

static int h_metrics(void *ctx, const hvg_httpd_req *rq, hvg_httpd_resp *rs) {
  app *a = ctx;
  (void)rq;
  hvg_buf b;
  hvg_buf_init(&b, 1 << 20);
  int rc = hvg_metrics_render(a->metrics, &b);
  if (!rc)
    rc = hvg_httpd_resp_header(rs, "Content-Type", HVG_METRICS_CONTENT_TYPE);
  if (!rc)
    rc = hvg_httpd_resp_body_buf(rs, &b);
  hvg_buf_free(&b);
  return rc;
}

/* FHIR errors as an OperationOutcome. */
static int fhir_error(void *ctx, const hvg_httpd_req *rq, int status,
                      const char *msg, hvg_httpd_resp *rs) {
  (void)ctx;
  (void)rq;
  const char *code = status == 404   ? "not-found"
                     : status == 405 ? "not-supported"
                                     : "exception";
  int rc = hvg_httpd_resp_header(rs, "Content-Type", "application/fhir+json");
  if (!rc)
    rc = hvg_httpd_resp_printf(
        rs,
        "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":"
        "\"error\",\"code\":\"%s\",\"diagnostics\":\"%s\"}]}",
        code, status == 404 ? "not found" : "error");
  (void)msg;
  return rc;
}

static void on_request(void *ctx, const hvg_httpd_req *rq, int status,
                       double seconds) {
  app *a = ctx; /* on the server thread: no cmocka asserts here */
  atomic_fetch_add(&a->requests, 1);
  atomic_store(&a->last_status, seconds >= 0 ? status : -1);
  if (a->req_total) {
    char st[8];
    snprintf(st, sizeof st, "%d", status);
    const char *v[] = {rq->route ? rq->route : "none", st};
    hvg_metric_add(a->req_total, v, 1);
  }
}

static hvg_httpd *serve(app *a, hvg_httpd_opts *o) {
  hvg_httpd_opts d = {0};
  if (!o)
    o = &d;
  o->on_request = on_request;
  o->on_request_ctx = a;
  hvg_httpd *s;
  hvg_err err;
  assert_int_equal(hvg_httpd_new(&s, o, &err), 0);
  assert_int_equal(hvg_httpd_route(s, "GET /hello", h_hello, a, &err), 0);
  assert_int_equal(
      hvg_httpd_route(s, "POST /hv/{program}/records", h_record, a, &err), 0);
  assert_int_equal(hvg_httpd_route(s, "GET /items/{id}", h_item, a, &err), 0);
  assert_int_equal(hvg_httpd_route(s, "DELETE /items/{id}", h_item, a, &err),
                   0);
  assert_int_equal(hvg_httpd_route(s, "GET /items/special", h_special, a, &err),
                   0);
  assert_int_equal(hvg_httpd_route(s, "* /fhir/", h_fhir, a, &err), 0);
  assert_int_equal(hvg_httpd_route(s, "GET /fail", h_fail, a, &err), 0);
  assert_int_equal(hvg_httpd_route(s, "GET /slow", h_slow, a, &err), 0);
  assert_int_equal(hvg_httpd_route(s, "GET /big", h_big, a, &err), 0);
  assert_int_equal(hvg_httpd_route(s, "GET /whoami", h_whoami, a, &err), 0);
  assert_int_equal(hvg_httpd_route(s, "GET /metrics", h_metrics, a, &err), 0);
  assert_int_equal(hvg_httpd_error_renderer(s, "/fhir", fhir_error, a, &err),
                   0);
  int rc = hvg_httpd_start(s, &err);
  if (rc)
    fail_msg("start: %s", err.msg);
  assert_true(hvg_httpd_port(s) > 0);
  return s;
}

static void url(char *b, size_t n, const hvg_httpd *s, const char *path) {
  snprintf(b, n, "http://127.0.0.1:%d%s", hvg_httpd_port(s), path);
}

/* Sends raw bytes on a new connection, reads until the server closes. */
static size_t raw_exchange(int port, const char *msg, char *out, size_t cap) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(send(fd, msg, strlen(msg), MSG_NOSIGNAL),
                   (ssize_t)strlen(msg));
  size_t n = 0;
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 5000), 1);
    ssize_t k = recv(fd, out + n, cap - 1 - n, 0);
    if (k <= 0)
      break;
    n += (size_t)k;
  }
  out[n] = '\0';
  close(fd);
  return n;
}

/* Drops the Date header lines (they change). */
static void drop_dates(char *t) {
  char *d;
  while ((d = strstr(t, "Date: "))) {
    char *e = strstr(d, "\r\n");
    assert_non_null(e);
    memmove(d, e + 2, strlen(e + 2) + 1);
  }
}

/* ---- tests -------------------------------------------------------------- */

static void test_routes(void **state) {
  (void)state;
  app a = {0};
  hvg_httpd *s = serve(&a, NULL);
  char u[256];
  reply r;

  url(u, sizeof u, s, "/hello");
  req(&r, "GET", u, NULL, 0, NULL);
  assert_int_equal(r.rc, CURLE_OK);
  assert_int_equal(r.status, 200);
  assert_string_equal(text(&r), "hello\n");
  assert_string_equal(r.ctype, "text/plain");
  reply_free(&r);

  req(&r, "HEAD", u, NULL, 0, NULL); /* GET serves HEAD, without a body */
  assert_int_equal(r.rc, CURLE_OK);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.body.len, 0);
  reply_free(&r);
  /* pipelined on one connection: HEAD sends no body, framing holds */
  char raw[4096];
  raw_exchange(hvg_httpd_port(s),
               "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
               "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
               "HEAD /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
               raw, sizeof raw);
  drop_dates(raw);
  assert_string_equal(raw, "HTTP/1.1 200 OK\r\n"
                           "Content-Type: text/plain\r\n"
                           "Content-Length: 6\r\n\r\n"
                           "HTTP/1.1 200 OK\r\n"
                           "Content-Type: text/plain\r\n"
                           "Content-Length: 6\r\n\r\n"
                           "hello\n"
                           "HTTP/1.1 404 Not Found\r\n"
                           "Content-Type: application/json\r\n"
                           "Content-Length: 23\r\n"
                           "Connection: close\r\n\r\n");

  static const char *const hdrs[] = {"X-Test: abc def", NULL};
  url(u, sizeof u, s, "/hv/prog%201%2F%C3%A9/records?since=2024-01-01&x=%20");
  req(&r, "POST", u, "{\"a\":1}", 7, hdrs);
  assert_int_equal(r.status, 201);
  assert_string_equal(text(&r),
                      "program=prog 1/\xc3\xa9 len=7 nul=1 hdr=abc def "
                      "q=since=2024-01-01&x=%20 route=POST "
                      "/hv/{program}/records tls=0");
  reply_free(&r);

  url(u, sizeof u, s, "/hv/p/records");
  req(&r, "POST", u, "", 0, NULL); /* empty body, no header */
  assert_int_equal(r.status, 201);
  assert_string_equal(text(&r), "program=p len=0 nul=1 hdr=- q= route=POST "
                                "/hv/{program}/records tls=0");
  reply_free(&r);

  url(u, sizeof u, s, "/items/42");
  req(&r, "GET", u, NULL, 0, NULL);
  assert_string_equal(text(&r), "GET item 42");
  reply_free(&r);
  req(&r, "DELETE", u, NULL, 0, NULL);
  assert_string_equal(text(&r), "DELETE item 42");
  reply_free(&r);
  url(u, sizeof u, s, "/items/special"); /* the literal beats {id} */
  req(&r, "GET", u, NULL, 0, NULL);
  assert_string_equal(text(&r), "special");
  reply_free(&r);
  url(u, sizeof u, s, "/items/%73pecial"); /* decoded before comparing */
  req(&r, "GET", u, NULL, 0, NULL);
  assert_string_equal(text(&r), "special");
  reply_free(&r);
  url(u, sizeof u, s, "/items/special"); /* DELETE falls back to {id} */
  req(&r, "DELETE", u, NULL, 0, NULL);
  assert_string_equal(text(&r), "DELETE item special");
  reply_free(&r);

  url(u, sizeof u, s, "/fhir/Patient/123?_format=json");
  req(&r, "PUT", u, "{}", 2, NULL);
  assert_int_equal(r.status, 200);
  assert_string_equal(text(&r), "PUT fhir rest=Patient/123");
  assert_string_equal(r.ctype, "application/fhir+json");
  reply_free(&r);
  url(u, sizeof u, s, "/fhir/");
  req(&r, "GET", u, NULL, 0, NULL);
  assert_string_equal(text(&r), "GET fhir rest=");
  reply_free(&r);

  assert_true(atomic_load(&a.requests) >= 10);
  hvg_httpd_free(s);
}

static void test_errors(void **state) {
  (void)state;
  app a = {0};
  hvg_httpd *s = serve(&a, NULL);
  char u[256];
  reply r;

  url(u, sizeof u, s, "/nope");
  req(&r, "GET", u, NULL, 0, NULL);
  assert_int_equal(r.status, 404);
  assert_string_equal(r.ctype, "application/json");
  assert_string_equal(text(&r), "{\"error\": \"not found\"}\n");
  reply_free(&r);
  assert_int_equal(atomic_load(&a.last_status), 404);

  url(u, sizeof u, s, "/hello");
  req(&r, "POST", u, "x", 1, NULL);
  assert_int_equal(r.status, 405);
  assert_string_equal(r.allow, "GET, HEAD");
  assert_string_equal(text(&r), "{\"error\": \"method not allowed\"}\n");
  reply_free(&r);
  url(u, sizeof u, s, "/items/7");
  req(&r, "PUT", u, "x", 1, NULL);
  assert_int_equal(r.status, 405);
  assert_string_equal(r.allow, "GET, HEAD, DELETE");
  reply_free(&r);

  url(u, sizeof u, s, "/hello/");
  req(&r, "GET", u, NULL, 0, NULL);
  assert_int_equal(r.status, 404);
  reply_free(&r);
  url(u, sizeof u, s, "/hv//records");
  req(&r, "POST", u, "x", 1, NULL);
  assert_int_equal(r.status, 404);
  reply_free(&r);

  /* bad paths: 400, the body from the renderer of the prefix */
  static const char *const bad[] = {
      "/items/%zz", "/items/%4",    "/items/%00", "/fhir/a/%2e%2E/b",
      "/fhir/./x",  "/fhir/a/../b", "/items/.."};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    url(u, sizeof u, s, bad[i]);
    req(&r, "GET", u, NULL, 0, NULL);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.ctype, strncmp(bad[i], "/fhir", 5)
                                     ? "application/json"
                                     : "application/fhir+json");
    reply_free(&r);
  }

  url(u, sizeof u, s, "/fail"); /* a failing handler: 500, nothing leaks */
  req(&r, "GET", u, NULL, 0, NULL);
  assert_int_equal(r.status, 500);
  assert_string_equal(text(&r), "{\"error\": \"internal error\"}\n");
  reply_free(&r);

  /* per-prefix error bodies: the FHIR part answers OperationOutcome */
  url(u, sizeof u, s, "/fhir");
  req(&r, "GET", u, NULL, 0, NULL);
  assert_int_equal(r.status, 404);
  assert_string_equal(r.ctype, "application/fhir+json");
  assert_string_equal(text(&r),
                      "{\"resourceType\":\"OperationOutcome\",\"issue\":[{"
                      "\"severity\":\"error\",\"code\":\"not-found\","
                      "\"diagnostics\":\"not found\"}]}");
  reply_free(&r);
  url(u, sizeof u, s, "/fhir/Unknown"); /* asked for by the handler */
  req(&r, "GET", u, NULL, 0, NULL);
  assert_int_equal(r.status, 404);
  assert_string_equal(r.ctype, "application/fhir+json");
  assert_non_null(strstr(text(&r), "\"not-found\""));
  reply_free(&r);

  url(u, sizeof u, s, "/hello"); /* TRACE: libevent's own 501 */
  req(&r, "TRACE", u, NULL, 0, NULL);
  assert_int_equal(r.status, 501);
  reply_free(&r);
  hvg_httpd_free(s);
}

static void test_body_limit(void **state) {
  (void)state;
  app a = {0};
  hvg_httpd_opts o = {0};
  o.max_body = 1024;
  hvg_httpd *s = serve(&a, &o);
  char u[256];
  url(u, sizeof u, s, "/hv/p/records");
  char *big = malloc((size_t)2 << 20);
  assert_non_null(big);
  memset(big, 'x', (size_t)2 << 20);
  reply r;

  req(&r, "POST", u, big, 1024, NULL); /* exactly the cap */
  assert_int_equal(r.status, 201);
  assert_non_null(strstr(text(&r), "len=1024 "));
  reply_free(&r);

  req(&r, "POST", u, big, 1025, NULL); /* Content-Length over the cap */
  assert_int_equal(r.status, 413);
  reply_free(&r);

  /* 2 MiB: libcurl sends Expect: 100-continue, refused before the body */
  req(&r, "POST", u, big, (long)2 << 20, NULL);
  assert_int_equal(r.status, 413);
  reply_free(&r);

  /* chunked: refused when the body passes the cap */
  static const char *const chunked[] = {"Transfer-Encoding: chunked", NULL};
  req(&r, "POST", u, big, 1500, chunked);
  assert_int_equal(r.status, 413);
  reply_free(&r);
  req(&r, "POST", u, big, 1000, chunked);
  assert_int_equal(r.status, 201);
  assert_non_null(strstr(text(&r), "len=1000 "));
  reply_free(&r);

  assert_true(atomic_load(&a.max_body) <= 1024);
  free(big);

  /* the server is fine afterwards */
  url(u, sizeof u, s, "/hello");
  req(&r, "GET", u, NULL, 0, NULL);
  assert_int_equal(r.status, 200);
  reply_free(&r);
  hvg_httpd_free(s);
}

static void test_header_limit(void **state) {
  (void)state;
  app a = {0};
  hvg_httpd_opts o = {0};
  o.max_header = 4096;
  hvg_httpd *s = serve(&a, &o);
  char u[256];
  url(u, sizeof u, s, "/hello");
  char *h = malloc(6000);
  assert_non_null(h);
  memcpy(h, "X-Big: ", 7);
  memset(h + 7, 'h', 5000);
  h[5007] = '\0';
  const char *hdrs[] = {h, NULL};
  reply r;
  req(&r, "GET", u, NULL, 0, hdrs);
  /* libevent answers 400 and closes; the client may see the reset first */
  assert_true(r.status == 400 || r.status == 431 ||
              (r.status == 0 && r.rc != CURLE_OK));
  assert_int_equal(atomic_load(&a.requests), 0); /* no handler ran */
  reply_free(&r);
  free(h);
  req(&r, "GET", u, NULL, 0, NULL);
  assert_int_equal(r.status, 200);
  reply_free(&r);
  hvg_httpd_free(s);
}

typedef struct worker {
  const hvg_httpd *s;
  int id, ok;
} worker;

#define N_THREADS 8
#define N_REQS 150

static void *client_thread(void *arg) {
  worker *w = arg;
  CURL *c = curl_easy_init();
  for (int i = 0; i < N_REQS; i++) {
    char u[256], want[256], body[N_REQS + 1];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/hv/t%d/records?i=%d",
             hvg_httpd_port(w->s), w->id, i);
    memset(body, 'a' + w->id, (size_t)i);
    reply r;
    req_on(c, &r, "POST", u, body, i, NULL, NULL);
    snprintf(want, sizeof want,
             "program=t%d len=%d nul=1 hdr=- q=i=%d route=POST "
             "/hv/{program}/records tls=0",
             w->id, i, i);
    if (r.rc == CURLE_OK && r.status == 201 && !strcmp(text(&r), want))
      w->ok++;
    reply_free(&r);
  }
  curl_easy_cleanup(c);
  return NULL;
}

static void test_concurrent(void **state) {
  (void)state;
  app a = {0};
  hvg_httpd *s = serve(&a, NULL);
  pthread_t th[N_THREADS];
  worker w[N_THREADS];
  for (int i = 0; i < N_THREADS; i++) {
    w[i] = (worker){s, i, 0};
    assert_int_equal(pthread_create(&th[i], NULL, client_thread, &w[i]), 0);
  }
  for (int i = 0; i < N_THREADS; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(w[i].ok, N_REQS);
  }
  assert_int_equal(atomic_load(&a.requests), N_THREADS * N_REQS);
  hvg_httpd_free(s);
}

typedef struct bg {
  const hvg_httpd *s;
  const char *path;
  reply r;
  atomic_int started; /* first body bytes arrived */
  int slow_reader;
} bg;

static size_t slow_body(char *p, size_t sz, size_t n, void *ud) {
  bg *b = ud;
  atomic_store(&b->started, 1);
  if (b->slow_reader && b->r.body.len < ((size_t)4 << 20))
    nap_ms(5);
  return hvg_buf_add(&b->r.body, p, sz * n) ? 0 : sz * n;
}

static void *bg_get(void *arg) {
  bg *b = arg;
  char u[256];
  url(u, sizeof u, b->s, b->path);
  CURL *c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, u);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, slow_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &b->r);
  /* a small receive window so the response really is in flight */
  curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 16384L);
  b->r.rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &b->r.status);
  curl_easy_cleanup(c);
  return NULL;
}

typedef struct stopper {
  hvg_httpd *s;
  int rc;
  int pad;
} stopper;

static void *stop_thread(void *arg) {
  stopper *st = arg;
  st->rc = hvg_httpd_stop(st->s);
  return NULL;
}

static int can_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  close(fd);
  return ok;
}

static void test_graceful_stop(void **state) {
  (void)state;
  /* 1: a handler running when stop is called */
  app a = {0};
  hvg_httpd *s = serve(&a, NULL);
  int port = hvg_httpd_port(s);
  bg b1;
  memset(&b1, 0, sizeof b1);
  b1.s = s;
  b1.path = "/slow";
  hvg_buf_init(&b1.r.body, 1024);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, bg_get, &b1), 0);
  while (!atomic_load(&a.slow_entered))
    nap_ms(1);
  double t0 = now_s();
  assert_int_equal(hvg_httpd_stop(s), 0);
  double took = now_s() - t0;
  pthread_join(t, NULL);
  assert_int_equal(b1.r.rc, CURLE_OK);
  assert_int_equal(b1.r.status, 200);
  assert_string_equal(text(&b1.r), "done");
  assert_true(took < 5);
  reply_free(&b1.r);
  /* nothing listens any more */
  char u[256];
  snprintf(u, sizeof u, "http://127.0.0.1:%d/hello", port);
  reply r;
  req(&r, "GET", u, NULL, 0, NULL);
  assert_int_equal(r.rc, CURLE_COULDNT_CONNECT);
  reply_free(&r);
  assert_int_equal(hvg_httpd_stop(s), 0); /* again: nothing to do */
  hvg_err err;
  assert_int_equal(hvg_httpd_start(s, &err), HVG_ESTATE);
  hvg_httpd_free(s);

  /* 2: a 16 MiB response still being written to a slow reader, and an
   * idle keep-alive connection that must not hold the stop up */
  app a2 = {0};
  s = serve(&a2, NULL);
  CURL *idle = curl_easy_init();
  url(u, sizeof u, s, "/hello");
  req_on(idle, &r, "GET", u, NULL, 0, NULL, NULL);
  assert_int_equal(r.status, 200);
  reply_free(&r);
  bg b2;
  memset(&b2, 0, sizeof b2);
  b2.s = s;
  b2.path = "/big";
  b2.slow_reader = 1;
  hvg_buf_init(&b2.r.body, BIG);
  assert_int_equal(pthread_create(&t, NULL, bg_get, &b2), 0);
  while (!atomic_load(&b2.started))
    nap_ms(1);
  stopper st = {s, 0, 0};
  pthread_t ts;
  t0 = now_s();
  assert_int_equal(pthread_create(&ts, NULL, stop_thread, &st), 0);
  /* once the listener is gone, the server is draining */
  port = hvg_httpd_port(s);
  while (can_connect(port))
    nap_ms(2);
  /* a request on the open keep-alive connection is still answered, and
   * told that the connection closes */
  req_on(idle, &r, "GET", u, NULL, 0, NULL, NULL);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.conn, "close");
  reply_free(&r);
  pthread_join(ts, NULL);
  took = now_s() - t0;
  assert_int_equal(st.rc, 0);
  pthread_join(t, NULL);
  assert_int_equal(b2.r.rc, CURLE_OK);
  assert_int_equal(b2.r.status, 200);
  assert_int_equal(b2.r.body.len, BIG);
  assert_true(took < 9); /* not the drain timeout (10 s) */
  reply_free(&b2.r);
  curl_easy_cleanup(idle);
  hvg_httpd_free(s);
}

static void test_slow_client(void **state) {
  (void)state;
  app a = {0};
  hvg_httpd_opts o = {0};
  o.timeout_s = 1;
  hvg_httpd *s = serve(&a, &o);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)hvg_httpd_port(s));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  static const char part[] = "GET /hello HTTP/1.1\r\nHost: x\r\n"; /* no end */
  assert_int_equal(send(fd, part, sizeof part - 1, MSG_NOSIGNAL),
                   (ssize_t)sizeof part - 1);
  double t0 = now_s();
  struct pollfd p = {fd, POLLIN, 0};
  assert_int_equal(poll(&p, 1, 5000), 1);
  char buf[256];
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  double took = now_s() - t0;
  assert_true(n <= 0); /* closed without an answer */
  assert_true(took >= 0.5 && took < 4);
  close(fd);
  assert_int_equal(atomic_load(&a.requests), 0);
  hvg_httpd_free(s);
}

/* ---- TLS ---------------------------------------------------------------- */

static EVP_PKEY *mkkey(void) {
  EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  assert_non_null(k);
  return k;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
  X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  assert_non_null(e);
  assert_int_equal(X509_add_ext(x, e, -1), 1);
  X509_EXTENSION_free(e);
}

/* kind: 0 CA, 1 server, 2 client */
static X509 *mkcert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *ikey,
                    int kind, long serial) {
  X509 *x = X509_new();
  assert_non_null(x);
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, key);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC,
                             (const unsigned char *)"hvgate test", -1, -1, 0);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn,
                             -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
  add_ext(x, issuer, NID_subject_key_identifier, "hash");
  if (kind == 0) {
    add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
    add_ext(x, issuer, NID_basic_constraints, "CA:FALSE");
    add_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
    add_ext(x, issuer, NID_ext_key_usage,
            kind == 1 ? "serverAuth" : "clientAuth");
    if (kind == 1)
      add_ext(x, issuer, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
  }
  assert_true(X509_sign(x, ikey ? ikey : key, EVP_sha256()) > 0);
  return x;
}

static void write_pem(const char *path, X509 *x, EVP_PKEY *k) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  if (x)
    assert_int_equal(PEM_write_X509(f, x), 1);
  if (k)
    assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
  fclose(f);
}

static void fingerprint(X509 *x, char out[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  assert_int_equal(X509_digest(x, EVP_sha256(), md, &n), 1);
  for (unsigned i = 0; i < n; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
}

typedef struct pki {
  char dir[64];
  char ca[128], srv_cert[128], srv_key[128], cli_cert[128], cli_key[128],
      rogue_cert[128], rogue_key[128];
  char cli_fp[65];
} pki;

static void make_pki(pki *p) {
  snprintf(p->dir, sizeof p->dir, "/tmp/hvg-httpd-XXXXXX");
  assert_non_null(mkdtemp(p->dir));
#define P(f, name) snprintf(p->f, sizeof p->f, "%s/" name, p->dir)
  P(ca, "ca.pem");
  P(srv_cert, "server.pem");
  P(srv_key, "server.key");
  P(cli_cert, "client.pem");
  P(cli_key, "client.key");
  P(rogue_cert, "rogue.pem");
  P(rogue_key, "rogue.key");
#undef P
  EVP_PKEY *cak = mkkey(), *sk = mkkey(), *ck = mkkey(), *rk = mkkey(),
           *rcak = mkkey();
  X509 *ca = mkcert(cak, "hvgate test CA", NULL, NULL, 0, 1);
  X509 *srv = mkcert(sk, "localhost", ca, cak, 1, 2);
  X509 *cli = mkcert(ck, "Clinic \xc3\x89toile", ca, cak, 2, 3);
  X509 *rca = mkcert(rcak, "rogue CA", NULL, NULL, 0, 1);
  X509 *rogue = mkcert(rk, "Clinic \xc3\x89toile", rca, rcak, 2, 3);
  write_pem(p->ca, ca, NULL);
  write_pem(p->srv_cert, srv, NULL);
  write_pem(p->srv_key, NULL, sk);
  write_pem(p->cli_cert, cli, NULL);
  write_pem(p->cli_key, NULL, ck);
  write_pem(p->rogue_cert, rogue, NULL);
  write_pem(p->rogue_key, NULL, rk);
  fingerprint(cli, p->cli_fp);
  X509 *xs[] = {ca, srv, cli, rca, rogue};
  for (size_t i = 0; i < 5; i++)
    X509_free(xs[i]);
  EVP_PKEY *ks[] = {cak, sk, ck, rk, rcak};
  for (size_t i = 0; i < 5; i++)
    EVP_PKEY_free(ks[i]);
}

static void drop_pki(pki *p) {
  const char *fs[] = {p->ca,      p->srv_cert,   p->srv_key,  p->cli_cert,
                      p->cli_key, p->rogue_cert, p->rogue_key};
  for (size_t i = 0; i < 7; i++)
    unlink(fs[i]);
  rmdir(p->dir);
}

static void test_tls(void **state) {
  (void)state;
  pki p;
  make_pki(&p);
  app a = {0};
  hvg_httpd_opts o = {0};
  o.cert_file = p.srv_cert;
  o.key_file = p.srv_key;
  o.client_ca_file = p.ca;
  hvg_httpd *s = serve(&a, &o);
  char u[256];
  snprintf(u, sizeof u, "https://127.0.0.1:%d/whoami", hvg_httpd_port(s));
  CURL *c = curl_easy_init();
  reply r;

  tls_files good = {p.ca, p.cli_cert, p.cli_key};
  req_on(c, &r, "GET", u, NULL, 0, NULL, &good);
  assert_int_equal(r.rc, CURLE_OK);
  assert_int_equal(r.status, 200);
  char want[256];
  snprintf(want, sizeof want, "tls=1 cn=Clinic \xc3\x89toile fp=%s", p.cli_fp);
  assert_string_equal(text(&r), want);
  reply_free(&r);
  req_on(c, &r, "GET", u, NULL, 0, NULL, &good); /* again, kept alive */
  assert_string_equal(text(&r), want);
  reply_free(&r);
  snprintf(u, sizeof u, "https://127.0.0.1:%d/hv/p/records", hvg_httpd_port(s));
  req_on(c, &r, "POST", u, "x", 1, NULL, &good);
  assert_int_equal(r.status, 201);
  assert_non_null(strstr(text(&r), "tls=1"));
  reply_free(&r);
  curl_easy_cleanup(c);

  /* no client certificate: refused */
  snprintf(u, sizeof u, "https://127.0.0.1:%d/whoami", hvg_httpd_port(s));
  tls_files none = {p.ca, NULL, NULL};
  c = curl_easy_init();
  req_on(c, &r, "GET", u, NULL, 0, NULL, &none);
  assert_int_not_equal(r.rc, CURLE_OK);
  assert_int_equal(r.status, 0);
  reply_free(&r);
  curl_easy_cleanup(c);

  /* a certificate from another CA: refused */
  tls_files rogue = {p.ca, p.rogue_cert, p.rogue_key};
  c = curl_easy_init();
  req_on(c, &r, "GET", u, NULL, 0, NULL, &rogue);
  assert_int_not_equal(r.rc, CURLE_OK);
  assert_int_equal(r.status, 0);
  reply_free(&r);
  curl_easy_cleanup(c);

  /* plain HTTP on the TLS port: no answer */
  snprintf(u, sizeof u, "http://127.0.0.1:%d/hello", hvg_httpd_port(s));
  req(&r, "GET", u, NULL, 0, NULL);
  assert_int_not_equal(r.status, 200);
  reply_free(&r);

  int handled = atomic_load(&a.requests);
  assert_int_equal(handled, 3);
  hvg_httpd_free(s);

  /* optional client certificates: served without one, peer NULL */
  o.client_cert_optional = 1;
  s = serve(&a, &o);
  snprintf(u, sizeof u, "https://127.0.0.1:%d/whoami", hvg_httpd_port(s));
  c = curl_easy_init();
  req_on(c, &r, "GET", u, NULL, 0, NULL, &none);
  assert_int_equal(r.status, 200);
  assert_string_equal(text(&r), "tls=1 cn=- fp=-");
  reply_free(&r);
  req_on(c, &r, "GET", u, NULL, 0, NULL, &rogue); /* presented, bad: refused */
  assert_int_not_equal(r.rc, CURLE_OK);
  reply_free(&r);
  curl_easy_cleanup(c);
  hvg_httpd_free(s);

  /* TLS without client CA: server-only TLS */
  o.client_ca_file = NULL;
  o.client_cert_optional = 0;
  s = serve(&a, &o);
  snprintf(u, sizeof u, "https://127.0.0.1:%d/whoami", hvg_httpd_port(s));
  c = curl_easy_init();
  req_on(c, &r, "GET", u, NULL, 0, NULL, &good); /* cert not asked for */
  assert_int_equal(r.status, 200);
  assert_string_equal(text(&r), "tls=1 cn=- fp=-");
  reply_free(&r);
  curl_easy_cleanup(c);
  hvg_httpd_free(s);

  /* unreadable / mismatched TLS files fail at start */
  hvg_err err;
  hvg_httpd_opts bad = {0};
  bad.cert_file = p.srv_cert;
  bad.key_file = p.cli_key; /* not the server's key */
  assert_int_equal(hvg_httpd_new(&s, &bad, &err), 0);
  assert_int_equal(hvg_httpd_start(s, &err), HVG_ECONFIG);
  assert_non_null(strstr(err.msg, "key"));
  hvg_httpd_free(s);
  bad.key_file = "/nonexistent/key.pem";
  assert_int_equal(hvg_httpd_new(&s, &bad, &err), 0);
  assert_int_equal(hvg_httpd_start(s, &err), HVG_ECONFIG);
  hvg_httpd_free(s);
  drop_pki(&p);
}

/* ---- API ---------------------------------------------------------------- */

static int h_nop(void *ctx, const hvg_httpd_req *rq, hvg_httpd_resp *rs) {
  (void)ctx;
  (void)rq;
  (void)rs;
  return 0;
}

static void test_api(void **state) {
  (void)state;
  hvg_httpd *s;
  hvg_err err;
  hvg_httpd_opts o = {0};
  static const char *const bad_listen[] = {
      "localhost", ":80", "h:", "h:x1", "h:65536", "[::1:80", "h:123456"};
  for (size_t i = 0; i < sizeof bad_listen / sizeof bad_listen[0]; i++) {
    o.listen = bad_listen[i];
    assert_int_equal(hvg_httpd_new(&s, &o, &err), HVG_EINVAL);
    assert_null(s);
  }
  o.listen = NULL;
  o.key_file = "k.pem"; /* a key without a certificate */
  assert_int_equal(hvg_httpd_new(&s, &o, &err), HVG_EINVAL);
  o.key_file = NULL;
  o.client_ca_file = "ca.pem"; /* client certificates without TLS */
  assert_int_equal(hvg_httpd_new(&s, &o, &err), HVG_EINVAL);

  assert_int_equal(hvg_httpd_new(&s, NULL, &err), 0);
  static const char *const bad[] = {"GET",
                                    "GET hello",
                                    "/x",
                                    " /x",
                                    "G(T /x",
                                    "GET /x//y",
                                    "GET /x/{}",
                                    "GET /x/{1a}",
                                    "GET /x/{a}/{a}",
                                    "GET /x/a%20b",
                                    "GET /x/../y",
                                    "GET /x/{a",
                                    "GET /x /y",
                                    "GETTINGTOOLONGMETHOD /x",
                                    "GET //"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (hvg_httpd_route(s, bad[i], h_nop, NULL, &err) != HVG_EINVAL)
      fail_msg("accepted \"%s\"", bad[i]);
  assert_int_equal(hvg_httpd_route(s, "GET /a/{x}/c", h_nop, NULL, &err), 0);
  /* same shape, other parameter name: a duplicate */
  assert_int_equal(hvg_httpd_route(s, "GET /a/{y}/c", h_nop, NULL, &err),
                   HVG_EINVAL);
  assert_int_equal(hvg_httpd_route(s, "POST /a/{y}/c", h_nop, NULL, &err), 0);
  assert_int_equal(hvg_httpd_route(s, "* /a/", h_nop, NULL, &err), 0);
  assert_int_equal(hvg_httpd_route(s, "* /a/b/", h_nop, NULL, &err), 0);
  assert_int_equal(hvg_httpd_route(s, "GET /", h_nop, NULL, &err), 0);
  assert_int_equal(hvg_httpd_route(s, "GET /a/{x}/{z}", h_nop, NULL, &err), 0);
  assert_int_equal(hvg_httpd_route(s, "OPTIONS /a/b/c", h_nop, NULL, &err), 0);
  assert_int_equal(hvg_httpd_error_renderer(s, "x", fhir_error, NULL, &err),
                   HVG_EINVAL);

  hvg_httpd_match m;
  hvg_httpd_match_path(s, "GET", "/a/b/c", &m); /* literal c beats {z} */
  assert_int_equal(m.status, 200);
  assert_string_equal(m.route, "GET /a/{x}/c");
  assert_int_equal(m.nparams, 1);
  assert_string_equal(m.params[0].name, "x");
  assert_string_equal(m.params[0].value, "b");
  hvg_httpd_match_path(s, "GET", "/a/b/d", &m);
  assert_string_equal(m.route, "GET /a/{x}/{z}");
  assert_string_equal(m.params[1].value, "d");
  hvg_httpd_match_path(s, "OPTIONS", "/a/b/c", &m); /* exact before subtree */
  assert_string_equal(m.route, "OPTIONS /a/b/c");
  hvg_httpd_match_path(s, "PUT", "/a/b/c", &m); /* the longer subtree */
  assert_string_equal(m.route, "* /a/b/");
  assert_string_equal(m.rest, "c");
  hvg_httpd_match_path(s, "PUT", "/a/q/c%2Fd", &m);
  assert_string_equal(m.route, "* /a/");
  assert_string_equal(m.rest, "q/c%2Fd"); /* raw */
  hvg_httpd_match_path(s, "GET", "/zzz", &m);
  assert_string_equal(m.route, "GET /");
  assert_string_equal(m.rest, "zzz");
  hvg_httpd_match_path(s, "POST", "/zzz", &m);
  assert_int_equal(m.status, 405);
  assert_string_equal(m.allow, "GET, HEAD");
  hvg_httpd_match_path(s, "GET", "zzz", &m);
  assert_int_equal(m.status, 400);
  hvg_httpd_match_path(s, "GET", "/a/%2e/c", &m);
  assert_int_equal(m.status, 400);
  char *longp = malloc(HVG_HTTPD_MAX_PATH + 2);
  assert_non_null(longp);
  memset(longp, 'a', HVG_HTTPD_MAX_PATH + 1);
  longp[0] = '/';
  longp[HVG_HTTPD_MAX_PATH + 1] = '\0';
  hvg_httpd_match_path(s, "GET", longp, &m);
  assert_int_equal(m.status, 414);
  free(longp);

  o = (hvg_httpd_opts){0};
  hvg_httpd_free(s);
  /* port 0 gives distinct free ports; a taken port fails with HVG_EIO */
  hvg_httpd *s1, *s2;
  assert_int_equal(hvg_httpd_new(&s1, NULL, &err), 0);
  assert_int_equal(hvg_httpd_port(s1), 0);
  assert_int_equal(hvg_httpd_start(s1, &err), 0);
  assert_int_equal(hvg_httpd_route(s1, "GET /late", h_nop, NULL, &err),
                   HVG_ESTATE);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", hvg_httpd_port(s1));
  o.listen = addr;
  assert_int_equal(hvg_httpd_new(&s2, &o, &err), 0);
  assert_int_equal(hvg_httpd_start(s2, &err), HVG_EIO);
  assert_int_equal(hvg_httpd_port(s2), 0);
  hvg_httpd_free(s2);
  o.listen = "[::1]:0";
  assert_int_equal(hvg_httpd_new(&s2, &o, &err), 0);
  if (hvg_httpd_start(s2, &err) == 0) /* when the host has IPv6 */
    assert_int_not_equal(hvg_httpd_port(s2), hvg_httpd_port(s1));
  hvg_httpd_free(s2);
  hvg_httpd_free(s1);
  hvg_httpd_free(NULL);
}

static void test_metrics_route(void **state) {
  (void)state;
  app a = {0};
  hvg_err err;
  assert_int_equal(hvg_metrics_new(&a.metrics, &err), 0);
  static const char *const labels[] = {"route", "status", NULL};
  assert_int_equal(hvg_metrics_counter(a.metrics, "hvg_http_requests_total",
                                       "HTTP requests answered.", labels,
                                       &a.req_total, &err),
                   0);
  hvg_httpd *s = serve(&a, NULL);
  char u[256];
  reply r;
  url(u, sizeof u, s, "/hello");
  for (int i = 0; i < 3; i++) {
    req(&r, "GET", u, NULL, 0, NULL);
    reply_free(&r);
  }
  url(u, sizeof u, s, "/metrics");
  req(&r, "GET", u, NULL, 0, NULL);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.ctype, HVG_METRICS_CONTENT_TYPE);
  assert_string_equal(text(&r),
                      "# HELP hvg_http_requests_total HTTP requests answered.\n"
                      "# TYPE hvg_http_requests_total counter\n"
                      "hvg_http_requests_total{route=\"GET /hello\","
                      "status=\"200\"} 3\n");
  reply_free(&r);
  hvg_httpd_free(s);
  hvg_metrics_free(a.metrics);
}

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_api),
      cmocka_unit_test(test_routes),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_body_limit),
      cmocka_unit_test(test_header_limit),
      cmocka_unit_test(test_concurrent),
      cmocka_unit_test(test_graceful_stop),
      cmocka_unit_test(test_slow_client),
      cmocka_unit_test(test_tls),
      cmocka_unit_test(test_metrics_route),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  return rc;
}
