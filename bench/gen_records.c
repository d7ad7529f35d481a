/* gen_records — synthetic screening records for the `hvgate map` benchmark.
 *
 * Writes CSV in exactly the layout of tests/data/program-export/screenings.csv
 * (same header), streaming, deterministic from --seed, sized by --records N
 * or --bytes SIZE (suffix K, M, G: KiB, MiB, GiB). Every row is meant to be
 * valid for conf/mappings/program-export.json: instruments, subjects, score
 * ranges, ASQ intervals and cutoffs are read from the instrument catalogue
 * (so the generated rows follow it), dates lie before --end-date, birth dates
 * before screening dates, and the program's `result` agrees with the
 * catalogue's cutoff when given (so hvgate prints no warnings either).
 *
 * Realism: families of one caregiver and one child with 1-6 screenings each;
 * UTF-8 names with accents; some quoted fields (practice names with commas or
 * quotes, some names quoted without need); occasional case variants of codes
 * ("Caregiver", "asq-3"), padded names and empty optional columns. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef HVG_DEFAULT_CATALOG
#define HVG_DEFAULT_CATALOG "conf/catalog/instruments.json"
#endif

#define MAX_INSTR 32
#define MAX_IVL 32
#define NDOM 5

static const char HEADER[] =
    "record_id,family_id,caregiver_id,caregiver_first_name,caregiver_last_name,"
    "caregiver_dob,caregiver_phone,child_id,child_first_name,child_last_name,"
    "child_dob,child_sex,pediatric_practice_npi,pediatric_practice_name,"
    "home_visitor_id,screen_date,instrument,subject,total_score,"
    "asq_interval_months,asq_communication,asq_gross_motor,asq_fine_motor,"
    "asq_problem_solving,asq_personal_social,result";

/* ---- random numbers: splitmix64 seeding xoshiro256** ------------------- */

static uint64_t rng_s[4];

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rnd64(void) {
  uint64_t r = rotl(rng_s[1] * 5, 7) * 9;
  uint64_t t = rng_s[1] << 17;
  rng_s[2] ^= rng_s[0];
  rng_s[3] ^= rng_s[1];
  rng_s[1] ^= rng_s[2];
  rng_s[0] ^= rng_s[3];
  rng_s[2] ^= t;
  rng_s[3] = rotl(rng_s[3], 45);
  return r;
}

/* uniform in [0, n) */
static long rnd(long n) { return n <= 1 ? 0 : (long)(rnd64() % (uint64_t)n); }
/* uniform in [lo, hi] */
static long rnd_in(long lo, long hi) { return hi <= lo ? lo : lo + rnd(hi - lo + 1); }
/* true with probability per-mille pm */
static int chance(int pm) { return rnd(1000) < pm; }

/* ---- dates ------------------------------------------------------------ */

