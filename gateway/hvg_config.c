#include "hvg_config.h"

#include "fhir_check.h"
#include "hvg_err.h"
#include "hvg_jconf.h"
#include "hvg_jwt.h"
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define HVG__CONFIG_MAX_FILE ((size_t)4 * 1024 * 1024)

/* Keys that would hold a secret inline, and where the secret goes instead.
 * They are "known" to the unknown-key check so that the user gets this
 * message rather than "unknown key". */
#define HVG__SECRET_KEYS                                                      \
  "token", "bearer_token", "private_key", "client_secret", "password",        \
      "client_key"
static const struct {
  const char *key, *instead;
} hvg__inline_secrets[] = {
    {"token", "token_file or token_env"},
    {"bearer_token", "token_file or token_env"},
    {"private_key", "private_key_file or private_key_env"},
    {"client_secret", "a SMART private_key_file (client secrets are not "
                      "supported)"},
    {"password", "a client certificate or token file"},
    {"client_key", "client_key_file"},
};

static void hvg__no_secrets(hvg_jconf *l, const cJSON *obj, const char *ptr) {
  for (size_t i = 0; i < sizeof hvg__inline_secrets / sizeof *hvg__inline_secrets;
       i++) {
    if (!cJSON_GetObjectItemCaseSensitive(obj, hvg__inline_secrets[i].key))
      continue;
    char p[512];
    hvg_jconf_ptr(p, sizeof p, ptr, hvg__inline_secrets[i].key);
    hvg_jconf_err(l, p,
                  "secrets are never written in the configuration: use %s",
                  hvg__inline_secrets[i].instead);
  }
}

/* obj[key]: a SHA-256 as 64 lower-case hex digits (a credential's hash;
 * the credential itself is never configured). */
static int hvg__sha256_ok(const char *h) {
  size_t n = h ? strspn(h, "0123456789abcdef") : 0;
  return n == 64 && !h[n];
}

static const char **hvg__sha256_list(hvg_jconf *l, const cJSON *obj,
                                     const char *key, const char *ptr,
                                     const char *what, size_t *n) {
  const char **v = hvg_jconf_strv(l, obj, key, ptr, n);
  for (size_t i = 0; i < *n; i++)
    if (!hvg__sha256_ok(v[i])) {
      char p[600];
      snprintf(p, sizeof p, "%s/%s/%zu", ptr, key, i);
      hvg_jconf_err(l, p, "must be the SHA-256 of the %s as 64 lower-case "
                          "hex digits, not the %s itself",
                    what, what);
    }
  return v;
}

/* Whether the authority (host[:port]) names this machine: "localhost",
 * [::1] or an IPv4 literal 127.x.y.z, exactly. */
static int hvg__loopback(const char *auth, size_t n) {
  size_t hl = n;
  if (auth[0] == '[') {
    const char *rb = memchr(auth, ']', n);
    hl = rb ? (size_t)(rb - auth) + 1 : n;
  } else {
    const char *colon = memchr(auth, ':', n);
    if (colon)
      hl = (size_t)(colon - auth);
  }
  if ((hl == 9 && !strncasecmp(auth, "localhost", 9)) ||
      (hl == 5 && !strncmp(auth, "[::1]", 5)))
    return 1;
  if (hl < 7 || strncmp(auth, "127.", 4))
    return 0;
  int dots = 0, digits = 0;
  for (size_t i = 4; i < hl; i++) {
    if (auth[i] == '.' && digits) {
      dots++;
      digits = 0;
    } else if (auth[i] >= '0' && auth[i] <= '9' && digits < 3) {
      digits++;
    } else {
      return 0;
    }
  }
  return dots == 2 && digits;
}

/* An http(s) URL with a host and no user:password; plain http only to this
 * machine (a test peer), since everything sent is health information. */
static void hvg__check_url(hvg_jconf *l, const char *url, const char *p,
                           int allow_http) {
  if (!url)
    return;
  const char *auth;
  int plain = 0;
  if (!strncasecmp(url, "https://", 8)) {
    auth = url + 8;
  } else if (!strncasecmp(url, "http://", 7)) {
    auth = url + 7;
    plain = 1;
  } else {
    hvg_jconf_err(l, p, "'%s' is not an http or https URL", url);
    return;
  }
  size_t an = strcspn(auth, "/?#");
  if (!an || !fhir_check_uri(url)) {
    hvg_jconf_err(l, p, "'%s' is not a valid URL", url);
    return;
  }
  if (memchr(auth, '@', an)) {
    hvg_jconf_err(l, p, "a URL must not carry a user name or password");
    return;
  }
  if (plain && !allow_http && !hvg__loopback(auth, an))
    hvg_jconf_err(l, p,
                  "plain http to a non-local host would send health "
                  "information unencrypted: use https (or set "
                  "\"allow_insecure_http\": true for a test network)");
}

