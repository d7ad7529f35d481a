/* hvg_deliver — delivery of queued Bundles to one partner's FHIR server.
 *
 * A deliverer owns what one worker thread needs: its own store handle, an
 * HTTP handle (kept-alive connection) and the partner's credentials. Each
 * round claims due items (the store keeps one in flight per patient lane),
 * POSTs each as a transaction, and settles it by the outcome:
 *  - 2xx: delivered; the ids in the transaction-response locations are
 *    stored against the source key and an audit entry records the
 *    disclosure (what, to whom, under which consent);
 *  - network error, 408, 429, 5xx: retried later with exponential backoff
 *    and jitter, never sooner than Retry-After;
 *  - 401: the access token is dropped and the item tried once more with a
 *    new one; 401/403 again (or a refused token request) holds the whole
 *    partner, reported once, instead of failing record by record;
 *  - any other 4xx: a dead letter with the server's OperationOutcome.
 * A record sent again after a change becomes an update: entries whose
 * resource has a stored server id are sent as PUT Type/id.
 * Events are logged as JSON lines (ids only, never names or birth dates),
 * the lines of a round written together when it ends. */
#ifndef HVG_DELIVER_H
#define HVG_DELIVER_H

#include "hvg_auth.h"
#include "hvg_config.h"
#include "hvg_http.h"
#include "store.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

/* Items claimed (and settled in one transaction) per round, at most: fewer
 * when the partner is slow, so that a round takes about an eighth of the
 * lease at the pace of the worker's recent requests. */
#define HVG_DELIVER_BATCH 64
#define HVG_DELIVER_LEASE_MS 120000    /* > the longest request */
#define HVG_DELIVER_BACKOFF_MIN_MS 1000
#define HVG_DELIVER_BACKOFF_MAX_MS 600000
#define HVG_DELIVER_HOLD_MS 30000      /* first pause after an auth failure */
#define HVG_DELIVER_DOWN_MIN_MS 1000   /* first pause when unreachable */
#define HVG_DELIVER_DOWN_MAX_MS 60000  /* longest pause between probes */

typedef struct hvg_deliver_counts {
  unsigned long delivered, retried, dead, auth_failures, rounds;
  double latency_sum_s; /* of successful deliveries */
} hvg_deliver_counts;

/* What the workers of one partner share. An auth failure, or the partner
 * being unreachable (no connection, 429, 502-504), holds the partner for
 * all of them, and is reported once per incident, not once per worker or
 * Bundle. While held, the workers send nothing; then one Bundle probes.
 * Without the unreachable hold a down partner would see every queued
 * Bundle tried and failed in turn: thousands a second against a backlog,
 * each a store write. */
typedef struct hvg_partner_hold {
  _Atomic int64_t until_ms; /* auth: held until */
  _Atomic int64_t hold_ms;  /* auth: current hold length (doubles, capped) */
  atomic_int reported;      /* auth: this incident was logged */
  _Atomic int64_t down_until_ms; /* unreachable: held until */
  _Atomic int64_t down_ms;       /* unreachable: current pause */
  atomic_int down;               /* unreachable: incident open (logged) */
} hvg_partner_hold;

/* An idle hold (not held, first pause HVG_DELIVER_HOLD_MS). */
void hvg_partner_hold_init(hvg_partner_hold *h);

/* An auth failure at now_ms: holds the partner (the pause doubles with
 * each failure, capped). Returns 1 for the first failure of an incident
 * (the caller reports it), 0 when it is already reported. */
int hvg_partner_hold_fail(hvg_partner_hold *h, int64_t now_ms);

/* A success: ends an incident; 1 when one was open (report the
 * recovery), 0 otherwise. */
int hvg_partner_hold_clear(hvg_partner_hold *h);

/* The partner did not answer usefully at now_ms (transport error, 429,
 * 502, 503, 504): holds it for the current pause (HVG_DELIVER_DOWN_MIN_MS,
 * doubling to HVG_DELIVER_DOWN_MAX_MS) or until at_least_ms, whichever is
 * later. Returns 1 for the first failure of an incident, else 0. */
int hvg_partner_hold_down(hvg_partner_hold *h, int64_t now_ms,
                          int64_t at_least_ms);

/* An answer from the partner: ends an unreachable incident; 1 when one was
 * open, 0 otherwise. */
int hvg_partner_hold_up(hvg_partner_hold *h);

/* Until when the partner is held for either reason (0: not held). */
int64_t hvg_partner_held_until(hvg_partner_hold *h);

/* Metrics the daemon exposes, one series per partner (NULL: not kept). */
typedef struct hvg_deliver_obs {
  struct hvg_series *delivered, *retried, *dead, *auth_failed;
  struct hvg_series *latency; /* histogram, seconds */
} hvg_deliver_obs;

typedef struct hvg_deliverer {
  const hvg_partner *p;
  const hvg_deliver_obs *obs; /* may be NULL; set after init */
  store *st;
  hvg_http *http;
  hvg_auth auth;
  FILE *log; /* JSON lines; NULL: none */
  hvg_partner_hold own;   /* used when no shared hold is given */
  hvg_partner_hold *hold; /* the partner's, shared by its workers */
  uint64_t rng;
  struct hvg__slot *slots; /* a round's outcomes (HVG_DELIVER_BATCH) */
  hvg_http_resp resp;      /* reused for every request */
  double pace_ms;          /* recent time per request (moving average) */
  hvg_buf logbuf;          /* the round's log lines, written as it ends */
  long long log_sec;       /* the second log_ts shows */
  char log_ts[24];
  hvg_deliver_counts n;
} hvg_deliverer;

/* Prepares a deliverer for partner p over the store at store_path; `hold`
 * (may be NULL) is shared with the partner's other workers and must outlive
 * d. Returns 0 or the error of the store, the HTTP client or the credentials
 * (err set); on error d is left freeable with hvg_deliver_free. */
int hvg_deliver_init(hvg_deliverer *d, const hvg_partner *p,
                     const char *store_path, const store_opts *so,
                     hvg_partner_hold *hold, FILE *log, hvg_err *err);
void hvg_deliver_free(hvg_deliverer *d);

/* One round at now_ms: claim and deliver what is due. Returns how many items
 * were settled (>= 0), or a store error (< 0, err set; the items in hand
 * stay claimed until their lease ends). *idle_ms (may be NULL) gets how long
 * the caller may sleep before the next round: 0 when more work may be due,
 * longer when nothing was claimable or the partner is held. */
int hvg_deliver_round(hvg_deliverer *d, int64_t now_ms, int *idle_ms,
                      hvg_err *err);

#endif
