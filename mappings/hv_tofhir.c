#include "hv_tofhir.h"

#include "fhir_build.h"
#include "fhir_uuid.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPI_SYSTEM "http://hl7.org/fhir/sid/us-npi"
#define V3_INTERP "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
#define V3_ROLE "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
#define V3_ACTCODE "http://terminology.hl7.org/CodeSystem/v3-ActCode"

int hv_is_npi(const char *id) {
  if (!id || strlen(id) != 10)
    return 0;
  /* Luhn over "80840" + the first nine digits, check digit last. */
  char digits[16];
  memcpy(digits, "80840", 5);
  for (int i = 0; i < 10; i++) {
    if (id[i] < '0' || id[i] > '9')
      return 0;
    digits[5 + i] = id[i];
  }
  int sum = 0;
  for (int i = 14, dbl = 0; i >= 0; i--, dbl = !dbl) {
    int d = digits[i] - '0';
    if (dbl) {
      d *= 2;
      if (d > 9)
        d -= 9;
    }
    sum += d;
  }
  return sum % 10 == 0;
}

const char *hv_task_status_for(const char *hv_status, const char **reason) {
  static const struct {
    const char *hv, *task, *reason;
  } set[] = {
      {"family_declined", "cancelled", "family declined"},
      {"withdrawn", "cancelled", "withdrawn by the home visiting program"},
      {"unable_to_reach", "failed", "unable to reach the family"},
  };
  for (size_t i = 0; hv_status && i < sizeof set / sizeof *set; i++)
    if (strcmp(hv_status, set[i].hv) == 0) {
      if (reason)
        *reason = set[i].reason;
      return set[i].task;
    }
  if (reason)
    *reason = NULL;
  return NULL;
}

/* ---- entries of repeating inputs -------------------------------------
 * A family's child, caregiver and RelatedPerson, its practice and home
 * visitor, the program: most records repeat the entries of the record
 * before them. Building an entry is a function of its inputs (record
 * values, the program's systems): the same inputs give the same checks'
 * outcome and the same bytes. So the last entries of each kind are kept,
 * with the inputs they were built from, and an entry whose inputs are
 * equal to one kept is written from the kept bytes (fhir_w_json) instead
 * of being checked and built again. Only entries that were checked and
 * built without error are kept; compact JSON only (fhir_w_start). */
enum {
  HV__M_ORG = 0,   /* practice, referral and consent organizations */
  HV__M_PROGRAM,   /* the program's organization */
  HV__M_CHILD,     /* child Patient */
  HV__M_CAREGIVER, /* caregiver Patient */
  HV__M_RELATED,   /* caregiver RelatedPerson */
  HV__M_VISITOR,   /* home visitor Practitioner */
  HV__M_KINDS
};
#define HV__MEMO_WAYS 4                 /* kept entries per kind */
#define HV__MEMO_MAX ((size_t)16 << 10) /* bytes of inputs or of an entry */

typedef struct hv__memo_slot {
  hvg_buf key;   /* per input: 'N', or 'S' + the value + NUL */
  hvg_buf bytes; /* the entry as written */
  unsigned long used; /* for replacing the least recently used */
} hv__memo_slot;

struct hv__tofhir_memo {
  hv__memo_slot slot[HV__M_KINDS][HV__MEMO_WAYS];
  int last[HV__M_KINDS]; /* slot kept or matched last: tried first */
  unsigned long tick;
};

/* 1 when the key stored in k is keys[0..n). */
static int hv__memo_match(const hvg_buf *k, const char *const *keys,
                          size_t n) {
  if (!k->data)
    return n == 0;
  const char *p = k->data, *end = k->data + k->len;
  for (size_t i = 0; i < n; i++) {
    if (p >= end)
      return 0;
    if (!keys[i]) {
      if (*p++ != 'N')
        return 0;
      continue;
    }
    if (*p++ != 'S')
      return 0;
    size_t l = strlen(keys[i]);
    if ((size_t)(end - p) < l + 1 || memcmp(p, keys[i], l + 1) != 0)
      return 0;
    p += l + 1;
  }
  return p == end;
}

/* Writes the kept entry of this kind built from keys, if there is one:
 * returns 1 (the entry is written, or the writer's error is set), else 0. */
