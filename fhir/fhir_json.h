/* fhir_json — FHIR R4 JSON text to a checked cJSON tree, and any such tree
 * back out as FHIR JSON or XML through fhir_writer.
 *
 * The tree (shared with fhir_xml, which builds the same shape from XML) is
 * the resource as FHIR JSON has it: an object with "resourceType", each
 * element under its JSON name (choices concrete: "valueQuantity"),
 * repeating elements as arrays, a primitive's id/extensions in its "_name"
 * companion (for repeats, arrays aligned with the values, null where an
 * item has no value or no companion). Types of values:
 *  - string-like primitives and Narrative.div: cJSON strings;
 *  - boolean: cJSON true/false; integer/positiveInt/unsignedInt: numbers;
 *  - decimal: cJSON_Raw nodes holding the number's text exactly as written
 *    ("1.50", "1e2"): cJSON keeps numbers as doubles, which would turn 1.50
 *    into 1.5, so our own RFC 8259 parser keeps the text and cJSON_Print
 *    prints Raw nodes verbatim.
 * Normalisations (so JSON and XML give equal trees): a Narrative div is
 * rewritten in canonical XHTML form (see fhir_json_int.h); a "name" or
 * "_name" array holding only nulls is dropped. Nothing else is changed.
 *
 * Ownership: a tree returned by a parser belongs to the caller, who frees
 * it with cJSON_Delete. Writers only read the tree. */
#ifndef FHIR_JSON_H
#define FHIR_JSON_H

#include "fhir_writer.h"
#include "hvg_buf.h"
#include "hvg_err.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* Nesting limit of a tree (objects and arrays, the resource itself is 1):
 * what fhir_writer can write back. */
#define FHIR_PARSE_MAX_DEPTH FHIR_W_MAX_DEPTH
/* A reasonable input cap when the caller has none of its own. */
#define FHIR_PARSE_MAX_INPUT ((size_t)64 << 20)

/* Parse FHIR JSON text[0..len) (UTF-8, at most max_len bytes; a leading BOM
 * is skipped) into a tree and check it against the R4 definitions:
 * resourceType present and known,
 * every key an element of its type (or "_" companion of a primitive),
 * arrays exactly for repeating elements, values of the right JSON type and
 * lexical form, no duplicate keys, at most one variant of a choice, no
 * empty strings/objects/arrays, no control characters.
 * Returns 0 with *out set (caller cJSON_Deletes it), or HVG_ETOOBIG (size or
 * depth), HVG_ESYNTAX / HVG_EENCODING (not JSON / not UTF-8; msg gives
 * line and column), HVG_EUNKNOWN (unknown element or resource type),
 * HVG_EMISSING (no resourceType), HVG_EFORMAT (shape or value), HVG_ENOMEM
 * or HVG_ESECURITY (a div with a DOCTYPE); then err->field is the element
 * path ("Observation.valueQuantity.foo") where there is one, and *out is
 * NULL: nothing is left to free. */
int fhir_json_parse(const char *text, size_t len, size_t max_len, cJSON **out,
                    hvg_err *err);

/* Write resource tree `res` through w in JSON or XML (w's format), every
 * object's elements in specification order (Element.id and Extension.url
 * first, as XML needs them as attributes) whatever the key order of the
 * tree. `name`: NULL for a top-level resource or an array item, else the
 * element the resource is the value of (as fhir_w_resource_begin).
 * Returns 0, or HVG_EUNKNOWN / HVG_EFORMAT / HVG_EINVAL when the tree is
 * not a FHIR resource (err->field = path), or the writer's error. On error
 * the output is partial: the caller truncates its buffer. Does not call
 * fhir_w_finish. */
int fhir_json_write(fhir_writer *w, const char *name, const cJSON *res,
                    hvg_err *err);

/* Convenience: write `res` as a whole document (fhir_w_init, fhir_json_write,
 * fhir_w_finish) appending to `out` with FHIR_W_* flags. Returns 0 or as
 * fhir_json_write / the writer; on error out is restored to its length on
 * entry. */
int fhir_json_serialize(const cJSON *res, fhir_format fmt, unsigned flags,
                        hvg_buf *out, hvg_err *err);

/* 1 when two trees are equal: same keys (in any order) with equal values,
 * arrays item by item, Raw numbers by text. NULLs are equal to each other
 * only. */
int fhir_json_equal(const cJSON *a, const cJSON *b);

#endif
