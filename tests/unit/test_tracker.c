/* The closed loop's rules (hvg_tracker): the Task state machine, who sets
 * which status, reachability for polled snapshots, and the home visiting
 * status derived from the Task's. Every one of the 144 (from, to) pairs is
 * checked against an independent table written from the R4 state machine
 * as hvg_tracker.h states it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hv_tofhir.h"
#include "hvg_tracker.h"

#include <string.h>

static const char *const S[12] = {
    "draft",    "requested", "received",  "accepted",
    "rejected", "ready",     "cancelled", "in-progress",
    "on-hold",  "failed",    "completed", "entered-in-error"};

/* allowed[from] = the statuses it may become (either party), as a string
 * of the states' initials in the order of S: written by hand from the
 * state machine. */
static int allowed(const char *from, const char *to) {
  static const struct {
    const char *from;
    const char *to[9];
  } m[] = {
      {"draft", {"requested", "cancelled", "entered-in-error"}},
      {"requested",
       {"received", "accepted", "rejected", "ready", "in-progress", "cancelled",
        "failed", "entered-in-error"}},
      {"received",
       {"accepted", "rejected", "ready", "in-progress", "cancelled", "failed",
        "entered-in-error"}},
      {"accepted",
       {"ready", "in-progress", "on-hold", "cancelled", "failed",
        "entered-in-error"}},
      {"ready",
       {"in-progress", "on-hold", "cancelled", "failed", "entered-in-error"}},
      {"in-progress",
       {"on-hold", "completed", "cancelled", "failed", "entered-in-error"}},
      {"on-hold", {"in-progress", "cancelled", "failed", "entered-in-error"}},
      {"rejected", {"entered-in-error"}},
      {"cancelled", {"entered-in-error"}},
      {"failed", {"entered-in-error"}},
      {"completed", {"entered-in-error"}},
  };
  if (!strcmp(from, to))
    return 1;
  for (size_t i = 0; i < sizeof m / sizeof *m; i++)
    if (!strcmp(m[i].from, from))
      for (size_t k = 0; k < 9 && m[i].to[k]; k++)
        if (!strcmp(m[i].to[k], to))
          return 1;
  return 0;
}

static int requester_sets(const char *s) {
  return !strcmp(s, "draft") || !strcmp(s, "requested") ||
         !strcmp(s, "entered-in-error") || !strcmp(s, "cancelled") ||
         !strcmp(s, "failed");
}

static void test_every_pair(void **state) {
  (void)state;
  int ok = 0, refused = 0;
  for (int f = 0; f < 12; f++)
    for (int t = 0; t < 12; t++)
      for (int p = 1; p <= 2; p++) {
        hvg_err e;
        hvg_err_clear(&e);
        int want = allowed(S[f], S[t]) &&
                   (f == t ||
                    (p == HVG_PARTY_REQUESTER
                         ? requester_sets(S[t])
                         : strcmp(S[t], "draft") && strcmp(S[t], "requested") &&
                               strcmp(S[t], "entered-in-error")));
        int rc = hvg_task_transition_check(S[f], S[t], (hvg_party)p, &e);
        if (want) {
          assert_int_equal(rc, 0);
          ok++;
        } else {
          assert_int_equal(rc, HVG_ESTATE);
          assert_true(strlen(e.msg) > 10);
          assert_string_equal(e.field, "Task.status");
          refused++;
        }
      }
  assert_true(ok > 40 && refused > 150); /* both kinds were exercised */
}

static void test_messages(void **state) {
  (void)state;
  hvg_err e;
  assert_int_equal(hvg_task_transition_check("completed", "in-progress",
                                             HVG_PARTY_RECEIVER, &e),
                   HVG_ESTATE);
  assert_string_equal(e.msg, "a Task that is completed cannot become "
                             "in-progress");
  assert_int_equal(hvg_task_transition_check("requested", "accepted",
                                             HVG_PARTY_REQUESTER, &e),
                   HVG_ESTATE);
  assert_non_null(strstr(e.msg, "accepted is set by the receiver"));
  assert_int_equal(
      hvg_task_transition_check("requested", "done", HVG_PARTY_RECEIVER, &e),
      HVG_EINVAL);
  assert_non_null(strstr(e.msg, "\"done\" is not a Task status"));
  assert_int_equal(
      hvg_task_transition_check(NULL, "done", HVG_PARTY_RECEIVER, &e),
      HVG_EINVAL);
}

