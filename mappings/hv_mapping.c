#include "hv_mapping.h"

#include "fhir_check.h"
#include "hv_catalog.h"
#include "hvg_jconf.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HV__MAPPING_MAX_FILE ((size_t)4 * 1024 * 1024)

/* ---- dates ------------------------------------------------------------ */

int hv_date_pattern_ok(const char *p) {
  if (!p || !*p)
    return 0;
  int y = 0, m = 0, d = 0;
  while (*p) {
    if (strncmp(p, "YYYY", 4) == 0) {
      y++;
      p += 4;
    } else if (*p == 'M') {
      m++;
      p += p[1] == 'M' ? 2 : 1;
    } else if (*p == 'D') {
      d++;
      p += p[1] == 'D' ? 2 : 1;
    } else if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
               (*p >= '0' && *p <= '9')) {
      return 0;
    } else {
      p++;
    }
  }
  return y == 1 && m == 1 && d == 1;
}

/* Reads exactly n digits (fixed) or 1..max digits (variable). */
static int hv__digits(const char **s, int fixed, int max, int *out) {
  int v = 0, k = 0;
  while (k < max && (*s)[k] >= '0' && (*s)[k] <= '9')
    v = v * 10 + ((*s)[k++] - '0');
  if (k == 0 || (fixed && k != max))
    return -1;
  *s += k;
  *out = v;
  return 0;
}

int hv_date_parse(const char *p, const char *s, char out[11]) {
  int y = -1, m = -1, d = -1;
  if (!p || !s)
    return HVG_EINVAL;
  while (*p) {
    if (p[0] == 'Y' && p[1] == 'Y' && p[2] == 'Y' && p[3] == 'Y') {
      if (hv__digits(&s, 1, 4, &y))
        return HVG_EFORMAT;
      p += 4;
    } else if (*p == 'M' || *p == 'D') {
      int two = p[1] == *p;
      int *dst = *p == 'M' ? &m : &d;
      if (hv__digits(&s, two, 2, dst))
        return HVG_EFORMAT;
      p += two ? 2 : 1;
    } else {
      if (*s != *p)
        return HVG_EFORMAT;
      s++;
      p++;
    }
  }
  if (*s || y < 0 || m < 0 || d < 0)
    return HVG_EFORMAT;
  if (y > 9999 || m > 99 || d > 99)
    return HVG_EFORMAT;
  out[0] = (char)('0' + y / 1000);
  out[1] = (char)('0' + y / 100 % 10);
  out[2] = (char)('0' + y / 10 % 10);
  out[3] = (char)('0' + y % 10);
  out[4] = '-';
  out[5] = (char)('0' + m / 10);
  out[6] = (char)('0' + m % 10);
  out[7] = '-';
  out[8] = (char)('0' + d / 10);
  out[9] = (char)('0' + d % 10);
  out[10] = '\0';
  return fhir_check_full_date(out) ? 0 : HVG_ERANGE;
}

/* 1 when the pattern at p starts a number token (YYYY, M, MM, D, DD). */
static int hv__date_token(const char *p) {
  return strncmp(p, "YYYY", 4) == 0 || *p == 'M' || *p == 'D';
}

int hv_date_format(const char *p, const char *iso, char *out, size_t cap) {
  if (out && cap)
    out[0] = '\0';
  if (!p || !iso || !out || !hv_date_pattern_ok(p))
    return HVG_EINVAL;
  if (!fhir_check_full_date(iso))
    return HVG_EFORMAT;
  int y = atoi(iso), m = atoi(iso + 5), d = atoi(iso + 8);
  size_t n = 0;
  while (*p) {
    char t[5];
    size_t k;
    if (strncmp(p, "YYYY", 4) == 0) {
      k = (size_t)snprintf(t, sizeof t, "%04d", y);
      p += 4;
    } else if (*p == 'M' || *p == 'D') {
      int v = *p == 'M' ? m : d;
      int two = p[1] == *p;
      p += two ? 2 : 1;
      k = (size_t)snprintf(t, sizeof t,
                           two || hv__date_token(p) ? "%02d" : "%d", v);
    } else {
      t[0] = *p++;
      k = 1;
    }
    if (n + k >= cap) {
      out[0] = '\0';
      return HVG_ETOOBIG;
    }
    memcpy(out + n, t, k);
    n += k;
  }
  out[n] = '\0';
  return 0;
}

