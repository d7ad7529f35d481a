/* Prometheus text exposition 0.0.4: the exact text of counters, gauges and
 * histograms with and without labels, escaping of help text and label
 * values, number formatting, refused names and bounds, the series cap, and
 * updates from several threads adding up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hvg_metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *render(hvg_metrics *m) {
  hvg_buf b;
  hvg_buf_init(&b, 1 << 20);
  assert_int_equal(hvg_metrics_render(m, &b), 0);
  char *s = hvg_buf_take(&b, NULL);
  assert_non_null(s);
  return s;
}

static void test_exposition(void **state) {
  (void)state;
  hvg_metrics *m;
  hvg_err err;
  assert_int_equal(hvg_metrics_new(&m, &err), 0);
  hvg_metric *up, *recv, *queue, *lat, *empty;
  assert_int_equal(
      hvg_metrics_gauge(m, "hvg_up", "1 when serving.", NULL, &up, &err), 0);
  static const char *const rl[] = {"program", "outcome", NULL};
  assert_int_equal(hvg_metrics_counter(m, "hvg_records_received_total",
                                       "Records received.\nBy program "
                                       "(and C:\\path).",
                                       rl, &recv, &err),
                   0);
  static const char *const pl[] = {"partner", NULL};
  assert_int_equal(hvg_metrics_gauge(m, "hvg_queue_depth", "Items queued.", pl,
                                     &queue, &err),
                   0);
  static const double bounds[] = {0.005, 0.1, 1, 2.5, 60};
  assert_int_equal(hvg_metrics_histogram(m, "hvg_delivery_seconds",
                                         "Delivery latency.", pl, bounds, 5,
                                         &lat, &err),
                   0);
  assert_int_equal(hvg_metrics_counter(m, "hvg_unused_total", "Never used.", pl,
                                       &empty, &err),
                   0);

  hvg_series *s;
  assert_int_equal(hvg_metric_series(up, NULL, &s), 0);
  hvg_series_set(s, 1);
  const char *v1[] = {"nfp-east", "accepted"};
  const char *v2[] = {"quote\"back\\slash\nnl", "rejected"};
  assert_int_equal(hvg_metric_add(recv, v1, 3), 0);
  assert_int_equal(hvg_metric_add(recv, v1, 2), 0);
  assert_int_equal(hvg_metric_add(recv, v2, 1), 0);
  assert_int_equal(hvg_metric_add(recv, v2, -5), 0); /* ignored: a counter */
  const char *q1[] = {"clinic-a"};
  assert_int_equal(hvg_metric_set(queue, q1, 12), 0);
  assert_int_equal(hvg_metric_add(queue, q1, -2.5), 0);
  assert_int_equal(hvg_metric_observe(lat, q1, 0.003), 0);
  assert_int_equal(hvg_metric_observe(lat, q1, 0.1), 0); /* le is inclusive */
  assert_int_equal(hvg_metric_observe(lat, q1, 0.7), 0);
  assert_int_equal(hvg_metric_observe(lat, q1, 120), 0);
  assert_int_equal(hvg_metric_observe(lat, q1, NAN), 0); /* ignored */
  hvg_series_observe(s, 1); /* wrong kind: nothing */

  char *t = render(m);
  assert_string_equal(
      t, "# HELP hvg_up 1 when serving.\n"
         "# TYPE hvg_up gauge\n"
         "hvg_up 1\n"
         "# HELP hvg_records_received_total Records received.\\nBy program "
         "(and C:\\\\path).\n"
         "# TYPE hvg_records_received_total counter\n"
         "hvg_records_received_total{program=\"nfp-east\","
         "outcome=\"accepted\"} 5\n"
         "hvg_records_received_total{program=\"quote\\\"back\\\\slash\\nnl\","
         "outcome=\"rejected\"} 1\n"
         "# HELP hvg_queue_depth Items queued.\n"
         "# TYPE hvg_queue_depth gauge\n"
         "hvg_queue_depth{partner=\"clinic-a\"} 9.5\n"
         "# HELP hvg_delivery_seconds Delivery latency.\n"
         "# TYPE hvg_delivery_seconds histogram\n"
         "hvg_delivery_seconds_bucket{partner=\"clinic-a\",le=\"0.005\"} 1\n"
         "hvg_delivery_seconds_bucket{partner=\"clinic-a\",le=\"0.1\"} 2\n"
         "hvg_delivery_seconds_bucket{partner=\"clinic-a\",le=\"1\"} 3\n"
         "hvg_delivery_seconds_bucket{partner=\"clinic-a\",le=\"2.5\"} 3\n"
         "hvg_delivery_seconds_bucket{partner=\"clinic-a\",le=\"60\"} 3\n"
         "hvg_delivery_seconds_bucket{partner=\"clinic-a\",le=\"+Inf\"} 4\n"
         "hvg_delivery_seconds_sum{partner=\"clinic-a\"} 120.803\n"
         "hvg_delivery_seconds_count{partner=\"clinic-a\"} 4\n");
  free(t);

  /* a histogram without labels, special values in a gauge */
  hvg_metric *h, *g;
  static const double b2[] = {1};
  assert_int_equal(hvg_metrics_histogram(m, "h", "", NULL, b2, 1, &h, &err), 0);
  assert_int_equal(hvg_metrics_gauge(m, "g", "", pl, &g, &err), 0);
  const char *ga[] = {"a"}, *gb[] = {"b"}, *gc[] = {"c"}, *gd[] = {""};
  hvg_metric_set(g, ga, INFINITY);
  hvg_metric_set(g, gb, -INFINITY);
  hvg_metric_set(g, gc, NAN);
  hvg_metric_set(g, gd, 1e-7);
  t = render(m);
  const char *tail = strstr(t, "# HELP h \n");
  assert_non_null(tail);
  assert_string_equal(tail, "# HELP h \n"
                            "# TYPE h histogram\n"
                            "h_bucket{le=\"1\"} 0\n"
                            "h_bucket{le=\"+Inf\"} 0\n"
                            "h_sum 0\n"
                            "h_count 0\n"
                            "# HELP g \n"
                            "# TYPE g gauge\n"
                            "g{partner=\"a\"} +Inf\n"
                            "g{partner=\"b\"} -Inf\n"
                            "g{partner=\"c\"} NaN\n"
                            "g{partner=\"\"} 1e-07\n");
  free(t);

  /* a render that does not fit the caller's cap */
  hvg_buf small;
  hvg_buf_init(&small, 64);
  assert_int_equal(hvg_metrics_render(m, &small), HVG_ETOOBIG);
  hvg_buf_free(&small);
  hvg_metrics_free(m);
}

