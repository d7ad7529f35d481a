/* fhir_patch — JSON Patch (RFC 6902) over the cJSON trees of fhir_json.
 *
 * Owns the parsed form of a patch document (struct fhir_patch: the parsed
 * tree and its checked list of operations) and the application of one to a
 * tree, atomically. It does not validate FHIR: the caller serializes the
 * result and parses it again with fhir_json_parse.
 *
 * Numbers of the patch keep their text: a patch adding 1.50 puts a
 * cJSON_Raw node "1.50" in the tree, as fhir_json_parse would, so a FHIR
 * decimal keeps its precision. The patch is parsed with fhir_json's strict
 * RFC 8259 parser, so its strings follow the same character rules (no C0
 * control but tab/CR/LF, no U+FFFE/U+FFFF).
 *
 * JSON Pointers (RFC 6901): "" is the whole document, "~0" stands for '~'
 * and "~1" for '/', array indexes are 0 or digits without a leading zero,
 * and "-" (past the last element) is only allowed as the last token of the
 * path of an "add" (append).
 *
 * Bounds: FHIR_PATCH_MAX_OPS operations, FHIR_PATCH_MAX_POINTER bytes per
 * pointer, patch nesting at most FHIR_PARSE_MAX_DEPTH (the array of
 * operations is level 1, so a value may nest FHIR_PARSE_MAX_DEPTH - 2
 * levels), and a patched document never nests deeper than
 * FHIR_PARSE_MAX_DEPTH nor gains more than FHIR_PATCH_MAX_COPY bytes through
 * "copy" operations (which could otherwise double it with every operation).
 * No recursion goes deeper than FHIR_PARSE_MAX_DEPTH + 1. No global state;
 * nothing is printed. */
#ifndef FHIR_PATCH_H
#define FHIR_PATCH_H

#include "hvg_err.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* Operations in one patch document. */
#define FHIR_PATCH_MAX_OPS 1000
/* Bytes of one "path" or "from" (after JSON unescaping). */
#define FHIR_PATCH_MAX_POINTER 1024
/* A reasonable max_len for fhir_patch_parse when the caller has none. */
#define FHIR_PATCH_MAX_INPUT ((size_t)1 << 20)
/* Bytes "copy" operations may add to a document in one fhir_patch_apply,
 * counting each node as sizeof(cJSON) plus its strings. */
#define FHIR_PATCH_MAX_COPY ((size_t)16 << 20)

/* A parsed, checked patch document; opaque. Reusable and never changed by
 * fhir_patch_apply, so it may be applied to many documents. */
typedef struct fhir_patch fhir_patch;

/* Parse a JSON Patch document (an array of operation objects) from
 * text[0..len), at most max_len bytes (a leading BOM is skipped). Every
 * operation must have "op" (add, remove, replace, move, copy or test) and
 * "path", "from" for move and copy, "value" for add, replace and test (null
 * is a value); other members are ignored (RFC 6902 section 4). Pointers are
 * checked for syntax here, against a document by fhir_patch_apply. An empty
 * array is a valid patch that changes nothing.
 * Returns 0 with *out set (free it with fhir_patch_free), or:
 *  - HVG_ESYNTAX: not JSON; HVG_EENCODING: not UTF-8 (both with "line L,
 *    column C: ..." in msg); HVG_EFORMAT from the parser too for a character
 *    FHIR does not allow (field "");
 *  - HVG_EFORMAT: not an array of valid operations, or a duplicate key
 *    anywhere; err->field is a JSON Pointer into the patch document ("/3/op",
 *    "/3/path", "/0/value/code" for a duplicate key, "" for the document)
 *    and msg says what is wrong;
 *  - HVG_ETOOBIG: len > max_len, nesting deeper than FHIR_PARSE_MAX_DEPTH,
 *    more than FHIR_PATCH_MAX_OPS operations (field ""), or a pointer longer
 *    than FHIR_PATCH_MAX_POINTER (field "/3/path");
 *  - HVG_EINVAL: text or out NULL; HVG_ENOMEM.
 * On error *out is NULL (when out is not) and nothing is left to free. */
int fhir_patch_parse(const char *text, size_t len, size_t max_len,
                     fhir_patch **out, hvg_err *err);

/* Release p (NULL is fine). */
void fhir_patch_free(fhir_patch *p);

/* Apply p to the tree *doc (a root: not an item of another tree),
 * atomically: the operations run in order on a copy of the tree; when they
 * all succeed the copy replaces *doc (the old tree is freed, so pointers
 * into it become invalid), otherwise the copy is dropped and *doc is left
 * exactly as it was. A patch of only "test" operations (or none) needs no
 * copy: *doc then always stays the same tree. p is only read.
 * Semantics are RFC 6902's: "add" on an existing object member replaces its
 * value in place, on an array inserts before the index (or appends at the
 * size or "-"); "move" removes then adds; "test" compares with JSON
 * equality (objects by members in any order, arrays item by item, strings
 * byte for byte, numbers by value: Raw "1.0" equals Raw "1", and a cJSON
 * number equals the shortest decimal text that reads back as it; booleans
 * and null by type).
 * Returns 0, or with err->field = "/i" (the index of the failing
 * operation) and msg = the operation, the pointer and the reason:
 *  - HVG_ESTATE: a "test" found a value that is not equal;
 *  - HVG_ENOTFOUND: a path does not exist where it must (remove, replace,
 *    test, the "from" of move and copy, the parent of an add), including a
 *    pointer going through a string, number, boolean or null;
 *  - HVG_EFORMAT: an array index that is not one ("01", "x", "-" where not
 *    allowed) or out of range (past the size, or at the size except for
 *    add), removing the whole document, or moving a value into its own
 *    child;
 *  - HVG_ETOOBIG: *doc, or what the patch would make of it, nests deeper
 *    than FHIR_PARSE_MAX_DEPTH, or copies exceed FHIR_PATCH_MAX_COPY;
 *  - HVG_EINVAL: p, doc or *doc NULL; HVG_ENOMEM.
 * err->field is "" when no operation is at fault: *doc already too deep,
 * no memory for the working copy, bad arguments.
 * On error *doc is unchanged. */
int fhir_patch_apply(const fhir_patch *p, cJSON **doc, hvg_err *err);

#endif
