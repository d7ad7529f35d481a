#include "hvg_cli.h"

#include "fhir_check.h"
#include "hv_mapper.h"
#include "hv_tofhir.h"
#include "hvg_run.h"
#include "hvg_version.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef HVG_DATADIR
#define HVG_DATADIR "/usr/share/hvgate"
#endif

#define FLUSH_AT ((size_t)1 << 20)
#define OUT_MAX ((size_t)256 << 20)

typedef struct map_opts {
  const char *mapping;
  const char *output;
  const char *rejects;
  const char *source;
  const char *catalog_dir;
  fhir_format fmt;
  int ndjson;
  int pretty;
  int quiet;
  long today_days;
  int preview; /* check-mapping: records to show */
  int show_phi;
  int jobs; /* threads that build Bundles (ndjson) */
} map_opts;

#define JOBS_MAX 64

static void map__usage(FILE *f) {
  fputs(
      "usage: hvgate map -m MAPPING [options] INPUT...\n"
      "\n"
      "Map a home visiting program's export files to FHIR R4 transaction\n"
      "Bundles, one per source record. Rejected records are reported as\n"
      "FILE:LINE: FIELD: REASON and every other record goes through.\n"
      "\n"
      "options:\n"
      "  -m, --mapping FILE    mapping file (required)\n"
      "  -o, --output FILE     write Bundles here (default: standard output)\n"
      "  -f, --format FMT      ndjson (default: one Bundle per line), json or\n"
      "                        xml (a collection Bundle of the Bundles)\n"
      "      --rejects FILE    write rejections and warnings to FILE instead\n"
      "                        of standard error\n"
      "  -s, --source NAME     read every INPUT as this source of the mapping\n"
      "                        (default: chosen by the source's file patterns)\n"
      "      --catalog-dir DIR catalogues used when the mapping names none\n"
      "      --today DATE      reference date for 'in the future' checks\n"
      "                        (YYYY-MM-DD, default: today)\n"
      "      --pretty          indent the output\n"
      "  -j, --jobs N          threads that build Bundles (default: the\n"
      "                        number of online CPUs; 1: one thread does\n"
      "                        everything). Output, rejections and warnings\n"
      "                        are in input order either way. ndjson only:\n"
      "                        json and xml are written by one thread\n"
      "  -q, --quiet           no summary line\n"
      "  -h, --help            this help\n"
      "\n"
      "INPUT may be '-' for standard input (then --source is required).\n"
      "Screening files are read before the others so referrals can be\n"
      "checked against the screenings they name.\n"
      "\n"
      "exit status: 0 all records mapped, 65 some records rejected, 64 usage,\n"
      "66 an input cannot be read, 74 output error, 78 mapping error.\n",
      f);
}

static void check__usage(FILE *f) {
  fputs("usage: hvgate check-mapping -m MAPPING [options] [INPUT...]\n"
        "\n"
        "Check a mapping file: every error is reported with its line and\n"
        "JSON pointer. With INPUT files, also read them through the mapping,\n"
        "report every record that would be rejected, and preview the first\n"
        "mapped records as canonical fields.\n"
        "\n"
        "options:\n"
        "  -m, --mapping FILE    mapping file (required)\n"
        "  -s, --source NAME     read every INPUT as this source\n"
        "  -n, --preview N       records to preview per file (default 3)\n"
        "      --show-phi        show names, birth dates and phone numbers in\n"
        "                        the preview (masked by default)\n"
        "      --catalog-dir DIR catalogues used when the mapping names none\n"
        "      --today DATE      reference date for 'in the future' checks\n"
        "  -h, --help            this help\n"
        "\n"
        "exit status: 0 mapping valid and no record rejected, 65 some\n"
        "records rejected, 64 usage, 66 input unreadable, 78 mapping error.\n",
        f);
}

static long map__today(void) {
  char s[11];
  fhir_date_utc(time(NULL), s);
  long d = 0;
  fhir_date_days(s, &d);
  return d;
}

/* Parses the options shared by map and check-mapping. Returns -1 to go on,
 * or an exit code. */
