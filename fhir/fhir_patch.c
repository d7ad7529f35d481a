#include "fhir_patch.h"

#include "fhir_json.h"
#include "fhir_json_int.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum fp_kind {
  FP_ADD,
  FP_REMOVE,
  FP_REPLACE,
  FP_MOVE,
  FP_COPY,
  FP_TEST
} fp_kind;

static const char *const fp__names[] = {"add",  "remove", "replace",
                                        "move", "copy",   "test"};

typedef struct fp_op {
  fp_kind kind;
  const char *path;   /* pointer text, owned by the patch tree */
  const char *from;   /* move and copy, else NULL */
  const cJSON *value; /* add, replace and test, else NULL */
} fp_op;

struct fhir_patch {
  cJSON *tree;  /* the parsed document: owns paths, froms and values */
  int readonly; /* only "test" operations: applied without a copy */
  size_t n;
  fp_op ops[];
};

static const char *fp__type(const cJSON *c) {
  switch (c->type & 0xFF) {
  case cJSON_False:
  case cJSON_True: return "a boolean";
  case cJSON_NULL: return "null";
  case cJSON_Number:
  case cJSON_Raw: return "a number";
  case cJSON_String: return "a string";
  case cJSON_Array: return "an array";
  case cJSON_Object: return "an object";
  default: return "an invalid node";
  }
}

static int fp__is_container(const cJSON *c) {
  return cJSON_IsArray(c) || cJSON_IsObject(c);
}

static size_t fp__count(const cJSON *c) {
  size_t n = 0;
  for (const cJSON *x = c->child; x; x = x->next)
    n++;
  return n;
}

/* ---- object keys ------------------------------------------------------ */

static int fp__key_cmp(const void *a, const void *b) {
  const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
  return strcmp(x->string ? x->string : "", y->string ? y->string : "");
}

/* Members of object o in key order, in a malloc'd array the caller frees
 * (*n of them); NULL on HVG_ENOMEM or when o has no member. */
static const cJSON **fp__sorted(const cJSON *o, size_t *n) {
  *n = fp__count(o);
  if (!*n)
    return NULL;
  const cJSON **v = malloc(*n * sizeof *v);
  if (!v)
    return NULL;
  size_t i = 0;
  for (const cJSON *x = o->child; x; x = x->next)
    v[i++] = x;
  qsort(v, *n, sizeof *v, fp__key_cmp);
  return v;
}

/* Objects up to this many members are compared pair by pair; larger ones
 * through sorted copies, so that no input makes the work quadratic. */
#define FP_SMALL_OBJECT 16

/* A key present twice in object o, or NULL (then *rc is 0, or HVG_ENOMEM). */
static const char *fp__dup_key(const cJSON *o, int *rc) {
  *rc = 0;
  size_t n = fp__count(o);
  if (n <= FP_SMALL_OBJECT) {
    for (const cJSON *x = o->child; x; x = x->next)
      for (const cJSON *y = x->next; y; y = y->next)
        if (!strcmp(x->string, y->string))
          return x->string;
    return NULL;
  }
  const cJSON **v = fp__sorted(o, &n);
  if (!v) {
    *rc = HVG_ENOMEM;
    return NULL;
  }
  const char *dup = NULL;
  for (size_t i = 1; i < n && !dup; i++)
    if (!strcmp(v[i - 1]->string, v[i]->string))
      dup = v[i]->string;
  free(v);
  return dup;
}

/* ---- JSON Pointers ---------------------------------------------------- */

/* Append "/" and token t escaped per RFC 6901 to dst (cap bytes, *len
 * used), truncating. */
static void fp__ptr_add(char *dst, size_t cap, size_t *len, const char *t) {
  if (*len + 1 >= cap)
    return;
  dst[(*len)++] = '/';
  for (; *t && *len + 1 < cap; t++) {
    if (*t == '~' || *t == '/') {
      if (*len + 2 >= cap)
        break;
      dst[(*len)++] = '~';
      dst[(*len)++] = *t == '~' ? '0' : '1';
    } else {
      dst[(*len)++] = *t;
    }
  }
  dst[*len] = '\0';
}

