#include "hvg_fhir_http.h"

#include "fhir_check.h"
#include "fhir_json.h"
#include "fhir_xml.h"
#include "hvg_cred.h"
#include "hvg_version.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define FH__MAX_BODY ((size_t)16 << 20)
#define FH__JSON "application/fhir+json; charset=utf-8"
#define FH__XML "application/fhir+xml; charset=utf-8"
#define FH__MAX_REFS 256

struct hvg_fhir_http {
  const hvg_config *cfg;
  store *st;
  hvg_fsrv *srv;
  /* the CapabilityStatement, rendered once per format and base */
  char cap_base[300];
  hvg_buf cap[2];
};

/* ---- negotiation -----------------------------------------------------------
 */

/* 1 when a media type (a _format value, an Accept or Content-Type item)
 * is FHIR JSON / XML: 0 JSON, 1 XML, -1 neither. */
static int fh__media(const char *v, size_t n) {
  while (n && (*v == ' ' || *v == '\t'))
    v++, n--;
  const char *semi = memchr(v, ';', n);
  if (semi)
    n = (size_t)(semi - v);
  while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
    n--;
#define FH__IS(lit) (n == sizeof lit - 1 && !strncasecmp(v, lit, n))
  if (FH__IS("json") || FH__IS("application/fhir+json") ||
      FH__IS("application/json") || FH__IS("application/json+fhir"))
    return 0;
  if (FH__IS("xml") || FH__IS("application/fhir+xml") ||
      FH__IS("application/xml") || FH__IS("text/xml") ||
      FH__IS("application/xml+fhir"))
    return 1;
#undef FH__IS
  return -1;
}


/* The weight of an Accept item (RFC 9110 12.4.2: "q=" 0 to 1, three
 * decimals at most) in thousandths: 1000 without one, -1 when malformed. */
static int fh__q(const char *v, size_t n) {
  const char *end = v + n;
  for (const char *p = memchr(v, ';', n); p;
       p = memchr(p + 1, ';', (size_t)(end - p - 1))) {
    const char *q = p + 1;
    while (q < end && (*q == ' ' || *q == '\t'))
      q++;
    if (end - q < 2 || (q[0] != 'q' && q[0] != 'Q') || q[1] != '=')
      continue;
    q += 2;
    if (q >= end || (*q != '0' && *q != '1'))
      return -1;
    int w = (*q++ - '0') * 1000;
    if (q < end && *q == '.') {
      q++;
      for (int scale = 100; scale && q < end && *q >= '0' && *q <= '9';
           scale /= 10)
        w += (*q++ - '0') * scale;
    }
    while (q < end && (*q == ' ' || *q == '\t'))
      q++;
    return (q == end || *q == ';') && w <= 1000 ? w : -1;
  }
  return 1000;
}

/* The response format: _format, else the Accept item of highest weight
 * (q=0: not acceptable; JSON when weights tie or any type is allowed).
 * 0 JSON, 1 XML, -1 nothing acceptable (406). */
static int fh__format(const hvg_httpd_req *req, int *pretty) {
  char v[128];
  *pretty =
      hvg_fsrv_query_param(req->query, "_pretty", v, sizeof v) && !strcmp(v, "true");
  if (hvg_fsrv_query_param(req->query, "_format", v, sizeof v)) {
    for (char *sp = strchr(v, ' '); sp; sp = strchr(sp, ' '))
      *sp = '+'; /* "application/fhir+xml" typed into a query unencoded */
    return fh__media(v, strlen(v));
  }
  const char *acc = hvg_httpd_header(req, "Accept");
  if (!acc || !*acc)
    return 0;
  int best = -1, best_q = 0;
  for (const char *p = acc; p && *p;) {
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    int m = fh__media(p, n), q = fh__q(p, n);
    const char *t = p;
    while (*t == ' ')
      t++;
    if (m < 0 && (!strncmp(t, "*/*", 3) || !strncmp(t, "application/*", 13)))
      m = 0;
    if (m >= 0 && q > 0 && (q > best_q || (q == best_q && m < best))) {
      best = m;
      best_q = q;
    }
    p = comma ? comma + 1 : NULL;
  }
  return best;
}

/* ---- responses -------------------------------------------------------------
 */

