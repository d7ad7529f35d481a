/* The gateway configuration loader: the shipped examples load, every kind of
 * mistake is reported with its line and JSON pointer (inline secrets, bad or
 * insecure URLs, duplicate ids, an organization routed twice, unknown
 * services and sensitivity categories, a mapping for another program), and
 * with HVG_CONFIG_CHECK_FILES unreadable files and unsuitable private keys
 * are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hvg_config.h"
#include "hvg_err.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];

static const char *tmp_path(const char *name) {
  static char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return p;
}

static const char *write_file(const char *name, const char *text) {
  const char *p = tmp_path(name);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  return p;
}

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "%s/hvg_config_XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* Loads `text` as a config; returns the rc and leaves messages in *diag. */
static int load(const char *text, unsigned flags, hvg_buf *diag,
                hvg_config **out) {
  /* "%s" in text stands for the sample mapping file */
  char body[8192];
  const char *at = strstr(text, "%s");
  if (at)
    snprintf(body, sizeof body, "%.*s%s%s", (int)(at - text), text,
             HVG_SOURCE_DIR "/conf/mappings/program-export.json", at + 2);
  else
    snprintf(body, sizeof body, "%s", text);
  const char *p = write_file("hvgate.json", body);
  hvg_buf_init(diag, 1 << 16);
  hvg_config *c = NULL;
  int rc = hvg_config_load(&c, p, flags, diag, NULL);
  if (out)
    *out = c;
  else
    hvg_config_free(c);
  return rc;
}

static void expect(const hvg_buf *diag, const char *what) {
  if (!diag->data || !strstr(diag->data, what))
    print_error("missing '%s' in:\n%s\n", what, diag->data ? diag->data : "");
  assert_non_null(diag->data);
  assert_non_null(strstr(diag->data, what));
}

static void test_examples_load(void **state) {
  (void)state;
  hvg_buf diag;
  hvg_buf_init(&diag, 1 << 16);
  hvg_config *c;
  assert_int_equal(hvg_config_load(&c, HVG_SOURCE_DIR "/conf/hvgate.json",
                                   HVG_CONFIG_CHECK_FILES, &diag, NULL),
                   0);
  assert_int_equal(c->n_programs, 1);
  assert_non_null(c->programs[0].map);
  assert_non_null(c->programs[0].cat);
  assert_int_equal(c->n_partners, 2);
  const hvg_partner *p = hvg_config_partner_for_org(c, "PC-1234567893");
  assert_non_null(p);
  assert_string_equal(p->id, "riverside-peds");
  assert_true(p->record_types & (1u << HV_REC_SCREENING));
  assert_true(p->consent_required);
  assert_int_equal(p->auth, HVG_AUTH_NONE);
  assert_int_equal(p->tls_verify, 1);
  assert_null(hvg_config_partner_for_org(c, "MH-220"));
  assert_non_null(strstr(c->store_path, "conf/../var/hvgate.db"));
  hvg_config_free(c);
  /* the production example is well-formed; its files exist only there */
  assert_int_equal(hvg_config_load(&c,
                                   HVG_SOURCE_DIR
                                   "/conf/examples/hvgate.production.json",
                                   0, &diag, NULL),
                   0);
  p = hvg_config_partner(c, "riverside-peds");
  assert_int_equal(p->auth, HVG_AUTH_SMART);
  assert_string_equal(p->algorithm, "RS384");
  assert_int_equal(hvg_config_partner(c, "safe-harbor")->auth,
                   HVG_AUTH_BEARER);
  hvg_config_free(c);
  hvg_buf_free(&diag);
}

static void test_errors(void **state) {
  (void)state;
  hvg_buf diag;
  int rc = load(
      "{\"listen\": \"nohost\",\n"
      " \"programs\": [{\"id\": \"other-program\", \"mapping\": \"%s\"}],\n"
      " \"partners\": [\n"
      "  {\"id\": \"a\", \"organization_ids\": [\"X1\"], \"base_url\": "
      "\"http://ehr.example.org/fhir\",\n"
      "   \"receives\": {\"record_types\": [\"screening\", \"gossip\"], "
      "\"services\": [\"astrology\"], \"sensitivity\": [\"mental-health\", "
      "\"secrets\"]},\n"
      "   \"auth\": {\"type\": \"bearer\", \"token\": \"abc123\"}},\n"
      "  {\"id\": \"a\", \"organization_ids\": [\"X1\"], \"base_url\": "
      "\"ftp://x\",\n"
      "   \"receives\": {\"record_types\": [\"referral\"]},\n"
      "   \"auth\": {\"type\": \"smart-backend\", \"algorithm\": \"HS256\"},\n"
      "   \"tls\": {\"client_cert_file\": \"c.pem\"}, \"workers\": 0}\n"
      " ]}\n",
      0, &diag, NULL);
  assert_int_equal(rc, HVG_ECONFIG);
  expect(&diag, "hvgate.json:1: /listen: 'nohost' is not host:port");
  expect(&diag, ":2: /programs/0/mapping: the mapping is for program "
                "'sunrise-hv', not 'other-program'");
  expect(&diag, ":4: /partners/0/base_url: plain http to a non-local host");
  expect(&diag, ":5: /partners/0/receives/record_types/1: 'gossip' is not");
  expect(&diag, ":5: /partners/0/receives/services/0: 'astrology' is not a "
                "service");
  expect(&diag, ":5: /partners/0/receives/sensitivity/1: 'secrets' is not a "
                "sensitivity category");
  expect(&diag, ":6: /partners/0/auth/token: secrets are never written in "
                "the configuration: use token_file or token_env");
  expect(&diag, "/partners/0/auth: a bearer token needs exactly one of");
  expect(&diag, ":7: /partners/1: partner id 'a' appears twice");
  expect(&diag, ":7: /partners/1/organization_ids/0: organization id 'X1' "
                "already routes to partner 'a'");
  expect(&diag, ":7: /partners/1/base_url: 'ftp://x' is not an http");
  expect(&diag, ":9: /partners/1/auth: SMART Backend Services needs "
                "'client_id'");
  expect(&diag, ":9: /partners/1/auth/algorithm: 'HS256' is not RS384 or "
                "ES384");
  expect(&diag, ":10: /partners/1/tls: mutual TLS needs both");
  expect(&diag, ":10: /partners/1/workers: must be a whole number from 1 "
                "to 64");
  /* no secret value is ever echoed */
  assert_null(strstr(diag.data, "abc123"));
  hvg_buf_free(&diag);
}