static void test_refused(void **state) {
  (void)state;
  hvg_metrics *m;
  hvg_err err;
  assert_int_equal(hvg_metrics_new(&m, &err), 0);
  hvg_metric *f;
  assert_int_equal(hvg_metrics_counter(m, "1bad", "", NULL, &f, &err),
                   HVG_EINVAL);
  assert_int_equal(hvg_metrics_counter(m, "bad-name", "", NULL, &f, &err),
                   HVG_EINVAL);
  assert_int_equal(hvg_metrics_counter(m, "", "", NULL, &f, &err), HVG_EINVAL);
  static const char *const l1[] = {"__reserved", NULL};
  static const char *const l2[] = {"a", "a", NULL};
  static const char *const l3[] = {"a:b", NULL};
  static const char *const l4[] = {"le", NULL};
  assert_int_equal(hvg_metrics_counter(m, "c", "", l1, &f, &err), HVG_EINVAL);
  assert_int_equal(hvg_metrics_counter(m, "c", "", l2, &f, &err), HVG_EINVAL);
  assert_int_equal(hvg_metrics_counter(m, "c", "", l3, &f, &err), HVG_EINVAL);
  assert_int_equal(hvg_metrics_counter(m, "ns:c_total", "", l4, &f, &err), 0);
  static const double b[] = {1, 1};
  static const double ok[] = {1, 2};
  static const double inf[] = {1, INFINITY};
  assert_int_equal(hvg_metrics_histogram(m, "h", "", l4, ok, 2, &f, &err),
                   HVG_EINVAL);
  assert_int_equal(hvg_metrics_histogram(m, "h", "", NULL, b, 2, &f, &err),
                   HVG_EINVAL);
  assert_int_equal(hvg_metrics_histogram(m, "h", "", NULL, inf, 2, &f, &err),
                   HVG_EINVAL);
  assert_int_equal(hvg_metrics_histogram(m, "h", "", NULL, ok, 0, &f, &err),
                   HVG_EINVAL);
  assert_int_equal(hvg_metrics_histogram(m, "h", "", NULL, ok, 2, &f, &err), 0);
  assert_int_equal(hvg_metrics_gauge(m, "h", "", NULL, &f, &err), HVG_EINVAL);

  static const char *const l[] = {"k", NULL};
  assert_int_equal(hvg_metrics_counter(m, "many_total", "", l, &f, &err), 0);
  hvg_series *s;
  const char *nul[] = {NULL};
  assert_int_equal(hvg_metric_series(f, nul, &s), HVG_EINVAL);
  assert_int_equal(hvg_metric_series(f, NULL, &s), HVG_EINVAL);
  char v[16];
  const char *vv[] = {v};
  for (int i = 0; i < HVG_METRICS_MAX_SERIES; i++) {
    snprintf(v, sizeof v, "%d", i);
    assert_int_equal(hvg_metric_series(f, vv, &s), 0);
  }
  snprintf(v, sizeof v, "new");
  assert_int_equal(hvg_metric_series(f, vv, &s), HVG_ETOOBIG);
  snprintf(v, sizeof v, "7"); /* existing ones are still found */
  assert_int_equal(hvg_metric_add(f, vv, 1), 0);
  hvg_metrics_free(m);
}

