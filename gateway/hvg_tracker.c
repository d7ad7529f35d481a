#include "hvg_tracker.h"

#include <stddef.h>
#include <string.h>

/* The 12 R4 TaskStatus codes; the order is the bit of each in next[]. */
enum {
  T_DRAFT,
  T_REQUESTED,
  T_RECEIVED,
  T_ACCEPTED,
  T_REJECTED,
  T_READY,
  T_CANCELLED,
  T_IN_PROGRESS,
  T_ON_HOLD,
  T_FAILED,
  T_COMPLETED,
  T_EIE,
  T__COUNT
};

static const char *const names[T__COUNT] = {
    "draft",    "requested", "received",  "accepted",
    "rejected", "ready",     "cancelled", "in-progress",
    "on-hold",  "failed",    "completed", "entered-in-error"};

#define B(x) (1u << (x))

/* The state machine (see the header): next[from] = the states it may go
 * to; entered-in-error (a correction) is added for every state but itself
 * below. A final state has no next state but that one. */
static const unsigned next[T__COUNT] = {
    [T_DRAFT] = B(T_REQUESTED) | B(T_CANCELLED),
    [T_REQUESTED] = B(T_RECEIVED) | B(T_ACCEPTED) | B(T_REJECTED) | B(T_READY) |
                    B(T_IN_PROGRESS) | B(T_CANCELLED) | B(T_FAILED),
    [T_RECEIVED] = B(T_ACCEPTED) | B(T_REJECTED) | B(T_READY) |
                   B(T_IN_PROGRESS) | B(T_CANCELLED) | B(T_FAILED),
    [T_ACCEPTED] = B(T_READY) | B(T_IN_PROGRESS) | B(T_ON_HOLD) |
                   B(T_CANCELLED) | B(T_FAILED),
    [T_READY] = B(T_IN_PROGRESS) | B(T_ON_HOLD) | B(T_CANCELLED) | B(T_FAILED),
    [T_IN_PROGRESS] =
        B(T_ON_HOLD) | B(T_COMPLETED) | B(T_CANCELLED) | B(T_FAILED),
    [T_ON_HOLD] = B(T_IN_PROGRESS) | B(T_CANCELLED) | B(T_FAILED),
};

/* Who sets each status. */
static const unsigned by_requester =
    B(T_DRAFT) | B(T_REQUESTED) | B(T_EIE) | B(T_CANCELLED) | B(T_FAILED);
static const unsigned by_receiver =
    B(T_RECEIVED) | B(T_ACCEPTED) | B(T_REJECTED) | B(T_READY) |
    B(T_IN_PROGRESS) | B(T_ON_HOLD) | B(T_COMPLETED) | B(T_CANCELLED) |
    B(T_FAILED);

static int status_index(const char *s) {
  for (int i = 0; s && i < T__COUNT; i++)
    if (strcmp(s, names[i]) == 0)
      return i;
  return -1;
}

int hvg_task_status_valid(const char *s) {
  return status_index(s) >= 0;
}

int hvg_task_status_final(const char *s) {
  int i = status_index(s);
  return i >= 0 && next[i] == 0;
}

int hvg_task_transition_check(const char *from, const char *to, hvg_party by,
                              hvg_err *err) {
  int f = status_index(from), t = status_index(to);
  if (f < 0 || t < 0)
    return hvg_err_set(err, HVG_EINVAL, "Task.status",
                       "\"%.40s\" is not a Task status",
                       f < 0 ? (from ? from : "") : to);
  if (f == t)
    return 0;
  unsigned allowed = next[f] | (f != T_EIE ? B(T_EIE) : 0);
  if (!(allowed & B(t)))
    return hvg_err_set(err, HVG_ESTATE, "Task.status",
                       "a Task that is %s cannot become %s", names[f],
                       names[t]);
  unsigned mine = by == HVG_PARTY_REQUESTER ? by_requester : by_receiver;
  if (!(mine & B(t)))
    return hvg_err_set(err, HVG_ESTATE, "Task.status",
                       "%s is set by the %s, not the %s", names[t],
                       by == HVG_PARTY_REQUESTER
                           ? "receiver (the Task's owner)"
                           : "requester (who made the referral)",
                       by == HVG_PARTY_REQUESTER ? "requester" : "receiver");
  return 0;
}

int hvg_task_reachable(const char *from, const char *to, hvg_party by) {
  int f = status_index(from), t = status_index(to);
  if (f < 0 || t < 0)
    return 0;
  unsigned mine = by == HVG_PARTY_REQUESTER ? by_requester : by_receiver;
  unsigned seen = 0, frontier = B(f);
  while (frontier) { /* breadth first over the 12 states */
    unsigned next_frontier = 0;
    for (int i = 0; i < T__COUNT; i++)
      if (frontier & B(i)) {
        unsigned out = (next[i] | (i != T_EIE ? B(T_EIE) : 0)) & mine;
        next_frontier |= out & ~seen;
      }
    seen |= next_frontier;
    if (seen & B(t))
      return 1;
    frontier = next_frontier;
  }
  return 0;
}

const char *hvg_tracker_hv_status(const char *task_status,
                                  const char *program_status) {
  switch (status_index(task_status)) {
  case T_DRAFT:
  case T_REQUESTED:
  case T_RECEIVED: return "referred";
  case T_ACCEPTED:
  case T_READY: return "linked";
  case T_IN_PROGRESS:
  case T_ON_HOLD: return "scheduled";
  case T_COMPLETED: return "completed";
  case T_REJECTED: return "declined";
  case T_CANCELLED:
    return program_status && strcmp(program_status, "family_declined") == 0
               ? "family_declined"
               : "withdrawn";
  case T_FAILED: return "unable_to_reach";
  case T_EIE: return "withdrawn";
  default: return NULL;
  }
}
