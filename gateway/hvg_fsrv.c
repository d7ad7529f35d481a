#include "hvg_fsrv.h"

#include "fhir_check.h"
#include "fhir_json.h"
#include "fhir_patch.h"
#include "hvg_tracker.h"

#include <openssl/rand.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define FS__MAX_BODY ((size_t)8 << 20) /* a stored resource */
#define FS__PAGE_DEFAULT 50
#define FS__PAGE_MAX 500
#define FS__BUNDLE_MAX_ENTRIES 200
#define SNOMED "http://snomed.info/sct"
#define WELL_CHILD_VISIT "410620009" /* Well child visit (procedure) */
#define NPI_SYSTEM "http://hl7.org/fhir/sid/us-npi"

/* A program and the identifier systems of its resources. */
typedef struct fs__prog {
  const hvg_program *p;
  hv_tofhir tf;
  int ready;
} fs__prog;

struct hvg_fsrv {
  const hvg_config *cfg;
  store *st;
  fs__prog *progs;
  size_t n_progs;
};

/* ---- results ------------------------------------------------------------ */

void hvg_fres_reset(hvg_fres *r) {
  cJSON_Delete(r->body);
  memset(r, 0, sizeof *r);
}

void hvg_fsrv_text_clean(char *s) {
  unsigned char *p = (unsigned char *)s;
  while (*p) {
    unsigned c = p[0];
    size_t n = c < 0x80                 ? 1
               : c >= 0xC2 && c <= 0xDF ? 2
               : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4
                                        : 0;
    unsigned cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 7;
    size_t k = 1;
    for (; n > 1 && k < n && (p[k] & 0xC0) == 0x80; k++)
      cp = cp << 6 | (p[k] & 0x3F);
    int ok = n && k == n && cp >= 0x20 && cp != 0x7F &&
             (n != 3 || (cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF) &&
                         cp != 0xFFFE && cp != 0xFFFF)) &&
             (n != 4 || (cp >= 0x10000 && cp <= 0x10FFFF));
    if (ok)
      p += n;
    else
      *p++ = '?';
  }
}

int hvg_fres_fail(hvg_fres *r, int status, const char *issue,
                  const char *expression, const char *fmt, ...) {
  cJSON_Delete(r->body);
  r->body = NULL;
  r->status = status;
  r->issue = issue;
  snprintf(r->expression, sizeof r->expression, "%s",
           expression ? expression : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->diagnostics, sizeof r->diagnostics, fmt, ap);
  va_end(ap);
  hvg_fsrv_text_clean(r->diagnostics);
  hvg_fsrv_text_clean(r->expression);
  return 0;
}

/* A failure of the gateway itself (the store, memory): 503 when the store
 * is busy or failing, 500 otherwise. Returns rc for the caller. */
static int fs__internal(hvg_fres *r, int rc, const hvg_err *e) {
  hvg_fres_fail(r, rc == HVG_EIO ? 503 : 500, "exception", NULL,
                "the gateway could not complete the request: %s",
                e && e->msg[0] ? e->msg : hvg_strerror(rc));
  return rc;
}

/* ---- life cycle ---------------------------------------------------------- */

int hvg_fsrv_new(hvg_fsrv **out, const hvg_config *cfg, store *st,
                 hvg_err *err) {
  *out = NULL;
  hvg_fsrv *s = calloc(1, sizeof *s);
  if (!s)
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  s->cfg = cfg;
  s->st = st;
  s->progs = calloc(cfg->n_programs ? cfg->n_programs : 1, sizeof *s->progs);
  if (!s->progs) {
    free(s);
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  }
  for (size_t i = 0; i < cfg->n_programs; i++) {
    fs__prog *fp = &s->progs[s->n_progs++];
    fp->p = &cfg->programs[i];
    if (hv_tofhir_init(&fp->tf, fp->p->map, fp->p->cat)) {
      hvg_fsrv_free(s);
      return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
    }
    fp->ready = 1;
  }
  *out = s;
  return 0;
}

void hvg_fsrv_free(hvg_fsrv *s) {
  if (!s)
    return;
  for (size_t i = 0; i < s->n_progs; i++)
    if (s->progs[i].ready)
      hv_tofhir_free(&s->progs[i].tf);
  free(s->progs);
  free(s);
}

/* ---- small tree helpers -------------------------------------------------- */

static const char *fs__str(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The reference string of Reference element o[key], or NULL. */
static const char *fs__ref(const cJSON *o, const char *key) {
  return fs__str(cJSON_GetObjectItemCaseSensitive(o, key), "reference");
}

/* "system|value" of the first identifier of a resource or Reference. */
static int fs__ident(const cJSON *ident, char *out, size_t cap) {
  if (cJSON_IsArray(ident))
    ident = cJSON_GetArrayItem(ident, 0);
  const char *sys = fs__str(ident, "system"), *val = fs__str(ident, "value");
  if (!val)
    return 0;
  int n = snprintf(out, cap, "%s|%s", sys ? sys : "", val);
  return n > 0 && (size_t)n < cap;
}

/* The identifier value of `o` (a resource's identifier array or a
 * Reference's identifier) in `system`, or NULL. */
static const char *fs__ident_in(const cJSON *ident, const char *system) {
  const cJSON *it;
  if (cJSON_IsObject(ident)) {
    const char *sys = fs__str(ident, "system");
    return sys && !strcmp(sys, system) ? fs__str(ident, "value") : NULL;
  }
  cJSON_ArrayForEach(it, ident) {
    const char *sys = fs__str(it, "system");
    if (sys && !strcmp(sys, system))
      return fs__str(it, "value");
  }
  return NULL;
}

/* A new resource id: a random (version 4) UUID. */
static int fs__new_id(char out[37]) {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1)
    return HVG_ENOMEM;
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  static const char hex[] = "0123456789abcdef";
  int o = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      out[o++] = '-';
    out[o++] = hex[b[i] >> 4];
    out[o++] = hex[b[i] & 15];
  }
  out[o] = '\0';
  return 0;
}

/* The stored form of a resource: compact JSON without meta.versionId and
 * meta.lastUpdated (the store's columns), with id set. The caller frees
 * the text. NULL when out of memory. */
static char *fs__body(const cJSON *res, const char *id, size_t *len) {
  cJSON *c = cJSON_Duplicate(res, 1);
  if (!c)
    return NULL;
  cJSON *meta = cJSON_GetObjectItemCaseSensitive(c, "meta");
  if (meta) {
    cJSON_DeleteItemFromObjectCaseSensitive(meta, "versionId");
    cJSON_DeleteItemFromObjectCaseSensitive(meta, "lastUpdated");
    if (!meta->child)
      cJSON_DeleteItemFromObjectCaseSensitive(c, "meta");
  }
  cJSON_DeleteItemFromObjectCaseSensitive(c, "id");
  cJSON *idn = cJSON_CreateString(id);
  char *text = NULL;
  if (idn) { /* id first: readable bodies; writers reorder anyway */
    cJSON *rt = cJSON_GetObjectItemCaseSensitive(c, "resourceType");
    if (rt) {
      idn->string = strdup("id");
      if (idn->string) {
        idn->prev = rt;
        idn->next = rt->next;
        if (rt->next)
          rt->next->prev = idn;
        else
          c->child->prev = idn;
        rt->next = idn;
        idn = NULL;
      }
    }
    cJSON_Delete(idn);
    text = cJSON_PrintUnformatted(c);
  }
  cJSON_Delete(c);
  if (text && len)
    *len = strlen(text);
  return text;
}

/* A stored row as a resource tree with its meta (version, stamp), owned by
 * the caller; NULL when out of memory or the body does not parse. */
/* Sets id and meta.versionId / meta.lastUpdated of a resource tree (the
 * store keeps them as columns). 0, or -1 when out of memory. */
static int fs__stamp(cJSON *t, const char *id, int64_t version,
                     int64_t stamp) {
  char v[24], at[32];
  snprintf(v, sizeof v, "%lld", (long long)version);
  fhir_instant_format(stamp, at);
  cJSON *meta = cJSON_GetObjectItemCaseSensitive(t, "meta");
  if (!meta)
    meta = cJSON_AddObjectToObject(t, "meta");
  cJSON *nid = id ? cJSON_CreateString(id) : NULL;
  cJSON *nv = cJSON_CreateString(v), *nat = cJSON_CreateString(at);
  if (!meta || (id && !nid) || !nv || !nat) {
    cJSON_Delete(nid);
    cJSON_Delete(nv);
    cJSON_Delete(nat);
    return -1;
  }
  if (nid) {
    cJSON_DeleteItemFromObjectCaseSensitive(t, "id");
    cJSON_AddItemToObject(t, "id", nid);
  }
  cJSON_DeleteItemFromObjectCaseSensitive(meta, "versionId");
  cJSON_DeleteItemFromObjectCaseSensitive(meta, "lastUpdated");
  cJSON_AddItemToObject(meta, "versionId", nv);
  cJSON_AddItemToObject(meta, "lastUpdated", nat);
  return 0;
}

/* A stored row as a resource tree with its meta (version, stamp), owned by
 * the caller; NULL when out of memory or the body does not parse. */
static cJSON *fs__tree(const store_resource *row) {
  cJSON *t = NULL;
  hvg_err e;
  if (fhir_json_parse(row->body, row->body_len, FS__MAX_BODY, &t, &e))
    return NULL;
  if (fs__stamp(t, NULL, row->version, row->updated_ms)) {
    cJSON_Delete(t);
    return NULL;
  }
  return t;
}

/* The headers of an answer about type/id at version/stamp. */
static void fs__answer_meta(hvg_fres *r, int status, const char *type,
                            const char *id, int64_t version, int64_t stamp) {
  r->status = status;
  snprintf(r->location, sizeof r->location, "%s/%s/_history/%lld", type, id,
           (long long)version);
  r->version = version;
  r->updated_ms = stamp;
}

/* r answers with `tree` as version/stamp of type/id: the resource with its
 * meta (unless the caller asked for none), Location, ETag. */
static int fs__answer_tree(hvg_fres *r, int status, const char *type,
                           const char *id, const cJSON *tree, int64_t version,
                           int64_t stamp) {
  cJSON_Delete(r->body);
  r->body = NULL;
  if (!r->minimal) {
    r->body = cJSON_Duplicate(tree, 1);
    if (!r->body || fs__stamp(r->body, id, version, stamp)) {
      cJSON_Delete(r->body);
      r->body = NULL;
      return fs__internal(r, HVG_ENOMEM, NULL);
    }
  }
  fs__answer_meta(r, status, type, id, version, stamp);
  return 0;
}

/* r answers with the row: 200/201, the resource, Location, ETag. */
static int fs__answer_row(hvg_fres *r, int status, const store_resource *row) {
  cJSON_Delete(r->body);
  r->body = NULL;
  if (!r->minimal && !(r->body = fs__tree(row)))
    return fs__internal(r, HVG_ENOMEM, NULL);
  fs__answer_meta(r, status, row->type, row->id, row->version,
                  row->updated_ms);
  return 0;
}

/* The program whose identifier systems start with the mapping's base and
 * whose child system is `system`; NULL if none. */
static const fs__prog *fs__prog_of_child_system(const hvg_fsrv *s,
                                                const char *system) {
  for (size_t i = 0; system && i < s->n_progs; i++)
    if (!strcmp(s->progs[i].tf.sys_child, system))
      return &s->progs[i];
  return NULL;
}

static const fs__prog *fs__prog_by_id(const hvg_fsrv *s, const char *id) {
  for (size_t i = 0; id && i < s->n_progs; i++)
    if (!strcmp(s->progs[i].p->id, id))
      return &s->progs[i];
  return NULL;
}

/* The program a Reference (Task.owner, ServiceRequest.performer) names:
 * by identifier (the program's own system, or one of its organization_ids
 * in any system) or as "Organization/{program id}". */
