/* libFuzzer: inbound request handling of the FHIR endpoint (path, headers,
 * body), through hvg_httpd_dispatch on the fixture of fhir_fixture.h (the
 * example configuration with partner credentials, a store seeded by the
 * real mapping and referral tracker).
 *
 * An input is an HTTP request: a first line "METHOD TARGET", then
 * "Name: value" header lines, an empty line, then the body. Header lines
 * that are not "token: value" are dropped. The last byte of the input
 * picks the credential added to the request (& 3): 0 none, 1 the token of
 * riverside-peds, 2 the token of county-ei, 3 county-ei's client
 * certificate; so a text file ending in "\n" is county-ei's, one ending in
 * a tab riverside-peds'.
 *
 * Invariants (abort on violation): dispatch answers every request whose
 * target and headers it takes; the status is 100..599; an answer with a
 * body says its Content-Type; under /fhir, every status >= 400 has an
 * OperationOutcome that fhir_json_parse (or fhir_xml_parse for XML)
 * accepts, and every 2xx body is valid FHIR in its format; an ETag is a
 * weak version tag W/"n"; a 201 has a Location. The store grows with
 * creates: the fixture is built again every FX_RENEW inputs. */
#include "fhir_fixture.h"
#include "fhir_json.h"
#include "fhir_xml.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FX_RENEW 4000
#define MAX_HEADERS 32

static hvg_config *cfg;
static fhir_fx fx;
static int ready;
static unsigned long runs;
static hvg_httpd_answer ans;

static void build(void) {
  if (ready)
    fx_close(&fx);
  ready = 0;
  if (fx_open(&fx, cfg)) {
    fprintf(stderr, "fuzz_fhir_requests: the fixture cannot be built\n");
    abort();
  }
  ready = 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (fx_config_load(&cfg)) {
    fprintf(stderr, "fuzz_fhir_requests: the configuration does not load\n");
    abort();
  }
  hvg_buf_init(&ans.headers, (size_t)1 << 20);
  hvg_buf_init(&ans.body, (size_t)64 << 20);
  build();
  return 0;
}

static int tchar(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* 1 when line is "token: value" without CR or NUL. */
static int header_ok(const char *line) {
  const char *colon = strchr(line, ':');
  if (!colon || colon == line || colon - line > 200)
    return 0;
  for (const char *p = line; p < colon; p++)
    if (!tchar((unsigned char)*p))
      return 0;
  return !strchr(colon, '\r');
}

/* The value of response header name, or NULL. */
static const char *resp_header(const char *name, char *out, size_t cap) {
  size_t nl = strlen(name);
  for (const char *p = ans.headers.data; p && *p;) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    if (len > nl && !strncasecmp(p, name, nl) && p[nl] == ':') {
      const char *v = p + nl + 1;
      while (*v == ' ')
        v++;
      snprintf(out, cap, "%.*s", (int)(len - (size_t)(v - p)), v);
      return out;
    }
    p = eol ? eol + 1 : NULL;
  }
  return NULL;
}

static void fail(const char *method, const char *target, const char *why) {
  fprintf(stderr, "fuzz_fhir_requests: %s %s -> %d: %s\n%.*s\n", method, target,
          ans.status, why, (int)(ans.body.len > 4000 ? 4000 : ans.body.len),
          ans.body.data ? ans.body.data : "");
  abort();
}

