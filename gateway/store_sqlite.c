/* store_sqlite — the SQLite back end of store.h.
 *
 * Durability: WAL journal, synchronous=NORMAL (FULL with opts.full_sync),
 * every write function is one BEGIN IMMEDIATE transaction. Intake writes a
 * whole batch in one transaction (group commit).
 *
 * Outbox model. One row per (record version, partner). state:
 *   0 pending, 1 in flight, 2 dead, 3 delivered, 4 superseded.
 * A lane is (partner, patient_key). In each lane the oldest unfinished row
 * (state < 2) carries head = 1 - except that an in-flight row keeps the head
 * while an older row is replayed behind it. Only heads are claimable, so a
 * lane has at most one item in flight and delivers in order. due_at is the
 * time a head may be claimed: next attempt for pending rows, lease end for
 * in-flight rows (so an expired lease is simply "due" again). `claims`
 * counts claims and is the lease token checked by ack/retry/dead. */
#include "hvg_buf.h"
#include "store.h"
#include "store_sqlite_int.h"
#include "store_zip.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <sqlite3.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { ST_PENDING = 0, ST_INFLIGHT = 1, ST_DEAD = 2, ST_DELIVERED = 3,
       ST_SUPERSEDED = 4 };

static void zip__rolled_back(void *arg);

/* ---- schema ---------------------------------------------------------- */

static const char MIGRATION_1[] =
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
#define MIGRATION_2                                                           \
  "CREATE TABLE consents ("                                                   \
  " program TEXT NOT NULL, consent_id TEXT NOT NULL,"                         \
  " family_id TEXT, caregiver_id TEXT, organization_id TEXT NOT NULL,"        \
  " scope TEXT, granted TEXT NOT NULL, expires TEXT, revoked TEXT,"           \
  " updated_at INTEGER NOT NULL,"                                             \
  " PRIMARY KEY (program, consent_id)) WITHOUT ROWID;"                        \
  "CREATE INDEX consents_family ON consents(program, family_id,"              \
  " organization_id);"                                                        \
  "CREATE INDEX consents_caregiver ON consents(program, caregiver_id,"        \
  " organization_id);"

/* Version 4: dictionaries of the compressed Bundles (store_zip.h). From
 * then on record_versions.bundle is either TEXT (the Bundle's JSON) or a
 * BLOB: one zstd frame that names its dictionary by the id kept here. */
#define MIGRATION_4                                                           \
  "CREATE TABLE zstd_dicts ("                                                 \
  " id INTEGER PRIMARY KEY CHECK (id > 0),"                                   \
  " dict BLOB NOT NULL,"                                                      \
  " created_at INTEGER NOT NULL);"

/* Migration i (0-based) brings the schema from version i to i + 1. Append
 * only; never edit a released step. */
static const char *const MIGRATIONS[] = {MIGRATION_1, MIGRATION_2,
                                         st__migration_loop, MIGRATION_4};
#define N_MIGRATIONS ((int)(sizeof MIGRATIONS / sizeof MIGRATIONS[0]))

/* ---- cached statements ------------------------------------------------ */

#define STORE_QUERIES(X)                                                      \
  X(BEGIN, "BEGIN IMMEDIATE")                                                 \
  X(CONS_PUT, "INSERT INTO consents(program, consent_id, family_id,"          \
              " caregiver_id, organization_id, scope, granted, expires,"      \
              " revoked, updated_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)" \
              " ON CONFLICT (program, consent_id) DO UPDATE SET"              \
              " family_id = ?3, caregiver_id = ?4, organization_id = ?5,"     \
              " scope = ?6, granted = ?7, expires = ?8, revoked = ?9,"        \
              " updated_at = ?10")                                            \
  /* ?6 is the organization id: one query per id of the partner */          \
  X(CONS_ACTIVE, "SELECT 1 FROM consents WHERE program = ?1"                  \
                 " AND consent_id = ?2 AND granted <= ?3"                     \
                 " AND (expires IS NULL OR expires > ?3)"                     \
                 " AND (revoked IS NULL OR revoked > ?3)")                    \
  X(CONS_FIND, "SELECT consent_id FROM consents WHERE program = ?1"           \
               " AND ((?2 IS NOT NULL AND family_id = ?2)"                    \
               "   OR (?2 IS NULL AND ?3 IS NOT NULL AND caregiver_id = ?3))" \
               " AND organization_id = ?6"                                    \
               " AND (scope IS NULL OR"                                       \
               "      instr(',' || scope || ',', ',' || ?4 || ',') > 0)"      \
               " AND granted <= ?5 AND (expires IS NULL OR expires > ?5)"     \
               " AND (revoked IS NULL OR revoked > ?5)"                       \
               " ORDER BY granted DESC LIMIT 1")                              \
  X(COMMIT, "COMMIT")                                                         \
  X(ROLLBACK, "ROLLBACK")                                                     \
  X(SAVEPOINT, "SAVEPOINT w")                                                 \
  X(RELEASE, "RELEASE w")                                                     \
  X(ROLLBACK_TO, "ROLLBACK TO w")                                             \
  X(REC_GET, "SELECT id, version, hash, patient_key FROM records"             \
             " WHERE program = ?1 AND record_type = ?2 AND record_id = ?3")   \
  X(REC_INS, "INSERT INTO records(program, record_type, record_id, version,"  \
             " hash, patient_key, created_at, updated_at)"                    \
             " VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?6)")                       \
  X(REC_UPD, "UPDATE records SET version = ?2, hash = ?3, patient_key = ?4,"  \
             " updated_at = ?5 WHERE id = ?1")                                \
  X(VER_INS, "INSERT INTO record_versions(record, version, hash,"             \
             " sensitivity, bundle, created_at)"                              \
             " VALUES (?1, ?2, ?3, ?4, ?5, ?6)")                              \
  X(ZD_NEWEST, "SELECT dict FROM zstd_dicts"                                 \
               " ORDER BY created_at DESC, id DESC LIMIT 1")                  \
  X(ZD_GET, "SELECT dict FROM zstd_dicts WHERE id = ?1")                      \
  X(VER_TEXT_NEWEST, "SELECT bundle FROM record_versions"                     \
                     " WHERE typeof(bundle) = 'text' ORDER BY id DESC"        \
                     " LIMIT ?1")                                             \
  X(ZD_INS, "INSERT OR IGNORE INTO zstd_dicts(id, dict, created_at)"          \
            " VALUES (?1, ?2, ?3)")                                           \
  X(MAX_IDS, "SELECT (SELECT coalesce(max(id), 0) FROM records),"           \
             " (SELECT coalesce(max(id), 0) FROM record_versions),"           \
             " (SELECT coalesce(max(id), 0) FROM outbox)")                    \
  X(VER_GET, "SELECT id FROM record_versions WHERE record = ?1"               \
             " AND version = ?2")                                             \
  X(OB_HAS_PARTNER, "SELECT 1 FROM outbox WHERE record = ?1"                  \
                    " AND partner = ?2 LIMIT 1")                              \
  X(OB_REC_LIVE, "SELECT id, partner, state, patient_key FROM outbox"         \
                 " WHERE record = ?1 AND state < 3")                          \
  X(OB_LANE_ANY, "SELECT 1 FROM outbox WHERE partner = ?1"                    \
                 " AND patient_key = ?2 AND state < 2 LIMIT 1")               \
  X(OB_INS, "INSERT INTO outbox(version_id, record, partner, patient_key,"    \
            " consent_id, state, head, due_at, created_at, updated_at)"       \
            " VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?7, ?7)")                \
  X(OB_SUPERSEDE, "UPDATE outbox SET state = 4, head = 0, due_at = NULL,"     \
                  " updated_at = ?2 WHERE id = ?1")                           \
  X(LANE_HEAD, "SELECT id, state FROM outbox INDEXED BY outbox_head"         \
               " WHERE partner = ?1 AND patient_key = ?2 AND head = 1")       \
  X(LANE_FIRST, "SELECT id FROM outbox WHERE partner = ?1"                    \
                " AND patient_key = ?2 AND state < 2 ORDER BY id LIMIT 1")    \
  X(SET_HEAD, "UPDATE outbox SET head = ?2 WHERE id = ?1")                    \
  X(CLAIM_SEL, "SELECT o.id, o.claims, o.attempts, o.patient_key,"            \
               " o.consent_id, v.version, v.sensitivity, v.bundle,"           \
               " r.program, r.record_type, r.record_id, o.partner"            \
               " FROM outbox o"                                               \
               " JOIN record_versions v ON v.id = o.version_id"               \
               " JOIN records r ON r.id = o.record"                           \
               " WHERE o.partner = ?1 AND o.head = 1 AND o.due_at <= ?2"      \
               " ORDER BY o.due_at, o.id LIMIT ?3")                           \
  X(CLAIM_UPD, "UPDATE outbox SET state = 1, due_at = ?2,"                    \
               " claims = claims + 1, attempts = attempts + 1,"               \
               " updated_at = ?3 WHERE id = ?1")                              \
  X(OB_RELEASE, "UPDATE outbox SET due_at = ?1 WHERE state = 1")             \
  X(OB_GET, "SELECT state, claims, partner, patient_key, record"              \
            " FROM outbox WHERE id = ?1")                                     \
  X(OB_ACK, "UPDATE outbox SET state = 3, head = 0, due_at = NULL,"           \
            " last_error = NULL, updated_at = ?2 WHERE id = ?1")              \
  X(OB_RETRY, "UPDATE outbox SET state = 0, due_at = ?2, last_error = ?3,"    \
              " updated_at = ?4 WHERE id = ?1")                               \
  X(OB_DEAD, "UPDATE outbox SET state = 2, head = 0, due_at = NULL,"          \
             " updated_at = ?2 WHERE id = ?1")                                \
  X(OB_REPLAY, "UPDATE outbox SET state = 0, head = 0, due_at = ?2,"          \
               " attempts = 0, updated_at = ?2 WHERE id = ?1")                \
  X(DL_PUT, "INSERT INTO dead_letters(outbox_id, http_status, outcome, hint," \
            " at) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(outbox_id) DO"      \
            " UPDATE SET http_status = excluded.http_status,"                 \
            " outcome = excluded.outcome, hint = excluded.hint,"              \
            " at = excluded.at")                                              \
  X(DEAD_IDS_ALL, "SELECT id FROM outbox INDEXED BY outbox_dead"             \
                  " WHERE state = 2 ORDER BY id")                             \
  X(DEAD_IDS_PARTNER, "SELECT id FROM outbox INDEXED BY outbox_dead"          \
                      " WHERE state = 2 AND partner = ?1 ORDER BY id")        \
  X(DL_LIST, "SELECT o.id, v.version, d.at, o.attempts, d.http_status,"       \
             " o.partner, r.program, r.record_type, r.record_id, d.hint,"     \
             " o.last_error, d.outcome"                                       \
             " FROM outbox o INDEXED BY outbox_dead"                          \
             " JOIN record_versions v ON v.id = o.version_id"                 \
             " JOIN records r ON r.id = o.record"                             \
             " LEFT JOIN dead_letters d ON d.outbox_id = o.id"                \
             " WHERE o.state = 2 AND o.id > ?2"                               \
             " AND (?1 IS NULL OR o.partner = ?1) ORDER BY o.id LIMIT ?3")    \
  X(SID_GET, "SELECT server_id, version_id FROM server_ids"                   \
             " WHERE partner = ?1 AND resource_type = ?2"                     \
             " AND identifier = ?3")                                          \
  X(PSTAT_DELIVERED, "INSERT INTO partner_stats(partner, delivered)"          \
                     " VALUES (?1, ?2) ON CONFLICT(partner) DO UPDATE"        \
                     " SET delivered = delivered + ?2")                       \
  X(PSTAT_ALL, "SELECT partner, delivered FROM partner_stats")                \
  X(STATS, "SELECT partner, state, count(*), min(id) FROM outbox"             \
           " WHERE state < 3 GROUP BY partner, state")                        \
  X(OB_CREATED, "SELECT created_at FROM outbox WHERE id = ?1")                \
  X(AUDIT_INS, "INSERT INTO audit(at, actor, action, partner, program,"       \
               " record_type, record_id, resources, consent_id, detail)"      \
               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")           \
  X(REF_KEY, "SELECT id, status FROM referrals WHERE program = ?1"            \
             " AND referral_id = ?2")                                         \
  X(REF_INS, "INSERT INTO referrals(program, referral_id, partner, status,"   \
             " task_id, data, created_at, updated_at, direction, hv_status)"  \
             " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7,"                       \
             " coalesce(?8, 'outbound'), ?9)")                                \
  X(REF_UPD, "UPDATE referrals SET partner = coalesce(?2, partner),"          \
             " task_id = coalesce(?3, task_id), data = coalesce(?4, data),"   \
             " hv_status = coalesce(?6, hv_status),"                          \
             " updated_at = ?5 WHERE id = ?1")                                \
  X(REF_STATUS, "UPDATE referrals SET status = ?2, updated_at = ?3,"          \
                " hv_status = coalesce(?4, hv_status) WHERE id = ?1")         \
  X(REF_TR_INS, "INSERT INTO referral_transitions(referral, at, from_status," \
                " to_status, actor, detail, hv_status, source)"               \
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")                   \
  X(REF_GET, "SELECT program, referral_id, partner, status, task_id, data,"   \
             " direction, hv_status, created_at, updated_at, sent_at, id"     \
             " FROM referrals WHERE program = ?1 AND referral_id = ?2")       \
  X(REF_LIST, "SELECT program, referral_id, partner, status, task_id, data,"  \
              " direction, hv_status, created_at, updated_at, sent_at, id"    \
              " FROM referrals WHERE program = ?1 AND updated_at >= ?2"       \
              " AND id > ?3 ORDER BY id LIMIT ?4")                            \
  X(REF_HIST, "SELECT at, from_status, to_status, hv_status, actor, source,"  \
              " detail FROM referral_transitions WHERE referral = ?1"         \
              " ORDER BY id LIMIT ?2")                                        \
  X(REF_SENT, "UPDATE referrals SET sent_at = ?3, updated_at = ?3"            \
              " WHERE program = ?1 AND referral_id = ?2 AND sent_at IS NULL") \
  X(CUR_GET, "SELECT cursor FROM partner_cursor WHERE partner = ?1")          \
  X(CUR_SET, "INSERT INTO partner_cursor(partner, cursor, updated_at)"        \
             " VALUES (?1, ?2, ?3) ON CONFLICT(partner) DO UPDATE"            \
             " SET cursor = excluded.cursor, updated_at = excluded.updated_at")

enum {
#define STORE__Q_ENUM(name, sql) Q_##name,
  STORE_QUERIES(STORE__Q_ENUM)
#undef STORE__Q_ENUM
      Q__COUNT
};

_Static_assert(Q__COUNT <= ST__Q_MAX, "raise ST__Q_MAX");

static const char *const QUERY_SQL[Q__COUNT] = {
#define STORE__Q_SQL(name, sql) sql,
    STORE_QUERIES(STORE__Q_SQL)
#undef STORE__Q_SQL
};

/* WAL checkpoints. SQLite's default runs a checkpoint (copy the WAL back
 * into the database file, with its fsyncs) inside the commit that pushed the
 * WAL past 1000 pages - about a third of the intake time. A file store
 * instead hands that to a thread of its own with a second connection
 * (PASSIVE checkpoints never block the writer); should the thread fall far
 * behind, the writer checkpoints itself again. */
#define CKPT_SOFT_PAGES 1000
#define CKPT_HARD_PAGES 16384

struct st__ckpt {
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
  int wanted;
  sqlite3 *db; /* the thread's own connection */
};
typedef struct st__ckpt ckpt;

struct store_audit_iter {
  store *st;
  sqlite3_stmt *s;
};

/* ---- helpers ------------------------------------------------------------ */

/* Map a SQLite result code to an HVG code with a detail. SQLite's messages
 * name tables, columns and constraints, never bound values. */
int st__db_fail(store *st, int rc, const char *what, hvg_err *err) {
  int prim = rc & 0xff;
  if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED)
    return hvg_err_set(err, HVG_EIO, what,
                       "database busy: locked by another connection for "
                       "more than %d ms",
                       st ? st->busy_timeout_ms : 0);
  if (prim == SQLITE_NOMEM)
    return hvg_err_set(err, HVG_ENOMEM, what, "database: out of memory");
  if (prim == SQLITE_TOOBIG)
    return hvg_err_set(err, HVG_EINVAL, what, "database: value too large");
  const char *m = st && st->db ? sqlite3_errmsg(st->db) : NULL;
  if (!m || sqlite3_extended_errcode(st->db) != rc)
    m = sqlite3_errstr(rc);
  return hvg_err_set(err, HVG_EIO, what, "database error: %s", m);
}

int st__prepare(store *st, sqlite3_stmt **slot, const char *sql,
                sqlite3_stmt **out, hvg_err *err) {
  if (!*slot) {
    int rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                slot, NULL);
    if (rc != SQLITE_OK) {
      *slot = NULL;
      *out = NULL;
      return st__db_fail(st, rc, "store.prepare", err);
    }
  }
  *out = *slot;
  return 0;
}

/* The cached statement q, ready for binding (prepared on first use). */
static int st__stmt(store *st, int q, sqlite3_stmt **out, hvg_err *err) {
  return st__prepare(st, &st->q[q], QUERY_SQL[q], out, err);
}

