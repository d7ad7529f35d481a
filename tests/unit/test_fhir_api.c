/* The FHIR endpoint (hvg_fhir_http over hvg_fsrv) as partners call it,
 * through hvg_httpd_dispatch on the fixture of tests/fuzz/fhir_fixture.h:
 * the example configuration with inbound credentials, a store seeded by
 * the real mapping and the referral tracker, the endpoint registered on a
 * server that is not started.
 *
 * Every answer is checked on the way: a body must be valid FHIR in the
 * format its Content-Type names (fhir_json_parse / fhir_xml_parse), and an
 * error (>= 400) must be an OperationOutcome. Then each test asserts what
 * matters to the partner and to the loop: statuses and headers, the
 * OperationOutcome's issue (code, diagnostics, expression), what was stored
 * (read back, or the store's own view: transitions, results, inbox) and
 * what was not (a refused request changes nothing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../fuzz/fhir_fixture.h"
#include "fhir_json.h"
#include "fhir_xml.h"
#include "hvg_tracker.h"

#include <strings.h>
#include <time.h>

#define BASE "http://localhost/fhir"
#define CHILD_SYS FX_CHILD_SYSTEM
#define PROG "sunrise-hv"
#define INST "urn:hvgate:instrument"

static hvg_config *cfg;
static fhir_fx fx;
static hvg_httpd_answer ans;
static cJSON *res; /* the last answer's body, parsed */

static int setup(void **state) {
  (void)state;
  hvg_buf_init(&ans.headers, 1 << 16);
  hvg_buf_init(&ans.body, 16 << 20);
  return fx_open(&fx, cfg);
}

static int teardown(void **state) {
  (void)state;
  fx_close(&fx);
  cJSON_Delete(res);
  res = NULL;
  hvg_buf_free(&ans.headers);
  hvg_buf_free(&ans.body);
  return 0;
}

/* ---- calling the endpoint ------------------------------------------------ */

enum who { NOBODY, PEDS, EI, BAD_TOKEN, CERT_EI, CERT_BAD };

/* The value of response header name (a copy), or NULL. */
static const char *hdr(const char *name) {
  static char v[1024];
  size_t nl = strlen(name);
  for (const char *p = ans.headers.data; p && *p;) {
    const char *nlp = strchr(p, '\n');
    size_t len = nlp ? (size_t)(nlp - p) : strlen(p);
    if (len > nl + 1 && !strncasecmp(p, name, nl) && p[nl] == ':') {
      const char *s = p + nl + 1;
      while (*s == ' ')
        s++;
      snprintf(v, sizeof v, "%.*s", (int)(len - (size_t)(s - p)), s);
      return v;
    }
    p = nlp ? nlp + 1 : NULL;
  }
  return NULL;
}

/* One request. ctype: the body's Content-Type (NULL: none); h1, h2 more
 * header lines (may be NULL). Checks that the answer is valid FHIR. */
static int call_h(int who, const char *method, const char *target,
                  const char *ctype, const char *body, const char *h1,
                  const char *h2) {
  const char *hdrs[8];
  size_t n = 0;
  char auth[160], ct[160];
  const char *tok = who == PEDS        ? FX_TOKEN_PEDS
                    : who == EI        ? FX_TOKEN_EI
                    : who == BAD_TOKEN ? "not-a-partner-token"
                                       : NULL;
  if (tok) {
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
    hdrs[n++] = auth;
  }
  if (ctype) {
    snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
    hdrs[n++] = ct;
  }
  if (h1)
    hdrs[n++] = h1;
  if (h2)
    hdrs[n++] = h2;
  hdrs[n] = NULL;
  static hvg_httpd_peer stranger;
  snprintf(stranger.sha256, sizeof stranger.sha256, "%064d", 7);
  const hvg_httpd_peer *peer = who == CERT_EI    ? &fx.cert_ei
                               : who == CERT_BAD ? &stranger
                                                 : NULL;
  hvg_err e;
  hvg_err_clear(&e);
  int rc = hvg_httpd_dispatch(fx.srv, method, target, hdrs, body,
                              body ? strlen(body) : 0, peer, &ans, &e);
  if (rc)
    fail_msg("%s %s: dispatch failed: %s", method, target, e.msg);
  cJSON_Delete(res);
  res = NULL;
  const char *cty = hdr("Content-Type");
  if (ans.body.len) {
    if (!cty)
      fail_msg("%s %s: a body without Content-Type", method, target);
    int xml = strstr(cty, "application/fhir+xml") != NULL;
    if (!xml && !strstr(cty, "application/fhir+json"))
      fail_msg("%s %s: Content-Type %s", method, target, cty);
    rc = xml ? fhir_xml_parse(ans.body.data, ans.body.len, 64 << 20, &res, &e)
             : fhir_json_parse(ans.body.data, ans.body.len, 64 << 20, &res, &e);
    if (rc)
      fail_msg("%s %s: the answer (%d) is not valid FHIR: %s: %s\n%.*s", method,
               target, ans.status, e.field, e.msg,
               (int)(ans.body.len > 2000 ? 2000 : ans.body.len), ans.body.data);
  }
  if (ans.status >= 400) {
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(res, "resourceType");
    if (!cJSON_IsString(rt) || strcmp(rt->valuestring, "OperationOutcome"))
      fail_msg("%s %s: %d without an OperationOutcome", method, target,
               ans.status);
  }
  return ans.status;
}

static int call(int who, const char *method, const char *target,
                const char *ctype, const char *body) {
  return call_h(who, method, target, ctype, body, NULL, NULL);
}

#define FJSON "application/fhir+json"
#define FXML "application/fhir+xml"
#define JPATCH "application/json-patch+json"

static const char *str(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A printf into one of a few rotating buffers. */
static const char *fmt(const char *f, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static const char *fmt(const char *f, ...) {
  static char bufs[8][16384];
  static int i;
  char *b = bufs[i++ & 7];
  va_list ap;
  va_start(ap, f);
  vsnprintf(b, sizeof bufs[0], f, ap);
  va_end(ap);
  return b;
}

/* The last answer is an OperationOutcome with status, issue code, a
 * diagnostics containing diag and expression[0] expr (NULL: not
 * checked; "" : none). */
static void expect_oo_at(int line, int status, const char *code,
                         const char *diag, const char *expr) {
  const cJSON *iss =
      cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "issue"), 0);
  const char *c = str(iss, "code"), *d = str(iss, "diagnostics");
  const char *x =
      cJSON_IsString(cJSON_GetArrayItem(
          cJSON_GetObjectItemCaseSensitive(iss, "expression"), 0))
          ? cJSON_GetArrayItem(
                cJSON_GetObjectItemCaseSensitive(iss, "expression"), 0)
                ->valuestring
          : "";
  if (ans.status != status || !c || strcmp(c, code) ||
      (diag && (!d || !strstr(d, diag))) || (expr && strcmp(x, expr)))
    fail_msg("line %d: wanted %d %s '%s' at '%s', got %d %s '%s' at '%s'", line,
             status, code, diag ? diag : "*", expr ? expr : "*", ans.status,
             c ? c : "-", d ? d : "-", x);
  assert_string_equal(str(iss, "severity"), "error");
}
#define expect_oo(...) expect_oo_at(__LINE__, __VA_ARGS__)

/* A copy of the last answer's tree. */
static cJSON *take(void) {
  cJSON *t = res;
  res = NULL;
  return t;
}

static cJSON *get_task(int who, const char *id) {
  assert_int_equal(call(who, "GET", fmt("/fhir/Task/%s", id), NULL, NULL), 200);
  return take();
}

static int64_t version_of(const cJSON *t) {
  const char *v = str(cJSON_GetObjectItemCaseSensitive(t, "meta"), "versionId");
  return v ? atoll(v) : -1;
}

static void set_str(cJSON *o, const char *key, const char *v) {
  cJSON_DeleteItemFromObjectCaseSensitive(o, key);
  cJSON_AddStringToObject(o, key, v);
}

/* PUT tree as Task/id (If-Match W/"if_match" when > 0). */
static int put_task(int who, const char *id, const cJSON *tree,
                    int64_t if_match) {
  char *body = cJSON_PrintUnformatted(tree);
  char im[64];
  snprintf(im, sizeof im, "If-Match: W/\"%lld\"", (long long)if_match);
  int st = call_h(who, "PUT", fmt("/fhir/Task/%s", id), FJSON, body,
                  if_match > 0 ? im : NULL, NULL);
  free(body);
  return st;
}

/* Task/id read as `who` with its status changed to `status`, PUT back. */
static int move_task(int who, const char *id, const char *status) {
  cJSON *t = get_task(who, id);
  set_str(t, "status", status);
  int st = put_task(who, id, t, 0);
  cJSON_Delete(t);
  return st;
}

/* The stored Task (version and body) is exactly `before`. */
static void assert_task_is(int who, const char *id, const cJSON *before) {
  cJSON *now = get_task(who, id);
  if (!fhir_json_equal(now, before)) {
    char *a = cJSON_PrintUnformatted(before), *b = cJSON_PrintUnformatted(now);
    fail_msg("Task/%s changed:\n%s\n%s", id, a, b);
  }
  cJSON_Delete(now);
}

static size_t n_entries(const cJSON *bundle, const char *mode) {
  size_t n = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(bundle, "entry")) {
    const char *m = str(cJSON_GetObjectItemCaseSensitive(e, "search"), "mode");
    n += !mode || (m && !strcmp(m, mode));
  }
  return n;
}

static int total_of(const cJSON *bundle) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(bundle, "total");
  return cJSON_IsNumber(t) ? t->valueint : -1;
}

/* The search's total for `who` (asserting 200 and a searchset). */
static int search_total(int who, const char *query) {
  int st = call(who, "GET", fmt("/fhir/Task?%s", query), NULL, NULL);
  if (st != 200)
    fail_msg("search %s: %d", query, st);
  assert_string_equal(str(res, "type"), "searchset");
  return total_of(res);
}

static const char *link_url(const cJSON *bundle, const char *rel) {
  const cJSON *l;
  cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(bundle, "link")) {
    const char *r = str(l, "relation");
    if (r && !strcmp(r, rel))
      return str(l, "url");
  }
  return NULL;
}

static size_t n_tasks_of(const char *partner, const char *status) {
  size_t n = 0;
  for (size_t i = 0; i < fx.n_tasks; i++)
    n += !strcmp(fx.tasks[i].partner, partner) &&
         (!status || !strcmp(fx.tasks[i].status, status));
  return n;
}

/* How many resources of type the store holds (all partners). */
static size_t count_type(const char *type) {
  store_resource_query q;
  memset(&q, 0, sizeof q);
  q.type = type;
  store_resource row;
  size_t n = 0, total = 0;
  assert_int_equal(store_resource_search(fx.st, &q, &row, 1, &n, &total, NULL),
                   0);
  if (n)
    store_resource_release(&row);
  return total;
}

static size_t count_referrals(void) {
  store_referral refs[300];
  size_t n = 0;
  assert_int_equal(store_referral_list(fx.st, PROG, 0, 0, 300, refs, &n, NULL),
                   0);
  for (size_t i = 0; i < n; i++)
    store_referral_release(&refs[i]);
  return n;
}

static size_t count_results(void) {
  store_result rs[64];
  size_t n = 0;
  assert_int_equal(store_result_list(fx.st, PROG, 0, 0, 64, rs, &n, NULL), 0);
  for (size_t i = 0; i < n; i++)
    store_result_release(&rs[i]);
  return n;
}

/* Replaces every occurrence of `what` in s by "{id}" (in place). */
static void blank(char *s, const char *what) {
  size_t wl = strlen(what);
  for (char *p = strstr(s, what); p; p = strstr(p, what)) {
    memmove(p + 4, p + wl, strlen(p + wl) + 1);
    memcpy(p, "{id}", 4);
  }
}

static char *body_copy(void) {
  char *b = malloc(ans.body.len + 1);
  memcpy(b, ans.body.data, ans.body.len);
  b[ans.body.len] = '\0';
  return b;
}

#define NO_SUCH_ID "00000000-0000-4000-8000-000000000000"

/* ---- authentication and scoping -------------------------------------- */

