#include "fhir_meta.h"

#include "fhir_meta_tab.h"

/* strcmp of a pooled name against name[0..len), which needs no NUL; a name
 * holding a NUL never matches. */
static int meta__cmp(uint32_t off, const char *name, size_t len) {
  const unsigned char *s = (const unsigned char *)fhir__meta_str + off;
  const unsigned char *n = (const unsigned char *)name;
  for (size_t i = 0; i < len; i++) {
    if (s[i] != n[i])
      return s[i] < n[i] ? -1 : 1;
    if (!s[i])
      return -1;
  }
  return s[len] ? 1 : 0;
}

int fhir_meta_type_find(const char *name, size_t len) {
  if (!name)
    return -1;
  size_t lo = 0, hi = fhir__meta_ntypes;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = meta__cmp(fhir__meta_types[mid].name, name, len);
    if (c == 0)
      return (int)mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

int fhir_meta_resource_find(const char *name, size_t len) {
  int t = fhir_meta_type_find(name, len);
  if (t < 0 || fhir__meta_types[t].cat != FHIR_MT_RESOURCE)
    return -1;
  return t;
}

static int meta__valid(int type) {
  return type >= 0 && (unsigned)type < fhir__meta_ntypes;
}

const char *fhir_meta_type_name(int type) {
  return meta__valid(type) ? fhir__meta_str + fhir__meta_types[type].name : "";
}

fhir_meta_cat fhir_meta_type_cat(int type) {
  return meta__valid(type) ? (fhir_meta_cat)fhir__meta_types[type].cat
                           : FHIR_MT_NONE;
}

unsigned fhir_meta_elem_count(int type) {
  return meta__valid(type) ? fhir__meta_types[type].n : 0;
}

unsigned fhir_meta_type_count(void) {
  return fhir__meta_ntypes;
}

static void meta__fill(const fhir__meta_type *t, unsigned i,
                       fhir_meta_elem *out) {
  const fhir__meta_el *e = &fhir__meta_els[t->first + i];
  out->name = fhir__meta_str + e->name;
  out->index = i;
  out->order = e->order;
  out->kind = (fhir_meta_kind)e->kind;
  out->prim = (fhir_meta_prim)e->prim;
  out->flags = e->flags;
  out->type = (e->kind == FHIR_MK_COMPLEX || e->kind == FHIR_MK_BACKBONE)
                  ? (int)e->type
                  : -1;
}

int fhir_meta_elem_at(int type, unsigned i, fhir_meta_elem *out) {
  if (!meta__valid(type) || i >= fhir__meta_types[type].n)
    return -1;
  meta__fill(&fhir__meta_types[type], i, out);
  return 0;
}

int fhir_meta_elem_find(int type, const char *name, size_t len,
                        fhir_meta_elem *out) {
  if (!meta__valid(type) || !name)
    return -1;
  const fhir__meta_type *t = &fhir__meta_types[type];
  const unsigned short *idx = fhir__meta_byname + t->first;
  size_t lo = 0, hi = t->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    unsigned i = idx[mid];
    int c = meta__cmp(fhir__meta_els[t->first + i].name, name, len);
    if (c == 0) {
      meta__fill(t, i, out);
      return 0;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

int fhir_meta_kind_is_primitive(fhir_meta_kind k) {
  return k >= FHIR_MK_STRING && k <= FHIR_MK_XHTML;
}
