#include "fhir_xml.h"

#include "fhir_json.h"
#include "fhir_json_int.h"
#include "fhir_meta.h"

#include <libxml/SAX2.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XSI_NS "http://www.w3.org/2001/XMLSchema-instance"

/* Element nesting inside a narrative div, and in a whole document: a tree
 * within FHIR_PARSE_MAX_DEPTH needs at most 2 XML elements per level (a
 * nested resource sits in a wrapper) plus a leaf, plus its narrative, so
 * every tree that can be written can be read back. Both bound the DOM. */
#define XC_MAX_DEPTH 64
#define XR_MAX_DEPTH (2 * FHIR_PARSE_MAX_DEPTH + 1 + XC_MAX_DEPTH + 16)

/* ---- secure reading ---------------------------------------------------- */

typedef struct xr_state {
  int doctype;
  int too_deep;
} xr_state;

/* A DOCTYPE stops the parser before its internal subset is read: nothing
 * is declared, so no entity can be expanded or fetched. */
static void xr__subset(void *ctx, const xmlChar *name, const xmlChar *ext_id,
                       const xmlChar *sys_id) {
  (void)name;
  (void)ext_id;
  (void)sys_id;
  xmlParserCtxtPtr ctxt = ctx;
  ((xr_state *)ctxt->_private)->doctype = 1;
  xmlStopParser(ctxt);
}

static void xr__entity_decl(void *ctx, const xmlChar *name, int type,
                            const xmlChar *public_id, const xmlChar *system_id,
                            xmlChar *content) {
  (void)type;
  (void)public_id;
  (void)system_id;
  (void)content;
  xr__subset(ctx, name, NULL, NULL);
}

static void xr__start(void *ctx, const xmlChar *localname,
                      const xmlChar *prefix, const xmlChar *uri, int nb_ns,
                      const xmlChar **ns, int nb_attrs, int nb_defaulted,
                      const xmlChar **attrs) {
  xmlParserCtxtPtr ctxt = ctx;
  if (ctxt->nameNr >= XR_MAX_DEPTH) {
    ((xr_state *)ctxt->_private)->too_deep = 1;
    xmlStopParser(ctxt);
    return;
  }
  xmlSAX2StartElementNs(ctx, localname, prefix, uri, nb_ns, ns, nb_attrs,
                        nb_defaulted, attrs);
}

/* Parse text into a DOM under the rules in fhir_xml.h. */
static int xr__read(const char *text, size_t len, xmlDoc **doc,
                    const fhir__path *path, hvg_err *err) {
  *doc = NULL;
  if (len > INT_MAX)
    return fhir__fail(err, HVG_ETOOBIG, path, NULL, "XML too large");
  xmlInitParser();
  xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
  if (!ctxt)
    return fhir__fail(err, HVG_ENOMEM, path, NULL, "out of memory");
  xr_state st = {0, 0};
  ctxt->_private = &st;
  /* ctxt->sax is this context's own copy: the defaults stay untouched */
  ctxt->sax->internalSubset = xr__subset;
  ctxt->sax->externalSubset = xr__subset;
  ctxt->sax->entityDecl = xr__entity_decl;
  ctxt->sax->startElementNs = xr__start;
  int opts = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
             XML_PARSE_NOCDATA | XML_PARSE_IGNORE_ENC;
  xmlDoc *d = xmlCtxtReadMemory(ctxt, text, (int)len, NULL, "UTF-8", opts);
  int rc = 0;
  if (st.doctype) {
    rc = fhir__fail(err, HVG_ESECURITY, path, NULL, "DOCTYPE is not allowed");
  } else if (st.too_deep) {
    rc = fhir__fail(err, HVG_ETOOBIG, path, NULL,
                    "XML elements nested deeper than %d", XR_MAX_DEPTH);
  } else if (!d || !ctxt->wellFormed) {
    const xmlError *e = &ctxt->lastError;
    if (e->code == XML_ERR_NO_MEMORY) {
      rc = fhir__fail(err, HVG_ENOMEM, path, NULL, "out of memory");
    } else {
      char msg[200];
      snprintf(msg, sizeof msg, "%s", e->message ? e->message : "not XML");
      size_t n = strlen(msg);
      while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
      rc =
          fhir__fail(err, HVG_ESYNTAX, path, NULL, "line %d: %s", e->line, msg);
    }
  } else if (d->intSubset || d->extSubset) {
    rc = fhir__fail(err, HVG_ESECURITY, path, NULL, "DOCTYPE is not allowed");
  }
  if (rc) {
    if (d)
      xmlFreeDoc(d);
  } else {
    *doc = d;
  }
  xmlFreeParserCtxt(ctxt);
  return rc;
}

