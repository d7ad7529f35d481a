/* hv_tofhir keeps the entries of repeating inputs (a family's child,
 * caregiver and RelatedPerson, practice, home visitor, organizations) and
 * writes them again for the next record with the same inputs: every
 * Bundle must be byte for byte the one a fresh hv_tofhir (which has kept
 * nothing) writes, whichever single input changed from one record to the
 * next. Records: the sample referrals and consents, and generated
 * screenings of families whose records differ in one field at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hv_tofhir.h"
#include "hvg_jconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 88172645463325252ull;
static unsigned rnd(unsigned n) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (unsigned)(rng % n);
}

/* Screenings in the sample's layout: families of several records in a row,
 * each record changing one of the inputs of the family's entries. */
static void screenings(hvg_buf *b, int n) {
  static const char *const given[] = {"Ana", "Bo", "", "Zoë \"Z\""};
  static const char *const family[] = {"Lee", "Ng", "", "O'Neil"};
  static const char *const dob[] = {"2021-03-04", "2022-05-06", ""};
  static const char *const sex[] = {"female", "male", "", "unknown"};
  static const char *const npi[] = {"1234567893", "1003000126", "", "X-1"};
  static const char *const pname[] = {"Riverside", "Eastside, Inc.", ""};
  static const char *const phone[] = {"555-000-0001", "555-000-0002", ""};
  static const char *const hv[] = {"HV01", "HV02", ""};
  static const char *const rel[] = {"mother", "father", "", "Guardian"};
  hvg_buf_adds(b, "relationship,record_id,family_id,caregiver_id,"
                  "caregiver_first_name,"
                  "caregiver_last_name,caregiver_dob,caregiver_phone,child_id,"
                  "child_first_name,child_last_name,child_dob,child_sex,"
                  "pediatric_practice_npi,pediatric_practice_name,"
                  "home_visitor_id,screen_date,instrument,subject,total_score,"
                  "asq_interval_months,asq_communication,asq_gross_motor,"
                  "asq_fine_motor,asq_problem_solving,asq_personal_social,"
                  "result\n");
  unsigned v[13] = {0};
  int fam = 0;
  for (int i = 0; i < n; i++) {
    if (rnd(4) == 0) /* a new family */
      fam++;
    else
      v[rnd(13)] = rnd(4); /* one input of the family changes */
    int caregiver = rnd(2);
    hvg_buf_printf(
        b,
        "%s,S%d,F%d,CG%d,\"%s\",%s,%s,%s,CH%d,\"%s\",%s,%s,%s,%s,\"%s\",%s,"
        "2026-06-01,%s,%s,%d,,,,,,,\n",
        rel[v[12] % 4], i, fam, fam + (int)v[0] % 2, given[v[1] % 4], family[v[2] % 4],
        dob[v[3] % 3], phone[v[4] % 3], fam + (int)v[5] % 2, given[v[6] % 4],
        family[v[7] % 4], dob[v[8] % 3], sex[v[9] % 4], npi[v[10] % 4],
        pname[v[11] % 3], hv[(unsigned)i % 3 ? v[0] % 3 : 2],
        caregiver ? "PHQ-2" : "M-CHAT-R", caregiver ? "caregiver" : "child",
        caregiver ? 2 : 3);
  }
}

/* Maps data as the mapping's source for `name` and builds every accepted
 * record's Bundle twice: with one hv_tofhir for the whole run and with a
 * fresh one. Returns the number of Bundles compared (all equal). */
