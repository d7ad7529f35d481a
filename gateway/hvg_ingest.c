#include "hvg_ingest.h"

#include "fhir_check.h"
#include "hvg_fsrv.h"
#include "hv_tofhir.h"
#include "hvg_cli.h"
#include "hvg_route.h"
#include "hvg_run.h"
#include "store_zip.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define INGEST_BATCH 1000                     /* records per transaction */
#define INGEST_BATCH_BYTES ((size_t)16 << 20) /* Bundle bytes per batch */
/* The first batch is smaller, so the writer starts (and trains the store's
 * compression dictionary on it, which needs no more) sooner. */
#define INGEST_FIRST_BATCH STORE_ZIP_MAX_SAMPLES

/* One pending record of the batch: offsets into the batch buffers, because
 * they grow (and move) while the batch fills. */
typedef struct ingest_rec {
  size_t bundle_off, bundle_len;
  size_t packed_off, packed_len; /* compressed (store_pack); len 0: none */
  size_t keys_off; /* record_type\0record_id\0patient\0[partner\0consent\0] */
  unsigned char hash[STORE_HASH_LEN];
  int has_target, has_consent, has_sens;
  /* a referral: its fields for the program's export (JSON in keys) and
   * the status the program gave, for the referral tracker */
  int is_referral, has_status;
  size_t data_off, data_len;
  const char *file;
  unsigned long line;
} ingest_rec;

/* A batch of records (and consents) written in one transaction. */
typedef struct ingest_batch {
  hvg_buf bundles, keys;
  hvg_buf packed; /* the Bundles store_pack compressed */
  ingest_rec recs[INGEST_BATCH];
  size_t n;
  store_consent cons[INGEST_BATCH];
  size_t cons_off[INGEST_BATCH][8]; /* into cons_keys; SIZE_MAX: absent */
  hvg_buf cons_keys;
  size_t n_cons;
} ingest_batch;

/* Mapping and storing overlap: the main thread maps into one batch while a
 * writer thread commits the other (its own store handle), so intake runs at
 * the speed of the slower of the two rather than their sum. */
struct hvg_ingest {
  char today[11];
  long today_days;
  const hvg_config *cfg;
  const hvg_program *prog;
  store *st;  /* main thread: consent lookups */
  store *wst; /* writer thread */
  hvg_fsrv *fs; /* the writer's referral tracker */
  hv_tofhir tf;
  store_hasher *hasher; /* main thread */
  hvg_arena scratch;
  ingest_batch bat[2];
  int cur;     /* the batch being filled */
  int flushed; /* a batch was handed to the writer */
  pthread_t writer;
  int writer_started, tf_ready;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  ingest_batch *pending; /* handed to the writer, until written */
  atomic_int writing;    /* the writer has a batch (pending, read lock-free) */
  int quit;
  hvg_ingest_counts cnt; /* fresh/changed/unchanged/queued: the writer's */
  hvg_err werr;             /* the writer's failure */
  FILE *issues;
  atomic_int failed; /* a store error was printed */
};

/* The referral tracker for the batch's referrals, in one transaction:
 * their loop state, the partner's view of their Task at the gateway, and
 * the statuses the program set. Writer thread only. */
static int ingest__track(hvg_ingest *x, ingest_batch *bt,
                         const store_record *batch,
                         const store_target *targets, int64_t now,
                         hvg_err *err) {
  int any = 0;
  for (size_t i = 0; i < bt->n && !any; i++)
    any = bt->recs[i].is_referral;
  if (!any)
    return 0;
  int rc = store_tx_begin(x->wst, err);
  for (size_t i = 0; !rc && i < bt->n; i++) {
    const ingest_rec *r = &bt->recs[i];
    if (!r->is_referral)
      continue;
    const store_record *b = &batch[i];
    const char *status = NULL;
    if (r->has_status) { /* the last key */
      const char *k = b->record_id;
      for (int skip = 0; skip < 2 + !!b->sensitivity +
                                    (r->has_target ? 1 + r->has_consent : 0);
           skip++)
        k += strlen(k) + 1;
      status = k;
    }
    hvg_fsrv_referral ref = {
        x->prog,
        b->record_id,
        r->has_target ? hvg_config_partner(x->cfg, targets[i].partner) : NULL,
        b->bundle,
        b->bundle_len,
        bt->keys.data + r->data_off,
        r->data_len,
        status};
    char warn[400];
    rc = hvg_fsrv_track_referral(x->fs, &ref, now, warn, sizeof warn, err);
    if (rc == 1) {
      fprintf(x->issues, "%s:%lu: referral.status: warning: %s\n", r->file,
              r->line, warn);
      rc = 0;
    }
  }
  int trc = store_tx_end(x->wst, rc == 0, rc ? NULL : err);
  return rc ? rc : trc;
}

