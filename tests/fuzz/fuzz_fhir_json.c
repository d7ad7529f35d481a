/* libFuzzer: fhir_json_parse on arbitrary bytes. Whatever it accepts must
 * write out as JSON and as XML, both must parse back, and all three trees
 * must be equal (and the JSON written from each identical): the exact
 * round trip, on inputs nobody thought of. abort() on any mismatch. */
#include "fhir_json.h"
#include "fhir_xml.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CAP ((size_t)1 << 20)

static char *write_tree(const cJSON *t, fhir_format fmt, size_t *len) {
  hvg_buf b;
  hvg_buf_init(&b, 16 * CAP);
  hvg_err e;
  if (fhir_json_serialize(t, fmt, 0, &b, &e)) {
    fprintf(stderr, "write %s failed: %s: %s\n", fmt ? "XML" : "JSON", e.field,
            e.msg);
    abort(); /* an accepted tree must always write */
  }
  return hvg_buf_take(&b, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hvg_err e;
  cJSON *a;
  if (fhir_json_parse((const char *)data, size, CAP, &a, &e))
    return 0;
  size_t jn, xn;
  char *j = write_tree(a, FHIR_JSON, &jn);
  char *x = write_tree(a, FHIR_XML, &xn);
  cJSON *b, *c;
  if (fhir_xml_parse(x, xn, 16 * CAP, &b, &e)) {
    fprintf(stderr, "XML does not parse back: %s: %s\n%s\n", e.field, e.msg, x);
    abort();
  }
  if (fhir_json_parse(j, jn, 16 * CAP, &c, &e)) {
    fprintf(stderr, "JSON does not parse back: %s: %s\n%s\n", e.field, e.msg,
            j);
    abort();
  }
  if (!fhir_json_equal(a, b) || !fhir_json_equal(a, c)) {
    fprintf(stderr, "trees differ after the round trip\n%s\n%s\n", j, x);
    abort();
  }
  char *j2 = write_tree(b, FHIR_JSON, &jn);
  if (strcmp(j, j2)) {
    fprintf(stderr, "JSON differs after the round trip\n%s\n%s\n", j, j2);
    abort();
  }
  free(j2);
  free(j);
  free(x);
  cJSON_Delete(a);
  cJSON_Delete(b);
  cJSON_Delete(c);
  return 0;
}