static int xml__is_ns(const xmlNode *n, const char *ns) {
  return n->ns && n->ns->href && !strcmp((const char *)n->ns->href, ns);
}

/* Value of an attribute: the text node itself when there is one, else a
 * copy in *tofree (xmlFree). NULL when out of memory. */
static const char *xml__attr(const xmlAttr *a, xmlChar **tofree) {
  *tofree = NULL;
  const xmlNode *c = a->children;
  if (!c)
    return "";
  if (c->type == XML_TEXT_NODE && !c->next && c->content)
    return (const char *)c->content;
  *tofree = xmlNodeGetContent((const xmlNode *)a);
  return (const char *)*tofree;
}

/* ---- canonical XHTML ---------------------------------------------------- */

typedef struct xc {
  hvg_buf *b;
  int rc;       /* first error */
  int reported; /* err already says why (else a buffer error) */
  hvg_err *err;
  const fhir__path *path;
} xc;

/* A failure about the narrative's content, with the culprit's name. */
static int xc__fail(xc *c, int code, const char *what, const char *name) {
  c->reported = 1;
  return c->rc = fhir__fail(c->err, code, c->path, NULL, "narrative: %s%.40s",
                            what, name);
}

static void xc__add(xc *c, const char *s, size_t n) {
  if (!c->rc)
    c->rc = hvg_buf_add(c->b, s, n);
}

static void xc__adds(xc *c, const char *s) {
  xc__add(c, s, strlen(s));
}

/* Escaped as fhir_writer escapes, so the text reparses to itself. */
static void xc__esc(xc *c, const char *s, int attr) {
  const char *start = s;
  for (; *s; s++) {
    const char *rep;
    switch (*s) {
    case '&': rep = "&amp;"; break;
    case '<': rep = "&lt;"; break;
    case '>': rep = "&gt;"; break;
    case '"': rep = attr ? "&quot;" : NULL; break;
    case '\t': rep = attr ? "&#9;" : NULL; break;
    case '\n': rep = attr ? "&#10;" : NULL; break;
    case '\r': rep = "&#13;"; break;
    default: rep = NULL;
    }
    if (!rep)
      continue;
    xc__add(c, start, (size_t)(s - start));
    xc__adds(c, rep);
    start = s + 1;
  }
  xc__add(c, start, (size_t)(s - start));
}

static int xc__has_output(const xmlNode *n) {
  for (const xmlNode *c = n->children; c; c = c->next)
    if (c->type != XML_PI_NODE)
      return 1;
  return 0;
}

