#include "hvg_cli.h"

#include "fhir_check.h"
#include "hv_mapper.h"
#include "hv_tofhir.h"
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
} map_opts;

typedef struct map_input {
  const char *path;
  const hv_source *src;
} map_input;

typedef struct map_stats {
  unsigned long records, mapped, rejected, warnings;
} map_stats;

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
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  char s[11];
  strftime(s, sizeof s, "%Y-%m-%d", &tm);
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
  while ((c = getopt_long(argc, argv, "m:o:f:s:n:qh", longopts, NULL)) != -1) {
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

/* Picks each input's source and orders screenings first. Exit code or -1. */
static int map__inputs(const map_opts *o, const hv_mapping *m, int n,
                       char **paths, map_input *in) {
  int k = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < n; i++) {
      const hv_source *s = hv_mapping_source_for(m, paths[i], o->source);
      if (!s) {
        if (pass == 0) {
          if (o->source)
            fprintf(stderr, "hvgate: the mapping has no source named '%s'\n",
                    o->source);
          else
            fprintf(stderr,
                    "hvgate: %s: no source of %s matches this file name (or "
                    "several do); name one with --source\n",
                    paths[i], o->mapping);
          return HVG_EXIT_USAGE;
        }
        continue;
      }
      if (!strcmp(paths[i], "-") && !o->source) {
        fprintf(stderr, "hvgate: reading standard input needs --source\n");
        return HVG_EXIT_USAGE;
      }
      if ((s->type == HV_REC_SCREENING) == (pass == 0)) {
        in[k].path = paths[i];
        in[k].src = s;
        k++;
      }
    }
  }
  return -1;
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

static void map__issues(FILE *f, const hv_result *res, map_stats *st) {
  for (size_t i = 0; i < res->n_issues; i++) {
    const hv_issue *is = &res->issues[i];
    fprintf(f, "%s:%lu: %s: %s%s\n", res->rec.file, res->rec.line, is->key,
            is->severity == HV_SEV_WARNING ? "warning: " : "", is->msg);
    if (is->severity == HV_SEV_WARNING)
      st->warnings++;
  }
}