/* Release a statement after use: reset (drops locks, read snapshot) and
 * clear bindings so no pointer to caller memory outlives the call. */
void st__done(sqlite3_stmt *s) {
  if (s) {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
  }
}

static int st__bind_rc(store *st, sqlite3_stmt *s, int rc, hvg_err *err) {
  if (rc == SQLITE_OK)
    return 0;
  st__done(s);
  return st__db_fail(st, rc, "store.bind", err);
}

int st__bind_text(store *st, sqlite3_stmt *s, int i, const char *v,
                     hvg_err *err) {
  int rc = v ? sqlite3_bind_text64(s, i, v, (sqlite3_uint64)strlen(v),
                                   SQLITE_STATIC, SQLITE_UTF8)
             : sqlite3_bind_null(s, i);
  return st__bind_rc(st, s, rc, err);
}

int st__bind_textn(store *st, sqlite3_stmt *s, int i, const char *v,
                      size_t n, hvg_err *err) {
  int rc = v ? sqlite3_bind_text64(s, i, v, (sqlite3_uint64)n, SQLITE_STATIC,
                                   SQLITE_UTF8)
             : sqlite3_bind_null(s, i);
  return st__bind_rc(st, s, rc, err);
}

static int st__bind_blob(store *st, sqlite3_stmt *s, int i, const void *v,
                     size_t n, hvg_err *err) {
  return st__bind_rc(st, s,
                 sqlite3_bind_blob64(s, i, v, (sqlite3_uint64)n,
                                     SQLITE_STATIC),
                 err);
}

int st__bind_i64(store *st, sqlite3_stmt *s, int i, int64_t v,
                    hvg_err *err) {
  return st__bind_rc(st, s, sqlite3_bind_int64(s, i, (sqlite3_int64)v), err);
}

/* Step; returns SQLITE_ROW or SQLITE_DONE (positive), or a negative HVG
 * code with the statement already released. */
int st__step(store *st, sqlite3_stmt *s, const char *what, hvg_err *err) {
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW || rc == SQLITE_DONE)
    return rc;
  int r = st__db_fail(st, rc, what, err);
  st__done(s);
  return r;
}

/* Step a statement that returns no rows, then release it. */
int st__exec_done(store *st, sqlite3_stmt *s, const char *what,
                     hvg_err *err) {
  int rc = st__step(st, s, what, err);
  if (rc < 0)
    return rc;
  st__done(s);
  if (rc != SQLITE_DONE)
    return hvg_err_set(err, HVG_EIO, what, "database: unexpected row");
  return 0;
}

static int st__run_q(store *st, int q, const char *what, hvg_err *err) {
  sqlite3_stmt *s;
  int rc = st__stmt(st, q, &s, err);
  return rc ? rc : st__exec_done(st, s, what, err);
}

/* Inside a caller's transaction (store_tx_begin) a write is a savepoint,
 * so that its failure undoes only its own changes. */
int st__tx_begin(store *st, hvg_err *err) {
  /* SQLite rolled the caller's transaction back (I/O error, disk full, a
   * RAISE(ROLLBACK)): a savepoint now would start a transaction of its own
   * and its RELEASE commit this write alone. Refuse until store_tx_end. */
  if (st->tx_user && sqlite3_get_autocommit(st->db))
    return hvg_err_set(err, HVG_EIO, "store.tx",
                       "the transaction was rolled back by the database");
  if (st->tx_user)
    return st__run_q(st, Q_SAVEPOINT, "store.savepoint", err);
  return st__run_q(st, Q_BEGIN, "store.begin", err);
}

static void st__tx_rollback(store *st) {
  if (sqlite3_get_autocommit(st->db))
    return; /* SQLite already rolled back (e.g. after SQLITE_FULL) */
  hvg_err ignored;
  if (st__run_q(st, Q_ROLLBACK, "store.rollback", &ignored) != 0)
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

static int st__tx_commit(store *st, hvg_err *err) {
  int rc = st__run_q(st, Q_COMMIT, "store.commit", err);
  if (rc)
    st__tx_rollback(st);
  return rc;
}

/* Finish a write: commit when rc == 0, roll back otherwise (inside a
 * caller's transaction: release or roll back to the write's savepoint). */
int st__tx_end(store *st, int rc, hvg_err *err) {
  if (st->tx_user) {
    hvg_err ignored;
    if (rc == 0)
      return st__run_q(st, Q_RELEASE, "store.savepoint", err);
    if (!sqlite3_get_autocommit(st->db)) {
      st__run_q(st, Q_ROLLBACK_TO, "store.savepoint", &ignored);
      st__run_q(st, Q_RELEASE, "store.savepoint", &ignored);
    }
    return rc;
  }
  if (rc == 0)
    return st__tx_commit(st, err);
  st__tx_rollback(st);
  return rc;
}

int store_tx_begin(store *st, hvg_err *err) {
  if (!st)
    return hvg_err_set(err, HVG_EINVAL, "store.tx", "NULL argument");
  if (st->tx_user && sqlite3_get_autocommit(st->db)) /* as st__tx_begin */
    return hvg_err_set(err, HVG_EIO, "store.tx",
                       "the transaction was rolled back by the database");
  int rc = st__run_q(st, st->tx_user ? Q_SAVEPOINT : Q_BEGIN,
                     st->tx_user ? "store.savepoint" : "store.begin", err);
  if (!rc)
    st->tx_user++;
  return rc;
}

int store_tx_end(store *st, int commit, hvg_err *err) {
  if (!st)
    return hvg_err_set(err, HVG_EINVAL, "store.tx", "NULL argument");
  if (!st->tx_user)
    return hvg_err_set(err, HVG_ESTATE, "store.tx", "no transaction is open");
  if (--st->tx_user) { /* an inner one: its savepoint */
    hvg_err ignored;
    if (commit && sqlite3_get_autocommit(st->db))
      return hvg_err_set(err, HVG_EIO, "store.tx",
                         "the transaction was rolled back by the database");
    if (commit)
      return st__run_q(st, Q_RELEASE, "store.savepoint", err);
    if (!sqlite3_get_autocommit(st->db)) {
      st__run_q(st, Q_ROLLBACK_TO, "store.savepoint", &ignored);
      st__run_q(st, Q_RELEASE, "store.savepoint", &ignored);
    }
    return 0;
  }
  if (!commit) {
    st__tx_rollback(st);
    return 0;
  }
  if (sqlite3_get_autocommit(st->db)) /* rolled back by SQLite (I/O, full) */
    return hvg_err_set(err, HVG_EIO, "store.commit",
                       "the transaction was rolled back by the database");
  return st__tx_commit(st, err);
}

int store_tx_depth(const store *st) {
  return st ? st->tx_user : 0;
}

int st__col_i(sqlite3_stmt *s, int c) {
  return sqlite3_column_int(s, c);
}
int64_t st__col_i64(sqlite3_stmt *s, int c) {
  return (int64_t)sqlite3_column_int64(s, c);
}

/* Copy text columns cols[0..n) of the current row into one malloc'd block;
 * dst[i] gets the copy (NULL for SQL NULL), lens[i] its length (lens may be
 * NULL). Returns the block or NULL on ENOMEM. */
void *st__copy_cols(sqlite3_stmt *s, const int *cols, size_t n,
                    const char **dst[], size_t *lens) {
  return st__copy_cols_extra(s, cols, n, dst, lens, 0, NULL);
}

void *st__copy_cols_extra(sqlite3_stmt *s, const int *cols, size_t n,
                          const char **dst[], size_t *lens, size_t extra,
                          char **extra_out) {
  size_t total = 1 + extra;
  for (size_t i = 0; i < n; i++) {
    if (sqlite3_column_type(s, cols[i]) == SQLITE_NULL)
      continue;
    (void)sqlite3_column_text(s, cols[i]);
    total += (size_t)sqlite3_column_bytes(s, cols[i]) + 1;
  }
  char *mem = malloc(total);
  if (!mem)
    return NULL;
  char *p = mem;
  for (size_t i = 0; i < n; i++) {
    if (sqlite3_column_type(s, cols[i]) == SQLITE_NULL) {
      *dst[i] = NULL;
      if (lens)
        lens[i] = 0;
      continue;
    }
    const unsigned char *t = sqlite3_column_text(s, cols[i]);
    size_t len = (size_t)sqlite3_column_bytes(s, cols[i]);
    if (!t) { /* NOMEM while converting */
      free(mem);
      return NULL;
    }
    memcpy(p, t, len);
    p[len] = '\0';
    *dst[i] = p;
    if (lens)
      lens[i] = len;
    p += len + 1;
  }
  if (extra_out)
    *extra_out = p;
  return mem;
}

int st__need(const char *v, const char *field, size_t max, hvg_err *err) {
  if (!v || !*v)
    return hvg_err_set(err, HVG_EINVAL, field, "required");
  if (strlen(v) > max)
    return hvg_err_set(err, HVG_EINVAL, field, "longer than %zu bytes", max);
  return 0;
}

/* ---- open / close / migrations ---------------------------------------- */

int store_schema_version_supported(void) {
  return N_MIGRATIONS;
}

static int read_version(store *st, int *v, hvg_err *err) {
  sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v2(st->db, "SELECT max(version) FROM schema_version",
                              -1, &s, NULL);
  if (rc != SQLITE_OK)
    return st__db_fail(st, rc, "store.schema_version", err);
  rc = sqlite3_step(s);
  if (rc != SQLITE_ROW) {
    int r = st__db_fail(st, rc, "store.schema_version", err);
    sqlite3_finalize(s);
    return r;
  }
  *v = st__col_i(s, 0); /* max() of no rows is NULL -> 0 */
  sqlite3_finalize(s);
  return 0;
}

static int st__exec_sql(store *st, const char *sql, const char *what,
                    hvg_err *err) {
  int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : st__db_fail(st, rc, what, err);
}

static int migrate(store *st, hvg_err *err) {
  for (;;) {
    int rc = st__tx_begin(st, err);
    if (rc)
      return rc;
    rc = st__exec_sql(st,
                  "CREATE TABLE IF NOT EXISTS schema_version ("
                  " version INTEGER PRIMARY KEY,"
                  " applied_at INTEGER NOT NULL)",
                  "store.migrate", err);
    int v = 0;
    if (!rc)
      rc = read_version(st, &v, err);
    if (!rc && v > N_MIGRATIONS)
      rc = hvg_err_set(err, HVG_ECONFIG, "store.schema_version",
                       "database schema version %d is newer than this "
                       "hvgate supports (%d): use a newer hvgate or another "
                       "database",
                       v, N_MIGRATIONS);
    if (rc || v == N_MIGRATIONS)
      return st__tx_end(st, rc, err);
    rc = st__exec_sql(st, MIGRATIONS[v], "store.migrate", err);
    if (!rc) {
      char sql[128];
      snprintf(sql, sizeof sql,
               "INSERT INTO schema_version(version, applied_at)"
               " VALUES (%d, %lld)",
               v + 1, (long long)store_now_ms());
      rc = st__exec_sql(st, sql, "store.migrate", err);
    }
    if (rc && err && err->code == HVG_EIO) {
      char m[sizeof err->msg];
      snprintf(m, sizeof m, "%s", err->msg);
      hvg_err_set(err, HVG_EIO, "store.migrate",
                  "migration to schema version %d failed: %s", v + 1, m);
    }
    rc = st__tx_end(st, rc, err);
    if (rc)
      return rc;
  }
}

/* Read the one-row, one-text-column result of a PRAGMA into buf. */
static int pragma_text(store *st, const char *sql, char *buf, size_t cap,
                       hvg_err *err) {
  sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
  if (rc != SQLITE_OK)
    return st__db_fail(st, rc, "store.pragma", err);
  rc = sqlite3_step(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    int r = st__db_fail(st, rc, "store.pragma", err);
    sqlite3_finalize(s);
    return r;
  }
  buf[0] = '\0';
  if (rc == SQLITE_ROW && sqlite3_column_text(s, 0))
    snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  return 0;
}

static void *ckpt_main(void *arg) {
  ckpt *c = arg;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    while (!c->stop && !c->wanted)
      pthread_cond_wait(&c->cv, &c->mu);
    if (c->stop)
      break;
    c->wanted = 0;
    pthread_mutex_unlock(&c->mu);
    /* failures (busy, I/O) only leave the WAL longer; the next commit asks
     * again and the writer takes over past CKPT_HARD_PAGES */
    (void)sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                    NULL, NULL);
    pthread_mutex_lock(&c->mu);
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

/* Called by SQLite after each commit with the WAL's size in pages. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages) {
  ckpt *c = arg;
  if (pages >= CKPT_HARD_PAGES) {
    (void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL,
                                    NULL);
  } else if (pages >= CKPT_SOFT_PAGES) {
    pthread_mutex_lock(&c->mu);
    c->wanted = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
  }
  return SQLITE_OK;
}

static void ckpt_stop(store *st) {
  ckpt *c = st->ck;
  if (!c)
    return;
  sqlite3_wal_hook(st->db, NULL, NULL);
  pthread_mutex_lock(&c->mu);
  c->stop = 1;
  pthread_cond_signal(&c->cv);
  pthread_mutex_unlock(&c->mu);
  pthread_join(c->th, NULL);
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->mu);
  sqlite3_close_v2(c->db);
  free(c);
  st->ck = NULL;
}

static int ckpt_start(store *st, const char *path, int full_sync,
                      hvg_err *err) {
  ckpt *c = calloc(1, sizeof *c);
  if (!c)
    return hvg_err_set(err, HVG_ENOMEM, "store.checkpoint", NULL);
  int rc = sqlite3_open_v2(path, &c->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_busy_timeout(c->db, st->busy_timeout_ms);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(c->db,
                      full_sync ? "PRAGMA synchronous=FULL"
                                : "PRAGMA synchronous=NORMAL",
                      NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    rc = hvg_err_set(err, rc == SQLITE_NOMEM ? HVG_ENOMEM : HVG_EIO,
                     "store.checkpoint", "cannot open the checkpoint "
                     "connection: %s",
                     c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
    sqlite3_close_v2(c->db);
    free(c);
    return rc;
  }
  if (pthread_mutex_init(&c->mu, NULL) != 0) {
    sqlite3_close_v2(c->db);
    free(c);
    return hvg_err_set(err, HVG_ENOMEM, "store.checkpoint", NULL);
  }
  if (pthread_cond_init(&c->cv, NULL) != 0) {
    pthread_mutex_destroy(&c->mu);
    sqlite3_close_v2(c->db);
    free(c);
    return hvg_err_set(err, HVG_ENOMEM, "store.checkpoint", NULL);
  }
  if (pthread_create(&c->th, NULL, ckpt_main, c) != 0) {
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    sqlite3_close_v2(c->db);
    free(c);
    return hvg_err_set(err, HVG_ENOMEM, "store.checkpoint",
                       "cannot start the checkpoint thread");
  }
  st->ck = c;
  sqlite3_wal_hook(st->db, wal_hook, c); /* replaces auto-checkpoint */
  return 0;
}

int store_open(store **out, const char *path, const store_opts *opts,
               hvg_err *err) {
  if (!out || !path || !*path)
    return hvg_err_set(err, HVG_EINVAL, "store.path", "required");
  *out = NULL;
  if (strncmp(path, "postgres://", 11) == 0 ||
      strncmp(path, "postgresql://", 13) == 0)
    return hvg_err_set(err, HVG_ECONFIG, "store.path",
                       "the PostgreSQL store is not built into this hvgate");
  if (sqlite3_libversion_number() < 3024000)
    return hvg_err_set(err, HVG_ECONFIG, "store", "SQLite %s is too old "
                       "(3.24 or newer needed)", sqlite3_libversion());
  store *st = calloc(1, sizeof *st);
  if (!st)
    return hvg_err_set(err, HVG_ENOMEM, "store", NULL);
  st->busy_timeout_ms =
      opts && opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms : 5000;
  int memory = strcmp(path, ":memory:") == 0;
  int rc = sqlite3_open_v2(path, &st->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                               SQLITE_OPEN_NOMUTEX,
                           NULL);
  if (rc != SQLITE_OK) {
    if (!st->db) {
      free(st);
      return hvg_err_set(err, HVG_ENOMEM, "store", NULL);
    }
    rc = hvg_err_set(err, HVG_EIO, "store.path", "cannot open database: %s",
                     sqlite3_errmsg(st->db));
    store_close(st);
    return rc;
  }
  sqlite3_extended_result_codes(st->db, 1);
  sqlite3_rollback_hook(st->db, zip__rolled_back, st);
  rc = sqlite3_busy_timeout(st->db, st->busy_timeout_ms);
  if (rc != SQLITE_OK) {
    rc = st__db_fail(st, rc, "store.open", err);
    goto fail;
  }
  /* 8 KiB pages for a new database (no effect on an existing one): a
   * ~3.5 KB Bundle fills half a page instead of most of one, and batched
   * intake writes fewer pages (docs/decisions.md). */
  rc = st__exec_sql(st, "PRAGMA page_size=8192", "store.open", err);
  if (rc)
    goto fail;
  char mode[32];
  rc = pragma_text(st, "PRAGMA journal_mode=WAL", mode, sizeof mode, err);
  if (rc)
    goto fail;
  if (strcmp(mode, "wal") != 0 && !(memory && strcmp(mode, "memory") == 0)) {
    rc = hvg_err_set(err, HVG_ECONFIG, "store.path",
                     "the database cannot use WAL journaling (journal mode "
                     "is \"%s\"): put it on a local file system",
                     mode);
    goto fail;
  }
  rc = st__exec_sql(st,
                opts && opts->full_sync ? "PRAGMA synchronous=FULL"
                                        : "PRAGMA synchronous=NORMAL",
                "store.open", err);
  if (!rc)
    rc = st__exec_sql(st,
                  "PRAGMA foreign_keys=ON;"
                  "PRAGMA recursive_triggers=ON;"
                  "PRAGMA journal_size_limit=67108864;"
                  "PRAGMA temp_store=MEMORY",
                  "store.open", err);
  if (!rc) { /* page cache per handle: what bounds a daemon's memory */
    char q[64];
    int mib = opts && opts->cache_mib > 0 ? opts->cache_mib : 32;
    snprintf(q, sizeof q, "PRAGMA cache_size=-%d", mib * 1024);
    rc = st__exec_sql(st, q, "store.open", err);
  }
  if (rc)
    goto fail;
  char fk[8];
  rc = pragma_text(st, "PRAGMA foreign_keys", fk, sizeof fk, err);
  if (rc)
    goto fail;
  if (strcmp(fk, "1") != 0) {
    rc = hvg_err_set(err, HVG_ECONFIG, "store",
                     "SQLite is built without foreign key support");
    goto fail;
  }
  rc = migrate(st, err);
  if (!rc && !memory && !(opts && opts->inline_checkpoint))
    rc = ckpt_start(st, path, opts && opts->full_sync, err);
  if (rc)
    goto fail;
  *out = st;
  return 0;
fail:
  store_close(st);
  return rc;
}

