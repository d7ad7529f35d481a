/* hv_export, the reverse direction of a mapping file: records mapped from a
 * program's export (hv_mapper), written back in its layout (hv_export) and
 * read again with the same source give the same canonical values — for the
 * sample referrals (value map "declined" -> "family_declined"), a
 * semicolon / Latin-1 / MM/DD/YYYY layout, and NDJSON with nested paths.
 * Also: CSV quoting, reverse value maps, date patterns (hv_date_format),
 * encodings and the record left out on an encoding error, the column order
 * (fields, then export_fields), headerless sources, the sink cap, and the
 * loader's export_fields and export-only (HV_OUT) checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include "hv_export.h"
#include "hv_mapper.h"
#include "hvg_jconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TODAY 20780 /* 2026-11-23 */
#define MAXREC 256

/* ---- helpers ---------------------------------------------------------- */

typedef struct recs {
  hvg_arena a;
  size_t n;
  const char *v[MAXREC][HV_F__COUNT];
} recs;

static recs *recs_new(void) {
  recs *r = calloc(1, sizeof *r);
  assert_non_null(r);
  hvg_arena_init(&r->a, 8 << 20);
  return r;
}

static void recs_free(recs *r) {
  hvg_arena_free(&r->a);
  free(r);
}

static char *write_tmp(const char *name, const char *text) {
  static char path[256];
  const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(path, sizeof path, "%s/hvg_test_export_%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  return path;
}

/* Loads mapping text; NULL when rejected (diag then holds why). */
static hv_mapping *load_text(const char *json, hvg_buf *diag) {
  char *p = write_tmp("mapping.json", json);
  hv_mapping *m = NULL;
  int rc = hv_mapping_load(&m, p, HVG_SOURCE_DIR "/conf/catalog", diag);
  remove(p);
  return rc ? NULL : m;
}

static hv_mapping *load_file(const char *rel) {
  char p[512];
  snprintf(p, sizeof p, "%s%s", HVG_SOURCE_DIR, rel);
  hv_mapping *m = NULL;
  assert_int_equal(hv_mapping_load(&m, p, NULL, NULL), 0);
  return m;
}

static hv_catalog *catalog(const hv_mapping *m) {
  hv_catalog *cat = NULL;
  assert_int_equal(
      hv_catalog_load(&cat, m->instruments_path, m->services_path, NULL), 0);
  return cat;
}

static char *read_data(const char *rel, size_t *len) {
  char p[512];
  snprintf(p, sizeof p, "%s%s", HVG_TEST_DATA, rel);
  char *t = hvg_read_file(p, 16 << 20, len);
  assert_non_null(t);
  return t;
}

/* Maps data as src; keeps the accepted records in out and returns how many
 * were rejected. */
static size_t map_mem(const hv_mapping *m, const hv_catalog *cat,
                      const hv_source *src, const char *data, size_t len,
                      recs *out) {
  hv_mapper *mp;
  hv_mapper_opts mo = {TODAY, 0};
  assert_int_equal(hv_mapper_new(&mp, m, cat, &mo), 0);
  hvg_err err;
  assert_int_equal(hv_mapper_open_mem(mp, "t", data, len, src, &err), 0);
  hv_result res;
  int rc;
  size_t rejected = 0;
  while ((rc = hv_mapper_next(mp, &res, &err)) == 1) {
    if (res.rejected) {
      rejected++;
      continue;
    }
    assert_true(out->n < MAXREC);
    for (int f = 0; f < HV_F__COUNT; f++)
      out->v[out->n][f] =
          res.rec.v[f] ? hvg_arena_strdup(&out->a, res.rec.v[f]) : NULL;
    out->n++;
  }
  assert_int_equal(rc, 0);
  hv_mapper_free(mp);
  return rejected;
}

static void export_all(const hv_source *src, hv_export_format fmt,
                       const recs *r, hvg_buf *out) {
  hv_export *x;
  hvg_err err;
  assert_int_equal(hv_export_new(&x, src, fmt, out, &err), 0);
  for (size_t i = 0; i < r->n; i++) {
    int rc = hv_export_row(x, r->v[i], &err);
    if (rc)
      fail_msg("record %zu: %s: %s", i, err.field, err.msg);
  }
  assert_int_equal(hv_export_count(x), r->n);
  hv_export_free(x);
}

/* Every field the source reads has the same canonical value in a and b. */
static void same_records(const hv_source *src, const recs *a, const recs *b) {
  assert_int_equal(a->n, b->n);
  for (size_t i = 0; i < a->n; i++)
    for (int f = 0; f < HV_F__COUNT; f++) {
      if (!src->by_field[f])
        continue;
      const char *x = a->v[i][f], *y = b->v[i][f];
      if ((x == NULL) != (y == NULL) || (x && strcmp(x, y) != 0))
        fail_msg("record %zu, %s: '%s' came back as '%s'", i,
                 hv_field_get((hv_field)f)->name, x ? x : "(none)",
                 y ? y : "(none)");
    }
}

static const hv_source *source(const hv_mapping *m, const char *name) {
  const hv_source *s = hv_mapping_source_for(m, NULL, name);
  assert_non_null(s);
  return s;
}

/* ---- hv_date_format --------------------------------------------------- */

static void test_date_format(void **state) {
  (void)state;
  char out[64];
  assert_int_equal(hv_date_format("MM/DD/YYYY", "2025-03-04", out, sizeof out),
                   0);
  assert_string_equal(out, "03/04/2025");
  assert_int_equal(hv_date_format("M/D/YYYY", "2026-07-05", out, sizeof out),
                   0);
  assert_string_equal(out, "7/5/2026");
  assert_int_equal(hv_date_format("D.M.YYYY", "2026-12-25", out, sizeof out),
                   0);
  assert_string_equal(out, "25.12.2026");
  assert_int_equal(hv_date_format("YYYYMMDD", "2026-02-28", out, sizeof out),
                   0);
  assert_string_equal(out, "20260228");
  /* M straight before D: two digits, or 1/15 and 11/5 would read the same */
  assert_int_equal(hv_date_format("YYYYMD", "2026-01-15", out, sizeof out), 0);
  assert_string_equal(out, "20260115");
  assert_int_equal(hv_date_format("YYYY\xe5\xb9\xb4M\xe6\x9c\x88"
                                  "D\xe6\x97\xa5",
                                  "2026-01-05", out, sizeof out),
                   0);
  assert_string_equal(out, "2026\xe5\xb9\xb4"
                           "1\xe6\x9c\x88"
                           "5\xe6\x97\xa5");
  /* errors: out is "" */
  assert_int_equal(hv_date_format("YYYY-MM-DD", "2026-02-30", out, sizeof out),
                   HVG_EFORMAT);
  assert_string_equal(out, "");
  assert_int_equal(hv_date_format("YYYY-MM-DD", "2026-2-3", out, sizeof out),
                   HVG_EFORMAT);
  assert_int_equal(
      hv_date_format("YYYY-MM-DD", "2026-02-03T10:00", out, sizeof out),
      HVG_EFORMAT);
  assert_int_equal(hv_date_format("QQ/YYYY", "2026-02-03", out, sizeof out),
                   HVG_EINVAL);
  assert_int_equal(hv_date_format(NULL, "2026-02-03", out, sizeof out),
                   HVG_EINVAL);
  assert_int_equal(hv_date_format("MM/DD/YYYY", "2026-02-03", out, 10),
                   HVG_ETOOBIG);
  assert_string_equal(out, "");
  assert_int_equal(hv_date_format("MM/DD/YYYY", "2026-02-03", out, 11), 0);

  /* every day of 2024 (leap) and 2026, every pattern: parse(format(d)) == d */
  static const char *const pats[] = {"YYYY-MM-DD", "MM/DD/YYYY", "M/D/YYYY",
                                     "D.M.YYYY",   "YYYYMMDD",   "YYYYMD",
                                     "DMYYYY",     "D MM YYYY"};
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  for (int y = 2024; y <= 2026; y += 2)
    for (int mo = 1; mo <= 12; mo++)
      for (int d = 1; d <= mdays[mo - 1] - (mo == 2 && y % 4); d++) {
        char iso[40], back[11];
        snprintf(iso, sizeof iso, "%04d-%02d-%02d", y, mo, d);
        for (size_t p = 0; p < sizeof pats / sizeof *pats; p++) {
          assert_int_equal(hv_date_format(pats[p], iso, out, sizeof out), 0);
          assert_int_equal(hv_date_parse(pats[p], out, back), 0);
          assert_string_equal(back, iso);
        }
      }
}

/* ---- round trips ------------------------------------------------------ */

/* The sample referrals: mapped, exported in the program's layout, read back
 * with the same source: the same canonical values, "family_declined"
 * included (written as the program's "declined"). The export columns follow
 * the program's own columns, which are exactly its file's header. */
static void test_roundtrip_sample_referrals(void **state) {
  (void)state;
  hv_mapping *m = load_file("/conf/mappings/program-export.json");
  hv_catalog *cat = catalog(m);
  const hv_source *src = source(m, "referrals");
  assert_ptr_equal(hv_mapping_source_of_type(m, HV_REC_REFERRAL), src);
  assert_ptr_equal(hv_mapping_source_of_type(m, HV_REC_WELLCHILD),
                   source(m, "well_child_results"));
  size_t len;
  char *csv = read_data("/program-export/referrals.csv", &len);
  recs *a = recs_new(), *b = recs_new();
  assert_int_equal(map_mem(m, cat, src, csv, len, a), 1); /* no referral date */
  assert_int_equal(a->n, 101);
  size_t declined = 0;
  for (size_t i = 0; i < a->n; i++)
    declined += a->v[i][HV_F_REF_STATUS] &&
                !strcmp(a->v[i][HV_F_REF_STATUS], "family_declined");
  assert_true(declined > 0);

  hvg_buf out;
  hvg_buf_init(&out, 16 << 20);
  export_all(src, HV_EXPORT_CSV, a, &out);
  char want[2048];
  snprintf(want, sizeof want, "%.*s%s", (int)strcspn(csv, "\r\n"), csv,
           ",direction,referred_from_org_id,referred_from_org_name,"
           "task_status,status_reason,outcome,sent_date,received_date,"
           "linked_date,scheduled_date,completed_date,closed_date\r\n");
  assert_memory_equal(out.data, want, strlen(want)); /* own columns first */
  assert_non_null(strstr(out.data, ",declined,"));
  assert_null(strstr(out.data, "family_declined"));
  assert_non_null(strstr(out.data, "\"Call after 3pm, \"\"Mom works "
                                   "mornings\"\"\""));
  assert_int_equal(map_mem(m, cat, src, out.data, out.len, b), 0);
  same_records(src, a, b);

  hvg_buf_free(&out);
  recs_free(a);
  recs_free(b);
  free(csv);
  hv_catalog_free(cat);
  hv_mapping_free(m);
}

/* The referral loop carried back: export_fields columns hold the values the
 * gateway adds, quoted where needed, and an input file without those
 * columns still maps (they are never read). */
static void test_referral_export_fields(void **state) {
  (void)state;
  hv_mapping *m = load_file("/conf/mappings/program-export.json");
  const hv_source *src = source(m, "referrals");
  const char *v[HV_F__COUNT] = {0};
  v[HV_F_RECORD_ID] = "R0000001";
  v[HV_F_CHILD_ID] = "CH00001";
  v[HV_F_REF_DATE] = "2026-07-04";
  v[HV_F_REF_SERVICE] = "early_intervention";
  v[HV_F_REF_TO_ORG_ID] = "EI-014";
  v[HV_F_REF_STATUS] = "linked";
  v[HV_F_REF_DIRECTION] = "outbound";
  v[HV_F_REF_FROM_ORG_ID] = "sunrise-hv";
  v[HV_F_REF_FROM_ORG_NAME] = "Sunrise, Home Visiting";
  v[HV_F_REF_TASK_STATUS] = "in-progress";
  v[HV_F_REF_STATUS_REASON] = "family asked to wait\r\nuntil \"May\"";
  v[HV_F_REF_OUTCOME] = "intake done";
  v[HV_F_REF_SENT_DATE] = "2026-07-04";
  v[HV_F_REF_RECEIVED_DATE] = "2026-07-05";
  v[HV_F_REF_LINKED_DATE] = "2026-07-11";
  hvg_buf out;
  hvg_buf_init(&out, 1 << 20);
  hv_export *x;
  hvg_err err;
  assert_int_equal(hv_export_new(&x, src, HV_EXPORT_CSV, &out, &err), 0);
  assert_int_equal(hv_export_row(x, v, &err), 0);
  hv_export_free(x);
  const char *row = strstr(out.data, "\r\n") + 2;
  assert_string_equal(row, "R0000001,,,,,,CH00001,,,,,,2026-07-04,"
                           "early_intervention,,EI-014,,,linked,,,outbound,"
                           "sunrise-hv,\"Sunrise, Home Visiting\",in-progress,"
                           "\"family asked to wait\r\nuntil \"\"May\"\"\","
                           "intake done,2026-07-04,2026-07-05,2026-07-11,,,"
                           "\r\n");
  /* read back: the export columns are plain columns of the file */
  hv_reader *r;
  hv_reader_opts o = src->ropts;
  assert_int_equal(hv_reader_open_mem(&r, "x", out.data, out.len, &o, &err), 0);
  assert_int_equal(hv_reader_bind(r, "status_reason", &err), 0);
  assert_int_equal(hv_reader_bind(r, "referred_from_org_name", &err), 1);
  assert_int_equal(hv_reader_bind(r, "closed_date", &err), 2);
  hv_row rw;
  assert_int_equal(hv_reader_next(r, &rw, &err), 1);
  assert_string_equal(rw.val[0], v[HV_F_REF_STATUS_REASON]);
  assert_string_equal(rw.val[1], v[HV_F_REF_FROM_ORG_NAME]);
  assert_string_equal(rw.val[2], "");
  hv_reader_close(r);
  hvg_buf_free(&out);
  hv_mapping_free(m);
}

/* well_child_results: a result layout whose export_fields (covers_until,
 * rescreen_needed) come last; mapped, exported and read back. */
static void test_roundtrip_well_child(void **state) {
  (void)state;
  hv_mapping *m = load_file("/conf/mappings/program-export.json");
  hv_catalog *cat = catalog(m);
  const hv_source *src = source(m, "well_child_results");
  assert_ptr_equal(hv_mapping_source_for(m, "x/well-child-2026.csv", NULL),
                   src);
  const char *in =
      "result_id,child_id,family_id,pediatric_practice_npi,"
      "pediatric_practice_name,instrument,screen_date,subject,total_score,"
      "asq_interval_months,asq_communication,asq_gross_motor,asq_fine_motor,"
      "asq_problem_solving,asq_personal_social,result,visit_date\n"
      "W1,CH00001,F00001,1234567893,Riverside Pediatrics,ASQ-3,2026-06-28,"
      "child,,24,15,30,60,45,60,positive,2026-06-28\n"
      "W2,CH00002,F00002,1003000126,\"Eastside, Family Health\",M-CHAT-R,"
      "2026-08-06,child,3,,,,,,,negative,2026-08-06\n";
  recs *a = recs_new(), *b = recs_new();
  assert_int_equal(map_mem(m, cat, src, in, strlen(in), a), 0);
  assert_int_equal(a->n, 2);
  a->v[0][HV_F_SCREEN_COVERS_UNTIL] = "2026-10-28";
  a->v[0][HV_F_SCREEN_RESCREEN] = "no";
  a->v[1][HV_F_SCREEN_RESCREEN] = "yes";
  hvg_buf out;
  hvg_buf_init(&out, 1 << 20);
  export_all(src, HV_EXPORT_CSV, a, &out);
  size_t hl = strcspn(in, "\n");
  assert_memory_equal(out.data, in, hl);
  assert_memory_equal(out.data + hl, ",covers_until,rescreen_needed\r\n", 31);
  assert_non_null(strstr(out.data, ",positive,2026-06-28,2026-10-28,no\r\n"));
  assert_non_null(strstr(out.data, ",negative,2026-08-06,,yes\r\n"));
  assert_int_equal(map_mem(m, cat, src, out.data, out.len, b), 0);
  same_records(src, a, b);
  hvg_buf_free(&out);
  recs_free(a);
  recs_free(b);
  hv_catalog_free(cat);
  hv_mapping_free(m);
}

/* A program whose export is ';'-separated Latin-1 with US dates and its own
 * labels (and export_fields in a pattern and labels of their own). */
static const char *const alt_mapping =
    "{\n"
    " \"program\": {\"id\": \"alt-hv\", \"identifier_base\": \"urn:alt:\"},\n"
    " \"sources\": [{\"name\": \"screenings\", \"record_type\": "
    "\"screening\",\n"
    "  \"format\": \"csv\", \"delimiter\": \";\", \"encoding\": \"latin1\",\n"
    "  \"date_format\": \"MM/DD/YYYY\",\n"
    "  \"fields\": {\n"
    "   \"record_id\": \"Nr\", \"caregiver.id\": \"Mutter\",\n"
    "   \"caregiver.given\": \"Vorname\",\n"
    "   \"caregiver.birth_date\": {\"from\": \"Geburtsdatum\",\n"
    "                            \"date_format\": \"M/D/YYYY\"},\n"
    "   \"caregiver.relationship\": {\"from\": \"Beziehung\", \"map\":\n"
    "     {\"Mutti\": \"mother\", \"Mama\": \"mother\", \"Vati\": "
    "\"father\"}},\n"
    "   \"practice.name\": \"Praxis\",\n"
    "   \"screening.instrument\": {\"from\": \"Test\",\n"
    "                            \"map\": {\"Edinburgh\": \"EPDS\"}},\n"
    "   \"screening.date\": \"Datum\", \"screening.total_score\": \"Punkte\",\n"
    "   \"screening.result\": {\"from\": \"Ergebnis\", \"map\": {\n"
    "     \"auff\xc3\xa4llig\": \"positive\",\n"
    "     \"unauff\xc3\xa4llig\": \"negative\"}},\n"
    "   \"home_visitor.id\": {\"from\": \"Besucherin\", \"default\": "
    "\"HV00\"},\n"
    "   \"family_id\": {\"value\": \"F-ALT\"}},\n"
    "  \"export_fields\": {\n"
    "   \"screening.covers_until\": {\"from\": \"g\xc3\xbcltig_bis\",\n"
    "                              \"date_format\": \"DD.MM.YYYY\"},\n"
    "   \"screening.rescreen_needed\": {\"from\": \"Wiederholung\",\n"
    "                                 \"map\": {\"ja\": \"yes\", \"nein\": "
    "\"no\"}}}\n"
    " }]\n"
    "}\n";

static const char alt_csv[] =
    "Nr;Mutter;Vorname;Geburtsdatum;Beziehung;Praxis;Test;Datum;Punkte;"
    "Ergebnis;Besucherin\r\n"
    "A1;M1;Zo\xeb;7/4/1990;Mama;\"Praxis Dr. M\xfcller; Kinder\";Edinburgh;"
    "03/05/2026;12;auff\xe4llig;HV1\r\n"
    "A2;M2;\"Ren\xe9"
    "e \"\"Nina\"\"\";12/25/1988;Vati;Eastside;PHQ-9;"
    "10/01/2026;3;unauff\xe4llig;\r\n"
    "A3;M3;Ana;1/1/2000;Mutti;\"zwei\r\nZeilen\";PHQ-2;11/20/2026;1;;HV3\r\n";

static void test_roundtrip_latin1_layout(void **state) {
  (void)state;
  hvg_buf diag;
  hvg_buf_init(&diag, 1 << 16);
  hv_mapping *m = load_text(alt_mapping, &diag);
  if (!m)
    fail_msg("%s", diag.data);
  hv_catalog *cat = catalog(m);
  const hv_source *src = source(m, "screenings");
  recs *a = recs_new(), *b = recs_new();
  assert_int_equal(map_mem(m, cat, src, alt_csv, sizeof alt_csv - 1, a), 0);
  assert_int_equal(a->n, 3);
  assert_string_equal(a->v[0][HV_F_CAREGIVER_GIVEN], "Zo\xc3\xab");
  assert_string_equal(a->v[0][HV_F_SCREEN_INSTRUMENT], "EPDS");
  assert_string_equal(a->v[0][HV_F_CAREGIVER_RELATIONSHIP], "mother");
  assert_string_equal(a->v[1][HV_F_HOME_VISITOR_ID], "HV00"); /* default */
  a->v[0][HV_F_SCREEN_COVERS_UNTIL] = "2026-06-05";
  a->v[0][HV_F_SCREEN_RESCREEN] = "yes";
  a->v[2][HV_F_SCREEN_RESCREEN] = "no";

  hvg_buf out;
  hvg_buf_init(&out, 1 << 20);
  export_all(src, HV_EXPORT_CSV, a, &out);
  /* Latin-1 bytes, ';', CRLF, US dates, the program's first label of each
   * code; the constant family_id is no column */
  assert_string_equal(
      out.data,
      "Nr;Mutter;Vorname;Geburtsdatum;Beziehung;Praxis;Test;Datum;Punkte;"
      "Ergebnis;Besucherin;g\xfcltig_bis;Wiederholung\r\n"
      "A1;M1;Zo\xeb;7/4/1990;Mutti;\"Praxis Dr. M\xfcller; Kinder\";Edinburgh;"
      "03/05/2026;12;auff\xe4llig;HV1;05.06.2026;ja\r\n"
      "A2;M2;\"Ren\xe9"
      "e \"\"Nina\"\"\";12/25/1988;Vati;Eastside;PHQ-9;"
      "10/01/2026;3;unauff\xe4llig;HV00;;\r\n"
      "A3;M3;Ana;1/1/2000;Mutti;\"zwei\r\nZeilen\";PHQ-2;11/20/2026;1;;HV3;;"
      "nein\r\n");
  assert_int_equal(map_mem(m, cat, src, out.data, out.len, b), 0);
  same_records(src, a, b);

  /* a character Latin-1 cannot hold: that record only is refused, nothing
   * written, the column named, the (personal) value not echoed */
  hv_export *x;
  hvg_err err;
  assert_int_equal(hv_export_new(&x, src, HV_EXPORT_CSV, &out, &err), 0);
  size_t before = out.len;
  char *copy = malloc(out.len + 1);
  assert_non_null(copy);
  memcpy(copy, out.data, out.len + 1);
  const char *v[HV_F__COUNT];
  memcpy(v, a->v[0], sizeof v);
  v[HV_F_CAREGIVER_GIVEN] = "\xc5\x81ukasz"; /* U+0141 */
  assert_int_equal(hv_export_row(x, v, &err), HVG_EENCODING);
  assert_string_equal(err.field, "Vorname");
  assert_null(strstr(err.msg, "ukasz"));
  assert_null(strstr(err.msg, "U+"));
  assert_non_null(strstr(err.msg, "Latin-1"));
  assert_int_equal(out.len, before);
  assert_memory_equal(out.data, copy, before + 1);
  assert_int_equal(hv_export_count(x), 0);
  v[HV_F_CAREGIVER_GIVEN] = "Zo\xc3\xab";
  v[HV_F_PRACTICE_NAME] = "Praxis \xe2\x82\xac"; /* euro sign: not personal */
  assert_int_equal(hv_export_row(x, v, &err), HVG_EENCODING);
  assert_string_equal(err.field, "Praxis");
  assert_non_null(strstr(err.msg, "U+20AC"));
  v[HV_F_PRACTICE_NAME] = "Praxis \xff"; /* not UTF-8 */
  assert_int_equal(hv_export_row(x, v, &err), HVG_EENCODING);
  assert_non_null(strstr(err.msg, "UTF-8"));
  assert_int_equal(out.len, before);
  /* a date that is not YYYY-MM-DD: refused, personal ones not echoed */
  v[HV_F_PRACTICE_NAME] = "P";
  v[HV_F_SCREEN_DATE] = "2026-13-01";
  assert_int_equal(hv_export_row(x, v, &err), HVG_EINVAL);
  assert_string_equal(err.field, "Datum");
  assert_non_null(strstr(err.msg, "2026-13-01"));
  v[HV_F_SCREEN_DATE] = "2026-03-05";
  v[HV_F_CAREGIVER_BIRTH_DATE] = "1990/07/04";
  assert_int_equal(hv_export_row(x, v, &err), HVG_EINVAL);
  assert_string_equal(err.field, "Geburtsdatum");
  assert_null(strstr(err.msg, "1990"));
  assert_int_equal(out.len, before);
  /* the writer goes on; the header was not written yet */
  v[HV_F_CAREGIVER_BIRTH_DATE] = "1990-07-04";
  assert_int_equal(hv_export_row(x, v, &err), 0);
  assert_memory_equal(out.data + before, "Nr;Mutter;", 10);
  hv_export_free(x);

  /* the same layout in Windows-1252 holds the euro sign (0x80) */
  hv_source cp = *src;
  cp.ropts.encoding = HV_ENC_CP1252;
  hvg_buf_reset(&out);
  assert_int_equal(hv_export_new(&x, &cp, HV_EXPORT_CSV, &out, &err), 0);
  v[HV_F_PRACTICE_NAME] = "Praxis \xe2\x82\xac";
  assert_int_equal(hv_export_row(x, v, &err), 0);
  assert_non_null(strstr(out.data, ";Praxis \x80;"));
  hv_export_free(x);
  recs_free(b);
  b = recs_new();
  assert_int_equal(map_mem(m, cat, &cp, out.data, out.len, b), 0);
  assert_string_equal(b->v[0][HV_F_PRACTICE_NAME], "Praxis \xe2\x82\xac");

  free(copy);
  hvg_buf_free(&out);
  hvg_buf_free(&diag);
  recs_free(a);
  recs_free(b);
  hv_catalog_free(cat);
  hv_mapping_free(m);
}

/* NDJSON: the sample's nested JSON layout (program-export-alt.json) comes
 * back as nested objects, every key on every line, and reads back equal
 * with the same paths. An XML layout nests on '/' with "#text". */
static void test_roundtrip_ndjson_nested(void **state) {
  (void)state;
  hv_mapping *m = load_file("/tests/data/mappings/program-export-alt.json");
  hv_catalog *cat = catalog(m);
  const hv_source *src = source(m, "screenings-json");
  size_t len;
  char *json = read_data("/program-export-alt/screenings.json", &len);
  recs *a = recs_new(), *b = recs_new();
  assert_int_equal(map_mem(m, cat, src, json, len, a), 6);
  assert_int_equal(a->n, 151);
  hvg_buf out;
  hvg_buf_init(&out, 16 << 20);
  export_all(src, HV_EXPORT_NDJSON, a, &out);
  size_t lines = 0;
  for (const char *p = out.data; (p = strchr(p, '\n')); p++)
    lines++;
  assert_int_equal(lines, 151);
  cJSON *first = cJSON_ParseWithLength(out.data, strcspn(out.data, "\n"));
  assert_non_null(first);
  assert_true(cJSON_IsObject(cJSON_GetObjectItem(first, "caregiver")));
  const cJSON *cg = cJSON_GetObjectItem(first, "caregiver");
  assert_string_equal(cJSON_GetObjectItem(cg, "id")->valuestring,
                      a->v[0][HV_F_CAREGIVER_ID]);
  assert_string_equal(cJSON_GetObjectItem(cg, "first_name")->valuestring,
                      a->v[0][HV_F_CAREGIVER_GIVEN]);
  const cJSON *asq = cJSON_GetObjectItem(first, "asq");
  assert_true(cJSON_IsString(cJSON_GetObjectItem(asq, "interval_months")));
  assert_string_equal(cJSON_GetObjectItem(first, "screen_date")->valuestring,
                      a->v[0][HV_F_SCREEN_DATE]);
  /* absent values are null: the line still has the key */
  assert_null(a->v[0][HV_F_SCREEN_TOTAL]);
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(first, "total_score")));
  cJSON_Delete(first);
  /* read back: the same paths, one object per line */
  hv_source nd = *src;
  nd.ropts.format = HV_IN_NDJSON;
  nd.ropts.records = NULL;
  assert_int_equal(map_mem(m, cat, &nd, out.data, out.len, b), 0);
  same_records(src, a, b);

  /* XML paths: child/@id nests, an element's own text beside attributes is
   * "#text", "@id" at the record */
  const hv_source *xs = source(m, "screenings-xml");
  hvg_buf_reset(&out);
  hv_export *x;
  hvg_err err;
  assert_int_equal(hv_export_new(&x, xs, HV_EXPORT_NDJSON, &out, &err), 0);
  assert_int_equal(hv_export_row(x, a->v[0], &err), 0);
  hv_export_free(x);
  cJSON *o = cJSON_Parse(out.data);
  assert_non_null(o);
  assert_string_equal(cJSON_GetObjectItem(o, "@id")->valuestring,
                      a->v[0][HV_F_RECORD_ID]);
  const cJSON *pr = cJSON_GetObjectItem(o, "practice");
  assert_string_equal(cJSON_GetObjectItem(pr, "#text")->valuestring,
                      a->v[0][HV_F_PRACTICE_NAME]);
  assert_string_equal(cJSON_GetObjectItem(pr, "@npi")->valuestring,
                      a->v[0][HV_F_PRACTICE_NPI]);
  assert_string_equal(pr->child->string, "#text"); /* the text comes first */
  const cJSON *in = cJSON_GetObjectItem(o, "instrument");
  assert_string_equal(cJSON_GetObjectItem(in, "#text")->valuestring, "ASQ-3");
  assert_string_equal(cJSON_GetObjectItem(in, "@subject")->valuestring,
                      "child");
  assert_true(cJSON_IsObject(cJSON_GetObjectItem(o, "asq")));
  cJSON_Delete(o);

  hvg_buf_free(&out);
  recs_free(a);
  recs_free(b);
  free(json);
  hv_catalog_free(cat);
  hv_mapping_free(m);
}

