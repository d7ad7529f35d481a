/* The body shared by the export fuzz targets: read data as source src of
 * the mapping, map every record, and build the Bundle of each accepted one
 * (JSON or XML by line parity). A record the mapper accepts must always
 * build a Bundle: abort() otherwise. */
#ifndef HVG_FUZZ_MAP_ALL_H
#define HVG_FUZZ_MAP_ALL_H

#include "hv_tofhir.h"

#include <stdio.h>
#include <stdlib.h>

static void map_all(const hv_mapping *m, const hv_catalog *cat,
                    const hv_source *src, const char *name, const char *data,
                    size_t len) {
  hv_mapper_opts mo = {20780, 1};
  hv_mapper *mp;
  hv_tofhir tf;
  if (hv_mapper_new(&mp, m, cat, &mo))
    return;
  if (hv_tofhir_init(&tf, m, cat)) {
    hv_mapper_free(mp);
    return;
  }
  hvg_buf out;
  hvg_buf_init(&out, 1 << 20);
  hvg_arena scratch;
  hvg_arena_init(&scratch, 1 << 20);
  hvg_err err;
  if (!hv_mapper_open_mem(mp, name, data, len, src, &err)) {
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
        abort(); /* an accepted record must always make a Bundle */
      }
    }
  }
  hvg_buf_free(&out);
  hvg_arena_free(&scratch);
  hv_tofhir_free(&tf);
  hv_mapper_free(mp);
}

#endif
