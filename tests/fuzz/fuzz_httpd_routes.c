/* libFuzzer: the HTTP server's router on arbitrary bytes. The input is
 * lines: those starting with '+' are route specs registered on a fresh
 * server next to a fixed table, the others "METHOD path" requests matched
 * against it. Nothing may crash or trip a sanitizer, and every answer must
 * be consistent: a known status; for 200 a route whose pattern fits the
 * raw path segment by segment, parameters equal to the segments decoded by
 * a reference decoder, and the subtree rest a suffix of the path; for 405
 * a non-empty Allow; the same answer twice. */
#include "hvg_httpd.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int nop(void *ctx, const hvg_httpd_req *rq, hvg_httpd_resp *rs) {
  (void)ctx;
  (void)rq;
  (void)rs;
  return 0;
}

static const char *const fixed[] = {
    "GET /healthz",
    "GET /metrics",
    "POST /hv/{program}/records",
    "GET /hv/{program}/records/{id}",
    "GET /hv/admin/records",
    "* /fhir/",
    "GET /fhir/{type}/",
    "DELETE /a/{b}/c/{d}/e",
    "* /",
    "PUT /x/{y}",
};

static int hexv(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Reference percent-decoder of raw[0..n) into out; -1 when invalid. */
static int decode(const char *raw, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (raw[i] == '%') {
      if (i + 2 >= n)
        return -1;
      int h = hexv((unsigned char)raw[i + 1]);
      int l = hexv((unsigned char)raw[i + 2]);
      if (h < 0 || l < 0 || !(h | l))
        return -1;
      out[o++] = (char)(h << 4 | l);
      i += 2;
    } else {
      out[o++] = raw[i];
    }
  }
  out[o] = '\0';
  return 0;
}

static void check(const hvg_httpd *s, const char *method, const char *path) {
  static hvg_httpd_match m, m2;
  hvg_httpd_match_path(s, method, path, &m);
  hvg_httpd_match_path(s, method, path, &m2);
  if (m.status != m2.status || m.route != m2.route || m.nparams != m2.nparams)
    abort();
  switch (m.status) {
  case 200: break;
  case 405:
    if (!m.allow[0])
      abort();
    return;
  case 400:
  case 404:
  case 414: return;
  default: abort();
  }
  if (!m.route || m.nparams > HVG_HTTPD_MAX_PARAMS)
    abort();
  const char *pat = strchr(m.route, ' ');
  if (!pat || pat[1] != '/')
    abort();
  pat++;
  size_t pl = strlen(pat);
  int subtree = pat[pl - 1] == '/';
  /* walk pattern and path segments together */
  const char *pp = pat + 1, *rp = path + 1;
  size_t k = 0;
  static char dec[HVG_HTTPD_MAX_PATH + 1];
  if (!(subtree && pl == 1)) {
    for (;;) {
      const char *pe = strchr(pp, '/');
      size_t pn = pe ? (size_t)(pe - pp) : strlen(pp);
      if (subtree && !pe)
        break; /* the trailing '/' */
      const char *re = strchr(rp, '/');
      size_t rn = re ? (size_t)(re - rp) : strlen(rp);
      if (decode(rp, rn, dec))
        abort(); /* a matched path decodes */
      if (pn >= 2 && pp[0] == '{') {
        if (k >= m.nparams || strncmp(m.params[k].name, pp + 1, pn - 2) ||
            m.params[k].name[pn - 2] || strcmp(m.params[k].value, dec) ||
            !dec[0])
          abort();
        k++;
      } else if (strlen(dec) != pn || memcmp(dec, pp, pn)) {
        abort();
      }
      if (!pe) {
        if (re) /* exact pattern, longer path */
          abort();
        break;
      }
      if (!re)
        abort();
      pp = pe + 1;
      rp = re + 1;
      if (subtree && !*pp)
        break;
    }
  }
  if (k != m.nparams)
    abort();
  if (subtree) {
    size_t plen = strlen(path), rl = strlen(m.rest);
    if (rl >= plen || strcmp(path + plen - rl, m.rest) ||
        path[plen - rl - 1] != '/')
      abort();
  } else if (m.rest[0]) {
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 64 * 1024)
    return 0;
  char *buf = malloc(size + 1);
  if (!buf)
    abort();
  memcpy(buf, data, size);
  buf[size] = '\0';
  hvg_httpd *s;
  if (hvg_httpd_new(&s, NULL, NULL))
    abort();
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
    if (hvg_httpd_route(s, fixed[i], nop, NULL, NULL))
      abort();
  /* routes first (they are fixed at start in the server too) */
  for (char *line = buf; line && line < buf + size;) {
    char *nl = memchr(line, '\n', (size_t)(buf + size - line));
    if (nl)
      *nl = '\0';
    if (line[0] == '+')
      hvg_httpd_route(s, line + 1, nop, NULL, NULL);
    line = nl ? nl + 1 : NULL;
  }
  for (char *line = buf; line && line < buf + size;) {
    size_t n = strlen(line);
    char *next = line + n + 1;
    if (line[0] != '+') {
      char *sp = strchr(line, ' ');
      if (sp) {
        *sp = '\0';
        check(s, line, sp + 1);
      } else {
        check(s, "GET", line);
      }
    }
    line = next < buf + size ? next : NULL;
  }
  hvg_httpd_free(s);
  free(buf);
  return 0;
}