static int map__parse(int argc, char **argv, map_opts *o, int check) {
  enum { O_REJECTS = 256, O_CATDIR, O_TODAY, O_PRETTY, O_PHI };
  static const struct option longopts[] = {
      {"mapping", required_argument, NULL, 'm'},
      {"output", required_argument, NULL, 'o'},
      {"format", required_argument, NULL, 'f'},
      {"source", required_argument, NULL, 's'},
      {"preview", required_argument, NULL, 'n'},
      {"rejects", required_argument, NULL, O_REJECTS},
      {"catalog-dir", required_argument, NULL, O_CATDIR},
      {"today", required_argument, NULL, O_TODAY},
      {"pretty", no_argument, NULL, O_PRETTY},
      {"show-phi", no_argument, NULL, O_PHI},
      {"quiet", no_argument, NULL, 'q'},
      {"jobs", required_argument, NULL, 'j'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  void (*usage)(FILE *) = check ? check__usage : map__usage;
  memset(o, 0, sizeof *o);
  o->ndjson = 1;
  o->preview = 3;
  o->catalog_dir = getenv("HVGATE_CATALOG_DIR");
  if (!o->catalog_dir)
    o->catalog_dir = HVG_DATADIR "/catalog";
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, check ? "m:o:f:s:n:qh" : "m:o:f:s:n:j:qh",
                          longopts, NULL)) != -1) {
    switch (c) {
    case 'm': o->mapping = optarg; break;
    case 'o': o->output = optarg; break;
    case 's': o->source = optarg; break;
    case 'q': o->quiet = 1; break;
    case O_REJECTS: o->rejects = optarg; break;
    case O_CATDIR: o->catalog_dir = optarg; break;
    case O_PRETTY: o->pretty = 1; break;
    case O_PHI: o->show_phi = 1; break;
    case 'n': {
      char *end;
      long n = strtol(optarg, &end, 10);
      if (*end || n < 0 || n > 1000) {
        fprintf(stderr, "hvgate: --preview takes a number from 0 to 1000\n");
        return HVG_EXIT_USAGE;
      }
      o->preview = (int)n;
      break;
    }
    case 'j': {
      char *end;
      long n = strtol(optarg, &end, 10);
      if (check) {
        fprintf(stderr, "hvgate: unknown option '--jobs'\n");
        usage(stderr);
        return HVG_EXIT_USAGE;
      }
      if (!*optarg || *end || n < 1 || n > JOBS_MAX) {
        fprintf(stderr, "hvgate: --jobs takes a number from 1 to %d\n",
                JOBS_MAX);
        return HVG_EXIT_USAGE;
      }
      o->jobs = (int)n;
      break;
    }
    case 'f':
      if (!strcmp(optarg, "ndjson")) {
        o->fmt = FHIR_JSON;
        o->ndjson = 1;
      } else if (!strcmp(optarg, "json")) {
        o->fmt = FHIR_JSON;
        o->ndjson = 0;
      } else if (!strcmp(optarg, "xml")) {
        o->fmt = FHIR_XML;
        o->ndjson = 0;
      } else {
        fprintf(stderr, "hvgate: --format must be ndjson, json or xml\n");
        return HVG_EXIT_USAGE;
      }
      break;
    case O_TODAY:
      if (fhir_date_days(optarg, &o->today_days)) {
        fprintf(stderr, "hvgate: --today must be a date YYYY-MM-DD\n");
        return HVG_EXIT_USAGE;
      }
      break;
    case 'h':
      usage(stdout);
      return HVG_EXIT_OK;
    default:
      if (optopt)
        fprintf(stderr, "hvgate: option -%c: unknown or needs a value\n",
                optopt);
      else
        fprintf(stderr, "hvgate: unknown option '%s'\n", argv[optind - 1]);
      usage(stderr);
      return HVG_EXIT_USAGE;
    }
  }
  if (!o->mapping) {
    fprintf(stderr, "hvgate: -m MAPPING is required\n");
    usage(stderr);
    return HVG_EXIT_USAGE;
  }
  if (!check && optind >= argc) {
    fprintf(stderr, "hvgate: no INPUT files\n");
    usage(stderr);
    return HVG_EXIT_USAGE;
  }
  if (o->pretty && o->ndjson) {
    fprintf(stderr, "hvgate: --pretty does not go with ndjson (one Bundle "
                    "per line); use --format json or xml\n");
    return HVG_EXIT_USAGE;
  }
  if (!o->today_days)
    o->today_days = map__today();
  if (!o->jobs) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    o->jobs = n < 1 ? 1 : n > JOBS_MAX ? JOBS_MAX : (int)n;
  }
  return -1;
}

