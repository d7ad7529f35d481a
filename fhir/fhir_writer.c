#include "fhir_writer.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

enum { W_OBJ = 1, W_ARR, W_RES, W_PRIM };

#define W_FAIL(w, code)                                                       \
  do {                                                                        \
    if (!(w)->err)                                                            \
      (w)->err = (code);                                                      \
  } while (0)

void fhir_w_init(fhir_writer *w, hvg_buf *out, fhir_format fmt,
                 unsigned flags) {
  memset(w, 0, sizeof *w);
  w->out = out;
  w->fmt = fmt;
  w->flags = flags;
}

int fhir_w_error(const fhir_writer *w) { return w->err; }

/* The hot path of every Bundle: most appends are a few bytes into a buffer
 * that already has room, so that case is inline and skips the NUL the
 * buffer keeps after its content; fhir_w_finish restores it. */
static inline void w__add(fhir_writer *w, const char *p, size_t n) {
  hvg_buf *b = w->out;
  if (!w->err && b->cap - b->len > n && b->len + n <= b->max) {
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return;
  }
  if (w->err)
    return;
  int rc = hvg_buf_add(b, p, n);
  if (rc)
    w->err = rc;
}

#define W_LIT(w, s) w__add((w), (s), sizeof(s) - 1)

static void w__adds(fhir_writer *w, const char *s) { w__add(w, s, strlen(s)); }

/* ---- compact JSON fast path --------------------------------------------
 * Compact JSON (no FHIR_W_PRETTY) is what every Bundle of `hvgate map` and
 * intake is written in. Each event there first makes room for its worst case
 * (a value escaped entirely as \u00XX) with one check, then writes through a
 * pointer. When that room is not there within the buffer's cap, the event
 * takes the exact path below it (the appends of w__add), so the output and
 * the byte at which HVG_ETOOBIG strikes are the same either way. */

/* Values longer than this take the exact path (keeps 6 * n from
 * overflowing and the reservation reasonable). */
#define W_FAST_MAX ((size_t)1 << 20)

static int w__compact(const fhir_writer *w) {
  return w->fmt == FHIR_JSON && !(w->flags & FHIR_W_PRETTY);
}

static char *w__room_slow(fhir_writer *w, size_t n) {
  hvg_buf *b = w->out;
  if (w->err || n > b->max - b->len)
    return NULL; /* the exact path fails where the old appends did */
  return hvg_buf_reserve(b, n); /* NULL (buffer unchanged) when out of memory */
}

/* Where to write n more bytes (the NUL may follow them), or NULL: then
 * nothing changed and the caller takes the exact path. */
static inline char *w__room(fhir_writer *w, size_t n) {
  hvg_buf *b = w->out;
  if (b->cap - b->len > n && n <= b->max - b->len)
    return b->data + b->len;
  return w__room_slow(w, n);
}

static inline void w__commit(fhir_writer *w, const char *end) {
  w->out->len = (size_t)(end - w->out->data);
}

/* memcpy of the few bytes of a key, without a call. */
static inline void w__cpy(char *o, const char *s, size_t n) {
  if (n >= 8 && n <= 16) {
    uint64_t a, b;
    memcpy(&a, s, 8);
    memcpy(&b, s + n - 8, 8);
    memcpy(o, &a, 8);
    memcpy(o + n - 8, &b, 8);
  } else if (n >= 4 && n < 8) {
    uint32_t a, b;
    memcpy(&a, s, 4);
    memcpy(&b, s + n - 4, 4);
    memcpy(o, &a, 4);
    memcpy(o + n - 4, &b, 4);
  } else if (n < 4) {
    for (size_t i = 0; i < n; i++)
      o[i] = s[i];
  } else {
    memcpy(o, s, n);
  }
}

/* The separator and key of a new child of p: ',' before all but the first,
 * then "name": unless p is an array. At most ln + 4 bytes. */
