/* hv_mapper — turns source records into checked canonical records.
 *
 * For each record: read (hv_reader), map fields (hv_mapping: value maps,
 * defaults, date formats), normalise by type, then check what a receiver
 * relies on: identity, real dates in order, instrument catalogue and score
 * ranges, referral reasons that exist, consent periods. A bad record yields
 * its issues (file:line: field: reason) and never stops the others. */
#ifndef HV_MAPPER_H
#define HV_MAPPER_H

#include "hv_catalog.h"
#include "hv_mapping.h"

#define HV_MAX_ISSUES 16

typedef enum hv_severity { HV_SEV_ERROR = 0, HV_SEV_WARNING } hv_severity;

typedef struct hv_issue {
  hv_severity severity;
  char key[96];  /* source column/path, or canonical name */
  char msg[256]; /* reason; never contains personal values */
} hv_issue;

/* Result of one record. `rec` values live until the next hv_mapper_next or
 * hv_mapper_close (some are the reader's own); the other pointers (file
 * name, catalogue entries) as long as the mapper and its catalogue. */
typedef struct hv_result {
  hv_record rec;
  int rejected;
  size_t n_issues;
  hv_issue issues[HV_MAX_ISSUES];
  /* derived by the checks, for the FHIR builder */
  const hv_instrument *instrument;
  const hv_service *service;
  const hv_interval *interval;
  int interpretation;  /* 1 positive, 0 negative, -1 not interpretable */
  int domain_below[HV_MAX_DOMAINS]; /* ASQ-3: 1 below cutoff, 0 not, -1 ? */
  int reason_ok;       /* referral: the reason screening may be referenced */
} hv_result;

typedef struct hv_mapper_opts {
  long today_days;       /* days since 1970 for "not in the future" checks */
  int track_screenings;  /* remember screening ids to check referral reasons */
} hv_mapper_opts;

typedef struct hv_mapper hv_mapper;

/* Returns 0 and *out, or HVG_ENOMEM / HVG_EINVAL. m and cat must outlive it. */
int hv_mapper_new(hv_mapper **out, const hv_mapping *m, const hv_catalog *cat,
                  const hv_mapper_opts *opts);
void hv_mapper_free(hv_mapper *mp);

/* Start reading `path` (display name `name`, may equal path) as source src.
 * Returns 0, or HVG_ENOINPUT / HVG_ESYNTAX / HVG_ENOTFOUND (a mapped column
 * is not in the file's header: err->field names it) with err filled; the
 * mapper is then ready for another file. */
int hv_mapper_open(hv_mapper *mp, const char *path, const char *name,
                   const hv_source *src, hvg_err *err);

/* Same over memory (the buffer must outlive the file's reading). */
int hv_mapper_open_mem(hv_mapper *mp, const char *name, const char *data,
                       size_t len, const hv_source *src, hvg_err *err);

/* Next record: 1 with *res filled (res->rejected tells whether it passed),
 * 0 at the end of the file, or a fatal reader error (< 0, err filled, the
 * file's remaining records are lost; hv_mapper_line gives the line). */
int hv_mapper_next(hv_mapper *mp, hv_result *res, hvg_err *err);

/* Finish the current file (also done by open and free). */
void hv_mapper_close(hv_mapper *mp);

/* Line of the record that failed fatally, or of the last record read. */
unsigned long hv_mapper_line(const hv_mapper *mp);

/* 1 when the screening ids of this run are being tracked and at least one
 * screening source was read. */
int hv_mapper_knows_screenings(const hv_mapper *mp);

#endif
