#include "hvg_jwt.h"

#include <cjson/cJSON.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

int hvg_b64url(hvg_buf *out, const unsigned char *p, size_t n) {
  static const char tab[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t need = (n + 2) / 3 * 4;
  char *o = hvg_buf_reserve(out, need);
  if (!o)
    return out->len + need > out->max ? HVG_ETOOBIG : HVG_ENOMEM;
  size_t k = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
    o[k++] = tab[v >> 18];
    o[k++] = tab[(v >> 12) & 63];
    o[k++] = tab[(v >> 6) & 63];
    o[k++] = tab[v & 63];
  }
  if (n - i == 1) {
    unsigned v = (unsigned)p[i] << 16;
    o[k++] = tab[v >> 18];
    o[k++] = tab[(v >> 12) & 63];
  } else if (n - i == 2) {
    unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
    o[k++] = tab[v >> 18];
    o[k++] = tab[(v >> 12) & 63];
    o[k++] = tab[(v >> 6) & 63];
  }
  hvg_buf_commit(out, k);
  return 0;
}

static int hvg__key_suits(EVP_PKEY *k, const char *alg) {
  if (!strcmp(alg, "RS384"))
    return EVP_PKEY_is_a(k, "RSA") && EVP_PKEY_get_bits(k) >= 2048;
  if (!strcmp(alg, "ES384")) {
    char group[64] = "";
    size_t glen = 0;
    return EVP_PKEY_is_a(k, "EC") &&
           EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                          sizeof group, &glen) &&
           (!strcmp(group, "secp384r1") || !strcmp(group, "P-384"));
  }
  return 0;
}

int hvg_jwt_load_key(EVP_PKEY **out, const char *file, const char *env,
                     const char *alg, hvg_err *err) {
  *out = NULL;
  if ((!file && !env) || !alg)
    return hvg_err_set(err, HVG_EINVAL, NULL, "no key file or variable");
  BIO *bio;
  if (file) {
    bio = BIO_new_file(file, "r");
    if (!bio)
      return hvg_err_set(err, HVG_ENOINPUT, NULL, "cannot read key file %s",
                         file);
  } else {
    const char *pem = getenv(env);
    if (!pem || !*pem)
      return hvg_err_set(err, HVG_ENOINPUT, NULL,
                         "environment variable %s is not set", env);
    bio = BIO_new_mem_buf(pem, -1);
    if (!bio)
      return hvg_err_set(err, HVG_ENOMEM, NULL, NULL);
  }
  EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
  BIO_free(bio);
  if (!k)
    return hvg_err_set(err, HVG_ECONFIG, NULL,
                       "'%s' is not a PEM private key (without a passphrase)",
                       file ? file : env);
  if (!hvg__key_suits(k, alg)) {
    EVP_PKEY_free(k);
    return hvg_err_set(err, HVG_ECONFIG, NULL, "%s",
                       strcmp(alg, "ES384")
                           ? "RS384 needs an RSA key of at least 2048 bits"
                           : "ES384 needs an EC key on curve P-384 "
                             "(secp384r1)");
  }
  *out = k;
  return 0;
}

/* JOSE wants ECDSA signatures as r || s, each 48 bytes for P-384, where
 * OpenSSL produces DER. */
static int hvg__ecdsa_raw(const unsigned char *der, size_t n,
                          unsigned char raw[96]) {
  const unsigned char *p = der;
  ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)n);
  if (!sig)
    return -1;
  const BIGNUM *r, *s;
  ECDSA_SIG_get0(sig, &r, &s);
  int ok = BN_bn2binpad(r, raw, 48) == 48 && BN_bn2binpad(s, raw + 48, 48) == 48;
  ECDSA_SIG_free(sig);
  return ok ? 0 : -1;
}

int hvg_jwt_client_assertion(hvg_buf *out, EVP_PKEY *key, const char *alg,
                             const char *kid, const char *client_id,
                             const char *aud, time_t now, hvg_err *err) {
  if (!out || !key || !alg || !client_id || !aud ||
      (strcmp(alg, "RS384") && strcmp(alg, "ES384")))
    return hvg_err_set(err, HVG_EINVAL, NULL, "bad JWT arguments");
  unsigned char rnd[16];
  if (RAND_bytes(rnd, sizeof rnd) != 1)
    return hvg_err_set(err, HVG_EIO, NULL, "no random bytes for jti");
  char jti[33];
  for (int i = 0; i < 16; i++)
    snprintf(jti + 2 * i, 3, "%02x", rnd[i]);
  /* cJSON escapes the strings; the numbers are whole seconds */
  cJSON *hdr = cJSON_CreateObject(), *cl = cJSON_CreateObject();
  char *hs = NULL, *cs = NULL;
  int rc = HVG_ENOMEM;
  size_t mark = out->len;
  unsigned char *sig = NULL;
  EVP_MD_CTX *md = NULL;
  if (!hdr || !cl || !cJSON_AddStringToObject(hdr, "alg", alg) ||
      !cJSON_AddStringToObject(hdr, "typ", "JWT") ||
      (kid && !cJSON_AddStringToObject(hdr, "kid", kid)) ||
      !cJSON_AddStringToObject(cl, "iss", client_id) ||
      !cJSON_AddStringToObject(cl, "sub", client_id) ||
      !cJSON_AddStringToObject(cl, "aud", aud) ||
      !cJSON_AddNumberToObject(cl, "exp", (double)(now + HVG_JWT_LIFETIME)) ||
      !cJSON_AddNumberToObject(cl, "iat", (double)now) ||
      !cJSON_AddStringToObject(cl, "jti", jti) ||
      !(hs = cJSON_PrintUnformatted(hdr)) || !(cs = cJSON_PrintUnformatted(cl)))
    goto done;
  if ((rc = hvg_b64url(out, (const unsigned char *)hs, strlen(hs))) ||
      (rc = hvg_buf_addc(out, '.')) ||
      (rc = hvg_b64url(out, (const unsigned char *)cs, strlen(cs))))
    goto done;
  size_t siglen = 0;
  rc = HVG_EIO;
  if (!(md = EVP_MD_CTX_new()) ||
      EVP_DigestSignInit_ex(md, NULL, "SHA384", NULL, NULL, key, NULL) != 1 ||
      EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)out->data + mark,
                     out->len - mark) != 1 ||
      !(sig = malloc(siglen)) ||
      EVP_DigestSign(md, sig, &siglen, (const unsigned char *)out->data + mark,
                     out->len - mark) != 1)
    goto done;
  unsigned char raw[96];
  const unsigned char *s = sig;
  if (!strcmp(alg, "ES384")) {
    if (hvg__ecdsa_raw(sig, siglen, raw))
      goto done;
    s = raw;
    siglen = sizeof raw;
  }
  if ((rc = hvg_buf_addc(out, '.')) || (rc = hvg_b64url(out, s, siglen)))
    goto done;
  rc = 0;
done:
  if (rc)
    hvg_buf_truncate(out, mark);
  EVP_MD_CTX_free(md);
  free(sig);
  free(hs);
  free(cs);
  cJSON_Delete(hdr);
  cJSON_Delete(cl);
  if (rc)
    return hvg_err_set(err, rc, NULL,
                       rc == HVG_EIO ? "signing the client assertion failed"
                                     : NULL);
  return 0;
}
