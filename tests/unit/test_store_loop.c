/* store (SQLite back end), the closed loop: transactions spanning several
 * calls, hosted FHIR resources (versions, strictly increasing stamps,
 * search), referrals with direction / home visiting status / sent date,
 * transitions and their history, results from partners, the inbox, the
 * program event feed, and the migration of a schema version 2 database.
 * Real SQLite files in a temporary directory made by the test; triggers
 * added behind the interface make writes fail half-way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include "store.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store_fixture.h"

/* ---- fixtures and helpers ---------------------------------------------- */

/* The error of the last call made through IS / OK. */
static hvg_err E;

#define IS(want, call)                                                         \
  do {                                                                         \
    hvg_err_clear(&E);                                                         \
    int rc_ = (call);                                                          \
    if (rc_ != (want))                                                         \
      fail_msg("line %d: %s returned %s, expected %s (%s: %s)", __LINE__,      \
               #call, hvg_err_name(rc_), hvg_err_name(want), E.field, E.msg);  \
  } while (0)
#define OK(call) IS(0, call)

/* String equality where either side may be NULL. */
#define STREQ(got, want) streq_((got), (want), #got, __LINE__)
static void streq_(const char *got, const char *want, const char *what,
                   int line) {
  if (!got && !want)
    return;
  if (!got || !want || strcmp(got, want) != 0)
    fail_msg("line %d: %s is %s%s%s, expected %s%s%s", line, what,
             got ? "\"" : "", got ? got : "NULL", got ? "\"" : "",
             want ? "\"" : "", want ? want : "NULL", want ? "\"" : "");
}

static store *open_busy(const char *path, int busy_ms) {
  store_opts o = {0};
  o.busy_timeout_ms = busy_ms;
  store *st = NULL;
  OK(store_open(&st, path, &o, &E));
  return st;
}

/* Count through a fresh connection: what another process sees. */
static int64_t file_count(const char *path, const char *sql) {
  sqlite3 *db = raw_open(path);
  int64_t v = raw_count(db, sql);
  sqlite3_close(db);
  return v;
}

/* Triggers that make a write fail half-way: a referral created with status
 * "boom" fails at its first transition (after the referral row is in), an
 * inbox batch at the reference "Task/boom" (after the earlier ones). */
static void add_boom_triggers(const char *path) {
  sqlite3 *db = raw_open(path);
  raw_exec(db, "CREATE TRIGGER boom_tr BEFORE INSERT ON referral_transitions"
               " WHEN NEW.to_status = 'boom'"
               " BEGIN SELECT RAISE(ABORT, 'boom'); END;"
               "CREATE TRIGGER boom_inbox BEFORE INSERT ON inbox"
               " WHEN NEW.ref = 'Task/boom'"
               " BEGIN SELECT RAISE(ABORT, 'boom'); END;");
  sqlite3_close(db);
}

/* ---- resource helpers ---------------------------------------------------- */

/* Put r (body defaults to a small JSON) expecting success; the version. */
static int64_t rput(store *st, store_resource r, int64_t expect, int64_t now) {
  if (!r.body) {
    r.body = "{\"resourceType\":\"Task\"}";
    r.body_len = strlen(r.body);
  }
  OK(store_resource_put(st, &r, expect, now, &E));
  return r.version;
}

#define RPUT(st, expect, now, ...)                                             \
  rput((st), (store_resource){__VA_ARGS__}, (expect), (now))

static int64_t stamp_of(store *st, const char *type, const char *id) {
  store_resource g;
  OK(store_resource_get(st, type, id, &g, &E));
  int64_t v = g.updated_ms;
  store_resource_release(&g);
  return v;
}

static int64_t version_of(store *st, const char *type, const char *id) {
  store_resource g;
  OK(store_resource_get(st, type, id, &g, &E));
  int64_t v = g.version;
  store_resource_release(&g);
  return v;
}

/* Search with q, expecting success: the ids of the matches joined with
 * ',' (each is checked to be of q's type) and the total. */
static void find_(store *st, store_resource_query q, size_t max,
                  const char *want, size_t want_total, int line) {
  store_resource out[16];
  char got[512] = "";
  size_t n = 99, total = 999;
  assert_true(max <= 16);
  hvg_err_clear(&E);
  int rc = store_resource_search(st, &q, out, max, &n, &total, &E);
  if (rc)
    fail_msg("line %d: search: %s: %s", line, hvg_err_name(rc), E.msg);
  for (size_t i = 0; i < n; i++) {
    size_t l = strlen(got);
    snprintf(got + l, sizeof got - l, "%s%s", i ? "," : "", out[i].id);
    if (strcmp(out[i].type, q.type) != 0)
      fail_msg("line %d: %s is a %s", line, out[i].id, out[i].type);
    store_resource_release(&out[i]);
  }
  if (strcmp(got, want) != 0)
    fail_msg("line %d: found \"%s\", expected \"%s\"", line, got, want);
  if (total != want_total)
    fail_msg("line %d: total %zu, expected %zu", line, total, want_total);
  /* the same without a total: same rows */
  size_t n2 = 99;
  rc = store_resource_search(st, &q, out, max, &n2, NULL, &E);
  if (rc || n2 != n)
    fail_msg("line %d: without total: %s, %zu rows", line, hvg_err_name(rc),
             n2);
  for (size_t i = 0; i < n2; i++)
    store_resource_release(&out[i]);
}

#define FIND(st, want, total, ...)                                             \
  find_((st), (store_resource_query){__VA_ARGS__}, 16, (want), (total),        \
        __LINE__)
#define FIND_PAGE(st, max, want, total, ...)                                   \
  find_((st), (store_resource_query){__VA_ARGS__}, (max), (want), (total),     \
        __LINE__)

/* ---- outbox helpers (as in test_store.c) --------------------------------- */

typedef struct rec {
  store_record r;
  store_target t[2];
  char bundle[128];
} rec;

static void mkrec(rec *x, const char *type, const char *id, const char *patient,
                  const char *content, const char *partner1,
                  const char *partner2) {
  memset(x, 0, sizeof *x);
  snprintf(
      x->bundle, sizeof x->bundle,
      "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"x\":\"%s\"}",
      content);
  x->r.program = "prog1";
  x->r.record_type = type;
  x->r.record_id = id;
  x->r.patient_key = patient;
  x->r.bundle = x->bundle;
  x->r.bundle_len = strlen(x->bundle);
  assert_int_equal(store_hash(content, strlen(content), x->r.hash, NULL), 0);
  x->t[0].partner = partner1;
  x->t[1].partner = partner2;
  x->r.targets = x->t;
  x->r.n_targets = partner2 ? 2 : 1;
}

static void put_rec(store *st, rec *x, int64_t now) {
  OK(store_put_records(st, &x->r, 1, now, NULL, &E));
}

/* Claim exactly one item of the partner. */
static void claim1(store *st, const char *partner, int64_t now,
                   store_item *it) {
  size_t n = 99;
  OK(store_claim(st, partner, 1, now, 60000, it, &n, &E));
  assert_int_equal(n, 1);
}

/* ---- referral helpers ---------------------------------------------------- */

static void ref_create(store *st, const char *program, const char *id,
                       const char *status, const char *hv, int64_t now) {
  store_referral r = {0};
  r.program = program;
  r.referral_id = id;
  r.status = status;
  r.hv_status = hv;
  r.partner = "p1";
  OK(store_referral_upsert(st, &r, now, &E));
}

static int64_t sent_at(store *st, const char *program, const char *id) {
  store_referral g;
  OK(store_referral_get(st, program, id, &g, &E));
  int64_t v = g.sent_at_ms;
  store_referral_release(&g);
  return v;
}

static size_t history_len(store *st, const char *program, const char *id) {
  store_transition t[16];
  size_t n = 99;
  void *mem = NULL;
  OK(store_referral_history(st, program, id, t, 16, &n, &mem, &E));
  store_referral_history_free(mem);
  return n;
}

/* ---- transactions -------------------------------------------------------- */

/* Several writes of different kinds commit together; another handle and
 * another connection see none of them before the commit and all after. */
static void test_tx_commit_together(void **state) {
  fx *f = *state;
  store *a = open_ok(f->path);
  store *b = open_ok(f->path); /* opened before a's transaction holds it */
  OK(store_tx_begin(a, &E));
  RPUT(a, 0, T0, .type = "Task", .id = "t1", .partner = "p1");
  RPUT(a, 0, T0, .type = "Task", .id = "t2", .partner = "p1");
  ref_create(a, "prog1", "ref-1", "requested", "referred", T0);
  OK(store_referral_transition_add(a, "prog1", "ref-1", "requested", "accepted",
                                   "partner:p1", NULL, T0 + 1, &E));
  OK(store_event_add(a, "prog1", "referral", "ref-1", T0, NULL, &E));
  const char *refs[] = {"Task/t1"};
  OK(store_inbox_add(a, "p1", refs, 1, T0, &E));
  store_result res = {0};
  res.program = "prog1";
  res.partner = "p1";
  res.source_ref = "Observation/1";
  res.kind = "screening";
  res.data = "{}";
  res.data_len = 2;
  OK(store_result_put(a, &res, T0, NULL, &E));
  rec x;
  mkrec(&x, "screening", "s1", "P1", "c", "p1", NULL);
  put_rec(a, &x, T0);

  /* the transaction sees its own writes */
  FIND(a, "t1,t2", 2, .type = "Task");
  store_referral g;
  OK(store_referral_get(a, "prog1", "ref-1", &g, &E));
  STREQ(g.status, "accepted");
  store_referral_release(&g);
  int64_t n = -1;
  OK(store_inbox_count(a, "p1", &n, &E));
  assert_int_equal(n, 1);

  /* nobody else does */
  store_resource r;
  IS(HVG_ENOTFOUND, store_resource_get(b, "Task", "t1", &r, &E));
  FIND(b, "", 0, .type = "Task");
  IS(HVG_ENOTFOUND, store_referral_get(b, "prog1", "ref-1", &g, &E));
  OK(store_inbox_count(b, NULL, &n, &E));
  assert_int_equal(n, 0);
  store_event ev[2];
  size_t ne = 99;
  OK(store_event_list(b, "prog1", 0, 2, ev, &ne, &E));
  assert_int_equal(ne, 0);
  store_result rl[2];
  size_t nr = 99;
  OK(store_result_list(b, "prog1", 0, 0, 2, rl, &nr, &E));
  assert_int_equal(nr, 0);
  assert_int_equal(file_count(f->path, "SELECT count(*) FROM resources"), 0);
  assert_int_equal(file_count(f->path, "SELECT count(*) FROM records"), 0);

  OK(store_tx_end(a, 1, &E));

  /* everything at once after the commit */
  FIND(b, "t1,t2", 2, .type = "Task");
  OK(store_referral_get(b, "prog1", "ref-1", &g, &E));
  STREQ(g.status, "accepted");
  STREQ(g.hv_status, "referred");
  store_referral_release(&g);
  assert_int_equal(history_len(b, "prog1", "ref-1"), 2);
  OK(store_inbox_count(b, NULL, &n, &E));
  assert_int_equal(n, 1);
  OK(store_event_list(b, "prog1", 0, 2, ev, &ne, &E));
  assert_int_equal(ne, 1);
  store_event_release(&ev[0]);
  OK(store_result_list(b, "prog1", 0, 0, 2, rl, &nr, &E));
  assert_int_equal(nr, 1);
  store_result_release(&rl[0]);
  assert_int_equal(file_count(f->path, "SELECT count(*) FROM outbox"), 1);
  check_ok(b);
  store_close(b);
  store_close(a);
}

/* Rollback drops every write since begin; the handle is usable afterwards,
 * both for writes on their own and for a new transaction. */
static void test_tx_rollback(void **state) {
  fx *f = *state;
  store *a = open_ok(f->path);
  store *b = open_ok(f->path);
  RPUT(a, 0, T0, .type = "Task", .id = "keep");
  ref_create(a, "prog1", "ref-keep", "requested", NULL, T0);

  OK(store_tx_begin(a, &E));
  RPUT(a, 0, T0 + 1, .type = "Task", .id = "gone");
  assert_int_equal(RPUT(a, 1, T0 + 1, .type = "Task", .id = "keep"), 2);
  ref_create(a, "prog1", "ref-gone", "requested", NULL, T0 + 1);
  OK(store_referral_transition_add(a, "prog1", "ref-keep", NULL, "accepted",
                                   "partner:p1", NULL, T0 + 1, &E));
  OK(store_event_add(a, "prog1", "referral", "ref-gone", T0 + 1, NULL, &E));
  const char *refs[] = {"Task/1", "Task/2"};
  OK(store_inbox_add(a, "p1", refs, 2, T0 + 1, &E));
  rec x;
  mkrec(&x, "referral", "ref-gone", "P1", "c", "p1", NULL);
  put_rec(a, &x, T0 + 1);
  FIND(a, "gone,keep", 2, .type = "Task"); /* visible inside */
  OK(store_tx_end(a, 0, &E));

  /* all gone, for this handle and the other */
  store *hs[2] = {a, b};
  for (int i = 0; i < 2; i++) {
    store *h = hs[i];
    store_resource r;
    IS(HVG_ENOTFOUND, store_resource_get(h, "Task", "gone", &r, &E));
    assert_int_equal(version_of(h, "Task", "keep"), 1);
    assert_int_equal(stamp_of(h, "Task", "keep"), T0);
    store_referral g;
    IS(HVG_ENOTFOUND, store_referral_get(h, "prog1", "ref-gone", &g, &E));
    OK(store_referral_get(h, "prog1", "ref-keep", &g, &E));
    STREQ(g.status, "requested");
    store_referral_release(&g);
    assert_int_equal(history_len(h, "prog1", "ref-keep"), 1);
    int64_t n = -1;
    OK(store_inbox_count(h, NULL, &n, &E));
    assert_int_equal(n, 0);
  }
  sqlite3 *db = raw_open(f->path);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM events"), 0);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM records"), 0);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM outbox"), 0);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM referrals"), 1);
  sqlite3_close(db);

  /* usable: a write on its own commits at once, b sees it */
  assert_int_equal(RPUT(a, 1, T0 + 2, .type = "Task", .id = "keep"), 2);
  assert_int_equal(version_of(b, "Task", "keep"), 2);
  /* the lock is gone: b can write */
  RPUT(b, 0, T0 + 3, .type = "Task", .id = "from-b");
  /* and a new transaction works */
  OK(store_tx_begin(a, &E));
  RPUT(a, 0, T0 + 4, .type = "Task", .id = "later");
  OK(store_tx_end(a, 1, &E));
  FIND(b, "keep,from-b,later", 3, .type = "Task");
  check_ok(a);
  store_close(b);
  store_close(a);
}

