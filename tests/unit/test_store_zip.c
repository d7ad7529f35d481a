/* Compressed Bundles: the zstd module (store_zip.h) on its own, and the store
 * that trains a dictionary from the first large batch, compresses what it
 * stores (or takes it compressed by store_pack), and gives back exactly the
 * Bundles it was given; old text rows, a rolled-back dictionary, a missing
 * dictionary, the upgrade from schema version 3, and a run that fails each
 * allocation in turn (linked with --wrap=malloc; zstd allocates through
 * store_zip's malloc, SQLite and ZDICT's training do not). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the headers above first */
#include <cmocka.h>

#include "store.h"
#include "store_zip.h"

#include <sqlite3.h>

#include "alloc_fail.h"
#include "store_fixture.h"

#include <string.h>

static hvg_err E;
#define OK(x)                                                                  \
  do {                                                                         \
    int rc_ = (x);                                                             \
    if (rc_)                                                                   \
      fail_msg("%s: %s %s: %s", #x, hvg_err_name(rc_), E.field, E.msg);        \
  } while (0)

/* ---- Bundles like the mapper's ----------------------------------------- */

#define N_BUNDLES 300
#define BUNDLE_CAP 4096
static char bundles[N_BUNDLES][BUNDLE_CAP];
static size_t bundle_lens[N_BUNDLES];

/* Bundle i: the shape of a screening Bundle, with its own ids, dates and
 * score, so that a dictionary has structure to learn and content it cannot
 * know in advance. */
static void make_bundles(unsigned seed) {
  static const char *const inst[] = {"PHQ-9", "EPDS", "ASQ-3", "HITS"};
  static const char *const loinc[] = {"44249-1", "71354-5", "64283-5",
                                      "95614-4"};
  for (int i = 0; i < N_BUNDLES; i++) {
    unsigned v = (unsigned)i * 2654435761u + seed;
    int n = snprintf(
        bundles[i], BUNDLE_CAP,
        "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
        "{\"fullUrl\":\"urn:uuid:%08x-4954-56c4-a40a-%012x\",\"resource\":{"
        "\"resourceType\":\"Patient\",\"identifier\":[{\"system\":"
        "\"https://sunrise-hv.example.org/fhir/id/child\",\"value\":"
        "\"CH%07d\"}],\"gender\":\"%s\",\"birthDate\":\"20%02u-%02u-%02u\"},"
        "\"request\":{\"method\":\"POST\",\"url\":\"Patient\",\"ifNoneExist\":"
        "\"identifier=https://sunrise-hv.example.org/fhir/id/child|CH%07d\"}},"
        "{\"fullUrl\":\"urn:uuid:%08x-ee79-5669-85ae-%012x\",\"resource\":{"
        "\"resourceType\":\"Observation\",\"status\":\"final\",\"category\":"
        "[{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/"
        "observation-category\",\"code\":\"survey\"}]}],\"code\":{\"coding\":"
        "[{\"system\":\"http://loinc.org\",\"code\":\"%s\",\"display\":"
        "\"%s total score\"}]},\"subject\":{\"reference\":\"urn:uuid:%08x-"
        "4954-56c4-a40a-%012x\"},\"effectiveDateTime\":\"2024-%02u-%02u\","
        "\"valueInteger\":%u,\"performer\":[{\"identifier\":{\"system\":"
        "\"https://sunrise-hv.example.org/fhir/id/home-visitor\",\"value\":"
        "\"HV%04u\"}}]},\"request\":{\"method\":\"PUT\",\"url\":\"Observation?"
        "identifier=https://sunrise-hv.example.org/fhir/id/screening|SC%07d\"}}"
        "]}",
        v, v * 7u, i, v % 2 ? "female" : "male", 15 + v % 9, 1 + v % 12,
        1 + v % 28, i, v * 3u, v * 11u, loinc[v % 4], inst[v % 4], v, v * 7u,
        1 + v % 12, 1 + (v >> 3) % 28, v % 27, v % 500, i);
    assert_true(n > 0 && n < BUNDLE_CAP);
    bundle_lens[i] = (size_t)n;
  }
}

static void samples_of(size_t n, const char **s, size_t *l) {
  for (size_t i = 0; i < n; i++) {
    s[i] = bundles[i];
    l[i] = bundle_lens[i];
  }
}

static void *train_ok(size_t n, size_t *len, uint32_t *id) {
  const char *s[N_BUNDLES];
  size_t l[N_BUNDLES];
  samples_of(n, s, l);
  void *d = NULL;
  OK(store_zip_train(s, l, n, &d, len, id, &E));
  assert_non_null(d);
  assert_true(*id >= 32768); /* zstd's ids below are reserved */
  return d;
}

/* ---- the module ---------------------------------------------------------- */

static void test_zip_roundtrip(void **state) {
  (void)state;
  make_bundles(1);
  size_t dl = 0;
  uint32_t id = 0;
  void *dict = train_ok(200, &dl, &id);
  assert_true(dl > 1024 && dl <= STORE_ZIP_DICT_BYTES);
  store_zip *z = store_zip_new();
  assert_non_null(z);
  const void *out = NULL;
  size_t olen = 0;
  assert_int_equal(
      store_zip_compress(z, bundles[0], bundle_lens[0], &out, &olen, &E),
      HVG_ESTATE);
  assert_int_equal(store_zip_dict_id(z), 0);
  OK(store_zip_load(z, dict, dl, 1, &E));
  assert_int_equal(store_zip_dict_id(z), id);
  assert_true(store_zip_has(z, id));
  /* Bundles it was not trained on come back byte for byte, much smaller */
  size_t in = 0, zipped = 0;
  for (int i = 200; i < N_BUNDLES; i++) {
    OK(store_zip_compress(z, bundles[i], bundle_lens[i], &out, &olen, &E));
    in += bundle_lens[i];
    zipped += olen;
    uint32_t fid = 0;
    size_t size = 0;
    OK(store_zip_frame_info(out, olen, 1 << 20, &fid, &size, &E));
    assert_int_equal(fid, id);
    assert_int_equal(size, bundle_lens[i]);
    char back[BUNDLE_CAP];
    size_t n = 0;
    OK(store_zip_decompress(z, out, olen, back, size, &n, &E));
    assert_int_equal(n, bundle_lens[i]);
    assert_memory_equal(back, bundles[i], n);
  }
  assert_true(in > 4 * zipped);

  /* a corrupted byte is caught by the frame's checksum, not passed on */
  OK(store_zip_compress(z, bundles[250], bundle_lens[250], &out, &olen, &E));
  char bad[BUNDLE_CAP], back[BUNDLE_CAP];
  memcpy(bad, out, olen);
  bad[olen - 6] ^= 0x20;
  size_t n = 0;
  assert_int_equal(
      store_zip_decompress(z, bad, olen, back, sizeof back, &n, &E),
      HVG_EFORMAT);
  /* a cut frame, and text that is not a frame */
  uint32_t fid = 0;
  size_t size = 0;
  assert_int_equal(
      store_zip_frame_info(out, olen - 1, 1 << 20, &fid, &size, &E),
      HVG_EFORMAT);
  assert_int_equal(
      store_zip_frame_info("{\"a\":1}", 7, 1 << 20, &fid, &size, &E),
      HVG_EFORMAT);
  assert_int_equal(store_zip_frame_info(out, olen, 100, &fid, &size, &E),
                   HVG_ETOOBIG);

  /* another handle without the dictionary refuses, then decompresses */
  store_zip *y = store_zip_new();
  assert_non_null(y);
  assert_int_equal(
      store_zip_decompress(y, out, olen, back, sizeof back, &n, &E),
      HVG_ENOTFOUND);
  OK(store_zip_load(y, dict, dl, 0, &E));
  assert_int_equal(store_zip_dict_id(y), 0); /* loaded, not compressing */
  OK(store_zip_decompress(y, out, olen, back, sizeof back, &n, &E));
  assert_memory_equal(back, bundles[250], n);
  assert_int_equal(store_zip_load(y, "not a dictionary", 16, 1, &E),
                   HVG_EFORMAT);
  assert_int_equal(store_zip_dict_id(y), 0);
  store_zip_free(y);
  store_zip_free(z);
  free(dict);
}

static void test_zip_train_limits(void **state) {
  (void)state;
  make_bundles(2);
  const char *s[N_BUNDLES];
  size_t l[N_BUNDLES];
  samples_of(N_BUNDLES, s, l);
  void *d = (void *)1;
  size_t dl = 0;
  uint32_t id = 0;
  assert_int_equal(
      store_zip_train(s, l, STORE_ZIP_MIN_SAMPLES - 1, &d, &dl, &id, &E),
      HVG_EINVAL);
  assert_null(d);
  /* empty samples are skipped, and then too few are left */
  for (size_t i = 0; i < N_BUNDLES / 2 + 10; i++)
    l[i] = 0;
  assert_int_equal(store_zip_train(s, l, N_BUNDLES, &d, &dl, &id, &E),
                   HVG_EINVAL);
  assert_null(d);
  /* the same samples train the same dictionary (its id is its content's) */
  size_t l1 = 0, l2 = 0;
  uint32_t i1 = 0, i2 = 0;
  void *d1 = train_ok(STORE_ZIP_MIN_SAMPLES, &l1, &i1);
  void *d2 = train_ok(STORE_ZIP_MIN_SAMPLES, &l2, &i2);
  assert_int_equal(i1, i2);
  assert_int_equal(l1, l2);
  assert_memory_equal(d1, d2, l1);
  free(d1);
  free(d2);
}

static void test_zip_worthwhile(void **state) {
  (void)state;
  make_bundles(12);
  size_t dl = 0;
  uint32_t id = 0;
  void *dict = train_ok(200, &dl, &id);
  store_zip *z = store_zip_new(), *y = store_zip_new();
  assert_non_null(z);
  assert_non_null(y);
  OK(store_zip_load(z, dict, dl, 1, &E));
  OK(store_zip_load(y, dict, dl, 1, &E));
  /* Bundles like the mapper's stay worth it... */
  const void *out = NULL;
  size_t olen = 0, fed = 0;
  for (int k = 0; fed <= STORE_ZIP_JUDGE_BYTES; k++) {
    int i = k % N_BUNDLES;
    OK(store_zip_compress(z, bundles[i], bundle_lens[i], &out, &olen, &E));
    fed += bundle_lens[i];
  }
  assert_int_equal(store_zip_worthwhile(z), 1);
  /* ...text that does not repeat is not, once enough was seen */
  static char noise[3500];
  unsigned long x = 88172645463325252ul;
  for (fed = 0; fed <= STORE_ZIP_JUDGE_BYTES; fed += sizeof noise) {
    assert_int_equal(store_zip_worthwhile(y), 1);
    for (size_t i = 0; i < sizeof noise; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      noise[i] = "abcdefghijklmnopqrstuvwxyz0123456789 "[x % 37];
    }
    OK(store_zip_compress(y, noise, sizeof noise, &out, &olen, &E));
  }
  assert_int_equal(store_zip_worthwhile(y), 0);
  store_zip_free(y);
  store_zip_free(z);
  free(dict);
}

static void test_zip_many_dicts(void **state) {
  (void)state;
  /* more dictionaries than a handle keeps: the oldest is dropped */
  store_zip *z = store_zip_new();
  assert_non_null(z);
  uint32_t ids[STORE_ZIP_DICTS_MAX + 1];
  for (int k = 0; k <= STORE_ZIP_DICTS_MAX; k++) {
    make_bundles(100u + (unsigned)k * 7919u);
    size_t dl = 0;
    void *d = train_ok(STORE_ZIP_MIN_SAMPLES, &dl, &ids[k]);
    OK(store_zip_load(z, d, dl, k == 0, &E));
    OK(store_zip_load(z, d, dl, k == 0, &E)); /* twice: loaded once */
    free(d);
  }
  assert_false(store_zip_has(z, ids[0]));
  for (int k = 1; k <= STORE_ZIP_DICTS_MAX; k++)
    assert_true(store_zip_has(z, ids[k]));
  /* the compressing one was the first: it still compresses */
  assert_int_equal(store_zip_dict_id(z), ids[0]);
  const void *out = NULL;
  size_t olen = 0;
  OK(store_zip_compress(z, bundles[0], bundle_lens[0], &out, &olen, &E));
  store_zip_free(z);
}

/* ---- the store ----------------------------------------------------------- */

/* Records 0..n-1 of the current bundles (record ids offset by base), for
 * partner p1, with their hash; packed[i] when given. */
/* Records r<base>..r<base+n-1> of bundles 0..n-1 for partner p1, each its
 * own lane, with their hashes; ids[i] holds record i's id. */
static void fill_records(store_record *r, char (*ids)[16], int base, size_t n) {
  static const store_target t = {"p1", NULL};
  memset(r, 0, n * sizeof *r);
  for (size_t i = 0; i < n; i++) {
    snprintf(ids[i], sizeof ids[i], "r%d", base + (int)i);
    r[i].program = "prog";
    r[i].record_type = "screening";
    r[i].record_id = r[i].patient_key = ids[i];
    r[i].bundle = bundles[i];
    r[i].bundle_len = bundle_lens[i];
    r[i].targets = &t;
    r[i].n_targets = 1;
    OK(store_hash(bundles[i], bundle_lens[i], r[i].hash, &E));
  }
}

/* Put fill_records' batch, packed[i] when given. */
static void put_batch(store *st, int base, size_t n, const void *const *packed,
                      const size_t *packed_len) {
  store_record *r = calloc(n, sizeof *r);
  char(*ids)[16] = calloc(n, sizeof *ids);
  assert_non_null(r);
  assert_non_null(ids);
  fill_records(r, ids, base, n);
  for (size_t i = 0; packed && i < n; i++) {
    r[i].packed = packed[i];
    r[i].packed_len = packed_len[i];
  }
  OK(store_put_records(st, r, n, T0, NULL, &E));
  free(r);
  free(ids);
}

/* Claim up to max pending items of p1 and check each Bundle is the one
 * stored for its record id (record r<k> has bundle k % 1000, put_batch's
 * bases being multiples of 1000); returns how many. */
static size_t claim_check(store *st, size_t max) {
  store_item *it = calloc(max, sizeof *it);
  assert_non_null(it);
  size_t n = 0;
  OK(store_claim(st, "p1", max, T0 + 1, 60000, it, &n, &E));
  for (size_t k = 0; k < n; k++) {
    int i = atoi(it[k].record_id + 1) % 1000;
    assert_true(i >= 0 && i < N_BUNDLES);
    assert_int_equal(it[k].bundle_len, bundle_lens[i]);
    assert_memory_equal(it[k].bundle, bundles[i], bundle_lens[i]);
    assert_int_equal(it[k].bundle[it[k].bundle_len], '\0');
  }
  store_items_release(it, n);
  free(it);
  return n;
}

static void test_store_compresses(void **state) {
  fx *f = *state;
  make_bundles(3);
  store *st = open_ok(f->path);
  /* a small first batch: nothing to train on, stored as text */
  put_batch(st, 1000, 10, NULL, NULL);
  assert_int_equal(claim_check(st, 20), 10);
  sqlite3 *db = raw_open(f->path);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM zstd_dicts"), 0);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM record_versions"
                                 " WHERE typeof(bundle) = 'text'"),
                   10);
  /* a large one trains the dictionary and is stored compressed */
  put_batch(st, 0, 200, NULL, NULL);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM zstd_dicts"), 1);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM record_versions"
                                 " WHERE typeof(bundle) = 'blob'"),
                   200);
  int64_t zipped = raw_count(db, "SELECT sum(length(bundle)) FROM"
                                 " record_versions WHERE typeof(bundle)"
                                 " = 'blob'");
  size_t plain = 0;
  for (int i = 0; i < 200; i++)
    plain += bundle_lens[i];
  assert_true((int64_t)plain > 4 * zipped);
  /* and every Bundle comes back as given, text and compressed alike */
  assert_int_equal(claim_check(st, 300), 200);
  check_ok(st);
  store_close(st);

  /* another handle reads them too (it loads the dictionary from the
   * store), and compresses a small batch with the stored dictionary */
  st = open_ok(f->path);
  make_bundles(4);
  put_batch(st, 5000, 5, NULL, NULL);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM record_versions"
                                 " WHERE typeof(bundle) = 'blob'"),
                   205);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM zstd_dicts"), 1);
  assert_int_equal(claim_check(st, 10), 5);
  store_close(st);
  sqlite3_close(db);
}