/* ---- CSV details, value maps, layouts --------------------------------- */

static const char *const small_mapping =
    "{\"program\": {\"id\": \"q\", \"identifier_base\": \"urn:q:\"},\n"
    " \"sources\": [\n"
    "  {\"name\": \"pipe\", \"record_type\": \"consent\",\n"
    "   \"delimiter\": \"|\", \"quote\": \"'\",\n"
    "   \"fields\": {\"record_id\": \"id\", \"caregiver.id\": \"cg\",\n"
    "    \"consent.organization_id\": \"org\",\n"
    "    \"consent.granted_date\": \"granted\",\n"
    "    \"consent.scope\": {\"from\": \"scope\", \"map\": {\n"
    "     \"ASQ\": \"screening\", \"REF\": \"referral\",\n"
    "     \"ALL\": \"screening,referral,well_child\",\n"
    "     \"ASQ,REF\": \"well_child\"}},\n"
    "    \"caregiver.relationship\": {\"from\": \"rel\", \"map\": {\n"
    "     \"\": \"other\", \"Mom\": \"mother\", \"Mother\": \"mother\",\n"
    "     \"other\": \"father\"}}}},\n"
    "  {\"name\": \"one\", \"record_type\": \"consent\", \"fields\": {\n"
    "    \"record_id\": \"id\", \"caregiver.id\": {\"value\": \"c\"},\n"
    "    \"consent.organization_id\": {\"value\": \"o\"},\n"
    "    \"consent.granted_date\": {\"value\": \"2026-01-01\"}}},\n"
    "  {\"name\": \"nohead\", \"record_type\": \"consent\",\n"
    "   \"header\": false,\n"
    "   \"fields\": {\"record_id\": \"#1\", \"caregiver.id\": \"#3\",\n"
    "    \"consent.organization_id\": \"#2\",\n"
    "    \"consent.granted_date\": \"#4\", \"family_id\": \"#1\"},\n"
    "   \"export_fields\": {\"consent.revoked_date\": \"#6\"}},\n"
    "  {\"name\": \"consts\", \"record_type\": \"consent\", \"fields\": {\n"
    "    \"record_id\": {\"value\": \"x\"},\n"
    "    \"caregiver.id\": {\"value\": \"c\"},\n"
    "    \"consent.organization_id\": {\"value\": \"o\"},\n"
    "    \"consent.granted_date\": {\"value\": \"2026-01-01\"}}},\n"
    "  {\"name\": \"clash\", \"record_type\": \"consent\",\n"
    "   \"format\": \"ndjson\",\n"
    "   \"fields\": {\"record_id\": \"id\", \"caregiver.id\": \"cg\",\n"
    "    \"consent.organization_id\": \"cg.org\",\n"
    "    \"consent.granted_date\": \"g\"}}\n"
    " ]}\n";