/* A write that fails inside the transaction undoes only its own changes -
 * also changes it had already made when it failed - and the others
 * commit. Outside a transaction such a write changes nothing. */
static void test_tx_failed_write_inside(void **state) {
  fx *f = *state;
  store_close(open_ok(f->path)); /* create the schema */
  add_boom_triggers(f->path);
  store *st = open_ok(f->path);

  OK(store_tx_begin(st, &E));
  RPUT(st, 0, T0, .type = "Task", .id = "t1", .status = "requested");
  store_resource r = {0};
  r.type = "Task";
  r.id = "t1";
  r.status = "stale";
  r.body = "{\"stale\":true}";
  r.body_len = strlen(r.body);
  IS(HVG_ESTATE, store_resource_put(st, &r, 0, T0 + 1, &E)); /* exists */
  IS(HVG_ESTATE, store_resource_put(st, &r, 5, T0 + 1, &E)); /* stale */
  r.id = "t9";
  IS(HVG_ENOTFOUND, store_resource_put(st, &r, 3, T0 + 1, &E));
  r.id = "t2";
  r.body = NULL;
  IS(HVG_EINVAL, store_resource_put(st, &r, -1, T0 + 1, &E));
  ref_create(st, "prog1", "ref-a", "requested", NULL, T0);
  store_referral b = {0};
  b.program = "prog1";
  b.referral_id = "ref-b";
  b.status = "boom"; /* the row goes in, then its transition fails */
  IS(HVG_EIO, store_referral_upsert(st, &b, T0, &E));
  IS(HVG_ENOTFOUND,
     store_referral_get(st, "prog1", "ref-b", &(store_referral){0}, &E));
  IS(HVG_ESTATE,
     store_referral_transition_add(st, "prog1", "ref-a", "x", "accepted",
                                   "partner:p1", NULL, T0 + 1, &E));
  /* Task/1 goes in first; Task/3 would come after the failure */
  const char *bad[] = {"Task/1", "Task/boom", "Task/3"};
  IS(HVG_EIO, store_inbox_add(st, "p1", bad, 3, T0, &E));
  const char *good[] = {"Task/2"};
  OK(store_inbox_add(st, "p1", good, 1, T0, &E));
  int64_t n = -1;
  OK(store_inbox_count(st, "p1", &n, &E));
  assert_int_equal(n, 1);
  rec x;
  mkrec(&x, "screening", "s1", "P1", "c", "p1", NULL);
  x.r.patient_key = NULL;
  IS(HVG_EINVAL, store_put_records(st, &x.r, 1, T0, NULL, &E));
  /* after all that, writes still work in the transaction */
  assert_int_equal(
      RPUT(st, 1, T0 + 2, .type = "Task", .id = "t1", .status = "accepted"), 2);
  OK(store_tx_end(st, 1, &E));

  store_resource g;
  OK(store_resource_get(st, "Task", "t1", &g, &E));
  assert_int_equal(g.version, 2);
  STREQ(g.status, "accepted");
  store_resource_release(&g);
  IS(HVG_ENOTFOUND, store_resource_get(st, "Task", "t2", &g, &E));
  IS(HVG_ENOTFOUND, store_resource_get(st, "Task", "t9", &g, &E));
  store_referral rg;
  OK(store_referral_get(st, "prog1", "ref-a", &rg, &E));
  STREQ(rg.status, "requested");
  store_referral_release(&rg);
  IS(HVG_ENOTFOUND, store_referral_get(st, "prog1", "ref-b", &rg, &E));
  store_inbox_item due[4];
  size_t nd = 99;
  OK(store_inbox_due(st, "p1", T0, due, 4, &nd, &E));
  assert_int_equal(nd, 1);
  assert_string_equal(due[0].ref, "Task/2");
  sqlite3 *db = raw_open(f->path);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM referrals"), 1);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM referral_transitions"),
                   1);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM inbox"), 1);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM resources"), 1);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM records"), 0);

  /* outside a transaction: the failed write leaves nothing either */
  IS(HVG_EIO, store_referral_upsert(st, &b, T0, &E));
  IS(HVG_EIO, store_inbox_add(st, "p1", bad, 3, T0, &E));
  assert_int_equal(raw_count(db, "SELECT count(*) FROM referrals"), 1);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM inbox"), 1);
  sqlite3_close(db);
  check_ok(st);
  store_close(st);
}

/* When the database rolls the whole transaction back itself (I/O error,
 * disk full; here a trigger's RAISE(ROLLBACK)), the writes that follow
 * must not commit on their own: they fail until store_tx_end, which
 * reports it. Then the handle works again. */
static void test_tx_rolled_back_by_database(void **state) {
  fx *f = *state;
  store_close(open_ok(f->path));
  sqlite3 *db = raw_open(f->path);
  raw_exec(db, "CREATE TRIGGER rb BEFORE INSERT ON events"
               " WHEN NEW.kind = 'rollback'"
               " BEGIN SELECT RAISE(ROLLBACK, 'rolled back'); END;");
  sqlite3_close(db);
  store *st = open_ok(f->path);
  OK(store_tx_begin(st, &E));
  RPUT(st, 0, T0, .type = "Task", .id = "t1");
  IS(HVG_EIO, store_event_add(st, "prog1", "rollback", NULL, T0, NULL, &E));
  store_resource r = {0};
  r.type = "Task";
  r.id = "t2";
  r.body = "{}";
  r.body_len = 2;
  IS(HVG_EIO, store_resource_put(st, &r, 0, T0, &E));
  IS(HVG_EIO, store_event_add(st, "prog1", "referral", NULL, T0, NULL, &E));
  const char *refs[] = {"Task/1"};
  IS(HVG_EIO, store_inbox_add(st, "p1", refs, 1, T0, &E));
  IS(HVG_EIO, store_tx_begin(st, &E)); /* no inner one on a lost outer */
  assert_int_equal(store_tx_depth(st), 1);
  IS(HVG_EIO, store_tx_end(st, 1, &E));
  assert_int_equal(store_tx_depth(st), 0);
  assert_int_equal(file_count(f->path, "SELECT count(*) FROM resources"), 0);
  assert_int_equal(file_count(f->path, "SELECT count(*) FROM events"), 0);
  assert_int_equal(file_count(f->path, "SELECT count(*) FROM inbox"), 0);
  /* the handle works again, in and out of transactions */
  RPUT(st, 0, T0, .type = "Task", .id = "t3");
  OK(store_tx_begin(st, &E));
  RPUT(st, 0, T0, .type = "Task", .id = "t4");
  OK(store_tx_end(st, 1, &E));
  FIND(st, "t3,t4", 2, .type = "Task");
  /* ending with a rollback instead is fine too */
  OK(store_tx_begin(st, &E));
  IS(HVG_EIO, store_event_add(st, "prog1", "rollback", NULL, T0, NULL, &E));
  OK(store_tx_end(st, 0, &E));
  check_ok(st);
  store_close(st);
}

/* Nesting: an inner transaction is a savepoint, committed or rolled back
 * on its own, kept or dropped with the outer one; end without begin
 * refused; NULL refused. */
static void test_tx_state_errors(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  IS(HVG_EINVAL, store_tx_begin(NULL, &E));
  IS(HVG_EINVAL, store_tx_end(NULL, 1, &E));
  IS(HVG_ESTATE, store_tx_end(st, 1, &E));
  IS(HVG_ESTATE, store_tx_end(st, 0, &E));
  assert_int_equal(store_tx_depth(st), 0);
  OK(store_tx_begin(st, &E));
  RPUT(st, 0, T0, .type = "Task", .id = "t1");
  OK(store_tx_begin(st, &E)); /* inner: a savepoint */
  assert_int_equal(store_tx_depth(st), 2);
  RPUT(st, 0, T0, .type = "Task", .id = "t2");
  OK(store_tx_end(st, 1, &E)); /* released, not committed yet */
  assert_int_equal(file_count(f->path, "SELECT count(*) FROM resources"), 0);
  OK(store_tx_begin(st, &E));
  RPUT(st, 0, T0, .type = "Task", .id = "t3");
  OK(store_tx_end(st, 0, &E)); /* the inner one rolled back alone */
  FIND(st, "t1,t2", 2, .type = "Task");
  OK(store_tx_end(st, 1, &E));
  IS(HVG_ESTATE, store_tx_end(st, 1, &E));
  assert_int_equal(file_count(f->path, "SELECT count(*) FROM resources"), 2);

  /* the outer rollback drops what inner ones released */
  OK(store_tx_begin(st, &E));
  RPUT(st, 0, T0, .type = "Task", .id = "t4");
  OK(store_tx_begin(st, &E));
  RPUT(st, 0, T0, .type = "Task", .id = "t5");
  OK(store_tx_end(st, 1, &E));
  OK(store_tx_end(st, 0, &E));
  IS(HVG_ESTATE, store_tx_end(st, 0, &E));
  FIND(st, "t1,t2", 2, .type = "Task");
  assert_int_equal(file_count(f->path, "SELECT count(*) FROM resources"), 2);
  /* reads work inside one (the metrics of a group-commit batch) */
  OK(store_tx_begin(st, &E));
  store_partner_stats ps[4];
  size_t nps = 9;
  OK(store_stats(st, T0, ps, 4, &nps, NULL, &E));
  assert_int_equal(nps, 0);
  assert_int_equal(store_tx_depth(st), 1);
  OK(store_tx_end(st, 1, &E));
  /* an empty transaction */
  OK(store_tx_begin(st, &E));
  OK(store_tx_end(st, 1, &E));
  assert_int_equal(store_tx_depth(st), 0);
  store_close(st);
}

/* Two handles on one file: uncommitted writes are invisible to the other,
 * which also cannot write meanwhile (busy), and see them after commit. */
static void test_tx_two_handles(void **state) {
  fx *f = *state;
  store *a = open_ok(f->path);
  store *b = open_busy(f->path, 100);
  OK(store_tx_begin(a, &E));
  RPUT(a, 0, T0, .type = "Task", .id = "t1");
  store_resource r;
  IS(HVG_ENOTFOUND, store_resource_get(b, "Task", "t1", &r, &E));
  FIND(b, "", 0, .type = "Task");
  r = (store_resource){0};
  r.type = "Task";
  r.id = "t2";
  r.body = "{}";
  r.body_len = 2;
  IS(HVG_EIO, store_resource_put(b, &r, 0, T0, &E));
  assert_non_null(strstr(E.msg, "busy"));
  IS(HVG_ESTATE, store_tx_end(b, 1, &E)); /* b has no transaction */
  OK(store_tx_end(a, 1, &E));
  assert_int_equal(version_of(b, "Task", "t1"), 1);
  OK(store_resource_put(b, &r, 0, T0, &E));
  assert_int_equal(r.version, 1);

  /* a rolled back transaction is never seen; both stay usable */
  OK(store_tx_begin(a, &E));
  RPUT(a, 0, T0, .type = "Task", .id = "t3");
  OK(store_tx_end(a, 0, &E));
  IS(HVG_ENOTFOUND, store_resource_get(b, "Task", "t3", &r, &E));
  IS(HVG_ENOTFOUND, store_resource_get(a, "Task", "t3", &r, &E));
  RPUT(a, 0, T0, .type = "Task", .id = "t3");
  RPUT(b, 0, T0, .type = "Task", .id = "t4");
  FIND(a, "t1,t2,t3,t4", 4, .type = "Task");
  FIND(b, "t1,t2,t3,t4", 4, .type = "Task");
  store_close(b);
  store_close(a);
}

/* A process killed inside its transaction leaves nothing of it; what it
 * committed before stays. */