static int compare(const hv_mapping *m, const hv_catalog *cat,
                   const char *name, const char *data, size_t len) {
  hv_mapper_opts mo = {20780, 0};
  hv_mapper *mp;
  assert_int_equal(hv_mapper_new(&mp, m, cat, &mo), 0);
  const hv_source *src = hv_mapping_source_for(m, name, NULL);
  assert_non_null(src);
  hvg_err err;
  assert_int_equal(hv_mapper_open_mem(mp, name, data, len, src, &err), 0);
  hv_tofhir shared;
  assert_int_equal(hv_tofhir_init(&shared, m, cat), 0);
  hvg_buf a, b;
  hvg_buf_init(&a, 1 << 20);
  hvg_buf_init(&b, 1 << 20);
  hvg_arena scratch;
  hvg_arena_init(&scratch, 1 << 20);
  static hv_result res;
  int n = 0;
  while (hv_mapper_next(mp, &res, &err) == 1) {
    if (res.rejected)
      continue;
    for (int k = 0; k < 2; k++) {
      hv_tofhir fresh;
      hv_tofhir *t = &shared;
      if (k) {
        assert_int_equal(hv_tofhir_init(&fresh, m, cat), 0);
        t = &fresh;
      }
      hvg_buf *out = k ? &b : &a;
      hvg_buf_reset(out);
      fhir_writer w;
      fhir_w_init(&w, out, FHIR_JSON, 0);
      hvg_arena_reset(&scratch);
      assert_int_equal(hv_tofhir_bundle(t, &w, &res, &scratch, &err), 0);
      assert_int_equal(fhir_w_finish(&w), 0);
      if (k)
        hv_tofhir_free(&fresh);
    }
    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
      fail_msg("%s:%lu: Bundle differs from a fresh hv_tofhir's", name,
               res.rec.line);
    n++;
  }
  hv_tofhir_free(&shared);
  hv_mapper_free(mp);
  hvg_buf_free(&a);
  hvg_buf_free(&b);
  hvg_arena_free(&scratch);
  return n;
}

/* The sample mapping's screenings source, with the caregiver's
 * relationship read from a column too (the sample has none). */
static hv_mapping *load_mapping(const char *path, int relationship) {
  if (relationship) {
    size_t len;
    char *json = hvg_read_file(path, (size_t)16 << 20, &len);
    assert_non_null(json);
    static const char anchor[] = "\"caregiver.id\": \"caregiver_id\",";
    char *at = strstr(json, anchor);
    assert_non_null(at);
    char tmp[] = "/tmp/test_tofhir_XXXXXX";
    int fd = mkstemp(tmp);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    /* catalogues by absolute path: the copy lives elsewhere */
    for (const char *p = json; p < at;) {
      const char *rel = strstr(p, "\"../catalog/");
      if (!rel || rel > at)
        rel = at;
      fprintf(f, "%.*s", (int)(rel - p), p);
      p = rel;
      if (rel < at) {
        fprintf(f, "\"%s/conf/catalog/", HVG_SOURCE_DIR);
        p += strlen("\"../catalog/");
      }
    }
    fprintf(f, "%s \"caregiver.relationship\": \"relationship\",", anchor);
    fputs(at + sizeof anchor - 1, f);
    fclose(f);
    free(json);
    hv_mapping *m = NULL;
    int rc = hv_mapping_load(&m, tmp, HVG_SOURCE_DIR "/conf/catalog", NULL);
    remove(tmp);
    assert_int_equal(rc, 0);
    return m;
  }
  hv_mapping *m = NULL;
  assert_int_equal(hv_mapping_load(&m, path, NULL, NULL), 0);
  return m;
}

static void test_kept_entries_equal_fresh(void **state) {
  (void)state;
  const char *path = HVG_SOURCE_DIR "/conf/mappings/program-export.json";
  hv_mapping *m = load_mapping(path, 1);
  hv_catalog *cat = NULL;
  assert_int_equal(
      hv_catalog_load(&cat, m->instruments_path, m->services_path, NULL), 0);
  hvg_buf gen;
  hvg_buf_init(&gen, 16 << 20);
  screenings(&gen, 3000);
  assert_true(compare(m, cat, "screenings.csv", gen.data, gen.len) > 2500);
  hvg_buf_free(&gen);
  hv_catalog_free(cat);
  hv_mapping_free(m);
  m = load_mapping(path, 0);
  assert_int_equal(
      hv_catalog_load(&cat, m->instruments_path, m->services_path, NULL), 0);
  static const char *const sample[] = {"referrals.csv", "consents.csv",
                                       "screenings.csv"};
  for (size_t i = 0; i < sizeof sample / sizeof *sample; i++) {
    char file[512];
    snprintf(file, sizeof file, "%s/program-export/%s", HVG_TEST_DATA,
             sample[i]);
    size_t len;
    char *data = hvg_read_file(file, (size_t)16 << 20, &len);
    assert_non_null(data);
    assert_true(compare(m, cat, sample[i], data, len) > 90);
    free(data);
  }
  hv_catalog_free(cat);
  hv_mapping_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kept_entries_equal_fresh),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
