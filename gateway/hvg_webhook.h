/* hvg_webhook — tells a home visiting program that something came back
 * (issue 4, item 5: "optionally a webhook"): a referral of the program
 * changed (a partner moved its Task, a practice referred a family) or a
 * result arrived. Run by a thread of the daemon for each program with a
 * configured webhook.
 *
 * Each round POSTs the program's next events (store_event_list after the
 * cursor "webhook:{program}") as one JSON document
 *   {"program": "sunrise-hv", "events": [{"id": 12, "at":
 *    "2026-12-01T10:00:00.000Z", "kind": "referral", "ref": "R0000001"}]}
 * with the configured bearer token, and moves the cursor past them when
 * the receiver answers 2xx; otherwise it retries with backoff (so delivery
 * is at least once: receivers dedupe by event id). Events carry ids only,
 * never personal data: the program reads the details from its API
 * (/hv/{program}/referrals, /results) or `hvgate export`. */
#ifndef HVG_WEBHOOK_H
#define HVG_WEBHOOK_H

#include "hvg_config.h"
#include "hvg_http.h"
#include "store.h"

#include <stdint.h>
#include <stdio.h>

#define HVG_WEBHOOK_BATCH 100

typedef struct hvg_webhook {
  const hvg_program *prog;
  store *st;
  hvg_http *http;
  hvg_http_resp resp;
  char *token; /* bearer token, or NULL */
  char cursor_key[160];
  FILE *log;
  int64_t next_ms; /* backoff: not before */
  int failures;
  unsigned long sent; /* events acknowledged by the receiver */
} hvg_webhook;

/* Prepares the webhook of program prog (which has one) over the store at
 * store_path: reads its token (file or environment) now. Returns 0, or
 * HVG_ENOINPUT / HVG_ECONFIG (token unreadable or empty), the store's or
 * HTTP client's error, with err set; on error w is left freeable. */
int hvg_webhook_init(hvg_webhook *w, const hvg_program *prog,
                     const char *store_path, const store_opts *so, FILE *log,
                     hvg_err *err);
void hvg_webhook_free(hvg_webhook *w);

/* One round at now_ms: send what is new. Returns the number of events
 * acknowledged (>= 0) or a store error (< 0); *idle_ms is how long the
 * caller may sleep. */
int hvg_webhook_round(hvg_webhook *w, int64_t now_ms, int *idle_ms,
                      hvg_err *err);

#endif
