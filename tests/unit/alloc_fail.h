/* Allocation-failure injection for the torture tests (curl's idea): a test
 * that includes this is linked with -Wl,--wrap=malloc,--wrap=calloc,
 * --wrap=realloc (tests/CMakeLists.txt), so every allocation our own code
 * makes goes through these. With fail_at = k >= 0 the k-th allocation
 * counted from alloc_count = 0 fails; fail_at = -1 fails none. Shared
 * libraries' own allocations (SQLite, cJSON, libc) are not wrapped. */
#ifndef HVG_TEST_ALLOC_FAIL_H
#define HVG_TEST_ALLOC_FAIL_H

#include <stddef.h>

static long fail_at = -1, alloc_count;

void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);

static inline int should_fail(void) {
  return fail_at >= 0 && alloc_count++ == fail_at;
}

void *__wrap_malloc(size_t n);
void *__wrap_malloc(size_t n) {
  return should_fail() ? NULL : __real_malloc(n);
}
void *__wrap_calloc(size_t a, size_t b);
void *__wrap_calloc(size_t a, size_t b) {
  return should_fail() ? NULL : __real_calloc(a, b);
}
void *__wrap_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n) {
  return should_fail() ? NULL : __real_realloc(p, n);
}

#endif
