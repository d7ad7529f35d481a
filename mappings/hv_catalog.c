#include "hv_catalog.h"

#include "hvg_jsonpos.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HV__CATALOG_MAX_FILE ((size_t)4 * 1024 * 1024)

char *hv_read_small_file(const char *path, size_t max, size_t *len) {
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

/* Loader state for one file: where to report and how. */
typedef struct hv__cl {
  hv_catalog *cat;
  const char *path;
  const char *text;
  size_t len;
  hvg_buf *diag;
  int errors;
} hv__cl;

#include <stdarg.h>

__attribute__((format(printf, 3, 4))) static void
hv__cl_err(hv__cl *l, const char *ptr, const char *fmt, ...) {
  l->errors++;
  if (!l->diag)
    return;
  unsigned long line = hvg_jsonpos_line(l->text, l->len, ptr);
  hvg_buf_printf(l->diag, "%s:%lu: %s: ", l->path, line, ptr);
  va_list ap;
  va_start(ap, fmt);
  hvg_buf_vprintf(l->diag, fmt, ap);
  va_end(ap);
  hvg_buf_addc(l->diag, '\n');
}

static const char *hv__cl_str(hv__cl *l, const cJSON *obj, const char *key,
                              const char *ptr, int required) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v || cJSON_IsNull(v)) {
    if (required) {
      char p[256];
      snprintf(p, sizeof p, "%s/%s", ptr, key);
      hv__cl_err(l, p, "required string '%s' is missing", key);
    }
    return NULL;
  }
  if (!cJSON_IsString(v) || !*v->valuestring) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", ptr, key);
    hv__cl_err(l, p, "must be a non-empty string%s", "");
    return NULL;
  }
  const char *s = hvg_arena_strdup(&l->cat->arena, v->valuestring);
  if (!s)
    l->errors++;
  return s;
}

static int hv__cl_num(hv__cl *l, const cJSON *obj, const char *key,
                      const char *ptr, double *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v)
    return 0;
  if (!cJSON_IsNumber(v)) {
    char p[640];
    snprintf(p, sizeof p, "%s/%s", ptr, key);
    hv__cl_err(l, p, "must be a number%s", "");
    return 0;
  }
  *out = v->valuedouble;
  return 1;
}

static int hv__cl_coding(hv__cl *l, const cJSON *obj, const char *key,
                         const char *ptr, fhir_coding *out, int required) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  char p[256];
  snprintf(p, sizeof p, "%s/%s", ptr, key);
  if (!v) {
    if (required)
      hv__cl_err(l, p, "required coding '%s' is missing", key);
    return 0;
  }
  if (!cJSON_IsObject(v)) {
    hv__cl_err(l, p, "must be an object {system, code, display}%s", "");
    return 0;
  }
  out->system = hv__cl_str(l, v, "system", p, 1);
  out->code = hv__cl_str(l, v, "code", p, 1);
  out->display = hv__cl_str(l, v, "display", p, 0);
  return out->system && out->code;
}

static int hv__cl_subject(hv__cl *l, const cJSON *obj, const char *ptr,
                          hv_subject *out) {
  const char *s = hv__cl_str(l, obj, "subject", ptr, 1);
  if (!s)
    return 0;
  if (strcmp(s, "child") == 0)
    *out = HV_SUBJ_CHILD;
  else if (strcmp(s, "caregiver") == 0)
    *out = HV_SUBJ_CAREGIVER;
  else {
    char p[256];
    snprintf(p, sizeof p, "%s/subject", ptr);
    hv__cl_err(l, p, "'%s' is not child or caregiver", s);
    return 0;
  }
  return 1;
}

static const char *hv__cl_sensitivity(hv__cl *l, const cJSON *obj,
                                      const char *ptr) {
  static const char *const known[] = {"mental-health", "partner-violence",
                                      "substance-use", NULL};
  const char *s = hv__cl_str(l, obj, "sensitivity", ptr, 0);
  if (!s)
    return NULL;
  for (int i = 0; known[i]; i++)
    if (strcmp(s, known[i]) == 0)
      return s;
  char p[256];
  snprintf(p, sizeof p, "%s/sensitivity", ptr);
  hv__cl_err(l, p,
             "'%s' is not one of mental-health, partner-violence, "
             "substance-use",
             s);
  return NULL;
}

