/* hv_export — canonical records out in a program's layout (hv_export.h).
 *
 * hv_export_new turns the source into a fixed layout once: columns, the
 * fields written in each, the encoded CSV header or the NDJSON key tree with
 * its keys already encoded. A row then only formats values (x->tmp) and
 * appends them to the sink, which is cut back to its old length on error. */
#include "hv_export.h"

#include "hv_reader_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HV__XMAX_COLS 1024              /* as the CSV reader */
#define HV__XMAX_DEPTH 32               /* NDJSON nesting */
#define HV__XTMP_MAX ((size_t)1 << 20)  /* one formatted value */
#define HV__XHEAD_MAX ((size_t)1 << 20) /* header row / encoded keys */

typedef struct hv__xent { /* one field written in a column */
  const hv_fieldmap *fm;
  int next; /* next field of the same column, or -1 */
} hv__xent;

typedef struct hv__xcol {
  const char *key; /* column name or path; NULL: a gap (no header) */
  int ent;         /* first hv__xent, or -1 */
} hv__xcol;

typedef struct hv__xnode { /* NDJSON key tree; node 0 is the record */
  const char *name;
  size_t nlen;
  int col;               /* leaf: the column written here, else -1 */
  int child, last, next; /* first and last child, next sibling; -1 */
  size_t koff, klen;     /* the encoded "name": in x->head */
} hv__xnode;

struct hv_export {
  const hv_source *src;
  hv_export_format fmt;
  hvg_buf *sink;
  hv_encoding enc;
  char delim, quote;
  int header_due; /* CSV: the header row goes before the next record */
  unsigned long count;
  hvg_arena arena; /* cols, ents, nodes, node names */
  hv__xcol *cols;
  size_t ncols;
  hv__xent *ents;
  size_t nents;
  hv__xnode *nodes;
  size_t nnodes, nodes_cap;
  hvg_buf head; /* CSV: the header row; NDJSON: the encoded keys */
  hvg_buf tmp;  /* the value being formatted */
};

static const char *const hv__enc_names[] = {"UTF-8", "Latin-1", "Windows-1252"};

/* ---- output helpers --------------------------------------------------- */

/* A value whose formatted text does not fit x->tmp. */
static int hv__xtmp_err(hvg_err *err, int rc, const char *col) {
  if (rc == HVG_ETOOBIG)
    return hvg_err_set(err, rc, col, "value longer than %zu bytes",
                       HV__XTMP_MAX);
  return hvg_err_set(err, rc, col, "out of memory");
}

static int hv__xbuf_err(hvg_err *err, int rc, const hvg_buf *b) {
  if (rc == HVG_ETOOBIG)
    return hvg_err_set(err, rc, NULL,
                       "export output over its size limit (%zu bytes)", b->max);
  return hvg_err_set(err, rc, NULL, "out of memory");
}

/* Next code point of strict UTF-8 at *s (advanced past it), or -1. */
static long hv__utf8_next(const unsigned char **s) {
  const unsigned char *p = *s;
  unsigned char c = p[0];
  long cp;
  int k;
  if (c < 0x80) {
    *s = p + 1;
    return c;
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
    return -1;
  }
  for (int j = 1; j <= k; j++) {
    if ((p[j] & 0xC0) != 0x80) /* also stops at the NUL */
      return -1;
    cp = (cp << 6) | (p[j] & 0x3F);
  }
  if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) ||
      (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return -1;
  *s = p + k + 1;
  return cp;
}

/* The byte that represents cp in a single-byte encoding, or -1. */
static int hv__xbyte(hv_encoding enc, long cp) {
  if (cp < 0x80)
    return (int)cp;
  if (enc == HV_ENC_LATIN1)
    return cp <= 0xFF ? (int)cp : -1;
  if (cp >= 0xA0 && cp <= 0xFF)
    return (int)cp;
  for (int i = 0; i < 32; i++)
    if (hv__cp1252[i] && hv__cp1252[i] == cp)
      return 0x80 + i;
  return -1;
}

