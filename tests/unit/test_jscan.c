/* The JSON cursor (hvg_jscan): walking objects and arrays, reading and
 * unescaping strings, skipping values of any shape, and refusing
 * malformed text, nesting past the limits and text cut short. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hvg_jscan.h"

#include <stdlib.h>
#include <string.h>

static void init(hvg_jscan *j, const char *s) {
  hvg_jscan_init(j, s, strlen(s));
}

/* The walk delivery does over a transaction-response: entry[i].response.
 * location, the first of duplicate keys, whatever else the entries hold. */
static void test_walk(void **state) {
  (void)state;
  static const char doc[] =
      "{\"resourceType\":\"Bundle\",\"id\":\"x\",\"entry\":[\n"
      "  {\"response\":{\"status\":\"201 Created\",\n"
      "                \"location\":\"Observation/1/_history/1\"}},\n"
      "  {\"resource\":{\"a\":[1,-2.5e3,{\"b\":null}],\"t\":true,\"f\":false,"
      "\"s\":\"}]\\\"\"},\n"
      "   \"response\":{\"location\":\"Patient\\/2\",\"location\":\"no\"},\n"
      "   \"response\":{\"location\":\"no\"}},\n"
      "  5, \"x\", [], {}, {\"response\":[\"location\"]},\n"
      "  {\"response\":{\"location\":7}}\n"
      "], \"entry\": []}";
  hvg_jscan j;
  init(&j, doc);
  assert_int_equal(hvg_jscan_enter_object(&j), 1);
  int rc;
  while ((rc = hvg_jscan_member(&j)) == 1 && strcmp(j.key, "entry"))
    ;
  assert_int_equal(rc, 1);
  assert_int_equal(hvg_jscan_enter_array(&j), 1);
  char loc[8][64];
  int n = 0;
  while ((rc = hvg_jscan_item(&j)) == 1) {
    assert_true(n < 8);
    loc[n][0] = '\0';
    if (hvg_jscan_enter_object(&j) == 1) {
      int seen = 0;
      while ((rc = hvg_jscan_member(&j)) == 1) {
        if (seen || strcmp(j.key, "response"))
          continue;
        seen = 1;
        if (hvg_jscan_enter_object(&j) != 1)
          continue;
        int got = 0;
        while ((rc = hvg_jscan_member(&j)) == 1)
          if (!got && !strcmp(j.key, "location")) {
            got = 1;
            assert_true(hvg_jscan_string(&j, loc[n], sizeof loc[n]) != -1);
          }
        assert_int_equal(rc, 0);
      }
      assert_int_equal(rc, 0);
    }
    n++;
  }
  assert_int_equal(rc, 0);
  assert_int_equal(n, 8);
  assert_string_equal(loc[0], "Observation/1/_history/1");
  assert_string_equal(loc[1], "Patient/2");
  for (int i = 2; i < 8; i++)
    assert_string_equal(loc[i], "");
  /* the rest of the document: the second "entry" and the end */
  assert_int_equal(hvg_jscan_member(&j), 1);
  assert_string_equal(j.key, "entry");
  assert_int_equal(hvg_jscan_member(&j), 0);
  assert_int_equal(hvg_jscan_peek(&j), 0);
}

static void test_strings(void **state) {
  (void)state;
  hvg_jscan j;
  char out[64];
  init(&j, "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\u20AC\\ud83d\\ude00\"");
  assert_int_equal(hvg_jscan_string(&j, out, sizeof out), 21);
  assert_string_equal(out, "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xe2\x82\xac"
                           "\xf0\x9f\x98\x80");
  /* a string that does not fit is consumed; the next member still reads */
  init(&j, "{\"k\":\"0123456789\",\"n\":\"ok\"}");
  assert_int_equal(hvg_jscan_enter_object(&j), 1);
  assert_int_equal(hvg_jscan_member(&j), 1);
  assert_int_equal(hvg_jscan_string(&j, out, 10), -2);
  assert_string_equal(out, "");
  assert_int_equal(hvg_jscan_member(&j), 1);
  assert_int_equal(hvg_jscan_string(&j, out, 3), 2);
  assert_string_equal(out, "ok");
  assert_int_equal(hvg_jscan_member(&j), 0);
  /* a value that is not a string is skipped */
  init(&j, "[{\"a\":[1,2]},\"s\"]");
  assert_int_equal(hvg_jscan_enter_array(&j), 1);
  assert_int_equal(hvg_jscan_item(&j), 1);
  assert_int_equal(hvg_jscan_string(&j, out, sizeof out), -2);
  assert_int_equal(hvg_jscan_item(&j), 1);
  assert_int_equal(hvg_jscan_string(&j, out, sizeof out), 1);
  assert_int_equal(hvg_jscan_item(&j), 0);
  /* no room at all */
  init(&j, "\"\"");
  assert_int_equal(hvg_jscan_string(&j, out, 0), -2);
  static const char *const bad[] = {
      "\"\\x\"",      "\"\\u12G4\"",        "\"\\ud800\"",
      "\"\\udc00x\"", "\"\\ud800\\u0041\"", "\"abc",
      "\"\\",         "\"\\u12\"",          "\"\\ud800\\udbff\""};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    init(&j, bad[i]);
    assert_int_equal(hvg_jscan_string(&j, out, sizeof out), -1);
    init(&j, bad[i]);
    assert_int_equal(hvg_jscan_skip(&j), -1);
  }
}