/* Where the walk over the patch tree is, for the pointer of an error. */
typedef struct fp_trail {
  int n;
  struct {
    const char *key; /* NULL: an array index */
    size_t index;
  } seg[FHIR_PARSE_MAX_DEPTH + 1];
} fp_trail;

static void fp__trail_ptr(const fp_trail *t, const char *last, char *dst,
                          size_t cap) {
  size_t len = 0;
  dst[0] = '\0';
  for (int i = 0; i < t->n; i++) {
    char num[24];
    const char *tok = t->seg[i].key;
    if (!tok) {
      snprintf(num, sizeof num, "%zu", t->seg[i].index);
      tok = num;
    }
    fp__ptr_add(dst, cap, &len, tok);
  }
  if (last)
    fp__ptr_add(dst, cap, &len, last);
}

/* No object in tree c has a key twice. */
static int fp__check_keys(const cJSON *c, fp_trail *t, hvg_err *err) {
  if (cJSON_IsObject(c)) {
    int rc;
    const char *dup = fp__dup_key(c, &rc);
    if (rc)
      return hvg_err_set(err, rc, "", NULL);
    if (dup) {
      char field[sizeof err->field];
      fp__trail_ptr(t, dup, field, sizeof field);
      return hvg_err_set(err, HVG_EFORMAT, field, "duplicate key '%.64s'", dup);
    }
  }
  size_t i = 0;
  for (const cJSON *x = c->child; x; x = x->next, i++) {
    if (!fp__is_container(x))
      continue;
    if (t->n > FHIR_PARSE_MAX_DEPTH) /* the parser's cap makes this moot */
      return hvg_err_set(err, HVG_ETOOBIG, "", "nested too deep");
    t->seg[t->n].key = cJSON_IsObject(c) ? x->string : NULL;
    t->seg[t->n].index = i;
    t->n++;
    int rc = fp__check_keys(x, t, err);
    t->n--;
    if (rc)
      return rc;
  }
  return 0;
}

/* NULL when s is a JSON Pointer, else why not. */
static const char *fp__ptr_syntax(const char *s) {
  if (*s && *s != '/')
    return "a JSON Pointer must be empty or start with '/'";
  for (; *s; s++)
    if (*s == '~' && s[1] != '0' && s[1] != '1')
      return "'~' must be followed by '0' or '1' in a JSON Pointer";
  return NULL;
}

/* ---- parsing ---------------------------------------------------------- */