static int hv__xenc_err(const hv_export *x, hvg_err *err, const char *col,
                        int phi, long cp) {
  if (cp < 0)
    return hvg_err_set(err, HVG_EENCODING, col, "not valid UTF-8");
  if (phi)
    return hvg_err_set(err, HVG_EENCODING, col,
                       "a character cannot be written in %s (the source's "
                       "encoding)",
                       hv__enc_names[x->enc]);
  return hvg_err_set(err, HVG_EENCODING, col,
                     "character U+%04lX cannot be written in %s (the "
                     "source's encoding)",
                     (unsigned long)cp, hv__enc_names[x->enc]);
}

/* Appends s to b in the source's encoding. CSV (json 0): quoted when it
 * holds the delimiter, the quote, CR or LF, quotes doubled. JSON: a quoted
 * JSON string, non-ASCII escaped unless the encoding is UTF-8. On error b
 * is unchanged. */
static int hv__xput(hv_export *x, hvg_buf *b, const char *s, int json,
                    const char *col, int phi, hvg_err *err) {
  size_t mark = b->len;
  int q = json;
  if (!json)
    for (const char *p = s; *p && !q; p++)
      q = *p == x->delim || *p == x->quote || *p == '\r' || *p == '\n';
  char qc = json ? '"' : x->quote;
  int rc = q ? hvg_buf_addc(b, qc) : 0;
  const unsigned char *p = (const unsigned char *)s;
  while (!rc && *p) {
    const unsigned char *start = p;
    long cp = hv__utf8_next(&p);
    int byte = cp < 0 ? -1 : x->enc == HV_ENC_UTF8 ? 0 : hv__xbyte(x->enc, cp);
    if (byte < 0) {
      hvg_buf_truncate(b, mark);
      return hv__xenc_err(x, err, col, phi, cp);
    }
    char e[8];
    if (json && (cp == '"' || cp == '\\')) {
      e[0] = '\\';
      e[1] = (char)cp;
      rc = hvg_buf_add(b, e, 2);
    } else if (json && cp < 0x20) {
      const char *esc = cp == '\n'   ? "\\n"
                        : cp == '\r' ? "\\r"
                        : cp == '\t' ? "\\t"
                        : cp == '\b' ? "\\b"
                        : cp == '\f' ? "\\f"
                                     : NULL;
      if (esc)
        rc = hvg_buf_adds(b, esc);
      else
        rc = hvg_buf_printf(b, "\\u%04lx", (unsigned long)cp);
    } else if (json && cp >= 0x80 && x->enc != HV_ENC_UTF8) {
      rc = hvg_buf_printf(b, "\\u%04lx", (unsigned long)cp); /* BMP only */
    } else if (!json && cp == (unsigned char)x->quote) {
      e[0] = e[1] = x->quote;
      rc = hvg_buf_add(b, e, 2);
    } else if (x->enc == HV_ENC_UTF8) {
      rc = hvg_buf_add(b, start, (size_t)(p - start));
    } else {
      rc = hvg_buf_addc(b, (char)byte);
    }
  }
  if (!rc && q)
    rc = hvg_buf_addc(b, qc);
  if (rc) {
    hvg_buf_truncate(b, mark);
    return hv__xbuf_err(err, rc, b);
  }
  return 0;
}

/* ---- values ----------------------------------------------------------- */

/* 1 when the reader can map text back through `label`: it trims values and
 * never maps an empty one, and splits a list at ',' and ';' before mapping
 * its items. */
static int hv__xreadable(const char *label, int item) {
  size_t n = strlen(label);
  if (!n || isspace((unsigned char)label[0]) ||
      isspace((unsigned char)label[n - 1]))
    return 0;
  return !item || !strpbrk(label, ",;");
}

/* The label for s[0..n) in fm's map reversed: the first label whose code is
 * s and that reads back, or s itself when there is none; NULL when s has no
 * label but is the label of another code (written as it is, it would read
 * back as that code). item: s is one item of a list. The length goes to
 * *ln. */
static const char *hv__xlabel(const hv_fieldmap *fm, const char *s, size_t n,
                              int item, size_t *ln) {
  for (size_t i = 0; i < fm->n_map; i++)
    if (strlen(fm->map[i].to) == n && !strncasecmp(fm->map[i].to, s, n) &&
        hv__xreadable(fm->map[i].from, item)) {
      *ln = strlen(fm->map[i].from);
      return fm->map[i].from;
    }
  for (size_t i = 0; i < fm->n_map; i++)
    if (strlen(fm->map[i].from) == n && !strncasecmp(fm->map[i].from, s, n))
      return NULL;
  *ln = n;
  return s;
}

