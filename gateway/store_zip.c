#define ZSTD_STATIC_LINKING_ONLY  /* custom allocators, *_advanced */
#define ZDICT_STATIC_LINKING_ONLY /* fastCover with fixed parameters */
#include "store_zip.h"

#include <zdict.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <stdlib.h>
#include <string.h>

typedef struct zip__dict {
  uint32_t id;
  ZSTD_DDict *dd;
} zip__dict;

struct store_zip {
  ZSTD_CCtx *cc;
  ZSTD_DCtx *dc;
  ZSTD_CDict *cd; /* the compressing dictionary (in cd_mem), or NULL */
  void *cd_mem;
  uint32_t cd_id;
  zip__dict dicts[STORE_ZIP_DICTS_MAX]; /* oldest first */
  size_t n_dicts;
  void *buf; /* compress output */
  size_t buf_cap;
  uint64_t bytes_in, bytes_out; /* what compress was given and made */
};

/* zstd allocates through these, so the allocation torture reaches it */
static void *zip__alloc(void *opaque, size_t n) {
  (void)opaque;
  return malloc(n);
}
static void zip__free(void *opaque, void *p) {
  (void)opaque;
  free(p);
}
static const ZSTD_customMem zip__mem = {zip__alloc, zip__free, NULL};

store_zip *store_zip_new(void) {
  store_zip *z = calloc(1, sizeof *z);
  if (!z)
    return NULL;
  z->cc = ZSTD_createCCtx_advanced(zip__mem);
  z->dc = ZSTD_createDCtx_advanced(zip__mem);
  if (!z->cc || !z->dc ||
      ZSTD_isError(ZSTD_CCtx_setParameter(z->cc, ZSTD_c_checksumFlag, 1)) ||
      ZSTD_isError(ZSTD_CCtx_setParameter(z->cc, ZSTD_c_contentSizeFlag, 1))) {
    store_zip_free(z);
    return NULL;
  }
  return z;
}

void store_zip_free(store_zip *z) {
  if (!z)
    return;
  ZSTD_freeCCtx(z->cc);
  ZSTD_freeDCtx(z->dc);
  free(z->cd_mem); /* a static CDict: its workspace is all there is */
  for (size_t i = 0; i < z->n_dicts; i++)
    ZSTD_freeDDict(z->dicts[i].dd);
  free(z->buf);
  free(z);
}

int store_zip_train(const char *const *samples, const size_t *lens, size_t n,
                    void **dict, size_t *dict_len, uint32_t *id, hvg_err *err) {
  if (!dict || !dict_len || !id || (n && (!samples || !lens)))
    return hvg_err_set(err, HVG_EINVAL, "store.zip", "NULL argument");
  *dict = NULL;
  if (n < STORE_ZIP_MIN_SAMPLES)
    return hvg_err_set(err, HVG_EINVAL, "store.zip",
                       "%zu samples; training needs %d", n,
                       STORE_ZIP_MIN_SAMPLES);
  /* spread the samples over the input: a batch is often sorted by type */
  size_t take = n < STORE_ZIP_MAX_SAMPLES ? n : STORE_ZIP_MAX_SAMPLES;
  size_t total = 0, used = 0;
  size_t *sizes = malloc(2 * take * sizeof *sizes), *pick = sizes + take;
  if (!sizes)
    return hvg_err_set(err, HVG_ENOMEM, "store.zip", NULL);
  for (size_t k = 0; k < take; k++) {
    size_t i = k * n / take;
    if (!samples[i] || !lens[i] || total + lens[i] > STORE_ZIP_SAMPLE_BYTES)
      continue;
    total += lens[i];
    pick[used] = i;
    sizes[used++] = lens[i];
  }
  char *cat = malloc(total ? total : 1);
  void *out = malloc(STORE_ZIP_DICT_BYTES);
  if (!cat || !out) {
    free(sizes);
    free(cat);
    free(out);
    return hvg_err_set(err, HVG_ENOMEM, "store.zip", NULL);
  }
  for (size_t k = 0, off = 0; k < used; off += sizes[k], k++)
    memcpy(cat + off, samples[pick[k]], sizes[k]);
  int rc = 0;
  if (used < STORE_ZIP_MIN_SAMPLES) {
    rc = hvg_err_set(err, HVG_EINVAL, "store.zip",
                     "%zu usable samples; training needs %d", used,
                     STORE_ZIP_MIN_SAMPLES);
  } else {
    /* fastCover with a fixed segment size: on our Bundles it matches the
     * ratio of zstd's parameter search (12.8x) in a quarter of the time
     * (~20 ms for 256 samples), which the first batch waits for */
    ZDICT_fastCover_params_t fp;
    memset(&fp, 0, sizeof fp);
    fp.k = 1024;
    fp.d = 8;
    fp.f = 20;
    fp.accel = 1;
    fp.zParams.compressionLevel = STORE_ZIP_LEVEL;
    size_t r = ZDICT_trainFromBuffer_fastCover(out, STORE_ZIP_DICT_BYTES, cat,
                                               sizes, (unsigned)used, fp);
    if (ZDICT_isError(r))
      rc = hvg_err_set(
          err,
          ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? HVG_ENOMEM
                                                               : HVG_EINVAL,
          "store.zip", "cannot train a dictionary: %s", ZDICT_getErrorName(r));
    else {
      *dict_len = r;
      *id = ZDICT_getDictID(out, r);
    }
  }
  free(sizes);
  free(cat);
  if (rc) {
    free(out);
    return rc;
  }
  *dict = out;
  return 0;
}

