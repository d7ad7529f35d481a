/* store (SQLite back end): migrations, intake semantics, the outbox's
 * per-patient ordering, leases, retries, dead letters and replay, append-only
 * audit, referrals and cursors, a busy database, and crash safety under
 * SIGKILL. Real SQLite files in a temporary directory made by the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store_fixture.h"

/* ---- fixtures ----------------------------------------------------------- */

/* A record about `patient`, content `content` (hashed), for the partners. */
typedef struct rec {
  store_record r;
  store_target t[4];
  char id[32];
  char pk[32];
  char bundle[128];
} rec;

static void mk(rec *x, const char *id, const char *patient,
               const char *content, const char *partners) {
  memset(x, 0, sizeof *x);
  snprintf(x->id, sizeof x->id, "%s", id);
  snprintf(x->pk, sizeof x->pk, "%s", patient);
  snprintf(x->bundle, sizeof x->bundle,
           "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"x\":\"%s\"}",
           content);
  x->r.program = "prog1";
  x->r.record_type = "screening";
  x->r.record_id = x->id;
  x->r.patient_key = x->pk;
  x->r.bundle = x->bundle;
  x->r.bundle_len = strlen(x->bundle);
  assert_int_equal(store_hash(content, strlen(content), x->r.hash, NULL), 0);
  size_t n = 0;
  static const char *const names[] = {"p1", "p2", "p3", "p4"};
  for (const char *p = partners; *p && n < 4; p++)
    if (*p >= '1' && *p <= '4')
      x->t[n++].partner = names[*p - '1'];
  x->t[0].consent_id = "consent-1";
  x->r.targets = x->t;
  x->r.n_targets = n;
}

static store_put_result put1(store *st, rec *x, int64_t now) {
  store_put_result res;
  hvg_err e;
  hvg_err_clear(&e);
  int rc = store_put_records(st, &x->r, 1, now, &res, &e);
  if (rc)
    fail_msg("put: %s: %s (%s)", hvg_err_name(rc), e.msg, e.field);
  return res;
}

static size_t claim(store *st, const char *partner, size_t max, int64_t now,
                    int64_t lease, store_item *out) {
  size_t n = 99;
  hvg_err e;
  hvg_err_clear(&e);
  int rc = store_claim(st, partner, max, now, lease, out, &n, &e);
  if (rc)
    fail_msg("claim: %s: %s", hvg_err_name(rc), e.msg);
  return n;
}

static void ack(store *st, const store_item *it, int64_t now) {
  hvg_err e;
  hvg_err_clear(&e);
  int rc = store_ack(st, it, NULL, 0, NULL, now, &e);
  if (rc)
    fail_msg("ack: %s: %s", hvg_err_name(rc), e.msg);
}

/* ---- migrations --------------------------------------------------------- */

static void test_migrations(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  int v = -1;
  assert_int_equal(store_schema_version(st, &v, NULL), 0);
  assert_int_equal(v, store_schema_version_supported());
  assert_true(v >= 1);
  store_close(st);

  sqlite3 *db = raw_open(f->path);
  int64_t rows = raw_count(db, "SELECT count(*) FROM schema_version");
  int64_t objs = raw_count(db, "SELECT count(*) FROM sqlite_schema");
  char mode[16] = "";
  sqlite3_stmt *s;
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL);
  assert_int_equal(sqlite3_step(s), SQLITE_ROW);
  snprintf(mode, sizeof mode, "%s", (const char *)sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  assert_string_equal(mode, "wal");
  assert_int_equal(rows, v);
  sqlite3_close(db);

  /* reopen: a no-op */
  st = open_ok(f->path);
  store_close(st);
  db = raw_open(f->path);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM schema_version"), rows);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM sqlite_schema"), objs);

  /* a database from the future is refused */
  assert_int_equal(sqlite3_exec(db,
                                "INSERT INTO schema_version(version, "
                                "applied_at) VALUES (9999, 0)",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  hvg_err e;
  hvg_err_clear(&e);
  st = (store *)1;
  assert_int_equal(store_open(&st, f->path, NULL, &e), HVG_ECONFIG);
  assert_null(st);
  assert_non_null(strstr(e.msg, "9999"));
  assert_non_null(strstr(e.msg, "newer"));

  /* not a database */
  FILE *fp = fopen(f->path, "w");
  assert_non_null(fp);
  fputs("this is not a database, just some text that is long enough......"
        "................................................................",
        fp);
  fclose(fp);
  rm_db(f->path); /* drop -wal/-shm, then write the junk again */
  fp = fopen(f->path, "w");
  fputs("junk junk junk junk junk junk junk junk junk junk junk junk junk "
        "junk junk junk junk junk junk junk junk junk junk junk junk junk ",
        fp);
  fclose(fp);
  assert_int_equal(store_open(&st, f->path, NULL, &e), HVG_EIO);
  assert_int_equal(store_open(&st, "postgresql://x/y", NULL, &e), HVG_ECONFIG);
  assert_int_equal(store_open(&st, "", NULL, &e), HVG_EINVAL);
  assert_int_equal(store_open(&st, "/nonexistent/dir/x.db", NULL, &e),
                   HVG_EIO);

  /* :memory: works too */
  st = open_ok(":memory:");
  check_ok(st);
  store_close(st);
}

/* ---- intake ------------------------------------------------------------- */

static void test_put_semantics(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  sqlite3 *db = raw_open(f->path);
  rec a;
  mk(&a, "r1", "pat1", "content-v1", "12");

  store_put_result r = put1(st, &a, T0);
  assert_int_equal(r.status, STORE_PUT_NEW);
  assert_int_equal(r.version, 1);
  assert_int_equal(r.queued, 2);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM outbox"), 2);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM outbox WHERE state=0 "
                                 "AND head=1"),
                   2);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM outbox WHERE "
                                 "partner='p1' AND consent_id='consent-1'"),
                   1);

  /* same content: no-op */
  r = put1(st, &a, T0 + 1);
  assert_int_equal(r.status, STORE_PUT_UNCHANGED);
  assert_int_equal(r.version, 1);
  assert_int_equal(r.queued, 0);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM outbox"), 2);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM record_versions"), 1);

  /* same content, a partner that never had it (consent given since) */
  mk(&a, "r1", "pat1", "content-v1", "123");
  r = put1(st, &a, T0 + 2);
  assert_int_equal(r.status, STORE_PUT_UNCHANGED);
  assert_int_equal(r.queued, 1);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM outbox"), 3);

  /* changed: new version, queued again, stale pending items superseded */
  mk(&a, "r1", "pat1", "content-v2", "123");
  r = put1(st, &a, T0 + 3);
  assert_int_equal(r.status, STORE_PUT_CHANGED);
  assert_int_equal(r.version, 2);
  assert_int_equal(r.queued, 3);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM outbox"), 6);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM outbox WHERE state=4"),
                   3);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM outbox o JOIN "
                                 "record_versions v ON v.id=o.version_id "
                                 "WHERE o.state=0 AND v.version=2"),
                   3);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM record_versions"), 2);
  check_ok(st);

  /* a version in flight keeps its place; the next one waits behind it,
   * even when the patient key changed */
  store_item it[4];
  assert_int_equal(claim(st, "p1", 4, T0 + 10, 60000, it), 1);
  assert_int_equal(it[0].version, 2);
  assert_string_equal(it[0].partner, "p1");
  assert_string_equal(it[0].record_id, "r1");
  assert_string_equal(it[0].consent_id, "consent-1");
  assert_int_equal(it[0].bundle_len, strlen(a.bundle));
  assert_memory_equal(it[0].bundle, a.bundle, it[0].bundle_len);
  mk(&a, "r1", "pat1-moved", "content-v3", "1");
  r = put1(st, &a, T0 + 11);
  assert_int_equal(r.status, STORE_PUT_CHANGED);
  assert_int_equal(r.version, 3);
  check_ok(st);
  /* v2 for p2, p3 superseded (p3 not a target of v3 any more) */
  assert_int_equal(raw_count(db, "SELECT count(*) FROM outbox WHERE state<2"),
                   2);
  store_item it2[4];
  assert_int_equal(claim(st, "p1", 4, T0 + 12, 60000, it2), 0);
  assert_int_equal(claim(st, "p2", 4, T0 + 12, 60000, it2), 0);
  ack(st, &it[0], T0 + 13);
  assert_int_equal(claim(st, "p1", 4, T0 + 14, 60000, it2), 1);
  assert_int_equal(it2[0].version, 3);
  assert_string_equal(it2[0].patient_key, "pat1"); /* kept the lane */
  ack(st, &it2[0], T0 + 15);
  store_items_release(it, 1);
  store_items_release(it2, 1);
  check_ok(st);

  /* bad input changes nothing */
  rec b[2];
  mk(&b[0], "r9", "pat9", "c", "1");
  mk(&b[1], "r10", "pat9", "c", "11");
  store_record batch[2] = {b[0].r, b[1].r};
  hvg_err e;
  hvg_err_clear(&e);
  assert_int_equal(store_put_records(st, batch, 2, T0, NULL, &e), HVG_EINVAL);
  assert_string_equal(e.field, "batch[1].targets[1].partner");
  batch[1].n_targets = 1;
  batch[1].patient_key = "";
  assert_int_equal(store_put_records(st, batch, 2, T0, NULL, &e), HVG_EINVAL);
  assert_string_equal(e.field, "batch[1].patient_key");
  assert_int_equal(raw_count(db, "SELECT count(*) FROM records"), 1);

  sqlite3_close(db);
  store_close(st);
}

