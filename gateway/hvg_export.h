/* hvg_export — what the gateway carries back to a home visiting program,
 * in the program's own layout (issue 4, item 5): its referrals in both
 * directions with the loop's status and dates, and the well-child results
 * practices sent, for `hvgate export` and GET /hv/{program}/referrals and
 * /hv/{program}/results.
 *
 * Referrals are written in the layout of the mapping's referral source,
 * results in that of its well_child source (hv_export: the reverse
 * direction of the mapping file, with its export_fields). A referral row:
 *  - the fields the program's export had (ids, service, dates, the
 *    receiving organization), or for a referral from a practice what the
 *    practice sent (child, service, dates, who referred);
 *  - referral.status: the home visiting status the loop derives from the
 *    Task (linked, scheduled, completed, declined, ...) once the partner
 *    has acted on it; until then the program's own last status;
 *    referral.status_date: the date of that status;
 *  - referral.task_status, business_status, status_reason, outcome (the
 *    Task's output: what was done), and the dates of the loop: sent (first
 *    delivered), received, linked, scheduled, completed, closed.
 * A result row: the screening or visit as the practice sent it, with
 * screening.covers_until (its date plus the instrument's rescreen
 * interval) and screening.rescreen_needed ("no" while it is current): a
 * child screened at the practice with the same instrument need not be
 * screened again by the home visitor until then.
 *
 * Rows are appended to a buffer that the caller's drain function empties
 * (a file) or keeps (an HTTP response). Nothing is printed. */
#ifndef HVG_EXPORT_H
#define HVG_EXPORT_H

#include "hv_export.h"
#include "hvg_config.h"
#include "store.h"

typedef enum hvg_export_what {
  HVG_EXPORT_REFERRALS = 0,
  HVG_EXPORT_RESULTS
} hvg_export_what;

typedef struct hvg_export_req {
  const hvg_program *program;
  hvg_export_what what;
  hv_export_format format;
  int64_t since_ms;  /* changed at or after (0: everything) */
  const char *today; /* YYYY-MM-DD: for rescreen_needed */
  /* Called with the buffer after rows were appended (final = 1 at the
   * end); it may empty it. Returns 0 to go on, or an HVG_E* to stop. */
  int (*drain)(void *ctx, hvg_buf *b, int final);
  void *ctx;
} hvg_export_req;

typedef struct hvg_export_stats {
  unsigned long rows, skipped; /* skipped: a row the layout cannot carry */
} hvg_export_stats;

/* Writes the program's referrals or results changed since since_ms. A row
 * the layout cannot represent (a character its encoding lacks) is skipped
 * and counted, its reason in *warn (may be NULL; the last one). Returns 0,
 * HVG_ENOTFOUND (the mapping has no source for that record type: err says
 * which to add), the store's error, the drain's error, or HVG_ENOMEM. */
int hvg_export_run(store *st, const hvg_export_req *req,
                   hvg_export_stats *stats, hvg_err *warn, hvg_err *err);

/* The coordination report of a program (design.md: "a program can
 * measure how many loops it closes and how fast"): its referrals to
 * partners made since since_ms (by referral date; 0: all), per service
 * and in all, as the loop knows them (what the partners reported): how
 * many, still open, linked (accepted or further), completed, closed
 * without service (declined, family declined, withdrawn, unable to reach),
 * and the median days from the referral date to linkage and to
 * completion; then the referrals practices made to the program by status.
 * Appended to out as text (aligned columns) or, with json, one JSON
 * object. Returns 0, the store's error, HVG_ETOOBIG or HVG_ENOMEM. */
int hvg_export_report(store *st, const hvg_program *prog, int64_t since_ms,
                      int json, hvg_buf *out, hvg_err *err);

/* "2026-11-01" (the day's start, UTC) or an instant -> ms; -1 if neither. */
int64_t hvg_export_since(const char *s);

#endif