static int hv__xlabel_err(hvg_err *err, const hv_fieldmap *fm, const char *col,
                          const char *s, size_t n) {
  if (hv_field_get(fm->field)->flags & HV_PHI)
    return hvg_err_set(err, HVG_EFORMAT, col,
                       "a value has no label in this layout and would read "
                       "back as another value: add a label for it to the "
                       "field's map");
  return hvg_err_set(err, HVG_EFORMAT, col,
                     "'%.*s' has no label in this layout and would read back "
                     "as another value (it is a label in the field's map): "
                     "add a label for it to the map",
                     (int)(n > 40 ? 40 : n), s);
}

/* The program's form of value s of field fm, in *out (s, a label of the
 * map, or x->tmp). */
static int hv__xform(hv_export *x, const hv_fieldmap *fm, const char *col,
                     const char *s, const char **out, hvg_err *err) {
  const hv_field_info *fi = hv_field_get(fm->field);
  hvg_buf_reset(&x->tmp);
  if (fi->type == HV_T_DATE) {
    const char *pat = fm->date_format ? fm->date_format : x->src->date_format;
    size_t cap = strlen(pat) * 2 + 1;
    char *d = hvg_buf_reserve(&x->tmp, cap);
    if (!d)
      return hv__xtmp_err(err, cap > x->tmp.max ? HVG_ETOOBIG : HVG_ENOMEM,
                          col);
    if (hv_date_format(pat, s, d, cap)) {
      if (fi->flags & HV_PHI)
        return hvg_err_set(err, HVG_EINVAL, col, "not a YYYY-MM-DD date");
      return hvg_err_set(err, HVG_EINVAL, col,
                         "'%.40s' is not a YYYY-MM-DD date", s);
    }
    hvg_buf_commit(&x->tmp, strlen(d));
    s = x->tmp.data;
  }
  *out = s;
  if (!fm->n_map)
    return 0;
  size_t n = strlen(s), ln;
  const char *l = hv__xlabel(fm, s, n, 0, &ln);
  if (fi->type != HV_T_LIST || (l && l != s)) {
    if (!l)
      return hv__xlabel_err(err, fm, col, s, n);
    *out = l;
    return 0;
  }
  /* a list without a label of its own: label each item */
  for (const char *p = s;;) {
    size_t k = strcspn(p, ",");
    l = hv__xlabel(fm, p, k, 1, &ln);
    if (!l)
      return hv__xlabel_err(err, fm, col, p, k);
    int rc = x->tmp.len ? hvg_buf_addc(&x->tmp, ',') : 0;
    if (rc || (rc = hvg_buf_add(&x->tmp, l, ln)))
      return hv__xtmp_err(err, rc, col);
    if (!p[k])
      break;
    p += k + 1;
  }
  /* the reader maps the whole text before its items: it must not be a
   * label itself */
  const char *t = x->tmp.data ? x->tmp.data : "";
  for (size_t i = 0; i < fm->n_map; i++)
    if (!strcasecmp(fm->map[i].from, t))
      return hv__xlabel_err(err, fm, col, s, n);
  *out = t;
  return 0;
}

/* Column c's text for record v (NULL when no field of it has a value). */
static int hv__xtext(hv_export *x, const hv__xcol *c, const char *const *v,
                     const char **out, int *phi, hvg_err *err) {
  *out = NULL;
  *phi = 0;
  for (int e = c->ent; e >= 0; e = x->ents[e].next) {
    const hv_fieldmap *fm = x->ents[e].fm;
    const char *s = v[fm->field];
    if (!s || !*s)
      continue;
    *phi = (hv_field_get(fm->field)->flags & HV_PHI) != 0;
    return hv__xform(x, fm, c->key, s, out, err);
  }
  return 0;
}

/* ---- layout ----------------------------------------------------------- */

/* "#N" (1 <= N <= 1024) gives N, anything else 0. */
static int hv__xcolnum(const char *key) {
  if (key[0] != '#' || key[1] < '1' || key[1] > '9')
    return 0;
  long n = 0;
  for (const char *p = key + 1; *p; p++) {
    if (*p < '0' || *p > '9' || n > HV__XMAX_COLS)
      return 0;
    n = n * 10 + (*p - '0');
  }
  return n <= HV__XMAX_COLS ? (int)n : 0;
}

