import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { curl } from '../support/curl.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import { OpensslPki } from '../support/openssl-ca.js';
import { RegistrationCurl } from './registration-support.js';

/** Chain enrollment (issue 11) for an identity that requires its owner's confirmation. */
describe('owner confirmation of a device enrolled by certificate chain', function () {
  this.timeout(180_000);
  const fx = useFixture({
    FLEETGATE_BIND_FAILURES_PER_ADDRESS: '0',
    FLEETGATE_REGISTRATION_POLL_INTERVAL_MS: '0',
  });
  let pki: OpensslPki;
  let dev: RegistrationCurl;
  let caFile: string;
  before(() => {
    pki = new OpensslPki(fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-pki-')));
    caFile = path.join(pki.dir, 'server-ca.pem');
    fs.writeFileSync(caFile, fx().server.caPem);
    dev = new RegistrationCurl(fx, pki.dir);
  });
  after(() => fs.rmSync(pki.dir, { recursive: true, force: true }));

  const as = (device: string, args: string[]) =>
    curl([
      '--cacert',
      caFile,
      '--cert',
      pki.chainFile(device, []),
      '--key',
      pki.file(`${device}.key`),
      ...args,
    ]);
  const url = (suffix = '') => `https://localhost:${fx().server.port}/device_endpoint${suffix}`;
  const upload = (device: string) => {
    const file = pki.file(`${device}.csv`);
    fs.writeFileSync(file, '1526292559214,95\n');
    return as(device, ['-F', `temp=@${file};type=text/plain`, url()]);
  };
  /** What the owner reads off the device's label: the serial's last 4 hex digits. */
  const serial4 = (device: string) =>
    new X509Certificate(fs.readFileSync(pki.file(`${device}.crt`))).serialNumber.slice(-4);

  it('answers 202 to {} enrollment, refuses a first upload, and registers after confirmation', async () => {
    const identity = uniqueName('vendor');
    const root = `${identity}-root`;
    pki.root(root);
    await dev.ok(['identity', 'create', identity, '--require-confirmation']);
    await dev.ok(['ca', 'trust', identity, pki.file(`${root}.crt`)]);

    // A first upload cannot show a PIN: it is refused, and nothing is enrolled.
    const uploader = `${identity}-up`;
    pki.issue(uploader, root, { cn: 'chip-up' });
    const refused = await upload(uploader);
    expect(refused.status, refused.text).to.equal(403);
    expect(refused.json.code).to.equal('device_pending_confirmation');

    const device = `${identity}-dev`;
    pki.issue(device, root, { cn: 'chip-0001' });
    const enrolled = await as(device, ['-H', 'Content-Type: application/json', '-d', '{}', url()]);
    expect(enrolled.status, enrolled.text).to.equal(202);
    expect(enrolled.json.status).to.equal('PENDING_USER_CONFIRMATION');
    const { rid, pin, nonce } = enrolled.json;
    expect((await upload(device)).json.code).to.equal('device_pending_confirmation');
    const confirmed = await dev.confirm(identity, pin, serial4(device));
    expect(confirmed.status, confirmed.text).to.equal(200);
    const done = await as(device, [
      '-X',
      'PUT',
      '-H',
      'Content-Type: application/json',
      '-d',
      JSON.stringify({ nonce }),
      url(`/registrations/${rid}`),
    ]);
    expect(done.status, done.text).to.equal(200);
    expect(done.json).to.include({ status: 'REGISTERED', identity });
    const up = await upload(device);
    expect(up.status, up.text).to.equal(200);
    // Enrolling again once registered is the ordinary repeat.
    const again = await as(device, ['-H', 'Content-Type: application/json', '-d', '{}', url()]);
    expect(again.status).to.equal(200);
    expect(again.json.status).to.equal('already_bound');
  });
});
