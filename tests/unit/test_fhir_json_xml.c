/* fhir_meta, fhir_json, fhir_xml: exact JSON -> tree -> XML -> tree -> JSON
 * round trips (handcrafted resources and every Bundle the gateway makes
 * from the sample export), the strict checks of both parsers, and the XML
 * parser's refusal of DOCTYPEs (XXE, external DTD, billion laughs,
 * parameter entities) without touching the file system or the network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the headers above first */
#include <cmocka.h>

#include "fhir_json.h"
#include "fhir_meta.h"
#include "fhir_xml.h"
#include "hvg_cli.h"
#include "hvg_jconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXIN ((size_t)64 << 20)

/* ---- helpers ------------------------------------------------------------ */

static char *to_text(const cJSON *t, fhir_format fmt, unsigned flags) {
  hvg_buf b;
  hvg_buf_init(&b, MAXIN);
  hvg_err e;
  hvg_err_clear(&e);
  int rc = fhir_json_serialize(t, fmt, flags, &b, &e);
  if (rc)
    fail_msg("serialize: %s: %s: %s", hvg_err_name(rc), e.field, e.msg);
  return hvg_buf_take(&b, NULL);
}

static cJSON *parse_json(const char *s) {
  hvg_err e;
  cJSON *t;
  int rc = fhir_json_parse(s, strlen(s), MAXIN, &t, &e);
  if (rc)
    fail_msg("JSON: %s: %s: %s", hvg_err_name(rc), e.field, e.msg);
  return t;
}

static cJSON *parse_xml(const char *s) {
  hvg_err e;
  cJSON *t;
  int rc = fhir_xml_parse(s, strlen(s), MAXIN, &t, &e);
  if (rc)
    fail_msg("XML: %s: %s: %s\n%s", hvg_err_name(rc), e.field, e.msg, s);
  return t;
}

/* JSON -> tree A -> XML -> tree B -> JSON: the JSON written from A and
 * from B are byte-identical, A equals B, and so for pretty output; the
 * canonical JSON reparses to itself. Returns the canonical JSON. */
static char *round_trip(const char *json) {
  cJSON *a = parse_json(json);
  char *j1 = to_text(a, FHIR_JSON, 0);
  unsigned xflags[] = {0, FHIR_W_PRETTY, FHIR_W_NO_XMLDECL};
  for (size_t i = 0; i < sizeof xflags / sizeof xflags[0]; i++) {
    char *x = to_text(a, FHIR_XML, xflags[i]);
    cJSON *b = parse_xml(x);
    char *j2 = to_text(b, FHIR_JSON, 0);
    assert_string_equal(j1, j2);
    assert_true(fhir_json_equal(a, b));
    /* and XML written from B is the XML written from A */
    char *x2 = to_text(b, FHIR_XML, xflags[i]);
    assert_string_equal(x, x2);
    free(x2);
    free(j2);
    free(x);
    cJSON_Delete(b);
  }
  char *pj = to_text(a, FHIR_JSON, FHIR_W_PRETTY);
  cJSON *c = parse_json(pj);
  assert_true(fhir_json_equal(a, c));
  cJSON_Delete(c);
  free(pj);
  c = parse_json(j1);
  char *j3 = to_text(c, FHIR_JSON, 0);
  assert_string_equal(j1, j3);
  free(j3);
  cJSON_Delete(c);
  cJSON_Delete(a);
  return j1;
}

/* Expect fhir_json_parse to fail with code at field. */
static void json_fails(const char *s, int code, const char *field) {
  hvg_err e;
  hvg_err_clear(&e);
  cJSON *t = (cJSON *)1;
  int rc = fhir_json_parse(s, strlen(s), MAXIN, &t, &e);
  if (rc != code || (field && strcmp(e.field, field)))
    fail_msg("%s\n  expected %s at '%s', got %s at '%s': %s", s,
             hvg_err_name(code), field ? field : "*", hvg_err_name(rc), e.field,
             e.msg);
  assert_null(t);
}

static void xml_fails(const char *s, int code, const char *field) {
  hvg_err e;
  hvg_err_clear(&e);
  cJSON *t = (cJSON *)1;
  int rc = fhir_xml_parse(s, strlen(s), MAXIN, &t, &e);
  if (rc != code || (field && strcmp(e.field, field)))
    fail_msg("%s\n  expected %s at '%s', got %s at '%s': %s", s,
             hvg_err_name(code), field ? field : "*", hvg_err_name(rc), e.field,
             e.msg);
  assert_null(t);
}

#define X(body) "<Patient xmlns=\"http://hl7.org/fhir\">" body "</Patient>"

/* ---- fhir_meta ---------------------------------------------------------- */