static void write_key(const char *name, const char *type, int bits_or_nid) {
  EVP_PKEY *k = !strcmp(type, "RSA")
                    ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits_or_nid)
                    : EVP_PKEY_Q_keygen(NULL, NULL, "EC",
                                        bits_or_nid == 384 ? "P-384" : "P-256");
  assert_non_null(k);
  FILE *f = fopen(tmp_path(name), "w");
  assert_non_null(f);
  assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
  fclose(f);
  EVP_PKEY_free(k);
}

static void test_files_and_keys(void **state) {
  (void)state;
  write_key("rsa1024.pem", "RSA", 1024);
  write_key("rsa2048.pem", "RSA", 2048);
  write_key("p256.pem", "EC", 256);
  write_key("p384.pem", "EC", 384);
  write_file("junk.pem", "not a key\n");
  static const char *const cases[][3] = {
      /* key file, algorithm, expected error or "" */
      {"rsa2048.pem", "RS384", ""},
      {"p384.pem", "ES384", ""},
      {"rsa1024.pem", "RS384", "RS384 needs an RSA key of at least 2048"},
      {"p256.pem", "ES384", "ES384 needs an EC key on curve P-384"},
      {"p384.pem", "RS384", "RS384 needs an RSA key"},
      {"junk.pem", "RS384", "is not a PEM private key"},
      {"missing.pem", "RS384", "cannot read"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char text[2048];
    snprintf(text, sizeof text,
             "{\"programs\": [{\"id\": \"sunrise-hv\", \"mapping\": \"%%s\"}],\n"
             " \"partners\": [{\"id\": \"p\", \"organization_ids\": [\"1\"],\n"
             "  \"base_url\": \"https://ehr.example.org/fhir\",\n"
             "  \"receives\": {\"record_types\": [\"referral\"]},\n"
             "  \"auth\": {\"type\": \"smart-backend\", \"client_id\": \"c\",\n"
             "   \"private_key_file\": \"%s\", \"algorithm\": \"%s\"}}]}\n",
             cases[i][0], cases[i][1]);
    hvg_buf diag;
    hvg_config *c = NULL;
    int rc = load(text, HVG_CONFIG_CHECK_FILES, &diag, &c);
    if (!cases[i][2][0]) {
      if (rc)
        print_error("%s: %s\n", cases[i][0], diag.data);
      assert_int_equal(rc, 0);
      assert_non_null(c);
    } else {
      assert_int_equal(rc, HVG_ECONFIG);
      expect(&diag, ":6: /partners/0/auth/private_key_file: ");
      expect(&diag, cases[i][2]);
    }
    hvg_config_free(c);
    hvg_buf_free(&diag);
  }
  /* without the flag, files are not looked at */
  hvg_buf diag;
  assert_int_equal(
      load("{\"programs\": [{\"id\": \"sunrise-hv\", \"mapping\": \"%s\"}],"
           " \"partners\": [{\"id\": \"p\", \"organization_ids\": [\"1\"],"
           " \"base_url\": \"https://e.example.org/\", \"receives\": "
           "{\"record_types\": [\"consent\"]}, \"auth\": {\"type\": "
           "\"bearer\", \"token_file\": \"nope\"}}]}",
           0, &diag, NULL),
      0);
  hvg_buf_free(&diag);
  assert_int_equal(load("{\"programs\": [{\"id\": \"sunrise-hv\", "
                        "\"mapping\": \"nowhere.json\"}]}",
                        0, &diag, NULL),
                   HVG_ECONFIG);
  expect(&diag, "/programs/0/mapping: cannot read mapping file");
  hvg_buf_free(&diag);
  assert_int_equal(load("{\"programs\": 3", 0, &diag, NULL), HVG_ECONFIG);
  expect(&diag, "not a valid JSON object");
  hvg_buf_free(&diag);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_examples_load),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_files_and_keys),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