static void test_csv_quoting_and_maps(void **state) {
  (void)state;
  hvg_buf diag;
  hvg_buf_init(&diag, 1 << 16);
  hv_mapping *m = load_text(small_mapping, &diag);
  if (!m)
    fail_msg("%s", diag.data);
  hvg_buf out;
  hvg_buf_init(&out, 1 << 20);
  hv_export *x;
  hvg_err err;
  const char *v[HV_F__COUNT] = {0};

  /* '|' and "'": quoted when holding the delimiter, the quote, CR or LF */
  assert_int_equal(
      hv_export_new(&x, source(m, "pipe"), HV_EXPORT_CSV, &out, &err), 0);
  v[HV_F_RECORD_ID] = "a|b";
  v[HV_F_CAREGIVER_ID] = "it's";
  v[HV_F_CONSENT_ORG_ID] = "line\nbreak";
  v[HV_F_CONSENT_GRANTED] = "2026-01-02";
  v[HV_F_CONSENT_SCOPE] = "screening,referral,well_child"; /* whole label */
  v[HV_F_CAREGIVER_RELATIONSHIP] = "mother"; /* first label of two */
  assert_int_equal(hv_export_row(x, v, &err), 0);
  v[HV_F_RECORD_ID] = "c\rd";
  v[HV_F_CAREGIVER_ID] = "\"plain\", here";
  v[HV_F_CONSENT_ORG_ID] = "'x";
  v[HV_F_CONSENT_SCOPE] = "screening,well_child"; /* label by label */
  v[HV_F_CAREGIVER_RELATIONSHIP] = "parent";      /* no label: as it is */
  assert_int_equal(hv_export_row(x, v, &err), 0);
  assert_string_equal(out.data,
                      "id|cg|org|granted|scope|rel\r\n"
                      "'a|b'|'it''s'|'line\nbreak'|2026-01-02|ALL|Mom\r\n"
                      "'c\rd'|\"plain\", here|'''x'|2026-01-02|ASQ,well_child|"
                      "parent\r\n");
  /* "other" is the label of father: writing the code other as it is would
   * read back as father, so the record is refused (the empty label "" never
   * reads back and is no answer) */
  size_t before = out.len;
  v[HV_F_CAREGIVER_RELATIONSHIP] = "other";
  assert_int_equal(hv_export_row(x, v, &err), HVG_EFORMAT);
  assert_string_equal(err.field, "rel");
  assert_int_equal(out.len, before);
  /* labelled item by item "ASQ,REF" would read back as well_child */
  v[HV_F_CAREGIVER_RELATIONSHIP] = "father";
  v[HV_F_CONSENT_SCOPE] = "screening,referral";
  assert_int_equal(hv_export_row(x, v, &err), HVG_EFORMAT);
  assert_string_equal(err.field, "scope");
  assert_int_equal(out.len, before);
  v[HV_F_CONSENT_SCOPE] = "referral,screening";
  assert_int_equal(hv_export_row(x, v, &err), 0);
  assert_non_null(strstr(out.data + before, "|REF,ASQ|other\r\n"));
  hv_export_free(x);

  /* one column, no value: "" keeps the line from being blank */
  hvg_buf_reset(&out);
  assert_int_equal(
      hv_export_new(&x, source(m, "one"), HV_EXPORT_CSV, &out, &err), 0);
  const char *none[HV_F__COUNT] = {0};
  assert_int_equal(hv_export_row(x, none, &err), 0);
  v[HV_F_RECORD_ID] = "r2";
  assert_int_equal(hv_export_row(x, v, &err), 0);
  assert_string_equal(out.data, "id\r\n\"\"\r\nr2\r\n");
  hv_export_free(x);

  /* no header: columns where their #N says, gaps empty, a column read by
   * two fields written once */
  hvg_buf_reset(&out);
  const hv_source *nh = source(m, "nohead");
  assert_int_equal(hv_export_new(&x, nh, HV_EXPORT_CSV, &out, &err), 0);
  const char *w[HV_F__COUNT] = {0};
  w[HV_F_RECORD_ID] = w[HV_F_FAMILY_ID] = "r1";
  w[HV_F_CAREGIVER_ID] = "c1";
  w[HV_F_CONSENT_ORG_ID] = "o1";
  w[HV_F_CONSENT_GRANTED] = "2026-01-02";
  w[HV_F_CONSENT_REVOKED] = "2026-03-01";
  assert_int_equal(hv_export_row(x, w, &err), 0);
  w[HV_F_RECORD_ID] = NULL; /* the column's other field has the value */
  w[HV_F_CONSENT_REVOKED] = NULL;
  assert_int_equal(hv_export_row(x, w, &err), 0);
  assert_string_equal(out.data, "r1,o1,c1,2026-01-02,,2026-03-01\r\n"
                                "r1,o1,c1,2026-01-02,,\r\n");
  hv_export_free(x);
  hv_catalog *cat = catalog(m);
  recs *b = recs_new();
  assert_int_equal(map_mem(m, cat, nh, out.data, out.len, b), 0);
  assert_int_equal(b->n, 2);
  assert_string_equal(b->v[1][HV_F_RECORD_ID], "r1");
  assert_string_equal(b->v[0][HV_F_CAREGIVER_ID], "c1");
  assert_null(b->v[0][HV_F_CONSENT_REVOKED]); /* never read */
  recs_free(b);
  hv_catalog_free(cat);
  /* ...and as NDJSON: flat "#N" keys, no gaps */
  hvg_buf_reset(&out);
  assert_int_equal(hv_export_new(&x, nh, HV_EXPORT_NDJSON, &out, &err), 0);
  w[HV_F_RECORD_ID] = "r1";
  assert_int_equal(hv_export_row(x, w, &err), 0);
  assert_string_equal(out.data, "{\"#1\":\"r1\",\"#2\":\"o1\",\"#3\":\"c1\","
                                "\"#4\":\"2026-01-02\",\"#6\":null}\n");
  hv_export_free(x);

  /* layouts that cannot be written */
  assert_int_equal(
      hv_export_new(&x, source(m, "consts"), HV_EXPORT_CSV, &out, &err),
      HVG_EINVAL);
  assert_null(x);
  assert_int_equal(
      hv_export_new(&x, source(m, "clash"), HV_EXPORT_NDJSON, &out, &err),
      HVG_EINVAL);
  assert_string_equal(err.field, "cg");
  assert_int_equal(
      hv_export_new(&x, source(m, "clash"), HV_EXPORT_CSV, &out, &err), 0);
  hv_export_free(x);
  assert_int_equal(
      hv_export_new(&x, source(m, "one"), (hv_export_format)7, &out, &err),
      HVG_EINVAL);
  assert_int_equal(hv_export_new(&x, NULL, HV_EXPORT_CSV, &out, &err),
                   HVG_EINVAL);
  hv_export_free(NULL);

  hvg_buf_free(&out);
  hvg_buf_free(&diag);
  hv_mapping_free(m);
}

