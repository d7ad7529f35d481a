#include "hv_mapper.h"

#include "fhir_check.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HV__MAX_VALUE 4096

/* Screening ids seen in this run, for referral reason checks: 64-bit hashes
 * in an open-addressing table (16 bytes a screening). */
typedef struct hv__idslot {
  uint64_t h; /* 0 = empty */
  uint32_t line;
  uint16_t file;
  uint8_t rejected;
} hv__idslot;

struct hv_mapper {
  const hv_mapping *map;
  const hv_catalog *cat;
  hv_mapper_opts opts;
  hv_reader *rd;
  const hv_source *src;
  const char *name;
  int slot[HV_F__COUNT]; /* reader slot per canonical field, -1 none */
  hvg_arena rec_arena;   /* values of the current record */
  hvg_arena run_arena;   /* file names for the whole run */
  unsigned long line;
  unsigned char bad[HV_F__COUNT]; /* field already reported this record */
  int oom;                        /* memory ran out in this record */
  /* screening ids */
  hv__idslot *ids;
  size_t ids_cap, ids_len;
  const char **files;
  size_t n_files, files_cap;
  int screenings_read;
};

static uint64_t hv__hash(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ULL;
  }
  return h ? h : 1;
}

static hv__idslot *hv__ids_find(hv_mapper *mp, uint64_t h) {
  if (!mp->ids_cap)
    return NULL;
  size_t mask = mp->ids_cap - 1;
  for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
    if (mp->ids[i].h == h || mp->ids[i].h == 0)
      return &mp->ids[i];
  }
}

static int hv__ids_put(hv_mapper *mp, const char *id, unsigned long line,
                       int rejected) {
  if ((mp->ids_len + 1) * 2 > mp->ids_cap) {
    size_t cap = mp->ids_cap ? mp->ids_cap * 2 : 1024;
    hv__idslot *old = mp->ids;
    size_t oldcap = mp->ids_cap;
    hv__idslot *n = calloc(cap, sizeof *n);
    if (!n)
      return HVG_ENOMEM;
    mp->ids = n;
    mp->ids_cap = cap;
    for (size_t i = 0; i < oldcap; i++)
      if (old[i].h)
        *hv__ids_find(mp, old[i].h) = old[i];
    free(old);
  }
  uint64_t h = hv__hash(id);
  hv__idslot *s = hv__ids_find(mp, h);
  if (!s->h)
    mp->ids_len++;
  s->h = h;
  s->line = line > UINT32_MAX ? UINT32_MAX : (uint32_t)line;
  s->file = (uint16_t)(mp->n_files ? mp->n_files - 1 : 0);
  s->rejected = (uint8_t)rejected;
  return 0;
}

int hv_mapper_new(hv_mapper **out, const hv_mapping *m, const hv_catalog *cat,
                  const hv_mapper_opts *opts) {
  *out = NULL;
  if (!m || !cat)
    return HVG_EINVAL;
  hv_mapper *mp = calloc(1, sizeof *mp);
  if (!mp)
    return HVG_ENOMEM;
  mp->map = m;
  mp->cat = cat;
  if (opts)
    mp->opts = *opts;
  hvg_arena_init(&mp->rec_arena, (size_t)8 * 1024 * 1024);
  hvg_arena_init(&mp->run_arena, (size_t)8 * 1024 * 1024);
  *out = mp;
  return 0;
}

void hv_mapper_close(hv_mapper *mp) {
  if (mp && mp->rd) {
    hv_reader_close(mp->rd);
    mp->rd = NULL;
    mp->src = NULL;
  }
}

void hv_mapper_free(hv_mapper *mp) {
  if (!mp)
    return;
  hv_mapper_close(mp);
  hvg_arena_free(&mp->rec_arena);
  hvg_arena_free(&mp->run_arena);
  free(mp->ids);
  free(mp->files);
  free(mp);
}