static void *hv__cl_array(hv__cl *l, size_t n, size_t size) {
  if (!n)
    return NULL;
  void *p = hvg_arena_alloc(&l->cat->arena, n * size);
  if (!p)
    l->errors++;
  else
    memset(p, 0, n * size);
  return p;
}

static void hv__cl_intervals(hv__cl *l, const cJSON *jin, const char *ptr,
                             hv_instrument *in) {
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(jin, "intervals");
  if (!arr)
    return;
  char p[256];
  snprintf(p, sizeof p, "%s/intervals", ptr);
  if (!cJSON_IsArray(arr)) {
    hv__cl_err(l, p, "must be an array%s", "");
    return;
  }
  size_t n = (size_t)cJSON_GetArraySize(arr);
  in->intervals = hv__cl_array(l, n, sizeof *in->intervals);
  if (!in->intervals)
    return;
  size_t k = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    char ip[288];
    snprintf(ip, sizeof ip, "%s/%zu", p, k);
    hv_interval *iv = &in->intervals[k++];
    double d;
    iv->min_age_days = iv->max_age_days = -1;
    if (!hv__cl_num(l, it, "months", ip, &d)) {
      hv__cl_err(l, ip, "interval needs 'months'%s", "");
      continue;
    }
    iv->months = (int)d;
    if (hv__cl_num(l, it, "min_age_days", ip, &d))
      iv->min_age_days = (long)d;
    if (hv__cl_num(l, it, "max_age_days", ip, &d))
      iv->max_age_days = (long)d;
    iv->has_total_cutoff = hv__cl_num(l, it, "cutoff_total", ip,
                                      &iv->cutoff_total);
    iv->has_max = hv__cl_num(l, it, "score_max", ip, &iv->score_max);
    const cJSON *cut = cJSON_GetObjectItemCaseSensitive(it, "cutoffs");
    if (cut) {
      char cp[300];
      snprintf(cp, sizeof cp, "%s/cutoffs", ip);
      iv->has_cutoffs = 1;
      for (size_t dI = 0; dI < in->n_domains; dI++) {
        if (!hv__cl_num(l, cut, in->domains[dI].id, cp, &iv->cutoffs[dI])) {
          hv__cl_err(l, cp, "missing cutoff for domain '%s'",
                     in->domains[dI].id);
          iv->has_cutoffs = 0;
        }
      }
    }
  }
  in->n_intervals = k;
}

