#include "hvg_fsrv.h"
#include "hvg_fsrv_int.h"

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

#define FS__PAGE_DEFAULT 50
#define FS__PAGE_MAX 500
#define FS__BUNDLE_MAX_ENTRIES 200

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
int fs__internal(hvg_fres *r, int rc, const hvg_err *e) {
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

const char *fs__str(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The reference string of Reference element o[key], or NULL. */
const char *fs__ref(const cJSON *o, const char *key) {
  return fs__str(cJSON_GetObjectItemCaseSensitive(o, key), "reference");
}

/* "system|value" of the first identifier of a resource or Reference. */
int fs__ident(const cJSON *ident, char *out, size_t cap) {
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
const char *fs__ident_in(const cJSON *ident, const char *system) {
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
int fs__new_id(char out[37]) {
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
char *fs__body(const cJSON *res, const char *id, size_t *len) {
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
static int fs__stamp(cJSON *t, const char *id, int64_t version, int64_t stamp) {
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
cJSON *fs__tree(const store_resource *row) {
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
int fs__answer_tree(hvg_fres *r, int status, const char *type, const char *id,
                    const cJSON *tree, int64_t version, int64_t stamp) {
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
int fs__answer_row(hvg_fres *r, int status, const store_resource *row) {
  cJSON_Delete(r->body);
  r->body = NULL;
  if (!r->minimal && !(r->body = fs__tree(row)))
    return fs__internal(r, HVG_ENOMEM, NULL);
  fs__answer_meta(r, status, row->type, row->id, row->version, row->updated_ms);
  return 0;
}

/* The program whose identifier systems start with the mapping's base and
 * whose child system is `system`; NULL if none. */
const fs__prog *fs__prog_of_child_system(const hvg_fsrv *s,
                                         const char *system) {
  for (size_t i = 0; system && i < s->n_progs; i++)
    if (!strcmp(s->progs[i].tf.sys_child, system))
      return &s->progs[i];
  return NULL;
}

const fs__prog *fs__prog_by_id(const hvg_fsrv *s, const char *id) {
  for (size_t i = 0; id && i < s->n_progs; i++)
    if (!strcmp(s->progs[i].p->id, id))
      return &s->progs[i];
  return NULL;
}

/* The program a Reference (Task.owner, ServiceRequest.performer) names:
 * by identifier (the program's own system, or one of its organization_ids
 * in any system) or as "Organization/{program id}". */
const fs__prog *fs__prog_of_ref(const hvg_fsrv *s, const cJSON *ref) {
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

const char *const fs__readable[] = {
    "Task", "ServiceRequest", "Observation", "Encounter", "Patient", NULL};

int fs__type_ok(hvg_fres *r, const char *type, const char *const *types) {
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
int fs__visible(hvg_fsrv *s, const hvg_partner *who, const char *type,
                const char *id, store_resource *row, hvg_fres *r) {
  hvg_err e;
  int rc = fhir_check_id(id) ? store_resource_get(s->st, type, id, row, &e)
                             : HVG_ENOTFOUND;
  if (rc == 0 && (!row->partner || strcmp(row->partner, who->id))) {
    store_resource_release(row);
    rc = HVG_ENOTFOUND;
  }
  if (rc == HVG_ENOTFOUND)
    hvg_fres_fail(r, 404, "not-found", NULL, "%.64s/%.64s is not known", type,
                  id);
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
  default: q->updated_ge_ms = t; q->updated_le_ms = end;
  }
  return 0;
}

/* Appends "&name=value" (value percent-encoded) to a link URL. */
static int fs__link_param(hvg_buf *b, const char *name, const char *v) {
  int rc = hvg_buf_printf(
      b, "%c%s=", strchr(b->data ? b->data : "", '?') ? '&' : '?', name);
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
  int rc =
      brc ? brc
          : store_resource_search(s->st, &q, rows, count, &got, &total, &e);
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
    snprintf(msg, sizeof msg,
             "search parameters not supported and ignored: "
             "%s",
             ignored);
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

int fs__in_tx(hvg_fsrv *s, fs__fn fn, const fs__op *op, hvg_fres *r) {
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
int fs__same_id(hvg_fres *r, const char *type, const char *id,
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

/* ---- Bundles: transaction and batch -------------------------------------- */

/* Rewrites every "reference" in t equal to a placeholder (urn:uuid:...)
 * of map into the resource it names. */

void fs__rewrite(cJSON *t, const fs__urn *map, size_t n) {
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

/* Decodes a query value in place: %XX (not %00) and '+' as a space. */
static void fs__unpercent(char *v) {
  char *w = v;
  for (const char *q = v; *q; q++) {
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
      fs__unpercent((char *)params[n].value);
      n++;
    }
    p = amp ? amp + 1 : NULL;
  }
  return (int)n;
}

int hvg_fsrv_query_param(const char *query, const char *key, char *out,
                         size_t cap) {
  size_t kl = strlen(key);
  for (const char *p = query; p && *p;) {
    const char *amp = strchr(p, '&');
    size_t len = amp ? (size_t)(amp - p) : strlen(p);
    if (len > kl && !strncmp(p, key, kl) && p[kl] == '=') {
      if (len - kl - 1 >= cap)
        return 0;
      memcpy(out, p + kl + 1, len - kl - 1);
      out[len - kl - 1] = '\0';
      fs__unpercent(out);
      return 1;
    }
    p = amp ? amp + 1 : NULL;
  }
  return 0;
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
  fs__op op = {who,
               type,
               rid,
               res,
               NULL,
               0,
               fs__str(req, "ifNoneExist"),
               fs__etag_version(fs__str(req, "ifMatch")),
               "push",
               now};
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
    ok = iss &&
         cJSON_AddStringToObject(oo, "resourceType", "OperationOutcome") &&
         cJSON_AddStringToObject(iss, "severity", "error") &&
         cJSON_AddStringToObject(iss, "code",
                                 r->issue ? r->issue : "processing") &&
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
             !cJSON_AddStringToObject(
                 out, "type", tx ? "transaction-response" : "batch-response") ||
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
    if (m && !strcmp(m, "POST") && u && !strchr(u, '/') && !strchr(u, '?') &&
        full && !strncasecmp(full, "urn:uuid:", 9)) {
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
    snprintf(d, sizeof d, "Bundle.entry[%d]: %.480s", failed, r->diagnostics);
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