unsigned long hv_mapper_line(const hv_mapper *mp) { return mp->line; }

int hv_mapper_knows_screenings(const hv_mapper *mp) {
  return mp->opts.track_screenings && mp->screenings_read;
}

static int hv__bind(hv_mapper *mp, const hv_source *src, hvg_err *err) {
  for (int f = 0; f < HV_F__COUNT; f++)
    mp->slot[f] = -1;
  for (size_t i = 0; i < src->n_fields; i++) {
    const hv_fieldmap *fm = &src->fields[i];
    if (!fm->from)
      continue;
    int s = hv_reader_bind(mp->rd, fm->from, err);
    if (s < 0) {
      if (s == HVG_ENOTFOUND)
        hvg_err_set(err, s, fm->from,
                    "column '%s' (mapped to %s) is not in the file's header",
                    fm->from, hv_field_get(fm->field)->name);
      return s;
    }
    mp->slot[fm->field] = s;
  }
  return 0;
}

static int hv__opened(hv_mapper *mp, const char *name, const hv_source *src,
                      hvg_err *err) {
  mp->src = src;
  if (mp->n_files == mp->files_cap) {
    size_t cap = mp->files_cap ? mp->files_cap * 2 : 8;
    const char **f = realloc(mp->files, cap * sizeof *f);
    if (!f)
      return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
    mp->files = f;
    mp->files_cap = cap;
  }
  if (mp->n_files >= UINT16_MAX)
    return hvg_err_set(err, HVG_ETOOBIG, NULL, "too many input files");
  const char *copy = hvg_arena_strdup(&mp->run_arena, name);
  if (!copy)
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  mp->files[mp->n_files++] = copy;
  mp->name = copy;
  mp->line = 0;
  int rc = hv__bind(mp, src, err);
  if (rc)
    hv_mapper_close(mp);
  return rc;
}

int hv_mapper_open(hv_mapper *mp, const char *path, const char *name,
                   const hv_source *src, hvg_err *err) {
  hv_mapper_close(mp);
  if (!path || !src)
    return hvg_err_set(err, HVG_EINVAL, NULL, "no file or source");
  int rc = hv_reader_open(&mp->rd, path, &src->ropts, err);
  if (rc)
    return rc;
  return hv__opened(mp, name ? name : path, src, err);
}

int hv_mapper_open_mem(hv_mapper *mp, const char *name, const char *data,
                       size_t len, const hv_source *src, hvg_err *err) {
  hv_mapper_close(mp);
  if (!name || !src)
    return hvg_err_set(err, HVG_EINVAL, NULL, "no name or source");
  int rc = hv_reader_open_mem(&mp->rd, name, data, len, &src->ropts, err);
  if (rc)
    return rc;
  return hv__opened(mp, name, src, err);
}

/* ---- issues ----------------------------------------------------------- */

__attribute__((format(printf, 4, 5))) static void
hv__issue(hv_result *res, hv_severity sev, const char *key, const char *fmt,
          ...) {
  if (sev == HV_SEV_ERROR)
    res->rejected = 1;
  if (res->n_issues >= HV_MAX_ISSUES)
    return;
  hv_issue *is = &res->issues[res->n_issues++];
  is->severity = sev;
  snprintf(is->key, sizeof is->key, "%s", key ? key : "(record)");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(is->msg, sizeof is->msg, fmt, ap);
  va_end(ap);
}

/* The name a user knows a field by: its source key, else canonical name. */
static const char *hv__key(const hv_source *src, hv_field f) {
  const hv_fieldmap *fm = src->by_field[f];
  return fm && fm->from ? fm->from : hv_field_get(f)->name;
}

/* ---- value normalisation --------------------------------------------- */

/* isspace() of the C locale (hvgate never sets another one), inline. */
static int hv__space(unsigned char c) {
  return c == ' ' || (c >= '\t' && c <= '\r');
}

/* s[0..n) without surrounding white space: its start, and its length in
 * *len. */