static void test_auth(void **state) {
  (void)state;
  const fx_task *ei = fx_task_of(&fx, "county-ei", "requested");
  const fx_task *pd = fx_task_of(&fx, "riverside-peds", NULL);
  assert_non_null(ei);
  assert_non_null(pd);
  char path[128];
  snprintf(path, sizeof path, "/fhir/Task/%s", ei->id);

  /* anonymous, a wrong token, another scheme, an unknown certificate */
  int who[] = {NOBODY, BAD_TOKEN, CERT_BAD};
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(call(who[i], "GET", path, NULL, NULL), 401);
    expect_oo(401, "login", "credential", "");
    assert_non_null(hdr("WWW-Authenticate"));
    assert_non_null(strstr(hdr("WWW-Authenticate"), "Bearer"));
  }
  assert_int_equal(call_h(NOBODY, "GET", path, NULL, NULL,
                          "Authorization: Basic cGVkczpwZWRz", NULL),
                   401);
  assert_int_equal(call_h(NOBODY, "GET", path, NULL, NULL,
                          "Authorization: Bearer " FX_TOKEN_EI "x", NULL),
                   401);
  /* even what exists is not told apart from what does not */
  assert_int_equal(call(NOBODY, "GET", "/fhir/Task/" NO_SUCH_ID, NULL, NULL),
                   401);

  /* the token and the client certificate both authenticate county-ei */
  assert_int_equal(call(EI, "GET", path, NULL, NULL), 200);
  cJSON *before = take();
  assert_int_equal(call(CERT_EI, "GET", path, NULL, NULL), 200);
  assert_true(fhir_json_equal(res, before));

  /* riverside-peds cannot read, update or patch county-ei's Task: the
   * answer is the one for a Task that does not exist */
  assert_int_equal(call(PEDS, "GET", path, NULL, NULL), 404);
  expect_oo(404, "not-found", NULL, NULL);
  char *theirs = body_copy();
  assert_int_equal(call(PEDS, "GET", "/fhir/Task/" NO_SUCH_ID, NULL, NULL),
                   404);
  char *none = body_copy();
  blank(theirs, ei->id);
  blank(none, NO_SUCH_ID);
  assert_string_equal(theirs, none);
  free(theirs);
  free(none);
  assert_int_equal(call(PEDS, "GET", fmt("%s/_history/1", path), NULL, NULL),
                   404);

  cJSON *upd = cJSON_Duplicate(before, 1);
  set_str(upd, "status", "accepted");
  assert_int_equal(put_task(PEDS, ei->id, upd, 0), 404);
  theirs = body_copy();
  set_str(upd, "id", NO_SUCH_ID);
  assert_int_equal(put_task(PEDS, NO_SUCH_ID, upd, 0), 404);
  none = body_copy();
  blank(theirs, ei->id);
  blank(none, NO_SUCH_ID);
  assert_string_equal(theirs, none);
  free(theirs);
  free(none);
  cJSON_Delete(upd);
  assert_int_equal(put_task(PEDS, ei->id, before, 1), 404); /* If-Match too */

  const char *patch = "[{\"op\":\"replace\",\"path\":\"/status\",\"value\":"
                      "\"accepted\"}]";
  assert_int_equal(call(PEDS, "PATCH", path, JPATCH, patch), 404);
  theirs = body_copy();
  assert_int_equal(call(PEDS, "PATCH", "/fhir/Task/" NO_SUCH_ID, JPATCH, patch),
                   404);
  none = body_copy();
  blank(theirs, ei->id);
  blank(none, NO_SUCH_ID);
  assert_string_equal(theirs, none);
  free(theirs);
  free(none);
  /* nor through a Bundle */
  const char *bundle =
      fmt("{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":["
          "{\"request\":{\"method\":\"GET\",\"url\":\"Task/%s\"}},"
          "{\"request\":{\"method\":\"GET\",\"url\":\"ServiceRequest/%s\"}}]}",
          ei->id, ei->sr_id);
  assert_int_equal(call(PEDS, "POST", "/fhir", FJSON, bundle), 200);
  const cJSON *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(res, "entry")) {
    assert_null(cJSON_GetObjectItemCaseSensitive(e, "resource"));
    assert_int_equal(
        atoi(str(cJSON_GetObjectItemCaseSensitive(e, "response"), "status")),
        404);
  }
  assert_task_is(EI, ei->id, before);

  /* a partner's search never shows another's Tasks */
  assert_int_equal(search_total(PEDS, "_count=500"), 1);
  assert_string_equal(
      str(cJSON_GetObjectItemCaseSensitive(
              cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "entry"),
                                 0),
              "resource"),
          "id"),
      pd->id);
  assert_int_equal(search_total(PEDS, fmt("identifier=%s", ei->identifier)), 0);
  assert_int_equal(search_total(PEDS, fmt("owner=%s", ei->owner)), 0);
  assert_int_equal(search_total(EI, fmt("identifier=%s", pd->identifier)), 0);
  assert_int_equal(search_total(EI, "_count=500"),
                   (int)n_tasks_of("county-ei", NULL));
  const cJSON *it;
  cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(res, "entry")) {
    const char *id =
        str(cJSON_GetObjectItemCaseSensitive(it, "resource"), "id");
    int mine = 0;
    for (size_t i = 0; i < fx.n_tasks; i++)
      mine |= !strcmp(fx.tasks[i].id, id) &&
              !strcmp(fx.tasks[i].partner, "county-ei");
    assert_true(mine);
  }
  cJSON_Delete(before);
}

/* ---- the CapabilityStatement and what it promises ----------------------- */

#define OBS_MCHAT                                                              \
  "{\"resourceType\":\"Observation\",\"identifier\":[{\"system\":"             \
  "\"https://riverside.example.org/obs\",\"value\":\"%s\"}],"                  \
  "\"status\":\"final\",\"code\":{\"coding\":[{\"system\":\"" INST "\","       \
  "\"code\":\"%s\"}]},\"subject\":{\"identifier\":{\"system\":\"%s\","         \
  "\"value\":\"CH00001\"}},\"effectiveDateTime\":\"2026-11-20\","              \
  "\"valueInteger\":%d}"

#define ENC_VISIT                                                              \
  "{\"resourceType\":\"Encounter\",\"identifier\":[{\"system\":"               \
  "\"https://riverside.example.org/enc\",\"value\":\"%s\"}],"                  \
  "\"status\":\"finished\",\"class\":{\"system\":"                             \
  "\"http://terminology.hl7.org/CodeSystem/v3-ActCode\",\"code\":\"AMB\"},"    \
  "\"type\":[{\"coding\":[{\"system\":\"http://snomed.info/sct\","             \
  "\"code\":\"%s\"}]}],\"subject\":{\"identifier\":{\"system\":\"" CHILD_SYS   \
  "\",\"value\":\"CH00001\"}},\"period\":{\"start\":\"2026-11-20\"}}"

#define PATIENT_BODY                                                           \
  "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":"                 \
  "\"https://riverside.example.org/mrn\",\"value\":\"%s\"}],"                  \
  "\"name\":[{\"family\":\"Test\",\"given\":[\"Kid\"]}],"                      \
  "\"gender\":\"female\",\"birthDate\":\"2025-01-02\"}"

#define SR_BODY                                                                \
  "{\"resourceType\":\"ServiceRequest\",\"status\":\"active\","                \
  "\"intent\":\"order\",\"subject\":{\"reference\":\"%s\"},"                   \
  "\"performer\":[{\"reference\":\"Organization/" PROG "\"}],"                 \
  "\"authoredOn\":\"2026-11-30\"}"

#define TASK_IN_BODY                                                           \
  "{\"resourceType\":\"Task\",\"status\":\"requested\",\"intent\":\"order\","  \
  "\"focus\":{\"reference\":\"%s\"},\"for\":{\"reference\":\"%s\"},"           \
  "\"owner\":{\"reference\":\"%s\"}}"

/* The id part of a Location or response.location "Type/id/_history/v". */
static const char *id_of_location(const char *loc, const char *type) {
  static char id[80];
  const char *p = strstr(loc, type);
  assert_non_null(p);
  p += strlen(type) + 1;
  size_t n = strcspn(p, "/");
  snprintf(id, sizeof id, "%.*s", (int)n, p);
  return id;
}

/* One interaction the CapabilityStatement lists, done for real as
 * riverside-peds; returns the status. Creates remember their id for the
 * reads. */
static int exercise(const char *type, const char *code) {
  static char made[5][80];
  static const char *const types[] = {"Task", "ServiceRequest", "Observation",
                                      "Encounter", "Patient"};
  int ti = -1;
  for (int i = 0; i < 5; i++)
    if (!strcmp(type, types[i]))
      ti = i;
  if (ti < 0)
    fail_msg("the CapabilityStatement lists %s, which is not served", type);
  const fx_task *pd = fx_task_of(&fx, "riverside-peds", NULL);
  if (!strcmp(code, "create")) {
    const char *body = NULL;
    if (ti == 0) { /* a referral to the program: its ServiceRequest first */
      if (exercise("Patient", "create") != 201 ||
          exercise("ServiceRequest", "create") != 201)
        return 0;
      body = fmt(TASK_IN_BODY, fmt("ServiceRequest/%s", made[1]),
                 fmt("Patient/%s", made[4]), "Organization/" PROG);
    } else if (ti == 1) {
      if (!made[4][0] && exercise("Patient", "create") != 201)
        return 0;
      body = fmt(SR_BODY, fmt("Patient/%s", made[4]));
    } else if (ti == 2) {
      body = fmt(OBS_MCHAT, "cap-obs", "M-CHAT-R-total", CHILD_SYS, 1);
    } else if (ti == 3) {
      body = fmt(ENC_VISIT, "cap-enc", "410620009");
    } else {
      body = fmt(PATIENT_BODY, "cap-mrn");
    }
    int st = call(PEDS, "POST", fmt("/fhir/%s", type), FJSON, body);
    if (st == 201) {
      snprintf(made[ti], sizeof made[ti], "%s",
               id_of_location(hdr("Location"), type));
      assert_string_equal(hdr("ETag"), "W/\"1\"");
    }
    return st;
  }
  const char *id = ti == 0 ? pd->id : ti == 1 ? pd->sr_id : made[ti];
  if (!id[0] && exercise(type, "create") != 201)
    return 0;
  id = ti == 0 ? pd->id : ti == 1 ? pd->sr_id : made[ti];
  if (!strcmp(code, "read"))
    return call(PEDS, "GET", fmt("/fhir/%s/%s", type, id), NULL, NULL);
  if (!strcmp(code, "vread")) {
    if (call(PEDS, "GET", fmt("/fhir/%s/%s", type, id), NULL, NULL) != 200)
      return ans.status;
    int64_t v = version_of(res);
    return call(PEDS, "GET",
                fmt("/fhir/%s/%s/_history/%lld", type, id, (long long)v), NULL,
                NULL);
  }
  if (!strcmp(code, "update") && ti == 0)
    return move_task(PEDS, pd->id, "received");
  if (!strcmp(code, "patch") && ti == 0)
    return call(PEDS, "PATCH", fmt("/fhir/Task/%s", pd->id), JPATCH,
                "[{\"op\":\"add\",\"path\":\"/businessStatus\",\"value\":"
                "{\"text\":\"reviewed\"}}]");
  if (!strcmp(code, "search-type") && ti == 0)
    return call(PEDS, "GET", "/fhir/Task?status=requested,received", NULL,
                NULL);
  fail_msg("%s %s is listed but not exercised here", type, code);
  return 0;
}

static const char *const *expected_ops(const char *type) {
  static const char *const task[] = {"read",   "vread",       "update", "patch",
                                     "create", "search-type", NULL};
  static const char *const other[] = {"read", "vread", "create", NULL};
  if (!strcmp(type, "Task"))
    return task;
  static const char *const others[] = {"ServiceRequest", "Observation",
                                       "Encounter", "Patient", NULL};
  for (size_t i = 0; others[i]; i++)
    if (!strcmp(type, others[i]))
      return other;
  return NULL;
}