static const fs__prog *fs__prog_of_ref(const hvg_fsrv *s, const cJSON *ref) {
  const char *lit = fs__str(ref, "reference");
  if (lit && !strncmp(lit, "Organization/", 13)) {
    const fs__prog *fp = fs__prog_by_id(s, lit + 13);
    if (fp)
      return fp;
  }
  const cJSON *ident = cJSON_GetObjectItemCaseSensitive(ref, "identifier");
  const char *sys = fs__str(ident, "system"), *val = fs__str(ident, "value");
  for (size_t i = 0; val && i < s->n_progs; i++) {
    const fs__prog *fp = &s->progs[i];
    if (sys && !strcmp(sys, fp->tf.sys_program) && !strcmp(val, fp->p->id))
      return fp;
    for (size_t k = 0; k < fp->p->n_org_ids; k++)
      if (!strcmp(val, fp->p->org_ids[k]))
        return fp;
  }
  return NULL;
}

/* ---- read --------------------------------------------------------------- */

static const char *const fs__readable[] = {"Task", "ServiceRequest",
                                           "Observation", "Encounter",
                                           "Patient", NULL};

static int fs__type_ok(hvg_fres *r, const char *type,
                       const char *const *types) {
  for (size_t i = 0; types[i]; i++)
    if (!strcmp(type, types[i]))
      return 1;
  hvg_fres_fail(r, 404, "not-supported", NULL,
                "this server does not serve %.64s resources here", type);
  return 0;
}

/* The row type/id if `who` may see it: 0; HVG_ENOTFOUND with r a 404
 * (absent or another partner's: not told apart); else the store's error
 * with r a 500/503. The caller releases *row on 0. */
static int fs__visible(hvg_fsrv *s, const hvg_partner *who, const char *type,
                       const char *id, store_resource *row, hvg_fres *r) {
  hvg_err e;
  int rc = fhir_check_id(id) ? store_resource_get(s->st, type, id, row, &e)
                             : HVG_ENOTFOUND;
  if (rc == 0 && (!row->partner || strcmp(row->partner, who->id))) {
    store_resource_release(row);
    rc = HVG_ENOTFOUND;
  }
  if (rc == HVG_ENOTFOUND)
    hvg_fres_fail(r, 404, "not-found", NULL, "%.64s/%.64s is not known",
                  type, id);
  else if (rc)
    fs__internal(r, rc, &e);
  return rc;
}

int hvg_fsrv_read(hvg_fsrv *s, const hvg_partner *who, const char *type,
                  const char *id, hvg_fres *r) {
  if (!fs__type_ok(r, type, fs__readable))
    return 0;
  store_resource row;
  int rc = fs__visible(s, who, type, id, &row, r);
  if (rc)
    return rc == HVG_ENOTFOUND ? 0 : rc;
  rc = fs__answer_row(r, 200, &row);
  store_resource_release(&row);
  return rc;
}

/* ---- search -------------------------------------------------------------- */

/* "gt2026-01-01T00:00:00Z" etc. into the query's bounds: an instant, or
 * a date (the whole day, UTC). 0 or -1. */
static int fs__last_updated(const char *v, store_resource_query *q) {
  static const char *const pre[] = {"gt", "ge", "lt", "le", "eq"};
  int op = 4;
  for (int i = 0; i < 5; i++)
    if (!strncmp(v, pre[i], 2) && v[2] >= '0' && v[2] <= '9') {
      op = i;
      v += 2;
      break;
    }
  int64_t t, end;
  long days;
  if (!fhir_instant_ms(v, &t)) {
    end = t;
  } else if (!fhir_date_days(v, &days)) {
    t = (int64_t)days * 86400000;
    end = t + 86400000 - 1; /* last ms of the day */
  } else {
    return -1;
  }
  switch (op) {
  case 0: q->updated_gt_ms = end; break;
  case 1: q->updated_ge_ms = t; break;
  case 2: q->updated_lt_ms = t; break;
  case 3: q->updated_le_ms = end; break;
  default:
    q->updated_ge_ms = t;
    q->updated_le_ms = end;
  }
  return 0;
}

/* Appends "&name=value" (value percent-encoded) to a link URL. */
static int fs__link_param(hvg_buf *b, const char *name, const char *v) {
  int rc = hvg_buf_printf(b, "%c%s=", strchr(b->data ? b->data : "", '?')
                                          ? '&'
                                          : '?',
                          name);
  for (const unsigned char *p = (const unsigned char *)v; !rc && *p; p++)
    rc = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                 (*p >= '0' && *p <= '9') || strchr("-._~:/|,", *p)
             ? hvg_buf_addc(b, (char)*p)
             : hvg_buf_printf(b, "%%%02X", *p);
  return rc;
}

/* A reference search value as the column holds it: "Type/id"; the id
 * alone names a resource of `type`, the one type Task.owner (an
 * Organization), Task.focus (the ServiceRequest) and Task.for (a Patient)
 * have at this endpoint. */
static const char *fs__ref_param(const char *v, const char *type, char *buf,
                                 size_t cap) {
  if (strchr(v, '/'))
    return v;
  snprintf(buf, cap, "%s/%s", type, v);
  return buf;
}

int hvg_fsrv_search(hvg_fsrv *s, const hvg_partner *who, const char *type,
                    const hvg_fparam *params, size_t n, const char *base,
                    hvg_fres *r) {
  static const char *const searchable[] = {"Task", NULL};
  if (!fs__type_ok(r, type, searchable))
    return 0;
  store_resource_query q;
  memset(&q, 0, sizeof q);
  q.type = type;
  q.partner = who->id;
  size_t count = FS__PAGE_DEFAULT;
  size_t offset = 0;
  char ignored[256] = "";
  hvg_buf self;
  hvg_buf_init(&self, 8192);
  int brc = hvg_buf_printf(&self, "%s/%s", base, type);
  char statuses[512];
  char refs[3][STORE_KEY_MAX + 32];
  for (size_t i = 0; i < n && !brc; i++) {
    const char *k = params[i].name, *v = params[i].value;
    int used = 1;
    if (!strcmp(k, "status")) {
      snprintf(statuses, sizeof statuses, "%s", v);
      q.n_status = 0;
      for (char *tok = strtok(statuses, ","); tok && q.n_status < 12;
           tok = strtok(NULL, ","))
        q.status[q.n_status++] = tok;
      if (!q.n_status) {
        hvg_buf_free(&self);
        return hvg_fres_fail(r, 400, "invalid", "status",
                             "status needs a value");
      }
    } else if (!strcmp(k, "owner")) {
      q.owner = fs__ref_param(v, "Organization", refs[0], sizeof refs[0]);
    } else if (!strcmp(k, "focus")) {
      q.focus = fs__ref_param(v, "ServiceRequest", refs[1], sizeof refs[1]);
    } else if (!strcmp(k, "patient")) {
      q.patient = fs__ref_param(v, "Patient", refs[2], sizeof refs[2]);
    } else if (!strcmp(k, "identifier")) {
      q.identifier = v;
    } else if (!strcmp(k, "_lastUpdated")) {
      if (fs__last_updated(v, &q)) {
        hvg_buf_free(&self);
        return hvg_fres_fail(r, 400, "invalid", "_lastUpdated",
                             "'%.60s' is not a date or instant with an "
                             "optional gt, ge, lt, le or eq prefix",
                             v);
      }
    } else if (!strcmp(k, "_count")) {
      char *end;
      long c = strtol(v, &end, 10);
      if (*end || c < 0) {
        hvg_buf_free(&self);
        return hvg_fres_fail(r, 400, "invalid", "_count",
                             "_count must be a whole number");
      }
      count = c > FS__PAGE_MAX ? FS__PAGE_MAX : (size_t)c;
      used = 0; /* in the links as the page size in effect */
    } else if (!strcmp(k, "_offset")) {
      char *end;
      long o = strtol(v, &end, 10);
      if (*end || o < 0) {
        hvg_buf_free(&self);
        return hvg_fres_fail(r, 400, "invalid", "_offset",
                             "_offset must be a whole number");
      }
      offset = (size_t)o;
      used = 0; /* in the links, not the self-description */
    } else if (!strcmp(k, "_format")) {
      used = 0;
    } else {
      used = 0;
      size_t l = strlen(ignored);
      snprintf(ignored + l, sizeof ignored - l, "%s%.40s", l ? ", " : "", k);
    }
    if (used)
      brc = fs__link_param(&self, k, v);
  }
  q.offset = offset;
  store_resource rows[FS__PAGE_MAX];
  size_t got = 0, total = 0;
  hvg_err e;
  int rc = brc ? brc
               : store_resource_search(s->st, &q, rows, count, &got, &total,
                                       &e);
  if (rc) {
    hvg_buf_free(&self);
    return fs__internal(r, rc, &e);
  }
  cJSON *b = cJSON_CreateObject();
  cJSON *links = NULL, *entries = NULL;
  int ok = b && cJSON_AddStringToObject(b, "resourceType", "Bundle") &&
           cJSON_AddStringToObject(b, "type", "searchset") &&
           cJSON_AddNumberToObject(b, "total", (double)total) &&
           (links = cJSON_AddArrayToObject(b, "link")) != NULL;
  size_t self_len = self.len;
  const char *rels[2] = {"self", "next"};
  for (int li = 0; ok && li < 2; li++) {
    if (li == 1 && (offset + got >= total || !count))
      break; /* _count=0 asks for the total only: no page follows */
    hvg_buf_truncate(&self, self_len);
    if (count != FS__PAGE_DEFAULT) {
      char c[24];
      snprintf(c, sizeof c, "%zu", count);
      ok = !fs__link_param(&self, "_count", c);
    }
    char o[24];
    snprintf(o, sizeof o, "%zu", li ? offset + got : offset);
    if (ok && (li || offset))
      ok = !fs__link_param(&self, "_offset", o);
    cJSON *l = ok ? cJSON_CreateObject() : NULL;
    ok = l && cJSON_AddStringToObject(l, "relation", rels[li]) &&
         cJSON_AddStringToObject(l, "url", self.data);
    if (l)
      cJSON_AddItemToArray(links, l);
  }
  if (ok && (got || ignored[0]))
    ok = (entries = cJSON_AddArrayToObject(b, "entry")) != NULL;
  for (size_t i = 0; ok && i < got; i++) {
    cJSON *e1 = cJSON_CreateObject(), *res = fs__tree(&rows[i]);
    char url[400];
    snprintf(url, sizeof url, "%s/%s/%s", base, rows[i].type, rows[i].id);
    cJSON *sm = NULL;
    ok = e1 && res && cJSON_AddStringToObject(e1, "fullUrl", url) &&
         (sm = cJSON_AddObjectToObject(e1, "search")) != NULL &&
         cJSON_AddStringToObject(sm, "mode", "match");
    if (ok) {
      cJSON_AddItemToObject(e1, "resource", res);
      res = NULL;
      cJSON_AddItemToArray(entries, e1);
      e1 = NULL;
    }
    cJSON_Delete(res);
    cJSON_Delete(e1);
  }
  if (ok && ignored[0]) { /* lenient handling, said in an outcome entry */
    char msg[400];
    snprintf(msg, sizeof msg, "search parameters not supported and ignored: "
                              "%s", ignored);
    hvg_fsrv_text_clean(msg);
    cJSON *e1 = cJSON_CreateObject();
    cJSON *oo = cJSON_AddObjectToObject(e1, "resource");
    cJSON *sm = cJSON_AddObjectToObject(e1, "search");
    cJSON *iss = cJSON_CreateObject();
    cJSON *arr = oo ? cJSON_AddArrayToObject(oo, "issue") : NULL;
    ok = e1 && oo && sm && iss && arr &&
         cJSON_AddStringToObject(oo, "resourceType", "OperationOutcome") &&
         cJSON_AddStringToObject(sm, "mode", "outcome") &&
         cJSON_AddStringToObject(iss, "severity", "warning") &&
         cJSON_AddStringToObject(iss, "code", "not-supported") &&
         cJSON_AddStringToObject(iss, "diagnostics", msg);
    if (iss && arr)
      cJSON_AddItemToArray(arr, iss);
    else
      cJSON_Delete(iss);
    if (e1)
      cJSON_AddItemToArray(entries, e1);
  }
  for (size_t i = 0; i < got; i++)
    store_resource_release(&rows[i]);
  hvg_buf_free(&self);
  if (!ok) {
    cJSON_Delete(b);
    return fs__internal(r, HVG_ENOMEM, NULL);
  }
  cJSON_Delete(r->body);
  r->body = b;
  r->status = 200;
  return 0;
}

