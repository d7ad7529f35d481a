/* hvg_config — the gateway configuration file (conf/hvgate.json): where the
 * daemon listens, its store, the home visiting programs with their mapping
 * files, and the partners (pediatric practices, service organizations) with
 * their FHIR endpoint, what they may receive, and how the gateway
 * authenticates to them. JSON Schema: conf/schema/hvgate.schema.json.
 *
 * Secrets (bearer tokens, private keys, TLS keys) are never in the file:
 * only the path of a file holding them or the name of an environment
 * variable. An inline secret is a configuration error. */
#ifndef HVG_CONFIG_H
#define HVG_CONFIG_H

#include "hv_catalog.h"
#include "hv_mapping.h"
#include "hvg_arena.h"
#include "hvg_buf.h"
#include "hvg_err.h"

#include <stddef.h>

typedef enum hvg_auth_kind {
  HVG_AUTH_NONE = 0, /* a local test peer only */
  HVG_AUTH_BEARER,   /* a static token from token_file or token_env */
  HVG_AUTH_SMART     /* SMART Backend Services (client_credentials + JWT) */
} hvg_auth_kind;

typedef enum hvg_status_mode {
  HVG_STATUS_PUSH = 0,    /* the partner updates Tasks on the gateway */
  HVG_STATUS_POLL,        /* the gateway searches the partner's Tasks */
  HVG_STATUS_SUBSCRIPTION /* the partner notifies, the gateway fetches */
} hvg_status_mode;

typedef struct hvg_partner {
  const char *id;   /* [A-Za-z0-9-.]{1,64}, unique */
  const char *name; /* display name */
  const char *base_url;
  /* the organization ids by which program exports name this partner (NPI,
   * the program's own org ids): records are routed by them */
  const char **org_ids;
  size_t n_org_ids;
  unsigned record_types; /* bit (1u << hv_rectype) per record type received */
  const char **services; /* referral service ids received; none = all */
  size_t n_services;
  const char **sensitivity; /* sensitive categories it may receive */
  size_t n_sensitivity;
  int consent_required; /* default 1: only under an active consent */
  /* auth */
  hvg_auth_kind auth;
  const char *token_file, *token_env; /* bearer */
  const char *client_id, *private_key_file, *private_key_env, *key_id,
      *algorithm, *scope, *token_url; /* SMART; token_url NULL = discover */
  /* TLS */
  int tls_verify;
  const char *ca_file, *client_cert_file, *client_key_file;
  long connect_timeout_ms, timeout_ms;
  long workers;
  hvg_status_mode status_mode;
  long poll_interval_s;
  const char *poll_query; /* extra search parameters for polling, or NULL */
  /* how the partner authenticates to the gateway (hashes only) */
  const char **inbound_tokens; /* SHA-256 hex of its bearer tokens */
  size_t n_inbound_tokens;
  const char **inbound_certs; /* SHA-256 hex of its client certificates */
  size_t n_inbound_certs;
} hvg_partner;

typedef struct hvg_program {
  const char *id;
  const char *mapping; /* path, resolved against the config file */
  /* SHA-256 (hex) of the bearer token that may POST this program's records
   * to the daemon; NULL: intake over HTTP is off for the program. Only the
   * hash is configured, never the token. */
  const char *intake_token_sha256; /* also the program's API credential */
  /* organization ids by which partners address the program (a referral to
   * home visiting: Task.owner, ServiceRequest.performer identifiers) */
  const char **org_ids;
  size_t n_org_ids;
  /* optional webhook: POSTed a notice when a referral changes or a result
   * arrives; its bearer token from a file or the environment */
  const char *webhook_url, *webhook_token_file, *webhook_token_env;
  hv_mapping *map;     /* loaded; owned by the config */
  hv_catalog *cat;     /* its catalogues; owned by the config */
} hvg_program;

typedef struct hvg_config {
  hvg_arena arena; /* everything below */
  const char *path;
  const char *listen;     /* "host:port" */
  const char *store_path; /* SQLite database file */
  /* the daemon's HTTPS: certificate, key, and the CA of client
   * certificates (partners authenticating with mutual TLS); all NULL for
   * plain HTTP */
  const char *tls_cert_file, *tls_key_file, *tls_client_ca_file;
  const char **ops_tokens; /* SHA-256 hex of tokens for /readyz, /metrics */
  size_t n_ops_tokens;
  int store_full_sync;
  hvg_program *programs;
  size_t n_programs;
  hvg_partner *partners;
  size_t n_partners;
} hvg_config;

/* Also check that every file the configuration names (keys, tokens, CA and
 * client certificates) can be read, and that private keys are of the kind
 * their algorithm needs: what `check-config` and the daemon do. Tests of
 * the file format leave it out. */
#define HVG_CONFIG_CHECK_FILES 1u

/* Loads and checks a configuration file, each program's mapping file and
 * catalogues, and the partners' service and sensitivity names against those
 * catalogues. Every problem is appended to diag (may be NULL) as
 * "file:line: /pointer: reason"; relative paths are resolved against the
 * file's directory. Environment variables that are named but unset here are
 * reported to `warn` (may be NULL) as warnings, since the daemon's
 * environment may differ. Returns 0 and *out (the caller frees it with
 * hvg_config_free), HVG_ENOINPUT (the file is unreadable), HVG_ECONFIG
 * (errors reported) or HVG_ENOMEM; *out is NULL on error. */
int hvg_config_load(hvg_config **out, const char *path, unsigned flags,
                    hvg_buf *diag, hvg_buf *warn);

void hvg_config_free(hvg_config *c);

/* The partner known by organization id `org` (NULL if none). */
const hvg_partner *hvg_config_partner_for_org(const hvg_config *c,
                                              const char *org);

const hvg_partner *hvg_config_partner(const hvg_config *c, const char *id);

/* Opens the configured store, creating its directory (mode 0700: it holds
 * health information) when missing. Returns 0 and *st, or the store's error
 * (HVG_EIO, HVG_ECONFIG, HVG_ENOMEM) with err set. */
struct store;
int hvg_config_open_store(const hvg_config *c, struct store **st,
                          hvg_err *err);

/* The same with store options: inline_checkpoint for a handle that mostly
 * reads (one writer's checkpoint thread is enough; two would contend for
 * the same fsyncs), cache_mib to bound its page cache (0: the default). */
int hvg_config_open_store_opts(const hvg_config *c, struct store **st,
                               int inline_checkpoint, int cache_mib,
                               hvg_err *err);
const hvg_program *hvg_config_program(const hvg_config *c, const char *id);

#endif