static inline char *w__json_key(char *o, fhir__wframe *p, const char *name,
                                size_t ln) {
  if (p->count)
    *o++ = ',';
  p->count++;
  if (p->kind != W_ARR) {
    *o++ = '"';
    w__cpy(o, name, ln);
    o += ln;
    *o++ = '"';
    *o++ = ':';
  }
  return o;
}

static void w__indent(fhir_writer *w, int level) {
  if (!(w->flags & FHIR_W_PRETTY))
    return;
  static const char spaces[] = "                                        ";
  W_LIT(w, "\n");
  size_t n = (size_t)level * 2;
  while (n) {
    size_t k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
    w__add(w, spaces, k);
    n -= k;
  }
}

/* JSON string body, escaping only what RFC 8259 requires. Runs of plain bytes
 * are copied at once. */
/* Nonzero when one of the 8 bytes in v is a control character, '"' or '\\'
 * (bit tricks from "Bit Twiddling Hacks": hasless and haszero of v^c). */
static inline uint64_t w__json_special8(uint64_t v) {
  const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
  return (((v - ones * 0x20) & ~v) | ((q - ones) & ~q) | ((b - ones) & ~b)) &
         highs;
}

static void w__json_escaped(fhir_writer *w, const char *s, size_t n) {
  size_t start = 0;
  for (size_t i = 0; i < n; i++) {
    if (i + 8 <= n) { /* skip plain runs 8 bytes at a time */
      uint64_t v;
      memcpy(&v, s + i, 8);
      if (!w__json_special8(v)) {
        i += 7;
        continue;
      }
    }
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    w__add(w, s + start, i - start);
    char esc[8];
    switch (c) {
    case '"': W_LIT(w, "\\\""); break;
    case '\\': W_LIT(w, "\\\\"); break;
    case '\n': W_LIT(w, "\\n"); break;
    case '\r': W_LIT(w, "\\r"); break;
    case '\t': W_LIT(w, "\\t"); break;
    default:
      snprintf(esc, sizeof esc, "\\u%04x", c);
      w__add(w, esc, 6);
    }
    start = i + 1;
  }
  w__add(w, s + start, n - start);
}

/* The JSON string body of s[0..n) at o, which has room for 6 * n bytes:
 * plain runs are copied 8 bytes at a time as they are scanned. Same bytes as
 * w__json_escaped. Returns the end. */
static inline char *w__json_esc1(char *o, unsigned char c) {
  static const char hex[] = "0123456789abcdef";
  if (c >= 0x20 && c != '"' && c != '\\') {
    *o++ = (char)c;
    return o;
  }
  *o++ = '\\';
  switch (c) {
  case '"': *o++ = '"'; break;
  case '\\': *o++ = '\\'; break;
  case '\n': *o++ = 'n'; break;
  case '\r': *o++ = 'r'; break;
  case '\t': *o++ = 't'; break;
  default:
    memcpy(o, "u00", 3);
    o[3] = hex[c >> 4];
    o[4] = hex[c & 15];
    o += 5;
  }
  return o;
}

/* Escapes s[0..n) byte by byte from where a special byte may be. */
static char *w__json_esc_slow(char *o, const char *s, size_t n) {
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, s, 8);
    if (!w__json_special8(v)) {
      memcpy(o, &v, 8);
      o += 8;
    } else {
      for (int k = 0; k < 8; k++)
        o = w__json_esc1(o, (unsigned char)s[k]);
    }
    s += 8;
    n -= 8;
  }
  for (; n; n--)
    o = w__json_esc1(o, (unsigned char)*s++);
  return o;
}

static inline uint32_t w__json_special4(uint32_t v) {
  const uint32_t ones = 0x01010101u, highs = 0x80808080u;
  uint32_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
  return (((v - ones * 0x20) & ~v) | ((q - ones) & ~q) | ((b - ones) & ~b)) &
         highs;
}

/* Most values need no escape at all. While none was needed, output and input
 * offsets match, so the last (partial) chunk is checked and copied as a
 * whole chunk that overlaps the one before it. */
