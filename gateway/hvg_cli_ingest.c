/* hvgate ingest: map a program's export files and store them durably, each
 * record queued for the partner it goes to under consent and sensitivity
 * rules. Success means stored: delivery is the daemon's job (`serve`). */
#include "hvg_cli.h"

#include "fhir_check.h"
#include "hv_tofhir.h"
#include "hvg_config.h"
#include "hvg_route.h"
#include "hvg_run.h"
#include "store.h"

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define INGEST_BATCH 1000                  /* records per transaction */
#define INGEST_BATCH_BYTES ((size_t)16 << 20) /* Bundle bytes per batch */

typedef struct ingest_opts {
  const char *config, *program, *source;
  long today_days;
  char today[11];
  int quiet;
} ingest_opts;

typedef struct ingest_counts {
  unsigned long fresh, changed, unchanged, queued;
  unsigned long withheld_consent, withheld_sensitive, not_received,
      no_partner, no_org;
} ingest_counts;

/* One pending record of the batch: offsets into the batch buffers, because
 * they grow (and move) while the batch fills. */
typedef struct ingest_rec {
  size_t bundle_off, bundle_len;
  size_t keys_off; /* record_type\0record_id\0patient\0[partner\0consent\0] */
  unsigned char hash[STORE_HASH_LEN];
  int has_target, has_consent, has_sens;
  const char *file;
  unsigned long line;
} ingest_rec;

/* A batch of records (and consents) written in one transaction. */
typedef struct ingest_batch {
  hvg_buf bundles, keys;
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
typedef struct ingest_ctx {
  const ingest_opts *o;
  const hvg_config *cfg;
  const hvg_program *prog;
  store *st;  /* main thread: consent lookups */
  store *wst; /* writer thread */
  hv_tofhir tf;
  hvg_arena scratch;
  ingest_batch bat[2];
  int cur; /* the batch being filled */
  pthread_t writer;
  int writer_started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  ingest_batch *pending; /* handed to the writer, until written */
  int quit;
  ingest_counts cnt; /* fresh/changed/unchanged/queued: the writer's */
  FILE *issues;
  atomic_int failed; /* a store error was printed */
} ingest_ctx;

static void ingest__usage(FILE *f) {
  fputs(
      "usage: hvgate ingest -c CONFIG [options] FILE...\n"
      "\n"
      "Map a home visiting program's export files (as `hvgate map` does) and\n"
      "store every record durably, queued for the partner it goes to. A\n"
      "record is queued only under an active consent for the partner's\n"
      "organization (unless the partner is configured otherwise), and\n"
      "sensitive results only to partners cleared for their category; each\n"
      "record held back is reported. Ingesting an unchanged record again\n"
      "does nothing; a changed one is queued as an update.\n"
      "\n"
      "options:\n"
      "  -c, --config FILE   gateway configuration (required)\n"
      "  -p, --program ID    the program the files belong to (default: the\n"
      "                      only one, or the one whose mapping matches)\n"
      "  -s, --source NAME   mapping source for every FILE\n"
      "      --today DATE    treat DATE (YYYY-MM-DD) as today\n"
      "  -q, --quiet         no summary line\n"
      "  -h, --help          this help\n"
      "\n"
      "exit status: 0 all stored, 65 some records rejected (the others are\n"
      "stored), 64 usage, 66 input unreadable, 74 store error, 78\n"
      "configuration error.\n",
      f);
}

static int ingest__parse(int argc, char **argv, ingest_opts *o) {
  enum { O_TODAY = 256 };
  static const struct option longopts[] = {
      {"config", required_argument, NULL, 'c'},
      {"program", required_argument, NULL, 'p'},
      {"source", required_argument, NULL, 's'},
      {"today", required_argument, NULL, O_TODAY},
      {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  memset(o, 0, sizeof *o);
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "c:p:s:qh", longopts, NULL)) != -1) {
    switch (c) {
    case 'c': o->config = optarg; break;
    case 'p': o->program = optarg; break;
    case 's': o->source = optarg; break;
    case 'q': o->quiet = 1; break;
    case O_TODAY:
      if (fhir_date_days(optarg, &o->today_days) || strlen(optarg) != 10) {
        fprintf(stderr, "hvgate: --today must be a date YYYY-MM-DD\n");
        return HVG_EXIT_USAGE;
      }
      memcpy(o->today, optarg, 11);
      break;
    case 'h':
      ingest__usage(stdout);
      return HVG_EXIT_OK;
    default:
      fprintf(stderr, "hvgate: ingest: unknown option or missing value\n");
      ingest__usage(stderr);
      return HVG_EXIT_USAGE;
    }
  }
  if (!o->config || optind >= argc) {
    fprintf(stderr, "hvgate: ingest needs -c CONFIG and at least one FILE\n");
    ingest__usage(stderr);
    return HVG_EXIT_USAGE;
  }
  if (!o->today[0]) {
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(o->today, sizeof o->today, "%Y-%m-%d", &tm);
    fhir_date_days(o->today, &o->today_days);
  }
  return -1;
}

