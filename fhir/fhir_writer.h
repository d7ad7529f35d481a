/* fhir_writer — streams FHIR R4 JSON or XML into an hvg_buf, no tree.
 *
 * Builders describe a resource as a sequence of events (begin object, string
 * element, end object...) and the writer renders them in either format. This
 * keeps the hot path (one Bundle per source record) free of per-node
 * allocation; see docs/decisions.md for the measurement behind the choice.
 *
 * Rules the writer enforces, so that callers need not:
 *  - NULL or empty strings are skipped (FHIR forbids "" values);
 *  - objects and arrays are opened lazily: one that ends with no content
 *    leaves no trace (FHIR forbids {} and []);
 *  - XML: primitives become <name value="..."/>, `id` of a datatype or
 *    backbone element and `url` of an extension become attributes, a nested
 *    resource is wrapped in its element (<resource><Patient>...).
 * Callers must emit elements in the order of the FHIR specification; the XML
 * parser (fhir_xml) checks that order when reading it back.
 *
 * Errors are sticky (like ferror): the first failure stops all further
 * output and is returned by fhir_w_finish / fhir_w_error. */
#ifndef FHIR_WRITER_H
#define FHIR_WRITER_H

#include "hvg_buf.h"
#include "hvg_err.h"

#include <stddef.h>
#include <string.h>

typedef enum fhir_format { FHIR_JSON = 0, FHIR_XML = 1 } fhir_format;

#define FHIR_W_PRETTY 1u      /* indent two spaces per level */
#define FHIR_W_NO_XMLDECL 2u  /* XML: omit the <?xml ...?> declaration */
#define FHIR_W_MAX_DEPTH 48

typedef struct fhir__wframe {
  const char *name;  /* element name (arrays: of each item) */
  const char *outer; /* XML: wrapper element of a nested resource */
  unsigned char kind;
  unsigned char opened;     /* start written */
  unsigned char tag_open;   /* XML: "<name attrs" written, '>' not yet */
  unsigned char attrs_ok;   /* XML: attributes may still be added */
  unsigned char is_ext;     /* XML: Extension (url is an attribute) */
  unsigned char wrapped;    /* XML: resource inside a wrapper element */
  unsigned int count;       /* children written */
  unsigned int nlen;        /* strlen(name) when not inside an array */
  size_t start;             /* JSON: offset in out of its '{' or '[' */
} fhir__wframe;

typedef struct fhir_writer {
  hvg_buf *out;
  fhir_format fmt;
  unsigned flags;
  int err;
  int depth;
  fhir__wframe stack[FHIR_W_MAX_DEPTH];
} fhir_writer;

/* Prepare to append to `out` (not reset). Never fails. */
void fhir_w_init(fhir_writer *w, hvg_buf *out, fhir_format fmt, unsigned flags);

/* A resource: at top level pass name NULL; as an element value (Bundle
 * entry.resource, Parameters.parameter.resource) pass the element name; as
 * an array item (contained) pass NULL inside the array. */
void fhir_w_resource_begin(fhir_writer *w, const char *name, const char *type);
void fhir_w_resource_end(fhir_writer *w);

/* What the inline entry points below call: name_len is strlen(name), 0 for
 * NULL, taken where the name is usually a literal (so a constant). */
void fhir__w_object_begin(fhir_writer *w, const char *name, size_t name_len);
void fhir__w_array_begin(fhir_writer *w, const char *name, size_t name_len);
void fhir__w_string(fhir_writer *w, const char *name, size_t name_len,
                    const char *value, size_t len);
#define FHIR__W_NLEN(name) ((name) ? strlen(name) : 0)

/* A complex element (datatype or backbone). name NULL inside an array. */
static inline void fhir_w_object_begin(fhir_writer *w, const char *name) {
  fhir__w_object_begin(w, name, FHIR__W_NLEN(name));
}
void fhir_w_object_end(fhir_writer *w);

/* A repeating element; items are written with name NULL. */
static inline void fhir_w_array_begin(fhir_writer *w, const char *name) {
  fhir__w_array_begin(w, name, FHIR__W_NLEN(name));
}
void fhir_w_array_end(fhir_writer *w);

/* Primitive elements. fhir_w_string skips NULL and "". fhir_w_number takes
 * the decimal's text as is (so "1.50" keeps its precision) and must be a
 * valid JSON number (HVG_EFORMAT otherwise). */
static inline void fhir_w_string(fhir_writer *w, const char *name,
                                 const char *value) {
  if (value && *value)
    fhir__w_string(w, name, FHIR__W_NLEN(name), value, strlen(value));
}
static inline void fhir_w_stringn(fhir_writer *w, const char *name,
                                  const char *value, size_t len) {
  if (value && len)
    fhir__w_string(w, name, FHIR__W_NLEN(name), value, len);
}
void fhir_w_number(fhir_writer *w, const char *name, const char *text);
void fhir_w_int(fhir_writer *w, const char *name, long long value);
void fhir_w_bool(fhir_writer *w, const char *name, int value);

/* Compact JSON only (no FHIR_W_PRETTY): where in the output buffer the
 * innermost element that is still open began (its '{' or '['), or
 * SIZE_MAX when it is not written yet, in XML or pretty JSON. What was
 * written from there to the element's end is a complete JSON value that
 * fhir_w_json can write again elsewhere. */
size_t fhir_w_start(const fhir_writer *w);

/* 1 when w writes compact JSON (JSON without FHIR_W_PRETTY), else 0. */
int fhir_w_compact(const fhir_writer *w);

/* Compact JSON only: writes json[0..len), a complete value this writer made
 * before (see fhir_w_start), as element `name` (NULL in an array), with the
 * same separators and lazy opening as any element. For a caller that built
 * the same element from the same input before and keeps its bytes. Not
 * compact JSON, or len 0: HVG_EINVAL. */
void fhir_w_json(fhir_writer *w, const char *name, const char *json,
                 size_t len);

/* JSON only: a null item of a primitive array, keeping it aligned with its
 * "_name" companion array (["a", null] / [null, {"id": "x"}]). Outside an
 * array, or in XML (where such items are simply absent), HVG_EINVAL. */
void fhir_w_null(fhir_writer *w);

/* Narrative div: XHTML text; written raw in XML, as a string in JSON. */
void fhir_w_xhtml(fhir_writer *w, const char *name, const char *div);

/* XML only: a primitive that carries an id and/or extensions:
 * <name id=".." value="..">children</name>. value and id may be NULL; json
 * writers get HVG_EINVAL (JSON puts these in a "_name" object instead). */
void fhir_w_prim_begin(fhir_writer *w, const char *name, const char *value,
                       const char *id);
void fhir_w_prim_end(fhir_writer *w);

/* First error, or 0. */
int fhir_w_error(const fhir_writer *w);

/* Check that every begin has its end and NUL-terminate the buffer (appends
 * skip that while writing); returns the sticky error, HVG_ESTATE
 * when elements are still open, or 0. */
int fhir_w_finish(fhir_writer *w);

#endif
