/* hv_reader_json — JSON-array exports, streamed one record at a time.
 *
 * The document is never parsed whole: a structural scanner (strings, escapes
 * and bracket depth only) walks to the records array, finds the extent of
 * one item, and cJSON parses just that item. Memory is bounded by the
 * largest record; anything skipped (other keys, over-long records) is
 * consumed as it is scanned. Structure errors around the items (a missing
 * ',' or an unterminated array) are fatal, since no later item can be found
 * reliably; a malformed item whose brackets balance is a record-level error. */
#include "hv_reader_int.h"

#include <string.h>

/* Skip mode drops scanned bytes from the window every this many bytes. */
#define HV__JSKIP_STEP ((size_t)4096)

/* Byte at start+off, reading more input when needed. Returns 1 (byte in *c),
 * 0 at end of input, or a negative error from hv__fill. */
static int hv__jat(hv_reader *r, size_t off, int *c) {
  while (r->start + off >= r->end) {
    int rc = hv__fill(r);
    if (rc <= 0)
      return rc;
  }
  *c = (unsigned char)r->buf[r->start + off];
  return 1;
}

/* Consume n bytes of the window, keeping the line count. */
static void hv__jdrop(hv_reader *r, size_t n) {
  const char *p = r->buf + r->start, *e = p + n;
  while ((p = memchr(p, '\n', (size_t)(e - p))) != NULL) {
    r->line++;
    p++;
  }
  r->start += n;
  r->consumed += n;
}

/* Skip whitespace; the next byte (not consumed) goes to *c. Returns 1, 0 at
 * end of input, or a negative error. */
static int hv__jws(hv_reader *r, int *c) {
  for (;;) {
    int rc = hv__jat(r, 0, c);
    if (rc <= 0)
      return rc;
    if (*c != ' ' && *c != '\t' && *c != '\r' && *c != '\n')
      return 1;
    hv__jdrop(r, 1);
  }
}

/* Scan one JSON value at the window's start. keep: leave it in the window,
 * its length in *len (len may be NULL when !keep); a value longer than max_record is consumed instead and
 * HVG_ETOOBIG returned after it. !keep: consume it. Returns 1, HVG_ESYNTAX
 * (no value, or input ends inside it), HVG_ETOOBIG, HVG_EIO or HVG_ENOMEM. */
static int hv__jscan(hv_reader *r, int keep, size_t *len) {
  int depth = 0, in_str = 0, esc = 0, toobig = 0, c = 0;
  size_t off = 0;
  for (;;) {
    int rc = keep && off > r->o.max_record ? HVG_ETOOBIG : hv__jat(r, off, &c);
    if (rc == HVG_ETOOBIG && off > 0) {
      toobig = keep;
      keep = 0;
      hv__jdrop(r, off);
      off = 0;
      continue;
    }
    if (rc < 0)
      return rc;
    if (rc == 0) { /* only a bare scalar may end at end of input */
      if (depth || in_str || (off == 0 && !toobig))
        return HVG_ESYNTAX;
      break;
    }
    if (in_str) {
      if (esc)
        esc = 0;
      else if (c == '\\')
        esc = 1;
      else if (c == '"' && (in_str = 0, depth == 0)) {
        off++;
        break;
      }
    } else if (c == '"') {
      in_str = 1;
    } else if (c == '{' || c == '[') {
      depth++;
    } else if (c == '}' || c == ']') {
      if (depth == 0)
        break; /* ends a bare scalar */
      if (--depth == 0) {
        off++;
        break;
      }
    } else if (depth == 0 && (c == ',' || c == ' ' || c == '\t' ||
                              c == '\r' || c == '\n')) {
      break;
    }
    off++;
    if (!keep && off >= HV__JSKIP_STEP) {
      hv__jdrop(r, off);
      off = 0;
    }
  }
  if (off == 0 && !toobig)
    return HVG_ESYNTAX;
  if (!keep) {
    hv__jdrop(r, off);
    off = 0;
  }
  if (toobig)
    return HVG_ETOOBIG;
  if (len)
    *len = off;
  return 1;
}

static int hv__jfatal(hv_reader *r, int code, hvg_err *err, const char *what) {
  r->failed = 1;
  if (code == HVG_EIO || code == HVG_ENOMEM)
    return hvg_err_set(err, code, NULL, "cannot read input");
  return hvg_err_set(err, HVG_ESYNTAX, NULL, "line %lu: %s", r->line, what);
}

/* Reads the object key at the window's start into key[cap] (consumed; "" if
 * it does not fit). Returns 1, 0 when it is not a valid JSON string, or a
 * negative error. */