static long days_from_civil(long y, long m, long d) {
  y -= m <= 2;
  long era = (y >= 0 ? y : y - 399) / 400;
  long yoe = y - era * 400;
  long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static void civil_from_days(long z, char out[11]) {
  z += 719468;
  long era = (z >= 0 ? z : z - 146096) / 146097;
  long doe = z - era * 146097;
  long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  long y = yoe + era * 400;
  long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  long mp = (5 * doy + 2) / 153;
  long d = doy - (153 * mp + 2) / 5 + 1;
  long m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
  int v[3] = {(int)(y % 10000), (int)m, (int)d};
  out[0] = (char)('0' + v[0] / 1000);
  out[1] = (char)('0' + v[0] / 100 % 10);
  out[2] = (char)('0' + v[0] / 10 % 10);
  out[3] = (char)('0' + v[0] % 10);
  out[4] = '-';
  out[5] = (char)('0' + v[1] / 10);
  out[6] = (char)('0' + v[1] % 10);
  out[7] = '-';
  out[8] = (char)('0' + v[2] / 10);
  out[9] = (char)('0' + v[2] % 10);
  out[10] = '\0';
}

static int parse_date(const char *s, long *days) {
  int y, m, d;
  char tail;
  if (sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || y < 1900 ||
      m < 1 || m > 12 || d < 1 || d > 31)
    return -1;
  *days = days_from_civil(y, m, d);
  return 0;
}

/* ---- catalogue -------------------------------------------------------- */

enum rule { R_NONE, R_TOTAL, R_DOMAINS, R_INTERVAL_TOTAL };

typedef struct interval {
  int months;
  long min_days, max_days;
  double cutoffs[NDOM];
  int has_cutoffs;
  double cutoff_total;
  int has_cutoff_total;
  double score_max;
  int has_max;
} interval;

typedef struct instrument {
  char id[32];
  int child; /* subject */
  int has_score;
  long smin, smax;
  enum rule rule;
  double cutoff;
  int ndom;
  interval ivl[MAX_IVL];
  int nivl;
  /* generator settings */
  int weight;    /* relative frequency */
  int pos_pm;    /* per-mille of positive screens */
  long min_age, max_age; /* child age window in days (child instruments) */
} instrument;

static instrument instr[MAX_INSTR];
static int ninstr;
static int fallback = -1; /* caregiver instrument used when a child one does
                             not fit the child's age */

/* Mix of a home visiting program's screenings (weight, positive rate). */
static const struct {
  const char *id;
  int weight, pos_pm;
  long min_age, max_age;
} MIX[] = {
    {"EPDS", 14, 150, 0, 0},      {"PHQ-9", 10, 110, 0, 0},
    {"PHQ-2", 14, 150, 0, 0},     {"HITS", 8, 50, 0, 0},
    {"AUDIT-C", 8, 200, 0, 0},    {"HUNGER-VS", 12, 250, 0, 0},
    {"ASQ-3", 18, 0, 0, 0},       {"ASQ:SE-2", 11, 150, 0, 0},
    {"M-CHAT-R", 5, 100, 487, 943}, /* 16-30 months */
};

static double num(const cJSON *o, const char *k, double def, int *has) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  if (has)
    *has = cJSON_IsNumber(v);
  return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static int load_catalog(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "gen_records: %s: %s\n", path, strerror(errno));
    return -1;
  }
  size_t cap = 1 << 16, len = 0;
  char *text = malloc(cap);
  size_t n;
  while (text && (n = fread(text + len, 1, cap - len - 1, f)) > 0) {
    len += n;
    if (cap - len < 2) {
      char *t = realloc(text, cap * 2);
      if (!t) {
        free(text);
        text = NULL;
        break;
      }
      text = t;
      cap *= 2;
    }
  }
  fclose(f);
  if (!text)
    return -1;
  text[len] = '\0';
  cJSON *root = cJSON_Parse(text);
  free(text);
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "instruments");
  if (!cJSON_IsArray(arr)) {
    fprintf(stderr, "gen_records: %s: no instruments array\n", path);
    cJSON_Delete(root);
    return -1;
  }
  const cJSON *ji;
  cJSON_ArrayForEach(ji, arr) {
    if (ninstr >= MAX_INSTR)
      break;
    instrument *in = &instr[ninstr];
    memset(in, 0, sizeof *in);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(ji, "id");
    const cJSON *subj = cJSON_GetObjectItemCaseSensitive(ji, "subject");
    if (!cJSON_IsString(id) || !cJSON_IsString(subj) ||
        strlen(id->valuestring) >= sizeof in->id)
      continue;
    snprintf(in->id, sizeof in->id, "%s", id->valuestring);
    in->child = strcmp(subj->valuestring, "child") == 0;
    const cJSON *score = cJSON_GetObjectItemCaseSensitive(ji, "score");
    if (score) {
      int h1, h2;
      in->smin = (long)num(score, "min", 0, &h1);
      in->smax = (long)num(score, "max", 0, &h2);
      in->has_score = h1 && h2;
    }
    const cJSON *pos = cJSON_GetObjectItemCaseSensitive(ji, "positive");
    const cJSON *rule = cJSON_GetObjectItemCaseSensitive(pos, "rule");
    if (cJSON_IsString(rule)) {
      if (!strcmp(rule->valuestring, "total_at_least"))
        in->rule = R_TOTAL;
      else if (!strcmp(rule->valuestring, "any_domain_below_cutoff"))
        in->rule = R_DOMAINS;
      else if (!strcmp(rule->valuestring, "total_at_least_interval_cutoff"))
        in->rule = R_INTERVAL_TOTAL;
    }
    in->cutoff = num(pos, "value", 0, NULL);
    const cJSON *doms = cJSON_GetObjectItemCaseSensitive(ji, "domains");
    const char *domid[NDOM] = {0};
    const cJSON *jd;
    cJSON_ArrayForEach(jd, doms) {
      const cJSON *did = cJSON_GetObjectItemCaseSensitive(jd, "id");
      if (in->ndom < NDOM && cJSON_IsString(did))
        domid[in->ndom++] = did->valuestring;
    }
    const cJSON *ivls = cJSON_GetObjectItemCaseSensitive(ji, "intervals");
    const cJSON *jv;
    cJSON_ArrayForEach(jv, ivls) {
      if (in->nivl >= MAX_IVL)
        break;
      interval *iv = &in->ivl[in->nivl++];
      int h;
      iv->months = (int)num(jv, "months", 0, NULL);
      iv->min_days = (long)num(jv, "min_age_days", -1, NULL);
      iv->max_days = (long)num(jv, "max_age_days", -1, NULL);
      iv->cutoff_total = num(jv, "cutoff_total", 0, &iv->has_cutoff_total);
      iv->score_max = num(jv, "score_max", 0, &iv->has_max);
      const cJSON *cut = cJSON_GetObjectItemCaseSensitive(jv, "cutoffs");
      iv->has_cutoffs = cut != NULL && in->ndom > 0;
      for (int d = 0; d < in->ndom; d++) {
        iv->cutoffs[d] = num(cut, domid[d], 0, &h);
        iv->has_cutoffs &= h;
      }
    }
    in->weight = 5;
    in->pos_pm = 150;
    for (size_t k = 0; k < sizeof MIX / sizeof MIX[0]; k++)
      if (!strcmp(MIX[k].id, in->id)) {
        in->weight = MIX[k].weight;
        in->pos_pm = MIX[k].pos_pm;
        in->min_age = MIX[k].min_age;
        in->max_age = MIX[k].max_age;
      }
    /* only instruments whose rows we know how to make valid */
    if (in->rule == R_NONE || (in->rule == R_TOTAL && !in->has_score) ||
        (in->rule == R_DOMAINS && (!in->nivl || !in->ndom)) ||
        (in->rule == R_INTERVAL_TOTAL && (!in->nivl || !in->has_score)))
      continue;
    if (!in->child && fallback < 0)
      fallback = ninstr;
    ninstr++;
  }
  cJSON_Delete(root);
  if (!ninstr || fallback < 0) {
    fprintf(stderr, "gen_records: %s: no usable instruments\n", path);
    return -1;
  }
  return 0;
}

