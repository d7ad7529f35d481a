#define _GNU_SOURCE /* memmem */
#include "hvg_deliver.h"

#include "fhir_check.h"
#include "hvg_fsrv.h"
#include "hvg_jscan.h"
#include "hvg_metrics.h"

#include <openssl/evp.h>

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HVG__MAX_ENTRIES 16 /* entries of one gateway Bundle (it writes <= 9) */

/* One item's outcome, kept until the round's single transaction applies it
 * (store_finish), and what to log once it is durable. */
typedef struct hvg__slot {
  store_outcome o;
  store_assigned_id ids[HVG__MAX_ENTRIES];
  char types[HVG__MAX_ENTRIES][64], sids[HVG__MAX_ENTRIES][128],
      vids[HVG__MAX_ENTRIES][128], idents[HVG__MAX_ENTRIES][1024];
  store_audit_entry au;
  hvg_buf refs;   /* the audit entry's resource list */
  hvg_buf body;   /* a dead letter's OperationOutcome */
  char text[400]; /* retry reason or dead-letter hint */
  const char *level, *event;
  long status;
  double ms;
} hvg__slot;

void hvg_partner_hold_init(hvg_partner_hold *h) {
  atomic_init(&h->until_ms, 0);
  atomic_init(&h->hold_ms, HVG_DELIVER_HOLD_MS);
  atomic_init(&h->reported, 0);
  atomic_init(&h->down_until_ms, 0);
  atomic_init(&h->down_ms, HVG_DELIVER_DOWN_MIN_MS);
  atomic_init(&h->down, 0);
}

int hvg_deliver_init(hvg_deliverer *d, const hvg_partner *p,
                     const char *store_path, const store_opts *so,
                     hvg_partner_hold *hold, FILE *log, hvg_err *err) {
  memset(d, 0, sizeof *d);
  d->p = p;
  d->log = log;
  hvg_partner_hold_init(&d->own);
  d->hold = hold ? hold : &d->own;
  hvg_http_resp_init(&d->resp);
  hvg_buf_init(&d->logbuf, (size_t)1 << 20);
  d->log_sec = -1;
  d->pace_ms = HVG_DELIVER_LEASE_MS / 8.0 / 16; /* first round: 16 items */
  d->rng = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)d;
  int rc = store_open(&d->st, store_path, so, err);
  if (rc)
    return rc;
  hvg_http_opts ho = {p->connect_timeout_ms, p->timeout_ms, p->tls_verify,
                      p->ca_file,            p->client_cert_file,
                      p->client_key_file,    0};
  if ((rc = hvg_http_new(&d->http, &ho, err)))
    return rc;
  return hvg_auth_init(&d->auth, p, err);
}

void hvg_deliver_free(hvg_deliverer *d) {
  if (!d)
    return;
  for (size_t i = 0; d->slots && i < HVG_DELIVER_BATCH; i++) {
    hvg_buf_free(&d->slots[i].refs);
    hvg_buf_free(&d->slots[i].body);
  }
  free(d->slots);
  d->slots = NULL;
  hvg_buf_free(&d->logbuf);
  hvg_http_resp_free(&d->resp);
  hvg_auth_free(&d->auth);
  hvg_http_free(d->http);
  store_close(d->st);
  d->http = NULL;
  d->st = NULL;
}

