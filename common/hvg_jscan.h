/* hvg_jscan — a forward cursor over a JSON text, for reading a few values
 * out of a large document without building a tree.
 *
 * Delivery reads a few strings per entry (the `location` of each
 * transaction-response entry, the `url` and `ifNoneExist` of each request)
 * out of documents whose resources it does not need; a cJSON tree of them
 * costs an allocation per value. The cursor walks objects and arrays
 * member by member and skips what the caller does not ask for.
 *
 * What it walks or skips is checked as JSON: brackets, commas, colons,
 * string escapes (\u surrogates paired), the literals true/false/null;
 * numbers only for their characters. As with cJSON, any byte up to the
 * space counts as white space, a leading byte order mark is skipped and
 * text after the value is not looked at; so a text cJSON parses reads the
 * same here (tests/fuzz/fuzz_jscan.c checks that). Keys are compared after
 * unescaping; a caller that stops at the first match of a key gets the
 * member cJSON_GetObjectItemCaseSensitive would. Skipped values nest at
 * most HVG_JSCAN_MAX_DEPTH deep (cJSON's limit), the containers a caller
 * enters at most HVG_JSCAN_WALK_MAX. Nothing is allocated; the text need
 * not be NUL-terminated. */
#ifndef HVG_JSCAN_H
#define HVG_JSCAN_H

#include <stddef.h>

#define HVG_JSCAN_MAX_DEPTH 1000
#define HVG_JSCAN_WALK_MAX 32
#define HVG_JSCAN_KEY_MAX 64 /* longer names match no key a caller asks for */

typedef struct hvg_jscan {
  const char *s;
  size_t len, i;
  int depth;                              /* containers entered, not left */
  unsigned char open[HVG_JSCAN_WALK_MAX]; /* '{' or '[', | 0x80 once one
                                             member or item was seen */
  int pending;                            /* a member/item value unread */
  char key[HVG_JSCAN_KEY_MAX];            /* the last member's name */
} hvg_jscan;

/* Start at the beginning of s[0..len). */
void hvg_jscan_init(hvg_jscan *j, const char *s, size_t len);

/* What the value at the cursor is: '{', '[', '"', or the first character
 * of a number or literal; 0 at the end of the text. */
int hvg_jscan_peek(hvg_jscan *j);

/* Enter the object (array) at the cursor: 1 entered; 0 the value there is
 * something else (not consumed); -1 at the end of the text or too deep. */
int hvg_jscan_enter_object(hvg_jscan *j);
int hvg_jscan_enter_array(hvg_jscan *j);

/* The next member of the object entered last (an unread value of the
 * previous one is skipped): 1 with its name in j->key (empty when longer
 * than HVG_JSCAN_KEY_MAX - 1) and the cursor at its value; 0 at the end of
 * the object (left); -1 malformed, or the container entered last is not
 * an object. */
int hvg_jscan_member(hvg_jscan *j);

/* The next item of the array entered last, likewise: 1 with the cursor at
 * it, 0 at the end of the array (left), -1 malformed or not an array. */
int hvg_jscan_item(hvg_jscan *j);

/* Skip the value at the cursor, whatever it holds: 0, or -1 malformed. */
int hvg_jscan_skip(hvg_jscan *j);

/* Read the string at the cursor, unescaped (UTF-8), into out[cap]
 * (NUL-terminated): its length (>= 0); -2 when the value is not a string
 * or longer than cap - 1 (the value is skipped, out is empty); -1
 * malformed. */
long hvg_jscan_string(hvg_jscan *j, char *out, size_t cap);

#endif