static const char *hv__trimmed(const char *s, size_t n, size_t *len) {
  while (n && hv__space((unsigned char)*s)) {
    s++;
    n--;
  }
  while (n && hv__space((unsigned char)s[n - 1]))
    n--;
  *len = n;
  return s;
}

/* A copy of s[0..n) without surrounding white space, its length in *len;
 * NULL when nothing is left (*len == 0) or out of memory. */
static const char *hv__trim(hvg_arena *a, const char *s, size_t n,
                            size_t *len) {
  s = hv__trimmed(s, n, len);
  return *len ? hvg_arena_strndup(a, s, *len) : NULL;
}

/* 1 when the string v has a C0 control character other than tab, CR and
 * LF (FHIR strings allow no others). v has n readable bytes and may end
 * earlier at a NUL, where the check stops. */
static int hv__has_ctl(const char *v, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) { /* no byte below 0x20: nothing to look at */
    uint64_t x;
    memcpy(&x, v + i, 8);
    if ((x - 0x2020202020202020ull) & ~x & 0x8080808080808080ull)
      break;
  }
  for (; i < n && v[i]; i++) {
    unsigned char c = (unsigned char)v[i];
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
      return 1;
  }
  return 0;
}

/* strcasecmp(a, b) == 0, the first letters compared inline first (equal
 * strings have first bytes equal once OR-ed with 0x20). */
static int hv__caseeq(const char *a, const char *b) {
  return ((unsigned char)a[0] | 0x20) == ((unsigned char)b[0] | 0x20) &&
         strcasecmp(a, b) == 0;
}

static const char *hv__vmap(const hv_fieldmap *fm, const char *v) {
  for (size_t i = 0; fm && i < fm->n_map; i++)
    if (hv__caseeq(fm->map[i].from, v))
      return fm->map[i].to;
  return v;
}

/* Decimal: [+-]?digits[.digits]; returns normalised text or NULL. */
static const char *hv__number(hvg_arena *a, const char *v) {
  const char *p = v;
  int neg = 0;
  if (*p == '+' || *p == '-')
    neg = *p++ == '-';
  const char *start = p;
  while (*p >= '0' && *p <= '9')
    p++;
  if (p == start)
    return NULL;
  if (*p == '.') {
    p++;
    if (!(*p >= '0' && *p <= '9'))
      return NULL;
    while (*p >= '0' && *p <= '9')
      p++;
  }
  if (*p)
    return NULL;
  while (*start == '0' && start[1] >= '0' && start[1] <= '9')
    start++;
  size_t n = (size_t)(p - start);
  char *out = hvg_arena_alloc(a, n + 2);
  if (!out)
    return NULL;
  char *o = out;
  if (neg)
    *o++ = '-';
  memcpy(o, start, n + 1); /* with the NUL */
  return out;
}

static int hv__is_integer(const char *s) {
  if (*s == '-')
    s++;
  for (; *s; s++)
    if (*s < '0' || *s > '9')
      return 0;
  return 1;
}

static const char *hv__code(const char *v, const char *const *codes) {
  for (; *codes; codes++)
    if (hv__caseeq(v, *codes))
      return *codes;
  return NULL;
}

static void hv__codes_list(char *dst, size_t cap, const char *const *codes) {
  size_t n = 0;
  dst[0] = '\0';
  for (; *codes && n + 2 < cap; codes++)
    n += (size_t)snprintf(dst + n, cap - n, "%s%s", n ? ", " : "", *codes);
}