static void test_batch_10000(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  enum { N = 10000 };
  store_record *batch = calloc(N, sizeof *batch);
  store_put_result *res = calloc(N, sizeof *res);
  char(*ids)[16] = calloc(N, sizeof *ids);
  char(*pks)[16] = calloc(N, sizeof *pks);
  assert_non_null(batch);
  assert_non_null(res);
  assert_non_null(ids);
  assert_non_null(pks);
  static const store_target tg[] = {{"p1", "c1"}};
  const char *bundle = "{\"resourceType\":\"Bundle\"}";
  for (int i = 0; i < N; i++) {
    snprintf(ids[i], sizeof ids[i], "r%d", i);
    snprintf(pks[i], sizeof pks[i], "pat%d", i / 3);
    batch[i].program = "prog1";
    batch[i].record_type = "screening";
    batch[i].record_id = ids[i];
    batch[i].patient_key = pks[i];
    batch[i].bundle = bundle;
    batch[i].bundle_len = strlen(bundle);
    store_hash(ids[i], strlen(ids[i]), batch[i].hash, NULL);
    batch[i].targets = tg;
    batch[i].n_targets = 1;
  }
  hvg_err e;
  hvg_err_clear(&e);
  assert_int_equal(store_put_records(st, batch, N, T0, res, &e), 0);
  for (int i = 0; i < N; i++)
    assert_int_equal(res[i].status, STORE_PUT_NEW);
  assert_int_equal(store_put_records(st, batch, N, T0 + 1, res, &e), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(res[i].status, STORE_PUT_UNCHANGED);
    assert_int_equal(res[i].queued, 0);
  }
  store_partner_stats ps[4];
  size_t n = 0, total = 0;
  assert_int_equal(store_stats(st, T0 + 5000, ps, 4, &n, &total, &e), 0);
  assert_int_equal(n, 1);
  assert_int_equal(total, 1);
  assert_string_equal(ps[0].partner, "p1");
  assert_int_equal(ps[0].pending, N);
  assert_int_equal(ps[0].in_flight, 0);
  assert_int_equal(ps[0].oldest_pending_age_ms, 5000);
  /* one head per patient: 3334 lanes */
  store_item *items = calloc(N, sizeof *items);
  assert_non_null(items);
  assert_int_equal(claim(st, "p1", N, T0 + 6000, 1000, items), (N + 2) / 3);
  assert_int_equal(store_stats(st, T0 + 6000, ps, 4, &n, NULL, &e), 0);
  assert_int_equal(ps[0].in_flight, (N + 2) / 3);
  assert_int_equal(ps[0].pending, N - (N + 2) / 3);
  store_items_release(items, (N + 2) / 3);
  check_ok(st);
  free(items);
  free(batch);
  free(res);
  free(ids);
  free(pks);
  store_close(st);
}

/* ---- outbox ------------------------------------------------------------- */

