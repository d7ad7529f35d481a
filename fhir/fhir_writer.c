#include "fhir_writer.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

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

static void w__open_frame(fhir_writer *w, int idx) {
  fhir__wframe *f = &w->stack[idx];
  w__child_prefix(w, idx - 1, f->name, 0);
  f->opened = 1;
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

static int w__push(fhir_writer *w, int kind, const char *name) {
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
  return 0;
}

void fhir_w_resource_begin(fhir_writer *w, const char *name,
                           const char *type) {
  if (!type || !*type) {
    W_FAIL(w, HVG_EINVAL);
    return;
  }
  int top_level = w->depth == 0;
  if (w__push(w, W_RES, name))
    return;
  fhir__wframe *f = w__top(w);
  int idx = w->depth - 1;
  if (w->fmt == FHIR_JSON) {
    if (!top_level)
      w__child_prefix(w, idx - 1, name, 0);
    f->opened = 1;
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

void fhir_w_object_begin(fhir_writer *w, const char *name) {
  if (w__push(w, W_OBJ, name))
    return;
  fhir__wframe *f = w__top(w);
  /* first letters first: this runs for every object of every Bundle */
  f->is_ext = f->name &&
              ((f->name[0] == 'e' && strcmp(f->name, "extension") == 0) ||
               (f->name[0] == 'm' && strcmp(f->name, "modifierExtension") == 0));
}

void fhir_w_object_end(fhir_writer *w) { w__pop(w, W_OBJ); }

void fhir_w_array_begin(fhir_writer *w, const char *name) {
  fhir__wframe *top = w__top(w);
  if (top && top->kind == W_ARR) { /* FHIR has no arrays of arrays */
    W_FAIL(w, HVG_EINVAL);
    return;
  }
  w__push(w, W_ARR, name);
}

void fhir_w_array_end(fhir_writer *w) { w__pop(w, W_ARR); }

/* Shared path of every primitive. kind: 's' string, 'n' number/bool text. */
static void w__prim(fhir_writer *w, const char *name, const char *v, size_t n,
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

void fhir_w_stringn(fhir_writer *w, const char *name, const char *value,
                    size_t len) {
  if (!value || !len)
    return;
  w__prim(w, name, value, len, 's');
}

void fhir_w_string(fhir_writer *w, const char *name, const char *value) {
  if (!value || !*value)
    return;
  w__prim(w, name, value, strlen(value), 's');
}

/* JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int w__is_json_number(const char *s) {
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
  return *p == '\0';
}

void fhir_w_number(fhir_writer *w, const char *name, const char *text) {
  if (!text || !*text)
    return;
  if (!w__is_json_number(text)) {
    W_FAIL(w, HVG_EFORMAT);
    return;
  }
  w__prim(w, name, text, strlen(text), 'n');
}

void fhir_w_int(fhir_writer *w, const char *name, long long value) {
  char tmp[32];
  int n = snprintf(tmp, sizeof tmp, "%lld", value);
  w__prim(w, name, tmp, (size_t)n, 'n');
}

void fhir_w_bool(fhir_writer *w, const char *name, int value) {
  if (value)
    w__prim(w, name, "true", 4, 'n');
  else
    w__prim(w, name, "false", 5, 'n');
}

void fhir_w_xhtml(fhir_writer *w, const char *name, const char *div) {
  if (!div || !*div)
    return;
  if (w->fmt == FHIR_JSON) {
    w__prim(w, name, div, strlen(div), 's');
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
  if (w__push(w, W_PRIM, name))
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
