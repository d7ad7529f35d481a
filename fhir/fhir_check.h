/* fhir_check — checks of FHIR R4 primitive values (datatypes.html).
 * Each returns 1 when the text is valid, 0 otherwise; NULL is invalid. */
#ifndef FHIR_CHECK_H
#define FHIR_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* date: YYYY, YYYY-MM or YYYY-MM-DD, a real calendar date. */
int fhir_check_date(const char *s);
/* The full-precision subset YYYY-MM-DD only. */
int fhir_check_full_date(const char *s);
/* dateTime: a date, or YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm|-hh:mm). */
int fhir_check_datetime(const char *s);
/* instant: YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm|-hh:mm), time zone required. */
int fhir_check_instant(const char *s);
/* code: [^\s]+( [^\s]+)*  */
int fhir_check_code(const char *s);
/* id: [A-Za-z0-9\-\.]{1,64} */
int fhir_check_id(const char *s);
/* uri: non-empty, no whitespace. */
int fhir_check_uri(const char *s);
/* 1 if s is a member of the NULL-terminated list. */
int fhir_check_in(const char *s, const char *const *list);

/* Days since 1970-01-01 of a valid full date, or INT32_MIN-ish failure:
 * returns 0 and sets *days, or -1 when s is not a valid YYYY-MM-DD. */
int fhir_date_days(const char *s, long *days);

/* The UTC calendar day of t as a FHIR date (YYYY-MM-DD) in out. Never
 * fails. */
void fhir_date_utc(time_t t, char out[11]);

/* Milliseconds since the epoch of an instant (a dateTime with seconds and
 * a time zone): 0 and *ms, or -1 when s is not one. */
int fhir_instant_ms(const char *s, int64_t *ms);

/* ms since the epoch as a FHIR instant in UTC with milliseconds
 * ("2026-12-01T10:33:42.123Z"). Never fails. */
void fhir_instant_format(int64_t ms, char out[32]);

#endif
