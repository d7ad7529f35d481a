/* fhir_writer and fhir_build: exact JSON and XML output, FHIR's "no empty
 * values" rules, sticky errors, and builders refusing bad input unwritten. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fhir_build.h"
#include "fhir_check.h"
#include "fhir_uuid.h"

#include <stdio.h>
#include <string.h>

static void patient(fhir_writer *w) {
  fhir_w_resource_begin(w, NULL, "Patient");
  fhir_w_string(w, "id", "p1");
  fhir_w_array_begin(w, "extension");
  fhir_w_object_begin(w, NULL);
  fhir_w_string(w, "url", "http://x/e");
  fhir_w_string(w, "valueString", "a\"<&\n");
  fhir_w_object_end(w);
  fhir_w_array_end(w);
  fhir_w_array_begin(w, "identifier");
  fhir_w_object_begin(w, NULL);
  fhir_w_string(w, "id", "i1");
  fhir_w_string(w, "system", "s");
  fhir_w_string(w, "value", "v");
  fhir_w_object_end(w);
  fhir_w_array_end(w);
  fhir_w_array_begin(w, "telecom"); /* empty: must vanish */
  fhir_w_object_begin(w, NULL);
  fhir_w_string(w, "value", "");
  fhir_w_object_end(w);
  fhir_w_array_end(w);
  fhir_w_array_begin(w, "name");
  fhir_w_object_begin(w, NULL);
  fhir_w_array_begin(w, "given");
  fhir_w_string(w, NULL, "A");
  fhir_w_string(w, NULL, "B");
  fhir_w_array_end(w);
  fhir_w_object_end(w);
  fhir_w_array_end(w);
  fhir_w_bool(w, "active", 1);
  fhir_w_resource_end(w);
}

static void test_json_exact(void **state) {
  (void)state;
  hvg_buf b;
  hvg_buf_init(&b, 4096);
  fhir_writer w;
  fhir_w_init(&w, &b, FHIR_JSON, 0);
  patient(&w);
  assert_int_equal(fhir_w_finish(&w), 0);
  assert_string_equal(
      b.data,
      "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"extension\":[{\"url\":"
      "\"http://x/e\",\"valueString\":\"a\\\"<&\\n\"}],\"identifier\":[{\"id\":"
      "\"i1\",\"system\":\"s\",\"value\":\"v\"}],\"name\":[{\"given\":[\"A\","
      "\"B\"]}],\"active\":true}");
  hvg_buf_free(&b);
}

static void test_xml_exact(void **state) {
  (void)state;
  hvg_buf b;
  hvg_buf_init(&b, 4096);
  fhir_writer w;
  fhir_w_init(&w, &b, FHIR_XML, FHIR_W_NO_XMLDECL);
  patient(&w);
  assert_int_equal(fhir_w_finish(&w), 0);
  assert_string_equal(
      b.data,
      "<Patient xmlns=\"http://hl7.org/fhir\"><id value=\"p1\"/><extension "
      "url=\"http://x/e\"><valueString value=\"a&quot;&lt;&amp;&#10;\"/>"
      "</extension><identifier id=\"i1\"><system value=\"s\"/><value "
      "value=\"v\"/></identifier><name><given value=\"A\"/><given "
      "value=\"B\"/></name><active value=\"true\"/></Patient>");
  hvg_buf_free(&b);
}

static void test_nested_resource_xml(void **state) {
  (void)state;
  hvg_buf b;
  hvg_buf_init(&b, 4096);
  fhir_writer w;
  fhir_w_init(&w, &b, FHIR_XML, FHIR_W_NO_XMLDECL);
  hvg_err err;
  assert_int_equal(fhir_bundle_begin(&w, NULL, "collection", NULL, &err), 0);
  fhir_bundle_entry_begin(&w, "urn:uuid:x");
  fhir_organization o = {&(fhir_identifier){"urn:s", "1"}, "Org"};
  assert_int_equal(fhir_organization_write(&w, &o, &err), 0);
  assert_int_equal(fhir_bundle_entry_end(&w, NULL, &err), 0);
  fhir_bundle_end(&w);
  assert_int_equal(fhir_w_finish(&w), 0);
  assert_non_null(strstr(b.data, "<entry><fullUrl value=\"urn:uuid:x\"/>"
                                 "<resource><Organization><identifier>"));
  assert_non_null(strstr(b.data, "</Organization></resource></entry>"));
  hvg_buf_free(&b);
}

