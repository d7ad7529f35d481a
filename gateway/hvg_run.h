/* hvg_run — one pass of a program's mapping over export files, shared by
 * `map`, `check-mapping` and `ingest`: picks each file's source (by file
 * name, or the one named), reads record types in dependency order (consents,
 * then screenings, then the rest, so that consent and referral-reason checks
 * see what they need whatever order the files were given in), maps every
 * record, prints every issue as `file:line: field: reason`, and hands each
 * record that passed to the caller. Only the CLI layer uses it: it prints. */
#ifndef HVG_RUN_H
#define HVG_RUN_H

#include "hv_mapper.h"
#include "hvg_buf.h"

#include <stdio.h>

typedef struct hvg_run_stats {
  unsigned long records, accepted, rejected, warnings;
} hvg_run_stats;

/* Outputs made on several threads (hvg_pipe.h), in place of accept. */
typedef struct hvg_run_jobs {
  /* State of each building thread (the run's own included), from the run's
   * ctx; NULL when out of memory. */
  void *(*worker_new)(void *ctx);
  void (*worker_free)(void *worker);
  /* On any building thread, for a record that passed: appends its output to
   * out; 0, or an HVG_E* code with err filled and out as it was. Prints
   * nothing. */
  int (*build)(void *worker, const hv_result *res, hvg_buf *out,
               hvg_err *err);
  /* On the run's thread, in input order, after the record's issues were
   * printed: build's output (rc 0) or its error. Returns as accept does. */
  int (*emit)(void *ctx, const hv_result *res, const char *out, size_t len,
              int rc, const hvg_err *err);
  size_t out_max; /* cap of the outputs of one batch */
} hvg_run_jobs;

typedef struct hvg_run {
  const hv_mapping *map;
  const hv_catalog *cat;
  long today_days;    /* "not in the future" checks */
  const char *source; /* source name for every file, or NULL: by file name */
  FILE *issues;       /* where issue lines go (stderr if NULL) */
  /* Each record that passed the checks. Returns 0 to go on, 1 when the
   * record failed after all (the callback printed why: it is counted as
   * rejected), or an exit code > 1 to stop the run. */
  int (*accept)(void *ctx, const hv_result *res);
  /* Optional: after each file, with that file's counts. */
  void (*file_done)(void *ctx, const char *path, const hv_source *src,
                    const hvg_run_stats *file);
  void *ctx;
  hvg_run_stats st; /* totals, filled by the run */
} hvg_run;

/* Maps paths[0..n) ("-" is standard input and needs r->source). Returns an
 * exit code (hvg_cli.h): 0; 65 when records were rejected or a file stopped
 * at a malformed structure (the rest of that file is lost, the others go
 * on); 64 when a file matches no source; 66 when a file cannot be read; 78
 * when a mapped column is missing from a file; 70 out of memory; or the
 * callback's code. */
int hvg_run_files(hvg_run *r, int n, char **paths);

/* The same with the outputs made by `jobs` threads in all (the run's own
 * included; jobs <= 1 is hvg_run_files) through b instead of r->accept:
 * records are read and mapped on the run's thread, and issues, outputs,
 * counts and the exit code come out as with an accept that builds and
 * emits, in input order. Also 70 when the threads' state cannot be made. */
int hvg_run_files_jobs(hvg_run *r, int n, char **paths, int jobs,
                       const hvg_run_jobs *b);

/* The same over one in-memory export named `name` (for messages); the
 * source is r->source, or the one matching name. Referral reasons are not
 * checked against other inputs. */
int hvg_run_mem(hvg_run *r, const char *name, const char *data, size_t len);

/* Prints res's issues (errors and warnings) to f, counting warnings in st. */
void hvg_run_print_issues(FILE *f, const hv_result *res, hvg_run_stats *st);

#endif