static void test_tx_killed(void **state) {
  fx *f = *state;
  store_close(open_ok(f->path));
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    store *st = NULL;
    if (store_open(&st, f->path, NULL, NULL))
      _exit(2);
    store_resource r = {0};
    r.type = "Task";
    r.body = "{}";
    r.body_len = 2;
    char id[16];
    r.id = id;
    if (store_tx_begin(st, NULL))
      _exit(3);
    for (int i = 0; i < 3; i++) {
      snprintf(id, sizeof id, "c%d", i);
      if (store_resource_put(st, &r, 0, T0, NULL))
        _exit(4);
    }
    if (store_tx_end(st, 1, NULL) || store_tx_begin(st, NULL))
      _exit(5);
    for (int i = 0; i < 3; i++) {
      snprintf(id, sizeof id, "u%d", i);
      if (store_resource_put(st, &r, 0, T0, NULL) ||
          store_event_add(st, "prog1", "referral", id, T0, NULL, NULL))
        _exit(6);
    }
    raise(SIGKILL);
    _exit(7);
  }
  int ws = 0;
  assert_int_equal(waitpid(pid, &ws, 0), pid);
  assert_true(WIFSIGNALED(ws));
  assert_int_equal(WTERMSIG(ws), SIGKILL);
  store *st = open_ok(f->path);
  FIND(st, "c0,c1,c2", 3, .type = "Task");
  store_event ev[1];
  size_t n = 99;
  OK(store_event_list(st, "prog1", 0, 1, ev, &n, &E));
  assert_int_equal(n, 0);
  check_ok(st);
  store_close(st);
}

/* ---- hosted resources: put / get ----------------------------------------- */

static void test_resource_versions(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  store_resource r = {0};
  r.type = "Task";
  r.id = "t1";
  r.status = "requested";
  r.body = "{\"v\":1}";
  r.body_len = strlen(r.body);
  OK(store_resource_put(st, &r, 0, T0, &E));
  assert_int_equal(r.version, 1);
  assert_int_equal(r.updated_ms, T0);

  /* a second create is refused and changes nothing */
  r.body = "{\"v\":\"again\"}";
  r.body_len = strlen(r.body);
  IS(HVG_ESTATE, store_resource_put(st, &r, 0, T0 + 5, &E));
  store_resource g;
  OK(store_resource_get(st, "Task", "t1", &g, &E));
  assert_int_equal(g.version, 1);
  assert_int_equal(g.updated_ms, T0);
  STREQ(g.body, "{\"v\":1}");
  store_resource_release(&g);

  /* replace the current version */
  r.status = "accepted";
  r.body = "{\"v\":2}";
  r.body_len = strlen(r.body);
  OK(store_resource_put(st, &r, 1, T0 + 10, &E));
  assert_int_equal(r.version, 2);
  assert_int_equal(r.updated_ms, T0 + 10);

  /* stale and future versions are refused; nothing changes */
  store_resource s = r;
  s.status = "stale";
  s.body = "{\"v\":\"stale\"}";
  s.body_len = strlen(s.body);
  IS(HVG_ESTATE, store_resource_put(st, &s, 1, T0 + 20, &E));
  IS(HVG_ESTATE, store_resource_put(st, &s, 3, T0 + 20, &E));
  OK(store_resource_get(st, "Task", "t1", &g, &E));
  assert_int_equal(g.version, 2);
  assert_int_equal(g.updated_ms, T0 + 10);
  STREQ(g.status, "accepted");
  STREQ(g.body, "{\"v\":2}");
  store_resource_release(&g);

  /* expect > 0 of a missing resource */
  s.id = "t9";
  IS(HVG_ENOTFOUND, store_resource_put(st, &s, 1, T0 + 20, &E));
  IS(HVG_ENOTFOUND, store_resource_get(st, "Task", "t9", &g, &E));

  /* expect < 0: create, then replace whatever is there */
  OK(store_resource_put(st, &s, -1, T0 + 30, &E));
  assert_int_equal(s.version, 1);
  OK(store_resource_put(st, &s, -1, T0 + 31, &E));
  assert_int_equal(s.version, 2);
  s.id = "t1";
  OK(store_resource_put(st, &s, -7, T0 + 32, &E));
  assert_int_equal(s.version, 3);
  OK(store_resource_get(st, "Task", "t1", &g, &E));
  assert_int_equal(g.version, 3);
  STREQ(g.body, "{\"v\":\"stale\"}");
  store_resource_release(&g);

  /* the key is (type, id) */
  assert_int_equal(RPUT(st, 0, T0, .type = "ServiceRequest", .id = "t1"), 1);
  assert_int_equal(version_of(st, "Task", "t1"), 3);
  assert_int_equal(version_of(st, "ServiceRequest", "t1"), 1);
  IS(HVG_ENOTFOUND, store_resource_get(st, "Observation", "t1", &g, &E));
  sqlite3 *db = raw_open(f->path);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM resources"), 3);
  sqlite3_close(db);
  store_close(st);
}

/* Stamps: now, or one more than the latest in the whole store - when now
 * repeats or goes backwards, across resources and across handles. */
static void test_resource_stamps(void **state) {
  fx *f = *state;
  store *a = open_ok(f->path);
  store *b = open_ok(f->path);
  static const struct {
    int h; /* handle */
    const char *type, *id;
    int64_t now, stamp;
  } steps[] = {
      {0, "Task", "a", T0 + 100, T0 + 100},           /* first: now */
      {0, "Task", "b", T0 + 50, T0 + 101},            /* backwards */
      {0, "Task", "a", T0 + 101, T0 + 102},           /* = the latest */
      {0, "ServiceRequest", "c", T0 + 102, T0 + 103}, /* another type */
      {0, "ServiceRequest", "c", T0 + 103, T0 + 104}, /* same again */
      {0, "Task", "b", T0 + 1000, T0 + 1000},         /* later: now */
      {0, "Task", "a", 0, T0 + 1001},                 /* the epoch */
      {1, "Task", "d", T0, T0 + 1002},                /* other handle */
      {0, "Observation", "e", T0 + 1002, T0 + 1003},
      {1, "Task", "a", T0 + 1003, T0 + 1004},
      {1, "Task", "f", T0 + 5000, T0 + 5000},
      {0, "Task", "g", T0 + 4000, T0 + 5001},
  };
  int64_t last = 0;
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    store_resource r = {0};
    r.type = steps[i].type;
    r.id = steps[i].id;
    r.body = "{}";
    r.body_len = 2;
    OK(store_resource_put(steps[i].h ? b : a, &r, -1, steps[i].now, &E));
    if (r.updated_ms != steps[i].stamp)
      fail_msg("step %zu: stamp T0%+lld, expected T0%+lld", i,
               (long long)(r.updated_ms - T0),
               (long long)(steps[i].stamp - T0));
    assert_true(r.updated_ms > last);
    last = r.updated_ms;
    /* what the put reported is what is stored, for either handle */
    assert_int_equal(stamp_of(steps[i].h ? a : b, r.type, r.id), r.updated_ms);
  }
  /* a refused write does not advance the stamps */
  store_resource r = {0};
  r.type = "Task";
  r.id = "b";
  r.body = "{}";
  r.body_len = 2;
  IS(HVG_ESTATE, store_resource_put(a, &r, 0, T0, &E));
  OK(store_resource_put(a, &r, -1, T0, &E));
  assert_int_equal(r.updated_ms, last + 1);
  store_close(b);
  store_close(a);
}

/* Every column and the body round-trip (body_len bytes only); NULL columns
 * stay NULL; a replace writes every column, so NULL clears one. */
static void test_resource_roundtrip(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  static const char body[] =
      "{\"resourceType\":\"Task\",\"note\":\"\xc3\xa9t\xc3"
      "\xa9 \\\"quoted\\\"\"}TRAILING";
  size_t body_len = strlen(body) - strlen("TRAILING");
  store_resource r = {0};
  r.type = "Task";
  r.id = "task-\xc3\xa9-1";
  r.partner = "partner-1";
  r.program = "prog1";
  r.referral_id = "ref-1";
  r.status = "in-progress";
  r.owner = "Organization/o1";
  r.focus = "ServiceRequest/sr1";
  r.patient = "Patient/k1";
  r.identifier = "urn:ietf:rfc:3986|urn:uuid:1";
  r.body = body;
  r.body_len = body_len;
  OK(store_resource_put(st, &r, 0, T0, &E));
  store_resource g;
  OK(store_resource_get(st, "Task", r.id, &g, &E));
  STREQ(g.type, "Task");
  STREQ(g.id, r.id);
  assert_int_equal(g.version, 1);
  assert_int_equal(g.updated_ms, T0);
  STREQ(g.partner, "partner-1");
  STREQ(g.program, "prog1");
  STREQ(g.referral_id, "ref-1");
  STREQ(g.status, "in-progress");
  STREQ(g.owner, "Organization/o1");
  STREQ(g.focus, "ServiceRequest/sr1");
  STREQ(g.patient, "Patient/k1");
  STREQ(g.identifier, "urn:ietf:rfc:3986|urn:uuid:1");
  assert_int_equal(g.body_len, body_len);
  assert_memory_equal(g.body, body, body_len);
  assert_int_equal(g.body[body_len], '\0');
  assert_non_null(g.mem_);
  store_resource_release(&g);
  assert_null(g.mem_);
  assert_null(g.body);
  store_resource_release(NULL);

  /* replace with only a body: the search columns are cleared */
  store_resource bare = {0};
  bare.type = "Task";
  bare.id = r.id;
  bare.body = "{}";
  bare.body_len = 2;
  OK(store_resource_put(st, &bare, 1, T0 + 1, &E));
  OK(store_resource_get(st, "Task", r.id, &g, &E));
  assert_int_equal(g.version, 2);
  STREQ(g.partner, NULL);
  STREQ(g.program, NULL);
  STREQ(g.referral_id, NULL);
  STREQ(g.status, NULL);
  STREQ(g.owner, NULL);
  STREQ(g.focus, NULL);
  STREQ(g.patient, NULL);
  STREQ(g.identifier, NULL);
  STREQ(g.body, "{}");
  assert_int_equal(g.body_len, 2);
  store_resource_release(&g);
  FIND(st, "", 0, .type = "Task", .partner = "partner-1");
  store_close(st);
}

static void test_resource_einval(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  char id64[65], id65[66];
  memset(id64, 'a', 64);
  id64[64] = '\0';
  memset(id65, 'b', 65);
  id65[65] = '\0';
  store_resource ok = {0};
  ok.type = "Task";
  ok.id = "t1";
  ok.body = "{}";
  ok.body_len = 2;
  store_resource r;
  IS(HVG_EINVAL, store_resource_put(NULL, &ok, 0, T0, &E));
  IS(HVG_EINVAL, store_resource_put(st, NULL, 0, T0, &E));
  r = ok;
  r.type = NULL;
  IS(HVG_EINVAL, store_resource_put(st, &r, 0, T0, &E));
  r.type = "";
  IS(HVG_EINVAL, store_resource_put(st, &r, 0, T0, &E));
  r.type = id65;
  IS(HVG_EINVAL, store_resource_put(st, &r, 0, T0, &E));
  r = ok;
  r.id = NULL;
  IS(HVG_EINVAL, store_resource_put(st, &r, 0, T0, &E));
  r.id = "";
  IS(HVG_EINVAL, store_resource_put(st, &r, -1, T0, &E));
  r.id = id65;
  IS(HVG_EINVAL, store_resource_put(st, &r, -1, T0, &E));
  assert_non_null(strstr(E.field, "id"));
  r = ok;
  r.body = NULL;
  IS(HVG_EINVAL, store_resource_put(st, &r, 0, T0, &E));
  r.body = "{}";
  r.body_len = 0;
  IS(HVG_EINVAL, store_resource_put(st, &r, 0, T0, &E));
  assert_int_equal(file_count(f->path, "SELECT count(*) FROM resources"), 0);
  /* the limits themselves are fine */
  r = ok;
  r.id = id64;
  r.type = id64;
  OK(store_resource_put(st, &r, 0, T0, &E));
  assert_int_equal(version_of(st, id64, id64), 1);
  /* get */
  store_resource g;
  IS(HVG_EINVAL, store_resource_get(NULL, "Task", "t1", &g, &E));
  IS(HVG_EINVAL, store_resource_get(st, NULL, "t1", &g, &E));
  IS(HVG_EINVAL, store_resource_get(st, "Task", NULL, &g, &E));
  IS(HVG_EINVAL, store_resource_get(st, "Task", "t1", NULL, &E));
  IS(HVG_ENOTFOUND, store_resource_get(st, "Task", "t1", &g, &E));
  assert_null(g.mem_);
  store_close(st);
}

/* ---- hosted resources: search ------------------------------------------- */

/* Stamps T0+: t2 20, t3 30, t4 40, t5 50, t6 51, ob1 60, t1 100 (t1 is
 * created first at 10 and replaced last), so stamp order is not id order
 * nor creation order. */
