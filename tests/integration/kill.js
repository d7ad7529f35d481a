#!/usr/bin/env node
// Crash safety of delivery: 10,000 generated screening records are queued,
// then `hvgate serve` is killed with SIGKILL at random moments while it
// delivers and started again each time. In the end every record is on the
// FHIR server exactly once: as many Observations as records (conditional
// creates absorb the Bundles a killed daemon sent but could not
// acknowledge), and the store counts every record delivered.
// usage: kill.js HVGATE GEN_RECORDS SOURCE_DIR WORK_DIR [RECORDS]
'use strict';
const { spawn, spawnSync } = require('child_process');
const fs = require('fs');
const http = require('http');
const path = require('path');

const args = process.argv.slice(2);
const [hvgate, gen, src, work] = args.slice(0, 4).map((a) => path.resolve(a));
const nrec = Number(args[4] || 10000);
let failures = 0;
const check = (ok, what, extra) => {
  if (!ok) failures++;
  console.log(`${ok ? 'ok' : 'FAIL'}: ${what}${!ok && extra ? `\n${extra}` : ''}`);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });

function get(port, p) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p }, (res) => {
      let s = '';
      res.on('data', (c) => { s += c; });
      res.on('end', () => resolve(JSON.parse(s)));
    }).on('error', reject);
  });
}

(async () => {
  // the records, and one partner that takes them all without consent
  const csv = path.join(work, 'screenings.csv');
  let r = spawnSync(gen, ['--records', String(nrec), '--seed', '7', '-o', csv], { encoding: 'utf8' });
  check(r.status === 0, `generated ${nrec} records`, r.stderr);
  const npis = new Set(fs.readFileSync(csv, 'utf8').split('\n').slice(1)
    .map((l) => l.split(',')[12]).filter((x) => x));

  const ready = path.join(work, 'peer.ready');
  const peer = spawn('node', [path.join(src, 'tests/peer/server.js'), '--port', '0', '--auth', 'none',
    '--quiet', '--ready-file', ready], { stdio: 'ignore' });
  for (let i = 0; i < 200 && !fs.existsSync(ready); i++) await sleep(50);
  const port = Number(fs.readFileSync(ready, 'utf8'));

  const cfg = path.join(work, 'hvgate.json');
  fs.writeFileSync(cfg, JSON.stringify({
    store: { sqlite: path.join(work, 'hvgate.db') },
    listen: '127.0.0.1:0',
    programs: [{ id: 'sunrise-hv', mapping: path.join(src, 'conf/mappings/program-export.json') }],
    partners: [{
      id: 'all-practices', organization_ids: [...npis], base_url: `http://127.0.0.1:${port}/fhir/R4`,
      receives: { record_types: ['screening'], sensitivity: ['mental-health', 'partner-violence', 'substance-use'] },
      consent: 'not_required', auth: { type: 'none' }, workers: 2,
    }],
  }, null, 2));
  r = spawnSync(hvgate, ['ingest', '-c', cfg, csv], { encoding: 'utf8' });
  const queued = Number((r.stderr.match(/(\d+) deliveries queued/) || [])[1]);
  check(r.status === 0 && queued > nrec * 0.9, `ingest: ${queued} queued`, r.stderr.slice(-400));

  const delivered = () => {
    const s = spawnSync(hvgate, ['status', '-c', cfg], { encoding: 'utf8' }).stdout;
    const row = s.split('\n').find((l) => l.startsWith('all-practices'));
    return row ? Number(row.trim().split(/\s+/)[4]) : -1;
  };
  let kills = 0, midway = 0;
  const rnd = (() => { let x = 12345; return () => { x = (x * 1103515245 + 12345) % 2147483648; return x / 2147483648; }; })();
  while (kills < 40) {
    const before = delivered();
    if (before >= queued) break;
    const d = spawn(hvgate, ['serve', '-c', cfg], { stdio: 'ignore' });
    await sleep(300 + Math.floor(rnd() * 1200));
    d.kill('SIGKILL');
    await new Promise((res) => d.once('exit', res));
    kills++;
    const after = delivered();
    if (after > before && after < queued) midway++;
  }
  r = spawnSync(hvgate, ['serve', '-c', cfg, '--drain', '--timeout', '300'], { encoding: 'utf8' });
  check(r.status === 0, `after ${kills} kills (${midway} in the middle of the work), serve --drain finishes`, r.stderr.slice(-400));
  check(midway >= 3, `kills landed while delivering (${midway})`);
  const done = delivered();
  check(done === queued, `the store counts ${done} of ${queued} delivered`);
  const st = await get(port, '/_peer/stats');
  const obs = st.resources.Observation || 0;
  check(obs === queued, `the server holds ${obs} Observations for ${queued} records: none lost, none twice`);
  console.log(`  transactions received ${st.transactions.received}, resent after kills: ${st.transactions.received - queued}`);
  peer.kill('SIGTERM');
  console.log(failures ? `kill: ${failures} failed` : 'kill: ok');
  process.exit(failures ? 1 : 0);
})().catch((e) => { console.log(`FAIL: ${e.stack}`); process.exit(1); });