static int hvg__id_ok(const char *s) { return s && fhir_check_id(s); }

/* A file named by the configuration, relative to the configuration's own
 * directory (so the daemon's working directory does not matter). */
static const char *hvg__file(hvg_jconf *l, const cJSON *obj, const char *key,
                             const char *ptr) {
  const char *f = hvg_jconf_str(l, obj, key, ptr, 0);
  return f ? hvg_jconf_relpath(l, l->path, f) : NULL;
}

static void hvg__auth(hvg_jconf *l, const cJSON *a, const char *ptr,
                      hvg_partner *pt) {
  if (!a) {
    hvg_jconf_err(l, ptr,
                  "'auth' is required: {\"type\": \"smart-backend\" | "
                  "\"bearer\" | \"none\", ...}");
    return;
  }
  char p[512];
  hvg_jconf_ptr(p, sizeof p, ptr, "auth");
  if (!cJSON_IsObject(a)) {
    hvg_jconf_err(l, p, "must be an object");
    return;
  }
  hvg__no_secrets(l, a, p);
  static const char *const keys[] = {
      "type",    "token_file", "token_env", "client_id", "private_key_file",
      "private_key_env", "key_id", "algorithm", "scope", "token_url",
      HVG__SECRET_KEYS, NULL};
  hvg_jconf_only(l, a, p, keys);
  const char *type = hvg_jconf_str(l, a, "type", p, 1);
  char tp[540];
  hvg_jconf_ptr(tp, sizeof tp, p, "type");
  pt->token_file = hvg__file(l, a, "token_file", p);
  pt->token_env = hvg_jconf_str(l, a, "token_env", p, 0);
  pt->client_id = hvg_jconf_str(l, a, "client_id", p, 0);
  pt->private_key_file = hvg__file(l, a, "private_key_file", p);
  pt->private_key_env = hvg_jconf_str(l, a, "private_key_env", p, 0);
  pt->key_id = hvg_jconf_str(l, a, "key_id", p, 0);
  pt->algorithm = hvg_jconf_str(l, a, "algorithm", p, 0);
  pt->scope = hvg_jconf_str(l, a, "scope", p, 0);
  pt->token_url = hvg_jconf_str(l, a, "token_url", p, 0);
  if (!type)
    return;
  if (!strcmp(type, "none")) {
    pt->auth = HVG_AUTH_NONE;
  } else if (!strcmp(type, "bearer")) {
    pt->auth = HVG_AUTH_BEARER;
    if (!pt->token_file == !pt->token_env)
      hvg_jconf_err(l, p, "a bearer token needs exactly one of token_file "
                          "and token_env");
  } else if (!strcmp(type, "smart-backend")) {
    pt->auth = HVG_AUTH_SMART;
    if (!pt->client_id)
      hvg_jconf_err(l, p, "SMART Backend Services needs 'client_id'");
    if (!pt->private_key_file == !pt->private_key_env)
      hvg_jconf_err(l, p, "SMART Backend Services needs exactly one of "
                          "private_key_file and private_key_env");
    if (!pt->algorithm)
      pt->algorithm = "RS384";
    else if (strcmp(pt->algorithm, "RS384") && strcmp(pt->algorithm, "ES384")) {
      char ap[540];
      hvg_jconf_ptr(ap, sizeof ap, p, "algorithm");
      hvg_jconf_err(l, ap, "'%s' is not RS384 or ES384 (the algorithms "
                           "SMART Backend Services requires)",
                    pt->algorithm);
    }
    if (!pt->scope)
      pt->scope = "system/*.rs system/*.cud";
    if (pt->token_url) {
      char up[540];
      hvg_jconf_ptr(up, sizeof up, p, "token_url");
      hvg__check_url(l, pt->token_url, up, 0);
    }
  } else {
    hvg_jconf_err(l, tp, "'%s' is not smart-backend, bearer or none", type);
  }
}

