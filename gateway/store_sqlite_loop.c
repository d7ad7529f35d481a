/* store_sqlite_loop — the closed-loop tables of store.h in SQLite: hosted
 * FHIR resources, results from partners, the inbox of references to fetch
 * and the program event feed (issue 4). Shares the handle and helpers of
 * store_sqlite.c through store_sqlite_int.h; keeps its own statements. */
#include "store.h"
#include "store_sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Schema version 3. Referrals get a direction, the derived home visiting
 * status and the date they were first delivered; transitions their
 * derived status and source. Resources are rows with a rowid (bodies are
 * kilobytes: WITHOUT ROWID suits small rows only). */
const char st__migration_loop[] =
    "ALTER TABLE referrals ADD COLUMN direction TEXT NOT NULL"
    " DEFAULT 'outbound';"
    "ALTER TABLE referrals ADD COLUMN hv_status TEXT;"
    "ALTER TABLE referrals ADD COLUMN sent_at INTEGER;"
    "ALTER TABLE referral_transitions ADD COLUMN hv_status TEXT;"
    "ALTER TABLE referral_transitions ADD COLUMN source TEXT;"
    "CREATE INDEX referrals_updated ON referrals(program, updated_at);"
    "CREATE TABLE resources ("
    " rid INTEGER PRIMARY KEY,"
    " type TEXT NOT NULL, id TEXT NOT NULL,"
    " version INTEGER NOT NULL CHECK (version >= 1),"
    " updated_at INTEGER NOT NULL,"
    " partner TEXT, program TEXT, referral_id TEXT,"
    " status TEXT, owner TEXT, focus TEXT, patient TEXT, identifier TEXT,"
    " body TEXT NOT NULL,"
    " UNIQUE (type, id));"
    "CREATE INDEX resources_stamp ON resources(updated_at);"
    "CREATE INDEX resources_partner ON resources(partner, type, updated_at);"
    "CREATE INDEX resources_identifier ON resources(type, identifier);"
    "CREATE TABLE results ("
    " id INTEGER PRIMARY KEY,"
    " program TEXT NOT NULL, partner TEXT NOT NULL, source_ref TEXT NOT NULL,"
    " kind TEXT NOT NULL, child_id TEXT, instrument TEXT, date TEXT,"
    " data TEXT NOT NULL,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    " UNIQUE (program, partner, source_ref));"
    "CREATE INDEX results_updated ON results(program, updated_at);"
    "CREATE INDEX results_child ON results(program, child_id, instrument,"
    " date);"
    "CREATE TABLE inbox ("
    " partner TEXT NOT NULL, ref TEXT NOT NULL,"
    " due_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT, created_at INTEGER NOT NULL,"
    " PRIMARY KEY (partner, ref)) WITHOUT ROWID;"
    "CREATE INDEX inbox_due ON inbox(partner, due_at);"
    "CREATE TABLE events ("
    " id INTEGER PRIMARY KEY, program TEXT NOT NULL, at INTEGER NOT NULL,"
    " kind TEXT NOT NULL, ref TEXT);"
    "CREATE INDEX events_program ON events(program, id);";

#define RES_COLS                                                               \
  "type, id, version, updated_at, partner, program, referral_id, status,"      \
  " owner, focus, patient, identifier, body"

