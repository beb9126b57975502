import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import { curl } from '../support/curl.js';
import { fixtureEndpoint, INTERMEDIATE_EXT, useDevicePki } from '../support/device-pki.js';
import { useFixture, uniqueName } from '../support/fixture.js';

/**
 * Enrollment by certificate chain, with no PSK (issue 11). The hierarchies
 * are made with the openssl CLI, and curl presents leaf + intermediate files.
 */
describe('enrollment by certificate chain', () => {
  const fx = useFixture({ FLEETGATE_BIND_FAILURES_PER_ADDRESS: '0' });
  const ca = useDevicePki(fixtureEndpoint(() => fx().server));
  const { ok, url, enroll, upload } = ca;
  const cli = async (args: string[]) => fx().server.cli(args);

  /** A root trusted by a new identity, and an intermediate under it. */
  async function vendor(options: { maxDevices?: number } = {}) {
    const identity = uniqueName('vendor');
    const root = `${identity}-root`;
    const inter = `${identity}-inter`;
    ca.pki.root(root);
    ca.pki.issue(inter, root, { ext: INTERMEDIATE_EXT });
    const create = ['identity', 'create', identity];
    if (options.maxDevices) create.push('--max-devices', String(options.maxDevices));
    await ok(create);
    await ok(['ca', 'trust', identity, ca.pki.file(`${root}.crt`)]);
    return { identity, root, inter };
  }

  it('enrolls a device chained through an intermediate with {} in one call (200), then it uploads', async () => {
    const { identity, inter } = await vendor();
    const device = `${identity}-dev1`;
    ca.pki.issue(device, inter, { cn: 'aa:bb:cc:00:00:01' });
    const answer = await enroll(device, [inter]);
    expect(answer.status, answer.text).to.equal(200);
    expect(answer.json).to.include({ status: 'enrolled', identity, name: 'aa:bb:cc:00:00:01' });
    const again = await enroll(device, [inter]);
    expect(again.json.status).to.equal('already_bound');
    const up = await upload(device, [inter], '1526292559214,95\n');
    expect(up.status, up.text).to.equal(200);
    expect(up.json.stored).to.equal(1);
    // Through the CLI, so this runs on the embedded database too.
    const shown = JSON.parse(await ok(['device', 'show', answer.json.fingerprint, '--json']));
    expect(shown.identity).to.equal(identity);
    expect(shown.pskId).to.equal(null);
    expect(shown.enrolledByCa).to.match(/^[0-9a-f]{64}$/);
    const audit = await ok(['audit', identity, '--action', 'device.enrolled', '--json']);
    // --json prints the admin API's body: `{"events": [...], "nextCursor"}`.
    expect(JSON.parse(audit).events).to.have.length(1);
  });

  it('enrolls on the first upload directly', async () => {
    const { identity, inter } = await vendor();
    const device = `${identity}-dev2`;
    ca.pki.issue(device, inter, { cn: 'first-upload' });
    const up = await upload(device, [inter], '1526292559214,95\n1526292559215,96\n');
    expect(up.status, up.text).to.equal(200);
    expect(up.json.stored).to.equal(2);
  });

  it('refuses a leaf sent without its intermediate: 403 chain_incomplete', async () => {
    const { identity, inter } = await vendor();
    const device = `${identity}-dev3`;
    ca.pki.issue(device, inter);
    const answer = await enroll(device, []);
    expect(answer.status, answer.text).to.equal(403);
    expect(answer.json.code).to.equal('chain_incomplete');
    expect(answer.json.error).to.contain('intermediate');
    // No CA was found, so the refusal belongs to no identity: find it by the device.
    const fingerprint = new X509Certificate(
      fs.readFileSync(ca.pki.file(`${device}.crt`)),
    ).fingerprint256
      .replace(/:/g, '')
      .toLowerCase();
    const refused = JSON.parse(
      await ok(['audit', '--device', fingerprint, '--action', 'device.enroll_refused', '--json']),
    );
    expect(refused.events[0].details.code).to.equal('chain_incomplete');
  });

  it('refuses a chain to a root nobody trusts: 403 ca_untrusted', async () => {
    const name = uniqueName('rogue');
    ca.pki.root(`${name}-root`);
    ca.pki.issue(`${name}-inter`, `${name}-root`, { ext: INTERMEDIATE_EXT });
    ca.pki.issue(`${name}-dev`, `${name}-inter`);
    const answer = await enroll(`${name}-dev`, [`${name}-inter`, `${name}-root`]);
    expect(answer.status, answer.text).to.equal(403);
    expect(answer.json.code).to.equal('ca_untrusted');
  });

  it('refuses a device revoked by its CA’s CRL: 403 certificate_revoked_by_ca', async () => {
    const { identity, root } = await ca.trustedRoot('crl');
    ca.pki.issue(`${identity}-dev`, root);
    ca.pki.revoke(`${identity}-dev`, root);
    await ok(['ca', 'crl', identity, ca.pki.crl(root)]);
    const answer = await enroll(`${identity}-dev`, []);
    expect(answer.status, answer.text).to.equal(403);
    expect(answer.json.code).to.equal('certificate_revoked_by_ca');
  });

  it('refuses a chain with an expired intermediate', async () => {
    const identity = uniqueName('expired');
    const root = `${identity}-root`;
    ca.pki.root(root);
    ca.pki.issue(`${identity}-inter`, root, {
      ext: INTERMEDIATE_EXT,
      startDate: '20200101000000Z',
      endDate: '20210101000000Z',
    });
    ca.pki.issue(`${identity}-dev`, `${identity}-inter`);
    await ok(['identity', 'create', identity]);
    await ok(['ca', 'trust', identity, ca.pki.file(`${root}.crt`)]);
    const answer = await enroll(`${identity}-dev`, [`${identity}-inter`]);
    expect(answer.status, answer.text).to.equal(403);
    expect(answer.json.code).to.equal('chain_invalid');
    expect(answer.json.error).to.contain('expired');
  });

  it('refuses an issuer that is not a CA, and a path longer than pathlen allows', async () => {
    const identity = uniqueName('shape');
    const root = `${identity}-root`;
    ca.pki.root(
      root,
      'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign',
    );
    await ok(['identity', 'create', identity]);
    await ok(['ca', 'trust', identity, ca.pki.file(`${root}.crt`)]);
    // An intermediate below a pathlen:0 root.
    ca.pki.issue(`${identity}-inter`, root, { ext: INTERMEDIATE_EXT });
    ca.pki.issue(`${identity}-dev`, `${identity}-inter`);
    const tooDeep = await enroll(`${identity}-dev`, [`${identity}-inter`]);
    expect(tooDeep.status, tooDeep.text).to.equal(403);
    expect(tooDeep.json.code).to.equal('chain_invalid');
    expect(tooDeep.json.details.reason).to.equal('path_length_exceeded');
    // A "CA" without CA:TRUE. (One whose keyUsage also lacks keyCertSign never
    // reaches the app: Node links the sent certificates by OpenSSL's issuer check,
    // which drops it, so the device gets chain_incomplete; refused either way.)
    ca.pki.issue(`${identity}-fake`, root, { ext: 'basicConstraints=critical,CA:FALSE' });
    ca.pki.issue(`${identity}-dev2`, `${identity}-fake`);
    const notCa = await enroll(`${identity}-dev2`, [`${identity}-fake`]);
    expect(notCa.status, notCa.text).to.equal(403);
    expect(notCa.json.details?.reason, notCa.text).to.equal('not_a_ca');
  });

  it('refuses a second certificate for an active name, even from the same CA: 409 device_name_taken', async () => {
    const { identity, inter } = await vendor();
    ca.pki.issue(`${identity}-a`, inter, { cn: 'same-name' });
    ca.pki.issue(`${identity}-b`, inter, { cn: 'same-name' });
    expect((await enroll(`${identity}-a`, [inter])).status).to.equal(200);
    const second = await enroll(`${identity}-b`, [inter]);
    expect(second.status, second.text).to.equal(409);
    expect(second.json.code).to.equal('device_name_taken');
  });

  it('holds the identity device limit under concurrent enrollments', async () => {
    const { identity, inter } = await vendor({ maxDevices: 3 });
    const names = Array.from({ length: 8 }, (_, i) => `${identity}-c${i}`);
    for (const n of names) ca.pki.issue(n, inter);
    const answers = await Promise.all(names.map((n) => enroll(n, [inter])));
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses.filter((s) => s === 200)).to.have.length(3);
    for (const a of answers.filter((x) => x.status !== 200)) {
      expect(a.status).to.equal(403);
      expect(a.json.code).to.equal('identity_device_limit');
    }
  });

  it('keeps PSK binding of self-signed certificates: {} from one is refused with ca_untrusted', async () => {
    const name = uniqueName('selfsigned');
    ca.pki.root(name, 'basicConstraints=critical,CA:FALSE');
    const answer = await enroll(name, []);
    expect(answer.status).to.equal(403);
    expect(answer.json.code).to.equal('ca_untrusted');
    const psk = await fx().identityWithPsk(uniqueName('psk'));
    const bind = await curl([
      '--cacert',
      ca.caFile,
      '--cert',
      ca.pki.file(`${name}.crt`),
      '--key',
      ca.pki.file(`${name}.key`),
      '-H',
      'Content-Type: application/json',
      '-d',
      JSON.stringify({ PSK: psk }),
      url(),
    ]);
    expect(bind.status, bind.text).to.equal(200);
    expect(bind.json.status).to.equal('bound');
  });

  it('gives a CA to one identity only: 409 ca_belongs_to_other_identity (CLI and admin API)', async () => {
    const { root } = await vendor();
    const other = uniqueName('other');
    await ok(['identity', 'create', other]);
    const r = await cli(['ca', 'trust', other, ca.pki.file(`${root}.crt`)]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain('another identity');
    const api = await fetch(`${fx().server.adminUrl}/v1/identities/${other}/cas`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${fx().server.adminToken}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ certificate: fs.readFileSync(ca.pki.file(`${root}.crt`), 'utf8') }),
    });
    expect(api.status).to.equal(409);
    expect(((await api.json()) as { code: string }).code).to.equal('ca_belongs_to_other_identity');
    const doc = (await (await fetch(`${fx().server.adminUrl}/openapi.json`)).json()) as {
      paths: Record<string, unknown>;
    };
    expect(Object.keys(doc.paths)).to.include('/v1/identities/{name}/cas');
  });
});