static int hv__xcols(hv_export *x, int headless, hvg_err *err) {
  const hv_source *s = x->src;
  size_t n = s->n_fields + s->n_export_fields;
  size_t cap = headless ? HV__XMAX_COLS : n;
  x->ents = n ? hvg_arena_alloc(&x->arena, n * sizeof *x->ents) : NULL;
  x->cols = cap ? hvg_arena_alloc(&x->arena, cap * sizeof *x->cols) : NULL;
  if ((n && !x->ents) || (cap && !x->cols))
    return hvg_err_set(err, HVG_ENOMEM, NULL, "out of memory");
  for (size_t i = 0; i < cap; i++) {
    x->cols[i].key = NULL;
    x->cols[i].ent = -1;
  }
  for (size_t i = 0; i < n; i++) {
    const hv_fieldmap *fm =
        i < s->n_fields ? &s->fields[i] : &s->export_fields[i - s->n_fields];
    if (!fm->from)
      continue;
    size_t c = 0;
    if (headless) {
      int num = hv__xcolnum(fm->from);
      if (!num)
        return hvg_err_set(err, HVG_EINVAL, fm->from,
                           "without a header, columns are named #1, #2, ... "
                           "(up to #%d)",
                           HV__XMAX_COLS);
      c = (size_t)num - 1;
      if ((size_t)num > x->ncols)
        x->ncols = (size_t)num;
    } else {
      while (c < x->ncols && strcmp(x->cols[c].key, fm->from) != 0)
        c++;
      if (c == x->ncols)
        x->ncols++;
    }
    x->cols[c].key = fm->from;
    hv__xent *e = &x->ents[x->nents];
    e->fm = fm;
    e->next = -1;
    int *link = &x->cols[c].ent;
    while (*link >= 0)
      link = &x->ents[*link].next;
    *link = (int)x->nents++;
  }
  if (!x->ncols)
    return hvg_err_set(err, HVG_EINVAL, NULL,
                       "source '%s' has no columns to export (no field with "
                       "a 'from')",
                       s->name ? s->name : "");
  return 0;
}

static int hv__xnode_add(hv_export *x, int parent, const char *name,
                         size_t nlen, hvg_err *err) {
  for (int c = x->nodes[parent].child; c >= 0; c = x->nodes[c].next)
    if (x->nodes[c].nlen == nlen && !memcmp(x->nodes[c].name, name, nlen))
      return c;
  if (x->nnodes == x->nodes_cap)
    return hvg_err_set(err, HVG_EINVAL, NULL, "too many keys");
  const char *copy = hvg_arena_strndup(&x->arena, name, nlen);
  if (!copy)
    return hvg_err_set(err, HVG_ENOMEM, NULL, "out of memory");
  int id = (int)x->nnodes++;
  hv__xnode *nd = &x->nodes[id];
  memset(nd, 0, sizeof *nd);
  nd->name = copy;
  nd->nlen = nlen;
  nd->col = nd->child = nd->last = nd->next = -1;
  hv__xnode *p = &x->nodes[parent];
  if (p->last >= 0)
    x->nodes[p->last].next = id;
  else
    p->child = id;
  p->last = id;
  return id;
}

/* The NDJSON key tree: nested for JSON/NDJSON ('.') and XML ('/') sources,
 * flat for CSV ones; every key encoded once into x->head. */