static void test_meta(void **state) {
  (void)state;
  fhir_meta_elem e, e2;
  int obs = fhir_meta_resource_find("Observation", 11);
  assert_true(obs >= 0);
  assert_string_equal(fhir_meta_type_name(obs), "Observation");
  assert_int_equal(fhir_meta_type_cat(obs), FHIR_MT_RESOURCE);
  assert_int_equal(fhir_meta_elem_find(obs, "valueQuantity", 13, &e), 0);
  assert_int_equal(e.kind, FHIR_MK_COMPLEX);
  assert_true(e.flags & FHIR_ME_CHOICE);
  assert_string_equal(fhir_meta_type_name(e.type), "Quantity");
  assert_int_equal(fhir_meta_elem_find(obs, "valueString", 11, &e2), 0);
  assert_int_equal(e.order, e2.order);
  assert_int_equal(e2.kind, FHIR_MK_STRING);
  assert_int_equal(fhir_meta_elem_find(obs, "value", 5, &e2), -1);
  assert_int_equal(fhir_meta_elem_find(obs, "valueQuantityX", 14, &e2), -1);
  assert_int_equal(fhir_meta_elem_find(obs, "component", 9, &e), 0);
  assert_true(e.flags & FHIR_ME_REPEATS);
  assert_int_equal(e.kind, FHIR_MK_BACKBONE);
  assert_string_equal(fhir_meta_type_name(e.type), "Observation.component");
  /* specification order, with the DomainResource elements first */
  static const char *const order[] = {
      "id",        "meta",      "implicitRules",     "language",   "text",
      "contained", "extension", "modifierExtension", "identifier", "basedOn"};
  for (unsigned i = 0; i < 10; i++) {
    assert_int_equal(fhir_meta_elem_at(obs, i, &e), 0);
    assert_string_equal(e.name, order[i]);
    assert_int_equal(e.order, i);
  }
  assert_false(e.flags & FHIR_ME_ATTR);
  assert_int_equal(fhir_meta_elem_at(obs, 0, &e), 0);
  assert_false(e.flags & FHIR_ME_ATTR); /* a resource's id is an element */
  int pat = fhir_meta_resource_find("Patient", 7);
  assert_int_equal(fhir_meta_elem_find(pat, "multipleBirthInteger", 20, &e), 0);
  assert_int_equal(e.kind, FHIR_MK_INTEGER);
  assert_int_equal(fhir_meta_elem_find(pat, "contained", 9, &e), 0);
  assert_int_equal(e.kind, FHIR_MK_RESOURCE);
  assert_int_equal(fhir_meta_elem_find(pat, "text", 4, &e), 0);
  assert_int_equal(fhir_meta_elem_find(e.type, "div", 3, &e2), 0);
  assert_int_equal(e2.kind, FHIR_MK_XHTML);
  int ext = fhir_meta_type_find("Extension", 9);
  assert_int_equal(fhir_meta_type_cat(ext), FHIR_MT_DATATYPE);
  assert_int_equal(fhir_meta_resource_find("Extension", 9), -1);
  assert_int_equal(fhir_meta_elem_find(ext, "url", 3, &e), 0);
  assert_true(e.flags & FHIR_ME_ATTR);
  assert_int_equal(fhir_meta_elem_find(ext, "id", 2, &e), 0);
  assert_true(e.flags & FHIR_ME_ATTR);
  assert_int_equal(fhir_meta_elem_find(ext, "valueDecimal", 12, &e), 0);
  assert_int_equal(e.kind, FHIR_MK_DECIMAL);
  /* content references: Questionnaire.item.item is a Questionnaire.item */
  int qi = fhir_meta_type_find("Questionnaire.item", 18);
  assert_int_equal(fhir_meta_elem_find(qi, "item", 4, &e), 0);
  assert_int_equal(e.type, qi);
  int be = fhir_meta_type_find("Bundle.entry", 12);
  assert_int_equal(fhir_meta_elem_find(be, "resource", 8, &e), 0);
  assert_int_equal(e.kind, FHIR_MK_RESOURCE);
  assert_false(e.flags & FHIR_ME_REPEATS);
  assert_int_equal(fhir_meta_elem_find(be, "id", 2, &e), 0);
  assert_true(e.flags & FHIR_ME_ATTR); /* backbone id: an attribute */
  assert_int_equal(fhir_meta_type_find("Nope", 4), -1);
  assert_int_equal(fhir_meta_type_find("Patien", 6), -1);
  assert_int_equal(fhir_meta_type_find("Patient\0", 8), -1);
  assert_true(fhir_meta_type_count() > 600);
  /* every type named in the brief is there */
  static const char *const needed[] = {"Patient",
                                       "RelatedPerson",
                                       "Organization",
                                       "Practitioner",
                                       "PractitionerRole",
                                       "Observation",
                                       "QuestionnaireResponse",
                                       "ServiceRequest",
                                       "Task",
                                       "Consent",
                                       "Bundle",
                                       "OperationOutcome",
                                       "CapabilityStatement",
                                       "Parameters",
                                       "Subscription",
                                       "Endpoint"};
  for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++)
    assert_true(fhir_meta_resource_find(needed[i], strlen(needed[i])) >= 0);
}

/* ---- round trips ----------------------------------------------------------
 */

static const char patient_json[] =
    "{\"resourceType\":\"Patient\",\"id\":\"p1\","
    "\"_id\":{\"extension\":[{\"url\":\"http://x/rid\",\"valueCode\":\"c\"}]},"
    "\"meta\":{\"versionId\":\"2\",\"profile\":[\"http://x/p1\",\"http://x/"
    "p2\"]},"
    "\"text\":{\"status\":\"generated\",\"div\":\"<div "
    "xmlns=\\\"http://www.w3.org/1999/xhtml\\\"><p class=\\\"c\\\" "
    "xml:lang=\\\"en\\\">Hi &amp; &lt;b&gt; <b>bold</b><br/>line&#13;</p><!-- "
    "note --><table><tr><td>1 &gt; 0</td></tr></table></div>\"},"
    "\"contained\":[{\"resourceType\":\"Organization\",\"id\":\"o1\","
    "\"name\":\"Org\"},{\"resourceType\":\"Practitioner\",\"id\":\"pr1\","
    "\"active\":false}],"
    "\"extension\":[{\"url\":\"http://x/q\",\"valueQuantity\":{\"value\":1.50,"
    "\"unit\":\"mg\"}},{\"url\":\"http://x/e\",\"valueDecimal\":1e2},"
    "{\"url\":\"http://x/"
    "n\",\"extension\":[{\"url\":\"a\",\"valueInteger\":-7},"
    "{\"url\":\"b\",\"valueString\":\"q\\\"<&>\\t\\n\\r\\u00e9\\ud83d\\ude00"
    "\"}]}],"
    "\"active\":true,"
    "\"name\":[{\"id\":\"n1\",\"use\":\"official\",\"family\":\"F\","
    "\"given\":[\"A\",null,\"C\"],"
    "\"_given\":[null,{\"id\":\"g2\",\"extension\":[{\"url\":\"http://x/g\","
    "\"valueBoolean\":true}]},{\"id\":\"g3\"}]},"
    "{\"given\":[\"Solo\"],\"_given\":[null]}],"
    "\"gender\":\"female\","
    "\"birthDate\":\"2020-02-29\",\"_birthDate\":{\"extension\":[{\"url\":"
    "\"http://hl7.org/fhir/StructureDefinition/patient-birthTime\","
    "\"valueDateTime\":\"2020-02-29T10:00:00Z\"}]},"
    "\"deceasedBoolean\":false,\"multipleBirthInteger\":2,"
    "\"contact\":[{\"relationship\":[{\"text\":\"mother\"}],\"name\":{"
    "\"family\":\"M\"}}],"
    "\"managingOrganization\":{\"reference\":\"#o1\"}}";