static int hv__memo_replay(hv__tofhir_memo *m, fhir_writer *w, int kind,
                           const char *const *keys, size_t n) {
  if (!m || !fhir_w_compact(w) || fhir_w_error(w))
    return 0;
  for (int j = 0; j < HV__MEMO_WAYS; j++) {
    int i = (m->last[kind] + j) % HV__MEMO_WAYS;
    hv__memo_slot *s = &m->slot[kind][i];
    if (s->bytes.len && hv__memo_match(&s->key, keys, n)) {
      s->used = ++m->tick;
      m->last[kind] = i;
      fhir_w_json(w, NULL, s->bytes.data, s->bytes.len);
      return 1;
    }
  }
  return 0;
}

/* Keeps the entry just written from out[start..] with its keys, in place
 * of the least recently used one of its kind; out of memory or too large:
 * not kept. */
static void hv__memo_keep(hv__tofhir_memo *m, const fhir_writer *w, int kind,
                          const char *const *keys, size_t n, size_t start) {
  if (!m || start == SIZE_MAX || fhir_w_error(w) || start >= w->out->len ||
      w->out->len - start > HV__MEMO_MAX)
    return;
  int k = 0;
  for (int i = 1; i < HV__MEMO_WAYS; i++)
    if (m->slot[kind][i].used < m->slot[kind][k].used)
      k = i;
  hv__memo_slot *s = &m->slot[kind][k];
  m->last[kind] = k;
  hvg_buf_reset(&s->key);
  hvg_buf_reset(&s->bytes);
  s->used = ++m->tick;
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++)
    rc = keys[i] ? hvg_buf_addc(&s->key, 'S') ||
                       hvg_buf_add(&s->key, keys[i], strlen(keys[i]) + 1)
                 : hvg_buf_addc(&s->key, 'N');
  if (rc || hvg_buf_add(&s->bytes, w->out->data + start,
                        w->out->len - start)) {
    hvg_buf_reset(&s->key);
    hvg_buf_reset(&s->bytes); /* len 0: never matches */
  }
}

static void hv__memo_free(hv__tofhir_memo *m) {
  if (!m)
    return;
  for (int k = 0; k < HV__M_KINDS; k++)
    for (int i = 0; i < HV__MEMO_WAYS; i++) {
      hvg_buf_free(&m->slot[k][i].key);
      hvg_buf_free(&m->slot[k][i].bytes);
    }
  free(m);
}

static hv__tofhir_memo *hv__memo_new(void) {
  hv__tofhir_memo *m = calloc(1, sizeof *m);
  for (int k = 0; m && k < HV__M_KINDS; k++)
    for (int i = 0; i < HV__MEMO_WAYS; i++) {
      hvg_buf_init(&m->slot[k][i].key, HV__MEMO_MAX);
      hvg_buf_init(&m->slot[k][i].bytes, HV__MEMO_MAX);
    }
  return m;
}

int hv_tofhir_init(hv_tofhir *t, const hv_mapping *m, const hv_catalog *cat) {
  memset(t, 0, sizeof *t);
  t->map = m;
  t->cat = cat;
  hvg_arena_init(&t->arena, 64 * 1024);
  const char *b = m->id_base;
  hvg_arena *a = &t->arena;
  t->sys_child = hvg_arena_printf(a, "%schild", b);
  t->sys_caregiver = hvg_arena_printf(a, "%scaregiver", b);
  t->sys_home_visitor = hvg_arena_printf(a, "%shome-visitor", b);
  t->sys_screening = hvg_arena_printf(a, "%sscreening", b);
  t->sys_referral = hvg_arena_printf(a, "%sreferral", b);
  t->sys_task = hvg_arena_printf(a, "%sreferral-task", b);
  t->sys_consent = hvg_arena_printf(a, "%sconsent", b);
  t->sys_org = hvg_arena_printf(a, "%sorganization", b);
  t->sys_program = hvg_arena_printf(a, "%sprogram", b);
  t->uuid = fhir_uuid_gen_new();
  t->memo = hv__memo_new();
  if (!t->uuid || !t->memo || !t->sys_child || !t->sys_caregiver || !t->sys_home_visitor ||
      !t->sys_screening || !t->sys_referral || !t->sys_task ||
      !t->sys_consent || !t->sys_org || !t->sys_program) {
    hv_tofhir_free(t);
    return HVG_ENOMEM;
  }
  return 0;
}

void hv_tofhir_free(hv_tofhir *t) {
  hvg_arena_free(&t->arena);
  fhir_uuid_gen_free(t->uuid);
  t->uuid = NULL;
  hv__memo_free(t->memo);
  t->memo = NULL;
}

