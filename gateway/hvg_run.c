#include "hvg_run.h"

#include "hvg_cli.h"
#include "hvg_pipe.h"

#include <stdlib.h>
#include <string.h>

typedef struct hvg__input {
  const char *path;
  const hv_source *src;
} hvg__input;

/* Dependency order of record types: consents gate what may be sent,
 * screenings are the reasons referrals point to. */
static int hvg__rank(hv_rectype t) {
  return t == HV_REC_CONSENT ? 0 : t == HV_REC_SCREENING ? 1 : 2;
}

void hvg_run_print_issues(FILE *f, const hv_result *res, hvg_run_stats *st) {
  for (size_t i = 0; i < res->n_issues; i++) {
    const hv_issue *is = &res->issues[i];
    fprintf(f, "%s:%lu: %s: %s%s\n", res->rec.file, res->rec.line, is->key,
            is->severity == HV_SEV_WARNING ? "warning: " : "", is->msg);
    if (is->severity == HV_SEV_WARNING)
      st->warnings++;
  }
}

/* Picks each input's source; exit code or -1. */
static int hvg__inputs(const hvg_run *r, int n, char **paths, hvg__input *in) {
  int k = 0;
  for (int rank = 0; rank < 3; rank++) {
    for (int i = 0; i < n; i++) {
      const hv_source *s = hv_mapping_source_for(r->map, paths[i], r->source);
      if (!s && rank == 0) {
        if (r->source)
          fprintf(stderr, "hvgate: the mapping has no source named '%s'\n",
                  r->source);
        else
          fprintf(stderr,
                  "hvgate: %s: no source of %s matches this file name (or "
                  "several do); name one with --source\n",
                  paths[i], r->map->path);
        return HVG_EXIT_USAGE;
      }
      if (rank == 0 && !strcmp(paths[i], "-") && !r->source) {
        fprintf(stderr, "hvgate: reading standard input needs --source\n");
        return HVG_EXIT_USAGE;
      }
      if (s && hvg__rank(s->type) == rank) {
        in[k].path = paths[i];
        in[k].src = s;
        k++;
      }
    }
  }
  return -1;
}

/* A pipelined run (r->jobs > 1): what the pipe's commits count into. */
typedef struct hvg__piped {
  hvg_run *r;
  const hvg_run_jobs *b;
  FILE *iss;
  hvg_run_stats *fs; /* the file being read */
} hvg__piped;

/* One record in input order: what the loop of hvg__run_one does with a
 * record, with the output built elsewhere. */
static int hvg__commit(void *ctx, const hv_result *res, const char *out,
                       size_t len, int rc, const hvg_err *err) {
  hvg__piped *pd = ctx;
  pd->fs->records++;
  hvg_run_print_issues(pd->iss, res, pd->fs);
  if (res->rejected) {
    pd->fs->rejected++;
    return 0;
  }
  int a = pd->b->emit(pd->r->ctx, res, out, len, rc, err);
  if (a > 1)
    return a;
  if (a == 1)
    pd->fs->rejected++;
  else
    pd->fs->accepted++;
  return 0;
}

static void *hvg__worker_new(void *ctx) {
  hvg__piped *pd = ctx;
  return pd->b->worker_new(pd->r->ctx);
}

/* Maps one opened input to its end; updates code (an exit code). With a
 * pipe, every record goes through it and is committed before this returns,
 * so lines printed here still come after the file's records. */
static void hvg__run_one(hvg_run *r, hv_mapper *mp, const char *path,
                         const hv_source *src, FILE *iss, hvg_pipe *pipe,
                         hvg__piped *pd, int *code) {
  hvg_err err;
  hvg_err_clear(&err);
  hvg_run_stats fs = {0, 0, 0, 0};
  hv_result res;
  int rc;
  if (pd)
    pd->fs = &fs;
  while ((rc = hv_mapper_next(mp, &res, &err)) == 1) {
    if (pipe) {
      int a = hvg_pipe_put(pipe, &res);
      if (a == HVG_ENOMEM) {
        rc = hvg_err_set(&err, HVG_ENOMEM, NULL, "out of memory");
        break;
      }
      if (a > 1) {
        *code = a;
        break;
      }
      continue;
    }
    fs.records++;
    hvg_run_print_issues(iss, &res, &fs);
    if (res.rejected) {
      fs.rejected++;
      continue;
    }
    int a = r->accept ? r->accept(r->ctx, &res) : 0;
    if (a > 1) {
      *code = a;
      break;
    }
    if (a == 1)
      fs.rejected++;
    else
      fs.accepted++;
  }
  if (pipe) {
    int a = hvg_pipe_drain(pipe);
    if (a > 1) { /* one thread would have stopped there, reading no further */
      *code = a;
      rc = 0;
    }
  }
  if (rc < 0) {
    fprintf(iss, "%s:%lu: %s (the rest of this file is not read)\n", path,
            hv_mapper_line(mp), err.msg[0] ? err.msg : hvg_strerror(rc));
    if (rc == HVG_ENOMEM)
      *code = HVG_EXIT_SOFTWARE;
    else if (*code == HVG_EXIT_OK)
      *code = HVG_EXIT_DATAERR;
  }
  r->st.records += fs.records;
  r->st.accepted += fs.accepted;
  r->st.rejected += fs.rejected;
  r->st.warnings += fs.warnings;
  if (r->file_done)
    r->file_done(r->ctx, path, src, &fs);
  hv_mapper_close(mp);
}