static void search_data(store *st) {
  RPUT(st, 0, T0 + 10, .type = "Task", .id = "t1", .partner = "pA",
       .program = "prog1", .status = "requested", .owner = "Organization/o1",
       .focus = "ServiceRequest/s1", .patient = "Patient/k1",
       .identifier = "sys|1");
  RPUT(st, 0, T0 + 20, .type = "Task", .id = "t2", .partner = "pA",
       .program = "prog1", .status = "accepted", .owner = "Organization/o1",
       .focus = "ServiceRequest/s2", .patient = "Patient/k2",
       .identifier = "sys|2");
  RPUT(st, 0, T0 + 30, .type = "Task", .id = "t3", .partner = "pB",
       .program = "prog1", .status = "requested", .owner = "Organization/o2",
       .focus = "ServiceRequest/s3", .patient = "Patient/k1",
       .identifier = "sys|3");
  RPUT(st, 0, T0 + 40, .type = "Task", .id = "t4", .partner = "pB",
       .program = "prog2", .status = "completed", .owner = "Organization/o2",
       .focus = "ServiceRequest/s4", .patient = "Patient/k3",
       .identifier = "sys|4");
  RPUT(st, 0, T0 + 50, .type = "Task", .id = "t5", .partner = "pA",
       .program = "prog2", .status = "rejected", .owner = "Organization/o1",
       .focus = "ServiceRequest/s5", .patient = "Patient/k1");
  RPUT(st, 0, T0 + 50, .type = "Task", .id = "t6", .partner = "pA",
       .program = "prog1", .status = "requested");
  RPUT(st, 0, T0 + 60, .type = "Observation", .id = "ob1", .partner = "pA",
       .program = "prog1", .status = "final", .patient = "Patient/k1",
       .identifier = "sys|1");
  RPUT(st, 1, T0 + 100, .type = "Task", .id = "t1", .partner = "pA",
       .program = "prog1", .status = "requested", .owner = "Organization/o1",
       .focus = "ServiceRequest/s1", .patient = "Patient/k1",
       .identifier = "sys|1");
  assert_int_equal(stamp_of(st, "Task", "t6"), T0 + 51);
}

static void test_search_filters(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  search_data(st);
  /* type only: every Task in stamp order */
  FIND(st, "t2,t3,t4,t5,t6,t1", 6, .type = "Task");
  FIND(st, "ob1", 1, .type = "Observation");
  FIND(st, "", 0, .type = "Patient");
  /* each filter alone */
  FIND(st, "t2,t5,t6,t1", 4, .type = "Task", .partner = "pA");
  FIND(st, "t3,t4", 2, .type = "Task", .partner = "pB");
  FIND(st, "", 0, .type = "Task", .partner = "pC");
  FIND(st, "t2,t3,t6,t1", 4, .type = "Task", .program = "prog1");
  FIND(st, "t4,t5", 2, .type = "Task", .program = "prog2");
  FIND(st, "t2,t5,t1", 3, .type = "Task", .owner = "Organization/o1");
  FIND(st, "t3,t4", 2, .type = "Task", .owner = "Organization/o2");
  FIND(st, "", 0, .type = "Task", .owner = "Practitioner/o1");
  FIND(st, "", 0, .type = "Task", .owner = "Organization/o");
  FIND(st, "t3", 1, .type = "Task", .focus = "ServiceRequest/s3");
  FIND(st, "t3,t5,t1", 3, .type = "Task", .patient = "Patient/k1");
  FIND(st, "t2", 1, .type = "Task", .patient = "Patient/k2");
  FIND(st, "ob1", 1, .type = "Observation", .patient = "Patient/k1");
  FIND(st, "t1", 1, .type = "Task", .identifier = "sys|1");
  FIND(st, "", 0, .type = "Task", .identifier = "1"); /* a token: exact */
  FIND(st, "", 0, .type = "Task", .identifier = "sys|");
  /* status lists of 1..N values */
  FIND(st, "t3,t6,t1", 3, .type = "Task", .status = {"requested"},
       .n_status = 1);
  FIND(st, "t2,t3,t6,t1", 4, .type = "Task",
       .status = {"requested", "accepted"}, .n_status = 2);
  FIND(st, "t2,t3,t4,t6,t1", 5, .type = "Task",
       .status = {"accepted", "completed", "requested"}, .n_status = 3);
  FIND(st, "t2,t3,t4,t5,t6,t1", 6, .type = "Task",
       .status = {"rejected", "accepted", "completed", "requested"},
       .n_status = 4);
  FIND(st, "", 0, .type = "Task", .status = {"draft"}, .n_status = 1);
  /* only the first n_status values count */
  FIND(st, "t4", 1, .type = "Task", .status = {"completed", "requested"},
       .n_status = 1);
  /* the four stamp bounds */
  FIND(st, "t6,t1", 2, .type = "Task", .updated_gt_ms = T0 + 50);
  FIND(st, "t5,t6,t1", 3, .type = "Task", .updated_ge_ms = T0 + 50);
  FIND(st, "t2,t3", 2, .type = "Task", .updated_lt_ms = T0 + 40);
  FIND(st, "t2,t3,t4", 3, .type = "Task", .updated_le_ms = T0 + 40);
  FIND(st, "t3,t4,t5,t6", 4, .type = "Task", .updated_ge_ms = T0 + 30,
       .updated_le_ms = T0 + 51);
  FIND(st, "t4,t5", 2, .type = "Task", .updated_gt_ms = T0 + 30,
       .updated_lt_ms = T0 + 51);
  FIND(st, "", 0, .type = "Task", .updated_gt_ms = T0 + 51,
       .updated_lt_ms = T0 + 100);
  FIND(st, "t1", 1, .type = "Task", .updated_ge_ms = T0 + 100,
       .updated_le_ms = T0 + 100);
  FIND(st, "", 0, .type = "Task", .updated_gt_ms = T0 + 100);
  /* combined */
  FIND(st, "t6,t1", 2, .type = "Task", .partner = "pA", .program = "prog1",
       .status = {"requested"}, .n_status = 1);
  FIND(st, "t5,t1", 2, .type = "Task", .partner = "pA",
       .patient = "Patient/k1");
  FIND(st, "t4", 1, .type = "Task", .partner = "pB", .owner = "Organization/o2",
       .status = {"completed", "rejected"}, .n_status = 2);
  FIND(st, "t3", 1, .type = "Task", .program = "prog1", .patient = "Patient/k1",
       .updated_lt_ms = T0 + 100);
  FIND(st, "t1", 1, .type = "Task", .partner = "pA", .program = "prog1",
       .status = {"accepted", "requested"}, .n_status = 2,
       .owner = "Organization/o1", .focus = "ServiceRequest/s1",
       .patient = "Patient/k1", .identifier = "sys|1", .updated_gt_ms = T0 + 51,
       .updated_ge_ms = T0 + 100, .updated_lt_ms = T0 + 101,
       .updated_le_ms = T0 + 100);
  /* ... and each of those conditions alone can exclude it */
  FIND(st, "", 0, .type = "Task", .partner = "pB", .program = "prog1",
       .focus = "ServiceRequest/s1");
  FIND(st, "", 0, .type = "Task", .partner = "pA", .program = "prog2",
       .focus = "ServiceRequest/s1");
  FIND(st, "", 0, .type = "Task", .focus = "ServiceRequest/s1",
       .status = {"accepted"}, .n_status = 1);
  FIND(st, "", 0, .type = "Task", .focus = "ServiceRequest/s1",
       .owner = "Organization/o2");
  FIND(st, "", 0, .type = "Task", .focus = "ServiceRequest/s1",
       .patient = "Patient/k2");
  FIND(st, "", 0, .type = "Task", .focus = "ServiceRequest/s1",
       .identifier = "sys|2");
  FIND(st, "", 0, .type = "Task", .focus = "ServiceRequest/s1",
       .updated_lt_ms = T0 + 100);
  FIND(st, "", 0, .type = "Task", .focus = "ServiceRequest/s2", .partner = "pA",
       .updated_gt_ms = T0 + 20);
  store_close(st);
}

/* A reference given as the id alone (no '/') matches the id part of the
 * stored "Type/id" - what the CapabilityStatement of /fhir promises for
 * owner, focus and patient ("Type/id, or the id alone"). */
static void test_search_reference_id_alone(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  search_data(st);
  RPUT(st, 0, T0 + 200, .type = "Task", .id = "t7",
       .owner = "Organization/xo1", /* ends in "o1", not in "/o1" */
       .focus = "ServiceRequest/s1/x", .patient = "k1");
  FIND(st, "t2,t5,t1", 3, .type = "Task", .owner = "o1");
  FIND(st, "t3,t4", 2, .type = "Task", .owner = "o2");
  FIND(st, "t7", 1, .type = "Task", .owner = "xo1");
  FIND(st, "", 0, .type = "Task", .owner = "1");
  FIND(st, "t1", 1, .type = "Task", .focus = "s1");
  FIND(st, "t3,t5,t1,t7", 4, .type = "Task", .patient = "k1");
  FIND(st, "t3,t5,t1", 3, .type = "Task", .patient = "Patient/k1");
  FIND(st, "ob1", 1, .type = "Observation", .patient = "k1");
  FIND(st, "", 0, .type = "Task", .patient = "k");
  FIND(st, "", 0, .type = "Task", .patient = "%1"); /* no LIKE patterns */
  FIND(st, "", 0, .type = "Task", .patient = "_1");
  FIND(st, "t5,t1", 2, .type = "Task", .partner = "pA", .owner = "o1",
       .patient = "k1");
  /* identifier is a token, not a reference */
  FIND(st, "", 0, .type = "Task", .identifier = "1");
  store_close(st);
}

static void test_search_paging_and_errors(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  search_data(st);
  FIND_PAGE(st, 2, "t2,t3", 6, .type = "Task");
  FIND_PAGE(st, 2, "t4,t5", 6, .type = "Task", .offset = 2);
  FIND_PAGE(st, 2, "t6,t1", 6, .type = "Task", .offset = 4);
  FIND_PAGE(st, 2, "", 6, .type = "Task", .offset = 6);
  FIND_PAGE(st, 10, "t1", 6, .type = "Task", .offset = 5);
  FIND_PAGE(st, 1, "t6", 3, .type = "Task", .offset = 1,
            .status = {"requested"}, .n_status = 1);
  FIND_PAGE(st, 2, "", 6, .type = "Task", .offset = 1000);
  FIND_PAGE(st, 0, "", 6, .type = "Task");
  /* max 0 and no output array: just the total */
  store_resource_query q = {0};
  q.type = "Task";
  size_t n = 99, total = 0;
  OK(store_resource_search(st, &q, NULL, 0, &n, &total, &E));
  assert_int_equal(n, 0);
  assert_int_equal(total, 6);

  /* the same stamp (only possible behind the interface): then by id */
  sqlite3 *db = raw_open(f->path);
  char sql[128];
  snprintf(sql, sizeof sql,
           "UPDATE resources SET updated_at = %lld WHERE id IN ('t1','t4')",
           (long long)(T0 + 20));
  raw_exec(db, sql);
  sqlite3_close(db);
  FIND(st, "t1,t2,t4,t3,t5,t6", 6, .type = "Task");

  /* bad queries */
  store_resource out[2];
  q.n_status = STORE_QUERY_MAX_VALUES + 1;
  n = 99;
  total = 99;
  IS(HVG_EINVAL, store_resource_search(st, &q, out, 2, &n, &total, &E));
  assert_int_equal(n, 0);
  assert_int_equal(total, 0);
  q.n_status = STORE_QUERY_MAX_VALUES; /* the most is fine */
  for (size_t i = 0; i < STORE_QUERY_MAX_VALUES; i++)
    q.status[i] = i == 7 ? "completed" : "nothing";
  OK(store_resource_search(st, &q, out, 2, &n, &total, &E));
  assert_int_equal(n, 1);
  assert_int_equal(total, 1);
  STREQ(out[0].id, "t4");
  store_resource_release(&out[0]);
  q.n_status = 0;
  IS(HVG_EINVAL, store_resource_search(NULL, &q, out, 2, &n, &total, &E));
  IS(HVG_EINVAL, store_resource_search(st, NULL, out, 2, &n, &total, &E));
  IS(HVG_EINVAL, store_resource_search(st, &q, NULL, 2, &n, &total, &E));
  IS(HVG_EINVAL, store_resource_search(st, &q, out, 2, NULL, &total, &E));
  q.type = NULL;
  IS(HVG_EINVAL, store_resource_search(st, &q, out, 2, &n, &total, &E));
  store_close(st);
}

/* ---- referrals ------------------------------------------------------------
 */