/* The sample's own map: a practice's "declined" has no label in a layout
 * where "declined" means family_declined; written as it is it would say the
 * family declined. Its message names the column. NDJSON for a UTF-8 source
 * keeps UTF-8, escapes only what JSON needs. */
static void test_reverse_map_ambiguity_and_json_text(void **state) {
  (void)state;
  hv_mapping *m = load_file("/conf/mappings/program-export.json");
  const hv_source *src = source(m, "referrals");
  hvg_buf out;
  hvg_buf_init(&out, 1 << 20);
  hv_export *x;
  hvg_err err;
  const char *v[HV_F__COUNT] = {0};
  v[HV_F_RECORD_ID] = "R1";
  v[HV_F_REF_STATUS] = "declined";
  assert_int_equal(hv_export_new(&x, src, HV_EXPORT_NDJSON, &out, &err), 0);
  assert_int_equal(hv_export_row(x, v, &err), HVG_EFORMAT);
  assert_string_equal(err.field, "status");
  assert_int_equal(out.len, 0);
  v[HV_F_REF_STATUS] = "family_declined";
  v[HV_F_CHILD_GIVEN] = "Sof\xc3\xad"
                        "a \"S\"\t\\";
  v[HV_F_REF_NOTES] = "a\nb\x01";
  assert_int_equal(hv_export_row(x, v, &err), 0);
  assert_non_null(strstr(out.data, "\"status\":\"declined\""));
  assert_non_null(strstr(out.data, "\"child_first_name\":\"Sof\xc3\xad"
                                   "a \\\"S\\\"\\t\\\\\""));
  assert_non_null(strstr(out.data, "\"notes\":\"a\\nb\\u0001\""));
  assert_non_null(strstr(out.data, "\"closed_date\":null}\n"));
  assert_null(strchr(out.data, '\r'));
  hv_export_free(x);

  /* a Latin-1 source: non-ASCII as \u escapes, so the bytes are ASCII */
  hv_source l1 = *src;
  l1.ropts.encoding = HV_ENC_LATIN1;
  hvg_buf_reset(&out);
  assert_int_equal(hv_export_new(&x, &l1, HV_EXPORT_NDJSON, &out, &err), 0);
  assert_int_equal(hv_export_row(x, v, &err), 0);
  assert_non_null(strstr(out.data, "\"Sof\\u00eda \\\"S\\\"\\t\\\\\""));
  for (const char *p = out.data; *p; p++)
    assert_true((unsigned char)*p < 0x80);
  v[HV_F_CHILD_GIVEN] = "\xe2\x82\xac";
  assert_int_equal(hv_export_row(x, v, &err), HVG_EENCODING);
  assert_string_equal(err.field, "child_first_name");
  hv_export_free(x);
  hvg_buf_free(&out);
  hv_mapping_free(m);
}

