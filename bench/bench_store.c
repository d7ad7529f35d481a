/* bench_store — durable intake and outbox throughput of the SQLite store.
 *
 *   bench_store [DIR] [--quick]
 *
 * Intake: records/s into a fresh file database for batches of 1, 100, 1000
 * and 10000 records (one store_put_records transaction per batch), each
 * record a ~3.5 KB Bundle JSON for one partner, hash computed in the loop,
 * in the default mode (WAL, synchronous=NORMAL: survives a process crash)
 * and with full_sync (synchronous=FULL: also survives power loss).
 * Outbox: claim 100 + ack each item in its own transaction, and claim 100 +
 * one store_finish for the 100, on the 10000-batch database.
 * DIR (default /tmp) is where the databases are made and removed. */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BUNDLE_BYTES 3500

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void rm_db(const char *path) {
  char p[512];
  static const char *const sfx[] = {"", "-wal", "-shm"};
  for (size_t i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s%s", path, sfx[i]);
    unlink(p);
  }
}

static void die(const char *what, int rc, const hvg_err *e) {
  fprintf(stderr, "bench_store: %s: %s: %s\n", what, hvg_err_name(rc),
          e->msg);
  exit(1);
}

/* A synthetic transaction Bundle of about BUNDLE_BYTES for record n. */
static size_t make_bundle(char *buf, size_t cap, long n) {
  int len = snprintf(
      buf, cap,
      "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
      "{\"fullUrl\":\"urn:uuid:%08lx-1111-5111-8111-%012lx\",\"resource\":"
      "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":"
      "\"urn:hv:prog1:child\",\"value\":\"C%07ld\"}],\"birthDate\":"
      "\"2023-0%ld-1%ld\"},\"request\":{\"method\":\"POST\",\"url\":"
      "\"Patient\",\"ifNoneExist\":\"identifier=urn:hv:prog1:child|C%07ld\"}},"
      "{\"fullUrl\":\"urn:uuid:%08lx-2222-5222-8222-%012lx\",\"resource\":"
      "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":"
      "{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"71354-5\"}]},"
      "\"valueInteger\":%ld,\"note\":[{\"text\":\"",
      n, n, n, 1 + n % 9, n % 10, n, n, n, n % 30);
  size_t i = (size_t)len;
  unsigned long x = (unsigned long)n * 2654435761u + 1;
  while (i < BUNDLE_BYTES - 8 && i < cap - 8) { /* varied, not compressible */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    buf[i++] = "abcdefghijklmnopqrstuvwxyz0123456789 "[x % 37];
  }
  memcpy(buf + i, "\"}]}}]}", 8);
  return i + 7;
}

typedef struct intake_result {
  double rate; /* records/s */
  double mbps;
} intake_result;

static intake_result run_intake(const char *path, int full_sync, size_t batch,
                                long total) {
  rm_db(path);
  store *st = NULL;
  hvg_err e;
  store_opts o = {0};
  o.full_sync = full_sync;
  int rc = store_open(&st, path, &o, &e);
  if (rc)
    die("open", rc, &e);
  store_record *recs = calloc(batch, sizeof *recs);
  char(*bundles)[BUNDLE_BYTES + 64] = malloc(batch * sizeof *bundles);
  char(*ids)[32] = malloc(batch * sizeof *ids);
  char(*pks)[32] = malloc(batch * sizeof *pks);
  if (!recs || !bundles || !ids || !pks) {
    fprintf(stderr, "bench_store: out of memory\n");
    exit(1);
  }
  static const store_target tg[] = {{"practice-1", "consent-1"}};
  /* Bundles are made once (mapping is measured elsewhere); each record
   * stamps its number into its copy, so every record differs. */
  size_t *stamp = malloc(batch * sizeof *stamp);
  if (!stamp)
    exit(1);
  for (size_t i = 0; i < batch; i++) {
    recs[i].bundle_len = make_bundle(bundles[i], sizeof bundles[i], (long)i);
    static const char note[] = "\"note\":[{\"text\":\"";
    stamp[i] = (size_t)(strstr(bundles[i], note) - bundles[i]) +
               sizeof note - 1;
  }
  double bytes = 0;
  double t0 = now_s();
  for (long done = 0; done < total; done += (long)batch) {
    for (size_t i = 0; i < batch; i++) {
      long n = done + (long)i;
      store_record *r = &recs[i];
      snprintf(ids[i], sizeof ids[i], "S%09ld", n);
      snprintf(pks[i], sizeof pks[i], "child-%ld", n / 3);
      memcpy(bundles[i] + stamp[i], ids[i], 10); /* inside "note" text */
      r->program = "prog1";
      r->record_type = "screening";
      r->record_id = ids[i];
      r->patient_key = pks[i];
      r->bundle = bundles[i];
      r->targets = tg;
      r->n_targets = 1;
      bytes += (double)r->bundle_len;
      rc = store_hash(r->bundle, r->bundle_len, r->hash, &e);
      if (rc)
        die("hash", rc, &e);
    }
    rc = store_put_records(st, recs, batch, store_now_ms(), NULL, &e);
    if (rc)
      die("put", rc, &e);
  }
  double dt = now_s() - t0;
  store_close(st);
  free(stamp);
  free(recs);
  free(bundles);
  free(ids);
  free(pks);
  intake_result res = {(double)total / dt, bytes / dt / 1e6};
  return res;
}