static void test_round_trip_patient(void **state) {
  (void)state;
  char *j = round_trip(patient_json);
  /* decimals keep their text; keys come out in specification order */
  assert_non_null(strstr(j, "\"value\":1.50,"));
  assert_non_null(strstr(j, "\"valueDecimal\":1e2}"));
  assert_non_null(strstr(j, "\"given\":[\"A\",null,\"C\"],\"_given\":[null,{"
                            "\"id\":\"g2\""));
  /* an all-null companion array is dropped */
  assert_non_null(strstr(j, "{\"given\":[\"Solo\"]}"));
  assert_true(strstr(j, "\"id\":\"p1\"") < strstr(j, "\"meta\""));
  assert_true(strstr(j, "\"text\"") < strstr(j, "\"contained\""));
  assert_true(strstr(j, "\"active\":true") < strstr(j, "\"name\":[{"));
  /* Extension.url first (an XML attribute) */
  assert_non_null(strstr(j, "{\"url\":\"http://x/n\",\"extension\":["));
  free(j);
  /* and the XML has what FHIR XML needs */
  cJSON *t = parse_json(patient_json);
  char *x = to_text(t, FHIR_XML, FHIR_W_NO_XMLDECL);
  assert_non_null(strstr(x, "<id value=\"p1\"><extension url=\"http://x/rid\">"
                            "<valueCode value=\"c\"/></extension></id>"));
  assert_non_null(strstr(x, "<given value=\"A\"/><given id=\"g2\"><extension "
                            "url=\"http://x/g\"><valueBoolean value=\"true\"/>"
                            "</extension></given><given id=\"g3\" "
                            "value=\"C\"/>"));
  assert_non_null(strstr(x, "<name id=\"n1\">"));
  assert_non_null(strstr(x, "<value value=\"1.50\"/>"));
  assert_non_null(strstr(x, "<contained><Organization><id value=\"o1\"/>"));
  assert_non_null(strstr(x, "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p "
                            "class=\"c\" xml:lang=\"en\">"));
  assert_non_null(strstr(x, "<valueString value=\"q&quot;&lt;&amp;&gt;&#9;"
                            "&#10;&#13;\xc3\xa9\xf0\x9f\x98\x80\"/>"));
  free(x);
  cJSON_Delete(t);
}

static void test_round_trip_resources(void **state) {
  (void)state;
  static const char *const docs[] = {
      /* choice types, components, integers, booleans */
      "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{"
      "\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"1-8\"}]},"
      "\"valueQuantity\":{\"value\":-0.0010,\"comparator\":\"<\","
      "\"unit\":\"mg\"},\"interpretation\":[{\"text\":\"n\"}],"
      "\"component\":[{\"code\":{\"text\":\"a\"},\"valueInteger\":0},"
      "{\"code\":{\"text\":\"b\"},\"valueBoolean\":false},{\"code\":{\"text\":"
      "\"c\"},\"valueRange\":{\"low\":{\"value\":1E+2},\"high\":{\"value\":"
      "123456789012345678901234567890.123456789}}},{\"code\":{\"text\":\"d\"},"
      "\"valuePeriod\":{\"start\":\"2020\"}}]}",
      /* Bundle entries with resources, nested Bundle, response outcome */
      "{\"resourceType\":\"Bundle\",\"id\":\"b\",\"type\":\"batch-response\","
      "\"total\":2,\"link\":[{\"relation\":\"self\",\"url\":\"http://x\"}],"
      "\"entry\":[{\"fullUrl\":\"urn:uuid:1\",\"resource\":{\"resourceType\":"
      "\"Patient\",\"active\":true},\"response\":{\"status\":\"201\","
      "\"outcome\":{\"resourceType\":\"OperationOutcome\",\"issue\":[{"
      "\"severity\":\"information\",\"code\":\"informational\"}]}}},"
      "{\"id\":\"e2\",\"link\":[{\"relation\":\"x\",\"url\":\"http://y\"}],"
      "\"resource\":{\"resourceType\":\"Bundle\",\"type\":\"collection\","
      "\"entry\":[{\"resource\":{\"resourceType\":\"Task\",\"status\":"
      "\"requested\",\"intent\":\"order\",\"input\":[{\"type\":{\"text\":"
      "\"t\"},\"valueUnsignedInt\":0}]}}]}},{\"resource\":{\"resourceType\":"
      "\"Binary\",\"contentType\":\"text/plain\",\"data\":\"aGk=\"}}]}",
      /* Parameters.parameter.resource, nested parts */
      "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"r\","
      "\"resource\":{\"resourceType\":\"Consent\",\"status\":\"active\","
      "\"scope\":{\"text\":\"s\"},\"category\":[{\"text\":\"c\"}]}},{"
      "\"name\":\"p\",\"part\":[{\"name\":\"q\",\"valuePositiveInt\":1},"
      "{\"name\":\"d\",\"valueDecimal\":3.14159265358979323846264338327950}]}"
      "]}",
      /* QuestionnaireResponse: items within answers within items */
      "{\"resourceType\":\"QuestionnaireResponse\",\"status\":\"completed\","
      "\"item\":[{\"linkId\":\"1\",\"item\":[{\"linkId\":\"1.1\",\"answer\":"
      "[{\"valueCoding\":{\"code\":\"y\"},\"item\":[{\"linkId\":\"1.1.1\","
      "\"answer\":[{\"valueDecimal\":0.50}]}]}]}]}]}",
      /* only companions: no values at all */
      "{\"resourceType\":\"Patient\",\"name\":[{\"_given\":[{\"extension\":[{"
      "\"url\":\"http://x/absent\",\"valueCode\":\"masked\"}]}]}],"
      "\"_gender\":{\"id\":\"gx\"}}",
      /* an empty resource */
      "{\"resourceType\":\"Basic\"}",
      "{\"resourceType\":\"CapabilityStatement\",\"status\":\"active\","
      "\"date\":\"2024\",\"kind\":\"instance\",\"fhirVersion\":\"4.0.1\","
      "\"format\":[\"json\",\"xml\"],\"rest\":[{\"mode\":\"server\","
      "\"resource\":[{\"type\":\"Patient\",\"interaction\":[{\"code\":"
      "\"read\"}],\"searchParam\":[{\"name\":\"_id\",\"type\":\"token\"}]}]}]}",
      "{\"resourceType\":\"Subscription\",\"status\":\"active\",\"reason\":"
      "\"r\",\"criteria\":\"Task?\",\"channel\":{\"type\":\"rest-hook\","
      "\"endpoint\":\"https://x\",\"header\":[\"A: b\",\"C: d\"]}}",
  };
  for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
    free(round_trip(docs[i]));
  /* the companion-only array stays as it is, the values array is absent */
  char *j = round_trip(docs[4]);
  assert_non_null(strstr(j, "{\"_given\":[{\"extension\""));
  assert_non_null(strstr(j, "\"_gender\":{\"id\":\"gx\"}"));
  free(j);
  /* an all-null values array is dropped when parsing */
  j = round_trip("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[null],"
                 "\"_given\":[{\"id\":\"x\"}]}]}");
  assert_string_equal(j, "{\"resourceType\":\"Patient\",\"name\":[{\"_given\":"
                         "[{\"id\":\"x\"}]}]}");
  free(j);
  /* a narrative is kept in canonical XHTML form */
  j = round_trip("{\"resourceType\":\"Basic\",\"text\":{\"status\":\"empty\","
                 "\"div\":\"<div xmlns='http://www.w3.org/1999/xhtml'>a<br "
                 "/>\\n<?pi x?><![CDATA[<&>]]></div>\"}}");
  assert_non_null(strstr(j, "\"div\":\"<div xmlns=\\\"http://www.w3.org/1999/"
                            "xhtml\\\">a<br/>\\n&lt;&amp;&gt;</div>\""));
  free(j);
}

