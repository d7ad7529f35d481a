#include "hvg_auth.h"

#include "hvg_jconf.h"
#include "hvg_jwt.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HVG__MAX_TOKEN 8192

int hvg_auth_read_token(const char *owner, const char *file, const char *env,
                        char **out, hvg_err *err) {
  *out = NULL;
  char *t;
  size_t n = 0;
  if (file) {
    t = hvg_read_file(file, HVG__MAX_TOKEN, &n);
    if (!t)
      return hvg_err_set(err, HVG_ENOINPUT, NULL,
                         "%s: cannot read token file %s: %s", owner, file,
                         strerror(errno));
  } else {
    const char *v = env ? getenv(env) : NULL;
    if (!v || !*v)
      return hvg_err_set(err, HVG_ENOINPUT, NULL,
                         "%s: environment variable %s is not set", owner,
                         env ? env : "(none)");
    if (!(t = strdup(v)))
      return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  }
  t[strcspn(t, "\r\n")] = '\0';
  for (const char *c = t; *c; c++)
    if (*c <= ' ' || *c == 0x7f) { /* a header value cannot carry these */
      free(t);
      return hvg_err_set(err, HVG_ECONFIG, NULL,
                         "%s: the bearer token contains spaces or control "
                         "characters",
                         owner);
    }
  if (!*t) {
    free(t);
    return hvg_err_set(err, HVG_ECONFIG, NULL, "%s: the bearer token is empty",
                       owner);
  }
  *out = t;
  return 0;
}

/* A bearer token: the first line of the file or the variable, trimmed. */
static int hvg__static_token(hvg_auth *a, hvg_err *err) {
  char owner[96];
  snprintf(owner, sizeof owner, "partner %s", a->p->id);
  return hvg_auth_read_token(owner, a->p->token_file, a->p->token_env,
                             &a->static_token, err);
}

int hvg_auth_init(hvg_auth *a, const hvg_partner *p, hvg_err *err) {
  memset(a, 0, sizeof *a);
  a->p = p;
  if (p->auth == HVG_AUTH_BEARER)
    return hvg__static_token(a, err);
  if (p->auth != HVG_AUTH_SMART)
    return 0;
  if (p->token_url && !(a->token_url = strdup(p->token_url)))
    return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  int rc = hvg_jwt_load_key(&a->key, p->private_key_file, p->private_key_env,
                            p->algorithm, err);
  if (rc) {
    hvg_auth_free(a);
    return rc;
  }
  return 0;
}

void hvg_auth_free(hvg_auth *a) {
  if (!a)
    return;
  EVP_PKEY_free(a->key);
  free(a->static_token);
  free(a->token_url);
  free(a->token);
  const hvg_partner *p = a->p;
  memset(a, 0, sizeof *a);
  a->p = p;
}

void hvg_auth_forget(hvg_auth *a) {
  free(a->token);
  a->token = NULL;
  a->token_expires = 0;
}

/* Classifies a failed exchange with the authorization server. */
static int hvg__auth_fail(hvg_auth *a, const hvg_http_resp *r, int rc,
                          const hvg_err *herr, const char *what,
                          hvg_err *err) {
  if (rc)
    return hvg_err_set(err, rc == HVG_ENOMEM ? rc : HVG_EIO, NULL,
                       "partner %s: %s: %s", a->p->id, what, herr->msg);
  if (r->status >= 500 || r->status == 429 || r->status == 408)
    return hvg_err_set(err, HVG_EIO, NULL, "partner %s: %s: HTTP %ld",
                       a->p->id, what, r->status);
  /* the OAuth error code, if the server sent one, helps the operator */
  cJSON *j = cJSON_ParseWithLength(r->body.data ? r->body.data : "",
                                   r->body.len);
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "error_description");
  hvg_err_set(err, HVG_ESECURITY, NULL, "partner %s: %s: HTTP %ld%s%.60s%s%.120s",
              a->p->id, what, r->status, cJSON_IsString(e) ? ": " : "",
              cJSON_IsString(e) ? e->valuestring : "",
              cJSON_IsString(d) ? ": " : "",
              cJSON_IsString(d) ? d->valuestring : "");
  cJSON_Delete(j);
  return HVG_ESECURITY;
}

