/* store — the gateway's durable state: source records, the outbox, dead
 * letters, the ids partners assigned, referrals, partner cursors and the
 * append-only audit trail (design.md "Store", issue 3 item 2).
 *
 * One interface, back-end neutral: nothing here names SQLite. The SQLite back
 * end (store_sqlite.c) is used for a file path; a PostgreSQL back end can
 * implement the same functions later (claims with SELECT ... FOR UPDATE SKIP
 * LOCKED), selected by a "postgresql://" path.
 *
 * Conventions
 * - Every function returns 0 or a negative HVG_E* code and fills `err` (may
 *   be NULL) with a detail that never contains record content or PHI.
 *   Database failures are HVG_EIO with the database's own message; a database
 *   locked by another connection for longer than the busy timeout is HVG_EIO
 *   ("database busy"). A failed write changes nothing (one transaction each).
 * - Strings are NUL-terminated UTF-8 and are only read during the call.
 *   Results that carry strings own them in one block released by the matching
 *   *_release function.
 * - Times are milliseconds since the Unix epoch, always passed in by the
 *   caller (store_now_ms() gives the wall clock), so tests control time.
 * - A handle is used by one thread at a time; open one handle per thread or
 *   process. Several handles (threads or processes) may share one file. A
 *   file store's handle runs a checkpoint thread of its own (see
 *   store_opts); do not fork() with a handle open and use it in the child. */
#ifndef HVG_STORE_H
#define HVG_STORE_H

#include "hvg_buf.h"
#include "hvg_err.h"

#include <stddef.h>
#include <stdint.h>

#define STORE_HASH_LEN 32   /* SHA-256 */
#define STORE_PARTNER_MAX 127 /* longest partner id, bytes */
#define STORE_KEY_MAX 1024    /* longest program/type/id/patient key, bytes */

typedef struct store store;

/* ---- Opening --------------------------------------------------------- */

typedef struct store_opts {
  /* 0 (default): synchronous=NORMAL in WAL mode. A committed transaction
   * survives a crash of the process (SIGKILL, abort) but the last commits
   * before a power loss or kernel crash may be rolled back (the database
   * stays consistent). 1: synchronous=FULL, the WAL is fsync'd at every
   * commit, so commits also survive power loss, at the cost of one fsync per
   * transaction (group commit keeps that per batch, not per record). */
  int full_sync;
  /* How long to wait for a lock held by another connection before failing
   * with HVG_EIO; <= 0 means 5000 ms. */
  int busy_timeout_ms;
  /* 0 (default): a file store copies its write-ahead log back into the
   * database (a checkpoint, with its fsyncs) in a background thread of the
   * handle, so commits do not wait for it. 1: checkpoint inside the commit
   * that fills the log (SQLite's default; no thread). */
  int inline_checkpoint;
  /* Page cache of the handle in MiB; <= 0 means 32. Memory stays bounded by
   * the sum over handles, whatever the size of the store. */
  int cache_mib;
} store_opts;

/* Open (creating if needed) the store at `path`: a file path, or ":memory:"
 * for a private in-memory store (tests). `opts` may be NULL (defaults).
 * Applies pending schema migrations, each in its own transaction.
 * Failures: HVG_EINVAL (NULL argument), HVG_ECONFIG (the database was
 * written by a newer hvgate, the file system cannot do WAL, a back end that is
 * not built in, or the SQLite library is too old), HVG_EIO (cannot open,
 * not a database, busy), HVG_ENOMEM. On success *out is a handle the caller
 * closes with store_close; on failure *out is NULL. */
int store_open(store **out, const char *path, const store_opts *opts,
               hvg_err *err);

/* Close the handle (finalizes cached statements). NULL is a no-op. Audit
 * iterators of the handle must be closed first. */
void store_close(store *st);

/* Schema version this code writes and the version of the open database. */
int store_schema_version_supported(void);
int store_schema_version(store *st, int *version, hvg_err *err);

/* Check the database: the back end's own integrity check, foreign keys, and
 * the outbox invariants (at most one head per patient lane, in-flight items
 * are heads, every active lane has a head, every record has its current
 * version). HVG_ESTATE names the first violated invariant; HVG_EIO/ENOMEM. */