static void hvg__partner(hvg_jconf *l, const cJSON *js, const char *ptr,
                         hvg_partner *pt) {
  if (!cJSON_IsObject(js)) {
    hvg_jconf_err(l, ptr, "must be an object");
    return;
  }
  static const char *const keys[] = {
      "id",       "name",    "organization_ids", "base_url",
      "receives", "consent", "auth",             "tls",
      "timeouts", "workers", "status_return",    "allow_insecure_http",
      "inbound",  HVG__SECRET_KEYS, NULL};
  hvg_jconf_only(l, js, ptr, keys);
  hvg__no_secrets(l, js, ptr);
  pt->id = hvg_jconf_str(l, js, "id", ptr, 1);
  char p[512];
  hvg_jconf_ptr(p, sizeof p, ptr, "id");
  if (pt->id && !hvg__id_ok(pt->id))
    hvg_jconf_err(l, p, "'%s' must be 1-64 letters, digits, '-' or '.'",
                  pt->id);
  pt->name = hvg_jconf_str(l, js, "name", ptr, 0);
  pt->org_ids = hvg_jconf_strv(l, js, "organization_ids", ptr, &pt->n_org_ids);
  if (!pt->n_org_ids)
    hvg_jconf_err(l, ptr,
                  "'organization_ids' must list the ids (NPI, the programs' "
                  "organization ids) that route records to this partner");
  int allow_http = hvg_jconf_bool(l, js, "allow_insecure_http", ptr, 0);
  pt->base_url = hvg_jconf_str(l, js, "base_url", ptr, 1);
  hvg_jconf_ptr(p, sizeof p, ptr, "base_url");
  hvg__check_url(l, pt->base_url, p, allow_http);

  const cJSON *rc = cJSON_GetObjectItemCaseSensitive(js, "receives");
  hvg_jconf_ptr(p, sizeof p, ptr, "receives");
  if (!cJSON_IsObject(rc)) {
    hvg_jconf_err(l, rc ? p : ptr,
                  "'receives' {record_types, services, sensitivity} is "
                  "required");
  } else {
    static const char *const rk[] = {"record_types", "services", "sensitivity",
                                     NULL};
    hvg_jconf_only(l, rc, p, rk);
    size_t n;
    const char **types = hvg_jconf_strv(l, rc, "record_types", p, &n);
    for (size_t i = 0; i < n; i++) {
      int t = hv_rectype_lookup(types[i]);
      if (t < 0 || t == HV_REC_WELLCHILD) {
        char tp[560];
        snprintf(tp, sizeof tp, "%s/record_types/%zu", p, i);
        hvg_jconf_err(l, tp, "'%s' is not screening, referral or consent",
                      types[i]);
      } else {
        pt->record_types |= 1u << t;
      }
    }
    if (!n)
      hvg_jconf_err(l, p, "'record_types' must name what the partner "
                          "receives (screening, referral, consent)");
    pt->services = hvg_jconf_strv(l, rc, "services", p, &pt->n_services);
    pt->sensitivity =
        hvg_jconf_strv(l, rc, "sensitivity", p, &pt->n_sensitivity);
  }

  const char *consent = hvg_jconf_str(l, js, "consent", ptr, 0);
  pt->consent_required = 1;
  if (consent && !strcmp(consent, "not_required")) {
    pt->consent_required = 0;
  } else if (consent && strcmp(consent, "required")) {
    hvg_jconf_ptr(p, sizeof p, ptr, "consent");
    hvg_jconf_err(l, p, "'%s' is not required or not_required", consent);
  }

  hvg__auth(l, cJSON_GetObjectItemCaseSensitive(js, "auth"), ptr, pt);

  pt->tls_verify = 1;
  const cJSON *tls = cJSON_GetObjectItemCaseSensitive(js, "tls");
  const cJSON *to = cJSON_GetObjectItemCaseSensitive(js, "timeouts");
  const cJSON *sr = cJSON_GetObjectItemCaseSensitive(js, "status_return");
  static const char *const objs[] = {"tls", "timeouts", "status_return"};
  const cJSON *ov[] = {tls, to, sr};
  for (int i = 0; i < 3; i++)
    if (ov[i] && !cJSON_IsObject(ov[i])) {
      hvg_jconf_ptr(p, sizeof p, ptr, objs[i]);
      hvg_jconf_err(l, p, "must be an object");
    }
  if (cJSON_IsObject(tls)) {
    hvg_jconf_ptr(p, sizeof p, ptr, "tls");
    static const char *const tk[] = {"verify", "ca_file", "client_cert_file",
                                     "client_key_file", HVG__SECRET_KEYS,
                                     NULL};
    hvg_jconf_only(l, tls, p, tk);
    hvg__no_secrets(l, tls, p);
    pt->tls_verify = hvg_jconf_bool(l, tls, "verify", p, 1);
    pt->ca_file = hvg__file(l, tls, "ca_file", p);
    pt->client_cert_file = hvg__file(l, tls, "client_cert_file", p);
    pt->client_key_file = hvg__file(l, tls, "client_key_file", p);
    if (!pt->client_cert_file != !pt->client_key_file)
      hvg_jconf_err(l, p, "mutual TLS needs both client_cert_file and "
                          "client_key_file");
  }
  hvg_jconf_ptr(p, sizeof p, ptr, "timeouts");
  static const char *const tok[] = {"connect_ms", "total_ms", NULL};
  hvg_jconf_only(l, to, p, tok);
  pt->connect_timeout_ms =
      hvg_jconf_int(l, to, "connect_ms", p, 100, 120000, 5000);
  pt->timeout_ms = hvg_jconf_int(l, to, "total_ms", p, 1000, 600000, 60000);
  pt->workers = hvg_jconf_int(l, js, "workers", ptr, 1, 64, 2);

  hvg_jconf_ptr(p, sizeof p, ptr, "status_return");
  static const char *const sk[] = {"mode", "interval_s", "query", NULL};
  hvg_jconf_only(l, sr, p, sk);
  const char *mode =
      cJSON_IsObject(sr) ? hvg_jconf_str(l, sr, "mode", p, 1) : NULL;
  pt->status_mode = HVG_STATUS_PUSH;
  if (mode && !strcmp(mode, "poll"))
    pt->status_mode = HVG_STATUS_POLL;
  else if (mode && !strcmp(mode, "subscription"))
    pt->status_mode = HVG_STATUS_SUBSCRIPTION;
  else if (mode && strcmp(mode, "push"))
    hvg_jconf_err(l, p, "mode '%s' is not push, poll or subscription", mode);
  pt->poll_interval_s = hvg_jconf_int(l, sr, "interval_s", p, 1, 86400, 300);
  pt->poll_query = hvg_jconf_str(l, sr, "query", p, 0);
  if (pt->poll_query && (strpbrk(pt->poll_query, " \t\r\n?#") ||
                         strstr(pt->poll_query, "_lastUpdated"))) {
    char qp[600];
    hvg_jconf_ptr(qp, sizeof qp, p, "query");
    hvg_jconf_err(l, qp, "must be search parameters such as "
                         "\"owner=Organization/123\" (no spaces, '?' or "
                         "'#'; _lastUpdated is the gateway's)");
  }

  /* how the partner authenticates to the gateway's own endpoints */
  const cJSON *inb = cJSON_GetObjectItemCaseSensitive(js, "inbound");
  hvg_jconf_ptr(p, sizeof p, ptr, "inbound");
  if (inb && !cJSON_IsObject(inb)) {
    hvg_jconf_err(l, p, "must be an object");
  } else if (inb) {
    static const char *const ik[] = {"token_sha256", "client_cert_sha256",
                                     HVG__SECRET_KEYS, NULL};
    hvg_jconf_only(l, inb, p, ik);
    hvg__no_secrets(l, inb, p);
    pt->inbound_tokens = hvg__sha256_list(l, inb, "token_sha256", p,
                                          "bearer token", &pt->n_inbound_tokens);
    pt->inbound_certs =
        hvg__sha256_list(l, inb, "client_cert_sha256", p,
                         "client certificate (DER)", &pt->n_inbound_certs);
  }
}