static void test_referral_direction_and_hv_status(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  store_referral r = {0};
  r.program = "prog1";
  r.referral_id = "ref-1";
  r.partner = "p1";
  r.status = "requested";
  r.hv_status = "referred";
  OK(store_referral_upsert(st, &r, T0, &E));
  store_referral g;
  OK(store_referral_get(st, "prog1", "ref-1", &g, &E));
  STREQ(g.direction, "outbound"); /* the default */
  STREQ(g.hv_status, "referred");
  STREQ(g.status, "requested");
  STREQ(g.partner, "p1");
  STREQ(g.task_id, NULL);
  STREQ(g.data, NULL);
  assert_int_equal(g.sent_at_ms, 0);
  assert_int_equal(g.created_at_ms, T0);
  assert_int_equal(g.updated_at_ms, T0);
  assert_true(g.id > 0);
  int64_t id1 = g.id;
  store_referral_release(&g);
  assert_null(g.mem_);
  store_referral_release(NULL);

  /* an update: direction and status never change through it, NULL keeps */
  store_referral u = {0};
  u.program = "prog1";
  u.referral_id = "ref-1";
  u.direction = "inbound";
  u.status = "completed";
  u.task_id = "task-1";
  u.data = "{\"k\":1}";
  u.data_len = 7;
  OK(store_referral_upsert(st, &u, T0 + 5, &E));
  OK(store_referral_get(st, "prog1", "ref-1", &g, &E));
  STREQ(g.direction, "outbound");
  STREQ(g.status, "requested");
  STREQ(g.hv_status, "referred");
  STREQ(g.partner, "p1");
  STREQ(g.task_id, "task-1");
  STREQ(g.data, "{\"k\":1}");
  assert_int_equal(g.data_len, 7);
  assert_int_equal(g.created_at_ms, T0);
  assert_int_equal(g.updated_at_ms, T0 + 5);
  assert_int_equal(g.id, id1);
  store_referral_release(&g);
  assert_int_equal(history_len(st, "prog1", "ref-1"), 1);

  u = (store_referral){0};
  u.program = "prog1";
  u.referral_id = "ref-1";
  u.hv_status = "enrolled";
  u.partner = "p2";
  OK(store_referral_upsert(st, &u, T0 + 6, &E));
  OK(store_referral_get(st, "prog1", "ref-1", &g, &E));
  STREQ(g.hv_status, "enrolled");
  STREQ(g.partner, "p2");
  STREQ(g.task_id, "task-1");
  STREQ(g.data, "{\"k\":1}");
  store_referral_release(&g);

  /* transitions: hv_status NULL keeps it, a value replaces it */
  store_transition t = {0};
  t.at_ms = T0 + 10;
  t.from_status = "requested";
  t.to_status = "accepted";
  t.actor = "partner:p2";
  t.source = "poll";
  OK(store_referral_transition(st, "prog1", "ref-1", &t, &E));
  OK(store_referral_get(st, "prog1", "ref-1", &g, &E));
  STREQ(g.status, "accepted");
  STREQ(g.hv_status, "enrolled");
  assert_int_equal(g.updated_at_ms, T0 + 10);
  store_referral_release(&g);
  t = (store_transition){0};
  t.at_ms = T0 + 20;
  t.to_status = "in-progress";
  t.hv_status = "engaged";
  t.actor = "partner:p2";
  t.source = "push";
  OK(store_referral_transition(st, "prog1", "ref-1", &t, &E));
  OK(store_referral_get(st, "prog1", "ref-1", &g, &E));
  STREQ(g.status, "in-progress");
  STREQ(g.hv_status, "engaged");
  STREQ(g.direction, "outbound");
  store_referral_release(&g);

  /* an inbound referral stays inbound */
  r.referral_id = "ref-2";
  r.direction = "inbound";
  r.hv_status = NULL;
  OK(store_referral_upsert(st, &r, T0, &E));
  u = (store_referral){0};
  u.program = "prog1";
  u.referral_id = "ref-2";
  u.direction = "outbound";
  OK(store_referral_upsert(st, &u, T0 + 1, &E));
  OK(store_referral_get(st, "prog1", "ref-2", &g, &E));
  STREQ(g.direction, "inbound");
  STREQ(g.hv_status, NULL);
  store_referral_release(&g);

  /* the same referral id in another program is another referral */
  ref_create(st, "prog2", "ref-1", "draft", NULL, T0);
  OK(store_referral_get(st, "prog2", "ref-1", &g, &E));
  STREQ(g.status, "draft");
  STREQ(g.hv_status, NULL);
  store_referral_release(&g);
  OK(store_referral_get(st, "prog1", "ref-1", &g, &E));
  STREQ(g.status, "in-progress");
  store_referral_release(&g);

  /* bad input */
  IS(HVG_EINVAL, store_referral_upsert(NULL, &r, T0, &E));
  IS(HVG_EINVAL, store_referral_upsert(st, NULL, T0, &E));
  u = (store_referral){0};
  u.referral_id = "ref-9";
  u.status = "requested";
  IS(HVG_EINVAL, store_referral_upsert(st, &u, T0, &E));
  u.program = "prog1";
  u.referral_id = "";
  IS(HVG_EINVAL, store_referral_upsert(st, &u, T0, &E));
  u.referral_id = "ref-9";
  u.status = NULL; /* creating needs a status */
  IS(HVG_EINVAL, store_referral_upsert(st, &u, T0, &E));
  IS(HVG_ENOTFOUND, store_referral_get(st, "prog1", "ref-9", &g, &E));
  IS(HVG_EINVAL, store_referral_get(st, NULL, "ref-1", &g, &E));
  IS(HVG_EINVAL, store_referral_get(st, "prog1", "ref-1", NULL, &E));
  store_close(st);
}

/* from_status is compare-and-set: another handle moved it first. */
static void test_referral_transition_cas(void **state) {
  fx *f = *state;
  store *a = open_ok(f->path);
  store *b = open_ok(f->path);
  ref_create(a, "prog1", "ref-1", "requested", "referred", T0);
  store_transition t = {0};
  t.at_ms = T0 + 1;
  t.from_status = "requested";
  t.to_status = "accepted";
  t.hv_status = "engaged";
  t.actor = "partner:p1";
  t.source = "push";
  OK(store_referral_transition(b, "prog1", "ref-1", &t, &E));
  /* a still believes it is requested */
  t.at_ms = T0 + 2;
  t.to_status = "rejected";
  t.hv_status = "declined";
  t.actor = "program:prog1";
  IS(HVG_ESTATE, store_referral_transition(a, "prog1", "ref-1", &t, &E));
  store_referral g;
  OK(store_referral_get(a, "prog1", "ref-1", &g, &E));
  STREQ(g.status, "accepted");
  STREQ(g.hv_status, "engaged");
  assert_int_equal(g.updated_at_ms, T0 + 1);
  store_referral_release(&g);
  assert_int_equal(history_len(a, "prog1", "ref-1"), 2);
  /* the right expectation passes */
  t.from_status = "accepted";
  OK(store_referral_transition(a, "prog1", "ref-1", &t, &E));
  /* without an expectation always */
  t.from_status = NULL;
  t.to_status = "cancelled";
  t.hv_status = NULL;
  t.at_ms = T0 + 3;
  OK(store_referral_transition(b, "prog1", "ref-1", &t, &E));
  OK(store_referral_get(a, "prog1", "ref-1", &g, &E));
  STREQ(g.status, "cancelled");
  STREQ(g.hv_status, "declined");
  store_referral_release(&g);
  assert_int_equal(history_len(b, "prog1", "ref-1"), 4);
  /* the same for the issue-3 function */
  IS(HVG_ESTATE,
     store_referral_transition_add(a, "prog1", "ref-1", "accepted", "completed",
                                   "partner:p1", NULL, T0 + 4, &E));
  assert_int_equal(history_len(b, "prog1", "ref-1"), 4);

  /* errors */
  t.to_status = "accepted";
  IS(HVG_ENOTFOUND, store_referral_transition(a, "prog1", "nope", &t, &E));
  IS(HVG_ENOTFOUND, store_referral_transition(a, "prog2", "ref-1", &t, &E));
  IS(HVG_EINVAL, store_referral_transition(a, "prog1", "ref-1", NULL, &E));
  IS(HVG_EINVAL, store_referral_transition(NULL, "prog1", "ref-1", &t, &E));
  IS(HVG_EINVAL, store_referral_transition(a, NULL, "ref-1", &t, &E));
  IS(HVG_EINVAL, store_referral_transition(a, "prog1", "", &t, &E));
  t.actor = NULL;
  IS(HVG_EINVAL, store_referral_transition(a, "prog1", "ref-1", &t, &E));
  t.actor = "partner:p1";
  t.to_status = NULL;
  IS(HVG_EINVAL, store_referral_transition(a, "prog1", "ref-1", &t, &E));
  t.to_status = "";
  IS(HVG_EINVAL, store_referral_transition(a, "prog1", "ref-1", &t, &E));
  assert_int_equal(history_len(b, "prog1", "ref-1"), 4);
  store_close(b);
  store_close(a);
}

static void test_referral_history(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  ref_create(st, "prog1", "ref-1", "requested", "referred", T0);
  OK(store_referral_transition_add(st, "prog1", "ref-1", "requested",
                                   "accepted", "partner:p1", "seen", T0 + 10,
                                   &E));
  store_transition t = {0};
  t.at_ms = T0 + 20;
  t.from_status = "accepted";
  t.to_status = "rejected";
  t.hv_status = "declined";
  t.actor = "partner:p1";
  t.source = "subscription";
  t.detail = "family moved";
  OK(store_referral_transition(st, "prog1", "ref-1", &t, &E));
  t.at_ms = T0 + 5; /* recorded later with an earlier time: still last */
  t.from_status = NULL;
  t.to_status = "cancelled";
  t.hv_status = NULL;
  t.actor = "program:prog1";
  t.source = "export";
  t.detail = NULL;
  OK(store_referral_transition(st, "prog1", "ref-1", &t, &E));
  ref_create(st, "prog1", "ref-2", "draft", NULL, T0);

  store_transition h[8];
  size_t n = 99;
  void *mem = NULL;
  OK(store_referral_history(st, "prog1", "ref-1", h, 8, &n, &mem, &E));
  assert_int_equal(n, 4);
  assert_non_null(mem);
  static const struct {
    int64_t at;
    const char *from, *to, *hv, *actor, *source, *detail;
  } want[] = {
      {T0, NULL, "requested", "referred", "store", "create", "created"},
      {T0 + 10, "requested", "accepted", NULL, "partner:p1", NULL, "seen"},
      {T0 + 20, "accepted", "rejected", "declined", "partner:p1",
       "subscription", "family moved"},
      {T0 + 5, "rejected", "cancelled", NULL, "program:prog1", "export", NULL},
  };
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(h[i].at_ms, want[i].at);
    STREQ(h[i].from_status, want[i].from);
    STREQ(h[i].to_status, want[i].to);
    STREQ(h[i].hv_status, want[i].hv);
    STREQ(h[i].actor, want[i].actor);
    STREQ(h[i].source, want[i].source);
    STREQ(h[i].detail, want[i].detail);
  }
  /* the strings stay valid across other calls until freed */
  ref_create(st, "prog1", "ref-3", "requested", NULL, T0);
  STREQ(h[2].detail, "family moved");
  store_referral_history_free(mem);

  /* fewer than there are: the oldest */
  OK(store_referral_history(st, "prog1", "ref-1", h, 2, &n, &mem, &E));
  assert_int_equal(n, 2);
  STREQ(h[0].to_status, "requested");
  STREQ(h[1].to_status, "accepted");
  store_referral_history_free(mem);
  OK(store_referral_history(st, "prog1", "ref-1", NULL, 0, &n, &mem, &E));
  assert_int_equal(n, 0);
  store_referral_history_free(mem);
  store_referral_history_free(NULL);
  /* another referral's history is its own */
  OK(store_referral_history(st, "prog1", "ref-2", h, 8, &n, &mem, &E));
  assert_int_equal(n, 1);
  STREQ(h[0].to_status, "draft");
  STREQ(h[0].from_status, NULL);
  STREQ(h[0].hv_status, NULL);
  store_referral_history_free(mem);

  mem = (void *)&n;
  IS(HVG_ENOTFOUND,
     store_referral_history(st, "prog1", "nope", h, 8, &n, &mem, &E));
  assert_null(mem);
  assert_int_equal(n, 0);
  IS(HVG_EINVAL,
     store_referral_history(st, "prog1", "ref-1", h, 8, &n, NULL, &E));
  IS(HVG_EINVAL,
     store_referral_history(st, "prog1", "ref-1", h, 8, NULL, &mem, &E));
  IS(HVG_EINVAL,
     store_referral_history(st, "prog1", "ref-1", NULL, 8, &n, &mem, &E));
  IS(HVG_EINVAL, store_referral_history(st, NULL, "ref-1", h, 8, &n, &mem, &E));
  store_close(st);
}

static void test_referral_list(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  static const char *const ids[] = {"ref-a", "ref-b", "ref-c", "ref-d",
                                    "ref-e"};
  for (int i = 0; i < 5; i++) {
    ref_create(st, "prog1", ids[i], "requested", NULL, T0 + i);
    if (i == 2)
      ref_create(st, "prog2", "ref-x", "requested", NULL, T0 + i);
  }
  /* page by id */
  store_referral out[3];
  size_t n = 99;
  int64_t after = 0, last_id = 0;
  char got[128] = "";
  for (int page = 0; page < 4; page++) {
    OK(store_referral_list(st, "prog1", 0, after, 2, out, &n, &E));
    assert_int_equal(n, page < 2 ? 2 : page == 2 ? 1 : 0);
    for (size_t i = 0; i < n; i++) {
      assert_true(out[i].id > last_id);
      last_id = out[i].id;
      STREQ(out[i].program, "prog1");
      STREQ(out[i].direction, "outbound");
      size_t l = strlen(got);
      snprintf(got + l, sizeof got - l, "%s ", out[i].referral_id);
      after = out[i].id;
      store_referral_release(&out[i]);
    }
  }
  assert_string_equal(got, "ref-a ref-b ref-c ref-d ref-e ");

  /* since_ms: updated at or after */
  OK(store_referral_list(st, "prog1", T0 + 3, 0, 3, out, &n, &E));
  assert_int_equal(n, 2);
  STREQ(out[0].referral_id, "ref-d");
  STREQ(out[1].referral_id, "ref-e");
  store_referral_release(&out[0]);
  store_referral_release(&out[1]);
  /* a transition and an update move a referral into the window; the
   * order stays by id */
  OK(store_referral_transition_add(st, "prog1", "ref-b", NULL, "accepted",
                                   "partner:p1", NULL, T0 + 10, &E));
  store_referral u = {0};
  u.program = "prog1";
  u.referral_id = "ref-a";
  u.task_id = "task-a";
  OK(store_referral_upsert(st, &u, T0 + 11, &E));
  OK(store_referral_list(st, "prog1", T0 + 3, 0, 3, out, &n, &E));
  assert_int_equal(n, 3);
  STREQ(out[0].referral_id, "ref-a");
  STREQ(out[0].task_id, "task-a");
  STREQ(out[1].referral_id, "ref-b");
  STREQ(out[1].status, "accepted");
  STREQ(out[2].referral_id, "ref-d");
  int64_t after_b = out[1].id;
  for (size_t i = 0; i < n; i++)
    store_referral_release(&out[i]);
  OK(store_referral_list(st, "prog1", T0 + 3, after_b, 3, out, &n, &E));
  assert_int_equal(n, 2);
  STREQ(out[0].referral_id, "ref-d");
  STREQ(out[1].referral_id, "ref-e");
  store_referral_release(&out[0]);
  store_referral_release(&out[1]);
  OK(store_referral_list(st, "prog1", T0 + 12, 0, 3, out, &n, &E));
  assert_int_equal(n, 0);
  /* per program */
  OK(store_referral_list(st, "prog2", 0, 0, 3, out, &n, &E));
  assert_int_equal(n, 1);
  STREQ(out[0].referral_id, "ref-x");
  store_referral_release(&out[0]);
  OK(store_referral_list(st, "prog3", 0, 0, 3, out, &n, &E));
  assert_int_equal(n, 0);
  OK(store_referral_list(st, "prog1", 0, 0, 0, NULL, &n, &E));
  assert_int_equal(n, 0);
  IS(HVG_EINVAL, store_referral_list(st, NULL, 0, 0, 3, out, &n, &E));
  IS(HVG_EINVAL, store_referral_list(st, "prog1", 0, 0, 3, NULL, &n, &E));
  IS(HVG_EINVAL, store_referral_list(st, "prog1", 0, 0, 3, out, NULL, &E));
  store_close(st);
}

