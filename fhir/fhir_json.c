#include "fhir_json.h"

#include "fhir_json_int.h"
#include "fhir_meta.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- element paths ---------------------------------------------------- */

void fhir__path_init(fhir__path *p) {
  p->n = 0;
}

void fhir__path_push(fhir__path *p, const char *name) {
  if (p->n < FHIR__PATH_MAX) {
    p->seg[p->n].name = name;
    p->seg[p->n].index = 0;
  }
  p->n++;
}

void fhir__path_push_index(fhir__path *p, size_t i) {
  if (p->n < FHIR__PATH_MAX) {
    p->seg[p->n].name = NULL;
    p->seg[p->n].index = i;
  }
  p->n++;
}

void fhir__path_pop(fhir__path *p) {
  if (p->n > 0)
    p->n--;
}

static void path__add(char *buf, size_t size, size_t *len, const char *name,
                      size_t index) {
  if (*len >= size - 1)
    return;
  int n;
  if (name)
    n = snprintf(buf + *len, size - *len, "%s%s", *len ? "." : "", name);
  else
    n = snprintf(buf + *len, size - *len, "[%zu]", index);
  if (n > 0)
    *len += (size_t)n < size - *len ? (size_t)n : size - 1 - *len;
}

int fhir__fail(hvg_err *err, int code, const fhir__path *p, const char *last,
               const char *fmt, ...) {
  if (!err)
    return code;
  char field[sizeof err->field];
  size_t len = 0;
  field[0] = '\0';
  int n = p ? (p->n < FHIR__PATH_MAX ? p->n : FHIR__PATH_MAX) : 0;
  for (int i = 0; i < n; i++)
    path__add(field, sizeof field, &len, p->seg[i].name, p->seg[i].index);
  if (last)
    path__add(field, sizeof field, &len, last, 0);
  char msg[sizeof err->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return hvg_err_set(err, code, field, "%s", msg);
}

/* ---- lexical checks shared with fhir_xml ------------------------------ */

int fhir__int_parse(const char *s, size_t n, fhir_meta_prim prim, long *v,
                    const char **why) {
  size_t i = 0;
  int neg = 0;
  if (n && s[0] == '-') {
    neg = 1;
    i = 1;
  }
  if (i >= n || s[i] < '0' || s[i] > '9') {
    *why = "not an integer";
    return -1;
  }
  if (s[i] == '0' && (n - i > 1 || neg)) {
    *why = "not an integer (leading zero or -0)";
    return -1;
  }
  long long acc = 0;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') {
      *why = "not an integer";
      return -1;
    }
    acc = acc * 10 + (s[i] - '0');
    if (acc > 2147483648LL) {
      *why = "integer out of range (32 bits)";
      return -1;
    }
  }
  if (neg)
    acc = -acc;
  if (acc > 2147483647LL) {
    *why = "integer out of range (32 bits)";
    return -1;
  }
  if (prim == FHIR_MP_POSITIVEINT && acc < 1) {
    *why = "positiveInt must be at least 1";
    return -1;
  }
  if (prim == FHIR_MP_UNSIGNEDINT && acc < 0) {
    *why = "unsignedInt must not be negative";
    return -1;
  }
  *v = (long)acc;
  return 0;
}

#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')

int fhir__is_number(const char *s, size_t n) {
  size_t i = 0;
  if (i < n && s[i] == '-')
    i++;
  if (i < n && s[i] == '0')
    i++;
  else if (i < n && s[i] >= '1' && s[i] <= '9')
    while (i < n && IS_DIGIT(s[i]))
      i++;
  else
    return 0;
  if (i < n && s[i] == '.') {
    i++;
    if (!(i < n && IS_DIGIT(s[i])))
      return 0;
    while (i < n && IS_DIGIT(s[i]))
      i++;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-'))
      i++;
    if (!(i < n && IS_DIGIT(s[i])))
      return 0;
    while (i < n && IS_DIGIT(s[i]))
      i++;
  }
  return i == n;
}

/* ---- strict RFC 8259 parser building cJSON nodes ----------------------- */

typedef struct jp {
  const unsigned char *s, *p, *end;
  hvg_err *err;
} jp;

/* Syntax-level failure at the current position: "line L, column C". */
static int jp__fail(jp *j, int code, const char *what) {
  size_t line = 1, col = 1;
  for (const unsigned char *q = j->s; q < j->p && q < j->end; q++) {
    if (*q == '\n') {
      line++;
      col = 1;
    } else {
      col++;
    }
  }
  return hvg_err_set(j->err, code, "", "line %zu, column %zu: %s", line, col,
                     what);
}

static void jp__ws(jp *j) {
  while (j->p < j->end &&
         (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
    j->p++;
}

static cJSON *jp__node(int type) {
  cJSON *n = cJSON_CreateNull();
  if (n)
    n->type = type;
  return n;
}

/* Length of the UTF-8 sequence at p (shortest form, no surrogates, at most
 * U+10FFFF) with its code point in *cp, or 0 when invalid. */
static size_t jp__utf8(const unsigned char *p, const unsigned char *end,
                       unsigned *cp) {
  unsigned c = p[0];
  size_t n;
  unsigned v;
  if (c < 0xC2)
    return 0;
  if (c < 0xE0) {
    n = 2;
    v = c & 0x1F;
  } else if (c < 0xF0) {
    n = 3;
    v = c & 0x0F;
  } else if (c < 0xF5) {
    n = 4;
    v = c & 0x07;
  } else {
    return 0;
  }
  if ((size_t)(end - p) < n)
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xC0) != 0x80)
      return 0;
    v = (v << 6) | (p[i] & 0x3F);
  }
  if ((n == 3 && (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))) ||
      (n == 4 && (v < 0x10000 || v > 0x10FFFF)))
    return 0;
  *cp = v;
  return n;
}