int hvg_cli_map(int argc, char **argv) {
  map_opts o;
  int rc = map__parse(argc, argv, &o, 0);
  if (rc >= 0)
    return rc;
  int ninputs = argc - optind;
  char **paths = argv + optind;
  hv_mapping *m = NULL;
  hv_catalog *cat = NULL;
  hv_mapper *mp = NULL;
  hv_tofhir tf;
  int tf_ready = 0;
  map_input *in = calloc((size_t)ninputs, sizeof *in);
  FILE *rej = stderr;
  int fd = STDOUT_FILENO;
  int exit_code = HVG_EXIT_OK;
  hvg_buf out;
  hvg_buf_init(&out, OUT_MAX);
  hvg_arena scratch;
  hvg_arena_init(&scratch, (size_t)16 << 20);
  map_stats st = {0};
  if (!in) {
    exit_code = HVG_EXIT_SOFTWARE;
    goto done;
  }
  if ((rc = map__load(&o, &m, &cat)) >= 0) {
    exit_code = rc;
    goto done;
  }
  if ((rc = map__inputs(&o, m, ninputs, paths, in)) >= 0) {
    exit_code = rc;
    goto done;
  }
  hv_mapper_opts mo = {o.today_days, 0};
  for (int i = 0; i < ninputs; i++)
    mo.track_screenings |= in[i].src->type == HV_REC_REFERRAL;
  if (hv_mapper_new(&mp, m, cat, &mo) || hv_tofhir_init(&tf, m, cat)) {
    exit_code = HVG_EXIT_SOFTWARE;
    goto done;
  }
  tf_ready = 1;
  if (o.rejects && !(rej = fopen(o.rejects, "w"))) {
    fprintf(stderr, "hvgate: %s: cannot write: %s\n", o.rejects,
            strerror(errno));
    rej = stderr;
    exit_code = HVG_EXIT_IOERR;
    goto done;
  }
  if (o.output &&
      (fd = open(o.output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
    fprintf(stderr, "hvgate: %s: cannot write: %s\n", o.output,
            strerror(errno));
    fd = STDOUT_FILENO;
    exit_code = HVG_EXIT_IOERR;
    goto done;
  }

  unsigned wflags = (o.pretty ? FHIR_W_PRETTY : 0);
  fhir_writer w;
  fhir_w_init(&w, &out, o.fmt, wflags);
  hvg_err err;
  hvg_err_clear(&err);
  if (!o.ndjson &&
      fhir_bundle_begin(&w, NULL, "collection", NULL, &err)) {
    exit_code = HVG_EXIT_SOFTWARE;
    goto done;
  }
  for (int i = 0; i < ninputs; i++) {
    const char *path = in[i].path;
    hvg_err_clear(&err);
    rc = hv_mapper_open(mp, path, NULL, in[i].src, &err);
    if (rc) {
      fprintf(stderr, "%s: %s%s%s\n", path, err.field[0] ? err.field : "",
              err.field[0] ? ": " : "", err.msg[0] ? err.msg : hvg_strerror(rc));
      int code = rc == HVG_ENOINPUT ? HVG_EXIT_NOINPUT
                 : rc == HVG_ENOTFOUND ? HVG_EXIT_CONFIG
                                       : HVG_EXIT_DATAERR;
      if (exit_code == HVG_EXIT_OK || code == HVG_EXIT_NOINPUT)
        exit_code = code;
      continue;
    }
    hv_result res;
    while ((rc = hv_mapper_next(mp, &res, &err)) == 1) {
      st.records++;
      if (res.rejected) {
        st.rejected++;
        map__issues(rej, &res, &st);
        continue;
      }
      if (res.n_issues)
        map__issues(rej, &res, &st);
      size_t mark = out.len;
      fhir_writer saved = w;
      hvg_arena_reset(&scratch);
      int brc;
      if (o.ndjson) {
        fhir_w_init(&w, &out, FHIR_JSON, 0);
        brc = hv_tofhir_bundle(&tf, &w, &res, &scratch, &err);
        if (!brc)
          brc = fhir_w_finish(&w) ? fhir_w_error(&w) : hvg_buf_addc(&out, '\n');
      } else {
        fhir_bundle_entry_begin(&w, NULL);
        brc = hv_tofhir_bundle(&tf, &w, &res, &scratch, &err);
        if (!brc)
          brc = fhir_bundle_entry_end(&w, NULL, &err);
      }
      if (brc) {
        hvg_buf_truncate(&out, mark);
        w = saved;
        st.rejected++;
        fprintf(rej, "%s:%lu: %s: %s\n", res.rec.file, res.rec.line,
                err.field[0] ? err.field : "(record)",
                err.msg[0] ? err.msg : hvg_strerror(brc));
        continue;
      }
      st.mapped++;
      if (out.len >= FLUSH_AT && map__flush(fd, &out)) {
        fprintf(stderr, "hvgate: cannot write output: %s\n", strerror(errno));
        exit_code = HVG_EXIT_IOERR;
        goto done;
      }
    }
    if (rc < 0) {
      fprintf(stderr, "%s:%lu: %s (the rest of this file is not read)\n",
              path, hv_mapper_line(mp),
              err.msg[0] ? err.msg : hvg_strerror(rc));
      if (exit_code == HVG_EXIT_OK)
        exit_code = HVG_EXIT_DATAERR;
    }
    hv_mapper_close(mp);
  }
  if (!o.ndjson) {
    fhir_bundle_end(&w);
    if (fhir_w_finish(&w) || (!o.pretty && hvg_buf_addc(&out, '\n'))) {
      fprintf(stderr, "hvgate: output error: %s\n",
              hvg_strerror(fhir_w_error(&w)));
      exit_code = HVG_EXIT_SOFTWARE;
      goto done;
    }
  }
  if (map__flush(fd, &out) || (o.output && fsync(fd) && errno != EINVAL)) {
    fprintf(stderr, "hvgate: cannot write output: %s\n", strerror(errno));
    exit_code = HVG_EXIT_IOERR;
    goto done;
  }
  if (st.rejected && exit_code == HVG_EXIT_OK)
    exit_code = HVG_EXIT_DATAERR;
  if (!o.quiet)
    fprintf(stderr,
            "hvgate map: %lu records: %lu mapped, %lu rejected, %lu "
            "warnings\n",
            st.records, st.mapped, st.rejected, st.warnings);
done:
  if (fd != STDOUT_FILENO && close(fd) && exit_code == HVG_EXIT_OK)
    exit_code = HVG_EXIT_IOERR;
  if (rej != stderr)
    fclose(rej);
  hvg_buf_free(&out);
  hvg_arena_free(&scratch);
  if (tf_ready)
    hv_tofhir_free(&tf);
  hv_mapper_free(mp);
  hv_catalog_free(cat);
  hv_mapping_free(m);
  free(in);
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
  for (size_t i = 0; i < m->n_sources; i++)
    printf("  %-16s %-10s %zu fields\n", m->sources[i].name,
           hv_rectype_name(m->sources[i].type), m->sources[i].n_fields);
  int ninputs = argc - optind;
  int exit_code = HVG_EXIT_OK;
  map_input *in = ninputs ? calloc((size_t)ninputs, sizeof *in) : NULL;
  hv_mapper *mp = NULL;
  if (ninputs && !in) {
    exit_code = HVG_EXIT_SOFTWARE;
    goto done;
  }
  if (ninputs && (rc = map__inputs(&o, m, ninputs, argv + optind, in)) >= 0) {
    exit_code = rc;
    goto done;
  }
  hv_mapper_opts mo = {o.today_days, 0};
  for (int i = 0; i < ninputs; i++)
    mo.track_screenings |= in[i].src->type == HV_REC_REFERRAL;
  if (hv_mapper_new(&mp, m, cat, &mo)) {
    exit_code = HVG_EXIT_SOFTWARE;
    goto done;
  }
  for (int i = 0; i < ninputs; i++) {
    hvg_err err;
    hvg_err_clear(&err);
    rc = hv_mapper_open(mp, in[i].path, NULL, in[i].src, &err);
    if (rc) {
      fprintf(stderr, "%s: %s%s%s\n", in[i].path,
              err.field[0] ? err.field : "", err.field[0] ? ": " : "",
              err.msg[0] ? err.msg : hvg_strerror(rc));
      exit_code = rc == HVG_ENOINPUT ? HVG_EXIT_NOINPUT : HVG_EXIT_CONFIG;
      continue;
    }
    map_stats st = {0};
    hv_result res;
    int shown = 0;
    while ((rc = hv_mapper_next(mp, &res, &err)) == 1) {
      st.records++;
      if (res.n_issues)
        map__issues(stderr, &res, &st);
      if (res.rejected) {
        st.rejected++;
      } else if (shown < o.preview) {
        check__preview(&res, o.show_phi);
        shown++;
      }
    }
    if (rc < 0) {
      fprintf(stderr, "%s:%s: %s\n", in[i].path, err.field, err.msg);
      exit_code = HVG_EXIT_DATAERR;
    }
    printf("%s: %lu records as source '%s': %lu would be rejected, %lu "
           "warnings\n",
           in[i].path, st.records, in[i].src->name, st.rejected, st.warnings);
    if (st.rejected && exit_code == HVG_EXIT_OK)
      exit_code = HVG_EXIT_DATAERR;
    hv_mapper_close(mp);
  }
done:
  hv_mapper_free(mp);
  free(in);
  hv_catalog_free(cat);
  hv_mapping_free(m);
  return exit_code;
}
