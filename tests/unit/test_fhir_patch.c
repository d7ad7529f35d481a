/* fhir_patch: every example of RFC 6902 Appendix A, JSON Pointer edge cases
 * (RFC 6901), JSON equality of "test", decimals keeping their text, every
 * error code with its field and message, atomicity (a failing operation
 * leaves the document byte for byte as it was), the limits, and an
 * allocation-failure torture run of parse + apply on a realistic Task
 * (linked with --wrap=malloc; cJSON's allocations are routed through the
 * wrapper with cJSON_InitHooks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the headers above first */
#include <cmocka.h>

#include "alloc_fail.h"
#include "fhir_json.h"
#include "fhir_json_int.h"
#include "fhir_patch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------ */

/* Any JSON text as a tree with numbers as Raw nodes (the fhir_json shape). */
static cJSON *doc_of(const char *text) {
  cJSON *d = NULL;
  hvg_err err;
  int rc = fhir__json_parse_text(text, strlen(text), &d, &err);
  if (rc)
    fail_msg("test document does not parse: %s", err.msg);
  return d;
}

static fhir_patch *patch_of(const char *text) {
  fhir_patch *p = NULL;
  hvg_err err;
  int rc = fhir_patch_parse(text, strlen(text), FHIR_PATCH_MAX_INPUT, &p, &err);
  if (rc)
    fail_msg("patch does not parse: %s %s: %s", hvg_err_name(rc), err.field,
             err.msg);
  return p;
}

static char *print(const cJSON *d) {
  char *s = cJSON_PrintUnformatted(d);
  assert_non_null(s);
  return s;
}

/* Apply patch to doc (both texts); the result must print as want. */
static void expect_ok(const char *doc, const char *patch, const char *want) {
  cJSON *d = doc_of(doc);
  fhir_patch *p = patch_of(patch);
  hvg_err err;
  int rc = fhir_patch_apply(p, &d, &err);
  if (rc)
    fail_msg("%s on %s: %s %s: %s", patch, doc, hvg_err_name(rc), err.field,
             err.msg);
  char *got = print(d);
  assert_string_equal(got, want);
  free(got);
  fhir_patch_free(p);
  cJSON_Delete(d);
}

/* Apply must fail with code, err->field == field and msg containing msg;
 * the document must be the same tree, printing the same text. */
static void expect_fail(const char *doc, const char *patch, int code,
                        const char *field, const char *msg) {
  cJSON *d = doc_of(doc), *before = d;
  char *t0 = print(d);
  fhir_patch *p = patch_of(patch);
  hvg_err err;
  hvg_err_clear(&err);
  int rc = fhir_patch_apply(p, &d, &err);
  if (rc != code)
    fail_msg("%s on %s: want %s, got %s %s: %s", patch, doc, hvg_err_name(code),
             hvg_err_name(rc), err.field, err.msg);
  assert_int_equal(err.code, code);
  assert_string_equal(err.field, field);
  if (!strstr(err.msg, msg))
    fail_msg("message '%s' lacks '%s'", err.msg, msg);
  assert_ptr_equal(d, before);
  char *t1 = print(d);
  assert_string_equal(t1, t0);
  free(t0);
  free(t1);
  fhir_patch_free(p);
  cJSON_Delete(d);
}

/* Parsing patch[0..len) must fail with code, field and msg (substring). */
static void expect_parse_fail_n(const char *patch, size_t len, int code,
                                const char *field, const char *msg) {
  fhir_patch *p = (fhir_patch *)&p; /* must be reset to NULL */
  hvg_err err;
  hvg_err_clear(&err);
  int rc = fhir_patch_parse(patch, len, FHIR_PATCH_MAX_INPUT, &p, &err);
  if (rc != code)
    fail_msg("%.200s: want %s, got %s %s: %s", patch, hvg_err_name(code),
             hvg_err_name(rc), err.field, err.msg);
  assert_null(p);
  assert_int_equal(err.code, code);
  assert_string_equal(err.field, field);
  if (!strstr(err.msg, msg))
    fail_msg("message '%s' lacks '%s'", err.msg, msg);
}

static void expect_parse_fail(const char *patch, int code, const char *field,
                              const char *msg) {
  expect_parse_fail_n(patch, strlen(patch), code, field, msg);
}

/* A realistic stored Task: integers become cJSON numbers, decimals Raw. */
static const char task_json[] =
    "{\"resourceType\":\"Task\",\"id\":\"ref-42\",\"meta\":{\"versionId\":"
    "\"3\",\"lastUpdated\":\"2026-03-01T10:00:00Z\"},\"identifier\":[{"
    "\"system\":\"urn:hvgate:referral\",\"value\":\"R-42\"}],\"basedOn\":[{"
    "\"reference\":\"ServiceRequest/sr-42\"}],\"status\":\"requested\","
    "\"intent\":\"order\",\"priority\":\"routine\",\"code\":{\"coding\":[{"
    "\"system\":\"http://hl7.org/fhir/CodeSystem/task-code\",\"code\":"
    "\"fulfill\"}]},\"focus\":{\"reference\":\"ServiceRequest/sr-42\"},"
    "\"for\":{\"reference\":\"Patient/p-7\"},\"authoredOn\":\"2026-02-27T09:"
    "30:00Z\",\"lastModified\":\"2026-03-01T10:00:00Z\",\"requester\":{"
    "\"reference\":\"Organization/hv-1\"},\"owner\":{\"reference\":"
    "\"Organization/peds-1\"},\"note\":[{\"text\":\"Family prefers morning "
    "calls.\"}],\"input\":[{\"type\":{\"text\":\"score\"},\"valueDecimal\":"
    "12.50},{\"type\":{\"text\":\"visits\"},\"valueInteger\":3}]}";

static cJSON *task(void) {
  cJSON *t = NULL;
  hvg_err err;
  int rc = fhir_json_parse(task_json, strlen(task_json), FHIR_PARSE_MAX_INPUT,
                           &t, &err);
  if (rc)
    fail_msg("Task does not parse: %s: %s", err.field, err.msg);
  return t;
}

