#include "hvg_jsonpos.h"

#include <string.h>

typedef struct jp__scan {
  const char *s;
  size_t len, i;
  unsigned long line;
} jp__scan;

static void jp__ws(jp__scan *p) {
  while (p->i < p->len) {
    char c = p->s[p->i];
    if (c == '\n')
      p->line++;
    else if (c != ' ' && c != '\t' && c != '\r')
      return;
    p->i++;
  }
}

/* Skips a string starting at '"'; returns 0 at a malformed end. */
static int jp__skip_string(jp__scan *p) {
  p->i++;
  while (p->i < p->len) {
    char c = p->s[p->i++];
    if (c == '\\')
      p->i++;
    else if (c == '"')
      return 1;
    else if (c == '\n')
      p->line++;
  }
  return 0;
}

static int jp__skip_value(jp__scan *p, int depth);

static int jp__skip_container(jp__scan *p, int depth) {
  char close = p->s[p->i] == '{' ? '}' : ']';
  int is_obj = close == '}';
  p->i++;
  for (;;) {
    jp__ws(p);
    if (p->i >= p->len)
      return 0;
    if (p->s[p->i] == close) {
      p->i++;
      return 1;
    }
    if (is_obj) {
      if (p->s[p->i] != '"' || !jp__skip_string(p))
        return 0;
      jp__ws(p);
      if (p->i >= p->len || p->s[p->i] != ':')
        return 0;
      p->i++;
    }
    if (!jp__skip_value(p, depth + 1))
      return 0;
    jp__ws(p);
    if (p->i < p->len && p->s[p->i] == ',')
      p->i++;
  }
}

static int jp__skip_value(jp__scan *p, int depth) {
  if (depth > 200)
    return 0;
  jp__ws(p);
  if (p->i >= p->len)
    return 0;
  char c = p->s[p->i];
  if (c == '"')
    return jp__skip_string(p);
  if (c == '{' || c == '[')
    return jp__skip_container(p, depth);
  while (p->i < p->len && !strchr(",}] \t\r\n", p->s[p->i]))
    p->i++;
  return 1;
}

/* Compares the JSON string at p->i (raw, escapes compared literally except
 * the pointer's own ~0 ~1) with pointer segment [seg, seg+n). */
static int jp__key_eq(const jp__scan *p, size_t start, size_t end,
                      const char *seg, size_t n) {
  size_t k = 0;
  for (size_t i = start; i < end; i++) {
    char want;
    if (k >= n)
      return 0;
    if (seg[k] == '~' && k + 1 < n && (seg[k + 1] == '0' || seg[k + 1] == '1')) {
      want = seg[k + 1] == '0' ? '~' : '/';
      k += 2;
    } else {
      want = seg[k++];
    }
    if (p->s[i] != want)
      return 0;
  }
  return k == n;
}

unsigned long hvg_jsonpos_line(const char *text, size_t len,
                               const char *pointer) {
  if (!text || !len)
    return 0;
  jp__scan p = {text, len, 0, 1};
  jp__ws(&p);
  if (p.i >= p.len)
    return 0;
  const char *ptr = pointer ? pointer : "";
  unsigned long found = p.line;
  while (*ptr == '/') {
    const char *seg = ptr + 1;
    const char *next = strchr(seg, '/');
    size_t n = next ? (size_t)(next - seg) : strlen(seg);
    ptr = seg + n;
    jp__ws(&p);
    if (p.i >= p.len)
      return found;
    char c = p.s[p.i];
    int ok = 0;
    if (c == '{') {
      p.i++;
      for (;;) {
        jp__ws(&p);
        if (p.i >= p.len || p.s[p.i] != '"')
          return found;
        size_t ks = p.i + 1;
        if (!jp__skip_string(&p))
          return found;
        size_t ke = p.i - 1;
        jp__ws(&p);
        if (p.i >= p.len || p.s[p.i] != ':')
          return found;
        p.i++;
        if (jp__key_eq(&p, ks, ke, seg, n)) {
          ok = 1;
          break;
        }
        if (!jp__skip_value(&p, 0))
          return found;
        jp__ws(&p);
        if (p.i < p.len && p.s[p.i] == ',')
          p.i++;
        else
          return found;
      }
    } else if (c == '[') {
      size_t idx = 0;
      for (size_t k = 0; k < n; k++) {
        if (seg[k] < '0' || seg[k] > '9')
          return found;
        idx = idx * 10 + (size_t)(seg[k] - '0');
      }
      p.i++;
      for (size_t k = 0;; k++) {
        jp__ws(&p);
        if (p.i >= p.len || p.s[p.i] == ']')
          return found;
        if (k == idx) {
          ok = 1;
          break;
        }
        if (!jp__skip_value(&p, 0))
          return found;
        jp__ws(&p);
        if (p.i < p.len && p.s[p.i] == ',')
          p.i++;
      }
    }
    if (!ok)
      return found;
    jp__ws(&p);
    found = p.line;
  }
  return found;
}