static cJSON *fh__outcome(const char *severity, const char *code,
                          const char *diagnostics, const char *expression) {
  char text[1024];
  if (diagnostics) { /* it may echo the request: valid text only */
    snprintf(text, sizeof text, "%s", diagnostics);
    hvg_fsrv_text_clean(text);
    diagnostics = text;
  }
  cJSON *o = cJSON_CreateObject();
  cJSON *arr = o ? cJSON_AddArrayToObject(o, "issue") : NULL;
  cJSON *iss = arr ? cJSON_CreateObject() : NULL;
  if (!iss || !cJSON_AddStringToObject(o, "resourceType", "OperationOutcome") ||
      !cJSON_AddStringToObject(iss, "severity", severity) ||
      !cJSON_AddStringToObject(iss, "code", code) ||
      (diagnostics && *diagnostics &&
       !cJSON_AddStringToObject(iss, "diagnostics", diagnostics))) {
    cJSON_Delete(iss);
    cJSON_Delete(o);
    return NULL;
  }
  if (expression && *expression) {
    cJSON *ex = cJSON_AddArrayToObject(iss, "expression");
    if (ex)
      cJSON_AddItemToArray(ex, cJSON_CreateString(expression));
  }
  cJSON_AddItemToArray(arr, iss);
  return o;
}

/* Serializes tree in fmt and sends it with status. */
static int fh__send_tree(hvg_httpd_resp *resp, int status, const cJSON *tree,
                         int fmt, int pretty) {
  hvg_buf b;
  hvg_buf_init(&b, FH__MAX_BODY);
  hvg_err e;
  int rc = fhir_json_serialize(tree, fmt ? FHIR_XML : FHIR_JSON,
                               pretty ? FHIR_W_PRETTY : 0, &b, &e);
  if (!rc) {
    hvg_httpd_resp_status(resp, status);
    rc = hvg_httpd_resp_header(resp, "Content-Type", fmt ? FH__XML : FH__JSON);
    if (!rc)
      rc = hvg_httpd_resp_body_buf(resp, &b);
  }
  hvg_buf_free(&b);
  return rc;
}

/* An error answer: status and an OperationOutcome (format fmt). */
static int fh__fail(hvg_httpd_resp *resp, int fmt, int status, const char *code,
                    const char *expression, const char *msg) {
  cJSON *o = fh__outcome("error", code, msg, expression);
  if (!o)
    return HVG_ENOMEM;
  int rc = fh__send_tree(resp, status, o, fmt < 0 ? 0 : fmt, 0);
  cJSON_Delete(o);
  return rc;
}

/* The server's own errors (404 no route, 405, 400 bad path, 500). */
static int fh__render_error(void *ctx, const hvg_httpd_req *req, int status,
                            const char *msg, hvg_httpd_resp *resp) {
  (void)ctx;
  int pretty;
  int fmt = fh__format(req, &pretty);
  const char *code = status == 404   ? "not-found"
                     : status == 405 ? "not-supported"
                     : status == 401 ? "login"
                     : status == 403 ? "forbidden"
                     : status == 413 ? "too-costly"
                     : status >= 500 ? "exception"
                                     : "invalid";
  return fh__fail(resp, fmt, status, code, NULL, msg);
}

/* HTTP-date of ms since the epoch. */
static void fh__http_date(int64_t ms, char out[40]) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* "return=minimal", "representation" or "OperationOutcome" of Prefer. */
static const char *fh__prefer(const hvg_httpd_req *req) {
  const char *p = hvg_httpd_header(req, "Prefer");
  if (!p)
    return NULL;
  if (strstr(p, "return=minimal"))
    return "minimal";
  if (strstr(p, "return=OperationOutcome"))
    return "OperationOutcome";
  return NULL;
}

/* The request's FHIR base URL, for links and Location. */
static void fh__base(const hvg_httpd_req *req, char *out, size_t cap) {
  const char *host = hvg_httpd_header(req, "Host");
  if (!host || !*host || strpbrk(host, " /\\\"<>"))
    host = "localhost";
  snprintf(out, cap, "%s://%.200s/fhir", req->tls ? "https" : "http", host);
}