void store_close(store *st) {
  if (!st)
    return;
  ckpt_stop(st);
  for (int i = 0; i < Q__COUNT; i++)
    sqlite3_finalize(st->q[i]);
  for (int i = 0; i < ST__QL_MAX; i++) /* store_sqlite_loop.c's */
    sqlite3_finalize(st->ql[i]);
  for (int k = 0; k < ST__ROW_KINDS; k++)
    for (int i = 0; i < ST__ROWS; i++)
      sqlite3_finalize(st->qrows[k][i]);
  sqlite3_close_v2(st->db);
  store_zip_free(st->zip);
  free(st);
}

int store_schema_version(store *st, int *version, hvg_err *err) {
  if (!st || !version)
    return hvg_err_set(err, HVG_EINVAL, "store", "NULL argument");
  return read_version(st, version, err);
}

int64_t store_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int store_hash(const void *data, size_t len, unsigned char out[STORE_HASH_LEN],
               hvg_err *err) {
  if ((!data && len) || !out)
    return hvg_err_set(err, HVG_EINVAL, "store.hash", "NULL argument");
  unsigned int n = 0;
  if (EVP_Digest(data ? data : "", len, out, &n, EVP_sha256(), NULL) != 1 ||
      n != STORE_HASH_LEN)
    return hvg_err_set(err, HVG_ENOMEM, "store.hash", "SHA-256 failed");
  return 0;
}

struct store_hasher {
  EVP_MD *md;
  EVP_MD_CTX *ctx;
};

int store_hasher_new(store_hasher **out, hvg_err *err) {
  if (!out)
    return hvg_err_set(err, HVG_EINVAL, "store.hash", "NULL argument");
  store_hasher *h = calloc(1, sizeof *h);
  if (h) {
    h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    h->ctx = EVP_MD_CTX_new();
  }
  if (!h || !h->md || !h->ctx) {
    store_hasher_free(h);
    *out = NULL;
    return hvg_err_set(err, HVG_ENOMEM, "store.hash", "no SHA-256");
  }
  *out = h;
  return 0;
}

void store_hasher_free(store_hasher *h) {
  if (!h)
    return;
  EVP_MD_CTX_free(h->ctx);
  EVP_MD_free(h->md);
  free(h);
}

int store_hasher_hash(store_hasher *h, const void *data, size_t len,
                      unsigned char out[STORE_HASH_LEN], hvg_err *err) {
  if (!h || (!data && len) || !out)
    return hvg_err_set(err, HVG_EINVAL, "store.hash", "NULL argument");
  unsigned int n = 0;
  if (EVP_DigestInit_ex(h->ctx, h->md, NULL) != 1 ||
      EVP_DigestUpdate(h->ctx, data ? data : "", len) != 1 ||
      EVP_DigestFinal_ex(h->ctx, out, &n) != 1 || n != STORE_HASH_LEN)
    return hvg_err_set(err, HVG_ENOMEM, "store.hash", "SHA-256 failed");
  return 0;
}

/* Run a query whose first column of each row is a count that must be 0. */
static int check_zero(store *st, const char *sql, const char *what,
                      hvg_err *err) {
  sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
  if (rc != SQLITE_OK)
    return st__db_fail(st, rc, "store.check", err);
  rc = sqlite3_step(s);
  int r = 0;
  if (rc == SQLITE_ROW) {
    if (sqlite3_column_int64(s, 0) != 0)
      r = hvg_err_set(err, HVG_ESTATE, "store.check", "%s", what);
  } else if (rc != SQLITE_DONE) {
    r = st__db_fail(st, rc, "store.check", err);
  }
  sqlite3_finalize(s);
  return r;
}

int store_check(store *st, hvg_err *err) {
  if (!st)
    return hvg_err_set(err, HVG_EINVAL, "store", "NULL argument");
  char res[64];
  int rc = pragma_text(st, "PRAGMA integrity_check(1)", res, sizeof res, err);
  if (rc)
    return rc;
  if (strcmp(res, "ok") != 0)
    return hvg_err_set(err, HVG_ESTATE, "store.check",
                       "integrity check failed: %s", res);
  static const struct {
    const char *sql, *what;
  } checks[] = {
      {"SELECT count(*) FROM pragma_foreign_key_check",
       "foreign key violations"},
      {"SELECT count(*) FROM (SELECT 1 FROM outbox WHERE head = 1"
       " GROUP BY partner, patient_key HAVING count(*) > 1)",
       "a lane has more than one head"},
      {"SELECT count(*) FROM (SELECT 1 FROM outbox WHERE state < 2"
       " GROUP BY partner, patient_key HAVING sum(head) = 0)",
       "a lane with unfinished items has no head"},
      {"SELECT count(*) FROM outbox WHERE state = 1 AND head = 0",
       "an in-flight item is not the head of its lane"},
      {"SELECT count(*) FROM outbox WHERE head = 1 AND state >= 2",
       "a finished item is marked as head"},
      {"SELECT count(*) FROM outbox WHERE head = 1 AND due_at IS NULL",
       "a head has no due time"},
      {"SELECT count(*) FROM outbox o WHERE o.head = 1 AND o.state = 0"
       " AND EXISTS (SELECT 1 FROM outbox x WHERE x.partner = o.partner"
       " AND x.patient_key = o.patient_key AND x.state < 2"
       " AND x.id < o.id)",
       "a pending head is not the oldest item of its lane"},
      {"SELECT count(*) FROM records r WHERE NOT EXISTS (SELECT 1 FROM"
       " record_versions v WHERE v.record = r.id AND v.version = r.version"
       " AND v.hash = r.hash)",
       "a record has no row for its current version"},
      {"SELECT count(*) FROM outbox o JOIN record_versions v"
       " ON v.id = o.version_id WHERE v.record <> o.record",
       "an outbox item points to another record's version"},
      {"SELECT count(*) FROM outbox o WHERE state = 2 AND NOT EXISTS"
       " (SELECT 1 FROM dead_letters d WHERE d.outbox_id = o.id)",
       "a dead letter has no details"},
  };
  for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
    rc = check_zero(st, checks[i].sql, checks[i].what, err);
    if (rc)
      return rc;
  }
  return 0;
}

/* ---- lanes -------------------------------------------------------------- */

/* Is there an unfinished item in the lane? 1 yes, 0 no, <0 error. */
static int lane_busy(store *st, const char *partner, const char *pk,
                     hvg_err *err) {
  sqlite3_stmt *s;
  int rc = st__stmt(st, Q_OB_LANE_ANY, &s, err);
  if (!rc)
    rc = st__bind_text(st, s, 1, partner, err);
  if (!rc)
    rc = st__bind_text(st, s, 2, pk, err);
  if (rc)
    return rc;
  rc = st__step(st, s, "store.lane", err);
  if (rc < 0)
    return rc;
  st__done(s);
  return rc == SQLITE_ROW;
}

static int set_head(store *st, int64_t id, int head, hvg_err *err) {
  sqlite3_stmt *s;
  int rc = st__stmt(st, Q_SET_HEAD, &s, err);
  if (!rc)
    rc = st__bind_i64(st, s, 1, id, err);
  if (!rc)
    rc = st__bind_i64(st, s, 2, head, err);
  return rc ? rc : st__exec_done(st, s, "store.lane", err);
}

/* The head of the lane just finished (in-flight rows are always heads):
 * the oldest unfinished item, if any, becomes head. */
static int lane_next(store *st, const char *partner, const char *pk,
                     hvg_err *err) {
  sqlite3_stmt *s;
  int64_t first = 0;
  int rc = st__stmt(st, Q_LANE_FIRST, &s, err);
  if (!rc)
    rc = st__bind_text(st, s, 1, partner, err);
  if (!rc)
    rc = st__bind_text(st, s, 2, pk, err);
  if (rc)
    return rc;
  rc = st__step(st, s, "store.lane", err);
  if (rc < 0)
    return rc;
  if (rc == SQLITE_ROW)
    first = st__col_i64(s, 0);
  st__done(s);
  return first ? set_head(st, first, 1, err) : 0;
}

/* Restore the lane invariant after items left it or joined it out of order:
 * an in-flight head stays; otherwise the oldest unfinished item is head. */
static int lane_fix(store *st, const char *partner, const char *pk,
                    hvg_err *err) {
  sqlite3_stmt *s;
  int64_t head = 0;
  int head_state = -1;
  int rc = st__stmt(st, Q_LANE_HEAD, &s, err);
  if (!rc)
    rc = st__bind_text(st, s, 1, partner, err);
  if (!rc)
    rc = st__bind_text(st, s, 2, pk, err);
  if (rc)
    return rc;
  rc = st__step(st, s, "store.lane", err);
  if (rc < 0)
    return rc;
  if (rc == SQLITE_ROW) {
    head = st__col_i64(s, 0);
    head_state = st__col_i(s, 1);
  }
  st__done(s);
  if (head_state == ST_INFLIGHT)
    return 0;
  int64_t first = 0;
  rc = st__stmt(st, Q_LANE_FIRST, &s, err);
  if (!rc)
    rc = st__bind_text(st, s, 1, partner, err);
  if (!rc)
    rc = st__bind_text(st, s, 2, pk, err);
  if (rc)
    return rc;
  rc = st__step(st, s, "store.lane", err);
  if (rc < 0)
    return rc;
  if (rc == SQLITE_ROW)
    first = st__col_i64(s, 0);
  st__done(s);
  if (first == head)
    return 0;
  if (head && (rc = set_head(st, head, 0, err)) != 0)
    return rc;
  return first ? set_head(st, first, 1, err) : 0;
}

/* ---- intake ------------------------------------------------------------- */

/* st__need for batch[i].<name>, or batch[i].targets[t].<name> when t >= 0;
 * the field's name is written only when the value is wrong (this runs for
 * every record of every batch). */
static int need_field(const char *v, size_t i, long t, const char *name,
                      size_t max, hvg_err *err) {
  if (v && *v && strnlen(v, max + 1) <= max)
    return 0;
  char f[64];
  if (t < 0)
    snprintf(f, sizeof f, "batch[%zu].%s", i, name);
  else
    snprintf(f, sizeof f, "batch[%zu].targets[%ld].%s", i, t, name);
  return st__need(v, f, max, err);
}

static int check_record(const store_record *r, size_t i, hvg_err *err) {
  char f[64];
  int rc = need_field(r->program, i, -1, "program", STORE_KEY_MAX, err);
  if (!rc)
    rc = need_field(r->record_type, i, -1, "record_type", STORE_KEY_MAX, err);
  if (!rc)
    rc = need_field(r->record_id, i, -1, "record_id", STORE_KEY_MAX, err);
  if (!rc)
    rc = need_field(r->patient_key, i, -1, "patient_key", STORE_KEY_MAX, err);
  if (rc)
    return rc;
  if (r->packed && r->packed_len == 0) {
    snprintf(f, sizeof f, "batch[%zu].packed_len", i);
    return hvg_err_set(err, HVG_EINVAL, f, "0 with packed set");
  }
  if (!r->bundle || r->bundle_len == 0) {
    snprintf(f, sizeof f, "batch[%zu].bundle", i);
    return hvg_err_set(err, HVG_EINVAL, f, "required");
  }
  if (r->n_targets && !r->targets) {
    snprintf(f, sizeof f, "batch[%zu].targets", i);
    return hvg_err_set(err, HVG_EINVAL, f, "NULL with n_targets > 0");
  }
  for (size_t t = 0; t < r->n_targets; t++) {
    rc = need_field(r->targets[t].partner, i, (long)t, "partner",
                    STORE_PARTNER_MAX, err);
    if (rc)
      return rc;
    for (size_t u = 0; u < t; u++)
      if (strcmp(r->targets[u].partner, r->targets[t].partner) == 0) {
        snprintf(f, sizeof f, "batch[%zu].targets[%zu].partner", i, t);
        return hvg_err_set(err, HVG_EINVAL, f, "partner listed twice");
      }
  }
  return 0;
}

/* Queue version `ver_id` of record `rec` for one partner in lane `pk`.
 * `fast`: the lane was not touched in this call, so the item is head exactly
 * when the lane is empty; otherwise insert as non-head and fix the lane. */
static int queue_item(store *st, int64_t ver_id, int64_t rec,
                      const store_target *t, const char *pk, int fast,
                      int64_t now, hvg_err *err) {
  int head = 0;
  if (fast) {
    int busy = lane_busy(st, t->partner, pk, err);
    if (busy < 0)
      return busy;
    head = !busy;
  }
  sqlite3_stmt *s;
  int rc = st__stmt(st, Q_OB_INS, &s, err);
  if (!rc)
    rc = st__bind_i64(st, s, 1, ver_id, err);
  if (!rc)
    rc = st__bind_i64(st, s, 2, rec, err);
  if (!rc)
    rc = st__bind_text(st, s, 3, t->partner, err);
  if (!rc)
    rc = st__bind_text(st, s, 4, pk, err);
  if (!rc)
    rc = st__bind_text(st, s, 5, t->consent_id, err);
  if (!rc)
    rc = st__bind_i64(st, s, 6, head, err);
  if (!rc)
    rc = st__bind_i64(st, s, 7, now, err);
  if (!rc)
    rc = st__exec_done(st, s, "store.put", err);
  if (!rc && !fast)
    rc = lane_fix(st, t->partner, pk, err);
  return rc;
}

/* ---- Bundle compression (store_zip.h) -------------------------------- */

#define ZIP__BUNDLE_MAX ((size_t)1 << 30) /* SQLite's own value limit */

static void zip__rolled_back(void *arg) {
  ((store *)arg)->zip_stale = 1;
}

/* st->zip, created on first use and renewed after a rollback.
 * 0, or HVG_ENOMEM. */
static int zip__handle(store *st, hvg_err *err) {
  if (st->zip_stale) {
    store_zip_free(st->zip);
    st->zip = NULL;
    st->zip_stale = 0;
  }
  if (!st->zip && !(st->zip = store_zip_new()))
    return hvg_err_set(err, HVG_ENOMEM, "store.zip", NULL);
  return 0;
}

/* Load the dictionary in column 0 of the row s is on. */
static int zip__load_col(store *st, sqlite3_stmt *s, int compress,
                         hvg_err *err) {
  const void *d = sqlite3_column_blob(s, 0);
  int len = sqlite3_column_bytes(s, 0);
  if (!d || len <= 0)
    return hvg_err_set(err, HVG_EIO, "store.zip",
                       "database: an empty compression dictionary");
  return store_zip_load(st->zip, d, (size_t)len, compress, err);
}

/* Load the newest dictionary of the store to compress with, unless one
 * is loaded. 0, or an HVG code. */
static int zip__newest(store *st, hvg_err *err) {
  if (!st->zip_stale && st->zip && store_zip_dict_id(st->zip))
    return 0;
  sqlite3_stmt *s;
  int rc = zip__handle(st, err);
  if (!rc)
    rc = st__stmt(st, Q_ZD_NEWEST, &s, err);
  if (rc)
    return rc;
  rc = st__step(st, s, "store.zip", err);
  if (rc == SQLITE_ROW)
    rc = zip__load_col(st, s, 1, err);
  else if (rc == SQLITE_DONE)
    rc = 0;
  st__done(s);
  return rc;
}

/* Train a dictionary on samples[0..n), keep it in the store and compress
 * with it. Samples zstd learns nothing from leave the handle without one
 * (and it does not try again). 0, or an HVG code. */