static void test_skip(void **state) {
  (void)state;
  hvg_jscan j;
  static const char *const good[] = {"1",
                                     "-0.5E+3",
                                     "true",
                                     "false",
                                     "null",
                                     "\"\"",
                                     "[]",
                                     "{}",
                                     " [ ] ",
                                     "{\"a\":{\"b\":[[],{}]}}",
                                     "[1,2]",
                                     "\x01[\x1f]",
                                     "{\"a\":1} tail"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    init(&j, good[i]);
    assert_int_equal(hvg_jscan_skip(&j), 0);
  }
  init(&j, "{\"a\":1} tail");
  assert_int_equal(hvg_jscan_skip(&j), 0);
  assert_int_equal(hvg_jscan_peek(&j), 't');
  static const char *const bad[] = {
      "",           "tru",       "nul",
      "[",          "{\"a\":",   "{\"a\" 1}",
      "{\"a\":1,}", "[1,]",      "[1 2]",
      "{1:2}",      "]",         "}",
      "[}",         "{]",        "{\"a\":1]",
      "[1}",        ",",         "x",
      "{\"a\"}",    "[\"a\":1]", "{\"a\":1 \"b\":2}"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    init(&j, bad[i]);
    assert_int_equal(hvg_jscan_skip(&j), -1);
  }
}

static void test_depth(void **state) {
  (void)state;
  size_t n = HVG_JSCAN_MAX_DEPTH + 1;
  char *s = malloc(2 * n + 1);
  assert_non_null(s);
  memset(s, '[', n);
  memset(s + n, ']', n);
  s[2 * n] = '\0';
  hvg_jscan j;
  hvg_jscan_init(&j, s + 1, 2 * n - 2); /* the limit itself */
  assert_int_equal(hvg_jscan_skip(&j), 0);
  hvg_jscan_init(&j, s, 2 * n); /* one more */
  assert_int_equal(hvg_jscan_skip(&j), -1);
  /* containers a caller enters */
  hvg_jscan_init(&j, s, 2 * n);
  for (int i = 0; i < HVG_JSCAN_WALK_MAX; i++) {
    assert_int_equal(hvg_jscan_enter_array(&j), 1);
    assert_int_equal(hvg_jscan_item(&j), 1);
  }
  assert_int_equal(hvg_jscan_enter_array(&j), -1);
  free(s);
}

/* The text's length is what counts, not a NUL. */
static void test_cut_short(void **state) {
  (void)state;
  hvg_jscan j;
  char out[16];
  hvg_jscan_init(&j, "\"abc\"", 4);
  assert_int_equal(hvg_jscan_string(&j, out, sizeof out), -1);
  hvg_jscan_init(&j, "{\"a\":1}", 6);
  assert_int_equal(hvg_jscan_skip(&j), -1);
  hvg_jscan_init(&j, "true", 3);
  assert_int_equal(hvg_jscan_skip(&j), -1);
  hvg_jscan_init(&j, "\"\\u00e9\"", 7);
  assert_int_equal(hvg_jscan_skip(&j), -1);
  hvg_jscan_init(&j, NULL, 0);
  assert_int_equal(hvg_jscan_peek(&j), 0);
  assert_int_equal(hvg_jscan_enter_object(&j), -1);
  assert_int_equal(hvg_jscan_skip(&j), -1);
}

static void test_members(void **state) {
  (void)state;
  hvg_jscan j;
  char out[16];
  /* names are unescaped; one too long for the key matches nothing */
  init(&j,
       "{\"loc\\u0061tion\":\"x\",\"0123456789012345678901234567890123456789"
       "012345678901234567890123456789\":1,\"b\":{\"c\":2},\"d\":3}");
  assert_int_equal(hvg_jscan_enter_object(&j), 1);
  assert_int_equal(hvg_jscan_member(&j), 1);
  assert_string_equal(j.key, "location");
  assert_int_equal(hvg_jscan_member(&j), 1); /* "x" unread: skipped */
  assert_string_equal(j.key, "");
  assert_int_equal(hvg_jscan_member(&j), 1);
  assert_string_equal(j.key, "b");
  assert_int_equal(hvg_jscan_item(&j), -1);  /* an object, not an array */
  assert_int_equal(hvg_jscan_member(&j), 1); /* {"c":2} skipped */
  assert_string_equal(j.key, "d");
  assert_int_equal(hvg_jscan_member(&j), 0);
  assert_int_equal(hvg_jscan_member(&j), -1); /* nothing entered any more */
  /* entering something else leaves it for the next member to skip */
  init(&j, "{\"a\":\"s\",\"b\":[\"t\"]}");
  assert_int_equal(hvg_jscan_enter_object(&j), 1);
  assert_int_equal(hvg_jscan_member(&j), 1);
  assert_int_equal(hvg_jscan_enter_object(&j), 0);
  assert_int_equal(hvg_jscan_member(&j), 1);
  assert_int_equal(hvg_jscan_enter_array(&j), 1);
  assert_int_equal(hvg_jscan_item(&j), 1);
  assert_int_equal(hvg_jscan_string(&j, out, sizeof out), 1);
  assert_int_equal(hvg_jscan_item(&j), 0);
  assert_int_equal(hvg_jscan_member(&j), 0);
  /* malformed while walking */
  static const char *const bad[] = {"{\"a\":1,}", "{\"a\":1 \"b\":2}",
                                    "{\"a\" 1}", "{\"a\":tru}", "{\"a\":1"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    init(&j, bad[i]);
    assert_int_equal(hvg_jscan_enter_object(&j), 1);
    int rc;
    while ((rc = hvg_jscan_member(&j)) == 1)
      ;
    assert_int_equal(rc, -1);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_walk),      cmocka_unit_test(test_strings),
      cmocka_unit_test(test_skip),      cmocka_unit_test(test_depth),
      cmocka_unit_test(test_cut_short), cmocka_unit_test(test_members),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
