import { expect } from 'chai';
import { INTERMEDIATE_EXT, useDevicePki } from '../support/device-pki.js';
import { startFleetgate } from '../support/fleetgate-process.js';
import {
  skipUnlessNginx,
  startBehindNginx,
  type ProxiedFleetgate,
} from '../support/nginx-front.js';
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

  before(async function () {
    skipUnlessNginx(this);
    db = await createTestDatabase({ migrated: true });
    front = await startBehindNginx((env) => startFleetgate(db, env), db.workDir);
  });
  after(async () => {
    await front?.stop();
    await db?.drop();
  });

  const ca = useDevicePki(() => ({
    server: front.app,
    caPem: front.nginx.caPem,
    baseUrl: front.nginx.baseUrl,
  }));
  const { ok, enroll } = ca;

  it('enrolls a device issued by a trusted CA; a vendor chain needs its intermediate trusted', async () => {
    await ok(['identity', 'create', 'proxied']);
    ca.pki.root('proxied-root');
    await ok(['ca', 'trust', 'proxied', ca.pki.file('proxied-root.crt')]);
    ca.pki.issue('direct-dev', 'proxied-root');
    const direct = await enroll('direct-dev', []);
    expect(direct.status, direct.text).to.equal(200);
    expect(direct.json.status).to.equal('enrolled');

    ca.pki.issue('proxied-inter', 'proxied-root', {
      ext: INTERMEDIATE_EXT,
    });
    ca.pki.issue('chained-dev', 'proxied-inter');
    const incomplete = await enroll('chained-dev', ['proxied-inter']);
    expect(incomplete.status, incomplete.text).to.equal(403);
    expect(incomplete.json.code).to.equal('chain_incomplete');
    await ok(['ca', 'trust', 'proxied', ca.pki.file('proxied-inter.crt')]);
    const chained = await enroll('chained-dev', ['proxied-inter']);
    expect(chained.status, chained.text).to.equal(200);
  });
});
