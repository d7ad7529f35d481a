/* hvg_fsrv_int — what the files of the FHIR server share (private to
 * hvg_fsrv*.c): the server, the programs' identifier systems, an
 * interaction's arguments, and the helpers the REST interactions
 * (hvg_fsrv.c), the referral tracker (hvg_fsrv_task.c) and the creates of
 * what partners send back (hvg_fsrv_create.c) all use. */
#ifndef HVG_FSRV_INT_H
#define HVG_FSRV_INT_H

#include "hvg_fsrv.h"
#include "hvg_tracker.h"

#define FS__MAX_BODY ((size_t)8 << 20) /* a stored resource */

/* A program and the identifier systems of its resources. */
typedef struct fs__prog {
  const hvg_program *p;
  hv_tofhir tf;
  int ready;
} fs__prog;

struct hvg_fsrv {
  const hvg_config *cfg;
  store *st;
  fs__prog *progs;
  size_t n_progs;
};

/* An interaction run inside one store transaction: committed when it
 * succeeded (r->status < 300), rolled back otherwise. */
typedef struct fs__op {
  const hvg_partner *who;
  const char *type, *id;
  const cJSON *tree;
  const char *text; /* PATCH: the patch document */
  size_t text_len;
  const char *if_none_exist;
  int64_t if_match;
  const char *source;
  int64_t now;
} fs__op;

typedef int (*fs__fn)(hvg_fsrv *s, const fs__op *op, hvg_fres *r);

/* A urn:uuid placeholder of a Bundle and the resource it becomes. */
typedef struct fs__urn {
  const char *urn;
  char ref[128]; /* "Type/id" */
  char id[37];
} fs__urn;

/* ---- hvg_fsrv.c: results, trees, answers, programs, visibility ------ */

/* r as a failure of the gateway itself (store I/O -> 503, else 500);
 * returns rc. */
int fs__internal(hvg_fres *r, int rc, const hvg_err *e);

/* o[key] as a string; a Reference's "reference"; NULL when absent. */
const char *fs__str(const cJSON *o, const char *key);
const char *fs__ref(const cJSON *o, const char *key);

/* "system|value" of the first identifier into out: 1, or 0 when there is
 * none or it does not fit. */
int fs__ident(const cJSON *ident, char *out, size_t cap);

/* The value of the identifier (array or Reference.identifier) in system,
 * or NULL. */
const char *fs__ident_in(const cJSON *ident, const char *system);

/* A random (v4) UUID for a new resource: 0, or HVG_ENOMEM. */
int fs__new_id(char out[37]);

/* The stored text of a resource (no meta.versionId/lastUpdated, id set);
 * the caller frees it; NULL when out of memory. */
char *fs__body(const cJSON *res, const char *id, size_t *len);

/* A stored row as a tree with its meta (the caller deletes it); NULL when
 * out of memory or it does not parse. */
cJSON *fs__tree(const store_resource *row);

/* r answers 200/201 with the row, or with tree as type/id at version and
 * stamp (no body when r->minimal); 0, or a 500 in r and HVG_ENOMEM. */
int fs__answer_row(hvg_fres *r, int status, const store_resource *row);
int fs__answer_tree(hvg_fres *r, int status, const char *type, const char *id,
                    const cJSON *tree, int64_t version, int64_t stamp);

/* The program by id, by its child identifier system, or the one a
 * Reference names (Task.owner, ServiceRequest.performer); NULL if none. */
const fs__prog *fs__prog_by_id(const hvg_fsrv *s, const char *id);
const fs__prog *fs__prog_of_child_system(const hvg_fsrv *s, const char *system);
const fs__prog *fs__prog_of_ref(const hvg_fsrv *s, const cJSON *ref);

/* The types partners read (NULL-terminated); 1 when type is in types,
 * else 0 with r a 404 not-supported. */
extern const char *const fs__readable[];
int fs__type_ok(hvg_fres *r, const char *type, const char *const *types);

/* The row type/id if `who` may see it: 0 (release *row); HVG_ENOTFOUND
 * with r a 404 (absent or another partner's); a store error with r a 500
 * or 503. */
int fs__visible(hvg_fsrv *s, const hvg_partner *who, const char *type,
                const char *id, store_resource *row, hvg_fres *r);

/* fn(op) inside one store transaction (a savepoint inside an open one),
 * kept when it succeeded (r->status < 300). Returns fn's result or the
 * commit's failure (r then a 500/503). */
int fs__in_tx(hvg_fsrv *s, fs__fn fn, const fs__op *op, hvg_fres *r);

/* 0 when the tree's resourceType and id match the URL's, else -1 with r
 * a 400. */
int fs__same_id(hvg_fres *r, const char *type, const char *id,
                const cJSON *tree);

/* Rewrites every Reference.reference of t equal (ignoring case) to a
 * placeholder of map[0..n) into its "Type/id". */
void fs__rewrite(cJSON *t, const fs__urn *map, size_t n);

/* ---- hvg_fsrv_task.c: the referral tracker ------------------------------ */

/* Writes tree as the next version of *row (expect: its version, 0 to
 * create, < 0 either), with its search columns; row->version/updated_ms
 * become the new ones. The store's errors (HVG_ESTATE: changed since). */
int fs__store(hvg_fsrv *s, store_resource *row, const cJSON *tree,
              int64_t expect, int64_t now, hvg_err *e);

/* Records a referral's Task status change (with the derived home visiting
 * status) and an event for its program. The store's errors. */
int fs__transition(hvg_fsrv *s, const char *program, const char *referral_id,
                   const char *from, const char *to, const char *actor,
                   const char *source, const char *reason,
                   const char *program_status, int64_t now, hvg_err *e);

/* PUT / JSON Patch of a Task by op->who, inside the caller's transaction:
 * r the answer; 0, or a gateway failure. */
int fs__update_op(hvg_fsrv *s, const fs__op *op, hvg_fres *r);
int fs__patch_op(hvg_fsrv *s, const fs__op *op, hvg_fres *r);

/* ---- hvg_fsrv_create.c: what partners send back ------------------------- */

/* The types partners create (NULL-terminated). */
extern const char *const fs__creatable[];

/* Create op->tree for op->who as op->type/id (fs__create_op: a new id),
 * inside the caller's transaction: r the answer (201, 200 for an existing
 * If-None-Exist match, 4xx); 0, or a gateway failure. */
int fs__create_as(hvg_fsrv *s, const fs__op *op, const char *id, hvg_fres *r);
int fs__create_op(hvg_fsrv *s, const fs__op *op, hvg_fres *r);

#endif