/* ---- people and places ------------------------------------------------ */

static const char *const CG_GIVEN[] = {
    "Sofía", "Erica", "Imani", "Maria", "Kira", "Keisha", "Destiny",
    "Fatima", "Chloé", "Ana", "Lucía", "Zoë", "Renée", "Inés", "Aaliyah",
    "Jasmine", "Guadalupe", "Mei", "Priya", "Amani", "Hannah", "Brianna",
    "Élodie", "María José", "Nkechi", "Thảo", "Seo-yeon", "Ayşe", "Björk",
    "Mary Ann", "Dulce", "Marisol", "Tiana", "Yesenia", "Ngozi", "Leilani",
    "José", "Luis", "Marcus", "Đức", "André", "Malik"};
static const char *const CHILD_GIVEN[] = {
    "Nia", "Yara", "Ezra", "Amara", "Zoe", "Mateo", "Mía", "Theo", "Liam",
    "Ava", "Noé", "Léa", "Santiago", "Jayden", "Aria", "Élise", "Joaquín",
    "Kai", "Zuri", "Sebastián", "Camila", "Olivia", "Isaiah", "Nayeli",
    "Emeka", "Inés", "Søren", "Maëlle", "Renée", "Ximena", "Thiago", "Chloé"};
static const char *const FAMILY[] = {
    "Lopez", "Harris", "Martínez", "Jackson", "Wilson", "Williams",
    "Hernández", "Smith-Jones", "Nguyễn", "García", "Núñez", "O'Brien",
    "Müller", "Johnson", "Brown", "Davis", "Rodríguez", "Pérez", "Kowalski",
    "Okafor", "Tran", "Patel", "Kim", "Yılmaz", "Dubois", "Øvergård",
    "Sánchez", "Jiménez", "Begay", "Cruz", "De la Cruz", "Ibáñez"};

typedef struct practice {
  char id[16];
  const char *name;
  long npi_base; /* > 0: make a valid NPI from this 9-digit base */
} practice;