static int hvg__discover(hvg_auth *a, hvg_http *h, hvg_err *err) {
  char url[1024];
  size_t bl = strlen(a->p->base_url);
  snprintf(url, sizeof url, "%.*s/.well-known/smart-configuration",
           (int)(bl && a->p->base_url[bl - 1] == '/' ? bl - 1 : bl),
           a->p->base_url);
  static const char *const hdr[] = {"Accept: application/json", NULL};
  hvg_http_resp r;
  hvg_http_resp_init(&r);
  hvg_err herr;
  int rc = hvg_http_request(h, "GET", url, hdr, NULL, 0, &r, &herr);
  if (rc || r.status != 200) {
    rc = hvg__auth_fail(a, &r, rc, &herr, "SMART configuration", err);
    hvg_http_resp_free(&r);
    return rc;
  }
  cJSON *j = cJSON_ParseWithLength(r.body.data ? r.body.data : "", r.body.len);
  const cJSON *te = cJSON_GetObjectItemCaseSensitive(j, "token_endpoint");
  rc = 0;
  if (!cJSON_IsString(te) || strncmp(te->valuestring, "http", 4))
    rc = hvg_err_set(err, HVG_ESECURITY, NULL,
                     "partner %s: its smart-configuration names no "
                     "token_endpoint",
                     a->p->id);
  else if (!(a->token_url = strdup(te->valuestring)))
    rc = hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  cJSON_Delete(j);
  hvg_http_resp_free(&r);
  return rc;
}

/* form-urlencode s onto b */
static int hvg__form(hvg_buf *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  int rc = 0;
  for (; *s && !rc; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
        (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~')
      rc = hvg_buf_addc(b, (char)c);
    else {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      rc = hvg_buf_add(b, e, 3);
    }
  }
  return rc;
}

static int hvg__fetch_token(hvg_auth *a, hvg_http *h, time_t now,
                            hvg_err *err) {
  int rc;
  if (!a->token_url && (rc = hvg__discover(a, h, err)))
    return rc;
  hvg_buf form;
  hvg_buf_init(&form, 64 * 1024);
  rc = hvg_buf_adds(&form, "grant_type=client_credentials&scope=");
  if (!rc)
    rc = hvg__form(&form, a->p->scope);
  if (!rc)
    rc = hvg_buf_adds(&form,
                      "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%"
                      "3Aclient-assertion-type%3Ajwt-bearer&client_assertion=");
  if (rc) {
    hvg_buf_free(&form);
    return hvg_err_set(err, rc, NULL, NULL);
  }
  rc = hvg_jwt_client_assertion(&form, a->key, a->p->algorithm, a->p->key_id,
                                a->p->client_id, a->token_url, now, err);
  if (rc) {
    hvg_buf_free(&form);
    return rc;
  }
  static const char *const hdr[] = {
      "Content-Type: application/x-www-form-urlencoded",
      "Accept: application/json", NULL};
  hvg_http_resp r;
  hvg_http_resp_init(&r);
  hvg_err herr;
  rc = hvg_http_request(h, "POST", a->token_url, hdr, form.data, form.len, &r,
                        &herr);
  hvg_buf_free(&form);
  if (rc || r.status != 200) {
    rc = hvg__auth_fail(a, &r, rc, &herr, "token request", err);
    hvg_http_resp_free(&r);
    return rc;
  }
  cJSON *j = cJSON_ParseWithLength(r.body.data ? r.body.data : "", r.body.len);
  const cJSON *at = cJSON_GetObjectItemCaseSensitive(j, "access_token");
  const cJSON *ex = cJSON_GetObjectItemCaseSensitive(j, "expires_in");
  rc = 0;
  if (!cJSON_IsString(at) || !at->valuestring[0] ||
      strlen(at->valuestring) >= HVG__MAX_TOKEN) {
    rc = hvg_err_set(err, HVG_ESECURITY, NULL,
                     "partner %s: the token response has no access_token",
                     a->p->id);
  } else {
    long life = cJSON_IsNumber(ex) && ex->valuedouble > 0
                    ? (long)ex->valuedouble
                    : 300;
    hvg_auth_forget(a);
    if (!(a->token = strdup(at->valuestring)))
      rc = hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
    a->token_expires = now + (life > 2 * HVG_AUTH_EXPIRY_MARGIN
                                  ? life - HVG_AUTH_EXPIRY_MARGIN
                                  : life / 2);
    a->tokens_fetched++;
  }
  cJSON_Delete(j);
  hvg_http_resp_free(&r);
  return rc;
}

int hvg_auth_header(hvg_auth *a, hvg_http *h, time_t now, char *hdr,
                    size_t cap, hvg_err *err) {
  const char *tok = NULL;
  if (a->p->auth == HVG_AUTH_NONE) {
    if (cap)
      hdr[0] = '\0';
    return 0;
  }
  if (a->p->auth == HVG_AUTH_BEARER) {
    tok = a->static_token;
  } else {
    if (!a->token || now >= a->token_expires) {
      int rc = hvg__fetch_token(a, h, now, err);
      if (rc)
        return rc;
    }
    tok = a->token;
  }
  int n = snprintf(hdr, cap, "Authorization: Bearer %s", tok);
  if (n < 0 || (size_t)n >= cap)
    return hvg_err_set(err, HVG_ETOOBIG, NULL, "token too long");
  return 0;
}
