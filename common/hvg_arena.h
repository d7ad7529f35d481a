/* hvg_arena — a per-record bump allocator.
 *
 * Hot paths (one source record -> one Bundle) allocate many small strings
 * that all die together; an arena makes that one reset instead of hundreds of
 * free() calls. Memory is capped: the arena refuses to grow past `max`. */
#ifndef HVG_ARENA_H
#define HVG_ARENA_H

#include <stddef.h>

typedef struct hvg__arena_chunk hvg__arena_chunk;

typedef struct hvg_arena {
  hvg__arena_chunk *head; /* current chunk; older chunks follow */
  size_t used;            /* bytes handed out across chunks */
  size_t max;             /* cap on chunk memory */
  size_t total;           /* chunk memory held */
} hvg_arena;

/* Start an empty arena capped at `max` bytes. Allocates nothing. */
void hvg_arena_init(hvg_arena *a, size_t max);

/* n bytes aligned for any type, or NULL when the cap is reached or malloc
 * fails (the arena is unchanged). */
void *hvg_arena_alloc(hvg_arena *a, size_t n);

/* Copy of s[0..n) plus a NUL, or NULL as hvg_arena_alloc. */
char *hvg_arena_strndup(hvg_arena *a, const char *s, size_t n);
char *hvg_arena_strdup(hvg_arena *a, const char *s);

/* printf into the arena; NULL on failure. */
char *hvg_arena_printf(hvg_arena *a, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Forget every allocation; keeps the largest chunk for reuse. */
void hvg_arena_reset(hvg_arena *a);

/* Release all memory. */
void hvg_arena_free(hvg_arena *a);

#endif
