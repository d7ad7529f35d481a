/* hvgate export: what the gateway carries back to a home visiting program
 * (referral status with its dates, referrals from practices, well-child
 * results) in the program's own layout, from the store. */
#include "hvg_cli.h"

#include "fhir_check.h"
#include "hvg_config.h"
#include "hvg_export.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void export__usage(FILE *f) {
  fputs("usage: hvgate export -c CONFIG --program ID [options]\n"
        "\n"
        "Write a program's referrals (both directions, with the status the\n"
        "loop derives from the partner's Task and the date of each step:\n"
        "sent, received, linked, scheduled, completed, closed) or the\n"
        "well-child results practices sent (with covers_until and\n"
        "rescreen_needed: a screening done at the practice is current until\n"
        "its date plus the instrument's rescreen interval), in the columns\n"
        "of the program's mapping file (its referral and well_child sources,\n"
        "their export_fields included).\n"
        "\n"
        "options:\n"
        "  -c, --config FILE     gateway configuration (required)\n"
        "  -p, --program ID      the program (required unless there is one)\n"
        "  -w, --what KIND       referrals (default) or results\n"
        "      --since T         only what changed since T (YYYY-MM-DD or an\n"
        "                        instant such as 2026-11-30T08:00:00Z)\n"
        "  -f, --format F        csv (default) or ndjson\n"
        "  -o, --output FILE     write to FILE (default: standard output)\n"
        "      --today DATE      treat DATE (YYYY-MM-DD) as today\n"
        "  -h, --help            this help\n"
        "\n"
        "exit status: 0 written, 65 some rows could not be written in the\n"
        "layout (the others are), 64 usage, 74 store or output error, 78\n"
        "configuration error (e.g. no layout for the kind).\n",
        f);
}

static int export__drain(void *ctx, hvg_buf *b, int final) {
  FILE *f = ctx;
  if (b->len && fwrite(b->data, 1, b->len, f) != b->len)
    return HVG_EIO;
  hvg_buf_reset(b);
  if (final && fflush(f))
    return HVG_EIO;
  return 0;
}

int hvg_cli_export(int argc, char **argv) {
  enum { O_SINCE = 256, O_TODAY };
  static const struct option longopts[] = {
      {"config", required_argument, NULL, 'c'},
      {"program", required_argument, NULL, 'p'},
      {"what", required_argument, NULL, 'w'},
      {"since", required_argument, NULL, O_SINCE},
      {"format", required_argument, NULL, 'f'},
      {"output", required_argument, NULL, 'o'},
      {"today", required_argument, NULL, O_TODAY},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *path = NULL, *program = NULL, *output = NULL;
  hvg_export_req req;
  memset(&req, 0, sizeof req);
  char today[11];
  fhir_date_utc(time(NULL), today);
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "c:p:w:f:o:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'c': path = optarg; break;
    case 'p': program = optarg; break;
    case 'o': output = optarg; break;
    case 'w':
      if (!strcmp(optarg, "referrals"))
        req.what = HVG_EXPORT_REFERRALS;
      else if (!strcmp(optarg, "results"))
        req.what = HVG_EXPORT_RESULTS;
      else {
        fprintf(stderr, "hvgate: --what is referrals or results\n");
        return HVG_EXIT_USAGE;
      }
      break;
    case 'f':
      if (!strcmp(optarg, "csv"))
        req.format = HV_EXPORT_CSV;
      else if (!strcmp(optarg, "ndjson"))
        req.format = HV_EXPORT_NDJSON;
      else {
        fprintf(stderr, "hvgate: --format is csv or ndjson\n");
        return HVG_EXIT_USAGE;
      }
      break;
    case O_SINCE:
      if ((req.since_ms = hvg_export_since(optarg)) < 0) {
        fprintf(stderr, "hvgate: --since must be a date YYYY-MM-DD or an "
                        "instant with a time zone\n");
        return HVG_EXIT_USAGE;
      }
      break;
    case O_TODAY: {
      long d;
      if (fhir_date_days(optarg, &d) || strlen(optarg) != 10) {
        fprintf(stderr, "hvgate: --today must be a date YYYY-MM-DD\n");
        return HVG_EXIT_USAGE;
      }
      memcpy(today, optarg, 11);
      break;
    }
    case 'h': export__usage(stdout); return HVG_EXIT_OK;
    default: export__usage(stderr); return HVG_EXIT_USAGE;
    }
  }
  if (!path || optind != argc) {
    export__usage(stderr);
    return HVG_EXIT_USAGE;
  }
  hvg_config *cfg = NULL;
  int code = hvg_cli_load_config(path, 0, 0, &cfg);
  if (code >= 0)
    return code;
  req.program = program                ? hvg_config_program(cfg, program)
                : cfg->n_programs == 1 ? &cfg->programs[0]
                                       : NULL;
  if (!req.program) {
    fprintf(stderr,
            "hvgate: %s: --program names one of the configured "
            "programs\n",
            program ? program : "(none)");
    hvg_config_free(cfg);
    return HVG_EXIT_USAGE;
  }
  req.today = today;
  store *st = NULL;
  hvg_err err, warn;
  hvg_err_clear(&err);
  hvg_err_clear(&warn);
  if (hvg_config_open_store_opts(cfg, &st, 1, 0, &err)) {
    fprintf(stderr, "hvgate: cannot open the store %s: %s\n", cfg->store_path,
            err.msg);
    hvg_config_free(cfg);
    return HVG_EXIT_IOERR;
  }
  FILE *f = output ? fopen(output, "w") : stdout;
  if (!f) {
    fprintf(stderr, "hvgate: %s: %s\n", output, strerror(errno));
    store_close(st);
    hvg_config_free(cfg);
    return HVG_EXIT_IOERR;
  }
  req.drain = export__drain;
  req.ctx = f;
  hvg_export_stats stats;
  int rc = hvg_export_run(st, &req, &stats, &warn, &err);
  if (output && fclose(f) && !rc)
    rc = HVG_EIO;
  if (rc == HVG_ENOTFOUND || rc == HVG_EINVAL) {
    fprintf(stderr, "hvgate: %s\n", err.msg);
    code = HVG_EXIT_CONFIG;
  } else if (rc) {
    fprintf(stderr, "hvgate: export: %s\n",
            err.msg[0] ? err.msg : hvg_strerror(rc));
    code = HVG_EXIT_IOERR;
  } else {
    if (stats.skipped)
      fprintf(stderr, "hvgate: %lu row%s not written: %s: %s\n", stats.skipped,
              stats.skipped == 1 ? "" : "s", warn.field, warn.msg);
    fprintf(stderr, "hvgate: %lu %s exported\n", stats.rows,
            req.what == HVG_EXPORT_RESULTS ? "results" : "referrals");
    code = stats.skipped ? HVG_EXIT_DATAERR : HVG_EXIT_OK;
  }
  store_close(st);
  hvg_config_free(cfg);
  return code;
}