static void hv__cl_instrument(hv__cl *l, const cJSON *jin, const char *ptr,
                              hv_instrument *in) {
  in->id = hv__cl_str(l, jin, "id", ptr, 1);
  in->name = hv__cl_str(l, jin, "name", ptr, 1);
  hv__cl_subject(l, jin, ptr, &in->subject);
  hv__cl_coding(l, jin, "code", ptr, &in->code, 1);
  in->has_panel = hv__cl_coding(l, jin, "panel", ptr, &in->panel, 0);
  const cJSON *score = cJSON_GetObjectItemCaseSensitive(jin, "score");
  if (score) {
    char sp[256];
    snprintf(sp, sizeof sp, "%s/score", ptr);
    in->has_score = hv__cl_num(l, score, "min", sp, &in->score_min) &
                    hv__cl_num(l, score, "max", sp, &in->score_max);
    if (!in->has_score)
      hv__cl_err(l, sp, "score needs min and max%s", "");
    in->score_integer = cJSON_IsTrue(
        cJSON_GetObjectItemCaseSensitive(score, "integer"));
  }
  const cJSON *pos = cJSON_GetObjectItemCaseSensitive(jin, "positive");
  if (pos) {
    char pp[256];
    snprintf(pp, sizeof pp, "%s/positive", ptr);
    const char *rule = hv__cl_str(l, pos, "rule", pp, 1);
    if (rule && strcmp(rule, "total_at_least") == 0) {
      in->rule = HV_RULE_TOTAL_AT_LEAST;
      if (!hv__cl_num(l, pos, "value", pp, &in->cutoff))
        hv__cl_err(l, pp, "total_at_least needs 'value'%s", "");
    } else if (rule && strcmp(rule, "any_domain_below_cutoff") == 0) {
      in->rule = HV_RULE_ANY_DOMAIN_BELOW_CUTOFF;
    } else if (rule && strcmp(rule, "total_at_least_interval_cutoff") == 0) {
      in->rule = HV_RULE_TOTAL_AT_LEAST_INTERVAL;
    } else if (rule) {
      hv__cl_err(l, pp, "unknown rule '%s'", rule);
    }
  }
  double d;
  in->rescreen_days = hv__cl_num(l, jin, "rescreen_interval_days", ptr, &d)
                          ? (long)d
                          : 0;
  const cJSON *cats = cJSON_GetObjectItemCaseSensitive(jin, "categories");
  if (cJSON_IsArray(cats)) {
    size_t n = (size_t)cJSON_GetArraySize(cats);
    in->categories = hv__cl_array(l, n, sizeof *in->categories);
    fhir_coding *codings = hv__cl_array(l, n, sizeof *codings);
    size_t k = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cats) {
      if (!in->categories || !codings)
        break;
      char cp[256];
      snprintf(cp, sizeof cp, "%s/categories/%zu", ptr, k);
      codings[k].system = hv__cl_str(l, c, "system", cp, 1);
      codings[k].code = hv__cl_str(l, c, "code", cp, 1);
      codings[k].display = hv__cl_str(l, c, "display", cp, 0);
      in->categories[k].coding = &codings[k];
      in->categories[k].n_coding = 1;
      k++;
    }
    in->n_categories = k;
  }
  in->sensitivity = hv__cl_sensitivity(l, jin, ptr);
  const cJSON *sec = cJSON_GetObjectItemCaseSensitive(jin, "security");
  if (cJSON_IsArray(sec)) {
    size_t n = (size_t)cJSON_GetArraySize(sec);
    in->security = hv__cl_array(l, n, sizeof *in->security);
    size_t k = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, sec) {
      if (!in->security)
        break;
      char cp[256];
      snprintf(cp, sizeof cp, "%s/security/%zu", ptr, k);
      in->security[k].system = hv__cl_str(l, c, "system", cp, 1);
      in->security[k].code = hv__cl_str(l, c, "code", cp, 1);
      in->security[k].display = hv__cl_str(l, c, "display", cp, 0);
      k++;
    }
    in->n_security = k;
  }
  const cJSON *doms = cJSON_GetObjectItemCaseSensitive(jin, "domains");
  if (cJSON_IsArray(doms)) {
    size_t k = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, doms) {
      char cp[256];
      snprintf(cp, sizeof cp, "%s/domains/%zu", ptr, k);
      if (k >= HV_MAX_DOMAINS) {
        hv__cl_err(l, cp, "at most 5 domains are supported%s", "");
        break;
      }
      in->domains[k].id = hv__cl_str(l, c, "id", cp, 1);
      in->domains[k].name = hv__cl_str(l, c, "name", cp, 1);
      hv__cl_coding(l, c, "code", cp, &in->domains[k].code, 1);
      k++;
    }
    in->n_domains = k;
  }
  hv__cl_intervals(l, jin, ptr, in);
  if (in->rule == HV_RULE_ANY_DOMAIN_BELOW_CUTOFF && !in->n_domains)
    hv__cl_err(l, ptr, "any_domain_below_cutoff needs domains%s", "");
}