int store_check(store *st, hvg_err *err);

/* Wall clock in ms since the epoch. */
int64_t store_now_ms(void);

/* SHA-256 of `len` bytes (the caller's canonical content) into out.
 * HVG_EINVAL for NULL arguments, HVG_ENOMEM if the digest fails. */
int store_hash(const void *data, size_t len, unsigned char out[STORE_HASH_LEN],
               hvg_err *err);

/* The same hash with the digest fetched once: in OpenSSL 3 looking the
 * digest up is a fifth of hashing a 3.7 KB Bundle. One hasher per thread.
 * store_hasher_new: HVG_ENOMEM (*out NULL). store_hasher_free: NULL-safe.
 * store_hasher_hash: as store_hash. */
typedef struct store_hasher store_hasher;
int store_hasher_new(store_hasher **out, hvg_err *err);
void store_hasher_free(store_hasher *h);
int store_hasher_hash(store_hasher *h, const void *data, size_t len,
                      unsigned char out[STORE_HASH_LEN], hvg_err *err);

/* ---- Transactions spanning several calls ------------------------------ */

/* Group writes into one transaction: after store_tx_begin every write
 * function of this handle joins it instead of committing on its own; a
 * write that fails inside undoes only its own changes (a savepoint) and
 * returns its error, and the caller decides. store_tx_end commits (commit
 * != 0) or rolls back everything since its store_tx_begin. Reads see the
 * transaction's own changes. Transactions nest: inside an open one, begin
 * and end are a savepoint, so that the inner work commits or rolls back
 * on its own and the outer transaction decides what is kept (group commit
 * of several requests by a caller that keeps one open). HVG_ESTATE for an
 * end without a begin; HVG_EIO, HVG_ENOMEM. A failed commit rolls back;
 * the handle is usable afterwards either way. Should the database roll
 * the whole transaction back itself (I/O error, disk full), every later
 * write fails with HVG_EIO until the outermost store_tx_end, which returns
 * HVG_EIO: nothing of the transaction is committed. */
int store_tx_begin(store *st, hvg_err *err);
int store_tx_end(store *st, int commit, hvg_err *err);

/* How many store_tx_begin are open on the handle (0: none). */
int store_tx_depth(const store *st);

/* ---- Intake ---------------------------------------------------------- */

/* One partner a record is to be delivered to, as the caller decided it
 * (consent and sensitivity are checked by the caller; the store records the
 * consent id it was queued under). */
typedef struct store_target {
  const char *partner;    /* required, at most STORE_PARTNER_MAX bytes */
  const char *consent_id; /* may be NULL */
} store_target;

typedef struct store_record {
  /* source key: program + record type + source record id (required) */
  const char *program;
  const char *record_type;
  const char *record_id;
  unsigned char hash[STORE_HASH_LEN]; /* of the canonical content */
  const char *bundle;                 /* FHIR Bundle JSON to deliver */
  size_t bundle_len;                  /* > 0 */
  const void *packed; /* optional: the Bundle as store_pack compressed it */
  size_t packed_len;  /* > 0 when packed is set */
  const char *patient_key;            /* ordering lane, required */
  const char *sensitivity;            /* caller's labels, may be NULL */
  const store_target *targets;        /* may be NULL when n_targets == 0 */
  size_t n_targets;                   /* distinct partners */
} store_record;

typedef enum store_put_status {
  STORE_PUT_NEW = 1,   /* first time seen: version 1 stored and queued */
  STORE_PUT_UNCHANGED, /* same hash as the stored version: nothing new */
  STORE_PUT_CHANGED    /* new version stored and queued for its targets */
} store_put_status;

typedef struct store_put_result {
  store_put_status status;
  int64_t version; /* current version of the record after the call */
  size_t queued;   /* outbox items created for this record */
} store_put_result;