/* xorshift64*: jitter only, not security */
static double hvg__rand01(hvg_deliverer *d) {
  d->rng ^= d->rng >> 12;
  d->rng ^= d->rng << 25;
  d->rng ^= d->rng >> 27;
  return (double)((d->rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

/* Exponential backoff with "equal jitter": half fixed, half random, so
 * retries of many records spread out but none comes back too soon. */
static int64_t hvg__backoff(hvg_deliverer *d, int attempts, long retry_after_s) {
  double base = HVG_DELIVER_BACKOFF_MIN_MS;
  for (int i = 1; i < attempts && base < HVG_DELIVER_BACKOFF_MAX_MS; i++)
    base *= 2;
  if (base > HVG_DELIVER_BACKOFF_MAX_MS)
    base = HVG_DELIVER_BACKOFF_MAX_MS;
  int64_t ms = (int64_t)(base / 2 + hvg__rand01(d) * base / 2);
  if (retry_after_s >= 0 && retry_after_s * 1000 > ms)
    ms = retry_after_s * 1000;
  return ms;
}

/* Appends ,"key":"value" (JSON-escaped) to a log line; nothing when v is
 * NULL. 0 or the buffer's error. */
static int hvg__jstr(hvg_buf *b, const char *key, const char *v) {
  if (!v)
    return 0;
  int rc = hvg_buf_adds(b, ",\"");
  if (!rc)
    rc = hvg_buf_adds(b, key);
  if (!rc)
    rc = hvg_buf_adds(b, "\":");
  return rc ? rc : hvg_buf_add_json_str(b, v);
}

/* Appends key (",\"name\":") and v in decimal, or v / 10 with one decimal
 * when tenths: no printf per field of a line written for every Bundle. */
static int hvg__num(hvg_buf *b, const char *key, long long v, int tenths) {
  char d[32], *e = d + sizeof d, *q = e;
  unsigned long long u =
      v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
  if (tenths) {
    *--q = (char)('0' + u % 10);
    *--q = '.';
    u /= 10;
  }
  do
    *--q = (char)('0' + u % 10);
  while (u /= 10);
  if (v < 0)
    *--q = '-';
  int rc = hvg_buf_adds(b, key);
  return rc ? rc : hvg_buf_add(b, q, (size_t)(e - q));
}

/* snprintf(dst, cap, "%s", src) without the format machinery. */
static void hvg__copy(char *dst, size_t cap, const char *src) {
  size_t n = strlen(src);
  if (n >= cap)
    n = cap - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

/* Writes the round's log lines (one write for all of them). */
static void hvg__log_flush(hvg_deliverer *d) {
  if (d->log && d->logbuf.len) {
    fwrite(d->logbuf.data, 1, d->logbuf.len, d->log);
    fflush(d->log);
  }
  hvg_buf_reset(&d->logbuf);
}

/* One JSON log line; values are ids, codes and numbers only. Formatted by
 * hand into the deliverer's buffer, which the end of the round writes: one
 * line per delivery should cost neither a tree nor a write of its own. A
 * line that cannot be formatted (no memory) is left out whole. */
static void hvg__log(hvg_deliverer *d, const char *level, const char *event,
                     const store_item *it, long status, const char *detail,
                     double ms) {
  if (!d->log)
    return;
  time_t now = time(NULL);
  if ((long long)now != d->log_sec) { /* a new second: format it once */
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(d->log_ts, sizeof d->log_ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    d->log_sec = (long long)now;
  }
  hvg_buf *b = &d->logbuf;
  if (b->len > ((size_t)64 << 10))
    hvg__log_flush(d); /* a long round: do not hold too much */
  size_t mark = b->len;
  int rc = hvg_buf_adds(b, "{\"ts\":\"");
  if (!rc)
    rc = hvg_buf_adds(b, d->log_ts);
  if (!rc)
    rc = hvg_buf_addc(b, '"');
  if (!rc)
    rc = hvg__jstr(b, "level", level);
  if (!rc)
    rc = hvg__jstr(b, "event", event);
  if (!rc)
    rc = hvg__jstr(b, "partner", d->p->id);
  if (it) {
    if (!rc)
      rc = hvg__num(b, ",\"outbox_id\":", (long long)it->id, 0);
    if (!rc)
      rc = hvg__jstr(b, "program", it->program);
    if (!rc)
      rc = hvg__jstr(b, "record_type", it->record_type);
    if (!rc)
      rc = hvg__jstr(b, "record_id", it->record_id);
    if (!rc)
      rc = hvg__num(b, ",\"version\":", (long long)it->version, 0);
    if (!rc)
      rc = hvg__num(b, ",\"attempt\":", it->attempts, 0);
  }
  if (!rc && status)
    rc = hvg__num(b, ",\"http_status\":", status, 0);
  if (!rc && ms >= 0) /* "%.1f", rounded half away from zero */
    rc = hvg__num(b, ",\"ms\":", (long long)(ms * 10 + 0.5), 1);
  if (!rc)
    rc = hvg__jstr(b, "detail", detail);
  if (!rc)
    rc = hvg_buf_adds(b, "}\n");
  if (rc)
    hvg_buf_truncate(b, mark);
}

/* What one entry of our Bundle is: its resource type and identifier
 * ("system|value", from ifNoneExist), so a response location can be stored
 * against it. */
typedef struct hvg__entry {
  char type[64];
  char identifier[1024];
} hvg__entry;

static int hvg__unhex(int c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                : -1;
}

/* "identifier=sys|val" (percent-encoded, search-escaped) -> "sys|val" */
static void hvg__identifier(const char *ine, char *out, size_t cap) {
  size_t o = 0;
  out[0] = '\0';
  if (!ine || strncmp(ine, "identifier=", 11))
    return;
  for (const char *p = ine + 11; *p && o + 1 < cap; p++) {
    int c = (unsigned char)*p;
    if (c == '%' && hvg__unhex(p[1]) >= 0 && hvg__unhex(p[2]) >= 0) {
      c = hvg__unhex(p[1]) * 16 + hvg__unhex(p[2]);
      p += 2;
      if (c == '\\' && p[1] == '%' && p[2] && p[3]) { /* "\x" search escape */
        int e = hvg__unhex(p[2]) * 16 + hvg__unhex(p[3]);
        if (hvg__unhex(p[2]) >= 0 && hvg__unhex(p[3]) >= 0) {
          c = e;
          p += 3;
        }
      }
    }
    out[o++] = (char)c;
  }
  out[o] = '\0';
}

/* Reads the entries of the stored Bundle and, for a changed record, turns
 * the conditional creates of resources the partner already has into
 * updates of those ids. *body gets the text to send: the item's own bytes
 * when nothing changed (owned = 0) or a new string the caller frees. */
/* Fills the next entry from a Bundle entry's request object; returns it. */
static hvg__entry *hvg__entry_from(const cJSON *req, hvg__entry *ents,
                                   size_t *n_ents) {
  const cJSON *url = cJSON_GetObjectItemCaseSensitive(req, "url");
  const cJSON *ine = cJSON_GetObjectItemCaseSensitive(req, "ifNoneExist");
  hvg__entry *en = &ents[(*n_ents)++];
  snprintf(en->type, sizeof en->type, "%s",
           cJSON_IsString(url) ? url->valuestring : "");
  hvg__identifier(cJSON_IsString(ine) ? ine->valuestring : NULL,
                  en->identifier, sizeof en->identifier);
  return en;
}

/* The entries' requests of a Bundle the gateway wrote, without parsing the
 * whole document: each "request" object is small, the resources are not
 * (this runs for every delivery, so it stays off the allocator). Returns 0,
 * or -1 when the text is not what the gateway writes. */
static int hvg__requests(const char *js, size_t len, hvg__entry *ents,
                         size_t *n_ents) {
  static const char key[] = "\"request\":{";
  const char *p = js, *end = js + len;
  while ((p = memmem(p, (size_t)(end - p), key, sizeof key - 1)) != NULL &&
         *n_ents < HVG__MAX_ENTRIES) {
    const char *o = p + sizeof key - 2; /* at '{' */
    /* read as hvg__entry_from reads the object's tree, without one */
    char url[1024], ine[4096];
    long nu = -3, ni = -3; /* -3: no such member (yet) */
    hvg_jscan j;
    hvg_jscan_init(&j, o, (size_t)(end - o));
    int rc = hvg_jscan_enter_object(&j) == 1 ? 1 : -1;
    while (rc == 1 && (rc = hvg_jscan_member(&j)) == 1) {
      if (nu == -3 && !strcmp(j.key, "url"))
        nu = hvg_jscan_string(&j, url, sizeof url);
      else if (ni == -3 && !strcmp(j.key, "ifNoneExist"))
        ni = hvg_jscan_string(&j, ine, sizeof ine);
      if (nu == -1 || ni == -1)
        rc = -1;
    }
    /* anything but a url string and at most an ifNoneExist string that fit
     * is not what the gateway writes: the caller parses the whole Bundle */
    if (rc < 0 || nu < 0 || (ni < 0 && ni != -3))
      return -1;
    hvg__entry *en = &ents[(*n_ents)++];
    hvg__copy(en->type, sizeof en->type, url);
    hvg__identifier(ni >= 0 ? ine : NULL, en->identifier,
                    sizeof en->identifier);
    p = o + j.i; /* after the object */
  }
  return 0;
}

/* Turns a Bundle entry into a JSON Patch of the partner's Task/id that
 * sets its status and statusReason as the entry's Task has them. 0, or
 * HVG_ENOMEM (the entry may be half changed: the caller drops the Bundle).
 */
static int hvg__task_patch(cJSON *entry, cJSON *req, cJSON *res,
                           const char *type, const char *id, hvg_err *err) {
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(res, "status");
  const cJSON *why = cJSON_GetObjectItemCaseSensitive(res, "statusReason");
  cJSON *ops = cJSON_CreateArray(), *op1 = cJSON_CreateObject(),
        *op2 = why ? cJSON_CreateObject() : NULL;
  int ok = ops && op1 && (!why || op2) &&
           cJSON_AddStringToObject(op1, "op", "replace") &&
           cJSON_AddStringToObject(op1, "path", "/status") &&
           cJSON_AddStringToObject(op1, "value", st->valuestring);
  if (ok && why)
    ok = cJSON_AddStringToObject(op2, "op", "add") &&
         cJSON_AddStringToObject(op2, "path", "/statusReason") &&
         cJSON_AddItemToObject(op2, "value", cJSON_Duplicate(why, 1));
  if (op1)
    cJSON_AddItemToArray(ops, op1);
  if (op2)
    cJSON_AddItemToArray(ops, op2);
  char *text = ok ? cJSON_PrintUnformatted(ops) : NULL;
  cJSON_Delete(ops);
  size_t n = text ? strlen(text) : 0;
  char *b64 = text ? malloc(4 * ((n + 2) / 3) + 1) : NULL;
  if (b64)
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)text,
                    (int)n);
  free(text);
  cJSON *bin = b64 ? cJSON_CreateObject() : NULL;
  char url[600];
  snprintf(url, sizeof url, "%s/%s", type, id);
  ok = bin && cJSON_AddStringToObject(bin, "resourceType", "Binary") &&
       cJSON_AddStringToObject(bin, "contentType",
                               "application/json-patch+json") &&
       cJSON_AddStringToObject(bin, "data", b64);
  free(b64);
  if (!ok) {
    cJSON_Delete(bin);
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  }
  cJSON_ReplaceItemInObjectCaseSensitive(entry, "resource", bin);
  cJSON_ReplaceItemInObjectCaseSensitive(req, "method",
                                         cJSON_CreateString("PATCH"));
  cJSON_ReplaceItemInObjectCaseSensitive(req, "url", cJSON_CreateString(url));
  cJSON_DeleteItemFromObjectCaseSensitive(req, "ifNoneExist");
  return 0;
}

static int hvg__prepare(hvg_deliverer *d, const store_item *it,
                        hvg__entry *ents, size_t *n_ents, char **body,
                        int *owned, hvg_err *err) {
  *n_ents = 0;
  *owned = 0;
  *body = (char *)it->bundle;
  /* a first version is sent as stored: only its requests are needed */
  if (it->version <= 1 &&
      hvg__requests(it->bundle, it->bundle_len, ents, n_ents) == 0)
    return 0;
  *n_ents = 0;
  cJSON *b = cJSON_ParseWithLength(it->bundle, it->bundle_len);
  if (!b)
    return hvg_err_set(err, HVG_ESYNTAX, NULL, "stored Bundle unreadable");
  cJSON *entries = cJSON_GetObjectItemCaseSensitive(b, "entry");
  cJSON *e;
  int changed = 0;
  hvg_buf id;
  hvg_buf_init(&id, 256);
  for (e = entries ? entries->child : NULL; e;) {
    cJSON *next_e = e->next;
    if (*n_ents == HVG__MAX_ENTRIES)
      break;
    cJSON *req = cJSON_GetObjectItemCaseSensitive(e, "request");
    cJSON *res = cJSON_GetObjectItemCaseSensitive(e, "resource");
    const hvg__entry *en = hvg__entry_from(req, ents, n_ents);
    if (it->version <= 1 || !en->identifier[0]) {
      e = next_e;
      continue;
    }
    hvg_buf_reset(&id);
    hvg_err serr;
    int rc = store_server_id(d->st, d->p->id, en->type, en->identifier, &id,
                             NULL, &serr);
    if (rc == HVG_ENOTFOUND) {
      e = next_e;
      continue;
    }
    if (!rc && !strcmp(en->type, "Task")) {
      /* the partner's Task moves by the loop's rules: a status the
       * program set (and the tracker accepted) goes as a patch; otherwise
       * the Task is the receiver's and is left alone */
      const cJSON *st = cJSON_GetObjectItemCaseSensitive(res, "status");
      rc = hvg_fsrv_program_status_applies(
          d->st, it->program, it->record_id,
          cJSON_IsString(st) ? st->valuestring : NULL, &serr);
      if (rc == 1)
        rc = hvg__task_patch(e, req, res, en->type, id.data, &serr);
      else if (rc == 0) {
        cJSON_Delete(cJSON_DetachItemViaPointer(entries, e));
        (*n_ents)--;
        rc = 2;
      }
      if (rc >= 0) {
        changed = 1;
        e = next_e;
        continue;
      }
    }
    if (rc) {
      hvg_buf_free(&id);
      cJSON_Delete(b);
      *err = serr;
      return rc;
    }
    /* PUT Type/id: the same resource, updated */
    char put[600];
    snprintf(put, sizeof put, "%s/%s", en->type, id.data);
    cJSON_ReplaceItemInObjectCaseSensitive(req, "method",
                                           cJSON_CreateString("PUT"));
    cJSON_ReplaceItemInObjectCaseSensitive(req, "url", cJSON_CreateString(put));
    cJSON_DeleteItemFromObjectCaseSensitive(req, "ifNoneExist");
    if (cJSON_IsObject(res)) {
      cJSON_DeleteItemFromObjectCaseSensitive(res, "id");
      cJSON_AddStringToObject(res, "id", id.data);
    }
    changed = 1;
    e = next_e;
  }
  hvg_buf_free(&id);
  int rc = 0;
  if (changed) {
    *body = cJSON_PrintUnformatted(b);
    if (!*body)
      rc = hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
    *owned = 1;
  }
  cJSON_Delete(b);
  return rc;
}

/* Splits "Type/id/_history/vid" (relative or absolute URL) into its parts. */
static int hvg__location(const char *loc, char *type, char *id, char *vid,
                         size_t cap) {
  const char *h = strstr(loc, "/_history/");
  const char *end = h ? h : loc + strlen(loc);
  const char *slash = end;
  while (slash > loc && slash[-1] != '/')
    slash--;
  if (slash <= loc + 1)
    return -1;
  const char *tslash = slash - 1, *t = tslash;
  while (t > loc && t[-1] != '/')
    t--;
  size_t tl = (size_t)(tslash - t), il = (size_t)(end - slash);
  if (!tl || !il || tl >= cap || il >= cap)
    return -1;
  memcpy(type, t, tl);
  type[tl] = '\0';
  memcpy(id, slash, il);
  id[il] = '\0';
  hvg__copy(vid, cap, h ? h + 10 : "");
  return 0;
}

/* The response.location of the transaction-response entry at the cursor,
 * into loc[cap] ("" when it has none, or not as a string that fits): 0, or
 * -1 when the text is malformed. */
static int hvg__entry_location(hvg_jscan *j, char *loc, size_t cap) {
  loc[0] = '\0';
  int rc = hvg_jscan_enter_object(j);
  if (rc <= 0)
    return rc < 0 ? -1 : hvg_jscan_skip(j);
  int seen = 0; /* the first "response", as cJSON would find it */
  while ((rc = hvg_jscan_member(j)) == 1) {
    if (seen || strcmp(j->key, "response"))
      continue; /* the value is skipped */
    seen = 1;
    if ((rc = hvg_jscan_enter_object(j)) <= 0) {
      if (rc < 0)
        return -1;
      continue;
    }
    int got = 0;
    while ((rc = hvg_jscan_member(j)) == 1)
      if (!got && !strcmp(j->key, "location")) {
        got = 1;
        if (hvg_jscan_string(j, loc, cap) == -1)
          return -1;
      }
    if (rc < 0)
      return -1;
  }
  return rc;
}

/* A 2xx: the ids in the entries' locations (read without a tree: the
 * server may send every resource back), the audit entry. A response that
 * is not JSON gives no ids, as before. */
static void hvg__settle_ok(hvg__slot *sl, const hvg__entry *ents,
                           size_t n_ents, const hvg_http_resp *r, int64_t now) {
  size_t n_ids = 0;
  hvg_jscan j;
  hvg_jscan_init(&j, r->body.data, r->body.len);
  int rc = hvg_jscan_enter_object(&j) == 1 ? 1 : -1;
  while (rc == 1 && (rc = hvg_jscan_member(&j)) == 1 && strcmp(j.key, "entry"))
    ;
  if (rc == 1 && hvg_jscan_enter_array(&j) != 1)
    rc = 0; /* no entries */
  for (size_t i = 0; rc == 1 && i < n_ents; i++) {
    char loc[1024];
    if ((rc = hvg_jscan_item(&j)) != 1)
      break;
    if (hvg__entry_location(&j, loc, sizeof loc)) {
      rc = -1;
      break;
    }
    if (loc[0] && ents[i].identifier[0] &&
        !hvg__location(loc, sl->types[n_ids], sl->sids[n_ids], sl->vids[n_ids],
                       64)) {
      memcpy(sl->idents[n_ids], ents[i].identifier,
             sizeof sl->idents[n_ids]);
      store_assigned_id *id = &sl->ids[n_ids];
      id->resource_type = sl->types[n_ids];
      id->identifier = sl->idents[n_ids];
      id->id = sl->sids[n_ids];
      id->version_id = sl->vids[n_ids][0] ? sl->vids[n_ids] : NULL;
      if (sl->refs.len)
        hvg_buf_addc(&sl->refs, ' ');
      hvg_buf_adds(&sl->refs, sl->types[n_ids]);
      hvg_buf_addc(&sl->refs, '/');
      hvg_buf_adds(&sl->refs, sl->sids[n_ids]);
      n_ids++;
    }
  }
  if (rc < 0) { /* malformed: like an unparsable response, no ids */
    n_ids = 0;
    hvg_buf_reset(&sl->refs);
  }
  memset(&sl->au, 0, sizeof sl->au);
  sl->au.actor = "gateway";
  sl->au.action = "disclose";
  sl->au.resources = sl->refs.data;
  sl->au.at_ms = now;
  sl->au.detail = n_ids ? NULL : "no resource locations in the response";
  sl->o.kind = STORE_DELIVERED;
  sl->o.ids = sl->ids;
  sl->o.n_ids = n_ids;
  sl->o.audit = &sl->au;
  sl->level = "info";
  sl->event = "delivered";
}

/* Short hint for a dead letter, from the OperationOutcome's first issue. */
static void hvg__hint(const hvg_http_resp *r, char *hint, size_t cap) {
  cJSON *o = cJSON_ParseWithLength(r->body.data ? r->body.data : "",
                                   r->body.len);
  const cJSON *iss = cJSON_GetArrayItem(
      cJSON_GetObjectItemCaseSensitive(o, "issue"), 0);
  const cJSON *code = cJSON_GetObjectItemCaseSensitive(iss, "code");
  const cJSON *diag = cJSON_GetObjectItemCaseSensitive(iss, "diagnostics");
  snprintf(hint, cap, "HTTP %ld%s%s%s%.200s: fix the record or the partner "
                      "configuration, then replay",
           r->status, cJSON_IsString(code) ? " " : "",
           cJSON_IsString(code) ? code->valuestring : "",
           cJSON_IsString(diag) ? ": " : "",
           cJSON_IsString(diag) ? diag->valuestring : "");
  cJSON_Delete(o);
}

/* Holds until now + the current pause (or at_least, if later), and
 * doubles the pause up to max; of workers failing together, one extends. */
static void hold__extend(_Atomic int64_t *until_ms, _Atomic int64_t *pause_ms,
                         int64_t now_ms, int64_t at_least_ms, int64_t max) {
  int64_t len = atomic_load(pause_ms);
  int64_t until = now_ms + len, cur = atomic_load(until_ms);
  if (until < at_least_ms)
    until = at_least_ms;
  if (until > cur && atomic_compare_exchange_strong(until_ms, &cur, until))
    atomic_store(pause_ms, len * 2 > max ? max : len * 2);
}

int hvg_partner_hold_fail(hvg_partner_hold *h, int64_t now_ms) {
  hold__extend(&h->until_ms, &h->hold_ms, now_ms, 0,
               HVG_DELIVER_BACKOFF_MAX_MS);
  return atomic_exchange(&h->reported, 1) == 0;
}

int hvg_partner_hold_clear(hvg_partner_hold *h) {
  if (!atomic_exchange(&h->reported, 0))
    return 0;
  atomic_store(&h->hold_ms, HVG_DELIVER_HOLD_MS);
  return 1;
}

int hvg_partner_hold_down(hvg_partner_hold *h, int64_t now_ms,
                          int64_t at_least_ms) {
  hold__extend(&h->down_until_ms, &h->down_ms, now_ms, at_least_ms,
               HVG_DELIVER_DOWN_MAX_MS);
  return atomic_exchange(&h->down, 1) == 0;
}

int hvg_partner_hold_up(hvg_partner_hold *h) {
  if (!atomic_exchange(&h->down, 0))
    return 0;
  atomic_store(&h->down_ms, HVG_DELIVER_DOWN_MIN_MS);
  return 1;
}

int64_t hvg_partner_held_until(hvg_partner_hold *h) {
  int64_t a = atomic_load(&h->until_ms), b = atomic_load(&h->down_until_ms);
  return a > b ? a : b;
}

/* Holds the partner after an auth failure: reported once per incident by
 * whichever worker sees it first. */
static void hvg__hold(hvg_deliverer *d, const store_item *it, long status,
                      const char *why, int64_t now) {
  d->n.auth_failures++;
  if (hvg_partner_hold_fail(d->hold, now))
    hvg__log(d, "error", "partner_auth_failed", it, status, why, -1);
}

/* A success ends an auth incident. */
static void hvg__unhold(hvg_deliverer *d) {
  if (hvg_partner_hold_clear(d->hold))
    hvg__log(d, "info", "partner_auth_recovered", NULL, 0, NULL, -1);
}

static void hvg__retry_at(hvg__slot *sl, int64_t when, const char *why) {
  sl->o.kind = STORE_RETRY;
  sl->o.next_attempt_ms = when;
  snprintf(sl->text, sizeof sl->text, "%s", why);
  sl->o.reason = sl->text;
}

/* Delivers one item and decides its outcome into sl (applied by the caller
 * with the rest of the round). Returns 0, or a store error. */
static int hvg__one(hvg_deliverer *d, const store_item *it, hvg__slot *sl,
                    int64_t now, hvg_err *err) {
  hvg__entry ents[HVG__MAX_ENTRIES];
  size_t n_ents;
  char *body;
  int owned;
  hvg_err perr;
  sl->o.item = it;
  sl->status = 0;
  sl->ms = -1;
  /* the consent it was queued under must still hold when it leaves: a
   * family that revoked or let it expire since is not disclosed */
  if (it->consent_id) {
    char today[11];
    fhir_date_utc((time_t)(now / 1000), today);
    int act = store_consent_active(d->st, it->program, it->consent_id, today,
                                   err);
    if (act < 0)
      return act;
    if (!act) {
      sl->o.kind = STORE_DEAD;
      snprintf(sl->text, sizeof sl->text,
               "consent %.64s is no longer active (revoked or expired): not "
               "disclosed; replay after a new consent is ingested",
               it->consent_id);
      sl->o.hint = sl->text;
      sl->level = "warn";
      sl->event = "withheld_consent";
      return 0;
    }
  }
  int rc = hvg__prepare(d, it, ents, &n_ents, &body, &owned, &perr);
  if (rc == HVG_ESYNTAX || rc == HVG_ENOMEM) {
    sl->o.kind = STORE_DEAD;
    snprintf(sl->text, sizeof sl->text, "%s", perr.msg);
    sl->o.hint = sl->text;
    sl->level = "error";
    sl->event = "dead_letter";
    return 0;
  }
  if (rc) {
    *err = perr;
    return rc;
  }
  char url[1024];
  hvg__copy(url, sizeof url, d->p->base_url);
  size_t bl = strlen(url);
  if (bl && url[bl - 1] == '/')
    url[bl - 1] = '\0';
  hvg_http_resp *r = &d->resp; /* reused: keeps its buffer */
  int tries = 0;
  long status = 0;
  hvg_err herr;
  hvg_err_clear(&herr);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    char auth[8300];
    rc = hvg_auth_header(&d->auth, d->http, time(NULL), auth, sizeof auth,
                         &herr);
    if (rc == HVG_ESECURITY) {
      hvg__hold(d, it, 0, herr.msg, now);
      hvg__retry_at(sl, atomic_load(&d->hold->until_ms), "partner auth failed");
      sl->event = NULL;
      rc = 0;
      goto out;
    }
    if (rc) {
      status = 0;
      break; /* token endpoint unreachable: retry the item later */
    }
    const char *hdr[] = {"Content-Type: application/fhir+json",
                         "Accept: application/fhir+json",
                         "Prefer: return=minimal", auth[0] ? auth : NULL,
                         NULL};
    rc = hvg_http_request(d->http, "POST", url, hdr, body,
                          owned ? strlen(body) : it->bundle_len, r, &herr);
    status = rc ? 0 : r->status;
    if (status == 401 && d->p->auth == HVG_AUTH_SMART && tries++ == 0) {
      hvg_auth_forget(&d->auth); /* expired or revoked: one fresh token */
      continue;
    }
    break;
  }
  rc = 0;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  sl->ms = (double)(t1.tv_sec - t0.tv_sec) * 1000 +
           (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
  d->pace_ms = d->pace_ms * 0.75 + sl->ms * 0.25;
  sl->status = status;
  /* no answer, 429 or a gateway's 502-504: the partner is not reachable */
  int down = status == 0 || status == 429 || (status >= 502 && status <= 504);
  if (!down && hvg_partner_hold_up(d->hold))
    hvg__log(d, "info", "partner_reachable", NULL, status, NULL, -1);
  if (status >= 200 && status < 300) {
    hvg__unhold(d);
    hvg__settle_ok(sl, ents, n_ents, r, now);
  } else if (status == 401 || status == 403) {
    hvg__hold(d, it, status, "the partner refused the gateway's credentials",
              now);
    hvg__retry_at(sl, atomic_load(&d->hold->until_ms), "partner auth failed");
    sl->event = NULL; /* reported once by hvg__hold */
  } else if (status == 0 || status == 408 || status == 429 || status >= 500) {
    char why[300];
    if (status)
      snprintf(why, sizeof why, "HTTP %ld", status);
    else
      snprintf(why, sizeof why, "network: %.200s", herr.msg);
    long ra = r->retry_after_s; /* -1 unless this answer had one */
    hvg__retry_at(sl, now + hvg__backoff(d, it->attempts, ra), why);
    sl->level = "warn";
    sl->event = "retry";
    if (down) {
      int64_t now2 = store_now_ms();
      if (hvg_partner_hold_down(d->hold, now2, ra > 0 ? now2 + ra * 1000 : 0))
        hvg__log(d, "error", "partner_unreachable", it, status, why, -1);
    }
  } else {
    hvg__hint(r, sl->text, sizeof sl->text);
    sl->o.kind = STORE_DEAD;
    sl->o.http_status = (int)status;
    sl->o.hint = sl->text;
    hvg_buf_reset(&sl->body);
    if (r->body.len && !hvg_buf_add(&sl->body, r->body.data, r->body.len)) {
      sl->o.outcome_json = sl->body.data;
      sl->o.outcome_len = sl->body.len;
    }
    sl->level = "error";
    sl->event = "dead_letter";
  }
out:
  if (owned)
    free(body);
  return rc;
}

/* How many items a round claims: what an eighth of the lease holds at the
 * recent pace (so the lease outlasts the round even when the partner slows
 * down), between 1 and HVG_DELIVER_BATCH. Bigger rounds cost less each: one
 * claim and one commit serve more Bundles. */
static size_t hvg__round_size(const hvg_deliverer *d) {
  double n = HVG_DELIVER_LEASE_MS / 8.0 / (d->pace_ms > 1 ? d->pace_ms : 1);
  return n >= HVG_DELIVER_BATCH ? HVG_DELIVER_BATCH : n < 1 ? 1 : (size_t)n;
}

int hvg_deliver_round(hvg_deliverer *d, int64_t now_ms, int *idle_ms,
                      hvg_err *err) {
  if (idle_ms)
    *idle_ms = 0;
  d->n.rounds++;
  int64_t held = hvg_partner_held_until(d->hold);
  if (now_ms < held) {
    if (idle_ms)
      *idle_ms = (int)(held - now_ms > 1000 ? 1000 : held - now_ms);
    return 0;
  }
  store_item items[HVG_DELIVER_BATCH];
  size_t n = 0;
  /* while an incident is open, probe with one item, not a batch */
  int probe = atomic_load(&d->hold->reported) || atomic_load(&d->hold->down);
  int rc = store_claim(d->st, d->p->id, probe ? 1 : hvg__round_size(d),
                       now_ms, HVG_DELIVER_LEASE_MS, items, &n, err);
  if (rc)
    return rc;
  if (!n) {
    if (idle_ms)
      *idle_ms = 200;
    return 0;
  }
  if (!d->slots) {
    if (!(d->slots = calloc(HVG_DELIVER_BATCH, sizeof *d->slots))) {
      store_items_release(items, n);
      return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
    }
    for (size_t i = 0; i < HVG_DELIVER_BATCH; i++) { /* kept across rounds */
      hvg_buf_init(&d->slots[i].refs, 16 * 1024);
      hvg_buf_init(&d->slots[i].body, (size_t)1 << 20);
    }
  }
  hvg__slot *sl = d->slots;
  store_outcome o[HVG_DELIVER_BATCH];
  size_t done = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    memset(&sl[i].o, 0, sizeof sl[i].o);
    hvg_buf_reset(&sl[i].refs);
    hvg_buf_reset(&sl[i].body);
    sl[i].event = NULL;
    held = hvg_partner_held_until(d->hold);
    if (now_ms < held) { /* held mid-round: give the rest back */
      sl[i].o.item = &items[i];
      hvg__retry_at(&sl[i], held,
                    held == atomic_load(&d->hold->until_ms)
                        ? "partner auth failed"
                        : "partner unreachable: not tried");
    } else {
      rc = hvg__one(d, &items[i], &sl[i], store_now_ms(), err);
    }
    done++;
  }
  for (size_t i = 0; i < done; i++)
    o[i] = sl[i].o;
  /* one transaction for the whole round: acks, retries, dead letters */
  if (!rc && done)
    rc = store_finish(d->st, o, done, store_now_ms(), err);
  for (size_t i = 0; !rc && i < done; i++) {
    const hvg__slot *x = &sl[i];
    if (o[i].result) {
      hvg__log(d, "error", "lease_lost", &items[i], x->status,
               "another worker took the item over; its outcome was dropped",
               -1);
      continue;
    }
    d->n.delivered += o[i].kind == STORE_DELIVERED;
    d->n.retried += o[i].kind == STORE_RETRY && x->event;
    d->n.dead += o[i].kind == STORE_DEAD;
    if (o[i].kind == STORE_DELIVERED)
      d->n.latency_sum_s += x->ms / 1000;
    if (d->obs) {
      hvg_series *c = o[i].kind == STORE_DELIVERED ? d->obs->delivered
                      : o[i].kind == STORE_DEAD    ? d->obs->dead
                      : x->event                   ? d->obs->retried
                                                   : d->obs->auth_failed;
      if (c)
        hvg_series_add(c, 1);
      if (o[i].kind == STORE_DELIVERED && d->obs->latency)
        hvg_series_observe(d->obs->latency, x->ms / 1000);
    }
    if (x->event)
      hvg__log(d, x->level, x->event, &items[i], x->status,
               o[i].kind == STORE_DELIVERED ? NULL : x->text, x->ms);
  }
  hvg__log_flush(d);
  store_items_release(items, n);
  return rc ? rc : (int)done;
}