/* From XML: order, repeats, values, primitives with id and extensions. */
static void test_xml_to_tree(void **state) {
  (void)state;
  const char *x =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- c -->"
      "<Observation xmlns=\"http://hl7.org/fhir\" "
      "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
      "xsi:schemaLocation=\"http://hl7.org/fhir x.xsd\">\n"
      "  <status value=\"final\"/><!-- ok -->\n"
      "  <code><coding id=\"c1\"><system value=\"http://loinc.org\"/>"
      "<code value=\"1-8\"/></coding><coding><code value=\"2\"/></coding>"
      "</code>\n"
      "  <effectiveDateTime id=\"d\"><extension url=\"u\"><valueInteger "
      "value=\"5\"/></extension></effectiveDateTime>\n"
      "  <valueQuantity><value value=\"1.50\"/></valueQuantity>\n"
      "</Observation>";
  cJSON *t = parse_xml(x);
  char *p = cJSON_PrintUnformatted(t);
  assert_string_equal(
      p, "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{"
         "\"coding\":[{\"id\":\"c1\",\"system\":\"http://loinc.org\",\"code\":"
         "\"1-8\"},{\"code\":\"2\"}]},\"_effectiveDateTime\":{\"id\":\"d\","
         "\"extension\":[{\"url\":\"u\",\"valueInteger\":5}]},"
         "\"valueQuantity\":{\"value\":1.50}}");
  free(p);
  cJSON_Delete(t);
}

/* ---- every Bundle the gateway makes from the sample export ------------- */

static char *map_sample(const char *fmt, char *path) {
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  char *argv[] = {"map",
                  "-q",
                  "-m",
                  HVG_SOURCE_DIR "/conf/mappings/program-export.json",
                  "--today",
                  "2026-11-23",
                  "-f",
                  (char *)fmt,
                  "--rejects",
                  "/dev/null",
                  "-o",
                  path,
                  HVG_TEST_DATA "/program-export/screenings.csv",
                  HVG_TEST_DATA "/program-export/referrals.csv",
                  HVG_TEST_DATA "/program-export/consents.csv",
                  NULL};
  int rc = hvg_cli_map((int)(sizeof argv / sizeof argv[0]) - 1, argv);
  assert_true(rc == 0 || rc == 65); /* the sample has rejected rows */
  size_t len;
  char *text = hvg_read_file(path, (size_t)1 << 30, &len);
  assert_non_null(text);
  unlink(path);
  return text;
}

static void test_gateway_bundles(void **state) {
  (void)state;
  char path[] = "/tmp/hvg_fhirx_XXXXXX";
  char *nd = map_sample("ndjson", path);
  size_t n = 0;
  for (char *line = nd, *nl; *line; line = nl + 1) {
    nl = strchr(line, '\n');
    assert_non_null(nl);
    *nl = '\0';
    char *j = round_trip(line);
    /* the gateway writes in specification order already */
    assert_string_equal(j, line);
    free(j);
    n++;
  }
  assert_int_equal(n, 410);
  free(nd);
  /* the collection Bundle of all of them, read from the gateway's XML */
  char path2[] = "/tmp/hvg_fhirx_XXXXXX";
  char *x = map_sample("xml", path2);
  cJSON *t = parse_xml(x);
  char path3[] = "/tmp/hvg_fhirx_XXXXXX";
  char *js = map_sample("json", path3);
  cJSON *t2 = parse_json(js);
  assert_true(fhir_json_equal(t, t2));
  char *x2 = to_text(t, FHIR_XML, 0);
  x[strcspn(x, "\n")] = '\0'; /* the gateway ends its file with a newline */
  assert_string_equal(x, x2);
  free(x2);
  cJSON_Delete(t);
  cJSON_Delete(t2);
  free(js);
  free(x);
}

/* ---- refusals --------------------------------------------------------- */

