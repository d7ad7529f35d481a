/* hvg_fsrv_create — what partners create on the FHIR server: well-child
 * results (screenings, visits), referrals to home visiting (ServiceRequest,
 * Task) and their Patients (hvg_fsrv.h). */
#include "fhir_check.h"
#include "fhir_json.h"
#include "hvg_fsrv_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SNOMED "http://snomed.info/sct"
#define WELL_CHILD_VISIT "410620009" /* Well child visit (procedure) */

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
                     const fs__prog **fp, char *child, size_t cap, cJSON **pat,
                     hvg_err *e) {
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
            wc |=
        fs__str(c, "system") && !strcmp(fs__str(c, "system"), SNOMED) &&
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
    static const char *const vkeys[] = {"valueInteger", "valueQuantity", NULL};
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
  const cJSON *perf =
      cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t, "performer"), 0);
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
  char date[11] = "", today[11];
  fhir_date_utc((time_t)(op->now / 1000), today);
  if (!fs__date_of(t, "authoredOn", NULL, date))
    snprintf(date, sizeof date, "%s", today);
  const char *prio = fs__str(t, "priority");
  const char *urgency = !prio ? NULL
                        : !strcmp(prio, "stat")
                            ? "asap"
                            : prio; /* routine urgent asap */
  const hv_service *svc = NULL;
  const cJSON *c;
  cJSON_ArrayForEach(
      c, cJSON_GetObjectItemCaseSensitive(
             cJSON_GetObjectItemCaseSensitive(t, "code"), "coding")) {
    const char *sys = fs__str(c, "system"), *cd = fs__str(c, "code");
    for (size_t i = 0; !svc && sys && cd && i < fp->p->cat->n_services; i++)
      if (fp->p->cat->services[i].code.system &&
          !strcmp(fp->p->cat->services[i].code.system, sys) &&
          !strcmp(fp->p->cat->services[i].code.code, cd))
        svc = &fp->p->cat->services[i];
  }
  const cJSON *note0 =
      cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t, "note"), 0);
  const cJSON *name0 =
      cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(pat, "name"), 0);
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
  /* the record id is the gateway's referral id: the one the program names
   * when it moves the referral (POST /hv/{program}/referrals/{id}/status) */
  int ok = d && fs__put(d, "record_id", id) &&
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
  const fs__prog *owner =
      fs__prog_of_ref(s, cJSON_GetObjectItemCaseSensitive(t, "owner"));
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

const char *const fs__creatable[] = {
    "Observation", "Encounter", "ServiceRequest", "Task", "Patient", NULL};

/* Create op->tree as op->type/id (id chosen by the caller) for op->who,
 * inside the caller's transaction. */
int fs__create_as(hvg_fsrv *s, const fs__op *op, const char *id, hvg_fres *r) {
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
                           "more than one %.64s has that identifier", op->type);
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
    rc = hvg_fres_fail(r, 409, "duplicate", NULL, "%s/%s exists", op->type, id);
  else
    fs__internal(r, rc, &e);
  free(keep);
  return rc;
}

int fs__create_op(hvg_fsrv *s, const fs__op *op, hvg_fres *r) {
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
  fs__op op = {who, type,          NULL, tree,   NULL,
               0,   if_none_exist, 0,    "push", now_ms};
  return fs__in_tx(s, fs__create_op, &op, r);
}
