/* store_zip — compression of the Bundles the store keeps: zstd with a
 * dictionary trained on the store's own Bundles.
 *
 * FHIR Bundles repeat the same keys, systems, codes and profile URLs. A
 * 32 KiB dictionary trained on a few hundred of them turns a ~3.7 KB Bundle
 * into ~0.3 KB in a few microseconds, which is what lets durable intake stop
 * being bound by the bytes it commits (docs/decisions.md, decision 13).
 *
 * This module owns the zstd contexts and the dictionaries loaded into one
 * handle, and knows nothing of SQLite: the store keeps each dictionary's
 * bytes in its table zstd_dicts, keyed by the id zstd writes into every frame,
 * and hands them in. A handle is used by one thread at a time (the store
 * gives each store handle its own). Every allocation goes through malloc,
 * so allocation-failure tests reach them all. */
#ifndef STORE_ZIP_H
#define STORE_ZIP_H

#include "hvg_err.h"

#include <stddef.h>
#include <stdint.h>

#define STORE_ZIP_MIN_SAMPLES 128 /* Bundles needed to train */
#define STORE_ZIP_MAX_SAMPLES 256 /* at most this many are used */
#define STORE_ZIP_SAMPLE_BYTES ((size_t)8 << 20) /* and at most these bytes */
#define STORE_ZIP_DICT_BYTES ((size_t)32 << 10)  /* size of a dictionary */
#define STORE_ZIP_DICTS_MAX 16 /* dictionaries loaded at once (oldest out) */
#define STORE_ZIP_LEVEL 1      /* zstd level: ratio 12-13x at ~5 us/Bundle */

typedef struct store_zip store_zip;

/* A handle without dictionaries, or NULL when out of memory. Free it with
 * store_zip_free (NULL-safe). */
store_zip *store_zip_new(void);
void store_zip_free(store_zip *z);

/* Train a dictionary on samples[0..n) (lens[i] bytes each). n must be at
 * least STORE_ZIP_MIN_SAMPLES; up to STORE_ZIP_MAX_SAMPLES spread over the
 * input and STORE_ZIP_SAMPLE_BYTES are used. On success *dict is a malloc'd
 * dictionary of *dict_len bytes (the caller frees it) whose id is *id.
 * Failure: HVG_EINVAL (too few samples, or zstd found nothing to learn),
 * HVG_ENOMEM; *dict is NULL then. */
int store_zip_train(const char *const *samples, const size_t *lens, size_t n,
                    void **dict, size_t *dict_len, uint32_t *id, hvg_err *err);

/* Load a dictionary (its bytes are copied) for decompression and, with
 * `compress`, make it the one new frames use. Loading an id that is loaded
 * already only changes which one compresses. When STORE_ZIP_DICTS_MAX are
 * loaded the oldest is dropped (the store loads it again when a frame needs
 * it). Failure: HVG_EFORMAT (not a zstd dictionary), HVG_ENOMEM; the handle
 * is unchanged then. */
int store_zip_load(store_zip *z, const void *dict, size_t len, int compress,
                   hvg_err *err);

/* Id of the dictionary new frames use, 0 when none does. */
uint32_t store_zip_dict_id(const store_zip *z);

/* 1 when dictionary `id` is loaded, else 0. */
int store_zip_has(const store_zip *z, uint32_t id);

/* Compress src[0..len) with the compressing dictionary, into the handle's
 * own buffer: *out is valid until the next call on z. The frame records
 * the dictionary id, the size and a checksum. Failure: HVG_ESTATE (no
 * dictionary compresses), HVG_ENOMEM, HVG_EIO (zstd failed); *out and
 * *out_len are unchanged then. */
int store_zip_compress(store_zip *z, const char *src, size_t len,
                       const void **out, size_t *out_len, hvg_err *err);

/* 0 once this handle has compressed STORE_ZIP_JUDGE_BYTES and saved less
 * than half of them (Bundles mostly of base64 attachments, say): the caller
 * then stores plain rather than spend the CPU, which grows as the ratio
 * falls (19 us for a 3.5 KB Bundle of random text at 1.5x, against ~5 us
 * at 12x). Else 1. */
#define STORE_ZIP_JUDGE_BYTES ((size_t)1 << 20)
int store_zip_worthwhile(const store_zip *z);

/* What a stored frame needs before it can be decompressed: the id of its
 * dictionary (*dict_id, 0 for none) and its decompressed size (*size).
 * Failure: HVG_EFORMAT (not one complete zstd frame, or no recorded size),
 * HVG_ETOOBIG (over max); outputs unchanged then. */
int store_zip_frame_info(const void *src, size_t len, size_t max,
                         uint32_t *dict_id, size_t *size, hvg_err *err);

/* Decompress one frame into dst[0..cap), which must hold the size
 * store_zip_frame_info gave; *n gets it. Failure: HVG_ENOTFOUND (its
 * dictionary is not loaded), HVG_EFORMAT (corrupt frame or checksum
 * mismatch), HVG_ENOMEM. dst's content is unspecified after a failure. */
int store_zip_decompress(store_zip *z, const void *src, size_t len, char *dst,
                         size_t cap, size_t *n, hvg_err *err);

#endif
