/* hvg_pipe: records committed exactly once each, in the order put, with
 * the output their build made (or its error) whatever the number of
 * threads; values copied at put; a commit that stops the pipe drops every
 * later record; thread states made and freed once each. Also run under
 * ThreadSanitizer (see docs/benchmarks.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hvg_pipe.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fake {
  pthread_mutex_t mu;
  int workers_made, workers_freed, fail_worker_at; /* -1: never */
  /* commits, in the order seen */
  unsigned long *lines;
  size_t n, cap;
  int stop_at_line; /* commit returns 74 there; 0: never */
  int bad;          /* a commit saw what it should not */
} fake;

static void *fake_worker_new(void *ctx) {
  fake *f = ctx;
  pthread_mutex_lock(&f->mu);
  int k = f->workers_made++;
  pthread_mutex_unlock(&f->mu);
  if (k == f->fail_worker_at)
    return NULL;
  int *w = malloc(sizeof *w);
  if (w)
    *w = k;
  return w;
}

static void fake_worker_free(void *worker) {
  (void)worker;
  free(worker);
}

static fake *the_fake;

static void fake_worker_free_count(void *worker) {
  pthread_mutex_lock(&the_fake->mu);
  the_fake->workers_freed++;
  pthread_mutex_unlock(&the_fake->mu);
  fake_worker_free(worker);
}

/* Fails every 11th line; writes "id=<record id>;<line>\n" otherwise. */
static int fake_build(void *worker, const hv_result *res, hvg_buf *out,
                      hvg_err *err) {
  (void)worker;
  if (res->rec.line % 11 == 0) {
    hvg_buf_adds(out, "partial"); /* the pipe drops what a failure left */
    return hvg_err_set(err, HVG_EFORMAT, "X.y", "line %lu", res->rec.line);
  }
  return hvg_buf_printf(out, "id=%s;%lu\n", res->rec.v[HV_F_RECORD_ID],
                        res->rec.line);
}

static int fake_commit(void *ctx, const hv_result *res, const char *out,
                       size_t len, int rc, const hvg_err *err) {
  fake *f = ctx;
  unsigned long line = res->rec.line;
  char want[64];
  snprintf(want, sizeof want, "id=R%lu;%lu\n", line, line);
  if (res->rejected) {
    f->bad |= line % 7 != 0 || len != 0 || res->n_issues != 2 ||
              strcmp(res->issues[1].msg, "second") != 0;
  } else if (line % 11 == 0) {
    char msg[32];
    snprintf(msg, sizeof msg, "line %lu", line);
    f->bad |= rc != HVG_EFORMAT || len != 0 || strcmp(err->msg, msg) != 0 ||
              strcmp(err->field, "X.y") != 0;
  } else {
    f->bad |= rc != 0 || len != strlen(want) || memcmp(out, want, len) != 0 ||
              res->n_issues != (line % 5 == 0);
  }
  f->bad |= res->instrument != (const hv_instrument *)&the_fake ||
            res->interpretation != (int)(line % 3);
  if (f->n == f->cap) {
    f->cap = f->cap ? f->cap * 2 : 256;
    f->lines = realloc(f->lines, f->cap * sizeof *f->lines);
  }
  f->lines[f->n++] = line;
  return (int)line == f->stop_at_line ? 74 : 0;
}

static hvg_pipe_ops fake_ops(fake *f) {
  hvg_pipe_ops ops = {fake_worker_new, fake_worker_free_count, fake_build,
                      fake_commit,     f,      f,      1 << 20};
  return ops;
}

static void fake_init(fake *f) {
  memset(f, 0, sizeof *f);
  pthread_mutex_init(&f->mu, NULL);
  f->fail_worker_at = -1;
  the_fake = f;
}

static void fake_fini(fake *f) {
  free(f->lines);
  pthread_mutex_destroy(&f->mu);
}

/* Puts records first..last; the source values are overwritten after each
 * put, so the pipe must have copied them. Returns the first nonzero put. */