static char *w__json_esc_copy(char *o, const char *s, size_t n) {
  if (n >= 16) {
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  ctl = _mm_set1_epi8(0x1f);
    for (;;) {
      if (i + 16 > n)
        i = n - 16; /* last chunk, overlapping */
      __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
      __m128i bad = _mm_or_si128(
          _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
          _mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl));
      _mm_storeu_si128((__m128i *)(void *)(o + i), v);
      unsigned m = (unsigned)_mm_movemask_epi8(bad);
      if (m) {
        i += (size_t)__builtin_ctz(m); /* bytes before it are plain */
        return w__json_esc_slow(o + i, s + i, n - i);
      }
      if (i + 16 == n)
        return o + n;
      i += 16;
    }
#else
    for (;;) {
      if (i + 8 > n)
        i = n - 8;
      uint64_t v;
      memcpy(&v, s + i, 8);
      if (w__json_special8(v))
        return w__json_esc_slow(o + i, s + i, n - i);
      memcpy(o + i, &v, 8);
      if (i + 8 == n)
        return o + n;
      i += 8;
    }
#endif
  }
  if (n >= 8) {
    uint64_t a, b;
    memcpy(&a, s, 8);
    memcpy(&b, s + n - 8, 8);
    if (w__json_special8(a) | w__json_special8(b))
      return w__json_esc_slow(o, s, n);
    memcpy(o, &a, 8);
    memcpy(o + n - 8, &b, 8);
    return o + n;
  }
  if (n >= 4) {
    uint32_t a, b;
    memcpy(&a, s, 4);
    memcpy(&b, s + n - 4, 4);
    if (w__json_special4(a) | w__json_special4(b))
      return w__json_esc_slow(o, s, n);
    memcpy(o, &a, 4);
    memcpy(o + n - 4, &b, 4);
    return o + n;
  }
  return w__json_esc_slow(o, s, n);
}

/* XML attribute value or text. Tabs and line breaks become character
 * references so the parser's attribute normalisation cannot change them;
 * other C0 controls cannot be represented in XML 1.0 at all. */
static void w__xml_escaped(fhir_writer *w, const char *s, size_t n) {
  size_t start = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *rep;
    switch (c) {
    case '&': rep = "&amp;"; break;
    case '<': rep = "&lt;"; break;
    case '>': rep = "&gt;"; break;
    case '"': rep = "&quot;"; break;
    case '\t': rep = "&#9;"; break;
    case '\n': rep = "&#10;"; break;
    case '\r': rep = "&#13;"; break;
    default:
      if (c < 0x20) {
        W_FAIL(w, HVG_EENCODING);
        return;
      }
      continue;
    }
    w__add(w, s + start, i - start);
    w__adds(w, rep);
    start = i + 1;
  }
  w__add(w, s + start, n - start);
}

static fhir__wframe *w__top(fhir_writer *w) {
  return w->depth ? &w->stack[w->depth - 1] : NULL;
}

/* XML: finish a start tag whose attributes are complete. */
static void w__xml_close_tag(fhir_writer *w, fhir__wframe *f) {
  if (f->tag_open) {
    W_LIT(w, ">");
    f->tag_open = 0;
  }
  f->attrs_ok = 0;
}

static void w__open_frame(fhir_writer *w, int idx);

/* Write the separator/prefix for a new child of the frame at idx, opening
 * lazily-begun ancestors first. `name` is the child's element name (NULL in
 * arrays). JSON: writes ,"name": ; XML: only makes sure the parent tag is
 * closed (the child writes its own tag). */
static void w__child_prefix(fhir_writer *w, int idx, const char *name,
                            int is_attr) {
  if (idx >= 0) {
    fhir__wframe *p = &w->stack[idx];
    if (!p->opened)
      w__open_frame(w, idx);
    if (w->fmt == FHIR_JSON) {
      if (p->count)
        W_LIT(w, ",");
      w__indent(w, idx + 1);
      if (p->kind != W_ARR) {
        W_LIT(w, "\"");
        w__adds(w, name);
        W_LIT(w, "\":");
        if (w->flags & FHIR_W_PRETTY)
          W_LIT(w, " ");
      }
    } else if (!is_attr) {
      if (p->kind == W_ARR) {
        /* items of an array hang off the array's parent element */
        if (idx > 0)
          w__xml_close_tag(w, &w->stack[idx - 1]);
      } else {
        w__xml_close_tag(w, p);
      }
    }
    p->count++;
  }
}