/* Bundles are stored compressed with zstd and a dictionary trained on the
 * store's own Bundles (store_zip.h): store_put_records trains one from the
 * first batch of at least STORE_ZIP_MIN_SAMPLES records when the store has
 * none, and compresses what it is given plain. store_pack lets another
 * thread, with its own handle, do the compressing ahead of the writer.
 *
 * store_pack_refresh: when this handle has no dictionary, read the newest
 * one the store has (one small query; call it once per batch, not per
 * record). 0, or HVG_EIO / HVG_ENOMEM.
 * store_pack: compress bundle[0..len) with that dictionary. Returns 1 with
 * *out / *out_len set (valid until the next store_pack on st; pass them as
 * store_record.packed), 0 when there is no dictionary yet or compressing
 * would not make it smaller (store it plain), or a negative HVG code. */
int store_pack_refresh(store *st, hvg_err *err);
int store_pack(store *st, const char *bundle, size_t len, const void **out,
               size_t *out_len, hvg_err *err);

/* Store a batch of records in ONE transaction (group commit): either all of
 * them are stored with their outbox items or none.
 * - NEW: the record and version 1 are stored; one outbox item per target.
 * - UNCHANGED: no new version. Targets that have never had any version of
 *   this record queued (e.g. consent given since the last intake) get the
 *   current version queued; for the same targets nothing is queued.
 * - CHANGED: version+1 is stored. Items of older versions that are pending or
 *   dead (for any partner) are superseded: stale content is never sent. An
 *   older version already in flight keeps its place and the new item waits
 *   behind it in the same lane, so versions reach a partner in order.
 * The same source key may appear twice in a batch (processed in order).
 * `results` (n entries, may be NULL) is filled only on success.
 * Failures: HVG_EINVAL (a missing or oversized field; err->field names it as
 * "batch[i].field"), HVG_EIO, HVG_ENOMEM; nothing is stored then. */
int store_put_records(store *st, const store_record *batch, size_t n,
                      int64_t now_ms, store_put_result *results, hvg_err *err);

/* ---- Outbox ---------------------------------------------------------- */

/* A claimed outbox item: one record version for one partner. The strings
 * and the bundle live in one block owned by the item; release it with
 * store_items_release. `lease` is the claim token: ack/retry/dead must pass
 * the item back unchanged and are refused (HVG_ESTATE) once the lease has
 * expired and the item was claimed again. */
typedef struct store_item {
  int64_t id;          /* outbox id: stable, used by replay */
  int64_t lease;       /* claim token */
  int64_t lease_until; /* ms; after it the item may be claimed again */
  int attempts;        /* claims so far including this one (reset by replay) */
  int64_t version;     /* record version */
  const char *partner;
  const char *program;
  const char *record_type;
  const char *record_id;
  const char *patient_key;
  const char *consent_id;  /* NULL if none */
  const char *sensitivity; /* NULL if none */
  const char *bundle;      /* NUL-terminated, bundle_len bytes */
  size_t bundle_len;
  void *mem_; /* owner of the strings */
} store_item;

/* Claim up to `max` due items for `partner` into out[0..*n_out), each leased
 * until now_ms + lease_ms. Per (partner, patient key) lane at most ONE item
 * is in flight and it is always the oldest unfinished item of the lane, so
 * records about the same patient are delivered in order; a lane whose head is
 * waiting for a retry blocks the later items of that patient only. An item
 * whose lease expired (the process died holding it) is claimable again, first
 * in its lane. Delivery is therefore at-least-once from the store; exactly
 * once on the partner's server comes from conditional creates (If-None-Exist
 * on the identifiers) and updates by the stored server ids.
 * Failures: HVG_EINVAL (NULL, lease_ms <= 0), HVG_EIO, HVG_ENOMEM; then
 * *n_out == 0 and nothing is claimed. The caller releases out[0..*n_out). */
int store_claim(store *st, const char *partner, size_t max, int64_t now_ms,
                int64_t lease_ms, store_item *out, size_t *n_out,
                hvg_err *err);

/* Make every in-flight item claimable now, as if its lease had ended: for a
 * daemon starting on a store no other process delivers from (the caller
 * guarantees that, e.g. with a lock file), so that work a killed process
 * held does not wait for its leases. Their old lease tokens stop working.
 * HVG_EINVAL, HVG_EIO, HVG_ENOMEM. */
int store_release_leases(store *st, int64_t now_ms, hvg_err *err);

/* Free what claim put in items[0..n) and zero them. NULL-safe. */
void store_items_release(store_item *items, size_t n);

