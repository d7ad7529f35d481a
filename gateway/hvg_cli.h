/* hvg_cli — the hvgate command line: one function per subcommand. Each
 * takes the subcommand's own argv (argv[0] is the subcommand name), prints
 * to stdout/stderr and returns a sysexits-style exit code (see hvg_exit). */
#ifndef HVG_CLI_H
#define HVG_CLI_H

enum hvg_exit {
  HVG_EXIT_OK = 0,
  HVG_EXIT_USAGE = 64,       /* EX_USAGE: bad command line */
  HVG_EXIT_DATAERR = 65,     /* EX_DATAERR: some input records rejected */
  HVG_EXIT_NOINPUT = 66,     /* EX_NOINPUT: an input file cannot be read */
  HVG_EXIT_UNAVAILABLE = 69, /* EX_UNAVAILABLE: a partner is unavailable */
  HVG_EXIT_SOFTWARE = 70,    /* EX_SOFTWARE: internal error (out of memory) */
  HVG_EXIT_IOERR = 74,       /* EX_IOERR: cannot write output */
  HVG_EXIT_CONFIG = 78       /* EX_CONFIG: configuration or mapping error */
};

/* Loads a gateway configuration for a command, printing its problems (and,
 * with `warnings`, its warnings) to stderr. Returns -1 with *out set (the
 * caller frees it with hvg_config_free), or the exit code to end with. */
struct hvg_config;
int hvg_cli_load_config(const char *path, unsigned flags, int warnings,
                        struct hvg_config **out);

int hvg_cli_map(int argc, char **argv);
int hvg_cli_check_mapping(int argc, char **argv);
int hvg_cli_check_config(int argc, char **argv);
int hvg_cli_ingest(int argc, char **argv);
int hvg_cli_serve(int argc, char **argv);
int hvg_cli_status(int argc, char **argv);
int hvg_cli_replay(int argc, char **argv);
int hvg_cli_export(int argc, char **argv);
int hvg_cli_report(int argc, char **argv);

#endif