static void test_metadata(void **state) {
  (void)state;
  assert_int_equal(call(PEDS, "GET", "/fhir/metadata", NULL, NULL), 200);
  assert_non_null(strstr(hdr("Content-Type"), "application/fhir+json"));
  cJSON *cap = take();
  assert_string_equal(str(cap, "resourceType"), "CapabilityStatement");
  assert_string_equal(str(cap, "fhirVersion"), "4.0.1");
  assert_string_equal(str(cap, "kind"), "instance");
  assert_string_equal(str(cap, "status"), "active");
  assert_string_equal(
      str(cJSON_GetObjectItemCaseSensitive(cap, "implementation"), "url"),
      BASE);
  int fj = 0, fxm = 0;
  const cJSON *f;
  cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(cap, "format")) {
    fj |= !strcmp(f->valuestring, "application/fhir+json");
    fxm |= !strcmp(f->valuestring, "application/fhir+xml");
  }
  assert_true(fj && fxm);
  assert_string_equal(
      cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(cap, "patchFormat"),
                         0)
          ->valuestring,
      "application/json-patch+json");

  /* the same statement in XML */
  assert_int_equal(call(PEDS, "GET", "/fhir/metadata?_format=xml", NULL, NULL),
                   200);
  assert_non_null(strstr(hdr("Content-Type"), "application/fhir+xml"));
  assert_true(fhir_json_equal(res, cap));
  assert_int_equal(call_h(PEDS, "GET", "/fhir/metadata", NULL, NULL,
                          "Accept: application/fhir+xml", NULL),
                   200);
  assert_true(fhir_json_equal(res, cap));

  /* exactly the interactions the endpoint has, and each one works */
  const cJSON *rest =
      cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(cap, "rest"), 0);
  assert_string_equal(str(rest, "mode"), "server");
  const cJSON *r;
  size_t n_types = 0;
  cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(rest, "resource")) {
    const char *type = str(r, "type");
    const char *const *want = expected_ops(type);
    if (!want)
      fail_msg("the CapabilityStatement lists %s", type);
    n_types++;
    size_t n = 0;
    const cJSON *in;
    cJSON_ArrayForEach(in, cJSON_GetObjectItemCaseSensitive(r, "interaction")) {
      const char *code = str(in, "code");
      int listed = 0;
      for (size_t k = 0; want[k]; k++)
        listed |= !strcmp(want[k], code);
      if (!listed)
        fail_msg("%s %s is listed but not implemented", type, code);
      int st = exercise(type, code);
      if (st < 200 || st > 299)
        fail_msg("%s %s is listed but answers %d", type, code, st);
      n++;
    }
    size_t k = 0;
    while (want[k])
      k++;
    assert_int_equal(n, k);
    /* only Task is searched, on the parameters it names */
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(r, "searchParam");
    assert_int_equal(!strcmp(type, "Task"), sp != NULL);
  }
  assert_int_equal(n_types, 5);
  const cJSON *sys = cJSON_GetObjectItemCaseSensitive(rest, "interaction");
  assert_int_equal(cJSON_GetArraySize(sys), 2);
  assert_string_equal(str(cJSON_GetArrayItem(sys, 0), "code"), "transaction");
  assert_string_equal(str(cJSON_GetArrayItem(sys, 1), "code"), "batch");
#define CAP_BUNDLE(type)                                                       \
  fmt("{\"resourceType\":\"Bundle\",\"type\":\"" type "\",\"entry\":[{"        \
      "\"fullUrl\":\"urn:uuid:0b0c8a0e-5d1b-4c39-9f63-3f3bb2f5c001\","         \
      "\"resource\":" PATIENT_BODY ",\"request\":{\"method\":\"POST\","        \
      "\"url\":\"Patient\"}}]}",                                               \
      "cap-bundle")
  assert_int_equal(
      call(PEDS, "POST", "/fhir", FJSON, CAP_BUNDLE("transaction")), 200);
  assert_string_equal(str(res, "type"), "transaction-response");
  assert_int_equal(call(PEDS, "POST", "/fhir", FJSON, CAP_BUNDLE("batch")),
                   200);
  assert_string_equal(str(res, "type"), "batch-response");

  /* what is not listed is refused, with an OperationOutcome */
  const fx_task *pd = fx_task_of(&fx, "riverside-peds", NULL);
  assert_int_equal(
      call(PEDS, "DELETE", fmt("/fhir/Task/%s", pd->id), NULL, NULL), 405);
  expect_oo(405, "not-supported", NULL, NULL);
  assert_non_null(hdr("Allow"));
  assert_null(strstr(hdr("Allow"), "DELETE"));
  assert_int_equal(
      call(PEDS, "GET", fmt("/fhir/Task/%s/_history", pd->id), NULL, NULL),
      404);
  expect_oo(404, "not-found", NULL, NULL);
  assert_int_equal(call(PEDS, "GET", "/fhir/Task/_history", NULL, NULL), 404);
  assert_int_equal(call(PEDS, "GET", "/fhir/_history", NULL, NULL), 404);
  assert_int_equal(exercise("Observation", "create"), 201);
  char obs_id[80];
  snprintf(obs_id, sizeof obs_id, "%s",
           id_of_location(hdr("Location"), "Observation"));
  assert_int_equal(
      call(PEDS, "GET", fmt("/fhir/Observation/%s", obs_id), NULL, NULL), 200);
  cJSON *obs = take();
  char *obs_text = cJSON_PrintUnformatted(obs);
  assert_int_equal(
      call(PEDS, "PUT", fmt("/fhir/Observation/%s", obs_id), FJSON, obs_text),
      405);
  expect_oo(405, "not-supported", NULL, NULL);
  assert_non_null(hdr("Allow"));
  assert_null(strstr(hdr("Allow"), "PUT"));
  assert_int_equal(
      call(PEDS, "PATCH", fmt("/fhir/Observation/%s", obs_id), JPATCH, "[]"),
      405);
  assert_non_null(hdr("Allow"));
  assert_int_equal(
      call(PEDS, "DELETE", fmt("/fhir/Observation/%s", obs_id), NULL, NULL),
      405);
  free(obs_text);
  assert_int_equal(
      call(PEDS, "GET", fmt("/fhir/Observation/%s", obs_id), NULL, NULL), 200);
  assert_true(fhir_json_equal(res, obs));
  cJSON_Delete(obs);
  int st = call(PEDS, "GET", "/fhir/Observation?subject=x", NULL, NULL);
  assert_true(st == 404 || st == 405);
  assert_int_equal(call(PEDS, "POST", "/fhir/metadata", FJSON, "{}"), 405);
  assert_string_equal(hdr("Allow"), "GET");
  assert_int_equal(call(PEDS, "GET", "/fhir/Questionnaire/x", NULL, NULL), 404);
  cJSON_Delete(cap);
}

/* ---- content negotiation ------------------------------------------------- */

