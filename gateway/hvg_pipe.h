/* hvg_pipe — a mapping run's outputs made on several threads and handed back
 * in input order (`hvgate map --jobs N`).
 *
 * The caller's thread reads and maps records and puts each one (passed or
 * rejected) into the pipe, which copies it into a batch. Full batches are
 * built by the pipe's threads and by the caller's own thread while it waits;
 * the caller's thread then commits them, record by record, in the order they
 * were put. Memory is bounded: a ring of 4 batches per thread, each of at
 * most HVG_PIPE_BATCH records (and about HVG_PIPE_BATCH_BYTES of values);
 * when the ring is full, put waits for the oldest batch and commits it. */
#ifndef HVG_PIPE_H
#define HVG_PIPE_H

#include "hv_mapper.h"
#include "hvg_buf.h"

#define HVG_PIPE_BATCH 64
#define HVG_PIPE_BATCH_BYTES ((size_t)256 << 10)

typedef struct hvg_pipe_ops {
  /* A building thread's own state, made for each of them (the caller's
   * included) before any starts, from worker_ctx; NULL when out of memory. */
  void *(*worker_new)(void *worker_ctx);
  void (*worker_free)(void *worker);
  /* On any building thread: appends the output of res (a record that
   * passed) to out. Returns 0, or an HVG_E* code with err filled and out as
   * it was. Must not print or touch anything shared but read-only data. */
  int (*build)(void *worker, const hv_result *res, hvg_buf *out,
               hvg_err *err);
  /* On the caller's thread, once per record, in the order put: res with its
   * issues; for a record that passed, what build appended (out, len) or its
   * error (rc != 0, err). Returns 0 to go on, or a code > 1 to stop: the
   * records put after it are then dropped without a commit. */
  int (*commit)(void *commit_ctx, const hv_result *res, const char *out,
                size_t len, int rc, const hvg_err *err);
  void *worker_ctx, *commit_ctx;
  size_t out_max; /* cap of one batch's output (hvg_buf max) */
} hvg_pipe_ops;

typedef struct hvg_pipe hvg_pipe;

/* A pipe with `jobs` building threads in all (the caller's and jobs - 1
 * started now; jobs >= 1). Returns 0 and *out, or HVG_ENOMEM (nothing left
 * behind). When a thread cannot be started the pipe runs with fewer. */
int hvg_pipe_new(hvg_pipe **out, int jobs, const hvg_pipe_ops *ops);

/* Copies res (its values, issues and derived fields; its other pointers —
 * file name, catalogue entries — must stay valid until the record is
 * committed) and may commit older records. Returns 0, the code of a commit
 * that stopped the pipe (then, and after, nothing is copied), or HVG_ENOMEM
 * when the record could not be copied (the pipe stays usable). */
int hvg_pipe_put(hvg_pipe *p, const hv_result *res);

/* Builds and commits every record put so far. Returns 0 or the code of the
 * commit that stopped the pipe (every later call returns it too). */
int hvg_pipe_drain(hvg_pipe *p);

/* Stops and joins the threads; records not drained are dropped. NULL is
 * fine. */
void hvg_pipe_free(hvg_pipe *p);

#endif