/* Failure at member `member` (NULL: the operation itself) of operation i. */
static int fp__fail(hvg_err *err, int code, size_t i, const char *member,
                    const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
static int fp__fail(hvg_err *err, int code, size_t i, const char *member,
                    const char *fmt, ...) {
  if (!err)
    return code;
  char field[sizeof err->field], msg[sizeof err->msg];
  snprintf(field, sizeof field, "/%zu%s%s", i, member ? "/" : "",
           member ? member : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return hvg_err_set(err, code, field, "%s", msg);
}

/* o[name] as a JSON Pointer of operation i, required. */
static int fp__pointer(const cJSON *o, const char *name, size_t i,
                       const char **out, hvg_err *err) {
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);
  if (!m)
    return fp__fail(err, HVG_EFORMAT, i, name, "\"%s\" is missing", name);
  if (!cJSON_IsString(m))
    return fp__fail(err, HVG_EFORMAT, i, name,
                    "must be a string (a JSON Pointer), not %s", fp__type(m));
  size_t n = strlen(m->valuestring);
  if (n > FHIR_PATCH_MAX_POINTER)
    return fp__fail(err, HVG_ETOOBIG, i, name,
                    "JSON Pointer of %zu bytes, longer than the %d allowed", n,
                    FHIR_PATCH_MAX_POINTER);
  const char *why = fp__ptr_syntax(m->valuestring);
  if (why)
    return fp__fail(err, HVG_EFORMAT, i, name, "%s", why);
  *out = m->valuestring;
  return 0;
}

static int fp__op_parse(const cJSON *o, size_t i, fp_op *op, hvg_err *err) {
  if (!cJSON_IsObject(o))
    return fp__fail(err, HVG_EFORMAT, i, NULL,
                    "an operation must be an object, not %s", fp__type(o));
  const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "op");
  if (!k)
    return fp__fail(err, HVG_EFORMAT, i, "op", "\"op\" is missing");
  if (!cJSON_IsString(k))
    return fp__fail(err, HVG_EFORMAT, i, "op", "must be a string, not %s",
                    fp__type(k));
  size_t kind = 0;
  while (kind < sizeof fp__names / sizeof fp__names[0] &&
         strcmp(k->valuestring, fp__names[kind]))
    kind++;
  if (kind == sizeof fp__names / sizeof fp__names[0])
    return fp__fail(err, HVG_EFORMAT, i, "op",
                    "unknown operation '%.32s' (add, remove, replace, move, "
                    "copy or test)",
                    k->valuestring);
  op->kind = (fp_kind)kind;
  op->from = NULL;
  op->value = NULL;
  int rc = fp__pointer(o, "path", i, &op->path, err);
  if (rc)
    return rc;
  if ((op->kind == FP_MOVE || op->kind == FP_COPY) &&
      (rc = fp__pointer(o, "from", i, &op->from, err)))
    return rc;
  if (op->kind == FP_ADD || op->kind == FP_REPLACE || op->kind == FP_TEST) {
    op->value = cJSON_GetObjectItemCaseSensitive(o, "value");
    if (!op->value)
      return fp__fail(err, HVG_EFORMAT, i, "value", "\"value\" is missing");
  }
  return 0;
}

/* The checked patch of parsed tree t (which it then owns), or an error
 * (t still the caller's). */
static int fp__build(cJSON *t, fhir_patch **out, hvg_err *err) {
  fp_trail trail;
  trail.n = 0;
  int rc = fp__check_keys(t, &trail, err);
  if (rc)
    return rc;
  if (!cJSON_IsArray(t))
    return hvg_err_set(err, HVG_EFORMAT, "",
                       "a JSON Patch must be an array of operations, not %s",
                       fp__type(t));
  size_t n = fp__count(t);
  if (n > FHIR_PATCH_MAX_OPS)
    return hvg_err_set(err, HVG_ETOOBIG, "",
                       "%zu operations, more than the %d allowed", n,
                       FHIR_PATCH_MAX_OPS);
  fhir_patch *p = malloc(sizeof *p + n * sizeof p->ops[0]);
  if (!p)
    return hvg_err_set(err, HVG_ENOMEM, "", NULL);
  p->readonly = 1;
  size_t i = 0;
  for (const cJSON *o = t->child; o; o = o->next, i++) {
    if ((rc = fp__op_parse(o, i, &p->ops[i], err))) {
      free(p);
      return rc;
    }
    if (p->ops[i].kind != FP_TEST)
      p->readonly = 0;
  }
  p->tree = t;
  p->n = n;
  *out = p;
  return 0;
}

int fhir_patch_parse(const char *text, size_t len, size_t max_len,
                     fhir_patch **out, hvg_err *err) {
  if (out)
    *out = NULL;
  if (!text || !out)
    return hvg_err_set(err, HVG_EINVAL, "", "no input");
  if (len > max_len)
    return hvg_err_set(err, HVG_ETOOBIG, "",
                       "patch of %zu bytes is larger than the %zu allowed", len,
                       max_len);
  cJSON *t;
  int rc = fhir__json_parse_text(text, len, &t, err);
  if (!rc && (rc = fp__build(t, out, err)))
    cJSON_Delete(t);
  return rc;
}