/* Sends what an interaction produced. */
static int fh__reply(hvg_httpd_resp *resp, const hvg_httpd_req *req,
                     hvg_fres *r, int fmt, int pretty, const char *base) {
  if (r->status >= 400)
    return fh__fail(resp, fmt, r->status, r->issue ? r->issue : "processing",
                    r->expression, r->diagnostics);
  int rc = 0;
  if (r->version) {
    char et[40], lm[40];
    snprintf(et, sizeof et, "W/\"%lld\"", (long long)r->version);
    fh__http_date(r->updated_ms, lm);
    rc = hvg_httpd_resp_header(resp, "ETag", et);
    if (!rc)
      rc = hvg_httpd_resp_header(resp, "Last-Modified", lm);
  }
  if (!rc && r->location[0] && r->status == 201) {
    char loc[600];
    snprintf(loc, sizeof loc, "%s/%s", base, r->location);
    rc = hvg_httpd_resp_header(resp, "Location", loc);
  }
  if (rc)
    return rc;
  const char *prefer = fh__prefer(req);
  int is_write = strcmp(req->method, "GET") && strcmp(req->method, "HEAD") &&
                 !strstr(req->path, "/_search");
  if (is_write && prefer && !strcmp(prefer, "minimal")) {
    hvg_httpd_resp_status(resp, r->status);
    return 0;
  }
  if (is_write && prefer && !strcmp(prefer, "OperationOutcome")) {
    cJSON *o = fh__outcome("information", "informational", "done", NULL);
    if (!o)
      return HVG_ENOMEM;
    rc = fh__send_tree(resp, r->status, o, fmt, pretty);
    cJSON_Delete(o);
    return rc;
  }
  if (!r->body) {
    hvg_httpd_resp_status(resp, r->status);
    return 0;
  }
  return fh__send_tree(resp, r->status, r->body, fmt, pretty);
}

/* ---- the CapabilityStatement --------------------------------------------- */

static int fh__add_codes(cJSON *o, const char *key, const char *const *codes,
                         const char *field) {
  cJSON *arr = cJSON_AddArrayToObject(o, key);
  for (size_t i = 0; arr && codes[i]; i++) {
    cJSON *c = cJSON_CreateObject();
    if (!c || !cJSON_AddStringToObject(c, field, codes[i])) {
      cJSON_Delete(c);
      return 0;
    }
    cJSON_AddItemToArray(arr, c);
  }
  return arr != NULL;
}