/* Writes a batch in one transaction (consents first: later records of the
 * run are checked against them). Writer thread only. */
static int ingest__write(hvg_ingest *x, ingest_batch *bt) {
  hvg_err err;
  hvg_err_clear(&err);
  int64_t now = store_now_ms();
  if (bt->n_cons) {
    /* the strings were appended to cons_keys, which may have moved */
    for (size_t i = 0; i < bt->n_cons; i++) {
      store_consent *c = &bt->cons[i];
      const char **f[8] = {&c->consent_id, &c->family_id, &c->caregiver_id,
                           &c->organization_id, &c->scope, &c->granted,
                           &c->expires, &c->revoked};
      for (size_t k = 0; k < 8; k++)
        *f[k] = bt->cons_off[i][k] == SIZE_MAX
                    ? NULL
                    : bt->cons_keys.data + bt->cons_off[i][k];
    }
    if (store_consent_put(x->wst, bt->cons, bt->n_cons, now, &err)) {
      x->werr = err;
      return HVG_EXIT_IOERR;
    }
    bt->n_cons = 0;
    hvg_buf_reset(&bt->cons_keys);
  }
  if (!bt->n)
    return 0;
  store_record batch[INGEST_BATCH];
  store_target targets[INGEST_BATCH];
  store_put_result res[INGEST_BATCH];
  for (size_t i = 0; i < bt->n; i++) {
    const ingest_rec *r = &bt->recs[i];
    const char *k = bt->keys.data + r->keys_off;
    store_record *b = &batch[i];
    memset(b, 0, sizeof *b);
    b->program = x->prog->id;
    b->record_type = k;
    k += strlen(k) + 1;
    b->record_id = k;
    k += strlen(k) + 1;
    b->patient_key = k;
    k += strlen(k) + 1;
    b->sensitivity = r->has_sens ? k : NULL;
    if (r->has_sens)
      k += strlen(k) + 1;
    memcpy(b->hash, r->hash, STORE_HASH_LEN);
    b->bundle = bt->bundles.data + r->bundle_off;
    b->bundle_len = r->bundle_len;
    if (r->packed_len) {
      b->packed = bt->packed.data + r->packed_off;
      b->packed_len = r->packed_len;
    }
    if (r->has_target) {
      targets[i].partner = k;
      k += strlen(k) + 1;
      targets[i].consent_id = r->has_consent ? k : NULL;
      b->targets = &targets[i];
      b->n_targets = 1;
    }
  }
  if (store_put_records(x->wst, batch, bt->n, now, res, &err) ||
      ingest__track(x, bt, batch, targets, now, &err)) {
    x->werr = err;
    return HVG_EXIT_IOERR;
  }
  for (size_t i = 0; i < bt->n; i++) {
    x->cnt.fresh += res[i].status == STORE_PUT_NEW;
    x->cnt.changed += res[i].status == STORE_PUT_CHANGED;
    x->cnt.unchanged += res[i].status == STORE_PUT_UNCHANGED;
    x->cnt.queued += res[i].queued;
  }
  bt->n = 0;
  hvg_buf_reset(&bt->bundles);
  hvg_buf_reset(&bt->packed);
  hvg_buf_reset(&bt->keys);
  return 0;
}

