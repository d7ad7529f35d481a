/* hv_reader — streaming readers for program exports: CSV, JSON, NDJSON, XML.
 *
 * A reader yields one source record at a time and never holds the whole
 * input: memory is bounded by the largest single record (opts.max_record).
 * Fields are addressed by a "key" bound before reading:
 *   CSV:    a header column name ("child_dob"), or "#3" for the 3rd column
 *           (1-based) when the file has no header;
 *   JSON / NDJSON: a dotted path inside the record object ("child.dob",
 *           "scores.0" for an array index); arrays of strings bound to a key
 *           are joined with ',';
 *   XML:    a path relative to the record element: "child/dob" (element
 *           text), "child/@id" (attribute), "@id", "." (own text).
 * Values are UTF-8 (input in another declared encoding is converted). */
#ifndef HV_READER_H
#define HV_READER_H

#include "hvg_err.h"

#include <stddef.h>

typedef enum hv_input_format {
  HV_IN_CSV = 0,
  HV_IN_JSON,   /* one top-level array of record objects (or {"key": [..]}) */
  HV_IN_NDJSON, /* one record object per line */
  HV_IN_XML
} hv_input_format;

typedef enum hv_encoding {
  HV_ENC_UTF8 = 0,
  HV_ENC_LATIN1,  /* ISO-8859-1 */
  HV_ENC_CP1252   /* Windows-1252 */
} hv_encoding;

typedef struct hv_reader_opts {
  hv_input_format format;
  hv_encoding encoding;
  char delimiter;       /* CSV, default ',' */
  char quote;           /* CSV, default '"' */
  int no_header;        /* CSV: first line is data; keys are "#N" */
  const char *records;  /* JSON: key of the array when the top level is an
                           object (NULL: top level is the array);
                           XML: element path of one record from the root,
                           e.g. "export/screenings/screening" (required) */
  size_t max_record;    /* bytes of one record; 0 = 1 MiB */
} hv_reader_opts;

/* One record. Pointers stay valid until the next hv_reader_next or close. */
typedef struct hv_row {
  unsigned long line;  /* line where the record starts (1-based) */
  size_t nslots;       /* == number of bound keys */
  const char **val;    /* val[slot]: NUL-terminated value, NULL if absent */
  const size_t *len;   /* len[slot] */
} hv_row;

typedef struct hv_reader hv_reader;

/* Open `path` ("-" is standard input). For CSV the header line is read now.
 * Returns 0 and *out, or HVG_ENOINPUT / HVG_ESYNTAX / HVG_ENOMEM with `err`
 * filled (field = "", msg says why); *out is NULL on error. The caller closes
 * the reader with hv_reader_close. */
int hv_reader_open(hv_reader **out, const char *path,
                   const hv_reader_opts *opts, hvg_err *err);

/* Same over a memory buffer (not copied; must outlive the reader). `name` is
 * used in messages. */
int hv_reader_open_mem(hv_reader **out, const char *name, const char *data,
                       size_t len, const hv_reader_opts *opts, hvg_err *err);

/* Register a key before the first hv_reader_next; returns its slot (>= 0).
 * CSV: HVG_ENOTFOUND when the header has no such column (err->field = key).
 * HVG_EINVAL for a malformed path; nothing changes on error. */
int hv_reader_bind(hv_reader *r, const char *key, hvg_err *err);

/* Header columns (CSV with header; NULL otherwise) and their count. */
const char *const *hv_reader_columns(const hv_reader *r, size_t *n);

/* Read the next record into *row.
 * Returns 1 for a record, 0 at end of input, or a negative error:
 *  - a record-level error (HVG_ESYNTAX malformed record, HVG_EENCODING invalid
 *    bytes, HVG_ETOOBIG record over max_record, HVG_EFORMAT CSV field count
 *    different from the header): err and row->line say where; the reader has
 *    skipped that record and the next call continues after it;
 *  - a fatal error (HVG_EIO, HVG_ENOMEM, or a syntax error the reader cannot
 *    resynchronise from, e.g. an unterminated CSV quote at end of file, a
 *    broken JSON array or XML document): every later call returns the same
 *    error. hv_reader_failed() tells the two apart. */
int hv_reader_next(hv_reader *r, hv_row *row, hvg_err *err);

/* Nonzero once the reader hit a fatal error. */
int hv_reader_failed(const hv_reader *r);

/* Bytes consumed so far (for progress). */
unsigned long long hv_reader_offset(const hv_reader *r);

void hv_reader_close(hv_reader *r);

#endif
