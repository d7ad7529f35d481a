#include "hvg_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *hvg_err_name(int code) {
  switch (code) {
  case HVG_OK:
    return "HVG_OK";
#define HVG__ERR_NAME(name, msg)                                              \
  case HVG_E##name:                                                           \
    return "HVG_E" #name;
    HVG_ERRNO_MAP(HVG__ERR_NAME)
#undef HVG__ERR_NAME
  default:
    return "HVG_EUNKNOWN_CODE";
  }
}

const char *hvg_strerror(int code) {
  switch (code) {
  case HVG_OK:
    return "success";
#define HVG__ERR_MSG(name, msg)                                               \
  case HVG_E##name:                                                           \
    return msg;
    HVG_ERRNO_MAP(HVG__ERR_MSG)
#undef HVG__ERR_MSG
  default:
    return "unknown error code";
  }
}

int hvg_err_set(hvg_err *e, int code, const char *field, const char *fmt,
                ...) {
  if (!e)
    return code;
  e->code = code;
  snprintf(e->field, sizeof e->field, "%s", field ? field : "");
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
  } else {
    snprintf(e->msg, sizeof e->msg, "%s", hvg_strerror(code));
  }
  return code;
}

void hvg_err_clear(hvg_err *e) {
  if (!e)
    return;
  e->code = HVG_OK;
  e->field[0] = '\0';
  e->msg[0] = '\0';
}
