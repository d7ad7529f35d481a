/* hvg_buf — a growable byte buffer with a hard size cap (curl's dynbuf idea).
 *
 * The content is always NUL-terminated (the NUL is not counted in len). A
 * buffer refuses to grow past `max` bytes: no input can make it unbounded. */
#ifndef HVG_BUF_H
#define HVG_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct hvg_buf {
  char *data; /* NULL until the first append */
  size_t len;
  size_t cap;
  size_t max; /* largest len allowed */
} hvg_buf;

/* Start an empty buffer that may hold at most `max` bytes. Allocates nothing. */
void hvg_buf_init(hvg_buf *b, size_t max);

/* Append n bytes. Returns 0, HVG_ETOOBIG past the cap or HVG_ENOMEM; on
 * error the buffer is unchanged. */
int hvg_buf_add(hvg_buf *b, const void *p, size_t n);
int hvg_buf_adds(hvg_buf *b, const char *s);
int hvg_buf_addc(hvg_buf *b, char c);

/* printf-style append, same contract as hvg_buf_add. */
int hvg_buf_printf(hvg_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int hvg_buf_vprintf(hvg_buf *b, const char *fmt, va_list ap)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 0)))
#endif
    ;

/* Append s as a quoted JSON string (", \\ and control characters
 * escaped). Same contract as hvg_buf_add; on error b is unchanged. */
int hvg_buf_add_json_str(hvg_buf *b, const char *s);

/* Make room for n more bytes; returns a pointer to write them at (commit with
 * hvg_buf_commit) or NULL on HVG_ETOOBIG/HVG_ENOMEM (buffer unchanged). */
char *hvg_buf_reserve(hvg_buf *b, size_t n);
void hvg_buf_commit(hvg_buf *b, size_t n);

/* Drop the content, keep the memory. */
void hvg_buf_reset(hvg_buf *b);

/* Cut the content back to `len` bytes (len <= b->len). */
void hvg_buf_truncate(hvg_buf *b, size_t len);

/* Hand the content over: returns a malloc'd NUL-terminated string the caller
 * frees (an empty string when nothing was added), stores its length in *len
 * if len is non-NULL, and leaves b empty. NULL on HVG_ENOMEM (b unchanged). */
char *hvg_buf_take(hvg_buf *b, size_t *len);

/* Release the memory; b is empty and reusable afterwards. */
void hvg_buf_free(hvg_buf *b);

#endif