/* ---- loader ----------------------------------------------------------- */

typedef struct hv__ml {
  hvg_jconf j;
  hv_mapping *m;
} hv__ml;

static const char *hv__ml_dup(hv__ml *l, const char *s) {
  const char *d = hvg_arena_strdup(&l->m->arena, s);
  if (!d)
    l->j.nomem = 1;
  return d;
}

static int hv__encoding(const char *s, hv_encoding *out) {
  if (!strcasecmp(s, "utf-8") || !strcasecmp(s, "utf8"))
    *out = HV_ENC_UTF8;
  else if (!strcasecmp(s, "latin1") || !strcasecmp(s, "iso-8859-1"))
    *out = HV_ENC_LATIN1;
  else if (!strcasecmp(s, "cp1252") || !strcasecmp(s, "windows-1252"))
    *out = HV_ENC_CP1252;
  else
    return -1;
  return 0;
}

static int hv__format(const char *s, hv_input_format *out) {
  static const char *const names[] = {"csv", "json", "ndjson", "xml"};
  for (int i = 0; i < 4; i++)
    if (!strcasecmp(s, names[i])) {
      *out = (hv_input_format)i;
      return 0;
    }
  return -1;
}

/* A constant the mapping supplies for a coded field (value, default, map
 * target) must be one of the field's canonical codes, or every record would
 * be rejected at map time; lists (consent scope) are checked item by item. */
static void hv__ml_code(hv__ml *l, hv_field f, const char *ptr, const char *key,
                        const char *v) {
  const char *const *codes = hv_field_codes(f);
  if (!v || !codes)
    return;
  const hv_field_info *fi = hv_field_get(f);
  for (const char *p = v; *p;) {
    size_t n = fi->type == HV_T_LIST ? strcspn(p, ",") : strlen(p);
    int ok = 0;
    for (const char *const *c = codes; *c && !ok; c++)
      ok = strlen(*c) == n && strncasecmp(*c, p, n) == 0;
    if (!ok) {
      char cp[600], list[256] = "";
      hvg_jconf_ptr(cp, sizeof cp, ptr, key);
      for (const char *const *c = codes; *c; c++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                 c == codes ? "" : ", ", *c);
      hvg_jconf_err(&l->j, cp, "'%.*s' is not a code of %s (%s)", (int)n, p,
                 fi->name, list);
      return;
    }
    p += n + (p[n] == ',');
  }
}

/* A field spec's "date_format" (date fields only). */
static void hv__ml_date_format(hv__ml *l, const cJSON *jf, const char *ptr,
                               hv_fieldmap *fm) {
  fm->date_format = hvg_jconf_str(&l->j, jf, "date_format", ptr, 0);
  const hv_field_info *fi = hv_field_get(fm->field);
  if (fm->date_format) {
    char p[512];
    hvg_jconf_ptr(p, sizeof p, ptr, "date_format");
    if (fi->type != HV_T_DATE)
      hvg_jconf_err(&l->j, p, "only date fields take a date_format");
    else if (!hv_date_pattern_ok(fm->date_format))
      hvg_jconf_err(&l->j, p,
                 "'%s' is not a date pattern (use YYYY, MM or M, DD or D "
                 "and separators, e.g. MM/DD/YYYY)",
                 fm->date_format);
  }
}