static void test_json_refusals(void **state) {
  (void)state;
  json_fails("{\"resourceType\":\"Observation\",\"status\":\"final\","
             "\"valueQuantity\":{\"value\":1,\"foo\":2}}",
             HVG_EUNKNOWN, "Observation.valueQuantity.foo");
  json_fails("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"a\"]},"
             "{\"giving\":[\"b\"]}]}",
             HVG_EUNKNOWN, "Patient.name[1].giving");
  json_fails("{\"resourceType\":\"Patient\",\"_active\":{\"foo\":1}}",
             HVG_EUNKNOWN, "Patient._active.foo");
  json_fails("{\"resourceType\":\"Patient\",\"_name\":{}}", HVG_EUNKNOWN,
             "Patient._name");
  json_fails("{\"resourceType\":\"Patient\",\"text\":{\"_div\":{\"id\":\"x\"}"
             ",\"status\":\"empty\"}}",
             HVG_EUNKNOWN, "Patient.text._div");
  json_fails("{\"resourceType\":\"Patient\",\"name\":{\"family\":\"x\"}}",
             HVG_EFORMAT, "Patient.name");
  json_fails("{\"resourceType\":\"Patient\",\"gender\":[\"male\"]}",
             HVG_EFORMAT, "Patient.gender");
  json_fails("{\"resourceType\":\"Patient\",\"active\":true,\"active\":false}",
             HVG_EFORMAT, "Patient.active");
  json_fails("{\"resourceType\":\"Patient\",\"resourceType\":\"Patient\"}",
             HVG_EFORMAT, "resourceType");
  json_fails("{\"resourceType\":\"Observation\",\"valueString\":\"a\","
             "\"valueBoolean\":true}",
             HVG_EFORMAT, "Observation.valueBoolean");
  json_fails("{\"resourceType\":\"Observation\",\"valueString\":\"a\","
             "\"_valueBoolean\":{\"id\":\"x\"}}",
             HVG_EFORMAT, "Observation._valueBoolean");
  json_fails("{\"resourceType\":\"Patient\",\"active\":\"true\"}", HVG_EFORMAT,
             "Patient.active");
  json_fails("{\"resourceType\":\"Patient\",\"multipleBirthInteger\":1.5}",
             HVG_EFORMAT, "Patient.multipleBirthInteger");
  json_fails("{\"resourceType\":\"Patient\",\"multipleBirthInteger\":1e2}",
             HVG_EFORMAT, "Patient.multipleBirthInteger");
  json_fails("{\"resourceType\":\"Patient\",\"multipleBirthInteger\":"
             "2147483648}",
             HVG_EFORMAT, "Patient.multipleBirthInteger");
  json_fails("{\"resourceType\":\"Patient\",\"multipleBirthInteger\":-0}",
             HVG_EFORMAT, "Patient.multipleBirthInteger");
  json_fails("{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"a\","
             "\"valuePositiveInt\":0}]}",
             HVG_EFORMAT, "Parameters.parameter[0].valuePositiveInt");
  json_fails("{\"resourceType\":\"Patient\",\"birthDate\":2020}", HVG_EFORMAT,
             "Patient.birthDate");
  json_fails("{\"resourceType\":\"Patient\",\"birthDate\":\"\"}", HVG_EFORMAT,
             "Patient.birthDate");
  json_fails("{\"resourceType\":\"Patient\",\"birthDate\":null}", HVG_EFORMAT,
             "Patient.birthDate");
  json_fails("{\"resourceType\":\"Patient\",\"maritalStatus\":{}}", HVG_EFORMAT,
             "Patient.maritalStatus");
  json_fails("{\"resourceType\":\"Patient\",\"identifier\":[]}", HVG_EFORMAT,
             "Patient.identifier");
  json_fails("{\"resourceType\":\"Patient\",\"identifier\":[null]}",
             HVG_EFORMAT, "Patient.identifier[0]");
  json_fails("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"a\"],"
             "\"_given\":[null,{\"id\":\"x\"}]}]}",
             HVG_EFORMAT, "Patient.name[0]._given");
  json_fails("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"a\",null]"
             "}]}",
             HVG_EFORMAT, "Patient.name[0].given");
  json_fails("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"a\",null],"
             "\"_given\":[null,null]}]}",
             HVG_EFORMAT, "Patient.name[0].given");
  json_fails("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"a\\u0001\""
             "]}]}",
             HVG_EFORMAT, "");
  json_fails("{\"resourceType\":\"Patient\",\"contained\":[{\"id\":\"x\"}]}",
             HVG_EMISSING, "Patient.contained[0].resourceType");
  json_fails("{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":"
             "\"Patient\",\"foo\":1}]}",
             HVG_EUNKNOWN, "Patient.contained[0].foo");
  json_fails("{\"resourceType\":\"Nope\"}", HVG_EUNKNOWN, "resourceType");
  json_fails("{\"resourceType\":\"Extension\"}", HVG_EUNKNOWN, "resourceType");
  json_fails("{\"id\":\"x\"}", HVG_EMISSING, "resourceType");
  json_fails("[]", HVG_EFORMAT, "");
  json_fails("{\"resourceType\":\"Basic\",\"text\":{\"status\":\"empty\","
             "\"div\":\"<p xmlns='http://www.w3.org/1999/xhtml'>x</p>\"}}",
             HVG_EFORMAT, "Basic.text.div");
  json_fails("{\"resourceType\":\"Basic\",\"text\":{\"status\":\"empty\","
             "\"div\":\"<div>no namespace</div>\"}}",
             HVG_EFORMAT, "Basic.text.div");
  json_fails("{\"resourceType\":\"Basic\",\"text\":{\"status\":\"empty\","
             "\"div\":\"<div xmlns='http://www.w3.org/1999/xhtml'><xi:include "
             "xmlns:xi='http://www.w3.org/2001/XInclude' "
             "href='file:///etc/passwd'/></div>\"}}",
             HVG_EFORMAT, "Basic.text.div");
  json_fails("{\"resourceType\":\"Basic\",\"text\":{\"status\":\"empty\","
             "\"div\":\"<div xmlns='http://www.w3.org/1999/xhtml'>&nbsp;</div>"
             "\"}}",
             HVG_ESYNTAX, "Basic.text.div");
  /* syntax */
  json_fails("{\"resourceType\":\"Patient\",}", HVG_ESYNTAX, "");
  json_fails("{\"resourceType\":\"Patient\"} x", HVG_ESYNTAX, "");
  json_fails("{\"resourceType\":'Patient'}", HVG_ESYNTAX, "");
  json_fails("{\"resourceType\":\"Patient\",\"active\":tru}", HVG_ESYNTAX, "");
  json_fails("{\"resourceType\":\"Patient\",\"multipleBirthInteger\":01}",
             HVG_ESYNTAX, "");
  json_fails("{\"resourceType\":\"Patient\",\"gender\":\"\xff\"}",
             HVG_EENCODING, "");
  json_fails("{\"resourceType\":\"Patient\",\"gender\":\"\xc0\xaf\"}",
             HVG_EENCODING, "");
  json_fails("{\"resourceType\":\"Patient\",\"gender\":\"\\ud800x\"}",
             HVG_EENCODING, "");
  json_fails("{\"resourceType\":\"Patient\",\"gender\":\"a\nb\"}", HVG_ESYNTAX,
             "");
  json_fails("{\"resourceType\":\"Patient\"", HVG_ESYNTAX, "");
  json_fails("", HVG_ESYNTAX, "");
  hvg_err e;
  cJSON *t;
  assert_int_equal(
      fhir_json_parse("{\"resourceType\":\n\"Patient\",,}", 29, MAXIN, &t, &e),
      HVG_ESYNTAX);
  assert_string_equal(e.msg, "line 2, column 11: expected a string (member "
                             "name)");
}

