#!/usr/bin/env node
// End to end delivery against a real FHIR server (tests/peer/server.js,
// Medplum's FHIR router) on loopback, with the real hvgate binary:
//  1. ingest the sample export, serve until the queue is empty: every queued
//     record is on the server exactly once (search by identifier);
//  2. ingesting the same export again queues nothing and sends nothing;
//  3. a changed record is sent as an update of the same resources;
//  4. the server answers 503 with Retry-After, loses answers to committed
//     transactions, is down for a while, and restarts: everything is
//     delivered after recovery, nothing twice;
//  5. SMART Backend Services: the right key gets tokens and deliveries; a
//     wrong key gets 401, the partner is held and reported once, nothing is
//     lost, and everything goes once the key is fixed; an expired token is
//     refreshed once;
//  6. records about families without consent are not sent, and are reported;
//  7. the daemon's HTTP side: POST /hv/{program}/records with a bearer token
//     stores records durably (202 with the per-record report), a wrong
//     token gets 401; /healthz answers, /readyz and /metrics with the
//     operations token only;
//  8. a Bundle the server refuses (422) becomes a dead letter with the
//     server's OperationOutcome, and `hvgate replay` sends it again;
//  9. a static bearer token (from a file) is sent and accepted;
// 10. TLS: the peer's certificate is verified against the partner's CA
//     file, mutual TLS with a client certificate; without the CA file or
//     without the client certificate nothing is sent (and nothing lost);
// 11. a consent revoked after records were queued under it: those records
//     are not disclosed (dead letters saying why), the revocation is sent.
// usage: deliver.js HVGATE SOURCE_DIR WORK_DIR
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const http = require('http');
const path = require('path');

const [hvgate, src, work] = process.argv.slice(2).map((a) => path.resolve(a));
const peerJs = path.join(src, 'tests/peer/server.js');
const sample = path.join(src, 'tests/data/program-export');
const base = 'https://sunrise-hv.example.org/fhir/id/';
const H = require('./harness');
const { check, sleep } = H;
H.freshDir(work);