static int xc__node(xc *c, const xmlNode *n, int depth) {
  if (depth > XC_MAX_DEPTH)
    return xc__fail(c, HVG_ETOOBIG, "elements nested too deep", "");
  if (!xml__is_ns(n, FHIR_XHTML_NS))
    return xc__fail(c, HVG_EFORMAT, "element not in the XHTML namespace: ",
                    (const char *)n->name);
  xc__adds(c, "<");
  xc__adds(c, (const char *)n->name);
  if (depth == 1)
    xc__adds(c, " xmlns=\"" FHIR_XHTML_NS "\"");
  for (const xmlAttr *a = n->properties; a; a = a->next) {
    const char *prefix = "";
    if (a->ns) {
      if (!a->ns->href ||
          strcmp((const char *)a->ns->href, (const char *)XML_XML_NAMESPACE))
        return xc__fail(c, HVG_EFORMAT, "attribute in another namespace: ",
                        (const char *)a->name);
      prefix = "xml:";
    }
    xmlChar *tofree;
    const char *v = xml__attr(a, &tofree);
    if (!v)
      return xc__fail(c, HVG_ENOMEM, "out of memory", "");
    xc__adds(c, " ");
    xc__adds(c, prefix);
    xc__adds(c, (const char *)a->name);
    xc__adds(c, "=\"");
    xc__esc(c, v, 1);
    xc__adds(c, "\"");
    xmlFree(tofree);
  }
  if (!xc__has_output(n)) {
    xc__adds(c, "/>");
    return c->rc;
  }
  xc__adds(c, ">");
  for (const xmlNode *k = n->children; k && !c->rc; k = k->next) {
    switch (k->type) {
    case XML_ELEMENT_NODE: xc__node(c, k, depth + 1); break;
    case XML_TEXT_NODE:
    case XML_CDATA_SECTION_NODE:
      if (k->content)
        xc__esc(c, (const char *)k->content, 0);
      break;
    case XML_COMMENT_NODE:
      xc__adds(c, "<!--");
      if (k->content)
        xc__adds(c, (const char *)k->content);
      xc__adds(c, "-->");
      break;
    case XML_PI_NODE: break;
    default: return xc__fail(c, HVG_EFORMAT, "unexpected node", "");
    }
  }
  xc__adds(c, "</");
  xc__adds(c, (const char *)n->name);
  xc__adds(c, ">");
  return c->rc;
}

int fhir__xhtml_canon_node(const xmlNode *div, hvg_buf *out,
                           const fhir__path *path, hvg_err *err) {
  if (!div || div->type != XML_ELEMENT_NODE ||
      strcmp((const char *)div->name, "div") || !xml__is_ns(div, FHIR_XHTML_NS))
    return fhir__fail(err, HVG_EFORMAT, path, NULL,
                      "narrative must be a <div> in namespace " FHIR_XHTML_NS);
  xc c = {out, 0, 0, err, path};
  size_t start = out->len;
  xc__node(&c, div, 1);
  if (c.rc && !c.reported)
    fhir__fail(err, c.rc, path, NULL, "narrative: %s", hvg_strerror(c.rc));
  if (c.rc)
    hvg_buf_truncate(out, start);
  return c.rc;
}

int fhir__xhtml_canon_text(const char *text, size_t len, char **canon,
                           const fhir__path *path, hvg_err *err) {
  *canon = NULL;
  if (len > (SIZE_MAX - 256) / 8)
    return fhir__fail(err, HVG_ETOOBIG, path, NULL, "narrative too large");
  xmlDoc *doc;
  int rc = xr__read(text, len, &doc, path, err);
  if (rc)
    return rc;
  hvg_buf b;
  /* escaping grows text at most sixfold ('"' -> &quot;) */
  hvg_buf_init(&b, len * 6 + 256);
  rc = fhir__xhtml_canon_node(xmlDocGetRootElement(doc), &b, path, err);
  xmlFreeDoc(doc);
  if (!rc && !(*canon = hvg_buf_take(&b, NULL)))
    rc = fhir__fail(err, HVG_ENOMEM, path, NULL, "out of memory");
  hvg_buf_free(&b);
  return rc;
}

/* ---- XML DOM to tree ---------------------------------------------------- */

typedef struct xp {
  hvg_err *err;
  fhir__path path;
  int elem_type;   /* "Element": type of "_name" companions */
  size_t max_text; /* cap of one canonical narrative */
} xp;

static int xp__nomem(xp *x) {
  return fhir__fail(x->err, HVG_ENOMEM, &x->path, NULL, "out of memory");
}

static int xp__blank(const xmlChar *s) {
  for (; s && *s; s++)
    if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
      return 0;
  return 1;
}

/* Children other than elements: 1 to skip (blank text, comments, PIs), 0
 * for an element, or an error. */
static int xp__other(xp *x, const xmlNode *c) {
  switch (c->type) {
  case XML_ELEMENT_NODE: return 0;
  case XML_TEXT_NODE:
  case XML_CDATA_SECTION_NODE:
    if (xp__blank(c->content))
      return 1;
    return fhir__fail(x->err, HVG_EFORMAT, &x->path, NULL,
                      "text is not allowed here (FHIR values go in value "
                      "attributes)");
  case XML_COMMENT_NODE:
  case XML_PI_NODE: return 1;
  default:
    return fhir__fail(x->err, HVG_EFORMAT, &x->path, NULL,
                      "unexpected XML node");
  }
}