/* ---- the tracker: Task changes ------------------------------------------ */

/* Elements of a Task that only the requester (who made the referral)
 * sets, and those only the receiver (its owner) sets; the rest (status by
 * the state machine's rules, statusReason, businessStatus, note,
 * lastModified, executionPeriod, text, extension) either side changes. */
static const char *const fs__requester_elements[] = {
    "identifier",  "instantiatesCanonical", "instantiatesUri", "basedOn",
    "groupIdentifier", "partOf", "intent", "priority", "code", "description",
    "focus", "for", "encounter", "authoredOn", "requester", "owner",
    "reasonCode", "reasonReference", "insurance", "input", "restriction",
    "performerType", "location", NULL};
static const char *const fs__receiver_elements[] = {"output", NULL};

/* 1 when key is in the NULL-terminated list. */
static int fs__in(const char *key, const char *const *list) {
  for (size_t i = 0; list[i]; i++)
    if (!strcmp(key, list[i]))
      return 1;
  return 0;
}

/* The core of the request a requester updating its own Task keeps. */
static const char *const fs__request_core[] = {
    "identifier", "intent", "code", "focus", "for", "requester", "owner",
    "authoredOn", NULL};

static int fs__locked(const char *key, hvg_party party) {
  return party == HVG_PARTY_RECEIVER
             ? fs__in(key, fs__requester_elements)
             : fs__in(key, fs__receiver_elements) ||
                   fs__in(key, fs__request_core);
}

/* The element of `next` (other than status) that `party` may not change
 * from `cur`, or NULL. One pass over each tree's members. */
static const char *fs__locked_change(const cJSON *cur, const cJSON *next,
                                     hvg_party party) {
  const cJSON *b;
  cJSON_ArrayForEach(b, next) {
    if (!b->string || !fs__locked(b->string, party))
      continue;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(cur, b->string);
    if (!a || !fhir_json_equal(a, b))
      return b->string;
  }
  const cJSON *a;
  cJSON_ArrayForEach(a, cur) /* a locked element removed */
    if (a->string && fs__locked(a->string, party) &&
        !cJSON_GetObjectItemCaseSensitive(next, a->string))
      return a->string;
  return NULL;
}

/* The text of a CodeableConcept (its text, else its first coding's display
 * or code), or NULL. */
static const char *fs__cc_text(const cJSON *cc) {
  const char *t = fs__str(cc, "text");
  if (t)
    return t;
  const cJSON *c0 = cJSON_GetArrayItem(
      cJSON_GetObjectItemCaseSensitive(cc, "coding"), 0);
  t = fs__str(c0, "display");
  return t ? t : fs__str(c0, "code");
}

/* Which side of the referral `who` is for a Task row: the partner is the
 * receiver of a program's referral and the requester of its own referral
 * to a program. 0, or a store error. */
static int fs__party(hvg_fsrv *s, const store_resource *row, hvg_party *party,
                     char *hv_prev, size_t cap, hvg_err *e) {
  *party = HVG_PARTY_RECEIVER;
  if (hv_prev)
    hv_prev[0] = '\0';
  if (!row->program || !row->referral_id)
    return 0;
  store_referral ref;
  int rc = store_referral_get(s->st, row->program, row->referral_id, &ref, e);
  if (rc == HVG_ENOTFOUND)
    return 0;
  if (rc)
    return rc;
  if (ref.direction && !strcmp(ref.direction, "inbound"))
    *party = HVG_PARTY_REQUESTER;
  if (hv_prev && ref.hv_status)
    snprintf(hv_prev, cap, "%s", ref.hv_status);
  store_referral_release(&ref);
  return 0;
}

/* The search columns of a resource tree. Strings point into the tree or
 * into cols->ident. */
typedef struct fs__cols {
  const char *status, *owner, *focus, *patient;
  char ident[STORE_KEY_MAX * 2];
} fs__cols;

static void fs__columns(const cJSON *t, fs__cols *c) {
  memset(c, 0, sizeof *c);
  const char *type = fs__str(t, "resourceType");
  c->status = fs__str(t, "status");
  if (type && !strcmp(type, "Task")) {
    c->owner = fs__ref(t, "owner");
    c->focus = fs__ref(t, "focus");
    c->patient = fs__ref(t, "for");
  } else {
    c->patient = fs__ref(t, "subject");
    if (!c->patient)
      c->patient = fs__ref(t, "patient");
  }
  if (!fs__ident(cJSON_GetObjectItemCaseSensitive(t, "identifier"), c->ident,
                 sizeof c->ident))
    c->ident[0] = '\0';
}

/* Writes tree as the next version of row (expect = its version; 0 to
 * create), with its search columns. row's key, partner, program and
 * referral stay. On success row->version/updated_ms are the new ones. */
static int fs__store(hvg_fsrv *s, store_resource *row, const cJSON *tree,
                     int64_t expect, int64_t now, hvg_err *e) {
  size_t len = 0;
  char *body = fs__body(tree, row->id, &len);
  if (!body)
    return hvg_err_set(e, HVG_ENOMEM, NULL, NULL);
  fs__cols c;
  fs__columns(tree, &c);
  store_resource w = *row;
  w.status = c.status;
  w.owner = c.owner;
  w.focus = c.focus;
  w.patient = c.patient;
  w.identifier = c.ident[0] ? c.ident : NULL;
  w.body = body;
  w.body_len = len;
  w.mem_ = NULL;
  int rc = store_resource_put(s->st, &w, expect, now, e);
  free(body);
  if (!rc) {
    row->version = w.version;
    row->updated_ms = w.updated_ms;
  }
  return rc;
}

/* Record a Task status change of a referral: the transition (with the
 * home visiting status) and an event for the program. */
static int fs__transition(hvg_fsrv *s, const char *program,
                          const char *referral_id, const char *from,
                          const char *to, const char *actor,
                          const char *source, const char *reason,
                          const char *program_status, int64_t now,
                          hvg_err *e) {
  store_transition t = {now,
                        from,
                        to,
                        hvg_tracker_hv_status(to, program_status),
                        actor,
                        source,
                        reason};
  int rc = store_referral_transition(s->st, program, referral_id, &t, e);
  if (!rc)
    rc = store_event_add(s->st, program, "referral", referral_id, now, NULL,
                         e);
  return rc;
}

/* The core of a Task update by a partner (PUT, PATCH, a Bundle entry, a
 * Task read back from its server): checks the change and stores it with
 * the referral's transition, inside the caller's store transaction.
 * `next` is the new content. Fills r (200 with the new version, or the
 * refusal) and returns 0, or a store failure. */
static int fs__task_change(hvg_fsrv *s, const hvg_partner *who,
                           store_resource *row, const cJSON *next,
                           int64_t if_match, const char *source, int64_t now,
                           hvg_fres *r) {
  hvg_err e;
  hvg_err_clear(&e);
  if (if_match && if_match != row->version)
    return hvg_fres_fail(r, 412, "conflict", NULL,
                         "Task/%s is at version %lld, not %lld: read it again "
                         "and reapply the change",
                         row->id, (long long)row->version,
                         (long long)if_match);
  const char *to = fs__str(next, "status");
  if (!hvg_task_status_valid(to))
    return hvg_fres_fail(r, 400, "code-invalid", "Task.status",
                         "'%.40s' is not a TaskStatus code",
                         to ? to : "(none)");
  const char *intent = fs__str(next, "intent");
  if (!intent)
    return hvg_fres_fail(r, 400, "required", "Task.intent",
                         "Task.intent is required");
  cJSON *cur = NULL;
  if (fhir_json_parse(row->body, row->body_len, FS__MAX_BODY, &cur, &e))
    return fs__internal(r, HVG_EIO, &e);
  const char *from = fs__str(cur, "status");
  hvg_party party;
  char hv_prev[32];
  int rc = fs__party(s, row, &party, hv_prev, sizeof hv_prev, &e);
  if (rc) {
    cJSON_Delete(cur);
    return fs__internal(r, rc, &e);
  }
  const char *locked = fs__locked_change(cur, next, party);
  if (locked) {
    char name[64]; /* it may be a key of cur */
    snprintf(name, sizeof name, "%s", locked);
    cJSON_Delete(cur);
    return hvg_fres_fail(
        r, 422, "business-rule", name,
        "Task.%s is set by the %s of the referral and cannot be changed "
        "here",
        name, party == HVG_PARTY_RECEIVER ? "requester" : "receiver");
  }
  if (hvg_task_transition_check(from, to, party, &e)) {
    cJSON_Delete(cur);
    return hvg_fres_fail(r, 422, "business-rule", "Task.status", "%s",
                         e.msg);
  }
  int changed_status = strcmp(from ? from : "", to) != 0;
  /* as it would be stored: without the meta the client echoes back */
  char *as_stored = fs__body(next, row->id, NULL);
  cJSON *plain = NULL;
  int same = as_stored &&
             !fhir_json_parse(as_stored, strlen(as_stored), FS__MAX_BODY,
                              &plain, &e) &&
             fhir_json_equal(cur, plain);
  cJSON_Delete(plain);
  free(as_stored);
  cJSON_Delete(cur);
  if (!same) {
    if ((rc = fs__store(s, row, next, row->version, now, &e)) == HVG_ESTATE)
      return hvg_fres_fail(r, 409, "conflict", NULL,
                           "Task/%s changed while this update was made: "
                           "retry",
                           row->id);
    if (rc)
      return fs__internal(r, rc, &e);
  }
  if (changed_status && row->program && row->referral_id) {
    char actor[160];
    snprintf(actor, sizeof actor, "partner:%s", who->id);
    rc = fs__transition(
        s, row->program, row->referral_id, NULL, to, actor, source,
        fs__cc_text(cJSON_GetObjectItemCaseSensitive(next, "statusReason")),
        hv_prev, now, &e);
    if (rc)
      return fs__internal(r, rc, &e);
  }
  return fs__answer_tree(r, 200, row->type, row->id, next, row->version,
                         row->updated_ms);
}

/* An interaction run inside one store transaction: committed when it
 * succeeded (r->status < 300), rolled back otherwise. */
typedef struct fs__op {
  const hvg_partner *who;
  const char *type, *id;
  const cJSON *tree;
  const char *text; /* PATCH: the patch document */
  size_t text_len;
  const char *if_none_exist;
  int64_t if_match;
  const char *source;
  int64_t now;
} fs__op;

typedef int (*fs__fn)(hvg_fsrv *s, const fs__op *op, hvg_fres *r);

static int fs__in_tx(hvg_fsrv *s, fs__fn fn, const fs__op *op, hvg_fres *r) {
  hvg_err e;
  int rc = store_tx_begin(s->st, &e);
  if (rc)
    return fs__internal(r, rc, &e);
  rc = fn(s, op, r);
  int trc = store_tx_end(s->st, rc == 0 && r->status < 300, &e);
  if (!rc && trc)
    rc = fs__internal(r, trc, &e);
  return rc;
}

/* Checks an update's resource against the URL. 0, or r a 400. */
static int fs__same_id(hvg_fres *r, const char *type, const char *id,
                       const cJSON *tree) {
  const char *rt = fs__str(tree, "resourceType");
  const char *tid = fs__str(tree, "id");
  if (!rt || strcmp(rt, type))
    return hvg_fres_fail(r, 400, "invalid", "resourceType",
                         "the body is a %.64s, the URL names a %.64s",
                         rt ? rt : "(none)", type),
           -1;
  if (!tid || strcmp(tid, id))
    return hvg_fres_fail(r, 400, "invalid", "id",
                         "the resource's id must equal the id in the URL"),
           -1;
  return 0;
}

static int fs__update_op(hvg_fsrv *s, const fs__op *op, hvg_fres *r) {
  if (strcmp(op->type, "Task"))
    return hvg_fres_fail(r, 405, "not-supported", NULL,
                         "%.64s resources cannot be updated here (Tasks "
                         "can)",
                         op->type);
  if (fs__same_id(r, op->type, op->id, op->tree))
    return 0;
  store_resource row;
  int rc = fs__visible(s, op->who, "Task", op->id, &row, r);
  if (rc)
    return rc == HVG_ENOTFOUND ? 0 : rc;
  rc = fs__task_change(s, op->who, &row, op->tree, op->if_match, op->source,
                       op->now, r);
  store_resource_release(&row);
  return rc;
}