static int hv__jkey(hv_reader *r, char *key, size_t cap) {
  size_t n;
  int rc = hv__jscan(r, 1, &n);
  if (rc <= 0)
    return rc;
  cJSON *s = cJSON_ParseWithLength(r->buf + r->start, n);
  hv__jdrop(r, n);
  int ok = s && cJSON_IsString(s);
  key[0] = '\0';
  if (ok && strlen(s->valuestring) < cap) /* longer keys never match */
    memcpy(key, s->valuestring, strlen(s->valuestring) + 1);
  cJSON_Delete(s);
  return ok;
}

int hv__jarr_open(hv_reader *r, hvg_err *err) {
  const char *path = r->o.records ? r->o.records : "";
  char want[256], key[256];
  int c, rc;
  for (;;) {
    if ((rc = hv__jws(r, &c)) <= 0)
      return hv__jfatal(r, rc, err, "the input ends before the records array");
    if (!*path) {
      if (c != '[')
        return hv__jfatal(r, rc, err,
                          r->o.records ? "the records key does not hold an "
                                         "array"
                                       : "expected a JSON array of records "
                                         "(or set 'records' to its key)");
      hv__jdrop(r, 1);
      return 0;
    }
    if (c != '{')
      return hv__jfatal(r, rc, err,
                        "expected an object holding the records key");
    hv__jdrop(r, 1);
    size_t n = strcspn(path, ".");
    if (n >= sizeof want)
      return hv__jfatal(r, HVG_ESYNTAX, err, "records key too long");
    memcpy(want, path, n);
    want[n] = '\0';
    path += n + (path[n] == '.');
    for (;;) { /* members until `want` */
      if ((rc = hv__jws(r, &c)) <= 0 || c == '}') {
        r->failed = 1;
        return hvg_err_set(err, HVG_ENOTFOUND, NULL,
                           "no key '%s' holding the records", want);
      }
      if (c != '"' || (rc = hv__jkey(r, key, sizeof key)) <= 0)
        return hv__jfatal(r, rc < 0 ? rc : HVG_ESYNTAX, err,
                          "expected a key string");
      if ((rc = hv__jws(r, &c)) <= 0 || c != ':')
        return hv__jfatal(r, rc < 0 ? rc : HVG_ESYNTAX, err, "expected ':'");
      hv__jdrop(r, 1);
      if (strcmp(key, want) == 0)
        break;
      if ((rc = hv__jws(r, &c)) <= 0 || (rc = hv__jscan(r, 0, NULL)) < 0)
        return hv__jfatal(r, rc < 0 ? rc : HVG_ESYNTAX, err,
                          "malformed value");
      if ((rc = hv__jws(r, &c)) <= 0 || (c != ',' && c != '}'))
        return hv__jfatal(r, rc < 0 ? rc : HVG_ESYNTAX, err,
                          "expected ',' or '}'");
      if (c == ',')
        hv__jdrop(r, 1);
    }
  }
}

int hv__jarr_next(hv_reader *r, hv_row *row, hvg_err *err) {
  if (r->jdone)
    return 0;
  int c, rc = hv__jws(r, &c);
  if (rc <= 0)
    return hv__jfatal(r, rc, err, "the input ends inside the records array");
  if (c == ']' && !r->jstarted) {
    r->jdone = 1;
    return 0;
  }
  if (r->jstarted) {
    if (c == ']') {
      r->jdone = 1;
      return 0;
    }
    if (c != ',')
      return hv__jfatal(r, HVG_ESYNTAX, err,
                        "expected ',' or ']' after a record");
    hv__jdrop(r, 1);
    if ((rc = hv__jws(r, &c)) <= 0)
      return hv__jfatal(r, rc, err, "the input ends inside the records array");
  }
  r->jstarted = 1;
  row->line = r->line;
  size_t n;
  rc = hv__jscan(r, 1, &n);
  if (rc == HVG_ETOOBIG)
    return hvg_err_set(err, HVG_ETOOBIG, NULL, "record larger than %zu bytes",
                       r->o.max_record);
  if (rc < 0)
    return hv__jfatal(r, rc, err, "malformed record");
  const char *txt;
  size_t tl;
  rc = hv__decode(r, r->buf + r->start, n, &txt, &tl, err);
  if (rc == 0) {
    cJSON_Delete(r->json);
    r->json = cJSON_ParseWithLength(txt, tl);
  }
  hv__jdrop(r, n);
  if (rc)
    return rc;
  if (!r->json || !cJSON_IsObject(r->json))
    return hvg_err_set(err, HVG_ESYNTAX, NULL, "not a JSON object");
  return 1;
}