static int jp__hex4(const unsigned char *p, unsigned *v) {
  unsigned r = 0;
  for (int i = 0; i < 4; i++) {
    unsigned c = p[i], d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return -1;
    r = r << 4 | d;
  }
  *v = r;
  return 0;
}

static size_t jp__put_utf8(char *o, unsigned cp) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | cp >> 6);
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | cp >> 12);
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | cp >> 18);
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* FHIR strings exclude C0 controls but tab, CR and LF; U+FFFE/U+FFFF are
 * excluded too as XML cannot carry them (a JSON value must survive XML). */
static int jp__char_ok(unsigned cp) {
  if (cp < 0x20)
    return cp == '\t' || cp == '\n' || cp == '\r';
  return cp != 0xFFFE && cp != 0xFFFF;
}

/* The string at j->p ('"'), decoded into a cJSON_malloc'd buffer. */
static int jp__string(jp *j, char **out) {
  const unsigned char *q = j->p + 1, *r = q;
  while (r < j->end && *r != '"') {
    if (*r == '\\' && r + 1 < j->end)
      r++;
    r++;
  }
  if (r >= j->end)
    return jp__fail(j, HVG_ESYNTAX, "unterminated string");
  char *buf = cJSON_malloc((size_t)(r - q) + 1);
  if (!buf)
    return hvg_err_set(j->err, HVG_ENOMEM, "", NULL);
  size_t n = 0;
  int rc = 0;
  while (q < r) {
    unsigned c = *q;
    if (c >= 0x20 && c < 0x80 && c != '\\') {
      buf[n++] = (char)c;
      q++;
      continue;
    }
    j->p = q;
    if (c < 0x20) {
      rc = jp__fail(j, HVG_ESYNTAX, "control character in string");
      break;
    }
    if (c >= 0x80) {
      unsigned cp;
      size_t k = jp__utf8(q, r, &cp);
      if (!k) {
        rc = jp__fail(j, HVG_EENCODING, "invalid UTF-8");
        break;
      }
      if (!jp__char_ok(cp)) {
        rc = jp__fail(j, HVG_EFORMAT, "character not allowed in FHIR");
        break;
      }
      memcpy(buf + n, q, k);
      n += k;
      q += k;
      continue;
    }
    /* escape */
    unsigned e = q[1], cp;
    q += 2;
    switch (e) {
    case '"': cp = '"'; break;
    case '\\': cp = '\\'; break;
    case '/': cp = '/'; break;
    case 'b': cp = '\b'; break;
    case 'f': cp = '\f'; break;
    case 'n': cp = '\n'; break;
    case 'r': cp = '\r'; break;
    case 't': cp = '\t'; break;
    case 'u':
      if (r - q < 4 || jp__hex4(q, &cp)) {
        rc = jp__fail(j, HVG_ESYNTAX, "invalid \\u escape");
        break;
      }
      q += 4;
      if (cp >= 0xDC00 && cp <= 0xDFFF) {
        rc = jp__fail(j, HVG_EENCODING, "lone low surrogate");
        break;
      }
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        unsigned lo;
        if (r - q < 6 || q[0] != '\\' || q[1] != 'u' || jp__hex4(q + 2, &lo) ||
            lo < 0xDC00 || lo > 0xDFFF) {
          rc = jp__fail(j, HVG_EENCODING, "lone high surrogate");
          break;
        }
        q += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      }
      break;
    default: rc = jp__fail(j, HVG_ESYNTAX, "invalid escape");
    }
    if (rc)
      break;
    if (!jp__char_ok(cp)) {
      rc = jp__fail(j, HVG_EFORMAT, "character not allowed in FHIR");
      break;
    }
    n += jp__put_utf8(buf + n, cp);
  }
  if (rc) {
    cJSON_free(buf);
    return rc;
  }
  buf[n] = '\0';
  j->p = r + 1;
  *out = buf;
  return 0;
}

static int jp__value(jp *j, int depth, cJSON **out);