#define LOOP_QUERIES(X)                                                        \
  X(RES_GET, "SELECT " RES_COLS " FROM resources WHERE type = ?1 AND id = ?2") \
  X(RES_VERSION, "SELECT version FROM resources WHERE type = ?1 AND id = ?2")  \
  X(RES_STAMP, "SELECT max(updated_at) FROM resources")                        \
  X(RES_INS,                                                                   \
    "INSERT INTO resources(type, id, version, updated_at, partner,"            \
    " program, referral_id, status, owner, focus, patient,"                    \
    " identifier, body)"                                                       \
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)")        \
  X(RES_UPD, "UPDATE resources SET version = ?3, updated_at = ?4,"             \
             " partner = ?5, program = ?6, referral_id = ?7, status = ?8,"     \
             " owner = ?9, focus = ?10, patient = ?11, identifier = ?12,"      \
             " body = ?13 WHERE type = ?1 AND id = ?2")                        \
  X(RESULT_GET, "SELECT id, data FROM results WHERE program = ?1"              \
                " AND partner = ?2 AND source_ref = ?3")                       \
  X(RESULT_INS, "INSERT INTO results(program, partner, source_ref, kind,"      \
                " child_id, instrument, date, data, created_at, updated_at)"   \
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)")            \
  X(RESULT_UPD, "UPDATE results SET kind = ?2, child_id = ?3,"                 \
                " instrument = ?4, date = ?5, data = ?6, updated_at = ?7"      \
                " WHERE id = ?1")                                              \
  X(RESULT_LIST, "SELECT id, program, partner, source_ref, kind, child_id,"    \
                 " instrument, date, data, created_at, updated_at"             \
                 " FROM results WHERE program = ?1 AND updated_at >= ?2"       \
                 " AND id > ?3 ORDER BY id LIMIT ?4")                          \
  X(RESULT_LATEST, "SELECT id, program, partner, source_ref, kind, child_id,"  \
                   " instrument, date, data, created_at, updated_at"           \
                   " FROM results WHERE program = ?1 AND child_id = ?2"        \
                   " AND instrument = ?3 ORDER BY date DESC, id DESC"          \
                   " LIMIT 1")                                                 \
  X(INBOX_ADD, "INSERT INTO inbox(partner, ref, due_at, created_at)"           \
               " VALUES (?1, ?2, ?3, ?3) ON CONFLICT (partner, ref)"           \
               " DO NOTHING")                                                  \
  X(INBOX_DUE, "SELECT ref, attempts FROM inbox WHERE partner = ?1"            \
               " AND due_at <= ?2 ORDER BY due_at, ref LIMIT ?3")              \
  X(INBOX_DEL, "DELETE FROM inbox WHERE partner = ?1 AND ref = ?2")            \
  X(INBOX_RETRY, "UPDATE inbox SET due_at = ?3, attempts = attempts + 1,"      \
                 " last_error = ?4 WHERE partner = ?1 AND ref = ?2")           \
  X(INBOX_COUNT, "SELECT count(*) FROM inbox WHERE ?1 IS NULL"                 \
                 " OR partner = ?1")                                           \
  X(EVENT_ADD, "INSERT INTO events(program, at, kind, ref)"                    \
               " VALUES (?1, ?2, ?3, ?4)")                                     \
  X(EVENT_LIST, "SELECT id, at, kind, ref FROM events WHERE program = ?1"      \
                " AND id > ?2 ORDER BY id LIMIT ?3")

enum {
#define LQ__ENUM(name, sql) LQ_##name,
  LOOP_QUERIES(LQ__ENUM)
#undef LQ__ENUM
      LQ__COUNT
};

_Static_assert(LQ__COUNT <= ST__QL_MAX, "raise ST__QL_MAX");

static const char *const LOOP_SQL[LQ__COUNT] = {
#define LQ__SQL(name, sql) sql,
    LOOP_QUERIES(LQ__SQL)
#undef LQ__SQL
};

static int lstmt(store *st, int q, sqlite3_stmt **out, hvg_err *err) {
  return st__prepare(st, &st->ql[q], LOOP_SQL[q], out, err);
}

/* Bind texts v[0..n) to parameters first..first+n-1. */
static int bind_texts(store *st, sqlite3_stmt *s, int first,
                      const char *const *v, int n, hvg_err *err) {
  int rc = 0;
  for (int k = 0; k < n && !rc; k++)
    rc = st__bind_text(st, s, first + k, v[k], err);
  return rc;
}

/* ---- hosted resources -------------------------------------------------- */

void store_resource_release(store_resource *r) {
  if (!r)
    return;
  free(r->mem_);
  memset(r, 0, sizeof *r);
}