static practice PRACTICES[] = {
    {"1234567893", "Riverside Pediatrics", 0},
    {"1003000126", "Eastside Family Health Center", 0},
    {"1245319599", "Mountain View Children's Clinic", 0},
    {"", "Smith, Patel & Associates Pediatrics", 114785630},
    {"", "Kids First Pediatrics, P.C.", 152039874},
    {"", "Clínica del Niño \"Esperanza\"", 167340092},
    {"", "Northside Community Health, Pediatric Unit", 198021457},
    {"", "Centro de Salud Niños Felices", 133308761},
    {"PR-0042", "Lakeview Family Practice", 0},
    {"PRAC 204", "Saint Mary's Children's Health", 0},
};
#define NPRACTICES (sizeof PRACTICES / sizeof PRACTICES[0])

/* Valid NPI check digit: Luhn over "80840" + the nine digits. */
static int npi_valid(const char *id) {
  char d[16];
  memcpy(d, "80840", 5);
  memcpy(d + 5, id, 10);
  int sum = 0;
  for (int i = 14, dbl = 0; i >= 0; i--, dbl = !dbl) {
    int v = d[i] - '0';
    if (dbl && (v *= 2) > 9)
      v -= 9;
    sum += v;
  }
  return sum % 10 == 0;
}

static void make_npis(void) {
  for (size_t i = 0; i < NPRACTICES; i++) {
    if (PRACTICES[i].npi_base <= 0)
      continue;
    for (int c = 0; c < 10; c++) {
      snprintf(PRACTICES[i].id, sizeof PRACTICES[i].id, "%09ld%d",
               PRACTICES[i].npi_base, c);
      if (npi_valid(PRACTICES[i].id))
        break;
    }
  }
}

#define PICK(a) (a[rnd((long)(sizeof a / sizeof a[0]))])

/* ---- output ----------------------------------------------------------- */

typedef struct obuf {
  FILE *f;
  char *buf;
  size_t len, cap;
  unsigned long long total;
  const char *eol;
  int err;
} obuf;

static int out_flush(obuf *o) {
  if (o->len && fwrite(o->buf, 1, o->len, o->f) != o->len)
    o->err = 1;
  o->total += o->len;
  o->len = 0;
  return o->err;
}

static void out_add(obuf *o, const char *s, size_t n) {
  /* fields are far smaller than the buffer: flushing always makes room */
  if (o->len + n > o->cap && out_flush(o))
    return;
  memcpy(o->buf + o->len, s, n);
  o->len += n;
}

static void out_s(obuf *o, const char *s) { out_add(o, s, strlen(s)); }

/* A CSV field: quoted when it must be (delimiter, quote, line break) or when
 * `force` is set; quotes are doubled. The delimiter comes first. */
static void out_field(obuf *o, const char *s, int force, int first) {
  if (!first)
    out_add(o, ",", 1);
  if (!force && !strpbrk(s, ",\"\r\n")) {
    out_s(o, s);
    return;
  }
  out_add(o, "\"", 1);
  for (const char *p = s; *p; p++) {
    if (*p == '"')
      out_add(o, "\"", 1);
    out_add(o, p, 1);
  }
  out_add(o, "\"", 1);
}

static void out_num(obuf *o, long v) {
  char t[24];
  snprintf(t, sizeof t, "%ld", v);
  out_field(o, t, 0, 0);
}

/* ---- records ---------------------------------------------------------- */

typedef struct family {
  unsigned long n;
  const char *cg_given, *cg_family, *child_given, *child_family;
  char cg_dob[11], child_dob[11], phone[20];
  long child_dob_days;
  const char *sex;
  const practice *pr;
  char hv[8];
} family;

static const char *cased(const char *code, char *tmp, size_t cap) {
  /* occasional case variants; codes are matched case-insensitively */
  if (chance(20)) {
    snprintf(tmp, cap, "%s", code);
    tmp[0] = (char)(tmp[0] >= 'a' && tmp[0] <= 'z' ? tmp[0] - 32 : tmp[0]);
    return tmp;
  }
  return code;
}

static const char *padded(const char *s, char *tmp, size_t cap) {
  if (chance(5)) {
    snprintf(tmp, cap, " %s ", s);
    return tmp;
  }
  return s;
}