cJSON *hvg_fhir_capabilities(const char *base) {
  static const char *const formats[] = {"application/fhir+json",
                                        "application/fhir+xml", NULL};
  static const char *const patch_formats[] = {"application/json-patch+json",
                                              NULL};
  static const char *const task_ops[] = {
      "read", "vread", "update", "patch", "create", "search-type", NULL};
  static const char *const other_ops[] = {"read", "vread", "create", NULL};
  static const struct {
    const char *type;
    const char *const *ops;
  } res[] = {
      {"Task", task_ops},         {"ServiceRequest", other_ops},
      {"Observation", other_ops}, {"Encounter", other_ops},
      {"Patient", other_ops},
  };
  static const struct {
    const char *name, *type, *doc;
  } params[] = {
      {"owner", "reference", "Task.owner: Type/id, or the id alone"},
      {"status", "token", "Task.status; several as a comma list"},
      {"focus", "reference", "Task.focus: Type/id, or the id alone"},
      {"patient", "reference", "Task.for: Patient/id, or the id alone"},
      {"identifier", "token", "system|value of the first identifier"},
      {"_lastUpdated", "date", "with gt, ge, lt, le or eq; repeatable"},
  };
  char date[11];
  fhir_date_utc(time(NULL), date);
  cJSON *c = cJSON_CreateObject();
  cJSON *sw = NULL, *impl = NULL, *rest = NULL, *r0 = NULL, *rs = NULL,
        *sec = NULL;
  int ok = c &&
           cJSON_AddStringToObject(c, "resourceType", "CapabilityStatement") &&
           cJSON_AddStringToObject(c, "status", "active") &&
           cJSON_AddStringToObject(c, "date", date) &&
           cJSON_AddStringToObject(c, "publisher", "hvgate") &&
           cJSON_AddStringToObject(
               c, "description",
               "The hvgate FHIR endpoint: the Tasks of the referrals between "
               "home visiting programs and this partner, and what the "
               "partner sends back (well-child results, referrals to home "
               "visiting). Every request needs the partner's credential; a "
               "partner sees only its own resources.") &&
           cJSON_AddStringToObject(c, "kind", "instance") &&
           (sw = cJSON_AddObjectToObject(c, "software")) &&
           cJSON_AddStringToObject(sw, "name", "hvgate") &&
           cJSON_AddStringToObject(sw, "version", hvg_version()) &&
           (impl = cJSON_AddObjectToObject(c, "implementation")) &&
           cJSON_AddStringToObject(impl, "description",
                                   "hvgate home visiting gateway") &&
           (!base || fhir_check_uri(base) == 0 ||
            cJSON_AddStringToObject(impl, "url", base)) &&
           cJSON_AddStringToObject(c, "fhirVersion", "4.0.1");
  cJSON *fa = ok ? cJSON_AddArrayToObject(c, "format") : NULL;
  for (size_t i = 0; fa && formats[i]; i++)
    cJSON_AddItemToArray(fa, cJSON_CreateString(formats[i]));
  cJSON *pf = ok ? cJSON_AddArrayToObject(c, "patchFormat") : NULL;
  for (size_t i = 0; pf && patch_formats[i]; i++)
    cJSON_AddItemToArray(pf, cJSON_CreateString(patch_formats[i]));
  ok = ok && fa && pf && (rest = cJSON_AddArrayToObject(c, "rest")) &&
       (r0 = cJSON_CreateObject()) && cJSON_AddItemToArray(rest, r0) &&
       cJSON_AddStringToObject(r0, "mode", "server") &&
       (sec = cJSON_AddObjectToObject(r0, "security")) &&
       cJSON_AddFalseToObject(sec, "cors") &&
       cJSON_AddStringToObject(
           sec, "description",
           "Each partner authenticates with a bearer token or a mutual-TLS "
           "client certificate configured for it (only their SHA-256 is "
           "kept); anonymous requests get 401.") &&
       (rs = cJSON_AddArrayToObject(r0, "resource"));
  if (ok) {
    cJSON *svc = cJSON_AddArrayToObject(sec, "service");
    cJSON *cc = cJSON_CreateObject();
    cJSON *coding = cc ? cJSON_AddArrayToObject(cc, "coding") : NULL;
    cJSON *c0 = coding ? cJSON_CreateObject() : NULL;
    ok =
        svc && c0 &&
        cJSON_AddStringToObject(
            c0, "system",
            "http://terminology.hl7.org/CodeSystem/restful-security-service") &&
        cJSON_AddStringToObject(c0, "code", "Certificates");
    if (c0)
      cJSON_AddItemToArray(coding, c0);
    if (cc)
      cJSON_AddItemToArray(svc, cc);
  }
  for (size_t i = 0; ok && i < sizeof res / sizeof *res; i++) {
    cJSON *r = cJSON_CreateObject();
    ok = r && cJSON_AddStringToObject(r, "type", res[i].type) &&
         fh__add_codes(r, "interaction", res[i].ops, "code") &&
         cJSON_AddStringToObject(r, "versioning", "versioned-update") &&
         cJSON_AddFalseToObject(r, "readHistory") &&
         cJSON_AddFalseToObject(r, "updateCreate") &&
         cJSON_AddBoolToObject(r, "conditionalCreate",
                               strcmp(res[i].type, "Task") != 0) &&
         cJSON_AddFalseToObject(r, "conditionalUpdate") &&
         cJSON_AddStringToObject(r, "conditionalDelete", "not-supported");
    if (ok && !strcmp(res[i].type, "Task")) {
      cJSON *sp = cJSON_AddArrayToObject(r, "searchParam");
      for (size_t k = 0; sp && k < sizeof params / sizeof *params; k++) {
        cJSON *p = cJSON_CreateObject();
        ok = p && cJSON_AddStringToObject(p, "name", params[k].name) &&
             cJSON_AddStringToObject(p, "type", params[k].type) &&
             cJSON_AddStringToObject(p, "documentation", params[k].doc);
        if (p)
          cJSON_AddItemToArray(sp, p);
      }
      ok = ok && sp;
    }
    if (r)
      cJSON_AddItemToArray(rs, r);
  }
  static const char *const sys_ops[] = {"transaction", "batch", NULL};
  ok = ok && fh__add_codes(r0, "interaction", sys_ops, "code");
  if (!ok) {
    cJSON_Delete(c);
    return NULL;
  }
  return c;
}

/* ---- requests
 * ---------------------------------------------------------------- */

/* The request body as a resource tree (by Content-Type): 0 and *tree (the
 * caller deletes it), or -1 with r a 400/415 (or 500). */
