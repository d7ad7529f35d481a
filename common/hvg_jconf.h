/* hvg_jconf — reading hand-written JSON configuration files (the gateway
 * config, mapping files, catalogues) with every mistake reported as
 * "file:line: /json/pointer: reason" and reading going on, so that a user
 * sees all errors of a file at once.
 *
 * Messages go to a diagnostics buffer; the reader only counts them
 * (l->errors) and never prints. Strings copied out of the tree live in the
 * caller's arena. */
#ifndef HVG_JCONF_H
#define HVG_JCONF_H

#include "hvg_arena.h"
#include "hvg_buf.h"

#include <cjson/cJSON.h>
#include <stddef.h>

typedef struct hvg_jconf {
  const char *path; /* the file, for messages */
  const char *text; /* its text, for line numbers (not owned) */
  size_t len;
  hvg_buf *diag;    /* messages, one per line; NULL: count only */
  hvg_arena *arena; /* copies of strings */
  int errors;       /* messages so far */
  int nomem;        /* an allocation failed: results are incomplete */
} hvg_jconf;

/* Reads a whole file of at most max bytes. Returns a malloc'd NUL-terminated
 * copy (the caller frees it) and its length, or NULL with errno set (EFBIG
 * when larger than max). */
char *hvg_read_file(const char *path, size_t max, size_t *len);

/* Reads and parses `path`, which must hold a JSON object, and points l at
 * it. Returns the tree (the caller frees it with cJSON_Delete) and the text
 * in *text (the caller frees it; it must outlive l's use). On failure
 * returns NULL, reports why ("cannot read: ..." or "line N: not a valid JSON
 * object") and sets *text to the text when the file could be read, NULL
 * when it could not. */
cJSON *hvg_jconf_open(hvg_jconf *l, const char *path, size_t max, char **text);

/* Reports an error at the JSON pointer ptr (its line found in l->text). */
void hvg_jconf_err(hvg_jconf *l, const char *ptr, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* dst = base + "/" + key, key escaped per RFC 6901, truncated to cap. */
void hvg_jconf_ptr(char *dst, size_t cap, const char *base, const char *key);

/* Reports every member of obj (at ptr) not in the NULL-terminated allowed
 * list: typo protection. "description", "$schema" (strings) and other
 * "$..." keys (comments) are always allowed. Does nothing when obj is not an
 * object (the caller reports the type). */
void hvg_jconf_only(hvg_jconf *l, const cJSON *obj, const char *ptr,
                    const char *const *allowed);

/* obj[key] as a non-empty string copied into the arena; NULL when absent or
 * null (an error if required) or not a non-empty string (an error). */
const char *hvg_jconf_str(hvg_jconf *l, const cJSON *obj, const char *key,
                          const char *ptr, int required);

/* obj[key] as an array of non-empty strings copied into the arena
 * (NULL-terminated, count in *n); NULL with *n = 0 when absent; an error when
 * not such an array. */
const char **hvg_jconf_strv(hvg_jconf *l, const cJSON *obj, const char *key,
                            const char *ptr, size_t *n);

/* obj[key] as a whole number in [min, max]; def when absent. Errors as
 * hvg_jconf_str; returns def on error. */
long hvg_jconf_int(hvg_jconf *l, const cJSON *obj, const char *key,
                   const char *ptr, long min, long max, long def);

/* obj[key] as true/false; def when absent; an error otherwise. */
int hvg_jconf_bool(hvg_jconf *l, const cJSON *obj, const char *key,
                   const char *ptr, int def);

/* rel resolved against the directory of file (rel as is when absolute), in
 * the arena; NULL when out of memory (l->nomem set). */
const char *hvg_jconf_relpath(hvg_jconf *l, const char *file, const char *rel);

#endif