/* ---- report ------------------------------------------------------------ */

static void report__usage(FILE *f) {
  fputs("usage: hvgate report -c CONFIG [--program ID] [--since DATE] "
        "[--json]\n"
        "\n"
        "How many of a program's referrals closed their loop, and how fast,\n"
        "as the partners reported them: per service and in all, referrals\n"
        "sent, still open, linked (accepted or further), completed, closed\n"
        "without service (declined, family declined, withdrawn, unable to\n"
        "reach), and the median days from the referral date to linkage and\n"
        "to completion; then the referrals practices made to the program.\n"
        "\n"
        "  -c, --config FILE   gateway configuration (required)\n"
        "  -p, --program ID    the program (required unless there is one)\n"
        "      --since DATE    referrals made on or after DATE (YYYY-MM-DD)\n"
        "      --json          one JSON object instead of a table\n"
        "  -h, --help          this help\n"
        "\n"
        "exit status: 0, 64 usage, 74 store error, 78 configuration error.\n",
        f);
}

int hvg_cli_report(int argc, char **argv) {
  enum { O_SINCE = 256, O_JSON };
  static const struct option longopts[] = {
      {"config", required_argument, NULL, 'c'},
      {"program", required_argument, NULL, 'p'},
      {"since", required_argument, NULL, O_SINCE},
      {"json", no_argument, NULL, O_JSON},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *path = NULL, *program = NULL;
  int64_t since = 0;
  int json = 0;
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "c:p:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'c': path = optarg; break;
    case 'p': program = optarg; break;
    case O_JSON: json = 1; break;
    case O_SINCE:
      if ((since = hvg_export_since(optarg)) < 0) {
        fprintf(stderr, "hvgate: --since must be a date YYYY-MM-DD\n");
        return HVG_EXIT_USAGE;
      }
      break;
    case 'h': report__usage(stdout); return HVG_EXIT_OK;
    default: report__usage(stderr); return HVG_EXIT_USAGE;
    }
  }
  if (!path || optind != argc) {
    report__usage(stderr);
    return HVG_EXIT_USAGE;
  }
  hvg_config *cfg = NULL;
  int code = hvg_cli_load_config(path, 0, 0, &cfg);
  if (code >= 0)
    return code;
  const hvg_program *prog = program ? hvg_config_program(cfg, program)
                            : cfg->n_programs == 1 ? &cfg->programs[0]
                                                   : NULL;
  if (!prog) {
    fprintf(stderr, "hvgate: --program names one of the configured programs\n");
    hvg_config_free(cfg);
    return HVG_EXIT_USAGE;
  }
  store *st = NULL;
  hvg_err err;
  hvg_err_clear(&err);
  hvg_buf out;
  hvg_buf_init(&out, (size_t)16 << 20);
  code = HVG_EXIT_OK;
  if (hvg_config_open_store_opts(cfg, &st, 1, 0, &err) ||
      hvg_export_report(st, prog, since, json, &out, &err)) {
    fprintf(stderr, "hvgate: report: %s\n", err.msg);
    code = HVG_EXIT_IOERR;
  } else if (fwrite(out.data ? out.data : "", 1, out.len, stdout) != out.len) {
    code = HVG_EXIT_IOERR;
  }
  hvg_buf_free(&out);
  store_close(st);
  hvg_config_free(cfg);
  return code;
}