static void test_claim_order_and_leases(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  rec r1, r2, r3, r4;
  mk(&r1, "r1", "P", "a", "1");
  mk(&r2, "r2", "P", "b", "1");
  mk(&r3, "r3", "Q", "c", "1");
  mk(&r4, "r4", "Q", "d", "1");
  put1(st, &r1, T0);
  put1(st, &r2, T0);
  put1(st, &r3, T0);
  put1(st, &r4, T0);

  store_item it[8];
  /* one per patient, oldest first */
  assert_int_equal(claim(st, "p1", 8, T0, 1000, it), 2);
  assert_string_equal(it[0].record_id, "r1");
  assert_string_equal(it[1].record_id, "r3");
  assert_int_equal(it[0].attempts, 1);
  assert_int_equal(it[0].lease_until, T0 + 1000);
  store_item again[8];
  assert_int_equal(claim(st, "p1", 8, T0 + 999, 1000, again), 0);
  assert_int_equal(claim(st, "p2", 8, T0 + 999, 1000, again), 0);

  /* lease expiry: the same items come back, with a new token */
  assert_int_equal(claim(st, "p1", 1, T0 + 1000, 1000, again), 1);
  assert_string_equal(again[0].record_id, "r1");
  assert_int_equal(again[0].attempts, 2);
  assert_true(again[0].lease != it[0].lease);
  hvg_err e;
  hvg_err_clear(&e);
  /* the old holder lost the lease */
  assert_int_equal(store_ack(st, &it[0], NULL, 0, NULL, T0 + 1001, &e),
                   HVG_ESTATE);
  assert_int_equal(store_retry(st, &it[0], T0, "x", T0 + 1001, &e),
                   HVG_ESTATE);
  assert_int_equal(store_dead(st, &it[0], 400, NULL, 0, NULL, T0 + 1001, &e),
                   HVG_ESTATE);

  /* ack with server ids and an audit entry */
  store_assigned_id ids[] = {
      {"Observation", "urn:sys|obs-1", "123", "1"},
      {"Patient", "urn:sys|pat-P", "p-9", NULL},
  };
  store_audit_entry au = {0};
  au.at_ms = T0 + 1002;
  au.actor = "gateway";
  au.action = "disclose";
  au.resources = "Observation/123/_history/1 Patient/p-9";
  assert_int_equal(store_ack(st, &again[0], ids, 2, &au, T0 + 1002, &e), 0);
  assert_int_equal(store_ack(st, &again[0], ids, 2, &au, T0 + 1002, &e),
                   HVG_ESTATE); /* twice */
  hvg_buf id, ver;
  hvg_buf_init(&id, 64);
  hvg_buf_init(&ver, 64);
  assert_int_equal(store_server_id(st, "p1", "Observation", "urn:sys|obs-1",
                                   &id, &ver, &e),
                   0);
  assert_string_equal(id.data, "123");
  assert_string_equal(ver.data, "1");
  hvg_buf_reset(&id);
  hvg_buf_reset(&ver);
  assert_int_equal(
      store_server_id(st, "p1", "Patient", "urn:sys|pat-P", &id, &ver, &e), 0);
  assert_string_equal(id.data, "p-9");
  assert_int_equal(ver.len, 0);
  assert_int_equal(
      store_server_id(st, "p2", "Patient", "urn:sys|pat-P", &id, NULL, &e),
      HVG_ENOTFOUND);
  hvg_buf_free(&id);
  hvg_buf_free(&ver);
  store_audit_iter *ai = NULL;
  assert_int_equal(store_audit_iter_open(st, 0, &ai, &e), 0);
  store_audit_entry got;
  assert_int_equal(store_audit_iter_next(ai, &got, &e), 1);
  assert_string_equal(got.action, "disclose");
  assert_string_equal(got.partner, "p1");      /* defaulted from the item */
  assert_string_equal(got.record_id, "r1");    /* defaulted from the item */
  assert_string_equal(got.consent_id, "consent-1");
  assert_int_equal(store_audit_iter_next(ai, &got, &e), 0);
  store_audit_iter_close(ai);

  /* r2 (same patient) only now */
  store_item n2[8];
  assert_int_equal(claim(st, "p1", 8, T0 + 1003, 1000, n2), 2);
  /* longest waiting first: r2 was due at T0, r3's lease ended at T0+1000 */
  assert_string_equal(n2[0].record_id, "r2");
  assert_string_equal(n2[1].record_id, "r3");

  /* retry: counts and due times; the lane waits */
  assert_int_equal(store_retry(st, &n2[0], T0 + 5000, "HTTP 503", T0 + 1004,
                               &e),
                   0);
  /* dead: the next of the lane goes */
  const char *oo = "{\"resourceType\":\"OperationOutcome\"}";
  assert_int_equal(store_dead(st, &n2[1], 422, oo, strlen(oo),
                              "check the mapping", T0 + 1005, &e),
                   0);
  store_item n3[8];
  assert_int_equal(claim(st, "p1", 8, T0 + 4999, 1000, n3), 1);
  assert_string_equal(n3[0].record_id, "r4");
  ack(st, &n3[0], T0 + 5000);
  assert_int_equal(claim(st, "p1", 8, T0 + 5000, 1000, n3 + 1), 1);
  assert_string_equal(n3[1].record_id, "r2");
  assert_int_equal(n3[1].attempts, 2);

  store_partner_stats ps[2];
  size_t n = 0;
  assert_int_equal(store_stats(st, T0 + 5000, ps, 2, &n, NULL, &e), 0);
  assert_int_equal(n, 1);
  assert_int_equal(ps[0].pending, 0);
  assert_int_equal(ps[0].in_flight, 1);
  assert_int_equal(ps[0].dead, 1);
  assert_int_equal(ps[0].delivered, 2);

  /* dead letters listed, replayed, delivered */
  store_dead_letter dl[4];
  assert_int_equal(store_dead_list(st, NULL, 0, 4, dl, &n, &e), 0);
  assert_int_equal(n, 1);
  assert_string_equal(dl[0].record_id, "r3");
  assert_int_equal(dl[0].http_status, 422);
  assert_string_equal(dl[0].hint, "check the mapping");
  assert_int_equal(dl[0].outcome_len, strlen(oo));
  assert_string_equal(dl[0].outcome, oo);
  assert_int_equal(dl[0].attempts, 2);
  int64_t dead_id = dl[0].id;
  store_dead_letters_release(dl, n);
  assert_int_equal(store_dead_list(st, "p2", 0, 4, dl, &n, &e), 0);
  assert_int_equal(n, 0);
  size_t replayed = 99;
  int64_t bogus[] = {dead_id, 999999, n3[1].id};
  assert_int_equal(store_replay(st, bogus, 3, T0 + 5500, &replayed, &e), 0);
  assert_int_equal(replayed, 1); /* others are not dead letters */
  check_ok(st);
  store_item n4[8];
  assert_int_equal(claim(st, "p1", 8, T0 + 5500, 1000, n4), 1);
  assert_string_equal(n4[0].record_id, "r3");
  assert_int_equal(n4[0].attempts, 1); /* reset by replay */
  assert_int_equal(store_dead(st, &n4[0], 400, NULL, 0, NULL, T0 + 6001, &e),
                   0);
  assert_int_equal(store_replay_all(st, "p1", T0 + 7000, &replayed, &e), 0);
  assert_int_equal(replayed, 1);
  assert_int_equal(store_replay_all(st, NULL, T0 + 7000, &replayed, &e), 0);
  assert_int_equal(replayed, 0);
  check_ok(st);

  store_items_release(it, 2);
  store_items_release(again, 1);
  store_items_release(n2, 2);
  store_items_release(n3, 2);
  store_items_release(n4, 1);
  assert_int_equal(store_claim(st, "p1", 1, T0, 0, n4, &n, &e), HVG_EINVAL);
  store_close(st);
}

