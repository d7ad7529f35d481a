#include "hvg_cred.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>

int hvg_cred_bearer_hash(const hvg_httpd_req *req, char hex[65]) {
  const char *a = hvg_httpd_header(req, "Authorization");
  if (!a || strncasecmp(a, "Bearer ", 7))
    return 0;
  const char *t = a + 7;
  while (*t == ' ')
    t++;
  if (!*t)
    return 0;
  unsigned char md[32];
  unsigned int ml = 0;
  if (!EVP_Digest(t, strlen(t), md, &ml, EVP_sha256(), NULL) || ml != 32)
    return 0;
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  hex[64] = '\0';
  return 1;
}

int hvg_cred_in(const char *hex, const char *const *list, size_t n) {
  int found = 0;
  for (size_t i = 0; hex && i < n; i++) /* no early exit: same time */
    found |= list[i] && strlen(list[i]) == 64 &&
             CRYPTO_memcmp(hex, list[i], 64) == 0;
  return found;
}

const hvg_partner *hvg_cred_partner(const hvg_config *cfg,
                                    const hvg_httpd_req *req) {
  if (req->peer && req->peer->sha256[0])
    for (size_t i = 0; i < cfg->n_partners; i++)
      if (hvg_cred_in(req->peer->sha256, cfg->partners[i].inbound_certs,
                      cfg->partners[i].n_inbound_certs))
        return &cfg->partners[i];
  char hex[65];
  if (!hvg_cred_bearer_hash(req, hex))
    return NULL;
  const hvg_partner *who = NULL;
  for (size_t i = 0; i < cfg->n_partners; i++)
    if (hvg_cred_in(hex, cfg->partners[i].inbound_tokens,
                    cfg->partners[i].n_inbound_tokens) &&
        !who)
      who = &cfg->partners[i];
  return who;
}

int hvg_cred_program(const hvg_program *p, const hvg_httpd_req *req) {
  char hex[65];
  const char *want = p ? p->intake_token_sha256 : NULL;
  return want && hvg_cred_bearer_hash(req, hex) && hvg_cred_in(hex, &want, 1);
}

int hvg_cred_ops(const hvg_config *cfg, const hvg_httpd_req *req) {
  char hex[65];
  return hvg_cred_bearer_hash(req, hex) &&
         hvg_cred_in(hex, cfg->ops_tokens, cfg->n_ops_tokens);
}