static void test_store_trains_on_stored(void **state) {
  fx *f = *state;
  make_bundles(13);
  store *st = open_ok(f->path);
  sqlite3 *db = raw_open(f->path);
  /* records that come a few at a time (one request each, say) */
  int batches = 0;
  while (raw_count(db, "SELECT count(*) FROM zstd_dicts") == 0) {
    assert_true(batches < 10);
    store_record r[20];
    char ids[20][16];
    fill_records(r, ids, 0, 20);
    for (int i = 0; i < 20; i++) { /* their own ids, bundles reused */
      snprintf(ids[i], sizeof ids[i], "s%d", batches * 20 + i);
      r[i].record_id = r[i].patient_key = ids[i];
    }
    OK(store_put_records(st, r, 20, T0, NULL, &E));
    batches++;
  }
  /* the batch that found 128 stored as text trained on them */
  assert_int_equal(batches, (STORE_ZIP_MIN_SAMPLES + 19) / 20 + 1);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM record_versions"
                                 " WHERE typeof(bundle) = 'blob'"),
                   20);
  sqlite3_close(db);
  store_item it[200];
  size_t n = 0;
  OK(store_claim(st, "p1", 200, T0 + 1, 60000, it, &n, &E));
  assert_int_equal(n, (size_t)batches * 20);
  for (size_t k = 0; k < n; k++) {
    int i = atoi(it[k].record_id + 1) % 20;
    assert_int_equal(it[k].bundle_len, bundle_lens[i]);
    assert_memory_equal(it[k].bundle, bundles[i], bundle_lens[i]);
  }
  store_items_release(it, n);
  store_close(st);
}