/* The readable-file check of HVG_CONFIG_CHECK_FILES, at the key's line. */
static int hvg__readable(hvg_jconf *l, const char *file, const char *ptr,
                         const char *key) {
  if (!file || access(file, R_OK) == 0)
    return 1;
  char p[560];
  hvg_jconf_ptr(p, sizeof p, ptr, key);
  hvg_jconf_err(l, p, "cannot read '%s': %s", file, strerror(errno));
  return 0;
}

/* SMART: the key must load and suit its algorithm, as the daemon needs. */
static void hvg__check_key(hvg_jconf *l, const hvg_partner *pt,
                           const char *ptr) {
  char p[560];
  hvg_jconf_ptr(p, sizeof p, ptr, "private_key_file");
  EVP_PKEY *k = NULL;
  hvg_err err;
  if (hvg_jwt_load_key(&k, pt->private_key_file, NULL, pt->algorithm, &err))
    hvg_jconf_err(l, p, "%s", err.msg);
  EVP_PKEY_free(k);
}

static void hvg__env(hvg_buf *warn, const char *path, const char *ptr,
                     const char *name) {
  if (name && warn && !getenv(name))
    hvg_buf_printf(warn,
                   "%s: %s: warning: environment variable %s is not set here "
                   "(the daemon needs it)\n",
                   path, ptr, name);
}