/* Name under which an element at frame idx appears in XML. */
static const char *w__xml_name(fhir_writer *w, int idx, const char *name) {
  if (idx >= 0 && w->stack[idx].kind == W_ARR)
    return w->stack[idx].name;
  return name;
}

/* Compact JSON: writes the start of the lazily begun frame at idx and of
 * its unopened ancestors, outermost first (idx > 0: only resources sit at
 * the bottom, and they open at once). */
static void w__json_open(fhir_writer *w, int idx) {
  int k = idx;
  while (!w->stack[k - 1].opened)
    k--;
  for (; k <= idx; k++) {
    fhir__wframe *f = &w->stack[k], *p = &w->stack[k - 1];
    size_t ln = p->kind == W_ARR ? 0 : f->nlen;
    char *o = w->err || ln > W_FAST_MAX ? NULL : w__room(w, ln + 5);
    if (!o) {
      w__open_frame(w, k); /* its ancestors are open: the exact path */
      continue;
    }
    o = w__json_key(o, p, f->name, ln);
    f->start = (size_t)(o - w->out->data);
    *o++ = f->kind == W_ARR ? '[' : '{';
    w__commit(w, o);
    f->opened = 1;
  }
}

static void w__open_frame(fhir_writer *w, int idx) {
  fhir__wframe *f = &w->stack[idx];
  w__child_prefix(w, idx - 1, f->name, 0);
  f->opened = 1;
  f->start = w->out->len;
  if (w->fmt == FHIR_JSON) {
    if (f->kind == W_ARR)
      W_LIT(w, "[");
    else
      W_LIT(w, "{");
    return;
  }
  /* XML: arrays have no element of their own. */
  if (f->kind == W_ARR)
    return;
  w__indent(w, idx);
  W_LIT(w, "<");
  w__adds(w, w__xml_name(w, idx - 1, f->name));
  f->tag_open = 1;
  f->attrs_ok = 1;
}

/* Name lengths: the public entry points take strlen(name) themselves, so
 * that where they are inlined into a builder it is a constant. */
#define W_NLEN(name) ((name) ? strlen(name) : 0)

static int w__push(fhir_writer *w, int kind, const char *name, size_t nlen) {
  if (w->err)
    return -1;
  fhir__wframe *top = w__top(w);
  if (top && top->kind != W_ARR && !name) {
    W_FAIL(w, HVG_EINVAL);
    return -1;
  }
  if (!top && kind != W_RES) {
    W_FAIL(w, HVG_ESTATE);
    return -1;
  }
  if (w->depth >= FHIR_W_MAX_DEPTH) {
    W_FAIL(w, HVG_ETOOBIG);
    return -1;
  }
  fhir__wframe *f = &w->stack[w->depth++];
  memset(f, 0, sizeof *f);
  f->kind = (unsigned char)kind;
  f->name = (top && top->kind == W_ARR) ? top->name : name;
  f->nlen = nlen > W_FAST_MAX ? UINT_MAX : (unsigned)nlen;
  return 0;
}