static int zip__train(store *st, const char *const *smp, const size_t *lens,
                      size_t n, int64_t now, hvg_err *err) {
  void *dict = NULL;
  size_t dict_len = 0;
  uint32_t id = 0;
  int rc = store_zip_train(smp, lens, n, &dict, &dict_len, &id, err);
  if (rc == HVG_EINVAL) {
    st->zip_untrainable = 1;
    return 0;
  }
  sqlite3_stmt *s;
  if (!rc)
    rc = st__stmt(st, Q_ZD_INS, &s, err);
  if (!rc)
    rc = st__bind_i64(st, s, 1, (int64_t)id, err);
  if (!rc)
    rc = st__bind_blob(st, s, 2, dict, dict_len, err);
  if (!rc)
    rc = st__bind_i64(st, s, 3, now, err);
  if (!rc)
    rc = st__exec_done(st, s, "store.zip", err);
  if (!rc)
    rc = store_zip_load(st->zip, dict, dict_len, 1, err);
  free(dict);
  return rc;
}

/* Train on the newest Bundles stored as text, when there are enough: a
 * store fed only small batches (one record per request, say) gets its
 * dictionary too. 0, or an HVG code. */
static int zip__train_stored(store *st, int64_t now, hvg_err *err) {
  sqlite3_stmt *s;
  int rc = st__stmt(st, Q_VER_TEXT_NEWEST, &s, err);
  if (!rc)
    rc = st__bind_i64(st, s, 1, STORE_ZIP_MAX_SAMPLES, err);
  if (rc)
    return rc;
  hvg_buf all;
  hvg_buf_init(&all, STORE_ZIP_SAMPLE_BYTES);
  size_t lens[STORE_ZIP_MAX_SAMPLES], n = 0;
  while ((rc = st__step(st, s, "store.zip", err)) == SQLITE_ROW &&
         n < STORE_ZIP_MAX_SAMPLES) {
    const unsigned char *t = sqlite3_column_text(s, 0);
    size_t len = (size_t)sqlite3_column_bytes(s, 0);
    if (!t) {
      rc = hvg_err_set(err, HVG_ENOMEM, "store.zip", NULL);
      break;
    }
    int brc = hvg_buf_add(&all, t, len);
    if (brc == HVG_ENOMEM) {
      rc = hvg_err_set(err, HVG_ENOMEM, "store.zip", NULL);
      break;
    }
    if (brc)
      break; /* over the byte cap: train on what fits */
    lens[n++] = len;
  }
  st__done(s);
  if (rc == SQLITE_ROW || rc == SQLITE_DONE)
    rc = 0;
  const char *smp[STORE_ZIP_MAX_SAMPLES];
  for (size_t i = 0, off = 0; i < n; off += lens[i], i++)
    smp[i] = all.data + off;
  if (!rc && n >= STORE_ZIP_MIN_SAMPLES)
    rc = zip__train(st, smp, lens, n, now, err);
  hvg_buf_free(&all);
  return rc;
}

/* Inside a batch's transaction: have a dictionary to compress with, the
 * newest in the store, or else one trained on this batch when it holds
 * enough Bundles, or on the Bundles stored as text when they are enough.
 * Without one (a young store, or Bundles zstd learns nothing from) the
 * Bundles are stored as text. 0, or an HVG code. */
static int zip__prepare(store *st, const store_record *batch, size_t n,
                        int64_t now, hvg_err *err) {
  int rc = zip__newest(st, err);
  if (rc || store_zip_dict_id(st->zip) || st->zip_untrainable)
    return rc;
  if (n < STORE_ZIP_MIN_SAMPLES)
    return zip__train_stored(st, now, err);
  const char **smp = malloc(n * (sizeof *smp + sizeof(size_t)));
  if (!smp)
    return hvg_err_set(err, HVG_ENOMEM, "store.zip", NULL);
  size_t *lens = (size_t *)(smp + n);
  for (size_t i = 0; i < n; i++) {
    smp[i] = batch[i].bundle;
    lens[i] = batch[i].bundle_len;
  }
  rc = zip__train(st, smp, lens, n, now, err);
  free(smp);
  return rc;
}

/* Have the dictionary `id` a stored frame needs loaded. */
static int zip__need(store *st, uint32_t id, hvg_err *err) {
  int rc = zip__handle(st, err);
  if (rc || !id || store_zip_has(st->zip, id))
    return rc;
  sqlite3_stmt *s;
  rc = st__stmt(st, Q_ZD_GET, &s, err);
  if (!rc)
    rc = st__bind_i64(st, s, 1, (int64_t)id, err);
  if (!rc)
    rc = st__step(st, s, "store.zip", err);
  if (rc == SQLITE_ROW)
    rc = zip__load_col(st, s, 0, err);
  else if (rc == SQLITE_DONE)
    rc = hvg_err_set(err, HVG_EIO, "store.zip",
                     "database: compression dictionary %u is missing",
                     (unsigned)id);
  st__done(s);
  return rc;
}

int store_pack_refresh(store *st, hvg_err *err) {
  if (!st)
    return hvg_err_set(err, HVG_EINVAL, "store.pack", "NULL argument");
  return zip__newest(st, err);
}

/* Compress bundle[0..len) when this handle has a dictionary it still finds
 * worth using: 1 with *out (in st->zip, until its next compress) when that
 * made it smaller, 0 to store it plain, or a negative HVG code. */
static int zip__try(store *st, const char *bundle, size_t len, const void **out,
                    size_t *out_len, hvg_err *err) {
  if (st->zip_stale || !st->zip || !store_zip_dict_id(st->zip) ||
      !store_zip_worthwhile(st->zip))
    return 0;
  const void *z = NULL;
  size_t zlen = 0;
  int rc = store_zip_compress(st->zip, bundle, len, &z, &zlen, err);
  if (rc)
    return rc;
  if (zlen >= len)
    return 0;
  *out = z;
  *out_len = zlen;
  return 1;
}

int store_pack(store *st, const char *bundle, size_t len, const void **out,
               size_t *out_len, hvg_err *err) {
  if (!st || !bundle || !out || !out_len)
    return hvg_err_set(err, HVG_EINVAL, "store.pack", "NULL argument");
  return zip__try(st, bundle, len, out, out_len, err);
}

/* Bind a Bundle as parameter i: as packed by the caller (its dictionary
 * checked to be in the store), compressed here when a dictionary is loaded
 * and that makes it smaller, else as text. The bound bytes live in st->zip
 * (or the record) until the statement has run. */
static int zip__bind_bundle(store *st, sqlite3_stmt *s, int i,
                            const store_record *r, int transient,
                            hvg_err *err) {
  if (r->packed) {
    uint32_t id = 0;
    size_t size = 0;
    int rc = store_zip_frame_info(r->packed, r->packed_len, ZIP__BUNDLE_MAX,
                                  &id, &size, err);
    if (!rc && size != r->bundle_len)
      rc = hvg_err_set(err, HVG_EINVAL, "store.put.packed",
                       "not the record's Bundle (%zu bytes, not %zu)", size,
                       r->bundle_len);
    if (!rc)
      rc = zip__need(st, id, err);
    if (rc) {
      st__done(s);
      return rc;
    }
    return st__bind_blob(st, s, i, r->packed, r->packed_len, err);
  }
  const void *z = NULL;
  size_t zlen = 0;
  int rc = zip__try(st, r->bundle, r->bundle_len, &z, &zlen, err);
  if (rc < 0) {
    st__done(s);
    return rc;
  }
  if (rc == 1) /* z is reused by the next compress */
    return st__bind_rc(
        st, s,
        sqlite3_bind_blob64(s, i, z, (sqlite3_uint64)zlen,
                            transient ? SQLITE_TRANSIENT : SQLITE_STATIC),
        err);
  return st__bind_textn(st, s, i, r->bundle, r->bundle_len, err);
}

/* The current row's Bundle (column col, text or a frame) and text columns
 * cols[0..n), copied into one malloc'd block (*mem, the caller frees it) as
 * st__copy_cols does: *bundle and *len get the Bundle, NUL-terminated.
 * 0, or an HVG code with *mem NULL. */
static int zip__copy_row(store *st, sqlite3_stmt *s, int col, const int *cols,
                         size_t n, const char **dst[], void **mem,
                         const char **bundle, size_t *len, hvg_err *err) {
  *mem = NULL;
  size_t size = 0, zlen = (size_t)sqlite3_column_bytes(s, col);
  const void *z = NULL;
  int zipped = sqlite3_column_type(s, col) == SQLITE_BLOB;
  if (zipped) {
    uint32_t id = 0;
    z = sqlite3_column_blob(s, col);
    int rc =
        !z ? hvg_err_set(err, HVG_ENOMEM, "store.claim", NULL)
           : store_zip_frame_info(z, zlen, ZIP__BUNDLE_MAX, &id, &size, err);
    if (!rc)
      rc = zip__need(st, id, err);
    if (rc)
      return rc;
  } else {
    z = sqlite3_column_text(s, col);
    size = zlen = (size_t)sqlite3_column_bytes(s, col);
    if (!z)
      return hvg_err_set(err, HVG_ENOMEM, "store.claim", NULL);
  }
  char *p = NULL;
  void *m = st__copy_cols_extra(s, cols, n, dst, NULL, size + 1, &p);
  if (!m)
    return hvg_err_set(err, HVG_ENOMEM, "store.claim", NULL);
  if (zipped) {
    size_t got = 0;
    int rc = store_zip_decompress(st->zip, z, zlen, p, size, &got, err);
    if (!rc && got != size)
      rc = hvg_err_set(err, HVG_EIO, "store.zip",
                       "database: a compressed "
                       "Bundle is not the size its frame records");
    if (rc) {
      free(m);
      return rc;
    }
  } else {
    memcpy(p, z, size);
  }
  p[size] = '\0';
  *bundle = p;
  *len = size;
  *mem = m;
  return 0;
}

static int insert_version(store *st, int64_t rec, int64_t version,
                          const store_record *r, int64_t now, int64_t *ver_id,
                          hvg_err *err) {
  sqlite3_stmt *s;
  int rc = st__stmt(st, Q_VER_INS, &s, err);
  if (!rc)
    rc = st__bind_i64(st, s, 1, rec, err);
  if (!rc)
    rc = st__bind_i64(st, s, 2, version, err);
  if (!rc)
    rc = st__bind_blob(st, s, 3, r->hash, STORE_HASH_LEN, err);
  if (!rc)
    rc = st__bind_text(st, s, 4, r->sensitivity, err);
  if (!rc)
    rc = zip__bind_bundle(st, s, 5, r, 0, err);
  if (!rc)
    rc = st__bind_i64(st, s, 6, now, err);
  if (!rc)
    rc = st__exec_done(st, s, "store.put", err);
  if (!rc)
    *ver_id = (int64_t)sqlite3_last_insert_rowid(st->db);
  return rc;
}

/* A live (pending, in-flight or dead) item of an older version. */
typedef struct live_item {
  int64_t id;
  int state;
  char partner[STORE_PARTNER_MAX + 1];
  char *pk; /* malloc'd */
} live_item;

static void live_free(live_item *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(v[i].pk);
  free(v);
}

static int live_items(store *st, int64_t rec, live_item **out, size_t *n_out,
                      hvg_err *err) {
  *out = NULL;
  *n_out = 0;
  sqlite3_stmt *s;
  int rc = st__stmt(st, Q_OB_REC_LIVE, &s, err);
  if (!rc)
    rc = st__bind_i64(st, s, 1, rec, err);
  if (rc)
    return rc;
  live_item *v = NULL;
  size_t n = 0, cap = 0;
  while ((rc = st__step(st, s, "store.put", err)) == SQLITE_ROW) {
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 4;
      live_item *nv = realloc(v, nc * sizeof *nv);
      if (!nv) {
        rc = hvg_err_set(err, HVG_ENOMEM, "store.put", NULL);
        break;
      }
      v = nv;
      cap = nc;
    }
    live_item *it = &v[n];
    it->id = st__col_i64(s, 0);
    it->state = st__col_i(s, 2);
    const unsigned char *p = sqlite3_column_text(s, 1);
    const unsigned char *k = sqlite3_column_text(s, 3);
    it->pk = k ? strdup((const char *)k) : NULL;
    if (!p || !it->pk) {
      free(it->pk);
      rc = hvg_err_set(err, HVG_ENOMEM, "store.put", NULL);
      break;
    }
    snprintf(it->partner, sizeof it->partner, "%s", (const char *)p);
    n++;
  }
  st__done(s);
  if (rc != SQLITE_DONE) {
    live_free(v, n);
    return rc < 0 ? rc : HVG_EIO;
  }
  *out = v;
  *n_out = n;
  return 0;
}

static int supersede(store *st, int64_t id, int64_t now, hvg_err *err) {
  sqlite3_stmt *s;
  int rc = st__stmt(st, Q_OB_SUPERSEDE, &s, err);
  if (!rc)
    rc = st__bind_i64(st, s, 1, id, err);
  if (!rc)
    rc = st__bind_i64(st, s, 2, now, err);
  return rc ? rc : st__exec_done(st, s, "store.put", err);
}

static int put_changed(store *st, const store_record *r, int64_t rec,
                       int64_t version, int64_t now, store_put_result *res,
                       hvg_err *err) {
  sqlite3_stmt *s;
  int rc = st__stmt(st, Q_REC_UPD, &s, err);
  if (!rc)
    rc = st__bind_i64(st, s, 1, rec, err);
  if (!rc)
    rc = st__bind_i64(st, s, 2, version, err);
  if (!rc)
    rc = st__bind_blob(st, s, 3, r->hash, STORE_HASH_LEN, err);
  if (!rc)
    rc = st__bind_text(st, s, 4, r->patient_key, err);
  if (!rc)
    rc = st__bind_i64(st, s, 5, now, err);
  if (!rc)
    rc = st__exec_done(st, s, "store.put", err);
  int64_t ver_id = 0;
  if (!rc)
    rc = insert_version(st, rec, version, r, now, &ver_id, err);
  live_item *live = NULL;
  size_t n_live = 0;
  if (!rc)
    rc = live_items(st, rec, &live, &n_live, err);
  /* stale content is never sent: supersede pending and dead items */
  for (size_t i = 0; !rc && i < n_live; i++) {
    if (live[i].state == ST_INFLIGHT)
      continue;
    rc = supersede(st, live[i].id, now, err);
    if (!rc && live[i].state == ST_PENDING)
      rc = lane_fix(st, live[i].partner, live[i].pk, err);
  }
  for (size_t t = 0; !rc && t < r->n_targets; t++) {
    const char *pk = r->patient_key;
    for (size_t i = 0; i < n_live; i++)
      if (live[i].state == ST_INFLIGHT &&
          strcmp(live[i].partner, r->targets[t].partner) == 0)
        pk = live[i].pk; /* wait behind the version in flight */
    rc = queue_item(st, ver_id, rec, &r->targets[t], pk, 0, now, err);
    if (!rc)
      res->queued++;
  }
  live_free(live, n_live);
  return rc;
}

static int put_unchanged(store *st, const store_record *r, int64_t rec,
                         int64_t version, const char *pk, int64_t now,
                         store_put_result *res, hvg_err *err) {
  int64_t ver_id = 0;
  for (size_t t = 0; t < r->n_targets; t++) {
    sqlite3_stmt *s;
    int rc = st__stmt(st, Q_OB_HAS_PARTNER, &s, err);
    if (!rc)
      rc = st__bind_i64(st, s, 1, rec, err);
    if (!rc)
      rc = st__bind_text(st, s, 2, r->targets[t].partner, err);
    if (rc)
      return rc;
    rc = st__step(st, s, "store.put", err);
    if (rc < 0)
      return rc;
    st__done(s);
    if (rc == SQLITE_ROW)
      continue; /* this partner has (had) a version: nothing to do */
    if (!ver_id) {
      rc = st__stmt(st, Q_VER_GET, &s, err);
      if (!rc)
        rc = st__bind_i64(st, s, 1, rec, err);
      if (!rc)
        rc = st__bind_i64(st, s, 2, version, err);
      if (rc)
        return rc;
      rc = st__step(st, s, "store.put", err);
      if (rc < 0)
        return rc;
      if (rc == SQLITE_ROW)
        ver_id = st__col_i64(s, 0);
      st__done(s);
      if (!ver_id)
        return hvg_err_set(err, HVG_EIO, "store.put",
                           "database: current version row missing");
    }
    rc = queue_item(st, ver_id, rec, &r->targets[t], pk, 0, now, err);
    if (rc)
      return rc;
    res->queued++;
  }
  return 0;
}

/* How put_one treats a record: write it whatever it is (PUT_NOW); or,
 * when it is new, leave it to a fresh run (returns PUT__DEFER, nothing
 * written), otherwise write it (PUT_DEFER) or write nothing and return
 * PUT__BAIL, so that the run before it is written first (PUT_DEFER_BAIL). */
enum { PUT_NOW, PUT_DEFER, PUT_DEFER_BAIL };
enum { PUT__DEFER = 1, PUT__BAIL = 2 };

