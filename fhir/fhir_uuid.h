/* fhir_uuid — deterministic resource ids: RFC 4122 version 5 (SHA-1) UUIDs
 * derived from an identifier's system and value, written lower-case (some
 * servers leave upper-case urn:uuid references unresolved). */
#ifndef FHIR_UUID_H
#define FHIR_UUID_H

#include <stddef.h>

#define FHIR_UUID_LEN 36 /* without the NUL */

/* The hvgate namespace UUID for identifier-derived ids. */
extern const unsigned char fhir_uuid_ns_identifier[16];

/* Writes the UUID of `name` (len bytes) in namespace `ns` into out (at least
 * FHIR_UUID_LEN + 1 bytes). Returns 0, or HVG_ENOMEM / HVG_EINVAL (out
 * untouched). */
int fhir_uuid5(const unsigned char ns[16], const char *name, size_t len,
               char *out);

/* The urn:uuid of a resource identified by system|value:
 * "urn:uuid:" + fhir_uuid5(ns_identifier, "Type|system|value"). out must hold
 * 9 + FHIR_UUID_LEN + 1 bytes. Same contract as fhir_uuid5. */
#define FHIR_URN_UUID_SIZE (9 + FHIR_UUID_LEN + 1)
int fhir_uuid_for_identifier(const char *type, const char *system,
                             const char *value, char *out);

#endif
