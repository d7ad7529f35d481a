/* fhir_meta — the shape of every FHIR R4 resource, datatype and backbone
 * element: which elements it has, in which order, whether they repeat and
 * what they hold.
 *
 * The tables are generated from the official StructureDefinitions by
 * tools/gen_fhir_meta.js into fhir_meta_gen.c (static const, committed, so
 * the build needs no node). Choice elements are expanded: Observation has
 * valueQuantity, valueString... all at the position of value[x] (they share
 * `order`). Inline backbone elements are types of their own, named by path
 * ("Patient.contact"). Lookups allocate nothing and never fail other than
 * "not found"; types are ints (index into the tables), -1 for none. */
#ifndef FHIR_META_H
#define FHIR_META_H

#include <stddef.h>

/* What an element holds, i.e. its JSON shape. */
typedef enum fhir_meta_kind {
  FHIR_MK_NONE = 0,
  FHIR_MK_STRING,   /* JSON string: string, code, uri, date, id, ... */
  FHIR_MK_BOOLEAN,  /* JSON true/false */
  FHIR_MK_INTEGER,  /* JSON integer: integer, positiveInt, unsignedInt */
  FHIR_MK_DECIMAL,  /* JSON number, text kept exactly */
  FHIR_MK_XHTML,    /* Narrative.div: XHTML, a string in JSON */
  FHIR_MK_COMPLEX,  /* a datatype (Coding, Extension...): `type` */
  FHIR_MK_BACKBONE, /* an element defined inline (Patient.contact): `type` */
  FHIR_MK_RESOURCE  /* any resource (contained, Bundle.entry.resource) */
} fhir_meta_kind;

/* The FHIR primitive type of a primitive element (FHIR_MP_NONE otherwise). */
typedef enum fhir_meta_prim {
  FHIR_MP_NONE = 0,
  FHIR_MP_BASE64BINARY,
  FHIR_MP_BOOLEAN,
  FHIR_MP_CANONICAL,
  FHIR_MP_CODE,
  FHIR_MP_DATE,
  FHIR_MP_DATETIME,
  FHIR_MP_DECIMAL,
  FHIR_MP_ID,
  FHIR_MP_INSTANT,
  FHIR_MP_INTEGER,
  FHIR_MP_MARKDOWN,
  FHIR_MP_OID,
  FHIR_MP_POSITIVEINT,
  FHIR_MP_STRING,
  FHIR_MP_TIME,
  FHIR_MP_UNSIGNEDINT,
  FHIR_MP_URI,
  FHIR_MP_URL,
  FHIR_MP_UUID,
  FHIR_MP_XHTML
} fhir_meta_prim;

typedef enum fhir_meta_cat {
  FHIR_MT_NONE = 0,
  FHIR_MT_RESOURCE, /* a concrete resource (Patient) */
  FHIR_MT_DATATYPE, /* a complex datatype (HumanName), or Element */
  FHIR_MT_BACKBONE  /* an inline element (Patient.contact) */
} fhir_meta_cat;

#define FHIR_ME_REPEATS 1u /* max != "1": a JSON array, repeated in XML */
#define FHIR_ME_CHOICE 2u  /* one variant of a choice element (value[x]) */
#define FHIR_ME_ATTR 4u    /* XML attribute: Element.id, Extension.url */

/* Bounds over all types, checked by the generated tables at compile time. */
#define FHIR_META_MAX_ORDER 128 /* distinct positions in one type */
#define FHIR_META_MAX_ELEMS 512 /* elements of one type, choices expanded */

typedef struct fhir_meta_elem {
  const char *name; /* static: valid for the life of the program */
  unsigned index;   /* in the type's element list (0..count-1) */
  unsigned order;   /* position in the spec; choice variants share it */
  fhir_meta_kind kind;
  fhir_meta_prim prim;
  unsigned flags; /* FHIR_ME_* */
  int type;       /* COMPLEX/BACKBONE: the element's type; else -1 */
} fhir_meta_elem;

/* Type by name ("Patient", "HumanName", "Patient.contact", "Element"):
 * its index, or -1 when unknown. `len` is the name's length. */
int fhir_meta_type_find(const char *name, size_t len);

/* Like fhir_meta_type_find, but only concrete resource types match. */
int fhir_meta_resource_find(const char *name, size_t len);

/* Name ("" for an invalid type), category and element count of a type. */
const char *fhir_meta_type_name(int type);
fhir_meta_cat fhir_meta_type_cat(int type);
unsigned fhir_meta_elem_count(int type);
unsigned fhir_meta_type_count(void);

/* Element `i` (0..count-1) of a type in specification order. Returns 0,
 * or -1 (out is untouched) when type or i is out of range. */
int fhir_meta_elem_at(int type, unsigned i, fhir_meta_elem *out);

/* Element `name[0..len)` of a type (binary search). Returns 0, or -1 (out
 * is untouched) when the type has no such element. */
int fhir_meta_elem_find(int type, const char *name, size_t len,
                        fhir_meta_elem *out);

/* 1 for the primitive kinds (STRING..XHTML), 0 otherwise. */
int fhir_meta_kind_is_primitive(fhir_meta_kind k);

#endif