/* The sink's cap: a row that does not fit leaves the sink as it was; after
 * the caller drains it the same row goes through, the header only once. */
static void test_sink_cap(void **state) {
  (void)state;
  hv_mapping *m = load_file("/conf/mappings/program-export.json");
  const hv_source *src = source(m, "well_child_results");
  hvg_buf out;
  hvg_buf_init(&out, 420);
  hv_export *x;
  hvg_err err;
  assert_int_equal(hv_export_new(&x, src, HV_EXPORT_CSV, &out, &err), 0);
  const char *v[HV_F__COUNT] = {0};
  v[HV_F_RECORD_ID] = "W1";
  v[HV_F_CHILD_ID] = "CH1";
  v[HV_F_WC_VISIT_DATE] = "2026-06-28";
  assert_int_equal(hv_export_row(x, v, &err), 0);
  size_t one = out.len;
  char big[300];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  v[HV_F_PRACTICE_NAME] = big;
  assert_int_equal(hv_export_row(x, v, &err), HVG_ETOOBIG);
  assert_int_equal(out.len, one);
  hvg_buf_reset(&out); /* the caller drains */
  assert_int_equal(hv_export_row(x, v, &err), 0);
  assert_memory_equal(out.data, "W1,CH1,,,", 9); /* no second header */
  assert_int_equal(hv_export_count(x), 2);
  hv_export_free(x);
  hvg_buf_free(&out);
  hv_mapping_free(m);
}