void fhir_w_resource_begin(fhir_writer *w, const char *name,
                           const char *type) {
  if (!type || !*type) {
    W_FAIL(w, HVG_EINVAL);
    return;
  }
  int top_level = w->depth == 0;
  if (w__push(w, W_RES, name, W_NLEN(name)))
    return;
  fhir__wframe *f = w__top(w);
  int idx = w->depth - 1;
  if (w__compact(w)) {
    fhir__wframe *p = top_level ? NULL : &w->stack[idx - 1];
    if (p && !p->opened)
      w__json_open(w, idx - 1);
    size_t ln = p && p->kind != W_ARR ? f->nlen : 0;
    size_t lt = strlen(type);
    char *o = w->err || ln > W_FAST_MAX || lt > W_FAST_MAX
                  ? NULL
                  : w__room(w, ln + lt + 23);
    if (o) {
      if (p)
        o = w__json_key(o, p, name, ln);
      f->start = (size_t)(o - w->out->data);
      memcpy(o, "{\"resourceType\":\"", 17);
      o += 17;
      memcpy(o, type, lt);
      o += lt;
      *o++ = '"';
      w__commit(w, o);
      f->opened = 1;
      f->count = 1;
      return;
    }
  }
  if (w->fmt == FHIR_JSON) {
    if (!top_level)
      w__child_prefix(w, idx - 1, name, 0);
    f->opened = 1;
    f->start = w->out->len;
    W_LIT(w, "{");
    w__indent(w, idx + 1);
    W_LIT(w, "\"resourceType\":");
    if (w->flags & FHIR_W_PRETTY)
      W_LIT(w, " ");
    W_LIT(w, "\"");
    w__adds(w, type);
    W_LIT(w, "\"");
    f->count = 1;
    return;
  }
  if (top_level) {
    if (!(w->flags & FHIR_W_NO_XMLDECL))
      W_LIT(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    if (!(w->flags & FHIR_W_NO_XMLDECL) && (w->flags & FHIR_W_PRETTY))
      W_LIT(w, "\n");
    W_LIT(w, "<");
    w__adds(w, type);
    W_LIT(w, " xmlns=\"http://hl7.org/fhir\">");
  } else {
    w__child_prefix(w, idx - 1, name, 0);
    w__indent(w, idx);
    f->outer = w__xml_name(w, idx - 1, name);
    W_LIT(w, "<");
    w__adds(w, f->outer);
    W_LIT(w, ">");
    w__indent(w, idx + 1);
    W_LIT(w, "<");
    w__adds(w, type);
    W_LIT(w, ">");
    f->wrapped = 1;
  }
  f->opened = 1;
  f->name = type; /* closing tag of the inner element */
}

static void w__pop(fhir_writer *w, int kind) {
  if (w->err)
    return;
  fhir__wframe *f = w__top(w);
  if (!f || f->kind != kind) {
    W_FAIL(w, HVG_ESTATE);
    return;
  }
  int idx = w->depth - 1;
  if (!f->opened) { /* nothing was written inside: leave no trace */
    w->depth--;
    return;
  }
  char *o = w__compact(w) ? w__room(w, 1) : NULL;
  if (o) {
    *o++ = kind == W_ARR ? ']' : '}';
    w__commit(w, o);
    w->depth--;
    return;
  }
  if (w->fmt == FHIR_JSON) {
    if (f->count)
      w__indent(w, idx);
    if (kind == W_ARR)
      W_LIT(w, "]");
    else
      W_LIT(w, "}");
  } else if (kind == W_RES) {
    w__indent(w, f->wrapped ? idx + 1 : idx);
    W_LIT(w, "</");
    w__adds(w, f->name);
    W_LIT(w, ">");
    if (f->wrapped) {
      w__indent(w, idx);
      W_LIT(w, "</");
      w__adds(w, f->outer);
      W_LIT(w, ">");
    }
  } else if (kind != W_ARR) {
    if (f->tag_open) {
      W_LIT(w, "/>");
    } else {
      w__indent(w, idx);
      W_LIT(w, "</");
      w__adds(w, w__xml_name(w, idx - 1, f->name));
      W_LIT(w, ">");
    }
  }
  w->depth--;
}

void fhir_w_resource_end(fhir_writer *w) { w__pop(w, W_RES); }

void fhir__w_object_begin(fhir_writer *w, const char *name, size_t name_len) {
  if (w__push(w, W_OBJ, name, name_len))
    return;
  fhir__wframe *f = w__top(w);
  /* XML only (url as an attribute); first letters first */
  f->is_ext = w->fmt == FHIR_XML && f->name &&
              ((f->name[0] == 'e' && strcmp(f->name, "extension") == 0) ||
               (f->name[0] == 'm' && strcmp(f->name, "modifierExtension") == 0));
}

void fhir_w_object_end(fhir_writer *w) { w__pop(w, W_OBJ); }

void fhir__w_array_begin(fhir_writer *w, const char *name, size_t name_len) {
  fhir__wframe *top = w__top(w);
  if (top && top->kind == W_ARR) { /* FHIR has no arrays of arrays */
    W_FAIL(w, HVG_EINVAL);
    return;
  }
  w__push(w, W_ARR, name, name_len);
}

void fhir_w_array_end(fhir_writer *w) { w__pop(w, W_ARR); }

/* Shared path of every primitive. kind: 's' string, 'n' number/bool text. */
static void w__prim(fhir_writer *w, const char *name, size_t ln, const char *v, size_t n,
                    char kind) {
  if (w->err)
    return;
  fhir__wframe *f = w__top(w);
  if (!f) {
    W_FAIL(w, HVG_ESTATE);
    return;
  }
  if (f->kind != W_ARR && !name) {
    W_FAIL(w, HVG_EINVAL);
    return;
  }
  int idx = w->depth - 1;
  if (w__compact(w) && n <= W_FAST_MAX) {
    if (!f->opened)
      w__json_open(w, idx);
    if (f->kind == W_ARR)
      ln = 0;
    char *o = w->err || ln > W_FAST_MAX
                  ? NULL
                  : w__room(w, ln + 6 + (kind == 's' ? 6 * n : n));
    if (o) {
      o = w__json_key(o, f, name, ln);
      if (kind == 's') {
        *o++ = '"';
        o = w__json_esc_copy(o, v, n);
        *o++ = '"';
      } else {
        memcpy(o, v, n);
        o += n;
      }
      w__commit(w, o);
      return;
    }
  }
  if (w->fmt == FHIR_JSON) {
    w__child_prefix(w, idx, name, 0);
    if (kind == 's') {
      W_LIT(w, "\"");
      w__json_escaped(w, v, n);
      W_LIT(w, "\"");
    } else {
      w__add(w, v, n);
    }
    return;
  }
  /* XML: id/url as attributes while the start tag is still open */
  if (f->kind == W_OBJ && name &&
      ((strcmp(name, "id") == 0) || (f->is_ext && strcmp(name, "url") == 0))) {
    if (!f->opened)
      w__open_frame(w, idx);
    if (f->attrs_ok) {
      f->count++;
      W_LIT(w, " ");
      w__adds(w, name);
      W_LIT(w, "=\"");
      w__xml_escaped(w, v, n);
      W_LIT(w, "\"");
      return;
    }
    W_FAIL(w, HVG_EORDER);
    return;
  }
  w__child_prefix(w, idx, name, 0);
  w__indent(w, f->kind == W_ARR ? idx : idx + 1);
  W_LIT(w, "<");
  w__adds(w, w__xml_name(w, idx, name));
  W_LIT(w, " value=\"");
  w__xml_escaped(w, v, n);
  W_LIT(w, "\"/>");
}

int fhir_w_compact(const fhir_writer *w) { return w__compact(w); }

size_t fhir_w_start(const fhir_writer *w) {
  if (!w__compact(w) || w->err || !w->depth ||
      !w->stack[w->depth - 1].opened)
    return SIZE_MAX;
  return w->stack[w->depth - 1].start;
}

void fhir_w_json(fhir_writer *w, const char *name, const char *json,
                 size_t len) {
  if (!w__compact(w) || !json || !len) {
    W_FAIL(w, HVG_EINVAL);
    return;
  }
  w__prim(w, name, W_NLEN(name), json, len, 'n');
}

void fhir_w_null(fhir_writer *w) {
  if (w->err)
    return;
  fhir__wframe *f = w__top(w);
  if (w->fmt != FHIR_JSON || !f || f->kind != W_ARR) {
    W_FAIL(w, HVG_EINVAL);
    return;
  }
  w__child_prefix(w, w->depth - 1, NULL, 0);
  W_LIT(w, "null");
}

void fhir__w_string(fhir_writer *w, const char *name, size_t name_len,
                    const char *value, size_t len) {
  if (!value || !len)
    return;
  w__prim(w, name, name_len, value, len, 's');
}

/* JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
 * Returns the length of s when it is one, else 0. */
static size_t w__json_number_len(const char *s) {
  const char *p = s;
  if (*p == '-')
    p++;
  if (*p == '0')
    p++;
  else if (*p >= '1' && *p <= '9')
    while (*p >= '0' && *p <= '9')
      p++;
  else
    return 0;
  if (*p == '.') {
    p++;
    if (!(*p >= '0' && *p <= '9'))
      return 0;
    while (*p >= '0' && *p <= '9')
      p++;
  }
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '+' || *p == '-')
      p++;
    if (!(*p >= '0' && *p <= '9'))
      return 0;
    while (*p >= '0' && *p <= '9')
      p++;
  }
  return *p == '\0' ? (size_t)(p - s) : 0;
}

