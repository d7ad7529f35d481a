#include "hvg_metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum hvg__kind { HVG__COUNTER, HVG__GAUGE, HVG__HISTOGRAM } hvg__kind;

struct hvg_series {
  hvg_metric *f;
  char **values; /* nlabels copies */
  char *labels;  /* pre-rendered: a="x",b="y" (escaped); "" without labels */
  _Atomic uint64_t v; /* bits of a double: the value, or a histogram's sum */
  _Atomic uint64_t *buckets; /* histogram: nbounds + 1 counts, not cumulative */
  hvg_series *next;
};

struct hvg_metric {
  hvg_metrics *reg;
  hvg__kind kind;
  char *name, *help;
  char **labels;
  size_t nlabels;
  double *bounds;
  size_t nbounds;
  hvg_series *first, *last;
  size_t nseries;
  hvg_metric *next;
};

struct hvg_metrics {
  pthread_mutex_t mu;
  hvg_metric *first, *last;
};

static double hvg__d(uint64_t bits) {
  double d;
  memcpy(&d, &bits, sizeof d);
  return d;
}

static uint64_t hvg__bits(double d) {
  uint64_t b;
  memcpy(&b, &d, sizeof b);
  return b;
}

static void hvg__atomic_add(_Atomic uint64_t *a, double v) {
  uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(
      a, &old, hvg__bits(hvg__d(old) + v), memory_order_relaxed,
      memory_order_relaxed))
    ;
}

int hvg_metrics_new(hvg_metrics **out, hvg_err *err) {
  *out = NULL;
  hvg_metrics *m = calloc(1, sizeof *m);
  if (!m)
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  if (pthread_mutex_init(&m->mu, NULL)) {
    free(m);
    return hvg_err_set(err, HVG_ENOMEM, NULL, "cannot create a mutex");
  }
  *out = m;
  return 0;
}

static void hvg__series_free(hvg_series *s, size_t nlabels) {
  if (!s)
    return;
  for (size_t i = 0; s->values && i < nlabels; i++)
    free(s->values[i]);
  free(s->values);
  free(s->labels);
  free(s->buckets);
  free(s);
}

static void hvg__family_free(hvg_metric *f) {
  if (!f)
    return;
  for (hvg_series *s = f->first, *n; s; s = n) {
    n = s->next;
    hvg__series_free(s, f->nlabels);
  }
  for (size_t i = 0; f->labels && i < f->nlabels; i++)
    free(f->labels[i]);
  free(f->labels);
  free(f->name);
  free(f->help);
  free(f->bounds);
  free(f);
}

void hvg_metrics_free(hvg_metrics *m) {
  if (!m)
    return;
  for (hvg_metric *f = m->first, *n; f; f = n) {
    n = f->next;
    hvg__family_free(f);
  }
  pthread_mutex_destroy(&m->mu);
  free(m);
}