/* Writes a batch in one transaction (consents first: later records of the
 * run are checked against them). Writer thread only. */
static int ingest__write(ingest_ctx *x, ingest_batch *bt) {
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
      fprintf(stderr, "hvgate: store: %s\n", err.msg);
      x->failed = 1;
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
    if (r->has_target) {
      targets[i].partner = k;
      k += strlen(k) + 1;
      targets[i].consent_id = r->has_consent ? k : NULL;
      b->targets = &targets[i];
      b->n_targets = 1;
    }
  }
  if (store_put_records(x->wst, batch, bt->n, now, res, &err)) {
    fprintf(stderr, "hvgate: store: %s%s%s\n", err.field,
            err.field[0] ? ": " : "", err.msg);
    x->failed = 1;
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
  hvg_buf_reset(&bt->keys);
  return 0;
}

static void *ingest__writer(void *arg) {
  ingest_ctx *x = arg;
  pthread_mutex_lock(&x->mu);
  for (;;) {
    while (!x->pending && !x->quit)
      pthread_cond_wait(&x->cv, &x->mu);
    if (!x->pending)
      break;
    ingest_batch *bt = x->pending;
    pthread_mutex_unlock(&x->mu);
    if (!atomic_load(&x->failed) && ingest__write(x, bt))
      atomic_store(&x->failed, 1);
    bt->n = bt->n_cons = 0;
    hvg_buf_reset(&bt->bundles);
    hvg_buf_reset(&bt->keys);
    hvg_buf_reset(&bt->cons_keys);
    pthread_mutex_lock(&x->mu);
    x->pending = NULL;
    pthread_cond_broadcast(&x->cv);
  }
  pthread_mutex_unlock(&x->mu);
  return NULL;
}

/* Hands the current batch to the writer (after the previous one is
 * written) and goes on with the other; with `wait`, also waits until it is
 * written. Returns 0, or HVG_EXIT_IOERR when a write failed. */