static int hv__xtree(hv_export *x, hvg_err *err) {
  hv_input_format f = x->src->ropts.format;
  char sep = f == HV_IN_XML ? '/' : f == HV_IN_CSV ? '\0' : '.';
  int xml = f == HV_IN_XML;
  size_t need = 2;
  for (size_t c = 0; c < x->ncols; c++)
    for (const char *p = x->cols[c].key; p && *p; p++)
      need += 2 + (*p == sep); /* generous: segments and "#text" nodes */
  x->nodes = hvg_arena_alloc(&x->arena, need * sizeof *x->nodes);
  if (!x->nodes)
    return hvg_err_set(err, HVG_ENOMEM, NULL, "out of memory");
  x->nodes_cap = need;
  x->nnodes = 1;
  memset(&x->nodes[0], 0, sizeof x->nodes[0]);
  x->nodes[0].name = "";
  x->nodes[0].col = x->nodes[0].child = x->nodes[0].last = -1;
  x->nodes[0].next = -1;
  for (size_t c = 0; c < x->ncols; c++) {
    const char *key = x->cols[c].key;
    if (!key)
      continue; /* a gap of a headless CSV source */
    int node = 0, depth = 0;
    for (const char *p = key;;) {
      size_t n = 0; /* sep '\0': the whole key */
      while (p[n] && p[n] != sep)
        n++;
      if (!(xml && n == 1 && *p == '.')) {
        if (++depth > HV__XMAX_DEPTH)
          return hvg_err_set(err, HVG_EINVAL, key,
                             "nests deeper than %d levels", HV__XMAX_DEPTH);
        node = hv__xnode_add(x, node, p, n, err);
        if (node < 0)
          return node;
      }
      if (!sep || !p[n])
        break;
      p += n + 1;
    }
    if (node == 0) /* XML ".": the record's own text */
      node = hv__xnode_add(x, 0, "#text", 5, err);
    if (node < 0)
      return node;
    if (x->nodes[node].col >= 0)
      return hvg_err_set(err, HVG_EINVAL, key, "'%s' and '%s' are the same key",
                         x->cols[x->nodes[node].col].key, key);
    x->nodes[node].col = (int)c;
  }
  /* a key both a value and an object: XML moves the value to "#text" */
  size_t nn = x->nnodes;
  for (size_t i = 1; i < nn; i++) {
    hv__xnode *nd = &x->nodes[i];
    if (nd->col < 0 || nd->child < 0)
      continue;
    const char *key = x->cols[nd->col].key;
    if (!xml)
      return hvg_err_set(err, HVG_EINVAL, key,
                         "'%s' is both a value and an object of other keys",
                         key);
    int col = nd->col;
    int t = hv__xnode_add(x, (int)i, "#text", 5, err);
    if (t < 0)
      return t;
    nd = &x->nodes[i];
    if (x->nodes[t].col >= 0)
      return hvg_err_set(err, HVG_EINVAL, key, "'%s' and '%s' are the same key",
                         x->cols[x->nodes[t].col].key, key);
    x->nodes[t].col = col;
    nd->col = -1;
    /* "#text" first: take it off the end, put it at the front */
    if (nd->child != t) {
      int prev = nd->child;
      while (x->nodes[prev].next != t)
        prev = x->nodes[prev].next;
      x->nodes[prev].next = -1;
      nd->last = prev;
      x->nodes[t].next = nd->child;
      nd->child = t;
    }
  }
  for (size_t i = 1; i < x->nnodes; i++) {
    hv__xnode *nd = &x->nodes[i];
    nd->koff = x->head.len;
    int rc = hv__xput(x, &x->head, nd->name, 1, nd->name, 0, err);
    if (!rc && (rc = hvg_buf_addc(&x->head, ':')))
      rc = hv__xbuf_err(err, rc, &x->head);
    if (rc)
      return rc;
    nd->klen = x->head.len - nd->koff;
  }
  return 0;
}

static int hv__xheader(hv_export *x, hvg_err *err) {
  for (size_t c = 0; c < x->ncols; c++) {
    int rc = c ? hvg_buf_addc(&x->head, x->delim) : 0;
    if (rc)
      return hv__xbuf_err(err, rc, &x->head);
    if ((rc = hv__xput(x, &x->head, x->cols[c].key, 0, x->cols[c].key, 0, err)))
      return rc;
  }
  int rc = hvg_buf_adds(&x->head, "\r\n");
  return rc ? hv__xbuf_err(err, rc, &x->head) : 0;
}

