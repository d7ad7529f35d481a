#include "hvg_jscan.h"

#include <string.h>

void hvg_jscan_init(hvg_jscan *j, const char *s, size_t len) {
  memset(j, 0, sizeof *j);
  j->s = s ? s : "";
  j->len = s ? len : 0;
  if (j->len >= 3 && !memcmp(j->s, "\xEF\xBB\xBF", 3))
    j->i = 3; /* a byte order mark, which cJSON skips too */
}

/* Like cJSON, every byte up to the space counts as white space. */
static void js__ws(hvg_jscan *j) {
  while (j->i < j->len && (unsigned char)j->s[j->i] <= ' ')
    j->i++;
}

int hvg_jscan_peek(hvg_jscan *j) {
  js__ws(j);
  return j->i < j->len ? (unsigned char)j->s[j->i] : 0;
}

static int js__hex(int c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

/* Four hex digits at p (before end): the code unit, or -1. */
static long js__hex4(const char *p, const char *end) {
  if (end - p < 4)
    return -1;
  long v = 0;
  for (int k = 0; k < 4; k++) {
    int d = js__hex((unsigned char)p[k]);
    if (d < 0)
      return -1;
    v = v << 4 | d;
  }
  return v;
}

/* Appends u[0..k) to out[cap] while it fits (the NUL included). */
static void js__put(char *out, size_t cap, size_t *n, int *fits, const char *u,
                    size_t k) {
  if (!out || !*fits)
    return;
  if (*n + k >= cap) {
    *fits = 0;
    return;
  }
  memcpy(out + *n, u, k);
  *n += k;
}

/* The escape at p (a backslash, before end) as UTF-8 into u[4]: its length
 * in u, and *adv the length in the text; 0 when malformed. */
static size_t js__escape(const char *p, const char *end, char *u, size_t *adv) {
  if (end - p < 2)
    return 0;
  *adv = 2;
  switch (p[1]) {
  case '"': u[0] = '"'; return 1;
  case '\\': u[0] = '\\'; return 1;
  case '/': u[0] = '/'; return 1;
  case 'b': u[0] = '\b'; return 1;
  case 'f': u[0] = '\f'; return 1;
  case 'n': u[0] = '\n'; return 1;
  case 'r': u[0] = '\r'; return 1;
  case 't': u[0] = '\t'; return 1;
  case 'u': break;
  default: return 0;
  }
  long hi = js__hex4(p + 2, end);
  if (hi < 0 || (hi >= 0xDC00 && hi <= 0xDFFF))
    return 0;
  unsigned long cp = (unsigned long)hi;
  *adv = 6;
  if (hi >= 0xD800 && hi <= 0xDBFF) {
    long lo = end - p >= 12 && p[6] == '\\' && p[7] == 'u'
                  ? js__hex4(p + 8, end)
                  : -1;
    if (lo < 0xDC00 || lo > 0xDFFF)
      return 0;
    *adv = 12;
    cp = 0x10000 + (((unsigned long)hi - 0xD800) << 10) +
         ((unsigned long)lo - 0xDC00);
  }
  if (cp < 0x80) {
    u[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    u[0] = (char)(0xC0 | cp >> 6);
    u[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    u[0] = (char)(0xE0 | cp >> 12);
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  u[0] = (char)(0xF0 | cp >> 18);
  u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  u[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* The first '"' or backslash in [p, end), or NULL. Most strings are
 * short (keys, codes, ids): the first bytes are looked at one by one, a
 * long text with memchr. */
static const char *js__special(const char *p, const char *end) {
  const char *lim = end - p > 48 ? p + 48 : end;
  for (; p < lim; p++)
    if (*p == '"' || *p == '\\')
      return p;
  if (p == end)
    return NULL;
  const char *q = memchr(p, '"', (size_t)(end - p));
  const char *b = memchr(p, '\\', (size_t)((q ? q : end) - p));
  return b ? b : q;
}

/* The string at the cursor ('"'): unescaped into out[cap] when out is not
 * NULL. Returns its length, -2 when it does not fit (still consumed), -1
 * malformed (bad escape, lone surrogate, unterminated). */
static long js__str(hvg_jscan *j, char *out, size_t cap) {
  const char *p = j->s + j->i + 1, *end = j->s + j->len;
  size_t n = 0;
  int fits = !out || cap > 0;
  for (;;) {
    const char *q = js__special(p, end);
    if (!q)
      return -1;
    js__put(out, cap, &n, &fits, p, (size_t)(q - p));
    if (*q == '"') {
      j->i = (size_t)(q + 1 - j->s);
      if (out && fits)
        out[n] = '\0';
      return fits ? (long)n : -2;
    }
    char u[4];
    size_t adv, k = js__escape(q, end, u, &adv);
    if (!k)
      return -1;
    js__put(out, cap, &n, &fits, u, k);
    p = q + adv;
  }
}

/* A number or literal at the cursor: 0, or -1. */
static int js__scalar(hvg_jscan *j) {
  static const char *const lit[] = {"true", "false", "null"};
  for (int k = 0; k < 3; k++) {
    size_t n = strlen(lit[k]);
    if (j->s[j->i] == lit[k][0]) {
      if (j->len - j->i < n || memcmp(j->s + j->i, lit[k], n))
        return -1;
      j->i += n;
      return 0;
    }
  }
  size_t start = j->i;
  for (; j->i < j->len; j->i++) {
    char c = j->s[j->i];
    if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' ||
          c == 'e' || c == 'E'))
      break;
  }
  return j->i > start ? 0 : -1;
}

/* A member name at the cursor and its colon: 0 (cursor at the value), -1. */
static int js__name(hvg_jscan *j, char *key, size_t cap) {
  js__ws(j);
  if (j->i >= j->len || j->s[j->i] != '"')
    return -1;
  long n = js__str(j, key, cap);
  if (n == -1)
    return -1;
  if (n < 0 && key)
    key[0] = '\0';
  js__ws(j);
  if (j->i >= j->len || j->s[j->i] != ':')
    return -1;
  j->i++;
  return 0;
}

int hvg_jscan_skip(hvg_jscan *j) {
  unsigned char obj[HVG_JSCAN_MAX_DEPTH / 8 + 1]; /* bit d: level d is '{' */
  int d = 0;
  j->pending = 0;
  for (;;) {
    /* a value */
    js__ws(j);
    if (j->i >= j->len)
      return -1;
    char c = j->s[j->i];
    if (c == '{' || c == '[') {
      if (d >= HVG_JSCAN_MAX_DEPTH)
        return -1;
      if (c == '{')
        obj[d / 8] |= (unsigned char)(1u << (d % 8));
      else
        obj[d / 8] &= (unsigned char)~(1u << (d % 8));
      d++;
      j->i++;
      js__ws(j);
      if (j->i < j->len && j->s[j->i] == (c == '{' ? '}' : ']')) {
        j->i++;
        d--;
      } else {
        if (c == '{' && js__name(j, NULL, 0))
          return -1;
        continue;
      }
    } else if (c == '"') {
      if (js__str(j, NULL, 0) == -1)
        return -1;
    } else if (js__scalar(j)) {
      return -1;
    }
    /* after a value: a comma or the end of containers */
    for (;;) {
      if (d == 0)
        return 0;
      int is_obj = obj[(d - 1) / 8] >> ((d - 1) % 8) & 1;
      js__ws(j);
      if (j->i >= j->len)
        return -1;
      c = j->s[j->i++];
      if (c == (is_obj ? '}' : ']')) {
        d--;
        continue;
      }
      if (c != ',' || (is_obj && js__name(j, NULL, 0)))
        return -1;
      break;
    }
  }
}

static int js__enter(hvg_jscan *j, char type) {
  if (j->depth >= HVG_JSCAN_WALK_MAX)
    return -1;
  int c = hvg_jscan_peek(j);
  if (!c)
    return -1;
  if (c != type)
    return 0;
  j->i++;
  j->pending = 0;
  j->open[j->depth++] = (unsigned char)type;
  return 1;
}

int hvg_jscan_enter_object(hvg_jscan *j) {
  return js__enter(j, '{');
}

int hvg_jscan_enter_array(hvg_jscan *j) {
  return js__enter(j, '[');
}

/* The next member or item of the container entered last. */
static int js__next(hvg_jscan *j, char type) {
  if (!j->depth || (j->open[j->depth - 1] & 0x7f) != type)
    return -1;
  if (j->pending && hvg_jscan_skip(j))
    return -1;
  unsigned char *o = &j->open[j->depth - 1];
  js__ws(j);
  if (j->i >= j->len)
    return -1;
  if (j->s[j->i] == (type == '{' ? '}' : ']')) {
    j->i++;
    j->depth--;
    return 0;
  }
  if (*o & 0x80) {
    if (j->s[j->i] != ',')
      return -1;
    j->i++;
  }
  *o |= 0x80;
  if (type == '{' && js__name(j, j->key, sizeof j->key))
    return -1;
  j->pending = 1;
  return 1;
}

int hvg_jscan_member(hvg_jscan *j) {
  return js__next(j, '{');
}

int hvg_jscan_item(hvg_jscan *j) {
  return js__next(j, '[');
}

long hvg_jscan_string(hvg_jscan *j, char *out, size_t cap) {
  if (cap)
    out[0] = '\0';
  int c = hvg_jscan_peek(j);
  if (c != '"')
    return hvg_jscan_skip(j) ? -1 : -2;
  j->pending = 0;
  long n = js__str(j, out, cap);
  if (n == -2 && cap)
    out[0] = '\0';
  return n;
}