/* ---- entries ---------------------------------------------------------- */

/* A resource of the Bundle: its identifier and derived urn:uuid. */
typedef struct hv__res {
  const char *type;
  fhir_identifier id;
  char urn[FHIR_URN_UUID_SIZE];
  fhir_ref ref; /* reference to it from other entries */
} hv__res;

static int hv__res_init(fhir_uuid_gen *g, hv__res *r, const char *type, const char *system,
                        const char *value, hvg_err *err) {
  r->type = type;
  r->id.system = system;
  r->id.value = value;
  int rc = fhir_uuid_for_identifier(g, type, system, value, r->urn);
  if (rc)
    return hvg_err_set(err, rc, NULL, "cannot derive resource id");
  memset(&r->ref, 0, sizeof r->ref);
  r->ref.reference = r->urn;
  return 0;
}

/* FHIR search token escaping (\ | , $) and URL percent-encoding of what is
 * not unreserved; ':' '/' and the system|value bar stay readable. Writes at
 * most 6 bytes per input byte to o and returns the end. */
#define HV__U(c) [(unsigned char)(c)] = 1
static const unsigned char hv__plain[256] = {
    HV__U('-'), HV__U('.'), HV__U('_'), HV__U('~'), HV__U(':'), HV__U('/'),
    HV__U('0'), HV__U('1'), HV__U('2'), HV__U('3'), HV__U('4'), HV__U('5'),
    HV__U('6'), HV__U('7'), HV__U('8'), HV__U('9'), HV__U('A'), HV__U('B'),
    HV__U('C'), HV__U('D'), HV__U('E'), HV__U('F'), HV__U('G'), HV__U('H'),
    HV__U('I'), HV__U('J'), HV__U('K'), HV__U('L'), HV__U('M'), HV__U('N'),
    HV__U('O'), HV__U('P'), HV__U('Q'), HV__U('R'), HV__U('S'), HV__U('T'),
    HV__U('U'), HV__U('V'), HV__U('W'), HV__U('X'), HV__U('Y'), HV__U('Z'),
    HV__U('a'), HV__U('b'), HV__U('c'), HV__U('d'), HV__U('e'), HV__U('f'),
    HV__U('g'), HV__U('h'), HV__U('i'), HV__U('j'), HV__U('k'), HV__U('l'),
    HV__U('m'), HV__U('n'), HV__U('o'), HV__U('p'), HV__U('q'), HV__U('r'),
    HV__U('s'), HV__U('t'), HV__U('u'), HV__U('v'), HV__U('w'), HV__U('x'),
    HV__U('y'), HV__U('z')};
#undef HV__U

static char *hv__enc(char *o, const char *s, int escape_search) {
  static const char hex[] = "0123456789ABCDEF";
  for (;;) {
    const char *run = s; /* unreserved bytes are copied as one run */
    while (hv__plain[(unsigned char)*s])
      s++;
    memcpy(o, run, (size_t)(s - run));
    o += s - run;
    unsigned char c = (unsigned char)*s;
    if (!c)
      return o;
    if (escape_search && (c == '\\' || c == '|' || c == ',' || c == '$')) {
      memcpy(o, "%5C", 3);
      o += 3;
    }
    o[0] = '%';
    o[1] = hex[c >> 4];
    o[2] = hex[c & 15];
    o += 3;
    s++;
  }
}

/* "identifier=system|value", encoded, in the arena; NULL when out of
 * memory. */
static const char *hv__if_none_exist(hvg_arena *a, const fhir_identifier *id) {
  size_t ls = strlen(id->system), lv = strlen(id->value);
  char *s = hvg_arena_alloc(a, 11 + 3 * ls + 1 + 6 * lv + 1);
  if (!s)
    return NULL;
  memcpy(s, "identifier=", 11);
  char *o = hv__enc(s + 11, id->system, 0);
  *o++ = '|';
  o = hv__enc(o, id->value, 1);
  *o = '\0';
  return s;
}

/* Closes an entry with a conditional create of r. */
static int hv__entry_end(fhir_writer *w, const hv__res *r, hvg_arena *a,
                         hvg_err *err) {
  fhir_bundle_request req = {"POST", r->type, NULL, NULL};
  req.if_none_exist = hv__if_none_exist(a, &r->id);
  if (!req.if_none_exist)
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  return fhir_bundle_entry_end(w, &req, err);
}