/* An open failure as an exit code, merged into code. */
static void hvg__open_failed(FILE *iss, const char *path, int rc,
                             const hvg_err *err, int *code) {
  fprintf(iss, "%s: %s%s%s\n", path, err->field, err->field[0] ? ": " : "",
          err->msg[0] ? err->msg : hvg_strerror(rc));
  int c = rc == HVG_ENOINPUT   ? HVG_EXIT_NOINPUT
          : rc == HVG_ENOTFOUND ? HVG_EXIT_CONFIG
          : rc == HVG_ENOMEM    ? HVG_EXIT_SOFTWARE
                                : HVG_EXIT_DATAERR;
  if (*code == HVG_EXIT_OK || c != HVG_EXIT_DATAERR)
    *code = c;
}

int hvg_run_files(hvg_run *r, int n, char **paths) {
  return hvg_run_files_jobs(r, n, paths, 1, NULL);
}

int hvg_run_files_jobs(hvg_run *r, int n, char **paths, int jobs,
                       const hvg_run_jobs *b) {
  FILE *iss = r->issues ? r->issues : stderr;
  memset(&r->st, 0, sizeof r->st);
  hvg__input *in = calloc(n > 0 ? (size_t)n : 1, sizeof *in);
  if (!in)
    return HVG_EXIT_SOFTWARE;
  int code = hvg__inputs(r, n, paths, in);
  if (code >= 0) {
    free(in);
    return code;
  }
  code = HVG_EXIT_OK;
  hv_mapper_opts mo = {r->today_days, 0};
  for (int i = 0; i < n; i++)
    mo.track_screenings |= in[i].src->type == HV_REC_REFERRAL;
  hv_mapper *mp = NULL;
  if (hv_mapper_new(&mp, r->map, r->cat, &mo)) {
    free(in);
    return HVG_EXIT_SOFTWARE;
  }
  hvg_pipe *pipe = NULL;
  hvg__piped pd = {r, b, iss, NULL};
  if (jobs > 1 && b) {
    hvg_pipe_ops ops = {hvg__worker_new, b->worker_free, b->build,
                        hvg__commit, &pd, &pd, b->out_max};
    if (hvg_pipe_new(&pipe, jobs, &ops)) {
      fprintf(stderr, "hvgate: out of memory\n");
      hv_mapper_free(mp);
      free(in);
      return HVG_EXIT_SOFTWARE;
    }
  }
  for (int i = 0; i < n && code <= HVG_EXIT_DATAERR; i++) {
    hvg_err err;
    hvg_err_clear(&err);
    int rc = hv_mapper_open(mp, in[i].path, NULL, in[i].src, &err);
    if (rc)
      hvg__open_failed(iss, in[i].path, rc, &err, &code);
    else
      hvg__run_one(r, mp, in[i].path, in[i].src, iss, pipe,
                   pipe ? &pd : NULL, &code);
  }
  hvg_pipe_free(pipe);
  hv_mapper_free(mp);
  free(in);
  if (r->st.rejected && code == HVG_EXIT_OK)
    code = HVG_EXIT_DATAERR;
  return code;
}

int hvg_run_mem(hvg_run *r, const char *name, const char *data, size_t len) {
  FILE *iss = r->issues ? r->issues : stderr;
  memset(&r->st, 0, sizeof r->st);
  const hv_source *src = hv_mapping_source_for(r->map, name, r->source);
  if (!src) {
    fprintf(iss, "%s: the mapping has no source %s%s%s\n", name,
            r->source ? "named '" : "for this name",
            r->source ? r->source : "", r->source ? "'" : "");
    return HVG_EXIT_USAGE;
  }
  /* referral reasons can only be checked against screenings of the same
   * input here, so they are not tracked across requests */
  hv_mapper_opts mo = {r->today_days, 0};
  hv_mapper *mp = NULL;
  if (hv_mapper_new(&mp, r->map, r->cat, &mo))
    return HVG_EXIT_SOFTWARE;
  int code = HVG_EXIT_OK;
  hvg_err err;
  hvg_err_clear(&err);
  int rc = hv_mapper_open_mem(mp, name, data, len, src, &err);
  if (rc)
    hvg__open_failed(iss, name, rc, &err, &code);
  else
    hvg__run_one(r, mp, name, src, iss, NULL, NULL, &code);
  hv_mapper_free(mp);
  if (r->st.rejected && code == HVG_EXIT_OK)
    code = HVG_EXIT_DATAERR;
  return code;
}