/* A field spec's "map" of source labels to canonical values. */
static void hv__ml_map(hv__ml *l, const cJSON *jf, const char *ptr,
                       hv_fieldmap *fm) {
  const cJSON *map = cJSON_GetObjectItemCaseSensitive(jf, "map");
  if (map) {
    char p[512];
    hvg_jconf_ptr(p, sizeof p, ptr, "map");
    if (!cJSON_IsObject(map)) {
      hvg_jconf_err(&l->j, p, "must be an object of \"source label\": \"code\"");
      return;
    }
    size_t n = (size_t)cJSON_GetArraySize(map);
    hv_valmap *vm = n ? hvg_arena_alloc(&l->m->arena, n * sizeof *vm) : NULL;
    if (n && !vm) {
      l->j.nomem = 1;
      return;
    }
    size_t k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, map) {
      char ip[600];
      hvg_jconf_ptr(ip, sizeof ip, p, it->string);
      if (!cJSON_IsString(it)) {
        hvg_jconf_err(&l->j, ip, "must map to a string");
        continue;
      }
      hv__ml_code(l, fm->field, p, it->string, it->valuestring);
      vm[k].from = hv__ml_dup(l, it->string);
      vm[k].to = hv__ml_dup(l, it->valuestring);
      k++;
    }
    fm->map = vm;
    fm->n_map = k;
  }
}

static void hv__ml_field(hv__ml *l, hv_source *src, const cJSON *jf,
                         const char *ptr, hv_fieldmap *fm) {
  if (cJSON_IsString(jf)) {
    if (!jf->valuestring[0])
      hvg_jconf_err(&l->j, ptr, "source key must not be empty");
    fm->from = hv__ml_dup(l, jf->valuestring);
    return;
  }
  if (!cJSON_IsObject(jf)) {
    hvg_jconf_err(&l->j, ptr, "must be a source key string or an object");
    return;
  }
  static const char *const keys[] = {"from", "value", "default", "required",
                                     "date_format", "map", NULL};
  hvg_jconf_only(&l->j, jf, ptr, keys);
  fm->from = hvg_jconf_str(&l->j, jf, "from", ptr, 0);
  fm->value = hvg_jconf_str(&l->j, jf, "value", ptr, 0);
  fm->def = hvg_jconf_str(&l->j, jf, "default", ptr, 0);
  const cJSON *req = cJSON_GetObjectItemCaseSensitive(jf, "required");
  if (req) {
    if (!cJSON_IsBool(req)) {
      char p[512];
      hvg_jconf_ptr(p, sizeof p, ptr, "required");
      hvg_jconf_err(&l->j, p, "must be true or false");
    }
    fm->required = cJSON_IsTrue(req);
  }
  if (!fm->from && !fm->value && !fm->def)
    hvg_jconf_err(&l->j, ptr, "needs 'from', 'value' or 'default'");
  if (fm->from && fm->value)
    hvg_jconf_err(&l->j, ptr, "'from' and 'value' exclude each other");
  hv__ml_code(l, fm->field, ptr, "value", fm->value);
  hv__ml_code(l, fm->field, ptr, "default", fm->def);
  hv__ml_date_format(l, jf, ptr, fm);
  hv__ml_map(l, jf, ptr, fm);
  (void)src;
}

/* CSV without a header: a key "#N" (1 <= N <= 1024) gives N, else 0. */
static int hv__colnum(const char *key) {
  if (key[0] != '#' || key[1] < '1' || key[1] > '9')
    return 0;
  long n = 0;
  for (const char *p = key + 1; *p; p++) {
    if (*p < '0' || *p > '9' || n > 1024)
      return 0;
    n = n * 10 + (*p - '0');
  }
  return n <= 1024 ? (int)n : 0;
}

/* One member of "export_fields": a column (string) or {from, map,
 * date_format}. What only makes sense on input (a constant, a default, a
 * required flag) is refused with its own message rather than as an unknown
 * key, since the key is valid under "fields". */