static cJSON *hv__cl_open(hv__cl *l, const char *path, char **text) {
  size_t len = 0;
  *text = hv_read_small_file(path, HV__CATALOG_MAX_FILE, &len);
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
      const char *at = cJSON_GetErrorPtr();
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

int hv_catalog_load(hv_catalog **out, const char *instruments_path,
                    const char *services_path, hvg_buf *diag) {
  *out = NULL;
  hv_catalog *cat = calloc(1, sizeof *cat);
  if (!cat)
    return HVG_ENOMEM;
  hvg_arena_init(&cat->arena, (size_t)16 * 1024 * 1024);
  hv__cl l = {cat, NULL, NULL, 0, diag, 0};
  char *text = NULL;
  int noinput = 0;

  cJSON *root = hv__cl_open(&l, instruments_path, &text);
  if (root) {
    cat->instrument_system =
        hv__cl_str(&l, root, "local_code_system", "", 1);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "instruments");
    if (!cJSON_IsArray(arr)) {
      hv__cl_err(&l, "/instruments", "must be an array%s", "");
    } else {
      size_t n = (size_t)cJSON_GetArraySize(arr);
      cat->instruments = hv__cl_array(&l, n, sizeof *cat->instruments);
      size_t k = 0;
      const cJSON *it;
      cJSON_ArrayForEach(it, arr) {
        if (!cat->instruments)
          break;
        char ptr[64];
        snprintf(ptr, sizeof ptr, "/instruments/%zu", k);
        hv__cl_instrument(&l, it, ptr, &cat->instruments[k++]);
      }
      cat->n_instruments = k;
    }
  } else if (!text) {
    noinput = 1;
  }
  cJSON_Delete(root);
  free(text);

  root = hv__cl_open(&l, services_path, &text);
  if (root) {
    cat->service_system = hv__cl_str(&l, root, "local_code_system", "", 1);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "services");
    if (!cJSON_IsArray(arr)) {
      hv__cl_err(&l, "/services", "must be an array%s", "");
    } else {
      size_t n = (size_t)cJSON_GetArraySize(arr);
      cat->services = hv__cl_array(&l, n, sizeof *cat->services);
      size_t k = 0;
      const cJSON *it;
      cJSON_ArrayForEach(it, arr) {
        if (!cat->services)
          break;
        char ptr[64];
        snprintf(ptr, sizeof ptr, "/services/%zu", k);
        hv_service *s = &cat->services[k++];
        s->id = hv__cl_str(&l, it, "id", ptr, 1);
        s->name = hv__cl_str(&l, it, "name", ptr, 1);
        hv__cl_coding(&l, it, "code", ptr, &s->code, 1);
        s->has_category = hv__cl_coding(&l, it, "category", ptr,
                                        &s->category, 0);
        hv__cl_subject(&l, it, ptr, &s->subject);
        s->sensitivity = hv__cl_sensitivity(&l, it, ptr);
      }
      cat->n_services = k;
    }
  } else if (!text) {
    noinput = 1;
  }
  cJSON_Delete(root);
  free(text);

  if (l.errors) {
    hv_catalog_free(cat);
    return noinput ? HVG_ENOINPUT : HVG_ECONFIG;
  }
  *out = cat;
  return 0;
}

void hv_catalog_free(hv_catalog *c) {
  if (!c)
    return;
  hvg_arena_free(&c->arena);
  free(c);
}

const hv_instrument *hv_catalog_instrument(const hv_catalog *c,
                                           const char *id) {
  if (!c || !id)
    return NULL;
  for (size_t i = 0; i < c->n_instruments; i++)
    if (c->instruments[i].id && strcasecmp(c->instruments[i].id, id) == 0)
      return &c->instruments[i];
  return NULL;
}

const hv_service *hv_catalog_service(const hv_catalog *c, const char *id) {
  if (!c || !id)
    return NULL;
  for (size_t i = 0; i < c->n_services; i++)
    if (c->services[i].id && strcasecmp(c->services[i].id, id) == 0)
      return &c->services[i];
  return NULL;
}

const hv_interval *hv_instrument_interval(const hv_instrument *in, int months,
                                          long age_days) {
  if (!in)
    return NULL;
  for (size_t i = 0; i < in->n_intervals; i++) {
    const hv_interval *iv = &in->intervals[i];
    if (months >= 0) {
      if (iv->months == months)
        return iv;
    } else if (iv->min_age_days >= 0 && iv->max_age_days >= 0 &&
               age_days >= iv->min_age_days && age_days <= iv->max_age_days) {
      return iv;
    }
  }
  return NULL;
}