static zip__dict *zip__find(const store_zip *z, uint32_t id) {
  for (size_t i = 0; i < z->n_dicts; i++)
    if (z->dicts[i].id == id)
      return (zip__dict *)&z->dicts[i];
  return NULL;
}

int store_zip_load(store_zip *z, const void *dict, size_t len, int compress,
                   hvg_err *err) {
  if (!z || !dict || !len)
    return hvg_err_set(err, HVG_EINVAL, "store.zip", "NULL argument");
  uint32_t id = ZDICT_getDictID(dict, len);
  if (id == 0)
    return hvg_err_set(err, HVG_EFORMAT, "store.zip", "not a zstd dictionary");
  ZSTD_DDict *dd = NULL;
  if (!zip__find(z, id)) {
    dd = ZSTD_createDDict_advanced(dict, len, ZSTD_dlm_byCopy,
                                   ZSTD_dct_fullDict, zip__mem);
    if (!dd)
      return hvg_err_set(err, HVG_ENOMEM, "store.zip",
                         "cannot load dictionary %u", (unsigned)id);
  }
  if (compress && id != z->cd_id) {
    /* in a workspace of ours: zstd 1.5.4's ZSTD_createCDict_advanced2
     * dereferences NULL when its allocation fails (fixed in 1.5.6, zstd
     * PR #3847; found by test_store_zip's allocation torture) */
    ZSTD_compressionParameters cp = ZSTD_getCParams(STORE_ZIP_LEVEL, 4096, len);
    size_t need = ZSTD_estimateCDictSize_advanced(len, cp, ZSTD_dlm_byCopy);
    void *mem = malloc(need);
    const ZSTD_CDict *cd =
        mem ? ZSTD_initStaticCDict(mem, need, dict, len, ZSTD_dlm_byCopy,
                                   ZSTD_dct_fullDict, cp)
            : NULL;
    if (!cd || ZSTD_isError(ZSTD_CCtx_refCDict(z->cc, cd))) {
      free(mem);
      ZSTD_freeDDict(dd);
      return hvg_err_set(err, mem ? HVG_EFORMAT : HVG_ENOMEM, "store.zip",
                         "cannot load dictionary %u", (unsigned)id);
    }
    free(z->cd_mem);
    z->cd = (ZSTD_CDict *)cd;
    z->cd_mem = mem;
    z->cd_id = id;
  }
  if (dd) {
    if (z->n_dicts == STORE_ZIP_DICTS_MAX) {
      ZSTD_freeDDict(z->dicts[0].dd);
      memmove(&z->dicts[0], &z->dicts[1],
              (STORE_ZIP_DICTS_MAX - 1) * sizeof z->dicts[0]);
      z->n_dicts--;
    }
    z->dicts[z->n_dicts].id = id;
    z->dicts[z->n_dicts].dd = dd;
    z->n_dicts++;
  }
  return 0;
}

