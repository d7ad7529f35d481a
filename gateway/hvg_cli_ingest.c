/* hvgate ingest: map a program's export files and store them durably, each
 * record queued for the partner it goes to under consent and sensitivity
 * rules. Success means stored: delivery is the daemon's job (`serve`). */
#include "hvg_cli.h"

#include "fhir_check.h"
#include "hvg_config.h"
#include "hvg_ingest.h"

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


typedef struct ingest_opts {
  const char *config, *program, *source;
  long today_days;
  char today[11];
  int quiet;
} ingest_opts;

static void ingest__usage(FILE *f) {
  fputs(
      "usage: hvgate ingest -c CONFIG [options] FILE...\n"
      "\n"
      "Map a home visiting program's export files (as `hvgate map` does) and\n"
      "store every record durably, queued for the partner it goes to. A\n"
      "record is queued only under an active consent for the partner's\n"
      "organization (unless the partner is configured otherwise), and\n"
      "sensitive results only to partners cleared for their category; each\n"
      "record held back is reported. Ingesting an unchanged record again\n"
      "does nothing; a changed one is queued as an update.\n"
      "\n"
      "options:\n"
      "  -c, --config FILE   gateway configuration (required)\n"
      "  -p, --program ID    the program the files belong to (default: the\n"
      "                      only one, or the one whose mapping matches)\n"
      "  -s, --source NAME   mapping source for every FILE\n"
      "      --today DATE    treat DATE (YYYY-MM-DD) as today\n"
      "  -q, --quiet         no summary line\n"
      "  -h, --help          this help\n"
      "\n"
      "exit status: 0 all stored, 65 some records rejected (the others are\n"
      "stored), 64 usage, 66 input unreadable, 74 store error, 78\n"
      "configuration error.\n",
      f);
}

static int ingest__parse(int argc, char **argv, ingest_opts *o) {
  enum { O_TODAY = 256 };
  static const struct option longopts[] = {
      {"config", required_argument, NULL, 'c'},
      {"program", required_argument, NULL, 'p'},
      {"source", required_argument, NULL, 's'},
      {"today", required_argument, NULL, O_TODAY},
      {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  memset(o, 0, sizeof *o);
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "c:p:s:qh", longopts, NULL)) != -1) {
    switch (c) {
    case 'c': o->config = optarg; break;
    case 'p': o->program = optarg; break;
    case 's': o->source = optarg; break;
    case 'q': o->quiet = 1; break;
    case O_TODAY:
      if (fhir_date_days(optarg, &o->today_days) || strlen(optarg) != 10) {
        fprintf(stderr, "hvgate: --today must be a date YYYY-MM-DD\n");
        return HVG_EXIT_USAGE;
      }
      memcpy(o->today, optarg, 11);
      break;
    case 'h':
      ingest__usage(stdout);
      return HVG_EXIT_OK;
    default:
      fprintf(stderr, "hvgate: ingest: unknown option or missing value\n");
      ingest__usage(stderr);
      return HVG_EXIT_USAGE;
    }
  }
  if (!o->config || optind >= argc) {
    fprintf(stderr, "hvgate: ingest needs -c CONFIG and at least one FILE\n");
    ingest__usage(stderr);
    return HVG_EXIT_USAGE;
  }
  if (!o->today[0]) {
    fhir_date_utc(time(NULL), o->today);
    fhir_date_days(o->today, &o->today_days);
  }
  return -1;
}

/* The program the files belong to; NULL after printing why not. */
static const hvg_program *ingest__program(const ingest_opts *o,
                                          const hvg_config *c, int n,
                                          char **paths) {
  if (o->program) {
    const hvg_program *p = hvg_config_program(c, o->program);
    if (!p)
      fprintf(stderr, "hvgate: %s has no program '%s'\n", o->config,
              o->program);
    return p;
  }
  if (c->n_programs == 1)
    return &c->programs[0];
  const hvg_program *found = NULL;
  for (size_t i = 0; i < c->n_programs; i++)
    if (hv_mapping_source_for(c->programs[i].map, paths[0], o->source)) {
      if (found) {
        fprintf(stderr, "hvgate: %s matches the mappings of programs %s and "
                        "%s: name one with --program\n",
                paths[0], found->id, c->programs[i].id);
        return NULL;
      }
      found = &c->programs[i];
    }
  (void)n;
  if (!found)
    fprintf(stderr, "hvgate: %s matches no program's mapping: name one with "
                    "--program\n",
            paths[0]);
  return found;
}

int hvg_cli_ingest(int argc, char **argv) {
  ingest_opts o;
  int rc = ingest__parse(argc, argv, &o);
  if (rc >= 0)
    return rc;
  hvg_config *cfg = NULL;
  if ((rc = hvg_cli_load_config(o.config, 0, 0, &cfg)) >= 0)
    return rc;
  int n = argc - optind;
  char **paths = argv + optind;
  const hvg_program *prog = ingest__program(&o, cfg, n, paths);
  if (!prog) {
    hvg_config_free(cfg);
    return HVG_EXIT_USAGE;
  }
  hvg_ingest *x;
  hvg_err err;
  hvg_err_clear(&err);
  rc = hvg_ingest_new(&x, cfg, prog, o.today, stderr, &err);
  if (rc) {
    fprintf(stderr, "hvgate: cannot open the store %s: %s\n", cfg->store_path,
            err.msg);
    hvg_config_free(cfg);
    return rc == HVG_ECONFIG ? HVG_EXIT_CONFIG : HVG_EXIT_IOERR;
  }
  hvg_run_stats st;
  int exit_code = hvg_ingest_files(x, o.source, n, paths, &st);
  const hvg_err *werr = hvg_ingest_error(x);
  if (werr)
    fprintf(stderr, "hvgate: store: %s%s%s\n", werr->field,
            werr->field[0] ? ": " : "", werr->msg);
  if (!o.quiet && !werr) {
    const hvg_ingest_counts *k = hvg_ingest_counts_get(x);
    fprintf(stderr,
            "hvgate ingest: %lu records: %lu stored (%lu new, %lu changed, "
            "%lu unchanged), %lu rejected; %lu deliveries queued\n",
            st.records, k->fresh + k->changed + k->unchanged, k->fresh,
            k->changed, k->unchanged, st.rejected, k->queued);
    if (k->withheld_consent || k->withheld_sensitive || k->not_received ||
        k->no_partner || k->no_org)
      fprintf(stderr,
              "hvgate ingest: not sent: %lu without consent, %lu sensitive, "
              "%lu not received by the partner, %lu for organizations "
              "without a partner, %lu naming no organization\n",
              k->withheld_consent, k->withheld_sensitive, k->not_received,
              k->no_partner, k->no_org);
  }
  hvg_ingest_free(x);
  hvg_config_free(cfg);
  return exit_code;
}