static void test_xml_refusals(void **state) {
  (void)state;
  xml_fails(X("<birthDate value=\"2020\"/><name><family value=\"x\"/></name>"),
            HVG_EORDER, "Patient.name");
  xml_fails(X("<name><given value=\"a\"/><family value=\"x\"/></name>"),
            HVG_EORDER, "Patient.name[0].family");
  xml_fails(X("<name><given value=\"a\"/></name><gender value=\"male\"/>"
              "<name><given value=\"b\"/></name>"),
            HVG_EORDER, "Patient.name");
  xml_fails("<Patient xmlns=\"http://example.org/fhir\"/>", HVG_EFORMAT,
            "Patient");
  xml_fails("<Patient/>", HVG_EFORMAT, "Patient");
  xml_fails(X("<active xmlns=\"urn:x\" value=\"true\"/>"), HVG_EFORMAT,
            "Patient.active");
  xml_fails(X("<foo value=\"1\"/>"), HVG_EUNKNOWN, "Patient.foo");
  xml_fails(X("<name><foo value=\"1\"/></name>"), HVG_EUNKNOWN,
            "Patient.name[0].foo");
  xml_fails(X("<gender value=\"male\"/><gender value=\"female\"/>"),
            HVG_EFORMAT, "Patient.gender");
  xml_fails(X("<deceasedBoolean value=\"true\"/><deceasedDateTime "
              "value=\"2020\"/>"),
            HVG_EFORMAT, "Patient.deceasedDateTime");
  xml_fails(X("<active value=\"yes\"/>"), HVG_EFORMAT, "Patient.active");
  xml_fails(X("<active value=\"\"/>"), HVG_EFORMAT, "Patient.active");
  xml_fails(X("<active/>"), HVG_EFORMAT, "Patient.active");
  xml_fails(X("<multipleBirthInteger value=\"1.0\"/>"), HVG_EFORMAT,
            "Patient.multipleBirthInteger");
  xml_fails(X("<multipleBirthInteger value=\"+1\"/>"), HVG_EFORMAT,
            "Patient.multipleBirthInteger");
  xml_fails(X("<active value=\"true\">true</active>"), HVG_EFORMAT,
            "Patient.active");
  xml_fails(X("<active value=\"true\" foo=\"1\"/>"), HVG_EUNKNOWN,
            "Patient.active");
  xml_fails(X("<name foo=\"1\"><family value=\"x\"/></name>"), HVG_EUNKNOWN,
            "Patient.name[0]");
  xml_fails(X("<name><id value=\"x\"/></name>"), HVG_EFORMAT,
            "Patient.name[0].id");
  xml_fails(X("<extension><url value=\"x\"/></extension>"), HVG_EFORMAT,
            "Patient.extension[0].url");
  xml_fails(X("<maritalStatus/>"), HVG_EFORMAT, "Patient.maritalStatus");
  xml_fails(X("<contained/>"), HVG_EFORMAT, "Patient.contained[0]");
  xml_fails(X("<contained><Patient/><Patient/></contained>"), HVG_EFORMAT,
            "Patient.contained[0]");
  xml_fails(X("<contained><Nope/></contained>"), HVG_EUNKNOWN,
            "Patient.contained[0].Nope");
  xml_fails(X("<text><status value=\"empty\"/><div>x</div></text>"),
            HVG_EFORMAT, "Patient.text.div");
  xml_fails(X("<text><status value=\"empty\"/><div xmlns=\"http://www.w3.org/"
              "1999/xhtml\"><p xmlns=\"urn:x\"/></div></text>"),
            HVG_EFORMAT, "Patient.text.div");
  xml_fails(X("<decimal value=\"1\"/>"), HVG_EUNKNOWN, "Patient.decimal");
  xml_fails("<Nope xmlns=\"http://hl7.org/fhir\"/>", HVG_EUNKNOWN, "Nope");
  xml_fails("<Patient xmlns=\"http://hl7.org/fhir\">", HVG_ESYNTAX, "");
  xml_fails("not xml", HVG_ESYNTAX, "");
  xml_fails(X("<gender value=\"&foo;\"/>"), HVG_ESYNTAX, "");
  xml_fails("<Patient xmlns=\"http://hl7.org/fhir\" id=\"x\"/>", HVG_EUNKNOWN,
            "Patient");
  xml_fails("<Observation xmlns=\"http://hl7.org/fhir\"><valueQuantity><value "
            "value=\"1.5.0\"/></valueQuantity></Observation>",
            HVG_EFORMAT, "Observation.valueQuantity.value");
}