static void hvg__check_partner_files(hvg_jconf *l, const hvg_partner *pt,
                                     const char *ptr, hvg_buf *warn) {
  char ap[64], tp[64];
  snprintf(ap, sizeof ap, "%s/auth", ptr);
  snprintf(tp, sizeof tp, "%s/tls", ptr);
  hvg__readable(l, pt->token_file, ap, "token_file");
  if (pt->auth == HVG_AUTH_SMART && pt->private_key_file &&
      hvg__readable(l, pt->private_key_file, ap, "private_key_file"))
    hvg__check_key(l, pt, ap);
  hvg__readable(l, pt->ca_file, tp, "ca_file");
  hvg__readable(l, pt->client_cert_file, tp, "client_cert_file");
  hvg__readable(l, pt->client_key_file, tp, "client_key_file");
  hvg__env(warn, l->path, ap, pt->token_env);
  hvg__env(warn, l->path, ap, pt->private_key_env);
}

/* Partners' service ids and sensitivity categories must exist in some
 * program's catalogue: a typo would silently withhold or send records. */
static void hvg__check_catalog_names(hvg_jconf *l, const hvg_config *c) {
  for (size_t g = 0; g < c->n_programs; g++)
    if (!c->programs[g].cat)
      return; /* already reported; names cannot be checked */
  for (size_t i = 0; i < c->n_partners; i++) {
    const hvg_partner *pt = &c->partners[i];
    for (size_t k = 0; k < pt->n_services; k++) {
      int found = 0;
      for (size_t g = 0; g < c->n_programs && !found; g++)
        found = c->programs[g].cat &&
                hv_catalog_service(c->programs[g].cat, pt->services[k]);
      if (!found) {
        char p[96];
        snprintf(p, sizeof p, "/partners/%zu/receives/services/%zu", i, k);
        hvg_jconf_err(l, p, "'%s' is not a service of the programs' "
                            "catalogues",
                      pt->services[k]);
      }
    }
    for (size_t k = 0; k < pt->n_sensitivity; k++) {
      int found = 0;
      for (size_t g = 0; g < c->n_programs && !found; g++) {
        const hv_catalog *cat = c->programs[g].cat;
        for (size_t n = 0; cat && n < cat->n_instruments && !found; n++)
          found = cat->instruments[n].sensitivity &&
                  !strcmp(cat->instruments[n].sensitivity, pt->sensitivity[k]);
        for (size_t n = 0; cat && n < cat->n_services && !found; n++)
          found = cat->services[n].sensitivity &&
                  !strcmp(cat->services[n].sensitivity, pt->sensitivity[k]);
      }
      if (!found) {
        char p[96];
        snprintf(p, sizeof p, "/partners/%zu/receives/sensitivity/%zu", i, k);
        hvg_jconf_err(l, p, "'%s' is not a sensitivity category of the "
                            "programs' catalogues",
                      pt->sensitivity[k]);
      }
    }
  }
}

static void hvg__unique(hvg_jconf *l, const char *what, const char *ptr,
                        const char *const *ids, size_t n) {
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < i; j++)
      if (ids[i] && ids[j] && !strcmp(ids[i], ids[j])) {
        char p[512];
        snprintf(p, sizeof p, "%s/%zu", ptr, i);
        hvg_jconf_err(l, p, "%s '%s' appears twice (also at %s/%zu)", what,
                      ids[i], ptr, j);
      }
}

/* A program's webhook: where the gateway POSTs a notice when a referral
 * of the program changes or a result arrives. */
