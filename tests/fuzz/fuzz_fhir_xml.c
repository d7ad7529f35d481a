/* libFuzzer: fhir_xml_parse on arbitrary bytes, with the exact round trip
 * through JSON of fhir_roundtrip.h. */
#include "fhir_roundtrip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return fhir_roundtrip(data, size, FHIR_XML);
}