void fhir_w_number(fhir_writer *w, const char *name, const char *text) {
  if (!text || !*text)
    return;
  size_t n = w__json_number_len(text);
  if (!n) {
    W_FAIL(w, HVG_EFORMAT);
    return;
  }
  w__prim(w, name, W_NLEN(name), text, n, 'n');
}

void fhir_w_int(fhir_writer *w, const char *name, long long value) {
  char tmp[32];
  int n = snprintf(tmp, sizeof tmp, "%lld", value);
  w__prim(w, name, W_NLEN(name), tmp, (size_t)n, 'n');
}

void fhir_w_bool(fhir_writer *w, const char *name, int value) {
  if (value)
    w__prim(w, name, W_NLEN(name), "true", 4, 'n');
  else
    w__prim(w, name, W_NLEN(name), "false", 5, 'n');
}

void fhir_w_xhtml(fhir_writer *w, const char *name, const char *div) {
  if (!div || !*div)
    return;
  if (w->fmt == FHIR_JSON) {
    w__prim(w, name, W_NLEN(name), div, strlen(div), 's');
    return;
  }
  if (w->err)
    return;
  int idx = w->depth - 1;
  if (idx < 0) {
    W_FAIL(w, HVG_ESTATE);
    return;
  }
  w__child_prefix(w, idx, name, 0);
  w__indent(w, idx + 1);
  w__adds(w, div);
}

