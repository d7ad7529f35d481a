#include "hv_catalog.h"

#include "hvg_jconf.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HV__CATALOG_MAX_FILE ((size_t)4 * 1024 * 1024)

/* Loader state: the file being read and the catalogue being filled. */
typedef struct hv__cl {
  hvg_jconf j;
  hv_catalog *cat;
} hv__cl;

static int hv__cl_num(hv__cl *l, const cJSON *obj, const char *key,
                      const char *ptr, double *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v)
    return 0;
  if (!cJSON_IsNumber(v)) {
    char p[640];
    snprintf(p, sizeof p, "%s/%s", ptr, key);
    hvg_jconf_err(&l->j, p, "must be a number%s", "");
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
      hvg_jconf_err(&l->j, p, "required coding '%s' is missing", key);
    return 0;
  }
  if (!cJSON_IsObject(v)) {
    hvg_jconf_err(&l->j, p, "must be an object {system, code, display}%s", "");
    return 0;
  }
  out->system = hvg_jconf_str(&l->j, v, "system", p, 1);
  out->code = hvg_jconf_str(&l->j, v, "code", p, 1);
  out->display = hvg_jconf_str(&l->j, v, "display", p, 0);
  return out->system && out->code;
}

static int hv__cl_subject(hv__cl *l, const cJSON *obj, const char *ptr,
                          hv_subject *out) {
  const char *s = hvg_jconf_str(&l->j, obj, "subject", ptr, 1);
  if (!s)
    return 0;
  if (strcmp(s, "child") == 0)
    *out = HV_SUBJ_CHILD;
  else if (strcmp(s, "caregiver") == 0)
    *out = HV_SUBJ_CAREGIVER;
  else {
    char p[256];
    snprintf(p, sizeof p, "%s/subject", ptr);
    hvg_jconf_err(&l->j, p, "'%s' is not child or caregiver", s);
    return 0;
  }
  return 1;
}

static const char *hv__cl_sensitivity(hv__cl *l, const cJSON *obj,
                                      const char *ptr) {
  static const char *const known[] = {"mental-health", "partner-violence",
                                      "substance-use", NULL};
  const char *s = hvg_jconf_str(&l->j, obj, "sensitivity", ptr, 0);
  if (!s)
    return NULL;
  for (int i = 0; known[i]; i++)
    if (strcmp(s, known[i]) == 0)
      return s;
  char p[256];
  snprintf(p, sizeof p, "%s/sensitivity", ptr);
  hvg_jconf_err(&l->j, p,
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
    l->j.errors++;
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
    hvg_jconf_err(&l->j, p, "must be an array%s", "");
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
      hvg_jconf_err(&l->j, ip, "interval needs 'months'%s", "");
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
          hvg_jconf_err(&l->j, cp, "missing cutoff for domain '%s'",
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
  in->id = hvg_jconf_str(&l->j, jin, "id", ptr, 1);
  in->name = hvg_jconf_str(&l->j, jin, "name", ptr, 1);
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
      hvg_jconf_err(&l->j, sp, "score needs min and max%s", "");
    in->score_integer = cJSON_IsTrue(
        cJSON_GetObjectItemCaseSensitive(score, "integer"));
  }
  const cJSON *pos = cJSON_GetObjectItemCaseSensitive(jin, "positive");
  if (pos) {
    char pp[256];
    snprintf(pp, sizeof pp, "%s/positive", ptr);
    const char *rule = hvg_jconf_str(&l->j, pos, "rule", pp, 1);
    if (rule && strcmp(rule, "total_at_least") == 0) {
      in->rule = HV_RULE_TOTAL_AT_LEAST;
      if (!hv__cl_num(l, pos, "value", pp, &in->cutoff))
        hvg_jconf_err(&l->j, pp, "total_at_least needs 'value'%s", "");
    } else if (rule && strcmp(rule, "any_domain_below_cutoff") == 0) {
      in->rule = HV_RULE_ANY_DOMAIN_BELOW_CUTOFF;
    } else if (rule && strcmp(rule, "total_at_least_interval_cutoff") == 0) {
      in->rule = HV_RULE_TOTAL_AT_LEAST_INTERVAL;
    } else if (rule) {
      hvg_jconf_err(&l->j, pp, "unknown rule '%s'", rule);
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
      codings[k].system = hvg_jconf_str(&l->j, c, "system", cp, 1);
      codings[k].code = hvg_jconf_str(&l->j, c, "code", cp, 1);
      codings[k].display = hvg_jconf_str(&l->j, c, "display", cp, 0);
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
      in->security[k].system = hvg_jconf_str(&l->j, c, "system", cp, 1);
      in->security[k].code = hvg_jconf_str(&l->j, c, "code", cp, 1);
      in->security[k].display = hvg_jconf_str(&l->j, c, "display", cp, 0);
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
        hvg_jconf_err(&l->j, cp, "at most 5 domains are supported%s", "");
        break;
      }
      in->domains[k].id = hvg_jconf_str(&l->j, c, "id", cp, 1);
      in->domains[k].name = hvg_jconf_str(&l->j, c, "name", cp, 1);
      hv__cl_coding(l, c, "code", cp, &in->domains[k].code, 1);
      k++;
    }
    in->n_domains = k;
  }
  hv__cl_intervals(l, jin, ptr, in);
  if (in->rule == HV_RULE_ANY_DOMAIN_BELOW_CUTOFF && !in->n_domains)
    hvg_jconf_err(&l->j, ptr, "any_domain_below_cutoff needs domains%s", "");
}