int hvg_fsrv_update(hvg_fsrv *s, const hvg_partner *who, const char *type,
                    const char *id, const cJSON *tree, int64_t if_match,
                    int64_t now_ms, hvg_fres *r) {
  if (!fs__type_ok(r, type, fs__readable))
    return 0;
  fs__op op = {who, type, id, tree, NULL, 0, NULL, if_match, "push", now_ms};
  return fs__in_tx(s, fs__update_op, &op, r);
}

static int fs__patch_op(hvg_fsrv *s, const fs__op *op, hvg_fres *r) {
  if (strcmp(op->type, "Task"))
    return hvg_fres_fail(r, 405, "not-supported", NULL,
                         "%.64s resources cannot be patched here (Tasks "
                         "can)",
                         op->type);
  hvg_err e;
  hvg_err_clear(&e);
  fhir_patch *p = NULL;
  int rc = fhir_patch_parse(op->text, op->text_len, FS__MAX_BODY, &p, &e);
  if (rc == HVG_ENOMEM)
    return fs__internal(r, rc, &e);
  if (rc)
    return hvg_fres_fail(r, 400, "invalid", e.field, "JSON Patch: %s", e.msg);
  store_resource row;
  rc = fs__visible(s, op->who, "Task", op->id, &row, r);
  if (rc) {
    fhir_patch_free(p);
    return rc == HVG_ENOTFOUND ? 0 : rc;
  }
  cJSON *doc = NULL;
  if (fhir_json_parse(row.body, row.body_len, FS__MAX_BODY, &doc, &e)) {
    rc = fs__internal(r, HVG_EIO, &e);
  } else if ((rc = fhir_patch_apply(p, &doc, &e)) == HVG_ENOMEM) {
    fs__internal(r, rc, &e);
  } else if (rc) { /* a failed "test": the Task is not what the client saw */
    hvg_fres_fail(r, rc == HVG_ESTATE ? 409 : 422,
                  rc == HVG_ESTATE ? "conflict" : "processing", e.field,
                  "JSON Patch: %s", e.msg);
    rc = 0;
  } else {
    /* the patched document must still be a valid Task: print, re-parse */
    char *text = cJSON_PrintUnformatted(doc);
    cJSON *checked = NULL;
    if (!text) {
      rc = fs__internal(r, HVG_ENOMEM, NULL);
    } else if (fhir_json_parse(text, strlen(text), FS__MAX_BODY, &checked,
                               &e)) {
      hvg_fres_fail(r, 422, "processing", e.field,
                    "the patched Task is not valid FHIR: %s", e.msg);
    } else if (!fs__same_id(r, "Task", op->id, checked)) {
      rc = fs__task_change(s, op->who, &row, checked, op->if_match,
                           op->source, op->now, r);
    }
    if (r->status == 400) /* the request was fine: what it made is not */
      r->status = 422;
    cJSON_Delete(checked);
    free(text);
  }
  cJSON_Delete(doc);
  store_resource_release(&row);
  fhir_patch_free(p);
  return rc;
}

int hvg_fsrv_patch(hvg_fsrv *s, const hvg_partner *who, const char *type,
                   const char *id, const char *patch, size_t patch_len,
                   int64_t if_match, int64_t now_ms, hvg_fres *r) {
  if (!fs__type_ok(r, type, fs__readable))
    return 0;
  fs__op op = {who,   type,      id,       NULL,  patch, patch_len,
               NULL,  if_match,  "push",   now_ms};
  return fs__in_tx(s, fs__patch_op, &op, r);
}

/* ---- creates: what partners send back ------------------------------------ */

/* Canonical field values (name -> text) for the program's export, as a
 * JSON object. */
static int fs__put(cJSON *o, const char *field, const char *v) {
  if (!v || !*v)
    return 1;
  return cJSON_AddStringToObject(o, field, v) != NULL;
}

/* The child a Reference names, as the program knows it: by identifier in
 * a program's child system, or a hosted Patient (the partner's own) that
 * carries such an identifier. *fp and child[] are set when known; *pat
 * (may be NULL) gets the hosted Patient's tree when there is one (the
 * caller deletes it). Returns 0, or HVG_ENOTFOUND (a literal reference to
 * a Patient the partner cannot see), or a store error. */
static int fs__child(hvg_fsrv *s, const hvg_partner *who, const cJSON *ref,
                     const fs__prog **fp, char *child, size_t cap,
                     cJSON **pat, hvg_err *e) {
  *fp = NULL;
  child[0] = '\0';
  if (pat)
    *pat = NULL;
  const cJSON *ident = cJSON_GetObjectItemCaseSensitive(ref, "identifier");
  const char *sys = fs__str(ident, "system"), *val = fs__str(ident, "value");
  if (sys && val && (*fp = fs__prog_of_child_system(s, sys)) != NULL) {
    snprintf(child, cap, "%s", val);
    return 0;
  }
  const char *lit = fs__str(ref, "reference");
  if (!lit || strncmp(lit, "Patient/", 8))
    return 0;
  store_resource row;
  int rc = store_resource_get(s->st, "Patient", lit + 8, &row, e);
  if (rc == 0 && (!row.partner || strcmp(row.partner, who->id))) {
    store_resource_release(&row);
    rc = HVG_ENOTFOUND;
  }
  if (rc)
    return rc;
  cJSON *t = fs__tree(&row);
  store_resource_release(&row);
  if (!t)
    return hvg_err_set(e, HVG_ENOMEM, NULL, NULL);
  const cJSON *ids = cJSON_GetObjectItemCaseSensitive(t, "identifier");
  for (size_t i = 0; i < s->n_progs && !*fp; i++) {
    const char *v = fs__ident_in(ids, s->progs[i].tf.sys_child);
    if (v) {
      *fp = &s->progs[i];
      snprintf(child, cap, "%s", v);
    }
  }
  if (pat)
    *pat = t;
  else
    cJSON_Delete(t);
  return 0;
}

/* The instrument of the program's catalogue an Observation.code names
 * (the instrument's own code or its panel), or NULL. */
static const hv_instrument *fs__instrument(const fs__prog *fp,
                                           const cJSON *code) {
  const cJSON *c;
  cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(code, "coding")) {
    const char *sys = fs__str(c, "system"), *cd = fs__str(c, "code");
    for (size_t i = 0; sys && cd && i < fp->p->cat->n_instruments; i++) {
      const hv_instrument *in = &fp->p->cat->instruments[i];
      if ((in->code.system && !strcmp(in->code.system, sys) &&
           !strcmp(in->code.code, cd)) ||
          (in->has_panel && in->panel.system &&
           !strcmp(in->panel.system, sys) && !strcmp(in->panel.code, cd)))
        return in;
    }
  }
  return NULL;
}

/* A number element's text: valueInteger, valueQuantity.value, or a
 * decimal (Raw); into out[cap]. 1 when present. */
static int fs__number(const cJSON *o, const char *const *keys, char *out,
                      size_t cap) {
  for (size_t i = 0; keys[i]; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
    if (cJSON_IsObject(v))
      v = cJSON_GetObjectItemCaseSensitive(v, "value");
    if (cJSON_IsRaw(v)) {
      snprintf(out, cap, "%s", v->valuestring);
      return 1;
    }
    if (cJSON_IsNumber(v)) {
      snprintf(out, cap, "%.15g", v->valuedouble);
      return 1;
    }
  }
  return 0;
}

/* The date (YYYY-MM-DD) of a dateTime/Period element, into out[11]. */
static int fs__date_of(const cJSON *o, const char *dt_key,
                       const char *period_key, char out[11]) {
  const char *v = fs__str(o, dt_key);
  if (!v && period_key)
    v = fs__str(cJSON_GetObjectItemCaseSensitive(o, period_key), "start");
  if (!v || strlen(v) < 10)
    return 0;
  snprintf(out, 11, "%.10s", v);
  return fhir_check_full_date(out);
}

/* What the export calls the partner: its NPI (or first organization id)
 * and name. */
static void fs__practice(cJSON *d, const hvg_partner *who) {
  const char *npi = who->n_org_ids ? who->org_ids[0] : NULL;
  for (size_t i = 0; i < who->n_org_ids; i++)
    if (hv_is_npi(who->org_ids[i])) {
      npi = who->org_ids[i];
      break;
    }
  fs__put(d, "practice.npi", npi);
  fs__put(d, "practice.name", who->name);
}

/* A well-child result (Observation) or visit (Encounter) for the program:
 * checked and turned into canonical fields. r a 422 when it is not one. */