/* Loads mapping and catalogues, printing problems. Exit code or -1. */
static int map__load(const map_opts *o, hv_mapping **m, hv_catalog **cat) {
  *cat = NULL;
  hvg_buf diag;
  hvg_buf_init(&diag, 1 << 20);
  int rc = hv_mapping_load(m, o->mapping, o->catalog_dir, &diag);
  if (!rc)
    rc = hv_catalog_load(cat, (*m)->instruments_path, (*m)->services_path,
                         &diag);
  if (diag.len)
    fputs(diag.data, stderr);
  hvg_buf_free(&diag);
  if (!rc)
    return -1;
  if (rc == HVG_ENOMEM) {
    fprintf(stderr, "hvgate: out of memory\n");
    return HVG_EXIT_SOFTWARE;
  }
  return rc == HVG_ENOINPUT && !*cat ? HVG_EXIT_NOINPUT : HVG_EXIT_CONFIG;
}

static int map__flush(int fd, hvg_buf *b) {
  size_t off = 0;
  while (off < b->len) {
    ssize_t w = write(fd, b->data + off, b->len - off);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    off += (size_t)w;
  }
  hvg_buf_reset(b);
  return 0;
}

/* What a thread that builds Bundles needs of its own. */
typedef struct map_worker {
  hv_tofhir tf;
  hvg_arena scratch;
} map_worker;

/* What the map command's accept callback needs. */
typedef struct map_ctx {
  const map_opts *o;
  const hv_mapping *map;
  const hv_catalog *cat;
  map_worker own; /* the run's thread */
  fhir_writer w;  /* the collection Bundle (json/xml) */
  hvg_buf out;
  int fd;
  FILE *rej;
  int io_error;
} map_ctx;

/* 0, or nonzero with nothing left to free. */
static int map__worker_init(map_worker *mw, const map_ctx *m) {
  hvg_arena_init(&mw->scratch, (size_t)16 << 20);
  int rc = hv_tofhir_init(&mw->tf, m->map, m->cat);
  if (rc)
    hvg_arena_free(&mw->scratch);
  return rc;
}

static void map__worker_fini(map_worker *mw) {
  hv_tofhir_free(&mw->tf);
  hvg_arena_free(&mw->scratch);
}

static void *map__worker_new(void *ctx) {
  map_worker *mw = malloc(sizeof *mw);
  if (mw && map__worker_init(mw, ctx)) {
    free(mw);
    return NULL;
  }
  return mw;
}

static void map__worker_free(void *worker) {
  map__worker_fini(worker);
  free(worker);
}

/* One record's Bundle as a line of ndjson appended to out; 0 or an error
 * with err filled and out as it was. */
static int map__build(void *worker, const hv_result *res, hvg_buf *out,
                      hvg_err *err) {
  map_worker *mw = worker;
  size_t mark = out->len;
  hvg_arena_reset(&mw->scratch);
  fhir_writer w;
  fhir_w_init(&w, out, FHIR_JSON, 0);
  int brc = hv_tofhir_bundle(&mw->tf, &w, res, &mw->scratch, err);
  if (!brc)
    brc = fhir_w_finish(&w) ? fhir_w_error(&w) : hvg_buf_addc(out, '\n');
  if (brc)
    hvg_buf_truncate(out, mark);
  return brc;
}

/* A record whose Bundle could not be built: its line; returns 1 (counted as
 * rejected). */
static int map__failed(map_ctx *m, const hv_result *res, int brc,
                       const hvg_err *err) {
  fprintf(m->rej, "%s:%lu: %s: %s\n", res->rec.file, res->rec.line,
          err->field[0] ? err->field : "(record)",
          err->msg[0] ? err->msg : hvg_strerror(brc));
  return 1;
}

/* Writes the output out once a MiB is waiting; 0 or HVG_EXIT_IOERR. */
static int map__flush_full(map_ctx *m) {
  if (m->out.len >= FLUSH_AT && map__flush(m->fd, &m->out)) {
    fprintf(stderr, "hvgate: cannot write output: %s\n", strerror(errno));
    m->io_error = 1;
    return HVG_EXIT_IOERR;
  }
  return 0;
}