static void test_sticky_errors(void **state) {
  (void)state;
  hvg_buf b;
  hvg_buf_init(&b, 40); /* too small on purpose */
  fhir_writer w;
  fhir_w_init(&w, &b, FHIR_JSON, 0);
  patient(&w);
  assert_int_equal(fhir_w_finish(&w), HVG_ETOOBIG);
  assert_true(b.len <= 40);
  hvg_buf_free(&b);

  hvg_buf_init(&b, 4096);
  fhir_w_init(&w, &b, FHIR_JSON, 0);
  fhir_w_resource_begin(&w, NULL, "Observation");
  fhir_w_number(&w, "valueDecimal", "1.5.2");
  assert_int_equal(fhir_w_error(&w), HVG_EFORMAT);
  fhir_w_init(&w, &b, FHIR_JSON, 0);
  fhir_w_resource_begin(&w, NULL, "Observation");
  assert_int_equal(fhir_w_finish(&w), HVG_ESTATE); /* unbalanced */
  fhir_w_init(&w, &b, FHIR_XML, 0);
  fhir_w_resource_begin(&w, NULL, "Patient");
  fhir_w_string(&w, "name", "bad\x01control");
  assert_int_equal(fhir_w_error(&w), HVG_EENCODING);
  hvg_buf_free(&b);
}

/* The escapes RFC 8259 requires, byte by byte: what the writer's chunked
 * scan must agree with. */
static void json_ref(hvg_buf *b, const char *name, const char *v, size_t n) {
  hvg_buf_printf(b, ",\"%s\":\"", name);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if (c == '"')
      hvg_buf_adds(b, "\\\"");
    else if (c == '\\')
      hvg_buf_adds(b, "\\\\");
    else if (c == '\n')
      hvg_buf_adds(b, "\\n");
    else if (c == '\r')
      hvg_buf_adds(b, "\\r");
    else if (c == '\t')
      hvg_buf_adds(b, "\\t");
    else if (c < 0x20)
      hvg_buf_printf(b, "\\u%04x", c);
    else
      hvg_buf_addc(b, (char)c);
  }
  hvg_buf_addc(b, '"');
}

/* Strings of every length up to 70 with a byte that needs escaping (or
 * none) at every position, and UTF-8: the same bytes as the reference. */
static void test_json_escapes(void **state) {
  (void)state;
  static const char special[] = {'"', '\\', '\n', '\r', '\t', 1, 0x1f, 'x'};
  hvg_buf b, ref;
  hvg_buf_init(&b, 1 << 20);
  hvg_buf_init(&ref, 1 << 20);
  char v[80];
  for (size_t n = 1; n <= 70; n++) {
    for (size_t at = 0; at <= n; at++) {
      for (size_t k = 0; k < sizeof special; k++) {
        for (size_t i = 0; i < n; i++)
          v[i] = (char)(i % 3 == 2 ? 0xc3 : i % 3 ? 0xa9 : 'a' + (char)(i % 26));
        if (at < n)
          v[at] = special[k];
        if (at + 1 < n)
          v[at + 1] = special[(k + 3) % sizeof special];
        hvg_buf_reset(&b);
        hvg_buf_reset(&ref);
        fhir_writer w;
        fhir_w_init(&w, &b, FHIR_JSON, 0);
        fhir_w_resource_begin(&w, NULL, "Basic");
        fhir_w_stringn(&w, "text", v, n);
        fhir_w_resource_end(&w);
        assert_int_equal(fhir_w_finish(&w), 0);
        hvg_buf_adds(&ref, "{\"resourceType\":\"Basic\"");
        json_ref(&ref, "text", v, n);
        hvg_buf_addc(&ref, '}');
        assert_int_equal(b.len, ref.len);
        assert_memory_equal(b.data, ref.data, ref.len);
      }
    }
  }
  hvg_buf_free(&b);
  hvg_buf_free(&ref);
}

