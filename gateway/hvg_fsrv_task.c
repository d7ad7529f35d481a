/* hvg_fsrv_task — the referral tracker of the FHIR server: changes of a
 * referral's Task by a partner (update, JSON Patch, a Task read back from
 * its server) checked and recorded as transitions, and the intake of a
 * program's referrals (hvg_fsrv.h). */
#include "fhir_check.h"
#include "fhir_json.h"
#include "hvg_fsrv_int.h"

#include "fhir_patch.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- the tracker: Task changes ------------------------------------------ */

/* Elements of a Task that only the requester (who made the referral)
 * sets, and those only the receiver (its owner) sets; the rest (status by
 * the state machine's rules, statusReason, businessStatus, note,
 * lastModified, executionPeriod, text, extension) either side changes. */
static const char *const fs__requester_elements[] = {"identifier",
                                                     "instantiatesCanonical",
                                                     "instantiatesUri",
                                                     "basedOn",
                                                     "groupIdentifier",
                                                     "partOf",
                                                     "intent",
                                                     "priority",
                                                     "code",
                                                     "description",
                                                     "focus",
                                                     "for",
                                                     "encounter",
                                                     "authoredOn",
                                                     "requester",
                                                     "owner",
                                                     "reasonCode",
                                                     "reasonReference",
                                                     "insurance",
                                                     "input",
                                                     "restriction",
                                                     "performerType",
                                                     "location",
                                                     NULL};
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
    "identifier", "intent", "code",       "focus", "for",
    "requester",  "owner",  "authoredOn", NULL};

static int fs__locked(const char *key, hvg_party party) {
  return party == HVG_PARTY_RECEIVER ? fs__in(key, fs__requester_elements)
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
          !cJSON_GetObjectItemCaseSensitive(next, a->string)) return a->string;
  return NULL;
}

/* The text of a CodeableConcept (its text, else its first coding's display
 * or code), or NULL. */