static int put_one(store *st, const store_record *r, int64_t now,
                   store_put_result *res, int mode, hvg_err *err) {
  memset(res, 0, sizeof *res);
  sqlite3_stmt *s;
  int rc = st__stmt(st, Q_REC_GET, &s, err);
  if (!rc)
    rc = st__bind_text(st, s, 1, r->program, err);
  if (!rc)
    rc = st__bind_text(st, s, 2, r->record_type, err);
  if (!rc)
    rc = st__bind_text(st, s, 3, r->record_id, err);
  if (rc)
    return rc;
  rc = st__step(st, s, "store.put", err);
  if (rc < 0)
    return rc;
  if (rc == SQLITE_ROW && mode == PUT_DEFER_BAIL) {
    st__done(s);
    return PUT__BAIL;
  }
  if (rc == SQLITE_ROW) {
    int64_t rec = st__col_i64(s, 0);
    int64_t version = st__col_i64(s, 1);
    const void *h = sqlite3_column_blob(s, 2);
    int same = h && sqlite3_column_bytes(s, 2) == STORE_HASH_LEN &&
               memcmp(h, r->hash, STORE_HASH_LEN) == 0;
    if (same) {
      const unsigned char *k = sqlite3_column_text(s, 3);
      char *pk = k ? strdup((const char *)k) : NULL;
      st__done(s);
      if (!pk)
        return hvg_err_set(err, HVG_ENOMEM, "store.put", NULL);
      res->status = STORE_PUT_UNCHANGED;
      res->version = version;
      rc = put_unchanged(st, r, rec, version, pk, now, res, err);
      free(pk);
      return rc;
    }
    st__done(s);
    res->status = STORE_PUT_CHANGED;
    res->version = version + 1;
    return put_changed(st, r, rec, version + 1, now, res, err);
  }
  st__done(s);
  /* NEW */
  if (mode != PUT_NOW)
    return PUT__DEFER;
  rc = st__stmt(st, Q_REC_INS, &s, err);
  if (!rc)
    rc = st__bind_text(st, s, 1, r->program, err);
  if (!rc)
    rc = st__bind_text(st, s, 2, r->record_type, err);
  if (!rc)
    rc = st__bind_text(st, s, 3, r->record_id, err);
  if (!rc)
    rc = st__bind_blob(st, s, 4, r->hash, STORE_HASH_LEN, err);
  if (!rc)
    rc = st__bind_text(st, s, 5, r->patient_key, err);
  if (!rc)
    rc = st__bind_i64(st, s, 6, now, err);
  if (!rc)
    rc = st__exec_done(st, s, "store.put", err);
  if (rc)
    return rc;
  int64_t rec = (int64_t)sqlite3_last_insert_rowid(st->db);
  int64_t ver_id = 0;
  rc = insert_version(st, rec, 1, r, now, &ver_id, err);
  res->status = STORE_PUT_NEW;
  res->version = 1;
  for (size_t t = 0; !rc && t < r->n_targets; t++) {
    rc = queue_item(st, ver_id, rec, &r->targets[t], r->patient_key, 1, now,
                    err);
    if (!rc)
      res->queued++;
  }
  return rc;
}

/* New records of a batch written together, three multi-row statements
 * instead of three statements each (a first intake is all new records).
 * At most ST__ROWS records and ST__ROWS outbox rows; every record with its
 * own source key (one seen again is written after the run). */
typedef struct fresh_run {
  const store_record *r[ST__ROWS];
  store_put_result *res[ST__ROWS]; /* NULL: not wanted */
  size_t n, n_items;
} fresh_run;

static int rows_stmt(store *st, int kind, size_t k, sqlite3_stmt **out,
                     hvg_err *err);

static int fresh_has_key(const fresh_run *f, const store_record *r) {
  for (size_t i = 0; i < f->n; i++)
    if (!strcmp(f->r[i]->record_id, r->record_id) &&
        !strcmp(f->r[i]->record_type, r->record_type) &&
        !strcmp(f->r[i]->program, r->program))
      return 1;
  return 0;
}

/* Write the run as put_one would have written its records one by one:
 * ids follow the tables' largest (this transaction holds the write lock),
 * and an item is its lane's head when nothing else is in the lane, in the
 * store or earlier in the run. Empties the run. */
static int fresh_flush(store *st, fresh_run *f, int64_t now, hvg_err *err) {
  size_t n = f->n, n_items = f->n_items;
  f->n = f->n_items = 0;
  if (!n)
    return 0;
  sqlite3_stmt *s;
  int rc = st__stmt(st, Q_MAX_IDS, &s, err);
  if (!rc)
    rc = st__step(st, s, "store.put", err);
  if (rc < 0)
    return rc;
  if (rc != SQLITE_ROW) {
    st__done(s);
    return hvg_err_set(err, HVG_EIO, "store.put", "database: no ids");
  }
  int64_t rid = st__col_i64(s, 0), vid = st__col_i64(s, 1),
          oid = st__col_i64(s, 2);
  st__done(s);
  int head[ST__ROWS];
  size_t k = 0;
  for (size_t j = 0; j < n; j++)
    for (size_t t = 0; t < f->r[j]->n_targets; t++, k++) {
      const char *partner = f->r[j]->targets[t].partner,
                 *pk = f->r[j]->patient_key;
      int seen = 0;
      for (size_t jj = 0; jj < j && !seen; jj++)
        for (size_t tt = 0; tt < f->r[jj]->n_targets && !seen; tt++)
          seen = !strcmp(f->r[jj]->patient_key, pk) &&
                 !strcmp(f->r[jj]->targets[tt].partner, partner);
      int busy = seen ? 1 : lane_busy(st, partner, pk, err);
      if (busy < 0)
        return busy;
      head[k] = !busy;
    }
  rc = rows_stmt(st, 2, n, &s, err);
  for (size_t j = 0; !rc && j < n; j++) {
    const store_record *r = f->r[j];
    int b = (int)j * 8;
    rc = st__bind_i64(st, s, b + 1, rid + 1 + (int64_t)j, err);
    if (!rc)
      rc = st__bind_text(st, s, b + 2, r->program, err);
    if (!rc)
      rc = st__bind_text(st, s, b + 3, r->record_type, err);
    if (!rc)
      rc = st__bind_text(st, s, b + 4, r->record_id, err);
    if (!rc)
      rc = st__bind_blob(st, s, b + 5, r->hash, STORE_HASH_LEN, err);
    if (!rc)
      rc = st__bind_text(st, s, b + 6, r->patient_key, err);
    if (!rc)
      rc = st__bind_i64(st, s, b + 7, now, err);
    if (!rc)
      rc = st__bind_i64(st, s, b + 8, now, err);
  }
  if (!rc)
    rc = st__exec_done(st, s, "store.put", err);
  if (!rc)
    rc = rows_stmt(st, 3, n, &s, err);
  for (size_t j = 0; !rc && j < n; j++) {
    const store_record *r = f->r[j];
    int b = (int)j * 6;
    rc = st__bind_i64(st, s, b + 1, vid + 1 + (int64_t)j, err);
    if (!rc)
      rc = st__bind_i64(st, s, b + 2, rid + 1 + (int64_t)j, err);
    if (!rc)
      rc = st__bind_blob(st, s, b + 3, r->hash, STORE_HASH_LEN, err);
    if (!rc)
      rc = st__bind_text(st, s, b + 4, r->sensitivity, err);
    if (!rc)
      rc = zip__bind_bundle(st, s, b + 5, r, 1, err);
    if (!rc)
      rc = st__bind_i64(st, s, b + 6, now, err);
  }
  if (!rc)
    rc = st__exec_done(st, s, "store.put", err);
  if (!rc && n_items)
    rc = rows_stmt(st, 4, n_items, &s, err);
  k = 0;
  for (size_t j = 0; !rc && n_items && j < n; j++)
    for (size_t t = 0; !rc && t < f->r[j]->n_targets; t++, k++) {
      const store_record *r = f->r[j];
      int b = (int)k * 10;
      rc = st__bind_i64(st, s, b + 1, oid + 1 + (int64_t)k, err);
      if (!rc)
        rc = st__bind_i64(st, s, b + 2, vid + 1 + (int64_t)j, err);
      if (!rc)
        rc = st__bind_i64(st, s, b + 3, rid + 1 + (int64_t)j, err);
      if (!rc)
        rc = st__bind_text(st, s, b + 4, r->targets[t].partner, err);
      if (!rc)
        rc = st__bind_text(st, s, b + 5, r->patient_key, err);
      if (!rc)
        rc = st__bind_text(st, s, b + 6, r->targets[t].consent_id, err);
      if (!rc)
        rc = st__bind_i64(st, s, b + 7, head[k], err);
      for (int c = 8; !rc && c <= 10; c++)
        rc = st__bind_i64(st, s, b + c, now, err);
    }
  if (!rc && n_items)
    rc = st__exec_done(st, s, "store.put", err);
  for (size_t j = 0; !rc && j < n; j++)
    if (f->res[j]) {
      f->res[j]->status = STORE_PUT_NEW;
      f->res[j]->version = 1;
      f->res[j]->queued = f->r[j]->n_targets;
    }
  return rc;
}

int store_put_records(store *st, const store_record *batch, size_t n,
                      int64_t now_ms, store_put_result *results,
                      hvg_err *err) {
  if (!st || (!batch && n))
    return hvg_err_set(err, HVG_EINVAL, "store.put", "NULL argument");
  for (size_t i = 0; i < n; i++) {
    int rc = check_record(&batch[i], i, err);
    if (rc)
      return rc;
  }
  if (n == 0)
    return 0;
  int rc = st__tx_begin(st, err);
  if (rc)
    return rc;
  rc = zip__prepare(st, batch, n, now_ms, err);
  fresh_run f;
  f.n = f.n_items = 0;
  for (size_t i = 0; !rc && i < n; i++) {
    const store_record *r = &batch[i];
    store_put_result tmp, *res = results ? &results[i] : &tmp;
    int can = r->n_targets <= ST__ROWS;
    if (f.n && (!can || f.n == ST__ROWS ||
                f.n_items + r->n_targets > ST__ROWS || fresh_has_key(&f, r)))
      rc = fresh_flush(st, &f, now_ms, err);
    if (!rc)
      rc = put_one(st, r, now_ms, res,
                   !can  ? PUT_NOW
                   : f.n ? PUT_DEFER_BAIL
                         : PUT_DEFER,
                   err);
    if (rc == PUT__BAIL) {
      rc = fresh_flush(st, &f, now_ms, err);
      if (!rc)
        rc = put_one(st, r, now_ms, res, PUT_DEFER, err);
    }
    if (rc == PUT__DEFER) {
      f.r[f.n] = r;
      f.res[f.n] = results ? res : NULL;
      f.n++;
      f.n_items += r->n_targets;
      rc = 0;
    }
  }
  if (!rc)
    rc = fresh_flush(st, &f, now_ms, err);
  if (rc) /* a dictionary trained here is rolled back with the batch */
    st->zip_stale = 1;
  return st__tx_end(st, rc, err);
}

/* ---- outbox ------------------------------------------------------------- */

void store_items_release(store_item *items, size_t n) {
  if (!items)
    return;
  for (size_t i = 0; i < n; i++) {
    free(items[i].mem_);
    memset(&items[i], 0, sizeof items[i]);
  }
}

int store_claim(store *st, const char *partner, size_t max, int64_t now_ms,
                int64_t lease_ms, store_item *out, size_t *n_out,
                hvg_err *err) {
  if (n_out)
    *n_out = 0;
  if (!st || !partner || !n_out || (!out && max))
    return hvg_err_set(err, HVG_EINVAL, "store.claim", "NULL argument");
  if (lease_ms <= 0)
    return hvg_err_set(err, HVG_EINVAL, "store.claim.lease",
                       "must be positive");
  if (max == 0)
    return 0;
  if (max > (size_t)INT32_MAX)
    max = (size_t)INT32_MAX;
  int rc = st__tx_begin(st, err);
  if (rc)
    return rc;
  sqlite3_stmt *s;
  size_t n = 0;
  rc = st__stmt(st, Q_CLAIM_SEL, &s, err);
  if (!rc)
    rc = st__bind_text(st, s, 1, partner, err);
  if (!rc)
    rc = st__bind_i64(st, s, 2, now_ms, err);
  if (!rc)
    rc = st__bind_i64(st, s, 3, (int64_t)max, err);
  if (rc)
    return st__tx_end(st, rc, err);
  /* collect first: rows are updated only after the SELECT is finished */
  while ((rc = st__step(st, s, "store.claim", err)) == SQLITE_ROW) {
    store_item *it = &out[n];
    memset(it, 0, sizeof *it);
    it->id = st__col_i64(s, 0);
    it->lease = st__col_i64(s, 1) + 1;
    it->lease_until = now_ms + lease_ms;
    it->attempts = st__col_i(s, 2) + 1;
    it->version = st__col_i64(s, 5);
    static const int cols[] = {3, 4, 6, 8, 9, 10, 11};
    const char **dst[] = {&it->patient_key, &it->consent_id,  &it->sensitivity,
                          &it->program,     &it->record_type, &it->record_id,
                          &it->partner};
    rc = zip__copy_row(st, s, 7, cols, 7, dst, &it->mem_, &it->bundle,
                       &it->bundle_len, err);
    if (rc)
      break;
    n++;
  }
  st__done(s);
  if (rc == SQLITE_DONE)
    rc = 0;
  else if (rc > 0)
    rc = HVG_EIO;
  for (size_t i = 0; !rc && i < n; i++) {
    rc = st__stmt(st, Q_CLAIM_UPD, &s, err);
    if (!rc)
      rc = st__bind_i64(st, s, 1, out[i].id, err);
    if (!rc)
      rc = st__bind_i64(st, s, 2, out[i].lease_until, err);
    if (!rc)
      rc = st__bind_i64(st, s, 3, now_ms, err);
    if (!rc)
      rc = st__exec_done(st, s, "store.claim", err);
  }
  rc = st__tx_end(st, rc, err);
  if (rc) {
    store_items_release(out, n);
    return rc;
  }
  *n_out = n;
  return 0;
}

/* Load an outbox row and check it is in flight under the item's lease. */
typedef struct ob_row {
  int state;
  int64_t claims;
  int64_t record;
  char partner[STORE_PARTNER_MAX + 1];
  char *pk; /* malloc'd */
} ob_row;

static int ob_get(store *st, int64_t id, ob_row *row, hvg_err *err) {
  memset(row, 0, sizeof *row);
  sqlite3_stmt *s;
  int rc = st__stmt(st, Q_OB_GET, &s, err);
  if (!rc)
    rc = st__bind_i64(st, s, 1, id, err);
  if (rc)
    return rc;
  rc = st__step(st, s, "store.outbox", err);
  if (rc < 0)
    return rc;
  if (rc == SQLITE_DONE) {
    st__done(s);
    return hvg_err_set(err, HVG_ENOTFOUND, "store.outbox",
                       "no outbox item %lld", (long long)id);
  }
  row->state = st__col_i(s, 0);
  row->claims = st__col_i64(s, 1);
  row->record = st__col_i64(s, 4);
  const unsigned char *p = sqlite3_column_text(s, 2);
  const unsigned char *k = sqlite3_column_text(s, 3);
  row->pk = k ? strdup((const char *)k) : NULL;
  if (p)
    snprintf(row->partner, sizeof row->partner, "%s", (const char *)p);
  st__done(s);
  if (!p || !row->pk) {
    free(row->pk);
    row->pk = NULL;
    return hvg_err_set(err, HVG_ENOMEM, "store.outbox", NULL);
  }
  return 0;
}

static int ob_leased(store *st, const store_item *it, ob_row *row,
                     hvg_err *err) {
  int rc = ob_get(st, it->id, row, err);
  if (rc == HVG_ENOTFOUND)
    return hvg_err_set(err, HVG_ESTATE, "store.outbox",
                       "outbox item %lld does not exist", (long long)it->id);
  if (rc)
    return rc;
  if (row->state != ST_INFLIGHT || row->claims != it->lease) {
    free(row->pk);
    row->pk = NULL;
    return hvg_err_set(err, HVG_ESTATE, "store.outbox",
                       "outbox item %lld is not in flight under this lease "
                       "(it expired and was claimed again, or is finished)",
                       (long long)it->id);
  }
  return 0;
}

static int ob_update(store *st, int q, int64_t id, int64_t a, const char *t,
                     int64_t b, hvg_err *err) {
  /* binds ?1 id, ?2 a, then for OB_RETRY ?3 t and ?4 b */
  sqlite3_stmt *s;
  int rc = st__stmt(st, q, &s, err);
  if (!rc)
    rc = st__bind_i64(st, s, 1, id, err);
  if (!rc)
    rc = st__bind_i64(st, s, 2, a, err);
  if (!rc && q == Q_OB_RETRY) {
    rc = st__bind_text(st, s, 3, t, err);
    if (!rc)
      rc = st__bind_i64(st, s, 4, b, err);
  }
  return rc ? rc : st__exec_done(st, s, "store.outbox", err);
}

/* Binds audit row `row` of s (10 parameters a row: at, then the texts);
 * the item fills what the entry leaves NULL. */
static int audit_bind(store *st, sqlite3_stmt *s, int row,
                      const store_audit_entry *e, const store_item *it,
                      hvg_err *err) {
#define STORE__DEF(f) (e->f ? e->f : it ? it->f : NULL)
  const char *vals[] = {e->actor,
                        e->action,
                        STORE__DEF(partner),
                        STORE__DEF(program),
                        STORE__DEF(record_type),
                        STORE__DEF(record_id),
                        e->resources,
                        STORE__DEF(consent_id),
                        e->detail};
#undef STORE__DEF
  int b = row * 10;
  int rc = st__bind_i64(st, s, b + 1, e->at_ms, err);
  for (int k = 0; !rc && k < 9; k++)
    rc = st__bind_text(st, s, b + k + 2, vals[k], err);
  return rc;
}