static int xp__members(xp *x, const xmlNode *n, int type, cJSON *o, int depth,
                       int attrs);
static int xp__resource(xp *x, const xmlNode *n, int depth, cJSON **out);

static int xp__depth(xp *x, int depth) {
  if (depth > FHIR_PARSE_MAX_DEPTH)
    return fhir__fail(x->err, HVG_ETOOBIG, &x->path, NULL,
                      "nested deeper than %d", FHIR_PARSE_MAX_DEPTH);
  return 0;
}

/* A value attribute as the JSON type of e. */
static int xp__value(xp *x, const fhir_meta_elem *e, const char *v,
                     cJSON **out) {
  const char *why;
  long iv;
  *out = NULL;
  if (!*v)
    return fhir__fail(x->err, HVG_EFORMAT, &x->path, NULL,
                      "empty value attribute");
  switch (e->kind) {
  case FHIR_MK_STRING: *out = cJSON_CreateString(v); break;
  case FHIR_MK_BOOLEAN:
    if (strcmp(v, "true") && strcmp(v, "false"))
      return fhir__fail(x->err, HVG_EFORMAT, &x->path, NULL,
                        "must be true or false");
    *out = cJSON_CreateBool(v[0] == 't');
    break;
  case FHIR_MK_INTEGER:
    if (fhir__int_parse(v, strlen(v), e->prim, &iv, &why))
      return fhir__fail(x->err, HVG_EFORMAT, &x->path, NULL, "%s", why);
    *out = cJSON_CreateNumber((double)iv);
    break;
  case FHIR_MK_DECIMAL:
    if (!fhir__is_number(v, strlen(v)))
      return fhir__fail(x->err, HVG_EFORMAT, &x->path, NULL,
                        "not a decimal number");
    *out = cJSON_CreateRaw(v); /* the text as written: 1.50 stays 1.50 */
    break;
  default:
    return fhir__fail(x->err, HVG_EINVAL, &x->path, NULL, "not a primitive");
  }
  return *out ? 0 : xp__nomem(x);
}

/* A primitive element: its value (NULL without value attribute) and its
 * companion (NULL without id or extensions). cdepth: the companion's
 * depth in the tree. On error nothing is returned. */
static int xp__prim(xp *x, const xmlNode *c, const fhir_meta_elem *e,
                    int cdepth, cJSON **val, cJSON **comp) {
  *val = *comp = NULL;
  const char *value = NULL, *id = NULL;
  xmlChar *f1 = NULL, *f2 = NULL;
  int rc = 0;
  for (const xmlAttr *a = c->properties; a && !rc; a = a->next) {
    const char *an = (const char *)a->name;
    const char **slot;
    xmlChar **fr;
    if (!a->ns && !strcmp(an, "value")) {
      slot = &value;
      fr = &f1;
    } else if (!a->ns && !strcmp(an, "id")) {
      slot = &id;
      fr = &f2;
    } else {
      rc = fhir__fail(x->err, HVG_EUNKNOWN, &x->path, NULL,
                      "attribute '%.40s' not allowed", an);
      break;
    }
    if (!(*slot = xml__attr(a, fr)))
      rc = xp__nomem(x);
  }
  if (!rc && value)
    rc = xp__value(x, e, value, val);
  if (!rc && id && !*id)
    rc = fhir__fail(x->err, HVG_EFORMAT, &x->path, NULL, "empty id");
  if (!rc && (id || c->children)) {
    cJSON *o = NULL, *s = NULL;
    if (!(rc = xp__depth(x, cdepth)) && !(o = cJSON_CreateObject()))
      rc = xp__nomem(x);
    if (!rc && id) {
      if (!(s = cJSON_CreateString(id)))
        rc = xp__nomem(x);
      else
        cJSON_AddItemToObjectCS(o, "id", s);
    }
    if (!rc)
      rc = xp__members(x, c, x->elem_type, o, cdepth, 0);
    if (!rc && o->child)
      *comp = o;
    else
      cJSON_Delete(o);
  }
  if (!rc && !*val && !*comp)
    rc = fhir__fail(x->err, HVG_EFORMAT, &x->path, NULL,
                    "no value, id or extension");
  xmlFree(f1);
  xmlFree(f2);
  if (rc) {
    cJSON_Delete(*val);
    cJSON_Delete(*comp);
    *val = *comp = NULL;
  }
  return rc;
}