/* Writes one accepted record's Bundle: a line of ndjson, or an entry of the
 * collection. A Bundle that cannot be built leaves no trace in the output. */
static int map__accept(void *ctx, const hv_result *res) {
  map_ctx *m = ctx;
  size_t mark = m->out.len;
  hvg_err err;
  hvg_err_clear(&err);
  int brc;
  if (m->o->ndjson) {
    brc = map__build(&m->own, res, &m->out, &err);
  } else {
    fhir_writer saved = m->w;
    hvg_arena_reset(&m->own.scratch);
    fhir_bundle_entry_begin(&m->w, NULL);
    brc = hv_tofhir_bundle(&m->own.tf, &m->w, res, &m->own.scratch, &err);
    if (!brc)
      brc = fhir_bundle_entry_end(&m->w, NULL, &err);
    if (brc) {
      hvg_buf_truncate(&m->out, mark);
      m->w = saved;
    }
  }
  if (brc)
    return map__failed(m, res, brc, &err);
  return map__flush_full(m);
}

/* --jobs: a Bundle built on another thread, in input order. The Bundle is
 * built into that thread's batch and copied here; built in m->out instead,
 * it would have failed only past OUT_MAX, which no record gets near (its
 * values are capped at 4 KiB each). */
static int map__emit(void *ctx, const hv_result *res, const char *bundle,
                     size_t len, int brc, const hvg_err *err) {
  map_ctx *m = ctx;
  if (brc)
    return map__failed(m, res, brc, err);
  int rc = hvg_buf_add(&m->out, bundle, len);
  if (rc) {
    hvg_err e;
    hvg_err_set(&e, rc, NULL, "cannot write the Bundle: %s",
                hvg_strerror(rc));
    return map__failed(m, res, rc, &e);
  }
  return map__flush_full(m);
}

static const hvg_run_jobs map__jobs = {map__worker_new, map__worker_free,
                                       map__build, map__emit, OUT_MAX};

int hvg_cli_map(int argc, char **argv) {
  map_opts o;
  int rc = map__parse(argc, argv, &o, 0);
  if (rc >= 0)
    return rc;
  hv_mapping *m = NULL;
  hv_catalog *cat = NULL;
  map_ctx mc;
  memset(&mc, 0, sizeof mc);
  mc.o = &o;
  mc.fd = STDOUT_FILENO;
  mc.rej = stderr;
  hvg_buf_init(&mc.out, OUT_MAX);
  int tf_ready = 0, exit_code = HVG_EXIT_OK;
  if ((rc = map__load(&o, &m, &cat)) >= 0) {
    exit_code = rc;
    goto done;
  }
  mc.map = m;
  mc.cat = cat;
  if (map__worker_init(&mc.own, &mc)) {
    exit_code = HVG_EXIT_SOFTWARE;
    goto done;
  }
  tf_ready = 1;
  if (o.rejects && !(mc.rej = fopen(o.rejects, "w"))) {
    fprintf(stderr, "hvgate: %s: cannot write: %s\n", o.rejects,
            strerror(errno));
    mc.rej = stderr;
    exit_code = HVG_EXIT_IOERR;
    goto done;
  }
  if (o.output && (mc.fd = open(o.output, O_WRONLY | O_CREAT | O_TRUNC |
                                              O_CLOEXEC,
                                0644)) < 0) {
    fprintf(stderr, "hvgate: %s: cannot write: %s\n", o.output,
            strerror(errno));
    mc.fd = STDOUT_FILENO;
    exit_code = HVG_EXIT_IOERR;
    goto done;
  }
  fhir_w_init(&mc.w, &mc.out, o.fmt, o.pretty ? FHIR_W_PRETTY : 0);
  hvg_err err;
  hvg_err_clear(&err);
  if (!o.ndjson && fhir_bundle_begin(&mc.w, NULL, "collection", NULL, &err)) {
    exit_code = HVG_EXIT_SOFTWARE;
    goto done;
  }
  hvg_run run = {m, cat, o.today_days, o.source, mc.rej, map__accept, NULL,
                 &mc, {0, 0, 0, 0}};
  exit_code = hvg_run_files_jobs(&run, argc - optind, argv + optind,
                                 o.ndjson ? o.jobs : 1, &map__jobs);
  if (mc.io_error)
    goto done;
  if (!o.ndjson) {
    fhir_bundle_end(&mc.w);
    if (fhir_w_finish(&mc.w) || (!o.pretty && hvg_buf_addc(&mc.out, '\n'))) {
      fprintf(stderr, "hvgate: output error: %s\n",
              hvg_strerror(fhir_w_error(&mc.w)));
      exit_code = HVG_EXIT_SOFTWARE;
      goto done;
    }
  }
  if (map__flush(mc.fd, &mc.out) ||
      (o.output && fsync(mc.fd) && errno != EINVAL)) {
    fprintf(stderr, "hvgate: cannot write output: %s\n", strerror(errno));
    exit_code = HVG_EXIT_IOERR;
    goto done;
  }
  if (!o.quiet)
    fprintf(stderr,
            "hvgate map: %lu records: %lu mapped, %lu rejected, %lu "
            "warnings\n",
            run.st.records, run.st.accepted, run.st.rejected,
            run.st.warnings);
done:
  if (mc.fd != STDOUT_FILENO && close(mc.fd) && exit_code == HVG_EXIT_OK)
    exit_code = HVG_EXIT_IOERR;
  if (mc.rej != stderr)
    fclose(mc.rej);
  hvg_buf_free(&mc.out);
  if (tf_ready)
    map__worker_fini(&mc.own);
  hv_catalog_free(cat);
  hv_mapping_free(m);
  return exit_code;
}