static int jp__container(jp *j, int depth, cJSON **out) {
  int is_obj = *j->p == '{';
  if (depth > FHIR_PARSE_MAX_DEPTH)
    return jp__fail(j, HVG_ETOOBIG, "nested deeper than FHIR_PARSE_MAX_DEPTH");
  cJSON *c = jp__node(is_obj ? cJSON_Object : cJSON_Array);
  if (!c)
    return hvg_err_set(j->err, HVG_ENOMEM, "", NULL);
  j->p++;
  jp__ws(j);
  if (j->p < j->end && *j->p == (is_obj ? '}' : ']')) {
    j->p++;
    *out = c;
    return 0;
  }
  for (;;) {
    char *key = NULL;
    int rc;
    jp__ws(j);
    if (is_obj) {
      if (j->p >= j->end || *j->p != '"') {
        rc = jp__fail(j, HVG_ESYNTAX, "expected a string (member name)");
        goto fail;
      }
      if ((rc = jp__string(j, &key)))
        goto fail;
      jp__ws(j);
      if (j->p >= j->end || *j->p != ':') {
        cJSON_free(key);
        rc = jp__fail(j, HVG_ESYNTAX, "expected ':'");
        goto fail;
      }
      j->p++;
    }
    cJSON *v;
    if ((rc = jp__value(j, depth, &v))) {
      cJSON_free(key);
      goto fail;
    }
    v->string = key;
    cJSON_AddItemToArray(c, v); /* O(1) append; keeps our key as is */
    jp__ws(j);
    if (j->p < j->end && *j->p == ',') {
      j->p++;
      continue;
    }
    if (j->p < j->end && *j->p == (is_obj ? '}' : ']')) {
      j->p++;
      break;
    }
    rc = jp__fail(j, HVG_ESYNTAX,
                  is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
  fail:
    cJSON_Delete(c);
    return rc;
  }
  *out = c;
  return 0;
}

static int jp__value(jp *j, int depth, cJSON **out) {
  jp__ws(j);
  if (j->p >= j->end)
    return jp__fail(j, HVG_ESYNTAX, "unexpected end of input");
  unsigned c = *j->p;
  if (c == '{' || c == '[')
    return jp__container(j, depth + 1, out);
  if (c == '"') {
    char *s;
    int rc = jp__string(j, &s);
    if (rc)
      return rc;
    cJSON *n = jp__node(cJSON_String);
    if (!n) {
      cJSON_free(s);
      return hvg_err_set(j->err, HVG_ENOMEM, "", NULL);
    }
    n->valuestring = s;
    *out = n;
    return 0;
  }
  static const struct {
    const char *word;
    int type;
  } lits[] = {
      {"true", cJSON_True}, {"false", cJSON_False}, {"null", cJSON_NULL}};
  for (size_t i = 0; i < sizeof lits / sizeof lits[0]; i++) {
    size_t n = strlen(lits[i].word);
    if ((size_t)(j->end - j->p) >= n && !memcmp(j->p, lits[i].word, n)) {
      j->p += n;
      if (!(*out = jp__node(lits[i].type)))
        return hvg_err_set(j->err, HVG_ENOMEM, "", NULL);
      return 0;
    }
  }
  if (c == '-' || IS_DIGIT(c)) {
    const unsigned char *st = j->p, *q = st;
    if (*q == '-')
      q++;
    while (q < j->end && (IS_DIGIT(*q) || *q == '.' || *q == 'e' || *q == 'E' ||
                          *q == '+' || *q == '-'))
      q++;
    size_t n = (size_t)(q - st);
    if (!fhir__is_number((const char *)st, n))
      return jp__fail(j, HVG_ESYNTAX, "invalid number");
    char *t = cJSON_malloc(n + 1);
    cJSON *node = t ? jp__node(cJSON_Raw) : NULL;
    if (!node) {
      cJSON_free(t);
      return hvg_err_set(j->err, HVG_ENOMEM, "", NULL);
    }
    memcpy(t, st, n);
    t[n] = '\0';
    node->valuestring = t; /* the text as written: 1.50 stays 1.50 */
    j->p = q;
    *out = node;
    return 0;
  }
  return jp__fail(j, HVG_ESYNTAX, "unexpected character");
}

int fhir__json_parse_text(const char *text, size_t len, cJSON **out,
                          hvg_err *err) {
  *out = NULL;
  jp j = {(const unsigned char *)text, (const unsigned char *)text,
          (const unsigned char *)text + len, err};
  if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) /* tolerate a BOM */
    j.p += 3;
  cJSON *root;
  int rc = jp__value(&j, 0, &root);
  if (rc)
    return rc;
  jp__ws(&j);
  if (j.p != j.end) {
    cJSON_Delete(root);
    return jp__fail(&j, HVG_ESYNTAX, "data after the JSON value");
  }
  *out = root;
  return 0;
}

/* ---- checking the tree against the definitions ------------------------ */

typedef struct jv {
  hvg_err *err;
  fhir__path path;
  int elem_type; /* "Element": the type of "_name" companions */
} jv;

#define JV_NONE 0xFFFFu

static int jv__resource(jv *v, cJSON *o);
static int jv__members(jv *v, cJSON *o, int type, int is_res);

static const char *jv__json_type(const cJSON *c) {
  switch (c->type & 0xFF) {
  case cJSON_False:
  case cJSON_True: return "a boolean";
  case cJSON_NULL: return "null";
  case cJSON_Number:
  case cJSON_Raw: return "a number";
  case cJSON_String: return "a string";
  case cJSON_Array: return "an array";
  case cJSON_Object: return "an object";
  default: return "invalid";
  }
}

/* Swap a node's string for a cJSON-allocated copy of s. */
static int jv__set_string(cJSON *c, const char *s) {
  size_t n = strlen(s);
  char *d = cJSON_malloc(n + 1);
  if (!d)
    return HVG_ENOMEM;
  memcpy(d, s, n + 1);
  cJSON_free(c->valuestring);
  c->valuestring = d;
  return 0;
}