/* sent_at: the first delivery of an outbox item of record type "referral"
 * (program + record id = the referral's key) sets it, once. */
static void test_referral_sent_at(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  ref_create(st, "prog1", "ref-1", "requested", NULL, T0);
  ref_create(st, "prog1", "ref-2", "requested", NULL, T0);
  ref_create(st, "prog1", "ref-3", "requested", NULL, T0);
  ref_create(st, "prog2", "ref-1", "requested", NULL, T0);

  /* a retry is not a delivery; the ack is */
  rec a;
  mkrec(&a, "referral", "ref-1", "P1", "a1", "p1", NULL);
  put_rec(st, &a, T0);
  store_item it[2];
  claim1(st, "p1", T0 + 1, &it[0]);
  OK(store_retry(st, &it[0], T0 + 2, "HTTP 503", T0 + 1, &E));
  store_items_release(it, 1);
  assert_int_equal(sent_at(st, "prog1", "ref-1"), 0);
  claim1(st, "p1", T0 + 3, &it[0]);
  OK(store_ack(st, &it[0], NULL, 0, NULL, T0 + 4, &E));
  store_items_release(it, 1);
  assert_int_equal(sent_at(st, "prog1", "ref-1"), T0 + 4);
  assert_int_equal(sent_at(st, "prog2", "ref-1"), 0); /* other program */
  assert_int_equal(sent_at(st, "prog1", "ref-2"), 0);

  /* a later version delivered later does not move it */
  mkrec(&a, "referral", "ref-1", "P1", "a2", "p1", NULL);
  put_rec(st, &a, T0 + 10);
  claim1(st, "p1", T0 + 11, &it[0]);
  assert_int_equal(it[0].version, 2);
  OK(store_ack(st, &it[0], NULL, 0, NULL, T0 + 12, &E));
  store_items_release(it, 1);
  assert_int_equal(sent_at(st, "prog1", "ref-1"), T0 + 4);

  /* a screening with the same record id is not the referral */
  rec s;
  mkrec(&s, "screening", "ref-2", "P2", "s", "p1", NULL);
  put_rec(st, &s, T0 + 20);
  claim1(st, "p1", T0 + 21, &it[0]);
  OK(store_ack(st, &it[0], NULL, 0, NULL, T0 + 22, &E));
  store_items_release(it, 1);
  assert_int_equal(sent_at(st, "prog1", "ref-2"), 0);

  /* store_finish: delivered to one partner, retried for another */
  rec b;
  mkrec(&b, "referral", "ref-2", "P3", "b", "p1", "p2");
  put_rec(st, &b, T0 + 30);
  claim1(st, "p1", T0 + 31, &it[0]);
  claim1(st, "p2", T0 + 31, &it[1]);
  store_outcome o[2];
  memset(o, 0, sizeof o);
  o[0].item = &it[0];
  o[0].kind = STORE_RETRY;
  o[0].next_attempt_ms = T0 + 100;
  o[1].item = &it[1];
  o[1].kind = STORE_DELIVERED;
  OK(store_finish(st, o, 2, T0 + 32, &E));
  assert_int_equal(o[0].result, 0);
  assert_int_equal(o[1].result, 0);
  store_items_release(it, 2);
  assert_int_equal(sent_at(st, "prog1", "ref-2"), T0 + 32);
  claim1(st, "p1", T0 + 100, &it[0]);
  memset(o, 0, sizeof o);
  o[0].item = &it[0];
  o[0].kind = STORE_DELIVERED;
  OK(store_finish(st, o, 1, T0 + 101, &E));
  store_items_release(it, 1);
  assert_int_equal(sent_at(st, "prog1", "ref-2"), T0 + 32);

  /* a dead letter is not a delivery */
  rec c;
  mkrec(&c, "referral", "ref-3", "P4", "c", "p1", NULL);
  put_rec(st, &c, T0 + 40);
  claim1(st, "p1", T0 + 41, &it[0]);
  OK(store_dead(st, &it[0], 422, NULL, 0, "invalid", T0 + 42, &E));
  store_items_release(it, 1);
  assert_int_equal(sent_at(st, "prog1", "ref-3"), 0);

  /* a referral record the tracker does not know is delivered all the same */
  rec d;
  mkrec(&d, "referral", "ref-unknown", "P5", "d", "p1", NULL);
  put_rec(st, &d, T0 + 50);
  claim1(st, "p1", T0 + 51, &it[0]);
  OK(store_ack(st, &it[0], NULL, 0, NULL, T0 + 52, &E));
  store_items_release(it, 1);
  store_referral g;
  IS(HVG_ENOTFOUND, store_referral_get(st, "prog1", "ref-unknown", &g, &E));

  /* the sent date is in the list too */
  store_referral out[4];
  size_t n = 0;
  OK(store_referral_list(st, "prog1", 0, 0, 4, out, &n, &E));
  assert_int_equal(n, 3);
  assert_int_equal(out[0].sent_at_ms, T0 + 4);
  assert_int_equal(out[1].sent_at_ms, T0 + 32);
  assert_int_equal(out[2].sent_at_ms, 0);
  for (size_t i = 0; i < n; i++)
    store_referral_release(&out[i]);
  check_ok(st);
  store_close(st);
}

/* ---- results ----------------------------------------------------------------
 */

static store_result mkresult(const char *partner, const char *source,
                             const char *child, const char *instrument,
                             const char *date, const char *data) {
  store_result r = {0};
  r.program = "prog1";
  r.partner = partner;
  r.source_ref = source;
  r.kind = "screening";
  r.child_id = child;
  r.instrument = instrument;
  r.date = date;
  r.data = data;
  r.data_len = data ? strlen(data) : 0;
  return r;
}

static int result_put(store *st, store_result r, int64_t now) {
  int changed = -1;
  OK(store_result_put(st, &r, now, &changed, &E));
  return changed;
}

static void test_results_put(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  store_result r =
      mkresult("pA", "Observation/1", "c1", "asq", "2024-01-10", "{\"s\":1}");
  assert_int_equal(result_put(st, r, T0), 1);
  store_result out[4];
  size_t n = 0;
  OK(store_result_list(st, "prog1", 0, 0, 4, out, &n, &E));
  assert_int_equal(n, 1);
  int64_t id = out[0].id;
  assert_true(id > 0);
  STREQ(out[0].program, "prog1");
  STREQ(out[0].partner, "pA");
  STREQ(out[0].source_ref, "Observation/1");
  STREQ(out[0].kind, "screening");
  STREQ(out[0].child_id, "c1");
  STREQ(out[0].instrument, "asq");
  STREQ(out[0].date, "2024-01-10");
  STREQ(out[0].data, "{\"s\":1}");
  assert_int_equal(out[0].data_len, 7);
  assert_int_equal(out[0].created_at_ms, T0);
  assert_int_equal(out[0].updated_at_ms, T0);
  store_result_release(&out[0]);
  assert_null(out[0].mem_);
  store_result_release(NULL);

  /* the same data again: unchanged, nothing moves */
  assert_int_equal(result_put(st, r, T0 + 5), 0);
  OK(store_result_list(st, "prog1", 0, 0, 4, out, &n, &E));
  assert_int_equal(n, 1);
  assert_int_equal(out[0].updated_at_ms, T0);
  store_result_release(&out[0]);

  /* new data for the same source: replaced in place */
  r = mkresult("pA", "Observation/1", "c1", "asq", "2024-02-01", "{\"s\":2}");
  r.kind = "visit";
  assert_int_equal(result_put(st, r, T0 + 10), 1);
  OK(store_result_list(st, "prog1", 0, 0, 4, out, &n, &E));
  assert_int_equal(n, 1);
  assert_int_equal(out[0].id, id);
  STREQ(out[0].data, "{\"s\":2}");
  STREQ(out[0].date, "2024-02-01");
  STREQ(out[0].kind, "visit");
  assert_int_equal(out[0].created_at_ms, T0);
  assert_int_equal(out[0].updated_at_ms, T0 + 10);
  store_result_release(&out[0]);

  /* the key is (program, partner, source_ref) */
  r = mkresult("pB", "Observation/1", "c1", "asq", "2024-02-01", "{\"s\":2}");
  assert_int_equal(result_put(st, r, T0 + 20), 1);
  r = mkresult("pA", "Observation/2", "c1", "asq", "2024-02-01", "{\"s\":2}");
  assert_int_equal(result_put(st, r, T0 + 21), 1);
  r = mkresult("pA", "Observation/1", "c1", "asq", "2024-02-01", "{\"s\":2}");
  r.program = "prog2";
  assert_int_equal(result_put(st, r, T0 + 22), 1);
  assert_int_equal(file_count(f->path,
                              "SELECT count(*) FROM results WHERE program = "
                              "'prog1'"),
                   3);
  assert_int_equal(file_count(f->path, "SELECT count(*) FROM results"), 4);

  /* required fields; *changed is 0 on error and nothing is stored */
  const store_result ok =
      mkresult("pA", "Observation/9", NULL, NULL, NULL, "{}");
  char long_partner[STORE_PARTNER_MAX + 2];
  memset(long_partner, 'p', sizeof long_partner - 1);
  long_partner[sizeof long_partner - 1] = '\0';
  for (int i = 0; i < 10; i++) {
    store_result b = ok;
    switch (i) {
    case 0: b.program = NULL; break;
    case 1: b.program = ""; break;
    case 2: b.partner = NULL; break;
    case 3: b.partner = long_partner; break;
    case 4: b.source_ref = NULL; break;
    case 5: b.kind = NULL; break;
    case 6: b.kind = "a-kind-name-longer-than-32-bytes!"; break;
    case 7: b.data = NULL; break;
    case 8: b.data_len = 0; break;
    default: b.source_ref = ""; break;
    }
    int changed = -1;
    IS(HVG_EINVAL, store_result_put(st, &b, T0, &changed, &E));
    assert_int_equal(changed, 0);
  }
  IS(HVG_EINVAL, store_result_put(NULL, &ok, T0, NULL, &E));
  IS(HVG_EINVAL, store_result_put(st, NULL, T0, NULL, &E));
  assert_int_equal(file_count(f->path, "SELECT count(*) FROM results"), 4);
  /* optional fields may be NULL; changed may be NULL */
  OK(store_result_put(st, &ok, T0 + 30, NULL, &E));
  assert_int_equal(file_count(f->path, "SELECT count(*) FROM results"), 5);
  store_close(st);
}

