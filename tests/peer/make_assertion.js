#!/usr/bin/env node
// Print a SMART Backend Services client assertion (a JWT signed RS384 or
// ES384) for tests of the peer's token endpoint and of hvgate's client.
//   node make_assertion.js --key PRIVATE.pem --alg RS384|ES384 --client ID
//        --aud TOKEN_URL [--kid KID] [--jti JTI] [--exp-in SECONDS]
//        [--sub SUB] [--typ TYP]
// --exp-in defaults to 240 (negative values make an expired assertion);
// --jti defaults to a random UUID. ES384 signatures are JOSE r||s (96 bytes).
'use strict';
const crypto = require('crypto');
const fs = require('fs');

const o = { alg: 'RS384', expIn: 240, typ: 'JWT' };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const v = argv[i + 1];
  switch (argv[i]) {
    case '--key': o.key = v; break;
    case '--alg': o.alg = v; break;
    case '--client': o.client = v; break;
    case '--aud': o.aud = v; break;
    case '--kid': o.kid = v; break;
    case '--jti': o.jti = v; break;
    case '--exp-in': o.expIn = Number(v); break;
    case '--sub': o.sub = v; break;
    case '--typ': o.typ = v; break;
    default:
      process.stderr.write(`make_assertion: unknown argument ${argv[i]}\n`);
      process.exit(2);
  }
  i++;
}
if (!o.key || !o.client || !o.aud || !['RS384', 'ES384'].includes(o.alg)) {
  process.stderr.write('usage: make_assertion.js --key PEM --alg RS384|ES384 --client ID --aud URL [--kid K] [--jti J] [--exp-in S] [--sub SUB] [--typ TYP]\n');
  process.exit(2);
}
const key = crypto.createPrivateKey(fs.readFileSync(o.key));
const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
const header = { alg: o.alg, typ: o.typ };
if (o.kid) header.kid = o.kid;
const now = Math.floor(Date.now() / 1000);
const claims = {
  iss: o.client,
  sub: o.sub ?? o.client,
  aud: o.aud,
  exp: now + o.expIn,
  iat: now,
  jti: o.jti ?? crypto.randomUUID(),
};
const input = `${b64(header)}.${b64(claims)}`;
const sig = crypto.sign('sha384', Buffer.from(input), o.alg === 'ES384' ? { key, dsaEncoding: 'ieee-p1363' } : key);
process.stdout.write(`${input}.${sig.toString('base64url')}\n`);