static int fh__body(const hvg_httpd_req *req, cJSON **tree, hvg_fres *r) {
  *tree = NULL;
  const char *ct = hvg_httpd_header(req, "Content-Type");
  int m = ct ? fh__media(ct, strlen(ct)) : -1;
  if (m < 0)
    return hvg_fres_fail(r, 415, "not-supported", NULL,
                         "Content-Type must be application/fhir+json or "
                         "application/fhir+xml"),
           -1;
  if (!req->body_len)
    return hvg_fres_fail(r, 400, "required", NULL, "the request has no body"),
           -1;
  hvg_err e;
  hvg_err_clear(&e);
  int rc =
      m ? fhir_xml_parse(req->body, req->body_len, FH__MAX_BODY, tree, &e)
        : fhir_json_parse(req->body, req->body_len, FH__MAX_BODY, tree, &e);
  if (rc == HVG_ENOMEM)
    return hvg_fres_fail(r, 500, "exception", NULL, "out of memory"), -1;
  if (rc)
    return hvg_fres_fail(
               r, rc == HVG_ETOOBIG ? 413 : 400,
               rc == HVG_ESECURITY                        ? "security"
               : rc == HVG_ETOOBIG                        ? "too-costly"
               : rc == HVG_ESYNTAX || rc == HVG_EENCODING ? "structure"
                                                          : "invalid",
               e.field, "%s: %s", m ? "FHIR XML" : "FHIR JSON", e.msg),
           -1;
  return 0;
}

/* If-Match: W/"3" -> 3; 0 when absent, -1 when not a version. */
static int64_t fh__if_match(const hvg_httpd_req *req) {
  const char *v = hvg_httpd_header(req, "If-Match");
  if (!v)
    return 0;
  while (*v == ' ')
    v++;
  if (!strncmp(v, "W/", 2))
    v += 2;
  if (*v == '"')
    v++;
  char *end;
  long long n = strtoll(v, &end, 10);
  return n > 0 && (*end == '"' || !*end) ? (int64_t)n : -1;
}

/* The search parameters of a request (query, plus a form body for
 * POST _search), without _format and _pretty. Strings live in buf. */
static int fh__params(const hvg_httpd_req *req, int form, char *buf, size_t cap,
                      hvg_fparam *params, size_t max) {
  int n = snprintf(buf, cap, "%s%s%.*s", req->query,
                   req->query[0] && form ? "&" : "",
                   form ? (int)req->body_len : 0, form ? req->body : "");
  if (n < 0 || (size_t)n >= cap)
    return -1;
  hvg_fparam all[HVG_FSRV_MAX_PARAMS];
  int k = hvg_fsrv_query(buf, all, HVG_FSRV_MAX_PARAMS);
  size_t o = 0;
  for (int i = 0; i < k && o < max; i++)
    if (strcmp(all[i].name, "_format") && strcmp(all[i].name, "_pretty"))
      params[o++] = all[i];
  return k < 0 ? -1 : (int)o;
}

/* The CapabilityStatement in fmt for base (rendered once per base). */
static int fh__metadata(hvg_fhir_http *h, hvg_httpd_resp *resp, int fmt,
                        const char *base) {
  if (strcmp(h->cap_base, base) || !h->cap[fmt].len) {
    cJSON *c = hvg_fhir_capabilities(base);
    if (!c)
      return HVG_ENOMEM;
    hvg_err e;
    for (int f = 0; f < 2; f++) {
      hvg_buf_reset(&h->cap[f]);
      int rc =
          fhir_json_serialize(c, f ? FHIR_XML : FHIR_JSON, 0, &h->cap[f], &e);
      if (rc) {
        cJSON_Delete(c);
        return rc;
      }
    }
    cJSON_Delete(c);
    snprintf(h->cap_base, sizeof h->cap_base, "%s", base);
  }
  return hvg_httpd_resp_send(resp, 200, fmt ? FH__XML : FH__JSON,
                             h->cap[fmt].data, h->cap[fmt].len);
}

/* The part of an absolute or relative reference after `base/`, if it is
 * Task/{id}; into out. */
static int fh__task_ref(const char *ref, const char *base, char *out,
                        size_t cap) {
  if (!ref)
    return 0;
  size_t bl = base ? strlen(base) : 0;
  while (bl && base[bl - 1] == '/')
    bl--;
  const char *rel = ref;
  if (bl && !strncmp(ref, base, bl) && ref[bl] == '/')
    rel = ref + bl + 1;
  else if (!strncmp(ref, "http://", 7) || !strncmp(ref, "https://", 8))
    return 0; /* another server's: not fetched */
  const char *h = strstr(rel, "/_history/");
  size_t n = h ? (size_t)(h - rel) : strlen(rel);
  if (n <= 5 || strncmp(rel, "Task/", 5) || n >= cap)
    return 0;
  memcpy(out, rel, n);
  out[n] = '\0';
  return fhir_check_id(out + 5);
}