static int fs__result(hvg_fsrv *s, const fs__op *op, const char *id,
                      const fs__prog **fpo, hvg_fres *r) {
  const cJSON *t = op->tree;
  int visit = !strcmp(op->type, "Encounter");
  const char *subj_key = "subject";
  hvg_err e;
  const fs__prog *fp;
  char child[STORE_KEY_MAX + 1];
  int rc = fs__child(s, op->who, cJSON_GetObjectItemCaseSensitive(t, subj_key),
                     &fp, child, sizeof child, NULL, &e);
  if (rc && rc != HVG_ENOTFOUND)
    return fs__internal(r, rc, &e);
  if (!fp || !child[0])
    return hvg_fres_fail(r, 422, "business-rule",
                         visit ? "Encounter.subject" : "Observation.subject",
                         "the subject must be a child of a home visiting "
                         "program: a reference with the program's child "
                         "identifier (system ending in \"child\"), as "
                         "the gateway sent it");
  *fpo = fp;
  cJSON *d = cJSON_CreateObject();
  if (!d)
    return fs__internal(r, HVG_ENOMEM, NULL);
  char rid[STORE_KEY_MAX + 1];
  const char *own = fs__str(
      cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t, "identifier"), 0),
      "value");
  snprintf(rid, sizeof rid, "%s", own ? own : id);
  char date[11] = "";
  const hv_instrument *in = NULL;
  int ok = fs__put(d, "record_id", rid) && fs__put(d, "child.id", child);
  fs__practice(d, op->who);
  if (visit) {
    int wc = 0;
    const cJSON *ty, *c;
    cJSON_ArrayForEach(ty, cJSON_GetObjectItemCaseSensitive(t, "type"))
      cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(ty, "coding"))
        wc |= fs__str(c, "system") && !strcmp(fs__str(c, "system"), SNOMED) &&
              fs__str(c, "code") && !strcmp(fs__str(c, "code"), WELL_CHILD_VISIT);
    if (!wc) {
      cJSON_Delete(d);
      return hvg_fres_fail(r, 422, "business-rule", "Encounter.type",
                           "only well-child visits are taken here: "
                           "Encounter.type must have SNOMED CT %s (Well "
                           "child visit)",
                           WELL_CHILD_VISIT);
    }
    if (!fs__date_of(t, "_none", "period", date)) {
      cJSON_Delete(d);
      return hvg_fres_fail(r, 422, "required", "Encounter.period.start",
                           "the visit's date (period.start) is required");
    }
    ok = ok && fs__put(d, "well_child.visit_date", date);
  } else {
    in = fs__instrument(fp, cJSON_GetObjectItemCaseSensitive(t, "code"));
    if (!in) {
      cJSON_Delete(d);
      return hvg_fres_fail(r, 422, "business-rule", "Observation.code",
                           "the code names no instrument of program %s's "
                           "catalogue (use the instrument's code as the "
                           "gateway sends it)",
                           fp->p->id);
    }
    if (!fs__date_of(t, "effectiveDateTime", "effectivePeriod", date)) {
      cJSON_Delete(d);
      return hvg_fres_fail(r, 422, "required", "Observation.effective[x]",
                           "the screening's date (effective[x]) is "
                           "required");
    }
    static const char *const vkeys[] = {"valueInteger", "valueQuantity",
                                        NULL};
    char score[64];
    int has_score = fs__number(t, vkeys, score, sizeof score);
    if (has_score && in->has_score) {
      double v = strtod(score, NULL);
      if (v < in->score_min || v > in->score_max) {
        cJSON_Delete(d);
        return hvg_fres_fail(r, 422, "value", "Observation.value[x]",
                             "%s total %s is out of range (%g-%g)", in->id,
                             score, in->score_min, in->score_max);
      }
    }
    ok = ok && fs__put(d, "screening.instrument", in->id) &&
         fs__put(d, "screening.date", date) &&
         fs__put(d, "screening.subject",
                 in->subject == HV_SUBJ_CAREGIVER ? "caregiver" : "child") &&
         (!has_score || fs__put(d, "screening.total_score", score)) &&
         fs__put(d, "well_child.visit_date", date);
    static const char *const domain_fields[HV_DOMAIN_COUNT] = {
        "screening.domain.communication", "screening.domain.gross_motor",
        "screening.domain.fine_motor", "screening.domain.problem_solving",
        "screening.domain.personal_social"};
    static const char *const ckeys[] = {"valueInteger", "valueQuantity",
                                        "valueDecimal", NULL};
    const cJSON *comp;
    cJSON_ArrayForEach(comp, cJSON_GetObjectItemCaseSensitive(t, "component")) {
      const cJSON *cc = cJSON_GetObjectItemCaseSensitive(comp, "code");
      const cJSON *c;
      char v[64];
      cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(cc, "coding")) {
        const char *cd = fs__str(c, "code");
        for (size_t k = 0; cd && k < in->n_domains && k < HV_DOMAIN_COUNT; k++)
          if (!strcmp(cd, in->domains[k].code.code) &&
              fs__number(comp, ckeys, v, sizeof v))
            ok = ok && fs__put(d, domain_fields[k], v);
        if (cd && !strcmp(cd, "questionnaire-interval") &&
            fs__number(comp, ckeys, v, sizeof v))
          ok = ok && fs__put(d, "screening.age_interval_months", v);
      }
    }
    /* the result as the practice read it, else from the catalogue cutoff */
    const char *res = NULL;
    const cJSON *ic;
    cJSON_ArrayForEach(
        ic, cJSON_GetObjectItemCaseSensitive(
                cJSON_GetArrayItem(
                    cJSON_GetObjectItemCaseSensitive(t, "interpretation"), 0),
                "coding")) {
      const char *cd = fs__str(ic, "code");
      if (cd && (!strcmp(cd, "POS") || !strcmp(cd, "A") || !strcmp(cd, "H")))
        res = "positive";
      else if (cd && (!strcmp(cd, "NEG") || !strcmp(cd, "N")))
        res = "negative";
    }
    if (!res && has_score && in->rule == HV_RULE_TOTAL_AT_LEAST)
      res = strtod(score, NULL) >= in->cutoff ? "positive" : "negative";
    ok = ok && fs__put(d, "screening.result", res);
  }
  char *data = ok ? cJSON_PrintUnformatted(d) : NULL;
  cJSON_Delete(d);
  if (!data)
    return fs__internal(r, HVG_ENOMEM, NULL);
  char src[200];
  snprintf(src, sizeof src, "%s/%s", op->type, id);
  store_result sr = {0,
                     fp->p->id,
                     op->who->id,
                     src,
                     visit ? "visit" : "screening",
                     child,
                     in ? in->id : NULL,
                     date,
                     data,
                     strlen(data),
                     0,
                     0,
                     NULL};
  int changed = 0;
  rc = store_result_put(s->st, &sr, op->now, &changed, &e);
  if (!rc && changed)
    rc = store_event_add(s->st, fp->p->id, "result", src, op->now, NULL, &e);
  free(data);
  return rc ? fs__internal(r, rc, &e) : 0;
}

/* A referral to a home visiting program (ServiceRequest): checked, and the
 * referral created on the program's side with what its export needs. */
static int fs__referral_in(hvg_fsrv *s, const fs__op *op, const char *id,
                           const fs__prog **fpo, hvg_fres *r) {
  const cJSON *t = op->tree;
  const cJSON *perf = cJSON_GetArrayItem(
      cJSON_GetObjectItemCaseSensitive(t, "performer"), 0);
  const fs__prog *fp = perf ? fs__prog_of_ref(s, perf) : NULL;
  if (!fp)
    return hvg_fres_fail(r, 422, "business-rule", "ServiceRequest.performer",
                         "performer must name a home visiting program: "
                         "Organization/{program id}, or an identifier with "
                         "one of the program's organization ids");
  *fpo = fp;
  hvg_err e;
  const fs__prog *cfp;
  char child[STORE_KEY_MAX + 1];
  cJSON *pat = NULL;
  int rc = fs__child(s, op->who, cJSON_GetObjectItemCaseSensitive(t, "subject"),
                     &cfp, child, sizeof child, &pat, &e);
  if (rc == HVG_ENOTFOUND || (!rc && !pat && !child[0]))
    return hvg_fres_fail(r, 422, "business-rule", "ServiceRequest.subject",
                         "the subject must be a Patient created here (in "
                         "the same transaction) or a child of the program "
                         "by identifier");
  if (rc)
    return fs__internal(r, rc, &e);
  if (cfp && cfp != fp) {
    cJSON_Delete(pat);
    return hvg_fres_fail(r, 422, "business-rule", "ServiceRequest.subject",
                         "the child belongs to another program than the "
                         "performer");
  }
  cJSON *d = cJSON_CreateObject();
  const char *own = fs__str(
      cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t, "identifier"), 0),
      "value");
  char date[11] = "", today[11];
  fhir_date_utc((time_t)(op->now / 1000), today);
  if (!fs__date_of(t, "authoredOn", NULL, date))
    snprintf(date, sizeof date, "%s", today);
  const char *prio = fs__str(t, "priority");
  const char *urgency = !prio ? NULL
                        : !strcmp(prio, "stat") ? "asap"
                                                : prio; /* routine urgent asap */
  const hv_service *svc = NULL;
  const cJSON *c;
  cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(
                            cJSON_GetObjectItemCaseSensitive(t, "code"),
                            "coding")) {
    const char *sys = fs__str(c, "system"), *cd = fs__str(c, "code");
    for (size_t i = 0; !svc && sys && cd && i < fp->p->cat->n_services; i++)
      if (fp->p->cat->services[i].code.system &&
          !strcmp(fp->p->cat->services[i].code.system, sys) &&
          !strcmp(fp->p->cat->services[i].code.code, cd))
        svc = &fp->p->cat->services[i];
  }
  const cJSON *note0 = cJSON_GetArrayItem(
      cJSON_GetObjectItemCaseSensitive(t, "note"), 0);
  const cJSON *name0 = cJSON_GetArrayItem(
      cJSON_GetObjectItemCaseSensitive(pat, "name"), 0);
  char given[256] = "";
  const cJSON *g;
  cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(name0, "given")) {
    if (cJSON_IsString(g)) {
      size_t l = strlen(given);
      snprintf(given + l, sizeof given - l, "%s%s", l ? " " : "",
               g->valuestring);
    }
  }
  const char *sex = fs__str(pat, "gender");
  int ok = d && fs__put(d, "record_id", own ? own : id) &&
           fs__put(d, "referral.direction", "inbound") &&
           fs__put(d, "referral.date", date) &&
           fs__put(d, "referral.service_type", svc ? svc->id : NULL) &&
           fs__put(d, "referral.from_org_id",
                   op->who->n_org_ids ? op->who->org_ids[0] : op->who->id) &&
           fs__put(d, "referral.from_org_name", op->who->name) &&
           fs__put(d, "referral.to_org_id", fp->p->id) &&
           fs__put(d, "referral.urgency", urgency) &&
           fs__put(d, "referral.notes", fs__str(note0, "text")) &&
           fs__put(d, "child.id", child) && fs__put(d, "child.given", given) &&
           fs__put(d, "child.family", fs__str(name0, "family")) &&
           fs__put(d, "child.birth_date", fs__str(pat, "birthDate")) &&
           fs__put(d, "child.sex", sex);
  cJSON_Delete(pat);
  char *data = ok ? cJSON_PrintUnformatted(d) : NULL;
  cJSON_Delete(d);
  if (!data)
    return fs__internal(r, HVG_ENOMEM, NULL);
  store_referral ref;
  memset(&ref, 0, sizeof ref);
  ref.program = fp->p->id;
  ref.referral_id = id;
  ref.partner = op->who->id;
  ref.status = "requested";
  ref.direction = "inbound";
  ref.hv_status = "referred";
  ref.data = data;
  ref.data_len = strlen(data);
  rc = store_referral_upsert(s->st, &ref, op->now, &e);
  if (!rc)
    rc = store_event_add(s->st, fp->p->id, "referral", id, op->now, NULL, &e);
  free(data);
  return rc ? fs__internal(r, rc, &e) : 0;
}

/* A Task for a referral to a program: it must fulfil a ServiceRequest the
 * partner created here, be owned by that program and start as the
 * requester starts it. */
static int fs__task_in(hvg_fsrv *s, const fs__op *op, const char *id,
                       store_resource *row, hvg_fres *r) {
  const cJSON *t = op->tree;
  const char *focus = fs__ref(t, "focus");
  hvg_err e;
  if (!focus || strncmp(focus, "ServiceRequest/", 15))
    return hvg_fres_fail(r, 422, "business-rule", "Task.focus",
                         "Task.focus must reference the ServiceRequest of "
                         "the referral, created here first");
  store_resource sr;
  int rc = fs__visible(s, op->who, "ServiceRequest", focus + 15, &sr, r);
  if (rc == HVG_ENOTFOUND)
    return hvg_fres_fail(r, 422, "business-rule", "Task.focus",
                         "%.80s is not a ServiceRequest you created here",
                         focus);
  if (rc)
    return rc;
  const fs__prog *fp = fs__prog_by_id(s, sr.program);
  const fs__prog *owner = fs__prog_of_ref(
      s, cJSON_GetObjectItemCaseSensitive(t, "owner"));
  const char *status = fs__str(t, "status");
  store_referral ref;
  memset(&ref, 0, sizeof ref);
  if (!fp || owner != fp)
    hvg_fres_fail(r, 422, "business-rule", "Task.owner",
                  "Task.owner must be the program the ServiceRequest is "
                  "for");
  else if (!status || (strcmp(status, "requested") && strcmp(status, "draft")))
    hvg_fres_fail(r, 422, "business-rule", "Task.status",
                  "a referral's Task starts as requested (or draft)");
  else if ((rc = store_referral_get(s->st, sr.program, sr.referral_id, &ref,
                                    &e)) != 0)
    fs__internal(r, rc, &e);
  else if (ref.task_id)
    hvg_fres_fail(r, 422, "business-rule", "Task.focus",
                  "%.80s already has Task/%.64s", focus, ref.task_id);
  if (r->status >= 300) {
    store_referral_release(&ref);
    store_resource_release(&sr);
    return rc;
  }
  row->program = fp->p->id;
  row->referral_id = sr.referral_id;
  store_referral up;
  memset(&up, 0, sizeof up);
  up.program = fp->p->id;
  up.referral_id = sr.referral_id;
  up.task_id = id;
  rc = store_referral_upsert(s->st, &up, op->now, &e);
  if (!rc && strcmp(status, ref.status)) {
    char actor[160];
    snprintf(actor, sizeof actor, "partner:%s", op->who->id);
    rc = fs__transition(s, fp->p->id, sr.referral_id, NULL, status, actor,
                        op->source, NULL, NULL, op->now, &e);
  }
  store_referral_release(&ref);
  if (rc) {
    store_resource_release(&sr);
    return fs__internal(r, rc, &e);
  }
  /* row borrows program and referral strings: keep sr until stored */
  row->mem_ = sr.mem_;
  return 0;
}

static const char *const fs__creatable[] = {"Observation", "Encounter",
                                            "ServiceRequest", "Task",
                                            "Patient", NULL};

/* Create op->tree as op->type/id (id chosen by the caller) for op->who,
 * inside the caller's transaction. */