static void *ingest__writer(void *arg) {
  hvg_ingest *x = arg;
  pthread_mutex_lock(&x->mu);
  for (;;) {
    while (!x->pending && !x->quit)
      pthread_cond_wait(&x->cv, &x->mu);
    if (!x->pending)
      break;
    ingest_batch *bt = x->pending;
    atomic_store(&x->writing, 1);
    pthread_mutex_unlock(&x->mu);
    if (!atomic_load(&x->failed) && ingest__write(x, bt))
      atomic_store(&x->failed, 1);
    bt->n = bt->n_cons = 0;
    hvg_buf_reset(&bt->bundles);
    hvg_buf_reset(&bt->packed);
    hvg_buf_reset(&bt->keys);
    hvg_buf_reset(&bt->cons_keys);
    pthread_mutex_lock(&x->mu);
    x->pending = NULL;
    atomic_store(&x->writing, 0);
    pthread_cond_broadcast(&x->cv);
  }
  pthread_mutex_unlock(&x->mu);
  return NULL;
}

/* Hands the current batch to the writer (after the previous one is
 * written) and goes on with the other; with `wait`, also waits until it is
 * written. Returns 0, or HVG_EXIT_IOERR when a write failed. */
static int ingest__flush(hvg_ingest *x, int wait) {
  ingest_batch *bt = &x->bat[x->cur];
  pthread_mutex_lock(&x->mu);
  while (x->pending)
    pthread_cond_wait(&x->cv, &x->mu);
  if (bt->n || bt->n_cons) {
    x->pending = bt;
    x->cur ^= 1;
    x->flushed = 1;
    pthread_cond_broadcast(&x->cv);
  }
  while (wait && x->pending)
    pthread_cond_wait(&x->cv, &x->mu);
  pthread_mutex_unlock(&x->mu);
  return atomic_load(&x->failed) ? HVG_EXIT_IOERR : 0;
}

/* Appends s and its NUL to b; returns 0 or an hvg_buf error. */
static int ingest__put(hvg_buf *b, const char *s) {
  return hvg_buf_add(b, s ? s : "", (s ? strlen(s) : 0) + 1);
}

/* Remembers a consent record for the store, its strings in cons_keys (as
 * offsets until the flush turns them into pointers). 0 or HVG_ENOMEM. */
static int ingest__consent(hvg_ingest *x, const hv_record *r) {
  ingest_batch *bt = &x->bat[x->cur];
  store_consent *c = &bt->cons[bt->n_cons];
  memset(c, 0, sizeof *c);
  c->program = x->prog->id;
  static const hv_field fields[8] = {
      HV_F_RECORD_ID,       HV_F_FAMILY_ID,      HV_F_CAREGIVER_ID,
      HV_F_CONSENT_ORG_ID,  HV_F_CONSENT_SCOPE,  HV_F_CONSENT_GRANTED,
      HV_F_CONSENT_EXPIRES, HV_F_CONSENT_REVOKED}; /* store_consent order */
  for (size_t i = 0; i < 8; i++) {
    const char *v = r->v[fields[i]];
    bt->cons_off[bt->n_cons][i] = v && *v ? bt->cons_keys.len : SIZE_MAX;
    if (v && *v && ingest__put(&bt->cons_keys, v))
      return HVG_ENOMEM;
  }
  bt->n_cons++;
  return 0;
}

/* A referral's fields for the program's export, as a JSON object of
 * canonical names (identifiers, dates, codes; no names, birth dates or
 * notes), appended to b with its NUL. */
static int ingest__referral_data(hvg_buf *b, const hv_record *r, size_t *off,
                                 size_t *len) {
  static const hv_field fields[] = {
      HV_F_RECORD_ID,      HV_F_FAMILY_ID,       HV_F_CHILD_ID,
      HV_F_CAREGIVER_ID,   HV_F_HOME_VISITOR_ID, HV_F_REF_SERVICE,
      HV_F_REF_DATE,       HV_F_REF_REASON_ID,   HV_F_REF_TO_ORG_ID,
      HV_F_REF_TO_ORG_NAME, HV_F_REF_URGENCY,    HV_F_REF_STATUS,
      HV_F_REF_STATUS_DATE};
  *off = b->len;
  int rc = hvg_buf_adds(b, "{\"referral.direction\":\"outbound\"");
  for (size_t i = 0; !rc && i < sizeof fields / sizeof *fields; i++) {
    const char *v = r->v[fields[i]];
    if (!v || !*v)
      continue;
    rc = hvg_buf_addc(b, ',');
    if (!rc)
      rc = hvg_buf_add_json_str(b, hv_field_get(fields[i])->name);
    if (!rc)
      rc = hvg_buf_addc(b, ':');
    if (!rc)
      rc = hvg_buf_add_json_str(b, v);
  }
  if (!rc)
    rc = hvg_buf_addc(b, '}');
  *len = b->len - *off;
  if (!rc)
    rc = hvg_buf_addc(b, '\0');
  return rc;
}