/* An id a server assigned to a resource of a delivered Bundle (from the
 * Bundle response's location), keyed by resource type and identifier. */
typedef struct store_assigned_id {
  const char *resource_type; /* "Observation" */
  const char *identifier;    /* "system|value" */
  const char *id;            /* server's logical id */
  const char *version_id;    /* may be NULL */
} store_assigned_id;

/* Audit entry (see below). On append, id is ignored. */
typedef struct store_audit_entry {
  int64_t id;
  int64_t at_ms;
  const char *actor;  /* required: "gateway", a credential, an operator */
  const char *action; /* required: "disclose", "replay", ... */
  const char *partner;
  const char *program;
  const char *record_type;
  const char *record_id;
  const char *resources; /* e.g. "Observation/123/_history/1 Patient/9" */
  const char *consent_id;
  const char *detail;
} store_audit_entry;

/* Mark a claimed item delivered, store the ids the server assigned against
 * the item's source key (replacing earlier ids of the same resource), count
 * the delivery, let the next item of the lane go, and - when `audit` is not
 * NULL - append the audit entry in the same transaction (fields left NULL
 * in it default to the item's partner, source key and consent).
 * Failures: HVG_EINVAL, HVG_ESTATE (not in flight under this lease: expired
 * and claimed again, or already finished), HVG_EIO, HVG_ENOMEM; nothing
 * changes then. The caller keeps ownership of everything passed. */
int store_ack(store *st, const store_item *it, const store_assigned_id *ids,
              size_t n_ids, const store_audit_entry *audit, int64_t now_ms,
              hvg_err *err);

/* The server id (and version id if known, else empty) that `partner`
 * assigned to the resource with this type and identifier, appended to `id`
 * and `version_id` (which may be NULL). HVG_ENOTFOUND if none was stored;
 * HVG_ETOOBIG/HVG_ENOMEM from the buffers; HVG_EIO. */
int store_server_id(store *st, const char *partner, const char *resource_type,
                    const char *identifier, hvg_buf *id, hvg_buf *version_id,
                    hvg_err *err);

/* Give a claimed item back for another attempt at next_attempt_ms (the
 * caller's backoff), recording `reason` (no PHI; may be NULL). The item stays
 * the head of its lane. Failures as store_ack. */
int store_retry(store *st, const store_item *it, int64_t next_attempt_ms,
                const char *reason, int64_t now_ms, hvg_err *err);

/* Move a claimed item to the dead letters with the server's HTTP status,
 * its OperationOutcome JSON (may be NULL) and a hint for the operator; the
 * next item of the lane goes. Failures as store_ack. */
int store_dead(store *st, const store_item *it, int http_status,
               const char *outcome_json, size_t outcome_len, const char *hint,
               int64_t now_ms, hvg_err *err);

/* Outcomes of several claimed items, written in ONE transaction: what a
 * delivery worker uses after a round of requests (one commit instead of one
 * per item; a crash before it only means those items are sent again, which
 * conditional creates make harmless). store_ack/retry/dead are this with one
 * item. */
typedef enum store_outcome_kind {
  STORE_DELIVERED = 1, /* as store_ack */
  STORE_RETRY,         /* as store_retry */
  STORE_DEAD           /* as store_dead */
} store_outcome_kind;

typedef struct store_outcome {
  const store_item *item;
  store_outcome_kind kind;
  /* STORE_DELIVERED */
  const store_assigned_id *ids;
  size_t n_ids;
  const store_audit_entry *audit; /* may be NULL */
  /* STORE_RETRY */
  int64_t next_attempt_ms;
  const char *reason;
  /* STORE_DEAD */
  int http_status;
  const char *outcome_json;
  size_t outcome_len;
  const char *hint;
  /* out: 0 applied, or HVG_ESTATE (this item's lease was lost; nothing
   * applied for it - the others are still applied) */
  int result;
} store_outcome;

/* Apply o[0..n) in one transaction; each o[i].result tells whether it was
 * applied. Failures: HVG_EINVAL (a bad outcome, err->field names it, nothing
 * applied), HVG_EIO, HVG_ENOMEM (nothing applied). */
