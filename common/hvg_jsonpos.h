/* hvg_jsonpos — where in a JSON text a value is, for error messages.
 *
 * Configuration and mapping files are parsed with cJSON, which keeps no
 * positions; this scanner finds the line of the value at a JSON Pointer
 * (RFC 6901: "/sources/0/fields/child.id"), so errors read
 * "mapping.json:42: /sources/0/fields/child.id: unknown field". */
#ifndef HVG_JSONPOS_H
#define HVG_JSONPOS_H

#include <stddef.h>

/* Line (1-based) where the value at `pointer` starts. When the value itself
 * is absent, the line of its deepest existing ancestor ("" is the document).
 * Returns 0 only when text is empty or not scannable JSON at all. */
unsigned long hvg_jsonpos_line(const char *text, size_t len,
                               const char *pointer);

#endif