static void test_negotiation(void **state) {
  (void)state;
  const fx_task *t = fx_task_of(&fx, "county-ei", "requested");
  char path[128];
  snprintf(path, sizeof path, "/fhir/Task/%s", t->id);
  cJSON *json = get_task(EI, t->id);
  static const struct {
    const char *query, *accept;
    int xml;
  } cases[] = {
      {"?_format=xml", NULL, 1},
      {"?_format=json", NULL, 0},
      {"?_format=application/fhir%2Bxml", NULL, 1},
      {"?_format=application/fhir+xml", NULL, 1}, /* '+' as it is typed */
      {"?_format=application/fhir+json", NULL, 0},
      {"?_format=text/xml", NULL, 1},
      {"?_format=json", "Accept: application/fhir+xml", 0}, /* _format wins */
      {"", "Accept: application/fhir+xml", 1},
      {"", "Accept: application/xml", 1},
      {"", "Accept: */*", 0},
      {"", "Accept: application/fhir+json", 0},
      {"", "Accept: text/html, application/fhir+xml;q=0.9", 1},
      {"", "Accept: application/fhir+xml, application/fhir+json", 0},
      /* weights (q): the heavier wins, q=0 is refused, a malformed one
       * makes its item count for nothing */
      {"", "Accept: application/fhir+xml, */*;q=0.1", 1},
      {"", "Accept: application/fhir+json;q=0.5, application/fhir+xml", 1},
      {"", "Accept: application/fhir+xml;q=0.8, application/fhir+json;q=0.9", 0},
      {"", "Accept: application/fhir+json;q=0, application/fhir+xml;q=0.001", 1},
      {"", "Accept: application/fhir+xml;charset=utf-8;q=1.000", 1},
      {"", "Accept: application/fhir+json;q=1.5, application/xml;q=0.2", 1},
      {"?_pretty=true", NULL, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    int st = call_h(EI, "GET", fmt("%s%s", path, cases[i].query), NULL, NULL,
                    cases[i].accept, NULL);
    if (st != 200)
      fail_msg("case %zu (%s %s): %d", i, cases[i].query,
               cases[i].accept ? cases[i].accept : "", st);
    assert_non_null(strstr(hdr("Content-Type"), cases[i].xml
                                                    ? "application/fhir+xml"
                                                    : "application/fhir+json"));
    assert_true(fhir_json_equal(res, json));
  }
  /* nothing acceptable */
  assert_int_equal(
      call_h(EI, "GET", path, NULL, NULL, "Accept: text/html", NULL), 406);
  expect_oo(406, "not-supported", "application/fhir+json", NULL);
  assert_int_equal(call_h(EI, "GET", path, NULL, NULL,
                          "Accept: application/fhir+json;q=0, */*;q=0", NULL),
                   406);
  assert_int_equal(
      call(EI, "GET", fmt("%s?_format=text/html", path), NULL, NULL), 406);

  /* a body must say what it is */
  char *text = cJSON_PrintUnformatted(json);
  assert_int_equal(call(EI, "PUT", path, NULL, text), 415);
  expect_oo(415, "not-supported", "Content-Type", NULL);
  assert_int_equal(call(EI, "PUT", path, "text/plain", text), 415);
  assert_int_equal(
      call(PEDS, "POST", "/fhir/Observation", "text/plain",
           fmt(OBS_MCHAT, "neg-1", "M-CHAT-R-total", CHILD_SYS, 2)),
      415);
  assert_int_equal(call(PEDS, "POST", "/fhir", NULL, "{}"), 415);
  assert_int_equal(call(EI, "PUT", path, FJSON, ""), 400);
  expect_oo(400, "required", NULL, NULL);
  free(text);
  assert_task_is(EI, t->id, json);
  assert_int_equal(count_results(), 0);

  /* a body that is not valid FHIR: the parser's reason and where */
  cJSON *bad = cJSON_Duplicate(json, 1);
  cJSON_AddNumberToObject(bad, "colour", 3);
  text = cJSON_PrintUnformatted(bad);
  assert_int_equal(call(EI, "PUT", path, FJSON, text), 400);
  expect_oo(400, "invalid", "FHIR JSON", "Task.colour");
  free(text);
  cJSON_Delete(bad);
  assert_int_equal(call(EI, "PUT", path, FJSON, "{\"resourceType\":\"Task\","),
                   400);
  expect_oo(400, "structure", "FHIR JSON", NULL);
  assert_int_equal(
      call(EI, "PUT", path, FXML,
           "<Task xmlns=\"http://hl7.org/fhir\"><status value=\"x\"/>"
           "<bogus value=\"1\"/></Task>"),
      400);
  expect_oo(400, "invalid", "FHIR XML", "Task.bogus");
  assert_task_is(EI, t->id, json);

  /* an XML body for PUT, answered in XML when asked */
  assert_int_equal(call(EI, "GET", fmt("%s?_format=xml", path), NULL, NULL),
                   200);
  char *xml = body_copy();
  char *s = strstr(xml, "<status value=\"requested\"/>");
  assert_non_null(s);
  memcpy(s, "<status value=\"received\"/> ", 27);
  assert_int_equal(
      call_h(EI, "PUT", path, FXML, xml, "Accept: application/fhir+xml", NULL),
      200);
  assert_non_null(strstr(hdr("Content-Type"), "application/fhir+xml"));
  assert_string_equal(str(res, "status"), "received");
  assert_string_equal(hdr("ETag"), "W/\"2\"");
  free(xml);
  cJSON *now = get_task(EI, t->id);
  assert_string_equal(str(now, "status"), "received");
  /* nothing else changed */
  set_str(now, "status", "requested");
  cJSON_DeleteItemFromObjectCaseSensitive(now, "meta");
  cJSON_DeleteItemFromObjectCaseSensitive(json, "meta");
  assert_true(fhir_json_equal(now, json));
  cJSON_Delete(now);
  cJSON_Delete(json);
}

/* ---- read and vread ------------------------------------------------------ */

static void http_date(const char *instant, char out[40]) {
  int64_t ms;
  assert_int_equal(fhir_instant_ms(instant, &ms), 0);
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static void test_read_vread(void **state) {
  (void)state;
  const fx_task *t = fx_task_of(&fx, "county-ei", "requested");
  char path[128];
  snprintf(path, sizeof path, "/fhir/Task/%s", t->id);
  assert_int_equal(call(EI, "GET", path, NULL, NULL), 200);
  assert_string_equal(hdr("ETag"), "W/\"1\"");
  const cJSON *meta = cJSON_GetObjectItemCaseSensitive(res, "meta");
  assert_string_equal(str(meta, "versionId"), "1");
  char lm[40];
  http_date(str(meta, "lastUpdated"), lm);
  assert_string_equal(hdr("Last-Modified"), lm);
  assert_string_equal(str(res, "id"), t->id);
  assert_string_equal(str(res, "status"), "requested");
  assert_string_equal(
      str(cJSON_GetObjectItemCaseSensitive(res, "focus"), "reference"),
      fmt("ServiceRequest/%s", t->sr_id));
  cJSON *v1 = take();

  assert_int_equal(call(EI, "GET", fmt("%s/_history/1", path), NULL, NULL),
                   200);
  assert_string_equal(hdr("ETag"), "W/\"1\"");
  assert_true(fhir_json_equal(res, v1));
  /* HEAD: the headers of the read, no body */
  size_t len = ans.body.len;
  assert_int_equal(call(EI, "HEAD", path, NULL, NULL), 200);
  assert_int_equal(ans.body.len, 0);
  assert_string_equal(hdr("ETag"), "W/\"1\"");
  assert_string_equal(hdr("Content-Length"), fmt("%zu", len));
  /* the hosted ServiceRequest the Task is for */
  assert_int_equal(
      call(EI, "GET", fmt("/fhir/ServiceRequest/%s", t->sr_id), NULL, NULL),
      200);
  assert_string_equal(str(res, "resourceType"), "ServiceRequest");

  assert_int_equal(move_task(EI, t->id, "received"), 200);
  assert_string_equal(hdr("ETag"), "W/\"2\"");
  assert_int_equal(call(EI, "GET", fmt("%s/_history/1", path), NULL, NULL),
                   404);
  expect_oo(404, "not-found", "current version (2)", NULL);
  assert_int_equal(call(EI, "GET", fmt("%s/_history/2", path), NULL, NULL),
                   200);
  assert_string_equal(hdr("ETag"), "W/\"2\"");
  assert_string_equal(str(res, "status"), "received");
  assert_int_equal(call(EI, "GET", fmt("%s/_history/3", path), NULL, NULL),
                   404);
  assert_int_equal(call(EI, "GET", fmt("%s/_history/x", path), NULL, NULL),
                   404);
  assert_int_equal(call(EI, "GET", "/fhir/Task/" NO_SUCH_ID, NULL, NULL), 404);
  expect_oo(404, "not-found", "not known", NULL);
  assert_int_equal(call(EI, "GET", "/fhir/Task/not%20an%20id", NULL, NULL),
                   404);
  cJSON_Delete(v1);
}

/* ---- search -------------------------------------------------------------- */

/* The ids of a searchset's matches, in order, into ids (returns count). */
static size_t match_ids(const cJSON *bundle, char ids[][40], size_t max) {
  size_t n = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(bundle, "entry")) {
    const char *m = str(cJSON_GetObjectItemCaseSensitive(e, "search"), "mode");
    if (!m || strcmp(m, "match") || n == max)
      continue;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(e, "resource");
    snprintf(ids[n], 40, "%s", str(r, "id"));
    assert_string_equal(str(e, "fullUrl"), fmt(BASE "/Task/%s", ids[n]));
    n++;
  }
  return n;
}

static void test_search(void **state) {
  (void)state;
  int n_ei = (int)n_tasks_of("county-ei", NULL);
  assert_true(n_ei > 20);
  const fx_task *t1 = fx_task_of(&fx, "county-ei", "requested");
  assert_int_equal(search_total(EI, ""), n_ei);
  assert_int_equal((int)n_entries(res, "match"), n_ei);
  assert_string_equal(link_url(res, "self"), BASE "/Task");
  assert_null(link_url(res, "next"));

  /* owner, as Type/id and as the id alone */
  assert_int_equal(search_total(EI, fmt("owner=%s", t1->owner)), n_ei);
  assert_int_equal(search_total(EI, fmt("owner=%s", t1->owner + 13)), n_ei);
  assert_int_equal(search_total(EI, "owner=Organization/" NO_SUCH_ID), 0);

  /* status, one and several */
  int n_failed = (int)n_tasks_of("county-ei", "failed");
  int n_cancelled = (int)n_tasks_of("county-ei", "cancelled");
  int n_requested = (int)n_tasks_of("county-ei", "requested");
  assert_true(n_failed > 0 && n_cancelled > 0);
  assert_int_equal(search_total(EI, "status=failed"), n_failed);
  const cJSON *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(res, "entry"))
      assert_string_equal(
          str(cJSON_GetObjectItemCaseSensitive(e, "resource"), "status"),
          "failed");
  assert_int_equal(search_total(EI, "status=failed,cancelled"),
                   n_failed + n_cancelled);
  assert_int_equal(search_total(EI, "status=failed,cancelled,requested"), n_ei);
  assert_int_equal(search_total(EI, "status=completed"), 0);
  assert_int_equal(call(EI, "GET", "/fhir/Task?status=", NULL, NULL), 400);
  expect_oo(400, "invalid", NULL, "status");

  /* focus and patient, as Type/id and as the id alone */
  assert_int_equal(search_total(EI, fmt("focus=ServiceRequest/%s", t1->sr_id)),
                   1);
  char ids[200][40];
  assert_int_equal(match_ids(res, ids, 200), 1);
  assert_string_equal(ids[0], t1->id);
  assert_int_equal(search_total(EI, fmt("focus=%s", t1->sr_id)), 1);
  /* two referrals of the same child */
  const fx_task *a = NULL, *b = NULL;
  for (size_t i = 0; i < fx.n_tasks && !b; i++)
    for (size_t k = i + 1; k < fx.n_tasks && !b; k++)
      if (!strcmp(fx.tasks[i].patient, fx.tasks[k].patient)) {
        a = &fx.tasks[i];
        b = &fx.tasks[k];
      }
  assert_non_null(b);
  int same = 0, same_status = 0;
  for (size_t i = 0; i < fx.n_tasks; i++)
    if (!strcmp(fx.tasks[i].patient, a->patient)) {
      same++;
      same_status += !strcmp(fx.tasks[i].status, a->status);
    }
  assert_true(same >= 2);
  assert_int_equal(search_total(EI, fmt("patient=%s", a->patient)), same);
  assert_int_equal(search_total(EI, fmt("patient=%s", a->patient + 8)), same);
  assert_int_equal(
      search_total(EI, fmt("patient=%s&status=%s", a->patient, a->status)),
      same_status);

  /* identifier system|value */
  assert_int_equal(search_total(EI, fmt("identifier=%s", t1->identifier)), 1);
  assert_int_equal(match_ids(res, ids, 200), 1);
  assert_string_equal(ids[0], t1->id);
  assert_int_equal(
      search_total(EI, "identifier=https://sunrise-hv.example.org/fhir/id/"
                       "referral-task|R9999999"),
      0);

  /* _count: pages with next links, the total on each, every match once */
  assert_int_equal(search_total(EI, "_count=7"), n_ei);
  assert_int_equal((int)n_entries(res, "match"), 7);
  char all[200][40];
  size_t got = match_ids(res, all, 200);
  int pages = 1;
  while (link_url(res, "next")) {
    const char *next = link_url(res, "next");
    assert_int_equal(strncmp(next, BASE "/", strlen(BASE) + 1), 0);
    assert_non_null(strstr(next, "_count=7"));
    assert_int_equal(
        call(EI, "GET", fmt("/fhir%s", next + strlen(BASE)), NULL, NULL), 200);
    assert_int_equal(total_of(res), n_ei);
    size_t k = match_ids(res, all + got, 200 - got);
    assert_true(k >= 1 && k <= 7);
    got += k;
    assert_true(++pages < 20);
  }
  assert_int_equal((int)got, n_ei);
  assert_int_equal(pages, (n_ei + 6) / 7);
  for (size_t i = 0; i < got; i++)
    for (size_t k = i + 1; k < got; k++)
      assert_string_not_equal(all[i], all[k]);
  /* _count=0: the total only, and no endless next link */
  assert_int_equal(search_total(EI, "_count=0"), n_ei);
  assert_int_equal((int)n_entries(res, "match"), 0);
  assert_null(link_url(res, "next"));
  assert_int_equal(call(EI, "GET", "/fhir/Task?_count=lots", NULL, NULL), 400);
  expect_oo(400, "invalid", NULL, "_count");

  /* _lastUpdated: stamps of all matches in order (the search's order) */
  assert_int_equal(search_total(EI, "_count=500"), n_ei);
  char stamps[200][32];
  size_t ns = 0;
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(res, "entry")) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(e, "resource"), "meta");
    snprintf(stamps[ns++], 32, "%s", str(m, "lastUpdated"));
  }
  assert_int_equal((int)ns, n_ei);
  for (size_t i = 1; i < ns; i++)
    assert_true(strcmp(stamps[i - 1], stamps[i]) < 0);
  int k = 5;
  const char *tk = stamps[k];
  assert_int_equal(search_total(EI, fmt("_lastUpdated=gt%s", tk)),
                   n_ei - k - 1);
  assert_int_equal(search_total(EI, fmt("_lastUpdated=ge%s", tk)), n_ei - k);
  assert_int_equal(search_total(EI, fmt("_lastUpdated=lt%s", tk)), k);
  assert_int_equal(search_total(EI, fmt("_lastUpdated=le%s", tk)), k + 1);
  assert_int_equal(search_total(EI, fmt("_lastUpdated=%s", tk)), 1);
  assert_int_equal(search_total(EI, fmt("_lastUpdated=ge%s&_lastUpdated=le%s",
                                        stamps[2], stamps[4])),
                   3);
  char day[11];
  snprintf(day, sizeof day, "%.10s", tk); /* intake: all on one day */
  assert_int_equal(search_total(EI, fmt("_lastUpdated=%s", day)), n_ei);
  assert_int_equal(search_total(EI, fmt("_lastUpdated=ge%s", day)), n_ei);
  assert_int_equal(search_total(EI, fmt("_lastUpdated=le%s", day)), n_ei);
  assert_int_equal(search_total(EI, fmt("_lastUpdated=gt%s", day)), 0);
  assert_int_equal(search_total(EI, fmt("_lastUpdated=lt%s", day)), 0);
  /* a Task updated now is the only one after that day */
  assert_int_equal(move_task(EI, t1->id, "received"), 200);
  assert_int_equal(search_total(EI, fmt("_lastUpdated=gt%s", day)), 1);
  assert_int_equal(match_ids(res, ids, 200), 1);
  assert_string_equal(ids[0], t1->id);
  assert_int_equal(search_total(EI, fmt("_lastUpdated=le%s", day)), n_ei - 1);
  assert_int_equal(
      call(EI, "GET", "/fhir/Task?_lastUpdated=yesterday", NULL, NULL), 400);
  expect_oo(400, "invalid", NULL, "_lastUpdated");

  /* unknown parameters: ignored, said in an outcome entry */
  assert_int_equal(search_total(EI, fmt("colour=blue&status=failed&_sort=x")),
                   n_failed);
  assert_int_equal((int)n_entries(res, "match"), n_failed);
  assert_int_equal((int)n_entries(res, "outcome"), 1);
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(res, "entry")) {
    const char *m = str(cJSON_GetObjectItemCaseSensitive(e, "search"), "mode");
    if (strcmp(m, "outcome"))
      continue;
    const cJSON *oo = cJSON_GetObjectItemCaseSensitive(e, "resource");
    const cJSON *iss =
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(oo, "issue"), 0);
    assert_string_equal(str(oo, "resourceType"), "OperationOutcome");
    assert_string_equal(str(iss, "severity"), "warning");
    assert_string_equal(str(iss, "code"), "not-supported");
    assert_non_null(strstr(str(iss, "diagnostics"), "colour"));
    assert_non_null(strstr(str(iss, "diagnostics"), "_sort"));
  }
  assert_null(strstr(link_url(res, "self"), "colour"));
  assert_non_null(strstr(link_url(res, "self"), "status=failed"));

  /* POST _search with a form body */
  int st = call(EI, "POST", "/fhir/Task/_search",
                "application/x-www-form-urlencoded", "status=failed");
  assert_int_equal(st, 200);
  assert_int_equal(total_of(res), n_failed);
  /* other types are not searched */
  st = call(EI, "GET", "/fhir/ServiceRequest?status=active", NULL, NULL);
  assert_true(st == 404 || st == 405);
  (void)n_requested;
}