int store_finish(store *st, store_outcome *o, size_t n, int64_t now_ms,
                 hvg_err *err);

/* Move dead letters back to pending, due at now_ms, attempts reset: the
 * listed outbox ids (ids that are not dead letters are skipped), or all dead
 * letters of `partner` (NULL: of every partner). One transaction. *replayed
 * (may be NULL) gets how many moved. HVG_EINVAL, HVG_EIO, HVG_ENOMEM. */
int store_replay(store *st, const int64_t *ids, size_t n, int64_t now_ms,
                 size_t *replayed, hvg_err *err);
int store_replay_all(store *st, const char *partner, int64_t now_ms,
                     size_t *replayed, hvg_err *err);

/* A dead letter, for listing. Strings owned by the entry (release below). */
typedef struct store_dead_letter {
  int64_t id; /* outbox id, for store_replay */
  int64_t version;
  int64_t at_ms;
  int attempts;
  int http_status;
  const char *partner;
  const char *program;
  const char *record_type;
  const char *record_id;
  const char *hint;    /* may be NULL */
  const char *reason;  /* last retry reason, may be NULL */
  const char *outcome; /* OperationOutcome JSON, may be NULL */
  size_t outcome_len;
  void *mem_;
} store_dead_letter;

/* Dead letters of `partner` (NULL: all) with id > after_id, oldest first,
 * at most max into out[0..*n_out). Page with after_id = last id.
 * HVG_EINVAL, HVG_EIO, HVG_ENOMEM (then *n_out == 0). */
int store_dead_list(store *st, const char *partner, int64_t after_id,
                    size_t max, store_dead_letter *out, size_t *n_out,
                    hvg_err *err);
void store_dead_letters_release(store_dead_letter *d, size_t n);

/* ---- Status ---------------------------------------------------------- */

typedef struct store_partner_stats {
  char partner[STORE_PARTNER_MAX + 1];
  int64_t pending;   /* waiting (due or backing off) */
  int64_t in_flight; /* claimed, lease running or expired */
  int64_t dead;      /* dead letters */
  int64_t delivered; /* acknowledged deliveries, ever */
  int64_t oldest_pending_age_ms; /* 0 when nothing is pending */
} store_partner_stats;

/* Per-partner counts, partners in byte order, at most max into
 * out[0..*n_out); *n_total (may be NULL) gets how many partners there are.
 * HVG_EINVAL, HVG_EIO, HVG_ENOMEM. */
int store_stats(store *st, int64_t now_ms, store_partner_stats *out,
                size_t max, size_t *n_out, size_t *n_total, hvg_err *err);

/* ---- Audit ------------------------------------------------------------- */

/* Append an audit entry (actor and action required). The audit table cannot
 * be updated or deleted through the database (triggers abort it). *id_out
 * (may be NULL) gets the entry's id. HVG_EINVAL, HVG_EIO, HVG_ENOMEM. */
int store_audit_append(store *st, const store_audit_entry *e, int64_t *id_out,
                       hvg_err *err);

/* Read the audit trail in order, entries with id > after_id. next returns 1
 * with *e filled (strings valid until the next call or close), 0 at the end,
 * or a negative code. Keep iterators short-lived: an open one holds a read
 * snapshot. Close before store_close. open: HVG_EINVAL/EIO/ENOMEM. */
typedef struct store_audit_iter store_audit_iter;
int store_audit_iter_open(store *st, int64_t after_id, store_audit_iter **out,
                          hvg_err *err);
int store_audit_iter_next(store_audit_iter *it, store_audit_entry *e,
                          hvg_err *err);
void store_audit_iter_close(store_audit_iter *it);

/* ---- Referrals (closed loop, issue 4) ---------------------------------- */