static void hvg__webhook(hvg_jconf *l, const cJSON *wh, const char *ptr,
                         hvg_program *pg) {
  if (!wh)
    return;
  char p[128];
  hvg_jconf_ptr(p, sizeof p, ptr, "webhook");
  if (!cJSON_IsObject(wh)) {
    hvg_jconf_err(l, p, "must be an object");
    return;
  }
  static const char *const wk[] = {"url", "token_file", "token_env",
                                   "allow_insecure_http", HVG__SECRET_KEYS,
                                   NULL};
  hvg_jconf_only(l, wh, p, wk);
  hvg__no_secrets(l, wh, p);
  int allow_http = hvg_jconf_bool(l, wh, "allow_insecure_http", p, 0);
  pg->webhook_url = hvg_jconf_str(l, wh, "url", p, 1);
  char up[160];
  hvg_jconf_ptr(up, sizeof up, p, "url");
  hvg__check_url(l, pg->webhook_url, up, allow_http);
  pg->webhook_token_file = hvg__file(l, wh, "token_file", p);
  pg->webhook_token_env = hvg_jconf_str(l, wh, "token_env", p, 0);
  if (pg->webhook_token_file && pg->webhook_token_env)
    hvg_jconf_err(l, p, "a webhook token comes from token_file or token_env, "
                        "not both");
}

/* Loads each program's mapping and catalogues; their own errors go to diag
 * with their own file names. */
static void hvg__load_programs(hvg_jconf *l, hvg_config *c) {
  for (size_t i = 0; i < c->n_programs; i++) {
    hvg_program *pg = &c->programs[i];
    if (!pg->mapping)
      continue;
    char p[64];
    snprintf(p, sizeof p, "/programs/%zu/mapping", i);
    size_t mark = l->diag ? l->diag->len : 0;
    int rc = hv_mapping_load(&pg->map, pg->mapping, NULL, l->diag);
    if (rc == HVG_ENOMEM) {
      l->nomem = 1;
      continue;
    }
    if (rc == HVG_ENOINPUT) { /* say it here, with the key's line */
      if (l->diag)
        hvg_buf_truncate(l->diag, mark);
      hvg_jconf_err(l, p, "cannot read mapping file '%s'", pg->mapping);
      continue;
    }
    if (rc) {
      l->errors++; /* the mapping's own errors are in diag */
      continue;
    }
    if (pg->id && strcmp(pg->map->program_id, pg->id))
      hvg_jconf_err(l, p, "the mapping is for program '%s', not '%s'",
                    pg->map->program_id, pg->id);
    rc = hv_catalog_load(&pg->cat, pg->map->instruments_path,
                         pg->map->services_path, l->diag);
    if (rc == HVG_ENOMEM)
      l->nomem = 1;
    else if (rc)
      l->errors++;
  }
}