static void check(const char *method, const char *target) {
  if (ans.status < 100 || ans.status > 599)
    fail(method, target, "status out of range");
  char ct[256], v[256];
  const char *ctype = resp_header("Content-Type", ct, sizeof ct);
  if (ans.body.len && !ctype)
    fail(method, target, "a body without Content-Type");
  const char *et = resp_header("ETag", v, sizeof v);
  if (et) {
    size_t n = strlen(et);
    if (n < 5 || strncmp(et, "W/\"", 3) || et[n - 1] != '"' ||
        strspn(et + 3, "0123456789") != n - 4 || et[3] == '0')
      fail(method, target, "an ETag that is not W/\"n\"");
  }
  if (strncmp(target, "/fhir", 5))
    return; /* the server's other routes are not FHIR */
  if (ans.status == 201 && !resp_header("Location", v, sizeof v))
    fail(method, target, "201 without Location");
  if (!strcmp(method, "HEAD"))
    return; /* the headers of a GET, without its body */
  int error = ans.status >= 400;
  int ok = ans.status >= 200 && ans.status < 300;
  if (!error && !(ok && ans.body.len))
    return;
  if (!ans.body.len)
    fail(method, target, "an error without an OperationOutcome");
  int xml = strstr(ctype, "application/fhir+xml") != NULL;
  if (!xml && !strstr(ctype, "application/fhir+json"))
    fail(method, target, "a body that is not FHIR JSON or XML");
  cJSON *tree = NULL;
  hvg_err e;
  hvg_err_clear(&e);
  int rc = xml ? fhir_xml_parse(ans.body.data, ans.body.len,
                                FHIR_PARSE_MAX_INPUT, &tree, &e)
               : fhir_json_parse(ans.body.data, ans.body.len,
                                 FHIR_PARSE_MAX_INPUT, &tree, &e);
  if (rc) {
    fprintf(stderr, "parser: %s: %s\n", e.field, e.msg);
    fail(method, target, "the answer is not valid FHIR");
  }
  const cJSON *rt = cJSON_GetObjectItemCaseSensitive(tree, "resourceType");
  if (error &&
      (!cJSON_IsString(rt) || strcmp(rt->valuestring, "OperationOutcome") ||
       !cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(tree, "issue"))))
    fail(method, target, "an error whose body is not an OperationOutcome");
  cJSON_Delete(tree);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (++runs % FX_RENEW == 0)
    build();
  char *in = malloc(size + 1);
  if (!in)
    return 0;
  memcpy(in, data, size);
  in[size] = '\0';
  int who = size ? data[size - 1] & 3 : 0;
  /* the request line */
  char *eol = memchr(in, '\n', size);
  char *line_end = eol ? eol : in + size;
  char *sp = memchr(in, ' ', (size_t)(line_end - in));
  char method[32] = "GET";
  const char *target = "/fhir/metadata";
  if (sp && sp > in && (size_t)(sp - in) < sizeof method) {
    memcpy(method, in, (size_t)(sp - in));
    method[sp - in] = '\0';
    *line_end = '\0';
    target = sp + 1;
    size_t tl = strlen(target);
    if (tl && target[tl - 1] == '\r')
      ((char *)target)[tl - 1] = '\0';
  }
  /* headers, until an empty line; then the body */
  const char *headers[MAX_HEADERS + 3];
  size_t nh = 0;
  const char *body = "";
  size_t body_len = 0;
  char *p = eol ? eol + 1 : NULL;
  while (p && p < in + size) {
    char *e2 = memchr(p, '\n', (size_t)(in + size - p));
    char *end = e2 ? e2 : in + size;
    if (end > p && end[-1] == '\r')
      end[-1] = '\0';
    *end = '\0';
    if (!*p) { /* the empty line */
      body = e2 ? e2 + 1 : "";
      body_len = e2 ? (size_t)(in + size - (e2 + 1)) : 0;
      break;
    }
    if (nh < MAX_HEADERS && (size_t)(end - p) == strlen(p) && header_ok(p))
      headers[nh++] = p;
    p = e2 ? e2 + 1 : NULL;
  }
  char auth[128];
  if (who == 1 || who == 2) {
    snprintf(auth, sizeof auth, "Authorization: Bearer %s",
             who == 1 ? FX_TOKEN_PEDS : FX_TOKEN_EI);
    headers[nh++] = auth;
  }
  headers[nh] = NULL;
  hvg_err err;
  hvg_err_clear(&err);
  int rc = hvg_httpd_dispatch(fx.srv, method, target, headers, body, body_len,
                              who == 3 ? &fx.cert_ei : NULL, &ans, &err);
  if (rc == 0)
    check(method, target);
  else if (rc != HVG_EINVAL) { /* a target or header dispatch does not take */
    fprintf(stderr, "fuzz_fhir_requests: dispatch failed: %d %s\n", rc,
            err.msg);
    abort();
  }
  free(in);
  return 0;
}