void fhir_patch_free(fhir_patch *p) {
  if (!p)
    return;
  cJSON_Delete(p->tree);
  free(p);
}

/* ---- JSON equality ---------------------------------------------------- */

/* A JSON number's text as a decimal 0.d1d2...dn x 10^e (d1 and dn not 0):
 * the digits are those of the integer then the fraction part. */
typedef struct fp_dec {
  const char *ip, *fp; /* integer and fraction digits */
  size_t ni, nf;
  size_t first, nd; /* first significant digit (index), how many */
  long long e;
  int neg, zero, huge; /* huge: an exponent of 10^15 or more */
} fp_dec;

static char fp__digit(const fp_dec *d, size_t k) {
  return k < d->ni ? d->ip[k] : d->fp[k - d->ni];
}

/* s must be a JSON number (fhir__is_number). */
static void fp__dec(const char *s, fp_dec *d) {
  memset(d, 0, sizeof *d);
  if (*s == '-') {
    d->neg = 1;
    s++;
  }
  d->ip = s;
  while (*s >= '0' && *s <= '9')
    s++;
  d->ni = (size_t)(s - d->ip);
  d->fp = s;
  if (*s == '.') {
    d->fp = ++s;
    while (*s >= '0' && *s <= '9')
      s++;
    d->nf = (size_t)(s - d->fp);
  }
  long long x = 0;
  if (*s == 'e' || *s == 'E') {
    s++;
    int xneg = *s == '-';
    if (*s == '-' || *s == '+')
      s++;
    for (; *s >= '0' && *s <= '9'; s++) {
      if (x >= 100000000000000LL) { /* 10^14: one more digit is too many */
        d->huge = 1;
        break;
      }
      x = x * 10 + (*s - '0');
    }
    if (xneg)
      x = -x;
  }
  size_t n = d->ni + d->nf, first = 0, last;
  while (first < n && fp__digit(d, first) == '0')
    first++;
  if (first == n) {
    d->zero = 1;
    return;
  }
  last = n - 1;
  while (fp__digit(d, last) == '0')
    last--;
  d->first = first;
  d->nd = last - first + 1;
  d->e = (long long)d->ni - (long long)first + x;
}

/* Numeric equality of two JSON number texts. */
static int fp__dec_equal(const char *a, const char *b) {
  if (!fhir__is_number(a, strlen(a)) || !fhir__is_number(b, strlen(b)))
    return !strcmp(a, b); /* a Raw node that is no number: by its text */
  fp_dec x, y;
  fp__dec(a, &x);
  fp__dec(b, &y);
  if (x.zero || y.zero)
    return x.zero && y.zero; /* -0 == 0 */
  if (x.huge || y.huge)
    return !strcmp(a, b);
  if (x.neg != y.neg || x.e != y.e || x.nd != y.nd)
    return 0;
  for (size_t k = 0; k < x.nd; k++)
    if (fp__digit(&x, x.first + k) != fp__digit(&y, y.first + k))
      return 0;
  return 1;
}

/* The text of number node c: a Raw node's own, or the shortest decimal
 * that reads back as a cJSON number's double; NULL when it has none. */
static const char *fp__num_text(const cJSON *c, char tmp[32]) {
  if (cJSON_IsRaw(c))
    return c->valuestring;
  double v = c->valuedouble;
  if (v != v || v - v != 0) /* NaN or infinite */
    return NULL;
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(tmp, 32, "%.*g", prec, v);
    if (strtod(tmp, NULL) == v)
      break;
  }
  return tmp;
}

static int fp__jtype(const cJSON *c) {
  int t = c->type & 0xFF;
  return t == cJSON_Raw ? cJSON_Number : t;
}

/* 1 when a and b are equal JSON values, 0 when not, or HVG_ENOMEM.
 * Recursion is bounded by `depth` (trees within FHIR_PARSE_MAX_DEPTH). */