int hvg_config_load(hvg_config **out, const char *path, unsigned flags,
                    hvg_buf *diag, hvg_buf *warn) {
  *out = NULL;
  if (!path)
    return HVG_EINVAL;
  hvg_config *c = calloc(1, sizeof *c);
  if (!c)
    return HVG_ENOMEM;
  hvg_arena_init(&c->arena, (size_t)8 * 1024 * 1024);
  c->path = hvg_arena_strdup(&c->arena, path);
  hvg_jconf l = {NULL, NULL, 0, diag, &c->arena, 0, !c->path};
  char *text;
  cJSON *root = hvg_jconf_open(&l, path, HVG__CONFIG_MAX_FILE, &text);
  if (!root) {
    int rc = text ? HVG_ECONFIG : HVG_ENOINPUT;
    free(text);
    hvg_config_free(c);
    return rc;
  }
  static const char *const top[] = {"listen",   "store", "programs",
                                     "partners", "tls",   "ops",
                                     HVG__SECRET_KEYS, NULL};
  hvg_jconf_only(&l, root, "", top);
  hvg__no_secrets(&l, root, "");
  c->listen = hvg_jconf_str(&l, root, "listen", "", 0);
  if (!c->listen)
    c->listen = "127.0.0.1:8780";
  else if (!strrchr(c->listen, ':'))
    hvg_jconf_err(&l, "/listen", "'%s' is not host:port", c->listen);

  /* the daemon's own HTTPS listener (mutual TLS with client_ca_file) */
  const cJSON *srv = cJSON_GetObjectItemCaseSensitive(root, "tls");
  if (srv && !cJSON_IsObject(srv)) {
    hvg_jconf_err(&l, "/tls", "must be an object");
  } else if (srv) {
    static const char *const tk[] = {"cert_file", "key_file",
                                     "client_ca_file", HVG__SECRET_KEYS,
                                     NULL};
    hvg_jconf_only(&l, srv, "/tls", tk);
    hvg__no_secrets(&l, srv, "/tls");
    c->tls_cert_file = hvg__file(&l, srv, "cert_file", "/tls");
    c->tls_key_file = hvg__file(&l, srv, "key_file", "/tls");
    c->tls_client_ca_file = hvg__file(&l, srv, "client_ca_file", "/tls");
    if (!c->tls_cert_file || !c->tls_key_file)
      hvg_jconf_err(&l, "/tls", "HTTPS needs both cert_file and key_file");
  }
  const cJSON *ops = cJSON_GetObjectItemCaseSensitive(root, "ops");
  if (ops && !cJSON_IsObject(ops)) {
    hvg_jconf_err(&l, "/ops", "must be an object");
  } else if (ops) {
    static const char *const ok[] = {"token_sha256", HVG__SECRET_KEYS, NULL};
    hvg_jconf_only(&l, ops, "/ops", ok);
    hvg__no_secrets(&l, ops, "/ops");
    c->ops_tokens = hvg__sha256_list(&l, ops, "token_sha256", "/ops",
                                     "bearer token", &c->n_ops_tokens);
  }

  const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "store");
  static const char *const sk[] = {"sqlite", "full_sync", NULL};
  hvg_jconf_only(&l, st, "/store", sk);
  const char *db = st ? hvg_jconf_str(&l, st, "sqlite", "/store", 1) : NULL;
  c->store_path = hvg_jconf_relpath(&l, path, db ? db : "hvgate.db");
  c->store_full_sync = hvg_jconf_bool(&l, st, "full_sync", "/store", 0);

  const cJSON *progs = cJSON_GetObjectItemCaseSensitive(root, "programs");
  if (!cJSON_IsArray(progs) || !cJSON_GetArraySize(progs)) {
    hvg_jconf_err(&l, progs ? "/programs" : "",
                  "'programs' must be a non-empty array of {id, mapping}");
  } else {
    size_t n = (size_t)cJSON_GetArraySize(progs);
    c->programs = hvg_arena_alloc(&c->arena, n * sizeof *c->programs);
    const char **ids = hvg_arena_alloc(&c->arena, n * sizeof *ids);
    if (!c->programs || !ids) {
      l.nomem = 1;
    } else {
      memset(c->programs, 0, n * sizeof *c->programs);
      const cJSON *it;
      cJSON_ArrayForEach(it, progs) {
        char p[64];
        snprintf(p, sizeof p, "/programs/%zu", c->n_programs);
        hvg_program *pg = &c->programs[c->n_programs];
        static const char *const pk[] = {"id", "mapping",
                                         "intake_token_sha256",
                                         "organization_ids", "webhook",
                                         HVG__SECRET_KEYS, NULL};
        hvg_jconf_only(&l, it, p, pk);
        hvg__no_secrets(&l, it, p);
        pg->id = hvg_jconf_str(&l, it, "id", p, 1);
        pg->intake_token_sha256 =
            hvg_jconf_str(&l, it, "intake_token_sha256", p, 0);
        if (pg->intake_token_sha256 &&
            !hvg__sha256_ok(pg->intake_token_sha256)) {
          char hp[96];
          snprintf(hp, sizeof hp, "%s/intake_token_sha256", p);
          hvg_jconf_err(&l, hp,
                        "must be the SHA-256 of the token as 64 lower-case "
                        "hex digits (sha256sum), not the token");
        }
        pg->org_ids =
            hvg_jconf_strv(&l, it, "organization_ids", p, &pg->n_org_ids);
        hvg__webhook(&l, cJSON_GetObjectItemCaseSensitive(it, "webhook"), p,
                     pg);
        const char *m = hvg_jconf_str(&l, it, "mapping", p, 1);
        pg->mapping = m ? hvg_jconf_relpath(&l, path, m) : NULL;
        if (pg->id && !hvg__id_ok(pg->id))
          hvg_jconf_err(&l, p, "id '%s' must be 1-64 letters, digits, '-' or "
                               "'.'",
                        pg->id);
        ids[c->n_programs++] = pg->id;
      }
      hvg__unique(&l, "program id", "/programs", ids, c->n_programs);
    }
  }

  const cJSON *parts = cJSON_GetObjectItemCaseSensitive(root, "partners");
  if (parts && !cJSON_IsArray(parts)) {
    hvg_jconf_err(&l, "/partners", "must be an array");
  } else if (parts) {
    size_t n = (size_t)cJSON_GetArraySize(parts);
    c->partners = hvg_arena_alloc(&c->arena, (n + 1) * sizeof *c->partners);
    const char **ids = hvg_arena_alloc(&c->arena, (n + 1) * sizeof *ids);
    if (!c->partners || !ids) {
      l.nomem = 1;
    } else {
      memset(c->partners, 0, (n + 1) * sizeof *c->partners);
      const cJSON *it;
      cJSON_ArrayForEach(it, parts) {
        char p[64];
        snprintf(p, sizeof p, "/partners/%zu", c->n_partners);
        hvg__partner(&l, it, p, &c->partners[c->n_partners]);
        ids[c->n_partners] = c->partners[c->n_partners].id;
        c->n_partners++;
      }
      hvg__unique(&l, "partner id", "/partners", ids, c->n_partners);
      for (size_t i = 0; (flags & HVG_CONFIG_CHECK_FILES) && i < c->n_partners;
           i++) {
        char p[64];
        snprintf(p, sizeof p, "/partners/%zu", i);
        hvg__check_partner_files(&l, &c->partners[i], p, warn);
      }
      /* an organization id must route to one partner only */
      for (size_t i = 0; i < c->n_partners; i++)
        for (size_t k = 0; k < c->partners[i].n_org_ids; k++) {
          const char *org = c->partners[i].org_ids[k];
          for (size_t j = 0; j < i; j++)
            for (size_t m = 0; m < c->partners[j].n_org_ids; m++)
              if (!strcmp(org, c->partners[j].org_ids[m])) {
                char p[96];
                snprintf(p, sizeof p, "/partners/%zu/organization_ids/%zu",
                         i, k);
                hvg_jconf_err(&l, p,
                              "organization id '%s' already routes to "
                              "partner '%s'",
                              org, c->partners[j].id);
              }
        }
    }
  }
  for (size_t i = 0; (flags & HVG_CONFIG_CHECK_FILES) && i < c->n_programs;
       i++) {
    const hvg_program *pg = &c->programs[i];
    char p[64];
    snprintf(p, sizeof p, "/programs/%zu/webhook", i);
    hvg__readable(&l, pg->webhook_token_file, p, "token_file");
    hvg__env(warn, path, p, pg->webhook_token_env);
  }
  hvg__load_programs(&l, c);
  hvg__check_catalog_names(&l, c);
  cJSON_Delete(root);
  free(text);
  int rc = l.nomem ? HVG_ENOMEM : l.errors ? HVG_ECONFIG : 0;
  if (rc) {
    hvg_config_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

void hvg_config_free(hvg_config *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->n_programs; i++) {
    hv_mapping_free(c->programs[i].map);
    hv_catalog_free(c->programs[i].cat);
  }
  hvg_arena_free(&c->arena);
  free(c);
}

