/* hvg_jwt — the signed JWT client assertion of SMART Backend Services
 * (RFC 7523 via the SMART App Launch "Backend Services" profile): the gateway
 * proves who it is to a partner's token endpoint with a short-lived JWT
 * signed by its private key, RS384 or ES384.
 *
 * Claims: iss = sub = client_id, aud = the token endpoint URL, exp = now +
 * at most 5 minutes, jti = 128 random bits (hex), so an assertion can be
 * neither reused nor replayed. */
#ifndef HVG_JWT_H
#define HVG_JWT_H

#include "hvg_buf.h"
#include "hvg_err.h"

#include <openssl/evp.h>
#include <time.h>

#define HVG_JWT_LIFETIME 300 /* seconds: the most SMART allows */

/* Loads a PEM private key (unencrypted) from a file, or from the value of
 * environment variable `env` when file is NULL. The key must suit alg
 * ("RS384": RSA >= 2048 bits; "ES384": EC P-384). Returns 0 and *out (the
 * caller frees it with EVP_PKEY_free), or HVG_ENOINPUT / HVG_ECONFIG with err
 * set (the message never contains key material). */
int hvg_jwt_load_key(EVP_PKEY **out, const char *file, const char *env,
                     const char *alg, hvg_err *err);

/* Appends a signed client assertion to out. alg is "RS384" or "ES384"; kid
 * may be NULL. Returns 0, or HVG_EINVAL (bad argument), HVG_ENOMEM /
 * HVG_ETOOBIG (out unchanged), HVG_EIO (the signature failed). */
int hvg_jwt_client_assertion(hvg_buf *out, EVP_PKEY *key, const char *alg,
                             const char *kid, const char *client_id,
                             const char *aud, time_t now, hvg_err *err);

/* base64url without padding (RFC 7515 section 2) of n bytes, appended to out.
 * Returns 0 or the hvg_buf error. */
int hvg_b64url(hvg_buf *out, const unsigned char *p, size_t n);

#endif
