#include "hvg_http.h"

#include <curl/curl.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct hvg_http {
  CURL *curl;
  hvg_http_opts o;
  hvg_http_resp *cur; /* the response being filled */
  int too_big;
  struct curl_slist *hl; /* the last request's headers, kept for the next */
};

static size_t hvg__on_body(char *p, size_t sz, size_t n, void *ud) {
  hvg_http *h = ud;
  size_t len = sz * n;
  if (hvg_buf_add(&h->cur->body, p, len)) {
    h->too_big = 1;
    return 0; /* makes libcurl stop with CURLE_WRITE_ERROR */
  }
  return len;
}

/* Copies a header value (trimmed) into dst[cap]. */
static void hvg__hval(char *dst, size_t cap, const char *v, size_t n) {
  while (n && (*v == ' ' || *v == '\t')) {
    v++;
    n--;
  }
  while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
    n--;
  if (n >= cap)
    n = cap - 1;
  memcpy(dst, v, n);
  dst[n] = '\0';
}

static size_t hvg__on_header(char *p, size_t sz, size_t n, void *ud) {
  hvg_http *h = ud;
  size_t len = sz * n;
  hvg_http_resp *r = h->cur;
  if (len > 12 && !strncmp(p, "HTTP/", 5)) { /* a new response (redirect,
                                                100-continue): start over */
    r->retry_after_s = -1;
    r->location[0] = r->content_type[0] = '\0';
    return len;
  }
  const char *colon = memchr(p, ':', len);
  if (!colon)
    return len;
  size_t nl = (size_t)(colon - p);
  const char *v = colon + 1;
  size_t vl = len - nl - 1;
  if (nl == 11 && !strncasecmp(p, "retry-after", 11)) {
    char tmp[64];
    hvg__hval(tmp, sizeof tmp, v, vl);
    r->retry_after_s = hvg_http_retry_after(tmp, (long)time(NULL));
  } else if (nl == 8 && !strncasecmp(p, "location", 8)) {
    hvg__hval(r->location, sizeof r->location, v, vl);
  } else if (nl == 12 && !strncasecmp(p, "content-type", 12)) {
    hvg__hval(r->content_type, sizeof r->content_type, v, vl);
  }
  return len;
}

long hvg_http_retry_after(const char *v, long now) {
  if (!v || !*v)
    return -1;
  if (isdigit((unsigned char)*v)) {
    char *end;
    long s = strtol(v, &end, 10);
    return *end || s < 0 ? -1 : s;
  }
  time_t t = curl_getdate(v, NULL); /* RFC 7231 HTTP-date */
  if (t < 0)
    return -1;
  return (long)t > now ? (long)t - now : 0;
}

void hvg_http_resp_init(hvg_http_resp *r) {
  memset(r, 0, sizeof *r);
  r->retry_after_s = -1;
  hvg_buf_init(&r->body, (size_t)32 << 20);
}

void hvg_http_resp_free(hvg_http_resp *r) {
  if (r)
    hvg_buf_free(&r->body);
}

int hvg_http_new(hvg_http **out, const hvg_http_opts *opts, hvg_err *err) {
  *out = NULL;
  hvg_http *h = calloc(1, sizeof *h);
  if (!h || !(h->curl = curl_easy_init())) {
    free(h);
    return hvg_err_set(err, HVG_ENOMEM, NULL, "cannot start libcurl");
  }
  if (opts)
    h->o = *opts;
  if (!h->o.connect_timeout_ms)
    h->o.connect_timeout_ms = 5000;
  if (!h->o.timeout_ms)
    h->o.timeout_ms = 60000;
  if (!h->o.max_body)
    h->o.max_body = (size_t)32 << 20;
  /* what every request of the handle shares is set once; hvg_http_request
   * sets the rest (URL, method, body, headers) in full each time */
  CURL *c = h->curl;
  CURLcode rc = curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  if (!rc)
    rc = curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  if (!rc)
    rc =
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, h->o.connect_timeout_ms);
  if (!rc)
    rc = curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, h->o.timeout_ms);
  if (!rc)
    rc = curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, h->o.tls_verify ? 1L : 0L);
  if (!rc)
    rc = curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, h->o.tls_verify ? 2L : 0L);
  if (!rc && h->o.ca_file)
    rc = curl_easy_setopt(c, CURLOPT_CAINFO, h->o.ca_file);
  if (!rc && h->o.client_cert_file) {
    rc = curl_easy_setopt(c, CURLOPT_SSLCERT, h->o.client_cert_file);
    if (!rc)
      rc = curl_easy_setopt(c, CURLOPT_SSLKEY, h->o.client_key_file);
  }
  if (!rc) /* never re-POST PHI */
    rc = curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  if (!rc)
    rc = curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, hvg__on_body);
  if (!rc)
    rc = curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
  if (!rc)
    rc = curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, hvg__on_header);
  if (!rc)
    rc = curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
  if (!rc)
    rc = curl_easy_setopt(c, CURLOPT_USERAGENT, "hvgate");
  if (rc) {
    hvg_http_free(h);
    return hvg_err_set(err, rc == CURLE_OUT_OF_MEMORY ? HVG_ENOMEM : HVG_EIO,
                       NULL, "libcurl: %s", curl_easy_strerror(rc));
  }
  *out = h;
  return 0;
}

void hvg_http_free(hvg_http *h) {
  if (!h)
    return;
  curl_easy_cleanup(h->curl);
  curl_slist_free_all(h->hl);
  free(h);
}

/* h->hl as the header lines (NULL-terminated list or NULL): kept when they
 * are the last request's, as in delivery, built again otherwise. 0 or
 * HVG_ENOMEM (h->hl is then NULL). */
static int hvg__headers(hvg_http *h, const char *const *headers) {
  const struct curl_slist *n = h->hl;
  const char *const *p = headers;
  for (; n && p && *p && !strcmp(n->data, *p); n = n->next, p++)
    ;
  if (!n && (!p || !*p))
    return 0;
  curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(h->hl);
  h->hl = NULL;
  for (p = headers; p && *p; p++) {
    struct curl_slist *l = curl_slist_append(h->hl, *p);
    if (!l) {
      curl_slist_free_all(h->hl);
      h->hl = NULL;
      return HVG_ENOMEM;
    }
    h->hl = l;
  }
  return 0;
}

int hvg_http_request(hvg_http *h, const char *method, const char *url,
                     const char *const *headers, const char *body,
                     size_t body_len, hvg_http_resp *resp, hvg_err *err) {
  if (!h || !method || !url || !resp)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  /* reset, keeping the body's memory for the next response */
  hvg_buf keep = resp->body;
  hvg_buf_reset(&keep);
  memset(resp, 0, sizeof *resp);
  resp->retry_after_s = -1;
  resp->body = keep;
  resp->body.max = h->o.max_body;
  if (hvg__headers(h, headers))
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  CURL *c = h->curl;
  /* the handle keeps its connection cache and the options set by
   * hvg_http_new; what differs between requests is set in full */
  h->cur = resp;
  h->too_big = 0;
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->hl);
  if (!strcmp(method, "GET")) {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
  }
  CURLcode rc = curl_easy_perform(c);
  h->cur = NULL;
  if (h->too_big)
    return hvg_err_set(err, HVG_ETOOBIG, NULL,
                       "response larger than %zu bytes", h->o.max_body);
  if (rc == CURLE_OUT_OF_MEMORY)
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  if (rc != CURLE_OK) {
    resp->status = 0;
    return hvg_err_set(err, HVG_EIO, NULL, "%s", curl_easy_strerror(rc));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
  return 0;
}
