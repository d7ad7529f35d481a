/* hv_reader — the reader API, the input window, and the CSV (RFC 4180) and
 * NDJSON formats; JSON arrays are in hv_reader_json.c, XML in
 * hv_reader_xml.c.
 *
 * Input is read in 64 KiB chunks into a window that holds at most one record
 * (opts.max_record); fields are NUL-terminated in place, quoted fields
 * unescaped in place, so a record costs no allocation. */
#include "hv_reader_int.h"

#include "hvg_buf.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int hv__fill(hv_reader *r) {
  if (r->eof)
    return 0;
  if (r->start > 0 && r->start == r->end) {
    r->start = r->end = 0;
  } else if (r->start > r->cap / 2) {
    memmove(r->buf, r->buf + r->start, r->end - r->start);
    r->end -= r->start;
    r->start = 0;
  }
  if (r->cap - r->end < HV__CHUNK + 1) {
    size_t limit = r->o.max_record + HV__CHUNK + 1;
    if (r->end - r->start >= r->o.max_record + 1)
      return HVG_ETOOBIG;
    size_t ncap = r->cap ? r->cap * 2 : HV__CHUNK * 2 + 1;
    if (ncap > limit + r->start)
      ncap = limit + r->start;
    if (ncap <= r->cap) {
      memmove(r->buf, r->buf + r->start, r->end - r->start);
      r->end -= r->start;
      r->start = 0;
    } else {
      char *nb = realloc(r->buf, ncap);
      if (!nb)
        return HVG_ENOMEM;
      r->buf = nb;
      r->cap = ncap;
    }
  }
  size_t room = r->cap - r->end - 1;
  if (room > HV__CHUNK)
    room = HV__CHUNK;
  ssize_t n;
  if (r->fd >= 0) {
    do
      n = read(r->fd, r->buf + r->end, room);
    while (n < 0 && errno == EINTR);
    if (n < 0)
      return HVG_EIO;
  } else {
    n = (ssize_t)(r->mem_len - r->mem_off < room ? r->mem_len - r->mem_off
                                                 : room);
    memcpy(r->buf + r->end, r->mem + r->mem_off, (size_t)n);
    r->mem_off += (size_t)n;
  }
  if (n == 0)
    r->eof = 1;
  r->end += (size_t)n;
  r->buf[r->end] = '\0';
  return n > 0;
}

/* Converts in -> UTF-8 in r->conv per the declared encoding, or validates
 * UTF-8. Returns 0 or HVG_EENCODING with *bad = offset. */
const unsigned short hv__cp1252[32] = {
    0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D, 0,
    0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178};

static int hv__utf8_valid(const unsigned char *s, size_t n, size_t *bad) {
  size_t i = 0;
  while (i < n) {
    if (i + 8 <= n) { /* ASCII 8 bytes at a time */
      uint64_t v;
      memcpy(&v, s + i, 8);
      if (!(v & 0x8080808080808080ull)) {
        i += 8;
        continue;
      }
    }
    unsigned char c = s[i];
    size_t k;
    unsigned cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      k = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      k = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      k = 3;
      cp = c & 0x07;
    } else {
      *bad = i;
      return 0;
    }
    for (size_t j = 1; j <= k; j++) {
      if (i + j >= n || (s[i + j] & 0xC0) != 0x80) {
        *bad = i;
        return 0;
      }
      cp = (cp << 6) | (s[i + j] & 0x3F);
    }
    if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) ||
        (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      *bad = i;
      return 0;
    }
    i += k + 1;
  }
  return 1;
}

static int hv__put_utf8(hvg_buf *b, unsigned cp) {
  char t[3];
  if (cp < 0x80)
    return hvg_buf_addc(b, (char)cp);
  if (cp < 0x800) {
    t[0] = (char)(0xC0 | (cp >> 6));
    t[1] = (char)(0x80 | (cp & 0x3F));
    return hvg_buf_add(b, t, 2);
  }
  t[0] = (char)(0xE0 | (cp >> 12));
  t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
  t[2] = (char)(0x80 | (cp & 0x3F));
  return hvg_buf_add(b, t, 3);
}