/* What the practice sends when it accepts the referral. */
static const char task_patch[] =
    "[{\"op\":\"test\",\"path\":\"/status\",\"value\":\"requested\"},"
    "{\"op\":\"test\",\"path\":\"/input/1/valueInteger\",\"value\":3.0},"
    "{\"op\":\"replace\",\"path\":\"/status\",\"value\":\"accepted\"},"
    "{\"op\":\"add\",\"path\":\"/businessStatus\",\"value\":{\"text\":"
    "\"Appointment scheduled\"}},"
    "{\"op\":\"add\",\"path\":\"/note/-\",\"value\":{\"authorString\":"
    "\"Front desk\",\"time\":\"2026-03-02T08:15:00Z\",\"text\":\"Called the "
    "family; visit on 3/9.\"}},"
    "{\"op\":\"move\",\"from\":\"/note/0\",\"path\":\"/note/-\"},"
    "{\"op\":\"add\",\"path\":\"/input/-\",\"value\":{\"type\":{\"text\":"
    "\"weight-kg\"},\"valueDecimal\":11.50}},"
    "{\"op\":\"copy\",\"from\":\"/owner\",\"path\":\"/restriction\"},"
    "{\"op\":\"move\",\"from\":\"/restriction\",\"path\":\"/location\"},"
    "{\"op\":\"remove\",\"path\":\"/location\"},"
    "{\"op\":\"add\",\"path\":\"/output\",\"value\":[{\"type\":{\"text\":"
    "\"appointment\"},\"valueReference\":{\"reference\":\"Appointment/a-9\"}}"
    "]},"
    "{\"op\":\"remove\",\"path\":\"/priority\"},"
    "{\"op\":\"replace\",\"path\":\"/lastModified\",\"value\":"
    "\"2026-03-02T08:15:00Z\"},"
    "{\"op\":\"test\",\"path\":\"/input/0/valueDecimal\",\"value\":12.5}]";

static const char task_patched[] =
    "{\"resourceType\":\"Task\",\"id\":\"ref-42\",\"meta\":{\"versionId\":"
    "\"3\",\"lastUpdated\":\"2026-03-01T10:00:00Z\"},\"identifier\":[{"
    "\"system\":\"urn:hvgate:referral\",\"value\":\"R-42\"}],\"basedOn\":[{"
    "\"reference\":\"ServiceRequest/sr-42\"}],\"status\":\"accepted\","
    "\"intent\":\"order\",\"code\":{\"coding\":[{"
    "\"system\":\"http://hl7.org/fhir/CodeSystem/task-code\",\"code\":"
    "\"fulfill\"}]},\"focus\":{\"reference\":\"ServiceRequest/sr-42\"},"
    "\"for\":{\"reference\":\"Patient/p-7\"},\"authoredOn\":\"2026-02-27T09:"
    "30:00Z\",\"lastModified\":\"2026-03-02T08:15:00Z\",\"requester\":{"
    "\"reference\":\"Organization/hv-1\"},\"owner\":{\"reference\":"
    "\"Organization/peds-1\"},\"note\":[{\"authorString\":\"Front desk\","
    "\"time\":\"2026-03-02T08:15:00Z\",\"text\":\"Called the family; visit on "
    "3/9.\"},{\"text\":\"Family prefers morning calls.\"}],\"input\":[{"
    "\"type\":{\"text\":\"score\"},\"valueDecimal\":12.50},{\"type\":{"
    "\"text\":\"visits\"},\"valueInteger\":3},{\"type\":{\"text\":"
    "\"weight-kg\"},\"valueDecimal\":11.50}],\"businessStatus\":{\"text\":"
    "\"Appointment scheduled\"},\"output\":[{\"type\":{\"text\":"
    "\"appointment\"},\"valueReference\":{\"reference\":\"Appointment/a-9\"}}"
    "]}";

/* ---- RFC 6902 Appendix A ------------------------------------------------ */

static void test_rfc6902_appendix_a(void **state) {
  (void)state;
  /* A.1 adding an object member */
  expect_ok("{\"foo\":\"bar\"}",
            "[{ \"op\": \"add\", \"path\": \"/baz\", \"value\": \"qux\" }]",
            "{\"foo\":\"bar\",\"baz\":\"qux\"}");
  /* A.2 adding an array element */
  expect_ok("{\"foo\":[\"bar\",\"baz\"]}",
            "[{\"op\":\"add\",\"path\":\"/foo/1\",\"value\":\"qux\"}]",
            "{\"foo\":[\"bar\",\"qux\",\"baz\"]}");
  /* A.3 removing an object member */
  expect_ok("{\"baz\":\"qux\",\"foo\":\"bar\"}",
            "[{\"op\":\"remove\",\"path\":\"/baz\"}]", "{\"foo\":\"bar\"}");
  /* A.4 removing an array element */
  expect_ok("{\"foo\":[\"bar\",\"qux\",\"baz\"]}",
            "[{\"op\":\"remove\",\"path\":\"/foo/1\"}]",
            "{\"foo\":[\"bar\",\"baz\"]}");
  /* A.5 replacing a value */
  expect_ok("{\"baz\":\"qux\",\"foo\":\"bar\"}",
            "[{\"op\":\"replace\",\"path\":\"/baz\",\"value\":\"boo\"}]",
            "{\"baz\":\"boo\",\"foo\":\"bar\"}");
  /* A.6 moving a value */
  expect_ok(
      "{\"foo\":{\"bar\":\"baz\",\"waldo\":\"fred\"},\"qux\":{\"corge\":"
      "\"grault\"}}",
      "[{\"op\":\"move\",\"from\":\"/foo/waldo\",\"path\":\"/qux/thud\"}]",
      "{\"foo\":{\"bar\":\"baz\"},\"qux\":{\"corge\":\"grault\","
      "\"thud\":\"fred\"}}");
  /* A.7 moving an array element */
  expect_ok("{\"foo\":[\"all\",\"grass\",\"cows\",\"eat\"]}",
            "[{\"op\":\"move\",\"from\":\"/foo/1\",\"path\":\"/foo/3\"}]",
            "{\"foo\":[\"all\",\"cows\",\"eat\",\"grass\"]}");
  /* A.8 testing a value: success */
  expect_ok("{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}",
            "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"qux\"},"
            "{\"op\":\"test\",\"path\":\"/foo/1\",\"value\":2}]",
            "{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}");
  /* A.9 testing a value: error */
  expect_fail("{\"baz\":\"qux\"}",
              "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"bar\"}]",
              HVG_ESTATE, "/0",
              "test path '/baz': the value is not equal to the one tested");
  /* A.10 adding a nested member object */
  expect_ok("{\"foo\":\"bar\"}",
            "[{\"op\":\"add\",\"path\":\"/child\",\"value\":{\"grandchild\":{}}"
            "}]",
            "{\"foo\":\"bar\",\"child\":{\"grandchild\":{}}}");
  /* A.11 ignoring unrecognized elements */
  expect_ok("{\"foo\":\"bar\"}",
            "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\",\"xyz\":123}"
            "]",
            "{\"foo\":\"bar\",\"baz\":\"qux\"}");
  /* A.12 adding to a nonexistent target */
  expect_fail("{\"foo\":\"bar\"}",
              "[{\"op\":\"add\",\"path\":\"/baz/bat\",\"value\":\"qux\"}]",
              HVG_ENOTFOUND, "/0", "add path '/baz/bat': no member 'baz'");
  /* A.13 invalid JSON Patch document (two "op") */
  expect_parse_fail("[{\"op\":\"add\",\"path\":\"/"
                    "baz\",\"value\":\"qux\",\"op\":\"remove\"}]",
                    HVG_EFORMAT, "/0/op", "duplicate key 'op'");
  /* A.14 ~ escape ordering: "~01" is "~1", not "/" */
  expect_ok("{\"/\":9,\"~1\":10}",
            "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":10}]",
            "{\"/\":9,\"~1\":10}");
  /* A.15 comparing strings and numbers */
  expect_fail("{\"/\":9,\"~1\":10}",
              "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":\"10\"}]",
              HVG_ESTATE, "/0", "test path '/~01'");
  /* A.16 adding an array value */
  expect_ok(
      "{\"foo\":[\"bar\"]}",
      "[{\"op\":\"add\",\"path\":\"/foo/-\",\"value\":[\"abc\",\"def\"]}]",
      "{\"foo\":[\"bar\",[\"abc\",\"def\"]]}");
  /* and an array value at an index */
  expect_ok("{\"foo\":[\"bar\"]}",
            "[{\"op\":\"add\",\"path\":\"/foo/0\",\"value\":[\"abc\"]}]",
            "{\"foo\":[[\"abc\"],\"bar\"]}");
}