static void hv__ml_export_field(hv__ml *l, const cJSON *jf, const char *ptr,
                                hv_fieldmap *fm) {
  if (cJSON_IsString(jf)) {
    if (!jf->valuestring[0])
      hvg_jconf_err(&l->j, ptr, "column must not be empty");
    fm->from = hv__ml_dup(l, jf->valuestring);
    return;
  }
  if (!cJSON_IsObject(jf)) {
    hvg_jconf_err(&l->j, ptr,
                  "must be a column string or an object {from, map, "
                  "date_format}");
    return;
  }
  static const char *const export_keys[] = {"from", "date_format", "map", NULL};
  static const char *const input_only_keys[] = {"value", "default", "required",
                                                NULL};
  const char *allowed[8];
  size_t n = 0;
  for (const char *const *k = export_keys; *k; k++)
    allowed[n++] = *k;
  for (const char *const *k = input_only_keys; *k; k++)
    allowed[n++] = *k;
  allowed[n] = NULL;
  hvg_jconf_only(&l->j, jf, ptr, allowed);
  for (const char *const *k = input_only_keys; *k; k++) {
    if (!cJSON_GetObjectItemCaseSensitive(jf, *k))
      continue;
    char p[600];
    hvg_jconf_ptr(p, sizeof p, ptr, *k);
    hvg_jconf_err(&l->j, p,
                  "'%s' is not allowed in export_fields: an export column "
                  "holds the record's own value (only 'from', 'map' and "
                  "'date_format')",
                  *k);
  }
  fm->from = hvg_jconf_str(&l->j, jf, "from", ptr, 0);
  if (!fm->from && !cJSON_GetObjectItemCaseSensitive(jf, "from"))
    hvg_jconf_err(&l->j, ptr, "needs 'from', the column to write");
  hv__ml_date_format(l, jf, ptr, fm);
  hv__ml_map(l, jf, ptr, fm);
}

/* A source's "export_fields": canonical field -> column, for the export
 * layout only. Checked after "fields", whose columns they must not reuse. */
static void hv__ml_export_fields(hv__ml *l, const cJSON *js, const char *ptr,
                                 hv_source *src) {
  const cJSON *ef = cJSON_GetObjectItemCaseSensitive(js, "export_fields");
  if (!ef)
    return;
  char p[512];
  hvg_jconf_ptr(p, sizeof p, ptr, "export_fields");
  if (!cJSON_IsObject(ef)) {
    hvg_jconf_err(&l->j, p,
                  "'export_fields' must be an object of canonical field: "
                  "column");
    return;
  }
  size_t n = (size_t)cJSON_GetArraySize(ef);
  src->export_fields =
      n ? hvg_arena_alloc(&l->m->arena, n * sizeof *src->export_fields) : NULL;
  if (n && !src->export_fields) {
    l->j.nomem = 1;
    return;
  }
  int headless = src->ropts.format == HV_IN_CSV && src->ropts.no_header;
  size_t k = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, ef) {
    char fp[600];
    hvg_jconf_ptr(fp, sizeof fp, p, it->string);
    int f = hv_field_lookup(it->string);
    if (f < 0) {
      hvg_jconf_err(&l->j, fp,
                    "'%s' is not a canonical field (see docs/mapping.md)",
                    it->string);
      continue;
    }
    if (!(hv_field_get((hv_field)f)->flags & (1u << src->type))) {
      hvg_jconf_err(&l->j, fp, "'%s' does not apply to %s records", it->string,
                    hv_rectype_name(src->type));
      continue;
    }
    int twice = 0;
    for (size_t i = 0; i < k && !twice; i++)
      twice = src->export_fields[i].field == (hv_field)f;
    if (twice) {
      hvg_jconf_err(&l->j, fp, "'%s' is mapped twice in export_fields",
                    it->string);
      continue;
    }
    hv_fieldmap *fm = &src->export_fields[k];
    memset(fm, 0, sizeof *fm);
    fm->field = (hv_field)f;
    int errors = l->j.errors;
    hv__ml_export_field(l, it, fp, fm);
    if (!fm->from || !fm->from[0] || l->j.errors != errors)
      continue;
    char cp[700];
    const char *where = cJSON_IsString(it) ? fp : cp;
    hvg_jconf_ptr(cp, sizeof cp, fp, "from");
    if (headless && !hv__colnum(fm->from)) {
      hvg_jconf_err(&l->j, where,
                    "without a header, columns are named #1, #2, ... (up to "
                    "#1024)");
      continue;
    }
    const hv_fieldmap *dup = NULL;
    for (size_t i = 0; i < src->n_fields && !dup; i++)
      if (src->fields[i].from && strcmp(src->fields[i].from, fm->from) == 0)
        dup = &src->fields[i];
    for (size_t i = 0; i < k && !dup; i++)
      if (strcmp(src->export_fields[i].from, fm->from) == 0)
        dup = &src->export_fields[i];
    if (dup) {
      hvg_jconf_err(&l->j, where,
                    "column '%s' is already in the layout (for '%s'); an "
                    "export column needs a name of its own",
                    fm->from, hv_field_get(dup->field)->name);
      continue;
    }
    k++;
  }
  src->n_export_fields = k;
}