/* A run of one element's consecutive occurrences (repeats collect into
 * arrays that are already in the object, so the object owns them). */
typedef struct xrun {
  int active;
  fhir_meta_elem e;
  cJSON *va, *ca; /* repeats: value (or object) array, companion array */
  int has_v, has_c;
  size_t count;
} xrun;

static void xp__flush(cJSON *o, xrun *r) {
  if (r->active && r->va && !r->has_v)
    cJSON_Delete(cJSON_DetachItemViaPointer(o, r->va));
  if (r->active && r->ca && !r->has_c)
    cJSON_Delete(cJSON_DetachItemViaPointer(o, r->ca));
  memset(r, 0, sizeof *r);
}

static int xp__start_run(xp *x, cJSON *o, xrun *r, const fhir_meta_elem *e,
                         int depth) {
  xp__flush(o, r);
  r->active = 1;
  r->e = *e;
  if (!(e->flags & FHIR_ME_REPEATS))
    return 0;
  int rc = xp__depth(x, depth + 1);
  if (rc)
    return rc;
  if (!(r->va = cJSON_CreateArray()))
    return xp__nomem(x);
  cJSON_AddItemToObjectCS(o, e->name, r->va);
  if (!fhir_meta_kind_is_primitive(e->kind))
    return 0;
  char cname[160];
  if (strlen(e->name) + 2 > sizeof cname)
    return fhir__fail(x->err, HVG_EINVAL, &x->path, NULL, "name too long");
  cname[0] = '_';
  strcpy(cname + 1, e->name);
  if (!(r->ca = cJSON_CreateArray()))
    return xp__nomem(x);
  if (!cJSON_AddItemToObject(o, cname, r->ca)) {
    cJSON_Delete(r->ca);
    r->ca = NULL;
    return xp__nomem(x);
  }
  return 0;
}

/* Put item under e's name in o, or append it to the run's array. */
static int xp__put(xp *x, cJSON *o, xrun *r, cJSON *item, int comp) {
  if (!item)
    return xp__nomem(x);
  if (r->e.flags & FHIR_ME_REPEATS) {
    cJSON_AddItemToArray(comp ? r->ca : r->va, item);
    return 0;
  }
  if (!comp) {
    cJSON_AddItemToObjectCS(o, r->e.name, item);
    return 0;
  }
  char cname[160];
  if (strlen(r->e.name) + 2 > sizeof cname) {
    cJSON_Delete(item);
    return fhir__fail(x->err, HVG_EINVAL, &x->path, NULL, "name too long");
  }
  cname[0] = '_';
  strcpy(cname + 1, r->e.name);
  if (!cJSON_AddItemToObject(o, cname, item)) {
    cJSON_Delete(item);
    return xp__nomem(x);
  }
  return 0;
}

/* A wrapper element (<contained>, <resource>) holding one resource. */
static int xp__wrapped(xp *x, const xmlNode *w, int depth, cJSON **out) {
  *out = NULL;
  if (w->properties)
    return fhir__fail(x->err, HVG_EUNKNOWN, &x->path, NULL,
                      "attribute '%.40s' not allowed",
                      (const char *)w->properties->name);
  const xmlNode *res = NULL;
  for (const xmlNode *c = w->children; c; c = c->next) {
    int k = xp__other(x, c);
    if (k < 0)
      return k;
    if (k)
      continue;
    if (res)
      return fhir__fail(x->err, HVG_EFORMAT, &x->path, NULL,
                        "holds more than one resource");
    res = c;
  }
  if (!res)
    return fhir__fail(x->err, HVG_EFORMAT, &x->path, NULL, "holds no resource");
  return xp__resource(x, res, depth, out);
}