static void new_family(family *f, unsigned long n, long end_days) {
  f->n = n;
  f->cg_family = PICK(FAMILY);
  f->cg_given = PICK(CG_GIVEN);
  f->child_family = chance(850) ? f->cg_family : PICK(FAMILY);
  f->child_given = PICK(CHILD_GIVEN);
  /* child 2 months to ~5 years old at the end date */
  f->child_dob_days = end_days - rnd_in(60, 1900);
  civil_from_days(f->child_dob_days, f->child_dob);
  if (chance(30))
    f->cg_dob[0] = '\0';
  else
    civil_from_days(f->child_dob_days - rnd_in(16 * 365, 44 * 365), f->cg_dob);
  if (chance(50))
    f->phone[0] = '\0';
  else if (chance(30))
    snprintf(f->phone, sizeof f->phone, "(555) %03ld-%04ld", rnd_in(200, 999),
             rnd(10000));
  else
    snprintf(f->phone, sizeof f->phone, "555-%03ld-%04ld", rnd_in(200, 999),
             rnd(10000));
  long s = rnd(1000);
  f->sex = s < 485 ? "female" : s < 970 ? "male" : s < 980 ? "unknown"
         : s < 985 ? "other" : "";
  f->pr = chance(50) ? NULL : &PRACTICES[rnd((long)NPRACTICES)];
  if (chance(30))
    f->hv[0] = '\0';
  else
    snprintf(f->hv, sizeof f->hv, "HV%02ld", rnd_in(1, 40));
}

static const interval *first_interval(const instrument *in, long age) {
  for (int i = 0; i < in->nivl; i++)
    if (in->ivl[i].min_days >= 0 && age >= in->ivl[i].min_days &&
        age <= in->ivl[i].max_days)
      return &in->ivl[i];
  return NULL;
}

/* Does instrument `in` fit a child of `age` days? */
static int fits(const instrument *in, long age) {
  if (!in->child)
    return 1;
  if (in->max_age && (age < in->min_age || age > in->max_age))
    return 0;
  if (in->rule == R_DOMAINS || in->rule == R_INTERVAL_TOTAL)
    return first_interval(in, age) != NULL;
  return 1;
}

/* By weight among the instruments that fit the child's age. */
static const instrument *pick_instrument(long age) {
  static int total;
  if (!total)
    for (int i = 0; i < ninstr; i++)
      total += instr[i].weight;
  for (int tries = 0; tries < 16; tries++) {
    long r = rnd(total);
    int i = 0;
    while (r >= instr[i].weight) {
      r -= instr[i].weight;
      i++;
    }
    if (fits(&instr[i], age))
      return &instr[i];
  }
  return &instr[fallback];
}

/* A random multiple of 5 in [lo, hi] (0 <= lo); the smallest multiple of 5
 * at or above lo when there is none. */
static long mult5(double lo, double hi) {
  long a = (long)(lo / 5), b = (long)(hi / 5);
  if ((double)(a * 5) < lo)
    a++;
  return b < a ? a * 5 : 5 * rnd_in(a, b);
}