/* ---- the six operations beyond the RFC's examples ---------------------- */

static void test_operations(void **state) {
  (void)state;
  /* add on an existing member replaces it in place */
  expect_ok("{\"a\":1,\"b\":2}",
            "[{\"op\":\"add\",\"path\":\"/a\",\"value\":[3]}]",
            "{\"a\":[3],\"b\":2}");
  /* add at the size of an array appends; null is a value */
  expect_ok("{\"a\":[1,2]}",
            "[{\"op\":\"add\",\"path\":\"/a/2\",\"value\":null}]",
            "{\"a\":[1,2,null]}");
  /* inserts and replaces at the head, middle and tail keep the list whole
   * (appending afterwards relies on it) */
  expect_ok("{\"a\":[1,2,3]}",
            "[{\"op\":\"add\",\"path\":\"/a/0\",\"value\":0},"
            "{\"op\":\"add\",\"path\":\"/a/-\",\"value\":4},"
            "{\"op\":\"add\",\"path\":\"/a/2\",\"value\":1.5},"
            "{\"op\":\"replace\",\"path\":\"/a/5\",\"value\":\"z\"},"
            "{\"op\":\"add\",\"path\":\"/a/6\",\"value\":5},"
            "{\"op\":\"replace\",\"path\":\"/a/0\",\"value\":\"y\"},"
            "{\"op\":\"remove\",\"path\":\"/a/6\"},"
            "{\"op\":\"add\",\"path\":\"/a/-\",\"value\":6},"
            "{\"op\":\"remove\",\"path\":\"/a/0\"},"
            "{\"op\":\"add\",\"path\":\"/a/0\",\"value\":7},"
            "{\"op\":\"move\",\"from\":\"/a/6\",\"path\":\"/a/0\"},"
            "{\"op\":\"add\",\"path\":\"/a/-\",\"value\":8}]",
            "{\"a\":[6,7,1,1.5,2,3,\"z\",8]}");
  expect_ok("{\"a\":1,\"b\":2,\"c\":3}",
            "[{\"op\":\"replace\",\"path\":\"/c\",\"value\":4},"
            "{\"op\":\"add\",\"path\":\"/d\",\"value\":5},"
            "{\"op\":\"replace\",\"path\":\"/a\",\"value\":6},"
            "{\"op\":\"remove\",\"path\":\"/d\"},"
            "{\"op\":\"add\",\"path\":\"/e\",\"value\":7},"
            "{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/f\"}]",
            "{\"b\":2,\"c\":4,\"e\":7,\"f\":6}");
  /* the whole document: add, replace (even with a scalar) */
  expect_ok("{\"a\":1}", "[{\"op\":\"add\",\"path\":\"\",\"value\":[1.50]}]",
            "[1.50]");
  expect_ok("{\"a\":1}", "[{\"op\":\"replace\",\"path\":\"\",\"value\":7}]",
            "7");
  expect_ok("[1,2]", "[{\"op\":\"replace\",\"path\":\"/1\",\"value\":{}}]",
            "[1,{}]");
  /* move: to itself is nothing; a sibling sharing a prefix is no child */
  expect_ok("{\"a\":{\"b\":{}}}",
            "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a\"}]",
            "{\"a\":{\"b\":{}}}");
  expect_ok("{\"a\":{\"b\":{}}}",
            "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/ab\"}]",
            "{\"ab\":{\"b\":{}}}");
  /* move onto an existing member replaces it; to the root */
  expect_ok("{\"a\":1,\"b\":2}",
            "[{\"op\":\"move\",\"from\":\"/b\",\"path\":\"/a\"}]", "{\"a\":2}");
  expect_ok("{\"a\":{\"x\":[1]}}",
            "[{\"op\":\"move\",\"from\":\"/a/x\",\"path\":\"\"}]", "[1]");
  /* copy into its own child is fine, and copies are independent */
  expect_ok("{\"a\":{\"b\":1}}",
            "[{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/a/c\"},"
            "{\"op\":\"replace\",\"path\":\"/a/c/b\",\"value\":2}]",
            "{\"a\":{\"b\":1,\"c\":{\"b\":2}}}");
  expect_ok("{\"a\":[1,2]}",
            "[{\"op\":\"copy\",\"from\":\"/a/0\",\"path\":\"/a/-\"},"
            "{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"\"}]",
            "[1,2,1]");
  /* an empty patch changes nothing */
  expect_ok("{\"a\":1}", "[]", "{\"a\":1}");

  /* one parsed patch applied to two documents; a test-only patch keeps the
   * very tree */
  fhir_patch *p = patch_of("[{\"op\":\"add\",\"path\":\"/n\",\"value\":1}]");
  for (int i = 0; i < 2; i++) {
    cJSON *d = doc_of(i ? "{\"m\":0}" : "{}");
    assert_int_equal(fhir_patch_apply(p, &d, NULL), 0);
    char *s = print(d);
    assert_string_equal(s, i ? "{\"m\":0,\"n\":1}" : "{\"n\":1}");
    free(s);
    cJSON_Delete(d);
  }
  fhir_patch_free(p);
  p = patch_of("[{\"op\":\"test\",\"path\":\"/m\",\"value\":0}]");
  cJSON *d = doc_of("{\"m\":0}"), *same = d;
  assert_int_equal(fhir_patch_apply(p, &d, NULL), 0);
  assert_ptr_equal(d, same);
  cJSON_Delete(d);
  fhir_patch_free(p);
  fhir_patch_free(NULL);
}

/* ---- JSON Pointer edge cases -------------------------------------------- */