#define HV_TRY(expr)                                                          \
  do {                                                                        \
    int rc__ = (expr);                                                        \
    if (rc__)                                                                 \
      return rc__;                                                            \
  } while (0)

/* ---- people and organizations ---------------------------------------- */

typedef struct hv__ctx {
  const hv_tofhir *t;
  fhir_writer *w;
  const hv_record *r;
  hvg_arena *a;
  hvg_err *err;
} hv__ctx;

/* The resource builders behind one signature, for hv__entry. */
typedef int (*hv__build_fn)(fhir_writer *w, const void *what, hvg_err *err);
static int hv__b_org(fhir_writer *w, const void *o, hvg_err *err) {
  return fhir_organization_write(w, o, err);
}
static int hv__b_patient(fhir_writer *w, const void *p, hvg_err *err) {
  return fhir_patient_write(w, p, err);
}
static int hv__b_related(fhir_writer *w, const void *p, hvg_err *err) {
  return fhir_related_person_write(w, p, err);
}
static int hv__b_practitioner(fhir_writer *w, const void *p, hvg_err *err) {
  return fhir_practitioner_write(w, p, err);
}

/* The entry of resource r, built by build(what) unless one built from the
 * same inputs (keys: every input the entry depends on besides the
 * program's systems) is kept (see "entries of repeating inputs"). */
static int hv__entry(hv__ctx *c, int kind, const char *const *keys, size_t n,
                     const hv__res *r, hv__build_fn build, const void *what) {
  if (hv__memo_replay(c->t->memo, c->w, kind, keys, n))
    return fhir_w_error(c->w);
  fhir_bundle_entry_begin(c->w, r->urn);
  size_t start = fhir_w_start(c->w); /* the entry object, opened by fullUrl */
  HV_TRY(build(c->w, what, c->err));
  HV_TRY(hv__entry_end(c->w, r, c->a, c->err));
  hv__memo_keep(c->t->memo, c->w, kind, keys, n, start);
  return 0;
}

static int hv__org(hv__ctx *c, hv__res *org, const char *id, const char *name) {
  const char *sys = hv_is_npi(id) ? NPI_SYSTEM : c->t->sys_org;
  HV_TRY(hv__res_init(c->t->uuid, org, "Organization", sys, id, c->err));
  org->ref.display = name;
  fhir_organization o = {&org->id, name};
  const char *keys[] = {id, name};
  return hv__entry(c, HV__M_ORG, keys, 2, org, hv__b_org, &o);
}

static int hv__program_org(hv__ctx *c, hv__res *org) {
  const hv_mapping *m = c->t->map;
  HV_TRY(hv__res_init(c->t->uuid, org, "Organization", c->t->sys_program, m->program_id,
                      c->err));
  org->ref.display = m->program_name;
  fhir_organization o = {&org->id, m->program_name};
  return hv__entry(c, HV__M_PROGRAM, NULL, 0, org, hv__b_org, &o);
}

static int hv__child(hv__ctx *c, hv__res *pat, const hv__res *practice) {
  const hv_record *r = c->r;
  HV_TRY(hv__res_init(c->t->uuid, pat, "Patient", c->t->sys_child, r->v[HV_F_CHILD_ID],
                      c->err));
  fhir_person_name name = {r->v[HV_F_CHILD_FAMILY], r->v[HV_F_CHILD_GIVEN]};
  fhir_patient p = {0};
  p.identifier = &pat->id;
  p.name = (name.family || name.given) ? &name : NULL;
  p.gender = r->v[HV_F_CHILD_SEX];
  p.birth_date = r->v[HV_F_CHILD_BIRTH_DATE];
  p.general_practitioner = practice ? &practice->ref : NULL;
  const char *keys[] = {r->v[HV_F_CHILD_ID],
                        name.family,
                        name.given,
                        p.gender,
                        p.birth_date,
                        practice ? practice->ref.reference : NULL,
                        practice ? practice->ref.display : NULL};
  return hv__entry(c, HV__M_CHILD, keys, 7, pat, hv__b_patient, &p);
}