/* One occurrence c of element e (run r) into object o at depth. */
static int xp__item(xp *x, const xmlNode *c, cJSON *o, xrun *r, int depth) {
  const fhir_meta_elem *e = &r->e;
  int rep = (e->flags & FHIR_ME_REPEATS) != 0;
  int idepth = depth + 1 + rep; /* depth of an object item */
  int rc;
  switch (e->kind) {
  case FHIR_MK_STRING:
  case FHIR_MK_BOOLEAN:
  case FHIR_MK_INTEGER:
  case FHIR_MK_DECIMAL: {
    cJSON *v, *k;
    if ((rc = xp__prim(x, c, e, idepth, &v, &k)))
      return rc;
    if (rep) {
      r->has_v |= v != NULL;
      r->has_c |= k != NULL;
      rc = xp__put(x, o, r, v ? v : cJSON_CreateNull(), 0);
      if (!rc)
        rc = xp__put(x, o, r, k ? k : cJSON_CreateNull(), 1);
      else
        cJSON_Delete(k);
      return rc;
    }
    rc = v ? xp__put(x, o, r, v, 0) : 0;
    if (k) {
      if (!rc)
        rc = xp__put(x, o, r, k, 1);
      else
        cJSON_Delete(k);
    }
    return rc;
  }
  case FHIR_MK_XHTML: {
    hvg_buf b;
    hvg_buf_init(&b, x->max_text);
    rc = fhir__xhtml_canon_node(c, &b, &x->path, x->err);
    if (!rc) {
      r->has_v = 1;
      rc = xp__put(x, o, r, cJSON_CreateString(b.data), 0);
    }
    hvg_buf_free(&b);
    return rc;
  }
  case FHIR_MK_COMPLEX:
  case FHIR_MK_BACKBONE: {
    cJSON *obj = cJSON_CreateObject();
    if ((rc = xp__put(x, o, r, obj, 0)))
      return rc;
    r->has_v = 1;
    if ((rc = xp__members(x, c, e->type, obj, idepth, 1)))
      return rc;
    if (!obj->child)
      return fhir__fail(x->err, HVG_EFORMAT, &x->path, NULL,
                        "empty element (leave it out instead)");
    return 0;
  }
  case FHIR_MK_RESOURCE: {
    cJSON *res;
    if ((rc = xp__wrapped(x, c, idepth, &res)))
      return rc;
    r->has_v = 1;
    return xp__put(x, o, r, res, 0);
  }
  default:
    return fhir__fail(x->err, HVG_EINVAL, &x->path, NULL, "bad definition");
  }
}

/* The children of n (attributes too when `attrs`: Element.id,
 * Extension.url) into object o of `type`, checking names and order. */
static int xp__members(xp *x, const xmlNode *n, int type, cJSON *o, int depth,
                       int attrs) {
  int rc = xp__depth(x, depth);
  if (rc)
    return rc;
  for (const xmlAttr *a = attrs ? n->properties : NULL; a; a = a->next) {
    const char *an = (const char *)a->name;
    fhir_meta_elem e;
    if (a->ns || fhir_meta_elem_find(type, an, strlen(an), &e) ||
        !(e.flags & FHIR_ME_ATTR))
      return fhir__fail(x->err, HVG_EUNKNOWN, &x->path, NULL,
                        "attribute '%.40s' not allowed", an);
    xmlChar *tofree;
    const char *v = xml__attr(a, &tofree);
    if (!v)
      return xp__nomem(x);
    cJSON *s = *v ? cJSON_CreateString(v) : NULL;
    xmlFree(tofree);
    if (!s)
      return *v ? xp__nomem(x)
                : fhir__fail(x->err, HVG_EFORMAT, &x->path, an,
                             "empty attribute");
    cJSON_AddItemToObjectCS(o, e.name, s);
  }
  xrun r;
  memset(&r, 0, sizeof r);
  int last = -1;
  for (const xmlNode *c = n->children; c; c = c->next) {
    int k = xp__other(x, c);
    if (k < 0)
      return k;
    if (k)
      continue;
    const char *name = (const char *)c->name;
    fhir_meta_elem e;
    if (fhir_meta_elem_find(type, name, strlen(name), &e))
      return fhir__fail(x->err, HVG_EUNKNOWN, &x->path, name,
                        "unknown element");
    const char *want = e.kind == FHIR_MK_XHTML ? FHIR_XHTML_NS : FHIR_NS;
    if (!xml__is_ns(c, want))
      return fhir__fail(x->err, HVG_EFORMAT, &x->path, name,
                        "must be in namespace %s", want);
    if (e.flags & FHIR_ME_ATTR)
      return fhir__fail(x->err, HVG_EFORMAT, &x->path, name,
                        "must be an attribute, not an element");
    if ((int)e.order < last)
      return fhir__fail(x->err, HVG_EORDER, &x->path, name,
                        "element out of order (must come before %s)", r.e.name);
    if (r.active && e.order == r.e.order) {
      if (e.index != r.e.index)
        return fhir__fail(x->err, HVG_EFORMAT, &x->path, name,
                          "only one type of a choice element is allowed");
      if (!(e.flags & FHIR_ME_REPEATS))
        return fhir__fail(x->err, HVG_EFORMAT, &x->path, name,
                          "appears more than once (the element does not "
                          "repeat)");
    } else if ((rc = xp__start_run(x, o, &r, &e, depth))) {
      return rc;
    }
    last = (int)e.order;
    fhir__path_push(&x->path, r.e.name);
    if (e.flags & FHIR_ME_REPEATS)
      fhir__path_push_index(&x->path, r.count);
    rc = xp__item(x, c, o, &r, depth);
    if (e.flags & FHIR_ME_REPEATS)
      fhir__path_pop(&x->path);
    fhir__path_pop(&x->path);
    if (rc)
      return rc;
    r.count++;
  }
  xp__flush(o, &r);
  return 0;
}