static void test_pointers(void **state) {
  (void)state;
  /* "/" is the member "", ~1 is '/', ~0 is '~', decoded once */
  expect_ok("{\"\":1,\"a/b\":2,\"m~n\":3,\"~1\":4,\"/0\":5}",
            "[{\"op\":\"test\",\"path\":\"/\",\"value\":1},"
            "{\"op\":\"test\",\"path\":\"/a~1b\",\"value\":2},"
            "{\"op\":\"test\",\"path\":\"/m~0n\",\"value\":3},"
            "{\"op\":\"test\",\"path\":\"/~01\",\"value\":4},"
            "{\"op\":\"test\",\"path\":\"/~10\",\"value\":5},"
            "{\"op\":\"add\",\"path\":\"/x~1y~0\",\"value\":6}]",
            "{\"\":1,\"a/b\":2,\"m~n\":3,\"~1\":4,\"/0\":5,\"x/y~\":6}");
  /* a member named "-" is just a member; keys are case-sensitive */
  expect_ok("{\"-\":{\"A\":1}}",
            "[{\"op\":\"test\",\"path\":\"/-/A\",\"value\":1},"
            "{\"op\":\"add\",\"path\":\"/-/a\",\"value\":2}]",
            "{\"-\":{\"A\":1,\"a\":2}}");
  expect_fail("{\"A\":1}", "[{\"op\":\"remove\",\"path\":\"/a\"}]",
              HVG_ENOTFOUND, "/0", "remove path '/a': no member 'a'");
  /* array indexes */
  const char *arr = "{\"a\":[1,2]}";
  expect_fail(arr, "[{\"op\":\"remove\",\"path\":\"/a/01\"}]", HVG_EFORMAT,
              "/0", "remove path '/a/01': '01' is not an array index");
  expect_fail(arr, "[{\"op\":\"test\",\"path\":\"/a/+1\",\"value\":2}]",
              HVG_EFORMAT, "/0", "'+1' is not an array index");
  expect_fail(arr, "[{\"op\":\"test\",\"path\":\"/a/1e0\",\"value\":2}]",
              HVG_EFORMAT, "/0", "'1e0' is not an array index");
  expect_fail(arr, "[{\"op\":\"test\",\"path\":\"/a/\",\"value\":2}]",
              HVG_EFORMAT, "/0", "'' is not an array index");
  expect_fail(arr, "[{\"op\":\"add\",\"path\":\"/a/3\",\"value\":0}]",
              HVG_EFORMAT, "/0",
              "add path '/a/3': index 3 is out of range (array of 2)");
  expect_fail(arr, "[{\"op\":\"replace\",\"path\":\"/a/2\",\"value\":0}]",
              HVG_EFORMAT, "/0", "index 2 is out of range (array of 2)");
  expect_fail(arr,
              "[{\"op\":\"remove\",\"path\":\"/a/"
              "99999999999999999999999999\"}]",
              HVG_EFORMAT, "/0", "is out of range (array of 2)");
  /* "-" only at the end of an add's path */
  expect_fail(arr, "[{\"op\":\"remove\",\"path\":\"/a/-\"}]", HVG_EFORMAT, "/0",
              "remove path '/a/-': '-' (past the last element)");
  expect_fail(arr, "[{\"op\":\"replace\",\"path\":\"/a/-\",\"value\":1}]",
              HVG_EFORMAT, "/0", "'-' (past the last element)");
  expect_fail(arr, "[{\"op\":\"copy\",\"from\":\"/a/-\",\"path\":\"/b\"}]",
              HVG_EFORMAT, "/0", "copy from '/a/-': '-'");
  expect_fail("{\"a\":[[1]]}",
              "[{\"op\":\"add\",\"path\":\"/a/-/0\",\"value\":1}]", HVG_EFORMAT,
              "/0", "add path '/a/-/0': '-'");
  /* through a scalar */
  expect_fail("{\"a\":\"s\"}",
              "[{\"op\":\"add\",\"path\":\"/a/b\",\"value\":1}]", HVG_ENOTFOUND,
              "/0",
              "add path '/a/b': no 'b' in a string (not an object or array)");
  expect_fail("{\"a\":[true]}",
              "[{\"op\":\"test\",\"path\":\"/a/0/0\",\"value\":1}]",
              HVG_ENOTFOUND, "/0", "no '0' in a boolean");
  /* pointer syntax is checked when parsing */
  expect_parse_fail("[{\"op\":\"remove\",\"path\":\"a/b\"}]", HVG_EFORMAT,
                    "/0/path", "must be empty or start with '/'");
  expect_parse_fail("[{\"op\":\"remove\",\"path\":\"/~2\"}]", HVG_EFORMAT,
                    "/0/path", "'~' must be followed by '0' or '1'");
  expect_parse_fail("[{\"op\":\"remove\",\"path\":\"/a~\"}]", HVG_EFORMAT,
                    "/0/path", "'~' must be followed");
  expect_parse_fail("[{\"op\":\"remove\",\"path\":\"/a\"},"
                    "{\"op\":\"copy\",\"from\":\"x\",\"path\":\"/b\"}]",
                    HVG_EFORMAT, "/1/from", "must be empty or start with '/'");
}

/* ---- test: JSON equality ------------------------------------------------- */

