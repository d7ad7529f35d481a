/* The round-trip check shared by the FHIR parser fuzz targets: whatever the
 * parser of the input format accepts must write out as JSON and as XML,
 * both must parse back, all three trees must be equal, and writing the
 * reparsed trees must give the same text again: the exact round trip, on
 * inputs nobody thought of. abort() on any mismatch. */
#ifndef HVG_FUZZ_FHIR_ROUNDTRIP_H
#define HVG_FUZZ_FHIR_ROUNDTRIP_H

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

static int fhir_roundtrip(const uint8_t *data, size_t size, fhir_format in) {
  hvg_err e;
  cJSON *a;
  int rc = in == FHIR_JSON
               ? fhir_json_parse((const char *)data, size, CAP, &a, &e)
               : fhir_xml_parse((const char *)data, size, CAP, &a, &e);
  if (rc)
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
  char *x2 = write_tree(c, FHIR_XML, &xn);
  if (strcmp(j, j2) || strcmp(x, x2)) {
    fprintf(stderr, "text differs after the round trip\n%s\n%s\n%s\n%s\n", j,
            j2, x, x2);
    abort();
  }
  free(j2);
  free(x2);
  free(j);
  free(x);
  cJSON_Delete(a);
  cJSON_Delete(b);
  cJSON_Delete(c);
  return 0;
}

#endif