uint32_t store_zip_dict_id(const store_zip *z) {
  return z ? z->cd_id : 0;
}

int store_zip_has(const store_zip *z, uint32_t id) {
  return z && zip__find(z, id) != NULL;
}

int store_zip_compress(store_zip *z, const char *src, size_t len,
                       const void **out, size_t *out_len, hvg_err *err) {
  if (!z || (!src && len) || !out || !out_len)
    return hvg_err_set(err, HVG_EINVAL, "store.zip", "NULL argument");
  if (!z->cd)
    return hvg_err_set(err, HVG_ESTATE, "store.zip",
                       "no dictionary to compress with");
  size_t bound = ZSTD_compressBound(len);
  if (ZSTD_isError(bound))
    return hvg_err_set(err, HVG_ETOOBIG, "store.zip", "%zu bytes", len);
  if (bound > z->buf_cap) {
    void *nb = malloc(bound);
    if (!nb)
      return hvg_err_set(err, HVG_ENOMEM, "store.zip", NULL);
    free(z->buf);
    z->buf = nb;
    z->buf_cap = bound;
  }
  size_t r = ZSTD_compress2(z->cc, z->buf, z->buf_cap, src, len);
  if (ZSTD_isError(r))
    return hvg_err_set(err,
                       ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation
                           ? HVG_ENOMEM
                           : HVG_EIO,
                       "store.zip", "zstd: %s", ZSTD_getErrorName(r));
  z->bytes_in += len;
  z->bytes_out += r < len ? r : len; /* what the caller will store */
  *out = z->buf;
  *out_len = r;
  return 0;
}

int store_zip_worthwhile(const store_zip *z) {
  return !z || z->bytes_in < STORE_ZIP_JUDGE_BYTES ||
         z->bytes_out * 2 <= z->bytes_in;
}

int store_zip_frame_info(const void *src, size_t len, size_t max,
                         uint32_t *dict_id, size_t *size, hvg_err *err) {
  if (!src || !dict_id || !size)
    return hvg_err_set(err, HVG_EINVAL, "store.zip", "NULL argument");
  if (ZSTD_findFrameCompressedSize(src, len) != len)
    return hvg_err_set(err, HVG_EFORMAT, "store.zip",
                       "not one complete zstd frame");
  unsigned long long n = ZSTD_getFrameContentSize(src, len);
  if (n == ZSTD_CONTENTSIZE_UNKNOWN || n == ZSTD_CONTENTSIZE_ERROR)
    return hvg_err_set(err, HVG_EFORMAT, "store.zip",
                       "the frame does not record its size");
  if (n > max)
    return hvg_err_set(err, HVG_ETOOBIG, "store.zip",
                       "%llu bytes decompressed, over %zu", n, max);
  *dict_id = ZSTD_getDictID_fromFrame(src, len);
  *size = (size_t)n;
  return 0;
}

int store_zip_decompress(store_zip *z, const void *src, size_t len, char *dst,
                         size_t cap, size_t *n, hvg_err *err) {
  if (!z || !src || (!dst && cap) || !n)
    return hvg_err_set(err, HVG_EINVAL, "store.zip", "NULL argument");
  uint32_t id = ZSTD_getDictID_fromFrame(src, len);
  const zip__dict *d = id ? zip__find(z, id) : NULL;
  if (id && !d)
    return hvg_err_set(err, HVG_ENOTFOUND, "store.zip",
                       "dictionary %u is not loaded", (unsigned)id);
  size_t r = d ? ZSTD_decompress_usingDDict(z->dc, dst, cap, src, len, d->dd)
               : ZSTD_decompressDCtx(z->dc, dst, cap, src, len);
  if (ZSTD_isError(r))
    return hvg_err_set(
        err,
        ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? HVG_ENOMEM
                                                             : HVG_EFORMAT,
        "store.zip", "corrupt compressed Bundle: %s", ZSTD_getErrorName(r));
  *n = r;
  return 0;
}