/* Canonical fields a record type cannot do without. */
static const hv_field hv__required[HV_REC__COUNT][5] = {
    [HV_REC_SCREENING] = {HV_F_RECORD_ID, HV_F_SCREEN_INSTRUMENT,
                          HV_F_SCREEN_DATE, HV_F__COUNT},
    [HV_REC_REFERRAL] = {HV_F_RECORD_ID, HV_F_REF_DATE, HV_F_REF_SERVICE,
                         HV_F_REF_TO_ORG_ID, HV_F__COUNT},
    [HV_REC_CONSENT] = {HV_F_RECORD_ID, HV_F_CAREGIVER_ID, HV_F_CONSENT_ORG_ID,
                        HV_F_CONSENT_GRANTED, HV_F__COUNT},
    [HV_REC_WELLCHILD] = {HV_F_RECORD_ID, HV_F_CHILD_ID, HV_F_WC_VISIT_DATE,
                          HV_F__COUNT},
};

int hv_mapping_field_required(hv_rectype t, hv_field f);
int hv_mapping_field_required(hv_rectype t, hv_field f) {
  for (int i = 0; i < 5 && hv__required[t][i] != HV_F__COUNT; i++)
    if (hv__required[t][i] == f)
      return 1;
  return 0;
}

static void hv__ml_source(hv__ml *l, const cJSON *js, const char *ptr,
                          hv_source *src) {
  static const char *const keys[] = {
      "name",  "record_type", "files",    "format",      "delimiter",
      "quote", "encoding",    "header",   "records",     "date_format",
      "max_record_bytes",     "fields",   "export_fields", NULL};
  if (!cJSON_IsObject(js)) {
    hvg_jconf_err(&l->j, ptr, "a source must be an object");
    return;
  }
  hvg_jconf_only(&l->j, js, ptr, keys);
  char p[512];
  src->name = hvg_jconf_str(&l->j, js, "name", ptr, 1);
  const char *rt = hvg_jconf_str(&l->j, js, "record_type", ptr, 1);
  if (rt) {
    int t = hv_rectype_lookup(rt);
    if (t < 0) {
      hvg_jconf_ptr(p, sizeof p, ptr, "record_type");
      hvg_jconf_err(&l->j, p,
                 "'%s' is not a record type (screening, referral, consent, "
                 "well_child)",
                 rt);
      t = 0;
    }
    src->type = (hv_rectype)t;
  }
  const cJSON *files = cJSON_GetObjectItemCaseSensitive(js, "files");
  if (files) {
    hvg_jconf_ptr(p, sizeof p, ptr, "files");
    if (!cJSON_IsArray(files)) {
      hvg_jconf_err(&l->j, p, "must be an array of file name patterns");
    } else {
      size_t n = (size_t)cJSON_GetArraySize(files);
      const char **g = hvg_arena_alloc(&l->m->arena, (n + 1) * sizeof *g);
      if (!g) {
        l->j.nomem = 1;
        return;
      }
      size_t k = 0;
      const cJSON *it;
      cJSON_ArrayForEach(it, files) {
        if (cJSON_IsString(it) && it->valuestring[0])
          g[k++] = hv__ml_dup(l, it->valuestring);
        else
          hvg_jconf_err(&l->j, p, "file patterns must be non-empty strings");
      }
      g[k] = NULL;
      src->files = g;
    }
  }
  const char *fmt = hvg_jconf_str(&l->j, js, "format", ptr, 0);
  if (fmt && hv__format(fmt, &src->ropts.format)) {
    hvg_jconf_ptr(p, sizeof p, ptr, "format");
    hvg_jconf_err(&l->j, p, "'%s' is not csv, json, ndjson or xml", fmt);
  }
  const char *delim = hvg_jconf_str(&l->j, js, "delimiter", ptr, 0);
  src->ropts.delimiter = ',';
  if (delim) {
    if (strcmp(delim, "\\t") == 0 || strcmp(delim, "tab") == 0)
      src->ropts.delimiter = '\t';
    else if (strlen(delim) == 1 && delim[0] != '"' && delim[0] != '\n' &&
             delim[0] != '\r')
      src->ropts.delimiter = delim[0];
    else {
      hvg_jconf_ptr(p, sizeof p, ptr, "delimiter");
      hvg_jconf_err(&l->j, p, "must be one character (or \"tab\")");
    }
  }
  const char *quote = hvg_jconf_str(&l->j, js, "quote", ptr, 0);
  src->ropts.quote = '"';
  if (quote) {
    if (strlen(quote) == 1 && quote[0] != src->ropts.delimiter)
      src->ropts.quote = quote[0];
    else {
      hvg_jconf_ptr(p, sizeof p, ptr, "quote");
      hvg_jconf_err(&l->j, p, "must be one character other than the delimiter");
    }
  }
  const char *enc = hvg_jconf_str(&l->j, js, "encoding", ptr, 0);
  if (enc && hv__encoding(enc, &src->ropts.encoding)) {
    hvg_jconf_ptr(p, sizeof p, ptr, "encoding");
    hvg_jconf_err(&l->j, p, "'%s' is not utf-8, latin1 or cp1252", enc);
  }
  const cJSON *hdr = cJSON_GetObjectItemCaseSensitive(js, "header");
  if (hdr) {
    if (!cJSON_IsBool(hdr)) {
      hvg_jconf_ptr(p, sizeof p, ptr, "header");
      hvg_jconf_err(&l->j, p, "must be true or false");
    }
    src->ropts.no_header = cJSON_IsFalse(hdr);
  }
  src->ropts.records = hvg_jconf_str(&l->j, js, "records", ptr, 0);
  if (src->ropts.format == HV_IN_XML && !src->ropts.records)
    hvg_jconf_err(&l->j, ptr,
               "an xml source needs 'records', the element path of one "
               "record (e.g. \"export/screening\")");
  const cJSON *maxrec = cJSON_GetObjectItemCaseSensitive(js, "max_record_bytes");
  if (maxrec) {
    if (!cJSON_IsNumber(maxrec) || maxrec->valuedouble < 1024 ||
        maxrec->valuedouble > 64.0 * 1024 * 1024) {
      hvg_jconf_ptr(p, sizeof p, ptr, "max_record_bytes");
      hvg_jconf_err(&l->j, p, "must be a number from 1024 to 67108864");
    } else {
      src->ropts.max_record = (size_t)maxrec->valuedouble;
    }
  }
  src->date_format = hvg_jconf_str(&l->j, js, "date_format", ptr, 0);
  if (src->date_format && !hv_date_pattern_ok(src->date_format)) {
    hvg_jconf_ptr(p, sizeof p, ptr, "date_format");
    hvg_jconf_err(&l->j, p, "'%s' is not a date pattern (e.g. MM/DD/YYYY)",
               src->date_format);
  }
  if (!src->date_format)
    src->date_format = "YYYY-MM-DD";

  const cJSON *fields = cJSON_GetObjectItemCaseSensitive(js, "fields");
  hvg_jconf_ptr(p, sizeof p, ptr, "fields");
  if (!cJSON_IsObject(fields)) {
    hvg_jconf_err(&l->j, fields ? p : ptr,
               "'fields' must be an object of canonical field: source key");
    return;
  }
  size_t n = (size_t)cJSON_GetArraySize(fields);
  src->fields = n ? hvg_arena_alloc(&l->m->arena, n * sizeof *src->fields)
                  : NULL;
  if (n && !src->fields) {
    l->j.nomem = 1;
    return;
  }
  size_t k = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, fields) {
    char fp[600];
    hvg_jconf_ptr(fp, sizeof fp, p, it->string);
    int f = hv_field_lookup(it->string);
    if (f < 0) {
      hvg_jconf_err(&l->j, fp, "'%s' is not a canonical field (see docs/mapping.md)",
                 it->string);
      continue;
    }
    const hv_field_info *fi = hv_field_get((hv_field)f);
    if (!(fi->flags & (1u << src->type))) {
      hvg_jconf_err(&l->j, fp, "'%s' does not apply to %s records", it->string,
                 hv_rectype_name(src->type));
      continue;
    }
    if (fi->flags & HV_OUT) {
      hvg_jconf_err(&l->j, fp,
                    "'%s' is export only: map it under 'export_fields', "
                    "not 'fields'",
                    it->string);
      continue;
    }
    if (src->by_field[f]) {
      hvg_jconf_err(&l->j, fp, "'%s' is mapped twice", it->string);
      continue;
    }
    hv_fieldmap *fm = &src->fields[k++];
    memset(fm, 0, sizeof *fm);
    fm->field = (hv_field)f;
    hv__ml_field(l, src, it, fp, fm);
    src->by_field[f] = fm;
  }
  src->n_fields = k;
  for (int i = 0; i < 5 && hv__required[src->type][i] != HV_F__COUNT; i++) {
    hv_field f = hv__required[src->type][i];
    if (!src->by_field[f])
      hvg_jconf_err(&l->j, p, "%s records need the field '%s'",
                 hv_rectype_name(src->type), hv_field_get(f)->name);
  }
  hv__ml_export_fields(l, js, ptr, src);
}

