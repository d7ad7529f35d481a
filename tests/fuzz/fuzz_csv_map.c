/* libFuzzer: the CSV reader and the mapping engine on arbitrary bytes. The
 * first byte picks the delimiter and encoding; the rest is the file, read
 * as the sample's screenings source and mapped to FHIR. Nothing may crash,
 * leak or trip a sanitizer; a mapped record must always build a Bundle. */
#include "map_all.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static hv_mapping *g_map;
static hv_catalog *g_cat;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_map) {
    if (hv_mapping_load(&g_map, HVG_SOURCE_DIR "/conf/mappings/program-export.json",
                        NULL, NULL) ||
        hv_catalog_load(&g_cat, g_map->instruments_path, g_map->services_path,
                        NULL))
      abort();
  }
  if (size < 1)
    return 0;
  hv_source src = g_map->sources[0];
  static const char delims[] = {',', ';', '\t', '|'};
  src.ropts.delimiter = delims[data[0] & 3];
  src.ropts.encoding = (hv_encoding)((data[0] >> 2) % 3);
  src.ropts.max_record = 4096;
  /* with the header the mapping expects, so records reach the checks */
  static const char header[] =
      "record_id,family_id,caregiver_id,caregiver_first_name,"
      "caregiver_last_name,caregiver_dob,caregiver_phone,child_id,"
      "child_first_name,child_last_name,child_dob,child_sex,"
      "pediatric_practice_npi,pediatric_practice_name,home_visitor_id,"
      "screen_date,instrument,subject,total_score,asq_interval_months,"
      "asq_communication,asq_gross_motor,asq_fine_motor,asq_problem_solving,"
      "asq_personal_social,result\n";
  size_t n = sizeof header - 1 + size - 1;
  char *buf = malloc(n);
  if (!buf)
    abort();
  memcpy(buf, header, sizeof header - 1);
  for (size_t i = 0; i < sizeof header - 1; i++)
    if (buf[i] == ',')
      buf[i] = src.ropts.delimiter;
  memcpy(buf + sizeof header - 1, data + 1, size - 1);
  map_all(g_map, g_cat, &src, "fuzz.csv", buf, n);
  free(buf);
  return 0;
}