/* Make a field UTF-8: returns the text to use (in place or in r->conv). */
int hv__decode(hv_reader *r, const char *s, size_t n, const char **out,
                      size_t *outlen, hvg_err *err) {
  if (r->o.encoding == HV_ENC_UTF8) {
    size_t bad;
    if (!hv__utf8_valid((const unsigned char *)s, n, &bad))
      return hvg_err_set(err, HVG_EENCODING, NULL,
                         "invalid UTF-8 at byte %zu of a field; declare the "
                         "file's encoding in the mapping",
                         bad);
    *out = s;
    *outlen = n;
    return 0;
  }
  size_t mark = r->conv.len;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    unsigned cp = c;
    if (r->o.encoding == HV_ENC_CP1252 && c >= 0x80 && c < 0xA0) {
      cp = hv__cp1252[c - 0x80];
      if (!cp)
        return hvg_err_set(err, HVG_EENCODING, NULL,
                           "byte 0x%02X is undefined in Windows-1252", c);
    }
    if (hv__put_utf8(&r->conv, cp))
      return hvg_err_set(err, HVG_ETOOBIG, NULL, "record too large");
  }
  if (hvg_buf_addc(&r->conv, '\0'))
    return hvg_err_set(err, HVG_ETOOBIG, NULL, "record too large");
  *out = r->conv.data ? r->conv.data + mark : "";
  *outlen = r->conv.len - mark - 1;
  return 0;
}

/* ---- CSV -------------------------------------------------------------- */

static int hv__fields_grow(hv_reader *r) {
  {
    if (r->fields_cap >= HV__MAX_COLS)
      return HVG_ETOOBIG;
    size_t cap = r->fields_cap ? r->fields_cap * 2 : 64;
    char **f = realloc(r->fields, cap * sizeof *f);
    if (!f)
      return HVG_ENOMEM;
    r->fields = f;
    size_t *l = realloc(r->flen, cap * sizeof *l);
    if (!l)
      return HVG_ENOMEM;
    r->flen = l;
    r->fields_cap = cap;
  }
  return 0;
}

static inline int hv__add_field(hv_reader *r, char *p, size_t n) {
  if (r->nfields == r->fields_cap) {
    int rc = hv__fields_grow(r);
    if (rc)
      return rc;
  }
  r->fields[r->nfields] = p;
  r->flen[r->nfields] = n;
  r->nfields++;
  return 0;
}

/* First j >= i where an unquoted field ends: a delimiter, a line end, or the
 * end of the window (buf[end] is a NUL, see hv__csv_record). */
static inline size_t hv__csv_scan(const hv_reader *r, size_t j) {
  const unsigned char *b = (const unsigned char *)r->buf;
  for (;;) {
    while (!r->csv_stop[b[j]])
      j++;
    if (b[j] || j >= r->end)
      return j;
    j++; /* a NUL inside the data */
  }
}

/* Makes sure the whole record at buf[start] is in the window (its line end
 * is, or the input ended), so that parsing, which unescapes in place, never
 * has to read more. Quotes open only at a field's start, as in the parser. */
static int hv__csv_complete(hv_reader *r) {
  const char d = r->o.delimiter, q = r->o.quote;
  /* usually the line end is in the window with no quote before it */
  const char *p = r->buf + r->start;
  const char *nl = memchr(p, '\n', r->end - r->start);
  if (nl && !memchr(p, q, (size_t)(nl - p)))
    return 1;
  for (;;) {
    int inq = 0, field_start = 1;
    for (size_t i = r->start; i < r->end; i++) {
      char c = r->buf[i];
      if (inq) {
        if (c == q) {
          if (i + 1 >= r->end)
            break; /* need the next byte to tell "" from a closing quote */
          if (r->buf[i + 1] == q)
            i++;
          else
            inq = 0;
        }
        continue;
      }
      if (c == q && field_start) {
        inq = 1;
        field_start = 0;
      } else if (c == '\n') {
        return 1;
      } else if (c == '\r') {
        if (i + 1 < r->end)
          return 1;
        break; /* need the next byte to see a CRLF */
      } else {
        field_start = c == d;
      }
    }
    if (r->eof)
      return 1;
    int rc = hv__fill(r);
    if (rc < 0)
      return rc;
  }
}

/* Parses one CSV record starting at buf[start]. Returns 1 (record, fields
 * set, start advanced), 0 (EOF), or an error. Lines consumed are counted. */
