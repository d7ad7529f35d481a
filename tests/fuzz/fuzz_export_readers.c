/* libFuzzer: the JSON-array, XML and NDJSON export readers and the mapping
 * engine on arbitrary bytes. The first byte picks the source of
 * tests/data/mappings/program-export-alt.json (screenings as JSON or XML,
 * referrals as XML, consents as NDJSON) and the record size cap; the rest is
 * the file. Nothing may crash, leak or trip a sanitizer, and a record the
 * mapper accepts must always build a Bundle. */
#include "hv_tofhir.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static hv_mapping *g_map;
static hv_catalog *g_cat;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_map) {
    if (hv_mapping_load(&g_map,
                        HVG_SOURCE_DIR
                        "/tests/data/mappings/program-export-alt.json",
                        NULL, NULL) ||
        hv_catalog_load(&g_cat, g_map->instruments_path, g_map->services_path,
                        NULL) ||
        g_map->n_sources < 4)
      abort();
  }
  if (size < 1)
    return 0;
  hv_source src = g_map->sources[data[0] & 3];
  src.ropts.max_record = (data[0] & 4) ? 256 : 8192;
  hv_mapper_opts mo = {20780, 1};
  hv_mapper *mp;
  hv_tofhir tf;
  if (hv_mapper_new(&mp, g_map, g_cat, &mo))
    return 0;
  if (hv_tofhir_init(&tf, g_map, g_cat)) {
    hv_mapper_free(mp);
    return 0;
  }
  hvg_buf out;
  hvg_buf_init(&out, 1 << 20);
  hvg_arena scratch;
  hvg_arena_init(&scratch, 1 << 20);
  hvg_err err;
  if (!hv_mapper_open_mem(mp, "fuzz", (const char *)data + 1, size - 1, &src,
                          &err)) {
    hv_result res;
    while (hv_mapper_next(mp, &res, &err) == 1) {
      if (res.rejected)
        continue;
      fhir_writer w;
      hvg_buf_reset(&out);
      fhir_w_init(&w, &out, (res.rec.line & 1) ? FHIR_XML : FHIR_JSON, 0);
      hvg_arena_reset(&scratch);
      if (hv_tofhir_bundle(&tf, &w, &res, &scratch, &err) ||
          fhir_w_finish(&w)) {
        fprintf(stderr, "bundle failed: %s: %s\n", err.field, err.msg);
        abort();
      }
    }
  }
  hvg_buf_free(&out);
  hvg_arena_free(&scratch);
  hv_tofhir_free(&tf);
  hv_mapper_free(mp);
  return 0;
}