static int hvg__alpha(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int hvg__valid_name(const char *s, int colon) {
  if (!s || !(hvg__alpha((unsigned char)*s) || (colon && *s == ':')))
    return 0;
  for (s++; *s; s++)
    if (!(hvg__alpha((unsigned char)*s) || (*s >= '0' && *s <= '9') ||
          (colon && *s == ':')))
      return 0;
  return 1;
}

/* Appends s with Prometheus escaping: \\ and \n always, \" in label
 * values. */
static int hvg__esc(hvg_buf *b, const char *s, int quote) {
  int rc = 0;
  for (const char *p = s; *p && !rc; p++) {
    if (*p == '\\')
      rc = hvg_buf_add(b, "\\\\", 2);
    else if (*p == '\n')
      rc = hvg_buf_add(b, "\\n", 2);
    else if (quote && *p == '"')
      rc = hvg_buf_add(b, "\\\"", 2);
    else
      rc = hvg_buf_addc(b, *p);
  }
  return rc;
}

/* Creates a series (not linked). */
static int hvg__series_new(hvg_metric *f, const char *const *values,
                           hvg_series **out) {
  *out = NULL;
  hvg_series *s = calloc(1, sizeof *s);
  if (!s)
    return HVG_ENOMEM;
  s->f = f;
  atomic_init(&s->v, hvg__bits(0.0));
  hvg_buf lb;
  hvg_buf_init(&lb, (size_t)1 << 20);
  int rc = 0;
  if (f->nlabels && !(s->values = calloc(f->nlabels, sizeof *s->values)))
    rc = HVG_ENOMEM;
  for (size_t i = 0; !rc && i < f->nlabels; i++) {
    if (!(s->values[i] = strdup(values[i])))
      rc = HVG_ENOMEM;
    else if ((i && (rc = hvg_buf_addc(&lb, ','))) ||
             (rc = hvg_buf_printf(&lb, "%s=\"", f->labels[i])) ||
             (rc = hvg__esc(&lb, values[i], 1)) ||
             (rc = hvg_buf_addc(&lb, '"')))
      break;
  }
  if (!rc && !(s->labels = hvg_buf_take(&lb, NULL)))
    rc = HVG_ENOMEM;
  if (!rc && f->kind == HVG__HISTOGRAM) {
    if (!(s->buckets = malloc((f->nbounds + 1) * sizeof *s->buckets)))
      rc = HVG_ENOMEM;
    for (size_t i = 0; !rc && i <= f->nbounds; i++)
      atomic_init(&s->buckets[i], 0);
  }
  hvg_buf_free(&lb);
  if (rc) {
    hvg__series_free(s, f->nlabels);
    return rc;
  }
  *out = s;
  return 0;
}

static int hvg__register(hvg_metrics *m, hvg__kind kind, const char *name,
                         const char *help, const char *const *labels,
                         const double *bounds, size_t nbounds, hvg_metric **out,
                         hvg_err *err) {
  *out = NULL;
  if (!m)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL registry");
  if (!hvg__valid_name(name, 1))
    return hvg_err_set(err, HVG_EINVAL, name ? name : "",
                       "metric names are [a-zA-Z_:][a-zA-Z0-9_:]*");
  size_t nl = 0;
  for (; labels && labels[nl]; nl++) {
    const char *l = labels[nl];
    if (!hvg__valid_name(l, 0) || !strncmp(l, "__", 2))
      return hvg_err_set(err, HVG_EINVAL, name,
                         "label names are [a-zA-Z_][a-zA-Z0-9_]*, not __*");
    if (kind == HVG__HISTOGRAM && !strcmp(l, "le"))
      return hvg_err_set(err, HVG_EINVAL, name,
                         "a histogram cannot have a label \"le\"");
    for (size_t j = 0; j < nl; j++)
      if (!strcmp(labels[j], l))
        return hvg_err_set(err, HVG_EINVAL, name, "label %s repeated", l);
    if (nl + 1 > HVG_METRICS_MAX_LABELS)
      return hvg_err_set(err, HVG_EINVAL, name, "too many labels");
  }
  if (kind == HVG__HISTOGRAM) {
    if (!bounds || !nbounds || nbounds > HVG_METRICS_MAX_BUCKETS)
      return hvg_err_set(err, HVG_EINVAL, name,
                         "a histogram needs 1 to %d bucket bounds",
                         HVG_METRICS_MAX_BUCKETS);
    for (size_t i = 0; i < nbounds; i++)
      if (!isfinite(bounds[i]) || (i && !(bounds[i] > bounds[i - 1])))
        return hvg_err_set(err, HVG_EINVAL, name,
                           "bucket bounds must be finite and increasing");
  }
  hvg_metric *f = calloc(1, sizeof *f);
  if (!f)
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  f->reg = m;
  f->kind = kind;
  f->nlabels = nl;
  int rc = 0;
  if (!(f->name = strdup(name)) || !(f->help = strdup(help ? help : "")))
    rc = HVG_ENOMEM;
  if (!rc && nl && !(f->labels = calloc(nl, sizeof *f->labels)))
    rc = HVG_ENOMEM;
  for (size_t i = 0; !rc && i < nl; i++)
    if (!(f->labels[i] = strdup(labels[i])))
      rc = HVG_ENOMEM;
  if (!rc && kind == HVG__HISTOGRAM) {
    if (!(f->bounds = malloc(nbounds * sizeof *f->bounds)))
      rc = HVG_ENOMEM;
    else {
      memcpy(f->bounds, bounds, nbounds * sizeof *f->bounds);
      f->nbounds = nbounds;
    }
  }
  if (!rc && !nl) { /* the one series exists from the start */
    rc = hvg__series_new(f, NULL, &f->first);
    f->last = f->first;
    f->nseries = f->first ? 1 : 0;
  }
  if (rc) {
    hvg__family_free(f);
    return hvg_err_set(err, rc, NULL, NULL);
  }
  pthread_mutex_lock(&m->mu);
  for (hvg_metric *g = m->first; g; g = g->next)
    if (!strcmp(g->name, name)) {
      pthread_mutex_unlock(&m->mu);
      hvg__family_free(f);
      return hvg_err_set(err, HVG_EINVAL, name, "metric registered twice");
    }
  if (m->last)
    m->last->next = f;
  else
    m->first = f;
  m->last = f;
  pthread_mutex_unlock(&m->mu);
  *out = f;
  return 0;
}

int hvg_metrics_counter(hvg_metrics *m, const char *name, const char *help,
                        const char *const *labels, hvg_metric **out,
                        hvg_err *err) {
  return hvg__register(m, HVG__COUNTER, name, help, labels, NULL, 0, out, err);
}

int hvg_metrics_gauge(hvg_metrics *m, const char *name, const char *help,
                      const char *const *labels, hvg_metric **out,
                      hvg_err *err) {
  return hvg__register(m, HVG__GAUGE, name, help, labels, NULL, 0, out, err);
}

int hvg_metrics_histogram(hvg_metrics *m, const char *name, const char *help,
                          const char *const *labels, const double *bounds,
                          size_t nbounds, hvg_metric **out, hvg_err *err) {
  return hvg__register(m, HVG__HISTOGRAM, name, help, labels, bounds, nbounds,
                       out, err);
}

static int hvg__same(const hvg_series *s, const char *const *values, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(s->values[i], values[i]))
      return 0;
  return 1;
}