int hvg_fhir_notification_refs(const cJSON *bundle, const char *base,
                               const char **refs, size_t max, char *buf,
                               size_t cap, const char **kind,
                               const char **why) {
  *kind = NULL;
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(bundle, "type");
  const cJSON *entries = cJSON_GetObjectItemCaseSensitive(bundle, "entry");
  const cJSON *status = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetArrayItem(entries, 0), "resource");
  const cJSON *rt = cJSON_GetObjectItemCaseSensitive(status, "resourceType");
  if (!cJSON_IsString(type) || strcmp(type->valuestring, "history") ||
      !cJSON_IsString(rt) || strcmp(rt->valuestring, "Parameters")) {
    *why = "a notification is a history Bundle whose first entry is the "
           "subscription status (Parameters)";
    return -1;
  }
  size_t n = 0, used = 0;
  const cJSON *p;
  /* one reference: add it once */
#define FH__ADD(refstr)                                                        \
  do {                                                                         \
    char one[256];                                                             \
    if (n < max && fh__task_ref((refstr), base, one, sizeof one)) {            \
      int dup = 0;                                                             \
      for (size_t d = 0; d < n && !dup; d++)                                   \
        dup = !strcmp(refs[d], one);                                           \
      size_t l = strlen(one) + 1;                                              \
      if (!dup && used + l <= cap) {                                           \
        memcpy(buf + used, one, l);                                            \
        refs[n++] = buf + used;                                                \
        used += l;                                                             \
      }                                                                        \
    }                                                                          \
  } while (0)
  cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(status, "parameter")) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(p, "name");
    if (!cJSON_IsString(name))
      continue;
    if (!strcmp(name->valuestring, "type")) {
      const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, "valueCode");
      if (cJSON_IsString(v))
        *kind = v->valuestring;
    } else if (!strcmp(name->valuestring, "notification-event")) {
      const cJSON *part;
      cJSON_ArrayForEach(part, cJSON_GetObjectItemCaseSensitive(p, "part")) {
        const cJSON *pn = cJSON_GetObjectItemCaseSensitive(part, "name");
        const cJSON *vr =
            cJSON_GetObjectItemCaseSensitive(part, "valueReference");
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(vr, "reference");
        if (cJSON_IsString(pn) && !strcmp(pn->valuestring, "focus") &&
            cJSON_IsString(r))
          FH__ADD(r->valuestring);
      }
    }
  }
  /* id-only and full-resource payloads name the focus in their entries */
  int i = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, entries) {
    if (i++ == 0)
      continue;
    const cJSON *full = cJSON_GetObjectItemCaseSensitive(e, "fullUrl");
    if (cJSON_IsString(full))
      FH__ADD(full->valuestring);
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(e, "resource");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(res, "id");
    const cJSON *rrt = cJSON_GetObjectItemCaseSensitive(res, "resourceType");
    if (cJSON_IsString(id) && cJSON_IsString(rrt) &&
        !strcmp(rrt->valuestring, "Task")) {
      char r[128];
      snprintf(r, sizeof r, "Task/%.64s", id->valuestring);
      FH__ADD(r);
    }
  }
#undef FH__ADD
  if (!*kind) {
    *why = "the subscription status has no notification type";
    return -1;
  }
  return (int)n;
}

static int fh__notify(hvg_fhir_http *h, const hvg_partner *who,
                      const hvg_httpd_req *req, hvg_fres *r) {
  cJSON *tree;
  if (fh__body(req, &tree, r))
    return 0;
  const char *refs[FH__MAX_REFS];
  char buf[FH__MAX_REFS * 72];
  const char *kind = NULL, *why = NULL;
  int n = hvg_fhir_notification_refs(tree, who->base_url, refs, FH__MAX_REFS,
                                     buf, sizeof buf, &kind, &why);
  int rc = 0;
  if (n < 0) {
    hvg_fres_fail(r, 400, "invalid", "Bundle", "%s", why);
  } else {
    hvg_err e;
    if (n && (rc = store_inbox_add(h->st, who->id, refs, (size_t)n,
                                   store_now_ms(), &e)) != 0) {
      hvg_fres_fail(r, 503, "transient", NULL,
                    "the notification could not be stored: %s", e.msg);
      rc = 0; /* answered: the partner retries */
    } else {
      char msg[160];
      snprintf(msg, sizeof msg, "%s: %d Task reference%s to fetch",
               kind ? kind : "notification", n, n == 1 ? "" : "s");
      r->status = 200;
      r->body = fh__outcome("information", "informational", msg, NULL);
      if (!r->body)
        rc = HVG_ENOMEM;
    }
  }
  cJSON_Delete(tree);
  return rc;
}