/* ---- loader: export_fields and HV_OUT --------------------------------- */

static void test_loader_export_fields(void **state) {
  (void)state;
  hvg_buf diag;
  hvg_buf_init(&diag, 1 << 16);
  const char *bad =
      "{\n"
      " \"program\": {\"id\": \"x\", \"identifier_base\": \"urn:x:\"},\n"
      " \"sources\": [{\"name\": \"r\", \"record_type\": \"referral\",\n"
      "  \"fields\": {\"record_id\": \"id\", \"referral.date\": \"d\",\n"
      "   \"referral.service_type\": \"s\", \"referral.to_org_id\": \"o\",\n"
      "   \"referral.linked_date\": \"linked\"},\n"
      "  \"export_fields\": {\n"
      "   \"referral.sent_date\": {\"from\": \"sent\", \"default\": \"x\"},\n"
      "   \"referral.closed_date\": \"o\",\n"
      "   \"referral.outcome\": {\"map\": {}},\n"
      "   \"referral.direction\": {\"from\": \"dir\", \"map\": {\"in\": "
      "\"incoming\"}},\n"
      "   \"screening.covers_until\": \"cu\"}\n"
      " }, {\"name\": \"h\", \"record_type\": \"consent\", \"header\": false,\n"
      "  \"fields\": {\"record_id\": \"#1\", \"caregiver.id\": \"#2\",\n"
      "   \"consent.organization_id\": \"#3\", \"consent.granted_date\": "
      "\"#4\"},\n"
      "  \"export_fields\": {\"consent.revoked_date\": \"revoked\"}}]\n"
      "}\n";
  assert_null(load_text(bad, &diag));
  const char *want[] = {
      ":6: /sources/0/fields/referral.linked_date: 'referral.linked_date' is "
      "export only: map it under 'export_fields', not 'fields'\n",
      ":8: /sources/0/export_fields/referral.sent_date/default: 'default' is "
      "not allowed in export_fields",
      ":9: /sources/0/export_fields/referral.closed_date: column 'o' is "
      "already in the layout (for 'referral.to_org_id')",
      ":10: /sources/0/export_fields/referral.outcome: needs 'from', the "
      "column to write\n",
      ":11: /sources/0/export_fields/referral.direction/map/in: 'incoming' is "
      "not a code of referral.direction (outbound, inbound)\n",
      ":12: /sources/0/export_fields/screening.covers_until: "
      "'screening.covers_until' does not apply to referral records\n",
      ":16: /sources/1/export_fields/consent.revoked_date: without a header, "
      "columns are named #1, #2, ...",
  };
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    if (!strstr(diag.data, want[i]))
      fail_msg("missing '%s' in:\n%s", want[i], diag.data);
  size_t lines = 0;
  for (const char *p = diag.data; (p = strchr(p, '\n')); p++)
    lines++;
  assert_int_equal(lines, sizeof want / sizeof *want);

  /* export_fields are never read: a file without their columns maps, and
   * a field may be both read and written in a column of its own */
  hvg_buf_reset(&diag);
  const char *ok =
      "{\"program\": {\"id\": \"x\", \"identifier_base\": \"urn:x:\"},\n"
      " \"sources\": [{\"name\": \"r\", \"record_type\": \"referral\",\n"
      "  \"fields\": {\"record_id\": \"id\", \"referral.date\": \"d\",\n"
      "   \"referral.service_type\": \"s\", \"referral.to_org_id\": \"o\",\n"
      "   \"child.id\": \"c\"},\n"
      "  \"export_fields\": {\"referral.linked_date\": \"linked\",\n"
      "   \"referral.date\": {\"from\": \"d_us\", \"date_format\": "
      "\"MM/DD/YYYY\"}}}]}\n";
  hv_mapping *m = load_text(ok, &diag);
  if (!m)
    fail_msg("%s", diag.data);
  const hv_source *src = &m->sources[0];
  assert_int_equal(src->n_fields, 5);
  assert_int_equal(src->n_export_fields, 2);
  assert_null(src->by_field[HV_F_REF_LINKED_DATE]);
  hv_catalog *cat = catalog(m);
  const char *in = "id,d,s,o,c\nR1,2026-07-04,early_intervention,EI-014,C1\n";
  recs *a = recs_new();
  assert_int_equal(map_mem(m, cat, src, in, strlen(in), a), 0);
  assert_int_equal(a->n, 1);
  a->v[0][HV_F_REF_LINKED_DATE] = "2026-07-11";
  hvg_buf out;
  hvg_buf_init(&out, 1 << 16);
  export_all(src, HV_EXPORT_CSV, a, &out);
  assert_string_equal(out.data, "id,d,s,o,c,linked,d_us\r\n"
                                "R1,2026-07-04,early_intervention,EI-014,C1,"
                                "2026-07-11,07/04/2026\r\n");
  hvg_buf_free(&out);
  recs_free(a);
  hv_catalog_free(cat);
  hv_mapping_free(m);
  hvg_buf_free(&diag);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_date_format),
      cmocka_unit_test(test_roundtrip_sample_referrals),
      cmocka_unit_test(test_referral_export_fields),
      cmocka_unit_test(test_roundtrip_well_child),
      cmocka_unit_test(test_roundtrip_latin1_layout),
      cmocka_unit_test(test_roundtrip_ndjson_nested),
      cmocka_unit_test(test_csv_quoting_and_maps),
      cmocka_unit_test(test_reverse_map_ambiguity_and_json_text),
      cmocka_unit_test(test_sink_cap),
      cmocka_unit_test(test_loader_export_fields),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