static int hv__csv_record(hv_reader *r, unsigned long *first_line,
                          hvg_err *err) {
  const char d = r->o.delimiter, q = r->o.quote;
  for (;;) {
    /* skip blank lines */
    while (r->start < r->end &&
           (r->buf[r->start] == '\n' || r->buf[r->start] == '\r')) {
      if (r->buf[r->start] == '\n')
        r->line++;
      r->start++;
    }
    if (r->start < r->end)
      break;
    int rc = hv__fill(r);
    if (rc < 0)
      return hvg_err_set(err, rc, NULL, "cannot read input");
    if (rc == 0)
      return 0;
  }
  int rc0 = hv__csv_complete(r);
  if (rc0 == HVG_ETOOBIG)
    return hvg_err_set(err, rc0, NULL, "record larger than %zu bytes",
                       r->o.max_record);
  if (rc0 < 0)
    return hvg_err_set(err, rc0, NULL, "cannot read input");
restart:
  r->buf[r->end] = '\0'; /* hv__csv_scan's sentinel (hv__fill keeps room) */
  r->rec_begin = r->start;
  r->nfields = 0;
  *first_line = r->line;
  size_t i = r->start;
  unsigned long lines = 0;
  for (;;) {
    /* one field at buf[i] */
    char *fstart = r->buf + i;
    if (i < r->end && r->buf[i] == q) {
      size_t w = i, j = i + 1;
      unsigned long qline = r->line + lines;
      for (;;) {
        if (j >= r->end) {
          size_t off = i - r->start;
          int rc = hv__fill(r);
          if (rc == HVG_ETOOBIG)
            return hvg_err_set(err, rc, NULL, "record larger than %zu bytes",
                               r->o.max_record);
          if (rc < 0)
            return hvg_err_set(err, rc, NULL, "cannot read input");
          if (rc == 0) {
            r->failed = 1;
            return hvg_err_set(err, HVG_ESYNTAX, NULL,
                               "quote opened on line %lu is never closed",
                               qline);
          }
          (void)off;
          goto restart; /* window moved: reparse the record */
        }
        char c = r->buf[j];
        if (c == q) {
          if (j + 1 >= r->end && !r->eof) {
            int rc = hv__fill(r);
            if (rc < 0)
              return hvg_err_set(err, rc, NULL, "cannot read input");
            goto restart;
          }
          if (j + 1 < r->end && r->buf[j + 1] == q) {
            r->buf[w++] = q;
            j += 2;
            continue;
          }
          j++;
          break;
        }
        if (c == '\n')
          lines++;
        r->buf[w++] = c;
        j++;
      }
      /* after closing quote: up to delimiter or end of line (lenient) */
      while (j < r->end && r->buf[j] != d && r->buf[j] != '\n' &&
             r->buf[j] != '\r')
        r->buf[w++] = r->buf[j++];
      /* the unescaped text was written from i on, over the opening quote;
       * the NUL lands on a quote or before the delimiter, both consumed */
      int rc = hv__add_field(r, r->buf + i, w - i);
      if (rc)
        return hvg_err_set(err, rc, NULL, "too many fields");
      if (j < r->end && r->buf[j] == d) {
        r->buf[w] = '\0';
        r->buf[j] = '\0';
        i = j + 1;
        continue;
      }
      r->buf[w] = '\0';
      i = j;
      fstart = NULL;
    } else {
      size_t j = hv__csv_scan(r, i);
      if (j >= r->end && !r->eof) {
        int rc = hv__fill(r);
        if (rc == HVG_ETOOBIG)
          return hvg_err_set(err, rc, NULL, "record larger than %zu bytes",
                             r->o.max_record);
        if (rc < 0)
          return hvg_err_set(err, rc, NULL, "cannot read input");
        goto restart;
      }
      int rc = hv__add_field(r, fstart, j - i);
      if (rc)
        return hvg_err_set(err, rc, NULL, "too many fields");
      i = j;
    }
    /* i is at a delimiter, a line end, or the end of input */
    if (i < r->end && r->buf[i] == d) {
      r->buf[i] = '\0';
      i++;
      continue;
    }
    if (i < r->end && r->buf[i] == '\r') {
      if (i + 1 >= r->end && !r->eof) {
        int rc = hv__fill(r);
        if (rc < 0)
          return hvg_err_set(err, rc, NULL, "cannot read input");
        goto restart;
      }
      r->buf[i++] = '\0';
      if (i < r->end && r->buf[i] == '\n')
        i++;
    } else if (i < r->end && r->buf[i] == '\n') {
      r->buf[i++] = '\0';
    } else {
      r->buf[i] = '\0'; /* end of input; buf has room for the NUL */
    }
    lines++;
    r->consumed += i - r->start;
    r->start = i;
    r->line += lines;
    return 1;
  }
}