/* The current row of a RES_COLS select into *out. */
static int res_row(sqlite3_stmt *s, store_resource *out, hvg_err *err) {
  static const int cols[] = {0, 1, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  const char **dst[] = {&out->type,       &out->id,          &out->partner,
                        &out->program,    &out->referral_id, &out->status,
                        &out->owner,      &out->focus,       &out->patient,
                        &out->identifier, &out->body};
  size_t lens[11];
  memset(out, 0, sizeof *out);
  out->mem_ = st__copy_cols(s, cols, 11, dst, lens);
  if (!out->mem_) {
    memset(out, 0, sizeof *out);
    return hvg_err_set(err, HVG_ENOMEM, "store.resource", NULL);
  }
  out->body_len = lens[10];
  out->version = st__col_i64(s, 2);
  out->updated_ms = st__col_i64(s, 3);
  return 0;
}

int store_resource_get(store *st, const char *type, const char *id,
                       store_resource *out, hvg_err *err) {
  if (!st || !type || !id || !out)
    return hvg_err_set(err, HVG_EINVAL, "store.resource", "NULL argument");
  memset(out, 0, sizeof *out);
  sqlite3_stmt *s;
  const char *v[2] = {type, id};
  int rc = lstmt(st, LQ_RES_GET, &s, err);
  if (!rc)
    rc = bind_texts(st, s, 1, v, 2, err);
  if (rc)
    return rc;
  rc = st__step(st, s, "store.resource", err);
  if (rc < 0)
    return rc;
  if (rc == SQLITE_DONE) {
    st__done(s);
    return hvg_err_set(err, HVG_ENOTFOUND, "store.resource",
                       "no such resource");
  }
  rc = res_row(s, out, err);
  st__done(s);
  return rc;
}

/* The next stamp: now, or one more than the latest in the store. */
static int res_stamp(store *st, int64_t now, int64_t *out, hvg_err *err) {
  sqlite3_stmt *s;
  int rc = lstmt(st, LQ_RES_STAMP, &s, err);
  if (rc)
    return rc;
  rc = st__step(st, s, "store.resource", err);
  if (rc < 0)
    return rc;
  int64_t last = rc == SQLITE_ROW ? st__col_i64(s, 0) : 0;
  st__done(s);
  *out = now > last ? now : last + 1;
  return 0;
}

int store_resource_put(store *st, store_resource *r, int64_t expect_version,
                       int64_t now_ms, hvg_err *err) {
  if (!st || !r)
    return hvg_err_set(err, HVG_EINVAL, "store.resource", "NULL argument");
  int rc = st__need(r->type, "resource.type", 64, err);
  if (!rc)
    rc = st__need(r->id, "resource.id", 64, err);
  if (!rc && (!r->body || !r->body_len))
    rc = hvg_err_set(err, HVG_EINVAL, "resource.body", "required");
  if (rc)
    return rc;
  if ((rc = st__tx_begin(st, err)) != 0)
    return rc;
  sqlite3_stmt *s;
  const char *key[2] = {r->type, r->id};
  int64_t cur = 0;
  rc = lstmt(st, LQ_RES_VERSION, &s, err);
  if (!rc)
    rc = bind_texts(st, s, 1, key, 2, err);
  if (!rc) {
    rc = st__step(st, s, "store.resource", err);
    if (rc == SQLITE_ROW)
      cur = st__col_i64(s, 0);
    if (rc > 0) {
      st__done(s);
      rc = 0;
    }
  }
  if (!rc && expect_version == 0 && cur)
    rc = hvg_err_set(err, HVG_ESTATE, "store.resource", "%s/%s exists already",
                     r->type, r->id);
  else if (!rc && expect_version > 0 && !cur)
    rc = hvg_err_set(err, HVG_ENOTFOUND, "store.resource", "no such resource");
  else if (!rc && expect_version > 0 && cur != expect_version)
    rc = hvg_err_set(err, HVG_ESTATE, "store.resource",
                     "version %lld is current, not %lld", (long long)cur,
                     (long long)expect_version);
  int64_t stamp = 0;
  if (!rc)
    rc = res_stamp(st, now_ms, &stamp, err);
  if (!rc)
    rc = lstmt(st, cur ? LQ_RES_UPD : LQ_RES_INS, &s, err);
  const char *v[8] = {r->partner, r->program, r->referral_id, r->status,
                      r->owner,   r->focus,   r->patient,     r->identifier};
  if (!rc)
    rc = bind_texts(st, s, 1, key, 2, err);
  if (!rc)
    rc = st__bind_i64(st, s, 3, cur + 1, err);
  if (!rc)
    rc = st__bind_i64(st, s, 4, stamp, err);
  if (!rc)
    rc = bind_texts(st, s, 5, v, 8, err);
  if (!rc)
    rc = st__bind_textn(st, s, 13, r->body, r->body_len, err);
  if (!rc)
    rc = st__exec_done(st, s, "store.resource", err);
  rc = st__tx_end(st, rc, err);
  if (!rc) {
    r->version = cur + 1;
    r->updated_ms = stamp;
  }
  return rc;
}

/* Appends " AND col = ?N" for a non-NULL value; *np counts parameters. */
static int q_eq(hvg_buf *sql, const char *col, const char *v,
                const char **params, int *np) {
  if (!v)
    return 0;
  params[(*np)++] = v;
  return hvg_buf_printf(sql, " AND %s = ?%d", col, *np);
}

/* A reference column: "Type/id" (anything with a '/') must be equal; the
 * id alone also matches the id part of a stored "Type/id". Compared with
 * substr, not LIKE, so '%' and '_' in the value are not patterns. */
static int q_ref(hvg_buf *sql, const char *col, const char *v,
                 const char **params, int *np) {
  if (!v || strchr(v, '/'))
    return q_eq(sql, col, v, params, np);
  params[(*np)++] = v;
  return hvg_buf_printf(sql,
                        " AND (%s = ?%d OR substr(%s, -length(?%d) - 1)"
                        " = '/' || ?%d)",
                        col, *np, col, *np, *np);
}

int store_resource_search(store *st, const store_resource_query *q,
                          store_resource *out, size_t max, size_t *n_out,
                          size_t *total, hvg_err *err) {
  if (n_out)
    *n_out = 0;
  if (total)
    *total = 0;
  if (!st || !q || !q->type || (!out && max) || !n_out ||
      q->n_status > STORE_QUERY_MAX_VALUES)
    return hvg_err_set(err, HVG_EINVAL, "store.resource", "bad query");
  /* the shape varies with the query: prepared per call, not cached */
  const char *params[8 + STORE_QUERY_MAX_VALUES];
  int np = 0;
  hvg_buf w;
  hvg_buf_init(&w, 4096);
  params[np++] = q->type;
  int rc = hvg_buf_adds(&w, " FROM resources WHERE type = ?1");
  if (!rc)
    rc = q_eq(&w, "partner", q->partner, params, &np);
  if (!rc)
    rc = q_eq(&w, "program", q->program, params, &np);
  if (!rc)
    rc = q_ref(&w, "owner", q->owner, params, &np);
  if (!rc)
    rc = q_ref(&w, "focus", q->focus, params, &np);
  if (!rc)
    rc = q_ref(&w, "patient", q->patient, params, &np);
  if (!rc)
    rc = q_eq(&w, "identifier", q->identifier, params, &np);
  for (size_t i = 0; !rc && i < q->n_status; i++) {
    params[np++] = q->status[i];
    rc = hvg_buf_printf(&w, "%s?%d%s", i ? ", " : " AND status IN (", np,
                        i + 1 == q->n_status ? ")" : "");
  }
  const int64_t bounds[4] = {q->updated_gt_ms, q->updated_ge_ms,
                             q->updated_lt_ms, q->updated_le_ms};
  static const char *const ops[4] = {">", ">=", "<", "<="};
  for (int i = 0; !rc && i < 4; i++)
    if (bounds[i])
      rc = hvg_buf_printf(&w, " AND updated_at %s %lld", ops[i],
                          (long long)bounds[i]);
  if (rc) {
    hvg_buf_free(&w);
    return hvg_err_set(err, rc, "store.resource", "query too long");
  }
  hvg_buf sql;
  hvg_buf_init(&sql, 8192);
  size_t n = 0, count = 0;
  for (int pass = total ? 0 : 1; pass < 2 && !rc; pass++) {
    hvg_buf_reset(&sql);
    rc = pass == 0 ? hvg_buf_printf(&sql, "SELECT count(*)%s", w.data)
                   : hvg_buf_printf(&sql,
                                    "SELECT " RES_COLS
                                    "%s ORDER BY updated_at, id LIMIT %zu"
                                    " OFFSET %zu",
                                    w.data, max, q->offset);
    if (rc) {
      rc = hvg_err_set(err, rc, "store.resource", "query too long");
      break;
    }
    sqlite3_stmt *s = NULL;
    int src = sqlite3_prepare_v2(st->db, sql.data, -1, &s, NULL);
    if (src != SQLITE_OK) {
      rc = st__db_fail(st, src, "store.resource", err);
      break;
    }
    rc = bind_texts(st, s, 1, params, np, err);
    while (!rc) {
      src = sqlite3_step(s);
      if (src == SQLITE_DONE)
        break;
      if (src != SQLITE_ROW) {
        rc = st__db_fail(st, src, "store.resource", err);
        break;
      }
      if (pass == 0) {
        count = (size_t)st__col_i64(s, 0);
        continue;
      }
      if (n == max)
        break;
      if ((rc = res_row(s, &out[n], err)) == 0)
        n++;
    }
    sqlite3_finalize(s);
  }
  hvg_buf_free(&sql);
  hvg_buf_free(&w);
  if (rc) {
    for (size_t i = 0; i < n; i++)
      store_resource_release(&out[i]);
    return rc;
  }
  *n_out = n;
  if (total)
    *total = count;
  return 0;
}

/* ---- results ----------------------------------------------------------- */

void store_result_release(store_result *r) {
  if (!r)
    return;
  free(r->mem_);
  memset(r, 0, sizeof *r);
}

int store_result_put(store *st, const store_result *r, int64_t now_ms,
                     int *changed, hvg_err *err) {
  if (changed)
    *changed = 0;
  if (!st || !r)
    return hvg_err_set(err, HVG_EINVAL, "store.result", "NULL argument");
  int rc = st__need(r->program, "result.program", STORE_KEY_MAX, err);
  if (!rc)
    rc = st__need(r->partner, "result.partner", STORE_PARTNER_MAX, err);
  if (!rc)
    rc = st__need(r->source_ref, "result.source_ref", STORE_KEY_MAX, err);
  if (!rc)
    rc = st__need(r->kind, "result.kind", 32, err);
  if (!rc && (!r->data || !r->data_len))
    rc = hvg_err_set(err, HVG_EINVAL, "result.data", "required");
  if (rc || (rc = st__tx_begin(st, err)) != 0)
    return rc;
  sqlite3_stmt *s;
  const char *key[3] = {r->program, r->partner, r->source_ref};
  int64_t id = 0;
  int same = 0;
  rc = lstmt(st, LQ_RESULT_GET, &s, err);
  if (!rc)
    rc = bind_texts(st, s, 1, key, 3, err);
  if (!rc) {
    rc = st__step(st, s, "store.result", err);
    if (rc == SQLITE_ROW) {
      id = st__col_i64(s, 0);
      const void *d = sqlite3_column_text(s, 1);
      same = d && (size_t)sqlite3_column_bytes(s, 1) == r->data_len &&
             memcmp(d, r->data, r->data_len) == 0;
    }
    if (rc > 0) {
      st__done(s);
      rc = 0;
    }
  }
  const char *v[4] = {r->kind, r->child_id, r->instrument, r->date};
  if (!rc && !same) {
    rc = lstmt(st, id ? LQ_RESULT_UPD : LQ_RESULT_INS, &s, err);
    if (!rc && id) {
      rc = st__bind_i64(st, s, 1, id, err);
      if (!rc)
        rc = bind_texts(st, s, 2, v, 4, err);
      if (!rc)
        rc = st__bind_textn(st, s, 6, r->data, r->data_len, err);
      if (!rc)
        rc = st__bind_i64(st, s, 7, now_ms, err);
    } else if (!rc) {
      rc = bind_texts(st, s, 1, key, 3, err);
      if (!rc)
        rc = bind_texts(st, s, 4, v, 4, err);
      if (!rc)
        rc = st__bind_textn(st, s, 8, r->data, r->data_len, err);
      if (!rc)
        rc = st__bind_i64(st, s, 9, now_ms, err);
    }
    if (!rc)
      rc = st__exec_done(st, s, "store.result", err);
  }
  rc = st__tx_end(st, rc, err);
  if (!rc && changed)
    *changed = !same;
  return rc;
}

static int result_row(sqlite3_stmt *s, store_result *out, hvg_err *err) {
  static const int cols[] = {1, 2, 3, 4, 5, 6, 7, 8};
  const char **dst[] = {&out->program, &out->partner,  &out->source_ref,
                        &out->kind,    &out->child_id, &out->instrument,
                        &out->date,    &out->data};
  size_t lens[8];
  memset(out, 0, sizeof *out);
  out->mem_ = st__copy_cols(s, cols, 8, dst, lens);
  if (!out->mem_) {
    memset(out, 0, sizeof *out);
    return hvg_err_set(err, HVG_ENOMEM, "store.result", NULL);
  }
  out->data_len = lens[7];
  out->id = st__col_i64(s, 0);
  out->created_at_ms = st__col_i64(s, 9);
  out->updated_at_ms = st__col_i64(s, 10);
  return 0;
}

/* Rows of a bound result query into out[0..max). */
static int result_rows(store *st, sqlite3_stmt *s, store_result *out,
                       size_t max, size_t *n_out, hvg_err *err) {
  size_t n = 0;
  int rc = 0;
  while (n < max) {
    rc = st__step(st, s, "store.result", err);
    if (rc != SQLITE_ROW)
      break;
    if ((rc = result_row(s, &out[n], err)) != 0)
      break;
    n++;
  }
  if (rc >= 0 || rc == HVG_ENOMEM)
    st__done(s);
  if (rc < 0) {
    for (size_t i = 0; i < n; i++)
      store_result_release(&out[i]);
    return rc;
  }
  *n_out = n;
  return 0;
}

int store_result_list(store *st, const char *program, int64_t since_ms,
                      int64_t after_id, size_t max, store_result *out,
                      size_t *n_out, hvg_err *err) {
  if (n_out)
    *n_out = 0;
  if (!st || !program || (!out && max) || !n_out)
    return hvg_err_set(err, HVG_EINVAL, "store.result", "NULL argument");
  sqlite3_stmt *s;
  int rc = lstmt(st, LQ_RESULT_LIST, &s, err);
  if (!rc)
    rc = st__bind_text(st, s, 1, program, err);
  if (!rc)
    rc = st__bind_i64(st, s, 2, since_ms, err);
  if (!rc)
    rc = st__bind_i64(st, s, 3, after_id, err);
  if (!rc)
    rc = st__bind_i64(st, s, 4, (int64_t)max, err);
  return rc ? rc : result_rows(st, s, out, max, n_out, err);
}

int store_result_latest(store *st, const char *program, const char *child_id,
                        const char *instrument, store_result *out,
                        hvg_err *err) {
  if (!st || !program || !child_id || !instrument || !out)
    return hvg_err_set(err, HVG_EINVAL, "store.result", "NULL argument");
  memset(out, 0, sizeof *out);
  sqlite3_stmt *s;
  const char *v[3] = {program, child_id, instrument};
  int rc = lstmt(st, LQ_RESULT_LATEST, &s, err);
  if (!rc)
    rc = bind_texts(st, s, 1, v, 3, err);
  size_t n = 0;
  if (!rc)
    rc = result_rows(st, s, out, 1, &n, err);
  if (!rc && !n)
    rc = hvg_err_set(err, HVG_ENOTFOUND, "store.result", "no such result");
  return rc;
}

/* ---- inbox -------------------------------------------------------------- */

int store_inbox_add(store *st, const char *partner, const char *const *refs,
                    size_t n, int64_t now_ms, hvg_err *err) {
  if (!st || (!refs && n))
    return hvg_err_set(err, HVG_EINVAL, "store.inbox", "NULL argument");
  int rc = st__need(partner, "inbox.partner", STORE_PARTNER_MAX, err);
  for (size_t i = 0; !rc && i < n; i++)
    rc = st__need(refs[i], "inbox.ref", STORE_KEY_MAX, err);
  if (rc || (rc = st__tx_begin(st, err)) != 0)
    return rc;
  for (size_t i = 0; !rc && i < n; i++) {
    sqlite3_stmt *s;
    const char *v[2] = {partner, refs[i]};
    rc = lstmt(st, LQ_INBOX_ADD, &s, err);
    if (!rc)
      rc = bind_texts(st, s, 1, v, 2, err);
    if (!rc)
      rc = st__bind_i64(st, s, 3, now_ms, err);
    if (!rc)
      rc = st__exec_done(st, s, "store.inbox", err);
  }
  return st__tx_end(st, rc, err);
}

int store_inbox_due(store *st, const char *partner, int64_t now_ms,
                    store_inbox_item *out, size_t max, size_t *n_out,
                    hvg_err *err) {
  if (n_out)
    *n_out = 0;
  if (!st || !partner || (!out && max) || !n_out)
    return hvg_err_set(err, HVG_EINVAL, "store.inbox", "NULL argument");
  sqlite3_stmt *s;
  int rc = lstmt(st, LQ_INBOX_DUE, &s, err);
  if (!rc)
    rc = st__bind_text(st, s, 1, partner, err);
  if (!rc)
    rc = st__bind_i64(st, s, 2, now_ms, err);
  if (!rc)
    rc = st__bind_i64(st, s, 3, (int64_t)max, err);
  if (rc)
    return rc;
  size_t n = 0;
  while (n < max && (rc = st__step(st, s, "store.inbox", err)) == SQLITE_ROW) {
    const unsigned char *t = sqlite3_column_text(s, 0);
    snprintf(out[n].ref, sizeof out[n].ref, "%s", t ? (const char *)t : "");
    out[n].attempts = st__col_i(s, 1);
    n++;
  }
  if (rc < 0)
    return rc;
  st__done(s);
  *n_out = n;
  return 0;
}

int store_inbox_done(store *st, const char *partner, const char *ref,
                     int64_t retry_at_ms, const char *reason, int64_t now_ms,
                     hvg_err *err) {
  (void)now_ms;
  if (!st || !partner || !ref)
    return hvg_err_set(err, HVG_EINVAL, "store.inbox", "NULL argument");
  int rc = st__tx_begin(st, err);
  if (rc)
    return rc;
  sqlite3_stmt *s;
  const char *v[2] = {partner, ref};
  rc = lstmt(st, retry_at_ms ? LQ_INBOX_RETRY : LQ_INBOX_DEL, &s, err);
  if (!rc)
    rc = bind_texts(st, s, 1, v, 2, err);
  if (!rc && retry_at_ms)
    rc = st__bind_i64(st, s, 3, retry_at_ms, err);
  if (!rc && retry_at_ms)
    rc = st__bind_text(st, s, 4, reason, err);
  if (!rc)
    rc = st__exec_done(st, s, "store.inbox", err);
  return st__tx_end(st, rc, err);
}

int store_inbox_count(store *st, const char *partner, int64_t *n,
                      hvg_err *err) {
  if (!st || !n)
    return hvg_err_set(err, HVG_EINVAL, "store.inbox", "NULL argument");
  sqlite3_stmt *s;
  int rc = lstmt(st, LQ_INBOX_COUNT, &s, err);
  if (!rc)
    rc = st__bind_text(st, s, 1, partner, err);
  if (!rc)
    rc = st__step(st, s, "store.inbox", err);
  if (rc < 0)
    return rc;
  *n = rc == SQLITE_ROW ? st__col_i64(s, 0) : 0;
  st__done(s);
  return 0;
}

/* ---- events ------------------------------------------------------------- */

int store_event_add(store *st, const char *program, const char *kind,
                    const char *ref, int64_t now_ms, int64_t *id_out,
                    hvg_err *err) {
  if (!st)
    return hvg_err_set(err, HVG_EINVAL, "store.event", "NULL argument");
  int rc = st__need(program, "event.program", STORE_KEY_MAX, err);
  if (!rc)
    rc = st__need(kind, "event.kind", 32, err);
  if (rc || (rc = st__tx_begin(st, err)) != 0)
    return rc;
  sqlite3_stmt *s;
  rc = lstmt(st, LQ_EVENT_ADD, &s, err);
  if (!rc)
    rc = st__bind_text(st, s, 1, program, err);
  if (!rc)
    rc = st__bind_i64(st, s, 2, now_ms, err);
  if (!rc)
    rc = st__bind_text(st, s, 3, kind, err);
  if (!rc)
    rc = st__bind_text(st, s, 4, ref, err);
  if (!rc)
    rc = st__exec_done(st, s, "store.event", err);
  int64_t id = rc ? 0 : (int64_t)sqlite3_last_insert_rowid(st->db);
  rc = st__tx_end(st, rc, err);
  if (!rc && id_out)
    *id_out = id;
  return rc;
}

void store_event_release(store_event *e) {
  if (!e)
    return;
  free(e->mem_);
  memset(e, 0, sizeof *e);
}

int store_event_list(store *st, const char *program, int64_t after_id,
                     size_t max, store_event *out, size_t *n_out,
                     hvg_err *err) {
  if (n_out)
    *n_out = 0;
  if (!st || !program || (!out && max) || !n_out)
    return hvg_err_set(err, HVG_EINVAL, "store.event", "NULL argument");
  sqlite3_stmt *s;
  int rc = lstmt(st, LQ_EVENT_LIST, &s, err);
  if (!rc)
    rc = st__bind_text(st, s, 1, program, err);
  if (!rc)
    rc = st__bind_i64(st, s, 2, after_id, err);
  if (!rc)
    rc = st__bind_i64(st, s, 3, (int64_t)max, err);
  if (rc)
    return rc;
  size_t n = 0;
  while (n < max) {
    rc = st__step(st, s, "store.event", err);
    if (rc != SQLITE_ROW)
      break;
    store_event *e = &out[n];
    memset(e, 0, sizeof *e);
    static const int cols[] = {2, 3};
    const char **dst[] = {&e->kind, &e->ref};
    if (!(e->mem_ = st__copy_cols(s, cols, 2, dst, NULL))) {
      rc = hvg_err_set(err, HVG_ENOMEM, "store.event", NULL);
      break;
    }
    e->id = st__col_i64(s, 0);
    e->at_ms = st__col_i64(s, 1);
    n++;
  }
  if (rc >= 0 || rc == HVG_ENOMEM)
    st__done(s);
  if (rc < 0) {
    for (size_t i = 0; i < n; i++)
      store_event_release(&out[i]);
    return rc;
  }
  *n_out = n;
  return 0;
}