/* One value (not an array) of element e; comp: a "_name" companion. */
static int jv__item(jv *v, cJSON *c, const fhir_meta_elem *e, int comp) {
  if (comp) {
    if (!cJSON_IsObject(c))
      return fhir__fail(v->err, HVG_EFORMAT, &v->path, NULL,
                        "must be an object (id/extension), not %s",
                        jv__json_type(c));
    return jv__members(v, c, v->elem_type, 0);
  }
  const char *why;
  long iv;
  switch (e->kind) {
  case FHIR_MK_STRING:
  case FHIR_MK_XHTML:
    if (!cJSON_IsString(c))
      return fhir__fail(v->err, HVG_EFORMAT, &v->path, NULL,
                        "must be a string, not %s", jv__json_type(c));
    if (!c->valuestring[0])
      return fhir__fail(v->err, HVG_EFORMAT, &v->path, NULL,
                        "empty string (leave the element out instead)");
    if (e->kind == FHIR_MK_XHTML) {
      char *canon;
      int rc = fhir__xhtml_canon_text(c->valuestring, strlen(c->valuestring),
                                      &canon, &v->path, v->err);
      if (rc)
        return rc;
      if (strcmp(canon, c->valuestring))
        rc = jv__set_string(c, canon);
      free(canon);
      if (rc)
        return fhir__fail(v->err, rc, &v->path, NULL, "out of memory");
    }
    return 0;
  case FHIR_MK_BOOLEAN:
    if (!cJSON_IsBool(c))
      return fhir__fail(v->err, HVG_EFORMAT, &v->path, NULL,
                        "must be true or false, not %s", jv__json_type(c));
    return 0;
  case FHIR_MK_INTEGER:
    if (!cJSON_IsRaw(c))
      return fhir__fail(v->err, HVG_EFORMAT, &v->path, NULL,
                        "must be a number, not %s", jv__json_type(c));
    if (fhir__int_parse(c->valuestring, strlen(c->valuestring), e->prim, &iv,
                        &why))
      return fhir__fail(v->err, HVG_EFORMAT, &v->path, NULL, "%s", why);
    /* integers become plain cJSON numbers (exact: 32 bits) */
    cJSON_free(c->valuestring);
    c->valuestring = NULL;
    c->type = cJSON_Number;
    c->valueint = (int)iv;
    c->valuedouble = (double)iv;
    return 0;
  case FHIR_MK_DECIMAL:
    if (!cJSON_IsRaw(c))
      return fhir__fail(v->err, HVG_EFORMAT, &v->path, NULL,
                        "must be a number, not %s", jv__json_type(c));
    return 0;
  case FHIR_MK_COMPLEX:
  case FHIR_MK_BACKBONE:
    if (!cJSON_IsObject(c))
      return fhir__fail(v->err, HVG_EFORMAT, &v->path, NULL,
                        "must be an object, not %s", jv__json_type(c));
    return jv__members(v, c, e->type, 0);
  case FHIR_MK_RESOURCE: return jv__resource(v, c);
  default:
    return fhir__fail(v->err, HVG_EINVAL, &v->path, NULL, "bad definition");
  }
}

static int jv__elem(jv *v, cJSON *c, const fhir_meta_elem *e, int comp) {
  int prim = comp || fhir_meta_kind_is_primitive(e->kind);
  if (!(e->flags & FHIR_ME_REPEATS)) {
    if (cJSON_IsArray(c))
      return fhir__fail(v->err, HVG_EFORMAT, &v->path, NULL,
                        "must not be an array (the element does not repeat)");
    return jv__item(v, c, e, comp);
  }
  if (!cJSON_IsArray(c))
    return fhir__fail(v->err, HVG_EFORMAT, &v->path, NULL,
                      "must be an array (the element repeats), not %s",
                      jv__json_type(c));
  if (!c->child)
    return fhir__fail(v->err, HVG_EFORMAT, &v->path, NULL,
                      "empty array (leave the element out instead)");
  size_t i = 0;
  for (cJSON *it = c->child; it; it = it->next, i++) {
    if (prim && cJSON_IsNull(it))
      continue; /* a gap, checked against the companion array */
    fhir__path_push_index(&v->path, i);
    int rc = jv__item(v, it, e, comp);
    fhir__path_pop(&v->path);
    if (rc)
      return rc;
  }
  return 0;
}

/* A repeating primitive's value and companion arrays line up: same length,
 * no position empty in both. Arrays of nulls only are dropped (the other
 * array carries everything), the one normalisation of the shape. */
static int jv__align(jv *v, cJSON *o, const fhir_meta_elem *e) {
  char cname[160];
  if (strlen(e->name) + 2 > sizeof cname)
    return fhir__fail(v->err, HVG_EINVAL, &v->path, e->name, "name too long");
  cname[0] = '_';
  strcpy(cname + 1, e->name);
  cJSON *va = cJSON_GetObjectItemCaseSensitive(o, e->name);
  cJSON *ca = cJSON_GetObjectItemCaseSensitive(o, cname);
  if (va && ca && cJSON_GetArraySize(va) != cJSON_GetArraySize(ca))
    return fhir__fail(v->err, HVG_EFORMAT, &v->path, cname,
                      "must have as many items as %s", e->name);
  int vnull = 1, cnull = 1;
  size_t i = 0;
  cJSON *a = va ? va->child : NULL, *b = ca ? ca->child : NULL;
  while (a || b) {
    int an = !a || cJSON_IsNull(a), bn = !b || cJSON_IsNull(b);
    if (an && bn) {
      fhir__path_push(&v->path, e->name);
      int rc =
          fhir__fail(v->err, HVG_EFORMAT, &v->path, NULL,
                     "item %zu has neither a value nor an id/extension", i);
      fhir__path_pop(&v->path);
      return rc;
    }
    vnull &= an;
    cnull &= bn;
    a = a ? a->next : NULL;
    b = b ? b->next : NULL;
    i++;
  }
  if (va && vnull)
    cJSON_Delete(cJSON_DetachItemViaPointer(o, va));
  if (ca && cnull)
    cJSON_Delete(cJSON_DetachItemViaPointer(o, ca));
  return 0;
}