/* Splits the raw path below /fhir/ into at most 4 segments. */
static int fh__segments(const char *rest, char segs[4][128]) {
  int n = 0;
  for (const char *p = rest; *p;) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 4 || len >= 128 || (!len && slash))
      return -1;
    memcpy(segs[n], p, len);
    segs[n][len] = '\0';
    if (len)
      n++;
    p = slash ? slash + 1 : p + len;
  }
  return n;
}

static int fh__handle(void *ctx, const hvg_httpd_req *req,
                      hvg_httpd_resp *resp) {
  hvg_fhir_http *h = ctx;
  int pretty;
  int fmt = fh__format(req, &pretty);
  if (fmt < 0)
    return fh__fail(resp, 0, 406, "not-supported", NULL,
                    "the Accept header or _format asks for a format this "
                    "server does not have (application/fhir+json, "
                    "application/fhir+xml)");
  const hvg_partner *who = hvg_cred_partner(h->cfg, req);
  if (!who) {
    int rc = fh__fail(resp, fmt, 401, "login", NULL,
                      "a partner credential is needed: Authorization: Bearer "
                      "TOKEN, or the partner's client certificate");
    return rc ? rc
              : hvg_httpd_resp_header(resp, "WWW-Authenticate",
                                      "Bearer realm=\"hvgate\"");
  }
  char base[320];
  fh__base(req, base, sizeof base);
  char segs[4][128];
  int ns = fh__segments(req->rest ? req->rest : "", segs);
  /* group commit: the requests of one turn of the loop share a
   * transaction, committed by hvg_fhir_http_flush before their answers go
   * (if it cannot begin, each interaction commits on its own) */
  if (ns > 0 && strcmp(segs[0], "metadata") && !store_tx_depth(h->st)) {
    hvg_err e;
    (void)store_tx_begin(h->st, &e);
  }
  const char *m = req->method;
  int get = !strcmp(m, "GET") || !strcmp(m, "HEAD");
  hvg_fres r;
  memset(&r, 0, sizeof r);
  const char *prefer = fh__prefer(req);
  r.minimal = prefer && !get; /* minimal or OperationOutcome: no resource */
  int64_t now = store_now_ms();
  int rc = 0;
  const char *allow = NULL;
  cJSON *tree = NULL;
  if (ns == 0 && !store_tx_depth(h->st)) { /* a Bundle */
    hvg_err e;
    (void)store_tx_begin(h->st, &e);
  }
  if (ns < 0) {
    hvg_fres_fail(&r, 400, "invalid", NULL, "not a FHIR REST path");
  } else if (ns == 0) {
    if (strcmp(m, "POST"))
      allow = "POST";
    else if (!fh__body(req, &tree, &r))
      rc = hvg_fsrv_bundle(h->srv, who, tree, base, now, &r);
  } else if (ns == 1 && !strcmp(segs[0], "metadata")) {
    if (get)
      return fh__metadata(h, resp, fmt, base);
    allow = "GET";
  } else if (ns == 1 && !strcmp(segs[0], "subscription-notification")) {
    if (!strcmp(m, "POST"))
      rc = fh__notify(h, who, req, &r);
    else
      allow = "POST";
  } else if (segs[0][0] < 'A' || segs[0][0] > 'Z') {
    hvg_fres_fail(&r, 404, "not-found", NULL, "no such endpoint");
  } else if (ns == 1 || (ns == 2 && !strcmp(segs[1], "_search"))) {
    int form = ns == 2;
    if (form ? strcmp(m, "POST") : !get && strcmp(m, "POST")) {
      allow = form ? "POST" : "GET, POST";
    } else if (!form && !strcmp(m, "POST")) {
      if (!fh__body(req, &tree, &r))
        rc = hvg_fsrv_create(h->srv, who, segs[0], tree,
                             hvg_httpd_header(req, "If-None-Exist"), now, &r);
    } else {
      char buf[8192];
      hvg_fparam params[HVG_FSRV_MAX_PARAMS];
      int np =
          fh__params(req, form, buf, sizeof buf, params, HVG_FSRV_MAX_PARAMS);
      if (np < 0)
        hvg_fres_fail(&r, 400, "too-costly", NULL,
                      "too many or too long search parameters");
      else
        rc =
            hvg_fsrv_search(h->srv, who, segs[0], params, (size_t)np, base, &r);
    }
  } else if (ns == 2) {
    int64_t im = fh__if_match(req);
    if (im < 0) {
      hvg_fres_fail(&r, 412, "conflict", NULL,
                    "If-Match must be a version tag such as W/\"3\"");
    } else if (get) {
      rc = hvg_fsrv_read(h->srv, who, segs[0], segs[1], &r);
    } else if (!strcmp(m, "PUT")) {
      if (!fh__body(req, &tree, &r))
        rc = hvg_fsrv_update(h->srv, who, segs[0], segs[1], tree, im, now, &r);
    } else if (!strcmp(m, "PATCH")) {
      const char *ct = hvg_httpd_header(req, "Content-Type");
      if (!ct || strncasecmp(ct, "application/json-patch+json", 27))
        hvg_fres_fail(&r, 415, "not-supported", NULL,
                      "PATCH takes application/json-patch+json");
      else
        rc = hvg_fsrv_patch(h->srv, who, segs[0], segs[1], req->body,
                            req->body_len, im, now, &r);
    } else {
      allow = "GET, PUT, PATCH";
    }
  } else if (ns == 4 && !strcmp(segs[2], "_history")) {
    if (!get) {
      allow = "GET";
    } else {
      rc = hvg_fsrv_read(h->srv, who, segs[0], segs[1], &r);
      char *end;
      long long v = strtoll(segs[3], &end, 10);
      if (!rc && r.status == 200 && (*end || v != r.version))
        hvg_fres_fail(&r, 404, "not-found", NULL,
                      "only the current version (%lld) is kept",
                      (long long)r.version);
    }
  } else {
    hvg_fres_fail(&r, 404, "not-found", NULL, "no such endpoint");
  }
  cJSON_Delete(tree);
  if (allow) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s is not allowed here (%s)", m, allow);
    rc = fh__fail(resp, fmt, 405, "not-supported", NULL, msg);
    if (!rc)
      rc = hvg_httpd_resp_header(resp, "Allow", allow);
  } else if (!r.status) {
    rc = rc ? rc : HVG_ENOMEM;
  } else {
    int src = fh__reply(resp, req, &r, fmt, pretty, base);
    rc = src ? src : 0;
    if (!rc && r.status == 405 && ns == 2) /* a type that is only read */
      rc = hvg_httpd_resp_header(resp, "Allow", "GET");
  }
  hvg_fres_reset(&r);
  return rc;
}