/* Parameters without '=' (found by fuzz_fhir_requests: the decoder wrote
 * into a string literal). */
static void test_query_without_value(void **state) {
  (void)state;
  int n_ei = (int)n_tasks_of("county-ei", NULL);
  assert_int_equal(search_total(EI, "colour"), n_ei);
  assert_int_equal((int)n_entries(res, "outcome"), 1);
  assert_int_equal(search_total(EI, "status=failed&colour&x"),
                   (int)n_tasks_of("county-ei", "failed"));
  assert_int_equal(call(EI, "GET", "/fhir/Task?status", NULL, NULL), 400);
  expect_oo(400, "invalid", NULL, "status");
  assert_int_equal(call(EI, "POST", "/fhir/Task/_search",
                        "application/x-www-form-urlencoded", "owner&status"),
                   400);
  const fx_task *t = fx_task_of(&fx, "county-ei", NULL);
  const char *batch =
      fmt("{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[{"
          "\"request\":{\"method\":\"GET\",\"url\":\"Task?identifier=%s&"
          "_count\"}}]}",
          t->identifier);
  assert_int_equal(call(EI, "POST", "/fhir", FJSON, batch), 200);
}

/* Messages that echo the request stay valid FHIR text (found by
 * fuzz_fhir_requests: a 404 repeated a path byte that is not UTF-8). */
static void test_echoed_text(void **state) {
  (void)state;
  /* call() fails on any answer that does not parse */
  assert_int_equal(
      call(EI, "GET", "/fhir/Task/621f8935-10e6\xe8-51a6", NULL, NULL), 404);
  expect_oo(404, "not-found", "is not known", NULL);
  assert_int_equal(call(EI, "GET", "/fhir/Task/ab%E8%01cd", NULL, NULL), 404);
  assert_int_equal(call(EI, "GET", "/fhir/Pa\xc3tient/x", NULL, NULL), 404);
  assert_int_equal(call(EI, "GET", "/fhir/Task?%E8x%01=1&\xff=2", NULL, NULL),
                   200);
  assert_int_equal((int)n_entries(res, "outcome"), 1);
  assert_int_equal(
      call_h(EI, "GET", "/fhir/Task", NULL, NULL, "Accept: text/\xe8", NULL),
      406);
  assert_int_equal(call(EI, "GE\xe8T", "/fhir/metadata", NULL, NULL), 405);
  /* a long url of multi-byte characters, cut in the message */
  char url[700] = "Task?x=", *p = url + strlen(url);
  for (int i = 0; i < 150; i++, p += 2)
    memcpy(p, "\xc3\xa9", 2);
  *p = '\0';
#define CUT_BUNDLE(type)                                                       \
  fmt("{\"resourceType\":\"Bundle\",\"type\":\"" type "\",\"entry\":[{"        \
      "\"request\":{\"method\":\"DELETE\",\"url\":\"%s\"}}]}",                 \
      url)
  assert_int_equal(call(EI, "POST", "/fhir", FJSON, CUT_BUNDLE("batch")), 200);
  assert_int_equal(
      atoi(str(cJSON_GetObjectItemCaseSensitive(
                   cJSON_GetArrayItem(
                       cJSON_GetObjectItemCaseSensitive(res, "entry"), 0),
                   "response"),
               "status")),
      405);
  const char *tx = CUT_BUNDLE("transaction");
  assert_int_equal(call(EI, "POST", "/fhir", FJSON, tx), 405);
}

/* ---- update -------------------------------------------------------------- */

static void check_history(const char *referral_id, const char *const *to,
                          const char *const *hv, size_t n, const char *actor) {
  store_transition t[64];
  size_t got = 0;
  void *mem = NULL;
  assert_int_equal(
      store_referral_history(fx.st, PROG, referral_id, t, 64, &got, &mem, NULL),
      0);
  assert_true(got >= n + 1); /* intake's own first */
  for (size_t i = 0; i < n; i++) {
    const store_transition *x = &t[got - n + i];
    assert_string_equal(x->to_status, to[i]);
    assert_string_equal(x->hv_status, hv[i]);
    assert_string_equal(x->actor, actor);
    assert_string_equal(x->source, "push");
  }
  store_referral_history_free(mem);
}

static void check_referral(const char *referral_id, const char *status,
                           const char *hv_status) {
  store_referral r;
  assert_int_equal(store_referral_get(fx.st, PROG, referral_id, &r, NULL), 0);
  assert_string_equal(r.status, status);
  assert_string_equal(r.hv_status, hv_status);
  store_referral_release(&r);
}

static void test_update_lifecycle(void **state) {
  (void)state;
  const fx_task *t = fx_task_of(&fx, "county-ei", "requested");
  check_referral(t->referral_id, "requested", "referred");
  cJSON *cur = get_task(EI, t->id);
  static const char *const steps[] = {"received", "accepted", "in-progress"};
  static const char *const hv[] = {"referred", "linked", "scheduled",
                                   "completed"};
  for (int i = 0; i < 3; i++) {
    set_str(cur, "status", steps[i]);
    assert_int_equal(put_task(EI, t->id, cur, version_of(cur)), 200);
    assert_string_equal(hdr("ETag"), fmt("W/\"%d\"", i + 2));
    assert_non_null(hdr("Last-Modified"));
    assert_string_equal(str(res, "status"), steps[i]);
    assert_int_equal(version_of(res), i + 2);
    check_referral(t->referral_id, steps[i], hv[i]);
    cJSON_Delete(cur);
    cur = take();
  }
  /* a stale If-Match: 412, and nothing changes */
  cJSON *stale = cJSON_Duplicate(cur, 1);
  set_str(stale, "status", "completed");
  assert_int_equal(put_task(EI, t->id, stale, 2), 412);
  expect_oo(412, "conflict", "version 4", NULL);
  assert_task_is(EI, t->id, cur);
  char *text = cJSON_PrintUnformatted(stale);
  assert_int_equal(call_h(EI, "PUT", fmt("/fhir/Task/%s", t->id), FJSON, text,
                          "If-Match: soon", NULL),
                   412);
  free(text);
  cJSON_Delete(stale);
  assert_task_is(EI, t->id, cur);
  /* completed with an output */
  set_str(cur, "status", "completed");
  cJSON *out = cJSON_Parse(
      "[{\"type\":{\"text\":\"visit summary\"},\"valueString\":\"seen, "
      "enrolled in services\"}]");
  cJSON_AddItemToObject(cur, "output", out);
  assert_int_equal(put_task(EI, t->id, cur, 4), 200);
  assert_string_equal(hdr("ETag"), "W/\"5\"");
  cJSON_Delete(cur);
  cur = get_task(EI, t->id);
  assert_string_equal(str(cur, "status"), "completed");
  assert_non_null(cJSON_GetObjectItemCaseSensitive(cur, "output"));
  check_referral(t->referral_id, "completed", "completed");
  static const char *const all[] = {"received", "accepted", "in-progress",
                                    "completed"};
  check_history(t->referral_id, all, hv, 4, "partner:county-ei");
  /* a final status stays */
  cJSON *back = cJSON_Duplicate(cur, 1);
  set_str(back, "status", "in-progress");
  assert_int_equal(put_task(EI, t->id, back, 0), 422);
  expect_oo(422, "business-rule", "completed cannot become in-progress",
            "Task.status");
  cJSON_Delete(back);
  assert_task_is(EI, t->id, cur);
  check_referral(t->referral_id, "completed", "completed");
  /* an update that keeps the status is no transition and no new version
   * when nothing changed */
  assert_int_equal(put_task(EI, t->id, cur, 5), 200);
  assert_string_equal(hdr("ETag"), "W/\"5\"");
  check_history(t->referral_id, all, hv, 4, "partner:county-ei");
  /* Prefer */
  text = cJSON_PrintUnformatted(cur);
  assert_int_equal(call_h(EI, "PUT", fmt("/fhir/Task/%s", t->id), FJSON, text,
                          "Prefer: return=minimal", NULL),
                   200);
  assert_int_equal(ans.body.len, 0);
  assert_string_equal(hdr("ETag"), "W/\"5\"");
  assert_int_equal(call_h(EI, "PUT", fmt("/fhir/Task/%s", t->id), FJSON, text,
                          "Prefer: return=OperationOutcome", NULL),
                   200);
  assert_string_equal(str(res, "resourceType"), "OperationOutcome");
  free(text);
  cJSON_Delete(cur);
}

