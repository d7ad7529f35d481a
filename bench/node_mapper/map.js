#!/usr/bin/env node
// map.js — the Node.js counterpart of `hvgate map` for screening records,
// written for the benchmark in bench/run (docs/benchmarks.md).
//
//   node map.js -m MAPPING [-o OUT] [--rejects FILE] [-s SOURCE]
//               [--today YYYY-MM-DD] [-q] INPUT...
//
// It reads the same mapping file and instrument catalogue, streams the CSV
// (RFC 4180 with quotes and embedded line breaks, as hvgate's reader does),
// applies the same field mapping, normalisation and checks
// (mappings/hv_mapper.c) and writes the same NDJSON transaction Bundles
// (mappings/hv_tofhir.c, fhir/fhir_build.c, fhir/fhir_uuid.c) with
// JSON.stringify of plain objects. Rejected records are reported as
// FILE:LINE: FIELD: REASON on standard error (or --rejects), like hvgate.
//
// Known differences from hvgate (see bench/README.md):
//  - decimal scores are written as JavaScript numbers: "15.50" -> 15.5 and
//    "-0" -> 0 (hvgate keeps the normalised text); integers are identical;
//  - a literal U+FFFD in the input counts as invalid UTF-8;
//  - records larger than max_record_bytes (1 MiB) are not detected;
//  - only screening sources in CSV are supported.
'use strict';

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { StringDecoder } = require('string_decoder');
const { once } = require('events');

const EX = { OK: 0, USAGE: 64, DATAERR: 65, NOINPUT: 66, SOFTWARE: 70, IOERR: 74, CONFIG: 78 };

// ---- canonical fields (mappings/hv_canonical.h) ------------------------

const S = 1, R = 2, C = 4, W = 8, ALL = 15, PHI = 0x100;
const FIELD_LIST = [
  ['record_id', 'ID', ALL], ['family_id', 'ID', ALL],
  ['child.id', 'ID', S | R | W], ['child.given', 'STR', S | R | W | PHI],
  ['child.family', 'STR', S | R | W | PHI],
  ['child.birth_date', 'DATE', S | R | W | PHI], ['child.sex', 'CODE', S | R | W],
  ['caregiver.id', 'ID', ALL], ['caregiver.given', 'STR', ALL | PHI],
  ['caregiver.family', 'STR', ALL | PHI], ['caregiver.birth_date', 'DATE', ALL | PHI],
  ['caregiver.sex', 'CODE', ALL], ['caregiver.phone', 'STR', ALL | PHI],
  ['caregiver.relationship', 'CODE', ALL], ['practice.npi', 'ID', S | R | W],
  ['practice.name', 'STR', S | R | W], ['home_visitor.id', 'ID', S | R],
  ['screening.instrument', 'CODE', S | W], ['screening.date', 'DATE', S | W],
  ['screening.subject', 'CODE', S | W], ['screening.total_score', 'NUM', S | W],
  ['screening.age_interval_months', 'NUM', S | W],
  ['screening.domain.communication', 'NUM', S | W],
  ['screening.domain.gross_motor', 'NUM', S | W],
  ['screening.domain.fine_motor', 'NUM', S | W],
  ['screening.domain.problem_solving', 'NUM', S | W],
  ['screening.domain.personal_social', 'NUM', S | W],
  ['screening.result', 'CODE', S | W],
  ['referral.service_type', 'CODE', R], ['referral.date', 'DATE', R],
  ['referral.reason_record_id', 'ID', R], ['referral.to_org_id', 'ID', R],
  ['referral.to_org_name', 'STR', R], ['referral.urgency', 'CODE', R],
  ['referral.status', 'CODE', R], ['referral.status_date', 'DATE', R],
  ['referral.notes', 'STR', R | PHI], ['consent.organization_id', 'ID', C],
  ['consent.scope', 'LIST', C], ['consent.granted_date', 'DATE', C],
  ['consent.expires_date', 'DATE', C], ['consent.revoked_date', 'DATE', C],
  ['well_child.visit_date', 'DATE', W],
];
const F = {};
FIELD_LIST.forEach(([name], i) => { F[name] = i; });
const NFIELDS = FIELD_LIST.length;
const DOMAIN_FIRST = F['screening.domain.communication'];
const RECTYPES = ['screening', 'referral', 'consent', 'well_child'];

const CODES = {
  'child.sex': ['female', 'male', 'other', 'unknown'],
  'caregiver.sex': ['female', 'male', 'other', 'unknown'],
  'screening.subject': ['child', 'caregiver'],
  'screening.result': ['positive', 'negative'],
  'referral.urgency': ['routine', 'urgent', 'asap', 'stat'],
  'referral.status': ['referred', 'linked', 'scheduled', 'completed', 'declined',
    'withdrawn', 'family_declined', 'unable_to_reach'],
  'caregiver.relationship': ['mother', 'father', 'parent', 'grandparent', 'guardian',
    'foster_parent', 'other'],
  'consent.scope': ['screening', 'referral', 'well_child'],
};
// by field index: Map lower-case code -> canonical code, and the list text
const FIELD_CODES = FIELD_LIST.map(([name]) => {
  const list = CODES[name];
  return list ? { map: new Map(list.map((c) => [c, c])), text: list.join(', ') } : null;
});

// ---- small C-compatible helpers ----------------------------------------

const ASCII_RE = /^[\x00-\x7f]*$/;
// Folding for strcasecmp() equality in the C locale: only A-Z change.
function lowerAscii(s) { return ASCII_RE.test(s) ? s.toLowerCase() : s.replace(/[A-Z]+/g, (m) => m.toLowerCase()); }