/* One store_finish for a round larger than one multi-row write: a resource
 * several items delivered keeps the last one's id, an item whose lease was
 * lost writes nothing, delivered counts stay per partner, audit entries
 * keep the order of the outcomes. */
static void test_finish_round(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  rec r[22];
  for (int i = 0; i < 22; i++) {
    char id[16], pk[16];
    snprintf(id, sizeof id, "%s%02d", i < 20 ? "r" : "s", i);
    snprintf(pk, sizeof pk, "P%02d", i);
    mk(&r[i], id, pk, id, i < 20 ? "1" : "2");
    put1(st, &r[i], T0);
  }
  store_item it[22], stolen[1];
  assert_int_equal(claim(st, "p1", 20, T0, 1000, it), 20);
  assert_int_equal(claim(st, "p2", 2, T0, 1000, it + 20), 2);
  /* r00's lease runs out and another holder takes it */
  assert_int_equal(claim(st, "p1", 1, T0 + 1000, 1000, stolen), 1);
  assert_string_equal(stolen[0].record_id, "r00");
  /* outcomes: p1 r00..r09, p2 s20 s21, p1 r10..r19; each with a shared
   * Organization and its own Observation: 44 ids, 22 audit entries */
  store_outcome o[22];
  store_assigned_id ids[22][2];
  store_audit_entry au[22];
  char sid[22][2][32], ident[22][32];
  int order[22];
  for (int k = 0; k < 22; k++)
    order[k] = k < 10 ? k : k < 12 ? k + 10 : k - 2;
  for (int k = 0; k < 22; k++) {
    const store_item *x = &it[order[k]];
    snprintf(sid[k][0], sizeof sid[k][0], "org-%s", x->record_id);
    snprintf(sid[k][1], sizeof sid[k][1], "obs-%s", x->record_id);
    snprintf(ident[k], sizeof ident[k], "urn:obs|%s", x->record_id);
    ids[k][0] =
        (store_assigned_id){"Organization", "urn:npi|1", sid[k][0], "1"};
    ids[k][1] = (store_assigned_id){"Observation", ident[k], sid[k][1], NULL};
    au[k] = (store_audit_entry){0};
    au[k].at_ms = T0 + 1001;
    au[k].actor = "gateway";
    au[k].action = "disclose";
    au[k].resources = sid[k][1];
    o[k] = (store_outcome){0};
    o[k].item = x;
    o[k].kind = STORE_DELIVERED;
    o[k].ids = ids[k];
    o[k].n_ids = 2;
    o[k].audit = &au[k];
  }
  hvg_err e;
  hvg_err_clear(&e);
  assert_int_equal(store_finish(st, o, 22, T0 + 1001, &e), 0);
  for (int k = 0; k < 22; k++)
    assert_int_equal(o[k].result, k == 0 ? HVG_ESTATE : 0);
  hvg_buf id;
  hvg_buf_init(&id, 64);
  assert_int_equal(
      store_server_id(st, "p1", "Organization", "urn:npi|1", &id, NULL, &e), 0);
  assert_string_equal(id.data, "org-r19");
  hvg_buf_reset(&id);
  assert_int_equal(
      store_server_id(st, "p2", "Organization", "urn:npi|1", &id, NULL, &e), 0);
  assert_string_equal(id.data, "org-s21");
  hvg_buf_reset(&id);
  assert_int_equal(
      store_server_id(st, "p1", "Observation", "urn:obs|r00", &id, NULL, &e),
      HVG_ENOTFOUND);
  assert_int_equal(
      store_server_id(st, "p1", "Observation", "urn:obs|r07", &id, NULL, &e),
      0);
  assert_string_equal(id.data, "obs-r07");
  hvg_buf_free(&id);
  sqlite3 *db = raw_open(f->path);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM server_ids"), 23);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM server_ids s JOIN "
                                 "records r ON r.id = s.record WHERE "
                                 "s.partner = 'p1' AND s.resource_type = "
                                 "'Organization' AND r.record_id = 'r19'"),
                   1);
  sqlite3_close(db);
  store_partner_stats ps[2];
  size_t n = 0;
  assert_int_equal(store_stats(st, T0 + 1001, ps, 2, &n, NULL, &e), 0);
  assert_int_equal(n, 2);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(ps[i].delivered, !strcmp(ps[i].partner, "p1") ? 19 : 2);
  store_audit_iter *ai = NULL;
  assert_int_equal(store_audit_iter_open(st, 0, &ai, &e), 0);
  store_audit_entry got;
  for (int k = 1; k < 22; k++) {
    assert_int_equal(store_audit_iter_next(ai, &got, &e), 1);
    assert_string_equal(got.record_id, it[order[k]].record_id);
    assert_string_equal(got.partner, order[k] < 20 ? "p1" : "p2");
  }
  assert_int_equal(store_audit_iter_next(ai, &got, &e), 0);
  store_audit_iter_close(ai);
  check_ok(st);
  store_items_release(it, 22);
  store_items_release(stolen, 1);
  store_close(st);
}