static int audit_insert(store *st, const store_audit_entry *e,
                        const store_item *it, hvg_err *err) {
  sqlite3_stmt *s;
  int rc = st__stmt(st, Q_AUDIT_INS, &s, err);
  if (!rc)
    rc = audit_bind(st, s, 0, e, it, err);
  return rc ? rc : st__exec_done(st, s, "store.audit", err);
}

static int check_audit(const store_audit_entry *e, hvg_err *err) {
  int rc = st__need(e->actor, "audit.actor", STORE_KEY_MAX, err);
  return rc ? rc : st__need(e->action, "audit.action", STORE_KEY_MAX, err);
}

static int check_outcome(const store_outcome *o, size_t i, hvg_err *err) {
  char f[64];
  if (!o->item) {
    snprintf(f, sizeof f, "outcomes[%zu].item", i);
    return hvg_err_set(err, HVG_EINVAL, f, "required");
  }
  switch (o->kind) {
  case STORE_DELIVERED:
    if (!o->ids && o->n_ids) {
      snprintf(f, sizeof f, "outcomes[%zu].ids", i);
      return hvg_err_set(err, HVG_EINVAL, f, "NULL with n_ids > 0");
    }
    for (size_t k = 0; k < o->n_ids; k++) {
      const store_assigned_id *d = &o->ids[k];
      if (d->resource_type && *d->resource_type && d->identifier &&
          *d->identifier && d->id && *d->id &&
          strlen(d->resource_type) <= STORE_KEY_MAX &&
          strlen(d->identifier) <= STORE_KEY_MAX * 2 &&
          strlen(d->id) <= STORE_KEY_MAX)
        continue; /* the field is named only when something is wrong */
      snprintf(f, sizeof f, "outcomes[%zu].ids[%zu]", i, k);
      int rc = st__need(d->resource_type, f, STORE_KEY_MAX, err);
      if (!rc)
        rc = st__need(d->identifier, f, STORE_KEY_MAX * 2, err);
      if (!rc)
        rc = st__need(d->id, f, STORE_KEY_MAX, err);
      if (rc)
        return rc;
    }
    return o->audit ? check_audit(o->audit, err) : 0;
  case STORE_RETRY:
    return 0;
  case STORE_DEAD:
    if (!o->outcome_json && o->outcome_len) {
      snprintf(f, sizeof f, "outcomes[%zu].outcome_json", i);
      return hvg_err_set(err, HVG_EINVAL, f, "NULL with outcome_len > 0");
    }
    return 0;
  default:
    snprintf(f, sizeof f, "outcomes[%zu].kind", i);
    return hvg_err_set(err, HVG_EINVAL, f, "unknown outcome");
  }
}

/* What store_finish writes of a round's deliveries that nothing in the
 * round reads back: server ids, audit entries and the delivered counts are
 * gathered and written at the end of the transaction, several rows per
 * statement. A write statement on a table with a trigger (audit) or whose
 * upsert sets a foreign key (server_ids.record) first copies each page it
 * changes to a statement journal; one statement for many rows copies each
 * page once, and runs the statement machinery once. Of several server ids
 * of one resource in a round (the practice's Organization, the home
 * visitor's Practitioner in many Bundles), only the last is written: the
 * one the transaction would leave in place after writing them all. The
 * rest keep their order. */
typedef struct st__sid {
  const store_assigned_id *id;
  int64_t record;
  const char *partner; /* in the round's partner pool */
  int dropped;         /* a later row of the round sets the same resource */
} st__sid;

typedef struct st__round {
  int64_t now;
  st__sid *sid; /* the round's server ids, n_sid of cap_sid */
  size_t n_sid, cap_sid;
  uint32_t *hash; /* hcap slots: row index + 1, 0 free */
  size_t hcap;
  char (*partners)[STORE_PARTNER_MAX + 1]; /* distinct partners seen */
  size_t n_partners;
  size_t n_audit;
  const store_audit_entry *audit[ST__ROWS];
  const store_item *audit_item[ST__ROWS];
  char partner[STORE_PARTNER_MAX + 1]; /* of the deliveries counted */
  int64_t delivered;
} st__round;

static const char *const ROWS_SQL[ST__ROW_KINDS][3] = {
    {"INSERT INTO server_ids(partner, resource_type, identifier, server_id,"
     " version_id, record, updated_at) VALUES ",
     "(?,?,?,?,?,?,?)",
     " ON CONFLICT(partner, resource_type, identifier) DO UPDATE"
     " SET server_id = excluded.server_id,"
     " version_id = excluded.version_id, record = excluded.record,"
     " updated_at = excluded.updated_at"},
    {"INSERT INTO audit(at, actor, action, partner, program, record_type,"
     " record_id, resources, consent_id, detail) VALUES ",
     "(?,?,?,?,?,?,?,?,?,?)", ""},
    /* new records (put_fresh): as Q_REC_INS, Q_VER_INS, Q_OB_INS */
    {"INSERT INTO records(id, program, record_type, record_id, version,"
     " hash, patient_key, created_at, updated_at) VALUES ",
     "(?,?,?,?,1,?,?,?,?)", ""},
    {"INSERT INTO record_versions(id, record, version, hash, sensitivity,"
     " bundle, created_at) VALUES ",
     "(?,?,1,?,?,?,?)", ""},
    {"INSERT INTO outbox(id, version_id, record, partner, patient_key,"
     " consent_id, state, head, due_at, created_at, updated_at) VALUES ",
     "(?,?,?,?,?,?,0,?,?,?,?)", ""}};

/* The cached statement writing k rows (1..ST__ROWS) of a kind of
 * ROWS_SQL. */
static int rows_stmt(store *st, int kind, size_t k, sqlite3_stmt **out,
                     hvg_err *err) {
  char sql[1024];
  size_t n = 0;
  if (!st->qrows[kind][k - 1]) {
    n = (size_t)snprintf(sql, sizeof sql, "%s", ROWS_SQL[kind][0]);
    for (size_t i = 0; i < k && n < sizeof sql; i++)
      n += (size_t)snprintf(sql + n, sizeof sql - n, "%s%s", i ? "," : "",
                            ROWS_SQL[kind][1]);
    if (n < sizeof sql)
      n += (size_t)snprintf(sql + n, sizeof sql - n, "%s", ROWS_SQL[kind][2]);
    if (n >= sizeof sql)
      return hvg_err_set(err, HVG_ENOMEM, "store.finish", "query too long");
  }
  return st__prepare(st, &st->qrows[kind][k - 1], sql, out, err);
}

/* Room for the server ids of outcomes o[0..n) (one block, freed with
 * round_free): 0 or HVG_ENOMEM. */
static int round_alloc(st__round *r, const store_outcome *o, size_t n,
                       hvg_err *err) {
  size_t ids = 0;
  for (size_t i = 0; i < n; i++)
    if (o[i].kind == STORE_DELIVERED)
      ids += o[i].n_ids;
  if (!ids)
    return 0;
  size_t hcap = 2;
  while (hcap < 2 * ids)
    hcap *= 2;
  size_t a = ids * sizeof *r->sid, b = hcap * sizeof *r->hash;
  char *m = malloc(a + b + n * sizeof *r->partners);
  if (!m)
    return hvg_err_set(err, HVG_ENOMEM, "store.finish", NULL);
  r->sid = (st__sid *)(void *)m;
  r->cap_sid = ids;
  r->hash = (uint32_t *)(void *)(m + a);
  r->hcap = hcap;
  r->partners = (char(*)[STORE_PARTNER_MAX + 1])(void *)(m + a + b);
  return 0;
}

static void round_free(st__round *r) {
  free(r->sid);
  r->sid = NULL;
}

static uint64_t sid_hash(const st__sid *x) {
  const char *parts[3] = {x->partner, x->id->resource_type, x->id->identifier};
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (int k = 0; k < 3; k++) {
    for (const unsigned char *c = (const unsigned char *)parts[k]; *c; c++)
      h = (h ^ *c) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull; /* between parts */
  }
  return h;
}

static int sid_same(const st__sid *x, const st__sid *y) {
  return !strcmp(x->id->identifier, y->id->identifier) &&
         !strcmp(x->id->resource_type, y->id->resource_type) &&
         !strcmp(x->partner, y->partner);
}

/* Rows chunk[0..k) in one statement. */
static int round_write_sids(store *st, st__round *r, const st__sid **chunk,
                            size_t k, hvg_err *err) {
  sqlite3_stmt *s;
  int rc = rows_stmt(st, 0, k, &s, err);
  for (size_t i = 0; !rc && i < k; i++) {
    const store_assigned_id *d = chunk[i]->id;
    int b = (int)i * 7;
    rc = st__bind_text(st, s, b + 1, chunk[i]->partner, err);
    if (!rc)
      rc = st__bind_text(st, s, b + 2, d->resource_type, err);
    if (!rc)
      rc = st__bind_text(st, s, b + 3, d->identifier, err);
    if (!rc)
      rc = st__bind_text(st, s, b + 4, d->id, err);
    if (!rc)
      rc = st__bind_text(st, s, b + 5, d->version_id, err);
    if (!rc)
      rc = st__bind_i64(st, s, b + 6, chunk[i]->record, err);
    if (!rc)
      rc = st__bind_i64(st, s, b + 7, r->now, err);
  }
  return rc ? rc : st__exec_done(st, s, "store.ack", err);
}

/* The round's server ids: the last of each resource, in order, ST__ROWS
 * per statement. */
static int round_flush_sids(store *st, st__round *r, hvg_err *err) {
  if (!r->n_sid)
    return 0;
  memset(r->hash, 0, r->hcap * sizeof *r->hash);
  for (size_t i = r->n_sid; i-- > 0;) {
    st__sid *x = &r->sid[i];
    size_t k = (size_t)sid_hash(x) & (r->hcap - 1);
    for (;; k = (k + 1) & (r->hcap - 1)) {
      if (!r->hash[k]) {
        r->hash[k] = (uint32_t)i + 1;
        break;
      }
      if (sid_same(&r->sid[r->hash[k] - 1], x)) {
        x->dropped = 1; /* a later row sets it */
        break;
      }
    }
  }
  int rc = 0;
  for (size_t i = 0; !rc && i < r->n_sid;) {
    const st__sid *chunk[ST__ROWS];
    size_t k = 0;
    for (; i < r->n_sid && k < ST__ROWS; i++)
      if (!r->sid[i].dropped)
        chunk[k++] = &r->sid[i];
    if (k)
      rc = round_write_sids(st, r, chunk, k, err);
  }
  r->n_sid = 0;
  return rc;
}

static int round_flush_audit(store *st, st__round *r, hvg_err *err) {
  if (!r->n_audit)
    return 0;
  sqlite3_stmt *s;
  int rc = rows_stmt(st, 1, r->n_audit, &s, err);
  for (size_t i = 0; !rc && i < r->n_audit; i++)
    rc = audit_bind(st, s, (int)i, r->audit[i], r->audit_item[i], err);
  r->n_audit = 0;
  return rc ? rc : st__exec_done(st, s, "store.audit", err);
}

static int round_flush_count(store *st, st__round *r, hvg_err *err) {
  if (!r->delivered)
    return 0;
  sqlite3_stmt *s;
  int rc = st__stmt(st, Q_PSTAT_DELIVERED, &s, err);
  if (!rc)
    rc = st__bind_text(st, s, 1, r->partner, err);
  if (!rc)
    rc = st__bind_i64(st, s, 2, r->delivered, err);
  r->delivered = 0;
  return rc ? rc : st__exec_done(st, s, "store.ack", err);
}

/* Everything gathered: at the end of the round, before its commit. */
static int round_flush(store *st, st__round *r, hvg_err *err) {
  int rc = round_flush_sids(st, r, err);
  if (!rc)
    rc = round_flush_audit(st, r, err);
  return rc ? rc : round_flush_count(st, r, err);
}

static int finish_delivered(store *st, st__round *r, const store_outcome *o,
                            const ob_row *row, int64_t now, hvg_err *err) {
  const store_item *it = o->item;
  int rc = ob_update(st, Q_OB_ACK, it->id, now, NULL, 0, err);
  if (!rc && o->n_ids) { /* the partner, in the round's pool */
    if (!r->n_partners || strcmp(r->partners[r->n_partners - 1], row->partner))
      memcpy(r->partners[r->n_partners++], row->partner, sizeof row->partner);
    for (size_t i = 0; i < o->n_ids && r->n_sid < r->cap_sid; i++)
      r->sid[r->n_sid++] =
          (st__sid){&o->ids[i], row->record, r->partners[r->n_partners - 1], 0};
  }
  if (!rc && r->delivered && strcmp(r->partner, row->partner))
    rc = round_flush_count(st, r, err); /* another partner's count */
  if (!rc) {
    memcpy(r->partner, row->partner, sizeof row->partner);
    r->delivered++;
  }
  if (!rc)
    rc = lane_next(st, row->partner, row->pk, err);
  if (!rc && o->audit) {
    if (r->n_audit == ST__ROWS)
      rc = round_flush_audit(st, r, err);
    if (!rc) {
      r->audit[r->n_audit] = o->audit;
      r->audit_item[r->n_audit++] = it;
    }
  }
  if (!rc && it->record_type && strcmp(it->record_type, "referral") == 0) {
    sqlite3_stmt *s; /* the loop's "sent" date */
    rc = st__stmt(st, Q_REF_SENT, &s, err);
    if (!rc)
      rc = st__bind_text(st, s, 1, it->program, err);
    if (!rc)
      rc = st__bind_text(st, s, 2, it->record_id, err);
    if (!rc)
      rc = st__bind_i64(st, s, 3, now, err);
    if (!rc)
      rc = st__exec_done(st, s, "store.ack", err);
  }
  return rc;
}

static int finish_dead(store *st, const store_outcome *o, const ob_row *row,
                       int64_t now, hvg_err *err) {
  const store_item *it = o->item;
  int rc = ob_update(st, Q_OB_DEAD, it->id, now, NULL, 0, err);
  if (!rc) {
    sqlite3_stmt *s;
    rc = st__stmt(st, Q_DL_PUT, &s, err);
    if (!rc)
      rc = st__bind_i64(st, s, 1, it->id, err);
    if (!rc)
      rc = st__bind_i64(st, s, 2, o->http_status, err);
    if (!rc)
      rc = st__bind_textn(st, s, 3, o->outcome_json, o->outcome_len, err);
    if (!rc)
      rc = st__bind_text(st, s, 4, o->hint, err);
    if (!rc)
      rc = st__bind_i64(st, s, 5, now, err);
    if (!rc)
      rc = st__exec_done(st, s, "store.dead", err);
  }
  if (!rc)
    rc = lane_next(st, row->partner, row->pk, err);
  return rc;
}

int store_finish(store *st, store_outcome *o, size_t n, int64_t now_ms,
                 hvg_err *err) {
  if (!st || (!o && n))
    return hvg_err_set(err, HVG_EINVAL, "store.finish", "NULL argument");
  for (size_t i = 0; i < n; i++) {
    int rc = check_outcome(&o[i], i, err);
    if (rc)
      return rc;
  }
  if (n == 0)
    return 0;
  int rc = st__tx_begin(st, err);
  if (rc)
    return rc;
  st__round round, *r = &round;
  memset(r, 0, sizeof *r);
  r->now = now_ms;
  if ((rc = round_alloc(r, o, n, err)))
    return st__tx_end(st, rc, err);
  for (size_t i = 0; !rc && i < n; i++) {
    ob_row row;
    hvg_err item_err;
    hvg_err_clear(&item_err);
    o[i].result = ob_leased(st, o[i].item, &row, &item_err);
    if (o[i].result == HVG_ESTATE)
      continue; /* this item only: someone else holds it now */
    if (o[i].result) {
      rc = o[i].result;
      if (err)
        *err = item_err;
      break;
    }
    switch (o[i].kind) {
    case STORE_DELIVERED:
      rc = finish_delivered(st, r, &o[i], &row, now_ms, err);
      break;
    case STORE_RETRY:
      rc = ob_update(st, Q_OB_RETRY, o[i].item->id, o[i].next_attempt_ms,
                     o[i].reason, now_ms, err);
      break;
    default:
      rc = finish_dead(st, &o[i], &row, now_ms, err);
      break;
    }
    free(row.pk);
  }
  if (!rc)
    rc = round_flush(st, r, err);
  round_free(r);
  return st__tx_end(st, rc, err);
}

/* One outcome: the transaction's error, or the item's. */
static int finish1(store *st, store_outcome *o, int64_t now, hvg_err *err) {
  int rc = store_finish(st, o, 1, now, err);
  if (rc)
    return rc;
  if (o->result == HVG_ESTATE)
    return hvg_err_set(err, HVG_ESTATE, "store.outbox",
                       "outbox item %lld is not in flight under this lease "
                       "(it expired and was claimed again, or is finished)",
                       (long long)o->item->id);
  return o->result;
}

int store_ack(store *st, const store_item *it, const store_assigned_id *ids,
              size_t n_ids, const store_audit_entry *audit, int64_t now_ms,
              hvg_err *err) {
  if (!st || !it)
    return hvg_err_set(err, HVG_EINVAL, "store.ack", "NULL argument");
  store_outcome o = {0};
  o.item = it;
  o.kind = STORE_DELIVERED;
  o.ids = ids;
  o.n_ids = n_ids;
  o.audit = audit;
  return finish1(st, &o, now_ms, err);
}

