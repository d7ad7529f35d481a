/* hvg_metrics — counters, gauges and fixed-bucket histograms with labels,
 * rendered in the Prometheus text exposition format 0.0.4 for GET /metrics.
 *
 * A registry holds metric families, each registered once by name with its
 * help text and label names; a family has one series per label-value set,
 * created on first use. Updating a series is lock-free (C11 atomics), so a
 * worker can keep a series handle and update it on its hot path; creating
 * a series and rendering take the registry's mutex. Everything is
 * thread-safe. Families and series are rendered in the order they were
 * made. Nothing is printed. */
#ifndef HVG_METRICS_H
#define HVG_METRICS_H

#include "hvg_buf.h"
#include "hvg_err.h"

#include <stddef.h>

#define HVG_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define HVG_METRICS_MAX_LABELS 8
#define HVG_METRICS_MAX_BUCKETS 64
#define HVG_METRICS_MAX_SERIES 10000 /* per family: a bound on cardinality */

typedef struct hvg_metrics hvg_metrics; /* the registry */
typedef struct hvg_metric hvg_metric;   /* a family */
typedef struct hvg_series hvg_series;   /* one label-value set */

/* Returns 0 and *out, or HVG_ENOMEM. Free with hvg_metrics_free, which
 * frees the families and series too (their handles become invalid). */
int hvg_metrics_new(hvg_metrics **out, hvg_err *err);
void hvg_metrics_free(hvg_metrics *m);

/* Register a family. `labels` is NULL or a NULL-terminated list of label
 * names ([a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", distinct, at most
 * HVG_METRICS_MAX_LABELS; a histogram cannot use "le"). The name is
 * [a-zA-Z_:][a-zA-Z0-9_:]* and unique in the registry; help is any text
 * (escaped when rendered). A family without labels has its one series
 * from the start, rendered as 0. Histogram `bounds` are the upper bounds of
 * the buckets, finite and strictly increasing (1..HVG_METRICS_MAX_BUCKETS;
 * the +Inf bucket is implied). Returns 0 and *out (owned by the registry);
 * HVG_EINVAL with err saying what is wrong; HVG_ENOMEM. */
int hvg_metrics_counter(hvg_metrics *m, const char *name, const char *help,
                        const char *const *labels, hvg_metric **out,
                        hvg_err *err);
int hvg_metrics_gauge(hvg_metrics *m, const char *name, const char *help,
                      const char *const *labels, hvg_metric **out,
                      hvg_err *err);
int hvg_metrics_histogram(hvg_metrics *m, const char *name, const char *help,
                          const char *const *labels, const double *bounds,
                          size_t nbounds, hvg_metric **out, hvg_err *err);

/* The series of `values` (as many as the family has label names, in the
 * same order; NULL when it has none), created at 0 on first use. Returns 0
 * and *out (owned by the registry, valid until hvg_metrics_free);
 * HVG_EINVAL for a NULL value; HVG_ETOOBIG past HVG_METRICS_MAX_SERIES;
 * HVG_ENOMEM. Label values may be any UTF-8 text. */
int hvg_metric_series(hvg_metric *f, const char *const *values,
                      hvg_series **out);

/* Lock-free updates. add: counters take v >= 0 (others are ignored), gauges
 * any v. set: gauges only. observe: histograms only (NaN is ignored).
 * Calls on the wrong kind of series do nothing. */
void hvg_series_add(hvg_series *s, double v);
void hvg_series_set(hvg_series *s, double v);
void hvg_series_observe(hvg_series *s, double v);

/* Lookup and update in one call; same errors as hvg_metric_series. */
int hvg_metric_add(hvg_metric *f, const char *const *values, double v);
int hvg_metric_set(hvg_metric *f, const char *const *values, double v);
int hvg_metric_observe(hvg_metric *f, const char *const *values, double v);

/* Appends the exposition text of every family with at least one series to
 * out. Returns 0, HVG_ETOOBIG when out's cap is reached (out then holds a
 * truncated text the caller should not serve) or HVG_ENOMEM. Each value is
 * read atomically; a histogram's _count always equals its +Inf bucket, its
 * _sum may include an observation still being recorded. */
int hvg_metrics_render(hvg_metrics *m, hvg_buf *out);

#endif
