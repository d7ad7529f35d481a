/* hvg_poll — status return from partners that do not push (issue 4,
 * item 4): one poller per partner whose status_return mode is "poll" or
 * "subscription", run by a thread of the daemon.
 *
 *  - poll: every interval_s, search the partner's Tasks changed since the
 *    stored cursor: GET {base}/Task?_lastUpdated=gt{cursor - 5 s}
 *    &_sort=_lastUpdated&_count=100[&{query}], following "next" links on
 *    the same server; each Task goes to the referral tracker
 *    (hvg_fsrv_remote_task), and the cursor becomes the latest
 *    meta.lastUpdated seen. The 5 s overlap catches changes committed out
 *    of order at the boundary; applying a Task twice changes nothing. The
 *    first poll looks back HVG_POLL_LOOKBACK_S.
 *  - subscription (and any partner with inbox entries): fetch each Task a
 *    notification named (GET {base}/Task/{id}) and apply it the same way;
 *    a fetch that fails for the network, 429 or 5xx is retried with
 *    backoff, a 404/410 is dropped (logged), 401/403 hold the partner.
 *
 * Authentication and TLS are the partner's (hvg_auth, hvg_http), as for
 * delivery. Logs are JSON lines with ids only. */
#ifndef HVG_POLL_H
#define HVG_POLL_H

#include "hvg_auth.h"
#include "hvg_config.h"
#include "hvg_deliver.h"
#include "hvg_fsrv.h"
#include "hvg_http.h"
#include "store.h"

#include <stdint.h>
#include <stdio.h>

#define HVG_POLL_LOOKBACK_S (7 * 86400)
#define HVG_POLL_OVERLAP_MS 5000
#define HVG_POLL_PAGES 50 /* pages per poll; the rest waits for the next */

typedef struct hvg_poll_counts {
  unsigned long polls, fetched, applied, refused, errors;
} hvg_poll_counts;

typedef struct hvg_poller {
  const hvg_partner *p;
  store *st;
  hvg_fsrv *fs;
  hvg_http *http;
  hvg_auth auth;
  hvg_http_resp resp;
  FILE *log;
  int64_t next_poll_ms;   /* 0: at once */
  hvg_partner_hold own;   /* used when no shared hold is given */
  hvg_partner_hold *hold; /* the partner's, shared with its workers */
  hvg_poll_counts n;
} hvg_poller;

/* Prepares a poller for partner p of cfg over the store at store_path (its
 * own handle). `hold` (may be NULL) is the partner's auth hold shared with
 * its delivery workers, so that a refused credential holds the partner and
 * is reported once whoever meets it. Returns 0 or the store's, HTTP
 * client's or credentials' error with err set; on error pl is left
 * freeable. */
int hvg_poll_init(hvg_poller *pl, const hvg_config *cfg, const hvg_partner *p,
                  const char *store_path, const store_opts *so,
                  hvg_partner_hold *hold, FILE *log, hvg_err *err);
void hvg_poll_free(hvg_poller *pl);

/* One round at now_ms: the due inbox entries, then a poll when it is time.
 * Returns how many Task changes were applied (>= 0), or a store error
 * (< 0, err set). *idle_ms gets how long the caller may sleep. */
int hvg_poll_round(hvg_poller *pl, int64_t now_ms, int *idle_ms, hvg_err *err);

/* The cursor after a Bundle of Tasks: the latest meta.lastUpdated in it
 * and cur (an instant, may be ""), into out[cap]. Exposed for tests. */
void hvg_poll_cursor_max(const cJSON *bundle, const char *cur, char *out,
                         size_t cap);

#endif