int hvg_metric_series(hvg_metric *f, const char *const *values,
                      hvg_series **out) {
  *out = NULL;
  if (!f)
    return HVG_EINVAL;
  for (size_t i = 0; i < f->nlabels; i++)
    if (!values || !values[i])
      return HVG_EINVAL;
  hvg_metrics *m = f->reg;
  pthread_mutex_lock(&m->mu);
  for (hvg_series *s = f->first; s; s = s->next)
    if (hvg__same(s, values, f->nlabels)) {
      pthread_mutex_unlock(&m->mu);
      *out = s;
      return 0;
    }
  int rc = HVG_ETOOBIG;
  hvg_series *s = NULL;
  if (f->nseries < HVG_METRICS_MAX_SERIES &&
      !(rc = hvg__series_new(f, values, &s))) {
    if (f->last)
      f->last->next = s;
    else
      f->first = s;
    f->last = s;
    f->nseries++;
  }
  pthread_mutex_unlock(&m->mu);
  *out = s;
  return rc;
}

void hvg_series_add(hvg_series *s, double v) {
  if (!s || isnan(v) || s->f->kind == HVG__HISTOGRAM ||
      (s->f->kind == HVG__COUNTER && !(v >= 0)))
    return;
  hvg__atomic_add(&s->v, v);
}

void hvg_series_set(hvg_series *s, double v) {
  if (s && s->f->kind == HVG__GAUGE)
    atomic_store_explicit(&s->v, hvg__bits(v), memory_order_relaxed);
}

