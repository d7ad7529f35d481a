/* hvg_tracker — the rules of the closed loop (design.md "Closed-loop
 * referral"): the FHIR Task state machine, who may set each status, and
 * the home visiting status derived from the Task's.
 *
 * The state machine is R4's (task.html, "Task state machine") as the
 * Gravity SDOHCC and BSeR referral workflows use it:
 *
 *   draft       -> requested, cancelled
 *   requested   -> received, accepted, rejected, ready, in-progress,
 *                  cancelled, failed
 *   received    -> accepted, rejected, ready, in-progress, cancelled, failed
 *   accepted    -> ready, in-progress, on-hold, cancelled, failed
 *   ready       -> in-progress, on-hold, cancelled, failed
 *   in-progress -> on-hold, completed, cancelled, failed
 *   on-hold     -> in-progress, cancelled, failed
 *   any state but entered-in-error -> entered-in-error
 *   rejected, cancelled, failed, completed, entered-in-error: final.
 *
 * Who sets what (SDOHCC Task for Referral Management, "status ownership"):
 * the requester (the side that made the referral) sets draft, requested and
 * entered-in-error; the receiver (the Task's owner) sets received,
 * accepted, rejected, ready, in-progress, on-hold and completed; either
 * sets cancelled and failed. Keeping a status (from == to) is always
 * allowed: an update of businessStatus, output or notes.
 *
 * Pure functions over status codes; the store keeps the state. */
#ifndef HVG_TRACKER_H
#define HVG_TRACKER_H

#include "hvg_err.h"

typedef enum hvg_party {
  HVG_PARTY_REQUESTER = 1, /* made the referral: HV program or practice */
  HVG_PARTY_RECEIVER = 2   /* the Task's owner, who acts on it */
} hvg_party;

/* 1 when s is one of the 12 R4 TaskStatus codes. */
int hvg_task_status_valid(const char *s);

/* 1 for a final status (rejected, cancelled, failed, completed,
 * entered-in-error): only the correction to entered-in-error leaves it. */
int hvg_task_status_final(const char *s);

/* Checks a change of Task.status from `from` to `to` made by party `by`.
 * Returns 0 when allowed; HVG_EINVAL when a code is not a TaskStatus;
 * HVG_ESTATE when the state machine has no such transition or the status
 * belongs to the other party, with err->msg saying which, e.g. "a Task
 * that is completed cannot become in-progress". Changes nothing. */
int hvg_task_transition_check(const char *from, const char *to, hvg_party by,
                              hvg_err *err);

/* 1 when `to` can be reached from `from` through transitions that party
 * `by` may make (at least one step; what a poll that saw only the end
 * points needs), 0 otherwise or for unknown codes. */
int hvg_task_reachable(const char *from, const char *to, hvg_party by);

/* The home visiting status (referred, linked, scheduled, completed,
 * declined, family_declined, withdrawn, unable_to_reach) for a Task
 * status. For cancelled, `program_status` (the status the program gave
 * when it cancelled, may be NULL) tells family_declined from withdrawn.
 * NULL for an unknown Task status. */
const char *hvg_tracker_hv_status(const char *task_status,
                                  const char *program_status);

/* The Task status a program's own status asks for is canonical -> FHIR
 * mapping: hv_task_status_for (mappings/hv_tofhir.h). */

#endif
