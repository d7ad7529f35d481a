#include "fhir_uuid.h"

#include "hvg_err.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Generated once at random for hvgate; fixed forever, since ids depend on it. */
const unsigned char fhir_uuid_ns_identifier[16] = {
    0x5b, 0x0e, 0x6f, 0x3c, 0x9a, 0x41, 0x4d, 0x7e,
    0x8f, 0x12, 0x2c, 0x6d, 0x90, 0xa3, 0x71, 0x5e};

static void fu__format(const unsigned char h[16], char *out) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      out[o++] = '-';
    out[o++] = hex[h[i] >> 4];
    out[o++] = hex[h[i] & 15];
  }
  out[o] = '\0';
}

/* One remembered id: the name it was derived from and the UUID. */
typedef struct fu__slot {
  uint64_t hash; /* of the name; 0 = empty */
  uint16_t len;
  char uuid[FHIR_UUID_LEN];
  char name[FHIR_UUID_CACHE_NAME];
} fu__slot;

struct fhir_uuid_gen {
  EVP_MD *sha1;
  EVP_MD_CTX *ctx;
  fu__slot *cache; /* FHIR_UUID_CACHE slots, direct-mapped by hash */
};

/* A fast 64-bit hash of s[0..n), never 0. Only picks a slot (the name
 * itself is compared), so the words are mixed in two short independent
 * chains rather than one multiply after another. */
static uint64_t fu__hash(const char *s, size_t n) {
  const uint64_t k = 0x9E3779B97F4A7C15ull;
  uint64_t a = n, b = 0;
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, s, 8);
    a += v * k;
    b = ((b ^ v) << 27 | (b ^ v) >> 37) + v;
    s += 8;
    n -= 8;
  }
  uint64_t t = 0;
  memcpy(&t, s, n);
  uint64_t h = (a ^ b ^ t) * k;
  h ^= h >> 32;
  return h ? h : 1;
}

fhir_uuid_gen *fhir_uuid_gen_new(void) {
  fhir_uuid_gen *g = calloc(1, sizeof *g);
  if (!g)
    return NULL;
  g->sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
  g->ctx = EVP_MD_CTX_new();
  g->cache = calloc(FHIR_UUID_CACHE, sizeof *g->cache);
  if (!g->sha1 || !g->ctx || !g->cache) {
    fhir_uuid_gen_free(g);
    return NULL;
  }
  return g;
}

void fhir_uuid_gen_free(fhir_uuid_gen *g) {
  if (!g)
    return;
  EVP_MD_CTX_free(g->ctx);
  EVP_MD_free(g->sha1);
  free(g->cache);
  free(g);
}

int fhir_uuid5(fhir_uuid_gen *g, const unsigned char ns[16], const char *name,
               size_t len, char *out) {
  if (!ns || (!name && len) || !out)
    return HVG_EINVAL;
  unsigned char h[SHA_DIGEST_LENGTH];
  if (g) {
    if (!EVP_DigestInit_ex(g->ctx, g->sha1, NULL) ||
        !EVP_DigestUpdate(g->ctx, ns, 16) ||
        (len && !EVP_DigestUpdate(g->ctx, name, len)) ||
        !EVP_DigestFinal_ex(g->ctx, h, NULL))
      return HVG_ENOMEM; /* OpenSSL fails here only for lack of memory */
    goto format;
  }
  unsigned char stackbuf[512];
  unsigned char *buf = stackbuf;
  if (len > sizeof stackbuf - 16) {
    buf = malloc(len + 16);
    if (!buf)
      return HVG_ENOMEM;
  }
  memcpy(buf, ns, 16);
  if (len)
    memcpy(buf + 16, name, len);
  SHA1(buf, len + 16, h);
  if (buf != stackbuf)
    free(buf);
format:
  h[6] = (unsigned char)((h[6] & 0x0f) | 0x50);
  h[8] = (unsigned char)((h[8] & 0x3f) | 0x80);
  fu__format(h, out);
  return 0;
}

int fhir_uuid_for_identifier(fhir_uuid_gen *g, const char *type,
                             const char *system, const char *value, char *out) {
  if (!type || !system || !value || !out)
    return HVG_EINVAL;
  char stackbuf[480];
  size_t lt = strlen(type), ls = strlen(system), lv = strlen(value);
  size_t n = lt + 1 + ls + 1 + lv;
  char *name = n <= sizeof stackbuf ? stackbuf : malloc(n);
  if (!name)
    return HVG_ENOMEM;
  memcpy(name, type, lt);
  name[lt] = '|';
  memcpy(name + lt + 1, system, ls);
  name[lt + 1 + ls] = '|';
  memcpy(name + lt + 2 + ls, value, lv);
  memcpy(out, "urn:uuid:", 9);
  fu__slot *slot = NULL;
  uint64_t h = 0;
  if (g && n <= FHIR_UUID_CACHE_NAME) {
    h = fu__hash(name, n);
    slot = &g->cache[h & (FHIR_UUID_CACHE - 1)];
    if (slot->hash == h && slot->len == n && !memcmp(slot->name, name, n)) {
      memcpy(out + 9, slot->uuid, FHIR_UUID_LEN);
      out[9 + FHIR_UUID_LEN] = '\0';
      return 0;
    }
  }
  int rc = fhir_uuid5(g, fhir_uuid_ns_identifier, name, n, out + 9);
  if (!rc && slot) {
    slot->hash = h;
    slot->len = (uint16_t)n;
    memcpy(slot->uuid, out + 9, FHIR_UUID_LEN);
    memcpy(slot->name, name, n);
  }
  if (name != stackbuf)
    free(name);
  return rc;
}