static int hv__open_common(hv_reader *r, hvg_err *err) {
  if (!r->o.max_record)
    r->o.max_record = (size_t)1 << 20;
  if (!r->o.delimiter)
    r->o.delimiter = ',';
  if (!r->o.quote)
    r->o.quote = '"';
  r->csv_stop[(unsigned char)r->o.delimiter] = 1;
  r->csv_stop['\n'] = r->csv_stop['\r'] = r->csv_stop[0] = 1;
  r->line = 1;
  /* converted values are handed out as pointers into conv, so it must never
   * move while a record is read: reserve its whole cap once. */
  hvg_buf_init(&r->conv, r->o.max_record * 3 + 1024);
  if ((r->o.encoding != HV_ENC_UTF8 || r->o.format == HV_IN_NDJSON ||
       r->o.format == HV_IN_JSON) &&
      !hvg_buf_reserve(&r->conv, r->conv.max))
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  if (r->o.format == HV_IN_XML)
    return hv__xml_open(r, err); /* libxml2 reads the input and its BOM */
  /* BOM */
  int rc = hv__fill(r);
  if (rc < 0)
    return hvg_err_set(err, rc, NULL, "cannot read input");
  if (r->end - r->start >= 3 && memcmp(r->buf + r->start, "\xEF\xBB\xBF", 3) == 0)
    r->start += 3;
  if (r->o.format == HV_IN_JSON)
    return hv__jarr_open(r, err);
  if (r->o.format != HV_IN_CSV || r->o.no_header)
    return 0;
  unsigned long line;
  rc = hv__csv_record(r, &line, err);
  if (rc <= 0) {
    r->failed = 1;
    return rc ? rc : hvg_err_set(err, HVG_ESYNTAX, NULL, "no header line");
  }
  r->cols = calloc(r->nfields, sizeof *r->cols);
  if (!r->cols)
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  r->ncols = r->nfields;
  for (size_t k = 0; k < r->nfields; k++) {
    const char *v;
    size_t n;
    rc = hv__decode(r, r->fields[k], r->flen[k], &v, &n, err);
    if (rc)
      return rc;
    r->cols[k] = strndup(v, n);
    if (!r->cols[k])
      return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  }
  hvg_buf_reset(&r->conv);
  return 0;
}