int hv_export_new(hv_export **out, const hv_source *src, hv_export_format fmt,
                  hvg_buf *sink, hvg_err *err) {
  if (out)
    *out = NULL;
  if (!out || !src || !sink)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  if (fmt != HV_EXPORT_CSV && fmt != HV_EXPORT_NDJSON)
    return hvg_err_set(err, HVG_EINVAL, NULL, "unknown export format %d",
                       (int)fmt);
  if ((unsigned)src->ropts.encoding > HV_ENC_CP1252)
    return hvg_err_set(err, HVG_EINVAL, NULL, "unknown encoding");
  hv_export *x = calloc(1, sizeof *x);
  if (!x)
    return hvg_err_set(err, HVG_ENOMEM, NULL, "out of memory");
  x->src = src;
  x->fmt = fmt;
  x->sink = sink;
  x->enc = src->ropts.encoding;
  int csv_src = src->ropts.format == HV_IN_CSV;
  x->delim = csv_src && src->ropts.delimiter ? src->ropts.delimiter : ',';
  x->quote = csv_src && src->ropts.quote ? src->ropts.quote : '"';
  int headless = csv_src && src->ropts.no_header;
  hvg_arena_init(&x->arena, (size_t)16 * 1024 * 1024);
  hvg_buf_init(&x->head, HV__XHEAD_MAX);
  hvg_buf_init(&x->tmp, HV__XTMP_MAX);
  int rc = hv__xcols(x, headless, err);
  if (!rc && fmt == HV_EXPORT_NDJSON)
    rc = hv__xtree(x, err);
  else if (!rc && !headless)
    rc = hv__xheader(x, err);
  if (rc) {
    hv_export_free(x);
    return rc;
  }
  x->header_due = fmt == HV_EXPORT_CSV && !headless;
  *out = x;
  return 0;
}

/* ---- rows ------------------------------------------------------------- */

static int hv__xcsv_row(hv_export *x, const char *const *v, hvg_err *err) {
  hvg_buf *b = x->sink;
  int rc = x->header_due ? hvg_buf_add(b, x->head.data, x->head.len) : 0;
  int any = 0;
  for (size_t c = 0; !rc && c < x->ncols; c++) {
    if (c && (rc = hvg_buf_addc(b, x->delim)))
      break;
    const char *t;
    int phi;
    if ((rc = hv__xtext(x, &x->cols[c], v, &t, &phi, err)))
      return rc;
    if (t && (rc = hv__xput(x, b, t, 0, x->cols[c].key, phi, err)))
      return rc;
    any |= t != NULL;
  }
  if (!rc && x->ncols == 1 && !any) {
    char e[2] = {x->quote, x->quote};
    rc = hvg_buf_add(b, e, 2);
  }
  if (!rc)
    rc = hvg_buf_adds(b, "\r\n");
  return rc ? hv__xbuf_err(err, rc, b) : 0;
}

static int hv__xjson_obj(hv_export *x, int node, const char *const *v,
                         hvg_err *err) {
  hvg_buf *b = x->sink;
  int rc = hvg_buf_addc(b, '{');
  for (int c = x->nodes[node].child; !rc && c >= 0; c = x->nodes[c].next) {
    const hv__xnode *nd = &x->nodes[c];
    if (c != x->nodes[node].child && (rc = hvg_buf_addc(b, ',')))
      break;
    if ((rc = hvg_buf_add(b, x->head.data + nd->koff, nd->klen)))
      break;
    if (nd->child >= 0) {
      if ((rc = hv__xjson_obj(x, c, v, err)))
        return rc;
      continue;
    }
    const char *t;
    int phi;
    if ((rc = hv__xtext(x, &x->cols[nd->col], v, &t, &phi, err)))
      return rc;
    if (!t)
      rc = hvg_buf_adds(b, "null");
    else if ((rc = hv__xput(x, b, t, 1, x->cols[nd->col].key, phi, err)))
      return rc;
  }
  if (!rc)
    rc = hvg_buf_addc(b, '}');
  return rc ? hv__xbuf_err(err, rc, b) : 0;
}

int hv_export_row(hv_export *x, const char *const v[HV_F__COUNT],
                  hvg_err *err) {
  if (!x || !v)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  size_t mark = x->sink->len;
  int rc;
  if (x->fmt == HV_EXPORT_CSV) {
    rc = hv__xcsv_row(x, v, err);
  } else {
    rc = hv__xjson_obj(x, 0, v, err);
    if (!rc && (rc = hvg_buf_addc(x->sink, '\n')))
      rc = hv__xbuf_err(err, rc, x->sink);
  }
  if (rc) {
    hvg_buf_truncate(x->sink, mark);
    return rc;
  }
  x->header_due = 0;
  x->count++;
  return 0;
}

unsigned long hv_export_count(const hv_export *x) {
  return x ? x->count : 0;
}

void hv_export_free(hv_export *x) {
  if (!x)
    return;
  hvg_arena_free(&x->arena);
  hvg_buf_free(&x->head);
  hvg_buf_free(&x->tmp);
  free(x);
}
