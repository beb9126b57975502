import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { useFixture } from '../support/fixture.js';
import { PROTOCOL_POINTS } from '../support/protocol-example.js';

/** The README walk-through, with nothing but openssl, curl and the fleetgate CLI. */
describe('README walk-through with openssl and curl', () => {
  const fx = useFixture();

  function curl(args: string[]): { status: number; body: string } {
    const out = execFileSync('curl', ['-sS', '-w', '\n%{http_code}', ...args], {
      encoding: 'utf8',
    });
    const cut = out.lastIndexOf('\n');
    return { body: out.slice(0, cut), status: Number(out.slice(cut + 1)) };
  }

  it('binds an openssl certificate, uploads with curl and exports the points', async () => {
    const dir = path.join(fx().db.workDir, 'walkthrough');
    fs.mkdirSync(dir);
    const key = path.join(dir, 'device.key');
    const crt = path.join(dir, 'device.crt');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        crt,
        '-subj',
        '/CN=sensor-0001',
        '-days',
        '365',
      ],
      { stdio: 'ignore' },
    );
    const fingerprint = execFileSync(
      'openssl',
      ['x509', '-in', crt, '-noout', '-fingerprint', '-sha256'],
      {
        encoding: 'utf8',
      },
    )
      .split('=')[1]!
      .trim()
      .replaceAll(':', '')
      .toLowerCase();

    expect((await fx().server.cli(['identity', 'create', 'walkthrough'])).code).to.equal(0);
    const issued = await fx().server.cli(['psk', 'issue', 'walkthrough', '--max-devices', '10']);
    expect(issued.stdout).to.match(/^fgpsk_[A-Za-z0-9_-]{43}\n$/);
    const psk = issued.stdout.trim();

    const ca = path.join(fx().server.env.FLEETGATE_CERTS_DIR!, 'dev-ca.crt');
    const url = `https://localhost:${fx().server.port}/device_endpoint`;
    const tls = ['--cacert', ca, '--cert', crt, '--key', key];
    const bind = curl([
      ...tls,
      '-H',
      'Content-Type: application/json',
      '-d',
      JSON.stringify({ PSK: psk }),
      url,
    ]);
    expect(bind.status).to.equal(200);
    expect(JSON.parse(bind.body)).to.include({ fingerprint, identity: 'walkthrough' });

    const file = path.join(dir, 'hr_measurement_2018_05_01');
    fs.writeFileSync(file, `${PROTOCOL_POINTS.join('\n')}\n`);
    const upload = curl([...tls, '-F', `hr_measurement=@${file};type=text/plain`, url]);
    expect(upload.status).to.equal(200);
    expect(JSON.parse(upload.body).stored).to.equal(7);

    const exported = await fx().server.cli(['export', fingerprint, 'hr_measurement']);
    expect(exported.code).to.equal(0);
    expect(exported.stdout).to.equal(`${PROTOCOL_POINTS.join('\n')}\n`);

    const noCert = curl([
      '--cacert',
      ca,
      '-H',
      'Content-Type: application/json',
      '-d',
      '{"PSK":"x"}',
      url,
    ]);
    expect(noCert.status).to.equal(401);
  });

  it('makes a device certificate with `fleetgate certs device` that curl can bind with', async () => {
    const dir = path.join(fx().db.workDir, 'certs-device');
    const made = await fx().server.cli(['certs', 'device', '--out', dir]);
    expect(made.code).to.equal(0);
    const fingerprint = /fingerprint: ([0-9a-f]{64})/.exec(made.stdout)![1]!;
    await fx().server.cli(['identity', 'create', 'dev-cert-user']);
    const psk = (await fx().server.cli(['psk', 'issue', 'dev-cert-user'])).stdout.trim();
    const ca = path.join(fx().server.env.FLEETGATE_CERTS_DIR!, 'dev-ca.crt');
    const bind = curl([
      '--cacert',
      ca,
      '--cert',
      path.join(dir, 'device.crt'),
      '--key',
      path.join(dir, 'device.key'),
      '-H',
      'Content-Type: application/json',
      '-d',
      JSON.stringify({ PSK: psk }),
      `https://localhost:${fx().server.port}/device_endpoint`,
    ]);
    expect(bind.status).to.equal(200);
    expect(JSON.parse(bind.body).fingerprint).to.equal(fingerprint);
  });

  it('reports CLI mistakes on stderr with a non-zero exit and no stack trace', async () => {
    const dup = await fx().server.cli(['identity', 'create', 'walkthrough']);
    expect(dup.code).to.equal(1);
    expect(dup.stderr).to.equal('fleetgate: identity walkthrough already exists\n');
    const missing = await fx().server.cli(['psk', 'issue', 'nobody']);
    expect(missing.stderr).to.equal('fleetgate: no identity named nobody\n');
    const badDuration = await fx().server.cli([
      'psk',
      'issue',
      'walkthrough',
      '--expires-in',
      'soon',
    ]);
    expect(badDuration.code).to.equal(1);
    expect(badDuration.stderr).to.contain('not a duration');
    const unknownDevice = await fx().server.cli(['export', 'ab'.repeat(32), 'x']);
    expect(unknownDevice.stderr).to.contain('no device with certificate');
  });
});
