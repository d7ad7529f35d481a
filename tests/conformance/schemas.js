#!/usr/bin/env node
// JSON Schemas of the configuration files, checked with a real validator
// (Ajv 8, draft 2020-12) and against the C loader they describe:
//  1. conf/schema/mapping.schema.json agrees with the loader's source: the
//     canonical fields (HV_FIELD_MAP), record types, required fields, and
//     the key lists, formats and encodings of mappings/hv_mapping.c;
//  2. conf/mappings/*.json validate and `hvgate check-mapping` accepts them;
//     conf/catalog/{instruments,services}.json validate;
//  3. every fixtures/mapping-bad-*.json is rejected by the schema (with an
//     error at $expect.schema) and by `hvgate check-mapping` (exit 78, one
//     error: $expect.pointer: $expect.loader);
//  4. small variants of a valid mapping: schema and loader agree on each.
// usage: schemas.js SOURCE_DIR HVGATE
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const Ajv2020 = require('ajv/dist/2020');

if (process.argv.length !== 4) {
  console.error('usage: schemas.js SOURCE_DIR HVGATE');
  process.exit(2);
}
const src = path.resolve(process.argv[2]);
const hvgate = path.resolve(process.argv[3]);
const catalogDir = path.join(src, 'conf/catalog');
const readJson = (f) => JSON.parse(fs.readFileSync(f, 'utf8'));
const readText = (f) => fs.readFileSync(path.join(src, f), 'utf8');

let failures = 0;
let checks = 0;
function check(ok, what, detail) {
  checks++;
  if (!ok) {
    failures++;
    console.log(`FAIL ${what}${detail ? '\n     ' + detail.replace(/\n/g, '\n     ') : ''}`);
  }
  return ok;
}
const sameSet = (a, b) => a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');
const fmtErrors = (errs) => (errs || []).map((e) => `${e.instancePath || '/'} ${e.message}` +
  (e.params && e.params.additionalProperty ? ` '${e.params.additionalProperty}'` : '')).join('\n');

function compile(name) {
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false });
  return ajv.compile(readJson(path.join(src, 'conf/schema', name)));
}
const validateMapping = compile('mapping.schema.json');
const mappingSchema = readJson(path.join(src, 'conf/schema/mapping.schema.json'));

function checkMapping(file) {
  const r = spawnSync(hvgate, ['check-mapping', '-m', file, '--catalog-dir', catalogDir], { encoding: 'utf8' });
  return { rc: r.status, signal: r.signal, err: r.stderr || '', out: r.stdout || '' };
}