int hv_catalog_load(hv_catalog **out, const char *instruments_path,
                    const char *services_path, hvg_buf *diag) {
  *out = NULL;
  hv_catalog *cat = calloc(1, sizeof *cat);
  if (!cat)
    return HVG_ENOMEM;
  hvg_arena_init(&cat->arena, (size_t)16 * 1024 * 1024);
  hv__cl l = {{NULL, NULL, 0, diag, &cat->arena, 0, 0}, cat};
  char *text = NULL;
  int noinput = 0;

  cJSON *root = hvg_jconf_open(&l.j, instruments_path, HV__CATALOG_MAX_FILE, &text);
  if (root) {
    cat->instrument_system =
        hvg_jconf_str(&l.j, root, "local_code_system", "", 1);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "instruments");
    if (!cJSON_IsArray(arr)) {
      hvg_jconf_err(&l.j, "/instruments", "must be an array%s", "");
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

  root = hvg_jconf_open(&l.j, services_path, HV__CATALOG_MAX_FILE, &text);
  if (root) {
    cat->service_system = hvg_jconf_str(&l.j, root, "local_code_system", "", 1);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "services");
    if (!cJSON_IsArray(arr)) {
      hvg_jconf_err(&l.j, "/services", "must be an array%s", "");
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
        s->id = hvg_jconf_str(&l.j, it, "id", ptr, 1);
        s->name = hvg_jconf_str(&l.j, it, "name", ptr, 1);
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

  if (l.j.nomem) {
    hv_catalog_free(cat);
    return HVG_ENOMEM;
  }
  if (l.j.errors) {
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

/* strcasecmp(a, b) == 0, the first letters compared inline first (equal
 * strings have first bytes equal once OR-ed with 0x20). */
static int hv__caseeq(const char *a, const char *b) {
  return ((unsigned char)a[0] | 0x20) == ((unsigned char)b[0] | 0x20) &&
         strcasecmp(a, b) == 0;
}

const hv_instrument *hv_catalog_instrument(const hv_catalog *c,
                                           const char *id) {
  if (!c || !id)
    return NULL;
  for (size_t i = 0; i < c->n_instruments; i++)
    if (c->instruments[i].id && hv__caseeq(c->instruments[i].id, id))
      return &c->instruments[i];
  return NULL;
}

const hv_service *hv_catalog_service(const hv_catalog *c, const char *id) {
  if (!c || !id)
    return NULL;
  for (size_t i = 0; i < c->n_services; i++)
    if (c->services[i].id && hv__caseeq(c->services[i].id, id))
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
