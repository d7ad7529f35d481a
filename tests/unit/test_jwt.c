/* SMART Backend Services client assertions: base64url vectors, the JWT's
 * header and claims, a signature that OpenSSL verifies with the public key
 * (RS384 as PKCS#1 v1.5, ES384 as JOSE r||s), a fresh jti each time, and
 * keys that do not suit their algorithm refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hvg_jwt.h"

#include <cjson/cJSON.h>
#include <openssl/ecdsa.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_b64url(void **state) {
  (void)state;
  static const char *const v[][2] = {{"", ""},         {"f", "Zg"},
                                     {"fo", "Zm8"},    {"foo", "Zm9v"},
                                     {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"},
                                     {"foobar", "Zm9vYmFy"}};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    hvg_buf b;
    hvg_buf_init(&b, 64);
    assert_int_equal(
        hvg_b64url(&b, (const unsigned char *)v[i][0], strlen(v[i][0])), 0);
    assert_string_equal(b.data ? b.data : "", v[i][1]);
    hvg_buf_free(&b);
  }
  hvg_buf b;
  hvg_buf_init(&b, 64);
  static const unsigned char url[] = {0xfb, 0xff, 0xbf};
  assert_int_equal(hvg_b64url(&b, url, 3), 0);
  assert_string_equal(b.data, "-_-_");
  hvg_buf_free(&b);
}

/* base64url decode (test only) */
static size_t b64d(const char *s, size_t n, unsigned char *out) {
  size_t o = 0;
  unsigned v = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    const char *tab =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *p = strchr(tab, s[i]);
    assert_non_null(p);
    v = v << 6 | (unsigned)(p - tab);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(v >> bits);
    }
  }
  return o;
}

static void check_assertion(EVP_PKEY *key, const char *alg) {
  hvg_buf b;
  hvg_buf_init(&b, 1 << 14);
  hvg_err err;
  assert_int_equal(hvg_jwt_client_assertion(&b, key, alg, "kid-1", "client-7",
                                            "https://ehr.example.org/token",
                                            1700000000, &err),
                   0);
  const char *d1 = strchr(b.data, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
  assert_non_null(d2);
  unsigned char part[2048];
  size_t n = b64d(b.data, (size_t)(d1 - b.data), part);
  part[n] = 0;
  cJSON *h = cJSON_Parse((char *)part);
  assert_string_equal(cJSON_GetObjectItem(h, "alg")->valuestring, alg);
  assert_string_equal(cJSON_GetObjectItem(h, "typ")->valuestring, "JWT");
  assert_string_equal(cJSON_GetObjectItem(h, "kid")->valuestring, "kid-1");
  cJSON_Delete(h);
  n = b64d(d1 + 1, (size_t)(d2 - d1 - 1), part);
  part[n] = 0;
  cJSON *c = cJSON_Parse((char *)part);
  assert_string_equal(cJSON_GetObjectItem(c, "iss")->valuestring, "client-7");
  assert_string_equal(cJSON_GetObjectItem(c, "sub")->valuestring, "client-7");
  assert_string_equal(cJSON_GetObjectItem(c, "aud")->valuestring,
                      "https://ehr.example.org/token");
  assert_int_equal((long)cJSON_GetObjectItem(c, "exp")->valuedouble,
                   1700000000 + 300);
  assert_int_equal(strlen(cJSON_GetObjectItem(c, "jti")->valuestring), 32);
  cJSON_Delete(c);
  /* the signature verifies over "header.claims" with the public key */
  unsigned char sig[1024];
  size_t sl = b64d(d2 + 1, strlen(d2 + 1), sig);
  unsigned char der[256];
  const unsigned char *vs = sig;
  size_t vl = sl;
  if (!strcmp(alg, "ES384")) {
    assert_int_equal(sl, 96);
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(sig, 48, NULL), BN_bin2bn(sig + 48, 48, NULL));
    unsigned char *p = der;
    vl = (size_t)i2d_ECDSA_SIG(es, &p);
    vs = der;
    ECDSA_SIG_free(es);
  }
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  assert_int_equal(EVP_DigestVerifyInit_ex(md, NULL, "SHA384", NULL, NULL, key,
                                           NULL),
                   1);
  assert_int_equal(EVP_DigestVerify(md, vs, vl, (const unsigned char *)b.data,
                                    (size_t)(d2 - b.data)),
                   1);
  /* and not over anything else */
  assert_int_equal(EVP_DigestVerifyInit_ex(md, NULL, "SHA384", NULL, NULL, key,
                                           NULL),
                   1);
  assert_int_not_equal(EVP_DigestVerify(md, vs, vl,
                                        (const unsigned char *)b.data,
                                        (size_t)(d2 - b.data) - 1),
                       1);
  EVP_MD_CTX_free(md);
  /* a second assertion has another jti */
  hvg_buf b2;
  hvg_buf_init(&b2, 1 << 14);
  assert_int_equal(hvg_jwt_client_assertion(&b2, key, alg, NULL, "client-7",
                                            "a", 1700000000, &err),
                   0);
  assert_string_not_equal(b.data, b2.data);
  hvg_buf_free(&b);
  hvg_buf_free(&b2);
}

static char *key_file(EVP_PKEY *k, const char *name) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s-%d.pem",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", name, (int)getpid());
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
  fclose(f);
  return path;
}

static void test_sign_and_load(void **state) {
  (void)state;
  EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
  assert_non_null(rsa);
  assert_non_null(ec);
  check_assertion(rsa, "RS384");
  check_assertion(ec, "ES384");
  hvg_err err;
  EVP_PKEY *k;
  char *p = key_file(ec, "ec");
  assert_int_equal(hvg_jwt_load_key(&k, p, NULL, "ES384", &err), 0);
  EVP_PKEY_free(k);
  assert_int_equal(hvg_jwt_load_key(&k, p, NULL, "RS384", &err), HVG_ECONFIG);
  assert_null(k);
  remove(p);
  setenv("HVG_TEST_KEY", "-----BEGIN PRIVATE KEY-----\nnope\n", 1);
  assert_int_equal(hvg_jwt_load_key(&k, NULL, "HVG_TEST_KEY", "RS384", &err),
                   HVG_ECONFIG);
  assert_null(strstr(err.msg, "nope")); /* key material never echoed */
  assert_int_equal(hvg_jwt_load_key(&k, NULL, "HVG_TEST_UNSET", "RS384", &err),
                   HVG_ENOINPUT);
  hvg_buf b;
  hvg_buf_init(&b, 64);
  assert_int_equal(hvg_jwt_client_assertion(&b, rsa, "HS256", NULL, "c", "a",
                                            0, &err),
                   HVG_EINVAL);
  assert_int_equal(hvg_jwt_client_assertion(&b, rsa, "RS384", NULL, "c", "a",
                                            0, &err),
                   HVG_ETOOBIG); /* 64 bytes cannot hold it */
  assert_int_equal(b.len, 0);
  hvg_buf_free(&b);
  EVP_PKEY_free(rsa);
  EVP_PKEY_free(ec);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_b64url),
      cmocka_unit_test(test_sign_and_load),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