static int ingest__accept(void *ctx, const hv_result *res) {
  hvg_ingest *x = ctx;
  ingest_batch *bt = &x->bat[x->cur];
  if (atomic_load(&x->failed))
    return HVG_EXIT_IOERR;
  const hv_record *r = &res->rec;
  hvg_err err;
  hvg_err_clear(&err);
  /* the Bundle, exactly as `map` writes it */
  size_t mark = bt->bundles.len;
  fhir_writer w;
  fhir_w_init(&w, &bt->bundles, FHIR_JSON, 0);
  hvg_arena_reset(&x->scratch);
  int rc = hv_tofhir_bundle(&x->tf, &w, res, &x->scratch, &err);
  if (!rc)
    rc = fhir_w_finish(&w);
  if (rc) {
    hvg_buf_truncate(&bt->bundles, mark);
    fprintf(x->issues, "%s:%lu: %s: %s\n", r->file, r->line,
            err.field[0] ? err.field : "(record)",
            err.msg[0] ? err.msg : hvg_strerror(rc));
    return 1;
  }
  ingest_rec *ir = &bt->recs[bt->n];
  memset(ir, 0, sizeof *ir);
  ir->bundle_off = mark;
  ir->bundle_len = bt->bundles.len - mark;
  ir->file = r->file;
  ir->line = r->line;
  if (store_hasher_hash(x->hasher, bt->bundles.data + mark, ir->bundle_len,
                        ir->hash, &err))
    return HVG_EXIT_SOFTWARE;
  /* Compress here while the writer is busy with the previous batch; once
   * it waits for this one, leave the rest to it (store_put_records
   * compresses what comes plain): whichever thread would idle takes the
   * work (docs/decisions.md, decision 13). */
  const void *z = NULL;
  size_t zlen = 0;
  int pk = bt->n ? 0 : store_pack_refresh(x->st, &err);
  if (!pk && atomic_load_explicit(&x->writing, memory_order_relaxed))
    pk = store_pack(x->st, bt->bundles.data + mark, ir->bundle_len, &z, &zlen,
                    &err);
  if (pk == 1) {
    ir->packed_off = bt->packed.len;
    ir->packed_len = zlen;
    if (hvg_buf_add(&bt->packed, z, zlen))
      return HVG_EXIT_SOFTWARE;
  } else if (pk < 0) {
    x->werr = err;
    atomic_store(&x->failed, 1);
    return HVG_EXIT_IOERR;
  }

  hvg_route route;
  hvg_route_record(x->cfg, res, &route);
  char consent_id[STORE_KEY_MAX + 1] = "";
  const char *scope = hvg_route_consent_scope(r->type);
  if (route.verdict == HVG_ROUTE_SEND && route.partner->consent_required &&
      scope) {
    int found = store_consent_find(
        x->st, x->prog->id, r->v[HV_F_FAMILY_ID], r->v[HV_F_CAREGIVER_ID],
        route.partner->org_ids, route.partner->n_org_ids, scope, x->today,
        consent_id, sizeof consent_id, &err);
    if (found < 0) {
      x->werr = err;
      atomic_store(&x->failed, 1);
      return HVG_EXIT_IOERR;
    }
    if (!found) {
      x->cnt.withheld_consent++;
      fprintf(x->issues,
              "%s:%lu: %s: warning: not sent to %s: no active consent of the "
              "family for organization %s covers %s records\n",
              r->file, r->line, route.org_field, route.partner->id,
              route.org_id, scope);
      route.partner = NULL;
    }
  } else if (route.verdict == HVG_ROUTE_SENSITIVE ||
             route.verdict == HVG_ROUTE_NOT_RECEIVED) {
    if (route.verdict == HVG_ROUTE_SENSITIVE)
      x->cnt.withheld_sensitive++;
    else
      x->cnt.not_received++;
    fprintf(x->issues, "%s:%lu: %s: warning: not sent to %s: %s%s%s\n",
            r->file, r->line, route.org_field, route.partner->id,
            hvg_route_why(route.verdict),
            route.verdict == HVG_ROUTE_SENSITIVE ? " " : "",
            route.verdict == HVG_ROUTE_SENSITIVE ? route.sensitivity : "");
    route.partner = NULL;
  } else if (route.verdict == HVG_ROUTE_NO_PARTNER) {
    x->cnt.no_partner++; /* summarised, not one line per record */
  } else if (route.verdict == HVG_ROUTE_NO_ORG) {
    x->cnt.no_org++;
  }

  /* keys: type, id, patient lane, [sensitivity], [partner, [consent]] */
  const char *fam = r->v[HV_F_FAMILY_ID];
  const char *lane = fam && *fam ? fam
                     : r->v[HV_F_CHILD_ID] && *r->v[HV_F_CHILD_ID]
                         ? r->v[HV_F_CHILD_ID]
                     : r->v[HV_F_CAREGIVER_ID] && *r->v[HV_F_CAREGIVER_ID]
                         ? r->v[HV_F_CAREGIVER_ID]
                         : r->v[HV_F_RECORD_ID];
  ir->keys_off = bt->keys.len;
  char lane_key[STORE_KEY_MAX]; /* "family|ID" or "person|ID", cut to fit */
  const char *kind = fam && *fam ? "family|" : "person|";
  size_t ll = strnlen(lane, sizeof lane_key - 8);
  memcpy(lane_key, kind, 7);
  memcpy(lane_key + 7, lane, ll);
  lane_key[7 + ll] = '\0';
  int brc = ingest__put(&bt->keys, hv_rectype_name(r->type)) ||
            ingest__put(&bt->keys, r->v[HV_F_RECORD_ID]) ||
            ingest__put(&bt->keys, lane_key);
  if (!brc && route.sensitivity) {
    ir->has_sens = 1;
    brc = ingest__put(&bt->keys, route.sensitivity);
  }
  if (!brc && route.partner && route.verdict == HVG_ROUTE_SEND) {
    ir->has_target = 1;
    brc = ingest__put(&bt->keys, route.partner->id);
    if (!brc && consent_id[0]) {
      ir->has_consent = 1;
      brc = ingest__put(&bt->keys, consent_id);
    }
  }
  if (!brc && r->type == HV_REC_REFERRAL) {
    ir->is_referral = 1;
    const char *st = r->v[HV_F_REF_STATUS];
    if (st && *st) {
      ir->has_status = 1;
      brc = ingest__put(&bt->keys, st);
    }
    if (!brc)
      brc = ingest__referral_data(&bt->keys, r, &ir->data_off, &ir->data_len);
  }
  if (!brc && r->type == HV_REC_CONSENT)
    brc = ingest__consent(x, r);
  if (brc)
    return HVG_EXIT_SOFTWARE;
  bt->n++;
  if (bt->n == (x->flushed ? INGEST_BATCH : INGEST_FIRST_BATCH) ||
      bt->n_cons == INGEST_BATCH || bt->bundles.len >= INGEST_BATCH_BYTES)
    return ingest__flush(x, 0);
  return 0;
}

