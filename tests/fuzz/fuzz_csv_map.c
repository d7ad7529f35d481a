/* libFuzzer: the CSV reader and the mapping engine on arbitrary bytes. The
 * first byte picks the delimiter and encoding; the rest is the file, read
 * as the sample's screenings source and mapped to FHIR. Nothing may crash,
 * leak or trip a sanitizer; a mapped record must always build a Bundle. */
#include "hv_tofhir.h"

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
  hv_mapper_opts mo = {20780, 1};
  hv_mapper *mp;
  hv_tofhir tf;
  if (hv_mapper_new(&mp, g_map, g_cat, &mo))
    return 0;
  if (hv_tofhir_init(&tf, g_map, g_cat)) {
    hv_mapper_free(mp);
    return 0;
  }
  hvg_err err;
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
  hvg_buf out;
  hvg_buf_init(&out, 1 << 20);
  hvg_arena scratch;
  hvg_arena_init(&scratch, 1 << 20);
  if (!hv_mapper_open_mem(mp, "fuzz.csv", buf, n, &src, &err)) {
    hv_result res;
    while (hv_mapper_next(mp, &res, &err) == 1) {
      if (res.rejected)
        continue;
      fhir_writer w;
      hvg_buf_reset(&out);
      fhir_w_init(&w, &out, (res.rec.line & 1) ? FHIR_XML : FHIR_JSON, 0);
      hvg_arena_reset(&scratch);
      if (hv_tofhir_bundle(&tf, &w, &res, &scratch, &err) || fhir_w_finish(&w))
      {
        fprintf(stderr, "bundle failed: %s: %s\n", err.field, err.msg);
        abort(); /* an accepted record must always make a Bundle */
      }
    }
  }
  hvg_buf_free(&out);
  hvg_arena_free(&scratch);
  free(buf);
  hv_tofhir_free(&tf);
  hv_mapper_free(mp);
  return 0;
}
