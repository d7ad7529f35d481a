/* hvgate — command-line entry point: dispatches to subcommands. */
#include "hvg_cli.h"
#include "hvg_version.h"

#include <stdio.h>
#include <string.h>

static const struct {
  const char *name;
  int (*fn)(int, char **);
  const char *summary;
} commands[] = {
    {"map", hvg_cli_map, "map export files to FHIR R4 Bundles"},
    {"check-mapping", hvg_cli_check_mapping,
     "check a mapping file, optionally against export files"},
    {"check-config", hvg_cli_check_config,
     "check a gateway configuration and the files it names"},
    {"ingest", hvg_cli_ingest, "store export files, queued for the partners"},
    {"serve", hvg_cli_serve, "deliver queued records to the partners"},
    {"status", hvg_cli_status, "queue, deliveries and dead letters per partner"},
    {"replay", hvg_cli_replay, "queue dead letters again"},
    {"export", hvg_cli_export,
     "referral status and results back to a program, in its own layout"},
    {"report", hvg_cli_report,
     "how many of a program's referral loops closed, and how fast"},

};

static void usage(FILE *f) {
  fprintf(f, "usage: hvgate COMMAND [options]\n\n"
             "hvgate %s: FHIR R4 gateway between home visiting programs and "
             "pediatric primary care.\n\ncommands:\n",
          hvg_version());
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-15s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\n'hvgate COMMAND --help' describes each command.\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return HVG_EXIT_USAGE;
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
      !strcmp(argv[1], "help")) {
    usage(stdout);
    return HVG_EXIT_OK;
  }
  if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
    printf("hvgate %s\n", hvg_version());
    return HVG_EXIT_OK;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name))
      return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "hvgate: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return HVG_EXIT_USAGE;
}