static void record(obuf *o, const family *f, unsigned long rid, long end_days) {
  char tmp[11], c1[64], c2[64], c3[64], c4[64];
  long screen = rnd_in(f->child_dob_days + 30, end_days);
  long age = screen - f->child_dob_days;
  const instrument *in = pick_instrument(age);
  char screen_s[11];
  civil_from_days(screen, screen_s);

  char rec_id[24], fam[16], cg[16], ch[16];
  snprintf(rec_id, sizeof rec_id, "S%09lu", rid);
  snprintf(fam, sizeof fam, "F%07lu", f->n);
  snprintf(cg, sizeof cg, "CG%07lu", f->n);
  snprintf(ch, sizeof ch, "CH%07lu", f->n);
  out_field(o, rec_id, 0, 1);
  out_field(o, fam, 0, 0);
  out_field(o, cg, 0, 0);
  out_field(o, padded(f->cg_given, c1, sizeof c1), chance(20), 0);
  out_field(o, f->cg_family, chance(20), 0);
  out_field(o, f->cg_dob, 0, 0);
  out_field(o, f->phone, 0, 0);
  out_field(o, ch, 0, 0);
  out_field(o, f->child_given, chance(20), 0);
  out_field(o, padded(f->child_family, c2, sizeof c2), chance(20), 0);
  out_field(o, f->child_dob, 0, 0);
  out_field(o, f->sex, 0, 0);
  out_field(o, f->pr ? f->pr->id : "", 0, 0);
  out_field(o, f->pr ? f->pr->name : "", 0, 0);
  out_field(o, f->hv, 0, 0);
  out_field(o, screen_s, 0, 0);
  /* instrument, sometimes in lower case */
  if (chance(20)) {
    size_t k = 0;
    for (; in->id[k] && k + 1 < sizeof c3; k++)
      c3[k] = (char)(in->id[k] >= 'A' && in->id[k] <= 'Z' ? in->id[k] + 32
                                                          : in->id[k]);
    c3[k] = '\0';
    out_field(o, c3, 0, 0);
  } else {
    out_field(o, in->id, 0, 0);
  }
  const char *subj = in->child ? "child" : "caregiver";
  out_field(o, chance(50) ? "" : cased(subj, c4, sizeof c4), 0, 0);

  int positive = 0;
  const interval *iv = NULL;
  int give_months = 0;
  long total = -1, dom[NDOM];
  switch (in->rule) {
  case R_TOTAL: {
    long cut = (long)in->cutoff;
    if (cut < in->smin)
      cut = in->smin;
    positive = chance(in->pos_pm) || cut <= in->smin;
    total = positive ? rnd_in(cut, in->smax) : rnd_in(in->smin, cut - 1);
    positive = (double)total >= in->cutoff;
    break;
  }
  case R_INTERVAL_TOTAL: {
    iv = first_interval(in, age);
    give_months = chance(300);
    double max = iv->has_max ? iv->score_max : (double)in->smax;
    double cut = iv->has_cutoff_total ? iv->cutoff_total : max + 1;
    if (chance(in->pos_pm) && cut <= max) {
      double hi = cut + 120 < max ? cut + 120 : max;
      total = mult5(cut, hi);
      if ((double)total > hi) /* no multiple of 5 in range */
        total = (long)cut;
    } else {
      total = cut >= 5 ? mult5(0, cut - 1) : in->smin;
    }
    if (total < in->smin)
      total = in->smin;
    positive = iv->has_cutoff_total && (double)total >= iv->cutoff_total;
    break;
  }
  case R_DOMAINS: {
    /* the questionnaire for the child's age; when the export leaves the
     * interval out, hvgate takes the first window holding the age */
    give_months = chance(850);
    const interval *cand[MAX_IVL];
    int nc = 0;
    for (int i = 0; i < in->nivl; i++)
      if (age >= in->ivl[i].min_days && age <= in->ivl[i].max_days)
        cand[nc++] = &in->ivl[i];
    iv = give_months ? cand[rnd(nc)] : cand[0];
    for (int d = 0; d < in->ndom; d++) {
      double cut = iv->has_cutoffs ? iv->cutoffs[d] : 0;
      if (cut > 0 && chance(60))
        dom[d] = mult5(0, cut - 0.001 < 0 ? 0 : cut - 0.001);
      else
        dom[d] = mult5(cut, 60);
      if ((double)dom[d] < cut)
        positive = 1;
    }
    break;
  }
  case R_NONE:
    break;
  }
  if (in->rule == R_TOTAL || in->rule == R_INTERVAL_TOTAL)
    out_num(o, total);
  else
    out_field(o, "", 0, 0);
  if (iv && give_months)
    out_num(o, iv->months);
  else
    out_field(o, "", 0, 0);
  for (int d = 0; d < NDOM; d++) {
    if (in->rule == R_DOMAINS && d < in->ndom)
      out_num(o, dom[d]);
    else
      out_field(o, "", 0, 0);
  }
  int interpretable = in->rule == R_TOTAL ||
                      (in->rule == R_INTERVAL_TOTAL && iv->has_cutoff_total) ||
                      (in->rule == R_DOMAINS && iv->has_cutoffs);
  const char *res = positive ? "positive" : "negative";
  out_field(o, !interpretable || chance(100) ? "" : cased(res, tmp, sizeof tmp),
            0, 0);
  out_s(o, o->eol);
}

/* ---- main ------------------------------------------------------------- */

static void usage(FILE *f) {
  fputs("usage: gen_records (--records N | --bytes SIZE) [options]\n"
        "\n"
        "Write synthetic, valid screening records as CSV in the layout of\n"
        "tests/data/program-export/screenings.csv.\n"
        "\n"
        "  --records N        write N records\n"
        "  --bytes SIZE       write records until SIZE bytes (suffix K, M, G\n"
        "                     for KiB, MiB, GiB; e.g. 10M, 2G)\n"
        "  --seed N           random seed (default 1); same seed, same file\n"
        "  --end-date DATE    latest screening date (default 2026-10-31)\n"
        "  --catalog FILE     instrument catalogue (default " HVG_DEFAULT_CATALOG
        ")\n"
        "  --crlf             end lines with CRLF (default LF)\n"
        "  -o FILE            output file (default standard output)\n"
        "\n"
        "A summary 'N records, B bytes' goes to standard error.\n",
        f);
}

