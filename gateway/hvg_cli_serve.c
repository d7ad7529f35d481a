/* hvgate serve, status, replay: the delivery daemon and its operator
 * commands. The daemon's top level (this file) is the only place with
 * process-wide state: the stop flag set by SIGTERM/SIGINT. */
#include "hvg_cli.h"

#include "hvg_config.h"
#include "hvg_deliver.h"
#include "store.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t serve_stop; /* set by SIGTERM / SIGINT */

static void serve__on_signal(int sig) {
  (void)sig;
  serve_stop = 1;
}

typedef struct serve_worker {
  pthread_t th;
  const hvg_partner *p;
  const char *store_path;
  store_opts so;
  int started;
  int failed;
  hvg_deliverer d;
  atomic_int *stop; /* drain done */
  atomic_int idle;  /* the last round found nothing to do */
} serve_worker;

/* Sleeps ms, waking early when asked to stop. */
static void serve__nap(int ms, const atomic_int *stop) {
  while (ms > 0 && !serve_stop && !atomic_load(stop)) {
    int step = ms < 50 ? ms : 50;
    struct timespec ts = {0, (long)step * 1000000L};
    nanosleep(&ts, NULL);
    ms -= step;
  }
}

static void *serve__worker(void *arg) {
  serve_worker *w = arg;
  while (!serve_stop && !atomic_load(w->stop)) {
    int idle = 0;
    hvg_err err;
    hvg_err_clear(&err);
    int rc = hvg_deliver_round(&w->d, store_now_ms(), &idle, &err);
    atomic_store(&w->idle, rc == 0 && idle > 0);
    if (rc < 0) { /* the store: log it, back off, go on */
      fprintf(stderr,
              "{\"level\":\"error\",\"event\":\"store_error\",\"partner\":"
              "\"%s\",\"detail\":\"%s\"}\n",
              w->p->id, hvg_strerror(rc));
      idle = 1000;
    }
    serve__nap(idle, w->stop);
  }
  return NULL;
}

static void serve__usage(FILE *f) {
  fputs("usage: hvgate serve -c CONFIG [--drain [--timeout SECONDS]]\n"
        "\n"
        "Deliver the queued records to the partners: per-partner workers,\n"
        "kept-alive connections, retries with backoff on network errors,\n"
        "408, 429 and 5xx (honouring Retry-After), dead letters for other\n"
        "refusals, the partner held after an authentication failure. Logs\n"
        "are JSON lines on standard error. SIGTERM or SIGINT finishes the\n"
        "requests in flight and exits.\n"
        "\n"
        "  -c, --config FILE   gateway configuration (required)\n"
        "      --drain         exit once nothing is pending or in flight\n"
        "      --timeout S     with --drain: give up after S seconds (exit 69)\n"
        "  -h, --help          this help\n"
        "\n"
        "exit status: 0 stopped (or drained), 64 usage, 69 not drained in\n"
        "time, 74 store error, 78 configuration error.\n",
        f);
}

/* Loads the configuration (printing its problems). Exit code or -1. */
static int serve__config(const char *path, unsigned flags, hvg_config **c) {
  hvg_buf diag;
  hvg_buf_init(&diag, 1 << 20);
  int rc = hvg_config_load(c, path, flags, &diag, NULL);
  if (diag.len)
    fputs(diag.data, stderr);
  hvg_buf_free(&diag);
  if (!rc)
    return -1;
  return rc == HVG_ENOINPUT ? HVG_EXIT_NOINPUT
         : rc == HVG_ENOMEM ? HVG_EXIT_SOFTWARE
                            : HVG_EXIT_CONFIG;
}

/* Nothing pending or in flight for any partner. -1 on a store error. */
static int serve__drained(store *st) {
  store_partner_stats s[64];
  size_t n = 0, total = 0;
  hvg_err err;
  if (store_stats(st, store_now_ms(), s, 64, &n, &total, &err))
    return -1;
  for (size_t i = 0; i < n; i++)
    if (s[i].pending || s[i].in_flight)
      return 0;
  return total <= n;
}