/* Under every size cap, the writer either writes the whole document or
 * fails with HVG_ETOOBIG without passing the cap, whether it writes through
 * reserved room or appends piece by piece. */
static void test_every_cap(void **state) {
  (void)state;
  hvg_buf full;
  hvg_buf_init(&full, 4096);
  fhir_writer w;
  fhir_w_init(&w, &full, FHIR_JSON, 0);
  patient(&w);
  assert_int_equal(fhir_w_finish(&w), 0);
  for (size_t cap = 0; cap <= full.len + 8; cap++) {
    hvg_buf b;
    hvg_buf_init(&b, cap);
    fhir_w_init(&w, &b, FHIR_JSON, 0);
    patient(&w);
    int rc = fhir_w_finish(&w);
    assert_true(b.len <= cap);
    if (cap >= full.len) {
      assert_int_equal(rc, 0);
      assert_string_equal(b.data, full.data);
    } else {
      assert_int_equal(rc, HVG_ETOOBIG);
      if (b.len) /* what was written is the document's beginning */
        assert_memory_equal(b.data, full.data, b.len);
    }
    hvg_buf_free(&b);
  }
  hvg_buf_free(&full);
}

static void test_builder_refuses_unwritten(void **state) {
  (void)state;
  hvg_buf b;
  hvg_buf_init(&b, 4096);
  fhir_writer w;
  fhir_w_init(&w, &b, FHIR_JSON, 0);
  hvg_err err;
  fhir_concept code = {NULL, 0, "x"};
  fhir_ref subj = {"urn:uuid:a", NULL, NULL, NULL};
  fhir_observation o = {0};
  o.status = "done"; /* not in ObservationStatus */
  o.code = &code;
  o.subject = &subj;
  assert_int_equal(fhir_observation_write(&w, &o, &err), HVG_EUNKNOWN);
  assert_string_equal(err.field, "Observation.status");
  assert_int_equal(b.len, 0);
  o.status = "final";
  o.effective = "2026-02-30";
  assert_int_equal(fhir_observation_write(&w, &o, &err), HVG_EFORMAT);
  assert_int_equal(b.len, 0);
  o.effective = "2026-02-28";
  o.value_integer = "12x";
  assert_int_equal(fhir_observation_write(&w, &o, &err), HVG_EFORMAT);
  o.value_integer = "12";
  assert_int_equal(fhir_observation_write(&w, &o, &err), 0);
  assert_non_null(strstr(b.data, "\"valueInteger\":12"));
  hvg_buf_free(&b);
}