static void ingest__file_done(void *ctx, const char *path,
                              const hv_source *src, const hvg_run_stats *fs) {
  (void)path;
  (void)src;
  (void)fs;
  /* what this file decided (consents) is durable before the next is read */
  ingest__flush(ctx, 1);
}

int hvg_ingest_new(hvg_ingest **out, const hvg_config *cfg,
                   const hvg_program *prog, const char *today, FILE *issues,
                   hvg_err *err) {
  *out = NULL;
  hvg_ingest *x = calloc(1, sizeof *x);
  if (!x)
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  x->cfg = cfg;
  x->prog = prog;
  x->issues = issues ? issues : stderr;
  snprintf(x->today, sizeof x->today, "%s", today);
  if (fhir_date_days(x->today, &x->today_days)) {
    free(x);
    return hvg_err_set(err, HVG_EINVAL, NULL, "today is not YYYY-MM-DD");
  }
  hvg_arena_init(&x->scratch, (size_t)16 << 20);
  for (int i = 0; i < 2; i++) {
    hvg_buf_init(&x->bat[i].bundles, INGEST_BATCH_BYTES + ((size_t)64 << 20));
    hvg_buf_init(&x->bat[i].packed, INGEST_BATCH_BYTES + ((size_t)64 << 20));
    hvg_buf_init(&x->bat[i].keys, (size_t)64 << 20);
    hvg_buf_init(&x->bat[i].cons_keys, (size_t)64 << 20);
  }
  pthread_mutex_init(&x->mu, NULL);
  pthread_cond_init(&x->cv, NULL);
  int rc = store_hasher_new(&x->hasher, err);
  if (!rc)
    rc = hvg_config_open_store_opts(cfg, &x->st, 1, 0, err);
  if (!rc)
    rc = hvg_config_open_store(cfg, &x->wst, err);
  if (!rc)
    rc = hvg_fsrv_new(&x->fs, cfg, x->wst, err);
  if (!rc && hv_tofhir_init(&x->tf, prog->map, prog->cat))
    rc = hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  else if (!rc)
    x->tf_ready = 1;
  if (!rc && pthread_create(&x->writer, NULL, ingest__writer, x))
    rc = hvg_err_set(err, HVG_ENOMEM, NULL, "cannot start a thread");
  else if (!rc)
    x->writer_started = 1;
  if (rc) {
    hvg_ingest_free(x);
    return rc;
  }
  *out = x;
  return 0;
}