/* Maps and normalises one field into res->rec.v[f]. */
static void hv__field(hv_mapper *mp, const hv_row *row, const hv_fieldmap *fm,
                      hv_result *res) {
  hvg_arena *a = &mp->rec_arena;
  const hv_field_info *fi = hv_field_get(fm->field);
  const char *key = fm->from ? fm->from : fi->name;
  int phi = (fi->flags & HV_PHI) != 0;
  const char *v = NULL;
  size_t vlen = 0;
  if (fm->from) {
    int s = mp->slot[fm->field];
    if (s >= 0 && row->val[s]) {
      if (row->len[s] > HV__MAX_VALUE) {
        hv__issue(res, HV_SEV_ERROR, key, "value longer than %d bytes",
                  HV__MAX_VALUE);
        return;
      }
      const char *src = hv__trimmed(row->val[s], row->len[s], &vlen);
      /* The reader's value lives as long as the record must (until the next
       * hv_mapper_next reads the next one): used where it is, unless white
       * space after it means the value must end earlier. */
      if (vlen && src[vlen] == '\0')
        v = src;
      else if (vlen && !(v = hvg_arena_strndup(a, src, vlen))) {
        mp->oom = 1;
        return;
      }
      /* FHIR strings allow no C0 controls but tab, CR and LF */
      if (vlen && hv__has_ctl(src, vlen)) {
        hv__issue(res, HV_SEV_ERROR, key, "contains control characters");
        mp->bad[fm->field] = 1;
        return;
      }
    }
  } else if (fm->value) {
    v = fm->value;
    /* FHIR strings allow no C0 controls but tab, CR and LF */
    if (hv__has_ctl(v, strlen(v))) {
      hv__issue(res, HV_SEV_ERROR, key, "contains control characters");
      mp->bad[fm->field] = 1;
      return;
    }
  }
  if (v)
    v = hv__vmap(fm, v);
  if ((!v || !*v) && fm->def)
    v = fm->def;
  if (!v || !*v) {
    if (fm->required) {
      hv__issue(res, HV_SEV_ERROR, key, "required value is empty");
      mp->bad[fm->field] = 1;
    }
    return;
  }
  mp->bad[fm->field] = 1; /* cleared below once the value is accepted */
  switch (fi->type) {
  case HV_T_DATE: {
    const char *pat = fm->date_format ? fm->date_format : mp->src->date_format;
    char iso[11];
    int rc = hv_date_parse(pat, v, iso);
    if (rc == HVG_ERANGE) {
      if (phi)
        hv__issue(res, HV_SEV_ERROR, key, "not a real calendar date");
      else
        hv__issue(res, HV_SEV_ERROR, key, "%s does not exist", v);
      return;
    }
    if (rc) {
      if (phi)
        hv__issue(res, HV_SEV_ERROR, key, "not a date of the form %s", pat);
      else
        hv__issue(res, HV_SEV_ERROR, key, "'%.40s' is not a date of the form %s",
                  v, pat);
      return;
    }
    v = hvg_arena_strdup(a, iso);
    break;
  }
  case HV_T_NUM: {
    const char *n = hv__number(a, v);
    if (!n) {
      hv__issue(res, HV_SEV_ERROR, key, "'%.40s' is not a number", v);
      return;
    }
    v = n;
    break;
  }
  case HV_T_CODE: {
    const char *const *codes = hv_field_codes(fm->field);
    if (codes) {
      const char *c = hv__code(v, codes);
      if (!c) {
        char list[256];
        hv__codes_list(list, sizeof list, codes);
        hv__issue(res, HV_SEV_ERROR, key,
                  "'%.40s' is not one of: %s (add a value map)", v, list);
        return;
      }
      v = c;
    }
    break;
  }
  case HV_T_LIST: {
    const char *const *codes = hv_field_codes(fm->field);
    hvg_buf out;
    hvg_buf_init(&out, HV__MAX_VALUE);
    const char *p = v;
    int bad = 0;
    while (*p && !bad) {
      size_t n = strcspn(p, ",;");
      size_t item_len;
      const char *item = hv__trim(a, p, n, &item_len);
      if (item) {
        item = hv__vmap(fm, item);
        const char *c = codes ? hv__code(item, codes) : item;
        if (!c) {
          char list[256];
          hv__codes_list(list, sizeof list, codes);
          hv__issue(res, HV_SEV_ERROR, key, "'%.40s' is not one of: %s", item,
                    list);
          bad = 1;
        } else if (!strstr(out.data ? out.data : "", c)) {
          if (out.len)
            hvg_buf_addc(&out, ',');
          hvg_buf_adds(&out, c);
        }
      }
      p += n;
      if (*p)
        p++;
    }
    v = bad || !out.len ? NULL : hvg_arena_strdup(a, out.data);
    hvg_buf_free(&out);
    if (bad || !out.len)
      return;
    break;
  }
  case HV_T_ID:
    if (strlen(v) > 64) {
      hv__issue(res, HV_SEV_ERROR, key, "identifier longer than 64 characters");
      return;
    }
    for (const char *p = v; *p; p++)
      if ((unsigned char)*p < 0x20) {
        hv__issue(res, HV_SEV_ERROR, key, "identifier has control characters");
        return;
      }
    break;
  case HV_T_STR:
    break;
  }
  if (!v) {
    mp->oom = 1;
    return;
  }
  res->rec.v[fm->field] = v;
  mp->bad[fm->field] = 0;
}