int hvg_cli_serve(int argc, char **argv) {
  static const struct option longopts[] = {
      {"config", required_argument, NULL, 'c'},
      {"drain", no_argument, NULL, 'd'},
      {"timeout", required_argument, NULL, 't'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *path = NULL;
  int drain = 0;
  long timeout_s = 0;
  optind = 1;
  opterr = 0;
  int ch;
  while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
    switch (ch) {
    case 'c': path = optarg; break;
    case 'd': drain = 1; break;
    case 't': timeout_s = strtol(optarg, NULL, 10); break;
    case 'h': serve__usage(stdout); return HVG_EXIT_OK;
    default: serve__usage(stderr); return HVG_EXIT_USAGE;
    }
  }
  if (!path || optind != argc || timeout_s < 0) {
    serve__usage(stderr);
    return HVG_EXIT_USAGE;
  }
  hvg_config *cfg = NULL;
  int code = serve__config(path, HVG_CONFIG_CHECK_FILES, &cfg);
  if (code >= 0)
    return code;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = serve__on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  store_opts so = {.full_sync = cfg->store_full_sync};
  hvg_err err;
  hvg_err_clear(&err);
  store *st = NULL; /* the daemon's own handle: migrations, status */
  int lockfd = -1;
  code = HVG_EXIT_OK;
  if (hvg_config_open_store(cfg, &st, &err)) {
    fprintf(stderr, "hvgate: cannot open the store %s: %s\n", cfg->store_path,
            err.msg);
    code = err.code == HVG_ECONFIG ? HVG_EXIT_CONFIG : HVG_EXIT_IOERR;
    goto out;
  }
  /* One daemon per SQLite store: then what a killed daemon had in flight
   * can be taken up at once instead of when its leases run out. */
  char lockpath[4200];
  snprintf(lockpath, sizeof lockpath, "%s.lock", cfg->store_path);
  lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB)) {
    fprintf(stderr, "hvgate: %s: %s\n", lockpath,
            lockfd < 0 ? strerror(errno)
                       : "another hvgate serve is running on this store");
    code = HVG_EXIT_UNAVAILABLE;
    goto out;
  }
  if (store_release_leases(st, store_now_ms(), &err)) {
    fprintf(stderr, "hvgate: store: %s\n", err.msg);
    code = HVG_EXIT_IOERR;
    goto out;
  }
  size_t nw = 0;
  for (size_t i = 0; i < cfg->n_partners; i++)
    nw += (size_t)cfg->partners[i].workers;
  serve_worker *ws = calloc(nw ? nw : 1, sizeof *ws);
  atomic_int stop = 0;
  if (!ws) {
    code = HVG_EXIT_SOFTWARE;
    goto out;
  }
  hvg_partner_hold *holds = calloc(cfg->n_partners ? cfg->n_partners : 1,
                                   sizeof *holds);
  if (!holds) {
    free(ws);
    code = HVG_EXIT_SOFTWARE;
    goto out;
  }
  size_t k = 0;
  for (size_t i = 0; i < cfg->n_partners; i++) {
    hvg_partner_hold_init(&holds[i]);
    for (long j = 0; j < cfg->partners[i].workers && code == HVG_EXIT_OK;
         j++, k++) {
      serve_worker *w = &ws[k];
      w->p = &cfg->partners[i];
      w->stop = &stop;
      if (hvg_deliver_init(&w->d, w->p, cfg->store_path, &so, &holds[i],
                           stderr, &err)) {
        fprintf(stderr, "hvgate: partner %s: %s\n", w->p->id, err.msg);
        code = err.code == HVG_ECONFIG || err.code == HVG_ENOINPUT
                   ? HVG_EXIT_CONFIG
                   : HVG_EXIT_IOERR;
        break;
      }
      if (pthread_create(&w->th, NULL, serve__worker, w)) {
        code = HVG_EXIT_SOFTWARE;
        break;
      }
      w->started = 1;
    }
  }
  if (code == HVG_EXIT_OK)
    fprintf(stderr,
            "{\"level\":\"info\",\"event\":\"started\",\"partners\":%zu,"
            "\"workers\":%zu}\n",
            cfg->n_partners, nw);
  time_t t0 = time(NULL);
  while (code == HVG_EXIT_OK && !serve_stop) {
    struct timespec ts = {0, 200 * 1000000L};
    nanosleep(&ts, NULL);
    if (!drain)
      continue;
    /* ask the store only when every worker is idle: counting the queue
     * costs more than a delivery */
    int busy = 0;
    for (size_t i = 0; i < nw && !busy; i++)
      busy = !atomic_load(&ws[i].idle);
    if (busy)
      continue;
    int d = serve__drained(st);
    if (d < 0) {
      code = HVG_EXIT_IOERR;
    } else if (d) {
      break;
    } else if (timeout_s && time(NULL) - t0 >= timeout_s) {
      fprintf(stderr, "hvgate: not drained after %ld s (see hvgate status)\n",
              timeout_s);
      code = HVG_EXIT_UNAVAILABLE;
    }
  }
  atomic_store(&stop, 1);
  hvg_deliver_counts tot = {0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i < nw; i++) {
    if (ws[i].started)
      pthread_join(ws[i].th, NULL);
    tot.delivered += ws[i].d.n.delivered;
    tot.retried += ws[i].d.n.retried;
    tot.dead += ws[i].d.n.dead;
    tot.auth_failures += ws[i].d.n.auth_failures;
    hvg_deliver_free(&ws[i].d);
  }
  fprintf(stderr,
          "{\"level\":\"info\",\"event\":\"stopped\",\"delivered\":%lu,"
          "\"retried\":%lu,\"dead_letters\":%lu,\"auth_failures\":%lu}\n",
          tot.delivered, tot.retried, tot.dead, tot.auth_failures);
  free(ws);
  free(holds);
