/* hv_export — canonical records out in a program's own layout: the reverse
 * direction of its mapping file (docs/mapping.md, "Export: the reverse
 * direction"). The store, `hvgate export` and the HTTP route decide which
 * records; this module only writes them.
 *
 * A writer is bound to one source of the mapping and fixes its layout when
 * created. Columns: the source's "fields" that have a "from" (mapping-file
 * order), then its "export_fields" (in order). A field mapped twice (under
 * "fields" and "export_fields") is written in each of its columns; a column
 * that several "fields" read is written once, with the first of them that
 * has a value. Constant ("value") fields have no column and are not written.
 *
 * Values go back to the program's form: dates with the field's date_format
 * or the source's (hv_date_format), then through the field's value map
 * reversed (the first label, as written in the map, whose code equals the
 * value, compared case-insensitively as the reader does; consent-scope lists
 * label by label unless the whole list has a label); a value without a
 * label is written as it is, unless it is itself the label of another code
 * (reading it back would give that code): then the record is refused.
 *
 * CSV (RFC 4180): the source's delimiter and quote (',' and '"' for a
 * non-CSV source); a header row of the column names before the first
 * record, unless the source has "header": false, where each column goes
 * where its "#N" key says and gaps stay empty; a value holding the
 * delimiter, the quote, CR or LF is quoted, quotes inside doubled; every
 * line, header included, ends in CRLF. A one-column record with no value is
 * written as "" so that the line is not blank (readers skip blank lines).
 * Text is in the source's encoding (UTF-8, Latin-1 or CP1252), no BOM.
 *
 * NDJSON: one JSON object per record, each line ending in "\n". Keys are the
 * columns: a JSON/NDJSON source's dotted paths nest objects ("child.dob" ->
 * {"child":{"dob":...}}; an index segment such as "scores.0" becomes an
 * object key, which the reader follows too); an XML source's '/' paths nest
 * the same way ("child/@id" -> {"child":{"@id":...}}), an element's own
 * text beside nested keys being "#text" ("." at the record: "#text"); a CSV
 * source's columns are flat keys. Every value is a JSON string (numbers as
 * their canonical text), or null when absent, so every line has every key.
 * The text is UTF-8 (RFC 8259); for a Latin-1 or CP1252 source each
 * non-ASCII character is a \uXXXX escape, so the bytes read the same in all
 * three encodings.
 *
 * In both formats a character the source's encoding cannot represent is an
 * error for that record. Error messages name the column, never a personal
 * value (HV_PHI fields).
 *
 * The layout a record type is exported in is the mapping's first source of
 * that type: hv_mapping_source_of_type (hv_mapping.h).
 *
 * The writer keeps the sink's address but never a pointer into its data:
 * the caller may drain the sink (hvg_buf_reset) or keep appending between
 * rows. Not thread-safe; one writer per output. */
#ifndef HV_EXPORT_H
#define HV_EXPORT_H

#include "hv_mapping.h"

typedef enum hv_export_format {
  HV_EXPORT_CSV = 0,
  HV_EXPORT_NDJSON
} hv_export_format;

typedef struct hv_export hv_export;

/* A writer of records of `src` (which must outlive it) in format fmt,
 * appending to `sink`. Returns 0 and *out (free with hv_export_free); or
 * HVG_EINVAL (NULL argument, unknown format, a source with no column, a
 * column of a "header": false CSV source that is not "#1".."#1024", two
 * NDJSON paths that clash: "a" and "a.b" in a JSON source, or nesting
 * deeper than 32 levels), HVG_EENCODING (a column name the source's
 * encoding cannot represent), HVG_ENOMEM; err->field names the column when
 * one is at fault. On error *out is NULL and the sink is unchanged. */
int hv_export_new(hv_export **out, const hv_source *src, hv_export_format fmt,
                  hvg_buf *sink, hvg_err *err);

/* Appends one record (the CSV header row first, before the first record):
 * v[f] is the canonical value of field f, NULL or "" when absent; dates are
 * YYYY-MM-DD, codes canonical. Returns 0, or, with nothing appended (the
 * sink is cut back to its length before the call) and the record not
 * written:
 *  - HVG_EENCODING: a value is not valid UTF-8 or has a character the
 *    source's encoding cannot represent (err->field = the column);
 *  - HVG_EFORMAT: a value has no label in the field's value map and written
 *    as it is would read back as another code (err->field = the column);
 *  - HVG_EINVAL: NULL argument, or a date value that is not a real
 *    YYYY-MM-DD day (err->field = the column);
 *  - HVG_ETOOBIG: the record does not fit in what is left of the sink's
 *    cap (drain the sink and retry; one that does not fit an empty sink
 *    never will), or a formatted value is over 1 MiB (err->field set);
 *  - HVG_ENOMEM.
 * The writer stays usable after any of these. */
int hv_export_row(hv_export *x, const char *const v[HV_F__COUNT], hvg_err *err);

/* Records written so far (rows that returned 0). */
unsigned long hv_export_count(const hv_export *x);

void hv_export_free(hv_export *x);

#endif