static int fs__create_as(hvg_fsrv *s, const fs__op *op, const char *id,
                         hvg_fres *r) {
  const char *rt = fs__str(op->tree, "resourceType");
  if (!rt || strcmp(rt, op->type))
    return hvg_fres_fail(r, 400, "invalid", "resourceType",
                         "the body is a %.64s, the URL names a %.64s",
                         rt ? rt : "(none)", op->type);
  hvg_err e;
  if (op->if_none_exist) { /* conditional create on an identifier */
    /* a query: percent-decoded, then the token escapes \| \, \$ \\ */
    char cond[2 * STORE_KEY_MAX + 16], ident[2 * STORE_KEY_MAX + 16];
    hvg_fparam cp[2];
    snprintf(cond, sizeof cond, "%s", op->if_none_exist);
    int np = hvg_fsrv_query(cond, cp, 2);
    size_t o = 0;
    for (const char *c = np == 1 ? cp[0].value : ""; *c; c++)
      ident[o++] = *c == '\\' && c[1] ? *++c : *c;
    ident[o] = '\0';
    if (np != 1 || strcmp(cp[0].name, "identifier") || !strchr(ident, '|'))
      return hvg_fres_fail(r, 400, "not-supported", "If-None-Exist",
                           "only identifier=system|value is supported");
    store_resource_query q;
    memset(&q, 0, sizeof q);
    q.type = op->type;
    q.partner = op->who->id;
    q.identifier = ident;
    store_resource rows[2];
    size_t n = 0;
    int rc = store_resource_search(s->st, &q, rows, 2, &n, NULL, &e);
    if (rc)
      return fs__internal(r, rc, &e);
    if (n > 1) {
      for (size_t i = 0; i < n; i++)
        store_resource_release(&rows[i]);
      return hvg_fres_fail(r, 412, "duplicate", "If-None-Exist",
                           "more than one %.64s has that identifier",
                           op->type);
    }
    if (n == 1) { /* exists: nothing is created */
      rc = fs__answer_row(r, 200, &rows[0]);
      store_resource_release(&rows[0]);
      return rc;
    }
  }
  store_resource row;
  memset(&row, 0, sizeof row);
  row.type = op->type;
  row.id = id;
  row.partner = op->who->id;
  const fs__prog *fp = NULL;
  int rc = 0;
  if (!strcmp(op->type, "Observation") || !strcmp(op->type, "Encounter"))
    rc = fs__result(s, op, id, &fp, r);
  else if (!strcmp(op->type, "ServiceRequest"))
    rc = fs__referral_in(s, op, id, &fp, r);
  else if (!strcmp(op->type, "Task"))
    rc = fs__task_in(s, op, id, &row, r);
  if (rc || r->status >= 300)
    return rc;
  if (fp) {
    row.program = fp->p->id;
    if (!strcmp(op->type, "ServiceRequest"))
      row.referral_id = id;
  }
  void *keep = row.mem_;
  row.mem_ = NULL;
  rc = fs__store(s, &row, op->tree, 0, op->now, &e);
  if (!rc)
    rc = fs__answer_tree(r, 201, op->type, id, op->tree, row.version,
                         row.updated_ms);
  else if (rc == HVG_ESTATE)
    rc = hvg_fres_fail(r, 409, "duplicate", NULL, "%s/%s exists", op->type,
                       id);
  else
    fs__internal(r, rc, &e);
  free(keep);
  return rc;
}

static int fs__create_op(hvg_fsrv *s, const fs__op *op, hvg_fres *r) {
  char id[37];
  if (fs__new_id(id))
    return fs__internal(r, HVG_ENOMEM, NULL);
  return fs__create_as(s, op, id, r);
}

int hvg_fsrv_create(hvg_fsrv *s, const hvg_partner *who, const char *type,
                    const cJSON *tree, const char *if_none_exist,
                    int64_t now_ms, hvg_fres *r) {
  if (!fs__type_ok(r, type, fs__creatable))
    return 0;
  fs__op op = {who,          type,   NULL, tree, NULL, 0,
               if_none_exist, 0,      "push", now_ms};
  return fs__in_tx(s, fs__create_op, &op, r);
}

/* ---- Bundles: transaction and batch -------------------------------------- */

/* Rewrites every "reference" in t equal to a placeholder (urn:uuid:...)
 * of map into the resource it names. */
typedef struct fs__urn {
  const char *urn;
  char ref[128]; /* "Type/id" */
  char id[37];
} fs__urn;

static void fs__rewrite(cJSON *t, const fs__urn *map, size_t n) {
  cJSON *c;
  cJSON_ArrayForEach(c, t) {
    if (cJSON_IsString(c) && c->string && !strcmp(c->string, "reference")) {
      for (size_t i = 0; i < n; i++)
        if (!strcasecmp(c->valuestring, map[i].urn)) {
          cJSON_SetValuestring(c, map[i].ref);
          break;
        }
    } else if (cJSON_IsObject(c) || cJSON_IsArray(c)) {
      fs__rewrite(c, map, n);
    }
  }
}

/* Processing order of a transaction's entries (http.html): creates of what
 * others point at first, then updates, then reads. */
static int fs__rank(const char *method, const char *type) {
  static const char *const order[] = {"Patient", "Encounter", "Observation",
                                      "ServiceRequest", "Task"};
  if (!strcmp(method, "POST")) {
    for (int i = 0; i < 5; i++)
      if (type && !strcmp(type, order[i]))
        return i;
    return 5;
  }
  return !strcmp(method, "GET") ? 8 : 7;
}

/* Decodes base64 (RFC 4648, padding optional) of a Binary's data into a
 * malloc'd buffer; NULL on bad input or no memory. */
static char *fs__unbase64(const char *in, size_t *len) {
  size_t n = strlen(in);
  char *out = malloc(n / 4 * 3 + 4);
  if (!out)
    return NULL;
  unsigned acc = 0;
  int bits = 0;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)in[i], v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    else if (c == '=' && i + 2 >= n)
      break;
    else {
      free(out);
      return NULL;
    }
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (char)((acc >> bits) & 0xff);
    }
  }
  out[o] = '\0';
  *len = o;
  return out;
}

/* "W/\"3\"" (or "3") -> 3; 0 when absent or not a version. */
static int64_t fs__etag_version(const char *v) {
  if (!v)
    return 0;
  if (!strncmp(v, "W/", 2))
    v += 2;
  if (*v == '"')
    v++;
  char *end;
  long long n = strtoll(v, &end, 10);
  return n > 0 && (*end == '"' || !*end) ? (int64_t)n : 0;
}

int hvg_fsrv_query(char *buf, hvg_fparam *params, size_t max) {
  size_t n = 0;
  for (char *p = buf; p && *p;) {
    char *amp = strchr(p, '&');
    if (amp)
      *amp = '\0';
    char *eq = strchr(p, '=');
    if (*p) {
      if (n == max)
        return -1;
      params[n].name = p;
      params[n].value = eq ? eq + 1 : p + strlen(p); /* in buf: written */
      if (eq)
        *eq = '\0';
      char *w = (char *)params[n].value; /* decode in place */
      for (const char *q = params[n].value; *q; q++) {
        if (*q == '%' && q[1] && q[2]) {
          char hx[3] = {q[1], q[2], 0};
          char *e2;
          long c = strtol(hx, &e2, 16);
          if (!*e2 && c > 0) {
            *w++ = (char)c;
            q += 2;
            continue;
          }
        }
        *w++ = *q == '+' ? ' ' : *q;
      }
      *w = '\0';
      n++;
    }
    p = amp ? amp + 1 : NULL;
  }
  return (int)n;
}

/* One entry of a Bundle: dispatch on request.method and url. `tree` is
 * the entry's resource (references already rewritten) and `id` the id a
 * transaction chose for a create. */
static int fs__entry(hvg_fsrv *s, const hvg_partner *who, const cJSON *req,
                     const cJSON *res, const char *id, const char *base,
                     int64_t now, hvg_fres *r) {
  const char *method = fs__str(req, "method"), *url = fs__str(req, "url");
  if (!method || !url)
    return hvg_fres_fail(r, 400, "required", "request",
                         "entry.request needs method and url");
  char path[512];
  snprintf(path, sizeof path, "%s", url);
  char *q = strchr(path, '?');
  if (q)
    *q++ = '\0';
  char *slash = strchr(path, '/');
  const char *type = path, *rid = NULL;
  if (slash) {
    *slash = '\0';
    rid = slash + 1;
  }
  fs__op op = {who, type, rid, res, NULL, 0, fs__str(req, "ifNoneExist"),
               fs__etag_version(fs__str(req, "ifMatch")), "push", now};
  if (!strcmp(method, "POST") && !rid && !q) {
    if (!fs__type_ok(r, type, fs__creatable))
      return 0;
    if (!res)
      return hvg_fres_fail(r, 400, "required", "resource",
                           "a create needs entry.resource");
    if (id)
      return fs__create_as(s, &op, id, r);
    return fs__create_op(s, &op, r);
  }
  if (!strcmp(method, "PUT") && rid && !q) {
    if (!fs__type_ok(r, type, fs__readable))
      return 0;
    if (!res)
      return hvg_fres_fail(r, 400, "required", "resource",
                           "an update needs entry.resource");
    return fs__update_op(s, &op, r);
  }
  if (!strcmp(method, "PATCH") && rid && !q) {
    if (!fs__type_ok(r, type, fs__readable))
      return 0;
    const char *ct = fs__str(res, "contentType");
    const char *data = fs__str(res, "data");
    const char *rt = fs__str(res, "resourceType");
    if (!rt || strcmp(rt, "Binary") || !ct ||
        strncmp(ct, "application/json-patch+json", 27) || !data)
      return hvg_fres_fail(r, 400, "not-supported", "resource",
                           "a PATCH entry needs a Binary with contentType "
                           "application/json-patch+json and the patch as "
                           "base64 data");
    size_t len = 0;
    char *patch = fs__unbase64(data, &len);
    if (!patch)
      return hvg_fres_fail(r, 400, "invalid", "resource.data",
                           "the Binary's data is not base64");
    op.text = patch;
    op.text_len = len;
    int rc = fs__patch_op(s, &op, r);
    free(patch);
    return rc;
  }
  if (!strcmp(method, "GET")) {
    if (rid && !q)
      return hvg_fsrv_read(s, who, type, rid, r);
    if (!rid) {
      hvg_fparam params[HVG_FSRV_MAX_PARAMS];
      int n = q ? hvg_fsrv_query(q, params, HVG_FSRV_MAX_PARAMS) : 0;
      if (n < 0)
        return hvg_fres_fail(r, 400, "too-costly", "request.url",
                             "too many search parameters");
      return hvg_fsrv_search(s, who, type, params, (size_t)n, base, r);
    }
  }
  return hvg_fres_fail(r, 405, "not-supported", "request",
                       "%.10s %.200s is not an interaction this server "
                       "supports in a Bundle",
                       method, url);
}