/* Nesting beyond what the writer can write back, and input over the cap. */
static void test_bombs_and_caps(void **state) {
  (void)state;
  hvg_buf b;
  hvg_buf_init(&b, (size_t)16 << 20);
  /* JSON: 100,000 nested arrays */
  for (int i = 0; i < 100000; i++)
    hvg_buf_addc(&b, '[');
  hvg_err e;
  cJSON *t = (cJSON *)1;
  assert_int_equal(fhir_json_parse(b.data, b.len, MAXIN, &t, &e), HVG_ETOOBIG);
  assert_null(t);
  /* JSON: nested extensions, valid FHIR but deeper than the cap */
  hvg_buf_reset(&b);
  hvg_buf_adds(&b, "{\"resourceType\":\"Basic\"");
  for (int i = 0; i < 30; i++)
    hvg_buf_adds(&b, ",\"extension\":[{\"url\":\"u\"");
  for (int i = 0; i < 30; i++)
    hvg_buf_adds(&b, "}]");
  hvg_buf_adds(&b, "}");
  assert_int_equal(fhir_json_parse(b.data, b.len, MAXIN, &t, &e), HVG_ETOOBIG);
  /* 23 levels (46 + 1 deep) are fine and round trip */
  hvg_buf_reset(&b);
  hvg_buf_adds(&b, "{\"resourceType\":\"Basic\"");
  for (int i = 0; i < 23; i++)
    hvg_buf_adds(&b, ",\"extension\":[{\"url\":\"u\"");
  hvg_buf_adds(&b, ",\"valueString\":\"deep\"");
  for (int i = 0; i < 23; i++)
    hvg_buf_adds(&b, "}]");
  hvg_buf_adds(&b, "}");
  free(round_trip(b.data));
  /* XML: 100,000 nested elements */
  hvg_buf_reset(&b);
  hvg_buf_adds(&b, "<Basic xmlns=\"http://hl7.org/fhir\">");
  for (int i = 0; i < 100000; i++)
    hvg_buf_adds(&b, "<extension>");
  assert_int_equal(fhir_xml_parse(b.data, b.len, MAXIN, &t, &e), HVG_ETOOBIG);
  assert_null(t);
  /* XML: nested extensions deeper than the tree cap */
  hvg_buf_reset(&b);
  hvg_buf_adds(&b, "<Basic xmlns=\"http://hl7.org/fhir\">");
  for (int i = 0; i < 30; i++)
    hvg_buf_adds(&b, "<extension url=\"u\">");
  for (int i = 0; i < 30; i++)
    hvg_buf_adds(&b, "</extension>");
  hvg_buf_adds(&b, "</Basic>");
  assert_int_equal(fhir_xml_parse(b.data, b.len, MAXIN, &t, &e), HVG_ETOOBIG);
  assert_string_equal(e.msg, "nested deeper than 48");
  /* narrative XHTML nested deeper than the canonical form allows */
  hvg_buf_reset(&b);
  hvg_buf_adds(&b, "{\"resourceType\":\"Basic\",\"text\":{\"status\":"
                   "\"empty\",\"div\":\"<div xmlns='http://www.w3.org/1999/"
                   "xhtml'>");
  for (int i = 0; i < 70; i++)
    hvg_buf_adds(&b, "<b>");
  for (int i = 0; i < 70; i++)
    hvg_buf_adds(&b, "</b>");
  hvg_buf_adds(&b, "</div>\"}}");
  assert_int_equal(fhir_json_parse(b.data, b.len, MAXIN, &t, &e), HVG_ETOOBIG);
  assert_string_equal(e.field, "Basic.text.div");
  /* size caps */
  const char *p = "{\"resourceType\":\"Patient\"}";
  assert_int_equal(fhir_json_parse(p, strlen(p), 10, &t, &e), HVG_ETOOBIG);
  assert_null(t);
  p = X("");
  assert_int_equal(fhir_xml_parse(p, strlen(p), 10, &t, &e), HVG_ETOOBIG);
  assert_null(t);
  hvg_buf_free(&b);
}

/* ---- XML security -------------------------------------------------------- */

/* A listening socket on 127.0.0.1: any connection attempt by the parser
 * would be queued on it, so "nothing to accept" proves none was made. */
static int listener(int *port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(s >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(s, 8), 0);
  socklen_t n = sizeof a;
  assert_int_equal(getsockname(s, (struct sockaddr *)&a, &n), 0);
  *port = ntohs(a.sin_port);
  fcntl(s, F_SETFL, O_NONBLOCK);
  return s;
}

static void no_connection(int s) {
  int c = accept(s, NULL, NULL);
  assert_int_equal(c, -1);
  assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
  close(s);
}

static void refused(const char *doc, const char *secret) {
  hvg_err e;
  hvg_err_clear(&e);
  cJSON *t = (cJSON *)1;
  int rc = fhir_xml_parse(doc, strlen(doc), MAXIN, &t, &e);
  if (rc != HVG_ESECURITY || strcmp(e.msg, "DOCTYPE is not allowed"))
    fail_msg("%s\n  got %s: %s", doc, hvg_err_name(rc), e.msg);
  assert_null(t);
  if (secret && *secret) {
    assert_null(strstr(e.msg, secret));
    assert_null(strstr(e.field, secret));
  }
}