/* ---- record checks ---------------------------------------------------- */

static void hv__require(hv_mapper *mp, hv_result *res, hv_field f) {
  if (!res->rec.v[f] && !mp->bad[f]) {
    hv__issue(res, HV_SEV_ERROR, hv__key(mp->src, f), "required value is empty");
    mp->bad[f] = 1;
  }
}

/* Compares two ISO dates already normalised; both may be NULL. */
static int hv__after(const char *a, const char *b) {
  return a && b && strcmp(a, b) > 0;
}

static void hv__not_future(hv_mapper *mp, hv_result *res, hv_field f) {
  long days;
  const char *v = res->rec.v[f];
  if (!v || !mp->opts.today_days || fhir_date_days(v, &days))
    return;
  if (days > mp->opts.today_days)
    hv__issue(res, HV_SEV_ERROR, hv__key(mp->src, f), "date is in the future");
}

static void hv__birth_before(hv_mapper *mp, hv_result *res, hv_field birth,
                             hv_field event, const char *who) {
  if (hv__after(res->rec.v[birth], res->rec.v[event]))
    hv__issue(res, HV_SEV_ERROR, hv__key(mp->src, birth),
              "%s's birth date is after the %s (%s)", who,
              res->rec.type == HV_REC_SCREENING ? "screening date"
                                                : "referral date",
              hv__key(mp->src, event));
}

static int hv__score(hv_result *res, const char *key, const char *v,
                     const hv_instrument *in, double min, double max,
                     int integer, double *out) {
  double d = strtod(v, NULL);
  if (integer && !hv__is_integer(v)) {
    hv__issue(res, HV_SEV_ERROR, key, "%s score %s is not a whole number",
              in->id, v);
    return -1;
  }
  if (d < min || d > max) {
    hv__issue(res, HV_SEV_ERROR, key, "%s score %s is out of range (%g-%g)",
              in->id, v, min, max);
    return -1;
  }
  *out = d;
  return 0;
}

