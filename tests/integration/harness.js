// What the Node integration tests (deliver.js, loop.js) share: checks that
// count failures, a fresh work directory, HTTP over loopback, and child
// processes that never outlive the test (a test that dies on an exception
// must not leave a peer or a daemon running: they would hold ports and CPU
// for whatever runs next).
'use strict';
const { spawn, spawnSync } = require('child_process');
const fs = require('fs');
const http = require('http');
const path = require('path');

const children = new Set();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

const harness = {
  failures: 0,
  // check(ok, what, extra): prints "ok: what" or "FAIL: what" (+ extra,
  // cut at 1,500 characters) and counts failures. Returns ok.
  check(ok, what, extra) {
    if (!ok) {
      harness.failures++;
      console.log(`FAIL: ${what}${extra ? `\n${String(extra).slice(0, 1500)}` : ''}`);
    } else {
      console.log(`ok: ${what}`);
    }
    return ok;
  },
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  freshDir(dir) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
  },
  // spawn() whose child is killed when the test process exits.
  spawnChild(cmd, args, opts) {
    const p = spawn(cmd, args, opts);
    children.add(p);
    p.once('exit', () => children.delete(p));
    return p;
  },
  // The FHIR test peer (tests/peer/server.js) on a free port, its output
  // appended to WORK/peer.log. Resolves { proc, port }.
  async startPeer(peerJs, work, args, port = 0) {
    const ready = path.join(work, `peer-ready-${process.hrtime.bigint()}`);
    const log = fs.openSync(path.join(work, 'peer.log'), 'a');
    const p = harness.spawnChild('node', [peerJs, '--port', String(port), '--ready-file', ready, '--quiet', ...args],
      { stdio: ['ignore', log, log] });
    for (let i = 0; i < 200 && !fs.existsSync(ready); i++) await harness.sleep(50);
    fs.closeSync(log);
    if (!fs.existsSync(ready)) throw new Error(`the test peer did not start (see ${work}/peer.log)`);
    return { proc: p, port: Number(fs.readFileSync(ready, 'utf8').trim()) };
  },
  // One HTTP exchange on 127.0.0.1: resolves { status, headers, text }.
  // body: a string (sent as is) or a value (sent as JSON).
  request(port, method, p, { headers = {}, body = null } = {}) {
    return new Promise((resolve, reject) => {
      const data = body === null ? null : typeof body === 'string' ? body : JSON.stringify(body);
      const h = http.request({ host: '127.0.0.1', port, method, path: p,
        headers: data !== null ? { 'content-length': Buffer.byteLength(data), ...headers } : headers }, (res) => {
        let s = '';
        res.setEncoding('utf8');
        res.on('data', (c) => { s += c; });
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: s }));
      });
      h.on('error', reject);
      if (data !== null) h.write(data);
      h.end();
    });
  },
  // A throwaway CA in dir (ca.pem, ca.key) and leaf(name, ext): a key
  // (name.key) and a certificate the CA signs (name.pem) with the given
  // openssl extensions, e.g. 'extendedKeyUsage=clientAuth\n'.
  testPki(dir) {
    const ossl = (...a) => spawnSync('openssl', a, { cwd: dir, encoding: 'utf8' });
    ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2',
      '-subj', '/CN=hvgate test CA');
    return (name, ext) => {
      ossl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
      fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
      ossl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
        '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
    };
  },
  json(r) {
    try { return JSON.parse(r.text); } catch (e) { return null; }
  },
};
module.exports = harness;