/* The entry.response of an outcome. */
static cJSON *fs__response(const hvg_fres *r) {
  cJSON *o = cJSON_CreateObject();
  if (!o)
    return NULL;
  char st[64];
  const char *reason = r->status == 200   ? " OK"
                       : r->status == 201 ? " Created"
                                          : "";
  snprintf(st, sizeof st, "%d%s", r->status, reason);
  int ok = cJSON_AddStringToObject(o, "status", st) != NULL;
  if (ok && r->location[0])
    ok = cJSON_AddStringToObject(o, "location", r->location) != NULL;
  if (ok && r->version) {
    char et[40], at[32];
    snprintf(et, sizeof et, "W/\"%lld\"", (long long)r->version);
    fhir_instant_format(r->updated_ms, at);
    ok = cJSON_AddStringToObject(o, "etag", et) &&
         cJSON_AddStringToObject(o, "lastModified", at);
  }
  if (ok && r->status >= 400) {
    cJSON *oo = cJSON_AddObjectToObject(o, "outcome");
    cJSON *arr = oo ? cJSON_AddArrayToObject(oo, "issue") : NULL;
    cJSON *iss = arr ? cJSON_CreateObject() : NULL;
    ok = iss && cJSON_AddStringToObject(oo, "resourceType",
                                        "OperationOutcome") &&
         cJSON_AddStringToObject(iss, "severity", "error") &&
         cJSON_AddStringToObject(iss, "code", r->issue ? r->issue
                                                       : "processing") &&
         cJSON_AddStringToObject(iss, "diagnostics", r->diagnostics);
    if (ok && r->expression[0]) {
      cJSON *ex = cJSON_AddArrayToObject(iss, "expression");
      ok = ex && cJSON_AddItemToArray(ex, cJSON_CreateString(r->expression));
    }
    if (iss)
      cJSON_AddItemToArray(arr, iss);
  }
  if (!ok) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

int hvg_fsrv_bundle(hvg_fsrv *s, const hvg_partner *who, const cJSON *tree,
                    const char *base, int64_t now_ms, hvg_fres *r) {
  const char *rt = fs__str(tree, "resourceType");
  const char *type = fs__str(tree, "type");
  if (!rt || strcmp(rt, "Bundle"))
    return hvg_fres_fail(r, 400, "invalid", "resourceType",
                         "POST to the base takes a Bundle");
  int tx = type && !strcmp(type, "transaction");
  if (!tx && !(type && !strcmp(type, "batch")))
    return hvg_fres_fail(r, 400, "invalid", "Bundle.type",
                         "the Bundle must be a transaction or a batch");
  const cJSON *entries = cJSON_GetObjectItemCaseSensitive(tree, "entry");
  int n = cJSON_GetArraySize(entries);
  if (n > FS__BUNDLE_MAX_ENTRIES)
    return hvg_fres_fail(r, 400, "too-costly", "Bundle.entry",
                         "at most %d entries per Bundle",
                         FS__BUNDLE_MAX_ENTRIES);
  cJSON *work = cJSON_Duplicate(entries, 1); /* references get rewritten */
  fs__urn *map = calloc((size_t)n + 1, sizeof *map);
  int *order = calloc((size_t)n + 1, sizeof *order);
  hvg_fres *res = calloc((size_t)n + 1, sizeof *res);
  cJSON *out = cJSON_CreateObject();
  cJSON *oentries = NULL;
  int rc = 0;
  if (!work && n) {
    rc = HVG_ENOMEM;
  } else if (!map || !order || !res || !out ||
             !cJSON_AddStringToObject(out, "resourceType", "Bundle") ||
             !cJSON_AddStringToObject(out, "type", tx ? "transaction-response"
                                                      : "batch-response") ||
             !(oentries = cJSON_AddArrayToObject(out, "entry"))) {
    rc = HVG_ENOMEM;
  }
  size_t nmap = 0;
  /* a transaction's creates get their ids first, so that the entries'
   * urn:uuid references can name them */
  for (int i = 0; !rc && tx && i < n; i++) {
    const cJSON *e1 = cJSON_GetArrayItem(work, i);
    const char *full = fs__str(e1, "fullUrl");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(e1, "request");
    const char *m = fs__str(req, "method"), *u = fs__str(req, "url");
    if (m && !strcmp(m, "POST") && u && !strchr(u, '/') &&
        !strchr(u, '?') && full && !strncasecmp(full, "urn:uuid:", 9)) {
      fs__urn *x = &map[nmap++];
      x->urn = full;
      if (fs__new_id(x->id))
        rc = HVG_ENOMEM;
      snprintf(x->ref, sizeof x->ref, "%.60s/%s", u, x->id);
    }
  }
  for (int i = 0; !rc && tx && nmap && i < n; i++)
    fs__rewrite(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(work, i),
                                                 "resource"),
                map, nmap);
  for (int i = 0; i < n; i++)
    order[i] = i;
  if (tx) /* stable sort by processing rank */
    for (int i = 1; i < n; i++)
      for (int j = i; j > 0; j--) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(work, order[j - 1]), "request");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(work, order[j]), "request");
        const char *ma = fs__str(a, "method"), *mb = fs__str(b, "method");
        const char *ua = fs__str(a, "url"), *ub = fs__str(b, "url");
        if (fs__rank(ma ? ma : "", ua) <= fs__rank(mb ? mb : "", ub))
          break;
        int t = order[j];
        order[j] = order[j - 1];
        order[j - 1] = t;
      }
  hvg_err e;
  if (!rc && tx && (rc = store_tx_begin(s->st, &e)) != 0) {
    free(map);
    free(order);
    free(res);
    cJSON_Delete(out);
    cJSON_Delete(work);
    return fs__internal(r, rc, &e);
  }
  int failed = -1;
  for (int k = 0; !rc && k < n && failed < 0; k++) {
    int i = order[k];
    const cJSON *e1 = cJSON_GetArrayItem(work, i);
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(e1, "request");
    const cJSON *resource = cJSON_GetObjectItemCaseSensitive(e1, "resource");
    const char *id = NULL;
    if (tx) { /* the id chosen above for this create, if any */
      const char *full = fs__str(e1, "fullUrl");
      for (size_t x = 0; full && x < nmap; x++)
        if (!strcmp(map[x].urn, full))
          id = map[x].id;
    }
    const char *method = fs__str(req, "method");
    res[i].minimal = !method || strcmp(method, "GET"); /* answers: headers */
    if (tx) {
      rc = fs__entry(s, who, req, resource, id, base, now_ms, &res[i]);
    } else { /* a batch entry is its own transaction */
      if ((rc = store_tx_begin(s->st, &e)) != 0) {
        fs__internal(&res[i], rc, &e);
        break;
      }
      rc = fs__entry(s, who, req, resource, NULL, base, now_ms, &res[i]);
      int trc = store_tx_end(s->st, rc == 0 && res[i].status < 300, &e);
      if (!rc && trc)
        rc = fs__internal(&res[i], trc, &e);
      if (rc == HVG_EIO || rc == HVG_ENOMEM) /* the entry reports it */
        rc = res[i].status ? 0 : rc;
    }
    if (!rc && tx && res[i].status >= 300)
      failed = i;
  }
  if (tx && !rc && failed < 0)
    rc = store_tx_end(s->st, 1, &e) ? fs__internal(r, HVG_EIO, &e) : 0;
  else if (tx)
    store_tx_end(s->st, 0, &e);
  if (rc) {
    if (!r->status)
      fs__internal(r, rc, NULL);
  } else if (failed >= 0) { /* all or nothing: the failing entry's answer */
    *r = res[failed];
    res[failed].body = NULL;
    char d[sizeof r->diagnostics];
    snprintf(d, sizeof d, "Bundle.entry[%d]: %.480s", failed,
             r->diagnostics);
    memcpy(r->diagnostics, d, sizeof d);
  } else {
    for (int i = 0; i < n; i++) {
      cJSON *oe = cJSON_CreateObject();
      cJSON *resp = fs__response(&res[i]);
      if (!oe || !resp) {
        cJSON_Delete(oe);
        cJSON_Delete(resp);
        rc = fs__internal(r, HVG_ENOMEM, NULL);
        break;
      }
      const char *m = fs__str(cJSON_GetObjectItemCaseSensitive(
                                  cJSON_GetArrayItem(work, i), "request"),
                              "method");
      if (res[i].body && m && !strcmp(m, "GET")) { /* reads return data */
        cJSON_AddItemToObject(oe, "resource", res[i].body);
        res[i].body = NULL;
      }
      cJSON_AddItemToObject(oe, "response", resp);
      cJSON_AddItemToArray(oentries, oe);
    }
    if (!rc) {
      cJSON_Delete(r->body);
      r->body = out;
      out = NULL;
      r->status = 200;
    }
  }
  for (int i = 0; res && i < n; i++)
    hvg_fres_reset(&res[i]);
  free(res);
  free(map);
  free(order);
  cJSON_Delete(out);
  cJSON_Delete(work);
  return rc;
}

/* ---- Tasks read back from a partner's server ---------------------------- */

/* Elements of a Task that the receiver keeps up to date. */
static const char *const fs__progress_elements[] = {
    "status", "statusReason", "businessStatus", "output", "lastModified",
    "executionPeriod", "note", NULL};

/* Copies the receiver's progress elements of src into dst (removing those
 * src lacks). 1 when dst changed, 0 when not, -1 out of memory. */
static int fs__copy_progress(cJSON *dst, const cJSON *src) {
  int changed = 0;
  for (size_t i = 0; fs__progress_elements[i]; i++) {
    const char *k = fs__progress_elements[i];
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(src, k);
    cJSON *old = cJSON_GetObjectItemCaseSensitive(dst, k);
    if (!v && old) {
      cJSON_DeleteItemFromObjectCaseSensitive(dst, k);
      changed = 1;
    } else if (v && !(old && fhir_json_equal(old, v))) {
      cJSON *c = cJSON_Duplicate(v, 1);
      if (!c)
        return -1;
      if (old)
        cJSON_ReplaceItemInObjectCaseSensitive(dst, k, c);
      else
        cJSON_AddItemToObject(dst, k, c);
      changed = 1;
    }
  }
  return changed;
}

/* 1 when the tree is a resource fhir_json_parse accepts. */
static int fs__valid(const cJSON *t) {
  char *text = cJSON_PrintUnformatted(t);
  cJSON *back = NULL;
  hvg_err e;
  int ok = text && !fhir_json_parse(text, strlen(text), FS__MAX_BODY, &back,
                                    &e);
  cJSON_Delete(back);
  free(text);
  return ok;
}

/* Updates the hosted Task of a referral with what the receiver changed. */
static int fs__host_progress(hvg_fsrv *s, const char *task_id,
                             const cJSON *src, int64_t now, int *changed,
                             hvg_err *e) {
  *changed = 0;
  if (!task_id)
    return 0;
  store_resource row;
  int rc = store_resource_get(s->st, "Task", task_id, &row, e);
  if (rc == HVG_ENOTFOUND)
    return 0;
  if (rc)
    return rc;
  cJSON *t = NULL;
  if (fhir_json_parse(row.body, row.body_len, FS__MAX_BODY, &t, e)) {
    store_resource_release(&row);
    return HVG_EIO;
  }
  int c = fs__copy_progress(t, src);
  if (c > 0 && !fs__valid(t)) {
    /* what the partner's server put there is not valid R4 for us to
     * serve: keep its status only */
    cJSON_Delete(t);
    t = NULL;
    c = fhir_json_parse(row.body, row.body_len, FS__MAX_BODY, &t, e) ? -1 : 0;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(src, "status");
    cJSON *old = cJSON_GetObjectItemCaseSensitive(t, "status");
    if (!c && cJSON_IsString(st) && old &&
        strcmp(old->valuestring, st->valuestring)) {
      cJSON_SetValuestring(old, st->valuestring);
      c = 1;
    }
  }
  if (c < 0)
    rc = hvg_err_set(e, HVG_ENOMEM, NULL, NULL);
  else if (c)
    rc = fs__store(s, &row, t, row.version, now, e);
  *changed = c > 0;
  cJSON_Delete(t);
  store_resource_release(&row);
  return rc;
}