static int jv__members(jv *v, cJSON *o, int type, int is_res) {
  uint16_t at[FHIR_META_MAX_ORDER], atc[FHIR_META_MAX_ORDER];
  memset(at, 0xFF, sizeof at);
  memset(atc, 0xFF, sizeof atc);
  if (!is_res && !o->child)
    return fhir__fail(v->err, HVG_EFORMAT, &v->path, NULL,
                      "empty object (leave the element out instead)");
  int prim_rep = 0;
  for (cJSON *c = o->child; c; c = c->next) {
    const char *k = c->string;
    if (is_res && !strcmp(k, "resourceType"))
      continue;
    int comp = k[0] == '_';
    fhir_meta_elem e;
    if (fhir_meta_elem_find(type, k + comp, strlen(k + comp), &e) ||
        (comp && (!fhir_meta_kind_is_primitive(e.kind) ||
                  e.kind == FHIR_MK_XHTML || (e.flags & FHIR_ME_ATTR))))
      return fhir__fail(v->err, HVG_EUNKNOWN, &v->path, k, "unknown element");
    uint16_t *slot = comp ? &atc[e.order] : &at[e.order];
    uint16_t other = comp ? at[e.order] : atc[e.order];
    if (*slot != JV_NONE)
      return fhir__fail(v->err, HVG_EFORMAT, &v->path, k,
                        *slot == e.index
                            ? "duplicate key"
                            : "only one type of a choice element is allowed");
    if (other != JV_NONE && other != e.index)
      return fhir__fail(v->err, HVG_EFORMAT, &v->path, k,
                        "value and _companion of different choice types");
    *slot = (uint16_t)e.index;
    fhir__path_push(&v->path, k);
    int rc = jv__elem(v, c, &e, comp);
    fhir__path_pop(&v->path);
    if (rc)
      return rc;
    if ((e.flags & FHIR_ME_REPEATS) &&
        (comp || fhir_meta_kind_is_primitive(e.kind)))
      prim_rep = 1;
  }
  if (!prim_rep)
    return 0;
  unsigned n = fhir_meta_elem_count(type);
  for (unsigned i = 0; i < n; i++) {
    fhir_meta_elem e;
    fhir_meta_elem_at(type, i, &e);
    if (!(e.flags & FHIR_ME_REPEATS) || !fhir_meta_kind_is_primitive(e.kind) ||
        (at[e.order] != e.index && atc[e.order] != e.index))
      continue;
    int rc = jv__align(v, o, &e);
    if (rc)
      return rc;
  }
  return 0;
}

static int jv__resource(jv *v, cJSON *o) {
  if (!cJSON_IsObject(o))
    return fhir__fail(v->err, HVG_EFORMAT, &v->path, NULL,
                      "a resource must be an object, not %s", jv__json_type(o));
  const cJSON *rt = NULL;
  for (const cJSON *c = o->child; c; c = c->next) {
    if (strcmp(c->string, "resourceType"))
      continue;
    if (rt)
      return fhir__fail(v->err, HVG_EFORMAT, &v->path, "resourceType",
                        "duplicate key");
    rt = c;
  }
  if (!rt)
    return fhir__fail(v->err, HVG_EMISSING, &v->path, "resourceType",
                      "resourceType is missing");
  if (!cJSON_IsString(rt))
    return fhir__fail(v->err, HVG_EFORMAT, &v->path, "resourceType",
                      "must be a string");
  int t = fhir_meta_resource_find(rt->valuestring, strlen(rt->valuestring));
  if (t < 0)
    return fhir__fail(v->err, HVG_EUNKNOWN, &v->path, "resourceType",
                      "unknown resource type '%.64s'", rt->valuestring);
  int root = v->path.n == 0;
  if (root)
    fhir__path_push(&v->path, fhir_meta_type_name(t));
  int rc = jv__members(v, o, t, 1);
  if (root)
    fhir__path_pop(&v->path);
  return rc;
}

int fhir_json_parse(const char *text, size_t len, size_t max_len, cJSON **out,
                    hvg_err *err) {
  *out = NULL;
  if (!text)
    return hvg_err_set(err, HVG_EINVAL, "", "no input");
  if (len > max_len)
    return hvg_err_set(err, HVG_ETOOBIG, "",
                       "input of %zu bytes is larger than the %zu allowed", len,
                       max_len);
  cJSON *root;
  int rc = fhir__json_parse_text(text, len, &root, err);
  if (rc)
    return rc;
  jv v;
  v.err = err;
  fhir__path_init(&v.path);
  v.elem_type = fhir_meta_type_find("Element", 7);
  if ((rc = jv__resource(&v, root))) {
    cJSON_Delete(root);
    return rc;
  }
  *out = root;
  return 0;
}

/* ---- writing a tree through fhir_writer ------------------------------- */

typedef struct ser {
  fhir_writer *w;
  hvg_err *err;
  fhir__path path;
  int elem_type;
  int json;
} ser;

typedef struct ser_ent {
  const cJSON *node;
  uint16_t idx; /* element index in its type */
  uint16_t key; /* sort key: 0 for XML attributes, else order + 1 */
  uint8_t comp; /* a "_name" companion */
} ser_ent;

static int ser__resource(ser *s, const char *name, const cJSON *o);
static int ser__members(ser *s, const cJSON *o, int type, int is_res,
                        int skip_id);

static int ser__werr(ser *s) {
  int rc = fhir_w_error(s->w);
  if (rc)
    return fhir__fail(s->err, rc, &s->path, NULL, "cannot write: %s",
                      hvg_strerror(rc));
  return 0;
}

/* The text of a primitive value (type-checked against e) for XML value
 * attributes and JSON numbers; tmp holds formatted numbers. */