int store_retry(store *st, const store_item *it, int64_t next_attempt_ms,
                const char *reason, int64_t now_ms, hvg_err *err) {
  if (!st || !it)
    return hvg_err_set(err, HVG_EINVAL, "store.retry", "NULL argument");
  store_outcome o = {0};
  o.item = it;
  o.kind = STORE_RETRY;
  o.next_attempt_ms = next_attempt_ms;
  o.reason = reason;
  return finish1(st, &o, now_ms, err);
}

int store_dead(store *st, const store_item *it, int http_status,
               const char *outcome_json, size_t outcome_len, const char *hint,
               int64_t now_ms, hvg_err *err) {
  if (!st || !it)
    return hvg_err_set(err, HVG_EINVAL, "store.dead", "NULL argument");
  store_outcome o = {0};
  o.item = it;
  o.kind = STORE_DEAD;
  o.http_status = http_status;
  o.outcome_json = outcome_json;
  o.outcome_len = outcome_len;
  o.hint = hint;
  return finish1(st, &o, now_ms, err);
}

int store_server_id(store *st, const char *partner, const char *resource_type,
                    const char *identifier, hvg_buf *id, hvg_buf *version_id,
                    hvg_err *err) {
  if (!st || !partner || !resource_type || !identifier)
    return hvg_err_set(err, HVG_EINVAL, "store.server_id", "NULL argument");
  sqlite3_stmt *s;
  int rc = st__stmt(st, Q_SID_GET, &s, err);
  if (!rc)
    rc = st__bind_text(st, s, 1, partner, err);
  if (!rc)
    rc = st__bind_text(st, s, 2, resource_type, err);
  if (!rc)
    rc = st__bind_text(st, s, 3, identifier, err);
  if (rc)
    return rc;
  rc = st__step(st, s, "store.server_id", err);
  if (rc < 0)
    return rc;
  if (rc == SQLITE_DONE) {
    st__done(s);
    return hvg_err_set(err, HVG_ENOTFOUND, "store.server_id",
                       "no server id stored for this resource");
  }
  rc = 0;
  for (int c = 0; c < 2 && !rc; c++) {
    hvg_buf *b = c == 0 ? id : version_id;
    if (!b)
      continue;
    const unsigned char *t = sqlite3_column_text(s, c);
    size_t len = (size_t)sqlite3_column_bytes(s, c);
    if (t)
      rc = hvg_buf_add(b, t, len);
    else if (sqlite3_column_type(s, c) != SQLITE_NULL)
      rc = HVG_ENOMEM;
    if (rc)
      rc = hvg_err_set(err, rc, "store.server_id", NULL);
  }
  st__done(s);
  return rc;
}

/* Replay one id inside a transaction: 1 replayed, 0 skipped, <0 error. */
static int replay_one(store *st, int64_t id, int64_t now, hvg_err *err) {
  ob_row row;
  int rc = ob_get(st, id, &row, err);
  if (rc == HVG_ENOTFOUND) {
    hvg_err_clear(err);
    return 0;
  }
  if (rc)
    return rc;
  if (row.state != ST_DEAD) {
    free(row.pk);
    return 0;
  }
  rc = ob_update(st, Q_OB_REPLAY, id, now, NULL, 0, err);
  if (!rc)
    rc = lane_fix(st, row.partner, row.pk, err);
  free(row.pk);
  return rc ? rc : 1;
}

int store_replay(store *st, const int64_t *ids, size_t n, int64_t now_ms,
                 size_t *replayed, hvg_err *err) {
  if (replayed)
    *replayed = 0;
  if (!st || (!ids && n))
    return hvg_err_set(err, HVG_EINVAL, "store.replay", "NULL argument");
  int rc = st__tx_begin(st, err);
  if (rc)
    return rc;
  size_t count = 0;
  for (size_t i = 0; !rc && i < n; i++) {
    int r = replay_one(st, ids[i], now_ms, err);
    if (r < 0)
      rc = r;
    else
      count += (size_t)r;
  }
  rc = st__tx_end(st, rc, err);
  if (!rc && replayed)
    *replayed = count;
  return rc;
}

int store_replay_all(store *st, const char *partner, int64_t now_ms,
                     size_t *replayed, hvg_err *err) {
  if (replayed)
    *replayed = 0;
  if (!st)
    return hvg_err_set(err, HVG_EINVAL, "store.replay", "NULL argument");
  int rc = st__tx_begin(st, err);
  if (rc)
    return rc;
  sqlite3_stmt *s;
  rc = st__stmt(st, partner ? Q_DEAD_IDS_PARTNER : Q_DEAD_IDS_ALL, &s, err);
  if (!rc && partner)
    rc = st__bind_text(st, s, 1, partner, err);
  if (rc)
    return st__tx_end(st, rc, err);
  int64_t *ids = NULL;
  size_t n = 0, cap = 0;
  while ((rc = st__step(st, s, "store.replay", err)) == SQLITE_ROW) {
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 64;
      int64_t *ni = realloc(ids, nc * sizeof *ni);
      if (!ni) {
        rc = hvg_err_set(err, HVG_ENOMEM, "store.replay", NULL);
        break;
      }
      ids = ni;
      cap = nc;
    }
    ids[n++] = st__col_i64(s, 0);
  }
  st__done(s);
  if (rc == SQLITE_DONE)
    rc = 0;
  else if (rc > 0)
    rc = HVG_EIO;
  size_t count = 0;
  for (size_t i = 0; !rc && i < n; i++) {
    int r = replay_one(st, ids[i], now_ms, err);
    if (r < 0)
      rc = r;
    else
      count += (size_t)r;
  }
  free(ids);
  rc = st__tx_end(st, rc, err);
  if (!rc && replayed)
    *replayed = count;
  return rc;
}

void store_dead_letters_release(store_dead_letter *d, size_t n) {
  if (!d)
    return;
  for (size_t i = 0; i < n; i++) {
    free(d[i].mem_);
    memset(&d[i], 0, sizeof d[i]);
  }
}

int store_dead_list(store *st, const char *partner, int64_t after_id,
                    size_t max, store_dead_letter *out, size_t *n_out,
                    hvg_err *err) {
  if (n_out)
    *n_out = 0;
  if (!st || !n_out || (!out && max))
    return hvg_err_set(err, HVG_EINVAL, "store.dead_list", "NULL argument");
  if (max == 0)
    return 0;
  if (max > (size_t)INT32_MAX)
    max = (size_t)INT32_MAX;
  sqlite3_stmt *s;
  int rc = st__stmt(st, Q_DL_LIST, &s, err);
  if (!rc)
    rc = st__bind_text(st, s, 1, partner, err);
  if (!rc)
    rc = st__bind_i64(st, s, 2, after_id, err);
  if (!rc)
    rc = st__bind_i64(st, s, 3, (int64_t)max, err);
  if (rc)
    return rc;
  size_t n = 0;
  while ((rc = st__step(st, s, "store.dead_list", err)) == SQLITE_ROW) {
    store_dead_letter *d = &out[n];
    memset(d, 0, sizeof *d);
    d->id = st__col_i64(s, 0);
    d->version = st__col_i64(s, 1);
    d->at_ms = st__col_i64(s, 2);
    d->attempts = st__col_i(s, 3);
    d->http_status = st__col_i(s, 4);
    static const int cols[] = {5, 6, 7, 8, 9, 10, 11};
    const char **dst[] = {&d->partner,   &d->program, &d->record_type,
                          &d->record_id, &d->hint,    &d->reason,
                          &d->outcome};
    size_t lens[7];
    d->mem_ = st__copy_cols(s, cols, 7, dst, lens);
    if (!d->mem_) {
      rc = hvg_err_set(err, HVG_ENOMEM, "store.dead_list", NULL);
      break;
    }
    d->outcome_len = lens[6];
    n++;
  }
  st__done(s);
  if (rc != SQLITE_DONE) {
    store_dead_letters_release(out, n);
    return rc < 0 ? rc : HVG_EIO;
  }
  *n_out = n;
  return 0;
}

/* ---- status --------------------------------------------------------------- */

/* Find or add the entry for `partner` in the sorted list v[0..*n). */
static store_partner_stats *stats_slot(store_partner_stats **v, size_t *n,
                                       size_t *cap, const char *partner) {
  size_t lo = 0, hi = *n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp((*v)[mid].partner, partner);
    if (c == 0)
      return &(*v)[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 8;
    store_partner_stats *nv = realloc(*v, nc * sizeof *nv);
    if (!nv)
      return NULL;
    *v = nv;
    *cap = nc;
  }
  memmove(&(*v)[lo + 1], &(*v)[lo], (*n - lo) * sizeof **v);
  store_partner_stats *p = &(*v)[lo];
  memset(p, 0, sizeof *p);
  snprintf(p->partner, sizeof p->partner, "%s", partner);
  (*n)++;
  return p;
}

int store_stats(store *st, int64_t now_ms, store_partner_stats *out,
                size_t max, size_t *n_out, size_t *n_total, hvg_err *err) {
  if (n_out)
    *n_out = 0;
  if (n_total)
    *n_total = 0;
  if (!st || !n_out || (!out && max))
    return hvg_err_set(err, HVG_EINVAL, "store.stats", "NULL argument");
  store_partner_stats *v = NULL;
  size_t n = 0, cap = 0;
  /* one read transaction so the two queries agree (inside the caller's
   * open one, that one) */
  int own = sqlite3_get_autocommit(st->db);
  int rc = own ? st__exec_sql(st, "BEGIN", "store.stats", err) : 0;
  if (rc)
    return rc;
  sqlite3_stmt *s;
  rc = st__stmt(st, Q_STATS, &s, err);
  while (!rc && (rc = st__step(st, s, "store.stats", err)) == SQLITE_ROW) {
    const unsigned char *p = sqlite3_column_text(s, 0);
    store_partner_stats *e = p ? stats_slot(&v, &n, &cap, (const char *)p)
                               : NULL;
    if (!e) {
      rc = hvg_err_set(err, HVG_ENOMEM, "store.stats", NULL);
      break;
    }
    int64_t count = st__col_i64(s, 2);
    switch (st__col_i(s, 1)) {
    case ST_PENDING:
      e->pending = count;
      /* remember the oldest pending id in the age field for now */
      e->oldest_pending_age_ms = st__col_i64(s, 3);
      break;
    case ST_INFLIGHT: e->in_flight = count; break;
    case ST_DEAD: e->dead = count; break;
    default: break;
    }
    rc = 0;
  }
  st__done(s);
  if (rc == SQLITE_DONE)
    rc = 0;
  if (!rc)
    rc = st__stmt(st, Q_PSTAT_ALL, &s, err);
  while (!rc && (rc = st__step(st, s, "store.stats", err)) == SQLITE_ROW) {
    const unsigned char *p = sqlite3_column_text(s, 0);
    store_partner_stats *e = p ? stats_slot(&v, &n, &cap, (const char *)p)
                               : NULL;
    if (!e) {
      rc = hvg_err_set(err, HVG_ENOMEM, "store.stats", NULL);
      break;
    }
    e->delivered = st__col_i64(s, 1);
    rc = 0;
  }
  st__done(s);
  if (rc == SQLITE_DONE)
    rc = 0;
  for (size_t i = 0; !rc && i < n; i++) {
    if (!v[i].pending) {
      v[i].oldest_pending_age_ms = 0;
      continue;
    }
    rc = st__stmt(st, Q_OB_CREATED, &s, err);
    if (!rc)
      rc = st__bind_i64(st, s, 1, v[i].oldest_pending_age_ms, err);
    if (!rc)
      rc = st__step(st, s, "store.stats", err);
    if (rc == SQLITE_ROW) {
      int64_t age = now_ms - st__col_i64(s, 0);
      v[i].oldest_pending_age_ms = age > 0 ? age : 0;
      rc = 0;
    } else if (rc == SQLITE_DONE) {
      v[i].oldest_pending_age_ms = 0;
      rc = 0;
    }
    if (rc >= 0)
      st__done(s);
  }
  if (rc > 0)
    rc = HVG_EIO;
  if (own && sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK &&
      !rc)
    rc = st__db_fail(st, sqlite3_extended_errcode(st->db), "store.stats", err);
  if (own && !sqlite3_get_autocommit(st->db))
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
  if (!rc) {
    size_t k = n < max ? n : max;
    if (k)
      memcpy(out, v, k * sizeof *v);
    *n_out = k;
    if (n_total)
      *n_total = n;
  }
  free(v);
  return rc;
}

/* ---- audit ---------------------------------------------------------------- */

int store_audit_append(store *st, const store_audit_entry *e, int64_t *id_out,
                       hvg_err *err) {
  if (!st || !e)
    return hvg_err_set(err, HVG_EINVAL, "store.audit", "NULL argument");
  int rc = check_audit(e, err);
  if (rc)
    return rc;
  rc = st__tx_begin(st, err);
  if (rc)
    return rc;
  rc = audit_insert(st, e, NULL, err);
  int64_t id = (int64_t)sqlite3_last_insert_rowid(st->db);
  rc = st__tx_end(st, rc, err);
  if (!rc && id_out)
    *id_out = id;
  return rc;
}