function isCSpace(c) { return c === 32 || (c >= 9 && c <= 13); }
// isspace() trim in the C locale; '' -> undefined
function ctrim(s) {
  let a = 0, b = s.length;
  while (a < b && isCSpace(s.charCodeAt(a))) a++;
  while (b > a && isCSpace(s.charCodeAt(b - 1))) b--;
  if (a === b) return undefined;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

// printf("%.40s"): at most 40 bytes
function trunc40(s) {
  if (s.length <= 40 && ASCII_RE.test(s)) return s;
  const b = Buffer.from(s);
  return b.length <= 40 ? s : b.subarray(0, 40).toString();
}

// printf("%g")
function fmtG(x) {
  if (Number.isInteger(x) && Math.abs(x) < 1e6) return String(x);
  let s = x.toPrecision(6);
  if (s.includes('e')) {
    let [m, e] = s.split('e');
    if (m.includes('.')) m = m.replace(/\.?0+$/, '');
    const n = Number(e);
    return `${m}e${n < 0 ? '-' : '+'}${String(Math.abs(n)).padStart(2, '0')}`;
  }
  if (s.includes('.')) s = s.replace(/\.?0+$/, '');
  return s;
}

// days since 1970-01-01 of a valid YYYY-MM-DD, or undefined (fhir_date_days)
function daysInMonth(y, m) {
  if (m === 2 && ((y % 4 === 0 && y % 100 !== 0) || y % 400 === 0)) return 29;
  return [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1];
}
const FULL_DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
function checkFullDate(s) {
  const m = FULL_DATE_RE.exec(s);
  if (!m) return null;
  const y = +m[1], mo = +m[2], d = +m[3];
  if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo)) return null;
  return [y, mo, d];
}
function daysFromCivil(y, m, d) {
  y -= m <= 2 ? 1 : 0;
  const era = Math.trunc((y >= 0 ? y : y - 399) / 400);
  const yoe = y - era * 400;
  const doy = Math.trunc((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.trunc(yoe / 4) - Math.trunc(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}
function dateDays(s) {
  const p = s === undefined ? null : checkFullDate(s);
  return p ? daysFromCivil(p[0], p[1], p[2]) : undefined;
}

// hv_date_parse: pattern of YYYY, MM/M, DD/D and literals -> 'YYYY-MM-DD',
// or 'FORMAT' / 'RANGE'
function parseDate(pat, s) {
  if (pat === 'YYYY-MM-DD') { // fast path, same result
    const m = FULL_DATE_RE.exec(s);
    if (!m) return 'FORMAT';
    return checkFullDate(s) ? s : 'RANGE';
  }
  let y = -1, mo = -1, d = -1, i = 0, p = 0;
  const digits = (fixed, max) => {
    let v = 0, k = 0;
    while (k < max && i + k < s.length && s.charCodeAt(i + k) >= 48 && s.charCodeAt(i + k) <= 57) {
      v = v * 10 + (s.charCodeAt(i + k) - 48);
      k++;
    }
    if (k === 0 || (fixed && k !== max)) return -1;
    i += k;
    return v;
  };
  while (p < pat.length) {
    if (pat.startsWith('YYYY', p)) {
      if ((y = digits(true, 4)) < 0) return 'FORMAT';
      p += 4;
    } else if (pat[p] === 'M' || pat[p] === 'D') {
      const two = pat[p + 1] === pat[p];
      const v = digits(two, 2);
      if (v < 0) return 'FORMAT';
      if (pat[p] === 'M') mo = v; else d = v;
      p += two ? 2 : 1;
    } else {
      if (s[i] !== pat[p]) return 'FORMAT';
      i++;
      p++;
    }
  }
  if (i !== s.length || y < 0 || mo < 0 || d < 0) return 'FORMAT';
  const out = `${String(y).padStart(4, '0')}-${String(mo).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
  return checkFullDate(out) ? out : 'RANGE';
}

// hv__number: [+-]?digits[.digits] -> normalised text, or null
const NUM_RE = /^([+-]?)(\d+)(\.\d+)?$/;
function normNumber(v) {
  const m = NUM_RE.exec(v);
  if (!m) return null;
  let int = m[2];
  if (int.length > 1 && int.charCodeAt(0) === 48) int = int.replace(/^0+(?=\d)/, '');
  const out = (m[1] === '-' ? '-' : '') + int + (m[3] || '');
  return out === v ? v : out;
}
const INT_RE = /^-?\d*$/;

// NPI: 10 digits, Luhn over "80840" + the digits
function isNpi(id) {
  if (id.length !== 10 || !/^\d{10}$/.test(id)) return false;
  const digits = '80840' + id;
  let sum = 0;
  for (let i = 14, dbl = false; i >= 0; i--, dbl = !dbl) {
    let d = digits.charCodeAt(i) - 48;
    if (dbl) { d *= 2; if (d > 9) d -= 9; }
    sum += d;
  }
  return sum % 10 === 0;
}

// ---- ids: UUID v5 of "Type|system|value" (fhir/fhir_uuid.c) -------------

const NS_IDENTIFIER = Buffer.from('5b0e6f3c9a414d7e8f122c6d90a3715e', 'hex');
// namespace bytes + UTF-8 name, hashed in one call (crypto.hash: Node >= 20.12)
let nameBuf = Buffer.alloc(4096);
NS_IDENTIFIER.copy(nameBuf, 0);
const sha1 = crypto.hash
  ? (b) => crypto.hash('sha1', b, 'buffer')
  : (b) => crypto.createHash('sha1').update(b).digest();
function uuidUrn(type, system, value) {
  const name = `${type}|${system}|${value}`;
  if (16 + name.length * 3 > nameBuf.length) {
    nameBuf = Buffer.alloc(16 + name.length * 3);
    NS_IDENTIFIER.copy(nameBuf, 0);
  }
  const n = nameBuf.write(name, 16);
  const h = sha1(nameBuf.subarray(0, 16 + n));
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.toString('hex', 0, 16);
  return `urn:uuid:${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

// ifNoneExist: search token escaping (\ | , $) and percent-encoding of all
// but unreserved characters, ':' and '/' (hv__enc in mappings/hv_tofhir.c)
const PLAIN_RE = /^[A-Za-z0-9\-._~:/]*$/;
const HEX = '0123456789ABCDEF';
function enc(s, escapeSearch) {
  if (PLAIN_RE.test(s)) return s;
  let out = '';
  for (const c of Buffer.from(s)) {
    if (escapeSearch && (c === 0x5c || c === 0x7c || c === 0x2c || c === 0x24)) out += '%5C';
    if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) ||
        c === 45 || c === 46 || c === 95 || c === 126 || c === 58 || c === 47) {
      out += String.fromCharCode(c);
    } else {
      out += '%' + HEX[c >> 4] + HEX[c & 15];
    }
  }
  return out;
}

// ---- configuration -------------------------------------------------------

class ConfigError extends Error {}

function coding(o) {
  if (!o) return undefined;
  return { system: o.system, code: o.code, display: o.display || undefined };
}

function loadCatalog(file) {
  const j = JSON.parse(fs.readFileSync(file, 'utf8'));
  const system = j.local_code_system;
  const byId = new Map();
  for (const ji of j.instruments || []) {
    const domains = (ji.domains || []).slice(0, 5).map((d) => ({
      id: d.id, name: d.name, concept: { coding: [coding(d.code)], text: d.name },
    }));
    const rule = ji.positive ? ji.positive.rule : null;
    const cats = (ji.categories || []).map((c) => ({ coding: [coding(c)] }));
    if (!cats.some((c) => c.coding[0].code === 'survey')) {
      cats.unshift({ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'survey', display: 'Survey' }] });
    }
    const in_ = {
      id: ji.id,
      name: ji.name,
      child: ji.subject === 'child',
      hasScore: !!(ji.score && typeof ji.score.min === 'number' && typeof ji.score.max === 'number'),
      scoreMin: ji.score ? ji.score.min : 0,
      scoreMax: ji.score ? ji.score.max : 0,
      scoreInteger: !!(ji.score && ji.score.integer === true),
      rule,
      cutoff: ji.positive && typeof ji.positive.value === 'number' ? ji.positive.value : 0,
      codeConcept: { coding: [coding(ji.code)], text: ji.name },
      categories: cats.slice(0, 8),
      meta: ji.security && ji.security.length ? { security: ji.security.map(coding) } : undefined,
      domains,
      intervals: (ji.intervals || []).map((iv) => ({
        months: Math.trunc(iv.months),
        minDays: typeof iv.min_age_days === 'number' ? Math.trunc(iv.min_age_days) : -1,
        maxDays: typeof iv.max_age_days === 'number' ? Math.trunc(iv.max_age_days) : -1,
        cutoffs: iv.cutoffs && domains.every((d) => typeof iv.cutoffs[d.id] === 'number')
          ? domains.map((d) => iv.cutoffs[d.id]) : null,
        cutoffTotal: typeof iv.cutoff_total === 'number' ? iv.cutoff_total : null,
        scoreMax: typeof iv.score_max === 'number' ? iv.score_max : null,
      })),
    };
    const key = lowerAscii(ji.id);
    if (!byId.has(key)) byId.set(key, in_);
  }
  return { system, byId };
}

function loadMapping(file) {
  let j;
  try {
    j = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(`${file}: ${e.message}`);
  }
  const prog = j.program || {};
  let base = prog.identifier_base;
  if (!base || !prog.id) throw new ConfigError(`${file}: program.id and program.identifier_base are required`);
  if (!/[/:]$/.test(base)) base += '/';
  const dir = path.dirname(file);
  const rel = (p, dflt) => (p ? (path.isAbsolute(p) ? p : path.join(dir, p)) : dflt);
  const cats = j.catalogs || {};
  const sources = (j.sources || []).map((js) => {
    const fields = [];
    for (const [name, jf] of Object.entries(js.fields || {})) {
      const f = F[name];
      if (f === undefined) throw new ConfigError(`${file}: '${name}' is not a canonical field`);
      const fm = { field: f, from: null, value: null, def: null, required: false, dateFormat: null, map: null };
      if (typeof jf === 'string') {
        fm.from = jf;
      } else {
        fm.from = jf.from || null;
        fm.value = jf.value || null;
        fm.def = jf.default || null;
        fm.required = jf.required === true;
        fm.dateFormat = jf.date_format || null;
        if (jf.map) fm.map = Object.entries(jf.map).map(([a, b]) => [lowerAscii(a), b]);
      }
      fields.push(fm);
    }
    const byField = new Array(NFIELDS).fill(null);
    for (const fm of fields) byField[fm.field] = fm;
    let delim = js.delimiter || ',';
    if (delim === '\\t' || delim === 'tab') delim = '\t';
    return {
      name: js.name,
      type: RECTYPES.indexOf(js.record_type),
      files: js.files || [],
      format: (js.format || 'csv').toLowerCase(),
      delimiter: delim,
      quote: js.quote || '"',
      encoding: (js.encoding || 'utf-8').toLowerCase(),
      header: js.header !== false,
      dateFormat: js.date_format || 'YYYY-MM-DD',
      fields,
      byField,
    };
  });
  return {
    programId: prog.id,
    programName: prog.name,
    idBase: base,
    instrumentsPath: rel(cats.instruments, null),
    sources,
  };
}

function globToRe(g) {
  let re = '';
  for (const ch of g) {
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

function sourceFor(mapping, file, name) {
  if (name) return mapping.sources.find((s) => s.name === name) || null;
  const b = path.basename(file);
  let hit = null;
  for (const s of mapping.sources) {
    for (const g of s.files) {
      if (globToRe(g).test(b)) {
        if (hit && hit !== s) return null;
        hit = s;
      }
    }
  }
  if (!hit && mapping.sources.length === 1) hit = mapping.sources[0];
  return hit;
}

// ---- CSV reader ------------------------------------------------------------
//
// Same grammar as mappings/hv_reader.c: a quote opens only at a field's
// start, "" inside quotes is a quote, text after a closing quote up to the
// delimiter is kept, records end at LF, CR or CRLF, blank lines are skipped,
// lines are counted from 1 at the record's first line.

const CP1252 = [0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
  0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D, 0,
  0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
  0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178];

class CsvReader {
  constructor(delim, quote, onRecord) {
    this.d = delim;
    this.q = quote;
    this.dc = delim.charCodeAt(0);
    this.qc = quote.charCodeAt(0);
    this.onRecord = onRecord; // (fields, line, rawText) -> void
    this.buf = '';
    this.line = 1;
    this.first = true;
    this.failed = null; // fatal error: the rest of the input is not read
    this.failedLine = 0;
  }

  push(text, eof) {
    if (this.failed) return;
    if (this.first && text.length) {
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      this.first = false;
    }
    const buf = this.buf.length ? this.buf + text : text;
    let pos = 0;
    const n = buf.length;
    const d = this.d, dc = this.dc, qc = this.qc;
    // next positions of LF, CR and quote at or after pos (-1: none left)
    let nl = buf.indexOf('\n'), cr = buf.indexOf('\r'), qp = buf.indexOf(this.q);
    for (;;) {
      // skip blank lines
      while (pos < n) {
        const c = buf.charCodeAt(pos);
        if (c === 10) this.line++;
        else if (c !== 13) break;
        pos++;
      }
      if (pos >= n) break;
      if (nl !== -1 && nl < pos) nl = buf.indexOf('\n', pos);
      if (cr !== -1 && cr < pos) cr = buf.indexOf('\r', pos);
      if (qp !== -1 && qp < pos) qp = buf.indexOf(this.q, pos);
      let end = nl === -1 ? n : nl;
      if (cr !== -1 && cr < end) end = cr;
      if (end === n && !eof) break; // record not complete yet
      if (qp === -1 || qp > end) {
        // fast path: no quote in this record
        const seg = buf.slice(pos, end);
        const line = this.line;
        let next = end;
        if (end < n) {
          next = end + 1;
          if (buf.charCodeAt(end) === 13 && buf.charCodeAt(next) === 10) next++;
          else if (buf.charCodeAt(end) === 13 && next === n && !eof) break; // CR LF split
        }
        this.line++;
        pos = next;
        this.onRecord(seg.split(d), line, seg);
        continue;
      }
      // slow path: character by character
      const fields = [];
      let i = pos, lines = 0, done = false, need = false;
      const startLine = this.line;
      for (;;) {
        if (i < n && buf.charCodeAt(i) === qc) {
          let j = i + 1, val = '';
          let runStart = j;
          const qline = startLine + lines;
          for (;;) {
            if (j >= n) {
              if (!eof) { need = true; break; }
              this.failed = `quote opened on line ${qline} is never closed`;
              this.failedLine = startLine;
              this.buf = '';
              return;
            }
            const c = buf.charCodeAt(j);
            if (c === qc) {
              if (j + 1 >= n && !eof) { need = true; break; }
              if (j + 1 < n && buf.charCodeAt(j + 1) === qc) {
                val += buf.slice(runStart, j + 1);
                j += 2;
                runStart = j;
                continue;
              }
              val += buf.slice(runStart, j);
              j++;
              break;
            }
            if (c === 10) lines++;
            j++;
          }
          if (need) break;
          let k = j;
          while (k < n) {
            const c = buf.charCodeAt(k);
            if (c === dc || c === 10 || c === 13) break;
            k++;
          }
          if (k >= n && !eof) { need = true; break; }
          if (k > j) val += buf.slice(j, k);
          fields.push(val);
          i = k;
          if (i < n && buf.charCodeAt(i) === dc) { i++; continue; }
        } else {
          let k = i;
          while (k < n) {
            const c = buf.charCodeAt(k);
            if (c === dc || c === 10 || c === 13) break;
            k++;
          }
          if (k >= n && !eof) { need = true; break; }
          fields.push(buf.slice(i, k));
          i = k;
          if (i < n && buf.charCodeAt(i) === dc) { i++; continue; }
        }
        // at a line end or the end of input
        if (i < n && buf.charCodeAt(i) === 13) {
          if (i + 1 >= n && !eof) { need = true; break; }
          i++;
          if (i < n && buf.charCodeAt(i) === 10) i++;
        } else if (i < n) {
          i++;
        }
        lines++;
        done = true;
        break;
      }
      if (need) break;
      if (done) {
        const raw = buf.slice(pos, i);
        pos = i;
        this.line = startLine + lines;
        this.onRecord(fields, startLine, raw);
      }
    }
    this.buf = pos < n ? buf.slice(pos) : '';
  }
}

// ---- the mapper -------------------------------------------------------------

const CTRL_RE = /[\x00-\x08\x0b\x0c\x0e-\x1f]/;
const ID_CTRL_RE = /[\x00-\x1f]/;
// a record needing a closer look: control characters, or U+FFFD (invalid
// UTF-8 replaced by the decoder), or for cp1252 input bytes 0x80-0x9F
const SPECIAL_UTF8_RE = /[\x00-\x08\x0b\x0c\x0e-\x1f\ufffd]/;
const SPECIAL_CP1252_RE = /[\x00-\x08\x0b\x0c\x0e-\x1f\x80-\x9f]/;

class Mapper {
  constructor(mapping, cat, today) {
    this.m = mapping;
    this.cat = cat;
    this.today = today;
    const b = mapping.idBase;
    this.sys = {
      child: `${b}child`, caregiver: `${b}caregiver`, homeVisitor: `${b}home-visitor`,
      screening: `${b}screening`, org: `${b}organization`,
    };
    this.pos = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation', code: 'POS', display: 'Positive' }] };
    this.neg = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation', code: 'NEG', display: 'Negative' }] };
    this.intervalCode = { coding: [{ system: cat.system, code: 'questionnaire-interval', display: 'Questionnaire age interval' }] };
  }

  // Binds a source's columns to a header: col per field map (-1 none).
  bind(src, header) {
    for (const fm of src.fields) {
      if (!fm.from) { fm.col = -1; continue; }
      const c = header.indexOf(fm.from);
      if (c < 0) {
        throw new ConfigError(`${fm.from}: column '${fm.from}' (mapped to ${FIELD_LIST[fm.field][0]}) is not in the file's header`);
      }
      fm.col = c;
    }
  }

  key(src, f) {
    const fm = src.byField[f];
    return fm && fm.from ? fm.from : FIELD_LIST[f][0];
  }

  // One record: returns {rec, issues, rejected, ...} (hv_mapper_next).
  map(src, vals, special, res) {
    const rec = new Array(NFIELDS);
    const bad = new Uint8Array(NFIELDS);
    res.rec = rec;
    res.bad = bad;
    for (const fm of src.fields) this.field(src, fm, vals, special, res);
    if (src.type === 0) this.checkScreening(src, res);
  }

  issue(res, warning, key, msg) {
    if (!warning) res.rejected = true;
    if (res.issues.length < 16) res.issues.push([warning, key, msg]);
  }

  field(src, fm, vals, special, res) {
    const f = fm.field;
    const [name, type, flags] = FIELD_LIST[f];
    const key = fm.from || name;
    const rec = res.rec;
    let v;
    if (fm.from) {
      const raw = vals[fm.col];
      if (raw !== undefined) {
        if (raw.length > 1365 && Buffer.byteLength(raw) > 4096) {
          this.issue(res, false, key, 'value longer than 4096 bytes');
          return;
        }
        v = ctrim(raw);
        if (special && v !== undefined) {
          const z = v.indexOf('\0'); // C strings end at NUL
          if (z >= 0) v = v.slice(0, z);
        }
      }
    } else if (fm.value) {
      v = fm.value;
    }
    if (v) {
      if (special && CTRL_RE.test(v)) {
        this.issue(res, false, key, 'contains control characters');
        res.bad[f] = 1;
        return;
      }
      if (fm.map) {
        const lv = lowerAscii(v);
        for (const [a, b] of fm.map) if (a === lv) { v = b; break; }
      }
    }
    if (!v && fm.def) v = fm.def;
    if (!v) {
      if (fm.required) {
        this.issue(res, false, key, 'required value is empty');
        res.bad[f] = 1;
      }
      return;
    }
    res.bad[f] = 1;
    switch (type) {
      case 'DATE': {
        const pat = fm.dateFormat || src.dateFormat;
        const d = parseDate(pat, v);
        if (d === 'RANGE') {
          this.issue(res, false, key, flags & PHI ? 'not a real calendar date' : `${v} does not exist`);
          return;
        }
        if (d === 'FORMAT') {
          this.issue(res, false, key, flags & PHI ? `not a date of the form ${pat}`
            : `'${trunc40(v)}' is not a date of the form ${pat}`);
          return;
        }
        v = d;
        break;
      }
      case 'NUM': {
        const n = normNumber(v);
        if (n === null) {
          this.issue(res, false, key, `'${trunc40(v)}' is not a number`);
          return;
        }
        v = n;
        break;
      }
      case 'CODE': {
        const codes = FIELD_CODES[f];
        if (codes) {
          const lv = lowerAscii(v);
          const c = codes.map.get(lv);
          if (c === undefined) {
            this.issue(res, false, key, `'${trunc40(v)}' is not one of: ${codes.text} (add a value map)`);
            return;
          }
          v = c;
        }
        break;
      }
      case 'ID':
        if (v.length > 21 && (v.length > 64 || Buffer.byteLength(v) > 64)) {
          this.issue(res, false, key, 'identifier longer than 64 characters');
          return;
        }
        if (ID_CTRL_RE.test(v)) {
          this.issue(res, false, key, 'identifier has control characters');
          return;
        }
        break;
      default:
        break;
    }
    rec[f] = v;
    res.bad[f] = 0;
  }

  require(src, res, f) {
    if (res.rec[f] === undefined && !res.bad[f]) {
      this.issue(res, false, this.key(src, f), 'required value is empty');
      res.bad[f] = 1;
    }
  }

  birthBefore(src, res, birth, event, who) {
    const b = res.rec[birth], e = res.rec[event];
    if (b !== undefined && e !== undefined && b > e) {
      this.issue(res, false, this.key(src, birth),
        `${who}'s birth date is after the screening date (${this.key(src, event)})`);
    }
  }

  score(res, key, v, in_, min, max, integer) {
    const d = Number(v);
    if (integer && !INT_RE.test(v)) {
      this.issue(res, false, key, `${in_.id} score ${v} is not a whole number`);
      return null;
    }
    if (d < min || d > max) {
      this.issue(res, false, key, `${in_.id} score ${v} is out of range (${fmtG(min)}-${fmtG(max)})`);
      return null;
    }
    return d;
  }

  checkScreening(src, res) {
    const r = res.rec;
    res.interpretation = -1;
    this.require(src, res, F.record_id);
    this.require(src, res, F['screening.date']);
    const sd = r[F['screening.date']];
    if (sd !== undefined && this.today) {
      const days = dateDays(sd);
      if (days !== undefined && days > this.today) {
        this.issue(res, false, this.key(src, F['screening.date']), 'date is in the future');
      }
    }
    const iid = r[F['screening.instrument']];
    if (iid === undefined) {
      this.require(src, res, F['screening.instrument']);
      return;
    }
    const lid = lowerAscii(iid);
    const in_ = this.cat.byId.get(lid);
    if (!in_) {
      this.issue(res, false, this.key(src, F['screening.instrument']),
        `instrument '${trunc40(iid)}' is unknown (not in the instrument catalogue)`);
      return;
    }
    res.instrument = in_;
    r[F['screening.instrument']] = in_.id;
    const want = in_.child ? 'child' : 'caregiver';
    const subj = r[F['screening.subject']];
    if (subj === undefined) r[F['screening.subject']] = want;
    else if (subj !== want) {
      this.issue(res, false, this.key(src, F['screening.subject']), `${in_.id} screens the ${want}, not the ${subj}`);
    }
    this.require(src, res, in_.child ? F['child.id'] : F['caregiver.id']);
    this.birthBefore(src, res, F['child.birth_date'], F['screening.date'], 'child');
    this.birthBefore(src, res, F['caregiver.birth_date'], F['screening.date'], 'caregiver');

    if (in_.intervals.length) {
      const iv = r[F['screening.age_interval_months']];
      if (iv !== undefined) {
        const months = INT_RE.test(iv) ? parseInt(iv, 10) : -2;
        res.interval = months >= 0 ? in_.intervals.find((x) => x.months === months) : undefined;
        if (!res.interval) {
          this.issue(res, false, this.key(src, F['screening.age_interval_months']),
            `${in_.id} has no ${iv}-month questionnaire`);
        }
      } else {
        const b = dateDays(r[F['child.birth_date']]);
        const s = dateDays(sd);
        if (b !== undefined && s !== undefined && s >= b) {
          const age = s - b;
          res.interval = in_.intervals.find((x) => x.minDays >= 0 && x.maxDays >= 0 &&
            age >= x.minDays && age <= x.maxDays);
        }
      }
    }

    let total = 0, haveTotal = false;
    if (in_.hasScore) {
      const f = F['screening.total_score'];
      const v = r[f];
      if (v === undefined) {
        if (!res.bad[f]) this.issue(res, false, this.key(src, f), `${in_.id} needs a total score`);
      } else {
        const max = res.interval && res.interval.scoreMax !== null ? res.interval.scoreMax : in_.scoreMax;
        const t = this.score(res, this.key(src, f), v, in_, in_.scoreMin, max, in_.scoreInteger);
        if (t !== null) { total = t; haveTotal = true; }
      }
    }
    let domainsOk = in_.domains.length > 0;
    const dv = [0, 0, 0, 0, 0];
    for (let d = 0; d < in_.domains.length; d++) {
      const f = DOMAIN_FIRST + d;
      const v = r[f];
      if (v === undefined) {
        if (!res.bad[f]) this.issue(res, false, this.key(src, f), `${in_.id} needs the ${in_.domains[d].name} domain score`);
        domainsOk = false;
        continue;
      }
      const x = this.score(res, this.key(src, f), v, in_, 0, 60, false);
      if (x === null) domainsOk = false; else dv[d] = x;
    }
    if (res.rejected) return;

    const iv = res.interval;
    res.domainBelow = null;
    if (in_.rule === 'total_at_least') {
      if (haveTotal) res.interpretation = total >= in_.cutoff ? 1 : 0;
    } else if (in_.rule === 'total_at_least_interval_cutoff') {
      if (haveTotal && iv && iv.cutoffTotal !== null) res.interpretation = total >= iv.cutoffTotal ? 1 : 0;
    } else if (in_.rule === 'any_domain_below_cutoff') {
      if (domainsOk && iv && iv.cutoffs) {
        res.interpretation = 0;
        res.domainBelow = dv.slice(0, in_.domains.length).map((x, d) => x < iv.cutoffs[d]);
        if (res.domainBelow.includes(true)) res.interpretation = 1;
      }
    }
    const ruled = in_.rule === 'total_at_least' || in_.rule === 'total_at_least_interval_cutoff' ||
      in_.rule === 'any_domain_below_cutoff';
    if (res.interpretation < 0 && ruled) {
      this.issue(res, true, this.key(src, F['screening.instrument']),
        `${in_.id} result not interpreted: no age interval (give the interval or the child's birth date)`);
    }
    const prog = r[F['screening.result']];
    if (prog !== undefined && res.interpretation >= 0 && (prog === 'positive') !== (res.interpretation === 1)) {
      this.issue(res, true, this.key(src, F['screening.result']),
        `the program's reading '${prog}' differs from the ${in_.id} cutoff; the catalogue's interpretation is sent`);
    }
  }

  // ---- FHIR (mappings/hv_tofhir.c) ----

  entry(type, system, value, resource) {
    const urn = uuidUrn(type, system, value);
    return {
      urn,
      entry: {
        fullUrl: urn,
        resource,
        request: { method: 'POST', url: type, ifNoneExist: `identifier=${enc(system, false)}|${enc(value, true)}` },
      },
    };
  }

  bundle(res) {
    const r = res.rec;
    const in_ = res.instrument;
    const entries = [];
    const childId = r[F['child.id']], cgId = r[F['caregiver.id']], npi = r[F['practice.npi']];
    let childRef, cgRef, practiceRef;
    if (npi !== undefined && childId !== undefined) {
      const sys = isNpi(npi) ? 'http://hl7.org/fhir/sid/us-npi' : this.sys.org;
      const name = r[F['practice.name']];
      const e = this.entry('Organization', sys, npi, {
        resourceType: 'Organization', identifier: [{ system: sys, value: npi }], active: true, name,
      });
      practiceRef = { reference: e.urn, display: name };
      entries.push(e.entry);
    }
    const nameOf = (family, given) => (family !== undefined || given !== undefined
      ? [{ family, given: given !== undefined ? [given] : undefined }] : undefined);
    const phone = r[F['caregiver.phone']];
    const telecom = phone !== undefined ? [{ system: 'phone', value: phone }] : undefined;
    if (childId !== undefined) {
      const e = this.entry('Patient', this.sys.child, childId, {
        resourceType: 'Patient',
        identifier: [{ system: this.sys.child, value: childId }],
        name: nameOf(r[F['child.family']], r[F['child.given']]),
        gender: r[F['child.sex']],
        birthDate: r[F['child.birth_date']],
        generalPractitioner: npi !== undefined ? [practiceRef] : undefined,
      });
      childRef = { reference: e.urn };
      entries.push(e.entry);
    }
    const cgName = cgId !== undefined ? nameOf(r[F['caregiver.family']], r[F['caregiver.given']]) : undefined;
    if (cgId !== undefined && !in_.child) {
      const e = this.entry('Patient', this.sys.caregiver, cgId, {
        resourceType: 'Patient',
        identifier: [{ system: this.sys.caregiver, value: cgId }],
        name: cgName,
        telecom,
        gender: r[F['caregiver.sex']],
        birthDate: r[F['caregiver.birth_date']],
      });
      cgRef = { reference: e.urn };
      entries.push(e.entry);
    }
    if (cgId !== undefined && childId !== undefined) {
      const rel = r[F['caregiver.relationship']];
      const role = rel !== undefined ? ROLE[rel] : undefined;
      const e = this.entry('RelatedPerson', this.sys.caregiver, cgId, {
        resourceType: 'RelatedPerson',
        identifier: [{ system: this.sys.caregiver, value: cgId }],
        patient: childRef,
        relationship: [{ coding: role, text: rel !== undefined ? rel : 'caregiver' }],
        name: cgName,
        telecom,
        gender: r[F['caregiver.sex']],
        birthDate: r[F['caregiver.birth_date']],
      });
      entries.push(e.entry);
    }
    let performer;
    const hvId = r[F['home_visitor.id']];
    if (hvId !== undefined) {
      const e = this.entry('Practitioner', this.sys.homeVisitor, hvId, {
        resourceType: 'Practitioner', identifier: [{ system: this.sys.homeVisitor, value: hvId }],
      });
      performer = [{ reference: e.urn }];
      entries.push(e.entry);
    }

    const interp = res.interpretation;
    let component;
    if (in_.domains.length) {
      component = in_.domains.map((d, k) => {
        const v = r[DOMAIN_FIRST + k];
        const dec = v !== undefined && v.includes('.');
        return {
          code: d.concept,
          valueInteger: v !== undefined && !dec ? Number(v) : undefined,
          valueQuantity: dec ? { value: Number(v) } : undefined,
          interpretation: interp >= 0 ? [res.domainBelow[k] ? this.pos : this.neg] : undefined,
        };
      });
      if (res.interval) {
        component.push({
          code: this.intervalCode,
          valueQuantity: { value: res.interval.months, unit: 'mo', system: 'http://unitsofmeasure.org', code: 'mo' },
        });
      }
    }
    const total = in_.hasScore ? r[F['screening.total_score']] : undefined;
    const totalDec = total !== undefined && total.includes('.');
    const recordId = r[F.record_id];
    const obs = this.entry('Observation', this.sys.screening, recordId, {
      resourceType: 'Observation',
      meta: in_.meta,
      identifier: [{ system: this.sys.screening, value: recordId }],
      status: 'final',
      category: in_.categories,
      code: in_.codeConcept,
      subject: in_.child ? childRef : cgRef,
      effectiveDateTime: r[F['screening.date']],
      performer,
      valueInteger: total !== undefined && !totalDec ? Number(total) : undefined,
      valueQuantity: totalDec ? { value: Number(total) } : undefined,
      interpretation: interp >= 0 ? [interp ? this.pos : this.neg] : undefined,
      component,
    });
    entries.push(obs.entry);
    return { resourceType: 'Bundle', type: 'transaction', entry: entries };
  }
}

const V3_ROLE = 'http://terminology.hl7.org/CodeSystem/v3-RoleCode';
const ROLE = {
  mother: [{ system: V3_ROLE, code: 'MTH', display: 'mother' }],
  father: [{ system: V3_ROLE, code: 'FTH', display: 'father' }],
  parent: [{ system: V3_ROLE, code: 'PRN', display: 'parent' }],
  grandparent: [{ system: V3_ROLE, code: 'GRPRN', display: 'grandparent' }],
  guardian: [{ system: V3_ROLE, code: 'GUARD', display: 'guardian' }],
  foster_parent: [{ system: V3_ROLE, code: 'PRN', display: 'parent' }],
};

// ---- output -----------------------------------------------------------------

// Output: strings are encoded straight into a 1 MiB buffer that is handed
// to the stream when full; backpressure is honoured between input chunks.
const OUT_CAP = 1 << 20;

class Out {
  constructor(stream) {
    this.s = stream;
    this.buf = Buffer.allocUnsafe(OUT_CAP);
    this.len = 0;
    this.full = false; // the stream asked us to wait for 'drain'
  }

  add(str) {
    if (this.len + str.length * 3 > OUT_CAP) {
      this.write();
      if (str.length * 3 > OUT_CAP) { // a huge line: write it as is
        if (!this.s.write(str)) this.full = true;
        return;
      }
    }
    this.len += this.buf.write(str, this.len);
  }

  write() {
    if (!this.len) return;
    const chunk = this.buf.subarray(0, this.len);
    this.buf = Buffer.allocUnsafe(OUT_CAP); // the stream keeps `chunk`
    this.len = 0;
    if (!this.s.write(chunk)) this.full = true;
  }

  async drain(force) {
    if (force) this.write();
    if (this.full) {
      this.full = false;
      await once(this.s, 'drain');
    }
  }
}

// ---- command line --------------------------------------------------------

function usage(f) {
  f.write('usage: node map.js -m MAPPING [-o OUT] [--rejects FILE] [-s SOURCE] [--today YYYY-MM-DD] [-q] INPUT...\n' +
    'Map screening CSV exports to NDJSON FHIR R4 transaction Bundles, like `hvgate map --format ndjson`.\n');
}

function todayDays() {
  const d = new Date();
  return daysFromCivil(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate());
}

async function mapFile(mapper, src, file, out, rej, st) {
  if (src.type !== 0 || src.format !== 'csv') {
    process.stderr.write(`${file}: this mapper reads screening CSV sources only\n`);
    return EX.USAGE;
  }
  let fd;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    process.stderr.write(`${file}: cannot open: ${e.message}\n`);
    return EX.NOINPUT;
  }
  const inputEnc = src.encoding === 'utf-8' || src.encoding === 'utf8' ? 'utf8' : 'latin1';
  const cp1252 = src.encoding === 'cp1252' || src.encoding === 'windows-1252';
  const decoder = new StringDecoder(inputEnc);
  const specialRe = cp1252 ? SPECIAL_CP1252_RE : SPECIAL_UTF8_RE;
  const stream = fs.createReadStream(null, { fd, highWaterMark: 1 << 16 });
  let header = null;
  let code = EX.OK;
  const ncolsOf = () => header.length;
  const onRecord = (vals, line, raw) => {
    if (header === null) {
      header = vals;
      mapper.bind(src, header);
      return;
    }
    st.records++;
    const res = { rec: null, bad: null, issues: [], rejected: false, instrument: null, interval: undefined, interpretation: -1 };
    const special = specialRe.test(raw);
    if (vals.length !== ncolsOf()) {
      mapper.issue(res, false, '(record)', `expected ${ncolsOf()} fields, found ${vals.length}`);
    } else if (special) {
      // invalid input bytes (decoded as U+FFFD) in a bound column, first one wins
      for (const fm of src.fields) {
        if (fm.col < 0) continue;
        let v = vals[fm.col];
        if (inputEnc === 'utf8') {
          const bad = v.indexOf('\ufffd');
          if (bad >= 0) {
            mapper.issue(res, false, fm.from, `invalid UTF-8 at byte ${Buffer.byteLength(v.slice(0, bad))} of a field; declare the file's encoding in the mapping`);
            break;
          }
        } else if (cp1252 && /[\x80-\x9f]/.test(v)) {
          let undef = -1;
          v = v.replace(/[\x80-\x9f]/g, (ch) => {
            const cp = CP1252[ch.charCodeAt(0) - 0x80];
            if (!cp && undef < 0) undef = ch.charCodeAt(0);
            return String.fromCharCode(cp);
          });
          if (undef >= 0) {
            mapper.issue(res, false, fm.from, `byte 0x${undef.toString(16).toUpperCase()} is undefined in Windows-1252`);
            break;
          }
          vals[fm.col] = v;
        }
      }
    }
    if (!res.rejected) mapper.map(src, vals, special, res);
    if (res.issues.length) {
      for (const [warning, key, msg] of res.issues) {
        rej.add(`${file}:${line}: ${key}: ${warning ? 'warning: ' : ''}${msg}\n`);
        if (warning) st.warnings++;
      }
    }
    if (res.rejected) {
      st.rejected++;
      return;
    }
    out.add(JSON.stringify(mapper.bundle(res)) + '\n');
    st.mapped++;
  };
  const reader = new CsvReader(src.delimiter, src.quote, onRecord);
  try {
    for await (const chunk of stream) {
      reader.push(decoder.write(chunk), false);
      if (reader.failed) break;
      await out.drain(false);
      await rej.drain(false);
    }
    if (!reader.failed) reader.push(decoder.end(), true);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${file}: ${e.message}\n`);
      return EX.CONFIG;
    }
    throw e;
  }
  if (header === null && !reader.failed) {
    process.stderr.write(`${file}: no header line\n`);
    return EX.DATAERR;
  }
  if (reader.failed) {
    await rej.drain(true);
    process.stderr.write(`${file}:${reader.failedLine}: ${reader.failed} (the rest of this file is not read)\n`);
    code = EX.DATAERR;
  }
  return code;
}

async function main(argv) {
  const o = { mapping: null, output: null, rejects: null, source: null, today: null, quiet: false, inputs: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) { process.stderr.write(`map.js: ${a} needs a value\n`); process.exit(EX.USAGE); }
      return argv[++i];
    };
    if (a === '-m' || a === '--mapping') o.mapping = val();
    else if (a === '-o' || a === '--output') o.output = val();
    else if (a === '--rejects') o.rejects = val();
    else if (a === '-s' || a === '--source') o.source = val();
    else if (a === '--today') o.today = val();
    else if (a === '-f' || a === '--format') {
      if (val() !== 'ndjson') { process.stderr.write('map.js: only --format ndjson is supported\n'); return EX.USAGE; }
    } else if (a === '-q' || a === '--quiet') o.quiet = true;
    else if (a === '-h' || a === '--help') { usage(process.stdout); return EX.OK; }
    else if (a.startsWith('-') && a !== '-') { process.stderr.write(`map.js: unknown option '${a}'\n`); usage(process.stderr); return EX.USAGE; }
    else o.inputs.push(a);
  }
  if (!o.mapping || !o.inputs.length) { usage(process.stderr); return EX.USAGE; }
  let today = todayDays();
  if (o.today) {
    today = dateDays(o.today);
    if (today === undefined) { process.stderr.write('map.js: --today must be a date YYYY-MM-DD\n'); return EX.USAGE; }
  }
  let mapping, cat;
  try {
    mapping = loadMapping(o.mapping);
    cat = loadCatalog(mapping.instrumentsPath || path.join(__dirname, '../../conf/catalog/instruments.json'));
  } catch (e) {
    process.stderr.write(`${e.message}\n`);
    return e instanceof ConfigError ? EX.CONFIG : EX.NOINPUT;
  }
  const mapper = new Mapper(mapping, cat, today);
  const outStream = o.output ? fs.createWriteStream(o.output) : process.stdout;
  const rejStream = o.rejects ? fs.createWriteStream(o.rejects) : process.stderr;
  const out = new Out(outStream);
  const rej = new Out(rejStream);
  const st = { records: 0, mapped: 0, rejected: 0, warnings: 0 };
  let exit = EX.OK;
  for (const file of o.inputs) {
    const src = sourceFor(mapping, file, o.source);
    if (!src) {
      process.stderr.write(`map.js: ${file}: no source of ${o.mapping} matches this file name (or several do); name one with --source\n`);
      return EX.USAGE;
    }
    const rc = await mapFile(mapper, src, file, out, rej, st);
    if (rc !== EX.OK && (exit === EX.OK || rc === EX.NOINPUT)) exit = rc;
  }
  await out.drain(true);
  await rej.drain(true);
  if (o.output) { outStream.end(); await once(outStream, 'finish'); }
  if (o.rejects) { rejStream.end(); await once(rejStream, 'finish'); }
  if (st.rejected && exit === EX.OK) exit = EX.DATAERR;
  if (!o.quiet) {
    process.stderr.write(`node map: ${st.records} records: ${st.mapped} mapped, ${st.rejected} rejected, ${st.warnings} warnings\n`);
  }
  return exit;
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e) => {
  process.stderr.write(`map.js: ${e && e.stack ? e.stack : e}\n`);
  process.exitCode = EX.SOFTWARE;
});