void hvg_series_observe(hvg_series *s, double v) {
  if (!s || s->f->kind != HVG__HISTOGRAM || isnan(v))
    return;
  const hvg_metric *f = s->f;
  size_t i = 0;
  while (i < f->nbounds && v > f->bounds[i])
    i++;
  hvg__atomic_add(&s->v, v);
  atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
}

int hvg_metric_add(hvg_metric *f, const char *const *values, double v) {
  hvg_series *s;
  int rc = hvg_metric_series(f, values, &s);
  if (!rc)
    hvg_series_add(s, v);
  return rc;
}

int hvg_metric_set(hvg_metric *f, const char *const *values, double v) {
  hvg_series *s;
  int rc = hvg_metric_series(f, values, &s);
  if (!rc)
    hvg_series_set(s, v);
  return rc;
}

int hvg_metric_observe(hvg_metric *f, const char *const *values, double v) {
  hvg_series *s;
  int rc = hvg_metric_series(f, values, &s);
  if (!rc)
    hvg_series_observe(s, v);
  return rc;
}

/* Shortest text that reads back as v: integers plainly, +Inf, NaN. */
static void hvg__num(char *b, size_t n, double v) {
  if (isnan(v))
    snprintf(b, n, "NaN");
  else if (isinf(v))
    snprintf(b, n, v > 0 ? "+Inf" : "-Inf");
  else if (fabs(v) < 1e15 && v == (double)(int64_t)v) /* no libm */
    snprintf(b, n, "%.0f", v == 0 ? 0.0 : v);
  else {
    snprintf(b, n, "%.15g", v);
    if (strtod(b, NULL) != v)
      snprintf(b, n, "%.17g", v);
  }
}

/* name{labels[,extra]} value\n */
static int hvg__line(hvg_buf *b, const char *name, const char *suffix,
                     const char *labels, const char *extra, double v) {
  char num[40];
  hvg__num(num, sizeof num, v);
  int has = labels[0] || extra;
  return hvg_buf_printf(b, "%s%s%s%s%s%s%s %s\n", name, suffix, has ? "{" : "",
                        labels, labels[0] && extra ? "," : "",
                        extra ? extra : "", has ? "}" : "", num);
}

static int hvg__render_family(hvg_buf *b, const hvg_metric *f) {
  static const char *const type[] = {"counter", "gauge", "histogram"};
  int rc = hvg_buf_printf(b, "# HELP %s ", f->name);
  if (!rc)
    rc = hvg__esc(b, f->help, 0);
  if (!rc)
    rc = hvg_buf_printf(b, "\n# TYPE %s %s\n", f->name, type[f->kind]);
  for (const hvg_series *s = f->first; s && !rc; s = s->next) {
    double v = hvg__d(atomic_load_explicit(&s->v, memory_order_relaxed));
    if (f->kind != HVG__HISTOGRAM) {
      rc = hvg__line(b, f->name, "", s->labels, NULL, v);
      continue;
    }
    uint64_t cum = 0;
    char le[64], num[40];
    for (size_t i = 0; i <= f->nbounds && !rc; i++) {
      cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
      if (i < f->nbounds)
        hvg__num(num, sizeof num, f->bounds[i]);
      snprintf(le, sizeof le, "le=\"%s\"", i < f->nbounds ? num : "+Inf");
      rc = hvg__line(b, f->name, "_bucket", s->labels, le, (double)cum);
    }
    if (!rc)
      rc = hvg__line(b, f->name, "_sum", s->labels, NULL, v);
    if (!rc)
      rc = hvg__line(b, f->name, "_count", s->labels, NULL, (double)cum);
  }
  return rc;
}

int hvg_metrics_render(hvg_metrics *m, hvg_buf *out) {
  if (!m || !out)
    return HVG_EINVAL;
  int rc = 0;
  pthread_mutex_lock(&m->mu);
  for (const hvg_metric *f = m->first; f && !rc; f = f->next)
    if (f->first)
      rc = hvg__render_family(out, f);
  pthread_mutex_unlock(&m->mu);
  return rc;
}