static void hv__check_screening(hv_mapper *mp, hv_result *res) {
  const hv_source *src = mp->src;
  hv_record *r = &res->rec;
  const char *iid = r->v[HV_F_SCREEN_INSTRUMENT];
  res->interpretation = -1;
  hv__require(mp, res, HV_F_RECORD_ID);
  hv__require(mp, res, HV_F_SCREEN_DATE);
  hv__not_future(mp, res, HV_F_SCREEN_DATE);
  if (!iid) {
    hv__require(mp, res, HV_F_SCREEN_INSTRUMENT);
    return;
  }
  const hv_instrument *in = hv_catalog_instrument(mp->cat, iid);
  if (!in) {
    hv__issue(res, HV_SEV_ERROR, hv__key(src, HV_F_SCREEN_INSTRUMENT),
              "instrument '%.40s' is unknown (not in the instrument catalogue)",
              iid);
    return;
  }
  res->instrument = in;
  r->v[HV_F_SCREEN_INSTRUMENT] = in->id;
  const char *want = in->subject == HV_SUBJ_CHILD ? "child" : "caregiver";
  const char *subj = r->v[HV_F_SCREEN_SUBJECT];
  if (!subj) {
    r->v[HV_F_SCREEN_SUBJECT] = want;
  } else if (strcmp(subj, want) != 0) {
    hv__issue(res, HV_SEV_ERROR, hv__key(src, HV_F_SCREEN_SUBJECT),
              "%s screens the %s, not the %s", in->id, want, subj);
  }
  hv__require(mp, res,
              in->subject == HV_SUBJ_CHILD ? HV_F_CHILD_ID : HV_F_CAREGIVER_ID);
  hv__birth_before(mp, res, HV_F_CHILD_BIRTH_DATE, HV_F_SCREEN_DATE, "child");
  hv__birth_before(mp, res, HV_F_CAREGIVER_BIRTH_DATE, HV_F_SCREEN_DATE,
                   "caregiver");

  /* age interval: given, or from the child's age on the screening date */
  if (in->n_intervals) {
    const char *iv = r->v[HV_F_SCREEN_INTERVAL];
    if (iv) {
      int months = hv__is_integer(iv) ? atoi(iv) : -2;
      res->interval = months >= 0 ? hv_instrument_interval(in, months, 0) : NULL;
      if (!res->interval)
        hv__issue(res, HV_SEV_ERROR, hv__key(src, HV_F_SCREEN_INTERVAL),
                  "%s has no %s-month questionnaire", in->id, iv);
    } else {
      long b, s;
      if (!fhir_date_days(r->v[HV_F_CHILD_BIRTH_DATE] ? r->v[HV_F_CHILD_BIRTH_DATE] : "", &b) &&
          !fhir_date_days(r->v[HV_F_SCREEN_DATE] ? r->v[HV_F_SCREEN_DATE] : "", &s) && s >= b)
        res->interval = hv_instrument_interval(in, -1, s - b);
    }
  }

  double total = 0;
  int have_total = 0;
  if (in->has_score) {
    const char *v = r->v[HV_F_SCREEN_TOTAL];
    if (!v) {
      if (!mp->bad[HV_F_SCREEN_TOTAL])
        hv__issue(res, HV_SEV_ERROR, hv__key(src, HV_F_SCREEN_TOTAL),
                  "%s needs a total score", in->id);
    } else {
      double max = res->interval && res->interval->has_max
                       ? res->interval->score_max
                       : in->score_max;
      have_total = !hv__score(res, hv__key(src, HV_F_SCREEN_TOTAL), v, in,
                              in->score_min, max, in->score_integer, &total);
    }
  }
  int domains_ok = in->n_domains > 0;
  double dv[HV_MAX_DOMAINS] = {0};
  for (size_t d = 0; d < in->n_domains && d < HV_DOMAIN_COUNT; d++) {
    hv_field f = (hv_field)(HV_F_DOMAIN_FIRST + (int)d);
    const char *v = r->v[f];
    if (!v) {
      if (!mp->bad[f])
        hv__issue(res, HV_SEV_ERROR, hv__key(src, f),
                  "%s needs the %s domain score", in->id, in->domains[d].name);
      domains_ok = 0;
      continue;
    }
    if (hv__score(res, hv__key(src, f), v, in, 0, 60, 0, &dv[d]))
      domains_ok = 0;
  }
  if (res->rejected)
    return;

  /* interpretation from the catalogue's cutoffs */
  switch (in->rule) {
  case HV_RULE_TOTAL_AT_LEAST:
    if (have_total)
      res->interpretation = total >= in->cutoff;
    break;
  case HV_RULE_TOTAL_AT_LEAST_INTERVAL:
    if (have_total && res->interval && res->interval->has_total_cutoff)
      res->interpretation = total >= res->interval->cutoff_total;
    break;
  case HV_RULE_ANY_DOMAIN_BELOW_CUTOFF:
    if (domains_ok && res->interval && res->interval->has_cutoffs) {
      res->interpretation = 0;
      for (size_t d = 0; d < in->n_domains; d++) {
        res->domain_below[d] = dv[d] < res->interval->cutoffs[d];
        if (res->domain_below[d])
          res->interpretation = 1;
      }
    }
    break;
  case HV_RULE_NONE:
    break;
  }
  if (res->interpretation < 0 && in->rule != HV_RULE_NONE)
    hv__issue(res, HV_SEV_WARNING, hv__key(src, HV_F_SCREEN_INSTRUMENT),
              "%s result not interpreted: no age interval (give the "
              "interval or the child's birth date)",
              in->id);
  const char *prog = r->v[HV_F_SCREEN_RESULT];
  if (prog && res->interpretation >= 0 &&
      (strcmp(prog, "positive") == 0) != res->interpretation)
    hv__issue(res, HV_SEV_WARNING, hv__key(src, HV_F_SCREEN_RESULT),
              "the program's reading '%s' differs from the %s cutoff; the "
              "catalogue's interpretation is sent",
              prog, in->id);
}