static int hv__caregiver_patient(hv__ctx *c, hv__res *pat) {
  const hv_record *r = c->r;
  HV_TRY(hv__res_init(c->t->uuid, pat, "Patient", c->t->sys_caregiver,
                      r->v[HV_F_CAREGIVER_ID], c->err));
  fhir_person_name name = {r->v[HV_F_CAREGIVER_FAMILY],
                           r->v[HV_F_CAREGIVER_GIVEN]};
  fhir_patient p = {0};
  p.identifier = &pat->id;
  p.name = (name.family || name.given) ? &name : NULL;
  p.phone = r->v[HV_F_CAREGIVER_PHONE];
  p.gender = r->v[HV_F_CAREGIVER_SEX];
  p.birth_date = r->v[HV_F_CAREGIVER_BIRTH_DATE];
  const char *keys[] = {r->v[HV_F_CAREGIVER_ID], name.family, name.given,
                        p.phone, p.gender, p.birth_date};
  return hv__entry(c, HV__M_CAREGIVER, keys, 6, pat, hv__b_patient, &p);
}

/* v3 RoleCode for the canonical caregiver relationship. */
static void hv__relationship(const char *rel, fhir_coding *coding,
                             fhir_concept *cc) {
  static const struct {
    const char *rel, *code, *display;
  } map[] = {{"mother", "MTH", "mother"},
             {"father", "FTH", "father"},
             {"parent", "PRN", "parent"},
             {"grandparent", "GRPRN", "grandparent"},
             {"guardian", "GUARD", "guardian"},
             {"foster_parent", "PRN", "parent"}};
  memset(cc, 0, sizeof *cc);
  cc->text = rel ? rel : "caregiver";
  for (size_t i = 0; rel && i < sizeof map / sizeof map[0]; i++)
    if (strcmp(rel, map[i].rel) == 0) {
      coding->system = V3_ROLE;
      coding->code = map[i].code;
      coding->display = map[i].display;
      cc->coding = coding;
      cc->n_coding = 1;
    }
}

static int hv__related_person(hv__ctx *c, hv__res *rp, const hv__res *child) {
  const hv_record *r = c->r;
  HV_TRY(hv__res_init(c->t->uuid, rp, "RelatedPerson", c->t->sys_caregiver,
                      r->v[HV_F_CAREGIVER_ID], c->err));
  fhir_person_name name = {r->v[HV_F_CAREGIVER_FAMILY],
                           r->v[HV_F_CAREGIVER_GIVEN]};
  fhir_coding coding;
  fhir_concept rel;
  hv__relationship(r->v[HV_F_CAREGIVER_RELATIONSHIP], &coding, &rel);
  fhir_related_person p = {0};
  p.identifier = &rp->id;
  p.patient = &child->ref;
  p.relationship = &rel;
  p.name = (name.family || name.given) ? &name : NULL;
  p.phone = r->v[HV_F_CAREGIVER_PHONE];
  p.gender = r->v[HV_F_CAREGIVER_SEX];
  p.birth_date = r->v[HV_F_CAREGIVER_BIRTH_DATE];
  const char *keys[] = {r->v[HV_F_CAREGIVER_ID],
                        child->ref.reference,
                        r->v[HV_F_CAREGIVER_RELATIONSHIP],
                        name.family,
                        name.given,
                        p.phone,
                        p.gender,
                        p.birth_date};
  return hv__entry(c, HV__M_RELATED, keys, 8, rp, hv__b_related, &p);
}

static int hv__home_visitor(hv__ctx *c, hv__res *pr) {
  HV_TRY(hv__res_init(c->t->uuid, pr, "Practitioner", c->t->sys_home_visitor,
                      c->r->v[HV_F_HOME_VISITOR_ID], c->err));
  fhir_practitioner p = {&pr->id, NULL};
  const char *keys[] = {c->r->v[HV_F_HOME_VISITOR_ID]};
  return hv__entry(c, HV__M_VISITOR, keys, 1, pr, hv__b_practitioner, &p);
}

/* Child (with practice), caregiver Patient and RelatedPerson as the record
 * has them. want_cg_patient: the caregiver is a subject. */
static int hv__family(hv__ctx *c, hv__res *child, hv__res *cg,
                      int *have_child, int *have_cg, int want_cg_patient) {
  const hv_record *r = c->r;
  hv__res practice;
  int have_practice = r->v[HV_F_PRACTICE_NPI] != NULL;
  *have_child = r->v[HV_F_CHILD_ID] != NULL;
  *have_cg = r->v[HV_F_CAREGIVER_ID] != NULL;
  if (have_practice && *have_child)
    HV_TRY(hv__org(c, &practice, r->v[HV_F_PRACTICE_NPI],
                   r->v[HV_F_PRACTICE_NAME]));
  if (*have_child)
    HV_TRY(hv__child(c, child, have_practice ? &practice : NULL));
  if (*have_cg && want_cg_patient)
    HV_TRY(hv__caregiver_patient(c, cg));
  if (*have_cg && *have_child) {
    hv__res rp;
    HV_TRY(hv__related_person(c, &rp, child));
  }
  return 0;
}