typedef struct store_referral {
  int64_t id;              /* output: row id (paging of store_referral_list) */
  const char *program;     /* key, required */
  const char *referral_id; /* key, required */
  const char *partner;     /* the partner on the other side of the loop */
  const char *status;      /* Task.status; required when creating */
  const char *task_id;     /* the hosted Task's id (GET /fhir/Task/{id}) */
  const char *direction;   /* "outbound" (program -> partner, the default)
                              or "inbound"; set when creating only */
  const char *hv_status;   /* home visiting status derived from the loop */
  const char *data;        /* caller's JSON; data_len bytes */
  size_t data_len;
  int64_t created_at_ms;   /* outputs of store_referral_get/list */
  int64_t updated_at_ms;
  int64_t sent_at_ms;      /* first delivery to the partner; 0: not yet */
  void *mem_;              /* owner of strings filled by get/list */
} store_referral;

/* Create the referral (status required; its first transition, from none to
 * status, is recorded with hv_status) or update it: non-NULL partner,
 * task_id, hv_status and data replace the stored ones; status only changes
 * through transitions, direction never. HVG_EINVAL, HVG_EIO, HVG_ENOMEM. */
int store_referral_upsert(store *st, const store_referral *r, int64_t now_ms,
                          hvg_err *err);

/* One accepted status change of a referral's Task. */
typedef struct store_transition {
  int64_t at_ms;
  const char *from_status; /* input: expected current status, or NULL */
  const char *to_status;   /* required */
  const char *hv_status;   /* derived home visiting status, may be NULL */
  const char *actor;       /* required: "partner:ID", "program:ID", ... */
  const char *source;      /* "push", "poll", "subscription", "export", ... */
  const char *detail;      /* reason (statusReason text), may be NULL */
} store_transition;

/* Record a transition and make it the referral's status (and hv_status
 * when given). With a non-NULL from_status the current status must equal
 * it (HVG_ESTATE otherwise: someone else moved it). HVG_ENOTFOUND for an
 * unknown referral; HVG_EINVAL, HVG_EIO, HVG_ENOMEM. Append-only. */
int store_referral_transition(store *st, const char *program,
                              const char *referral_id,
                              const store_transition *t, hvg_err *err);

/* The same without hv_status and source (kept for callers of issue 3). */
int store_referral_transition_add(store *st, const char *program,
                                  const char *referral_id,
                                  const char *from_status,
                                  const char *to_status, const char *actor,
                                  const char *detail, int64_t at_ms,
                                  hvg_err *err);

/* Fill *out (strings owned by it; store_referral_release frees them).
 * HVG_ENOTFOUND, HVG_EINVAL, HVG_EIO, HVG_ENOMEM. */
int store_referral_get(store *st, const char *program, const char *referral_id,
                       store_referral *out, hvg_err *err);
void store_referral_release(store_referral *r);

/* Referrals of `program` updated at or after since_ms (0: all) with row id
 * > after_id, in row id order, at most max into out[0..*n_out); page with
 * after_id = the last id. Release each with store_referral_release.
 * HVG_EINVAL, HVG_EIO, HVG_ENOMEM (then *n_out == 0). */
int store_referral_list(store *st, const char *program, int64_t since_ms,
                        int64_t after_id, size_t max, store_referral *out,
                        size_t *n_out, hvg_err *err);

/* The transitions of a referral, oldest first, at most max into
 * out[0..*n_out); their strings live in *mem, which the caller releases
 * with store_referral_history_free. HVG_ENOTFOUND, HVG_EINVAL, HVG_EIO,
 * HVG_ENOMEM (*mem NULL then). */
int store_referral_history(store *st, const char *program,
                           const char *referral_id, store_transition *out,
                           size_t max, size_t *n_out, void **mem,
                           hvg_err *err);
void store_referral_history_free(void *mem);

/* ---- Hosted FHIR resources (the gateway's /fhir endpoint) -------------- */

/* A resource the gateway serves: the Tasks (and ServiceRequests) of the
 * referrals it carries, and what partners create on it (results, referrals
 * to a program). The body is the resource JSON without meta.versionId and
 * meta.lastUpdated: those are the version and stamp columns, set here and
 * put into the resource by whoever serves it. */
typedef struct store_resource {
  const char *type, *id;  /* key */
  int64_t version;        /* 1, 2, ... (output of put/get) */
  int64_t updated_ms;     /* stamp (output of put/get) */
  const char *partner;    /* the one partner that may see and change it */
  const char *program;    /* the home visiting program it belongs to */
  const char *referral_id;
  /* search columns: references as "Type/id", identifier "system|value" */
  const char *status, *owner, *focus, *patient, *identifier;
  const char *body;
  size_t body_len;
  void *mem_; /* owner of strings filled by get/search */
} store_resource;