/* A dead letter replayed behind an item in flight of the same patient waits
 * for it, then goes first. */
static void test_replay_behind_inflight(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  rec r1, r2, r3;
  mk(&r1, "r1", "P", "a", "1");
  mk(&r2, "r2", "P", "b", "1");
  mk(&r3, "r3", "P", "c", "1");
  put1(st, &r1, T0);
  put1(st, &r2, T0);
  put1(st, &r3, T0);
  store_item a[2], b[2], c[2];
  assert_int_equal(claim(st, "p1", 2, T0, 1000, a), 1);
  assert_int_equal(store_dead(st, &a[0], 400, NULL, 0, "x", T0, NULL), 0);
  assert_int_equal(claim(st, "p1", 2, T0, 1000, b), 1);
  assert_string_equal(b[0].record_id, "r2");
  assert_int_equal(store_replay(st, &a[0].id, 1, T0, NULL, NULL), 0);
  check_ok(st);
  assert_int_equal(claim(st, "p1", 2, T0 + 1, 1000, c), 0);
  ack(st, &b[0], T0 + 2);
  assert_int_equal(claim(st, "p1", 2, T0 + 3, 1000, c), 1);
  assert_string_equal(c[0].record_id, "r1");
  ack(st, &c[0], T0 + 4);
  store_items_release(c, 1);
  assert_int_equal(claim(st, "p1", 2, T0 + 5, 1000, c), 1);
  assert_string_equal(c[0].record_id, "r3");
  check_ok(st);
  store_items_release(a, 1);
  store_items_release(b, 1);
  store_items_release(c, 1);
  store_close(st);
}

/* ---- audit -------------------------------------------------------------- */

static void test_audit_append_only(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  store_audit_entry e1 = {0};
  e1.at_ms = T0;
  e1.actor = "operator";
  e1.action = "replay";
  e1.detail = "all";
  int64_t id1 = 0, id2 = 0;
  assert_int_equal(store_audit_append(st, &e1, &id1, NULL), 0);
  e1.action = "disclose";
  e1.partner = "p1";
  assert_int_equal(store_audit_append(st, &e1, &id2, NULL), 0);
  assert_true(id2 > id1);
  hvg_err e;
  e1.actor = NULL;
  assert_int_equal(store_audit_append(st, &e1, NULL, &e), HVG_EINVAL);
  assert_string_equal(e.field, "audit.actor");

  sqlite3 *db = raw_open(f->path);
  assert_int_equal(
      sqlite3_exec(db, "UPDATE audit SET actor='x'", NULL, NULL, NULL),
      SQLITE_CONSTRAINT);
  assert_non_null(strstr(sqlite3_errmsg(db), "append-only"));
  assert_int_equal(sqlite3_exec(db, "DELETE FROM audit", NULL, NULL, NULL),
                   SQLITE_CONSTRAINT);
  assert_int_equal(sqlite3_exec(db,
                                "INSERT OR REPLACE INTO audit(id, at, actor,"
                                " action) VALUES (1, 0, 'x', 'y')",
                                NULL, NULL, NULL),
                   SQLITE_CONSTRAINT);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM audit WHERE "
                                 "actor='operator'"),
                   2);
  sqlite3_close(db);

  store_audit_iter *it = NULL;
  assert_int_equal(store_audit_iter_open(st, id1, &it, NULL), 0);
  store_audit_entry got;
  assert_int_equal(store_audit_iter_next(it, &got, NULL), 1);
  assert_int_equal(got.id, id2);
  assert_string_equal(got.action, "disclose");
  assert_string_equal(got.partner, "p1");
  assert_null(got.record_id);
  assert_int_equal(got.at_ms, T0);
  assert_int_equal(store_audit_iter_next(it, &got, NULL), 0);
  store_audit_iter_close(it);
  store_close(st);
}

/* ---- referrals and cursors ---------------------------------------------- */

static void test_referrals_and_cursors(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  hvg_err e;
  store_referral r = {0};
  r.program = "prog1";
  r.referral_id = "ref-1";
  r.partner = "svc1";
  r.status = "requested";
  assert_int_equal(store_referral_upsert(st, &r, T0, &e), 0);
  r.status = NULL;
  r.task_id = "Task/77";
  r.data = "{\"a\":1}";
  r.data_len = 7;
  assert_int_equal(store_referral_upsert(st, &r, T0 + 1, &e), 0);
  store_referral got;
  assert_int_equal(store_referral_get(st, "prog1", "ref-1", &got, &e), 0);
  assert_string_equal(got.status, "requested");
  assert_string_equal(got.partner, "svc1");
  assert_string_equal(got.task_id, "Task/77");
  assert_int_equal(got.data_len, 7);
  assert_int_equal(got.created_at_ms, T0);
  assert_int_equal(got.updated_at_ms, T0 + 1);
  store_referral_release(&got);
  assert_int_equal(store_referral_transition_add(st, "prog1", "ref-1",
                                                 "accepted", "completed",
                                                 "svc1", NULL, T0 + 2, &e),
                   HVG_ESTATE);
  assert_int_equal(store_referral_transition_add(st, "prog1", "ref-1",
                                                 "requested", "accepted",
                                                 "svc1", "ok", T0 + 3, &e),
                   0);
  assert_int_equal(store_referral_transition_add(st, "prog1", "nope", NULL,
                                                 "accepted", "svc1", NULL,
                                                 T0 + 3, &e),
                   HVG_ENOTFOUND);
  assert_int_equal(store_referral_get(st, "prog1", "ref-1", &got, &e), 0);
  assert_string_equal(got.status, "accepted");
  store_referral_release(&got);
  assert_int_equal(store_referral_get(st, "prog1", "nope", &got, &e),
                   HVG_ENOTFOUND);
  store_referral nr = {0};
  nr.program = "prog1";
  nr.referral_id = "ref-2";
  assert_int_equal(store_referral_upsert(st, &nr, T0, &e), HVG_EINVAL);
  sqlite3 *db = raw_open(f->path);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM referral_transitions"),
                   2);
  assert_int_equal(sqlite3_exec(db, "DELETE FROM referral_transitions", NULL,
                                NULL, NULL),
                   SQLITE_CONSTRAINT);
  sqlite3_close(db);

  hvg_buf b;
  hvg_buf_init(&b, 8);
  assert_int_equal(store_cursor_get(st, "p1", &b, &e), HVG_ENOTFOUND);
  assert_int_equal(store_cursor_set(st, "p1", "2024-01-01", T0, &e), 0);
  assert_int_equal(store_cursor_get(st, "p1", &b, &e), HVG_ETOOBIG);
  b.max = 64;
  hvg_buf_reset(&b);
  assert_int_equal(store_cursor_set(st, "p1", "2024-02-02", T0, &e), 0);
  assert_int_equal(store_cursor_get(st, "p1", &b, &e), 0);
  assert_string_equal(b.data, "2024-02-02");
  hvg_buf_free(&b);
  store_close(st);
}

