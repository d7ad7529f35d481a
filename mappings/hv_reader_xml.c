/* hv_reader_xml — XML exports, streamed with libxml2's xmlTextReader.
 *
 * Records are the elements at opts.records ("export/screenings/screening",
 * local names from the root). Inside a record, values are collected while
 * reading, never by building a tree, so memory is bounded by the bound
 * values, each capped at max_record. Security: the parser never loads a DTD
 * or external entity (no XML_PARSE_DTDLOAD/NOENT, XML_PARSE_NONET) and any
 * document with a DOCTYPE is refused outright, which also rules out
 * entity-expansion bombs. Any well-formedness error is fatal: an XML parser
 * cannot resynchronise after one. */
#include "hv_reader_int.h"

#include <errno.h>
#include <libxml/xmlreader.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HV__XML_MAX_SEGS 32
#define HV__XML_MAX_DEPTH 256
#define HV__XML_NO_DOCTYPE                                                    \
  "a DOCTYPE is not allowed in an export (it could declare external or "     \
  "expanding entities)"

typedef struct hv__xkey {
  char *elem;       /* relative element path: "" (the record), "child/dob" */
  const char *attr; /* attribute name (points into elem's allocation) or NULL */
} hv__xkey;

struct hv__xml {
  xmlTextReaderPtr xr;
  char *path; /* records path, '/' replaced by NUL */
  const char *seg[HV__XML_MAX_SEGS];
  int nseg;
  int matched; /* leading path segments matched by the open ancestors */
  hv__xkey key[HV__MAX_KEYS];
  hvg_buf val[HV__MAX_KEYS];
  unsigned long seen[HV__MAX_KEYS]; /* serial of the last element appended */
  hvg_buf rel;                      /* current element path in the record */
  size_t rel_at[HV__XML_MAX_DEPTH]; /* rel's length per level */
  char errmsg[200];
  int errline;
  xmlDocPtr doc; /* ours once taken from the reader */
};

static int hv__xml_input(void *ctx, char *out, int len) {
  hv_reader *r = ctx;
  if (r->fd < 0) {
    size_t n = r->mem_len - r->mem_off;
    if (n > (size_t)len)
      n = (size_t)len;
    memcpy(out, r->mem + r->mem_off, n);
    r->mem_off += n;
    r->consumed += n;
    return (int)n;
  }
  ssize_t n;
  do
    n = read(r->fd, out, (size_t)len);
  while (n < 0 && errno == EINTR);
  if (n > 0)
    r->consumed += (size_t)n;
  return n < 0 ? -1 : (int)n;
}

/* Keeps the first parser message for the error report; libxml2 would print
 * to stderr otherwise. */
static void hv__xml_error(void *ctx, xmlErrorPtr e) {
  struct hv__xml *x = ctx;
  if (x->errmsg[0] || !e || e->level < XML_ERR_ERROR)
    return;
  snprintf(x->errmsg, sizeof x->errmsg, "%s", e->message ? e->message : "");
  size_t n = strlen(x->errmsg);
  while (n && (x->errmsg[n - 1] == '\n' || x->errmsg[n - 1] == ' '))
    x->errmsg[--n] = '\0';
  x->errline = e->line;
}

static int hv__xml_fatal(hv_reader *r, hv_row *row, int code, hvg_err *err,
                         const char *msg) {
  struct hv__xml *x = r->xml;
  r->failed = 1;
  int line = x->errline ? x->errline
                        : xmlTextReaderGetParserLineNumber(x->xr);
  if (row)
    row->line = (unsigned long)(line > 0 ? line : 0);
  if (code == HVG_ENOMEM)
    return hvg_err_set(err, code, NULL, NULL);
  /* libxml2 may trip over what a DOCTYPE declared before the reader shows
   * us the DOCTYPE itself: name the real cause */
  xmlDocPtr doc = x->doc ? x->doc : xmlTextReaderCurrentDoc(x->xr);
  x->doc = doc; /* CurrentDoc hands the document over: freed at close */
  if (doc && (doc->intSubset || doc->extSubset)) {
    code = HVG_ESECURITY;
    msg = HV__XML_NO_DOCTYPE;
    x->errmsg[0] = '\0';
  }
  return hvg_err_set(err, code, NULL, "line %d: %s", line,
                     x->errmsg[0] ? x->errmsg : msg);
}