static void test_update_refusals(void **state) {
  (void)state;
  const fx_task *t = NULL;
  for (size_t i = 0; i < fx.n_tasks; i++)
    if (!strcmp(fx.tasks[i].partner, "county-ei") &&
        !strcmp(fx.tasks[i].status, "requested"))
      t = &fx.tasks[i]; /* the last one: others use the first */
  assert_non_null(t);
  cJSON *cur = get_task(EI, t->id);
  static const struct {
    const char *to, *msg;
  } bad[] = {
      {"completed", "requested cannot become completed"},
      {"draft", "requested cannot become draft"},
      {"entered-in-error", "set by the requester"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    cJSON *x = cJSON_Duplicate(cur, 1);
    set_str(x, "status", bad[i].to);
    assert_int_equal(put_task(EI, t->id, x, 1), 422);
    expect_oo(422, "business-rule", bad[i].msg, "Task.status");
    cJSON_Delete(x);
    assert_task_is(EI, t->id, cur);
  }
  /* a code that is no TaskStatus */
  cJSON *x = cJSON_Duplicate(cur, 1);
  set_str(x, "status", "done");
  assert_int_equal(put_task(EI, t->id, x, 0), 400);
  expect_oo(400, "code-invalid", "done", "Task.status");
  cJSON_Delete(x);
  /* the requester's elements: the receiver cannot change them */
  static const char *const locked[] = {"focus", "for", "owner", "requester",
                                       "identifier"};
  for (size_t i = 0; i < 5; i++) {
    x = cJSON_Duplicate(cur, 1);
    cJSON_DeleteItemFromObjectCaseSensitive(x, locked[i]);
    if (!strcmp(locked[i], "identifier"))
      cJSON_AddItemToObject(
          x, "identifier",
          cJSON_Parse("[{\"system\":\"https://county-ei.example.org/task\","
                      "\"value\":\"T-1\"}]"));
    else
      cJSON_AddItemToObject(
          x, locked[i],
          cJSON_Parse("{\"reference\":\"Organization/somewhere-else\"}"));
    set_str(x, "status", "accepted"); /* a good move with it */
    assert_int_equal(put_task(EI, t->id, x, 0), 422);
    expect_oo(422, "business-rule",
              fmt("Task.%s is set by the requester", locked[i]), locked[i]);
    cJSON_Delete(x);
    /* or removing it */
    x = cJSON_Duplicate(cur, 1);
    cJSON_DeleteItemFromObjectCaseSensitive(x, locked[i]);
    assert_int_equal(put_task(EI, t->id, x, 0), 422);
    expect_oo(422, "business-rule", NULL, locked[i]);
    cJSON_Delete(x);
    assert_task_is(EI, t->id, cur);
  }
  /* the body against the URL */
  x = cJSON_Duplicate(cur, 1);
  set_str(x, "id", NO_SUCH_ID);
  assert_int_equal(put_task(EI, t->id, x, 0), 400);
  expect_oo(400, "invalid", "id", "id");
  cJSON_DeleteItemFromObjectCaseSensitive(x, "id");
  assert_int_equal(put_task(EI, t->id, x, 0), 400);
  expect_oo(400, "invalid", NULL, "id");
  cJSON_Delete(x);
  const char *obs = fmt("{\"resourceType\":\"Observation\",\"id\":\"%s\","
                        "\"status\":\"final\",\"code\":{\"text\":\"x\"}}",
                        t->id);
  assert_int_equal(call(EI, "PUT", fmt("/fhir/Task/%s", t->id), FJSON, obs),
                   400);
  expect_oo(400, "invalid", "Observation", "resourceType");
  x = cJSON_Duplicate(cur, 1);
  cJSON_DeleteItemFromObjectCaseSensitive(x, "intent");
  assert_int_equal(put_task(EI, t->id, x, 0), 400);
  expect_oo(400, "required", NULL, "Task.intent");
  cJSON_Delete(x);
  assert_task_is(EI, t->id, cur);
  check_referral(t->referral_id, "requested", "referred");
  /* what a refusal left alone can still move */
  assert_int_equal(move_task(EI, t->id, "rejected"), 200);
  check_referral(t->referral_id, "rejected", "declined");
  static const char *const to[] = {"rejected"}, *const hv[] = {"declined"};
  check_history(t->referral_id, to, hv, 1, "partner:county-ei");
  cJSON_Delete(cur);
}

/* Each status a receiver sets, and the home visiting status it gives. */
static void test_hv_status(void **state) {
  (void)state;
  static const struct {
    const char *path[3];
    const char *hv;
  } cases[] = {
      {{"accepted", NULL, NULL}, "linked"},
      {{"ready", NULL, NULL}, "linked"},
      {{"accepted", "in-progress", NULL}, "scheduled"},
      {{"in-progress", "on-hold", NULL}, "scheduled"},
      {{"rejected", NULL, NULL}, "declined"},
      {{"cancelled", NULL, NULL}, "withdrawn"},
      {{"received", "failed", NULL}, "unable_to_reach"},
      {{"in-progress", "completed", NULL}, "completed"},
  };
  size_t next = 0;
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    const fx_task *t = NULL;
    while (next < fx.n_tasks && !t) {
      const fx_task *x = &fx.tasks[next++];
      if (!strcmp(x->partner, "county-ei") && !strcmp(x->status, "requested"))
        t = x;
    }
    assert_non_null(t);
    size_t n = 0;
    const char *hvs[3];
    for (; n < 3 && cases[c].path[n]; n++) {
      assert_int_equal(move_task(EI, t->id, cases[c].path[n]), 200);
      hvs[n] = hvg_tracker_hv_status(cases[c].path[n], NULL);
    }
    hvs[n - 1] = cases[c].hv;
    check_referral(t->referral_id, cases[c].path[n - 1], cases[c].hv);
    check_history(t->referral_id, cases[c].path, hvs, n, "partner:county-ei");
  }
}

/* ---- intake again: the program's own statuses ---------------------------- */

/* Tracks t's referral again as intake would, with the program's status. */
static int retrack(const fx_task *t, const char *program_status, char *warn,
                   size_t cap) {
  hvg_fsrv *fs = NULL;
  hvg_err e;
  assert_int_equal(hvg_fsrv_new(&fs, cfg, fx.st, &e), 0);
  const char *data = "{\"referral.direction\":\"outbound\"}";
  hvg_fsrv_referral ref = {
      &cfg->programs[0], t->referral_id, hvg_config_partner(cfg, t->partner),
      t->bundle,         t->bundle_len,  data,
      strlen(data),      program_status};
  int rc = hvg_fsrv_track_referral(fs, &ref, store_now_ms(), warn, cap, &e);
  hvg_fsrv_free(fs);
  return rc;
}

static void test_reintake(void **state) {
  (void)state;
  const fx_task *t = fx_task_of(&fx, "county-ei", "requested");
  char warn[400];
  cJSON *v1 = get_task(EI, t->id);
  /* the same export again: nothing new */
  assert_int_equal(retrack(t, t->program_status, warn, sizeof warn), 0);
  assert_task_is(EI, t->id, v1);
  cJSON_Delete(v1);
  /* the partner's status survives the next intake */
  assert_int_equal(move_task(EI, t->id, "accepted"), 200);
  cJSON *v2 = take();
  assert_int_equal(retrack(t, t->program_status, warn, sizeof warn), 0);
  assert_int_equal(warn[0], '\0');
  assert_task_is(EI, t->id, v2);
  cJSON_Delete(v2);
  check_referral(t->referral_id, "accepted", "linked");
  assert_int_equal(hvg_fsrv_program_status_applies(fx.st, PROG, t->referral_id,
                                                   "accepted", NULL),
                   0);
  /* the program withdraws: the hosted Task says so, and it is final */
  assert_int_equal(retrack(t, "withdrawn", warn, sizeof warn), 0);
  cJSON *v3 = get_task(EI, t->id);
  assert_string_equal(str(v3, "status"), "cancelled");
  assert_string_equal(
      str(cJSON_GetObjectItemCaseSensitive(v3, "statusReason"), "text"),
      "withdrawn by the home visiting program");
  assert_int_equal(version_of(v3), 3);
  check_referral(t->referral_id, "cancelled", "withdrawn");
  store_transition tr[16];
  size_t n = 0;
  void *mem = NULL;
  assert_int_equal(store_referral_history(fx.st, PROG, t->referral_id, tr, 16,
                                          &n, &mem, NULL),
                   0);
  assert_string_equal(tr[n - 1].actor, "program:" PROG);
  assert_string_equal(tr[n - 1].source, "export");
  assert_string_equal(tr[n - 1].from_status, "accepted");
  assert_string_equal(tr[n - 1].to_status, "cancelled");
  store_referral_history_free(mem);
  assert_int_equal(hvg_fsrv_program_status_applies(fx.st, PROG, t->referral_id,
                                                   "cancelled", NULL),
                   1);
  set_str(v3, "status", "in-progress");
  assert_int_equal(put_task(EI, t->id, v3, 3), 422);
  expect_oo(422, "business-rule", "cancelled cannot become in-progress",
            "Task.status");
  cJSON_Delete(v3);
  /* a status the loop refuses is not applied: a warning */
  const fx_task *u = NULL;
  for (size_t i = 0; i < fx.n_tasks && !u; i++)
    if (&fx.tasks[i] != t && !strcmp(fx.tasks[i].partner, "county-ei") &&
        !strcmp(fx.tasks[i].status, "requested"))
      u = &fx.tasks[i];
  assert_non_null(u);
  assert_int_equal(move_task(EI, u->id, "in-progress"), 200);
  assert_int_equal(move_task(EI, u->id, "completed"), 200);
  cJSON *done = take();
  assert_int_equal(retrack(u, "unable_to_reach", warn, sizeof warn), 1);
  assert_non_null(strstr(warn, "completed"));
  assert_task_is(EI, u->id, done);
  cJSON_Delete(done);
  check_referral(u->referral_id, "completed", "completed");
  assert_int_equal(hvg_fsrv_program_status_applies(fx.st, PROG, u->referral_id,
                                                   "completed", NULL),
                   0);
}

/* ---- JSON Patch ---------------------------------------------------------- */

static void test_patch(void **state) {
  (void)state;
  const fx_task *t = fx_task_of(&fx, "county-ei", "requested");
  char path[128];
  snprintf(path, sizeof path, "/fhir/Task/%s", t->id);
  assert_int_equal(
      call(EI, "PATCH", path, JPATCH,
           "[{\"op\":\"test\",\"path\":\"/status\",\"value\":\"requested\"},"
           "{\"op\":\"replace\",\"path\":\"/status\",\"value\":\"accepted\"},"
           "{\"op\":\"add\",\"path\":\"/businessStatus\",\"value\":{\"text\":"
           "\"intake call booked\"}}]"),
      200);
  assert_string_equal(hdr("ETag"), "W/\"2\"");
  assert_string_equal(str(res, "status"), "accepted");
  cJSON *cur = get_task(EI, t->id);
  assert_string_equal(str(cur, "status"), "accepted");
  assert_string_equal(
      str(cJSON_GetObjectItemCaseSensitive(cur, "businessStatus"), "text"),
      "intake call booked");
  check_referral(t->referral_id, "accepted", "linked");
  static const char *const to[] = {"accepted"}, *const hv[] = {"linked"};
  check_history(t->referral_id, to, hv, 1, "partner:county-ei");

  /* the Task is not what the client saw: 409 */
  assert_int_equal(
      call(EI, "PATCH", path, JPATCH,
           "[{\"op\":\"test\",\"path\":\"/status\",\"value\":\"requested\"},"
           "{\"op\":\"replace\",\"path\":\"/status\",\"value\":\"rejected\"}]"),
      409);
  expect_oo(409, "conflict", "JSON Patch", NULL);
  assert_task_is(EI, t->id, cur);
  /* a path that is not there */
  assert_int_equal(call(EI, "PATCH", path, JPATCH,
                        "[{\"op\":\"replace\",\"path\":\"/executionPeriod/"
                        "start\",\"value\":\"2026-12-01\"}]"),
                   422);
  expect_oo(422, "processing", "JSON Patch", NULL);
  assert_int_equal(call(EI, "PATCH", path, JPATCH,
                        "[{\"op\":\"remove\",\"path\":\"/note/0\"}]"),
                   422);
  assert_task_is(EI, t->id, cur);
  /* results that are not a valid Task */
  static const char *const invalid[] = {
      "[{\"op\":\"add\",\"path\":\"/colour\",\"value\":\"blue\"}]",
      "[{\"op\":\"replace\",\"path\":\"/status\",\"value\":7}]",
      "[{\"op\":\"replace\",\"path\":\"/status\",\"value\":\"done\"}]",
      "[{\"op\":\"remove\",\"path\":\"/intent\"}]",
      "[{\"op\":\"remove\",\"path\":\"/id\"}]",
      "[{\"op\":\"replace\",\"path\":\"/resourceType\",\"value\":\"Patient\"}]",
  };
  for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
    int st = call(EI, "PATCH", path, JPATCH, invalid[i]);
    if (st != 422)
      fail_msg("%s: %d, not 422", invalid[i], st);
    assert_task_is(EI, t->id, cur);
  }
  /* the state machine and the locked elements hold for patches too */
  assert_int_equal(call(EI, "PATCH", path, JPATCH,
                        "[{\"op\":\"replace\",\"path\":\"/status\",\"value\":"
                        "\"completed\"}]"),
                   422);
  expect_oo(422, "business-rule", "accepted cannot become completed",
            "Task.status");
  assert_int_equal(call(EI, "PATCH", path, JPATCH,
                        "[{\"op\":\"replace\",\"path\":\"/focus/reference\","
                        "\"value\":\"ServiceRequest/other\"}]"),
                   422);
  expect_oo(422, "business-rule", NULL, "focus");
  assert_task_is(EI, t->id, cur);
  /* not a JSON Patch */
  assert_int_equal(call(EI, "PATCH", path, JPATCH, "{\"op\":\"replace\"}"),
                   400);
  assert_int_equal(call(EI, "PATCH", path, JPATCH, "[{\"op\":\"jump\"}]"), 400);
  /* only JSON Patch is taken */
  const char *ok = "[{\"op\":\"replace\",\"path\":\"/status\",\"value\":"
                   "\"in-progress\"}]";
  assert_int_equal(call(EI, "PATCH", path, "application/json", ok), 415);
  expect_oo(415, "not-supported", "json-patch", NULL);
  assert_int_equal(call(EI, "PATCH", path, FJSON, ok), 415);
  assert_int_equal(call(EI, "PATCH", path, NULL, ok), 415);
  /* If-Match */
  assert_int_equal(
      call_h(EI, "PATCH", path, JPATCH, ok, "If-Match: W/\"1\"", NULL), 412);
  assert_task_is(EI, t->id, cur);
  check_referral(t->referral_id, "accepted", "linked");
  assert_int_equal(
      call_h(EI, "PATCH", path, JPATCH, ok, "If-Match: W/\"2\"", NULL), 200);
  assert_string_equal(hdr("ETag"), "W/\"3\"");
  check_referral(t->referral_id, "in-progress", "scheduled");
  cJSON_Delete(cur);
}

