#include "hvg_jconf.h"

#include "hvg_err.h"
#include "hvg_jsonpos.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *hvg_read_file(const char *path, size_t max, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  hvg_buf b;
  hvg_buf_init(&b, max);
  char tmp[8192];
  size_t n;
  int rc = 0;
  while (!rc && (n = fread(tmp, 1, sizeof tmp, f)) > 0)
    rc = hvg_buf_add(&b, tmp, n);
  int bad = ferror(f);
  fclose(f);
  if (rc || bad) {
    hvg_buf_free(&b);
    errno = rc == HVG_ETOOBIG ? EFBIG : (rc ? ENOMEM : EIO);
    return NULL;
  }
  return hvg_buf_take(&b, len);
}

cJSON *hvg_jconf_open(hvg_jconf *l, const char *path, size_t max,
                      char **text) {
  size_t len = 0;
  *text = hvg_read_file(path, max, &len);
  l->path = path;
  l->text = *text;
  l->len = len;
  if (!*text) {
    l->errors++;
    if (l->diag)
      hvg_buf_printf(l->diag, "%s: cannot read: %s\n", path, strerror(errno));
    return NULL;
  }
  cJSON *root = cJSON_ParseWithLength(*text, len);
  if (!root || !cJSON_IsObject(root)) {
    l->errors++;
    if (l->diag) {
      /* cJSON's error pointer is its only position report */
      const char *at = root ? NULL : cJSON_GetErrorPtr();
      unsigned long line = 1;
      for (const char *q = *text; at && q < at && *q; q++)
        line += *q == '\n';
      hvg_buf_printf(l->diag, "%s:%lu: not a valid JSON object\n", path, line);
    }
    cJSON_Delete(root);
    return NULL;
  }
  return root;
}

void hvg_jconf_err(hvg_jconf *l, const char *ptr, const char *fmt, ...) {
  l->errors++;
  if (!l->diag)
    return;
  unsigned long line = l->text ? hvg_jsonpos_line(l->text, l->len, ptr) : 0;
  hvg_buf_printf(l->diag, "%s:%lu: %s: ", l->path, line, ptr);
  va_list ap;
  va_start(ap, fmt);
  hvg_buf_vprintf(l->diag, fmt, ap);
  va_end(ap);
  hvg_buf_addc(l->diag, '\n');
}

void hvg_jconf_ptr(char *dst, size_t cap, const char *base, const char *key) {
  size_t n = (size_t)snprintf(dst, cap, "%s/", base);
  for (const char *k = key; *k && n + 3 < cap; k++) {
    if (*k == '~') {
      dst[n++] = '~';
      dst[n++] = '0';
    } else if (*k == '/') {
      dst[n++] = '~';
      dst[n++] = '1';
    } else {
      dst[n++] = *k;
    }
  }
  dst[n < cap ? n : cap - 1] = '\0';
}

void hvg_jconf_only(hvg_jconf *l, const cJSON *obj, const char *ptr,
                    const char *const *allowed) {
  const cJSON *it;
  if (!cJSON_IsObject(obj))
    return;
  cJSON_ArrayForEach(it, obj) {
    int ok = 0;
    for (const char *const *a = allowed; *a && !ok; a++)
      ok = strcmp(*a, it->string) == 0;
    if (ok)
      continue;
    char p[512];
    hvg_jconf_ptr(p, sizeof p, ptr, it->string);
    if (it->string[0] != '$' && strcmp(it->string, "description"))
      hvg_jconf_err(l, p, "unknown key '%s'", it->string);
    else if (!cJSON_IsString(it) && (!strcmp(it->string, "description") ||
                                     !strcmp(it->string, "$schema")))
      hvg_jconf_err(l, p, "'%s' must be a string", it->string);
    /* other "$..." keys are the author's comments, of any type */
  }
}

const char *hvg_jconf_str(hvg_jconf *l, const cJSON *obj, const char *key,
                          const char *ptr, int required) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  char p[512];
  hvg_jconf_ptr(p, sizeof p, ptr, key);
  if (!v || cJSON_IsNull(v)) {
    if (required)
      hvg_jconf_err(l, ptr, "required key '%s' is missing", key);
    return NULL;
  }
  if (!cJSON_IsString(v) || !v->valuestring[0]) {
    hvg_jconf_err(l, p, "must be a non-empty string");
    return NULL;
  }
  const char *d = hvg_arena_strdup(l->arena, v->valuestring);
  if (!d)
    l->nomem = 1;
  return d;
}

const char **hvg_jconf_strv(hvg_jconf *l, const cJSON *obj, const char *key,
                            const char *ptr, size_t *n) {
  *n = 0;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v)
    return NULL;
  char p[512];
  hvg_jconf_ptr(p, sizeof p, ptr, key);
  if (!cJSON_IsArray(v)) {
    hvg_jconf_err(l, p, "must be an array of strings");
    return NULL;
  }
  size_t cnt = (size_t)cJSON_GetArraySize(v);
  const char **out = hvg_arena_alloc(l->arena, (cnt + 1) * sizeof *out);
  if (!out) {
    l->nomem = 1;
    return NULL;
  }
  const cJSON *it;
  size_t k = 0, i = 0;
  cJSON_ArrayForEach(it, v) {
    if (!cJSON_IsString(it) || !it->valuestring[0]) {
      char ip[540];
      snprintf(ip, sizeof ip, "%s/%zu", p, i++);
      hvg_jconf_err(l, ip, "must be a non-empty string");
      continue;
    }
    if (!(out[k++] = hvg_arena_strdup(l->arena, it->valuestring)))
      l->nomem = 1;
    i++;
  }
  out[k] = NULL;
  *n = k;
  return out;
}

long hvg_jconf_int(hvg_jconf *l, const cJSON *obj, const char *key,
                   const char *ptr, long min, long max, long def) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v)
    return def;
  char p[512];
  hvg_jconf_ptr(p, sizeof p, ptr, key);
  double d = cJSON_IsNumber(v) ? v->valuedouble : 0.5;
  if (d != (double)(long)d || d < (double)min || d > (double)max) {
    hvg_jconf_err(l, p, "must be a whole number from %ld to %ld", min, max);
    return def;
  }
  return (long)d;
}

int hvg_jconf_bool(hvg_jconf *l, const cJSON *obj, const char *key,
                   const char *ptr, int def) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v)
    return def;
  if (!cJSON_IsBool(v)) {
    char p[512];
    hvg_jconf_ptr(p, sizeof p, ptr, key);
    hvg_jconf_err(l, p, "must be true or false");
    return def;
  }
  return cJSON_IsTrue(v);
}

const char *hvg_jconf_relpath(hvg_jconf *l, const char *file,
                              const char *rel) {
  const char *slash = strrchr(file, '/');
  char *s = rel[0] == '/' || !slash
                ? hvg_arena_strdup(l->arena, rel)
                : hvg_arena_printf(l->arena, "%.*s/%s", (int)(slash - file),
                                   file, rel);
  if (!s)
    l->nomem = 1;
  return s;
}
