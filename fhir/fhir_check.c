#include "fhir_check.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int fc__digits(const char *s, int n) {
  for (int i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return 0;
  return 1;
}

static int fc__num(const char *s, int n) {
  int v = 0;
  for (int i = 0; i < n; i++)
    v = v * 10 + (s[i] - '0');
  return v;
}

static int fc__days_in_month(int y, int m) {
  static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
    return 29;
  return dm[m - 1];
}

/* Parses a date prefix; returns the number of characters used (4, 7 or 10)
 * or 0 when invalid. */
static int fc__date_prefix(const char *s) {
  if (!s || !fc__digits(s, 4))
    return 0;
  int y = fc__num(s, 4);
  if (y < 1)
    return 0;
  if (s[4] != '-')
    return 4;
  if (!fc__digits(s + 5, 2))
    return 0;
  int m = fc__num(s + 5, 2);
  if (m < 1 || m > 12)
    return 0;
  if (s[7] != '-')
    return 7;
  if (!fc__digits(s + 8, 2))
    return 0;
  int d = fc__num(s + 8, 2);
  if (d < 1 || d > fc__days_in_month(y, m))
    return 0;
  return 10;
}

int fhir_check_date(const char *s) {
  int n = fc__date_prefix(s);
  return n && s[n] == '\0';
}

int fhir_check_full_date(const char *s) {
  return fc__date_prefix(s) == 10 && s[10] == '\0';
}

/* hh:mm:ss[.fff+](Z|(+|-)hh:mm) */
static int fc__time_tz(const char *s) {
  if (!fc__digits(s, 2) || s[2] != ':' || !fc__digits(s + 3, 2) ||
      s[5] != ':' || !fc__digits(s + 6, 2))
    return 0;
  int h = fc__num(s, 2), mi = fc__num(s + 3, 2), se = fc__num(s + 6, 2);
  if (h > 23 || mi > 59 || se > 60)
    return 0;
  const char *p = s + 8;
  if (*p == '.') {
    p++;
    if (*p < '0' || *p > '9')
      return 0;
    while (*p >= '0' && *p <= '9')
      p++;
  }
  if (*p == 'Z')
    return p[1] == '\0';
  if (*p != '+' && *p != '-')
    return 0;
  if (!fc__digits(p + 1, 2) || p[3] != ':' || !fc__digits(p + 4, 2) ||
      p[6] != '\0')
    return 0;
  int th = fc__num(p + 1, 2), tm = fc__num(p + 4, 2);
  return th <= 14 && tm <= 59;
}

int fhir_check_datetime(const char *s) {
  int n = fc__date_prefix(s);
  if (!n)
    return 0;
  if (s[n] == '\0')
    return 1;
  return n == 10 && s[10] == 'T' && fc__time_tz(s + 11);
}

int fhir_check_instant(const char *s) {
  return fc__date_prefix(s) == 10 && s[10] == 'T' && fc__time_tz(s + 11);
}

static int fc__space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int fhir_check_code(const char *s) {
  if (!s || !*s || fc__space(s[0]))
    return 0;
  for (const char *p = s; *p; p++) {
    if (fc__space(*p)) {
      if (*p != ' ' || fc__space(p[1]) || p[1] == '\0')
        return 0;
    }
  }
  return 1;
}

int fhir_check_id(const char *s) {
  if (!s)
    return 0;
  size_t n = 0;
  for (; s[n]; n++) {
    char c = s[n];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '.'))
      return 0;
  }
  return n >= 1 && n <= 64;
}

int fhir_check_uri(const char *s) {
  if (!s || !*s)
    return 0;
  /* every identifier and coding system of every Bundle comes here: skip 8
   * bytes at a time that have no byte <= ' ' (look closer at those that do) */
  size_t n = strlen(s), i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, s + i, 8);
    if ((v - 0x2121212121212121ull) & ~v & 0x8080808080808080ull)
      break;
  }
  for (; i < n; i++)
    if (fc__space(s[i]))
      return 0;
  return 1;
}

int fhir_check_in(const char *s, const char *const *list) {
  if (!s || !list)
    return 0;
  for (; *list; list++) /* first bytes inline: most items differ there */
    if (s[0] == (*list)[0] && strcmp(s, *list) == 0)
      return 1;
  return 0;
}

int fhir_date_days(const char *s, long *days) {
  if (!fhir_check_full_date(s))
    return -1;
  long y = fc__num(s, 4), m = fc__num(s + 5, 2), d = fc__num(s + 8, 2);
  /* days from civil (Howard Hinnant's algorithm) */
  y -= m <= 2;
  long era = (y >= 0 ? y : y - 399) / 400;
  long yoe = y - era * 400;
  long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  *days = era * 146097 + doe - 719468;
  return 0;
}

void fhir_date_utc(time_t t, char out[11]) {
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 11, "%Y-%m-%d", &tm);
}

int fhir_instant_ms(const char *s, int64_t *ms) {
  if (!s || strlen(s) < 20 || !fhir_check_datetime(s) || s[10] != 'T')
    return -1;
  char date[11];
  memcpy(date, s, 10);
  date[10] = '\0';
  long days;
  if (fhir_date_days(date, &days))
    return -1;
  const char *p = s + 11;
  int64_t t = ((int64_t)days * 86400 + fc__num(p, 2) * 3600 +
               fc__num(p + 3, 2) * 60 + fc__num(p + 6, 2)) *
              1000;
  p += 8;
  if (*p == '.') {
    int digits = 0, frac = 0;
    for (p++; *p >= '0' && *p <= '9'; p++, digits++)
      if (digits < 3)
        frac = frac * 10 + (*p - '0');
    for (; digits < 3; digits++)
      frac *= 10;
    t += frac;
  }
  if (*p == '+' || *p == '-') {
    int64_t off = (fc__num(p + 1, 2) * 60 + fc__num(p + 4, 2)) * 60000;
    t += *p == '+' ? -off : off;
  } else if (*p != 'Z') {
    return -1; /* no time zone: not an instant */
  }
  *ms = t;
  return 0;
}

void fhir_instant_format(int64_t ms, char out[32]) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char d[24];
  strftime(d, sizeof d, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, 32, "%s.%03dZ", d, (int)(ms % 1000));
}