static int ingest__flush(ingest_ctx *x, int wait) {
  ingest_batch *bt = &x->bat[x->cur];
  pthread_mutex_lock(&x->mu);
  while (x->pending)
    pthread_cond_wait(&x->cv, &x->mu);
  if (bt->n || bt->n_cons) {
    x->pending = bt;
    x->cur ^= 1;
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
static int ingest__consent(ingest_ctx *x, const hv_record *r) {
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

static int ingest__accept(void *ctx, const hv_result *res) {
  ingest_ctx *x = ctx;
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
  if (store_hash(bt->bundles.data + mark, ir->bundle_len, ir->hash, &err))
    return HVG_EXIT_SOFTWARE;

  hvg_route route;
  hvg_route_record(x->cfg, res, &route);
  char consent_id[STORE_KEY_MAX + 1] = "";
  const char *scope = hvg_route_consent_scope(r->type);
  if (route.verdict == HVG_ROUTE_SEND && route.partner->consent_required &&
      scope) {
    int found = store_consent_find(
        x->st, x->prog->id, r->v[HV_F_FAMILY_ID], r->v[HV_F_CAREGIVER_ID],
        route.partner->org_ids, route.partner->n_org_ids, scope, x->o->today,
        consent_id, sizeof consent_id, &err);
    if (found < 0) {
      fprintf(stderr, "hvgate: store: %s\n", err.msg);
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
  char lane_key[STORE_KEY_MAX];
  snprintf(lane_key, sizeof lane_key, "%s|%s", fam && *fam ? "family" : "person",
           lane);
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
  if (!brc && r->type == HV_REC_CONSENT)
    brc = ingest__consent(x, r);
  if (brc)
    return HVG_EXIT_SOFTWARE;
  bt->n++;
  if (bt->n == INGEST_BATCH || bt->n_cons == INGEST_BATCH ||
      bt->bundles.len >= INGEST_BATCH_BYTES)
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

/* The program the files belong to; NULL after printing why not. */
static const hvg_program *ingest__program(const ingest_opts *o,
                                          const hvg_config *c, int n,
                                          char **paths) {
  if (o->program) {
    const hvg_program *p = hvg_config_program(c, o->program);
    if (!p)
      fprintf(stderr, "hvgate: %s has no program '%s'\n", o->config,
              o->program);
    return p;
  }
  if (c->n_programs == 1)
    return &c->programs[0];
  const hvg_program *found = NULL;
  for (size_t i = 0; i < c->n_programs; i++)
    if (hv_mapping_source_for(c->programs[i].map, paths[0], o->source)) {
      if (found) {
        fprintf(stderr, "hvgate: %s matches the mappings of programs %s and "
                        "%s: name one with --program\n",
                paths[0], found->id, c->programs[i].id);
        return NULL;
      }
      found = &c->programs[i];
    }
  (void)n;
  if (!found)
    fprintf(stderr, "hvgate: %s matches no program's mapping: name one with "
                    "--program\n",
            paths[0]);
  return found;
}

int hvg_cli_ingest(int argc, char **argv) {
  ingest_opts o;
  int rc = ingest__parse(argc, argv, &o);
  if (rc >= 0)
    return rc;
  hvg_buf diag;
  hvg_buf_init(&diag, 1 << 20);
  hvg_config *cfg = NULL;
  rc = hvg_config_load(&cfg, o.config, 0, &diag, NULL);
  if (diag.len)
    fputs(diag.data, stderr);
  hvg_buf_free(&diag);
  if (rc)
    return rc == HVG_ENOINPUT ? HVG_EXIT_NOINPUT
           : rc == HVG_ENOMEM ? HVG_EXIT_SOFTWARE
                              : HVG_EXIT_CONFIG;
  int n = argc - optind;
  char **paths = argv + optind;
  const hvg_program *prog = ingest__program(&o, cfg, n, paths);
  if (!prog) {
    hvg_config_free(cfg);
    return HVG_EXIT_USAGE;
  }
  ingest_ctx *x = calloc(1, sizeof *x);
  if (!x) {
    hvg_config_free(cfg);
    return HVG_EXIT_SOFTWARE;
  }
  x->o = &o;
  x->cfg = cfg;
  x->prog = prog;
  x->issues = stderr;
  hvg_arena_init(&x->scratch, (size_t)16 << 20);
  for (int i = 0; i < 2; i++) {
    hvg_buf_init(&x->bat[i].bundles, INGEST_BATCH_BYTES + ((size_t)64 << 20));
    hvg_buf_init(&x->bat[i].keys, (size_t)64 << 20);
    hvg_buf_init(&x->bat[i].cons_keys, (size_t)64 << 20);
  }
  pthread_mutex_init(&x->mu, NULL);
  pthread_cond_init(&x->cv, NULL);
  int exit_code;
  hvg_err err;
  if (hvg_config_open_store_opts(cfg, &x->st, 1, &err) ||
      hvg_config_open_store(cfg, &x->wst, &err)) {
    fprintf(stderr, "hvgate: cannot open the store %s: %s\n", cfg->store_path,
            err.msg);
    exit_code = err.code == HVG_ECONFIG ? HVG_EXIT_CONFIG : HVG_EXIT_IOERR;
    goto done;
  }
  if (pthread_create(&x->writer, NULL, ingest__writer, x)) {
    exit_code = HVG_EXIT_SOFTWARE;
    goto done;
  }
  x->writer_started = 1;
  if (hv_tofhir_init(&x->tf, prog->map, prog->cat)) {
    exit_code = HVG_EXIT_SOFTWARE;
    goto done;
  }
  hvg_run run = {prog->map,          prog->cat, o.today_days, o.source,
                 stderr,             ingest__accept, ingest__file_done, x,
                 {0, 0, 0, 0}};
  exit_code = hvg_run_files(&run, n, paths);
  if (ingest__flush(x, 1))
    exit_code = HVG_EXIT_IOERR;
  int failed = atomic_load(&x->failed);
  if (failed)
    exit_code = HVG_EXIT_IOERR;
  if (!o.quiet && !failed) {
    const ingest_counts *k = &x->cnt;
    fprintf(stderr,
            "hvgate ingest: %lu records: %lu stored (%lu new, %lu changed, "
            "%lu unchanged), %lu rejected; %lu deliveries queued\n",
            run.st.records, k->fresh + k->changed + k->unchanged, k->fresh,
            k->changed, k->unchanged, run.st.rejected, k->queued);
    if (k->withheld_consent || k->withheld_sensitive || k->not_received ||
        k->no_partner || k->no_org)
      fprintf(stderr,
              "hvgate ingest: not sent: %lu without consent, %lu sensitive, "
              "%lu not received by the partner, %lu for organizations "
              "without a partner, %lu naming no organization\n",
              k->withheld_consent, k->withheld_sensitive, k->not_received,
              k->no_partner, k->no_org);
  }
  hv_tofhir_free(&x->tf);
done:
  if (x->writer_started) {
    pthread_mutex_lock(&x->mu);
    x->quit = 1;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
    pthread_join(x->writer, NULL);
  }
  pthread_mutex_destroy(&x->mu);
  pthread_cond_destroy(&x->cv);
  store_close(x->st);
  store_close(x->wst);
  hvg_arena_free(&x->scratch);
  for (int i = 0; i < 2; i++) {
    hvg_buf_free(&x->bat[i].bundles);
    hvg_buf_free(&x->bat[i].keys);
    hvg_buf_free(&x->bat[i].cons_keys);
  }
  free(x);
  hvg_config_free(cfg);
  return exit_code;
}
