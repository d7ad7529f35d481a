/* Routing of accepted records to partners (hvg_route) with the example
 * configuration: by organization id per record type, the partner's record
 * types and services, sensitivity clearance, and the consent scope each
 * record type needs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hvg_route.h"

#include <string.h>

static hvg_config *cfg;

static int setup(void **state) {
  (void)state;
  return hvg_config_load(&cfg, HVG_SOURCE_DIR "/conf/hvgate.json", 0, NULL,
                         NULL);
}

static int teardown(void **state) {
  (void)state;
  hvg_config_free(cfg);
  return 0;
}

static hv_result result(hv_rectype t) {
  hv_result r;
  memset(&r, 0, sizeof r);
  r.rec.type = t;
  return r;
}

static void test_screenings(void **state) {
  (void)state;
  const hv_catalog *cat = cfg->programs[0].cat;
  hvg_route ro;
  hv_result r = result(HV_REC_SCREENING);
  r.rec.v[HV_F_PRACTICE_NPI] = "1234567893";
  r.instrument = hv_catalog_instrument(cat, "ASQ-3");
  hvg_route_record(cfg, &r, &ro);
  assert_int_equal(ro.verdict, HVG_ROUTE_SEND);
  assert_string_equal(ro.partner->id, "riverside-peds");
  assert_null(ro.sensitivity);
  /* mental health: riverside is cleared for it */
  r.instrument = hv_catalog_instrument(cat, "EPDS");
  hvg_route_record(cfg, &r, &ro);
  assert_int_equal(ro.verdict, HVG_ROUTE_SEND);
  assert_string_equal(ro.sensitivity, "mental-health");
  /* partner violence: it is not */
  r.instrument = hv_catalog_instrument(cat, "HITS");
  hvg_route_record(cfg, &r, &ro);
  assert_int_equal(ro.verdict, HVG_ROUTE_SENSITIVE);
  assert_string_equal(ro.sensitivity, "partner-violence");
  assert_non_null(strstr(hvg_route_why(ro.verdict), "not cleared"));
  /* a practice without a partner; no practice at all */
  r.rec.v[HV_F_PRACTICE_NPI] = "1003000126";
  hvg_route_record(cfg, &r, &ro);
  assert_int_equal(ro.verdict, HVG_ROUTE_NO_PARTNER);
  assert_null(ro.partner);
  r.rec.v[HV_F_PRACTICE_NPI] = NULL;
  hvg_route_record(cfg, &r, &ro);
  assert_int_equal(ro.verdict, HVG_ROUTE_NO_ORG);
  assert_string_equal(hvg_route_consent_scope(HV_REC_SCREENING), "screening");
}

static void test_referrals_and_consents(void **state) {
  (void)state;
  const hv_catalog *cat = cfg->programs[0].cat;
  hvg_route ro;
  hv_result r = result(HV_REC_REFERRAL);
  r.rec.v[HV_F_REF_TO_ORG_ID] = "EI-014";
  r.rec.v[HV_F_REF_SERVICE] = "early_intervention";
  r.service = hv_catalog_service(cat, "early_intervention");
  hvg_route_record(cfg, &r, &ro);
  assert_int_equal(ro.verdict, HVG_ROUTE_SEND);
  assert_string_equal(ro.partner->id, "county-ei");
  assert_string_equal(ro.org_field, "referral.to_org_id");
  /* county-ei takes only early intervention referrals */
  r.rec.v[HV_F_REF_SERVICE] = "mental_health";
  r.service = hv_catalog_service(cat, "mental_health");
  hvg_route_record(cfg, &r, &ro);
  assert_int_equal(ro.verdict, HVG_ROUTE_NOT_RECEIVED);
  /* a referral to the practice by its second organization id */
  r.rec.v[HV_F_REF_TO_ORG_ID] = "PC-1234567893";
  r.rec.v[HV_F_REF_SERVICE] = "pediatric_primary_care";
  r.service = hv_catalog_service(cat, "pediatric_primary_care");
  hvg_route_record(cfg, &r, &ro);
  assert_int_equal(ro.verdict, HVG_ROUTE_SEND);
  assert_string_equal(ro.partner->id, "riverside-peds");
  assert_string_equal(hvg_route_consent_scope(HV_REC_REFERRAL), "referral");
  /* a consent goes to the organization it names, and needs no consent */
  hv_result c = result(HV_REC_CONSENT);
  c.rec.v[HV_F_CONSENT_ORG_ID] = "EI-014";
  hvg_route_record(cfg, &c, &ro);
  assert_int_equal(ro.verdict, HVG_ROUTE_SEND);
  assert_string_equal(ro.partner->id, "county-ei");
  assert_null(hvg_route_consent_scope(HV_REC_CONSENT));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_screenings),
      cmocka_unit_test(test_referrals_and_consents),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