static void hv__check_referral(hv_mapper *mp, hv_result *res) {
  const hv_source *src = mp->src;
  hv_record *r = &res->rec;
  hv__require(mp, res, HV_F_RECORD_ID);
  hv__require(mp, res, HV_F_REF_DATE);
  hv__require(mp, res, HV_F_REF_TO_ORG_ID);
  hv__not_future(mp, res, HV_F_REF_DATE);
  hv__birth_before(mp, res, HV_F_CHILD_BIRTH_DATE, HV_F_REF_DATE, "child");
  const char *sid = r->v[HV_F_REF_SERVICE];
  if (!sid) {
    hv__require(mp, res, HV_F_REF_SERVICE);
  } else {
    res->service = hv_catalog_service(mp->cat, sid);
    if (!res->service)
      hv__issue(res, HV_SEV_ERROR, hv__key(src, HV_F_REF_SERVICE),
                "service type '%.40s' is unknown (not in the service "
                "catalogue)",
                sid);
    else {
      r->v[HV_F_REF_SERVICE] = res->service->id;
      hv__require(mp, res,
                  res->service->subject == HV_SUBJ_CHILD ? HV_F_CHILD_ID
                                                         : HV_F_CAREGIVER_ID);
    }
  }
  if (hv__after(r->v[HV_F_REF_DATE], r->v[HV_F_REF_STATUS_DATE]))
    hv__issue(res, HV_SEV_ERROR, hv__key(src, HV_F_REF_STATUS_DATE),
              "status date is before the referral date (%s)",
              hv__key(src, HV_F_REF_DATE));
  res->reason_ok = 0;
  const char *reason = r->v[HV_F_REF_REASON_ID];
  if (!reason)
    return;
  if (!hv_mapper_knows_screenings(mp)) {
    res->reason_ok = 1; /* referenced by identifier, not verified */
    return;
  }
  hv__idslot *s = hv__ids_find(mp, hv__hash(reason));
  if (!s || !s->h) {
    hv__issue(res, HV_SEV_ERROR, hv__key(src, HV_F_REF_REASON_ID),
              "screening '%.40s' is not in this export", reason);
  } else if (s->rejected) {
    hv__issue(res, HV_SEV_WARNING, hv__key(src, HV_F_REF_REASON_ID),
              "reason screening %.40s was rejected (%s:%lu); the referral is "
              "sent without it",
              reason, s->file < mp->n_files ? mp->files[s->file] : "?",
              (unsigned long)s->line);
  } else {
    res->reason_ok = 1;
  }
}