int hv__xml_open(hv_reader *r, hvg_err *err) {
  struct hv__xml *x = calloc(1, sizeof *x);
  if (!x)
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  r->xml = x;
  hvg_buf_init(&x->rel, 4096);
  if (!r->o.records || !*r->o.records)
    return hvg_err_set(err, HVG_EINVAL, NULL,
                       "an XML export needs the records element path");
  if (!(x->path = strdup(r->o.records)))
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  for (char *p = x->path; p;) {
    char *slash = strchr(p, '/');
    if (slash)
      *slash = '\0';
    if (!*p || x->nseg == HV__XML_MAX_SEGS)
      return hvg_err_set(err, HVG_EINVAL, NULL, "bad records path '%s'",
                         r->o.records);
    x->seg[x->nseg++] = p;
    p = slash ? slash + 1 : NULL;
  }
  const char *enc = r->o.encoding == HV_ENC_LATIN1   ? "ISO-8859-1"
                    : r->o.encoding == HV_ENC_CP1252 ? "windows-1252"
                                                     : NULL;
  x->xr = xmlReaderForIO(hv__xml_input, NULL, r, NULL, enc,
                         XML_PARSE_NONET | XML_PARSE_NOCDATA);
  if (!x->xr)
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  xmlTextReaderSetStructuredErrorHandler(x->xr, hv__xml_error, x);
  return 0;
}

int hv__xml_bind(hv_reader *r, const char *key, hvg_err *err) {
  struct hv__xml *x = r->xml;
  size_t k = r->nkeys;
  const char *p = strcmp(key, ".") == 0 ? "" : key;
  size_t n = strlen(p);
  /* validate: segments of name characters, an optional final @attr */
  const char *at = strchr(p, '@');
  if ((at && (at != p && at[-1] != '/')) || (at && strchr(at + 1, '/')) ||
      (at && !at[1]) || strstr(p, "//") || p[0] == '/' ||
      (n && p[n - 1] == '/'))
    return hvg_err_set(err, HVG_EINVAL, key,
                       "an XML field is 'a/b', 'a/@attr', '@attr' or '.'");
  char *copy = malloc(n + 1);
  if (!copy)
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  memcpy(copy, p, n + 1);
  free(x->key[k].elem); /* left by a bind that failed after this point */
  x->key[k].elem = copy;
  x->key[k].attr = NULL;
  if (at) {
    size_t pos = (size_t)(at - p);
    copy[pos ? pos - 1 : 0] = '\0'; /* cut "a/@x" to "a", "@x" to "" */
    x->key[k].attr = copy + pos + 1;
  }
  hvg_buf_init(&x->val[k], r->o.max_record);
  return 0;
}

/* Append text to every bound key matching (rel, attr). Returns 0,
 * HVG_ETOOBIG or HVG_ENOMEM. */
static int hv__xml_put(struct hv__xml *x, size_t nkeys, const char *rel,
                       const char *attr, const char *text,
                       unsigned long serial) {
  for (size_t k = 0; k < nkeys; k++) {
    const hv__xkey *key = &x->key[k];
    if ((attr == NULL) != (key->attr == NULL) ||
        (attr && strcmp(attr, key->attr) != 0) || strcmp(rel, key->elem) != 0)
      continue;
    hvg_buf *b = &x->val[k];
    int rc = 0;
    if (x->seen[k] && x->seen[k] != serial && b->len)
      rc = hvg_buf_addc(b, ','); /* a repeated element: a list */
    if (!rc && text && *text)
      rc = hvg_buf_adds(b, text);
    if (rc)
      return rc;
    x->seen[k] = serial;
  }
  return 0;
}

/* Attributes of the current element, under relative path rel. */
static int hv__xml_attrs(hv_reader *r, const char *rel, unsigned long serial) {
  struct hv__xml *x = r->xml;
  int rc = 0;
  if (xmlTextReaderHasAttributes(x->xr) != 1)
    return 0;
  while (rc == 0 && xmlTextReaderMoveToNextAttribute(x->xr) == 1) {
    if (xmlTextReaderIsNamespaceDecl(x->xr) == 1)
      continue;
    const char *name = (const char *)xmlTextReaderConstLocalName(x->xr);
    const char *val = (const char *)xmlTextReaderConstValue(x->xr);
    rc = hv__xml_put(x, r->nkeys, rel, name, val, serial);
  }
  xmlTextReaderMoveToElement(x->xr);
  return rc;
}

/* Reads the record whose start element is current, up to its end element.
 * Returns 1; HVG_ETOOBIG when a value outgrew max_record (the rest of the
 * record is skipped, the next call goes on after it); or a fatal error with
 * r->failed set. */
