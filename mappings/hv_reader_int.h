/* hv_reader_int — what the format parts of hv_reader share: the reader
 * struct, the input window and the value helpers (and, with hv_export, the
 * Windows-1252 table). Not a public API. */
#ifndef HV_READER_INT_H
#define HV_READER_INT_H

#include "hv_reader.h"
#include "hvg_buf.h"

#include <cjson/cJSON.h>
#include <stddef.h>

#define HV__CHUNK ((size_t)64 * 1024)
#define HV__MAX_KEYS 256
#define HV__MAX_COLS 1024

struct hv_reader {
  hv_reader_opts o;
  const char *name;
  int fd; /* -1 for memory input */
  const char *mem;
  size_t mem_len, mem_off;
  char *buf; /* window: [start, end) unread */
  size_t cap, start, end;
  int eof;
  int failed;
  unsigned long line; /* physical line of buf[start] */
  unsigned long long consumed;
  /* CSV */
  char **cols; /* header names */
  size_t ncols;
  char **fields; /* current record */
  size_t *flen;
  size_t nfields, fields_cap;
  unsigned char csv_stop[256]; /* bytes that end an unquoted field, and NUL */
  size_t rec_begin; /* CSV: the last record's bytes are [rec_begin, start) */
  /* bound keys */
  char *keys[HV__MAX_KEYS];
  int key_col[HV__MAX_KEYS]; /* CSV column, -1 absent */
  size_t nkeys;
  const char *val[HV__MAX_KEYS];
  size_t len[HV__MAX_KEYS];
  /* NDJSON and JSON arrays: the current record */
  cJSON *json;
  int jstarted, jdone; /* JSON array: first item read, closing ']' seen */
  struct hv__xml *xml; /* XML state (hv_reader_xml.c) */
  hvg_buf conv; /* encoding conversion / JSON value text */
};

/* Windows-1252 bytes 0x80-0x9F as Unicode code points (0: undefined byte);
 * the other bytes are their own code point. Shared with hv_export, which
 * encodes the other way. */
extern const unsigned short hv__cp1252[32];

/* Reads more input into the window. Returns 1 when bytes were added, 0 at end
 * of input, HVG_ETOOBIG when the unread part already exceeds max_record,
 * HVG_EIO or HVG_ENOMEM. Offsets relative to r->start stay valid; absolute
 * pointers into r->buf do not. */
int hv__fill(hv_reader *r);

/* Makes s[0..n) UTF-8 per the declared encoding: *out is s itself (validated
 * UTF-8) or a converted copy in r->conv. Returns 0 or HVG_EENCODING /
 * HVG_ETOOBIG with err set. */
int hv__decode(hv_reader *r, const char *s, size_t n, const char **out,
               size_t *outlen, hvg_err *err);

/* Text of the value at a dotted path in r->json (copied into r->conv); NULL
 * when absent, null, an object, or when r->conv is full. */
const char *hv__json_path(hv_reader *r, const char *path, size_t *len);

/* JSON array exports (hv_reader_json.c): find the records array after open;
 * read the next record into r->json. Same contracts as hv_reader_next. */
int hv__jarr_open(hv_reader *r, hvg_err *err);
int hv__jarr_next(hv_reader *r, hv_row *row, hvg_err *err);

/* XML exports (hv_reader_xml.c). open sets r->xml; bind checks a key's path;
 * next fills r->val/r->len for the bound keys; close frees r->xml. */
int hv__xml_open(hv_reader *r, hvg_err *err);
int hv__xml_bind(hv_reader *r, const char *key, hvg_err *err);
int hv__xml_next(hv_reader *r, hv_row *row, hvg_err *err);
void hv__xml_close(hv_reader *r);

#endif