static void test_store_packed(void **state) {
  fx *f = *state;
  make_bundles(5);
  store *wr = open_ok(f->path), *pk = open_ok(f->path);
  const void *z = NULL;
  size_t zl = 0;
  /* no dictionary yet: nothing to pack with */
  OK(store_pack_refresh(pk, &E));
  assert_int_equal(store_pack(pk, bundles[0], bundle_lens[0], &z, &zl, &E), 0);
  put_batch(wr, 0, 150, NULL, NULL); /* trains */
  assert_int_equal(claim_check(wr, 200), 150);
  OK(store_pack_refresh(pk, &E));
  static char copies[N_BUNDLES][BUNDLE_CAP];
  const void *packed[N_BUNDLES];
  size_t plen[N_BUNDLES];
  make_bundles(6);
  for (int i = 0; i < 50; i++) {
    assert_int_equal(store_pack(pk, bundles[i], bundle_lens[i], &z, &zl, &E),
                     1);
    assert_true(zl < bundle_lens[i]);
    memcpy(copies[i], z, zl);
    packed[i] = copies[i];
    plen[i] = zl;
  }
  put_batch(wr, 1000, 50, packed, plen);
  sqlite3 *db = raw_open(f->path);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM record_versions v"
                                 " JOIN records r ON r.id = v.record"
                                 " WHERE r.record_id = 'r1007'"
                                 " AND typeof(v.bundle) = 'blob'"),
                   1);
  assert_int_equal(claim_check(wr, 100), 50);

  /* a packed frame that is not the record's Bundle is refused whole */
  store_record r = {0};
  r.program = "prog";
  r.record_type = "screening";
  r.record_id = "mismatch";
  r.patient_key = "mismatch";
  r.bundle = bundles[1];
  r.bundle_len = bundle_lens[1];
  r.packed = packed[2];
  r.packed_len = plen[2];
  OK(store_hash(r.bundle, r.bundle_len, r.hash, &E));
  if (bundle_lens[1] != bundle_lens[2])
    assert_int_equal(store_put_records(wr, &r, 1, T0, NULL, &E), HVG_EINVAL);
  r.packed = "not a frame";
  r.packed_len = 11;
  assert_int_equal(store_put_records(wr, &r, 1, T0, NULL, &E), HVG_EFORMAT);
  r.packed_len = 0;
  assert_int_equal(store_put_records(wr, &r, 1, T0, NULL, &E), HVG_EINVAL);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM records"
                                 " WHERE record_id = 'mismatch'"),
                   0);
  sqlite3_close(db);
  store_close(pk);
  store_close(wr);
}

