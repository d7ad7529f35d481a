#include "hvg_pipe.h"

#include "hvg_arena.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Caps of one batch's values: it closes at HVG_PIPE_BATCH_BYTES, and one
 * record holds at most ~43 values of 4 KiB (hv_mapper). */
#define PIPE__VALS_MAX ((size_t)16 << 20)

/* The bytes of hv_result before and after its issues array: copied as they
 * are, so that whatever the mapper derives reaches the builder. */
#define PIPE__HEAD offsetof(hv_result, issues)
#define PIPE__TAIL_AT                                                         \
  (offsetof(hv_result, issues) + sizeof(((hv_result *)0)->issues))

typedef struct pipe__rec {
  hv_result res; /* values in the batch's arena; only n_issues issues set */
  size_t out_off, out_len; /* what build appended to the batch's out */
  int rc;                  /* build's result */
  hvg_err err;             /* when rc */
} pipe__rec;

/* A batch's state, under the mutex once it is published. */
enum { PIPE__FILLING = 0, PIPE__READY, PIPE__BUILDING, PIPE__DONE };

typedef struct pipe__batch {
  pipe__rec *recs; /* HVG_PIPE_BATCH */
  size_t n;
  hvg_arena vals;
  hvg_buf out;
  int state;
} pipe__batch;

typedef struct pipe__thread_arg {
  hvg_pipe *p;
  void *worker;
} pipe__thread_arg;

struct hvg_pipe {
  hvg_pipe_ops ops;
  int jobs;
  void **workers; /* [jobs]; [0] is the caller's */
  pthread_t *threads;
  pipe__thread_arg *args;
  int n_threads;
  pipe__batch *ring;
  size_t n_ring;
  /* Counters of batches, never wrapping in practice; batch k is
   * ring[k % n_ring]. head <= published <= fill <= head + n_ring:
   * [head, published) are complete (ready, being built or built), fill is
   * being filled by the caller. The caller builds from the oldest end (the
   * batch it must commit next), the other threads from the newest: a
   * thread that the system pauses mid-batch then rarely holds up the
   * commits. */
  size_t head, published, fill;
  int stop; /* code of the commit that stopped the pipe */
  int quit;
  pthread_mutex_t mu;
  pthread_cond_t work; /* builders: a batch was published, or quit */
  pthread_cond_t done; /* caller: a batch was built */
};

static void pipe__build(hvg_pipe *p, void *worker, pipe__batch *b) {
  for (size_t i = 0; i < b->n; i++) {
    pipe__rec *r = &b->recs[i];
    r->rc = 0;
    r->out_off = b->out.len;
    r->out_len = 0;
    if (r->res.rejected)
      continue;
    hvg_err err;
    hvg_err_clear(&err);
    r->rc = p->ops.build(worker, &r->res, &b->out, &err);
    if (r->rc) {
      hvg_buf_truncate(&b->out, r->out_off);
      r->err = err;
    } else {
      r->out_len = b->out.len - r->out_off;
    }
  }
}

/* The newest (or, for the caller, the oldest) published batch no one is
 * building yet, marked as being built; NULL when there is none. Under the
 * mutex. */
static pipe__batch *pipe__take(hvg_pipe *p, int newest) {
  for (size_t i = 0; i < p->published - p->head; i++) {
    size_t k = newest ? p->published - 1 - i : p->head + i;
    pipe__batch *b = &p->ring[k % p->n_ring];
    if (b->state == PIPE__READY) {
      b->state = PIPE__BUILDING;
      return b;
    }
  }
  return NULL;
}