/* ---- consents and lease release ---------------------------------------- */

static void test_consents(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  store_consent c[2] = {{0}};
  c[0].program = "prog1";
  c[0].consent_id = "c1";
  c[0].family_id = "F1";
  c[0].organization_id = "O1";
  c[0].scope = "screening,referral";
  c[0].granted = "2024-01-01";
  c[0].expires = "2025-01-01";
  c[1].program = "prog1";
  c[1].consent_id = "c2";
  c[1].caregiver_id = "CG";
  c[1].organization_id = "O2";
  c[1].granted = "2024-06-01";
  c[1].revoked = "2024-09-01";
  hvg_err e;
  assert_int_equal(store_consent_put(st, c, 2, T0, &e), 0);
  const char *orgs[] = {"O9", "O1"};
  char id[32];
#define FIND(fam, cg, o, no, scope, day)                                      \
  store_consent_find(st, "prog1", fam, cg, o, no, scope, day, id, sizeof id, \
                     &e)
  assert_int_equal(FIND("F1", NULL, orgs, 2, "screening", "2024-05-01"), 1);
  assert_string_equal(id, "c1");
  assert_int_equal(FIND("F1", NULL, orgs, 2, "screening", "2025-02-01"), 0);
  assert_int_equal(FIND("F1", NULL, orgs, 2, "screening", "2023-12-31"), 0);
  assert_int_equal(FIND("F1", NULL, orgs, 2, "results", "2024-05-01"), 0);
  assert_int_equal(FIND("F1", NULL, orgs, 1, "screening", "2024-05-01"), 0);
  assert_int_equal(FIND("F2", NULL, orgs, 2, "screening", "2024-05-01"), 0);
  const char *o2[] = {"O2"};
  assert_int_equal(FIND(NULL, "CG", o2, 1, "screening", "2024-07-01"), 1);
  assert_string_equal(id, "c2");
  assert_int_equal(FIND("", "CG", o2, 1, "screening", "2024-10-01"), 0);
  assert_int_equal(FIND(NULL, NULL, o2, 1, "screening", "2024-07-01"), 0);
  /* replaced by key: revoked since */
  c[0].revoked = "2024-03-01";
  assert_int_equal(store_consent_put(st, c, 1, T0, &e), 0);
  assert_int_equal(FIND("F1", NULL, orgs, 2, "screening", "2024-05-01"), 0);
  assert_int_equal(FIND("F1", NULL, orgs, 2, "screening", "2024-02-01"), 1);
#undef FIND
  /* a bad consent in a batch: nothing stored */
  store_consent bad[2] = {c[1], {0}};
  bad[0].consent_id = "c3";
  bad[1].program = "prog1";
  bad[1].consent_id = "c4";
  bad[1].granted = "2024-01-01"; /* no organization */
  assert_int_equal(store_consent_put(st, bad, 2, T0, &e), HVG_EINVAL);
  assert_string_equal(e.field, "consent.organization_id");
  sqlite3 *db = raw_open(f->path);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM consents"), 2);
  sqlite3_close(db);
  store_close(st);
}

static void test_release_leases(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  rec a, b;
  mk(&a, "r1", "P", "a", "1");
  mk(&b, "r2", "Q", "b", "1");
  put1(st, &a, T0);
  put1(st, &b, T0);
  store_item it[2], again[2];
  assert_int_equal(claim(st, "p1", 1, T0, 600000, it), 1);
  assert_int_equal(claim(st, "p1", 2, T0 + 1, 600000, again), 1);
  store_items_release(again, 1);
  assert_int_equal(store_release_leases(st, T0 + 2, NULL), 0);
  check_ok(st);
  /* both are claimable at once, long before their leases would end */
  assert_int_equal(claim(st, "p1", 2, T0 + 2, 600000, again), 2);
  hvg_err e;
  assert_int_equal(store_ack(st, &it[0], NULL, 0, NULL, T0 + 3, &e),
                   HVG_ESTATE);
  ack(st, &again[0], T0 + 3);
  ack(st, &again[1], T0 + 3);
  store_items_release(it, 1);
  store_items_release(again, 2);
  check_ok(st);
  store_close(st);
}

/* ---- busy database ------------------------------------------------------ */

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_busy(void **state) {
  fx *f = *state;
  store_opts o = {0};
  o.busy_timeout_ms = 200;
  store *st = NULL;
  assert_int_equal(store_open(&st, f->path, &o, NULL), 0);
  sqlite3 *db = raw_open(f->path);
  assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                   SQLITE_OK);
  rec a;
  mk(&a, "r1", "P", "a", "1");
  hvg_err e;
  hvg_err_clear(&e);
  int64_t t = mono_ms();
  assert_int_equal(store_put_records(st, &a.r, 1, T0, NULL, &e), HVG_EIO);
  assert_true(mono_ms() - t >= 150);
  assert_non_null(strstr(e.msg, "busy"));
  /* readers are not blocked by a writer in WAL mode */
  store_partner_stats ps[1];
  size_t n;
  assert_int_equal(store_stats(st, T0, ps, 1, &n, NULL, &e), 0);
  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  sqlite3_close(db);
  put1(st, &a, T0);
  store_close(st);
}

/* ---- crash safety ------------------------------------------------------- */

enum { CRASH_BATCH = 500, CRASH_ROUNDS = 20 };