static const char *fs__cc_text(const cJSON *cc) {
  const char *t = fs__str(cc, "text");
  if (t)
    return t;
  const cJSON *c0 =
      cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(cc, "coding"), 0);
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
int fs__store(hvg_fsrv *s, store_resource *row, const cJSON *tree,
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
int fs__transition(hvg_fsrv *s, const char *program, const char *referral_id,
                   const char *from, const char *to, const char *actor,
                   const char *source, const char *reason,
                   const char *program_status, int64_t now, hvg_err *e) {
  store_transition t = {
      now,   from,   to,    hvg_tracker_hv_status(to, program_status),
      actor, source, reason};
  int rc = store_referral_transition(s->st, program, referral_id, &t, e);
  if (!rc)
    rc = store_event_add(s->st, program, "referral", referral_id, now, NULL, e);
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
                         row->id, (long long)row->version, (long long)if_match);
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
    return hvg_fres_fail(r, 422, "business-rule", "Task.status", "%s", e.msg);
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

int fs__update_op(hvg_fsrv *s, const fs__op *op, hvg_fres *r) {
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

int fs__patch_op(hvg_fsrv *s, const fs__op *op, hvg_fres *r) {
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
      rc = fs__task_change(s, op->who, &row, checked, op->if_match, op->source,
                           op->now, r);
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
  fs__op op = {who,       type, id,       NULL,   patch,
               patch_len, NULL, if_match, "push", now_ms};
  return fs__in_tx(s, fs__patch_op, &op, r);
}

/* ---- Tasks read back from a partner's server ---------------------------- */

/* Elements of a Task that the receiver keeps up to date. */
static const char *const fs__progress_elements[] = {
    "status",       "statusReason",    "businessStatus", "output",
    "lastModified", "executionPeriod", "note",           NULL};

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
  int ok =
      text && !fhir_json_parse(text, strlen(text), FS__MAX_BODY, &back, &e);
  cJSON_Delete(back);
  free(text);
  return ok;
}

/* The gateway's copy of Task task_id and its tree: 0 (the caller releases
 * *row and deletes *t), HVG_ENOTFOUND (none, or task_id NULL), HVG_EIO (it
 * does not parse), a store error. */
static int fs__hosted(hvg_fsrv *s, const char *task_id, store_resource *row,
                      cJSON **t, hvg_err *e) {
  *t = NULL;
  if (!task_id)
    return HVG_ENOTFOUND;
  int rc = store_resource_get(s->st, "Task", task_id, row, e);
  if (rc)
    return rc;
  if (fhir_json_parse(row->body, row->body_len, FS__MAX_BODY, t, e)) {
    store_resource_release(row);
    return HVG_EIO;
  }
  return 0;
}

/* Updates the hosted Task of a referral with what the receiver changed. */
static int fs__host_progress(hvg_fsrv *s, const char *task_id, const cJSON *src,
                             int64_t now, int *changed, hvg_err *e) {
  *changed = 0;
  store_resource row;
  cJSON *t;
  int rc = fs__hosted(s, task_id, &row, &t, e);
  if (rc)
    return rc == HVG_ENOTFOUND ? 0 : rc;
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
  if (rc == HVG_ENOTFOUND ||
      (!rc && (!ref.partner || strcmp(ref.partner, op->who->id)))) {
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
    int direct =
        hvg_task_transition_check(from, to, HVG_PARTY_RECEIVER, &why) == 0;
    const char *reason =
        fs__cc_text(cJSON_GetObjectItemCaseSensitive(task, "statusReason"));
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

static int fs__refbundle_read(const char *text, size_t len, fs__refbundle *b,
                              hvg_err *e) {
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
                    const cJSON *res, const hvg_fsrv_referral *ref, int create,
                    int64_t now, hvg_err *e) {
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
static int fs__host_status(hvg_fsrv *s, const char *task_id, const char *status,
                           const char *reason, int64_t now, hvg_err *e) {
  store_resource row;
  cJSON *t;
  int rc = fs__hosted(s, task_id, &row, &t, e);
  if (rc)
    return rc == HVG_ENOTFOUND ? 0 : rc;
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
  up.hv_status =
      known ? NULL : hvg_tracker_hv_status(sent_status, ref->program_status);
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
      store_transition t = {
          now_ms, status,
          want,   hvg_tracker_hv_status(want, ref->program_status),
          actor,  "export",
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

/* ---- the program as the receiver ----------------------------------------- */

static int fs__program_update_op(hvg_fsrv *s, const hvg_program *prog,
                                 const char *referral_id, const char *to,
                                 const char *hv_status, const char *reason,
                                 int64_t now, hvg_fres *r) {
  hvg_err e;
  store_referral ref;
  int rc = store_referral_get(s->st, prog->id, referral_id, &ref, &e);
  if (rc == HVG_ENOTFOUND ||
      (!rc && (!ref.direction || strcmp(ref.direction, "inbound")))) {
    if (!rc)
      store_referral_release(&ref);
    return hvg_fres_fail(r, 404, "not-found", NULL,
                         "no referral %.64s made to program %.64s by a "
                         "practice",
                         referral_id, prog->id);
  }
  if (rc)
    return fs__internal(r, rc, &e);
  if (hvg_task_transition_check(ref.status, to, HVG_PARTY_RECEIVER, &e)) {
    store_referral_release(&ref);
    return hvg_fres_fail(r, 422, "business-rule", "status", "%s", e.msg);
  }
  char actor[160];
  snprintf(actor, sizeof actor, "program:%s", prog->id);
  if (strcmp(ref.status, to))
    rc = fs__transition(s, prog->id, referral_id, ref.status, to, actor,
                        "api", reason, hv_status, now, &e);
  if (!rc && ref.task_id && strcmp(ref.status, to))
    rc = fs__host_status(s, ref.task_id, to, reason, now, &e);
  store_resource row;
  int have = !rc && ref.task_id &&
             !store_resource_get(s->st, "Task", ref.task_id, &row, &e);
  store_referral_release(&ref);
  if (rc)
    return fs__internal(r, rc, &e);
  if (have) {
    rc = fs__answer_row(r, 200, &row);
    store_resource_release(&row);
    return rc;
  }
  r->status = 200;
  return 0;
}

int hvg_fsrv_program_update(hvg_fsrv *s, const hvg_program *prog,
                            const char *referral_id, const char *hv_status,
                            const char *reason, int64_t now_ms, hvg_fres *r) {
  static const struct {
    const char *hv, *task;
  } m[] = {{"linked", "accepted"},
           {"scheduled", "in-progress"},
           {"completed", "completed"},
           {"declined", "rejected"},
           {"unable_to_reach", "failed"}};
  const char *to = NULL;
  for (size_t i = 0; hv_status && i < sizeof m / sizeof *m; i++)
    if (!strcmp(hv_status, m[i].hv))
      to = m[i].task;
  if (!to)
    return hvg_fres_fail(r, 400, "code-invalid", "status",
                         "a program receiving a referral sets linked, "
                         "scheduled, completed, declined or unable_to_reach");
  hvg_err e;
  int rc = store_tx_begin(s->st, &e);
  if (rc)
    return fs__internal(r, rc, &e);
  rc = fs__program_update_op(s, prog, referral_id, to, hv_status, reason,
                             now_ms, r);
  int trc = store_tx_end(s->st, rc == 0 && r->status < 300, &e);
  if (!rc && trc)
    rc = fs__internal(r, trc, &e);
  return rc;
}