static int xp__resource(xp *x, const xmlNode *n, int depth, cJSON **out) {
  *out = NULL;
  const char *name = (const char *)n->name;
  if (!xml__is_ns(n, FHIR_NS))
    return fhir__fail(x->err, HVG_EFORMAT, &x->path, name,
                      "must be in namespace " FHIR_NS);
  int t = fhir_meta_resource_find(name, strlen(name));
  if (t < 0)
    return fhir__fail(x->err, HVG_EUNKNOWN, &x->path, name,
                      "unknown resource type");
  int rc = xp__depth(x, depth);
  if (rc)
    return rc;
  for (const xmlAttr *a = n->properties; a; a = a->next)
    if (!(depth == 1 && a->ns && a->ns->href &&
          !strcmp((const char *)a->ns->href, XSI_NS))) /* schemaLocation */
      return fhir__fail(x->err, HVG_EUNKNOWN, &x->path, name,
                        "attribute '%.40s' not allowed", (const char *)a->name);
  cJSON *o = cJSON_CreateObject();
  cJSON *rt = cJSON_CreateString(fhir_meta_type_name(t));
  if (!o || !rt) {
    cJSON_Delete(o);
    cJSON_Delete(rt);
    return xp__nomem(x);
  }
  cJSON_AddItemToObjectCS(o, "resourceType", rt);
  int root = x->path.n == 0;
  if (root)
    fhir__path_push(&x->path, fhir_meta_type_name(t));
  rc = xp__members(x, n, t, o, depth, 0);
  if (root)
    fhir__path_pop(&x->path);
  if (rc) {
    cJSON_Delete(o);
    return rc;
  }
  *out = o;
  return 0;
}

int fhir_xml_parse(const char *text, size_t len, size_t max_len, cJSON **out,
                   hvg_err *err) {
  *out = NULL;
  if (!text)
    return hvg_err_set(err, HVG_EINVAL, "", "no input");
  if (len > max_len)
    return hvg_err_set(err, HVG_ETOOBIG, "",
                       "input of %zu bytes is larger than the %zu allowed", len,
                       max_len);
  xmlDoc *doc;
  int rc = xr__read(text, len, &doc, NULL, err);
  if (rc)
    return rc;
  xp x;
  x.err = err;
  fhir__path_init(&x.path);
  x.elem_type = fhir_meta_type_find("Element", 7);
  x.max_text = len > (SIZE_MAX - 256) / 8 ? SIZE_MAX / 2 : len * 6 + 256;
  const xmlNode *root = xmlDocGetRootElement(doc);
  if (!root)
    rc = hvg_err_set(err, HVG_ESYNTAX, "", "no root element");
  else
    rc = xp__resource(&x, root, 1, out);
  xmlFreeDoc(doc);
  return rc;
}
