/* hvgate check-config: load a gateway configuration the way the daemon
 * does and report every problem with file, line and key path. */
#include "hvg_cli.h"
#include "hvg_config.h"
#include "hvg_err.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void config__usage(FILE *f) {
  fprintf(f,
          "usage: hvgate check-config -c FILE\n\n"
          "Check a gateway configuration (conf/hvgate.json): its keys and\n"
          "values, each program's mapping file and catalogues, the partners'\n"
          "services and sensitivity categories, and that every key, token\n"
          "and certificate file it names can be read (private keys must suit\n"
          "their algorithm). Every problem is printed as\n"
          "file:line: /json/pointer: reason.\n\n"
          "  -c, --config FILE   the configuration file\n"
          "  -h, --help          this help\n\n"
          "exit status: 0 valid, 64 usage, 66 file unreadable, 78 errors.\n");
}

int hvg_cli_check_config(int argc, char **argv) {
  static const struct option longopts[] = {{"config", required_argument, 0, 'c'},
                                           {"help", no_argument, 0, 'h'},
                                           {0, 0, 0, 0}};
  const char *path = NULL;
  int ch;
  optind = 1;
  while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
    switch (ch) {
    case 'c':
      path = optarg;
      break;
    case 'h':
      config__usage(stdout);
      return HVG_EXIT_OK;
    default:
      config__usage(stderr);
      return HVG_EXIT_USAGE;
    }
  }
  if (!path || optind != argc) {
    config__usage(stderr);
    return HVG_EXIT_USAGE;
  }
  hvg_config *c = NULL;
  int code = hvg_cli_load_config(path, HVG_CONFIG_CHECK_FILES, 1, &c);
  if (code >= 0)
    return code;
  printf("%s: valid: %zu program%s, %zu partner%s\n", path, c->n_programs,
         c->n_programs == 1 ? "" : "s", c->n_partners,
         c->n_partners == 1 ? "" : "s");
  hvg_config_free(c);
  return HVG_EXIT_OK;
}

int hvg_cli_load_config(const char *path, unsigned flags, int warnings,
                        hvg_config **out) {
  hvg_buf diag, warn;
  hvg_buf_init(&diag, 1 << 20);
  hvg_buf_init(&warn, 1 << 16);
  int rc = hvg_config_load(out, path, flags, &diag, warnings ? &warn : NULL);
  if (diag.len)
    fputs(diag.data, stderr);
  if (warn.len)
    fputs(warn.data, stderr);
  hvg_buf_free(&diag);
  hvg_buf_free(&warn);
  if (rc == HVG_ENOMEM)
    fprintf(stderr, "hvgate: out of memory\n");
  return !rc                  ? -1
         : rc == HVG_ENOINPUT ? HVG_EXIT_NOINPUT
         : rc == HVG_ENOMEM   ? HVG_EXIT_SOFTWARE
                              : HVG_EXIT_CONFIG;
}