/* ---- create: what a practice sends back ---------------------------------- */

/* The result of source "Type/id" in the store, or fails. */
static void check_result(const char *source, const char *kind,
                         const char *instrument, const char *data_has) {
  store_result rs[64];
  size_t n = 0;
  assert_int_equal(store_result_list(fx.st, PROG, 0, 0, 64, rs, &n, NULL), 0);
  int found = 0;
  for (size_t i = 0; i < n; i++) {
    if (!strcmp(rs[i].source_ref, source)) {
      found = 1;
      assert_string_equal(rs[i].kind, kind);
      assert_string_equal(rs[i].partner, "riverside-peds");
      assert_string_equal(rs[i].child_id, "CH00001");
      assert_string_equal(rs[i].date, "2026-11-20");
      if (instrument)
        assert_string_equal(rs[i].instrument, instrument);
      if (data_has && !strstr(rs[i].data, data_has))
        fail_msg("%s: %s not in %s", source, data_has, rs[i].data);
    }
    store_result_release(&rs[i]);
  }
  if (!found)
    fail_msg("no result for %s", source);
}

static void test_create_results(void **state) {
  (void)state;
  assert_int_equal(count_results(), 0);
  /* an M-CHAT-R result about a child of the program */
  assert_int_equal(
      call(PEDS, "POST", "/fhir/Observation", FJSON,
           fmt(OBS_MCHAT, "obs-1", "M-CHAT-R-total", CHILD_SYS, 5)),
      201);
  assert_non_null(hdr("Location"));
  char loc[300];
  snprintf(loc, sizeof loc, "%s", hdr("Location"));
  assert_int_equal(strncmp(loc, BASE "/Observation/", strlen(BASE) + 13), 0);
  assert_non_null(strstr(loc, "/_history/1"));
  assert_string_equal(hdr("ETag"), "W/\"1\"");
  assert_non_null(hdr("Last-Modified"));
  char id[80];
  snprintf(id, sizeof id, "%s", id_of_location(loc, "Observation"));
  assert_string_equal(str(res, "id"), id);
  assert_int_equal(
      call(PEDS, "GET", fmt("/fhir/Observation/%s", id), NULL, NULL), 200);
  assert_int_equal(call(EI, "GET", fmt("/fhir/Observation/%s", id), NULL, NULL),
                   404);
  check_result(fmt("Observation/%s", id), "screening", "M-CHAT-R",
               "\"screening.result\":\"positive\"");
  assert_int_equal(count_results(), 1);

  /* refused: unknown instrument, not a program child, score out of range,
   * no date */
  assert_int_equal(
      call(PEDS, "POST", "/fhir/Observation", FJSON,
           fmt(OBS_MCHAT, "obs-2", "NOT-AN-INSTRUMENT", CHILD_SYS, 5)),
      422);
  expect_oo(422, "business-rule", "instrument", "Observation.code");
  assert_int_equal(call(PEDS, "POST", "/fhir/Observation", FJSON,
                        fmt(OBS_MCHAT, "obs-3", "M-CHAT-R-total",
                            "https://other.example.org/child", 5)),
                   422);
  expect_oo(422, "business-rule", "child", "Observation.subject");
  assert_int_equal(
      call(PEDS, "POST", "/fhir/Observation", FJSON,
           "{\"resourceType\":\"Observation\",\"status\":\"final\","
           "\"code\":{\"coding\":[{\"system\":\"" INST "\",\"code\":"
           "\"M-CHAT-R-total\"}]},\"subject\":{\"reference\":\"Patient/"
           "nobody\"},\"effectiveDateTime\":\"2026-11-20\"}"),
      422);
  expect_oo(422, "business-rule", NULL, "Observation.subject");
  assert_int_equal(
      call(PEDS, "POST", "/fhir/Observation", FJSON,
           fmt(OBS_MCHAT, "obs-4", "M-CHAT-R-total", CHILD_SYS, 25)),
      422);
  expect_oo(422, "value", "out of range", "Observation.value[x]");
  assert_int_equal(
      call(PEDS, "POST", "/fhir/Observation", FJSON,
           "{\"resourceType\":\"Observation\",\"status\":\"final\","
           "\"code\":{\"coding\":[{\"system\":\"" INST "\",\"code\":"
           "\"M-CHAT-R-total\"}]},\"subject\":{\"identifier\":{\"system\":"
           "\"" CHILD_SYS "\",\"value\":\"CH00001\"}},\"valueInteger\":1}"),
      422);
  expect_oo(422, "required", NULL, "Observation.effective[x]");
  assert_int_equal(call(PEDS, "POST", "/fhir/Task", FJSON,
                        fmt("{\"resourceType\":\"Observation\",\"status\":"
                            "\"final\",\"code\":{\"text\":\"x\"}}")),
                   400);
  expect_oo(400, "invalid", NULL, "resourceType");
  assert_int_equal(count_results(), 1);
  assert_int_equal(count_type("Observation"), 1);

  /* conditional create on the identifier: once */
  const char *ine = "If-None-Exist: identifier=https://riverside.example.org/"
                    "obs|obs-5";
  char body[2048];
  snprintf(body, sizeof body, OBS_MCHAT, "obs-5", "M-CHAT-R-total", CHILD_SYS,
           1);
  assert_int_equal(
      call_h(PEDS, "POST", "/fhir/Observation", FJSON, body, ine, NULL), 201);
  char id5[80];
  snprintf(id5, sizeof id5, "%s", str(res, "id"));
  assert_int_equal(
      call_h(PEDS, "POST", "/fhir/Observation", FJSON, body, ine, NULL), 200);
  assert_string_equal(str(res, "id"), id5);
  assert_string_equal(hdr("ETag"), "W/\"1\"");
  assert_int_equal(count_results(), 2);
  assert_int_equal(count_type("Observation"), 2);
  check_result(fmt("Observation/%s", id5), "screening", "M-CHAT-R",
               "\"screening.result\":\"negative\"");
  /* only identifier=system|value is a condition here */
  assert_int_equal(call_h(PEDS, "POST", "/fhir/Observation", FJSON, body,
                          "If-None-Exist: code=M-CHAT-R-total", NULL),
                   400);
  expect_oo(400, "not-supported", NULL, "If-None-Exist");
  /* the condition is a query: percent-encoded, with the token escapes
   * (the gateway's own Bundles write it so) */
  static const struct {
    const char *value, *cond;
  } enc[] = {
      {"obs 6", "If-None-Exist: identifier=https%3A%2F%2Friverside.example"
                ".org%2Fobs%7Cobs%206"},
      {"obs|7,8", "If-None-Exist: identifier=https://riverside.example.org/"
                  "obs|obs%5C%7C7%5C%2C8"},
  };
  for (size_t i = 0; i < 2; i++) {
    snprintf(body, sizeof body, OBS_MCHAT, enc[i].value, "M-CHAT-R-total",
             CHILD_SYS, 0);
    size_t before = count_type("Observation");
    assert_int_equal(call_h(PEDS, "POST", "/fhir/Observation", FJSON, body,
                            enc[i].cond, NULL),
                     201);
    char first[80];
    snprintf(first, sizeof first, "%s", str(res, "id"));
    assert_int_equal(call_h(PEDS, "POST", "/fhir/Observation", FJSON, body,
                            enc[i].cond, NULL),
                     200);
    assert_string_equal(str(res, "id"), first);
    assert_int_equal(count_type("Observation"), before + 1);
  }
  assert_int_equal(count_results(), 4);

  /* an ASQ-3 with its domains */
  assert_int_equal(
      call(PEDS, "POST", "/fhir/Observation", FJSON,
           "{\"resourceType\":\"Observation\",\"status\":\"final\","
           "\"code\":{\"coding\":[{\"system\":\"" INST "\",\"code\":"
           "\"ASQ-3\"}]},\"subject\":{\"identifier\":{\"system\":\"" CHILD_SYS
           "\",\"value\":\"CH00001\"}},\"effectiveDateTime\":\"2026-11-20\","
           "\"interpretation\":[{\"coding\":[{\"system\":\"http://"
           "terminology.hl7.org/CodeSystem/v3-ObservationInterpretation\","
           "\"code\":\"A\"}]}]}"),
      201);
  check_result(fmt("Observation/%s", str(res, "id")), "screening", "ASQ-3",
               "\"screening.result\":\"positive\"");

  /* a well-child visit, and another kind of visit */
  assert_int_equal(call(PEDS, "POST", "/fhir/Encounter", FJSON,
                        fmt(ENC_VISIT, "enc-1", "410620009")),
                   201);
  assert_non_null(strstr(hdr("Location"), "/Encounter/"));
  check_result(fmt("Encounter/%s", str(res, "id")), "visit", NULL,
               "\"well_child.visit_date\":\"2026-11-20\"");
  assert_int_equal(call(PEDS, "POST", "/fhir/Encounter", FJSON,
                        fmt(ENC_VISIT, "enc-2", "185349003")),
                   422);
  expect_oo(422, "business-rule", "410620009", "Encounter.type");
  assert_int_equal(count_type("Encounter"), 1);
  assert_int_equal(count_results(), 6);
  /* nothing else is created */
  assert_int_equal(call(PEDS, "POST", "/fhir/Consent", FJSON,
                        "{\"resourceType\":\"Consent\",\"status\":\"active\"}"),
                   404);
}

/* ---- referrals to home visiting ------------------------------------------ */

#define URN_PAT "urn:uuid:6f1f4f0a-9d0e-4b7e-8a43-5b3c2a1d0001"
#define URN_SR "urn:uuid:6f1f4f0a-9d0e-4b7e-8a43-5b3c2a1d0002"
#define URN_TASK "urn:uuid:6f1f4f0a-9d0e-4b7e-8a43-5b3c2a1d0003"

static const char *referral_bundle(const char *type, const char *task_owner) {
  return fmt("{\"resourceType\":\"Bundle\",\"type\":\"%s\",\"entry\":["
             "{\"fullUrl\":\"" URN_TASK "\",\"resource\":%s,"
             "\"request\":{\"method\":\"POST\",\"url\":\"Task\"}},"
             "{\"fullUrl\":\"" URN_SR "\",\"resource\":%s,"
             "\"request\":{\"method\":\"POST\",\"url\":\"ServiceRequest\"}},"
             "{\"fullUrl\":\"" URN_PAT "\",\"resource\":%s,"
             "\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}}]}",
             type, fmt(TASK_IN_BODY, URN_SR, URN_PAT, task_owner),
             fmt(SR_BODY, URN_PAT), fmt(PATIENT_BODY, "MRN-77"));
}