static void test_equality(void **state) {
  (void)state;
  const char *doc =
      "{\"n\":1.0,\"m\":1.50,\"e\":100,\"z\":-0,\"s\":\"1\",\"u\":\"\xc3\xa9\","
      "\"o\":{\"a\":1,\"b\":[1,2]},\"t\":true,\"f\":false,\"nul\":null,"
      "\"x\":0.1}";
  static const char *const equal[] = {
      "\"/n\",\"value\":1",      "\"/n\",\"value\":1.000",
      "\"/n\",\"value\":10e-1",  "\"/m\",\"value\":1.5",
      "\"/m\",\"value\":0.15E1", "\"/e\",\"value\":1e2",
      "\"/e\",\"value\":1E+2",   "\"/e\",\"value\":0.1e3",
      "\"/e\",\"value\":100.00", "\"/z\",\"value\":0",
      "\"/z\",\"value\":0.0e-5", "\"/u\",\"value\":\"\\u00e9\"",
      "\"/t\",\"value\":true",   "\"/f\",\"value\":false",
      "\"/nul\",\"value\":null", "\"/o\",\"value\":{\"b\":[1,2.0],\"a\":1}",
      "\"/x\",\"value\":0.10",   "\"/s\",\"value\":\"1\"",
  };
  static const char *const unequal[] = {
      "\"/n\",\"value\":1.01",
      "\"/n\",\"value\":-1",
      "\"/n\",\"value\":\"1.0\"",
      "\"/s\",\"value\":1",
      "\"/e\",\"value\":1e3",
      "\"/e\",\"value\":10",
      "\"/u\",\"value\":\"e\\u0301\"",
      "\"/o\",\"value\":{\"a\":1}",
      "\"/o\",\"value\":{\"a\":1,\"b\":[1,2],\"c\":0}",
      "\"/o\",\"value\":{\"a\":1,\"c\":[1,2]}",
      "\"/o\",\"value\":{\"a\":1,\"b\":[2,1]}",
      "\"/o\",\"value\":{\"a\":1,\"b\":[1]}",
      "\"/o\",\"value\":[1,[1,2]]",
      "\"/t\",\"value\":1",
      "\"/t\",\"value\":false",
      "\"/nul\",\"value\":false",
      "\"/f\",\"value\":null",
      "\"/x\",\"value\":0.10000000000000000001",
  };
  char patch[256];
  for (size_t i = 0; i < sizeof equal / sizeof equal[0]; i++) {
    snprintf(patch, sizeof patch, "[{\"op\":\"test\",\"path\":%s}]", equal[i]);
    cJSON *d = doc_of(doc);
    fhir_patch *p = patch_of(patch);
    hvg_err err;
    int rc = fhir_patch_apply(p, &d, &err);
    if (rc)
      fail_msg("%s: %s", patch, err.msg);
    fhir_patch_free(p);
    cJSON_Delete(d);
  }
  for (size_t i = 0; i < sizeof unequal / sizeof unequal[0]; i++) {
    snprintf(patch, sizeof patch, "[{\"op\":\"test\",\"path\":%s}]",
             unequal[i]);
    expect_fail(doc, patch, HVG_ESTATE, "/0", "not equal");
  }

  /* cJSON numbers (integers of a checked tree, or built by code) */
  cJSON *d = cJSON_CreateObject();
  assert_non_null(d);
  cJSON_AddNumberToObject(d, "i", 3);
  cJSON_AddNumberToObject(d, "d", 0.1);
  cJSON_AddNumberToObject(d, "big", 1e20);
  fhir_patch *p = patch_of("[{\"op\":\"test\",\"path\":\"/i\",\"value\":3.0},"
                           "{\"op\":\"test\",\"path\":\"/d\",\"value\":1e-1},"
                           "{\"op\":\"test\",\"path\":\"/big\",\"value\":"
                           "100000000000000000000}]");
  assert_int_equal(fhir_patch_apply(p, &d, NULL), 0);
  fhir_patch_free(p);
  p = patch_of("[{\"op\":\"test\",\"path\":\"/i\",\"value\":3.5}]");
  assert_int_equal(fhir_patch_apply(p, &d, NULL), HVG_ESTATE);
  fhir_patch_free(p);
  cJSON_Delete(d);

  /* objects larger than the pair-by-pair limit: any order, by value */
  char big[2048], same[2048], other[2048];
  size_t a = 0, b = 0, c = 0;
  a += (size_t)snprintf(big + a, sizeof big - a, "{");
  b += (size_t)snprintf(same + b, sizeof same - b,
                        "[{\"op\":\"test\","
                        "\"path\":\"\",\"value\":{");
  c += (size_t)snprintf(other + c, sizeof other - c,
                        "[{\"op\":\"test\",\"path\":\"\",\"value\":{");
  for (int i = 0; i < 40; i++) {
    a += (size_t)snprintf(big + a, sizeof big - a, "%s\"k%d\":[%d]",
                          i ? "," : "", i, i);
    b += (size_t)snprintf(same + b, sizeof same - b, "%s\"k%d\":[%d.0]",
                          i ? "," : "", 39 - i, 39 - i);
    c += (size_t)snprintf(other + c, sizeof other - c, "%s\"k%d\":[%d]",
                          i ? "," : "", 39 - i, i == 20 ? 0 : 39 - i);
  }
  snprintf(big + a, sizeof big - a, "}");
  snprintf(same + b, sizeof same - b, "}}]");
  snprintf(other + c, sizeof other - c, "}}]");
  expect_ok(big, same, big);
  expect_fail(big, other, HVG_ESTATE, "/0", "test path '': the value is not");
}

/* ---- decimals keep their text ------------------------------------------- */

static void test_decimals(void **state) {
  (void)state;
  cJSON *t = task();
  fhir_patch *p = patch_of(
      "[{\"op\":\"add\",\"path\":\"/input/1/valueDecimal\",\"value\":1.50},"
      "{\"op\":\"remove\",\"path\":\"/input/1/valueInteger\"},"
      "{\"op\":\"replace\",\"path\":\"/input/0/valueDecimal\",\"value\":"
      "2.500e1},"
      "{\"op\":\"copy\",\"from\":\"/input/1\",\"path\":\"/input/-\"}]");
  hvg_err err;
  assert_int_equal(fhir_patch_apply(p, &t, &err), 0);
  const cJSON *in = cJSON_GetObjectItemCaseSensitive(t, "input");
  const cJSON *v1 = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(in, 1),
                                                     "valueDecimal");
  assert_true(cJSON_IsRaw(v1));
  assert_string_equal(v1->valuestring, "1.50");
  assert_string_equal(cJSON_GetObjectItemCaseSensitive(
                          cJSON_GetArrayItem(in, 0), "valueDecimal")
                          ->valuestring,
                      "2.500e1");
  assert_string_equal(cJSON_GetObjectItemCaseSensitive(
                          cJSON_GetArrayItem(in, 2), "valueDecimal")
                          ->valuestring,
                      "1.50");
  /* what the caller does next: serialize and check it again as FHIR */
  hvg_buf b;
  hvg_buf_init(&b, 1 << 20);
  assert_int_equal(fhir_json_serialize(t, FHIR_JSON, 0, &b, &err), 0);
  assert_non_null(strstr(b.data, "\"valueDecimal\":1.50}"));
  assert_non_null(strstr(b.data, "\"valueDecimal\":2.500e1}"));
  cJSON *back;
  assert_int_equal(fhir_json_parse(b.data, b.len, b.len, &back, &err), 0);
  assert_true(fhir_json_equal(back, t));
  cJSON_Delete(back);
  hvg_buf_free(&b);
  fhir_patch_free(p);
  cJSON_Delete(t);
}

/* ---- the realistic patch, atomicity --------------------------------------
 */