static int hv__xml_record(hv_reader *r, hv_row *row, hvg_err *err) {
  struct hv__xml *x = r->xml;
  int depth0 = xmlTextReaderDepth(x->xr);
  unsigned long serial = 1;
  for (size_t k = 0; k < r->nkeys; k++) {
    hvg_buf_reset(&x->val[k]);
    x->seen[k] = 0;
  }
  hvg_buf_reset(&x->rel);
  x->rel_at[0] = 0;
  int bad = hv__xml_attrs(r, "", serial); /* first error; stops collecting */
  int empty = xmlTextReaderIsEmptyElement(x->xr) == 1;
  while (!empty) {
    if (xmlTextReaderRead(x->xr) != 1)
      return hv__xml_fatal(r, row, HVG_ESYNTAX, err,
                           "the input ends inside a record");
    int type = xmlTextReaderNodeType(x->xr);
    int level = xmlTextReaderDepth(x->xr) - depth0;
    if (type == XML_READER_TYPE_END_ELEMENT && level == 0)
      break;
    if (type == XML_READER_TYPE_ENTITY_REFERENCE)
      return hv__xml_fatal(r, row, HVG_ESECURITY, err,
                           "entity references are not allowed");
    if (bad || level <= 0)
      continue;
    if (level >= HV__XML_MAX_DEPTH) {
      bad = HVG_ETOOBIG;
    } else if (type == XML_READER_TYPE_ELEMENT) {
      const char *name = (const char *)xmlTextReaderConstLocalName(x->xr);
      serial++;
      hvg_buf_truncate(&x->rel, x->rel_at[level - 1]);
      bad = level > 1 ? hvg_buf_addc(&x->rel, '/') : 0;
      if (!bad)
        bad = hvg_buf_adds(&x->rel, name);
      x->rel_at[level] = x->rel.len;
      if (!bad)
        bad = hv__xml_attrs(r, x->rel.data, serial);
      if (!bad && xmlTextReaderIsEmptyElement(x->xr) == 1)
        bad = hv__xml_put(x, r->nkeys, x->rel.data, NULL, "", serial);
    } else if (type == XML_READER_TYPE_TEXT ||
               type == XML_READER_TYPE_CDATA) {
      hvg_buf_truncate(&x->rel, x->rel_at[level - 1]);
      bad = hv__xml_put(x, r->nkeys, x->rel.data ? x->rel.data : "", NULL,
                        (const char *)xmlTextReaderConstValue(x->xr), serial);
    }
  }
  if (bad == HVG_ENOMEM)
    return hv__xml_fatal(r, row, HVG_ENOMEM, err, NULL);
  if (bad)
    return hvg_err_set(err, HVG_ETOOBIG, NULL, "record larger than %zu bytes",
                       r->o.max_record);
  return 1;
}

int hv__xml_next(hv_reader *r, hv_row *row, hvg_err *err) {
  struct hv__xml *x = r->xml;
  for (;;) {
    int got = xmlTextReaderRead(x->xr);
    if (got == 0)
      return 0;
    if (got < 0)
      return hv__xml_fatal(r, row, HVG_ESYNTAX, err, "malformed XML");
    int type = xmlTextReaderNodeType(x->xr);
    if (type == XML_READER_TYPE_DOCUMENT_TYPE)
      return hv__xml_fatal(r, row, HVG_ESECURITY, err, HV__XML_NO_DOCTYPE);
    if (type == XML_READER_TYPE_ENTITY_REFERENCE)
      return hv__xml_fatal(r, row, HVG_ESECURITY, err,
                           "entity references are not allowed");
    if (type != XML_READER_TYPE_ELEMENT)
      continue;
    int d = xmlTextReaderDepth(x->xr);
    if (d < x->matched)
      x->matched = d;
    const char *name = (const char *)xmlTextReaderConstLocalName(x->xr);
    if (d != x->matched || d >= x->nseg || strcmp(name, x->seg[d]) != 0)
      continue;
    if (d < x->nseg - 1) {
      if (!xmlTextReaderIsEmptyElement(x->xr))
        x->matched = d + 1;
      continue;
    }
    xmlNodePtr node = xmlTextReaderCurrentNode(x->xr);
    long line = node ? xmlGetLineNo(node) : -1;
    row->line = (unsigned long)(line > 0 ? line : 0);
    int rc = hv__xml_record(r, row, err);
    if (rc != 1)
      return rc;
    for (size_t k = 0; k < r->nkeys; k++) {
      r->val[k] = x->seen[k] ? (x->val[k].data ? x->val[k].data : "") : NULL;
      r->len[k] = x->val[k].len;
    }
    return 1;
  }
}

void hv__xml_close(hv_reader *r) {
  struct hv__xml *x = r->xml;
  if (!x)
    return;
  if (x->xr)
    xmlFreeTextReader(x->xr);
  if (x->doc)
    xmlFreeDoc(x->doc);
  for (size_t k = 0; k < HV__MAX_KEYS; k++) {
    free(x->key[k].elem);
    hvg_buf_free(&x->val[k]);
  }
  hvg_buf_free(&x->rel);
  free(x->path);
  free(x);
  r->xml = NULL;
}