/* ---- screening -------------------------------------------------------- */

static const fhir_coding hv__pos = {V3_INTERP, "POS", "Positive"};
static const fhir_coding hv__neg = {V3_INTERP, "NEG", "Negative"};

static int hv__screening(hv__ctx *c, const hv_result *res) {
  const hv_record *r = c->r;
  const hv_instrument *in = res->instrument;
  int caregiver_subject = in->subject == HV_SUBJ_CAREGIVER;
  hv__res child, cg, hv, obs;
  int have_child, have_cg;
  HV_TRY(hv__family(c, &child, &cg, &have_child, &have_cg, caregiver_subject));
  int have_hv = r->v[HV_F_HOME_VISITOR_ID] != NULL;
  if (have_hv)
    HV_TRY(hv__home_visitor(c, &hv));
  HV_TRY(hv__res_init(c->t->uuid, &obs, "Observation", c->t->sys_screening,
                      r->v[HV_F_RECORD_ID], c->err));

  fhir_concept code = {&in->code, 1, in->name};
  fhir_concept cats[8];
  fhir_coding survey = {
      "http://terminology.hl7.org/CodeSystem/observation-category", "survey",
      "Survey"};
  size_t ncat = 0;
  int has_survey = 0;
  for (size_t i = 0; i < in->n_categories; i++)
    has_survey |= strcmp(in->categories[i].coding[0].code, "survey") == 0;
  if (!has_survey)
    cats[ncat++] = (fhir_concept){&survey, 1, NULL};
  for (size_t i = 0; i < in->n_categories && ncat < 8; i++)
    cats[ncat++] = in->categories[i];

  fhir_concept interp = {res->interpretation ? &hv__pos : &hv__neg, 1, NULL};
  fhir_meta meta = {NULL, in->security, in->n_security};

  fhir_obs_component comps[HV_MAX_DOMAINS + 1];
  fhir_concept comp_codes[HV_MAX_DOMAINS + 1];
  fhir_concept comp_interp[HV_MAX_DOMAINS];
  fhir_coding interval_code = {c->t->cat->instrument_system,
                               "questionnaire-interval",
                               "Questionnaire age interval"};
  size_t ncomp = 0;
  for (size_t d = 0; d < in->n_domains; d++) {
    const char *v = r->v[HV_F_DOMAIN_FIRST + (int)d];
    fhir_obs_component *oc = &comps[ncomp];
    memset(oc, 0, sizeof *oc);
    comp_codes[ncomp] = (fhir_concept){&in->domains[d].code, 1,
                                       in->domains[d].name};
    oc->code = &comp_codes[ncomp];
    if (v && !strchr(v, '.'))
      oc->value_integer = v;
    else
      oc->value_decimal = v;
    if (res->interpretation >= 0) {
      comp_interp[d] = (fhir_concept){
          res->domain_below[d] ? &hv__pos : &hv__neg, 1, NULL};
      oc->interpretation = &comp_interp[d];
    }
    ncomp++;
  }
  char months[16];
  if (res->interval && in->n_domains) {
    fhir_obs_component *oc = &comps[ncomp];
    memset(oc, 0, sizeof *oc);
    comp_codes[ncomp] = (fhir_concept){&interval_code, 1, NULL};
    oc->code = &comp_codes[ncomp];
    snprintf(months, sizeof months, "%d", res->interval->months);
    oc->value_decimal = months;
    oc->unit = "mo";
    oc->unit_system = "http://unitsofmeasure.org";
    oc->unit_code = "mo";
    ncomp++;
  }

  fhir_observation o = {0};
  o.meta = in->n_security ? &meta : NULL;
  o.identifier = &obs.id;
  o.status = "final";
  o.category = cats;
  o.n_category = ncat;
  o.code = &code;
  o.subject = caregiver_subject ? &cg.ref : &child.ref;
  o.effective = r->v[HV_F_SCREEN_DATE];
  o.performer = have_hv ? &hv.ref : NULL;
  const char *total = in->has_score ? r->v[HV_F_SCREEN_TOTAL] : NULL;
  if (total && !strchr(total, '.'))
    o.value_integer = total;
  else
    o.value_decimal = total;
  o.interpretation = res->interpretation >= 0 ? &interp : NULL;
  o.component = comps;
  o.n_component = ncomp;
  fhir_bundle_entry_begin(c->w, obs.urn);
  HV_TRY(fhir_observation_write(c->w, &o, c->err));
  return hv__entry_end(c->w, &obs, c->a, c->err);
}

