/* libFuzzer: fhir_patch_parse and fhir_patch_apply on arbitrary bytes. The
 * input is a JSON document, a line "--" (which no JSON text can hold), and
 * a JSON Patch; without the line, all of it is the patch, applied to a
 * small Task. The document is read with fhir_json_parse (the FHIR tree the
 * gateway stores: integers as cJSON numbers, decimals as Raw text) or, when
 * it is no FHIR resource, with cJSON's own parser (any JSON: numbers as
 * doubles, duplicate keys, deep nesting). abort() unless:
 *  - parse returns a code of its contract, err.code is that code, and the
 *    patch is set exactly on success;
 *  - apply, on failure, returns a code of its contract with err.field "/i"
 *    (i an operation index; "" only for a too deep document or no memory
 *    for the working copy), and leaves *doc the same pointer, printing the
 *    same text as before;
 *  - apply, on success, gives a tree that cJSON prints and parses back,
 *    nesting at most FHIR_PARSE_MAX_DEPTH levels; from a FHIR tree, the
 *    text parses back with fhir_json's strict parser too; a patch of only
 *    "test" operations leaves the very tree;
 *  - applying the same patch to a copy of the document gives the same
 *    code, error and result (no hidden state). */
#include "fhir_json.h"
#include "fhir_json_int.h"
#include "fhir_patch.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CAP ((size_t)1 << 20)

static const char task[] =
    "{\"resourceType\":\"Task\",\"id\":\"t1\",\"status\":\"requested\","
    "\"intent\":\"order\",\"for\":{\"reference\":\"Patient/p1\"},\"note\":[{"
    "\"text\":\"a\"},{\"text\":\"b\"}],\"input\":[{\"type\":{\"text\":\"s\"},"
    "\"valueDecimal\":1.50},{\"type\":{\"text\":\"n\"},\"valueInteger\":3}]}";

static void fail(const char *what, const char *detail) {
  fprintf(stderr, "fuzz_json_patch: %s\n%s\n", what, detail ? detail : "");
  abort();
}

static int depth(const cJSON *c) {
  int d = 0;
  for (const cJSON *x = c->child; x; x = x->next) {
    int h = depth(x);
    if (h > d)
      d = h;
  }
  return d + (cJSON_IsArray(c) || cJSON_IsObject(c));
}

static int test_only(const char *p, size_t n) {
  /* a cheap over-approximation is not good enough here: ask the tree */
  cJSON *t = NULL;
  hvg_err e;
  if (fhir__json_parse_text(p, n, &t, &e))
    return 0;
  int only = cJSON_IsArray(t);
  for (const cJSON *o = t->child; o && only; o = o->next) {
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "op");
    only = cJSON_IsString(op) && !strcmp(op->valuestring, "test");
  }
  cJSON_Delete(t);
  return only;
}

static int field_ok(const char *f, size_t nops) {
  if (!*f)
    return 1;
  if (*f != '/' || !f[1])
    return 0;
  char *end;
  unsigned long i = strtoul(f + 1, &end, 10);
  return !*end && i < nops && (f[1] != '0' || !f[2]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in = (const char *)data, *doc_text = task, *patch = in;
  size_t doc_len = sizeof task - 1, patch_len = size;
  const char *sep = NULL;
  for (size_t i = 0; i + 4 <= size && !sep; i++)
    if (!memcmp(in + i, "\n--\n", 4))
      sep = in + i;
  if (sep) {
    doc_text = in;
    doc_len = (size_t)(sep - in);
    patch = sep + 4;
    patch_len = size - doc_len - 4;
  }

  hvg_err e;
  cJSON *doc = NULL;
  int fhir = !fhir_json_parse(doc_text, doc_len, CAP, &doc, &e);
  if (!fhir && !(doc = cJSON_ParseWithLength(doc_text, doc_len)))
    return 0;

  fhir_patch *p = (fhir_patch *)&p;
  hvg_err_clear(&e);
  int rc = fhir_patch_parse(patch, patch_len, CAP, &p, &e);
  if (rc != 0 && rc != HVG_ESYNTAX && rc != HVG_EENCODING &&
      rc != HVG_EFORMAT && rc != HVG_ETOOBIG && rc != HVG_ENOMEM)
    fail("parse: code outside the contract", hvg_err_name(rc));
  if (rc ? (p != NULL || e.code != rc) : p == NULL)
    fail("parse: result and code disagree", e.msg);
  if (rc) {
    cJSON_Delete(doc);
    return 0;
  }
  size_t nops = 0;
  {
    cJSON *t = NULL;
    hvg_err e2;
    if (fhir__json_parse_text(patch, patch_len, &t, &e2))
      fail("parse accepted what the JSON parser refuses", e2.msg);
    nops = (size_t)cJSON_GetArraySize(t);
    cJSON_Delete(t);
  }

  char *before = cJSON_PrintUnformatted(doc);
  cJSON *copy = cJSON_Duplicate(doc, 1);
  if (!before || !copy)
    fail("out of memory in the harness", NULL);
  cJSON *orig = doc;
  hvg_err_clear(&e);
  rc = fhir_patch_apply(p, &doc, &e);
  char *after = cJSON_PrintUnformatted(doc);
  if (!after)
    fail("the result does not print", e.msg);
  if (rc) {
    if (rc != HVG_ESTATE && rc != HVG_ENOTFOUND && rc != HVG_EFORMAT &&
        rc != HVG_ETOOBIG && rc != HVG_ENOMEM)
      fail("apply: code outside the contract", hvg_err_name(rc));
    if (e.code != rc || !field_ok(e.field, nops) ||
        (!e.field[0] && rc != HVG_ETOOBIG && rc != HVG_ENOMEM))
      fail("apply: bad error detail", e.field);
    if (doc != orig || strcmp(before, after))
      fail("apply failed but changed the document", e.msg);
  } else {
    if (test_only(patch, patch_len) && doc != orig)
      fail("a patch of tests replaced the document", NULL);
    if (depth(doc) > FHIR_PARSE_MAX_DEPTH)
      fail("the result nests too deep", after);
    cJSON *back = cJSON_Parse(after);
    if (!back)
      fail("the result does not parse back", after);
    cJSON_Delete(back);
    if (fhir) {
      hvg_err e2;
      if (fhir__json_parse_text(after, strlen(after), &back, &e2))
        fail("the result of a FHIR tree is no strict JSON", e2.msg);
      cJSON_Delete(back);
    }
  }

  /* the same again on the copy */
  hvg_err e3;
  hvg_err_clear(&e3);
  int rc2 = fhir_patch_apply(p, &copy, &e3);
  char *again = cJSON_PrintUnformatted(copy);
  if (!again || rc2 != rc || strcmp(again, after) ||
      (rc && (strcmp(e.field, e3.field) || strcmp(e.msg, e3.msg))))
    fail("a second application differs", again);

  free(before);
  free(after);
  free(again);
  cJSON_Delete(copy);
  cJSON_Delete(doc);
  fhir_patch_free(p);
  return 0;
}