static void test_referral_transaction(void **state) {
  (void)state;
  size_t pats = count_type("Patient"), srs = count_type("ServiceRequest"),
         tasks = count_type("Task"), refs = count_referrals();
  /* one bad entry (the Task, processed last): nothing is stored */
  assert_int_equal(call(PEDS, "POST", "/fhir", FJSON,
                        referral_bundle("transaction", "Organization/other")),
                   422);
  expect_oo(422, "business-rule", "Bundle.entry[0]", "Task.owner");
  assert_int_equal(count_type("Patient"), pats);
  assert_int_equal(count_type("ServiceRequest"), srs);
  assert_int_equal(count_type("Task"), tasks);
  assert_int_equal(count_referrals(), refs);

  assert_int_equal(call(PEDS, "POST", "/fhir", FJSON,
                        referral_bundle("transaction", "Organization/" PROG)),
                   200);
  cJSON *b = take();
  assert_string_equal(str(b, "type"), "transaction-response");
  assert_int_equal(
      cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(b, "entry")), 3);
  static const char *const types[] = {"Task", "ServiceRequest", "Patient"};
  char ids[3][80];
  for (int i = 0; i < 3; i++) {
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(b, "entry"), i),
        "response");
    assert_string_equal(str(r, "status"), "201 Created");
    assert_string_equal(str(r, "etag"), "W/\"1\"");
    const char *loc = str(r, "location");
    assert_int_equal(strncmp(loc, types[i], strlen(types[i])), 0);
    snprintf(ids[i], sizeof ids[i], "%s", id_of_location(loc, types[i]));
    assert_int_equal(call(PEDS, "GET", fmt("/fhir/%s", loc), NULL, NULL), 200);
    assert_string_equal(str(res, "resourceType"), types[i]);
    assert_int_equal(call(EI, "GET", fmt("/fhir/%s", loc), NULL, NULL), 404);
  }
  cJSON_Delete(b);
  assert_int_equal(count_type("Patient"), pats + 1);
  assert_int_equal(count_type("ServiceRequest"), srs + 1);
  assert_int_equal(count_type("Task"), tasks + 1);
  assert_int_equal(count_referrals(), refs + 1);
  /* the placeholders became the ids */
  cJSON *task = get_task(PEDS, ids[0]);
  assert_string_equal(
      str(cJSON_GetObjectItemCaseSensitive(task, "focus"), "reference"),
      fmt("ServiceRequest/%s", ids[1]));
  assert_string_equal(
      str(cJSON_GetObjectItemCaseSensitive(task, "for"), "reference"),
      fmt("Patient/%s", ids[2]));
  /* the referral, on the program's side */
  store_referral r;
  assert_int_equal(store_referral_get(fx.st, PROG, ids[1], &r, NULL), 0);
  assert_string_equal(r.direction, "inbound");
  assert_string_equal(r.partner, "riverside-peds");
  assert_string_equal(r.task_id, ids[0]);
  assert_string_equal(r.status, "requested");
  assert_string_equal(r.hv_status, "referred");
  assert_non_null(strstr(r.data, "\"referral.direction\":\"inbound\""));
  store_referral_release(&r);
  /* searchable by the practice only */
  assert_int_equal(search_total(PEDS, fmt("focus=ServiceRequest/%s", ids[1])),
                   1);
  assert_int_equal(search_total(PEDS, "_count=500"), 2);
  assert_int_equal(search_total(EI, fmt("focus=ServiceRequest/%s", ids[1])), 0);
  /* the practice is the requester here: it may cancel, not accept */
  set_str(task, "status", "accepted");
  assert_int_equal(put_task(PEDS, ids[0], task, 0), 422);
  expect_oo(422, "business-rule", "set by the receiver", "Task.status");
  cJSON_DeleteItemFromObjectCaseSensitive(task, "output");
  cJSON_AddItemToObject(
      task, "output",
      cJSON_Parse("[{\"type\":{\"text\":\"x\"},\"valueString\":\"y\"}]"));
  set_str(task, "status", "requested");
  assert_int_equal(put_task(PEDS, ids[0], task, 0), 422);
  expect_oo(422, "business-rule", "Task.output is set by the receiver",
            "output");
  cJSON_DeleteItemFromObjectCaseSensitive(task, "output");
  set_str(task, "status", "cancelled");
  assert_int_equal(put_task(PEDS, ids[0], task, 0), 200);
  check_referral(ids[1], "cancelled", "withdrawn");
  static const char *const to[] = {"cancelled"}, *const hv[] = {"withdrawn"};
  check_history(ids[1], to, hv, 1, "partner:riverside-peds");
  cJSON_Delete(task);

  /* a batch: one good entry, one bad; both answered, the good one kept */
  pats = count_type("Patient");
  size_t obs = count_type("Observation");
  const char *batch =
      fmt("{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":["
          "{\"resource\":%s,\"request\":{\"method\":\"POST\",\"url\":"
          "\"Patient\"}},{\"resource\":%s,\"request\":{\"method\":\"POST\","
          "\"url\":\"Observation\"}}]}",
          fmt(PATIENT_BODY, "MRN-78"),
          fmt(OBS_MCHAT, "obs-b", "M-CHAT-R-total", CHILD_SYS, 99));
  assert_int_equal(call(PEDS, "POST", "/fhir", FJSON, batch), 200);
  assert_string_equal(str(res, "type"), "batch-response");
  const cJSON *e0 = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "entry"), 0),
      "response");
  const cJSON *e1 = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "entry"), 1),
      "response");
  assert_string_equal(str(e0, "status"), "201 Created");
  assert_int_equal(atoi(str(e1, "status")), 422);
  const cJSON *oo = cJSON_GetObjectItemCaseSensitive(e1, "outcome");
  assert_string_equal(str(oo, "resourceType"), "OperationOutcome");
  assert_string_equal(
      str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(oo, "issue"), 0),
          "code"),
      "value");
  assert_int_equal(count_type("Patient"), pats + 1);
  assert_int_equal(count_type("Observation"), obs);
  assert_int_equal(
      call(PEDS, "GET", fmt("/fhir/%s", str(e0, "location")), NULL, NULL), 200);

  /* the same referral as an XML transaction */
  cJSON *tree = NULL;
  const char *js = referral_bundle("transaction", "Organization/" PROG);
  assert_int_equal(fhir_json_parse(js, strlen(js), 1 << 20, &tree, NULL), 0);
  hvg_buf xml;
  hvg_buf_init(&xml, 1 << 20);
  assert_int_equal(fhir_json_serialize(tree, FHIR_XML, 0, &xml, NULL), 0);
  cJSON_Delete(tree);
  assert_int_equal(call(PEDS, "POST", "/fhir", FXML, xml.data), 200);
  hvg_buf_free(&xml);
  assert_string_equal(str(res, "type"), "transaction-response");
  assert_int_equal(count_referrals(), refs + 2);
  /* a Bundle that is neither */
  assert_int_equal(
      call(PEDS, "POST", "/fhir", FJSON,
           "{\"resourceType\":\"Bundle\",\"type\":\"collection\"}"),
      400);
  expect_oo(400, "invalid", NULL, "Bundle.type");
  assert_int_equal(
      call(PEDS, "POST", "/fhir", FJSON, fmt(PATIENT_BODY, "MRN-79")), 400);
}

/* ---- subscription notifications ------------------------------------------ */

static const char *notification(const char *type, const char *focus,
                                const char *id_only) {
  char ev[600] = "", entry[400] = "";
  if (focus)
    snprintf(ev, sizeof ev,
             ",{\"name\":\"notification-event\",\"part\":[{\"name\":"
             "\"event-number\",\"valueString\":\"2\"},{\"name\":\"focus\","
             "\"valueReference\":{\"reference\":\"%s\"}}]}",
             focus);
  if (id_only)
    snprintf(entry, sizeof entry,
             ",{\"fullUrl\":\"%s\",\"request\":{\"method\":\"PUT\","
             "\"url\":\"Task\"},\"response\":{\"status\":\"200\"}}",
             id_only);
  return fmt(
      "{\"resourceType\":\"Bundle\",\"type\":\"history\",\"timestamp\":"
      "\"2026-12-01T10:00:00Z\",\"entry\":[{\"fullUrl\":\"urn:uuid:"
      "1b5a0c9e-3f7a-4a55-9c0b-2e7d4b6a0001\",\"resource\":{\"resourceType\":"
      "\"Parameters\",\"meta\":{\"profile\":[\"http://hl7.org/fhir/uv/"
      "subscriptions-backport/StructureDefinition/"
      "backport-subscription-status-r4\"]},\"parameter\":[{\"name\":"
      "\"subscription\",\"valueReference\":{\"reference\":\"" FX_PARTNER_BASE
      "/Subscription/s1\"}},{\"name\":\"status\",\"valueCode\":\"active\"},"
      "{\"name\":\"type\",\"valueCode\":\"%s\"}%s]},\"request\":{\"method\":"
      "\"GET\",\"url\":\"" FX_PARTNER_BASE "/Subscription/s1/$status\"},"
      "\"response\":{\"status\":\"200\"}}%s]}",
      type, ev, entry);
}

static size_t inbox(const char *partner, char refs[][64], size_t max) {
  store_inbox_item items[16];
  size_t n = 0;
  assert_int_equal(store_inbox_due(fx.st, partner, store_now_ms() + 1000, items,
                                   16, &n, NULL),
                   0);
  for (size_t i = 0; i < n && i < max; i++)
    snprintf(refs[i], 64, "%.63s", items[i].ref);
  return n;
}

static void test_notifications(void **state) {
  (void)state;
  const char *path = "/fhir/subscription-notification";
  char refs[16][64];
  /* a handshake: acknowledged, nothing to fetch */
  assert_int_equal(
      call(EI, "POST", path, FJSON, notification("handshake", NULL, NULL)),
      200);
  assert_string_equal(str(res, "resourceType"), "OperationOutcome");
  assert_int_equal(inbox("county-ei", refs, 16), 0);
  /* an event: the focus and the id-only entry */
  assert_int_equal(
      call(EI, "POST", path, FJSON,
           notification("event-notification", FX_PARTNER_BASE "/Task/t-101",
                        FX_PARTNER_BASE "/Task/t-102")),
      200);
  assert_non_null(strstr(
      str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "issue"), 0),
          "diagnostics"),
      "2 Task references"));
  assert_int_equal(inbox("county-ei", refs, 16), 2);
  int a = 0, b = 0;
  for (int i = 0; i < 2; i++) {
    a |= !strcmp(refs[i], "Task/t-101");
    b |= !strcmp(refs[i], "Task/t-102");
  }
  assert_true(a && b);
  assert_int_equal(inbox("riverside-peds", refs, 16), 0);
  /* relative references and versions; a repeat queues nothing new */
  assert_int_equal(
      call(EI, "POST", path, FJSON,
           notification("event-notification", "Task/t-103/_history/4",
                        FX_PARTNER_BASE "/Task/t-101")),
      200);
  assert_int_equal(inbox("county-ei", refs, 16), 3);
  /* another server's Tasks, and what is not a Task, are not fetched */
  assert_int_equal(call(EI, "POST", path, FJSON,
                        notification("event-notification",
                                     "https://elsewhere.example.org/fhir/"
                                     "Task/t-900",
                                     FX_PARTNER_BASE "/Observation/o-1")),
                   200);
  assert_int_equal(inbox("county-ei", refs, 16), 3);
  /* a heartbeat */
  assert_int_equal(
      call(PEDS, "POST", path, FJSON, notification("heartbeat", NULL, NULL)),
      200);
  assert_int_equal(inbox("riverside-peds", refs, 16), 0);
  /* not a notification */
  assert_int_equal(
      call(EI, "POST", path, FJSON,
           "{\"resourceType\":\"Bundle\",\"type\":\"collection\"}"),
      400);
  expect_oo(400, "invalid", "notification", "Bundle");
  assert_int_equal(call(EI, "POST", path, FJSON, fmt(PATIENT_BODY, "x")), 400);
  assert_int_equal(
      call(EI, "POST", path, FJSON,
           "{\"resourceType\":\"Bundle\",\"type\":\"history\",\"entry\":[{"
           "\"resource\":{\"resourceType\":\"Parameters\"}}]}"),
      400);
  expect_oo(400, "invalid", "notification type", "Bundle");
  assert_int_equal(call(EI, "POST", path, "text/plain", "hello"), 415);
  assert_int_equal(call(EI, "GET", path, NULL, NULL), 405);
  assert_string_equal(hdr("Allow"), "POST");
  assert_int_equal(call(NOBODY, "POST", path, FJSON,
                        notification("event-notification",
                                     FX_PARTNER_BASE "/Task/t-104", NULL)),
                   401);
  assert_int_equal(inbox("county-ei", refs, 16), 3);
}

int main(void) {
  if (fx_config_load(&cfg))
    return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
      cmocka_unit_test_setup_teardown(test_metadata, setup, teardown),
      cmocka_unit_test_setup_teardown(test_negotiation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_vread, setup, teardown),
      cmocka_unit_test_setup_teardown(test_search, setup, teardown),
      cmocka_unit_test_setup_teardown(test_query_without_value, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_echoed_text, setup, teardown),
      cmocka_unit_test_setup_teardown(test_update_lifecycle, setup, teardown),
      cmocka_unit_test_setup_teardown(test_update_refusals, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hv_status, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reintake, setup, teardown),
      cmocka_unit_test_setup_teardown(test_patch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_create_results, setup, teardown),
      cmocka_unit_test_setup_teardown(test_referral_transaction, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_notifications, setup, teardown),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  hvg_config_free(cfg);
  return rc;
}