/* Runs the mapping pass, then makes everything durable. */
static int ingest__finish(hvg_ingest *x, int code) {
  if (ingest__flush(x, 1) || atomic_load(&x->failed))
    return HVG_EXIT_IOERR;
  return code;
}

/* The mapping pass of this intake over one or more inputs. */
static hvg_run ingest__run(hvg_ingest *x, const char *source) {
  hvg_run run = {x->prog->map, x->prog->cat, x->today_days, source,
                 x->issues,    ingest__accept, ingest__file_done, x,
                 {0, 0, 0, 0}};
  return run;
}

int hvg_ingest_files(hvg_ingest *x, const char *source, int n, char **paths,
                     hvg_run_stats *st) {
  hvg_run run = ingest__run(x, source);
  int code = ingest__finish(x, hvg_run_files(&run, n, paths));
  if (st)
    *st = run.st;
  return code;
}

int hvg_ingest_mem(hvg_ingest *x, const char *source, const char *name,
                   const char *data, size_t len, hvg_run_stats *st) {
  hvg_run run = ingest__run(x, source);
  int code = ingest__finish(x, hvg_run_mem(&run, name, data, len));
  if (st)
    *st = run.st;
  return code;
}

const hvg_ingest_counts *hvg_ingest_counts_get(const hvg_ingest *x) {
  return &x->cnt;
}

const hvg_err *hvg_ingest_error(const hvg_ingest *x) {
  return atomic_load(&x->failed) ? &x->werr : NULL;
}

void hvg_ingest_free(hvg_ingest *x) {
  if (!x)
    return;
  if (x->writer_started) {
    pthread_mutex_lock(&x->mu);
    x->quit = 1;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
    pthread_join(x->writer, NULL);
  }
  pthread_mutex_destroy(&x->mu);
  pthread_cond_destroy(&x->cv);
  if (x->tf_ready)
    hv_tofhir_free(&x->tf);
  hvg_fsrv_free(x->fs);
  store_close(x->st);
  store_close(x->wst);
  store_hasher_free(x->hasher);
  hvg_arena_free(&x->scratch);
  for (int i = 0; i < 2; i++) {
    hvg_buf_free(&x->bat[i].bundles);
    hvg_buf_free(&x->bat[i].packed);
    hvg_buf_free(&x->bat[i].keys);
    hvg_buf_free(&x->bat[i].cons_keys);
  }
  free(x);
}
