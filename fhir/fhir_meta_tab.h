/* fhir_meta_tab — layout of the generated tables (fhir_meta_gen.c); private
 * to fhir_meta.c. Names are offsets into one string pool so that the
 * tables hold no pointers (no relocations, ~12 bytes per element). */
#ifndef FHIR_META_TAB_H
#define FHIR_META_TAB_H

#include "fhir_meta.h"

#include <stdint.h>

typedef struct fhir__meta_el {
  uint32_t name;  /* offset in fhir__meta_str */
  uint16_t type;  /* COMPLEX/BACKBONE: type index */
  uint16_t order; /* position in the spec */
  uint8_t kind;   /* fhir_meta_kind */
  uint8_t prim;   /* fhir_meta_prim */
  uint8_t flags;  /* FHIR_ME_* */
} fhir__meta_el;

typedef struct fhir__meta_type {
  uint32_t name;  /* offset in fhir__meta_str */
  uint32_t first; /* first element in fhir__meta_els and fhir__meta_byname */
  uint16_t n;     /* element count */
  uint8_t cat;    /* fhir_meta_cat */
} fhir__meta_type;

extern const unsigned fhir__meta_ntypes;
extern const char fhir__meta_str[];
extern const fhir__meta_el fhir__meta_els[];
extern const unsigned short fhir__meta_byname[];
extern const fhir__meta_type fhir__meta_types[]; /* sorted by name */

#endif
