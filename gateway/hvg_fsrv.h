/* hvg_fsrv — the gateway's FHIR server, without HTTP: what partners can
 * read, search, change and create under /fhir, over the store, and the
 * referral tracker that turns Task changes into the loop's state
 * (design.md "Closed-loop referral", issue 4).
 *
 * What is served:
 *  - Task: read, search, update (PUT, optionally version-checked) and JSON
 *    Patch of the Tasks of the referrals between programs and the partner;
 *    create of a Task for a ServiceRequest the partner created (a referral
 *    to a home visiting program);
 *  - ServiceRequest: read; create (a referral to a program, with its
 *    Patient);
 *  - Observation: read; create (a well-child result: a screening with an
 *    instrument of the program's catalogue about a child of the program);
 *  - Encounter: read; create (a well-child visit);
 *  - Patient: read; create (the child of a referral to home visiting);
 *  - Bundle: transaction (all or nothing) and batch of those interactions.
 * Every partner sees and changes only what is its own: the Tasks it owns or
 * requested, what it created. Anything else is "not found".
 *
 * Each Task status change is checked against the state machine and the
 * status ownership rules (hvg_tracker.h), stored with its time, actor and
 * source as a transition of the referral, with the home visiting status
 * derived from it, in the same transaction as the resource.
 *
 * A server serves one thread: it owns no store handle but uses the one it
 * was given (the HTTP loop's, a poller's). Nothing is printed. */
#ifndef HVG_FSRV_H
#define HVG_FSRV_H

#include "hv_tofhir.h"
#include "hvg_config.h"
#include "hvg_err.h"
#include "store.h"

#include <cjson/cJSON.h>
#include <stdint.h>

typedef struct hvg_fsrv hvg_fsrv;

/* The outcome of one interaction, as FHIR REST reports it. */
typedef struct hvg_fres {
  int minimal; /* in: the caller wants no resource back from a write
                  (Prefer: return=minimal), only its headers */
  int status;  /* HTTP status */
  cJSON *body; /* resource or Bundle to return, owned; NULL: none */
  /* status >= 400: the OperationOutcome's issue (code is an IssueType) */
  const char *issue;
  char diagnostics[512];
  char expression[160];
  /* headers of a single resource: Location (Type/id/_history/v), ETag
   * version and Last-Modified stamp; empty / 0 when not applicable */
  char location[200];
  int64_t version;
  int64_t updated_ms;
} hvg_fres;

/* Clear r (freeing a body). */
void hvg_fres_reset(hvg_fres *r);

/* r as an error: status, issue code and a message (no PHI). Returns 0 so
 * handlers can `return hvg_fres_fail(...)`. */