const hvg_partner *hvg_config_partner_for_org(const hvg_config *c,
                                              const char *org) {
  if (!c || !org)
    return NULL;
  for (size_t i = 0; i < c->n_partners; i++)
    for (size_t k = 0; k < c->partners[i].n_org_ids; k++)
      if (!strcmp(c->partners[i].org_ids[k], org))
        return &c->partners[i];
  return NULL;
}

const hvg_partner *hvg_config_partner(const hvg_config *c, const char *id) {
  for (size_t i = 0; c && id && i < c->n_partners; i++)
    if (c->partners[i].id && !strcmp(c->partners[i].id, id))
      return &c->partners[i];
  return NULL;
}

const hvg_program *hvg_config_program(const hvg_config *c, const char *id) {
  for (size_t i = 0; c && id && i < c->n_programs; i++)
    if (c->programs[i].id && !strcmp(c->programs[i].id, id))
      return &c->programs[i];
  return NULL;
}

int hvg_config_open_store_opts(const hvg_config *c, store **st,
                               int inline_checkpoint, int cache_mib,
                               hvg_err *err) {
  *st = NULL;
  const char *slash = strrchr(c->store_path, '/');
  if (slash && slash != c->store_path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - c->store_path),
             c->store_path);
    if (mkdir(dir, 0700) && errno != EEXIST)
      return hvg_err_set(err, HVG_EIO, NULL, "cannot create %s: %s", dir,
                         strerror(errno));
  }
  store_opts so = {.full_sync = c->store_full_sync,
                   .inline_checkpoint = inline_checkpoint,
                   .cache_mib = cache_mib};
  return store_open(st, c->store_path, &so, err);
}

int hvg_config_open_store(const hvg_config *c, store **st, hvg_err *err) {
  return hvg_config_open_store_opts(c, st, 0, 0, err);
}