out:
  if (lockfd >= 0)
    close(lockfd); /* releases the lock */
  store_close(st);
  hvg_config_free(cfg);
  curl_global_cleanup();
  return code;
}

/* ---- status ---------------------------------------------------------- */

static void status__usage(FILE *f) {
  fputs("usage: hvgate status -c CONFIG\n\n"
        "Queue depth, deliveries and dead letters per partner, and the age\n"
        "of the oldest pending record.\n\n"
        "  -c, --config FILE   gateway configuration (required)\n"
        "  -h, --help          this help\n",
        f);
}

/* Opens the store of a configuration for the operator commands. */
static int ops__open(const char *path, hvg_config **cfg, store **st) {
  int code = serve__config(path, 0, cfg);
  if (code >= 0)
    return code;
  hvg_err err;
  if (hvg_config_open_store(*cfg, st, &err)) {
    fprintf(stderr, "hvgate: cannot open the store %s: %s\n",
            (*cfg)->store_path, err.msg);
    hvg_config_free(*cfg);
    return err.code == HVG_ECONFIG ? HVG_EXIT_CONFIG : HVG_EXIT_IOERR;
  }
  return -1;
}

static int ops__args(int argc, char **argv, const char **path, int *all,
                     const char **partner, void (*usage)(FILE *)) {
  static const struct option longopts[] = {
      {"config", required_argument, NULL, 'c'},
      {"all", no_argument, NULL, 'a'},
      {"partner", required_argument, NULL, 'p'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  optind = 1;
  opterr = 0;
  int ch;
  while ((ch = getopt_long(argc, argv, "c:p:h", longopts, NULL)) != -1) {
    if (ch == 'c') {
      *path = optarg;
    } else if (ch == 'a' && all) {
      *all = 1;
    } else if (ch == 'p' && partner) {
      *partner = optarg;
    } else if (ch == 'h') {
      usage(stdout);
      return HVG_EXIT_OK;
    } else {
      usage(stderr);
      return HVG_EXIT_USAGE;
    }
  }
  if (!*path) {
    usage(stderr);
    return HVG_EXIT_USAGE;
  }
  return -1;
}

int hvg_cli_status(int argc, char **argv) {
  const char *path = NULL;
  int code = ops__args(argc, argv, &path, NULL, NULL, status__usage);
  if (code >= 0)
    return code;
  if (optind != argc) {
    status__usage(stderr);
    return HVG_EXIT_USAGE;
  }
  hvg_config *cfg;
  store *st;
  if ((code = ops__open(path, &cfg, &st)) >= 0)
    return code;
  store_partner_stats s[256];
  size_t n = 0;
  hvg_err err;
  code = HVG_EXIT_OK;
  if (store_stats(st, store_now_ms(), s, 256, &n, NULL, &err)) {
    fprintf(stderr, "hvgate: store: %s\n", err.msg);
    code = HVG_EXIT_IOERR;
  } else {
    printf("%-20s %9s %9s %9s %9s %14s\n", "partner", "pending", "in-flight",
           "dead", "delivered", "oldest-pending");
    for (size_t i = 0; i < cfg->n_partners; i++) {
      const store_partner_stats *p = NULL;
      for (size_t j = 0; j < n && !p; j++)
        if (!strcmp(s[j].partner, cfg->partners[i].id))
          p = &s[j];
      store_partner_stats zero;
      memset(&zero, 0, sizeof zero);
      if (!p)
        p = &zero;
      char age[32] = "-";
      if (p->oldest_pending_age_ms)
        snprintf(age, sizeof age, "%llds",
                 (long long)(p->oldest_pending_age_ms / 1000));
      printf("%-20s %9lld %9lld %9lld %9lld %14s\n", cfg->partners[i].id,
             (long long)p->pending, (long long)p->in_flight,
             (long long)p->dead, (long long)p->delivered, age);
    }
  }
  store_close(st);
  hvg_config_free(cfg);
  return code;
}

/* ---- replay ---------------------------------------------------------- */

static void replay__usage(FILE *f) {
  fputs("usage: hvgate replay -c CONFIG (--all [--partner P] | ID...)\n\n"
        "Put dead letters back in the queue (after the record or the\n"
        "partner configuration was fixed). IDs are outbox ids, as in the\n"
        "logs' \"outbox_id\".\n\n"
        "  -c, --config FILE   gateway configuration (required)\n"
        "      --all           every dead letter (of --partner P only)\n"
        "  -h, --help          this help\n",
        f);
}

int hvg_cli_replay(int argc, char **argv) {
  const char *path = NULL, *partner = NULL;
  int all = 0;
  int code = ops__args(argc, argv, &path, &all, &partner, replay__usage);
  if (code >= 0)
    return code;
  int nids = argc - optind;
  if (all == (nids > 0) || (partner && !all)) {
    replay__usage(stderr);
    return HVG_EXIT_USAGE;
  }
  int64_t *ids = nids ? calloc((size_t)nids, sizeof *ids) : NULL;
  for (int i = 0; i < nids; i++) {
    char *end;
    long long v = strtoll(argv[optind + i], &end, 10);
    if (*end || v <= 0) {
      fprintf(stderr, "hvgate: '%s' is not an outbox id\n", argv[optind + i]);
      free(ids);
      return HVG_EXIT_USAGE;
    }
    ids[i] = v;
  }
  hvg_config *cfg;
  store *st;
  if ((code = ops__open(path, &cfg, &st)) >= 0) {
    free(ids);
    return code;
  }
  size_t moved = 0;
  hvg_err err;
  int rc = all ? store_replay_all(st, partner, store_now_ms(), &moved, &err)
               : store_replay(st, ids, (size_t)nids, store_now_ms(), &moved,
                              &err);
  if (rc) {
    fprintf(stderr, "hvgate: store: %s\n", err.msg);
    code = HVG_EXIT_IOERR;
  } else {
    printf("%zu dead letter%s queued again\n", moved, moved == 1 ? "" : "s");
    code = HVG_EXIT_OK;
  }
  free(ids);
  store_close(st);
  hvg_config_free(cfg);
  return code;
}