static uint64_t rng_next(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* The child: put batches (tagged with the round) and work the outbox until
 * killed. Never returns. */
static void crash_child(const char *path, int round, int progress) {
  store *st = NULL;
  if (store_open(&st, path, NULL, NULL))
    _exit(3);
  static store_record batch[CRASH_BATCH];
  static char ids[CRASH_BATCH][32], pks[CRASH_BATCH][16];
  static char bundle[512];
  memset(bundle, 'x', sizeof bundle - 1);
  static const store_target tg[] = {{"p1", "c1"}, {"p2", NULL}};
  store_item items[64];
  for (int b = 0;; b++) {
    for (int i = 0; i < CRASH_BATCH; i++) {
      snprintf(ids[i], sizeof ids[i], "%03d-%05d-%04d", round, b, i);
      snprintf(pks[i], sizeof pks[i], "pat%d", (b * 7 + i) % 997);
      batch[i].program = "prog1";
      batch[i].record_type = "screening";
      batch[i].record_id = ids[i];
      batch[i].patient_key = pks[i];
      batch[i].bundle = bundle;
      batch[i].bundle_len = sizeof bundle - 1;
      store_hash(ids[i], strlen(ids[i]), batch[i].hash, NULL);
      batch[i].targets = tg;
      batch[i].n_targets = 2;
    }
    if (write(progress, "B", 1) != 1)
      _exit(7);
    if (store_put_records(st, batch, CRASH_BATCH, store_now_ms(), NULL, NULL))
      _exit(4);
    if (write(progress, "E", 1) != 1)
      _exit(7);
    size_t n = 0;
    int64_t now = store_now_ms();
    if (store_claim(st, b % 2 ? "p1" : "p2", 64, now, 30000, items, &n, NULL))
      _exit(5);
    for (size_t i = 0; i < n; i++) {
      int rc;
      if (i % 4 == 3)
        rc = store_retry(st, &items[i], now + 10, "503", now, NULL);
      else if (i % 16 == 5)
        rc = store_dead(st, &items[i], 400, "{}", 2, "bad", now, NULL);
      else if (i % 2)
        rc = store_ack(st, &items[i], NULL, 0, NULL, now, NULL);
      else
        continue;
      if (rc)
        _exit(6);
    }
    store_outcome outs[64];
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) { /* the rest in one transaction */
      memset(&outs[k], 0, sizeof outs[k]);
      outs[k].item = &items[i];
      outs[k++].kind = STORE_DELIVERED;
    }
    for (size_t i = 2; i < n; i += 4) {
      memset(&outs[k], 0, sizeof outs[k]);
      outs[k].item = &items[i];
      outs[k++].kind = STORE_DELIVERED;
    }
    if (store_finish(st, outs, k, now, NULL))
      _exit(6);
    for (size_t i = 0; i < k; i++)
      if (outs[i].result)
        _exit(6);
    store_items_release(items, n);
  }
}

static void test_crash_safety(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path); /* create the schema first */
  store_close(st);
  uint64_t seed = (uint64_t)mono_ms() * 2654435761u | 1;
  int killed_mid = 0;
  for (int round = 0; round < CRASH_ROUNDS; round++) {
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(pfd[0]);
      crash_child(f->path, round, pfd[1]);
    }
    close(pfd[1]);
    struct timespec d = {0, (long)(2 + rng_next(&seed) % 80) * 1000000L};
    nanosleep(&d, NULL);
    kill(pid, SIGKILL);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status))
      fail_msg("child exited by itself with status %d",
               WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    /* was it killed inside store_put_records? (last mark 'B') */
    char buf[256], last = 0;
    ssize_t got;
    while ((got = read(pfd[0], buf, sizeof buf)) > 0)
      last = buf[got - 1];
    close(pfd[0]);
    killed_mid += last == 'B';

    st = open_ok(f->path);
    check_ok(st);
    store_close(st);
    sqlite3 *db = raw_open(f->path);
    /* no half batches: every batch has all its records, each with exactly
     * one version and two outbox rows */
    assert_int_equal(
        raw_count(db, "SELECT count(*) FROM (SELECT substr(record_id, 1, 9) "
                      "b, count(*) c FROM records GROUP BY b "
                      "HAVING c <> 500)"),
        0);
    assert_int_equal(raw_count(db, "SELECT count(*) FROM records r WHERE "
                                   "(SELECT count(*) FROM outbox o WHERE "
                                   "o.record = r.id) <> 2"),
                     0);
    assert_int_equal(raw_count(db, "SELECT (SELECT count(*) FROM records) - "
                                   "(SELECT count(*) FROM record_versions)"),
                     0);
    sqlite3_close(db);
  }
  /* after all the kills: drain everything, leases expired meanwhile */
  st = open_ok(f->path);
  int64_t now = store_now_ms() + 3600 * 1000;
  size_t replayed = 0;
  assert_int_equal(store_replay_all(st, NULL, now, &replayed, NULL), 0);
  store_item items[256];
  store_outcome outs[256];
  for (const char *const *p = (const char *const[]){"p1", "p2", NULL}; *p;
       p++) {
    size_t n;
    while ((n = claim(st, *p, 256, now, 60000, items)) > 0) {
      memset(outs, 0, sizeof outs);
      for (size_t i = 0; i < n; i++) {
        outs[i].item = &items[i];
        outs[i].kind = STORE_DELIVERED;
      }
      assert_int_equal(store_finish(st, outs, n, now, NULL), 0);
      for (size_t i = 0; i < n; i++)
        assert_int_equal(outs[i].result, 0);
      store_items_release(items, n);
    }
  }
  check_ok(st);
  store_close(st);
  sqlite3 *db = raw_open(f->path);
  int64_t n_records = raw_count(db, "SELECT count(*) FROM records");
  int64_t n_items = raw_count(db, "SELECT count(*) FROM outbox");
  assert_true(n_records >= CRASH_BATCH);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM outbox WHERE state<>3"),
                   0);
  assert_int_equal(raw_count(db, "SELECT sum(delivered) FROM partner_stats"),
                   raw_count(db, "SELECT count(*) FROM outbox"));
  sqlite3_close(db);
  print_message("crash test: %d of %d kills landed inside a batch write; "
                "%lld records, %lld outbox items delivered after restarts\n",
                killed_mid, CRASH_ROUNDS, (long long)n_records,
                (long long)n_items);
  assert_true(killed_mid > 0);
}