static void test_task_and_atomicity(void **state) {
  (void)state;
  cJSON *t = task();
  fhir_patch *p = patch_of(task_patch);
  hvg_err err;
  if (fhir_patch_apply(p, &t, &err))
    fail_msg("%s: %s", err.field, err.msg);
  char *s = print(t);
  assert_string_equal(s, task_patched);
  cJSON *again;
  assert_int_equal(fhir_json_parse(s, strlen(s), strlen(s), &again, &err), 0);
  cJSON_Delete(again);
  free(s);
  fhir_patch_free(p);
  cJSON_Delete(t);

  /* the 3rd operation fails: the first two are undone */
  t = task();
  cJSON *before = t;
  char *t0 = print(t);
  p = patch_of("[{\"op\":\"replace\",\"path\":\"/status\",\"value\":"
               "\"accepted\"},"
               "{\"op\":\"add\",\"path\":\"/note/-\",\"value\":{\"text\":"
               "\"x\"}},"
               "{\"op\":\"remove\",\"path\":\"/note/5\"},"
               "{\"op\":\"remove\",\"path\":\"/id\"}]");
  assert_int_equal(fhir_patch_apply(p, &t, &err), HVG_EFORMAT);
  assert_string_equal(err.field, "/2");
  assert_string_equal(
      err.msg, "remove path '/note/5': index 5 is out of range (array of 2)");
  assert_ptr_equal(t, before);
  s = print(t);
  assert_string_equal(s, t0);
  free(s);
  fhir_patch_free(p);
  /* and whatever fails: a test, a missing member, a move into a child */
  static const char *const third[] = {
      "{\"op\":\"test\",\"path\":\"/status\",\"value\":\"accepted\"}",
      "{\"op\":\"remove\",\"path\":\"/partOf\"}",
      "{\"op\":\"move\",\"from\":\"/owner\",\"path\":\"/owner/x\"}",
      "{\"op\":\"copy\",\"from\":\"/nothing\",\"path\":\"/x\"}",
  };
  static const int codes[] = {HVG_ESTATE, HVG_ENOTFOUND, HVG_EFORMAT,
                              HVG_ENOTFOUND};
  for (size_t i = 0; i < sizeof third / sizeof third[0]; i++) {
    char patch[512];
    snprintf(patch, sizeof patch,
             "[{\"op\":\"remove\",\"path\":\"/owner\"},"
             "{\"op\":\"add\",\"path\":\"/owner\",\"value\":{\"display\":"
             "\"y\"}},%s]",
             third[i]);
    p = patch_of(patch);
    assert_int_equal(fhir_patch_apply(p, &t, &err), codes[i]);
    assert_string_equal(err.field, "/2");
    assert_ptr_equal(t, before);
    s = print(t);
    assert_string_equal(s, t0);
    free(s);
    fhir_patch_free(p);
  }
  free(t0);
  cJSON_Delete(t);
}

/* ---- every error ------------------------------------------------------- */

static void test_parse_errors(void **state) {
  (void)state;
  expect_parse_fail("[{\"op\":\"add\",", HVG_ESYNTAX, "",
                    "line 1, column 14: expected a string (member name)");
  expect_parse_fail("[\n  {\"op\": }\n]", HVG_ESYNTAX, "",
                    "line 2, column 10: unexpected character");
  expect_parse_fail("[] []", HVG_ESYNTAX, "", "data after the JSON value");
  expect_parse_fail("[{\"op\":\"test\",\"path\":\"/a\",\"value\":01}]",
                    HVG_ESYNTAX, "", "invalid number");
  expect_parse_fail("[{\"op\":\"test\",\"path\":\"/a\",\"value\":\"\xc3\"}]",
                    HVG_EENCODING, "", "invalid UTF-8");
  expect_parse_fail("[{\"op\":\"test\",\"path\":\"/a\",\"value\":\"\xed\xa0"
                    "\x80\"}]",
                    HVG_EENCODING, "", "invalid UTF-8");
  expect_parse_fail("[{\"op\":\"test\",\"path\":\"/a\",\"value\":\"\\u0001\"}]",
                    HVG_EFORMAT, "", "character not allowed in FHIR");
  expect_parse_fail("{\"op\":\"remove\",\"path\":\"/a\"}", HVG_EFORMAT, "",
                    "a JSON Patch must be an array of operations, not an "
                    "object");
  expect_parse_fail("[{\"op\":\"remove\",\"path\":\"/a\"},1]", HVG_EFORMAT,
                    "/1", "an operation must be an object, not a number");
  expect_parse_fail("[{\"path\":\"/a\"}]", HVG_EFORMAT, "/0/op",
                    "\"op\" is missing");
  expect_parse_fail("[{\"op\":null,\"path\":\"/a\"}]", HVG_EFORMAT, "/0/op",
                    "must be a string, not null");
  expect_parse_fail("[{\"op\":\"Add\",\"path\":\"/a\",\"value\":1}]",
                    HVG_EFORMAT, "/0/op",
                    "unknown operation 'Add' (add, remove, replace, move, "
                    "copy or test)");
  expect_parse_fail("[{\"op\":\"remove\",\"path\":\"/a\"},{\"op\":\"remove\"}"
                    "]",
                    HVG_EFORMAT, "/1/path", "\"path\" is missing");
  expect_parse_fail("[{\"op\":\"remove\",\"path\":[\"a\"]}]", HVG_EFORMAT,
                    "/0/path",
                    "must be a string (a JSON Pointer), not an "
                    "array");
  expect_parse_fail("[{\"op\":\"add\",\"path\":\"/a\"}]", HVG_EFORMAT,
                    "/0/value", "\"value\" is missing");
  expect_parse_fail("[{\"op\":\"replace\",\"path\":\"/a\",\"from\":\"/b\"}]",
                    HVG_EFORMAT, "/0/value", "\"value\" is missing");
  expect_parse_fail("[{\"op\":\"test\",\"path\":\"/a\"}]", HVG_EFORMAT,
                    "/0/value", "\"value\" is missing");
  expect_parse_fail("[{\"op\":\"move\",\"path\":\"/a\",\"value\":1}]",
                    HVG_EFORMAT, "/0/from", "\"from\" is missing");
  expect_parse_fail("[{\"op\":\"copy\",\"path\":\"/a\",\"from\":false}]",
                    HVG_EFORMAT, "/0/from", "not a boolean");
  /* duplicate keys anywhere, pointed at (escaped) */
  expect_parse_fail("[{\"op\":\"add\",\"path\":\"/a\",\"value\":{\"x/y\":[0,"
                    "{\"k\":1,\"k\":2}]}}]",
                    HVG_EFORMAT, "/0/value/x~1y/1/k", "duplicate key 'k'");
  expect_parse_fail("[{\"op\":\"remove\",\"path\":\"/a\",\"path\":\"/b\"}]",
                    HVG_EFORMAT, "/0/path", "duplicate key 'path'");
  {
    char dup[1024];
    size_t n = (size_t)snprintf(dup, sizeof dup,
                                "[{\"op\":\"test\",\"path\":\"\",\"value\":{");
    for (int i = 0; i < 30; i++)
      n += (size_t)snprintf(dup + n, sizeof dup - n, "\"k%d\":0,", i);
    snprintf(dup + n, sizeof dup - n, "\"k7\":1}}]");
    expect_parse_fail(dup, HVG_EFORMAT, "/0/value/k7", "duplicate key 'k7'");
  }
  /* bad arguments */
  fhir_patch *p = NULL;
  hvg_err err;
  assert_int_equal(fhir_patch_parse(NULL, 0, 10, &p, &err), HVG_EINVAL);
  assert_int_equal(fhir_patch_parse("[]", 2, 10, NULL, &err), HVG_EINVAL);
  assert_int_equal(fhir_patch_parse("[]", 2, 10, &p, NULL), 0);
  assert_non_null(p);
  fhir_patch_free(p);
}