/* Write r. expect_version 0: create (HVG_ESTATE when it exists);
 * > 0: replace that version (HVG_ENOTFOUND when absent, HVG_ESTATE when
 * the stored version differs: somebody changed it since); < 0: create or
 * replace whatever is there. On success r->version and r->updated_ms hold
 * the new version and stamp; the stamp is now_ms or, if not later than
 * every stamp in the store, one more than the latest, so stamps strictly
 * increase (a safe polling cursor). HVG_EINVAL (type, id, body missing or
 * too long), HVG_EIO, HVG_ENOMEM; nothing changes on error. */
int store_resource_put(store *st, store_resource *r, int64_t expect_version,
                       int64_t now_ms, hvg_err *err);

/* Fill *out with the resource (release with store_resource_release).
 * HVG_ENOTFOUND, HVG_EINVAL, HVG_EIO, HVG_ENOMEM. */
int store_resource_get(store *st, const char *type, const char *id,
                       store_resource *out, hvg_err *err);
void store_resource_release(store_resource *r);

#define STORE_QUERY_MAX_VALUES 16

/* A search: every non-NULL condition must hold. Lists are alternatives
 * (status=a,b). owner, focus and patient are references: "Type/id" matches
 * the stored reference exactly, an id alone (no '/') also the id part of
 * the stored "Type/id". identifier is exact. Results in stamp order, then
 * id. */
typedef struct store_resource_query {
  const char *type;    /* required */
  const char *partner; /* only this partner's */
  const char *program; /* only this program's */
  const char *status[STORE_QUERY_MAX_VALUES];
  size_t n_status;
  const char *owner, *focus, *patient, *identifier;
  int64_t updated_gt_ms, updated_ge_ms, updated_lt_ms, updated_le_ms; /* 0:
                                                                         none */
  size_t offset; /* skip this many matches */
} store_resource_query;

/* Up to max matches into out[0..*n_out) (release each), *total (may be
 * NULL) the number of matches ignoring offset and max. HVG_EINVAL,
 * HVG_EIO, HVG_ENOMEM (then *n_out == 0). */
int store_resource_search(store *st, const store_resource_query *q,
                          store_resource *out, size_t max, size_t *n_out,
                          size_t *total, hvg_err *err);

/* ---- Results from partners (well-child results for a program) ---------- */

typedef struct store_result {
  int64_t id;              /* output: row id, for paging */
  const char *program;     /* required */
  const char *partner;     /* required: who sent it */
  const char *source_ref;  /* required: "Observation/123" at the gateway or
                              the partner: the same source replaces it */
  const char *kind;        /* required: "screening" or "visit" */
  const char *child_id;    /* the program's child id */
  const char *instrument;  /* catalogue id */
  const char *date;        /* YYYY-MM-DD */
  const char *data;        /* canonical JSON; data_len bytes, required */
  size_t data_len;
  int64_t created_at_ms, updated_at_ms; /* outputs */
  void *mem_;
} store_result;

/* Insert or replace (by program, partner, source_ref) r. *changed (may be
 * NULL) is 1 when something new was stored, 0 when it was the same.
 * HVG_EINVAL, HVG_EIO, HVG_ENOMEM. */
int store_result_put(store *st, const store_result *r, int64_t now_ms,
                     int *changed, hvg_err *err);

/* As store_referral_list, for results. */
int store_result_list(store *st, const char *program, int64_t since_ms,
                      int64_t after_id, size_t max, store_result *out,
                      size_t *n_out, hvg_err *err);
void store_result_release(store_result *r);

/* The latest result of `program` about child_id with this instrument, or
 * HVG_ENOTFOUND. Release with store_result_release. */
int store_result_latest(store *st, const char *program, const char *child_id,
                        const char *instrument, store_result *out,
                        hvg_err *err);

/* ---- Inbox: what a partner told the gateway to fetch ------------------- */