/* Every row the store wrote for the records (bundles aside: a batch may
 * store them compressed), in one text, for comparing two stores. */
static void dump_rows(const char *path, char *out, size_t cap) {
  static const char *const q[] = {
      "SELECT id, program, record_type, record_id, version, hex(hash),"
      " patient_key FROM records ORDER BY id",
      "SELECT id, record, version, hex(hash), sensitivity FROM"
      " record_versions ORDER BY id",
      "SELECT id, version_id, record, partner, patient_key, consent_id,"
      " state, head, due_at FROM outbox ORDER BY id"};
  sqlite3 *db = raw_open(path);
  size_t len = 0;
  for (size_t k = 0; k < 3; k++) {
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, q[k], -1, &s, NULL), SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW) {
      for (int c = 0; c < sqlite3_column_count(s); c++) {
        const char *v = (const char *)sqlite3_column_text(s, c);
        int w = snprintf(out + len, cap - len, "%s|", v ? v : "NULL");
        assert_true(w >= 0 && (size_t)w < cap - len);
        len += (size_t)w;
      }
      assert_true(len + 1 < cap);
      out[len++] = '\n';
      out[len] = '\0';
    }
    sqlite3_finalize(s);
  }
  sqlite3_close(db);
}

/* One batch stores exactly what the same records stored one call each
 * store: ids, versions, outbox items and which of them head their lane.
 * The batch mixes what the store writes together (runs of new records) with
 * what breaks a run: lanes shared inside a run, a key seen twice, a record
 * changed or unchanged since an earlier intake, a record for no partner,
 * one for three, and more items than one multi-row statement holds. */
static void test_batch_same_as_one_by_one(void **state) {
  fx *f = *state;
  enum { N = 60 };
  static rec xs[N];
  char ids[N][8], pks[N][8], content[N][16];
  for (int i = 0; i < N; i++) {
    snprintf(ids[i], sizeof ids[i], "r%d", i % 41 == 40 ? 3 : i);
    snprintf(pks[i], sizeof pks[i], "fam%d", i / 4); /* lanes of 4 */
    snprintf(content[i], sizeof content[i], "c%d", i);
    const char *partners = i % 13 == 5 ? "" : i % 7 == 3 ? "123" : "1";
    mk(&xs[i], ids[i], pks[i], content[i], partners);
  }
  /* r3 again later in the batch (i = 40), with other content */
  char path2[128];
  snprintf(path2, sizeof path2, "%s/one-by-one.db", f->dir);
  store *a = open_ok(f->path), *b = open_ok(path2);
  /* an earlier intake: r10 and r11 exist, r11 with the same content */
  for (int k = 10; k <= 11; k++) {
    rec old;
    mk(&old, ids[k], pks[k], k == 11 ? content[k] : "old", "1");
    put1(a, &old, T0);
    put1(b, &old, T0);
  }
  store_record batch[N];
  store_put_result ra[N], rb[N];
  for (int i = 0; i < N; i++)
    batch[i] = xs[i].r;
  hvg_err e;
  hvg_err_clear(&e);
  assert_int_equal(store_put_records(a, batch, N, T0 + 1, ra, &e), 0);
  for (int i = 0; i < N; i++)
    rb[i] = put1(b, &xs[i], T0 + 1);
  for (int i = 0; i < N; i++) {
    assert_int_equal(ra[i].status, rb[i].status);
    assert_int_equal(ra[i].version, rb[i].version);
    assert_int_equal(ra[i].queued, rb[i].queued);
  }
  assert_int_equal(ra[0].status, STORE_PUT_NEW);
  assert_int_equal(ra[10].status, STORE_PUT_CHANGED);
  assert_int_equal(ra[11].status, STORE_PUT_UNCHANGED);
  assert_int_equal(ra[40].status, STORE_PUT_CHANGED); /* r3 again */
  check_ok(a);
  check_ok(b);
  store_close(a);
  store_close(b);
  static char da[1 << 16], db[1 << 16];
  dump_rows(f->path, da, sizeof da);
  dump_rows(path2, db, sizeof db);
  rm_db(path2);
  assert_string_equal(da, db);
}

/* The content hash is SHA-256, the same through a reused hasher. */
static void test_hash(void **state) {
  (void)state;
  unsigned char a[STORE_HASH_LEN], b[STORE_HASH_LEN];
  /* SHA-256("abc"), FIPS 180-2 appendix B.1 */
  static const unsigned char abc[STORE_HASH_LEN] = {
      0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
      0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
      0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
  assert_int_equal(store_hash("abc", 3, a, NULL), 0);
  assert_memory_equal(a, abc, STORE_HASH_LEN);
  store_hasher *h = NULL;
  assert_int_equal(store_hasher_new(&h, NULL), 0);
  for (int k = 0; k < 3; k++) { /* reuse gives the same, each time */
    assert_int_equal(store_hasher_hash(h, "abc", 3, b, NULL), 0);
    assert_memory_equal(b, abc, STORE_HASH_LEN);
    assert_int_equal(store_hasher_hash(h, "abd", 3, b, NULL), 0);
    assert_memory_not_equal(b, abc, STORE_HASH_LEN);
  }
  assert_int_equal(store_hasher_hash(h, NULL, 1, b, NULL), HVG_EINVAL);
  store_hasher_free(h);
  store_hasher_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hash),
      cmocka_unit_test_setup_teardown(test_batch_same_as_one_by_one, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
      cmocka_unit_test_setup_teardown(test_put_semantics, setup, teardown),
      cmocka_unit_test_setup_teardown(test_batch_10000, setup, teardown),
      cmocka_unit_test_setup_teardown(test_claim_order_and_leases, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_finish_round, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replay_behind_inflight, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_audit_append_only, setup, teardown),
      cmocka_unit_test_setup_teardown(test_referrals_and_cursors, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_consents, setup, teardown),
      cmocka_unit_test_setup_teardown(test_release_leases, setup, teardown),
      cmocka_unit_test_setup_teardown(test_busy, setup, teardown),
      cmocka_unit_test_setup_teardown(test_crash_safety, setup, teardown),
  };
  const char *only = getenv("TEST_STORE_FILTER"); /* e.g. "test_busy" */
  if (only && *only)
    cmocka_set_test_filter(only);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