static int fp__equal(const cJSON *a, const cJSON *b, int depth) {
  int t = fp__jtype(a);
  if (t != fp__jtype(b))
    return 0;
  switch (t) {
  case cJSON_False:
  case cJSON_True:
  case cJSON_NULL: return 1;
  case cJSON_Number: {
    if (cJSON_IsNumber(a) && cJSON_IsNumber(b))
      return a->valuedouble == b->valuedouble;
    char ta[32], tb[32];
    const char *sa = fp__num_text(a, ta), *sb = fp__num_text(b, tb);
    return sa && sb && fp__dec_equal(sa, sb);
  }
  case cJSON_String:
    if (!a->valuestring || !b->valuestring)
      return a->valuestring == b->valuestring;
    return !strcmp(a->valuestring, b->valuestring);
  case cJSON_Array:
  case cJSON_Object: break;
  default: return 0;
  }
  if (depth > FHIR_PARSE_MAX_DEPTH)
    return HVG_ETOOBIG; /* not reached: both trees are within the cap */
  if (t == cJSON_Array) {
    const cJSON *x = a->child, *y = b->child;
    for (; x && y; x = x->next, y = y->next) {
      int eq = fp__equal(x, y, depth + 1);
      if (eq != 1)
        return eq;
    }
    return !x && !y;
  }
  size_t na = fp__count(a), nb = fp__count(b);
  if (na != nb)
    return 0;
  if (na <= FP_SMALL_OBJECT) {
    for (const cJSON *x = a->child; x; x = x->next) {
      if (!x->string)
        return 0;
      const cJSON *y = b->child;
      while (y && (!y->string || strcmp(x->string, y->string)))
        y = y->next;
      if (!y)
        return 0;
      int eq = fp__equal(x, y, depth + 1);
      if (eq != 1)
        return eq;
    }
    return 1;
  }
  const cJSON **va = fp__sorted(a, &na), **vb = fp__sorted(b, &nb);
  int eq = va && vb ? 1 : HVG_ENOMEM;
  for (size_t i = 0; eq == 1 && i < na; i++) {
    if (fp__key_cmp(&va[i], &vb[i]))
      eq = 0;
    else
      eq = fp__equal(va[i], vb[i], depth + 1);
  }
  free(va);
  free(vb);
  return eq;
}

/* ---- applying --------------------------------------------------------- */

typedef struct fa {
  hvg_err *err;
  size_t i;        /* index of the operation */
  const fp_op *op; /* the operation */
  size_t copied;   /* bytes added by "copy" so far */
} fa;

/* Failure of the current operation at its pointer `which` ("path" or
 * "from", NULL: none) with value ptr. */