static void test_checks(void **state) {
  (void)state;
  assert_true(fhir_check_date("2024"));
  assert_true(fhir_check_date("2024-02"));
  assert_true(fhir_check_date("2024-02-29"));
  assert_false(fhir_check_date("2026-02-29"));
  assert_false(fhir_check_date("2026-02-30"));
  assert_false(fhir_check_date("2026-13-01"));
  assert_false(fhir_check_date("26-01-01"));
  assert_true(fhir_check_datetime("2026-01-01T10:00:00Z"));
  assert_true(fhir_check_datetime("2026-01-01T10:00:00.123+05:30"));
  assert_false(fhir_check_datetime("2026-01-01T10:00:00"));
  assert_false(fhir_check_datetime("2026-01-01T25:00:00Z"));
  assert_true(fhir_check_instant("2026-01-01T10:00:00Z"));
  assert_false(fhir_check_instant("2026-01-01"));
  assert_true(fhir_check_code("in-progress"));
  assert_true(fhir_check_code("a b"));
  assert_false(fhir_check_code(" a"));
  assert_false(fhir_check_code("a  b"));
  assert_false(fhir_check_code(""));
  assert_true(fhir_check_id("abc-1.2"));
  assert_false(fhir_check_id("a_b"));
  assert_false(fhir_check_uri(""));
  assert_false(fhir_check_uri(NULL));
  /* white space at every position of URIs of every length to 40 */
  char uri[48];
  for (size_t n = 1; n <= 40; n++) {
    for (size_t i = 0; i < n; i++)
      uri[i] = (char)('!' + (i * 7) % 94); /* printable, no space */
    uri[n] = '\0';
    assert_true(fhir_check_uri(uri));
    for (size_t at = 0; at < n; at++) {
      static const char ws[] = {' ', '\t', '\n', '\r'};
      char keep = uri[at];
      for (size_t k = 0; k < sizeof ws; k++) {
        uri[at] = ws[k];
        assert_false(fhir_check_uri(uri));
      }
      uri[at] = '\x01'; /* other control characters are not white space */
      assert_true(fhir_check_uri(uri));
      uri[at] = keep;
    }
  }
  long d;
  assert_int_equal(fhir_date_days("1970-01-02", &d), 0);
  assert_int_equal(d, 1);
  assert_int_equal(fhir_date_days("2000-03-01", &d), 0);
  assert_int_equal(d, 11017);
}

static void test_uuid5(void **state) {
  (void)state;
  /* RFC 4122 DNS namespace, name "python.org": a published test vector */
  static const unsigned char dns[16] = {0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad,
                                        0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0,
                                        0x4f, 0xd4, 0x30, 0xc8};
  char out[FHIR_UUID_LEN + 1];
  assert_int_equal(fhir_uuid5(NULL, dns, "python.org", 10, out), 0);
  assert_string_equal(out, "886313e1-3b8a-5372-9b90-0c9aee199e5d");
  char a[FHIR_URN_UUID_SIZE], b[FHIR_URN_UUID_SIZE];
  fhir_uuid_gen *gen = fhir_uuid_gen_new();
  assert_non_null(gen);
  assert_int_equal(fhir_uuid5(gen, dns, "python.org", 10, b), 0);
  assert_string_equal(b, "886313e1-3b8a-5372-9b90-0c9aee199e5d");
  assert_int_equal(fhir_uuid_for_identifier(NULL, "Patient", "urn:s", "1", a), 0);
  assert_int_equal(fhir_uuid_for_identifier(gen, "Patient", "urn:s", "1", b), 0);
  assert_string_equal(a, b); /* deterministic */
  assert_int_equal(fhir_uuid_for_identifier(gen, "RelatedPerson", "urn:s", "1", b),
                   0);
  assert_string_not_equal(a, b); /* type is part of the name */
  assert_int_equal(strncmp(a, "urn:uuid:", 9), 0);
  /* the generator's cache of identifier ids: more names than it holds, each
   * asked for twice, ids equal to those made without it */
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < 3 * FHIR_UUID_CACHE; i += 7) {
      char value[32], sys[200];
      snprintf(value, sizeof value, "V%d", i);
      snprintf(sys, sizeof sys, "urn:sys:%0*d", i % 2 ? 150 : 1, i % 5);
      assert_int_equal(fhir_uuid_for_identifier(NULL, "Patient", sys, value, a),
                       0);
      assert_int_equal(fhir_uuid_for_identifier(gen, "Patient", sys, value, b),
                       0);
      assert_string_equal(a, b);
      assert_int_equal(fhir_uuid_for_identifier(gen, "Patient", sys, value, b),
                       0);
      assert_string_equal(a, b);
    }
  }
  fhir_uuid_gen_free(gen);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_json_exact),
      cmocka_unit_test(test_xml_exact),
      cmocka_unit_test(test_nested_resource_xml),
      cmocka_unit_test(test_sticky_errors),
      cmocka_unit_test(test_json_escapes),
      cmocka_unit_test(test_every_cap),
      cmocka_unit_test(test_builder_refuses_unwritten),
      cmocka_unit_test(test_checks),
      cmocka_unit_test(test_uuid5),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