/* Remember references ("Task/123", relative to the partner's base) that a
 * subscription notification named, due at now_ms; one entry per reference
 * (a repeat while pending changes nothing). HVG_EINVAL, HVG_EIO,
 * HVG_ENOMEM: nothing is stored then. */
int store_inbox_add(store *st, const char *partner, const char *const *refs,
                    size_t n, int64_t now_ms, hvg_err *err);

typedef struct store_inbox_item {
  char ref[STORE_KEY_MAX + 1];
  int attempts;
} store_inbox_item;

/* Up to max due entries of the partner, oldest first. HVG_EINVAL, HVG_EIO,
 * HVG_ENOMEM. */
int store_inbox_due(store *st, const char *partner, int64_t now_ms,
                    store_inbox_item *out, size_t max, size_t *n_out,
                    hvg_err *err);

/* Done with an entry: removed (retry_at_ms == 0) or due again at
 * retry_at_ms with `reason` (no PHI). HVG_EINVAL, HVG_EIO. */
int store_inbox_done(store *st, const char *partner, const char *ref,
                     int64_t retry_at_ms, const char *reason, int64_t now_ms,
                     hvg_err *err);

/* Entries waiting for the partner (NULL: all partners). */
int store_inbox_count(store *st, const char *partner, int64_t *n,
                      hvg_err *err);

/* ---- Events for a program (webhook feed) ------------------------------- */

typedef struct store_event {
  int64_t id, at_ms;
  const char *kind; /* "referral", "result" */
  const char *ref;  /* referral id or result source */
  void *mem_;
} store_event;

/* Append an event for `program`. *id_out may be NULL. HVG_EINVAL, HVG_EIO,
 * HVG_ENOMEM. */
int store_event_add(store *st, const char *program, const char *kind,
                    const char *ref, int64_t now_ms, int64_t *id_out,
                    hvg_err *err);

/* Events of program with id > after_id, oldest first, at most max. */
int store_event_list(store *st, const char *program, int64_t after_id,
                     size_t max, store_event *out, size_t *n_out,
                     hvg_err *err);
void store_event_release(store_event *e);

/* ---- Consents ---------------------------------------------------------- */

/* A family's permission to share with one organization. Dates are
 * YYYY-MM-DD; scope is a comma list of record kinds (screening, referral,
 * well_child) or NULL for all. */
typedef struct store_consent {
  const char *program, *consent_id; /* key, required */
  const char *family_id, *caregiver_id;
  const char *organization_id; /* required */
  const char *scope;
  const char *granted; /* required */
  const char *expires, *revoked;
} store_consent;

/* Store (insert or replace by key) n consents in one transaction.
 * HVG_EINVAL (a required field missing or too long), HVG_EIO, HVG_ENOMEM;
 * nothing is stored then. */
int store_consent_put(store *st, const store_consent *c, size_t n,
                      int64_t now_ms, hvg_err *err);

/* Finds a consent active on `today` (granted on or before it, not expired,
 * not revoked by then) of the family (or, when family_id is NULL or empty,
 * the caregiver) for one of the organization ids, whose scope covers
 * `scope`. Returns 1 with its consent id in id[cap], 0 when there is none,
 * or HVG_EINVAL / HVG_EIO / HVG_ENOMEM. */
int store_consent_find(store *st, const char *program, const char *family_id,
                       const char *caregiver_id, const char *const *orgs,
                       size_t n_orgs, const char *scope, const char *today,
                       char *id, size_t cap, hvg_err *err);

/* 1 when the consent is (still) active on `today`: granted, not expired,
 * not revoked; 0 when not or unknown; HVG_EINVAL / HVG_EIO / HVG_ENOMEM. */
int store_consent_active(store *st, const char *program, const char *consent_id,
                         const char *today, hvg_err *err);

/* ---- Partner cursors (polling position per partner) -------------------- */

/* Append the partner's cursor to `out`; HVG_ENOTFOUND if never set. */
int store_cursor_get(store *st, const char *partner, hvg_buf *out,
                     hvg_err *err);
/* Set (replace) the partner's cursor. HVG_EINVAL, HVG_EIO, HVG_ENOMEM. */
int store_cursor_set(store *st, const char *partner, const char *value,
                     int64_t now_ms, hvg_err *err);

#endif
