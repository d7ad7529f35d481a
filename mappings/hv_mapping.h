/* hv_mapping — a program's mapping file (JSON; documented in
 * docs/mapping.md, schema conf/schema/mapping.schema.json): which export files
 * exist, how to read each, and how its columns or paths map onto canonical
 * fields, with value maps, date formats, defaults and required flags; and,
 * for the reverse direction (hv_export), the columns a source's layout adds
 * when the gateway writes records back to the program ("export_fields"). */
#ifndef HV_MAPPING_H
#define HV_MAPPING_H

#include "hv_canonical.h"
#include "hv_reader.h"
#include "hvg_arena.h"
#include "hvg_buf.h"

typedef struct hv_valmap {
  const char *from, *to;
} hv_valmap;

/* One mapped field. Under "export_fields" only field, from (always set),
 * date_format and map are used; value, def and required stay empty. */
typedef struct hv_fieldmap {
  hv_field field;
  const char *from;        /* source key (column / path), or NULL */
  const char *value;       /* constant value, or NULL */
  const char *def;         /* default when the source value is empty */
  int required;
  const char *date_format; /* HV_T_DATE; NULL = the source's */
  const hv_valmap *map;    /* value map, matched case-insensitively; on
                              export used reversed (code -> first label) */
  size_t n_map;
} hv_fieldmap;

typedef struct hv_source {
  const char *name;
  hv_rectype type;
  const char *const *files; /* basename globs, NULL-terminated */
  hv_reader_opts ropts;
  const char *date_format; /* default "YYYY-MM-DD" */
  hv_fieldmap *fields;     /* "fields": read on input (and written on export) */
  size_t n_fields;
  const hv_fieldmap *by_field[HV_F__COUNT]; /* into fields; NULL: unmapped */
  /* "export_fields": columns only written on export, never read; each has a
   * `from` that no other column of the layout uses. */
  hv_fieldmap *export_fields;
  size_t n_export_fields;
} hv_source;

typedef struct hv_mapping {
  hvg_arena arena; /* owns everything below */
  const char *path;
  const char *program_id, *program_name;
  const char *id_base; /* ends in '/' or ':' */
  const char *instruments_path, *services_path;
  hv_source *sources;
  size_t n_sources;
} hv_mapping;

/* Load and check a mapping file. Returns 0 and *out (free with
 * hv_mapping_free); or HVG_ENOINPUT (unreadable), HVG_ECONFIG (every
 * problem appended to diag as "FILE:LINE: /pointer: message\n"), HVG_ENOMEM;
 * *out is NULL on error. Catalogue paths are resolved relative to the
 * mapping file; `default_catalog_dir` is used when the file names none. */
int hv_mapping_load(hv_mapping **out, const char *path,
                    const char *default_catalog_dir, hvg_buf *diag);

void hv_mapping_free(hv_mapping *m);

/* The source for an input file: by name when `name` is given, else the one
 * whose file globs match the file's basename (or the only source). NULL when
 * none or several match. */
const hv_source *hv_mapping_source_for(const hv_mapping *m, const char *file,
                                       const char *name);

/* The first source of the mapping with record type t (mapping-file order),
 * or NULL when there is none. */
const hv_source *hv_mapping_source_of_type(const hv_mapping *m, hv_rectype t);

/* Parse `s` with a date pattern made of YYYY, MM, M, DD, D and literal
 * characters ("MM/DD/YYYY"), writing YYYY-MM-DD into out[11]. Returns 0,
 * HVG_EFORMAT (does not match the pattern) or HVG_ERANGE (no such day). */
int hv_date_parse(const char *pattern, const char *s, char out[11]);

/* The reverse of hv_date_parse: writes the day `iso` (YYYY-MM-DD) in the
 * pattern into out[cap], NUL-terminated. YYYY, MM and DD are zero-padded;
 * M and D have no leading zero, unless another number follows directly in
 * the pattern ("YYYYMD"), where they take two digits so that hv_date_parse
 * reads the text back as the same day. Returns 0, HVG_EINVAL (NULL argument
 * or not a date pattern), HVG_EFORMAT (iso is not a real YYYY-MM-DD day) or
 * HVG_ETOOBIG (cap too small); on error out is "" (when cap > 0). */
int hv_date_format(const char *pattern, const char *iso, char *out, size_t cap);

/* 1 when the pattern only uses the supported tokens. */
int hv_date_pattern_ok(const char *pattern);

#endif
