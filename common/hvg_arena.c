#include "hvg_arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hvg__arena_chunk {
  hvg__arena_chunk *next;
  size_t size; /* usable bytes in mem */
  size_t off;
  max_align_t mem[];
};

#define HVG__ARENA_MIN_CHUNK ((size_t)16 * 1024)
#define HVG__ALIGN (sizeof(max_align_t))

void hvg_arena_init(hvg_arena *a, size_t max) {
  a->head = NULL;
  a->used = 0;
  a->max = max;
  a->total = 0;
}

void *hvg_arena_alloc(hvg_arena *a, size_t n) {
  if (n == 0)
    n = 1;
  if (n > SIZE_MAX - HVG__ALIGN)
    return NULL;
  size_t need = (n + HVG__ALIGN - 1) & ~(HVG__ALIGN - 1);
  hvg__arena_chunk *c = a->head;
  if (!c || c->size - c->off < need) {
    size_t size = HVG__ARENA_MIN_CHUNK;
    if (c && c->size * 2 > size)
      size = c->size * 2;
    while (size < need)
      size *= 2;
    if (a->total + size > a->max) {
      size = need; /* last resort: exactly what is asked */
      if (a->total + size > a->max)
        return NULL;
    }
    hvg__arena_chunk *nc = malloc(sizeof *nc + size);
    if (!nc)
      return NULL;
    nc->next = c;
    nc->size = size;
    nc->off = 0;
    a->head = nc;
    a->total += size;
    c = nc;
  }
  void *p = (char *)c->mem + c->off;
  c->off += need;
  a->used += need;
  return p;
}

char *hvg_arena_strndup(hvg_arena *a, const char *s, size_t n) {
  char *p = hvg_arena_alloc(a, n + 1);
  if (!p)
    return NULL;
  if (n)
    memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *hvg_arena_strdup(hvg_arena *a, const char *s) {
  return hvg_arena_strndup(a, s, strlen(s));
}

char *hvg_arena_printf(hvg_arena *a, const char *fmt, ...) {
  va_list ap, cp;
  va_start(ap, fmt);
  va_copy(cp, ap);
  int n = vsnprintf(NULL, 0, fmt, cp);
  va_end(cp);
  char *p = n < 0 ? NULL : hvg_arena_alloc(a, (size_t)n + 1);
  if (p)
    vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return p;
}

void hvg_arena_reset(hvg_arena *a) {
  /* Keep the head (the newest, largest chunk); free older ones. */
  hvg__arena_chunk *c = a->head;
  if (!c)
    return;
  hvg__arena_chunk *old = c->next;
  while (old) {
    hvg__arena_chunk *next = old->next;
    a->total -= old->size;
    free(old);
    old = next;
  }
  c->next = NULL;
  c->off = 0;
  a->used = 0;
}

void hvg_arena_free(hvg_arena *a) {
  hvg__arena_chunk *c = a->head;
  while (c) {
    hvg__arena_chunk *next = c->next;
    free(c);
    c = next;
  }
  hvg_arena_init(a, a->max);
}