static int fa__fail(fa *a, int code, const char *which, const char *ptr,
                    const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
static int fa__fail(fa *a, int code, const char *which, const char *ptr,
                    const char *fmt, ...) {
  if (!a->err)
    return code;
  char field[32], why[256];
  snprintf(field, sizeof field, "/%zu", a->i);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  if (!which)
    return hvg_err_set(a->err, code, field, "%s: %s", fp__names[a->op->kind],
                       why);
  return hvg_err_set(a->err, code, field, "%s %s '%.160s%s': %s",
                     fp__names[a->op->kind], which, ptr,
                     strlen(ptr) > 160 ? "..." : "", why);
}

/* The reference token at *pp (a '/') decoded into tok (room for
 * FHIR_PATCH_MAX_POINTER + 1 bytes; the pointer was checked when parsed);
 * *pp moves to the next '/' or the end. */
static void fa__token(const char **pp, char *tok) {
  const char *p = *pp + 1;
  size_t n = 0;
  while (*p && *p != '/') {
    if (*p == '~') {
      tok[n++] = p[1] == '1' ? '/' : '~';
      p += 2;
    } else {
      tok[n++] = *p++;
    }
  }
  tok[n] = '\0';
  *pp = p;
}

/* An array index token: 0 and *i set (SIZE_MAX when too large), or -1. */
static int fa__index(const char *t, size_t *i) {
  if (!t[0] || (t[0] == '0' && t[1]))
    return -1;
  size_t v = 0;
  for (; *t; t++) {
    if (*t < '0' || *t > '9')
      return -1;
    unsigned d = (unsigned)(*t - '0');
    v = v > (SIZE_MAX - d) / 10 ? SIZE_MAX : v * 10 + d;
  }
  *i = v;
  return 0;
}

/* Where a pointer leads. */
typedef struct fa_loc {
  cJSON *parent; /* NULL: the target is the document itself */
  cJSON *node;   /* the target; NULL for a new member or the end of an array */
  size_t level;  /* tokens of the pointer: a value put there nests at
                    level + its own height */
  size_t index;  /* parent an array: the index of the target */
  char key[FHIR_PATCH_MAX_POINTER + 1]; /* the last token, decoded */
} fa_loc;

enum { FA_GET, FA_ADD };

/* Follow pointer ptr (operation member `which`) from root. FA_GET: the
 * target must exist; FA_ADD: its parent must, and the last token may be a
 * new member, the array's size or "-". */
static int fa__resolve(fa *a, cJSON *root, const char *which, const char *ptr,
                       int mode, fa_loc *l) {
  l->parent = NULL;
  l->node = root;
  l->level = 0;
  l->index = 0;
  l->key[0] = '\0';
  const char *p = ptr;
  while (*p) {
    cJSON *cur = l->node;
    fa__token(&p, l->key);
    int add_here = !*p && mode == FA_ADD;
    l->parent = cur;
    l->level++;
    if (cJSON_IsObject(cur)) {
      l->node = cJSON_GetObjectItemCaseSensitive(cur, l->key);
      if (!l->node && !add_here)
        return fa__fail(a, HVG_ENOTFOUND, which, ptr, "no member '%.64s'",
                        l->key);
      continue;
    }
    if (!cJSON_IsArray(cur))
      return fa__fail(a, HVG_ENOTFOUND, which, ptr,
                      "no '%.64s' in %s (not an object or array)", l->key,
                      fp__type(cur));
    size_t n = fp__count(cur);
    if (!strcmp(l->key, "-")) {
      if (!add_here)
        return fa__fail(a, HVG_EFORMAT, which, ptr,
                        "'-' (past the last element) is only allowed at the "
                        "end of the path of an add");
      l->index = n;
      l->node = NULL;
      continue;
    }
    if (fa__index(l->key, &l->index))
      return fa__fail(a, HVG_EFORMAT, which, ptr,
                      "'%.64s' is not an array index (0 or digits without a "
                      "leading zero)",
                      l->key);
    if (l->index > n || (l->index == n && !add_here))
      return fa__fail(a, HVG_EFORMAT, which, ptr,
                      "index %s is out of range (array of %zu)", l->key, n);
    l->node = cur->child;
    for (size_t k = 0; k < l->index; k++)
      l->node = l->node->next;
  }
  return 0;
}

/* Bytes (each node sizeof(cJSON) plus its strings) and height (0 for a
 * scalar, 1 + the highest child for a container) of tree c; -1 when it
 * nests more than `room` containers deep. */
static int fa__measure(const cJSON *c, int room, size_t *bytes, int *height) {
  size_t b = sizeof(cJSON);
  if (c->string && !(c->type & cJSON_StringIsConst))
    b += strlen(c->string) + 1;
  if (c->valuestring && (cJSON_IsString(c) || cJSON_IsRaw(c)))
    b += strlen(c->valuestring) + 1;
  int h = 0;
  if (fp__is_container(c)) {
    if (room < 1)
      return -1;
    for (const cJSON *x = c->child; x; x = x->next) {
      size_t xb;
      int xh;
      if (fa__measure(x, room - 1, &xb, &xh))
        return -1;
      b += xb;
      if (xh > h)
        h = xh;
    }
    h++;
  }
  *bytes = b;
  *height = h;
  return 0;
}

/* Check that v fits at l without nesting too deep; *bytes its size. */
static int fa__fits(fa *a, const fa_loc *l, const cJSON *v, size_t *bytes) {
  int h;
  if (fa__measure(v, FHIR_PARSE_MAX_DEPTH - (int)l->level, bytes, &h))
    return fa__fail(a, HVG_ETOOBIG, "path", a->op->path,
                    "the document would nest deeper than %d levels",
                    FHIR_PARSE_MAX_DEPTH);
  return 0;
}

/* Give node c the object key k, or no key (k NULL). */
static int fa__set_key(cJSON *c, const char *k) {
  char *d = NULL;
  if (k) {
    size_t n = strlen(k);
    if (!(d = cJSON_malloc(n + 1)))
      return HVG_ENOMEM;
    memcpy(d, k, n + 1);
  }
  if (!(c->type & cJSON_StringIsConst))
    cJSON_free(c->string);
  c->string = d;
  c->type &= ~cJSON_StringIsConst;
  return 0;
}

/* Link v into array a before its item `at`, keeping cJSON's list shape
 * (a->child->prev is the last item). Not cJSON_InsertItemInArray: some
 * patched 1.7.15 builds refuse to insert anywhere but at 0. */
static void fa__insert_before(cJSON *a, cJSON *at, cJSON *v) {
  v->next = at;
  v->prev = at->prev; /* the item before, or the last when at is first */
  if (at == a->child)
    a->child = v;
  else
    at->prev->next = v;
  at->prev = v;
}

/* Put v at l (resolved with FA_ADD, or FA_GET for replace): the document
 * itself, an object member (new, or replaced in place), or an array item
 * (inserted, or replacing l->node when `replace`). On success the tree owns
 * v; on error the caller still does. */
static int fa__put(fa *a, cJSON **root, const fa_loc *l, cJSON *v,
                   int replace) {
  cJSON_bool ok = 1;
  if (!l->parent) {
    fa__set_key(v, NULL); /* allocates nothing: cannot fail */
    cJSON_Delete(*root);
    *root = v;
    return 0;
  }
  if (cJSON_IsObject(l->parent)) {
    if (fa__set_key(v, l->key))
      return fa__fail(a, HVG_ENOMEM, NULL, NULL, "out of memory");
    ok = l->node ? cJSON_ReplaceItemViaPointer(l->parent, l->node, v)
                 : cJSON_AddItemToArray(l->parent, v); /* keeps v's key */
  } else {
    fa__set_key(v, NULL);
    if (replace)
      ok = cJSON_ReplaceItemViaPointer(l->parent, l->node, v);
    else if (!l->node)
      ok = cJSON_AddItemToArray(l->parent, v);
    else
      fa__insert_before(l->parent, l->node, v);
  }
  if (!ok) /* not reached: cJSON refuses only NULL arguments */
    return fa__fail(a, HVG_EINVAL, "path", a->op->path, "cannot put it there");
  return 0;
}

/* Duplicate v and put it at l. */
static int fa__put_copy(fa *a, cJSON **root, const fa_loc *l, const cJSON *v,
                        int replace) {
  cJSON *d = cJSON_Duplicate(v, 1);
  if (!d)
    return fa__fail(a, HVG_ENOMEM, NULL, NULL, "out of memory");
  int rc = fa__put(a, root, l, d, replace);
  if (rc)
    cJSON_Delete(d);
  return rc;
}

static int fa__op(fa *a, cJSON **root) {
  const fp_op *op = a->op;
  fa_loc to, from;
  size_t bytes;
  int rc, eq;
  switch (op->kind) {
  case FP_ADD:
  case FP_REPLACE:
    if ((rc = fa__resolve(a, *root, "path", op->path,
                          op->kind == FP_ADD ? FA_ADD : FA_GET, &to)) ||
        (rc = fa__fits(a, &to, op->value, &bytes)))
      return rc;
    return fa__put_copy(a, root, &to, op->value, op->kind == FP_REPLACE);
  case FP_REMOVE:
    if (!op->path[0])
      return fa__fail(a, HVG_EFORMAT, "path", op->path,
                      "cannot remove the whole document");
    if ((rc = fa__resolve(a, *root, "path", op->path, FA_GET, &to)))
      return rc;
    cJSON_Delete(cJSON_DetachItemViaPointer(to.parent, to.node));
    return 0;
  case FP_MOVE: {
    if ((rc = fa__resolve(a, *root, "from", op->from, FA_GET, &from)))
      return rc;
    if (!strcmp(op->from, op->path))
      return 0;
    size_t n = strlen(op->from);
    if (!strncmp(op->path, op->from, n) && op->path[n] == '/')
      return fa__fail(a, HVG_EFORMAT, "path", op->path,
                      "cannot move a value into its own child (from '%.160s')",
                      op->from);
    /* from is not "" here (it would be a prefix of path) */
    cJSON *v = cJSON_DetachItemViaPointer(from.parent, from.node);
    if ((rc = fa__resolve(a, *root, "path", op->path, FA_ADD, &to)) ||
        (rc = fa__fits(a, &to, v, &bytes)) ||
        (rc = fa__put(a, root, &to, v, 0)))
      cJSON_Delete(v); /* the caller drops the whole working copy */
    return rc;
  }
  case FP_COPY:
    if ((rc = fa__resolve(a, *root, "from", op->from, FA_GET, &from)) ||
        (rc = fa__resolve(a, *root, "path", op->path, FA_ADD, &to)) ||
        (rc = fa__fits(a, &to, from.node, &bytes)))
      return rc;
    if (bytes > FHIR_PATCH_MAX_COPY - a->copied)
      return fa__fail(a, HVG_ETOOBIG, "from", op->from,
                      "copies would add more than %zu bytes to the document",
                      (size_t)FHIR_PATCH_MAX_COPY);
    a->copied += bytes;
    return fa__put_copy(a, root, &to, from.node, 0);
  case FP_TEST:
    if ((rc = fa__resolve(a, *root, "path", op->path, FA_GET, &to)))
      return rc;
    eq = fp__equal(to.node, op->value, 1);
    if (eq < 0)
      return fa__fail(a, eq, NULL, NULL, "%s", hvg_strerror(eq));
    if (!eq)
      return fa__fail(a, HVG_ESTATE, "path", op->path,
                      "the value is not equal to the one tested");
    return 0;
  }
  return fa__fail(a, HVG_EINVAL, NULL, NULL, "unknown operation");
}

int fhir_patch_apply(const fhir_patch *p, cJSON **doc, hvg_err *err) {
  if (!p || !doc || !*doc)
    return hvg_err_set(err, HVG_EINVAL, "", "no patch or no document");
  size_t bytes;
  int height;
  if (fa__measure(*doc, FHIR_PARSE_MAX_DEPTH, &bytes, &height))
    return hvg_err_set(err, HVG_ETOOBIG, "",
                       "the document nests deeper than %d levels",
                       FHIR_PARSE_MAX_DEPTH);
  fa a = {err, 0, NULL, 0};
  cJSON *work = *doc;
  if (!p->readonly && p->n && !(work = cJSON_Duplicate(*doc, 1)))
    return hvg_err_set(err, HVG_ENOMEM, "", "out of memory");
  for (size_t i = 0; i < p->n; i++) {
    a.i = i;
    a.op = &p->ops[i];
    int rc = fa__op(&a, &work);
    if (rc) {
      if (work != *doc)
        cJSON_Delete(work);
      return rc;
    }
  }
  if (work != *doc) {
    cJSON_Delete(*doc);
    *doc = work;
  }
  return 0;
}