static int ser__text(ser *s, const fhir_meta_elem *e, const cJSON *v,
                     char tmp[40], const char **text) {
  const char *why;
  long iv;
  switch (e->kind) {
  case FHIR_MK_STRING:
  case FHIR_MK_XHTML:
    if (!cJSON_IsString(v) || !v->valuestring || !v->valuestring[0])
      return fhir__fail(s->err, HVG_EFORMAT, &s->path, NULL,
                        "must be a non-empty string");
    for (const unsigned char *p = (const unsigned char *)v->valuestring; *p;
         p++)
      if (*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r')
        return fhir__fail(s->err, HVG_EFORMAT, &s->path, NULL,
                          "control character in string");
    *text = v->valuestring;
    return 0;
  case FHIR_MK_BOOLEAN:
    if (!cJSON_IsBool(v))
      return fhir__fail(s->err, HVG_EFORMAT, &s->path, NULL,
                        "must be true or false");
    *text = cJSON_IsTrue(v) ? "true" : "false";
    return 0;
  case FHIR_MK_INTEGER:
    if (cJSON_IsRaw(v) && v->valuestring &&
        !fhir__int_parse(v->valuestring, strlen(v->valuestring), e->prim, &iv,
                         &why)) {
      *text = v->valuestring;
      return 0;
    }
    if (cJSON_IsNumber(v) && v->valuedouble >= -2147483648.0 &&
        v->valuedouble <= 2147483647.0 &&
        (double)(long)v->valuedouble == v->valuedouble) {
      snprintf(tmp, 40, "%ld", (long)v->valuedouble);
      if (!fhir__int_parse(tmp, strlen(tmp), e->prim, &iv, &why)) {
        *text = tmp;
        return 0;
      }
    }
    return fhir__fail(s->err, HVG_EFORMAT, &s->path, NULL,
                      "must be an integer in range");
  case FHIR_MK_DECIMAL:
    if (cJSON_IsRaw(v) && v->valuestring &&
        fhir__is_number(v->valuestring, strlen(v->valuestring))) {
      *text = v->valuestring;
      return 0;
    }
    if (cJSON_IsNumber(v) && v->valuedouble == v->valuedouble &&
        v->valuedouble - v->valuedouble == 0) { /* finite */
      snprintf(tmp, 40, "%.15g", v->valuedouble);
      if (strtod(tmp, NULL) != v->valuedouble)
        snprintf(tmp, 40, "%.17g", v->valuedouble);
      *text = tmp;
      return 0;
    }
    return fhir__fail(s->err, HVG_EFORMAT, &s->path, NULL,
                      "must be a decimal number");
  default:
    return fhir__fail(s->err, HVG_EINVAL, &s->path, NULL, "not a primitive");
  }
}

/* A primitive value as an element (name NULL inside an array). */
static int ser__put(ser *s, const fhir_meta_elem *e, const char *name,
                    const cJSON *v) {
  char tmp[40];
  const char *text;
  int rc = ser__text(s, e, v, tmp, &text);
  if (rc)
    return rc;
  switch (e->kind) {
  case FHIR_MK_STRING: fhir_w_string(s->w, name, text); break;
  case FHIR_MK_BOOLEAN: fhir_w_bool(s->w, name, cJSON_IsTrue(v)); break;
  case FHIR_MK_XHTML:
    if (s->json) {
      fhir_w_xhtml(s->w, name, text);
    } else {
      /* raw in XML: only well-formed XHTML may go there */
      char *canon;
      rc = fhir__xhtml_canon_text(text, strlen(text), &canon, &s->path, s->err);
      if (rc)
        return rc;
      fhir_w_xhtml(s->w, name, canon);
      free(canon);
    }
    break;
  default: fhir_w_number(s->w, name, text); break;
  }
  return ser__werr(s);
}

static int ser__has_content(const cJSON *c) {
  return cJSON_IsObject(c) && c->child;
}

/* XML: a primitive with id/extensions, <name id=".." value="..">...</name>. */
static int ser__xml_prim(ser *s, const fhir_meta_elem *e, const char *name,
                         const cJSON *v, const cJSON *c) {
  char tmp[40];
  const char *text = NULL;
  if (v && !cJSON_IsNull(v)) {
    int rc = ser__text(s, e, v, tmp, &text);
    if (rc)
      return rc;
  }
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "id");
  if (id && !cJSON_IsString(id))
    return fhir__fail(s->err, HVG_EFORMAT, &s->path, "id", "must be a string");
  fhir_w_prim_begin(s->w, name, text, id ? id->valuestring : NULL);
  int rc = ser__members(s, c, s->elem_type, 0, 1);
  if (rc)
    return rc;
  fhir_w_prim_end(s->w);
  return ser__werr(s);
}

static int ser__all_null(const cJSON *a) {
  for (const cJSON *it = a->child; it; it = it->next)
    if (!cJSON_IsNull(it))
      return 0;
  return 1;
}