int hv_mapping_load(hv_mapping **out, const char *path,
                    const char *default_catalog_dir, hvg_buf *diag) {
  *out = NULL;
  if (!path)
    return HVG_EINVAL;
  hv_mapping *m = calloc(1, sizeof *m);
  if (!m)
    return HVG_ENOMEM;
  hvg_arena_init(&m->arena, (size_t)32 * 1024 * 1024);
  m->path = hvg_arena_strdup(&m->arena, path);
  hv__ml l = {{NULL, NULL, 0, diag, &m->arena, 0, !m->path}, m};
  char *text;
  cJSON *root = hvg_jconf_open(&l.j, path, HV__MAPPING_MAX_FILE, &text);
  if (!root) {
    int rc = text ? HVG_ECONFIG : HVG_ENOINPUT;
    free(text);
    hv_mapping_free(m);
    return rc;
  }
  static const char *const top[] = {"program", "catalogs", "sources", NULL};
  hvg_jconf_only(&l.j, root, "", top);
  const cJSON *prog = cJSON_GetObjectItemCaseSensitive(root, "program");
  if (!cJSON_IsObject(prog)) {
    hvg_jconf_err(&l.j, "", "'program' {id, name, identifier_base} is required");
  } else {
    static const char *const pk[] = {"id", "name", "identifier_base", NULL};
    hvg_jconf_only(&l.j, prog, "/program", pk);
    m->program_id = hvg_jconf_str(&l.j, prog, "id", "/program", 1);
    m->program_name = hvg_jconf_str(&l.j, prog, "name", "/program", 0);
    const char *base = hvg_jconf_str(&l.j, prog, "identifier_base", "/program", 1);
    if (m->program_id && !fhir_check_id(m->program_id))
      hvg_jconf_err(&l.j, "/program/id",
                 "'%s' must be 1-64 letters, digits, '-' or '.'",
                 m->program_id);
    if (base) {
      size_t bl = strlen(base);
      if (!fhir_check_uri(base) || !strchr(base, ':'))
        hvg_jconf_err(&l.j, "/program/identifier_base",
                   "must be an absolute URI (e.g. "
                   "https://program.example.org/fhir/id/)");
      else if (base[bl - 1] == '/' || base[bl - 1] == ':')
        m->id_base = base;
      else
        m->id_base = hvg_arena_printf(&m->arena, "%s/", base);
    }
  }
  const cJSON *cats = cJSON_GetObjectItemCaseSensitive(root, "catalogs");
  const char *ins = NULL, *svc = NULL;
  if (cats && !cJSON_IsObject(cats)) {
    hvg_jconf_err(&l.j, "/catalogs",
               "'catalogs' must be an object {instruments, services}");
  } else if (cats) {
    static const char *const ck[] = {"instruments", "services", NULL};
    hvg_jconf_only(&l.j, cats, "/catalogs", ck);
    ins = hvg_jconf_str(&l.j, cats, "instruments", "/catalogs", 0);
    svc = hvg_jconf_str(&l.j, cats, "services", "/catalogs", 0);
  }
  const char *dir = default_catalog_dir ? default_catalog_dir : ".";
  m->instruments_path =
      ins ? hvg_jconf_relpath(&l.j, path, ins)
          : hvg_arena_printf(&m->arena, "%s/instruments.json", dir);
  m->services_path = svc ? hvg_jconf_relpath(&l.j, path, svc)
                         : hvg_arena_printf(&m->arena, "%s/services.json", dir);
  const cJSON *sources = cJSON_GetObjectItemCaseSensitive(root, "sources");
  if (!cJSON_IsArray(sources) || cJSON_GetArraySize(sources) == 0) {
    hvg_jconf_err(&l.j, sources ? "/sources" : "",
               "'sources' must be a non-empty array");
  } else {
    size_t n = (size_t)cJSON_GetArraySize(sources);
    m->sources = hvg_arena_alloc(&m->arena, n * sizeof *m->sources);
    if (!m->sources) {
      l.j.nomem = 1;
    } else {
      memset(m->sources, 0, n * sizeof *m->sources);
      size_t k = 0;
      const cJSON *it;
      cJSON_ArrayForEach(it, sources) {
        char p[64];
        snprintf(p, sizeof p, "/sources/%zu", k);
        hv__ml_source(&l, it, p, &m->sources[k]);
        for (size_t j = 0; j < k; j++)
          if (m->sources[k].name && m->sources[j].name &&
              strcmp(m->sources[k].name, m->sources[j].name) == 0)
            hvg_jconf_err(&l.j, p, "source name '%s' is used twice",
                       m->sources[k].name);
        k++;
      }
      m->n_sources = k;
    }
  }
  cJSON_Delete(root);
  free(text);
  if (l.j.nomem || !m->instruments_path || !m->services_path) {
    hv_mapping_free(m);
    return HVG_ENOMEM;
  }
  if (l.j.errors) {
    hv_mapping_free(m);
    return HVG_ECONFIG;
  }
  *out = m;
  return 0;
}