static void test_results_list_and_latest(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  /* c1/asq in no date order; noise around it */
  result_put(st, mkresult("pA", "Obs/1", "c1", "asq", "2024-01-10", "{1}"), T0);
  result_put(st, mkresult("pA", "Obs/2", "c1", "asq", "2024-03-05", "{2}"),
             T0 + 10);
  result_put(st, mkresult("pB", "Obs/3", "c1", "asq", "2023-12-01", "{3}"),
             T0 + 20);
  result_put(st, mkresult("pA", "Obs/4", "c1", "mchat", "2025-01-01", "{4}"),
             T0 + 30);
  result_put(st, mkresult("pA", "Obs/5", "c2", "asq", "2025-01-01", "{5}"),
             T0 + 40);
  store_result other =
      mkresult("pA", "Obs/6", "c1", "asq", "2026-01-01", "{6}");
  other.program = "prog2";
  result_put(st, other, T0 + 50);

  store_result g;
  OK(store_result_latest(st, "prog1", "c1", "asq", &g, &E));
  STREQ(g.source_ref, "Obs/2");
  STREQ(g.date, "2024-03-05");
  STREQ(g.data, "{2}");
  store_result_release(&g);
  OK(store_result_latest(st, "prog1", "c1", "mchat", &g, &E));
  STREQ(g.source_ref, "Obs/4");
  store_result_release(&g);
  OK(store_result_latest(st, "prog2", "c1", "asq", &g, &E));
  STREQ(g.source_ref, "Obs/6");
  store_result_release(&g);
  /* a newer date replaces the latest */
  result_put(st, mkresult("pB", "Obs/3", "c1", "asq", "2024-03-06", "{3b}"),
             T0 + 60);
  OK(store_result_latest(st, "prog1", "c1", "asq", &g, &E));
  STREQ(g.source_ref, "Obs/3");
  STREQ(g.partner, "pB");
  store_result_release(&g);
  IS(HVG_ENOTFOUND, store_result_latest(st, "prog1", "c9", "asq", &g, &E));
  IS(HVG_ENOTFOUND, store_result_latest(st, "prog1", "c1", "pedsql", &g, &E));
  IS(HVG_ENOTFOUND, store_result_latest(st, "prog3", "c1", "asq", &g, &E));
  IS(HVG_EINVAL, store_result_latest(st, NULL, "c1", "asq", &g, &E));
  IS(HVG_EINVAL, store_result_latest(st, "prog1", NULL, "asq", &g, &E));
  IS(HVG_EINVAL, store_result_latest(st, "prog1", "c1", NULL, &g, &E));
  IS(HVG_EINVAL, store_result_latest(st, "prog1", "c1", "asq", NULL, &E));

  /* list: paging by id, since_ms on the update time */
  store_result out[3];
  size_t n = 99;
  int64_t after = 0;
  char got[128] = "";
  for (int page = 0; page < 3; page++) {
    OK(store_result_list(st, "prog1", 0, after, 2, out, &n, &E));
    assert_int_equal(n, page < 2 ? 2 : 1);
    for (size_t i = 0; i < n; i++) {
      assert_true(out[i].id > after);
      after = out[i].id;
      size_t l = strlen(got);
      snprintf(got + l, sizeof got - l, "%s ", out[i].source_ref);
      store_result_release(&out[i]);
    }
  }
  assert_string_equal(got, "Obs/1 Obs/2 Obs/3 Obs/4 Obs/5 ");
  OK(store_result_list(st, "prog1", 0, after, 2, out, &n, &E));
  assert_int_equal(n, 0);
  OK(store_result_list(st, "prog1", T0 + 30, 0, 3, out, &n, &E));
  assert_int_equal(n, 3); /* Obs/3 (moved to T0+60), Obs/4, Obs/5 */
  STREQ(out[0].source_ref, "Obs/3");
  STREQ(out[1].source_ref, "Obs/4");
  STREQ(out[2].source_ref, "Obs/5");
  for (size_t i = 0; i < n; i++)
    store_result_release(&out[i]);
  OK(store_result_list(st, "prog1", T0 + 61, 0, 3, out, &n, &E));
  assert_int_equal(n, 0);
  OK(store_result_list(st, "prog2", 0, 0, 3, out, &n, &E));
  assert_int_equal(n, 1);
  store_result_release(&out[0]);
  IS(HVG_EINVAL, store_result_list(st, NULL, 0, 0, 3, out, &n, &E));
  IS(HVG_EINVAL, store_result_list(st, "prog1", 0, 0, 3, NULL, &n, &E));
  IS(HVG_EINVAL, store_result_list(st, "prog1", 0, 0, 3, out, NULL, &E));
  store_close(st);
}

/* ---- inbox ----------------------------------------------------------------
 */

/* The due references of the partner joined with ' ' (with attempts). */
static const char *due_(store *st, const char *partner, int64_t now,
                        size_t max) {
  static char buf[256];
  store_inbox_item it[8];
  size_t n = 99;
  assert_true(max <= 8);
  OK(store_inbox_due(st, partner, now, it, max, &n, &E));
  buf[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    size_t l = strlen(buf);
    snprintf(buf + l, sizeof buf - l, "%s%s#%d", i ? " " : "", it[i].ref,
             it[i].attempts);
  }
  return buf;
}

static int64_t inbox_count(store *st, const char *partner) {
  int64_t n = -1;
  OK(store_inbox_count(st, partner, &n, &E));
  return n;
}

static void test_inbox(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  const char *r1[] = {"Task/1", "Task/2", "Task/1"}; /* a repeat inside */
  OK(store_inbox_add(st, "pA", r1, 3, T0, &E));
  const char *r2[] = {"Task/3"};
  OK(store_inbox_add(st, "pA", r2, 1, T0 - 5, &E));
  const char *r3[] = {"Task/1"};
  OK(store_inbox_add(st, "pB", r3, 1, T0 + 100, &E));
  OK(store_inbox_add(st, "pB", NULL, 0, T0, &E));
  assert_int_equal(inbox_count(st, "pA"), 3);
  assert_int_equal(inbox_count(st, "pB"), 1);
  assert_int_equal(inbox_count(st, "pC"), 0);
  assert_int_equal(inbox_count(st, NULL), 4);

  /* due: due_at reached, earliest first, then by reference */
  assert_string_equal(due_(st, "pA", T0 - 6, 8), "");
  assert_string_equal(due_(st, "pA", T0 - 5, 8), "Task/3#0");
  assert_string_equal(due_(st, "pA", T0, 8), "Task/3#0 Task/1#0 Task/2#0");
  assert_string_equal(due_(st, "pA", T0, 2), "Task/3#0 Task/1#0");
  assert_string_equal(due_(st, "pA", T0, 0), "");
  assert_string_equal(due_(st, "pB", T0, 8), "");
  assert_string_equal(due_(st, "pB", T0 + 100, 8), "Task/1#0");

  /* a failed fetch: due again later, attempts counted, reason kept */
  OK(store_inbox_done(st, "pA", "Task/1", T0 + 50, "HTTP 503", T0 + 1, &E));
  assert_string_equal(due_(st, "pA", T0 + 49, 8), "Task/3#0 Task/2#0");
  assert_string_equal(due_(st, "pA", T0 + 50, 8), "Task/3#0 Task/2#0 Task/1#1");
  assert_int_equal(
      file_count(f->path, "SELECT count(*) FROM inbox WHERE partner = 'pA'"
                          " AND ref = 'Task/1' AND last_error = 'HTTP 503'"),
      1);
  /* a repeat while pending changes nothing (not due earlier) */
  OK(store_inbox_add(st, "pA", r3, 1, T0 + 2, &E));
  assert_string_equal(due_(st, "pA", T0 + 49, 8), "Task/3#0 Task/2#0");
  assert_int_equal(inbox_count(st, "pA"), 3);
  OK(store_inbox_done(st, "pA", "Task/1", T0 + 60, NULL, T0 + 50, &E));
  assert_string_equal(due_(st, "pA", T0 + 60, 8), "Task/3#0 Task/2#0 Task/1#2");
  /* pB's entry of the same reference is its own */
  assert_string_equal(due_(st, "pB", T0 + 100, 8), "Task/1#0");

  /* done: removed; the same reference can come again, fresh */
  OK(store_inbox_done(st, "pA", "Task/3", 0, NULL, T0 + 60, &E));
  assert_int_equal(inbox_count(st, "pA"), 2);
  assert_int_equal(inbox_count(st, NULL), 3);
  assert_string_equal(due_(st, "pA", T0 + 60, 8), "Task/2#0 Task/1#2");
  OK(store_inbox_add(st, "pA", r2, 1, T0 + 70, &E));
  assert_string_equal(due_(st, "pA", T0 + 70, 8), "Task/2#0 Task/1#2 Task/3#0");
  OK(store_inbox_done(st, "pA", "Task/1", 0, NULL, T0 + 70, &E));
  assert_string_equal(due_(st, "pA", T0 + 70, 8), "Task/2#0 Task/3#0");
  /* done of something unknown: nothing */
  OK(store_inbox_done(st, "pA", "Task/404", 0, NULL, T0, &E));
  OK(store_inbox_done(st, "pC", "Task/2", T0 + 1, NULL, T0, &E));
  assert_int_equal(inbox_count(st, NULL), 3);

  /* bad input stores nothing, also of a batch with one bad reference */
  char long_ref[STORE_KEY_MAX + 2];
  memset(long_ref, 'r', sizeof long_ref - 1);
  long_ref[sizeof long_ref - 1] = '\0';
  const char *bad1[] = {"Task/7", ""};
  const char *bad2[] = {"Task/7", NULL};
  const char *bad3[] = {"Task/7", long_ref};
  IS(HVG_EINVAL, store_inbox_add(st, "pA", bad1, 2, T0, &E));
  IS(HVG_EINVAL, store_inbox_add(st, "pA", bad2, 2, T0, &E));
  IS(HVG_EINVAL, store_inbox_add(st, "pA", bad3, 2, T0, &E));
  IS(HVG_EINVAL, store_inbox_add(st, NULL, r2, 1, T0, &E));
  IS(HVG_EINVAL, store_inbox_add(st, "", r2, 1, T0, &E));
  IS(HVG_EINVAL, store_inbox_add(st, "pA", NULL, 1, T0, &E));
  IS(HVG_EINVAL, store_inbox_add(NULL, "pA", r2, 1, T0, &E));
  assert_int_equal(inbox_count(st, NULL), 3);
  /* the longest reference fits through due */
  const char *lr[] = {long_ref + 1};
  OK(store_inbox_add(st, "pD", lr, 1, T0, &E));
  store_inbox_item it[1];
  size_t n = 0;
  OK(store_inbox_due(st, "pD", T0, it, 1, &n, &E));
  assert_int_equal(n, 1);
  assert_string_equal(it[0].ref, long_ref + 1);
  IS(HVG_EINVAL, store_inbox_due(st, NULL, T0, it, 1, &n, &E));
  IS(HVG_EINVAL, store_inbox_due(st, "pA", T0, NULL, 1, &n, &E));
  IS(HVG_EINVAL, store_inbox_due(st, "pA", T0, it, 1, NULL, &E));
  IS(HVG_EINVAL, store_inbox_done(st, NULL, "Task/2", 0, NULL, T0, &E));
  IS(HVG_EINVAL, store_inbox_done(st, "pA", NULL, 0, NULL, T0, &E));
  IS(HVG_EINVAL, store_inbox_count(st, NULL, NULL, &E));
  int64_t c = -1;
  IS(HVG_EINVAL, store_inbox_count(NULL, NULL, &c, &E));
  store_close(st);
}

/* ---- events -----------------------------------------------------------------
 */

static void test_events(void **state) {
  fx *f = *state;
  store *st = open_ok(f->path);
  int64_t id[5];
  OK(store_event_add(st, "prog1", "referral", "ref-1", T0, &id[0], &E));
  OK(store_event_add(st, "prog2", "result", "Observation/1", T0 + 1, &id[1],
                     &E));
  OK(store_event_add(st, "prog1", "result", "Observation/2", T0 + 2, &id[2],
                     &E));
  OK(store_event_add(st, "prog1", "referral", NULL, T0 + 3, &id[3], &E));
  OK(store_event_add(st, "prog1", "referral", "ref-1", T0 + 1, NULL, &E));
  for (int i = 1; i < 4; i++)
    assert_true(id[i] > id[i - 1]);

  store_event ev[8];
  size_t n = 99;
  OK(store_event_list(st, "prog1", 0, 8, ev, &n, &E));
  assert_int_equal(n, 4);
  assert_int_equal(ev[0].id, id[0]);
  assert_int_equal(ev[0].at_ms, T0);
  STREQ(ev[0].kind, "referral");
  STREQ(ev[0].ref, "ref-1");
  assert_int_equal(ev[1].id, id[2]);
  assert_int_equal(ev[1].at_ms, T0 + 2);
  STREQ(ev[1].kind, "result");
  STREQ(ev[1].ref, "Observation/2");
  assert_int_equal(ev[2].id, id[3]);
  STREQ(ev[2].ref, NULL);
  assert_true(ev[3].id > id[3]);
  assert_int_equal(ev[3].at_ms, T0 + 1); /* id order, not time order */
  for (size_t i = 0; i < n; i++)
    store_event_release(&ev[i]);
  assert_null(ev[0].mem_);
  store_event_release(NULL);

  /* paging by after_id */
  OK(store_event_list(st, "prog1", id[0], 2, ev, &n, &E));
  assert_int_equal(n, 2);
  assert_int_equal(ev[0].id, id[2]);
  assert_int_equal(ev[1].id, id[3]);
  store_event_release(&ev[0]);
  store_event_release(&ev[1]);
  OK(store_event_list(st, "prog1", id[3], 2, ev, &n, &E));
  assert_int_equal(n, 1);
  store_event_release(&ev[0]);
  OK(store_event_list(st, "prog1", id[3] + 1, 2, ev, &n, &E));
  assert_int_equal(n, 0);
  OK(store_event_list(st, "prog1", 0, 1, ev, &n, &E));
  assert_int_equal(n, 1);
  assert_int_equal(ev[0].id, id[0]);
  store_event_release(&ev[0]);
  /* per program */
  OK(store_event_list(st, "prog2", 0, 8, ev, &n, &E));
  assert_int_equal(n, 1);
  assert_int_equal(ev[0].id, id[1]);
  STREQ(ev[0].ref, "Observation/1");
  store_event_release(&ev[0]);
  OK(store_event_list(st, "prog3", 0, 8, ev, &n, &E));
  assert_int_equal(n, 0);

  int64_t x = -1;
  IS(HVG_EINVAL, store_event_add(st, NULL, "referral", "r", T0, &x, &E));
  IS(HVG_EINVAL, store_event_add(st, "prog1", NULL, "r", T0, &x, &E));
  IS(HVG_EINVAL, store_event_add(st, "prog1", "", "r", T0, &x, &E));
  IS(HVG_EINVAL,
     store_event_add(st, "prog1", "a-kind-longer-than-thirty-two-bytes", "r",
                     T0, &x, &E));
  IS(HVG_EINVAL, store_event_add(NULL, "prog1", "referral", "r", T0, &x, &E));
  assert_int_equal(x, -1);
  IS(HVG_EINVAL, store_event_list(st, NULL, 0, 8, ev, &n, &E));
  IS(HVG_EINVAL, store_event_list(st, "prog1", 0, 8, NULL, &n, &E));
  IS(HVG_EINVAL, store_event_list(st, "prog1", 0, 8, ev, NULL, &E));
  assert_int_equal(file_count(f->path, "SELECT count(*) FROM events"), 5);
  store_close(st);
}

