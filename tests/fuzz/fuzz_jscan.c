/* libFuzzer: the JSON cursor (hvg_jscan) against cJSON on arbitrary bytes.
 * The input is walked with the cursor (every object member, array item and
 * string read, containers entered up to HVG_JSCAN_WALK_MAX deep and skipped
 * below) into a canonical text: strings and keys JSON-escaped (a string
 * longer than 255 bytes as L, a key longer than HVG_JSCAN_KEY_MAX - 1 as
 * ""), numbers as #, literals as t/f/n, a container too deep to enter as ~.
 * abort() unless, whenever cJSON parses the input:
 *  - the walk succeeds and gives the text of cJSON's tree printed the same
 *    way (same members in the same order, same unescaped strings);
 *  - hvg_jscan_skip over the whole input succeeds too.
 * Inputs cJSON refuses may walk or not (the cursor does not check number
 * syntax), but must not crash or read outside the input. Inputs with a
 * NUL byte or a \u escape cJSON reads as U+0000 (\u0000, or four
 * characters that are not all hex digits, which the cursor refuses) are
 * only run, not compared: cJSON's strings end there. */
#include "hvg_buf.h"
#include "hvg_jscan.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR_CAP 256

static int walk(hvg_jscan *j, hvg_buf *o, int depth) {
  int c = hvg_jscan_peek(j), rc;
  if ((c == '{' || c == '[') && depth < HVG_JSCAN_WALK_MAX) {
    int obj = c == '{';
    if ((obj ? hvg_jscan_enter_object(j) : hvg_jscan_enter_array(j)) != 1)
      return -1;
    hvg_buf_addc(o, (char)c);
    while ((rc = obj ? hvg_jscan_member(j) : hvg_jscan_item(j)) == 1) {
      if (obj) {
        hvg_buf_add_json_str(o, j->key);
        hvg_buf_addc(o, ':');
      }
      if (walk(j, o, depth + 1))
        return -1;
      hvg_buf_addc(o, ',');
    }
    if (rc < 0)
      return -1;
    hvg_buf_addc(o, obj ? '}' : ']');
    return 0;
  }
  if (c == '"') {
    char s[STR_CAP];
    long n = hvg_jscan_string(j, s, sizeof s);
    if (n == -1)
      return -1;
    if (n == -2)
      hvg_buf_addc(o, 'L');
    else
      hvg_buf_add_json_str(o, s);
    return 0;
  }
  if (hvg_jscan_skip(j))
    return -1;
  hvg_buf_adds(o, c == '{' || c == '[' ? "~"
                  : c == 't'           ? "t"
                  : c == 'f'           ? "f"
                  : c == 'n'           ? "n"
                                       : "#");
  return 0;
}

static void print(const cJSON *c, hvg_buf *o, int depth) {
  if (cJSON_IsObject(c) || cJSON_IsArray(c)) {
    int obj = cJSON_IsObject(c);
    if (depth >= HVG_JSCAN_WALK_MAX) {
      hvg_buf_addc(o, '~');
      return;
    }
    hvg_buf_addc(o, obj ? '{' : '[');
    for (const cJSON *x = c->child; x; x = x->next) {
      if (obj) {
        hvg_buf_add_json_str(
            o, strlen(x->string) < HVG_JSCAN_KEY_MAX ? x->string : "");
        hvg_buf_addc(o, ':');
      }
      print(x, o, depth + 1);
      hvg_buf_addc(o, ',');
    }
    hvg_buf_addc(o, obj ? '}' : ']');
  } else if (cJSON_IsString(c)) {
    if (strlen(c->valuestring) >= STR_CAP)
      hvg_buf_addc(o, 'L');
    else
      hvg_buf_add_json_str(o, c->valuestring);
  } else {
    hvg_buf_adds(o, cJSON_IsTrue(c)    ? "t"
                    : cJSON_IsFalse(c) ? "f"
                    : cJSON_IsNull(c)  ? "n"
                                       : "#");
  }
}

/* A \u escape cJSON reads as U+0000: \u0000, or one whose four
 * characters are not all hex digits (cJSON takes those as 0, the cursor
 * refuses them). */
static int has_nul_escape(const char *s, size_t n) {
  for (size_t i = 0; i + 1 < n; i++) {
    if (s[i] != '\\' || s[i + 1] != 'u')
      continue;
    int zero = 1;
    for (size_t k = i + 2; k < i + 6; k++) {
      if (k >= n || !strchr("0123456789abcdefABCDEF", s[k]) || !s[k])
        return 1;
      zero &= s[k] == '0';
    }
    if (zero)
      return 1;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *exact = malloc(size ? size : 1); /* ASan sees any read past it */
  char *text = malloc(size + 1);         /* cJSON gets a NUL after it */
  if (!exact || !text)
    abort();
  memcpy(exact, data, size);
  memcpy(text, data, size);
  text[size] = '\0';
  hvg_buf mine, theirs;
  hvg_buf_init(&mine, (size_t)64 << 20);
  hvg_buf_init(&theirs, (size_t)64 << 20);
  hvg_jscan j;
  hvg_jscan_init(&j, exact, size);
  int rc = walk(&j, &mine, 0);
  hvg_jscan_init(&j, exact, size);
  int skip = hvg_jscan_skip(&j);
  cJSON *t = size ? cJSON_ParseWithLength(text, size) : NULL;
  if (t && !memchr(text, 0, size) && !has_nul_escape(text, size)) {
    print(t, &theirs, 0);
    if (rc || skip) {
      fprintf(stderr,
              "cJSON parses it, the cursor does not (walk %d, skip "
              "%d)\n",
              rc, skip);
      abort();
    }
    if (mine.len != theirs.len ||
        (mine.len && memcmp(mine.data, theirs.data, mine.len))) {
      fprintf(stderr, "different reading:\ncursor %s\ncJSON  %s\n",
              mine.data ? mine.data : "", theirs.data ? theirs.data : "");
      abort();
    }
  }
  cJSON_Delete(t);
  hvg_buf_free(&mine);
  hvg_buf_free(&theirs);
  free(exact);
  free(text);
  return 0;
}