static void test_xml_security(void **state) {
  (void)state;
  /* the first line of /etc/passwd must appear nowhere */
  char secret[64] = "";
  FILE *f = fopen("/etc/passwd", "r");
  if (f) {
    if (fgets(secret, sizeof secret, f))
      secret[strcspn(secret, "\n")] = '\0';
    fclose(f);
  }
  refused("<?xml version=\"1.0\"?>\n<!DOCTYPE Patient [\n"
          "<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n"
          "<Patient xmlns=\"http://hl7.org/fhir\"><gender value=\"&xxe;\"/>"
          "</Patient>",
          secret);
  refused("<!DOCTYPE Patient [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>"
          "<Patient xmlns=\"http://hl7.org/fhir\"><text><status "
          "value=\"generated\"/><div xmlns=\"http://www.w3.org/1999/xhtml\">"
          "&xxe;</div></text></Patient>",
          secret);
  char doc[1024];
  int port;
  int s = listener(&port);
  snprintf(doc, sizeof doc,
           "<!DOCTYPE Patient SYSTEM \"http://127.0.0.1:%d/x.dtd\">"
           "<Patient xmlns=\"http://hl7.org/fhir\"/>",
           port);
  refused(doc, NULL);
  snprintf(doc, sizeof doc,
           "<!DOCTYPE Patient [<!ENTITY %% pe SYSTEM "
           "\"http://127.0.0.1:%d/pe.dtd\"> %%pe;]>"
           "<Patient xmlns=\"http://hl7.org/fhir\"/>",
           port);
  refused(doc, NULL);
  snprintf(doc, sizeof doc,
           "<!DOCTYPE Patient [<!ENTITY ext SYSTEM "
           "\"http://127.0.0.1:%d/e.xml\">]><Patient "
           "xmlns=\"http://hl7.org/fhir\"><gender value=\"&ext;\"/></Patient>",
           port);
  refused(doc, NULL);
  no_connection(s);
  refused("<!DOCTYPE x [<!ENTITY % a \"<!ENTITY b 'x'>\"> %a;]>"
          "<Patient xmlns=\"http://hl7.org/fhir\"/>",
          NULL);
  refused("<!DOCTYPE Patient><Patient xmlns=\"http://hl7.org/fhir\"/>", NULL);
  /* billion laughs: refused before any expansion, so fast and small */
  hvg_buf b;
  hvg_buf_init(&b, 1 << 20);
  hvg_buf_adds(&b, "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol "
                   "\"lol\">");
  for (int i = 1; i < 10; i++) {
    hvg_buf_printf(&b, "<!ENTITY lol%d \"", i);
    for (int k = 0; k < 10; k++)
      if (i == 1)
        hvg_buf_adds(&b, "&lol;");
      else
        hvg_buf_printf(&b, "&lol%d;", i - 1);
    hvg_buf_adds(&b, "\">");
  }
  hvg_buf_adds(&b, "]><Patient xmlns=\"http://hl7.org/fhir\"><gender "
                   "value=\"&lol9;\"/></Patient>");
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  refused(b.data, NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
              (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
  assert_true(ms < 100.0);
  hvg_buf_free(&b);
  /* in a JSON narrative too */
  json_fails("{\"resourceType\":\"Basic\",\"text\":{\"status\":\"empty\","
             "\"div\":\"<!DOCTYPE div [<!ENTITY x SYSTEM "
             "'file:///etc/passwd'>]><div "
             "xmlns='http://www.w3.org/1999/xhtml'>&x;</div>\"}}",
             HVG_ESECURITY, "Basic.text.div");
}

/* The writer side: trees not from a parser are checked as they are written. */
static void test_write_checks(void **state) {
  (void)state;
  hvg_buf b;
  hvg_buf_init(&b, 1 << 20);
  hvg_err e;
  cJSON *t = cJSON_Parse("{\"resourceType\":\"Patient\",\"foo\":1}");
  assert_int_equal(fhir_json_serialize(t, FHIR_JSON, 0, &b, &e), HVG_EUNKNOWN);
  assert_string_equal(e.field, "Patient.foo");
  assert_int_equal(b.len, 0);
  cJSON_Delete(t);
  /* plain cJSON numbers are fine for integers and decimals */
  t = cJSON_Parse("{\"resourceType\":\"Observation\",\"status\":\"final\","
                  "\"valueQuantity\":{\"value\":0.1},\"component\":[{\"code\":"
                  "{\"text\":\"x\"},\"valueInteger\":3}]}");
  assert_int_equal(fhir_json_serialize(t, FHIR_XML, FHIR_W_NO_XMLDECL, &b, &e),
                   0);
  assert_non_null(strstr(b.data, "<value value=\"0.1\"/>"));
  assert_non_null(strstr(b.data, "<valueInteger value=\"3\"/>"));
  cJSON_Delete(t);
  hvg_buf_reset(&b);
  /* a div that is not XHTML never reaches XML output */
  t = cJSON_Parse("{\"resourceType\":\"Basic\",\"text\":{\"status\":\"empty\","
                  "\"div\":\"</div><injected/>\"}}");
  assert_int_equal(fhir_json_serialize(t, FHIR_XML, 0, &b, &e), HVG_ESYNTAX);
  assert_int_equal(b.len, 0);
  cJSON_Delete(t);
  t = cJSON_Parse("{\"resourceType\":\"Patient\",\"gender\":\"a\\u0001\"}");
  assert_int_equal(fhir_json_serialize(t, FHIR_JSON, 0, &b, &e), HVG_EFORMAT);
  cJSON_Delete(t);
  t = cJSON_Parse("{\"resourceType\":\"Patient\",\"active\":1}");
  assert_int_equal(fhir_json_serialize(t, FHIR_JSON, 0, &b, &e), HVG_EFORMAT);
  assert_string_equal(e.field, "Patient.active");
  cJSON_Delete(t);
  /* the caller's buffer cap */
  hvg_buf small;
  hvg_buf_init(&small, 16);
  t = parse_json(patient_json);
  assert_int_equal(fhir_json_serialize(t, FHIR_XML, 0, &small, &e),
                   HVG_ETOOBIG);
  assert_int_equal(small.len, 0);
  cJSON_Delete(t);
  hvg_buf_free(&small);
  hvg_buf_free(&b);
  /* equality */
  cJSON *a = parse_json("{\"resourceType\":\"Patient\",\"active\":true,"
                        "\"gender\":\"male\"}");
  cJSON *c = parse_json("{\"gender\":\"male\",\"active\":true,"
                        "\"resourceType\":\"Patient\"}");
  assert_true(fhir_json_equal(a, c));
  cJSON_Delete(c);
  c = parse_json("{\"resourceType\":\"Patient\",\"active\":false,"
                 "\"gender\":\"male\"}");
  assert_false(fhir_json_equal(a, c));
  cJSON_Delete(c);
  cJSON_Delete(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_meta),
      cmocka_unit_test(test_round_trip_patient),
      cmocka_unit_test(test_round_trip_resources),
      cmocka_unit_test(test_xml_to_tree),
      cmocka_unit_test(test_gateway_bundles),
      cmocka_unit_test(test_json_refusals),
      cmocka_unit_test(test_xml_refusals),
      cmocka_unit_test(test_bombs_and_caps),
      cmocka_unit_test(test_xml_security),
      cmocka_unit_test(test_write_checks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