/* ---- check-mapping ---------------------------------------------------- */

static void check__preview(const hv_result *res, int show_phi) {
  printf("%s:%lu: %s record\n", res->rec.file, res->rec.line,
         hv_rectype_name(res->rec.type));
  for (int f = 0; f < HV_F__COUNT; f++) {
    const char *v = res->rec.v[f];
    if (!v)
      continue;
    const hv_field_info *fi = hv_field_get((hv_field)f);
    if ((fi->flags & HV_PHI) && !show_phi)
      printf("  %-34s (%zu characters, masked)\n", fi->name, strlen(v));
    else
      printf("  %-34s %s\n", fi->name, v);
  }
  if (res->rec.type == HV_REC_SCREENING && res->interpretation >= 0)
    printf("  %-34s %s (catalogue cutoff)\n", "=> interpretation",
           res->interpretation ? "positive" : "negative");
}

typedef struct check_ctx {
  int shown, preview, show_phi;
} check_ctx;

static int check__accept(void *ctx, const hv_result *res) {
  check_ctx *c = ctx;
  if (c->shown < c->preview) {
    check__preview(res, c->show_phi);
    c->shown++;
  }
  return 0;
}

static void check__file_done(void *ctx, const char *path,
                             const hv_source *src, const hvg_run_stats *fs) {
  check_ctx *c = ctx;
  printf("%s: %lu records as source '%s': %lu would be rejected, %lu "
         "warnings\n",
         path, fs->records, src->name, fs->rejected, fs->warnings);
  c->shown = 0;
}

int hvg_cli_check_mapping(int argc, char **argv) {
  map_opts o;
  int rc = map__parse(argc, argv, &o, 1);
  if (rc >= 0)
    return rc;
  hv_mapping *m = NULL;
  hv_catalog *cat = NULL;
  if ((rc = map__load(&o, &m, &cat)) >= 0) {
    hv_mapping_free(m);
    return rc;
  }
  printf("%s: mapping for program '%s' is valid: %zu source%s\n", o.mapping,
         m->program_id, m->n_sources, m->n_sources == 1 ? "" : "s");
  for (size_t i = 0; i < m->n_sources; i++) {
    const hv_source *s = &m->sources[i];
    printf("  %-16s %-10s %zu fields", s->name, hv_rectype_name(s->type),
           s->n_fields);
    if (s->n_export_fields)
      printf(", %zu export_fields", s->n_export_fields);
    putchar('\n');
  }
  int exit_code = HVG_EXIT_OK;
  if (argc > optind) {
    check_ctx cc = {0, o.preview, o.show_phi};
    hvg_run run = {m,  cat, o.today_days, o.source, stderr, check__accept,
                   check__file_done, &cc, {0, 0, 0, 0}};
    exit_code = hvg_run_files(&run, argc - optind, argv + optind);
  }
  hv_catalog_free(cat);
  hv_mapping_free(m);
  return exit_code;
}