// ---- the peer ----------------------------------------------------------
const startPeer = (args, port = 0) => H.startPeer(peerJs, work, args, port);
async function stopPeer(peer) {
  if (peer.proc.exitCode !== null) return;
  peer.proc.kill('SIGTERM');
  await new Promise((r) => peer.proc.once('exit', r));
}
async function req(port, method, p, body) {
  const r = await H.request(port, method, p,
    { headers: body ? { 'content-type': 'application/json' } : {}, body: body || null });
  return { status: r.status, body: r.text ? JSON.parse(r.text) : null };
}
const stats = async (peer) => (await req(peer.port, 'GET', '/_peer/stats')).body;
async function search(peer, type, system, value, token) {
  const q = `/fhir/R4/${type}?identifier=${encodeURIComponent(`${system}|${value}`)}`;
  const r = await H.request(peer.port, 'GET', q, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const b = JSON.parse(r.text);
  return b.entry ? b.entry.map((e) => e.resource) : [];
}

// ---- hvgate ------------------------------------------------------------
function config(name, port, partnerAuth, extra = {}) {
  const c = JSON.parse(fs.readFileSync(path.join(src, 'conf/hvgate.json'), 'utf8'));
  c.store = { sqlite: path.join(work, `${name}.db`) };
  c.listen = '127.0.0.1:0';
  c.programs[0].mapping = path.join(src, 'conf/mappings/program-export.json');
  for (const p of c.partners) {
    p.base_url = `http://127.0.0.1:${port}/fhir/R4`;
    p.auth = partnerAuth;
    Object.assign(p, extra);
  }
  const file = path.join(work, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify(c, null, 2));
  return file;
}
function run(args) {
  const r = spawnSync(hvgate, args, { encoding: 'utf8', maxBuffer: 256 << 20 });
  return { rc: r.status, out: r.stdout, err: r.stderr };
}
function serveAsync(cfg, extra = []) {
  const p = H.spawnChild(hvgate, ['serve', '-c', cfg, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr.on('data', (c) => { err += c; });
  const done = new Promise((r) => p.once('exit', (code, sig) => r({ rc: code, sig, err })));
  return { proc: p, done, log: () => err };
}
const events = (log, ev) => log.split('\n').filter((l) => l.startsWith('{'))
  .map((l) => JSON.parse(l)).filter((e) => e.event === ev);
const ingest = (cfg, files) => run(['ingest', '-c', cfg, '--today', '2026-11-23', ...files]);
const sampleFiles = ['screenings.csv', 'referrals.csv', 'consents.csv'].map((f) => path.join(sample, f));

// Resource type and identifier systems of a delivered record's main resources.
const mainResources = (type) => ({
  screening: [['Observation', `${base}screening`]],
  referral: [['ServiceRequest', `${base}referral`], ['Task', `${base}referral-task`]],
  consent: [['Consent', `${base}consent`]],
}[type]);

async function exactlyOnce(peer, delivered, token) {
  let bad = 0;
  for (const d of delivered)
    for (const [type, system] of mainResources(d.record_type)) {
      const found = await search(peer, type, system, d.record_id, token);
      if (found.length !== 1) {
        bad++;
        if (bad < 5) console.log(`  ${type} ${d.record_id}: ${found.length} on the server`);
      }
    }
  return bad;
}

(async () => {
  // ---- 1-3: delivery, idempotent re-ingest, update ---------------------
  let peer = await startPeer(['--auth', 'none']);
  const cfg = config('e2e', peer.port, { type: 'none' });
  let r = ingest(cfg, sampleFiles);
  check(r.rc === 65, 'ingest: exit 65 (8 sample rows rejected, the rest stored)', r.err.slice(-500));
  const queued = Number((r.err.match(/(\d+) deliveries queued/) || [])[1]);
  check(queued > 50, `ingest: ${queued} deliveries queued`, r.err.slice(-300));
  check(/not sent to county-ei: no active consent/.test(r.err), 'consent: a referral without consent is reported, not sent');
  check(/sensitive result: the partner is not cleared/.test(r.err), 'sensitivity: a withheld sensitive result is reported');
  r = run(['serve', '-c', cfg, '--drain', '--timeout', '120']);
  check(r.rc === 0, 'serve --drain: exit 0', r.err.slice(-800));
  const delivered = events(r.err, 'delivered');
  check(delivered.length === queued, `serve: ${delivered.length} of ${queued} delivered`);
  check(!/Sof[ií]a|Lopez|555-\d{3}-\d{4}|2024-02-19/.test(r.err), 'logs carry no names, phones or birth dates');
  const bad = await exactlyOnce(peer, delivered);
  check(delivered.length > 0 && bad === 0, `every delivered record is on the server exactly once (${bad} not)`);
  let s = await stats(peer);
  const tx1 = s.transactions.committed;
  check(tx1 === queued, `peer: ${tx1} transactions for ${queued} records`);
  const withheld = (await search(peer, 'ServiceRequest', `${base}referral`, 'R0000014')).length;
  check(withheld === 0, 'consent: the referral of a family without consent is not on the server');

  r = ingest(cfg, sampleFiles);
  check(/0 new, 0 changed, 410 unchanged/.test(r.err) && /0 deliveries queued/.test(r.err),
    'ingest again: nothing new, nothing queued', r.err.slice(-300));
  r = run(['serve', '-c', cfg, '--drain', '--timeout', '30']);
  s = await stats(peer);
  check(r.rc === 0 && s.transactions.committed === tx1, 'serve again: nothing sent');

  // a changed screening: S0000002 (PHQ-9) total 21 -> 22
  const changed = path.join(work, 'screenings.csv');
  const text = fs.readFileSync(path.join(sample, 'screenings.csv'), 'utf8')
    .replace(/^(S0000002,.*?,PHQ-9,caregiver,)21,/m, '$122,');
  fs.writeFileSync(changed, text);
  const before = await search(peer, 'Observation', `${base}screening`, 'S0000002');
  r = ingest(cfg, [changed]);
  check(/1 changed/.test(r.err) && /1 deliveries queued/.test(r.err), 'ingest a changed record: 1 changed, 1 queued', r.err.slice(-300));
  r = run(['serve', '-c', cfg, '--drain', '--timeout', '30']);
  const after = await search(peer, 'Observation', `${base}screening`, 'S0000002');
  check(r.rc === 0 && before.length === 1 && after.length === 1 && after[0].id === before[0].id,
    'the change updates the same Observation (same id, still one)');
  check(after.length === 1 && after[0].valueInteger === 22,
    'the Observation has the new score', JSON.stringify(after[0] && after[0].valueInteger));
  check(after.length === 1 && after[0].meta && after[0].meta.versionId !== before[0].meta.versionId,
    'the Observation has a new version');
  await stopPeer(peer);

  // ---- 4: 503 with Retry-After, the server down, then restarted ---------
  const state = path.join(work, 'peer-state.json');
  peer = await startPeer(['--auth', 'none', '--state-file', state]);
  const cfg2 = config('faults', peer.port, { type: 'none' });
  r = ingest(cfg2, sampleFiles);
  const q2 = Number((r.err.match(/(\d+) deliveries queued/) || [])[1]);
  await req(peer.port, 'POST', '/_peer/fault', { status: 503, count: 3, retry_after: 1 });
  // and twice the server commits a transaction but the answer is lost
  await req(peer.port, 'POST', '/_peer/fault', { drop: 2, phase: 'after' });
  let sv = serveAsync(cfg2, ['--drain', '--timeout', '120']);
  // let some go, then take the server away for a while and bring it back
  for (let i = 0; i < 100; i++) {
    await sleep(20);
    if (events(sv.log(), 'delivered').length > 10) break;
  }
  const port = peer.port;
  await stopPeer(peer);
  await sleep(2500);
  peer = await startPeer(['--auth', 'none', '--state-file', state], port);
  let res = await sv.done;
  check(res.rc === 0, 'serve drains after 503s and an outage', res.err.slice(-600));
  check(events(res.err, 'retry').length >= 3, `retries logged (${events(res.err, 'retry').length})`);
  check(events(res.err, 'retry').some((e) => e.http_status === 503), 'a 503 was retried');
  check(events(res.err, 'retry').some((e) => !e.http_status), 'a lost answer was retried');
  const down = events(res.err, 'partner_unreachable'), up = events(res.err, 'partner_reachable');
  const netRetries = events(res.err, 'retry').filter((e) => !e.http_status).length;
  console.log(`  outage: ${down.length} partner_unreachable, ${up.length} partner_reachable, ${netRetries} network retries`);
  check(down.length >= 1 && up.length === down.length, 'the outage is reported once per incident, and its end');
  // without the partner-wide hold every queued Bundle is tried against the
  // closed port in turn; with it, the workers in flight fail, then one probes
  check(netRetries <= 4 * down.length + 8, `a down partner is probed, not flooded (${netRetries} network retries)`);
  const d2 = events(res.err, 'delivered');
  check(d2.length === q2, `all ${q2} delivered after recovery (${d2.length})`);
  const bad2 = await exactlyOnce(peer, d2);
  check(d2.length > 0 && bad2 === 0, `after the outage each record is on the server once (${bad2} not)`);
  await stopPeer(peer);

  // ---- 5: SMART Backend Services ----------------------------------------
  const key = (name, args) => {
    const f = path.join(work, name);
    spawnSync('openssl', ['genpkey', ...args, '-out', f]);
    spawnSync('openssl', ['pkey', '-in', f, '-pubout', '-out', `${f}.pub`]);
    return f;
  };
  const good = key('good.pem', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']);
  const wrong = key('wrong.pem', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']);
  const ec = key('ec.pem', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384']);
  peer = await startPeer(['--auth', 'smart', '--public-key', `${good}.pub`, '--public-key', `${ec}.pub`]);
  const smart = (k, alg) => ({ type: 'smart-backend', client_id: 'hvgate-test', private_key_file: k,
    algorithm: alg, key_id: 'k1', scope: 'system/*.cruds' });
  const cfgWrong = config('smart', peer.port, smart(wrong, 'RS384'));
  r = ingest(cfgWrong, sampleFiles);
  const q3 = Number((r.err.match(/(\d+) deliveries queued/) || [])[1]);
  r = run(['serve', '-c', cfgWrong, '--drain', '--timeout', '4']);
  check(r.rc === 69, 'wrong key: not drained (exit 69)', r.err.slice(-400));
  const authFail = events(r.err, 'partner_auth_failed');
  const failedPartners = new Set(authFail.map((e) => e.partner));
  check(authFail.length === failedPartners.size && failedPartners.size === 2,
    `wrong key: the auth failure is reported once per partner (${authFail.length} reports, ${failedPartners.size} partners)`);
  check(r.rc !== null && events(r.err, 'dead_letter').length === 0 &&
    events(r.err, 'delivered').length === 0 && /"event":"started"/.test(r.err),
    'wrong key: nothing delivered, nothing dead-lettered');
  // fix the key (same store): everything goes
  const cfgGood = config('smart', peer.port, smart(good, 'RS384'));
  r = run(['serve', '-c', cfgGood, '--drain', '--timeout', '60']);
  check(r.rc === 0, 'right key: drained', r.err.slice(-400));
  check(events(r.err, 'delivered').length === q3, `right key: all ${q3} delivered after the fix`);
  s = await stats(peer);
  check(s.tokens_issued >= 1 && s.tokens_issued <= 4, `tokens are cached (${s.tokens_issued} issued for ${q3} deliveries)`);
  // ES384, and an expired token refreshed once
  const cfgEc = config('smart', peer.port, smart(ec, 'ES384'));
  const changed2 = path.join(work, 'screenings2.csv');
  fs.writeFileSync(changed2, fs.readFileSync(path.join(sample, 'screenings.csv'), 'utf8')
    .replace(/^(S0000002,.*?,PHQ-9,caregiver,)21,/m, '$123,'));
  sv = serveAsync(cfgEc);
  await sleep(800);
  await req(peer.port, 'POST', '/_peer/expire-tokens', {});
  r = ingest(cfgEc, [changed2]);
  for (let i = 0; i < 100 && events(sv.log(), 'delivered').length < 1; i++) await sleep(100);
  sv.proc.kill('SIGTERM');
  res = await sv.done;
  check(res.rc === 0, 'SIGTERM: clean exit', res.err.slice(-300));
  check(events(res.err, 'delivered').length === 1 && events(res.err, 'partner_auth_failed').length === 0,
    'ES384 key, token expired on the server: one refresh, delivered');
  await stopPeer(peer);

  // ---- 7: intake over HTTP, health and metrics ------------------------
  peer = await startPeer(['--auth', 'none']);
  const token = 'intake-test-token-7';
  const hash = require('crypto').createHash('sha256').update(token).digest('hex');
  const cfgHttp = config('http', peer.port, { type: 'none' });
  const ch = JSON.parse(fs.readFileSync(cfgHttp, 'utf8'));
  ch.programs[0].intake_token_sha256 = hash;
  const opsToken = 'ops-test-token-7';
  ch.ops = { token_sha256: [require('crypto').createHash('sha256').update(opsToken).digest('hex')] };
  fs.writeFileSync(cfgHttp, JSON.stringify(ch));
  const cq = Number((run(['ingest', '-c', cfgHttp, path.join(sample, 'consents.csv')]).err
    .match(/(\d+) deliveries queued/) || [])[1]);
  sv = serveAsync(cfgHttp);
  let hport = 0;
  for (let i = 0; i < 100 && !hport; i++) {
    await sleep(50);
    const st = events(sv.log(), 'started');
    if (st.length) hport = st[0].http_port;
  }
  check(hport > 0, `serve listens for HTTP (port ${hport})`);
  const post = (tok, q, body) => new Promise((resolve, reject) => {
    const h = http.request({ host: '127.0.0.1', port: hport, method: 'POST', path: `/hv/sunrise-hv/records${q}`,
      headers: Object.assign({ 'content-type': 'text/csv' }, tok ? { authorization: `Bearer ${tok}` } : {}) }, (res) => {
      let b = '';
      res.on('data', (c) => { b += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: b }));
    });
    h.on('error', reject);
    h.end(body);
  });
  const csvBody = fs.readFileSync(path.join(sample, 'screenings.csv'));
  let hr = await post('wrong-token', '?source=screenings', csvBody);
  check(hr.status === 401, `intake with a wrong token: 401 (${hr.status})`);
  hr = await post(null, '?source=screenings', csvBody);
  check(hr.status === 401, `intake without a token: 401 (${hr.status})`);
  hr = await post(token, '?source=screenings', csvBody);
  const rep = hr.status === 202 ? JSON.parse(hr.body) : {};
  check(hr.status === 202 && rep.records === 157 && rep.rejected === 6 && rep.new === 151,
    `intake: 202, 157 records, 6 rejected, 151 stored (${hr.status} ${hr.body.slice(0, 200)})`);
  check((rep.issues || []).some((l) => l.startsWith('body:5: screen_date: 2026-02-30 does not exist')),
    'intake reports rejected rows as body:line: field: reason');
  const getText = (p, tok) => new Promise((resolve) => http.get({ host: '127.0.0.1', port: hport, path: p,
    headers: tok ? { authorization: `Bearer ${tok}` } : {} },
  (res) => { let b = ''; res.on('data', (c) => { b += c; }); res.on('end', () => resolve({ status: res.statusCode, body: b })); }));
  const want = cq + rep.queued; /* the consents ingested before, and these */
  for (let i = 0; i < 200 && events(sv.log(), 'delivered').length < want; i++) await sleep(100);
  check(rep.queued > 0 && events(sv.log(), 'delivered').length === want,
    `records posted over HTTP are delivered (${events(sv.log(), 'delivered').length} of ${want})`);
  check((await getText('/healthz')).status === 200, '/healthz: 200 (no credential needed)');
  check((await getText('/readyz')).status === 401 && (await getText('/metrics')).status === 401 &&
    (await getText('/metrics', token)).status === 401,
  '/readyz and /metrics without the operations token (or with the program\'s): 401');
  check((await getText('/readyz', opsToken)).status === 200, '/readyz with the operations token: 200');
  const met = await getText('/metrics', opsToken);
  check(met.status === 200 && /hvgate_deliveries_total\{partner="riverside-peds",outcome="delivered"\} [1-9]/.test(met.body) &&
    /hvgate_queue_pending\{partner="riverside-peds"\} 0/.test(met.body) && /hvgate_delivery_seconds_bucket/.test(met.body),
    '/metrics: deliveries, queue depth, latency', met.body.slice(0, 400));
  sv.proc.kill('SIGTERM');
  res = await sv.done;
  check(res.rc === 0, 'SIGTERM with HTTP: clean exit');
  await stopPeer(peer);

  // ---- 8: dead letter and replay -----------------------------------------
  peer = await startPeer(['--auth', 'none']);
  const cfgDead = config('dead', peer.port, { type: 'none' });
  r = ingest(cfgDead, sampleFiles);
  const q8 = Number((r.err.match(/(\d+) deliveries queued/) || [])[1]);
  await req(peer.port, 'POST', '/_peer/fault', { status: 422, count: 1 });
  r = run(['serve', '-c', cfgDead, '--drain', '--timeout', '60']);
  const dl = events(r.err, 'dead_letter');
  check(r.rc === 0 && dl.length === 1 && dl[0].http_status === 422 && events(r.err, 'delivered').length === q8 - 1,
    `a refused Bundle becomes one dead letter, the others go (${dl.length}, ${events(r.err, 'delivered').length})`);
  check(dl.length === 1 && /injected fault/.test(dl[0].detail || ''), 'the dead letter keeps the server\'s diagnostics', JSON.stringify(dl[0]));
  let stt = run(['status', '-c', cfgDead]);
  check(/riverside-peds\s+0\s+0\s+1\s/.test(stt.out) || /county-ei\s+0\s+0\s+1\s/.test(stt.out), 'status shows the dead letter', stt.out);
  r = run(['replay', '-c', cfgDead, '--all']);
  check(r.rc === 0 && /1 dead letter queued again/.test(r.out), 'replay --all queues it again', r.out + r.err);
  r = run(['serve', '-c', cfgDead, '--drain', '--timeout', '60']);
  check(events(r.err, 'delivered').length === 1, 'the replayed Bundle is delivered');
  check((await exactlyOnce(peer, dl.map((e) => ({ record_type: e.record_type, record_id: e.record_id })))) === 0,
    'the replayed record is on the server once');
  await stopPeer(peer);

  // ---- 9: static bearer token ---------------------------------------------
  const tokFile = path.join(work, 'bearer.token');
  fs.writeFileSync(tokFile, 'static-token-for-the-peer\n');
  peer = await startPeer(['--auth', 'bearer', '--bearer-token-file', tokFile]);
  const cfgBearer = config('bearer', peer.port, { type: 'bearer', token_file: tokFile });
  r = ingest(cfgBearer, [path.join(sample, 'consents.csv')]);
  const q9 = Number((r.err.match(/(\d+) deliveries queued/) || [])[1]);
  r = run(['serve', '-c', cfgBearer, '--drain', '--timeout', '60']);
  check(r.rc === 0 && q9 > 0 && events(r.err, 'delivered').length === q9, `bearer token: ${q9} delivered`, r.err.slice(-300));
  await stopPeer(peer);

  // ---- 10: TLS and mutual TLS -------------------------------------------
  const leaf = H.testPki(work);
  leaf('server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'extendedKeyUsage=clientAuth\n');
  const w = (f) => path.join(work, f);
  peer = await startPeer(['--auth', 'none', '--tls-cert', w('server.pem'), '--tls-key', w('server.key'), '--tls-ca', w('ca.pem')]);
  const tlsCfg = (tls) => {
    const f = config('tls', peer.port, { type: 'none' });
    const c = JSON.parse(fs.readFileSync(f, 'utf8'));
    for (const p of c.partners) {
      p.base_url = `https://127.0.0.1:${peer.port}/fhir/R4`;
      if (tls) p.tls = tls;
    }
    fs.writeFileSync(f, JSON.stringify(c));
    return f;
  };
  let cfgTls = tlsCfg({ ca_file: w('ca.pem') }); /* no client certificate */
  r = ingest(cfgTls, [path.join(sample, 'consents.csv')]);
  const q10 = Number((r.err.match(/(\d+) deliveries queued/) || [])[1]);
  r = run(['serve', '-c', cfgTls, '--drain', '--timeout', '3']);
  check(r.rc === 69 && events(r.err, 'delivered').length === 0 && events(r.err, 'retry').length > 0,
    'mutual TLS: without a client certificate nothing is sent, it is retried', r.err.slice(-300));
  cfgTls = tlsCfg(null); /* the system's CAs do not know the test CA */
  r = run(['serve', '-c', cfgTls, '--drain', '--timeout', '3']);
  check(r.rc === 69 && events(r.err, 'delivered').length === 0 &&
    events(r.err, 'retry').some((e) => /certificate|SSL/i.test(e.detail || '')),
    'TLS: a server certificate the partner\'s CAs do not vouch for is refused', r.err.slice(-300));
  cfgTls = tlsCfg({ ca_file: w('ca.pem'), client_cert_file: w('client.pem'), client_key_file: w('client.key') });
  r = run(['serve', '-c', cfgTls, '--drain', '--timeout', '60']);
  check(r.rc === 0 && q10 > 0 && events(r.err, 'delivered').length === q10,
    `TLS verified with the partner's CA and a client certificate: ${q10} delivered`, r.err.slice(-300));
  await stopPeer(peer);

  // ---- 11: consent revoked while records wait -----------------------------
  peer = await startPeer(['--auth', 'none']);
  const cfgRev = config('revoke', peer.port, { type: 'none' });
  r = ingest(cfgRev, sampleFiles);
  const revoked = path.join(work, 'consents.csv');
  fs.writeFileSync(revoked, fs.readFileSync(path.join(sample, 'consents.csv'), 'utf8')
    .replace(/^(C000001,F00001,CG00001,1234567893,"[^"]*",2026-01-09,2027-01-09,)$/m, '$12026-11-20'));
  r = ingest(cfgRev, [revoked]);
  check(/1 changed/.test(r.err), 'the revocation is ingested as a changed consent', r.err.slice(-200));
  r = run(['serve', '-c', cfgRev, '--drain', '--timeout', '60']);
  const wh = events(r.err, 'withheld_consent');
  check(r.rc === 0 && wh.length > 0 && wh.every((e) => e.partner === 'riverside-peds'),
    `records queued under the revoked consent are withheld (${wh.length})`, r.err.slice(-300));
  const s2 = await search(peer, 'Observation', `${base}screening`, 'S0000002');
  check(s2.length === 0, 'a withheld screening is not on the server');
  const c1 = await search(peer, 'Consent', `${base}consent`, 'C000001');
  check(c1.length === 1 && c1[0].status === 'inactive', 'the revoked Consent itself is sent, inactive',
    JSON.stringify(c1.map((c) => c.status)));
  await stopPeer(peer);

  console.log(H.failures ? `deliver: ${H.failures} failed` : 'deliver: ok');
  process.exit(H.failures ? 1 : 0);
})().catch((e) => { console.log(`FAIL: ${e.stack}`); process.exit(1); });