static void test_store_dict_rolled_back(void **state) {
  fx *f = *state;
  make_bundles(7);
  store *st = open_ok(f->path);
  /* the batch that trained the dictionary is rolled back with it */
  OK(store_tx_begin(st, &E));
  put_batch(st, 0, 150, NULL, NULL);
  OK(store_tx_end(st, 0, &E));
  sqlite3 *db = raw_open(f->path);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM zstd_dicts"), 0);
  /* so later Bundles must not name it: a small batch is stored as text */
  put_batch(st, 2000, 5, NULL, NULL);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM record_versions"
                                 " WHERE typeof(bundle) = 'blob'"),
                   0);
  assert_int_equal(claim_check(st, 10), 5);
  /* and a large one trains it again, for good */
  put_batch(st, 1000, 150, NULL, NULL);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM zstd_dicts"), 1);
  assert_int_equal(claim_check(st, 200), 150);
  check_ok(st);
  store_close(st);
  sqlite3_close(db);
}

static void test_store_dict_missing(void **state) {
  fx *f = *state;
  make_bundles(8);
  store *st = open_ok(f->path);
  put_batch(st, 0, 150, NULL, NULL);
  store_close(st);
  sqlite3 *db = raw_open(f->path);
  raw_exec(db, "DELETE FROM zstd_dicts");
  sqlite3_close(db);
  st = open_ok(f->path);
  store_item it[4];
  size_t n = 9;
  hvg_err_clear(&E);
  assert_int_equal(store_claim(st, "p1", 4, T0 + 1, 60000, it, &n, &E),
                   HVG_EIO);
  assert_int_equal(n, 0);
  assert_non_null(strstr(E.msg, "dictionary"));
  store_close(st);
}