int hvg_fres_fail(hvg_fres *r, int status, const char *issue,
                  const char *expression, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* Makes s (NUL-terminated) text that a FHIR string may hold, in place:
 * each byte that does not begin a well-formed UTF-8 sequence, and each
 * control character, becomes '?'. Messages echo what a request said (an
 * id, a parameter name) and may be cut at a byte limit: hvg_fres_fail and
 * the HTTP binding pass them through this. */
void hvg_fsrv_text_clean(char *s);

/* A server over cfg (which must outlive it) and the store handle st.
 * Returns 0 and *out (free with hvg_fsrv_free), or HVG_ENOMEM. */
int hvg_fsrv_new(hvg_fsrv **out, const hvg_config *cfg, store *st,
                 hvg_err *err);
void hvg_fsrv_free(hvg_fsrv *s);

/* The search parameters of a request: name=value pairs, percent-decoded,
 * in order (repeats allowed). */
typedef struct hvg_fparam {
  const char *name, *value;
} hvg_fparam;
#define HVG_FSRV_MAX_PARAMS 32

/* Splits a query string "a=b&c=d" in buf (changed in place: '&' and '='
 * become NULs, values are percent- and '+'-decoded) into params[0..max).
 * Returns the count, or -1 when there are more than max. */
int hvg_fsrv_query(char *buf, hvg_fparam *params, size_t max);

/* The first value of parameter `key` in a raw query string, decoded the
 * same way, into out[cap]: 1, or 0 when absent or longer than cap - 1. */
int hvg_fsrv_query_param(const char *query, const char *key, char *out,
                         size_t cap);

/* The interactions. `who` is the authenticated partner. Each fills *r (the
 * caller resets it) and returns 0; a negative HVG_E* only for failures of
 * the gateway itself (store I/O, out of memory: r then holds a 500/503).
 * `tree` is a resource parsed and checked by fhir_json/fhir_xml; it is
 * only read. if_match: the version a client's If-Match names, 0 for none.
 * now_ms is the time of the interaction. */
int hvg_fsrv_read(hvg_fsrv *s, const hvg_partner *who, const char *type,
                  const char *id, hvg_fres *r);
/* base: the absolute URL of the FHIR endpoint, for the Bundle's links. */
int hvg_fsrv_search(hvg_fsrv *s, const hvg_partner *who, const char *type,
                    const hvg_fparam *params, size_t n, const char *base,
                    hvg_fres *r);
int hvg_fsrv_update(hvg_fsrv *s, const hvg_partner *who, const char *type,
                    const char *id, const cJSON *tree, int64_t if_match,
                    int64_t now_ms, hvg_fres *r);
/* patch: a JSON Patch document (text), applied to the current version.
 * 400 when it is no JSON Patch, 409 when a "test" fails, 422 when an
 * operation cannot be applied or its result is not a valid Task (not
 * FHIR, no TaskStatus, no intent, another id); the result is then
 * checked and stored as an update is. */
int hvg_fsrv_patch(hvg_fsrv *s, const hvg_partner *who, const char *type,
                   const char *id, const char *patch, size_t patch_len,
                   int64_t if_match, int64_t now_ms, hvg_fres *r);
/* if_none_exist: "identifier=system|value" (a query: percent-decoded,
 * then the token escapes \| \, \$ \\ undone) or NULL. */
int hvg_fsrv_create(hvg_fsrv *s, const hvg_partner *who, const char *type,
                    const cJSON *tree, const char *if_none_exist,
                    int64_t now_ms, hvg_fres *r);
/* A Bundle of type transaction or batch. */
int hvg_fsrv_bundle(hvg_fsrv *s, const hvg_partner *who, const cJSON *tree,
                    const char *base, int64_t now_ms, hvg_fres *r);

/* How a Task read from the partner's own server (polling, subscription
 * fetch) changed the loop. */
typedef enum hvg_remote_outcome {
  HVG_REMOTE_IGNORED = 0, /* not a Task of a referral the gateway carries */
  HVG_REMOTE_UNCHANGED,   /* nothing new */
  HVG_REMOTE_APPLIED,     /* a status or content change was recorded */
  HVG_REMOTE_REFUSED      /* a change the state machine refuses (why in r) */
} hvg_remote_outcome;

/* Apply a Task read from partner p's server. source: "poll" or
 * "subscription". *outcome says what happened; r->diagnostics says why for
 * REFUSED and IGNORED. Returns 0 or a gateway failure as above. */
int hvg_fsrv_remote_task(hvg_fsrv *s, const hvg_partner *p, const cJSON *task,
                         const char *source, int64_t now_ms,
                         hvg_remote_outcome *outcome, hvg_fres *r);

/* ---- intake of a program's referrals (hvg_ingest) ----------------------- */

/* A referral record of a program's export, as intake stored it. */
typedef struct hvg_fsrv_referral {
  const hvg_program *program;
  const char *referral_id;
  const hvg_partner *partner; /* queued to it; NULL: not disclosed */
  const char *bundle;         /* the record's Bundle JSON */
  size_t bundle_len;
  const char *data; /* canonical fields for the export (JSON) */
  size_t data_len;
  const char *program_status; /* referral.status of the record, or NULL */
} hvg_fsrv_referral;

/* Track a program's referral: create or update its referral row, host its
 * Task and ServiceRequest for the partner it was queued to (the partner's
 * own view of them at the gateway), and apply the status the program gave
 * when it is one the program sets (family declined, withdrawn, unable to
 * reach). A program status the loop refuses (the partner has completed
 * the Task, say) is not applied: *warning (may be NULL) gets why (no PHI),
 * and 1 is returned. Joins the caller's store transaction if one is open.
 * Returns 0 (tracked), 1 (tracked with a warning), or HVG_E* (store, out of
 * memory, HVG_EFORMAT for a Bundle that is not the gateway's). */
int hvg_fsrv_track_referral(hvg_fsrv *s, const hvg_fsrv_referral *ref,
                            int64_t now_ms, char *warning, size_t cap,
                            hvg_err *err);

/* ---- the program's side of a referral a practice made to it ----------- */

/* The program (the receiver) moves a referral a practice made to it, by
 * its home visiting status: linked -> accepted, scheduled -> in-progress,
 * completed -> completed, declined -> rejected, unable_to_reach -> failed
 * (reason: the statusReason text, may be NULL). The change is checked by
 * the tracker (state machine, receiver's statuses), recorded with actor
 * "program:ID" and source "api", and the gateway's Task follows, where the
 * practice reads it. r: 200 with the Task; 404 for an unknown referral or
 * one the program sent itself; 400 for a status the receiver cannot set;
 * 422 when the loop refuses the change (why in r). Returns 0 or a gateway
 * failure. */
int hvg_fsrv_program_update(hvg_fsrv *s, const hvg_program *prog,
                            const char *referral_id, const char *hv_status,
                            const char *reason, int64_t now_ms, hvg_fres *r);

/* Delivery asks whether the Task of a changed referral Bundle may carry
 * its status to the partner: 1 when the tracker holds the referral at
 * `task_status` because the program set it (the change was accepted), 0
 * when the Task must be left alone (the partner's to change), or HVG_E*. */
int hvg_fsrv_program_status_applies(store *st, const char *program,
                                    const char *referral_id,
                                    const char *task_status, hvg_err *err);

#endif