int hvg_fhir_http_new(hvg_fhir_http **out, const hvg_config *cfg, store *st,
                      hvg_httpd *srv, hvg_err *err) {
  *out = NULL;
  hvg_fhir_http *h = calloc(1, sizeof *h);
  if (!h)
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  h->cfg = cfg;
  h->st = st;
  hvg_buf_init(&h->cap[0], (size_t)1 << 20);
  hvg_buf_init(&h->cap[1], (size_t)1 << 20);
  int rc = hvg_fsrv_new(&h->srv, cfg, st, err);
  if (!rc)
    rc = hvg_httpd_route(srv, "* /fhir/", fh__handle, h, err);
  if (!rc)
    rc = hvg_httpd_route(srv, "* /fhir", fh__handle, h, err);
  if (!rc)
    rc = hvg_httpd_error_renderer(srv, "/fhir", fh__render_error, h, err);
  if (rc) {
    hvg_fhir_http_free(h);
    return rc;
  }
  *out = h;
  return 0;
}

hvg_fsrv *hvg_fhir_http_server(hvg_fhir_http *h) {
  return h ? h->srv : NULL;
}

int hvg_fhir_http_flush(hvg_fhir_http *h) {
  if (!h || !store_tx_depth(h->st))
    return 0;
  hvg_err e;
  return store_tx_end(h->st, 1, &e) ? 503 : 0;
}

void hvg_fhir_http_free(hvg_fhir_http *h) {
  if (!h)
    return;
  hvg_fsrv_free(h->srv);
  hvg_buf_free(&h->cap[0]);
  hvg_buf_free(&h->cap[1]);
  free(h);
}