static int fs__remote_op(hvg_fsrv *s, const fs__op *op,
                         hvg_remote_outcome *outcome, hvg_fres *r) {
  const cJSON *task = op->tree;
  const fs__prog *fp = NULL;
  const char *rid = NULL;
  const cJSON *ids = cJSON_GetObjectItemCaseSensitive(task, "identifier");
  for (size_t i = 0; !rid && i < s->n_progs; i++)
    if ((rid = fs__ident_in(ids, s->progs[i].tf.sys_task)) != NULL)
      fp = &s->progs[i];
  *outcome = HVG_REMOTE_IGNORED;
  if (!rid) {
    snprintf(r->diagnostics, sizeof r->diagnostics,
             "not the Task of a referral from a program");
    return 0;
  }
  hvg_err e;
  store_referral ref;
  int rc = store_referral_get(s->st, fp->p->id, rid, &ref, &e);
  if (rc == HVG_ENOTFOUND || (!rc && (!ref.partner ||
                                      strcmp(ref.partner, op->who->id)))) {
    if (!rc)
      store_referral_release(&ref);
    snprintf(r->diagnostics, sizeof r->diagnostics,
             "referral %.64s is not one sent to this partner", rid);
    return 0;
  }
  if (rc)
    return fs__internal(r, rc, &e);
  const char *to = fs__str(task, "status");
  const char *from = ref.status;
  if (!hvg_task_status_valid(to)) {
    *outcome = HVG_REMOTE_REFUSED;
    snprintf(r->diagnostics, sizeof r->diagnostics,
             "referral %.64s: '%.40s' is not a Task status", rid,
             to ? to : "(none)");
    store_referral_release(&ref);
    return 0;
  }
  int moved = strcmp(from, to) != 0;
  if (moved && !hvg_task_reachable(from, to, HVG_PARTY_RECEIVER)) {
    *outcome = HVG_REMOTE_REFUSED;
    snprintf(r->diagnostics, sizeof r->diagnostics,
             "referral %.64s: a Task that is %.40s cannot become %.40s; the "
             "change is not recorded",
             rid, from, to);
    store_referral_release(&ref);
    return 0;
  }
  char actor[160];
  snprintf(actor, sizeof actor, "partner:%s", op->who->id);
  if (moved) {
    hvg_err why;
    int direct = hvg_task_transition_check(from, to, HVG_PARTY_RECEIVER,
                                           &why) == 0;
    const char *reason = fs__cc_text(
        cJSON_GetObjectItemCaseSensitive(task, "statusReason"));
    char detail[300];
    snprintf(detail, sizeof detail, "%s%s%s", reason ? reason : "",
             reason && !direct ? "; " : "",
             direct ? "" : "steps in between not seen");
    rc = fs__transition(s, fp->p->id, rid, from, to, actor, op->source,
                        detail[0] ? detail : NULL, ref.hv_status, op->now, &e);
  }
  int changed = 0;
  if (!rc)
    rc = fs__host_progress(s, ref.task_id, task, op->now, &changed, &e);
  if (!rc && changed && !moved)
    rc = store_event_add(s->st, fp->p->id, "referral", rid, op->now, NULL, &e);
  store_referral_release(&ref);
  if (rc)
    return fs__internal(r, rc, &e);
  *outcome = moved || changed ? HVG_REMOTE_APPLIED : HVG_REMOTE_UNCHANGED;
  r->status = 200;
  return 0;
}

int hvg_fsrv_remote_task(hvg_fsrv *s, const hvg_partner *p, const cJSON *task,
                         const char *source, int64_t now_ms,
                         hvg_remote_outcome *outcome, hvg_fres *r) {
  *outcome = HVG_REMOTE_IGNORED;
  const char *rt = fs__str(task, "resourceType");
  if (!rt || strcmp(rt, "Task")) {
    snprintf(r->diagnostics, sizeof r->diagnostics, "not a Task");
    return 0;
  }
  fs__op op = {p, "Task", NULL, task, NULL, 0, NULL, 0, source, now_ms};
  hvg_err e;
  int rc = store_tx_begin(s->st, &e);
  if (rc)
    return fs__internal(r, rc, &e);
  rc = fs__remote_op(s, &op, outcome, r);
  int trc = store_tx_end(s->st, rc == 0, &e);
  if (!rc && trc) {
    *outcome = HVG_REMOTE_IGNORED;
    rc = fs__internal(r, trc, &e);
  }
  return rc;
}

/* ---- intake of a program's referrals ------------------------------------- */

/* The gateway's Bundle of a referral: its entries' placeholders, and the
 * Task and ServiceRequest with references rewritten to hosted ids. */
typedef struct fs__refbundle {
  cJSON *tree;
  cJSON *task, *sr; /* resources inside tree */
  char task_id[37], sr_id[37];
} fs__refbundle;

static int fs__refbundle_read(const char *text, size_t len,
                              fs__refbundle *b, hvg_err *e) {
  memset(b, 0, sizeof *b);
  b->tree = cJSON_ParseWithLength(text, len);
  if (!b->tree)
    return hvg_err_set(e, HVG_EFORMAT, NULL, "the Bundle does not parse");
  const cJSON *entries = cJSON_GetObjectItemCaseSensitive(b->tree, "entry");
  fs__urn map[16];
  size_t n = 0;
  cJSON *it;
  cJSON_ArrayForEach(it, entries) {
    const char *full = fs__str(it, "fullUrl");
    cJSON *res = cJSON_GetObjectItemCaseSensitive(it, "resource");
    const char *type = fs__str(res, "resourceType");
    if (!full || !type || strncmp(full, "urn:uuid:", 9) ||
        strlen(full + 9) != 36 || n == 16)
      continue;
    fs__urn *x = &map[n++];
    x->urn = full;
    memcpy(x->id, full + 9, 37);
    snprintf(x->ref, sizeof x->ref, "%.60s/%.36s", type, full + 9);
    if (!strcmp(type, "Task") && !b->task) {
      b->task = res;
      memcpy(b->task_id, x->id, sizeof b->task_id);
    } else if (!strcmp(type, "ServiceRequest") && !b->sr) {
      b->sr = res;
      memcpy(b->sr_id, x->id, sizeof b->sr_id);
    }
  }
  if (!b->task || !b->sr) {
    cJSON_Delete(b->tree);
    b->tree = NULL;
    return hvg_err_set(e, HVG_EFORMAT, NULL,
                       "the referral Bundle has no Task and ServiceRequest");
  }
  fs__rewrite(b->task, map, n);
  fs__rewrite(b->sr, map, n);
  return 0;
}

/* Host `res` as type/id for the partner, unless it is there already with
 * the same content (create = 1: keep an existing one as it is). */
static int fs__host(hvg_fsrv *s, const char *type, const char *id,
                    const cJSON *res, const hvg_fsrv_referral *ref,
                    int create, int64_t now, hvg_err *e) {
  store_resource row;
  int rc = store_resource_get(s->st, type, id, &row, e);
  if (rc && rc != HVG_ENOTFOUND)
    return rc;
  int exists = rc == 0;
  size_t len = 0;
  char *body = NULL;
  int same = 0;
  if (exists && create) {
    same = 1;
  } else if (exists) {
    body = fs__body(res, id, &len);
    if (!body) {
      store_resource_release(&row);
      return hvg_err_set(e, HVG_ENOMEM, NULL, NULL);
    }
    same = row.partner && !strcmp(row.partner, ref->partner->id) &&
           row.body_len == len && !memcmp(row.body, body, len);
  }
  free(body);
  if (exists)
    store_resource_release(&row);
  if (same)
    return 0;
  store_resource w;
  memset(&w, 0, sizeof w);
  w.type = type;
  w.id = id;
  w.partner = ref->partner->id;
  w.program = ref->program->id;
  w.referral_id = ref->referral_id;
  return fs__store(s, &w, res, -1, now, e);
}

/* Sets the status (and statusReason text) of a hosted Task, keeping the
 * rest as the receiver left it. */
static int fs__host_status(hvg_fsrv *s, const char *task_id,
                           const char *status, const char *reason,
                           int64_t now, hvg_err *e) {
  store_resource row;
  int rc = store_resource_get(s->st, "Task", task_id, &row, e);
  if (rc == HVG_ENOTFOUND)
    return 0;
  if (rc)
    return rc;
  cJSON *t = NULL;
  if (fhir_json_parse(row.body, row.body_len, FS__MAX_BODY, &t, e)) {
    store_resource_release(&row);
    return HVG_EIO;
  }
  cJSON *st = cJSON_CreateString(status);
  cJSON *sr = cJSON_CreateObject();
  if (!st || !sr || (reason && !cJSON_AddStringToObject(sr, "text", reason))) {
    cJSON_Delete(st);
    cJSON_Delete(sr);
    rc = hvg_err_set(e, HVG_ENOMEM, NULL, NULL);
  } else {
    cJSON_DeleteItemFromObjectCaseSensitive(t, "status");
    cJSON_DeleteItemFromObjectCaseSensitive(t, "statusReason");
    cJSON_AddItemToObject(t, "status", st);
    if (reason)
      cJSON_AddItemToObject(t, "statusReason", sr);
    else
      cJSON_Delete(sr);
    rc = fs__store(s, &row, t, row.version, now, e);
  }
  cJSON_Delete(t);
  store_resource_release(&row);
  return rc;
}

int hvg_fsrv_track_referral(hvg_fsrv *s, const hvg_fsrv_referral *ref,
                            int64_t now_ms, char *warning, size_t cap,
                            hvg_err *err) {
  if (warning && cap)
    warning[0] = '\0';
  if (!s || !ref || !ref->program || !ref->referral_id || !ref->bundle)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  fs__refbundle b;
  int rc = fs__refbundle_read(ref->bundle, ref->bundle_len, &b, err);
  if (rc)
    return rc;
  const char *prog = ref->program->id;
  store_referral cur;
  rc = store_referral_get(s->st, prog, ref->referral_id, &cur, err);
  int known = rc == 0;
  if (rc == HVG_ENOTFOUND)
    rc = 0;
  const char *sent_status = fs__str(b.task, "status");
  store_referral up;
  memset(&up, 0, sizeof up);
  up.program = prog;
  up.referral_id = ref->referral_id;
  up.partner = ref->partner ? ref->partner->id : NULL;
  up.task_id = b.task_id;
  up.data = ref->data;
  up.data_len = ref->data_len;
  up.direction = "outbound";
  up.status = sent_status;
  up.hv_status = known ? NULL
                       : hvg_tracker_hv_status(sent_status,
                                               ref->program_status);
  if (!rc)
    rc = store_referral_upsert(s->st, &up, now_ms, err);
  const char *status = known ? cur.status : sent_status;
  if (!rc && ref->partner) { /* the partner's view of it at the gateway */
    rc = fs__host(s, "ServiceRequest", b.sr_id, b.sr, ref, 0, now_ms, err);
    if (!rc && strcmp(status, sent_status)) { /* the loop moved on */
      cJSON_ReplaceItemInObjectCaseSensitive(b.task, "status",
                                             cJSON_CreateString(status));
      cJSON_DeleteItemFromObjectCaseSensitive(b.task, "statusReason");
    }
    if (!rc)
      rc = fs__host(s, "Task", b.task_id, b.task, ref, 1, now_ms, err);
  }
  /* a status the program sets: cancelled (declined, withdrawn), failed */
  const char *why = NULL;
  const char *want = hv_task_status_for(ref->program_status, &why);
  int warned = 0;
  if (!rc && want && strcmp(want, status)) {
    hvg_err refusal;
    if (hvg_task_transition_check(status, want, HVG_PARTY_REQUESTER,
                                  &refusal)) {
      warned = 1;
      if (warning && cap)
        snprintf(warning, cap,
                 "the loop has this referral at %s (%s): status %s is not "
                 "sent (%s)",
                 status, hvg_tracker_hv_status(status, NULL),
                 ref->program_status, refusal.msg);
    } else {
      char actor[160];
      snprintf(actor, sizeof actor, "program:%s", prog);
      store_transition t = {now_ms,
                            status,
                            want,
                            hvg_tracker_hv_status(want, ref->program_status),
                            actor,
                            "export",
                            why};
      rc = store_referral_transition(s->st, prog, ref->referral_id, &t, err);
      if (!rc && ref->partner)
        rc = fs__host_status(s, b.task_id, want, why, now_ms, err);
    }
  }
  if (known)
    store_referral_release(&cur);
  cJSON_Delete(b.tree);
  return rc ? rc : warned;
}

int hvg_fsrv_program_status_applies(store *st, const char *program,
                                    const char *referral_id,
                                    const char *task_status, hvg_err *err) {
  store_referral ref;
  int rc = store_referral_get(st, program, referral_id, &ref, err);
  if (rc == HVG_ENOTFOUND)
    return 0;
  if (rc)
    return rc;
  int applies = task_status && !strcmp(ref.status, task_status);
  store_referral_release(&ref);
  if (!applies)
    return 0;
  store_transition t[64];
  size_t n = 0;
  void *mem = NULL;
  rc = store_referral_history(st, program, referral_id, t, 64, &n, &mem, err);
  if (rc)
    return rc;
  applies = 0; /* the latest move to that status was the program's */
  for (size_t i = n; i-- > 0;)
    if (!strcmp(t[i].to_status, task_status)) {
      applies = t[i].actor && !strncmp(t[i].actor, "program:", 8);
      break;
    }
  store_referral_history_free(mem);
  return applies;
}