int hv_reader_open(hv_reader **out, const char *path,
                   const hv_reader_opts *opts, hvg_err *err) {
  *out = NULL;
  if (!path || !opts)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  hv_reader *r = calloc(1, sizeof *r);
  if (!r)
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  r->o = *opts;
  r->name = path;
  if (strcmp(path, "-") == 0) {
    r->fd = STDIN_FILENO;
  } else if ((r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
    int e = errno;
    free(r);
    return hvg_err_set(err, HVG_ENOINPUT, NULL, "cannot open: %s",
                       strerror(e));
  }
  int rc = hv__open_common(r, err);
  if (rc) {
    hv_reader_close(r);
    return rc;
  }
  *out = r;
  return 0;
}

int hv_reader_open_mem(hv_reader **out, const char *name, const char *data,
                       size_t len, const hv_reader_opts *opts, hvg_err *err) {
  *out = NULL;
  if (!name || (!data && len) || !opts)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  hv_reader *r = calloc(1, sizeof *r);
  if (!r)
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  r->o = *opts;
  r->name = name;
  r->fd = -1;
  r->mem = data;
  r->mem_len = len;
  int rc = hv__open_common(r, err);
  if (rc) {
    hv_reader_close(r);
    return rc;
  }
  *out = r;
  return 0;
}

int hv_reader_bind(hv_reader *r, const char *key, hvg_err *err) {
  if (!r || !key || !*key)
    return hvg_err_set(err, HVG_EINVAL, NULL, "empty key");
  if (r->nkeys >= HV__MAX_KEYS)
    return hvg_err_set(err, HVG_ETOOBIG, key, "too many fields");
  int col = -1;
  if (r->o.format == HV_IN_XML) {
    int rc = hv__xml_bind(r, key, err);
    if (rc)
      return rc;
  } else if (r->o.format == HV_IN_CSV) {
    if (r->o.no_header) {
      char *end;
      long n = key[0] == '#' ? strtol(key + 1, &end, 10) : 0;
      if (key[0] != '#' || *end || n < 1 || n > HV__MAX_COLS)
        return hvg_err_set(err, HVG_EINVAL, key,
                           "without a header, columns are named #1, #2, ...");
      col = (int)n - 1;
    } else {
      for (size_t k = 0; k < r->ncols && col < 0; k++)
        if (strcmp(r->cols[k], key) == 0)
          col = (int)k;
      if (col < 0)
        return hvg_err_set(err, HVG_ENOTFOUND, key, "no column '%s'", key);
    }
  }
  char *copy = strdup(key);
  if (!copy)
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  r->keys[r->nkeys] = copy;
  r->key_col[r->nkeys] = col;
  return (int)r->nkeys++;
}

const char *const *hv_reader_columns(const hv_reader *r, size_t *n) {
  if (n)
    *n = r->cols ? r->ncols : 0;
  return (const char *const *)r->cols;
}

/* JSON value at a dotted path as text; NULL when absent or null. */
const char *hv__json_path(hv_reader *r, const char *path, size_t *len) {
  const cJSON *v = r->json;
  char seg[256];
  const char *p = path;
  while (v && *p) {
    size_t n = strcspn(p, ".");
    if (n >= sizeof seg)
      return NULL;
    memcpy(seg, p, n);
    seg[n] = '\0';
    p += n + (p[n] == '.');
    if (cJSON_IsArray(v)) {
      char *end;
      long idx = strtol(seg, &end, 10);
      v = *end || idx < 0 ? NULL : cJSON_GetArrayItem(v, (int)idx);
    } else {
      v = cJSON_GetObjectItemCaseSensitive(v, seg);
    }
  }
  if (!v || cJSON_IsNull(v))
    return NULL;
  size_t mark = r->conv.len;
  int rc = 0;
  if (cJSON_IsString(v)) {
    rc = hvg_buf_adds(&r->conv, v->valuestring);
  } else if (cJSON_IsBool(v)) {
    rc = hvg_buf_adds(&r->conv, cJSON_IsTrue(v) ? "true" : "false");
  } else if (cJSON_IsNumber(v)) {
    double d = v->valuedouble;
    if (d == (double)(long long)d && d > -1e15 && d < 1e15)
      rc = hvg_buf_printf(&r->conv, "%lld", (long long)d);
    else
      rc = hvg_buf_printf(&r->conv, "%.17g", d);
  } else if (cJSON_IsArray(v)) {
    const cJSON *it;
    int first = 1;
    cJSON_ArrayForEach(it, v) {
      if (cJSON_IsString(it)) {
        if (!first)
          rc |= hvg_buf_addc(&r->conv, ',');
        rc |= hvg_buf_adds(&r->conv, it->valuestring);
        first = 0;
      }
    }
  } else {
    return NULL; /* objects are not values */
  }
  if (rc || hvg_buf_addc(&r->conv, '\0'))
    return NULL;
  *len = r->conv.len - mark - 1;
  return r->conv.data + mark;
}

static int hv__ndjson_next(hv_reader *r, hv_row *row, hvg_err *err) {
  for (;;) {
    char *nl;
    while (!(nl = memchr(r->buf + r->start, '\n', r->end - r->start))) {
      int rc = hv__fill(r);
      if (rc == HVG_ETOOBIG) {
        /* skip the over-long line */
        row->line = r->line;
        r->start = r->end;
        while ((rc = hv__fill(r)) > 0 &&
               !(nl = memchr(r->buf + r->start, '\n', r->end - r->start)))
          r->start = r->end;
        if (nl) {
          r->start = (size_t)(nl - r->buf) + 1;
          r->line++;
        }
        return hvg_err_set(err, HVG_ETOOBIG, NULL,
                           "record larger than %zu bytes", r->o.max_record);
      }
      if (rc < 0) {
        r->failed = 1;
        return hvg_err_set(err, rc, NULL, "cannot read input");
      }
      if (rc == 0)
        break;
    }
    size_t s = r->start;
    size_t e = nl ? (size_t)(nl - r->buf) : r->end;
    if (s == e && !nl)
      return 0;
    row->line = r->line;
    r->start = nl ? e + 1 : e;
    r->consumed += r->start - s;
    r->line++;
    size_t n = e - s;
    while (n && (r->buf[s + n - 1] == '\r' || r->buf[s + n - 1] == ' '))
      n--;
    if (!n)
      continue;
    if (n > r->o.max_record) /* fits the window, but not the limit */
      return hvg_err_set(err, HVG_ETOOBIG, NULL,
                         "record larger than %zu bytes", r->o.max_record);
    const char *txt;
    size_t tl;
    int rc = hv__decode(r, r->buf + s, n, &txt, &tl, err);
    if (rc)
      return rc;
    cJSON_Delete(r->json);
    r->json = cJSON_ParseWithLength(txt, tl);
    if (!r->json || !cJSON_IsObject(r->json))
      return hvg_err_set(err, HVG_ESYNTAX, NULL, "not a JSON object");
    return 1;
  }
}

int hv_reader_next(hv_reader *r, hv_row *row, hvg_err *err) {
  if (r->failed)
    return hvg_err_set(err, HVG_ESTATE, NULL, "reader failed earlier");
  memset(row, 0, sizeof *row);
  hvg_buf_reset(&r->conv);
  int rc;
  if (r->o.format == HV_IN_XML) {
    rc = hv__xml_next(r, row, err);
    if (rc != 1)
      return rc;
  } else if (r->o.format == HV_IN_NDJSON || r->o.format == HV_IN_JSON) {
    rc = r->o.format == HV_IN_JSON ? hv__jarr_next(r, row, err)
                                   : hv__ndjson_next(r, row, err);
    if (rc != 1)
      return rc;
    for (size_t k = 0; k < r->nkeys; k++)
      r->val[k] = hv__json_path(r, r->keys[k], &r->len[k]);
  } else {
    unsigned long line;
    rc = hv__csv_record(r, &line, err);
    row->line = line;
    if (rc == HVG_ETOOBIG) {
      r->failed = 1; /* cannot find the record's end safely */
      return rc;
    }
    if (rc != 1)
      return rc;
    size_t want = r->cols ? r->ncols : r->nfields;
    if (r->nfields != want)
      return hvg_err_set(err, HVG_EFORMAT, NULL,
                         "expected %zu fields, found %zu", want, r->nfields);
    /* When the record's bytes are valid UTF-8 as a whole, so is each
     * field: fields are unescaped in place and bounded by ASCII bytes
     * (delimiters, quotes, the NULs written after them), which never sit
     * inside a multi-byte sequence. Otherwise each bound field is checked,
     * for the message naming it. */
    size_t bad;
    int valid = r->o.encoding == HV_ENC_UTF8 &&
                hv__utf8_valid((const unsigned char *)r->buf + r->rec_begin,
                               r->start - r->rec_begin, &bad);
    for (size_t k = 0; k < r->nkeys; k++) {
      int c = r->key_col[k];
      r->val[k] = NULL;
      r->len[k] = 0;
      if (c >= 0 && (size_t)c < r->nfields && valid) {
        r->val[k] = r->fields[c];
        r->len[k] = r->flen[c];
      } else if (c >= 0 && (size_t)c < r->nfields) {
        rc = hv__decode(r, r->fields[c], r->flen[c], &r->val[k], &r->len[k],
                        err);
        if (rc) {
          snprintf(err->field, sizeof err->field, "%s", r->keys[k]);
          return rc;
        }
      }
    }
  }
  row->nslots = r->nkeys;
  row->val = r->val;
  row->len = r->len;
  return 1;
}

int hv_reader_failed(const hv_reader *r) { return r->failed; }

unsigned long long hv_reader_offset(const hv_reader *r) { return r->consumed; }

void hv_reader_close(hv_reader *r) {
  if (!r)
    return;
  if (r->fd > STDIN_FILENO)
    close(r->fd);
  for (size_t k = 0; k < r->ncols; k++)
    free(r->cols ? r->cols[k] : NULL);
  free(r->cols);
  for (size_t k = 0; k < r->nkeys; k++)
    free(r->keys[k]);
  free(r->fields);
  free(r->flen);
  free(r->buf);
  cJSON_Delete(r->json);
  hv__xml_close(r);
  hvg_buf_free(&r->conv);
  free(r);
}