static int parse_size(const char *s, unsigned long long *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *s == '-')
    return -1;
  unsigned long long mul = 1;
  switch (*end) {
  case '\0': break;
  case 'k': case 'K': mul = 1ULL << 10; end++; break;
  case 'm': case 'M': mul = 1ULL << 20; end++; break;
  case 'g': case 'G': mul = 1ULL << 30; end++; break;
  default: return -1;
  }
  if (mul > 1 && (!strcmp(end, "B") || !strcmp(end, "iB")))
    end += strlen(end);
  if (*end || v > (~0ULL) / mul)
    return -1;
  *out = v * mul;
  return 0;
}

int main(int argc, char **argv) {
  unsigned long long nrec = 0, nbytes = 0, seed = 1;
  const char *catalog = HVG_DEFAULT_CATALOG, *outpath = NULL;
  const char *end_date = "2026-10-31";
  int crlf = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--crlf")) {
      crlf = 1;
      continue;
    }
    if (!v) {
      fprintf(stderr, "gen_records: %s needs a value\n", a);
      usage(stderr);
      return 64;
    }
    i++;
    if (!strcmp(a, "--records")) {
      char *e;
      errno = 0;
      nrec = strtoull(v, &e, 10);
      if (errno || *e || *v < '0' || *v > '9' || !nrec) {
        fprintf(stderr, "gen_records: --records takes a positive number\n");
        return 64;
      }
    } else if (!strcmp(a, "--bytes")) {
      if (parse_size(v, &nbytes) || !nbytes) {
        fprintf(stderr, "gen_records: --bytes takes a size like 10M or 2G\n");
        return 64;
      }
    } else if (!strcmp(a, "--seed")) {
      char *e;
      seed = strtoull(v, &e, 10);
      if (*e) {
        fprintf(stderr, "gen_records: --seed takes a number\n");
        return 64;
      }
    } else if (!strcmp(a, "--end-date")) {
      end_date = v;
    } else if (!strcmp(a, "--catalog")) {
      catalog = v;
    } else if (!strcmp(a, "-o")) {
      outpath = v;
    } else {
      fprintf(stderr, "gen_records: unknown option '%s'\n", a);
      usage(stderr);
      return 64;
    }
  }
  if (!nrec == !nbytes) {
    fprintf(stderr, "gen_records: give exactly one of --records, --bytes\n");
    usage(stderr);
    return 64;
  }
  long end_days;
  if (parse_date(end_date, &end_days)) {
    fprintf(stderr, "gen_records: --end-date must be YYYY-MM-DD\n");
    return 64;
  }
  if (load_catalog(catalog))
    return 78;
  make_npis();
  uint64_t sm = seed;
  for (int i = 0; i < 4; i++)
    rng_s[i] = splitmix64(&sm);

  obuf o = {stdout, NULL, 0, (size_t)1 << 20, 0, crlf ? "\r\n" : "\n", 0};
  if (outpath && !(o.f = fopen(outpath, "wb"))) {
    fprintf(stderr, "gen_records: %s: %s\n", outpath, strerror(errno));
    return 73;
  }
  o.buf = malloc(o.cap);
  if (!o.buf)
    return 71;
  out_s(&o, HEADER);
  out_s(&o, o.eol);
  unsigned long long written = 0;
  unsigned long fam_n = 0;
  for (;;) {
    family f;
    new_family(&f, ++fam_n, end_days);
    long n = rnd_in(1, 6);
    int done = 0;
    for (long k = 0; k < n; k++) {
      if ((nrec && written >= nrec) ||
          (nbytes && o.total + o.len >= nbytes)) {
        done = 1;
        break;
      }
      record(&o, &f, (unsigned long)written + 1, end_days);
      written++;
    }
    if (done)
      break;
  }
  int bad = out_flush(&o) || fflush(o.f) || (outpath && fclose(o.f));
  free(o.buf);
  if (bad) {
    fprintf(stderr, "gen_records: write error: %s\n", strerror(errno));
    return 74;
  }
  fprintf(stderr, "gen_records: %llu records, %llu bytes\n", written, o.total);
  return 0;
}
