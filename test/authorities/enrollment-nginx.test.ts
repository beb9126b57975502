import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { curl } from '../support/curl.js';
import { startFleetgate } from '../support/fleetgate-process.js';
import {
  skipUnlessNginx,
  startBehindNginx,
  type ProxiedFleetgate,
} from '../support/nginx-front.js';
import { OpensslPki } from '../support/openssl-ca.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';

/**
 * Chain enrollment behind a real nginx. nginx forwards only the leaf, so a
 * device enrolls there when its certificate is issued directly by a trusted CA
 * (factory bundles are; for a vendor chain, trust the intermediate too).
 */
describe('enrollment by certificate chain behind nginx', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let front: ProxiedFleetgate;
  let pki: OpensslPki;

  before(async function () {
    skipUnlessNginx(this);
    db = await createTestDatabase({ migrated: true });
    front = await startBehindNginx((env) => startFleetgate(db, env), db.workDir);
    pki = new OpensslPki(fs.mkdtempSync(path.join(db.workDir, 'pki-')));
  });
  after(async () => {
    await front?.stop();
    await db?.drop();
  });

  const ok = async (args: string[]) => {
    const r = await front.app.cli(args);
    if (r.code !== 0) throw new Error(`fleetgate ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const enroll = (device: string, chain: string[]) =>
    curl([
      '--cacert',
      front.nginx.caPath,
      '--cert',
      pki.chainFile(device, chain),
      '--key',
      pki.file(`${device}.key`),
      '-H',
      'Content-Type: application/json',
      '-d',
      '{}',
      `${front.nginx.baseUrl}/device_endpoint`,
    ]);

  it('enrolls a device issued by a trusted CA; a vendor chain needs its intermediate trusted', async () => {
    await ok(['identity', 'create', 'proxied']);
    pki.root('proxied-root');
    await ok(['ca', 'trust', 'proxied', pki.file('proxied-root.crt')]);
    pki.issue('direct-dev', 'proxied-root');
    const direct = await enroll('direct-dev', []);
    expect(direct.status, direct.text).to.equal(200);
    expect(direct.json.status).to.equal('enrolled');

    pki.issue('proxied-inter', 'proxied-root', {
      ext: 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign',
    });
    pki.issue('chained-dev', 'proxied-inter');
    const incomplete = await enroll('chained-dev', ['proxied-inter']);
    expect(incomplete.status, incomplete.text).to.equal(403);
    expect(incomplete.json.code).to.equal('chain_incomplete');
    await ok(['ca', 'trust', 'proxied', pki.file('proxied-inter.crt')]);
    const chained = await enroll('chained-dev', ['proxied-inter']);
    expect(chained.status, chained.text).to.equal(200);
  });
});