static void hv__check_consent(hv_mapper *mp, hv_result *res) {
  const hv_source *src = mp->src;
  hv_record *r = &res->rec;
  hv__require(mp, res, HV_F_RECORD_ID);
  hv__require(mp, res, HV_F_CAREGIVER_ID);
  hv__require(mp, res, HV_F_CONSENT_ORG_ID);
  hv__require(mp, res, HV_F_CONSENT_GRANTED);
  hv__not_future(mp, res, HV_F_CONSENT_GRANTED);
  if (hv__after(r->v[HV_F_CONSENT_GRANTED], r->v[HV_F_CONSENT_EXPIRES]))
    hv__issue(res, HV_SEV_ERROR, hv__key(src, HV_F_CONSENT_EXPIRES),
              "consent expires before it was granted");
  if (hv__after(r->v[HV_F_CONSENT_GRANTED], r->v[HV_F_CONSENT_REVOKED]))
    hv__issue(res, HV_SEV_ERROR, hv__key(src, HV_F_CONSENT_REVOKED),
              "consent revoked before it was granted");
}

static void hv__check_wellchild(hv_mapper *mp, hv_result *res) {
  hv__require(mp, res, HV_F_RECORD_ID);
  hv__require(mp, res, HV_F_CHILD_ID);
  hv__require(mp, res, HV_F_WC_VISIT_DATE);
  hv__not_future(mp, res, HV_F_WC_VISIT_DATE);
}

int hv_mapper_next(hv_mapper *mp, hv_result *res, hvg_err *err) {
  if (!mp->rd)
    return hvg_err_set(err, HVG_ESTATE, NULL, "no file open");
  hvg_arena_reset(&mp->rec_arena);
  /* all but the issues, which n_issues counts (~5.6 KB left as they are) */
  memset(res, 0, offsetof(hv_result, issues));
  memset(&res->instrument, 0,
         sizeof *res - offsetof(hv_result, instrument));
  memset(mp->bad, 0, sizeof mp->bad);
  res->rec.type = mp->src->type;
  res->rec.file = mp->name;
  hv_row row;
  hvg_err rerr;
  hvg_err_clear(&rerr);
  int rc = hv_reader_next(mp->rd, &row, &rerr);
  if (rc == 0)
    return 0;
  mp->line = row.line;
  res->rec.line = row.line;
  if (rc < 0) {
    if (hv_reader_failed(mp->rd)) {
      if (err)
        *err = rerr;
      return rc;
    }
    hv__issue(res, HV_SEV_ERROR, rerr.field[0] ? rerr.field : NULL, "%s",
              rerr.msg[0] ? rerr.msg : hvg_strerror(rc));
    return 1;
  }
  mp->oom = 0;
  for (size_t i = 0; i < mp->src->n_fields; i++)
    hv__field(mp, &row, &mp->src->fields[i], res);
  if (mp->oom)
    return hvg_err_set(err, HVG_ENOMEM, NULL, "out of memory");
  switch (mp->src->type) {
  case HV_REC_SCREENING:
    hv__check_screening(mp, res);
    break;
  case HV_REC_REFERRAL:
    hv__check_referral(mp, res);
    break;
  case HV_REC_CONSENT:
    hv__check_consent(mp, res);
    break;
  case HV_REC_WELLCHILD:
    hv__check_wellchild(mp, res);
    break;
  case HV_REC__COUNT:
    break;
  }
  if (mp->src->type == HV_REC_SCREENING && mp->opts.track_screenings) {
    mp->screenings_read = 1;
    if (res->rec.v[HV_F_RECORD_ID] &&
        hv__ids_put(mp, res->rec.v[HV_F_RECORD_ID], row.line, res->rejected))
      return hvg_err_set(err, HVG_ENOMEM, NULL, "screening id table");
  }
  return 1;
}