// ---- 1. the schema agrees with the loader's source ----------------------
{
  const hdr = readText('mappings/hv_canonical.h');
  const canon = readText('mappings/hv_canonical.c');
  const loader = readText('mappings/hv_mapping.c');
  const defs = mappingSchema.$defs;
  // record types: enum order in the header, names in hv_canonical.c
  const recEnum = [...hdr.match(/typedef enum hv_rectype \{([^}]*)\}/)[1].matchAll(/HV_REC_(\w+)/g)]
    .map((m) => m[1]).filter((n) => n !== '_COUNT');
  const recNames = [...canon.match(/hv__rectype_names\[[^\]]*\] = \{([^}]*)\}/)[1].matchAll(/"([^"]*)"/g)].map((m) => m[1]);
  const recOf = Object.fromEntries(recEnum.map((e, i) => [e, recNames[i]]));
  check(recEnum.length === recNames.length && sameSet(defs.source.properties.record_type.enum, recNames),
    'record_type enum = hv__rectype_names', `${defs.source.properties.record_type.enum} vs ${recNames}`);
  const bit = {};
  for (const m of hdr.matchAll(/#define (HV_\w) \(1u << HV_REC_(\w+)\)/g)) bit[m[1]] = recOf[m[2]];
  bit.HV_ALL = recNames;
  // canonical fields: HV_FIELD_MAP
  const fields = [];
  for (const m of hdr.matchAll(/XX\((\w+), "([^"]+)", (HV_T_\w+),([^)]*)\)/g)) {
    const recs = new Set();
    for (const f of m[4].replace(/\\/g, ' ').split('|').map((s) => s.trim()))
      if (f !== 'HV_PHI') [].concat(bit[f]).forEach((r) => recs.add(r));
    fields.push({ id: m[1], name: m[2], type: m[3], recs: [...recs] });
  }
  const byId = Object.fromEntries(fields.map((f) => [f.id, f]));
  const fprops = defs.source.properties.fields.properties;
  check(fields.length > 30 && sameSet(Object.keys(fprops), fields.map((f) => f.name)),
    'fields.properties = HV_FIELD_MAP names', `${Object.keys(fprops)}\nvs ${fields.map((f) => f.name)}`);
  for (const f of fields) {
    const p = fprops[f.name];
    if (!p) continue;
    const want = f.type === 'HV_T_DATE' ? '#/$defs/dateField' : '#/$defs/field';
    check(p.$ref === want, `fields.${f.name}: ${f.type} takes ${want}`, `has ${p.$ref}`);
  }
  // fields per record type and the required ones (hv__required)
  const required = {};
  for (const m of loader.matchAll(/\[HV_REC_(\w+)\] = \{([^}]*)\}/g))
    required[recOf[m[1]]] = [...m[2].matchAll(/HV_F_(\w+)/g)].map((x) => x[1])
      .filter((x) => x !== '_COUNT').map((x) => byId[x].name);
  for (const rt of recNames) {
    const rule = defs.source.allOf.find((r) => r.if && r.if.properties && r.if.properties.record_type &&
      r.if.properties.record_type.const === rt);
    if (!check(rule, `source.allOf has a rule for record_type ${rt}`)) continue;
    const fs2 = rule.then.properties.fields;
    check(sameSet(fs2.propertyNames.enum, fields.filter((f) => f.recs.includes(rt)).map((f) => f.name)),
      `fields allowed in ${rt} sources = HV_FIELD_MAP flags`);
    check(required[rt] && sameSet(fs2.required, required[rt]), `fields required in ${rt} sources = hv__required`,
      `${fs2.required} vs ${required[rt]}`);
  }
  // canonical codes are listed in the field descriptions
  const codeLists = {};
  for (const m of canon.matchAll(/static const char \*const (hv__\w+_codes)\[\] = \{([^}]*)\}/g))
    codeLists[m[1]] = [...m[2].matchAll(/"([^"]*)"/g)].map((x) => x[1]);
  let pending = [];
  for (const m of canon.match(/hv_field_codes\(hv_field f\) \{([\s\S]*?)\n\}/)[1].matchAll(/case HV_F_(\w+):|return (hv__\w+_codes);/g)) {
    if (m[1]) { pending.push(m[1]); continue; }
    for (const id of pending) {
      const d = fprops[byId[id].name].description;
      check(codeLists[m[2]].every((c) => d.includes(c)), `fields.${byId[id].name} description lists ${codeLists[m[2]]}`, d);
    }
    pending = [];
  }
  // key lists of the loader (hv__ml_only) = the schema's properties
  const lists = [...loader.matchAll(/static const char \*const \w+\[\] = \{([^}]*)\}/g)]
    .map((m) => [...m[1].matchAll(/"([^"]*)"/g)].map((x) => x[1]));
  const list = (k) => lists.find((l) => l.includes(k)) || [];
  const props = (o) => Object.keys(o.properties).filter((k) => k !== 'description' && k !== '$schema');
  check(sameSet(props(mappingSchema), list('sources')), 'top-level keys = loader', `${list('sources')}`);
  check(sameSet(props(defs.program), list('identifier_base')), 'program keys = loader');
  check(sameSet(props(defs.catalogs), list('instruments')), 'catalogs keys = loader');
  check(sameSet(props(defs.source), list('record_type')), 'source keys = loader', `${list('record_type')}`);
  check(sameSet(props(defs.dateFieldSpec), list('from')), 'field spec keys (date fields) = loader');
  check(sameSet(props(defs.fieldSpec), list('from').filter((k) => k !== 'date_format')), 'field spec keys = loader');
  check(sameSet(defs.source.properties.format.anyOf[0].enum, list('csv')), 'format enum = loader');
  const enc = [...loader.match(/static int hv__encoding\([\s\S]*?\n\}/)[0].matchAll(/strcasecmp\(s, "([^"]+)"\)/g)].map((m) => m[1]);
  check(sameSet(defs.source.properties.encoding.anyOf[0].enum, enc), 'encoding enum = loader', `${enc}`);
  for (const m of loader.matchAll(/hv__ml_str\(&?l, \w+, "(\w+)", [^,]+, 1\)/g))
    check(defs.source.required.includes(m[1]) || defs.program.required.includes(m[1]), `'${m[1]}' is required in the schema`);
}

// ---- 2. the shipped configuration validates -----------------------------
const mappingsDir = path.join(src, 'conf/mappings');
const shipped = fs.readdirSync(mappingsDir).filter((f) => f.endsWith('.json'));
check(shipped.length > 0, 'conf/mappings has mapping files');
for (const f of shipped) {
  const file = path.join(mappingsDir, f);
  const ok = validateMapping(readJson(file));
  check(ok, `schema accepts conf/mappings/${f}`, fmtErrors(validateMapping.errors));
  const r = checkMapping(file);
  check(r.rc === 0, `check-mapping accepts conf/mappings/${f}`, `exit ${r.rc}\n${r.err}`);
}
for (const cat of ['instruments', 'services']) {
  const v = compile(`${cat}.schema.json`);
  check(v(readJson(path.join(catalogDir, `${cat}.json`))), `schema accepts conf/catalog/${cat}.json`, fmtErrors(v.errors));
}

// ---- 3. broken mappings: both reject, for the same reason ---------------
const fixDir = path.join(__dirname, 'fixtures');
const bad = fs.readdirSync(fixDir).filter((f) => /^mapping-bad-.*\.json$/.test(f)).sort();
check(bad.length >= 10, 'fixtures/mapping-bad-*.json present', `${bad.length} found`);
for (const f of bad) {
  const file = path.join(fixDir, f);
  const doc = readJson(file);
  const want = doc.$expect;
  if (!check(want && want.pointer !== undefined && want.loader && want.schema !== undefined, `${f} has $expect {pointer, loader, schema}`))
    continue;
  const ok = validateMapping(doc);
  const errs = validateMapping.errors || [];
  check(!ok, `schema rejects ${f}`);
  if (!ok)
    check(errs.some((e) => e.instancePath === want.schema), `schema rejects ${f} at ${want.schema || '/'}`, fmtErrors(errs));
  const r = checkMapping(file);
  check(r.rc === 78, `check-mapping rejects ${f} (exit 78)`, `exit ${r.rc} ${r.signal || ''}\n${r.out}${r.err}`);
  const lines = r.err.split('\n').filter(Boolean);
  check(lines.length === 1 && lines[0].includes(`: ${want.pointer}: `) && lines[0].includes(want.loader),
    `check-mapping reports ${f} as ${want.pointer}: ${want.loader}`, r.err);
}

// ---- 4. variants of a valid mapping: schema and loader agree ------------
const base = () => ({
  $schema: 'mapping.schema.json',
  program: { id: 'variant-hv', identifier_base: 'https://variant-hv.example.org/fhir/id/' },
  sources: [{
    name: 'screenings', record_type: 'screening', files: ['screenings*.csv'], format: 'csv',
    fields: { record_id: 'id', 'screening.instrument': 'tool', 'screening.date': 'date', 'child.id': 'child' },
  }],
});
const S = (m) => m.sources[0];
const F = (m) => m.sources[0].fields;
const wellChild = { record_id: 'id', 'child.id': 'c', 'well_child.visit_date': 'v', 'screening.instrument': 'i', 'screening.date': 'd' };
const consent = { record_id: 'id', 'caregiver.id': 'cg', 'consent.organization_id': 'o', 'consent.granted_date': { from: 'g', date_format: 'M/D/YYYY' }, 'consent.scope': { value: 'screening,referral' } };
const variants = [
  // [accepted?, what, change]
  [true, 'the base mapping', () => {}],
  [true, "'$comment' and description at every level", (m) => {
    m.$comment = 'c'; m.description = 'd'; m.program.$comment = 'c'; m.program.description = 'd';
    m.catalogs = { $comment: 'c', description: 'd' }; S(m).$comment = 'c'; S(m).description = 'd';
    F(m)['child.id'] = { from: 'child', description: 'd', $comment: 'c' };
  }],
  [true, 'program name, catalogs', (m) => { m.program.name = 'Variant'; m.catalogs = { instruments: path.join(catalogDir, 'instruments.json'), services: path.join(catalogDir, 'services.json') }; }],
  [true, 'urn identifier_base', (m) => { m.program.identifier_base = 'urn:oid:2.16.840.1.113883.3.999'; }],
  [true, '64-character program id', (m) => { m.program.id = 'a'.repeat(63) + '.'; }],
  [false, '65-character program id', (m) => { m.program.id = 'a'.repeat(65); }],
  [false, 'identifier_base with a space', (m) => { m.program.identifier_base = 'https://x.example.org/a b/'; }],
  [false, 'unknown top-level key', (m) => { m.program_id = 'x'; }],
  [false, 'unknown program key', (m) => { m.program.ident = 'x'; }],
  [false, 'unknown catalogs key', (m) => { m.catalogs = { instrument: 'x.json' }; }],
  [false, 'empty catalogs path', (m) => { m.catalogs = { services: '' }; }],
  [false, 'no program', (m) => { delete m.program; }],
  [false, 'no program id', (m) => { delete m.program.id; }],
  [false, 'no sources', (m) => { delete m.sources; }],
  [false, 'a source that is not an object', (m) => { m.sources.push('referrals'); }],
  [false, 'source without name', (m) => { delete S(m).name; }],
  [false, 'source without fields', (m) => { delete S(m).fields; }],
  [false, 'record_type in capitals', (m) => { S(m).record_type = 'Screening'; }],
  [true, 'files: none, several', (m) => { S(m).files = []; m.sources.push({ ...S(base()), name: 'more', files: ['a*.csv', 'b.csv'] }); }],
  [false, 'files: an empty pattern', (m) => { S(m).files = ['']; }],
  [false, 'files: a string', (m) => { S(m).files = 'screenings.csv'; }],
  [true, 'format NDJSON (any case)', (m) => { S(m).format = 'NDJSON'; }],
  [true, 'format json with records', (m) => { S(m).format = 'json'; S(m).records = 'screenings'; }],
  [true, 'format Xml with records', (m) => { S(m).format = 'Xml'; S(m).records = 'export/screening'; }],
  [false, 'format tsv', (m) => { S(m).format = 'tsv'; }],
  [false, 'empty records', (m) => { S(m).records = ''; }],
  [true, 'delimiter tab', (m) => { S(m).delimiter = 'tab'; }],
  [true, 'delimiter \\t', (m) => { S(m).delimiter = '\\t'; }],
  [true, 'delimiter TAB character', (m) => { S(m).delimiter = '\t'; }],
  [true, "delimiter ';', quote ','", (m) => { S(m).delimiter = ';'; S(m).quote = ','; }],
  [true, "quote '", (m) => { S(m).quote = "'"; }],
  [false, 'delimiter "', (m) => { S(m).delimiter = '"'; }],
  [false, 'delimiter newline', (m) => { S(m).delimiter = '\n'; }],
  [false, 'delimiter § (two bytes)', (m) => { S(m).delimiter = '§'; }],
  [false, 'delimiter empty', (m) => { S(m).delimiter = ''; }],
  [false, 'quote = tab delimiter', (m) => { S(m).delimiter = 'tab'; S(m).quote = '\t'; }],
  [false, "quote = delimiter ';'", (m) => { S(m).delimiter = ';'; S(m).quote = ';'; }],
  [false, 'quote of two characters', (m) => { S(m).quote = "''"; }],
  [true, 'encodings in any case', (m) => {
    ['UTF-8', 'utf8', 'Latin1', 'ISO-8859-1', 'CP1252', 'windows-1252'].forEach((e, i) =>
      m.sources.push({ ...S(base()), name: `s${i}`, encoding: e }));
  }],
  [false, 'encoding ascii', (m) => { S(m).encoding = 'ascii'; }],
  [true, 'header false', (m) => { S(m).header = false; F(m).record_id = '#1'; }],
  [false, 'header "true"', (m) => { S(m).header = 'true'; }],
  [true, 'max_record_bytes 1024, 2048.5, 67108864', (m) => {
    S(m).max_record_bytes = 1024;
    m.sources.push({ ...S(base()), name: 'b', max_record_bytes: 2048.5 }, { ...S(base()), name: 'c', max_record_bytes: 67108864 });
  }],
  [false, 'max_record_bytes 67108865', (m) => { S(m).max_record_bytes = 67108865; }],
  [false, 'max_record_bytes "2048"', (m) => { S(m).max_record_bytes = '2048'; }],
  [true, 'date patterns', (m) => {
    ['M/D/YYYY', 'YYYYMMDD', 'DD.MM.YYYY', 'YYYY年MM月DD日', 'D MM YYYY'].forEach((d, i) =>
      m.sources.push({ ...S(base()), name: `d${i}`, date_format: d }));
  }],
  [false, 'date pattern with two years', (m) => { S(m).date_format = 'YYYY-MM-DD-YYYY'; }],
  [false, 'date pattern MMM', (m) => { S(m).date_format = 'DD-MMM-YYYY'; }],
  [false, 'date pattern with a time', (m) => { S(m).date_format = 'YYYY-MM-DDTHH'; }],
  [false, 'date pattern with a digit', (m) => { S(m).date_format = 'MM/DD/YYYY0'; }],
  [false, 'date pattern without day', (m) => { S(m).date_format = 'MM/YYYY'; }],
  [true, 'field specs: value, default, map, required, date_format', (m) => {
    Object.assign(F(m), {
      'child.sex': { from: 'sex', map: { F: 'female', M: 'male', '': 'unknown' }, default: 'unknown' },
      'caregiver.relationship': { value: 'mother' },
      'screening.subject': { default: 'child', required: true },
      'screening.date': { from: 'date', date_format: 'MM/DD/YYYY', required: false },
      'screening.result': { from: 'result', map: {} },
    });
  }],
  [false, 'empty source key', (m) => { F(m)['child.id'] = ''; }],
  [false, 'field spec that is a number', (m) => { F(m)['child.id'] = 3; }],
  [false, 'empty value', (m) => { F(m)['child.id'] = { value: '' }; }],
  [false, 'unknown field spec key', (m) => { F(m)['child.id'] = { form: 'child' }; }],
  [false, 'required "yes"', (m) => { F(m)['child.id'] = { from: 'child', required: 'yes' }; }],
  [false, 'map that is a string', (m) => { F(m)['child.id'] = { from: 'child', map: 'x' }; }],
  [false, 'bad field date_format', (m) => { F(m)['screening.date'] = { from: 'date', date_format: 'DD/MM/YY' }; }],
  [false, "'$comment' among the fields", (m) => { F(m).$comment = 'x'; }],
  [true, 'well_child source', (m) => { m.sources = [{ name: 'wc', record_type: 'well_child', fields: wellChild }]; }],
  [false, 'well_child source without visit date', (m) => {
    const f = { ...wellChild }; delete f['well_child.visit_date'];
    m.sources = [{ name: 'wc', record_type: 'well_child', fields: f }];
  }],
  [true, 'consent source', (m) => { m.sources = [{ name: 'c', record_type: 'consent', fields: consent }]; }],
  [false, 'consent source with a child field', (m) => {
    m.sources = [{ name: 'c', record_type: 'consent', fields: { ...consent, 'child.id': 'c' } }];
  }],
  [false, 'consent source without granted date', (m) => {
    const f = { ...consent }; delete f['consent.granted_date'];
    m.sources = [{ name: 'c', record_type: 'consent', fields: f }];
  }],
];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hvgate-schemas-'));
try {
  variants.forEach(([accept, what, change], i) => {
    const m = base();
    change(m);
    const file = path.join(tmp, `variant-${i}.json`);
    fs.writeFileSync(file, JSON.stringify(m, null, 2));
    const sOk = validateMapping(m);
    const r = checkMapping(file);
    const lOk = r.rc === 0;
    const v = accept ? 'accept' : 'reject';
    check(sOk === accept, `schema should ${v}: ${what}`, sOk ? '' : fmtErrors(validateMapping.errors));
    check(lOk === accept && (lOk || r.rc === 78), `check-mapping should ${v}: ${what}`, `exit ${r.rc} ${r.signal || ''}\n${r.err}`);
  });
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}

console.log(`schemas: ${checks} checks, ${failures} failed`);
process.exit(failures ? 1 : 0);