/* Claim `per` at a time and complete them, one transaction per item
 * (batched = 0) or one per claim (batched = 1). Items/s. */
static double run_outbox(const char *path, long items, size_t per,
                         int batched) {
  store *st = NULL;
  hvg_err e;
  int rc = store_open(&st, path, NULL, &e);
  if (rc)
    die("open", rc, &e);
  store_item *it = calloc(per, sizeof *it);
  store_outcome *out = calloc(per, sizeof *out);
  if (!it || !out)
    exit(1);
  long done = 0;
  double t0 = now_s();
  while (done < items) {
    size_t n = 0;
    int64_t now = store_now_ms();
    rc = store_claim(st, "practice-1", per, now, 60000, it, &n, &e);
    if (rc)
      die("claim", rc, &e);
    if (n == 0)
      break;
    if (batched) {
      for (size_t i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].item = &it[i];
        out[i].kind = STORE_DELIVERED;
      }
      rc = store_finish(st, out, n, now, &e);
      if (rc)
        die("finish", rc, &e);
    } else {
      for (size_t i = 0; i < n; i++) {
        store_assigned_id id = {"Observation", "urn:hv:prog1|x", "123", "1"};
        rc = store_ack(st, &it[i], &id, 1, NULL, now, &e);
        if (rc)
          die("ack", rc, &e);
      }
    }
    store_items_release(it, n);
    done += (long)n;
  }
  double dt = now_s() - t0;
  store_close(st);
  free(it);
  free(out);
  return (double)done / dt;
}

int main(int argc, char **argv) {
  const char *dir = "/tmp";
  int quick = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0)
      quick = 1;
    else
      dir = argv[i];
  }
  char path[512];
  snprintf(path, sizeof path, "%s/bench_store_%ld.db", dir, (long)getpid());

  static const size_t batches[] = {1, 100, 1000, 10000};
  long totals[] = {2000, 50000, 100000, 200000};
  long totals_full[] = {300, 20000, 50000, 100000};
  if (quick)
    for (int i = 0; i < 4; i++) {
      totals[i] /= 10;
      totals_full[i] /= 10;
    }
  printf("durable intake, %d-byte Bundles, 1 partner, file DB in %s\n",
         BUNDLE_BYTES, dir);
  printf("%-8s | %-26s | %-26s\n", "batch", "WAL+NORMAL (crash-safe)",
         "WAL+FULL (power-safe)");
  printf("%-8s | %12s %13s | %12s %13s\n", "", "records/s", "MB/s",
         "records/s", "MB/s");
  for (int i = 0; i < 4; i++) {
    intake_result a = run_intake(path, 0, batches[i], totals[i]);
    intake_result b = run_intake(path, 1, batches[i], totals_full[i]);
    printf("%-8zu | %12.0f %13.1f | %12.0f %13.1f\n", batches[i], a.rate,
           a.mbps, b.rate, b.mbps);
    fflush(stdout);
  }
  /* the database of the last run (full_sync, 10000-batches) has the most
   * items; redo it in the default mode for the outbox runs */
  run_intake(path, 0, 10000, totals[3]);
  long items = quick ? 5000 : 40000;
  printf("\noutbox on %ld queued records (~1 patient lane per 3 records)\n",
         totals[3]);
  printf("%-40s %12.0f items/s\n", "claim 100 + ack each (1 tx per item)",
         run_outbox(path, items, 100, 0));
  printf("%-40s %12.0f items/s\n", "claim 100 + store_finish (1 tx per 100)",
         run_outbox(path, items, 100, 1));
  rm_db(path);
  return 0;
}
