/* hvg_err — the one error vocabulary of hvgate.
 *
 * Every library function returns 0 (HVG_OK) or a negative HVG_E* code, and
 * may fill an hvg_err with a human-readable detail. Codes, names and messages
 * come from the single X-macro list below (libuv style), so they never drift.
 * Libraries never print; only the CLI and the daemon do. */
#ifndef HVG_ERR_H
#define HVG_ERR_H

#include <stddef.h>

#define HVG_ERRNO_MAP(XX)                                                     \
  XX(NOMEM, "out of memory")                                                  \
  XX(INVAL, "invalid argument")                                               \
  XX(TOOBIG, "size limit exceeded")                                           \
  XX(IO, "input/output error")                                                \
  XX(NOINPUT, "cannot open input")                                            \
  XX(SYNTAX, "syntax error")                                                  \
  XX(ENCODING, "invalid character encoding")                                  \
  XX(FORMAT, "invalid value")                                                 \
  XX(RANGE, "value out of range")                                             \
  XX(MISSING, "required value missing")                                       \
  XX(UNKNOWN, "unknown name or code")                                         \
  XX(ORDER, "element out of order")                                           \
  XX(CONFIG, "configuration error")                                           \
  XX(SECURITY, "refused for security reasons")                                \
  XX(NOTFOUND, "not found")                                                   \
  XX(STATE, "operation not valid in this state")

typedef enum hvg_errno {
  HVG_OK = 0,
#define HVG__ERR_ENUM(name, msg) HVG_E##name,
  HVG__ERR_FIRST_ = -1000,
  HVG_ERRNO_MAP(HVG__ERR_ENUM)
#undef HVG__ERR_ENUM
  HVG__ERR_LAST_
} hvg_errno;

/* Detail of the last failure. `field` names the offending element, column or
 * key path when there is one ("" otherwise); `msg` says why, without PHI. */
typedef struct hvg_err {
  int code;
  char field[128];
  char msg[384];
} hvg_err;

/* Name ("HVG_ESYNTAX") and message of a code; never NULL, unknown codes give
 * "HVG_EUNKNOWN_CODE". */
const char *hvg_err_name(int code);
const char *hvg_strerror(int code);

/* Record a failure in `e` (which may be NULL) and return `code`, so callers can
 * write `return hvg_err_set(e, HVG_EFORMAT, "date", "not a date");`.
 * `field` may be NULL. The message is truncated to fit, never overflows. */
int hvg_err_set(hvg_err *e, int code, const char *field, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Clear `e` to HVG_OK with empty strings. */
void hvg_err_clear(hvg_err *e);

#endif
