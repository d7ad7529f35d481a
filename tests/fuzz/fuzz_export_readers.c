/* libFuzzer: the JSON-array, XML and NDJSON export readers and the mapping
 * engine on arbitrary bytes. The first byte picks the source of
 * tests/data/mappings/program-export-alt.json (screenings as JSON or XML,
 * referrals as XML, consents as NDJSON) and the record size cap; the rest is
 * the file. Nothing may crash, leak or trip a sanitizer, and a record the
 * mapper accepts must always build a Bundle. */
#include "map_all.h"

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
  map_all(g_map, g_cat, &src, "fuzz", (const char *)data + 1, size - 1);
  return 0;
}