static int ser__prim(ser *s, const fhir_meta_elem *e, const cJSON *v,
                     const cJSON *c) {
  int rc;
  if (c && !(e->flags & FHIR_ME_REPEATS) && !cJSON_IsObject(c))
    return fhir__fail(s->err, HVG_EFORMAT, &s->path, NULL,
                      "_%s must be an object", e->name);
  if (!(e->flags & FHIR_ME_REPEATS)) {
    if (v && cJSON_IsArray(v))
      return fhir__fail(s->err, HVG_EFORMAT, &s->path, NULL,
                        "must not be an array");
    if (!s->json && ser__has_content(c))
      return ser__xml_prim(s, e, e->name, v, c);
    if (v && (rc = ser__put(s, e, e->name, v)))
      return rc;
    if (s->json && ser__has_content(c)) {
      fhir_w_object_begin(s->w, c->string);
      if ((rc = ser__members(s, c, s->elem_type, 0, 0)))
        return rc;
      fhir_w_object_end(s->w);
    }
    return ser__werr(s);
  }
  if ((v && !cJSON_IsArray(v)) || (c && !cJSON_IsArray(c)))
    return fhir__fail(s->err, HVG_EFORMAT, &s->path, NULL,
                      "must be an array (the element repeats)");
  if (s->json) {
    if (v && !ser__all_null(v)) {
      fhir_w_array_begin(s->w, e->name);
      size_t i = 0;
      for (const cJSON *it = v->child; it; it = it->next, i++) {
        if (cJSON_IsNull(it)) {
          fhir_w_null(s->w);
          continue;
        }
        fhir__path_push_index(&s->path, i);
        rc = ser__put(s, e, NULL, it);
        fhir__path_pop(&s->path);
        if (rc)
          return rc;
      }
      fhir_w_array_end(s->w);
    }
    if (c && !ser__all_null(c)) {
      fhir_w_array_begin(s->w, c->string);
      size_t i = 0;
      for (const cJSON *it = c->child; it; it = it->next, i++) {
        if (!ser__has_content(it)) {
          fhir_w_null(s->w);
          continue;
        }
        fhir__path_push_index(&s->path, i);
        fhir_w_object_begin(s->w, NULL);
        rc = ser__members(s, it, s->elem_type, 0, 0);
        fhir_w_object_end(s->w);
        fhir__path_pop(&s->path);
        if (rc)
          return rc;
      }
      fhir_w_array_end(s->w);
    }
    return ser__werr(s);
  }
  fhir_w_array_begin(s->w, e->name);
  const cJSON *a = v ? v->child : NULL, *b = c ? c->child : NULL;
  for (size_t i = 0; a || b; i++) {
    fhir__path_push_index(&s->path, i);
    if (b && ser__has_content(b))
      rc = ser__xml_prim(s, e, NULL, a, b);
    else if (a && !cJSON_IsNull(a))
      rc = ser__put(s, e, NULL, a);
    else
      rc = 0;
    fhir__path_pop(&s->path);
    if (rc)
      return rc;
    a = a ? a->next : NULL;
    b = b ? b->next : NULL;
  }
  fhir_w_array_end(s->w);
  return ser__werr(s);
}

static int ser__object(ser *s, const char *name, const cJSON *o, int type) {
  if (!cJSON_IsObject(o))
    return fhir__fail(s->err, HVG_EFORMAT, &s->path, NULL, "must be an object");
  fhir_w_object_begin(s->w, name);
  int rc = ser__members(s, o, type, 0, 0);
  if (rc)
    return rc;
  fhir_w_object_end(s->w);
  return ser__werr(s);
}

static int ser__elem(ser *s, const fhir_meta_elem *e, const cJSON *v,
                     const cJSON *c) {
  if (fhir_meta_kind_is_primitive(e->kind))
    return ser__prim(s, e, v, c);
  int rep = e->flags & FHIR_ME_REPEATS;
  if (!rep) {
    if (cJSON_IsArray(v))
      return fhir__fail(s->err, HVG_EFORMAT, &s->path, NULL,
                        "must not be an array");
    if (e->kind == FHIR_MK_RESOURCE)
      return ser__resource(s, e->name, v);
    return ser__object(s, e->name, v, e->type);
  }
  if (!cJSON_IsArray(v))
    return fhir__fail(s->err, HVG_EFORMAT, &s->path, NULL,
                      "must be an array (the element repeats)");
  fhir_w_array_begin(s->w, e->name);
  size_t i = 0;
  for (const cJSON *it = v->child; it; it = it->next, i++) {
    fhir__path_push_index(&s->path, i);
    int rc = e->kind == FHIR_MK_RESOURCE ? ser__resource(s, NULL, it)
                                         : ser__object(s, NULL, it, e->type);
    fhir__path_pop(&s->path);
    if (rc)
      return rc;
  }
  fhir_w_array_end(s->w);
  return ser__werr(s);
}

static int ser__cmp(const ser_ent *a, const ser_ent *b) {
  if (a->key != b->key)
    return a->key < b->key ? -1 : 1;
  if (a->idx != b->idx)
    return a->idx < b->idx ? -1 : 1;
  return (int)a->comp - (int)b->comp;
}

/* The members of object o of `type`, in specification order. skip_id: o is
 * a companion whose id went into an XML attribute already. */