static void test_apply_errors(void **state) {
  (void)state;
  const char *doc = "{\"a\":{\"b\":[1,2]},\"s\":\"x\"}";
  expect_fail(doc,
              "[{\"op\":\"test\",\"path\":\"/s\",\"value\":\"x\"},"
              "{\"op\":\"test\",\"path\":\"/a/b/1\",\"value\":3}]",
              HVG_ESTATE, "/1", "test path '/a/b/1': the value is not equal");
  expect_fail(doc, "[{\"op\":\"test\",\"path\":\"/c\",\"value\":1}]",
              HVG_ENOTFOUND, "/0", "test path '/c': no member 'c'");
  expect_fail(doc, "[{\"op\":\"remove\",\"path\":\"/a/c\"}]", HVG_ENOTFOUND,
              "/0", "remove path '/a/c': no member 'c'");
  expect_fail(doc, "[{\"op\":\"replace\",\"path\":\"/x\",\"value\":1}]",
              HVG_ENOTFOUND, "/0", "replace path '/x': no member 'x'");
  expect_fail(doc, "[{\"op\":\"move\",\"from\":\"/x\",\"path\":\"/y\"}]",
              HVG_ENOTFOUND, "/0", "move from '/x': no member 'x'");
  expect_fail(doc, "[{\"op\":\"copy\",\"from\":\"/a/x\",\"path\":\"/y\"}]",
              HVG_ENOTFOUND, "/0", "copy from '/a/x': no member 'x'");
  expect_fail(doc, "[{\"op\":\"move\",\"from\":\"/s\",\"path\":\"/q/r\"}]",
              HVG_ENOTFOUND, "/0", "move path '/q/r': no member 'q'");
  expect_fail(doc, "[{\"op\":\"copy\",\"from\":\"/s\",\"path\":\"/a/b/5\"}]",
              HVG_EFORMAT, "/0", "copy path '/a/b/5': index 5 is out of range");
  expect_fail(doc, "[{\"op\":\"remove\",\"path\":\"\"}]", HVG_EFORMAT, "/0",
              "remove path '': cannot remove the whole document");
  expect_fail(doc, "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a/b/0\"}]",
              HVG_EFORMAT, "/0",
              "move path '/a/b/0': cannot move a value into its own child "
              "(from '/a')");
  expect_fail(doc, "[{\"op\":\"move\",\"from\":\"\",\"path\":\"/z\"}]",
              HVG_EFORMAT, "/0", "cannot move a value into its own child");

  fhir_patch *p = patch_of("[]");
  cJSON *d = NULL;
  hvg_err err;
  assert_int_equal(fhir_patch_apply(p, &d, &err), HVG_EINVAL);
  assert_int_equal(fhir_patch_apply(p, NULL, &err), HVG_EINVAL);
  assert_int_equal(fhir_patch_apply(NULL, &d, &err), HVG_EINVAL);
  assert_string_equal(err.field, "");
  fhir_patch_free(p);
}

/* ---- limits -------------------------------------------------------------- */

static char *repeat(const char *head, const char *item, int n, const char *sep,
                    const char *tail) {
  size_t len = strlen(head) + strlen(tail) + (size_t)n * (strlen(item) + 1);
  char *s = malloc(len + 1);
  assert_non_null(s);
  size_t o = 0;
  o += (size_t)sprintf(s + o, "%s", head);
  for (int i = 0; i < n; i++)
    o += (size_t)sprintf(s + o, "%s%s", i ? sep : "", item);
  sprintf(s + o, "%s", tail);
  return s;
}

static void test_limits(void **state) {
  (void)state;
  hvg_err err;
  fhir_patch *p;
  /* operations */
  const char *op = "{\"op\":\"test\",\"path\":\"\",\"value\":{}}";
  char *s = repeat("[", op, FHIR_PATCH_MAX_OPS, ",", "]");
  assert_int_equal(fhir_patch_parse(s, strlen(s), strlen(s), &p, &err), 0);
  cJSON *d = doc_of("{}");
  assert_int_equal(fhir_patch_apply(p, &d, &err), 0);
  cJSON_Delete(d);
  fhir_patch_free(p);
  free(s);
  s = repeat("[", op, FHIR_PATCH_MAX_OPS + 1, ",", "]");
  expect_parse_fail_n(s, strlen(s), HVG_ETOOBIG, "",
                      "1001 operations, more than the 1000 allowed");
  free(s);
  /* input size */
  assert_int_equal(fhir_patch_parse("[ ]", 3, 2, &p, &err), HVG_ETOOBIG);
  assert_null(p);
  assert_string_equal(err.msg, "patch of 3 bytes is larger than the 2 allowed");
  /* pointer length */
  s = repeat("[{\"op\":\"remove\",\"path\":\"", "/a",
             FHIR_PATCH_MAX_POINTER / 2, "", "\"}]");
  assert_int_equal(fhir_patch_parse(s, strlen(s), strlen(s), &p, &err), 0);
  fhir_patch_free(p);
  free(s);
  s = repeat("[{\"op\":\"remove\",\"path\":\"/", "/a",
             FHIR_PATCH_MAX_POINTER / 2, "", "\"}]");
  expect_parse_fail_n(s, strlen(s), HVG_ETOOBIG, "/0/path",
                      "JSON Pointer of 1025 bytes, longer than the 1024 "
                      "allowed");
  free(s);
  /* nesting of the patch: the array and the operation take two levels */
  char head[64];
  snprintf(head, sizeof head, "[{\"op\":\"add\",\"path\":\"\",\"value\":");
  s = repeat(head, "[", FHIR_PARSE_MAX_DEPTH - 2, "", "");
  char *t = repeat(s, "]", FHIR_PARSE_MAX_DEPTH - 2, "", "}]");
  assert_int_equal(fhir_patch_parse(t, strlen(t), strlen(t), &p, &err), 0);
  d = doc_of("{}");
  assert_int_equal(fhir_patch_apply(p, &d, &err), 0);
  assert_true(cJSON_IsArray(d));
  cJSON_Delete(d);
  fhir_patch_free(p);
  free(s);
  free(t);
  s = repeat(head, "[", FHIR_PARSE_MAX_DEPTH - 1, "", "");
  t = repeat(s, "]", FHIR_PARSE_MAX_DEPTH - 1, "", "}]");
  expect_parse_fail(t, HVG_ETOOBIG, "", "nested deeper than");
  free(s);
  free(t);

  /* a document deeper than the cap is refused whole */
  d = cJSON_CreateArray();
  cJSON *inner = d;
  for (int i = 1; i < FHIR_PARSE_MAX_DEPTH + 1; i++) {
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(inner, a);
    inner = a;
  }
  p = patch_of("[{\"op\":\"test\",\"path\":\"/0\",\"value\":1}]");
  assert_int_equal(fhir_patch_apply(p, &d, &err), HVG_ETOOBIG);
  assert_string_equal(err.field, "");
  assert_string_equal(err.msg, "the document nests deeper than 48 levels");
  fhir_patch_free(p);
  cJSON_Delete(d);

  /* a document may not grow deeper than the cap: 40 nested arrays, then 8
   * more at the innermost one make 48, 9 more are too many */
  s = repeat("", "[", 40, "", "");
  t = repeat(s, "]", 40, "", "");
  char *path = repeat("", "/0", 39, "", "/-");
  for (int extra = 8; extra <= 9; extra++) {
    char *v1 = repeat("", "[", extra, "", "");
    char *v2 = repeat(v1, "]", extra, "", "");
    char *pt = malloc(strlen(path) + strlen(v2) + 256);
    assert_non_null(pt);
    sprintf(pt, "[{\"op\":\"add\",\"path\":\"%s\",\"value\":%s}]", path, v2);
    if (extra == 8) {
      char *want = repeat(s, "[", 8, "", "");
      char *want2 = repeat(want, "]", 48, "", "");
      expect_ok(t, pt, want2);
      free(want);
      free(want2);
    } else {
      expect_fail(t, pt, HVG_ETOOBIG, "/0",
                  "the document would nest deeper than 48 levels");
      /* moving or copying a subtree deeper is refused the same way */
      sprintf(pt,
              "[{\"op\":\"add\",\"path\":\"/0/1\",\"value\":%s},"
              "{\"op\":\"copy\",\"from\":\"/0/1\",\"path\":\"%s\"}]",
              v2, path);
      expect_fail(t, pt, HVG_ETOOBIG, "/1", "copy path");
      sprintf(pt,
              "[{\"op\":\"add\",\"path\":\"/0/1\",\"value\":%s},"
              "{\"op\":\"move\",\"from\":\"/0/1\",\"path\":\"%s\"}]",
              v2, path);
      expect_fail(t, pt, HVG_ETOOBIG, "/1", "move path");
    }
    free(v1);
    free(v2);
    free(pt);
  }
  free(path);
  free(s);
  free(t);

  /* copies cannot double a document again and again: a 1 MiB string may be
   * copied 15 times within FHIR_PATCH_MAX_COPY, not 16 */
  size_t big = (size_t)1 << 20;
  char *str = malloc(big + 1);
  assert_non_null(str);
  memset(str, 'x', big);
  str[big] = '\0';
  d = cJSON_CreateObject();
  assert_non_null(cJSON_AddStringToObject(d, "a", str));
  free(str);
  cJSON *before = d;
  s = repeat("[", "{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/b\"}", 20, ",",
             "]");
  p = patch_of(s);
  assert_int_equal(fhir_patch_apply(p, &d, &err), HVG_ETOOBIG);
  assert_string_equal(err.field, "/15");
  assert_non_null(strstr(err.msg, "copy from '/a': copies would add more"));
  assert_ptr_equal(d, before);
  assert_null(cJSON_GetObjectItemCaseSensitive(d, "b"));
  fhir_patch_free(p);
  free(s);
  s = repeat("[", "{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/b\"}", 15, ",",
             "]");
  p = patch_of(s);
  assert_int_equal(fhir_patch_apply(p, &d, &err), 0);
  assert_int_equal(
      strlen(cJSON_GetObjectItemCaseSensitive(d, "b")->valuestring), big);
  fhir_patch_free(p);
  free(s);
  cJSON_Delete(d);
}