/* ---- referral --------------------------------------------------------- */

static int hv__referral(hv__ctx *c, const hv_result *res) {
  const hv_record *r = c->r;
  const hv_service *svc = res->service;
  int caregiver_subject = svc->subject == HV_SUBJ_CAREGIVER;
  hv__res child, cg, prog, to, sr, task;
  int have_child, have_cg;
  HV_TRY(hv__family(c, &child, &cg, &have_child, &have_cg, caregiver_subject));
  HV_TRY(hv__program_org(c, &prog));
  HV_TRY(hv__org(c, &to, r->v[HV_F_REF_TO_ORG_ID], r->v[HV_F_REF_TO_ORG_NAME]));
  HV_TRY(hv__res_init(c->t->uuid, &sr, "ServiceRequest", c->t->sys_referral,
                      r->v[HV_F_RECORD_ID], c->err));
  HV_TRY(hv__res_init(c->t->uuid, &task, "Task", c->t->sys_task, r->v[HV_F_RECORD_ID],
                      c->err));

  fhir_identifier reason_id = {c->t->sys_screening, r->v[HV_F_REF_REASON_ID]};
  fhir_ref reason = {NULL, "Observation", &reason_id, NULL};
  const fhir_ref *reason_ref =
      res->reason_ok && r->v[HV_F_REF_REASON_ID] ? &reason : NULL;
  const fhir_ref *subject = caregiver_subject ? &cg.ref : &child.ref;
  fhir_concept code = {&svc->code, 1, svc->name};
  fhir_concept cat = {&svc->category, 1, NULL};
  const char *priority = r->v[HV_F_REF_URGENCY];

  fhir_service_request s = {0};
  s.identifier = &sr.id;
  s.status = "active";
  s.intent = "order";
  s.category = svc->has_category ? &cat : NULL;
  s.n_category = svc->has_category ? 1 : 0;
  s.priority = priority;
  s.code = &code;
  s.subject = subject;
  s.authored_on = r->v[HV_F_REF_DATE];
  s.requester = &prog.ref;
  s.performer = &to.ref;
  s.reason_reference = reason_ref;
  s.note = r->v[HV_F_REF_NOTES];
  fhir_bundle_entry_begin(c->w, sr.urn);
  HV_TRY(fhir_service_request_write(c->w, &s, c->err));
  HV_TRY(hv__entry_end(c->w, &sr, c->a, c->err));

  fhir_concept fulfill = {
      &(fhir_coding){"http://hl7.org/fhir/CodeSystem/task-code", "fulfill",
                     "Fulfill the focal request"},
      1, NULL};
  const char *why = NULL;
  const char *status = hv_task_status_for(r->v[HV_F_REF_STATUS], &why);
  fhir_task t = {0};
  t.identifier = &task.id;
  t.status = status ? status : "requested";
  t.status_reason = why;
  t.intent = "order";
  t.priority = priority;
  t.code = &fulfill;
  t.focus = &sr.ref;
  t.for_ = subject;
  t.authored_on = r->v[HV_F_REF_DATE];
  t.requester = &prog.ref;
  t.owner = &to.ref;
  t.reason_reference = reason_ref;
  fhir_bundle_entry_begin(c->w, task.urn);
  HV_TRY(fhir_task_write(c->w, &t, c->err));
  return hv__entry_end(c->w, &task, c->a, c->err);
}

/* ---- consent ---------------------------------------------------------- */

