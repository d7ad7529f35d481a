#!/usr/bin/env node
// JSON Schemas of the configuration files, checked with a real validator
// (Ajv 8, draft 2020-12) and against the C loader they describe:
//  1. conf/schema/mapping.schema.json agrees with the loader's source: the
//     canonical fields (HV_FIELD_MAP; the export-only ones, HV_OUT, only
//     under export_fields), record types, required fields, and the key
//     lists, formats and encodings of mappings/hv_mapping.c;
//  2. conf/mappings/*.json validate and `hvgate check-mapping` accepts them;
//     conf/catalog/{instruments,services}.json validate;
//  3. every fixtures/mapping-bad-*.json is rejected by the schema (with an
//     error at $expect.schema) and by `hvgate check-mapping` (exit 78, one
//     error: $expect.pointer: $expect.loader);
//  4. small variants of a valid mapping: schema and loader agree on each;
//  5. conf/schema/hvgate.schema.json agrees with gateway/hvg_config.c, the
//     shipped gateway configurations validate, and schema and
//     `hvgate check-config` agree on variants of conf/hvgate.json (apart
//     from the listed loader-only checks and known loader gaps).
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
    const flags = m[4].replace(/\\/g, ' ').split('|').map((s) => s.trim());
    for (const f of flags)
      if (f !== 'HV_PHI' && f !== 'HV_OUT') [].concat(bit[f]).forEach((r) => recs.add(r));
    fields.push({ id: m[1], name: m[2], type: m[3], recs: [...recs], out: flags.includes('HV_OUT') });
  }
  check(fields.every((f) => f.recs.length > 0 && f.recs.every((r) => recNames.includes(r))),
    'every HV_FIELD_MAP flag is a record type, HV_PHI or HV_OUT');
  const byId = Object.fromEntries(fields.map((f) => [f.id, f]));
  const inputFields = fields.filter((f) => !f.out);
  const fprops = defs.source.properties.fields.properties;
  const eprops = (defs.source.properties.export_fields || {}).properties || {};
  check(fields.length > 30 && sameSet(Object.keys(fprops), inputFields.map((f) => f.name)),
    'fields.properties = HV_FIELD_MAP names without HV_OUT', `${Object.keys(fprops)}\nvs ${inputFields.map((f) => f.name)}`);
  check(fields.some((f) => f.out) && sameSet(Object.keys(eprops), fields.map((f) => f.name)),
    'export_fields.properties = all HV_FIELD_MAP names', `${Object.keys(eprops)}\nvs ${fields.map((f) => f.name)}`);
  for (const f of fields) {
    const p = fprops[f.name];
    const want = f.type === 'HV_T_DATE' ? '#/$defs/dateField' : '#/$defs/field';
    if (p) check(p.$ref === want, `fields.${f.name}: ${f.type} takes ${want}`, `has ${p.$ref}`);
    const e = eprops[f.name];
    const ewant = f.type === 'HV_T_DATE' ? '#/$defs/exportDateField' : '#/$defs/exportField';
    if (e) check(e.$ref === ewant, `export_fields.${f.name}: ${f.type} takes ${ewant}`, `has ${e.$ref}`);
    if (e && f.out) check(/Export only/.test(e.description), `export_fields.${f.name} says it is export only`, e.description);
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
    check(sameSet(fs2.propertyNames.enum, inputFields.filter((f) => f.recs.includes(rt)).map((f) => f.name)),
      `fields allowed in ${rt} sources = HV_FIELD_MAP flags (without HV_OUT)`);
    const ef = rule.then.properties.export_fields;
    check(ef && ef.propertyNames && sameSet(ef.propertyNames.enum, fields.filter((f) => f.recs.includes(rt)).map((f) => f.name)),
      `export_fields allowed in ${rt} sources = HV_FIELD_MAP flags`);
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
      for (const [where, props] of [['fields', fprops], ['export_fields', eprops]]) {
        if (!props[byId[id].name]) continue;
        const d = props[byId[id].name].description;
        check(codeLists[m[2]].every((c) => d.includes(c)), `${where}.${byId[id].name} description lists ${codeLists[m[2]]}`, d);
      }
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
  const named = (n) => [...(loader.match(new RegExp(`static const char \\*const ${n}\\[\\] = \\{([^}]*)\\}`)) || ['', ''])[1]
    .matchAll(/"([^"]*)"/g)].map((x) => x[1]);
  check(named('export_keys').length > 0 && sameSet(props(defs.exportDateFieldSpec || { properties: {} }), named('export_keys')),
    'export field spec keys (date fields) = loader', `${named('export_keys')}`);
  check(sameSet(props(defs.exportFieldSpec || { properties: {} }), named('export_keys').filter((k) => k !== 'date_format')), 'export field spec keys = loader');
  check(sameSet([...named('export_keys'), ...named('input_only_keys')], list('from')),
    'export field spec keys + the refused input-only keys = field spec keys');
  check(sameSet((defs.exportFieldSpec || {}).required || [], ['from']) && sameSet((defs.exportDateFieldSpec || {}).required || [], ['from']),
    "export field specs require 'from'");
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
  // export_fields: the reverse direction
  [true, 'export_fields: columns, specs with map and date_format', (m) => {
    S(m).export_fields = {
      'screening.covers_until': { from: 'covers_until', date_format: 'MM/DD/YYYY', description: 'd', $comment: 'c' },
      'screening.rescreen_needed': { from: 'rescreen', map: { Y: 'yes', N: 'no' } },
      'screening.date': { from: 'date_us', date_format: 'M/D/YYYY' },
      'child.sex': 'sex',
    };
  }],
  [true, 'empty export_fields', (m) => { S(m).export_fields = {}; }],
  [true, 'export_fields of a referral source', (m) => {
    m.sources = [{ name: 'r', record_type: 'referral',
      fields: { record_id: 'id', 'referral.date': 'd', 'referral.service_type': 's', 'referral.to_org_id': 'o' },
      export_fields: { 'referral.direction': 'dir', 'referral.task_status': { from: 'ts', map: { Done: 'completed' } },
        'referral.sent_date': 'sent', 'referral.closed_date': { from: 'closed', date_format: 'DD.MM.YYYY' },
        'referral.outcome': 'outcome', 'referral.status_reason': 'why', 'referral.business_status': 'bs' } }];
  }],
  [true, 'export_fields of a well_child source', (m) => {
    m.sources = [{ name: 'wc', record_type: 'well_child', fields: wellChild,
      export_fields: { 'screening.covers_until': 'until', 'screening.rescreen_needed': 'due' } }];
  }],
  [true, 'export_fields with #N columns without a header', (m) => {
    S(m).header = false; m.sources[0].fields = { record_id: '#1', 'screening.instrument': '#2', 'screening.date': '#3', 'child.id': '#4' };
    S(m).export_fields = { 'screening.covers_until': '#6' };
  }],
  [false, 'export-only field under fields', (m) => { F(m)['screening.covers_until'] = 'until'; }],
  [false, 'export-only referral field under fields', (m) => {
    m.sources = [{ name: 'r', record_type: 'referral',
      fields: { record_id: 'id', 'referral.date': 'd', 'referral.service_type': 's', 'referral.to_org_id': 'o', 'referral.sent_date': 'sent' } }];
  }],
  [false, 'export_fields that is an array', (m) => { S(m).export_fields = ['until']; }],
  [false, 'export_fields: unknown field', (m) => { S(m).export_fields = { 'screening.until': 'u' }; }],
  [false, 'export_fields: field of another record type', (m) => { S(m).export_fields = { 'referral.sent_date': 's' }; }],
  [false, "export_fields: 'value'", (m) => { S(m).export_fields = { 'screening.rescreen_needed': { from: 'r', value: 'no' } }; }],
  [false, "export_fields: 'default'", (m) => { S(m).export_fields = { 'screening.rescreen_needed': { from: 'r', default: 'no' } }; }],
  [false, "export_fields: 'required'", (m) => { S(m).export_fields = { 'screening.covers_until': { from: 'u', required: true } }; }],
  [false, "export_fields: spec without 'from'", (m) => { S(m).export_fields = { 'screening.rescreen_needed': { map: { Y: 'yes' } } }; }],
  [false, 'export_fields: empty column', (m) => { S(m).export_fields = { 'screening.covers_until': '' }; }],
  [false, 'export_fields: a number', (m) => { S(m).export_fields = { 'screening.covers_until': 6 }; }],
  [false, 'export_fields: unknown spec key', (m) => { S(m).export_fields = { 'screening.covers_until': { from: 'u', form: 'x' } }; }],
  [false, 'export_fields: date_format on a code field', (m) => {
    S(m).export_fields = { 'screening.rescreen_needed': { from: 'r', date_format: 'MM/DD/YYYY' } };
  }],
  [false, 'export_fields: bad date_format', (m) => { S(m).export_fields = { 'screening.covers_until': { from: 'u', date_format: 'DD/MM/YY' } }; }],
  [false, 'export_fields: map that is a string', (m) => { S(m).export_fields = { 'screening.rescreen_needed': { from: 'r', map: 'x' } }; }],
  [false, "'$comment' among the export_fields", (m) => { S(m).export_fields = { $comment: 'x' }; }],
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

// ---- 5. the gateway configuration: conf/schema/hvgate.schema.json --------
// a. the schema agrees with the loader's source (gateway/hvg_config.c): key
//    lists, inline-secret keys, key types, required keys, number ranges,
//    defaults and enums;
// b. conf/hvgate.json and conf/examples/*.json validate; check-config accepts
//    conf/hvgate.json, and reports nothing but unreadable files (absent on
//    this machine) for the examples;
// c. variants of conf/hvgate.json: the schema's verdict equals
//    `hvgate check-config -c FILE` (exit 0 vs 78), except the loader-only
//    checks listed (schema accepts, loader rejects with the message given)
//    and the known loader gaps (schema rejects, loader accepts).
const confDir = path.join(src, 'conf');
const validateConfig = compile('hvgate.schema.json');
const configSchema = readJson(path.join(confDir, 'schema/hvgate.schema.json'));
function checkConfig(file) {
  const r = spawnSync(hvgate, ['check-config', '-c', file], { encoding: 'utf8' });
  return { rc: r.status, signal: r.signal, err: r.stderr || '', out: r.stdout || '' };
}
const errorLines = (err) => err.split('\n').filter((l) => l && !/: warning: /.test(l));
{
  const loader = readText('gateway/hvg_config.c');
  const defs = configSchema.$defs;
  const deref = (ref) => defs[ref.replace(/^#\/\$defs\//, '')];
  const resolve = (s) => (s && s.$ref ? { ...resolve(deref(s.$ref)), ...s } : s);
  const objs = {
    root: configSchema, store: defs.store, program: defs.program, partner: defs.partner, receives: defs.receives,
    auth: defs.auth, tls: defs.tls, timeouts: defs.timeouts, status_return: defs.status_return,
    server_tls: defs.server_tls, ops: defs.ops, inbound: defs.inbound, webhook: defs.webhook,
  };
  const props = (o) => Object.keys(o.properties).filter((k) => k !== 'description' && k !== '$schema');
  // every property has a description (editors show it); "$..." and unknown
  // keys: description/$schema are strings, other "$..." keys anything
  for (const [name, o] of Object.entries(objs)) {
    for (const [k, p] of Object.entries(o.properties))
      check(typeof resolve(p).description === 'string' && resolve(p).description.length > 10, `${name}.${k} has a description`);
    check(o.additionalProperties === false && o.patternProperties && o.patternProperties['^\\$'] &&
      o.properties.description.type === 'string' && o.properties.$schema.type === 'string',
    `${name}: unknown keys rejected, description/$schema strings, other '$' keys allowed (hvg_jconf_only)`);
  }
  // inline secrets: rejected where the loader looks for them, saying what to use instead
  const secretKeys = [...loader.match(/#define HVG__SECRET_KEYS((?:[^\n]*\\\n)*[^\n]*)/)[1].matchAll(/"([^"]*)"/g)].map((m) => m[1]);
  const instead = {};
  for (const m of loader.match(/hvg__inline_secrets\[\] = \{([\s\S]*?)\n\};/)[1].matchAll(/\{"(\w+)",((?:\s*"(?:[^"\\]|\\.)*")+)\}/g))
    instead[m[1]] = [...m[2].matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((x) => x[1]).join('');
  check(secretKeys.length >= 6 && sameSet(secretKeys, Object.keys(instead)), 'HVG__SECRET_KEYS = hvg__inline_secrets', `${secretKeys}`);
  for (const k of secretKeys) {
    const d = defs[`secret_${k}`];
    check(d && d.not && Object.keys(d.not).length === 0 && d.description.includes('never') && d.description.includes(instead[k]),
      `secret key '${k}' is rejected, its description says to use ${instead[k]}`, d && d.description);
  }
  // the key lists of the loader (hvg_jconf_only) = the schema's properties
  const lists = [...loader.matchAll(/static const char \*const \w+\[\] = \{([^}]*)\}/g)].map((m) => ({
    keys: [...m[1].matchAll(/"([^"]*)"/g)].map((x) => x[1]), secrets: m[1].includes('HVG__SECRET_KEYS'),
  }));
  const marker = { root: ['listen'], store: ['sqlite'], program: ['id', 'mapping'], partner: ['id', 'base_url'],
    receives: ['record_types'], auth: ['type', 'client_id'], tls: ['verify'], timeouts: ['connect_ms'], status_return: ['mode'],
    server_tls: ['cert_file', 'client_ca_file'], ops: ['token_sha256'], inbound: ['client_cert_sha256'], webhook: ['url', 'token_env'] };
  for (const [name, ks] of Object.entries(marker)) {
    let found = lists.filter((l) => ks.every((k) => l.keys.includes(k)));
    if (found.length > 1) found = found.filter((l) => l.keys.length === ks.length); /* a subset of another list */
    if (!check(found.length === 1, `hvg_config.c has one key list for ${name}`, `${found.length} found`)) continue;
    const want = found[0].keys.concat(found[0].secrets ? secretKeys : []);
    check(sameSet(props(objs[name]), want), `${name} keys = loader`, `schema: ${props(objs[name])}\nloader: ${want}`);
  }
  // every key read: type, required, range and default
  const vars = { root: 'root', st: 'store', it: 'program', js: 'partner', rc: 'receives', a: 'auth', tls: 'tls', to: 'timeouts', sr: 'status_return',
    srv: 'server_tls', ops: 'ops', inb: 'inbound', wh: 'webhook' };
  const calls = [...loader.matchAll(/(hvg_jconf_(?:str|strv|int|bool)|hvg__file)\(&?l, (\w+), "(\w+)",([^;]*?)\)/g)];
  check(calls.length >= 30, 'hvg_config.c: key reads found', `${calls.length}`);
  for (const [, fn, v, key, args] of calls) {
    const name = vars[v];
    if (!check(name, `hvg_config.c reads '${key}' from '${v}', an object this test knows`)) continue;
    const p = resolve(objs[name].properties[key]);
    if (!check(p, `${name}.${key} (read by the loader) is in the schema`)) continue;
    const nums = (args.match(/-?\d+/g) || []).map(Number);
    const last = nums[nums.length - 1];
    const req = (objs[name].required || []).includes(key);
    if (fn === 'hvg_jconf_str' || fn === 'hvg__file') {
      check(p.type === 'string' && (p.minLength >= 1 || (p.enum && p.enum.every((e) => e !== ''))), `${name}.${key} is a non-empty string`);
      check(req === (fn === 'hvg_jconf_str' && last === 1), `${name}.${key} is ${req ? '' : 'not '}required, as in the loader`);
    } else if (fn === 'hvg_jconf_strv') {
      /* the loader's "'key' must ..." message makes a list required; a
       * program's organization_ids share the partner's key name only */
      const mustList = loader.includes(`'${key}' must`) && !(name === 'program' && key === 'organization_ids');
      check(p.type === 'array' && p.items && p.items.type === 'string' && (p.items.minLength >= 1 || p.items.enum || p.items.pattern),
        `${name}.${key} is an array of non-empty strings`);
      check(req === mustList && (!mustList || p.minItems === 1), `${name}.${key}: required and non-empty iff the loader says it must be`);
    } else if (fn === 'hvg_jconf_int') {
      check(p.type === 'integer' && p.minimum === nums[0] && p.maximum === nums[1] && p.default === nums[2] && !req,
        `${name}.${key} is an integer ${nums[0]}..${nums[1]}, default ${nums[2]}`, JSON.stringify(p));
    } else {
      check(p.type === 'boolean' && p.default === (last === 1) && !req, `${name}.${key} is a boolean, default ${last === 1}`);
    }
  }
  // enums and defaults
  const strs = (re) => [...new Set([...loader.matchAll(re)].map((m) => m[1]))];
  const smart = defs.auth.allOf.find((r) => r.if.properties.type.const === 'smart-backend');
  const bearer = defs.auth.allOf.find((r) => r.if.properties.type.const === 'bearer');
  check(sameSet(defs.auth.properties.type.enum, strs(/strcmp\(type, "([^"]+)"\)/g)), 'auth type enum = loader');
  check(smart && sameSet(smart.then.properties.algorithm.enum, strs(/strcmp\(pt->algorithm, "([^"]+)"\)/g)), 'smart-backend algorithm enum = loader');
  check(smart && sameSet(smart.then.required, strs(/if \(!pt->(client_id)\)/g)) &&
    sameSet(smart.then.oneOf.map((o) => o.required[0]), ['private_key_file', 'private_key_env']) &&
    /!pt->private_key_file == !pt->private_key_env/.test(loader), 'smart-backend: client_id, exactly one of private_key_file/_env');
  check(bearer && sameSet(bearer.then.oneOf.map((o) => o.required[0]), ['token_file', 'token_env']) &&
    /!pt->token_file == !pt->token_env/.test(loader), 'bearer: exactly one of token_file/token_env');
  check(defs.auth.properties.algorithm.default === loader.match(/pt->algorithm = "([^"]+)"/)[1], 'algorithm default = loader');
  check(defs.auth.properties.scope.default === loader.match(/pt->scope = "([^"]+)"/)[1], 'scope default = loader');
  check(sameSet(defs.partner.properties.consent.enum, strs(/strcmp\(consent, "([^"]+)"\)/g)), 'consent enum = loader');
  check(sameSet(defs.status_return.properties.mode.enum, strs(/strcmp\(mode, "([^"]+)"\)/g)), 'status_return mode enum = loader');
  check(configSchema.properties.listen.default === loader.match(/c->listen = "([^"]+)"/)[1], 'listen default = loader');
  check(sameSet(Object.keys(defs.tls.dependentRequired), ['client_cert_file', 'client_key_file']) &&
    /!pt->client_cert_file != !pt->client_key_file/.test(loader), 'mutual TLS needs both files');
  const hdr = readText('mappings/hv_canonical.h');
  const recEnum = [...hdr.match(/typedef enum hv_rectype \{([^}]*)\}/)[1].matchAll(/HV_REC_(\w+)/g)].map((m) => m[1]);
  const recNames = [...readText('mappings/hv_canonical.c').match(/hv__rectype_names\[[^\]]*\] = \{([^}]*)\}/)[1].matchAll(/"([^"]*)"/g)].map((m) => m[1]);
  const excluded = [...loader.matchAll(/t == HV_REC_(\w+)/g)].map((m) => recNames[recEnum.indexOf(m[1])]);
  check(sameSet(defs.receives.properties.record_types.items.enum, recNames.filter((n) => !excluded.includes(n))),
    'record_types enum = hv__rectype_names less those the loader refuses', `refused: ${excluded}`);
  const instSchema = readJson(path.join(confDir, 'schema/instruments.schema.json'));
  const svcSchema = readJson(path.join(confDir, 'schema/services.schema.json'));
  check(sameSet(defs.receives.properties.sensitivity.items.enum, instSchema.$defs.instrument.properties.sensitivity.enum.filter((x) => x !== null)),
    'sensitivity enum = the catalogue\'s sensitivity categories');
  // hv_catalog_service() ignores case
  check(defs.receives.properties.services.items.pattern === svcSchema.$defs.service.properties.id.pattern.replace(/a-z/g, 'A-Za-z') &&
    /(strcasecmp|hv__caseeq)\(c->services\[i\]\.id, id\)/.test(readText('mappings/hv_catalog.c')), 'service ids: the catalogue\'s id pattern, any case');
}

// b. the shipped configurations
{
  const files = ['hvgate.json'].concat(fs.readdirSync(path.join(confDir, 'examples')).filter((f) => f.endsWith('.json')).map((f) => `examples/${f}`));
  check(files.length >= 2, 'conf/examples has configurations');
  for (const f of files) {
    const file = path.join(confDir, f);
    check(validateConfig(readJson(file)), `schema accepts conf/${f}`, fmtErrors(validateConfig.errors));
    const r = checkConfig(file);
    if (f === 'hvgate.json')
      check(r.rc === 0, `check-config accepts conf/${f}`, `exit ${r.rc} ${r.signal || ''}\n${r.err}`);
    else // paths under /etc: only "cannot read" errors
      check(r.rc === 0 || (r.rc === 78 && errorLines(r.err).every((l) => / cannot read '\/[^']*': No such file/.test(l))),
        `check-config finds nothing but absent files in conf/${f}`, `exit ${r.rc} ${r.signal || ''}\n${r.err}`);
  }
}

// c. variants of conf/hvgate.json
{
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hvgate-config-'));
  try {
    const key = (name, args) => {
      const file = path.join(tmp, name);
      const r = spawnSync('openssl', ['genpkey', ...args, '-out', file], { encoding: 'utf8' });
      check(r.status === 0, `openssl genpkey ${args.join(' ')}`, `${r.error || ''}${r.stderr || ''}`);
      return file;
    };
    const keys = {
      ec: key('p384.pem', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384']),
      ec256: key('p256.pem', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']),
      rsa: key('rsa2048.pem', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']),
      rsa1024: key('rsa1024.pem', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024']),
    };
    const shipped = readJson(path.join(confDir, 'hvgate.json'));
    // relative paths are relative to conf/: make them absolute
    const abs = (p) => (path.isAbsolute(p) ? p : path.resolve(confDir, p));
    shipped.programs.forEach((p) => { p.mapping = abs(p.mapping); });
    shipped.store.sqlite = abs(shipped.store.sqlite);
    const P = (c, i = 0) => c.partners[i];
    const A = (c, i = 0) => c.partners[i].auth;
    const smart = (c, extra) => { P(c).base_url = 'https://ehr.example.org/fhir/R4'; P(c).auth = { type: 'smart-backend', client_id: 'hvgate', ...extra }; };
    // [accepted by both?, what, change(config, the variant's own file, keys)]
    const variants = [
      [true, 'conf/hvgate.json', () => {}],
      [true, "'$comment' (any type) and description at every level", (c) => {
        const at = [c, c.store, c.programs[0], P(c), P(c).receives, A(c), P(c, 1).status_return];
        P(c).tls = {}; P(c).timeouts = {}; at.push(P(c).tls, P(c).timeouts);
        at.forEach((o, i) => { o.$comment = i % 2 ? 'c' : { n: i }; o.description = 'd'; o.$schema = 'x'; });
      }],
      [false, 'description that is not a string', (c) => { P(c).description = 3; }],
      [false, '$schema that is not a string', (c) => { c.$schema = {}; }],
      [true, 'no listen, store or partners', (c) => { delete c.listen; delete c.store; delete c.partners; }],
      [true, 'no partners: empty array', (c) => { c.partners = []; }],
      [true, 'listen [::]:8780, store full_sync', (c) => { c.listen = '[::]:8780'; c.store.full_sync = true; }],
      [false, 'listen without port', (c) => { c.listen = 'localhost'; }],
      [false, 'listen empty', (c) => { c.listen = ''; }],
      [false, 'full_sync "yes"', (c) => { c.store.full_sync = 'yes'; }],
      // inline secrets
      [false, 'inline token at the top level', (c) => { c.token = 'abc'; }],
      [false, 'inline token in a partner', (c) => { P(c).token = 'abc'; }],
      [false, 'inline token in bearer auth', (c, f) => { P(c).auth = { type: 'bearer', token_file: f, token: 'abc' }; }],
      [false, 'inline bearer_token', (c) => { P(c).auth = { type: 'bearer', bearer_token: 'abc' }; }],
      [false, 'inline private_key', (c) => { smart(c, { private_key_env: 'K', private_key: '-----BEGIN' }); }],
      [false, 'client_secret', (c) => { smart(c, { private_key_env: 'K', client_secret: 's' }); }],
      [false, 'password in tls', (c) => { P(c).tls = { password: 'p' }; }],
      [false, 'client_key in tls', (c, f) => { P(c).tls = { client_cert_file: f, client_key: 'k' }; }],
      [false, 'token in receives (unknown key there)', (c) => { P(c).receives.token = 'abc'; }],
      // unknown keys
      [false, 'unknown top-level key', (c) => { c.partner = []; }],
      [false, 'unknown store key', (c) => { c.store.path = 'x.db'; }],
      [false, 'unknown program key', (c) => { c.programs[0].name = 'x'; }],
      [false, 'unknown partner key', (c) => { P(c).org_ids = ['x']; }],
      [false, 'unknown receives key', (c) => { P(c).receives.record_type = ['screening']; }],
      [false, 'unknown auth key', (c) => { A(c).user = 'x'; }],
      [false, 'unknown tls key', (c) => { P(c).tls = { verify_host: false }; }],
      [false, 'unknown timeouts key', (c) => { P(c).timeouts = { read_ms: 1000 }; }],
      [false, 'unknown status_return key', (c) => { P(c, 1).status_return.interval = 60; }],
      // enums
      [false, 'auth type oauth', (c) => { A(c).type = 'oauth'; }],
      [false, 'auth type Bearer', (c, f) => { P(c).auth = { type: 'Bearer', token_file: f }; }],
      [false, 'algorithm RS256', (c) => { smart(c, { private_key_file: keys.rsa, algorithm: 'RS256' }); }],
      [false, 'consent "yes"', (c) => { P(c).consent = 'yes'; }],
      [false, 'status_return mode pull', (c) => { P(c, 1).status_return.mode = 'pull'; }],
      [false, 'record type well_child', (c) => { P(c).receives.record_types = ['screening', 'well_child']; }],
      [false, 'record type Screening', (c) => { P(c).receives.record_types = ['Screening']; }],
      [false, 'sensitivity behavioral-health', (c) => { P(c).receives.sensitivity = ['behavioral-health']; }],
      [true, 'all record types, sensitivities; consent not_required', (c) => {
        P(c, 1).receives = { record_types: ['screening', 'referral', 'consent'], sensitivity: ['mental-health', 'partner-violence', 'substance-use'] };
        P(c, 1).consent = 'not_required';
      }],
      [true, 'services listed, services empty', (c) => { P(c).receives.services = ['early_intervention', 'ipv']; P(c, 1).receives.services = []; }],
      [true, 'service id in another case (the catalogue lookup ignores case)', (c) => { P(c).receives.services = ['Early_Intervention']; }],
      [false, 'service id with a hyphen', (c) => { P(c).receives.services = ['early-intervention']; }],
      // required keys
      [false, 'no programs', (c) => { delete c.programs; }],
      [false, 'programs empty', (c) => { c.programs = []; }],
      [false, 'program without id', (c) => { delete c.programs[0].id; }],
      [false, 'program without mapping', (c) => { delete c.programs[0].mapping; }],
      [false, 'program that is a string', (c) => { c.programs = [c.programs[0].mapping]; }],
      [false, 'program id with a space', (c) => { c.programs[0].id = 'sunrise hv'; }],
      [false, 'store without sqlite', (c) => { c.store = { full_sync: true }; }],
      [false, 'partners not an array', (c) => { c.partners = P(c); }],
      [false, 'partner not an object', (c) => { c.partners.push('riverside'); }],
      [false, 'partner without id', (c) => { delete P(c).id; }],
      [false, 'partner id of 65 characters', (c) => { P(c).id = 'p'.repeat(65); }],
      [true, 'partner id of 64 characters, no name', (c) => { P(c).id = 'p'.repeat(63) + '.'; delete P(c).name; }],
      [false, 'empty name', (c) => { P(c).name = ''; }],
      [false, 'partner without organization_ids', (c) => { delete P(c).organization_ids; }],
      [false, 'organization_ids a string', (c) => { P(c).organization_ids = '1234567893'; }],
      [false, 'organization_ids empty', (c) => { P(c).organization_ids = []; }],
      [false, 'organization_ids with an empty id', (c) => { P(c).organization_ids.push(''); }],
      [false, 'partner without base_url', (c) => { delete P(c).base_url; }],
      [false, 'partner without receives', (c) => { delete P(c).receives; }],
      [false, 'receives without record_types', (c) => { delete P(c).receives.record_types; }],
      [false, 'record_types empty', (c) => { P(c).receives.record_types = []; }],
      [false, 'record_types a string', (c) => { P(c).receives.record_types = 'screening'; }],
      [false, 'partner without auth', (c) => { delete P(c).auth; }],
      [false, 'auth without type', (c) => { P(c).auth = {}; }],
      [false, 'auth a string', (c) => { P(c).auth = 'none'; }],
      [false, 'status_return without mode', (c) => { P(c, 1).status_return = { interval_s: 60 }; }],
      // bearer
      [true, 'bearer with token_file', (c, f) => { P(c).auth = { type: 'bearer', token_file: f }; }],
      [true, 'bearer with token_env (unset: a warning)', (c) => { P(c).auth = { type: 'bearer', token_env: 'HVGATE_SCHEMA_TEST_UNSET' }; }],
      [false, 'bearer with token_file and token_env', (c, f) => { P(c).auth = { type: 'bearer', token_file: f, token_env: 'T' }; }],
      [false, 'bearer with neither token_file nor token_env', (c) => { P(c).auth = { type: 'bearer' }; }],
      [false, 'bearer with an empty token_env', (c) => { P(c).auth = { type: 'bearer', token_env: '' }; }],
      // SMART Backend Services
      [true, 'smart-backend ES384 (P-384 key), key_id, scope, token_url', (c) => {
        smart(c, { private_key_file: keys.ec, algorithm: 'ES384', key_id: 'k1', scope: 'system/Patient.cu', token_url: 'https://auth.example.org/token' });
      }],
      [true, 'smart-backend RS384 (RSA 2048 key)', (c) => { smart(c, { private_key_file: keys.rsa, algorithm: 'RS384' }); }],
      [true, 'smart-backend, default algorithm, RSA key', (c) => { smart(c, { private_key_file: keys.rsa }); }],
      [true, 'smart-backend with private_key_env', (c) => { smart(c, { private_key_env: 'HVGATE_SCHEMA_TEST_KEY' }); }],
      [true, 'smart-backend token_url on localhost over http', (c) => { smart(c, { private_key_env: 'K', token_url: 'http://localhost:8104/token' }); }],
      [false, 'smart-backend without client_id', (c) => { smart(c, { private_key_file: keys.rsa }); delete A(c).client_id; }],
      [false, 'smart-backend without a key', (c) => { smart(c, {}); }],
      [false, 'smart-backend with private_key_file and private_key_env', (c) => { smart(c, { private_key_file: keys.rsa, private_key_env: 'K' }); }],
      [false, 'smart-backend token_url over http to a remote host', (c) => { smart(c, { private_key_env: 'K', token_url: 'http://auth.example.org/token' }); }],
      [false, 'smart-backend token_url not a URL', (c) => { smart(c, { private_key_env: 'K', token_url: 'auth.example.org/token' }); }],
      // base_url
      [true, 'https, HTTPS, http to 127.0.0.1 and [::1]', (c) => {
        P(c).base_url = 'HTTPS://ehr.example.org/fhir'; P(c, 1).base_url = 'http://[::1]:8103/fhir';
        c.partners.push({ ...P(shipped, 1), id: 'x', organization_ids: ['X-1'], base_url: 'https://x.example.org' });
      }],
      [false, 'http to a non-local host', (c) => { P(c).base_url = 'http://ehr.example.org/fhir/R4'; }],
      [true, 'http to a non-local host with allow_insecure_http', (c) => { P(c).base_url = 'http://ehr.example.org/fhir/R4'; P(c).allow_insecure_http = true; }],
      [false, 'http to a non-local host with allow_insecure_http false', (c) => { P(c).base_url = 'http://ehr.example.org/fhir/R4'; P(c).allow_insecure_http = false; }],
      [false, 'allow_insecure_http "true"', (c) => { P(c).allow_insecure_http = 'true'; }],
      [false, 'base_url ftp', (c) => { P(c).base_url = 'ftp://ehr.example.org/fhir'; }],
      [false, 'base_url without host', (c) => { P(c).base_url = 'https:///fhir'; }],
      [false, 'base_url with a space', (c) => { P(c).base_url = 'https://ehr.example.org/fhir R4'; }],
      // tls
      [true, 'tls verify false, ca_file', (c, f) => { P(c).tls = { verify: false, ca_file: f }; }],
      [true, 'mutual TLS', (c, f) => { P(c).tls = { client_cert_file: f, client_key_file: keys.ec }; }],
      [false, 'tls with only client_cert_file', (c, f) => { P(c).tls = { client_cert_file: f }; }],
      [false, 'tls with only client_key_file', (c) => { P(c).tls = { client_key_file: keys.ec }; }],
      [false, 'tls verify "no"', (c) => { P(c).tls = { verify: 'no' }; }],
      // numbers
      [true, 'workers 1 and 64, timeouts at their limits', (c) => {
        P(c).workers = 1; P(c, 1).workers = 64;
        P(c).timeouts = { connect_ms: 100, total_ms: 600000 }; P(c, 1).timeouts = { connect_ms: 120000, total_ms: 1000 };
      }],
      [false, 'workers 0', (c) => { P(c).workers = 0; }],
      [false, 'workers 65', (c) => { P(c).workers = 65; }],
      [false, 'workers 2.5', (c) => { P(c).workers = 2.5; }],
      [false, 'workers "2"', (c) => { P(c).workers = '2'; }],
      [false, 'connect_ms 99', (c) => { P(c).timeouts = { connect_ms: 99 }; }],
      [false, 'connect_ms 120001', (c) => { P(c).timeouts = { connect_ms: 120001 }; }],
      [false, 'total_ms 999', (c) => { P(c).timeouts = { total_ms: 999 }; }],
      [false, 'total_ms 600001', (c) => { P(c).timeouts = { total_ms: 600001 }; }],
      [true, 'interval_s 10 and 86400, subscription', (c) => {
        P(c, 1).status_return.interval_s = 10; P(c).status_return = { mode: 'subscription' };
        c.partners.push({ ...P(shipped, 1), id: 'x', organization_ids: ['X-1'], status_return: { mode: 'poll', interval_s: 86400 } });
      }],
      [false, 'interval_s 0', (c) => { P(c, 1).status_return.interval_s = 0; }],
      [false, 'interval_s 86401', (c) => { P(c, 1).status_return.interval_s = 86401; }],
      [true, 'interval_s 1, a poll query', (c) => { P(c, 1).status_return = { mode: 'poll', interval_s: 1, query: 'owner=Organization/7' }; }],
      [false, 'a poll query with a space', (c) => { P(c, 1).status_return.query = 'owner=a b'; }],
      [false, 'a poll query with "?"', (c) => { P(c, 1).status_return.query = '?owner=x'; }],
      // the daemon's HTTPS, operations and partner credentials (hashes only)
      [true, 'HTTPS with client certificates', (c, f) => { c.tls = { cert_file: f, key_file: keys.ec, client_ca_file: f }; }],
      [false, 'HTTPS without key_file', (c, f) => { c.tls = { cert_file: f }; }],
      [false, 'tls with an unknown key', (c, f) => { c.tls = { cert_file: f, key_file: keys.ec, verify: true }; }],
      [false, 'tls not an object', (c) => { c.tls = 'on'; }],
      [true, 'ops tokens', (c) => { c.ops = { token_sha256: ['a'.repeat(64), 'b'.repeat(64)] }; }],
      [false, 'ops token not a hash', (c) => { c.ops = { token_sha256: ['secret'] }; }],
      [false, 'ops token in upper case', (c) => { c.ops = { token_sha256: ['A'.repeat(64)] }; }],
      [false, 'an inline ops token', (c) => { c.ops = { token: 'secret' }; }],
      [true, 'partner inbound token and certificate hashes', (c) => { P(c).inbound = { token_sha256: ['c'.repeat(64)], client_cert_sha256: ['d'.repeat(64)] }; }],
      [false, 'inbound token of 63 digits', (c) => { P(c).inbound = { token_sha256: ['c'.repeat(63)] }; }],
      [false, 'inbound with an unknown key', (c) => { P(c).inbound = { tokens: ['c'.repeat(64)] }; }],
      [true, 'program organization_ids and a webhook', (c, f) => {
        c.programs[0].organization_ids = ['HV-9']; c.programs[0].webhook = { url: 'https://hv.example.org/hook', token_file: f };
      }],
      [false, 'webhook without url', (c) => { c.programs[0].webhook = { token_env: 'HOOK_TOKEN' }; }],
      [false, 'webhook over plain http to another host', (c) => { c.programs[0].webhook = { url: 'http://hv.example.org/hook' }; }],
      [true, 'webhook over http with allow_insecure_http', (c) => { c.programs[0].webhook = { url: 'http://hv.example.org/hook', allow_insecure_http: true }; }],
      [false, 'webhook with token_file and token_env', (c, f) => { c.programs[0].webhook = { url: 'https://hv.example.org/h', token_file: f, token_env: 'X' }; }],
    ];
    // Loader-only checks: the schema accepts (it cannot express them) and
    // check-config rejects with this message.
    // [what, loader message, change]
    const loaderOnly = [
      ['duplicate partner ids', "partner id 'riverside-peds' appears twice", (c) => { P(c, 1).id = P(c).id; }],
      ['duplicate program ids', "program id 'sunrise-hv' appears twice", (c) => { c.programs.push({ ...c.programs[0] }); }],
      ['an organization id routing to two partners', "organization id 'EI-014' already routes to partner 'county-ei'",
        (c) => { c.partners.push({ ...P(shipped, 1), id: 'x', base_url: 'https://x.example.org' }); }],
      ['program id other than its mapping\'s', "the mapping is for program 'sunrise-hv', not 'sunset-hv'", (c) => { c.programs[0].id = 'sunset-hv'; }],
      ['mapping file missing', 'cannot read mapping file', (c) => { c.programs[0].mapping = path.join(tmp, 'none.json'); }],
      ['service not in the catalogues', "'yoga' is not a service of the programs' catalogues", (c) => { P(c).receives.services = ['yoga']; }],
      ['token_file missing', 'cannot read', (c) => { P(c).auth = { type: 'bearer', token_file: path.join(tmp, 'none.token') }; }],
      ['ca_file missing', 'cannot read', (c) => { P(c).tls = { ca_file: 'none.pem' }; }],
      ['private key file that is not a key', 'is not a PEM private key', (c, f) => { smart(c, { private_key_file: f }); }],
      ['ES384 with an RSA key', 'ES384 needs an EC key on curve P-384', (c) => { smart(c, { private_key_file: keys.rsa, algorithm: 'ES384' }); }],
      ['ES384 with a P-256 key', 'ES384 needs an EC key on curve P-384', (c) => { smart(c, { private_key_file: keys.ec256, algorithm: 'ES384' }); }],
      ['RS384 with a P-384 key', 'RS384 needs an RSA key of at least 2048 bits', (c) => { smart(c, { private_key_file: keys.ec }); }],
      ['RS384 with an RSA 1024 key', 'RS384 needs an RSA key of at least 2048 bits', (c) => { smart(c, { private_key_file: keys.rsa1024 }); }],
    ];
    // Known loader gaps (reported): the schema rejects, the loader accepts.
    // When the loader is fixed, move the entry to `variants` as rejected.
    const loaderGaps = [
      ['null for an optional string (hvg_jconf_str takes null as absent)', (c) => { P(c).name = null; P(c).consent = null; }],
    ];
    // Fixed loader gaps, now rejected by both.
    variants.push(
      [false, 'tls that is not an object', (c) => { P(c).tls = 'strict'; }],
      [false, 'timeouts that is not an object', (c) => { P(c).timeouts = 5; }],
      [false, 'http to localhost.<domain>', (c) => { P(c).base_url = 'http://localhost.example.org/fhir'; }],
      [false, 'http to 127.<domain>', (c) => { P(c).base_url = 'http://127.example.org/fhir'; }],
      [false, 'http with userinfo before a loopback-looking host', (c) => { P(c).base_url = 'http://localhost@evil.example.org/fhir'; }],
      [true, 'http to 127.0.0.1 with a port', (c) => { P(c).base_url = 'http://127.0.0.1:9/fhir'; }],
      [true, 'http to [::1]', (c) => { P(c).base_url = 'http://[::1]:9/fhir'; }],
    );
    let n = 0;
    const run = (change) => {
      const c = JSON.parse(JSON.stringify(shipped));
      const file = path.join(tmp, `config-${n++}.json`);
      change(c, file, keys);
      fs.writeFileSync(file, JSON.stringify(c, null, 2));
      const sOk = validateConfig(c);
      return { sOk, sErr: fmtErrors(validateConfig.errors), r: checkConfig(file) };
    };
    check(variants.length >= 80, 'config variants');
    for (const [accept, what, change] of variants) {
      const { sOk, sErr, r } = run(change);
      const v = accept ? 'accept' : 'reject';
      check(sOk === accept, `config schema should ${v}: ${what}`, sErr);
      check((r.rc === 0) === accept && (r.rc === 0 || r.rc === 78), `check-config should ${v}: ${what}`, `exit ${r.rc} ${r.signal || ''}\n${r.err}`);
    }
    for (const [what, msg, change] of loaderOnly) {
      const { sOk, sErr, r } = run(change);
      check(sOk, `config schema accepts (loader-only check): ${what}`, sErr);
      check(r.rc === 78 && errorLines(r.err).length >= 1 && errorLines(r.err).every((l) => l.includes(msg)),
        `check-config rejects, only with "${msg}": ${what}`, `exit ${r.rc} ${r.signal || ''}\n${r.err}`);
    }
    for (const [what, change] of loaderGaps) {
      const { sOk, r } = run(change);
      check(!sOk, `config schema rejects (known loader gap): ${what}`);
      check(r.rc === 0, `check-config still accepts (known loader gap; if fixed, move to the variants): ${what}`,
        `exit ${r.rc} ${r.signal || ''}\n${r.err}`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

console.log(`schemas: ${checks} checks, ${failures} failed`);
process.exit(failures ? 1 : 0);