/* ---- allocation failures -------------------------------------------------
 */

/* Parse task_patch and apply it to a fresh Task with the fail_at-th
 * allocation failing. Returns 0 (then the Task must be task_patched) or
 * HVG_ENOMEM (the Task unchanged); anything else fails the test. */
static int torture_run(long fail) {
  fail_at = -1;
  cJSON *t = task(), *before = t;
  char *t0 = print(t);
  hvg_err err;
  fhir_patch *p = NULL;
  fail_at = fail;
  alloc_count = 0;
  int rc = fhir_patch_parse(task_patch, strlen(task_patch),
                            FHIR_PATCH_MAX_INPUT, &p, &err);
  int prc = rc;
  if (!rc)
    rc = fhir_patch_apply(p, &t, &err);
  fail_at = -1;
  if (rc != 0 && rc != HVG_ENOMEM)
    fail_msg("allocation %ld: %s %s: %s", fail, hvg_err_name(rc), err.field,
             err.msg);
  assert_int_equal(err.code == rc || rc == 0, 1);
  if (prc)
    assert_null(p);
  char *t1 = print(t);
  if (rc) {
    assert_ptr_equal(t, before);
    assert_string_equal(t1, t0);
  } else {
    assert_string_equal(t1, task_patched);
  }
  free(t0);
  free(t1);
  fhir_patch_free(p);
  cJSON_Delete(t);
  return rc;
}

static void test_allocation_failures(void **state) {
  (void)state;
  /* count the allocations of a whole run (none fails) */
  assert_int_equal(torture_run(1L << 40), 0);
  long total = alloc_count;
  assert_true(total > 100);
  /* every allocation is needed: failing any of them is a clean HVG_ENOMEM */
  for (long i = 0; i < total; i++)
    assert_int_equal(torture_run(i), HVG_ENOMEM);
  assert_int_equal(torture_run(total), 0);

  /* equality of large objects allocates too */
  fail_at = -1;
  char doc[1024], patch[1100];
  size_t n = (size_t)snprintf(doc, sizeof doc, "{");
  for (int i = 0; i < 20; i++)
    n += (size_t)snprintf(doc + n, sizeof doc - n, "%s\"k%d\":%d", i ? "," : "",
                          i, i);
  snprintf(doc + n, sizeof doc - n, "}");
  snprintf(patch, sizeof patch,
           "[{\"op\":\"test\",\"path\":\"\",\"value\":%s}]", doc);
  fhir_patch *p = patch_of(patch);
  for (long i = 0; i < 2; i++) {
    cJSON *d = doc_of(doc);
    hvg_err err;
    fail_at = i;
    alloc_count = 0;
    int rc = fhir_patch_apply(p, &d, &err);
    fail_at = -1;
    assert_int_equal(rc, HVG_ENOMEM);
    assert_string_equal(err.field, "/0");
    assert_string_equal(err.msg, "test: out of memory");
    cJSON_Delete(d);
  }
  fhir_patch_free(p);
}

static int route_cjson(void **state) {
  (void)state;
  /* cJSON lives in a shared library, out of --wrap's reach: send its
   * allocations through our (wrapped) malloc */
  cJSON_Hooks h = {malloc, free};
  cJSON_InitHooks(&h);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfc6902_appendix_a),
      cmocka_unit_test(test_operations),
      cmocka_unit_test(test_pointers),
      cmocka_unit_test(test_equality),
      cmocka_unit_test(test_decimals),
      cmocka_unit_test(test_task_and_atomicity),
      cmocka_unit_test(test_parse_errors),
      cmocka_unit_test(test_apply_errors),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_allocation_failures),
  };
  return cmocka_run_group_tests(tests, route_cjson, NULL);
}
