import { expect } from 'chai';
import { createHash, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { curl } from '../support/curl.js';
import { cliOk } from '../support/device-pki.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import { issueWithCaDir } from '../support/openssl-cli.js';

describe('fleetgate device replace-cert (an admin renews a provisioned device)', () => {
  const fx = useFixture();
  let work: string;
  before(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-replace-'));
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  const ok = (args: string[]) => cliOk(fx().server, args);
  const fp = (file: string) =>
    createHash('sha256')
      .update(new X509Certificate(fs.readFileSync(file)).raw)
      .digest('hex');

  it('keeps the device, its name and its data; the old certificate is refused; another CN is refused', async () => {
    const identity = uniqueName('renew');
    const caDir = path.join(work, `${identity}-ca`);
    await ok(['identity', 'create', identity]);
    await ok(['ca', 'create', identity, '--out', caDir]);
    const serverCa = path.join(work, 'server-ca.pem');
    fs.writeFileSync(serverCa, fx().server.caPem);
    const url = `https://localhost:${fx().server.port}/device_endpoint`;
    const upload = (base: string, line: string) => {
      const file = `${base}-${line.split(',')[0]}.csv`;
      fs.writeFileSync(file, `${line}\n`);
      return curl([
        '--cacert',
        serverCa,
        '--cert',
        `${base}.crt`,
        '--key',
        `${base}.key`,
        '-F',
        `t=@${file};type=text/plain`,
        url,
      ]);
    };
    const old = path.join(work, `${identity}-old`);
    const renewed = path.join(work, `${identity}-new`);
    const other = path.join(work, `${identity}-other`);
    issueWithCaDir(caDir, old, '02:00:00:00:00:07');
    issueWithCaDir(caDir, renewed, '02:00:00:00:00:07');
    issueWithCaDir(caDir, other, '02:00:00:00:00:08');
    expect((await upload(old, '1700000000000,1')).status).to.equal(200);

    // Without the admin, the new certificate is another device wanting the same name.
    const hijack = await upload(renewed, '1700000001000,2');
    expect(hijack.status, hijack.text).to.equal(409);
    expect(hijack.json.code).to.equal('device_name_taken');

    const wrongName = await fx().server.cli([
      'device',
      'replace-cert',
      fp(`${old}.crt`),
      `${other}.crt`,
    ]);
    expect(wrongName.code).to.equal(1);
    expect(wrongName.stderr).to.contain('02:00:00:00:00:07');

    await ok(['device', 'replace-cert', fp(`${old}.crt`), `${renewed}.crt`]);
    const after = await upload(renewed, '1700000002000,3');
    expect(after.status, after.text).to.equal(200);
    const refused = await upload(old, '1700000003000,4');
    expect(refused.status).to.equal(403);
    expect(refused.json.code).to.equal('certificate_retired');
    // Same device: its series holds the points of both certificates.
    expect(await ok(['export', fp(`${renewed}.crt`), 't'])).to.equal(
      '1700000000000,1\n1700000002000,3\n',
    );
    const audit = JSON.parse(
      await ok(['audit', identity, '--action', 'certificate.replaced', '--json']),
    );
    expect(audit.events).to.have.length(1);
  });
});