static int ser__members(ser *s, const cJSON *o, int type, int is_res,
                        int skip_id) {
  ser_ent small[32], *ents = small;
  size_t n = 0, cap = sizeof small / sizeof small[0];
  int rc = 0;
  for (const cJSON *c = o->child; c; c = c->next) {
    const char *k = c->string;
    if (!k)
      return fhir__fail(s->err, HVG_EINVAL, &s->path, NULL,
                        "object member without a name");
    if (is_res && !strcmp(k, "resourceType"))
      continue;
    int comp = k[0] == '_';
    fhir_meta_elem e;
    if (fhir_meta_elem_find(type, k + comp, strlen(k + comp), &e) ||
        (comp && (!fhir_meta_kind_is_primitive(e.kind) ||
                  e.kind == FHIR_MK_XHTML || (e.flags & FHIR_ME_ATTR)))) {
      rc = fhir__fail(s->err, HVG_EUNKNOWN, &s->path, k, "unknown element");
      goto done;
    }
    if (skip_id && !comp && !strcmp(k, "id"))
      continue;
    if (n == cap) {
      ser_ent *bigger = malloc(cap * 2 * sizeof *bigger);
      if (!bigger) {
        rc = fhir__fail(s->err, HVG_ENOMEM, &s->path, NULL, "out of memory");
        goto done;
      }
      memcpy(bigger, ents, n * sizeof *ents);
      if (ents != small)
        free(ents);
      ents = bigger;
      cap *= 2;
    }
    ser_ent x = {c, (uint16_t)e.index,
                 (uint16_t)((e.flags & FHIR_ME_ATTR) ? 0 : e.order + 1),
                 (uint8_t)comp};
    size_t i = n++;
    while (i > 0 && ser__cmp(&ents[i - 1], &x) > 0) {
      ents[i] = ents[i - 1];
      i--;
    }
    ents[i] = x;
  }
  for (size_t i = 0; i < n && !rc;) {
    const cJSON *v = NULL, *c = NULL;
    size_t j = i;
    for (; j < n && ents[j].idx == ents[i].idx; j++) {
      const cJSON **slot = ents[j].comp ? &c : &v;
      if (*slot) {
        rc = fhir__fail(s->err, HVG_EFORMAT, &s->path, ents[j].node->string,
                        "duplicate key");
        goto done;
      }
      *slot = ents[j].node;
    }
    if (i > 0 && ents[i].key && ents[i - 1].key == ents[i].key) {
      rc = fhir__fail(s->err, HVG_EFORMAT, &s->path, ents[i].node->string,
                      "only one type of a choice element is allowed");
      goto done;
    }
    fhir_meta_elem e;
    fhir_meta_elem_at(type, ents[i].idx, &e);
    fhir__path_push(&s->path, e.name);
    rc = ser__elem(s, &e, v, c);
    fhir__path_pop(&s->path);
    i = j;
  }
done:
  if (ents != small)
    free(ents);
  return rc;
}

static int ser__resource(ser *s, const char *name, const cJSON *o) {
  if (!cJSON_IsObject(o))
    return fhir__fail(s->err, HVG_EFORMAT, &s->path, NULL,
                      "a resource must be an object");
  const cJSON *rt = cJSON_GetObjectItemCaseSensitive(o, "resourceType");
  if (!cJSON_IsString(rt))
    return fhir__fail(s->err, HVG_EMISSING, &s->path, "resourceType",
                      "resourceType is missing");
  int t = fhir_meta_resource_find(rt->valuestring, strlen(rt->valuestring));
  if (t < 0)
    return fhir__fail(s->err, HVG_EUNKNOWN, &s->path, "resourceType",
                      "unknown resource type '%.64s'", rt->valuestring);
  int root = s->path.n == 0;
  if (root)
    fhir__path_push(&s->path, fhir_meta_type_name(t));
  fhir_w_resource_begin(s->w, name, fhir_meta_type_name(t));
  int rc = ser__members(s, o, t, 1, 0);
  if (!rc) {
    fhir_w_resource_end(s->w);
    rc = ser__werr(s);
  }
  if (root)
    fhir__path_pop(&s->path);
  return rc;
}

int fhir_json_write(fhir_writer *w, const char *name, const cJSON *res,
                    hvg_err *err) {
  ser s;
  s.w = w;
  s.err = err;
  fhir__path_init(&s.path);
  s.elem_type = fhir_meta_type_find("Element", 7);
  s.json = w->fmt == FHIR_JSON;
  if (!res)
    return hvg_err_set(err, HVG_EINVAL, "", "no resource");
  return ser__resource(&s, name, res);
}

int fhir_json_serialize(const cJSON *res, fhir_format fmt, unsigned flags,
                        hvg_buf *out, hvg_err *err) {
  size_t start = out->len;
  fhir_writer w;
  fhir_w_init(&w, out, fmt, flags);
  int rc = fhir_json_write(&w, NULL, res, err);
  if (!rc && (rc = fhir_w_finish(&w)))
    hvg_err_set(err, rc, "", "cannot write: %s", hvg_strerror(rc));
  if (rc)
    hvg_buf_truncate(out, start);
  return rc;
}

/* ---- equality ---------------------------------------------------------- */

int fhir_json_equal(const cJSON *a, const cJSON *b) {
  if (!a || !b)
    return a == b;
  int ta = a->type & 0xFF, tb = b->type & 0xFF;
  if (ta != tb)
    return 0;
  switch (ta) {
  case cJSON_False:
  case cJSON_True:
  case cJSON_NULL: return 1;
  case cJSON_Number: return a->valuedouble == b->valuedouble;
  case cJSON_String:
  case cJSON_Raw:
    if (!a->valuestring || !b->valuestring)
      return a->valuestring == b->valuestring;
    return strcmp(a->valuestring, b->valuestring) == 0;
  case cJSON_Array: {
    const cJSON *x = a->child, *y = b->child;
    for (; x && y; x = x->next, y = y->next)
      if (!fhir_json_equal(x, y))
        return 0;
    return !x && !y;
  }
  case cJSON_Object: {
    size_t na = 0, nb = 0;
    for (const cJSON *x = a->child; x; x = x->next)
      na++;
    for (const cJSON *y = b->child; y; y = y->next)
      nb++;
    if (na != nb)
      return 0;
    for (const cJSON *x = a->child; x; x = x->next) {
      if (!x->string)
        return 0;
      const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, x->string);
      if (!y || !fhir_json_equal(x, y))
        return 0;
    }
    return 1;
  }
  default: return 0;
  }
}
