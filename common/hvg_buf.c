#include "hvg_buf.h"

#include "hvg_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hvg_buf_init(hvg_buf *b, size_t max) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
}

static int hvg__buf_grow(hvg_buf *b, size_t n) {
  if (n > b->max || b->len > b->max - n)
    return HVG_ETOOBIG;
  size_t need = b->len + n + 1;
  if (need <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need)
    cap = cap > (size_t)-1 / 2 ? need : cap * 2;
  if (cap > b->max + 1)
    cap = b->max + 1;
  char *p = realloc(b->data, cap);
  if (!p)
    return HVG_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int hvg_buf_add(hvg_buf *b, const void *p, size_t n) {
  /* fast path: room already there (the cap was checked when it was made) */
  if (n < b->cap - b->len && b->len + n <= b->max) {
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
  }
  int rc = hvg__buf_grow(b, n);
  if (rc)
    return rc;
  if (n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int hvg_buf_adds(hvg_buf *b, const char *s) { return hvg_buf_add(b, s, strlen(s)); }

int hvg_buf_addc(hvg_buf *b, char c) {
  if (b->len + 1 < b->cap) { /* fast path: room for the byte and the NUL */
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
    return 0;
  }
  return hvg_buf_add(b, &c, 1);
}

int hvg_buf_vprintf(hvg_buf *b, const char *fmt, va_list ap) {
  char small[256];
  va_list cp;
  va_copy(cp, ap);
  int n = vsnprintf(small, sizeof small, fmt, cp);
  va_end(cp);
  if (n < 0)
    return HVG_EINVAL;
  if ((size_t)n < sizeof small)
    return hvg_buf_add(b, small, (size_t)n);
  int rc = hvg__buf_grow(b, (size_t)n);
  if (rc)
    return rc;
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return 0;
}

int hvg_buf_printf(hvg_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = hvg_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

char *hvg_buf_reserve(hvg_buf *b, size_t n) {
  if (hvg__buf_grow(b, n))
    return NULL;
  return b->data + b->len;
}

void hvg_buf_commit(hvg_buf *b, size_t n) {
  b->len += n;
  b->data[b->len] = '\0';
}

void hvg_buf_reset(hvg_buf *b) {
  b->len = 0;
  if (b->data)
    b->data[0] = '\0';
}

void hvg_buf_truncate(hvg_buf *b, size_t len) {
  if (len < b->len) {
    b->len = len;
    b->data[len] = '\0';
  }
}

char *hvg_buf_take(hvg_buf *b, size_t *len) {
  char *p = b->data;
  if (!p) {
    p = malloc(1);
    if (!p)
      return NULL;
    p[0] = '\0';
  }
  if (len)
    *len = b->len;
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  return p;
}

void hvg_buf_free(hvg_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

int hvg_buf_add_json_str(hvg_buf *b, const char *s) {
  size_t mark = b->len;
  int rc = hvg_buf_addc(b, '"');
  for (const unsigned char *c = (const unsigned char *)s; !rc && *c; c++) {
    if (*c == '"' || *c == '\\')
      rc = hvg_buf_printf(b, "\\%c", *c);
    else if (*c < 0x20)
      rc = hvg_buf_printf(b, "\\u%04x", *c);
    else
      rc = hvg_buf_addc(b, (char)*c);
  }
  if (!rc)
    rc = hvg_buf_addc(b, '"');
  if (rc && b->data)
    hvg_buf_truncate(b, mark);
  return rc;
}
