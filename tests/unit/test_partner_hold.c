/* The partner hold the delivery workers and the poller share
 * (hvg_partner_hold_*): pauses double to their caps, Retry-After is a
 * floor, each incident is reported once, and an auth incident and an
 * unreachable one are held and ended apart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hvg_deliver.h"

static void down_pauses_double_to_the_cap(void **state) {
  (void)state;
  hvg_partner_hold h;
  hvg_partner_hold_init(&h);
  assert_int_equal(hvg_partner_held_until(&h), 0);
  int64_t now = 1000000;
  assert_int_equal(hvg_partner_hold_down(&h, now, 0), 1); /* first: report */
  assert_int_equal(hvg_partner_held_until(&h), now + HVG_DELIVER_DOWN_MIN_MS);
  int64_t expect = HVG_DELIVER_DOWN_MIN_MS;
  for (int i = 0; i < 12; i++) { /* each probe fails after the pause */
    now = hvg_partner_held_until(&h);
    expect = expect * 2 > HVG_DELIVER_DOWN_MAX_MS ? HVG_DELIVER_DOWN_MAX_MS
                                                   : expect * 2;
    assert_int_equal(hvg_partner_hold_down(&h, now, 0), 0); /* reported */
    assert_int_equal(hvg_partner_held_until(&h), now + expect);
  }
  assert_int_equal(expect, HVG_DELIVER_DOWN_MAX_MS);
  /* an answer ends it, once; the next incident starts short again */
  assert_int_equal(hvg_partner_hold_up(&h), 1);
  assert_int_equal(hvg_partner_hold_up(&h), 0);
  now += HVG_DELIVER_DOWN_MAX_MS;
  assert_int_equal(hvg_partner_hold_down(&h, now, 0), 1);
  assert_int_equal(hvg_partner_held_until(&h), now + HVG_DELIVER_DOWN_MIN_MS);
}

static void retry_after_is_a_floor_and_holds_never_shrink(void **state) {
  (void)state;
  hvg_partner_hold h;
  hvg_partner_hold_init(&h);
  int64_t now = 5000;
  hvg_partner_hold_down(&h, now, now + 30000); /* Retry-After: 30 */
  assert_int_equal(hvg_partner_held_until(&h), now + 30000);
  /* a second worker failing at the same moment does not shorten it */
  hvg_partner_hold_down(&h, now, 0);
  assert_int_equal(hvg_partner_held_until(&h), now + 30000);
}

static void auth_and_down_are_apart(void **state) {
  (void)state;
  hvg_partner_hold h;
  hvg_partner_hold_init(&h);
  int64_t now = 10000;
  assert_int_equal(hvg_partner_hold_fail(&h, now), 1);
  assert_int_equal(hvg_partner_hold_down(&h, now, 0), 1);
  /* held for the longer of the two: the auth pause */
  assert_int_equal(hvg_partner_held_until(&h), now + HVG_DELIVER_HOLD_MS);
  /* the partner answers (401 again): reachable, auth still failing */
  assert_int_equal(hvg_partner_hold_up(&h), 1);
  assert_int_equal(hvg_partner_hold_fail(&h, now + HVG_DELIVER_HOLD_MS), 0);
  assert_int_equal(hvg_partner_held_until(&h), now + 3 * HVG_DELIVER_HOLD_MS);
  assert_int_equal(hvg_partner_hold_clear(&h), 1);
  assert_int_equal(hvg_partner_hold_clear(&h), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(down_pauses_double_to_the_cap),
      cmocka_unit_test(retry_after_is_a_floor_and_holds_never_shrink),
      cmocka_unit_test(auth_and_down_are_apart),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
