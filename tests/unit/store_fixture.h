/* What the store's unit tests (test_store.c, test_store_loop.c) share: a
 * fresh database file in its own temporary directory per test (cmocka
 * setup/teardown), a checked open, and raw SQLite access for looking at
 * what the store wrote. Include after cmocka.h, store.h and sqlite3.h. */
#ifndef HVG_TEST_STORE_FIXTURE_H
#define HVG_TEST_STORE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* a fixed "now" for deterministic tests */
#define T0 ((int64_t)1700000000000)

typedef struct fx {
  char dir[64];
  char path[96];
} fx;

static inline void rm_db(const char *path) {
  char p[128];
  static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
  for (size_t i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s%s", path, sfx[i]);
    unlink(p);
  }
}

static inline int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  if (!f)
    return -1;
  snprintf(f->dir, sizeof f->dir, "/tmp/hvg_store_XXXXXX");
  if (!mkdtemp(f->dir)) {
    free(f);
    return -1;
  }
  snprintf(f->path, sizeof f->path, "%s/store.db", f->dir);
  *state = f;
  return 0;
}

static inline int teardown(void **state) {
  fx *f = *state;
  rm_db(f->path);
  rmdir(f->dir);
  free(f);
  return 0;
}

static inline store *open_ok(const char *path) {
  store *st = NULL;
  hvg_err e;
  hvg_err_clear(&e);
  int rc = store_open(&st, path, NULL, &e);
  if (rc)
    fail_msg("store_open: %s: %s", hvg_err_name(rc), e.msg);
  return st;
}

static inline void check_ok(store *st) {
  hvg_err e;
  hvg_err_clear(&e);
  int rc = store_check(st, &e);
  if (rc)
    fail_msg("store_check: %s: %s", hvg_err_name(rc), e.msg);
}

static inline sqlite3 *raw_open(const char *path) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  return db;
}

static inline int64_t raw_count(sqlite3 *db, const char *sql) {
  sqlite3_stmt *s = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
    fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db));
  assert_int_equal(sqlite3_step(s), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return v;
}

/* Run SQL behind the store's back (to age, damage or downgrade a store). */
static inline void raw_exec(sqlite3 *db, const char *sql) {
  char *m = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &m) != SQLITE_OK) {
    char copy[256];
    snprintf(copy, sizeof copy, "%s", m ? m : "?");
    sqlite3_free(m);
    fail_msg("exec %s: %s", sql, copy);
  }
}

#endif
