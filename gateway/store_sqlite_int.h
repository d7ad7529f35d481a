/* store_sqlite_int — what the SQLite back end's files share: the handle
 * and the statement, binding and transaction helpers. Private to
 * store_sqlite*.c; nothing outside the store includes it.
 *
 * store_sqlite.c holds the records, outbox, audit, referrals, consents and
 * cursors (with the schema and migrations); store_sqlite_loop.c the
 * closed-loop tables of issue 4 (hosted FHIR resources, results, inbox,
 * events). Each file keeps its own cached statements. */
#ifndef STORE_SQLITE_INT_H
#define STORE_SQLITE_INT_H

#include "store.h"

#include <sqlite3.h>

#define ST__Q_MAX 128 /* statements of store_sqlite.c */
#define ST__QL_MAX 64 /* statements of store_sqlite_loop.c */
#define ST__ROWS 16   /* rows of one multi-row write */
#define ST__ROW_KINDS 5 /* server ids, audit, records, versions, outbox */

struct st__ckpt;
struct store_zip;

struct store {
  sqlite3 *db;
  sqlite3_stmt *q[ST__Q_MAX];
  sqlite3_stmt *ql[ST__QL_MAX];
  sqlite3_stmt *qrows[ST__ROW_KINDS][ST__ROWS]; /* 1..ST__ROWS rows each */
  int busy_timeout_ms;
  int iterators;       /* open audit iterators */
  int tx_user;         /* depth of store_tx_begin .. store_tx_end */
  struct st__ckpt *ck; /* NULL: checkpoints inline (":memory:", option) */
  /* Bundle compression (store_zip.h): created on first use; what it holds
   * is dropped when a transaction rolls back (`zip_stale`, set by the
   * rollback hook), since a dictionary trained in it is gone with it */
  struct store_zip *zip;
  int zip_stale;
  int zip_untrainable; /* training failed on this handle: not tried again */
};

/* Map a SQLite result code to an HVG code with a detail (SQLite's messages
 * name tables and constraints, never bound values). Returns the code. */
int st__db_fail(store *st, int rc, const char *what, hvg_err *err);

/* The statement cached in *slot, prepared from sql on first use. */
int st__prepare(store *st, sqlite3_stmt **slot, const char *sql,
                sqlite3_stmt **out, hvg_err *err);

/* Reset and clear the bindings of a statement after use. NULL-safe. */
void st__done(sqlite3_stmt *s);

/* Bind helpers: 0, or an HVG code with the statement released. NULL text
 * binds SQL NULL. Bound memory must outlive the statement's use. */
int st__bind_text(store *st, sqlite3_stmt *s, int i, const char *v,
                  hvg_err *err);
int st__bind_textn(store *st, sqlite3_stmt *s, int i, const char *v, size_t n,
                   hvg_err *err);
int st__bind_i64(store *st, sqlite3_stmt *s, int i, int64_t v, hvg_err *err);

/* SQLITE_ROW / SQLITE_DONE, or a negative HVG code (statement released). */
int st__step(store *st, sqlite3_stmt *s, const char *what, hvg_err *err);

/* Step a statement that returns no rows, then release it. */
int st__exec_done(store *st, sqlite3_stmt *s, const char *what, hvg_err *err);

/* A write's transaction: BEGIN IMMEDIATE, or a savepoint inside the
 * caller's store_tx_begin. st__tx_end commits/releases when rc == 0 and
 * rolls back otherwise; it returns rc or the commit's error. */
int st__tx_begin(store *st, hvg_err *err);
int st__tx_end(store *st, int rc, hvg_err *err);

int st__col_i(sqlite3_stmt *s, int c);
int64_t st__col_i64(sqlite3_stmt *s, int c);

/* Copy text columns cols[0..n) of the current row into one malloc'd block;
 * *dst[i] gets the copy (NULL for SQL NULL), lens[i] (may be NULL) its
 * length. The block, or NULL when out of memory. */
void *st__copy_cols(sqlite3_stmt *s, const int *cols, size_t n,
                    const char **dst[], size_t *lens);
/* The same with `extra` more bytes at the end of the block, *extra_out
 * pointing to them. */
void *st__copy_cols_extra(sqlite3_stmt *s, const int *cols, size_t n,
                          const char **dst[], size_t *lens, size_t extra,
                          char **extra_out);

/* HVG_EINVAL naming `field` when v is NULL, empty or longer than max. */
int st__need(const char *v, const char *field, size_t max, hvg_err *err);

/* Migration steps of the closed-loop tables (store_sqlite_loop.c). */
extern const char st__migration_loop[];

#endif