static void test_reachable(void **state) {
  (void)state;
  /* a poll that saw requested, then completed: steps were missed */
  assert_true(hvg_task_reachable("requested", "completed", HVG_PARTY_RECEIVER));
  assert_true(hvg_task_reachable("received", "on-hold", HVG_PARTY_RECEIVER));
  assert_false(
      hvg_task_reachable("completed", "in-progress", HVG_PARTY_RECEIVER));
  assert_false(hvg_task_reachable("rejected", "accepted", HVG_PARTY_RECEIVER));
  /* the requester cannot complete a referral, however it goes */
  assert_false(
      hvg_task_reachable("requested", "completed", HVG_PARTY_REQUESTER));
  assert_true(hvg_task_reachable("draft", "cancelled", HVG_PARTY_REQUESTER));
  assert_false(hvg_task_reachable("requested", "bogus", HVG_PARTY_RECEIVER));
  /* direct transitions are reachable too */
  for (int f = 0; f < 12; f++)
    for (int t = 0; t < 12; t++)
      if (f != t && allowed(S[f], S[t]) && strcmp(S[t], "draft") &&
          strcmp(S[t], "requested") && strcmp(S[t], "entered-in-error"))
        assert_true(hvg_task_reachable(S[f], S[t], HVG_PARTY_RECEIVER));
}

static void test_final(void **state) {
  (void)state;
  const char *final[] = {"rejected", "cancelled", "failed", "completed",
                         "entered-in-error"};
  for (size_t i = 0; i < 5; i++)
    assert_true(hvg_task_status_final(final[i]));
  assert_false(hvg_task_status_final("on-hold"));
  assert_false(hvg_task_status_final("nope"));
  assert_true(hvg_task_status_valid("entered-in-error"));
  assert_false(hvg_task_status_valid("done"));
  assert_false(hvg_task_status_valid(NULL));
}

static void test_hv_status(void **state) {
  (void)state;
  static const struct {
    const char *task, *program, *hv;
  } m[] = {
      {"requested", NULL, "referred"},
      {"received", NULL, "referred"},
      {"accepted", NULL, "linked"},
      {"ready", NULL, "linked"},
      {"in-progress", NULL, "scheduled"},
      {"on-hold", NULL, "scheduled"},
      {"completed", NULL, "completed"},
      {"rejected", NULL, "declined"},
      {"cancelled", "family_declined", "family_declined"},
      {"cancelled", "withdrawn", "withdrawn"},
      {"cancelled", NULL, "withdrawn"},
      {"failed", NULL, "unable_to_reach"},
      {"entered-in-error", NULL, "withdrawn"},
  };
  for (size_t i = 0; i < sizeof m / sizeof *m; i++)
    assert_string_equal(hvg_tracker_hv_status(m[i].task, m[i].program),
                        m[i].hv);
  assert_null(hvg_tracker_hv_status("done", NULL));
}

static void test_program_statuses(void **state) {
  (void)state;
  const char *why;
  assert_string_equal(hv_task_status_for("family_declined", &why), "cancelled");
  assert_string_equal(why, "family declined");
  assert_string_equal(hv_task_status_for("withdrawn", &why), "cancelled");
  assert_string_equal(hv_task_status_for("unable_to_reach", &why), "failed");
  /* the receiver's statuses and the initial one do not move the Task */
  const char *none[] = {"referred",  "linked",   "scheduled",
                        "completed", "declined", NULL};
  for (size_t i = 0; i < 6; i++) {
    why = "x";
    assert_null(hv_task_status_for(none[i], &why));
    assert_null(why);
  }
  /* and what the program sets, the requester may set */
  const char *set[] = {"family_declined", "withdrawn", "unable_to_reach"};
  for (size_t i = 0; i < 3; i++) {
    hvg_err e;
    assert_int_equal(hvg_task_transition_check("requested",
                                               hv_task_status_for(set[i], NULL),
                                               HVG_PARTY_REQUESTER, &e),
                     0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_pair),
      cmocka_unit_test(test_messages),
      cmocka_unit_test(test_reachable),
      cmocka_unit_test(test_final),
      cmocka_unit_test(test_hv_status),
      cmocka_unit_test(test_program_statuses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
