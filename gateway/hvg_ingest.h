/* hvg_ingest — durable intake of one program's records, for `hvgate
 * ingest` and the daemon's POST /hv/{program}/records: maps them (hvg_run),
 * builds each Bundle, routes it (hvg_route), checks consent against the
 * store, and stores it in batches, one transaction each, on a writer thread
 * so that mapping and storing overlap. Records held back (no consent,
 * sensitive) and rejected records are reported as lines to `issues`, as
 * `hvgate map` does. */
#ifndef HVG_INGEST_H
#define HVG_INGEST_H

#include "hvg_config.h"
#include "hvg_run.h"
#include "store.h"

#include <stdio.h>

typedef struct hvg_ingest_counts {
  unsigned long fresh, changed, unchanged, queued;
  unsigned long withheld_consent, withheld_sensitive, not_received,
      no_partner, no_org;
} hvg_ingest_counts;

typedef struct hvg_ingest hvg_ingest;

/* Prepares intake for `prog` of cfg (both must outlive it), with `today`
 * (YYYY-MM-DD) as the day for date and consent checks; issue lines go to
 * `issues` (stderr if NULL). Opens two store handles and starts the writer.
 * Returns 0 and *out (free with hvg_ingest_free), or HVG_EINVAL / the
 * store's error / HVG_ENOMEM with err set. */
int hvg_ingest_new(hvg_ingest **out, const hvg_config *cfg,
                   const hvg_program *prog, const char *today, FILE *issues,
                   hvg_err *err);

/* Ingests files (as hvg_run_files) or one in-memory export (as
 * hvg_run_mem), and returns once everything accepted is durable. Returns an
 * exit code as hvg_run_files does, or 74 when the store failed
 * (hvg_ingest_error says why); *st (may be NULL) gets the record counts. */
int hvg_ingest_files(hvg_ingest *x, const char *source, int n, char **paths,
                     hvg_run_stats *st);
int hvg_ingest_mem(hvg_ingest *x, const char *source, const char *name,
                   const char *data, size_t len, hvg_run_stats *st);

/* What was stored and held back so far. */
const hvg_ingest_counts *hvg_ingest_counts_get(const hvg_ingest *x);

/* The store failure that stopped intake, or NULL. */
const hvg_err *hvg_ingest_error(const hvg_ingest *x);

void hvg_ingest_free(hvg_ingest *x);

#endif