void fhir_w_prim_begin(fhir_writer *w, const char *name, const char *value,
                       const char *id) {
  if (w->fmt != FHIR_XML) {
    W_FAIL(w, HVG_EINVAL);
    return;
  }
  if (w__push(w, W_PRIM, name, W_NLEN(name)))
    return;
  int idx = w->depth - 1;
  w__open_frame(w, idx);
  if (id && *id) {
    W_LIT(w, " id=\"");
    w__xml_escaped(w, id, strlen(id));
    W_LIT(w, "\"");
  }
  if (value && *value) {
    W_LIT(w, " value=\"");
    w__xml_escaped(w, value, strlen(value));
    W_LIT(w, "\"");
  }
  w->stack[idx].attrs_ok = 0;
}

void fhir_w_prim_end(fhir_writer *w) {
  if (w->err)
    return;
  fhir__wframe *f = w__top(w);
  if (!f || f->kind != W_PRIM) {
    W_FAIL(w, HVG_ESTATE);
    return;
  }
  f->kind = W_OBJ; /* closes exactly like an object */
  w__pop(w, W_OBJ);
}

int fhir_w_finish(fhir_writer *w) {
  if (w->out->data) /* w__add's fast path leaves the NUL out */
    w->out->data[w->out->len] = '\0';
  if (w->err)
    return w->err;
  if (w->depth)
    return HVG_ESTATE;
  if (w->flags & FHIR_W_PRETTY)
    w__add(w, "\n", 1);
  if (w->out->data)
    w->out->data[w->out->len] = '\0';
  return w->err;
}
