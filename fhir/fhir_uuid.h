/* fhir_uuid — deterministic resource ids: RFC 4122 version 5 (SHA-1) UUIDs
 * derived from an identifier's system and value, written lower-case (some
 * servers leave upper-case urn:uuid references unresolved). */
#ifndef FHIR_UUID_H
#define FHIR_UUID_H

#include <stddef.h>

#define FHIR_UUID_LEN 36 /* without the NUL */

/* The hvgate namespace UUID for identifier-derived ids. */
extern const unsigned char fhir_uuid_ns_identifier[16];

/* A reusable SHA-1 context. Ids made through one skip OpenSSL's per-call
 * algorithm lookup (a lock and a reference count each), a measurable share
 * of mapping time. It also remembers the last ids it derived from
 * identifiers (fhir_uuid_for_identifier; a bounded cache, FHIR_UUID_CACHE
 * entries of names up to FHIR_UUID_CACHE_NAME bytes): a family's child and
 * caregiver, the practice or the home visitor come back record after record.
 * Not thread-safe: one per thread. Returns NULL when out of memory; the
 * caller frees it with fhir_uuid_gen_free (NULL is fine). */
#define FHIR_UUID_CACHE 1024
#define FHIR_UUID_CACHE_NAME 146
typedef struct fhir_uuid_gen fhir_uuid_gen;
fhir_uuid_gen *fhir_uuid_gen_new(void);
void fhir_uuid_gen_free(fhir_uuid_gen *g);

/* Writes the UUID of `name` (len bytes) in namespace `ns` into out (at least
 * FHIR_UUID_LEN + 1 bytes), using g (or a one-off context when g is NULL).
 * Returns 0, or HVG_ENOMEM / HVG_EINVAL (out untouched). */
int fhir_uuid5(fhir_uuid_gen *g, const unsigned char ns[16], const char *name,
               size_t len, char *out);

/* The urn:uuid of a resource identified by system|value:
 * "urn:uuid:" + fhir_uuid5(ns_identifier, "Type|system|value"). out must hold
 * 9 + FHIR_UUID_LEN + 1 bytes. Same contract as fhir_uuid5. */
#define FHIR_URN_UUID_SIZE (9 + FHIR_UUID_LEN + 1)
int fhir_uuid_for_identifier(fhir_uuid_gen *g, const char *type,
                             const char *system, const char *value, char *out);

#endif