typedef struct shared {
  hvg_metric *c, *h;
} shared;

#define THREADS 4
#define ROUNDS 20000

static void *bump(void *arg) {
  shared *sh = arg;
  hvg_series *s;
  const char *v[] = {"x"};
  if (hvg_metric_series(sh->c, v, &s))
    return NULL;
  for (int i = 0; i < ROUNDS; i++) {
    hvg_series_add(s, 0.5);
    hvg_metric_observe(sh->h, v, (i & 1) ? 0.5 : 5);
  }
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  hvg_metrics *m;
  hvg_err err;
  assert_int_equal(hvg_metrics_new(&m, &err), 0);
  shared sh;
  static const char *const l[] = {"k", NULL};
  static const double b[] = {1};
  assert_int_equal(hvg_metrics_counter(m, "c_total", "", l, &sh.c, &err), 0);
  assert_int_equal(hvg_metrics_histogram(m, "h", "", l, b, 1, &sh.h, &err), 0);
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, bump, &sh), 0);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  char *txt = render(m);
  char want[512];
  snprintf(want, sizeof want,
           "# HELP c_total \n# TYPE c_total counter\nc_total{k=\"x\"} %d\n"
           "# HELP h \n# TYPE h histogram\n"
           "h_bucket{k=\"x\",le=\"1\"} %d\nh_bucket{k=\"x\",le=\"+Inf\"} %d\n"
           "h_sum{k=\"x\"} %d\nh_count{k=\"x\"} %d\n",
           THREADS * ROUNDS / 2, THREADS * ROUNDS / 2, THREADS * ROUNDS,
           THREADS * ROUNDS / 2 * 11 / 2, THREADS * ROUNDS);
  assert_string_equal(txt, want);
  free(txt);
  hvg_metrics_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exposition),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