void hv_mapping_free(hv_mapping *m) {
  if (!m)
    return;
  hvg_arena_free(&m->arena);
  free(m);
}

const hv_source *hv_mapping_source_for(const hv_mapping *m, const char *file,
                                       const char *name) {
  if (!m)
    return NULL;
  if (name) {
    for (size_t i = 0; i < m->n_sources; i++)
      if (m->sources[i].name && strcmp(m->sources[i].name, name) == 0)
        return &m->sources[i];
    return NULL;
  }
  const char *base = file ? strrchr(file, '/') : NULL;
  base = base ? base + 1 : file;
  const hv_source *hit = NULL;
  for (size_t i = 0; base && i < m->n_sources; i++) {
    for (const char *const *g = m->sources[i].files; g && *g; g++) {
      if (fnmatch(*g, base, 0) == 0) {
        if (hit && hit != &m->sources[i])
          return NULL;
        hit = &m->sources[i];
      }
    }
  }
  if (!hit && m->n_sources == 1)
    hit = &m->sources[0];
  return hit;
}

const hv_source *hv_mapping_source_of_type(const hv_mapping *m, hv_rectype t) {
  for (size_t i = 0; m && i < m->n_sources; i++)
    if (m->sources[i].type == t)
      return &m->sources[i];
  return NULL;
}