static void test_store_upgrade_from_v3(void **state) {
  fx *f = *state;
  make_bundles(9);
  /* a version 3 store holds its Bundles as text and has no dictionaries */
  store *st = open_ok(f->path);
  put_batch(st, 0, 20, NULL, NULL);
  store_close(st);
  sqlite3 *db = raw_open(f->path);
  raw_exec(db, "DROP TABLE zstd_dicts;"
               "DELETE FROM schema_version WHERE version = 4");
  sqlite3_close(db);

  st = open_ok(f->path);
  int v = 0;
  OK(store_schema_version(st, &v, &E));
  assert_int_equal(v, 4);
  put_batch(st, 1000, 200, NULL, NULL);
  db = raw_open(f->path);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM record_versions"
                                 " WHERE typeof(bundle) = 'text'"),
                   20);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM record_versions"
                                 " WHERE typeof(bundle) = 'blob'"),
                   200);
  sqlite3_close(db);
  /* the text rows of version 3 read back beside the new frames */
  assert_int_equal(claim_check(st, 300), 220);
  check_ok(st);
  store_close(st);
}

/* ---- allocation failures --------------------------------------------------
 */

static int zip_torture_run(long fail, const void *dict, size_t dl) {
  alloc_count = 0;
  fail_at = fail;
  int rc = 0;
  store_zip *z = store_zip_new();
  if (!z)
    rc = HVG_ENOMEM;
  if (!rc)
    rc = store_zip_load(z, dict, dl, 1, &E);
  const void *out = NULL;
  size_t olen = 0, n = 0;
  char back[BUNDLE_CAP];
  for (int i = 0; !rc && i < 3; i++)
    rc = store_zip_compress(z, bundles[i], bundle_lens[i], &out, &olen, &E);
  if (!rc)
    rc = store_zip_decompress(z, out, olen, back, sizeof back, &n, &E);
  fail_at = -1;
  if (!rc && (n != bundle_lens[2] || memcmp(back, bundles[2], n)))
    fail_msg("allocation %ld: wrong round trip", fail);
  store_zip_free(z);
  return rc;
}

