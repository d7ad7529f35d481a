/* fhir_xml — FHIR R4 XML text to the same checked cJSON tree as fhir_json
 * (see fhir_json.h for its shape; write it back as XML or JSON with
 * fhir_json_write).
 *
 * Security: the document is parsed with libxml2 from memory through a
 * private parser context (no global handler or option is changed), with
 * XML_PARSE_NONET and never NOENT/DTDLOAD/DTDATTR/DTDVALID. A DOCTYPE is
 * refused as soon as the parser meets it, before any internal subset is
 * read, so no entity is ever declared, expanded or loaded (XXE, billion
 * laughs, external DTDs, parameter entities) and nothing is fetched.
 * Input size and element depth are capped. Input must be UTF-8 (any
 * declared encoding is ignored).
 *
 * Multi-threaded programs call xmlInitParser() once before using this. */
#ifndef FHIR_XML_H
#define FHIR_XML_H

#include "hvg_err.h"

#include <cjson/cJSON.h>
#include <stddef.h>

#define FHIR_NS "http://hl7.org/fhir"
#define FHIR_XHTML_NS "http://www.w3.org/1999/xhtml"

/* Parse FHIR XML text[0..len) (at most max_len bytes) into a tree and check
 * it: root element a known resource in the FHIR namespace, every element
 * known to its type and in specification order, repeats only where the
 * element repeats, primitives as value="..." (booleans, integers and
 * decimals checked and turned into JSON types, decimal text kept), id and
 * extensions of primitives into "_name" companions, Element.id and
 * Extension.url as attributes, Narrative.div kept as canonical XHTML text,
 * nested resources inside their element (<contained><Patient>...).
 * Returns 0 with *out set (caller cJSON_Deletes it), or HVG_ESECURITY
 * ("DOCTYPE is not allowed"), HVG_ETOOBIG (size, depth), HVG_ESYNTAX (not
 * well-formed XML; msg gives the line), HVG_EUNKNOWN (unknown element,
 * attribute or resource type), HVG_EORDER (element out of order),
 * HVG_EFORMAT (namespace, shape or value), HVG_ENOMEM; then err->field is
 * the element path where there is one ("Patient.name[0].given") and *out
 * is NULL: nothing is left to free. */
int fhir_xml_parse(const char *text, size_t len, size_t max_len, cJSON **out,
                   hvg_err *err);

#endif