/* ---- migration from schema version 2 ----------------------------------------
 */

/* Schema versions 1 and 2 as released (copied from store_sqlite.c; a
 * released migration step is never edited). */
static const char V1_SQL[] =
    "CREATE TABLE records ("
    " id INTEGER PRIMARY KEY,"
    " program TEXT NOT NULL, record_type TEXT NOT NULL,"
    " record_id TEXT NOT NULL,"
    " version INTEGER NOT NULL CHECK (version >= 1),"
    " hash BLOB NOT NULL CHECK (length(hash) = 32),"
    " patient_key TEXT NOT NULL,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    " UNIQUE (program, record_type, record_id));"
    "CREATE TABLE record_versions ("
    " id INTEGER PRIMARY KEY,"
    " record INTEGER NOT NULL REFERENCES records(id),"
    " version INTEGER NOT NULL,"
    " hash BLOB NOT NULL,"
    " sensitivity TEXT,"
    " bundle TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " UNIQUE (record, version));"
    "CREATE TABLE outbox ("
    " id INTEGER PRIMARY KEY,"
    " version_id INTEGER NOT NULL REFERENCES record_versions(id),"
    " record INTEGER NOT NULL REFERENCES records(id),"
    " partner TEXT NOT NULL,"
    " patient_key TEXT NOT NULL,"
    " consent_id TEXT,"
    " state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 4),"
    " head INTEGER NOT NULL DEFAULT 0 CHECK (head IN (0, 1)),"
    " due_at INTEGER,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " claims INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
    "CREATE INDEX outbox_due ON outbox(partner, due_at) WHERE head = 1;"
    "CREATE INDEX outbox_lane ON outbox(partner, patient_key, id)"
    " WHERE state < 2;"
    "CREATE INDEX outbox_state ON outbox(partner, state, id) WHERE state < 3;"
    "CREATE INDEX outbox_record ON outbox(record, partner);"
    "CREATE INDEX outbox_dead ON outbox(id) WHERE state = 2;"
    "CREATE INDEX outbox_head ON outbox(partner, patient_key) WHERE head = 1;"
    "CREATE TABLE dead_letters ("
    " outbox_id INTEGER PRIMARY KEY REFERENCES outbox(id),"
    " http_status INTEGER, outcome TEXT, hint TEXT,"
    " at INTEGER NOT NULL);"
    "CREATE TABLE server_ids ("
    " partner TEXT NOT NULL, resource_type TEXT NOT NULL,"
    " identifier TEXT NOT NULL, server_id TEXT NOT NULL, version_id TEXT,"
    " record INTEGER NOT NULL REFERENCES records(id),"
    " updated_at INTEGER NOT NULL,"
    " PRIMARY KEY (partner, resource_type, identifier)) WITHOUT ROWID;"
    "CREATE TABLE partner_stats ("
    " partner TEXT PRIMARY KEY,"
    " delivered INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE TABLE audit ("
    " id INTEGER PRIMARY KEY,"
    " at INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,"
    " partner TEXT, program TEXT, record_type TEXT, record_id TEXT,"
    " resources TEXT, consent_id TEXT, detail TEXT);"
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;"
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;"
    /* INSERT OR REPLACE deletes without a DELETE trigger unless
     * recursive_triggers is on in that connection: refuse reused ids */
    "CREATE TRIGGER audit_no_replace BEFORE INSERT ON audit"
    " WHEN EXISTS (SELECT 1 FROM audit WHERE id = NEW.id)"
    " BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;"
    "CREATE TABLE referrals ("
    " id INTEGER PRIMARY KEY,"
    " program TEXT NOT NULL, referral_id TEXT NOT NULL,"
    " partner TEXT, status TEXT NOT NULL, task_id TEXT, data TEXT,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    " UNIQUE (program, referral_id));"
    "CREATE TABLE referral_transitions ("
    " id INTEGER PRIMARY KEY,"
    " referral INTEGER NOT NULL REFERENCES referrals(id),"
    " at INTEGER NOT NULL, from_status TEXT, to_status TEXT NOT NULL,"
    " actor TEXT NOT NULL, detail TEXT);"
    "CREATE INDEX referral_transitions_ref"
    " ON referral_transitions(referral, id);"
    "CREATE TRIGGER referral_transitions_no_update"
    " BEFORE UPDATE ON referral_transitions"
    " BEGIN SELECT RAISE(ABORT, 'transitions are append-only'); END;"
    "CREATE TRIGGER referral_transitions_no_delete"
    " BEFORE DELETE ON referral_transitions"
    " BEGIN SELECT RAISE(ABORT, 'transitions are append-only'); END;"
    "CREATE TRIGGER referral_transitions_no_replace"
    " BEFORE INSERT ON referral_transitions"
    " WHEN EXISTS (SELECT 1 FROM referral_transitions WHERE id = NEW.id)"
    " BEGIN SELECT RAISE(ABORT, 'transitions are append-only'); END;"
    "CREATE TABLE partner_cursor ("
    " partner TEXT PRIMARY KEY, cursor TEXT NOT NULL,"
    " updated_at INTEGER NOT NULL) WITHOUT ROWID;";

/* Version 2: consents given by families, to decide what may be queued. */
static const char V2_SQL[] =
    "CREATE TABLE consents ("
    " program TEXT NOT NULL, consent_id TEXT NOT NULL,"
    " family_id TEXT, caregiver_id TEXT, organization_id TEXT NOT NULL,"
    " scope TEXT, granted TEXT NOT NULL, expires TEXT, revoked TEXT,"
    " updated_at INTEGER NOT NULL,"
    " PRIMARY KEY (program, consent_id)) WITHOUT ROWID;"
    "CREATE INDEX consents_family ON consents(program, family_id,"
    " organization_id);"
    "CREATE INDEX consents_caregiver ON consents(program, caregiver_id,"
    " organization_id);";

/* The schema of a database as text, for comparing two. */
static void schema_text(const char *path, char *out, size_t cap) {
  sqlite3 *db = raw_open(path);
  sqlite3_stmt *s = NULL;
  assert_int_equal(
      sqlite3_prepare_v2(db,
                         "SELECT type, name, sql FROM sqlite_schema"
                         " ORDER BY type, name",
                         -1, &s, NULL),
      SQLITE_OK);
  size_t len = 0;
  out[0] = '\0';
  while (sqlite3_step(s) == SQLITE_ROW) {
    const char *v[3];
    for (int i = 0; i < 3; i++) {
      v[i] = (const char *)sqlite3_column_text(s, i);
      if (!v[i])
        v[i] = "";
    }
    int w = snprintf(out + len, cap - len, "%s %s: %s\n", v[0], v[1], v[2]);
    assert_true(w > 0 && (size_t)w < cap - len);
    len += (size_t)w;
  }
  sqlite3_finalize(s);
  sqlite3_close(db);
}

static void test_migration_from_v2(void **state) {
  fx *f = *state;
  /* a version 2 database, as an hvgate of issue 3 left it */
  sqlite3 *db = raw_open(f->path);
  raw_exec(db, "PRAGMA journal_mode=WAL");
  raw_exec(db, "CREATE TABLE IF NOT EXISTS schema_version ("
               " version INTEGER PRIMARY KEY,"
               " applied_at INTEGER NOT NULL)");
  raw_exec(db, V1_SQL);
  raw_exec(db, V2_SQL);
  raw_exec(db, "INSERT INTO schema_version VALUES (1, 1), (2, 2);"
               "INSERT INTO referrals(id, program, referral_id, partner,"
               " status, task_id, data, created_at, updated_at)"
               " VALUES (7, 'prog1', 'ref-old', 'p1', 'accepted', 'task-9',"
               " '{\"a\":1}', 1000, 2000);"
               "INSERT INTO referral_transitions(referral, at, from_status,"
               " to_status, actor, detail)"
               " VALUES (7, 1000, NULL, 'requested', 'store', 'created'),"
               " (7, 2000, 'requested', 'accepted', 'partner:p1', NULL);"
               "INSERT INTO consents(program, consent_id, organization_id,"
               " granted, updated_at) VALUES ('prog1', 'c1', 'O1',"
               " '2024-01-01', 1)");
  sqlite3_close(db);

  store *st = open_ok(f->path);
  int v = 0;
  OK(store_schema_version(st, &v, &E));
  assert_int_equal(v, 4);
  assert_int_equal(store_schema_version_supported(), 4);
  check_ok(st);
  /* the referral is kept, with the defaults of the new columns */
  store_referral g;
  OK(store_referral_get(st, "prog1", "ref-old", &g, &E));
  assert_int_equal(g.id, 7);
  STREQ(g.direction, "outbound");
  STREQ(g.hv_status, NULL);
  STREQ(g.status, "accepted");
  STREQ(g.partner, "p1");
  STREQ(g.task_id, "task-9");
  STREQ(g.data, "{\"a\":1}");
  assert_int_equal(g.created_at_ms, 1000);
  assert_int_equal(g.updated_at_ms, 2000);
  assert_int_equal(g.sent_at_ms, 0);
  store_referral_release(&g);
  store_transition h[4];
  size_t n = 0;
  void *mem = NULL;
  OK(store_referral_history(st, "prog1", "ref-old", h, 4, &n, &mem, &E));
  assert_int_equal(n, 2);
  STREQ(h[1].to_status, "accepted");
  STREQ(h[1].hv_status, NULL);
  STREQ(h[1].source, NULL);
  store_referral_history_free(mem);
  assert_int_equal(store_consent_active(st, "prog1", "c1", "2024-06-01", &E),
                   1);
  /* and the loop works on it */
  store_transition t = {0};
  t.at_ms = 3000;
  t.from_status = "accepted";
  t.to_status = "completed";
  t.hv_status = "enrolled";
  t.actor = "partner:p1";
  t.source = "poll";
  OK(store_referral_transition(st, "prog1", "ref-old", &t, &E));
  OK(store_referral_get(st, "prog1", "ref-old", &g, &E));
  STREQ(g.hv_status, "enrolled");
  store_referral_release(&g);
  RPUT(st, 0, T0, .type = "Task", .id = "t1");
  OK(store_event_add(st, "prog1", "referral", "ref-old", T0, NULL, &E));
  store_close(st);
  db = raw_open(f->path);
  assert_int_equal(raw_count(db, "SELECT count(*) FROM schema_version"), 4);
  assert_int_equal(raw_count(db, "SELECT max(version) FROM schema_version"), 4);
  sqlite3_close(db);
  /* reopening does nothing more */
  st = open_ok(f->path);
  OK(store_schema_version(st, &v, &E));
  assert_int_equal(v, 4);
  store_close(st);

  /* the migrated schema is the one a new store gets */
  char fresh_path[128];
  snprintf(fresh_path, sizeof fresh_path, "%s/fresh.db", f->dir);
  store_close(open_ok(fresh_path));
  static char a[32768], b[32768];
  schema_text(f->path, a, sizeof a);
  schema_text(fresh_path, b, sizeof b);
  rm_db(fresh_path);
  assert_string_equal(a, b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_tx_commit_together, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tx_rollback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tx_failed_write_inside, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_tx_rolled_back_by_database, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_tx_state_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tx_two_handles, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tx_killed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_resource_versions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_resource_stamps, setup, teardown),
      cmocka_unit_test_setup_teardown(test_resource_roundtrip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_resource_einval, setup, teardown),
      cmocka_unit_test_setup_teardown(test_search_filters, setup, teardown),
      cmocka_unit_test_setup_teardown(test_search_reference_id_alone, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_search_paging_and_errors, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_referral_direction_and_hv_status,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_referral_transition_cas, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_referral_history, setup, teardown),
      cmocka_unit_test_setup_teardown(test_referral_list, setup, teardown),
      cmocka_unit_test_setup_teardown(test_referral_sent_at, setup, teardown),
      cmocka_unit_test_setup_teardown(test_results_put, setup, teardown),
      cmocka_unit_test_setup_teardown(test_results_list_and_latest, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_inbox, setup, teardown),
      cmocka_unit_test_setup_teardown(test_events, setup, teardown),
      cmocka_unit_test_setup_teardown(test_migration_from_v2, setup, teardown),
  };
  const char *only = getenv("TEST_STORE_FILTER"); /* e.g. "test_inbox" */
  if (only && *only)
    cmocka_set_test_filter(only);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
