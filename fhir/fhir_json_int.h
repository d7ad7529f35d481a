/* fhir_json_int — helpers shared by fhir_json.c and fhir_xml.c; private to
 * fhir/ (not part of any public API). */
#ifndef FHIR_JSON_INT_H
#define FHIR_JSON_INT_H

#include "fhir_meta.h"
#include "hvg_buf.h"
#include "hvg_err.h"

#include <stddef.h>

struct _xmlNode;
struct cJSON;

/* Element path for error messages ("Patient.name[1].given"). Segments
 * point at names that outlive the walk (tree keys, table names, XML node
 * names); the text is only built when an error is reported. */
#define FHIR__PATH_MAX 64
typedef struct fhir__path {
  int n; /* segments pushed (may exceed FHIR__PATH_MAX: not stored) */
  struct {
    const char *name; /* NULL: an array index */
    size_t index;
  } seg[FHIR__PATH_MAX];
} fhir__path;

void fhir__path_init(fhir__path *p);
void fhir__path_push(fhir__path *p, const char *name);
void fhir__path_push_index(fhir__path *p, size_t i);
void fhir__path_pop(fhir__path *p);
/* Record a failure at path p (plus `last` as a final segment if non-NULL)
 * in err; returns code. */
int fhir__fail(hvg_err *err, int code, const fhir__path *p, const char *last,
               const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* The strict RFC 8259 parser of fhir_json_parse, without the FHIR checks:
 * text[0..len) (a leading BOM skipped) to a cJSON tree whose numbers are
 * cJSON_Raw nodes holding their text as written. Strings follow FHIR's
 * character rules (no C0 control but tab/CR/LF, no U+FFFE/U+FFFF:
 * HVG_EFORMAT); nesting deeper than FHIR_PARSE_MAX_DEPTH is HVG_ETOOBIG;
 * duplicate keys are kept, in order (the caller checks them). No size cap:
 * the caller bounds len. Returns 0 with *out set (the caller cJSON_Deletes
 * it), or HVG_ESYNTAX / HVG_EENCODING / HVG_EFORMAT / HVG_ETOOBIG with
 * "line L, column C: ..." in err->msg, or HVG_ENOMEM; *out is NULL then. */
int fhir__json_parse_text(const char *text, size_t len, struct cJSON **out,
                          hvg_err *err);

/* FHIR integer (integer, unsignedInt, positiveInt by `prim`) from its
 * lexical form -?(0|[1-9][0-9]*), "-0" excluded: 0 and *v set, or -1 with
 * a reason in *why (a static string). */
int fhir__int_parse(const char *s, size_t n, fhir_meta_prim prim, long *v,
                    const char **why);

/* 1 when s[0..n) is a JSON number (= FHIR decimal's lexical form). */
int fhir__is_number(const char *s, size_t n);

/* Canonical XHTML of a Narrative div (element node), appended to out:
 * <div xmlns="http://www.w3.org/1999/xhtml" ...>...</div> with unprefixed
 * XHTML elements, attributes in document order, text escaped the way the
 * writer escapes (& < > and tab/CR/LF in attributes, CR in text),
 * comments kept, processing instructions dropped, childless elements as
 * <x/>. Canonical text reparses to itself, which is what makes JSON <-> XML
 * round trips exact. Returns 0 or HVG_EFORMAT (element or attribute in
 * another namespace; field = path) / buffer error. */
int fhir__xhtml_canon_node(const struct _xmlNode *div, hvg_buf *out,
                           const fhir__path *path, hvg_err *err);

/* Same from XHTML text (the JSON form of a div), parsed under the same
 * security rules as fhir_xml_parse. On success *canon is a malloc'd string
 * the caller frees. Returns 0 or HVG_E* (SYNTAX, SECURITY, FORMAT, TOOBIG,
 * NOMEM) with err filled; *canon is NULL then. */
int fhir__xhtml_canon_text(const char *text, size_t len, char **canon,
                           const fhir__path *path, hvg_err *err);

#endif