static void *pipe__thread(void *arg) {
  pipe__thread_arg *a = arg;
  hvg_pipe *p = a->p;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    pipe__batch *b = pipe__take(p, 1);
    if (!b) {
      if (p->quit)
        break; /* and nothing left to build */
      pthread_cond_wait(&p->work, &p->mu);
      continue;
    }
    pthread_mutex_unlock(&p->mu);
    pipe__build(p, a->worker, b);
    pthread_mutex_lock(&p->mu);
    b->state = PIPE__DONE;
    pthread_cond_signal(&p->done);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static void pipe__publish(hvg_pipe *p) {
  pthread_mutex_lock(&p->mu);
  p->ring[p->fill % p->n_ring].state = PIPE__READY;
  p->published = ++p->fill;
  pthread_cond_signal(&p->work);
  pthread_mutex_unlock(&p->mu);
}

/* Waits for the oldest batch to be built (building others meanwhile, so the
 * caller's thread is one of the builders), commits its records unless the
 * pipe stopped, and frees its slot. Returns p->stop. */
static int pipe__commit_oldest(hvg_pipe *p) {
  pipe__batch *b = &p->ring[p->head % p->n_ring];
  pthread_mutex_lock(&p->mu);
  while (b->state != PIPE__DONE) {
    pipe__batch *o = pipe__take(p, 0);
    if (o) {
      pthread_mutex_unlock(&p->mu);
      pipe__build(p, p->workers[0], o);
      pthread_mutex_lock(&p->mu);
      o->state = PIPE__DONE;
    } else {
      pthread_cond_wait(&p->done, &p->mu);
    }
  }
  /* out of the builders' sight; the caller still reads it below, and fills
   * it again only once fill comes round to it */
  b->state = PIPE__FILLING;
  p->head++;
  pthread_mutex_unlock(&p->mu);
  for (size_t i = 0; i < b->n && !p->stop; i++) {
    const pipe__rec *r = &b->recs[i];
    int rc = p->ops.commit(p->ops.commit_ctx, &r->res,
                           b->out.data ? b->out.data + r->out_off : "",
                           r->out_len, r->rc, &r->err);
    if (rc > 1)
      p->stop = rc;
  }
  b->n = 0;
  hvg_arena_reset(&b->vals);
  hvg_buf_reset(&b->out);
  return p->stop;
}

/* Copies res into the next record of b; 0 or HVG_ENOMEM (b unchanged). */
static int pipe__copy(pipe__batch *b, const hv_result *res) {
  size_t len[HV_F__COUNT], total = 0;
  for (int f = 0; f < HV_F__COUNT; f++) {
    len[f] = res->rec.v[f] ? strlen(res->rec.v[f]) + 1 : 0;
    total += len[f];
  }
  char *s = total ? hvg_arena_alloc(&b->vals, total) : NULL;
  if (total && !s)
    return HVG_ENOMEM;
  hv_result *c = &b->recs[b->n].res;
  memcpy(c, res, PIPE__HEAD);
  memcpy((char *)c + PIPE__TAIL_AT, (const char *)res + PIPE__TAIL_AT,
         sizeof *c - PIPE__TAIL_AT);
  size_t ni = res->n_issues < HV_MAX_ISSUES ? res->n_issues : HV_MAX_ISSUES;
  memcpy(c->issues, res->issues, ni * sizeof *res->issues);
  for (int f = 0; f < HV_F__COUNT; f++) {
    if (!len[f])
      continue;
    memcpy(s, res->rec.v[f], len[f]);
    c->rec.v[f] = s;
    s += len[f];
  }
  b->n++;
  return 0;
}

int hvg_pipe_put(hvg_pipe *p, const hv_result *res) {
  if (p->stop)
    return p->stop;
  if (p->fill == p->head + p->n_ring && pipe__commit_oldest(p))
    return p->stop;
  pipe__batch *b = &p->ring[p->fill % p->n_ring];
  int rc = pipe__copy(b, res);
  if (rc)
    return rc;
  if (b->n == HVG_PIPE_BATCH || b->vals.used >= HVG_PIPE_BATCH_BYTES)
    pipe__publish(p);
  return 0;
}

int hvg_pipe_drain(hvg_pipe *p) {
  if (p->fill < p->head + p->n_ring && p->ring[p->fill % p->n_ring].n)
    pipe__publish(p);
  while (p->head < p->fill)
    pipe__commit_oldest(p);
  return p->stop;
}

void hvg_pipe_free(hvg_pipe *p) {
  if (!p)
    return;
  pthread_mutex_lock(&p->mu);
  p->quit = 1;
  pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->n_threads; i++)
    pthread_join(p->threads[i], NULL);
  for (int i = 0; i < p->jobs; i++)
    if (p->workers[i])
      p->ops.worker_free(p->workers[i]);
  for (size_t i = 0; p->ring && i < p->n_ring; i++) {
    free(p->ring[i].recs);
    hvg_arena_free(&p->ring[i].vals);
    hvg_buf_free(&p->ring[i].out);
  }
  pthread_cond_destroy(&p->done);
  pthread_cond_destroy(&p->work);
  pthread_mutex_destroy(&p->mu);
  free(p->ring);
  free(p->workers);
  free(p->threads);
  free(p->args);
  free(p);
}

int hvg_pipe_new(hvg_pipe **out, int jobs, const hvg_pipe_ops *ops) {
  *out = NULL;
  if (jobs < 1 || !ops || !ops->worker_new || !ops->worker_free ||
      !ops->build || !ops->commit)
    return HVG_EINVAL;
  hvg_pipe *p = calloc(1, sizeof *p);
  if (!p)
    return HVG_ENOMEM;
  p->ops = *ops;
  /* four batches per building thread: some built while others wait, so
   * that neither the caller nor a builder idles when the other is paused */
  p->n_ring = (size_t)jobs * 4;
  p->workers = calloc((size_t)jobs, sizeof *p->workers);
  p->threads = calloc((size_t)jobs, sizeof *p->threads);
  p->args = calloc((size_t)jobs, sizeof *p->args);
  p->ring = calloc(p->n_ring, sizeof *p->ring);
  if (pthread_mutex_init(&p->mu, NULL)) {
    free(p->workers);
    free(p->threads);
    free(p->args);
    free(p->ring);
    free(p);
    return HVG_ENOMEM;
  }
  pthread_cond_init(&p->work, NULL);
  pthread_cond_init(&p->done, NULL);
  p->jobs = jobs;
  int ok = p->workers && p->threads && p->args && p->ring;
  for (size_t i = 0; ok && i < p->n_ring; i++) {
    pipe__batch *b = &p->ring[i];
    hvg_arena_init(&b->vals, PIPE__VALS_MAX);
    hvg_buf_init(&b->out, ops->out_max);
    ok = (b->recs = calloc(HVG_PIPE_BATCH, sizeof *b->recs)) != NULL;
  }
  for (int i = 0; ok && i < jobs; i++)
    ok = (p->workers[i] = ops->worker_new(ops->worker_ctx)) != NULL;
  if (!ok) {
    if (!p->workers)
      p->jobs = 0;
    hvg_pipe_free(p);
    return HVG_ENOMEM;
  }
  for (int i = 1; i < jobs; i++) {
    p->args[p->n_threads] = (pipe__thread_arg){p, p->workers[i]};
    if (pthread_create(&p->threads[p->n_threads], NULL, pipe__thread,
                       &p->args[p->n_threads]))
      break; /* fewer threads: the caller's builds what they do not */
    p->n_threads++;
  }
  *out = p;
  return 0;
}