static int put_range(hvg_pipe *p, unsigned long first, unsigned long last) {
  static hv_result res; /* 6 KB: not on the stack */
  char id[32];
  for (unsigned long line = first; line <= last; line++) {
    memset(&res, 0, offsetof(hv_result, issues));
    res.rec.line = line;
    res.rec.file = "f.csv";
    snprintf(id, sizeof id, "R%lu", line);
    res.rec.v[HV_F_RECORD_ID] = id;
    res.rejected = line % 7 == 0;
    res.instrument = (const hv_instrument *)&the_fake;
    res.interpretation = (int)(line % 3);
    if (res.rejected) {
      res.n_issues = 2;
      snprintf(res.issues[1].msg, sizeof res.issues[1].msg, "second");
    } else {
      res.n_issues = line % 5 == 0;
    }
    int rc = hvg_pipe_put(p, &res);
    memset(id, 'x', sizeof id - 1); /* the pipe holds its own copy */
    if (rc)
      return rc;
  }
  return 0;
}

static void test_order_every_jobs(void **state) {
  (void)state;
  for (int jobs = 1; jobs <= 5; jobs++) {
    fake f;
    fake_init(&f);
    hvg_pipe_ops ops = fake_ops(&f);
    hvg_pipe *p;
    assert_int_equal(hvg_pipe_new(&p, jobs, &ops), 0);
    /* two "files", each drained, the second spanning many batches */
    assert_int_equal(put_range(p, 1, 10), 0);
    assert_int_equal(hvg_pipe_drain(p), 0);
    assert_int_equal(f.n, 10);
    assert_int_equal(put_range(p, 11, 5000), 0);
    assert_int_equal(hvg_pipe_drain(p), 0);
    assert_int_equal(hvg_pipe_drain(p), 0); /* nothing left: no-op */
    hvg_pipe_free(p);
    assert_int_equal(f.n, 5000);
    for (size_t i = 0; i < f.n; i++)
      assert_int_equal(f.lines[i], i + 1);
    assert_false(f.bad);
    assert_int_equal(f.workers_made, jobs);
    assert_int_equal(f.workers_freed, jobs);
    fake_fini(&f);
  }
}

static void test_stop_drops_later(void **state) {
  (void)state;
  for (int jobs = 1; jobs <= 3; jobs++) {
    fake f;
    fake_init(&f);
    f.stop_at_line = 1234;
    hvg_pipe_ops ops = fake_ops(&f);
    hvg_pipe *p;
    assert_int_equal(hvg_pipe_new(&p, jobs, &ops), 0);
    int rc = put_range(p, 1, 20000);
    assert_int_equal(rc, 74); /* put reports the stop once it is seen */
    assert_int_equal(hvg_pipe_put(p, NULL), 74); /* and copies nothing */
    assert_int_equal(hvg_pipe_drain(p), 74);
    assert_int_equal(hvg_pipe_drain(p), 74);
    hvg_pipe_free(p);
    assert_int_equal(f.n, 1234); /* nothing after the stopping record */
    assert_int_equal(f.lines[f.n - 1], 1234);
    assert_false(f.bad);
    fake_fini(&f);
  }
}

static void test_worker_out_of_memory(void **state) {
  (void)state;
  fake f;
  fake_init(&f);
  f.fail_worker_at = 2;
  hvg_pipe_ops ops = fake_ops(&f);
  hvg_pipe *p = (hvg_pipe *)&f;
  assert_int_equal(hvg_pipe_new(&p, 4, &ops), HVG_ENOMEM);
  assert_null(p);
  assert_int_equal(f.workers_made, 3);
  assert_int_equal(f.workers_freed, 2); /* the ones made, not the NULL */
  hvg_pipe_free(NULL);
  assert_int_equal(hvg_pipe_new(&p, 0, &ops), HVG_EINVAL);
  fake_fini(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_order_every_jobs),
      cmocka_unit_test(test_stop_drops_later),
      cmocka_unit_test(test_worker_out_of_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