int store_audit_iter_open(store *st, int64_t after_id, store_audit_iter **out,
                          hvg_err *err) {
  if (!st || !out)
    return hvg_err_set(err, HVG_EINVAL, "store.audit", "NULL argument");
  *out = NULL;
  store_audit_iter *it = calloc(1, sizeof *it);
  if (!it)
    return hvg_err_set(err, HVG_ENOMEM, "store.audit", NULL);
  int rc = sqlite3_prepare_v2(
      st->db,
      "SELECT id, at, actor, action, partner, program, record_type,"
      " record_id, resources, consent_id, detail FROM audit WHERE id > ?1"
      " ORDER BY id",
      -1, &it->s, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_bind_int64(it->s, 1, (sqlite3_int64)after_id);
  if (rc != SQLITE_OK) {
    rc = st__db_fail(st, rc, "store.audit", err);
    sqlite3_finalize(it->s);
    free(it);
    return rc;
  }
  it->st = st;
  st->iterators++;
  *out = it;
  return 0;
}

int store_audit_iter_next(store_audit_iter *it, store_audit_entry *e,
                          hvg_err *err) {
  if (!it || !e)
    return hvg_err_set(err, HVG_EINVAL, "store.audit", "NULL argument");
  int rc = sqlite3_step(it->s);
  if (rc == SQLITE_DONE)
    return 0;
  if (rc != SQLITE_ROW)
    return st__db_fail(it->st, rc, "store.audit", err);
  memset(e, 0, sizeof *e);
  e->id = st__col_i64(it->s, 0);
  e->at_ms = st__col_i64(it->s, 1);
  const char **f[] = {&e->actor,     &e->action,    &e->partner,
                      &e->program,   &e->record_type, &e->record_id,
                      &e->resources, &e->consent_id, &e->detail};
  for (int i = 0; i < 9; i++) {
    *f[i] = (const char *)sqlite3_column_text(it->s, i + 2);
    if (!*f[i] && sqlite3_column_type(it->s, i + 2) != SQLITE_NULL)
      return hvg_err_set(err, HVG_ENOMEM, "store.audit", NULL);
  }
  return 1;
}

void store_audit_iter_close(store_audit_iter *it) {
  if (!it)
    return;
  sqlite3_finalize(it->s);
  it->st->iterators--;
  free(it);
}

/* ---- referrals ------------------------------------------------------------ */

/* Look up a referral's row id and copy its status; 0 found, ENOTFOUND. */
static int ref_key(store *st, const char *program, const char *referral_id,
                   int64_t *id, char **status, hvg_err *err) {
  sqlite3_stmt *s;
  int rc = st__stmt(st, Q_REF_KEY, &s, err);
  if (!rc)
    rc = st__bind_text(st, s, 1, program, err);
  if (!rc)
    rc = st__bind_text(st, s, 2, referral_id, err);
  if (rc)
    return rc;
  rc = st__step(st, s, "store.referral", err);
  if (rc < 0)
    return rc;
  if (rc == SQLITE_DONE) {
    st__done(s);
    return HVG_ENOTFOUND;
  }
  *id = st__col_i64(s, 0);
  rc = 0;
  if (status) {
    const unsigned char *t = sqlite3_column_text(s, 1);
    *status = t ? strdup((const char *)t) : NULL;
    if (!*status)
      rc = hvg_err_set(err, HVG_ENOMEM, "store.referral", NULL);
  }
  st__done(s);
  return rc;
}

static int transition_insert(store *st, int64_t ref, int64_t at,
                             const char *from, const store_transition *t,
                             hvg_err *err) {
  sqlite3_stmt *s;
  int rc = st__stmt(st, Q_REF_TR_INS, &s, err);
  if (!rc)
    rc = st__bind_i64(st, s, 1, ref, err);
  if (!rc)
    rc = st__bind_i64(st, s, 2, at, err);
  if (!rc)
    rc = st__bind_text(st, s, 3, from, err);
  const char *v[5] = {t->to_status, t->actor, t->detail, t->hv_status,
                      t->source};
  for (int k = 0; k < 5 && !rc; k++)
    rc = st__bind_text(st, s, 4 + k, v[k], err);
  return rc ? rc : st__exec_done(st, s, "store.referral", err);
}

int store_referral_upsert(store *st, const store_referral *r, int64_t now_ms,
                          hvg_err *err) {
  if (!st || !r)
    return hvg_err_set(err, HVG_EINVAL, "store.referral", "NULL argument");
  int rc = st__need(r->program, "referral.program", STORE_KEY_MAX, err);
  if (!rc)
    rc = st__need(r->referral_id, "referral.referral_id", STORE_KEY_MAX, err);
  if (rc)
    return rc;
  rc = st__tx_begin(st, err);
  if (rc)
    return rc;
  int64_t id = 0;
  rc = ref_key(st, r->program, r->referral_id, &id, NULL, err);
  sqlite3_stmt *s;
  if (rc == HVG_ENOTFOUND) {
    rc = st__need(r->status, "referral.status", STORE_KEY_MAX, err);
    if (!rc)
      rc = st__stmt(st, Q_REF_INS, &s, err);
    if (!rc)
      rc = st__bind_text(st, s, 1, r->program, err);
    if (!rc)
      rc = st__bind_text(st, s, 2, r->referral_id, err);
    if (!rc)
      rc = st__bind_text(st, s, 3, r->partner, err);
    if (!rc)
      rc = st__bind_text(st, s, 4, r->status, err);
    if (!rc)
      rc = st__bind_text(st, s, 5, r->task_id, err);
    if (!rc)
      rc = st__bind_textn(st, s, 6, r->data, r->data_len, err);
    if (!rc)
      rc = st__bind_i64(st, s, 7, now_ms, err);
    if (!rc)
      rc = st__bind_text(st, s, 8, r->direction, err);
    if (!rc)
      rc = st__bind_text(st, s, 9, r->hv_status, err);
    if (!rc)
      rc = st__exec_done(st, s, "store.referral", err);
    store_transition t = {now_ms, NULL,     r->status, r->hv_status,
                          "store", "create", "created"};
    if (!rc)
      rc = transition_insert(st, (int64_t)sqlite3_last_insert_rowid(st->db),
                             now_ms, NULL, &t, err);
  } else if (!rc) {
    rc = st__stmt(st, Q_REF_UPD, &s, err);
    if (!rc)
      rc = st__bind_i64(st, s, 1, id, err);
    if (!rc)
      rc = st__bind_text(st, s, 2, r->partner, err);
    if (!rc)
      rc = st__bind_text(st, s, 3, r->task_id, err);
    if (!rc)
      rc = st__bind_textn(st, s, 4, r->data, r->data_len, err);
    if (!rc)
      rc = st__bind_i64(st, s, 5, now_ms, err);
    if (!rc)
      rc = st__bind_text(st, s, 6, r->hv_status, err);
    if (!rc)
      rc = st__exec_done(st, s, "store.referral", err);
  }
  return st__tx_end(st, rc, err);
}

int store_referral_transition(store *st, const char *program,
                              const char *referral_id,
                              const store_transition *t, hvg_err *err) {
  if (!st || !t)
    return hvg_err_set(err, HVG_EINVAL, "store.referral", "NULL argument");
  int rc = st__need(program, "referral.program", STORE_KEY_MAX, err);
  if (!rc)
    rc = st__need(referral_id, "referral.referral_id", STORE_KEY_MAX, err);
  if (!rc)
    rc = st__need(t->to_status, "referral.to_status", STORE_KEY_MAX, err);
  if (!rc)
    rc = st__need(t->actor, "referral.actor", STORE_KEY_MAX, err);
  if (rc)
    return rc;
  rc = st__tx_begin(st, err);
  if (rc)
    return rc;
  int64_t id = 0;
  char *cur = NULL;
  rc = ref_key(st, program, referral_id, &id, &cur, err);
  if (rc == HVG_ENOTFOUND)
    rc = hvg_err_set(err, HVG_ENOTFOUND, "store.referral",
                     "no such referral");
  if (!rc && t->from_status && strcmp(cur, t->from_status) != 0)
    rc = hvg_err_set(err, HVG_ESTATE, "store.referral",
                     "referral status is \"%.40s\", not \"%.40s\"", cur,
                     t->from_status);
  if (!rc)
    rc = transition_insert(st, id, t->at_ms, cur, t, err);
  if (!rc) {
    sqlite3_stmt *s;
    rc = st__stmt(st, Q_REF_STATUS, &s, err);
    if (!rc)
      rc = st__bind_i64(st, s, 1, id, err);
    if (!rc)
      rc = st__bind_text(st, s, 2, t->to_status, err);
    if (!rc)
      rc = st__bind_i64(st, s, 3, t->at_ms, err);
    if (!rc)
      rc = st__bind_text(st, s, 4, t->hv_status, err);
    if (!rc)
      rc = st__exec_done(st, s, "store.referral", err);
  }
  free(cur);
  return st__tx_end(st, rc, err);
}

int store_referral_transition_add(store *st, const char *program,
                                  const char *referral_id,
                                  const char *from_status,
                                  const char *to_status, const char *actor,
                                  const char *detail, int64_t at_ms,
                                  hvg_err *err) {
  store_transition t = {at_ms, from_status, to_status, NULL,
                        actor, NULL,        detail};
  return store_referral_transition(st, program, referral_id, &t, err);
}

void store_referral_release(store_referral *r) {
  if (!r)
    return;
  free(r->mem_);
  memset(r, 0, sizeof *r);
}

/* Copy the current row of REF_GET / REF_LIST into *out. */
static int ref_row(sqlite3_stmt *s, store_referral *out, hvg_err *err) {
  static const int cols[] = {0, 1, 2, 3, 4, 5, 6, 7};
  const char **dst[] = {&out->program,   &out->referral_id, &out->partner,
                        &out->status,    &out->task_id,     &out->data,
                        &out->direction, &out->hv_status};
  size_t lens[8];
  memset(out, 0, sizeof *out);
  out->mem_ = st__copy_cols(s, cols, 8, dst, lens);
  if (!out->mem_) {
    memset(out, 0, sizeof *out);
    return hvg_err_set(err, HVG_ENOMEM, "store.referral", NULL);
  }
  out->data_len = lens[5];
  out->created_at_ms = st__col_i64(s, 8);
  out->updated_at_ms = st__col_i64(s, 9);
  out->sent_at_ms = st__col_i64(s, 10);
  out->id = st__col_i64(s, 11);
  return 0;
}

int store_referral_get(store *st, const char *program, const char *referral_id,
                       store_referral *out, hvg_err *err) {
  if (!st || !program || !referral_id || !out)
    return hvg_err_set(err, HVG_EINVAL, "store.referral", "NULL argument");
  memset(out, 0, sizeof *out);
  sqlite3_stmt *s;
  int rc = st__stmt(st, Q_REF_GET, &s, err);
  if (!rc)
    rc = st__bind_text(st, s, 1, program, err);
  if (!rc)
    rc = st__bind_text(st, s, 2, referral_id, err);
  if (rc)
    return rc;
  rc = st__step(st, s, "store.referral", err);
  if (rc < 0)
    return rc;
  if (rc == SQLITE_DONE) {
    st__done(s);
    return hvg_err_set(err, HVG_ENOTFOUND, "store.referral",
                       "no such referral");
  }
  rc = ref_row(s, out, err);
  st__done(s);
  return rc;
}

int store_referral_list(store *st, const char *program, int64_t since_ms,
                        int64_t after_id, size_t max, store_referral *out,
                        size_t *n_out, hvg_err *err) {
  if (n_out)
    *n_out = 0;
  if (!st || !program || (!out && max) || !n_out)
    return hvg_err_set(err, HVG_EINVAL, "store.referral", "NULL argument");
  sqlite3_stmt *s;
  int rc = st__stmt(st, Q_REF_LIST, &s, err);
  if (!rc)
    rc = st__bind_text(st, s, 1, program, err);
  if (!rc)
    rc = st__bind_i64(st, s, 2, since_ms, err);
  if (!rc)
    rc = st__bind_i64(st, s, 3, after_id, err);
  if (!rc)
    rc = st__bind_i64(st, s, 4, (int64_t)max, err);
  if (rc)
    return rc;
  size_t n = 0;
  while (n < max) {
    rc = st__step(st, s, "store.referral", err);
    if (rc != SQLITE_ROW)
      break; /* done, or an error (the statement is released then) */
    if ((rc = ref_row(s, &out[n], err)) != 0)
      break;
    n++;
  }
  if (rc >= 0 || rc == HVG_ENOMEM)
    st__done(s);
  if (rc < 0) {
    for (size_t i = 0; i < n; i++)
      store_referral_release(&out[i]);
    return rc;
  }
  *n_out = n;
  return 0;
}

int store_referral_history(store *st, const char *program,
                           const char *referral_id, store_transition *out,
                           size_t max, size_t *n_out, void **mem,
                           hvg_err *err) {
  if (!st || !program || !referral_id || (!out && max) || !n_out || !mem)
    return hvg_err_set(err, HVG_EINVAL, "store.referral", "NULL argument");
  *n_out = 0;
  *mem = NULL;
  int64_t id = 0;
  int rc = ref_key(st, program, referral_id, &id, NULL, err);
  if (rc == HVG_ENOTFOUND)
    return hvg_err_set(err, HVG_ENOTFOUND, "store.referral",
                       "no such referral");
  if (rc)
    return rc;
  sqlite3_stmt *s;
  rc = st__stmt(st, Q_REF_HIST, &s, err);
  if (!rc)
    rc = st__bind_i64(st, s, 1, id, err);
  if (!rc)
    rc = st__bind_i64(st, s, 2, (int64_t)max, err);
  if (rc)
    return rc;
  /* one block for all rows: a list of per-row blocks chained in front */
  void **blocks = NULL;
  size_t n = 0;
  while ((rc = st__step(st, s, "store.referral", err)) == SQLITE_ROW &&
         n < max) {
    store_transition *t = &out[n];
    memset(t, 0, sizeof *t);
    static const int cols[] = {1, 2, 3, 4, 5, 6};
    const char **dst[] = {&t->from_status, &t->to_status, &t->hv_status,
                          &t->actor,       &t->source,    &t->detail};
    void *b = st__copy_cols(s, cols, 6, dst, NULL);
    void **link = b ? realloc(blocks, (n + 2) * sizeof *blocks) : NULL;
    if (!link) {
      free(b);
      rc = hvg_err_set(err, HVG_ENOMEM, "store.referral", NULL);
      st__done(s);
      break;
    }
    blocks = link;
    blocks[n] = b;
    blocks[n + 1] = NULL;
    t->at_ms = st__col_i64(s, 0);
    n++;
  }
  if (rc >= 0)
    st__done(s);
  if (rc < 0) {
    for (size_t i = 0; blocks && i < n; i++)
      free(blocks[i]);
    free(blocks);
    return rc;
  }
  *n_out = n;
  *mem = blocks; /* freed with store_referral_history_free */
  return 0;
}

void store_referral_history_free(void *mem) {
  void **blocks = mem;
  for (size_t i = 0; blocks && blocks[i]; i++)
    free(blocks[i]);
  free(blocks);
}

/* ---- partner cursors ------------------------------------------------------ */

int store_cursor_get(store *st, const char *partner, hvg_buf *out,
                     hvg_err *err) {
  if (!st || !partner || !out)
    return hvg_err_set(err, HVG_EINVAL, "store.cursor", "NULL argument");
  sqlite3_stmt *s;
  int rc = st__stmt(st, Q_CUR_GET, &s, err);
  if (!rc)
    rc = st__bind_text(st, s, 1, partner, err);
  if (rc)
    return rc;
  rc = st__step(st, s, "store.cursor", err);
  if (rc < 0)
    return rc;
  if (rc == SQLITE_DONE) {
    st__done(s);
    return hvg_err_set(err, HVG_ENOTFOUND, "store.cursor",
                       "no cursor for this partner");
  }
  const unsigned char *t = sqlite3_column_text(s, 0);
  size_t len = (size_t)sqlite3_column_bytes(s, 0);
  rc = t ? hvg_buf_add(out, t, len) : HVG_ENOMEM;
  st__done(s);
  return rc ? hvg_err_set(err, rc, "store.cursor", NULL) : 0;
}

int store_cursor_set(store *st, const char *partner, const char *value,
                     int64_t now_ms, hvg_err *err) {
  if (!st || !value)
    return hvg_err_set(err, HVG_EINVAL, "store.cursor", "NULL argument");
  int rc = st__need(partner, "cursor.partner", STORE_PARTNER_MAX, err);
  if (rc)
    return rc;
  rc = st__tx_begin(st, err);
  if (rc)
    return rc;
  sqlite3_stmt *s;
  rc = st__stmt(st, Q_CUR_SET, &s, err);
  if (!rc)
    rc = st__bind_text(st, s, 1, partner, err);
  if (!rc)
    rc = st__bind_text(st, s, 2, value, err);
  if (!rc)
    rc = st__bind_i64(st, s, 3, now_ms, err);
  if (!rc)
    rc = st__exec_done(st, s, "store.cursor", err);
  return st__tx_end(st, rc, err);
}

/* ---- consents ---------------------------------------------------------- */

int store_consent_put(store *st, const store_consent *c, size_t n,
                      int64_t now_ms, hvg_err *err) {
  if (!st || (!c && n))
    return hvg_err_set(err, HVG_EINVAL, "store.consent", "NULL argument");
  for (size_t i = 0; i < n; i++) {
    int rc = st__need(c[i].program, "consent.program", STORE_KEY_MAX, err);
    if (!rc)
      rc = st__need(c[i].consent_id, "consent.consent_id", STORE_KEY_MAX, err);
    if (!rc)
      rc = st__need(c[i].organization_id, "consent.organization_id",
                STORE_KEY_MAX, err);
    if (!rc)
      rc = st__need(c[i].granted, "consent.granted", 32, err);
    if (rc)
      return rc;
  }
  int rc = st__tx_begin(st, err);
  for (size_t i = 0; i < n && !rc; i++) {
    sqlite3_stmt *s;
    rc = st__stmt(st, Q_CONS_PUT, &s, err);
    const char *v[9] = {c[i].program,         c[i].consent_id,
                        c[i].family_id,       c[i].caregiver_id,
                        c[i].organization_id, c[i].scope,
                        c[i].granted,         c[i].expires,
                        c[i].revoked};
    for (int k = 0; k < 9 && !rc; k++)
      rc = st__bind_text(st, s, k + 1, v[k], err);
    if (!rc)
      rc = st__bind_i64(st, s, 10, now_ms, err);
    if (!rc)
      rc = st__exec_done(st, s, "store.consent", err);
  }
  return st__tx_end(st, rc, err);
}

int store_consent_find(store *st, const char *program, const char *family_id,
                       const char *caregiver_id, const char *const *orgs,
                       size_t n_orgs, const char *scope, const char *today,
                       char *id, size_t cap, hvg_err *err) {
  if (!st || !program || !scope || !today || (!orgs && n_orgs) || !id || !cap)
    return hvg_err_set(err, HVG_EINVAL, "store.consent", "NULL argument");
  id[0] = '\0';
  if (family_id && !*family_id)
    family_id = NULL;
  if (caregiver_id && !*caregiver_id)
    caregiver_id = NULL;
  if (!family_id && !caregiver_id)
    return 0;
  for (size_t i = 0; i < n_orgs; i++) {
    sqlite3_stmt *s;
    int rc = st__stmt(st, Q_CONS_FIND, &s, err);
    const char *v[6] = {program, family_id, caregiver_id, scope, today,
                        orgs[i]};
    for (int k = 0; k < 6 && !rc; k++)
      rc = st__bind_text(st, s, k + 1, v[k], err);
    if (rc)
      return rc;
    rc = st__step(st, s, "store.consent", err);
    if (rc < 0)
      return rc;
    if (rc == SQLITE_ROW) {
      const char *t = (const char *)sqlite3_column_text(s, 0);
      snprintf(id, cap, "%s", t ? t : "");
      st__done(s);
      return 1;
    }
    st__done(s);
  }
  return 0;
}

int store_release_leases(store *st, int64_t now_ms, hvg_err *err) {
  if (!st)
    return hvg_err_set(err, HVG_EINVAL, "store.release", "NULL argument");
  int rc = st__tx_begin(st, err);
  if (rc)
    return rc;
  sqlite3_stmt *s;
  rc = st__stmt(st, Q_OB_RELEASE, &s, err);
  if (!rc)
    rc = st__bind_i64(st, s, 1, now_ms, err);
  if (!rc)
    rc = st__exec_done(st, s, "store.release", err);
  return st__tx_end(st, rc, err);
}

int store_consent_active(store *st, const char *program, const char *consent_id,
                         const char *today, hvg_err *err) {
  if (!st || !program || !consent_id || !today)
    return hvg_err_set(err, HVG_EINVAL, "store.consent", "NULL argument");
  sqlite3_stmt *s;
  int rc = st__stmt(st, Q_CONS_ACTIVE, &s, err);
  const char *v[3] = {program, consent_id, today};
  for (int k = 0; k < 3 && !rc; k++)
    rc = st__bind_text(st, s, k + 1, v[k], err);
  if (rc)
    return rc;
  rc = st__step(st, s, "store.consent", err);
  if (rc < 0)
    return rc;
  st__done(s);
  return rc == SQLITE_ROW;
}