static void test_zip_torture(void **state) {
  (void)state;
  make_bundles(10);
  size_t dl = 0;
  uint32_t id = 0;
  void *dict = train_ok(STORE_ZIP_MIN_SAMPLES, &dl, &id);
  assert_int_equal(zip_torture_run(1L << 40, dict, dl), 0);
  long total = alloc_count;
  assert_true(total >= 5); /* handle, two contexts, two dictionaries, ... */
  for (long i = 0; i < total; i++) {
    int rc = zip_torture_run(i, dict, dl);
    if (rc != HVG_ENOMEM)
      fail_msg("allocation %ld of %ld: %s", i, total, hvg_err_name(rc));
  }
  free(dict);
}

/* Put a training batch and claim it back with allocation `fail` failing:
 * either call fails with HVG_ENOMEM and changes nothing, or all is well. */
static int store_torture_run(const char *path, long fail) {
  store *st = open_ok(path);
  store_record r[STORE_ZIP_MIN_SAMPLES];
  char ids[STORE_ZIP_MIN_SAMPLES][16];
  fill_records(r, ids, 0, STORE_ZIP_MIN_SAMPLES);
  store_item it[STORE_ZIP_MIN_SAMPLES];
  size_t n = 0;
  alloc_count = 0;
  fail_at = fail;
  int rc = store_put_records(st, r, STORE_ZIP_MIN_SAMPLES, T0, NULL, &E);
  int put_rc = rc;
  if (!rc)
    rc =
        store_claim(st, "p1", STORE_ZIP_MIN_SAMPLES, T0 + 1, 60000, it, &n, &E);
  fail_at = -1;
  sqlite3 *db = raw_open(path);
  int64_t versions = raw_count(db, "SELECT count(*) FROM record_versions");
  int64_t dicts = raw_count(db, "SELECT count(*) FROM zstd_dicts");
  int64_t inflight = raw_count(db, "SELECT count(*) FROM outbox"
                                   " WHERE state = 1");
  sqlite3_close(db);
  if (put_rc && (versions || dicts))
    fail_msg("allocation %ld: a failed put stored %lld versions, %lld "
             "dictionaries",
             fail, (long long)versions, (long long)dicts);
  if (!put_rc && versions != STORE_ZIP_MIN_SAMPLES)
    fail_msg("allocation %ld: %lld versions", fail, (long long)versions);
  if (rc && !put_rc && inflight)
    fail_msg("allocation %ld: a failed claim leased %lld items", fail,
             (long long)inflight);
  if (!rc) {
    for (size_t k = 0; k < n; k++) {
      int i = atoi(it[k].record_id + 1);
      if (it[k].bundle_len != bundle_lens[i] ||
          memcmp(it[k].bundle, bundles[i], bundle_lens[i]))
        fail_msg("allocation %ld: Bundle %d differs", fail, i);
    }
    store_items_release(it, n);
    if (n != STORE_ZIP_MIN_SAMPLES)
      fail_msg("allocation %ld: %zu claimed", fail, n);
  }
  store_close(st);
  rm_db(path);
  return rc;
}

static void test_store_torture(void **state) {
  fx *f = *state;
  make_bundles(11);
  assert_int_equal(store_torture_run(f->path, 1L << 40), 0);
  long total = alloc_count;
  assert_true(total > 10);
  for (long i = 0; i < total; i++) {
    int rc = store_torture_run(f->path, i);
    if (rc != HVG_ENOMEM)
      fail_msg("allocation %ld of %ld: %s: %s", i, total, hvg_err_name(rc),
               E.msg);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_zip_roundtrip),
      cmocka_unit_test(test_zip_train_limits),
      cmocka_unit_test(test_zip_worthwhile),
      cmocka_unit_test(test_zip_many_dicts),
      cmocka_unit_test(test_zip_torture),
      cmocka_unit_test_setup_teardown(test_store_compresses, setup, teardown),
      cmocka_unit_test_setup_teardown(test_store_trains_on_stored, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_store_packed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_store_dict_rolled_back, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_store_dict_missing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_store_upgrade_from_v3, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_store_torture, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