static int hv__consent(hv__ctx *c) {
  const hv_record *r = c->r;
  hv__res cg, prog, to, cons;
  HV_TRY(hv__caregiver_patient(c, &cg));
  HV_TRY(hv__program_org(c, &prog));
  HV_TRY(hv__org(c, &to, r->v[HV_F_CONSENT_ORG_ID], NULL));
  HV_TRY(hv__res_init(c->t->uuid, &cons, "Consent", c->t->sys_consent,
                      r->v[HV_F_RECORD_ID], c->err));

  /* The scopes the family agreed to, as the resource types they cover. */
  const char *classes[6];
  size_t nc = 0;
  const char *scope = r->v[HV_F_CONSENT_SCOPE];
  int all = scope == NULL;
  if (all || strstr(scope, "screening") || strstr(scope, "well_child"))
    classes[nc++] = "Observation";
  if (all || strstr(scope, "screening"))
    classes[nc++] = "QuestionnaireResponse";
  if (all || strstr(scope, "referral")) {
    classes[nc++] = "ServiceRequest";
    classes[nc++] = "Task";
  }
  classes[nc] = NULL;

  const char *end = r->v[HV_F_CONSENT_EXPIRES];
  const char *revoked = r->v[HV_F_CONSENT_REVOKED];
  if (revoked && (!end || strcmp(revoked, end) < 0))
    end = revoked;
  fhir_period period = {r->v[HV_F_CONSENT_GRANTED], end};
  fhir_coding scope_c = {
      "http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy",
      "Privacy Consent"};
  fhir_coding cat_c = {V3_ACTCODE, "IDSCL", "information disclosure"};
  fhir_coding policy_c = {
      "http://terminology.hl7.org/CodeSystem/consentpolicycodes", "hipaa-auth",
      "HIPAA Authorization"};
  fhir_coding role_c = {
      "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP",
      "information recipient"};
  fhir_coding action_c = {"http://terminology.hl7.org/CodeSystem/consentaction",
                          "disclose", "Disclose"};
  fhir_coding purpose_c = {"http://terminology.hl7.org/CodeSystem/v3-ActReason",
                           "TREAT", "treatment"};
  fhir_concept scope_cc = {&scope_c, 1, NULL}, cat_cc = {&cat_c, 1, NULL},
               policy_cc = {&policy_c, 1, NULL}, role_cc = {&role_c, 1, NULL},
               action_cc = {&action_c, 1, NULL};
  fhir_consent k = {0};
  k.identifier = &cons.id;
  k.status = revoked ? "inactive" : "active";
  k.scope = &scope_cc;
  k.category = &cat_cc;
  k.patient = &cg.ref;
  k.date_time = r->v[HV_F_CONSENT_GRANTED];
  k.performer = &cg.ref;
  k.organization = &prog.ref;
  k.policy_rule = &policy_cc;
  k.provision_type = "permit";
  k.provision_period = &period;
  k.actor_role = &role_cc;
  k.actor = &to.ref;
  k.action = &action_cc;
  k.purpose = &purpose_c;
  k.classes = classes;
  fhir_bundle_entry_begin(c->w, cons.urn);
  HV_TRY(fhir_consent_write(c->w, &k, c->err));
  return hv__entry_end(c->w, &cons, c->a, c->err);
}

int hv_tofhir_bundle(const hv_tofhir *t, fhir_writer *w, const hv_result *res,
                     hvg_arena *a, hvg_err *err) {
  if (!t || !w || !res || !a)
    return hvg_err_set(err, HVG_EINVAL, NULL, "NULL argument");
  if (res->rejected)
    return hvg_err_set(err, HVG_EINVAL, NULL, "record was rejected");
  hv__ctx c = {t, w, &res->rec, a, err};
  hvg_err_clear(err);
  HV_TRY(fhir_bundle_begin(w, NULL, "transaction", NULL, err));
  int rc = HVG_EINVAL;
  switch (res->rec.type) {
  case HV_REC_SCREENING:
    rc = res->instrument ? hv__screening(&c, res) : HVG_EINVAL;
    break;
  case HV_REC_REFERRAL:
    rc = res->service ? hv__referral(&c, res) : HVG_EINVAL;
    break;
  case HV_REC_CONSENT:
    rc = hv__consent(&c);
    break;
  case HV_REC_WELLCHILD:
  case HV_REC__COUNT:
    rc = hvg_err_set(err, HVG_EINVAL, NULL,
                     "well-child records are read from partners, not mapped "
                     "to outbound Bundles");
    break;
  }
  if (!rc) {
    fhir_bundle_end(w);
    rc = fhir_w_error(w);
  }
  if (rc && err && !err->msg[0])
    hvg_err_set(err, rc, NULL, "cannot write the Bundle: %s",
                hvg_strerror(rc));
  return rc;
}
